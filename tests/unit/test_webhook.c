/*
 * test_webhook - Standard Webhooks signatures: the specification's published
 * example (the vector every implementation of the spec tests against),
 * secrets with and without the whsec_ prefix, a bad secret refused without
 * being quoted; two secrets (a rotation) give two signatures, each the one
 * the secret alone gives; the secrets' length check (24 to 64 bytes); the
 * retry schedule (agent/http.h): doubling, the cap, Retry-After, the time
 * and count bounds; URL templates; which notification kind hears of which
 * event at which level; and cf_hmac_sha256 against RFC 4231's test cases.
 * Delivery to real receivers is tested end to end in tests/e2e/agent.sh and
 * tests/e2e/notify.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/http.h"
#include "agent/notify.h"
#include "agent/webhook.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"

static void test_spec_example(void **state)
{
	(void)state;
	/* standard-webhooks spec and its reference libraries' tests */
	const char *body = "{\"test\": 2432232314}";
	struct cf_buf out = CF_BUF_INIT;
	assert_int_equal(cf_webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
					 1614265330, body, strlen(body), &out), CF_OK);
	assert_string_equal((char *)out.data, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* the prefix is optional, as in the reference libraries */
	cf_buf_reset(&out);
	assert_int_equal(cf_webhook_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
					 1614265330, body, strlen(body), &out), CF_OK);
	assert_string_equal((char *)out.data, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* any change of id, time or body changes the signature */
	cf_buf_reset(&out);
	assert_int_equal(cf_webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
					 1614265331, body, strlen(body), &out), CF_OK);
	assert_string_not_equal((char *)out.data, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	cf_buf_release(&out);
}

static void test_bad_secret(void **state)
{
	(void)state;
	struct cf_buf out = CF_BUF_INIT;
	int r = cf_webhook_sign("whsec_sup3r*secret", "msg_1", 1, "{}", 2, &out);
	assert_int_equal(r, CF_EINVAL);
	assert_null(strstr(cf_errmsg(r), "sup3r"));
	assert_int_equal(out.len, 0);
	cf_buf_release(&out);
}

