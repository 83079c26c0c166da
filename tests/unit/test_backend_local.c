/*
 * test_backend_local - the local-directory backend against the contract in
 * store/backend.h, on real files in a private temporary directory.
 *
 * The repository's crash safety stands on that contract, so each promise is
 * checked the way it could be broken: create makes the layout and refuses a
 * second repository; a missing object is CF_ENOENT with a message naming it; a
 * re-put leaves the existing file alone (same inode); listing "data" looks
 * into the fan-out directories and never reports ".tmp-*" leftovers; a range
 * past the end is CF_ECORRUPT; a put that fails half-way (file size limit, or
 * a read-only directory) leaves nothing under the final name; a concurrent
 * reader never sees a prefix; and eight threads can put and get at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "store/backend.h"
#include "testutil.h"

/* Where the repository keeps a pack (repo/ decides; the store only holds
 * names): "data/ab/abcdef...". */
static void pack_path(const char *hexid, char *out, size_t outlen)
{
	snprintf(out, outlen, "data/%.2s/%.64s", hexid, hexid);
}

/* ---- helpers ---- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	chmod(p, 0700);
	remove(p);
	return 0;
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

struct fixture {
	char dir[64];          /* the repository directory */
	struct cf_backend *be;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	make_tmpdir(f->dir, sizeof(f->dir), "/tmp/cf-test-local.XXXXXX");
	assert_int_equal(cf_backend_local_new(f->dir, &f->be), CF_OK);
	assert_int_equal(f->be->ops->create(f->be), CF_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	cf_backend_free(f->be);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void hexname(uint64_t seed, char out[CF_ID_HEX])
{
	uint8_t id[CF_ID_LEN];
	fill_xorshift(id, sizeof(id), seed);
	cf_hex(id, CF_ID_LEN, out);
}

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

/* Count the entries of a directory whose names start with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

struct names {
	char name[64][80];
	uint64_t size[64];
	int n;
};

static int collect(const char *name, uint64_t size, void *ctx)
{
	struct names *ns = ctx;
	assert_true(ns->n < 64);
	snprintf(ns->name[ns->n], sizeof(ns->name[0]), "%s", name);
	ns->size[ns->n] = size;
	ns->n++;
	return 0;
}

static int find_name(const struct names *ns, const char *name)
{
	for (int i = 0; i < ns->n; i++)
		if (strcmp(ns->name[i], name) == 0)
			return i;
	return -1;
}

/* ---- create ---- */

static void test_create_layout(void **state)
{
	struct fixture *f = *state;
	static const char *const dirs[] = { "keys", "data", "index", "snapshots", "locks" };
	char p[256];

	for (size_t i = 0; i < 5; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, dirs[i]);
		assert_true(is_dir(p));
	}
	for (int i = 0; i < 256; i++) {
		snprintf(p, sizeof(p), "%s/data/%02x", f->dir, i);
		assert_true(is_dir(p));
	}
	/* no config yet: create again is harmless */
	assert_int_equal(f->be->ops->create(f->be), CF_OK);
}

static void test_create_refuses_existing(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(cf_be_put(f->be, "config", "x", 1), CF_OK);
	cf_err_clear();
	assert_int_equal(f->be->ops->create(f->be), CF_EEXIST);
	assert_non_null(strstr(cf_errmsg(CF_EEXIST), f->dir));
}

static void test_create_makes_missing_dir(void **state)
{
	struct fixture *f = *state;
	struct cf_backend *be;
	char p[256];
	/* a repository directory that does not exist yet (one level) */
	snprintf(p, sizeof(p), "%s/new-repo", f->dir);
	assert_int_equal(cf_backend_local_new(p, &be), CF_OK);
	assert_int_equal(be->ops->create(be), CF_OK);
	snprintf(p, sizeof(p), "%s/new-repo/data/ff", f->dir);
	assert_true(is_dir(p));
	cf_backend_free(be);
}

/* ---- put / get / stat / get_range ---- */

