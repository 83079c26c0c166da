/*
 * engine_int.h - what the backup engine's files share (private to engine/).
 *
 * One backup run (backup.c) has one struct ctx.  The calling thread, "the
 * walker", walks the sources (walk.c, fastpath.c, dirq.c, vroot.c) and cuts
 * file contents into chunks (cstream.c); the chunks go to a cf_pool of
 * workers that store them (chunkq.c); two more pool threads load parent
 * trees ahead of the walker (ahead.c) and one counts what lies ahead for the
 * progress line (progress.c).  Everything else stays on the walker.
 *
 * Who touches which field of struct ctx:
 *
 *   field                         guard / owner
 *   ----------------------------  ---------------------------------------------
 *   repo, o, cp, start            set before the pools start, read-only after
 *   sum, unreadable, root_dev,    the walker only (workers never count into
 *     last_progress, last_status,   the summary: they count into wstats)
 *     cur_file, dq_*, dc,
 *     dc_write, dc_out, dc_count,
 *     dc_hits, overlays, added*,
 *     blobs_new, cq_next
 *   cq, cq_threads, njobs         set by eng_cq_start, read-only until eng_cq_stop
 *   jobs[]                        a slot is the walker's while .busy is 0, the
 *                                   worker's that runs it while .busy is 1
 *                                   (atomic; released by the worker)
 *   wstats[w]                     worker w only; summed after eng_cq_stop
 *   done_mu, done                 batch completion: a struct batch's .st is
 *                                   written under done_mu; .outstanding is atomic
 *   ahead                         its own mutex (ahead.c)
 *   scan_files, scan_bytes,       atomics: the scanner writes, progress reads
 *     scan_done
 *   scan, scan_paths, scan_n      set before the scanner starts, read-only after
 */
#ifndef CF_ENGINE_INT_H
#define CF_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/pool.h"
#include "common/status.h"
#include "engine/backup.h"
#include "engine/dircache.h"
#include "repo/tree.h"

#define READ_SIZE (1u << 20)
#define REFS_PER_BLOCK 64
#define QUEUE_MAX 64

/* ---- chunk references (cstream.c) ---- */

struct refblock {
	uint8_t ids[REFS_PER_BLOCK][CF_ID_LEN];
	struct refblock *next;
};

/* the chunk ids of one file, filled in by workers; blocks never move */
struct refs {
	struct refblock *head, *tail;
	size_t n;
};

/* The chunks of one directory's files (chunkq.c). */
struct batch {
	atomic_int outstanding;  /* queued or being stored */
	struct cf_status st;     /* the first worker failure, under ctx.done_mu */
};
#define BATCH_INIT { 0, CF_STATUS_INIT }

/* One queued chunk: the pool's job argument (chunkq.c). */
struct cq_job {
	struct ctx *c;
	uint8_t *data;
	size_t len, cap;
	uint8_t *id_out;
	struct batch *batch;
	atomic_int busy;
};

/* What one worker added; padded so workers do not share a cache line. */
struct cq_stats {
	uint64_t added, added_packed, blobs_new;
	char pad[64 - 3 * sizeof(uint64_t)];
};

/* A file's bytes on their way to chunks (cstream.c). */
struct cstream {
	struct ctx *c;
	struct batch *batch;
	struct refs *refs;
	struct cf_chunker ch;
	uint8_t *buf;
	size_t len, cap;
	uint64_t total;
};

/* The zero blob of holes (cstream.c). */
struct zero_chunk {
	size_t len;          /* 0: unknown yet; SIZE_MAX: the chunker never cuts zeros */
	uint8_t id[CF_ID_LEN];
};

/* ---- parent trees read ahead (ahead.c) ---- */

#define AHEAD_SLOTS 12
#define AHEAD_PER_DIR 4
#define AHEAD_THREADS 2
enum { AH_FREE, AH_QUEUED, AH_LOADING, AH_DONE };
struct ahead_slot {
	int state;
	unsigned long order;
	uint8_t id[CF_ID_LEN];
	struct cf_tree t;
	int rc;
};
struct ahead {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct ahead_slot s[AHEAD_SLOTS];
	unsigned long seq;
	bool stop;
	struct cf_pool *pool;
	unsigned nthreads; /* 0: every take is a load of one's own */
	struct cf_repo *repo;
};

