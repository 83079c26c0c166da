/*
 * pack_read.c - the one pack reader (pack_read.h).
 *
 * A read is: cut the wanted blobs of one pack into ranges (pack_ranges),
 * bring each range in (a ranged get into a buffer, a stream that hands the
 * bytes over as they arrive, or, for trees of a remote store, the tree-pack
 * cache), open every blob where it lies in the range and hand it to the
 * caller, in the wants' order.  A blob that fails there is read from another
 * location the index lists it at (other_copy) before it is handed over as
 * failed.
 *
 * Memory: the range buffer and the opened blob are the thread's scratch
 * buffers (struct scratch), reused from read to read: restore and dump read
 * millions of blobs and must not allocate for each.  A read nested in
 * another on the same thread (other_copy, a callback that reads) gets
 * buffers of its own.
 */
#include "repo/pack_read.h"
#include "repo/repo_int.h"
#include "common/array.h"
#include "common/status.h"
#include "common/error.h"
#include "common/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A range covers wanted blobs that lie within RANGE_GAP of each other
 * (reading a small unwanted gap is cheaper than another request), up to a
 * span the caller holds in memory: small locally, where a read costs a
 * system call, larger remotely, where it costs a round trip, and a whole
 * pack or more where the store streams and nothing is held
 * (doc/benchmarks.md). */
#define RANGE_GAP (256u << 10)
#define RANGE_MAX_LOCAL (2u << 20)
#define RANGE_MAX_REMOTE (4u << 20)
#define RANGE_MAX_STREAM (64u << 20)
#define READS_LOCAL 2  /* local reads in flight */
#define READS_REMOTE 6 /* remote requests in flight (the S3 connections' default) */
#define SCRATCH_KEEP (16u << 20) /* a bigger scratch buffer is not kept */

void cf_repo_pack_path(const char *hexid, char *out, size_t outlen)
{
	snprintf(out, outlen, "data/%.2s/%s", hexid, hexid);
}

/* ---- the thread's buffers ---- */

struct scratch {
	struct cf_buf sealed, plain;
	bool busy;
};
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
	struct scratch *s = p;
	cf_buf_release(&s->sealed);
	cf_buf_release(&s->plain);
	free(s);
}
static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

/* The thread's scratch, or NULL when a read on this thread holds it (or
 * memory ran out): the caller then uses buffers of its own. */
static struct scratch *scratch_take(void)
{
	pthread_once(&scratch_once, scratch_init);
	struct scratch *s = pthread_getspecific(scratch_key);
	if (!s) {
		if (!(s = calloc(1, sizeof(*s))) || pthread_setspecific(scratch_key, s)) {
			free(s);
			return NULL;
		}
	}
	if (s->busy)
		return NULL;
	s->busy = true;
	return s;
}

static void trim(struct cf_buf *b)
{
	if (b->cap > SCRATCH_KEEP)
		cf_buf_release(b);
	else
		cf_buf_reset(b);
}

static void scratch_give(struct scratch *s)
{
	if (!s)
		return;
	trim(&s->sealed);
	trim(&s->plain);
	s->busy = false;
}

/* ---- ranges ---- */

/* Wants at one place naming one blob: opened once, handed to each. */
static bool same_blob(const struct cf_pack_want *a, const struct cf_pack_want *b)
{
	return a->offset == b->offset && a->length == b->length && a->type == b->type &&
	       a->flags == b->flags && a->rawlen == b->rawlen &&
	       (a->id == b->id || !memcmp(a->id, b->id, CF_ID_LEN));
}

static uint64_t span_max(struct cf_repo *r, enum cf_pack_span span)
{
	if (span == CF_SPAN_STREAMED && cf_be_streams(r->be))
		return RANGE_MAX_STREAM;
	return cf_be_remote(r->be) ? RANGE_MAX_REMOTE : RANGE_MAX_LOCAL;
}

