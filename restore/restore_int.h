/*
 * restore_int.h - what the files of restore/ share (not for other modules).
 *
 * A restore (restore.h) is one struct rctx that its phases fill in turn:
 *
 *   restore.c  the run: options and roots (setup), the phases in order,
 *              progress, the summary.
 *   plan.c     phase 1, one thread: the snapshot's trees beside the target;
 *              directories, symlinks, fifos and devices made, extras removed,
 *              every file given a state (enum fstate) and hard links found.
 *   verify.c   phase 2 (compare files already there) and, with `verify`,
 *              the read-back at the end.
 *   fetch.c    phase 3, the scheduler: every blob use grouped by pack and cut
 *              into ranges; fetching threads read ahead into a bounded pool
 *              of buffers while writing threads open and write.
 *   write.c    phase 3, the writer: temporary files, sparse writes, the page
 *              cache, rename into place; hard links after.
 *   meta.c     owner, mode, xattrs and times, always through a descriptor.
 *
 * Nothing in the target is changed through a name that was not just made or
 * checked (restore.h says how); common/fsat.h holds the helpers that open
 * beneath a directory through no symlink.
 *
 * Internal functions shared by these files are named rs_...
 *
 * Locks (which guards what in struct rctx):
 *
 *   field                                 guarded by
 *   ------------------------------------  ------------------------------------
 *   repo, o, is_root, pid, nthreads,      set before any thread starts, then
 *   nfetch, streaming,                    read-only
 *   srcpaths, roots, incs
 *   files[], dirs[], hl[] (the arrays)    filled by the plan (one thread),
 *                                         then read-only in size
 *   files[i].state                        the plan; the compare's worker of i;
 *                                         after the threads, the run's thread
 *   files[i] write fields (failed, fd,    the file's stripe lock, stripes[i %
 *   dirfd, opened, done, remaining, end,  NSTRIPES]; `writers` > 0 keeps fd
 *   dev, ino, tmpno)                      open while a write runs unlocked
 *   uses[], wants[], groups[], ranges[]   built before the fetch threads start
 *   ranges[k].buf, .ready; slots[].st,    rg_mu (rg_cond: a range is ready, a
 *   freebufs, nfree, fnext                buffer is free, stop)
 *   slots[b].sealed                       the thread holding buffer b
 *   st (the caller's stats), failedcap,   mu (during the threaded phases; the
 *   listing output, phase, pg_stop        plan writes st unlocked: one thread)
 *   bh[], bh_head, bh_n, bh_bytes         bh_mu
 *   next, open_files, tmpctr, stop,       atomics
 *   pg_*
 */
#ifndef CF_RESTORE_INT_H
#define CF_RESTORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/status.h"
#include "repo/pack_read.h"
#include "repo/repo.h"
#include "repo/tree.h"
#include "restore/restore.h"

#define TMP_PREFIX ".coffer-tmp-"
#define NSTRIPES 256   /* locks over files being written */
#ifndef FD_CAP /* (a test build sets it lower: every blob reopens its file) */
#define FD_CAP 256     /* files kept open between writes; beyond, reopened per blob */
#endif
#define BEHIND_FILES 128         /* written files waiting to leave the page cache */

enum fstate { F_CHECK, F_WRITE, F_KEEP, F_LINK, F_FAILED };

struct rfile {
	struct cf_node node;    /* owned copy */
	char *rel;              /* relative to its root: "a/b/name" */
	char *path;             /* for messages: root dir + "/" + rel */
	uint32_t root;
	uint8_t state;          /* enum fstate */
	bool existed;           /* something was in its place before */
	/* write phase, guarded by the file's stripe lock */
	bool failed, opened, done;
	int fd, dirfd;
	int writers;            /* threads writing through fd right now (unlocked) */
	unsigned tmpno;
	size_t remaining;       /* blob uses not yet written */
	uint64_t size;          /* sum of the blobs' lengths */
	uint64_t end;           /* end of the last byte written (all-zero blocks are not) */
	size_t leader;          /* F_LINK: the file it is a hard link of */
	/* the inode restore may touch under this name: the one found there at
	 * plan time, then the temporary file it made (F_WRITE) or the leader's
	 * (F_LINK); anything else found under the name is left alone */
	uint64_t dev, ino;
};

struct rdir {
	char *rel;
	uint32_t root;
	struct cf_node node;
	bool has_ino;           /* dev, ino: the directory planned (opened at plan time) */
	uint64_t dev, ino;
};