/* ---- directories (walk.c, dirq.c) ---- */

/* What a directory's tree needs of an entry once its chunks are stored. */
struct pending {
	struct refs refs;
	size_t node; /* index into the tree */
	bool reused;
	/* a subdirectory whose tree is finished later: its id comes from
	 * there, and the parent snapshot's id of it for the summary */
	struct dirjob *sub;
	uint8_t sub_kind; /* DIR_NEW, DIR_OLD_NOT_DIR or DIR_COMPARE */
	uint8_t sub_old[CF_ID_LEN];
};
enum { DIR_NEW, DIR_OLD_NOT_DIR, DIR_COMPARE };

#define DEFER_MAX 16

/* A walked directory whose tree is finished later (dirq.c). */
struct dirjob {
	struct batch b; /* the chunks of its files (workers point here) */
	struct cf_tree t;
	struct pending *pd;
	size_t npd;
	struct cf_tree old; /* the parent snapshot's tree of it, if has_old */
	bool has_old;
	uint8_t old_id[CF_ID_LEN];
	uint8_t id[CF_ID_LEN]; /* its tree id, once finished */
	struct dirjob *next;
};

/* ---- the virtual root (vroot.c) ---- */

struct vnode {
	char *name;
	char *fspath;            /* real path for metadata (intermediate dirs too) */
	bool leaf;               /* backed-up path itself */
	const struct cf_stream_source *stream;
	struct vnode *kids;
	size_t nkids, kids_cap;
};

/* A stream inside a walked directory, by the path the walk gives it. */
struct overlay {
	const struct cf_stream_source *src;
	char *path; /* absolute and clean: "/" + components joined by "/" */
};

/* ---- the run ---- */

struct ctx {
	struct cf_repo *repo;
	struct ahead ahead;
	const struct cf_backup_opts *o;
	struct cf_chunker_params cp;
	struct cf_snapshot_summary *sum;
	/* the chunk queue (chunkq.c) */
	struct cf_pool *cq;
	unsigned cq_threads;
	unsigned cq_next;                /* where the walker looks for a free slot */
	struct cq_job *jobs;             /* QUEUE_MAX + cq_threads + 1 slots */
	size_t njobs;
	struct cq_stats *wstats;         /* one per worker */
	pthread_mutex_t done_mu;
	pthread_cond_t done;
	/* what was added: tree blobs by the walker as they are stored, data
	 * blobs from wstats when the queue stops (eng_cq_stop) */
	uint64_t added, added_packed, blobs_new;
	dev_t root_dev;
	int unreadable;
	double last_progress, last_status, start;
	const char *cur_file;            /* the file being read (status lines) */
	/* stream sources inside a walked directory (a SQLite copy standing in
	 * for the live file of the same name) */
	struct overlay *overlays;
	size_t noverlays, overlays_cap;
	/* totals found by the scanner, for the ETA (progress only) */
	_Atomic uint64_t scan_files, scan_bytes;
	_Atomic int scan_done;
	struct cf_pool *scan;
	char **scan_paths;               /* what the scanner counts */
	size_t scan_n;
	/* the local directory cache (dircache.h): the parent snapshot's
	 * directories (empty without one), and this snapshot's, being written */
	struct cf_dircache dc;
	bool dc_write;
	struct cf_buf dc_out;
	uint32_t dc_count;
	uint64_t dc_hits; /* directories taken from the cache, trees not loaded */
	/* directories walked whose trees are finished later (dirq.c), oldest first */
	struct dirjob *dq_head, *dq_tail;
	size_t dq_n;
};

/* chunkq.c: chunk buffers and the queue of chunks to store */
uint8_t *eng_buf_get(size_t want, size_t *cap);
void eng_buf_put(uint8_t *b, size_t cap);
void eng_bufpool_drain(void);
int eng_cq_start(struct ctx *c, int threads);
void eng_cq_stop(struct ctx *c);
int eng_cq_submit(struct ctx *c, struct batch *b, uint8_t *data, size_t len, size_t cap,
		  uint8_t *id_out);
int eng_batch_drain(struct ctx *c, struct batch *b);
int eng_batch_wait(struct ctx *c, struct batch *b);
bool eng_batch_busy(struct batch *b);

