/* Tests of the WAL frame reader and applier (sources/replicate.c) and the
 * segment format (repo/segment.c) against a real SQLite WAL: every frame
 * of a WAL written by SQLite validates, transactions end at commit frames,
 * applying them to a copy of the database file gives, transaction by
 * transaction, the database SQLite had; a changed byte ends the valid log;
 * damaged headers and segments are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sources/replicate.h"
#include "repo/segment.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"

#define NTX 20

static char dir[] = "/tmp/coffer-repl-test-XXXXXX";

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static long query_long(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	long v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

static void read_file(const char *path, struct cf_buf *b)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	cf_buf_reset(b);
	assert_int_equal(cf_buf_grow(b, (size_t)st.st_size), CF_OK);
	assert_int_equal(cf_read_full(fd, b->data, (size_t)st.st_size), st.st_size);
	b->len = (size_t)st.st_size;
	close(fd);
}

static void copy_file(const char *from, const char *to)
{
	struct cf_buf b = CF_BUF_INIT;
	read_file(from, &b);
	assert_int_equal(cf_write_atomic(to, b.data, b.len, 0600), CF_OK);
	cf_buf_release(&b);
}

/* A database whose base is checkpointed and whose WAL holds NTX
 * transactions, transaction i inserting i rows (some growing the file). */
static sqlite3 *make_wal(char *db, char *base)
{
	static int n;
	sqlite3 *c;
	snprintf(db, 256, "%s/app%d.db", dir, n++);
	snprintf(base, 256, "%s/base.db", dir);
	assert_int_equal(sqlite3_open(db, &c), SQLITE_OK);
	exec_ok(c, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
		   "CREATE TABLE t(id INTEGER PRIMARY KEY, tx INTEGER, pad BLOB);");
	exec_ok(c, "PRAGMA wal_checkpoint(TRUNCATE)");
	copy_file(db, base);
	for (int i = 1; i <= NTX; i++) {
		char sql[256];
		snprintf(sql, sizeof(sql), "BEGIN; WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM k "
			 "WHERE x < %d) INSERT INTO t(tx, pad) SELECT %d, randomblob(700) FROM k; COMMIT;", i, i);
		exec_ok(c, sql);
	}
	return c; /* kept open: the WAL stays as it is */
}

/* Read the WAL into a segment: one transaction per commit frame. */
static void wal_to_segment(const char *db, struct cf_buf *seg, uint32_t *ntx_out, uint32_t *ps_out)
{
	char wal[300];
	struct cf_buf b = CF_BUF_INIT, pages = CF_BUF_INIT;
	struct cf_wal w;
	uint32_t pg[4096], n = 0, ntx = 0;

	snprintf(wal, sizeof(wal), "%s-wal", db);
	read_file(wal, &b);
	assert_int_equal(cf_wal_header(&w, b.data), CF_OK);
	size_t fsz = CF_WAL_FRAME_HDR + w.page_size;
	assert_int_equal(cf_seg_begin(seg, "00000000000000000123456789abcdef", 1, w.page_size), CF_OK);
	for (size_t off = CF_WAL_HDR; off + fsz <= b.len; off += fsz) {
		uint32_t pgno, commit;
		assert_true(cf_wal_frame(&w, b.data + off, &pgno, &commit));
		assert_int_equal(cf_buf_add(&pages, b.data + off + CF_WAL_FRAME_HDR, w.page_size), CF_OK);
		pg[n++] = pgno;
		if (commit) {
			assert_int_equal(cf_seg_add_tx(seg, 1000 + ntx, commit, n, pg, pages.data, w.page_size), CF_OK);
			ntx++;
			n = 0;
			pages.len = 0;
		}
	}
	assert_int_equal(n, 0); /* nothing after the last commit */
	cf_seg_finish(seg, ntx);
	*ntx_out = ntx;
	*ps_out = w.page_size;
	cf_buf_release(&b);
	cf_buf_release(&pages);
}

