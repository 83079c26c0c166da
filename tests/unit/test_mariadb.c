/*
 * Tests of the MariaDB dumper (sources/mariadb.c) and loader
 * (sources/mariadb_load.c).
 *
 * The splitter tests need nothing.  Every other test runs against the real
 * server named by COFFER_TEST_MARIADB (a mariadb:// URL of a user allowed to
 * create and drop databases; tests/infra/mariadb-up.sh starts one and prints
 * the URL) and is skipped when it is unset.  They create databases named
 * cf_test_* and drop them again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mysql.h>

#include "sources/dburl.h"
#include "sources/mariadb.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "sources/mariadb_load.h"

/* ---- the splitter, no server needed ---- */

struct collected {
	char *stmts[32];
	unsigned long lines[32];
	int n;
};

static int collect(void *ctx, char *stmt, size_t len, unsigned long line)
{
	struct collected *c = ctx;
	assert_true(c->n < 32);
	assert_int_equal(strlen(stmt), len);
	c->stmts[c->n] = strdup(stmt);
	c->lines[c->n++] = line;
	return CF_OK;
}

static void collected_free(struct collected *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->stmts[i]);
	c->n = 0;
}

static const char split_input[] =
	"-- header comment; with a semicolon\n"                       /* 1 */
	"/* block ; comment */\n"                                      /* 2 */
	"SET NAMES utf8mb4;\n"                                         /* 3 */
	"INSERT INTO `we;ird``s` VALUES ('a;b', 'it''s', 'x\\';y',\n"  /* 4 */
	"  \"dq;\\\"\", 5-1, 6--1, 7/2); # trailing comment ;\n"      /* 5 */
	"/*!40101 SET @x = 1 */;\n"                                    /* 6 */
	"\n"                                                           /* 7 */
	"DELIMITER ;;\n"                                               /* 8 */
	"CREATE PROCEDURE p()\n"                                       /* 9 */
	"BEGIN\n"                                                      /* 10 */
	"  SELECT 1; -- inner comment kept\n"                          /* 11 */
	"  SELECT ';;';\n"                                             /* 12 */
	"END ;;\n"                                                     /* 13 */
	"delimiter //\n"                                               /* 14 */
	"SELECT 2 //\n"                                                /* 15 */
	"DELIMITER ;\n"                                                /* 16 */
	";\n"                                                          /* 17: empty, dropped */
	"SELECT 3";                                                    /* 18: no delimiter */

static const char *const split_want[] = {
	"SET NAMES utf8mb4",
	("INSERT INTO `we;ird``s` VALUES ('a;b', 'it''s', 'x\\';y',\n"
	 "  \"dq;\\\"\", 5-1, 6--1, 7/2)"),
	"/*!40101 SET @x = 1 */",
	"CREATE PROCEDURE p()\nBEGIN\n  SELECT 1; -- inner comment kept\n  SELECT ';;';\nEND",
	"SELECT 2",
	"SELECT 3",
};
static const unsigned long split_lines[] = { 3, 4, 6, 9, 15, 18 };

static void check_split(size_t chunk)
{
	struct cf_sqlsplit s;
	struct collected c = { .n = 0 };
	size_t n = strlen(split_input);

	cf_sqlsplit_init(&s);
	for (size_t off = 0; off < n; off += chunk)
		assert_int_equal(cf_sqlsplit_feed(&s, split_input + off, off + chunk > n ? n - off : chunk,
						  collect, &c), CF_OK);
	assert_int_equal(cf_sqlsplit_finish(&s, collect, &c), CF_OK);
	cf_sqlsplit_release(&s);
	assert_int_equal(c.n, 6);
	for (int i = 0; i < c.n; i++) {
		assert_string_equal(c.stmts[i], split_want[i]);
		assert_int_equal(c.lines[i], split_lines[i]);
	}
	collected_free(&c);
}

static void test_split(void **state)
{
	(void)state;
	/* Every chunk size, so that each construct is cut at every position. */
	for (size_t chunk = 1; chunk <= 17; chunk++)
		check_split(chunk);
	check_split(sizeof(split_input));
}

