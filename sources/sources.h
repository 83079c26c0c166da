/*
 * sources.h - databases and commands as backup sources.
 *
 * Each source becomes one or more cf_stream_source entries for
 * cf_backup_run(): the bytes are streamed into the chunker as they are
 * produced, never staged in a temporary file (SQLite excepted: its online
 * backup API writes a consistent copy, which is then streamed and removed).
 *
 *  - MariaDB/MySQL: one connection, one REPEATABLE READ transaction started
 *    WITH CONSISTENT SNAPSHOT before the first database is dumped, so every
 *    database of a server is dumped as of the same instant.  Each database is
 *    a file "mariadb/<db>.sql" (several servers: "mariadb/<host>/<db>.sql"
 *    from the second one on).
 *  - PostgreSQL: one `pg_dump --format=plain` per database, each read in
 *    its own REPEATABLE READ snapshot, "postgres/<db>.sql" (sources/postgres.h).
 *  - SQLite: stored under its own absolute path, so a normal file restore
 *    puts it back where it was.
 *  - A command: its stdout becomes the file; a non-zero exit fails the backup
 *    (no snapshot is written).
 *
 * Lifecycle: struct cf_sources s = CF_SOURCES_INIT; cf_sources_add_*();
 * run the backup with s.streams/s.n; cf_sources_release(&s).
 */
#ifndef CF_SOURCES_H
#define CF_SOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include "engine/backup.h"
#include "repo/snapshot.h"

struct cf_src_item;

struct cf_sources {
	struct cf_stream_source *streams;
	size_t n, cap;
	struct cf_src_item *items; /* owned state, one per stream */
	void **servers;            /* open MariaDB snapshots */
	size_t nservers;
	size_t itemcap, servercap; /* room in items and servers (cap: in streams) */
};

#define CF_SOURCES_INIT { NULL, 0, 0, NULL, NULL, 0, 0, 0 }

/* Connect to url, list its databases (or the URL's), start the consistent
 * snapshot (lock: FLUSH TABLES WITH READ LOCK around its start) and add one
 * stream per database (users: each ends with the accounts, roles and grants
 * of its objects, --mariadb-users).  Errors name the server and never the
 * password. */
int cf_sources_add_mariadb(struct cf_sources *s, const char *url, bool lock, bool users);

/* List the databases of the PostgreSQL server url names (or the URL's, each
 * checked) and add one stream per database, produced by pg_dump when the
 * backup reads it ("postgres/<db>.sql"; from the second server of a backup on
 * "postgres/<host>-<n>/<db>.sql").  Errors name the server, never the
 * password.  See sources/postgres.h. */
int cf_sources_add_postgres(struct cf_sources *s, const char *url);

/* Take a consistent copy of the SQLite database at path (tmp_dir: where the
 * copy goes; NULL = the database's directory) and add it as a stream stored
 * under path's absolute name. */
int cf_sources_add_sqlite(struct cf_sources *s, const char *path, const char *tmp_dir);

/* Add a command run with /bin/sh -c whose stdout is stored as filename. */
int cf_sources_add_command(struct cf_sources *s, const char *command, const char *filename);

/* Would the backup drop the dump stored at snapshot path `path` (label
 * names it for the user: "--sqlite /data/app.db")?  The walk of a backed-up
 * directory applies the --exclude patterns to every entry, the SQLite copy
 * that stands in for a live database file included, and it stores only
 * absolute dump paths in place of a walked entry.  So this refuses
 * (CF_EINVAL, one line naming the pattern and the dump):
 *  - an exclude pattern that matches the dump's path or a directory above
 *    it (as the walker matches: the whole absolute path, or one name);
 *  - a relative dump path (a command's or MariaDB's file) that lies inside a
 *    walked path, where the walk would leave it out.
 * walked: the backup's paths (absolute, or relative to the working
 * directory).  CF_OK when neither applies. */
int cf_sources_check_dump(const char *label, const char *path, const char *const *walked,
			  size_t nwalked, const char *const *excludes, size_t nexcludes);

/* cf_sources_check_dump() for every source added to s. */
int cf_sources_check(const struct cf_sources *s, const char *const *walked, size_t nwalked,
		     const char *const *excludes, size_t nexcludes);

/* Close connections, remove temporary copies, free everything. */
void cf_sources_release(struct cf_sources *s);

/* Record in desc (only its sources list is touched) what the streams
 * src->streams[from..] are, added by one cf_sources_add_* call of kind:
 * one entry per SQLite file or command dump; for MariaDB one entry for the
 * server (url, already free of credentials or not: the snapshot strips
 * them) with a database per dump, named from the dump paths this module
 * makes ("mariadb/<db>.sql", from the second server on
 * "mariadb/<host>-<n>/<db>.sql"; PostgreSQL alike under "postgres").
 * CF_OK, CF_ENOMEM, or CF_EINVAL for a
 * dump path of another shape. */
int cf_sources_describe(struct cf_snapshot *desc, const struct cf_sources *src, size_t from,
			enum cf_source_kind kind, const char *url);

#endif