static void test_hmac_rfc4231(void **state)
{
	(void)state;
	uint8_t mac[CF_HMAC_SHA256_LEN], key[131];
	char hex[2 * CF_HMAC_SHA256_LEN + 1];
	/* test case 1 */
	memset(key, 0x0b, 20);
	assert_int_equal(cf_hmac_sha256(key, 20, "Hi There", 8, mac), CF_OK);
	cf_hex(mac, sizeof(mac), hex);
	assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	/* test case 2: a key shorter than the block */
	assert_int_equal(cf_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), CF_OK);
	cf_hex(mac, sizeof(mac), hex);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* test case 6: a key longer than the block is hashed first */
	memset(key, 0xaa, sizeof(key));
	const char *m = "Test Using Larger Than Block-Size Key - Hash Key First";
	assert_int_equal(cf_hmac_sha256(key, sizeof(key), m, strlen(m), mac), CF_OK);
	cf_hex(mac, sizeof(mac), hex);
	assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_rotation(void **state)
{
	(void)state;
	const char *body = "{\"test\": 2432232314}";
	struct cf_buf one = CF_BUF_INIT, both = CF_BUF_INIT, want = CF_BUF_INIT;
	const char *second = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=";
	assert_int_equal(cf_webhook_sign(second, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), &one),
			 CF_OK);
	assert_int_equal(cf_webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=",
					 "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), &both), CF_OK);
	cf_buf_addf(&want, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= %s", (char *)one.data);
	assert_string_equal((char *)both.data, (char *)want.data);
	assert_int_equal(cf_webhook_check_secret("K", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="),
			 CF_OK);
	/* 23 bytes is one short of the specification's minimum */
	int r = cf_webhook_check_secret("K", "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG0=");
	assert_int_equal(r, CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(r), "23 bytes"));
	assert_null(strstr(cf_errmsg(r), "MDEy"));
	cf_buf_release(&one);
	cf_buf_release(&both);
	cf_buf_release(&want);
}

static void test_schedule(void **state)
{
	(void)state;
	struct cf_http_retry rt = { 10, 900, 5, 300 };
	/* 5, 10, 20, 40, 80, 160, then the 300 s cap */
	double want[] = { 5, 10, 20, 40, 80, 160, 300 }, elapsed = 0;
	for (unsigned i = 0; i < 7; i++) {
		assert_true(cf_http_retry_wait(&rt, i, elapsed, 0) == want[i]);
		elapsed += want[i];
	}
	/* 615 s in, the next 300 s wait would start a retry after 900 s: given up */
	assert_true(cf_http_retry_wait(&rt, 7, elapsed, 0) < 0);
	/* Retry-After longer than the backoff wins; shorter does not */
	assert_true(cf_http_retry_wait(&rt, 0, 0, 42) == 42);
	assert_true(cf_http_retry_wait(&rt, 3, 0, 1) == 40);
	/* ... but not past the time bound */
	assert_true(cf_http_retry_wait(&rt, 0, 0, 3600) < 0);
	/* the count bound */
	struct cf_http_retry two = { 2, 0, 1, 0 };
	assert_true(cf_http_retry_wait(&two, 1, 0, 0) == 2);
	assert_true(cf_http_retry_wait(&two, 2, 0, 0) < 0);
}

static void test_expand(void **state)
{
	(void)state;
	char *u = NULL;
	const char *vars[] = { "status", "failed", "job", "copy:off site", "host", "h/1", "message", "a&b=c" };
	assert_int_equal(cf_http_expand("https://x/{job}/{status}?h={host}&m={message}&{other}", vars, 4, &u), CF_OK);
	assert_string_equal(u, "https://x/copy%3Aoff%20site/failed?h=h%2F1&m=a%26b%3Dc&{other}");
	free(u);
}

static void test_wanted(void **state)
{
	(void)state;
	struct cf_notify_event start = { .status = "start" }, ok = { .status = "success" },
			       back = { .status = "success", .recovered = true }, bad = { .status = "failed" },
			       partial = { .status = "partial" };
	/* Healthchecks: everything, whatever the level */
	assert_true(cf_notify_wanted(CF_NOTIFY_HEALTHCHECKS, CF_NOTIFY_LEVEL_ERROR, &start));
	assert_true(cf_notify_wanted(CF_NOTIFY_HEALTHCHECKS, CF_NOTIFY_LEVEL_ERROR, &ok));
	/* Kuma: every outcome, never a start */
	assert_false(cf_notify_wanted(CF_NOTIFY_KUMA, CF_NOTIFY_LEVEL_INFO, &start));
	assert_true(cf_notify_wanted(CF_NOTIFY_KUMA, CF_NOTIFY_LEVEL_ERROR, &ok));
	/* ntfy, generic: error = failures and recoveries; info = all */
	for (int k = CF_NOTIFY_NTFY; k <= CF_NOTIFY_GENERIC; k++) {
		assert_false(cf_notify_wanted(k, CF_NOTIFY_LEVEL_ERROR, &start));
		assert_false(cf_notify_wanted(k, CF_NOTIFY_LEVEL_ERROR, &ok));
		assert_true(cf_notify_wanted(k, CF_NOTIFY_LEVEL_ERROR, &back));
		assert_true(cf_notify_wanted(k, CF_NOTIFY_LEVEL_ERROR, &bad));
		assert_true(cf_notify_wanted(k, CF_NOTIFY_LEVEL_ERROR, &partial));
		assert_true(cf_notify_wanted(k, CF_NOTIFY_LEVEL_INFO, &start));
		assert_true(cf_notify_wanted(k, CF_NOTIFY_LEVEL_INFO, &ok));
	}
}

static void test_unreachable(void **state)
{
	(void)state;
	/* port 1 on loopback refuses: the retries end with a message naming the URL */
	struct cf_webhook_opts o = { "http://127.0.0.1:1/hook", NULL, 2, 0.01, 2, NULL, 0, 0 };
	long status = -1;
	int r = cf_webhook_post(&o, "{}", 2, &status, NULL);
	assert_int_equal(r, CF_EAGAIN);
	assert_non_null(strstr(cf_errmsg(r), "http://127.0.0.1:1/hook"));
	assert_int_equal(status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_bad_secret),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_schedule),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_unreachable),
	};
	if (cf_crypto_init() != CF_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
