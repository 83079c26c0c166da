/*
 * test_repo - the repository layer on a real local backend in a temporary
 * directory: init and open (right, wrong and no password), blobs saved and
 * loaded (compressible, incompressible, empty; data and tree), dedup, several
 * threads saving at once, what a reopened repository sees after a flush and
 * after a crash without one, pack size and type separation, snapshots and
 * their selection, locks, keys, and check finding a flipped byte.
 *
 * Every test reopens the repository from disk where it matters: what counts
 * is what a later process reads, not what one handle has in memory.  The KDF
 * runs at its cheapest (1 pass, 8 KiB) so the suite stays fast.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "repo/repo_int.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "store/backend.h"
#include "testutil.h"

#define PW "correct horse"
#define MiB (1u << 20)

/* ---- helpers ---- */


struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cf-test-repo.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rm_tree(f->dir);
	free(f);
	return 0;
}

static int open_pw(const char *dir, const char *pw, struct cf_repo **r)
{
	struct cf_backend *be;
	assert_int_equal(cf_backend_local_new(dir, &be), CF_OK);
	return cf_repo_open(be, pw, strlen(pw), r);
}

static struct cf_repo *reopen(const char *dir)
{
	struct cf_repo *r = NULL;
	assert_int_equal(open_pw(dir, PW, &r), CF_OK);
	assert_int_equal(cf_repo_load_index(r), CF_OK);
	return r;
}

static struct cf_repo *init_opts(const char *dir, int compression)
{
	struct cf_backend *be;
	struct cf_repo *r = NULL;
	struct cf_repo_init_opts o = { .compression = compression, .kdf_opslimit = 1,
				       .kdf_memlimit = 8192 };
	assert_int_equal(cf_backend_local_new(dir, &be), CF_OK);
	int rc = cf_repo_init(be, PW, strlen(PW), &o, &r);
	if (rc)
		fail_msg("init: %s", cf_errmsg(rc));
	return r;
}

static struct cf_repo *init_repo(const char *dir)
{
	return init_opts(dir, -1);
}

/* xorshift stream: incompressible, reproducible */
static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 24);
	}
}

static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)("the quick brown fox jumps over the lazy dog\n"[(i + seed) % 44]);
}

struct names {
	char (*name)[CF_ID_HEX];
	size_t n, cap;
};

static int collect(const char *name, uint64_t size, void *ctx)
{
	struct names *ns = ctx;
	(void)size;
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 16;
		ns->name = realloc(ns->name, ns->cap * sizeof(*ns->name));
		assert_non_null(ns->name);
	}
	snprintf(ns->name[ns->n++], CF_ID_HEX, "%s", name);
	return 0;
}

/* Names of every object under dir ("data", "index", ...). */
static struct names list_names(struct cf_repo *r, const char *dir)
{
	struct names ns = { 0 };
	assert_int_equal(cf_be_list(cf_repo_backend(r), dir, collect, &ns), CF_OK);
	return ns;
}

static size_t count_objects(struct cf_repo *r, const char *dir)
{
	struct names ns = list_names(r, dir);
	free(ns.name);
	return ns.n;
}

/* Read a pack whole and parse its header.  Caller frees *e. */
static void parse_pack(struct cf_repo *r, const char *hex, struct cf_buf *bytes,
		       struct cf_pack_entry **e, size_t *n)
{
	char path[128];
	cf_repo_pack_path(hex, path, sizeof(path));
	assert_int_equal(cf_be_get(cf_repo_backend(r), path, bytes), CF_OK);
	int rc = cf_pack_parse(r, bytes->data, bytes->len, e, n);
	if (rc)
		fail_msg("pack %s: %s", hex, cf_errmsg(rc));
}

static int count_cb(int type, const uint8_t id[CF_ID_LEN], const struct cf_blob_loc *loc, void *ctx)
{
	(void)type;
	(void)id;
	(void)loc;
	(*(size_t *)ctx)++;
	return 0;
}

static size_t index_count(struct cf_repo *r)
{
	size_t n = 0;
	assert_int_equal(cf_repo_index_foreach(r, count_cb, &n), CF_OK);
	return n;
}

static void expect_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
			const uint8_t *want, size_t n)
{
	struct cf_buf b = CF_BUF_INIT;
	int rc = cf_repo_load_blob(r, type, id, &b);
	if (rc)
		fail_msg("load blob: %s", cf_errmsg(rc));
	assert_int_equal(b.len, n);
	if (n)
		assert_memory_equal(b.data, want, n);
	cf_buf_release(&b);
}

/* ---- init / open ---- */

static void test_init_open(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir), *r2 = NULL;
	uint8_t id[CF_ID_LEN];
	char keyname[CF_ID_HEX];

	memcpy(id, cf_repo_config(r)->id, CF_ID_LEN);
	snprintf(keyname, sizeof(keyname), "%s", cf_repo_key_name(r));
	assert_int_equal(strlen(keyname), 64);
	assert_int_equal(cf_repo_config(r)->version, CF_REPO_VERSION);
	assert_int_equal(cf_repo_config(r)->compression, 3);
	assert_int_equal(cf_repo_config(r)->chunker.avg, CF_CHUNKER_DEFAULT_AVG);
	cf_repo_free(r);

	assert_int_equal(open_pw(f->dir, PW, &r), CF_OK);
	assert_memory_equal(cf_repo_config(r)->id, id, CF_ID_LEN);
	assert_string_equal(cf_repo_key_name(r), keyname);
	assert_int_equal(cf_repo_config(r)->chunker.min, CF_CHUNKER_DEFAULT_MIN);
	assert_int_equal(cf_repo_config(r)->chunker.max, CF_CHUNKER_DEFAULT_MAX);
	/* the chunker gear table is derived from the key: same on every open */
	uint64_t gear0 = cf_repo_gear(r)[0], gear255 = cf_repo_gear(r)[255];
	assert_true(gear0 != 0 || gear255 != 0);
	assert_int_equal(open_pw(f->dir, PW, &r2), CF_OK);
	assert_int_equal(cf_repo_gear(r2)[0], gear0);
	assert_int_equal(cf_repo_gear(r2)[255], gear255);
	cf_repo_free(r2);
	cf_repo_free(r);

	r = (struct cf_repo *)1;
	assert_int_equal(open_pw(f->dir, "wrong horse", &r), CF_EBADPASS);
	assert_null(r);
	assert_int_equal(open_pw(f->dir, "", &r), CF_EBADPASS);

	/* a second init is refused and leaves the repository as it was */
	struct cf_backend *be;
	struct cf_repo_init_opts o = { .compression = -1, .kdf_opslimit = 1, .kdf_memlimit = 8192 };
	assert_int_equal(cf_backend_local_new(f->dir, &be), CF_OK);
	assert_int_equal(cf_repo_init(be, "other", 5, &o, &r), CF_EEXIST);
	assert_null(r);
	r = reopen(f->dir);
	assert_memory_equal(cf_repo_config(r)->id, id, CF_ID_LEN);
	assert_int_equal(count_objects(r, "keys"), 1);
	cf_repo_free(r);
}