int cf_repo_pack_ranges(struct cf_repo *r, const struct cf_pack_want *wanted, size_t n,
			enum cf_pack_span span, struct cf_pack_range **out, size_t *nout)
{
	struct cf_pack_range *rg = NULL;
	size_t nr = 0, cap = 0;
	uint64_t max = span_max(r, span);
	int rc;

	*out = NULL;
	*nout = 0;
	for (size_t i = 0; i < n;) {
		uint64_t rs = wanted[i].offset, re = rs + wanted[i].length;
		size_t j = i + 1;
		for (; j < n; j++) {
			const struct cf_pack_want *w = &wanted[j];
			uint64_t we = (uint64_t)w->offset + w->length;
			if (same_blob(w, &wanted[j - 1]))
				continue;
			/* a blob overlapping the range (only in a damaged index)
			 * starts another: a stream hands each byte once */
			if (w->offset < re || w->offset - re > RANGE_GAP || we - rs > max)
				break;
			re = we;
		}
		if ((rc = CF_GROW(rg, nr + 1, cap))) {
			free(rg);
			return rc;
		}
		rg[nr++] = (struct cf_pack_range){ i, j, rs, re - rs };
		i = j;
	}
	*out = rg;
	*nout = nr;
	return CF_OK;
}

bool cf_repo_pack_streams(struct cf_repo *r)
{
	return cf_be_streams(r->be);
}

unsigned cf_repo_read_concurrency(struct cf_repo *r)
{
	return cf_be_remote(r->be) ? READS_REMOTE : READS_LOCAL;
}

/* ---- fetching ---- */

/* rc from a get of pack hex: a missing pack is damage; other failures get
 * the pack's name unless they say it already. */
static int fetch_failed(int rc, const char *hex)
{
	if (rc == CF_ENOENT)
		return cf_err(CF_ECORRUPT, "pack %s is missing", hex);
	if (rc == CF_ENOMEM || rc == CF_EINTR || strstr(cf_errmsg(rc), hex))
		return rc;
	return cf_err_prefix(rc, "pack %s", hex);
}

static int fetch_hex(struct cf_repo *r, const char *hex, uint64_t off, uint64_t len,
		     struct cf_buf *sealed)
{
	char path[CF_PACK_PATH_MAX];
	cf_repo_pack_path(hex, path, sizeof(path));
	int rc = cf_be_get_range(r->be, path, off, (size_t)len, sealed);
	if (rc)
		return fetch_failed(rc, hex);
	if (sealed->len != len)
		return cf_err(CF_ECORRUPT, "pack %s is truncated (%zu bytes read at %llu, %llu wanted)",
			      hex, sealed->len, (unsigned long long)off, (unsigned long long)len);
	return CF_OK;
}

int cf_repo_fetch_range(struct cf_repo *r, const uint8_t pack[CF_ID_LEN],
			const struct cf_pack_range *rg, struct cf_buf *sealed)
{
	char hex[CF_ID_HEX];
	cf_hex(pack, CF_ID_LEN, hex);
	return fetch_hex(r, hex, rg->off, rg->len, sealed);
}

/*
 * Tree packs from a remote store: a backup or restore reads one tree per
 * directory, and a request per tree is a round trip per directory.  Tree
 * packs hold only trees, so the first tree wanted from a pack brings the
 * whole pack in one get and later trees are cut from memory.  The cache
 * keeps whole packs, most recently used first, and drops the least recently
 * used beyond CF_TREE_CACHE_MAX bytes (a bigger pack is used once and not
 * kept).  Every blob is still opened and authenticated as after a ranged
 * read.  A pack's name is fixed by its header, which lists every blob's
 * place, and each blob is authenticated with its id, so a cached pack
 * cannot be stale.  The fetch runs under tc_mu: two threads wanting the
 * same pack cost one get.  A local store reads trees by range (page cache).
 */
