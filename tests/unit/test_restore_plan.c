/*
 * test_restore_plan - restore's planner and its sparse writes, on a real
 * repository in a temporary directory.
 *
 * Each test backs up a small tree of real files (cf_backup_run), reopens the
 * repository as a later process would, and runs the plan (rs_plan, through
 * restore/restore_int.h) against a real target directory.  What is asserted
 * is what a user would check: which files the plan would write (and under
 * which path), which entries it names for deletion, which name becomes a
 * hard link of which, and the bytes a restore leaves on disk.  The helpers
 * of common/fsat.h that keep restore beneath its target are tested here
 * too, since restore is what they are for: a symlink swapped into the
 * target is replaced, never followed.
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
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fsat.h"
#include "engine/backup.h"
#include "repo/repo.h"
#include "repo/snapshot.h"
#include "restore/restore_int.h"
#include "store/backend.h"
#include "testutil.h"

#define PW "correct horse"

struct fx {
	char dir[64];      /* everything lives below */
	char src[128];     /* the backed-up tree: dir/src */
	char repo[128];
	char target[128];
	struct cf_repo *r;
	struct cf_snapshot s;
};

static void put(const char *dir, const char *rel, const char *data)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

static void mkd(const char *dir, const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static bool exists(const char *dir, const char *rel)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return lstat(p, &st) == 0;
}

