/*
 * test_pack_read - the one pack reader (repo/pack_read.h) on a real local
 * repository: how wanted blobs are cut into ranges (gaps, spans, equal and
 * overlapping offsets), how many reads a set of wants costs, callbacks in
 * offset order with equal offsets sharing one opening, a failed get (the
 * fault backend) failing every blob of its range with the pack named, a
 * missing pack, the other-copy fallback, the fetch-then-open steps,
 * streaming through a store that hands bytes over in small pieces and
 * breaks off mid-way, trees of a remote store (one get per tree pack), and
 * whole packs (check --read-data, prune's repack).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "repo/pack_read.h"
#include "repo/repo_int.h"
#include "store/backend.h"
#include "testutil.h"

#define PW "correct horse"
#define NBLOBS 40
#define BLOB (64u << 10)

struct fixture {
	char dir[64];
	uint8_t ids[NBLOBS][CF_ID_LEN];
};

/* blob i: BLOB bytes, less i (blobs of different lengths) */
static size_t blob_len(int i) { return BLOB - (size_t)i * 7; }

/* Saves the NBLOBS blobs of the fixture (their ids in f->ids), flushed:
 * incompressible data blobs in one pack. */
static void save_blobs(struct cf_repo *r, struct fixture *f)
{
	uint8_t *b = malloc(BLOB);
	assert_non_null(b);
	for (int i = 0; i < NBLOBS; i++) {
		fill_xorshift(b, blob_len(i), (uint64_t)i + 1);
		assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, b, blob_len(i), f->ids[i], NULL, NULL),
				 CF_OK);
	}
	free(b);
	assert_int_equal(cf_repo_flush(r), CF_OK);
}

/* A repository with NBLOBS incompressible data blobs in one pack. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	make_tmpdir(f->dir, sizeof(f->dir), "/tmp/cf-test-packread.XXXXXX");
	struct cf_backend *be;
	assert_int_equal(cf_backend_local_new(f->dir, &be), CF_OK);
	struct cf_repo *r = init_cheap(be, PW, -1);
	save_blobs(r, f);
	cf_repo_free(r);
	unsetenv("COFFER_FAULTS");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rm_tree(f->dir);
	free(f);
	unsetenv("COFFER_FAULTS");
	return 0;
}

/* ---- a store that counts pack reads and can stream ---- */

struct probe {
	FWD_HEAD;
	int ranges, streams, gets, allgets;
	size_t piece;       /* streaming: bytes handed over per call */
	long break_after;   /* streaming: bytes handed over before the transfer breaks (-1: never) */
};
#define PB(be) ((struct probe *)(be))

static int p_get(struct cf_backend *be, const char *p, struct cf_buf *out)
{
	__atomic_add_fetch(&PB(be)->allgets, 1, __ATOMIC_SEQ_CST);
	if (!strncmp(p, "data/", 5))
		__atomic_add_fetch(&PB(be)->gets, 1, __ATOMIC_SEQ_CST);
	return cf_be_get(PB(be)->inner, p, out);
}
static int p_get_range(struct cf_backend *be, const char *p, uint64_t off, size_t n, struct cf_buf *out)
{
	__atomic_add_fetch(&PB(be)->allgets, 1, __ATOMIC_SEQ_CST);
	if (!strncmp(p, "data/", 5))
		__atomic_add_fetch(&PB(be)->ranges, 1, __ATOMIC_SEQ_CST);
	return cf_be_get_range(PB(be)->inner, p, off, n, out);
}
static int p_get_range_stream(struct cf_backend *be, const char *p, uint64_t off, size_t n,
			      cf_stream_fn fn, void *ctx)
{
	struct probe *pb = PB(be);
	struct cf_buf b = CF_BUF_INIT;
	__atomic_add_fetch(&pb->streams, 1, __ATOMIC_SEQ_CST);
	if (!pb->piece) /* the inner store's own stream */
		return cf_be_get_range_stream(pb->inner, p, off, n, fn, ctx);
	int rc = cf_be_get_range(pb->inner, p, off, n, &b);
	for (size_t at = 0; !rc && at < b.len;) {
		size_t k = b.len - at < pb->piece ? b.len - at : pb->piece;
		if (pb->break_after >= 0 && at + k > (size_t)pb->break_after)
			k = (size_t)pb->break_after - at;
		if (k)
			rc = fn(b.data + at, k, ctx);
		at += k;
		if (!rc && pb->break_after >= 0 && at == (size_t)pb->break_after)
			rc = cf_err(CF_EIO, "the connection broke off");
	}
	cf_buf_release(&b);
	return rc;
}
static const struct cf_backend_ops probe_ops = {
	.name = "probe", .create = fwd_create, .put = fwd_put, .get = p_get, .get_range = p_get_range,
	.stat = fwd_stat, .list = fwd_list, .remove = fwd_remove, .free = fwd_free,
	.get_range_stream = p_get_range_stream,
};

