/*
 * test_prune - forget/prune, copy, stats and check subsets on real local
 * repositories in temporary directories.
 *
 * Prune: after forgetting a snapshot, a partly used pack is repacked (with
 * --max-unused 0%) or kept (unlimited), a pack with no used blob goes, packs
 * no index names (a crashed writer) go, duplicate copies from two concurrent
 * writers end up stored once, and prune refuses to touch anything when a
 * snapshot needs a blob the index lacks.  Every test reopens the repository
 * and runs check --read-data afterwards: what counts is what the next process
 * finds.  Copy: a snapshot copied between two repositories with different
 * keys has different ids, the same bytes, and records its original.
 *
 * Concurrency safety (issue 23): the lock staleness rule (cf_lock_judge:
 * another PID namespace, boot or host never makes a lock stale by pid; old
 * locks only by age); prune keeps packs younger than its margin and says so;
 * a backup session whose packs vanished, or whose lock was removed, fails
 * cf_repo_verify_session naming the pack.  The margin is off (0) in the
 * other cases, as the repositories are seconds old.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "repo/repo_int.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "crypto/crypto.h"
#include "store/backend.h"
#include "s3/s3_int.h"
#define TESTUTIL_NAMES
#include "testutil.h"

#define PW "correct horse"


struct fixture {
	char dir[64], dir2[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cf-test-prune.XXXXXX");
	snprintf(f->dir2, sizeof(f->dir2), "/tmp/cf-test-prune2.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_non_null(mkdtemp(f->dir2));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rm_tree(f->dir);
	rm_tree(f->dir2);
	free(f);
	return 0;
}

#define OK(expr)                                                          \
	do {                                                              \
		int r_ = (expr);                                          \
		if (r_ != CF_OK)                                          \
			fail_msg("%s: %s (%d)", #expr, cf_errmsg(r_), r_); \
	} while (0)

static struct cf_repo *init_repo(const char *dir, const char *pw)
{
	struct cf_backend *be;
	struct cf_repo *r = NULL;
	struct cf_repo_init_opts o = { .compression = -1, .kdf_opslimit = 1, .kdf_memlimit = 8192 };
	OK(cf_backend_local_new(dir, &be));
	OK(cf_repo_init(be, pw, strlen(pw), &o, &r));
	OK(cf_repo_load_index(r));
	return r;
}

static struct cf_repo *reopen(const char *dir, const char *pw)
{
	struct cf_backend *be;
	struct cf_repo *r = NULL;
	OK(cf_backend_local_new(dir, &be));
	OK(cf_repo_open(be, pw, strlen(pw), &r));
	OK(cf_repo_load_index(r));
	return r;
}

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

#define BLOB 40000

struct blob {
	uint8_t bytes[BLOB];
	uint8_t id[CF_ID_LEN];
};

static void make_blob(struct cf_repo *r, struct blob *b, uint64_t seed)
{
	fill_random(b->bytes, BLOB, seed);
	OK(cf_repo_save_blob(r, CF_BLOB_DATA, b->bytes, BLOB, b->id, NULL, NULL));
}

/* A snapshot of one file "name" made of the given blobs. */
static void make_snapshot(struct cf_repo *r, const char *name, struct blob **parts, size_t n,
			  int64_t t, uint8_t snap_id[CF_ID_LEN])
{
	struct cf_tree tree = CF_TREE_INIT;
	struct cf_snapshot s;
	struct cf_node *nd = cf_tree_add(&tree);
	assert_non_null(nd);
	nd->name = strdup(name);
	nd->type = CF_NODE_FILE;
	nd->mode = 0644;
	nd->size = (uint64_t)n * BLOB;
	nd->content = calloc(n, CF_ID_LEN);
	nd->ncontent = n;
	for (size_t i = 0; i < n; i++)
		memcpy(nd->content[i], parts[i]->id, CF_ID_LEN);
	memset(&s, 0, sizeof(s));
	OK(cf_repo_save_tree(r, &tree, s.tree, NULL, NULL));
	cf_tree_release(&tree);
	OK(cf_repo_flush(r));
	s.time_ns = t;
	s.hostname = strdup("host");
	OK(cf_snapshot_add_path(&s, "/x"));
	OK(cf_repo_save_snapshot(r, &s));
	memcpy(snap_id, s.id, CF_ID_LEN);
	cf_snapshot_release(&s);
}