static char *slurp(const char *dir, const char *rel)
{
	char p[512];
	static char buf[4096];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	FILE *f = fopen(p, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* src: a/one, a/two.log, b/three, b/link (a hard link of b/three), top */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cf-test-rplan.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->target, sizeof(f->target), "%s/target", f->dir);
	assert_int_equal(mkdir(f->src, 0755), 0);
	mkd(f->src, "a");
	mkd(f->src, "b");
	put(f->src, "a/one", "first file\n");
	put(f->src, "a/two.log", "a log\n");
	put(f->src, "b/three", "third file, linked\n");
	put(f->src, "top", "at the top\n");
	char p1[512], p2[512];
	snprintf(p1, sizeof(p1), "%s/b/three", f->src);
	snprintf(p2, sizeof(p2), "%s/b/link", f->src);
	assert_int_equal(link(p1, p2), 0);

	struct cf_backend *be;
	struct cf_repo_init_opts io = { .compression = -1, .kdf_opslimit = 1, .kdf_memlimit = 8192 };
	assert_int_equal(cf_backend_local_new(f->repo, &be), CF_OK);
	int rc = cf_repo_init(be, PW, strlen(PW), &io, &f->r);
	if (rc)
		fail_msg("init: %s", cf_errmsg(rc));
	assert_int_equal(cf_repo_lock(f->r, false, 0), CF_OK);
	const char *paths[] = { f->src };
	struct cf_backup_opts bo = { .paths = paths, .npaths = 1, .host = "test", .threads = 1,
				     .no_parent = true };
	rc = cf_backup_run(f->r, &bo, &f->s);
	if (rc)
		fail_msg("backup: %s", cf_errmsg(rc));
	cf_repo_free(f->r);

	/* what a later process sees */
	assert_int_equal(cf_backend_local_new(f->repo, &be), CF_OK);
	assert_int_equal(cf_repo_open(be, PW, strlen(PW), &f->r), CF_OK);
	assert_int_equal(cf_repo_load_index(f->r), CF_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cf_snapshot_release(&f->s);
	cf_repo_free(f->r);
	rm_tree(f->dir);
	free(f);
	return 0;
}

/* The plan of one restore: c set up and planned (release with finish()). */
static void plan(struct fx *f, struct rctx *c, const struct cf_restore_opts *o,
		 struct cf_restore_stats *st)
{
	rs_init(c, f->r, &f->s, o, st);
	int rc = rs_setup(c, &f->s);
	if (rc)
		fail_msg("setup: %s", cf_errmsg(rc));
	rc = rs_plan(c);
	if (rc)
		fail_msg("plan: %s", cf_errmsg(rc));
}

static void finish(struct rctx *c, struct cf_restore_stats *st)
{
	rs_release(c);
	cf_restore_stats_release(st);
}

/* The planned file whose path ends with suffix, or NULL. */
static const struct rfile *planned(const struct rctx *c, const char *suffix)
{
	size_t l = strlen(suffix);
	for (size_t i = 0; i < c->nfiles; i++) {
		size_t pl = strlen(c->files[i].path);
		if (pl >= l && !strcmp(c->files[i].path + pl - l, suffix))
			return &c->files[i];
	}
	return NULL;
}

/* ---- include, exclude ---- */

static void test_include_only_that_tree(void **state)
{
	struct fx *f = *state;
	struct rctx c;
	struct cf_restore_stats st;
	char inc[256];
	snprintf(inc, sizeof(inc), "%s/a", f->src);
	const char *incs[] = { inc };
	struct cf_restore_opts o = { .target = f->target, .includes = incs, .nincludes = 1,
				     .dry_run = true };
	plan(f, &c, &o, &st);
	assert_int_equal(c.nfiles, 2);
	const struct rfile *one = planned(&c, "/src/a/one");
	assert_non_null(one);
	assert_int_equal(one->state, F_WRITE); /* the target is empty */
	assert_non_null(planned(&c, "/src/a/two.log"));
	assert_null(planned(&c, "/src/top"));
	assert_null(planned(&c, "/src/b/three"));
	/* the path below the target is the snapshot's */
	char want[512];
	snprintf(want, sizeof(want), "%s%s/a/one", f->target, f->src);
	assert_string_equal(one->path, want);
	finish(&c, &st);
}

static void test_exclude_a_pattern(void **state)
{
	struct fx *f = *state;
	struct rctx c;
	struct cf_restore_stats st;
	const char *exc[] = { "*.log" };
	struct cf_restore_opts o = { .target = f->target, .excludes = exc, .nexcludes = 1,
				     .dry_run = true };
	plan(f, &c, &o, &st);
	assert_null(planned(&c, "/a/two.log"));
	assert_non_null(planned(&c, "/a/one"));
	assert_non_null(planned(&c, "/top"));
	assert_int_equal(c.nfiles, 4); /* one, three, link, top */
	finish(&c, &st);
}

/* ---- path-map ---- */

static void test_path_map_into_a_directory(void **state)
{
	struct fx *f = *state;
	struct rctx c;
	struct cf_restore_stats st;
	char snap[256], dir[256];
	snprintf(snap, sizeof(snap), "%s/b", f->src);
	snprintf(dir, sizeof(dir), "%s/elsewhere", f->dir);
	struct cf_restore_map m = { snap, dir };
	const char *incs[] = { snap };
	struct cf_restore_opts o = { .maps = &m, .nmaps = 1, .includes = incs, .nincludes = 1 };
	plan(f, &c, &o, &st);
	assert_int_equal(c.nroots, 1); /* every include is mapped: no --target needed */
	assert_int_equal(c.nfiles, 2);
	const struct rfile *three = planned(&c, "/elsewhere/three");
	assert_non_null(three);
	assert_string_equal(three->rel, "three"); /* the contents go directly into dir */
	assert_non_null(planned(&c, "/elsewhere/link"));
	finish(&c, &st);

	/* an include outside every map wants a target */
	snprintf(snap, sizeof(snap), "%s/a", f->src);
	const char *incs2[] = { snap };
	char snapb[256];
	snprintf(snapb, sizeof(snapb), "%s/b", f->src);
	struct cf_restore_map m2 = { snapb, dir };
	struct cf_restore_opts o2 = { .maps = &m2, .nmaps = 1, .includes = incs2, .nincludes = 1 };
	rs_init(&c, f->r, &f->s, &o2, &st);
	assert_int_equal(rs_setup(&c, &f->s), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "is not under any --path-map"));
	finish(&c, &st);
}

/* ---- extras to delete ---- */

