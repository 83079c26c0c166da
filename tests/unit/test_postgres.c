/* Tests of sources/postgres.c's pure parts: the URL, the connection string
 * handed to pg_dump and psql, the one-line messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "sources/postgres.h"
#include "sources/postgres_int.h"
#include "common/error.h"

static const char *opt(const struct cf_pgurl *u, const char *k)
{
	for (size_t i = 0; i < u->nopts; i++)
		if (!strcmp(u->keys[i], k))
			return u->vals[i];
	return NULL;
}

static void test_full_url(void **state)
{
	struct cf_pgurl u = CF_PGURL_INIT;
	(void)state;
	assert_int_equal(cf_pgurl_parse(&u, "postgres://backup:s%40cr%3At@db.example:5433/shop,blog%2Dx"
					"?sslmode=require"), CF_OK);
	assert_string_equal(u.password, "s@cr:t");
	assert_string_equal(opt(&u, "user"), "backup");
	assert_string_equal(opt(&u, "host"), "db.example");
	assert_string_equal(opt(&u, "port"), "5433");
	assert_string_equal(opt(&u, "sslmode"), "require");
	assert_null(opt(&u, "password"));
	assert_null(opt(&u, "dbname"));
	assert_int_equal(u.ndbs, 2);
	assert_string_equal(u.dbs[0], "shop");
	assert_string_equal(u.dbs[1], "blog-x");
	assert_string_equal(u.who, "backup@db.example:5433");
	cf_pgurl_release(&u);
	assert_null(u.password);
	assert_int_equal(u.nopts, 0);
}

static void test_defaults(void **state)
{
	struct cf_pgurl u = CF_PGURL_INIT;
	(void)state;
	assert_int_equal(cf_pgurl_parse(&u, "postgresql://db"), CF_OK);
	assert_null(u.password);
	assert_int_equal(u.ndbs, 0);
	assert_string_equal(u.who, "(default user)@db:5432");
	cf_pgurl_release(&u);
	assert_int_equal(cf_pgurl_parse(&u, "postgres://u@[::1]:6000/"), CF_OK);
	assert_string_equal(u.who, "u@::1:6000");
	cf_pgurl_release(&u);
}

/* whatever the values hold, libpq reads back what the URL said, and no password */
static void test_conninfo_quoting(void **state)
{
	struct cf_pgurl u = CF_PGURL_INIT;
	char *ci = NULL, *err = NULL;
	(void)state;
	assert_int_equal(cf_pgurl_parse(&u, "postgres://o%27brien:pw@h/x?application_name=a%27b%5Cc%20d"), CF_OK);
	assert_int_equal(cf_pgurl_conninfo(&u, "we'ird\\db", &ci), CF_OK);
	assert_null(strstr(ci, "pw"));
	PQconninfoOption *o = PQconninfoParse(ci, &err);
	assert_non_null(o);
	for (PQconninfoOption *p = o; p->keyword; p++) {
		if (!strcmp(p->keyword, "user"))
			assert_string_equal(p->val, "o'brien");
		else if (!strcmp(p->keyword, "application_name"))
			assert_string_equal(p->val, "a'b\\c d");
		else if (!strcmp(p->keyword, "dbname"))
			assert_string_equal(p->val, "we'ird\\db");
		else if (!strcmp(p->keyword, "password"))
			assert_null(p->val);
	}
	PQconninfoFree(o);
	free(ci);
	cf_pgurl_release(&u);
}

static void test_bad_urls(void **state)
{
	static const char *const bad[] = {
		"mariadb://u@h/", "postgres://u:secretpw%zz@h/", "postgres://u@h/a,,b", "postgres://u@h/x?nope=1",
		"postgres://u:secretpw@[::1/",
		/* a database name longer than PostgreSQL's 63 bytes */
		("postgres://u@h/"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cf_pgurl u = CF_PGURL_INIT;
		int r = cf_pgurl_parse(&u, bad[i]);
		assert_int_equal(r, CF_EINVAL);
		const char *m = cf_errmsg(r);
		assert_non_null(strstr(m, "postgres URL: "));
		assert_null(strstr(m, "secretpw"));
		assert_null(strchr(m, '\n'));
		cf_pgurl_release(&u);
	}
}

static void test_oneline(void **state)
{
	char out[64];
	(void)state;
	cf_pg_oneline("  connection failed:\n\tFATAL:  no\r\n", out, sizeof(out));
	assert_string_equal(out, "connection failed: FATAL: no");
	cf_pg_oneline("abcdefghij", out, 5);
	assert_string_equal(out, "abcd");
}

static void test_errline(void **state)
{
	char out[128];
	FILE *f = tmpfile();
	(void)state;
	assert_non_null(f);
	fputs("pg_dump: warning: something\npg_dump: error: query failed: ERROR:  permission denied\n"
	      "pg_dump: detail: Query was: LOCK TABLE x\n", f);
	cf_pg_errline(f, out, sizeof(out));
	assert_string_equal(out, "pg_dump: error: query failed: ERROR: permission denied");
	fclose(f);
	f = tmpfile();
	fputs("first\nlast one\n\n", f);
	cf_pg_errline(f, out, sizeof(out));
	assert_string_equal(out, "last one");
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_url),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_conninfo_quoting),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_oneline),
		cmocka_unit_test(test_errline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
