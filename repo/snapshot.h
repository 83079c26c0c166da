/*
 * snapshot.h - the snapshot record: what was backed up, when, from where.
 *
 * Encoded as JSON with restic's field names (time, tree, paths, hostname,
 * username, uid, gid, tags, parent, program_version, summary{...}) so that
 * scripts written for `restic snapshots --json` read coffer's output.  The
 * snapshot's id is the hash of its stored (sealed) object, so it is not part of
 * the JSON; cf_snapshot.id is filled by whoever loaded it.
 *
 * Beside restic's fields a snapshot may list its sources ("sources"): each
 * walked path (a volume), each MariaDB server with its databases and where
 * each dump sits, each SQLite file and each command's dump, so that a restore
 * can put everything back where it came from.  A server URL is stored without
 * its credentials: the codec strips the userinfo and the secret query values
 * of every URL it is given or writes.  Snapshots written before this field
 * have nsources == 0.
 *
 * A snapshot owns its strings: cf_snapshot_release() frees them.
 */
#ifndef CF_SNAPSHOT_H
#define CF_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "common/buf.h"
#include "common/util.h"

struct cf_snapshot_summary {
	int64_t backup_start_ns, backup_end_ns;
	uint64_t files_new, files_changed, files_unmodified;
	uint64_t dirs_new, dirs_changed, dirs_unmodified;
	uint64_t data_blobs, tree_blobs;
	uint64_t data_added;         /* plaintext bytes of new blobs */
	uint64_t data_added_packed;  /* bytes added to the repository */
	uint64_t total_files_processed;
	uint64_t total_bytes_processed;
	uint64_t files_unreadable;   /* sources that could not be read (exit 3) */
};

/* What a source was; values are stored as the strings of cf_source_kind_name(). */
enum cf_source_kind {
	CF_SOURCE_VOLUME = 1, /* a walked file-system path (a directory, usually a volume) */
	CF_SOURCE_MARIADB,    /* a MariaDB/MySQL server's databases, one dump each */
	CF_SOURCE_SQLITE,     /* an SQLite database, copied online, under its own path */
	CF_SOURCE_COMMAND,    /* a command's stdout (the command line is not stored) */
	CF_SOURCE_POSTGRES,   /* a PostgreSQL server's databases, one pg_dump each */
};

struct cf_snapshot_db {
	char *name;                  /* the database's name */
	char *path;                  /* its dump in the snapshot: "mariadb/app.sql" */
};

struct cf_snapshot_source {
	enum cf_source_kind kind;
	char *path;                  /* where it sits in the snapshot (see doc/repo-format.md) */
	char *url;                   /* MariaDB: the server, without credentials; else NULL */
	struct cf_snapshot_db *dbs;  /* MariaDB: its databases, in dump order */
	size_t ndbs;
};

struct cf_snapshot {
	uint8_t id[CF_ID_LEN];       /* not encoded: the stored object's name */
	int64_t time_ns;             /* UTC nanoseconds since the epoch */
	char *hostname, *username;
	uint32_t uid, gid;
	char **paths; size_t npaths;
	char **tags; size_t ntags;
	uint8_t tree[CF_ID_LEN];
	bool has_parent;
	uint8_t parent[CF_ID_LEN];
	char *program_version;
	bool has_summary;
	struct cf_snapshot_summary summary;
	/* copy: the id of the snapshot this one was copied from (restic's
	 * "original"), so that copying again can tell it is already there */
	bool has_original;
	uint8_t original[CF_ID_LEN];
	struct cf_snapshot_source *sources; size_t nsources; /* none: an older snapshot */
};

void cf_snapshot_release(struct cf_snapshot *s);

/* Append a copy of str to the paths/tags array.  CF_OK or CF_ENOMEM. */
int cf_snapshot_add_path(struct cf_snapshot *s, const char *path);
int cf_snapshot_add_tag(struct cf_snapshot *s, const char *tag);

/* "volume", "mariadb", "sqlite", "command", "postgres"; NULL for another value. */
const char *cf_source_kind_name(int kind);

/* Append a source of kind with path (copied) and, for MariaDB, url (copied
 * with its credentials removed: cf_snapshot_strip_url()).  *out (may be
 * NULL) points at the new entry, valid until the next add.  CF_OK, CF_EINVAL
 * for an unknown kind or no path, CF_ENOMEM. */
int cf_snapshot_add_source(struct cf_snapshot *s, enum cf_source_kind kind, const char *path,
			   const char *url, struct cf_snapshot_source **out);

/* Append database name, dumped at path, to a MariaDB source.  CF_OK or CF_ENOMEM. */
int cf_snapshot_source_add_db(struct cf_snapshot_source *src, const char *name, const char *path);

/* Append deep copies of the n sources in v (urls stripped again).  CF_OK or CF_ENOMEM. */
int cf_snapshot_copy_sources(struct cf_snapshot *s, const struct cf_snapshot_source *v, size_t n);

/* The URL in without credentials, malloc'd (caller frees; NULL on ENOMEM):
 * the userinfo before the host ("user:password@") is dropped and the value
 * of a query parameter that names a secret is replaced by "***"
 * (cf_redact_url).  "mariadb://u:pw@db:3306/app" gives "mariadb://db:3306/app". */
char *cf_snapshot_strip_url(const char *in);

/* Encode as JSON (appended to out).  time is written as RFC 3339 with
 * nanoseconds in UTC ("2026-11-23T05:04:00.123456789Z"). */
int cf_snapshot_encode(const struct cf_snapshot *s, struct cf_buf *out);

/* Decode JSON into s (zeroed by the caller).  Unknown fields are ignored
 * (forward compatibility); missing required fields (time, tree, paths,
 * hostname) or malformed values are CF_ECORRUPT.  s is released on failure. */
int cf_snapshot_decode(const void *p, size_t n, struct cf_snapshot *s);

/* The JSON object used by `snapshots --json`: the encoded fields plus "id" and
 * "short_id" (first 8 hex digits).  New reference (json_decref), NULL on ENOMEM. */
json_t *cf_snapshot_to_json(const struct cf_snapshot *s);

/* Parse "YYYY-MM-DD HH:MM:SS" (local time of the process TZ) or RFC 3339 into
 * UTC nanoseconds.  CF_EINVAL with a message. */
int cf_parse_time(const char *s, int64_t *ns);

/* Format UTC ns as RFC 3339 with nanoseconds into out (at least 40 bytes). */
void cf_format_time(int64_t ns, char *out, size_t outlen);

#endif