static void test_extras_named_for_deletion(void **state)
{
	struct fx *f = *state;
	struct rctx c;
	struct cf_restore_stats st;
	char dir[256], snap[256];
	snprintf(dir, sizeof(dir), "%s/restored", f->dir);
	snprintf(snap, sizeof(snap), "%s/a", f->src);
	assert_int_equal(mkdir(dir, 0755), 0);
	put(dir, "one", "first file\n");
	put(dir, "extra", "12345");                 /* not in the snapshot */
	mkd(dir, "extradir");
	put(dir, "extradir/inside", "1234567890");
	put(dir, ".coffer-tmp-1-2", "half");       /* a killed restore's */

	struct cf_restore_map m = { snap, dir };
	char *out = NULL;
	size_t outlen = 0;
	FILE *listing = open_memstream(&out, &outlen);
	assert_non_null(listing);
	struct cf_restore_opts o = { .maps = &m, .nmaps = 1, .delete_extra = true, .dry_run = true,
				     .listing = listing };
	plan(f, &c, &o, &st);
	fflush(listing);
	char want[512];
	snprintf(want, sizeof(want), "delete   %s/extra (5 bytes)\n", dir);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "delete   %s/extradir/\n", dir);
	assert_non_null(strstr(out, want));
	assert_null(strstr(out, "/one"));  /* in the snapshot: compared, not deleted */
	assert_int_equal(st.deleted, 3); /* extra, extradir and what it holds */
	assert_int_equal(st.bytes_deleted, 15);
	assert_true(exists(dir, "extra")); /* dry: nothing removed */
	assert_true(exists(dir, ".coffer-tmp-1-2"));
	const struct rfile *one = planned(&c, "/restored/one");
	assert_non_null(one);
	assert_int_equal(one->state, F_CHECK); /* same size: to be compared */
	finish(&c, &st);
	fclose(listing);
	free(out);

	/* without delete: extras stay, a stale temporary file always goes */
	struct cf_restore_opts o2 = { .maps = &m, .nmaps = 1 };
	plan(f, &c, &o2, &st);
	assert_int_equal(st.deleted, 0);
	assert_true(exists(dir, "extra"));
	assert_true(exists(dir, "extradir/inside"));
	assert_false(exists(dir, ".coffer-tmp-1-2"));
	finish(&c, &st);

	/* with delete, for real */
	struct cf_restore_opts o3 = { .maps = &m, .nmaps = 1, .delete_extra = true };
	plan(f, &c, &o3, &st);
	assert_int_equal(st.deleted, 3);
	assert_false(exists(dir, "extra"));
	assert_false(exists(dir, "extradir"));
	assert_true(exists(dir, "one"));
	finish(&c, &st);
}

static void test_extras_only_beneath_the_source(void **state)
{
	struct fx *f = *state;
	struct rctx c;
	struct cf_restore_stats st;
	/* the target holds the snapshot's path from "/": a sibling of the
	 * source path in it is not the snapshot's to delete */
	char parent[256];
	snprintf(parent, sizeof(parent), "%s%s", f->target, f->dir);
	assert_int_equal(cf_mkdirs(parent, 0755), CF_OK);
	put(parent, "sibling", "not ours");
	struct cf_restore_opts o = { .target = f->target, .delete_extra = true };
	plan(f, &c, &o, &st);
	assert_true(exists(parent, "sibling"));
	assert_int_equal(st.deleted, 0);
	finish(&c, &st);
}

/* ---- hard links ---- */

static void test_hard_link_planned_once(void **state)
{
	struct fx *f = *state;
	struct rctx c;
	struct cf_restore_stats st;
	struct cf_restore_opts o = { .target = f->target, .dry_run = true };
	plan(f, &c, &o, &st);
	const struct rfile *three = planned(&c, "/b/three");
	const struct rfile *link = planned(&c, "/b/link");
	assert_non_null(three);
	assert_non_null(link);
	/* tree order: "link" < "three", so link is written and three links to it */
	assert_int_equal(link->state, F_WRITE);
	assert_int_equal(three->state, F_LINK);
	assert_ptr_equal(&c.files[three->leader], link);
	finish(&c, &st);
}