static void test_frames_and_apply(void **state)
{
	(void)state;
	char db[256], base[256], out[300];
	struct cf_buf seg = CF_BUF_INIT;
	struct cf_segment s;
	uint32_t ntx, ps;
	sqlite3 *c = make_wal(db, base);

	wal_to_segment(db, &seg, &ntx, &ps);
	assert_int_equal(ntx, NTX);
	assert_int_equal(cf_seg_parse(seg.data, seg.len, &s), CF_OK);
	assert_int_equal(s.ntx, NTX);
	assert_int_equal(s.seq, 1);
	assert_string_equal(s.gen, "00000000000000000123456789abcdef");
	/* apply transaction by transaction to a copy of the base: after i
	 * transactions the copy holds exactly rows of transactions 1..i */
	snprintf(out, sizeof(out), "%s/out.db", dir);
	copy_file(base, out);
	for (size_t i = 0; i < s.ntx; i++) {
		int fd = open(out, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(cf_wal_apply_tx(fd, out, ps, &s.tx[i]), CF_OK);
		close(fd);
		long k = (long)i + 1;
		assert_int_equal(query_long(out, "SELECT count(*) FROM t"), k * (k + 1) / 2);
		assert_int_equal(query_long(out, "SELECT max(tx) FROM t"), k);
		struct stat st;
		assert_int_equal(stat(out, &st), 0);
		assert_int_equal(st.st_size, (off_t)s.tx[i].db_pages * ps);
	}
	char side[320];
	snprintf(side, sizeof(side), "%s-wal", out);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", out);
	unlink(side);
	cf_seg_release(&s);
	cf_buf_release(&seg);
	sqlite3_close(c);
}

static void test_damage_ends_log(void **state)
{
	(void)state;
	char db[256], base[256], wal[300];
	struct cf_buf b = CF_BUF_INIT;
	struct cf_wal w, w2;
	sqlite3 *c = make_wal(db, base);

	snprintf(wal, sizeof(wal), "%s-wal", db);
	read_file(wal, &b);
	assert_int_equal(cf_wal_header(&w, b.data), CF_OK);
	size_t fsz = CF_WAL_FRAME_HDR + w.page_size, nframes = (b.len - CF_WAL_HDR) / fsz;
	assert_true(nframes > 3);
	/* a changed byte in frame 3's page: frames 0..2 validate, 3 does not */
	b.data[CF_WAL_HDR + 3 * fsz + CF_WAL_FRAME_HDR + 100] ^= 1;
	w2 = w;
	uint32_t pgno, commit;
	for (int i = 0; i < 3; i++)
		assert_true(cf_wal_frame(&w2, b.data + CF_WAL_HDR + i * fsz, &pgno, &commit));
	assert_false(cf_wal_frame(&w2, b.data + CF_WAL_HDR + 3 * fsz, &pgno, &commit));
	/* other salts (a later WAL cycle): not this log */
	b.data[CF_WAL_HDR + 3 * fsz + CF_WAL_FRAME_HDR + 100] ^= 1;
	w2 = w;
	w2.salt1++;
	assert_false(cf_wal_frame(&w2, b.data + CF_WAL_HDR, &pgno, &commit));
	/* a damaged header is refused */
	uint8_t h[CF_WAL_HDR];
	memcpy(h, b.data, sizeof(h));
	h[17] ^= 1;
	assert_int_equal(cf_wal_header(&w2, h), CF_ECORRUPT);
	memcpy(h, b.data, sizeof(h));
	h[0] = 0;
	assert_int_equal(cf_wal_header(&w2, h), CF_ECORRUPT);
	cf_err_clear();
	cf_buf_release(&b);
	sqlite3_close(c);
}

static void test_segment_refuses_damage(void **state)
{
	(void)state;
	struct cf_buf seg = CF_BUF_INIT;
	struct cf_segment s;
	uint8_t pages[2 * 512];
	uint32_t pg[2] = { 1, 2 };
	memset(pages, 7, sizeof(pages));
	assert_int_equal(cf_seg_begin(&seg, "00000000000000000123456789abcdef", 5, 512), CF_OK);
	assert_int_equal(cf_seg_add_tx(&seg, 10, 2, 2, pg, pages, 512), CF_OK);
	assert_int_equal(cf_seg_add_tx(&seg, 20, 2, 1, pg, pages, 512), CF_OK);
	cf_seg_finish(&seg, 2);
	assert_int_equal(cf_seg_parse(seg.data, seg.len, &s), CF_OK);
	assert_int_equal(s.ntx, 2);
	assert_int_equal(s.tx[1].time_ns, 20);
	cf_seg_release(&s);
	/* every prefix is refused */
	for (size_t n = 0; n < seg.len; n++)
		assert_int_not_equal(cf_seg_parse(seg.data, n, &s), CF_OK);
	/* time going backwards, page 0, a bad page size */
	cf_put_le64(seg.data + 40, 30);
	assert_int_equal(cf_seg_parse(seg.data, seg.len, &s), CF_ECORRUPT);
	cf_put_le64(seg.data + 40, 10);
	cf_put_le32(seg.data + 56, 0);
	assert_int_equal(cf_seg_parse(seg.data, seg.len, &s), CF_ECORRUPT);
	cf_put_le32(seg.data + 56, 1);
	cf_put_le32(seg.data + 32, 1000);
	assert_int_equal(cf_seg_parse(seg.data, seg.len, &s), CF_ECORRUPT);
	cf_err_clear();
	cf_buf_release(&seg);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames_and_apply),
		cmocka_unit_test(test_damage_ends_log),
		cmocka_unit_test(test_segment_refuses_damage),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