static struct probe *probe_new(const char *location, unsigned caps)
{
	struct probe *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	fwd_open(&p->fwd, location, &probe_ops, caps);
	p->piece = 1000;
	p->break_after = -1;
	return p;
}

static struct cf_repo *open_on(struct cf_backend *be)
{
	struct cf_repo *r = NULL;
	int rc = cf_repo_open(be, PW, strlen(PW), &r);
	if (rc)
		fail_msg("open: %s", cf_errmsg(rc));
	assert_int_equal(cf_repo_load_index(r), CF_OK);
	return r;
}

/* ---- wants ---- */

static int want_cmp(const void *a, const void *b)
{
	const struct cf_pack_want *x = a, *y = b;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return (char *)x->arg < (char *)y->arg ? -1 : (char *)x->arg > (char *)y->arg;
}

/* Where blob id lies in pack (which may be any of its locations). */
static void loc_in(struct cf_repo *r, const uint8_t *id, const uint8_t pack[CF_ID_LEN],
		   struct cf_blob_loc *loc)
{
	for (unsigned k = 0; cf_repo_lookup_nth(r, CF_BLOB_DATA, id, k, loc) == CF_OK; k++)
		if (!memcmp(loc->pack, pack, CF_ID_LEN))
			return;
	fail_msg("blob not in the pack");
}

/* The wants for every every-th blob of the pack of blob 0 in pack order
 * (each dup times), sorted by offset; arg is the blob number, plus NBLOBS
 * for each repeat.  That pack into pack. */
static size_t make_wants(struct cf_repo *r, struct fixture *f, int every, int dup,
			 struct cf_pack_want *w, uint8_t pack[CF_ID_LEN])
{
	struct cf_pack_want all[NBLOBS];
	struct cf_blob_loc loc;
	size_t n = 0;
	assert_int_equal(cf_repo_lookup(r, CF_BLOB_DATA, f->ids[0], &loc), CF_OK);
	memcpy(pack, loc.pack, CF_ID_LEN);
	for (int i = 0; i < NBLOBS; i++) {
		loc_in(r, f->ids[i], pack, &loc);
		all[i] = (struct cf_pack_want){ .id = f->ids[i], .offset = loc.offset,
						.length = loc.length, .rawlen = loc.rawlen,
						.flags = loc.flags, .type = CF_BLOB_DATA,
						.arg = (void *)(intptr_t)i };
	}
	qsort(all, NBLOBS, sizeof(*all), want_cmp);
	for (int i = 0; i < NBLOBS; i += every)
		for (int d = 0; d < dup; d++) {
			w[n] = all[i];
			w[n++].arg = (void *)((intptr_t)all[i].arg + d * NBLOBS);
		}
	qsort(w, n, sizeof(*w), want_cmp);
	return n;
}

/* what the callback saw */
struct seen {
	size_t n, ok;
	int arg[4 * NBLOBS];
	int rc[4 * NBLOBS];
	const uint8_t *plain[4 * NBLOBS];
	char msg[4 * NBLOBS][256];
	uint32_t last_off;
	int stop_at;        /* return 1 at this call (-1: never) */
};

static int record(const struct cf_pack_want *w, int rc, const uint8_t *plain, size_t n, void *ctx)
{
	struct seen *s = ctx;
	int i = (int)(intptr_t)w->arg % NBLOBS;
	assert_true(s->n < 4 * NBLOBS);
	assert_true(w->offset >= s->last_off); /* offset order */
	s->last_off = w->offset;
	s->arg[s->n] = (int)(intptr_t)w->arg;
	s->rc[s->n] = rc;
	s->plain[s->n] = plain;
	if (rc) {
		assert_null(plain);
		snprintf(s->msg[s->n], sizeof(s->msg[0]), "%s", cf_errmsg(rc));
	} else {
		uint8_t *want = malloc(BLOB);
		assert_non_null(want);
		fill_xorshift(want, blob_len(i), (uint64_t)i + 1);
		assert_int_equal(n, blob_len(i));
		assert_memory_equal(plain, want, n);
		free(want);
		s->ok++;
	}
	if ((int)s->n++ == s->stop_at)
		return 1;
	return 0;
}

