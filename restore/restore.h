/*
 * restore.h - writing a snapshot (or parts of it) back over a live directory.
 *
 * This is the most dangerous thing coffer does (it overwrites volumes that
 * are in use), so it runs in three careful phases:
 *
 *  1. Plan.  One thread walks the snapshot's trees beside the target.  Every
 *     step into the target is an openat(O_NOFOLLOW) relative to its parent, so
 *     a symlink already in the target is never followed: where a directory
 *     should be, a symlink (or file) is removed and the directory made; a
 *     file or symlink is replaced by renaming over it, which replaces the link
 *     itself.  Names that are empty, ".", ".." or hold '/' are refused.
 *     Stale ".coffer-tmp-*" files left by a killed run are removed, and with
 *     `delete` every entry the snapshot does not have is removed (recursively,
 *     never following a symlink).  Symlinks, fifos and devices are made here.
 *  2. Compare.  With CF_OVERWRITE_IF_CHANGED a file already in the target
 *     whose size matches is read and each piece hashed with the repository's
 *     blob-id key; if every id matches the snapshot's, the file is kept (only
 *     its metadata is reset when it differs).  So restoring the same snapshot
 *     twice writes no data the second time.
 *  3. Write.  The blobs of every file to write are grouped by pack; packs are
 *     taken in the order files first need them by several workers, each
 *     fetching a pack's needed blobs in a few coalesced ranged reads (each
 *     pack is read once), opening each blob once and pwrite()ing it to every
 *     (file, offset) that holds it.  Files are written under a temporary name
 *     in their directory (".coffer-tmp-<pid>-<n>") and renamed into place when
 *     their last blob is in, so a crash never leaves a half-written file
 *     under the real name; a re-run finds the renamed files identical, skips
 *     them, and finishes the rest.  Blocks of zeros are not written (holes).
 *     Hard links are made after, then directory metadata (deepest first).
 *
 * Names in the target may be swapped by whoever can write there while the
 * restore runs (a fifo exchanged with a symlink or a hard link to a file
 * outside).  So nothing is changed through a name that was not just made or
 * checked: metadata of symlinks, fifos and devices goes through an
 * O_PATH|O_NOFOLLOW descriptor of the node (the mode through its
 * /proc/self/fd link), existing files are opened beneath the root through no
 * symlink and only if still the inode planned (dev, ino, type), temporary
 * files are made O_CREAT|O_EXCL|O_NOFOLLOW and reopened only through a
 * checked O_PATH descriptor, hard links go to the checked inode of their
 * partner, directories get their metadata only if still the one planned.  An
 * entry that shares its inode with another name (more links than the
 * snapshot's) is replaced, never changed; setuid/setgid bits go only to what
 * restore wrote or made itself.
 *
 * With `verify` every restored or kept file is read back and compared with
 * the snapshot's blob ids.  With `dry_run` nothing is changed: the actions
 * (create, replace, delete, keep, with sizes) are listed on opts.listing.
 *
 * Errors on single entries are reported with cf_warn naming the path,
 * collected in stats.failed, and the restore goes on with everything else;
 * it then returns CF_EPARTIAL.  Ownership is set when running as root (a
 * failure is a warning); otherwise ownership that cannot be set is counted in
 * stats.owner_unset, never an error.
 */
#ifndef CF_RESTORE_H
#define CF_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "repo/repo.h"

enum cf_overwrite {
	CF_OVERWRITE_IF_CHANGED = 0, /* rewrite a file only if its size or content differs */
	CF_OVERWRITE_ALWAYS,         /* rewrite every file */
	CF_OVERWRITE_NEVER,          /* leave every existing entry alone */
};

/* --path-map: the snapshot directory snap_path is restored into dir (its
 * contents go directly into dir). */
struct cf_restore_map {
	const char *snap_path;
	const char *dir;
};

/* What a status callback is given (restore --json's "status" lines), about
 * four times a second, from a thread of its own: the phase and its counts. */
struct cf_restore_status {
	const char *phase;        /* "restore" (planning), "comparing", "restoring", "verifying" */
	double seconds_elapsed;
	uint64_t files_done, files_total, bytes_done, bytes_total; /* of the phase */
};

struct cf_restore_opts {
	const char *target;       /* directory, created if missing; may be NULL when maps cover all */
	const char *const *includes; size_t nincludes; /* snapshot paths to restore (all if none) */
	const char *const *excludes; size_t nexcludes; /* fnmatch patterns on path or name */
	const struct cf_restore_map *maps; size_t nmaps;
	enum cf_overwrite overwrite;
	bool delete_extra;        /* remove what the snapshot does not have */
	bool dry_run;
	bool verify;
	int threads;              /* 0 = a default from the CPU count and the backend */
	bool progress;            /* a status line on stderr */
	/* instead of the status line: status(status_ctx, ...); NULL = none */
	void (*status)(void *status_ctx, const struct cf_restore_status *st);
	void *status_ctx;
	FILE *listing;            /* actions are listed here (dry run, verbose); NULL = none */
};

struct cf_restore_stats {
	uint64_t files_created, files_replaced, files_kept, files_linked;
	uint64_t bytes_written, bytes_kept;
	uint64_t dirs, others;
	uint64_t deleted, bytes_deleted;
	uint64_t owner_unset;     /* not root: entries whose owner could not be set */
	uint64_t verified;        /* files read back and found equal */
	uint64_t errors;
	char **failed; size_t nfailed; /* every path that could not be restored */
};

/* Restore snapshot s from r (whose index is loaded).  CF_OK; CF_EPARTIAL when
 * some entries failed (each named on stderr and in st->failed); CF_EINTR when
 * interrupted; another code for an error that stopped the restore before it
 * began (bad options, target not usable).  st is filled in every case; the
 * caller releases it with cf_restore_stats_release(). */
int cf_restore_run(struct cf_repo *r, const struct cf_snapshot *s, const struct cf_restore_opts *o,
		   struct cf_restore_stats *st);

void cf_restore_stats_release(struct cf_restore_stats *st);

/* Parse "always", "if-changed" or "never".  CF_EINVAL with a message. */
int cf_restore_parse_overwrite(const char *s, enum cf_overwrite *out);

/* (finding a path in a snapshot and copying a node: repo/tree.h,
 * cf_tree_find_path() and cf_tree_node_copy()) */

#endif