static void test_split_unterminated(void **state)
{
	static const char *const inputs[] = { "SELECT 1;\nSELECT 'abc;\n", "SELECT 1;\n\n/* open",
					      "SELECT `x;" };
	static const char *const needles[] = { "line 2: quoted string", "line 3: comment",
					       "line 1: `identifier`" };
	(void)state;
	for (int i = 0; i < 3; i++) {
		struct cf_sqlsplit s;
		struct collected c = { .n = 0 };
		cf_sqlsplit_init(&s);
		assert_int_equal(cf_sqlsplit_feed(&s, inputs[i], strlen(inputs[i]), collect, &c), CF_OK);
		int r = cf_sqlsplit_finish(&s, collect, &c);
		assert_int_equal(r, CF_ECORRUPT);
		if (!strstr(cf_errmsg(r), needles[i]))
			fail_msg("'%s' not in '%s'", needles[i], cf_errmsg(r));
		cf_sqlsplit_release(&s);
		collected_free(&c);
	}
}

/* ---- helpers for the server tests ---- */

static struct cf_dburl url;
static bool have_server;

static MYSQL *conn(void)
{
	void *m;
	if (cf_dburl_connect(&url, &m) != CF_OK)
		fail_msg("connect: %s", cf_errmsg(CF_EDB));
	return m;
}

