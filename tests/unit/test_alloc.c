/*
 * test_alloc - failure of the Nth allocation (SQLite's test_malloc.c, curl's
 * torture mode).  This binary is linked with --wrap=malloc,calloc,realloc
 * (CMakeLists.txt), so every allocation coffer's own code makes (libcoffer
 * is a static library, linked in) goes through the wrappers below; those of
 * shared libraries (jansson, zstd, libsodium, glibc's strdup) do not.
 *
 * Each test runs a real operation with allocation N failing, for N = 1, 2,
 * ... until a run meets no failure.  Every run must return CF_OK (the failure
 * was absorbed) or CF_ENOMEM, never crash; LeakSanitizer (the ASan build)
 * proves that the failing paths free what they took.  The operations: decode
 * a tree, a snapshot, a config, a key file, an index file and a pack header;
 * open a local repository on disk, load its index, save blobs, a tree and a
 * snapshot, flush, list snapshots and check it.  After the repository loop,
 * check (no faults) must still find the repository whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/error.h"
#include "crypto/crypto.h"
#include "repo/repo_int.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "store/backend.h"
#include "testutil.h"

#define PW "correct horse"

/* ---- the allocator: allocation number fail_at fails (0: none) ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);

static atomic_long alloc_calls, fail_at, failed;

static int should_fail(void)
{
	long at = atomic_load(&fail_at);
	if (!at)
		return 0;
	if (atomic_fetch_add(&alloc_calls, 1) + 1 != at)
		return 0;
	atomic_fetch_add(&failed, 1);
	return 1;
}

void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n)
{
	return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n);
void *__wrap_calloc(size_t k, size_t n)
{
	return should_fail() ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : __real_realloc(p, n);
}

static void arm(long n)
{
	atomic_store(&alloc_calls, 0);
	atomic_store(&failed, 0);
	atomic_store(&fail_at, n);
}

static long disarm(void)
{
	atomic_store(&fail_at, 0);
	return atomic_load(&failed);
}

/* torture(op, ctx, what): op under every allocation failing in turn; returns
 * how many failure points were met (each with a clean CF_ENOMEM or CF_OK). */
typedef int (*op_fn)(void *ctx);
static long torture(op_fn op, void *ctx, const char *what)
{
	long n;
	for (n = 1; n < 100000; n++) {
		arm(n);
		int rc = op(ctx);
		long hit = disarm();
		if (rc != CF_OK && rc != CF_ENOMEM)
			fail_msg("%s: allocation %ld failing gave %d (%s), not CF_ENOMEM", what, n, rc,
				 cf_errmsg(rc));
		if (!hit) {
			assert_int_equal(rc, CF_OK);
			break;
		}
	}
	print_message("%s: %ld allocation failures, each clean\n", what, n - 1);
	return n - 1;
}

/* ---- parsers ---- */

struct bytes {
	struct cf_buf b;
};

static int op_tree(void *ctx)
{
	struct bytes *x = ctx;
	struct cf_tree t = CF_TREE_INIT;
	int rc = cf_tree_decode(x->b.data, x->b.len, &t);
	cf_tree_release(&t);
	return rc;
}

static void test_tree(void **state)
{
	(void)state;
	struct cf_tree t = CF_TREE_INIT;
	struct bytes x = { CF_BUF_INIT };
	const char *names[] = { "a", "bin", "c.txt", "dir" };
	for (int i = 0; i < 4; i++) {
		struct cf_node *nd = cf_tree_add(&t);
		assert_non_null(nd);
		nd->name = strdup(names[i]);
		nd->type = i == 3 ? CF_NODE_DIR : CF_NODE_FILE;
		nd->mode = 0644;
		nd->user = strdup("root");
		nd->size = 10;
		if (i != 3) {
			nd->content = calloc(2, CF_ID_LEN);
			nd->ncontent = 2;
		} else {
			nd->has_subtree = true;
		}
	}
	cf_tree_sort(&t);
	assert_int_equal(cf_tree_encode(&t, &x.b), CF_OK);
	cf_tree_release(&t);
	assert_true(torture(op_tree, &x, "tree decode") > 0); /* it allocates: the harness bites */
	cf_buf_release(&x.b);
}