static void test_put_get_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct cf_buf b = CF_BUF_INIT;
	uint8_t data[70000];
	uint64_t size = 0;
	char hex[CF_ID_HEX], path[128];

	fill_xorshift(data, sizeof(data), 1);
	hexname(1, hex);
	snprintf(path, sizeof(path), "index/%s", hex);
	assert_int_equal(cf_be_put(f->be, path, data, sizeof(data)), CF_OK);
	assert_int_equal(cf_be_get(f->be, path, &b), CF_OK);
	assert_int_equal(b.len, sizeof(data));
	assert_memory_equal(b.data, data, sizeof(data));
	assert_int_equal(cf_be_stat(f->be, path, &size), CF_OK);
	assert_int_equal(size, sizeof(data));

	/* get replaces the buffer's contents instead of appending */
	assert_int_equal(cf_be_get(f->be, path, &b), CF_OK);
	assert_int_equal(b.len, sizeof(data));

	/* a zero-byte object is an object */
	assert_int_equal(cf_be_put(f->be, "snapshots/empty", "", 0), CF_OK);
	assert_int_equal(cf_be_get(f->be, "snapshots/empty", &b), CF_OK);
	assert_int_equal(b.len, 0);
	assert_int_equal(cf_be_stat(f->be, "snapshots/empty", &size), CF_OK);
	assert_int_equal(size, 0);

	/* the object is a plain file at the same relative name */
	char fp[256];
	snprintf(fp, sizeof(fp), "%s/index/%s", f->dir, hex);
	assert_true(exists(fp));
	cf_buf_release(&b);
}

static void test_get_missing(void **state)
{
	struct fixture *f = *state;
	struct cf_buf b = CF_BUF_INIT;
	uint64_t size = 7;
	char hex[CF_ID_HEX], path[128];

	hexname(2, hex);
	snprintf(path, sizeof(path), "snapshots/%s", hex);
	cf_err_clear();
	assert_int_equal(cf_be_get(f->be, path, &b), CF_ENOENT);
	assert_non_null(strstr(cf_errmsg(CF_ENOENT), hex));
	cf_err_clear();
	assert_int_equal(cf_be_get_range(f->be, path, 0, 1, &b), CF_ENOENT);
	assert_non_null(strstr(cf_errmsg(CF_ENOENT), hex));
	cf_err_clear();
	assert_int_equal(cf_be_stat(f->be, path, &size), CF_ENOENT);
	assert_non_null(strstr(cf_errmsg(CF_ENOENT), hex));
	cf_buf_release(&b);
}

/* A staged put (what packs use): invisible until put_commit, whose object is
 * the staged bytes even though the caller's buffer changed after put_stage;
 * put_abort leaves neither the object nor a temporary file. */
static void test_put_stage_commit_abort(void **state)
{
	struct fixture *f = *state;
	struct cf_buf b = CF_BUF_INIT;
	char hex[CF_ID_HEX], path[128], fp[256], dir[256];
	uint8_t data[3000], want[3000];
	void *h = NULL;

	fill_xorshift(data, sizeof(data), 11);
	memcpy(want, data, sizeof(data));
	hexname(11, hex);
	pack_path(hex, path, sizeof(path));
	snprintf(fp, sizeof(fp), "%s/%s", f->dir, path);
	snprintf(dir, sizeof(dir), "%s/data/%.2s", f->dir, hex);
	struct iovec iov[2] = { { data, 1000 }, { data + 1000, 2000 } };
	assert_non_null(f->be->ops->put_stage);
	assert_int_equal(cf_be_put_stage(f->be, path, iov, 2, NULL, &h), CF_OK);
	assert_non_null(h);
	memset(data, 0, sizeof(data)); /* the buffer is the caller's again */
	assert_false(exists(fp));
	assert_int_equal(cf_be_get(f->be, path, &b), CF_ENOENT);
	assert_int_equal(cf_be_put_commit(f->be, h), CF_OK);
	assert_int_equal(cf_be_get(f->be, path, &b), CF_OK);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	assert_int_equal(count_prefixed(dir, ".tmp-"), 0);

	hexname(12, hex);
	pack_path(hex, path, sizeof(path));
	snprintf(fp, sizeof(fp), "%s/%s", f->dir, path);
	snprintf(dir, sizeof(dir), "%s/data/%.2s", f->dir, hex);
	assert_int_equal(cf_be_put_stage(f->be, path, iov, 2, NULL, &h), CF_OK);
	assert_int_equal(count_prefixed(dir, ".tmp-"), 1);
	cf_be_put_abort(f->be, h);
	assert_false(exists(fp));
	assert_int_equal(count_prefixed(dir, ".tmp-"), 0);
	cf_buf_release(&b);
}