static void test_open_no_repo(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = NULL;
	char p[128];

	cf_err_clear();
	assert_int_equal(open_pw(f->dir, PW, &r), CF_ENOREPO);
	assert_non_null(strstr(cf_errmsg(CF_ENOREPO), f->dir));
	assert_null(r);
	snprintf(p, sizeof(p), "%s/does-not-exist", f->dir);
	assert_int_equal(open_pw(p, PW, &r), CF_ENOREPO);
	/* keys but no config (an init that died half-way) is not a repository */
	snprintf(p, sizeof(p), "%s/keys", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(open_pw(f->dir, PW, &r), CF_ENOREPO);
}

static void test_init_options_persist(void **state)
{
	struct fixture *f = *state;
	struct cf_backend *be;
	struct cf_repo *r = NULL;
	struct cf_repo_init_opts o = { .chunker = { 64 * 1024, 256 * 1024, 1024 * 1024 },
				       .compression = 0, .kdf_opslimit = 1, .kdf_memlimit = 8192 };
	assert_int_equal(cf_backend_local_new(f->dir, &be), CF_OK);
	assert_int_equal(cf_repo_init(be, PW, strlen(PW), &o, &r), CF_OK);
	cf_repo_free(r);
	r = reopen(f->dir);
	assert_int_equal(cf_repo_config(r)->compression, 0);
	assert_int_equal(cf_repo_config(r)->chunker.min, 64 * 1024);
	assert_int_equal(cf_repo_config(r)->chunker.avg, 256 * 1024);
	assert_int_equal(cf_repo_config(r)->chunker.max, 1024 * 1024);

	/* with compression off, compressible data is stored raw */
	uint8_t text[100000], id[CF_ID_LEN];
	struct cf_blob_loc loc;
	fill_text(text, sizeof(text), 0);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, text, sizeof(text), id, NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	assert_int_equal(cf_repo_lookup(r, CF_BLOB_DATA, id, &loc), CF_OK);
	assert_int_equal(loc.flags & CF_FLAG_ZSTD, 0);
	assert_int_equal(loc.length, sizeof(text) + CF_SEAL_OVERHEAD);
	expect_blob(r, CF_BLOB_DATA, id, text, sizeof(text));
	cf_repo_free(r);
}

/* ---- blobs ---- */

static void test_blob_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	size_t big = 3 * MiB;
	uint8_t *text = malloc(big), *rnd = malloc(big);
	static const char tree_json[] = "{\"nodes\":[]}";
	uint8_t id_text[CF_ID_LEN], id_rnd[CF_ID_LEN], id_empty[CF_ID_LEN], id_tree[CF_ID_LEN],
		id_small[CF_ID_LEN], id_again[CF_ID_LEN];
	struct cf_blob_loc loc;
	uint64_t stored = 0;
	bool added = false;

	assert_non_null(text);
	assert_non_null(rnd);
	fill_text(text, big, 1);
	fill_random(rnd, big, 1);

	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, text, big, id_text, &added, &stored), CF_OK);
	assert_true(added);
	assert_true(stored < big / 10); /* it was compressed */
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, rnd, big, id_rnd, &added, &stored), CF_OK);
	assert_true(added);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, "", 0, id_empty, &added, &stored), CF_OK);
	assert_true(added);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, "hi", 2, id_small, &added, &stored), CF_OK);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_TREE, tree_json, sizeof(tree_json) - 1, id_tree,
					   &added, &stored), CF_OK);
	assert_true(added);
	/* pending blobs are known (so nobody stores them twice) */
	assert_true(cf_repo_has_blob(r, CF_BLOB_DATA, id_rnd));
	assert_true(cf_repo_has_blob(r, CF_BLOB_TREE, id_tree));
	assert_false(cf_repo_has_blob(r, CF_BLOB_TREE, id_rnd));
	assert_int_equal(cf_repo_flush(r), CF_OK);

	/* the id is the keyed hash of the plaintext: saving again gives it */
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, rnd, big, id_again, &added, NULL), CF_OK);
	assert_memory_equal(id_again, id_rnd, CF_ID_LEN);
	assert_false(added);
	/* different content, different id; no two of these collide */
	assert_memory_not_equal(id_text, id_rnd, CF_ID_LEN);
	assert_memory_not_equal(id_empty, id_small, CF_ID_LEN);

	for (int pass = 0; pass < 2; pass++) {
		expect_blob(r, CF_BLOB_DATA, id_text, text, big);
		expect_blob(r, CF_BLOB_DATA, id_rnd, rnd, big);
		expect_blob(r, CF_BLOB_DATA, id_empty, NULL, 0);
		expect_blob(r, CF_BLOB_DATA, id_small, (const uint8_t *)"hi", 2);
		expect_blob(r, CF_BLOB_TREE, id_tree, (const uint8_t *)tree_json, sizeof(tree_json) - 1);

		assert_int_equal(cf_repo_lookup(r, CF_BLOB_DATA, id_text, &loc), CF_OK);
		assert_int_equal(loc.flags, CF_FLAG_ZSTD);
		assert_int_equal(loc.rawlen, big);
		assert_int_equal(cf_repo_lookup(r, CF_BLOB_DATA, id_rnd, &loc), CF_OK);
		assert_int_equal(loc.flags, 0);
		assert_int_equal(loc.length, big + CF_SEAL_OVERHEAD);
		assert_int_equal(cf_repo_lookup(r, CF_BLOB_DATA, id_empty, &loc), CF_OK);
		assert_int_equal(loc.rawlen, 0);
		assert_int_equal(loc.length, CF_SEAL_OVERHEAD);

		/* the type is part of the key: a data blob is not a tree */
		struct cf_buf b = CF_BUF_INIT;
		cf_err_clear();
		assert_int_equal(cf_repo_load_blob(r, CF_BLOB_TREE, id_rnd, &b), CF_ENOENT);
		assert_int_equal(cf_repo_load_blob(r, CF_BLOB_DATA, id_tree, &b), CF_ENOENT);
		cf_buf_release(&b);

		/* a new process sees the same after loading the index */
		cf_repo_free(r);
		r = reopen(f->dir);
		assert_int_equal(index_count(r), 5);
	}
	cf_repo_free(r);
	free(text);
	free(rnd);
}

/* Chunks that look random are stored without asking zstd (repo/pack.c,
 * looks_incompressible); anything with a compressible part still is
 * compressed, whether that part is at the start, the middle or the end. */
static void test_compress_probe(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	size_t n = 1 * MiB;
	uint8_t *b[5], id[5][CF_ID_LEN];
	struct cf_blob_loc loc;
	for (int k = 0; k < 5; k++) {
		b[k] = malloc(n);
		assert_non_null(b[k]);
		fill_random(b[k], n, 10 + (uint64_t)k);
	}
	for (int k = 0; k < 3; k++) /* a quarter is text: at the start, middle, end */
		fill_text(b[k] + (size_t)k * (n / 3), n / 4, 20 + (uint64_t)k);
	for (size_t i = 0; i < n; i++) /* hex digits of random bytes: 4 bits a byte */
		b[3][i] = (uint8_t)"0123456789abcdef"[b[3][i] & 15];
	/* b[4]: random bytes */
	for (int k = 0; k < 5; k++)
		assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, b[k], n, id[k], NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	for (int k = 0; k < 5; k++) {
		assert_int_equal(cf_repo_lookup(r, CF_BLOB_DATA, id[k], &loc), CF_OK);
		if (k < 3) {
			assert_int_equal(loc.flags, CF_FLAG_ZSTD);
			assert_true(loc.length < n - n / 8);
		} else if (k == 3) {
			assert_int_equal(loc.flags, CF_FLAG_ZSTD);
			assert_true(loc.length < n * 6 / 10);
		} else {
			assert_int_equal(loc.flags, 0); /* stored as it is */
			assert_int_equal(loc.length, n + CF_SEAL_OVERHEAD);
		}
		expect_blob(r, CF_BLOB_DATA, id[k], b[k], n);
		free(b[k]);
	}
	cf_repo_free(r);
}

static void test_dedup(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	uint8_t data[50000], id1[CF_ID_LEN], id2[CF_ID_LEN], idt[CF_ID_LEN];
	uint64_t stored = 0;
	bool added = true;

	fill_random(data, sizeof(data), 2);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, data, sizeof(data), id1, &added, &stored), CF_OK);
	assert_true(added);
	uint64_t once = stored;
	assert_int_equal(once, sizeof(data) + CF_SEAL_OVERHEAD);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, data, sizeof(data), id2, &added, &stored), CF_OK);
	assert_false(added);
	assert_int_equal(stored, once);
	assert_memory_equal(id1, id2, CF_ID_LEN);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	assert_int_equal(count_objects(r, "data"), 1);
	assert_int_equal(count_objects(r, "index"), 1);
	/* after the flush too */
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, data, sizeof(data), id2, &added, &stored), CF_OK);
	assert_false(added);
	/* a flush with nothing new writes no pack and no index */
	assert_int_equal(cf_repo_flush(r), CF_OK);
	assert_int_equal(count_objects(r, "data"), 1);
	assert_int_equal(count_objects(r, "index"), 1);
	cf_repo_free(r);

	/* and across processes, once the index is loaded */
	r = reopen(f->dir);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, data, sizeof(data), id2, &added, NULL), CF_OK);
	assert_false(added);
	/* the same bytes as a tree are another blob */
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_TREE, data, sizeof(data), idt, &added, NULL), CF_OK);
	assert_true(added);
	assert_memory_equal(idt, id1, CF_ID_LEN);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	assert_int_equal(count_objects(r, "data"), 2);
	assert_int_equal(count_objects(r, "index"), 2);
	cf_repo_free(r);
	r = reopen(f->dir);
	assert_int_equal(index_count(r), 2);
	expect_blob(r, CF_BLOB_TREE, idt, data, sizeof(data));
	cf_repo_free(r);
}

/* ---- several threads ---- */

#define NTHREADS 4
#define NSHARED 40
#define NOWN 40

static size_t blob_size(uint64_t seed)
{
	return 1000 + (size_t)(seed * 2654435761u % (400 * 1024));
}