struct rroot {
	int fd;                 /* -1 in a dry run when the directory does not exist */
	char *dir;              /* as given, for messages */
	const char *snap;       /* snapshot path of the root ("" = "/") */
	bool has_tree;
	uint8_t tree[CF_ID_LEN];
	const char **incs; size_t nincs; /* includes that apply here (none = all) */
	bool is_target;         /* the --target root: mapped sub-trees are skipped */
	bool has_node;          /* map roots: the directory's own metadata */
	struct cf_node node;
};

/* One place a blob goes: file, at foff; the blob is where the index says. */
struct ruse {
	uint8_t pack[CF_ID_LEN];
	uint32_t offset, length, rawlen;
	uint8_t flags;
	const uint8_t *id;
	size_t file;
	uint64_t foff;
};

/* uses [start, end) are one pack's; first: the lowest file that needs it */
struct rgroup {
	size_t start, end, first;
};

/* One range of group's wants, read at once (rg as the reader cut it,
 * relative to the group's first want). */
struct rrange {
	size_t group;
	struct cf_pack_range rg;
	int buf;        /* the pool buffer holding it, -1: none */
	bool ready;     /* fetched (or failed: its slot's st) */
};

/* A buffer of the read-ahead pool: a fetched range and the fetch's result
 * (a struct cf_status: the fetch ran in another thread). */
struct rslot {
	struct cf_buf sealed;
	struct cf_status st;
};

struct hlent {
	uint64_t dev, ino;
	uint32_t root;
	size_t file;
};

struct behind { int fd; size_t file; uint64_t size; };

struct rctx {
	struct cf_repo *repo;
	const struct cf_restore_opts *o;
	struct cf_restore_stats *st;
	size_t failedcap;       /* room in st->failed */
	bool is_root;
	int pid;                /* in temporary names (getpid is a system call) */
	int nthreads;           /* writing threads (check, verify: workers) */
	int nfetch;             /* fetching threads (streaming: the only ones) */
	bool streaming;         /* the store streams: fetch.c reads pack by pack */
	/* the snapshot's source paths: `delete` removes extras only beneath
	 * them, never in the directories above (/, /backup, a sibling volume) */
	char *const *srcpaths; size_t nsrc;
	char **incs; size_t ninc; /* --include, normalised */

	struct rroot *roots; size_t nroots;
	struct rfile *files; size_t nfiles, filecap;
	struct rdir *dirs; size_t ndirs, dircap;
	struct hlent *hl; size_t nhl, hlcap;
	struct ruse *uses; size_t nuses, usecap;
	struct cf_pack_want *wants;       /* wants[k]: uses[k] for the pack reader */
	struct rgroup *groups; size_t ngroups, groupcap;
	struct rrange *ranges; size_t nranges, rangecap;
	/* fetch and write: the buffer pool, guarded by rg_mu */
	pthread_mutex_t rg_mu;
	pthread_cond_t rg_cond;   /* a range is ready, a buffer is free, stop */
	struct rslot *slots;
	int *freebufs, nfree;
	size_t fnext;             /* next range to fetch */

	pthread_mutex_t mu;               /* stats, failed list, listing */
	pthread_mutex_t stripes[NSTRIPES];
	atomic_size_t next;               /* rs_parallel, writers, streams: next item */
	atomic_int open_files;
	atomic_uint tmpctr;
	/* written files whose pages leave the page cache later (write.c) */
	pthread_mutex_t bh_mu;
	struct behind bh[BEHIND_FILES];
	size_t bh_head, bh_n;
	uint64_t bh_bytes;
	atomic_bool stop;
	/* progress */
	atomic_uint_least64_t pg_done, pg_total, pg_bytes, pg_bytes_total;
	const char *volatile phase;
	double pg_start;          /* when the status thread started (cf_now_mono) */
	bool pg_stop;
	pthread_cond_t pg_cond;
};

/* ---- restore.c: the context, setup, shared helpers ---- */

/* Set up c for restoring s from r with o into st (zeroed).  Nothing is
 * opened yet.  Release with rs_release() in every case. */
void rs_init(struct rctx *c, struct cf_repo *r, const struct cf_snapshot *s,
	     const struct cf_restore_opts *o, struct cf_restore_stats *st);
/* The includes and the roots (opened, made unless dry): options are checked
 * before anything is made.  CF_OK or an error with its message. */
int rs_setup(struct rctx *c, const struct cf_snapshot *s);
/* Free everything c holds (not the caller's stats). */
void rs_release(struct rctx *c);

