/*
 * test_index - the in-memory blob index and the parsers of index files, pack
 * headers and the config (repo/repo_int.h).
 *
 * The hash table is driven with 100k pseudo-random ids through several
 * growths: everything put is found with its location, nothing else is, a
 * (type, id) pair is the key, and a second put of the same key keeps the
 * first.  The parsers get hand-built byte strings (the layout of
 * doc/repo-format.md written out independently of the encoder): a valid file
 * yields every entry; every truncation, a bad magic, version, type or flag,
 * and trailing bytes are CF_ECORRUPT, never a crash (run under ASan too).
 * Locations of one blob at several places go to the side table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "repo/repo_int.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64: deterministic, so a failure reproduces */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void rnd_id(uint8_t id[CF_ID_LEN])
{
	for (int i = 0; i < CF_ID_LEN; i += 8) {
		uint64_t v = rnd();
		memcpy(id + i, &v, 8);
	}
}

/* ---- the hash table ---- */

#define NIDS 100000

static void test_index_100k(void **state)
{
	(void)state;
	struct cf_index ix = { 0 };
	uint8_t (*ids)[CF_ID_LEN] = malloc(NIDS * CF_ID_LEN);
	size_t caps_seen = 0, last_cap = 0;

	assert_non_null(ids);
	rng_state = 1;
	for (size_t i = 0; i < NIDS; i++) {
		struct cf_ientry e = { .pack = (uint32_t)(i % 977), .offset = (uint32_t)i * 3,
				       .length = (uint32_t)i + 40, .rawlen = (uint32_t)i * 2,
				       .type = (uint8_t)(i & 1), .flags = (uint8_t)((i >> 1) & 1) };
		rnd_id(ids[i]);
		memcpy(e.id, ids[i], CF_ID_LEN);
		assert_int_equal(cf_index_put(&ix, &e), CF_OK);
		if (ix.cap != last_cap) {
			caps_seen++;
			last_cap = ix.cap;
		}
		/* spot check earlier entries survive each growth */
		if ((i & (i - 1)) == 0)
			for (size_t k = 0; k <= i; k += 1 + i / 64)
				assert_non_null(cf_index_get(&ix, (int)(k & 1), ids[k]));
	}
	assert_int_equal(ix.n, NIDS);
	assert_true(caps_seen >= 5); /* it did grow several times */
	assert_true(ix.cap >= NIDS * 4 / 3);
	assert_int_equal(ix.cap & (ix.cap - 1), 0);

	for (size_t i = 0; i < NIDS; i++) {
		struct cf_ientry *e = cf_index_get(&ix, (int)(i & 1), ids[i]);
		assert_non_null(e);
		assert_memory_equal(e->id, ids[i], CF_ID_LEN);
		assert_int_equal(e->pack, i % 977);
		assert_int_equal(e->offset, (uint32_t)i * 3);
		assert_int_equal(e->length, (uint32_t)i + 40);
		assert_int_equal(e->rawlen, (uint32_t)i * 2);
		assert_int_equal(e->flags, (i >> 1) & 1);
		/* the same id under the other type is a different key */
		assert_null(cf_index_get(&ix, (int)!(i & 1), ids[i]));
	}
	/* ids never put are not found, including ones sharing the first 8
	 * bytes (the probe key) with a present id */
	for (size_t i = 0; i < NIDS; i++) {
		uint8_t id[CF_ID_LEN];
		rnd_id(id);
		assert_null(cf_index_get(&ix, CF_BLOB_DATA, id));
		assert_null(cf_index_get(&ix, CF_BLOB_TREE, id));
		memcpy(id, ids[i], CF_ID_LEN);
		id[31] ^= 1;
		assert_null(cf_index_get(&ix, (int)(i & 1), id));
	}
	cf_index_release(&ix);
	assert_int_equal(ix.n, 0);
	assert_null(ix.slots);
	free(ids);
}