void cf_repo_tree_cache_release(struct cf_repo *r)
{
	struct cf_tree_pack *tp = r->tc_head, *next;
	for (; tp; tp = next) {
		next = tp->next;
		cf_buf_release(&tp->bytes);
		free(tp);
	}
	r->tc_head = NULL;
	r->tc_bytes = 0;
}

unsigned long cf_repo_tree_pack_fetches(struct cf_repo *r)
{
	pthread_mutex_lock(&r->tc_mu);
	unsigned long n = r->tc_fetches;
	pthread_mutex_unlock(&r->tc_mu);
	return n;
}

/* Keep tp in front; drop least recently used packs beyond the budget. */
static void tree_cache_insert(struct cf_repo *r, struct cf_tree_pack *tp)
{
	tp->next = r->tc_head;
	r->tc_head = tp;
	r->tc_bytes += tp->bytes.len;
	while (r->tc_bytes > CF_TREE_CACHE_MAX && r->tc_head->next) {
		struct cf_tree_pack **pp = &r->tc_head->next;
		while ((*pp)->next)
			pp = &(*pp)->next;
		r->tc_bytes -= (*pp)->bytes.len;
		cf_buf_release(&(*pp)->bytes);
		free(*pp);
		*pp = NULL;
	}
}

/* Copy bytes [off, off + len) of tree pack hex into sealed, fetching the
 * pack whole if it is not cached. */