static void expect_blob(struct cf_repo *r, const struct blob *b)
{
	struct cf_buf out = CF_BUF_INIT;
	OK(cf_repo_load_blob(r, CF_BLOB_DATA, b->id, &out));
	assert_int_equal(out.len, BLOB);
	assert_memory_equal(out.data, b->bytes, BLOB);
	cf_buf_release(&out);
}

static void check_clean(struct cf_repo *r)
{
	struct cf_check_stats st;
	OK(cf_repo_check(r, true, &st));
	assert_int_equal(st.errors, 0);
}

static void prune(struct cf_repo *r, double max_unused, struct cf_prune_stats *out)
{
	struct cf_prune_opts o = { .max_unused = max_unused };
	struct cf_prune *p = NULL;
	OK(cf_prune_plan(r, &o, &p));
	OK(cf_prune_run(p));
	*out = *cf_prune_stats(p);
	cf_prune_free(p);
}

/* Three blobs in one data pack; the forgotten snapshot alone used one. */
static void setup_shared_pack(const char *dir, struct blob *b, uint8_t snap[2][CF_ID_LEN])
{
	struct cf_repo *r = init_repo(dir, PW);
	for (int i = 0; i < 3; i++)
		make_blob(r, &b[i], (uint64_t)i + 1);
	struct blob *a[] = { &b[0], &b[1] }, *c[] = { &b[1], &b[2] };
	make_snapshot(r, "old", a, 2, 1000000000000000000LL, snap[0]);
	make_snapshot(r, "new", c, 2, 1100000000000000000LL, snap[1]);
	OK(cf_repo_forget_snapshot(r, snap[0]));
	cf_repo_free(r);
}

static void test_repack_partly_used(void **state)
{
	struct fixture *f = *state;
	struct blob *b = calloc(3, sizeof(*b));
	uint8_t snap[2][CF_ID_LEN];
	struct cf_prune_stats st;
	setup_shared_pack(f->dir, b, snap);

	struct cf_repo *r = reopen(f->dir, PW);
	OK(cf_repo_lock(r, true, 0));
	size_t packs_before = count_objects(r, "data");
	prune(r, 0, &st);
	assert_int_equal(st.snapshots, 1);
	assert_int_equal(st.packs, packs_before);
	/* the data pack (b0 unused) is repacked; the first tree pack (only the
	 * old tree) goes whole */
	assert_int_equal(st.packs_repack, 1);
	assert_int_equal(st.packs_delete, 1);
	assert_int_equal(st.blobs_unused, 2);
	assert_int_equal(st.blobs_used, 3);
	assert_true(st.bytes_freed >= BLOB);
	assert_int_equal(st.packs_written, 1);
	assert_int_equal(st.bytes_unused_after, 0);
	cf_repo_free(r);

	r = reopen(f->dir, PW);
	assert_int_equal(count_objects(r, "index"), 1);
	assert_false(cf_repo_has_blob(r, CF_BLOB_DATA, b[0].id));
	expect_blob(r, &b[1]);
	expect_blob(r, &b[2]);
	check_clean(r);
	/* a second prune finds nothing to do */
	OK(cf_repo_lock(r, true, 0));
	prune(r, 0, &st);
	assert_int_equal(st.blobs_unused, 0);
	assert_int_equal(st.packs_repack + st.packs_delete + st.packs_unindexed, 0);
	cf_repo_free(r);
	free(b);
}

static void test_unlimited_keeps_partly_used(void **state)
{
	struct fixture *f = *state;
	struct blob *b = calloc(3, sizeof(*b));
	uint8_t snap[2][CF_ID_LEN];
	struct cf_prune_stats st;
	setup_shared_pack(f->dir, b, snap);

	struct cf_repo *r = reopen(f->dir, PW);
	size_t packs_before = count_objects(r, "data");
	prune(r, -1, &st);
	assert_int_equal(st.packs_repack, 0);
	assert_int_equal(st.packs_written, 0);
	assert_int_equal(st.bytes_unused_after, BLOB + CF_SEAL_OVERHEAD);
	cf_repo_free(r);
	r = reopen(f->dir, PW);
	assert_int_equal(count_objects(r, "data"), packs_before - st.packs_delete);
	/* the unused blob is still listed (its pack is kept whole) */
	assert_true(cf_repo_has_blob(r, CF_BLOB_DATA, b[0].id));
	expect_blob(r, &b[1]);
	expect_blob(r, &b[2]);
	check_clean(r);
	cf_repo_free(r);
	free(b);
}