static void exec(MYSQL *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void exec(MYSQL *m, const char *fmt, ...)
{
	struct cf_buf b = CF_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	char *s;
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	if (mysql_query(m, s))
		fail_msg("%s: %s", s, mysql_error(m));
	MYSQL_RES *res = mysql_store_result(m);
	if (res)
		mysql_free_result(res);
	free(s);
	cf_buf_release(&b);
}

/* First column of the first row, as a malloc'd string ("NULL" for NULL). */
static char *scalar(MYSQL *m, const char *sql)
{
	if (mysql_query(m, sql))
		fail_msg("%s: %s", sql, mysql_error(m));
	MYSQL_RES *res = mysql_store_result(m);
	assert_non_null(res);
	MYSQL_ROW row = mysql_fetch_row(res);
	char *v = strdup(row && row[0] ? row[0] : "NULL");
	mysql_free_result(res);
	return v;
}

static long scalar_long(MYSQL *m, const char *sql)
{
	char *s = scalar(m, sql);
	long v = strtol(s, NULL, 10);
	free(s);
	return v;
}

/* Every value of every row of a result, with lengths, as one buffer: two
 * queries give equal digests exactly when they return the same bytes. */
static void digest(MYSQL *m, const char *sql, int col, struct cf_buf *out)
{
	if (mysql_query(m, sql))
		fail_msg("%s: %s", sql, mysql_error(m));
	MYSQL_RES *res = mysql_store_result(m);
	assert_non_null(res);
	unsigned nf = mysql_num_fields(res);
	MYSQL_ROW row;
	while ((row = mysql_fetch_row(res))) {
		unsigned long *len = mysql_fetch_lengths(res);
		for (unsigned i = 0; i < nf; i++) {
			if (col >= 0 && (int)i != col)
				continue;
			if (row[i])
				assert_int_equal(cf_buf_addf(out, "%lu:", len[i]), CF_OK);
			assert_int_equal(cf_buf_add(out, row[i] ? row[i] : "N;", row[i] ? len[i] : 2), CF_OK);
		}
		assert_int_equal(cf_buf_add(out, "\n", 1), CF_OK);
	}
	mysql_free_result(res);
}

/* Replace every "`from`." in b by "`to`." (a renamed database's own
 * qualified references, which the length prefixes of digest() do not see). */
static void rename_refs(struct cf_buf *b, const char *from, const char *to)
{
	char f[128], t[128];
	struct cf_buf o = CF_BUF_INIT;
	snprintf(f, sizeof(f), "`%s`.", from);
	snprintf(t, sizeof(t), "`%s`.", to);
	for (size_t i = 0; i < b->len;) {
		if (b->len - i >= strlen(f) && !memcmp(b->data + i, f, strlen(f))) {
			assert_int_equal(cf_buf_adds(&o, t), CF_OK);
			i += strlen(f);
		} else {
			assert_int_equal(cf_buf_add(&o, b->data + i, 1), CF_OK);
			i++;
		}
	}
	cf_buf_release(b);
	*b = o;
}

static const char *ren_from, *ren_to;

static void assert_same(MYSQL *m, const char *sql_a, const char *sql_b, int col)
{
	struct cf_buf a = CF_BUF_INIT, b = CF_BUF_INIT;
	digest(m, sql_a, col, &a);
	digest(m, sql_b, col, &b);
	if (ren_from && strstr(sql_a, "SHOW CREATE")) {
		rename_refs(&a, ren_from, ren_to);
		rename_refs(&b, ren_from, ren_to);
	}
	if (a.len != b.len || memcmp(a.data, b.data, a.len))
		fail_msg("differ:\n  %s -> %.300s\n  %s -> %.300s", sql_a, a.data, sql_b, b.data);
	cf_buf_release(&a);
	cf_buf_release(&b);
}

static int buf_sink(void *ctx, const void *p, size_t n)
{
	return cf_buf_add(ctx, p, n);
}

struct mem_src {
	const uint8_t *p;
	size_t n, off, chunk;
};

static ssize_t mem_read(void *ctx, void *buf, size_t n)
{
	struct mem_src *s = ctx;
	size_t k = s->n - s->off;
	if (k > n)
		k = n;
	if (k > s->chunk)
		k = s->chunk;
	memcpy(buf, s->p + s->off, k);
	s->off += k;
	return (ssize_t)k;
}

static int load_buf(const struct cf_buf *dump, const char *target, size_t chunk)
{
	struct mem_src src = { dump->data, dump->len, 0, chunk };
	return cf_mariadb_load(&url, target, mem_read, &src, NULL);
}

/* Dump the databases the URL would list when restricted to name. */
static void dump_one(const char *name, bool lock, struct cf_buf *out, struct cf_mariadb_stats *st)
{
	struct cf_mariadb *db;
	struct cf_mariadb_opts opts = { .lock = lock };
	assert_int_equal(cf_mariadb_open(&url, &db), CF_OK);
	assert_int_equal(cf_mariadb_begin_snapshot(db, &opts), CF_OK);
	int r = cf_mariadb_dump_db(db, name, buf_sink, out, st);
	if (r != CF_OK)
		fail_msg("dump %s: %s", name, cf_errmsg(r));
	cf_mariadb_close(db);
}

#define SKIP_WITHOUT_SERVER() do { if (!have_server) skip(); } while (0)

/* ---- the full schema ---- */

static void create_source(MYSQL *m)
{
	char bytes[256], hex[513], txt_hex[200];
	for (int i = 0; i < 256; i++)
		bytes[i] = (char)i;
	cf_hex((uint8_t *)bytes, 256, hex);
	static const char txt[] = "\xf0\x9f\x98\x80 emoji ' \" \\ \n \r \x1a tab\t \xc3\xbc \xe2\x82\xac end";
	cf_hex((const uint8_t *)txt, sizeof(txt) - 1, txt_hex);

	exec(m, "DROP DATABASE IF EXISTS cf_test_src");
	exec(m, "DROP DATABASE IF EXISTS cf_test_dst");
	exec(m, "CREATE DATABASE cf_test_src CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
	exec(m, "USE cf_test_src");
	exec(m, "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB");
	exec(m, "CREATE TABLE kinds ("
		"id INT AUTO_INCREMENT PRIMARY KEY, parent_id INT NULL, n_null VARCHAR(10) NULL,"
		"bin BLOB, vb VARBINARY(300), fixb BINARY(4), txt TEXT, lat VARCHAR(50) CHARACTER SET latin1,"
		"dec30 DECIMAL(30,10), d DATE, dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(3),"
		"y YEAR, f FLOAT, dbl DOUBLE, bits BIT(10), e ENUM('a','b c','\xc3\xbc'), s SET('x','y'),"
		"j JSON, u BIGINT UNSIGNED,"
		"gen_v INT AS (parent_id * 2) VIRTUAL,"
		" gen_s VARCHAR(80) AS (CONCAT(IFNULL(n_null, '-'), IFNULL(parent_id, 0))) STORED,"
		"FOREIGN KEY (parent_id) REFERENCES parent(id)) ENGINE=InnoDB");
	exec(m, "INSERT INTO parent VALUES (1, 'one'), (2, NULL)");
	exec(m, "INSERT INTO kinds (parent_id) VALUES (1)");  /* everything else NULL */
	exec(m, "INSERT INTO kinds (parent_id, n_null, bin, vb, fixb, txt, lat, dec30, d, dt, ts, tm, y, f, dbl,"
		" bits, e, s, j, u) VALUES (2, 'x', X'%s', X'%s', X'00FF0000', CONVERT(X'%s' USING utf8mb4),"
		" 'Gr\xc3\xbc\xc3\x9f" "e', '12345678901234567890.0123456789', '2024-02-29',"
		" '2024-12-31 23:59:59.999999', '2038-01-19 03:14:07.123456', '-838:59:59.000', 2155,"
		" 3.14159, 2.718281828459045, b'1010101010', '\xc3\xbc', 'x,y', '{\"k\": [1, \"\xc3\xbc\"]}',"
		" 18446744073709551615)", hex, hex, txt_hex);
	exec(m, "INSERT INTO kinds (n_null, bin, txt, dec30, d, dt, f, dbl, bits, e, s, u) VALUES"
		" ('', X'', '', '-0.0000000001', '1000-01-01', '1000-01-01 00:00:00', -1.5e-30, -1.7976931348623157e308,"
		" b'0', 'b c', '', 0)");
	/* id 0 survives only because the dump loads with NO_AUTO_VALUE_ON_ZERO. */
	exec(m, "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')");
	exec(m, "INSERT INTO kinds (id, n_null) VALUES (0, 'zero')");
	exec(m, "CREATE TABLE legacy (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=MyISAM");
	exec(m, "INSERT INTO legacy VALUES (1, 'old'), (2, NULL)");
	exec(m, "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(40), b VARBINARY(16)) ENGINE=InnoDB");
	exec(m, "SET SESSION max_recursive_iterations = 1000000");
	exec(m, "INSERT INTO big SELECT n, CONCAT('row-', n), UNHEX(MD5(n)) FROM"
		" (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100000)"
		" SELECT n FROM s) x");
	exec(m, "CREATE SEQUENCE seq1 START WITH 100 INCREMENT BY 5");
	exec(m, "DO NEXTVAL(seq1)");
	exec(m, "DO NEXTVAL(seq1)");
	exec(m, "CREATE TABLE uses_seq (id INT PRIMARY KEY DEFAULT NEXTVAL(seq1), v INT)");
	exec(m, "INSERT INTO uses_seq (v) VALUES (1), (2)");
	/* a_view reads v_kinds: created in that order only if the dumper sorts
	 * views by dependency rather than by name. */
	exec(m, "CREATE VIEW v_kinds AS SELECT id, txt, gen_s FROM kinds");
	exec(m, "CREATE VIEW a_view AS SELECT id FROM v_kinds WHERE id > 0");
	exec(m, "CREATE TRIGGER parent_bi BEFORE INSERT ON parent FOR EACH ROW\n"
		"BEGIN\n  SET NEW.name = CONCAT(IFNULL(NEW.name, ''), '!'); -- mark\nEND");
	exec(m, "INSERT INTO parent VALUES (3, 'three')");  /* stored as 'three!' */
	exec(m, "CREATE PROCEDURE p_count(OUT c INT)\nBEGIN\n  SELECT COUNT(*) INTO c FROM big;\nEND");
	exec(m, "CREATE FUNCTION f_twice(x INT) RETURNS INT DETERMINISTIC\n"
		"BEGIN\n  DECLARE y INT;\n  SET y = x * 2;\n  RETURN y;\nEND");
	exec(m, "CREATE EVENT ev_cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00'"
		" DO DELETE FROM legacy WHERE id < 0");
}

static const char *const all_tables[] = { "parent", "kinds", "legacy", "big", "uses_seq" };

static void compare_dbs(MYSQL *m, const char *a, const char *b)
{
	char qa[512], qb[512];

	ren_from = b;
	ren_to = a;

	for (size_t i = 0; i < sizeof(all_tables) / sizeof(all_tables[0]); i++) {
		const char *t = all_tables[i];
		snprintf(qa, sizeof(qa), "CHECKSUM TABLE %s.%s EXTENDED", a, t);
		snprintf(qb, sizeof(qb), "CHECKSUM TABLE %s.%s EXTENDED", b, t);
		assert_same(m, qa, qb, 1);
		snprintf(qa, sizeof(qa), "SELECT * FROM %s.%s ORDER BY 1", a, t);
		snprintf(qb, sizeof(qb), "SELECT * FROM %s.%s ORDER BY 1", b, t);
		assert_same(m, qa, qb, -1);
		snprintf(qa, sizeof(qa), "SHOW CREATE TABLE %s.%s", a, t);
		snprintf(qb, sizeof(qb), "SHOW CREATE TABLE %s.%s", b, t);
		assert_same(m, qa, qb, 1);
	}
	/* Raw bytes of the binary and text columns, beyond what CHECKSUM says. */
	snprintf(qa, sizeof(qa), "SELECT id, HEX(bin), HEX(vb), HEX(txt), HEX(lat), dec30, dt, ts, tm, f, dbl,"
		 " HEX(bits), u, gen_v, gen_s FROM %s.kinds ORDER BY id", a);
	snprintf(qb, sizeof(qb), "SELECT id, HEX(bin), HEX(vb), HEX(txt), HEX(lat), dec30, dt, ts, tm, f, dbl,"
		 " HEX(bits), u, gen_v, gen_s FROM %s.kinds ORDER BY id", b);
	assert_same(m, qa, qb, -1);
	snprintf(qa, sizeof(qa), "SELECT next_not_cached_value FROM %s.seq1", a);
	snprintf(qb, sizeof(qb), "SELECT next_not_cached_value FROM %s.seq1", b);
	assert_same(m, qa, qb, -1);
	/* Object definitions, read with each database as the current one so that
	 * both print unqualified names. */
	static const char *const objs[][3] = {
		{ "VIEW", "v_kinds", "1" }, { "VIEW", "a_view", "1" }, { "TRIGGER", "parent_bi", "2" },
		{ "PROCEDURE", "p_count", "2" }, { "FUNCTION", "f_twice", "2" }, { "EVENT", "ev_cleanup", "3" },
	};
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		struct cf_buf da = CF_BUF_INIT, db = CF_BUF_INIT;
		snprintf(qa, sizeof(qa), "SHOW CREATE %s %s", objs[i][0], objs[i][1]);
		exec(m, "USE %s", a);
		digest(m, qa, atoi(objs[i][2]), &da);
		exec(m, "USE %s", b);
		digest(m, qa, atoi(objs[i][2]), &db);
		if (da.len != db.len || memcmp(da.data, db.data, da.len))
			fail_msg("%s differs:\n%s\n%s", qa, da.data, db.data);
		cf_buf_release(&da);
		cf_buf_release(&db);
	}
	snprintf(qa, sizeof(qa), "SELECT %s.f_twice(21)", b);
	assert_int_equal(scalar_long(m, qa), 42);
	exec(m, "USE %s", b);
	exec(m, "CALL p_count(@c)");
	assert_int_equal(scalar_long(m, "SELECT @c"), 100000);
}

/* The stock client, with the connection the URL describes.  --comments:
 * without it the client strips comments inside routine and trigger bodies
 * before sending them (it does so with mysqldump's dumps too). */
static int run_stock_client(const char *dump_path)
{
	char port[16];
	pid_t pid = fork();
	if (pid == 0) {
		char *pw = NULL;
		cf_dburl_password(&url, &pw);
		if (pw)
			setenv("MYSQL_PWD", pw, 1);
		int fd = open(dump_path, O_RDONLY), null = open("/dev/null", O_WRONLY);
		dup2(fd, 0);
		dup2(null, 1);  /* SELECT SETVAL() prints its result */
		snprintf(port, sizeof(port), "%u", url.port);
		if (url.socket) {
			char sock[300];
			snprintf(sock, sizeof(sock), "--socket=%s", url.socket);
			execlp("mariadb", "mariadb", "--no-defaults", "--comments", sock, "-u", url.user, (char *)NULL);
		} else {
			execlp("mariadb", "mariadb", "--no-defaults", "--comments", "--protocol=TCP", "-h", url.host, "-P", port,
			       "-u", url.user, (char *)NULL);
		}
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_dump_and_restore(void **state)
{
	struct cf_buf dump = CF_BUF_INIT;
	struct cf_mariadb_stats st;
	(void)state;
	SKIP_WITHOUT_SERVER();

	MYSQL *m = conn();
	create_source(m);

	double t0 = cf_now_mono();
	dump_one("cf_test_src", true, &dump, &st);
	double t1 = cf_now_mono();
	fprintf(stderr, "# dump: %.2f s, %zu bytes, %lu rows, %lu tables, %lu objects\n", t1 - t0, dump.len,
		(unsigned long)st.rows, (unsigned long)st.tables, (unsigned long)st.objects);
	assert_int_equal(st.tables, 5);
	assert_int_equal(st.nontx_tables, 1);  /* legacy (MyISAM) */
	assert_int_equal(st.rows, 3 + 4 + 2 + 100000 + 2);
	assert_int_equal(st.objects, 7);  /* sequence, 2 views, trigger, 2 routines, event */
	assert_int_equal(st.bytes, dump.len);
	const char *text = (const char *)dump.data;
	assert_non_null(strstr(text, "CREATE DATABASE IF NOT EXISTS `cf_test_src` CHARACTER SET utf8mb4"));
	assert_non_null(strstr(text, "INSERT INTO `kinds` (`id`,`parent_id`,"));
	assert_null(strstr(text, "`gen_v`,"));  /* generated columns are not inserted */
	assert_null(strstr(text, "`cf_test_src`.`"));  /* nothing qualified: renames work */
	assert_non_null(strstr(text, "-- coffer dump complete\n"));
	/* Statements stay bounded: no line of the big table's INSERTs runs past
	 * the limit (each row is its own line). */
	size_t longest = 0;
	for (const char *p = text, *e; *p; p = e + 1) {
		if (!(e = strchr(p, '\n')))
			break;
		if ((size_t)(e - p) > longest)
			longest = (size_t)(e - p);
	}
	assert_true(longest < 4096);

	/* Restore under a new name, fed in odd-sized pieces. */
	t0 = cf_now_mono();
	int r = load_buf(&dump, "cf_test_dst", 4093);
	if (r != CF_OK)
		fail_msg("load: %s", cf_errmsg(r));
	fprintf(stderr, "# load: %.2f s\n", cf_now_mono() - t0);
	compare_dbs(m, "cf_test_src", "cf_test_dst");
	assert_int_equal(scalar_long(m, "SELECT COUNT(*) FROM cf_test_dst.kinds WHERE id = 0"), 1);
	/* The trigger did not fire during the load. */
	char *name = scalar(m, "SELECT name FROM cf_test_dst.parent WHERE id = 3");
	assert_string_equal(name, "three!");
	free(name);

	/* Loading the same dump again over the restored copy is idempotent. */
	assert_int_equal(load_buf(&dump, "cf_test_dst", 65536), CF_OK);
	compare_dbs(m, "cf_test_src", "cf_test_dst");

	/* The stock client loads the same file: drop the original, load it back
	 * under its own name with `mariadb < dump`, compare with the copy. */
	char path[] = "/tmp/coffer-dump-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(cf_write_full(fd, dump.data, dump.len), 0);
	close(fd);
	exec(m, "DROP DATABASE cf_test_src");
	int rc = run_stock_client(path);
	unlink(path);
	if (rc == 127)
		fprintf(stderr, "# no `mariadb` client binary: stock-client check skipped\n");
	else {
		assert_int_equal(rc, 0);
		compare_dbs(m, "cf_test_dst", "cf_test_src");
	}

	exec(m, "DROP DATABASE IF EXISTS cf_test_src");
	exec(m, "DROP DATABASE IF EXISTS cf_test_dst");
	mysql_close(m);
	cf_buf_release(&dump);
}

/* ---- consistency under a concurrent writer ---- */

struct writer {
	volatile int stop;
	volatile long done;
	char err[256];
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	void *vm;
	if (cf_dburl_connect(&url, &vm) != CF_OK) {
		snprintf(w->err, sizeof(w->err), "%s", cf_errmsg(CF_EDB));
		return NULL;
	}
	MYSQL *m = vm;
	unsigned seed = 1;
	char sql[256];
	mysql_query(m, "USE cf_test_cons");
	while (!w->stop) {
		int amt = (int)(rand_r(&seed) % 10) + 1;
		snprintf(sql, sizeof(sql), "UPDATE acct SET bal = bal - %d WHERE id = 1", amt);
		if (mysql_query(m, "START TRANSACTION") || mysql_query(m, sql))
			goto fail;
		snprintf(sql, sizeof(sql), "UPDATE acct SET bal = bal + %d WHERE id = 2", amt);
		if (mysql_query(m, sql))
			goto fail;
		snprintf(sql, sizeof(sql), "INSERT INTO log (amount) VALUES (%d)", amt);
		if (mysql_query(m, sql) || mysql_query(m, "COMMIT"))
			goto fail;
		w->done++;
	}
	mysql_close(m);
	return NULL;
fail:
	snprintf(w->err, sizeof(w->err), "%s", mysql_error(m));
	mysql_close(m);
	return NULL;
}

static void test_consistent_under_writer(void **state)
{
	struct cf_buf dump = CF_BUF_INIT;
	struct writer w = { 0, 0, "" };
	pthread_t th;
	(void)state;
	SKIP_WITHOUT_SERVER();

	MYSQL *m = conn();
	exec(m, "DROP DATABASE IF EXISTS cf_test_cons");
	exec(m, "DROP DATABASE IF EXISTS cf_test_cons_r");
	exec(m, "CREATE DATABASE cf_test_cons");
	exec(m, "CREATE TABLE cf_test_cons.acct (id INT PRIMARY KEY, bal INT NOT NULL) ENGINE=InnoDB");
	exec(m, "CREATE TABLE cf_test_cons.log (id INT AUTO_INCREMENT PRIMARY KEY, amount INT) ENGINE=InnoDB");
	exec(m, "INSERT INTO cf_test_cons.acct VALUES (1, 100000), (2, 100000)");

	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	while (w.done < 100 && !w.err[0])
		usleep(1000);
	struct cf_mariadb *db;
	struct cf_mariadb_opts opts = { .lock = false };
	assert_int_equal(cf_mariadb_open(&url, &db), CF_OK);
	long before = w.done;
	assert_int_equal(cf_mariadb_begin_snapshot(db, &opts), CF_OK);
	long at_snap = w.done;
	/* Let the writer commit well past the snapshot before reading a row. */
	while (w.done < at_snap + 300 && !w.err[0])
		usleep(1000);
	assert_int_equal(cf_mariadb_dump_db(db, "cf_test_cons", buf_sink, &dump, NULL), CF_OK);
	cf_mariadb_close(db);
	w.stop = 1;
	pthread_join(th, NULL);
	if (w.err[0])
		fail_msg("writer: %s", w.err);

	assert_int_equal(load_buf(&dump, "cf_test_cons_r", 1 << 16), CF_OK);
	long sum = scalar_long(m, "SELECT SUM(bal) FROM cf_test_cons_r.acct");
	long moved = scalar_long(m, "SELECT IFNULL(SUM(amount), 0) FROM cf_test_cons_r.log");
	long bal1 = scalar_long(m, "SELECT bal FROM cf_test_cons_r.acct WHERE id = 1");
	long logged = scalar_long(m, "SELECT COUNT(*) FROM cf_test_cons_r.log");
	fprintf(stderr, "# writer: %ld transfers before the snapshot, %ld at it, %ld in all; dump holds %ld\n",
		before, at_snap, (long)w.done, logged);
	assert_int_equal(sum, 200000);
	assert_int_equal(bal1, 100000 - moved);  /* both tables from the same instant */
	assert_true(logged >= before && logged <= at_snap + 1);
	assert_true(logged < w.done);  /* the writer's later transfers are absent */
	exec(m, "DROP DATABASE cf_test_cons");
	exec(m, "DROP DATABASE cf_test_cons_r");
	mysql_close(m);
	cf_buf_release(&dump);
}

/* ---- errors ---- */

static void test_broken_statement_names_line(void **state)
{
	static const char text[] =
		"-- a hand-broken dump\n"                                        /* 1 */
		"CREATE DATABASE IF NOT EXISTS `cf_test_broken`;\n"              /* 2 */
		"USE `cf_test_broken`;\n"                                        /* 3 */
		"CREATE TABLE t (a INT);\n"                                      /* 4 */
		"DELIMITER ;;\n"                                                 /* 5 */
		"CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\nEND ;;\n"             /* 6-9 */
		"DELIMITER ;\n"                                                  /* 10 */
		"INSERT INTO t VALUES\n(1),\n(2);\n"                             /* 11-13 */
		"\n"                                                             /* 14 */
		"INSERT INTO t VALUES\n(3,;\n"                                   /* 15-16 */
		"INSERT INTO t VALUES (4);\n";                                   /* 17 */
	struct cf_buf b = CF_BUF_INIT;
	(void)state;
	SKIP_WITHOUT_SERVER();

	MYSQL *m = conn();
	exec(m, "DROP DATABASE IF EXISTS cf_test_broken");
	assert_int_equal(cf_buf_add(&b, text, sizeof(text) - 1), CF_OK);
	int r = load_buf(&b, NULL, 5);
	assert_int_equal(r, CF_EDB);
	const char *msg = cf_errmsg(r);
	if (strncmp(msg, "line 15: ", 9) || !strstr(msg, "SQL syntax"))
		fail_msg("message: %s", msg);
	/* What ran before the failing statement stays; nothing after it ran. */
	assert_int_equal(scalar_long(m, "SELECT COUNT(*) FROM cf_test_broken.t"), 2);
	exec(m, "DROP DATABASE cf_test_broken");
	mysql_close(m);
	cf_buf_release(&b);
}

static void test_wrong_password(void **state)
{
	struct cf_dburl bad = CF_DBURL_INIT;
	struct cf_mariadb *db = NULL;
	char u[600];
	(void)state;
	SKIP_WITHOUT_SERVER();

	if (url.socket)
		snprintf(u, sizeof(u), "mariadb://%s:Wr0ng-S3cret@/?socket=%s", url.user, url.socket);
	else
		snprintf(u, sizeof(u), "mariadb://%s:Wr0ng-S3cret@[%s]:%u/", url.user, url.host, url.port);
	assert_int_equal(cf_dburl_parse(&bad, u), CF_OK);
	int r = cf_mariadb_open(&bad, &db);
	assert_int_equal(r, CF_EDB);
	assert_null(db);
	const char *msg = cf_errmsg(r);
	if (!strstr(msg, "Access denied") || strstr(msg, "Wr0ng-S3cret") || !strstr(msg, url.user))
		fail_msg("message: %s", msg);

	struct cf_buf empty = CF_BUF_INIT;
	struct mem_src src = { (const uint8_t *)"", 0, 0, 1 };
	(void)empty;
	r = cf_mariadb_load(&bad, NULL, mem_read, &src, NULL);
	assert_int_equal(r, CF_EDB);
	assert_non_null(strstr(cf_errmsg(r), "Access denied"));
	cf_dburl_release(&bad);
}

static void test_list_and_unknown_db(void **state)
{
	struct cf_mariadb *db;
	char **names;
	size_t n;
	char u[600];
	(void)state;
	SKIP_WITHOUT_SERVER();

	MYSQL *m = conn();
	exec(m, "CREATE DATABASE IF NOT EXISTS cf_test_list");
	mysql_close(m);

	assert_int_equal(cf_mariadb_open(&url, &db), CF_OK);
	assert_int_equal(cf_mariadb_list_dbs(db, &names, &n), CF_OK);
	bool seen = false;
	for (size_t i = 0; i < n; i++) {
		assert_string_not_equal(names[i], "mysql");
		assert_string_not_equal(names[i], "information_schema");
		assert_string_not_equal(names[i], "performance_schema");
		assert_string_not_equal(names[i], "sys");
		seen |= !strcmp(names[i], "cf_test_list");
	}
	assert_true(seen);
	assert_null(names[n]);
	cf_mariadb_names_free(names);
	/* A dump before the snapshot is refused. */
	struct cf_buf b = CF_BUF_INIT;
	assert_int_equal(cf_mariadb_dump_db(db, "cf_test_list", buf_sink, &b, NULL), CF_EINVAL);
	cf_mariadb_close(db);

	struct cf_dburl two = CF_DBURL_INIT;
	char *pw = NULL;
	cf_dburl_password(&url, &pw);
	if (url.socket)
		snprintf(u, sizeof(u), "mariadb://%s@/cf_test_list,cf_test_nope?socket=%s", url.user, url.socket);
	else
		snprintf(u, sizeof(u), "mariadb://%s@[%s]:%u/cf_test_list,cf_test_nope", url.user, url.host,
			 url.port);
	assert_int_equal(cf_dburl_parse(&two, u), CF_OK);
	two.password = pw;
	assert_int_equal(cf_mariadb_open(&two, &db), CF_OK);
	int r = cf_mariadb_list_dbs(db, &names, &n);
	assert_int_equal(r, CF_ENOENT);
	assert_non_null(strstr(cf_errmsg(r), "unknown database 'cf_test_nope'"));
	cf_mariadb_close(db);
	cf_dburl_release(&two);

	m = conn();
	exec(m, "DROP DATABASE cf_test_list");
	mysql_close(m);
}

static int setup(void **state)
{
	const char *u = getenv("COFFER_TEST_MARIADB");
	(void)state;
	if (!u || !u[0]) {
		fprintf(stderr, "# COFFER_TEST_MARIADB unset: server tests skipped "
				"(tests/infra/mariadb-up.sh starts a server)\n");
		return 0;
	}
	if (cf_dburl_parse(&url, u) != CF_OK) {
		fprintf(stderr, "COFFER_TEST_MARIADB: %s\n", cf_errmsg(CF_EINVAL));
		return -1;
	}
	have_server = true;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cf_dburl_release(&url);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_split_unterminated),
		cmocka_unit_test(test_dump_and_restore),
		cmocka_unit_test(test_consistent_under_writer),
		cmocka_unit_test(test_broken_statement_names_line),
		cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_list_and_unknown_db),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