static void make_blob(uint8_t *p, size_t n, uint64_t seed)
{
	/* shared blobs alternate compressible and not; own blobs are
	 * incompressible so that they fill more than one pack */
	if (seed % 2 || seed >= 20000)
		fill_random(p, n, seed);
	else
		fill_text(p, n, seed);
}

struct saver {
	struct cf_repo *r;
	int num;
	int errors;
	int shared_added;
	uint8_t shared_id[NSHARED][CF_ID_LEN];
	uint8_t own_id[NOWN][CF_ID_LEN];
};

static void *saver(void *arg)
{
	struct saver *s = arg;
	uint8_t *buf = malloc(420 * 1024);
	if (!buf) {
		s->errors++;
		return NULL;
	}
	for (int i = 0; i < NSHARED + NOWN; i++) {
		bool added = false;
		int rc;
		if (i % 2 == 0) {
			/* shared blobs, each thread in its own order */
			int k = (i / 2 * 7 + s->num * 13) % NSHARED;
			uint64_t seed = 10000 + (uint64_t)k;
			size_t n = blob_size(seed);
			make_blob(buf, n, seed);
			rc = cf_repo_save_blob(s->r, CF_BLOB_DATA, buf, n, s->shared_id[k], &added, NULL);
			if (added)
				s->shared_added++;
		} else {
			int k = i / 2;
			uint64_t seed = 20000 + (uint64_t)s->num * 1000 + (uint64_t)k;
			size_t n = blob_size(seed);
			make_blob(buf, n, seed);
			rc = cf_repo_save_blob(s->r, k % 5 ? CF_BLOB_DATA : CF_BLOB_TREE, buf, n,
					       s->own_id[k], &added, NULL);
			if (!added)
				s->errors++;
		}
		if (rc)
			s->errors++;
	}
	free(buf);
	return NULL;
}

static void test_concurrent_save(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	pthread_t t[NTHREADS];
	struct saver *s = calloc(NTHREADS, sizeof(*s));
	int total_shared_added = 0;

	assert_non_null(s);
	for (int i = 0; i < NTHREADS; i++) {
		s[i].r = r;
		s[i].num = i;
		assert_int_equal(pthread_create(&t[i], NULL, saver, &s[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(s[i].errors, 0);
		total_shared_added += s[i].shared_added;
	}
	/* each shared content was stored by exactly one thread, under one id */
	assert_int_equal(total_shared_added, NSHARED);
	for (int i = 1; i < NTHREADS; i++)
		assert_memory_equal(s[i].shared_id, s[0].shared_id, sizeof(s[0].shared_id));
	assert_int_equal(cf_repo_flush(r), CF_OK);
	cf_repo_free(r);

	r = reopen(f->dir);
	size_t want = NSHARED + NTHREADS * NOWN;
	assert_int_equal(index_count(r), want);

	/* the packs hold every blob exactly once */
	struct names ns = list_names(r, "data");
	size_t entries = 0;
	struct cf_index seen = { 0 };
	for (size_t p = 0; p < ns.n; p++) {
		struct cf_buf bytes = CF_BUF_INIT;
		struct cf_pack_entry *e;
		size_t n;
		parse_pack(r, ns.name[p], &bytes, &e, &n);
		for (size_t k = 0; k < n; k++) {
			struct cf_ientry ie = { .type = e[k].type };
			memcpy(ie.id, e[k].id, CF_ID_LEN);
			assert_null(cf_index_get(&seen, ie.type, ie.id));
			assert_int_equal(cf_index_put(&seen, &ie), CF_OK);
		}
		entries += n;
		free(e);
		cf_buf_release(&bytes);
	}
	assert_int_equal(entries, want);
	assert_true(ns.n >= 3); /* more than a pack of data blobs, plus a tree pack */
	cf_index_release(&seen);
	free(ns.name);

	uint8_t *buf = malloc(420 * 1024);
	assert_non_null(buf);
	for (int k = 0; k < NSHARED; k++) {
		uint64_t seed = 10000 + (uint64_t)k;
		make_blob(buf, blob_size(seed), seed);
		expect_blob(r, CF_BLOB_DATA, s[0].shared_id[k], buf, blob_size(seed));
	}
	for (int i = 0; i < NTHREADS; i++)
		for (int k = 0; k < NOWN; k++) {
			uint64_t seed = 20000 + (uint64_t)i * 1000 + (uint64_t)k;
			make_blob(buf, blob_size(seed), seed);
			expect_blob(r, k % 5 ? CF_BLOB_DATA : CF_BLOB_TREE, s[i].own_id[k], buf,
				    blob_size(seed));
		}
	assert_int_equal(cf_repo_check(r, true, NULL), CF_OK);
	free(buf);
	free(s);
	cf_repo_free(r);
}

static void test_two_writers_same_blob(void **state)
{
	/* Two backups may run at once (shared locks).  Both store the same new
	 * blob in their own pack and both index files name it: the spec says
	 * "a blob named twice is the same blob, either copy will do", so the
	 * repository must load and check clean. */
	struct fixture *f = *state;
	struct cf_repo *r0 = init_repo(f->dir), *r1 = reopen(f->dir), *r2 = reopen(f->dir);
	uint8_t common[30000], own[30000], idc1[CF_ID_LEN], idc2[CF_ID_LEN], ido[2][CF_ID_LEN];
	bool added;

	cf_repo_free(r0);
	fill_random(common, sizeof(common), 42);
	assert_int_equal(cf_repo_save_blob(r1, CF_BLOB_DATA, common, sizeof(common), idc1, &added, NULL), CF_OK);
	assert_true(added);
	assert_int_equal(cf_repo_save_blob(r2, CF_BLOB_DATA, common, sizeof(common), idc2, &added, NULL), CF_OK);
	assert_true(added); /* r2 cannot know about r1's unflushed blob */
	assert_memory_equal(idc1, idc2, CF_ID_LEN);
	fill_random(own, sizeof(own), 43);
	assert_int_equal(cf_repo_save_blob(r1, CF_BLOB_DATA, own, sizeof(own), ido[0], NULL, NULL), CF_OK);
	fill_random(own, sizeof(own), 44);
	assert_int_equal(cf_repo_save_blob(r2, CF_BLOB_DATA, own, sizeof(own), ido[1], NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r1), CF_OK);
	assert_int_equal(cf_repo_flush(r2), CF_OK);
	cf_repo_free(r1);
	cf_repo_free(r2);

	struct cf_repo *r = reopen(f->dir);
	assert_int_equal(count_objects(r, "data"), 2);
	assert_int_equal(count_objects(r, "index"), 2);
	assert_int_equal(index_count(r), 3);
	expect_blob(r, CF_BLOB_DATA, idc1, common, sizeof(common));
	expect_blob(r, CF_BLOB_DATA, ido[1], own, sizeof(own));
	struct cf_check_stats st;
	int rc = cf_repo_check(r, false, &st);
	if (rc)
		fail_msg("check of a repository with a blob in two packs: %s", cf_errmsg(rc));
	assert_int_equal(cf_repo_check(r, true, &st), CF_OK);
	cf_repo_free(r);
}

/* One blob in two packs (two writers), so two index files list it at two
 * places.  The first place damaged: cf_repo_load_blob still returns the
 * blob from the other; both damaged: it fails naming the pack.  The first
 * place's pack deleted: loading the index makes the copy the store has the
 * first location (what restore plans with).  The side table holds just the
 * one extra location. */
static void corrupt_at(const char *dir, const struct cf_blob_loc *loc)
{
	char hex[CF_ID_HEX], rel[128], path[256];
	cf_hex(loc->pack, CF_ID_LEN, hex);
	cf_repo_pack_path(hex, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, loc->offset + loc->length / 2), 1);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, loc->offset + loc->length / 2), 1);
	close(fd);
}

