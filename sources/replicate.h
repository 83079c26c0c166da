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

struct cf_replicate_opts {
	const char *const *paths; size_t npaths;  /* the databases */
	double interval;      /* seconds between uploads; 0 = 1 */
	double poll;          /* seconds between reads of the WAL; 0 = 0.1 (at most interval) */
	const char *tmp_dir;  /* where base copies are made; NULL = the database's directory */
	const char *host;     /* recorded in base snapshots; NULL = gethostname() */
	uint64_t base_bytes;  /* new generation after this many bytes of frames; 0 = 256 MiB */
	double retry_lock;    /* seconds to wait for the lock a base copy takes */
};

/* Replicate until *stop becomes non-zero (a signal handler sets it), then
 * store what was read and return CF_OK.  r is open with its index loaded
 * and not locked.  Errors of one database (not in WAL mode and cannot be,
 * missing, a failed store) are returned, and end the run: the caller
 * restarts it (the agent) or reports it (the CLI). */
int cf_replicate_run(struct cf_repo *r, const struct cf_replicate_opts *o, volatile sig_atomic_t *stop);

#endif