static void test_index_empty(void **state)
{
	(void)state;
	struct cf_index ix = { 0 };
	uint8_t id[CF_ID_LEN] = { 0 };
	assert_null(cf_index_get(&ix, CF_BLOB_DATA, id));
	cf_index_release(&ix);
}

static void test_index_type_and_duplicates(void **state)
{
	(void)state;
	struct cf_index ix = { 0 };
	struct cf_ientry d = { .pack = 1, .offset = 10, .length = 50, .rawlen = 7, .type = CF_BLOB_DATA };
	struct cf_ientry t = { .pack = 2, .offset = 20, .length = 60, .rawlen = 8, .type = CF_BLOB_TREE };
	memset(d.id, 0xaa, CF_ID_LEN);
	memset(t.id, 0xaa, CF_ID_LEN);

	assert_int_equal(cf_index_put(&ix, &d), CF_OK);
	assert_int_equal(cf_index_put(&ix, &t), CF_OK);
	assert_int_equal(ix.n, 2);
	assert_int_equal(cf_index_get(&ix, CF_BLOB_DATA, d.id)->pack, 1);
	assert_int_equal(cf_index_get(&ix, CF_BLOB_TREE, d.id)->pack, 2);

	/* a blob named by two index files: the first location stays */
	struct cf_ientry d2 = d;
	d2.pack = 99;
	d2.offset = 12345;
	assert_int_equal(cf_index_put(&ix, &d2), CF_OK);
	assert_int_equal(ix.n, 2);
	struct cf_ientry *e = cf_index_get(&ix, CF_BLOB_DATA, d.id);
	assert_int_equal(e->pack, 1);
	assert_int_equal(e->offset, 10);
	cf_index_release(&ix);
}

/* Locations read from index files (cf_index_put_loc): the same place again
 * adds nothing; another place is an alternate, kept in the side table only
 * (the main table's count does not change); at most CF_INDEX_MAX_ALT per
 * blob; cf_index_alt_swap exchanges the main location with one of them.
 * 5000 blobs with two extra places each survive the side table's growth. */