static void test_blob_other_copy(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r0 = init_repo(f->dir), *r1 = reopen(f->dir), *r2 = reopen(f->dir);
	uint8_t common[30000], id[CF_ID_LEN], id2[CF_ID_LEN];
	struct cf_blob_loc l0, l1, l2;
	struct cf_buf b = CF_BUF_INIT;

	cf_repo_free(r0);
	fill_random(common, sizeof(common), 52);
	assert_int_equal(cf_repo_save_blob(r1, CF_BLOB_DATA, common, sizeof(common), id, NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_save_blob(r2, CF_BLOB_DATA, common, sizeof(common), id2, NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r1), CF_OK);
	assert_int_equal(cf_repo_flush(r2), CF_OK);
	cf_repo_free(r1);
	cf_repo_free(r2);

	struct cf_repo *r = reopen(f->dir);
	assert_int_equal(r->idx.n, 1);
	assert_int_equal(r->idx.naltn, 1);
	assert_int_equal(cf_repo_lookup_nth(r, CF_BLOB_DATA, id, 0, &l0), CF_OK);
	assert_int_equal(cf_repo_lookup_nth(r, CF_BLOB_DATA, id, 1, &l1), CF_OK);
	assert_int_equal(cf_repo_lookup_nth(r, CF_BLOB_DATA, id, 2, &l2), CF_ENOENT);
	assert_memory_not_equal(l0.pack, l1.pack, CF_ID_LEN);
	cf_repo_free(r);

	corrupt_at(f->dir, &l0);
	r = reopen(f->dir);
	expect_blob(r, CF_BLOB_DATA, id, common, sizeof(common));
	/* the damaged copy alone fails, naming its pack */
	char hex[CF_ID_HEX];
	cf_hex(l0.pack, CF_ID_LEN, hex);
	int rc = cf_repo_load_blob_except(r, CF_BLOB_DATA, id, l1.pack, &b);
	assert_int_equal(rc, CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(rc), hex));
	rc = cf_repo_load_blob_except(r, CF_BLOB_DATA, id, l0.pack, &b);
	assert_int_equal(rc, CF_OK);
	assert_memory_equal(b.data, common, sizeof(common));
	cf_repo_free(r);

	corrupt_at(f->dir, &l1);
	r = reopen(f->dir);
	rc = cf_repo_load_blob(r, CF_BLOB_DATA, id, &b);
	assert_int_equal(rc, CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(rc), "1 other copies"));
	cf_repo_free(r);

	/* the first place's pack gone: the other becomes the first location */
	char rel[128], path[256];
	cf_repo_pack_path(hex, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	assert_int_equal(unlink(path), 0);
	r = reopen(f->dir);
	assert_int_equal(cf_repo_lookup(r, CF_BLOB_DATA, id, &l2), CF_OK);
	assert_memory_equal(l2.pack, l1.pack, CF_ID_LEN);
	cf_repo_free(r);
	cf_buf_release(&b);
}

static void make_snap(struct cf_repo *r, struct cf_snapshot *s, int64_t t, const char *host,
		      const char *tags, const char *paths);

/* Snapshot and index files are used only under their own name (the hash of
 * their stored bytes): two snapshot files swapped are both refused, named,
 * and counted as bad; an index file copied over another's name is skipped
 * (its blobs come from its own file), and the blobs only the overwritten
 * file knew are not found. */
static void test_names_verified(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	struct cf_snapshot a, c, *l = NULL;
	uint8_t d1[5000], d2[5000], i1[CF_ID_LEN], i2[CF_ID_LEN];
	char ha[CF_ID_HEX], hc[CF_ID_HEX], pa[256], pc[256], tmp[256];
	size_t n = 9, bad = 0;

	make_snap(r, &a, 1000, "h1", "", "/a");
	make_snap(r, &c, 2000, "h2", "", "/c");
	cf_hex(a.id, CF_ID_LEN, ha);
	cf_hex(c.id, CF_ID_LEN, hc);
	snprintf(pa, sizeof(pa), "%s/snapshots/%s", f->dir, ha);
	snprintf(pc, sizeof(pc), "%s/snapshots/%s", f->dir, hc);
	snprintf(tmp, sizeof(tmp), "%s/snapshots/x", f->dir);
	assert_int_equal(rename(pa, tmp), 0);
	assert_int_equal(rename(pc, pa), 0);
	assert_int_equal(rename(tmp, pc), 0);
	assert_int_equal(cf_repo_snapshots(r, &l, &n, &bad), CF_OK);
	assert_int_equal(n, 0);
	assert_int_equal(bad, 2);
	cf_snapshots_free(l, n);
	cf_snapshot_release(&a);
	cf_snapshot_release(&c);

	fill_random(d1, sizeof(d1), 61);
	fill_random(d2, sizeof(d2), 62);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, d1, sizeof(d1), i1, NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	struct names before = list_names(r, "index");
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, d2, sizeof(d2), i2, NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	struct names after = list_names(r, "index");
	assert_int_equal(before.n, 1);
	assert_int_equal(after.n, 2);
	const char *second = strcmp(after.name[0], before.name[0]) ? after.name[0] : after.name[1];
	char p1[256], p2[256];
	snprintf(p1, sizeof(p1), "%s/index/%s", f->dir, before.name[0]);
	snprintf(p2, sizeof(p2), "%s/index/%s", f->dir, second);
	cf_repo_free(r);
	/* the first index file's bytes under the second's name */
	int in = open(p1, O_RDONLY), out = open(p2, O_WRONLY | O_TRUNC);
	assert_true(in >= 0 && out >= 0);
	char buf[65536];
	ssize_t got = read(in, buf, sizeof(buf));
	assert_true(got > 0);
	assert_int_equal(write(out, buf, (size_t)got), got);
	close(in);
	close(out);
	r = reopen(f->dir);
	expect_blob(r, CF_BLOB_DATA, i1, d1, sizeof(d1));
	assert_false(cf_repo_has_blob(r, CF_BLOB_DATA, i2));
	struct cf_check_stats st;
	int rc = cf_repo_check(r, false, &st);
	assert_int_equal(rc, CF_ECORRUPT);
	assert_true(st.errors >= 1);
	cf_repo_free(r);
	free(before.name);
	free(after.name);
}

/* ---- crash safety ---- */

static void test_crash_without_flush(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	enum { NB = CF_PACK_TARGET / MiB + 4 };
	uint8_t *buf = malloc(MiB), ids[NB + 1][CF_ID_LEN], idt[CF_ID_LEN];
	struct cf_buf b = CF_BUF_INIT;
	bool added;

	assert_non_null(buf);
	/* a pack and 4 MiB: the first pack is uploaded on its own, the rest and
	 * a tree blob are still in memory when the process "dies" */
	for (int i = 0; i < NB; i++) {
		fill_random(buf, MiB, 300 + (uint64_t)i);
		assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, buf, MiB, ids[i], &added, NULL), CF_OK);
	}
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_TREE, "{\"nodes\":[]}", 12, idt, &added, NULL), CF_OK);
	/* the full pack is uploaded in the background; freeing the repository
	 * lets the upload finish but writes no index */
	cf_repo_free(r); /* no flush */

	r = reopen(f->dir);
	assert_int_equal(count_objects(r, "index"), 0);
	assert_int_equal(index_count(r), 0);
	for (int i = 0; i < NB; i++) {
		assert_false(cf_repo_has_blob(r, CF_BLOB_DATA, ids[i]));
		assert_int_equal(cf_repo_load_blob(r, CF_BLOB_DATA, ids[i], &b), CF_ENOENT);
	}
	assert_false(cf_repo_has_blob(r, CF_BLOB_TREE, idt));
	/* the uploaded pack is garbage (no index names it), not corruption */
	assert_int_equal(count_objects(r, "data"), 1);
	struct cf_check_stats st;
	assert_int_equal(cf_repo_check(r, true, &st), CF_OK);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.packs, 1);

	/* the next run stores them again and all is well */
	for (int i = 0; i < NB; i++) {
		fill_random(buf, MiB, 300 + (uint64_t)i);
		assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, buf, MiB, ids[NB], &added, NULL), CF_OK);
		assert_true(added);
		assert_memory_equal(ids[NB], ids[i], CF_ID_LEN);
	}
	assert_int_equal(cf_repo_flush(r), CF_OK);
	cf_repo_free(r);
	r = reopen(f->dir);
	for (int i = 0; i < NB; i++) {
		fill_random(buf, MiB, 300 + (uint64_t)i);
		expect_blob(r, CF_BLOB_DATA, ids[i], buf, MiB);
	}
	assert_int_equal(cf_repo_check(r, true, NULL), CF_OK);
	cf_repo_free(r);
	cf_buf_release(&b);
	free(buf);
}

/* ---- packs ---- */

