/*
 * backup.h - one backup run: sources in, one snapshot out.
 *
 * Sources are directories/files given by path (walked with lstat, never
 * following symlinks) and streams (database dumps, a command's stdout) that
 * push bytes through a cf_sink_fn and appear in the snapshot as a file at a
 * chosen path.  Contents are cut by the chunker in the reading thread; each
 * chunk is handed to a pool of workers that hash, deduplicate, compress, seal
 * and pack it (cf_repo_save_blob), so all cores work while one thread reads.
 * A directory's tree blob is written once all its files' chunks are stored.
 *
 * Incremental: the newest snapshot with the same host and paths is the
 * parent; a file whose type, size, mtime, ctime and inode match its entry
 * there is not read again (its content ids are reused if the index still has
 * them), and an unchanged directory yields the same tree blob, which dedups.
 *
 * A source that cannot be read is named on stderr and left out; the snapshot
 * is still written and the run reports it (exit 3).  Any repository error
 * aborts the run before a snapshot is written: earlier snapshots are never
 * touched.
 */
#ifndef CF_BACKUP_H
#define CF_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "engine/sink.h"
#include "repo/repo.h"

/* A stream source: produce() pushes the file's bytes into sink and returns
 * CF_OK or an error (which fails the whole backup: no snapshot). */
struct cf_stream_source {
	const char *path;  /* where it appears in the snapshot, e.g. "mariadb/app.sql" */
	int (*produce)(void *ctx, cf_sink_fn sink, void *sink_ctx);
	void *ctx;
	uint32_t mode;     /* file mode for the node, e.g. 0600 */
	bool has_owner;    /* uid, gid, mtime_ns below are the node's (a SQLite copy
			    * keeps its original's); else the running user and now */
	uint32_t uid, gid;
	int64_t mtime_ns;
};

/* What a status callback is given (backup --json's "status" lines): the
 * counts so far; the totals are what the scanner has found so far (final
 * once totals_final).  Called on the walker thread. */
struct cf_backup_status {
	double seconds_elapsed;
	uint64_t files_done, bytes_done;   /* processed (read or found unchanged) */
	uint64_t total_files, total_bytes; /* found below the paths */
	bool totals_final;                 /* the scanner has finished */
	uint64_t error_count;              /* entries that could not be read */
	const char *current_file;          /* being read now; NULL between files */
	bool final;                        /* the last call, before the snapshot is saved */
};

struct cf_backup_opts {
	const char *const *paths; size_t npaths;
	const struct cf_stream_source *streams; size_t nstreams;
	const char *host;                 /* NULL = gethostname() */
	const char *const *tags; size_t ntags;
	int64_t time_ns;                  /* 0 = now */
	const char *const *excludes; size_t nexcludes; /* fnmatch patterns on path or name */
	/* a directory holding an entry of this name is left out ("NAME" or
	 * "NAME:HEADER": the file must also start with HEADER, as restic's
	 * --exclude-if-present; CACHEDIR.TAG with its signature is --exclude-caches) */
	const char *const *exclude_if_present; size_t nexclude_if_present;
	uint64_t exclude_larger_than;     /* regular files above this size are left out; 0 = none */
	bool one_file_system;
	int threads;                      /* 0 = number of CPUs */
	bool progress;                    /* live progress line on stderr */
	/* instead of (or beside) the progress line: status(report_ctx, ...)
	 * about four times a second and once at the end; error(report_ctx,
	 * item, message) for each entry that cannot be read, instead of the
	 * warning on stderr.  NULL = none. */
	void (*status)(void *report_ctx, const struct cf_backup_status *st);
	void (*error)(void *report_ctx, const char *item, const char *message);
	void *report_ctx;
	const uint8_t *parent;            /* force a parent snapshot id (NULL = find one) */
	bool no_parent;                   /* read everything */
	/* walk, read, chunk and look up as a real run, count what would be
	 * added (cf_repo_set_dry_run), write nothing: no pack, index,
	 * snapshot or directory cache; *out gets the summary, its id zero */
	bool dry_run;
	const char *cache_dir;            /* local directory cache (dircache.h); NULL = none */
	/* what the streams are, recorded in the snapshot's "sources" after one
	 * "volume" entry per path (added here); NULL = the streams undescribed */
	const struct cf_snapshot_source *sources; size_t nsources;
};

/* Run a backup into r (opened, locked, index loaded; with o->dry_run no
 * lock is needed).  On success the new snapshot (with summary) is in *out
 * (caller releases) and the return is CF_OK, or CF_EPARTIAL when some
 * sources could not be read (each already named on stderr; the snapshot
 * was written, unless a dry run). */
int cf_backup_run(struct cf_repo *r, const struct cf_backup_opts *o, struct cf_snapshot *out);

#endif