/* A staged object of several MiB (a pack: written with O_DIRECT where the
 * file system takes it) from many odd-sized pieces reads back byte for byte,
 * with its exact length. */
static void test_put_stage_big(void **state)
{
	struct fixture *f = *state;
	struct cf_buf b = CF_BUF_INIT;
	char hex[CF_ID_HEX], path[128];
	size_t total = (5u << 20) + 4097;
	uint8_t *data = malloc(total);
	struct iovec iov[64];
	void *h = NULL;
	assert_non_null(data);
	fill_xorshift(data, total, 13);
	size_t off = 0;
	int n = 0;
	while (off < total) { /* 63 pieces of odd sizes, the last one the rest */
		size_t len = n < 63 ? 1 + (size_t)(n * 7919 % 200000) : total - off;
		if (len > total - off)
			len = total - off;
		iov[n].iov_base = data + off;
		iov[n++].iov_len = len;
		off += len;
	}
	hexname(14, hex);
	pack_path(hex, path, sizeof(path));
	assert_int_equal(cf_be_put_stage(f->be, path, iov, n, NULL, &h), CF_OK);
	assert_int_equal(cf_be_put_commit(f->be, h), CF_OK);
	assert_int_equal(cf_be_get(f->be, path, &b), CF_OK);
	assert_int_equal(b.len, total);
	assert_memory_equal(b.data, data, total);
	/* one of exactly 4 MiB (no padding) too */
	hexname(15, hex);
	pack_path(hex, path, sizeof(path));
	struct iovec one = { data, 4u << 20 };
	assert_int_equal(cf_be_put_stage(f->be, path, &one, 1, NULL, &h), CF_OK);
	assert_int_equal(cf_be_put_commit(f->be, h), CF_OK);
	assert_int_equal(cf_be_get(f->be, path, &b), CF_OK);
	assert_int_equal(b.len, 4u << 20);
	assert_memory_equal(b.data, data, 4u << 20);

	/* Big ranges (read with O_DIRECT where the file system takes it): any
	 * offset and length, the end of a file whose last block is short, into
	 * the same buffer again and again and into a buffer not aligned */
	hexname(14, hex);
	pack_path(hex, path, sizeof(path));
	const struct { size_t off, len; } rg[] = {
		{ 0, 256u << 10 },         { 1, 300000 },          { 4095, 2u << 20 },
		{ 4096, 1u << 20 },        { 12345, 4u << 20 },    { total - 300000, 300000 },
		{ total - (2u << 20) - 7, (2u << 20) + 7 },        { 0, total },
		{ 77, 1000 },
	};
	for (size_t i = 0; i < sizeof(rg) / sizeof(rg[0]); i++) {
		assert_int_equal(cf_be_get_range(f->be, path, rg[i].off, rg[i].len, &b), CF_OK);
		assert_int_equal(b.len, rg[i].len);
		assert_memory_equal(b.data, data + rg[i].off, rg[i].len);
		assert_int_equal(b.data[b.len], 0);
	}
	struct cf_buf odd = CF_BUF_INIT;
	assert_int_equal(cf_buf_add(&odd, "x", 1), CF_OK);
	assert_int_equal(cf_be_get_range(f->be, path, 5000, 700000, &odd), CF_OK);
	assert_int_equal(odd.len, 700000);
	assert_memory_equal(odd.data, data + 5000, 700000);
	/* past the end is still a short object */
	assert_int_equal(cf_be_get_range(f->be, path, total - 200000, 300000, &odd), CF_ECORRUPT);
	cf_buf_release(&odd);
	free(data);
	cf_buf_release(&b);
}