static void test_everything_forgotten(void **state)
{
	struct fixture *f = *state;
	struct blob *b = calloc(3, sizeof(*b));
	uint8_t snap[2][CF_ID_LEN];
	struct cf_prune_stats st;
	setup_shared_pack(f->dir, b, snap);
	struct cf_repo *r = reopen(f->dir, PW);
	OK(cf_repo_forget_snapshot(r, snap[1]));
	prune(r, 0.05, &st);
	assert_int_equal(st.blobs_used, 0);
	assert_int_equal(st.packs_delete, st.packs);
	cf_repo_free(r);
	r = reopen(f->dir, PW);
	assert_int_equal(count_objects(r, "data"), 0);
	assert_int_equal(count_objects(r, "index"), 0);
	check_clean(r);
	cf_repo_free(r);
	free(b);
}

static void test_unindexed_and_duplicates(void **state)
{
	struct fixture *f = *state;
	struct blob *b = calloc(4, sizeof(*b));
	uint8_t sid[CF_ID_LEN];
	struct cf_prune_stats st;
	struct cf_repo *r0 = init_repo(f->dir, PW);
	cf_repo_free(r0);

	/* two writers store the same blob, each in its own pack */
	struct cf_repo *r1 = reopen(f->dir, PW), *r2 = reopen(f->dir, PW);
	make_blob(r1, &b[0], 7);
	make_blob(r2, &b[0], 7);
	make_blob(r1, &b[1], 8);
	make_blob(r2, &b[2], 9);
	OK(cf_repo_flush(r1));
	OK(cf_repo_flush(r2));
	struct blob *parts[] = { &b[0], &b[1], &b[2] };
	make_snapshot(r1, "f", parts, 3, 1000000000000000000LL, sid);
	cf_repo_free(r1);
	cf_repo_free(r2);
	/* a writer that died before its index: its pack is unindexed (made by
	 * flushing, then deleting the index file that flush added) */
	struct cf_repo *r3 = reopen(f->dir, PW);
	struct names before = list_names(r3, "index");
	make_blob(r3, &b[3], 10);
	OK(cf_repo_flush(r3));
	struct names after = list_names(r3, "index");
	assert_int_equal(after.n, before.n + 1);
	for (size_t i = 0; i < after.n; i++) {
		bool old = false;
		for (size_t k = 0; k < before.n; k++)
			old |= !strcmp(after.name[i], before.name[k]);
		if (!old) {
			char path[128];
			snprintf(path, sizeof(path), "index/%s", after.name[i]);
			OK(cf_be_remove(cf_repo_backend(r3), path));
		}
	}
	size_t nidx = after.n;
	free(before.name);
	free(after.name);
	cf_repo_free(r3);
	struct cf_repo *r = reopen(f->dir, PW);
	assert_int_equal(count_objects(r, "index"), nidx - 1);
	assert_false(cf_repo_has_blob(r, CF_BLOB_DATA, b[3].id));
	OK(cf_repo_lock(r, true, 0));
	prune(r, 0, &st);
	assert_int_equal(st.packs_unindexed, 1);
	assert_int_equal(st.blobs_unused, 1); /* the duplicate copy of b0 */
	assert_int_equal(st.packs_repack, 1);
	cf_repo_free(r);

	r = reopen(f->dir, PW);
	for (int i = 0; i < 3; i++)
		expect_blob(r, &b[i]);
	check_clean(r);
	/* b0 is stored once now: the data packs hold 3 blobs in all */
	struct cf_prune_opts o = { .max_unused = 0 };
	struct cf_prune *p = NULL;
	OK(cf_prune_plan(r, &o, &p));
	assert_int_equal(cf_prune_stats(p)->blobs_used, 4); /* 3 data + 1 tree */
	assert_int_equal(cf_prune_stats(p)->blobs_unused, 0);
	cf_prune_free(p);
	cf_repo_free(r);
	free(b);
}

/* ---- issue 23: locks, the safety margin, the backup's final check ---- */