static void test_index_alternates(void **state)
{
	(void)state;
	struct cf_index ix = { 0 };
	struct cf_ientry e = { .pack = 1, .offset = 10, .length = 50, .rawlen = 7, .type = CF_BLOB_DATA };
	memset(e.id, 0x5a, CF_ID_LEN);

	assert_int_equal(cf_index_put_loc(&ix, &e), CF_OK);
	assert_int_equal(cf_index_put_loc(&ix, &e), CF_OK);
	assert_int_equal(ix.n, 1);
	assert_int_equal(ix.naltn, 0);
	assert_null(ix.alt); /* nothing duplicated, nothing allocated */
	struct cf_ientry m = cf_index_get(&ix, CF_BLOB_DATA, e.id)[0];
	assert_int_equal(m.nalt, 0);

	struct cf_ientry o = e;
	o.pack = 2;
	o.offset = 99;
	o.flags = CF_FLAG_ZSTD;
	assert_int_equal(cf_index_put_loc(&ix, &o), CF_OK);
	assert_int_equal(cf_index_put_loc(&ix, &o), CF_OK); /* the same other place */
	assert_int_equal(ix.n, 1);
	assert_int_equal(ix.naltn, 1);
	struct cf_ientry *p = cf_index_get(&ix, CF_BLOB_DATA, e.id);
	assert_int_equal(p->pack, 1);
	assert_int_equal(p->nalt, 1);
	struct cf_ientry *a = cf_index_alt(&ix, p, 0);
	assert_non_null(a);
	assert_int_equal(a->pack, 2);
	assert_int_equal(a->offset, 99);
	assert_int_equal(a->flags, CF_FLAG_ZSTD);
	assert_null(cf_index_alt(&ix, p, 1));
	/* the tree blob of the same id is another key */
	assert_null(cf_index_get(&ix, CF_BLOB_TREE, e.id));

	cf_index_alt_swap(&ix, p, 0);
	assert_int_equal(p->pack, 2);
	assert_int_equal(p->offset, 99);
	assert_int_equal(p->flags, CF_FLAG_ZSTD);
	a = cf_index_alt(&ix, p, 0);
	assert_int_equal(a->pack, 1);
	assert_int_equal(a->offset, 10);
	assert_int_equal(a->flags, 0);

	for (uint32_t k = 0; k < 3 * CF_INDEX_MAX_ALT; k++) {
		struct cf_ientry x = e;
		x.pack = 100 + k;
		assert_int_equal(cf_index_put_loc(&ix, &x), CF_OK);
	}
	assert_int_equal(p->nalt, CF_INDEX_MAX_ALT);
	assert_int_equal(ix.naltn, CF_INDEX_MAX_ALT);
	cf_index_release(&ix);

	rng_state = 7;
	uint8_t (*ids)[CF_ID_LEN] = malloc(5000 * CF_ID_LEN);
	assert_non_null(ids);
	for (uint32_t round = 0; round < 3; round++)
		for (uint32_t i = 0; i < 5000; i++) {
			if (round == 0)
				rnd_id(ids[i]);
			struct cf_ientry x = { .pack = round, .offset = i, .length = 40, .type = CF_BLOB_DATA };
			memcpy(x.id, ids[i], CF_ID_LEN);
			assert_int_equal(cf_index_put_loc(&ix, &x), CF_OK);
		}
	assert_int_equal(ix.n, 5000);
	assert_int_equal(ix.naltn, 10000);
	for (uint32_t i = 0; i < 5000; i++) {
		struct cf_ientry *q = cf_index_get(&ix, CF_BLOB_DATA, ids[i]);
		assert_non_null(q);
		assert_int_equal(q->pack, 0);
		assert_int_equal(q->nalt, 2);
		unsigned seen = 0;
		for (unsigned k = 0; k < 2; k++) {
			struct cf_ientry *y = cf_index_alt(&ix, q, k);
			assert_non_null(y);
			assert_int_equal(y->offset, i);
			seen |= 1u << y->pack;
		}
		assert_int_equal(seen, 6); /* packs 1 and 2 */
	}
	free(ids);
	cf_index_release(&ix);
	assert_null(ix.alt);
}

static void test_index_colliding_prefixes(void **state)
{
	/* ids that share the 8-byte probe key all land on one chain: linear
	 * probing must still tell them apart, across growth */
	(void)state;
	struct cf_index ix = { 0 };
	for (uint32_t i = 0; i < 3000; i++) {
		struct cf_ientry e = { .offset = i, .type = CF_BLOB_DATA };
		memset(e.id, 0x11, CF_ID_LEN);
		cf_put_le32(e.id + 28, i);
		assert_int_equal(cf_index_put(&ix, &e), CF_OK);
	}
	for (uint32_t i = 0; i < 3000; i++) {
		uint8_t id[CF_ID_LEN];
		memset(id, 0x11, CF_ID_LEN);
		cf_put_le32(id + 28, i);
		struct cf_ientry *e = cf_index_get(&ix, CF_BLOB_DATA, id);
		assert_non_null(e);
		assert_int_equal(e->offset, i);
	}
	cf_index_release(&ix);
}

static void test_index_add_pack(void **state)
{
	(void)state;
	struct cf_index ix = { 0 };
	uint8_t a[CF_ID_LEN], b[CF_ID_LEN];
	uint32_t na, nb, n2;
	memset(a, 1, sizeof(a));
	memset(b, 2, sizeof(b));
	assert_int_equal(cf_index_add_pack(&ix, a, &na), CF_OK);
	assert_int_equal(cf_index_add_pack(&ix, a, &n2), CF_OK);
	assert_int_equal(na, n2);
	assert_int_equal(cf_index_add_pack(&ix, b, &nb), CF_OK);
	assert_int_not_equal(na, nb);
	assert_memory_equal(ix.packs[na], a, CF_ID_LEN);
	assert_memory_equal(ix.packs[nb], b, CF_ID_LEN);
	/* many packs: numbers stay stable across reallocation */
	for (uint32_t i = 0; i < 1000; i++) {
		uint8_t p[CF_ID_LEN] = { 0 };
		uint32_t num;
		cf_put_le32(p, i + 10);
		assert_int_equal(cf_index_add_pack(&ix, p, &num), CF_OK);
		assert_int_equal(num, i + 2);
	}
	assert_memory_equal(ix.packs[na], a, CF_ID_LEN);
	cf_index_release(&ix);
}