static void test_pack_split(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	uint8_t *buf = malloc(MiB), ids[40][CF_ID_LEN];
	bool added;

	assert_non_null(buf);
	for (int i = 0; i < 40; i++) {
		fill_random(buf, MiB, 500 + (uint64_t)i);
		assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, buf, MiB, ids[i], &added, NULL), CF_OK);
	}
	assert_int_equal(cf_repo_flush(r), CF_OK);
	cf_repo_free(r);

	r = reopen(f->dir);
	struct names ns = list_names(r, "data");
	assert_true(ns.n >= 2);
	size_t entries = 0;
	for (size_t p = 0; p < ns.n; p++) {
		struct cf_buf bytes = CF_BUF_INIT;
		struct cf_pack_entry *e;
		size_t n;
		parse_pack(r, ns.name[p], &bytes, &e, &n);
		/* closed once it reaches CF_PACK_TARGET: at most one blob over */
		assert_true(bytes.len <= CF_PACK_TARGET + MiB + CF_SEAL_OVERHEAD + 4 +
			    n * (CF_ENTRY_SIZE + CF_SEAL_OVERHEAD));
		/* the pack's name is the SHA-256 of its sealed header and
		 * trailer (format 3): the trailer gives the header's length */
		uint8_t h[CF_ID_LEN];
		char hex[CF_ID_HEX];
		uint32_t hl = cf_get_le32(bytes.data + bytes.len - 4);
		assert_true(hl + 4 <= bytes.len && hl > n * CF_ENTRY_SIZE);
		cf_hash_with(CF_HASH_SHA256, bytes.data + bytes.len - 4 - hl, hl + 4, h);
		cf_hex(h, CF_ID_LEN, hex);
		assert_string_equal(hex, ns.name[p]);
		entries += n;
		free(e);
		cf_buf_release(&bytes);
	}
	assert_int_equal(entries, 40);
	for (int i = 0; i < 40; i++) {
		fill_random(buf, MiB, 500 + (uint64_t)i);
		expect_blob(r, CF_BLOB_DATA, ids[i], buf, MiB);
	}
	free(ns.name);
	free(buf);
	cf_repo_free(r);
}

static void test_tree_and_data_packs_separate(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	uint8_t buf[20000], id[CF_ID_LEN];
	int ntree = 0, ndata = 0;

	for (int i = 0; i < 60; i++) {
		fill_random(buf, sizeof(buf), 700 + (uint64_t)i);
		assert_int_equal(cf_repo_save_blob(r, i % 3 ? CF_BLOB_DATA : CF_BLOB_TREE, buf,
						   sizeof(buf), id, NULL, NULL), CF_OK);
	}
	assert_int_equal(cf_repo_flush(r), CF_OK);
	struct names ns = list_names(r, "data");
	assert_int_equal(ns.n, 2);
	for (size_t p = 0; p < ns.n; p++) {
		struct cf_buf bytes = CF_BUF_INIT;
		struct cf_pack_entry *e;
		size_t n;
		parse_pack(r, ns.name[p], &bytes, &e, &n);
		assert_true(n > 0);
		for (size_t k = 1; k < n; k++)
			assert_int_equal(e[k].type, e[0].type);
		if (e[0].type == CF_BLOB_TREE)
			ntree += (int)n;
		else
			ndata += (int)n;
		free(e);
		cf_buf_release(&bytes);
	}
	assert_int_equal(ntree, 20);
	assert_int_equal(ndata, 40);
	free(ns.name);
	cf_repo_free(r);
}

/* ---- trees from a remote store: one GET per tree pack ---- */

/* A backend that forwards to a real one and counts reads of packs.  Its name
 * is not "local", so the repository treats it as a remote store. */
struct counting {
	struct cf_backend base;
	struct cf_backend *inner;
	int pack_gets, pack_ranges;
};
#define CNT(be) ((struct counting *)(be))

static int c_create(struct cf_backend *be) { return CNT(be)->inner->ops->create(CNT(be)->inner); }
static int c_put(struct cf_backend *be, const char *p, const void *d, size_t n)
{ return cf_be_put(CNT(be)->inner, p, d, n); }
static int c_put_iov(struct cf_backend *be, const char *p, const struct iovec *iov, int n,
		     const uint8_t *sha256)
{ return cf_be_put_iov(CNT(be)->inner, p, iov, n, sha256); }
static int c_get(struct cf_backend *be, const char *p, struct cf_buf *out)
{
	if (!strncmp(p, "data/", 5))
		__atomic_add_fetch(&CNT(be)->pack_gets, 1, __ATOMIC_SEQ_CST);
	return cf_be_get(CNT(be)->inner, p, out);
}
static int c_get_range(struct cf_backend *be, const char *p, uint64_t off, size_t n, struct cf_buf *out)
{
	if (!strncmp(p, "data/", 5))
		__atomic_add_fetch(&CNT(be)->pack_ranges, 1, __ATOMIC_SEQ_CST);
	return cf_be_get_range(CNT(be)->inner, p, off, n, out);
}
static int c_stat(struct cf_backend *be, const char *p, uint64_t *size)
{ return cf_be_stat(CNT(be)->inner, p, size); }
static int c_list(struct cf_backend *be, const char *dir, cf_list_fn fn, void *ctx)
{ return cf_be_list(CNT(be)->inner, dir, fn, ctx); }
static int c_remove(struct cf_backend *be, const char *p) { return cf_be_remove(CNT(be)->inner, p); }
static void c_free(struct cf_backend *be)
{
	cf_backend_free(CNT(be)->inner);
	free(be);
}
static const struct cf_backend_ops counting_ops = {
	.name = "counting", .create = c_create, .put = c_put, .get = c_get, .get_range = c_get_range,
	.stat = c_stat, .list = c_list, .remove = c_remove, .free = c_free, .put_iov = c_put_iov,
};

static struct cf_backend *counting_new(const char *location)
{
	struct counting *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	int rc = cf_backend_open(location, NULL, &c->inner);
	if (rc)
		fail_msg("open %s: %s", location, cf_errmsg(rc));
	c->base.ops = &counting_ops;
	c->base.location = NULL;
	c->base.caps = CF_BE_REMOTE; /* a store where requests are counted: as S3 */
	return &c->base;
}

/* One directory's tree: n files named after i, with content ids from i. */
static void make_tree(struct cf_tree *t, int i, int n)
{
	for (int k = 0; k < n; k++) {
		struct cf_node *nd = cf_tree_add(t);
		assert_non_null(nd);
		char name[32];
		snprintf(name, sizeof(name), "f%d-%d", i, k);
		nd->name = strdup(name);
		nd->type = CF_NODE_FILE;
		nd->mode = 0644;
		nd->size = (uint64_t)i * 1000 + (uint64_t)k;
		nd->mtime_ns = (int64_t)i * 1000000007;
		nd->content = calloc(1, CF_ID_LEN);
		nd->ncontent = 1;
		fill_random(nd->content[0], CF_ID_LEN, (uint64_t)(i * 100 + k));
	}
	cf_tree_sort(t);
}

/* t, as loaded, encodes to the same bytes as tree number i as saved. */
static void assert_tree_is(const struct cf_tree *t, int i, struct cf_buf *got, struct cf_buf *want)
{
	struct cf_tree w = CF_TREE_INIT;
	make_tree(&w, i, 1 + i % 7);
	assert_int_equal(cf_tree_encode(t, got), CF_OK);
	assert_int_equal(cf_tree_encode(&w, want), CF_OK);
	assert_int_equal(got->len, want->len);
	assert_memory_equal(got->data, want->data, got->len);
	cf_tree_release(&w);
}

/* Saves ntrees trees through a counting backend at location, reopens, loads
 * them all, and checks every tree decodes to what was saved while the pack
 * reads stay one per tree pack, not one per tree. */