static int op_snapshot(void *ctx)
{
	struct bytes *x = ctx;
	struct cf_snapshot s = { 0 };
	int rc = cf_snapshot_decode(x->b.data, x->b.len, &s);
	cf_snapshot_release(&s);
	return rc;
}

static void test_snapshot(void **state)
{
	(void)state;
	struct cf_snapshot s = { 0 };
	struct bytes x = { CF_BUF_INIT };
	s.time_ns = 1700000000000000000LL;
	s.hostname = strdup("host");
	s.username = strdup("user");
	assert_int_equal(cf_snapshot_add_path(&s, "/srv/data"), CF_OK);
	assert_int_equal(cf_snapshot_add_path(&s, "/etc"), CF_OK);
	assert_int_equal(cf_snapshot_add_tag(&s, "daily"), CF_OK);
	s.program_version = strdup("coffer test");
	assert_int_equal(cf_snapshot_encode(&s, &x.b), CF_OK);
	cf_snapshot_release(&s);
	assert_true(torture(op_snapshot, &x, "snapshot decode") > 0); /* it allocates: the harness bites */
	cf_buf_release(&x.b);
}

struct keyctx {
	struct cf_buf json;
};

static int op_keyfile(void *ctx)
{
	struct keyctx *k = ctx;
	struct cf_key *key = NULL;
	int rc = cf_keyfile_open(k->json.data, k->json.len, PW, strlen(PW), &key);
	cf_key_free(key);
	return rc;
}

static void test_keyfile(void **state)
{
	(void)state;
	struct cf_key *key = NULL;
	struct keyctx k = { CF_BUF_INIT };
	struct cf_kdf_params kdf = { .opslimit = 1, .memlimit = 8192 };
	assert_int_equal(cf_crypto_init(), CF_OK);
	assert_int_equal(cf_key_new_random(&key), CF_OK);
	assert_int_equal(cf_keyfile_seal(key, PW, strlen(PW), &kdf, "host", "user", &k.json), CF_OK);
	cf_key_free(key);
	assert_true(torture(op_keyfile, &k, "key file open") > 0); /* it allocates: the harness bites */
	cf_buf_release(&k.json);
}

/* ---- a local repository on disk ---- */

struct repoctx {
	char dir[64];
	int round;
};


static int count_entry(const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx)
{
	(void)packid;
	(void)e;
	(*(size_t *)ctx)++;
	return 0;
}

struct idxctx {
	struct cf_repo *r;
	struct cf_buf plain;
};

static int op_index_parse(void *ctx)
{
	struct idxctx *x = ctx;
	size_t n = 0;
	return cf_index_parse("test", x->plain.data, x->plain.len, count_entry, &n);
}

static int first_index(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	struct idxctx *x = ctx;
	char path[256];
	if (x->plain.len)
		return 0;
	snprintf(path, sizeof(path), "index/%s", name);
	return cf_repo_get_sealed(x->r, path, CF_OBJ_INDEX, &x->plain);
}

static void make_repo(const char *dir)
{
	struct cf_backend *be;
	struct cf_repo *r = NULL;
	struct cf_repo_init_opts o = { .compression = -1, .kdf_opslimit = 1, .kdf_memlimit = 8192 };
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(cf_backend_local_new(dir, &be), CF_OK);
	assert_int_equal(cf_repo_init(be, PW, strlen(PW), &o, &r), CF_OK);
	cf_repo_free(r);
}