/* as record, without knowing the blobs' contents: each opened */
static int record_any(const struct cf_pack_want *w, int rc, const uint8_t *plain, size_t n, void *ctx)
{
	struct seen *s = ctx;
	(void)plain;
	(void)n;
	assert_true(w->offset >= s->last_off);
	s->last_off = w->offset;
	s->rc[s->n++] = rc;
	if (!rc)
		s->ok++;
	return 0;
}

static void seen_init(struct seen *s)
{
	memset(s, 0, sizeof(*s));
	s->stop_at = -1;
}

/* ---- tests ---- */

/* Ranges from made-up wants: gaps, spans, equal and overlapping offsets. */
static void test_ranges_cut(void **state)
{
	struct fixture *f = *state;
	uint8_t a[CF_ID_LEN] = { 1 }, b[CF_ID_LEN] = { 2 };
	struct cf_pack_range *rg = NULL;
	size_t nr;

	struct probe *local = probe_new(f->dir, 0);
	struct cf_repo *r = open_on(&local->base);
	/* 0+1000, 1100+1000 (small gap), same again, 300 KiB further (gap too big) */
	struct cf_pack_want w[] = {
		{ .id = a, .offset = 0, .length = 1000 },
		{ .id = b, .offset = 1100, .length = 1000 },
		{ .id = b, .offset = 1100, .length = 1000 },
		{ .id = a, .offset = 2100 + (300u << 10), .length = 1000 },
		/* overlapping the one before (a damaged index): a range of its own */
		{ .id = b, .offset = 2600 + (300u << 10), .length = 1000 },
	};
	assert_int_equal(cf_repo_pack_ranges(r, w, 5, CF_SPAN_HELD, &rg, &nr), CF_OK);
	assert_int_equal(nr, 3);
	assert_int_equal(rg[0].first, 0);
	assert_int_equal(rg[0].end, 3);
	assert_int_equal(rg[0].off, 0);
	assert_int_equal(rg[0].len, 2100);
	assert_int_equal(rg[1].first, 3);
	assert_int_equal(rg[1].end, 4);
	assert_int_equal(rg[1].off, 2100 + (300u << 10));
	assert_int_equal(rg[2].first, 4);
	assert_int_equal(rg[2].end, 5);
	free(rg);
	assert_int_equal(cf_repo_pack_ranges(r, w, 0, CF_SPAN_HELD, &rg, &nr), CF_OK);
	assert_int_equal(nr, 0);
	free(rg);

	/* 1 MiB blobs back to back: 2 to a local range, also when streamed
	 * (a local store does not stream) */
	struct cf_pack_want big[16];
	for (int i = 0; i < 16; i++)
		big[i] = (struct cf_pack_want){ .id = a, .offset = (uint32_t)i << 20, .length = 1u << 20 };
	assert_int_equal(cf_repo_pack_ranges(r, big, 16, CF_SPAN_HELD, &rg, &nr), CF_OK);
	assert_int_equal(nr, 8);
	free(rg);
	assert_int_equal(cf_repo_pack_ranges(r, big, 16, CF_SPAN_STREAMED, &rg, &nr), CF_OK);
	assert_int_equal(nr, 8);
	free(rg);
	assert_false(cf_repo_pack_streams(r));
	assert_int_equal(cf_repo_read_concurrency(r), 2);
	cf_repo_free(r);

	/* remote: 4 to a range held, all 16 streamed */
	struct probe *remote = probe_new(f->dir, CF_BE_REMOTE | CF_BE_STREAMS);
	r = open_on(&remote->base);
	assert_int_equal(cf_repo_pack_ranges(r, big, 16, CF_SPAN_HELD, &rg, &nr), CF_OK);
	assert_int_equal(nr, 4);
	free(rg);
	assert_int_equal(cf_repo_pack_ranges(r, big, 16, CF_SPAN_STREAMED, &rg, &nr), CF_OK);
	assert_int_equal(nr, 1);
	assert_int_equal(rg[0].len, 16u << 20);
	free(rg);
	assert_true(cf_repo_pack_streams(r));
	assert_int_equal(cf_repo_read_concurrency(r), 6);
	cf_repo_free(r);
}

/* Every blob, every fifth (gaps over the limit), each twice: the reads
 * are the ranges, the callbacks come in offset order, both wants of a blob
 * get the same opening. */
