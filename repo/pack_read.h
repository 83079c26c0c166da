/*
 * pack_read.h - the one way to read blobs out of packs.
 *
 * Every reader of pack bytes goes through here: blob loading, the tree-pack
 * cache, check --read-data, prune's repack, restore.  Only repo/ knows where
 * a pack is stored and how to ask the store for it (restic's
 * repository.StreamPack: its restorer only schedules).
 *
 * A caller names the blobs it wants from one pack (what the index says of
 * them, sorted by offset).  The reader cuts them into ranges: runs of wanted
 * blobs whose gaps are small enough that reading the gap is cheaper than
 * another request, up to a span the caller's memory can hold, both chosen
 * from the store's capabilities (a local read costs a system call, a remote
 * one a round trip; a store that streams needs no buffer for the range).  It
 * reads each range (streaming where the store streams, a broken transfer
 * resumed by the store), opens every blob (decrypt, decompress, verify its
 * id) and hands it to the callback in offset order.  Wants with the same
 * offset share one opening: the callback is called for each.
 *
 * A blob that fails where the index put it is read from another place the
 * index lists it at (a replayed index, a second writer's copy), if any.  A
 * blob that still fails is handed to the callback with its error, whose
 * message names the pack and the blob; a pack the store does not have is
 * CF_ECORRUPT "pack <id> is missing".
 *
 * Three ways to use it:
 *   cf_repo_read_pack()             plan, read and open: one call per pack.
 *   cf_repo_pack_ranges(),          the same in steps, for a scheduler that
 *   cf_repo_fetch_range(),          reads ahead in some threads and opens in
 *   cf_repo_open_range()            others (restore on a local store).
 *   cf_repo_read_pack_all()         a whole pack, every entry of its header
 *                                   (check --read-data, prune's repack).
 * cf_repo_read_concurrency() says how many reads should run at once.
 *
 * Thread-safety: every function may be called from several threads at once
 * for different packs or ranges.
 */
#ifndef CF_PACK_READ_H
#define CF_PACK_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "repo/repo.h"

/* A blob wanted from a pack: where the index says it is. */
struct cf_pack_want {
	const uint8_t *id;        /* CF_ID_LEN bytes, the caller's */
	uint32_t offset, length;  /* sealed bytes in the pack */
	uint32_t rawlen;          /* as in struct cf_blob_loc */
	uint8_t flags;
	uint8_t type;             /* CF_BLOB_DATA or CF_BLOB_TREE */
	void *arg;                /* the caller's, handed back */
};

/* Called once per want, in the wants' order (offset order): rc CF_OK and
 * the opened blob in plain[0..n), valid until the callback returns; or rc
 * an error (the thread's message names the pack and the blob) and plain
 * NULL.  A non-zero return stops the read, which returns that value. */
typedef int (*cf_pack_blob_fn)(const struct cf_pack_want *w, int rc, const uint8_t *plain,
			       size_t n, void *ctx);

/* How a caller's memory limits a range. */
enum cf_pack_span {
	CF_SPAN_HELD,     /* the caller holds a whole range in memory at once */
	CF_SPAN_STREAMED, /* streamed where the store streams, else as HELD */
};

/* Read wanted[0..n) of pack (sorted by offset; equal offsets allowed) and
 * hand every blob to fn.  Returns CF_OK when each want was handed to fn
 * (failed ones with their error), fn's non-zero return, or CF_EINTR when
 * interrupted.  Memory: one range (or, streamed, one sealed and one opened
 * blob). */
int cf_repo_read_pack(struct cf_repo *r, const uint8_t pack[CF_ID_LEN],
		      const struct cf_pack_want *wanted, size_t n, cf_pack_blob_fn fn, void *ctx);

/* wants [first, end) of one pack, read together: bytes [off, off + len). */
struct cf_pack_range {
	size_t first, end;
	uint64_t off, len;
};

/* Cut wanted[0..n) (sorted by offset) into ranges for this store and span:
 * *out (caller frees with free()) gets *nout ranges covering every want, in
 * order.  CF_OK or CF_ENOMEM. */
int cf_repo_pack_ranges(struct cf_repo *r, const struct cf_pack_want *wanted, size_t n,
			enum cf_pack_span span, struct cf_pack_range **out, size_t *nout);

/* Whether ranges of CF_SPAN_STREAMED are streamed (the store streams):
 * then read them with cf_repo_read_pack(), not fetch + open. */
bool cf_repo_pack_streams(struct cf_repo *r);

/* The sealed bytes of one range into sealed (replaced).  CF_OK, or an error
 * naming the pack (a missing pack is CF_ECORRUPT "pack <id> is missing"). */
int cf_repo_fetch_range(struct cf_repo *r, const uint8_t pack[CF_ID_LEN],
			const struct cf_pack_range *rg, struct cf_buf *sealed);

/* Open the blobs of a fetched range and hand them to fn as
 * cf_repo_read_pack() does.  fetch_rc is what cf_repo_fetch_range()
 * returned, with its message (pass the message in fetch_msg, since the
 * fetch may have run in another thread; NULL: the thread's own): when it is
 * not CF_OK every want fails with it (after trying another copy).  Returns
 * as cf_repo_read_pack(). */
int cf_repo_open_range(struct cf_repo *r, const uint8_t pack[CF_ID_LEN],
		       const struct cf_pack_want *wanted, const struct cf_pack_range *rg,
		       const struct cf_buf *sealed, int fetch_rc, const char *fetch_msg,
		       cf_pack_blob_fn fn, void *ctx);

/* One entry of a whole pack (cf_repo_read_pack_all), in the header's order:
 * the entry, its sealed bytes in the pack, and the opened blob (rc CF_OK,
 * plain[0..n), valid until the callback returns) or rc the error, the
 * thread's message naming the pack and the blob. */
struct cf_pack_item {
	const struct cf_pack_entry *e;
	const uint8_t *sealed;    /* e->length bytes */
	int rc;
	const uint8_t *plain;
	size_t n;
};
/* Whether to open and hand over this entry (NULL: every entry). */
typedef bool (*cf_pack_pick_fn)(const struct cf_pack_entry *e, void *ctx);
/* Called for each entry picked; a non-zero return stops the read, which
 * returns that value. */
typedef int (*cf_pack_item_fn)(const struct cf_pack_item *it, void *ctx);

/* cf_repo_read_pack_all flags: the pack's bytes must have its name
 * (cf_pack_name; format 1 and 2 hash the whole pack). */
#define CF_PACK_VERIFY_NAME 1u

/* Fetch the whole of pack (check --read-data, prune's repack), verify its
 * header (and its name with CF_PACK_VERIFY_NAME), and hand every entry that
 * pick takes to fn with its blob opened.  No other copy is tried: the pack
 * is what is read.  Returns CF_OK, fn's non-zero return, CF_EINTR, or the
 * pack's failure: the get's ("pack <id> is missing", CF_ECORRUPT, for a
 * missing one; the message names the pack), or CF_ECORRUPT "pack <id> is
 * damaged: ..." for a pack whose name or header is wrong.  *fetched (may
 * be NULL) is the pack's size once it was fetched, else 0.  Memory: the
 * whole pack and one opened blob. */
int cf_repo_read_pack_all(struct cf_repo *r, const uint8_t pack[CF_ID_LEN], unsigned flags,
			  cf_pack_pick_fn pick, cf_pack_item_fn fn, void *ctx, size_t *fetched);

/* How many reads (cf_repo_read_pack or fetch) should run at once for this
 * store: 2 for a local directory, the connection count for a remote one. */
unsigned cf_repo_read_concurrency(struct cf_repo *r);

#endif