/* ---- entries ---- */

static void test_entry_roundtrip(void **state)
{
	(void)state;
	struct cf_pack_entry e = { .type = CF_BLOB_TREE, .flags = CF_FLAG_ZSTD,
				   .offset = 0x01020304, .length = 0xa0b0c0d0, .rawlen = 0xffffffff };
	struct cf_pack_entry d;
	uint8_t p[CF_ENTRY_SIZE + 1];

	assert_int_equal(CF_ENTRY_SIZE, 46);
	for (int i = 0; i < CF_ID_LEN; i++)
		e.id[i] = (uint8_t)(i * 9 + 1);
	p[CF_ENTRY_SIZE] = 0xee;
	cf_entry_encode(&e, p);
	assert_int_equal(p[CF_ENTRY_SIZE], 0xee); /* writes exactly 46 bytes */
	/* the layout of the spec: type, flags, id, then little-endian u32s */
	assert_int_equal(p[0], 1);
	assert_int_equal(p[1], 1);
	assert_memory_equal(p + 2, e.id, CF_ID_LEN);
	static const uint8_t tail[12] = { 0x04, 0x03, 0x02, 0x01, 0xd0, 0xc0, 0xb0, 0xa0,
					  0xff, 0xff, 0xff, 0xff };
	assert_memory_equal(p + 34, tail, 12);
	memset(&d, 0, sizeof(d));
	cf_entry_decode(p, &d);
	assert_int_equal(d.type, e.type);
	assert_int_equal(d.flags, e.flags);
	assert_memory_equal(d.id, e.id, CF_ID_LEN);
	assert_int_equal(d.offset, e.offset);
	assert_int_equal(d.length, e.length);
	assert_int_equal(d.rawlen, e.rawlen);
}

/* ---- index files ---- */

static void put32(struct cf_buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	assert_int_equal(cf_buf_add(b, x, 4), CF_OK);
}

/* Append one 46-byte entry by hand (not with cf_entry_encode). */
static void put_entry(struct cf_buf *b, uint8_t type, uint8_t flags, uint8_t idbyte,
		      uint32_t off, uint32_t len, uint32_t raw)
{
	uint8_t id[CF_ID_LEN];
	memset(id, idbyte, sizeof(id));
	assert_int_equal(cf_buf_add(b, &type, 1), CF_OK);
	assert_int_equal(cf_buf_add(b, &flags, 1), CF_OK);
	assert_int_equal(cf_buf_add(b, id, CF_ID_LEN), CF_OK);
	put32(b, off);
	put32(b, len);
	put32(b, raw);
}

/* Offsets into the built file, for corrupting single fields. */
#define OFF_VERSION 4
#define OFF_P1_ENTRY0 (12 + CF_ID_LEN + 4)

static void build_index(struct cf_buf *b)
{
	uint8_t pack[CF_ID_LEN];
	cf_buf_reset(b);
	assert_int_equal(cf_buf_add(b, "CFIX", 4), CF_OK);
	put32(b, 1); /* version */
	put32(b, 2); /* packs */
	memset(pack, 0xa1, sizeof(pack));
	assert_int_equal(cf_buf_add(b, pack, CF_ID_LEN), CF_OK);
	put32(b, 3);
	put_entry(b, CF_BLOB_DATA, 0, 0x01, 0, 100, 60);
	put_entry(b, CF_BLOB_DATA, CF_FLAG_ZSTD, 0x02, 100, 200, 1000);
	put_entry(b, CF_BLOB_DATA, 0, 0x03, 300, 40, 0);
	memset(pack, 0xb2, sizeof(pack));
	assert_int_equal(cf_buf_add(b, pack, CF_ID_LEN), CF_OK);
	put32(b, 2);
	put_entry(b, CF_BLOB_TREE, 0, 0x04, 0, 41, 1);
	put_entry(b, CF_BLOB_TREE, CF_FLAG_ZSTD, 0x05, 41, 80, 500);
}