static void test_read_coalesced(void **state)
{
	struct fixture *f = *state;
	struct cf_pack_want w[2 * NBLOBS];
	struct cf_pack_range *rg = NULL;
	uint8_t pack[CF_ID_LEN];
	struct seen *s = malloc(sizeof(*s));
	size_t nr;
	assert_non_null(s);

	struct probe *pb = probe_new(f->dir, 0);
	struct cf_repo *r = open_on(&pb->base);

	/* all 40 (2.5 MiB, no gaps): 2 MiB local ranges, 2 reads */
	size_t n = make_wants(r, f, 1, 1, w, pack);
	assert_int_equal(n, NBLOBS);
	assert_int_equal(cf_repo_pack_ranges(r, w, n, CF_SPAN_HELD, &rg, &nr), CF_OK);
	assert_int_equal(nr, 2);
	free(rg);
	seen_init(s);
	pb->ranges = 0;
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(pb->ranges, 2);
	assert_int_equal(s->n, NBLOBS);
	assert_int_equal(s->ok, NBLOBS);

	/* every sixth: gaps of 5 blobs (over 256 KiB), a read each */
	n = make_wants(r, f, 6, 1, w, pack);
	assert_int_equal(n, 7);
	seen_init(s);
	pb->ranges = 0;
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(pb->ranges, 7);
	assert_int_equal(s->ok, 7);

	/* every second: gaps of one blob are read through */
	n = make_wants(r, f, 2, 1, w, pack);
	assert_int_equal(cf_repo_pack_ranges(r, w, n, CF_SPAN_HELD, &rg, &nr), CF_OK);
	free(rg);
	assert_true(nr <= 2);
	seen_init(s);
	pb->ranges = 0;
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(pb->ranges, (int)nr);

	/* each twice: in offset order, equal offsets share the opened blob */
	n = make_wants(r, f, 1, 2, w, pack);
	assert_int_equal(n, 2 * NBLOBS);
	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(s->ok, 2 * NBLOBS);
	for (size_t i = 0; i < n; i += 2) {
		assert_int_equal(s->arg[i] % NBLOBS, s->arg[i + 1] % NBLOBS);
		assert_int_equal(s->arg[i], (int)(intptr_t)w[i].arg); /* the wants' order */
		assert_ptr_equal(s->plain[i], s->plain[i + 1]);
	}

	/* the same in steps, as a scheduler would: fetch each range, then open */
	struct cf_buf sealed = CF_BUF_INIT;
	assert_int_equal(cf_repo_pack_ranges(r, w, n, CF_SPAN_HELD, &rg, &nr), CF_OK);
	seen_init(s);
	pb->ranges = 0;
	for (size_t i = 0; i < nr; i++) {
		int frc = cf_repo_fetch_range(r, pack, &rg[i], &sealed);
		assert_int_equal(frc, CF_OK);
		assert_int_equal(sealed.len, rg[i].len);
		assert_int_equal(cf_repo_open_range(r, pack, w, &rg[i], &sealed, frc, NULL, record, s), CF_OK);
	}
	assert_int_equal(pb->ranges, (int)nr);
	assert_int_equal(s->ok, 2 * NBLOBS);
	free(rg);
	cf_buf_release(&sealed);

	/* a callback's non-zero return stops the read with that value */
	seen_init(s);
	s->stop_at = 3;
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), 1);
	assert_int_equal(s->n, 4);
	cf_repo_free(r);
	free(s);
}

/* A get that fails: every blob of its range fails, the message naming the
 * pack and the blob; the steps (fetch, then open) say the same. */
static void test_failed_get(void **state)
{
	struct fixture *f = *state;
	struct cf_pack_want w[NBLOBS];
	uint8_t pack[CF_ID_LEN];
	char loc[128], hex[CF_ID_HEX];
	struct seen *s = malloc(sizeof(*s));
	assert_non_null(s);

	/* how many gets opening the repository and loading its index cost */
	snprintf(loc, sizeof(loc), "fault:%s", f->dir);
	struct probe *pb = probe_new(loc, 0);
	struct cf_repo *r = open_on(&pb->base);
	int opened = pb->allgets;
	size_t n = make_wants(r, f, 1, 1, w, pack);
	cf_repo_free(r);
	assert_true(opened > 0);
	char spec[32];
	snprintf(spec, sizeof(spec), "get=%d", opened + 1);
	setenv("COFFER_FAULTS", spec, 1);
	struct cf_backend *be;

	/* the first pack read fails: both ranges' blobs fail (every later get
	 * fails too), naming pack and blob */
	cf_hex(pack, CF_ID_LEN, hex);
	assert_int_equal(cf_backend_open(loc, NULL, &be), CF_OK);
	r = open_on(be);
	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(s->n, NBLOBS);
	assert_int_equal(s->ok, 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->rc[i], CF_EIO);
		assert_non_null(strstr(s->msg[i], "injected fault"));
		assert_non_null(strstr(s->msg[i], hex));
		char bhex[CF_ID_HEX];
		cf_hex(w[i].id, CF_ID_LEN, bhex);
		bhex[16] = 0;
		assert_non_null(strstr(s->msg[i], bhex));
	}

	/* the same in steps: the fetch fails naming the pack, the opening hands
	 * that failure to every want of the range */
	struct cf_pack_range *rg = NULL;
	size_t nr;
	struct cf_buf sealed = CF_BUF_INIT;
	assert_int_equal(cf_repo_pack_ranges(r, w, n, CF_SPAN_HELD, &rg, &nr), CF_OK);
	int frc = cf_repo_fetch_range(r, pack, &rg[0], &sealed);
	assert_int_equal(frc, CF_EIO);
	assert_non_null(strstr(cf_errmsg(frc), hex));
	char fmsg[512];
	snprintf(fmsg, sizeof(fmsg), "%s", cf_errmsg(frc));
	cf_err_clear();
	seen_init(s);
	assert_int_equal(cf_repo_open_range(r, pack, w, &rg[0], &sealed, frc, fmsg, record, s), CF_OK);
	assert_int_equal(s->n, rg[0].end - rg[0].first);
	for (size_t i = 0; i < s->n; i++) {
		assert_int_equal(s->rc[i], CF_EIO);
		assert_non_null(strstr(s->msg[i], fmsg));
	}
	free(rg);
	cf_buf_release(&sealed);
	cf_repo_free(r);
	unsetenv("COFFER_FAULTS");
	free(s);
}

