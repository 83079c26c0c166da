/*
 * test_repo_blobs - the repository's blobs and packs on a real local backend
 * in a temporary directory: blobs saved and loaded (compressible,
 * incompressible, empty; data and tree), the compression probe, dedup,
 * several threads saving at once, two writers storing one blob and the
 * other copy it leaves, what a reopened repository sees after a flush and
 * after a crash without one, pack size and type separation, and trees
 * through a remote store (the tree-pack cache: one get per tree pack).
 *
 * Every test reopens the repository from disk where it matters: what counts
 * is what a later process reads, not what one handle has in memory.
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
#define TESTUTIL_REPO
#include "testutil.h"

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
	FWD_HEAD;
	int pack_gets, pack_ranges;
};
#define CNT(be) ((struct counting *)(be))

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
static const struct cf_backend_ops counting_ops = {
	.name = "counting", .create = fwd_create, .put = fwd_put, .get = c_get, .get_range = c_get_range,
	.stat = fwd_stat, .list = fwd_list, .remove = fwd_remove, .free = fwd_free, .put_iov = fwd_put_iov,
};

static struct cf_backend *counting_new(const char *location)
{
	struct counting *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	/* a store where requests are counted: as S3 */
	fwd_open(&c->fwd, location, &counting_ops, CF_BE_REMOTE);
	c->base.location = NULL;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_blob_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compress_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_save, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_writers_same_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_other_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_without_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_and_data_packs_separate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trees_remote_few_gets, setup, teardown),
		cmocka_unit_test(test_trees_s3_few_gets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
