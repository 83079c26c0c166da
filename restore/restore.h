/*
 * restore.h - writing a snapshot (or parts of it) back to a directory.
 *
 * The tree is walked from the snapshot's root; directories are created first
 * (without following any symlink already in the target: every step is an
 * openat(O_NOFOLLOW) relative to the parent), files are written by worker
 * threads, each under a temporary name in its directory and renamed into
 * place when complete, so a crash never leaves a half-written file under the
 * real name.  Blocks of zeros are skipped (holes), so sparse files come back
 * sparse.  Hard links are made after their first member is written, and
 * directory metadata is set last (deepest first) so writing files into a
 * directory does not disturb its mtime.
 *
 * Errors on single entries are reported with cf_warn naming the path and
 * counted; the restore goes on with the rest and returns CF_EPARTIAL.
 */
#ifndef CF_RESTORE_H
#define CF_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../repo/repo.h"

struct cf_restore_opts {
	const char *target;                     /* directory, created if missing */
	const char *const *includes; size_t nincludes; /* snapshot paths to restore (all if none) */
	int threads;                            /* 0 = number of CPUs */
	bool progress;
	bool verify;                            /* read files back and compare (not yet) */
};

struct cf_restore_stats {
	uint64_t files, dirs, others, bytes, errors;
};

/* Restore snapshot s from r.  CF_OK, CF_EPARTIAL (some entries failed, each
 * named on stderr), or an error that stopped the restore. */
int cf_restore_run(struct cf_repo *r, const struct cf_snapshot *s, const struct cf_restore_opts *o,
		   struct cf_restore_stats *st);

#endif