struct got {
	int n;
	uint8_t pack[8];
	struct cf_pack_entry e[8];
	int stop_after;
};

static int got_entry(const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx)
{
	struct got *g = ctx;
	assert_true(g->n < 8);
	g->pack[g->n] = packid[0];
	for (int i = 1; i < CF_ID_LEN; i++)
		assert_int_equal(packid[i], packid[0]);
	g->e[g->n++] = *e;
	return g->stop_after && g->n == g->stop_after ? 77 : 0;
}

static void test_index_parse_valid(void **state)
{
	(void)state;
	struct cf_buf b = CF_BUF_INIT;
	struct got g = { 0 };
	build_index(&b);
	assert_int_equal(b.len, 12 + 2 * (CF_ID_LEN + 4) + 5 * CF_ENTRY_SIZE);
	assert_int_equal(cf_index_parse("t", b.data, b.len, got_entry, &g), CF_OK);
	assert_int_equal(g.n, 5);
	static const uint8_t packs[5] = { 0xa1, 0xa1, 0xa1, 0xb2, 0xb2 };
	static const uint8_t types[5] = { 0, 0, 0, 1, 1 };
	static const uint32_t offs[5] = { 0, 100, 300, 0, 41 };
	static const uint32_t lens[5] = { 100, 200, 40, 41, 80 };
	static const uint32_t raws[5] = { 60, 1000, 0, 1, 500 };
	for (int i = 0; i < 5; i++) {
		assert_int_equal(g.pack[i], packs[i]);
		assert_int_equal(g.e[i].type, types[i]);
		assert_int_equal(g.e[i].id[0], i + 1);
		assert_int_equal(g.e[i].offset, offs[i]);
		assert_int_equal(g.e[i].length, lens[i]);
		assert_int_equal(g.e[i].rawlen, raws[i]);
	}
	assert_int_equal(g.e[1].flags, CF_FLAG_ZSTD);

	/* a callback's non-zero return stops the parse and is returned */
	struct got g2 = { .stop_after = 2 };
	assert_int_equal(cf_index_parse("t", b.data, b.len, got_entry, &g2), 77);
	assert_int_equal(g2.n, 2);

	/* an index naming no packs is valid (and has nothing to call) */
	struct cf_buf z = CF_BUF_INIT;
	struct got g3 = { 0 };
	assert_int_equal(cf_buf_add(&z, "CFIX", 4), CF_OK);
	put32(&z, 1);
	put32(&z, 0);
	assert_int_equal(cf_index_parse("t", z.data, z.len, got_entry, &g3), CF_OK);
	assert_int_equal(g3.n, 0);
	cf_buf_release(&z);
	cf_buf_release(&b);
}

static void expect_corrupt(const uint8_t *p, size_t n, const char *what)
{
	struct got g = { 0 };
	/* copy to an exact-size allocation so ASan sees any over-read */
	uint8_t *c = malloc(n ? n : 1);
	assert_non_null(c);
	memcpy(c, p, n);
	cf_err_clear();
	int rc = cf_index_parse("idxname", c, n, got_entry, &g);
	if (rc != CF_ECORRUPT)
		fail_msg("%s: expected CF_ECORRUPT, got %d", what, rc);
	assert_non_null(strstr(cf_errmsg(rc), "idxname"));
	free(c);
}