/* The pack gone from the store: CF_ECORRUPT "pack <id> is missing". */
static void test_missing_pack(void **state)
{
	struct fixture *f = *state;
	struct cf_pack_want w[NBLOBS];
	uint8_t pack[CF_ID_LEN];
	char hex[CF_ID_HEX], rel[CF_PACK_PATH_MAX], path[256], want[128];
	struct seen *s = malloc(sizeof(*s));
	assert_non_null(s);

	struct probe *pb = probe_new(f->dir, 0);
	struct cf_repo *r = open_on(&pb->base);
	size_t n = make_wants(r, f, 1, 1, w, pack);
	cf_hex(pack, CF_ID_LEN, hex);
	cf_repo_pack_path(hex, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	assert_int_equal(unlink(path), 0);
	snprintf(want, sizeof(want), "pack %s is missing", hex);

	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(s->n, NBLOBS);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->rc[i], CF_ECORRUPT);
		assert_non_null(strstr(s->msg[i], want));
	}
	struct cf_pack_range rg = { 0, 1, w[0].offset, w[0].length };
	struct cf_buf b = CF_BUF_INIT;
	int rc = cf_repo_fetch_range(r, pack, &rg, &b);
	assert_int_equal(rc, CF_ECORRUPT);
	assert_string_equal(cf_errmsg(rc), want);
	/* loading the blob says the same */
	rc = cf_repo_load_blob(r, CF_BLOB_DATA, f->ids[0], &b);
	assert_int_equal(rc, CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(rc), want));
	cf_buf_release(&b);
	cf_repo_free(r);
	free(s);
}

/* A blob damaged where the index puts it is read from its other copy
 * (a second writer stored it too); without one it fails naming the pack. */