static int tree_cache_cut(struct cf_repo *r, const uint8_t pack[CF_ID_LEN], const char *hex,
			  uint64_t off, uint64_t len, struct cf_buf *sealed)
{
	struct cf_tree_pack **pp, *tp = NULL;
	char path[CF_PACK_PATH_MAX];
	bool keep = true;
	int rc;

	pthread_mutex_lock(&r->tc_mu);
	for (pp = &r->tc_head; *pp; pp = &(*pp)->next) {
		if (!memcmp((*pp)->id, pack, CF_ID_LEN)) {
			tp = *pp;
			*pp = tp->next; /* unlinked; inserted again in front */
			r->tc_bytes -= tp->bytes.len;
			break;
		}
	}
	if (!tp) {
		if (!(tp = calloc(1, sizeof(*tp)))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(tp->id, pack, CF_ID_LEN);
		cf_repo_pack_path(hex, path, sizeof(path));
		if ((rc = cf_be_get(r->be, path, &tp->bytes))) {
			rc = fetch_failed(rc, hex);
			cf_buf_release(&tp->bytes); /* a failed get may leave part of it */
			free(tp);
			goto out;
		}
		r->tc_fetches++;
		keep = tp->bytes.len <= CF_TREE_CACHE_MAX;
	}
	if (off + len > tp->bytes.len) {
		rc = cf_err(CF_ECORRUPT, "pack %s is truncated (%zu bytes, blobs at %llu+%llu)", hex,
			    tp->bytes.len, (unsigned long long)off, (unsigned long long)len);
	} else {
		cf_buf_reset(sealed);
		rc = cf_buf_add(sealed, tp->bytes.data + off, (size_t)len);
	}
	if (keep)
		tree_cache_insert(r, tp);
	else {
		cf_buf_release(&tp->bytes);
		free(tp);
	}
out:
	pthread_mutex_unlock(&r->tc_mu);
	return rc;
}

/* ---- opening and handing over ---- */

struct reader {
	struct cf_repo *r;
	const uint8_t *pack;
	char hex[CF_ID_HEX];
	const struct cf_pack_want *w;
	cf_pack_blob_fn fn;
	void *ctx;
	struct cf_buf *plain;   /* the opened blob */
};

static void reader_init(struct reader *d, struct cf_repo *r, const uint8_t pack[CF_ID_LEN],
			const struct cf_pack_want *w, cf_pack_blob_fn fn, void *ctx,
			struct cf_buf *plain)
{
	d->r = r;
	d->pack = pack;
	cf_hex(pack, CF_ID_LEN, d->hex);
	d->w = w;
	d->fn = fn;
	d->ctx = ctx;
	d->plain = plain;
}

static int open_want(struct cf_repo *r, const uint8_t pack[CF_ID_LEN], const struct cf_pack_want *w,
		     const uint8_t *sealed, struct cf_buf *plain)
{
	struct cf_blob_loc loc;
	memcpy(loc.pack, pack, CF_ID_LEN);
	loc.offset = w->offset;
	loc.length = w->length;
	loc.rawlen = w->rawlen;
	loc.flags = w->flags;
	return cf_repo_open_blob(r, w->type, w->id, &loc, sealed, plain);
}

int cf_repo_load_at(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
		    const struct cf_blob_loc *loc, struct cf_buf *out)
{
	struct scratch *s = scratch_take();
	struct cf_buf own = CF_BUF_INIT, *sealed = s ? &s->sealed : &own;
	struct cf_pack_want w = { .id = id, .offset = loc->offset, .length = loc->length,
				  .rawlen = loc->rawlen, .flags = loc->flags, .type = (uint8_t)type };
	char hex[CF_ID_HEX];
	int rc;

	cf_hex(loc->pack, CF_ID_LEN, hex);
	if (type == CF_BLOB_TREE && cf_be_remote(r->be))
		rc = tree_cache_cut(r, loc->pack, hex, loc->offset, loc->length, sealed);
	else
		rc = fetch_hex(r, hex, loc->offset, loc->length, sealed);
	if (!rc) {
		rc = open_want(r, loc->pack, &w, sealed->data, out);
	} else if (rc != CF_ENOMEM && rc != CF_EINTR) {
		char m[CF_STATUS_MSG_MAX], bhex[CF_ID_HEX];
		snprintf(m, sizeof(m), "%s", cf_errmsg(rc));
		cf_hex(id, CF_ID_LEN, bhex);
		rc = cf_err(rc, "%s (blob %.16s)", m, bhex);
	}
	scratch_give(s);
	cf_buf_release(&own);
	return rc;
}

/* A blob that failed in d's pack: read it from another place the index
 * lists it at, into d->plain.  CF_OK, CF_ENOENT when no other copy opened
 * (*tried of them were read), CF_ENOMEM or CF_EINTR. */
static int other_copy(struct reader *d, const struct cf_pack_want *w, unsigned *tried)
{
	struct cf_blob_loc loc;
	*tried = 0;
	for (unsigned k = 0;; k++) {
		if (cf_repo_lookup_nth(d->r, w->type, w->id, k, &loc)) {
			cf_err_clear();
			return CF_ENOENT;
		}
		if (!memcmp(loc.pack, d->pack, CF_ID_LEN))
			continue;
		(*tried)++;
		int rc = cf_repo_load_at(d->r, w->type, w->id, &loc, d->plain);
		if (rc == CF_OK || rc == CF_ENOMEM || rc == CF_EINTR)
			return rc;
		cf_err_clear();
	}
}

/* Hand the opened blob (rc CF_OK, in d->plain) or the failure rc (message
 * msg) to every want of the group at *k, moving *k past it. */
static int deliver(struct reader *d, size_t *k, size_t end, int rc, const char *msg)
{
	const struct cf_pack_want *first = &d->w[*k];
	do {
		int frc;
		if (rc) {
			cf_err(rc, "%s", msg); /* again for each: fn may set its own */
			frc = d->fn(&d->w[*k], rc, NULL, 0, d->ctx);
		} else {
			frc = d->fn(&d->w[*k], CF_OK, d->plain->data, d->plain->len, d->ctx);
		}
		(*k)++;
		if (frc)
			return frc;
	} while (*k < end && same_blob(&d->w[*k], first));
	return CF_OK;
}

/* The group at *k failed with rc (message: the thread's, or msg when not
 * NULL, then naming the blob): try another copy, then hand it over. */
static int fail_group(struct reader *d, size_t *k, size_t end, int rc, const char *msg)
{
	const struct cf_pack_want *w = &d->w[*k];
	char m[CF_STATUS_MSG_MAX], bhex[CF_ID_HEX];
	unsigned tried = 0;

	cf_hex(w->id, CF_ID_LEN, bhex);
	if (msg)
		snprintf(m, sizeof(m), "%s (blob %.16s)", msg, bhex);
	else
		snprintf(m, sizeof(m), "%s", cf_errmsg(rc));
	if (rc != CF_ENOMEM && rc != CF_EINTR) {
		int orc = other_copy(d, w, &tried);
		if (orc == CF_OK)
			return deliver(d, k, end, CF_OK, NULL);
		if (orc == CF_EINTR)
			return orc;
		if (orc == CF_ENOMEM)
			rc = orc, snprintf(m, sizeof(m), "%s", cf_errmsg(orc));
		else if (tried) {
			size_t l = strlen(m);
			snprintf(m + l, sizeof(m) - l, " (and the %u other copies of blob %.16s failed too)",
				 tried, bhex);
		}
	}
	return deliver(d, k, end, rc, m);
}

/* Open the group at *k from its sealed bytes and hand it over. */
static int open_group(struct reader *d, size_t *k, size_t end, const uint8_t *sealed)
{
	int rc = open_want(d->r, d->pack, &d->w[*k], sealed, d->plain);
	if (rc)
		return fail_group(d, k, end, rc, NULL);
	return deliver(d, k, end, CF_OK, NULL);
}

/* Open the wants of rg from sealed, the range's bytes (or fail each with
 * frc, message fmsg). */
static int open_held(struct reader *d, const struct cf_pack_range *rg, const struct cf_buf *sealed,
		     int frc, const char *fmsg)
{
	int rc = CF_OK;
	for (size_t k = rg->first; k < rg->end && !rc;) {
		const struct cf_pack_want *w = &d->w[k];
		if (cf_interrupted)
			return cf_err(CF_EINTR, "interrupted");
		if (frc)
			rc = fail_group(d, &k, rg->end, frc, fmsg);
		else if (w->offset < rg->off || w->offset + (uint64_t)w->length > rg->off + sealed->len) {
			char m[256];
			snprintf(m, sizeof(m), "pack %s: blob at %u+%u is outside the bytes read", d->hex,
				 w->offset, w->length);
			rc = fail_group(d, &k, rg->end, CF_ECORRUPT, m);
		} else
			rc = open_group(d, &k, rg->end, sealed->data + (w->offset - rg->off));
	}
	return rc;
}

int cf_repo_open_range(struct cf_repo *r, const uint8_t pack[CF_ID_LEN],
		       const struct cf_pack_want *wanted, const struct cf_pack_range *rg,
		       const struct cf_buf *sealed, int fetch_rc, const char *fetch_msg,
		       cf_pack_blob_fn fn, void *ctx)
{
	struct scratch *s = scratch_take();
	struct cf_buf own = CF_BUF_INIT;
	struct reader d;
	char m[CF_STATUS_MSG_MAX];

	if (fetch_rc) { /* kept before anything else sets the thread's message */
		snprintf(m, sizeof(m), "%s", fetch_msg ? fetch_msg : cf_errmsg(fetch_rc));
		fetch_msg = m;
	}
	reader_init(&d, r, pack, wanted, fn, ctx, s ? &s->plain : &own);
	int rc = open_held(&d, rg, sealed, fetch_rc, fetch_msg);
	scratch_give(s);
	cf_buf_release(&own);
	return rc;
}

/* ---- streaming ---- */

struct stream {
	struct reader *d;
	const struct cf_pack_range *rg;
	size_t k;               /* the want whose blob comes next */
	uint64_t pos;           /* pack offset of the next byte to arrive */
	struct cf_buf *sealed;  /* the part of that blob arrived so far */
	int fn_rc;              /* the callback's stop */
};

/* The range's next n bytes: into the blob they belong to, gaps skipped;
 * each blob opened and handed over once its last byte is there. */
static int stream_bytes(const uint8_t *p, size_t n, void *ctx)
{
	struct stream *s = ctx;
	if (cf_interrupted)
		return cf_err(CF_EINTR, "interrupted");
	while (n && s->k < s->rg->end) {
		const struct cf_pack_want *w = &s->d->w[s->k];
		uint64_t bs = w->offset, be = bs + w->length, take;
		const uint8_t *whole = NULL;
		int rc;
		if (s->pos < bs) { /* a gap between wanted blobs */
			take = bs - s->pos < n ? bs - s->pos : n;
		} else {
			take = be - s->pos < n ? be - s->pos : n;
			if (s->pos == bs && take == w->length)
				whole = p; /* all of it in this piece: no copy */
			else if ((rc = cf_buf_add(s->sealed, p, (size_t)take)))
				return rc;
		}
		s->pos += take, p += take, n -= (size_t)take;
		if (s->pos == be) {
			rc = open_group(s->d, &s->k, s->rg->end, whole ? whole : s->sealed->data);
			cf_buf_reset(s->sealed);
			if (rc)
				return s->fn_rc = rc;
		}
	}
	return CF_OK;
}

static int read_streamed(struct reader *d, const struct cf_pack_range *rg, struct cf_buf *sealed)
{
	struct stream s = { d, rg, rg->first, rg->off, sealed, CF_OK };
	char path[CF_PACK_PATH_MAX];
	cf_repo_pack_path(d->hex, path, sizeof(path));
	cf_buf_reset(sealed);
	int rc = cf_be_get_range_stream(d->r->be, path, rg->off, (size_t)rg->len, stream_bytes, &s);
	if (s.fn_rc)
		return s.fn_rc;
	if (rc == CF_EINTR)
		return rc;
	if (rc)
		rc = fetch_failed(rc, d->hex);
	else if (s.k < rg->end)
		rc = cf_err(CF_ECORRUPT, "pack %s is truncated (the read of %llu bytes at %llu ended "
			    "early)", d->hex, (unsigned long long)rg->len, (unsigned long long)rg->off);
	if (!rc)
		return CF_OK;
	/* the blobs that did not arrive fail with the read's error */
	char m[CF_STATUS_MSG_MAX];
	snprintf(m, sizeof(m), "%s", cf_errmsg(rc));
	while (s.k < rg->end) {
		int frc = fail_group(d, &s.k, rg->end, rc, m);
		if (frc)
			return frc;
	}
	return CF_OK;
}

/* ---- one call per pack ---- */

int cf_repo_read_pack(struct cf_repo *r, const uint8_t pack[CF_ID_LEN],
		      const struct cf_pack_want *wanted, size_t n, cf_pack_blob_fn fn, void *ctx)
{
	struct scratch *s = scratch_take();
	struct cf_buf own_sealed = CF_BUF_INIT, own_plain = CF_BUF_INIT;
	struct cf_buf *sealed = s ? &s->sealed : &own_sealed;
	struct cf_pack_range *rg = NULL, whole;
	size_t nr = 0;
	struct reader d;
	int rc = CF_OK;

	if (!n)
		goto out;
	reader_init(&d, r, pack, wanted, fn, ctx, s ? &s->plain : &own_plain);
	bool trees = wanted[0].type == CF_BLOB_TREE && cf_be_remote(r->be);
	if (trees) {
		/* the tree-pack cache has the whole pack: one range */
		uint64_t end = 0;
		for (size_t i = 0; i < n; i++)
			if (wanted[i].offset + (uint64_t)wanted[i].length > end)
				end = wanted[i].offset + (uint64_t)wanted[i].length;
		whole = (struct cf_pack_range){ 0, n, wanted[0].offset, end - wanted[0].offset };
		rg = &whole;
		nr = 1;
	} else if ((rc = cf_repo_pack_ranges(r, wanted, n, CF_SPAN_STREAMED, &rg, &nr))) {
		goto out;
	}
	bool streams = !trees && cf_be_streams(r->be);
	for (size_t i = 0; i < nr && !rc; i++) {
		if (cf_interrupted) {
			rc = cf_err(CF_EINTR, "interrupted");
			break;
		}
		if (streams) {
			rc = read_streamed(&d, &rg[i], sealed);
			continue;
		}
		int frc = trees ? tree_cache_cut(r, pack, d.hex, rg[i].off, rg[i].len, sealed)
				: fetch_hex(r, d.hex, rg[i].off, rg[i].len, sealed);
		if (frc == CF_EINTR) {
			rc = frc;
			break;
		}
		char m[CF_STATUS_MSG_MAX];
		if (frc) /* kept: handing over the failures sets other messages */
			snprintf(m, sizeof(m), "%s", cf_errmsg(frc));
		rc = open_held(&d, &rg[i], sealed, frc, frc ? m : NULL);
	}
	if (rg != &whole)
		free(rg);
out:
	scratch_give(s);
	cf_buf_release(&own_sealed);
	cf_buf_release(&own_plain);
	return rc;
}

/* ---- whole packs ---- */

int cf_repo_read_pack_all(struct cf_repo *r, const uint8_t pack[CF_ID_LEN], unsigned flags,
			  cf_pack_pick_fn pick, cf_pack_item_fn fn, void *ctx, size_t *fetched)
{
	struct scratch *s = scratch_take();
	struct cf_buf b = CF_BUF_INIT, own = CF_BUF_INIT, *plain = s ? &s->plain : &own;
	struct cf_pack_entry *e = NULL;
	char hex[CF_ID_HEX], path[CF_PACK_PATH_MAX];
	uint8_t h[CF_ID_LEN];
	size_t n = 0;
	int rc;

	if (fetched)
		*fetched = 0;
	cf_hex(pack, CF_ID_LEN, hex);
	cf_repo_pack_path(hex, path, sizeof(path));
	if ((rc = cf_be_get(r->be, path, &b))) {
		rc = fetch_failed(rc, hex);
		goto out;
	}
	if (fetched)
		*fetched = b.len;
	if ((flags & CF_PACK_VERIFY_NAME) && (rc = cf_pack_name(r, b.data, b.len, h))) {
		rc = cf_err_prefix(rc, "pack %s is damaged", hex);
		goto out;
	}
	if ((flags & CF_PACK_VERIFY_NAME) && memcmp(h, pack, CF_ID_LEN)) {
		rc = cf_err(CF_ECORRUPT, "pack %s is damaged: its contents do not match its name", hex);
		goto out;
	}
	if ((rc = cf_pack_parse(r, b.data, b.len, &e, &n))) {
		if (rc != CF_ENOMEM)
			rc = cf_err_prefix(rc, "pack %s is damaged", hex);
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		if (pick && !pick(&e[i], ctx))
			continue;
		if (cf_interrupted) {
			rc = cf_err(CF_EINTR, "interrupted");
			break;
		}
		struct cf_pack_want w = { .id = e[i].id, .offset = e[i].offset, .length = e[i].length,
					  .rawlen = e[i].rawlen, .flags = e[i].flags, .type = e[i].type };
		struct cf_pack_item it = { &e[i], b.data + e[i].offset, CF_OK, NULL, 0 };
		if ((it.rc = open_want(r, pack, &w, it.sealed, plain)) == CF_OK) {
			it.plain = plain->data;
			it.n = plain->len;
		}
		rc = fn(&it, ctx);
	}
out:
	free(e);
	cf_buf_release(&b);
	scratch_give(s);
	cf_buf_release(&own);
	return rc;
}