static void test_index_parse_truncated(void **state)
{
	(void)state;
	struct cf_buf b = CF_BUF_INIT;
	char what[64];
	build_index(&b);
	for (size_t n = 0; n < b.len; n++) {
		snprintf(what, sizeof(what), "truncated to %zu", n);
		expect_corrupt(b.data, n, what);
	}
	cf_buf_release(&b);
}

static void test_index_parse_bad_fields(void **state)
{
	(void)state;
	struct cf_buf b = CF_BUF_INIT;

	build_index(&b);
	b.data[0] = 'X';
	expect_corrupt(b.data, b.len, "bad magic");

	build_index(&b);
	cf_put_le32(b.data + OFF_VERSION, 2);
	expect_corrupt(b.data, b.len, "version 2");
	cf_put_le32(b.data + OFF_VERSION, 0);
	expect_corrupt(b.data, b.len, "version 0");

	build_index(&b);
	b.data[OFF_P1_ENTRY0] = 2; /* type: pack header is not a blob type */
	expect_corrupt(b.data, b.len, "type 2");
	b.data[OFF_P1_ENTRY0] = 0xff;
	expect_corrupt(b.data, b.len, "type 255");

	build_index(&b);
	b.data[OFF_P1_ENTRY0 + 1] = 2; /* an unknown flag bit */
	expect_corrupt(b.data, b.len, "flag 2");
	b.data[OFF_P1_ENTRY0 + 1] = 0x80;
	expect_corrupt(b.data, b.len, "flag 0x80");

	build_index(&b);
	cf_put_le32(b.data + OFF_P1_ENTRY0 + 2 + CF_ID_LEN + 4, 39); /* shorter than a seal */
	expect_corrupt(b.data, b.len, "length 39");

	build_index(&b);
	cf_put_le32(b.data + OFF_P1_ENTRY0 + 2 + CF_ID_LEN, 0xfffffff0); /* offset + length wraps */
	expect_corrupt(b.data, b.len, "offset overflow");

	build_index(&b);
	cf_put_le32(b.data + 8, 3); /* one pack more than present */
	expect_corrupt(b.data, b.len, "pack count too high");
	cf_put_le32(b.data + 8, 0xffffffff);
	expect_corrupt(b.data, b.len, "pack count huge");

	build_index(&b);
	cf_put_le32(b.data + 12 + CF_ID_LEN, 0xffffffff); /* entry count huge */
	expect_corrupt(b.data, b.len, "entry count huge");
	cf_put_le32(b.data + 12 + CF_ID_LEN, 0x05ffffff);
	expect_corrupt(b.data, b.len, "entry count large");

	build_index(&b);
	uint8_t extra = 0;
	assert_int_equal(cf_buf_add(&b, &extra, 1), CF_OK);
	expect_corrupt(b.data, b.len, "one trailing byte");
	build_index(&b);
	for (int i = 0; i < CF_ENTRY_SIZE; i++)
		assert_int_equal(cf_buf_add(&b, &extra, 1), CF_OK);
	expect_corrupt(b.data, b.len, "a trailing entry's worth");
	cf_buf_release(&b);
}

static int count_entry(const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx)
{
	(void)packid;
	assert_true(e->type <= CF_BLOB_TREE);
	(*(int *)ctx)++;
	return 0;
}

static void test_index_parse_random_bytes(void **state)
{
	/* a parser of repository data never crashes: random mutations of a
	 * valid file return OK or CF_ECORRUPT, nothing else */
	(void)state;
	struct cf_buf b = CF_BUF_INIT;
	rng_state = 7;
	for (int round = 0; round < 20000; round++) {
		build_index(&b);
		int flips = 1 + (int)(rnd() % 4);
		for (int k = 0; k < flips; k++)
			b.data[rnd() % b.len] = (uint8_t)rnd();
		size_t n = b.len - (size_t)(rnd() % 3 == 0 ? rnd() % b.len : 0);
		uint8_t *c = malloc(n ? n : 1);
		assert_non_null(c);
		memcpy(c, b.data, n);
		int calls = 0;
		int rc = cf_index_parse("r", c, n, count_entry, &calls);
		assert_true(rc == CF_OK || rc == CF_ECORRUPT);
		free(c);
	}
	cf_buf_release(&b);
}