static void test_other_copy(void **state)
{
	struct fixture *f = *state;
	struct cf_pack_want w[NBLOBS];
	uint8_t pack[CF_ID_LEN], id[CF_ID_LEN];
	struct seen *s = malloc(sizeof(*s));
	assert_non_null(s);

	/* a second copy of blob 3 in a pack of its own, written by a handle
	 * that did not see the first */
	struct cf_backend *be;
	struct cf_repo *r2 = NULL;
	assert_int_equal(cf_backend_local_new(f->dir, &be), CF_OK);
	assert_int_equal(cf_repo_open(be, PW, strlen(PW), &r2), CF_OK);
	uint8_t *b = malloc(BLOB);
	assert_non_null(b);
	fill_xorshift(b, blob_len(3), 4);
	assert_int_equal(cf_repo_save_blob(r2, CF_BLOB_DATA, b, blob_len(3), id, NULL, NULL), CF_OK);
	assert_memory_equal(id, f->ids[3], CF_ID_LEN);
	assert_int_equal(cf_repo_flush(r2), CF_OK);
	cf_repo_free(r2);
	free(b);

	struct probe *pb = probe_new(f->dir, 0);
	struct cf_repo *r = open_on(&pb->base);
	size_t n = make_wants(r, f, 1, 1, w, pack);
	assert_int_equal(n, NBLOBS);
	struct cf_blob_loc l0, l1;
	assert_int_equal(cf_repo_lookup_nth(r, CF_BLOB_DATA, f->ids[3], 0, &l0), CF_OK);
	assert_int_equal(cf_repo_lookup_nth(r, CF_BLOB_DATA, f->ids[3], 1, &l1), CF_OK);
	/* the big pack is the main location of all but blob 3 maybe: damage
	 * blobs 3 and 5 in the big pack */
	const uint8_t *other = memcmp(l0.pack, pack, CF_ID_LEN) ? l0.pack : l1.pack;
	assert_memory_not_equal(other, pack, CF_ID_LEN);
	char hex[CF_ID_HEX], rel[CF_PACK_PATH_MAX], path[256];
	cf_hex(pack, CF_ID_LEN, hex);
	cf_repo_pack_path(hex, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	for (size_t i = 0; i < n; i++) {
		int k = (int)(intptr_t)w[i].arg;
		if (k != 3 && k != 5)
			continue;
		uint8_t x;
		off_t at = (off_t)w[i].offset + w[i].length / 2;
		assert_int_equal(pread(fd, &x, 1, at), 1);
		x ^= 0x10;
		assert_int_equal(pwrite(fd, &x, 1, at), 1);
	}
	close(fd);

	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(s->n, NBLOBS);
	assert_int_equal(s->ok, NBLOBS - 1); /* 3 from its other copy */
	for (size_t i = 0; i < n; i++) {
		if (s->arg[i] != 5) {
			assert_int_equal(s->rc[i], CF_OK);
			continue;
		}
		assert_int_equal(s->rc[i], CF_ECORRUPT);
		assert_non_null(strstr(s->msg[i], hex));
		assert_non_null(strstr(s->msg[i], "authentication"));
	}
	cf_repo_free(r);
	free(s);
}

/* A store that streams: one request per range, the bytes in pieces of
 * 1000 (blobs cut across pieces); a transfer that breaks off fails only
 * the blobs that had not arrived, naming the pack. */
static void test_streamed(void **state)
{
	struct fixture *f = *state;
	struct cf_pack_want w[2 * NBLOBS];
	uint8_t pack[CF_ID_LEN];
	char hex[CF_ID_HEX];
	struct seen *s = malloc(sizeof(*s));
	assert_non_null(s);

	struct probe *pb = probe_new(f->dir, CF_BE_REMOTE | CF_BE_STREAMS);
	struct cf_repo *r = open_on(&pb->base);
	size_t n = make_wants(r, f, 1, 2, w, pack);
	cf_hex(pack, CF_ID_LEN, hex);
	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(pb->streams, 1);
	assert_int_equal(pb->ranges, 0);
	assert_int_equal(s->ok, 2 * NBLOBS);

	/* pieces as big as the range: blobs opened where they arrived */
	pb->piece = 8u << 20;
	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(s->ok, 2 * NBLOBS);

	/* every second: gaps skipped, still one request; every sixth: one
	 * request per blob (the gaps are over 256 KiB) */
	pb->piece = 777;
	pb->streams = 0;
	size_t n2 = make_wants(r, f, 2, 1, w, pack);
	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n2, record, s), CF_OK);
	assert_int_equal(pb->streams, 1);
	assert_int_equal(s->ok, n2);
	pb->streams = 0;
	size_t n6 = make_wants(r, f, 6, 1, w, pack);
	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n6, record, s), CF_OK);
	assert_int_equal(pb->streams, 7);
	assert_int_equal(s->ok, n6);

	/* broken off in the 10th blob */
	n = make_wants(r, f, 1, 2, w, pack);
	pb->break_after = (long)(w[18].offset - w[0].offset) + 100;
	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(s->n, 2 * NBLOBS);
	assert_int_equal(s->ok, 18);
	for (size_t i = 18; i < n; i++) {
		assert_int_equal(s->rc[i], CF_EIO);
		assert_non_null(strstr(s->msg[i], "broke off"));
		assert_non_null(strstr(s->msg[i], hex));
	}
	cf_repo_free(r);
	free(s);
}

/* Trees from a remote store: the whole tree pack in one get, kept for the
 * next read (the tree-pack cache), however the trees are spread. */
