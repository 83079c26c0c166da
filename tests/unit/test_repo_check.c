/*
 * test_repo_check - cf_repo_check on a real local repository in a
 * temporary directory: a clean repository, a flipped byte inside a sealed
 * blob (found by --read-data, the blob's load naming its pack), a pack cut
 * short, gone and put back, the tree pack gone, and every pack gone while
 * the index still names them.
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
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_missing_and_truncated_pack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_all_packs_gone, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
