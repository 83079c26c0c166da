/*
 * segment.h - continuous SQLite replication in the repository: generations
 * and WAL segments (doc/repo-format.md, "SQLite replication").
 *
 * A replicated database is a sequence of generations.  A generation starts
 * from a base copy (a normal snapshot holding the database, taken through
 * SQLite's online backup API) and continues with segments: sealed,
 * compressed batches of the WAL frames of whole committed transactions, in
 * commit order, each transaction with the time the replicator saw it
 * committed.  Applying the frames of every transaction up to a time onto the
 * base gives the database as of that time.
 *
 * Names (all under sqlite-<db>/, db = 32 hex digits of a keyed hash of the
 * database's path, so the store does not learn the path):
 *	sqlite-<db>/<gen>.gen             the generation record (sealed JSON)
 *	sqlite-<db>/<gen>.<seq>           segment seq (16 hex digits, from 1)
 * gen is 32 hex digits: the start time in seconds (16 hex) and 8 random
 * bytes, so names sort by start time and listing one database's directory
 * lists all it has.  Each object is sealed with its own name's SHA-256 as
 * the associated data: a segment moved to another name fails to open.
 *
 * Calling sequence (writer: sources/replicate.c; reader: restore/sqlite_pitr.c):
 *	cf_seg_db_key(r, path, db)                  the directory of a database
 *	cf_seg_gen_put(r, db, &gen)                 once per generation, after its base
 *	cf_seg_put(r, db, gen, seq, payload)        per batch (payload: cf_seg_encode)
 *	cf_seg_list(r, db, &list)                   generations with their segment counts
 *	cf_seg_gen_get / cf_seg_get + cf_seg_parse  reading back
 */
#ifndef CF_SEGMENT_H
#define CF_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "repo/repo.h"

#define CF_SEG_DB_HEX 33    /* 32 hex digits + NUL */
#define CF_SEG_GEN_HEX 33
#define CF_SEG_MAGIC "CFSG"
#define CF_SEG_VERSION 1
/* A segment's plaintext is at most this big; a writer splits bigger batches. */
#define CF_SEG_MAX ((size_t)64 << 20)

/* Object types of the two sealed objects (repo.h's enum goes on here). */
#define CF_OBJ_SEGMENT 8
#define CF_OBJ_GENERATION 9

/* One WAL frame of a transaction: page pgno (1-based) gets these bytes. */
struct cf_seg_frame {
	uint32_t pgno;
	const uint8_t *page;  /* page_size bytes, pointing into the parsed payload */
};

/* One committed transaction. */
struct cf_seg_tx {
	int64_t time_ns;      /* when the replicator saw it committed (UTC) */
	uint32_t db_pages;    /* the database's size in pages after it */
	uint32_t nframes;
	struct cf_seg_frame *frames;
};

struct cf_segment {
	char gen[CF_SEG_GEN_HEX];
	uint64_t seq;
	uint32_t page_size;
	size_t ntx;
	struct cf_seg_tx *tx;
};

/* Append the header of a segment (magic, version, gen, seq, page size and a
 * placeholder transaction count) to out. */
int cf_seg_begin(struct cf_buf *out, const char *gen, uint64_t seq, uint32_t page_size);
/* Append one transaction: time, db size, n frames of (pgno, page) where the
 * pages are page_size bytes each, at pages[i * page_size]. */
int cf_seg_add_tx(struct cf_buf *out, int64_t time_ns, uint32_t db_pages, uint32_t n,
		  const uint32_t *pgnos, const uint8_t *pages, uint32_t page_size);
/* Fix the transaction count in the header. */
void cf_seg_finish(struct cf_buf *out, uint32_t ntx);

/* Parse a segment's plaintext (pointers into p, which must outlive seg).
 * CF_ECORRUPT with a message naming what is wrong; CF_ENOMEM.  Release with
 * cf_seg_release.  (The fuzzer's entry point.) */
int cf_seg_parse(const uint8_t *p, size_t n, struct cf_segment *seg);
void cf_seg_release(struct cf_segment *seg);

/* The directory key of the database at abspath in r: 32 hex digits of the
 * HMAC (blob-id key) of "coffer sqlite" NUL abspath. */
int cf_seg_db_key(struct cf_repo *r, const char *abspath, char db[CF_SEG_DB_HEX]);
/* A new generation name for a generation starting at time_ns. */
void cf_seg_gen_new(int64_t time_ns, char gen[CF_SEG_GEN_HEX]);

/* The generation record. */
struct cf_seg_gen {
	char gen[CF_SEG_GEN_HEX];
	char *path;             /* the database's absolute path */
	char *hostname;
	int64_t time_ns;        /* when the base copy was taken */
	uint8_t snapshot[CF_ID_LEN]; /* the snapshot holding the base copy */
	uint32_t page_size;
	char *reason;           /* why it started: "start", "replaced", "wal-reset", "size" */
};
void cf_seg_gen_release(struct cf_seg_gen *g);
int cf_seg_gen_encode(const struct cf_seg_gen *g, struct cf_buf *out);
/* CF_ECORRUPT with a message. */
int cf_seg_gen_decode(const uint8_t *p, size_t n, struct cf_seg_gen *g);

/* Store the generation record sqlite-<db>/<gen>.gen. */
int cf_seg_gen_put(struct cf_repo *r, const char *db, const struct cf_seg_gen *g);
/* Read and decode one (g zeroed by the caller). */
int cf_seg_gen_get(struct cf_repo *r, const char *db, const char *gen, struct cf_seg_gen *g);

/* Compress (zstd at the repository's level), seal and store segment seq of
 * gen: payload is what cf_seg_begin..finish built. */
int cf_seg_put(struct cf_repo *r, const char *db, const char *gen, uint64_t seq,
	       const void *payload, size_t n);
/* Fetch, open and decompress segment seq into out (plaintext, for
 * cf_seg_parse).  CF_ENOENT if missing; CF_ECORRUPT naming it. */
int cf_seg_get(struct cf_repo *r, const char *db, const char *gen, uint64_t seq, struct cf_buf *out);
/* The same open step on stored bytes (tests, golden files). */
int cf_seg_open(struct cf_repo *r, const char *name, const uint8_t *p, size_t n, struct cf_buf *out);

/* What one listing of sqlite-<db>/ shows: each generation, oldest first,
 * with how many segments follow one another from 1 (a gap ends it: the
 * rest is not applied). */
struct cf_seg_listing {
	char gen[CF_SEG_GEN_HEX];
	bool has_record;
	uint64_t nseg;          /* segments 1..nseg are present */
	uint64_t bytes;         /* their stored size */
};
/* One list request.  Caller frees *out with free(). */
int cf_seg_list(struct cf_repo *r, const char *db, struct cf_seg_listing **out, size_t *n);

/* Remove generation gen of db: its record first (so that a removal cut
 * short leaves no shortened generation offered for restore), then every
 * segment of it.  *removed (may be NULL) counts the segments.  The caller
 * holds the exclusive lock and never removes the generation a replicator
 * is writing (the newest).  CF_OK or the store's error. */
int cf_seg_gen_remove(struct cf_repo *r, const char *db, const char *gen, uint64_t *removed);

/* Give up the lock cf_repo_lock() took (the replicator holds a shared lock
 * only while it stores a base copy, so that prune can run meanwhile:
 * prune never touches the sqlite-<db> directories). */
void cf_seg_unlock(struct cf_repo *r);

#endif
