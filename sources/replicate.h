/*
 * replicate.h - continuous replication of live SQLite databases into the
 * repository (the job Litestream does), and the WAL frame reader it uses.
 *
 * The database is put in WAL mode.  The replicator keeps a read transaction
 * open at all times on one of two connections of its own; it moves to a new
 * one by opening the new transaction, reading the WAL up to its end, and
 * only then ending the old one.  So the transaction it holds never sees more
 * than it has read, and SQLite can neither checkpoint past it nor restart
 * the WAL over frames it has not read (a WAL restart needs every reader out
 * of the WAL, or one that started when nothing was left to backfill).  Every
 * poll (100 ms) it reads new frames from the -wal file, checking salts and
 * the running checksum, and keeps only whole transactions (a frame with a
 * non-zero "database size after commit" ends one), stamped with the time it
 * saw them.  Every interval (default 1 s) it stores what it read as one
 * segment (repo/segment.h), then moves its read transaction forward and
 * runs a PASSIVE checkpoint, so that the WAL is backfilled and restarts.
 *
 * A generation begins with a base copy: SQLite's online backup API, run
 * inside the held read transaction, into a temp file stored as a normal
 * snapshot (tag "sqlite-replica", source kind "sqlite"), followed by every
 * frame then in the WAL (frames the base already holds are rewritten with
 * the same bytes on restore).  A new generation starts when the replicator
 * starts, when the database file is replaced (another inode), when a
 * transaction shrinks the database (VACUUM), and when the frames stored
 * since the base exceed base_bytes.
 *
 * An idle database costs no request: nothing is stored when nothing was
 * committed.  A busy one costs one segment upload per interval (more only
 * when a batch exceeds CF_SEG_MAX).
 */
#ifndef CF_REPLICATE_H
#define CF_REPLICATE_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "repo/repo.h"

/* ---- the WAL format (https://www.sqlite.org/fileformat2.html#walformat) ---- */

#define CF_WAL_HDR 32
#define CF_WAL_FRAME_HDR 24

struct cf_wal {
	uint32_t page_size, ckpt_seq, salt1, salt2;
	bool big_endian;       /* checksums over big-endian words (magic 0x377f0683) */
	uint32_t ck1, ck2;     /* running checksum after the last frame accepted */
};

/* SQLite's WAL checksum over n bytes (n a multiple of 8), continuing from
 * (*s1, *s2). */
void cf_wal_checksum(bool big_endian, const uint8_t *p, size_t n, uint32_t *s1, uint32_t *s2);
/* Parse and check a WAL header (magic, version, page size, checksum) into w.
 * CF_ECORRUPT with a message when it is not a valid header. */
int cf_wal_header(struct cf_wal *w, const uint8_t h[CF_WAL_HDR]);
/* Check the frame at f (header and page_size bytes of page) against w: its
 * salts and its checksum continuing w's.  On true w's checksum moves on and
 * *pgno / *commit (the database size after commit, 0 inside a transaction)
 * are set; false marks the end of the valid log. */
bool cf_wal_frame(struct cf_wal *w, const uint8_t *f, uint32_t *pgno, uint32_t *commit);

/* Apply one transaction's frames to the database file fd: each page written
 * at (pgno - 1) * page_size, then the file cut to db_pages pages.  CF_OK or
 * CF_EIO naming what (label) failed. */
struct cf_seg_tx;
int cf_wal_apply_tx(int fd, const char *label, uint32_t page_size, const struct cf_seg_tx *tx);

/* ---- the replicator ---- */

/* What one database's replication looks like, after each interval. */
struct cf_replicate_status {
	const char *path, *gen;
	int64_t last_upload_ns;     /* when the store last took a segment; 0 = not since the start */
	int64_t pending_since_ns;   /* the oldest transaction read but not stored, 0 = none (lag = now - it) */
	uint64_t queued_bytes;      /* read, not stored */
	size_t queued_segments;
	const char *state;          /* "following", "queued" (the store fails, segments queue in memory),
				       "outage" (the queue overflowed or a base failed: not following),
				       "stopped" (the run ended) */
	const char *error;          /* the store's last failure while queued/outage, else NULL */
};
typedef void (*cf_replicate_status_fn)(void *ctx, size_t i, const struct cf_replicate_status *st);

/* The queue's default bound (cf_replicate_opts.queue_bytes). */
#define CF_REPLICATE_QUEUE_DEFAULT ((uint64_t)64 << 20)

struct cf_replicate_opts {
	const char *const *paths; size_t npaths;  /* the databases */
	double interval;      /* seconds between uploads; 0 = 1 */
	double poll;          /* seconds between reads of the WAL; 0 = 0.1 (at most interval) */
	const char *tmp_dir;  /* where base copies are made; NULL = the database's directory */
	const char *host;     /* recorded in base snapshots; NULL = gethostname() */
	uint64_t base_bytes;  /* new generation after this many bytes of frames; 0 = 256 MiB */
	double retry_lock;    /* seconds to wait for the lock a base copy takes */
	uint64_t queue_bytes; /* bound of what is queued in memory while the store fails; 0 = 64 MiB */
	/* a new generation ("backup") for every database when the value changes
	 * (the agent bumps it after each scheduled backup); NULL = never */
	const _Atomic unsigned *base_request;
	unsigned base_seen;   /* the value the run starts from (a bump before it still counts) */
	cf_replicate_status_fn status;  /* called from the replicator's thread; NULL = none */
	void *status_ctx;
};

/* Replicate until *stop becomes non-zero (a signal handler sets it), then
 * store what was read and return CF_OK.  r is open with its index loaded
 * and not locked.  Failures at the start (not in WAL mode and cannot be,
 * missing, the store refuses the first base) and local failures later (the
 * database's connections, the WAL) are returned and end the run: the
 * caller restarts it (the agent) or reports it (the CLI).  A store that
 * fails later does not end it: sealed segments queue in memory, in order,
 * up to queue_bytes, and are retried every interval (the read transaction
 * still moves on and checkpoints still run: the WAL does not grow); past
 * the bound the queue is dropped, the database let go of (no read
 * transaction: the application's WAL is bounded by its own checkpoints),
 * and a new generation is tried every 5 intervals.  status reports it. */
int cf_replicate_run(struct cf_repo *r, const struct cf_replicate_opts *o, volatile sig_atomic_t *stop);

#endif