/* st->field += v under c->mu */
void rs_add_stat(struct rctx *c, uint64_t *field, uint64_t v);
/* A path could not be restored: warn with the thread's message (rc's, which
 * names it) and add it to st->failed. */
void rs_path_failed(struct rctx *c, const char *path, int rc);
/* "verb     path (N bytes)" or "verb     path/" on the listing, if any */
void rs_list(struct rctx *c, const char *verb, const char *path, bool dir, uint64_t bytes);
/* a + "/" + b ("" on either side: no slash); NULL when out of memory */
char *rs_join(const char *a, const char *b);
/* Is absolute path p prefix or below it?  "/" holds everything. */
bool rs_under(const char *p, const char *prefix);

/* fn(c, i, buf) for i in [0, n) on c->nthreads workers; buf: two buffers of
 * the worker, reused from item to item.  Stops early on c->stop or an
 * interrupt (then c->stop is set). */
typedef void (*rs_item_fn)(struct rctx *c, size_t i, struct cf_buf buf[2]);
void rs_parallel(struct rctx *c, size_t n, rs_item_fn fn);

/* ---- plan.c ---- */

/* The inode restore may touch under f's name is the one found there (st). */
static inline void rs_set_planned(struct rfile *f, const struct stat *st)
{
	f->dev = (uint64_t)st->st_dev;
	f->ino = (uint64_t)st->st_ino;
}

/* Phase 1 over every root.  Errors of single entries are reported
 * (rs_path_failed) and the plan goes on; CF_ENOMEM or CF_EINTR stop it. */
int rs_plan(struct rctx *c);

/* ---- verify.c ---- */

void rs_check_one(struct rctx *c, size_t i, struct cf_buf buf[2]);  /* F_CHECK -> KEEP or WRITE */
void rs_verify_one(struct rctx *c, size_t i, struct cf_buf buf[2]); /* read back, compare */

/* ---- fetch.c ---- */

/* Choose the thread counts and the range span for c's store (after
 * c->nthreads is set). */
void rs_fetch_setup(struct rctx *c);
/* Where every blob of every F_WRITE file lies, grouped by pack (packs in the
 * order files first need them); *total: the bytes to write.  A file whose
 * blob the index lacks fails (F_FAILED).  CF_OK or CF_ENOMEM. */
int rs_plan_writes(struct rctx *c, uint64_t *total);
/* Fetch every range and write its blobs.  CF_OK (single files may have
 * failed), or CF_ENOMEM when no threads could be started. */
int rs_fetch_and_write(struct rctx *c);
/* Set c->stop and wake every thread waiting in the pipeline. */
void rs_set_stop(struct rctx *c);

/* ---- write.c ---- */

/* Write p[0..n) at off of fd, skipping 4 KiB blocks of zeros (holes); *end
 * grows to the end of what was written.  CF_OK or an error ("write"). */
int rs_write_sparse(int fd, const uint8_t *p, size_t n, uint64_t off, uint64_t *end);
/* Write one opened blob to use u (err: the blob failed, with its message:
 * the file fails).  The last use of a file finishes it. */
void rs_write_use(struct rctx *c, const struct ruse *u, const uint8_t *data, size_t len,
		  const struct cf_status *err);
/* The last blob is in (or f->failed): queue it to be placed, or remove its
 * temporary file.  Called with f's stripe lock held, or with no writers. */
void rs_finish_file(struct rctx *c, struct rfile *f);
/* Place every file still waiting to leave the page cache (no writers). */
void rs_behind_drain(struct rctx *c);
/* Close f's descriptors. */
void rs_close_tmp(struct rctx *c, struct rfile *f);
/* Make hard link f (F_LINK) to its leader's inode. */
void rs_link_one(struct rctx *c, struct rfile *f);
/* f's parent directory, O_PATH; -1 with errno. */
int rs_open_parent(struct rctx *c, const struct rfile *f);

/* ---- meta.c ---- */

/* Reset owner, mode, xattrs and times of open fd to n's (only what differs). */
void rs_set_meta_fd(struct rctx *c, int fd, const struct cf_node *n, const char *path);
/* The same through an O_PATH descriptor of a symlink, fifo or device. */
void rs_set_meta_path(struct rctx *c, int pfd, const struct stat *st, const struct cf_node *n,
		      const char *path);
/* A directory's metadata, if rel is still the directory planned (dev, ino). */
void rs_set_dir_meta(struct rctx *c, uint32_t root, const char *rel, const struct cf_node *n,
		     uint64_t dev, uint64_t ino);

#endif