/* ---- pack headers ---- */

static void test_pack_header_parse(void **state)
{
	(void)state;
	struct cf_buf h = CF_BUF_INIT;
	struct cf_pack_entry *e = NULL;
	size_t n = 99;

	put_entry(&h, CF_BLOB_DATA, 0, 0x01, 0, 100, 60);
	put_entry(&h, CF_BLOB_DATA, CF_FLAG_ZSTD, 0x02, 100, 50, 500);
	/* exactly fits a 150-byte body */
	assert_int_equal(cf_pack_header_parse(h.data, h.len, 150, &e, &n), CF_OK);
	assert_int_equal(n, 2);
	assert_int_equal(e[1].offset, 100);
	assert_int_equal(e[1].length, 50);
	assert_int_equal(e[1].rawlen, 500);
	assert_int_equal(e[1].flags, CF_FLAG_ZSTD);
	assert_int_equal(e[0].id[0], 1);
	free(e);

	/* one byte less of body: the second blob reaches past it */
	assert_int_equal(cf_pack_header_parse(h.data, h.len, 149, &e, &n), CF_ECORRUPT);
	assert_null(e);
	assert_int_equal(n, 0);

	/* not a whole number of entries */
	assert_int_equal(cf_pack_header_parse(h.data, h.len - 1, 150, &e, &n), CF_ECORRUPT);
	assert_null(e);

	/* offset + length overflowing 32 bits must not wrap into range */
	struct cf_buf w = CF_BUF_INIT;
	put_entry(&w, CF_BLOB_DATA, 0, 0x03, 0xffffffc0, 0x80, 10);
	assert_int_equal(cf_pack_header_parse(w.data, w.len, 150, &e, &n), CF_ECORRUPT);
	cf_buf_reset(&w);
	put_entry(&w, CF_BLOB_DATA, 0, 0x03, 0, 39, 0); /* shorter than a seal */
	assert_int_equal(cf_pack_header_parse(w.data, w.len, 150, &e, &n), CF_ECORRUPT);
	cf_buf_reset(&w);
	put_entry(&w, CF_OBJ_INDEX, 0, 0x03, 0, 40, 0);
	assert_int_equal(cf_pack_header_parse(w.data, w.len, 150, &e, &n), CF_ECORRUPT);
	cf_buf_reset(&w);
	put_entry(&w, CF_BLOB_TREE, 4, 0x03, 0, 40, 0);
	assert_int_equal(cf_pack_header_parse(w.data, w.len, 150, &e, &n), CF_ECORRUPT);

	/* an empty header parses to nothing */
	assert_int_equal(cf_pack_header_parse(h.data, 0, 0, &e, &n), CF_OK);
	assert_int_equal(n, 0);
	free(e);
	cf_buf_release(&w);
	cf_buf_release(&h);
}

/* ---- config ---- */

static const char valid_config[] =
	"{\"version\":1,\"id\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
	"\"chunker\":{\"min\":524288,\"avg\":1048576,\"max\":8388608},\"compression\":3}";

static int decode_str(const char *s, struct cf_repo_config *c)
{
	memset(c, 0, sizeof(*c));
	return cf_config_decode((const uint8_t *)s, strlen(s), c);
}