/* ---- a whole restore: the bytes on disk ---- */

static void test_restore_writes_the_bytes(void **state)
{
	struct fx *f = *state;
	struct cf_restore_stats st;
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/out", f->dir);
	struct cf_restore_map m = { f->src, dir };
	struct cf_restore_opts o = { .maps = &m, .nmaps = 1, .verify = true };
	int rc = cf_restore_run(f->r, &f->s, &o, &st);
	if (rc)
		fail_msg("restore: %s", cf_errmsg(rc));
	assert_string_equal(slurp(dir, "a/one"), "first file\n");
	assert_string_equal(slurp(dir, "b/three"), "third file, linked\n");
	struct stat a, b;
	char p[512];
	snprintf(p, sizeof(p), "%s/b/three", dir);
	assert_int_equal(stat(p, &a), 0);
	snprintf(p, sizeof(p), "%s/b/link", dir);
	assert_int_equal(stat(p, &b), 0);
	assert_true(a.st_ino == b.st_ino);
	assert_int_equal(st.files_created, 4);
	assert_int_equal(st.files_linked, 1);
	assert_int_equal(st.verified, 5);
	cf_restore_stats_release(&st);

	/* again: every file is found equal and kept */
	rc = cf_restore_run(f->r, &f->s, &o, &st);
	assert_int_equal(rc, CF_OK);
	assert_int_equal(st.files_created + st.files_replaced, 0);
	assert_int_equal(st.bytes_written, 0);
	cf_restore_stats_release(&st);
}

/* ---- never through a symlink ---- */

static void test_symlink_in_target_not_followed(void **state)
{
	struct fx *f = *state;
	struct cf_restore_stats st;
	char dir[256], outside[256], p[512];
	snprintf(dir, sizeof(dir), "%s/victim", f->dir);
	snprintf(outside, sizeof(outside), "%s/outside", f->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(outside, 0755), 0);
	put(outside, "keep", "not the snapshot's");
	/* where the snapshot has directory a: a symlink to outside */
	snprintf(p, sizeof(p), "%s/a", dir);
	assert_int_equal(symlink(outside, p), 0);
	struct cf_restore_map m = { f->src, dir };
	struct cf_restore_opts o = { .maps = &m, .nmaps = 1, .delete_extra = true };
	int rc = cf_restore_run(f->r, &f->s, &o, &st);
	if (rc)
		fail_msg("restore: %s", cf_errmsg(rc));
	struct stat sb;
	assert_int_equal(lstat(p, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode)); /* the link was replaced, not followed */
	assert_string_equal(slurp(dir, "a/one"), "first file\n");
	assert_false(exists(outside, "one"));
	assert_string_equal(slurp(outside, "keep"), "not the snapshot's");
	cf_restore_stats_release(&st);
}

static void test_fsat_refuses_symlinks(void **state)
{
	struct fx *f = *state;
	char p[512];
	int root = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(root >= 0);
	snprintf(p, sizeof(p), "%s/src", f->dir);
	char lnk[512];
	snprintf(lnk, sizeof(lnk), "%s/via", f->dir);
	assert_int_equal(symlink(p, lnk), 0);
	/* a symlink on the way or at the end is refused, never a detour */
	assert_int_equal(cf_fsat_open(root, "via/top", O_RDONLY), -1);
	assert_int_equal(cf_fsat_open(root, "via", O_RDONLY), -1);
	assert_int_equal(cf_fsat_open_dir(root, "via", O_RDONLY), -1);
	/* nor can it leave the directory */
	assert_int_equal(cf_fsat_open(root, "../etc/passwd", O_RDONLY), -1);
	/* the real path opens; O_PATH opens a symlink as itself */
	int fd = cf_fsat_open(root, "src/a/one", O_RDONLY);
	assert_true(fd >= 0);
	struct stat a, b;
	assert_int_equal(fstat(fd, &a), 0);
	close(fd);
	fd = cf_fsat_open(root, "via", O_PATH);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &b), 0);
	assert_true(S_ISLNK(b.st_mode));
	/* reopen: the very inode an O_PATH descriptor holds */
	int pfd = cf_fsat_open(root, "src/a/one", O_PATH);
	assert_true(pfd >= 0);
	int rfd = cf_fsat_reopen(pfd, O_RDONLY);
	assert_true(rfd >= 0);
	assert_int_equal(fstat(rfd, &b), 0);
	assert_true(cf_fsat_same_inode(&b, (uint64_t)a.st_dev, (uint64_t)a.st_ino, S_IFREG));
	assert_false(cf_fsat_same_inode(&b, (uint64_t)a.st_dev, (uint64_t)a.st_ino, S_IFDIR));
	close(rfd);
	close(pfd);
	close(fd);
	close(root);
}