static void trees_few_gets(const char *location)
{
	enum { NTREES = 400 };
	struct cf_repo_init_opts o = { .compression = -1, .kdf_opslimit = 1, .kdf_memlimit = 8192 };
	struct cf_repo *r = NULL;
	static uint8_t ids[NTREES][CF_ID_LEN];
	struct cf_buf want = CF_BUF_INIT, got = CF_BUF_INIT;

	int rc = cf_repo_init(counting_new(location), PW, strlen(PW), &o, &r);
	if (rc)
		fail_msg("init: %s", cf_errmsg(rc));
	for (int i = 0; i < NTREES; i++) {
		struct cf_tree t = CF_TREE_INIT;
		make_tree(&t, i, 1 + i % 7);
		assert_int_equal(cf_repo_save_tree(r, &t, ids[i], NULL, NULL), CF_OK);
		cf_tree_release(&t);
	}
	assert_int_equal(cf_repo_flush(r), CF_OK);
	size_t npacks = count_objects(r, "data");
	cf_repo_free(r);

	struct cf_backend *be = counting_new(location);
	assert_int_equal(cf_repo_open(be, PW, strlen(PW), &r), CF_OK);
	assert_int_equal(cf_repo_load_index(r), CF_OK);
	/* twice over, in an order unlike the pack's, as backup and restore would */
	for (int pass = 0; pass < 2; pass++) {
		for (int j = 0; j < NTREES; j++) {
			int i = (j * 7919) % NTREES;
			struct cf_tree t = CF_TREE_INIT;
			assert_int_equal(cf_repo_load_tree(r, ids[i], &t), CF_OK);
			assert_tree_is(&t, i, &got, &want);
			cf_tree_release(&t);
		}
	}
	int gets = CNT(be)->pack_gets + CNT(be)->pack_ranges;
	print_message("%d trees in %zu pack(s): %d pack reads (%d whole, %d ranged)\n", NTREES, npacks,
		      gets, CNT(be)->pack_gets, CNT(be)->pack_ranges);
	assert_true(npacks >= 1);
	assert_int_equal(CNT(be)->pack_ranges, 0);
	assert_true((size_t)CNT(be)->pack_gets <= npacks);
	assert_int_equal(cf_repo_tree_pack_fetches(r), (unsigned long)CNT(be)->pack_gets);

	/* a damaged tree in a fetched pack is still found: flip a byte of the
	 * first pack on the store, reopen, and every tree either fails
	 * authentication naming the pack or loads exactly */
	struct names ns = list_names(r, "data");
	char path[128];
	struct cf_buf pk = CF_BUF_INIT;
	cf_repo_pack_path(ns.name[0], path, sizeof(path));
	assert_int_equal(cf_be_get(CNT(be)->inner, path, &pk), CF_OK);
	pk.data[pk.len / 3] ^= 0x40;
	assert_int_equal(cf_be_remove(CNT(be)->inner, path), CF_OK); /* a put of an existing name may keep it */
	assert_int_equal(cf_be_put(CNT(be)->inner, path, pk.data, pk.len), CF_OK);
	cf_repo_free(r);
	assert_int_equal(cf_repo_open(counting_new(location), PW, strlen(PW), &r), CF_OK);
	assert_int_equal(cf_repo_load_index(r), CF_OK);
	int bad = 0;
	for (int i = 0; i < NTREES; i++) {
		struct cf_tree t = CF_TREE_INIT;
		rc = cf_repo_load_tree(r, ids[i], &t);
		if (rc) {
			assert_int_equal(rc, CF_ECORRUPT);
			assert_non_null(strstr(cf_errmsg(rc), ns.name[0]));
			assert_non_null(strstr(cf_errmsg(rc), "authentication"));
			bad++;
		} else {
			assert_tree_is(&t, i, &got, &want);
		}
		cf_tree_release(&t);
	}
	assert_int_equal(bad, 1);
	free(ns.name);
	cf_buf_release(&pk);
	cf_buf_release(&want);
	cf_buf_release(&got);
	cf_repo_free(r);
}

static void test_trees_remote_few_gets(void **state)
{
	struct fixture *f = *state;
	trees_few_gets(f->dir);
}

static void test_trees_s3_few_gets(void **state)
{
	(void)state;
	const char *u = getenv("COFFER_TEST_S3");
	if (!u || !*u) {
		print_message("COFFER_TEST_S3 not set: skipped\n");
		skip();
	}
	char loc[600];
	snprintf(loc, sizeof(loc), "s3:%s/treecache-%ld", u, (long)getpid());
	trees_few_gets(loc);
}

/* ---- snapshots ---- */

static void make_snap(struct cf_repo *r, struct cf_snapshot *s, int64_t t, const char *host,
		      const char *tags, const char *paths)
{
	char *copy, *tok, *save;
	memset(s, 0, sizeof(*s));
	s->time_ns = t;
	s->hostname = strdup(host);
	s->username = strdup("tester");
	assert_non_null(s->hostname);
	fill_random(s->tree, CF_ID_LEN, (uint64_t)t);
	copy = strdup(tags);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		assert_int_equal(cf_snapshot_add_tag(s, tok), CF_OK);
	free(copy);
	copy = strdup(paths);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		assert_int_equal(cf_snapshot_add_path(s, tok), CF_OK);
	free(copy);
	assert_int_equal(cf_repo_save_snapshot(r, s), CF_OK);
}

static long pick(const struct cf_snapshot *l, size_t n, const char *spec, const char *host,
		 const char *tag1, const char *tag2, const char *path1, const char *path2)
{
	const char *tags[2] = { tag1, tag2 }, *paths[2] = { path1, path2 };
	struct cf_snapshot_filter flt = { .host = host, .tags = tags,
					  .ntags = tag2 ? 2 : tag1 ? 1 : 0,
					  .paths = paths, .npaths = path2 ? 2 : path1 ? 1 : 0 };
	return cf_snapshot_pick(l, n, spec, &flt);
}

static void test_snapshots(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	struct cf_snapshot in[4], *l = NULL;
	size_t n = 0, bad = 9;
	const int64_t T = 1767225600LL * 1000000000; /* 2026-01-01 */

	/* saved out of time order: the list comes back sorted by time */
	make_snap(r, &in[2], T + 3000000000LL, "h1", "", "/etc,/home");
	make_snap(r, &in[0], T + 1000000001LL, "h1", "daily", "/etc");
	make_snap(r, &in[3], T + 4000000000LL, "h2", "weekly", "/etc");
	make_snap(r, &in[1], T + 2000000000LL, "h2", "daily,db", "/var");
	cf_repo_free(r);

	r = reopen(f->dir);
	assert_int_equal(cf_repo_snapshots(r, &l, &n, &bad), CF_OK);
	assert_int_equal(n, 4);
	assert_int_equal(bad, 0);
	for (size_t i = 0; i < 4; i++) {
		assert_memory_equal(l[i].id, in[i].id, CF_ID_LEN);
		assert_int_equal(l[i].time_ns, in[i].time_ns);
		assert_string_equal(l[i].hostname, in[i].hostname);
		assert_memory_equal(l[i].tree, in[i].tree, CF_ID_LEN);
		assert_int_equal(l[i].ntags, in[i].ntags);
		assert_int_equal(l[i].npaths, in[i].npaths);
	}
	assert_string_equal(l[1].tags[1], "db");
	assert_string_equal(l[2].paths[1], "/home");

	assert_int_equal(pick(l, n, "latest", NULL, NULL, NULL, NULL, NULL), 3);
	assert_int_equal(pick(l, n, "latest", "h1", NULL, NULL, NULL, NULL), 2);
	assert_int_equal(pick(l, n, "latest", NULL, "daily", NULL, NULL, NULL), 1);
	assert_int_equal(pick(l, n, "latest", NULL, "db", "daily", NULL, NULL), 1);
	assert_int_equal(pick(l, n, "latest", "h1", "daily", NULL, NULL, NULL), 0);
	assert_int_equal(pick(l, n, "latest", NULL, NULL, NULL, "/etc", NULL), 3);
	assert_int_equal(pick(l, n, "latest", NULL, NULL, NULL, "/home", "/etc"), 2);
	/* --path (restic): snapshots that include the path, here h1's /etc,/home */
	assert_int_equal(pick(l, n, "latest", "h1", NULL, NULL, "/etc", NULL), 2);
	{
		/* the parent search wants exactly the same set of paths */
		const char *p1[1] = { "/etc" };
		struct cf_snapshot_filter ex = { .host = "h1", .paths = p1, .npaths = 1, .exact_paths = true };
		assert_int_equal(cf_snapshot_pick(l, n, "latest", &ex), 0);
	}
	cf_err_clear();
	assert_int_equal(pick(l, n, "latest", "h3", NULL, NULL, NULL, NULL), -1);
	assert_int_equal(pick(l, n, "latest", NULL, "weekly", "daily", NULL, NULL), -1);
	assert_int_equal(pick(l, 0, "latest", NULL, NULL, NULL, NULL, NULL), -1);

	char hex[CF_ID_HEX];
	for (size_t i = 0; i < 4; i++) {
		cf_hex(l[i].id, CF_ID_LEN, hex);
		assert_int_equal(pick(l, n, hex, NULL, NULL, NULL, NULL, NULL), (long)i);
		hex[8] = 0;
		assert_int_equal(cf_snapshot_pick(l, n, hex, NULL), (long)i);
	}
	assert_int_equal(cf_snapshot_pick(l, n, "", NULL), -1);
	/* a full-length id that no snapshot has */
	cf_hex(l[0].id, CF_ID_LEN, hex);
	hex[63] = hex[63] == '0' ? '1' : '0';
	cf_err_clear();
	assert_int_equal(cf_snapshot_pick(l, n, hex, NULL), -1);
	assert_non_null(strstr(cf_errmsg(CF_ENOENT), hex));
	assert_int_equal(cf_snapshot_pick(l, n, "zz", NULL), -1);
	cf_snapshots_free(l, n);

	/* ambiguous prefix: with 17 snapshots two share the first hex digit */
	for (int i = 0; i < 13; i++) {
		struct cf_snapshot s;
		make_snap(r, &s, T + 10000000000LL + i, "h9", "", "/x");
		cf_snapshot_release(&s);
	}
	assert_int_equal(cf_repo_snapshots(r, &l, &n, NULL), CF_OK);
	assert_int_equal(n, 17);
	int shared = -1;
	for (int d = 0; d < 16 && shared < 0; d++) {
		int c = 0;
		for (size_t i = 0; i < n; i++) {
			cf_hex(l[i].id, CF_ID_LEN, hex);
			c += hex[0] == "0123456789abcdef"[d];
		}
		if (c >= 2)
			shared = d;
	}
	assert_true(shared >= 0);
	char amb[2] = { "0123456789abcdef"[shared], 0 };
	cf_err_clear();
	assert_int_equal(cf_snapshot_pick(l, n, amb, NULL), -1);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "ambiguous"));
	cf_snapshots_free(l, n);

	/* a damaged snapshot object is reported and skipped, the rest listed */
	char path[256];
	cf_hex(in[0].id, CF_ID_LEN, hex);
	snprintf(path, sizeof(path), "%s/snapshots/%s", f->dir, hex);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 30), 1);
	close(fd);
	assert_int_equal(cf_repo_snapshots(r, &l, &n, &bad), CF_OK);
	assert_int_equal(n, 16);
	assert_int_equal(bad, 1);
	cf_snapshots_free(l, n);

	for (int i = 0; i < 4; i++)
		cf_snapshot_release(&in[i]);
	cf_repo_free(r);
}

