/*
 * testutil.h - helpers shared by the unit tests (header only).
 *
 * Everything is static inline, so a test that uses none of it compiles
 * clean under -Werror.  A test that includes this file includes <cmocka.h>
 * first (the helpers assert and fail the way the tests do).  The repo
 * tests' fixture (test_repo*.c) is compiled in only where TESTUTIL_REPO is
 * defined before the include: its names (setup, fixture, fill_random, PW)
 * are common ones that other tests define for themselves.
 */
#ifndef CF_TESTUTIL_H
#define CF_TESTUTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/error.h"
#include "repo/repo.h"
#include "store/backend.h"

static inline int testutil_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

/* Remove dir and everything below it (best effort; for fixtures' teardown). */
static inline void rm_tree(const char *dir)
{
	nftw(dir, testutil_rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

/* A new directory from a mkdtemp template ("/tmp/cf-test-NAME.XXXXXX") in
 * dir (size bytes); the test fails if it cannot be made. */
static inline void make_tmpdir(char *dir, size_t size, const char *template)
{
	snprintf(dir, size, "%s", template);
	assert_non_null(mkdtemp(dir));
}

/* A new repository on be with pw, the KDF at its cheapest (1 pass, 8 KiB)
 * so that the tests stay fast; compression -1 is the default level.  The
 * test fails if init does. */
static inline struct cf_repo *init_cheap(struct cf_backend *be, const char *pw, int compression)
{
	struct cf_repo *r = NULL;
	struct cf_repo_init_opts o = { .compression = compression, .kdf_opslimit = 1,
				       .kdf_memlimit = 8192 };
	int rc = cf_repo_init(be, pw, strlen(pw), &o, &r);
	if (rc)
		fail_msg("init: %s", cf_errmsg(rc));
	return r;
}

/* xorshift stream from seed: incompressible, reproducible. */
static inline void fill_xorshift(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

/* ---- a store that forwards to another ----
 *
 * The tests' counting and probing stores wrap a real one.  A struct that
 * begins with FWD_HEAD has .base (the backend it is) and .inner (the real
 * store) as its own members; the fwd_ functions forward a call to .inner,
 * for the ops the wrapper does not count or change. */
struct fwd_backend {
	struct cf_backend base;
	struct cf_backend *inner;
};
#define FWD_HEAD                                                                              \
	union {                                                                               \
		struct fwd_backend fwd;                                                       \
		struct {                                                                      \
			struct cf_backend base;                                               \
			struct cf_backend *inner;                                             \
		};                                                                            \
	}
#define FWD(be) ((struct fwd_backend *)(be))

static inline int fwd_create(struct cf_backend *be) { return FWD(be)->inner->ops->create(FWD(be)->inner); }
static inline int fwd_put(struct cf_backend *be, const char *p, const void *d, size_t n)
{ return cf_be_put(FWD(be)->inner, p, d, n); }
static inline int fwd_put_iov(struct cf_backend *be, const char *p, const struct iovec *iov, int n,
			      const uint8_t *sha256)
{ return cf_be_put_iov(FWD(be)->inner, p, iov, n, sha256); }
static inline int fwd_stat(struct cf_backend *be, const char *p, uint64_t *size)
{ return cf_be_stat(FWD(be)->inner, p, size); }
static inline int fwd_list(struct cf_backend *be, const char *dir, cf_list_fn fn, void *ctx)
{ return cf_be_list(FWD(be)->inner, dir, fn, ctx); }
static inline int fwd_remove(struct cf_backend *be, const char *p) { return cf_be_remove(FWD(be)->inner, p); }
static inline void fwd_free(struct cf_backend *be)
{
	cf_backend_free(FWD(be)->inner);
	free(be);
}

/* Opens location (cf_backend_open) as w's inner store and makes ops and
 * caps w's; the test fails if the store does not open. */
static inline void fwd_open(struct fwd_backend *w, const char *location,
			    const struct cf_backend_ops *ops, unsigned caps)
{
	int rc = cf_backend_open(location, NULL, &w->inner);
	if (rc)
		fail_msg("open %s: %s", location, cf_errmsg(rc));
	w->base.ops = ops;
	w->base.caps = caps;
}

#endif

#if (defined(TESTUTIL_REPO) || defined(TESTUTIL_NAMES)) && !defined(CF_TESTUTIL_NAMES_H)
#define CF_TESTUTIL_NAMES_H
/* ---- the names of a repository's objects (test_repo*.c, test_prune.c) ---- */

struct names {
	char (*name)[CF_ID_HEX];
	size_t n, cap;
};

static inline int collect(const char *name, uint64_t size, void *ctx)
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
static inline struct names list_names(struct cf_repo *r, const char *dir)
{
	struct names ns = { 0 };
	assert_int_equal(cf_be_list(cf_repo_backend(r), dir, collect, &ns), CF_OK);
	return ns;
}

static inline size_t count_objects(struct cf_repo *r, const char *dir)
{
	struct names ns = list_names(r, dir);
	free(ns.name);
	return ns.n;
}

#endif

#if defined(TESTUTIL_REPO) && !defined(CF_TESTUTIL_REPO_H)
#define CF_TESTUTIL_REPO_H
/* ---- the repo tests' fixture (test_repo*.c) ----
 *
 * A real local backend in a temporary directory; every test reopens the
 * repository from disk where it matters. */

#include "repo/repo_int.h"

#define PW "correct horse"
#define MiB (1u << 20)

struct fixture {
	char dir[64];
};

static inline int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	make_tmpdir(f->dir, sizeof(f->dir), "/tmp/cf-test-repo.XXXXXX");
	*state = f;
	return 0;
}

static inline int teardown(void **state)
{
	struct fixture *f = *state;
	rm_tree(f->dir);
	free(f);
	return 0;
}

static inline int open_pw(const char *dir, const char *pw, struct cf_repo **r)
{
	struct cf_backend *be;
	assert_int_equal(cf_backend_local_new(dir, &be), CF_OK);
	return cf_repo_open(be, pw, strlen(pw), r);
}

static inline struct cf_repo *reopen(const char *dir)
{
	struct cf_repo *r = NULL;
	assert_int_equal(open_pw(dir, PW, &r), CF_OK);
	assert_int_equal(cf_repo_load_index(r), CF_OK);
	return r;
}

static inline struct cf_repo *init_opts(const char *dir, int compression)
{
	struct cf_backend *be;
	assert_int_equal(cf_backend_local_new(dir, &be), CF_OK);
	return init_cheap(be, PW, compression);
}

static inline struct cf_repo *init_repo(const char *dir)
{
	return init_opts(dir, -1);
}

/* xorshift stream: incompressible, reproducible */
static inline void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 24);
	}
}

static inline void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)("the quick brown fox jumps over the lazy dog\n"[(i + seed) % 44]);
}


/* Read a pack whole and parse its header.  Caller frees *e. */
static inline void parse_pack(struct cf_repo *r, const char *hex, struct cf_buf *bytes,
		       struct cf_pack_entry **e, size_t *n)
{
	char path[128];
	cf_repo_pack_path(hex, path, sizeof(path));
	assert_int_equal(cf_be_get(cf_repo_backend(r), path, bytes), CF_OK);
	int rc = cf_pack_parse(r, bytes->data, bytes->len, e, n);
	if (rc)
		fail_msg("pack %s: %s", hex, cf_errmsg(rc));
}

static inline int count_cb(int type, const uint8_t id[CF_ID_LEN], const struct cf_blob_loc *loc, void *ctx)
{
	(void)type;
	(void)id;
	(void)loc;
	(*(size_t *)ctx)++;
	return 0;
}

static inline size_t index_count(struct cf_repo *r)
{
	size_t n = 0;
	assert_int_equal(cf_repo_index_foreach(r, count_cb, &n), CF_OK);
	return n;
}

static inline void expect_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
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

#endif