static void test_lock_judge(void **state)
{
	(void)state;
	const int64_t M = 30LL * 60 * 1000000000, now = 2000000000LL * 1000000000;
	struct cf_lock_id self = { .host = "box", .boot_id = "b-1", .pidns = 4026531836u, .has_ns = true };
	struct cf_lock_info li;
	memset(&li, 0, sizeof(li));
	li.id = self;
	li.pid = 4242;
	li.time_ns = now - 60LL * 1000000000;
	/* same host, boot and PID namespace: the pid decides */
	assert_int_equal(cf_lock_judge(&li, &self, now, M), CF_LOCK_LOCAL);
	/* another PID namespace with the same hostname (containers, --uts=host):
	 * the pid means nothing here */
	li.id.pidns = 4026532999u;
	assert_int_equal(cf_lock_judge(&li, &self, now, M), CF_LOCK_LIVE);
	/* another boot of this host (the pid counter restarted) */
	li.id = self;
	snprintf(li.id.boot_id, sizeof(li.id.boot_id), "b-2");
	assert_int_equal(cf_lock_judge(&li, &self, now, M), CF_LOCK_LIVE);
	/* another host */
	li.id = self;
	snprintf(li.id.host, sizeof(li.id.host), "other");
	assert_int_equal(cf_lock_judge(&li, &self, now, M), CF_LOCK_LIVE);
	/* an old-format lock from this host: never by pid */
	memset(&li.id, 0, sizeof(li.id));
	snprintf(li.id.host, sizeof(li.id.host), "box");
	assert_int_equal(cf_lock_judge(&li, &self, now, M), CF_LOCK_LIVE);
	/* ... only by age: exactly the margin is still live, one ns more is stale */
	li.time_ns = now - M;
	assert_int_equal(cf_lock_judge(&li, &self, now, M), CF_LOCK_LIVE);
	li.time_ns = now - M - 1;
	assert_int_equal(cf_lock_judge(&li, &self, now, M), CF_LOCK_EXPIRED);
	/* a process that cannot read its own identity checks no pid */
	li.id = self;
	li.time_ns = now;
	struct cf_lock_id unknown = { .host = "box" };
	assert_int_equal(cf_lock_judge(&li, &unknown, now, M), CF_LOCK_LIVE);
	/* old and new lock objects decode; the new fields come back */
	const char *oldj = "{\"time\":\"2026-12-07T08:00:00Z\",\"hostname\":\"box\",\"username\":\"u\","
			   "\"pid\":7,\"exclusive\":true}";
	OK(cf_lock_decode((const uint8_t *)oldj, strlen(oldj), &li));
	assert_false(li.id.has_ns);
	assert_true(li.exclusive);
	assert_int_equal(li.pid, 7);
	const char *newj = "{\"time\":\"2026-12-07T08:00:00Z\",\"hostname\":\"box\",\"username\":\"u\","
			   "\"pid\":7,\"exclusive\":false,\"instance\":\"00ff\",\"boot_id\":\"b-1\","
			   "\"pidns\":4026531836}";
	OK(cf_lock_decode((const uint8_t *)newj, strlen(newj), &li));
	assert_true(li.id.has_ns);
	assert_string_equal(li.id.boot_id, "b-1");
	assert_true(li.id.pidns == 4026531836u);
	assert_string_equal(li.instance, "00ff");
}

/* A pack no index names yet (a backup still writing) and a pack with no used
 * blob are kept while younger than the margin, and go once it is 0. */