static void test_config_decode(void **state)
{
	(void)state;
	struct cf_repo_config c;

	assert_int_equal(decode_str(valid_config, &c), CF_OK);
	assert_int_equal(c.version, 1);
	assert_int_equal(c.id[0], 0x00);
	assert_int_equal(c.id[1], 0x11);
	assert_int_equal(c.id[31], 0xff);
	assert_int_equal(c.chunker.min, 524288);
	assert_int_equal(c.chunker.avg, 1048576);
	assert_int_equal(c.chunker.max, 8388608);
	assert_int_equal(c.compression, 3);

	/* unknown fields are tolerated (a later minor addition) */
	char buf[1024];
	snprintf(buf, sizeof(buf), "%.*s,\"future\":[1,2]}", (int)strlen(valid_config) - 1, valid_config);
	assert_int_equal(decode_str(buf, &c), CF_OK);

	/* formats 2 (SHA-256 names) and 3 (packs named by their header) are
	 * read; a newer format is refused as such, not misread */
	char *v2 = strdup(valid_config);
	assert_non_null(v2);
	v2[11] = '2';
	assert_int_equal(decode_str(v2, &c), CF_OK);
	assert_int_equal(c.version, 2);
	v2[11] = '3';
	assert_int_equal(decode_str(v2, &c), CF_OK);
	assert_int_equal(c.version, 3);
	v2[11] = '4';
	cf_err_clear();
	assert_int_equal(decode_str(v2, &c), CF_EFORMAT);
	assert_non_null(strstr(cf_errmsg(CF_EFORMAT), "version 4"));
	free(v2);

	static const char *const bad[] = {
		"",
		"garbage",
		"\x01\x02\xff",
		"[]",
		"{}",
		"{\"version\":1}",
		"{\"version\":\"1\",\"id\":\"00\",\"chunker\":{\"min\":1,\"avg\":2,\"max\":3}}",
		/* id not hex / too short */
		"{\"version\":1,\"id\":\"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
		"\"chunker\":{\"min\":524288,\"avg\":1048576,\"max\":8388608},\"compression\":3}",
		"{\"version\":1,\"id\":\"0011\","
		"\"chunker\":{\"min\":524288,\"avg\":1048576,\"max\":8388608},\"compression\":3}",
		/* chunker out of range */
		"{\"version\":1,\"id\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
		"\"chunker\":{\"min\":0,\"avg\":1048576,\"max\":8388608},\"compression\":3}",
		"{\"version\":1,\"id\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
		"\"chunker\":{\"min\":524288,\"avg\":1048576,\"max\":8388608000},\"compression\":3}",
		"{\"version\":1,\"id\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
		"\"chunker\":{\"min\":2097152,\"avg\":1048576,\"max\":8388608},\"compression\":3}",
		/* compression out of range */
		"{\"version\":1,\"id\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
		"\"chunker\":{\"min\":524288,\"avg\":1048576,\"max\":8388608},\"compression\":99}",
		/* duplicate key */
		"{\"version\":1,\"version\":1,\"id\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
		"\"chunker\":{\"min\":524288,\"avg\":1048576,\"max\":8388608},\"compression\":3}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = decode_str(bad[i], &c);
		if (rc != CF_ECORRUPT)
			fail_msg("config #%zu: expected CF_ECORRUPT, got %d (%s)", i, rc, cf_errmsg(rc));
	}
	/* truncations of the valid config never pass */
	for (size_t n = 0; n < strlen(valid_config); n++) {
		char *t = strndup(valid_config, n);
		assert_non_null(t);
		int rc = cf_config_decode((const uint8_t *)t, n, &c);
		if (rc != CF_ECORRUPT)
			fail_msg("config truncated to %zu: expected CF_ECORRUPT, got %d", n, rc);
		free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_100k),
		cmocka_unit_test(test_index_empty),
		cmocka_unit_test(test_index_type_and_duplicates),
		cmocka_unit_test(test_index_colliding_prefixes),
		cmocka_unit_test(test_index_alternates),
		cmocka_unit_test(test_index_add_pack),
		cmocka_unit_test(test_entry_roundtrip),
		cmocka_unit_test(test_index_parse_valid),
		cmocka_unit_test(test_index_parse_truncated),
		cmocka_unit_test(test_index_parse_bad_fields),
		cmocka_unit_test(test_index_parse_random_bytes),
		cmocka_unit_test(test_pack_header_parse),
		cmocka_unit_test(test_config_decode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