static void test_fsat_remove_stays_beneath(void **state)
{
	struct fx *f = *state;
	char p[256], q[512];
	snprintf(p, sizeof(p), "%s/doomed", f->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	mkd(p, "sub");
	put(p, "sub/file", "x");
	snprintf(q, sizeof(q), "%s/doomed/sub/to-src", f->dir);
	assert_int_equal(symlink(f->src, q), 0);
	int root = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(root >= 0);
	assert_int_equal(cf_fsat_remove(root, "doomed", p), CF_OK);
	assert_false(exists(f->dir, "doomed"));
	assert_true(exists(f->src, "a/one")); /* the symlink went, not what it pointed to */
	assert_int_equal(cf_fsat_remove(root, "doomed", p), CF_OK); /* gone: fine */
	close(root);
}

/* ---- sparse writes ---- */

static int tmpfile_fd(char *path, size_t n)
{
	snprintf(path, n, "/tmp/cf-test-sparse.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	return fd;
}

static void test_sparse_zero_blocks_skipped(void **state)
{
	(void)state;
	char path[64];
	int fd = tmpfile_fd(path, sizeof(path));
	uint8_t buf[3 * 4096];
	struct stat st;
	uint64_t end = 0;

	/* only zeros: nothing written, the end does not move */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(rs_write_sparse(fd, buf, sizeof(buf), 0, &end), CF_OK);
	assert_int_equal(end, 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0);

	/* a zero block, then data: the data lands at its offset, end after it */
	memset(buf + 4096, 'x', 4096);
	assert_int_equal(rs_write_sparse(fd, buf, 2 * 4096, 100, &end), CF_OK);
	assert_int_equal(end, 100 + 2 * 4096);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 100 + 2 * 4096);
	uint8_t back[2 * 4096];
	assert_int_equal(pread(fd, back, sizeof(back), 100), (ssize_t)sizeof(back));
	assert_memory_equal(back, buf, sizeof(back)); /* the hole reads as zeros */

	/* data, then trailing zeros: the end stops after the last data block */
	close(fd);
	unlink(path);
	fd = tmpfile_fd(path, sizeof(path));
	end = 0;
	memset(buf, 0, sizeof(buf));
	memset(buf, 'y', 100);
	assert_int_equal(rs_write_sparse(fd, buf, 100 + 2 * 4096, 0, &end), CF_OK);
	assert_int_equal(end, 4096); /* the first block whole, the zero blocks not */
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 4096);

	/* a short tail that is data counts to its end */
	end = 0;
	assert_int_equal(rs_write_sparse(fd, (const uint8_t *)"tail", 4, 5000, &end), CF_OK);
	assert_int_equal(end, 5004);
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_include_only_that_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exclude_a_pattern, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_map_into_a_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extras_named_for_deletion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extras_only_beneath_the_source, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hard_link_planned_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_writes_the_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_in_target_not_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsat_refuses_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsat_remove_stays_beneath, setup, teardown),
		cmocka_unit_test(test_sparse_zero_blocks_skipped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
