/* Tests of sources/dburl.c: the database URL grammar and the password lookup. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sources/dburl.h"
#include "common/error.h"

static void test_full_url(void **state)
{
	struct cf_dburl u = CF_DBURL_INIT;
	(void)state;
	assert_int_equal(cf_dburl_parse(&u, "mariadb://backup:s%40cr%3At@db.example:3307/shop,blog%2Dx"), CF_OK);
	assert_string_equal(u.user, "backup");
	assert_string_equal(u.password, "s@cr:t");
	assert_string_equal(u.host, "db.example");
	assert_int_equal(u.port, 3307);
	assert_null(u.socket);
	assert_int_equal(u.ndbs, 2);
	assert_string_equal(u.dbs[0], "shop");
	assert_string_equal(u.dbs[1], "blog-x");
	cf_dburl_release(&u);
	assert_null(u.user);
}

static void test_defaults_and_socket(void **state)
{
	struct cf_dburl u = CF_DBURL_INIT;
	(void)state;
	assert_int_equal(cf_dburl_parse(&u, "mariadb://root@localhost"), CF_OK);
	assert_null(u.password);
	assert_int_equal(u.port, 3306);
	assert_int_equal(u.ndbs, 0);
	cf_dburl_release(&u);

	assert_int_equal(cf_dburl_parse(&u, "mysql://root:@/app?socket=/run/mysqld/my%20d.sock"), CF_OK);
	assert_string_equal(u.password, "");
	assert_string_equal(u.host, "localhost");
	assert_string_equal(u.socket, "/run/mysqld/my d.sock");
	assert_int_equal(u.ndbs, 1);
	char d[200];
	cf_dburl_describe(&u, d, sizeof(d));
	assert_string_equal(d, "root@/run/mysqld/my d.sock");
	cf_dburl_release(&u);

	assert_int_equal(cf_dburl_parse(&u, "mariadb://u@[::1]:13306/"), CF_OK);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 13306);
	assert_int_equal(u.ndbs, 0);
	cf_dburl_describe(&u, d, sizeof(d));
	assert_string_equal(d, "u@::1:13306");
	cf_dburl_release(&u);
}

/* Each bad URL fails with CF_EINVAL, a message naming the problem, and never
 * the password. */
static void test_bad_urls(void **state)
{
	static const struct { const char *url, *needle; } bad[] = {
		{ "postgres://u@h/db", "mariadb://" },
		{ "mariadb://h/db", "USER@" },
		{ "mariadb://:pw-secret@h/db", "empty user" },
		{ "mariadb://u:pw-secret@h:99999/db", "port" },
		{ "mariadb://u:pw-secret@h:12a/db", "port" },
		{ "mariadb://u:pw-secret@h:/db", "port" },
		{ "mariadb://u:pw-secret@h/a,,b", "empty database" },
		{ "mariadb://u:pw-secret@h/a%zz", "percent" },
		{ "mariadb://u:pw-secret@h/a%00", "percent" },
		{ "mariadb://u:pw-secret%4@h/a", "percent-escape in password" },
		{ "mariadb://u:pw-secret@h/a?sock=/x", "unknown parameter 'sock'" },
		{ "mariadb://u:pw-secret@h/a?socket=", "empty socket" },
		{ "mariadb://u:pw-secret@/a", "missing host" },
		{ "mariadb://u:pw-secret@[::1/a", "IPv6" },
		{ "mariadb://u:pw-secret@h/a#frag", "%23" },
		{ "mariadb://u:pw-secret@h/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "longer" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cf_dburl u = CF_DBURL_INIT;
		cf_err_clear();
		int r = cf_dburl_parse(&u, bad[i].url);
		const char *msg = cf_errmsg(r);
		if (r != CF_EINVAL || !strstr(msg, bad[i].needle) || strstr(msg, "pw-secret") || strchr(msg, '\n'))
			fail_msg("%s: got %d '%s', wanted '%s'", bad[i].url, r, msg, bad[i].needle);
		assert_null(u.user);
		cf_dburl_release(&u);
	}
}

static void test_password_sources(void **state)
{
	struct cf_dburl u = CF_DBURL_INIT;
	char *pw = NULL, path[] = "/tmp/coffer-pwtest-XXXXXX";
	(void)state;

	unsetenv("MARIADB_PASSWORD");
	unsetenv("MARIADB_PASSWORD_FILE");
	assert_int_equal(cf_dburl_parse(&u, "mariadb://u@h"), CF_OK);
	assert_int_equal(cf_dburl_password(&u, &pw), CF_OK);
	assert_null(pw);

	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "from file\r\n", 11), 11);
	close(fd);
	setenv("MARIADB_PASSWORD_FILE", path, 1);
	assert_int_equal(cf_dburl_password(&u, &pw), CF_OK);
	assert_string_equal(pw, "from file");
	cf_dburl_password_free(pw);

	setenv("MARIADB_PASSWORD", "from env", 1);
	assert_int_equal(cf_dburl_password(&u, &pw), CF_OK);
	assert_string_equal(pw, "from env");
	cf_dburl_password_free(pw);
	cf_dburl_release(&u);

	assert_int_equal(cf_dburl_parse(&u, "mariadb://u:in%20url@h"), CF_OK);
	assert_int_equal(cf_dburl_password(&u, &pw), CF_OK);
	assert_string_equal(pw, "in url");
	cf_dburl_password_free(pw);
	cf_dburl_release(&u);

	unsetenv("MARIADB_PASSWORD");
	setenv("MARIADB_PASSWORD_FILE", "/nonexistent/coffer-pw", 1);
	assert_int_equal(cf_dburl_parse(&u, "mariadb://u@h"), CF_OK);
	assert_int_equal(cf_dburl_password(&u, &pw), CF_ENOENT);
	assert_non_null(strstr(cf_errmsg(CF_ENOENT), "/nonexistent/coffer-pw"));
	cf_dburl_release(&u);
	unsetenv("MARIADB_PASSWORD_FILE");
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_url),
		cmocka_unit_test(test_defaults_and_socket),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_password_sources),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