static void test_young_packs_kept(void **state)
{
	struct fixture *f = *state;
	struct blob *b = calloc(3, sizeof(*b));
	uint8_t sid[2][CF_ID_LEN];
	struct cf_prune_stats st;
	setup_shared_pack(f->dir, b, sid); /* ... */
	/* an unindexed pack: flushed, then its index file removed */
	struct cf_repo *r = reopen(f->dir, PW);
	struct names before = list_names(r, "index");
	struct blob *x = calloc(1, sizeof(*x));
	make_blob(r, x, 77);
	OK(cf_repo_flush(r));
	struct names after = list_names(r, "index");
	for (size_t i = 0; i < after.n; i++) {
		bool old = false;
		for (size_t k = 0; k < before.n; k++)
			old |= !strcmp(after.name[i], before.name[k]);
		if (!old) {
			char path[128];
			snprintf(path, sizeof(path), "index/%s", after.name[i]);
			OK(cf_be_remove(cf_repo_backend(r), path));
		}
	}
	free(before.name);
	free(after.name);
	cf_repo_free(r);

	r = reopen(f->dir, PW);
	size_t packs = count_objects(r, "data");
	OK(cf_repo_lock(r, true, 0));
	unsetenv("COFFER_TEST_PRUNE_MARGIN_SECONDS"); /* the default: 1 hour */
	prune(r, 0, &st);
	assert_int_equal(st.packs_unindexed, 0);
	assert_int_equal(st.packs_repack, 0);       /* the partly used pack is young too */
	assert_true(st.packs_young >= 2);
	assert_true(st.bytes_young > 0);
	assert_false(st.ages_unknown);
	cf_repo_free(r);
	r = reopen(f->dir, PW);
	assert_int_equal(count_objects(r, "data"), packs);
	check_clean(r);
	OK(cf_repo_lock(r, true, 0));
	setenv("COFFER_TEST_PRUNE_MARGIN_SECONDS", "0", 1);
	prune(r, 0, &st);
	assert_int_equal(st.packs_young, 0);
	assert_int_equal(st.packs_unindexed, 1);
	cf_repo_free(r);
	r = reopen(f->dir, PW);
	assert_true(count_objects(r, "data") < packs);
	expect_blob(r, &b[1]);
	expect_blob(r, &b[2]);
	check_clean(r);
	cf_repo_free(r);
	free(x);
	free(b);
}

/* A backup session: dedups against a pack that then disappears -> its final
 * check fails naming the pack; a session whose lock was removed fails too. */
static void test_verify_session(void **state)
{
	struct fixture *f = *state;
	struct blob *b = calloc(2, sizeof(*b));
	struct cf_repo *r = init_repo(f->dir, PW);
	make_blob(r, &b[0], 1);
	OK(cf_repo_flush(r));
	cf_repo_free(r);

	r = reopen(f->dir, PW);
	OK(cf_repo_lock(r, false, 0));
	make_blob(r, &b[1], 2);          /* a new pack of this session */
	make_blob(r, &b[0], 1);          /* deduplicated against the old pack */
	OK(cf_repo_flush(r));
	OK(cf_repo_verify_session(r, NULL));
	struct cf_blob_loc loc;
	OK(cf_repo_lookup(r, CF_BLOB_DATA, b[0].id, &loc));
	char hex[CF_ID_HEX], path[128];
	cf_hex(loc.pack, CF_ID_LEN, hex);
	cf_repo_pack_path(hex, path, sizeof(path));
	OK(cf_be_remove(cf_repo_backend(r), path));  /* what a misjudging prune did */
	cf_err_clear();
	assert_int_equal(cf_repo_verify_session(r, NULL), CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(CF_ECORRUPT), hex));
	assert_non_null(strstr(cf_errmsg(CF_ECORRUPT), "no snapshot was written"));
	/* a parent snapshot that vanished */
	uint8_t gone[CF_ID_LEN];
	memset(gone, 0xab, sizeof(gone));
	assert_int_equal(cf_repo_verify_session(r, gone), CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(CF_ECORRUPT), "parent snapshot abababab"));
	cf_repo_free(r);

	/* the lock object removed under a running session ('unlock --remove-all') */
	r = reopen(f->dir, PW);
	OK(cf_repo_lock(r, false, 0));
	int removed = 0;
	struct cf_repo *u = reopen(f->dir, PW);
	OK(cf_repo_unlock_stale(u, false, &removed));
	assert_int_equal(removed, 0);                 /* live: kept */
	OK(cf_repo_unlock_stale(u, true, &removed));
	assert_int_equal(removed, 1);
	cf_repo_free(u);
	cf_err_clear();
	assert_int_equal(cf_repo_verify_session(r, NULL), CF_ELOCKED);
	assert_non_null(strstr(cf_errmsg(CF_ELOCKED), "removed"));
	cf_repo_free(r);
	free(b);
}

/* S3 gives prune its pack ages through ListObjectsV2's LastModified */
struct mt { int n; int64_t t[3]; };
static int collect_mtime(const char *key, uint64_t size, int64_t mtime_ns, void *ctx)
{
	struct mt *m = ctx;
	(void)key;
	(void)size;
	if (m->n < 3)
		m->t[m->n] = mtime_ns;
	m->n++;
	return 0;
}