/* ---- locks ---- */

static void *free_later(void *arg)
{
	usleep(500 * 1000);
	cf_repo_free(arg);
	return NULL;
}

static void test_locks(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r1 = init_repo(f->dir), *r2 = reopen(f->dir), *r3 = reopen(f->dir);
	char host[256], pidstr[64];

	gethostname(host, sizeof(host));
	snprintf(pidstr, sizeof(pidstr), "pid %ld", (long)getpid());

	assert_int_equal(cf_repo_lock(r1, false, 0), CF_OK);
	assert_int_equal(count_objects(r1, "locks"), 1);
	assert_int_equal(cf_repo_lock(r2, false, 0), CF_OK); /* shared + shared */
	assert_int_equal(count_objects(r1, "locks"), 2);
	cf_err_clear();
	assert_int_equal(cf_repo_lock(r3, true, 0), CF_ELOCKED);
	const char *msg = cf_errmsg(CF_ELOCKED);
	assert_non_null(strstr(msg, host));
	assert_non_null(strstr(msg, pidstr));
	/* the failed attempt took its own lock object back */
	assert_int_equal(count_objects(r1, "locks"), 2);

	/* waiting with a retry: succeeds once the holders are gone */
	cf_repo_free(r2);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, free_later, r1), 0);
	double t0 = cf_now_mono();
	assert_int_equal(cf_repo_lock(r3, true, 10), CF_OK);
	assert_true(cf_now_mono() - t0 < 9);
	pthread_join(t, NULL);
	assert_int_equal(count_objects(r3, "locks"), 1);

	/* an exclusive lock keeps out shared ones too */
	r1 = reopen(f->dir);
	cf_err_clear();
	assert_int_equal(cf_repo_lock(r1, false, 0), CF_ELOCKED);
	assert_non_null(strstr(cf_errmsg(CF_ELOCKED), "exclusive"));
	assert_non_null(strstr(cf_errmsg(CF_ELOCKED), pidstr));
	cf_repo_free(r3);
	assert_int_equal(cf_repo_lock(r1, false, 0), CF_OK);
	cf_repo_free(r1);
	r1 = reopen(f->dir);
	assert_int_equal(count_objects(r1, "locks"), 0);
	cf_repo_free(r1);
}

static void fake_lock(struct cf_repo *r, int64_t t, const char *host, long pid, bool excl)
{
	char ts[64], hex[CF_ID_HEX];
	char *j = NULL;
	cf_format_time(t, ts, sizeof(ts));
	assert_true(asprintf(&j, "{\"time\":\"%s\",\"hostname\":\"%s\",\"username\":\"someone\","
			     "\"pid\":%ld,\"exclusive\":%s}", ts, host, pid,
			     excl ? "true" : "false") > 0);
	assert_int_equal(cf_repo_put_hashed(r, "locks", CF_OBJ_LOCK, j, strlen(j), hex, NULL), CF_OK);
	free(j);
}

/* A lock written by this host, boot and PID namespace (the new format):
 * only such a lock is judged stale by its pid (issue 23). */
static void fake_local_lock(struct cf_repo *r, int64_t t, long pid, bool excl)
{
	char ts[64], hex[CF_ID_HEX];
	char *j = NULL;
	struct cf_lock_id self;
	cf_lock_self(&self);
	assert_true(self.has_ns);
	cf_format_time(t, ts, sizeof(ts));
	assert_true(asprintf(&j, "{\"time\":\"%s\",\"hostname\":\"%s\",\"username\":\"someone\","
			     "\"pid\":%ld,\"exclusive\":%s,\"boot_id\":\"%s\",\"pidns\":%llu}", ts,
			     self.host, pid, excl ? "true" : "false", self.boot_id,
			     (unsigned long long)self.pidns) > 0);
	assert_int_equal(cf_repo_put_hashed(r, "locks", CF_OBJ_LOCK, j, strlen(j), hex, NULL), CF_OK);
	free(j);
}

static void test_unlock_stale(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	char host[256];
	int removed = -1;

	gethostname(host, sizeof(host));
	pid_t dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);

	int64_t now = cf_now_ns();
	fake_lock(r, now - 2 * 3600 * 1000000000LL, "otherhost", 4242, true); /* too old */
	fake_local_lock(r, now, dead, true);                                /* this host, dead pid */
	fake_lock(r, now - 60 * 1000000000LL, "otherhost", 4243, false);     /* live, shared */
	assert_int_equal(count_objects(r, "locks"), 3);

	/* stale locks do not block; the live shared one blocks exclusive only */
	cf_err_clear();
	assert_int_equal(cf_repo_lock(r, true, 0), CF_ELOCKED);
	assert_non_null(strstr(cf_errmsg(CF_ELOCKED), "otherhost"));
	assert_non_null(strstr(cf_errmsg(CF_ELOCKED), "pid 4243"));
	assert_int_equal(cf_repo_lock(r, false, 0), CF_OK);
	cf_repo_lock_release(r);

	assert_int_equal(cf_repo_unlock_stale(r, false, &removed), CF_OK);
	assert_int_equal(removed, 2);
	assert_int_equal(count_objects(r, "locks"), 1);
	assert_int_equal(cf_repo_unlock_stale(r, false, &removed), CF_OK);
	assert_int_equal(removed, 0);

	/* an unreadable lock counts as live (we cannot tell whose it is) */
	assert_int_equal(cf_be_put(cf_repo_backend(r),
				   "locks/00000000000000000000000000000000000000000000000000000000000000ff",
				   "garbage that does not open", 26), CF_OK);
	assert_int_equal(cf_repo_lock(r, false, 0), CF_ELOCKED);
	assert_int_equal(cf_repo_unlock_stale(r, false, &removed), CF_OK);
	assert_int_equal(removed, 0);
	/* --remove-all takes everything */
	assert_int_equal(cf_repo_unlock_stale(r, true, &removed), CF_OK);
	assert_int_equal(removed, 2);
	assert_int_equal(count_objects(r, "locks"), 0);
	assert_int_equal(cf_repo_lock(r, true, 0), CF_OK);
	cf_repo_free(r);
}

/* ---- keys ---- */

static void test_keys(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir), *r2 = NULL;
	struct cf_keyinfo *k = NULL;
	size_t n = 0;
	char first[CF_ID_HEX], second[CF_ID_HEX];
	uint8_t id[CF_ID_LEN];

	memcpy(id, cf_repo_config(r)->id, CF_ID_LEN);
	snprintf(first, sizeof(first), "%s", cf_repo_key_name(r));
	assert_int_equal(cf_repo_keys(r, &k, &n), CF_OK);
	assert_int_equal(n, 1);
	assert_string_equal(k[0].name, first);
	assert_true(k[0].current);
	assert_non_null(k[0].created);
	cf_keyinfo_free(k, n);

	assert_int_equal(cf_repo_key_add(r, "second pw", 9, 1, 8192, second), CF_OK);
	assert_string_not_equal(first, second);
	assert_int_equal(cf_repo_keys(r, &k, &n), CF_OK);
	assert_int_equal(n, 2);
	assert_int_equal((int)k[0].current + (int)k[1].current, 1);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(k[i].current, strcmp(k[i].name, first) == 0);
	cf_keyinfo_free(k, n);

	/* both passwords open the same repository */
	assert_int_equal(open_pw(f->dir, "second pw", &r2), CF_OK);
	assert_string_equal(cf_repo_key_name(r2), second);
	assert_memory_equal(cf_repo_config(r2)->id, id, CF_ID_LEN);

	/* the key in use cannot be removed; prefixes must be unique */
	assert_int_equal(cf_repo_key_remove(r2, second), CF_EINVAL);
	assert_int_equal(cf_repo_key_remove(r2, ""), CF_EINVAL);
	assert_int_equal(cf_repo_key_remove(r2, "not-a-key"), CF_ENOENT);
	char prefix[9];
	snprintf(prefix, sizeof(prefix), "%.8s", first);
	assert_int_equal(cf_repo_key_remove(r2, prefix), CF_OK);
	assert_int_equal(count_objects(r2, "keys"), 1);
	cf_repo_free(r2);
	cf_repo_free(r);

	assert_int_equal(open_pw(f->dir, PW, &r), CF_EBADPASS);
	assert_int_equal(open_pw(f->dir, "second pw", &r), CF_OK);
	cf_repo_free(r);
}