static void test_trees_remote(void **state)
{
	struct fixture *f = *state;
	enum { NT = 30 };
	uint8_t ids[NT][CF_ID_LEN], pack[CF_ID_LEN];
	struct cf_pack_want w[NT];
	uint8_t b[3000];

	struct cf_backend *be;
	struct cf_repo *r = NULL;
	assert_int_equal(cf_backend_local_new(f->dir, &be), CF_OK);
	assert_int_equal(cf_repo_open(be, PW, strlen(PW), &r), CF_OK);
	for (int i = 0; i < NT; i++) {
		fill_xorshift(b, sizeof(b), 1000 + (uint64_t)i);
		assert_int_equal(cf_repo_save_blob(r, CF_BLOB_TREE, b, sizeof(b), ids[i], NULL, NULL), CF_OK);
	}
	assert_int_equal(cf_repo_flush(r), CF_OK);
	cf_repo_free(r);

	struct probe *pb = probe_new(f->dir, CF_BE_REMOTE | CF_BE_STREAMS);
	r = open_on(&pb->base);
	size_t n = 0;
	for (int i = 0; i < NT; i += 3) {
		struct cf_blob_loc loc;
		assert_int_equal(cf_repo_lookup(r, CF_BLOB_TREE, ids[i], &loc), CF_OK);
		memcpy(pack, loc.pack, CF_ID_LEN);
		w[n++] = (struct cf_pack_want){ .id = ids[i], .offset = loc.offset, .length = loc.length,
						.rawlen = loc.rawlen, .flags = loc.flags,
						.type = CF_BLOB_TREE, .arg = (void *)(intptr_t)i };
	}
	qsort(w, n, sizeof(*w), want_cmp);
	struct seen *s = malloc(sizeof(*s));
	assert_non_null(s);
	for (int pass = 0; pass < 2; pass++) {
		seen_init(s);
		assert_int_equal(cf_repo_read_pack(r, pack, w, n, record_any, s), CF_OK);
		assert_int_equal(s->ok, n);
	}
	assert_int_equal(pb->gets, 1);
	assert_int_equal(pb->ranges, 0);
	assert_int_equal(pb->streams, 0);
	struct cf_buf out = CF_BUF_INIT;
	assert_int_equal(cf_repo_load_blob(r, CF_BLOB_TREE, ids[1], &out), CF_OK);
	fill_xorshift(b, sizeof(b), 1001);
	assert_int_equal(out.len, sizeof(b));
	assert_memory_equal(out.data, b, sizeof(b));
	assert_int_equal(pb->gets, 1);
	cf_buf_release(&out);
	cf_repo_free(r);
	free(s);
}

/* The same through a real S3 store (COFFER_TEST_S3): its own stream. */
static void test_s3_streamed(void **state)
{
	(void)state;
	const char *u = getenv("COFFER_TEST_S3");
	if (!u || !*u) {
		print_message("COFFER_TEST_S3 not set: skipped\n");
		skip();
	}
	char loc[600];
	snprintf(loc, sizeof(loc), "s3:%s/packread-%ld", u, (long)getpid());
	struct cf_backend *be;
	struct cf_repo *r = NULL;
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	int rc = cf_backend_open(loc, NULL, &be);
	if (rc)
		fail_msg("open %s: %s", loc, cf_errmsg(rc));
	assert_true(cf_be_streams(be));
	r = init_cheap(be, PW, -1);
	save_blobs(r, f);
	cf_repo_free(r);

	struct probe *pb = probe_new(loc, 0);
	pb->base.caps = pb->inner->caps;
	pb->piece = 0;
	r = open_on(&pb->base);
	struct cf_pack_want w[2 * NBLOBS];
	uint8_t pack[CF_ID_LEN];
	struct seen *s = malloc(sizeof(*s));
	assert_non_null(s);
	size_t n = make_wants(r, f, 1, 2, w, pack);
	seen_init(s);
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(s->ok, 2 * NBLOBS);
	assert_int_equal(pb->streams, 1);
	n = make_wants(r, f, 6, 1, w, pack);
	seen_init(s);
	pb->streams = 0;
	assert_int_equal(cf_repo_read_pack(r, pack, w, n, record, s), CF_OK);
	assert_int_equal(s->ok, 7);
	assert_int_equal(pb->streams, 7);
	cf_repo_free(r);
	free(s);
	free(f);
}

/* ---- whole packs ---- */

struct allseen {
	struct fixture *f;
	int n, ok, bad;
	char msg[256];
	int pick_mod;   /* pick blobs whose number % pick_mod == 0 (0: no filter) */
};

static int blob_no(struct fixture *f, const uint8_t *id)
{
	for (int i = 0; i < NBLOBS; i++)
		if (!memcmp(f->ids[i], id, CF_ID_LEN))
			return i;
	fail_msg("unknown blob");
	return -1;
}

static bool all_pick(const struct cf_pack_entry *e, void *ctx)
{
	struct allseen *a = ctx;
	return !a->pick_mod || blob_no(a->f, e->id) % a->pick_mod == 0;
}

