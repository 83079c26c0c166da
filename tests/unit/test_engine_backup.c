/*
 * test_engine_backup - the backup engine (cf_backup_run) on a real local
 * repository in a temporary directory, for what the CLI cannot reach: a
 * stream source inside a walked directory (an "overlay", the way a SQLite
 * copy stands in for its live file) must be in the snapshot whatever the
 * exclude patterns say (on it or on a directory above it) and whether its
 * path is given absolute or relative to the snapshot's root.  (The CLI and the agent refuse such excludes; the
 * engine must not rely on that.)
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

#include "common/error.h"
#include "engine/backup.h"
#include "repo/repo.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "store/backend.h"
#include "testutil.h"

#define PW "correct horse"
#define DUMP "the dump's bytes, not the live file's\n"

struct fixture {
	char dir[64];
	char repo[96], data[96];
	struct cf_repo *r;
};

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct cf_backend *be;
	assert_non_null(f);
	make_tmpdir(f->dir, sizeof(f->dir), "/tmp/cf-test-engine.XXXXXX");
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	assert_int_equal(mkdir(f->data, 0700), 0);
	char p[160];
	snprintf(p, sizeof(p), "%s/a.txt", f->data);
	put_file(p, "a file\n");
	snprintf(p, sizeof(p), "%s/app.db", f->data);
	put_file(p, "the live database\n");
	assert_int_equal(cf_backend_local_new(f->repo, &be), CF_OK);
	cf_repo_free(init_cheap(be, PW, -1));
	assert_int_equal(cf_backend_local_new(f->repo, &be), CF_OK);
	assert_int_equal(cf_repo_open(be, PW, strlen(PW), &f->r), CF_OK);
	assert_int_equal(cf_repo_lock(f->r, false, 0), CF_OK);
	assert_int_equal(cf_repo_load_index(f->r), CF_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	cf_repo_free(f->r);
	rm_tree(f->dir);
	free(f);
	return 0;
}

static int produce(void *ctx, cf_sink_fn sink, void *sink_ctx)
{
	(void)ctx;
	return sink(sink_ctx, DUMP, strlen(DUMP));
}

/* Back up f->data with one stream at stream_path; the node at the
 * snapshot path want (absolute) must be the stream's. */
static void run(struct fixture *f, const char *stream_path, const char *const *excludes,
		size_t nexcludes, const char *want)
{
	const char *paths[] = { f->data };
	struct cf_stream_source s = { .path = stream_path, .produce = produce, .mode = 0600 };
	struct cf_backup_opts o = { .paths = paths, .npaths = 1, .streams = &s, .nstreams = 1,
				    .host = "test", .excludes = excludes, .nexcludes = nexcludes,
				    .threads = 2, .no_parent = true };
	struct cf_snapshot snap;
	struct cf_node n;
	memset(&snap, 0, sizeof(snap));
	memset(&n, 0, sizeof(n));
	int rc = cf_backup_run(f->r, &o, &snap);
	if (rc)
		fail_msg("backup: %s", cf_errmsg(rc));
	rc = cf_tree_find_path(f->r, snap.tree, want, &n);
	if (rc)
		fail_msg("%s: %s", want, cf_errmsg(rc));
	assert_int_equal(n.type, CF_NODE_FILE);
	assert_int_equal(n.size, strlen(DUMP));
	cf_node_release(&n);
	cf_snapshot_release(&snap);
}

/* The plain case: an absolute stream path over a live file. */
static void test_overlay(void **state)
{
	struct fixture *f = *state;
	char sp[160];
	snprintf(sp, sizeof(sp), "%s/app.db", f->data);
	run(f, sp, NULL, 0, sp);
}

/* An exclude matching the stream's name or its whole path leaves it in. */
static void test_overlay_excluded(void **state)
{
	struct fixture *f = *state;
	char sp[160];
	snprintf(sp, sizeof(sp), "%s/app.db", f->data);
	const char *by_name[] = { "*.db" };
	run(f, sp, by_name, 1, sp);
	const char *by_path[] = { sp };
	run(f, sp, by_path, 1, sp);
}

/* A stream path relative to the snapshot's root ("tmp/.../data/app.db"),
 * or with doubled slashes, names the same place as the absolute one: the
 * stream is stored there, not the live file. */
static void test_overlay_relative(void **state)
{
	struct fixture *f = *state;
	char sp[200], want[160];
	snprintf(want, sizeof(want), "%s/app.db", f->data);
	snprintf(sp, sizeof(sp), "%s", want + 1);
	run(f, sp, NULL, 0, want);
	snprintf(sp, sizeof(sp), "/%s//app.db", f->data);
	run(f, sp, NULL, 0, want);
}

/* An exclude matching a directory that holds a stream leaves the directory
 * in with the stream alone: its other entries stay out. */
static void test_overlay_dir_excluded(void **state)
{
	struct fixture *f = *state;
	char db[160], sp[200], other[200];
	snprintf(db, sizeof(db), "%s/db", f->data);
	assert_int_equal(mkdir(db, 0700), 0);
	snprintf(sp, sizeof(sp), "%s/app.db", db);
	put_file(sp, "the live database\n");
	snprintf(other, sizeof(other), "%s/other.txt", db);
	put_file(other, "left out\n");
	const char *by_name[] = { "db" };
	run(f, sp, by_name, 1, sp);

	/* the snapshot again, for what it left out */
	const char *paths[] = { f->data };
	struct cf_stream_source s = { .path = sp, .produce = produce, .mode = 0600 };
	struct cf_backup_opts o = { .paths = paths, .npaths = 1, .streams = &s, .nstreams = 1,
				    .host = "test", .excludes = by_name, .nexcludes = 1,
				    .threads = 1, .no_parent = true };
	struct cf_snapshot snap;
	struct cf_node n;
	memset(&snap, 0, sizeof(snap));
	memset(&n, 0, sizeof(n));
	assert_int_equal(cf_backup_run(f->r, &o, &snap), CF_OK);
	assert_int_equal(cf_tree_find_path(f->r, snap.tree, other, &n), CF_ENOENT);
	assert_int_equal(cf_tree_find_path(f->r, snap.tree, db, &n), CF_OK);
	assert_int_equal(n.type, CF_NODE_DIR);
	assert_int_equal(n.mode, 0700);
	cf_node_release(&n);
	cf_snapshot_release(&snap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_overlay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_excluded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_relative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_dir_excluded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