static void test_put_existing_keeps_file(void **state)
{
	struct fixture *f = *state;
	struct cf_buf b = CF_BUF_INIT;
	struct stat st1, st2;
	char hex[CF_ID_HEX], path[128], fp[256];
	uint8_t data[4096];

	fill_xorshift(data, sizeof(data), 3);
	hexname(3, hex);
	pack_path(hex, path, sizeof(path));
	snprintf(fp, sizeof(fp), "%s/%s", f->dir, path);
	assert_int_equal(cf_be_put(f->be, path, data, sizeof(data)), CF_OK);
	assert_int_equal(stat(fp, &st1), 0);
	/* a retry of the same put succeeds and does not replace the file */
	assert_int_equal(cf_be_put(f->be, path, data, sizeof(data)), CF_OK);
	assert_int_equal(stat(fp, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(st1.st_mtim.tv_sec, st2.st_mtim.tv_sec);
	assert_int_equal(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
	assert_int_equal(cf_be_get(f->be, path, &b), CF_OK);
	assert_int_equal(b.len, sizeof(data));
	assert_memory_equal(b.data, data, sizeof(data));
	/* and no temporary file is left next to it */
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/data/%.2s", f->dir, hex);
	assert_int_equal(count_prefixed(dir, ".tmp-"), 0);
	cf_buf_release(&b);
}

static void test_get_range(void **state)
{
	struct fixture *f = *state;
	struct cf_buf b = CF_BUF_INIT;
	uint8_t data[10000];
	char hex[CF_ID_HEX], path[128];

	fill_xorshift(data, sizeof(data), 4);
	hexname(4, hex);
	pack_path(hex, path, sizeof(path));
	assert_int_equal(cf_be_put(f->be, path, data, sizeof(data)), CF_OK);

	assert_int_equal(cf_be_get_range(f->be, path, 1234, 500, &b), CF_OK);
	assert_int_equal(b.len, 500);
	assert_memory_equal(b.data, data + 1234, 500);
	/* exactly up to the end */
	assert_int_equal(cf_be_get_range(f->be, path, 9000, 1000, &b), CF_OK);
	assert_int_equal(b.len, 1000);
	assert_memory_equal(b.data, data + 9000, 1000);
	/* zero bytes at the end is fine */
	assert_int_equal(cf_be_get_range(f->be, path, 10000, 0, &b), CF_OK);
	assert_int_equal(b.len, 0);

	/* past the end: the object is shorter than the index says -> corrupt */
	cf_err_clear();
	assert_int_equal(cf_be_get_range(f->be, path, 9001, 1000, &b), CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(CF_ECORRUPT), hex));
	assert_int_equal(cf_be_get_range(f->be, path, 10001, 0, &b), CF_ECORRUPT);
	assert_int_equal(cf_be_get_range(f->be, path, UINT64_MAX - 10, 100, &b), CF_ECORRUPT);
	assert_int_equal(cf_be_get_range(f->be, path, 0, SIZE_MAX, &b), CF_ECORRUPT);
	cf_buf_release(&b);
}

/* ---- list / remove ---- */

static void test_list_data_fanout(void **state)
{
	struct fixture *f = *state;
	struct names ns = { .n = 0 };
	char hex[5][CF_ID_HEX], path[128], fp[300];

	for (int i = 0; i < 5; i++) {
		hexname(100 + (uint64_t)i, hex[i]);
		pack_path(hex[i], path, sizeof(path));
		assert_int_equal(cf_be_put(f->be, path, hex[i], (size_t)i + 1), CF_OK);
	}
	/* leftovers of an interrupted put, in a fan-out dir and at the top */
	snprintf(fp, sizeof(fp), "%s/data/%.2s/.tmp-123-0-%s", f->dir, hex[0], hex[0]);
	int fd = open(fp, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "partial", 7), 7);
	close(fd);
	snprintf(fp, sizeof(fp), "%s/index/.tmp-1-1-abc", f->dir);
	fd = open(fp, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);

	assert_int_equal(cf_be_list(f->be, "data", collect, &ns), CF_OK);
	assert_int_equal(ns.n, 5);
	for (int i = 0; i < 5; i++) {
		int k = find_name(&ns, hex[i]);
		assert_true(k >= 0); /* the bare pack id, not "ab/..." */
		assert_int_equal(ns.size[k], (uint64_t)i + 1);
	}
	ns.n = 0;
	assert_int_equal(cf_be_list(f->be, "index", collect, &ns), CF_OK);
	assert_int_equal(ns.n, 0);
}

static int stop_at_two(const char *name, uint64_t size, void *ctx)
{
	(void)name;
	(void)size;
	int *n = ctx;
	return ++*n == 2 ? 42 : 0;
}

static void test_list_dirs_and_stop(void **state)
{
	struct fixture *f = *state;
	struct names ns = { .n = 0 };
	char hex[CF_ID_HEX], path[128];

	for (int i = 0; i < 4; i++) {
		hexname(200 + (uint64_t)i, hex);
		snprintf(path, sizeof(path), "snapshots/%s", hex);
		assert_int_equal(cf_be_put(f->be, path, "s", 1), CF_OK);
	}
	assert_int_equal(cf_be_put(f->be, "keys/k1", "k", 1), CF_OK);
	assert_int_equal(cf_be_list(f->be, "snapshots", collect, &ns), CF_OK);
	assert_int_equal(ns.n, 4);
	ns.n = 0;
	assert_int_equal(cf_be_list(f->be, "keys", collect, &ns), CF_OK);
	assert_int_equal(ns.n, 1);
	assert_string_equal(ns.name[0], "k1");
	ns.n = 0;
	assert_int_equal(cf_be_list(f->be, "locks", collect, &ns), CF_OK);
	assert_int_equal(ns.n, 0);

	/* a callback's non-zero return stops the listing and is returned */
	int seen = 0;
	assert_int_equal(cf_be_list(f->be, "snapshots", stop_at_two, &seen), 42);
	assert_int_equal(seen, 2);
}

static void test_missing_fanout_dirs(void **state)
{
	/* git does not keep empty directories: a repository checked out from
	 * git (tests/golden) has no data/xx dirs nor locks/.  Listing must
	 * treat them as empty, and put must create them. */
	struct fixture *f = *state;
	struct names ns = { .n = 0 };
	struct cf_buf b = CF_BUF_INIT;
	char p[300], hex[CF_ID_HEX], path[128];

	for (int i = 0; i < 256; i++) {
		snprintf(p, sizeof(p), "%s/data/%02x", f->dir, i);
		assert_int_equal(rmdir(p), 0);
	}
	snprintf(p, sizeof(p), "%s/locks", f->dir);
	assert_int_equal(rmdir(p), 0);

	assert_int_equal(cf_be_list(f->be, "data", collect, &ns), CF_OK);
	assert_int_equal(ns.n, 0);
	assert_int_equal(cf_be_list(f->be, "locks", collect, &ns), CF_OK);
	assert_int_equal(ns.n, 0);

	hexname(300, hex);
	pack_path(hex, path, sizeof(path));
	assert_int_equal(cf_be_put(f->be, path, "pack", 4), CF_OK);
	assert_int_equal(cf_be_get(f->be, path, &b), CF_OK);
	assert_int_equal(b.len, 4);
	snprintf(path, sizeof(path), "locks/%s", hex);
	assert_int_equal(cf_be_put(f->be, path, "lock", 4), CF_OK);
	assert_int_equal(cf_be_list(f->be, "locks", collect, &ns), CF_OK);
	assert_int_equal(ns.n, 1);
	assert_int_equal(cf_be_remove(f->be, path), CF_OK);
	cf_buf_release(&b);
}

static void test_remove(void **state)
{
	struct fixture *f = *state;
	struct cf_buf b = CF_BUF_INIT;
	char hex[CF_ID_HEX], path[128];

	hexname(5, hex);
	snprintf(path, sizeof(path), "locks/%s", hex);
	assert_int_equal(cf_be_put(f->be, path, "lock", 4), CF_OK);
	assert_int_equal(cf_be_remove(f->be, path), CF_OK);
	assert_int_equal(cf_be_get(f->be, path, &b), CF_ENOENT);
	/* removing what is not there is success (a retried remove) */
	assert_int_equal(cf_be_remove(f->be, path), CF_OK);
	assert_int_equal(cf_be_remove(f->be, "data/00/0000"), CF_OK);
	cf_buf_release(&b);
}

/* ---- atomicity ---- */

static void test_put_failing_midway_leaves_nothing(void **state)
{
	/* A put that fails after writing part of the object (here: the file
	 * size limit, which works even as root) must leave neither the final
	 * name nor a temporary file.  Run in a child so the limit stays there. */
	struct fixture *f = *state;
	char hex[CF_ID_HEX], path[128], fp[300], dir[300];
	size_t len = 4u << 20;

	hexname(6, hex);
	pack_path(hex, path, sizeof(path));
	snprintf(fp, sizeof(fp), "%s/%s", f->dir, path);
	snprintf(dir, sizeof(dir), "%s/data/%.2s", f->dir, hex);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint8_t *data = malloc(len);
		struct rlimit rl = { 1u << 20, 1u << 20 };
		if (!data)
			_exit(10);
		memset(data, 0xab, len);
		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(11);
		int rc = cf_be_put(f->be, path, data, len);
		_exit(rc == CF_OK ? 12 : 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(exists(fp));
	assert_int_equal(count_prefixed(dir, ".tmp-"), 0);

	/* and the same put without the limit then works */
	uint8_t *data = malloc(len);
	struct cf_buf b = CF_BUF_INIT;
	assert_non_null(data);
	memset(data, 0xab, len);
	assert_int_equal(cf_be_put(f->be, path, data, len), CF_OK);
	assert_int_equal(cf_be_get(f->be, path, &b), CF_OK);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, data, len);
	free(data);
	cf_buf_release(&b);
}

static void test_put_readonly_dir(void **state)
{
	struct fixture *f = *state;
	char hex[CF_ID_HEX], path[128], fp[300], dir[300];

	if (geteuid() == 0) {
		/* root writes into read-only directories; the size-limit test
		 * above covers the failure path instead */
		skip();
	}
	hexname(7, hex);
	pack_path(hex, path, sizeof(path));
	snprintf(fp, sizeof(fp), "%s/%s", f->dir, path);
	snprintf(dir, sizeof(dir), "%s/data/%.2s", f->dir, hex);
	assert_int_equal(chmod(dir, 0500), 0);
	cf_err_clear();
	int rc = cf_be_put(f->be, path, "data", 4);
	chmod(dir, 0700);
	assert_int_equal(rc, CF_EPERM);
	assert_non_null(strstr(cf_errmsg(rc), hex));
	assert_false(exists(fp));
	assert_int_equal(count_prefixed(dir, ".tmp-"), 0);
}

struct reader {
	struct cf_backend *be;
	const char *path;
	size_t len;
	uint8_t byte;
	atomic_bool stop;
	atomic_long seen_missing, seen_whole, seen_bad; /* polled by the main thread */
};

static void *read_loop(void *arg)
{
	struct reader *rd = arg;
	struct cf_buf b = CF_BUF_INIT;
	while (!atomic_load(&rd->stop)) {
		int rc = cf_be_get(rd->be, rd->path, &b);
		if (rc == CF_ENOENT) {
			rd->seen_missing++;
		} else if (rc == CF_OK && b.len == rd->len &&
			   b.data[0] == rd->byte && b.data[rd->len - 1] == rd->byte) {
			rd->seen_whole++;
			break;
		} else {
			rd->seen_bad++;
			break;
		}
	}
	cf_buf_release(&b);
	return NULL;
}

static void test_reader_never_sees_prefix(void **state)
{
	struct fixture *f = *state;
	char hex[CF_ID_HEX], path[128];
	size_t len = 32u << 20;
	uint8_t *data = malloc(len);
	pthread_t t;

	assert_non_null(data);
	memset(data, 0x5a, len);
	hexname(8, hex);
	pack_path(hex, path, sizeof(path));
	struct reader rd = { .be = f->be, .path = path, .len = len, .byte = 0x5a };
	assert_int_equal(pthread_create(&t, NULL, read_loop, &rd), 0);
	usleep(1000);
	assert_int_equal(cf_be_put(f->be, path, data, len), CF_OK);
	/* the reader stops by itself once it sees the whole object */
	for (int i = 0; i < 5000 && !rd.seen_whole && !rd.seen_bad; i++)
		usleep(1000);
	atomic_store(&rd.stop, true);
	pthread_join(t, NULL);
	assert_int_equal(rd.seen_bad, 0);
	assert_int_equal(rd.seen_whole, 1);
	free(data);
}

/* ---- concurrency ---- */

#define NTHREADS 8
#define PER_THREAD 40

struct worker {
	struct cf_backend *be;
	int num;
	int errors;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	struct cf_buf b = CF_BUF_INIT;
	uint8_t data[20000];
	for (int i = 0; i < PER_THREAD; i++) {
		uint64_t seed = 1000u + (uint64_t)w->num * 1000 + (uint64_t)i;
		char hex[CF_ID_HEX], path[128];
		size_t len = 1 + (size_t)(seed * 7919 % sizeof(data));
		fill_xorshift(data, len, seed);
		hexname(seed, hex);
		pack_path(hex, path, sizeof(path));
		if (cf_be_put(w->be, path, data, len) != CF_OK)
			w->errors++;
		/* the same object again, as a retry would */
		if (cf_be_put(w->be, path, data, len) != CF_OK)
			w->errors++;
		if (cf_be_get(w->be, path, &b) != CF_OK || b.len != len || memcmp(b.data, data, len))
			w->errors++;
		if (cf_be_get_range(w->be, path, len / 2, len - len / 2, &b) != CF_OK ||
		    memcmp(b.data, data + len / 2, len - len / 2))
			w->errors++;
	}
	cf_buf_release(&b);
	return NULL;
}

static int count_cb(const char *name, uint64_t size, void *ctx)
{
	(void)name;
	(void)size;
	(*(int *)ctx)++;
	return 0;
}

static void test_concurrent_threads(void **state)
{
	struct fixture *f = *state;
	pthread_t t[NTHREADS];
	struct worker w[NTHREADS];

	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .be = f->be, .num = i };
		assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].errors, 0);
	}
	int n = 0;
	assert_int_equal(cf_be_list(f->be, "data", count_cb, &n), CF_OK);
	assert_int_equal(n, NTHREADS * PER_THREAD);
	/* and nothing half-done remains in any fan-out dir */
	for (int i = 0; i < 256; i++) {
		char dir[300];
		snprintf(dir, sizeof(dir), "%s/data/%02x", f->dir, i);
		assert_int_equal(count_prefixed(dir, ".tmp-"), 0);
	}
}

static void test_open_location_strings(void **state)
{
	struct fixture *f = *state;
	struct cf_backend *be = NULL;
	char loc[128];
	struct cf_buf b = CF_BUF_INIT;

	assert_int_equal(cf_be_put(f->be, "keys/abc", "key", 3), CF_OK);
	snprintf(loc, sizeof(loc), "local:%s/", f->dir);
	assert_int_equal(cf_backend_open(loc, NULL, &be), CF_OK);
	assert_string_equal(be->ops->name, "local");
	assert_int_equal(cf_be_get(be, "keys/abc", &b), CF_OK);
	assert_int_equal(b.len, 3);
	cf_backend_free(be);
	assert_int_equal(cf_backend_open(f->dir, NULL, &be), CF_OK);
	assert_int_equal(cf_be_get(be, "keys/abc", &b), CF_OK);
	cf_backend_free(be);
	assert_int_equal(cf_backend_open("ftp://host/x", NULL, &be), CF_EINVAL);
	assert_null(be);
	cf_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_stage_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_refuses_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_makes_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_get_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_existing_keeps_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_stage_commit_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_data_fanout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_dirs_and_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_fanout_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_failing_midway_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_readonly_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_never_sees_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_location_strings, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