static int all_item(const struct cf_pack_item *it, void *ctx)
{
	struct allseen *a = ctx;
	int i = blob_no(a->f, it->e->id);
	a->n++;
	assert_non_null(it->sealed);
	if (it->rc) {
		a->bad++;
		snprintf(a->msg, sizeof(a->msg), "%s", cf_errmsg(it->rc));
		return CF_OK;
	}
	uint8_t *want = malloc(BLOB);
	assert_non_null(want);
	fill_xorshift(want, blob_len(i), (uint64_t)i + 1);
	assert_int_equal(it->n, blob_len(i));
	assert_memory_equal(it->plain, want, it->n);
	free(want);
	a->ok++;
	return CF_OK;
}

/* A whole pack: every entry (or those picked), a damaged blob handed over
 * with its error, a damaged header, a pack under another name, a missing
 * pack. */
static void test_whole_pack(void **state)
{
	struct fixture *f = *state;
	struct cf_pack_want w[NBLOBS];
	uint8_t pack[CF_ID_LEN];
	char hex[CF_ID_HEX], rel[CF_PACK_PATH_MAX], path[256];
	size_t fetched;

	struct probe *pb = probe_new(f->dir, 0);
	struct cf_repo *r = open_on(&pb->base);
	make_wants(r, f, 1, 1, w, pack);
	cf_hex(pack, CF_ID_LEN, hex);
	cf_repo_pack_path(hex, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	uint64_t size;
	assert_int_equal(cf_be_stat(r->be, rel, &size), CF_OK);

	struct allseen a = { f, 0, 0, 0, "", 0 };
	assert_int_equal(cf_repo_read_pack_all(r, pack, CF_PACK_VERIFY_NAME, NULL, all_item, &a, &fetched),
			 CF_OK);
	assert_int_equal(a.ok, NBLOBS);
	assert_int_equal(fetched, size);
	a = (struct allseen){ f, 0, 0, 0, "", 4 };
	assert_int_equal(cf_repo_read_pack_all(r, pack, 0, all_pick, all_item, &a, NULL), CF_OK);
	assert_int_equal(a.ok, NBLOBS / 4);

	/* a flipped byte in a blob: that blob fails, naming pack and blob;
	 * the name (format 3: the header's hash) still holds */
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t x;
	off_t at = (off_t)w[7].offset + 100;
	assert_int_equal(pread(fd, &x, 1, at), 1);
	x ^= 0x01;
	assert_int_equal(pwrite(fd, &x, 1, at), 1);
	a = (struct allseen){ f, 0, 0, 0, "", 0 };
	assert_int_equal(cf_repo_read_pack_all(r, pack, CF_PACK_VERIFY_NAME, NULL, all_item, &a, NULL),
			 CF_OK);
	assert_int_equal(a.ok, NBLOBS - 1);
	assert_int_equal(a.bad, 1);
	assert_non_null(strstr(a.msg, hex));
	assert_non_null(strstr(a.msg, "authentication"));

	/* a flipped byte in the header: the name does not match; without the
	 * name checked, the header fails authentication */
	at = (off_t)size - 10;
	assert_int_equal(pread(fd, &x, 1, at), 1);
	x ^= 0x01;
	assert_int_equal(pwrite(fd, &x, 1, at), 1);
	close(fd);
	a = (struct allseen){ f, 0, 0, 0, "", 0 };
	int rc = cf_repo_read_pack_all(r, pack, CF_PACK_VERIFY_NAME, NULL, all_item, &a, &fetched);
	assert_int_equal(rc, CF_ECORRUPT);
	assert_int_equal(fetched, size);
	assert_int_equal(a.n, 0);
	char want[200];
	snprintf(want, sizeof(want), "pack %s is damaged: its contents do not match its name", hex);
	assert_string_equal(cf_errmsg(rc), want);
	rc = cf_repo_read_pack_all(r, pack, 0, NULL, all_item, &a, NULL);
	assert_int_equal(rc, CF_ECORRUPT);
	snprintf(want, sizeof(want), "pack %s is damaged: header fails authentication", hex);
	assert_string_equal(cf_errmsg(rc), want);

	/* gone */
	assert_int_equal(unlink(path), 0);
	rc = cf_repo_read_pack_all(r, pack, 0, NULL, all_item, &a, &fetched);
	assert_int_equal(rc, CF_ECORRUPT);
	assert_int_equal(fetched, 0);
	snprintf(want, sizeof(want), "pack %s is missing", hex);
	assert_string_equal(cf_errmsg(rc), want);
	cf_repo_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ranges_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_coalesced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_pack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streamed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trees_remote, setup, teardown),
		cmocka_unit_test(test_s3_streamed),
		cmocka_unit_test_setup_teardown(test_whole_pack, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
