/*
 * Tests of common/: util.c's cf_redact_url (which keeps secrets out of
 * messages), array.h's CF_GROW and status.h's struct cf_status.  The work
 * queue (pool.c) has its own binary, test_pool.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/array.h"
#include "common/error.h"
#include "common/status.h"
#include "common/util.h"

static void redacts(const char *in, const char *want)
{
	char out[512];
	cf_redact_url(in, out, sizeof(out));
	assert_string_equal(out, want);
}

static void test_userinfo(void **state)
{
	(void)state;
	redacts("mariadb://root:hunter2@db/shop", "mariadb://root:***@db/shop");
	redacts("https://u:p%40ss@hooks.example.com:8443/x", "https://u:***@hooks.example.com:8443/x");
	/* a user alone is not a secret; nor is a host:port */
	redacts("mariadb://backup@db:3306/shop", "mariadb://backup@db:3306/shop");
	redacts("http://127.0.0.1:9000/bucket", "http://127.0.0.1:9000/bucket");
	/* '@' in the password: the userinfo ends at the last '@' of the authority */
	redacts("mariadb://root:a@b@db/x", "mariadb://root:***@db/x");
	/* an empty password is still shown as *** */
	redacts("mariadb://root:@db/x", "mariadb://root:***@db/x");
	/* several URLs in one value (a comma-separated list) */
	redacts("mariadb://a:1@h1/x,mariadb://b:2@h2/y", "mariadb://a:***@h1/x,mariadb://b:***@h2/y");
}

static void test_query(void **state)
{
	(void)state;
	redacts("https://hc.example/ping?token=abc&x=1", "https://hc.example/ping?token=***&x=1");
	redacts("https://h/p?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA%2F1&v=2",
		"https://h/p?X-Amz-Signature=***&X-Amz-Credential=***&v=2");
	redacts("https://h/p?apikey=1#frag", "https://h/p?apikey=***#frag");
	redacts("https://h/p?plain=1&password=s3&user=u", "https://h/p?plain=1&password=***&user=u");
	/* '&' outside a query is not a parameter separator */
	redacts("a&token=x", "a&token=x");
	redacts("", "");
}

static void test_truncation(void **state)
{
	char out[12];
	(void)state;
	cf_redact_url("mariadb://root:hunter2@db/shop", out, sizeof(out));
	assert_int_equal(strlen(out), sizeof(out) - 1);
	assert_null(strstr(out, "hunter"));
	cf_redact_url("https://x/?token=secretsecret", out, sizeof(out));
	assert_null(strstr(out, "secret"));
}

static void test_grow(void **state)
{
	(void)state;
	int *a = NULL;
	size_t cap = 0;
	assert_int_equal(CF_GROW(a, 1, cap), CF_OK);
	assert_non_null(a);
	assert_int_equal(cap, 16); /* the floor */
	for (int i = 0; i < 16; i++)
		a[i] = i;
	int *before = a;
	assert_int_equal(CF_GROW(a, 16, cap), CF_OK); /* room enough: untouched */
	assert_ptr_equal(a, before);
	assert_int_equal(cap, 16);
	assert_int_equal(CF_GROW(a, 17, cap), CF_OK);
	assert_int_equal(cap, 32); /* doubled */
	assert_int_equal(CF_GROW(a, 100, cap), CF_OK);
	assert_int_equal(cap, 100); /* need over double: need */
	for (int i = 0; i < 16; i++)
		assert_int_equal(a[i], i);
	/* one element at a time, as callers do */
	size_t n = 0;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(CF_GROW(a, n + 1, cap), CF_OK);
		a[n++] = i;
	}
	assert_true(cap >= 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(a[i], i);
	free(a);
}

static void test_grow_overflow(void **state)
{
	(void)state;
	struct big { char x[64]; } *a = NULL;
	size_t cap = 0;
	assert_int_equal(CF_GROW(a, 4, cap), CF_OK);
	struct big *before = a;
	size_t cap_before = cap;
	cf_err_clear();
	/* need * 64 overflows size_t: refused, array and cap unchanged */
	assert_int_equal(CF_GROW(a, SIZE_MAX / 64 + 1, cap), CF_ENOMEM);
	assert_ptr_equal(a, before);
	assert_int_equal(cap, cap_before);
	assert_non_null(strstr(cf_errmsg(CF_ENOMEM), "out of memory"));
	/* a cap whose double overflows is not wrapped round to a small size
	 * (no call here reaches realloc: a sanitizer would stop at the size) */
	size_t huge = SIZE_MAX / 2 + 1;
	struct big *c = NULL;
	assert_int_equal(CF_GROW(c, huge + 1, huge), CF_ENOMEM);
	assert_null(c);
	assert_int_equal(huge, SIZE_MAX / 2 + 1);
	free(a);
}

static void test_status(void **state)
{
	(void)state;
	struct cf_status st = CF_STATUS_INIT;
	cf_err_clear();
	assert_int_equal(cf_status_raise(&st), CF_OK); /* nothing kept: nothing set */
	assert_string_equal(cf_errmsg(CF_EIO), cf_strerror(CF_EIO));
	assert_int_equal(cf_status_keep(&st, CF_OK), CF_OK);
	assert_int_equal(st.code, CF_OK);
	cf_err(CF_EIO, "first: %d", 1);
	assert_int_equal(cf_status_keep(&st, CF_EIO), CF_EIO);
	cf_err(CF_EINVAL, "second");
	assert_int_equal(cf_status_keep(&st, CF_EINVAL), CF_EINVAL); /* returns its code... */
	assert_int_equal(st.code, CF_EIO);                            /* ...but the first wins */
	assert_string_equal(st.msg, "first: 1");
	cf_err_clear();
	assert_int_equal(cf_status_raise(&st), CF_EIO);
	assert_string_equal(cf_errmsg(CF_EIO), "first: 1");

	/* a message built from the thread's own (formatted aside, not over itself) */
	cf_err(CF_EIO, "inner");
	cf_err(CF_EIO, "outer: %s", cf_errmsg(CF_EIO));
	assert_string_equal(cf_errmsg(CF_EIO), "outer: inner");
	cf_err_errno("again: %s", cf_errmsg(CF_EIO));
	assert_true(strncmp(cf_errmsg(CF_EIO), "again: outer: inner: ", 21) == 0);

	/* no message set: the code's name is kept */
	struct cf_status st2 = CF_STATUS_INIT;
	cf_err_clear();
	cf_status_keep(&st2, CF_ENOSPC);
	assert_string_equal(st2.msg, cf_strerror(CF_ENOSPC));

	/* a long message is cut, not overrun */
	char longmsg[3000];
	memset(longmsg, 'x', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = 0;
	struct cf_status st3 = CF_STATUS_INIT;
	cf_err(CF_EIO, "%s", longmsg);
	cf_status_keep(&st3, CF_EIO);
	assert_true(strlen(st3.msg) < sizeof(st3.msg));
	assert_true(strlen(st3.msg) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_userinfo),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_grow_overflow),
		cmocka_unit_test(test_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
