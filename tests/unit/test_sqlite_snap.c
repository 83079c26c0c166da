/* Tests of sources/sqlite_snap.c against real SQLite databases: a copy taken
 * while another thread keeps writing is a valid database holding exactly a
 * whole-transaction prefix of the writer's rows. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sources/sqlite_snap.h"
#include "common/error.h"

#define ROWS_PER_TX 7

static char dir[] = "/tmp/coffer-sqlite-test-XXXXXX";
static char dbpath[256];

struct writer {
	volatile int stop;
	long txs;  /* transactions committed */
	int err;
};

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static long query_long(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	long v = -1;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Each transaction inserts ROWS_PER_TX rows numbered on from the last, and a
 * blob large enough that the database spans many pages. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	sqlite3 *db;
	sqlite3_stmt *ins;
	long id = 0;

	if (sqlite3_open(dbpath, &db) != SQLITE_OK) {
		w->err = 1;
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_prepare_v2(db, "INSERT INTO t(id, pad) VALUES (?, randomblob(600))", -1, &ins, NULL);
	while (!w->stop) {
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			w->err = 2;
			break;
		}
		for (int i = 0; i < ROWS_PER_TX; i++) {
			sqlite3_bind_int64(ins, 1, ++id);
			if (sqlite3_step(ins) != SQLITE_DONE)
				w->err = 3;
			sqlite3_reset(ins);
		}
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			w->err = 4;
			break;
		}
		w->txs++;
	}
	sqlite3_finalize(ins);
	sqlite3_close(db);
	return NULL;
}

static void check_copy(const char *copy, long max_rows)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct stat sb;

	assert_int_equal(stat(copy, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sqlite3_open_v2(copy, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	long n = query_long(db, "SELECT count(*) FROM t");
	/* A whole-transaction prefix: ids 1..n with no gap, n a multiple of the
	 * transaction size (plus the seed rows). */
	assert_true(n > 0);
	assert_true(n <= max_rows);
	assert_int_equal(n % ROWS_PER_TX, 0);
	assert_int_equal(query_long(db, "SELECT max(id) FROM t"), n);
	assert_int_equal(query_long(db, "SELECT count(DISTINCT id) FROM t"), n);
	sqlite3_close(db);
}

static void run_with_writer(const char *journal_mode)
{
	sqlite3 *db;
	struct writer w = { 0, 0, 0 };
	pthread_t th;
	char *copy = NULL, sql[128];

	snprintf(dbpath, sizeof(dbpath), "%s/app-%s.db", dir, journal_mode);
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", journal_mode);
	exec_ok(db, sql);
	exec_ok(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB)");
	sqlite3_close(db);

	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	while (w.txs < 200)
		usleep(1000);
	long before = w.txs;
	assert_int_equal(cf_sqlite_snapshot(dbpath, dir, &copy), CF_OK);
	long after_snap = w.txs;
	/* The copy is one file: no -wal or -shm of its own beside it. */
	char side[300];
	snprintf(side, sizeof(side), "%s-wal", copy);
	assert_int_not_equal(access(side, F_OK), 0);
	snprintf(side, sizeof(side), "%s-shm", copy);
	assert_int_not_equal(access(side, F_OK), 0);
	usleep(50000);
	w.stop = 1;
	pthread_join(th, NULL);
	assert_int_equal(w.err, 0);
	/* The writer kept committing after the copy, so the copy is a real
	 * point in time and not simply "everything". */
	assert_true(w.txs > after_snap || w.txs > before);
	check_copy(copy, after_snap * ROWS_PER_TX);
	sqlite3 *c;
	assert_int_equal(sqlite3_open_v2(copy, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_true(query_long(c, "SELECT count(*) FROM t") >= before * ROWS_PER_TX);
	sqlite3_close(c);
	fprintf(stderr, "# %s: writer had %ld txs at start, %ld at end of snapshot, %ld in all\n",
		journal_mode, before, after_snap, w.txs);

	unlink(copy);
	for (const char *sfx = "-wal"; sfx; sfx = strcmp(sfx, "-wal") ? NULL : "-shm") {
		snprintf(side, sizeof(side), "%s%s", copy, sfx);
		unlink(side);  /* made by check_copy's read-only open */
	}
	free(copy);
}

static void test_snapshot_wal_with_writer(void **state)
{
	(void)state;
	run_with_writer("wal");
}

static void test_snapshot_rollback_journal_with_writer(void **state)
{
	(void)state;
	run_with_writer("delete");
}

static void test_errors_leave_nothing(void **state)
{
	char *copy = (char *)"x", path[300];
	(void)state;

	assert_int_equal(cf_sqlite_snapshot("/nonexistent/app.db", dir, &copy), CF_ENOENT);
	assert_null(copy);
	assert_non_null(strstr(cf_errmsg(CF_ENOENT), "/nonexistent/app.db"));

	snprintf(path, sizeof(path), "%s/not-a-db", dir);
	FILE *f = fopen(path, "w");
	for (int i = 0; i < 2000; i++)
		fputs("this is not an sqlite database\n", f);
	fclose(f);
	assert_int_equal(cf_sqlite_snapshot(path, dir, &copy), CF_EDB);
	assert_non_null(strstr(cf_errmsg(CF_EDB), "not-a-db"));
	unlink(path);

	/* No temp file may remain in dir after the failures. */
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "ls %s | grep -q coffer-sqlite-", dir);
	assert_int_not_equal(system(cmd), 0);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snapshot_wal_with_writer),
		cmocka_unit_test(test_snapshot_rollback_journal_with_writer),
		cmocka_unit_test(test_errors_leave_nothing),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