static void test_s3_last_modified(void **state)
{
	(void)state;
	const char *page =
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>p/data/a</Key><LastModified>2024-01-01T00:00:01.250Z</LastModified><Size>1</Size></Contents>"
		"<Contents><Key>p/data/b</Key><Size>2</Size></Contents>"
		"<Contents><Key>p/data/c</Key><Size>3</Size><LastModified>yesterday</LastModified></Contents>"
		"</ListBucketResult>";
	struct mt m = { 0, { 0, 0, 0 } };
	struct cf_s3_list_page pg;
	OK(cf_s3_list_parse_mtime(page, strlen(page), collect_mtime, &m, &pg));
	free(pg.next_token);
	assert_int_equal(m.n, 3);
	assert_true(m.t[0] == 1704067201LL * 1000000000 + 250000000);
	assert_true(m.t[1] == -1); /* absent: unknown age, kept by prune */
	assert_true(m.t[2] == -1); /* unreadable: the same */
}

static void test_refuses_missing_blob(void **state)
{
	struct fixture *f = *state;
	struct blob *b = calloc(2, sizeof(*b));
	uint8_t sid[CF_ID_LEN];
	struct cf_repo *r = init_repo(f->dir, PW);
	make_blob(r, &b[0], 1);
	fill_random(b[1].bytes, BLOB, 2);
	cf_repo_blob_id(r, b[1].bytes, BLOB, b[1].id); /* never stored */
	struct blob *parts[] = { &b[0], &b[1] };
	make_snapshot(r, "f", parts, 2, 1000000000000000000LL, sid);
	cf_repo_free(r);
	r = reopen(f->dir, PW);
	size_t packs = count_objects(r, "data");
	struct cf_prune_opts o = { .max_unused = 0 };
	struct cf_prune *p = NULL;
	assert_int_equal(cf_prune_plan(r, &o, &p), CF_ECORRUPT);
	assert_null(p);
	assert_non_null(strstr(cf_errmsg(CF_ECORRUPT), "nothing was deleted"));
	assert_int_equal(count_objects(r, "data"), packs);
	cf_repo_free(r);
	free(b);
}

static void test_snapshot_original_roundtrip(void **state)
{
	(void)state;
	struct cf_snapshot s, d;
	struct cf_buf b = CF_BUF_INIT;
	memset(&s, 0, sizeof(s));
	memset(&d, 0, sizeof(d));
	s.hostname = strdup("h");
	OK(cf_snapshot_add_path(&s, "/p"));
	s.has_original = true;
	memset(s.original, 0xab, CF_ID_LEN);
	OK(cf_snapshot_encode(&s, &b));
	assert_non_null(strstr((char *)b.data, "\"original\":\"abab"));
	OK(cf_snapshot_decode(b.data, b.len, &d));
	assert_true(d.has_original);
	assert_memory_equal(d.original, s.original, CF_ID_LEN);
	cf_snapshot_release(&d);
	/* without it: absent, not zeros */
	s.has_original = false;
	cf_buf_reset(&b);
	OK(cf_snapshot_encode(&s, &b));
	assert_null(strstr((char *)b.data, "original"));
	memset(&d, 0, sizeof(d));
	OK(cf_snapshot_decode(b.data, b.len, &d));
	assert_false(d.has_original);
	cf_snapshot_release(&d);
	cf_snapshot_release(&s);
	cf_buf_release(&b);
}