/* cstream.c: chunk streams and holes */
uint8_t *eng_ref_slot(struct refs *r);
void eng_refs_free(struct refs *r);
int eng_refs_to_node(struct refs *r, struct cf_node *n);
void eng_cs_init(struct cstream *s, struct ctx *c, struct batch *b, struct refs *refs);
uint8_t *eng_cs_space(struct cstream *s, size_t want);
int eng_cs_commit(struct cstream *s, size_t n);
int eng_cs_finish(struct cstream *s);
void eng_cs_abort(struct cstream *s);
int eng_cs_hole(struct cstream *s, struct zero_chunk *z, uint64_t len);
int eng_cs_sink(void *ctx, const void *p, size_t n);

/* meta.c: stat to node, xattrs, names, exclusion */
int eng_node_type(mode_t m);
int64_t eng_ts_ns(struct timespec t);
const char *eng_user_name(uid_t uid, char *buf, size_t len);
int eng_fill_node(const char *path, const char *name, const struct stat *st,
		  const struct cf_node *old, struct cf_node *n);
bool eng_excluded(const struct ctx *c, const char *path, const char *name);
/* The tests that need the entry's lstat: --exclude-larger-than and
 * --exclude-if-present (a directory holding the marker). */
bool eng_excluded_stat(const struct ctx *c, const char *path, const struct stat *st);

/* progress.c */
void eng_progress(struct ctx *c, bool final);
/* An entry that cannot be read: to o->error, else a warning on stderr
 * (the caller counts it in unreadable). */
void eng_error(struct ctx *c, const char *item, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void eng_scan_start(struct ctx *c, char **paths, size_t n);
void eng_scan_stop(struct ctx *c);

/* ahead.c */
void eng_ahead_start(struct ctx *c);
void eng_ahead_stop(struct ctx *c);
void eng_ahead_want(struct ctx *c, const uint8_t id[CF_ID_LEN]);
int eng_ahead_take(struct ctx *c, const uint8_t id[CF_ID_LEN], struct cf_tree *t);
bool eng_wants_ahead(const struct ctx *c, const struct cf_node *on);

/* walk.c: files and directories */
int eng_save_entry(struct ctx *c, const char *path, const struct stat *st, const struct cf_node *old,
		   struct cf_node *n, struct pending *pd, struct batch *b, bool *drop);
int eng_list_names(const char *path, char ***out, size_t *n);
int eng_save_dir(struct ctx *c, const char *path, struct cf_tree *old, const uint8_t *old_id,
		 uint8_t id[CF_ID_LEN], struct dirjob **later);
int eng_dir_known(struct ctx *c, const char *path, const uint8_t *old_id, uint8_t id[CF_ID_LEN],
		  struct dirjob **later);

/* dirq.c: finishing trees, directories finished later */
void eng_count_dir(struct ctx *c, const struct pending *pd, const uint8_t id[CF_ID_LEN]);
int eng_store_tree(struct ctx *c, const struct cf_tree *t, uint8_t id[CF_ID_LEN]);
int eng_finish_tree(struct ctx *c, struct cf_tree *t, struct pending *pd, size_t npd,
		    struct batch *b, const struct cf_tree *old, const uint8_t *old_id,
		    uint8_t id[CF_ID_LEN]);
void eng_job_release(struct dirjob *j);
int eng_dq_run(struct ctx *c, bool all);
void eng_dq_abort(struct ctx *c);

/* fastpath.c: the directory cache */
void eng_dc_off(struct ctx *c);
void eng_dc_record(struct ctx *c, const struct cf_tree *t, const uint8_t id[CF_ID_LEN]);
int eng_dir_fast(struct ctx *c, const char *path, const uint8_t *old_id,
		 const struct cf_dc_entry *ce, uint8_t id[CF_ID_LEN], bool *done);

/* vroot.c: the snapshot's root */
void eng_vnode_free(struct vnode *v);
int eng_vnode_insert(struct vnode *root, const char *path, const struct cf_stream_source *stream);
int eng_overlay_entry(struct ctx *c, const char *sub, const char *name, struct cf_node *n,
		      struct batch *b, struct refs *refs, bool *handled, bool *skip);
int eng_save_vdir(struct ctx *c, struct vnode *v, const struct cf_tree *old, uint8_t id[CF_ID_LEN]);
bool eng_overlay_below(const struct ctx *c, const char *path);
int eng_overlay_dir(struct ctx *c, const char *path, const char *name, struct cf_node *n);

#endif