/* one backup's worth of repository work, with fresh content each round */
static int op_repo(void *ctx)
{
	struct repoctx *c = ctx;
	struct cf_backend *be = NULL;
	struct cf_repo *r = NULL;
	struct cf_tree t = CF_TREE_INIT;
	struct cf_snapshot s = { 0 }, *all = NULL;
	struct cf_buf back = CF_BUF_INIT;
	uint8_t id[CF_ID_LEN], tid[CF_ID_LEN];
	char data[4096];
	size_t nsnaps = 0;
	int rc;

	c->round++;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(c->round * 31 + i * 7 + (i >> 5));
	/* a fresh repository each round (made with allocations not failing),
	 * so rounds do not grow with the index files earlier ones wrote */
	long at = atomic_exchange(&fail_at, 0);
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/%d", c->dir, c->round);
	make_repo(dir);
	atomic_store(&fail_at, at);
	if ((rc = cf_backend_local_new(dir, &be)))
		return rc;
	if ((rc = cf_repo_open(be, PW, strlen(PW), &r)))
		return rc; /* the repository owns the backend, also on failure */
	if ((rc = cf_repo_load_index(r)) ||
	    (rc = cf_repo_save_blob(r, CF_BLOB_DATA, data, sizeof(data), id, NULL, NULL)))
		goto out;
	struct cf_node *nd = cf_tree_add(&t);
	if (!nd) {
		rc = CF_ENOMEM;
		goto out;
	}
	nd->type = CF_NODE_FILE;
	nd->mode = 0600;
	nd->size = sizeof(data);
	if (!(nd->name = strdup("file")) || !(nd->content = calloc(1, CF_ID_LEN))) {
		rc = CF_ENOMEM;
		goto out;
	}
	memcpy(nd->content[0], id, CF_ID_LEN);
	nd->ncontent = 1;
	if ((rc = cf_repo_save_tree(r, &t, tid, NULL, NULL)) || (rc = cf_repo_flush(r)))
		goto out;
	s.time_ns = 1700000000000000000LL + c->round;
	memcpy(s.tree, tid, CF_ID_LEN);
	if (!(s.hostname = strdup("host"))) {
		rc = CF_ENOMEM;
		goto out;
	}
	if ((rc = cf_snapshot_add_path(&s, "/src")) || (rc = cf_repo_save_snapshot(r, &s)) ||
	    (rc = cf_repo_snapshots(r, &all, &nsnaps, NULL)) ||
	    (rc = cf_repo_load_blob(r, CF_BLOB_DATA, id, &back)))
		goto out;
	if (back.len != sizeof(data) || memcmp(back.data, data, sizeof(data)))
		rc = CF_ECORRUPT;
out:
	cf_buf_release(&back);
	cf_snapshots_free(all, nsnaps);
	cf_snapshot_release(&s);
	cf_tree_release(&t);
	cf_repo_free(r);
	return rc;
}

static void test_repo(void **state)
{
	(void)state;
	struct repoctx c = { .round = 0 };
	struct cf_backend *be;
	struct cf_repo *r = NULL;
	struct cf_check_stats st;
	struct idxctx x = { NULL, CF_BUF_INIT };
	char dir[128];

	snprintf(c.dir, sizeof(c.dir), "/tmp/cf-test-alloc.XXXXXX");
	assert_non_null(mkdtemp(c.dir));
	assert_true(torture(op_repo, &c, "repository open, save, flush, snapshot, load") > 0); /* it allocates: the harness bites */

	/* nothing a failed run left behind damages its repository */
	for (int i = 1; i <= c.round; i++) {
		snprintf(dir, sizeof(dir), "%s/%d", c.dir, i);
		assert_int_equal(cf_backend_local_new(dir, &be), CF_OK);
		assert_int_equal(cf_repo_open(be, PW, strlen(PW), &r), CF_OK);
		assert_int_equal(cf_repo_load_index(r), CF_OK);
		if (cf_repo_check(r, true, &st) != CF_OK)
			fail_msg("round %d: check finds the repository damaged", i);
		if (i < c.round)
			cf_repo_free(r);
	}
	assert_int_equal(st.snapshots, 1); /* the last round, without a failure */

	/* an index file's parser, on a real index file */
	x.r = r;
	assert_int_equal(cf_be_list(cf_repo_backend(r), "index", first_index, &x), CF_OK);
	assert_true(x.plain.len > 0);
	/* the parser allocates nothing (entries go to a callback): 0 is right */
	assert_int_equal(torture(op_index_parse, &x, "index parse"), 0);
	cf_buf_release(&x.plain);
	cf_repo_free(r);
	rm_tree(c.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_keyfile),
		cmocka_unit_test(test_repo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