/* ---- check ---- */

/* A small snapshot built by hand: /dir/file (3 data blobs). */
static void build_snapshot(struct cf_repo *r, uint8_t ids[3][CF_ID_LEN])
{
	struct cf_tree sub = CF_TREE_INIT, root = CF_TREE_INIT;
	uint8_t buf[100000], subid[CF_ID_LEN];
	struct cf_snapshot s;

	for (int i = 0; i < 3; i++) {
		(i == 1 ? fill_text : fill_random)(buf, sizeof(buf), 900 + (uint64_t)i);
		assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, buf, sizeof(buf), ids[i], NULL, NULL),
				 CF_OK);
	}
	struct cf_node *nd = cf_tree_add(&sub);
	assert_non_null(nd);
	nd->name = strdup("file");
	nd->type = CF_NODE_FILE;
	nd->mode = 0644;
	nd->size = 3 * sizeof(buf);
	nd->content = malloc(3 * CF_ID_LEN);
	assert_non_null(nd->content);
	memcpy(nd->content, ids, 3 * CF_ID_LEN);
	nd->ncontent = 3;
	assert_int_equal(cf_repo_save_tree(r, &sub, subid, NULL, NULL), CF_OK);
	nd = cf_tree_add(&root);
	assert_non_null(nd);
	nd->name = strdup("dir");
	nd->type = CF_NODE_DIR;
	nd->mode = 0755;
	nd->has_subtree = true;
	memcpy(nd->subtree, subid, CF_ID_LEN);
	memset(&s, 0, sizeof(s));
	assert_int_equal(cf_repo_save_tree(r, &root, s.tree, NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	s.time_ns = cf_now_ns();
	s.hostname = strdup("checkhost");
	assert_int_equal(cf_snapshot_add_path(&s, "/dir"), CF_OK);
	assert_int_equal(cf_repo_save_snapshot(r, &s), CF_OK);
	cf_snapshot_release(&s);
	cf_tree_release(&sub);
	cf_tree_release(&root);
}

/* The pack (hex) holding blob id of type. */
static void pack_of(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN], char hex[CF_ID_HEX],
		    struct cf_blob_loc *loc)
{
	assert_int_equal(cf_repo_lookup(r, type, id, loc), CF_OK);
	cf_hex(loc->pack, CF_ID_LEN, hex);
}

static void test_check(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	uint8_t ids[3][CF_ID_LEN];
	struct cf_check_stats st;
	struct cf_blob_loc loc;
	char hex[CF_ID_HEX], path[256];
	struct cf_buf b = CF_BUF_INIT;

	build_snapshot(r, ids);
	cf_repo_free(r);
	r = reopen(f->dir);
	memset(&st, 0, sizeof(st));
	assert_int_equal(cf_repo_check(r, false, &st), CF_OK);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.snapshots, 1);
	assert_int_equal(st.trees, 2);
	assert_int_equal(st.packs, 2);
	assert_int_equal(cf_repo_check(r, true, &st), CF_OK);
	assert_int_equal(st.blobs_read, 5);

	/* flip one byte inside the sealed second data blob */
	pack_of(r, CF_BLOB_DATA, ids[1], hex, &loc);
	snprintf(path, sizeof(path), "%s/data/%.2s/%s", f->dir, hex, hex);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t c;
	off_t at = (off_t)loc.offset + loc.length / 2;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);

	/* the structure is intact (sizes match), the data is not */
	assert_int_equal(cf_repo_check(r, false, &st), CF_OK);
	cf_err_clear();
	assert_int_equal(cf_repo_check(r, true, &st), CF_ECORRUPT);
	assert_true(st.errors >= 1);
	/* reading that blob fails authentication and names the pack; the others load */
	cf_err_clear();
	assert_int_equal(cf_repo_load_blob(r, CF_BLOB_DATA, ids[1], &b), CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(CF_ECORRUPT), hex));
	assert_int_equal(cf_repo_load_blob(r, CF_BLOB_DATA, ids[0], &b), CF_OK);
	assert_int_equal(cf_repo_load_blob(r, CF_BLOB_DATA, ids[2], &b), CF_OK);
	cf_buf_release(&b);
	cf_repo_free(r);
}

static void test_check_missing_and_truncated_pack(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	uint8_t ids[3][CF_ID_LEN], tid[CF_ID_LEN];
	struct cf_blob_loc loc;
	char hex[CF_ID_HEX], path[256];
	struct cf_snapshot *l;
	size_t n;

	build_snapshot(r, ids);
	assert_int_equal(cf_repo_snapshots(r, &l, &n, NULL), CF_OK);
	assert_int_equal(n, 1);
	memcpy(tid, l[0].tree, CF_ID_LEN);
	cf_snapshots_free(l, n);

	/* a data pack cut short: the structure check sees the size mismatch */
	struct cf_buf saved = CF_BUF_INIT;
	pack_of(r, CF_BLOB_DATA, ids[0], hex, &loc);
	snprintf(path, sizeof(path), "%s/data/%.2s/%s", f->dir, hex, hex);
	assert_int_equal(cf_be_get(cf_repo_backend(r), path + strlen(f->dir) + 1, &saved), CF_OK);
	assert_int_equal(truncate(path, (off_t)saved.len - 1), 0);
	assert_int_equal(cf_repo_check(r, false, NULL), CF_ECORRUPT);
	/* gone altogether */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(cf_repo_check(r, false, NULL), CF_ECORRUPT);
	/* put back: clean again */
	assert_int_equal(cf_be_put(cf_repo_backend(r), path + strlen(f->dir) + 1, saved.data, saved.len), CF_OK);
	assert_int_equal(cf_repo_check(r, true, NULL), CF_OK);
	cf_buf_release(&saved);

	/* the tree pack gone: the snapshot's trees cannot be walked */
	cf_repo_free(r);
	r = reopen(f->dir);
	pack_of(r, CF_BLOB_TREE, tid, hex, &loc);
	snprintf(path, sizeof(path), "%s/data/%.2s/%s", f->dir, hex, hex);
	assert_int_equal(unlink(path), 0);
	struct cf_buf b = CF_BUF_INIT;
	assert_int_equal(cf_repo_load_blob(r, CF_BLOB_TREE, tid, &b), CF_ECORRUPT);
	cf_buf_release(&b);
	assert_int_equal(cf_repo_check(r, false, NULL), CF_ECORRUPT);
	cf_repo_free(r);
}

static void test_check_all_packs_gone(void **state)
{
	/* data/ emptied (by hand, or a sync that lost it) while the index
	 * still names packs: check must report them, not trip over the empty
	 * pack list */
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	uint8_t ids[3][CF_ID_LEN];
	struct cf_check_stats st;
	char path[256];

	build_snapshot(r, ids);
	cf_repo_free(r);
	r = reopen(f->dir);
	struct names ns = list_names(r, "data");
	assert_int_equal(ns.n, 2);
	for (size_t i = 0; i < ns.n; i++) {
		snprintf(path, sizeof(path), "%s/data/%.2s/%s", f->dir, ns.name[i], ns.name[i]);
		assert_int_equal(unlink(path), 0);
	}
	free(ns.name);
	memset(&st, 0, sizeof(st));
	assert_int_equal(cf_repo_check(r, false, &st), CF_ECORRUPT);
	assert_true(st.errors >= 2);
	assert_int_equal(st.packs, 0);
	cf_repo_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_no_repo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_options_persist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compress_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_save, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_writers_same_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_other_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_verified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_without_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_and_data_packs_separate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trees_remote_few_gets, setup, teardown),
		cmocka_unit_test(test_trees_s3_few_gets),
		cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlock_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_missing_and_truncated_pack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_all_packs_gone, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
