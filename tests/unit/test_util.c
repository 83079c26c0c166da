/* Tests of common/util.c: cf_redact_url, which keeps secrets out of messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_userinfo),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