static void test_copy_between_keys(void **state)
{
	struct fixture *f = *state;
	struct blob *b = calloc(3, sizeof(*b));
	uint8_t sid[CF_ID_LEN], nid[CF_ID_LEN], nid2[CF_ID_LEN];
	struct cf_repo *src = init_repo(f->dir, PW), *dst = init_repo(f->dir2, "other");
	for (int i = 0; i < 3; i++)
		make_blob(src, &b[i], (uint64_t)i + 20);
	struct blob *parts[] = { &b[0], &b[1], &b[2], &b[0] };
	make_snapshot(src, "f", parts, 4, 1000000000000000000LL, sid);
	struct cf_snapshot *ss = NULL;
	size_t n = 0;
	OK(cf_repo_snapshots(src, &ss, &n, NULL));
	assert_int_equal(n, 1);

	struct cf_copy_map *m = cf_copy_map_new();
	struct cf_copy_stats st;
	memset(&st, 0, sizeof(st));
	OK(cf_repo_copy_snapshot(src, dst, &ss[0], m, &st, nid));
	assert_int_equal(st.blobs_copied, 4); /* 3 data + 1 tree; b0 twice in the file, once stored */
	assert_int_equal(st.bytes_copied, 3 * BLOB);
	/* a second copy with the same map reads nothing and adds nothing */
	struct cf_copy_stats st2;
	memset(&st2, 0, sizeof(st2));
	OK(cf_repo_copy_snapshot(src, dst, &ss[0], m, &st2, nid2));
	assert_int_equal(st2.blobs_copied, 0);
	assert_int_equal(st2.data_blobs, 0);
	cf_copy_map_free(m);
	cf_repo_free(dst);

	dst = reopen(f->dir2, "other");
	struct cf_snapshot *ds = NULL;
	size_t nd = 0;
	OK(cf_repo_snapshots(dst, &ds, &nd, NULL));
	assert_int_equal(nd, 2);
	assert_true(ds[0].has_original);
	assert_memory_equal(ds[0].original, sid, CF_ID_LEN);
	assert_int_equal(ds[0].time_ns, ss[0].time_ns);
	/* different key, different ids; the same bytes */
	assert_memory_not_equal(ds[0].tree, ss[0].tree, CF_ID_LEN);
	struct cf_tree t = CF_TREE_INIT;
	OK(cf_repo_load_tree(dst, ds[0].tree, &t));
	assert_int_equal(t.n, 1);
	assert_int_equal(t.nodes[0].ncontent, 4);
	struct cf_buf out = CF_BUF_INIT;
	for (size_t i = 0; i < 4; i++) {
		OK(cf_repo_load_blob(dst, CF_BLOB_DATA, t.nodes[0].content[i], &out));
		assert_int_equal(out.len, BLOB);
		assert_memory_equal(out.data, parts[i]->bytes, BLOB);
	}
	cf_buf_release(&out);
	cf_tree_release(&t);
	check_clean(dst);
	cf_snapshots_free(ds, nd);
	cf_snapshots_free(ss, n);
	cf_repo_free(dst);
	cf_repo_free(src);
	free(b);
}

static void test_stats_and_subset(void **state)
{
	struct fixture *f = *state;
	struct blob *b = calloc(3, sizeof(*b));
	uint8_t snap[2][CF_ID_LEN];
	struct cf_repo *r = init_repo(f->dir, PW);
	for (int i = 0; i < 3; i++)
		make_blob(r, &b[i], (uint64_t)i + 1);
	struct blob *a[] = { &b[0], &b[1] }, *c[] = { &b[1], &b[2] };
	make_snapshot(r, "a", a, 2, 1000000000000000000LL, snap[0]);
	make_snapshot(r, "c", c, 2, 1100000000000000000LL, snap[1]);
	cf_repo_free(r);
	r = reopen(f->dir, PW);
	struct cf_repo_stats st;
	OK(cf_repo_stats(r, &st));
	assert_int_equal(st.snapshots, 2);
	assert_int_equal(st.data_blobs, 3);
	assert_int_equal(st.tree_blobs, 2);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.file_bytes, 4 * BLOB);
	assert_true(st.raw_bytes > 3 * BLOB && st.raw_bytes < 3 * BLOB + 4096);
	assert_true(st.pack_bytes > st.stored_blob_bytes);

	/* the n/m buckets partition the packs */
	uint64_t total = 0;
	for (unsigned n = 1; n <= 3; n++) {
		struct cf_check_opts o = { .subset_n = n, .subset_m = 3 };
		struct cf_check_stats cs;
		OK(cf_repo_check_opts(r, &o, &cs));
		total += cs.packs_read;
	}
	assert_int_equal(total, st.packs);
	struct cf_check_opts o = { .subset_percent = 100 };
	struct cf_check_stats cs;
	OK(cf_repo_check_opts(r, &o, &cs));
	assert_int_equal(cs.packs_read, st.packs);
	cf_repo_free(r);
	free(b);
}

int main(void)
{
	OK(cf_crypto_init());
	setenv("COFFER_TEST_PRUNE_MARGIN_SECONDS", "0", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lock_judge),
		cmocka_unit_test(test_s3_last_modified),
		cmocka_unit_test_setup_teardown(test_young_packs_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repack_partly_used, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlimited_keeps_partly_used, setup, teardown),
		cmocka_unit_test_setup_teardown(test_everything_forgotten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unindexed_and_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_missing_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_original_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_between_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_and_subset, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
