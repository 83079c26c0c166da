/*
 * test_s3_request.c - the S3 backend's request machinery (s3/s3_request.c):
 * retries and their bounds, stalls, resumed streams, the caps on answers,
 * interrupts and the rate floor, against scripted HTTP responders on
 * loopback that misbehave on purpose (and an address nobody listens on).
 * Needs no S3 server: every test here always runs.
 */
#include "s3_testutil.h"

static void test_unreachable(void **state)
{
	(void)state;
	/* Nothing listens on port 1: refused every time, bounded retries, EAGAIN. */
	fake_credentials();
	struct cf_backend *be = open_url("http://127.0.0.1:1/nobucket", 0, 3);
	double t0 = cf_now_mono();
	int r = cf_be_put(be, "config", "x", 1);
	double dt = cf_now_mono() - t0;
	assert_int_equal(r, CF_EAGAIN);
	print_message("unreachable: %s (%.2f s)\n", cf_errmsg(r), dt);
	assert_non_null(strstr(cf_errmsg(r), "3 attempts"));
	assert_true(dt >= 0.2 && dt < 5.0); /* it did back off, and not for long */
	cf_backend_free(be);
}

static void test_retries(void **state)
{
	(void)state;
	fake_credentials();
	char url[128];
	pthread_t t;
	struct responder rs;

	/* Throttling, a reset, a server error, a timed-out request, then success. */
	static const char *const flaky[] = {
		SLOWDOWN, "RESET", "500|<Error><Code>InternalError</Code><Message>oops</Message></Error>",
		"400|<Error><Code>RequestTimeout</Code><Message>idle</Message></Error>", "200|",
	};
	start_responder(&rs, flaky, 5, &t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", rs.port);
	struct cf_backend *be = open_url(url, 0, 8);
	ASSERT_OK(cf_be_put(be, "data/ab/x", "hello", 5));
	pthread_join(t, NULL);
	close(rs.lfd);
	assert_int_equal(rs.served, 5);
	cf_backend_free(be);

	/* A permanent refusal is reported at once, with the store's words. */
	static const char *const refuse[] = {
		"400|<Error><Code>InvalidArgument</Code><Message>Bad thing</Message></Error>",
	};
	start_responder(&rs, refuse, 1, &t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", rs.port);
	be = open_url(url, 0, 8);
	int r = cf_be_put(be, "data/ab/x", "hello", 5);
	pthread_join(t, NULL);
	close(rs.lfd);
	assert_int_equal(r, CF_ES3);
	assert_non_null(strstr(cf_errmsg(r), "HTTP 400 InvalidArgument: Bad thing"));
	assert_non_null(strstr(cf_errmsg(r), "data/ab/x"));
	assert_int_equal(rs.served, 1);
	cf_backend_free(be);

	/* Throttled on every attempt: CF_EAGAIN after exactly max_attempts. */
	static const char *const busy[] = { SLOWDOWN, SLOWDOWN, SLOWDOWN };
	start_responder(&rs, busy, 3, &t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", rs.port);
	be = open_url(url, 0, 3);
	struct cf_buf got = CF_BUF_INIT;
	r = cf_be_get(be, "index/y", &got);
	pthread_join(t, NULL);
	close(rs.lfd);
	assert_int_equal(r, CF_EAGAIN);
	assert_non_null(strstr(cf_errmsg(r), "SlowDown"));
	assert_int_equal(rs.served, 3);
	cf_buf_release(&got);
	cf_backend_free(be);
}

/* A hung peer: no answer at all.  The stall timeout turns it into a retry
 * instead of a backup that hangs forever. */
static void test_stall(void **state)
{
	(void)state;
	fake_credentials();
	char url[128];
	pthread_t t;
	struct responder rs;
	static const char *const hung[] = { "STALL", "200|" };
	start_responder(&rs, hung, 2, &t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", rs.port);
	setenv("COFFER_S3_STALL_TIMEOUT", "1", 1);
	struct cf_backend *be = open_url(url, 0, 8);
	unsetenv("COFFER_S3_STALL_TIMEOUT");
	double t0 = cf_now_mono();
	ASSERT_OK(cf_be_put(be, "data/ab/x", "hello", 5));
	double dt = cf_now_mono() - t0;
	pthread_join(t, NULL);
	close(rs.lfd);
	print_message("stalled request retried after %.2f s\n", dt);
	assert_int_equal(rs.served, 2);
	/* curl averages the speed over its last 5 s, so the bytes sent before
	 * the stall hold the average up for a few seconds more. */
	assert_true(dt >= 1.0 && dt < 9.0);
	cf_backend_free(be);
}

/* A streamed range against scripted answers: a body cut off mid-way is
 * resumed from the first byte not yet handed over (asked for with a new
 * Range), a store that ignores the range is cut to it, the consumer's
 * error ends the read at once, and a short object is corruption. */
static void test_stream_resume(void **state)
{
	(void)state;
	fake_credentials();
	char url[128];
	pthread_t t;
	struct responder rs;
	struct collected c = { CF_BUF_INIT, 0, 0 };

	static const char *const cut[] = {
		"RAW|HTTP/1.1 206 Partial\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabcd",
		"RAW|HTTP/1.1 206 Partial\r\nContent-Length: 6\r\nConnection: close\r\n\r\nefghij",
	};
	start_responder(&rs, cut, 2, &t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", rs.port);
	struct cf_backend *be = open_url(url, 0, 8);
	assert_true(cf_be_streams(be));
	ASSERT_OK(cf_be_get_range_stream(be, "data/ab/p", 100, 10, collect_bytes, &c));
	pthread_join(t, NULL);
	close(rs.lfd);
	assert_int_equal(rs.served, 2);
	assert_int_equal(c.b.len, 10);
	assert_memory_equal(c.b.data, "abcdefghij", 10);
	assert_non_null(strcasestr(rs.req[0], "\r\nrange: bytes=100-109\r\n"));
	assert_non_null(strcasestr(rs.req[1], "\r\nrange: bytes=104-109\r\n"));
	cf_backend_free(be);

	/* the whole object (200): only the asked-for bytes reach the consumer */
	static const char *const whole[] = {
		"RAW|HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n0123456789ABCDEFGHIJ",
	};
	cf_buf_reset(&c.b);
	start_responder(&rs, whole, 1, &t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", rs.port);
	be = open_url(url, 0, 8);
	ASSERT_OK(cf_be_get_range_stream(be, "data/ab/p", 5, 10, collect_bytes, &c));
	pthread_join(t, NULL);
	close(rs.lfd);
	assert_int_equal(c.b.len, 10);
	assert_memory_equal(c.b.data, "56789ABCDE", 10);
	cf_backend_free(be);

	/* the consumer's error: returned as it is, no retry */
	static const char *const one[] = {
		"RAW|HTTP/1.1 206 Partial\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd",
		"RAW|HTTP/1.1 206 Partial\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd",
	};
	cf_buf_reset(&c.b);
	c.calls = 0, c.fail_at = 1;
	start_responder(&rs, one, 2, &t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", rs.port);
	be = open_url(url, 0, 8);
	int r = cf_be_get_range_stream(be, "data/ab/p", 0, 4, collect_bytes, &c);
	assert_int_equal(r, CF_EIO);
	assert_non_null(strstr(cf_errmsg(r), "the consumer gave up"));
	assert_int_equal(rs.served, 1);
	/* the object is shorter than the range: corruption, after what there was */
	c.calls = 0, c.fail_at = 0;
	r = cf_be_get_range_stream(be, "data/ab/p", 0, 10, collect_bytes, &c);
	pthread_join(t, NULL);
	close(rs.lfd);
	assert_int_equal(r, CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(r), "object too short"));
	assert_int_equal(c.b.len, 4);
	cf_buf_release(&c.b);
	cf_backend_free(be);
}

/* Every answer is bounded by what was asked: a whole small object by its
 * kind's limit (announced or chunked), a range by its length, an error body
 * by a few KiB; over the bound is an error naming the object and the
 * bound, at once, not a retry, and no more memory than the bound. */
static void test_bounded_answers(void **state)
{
	(void)state;
	fake_credentials();
	pthread_t t;
	struct responder rs;
	struct cf_buf got = CF_BUF_INIT;

	/* a 634-byte snapshot answered with 2 GiB announced: refused unread */
	static const char *const announced[] = {
		"RAW|HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\nConnection: close\r\n\r\nxxxx",
	};
	struct cf_backend *be = open_scripted(&rs, announced, 1, &t, 8);
	int r = cf_be_get(be, "snapshots/abc", &got);
	end_scripted(&rs, t, be);
	print_message("announced: %s\n", cf_errmsg(r));
	assert_int_equal(r, CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(r), "snapshots/abc"));
	assert_non_null(strstr(cf_errmsg(r), "16 MiB limit"));
	assert_int_equal(rs.served, 1);
	assert_int_equal(got.len, 0);

	/* the same without a length (chunked, 64 MiB): stopped at the limit */
	static const char *const chunked[] = { "CHUNKED|200|67108864" };
	cf_buf_release(&got);
	be = open_scripted(&rs, chunked, 1, &t, 8);
	r = cf_be_get(be, "config", &got);
	end_scripted(&rs, t, be);
	print_message("chunked: %s (buffer %zu bytes)\n", cf_errmsg(r), got.cap);
	assert_int_equal(r, CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(r), "config"));
	assert_non_null(strstr(cf_errmsg(r), "16 MiB limit"));
	assert_int_equal(rs.served, 1);
	assert_true(got.cap <= 2 * CF_BE_SMALL_OBJECT_MAX + 65536); /* the buffer never grew past it */

	/* a range answered with more than its length (206) */
	static const char *const longer[] = {
		"RAW|HTTP/1.1 206 Partial\r\nContent-Length: 20\r\nConnection: close\r\n\r\n0123456789ABCDEFGHIJ",
	};
	be = open_scripted(&rs, longer, 1, &t, 8);
	r = cf_be_get_range(be, "data/ab/p", 0, 10, &got);
	end_scripted(&rs, t, be);
	assert_int_equal(r, CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(r), "data/ab/p"));
	assert_non_null(strstr(cf_errmsg(r), "10 bytes limit"));

	/* a range answered with an endless whole object (200): the range is
	 * cut out of it and the rest never waited for */
	static const char *const endless[] = { "CHUNKED|200|1000000000000" };
	be = open_scripted(&rs, endless, 1, &t, 8);
	ASSERT_OK(cf_be_get_range(be, "data/ab/p", 5, 10, &got));
	assert_int_equal(got.len, 10);
	assert_memory_equal(got.data, "fghijklmno", 10);
	struct collected c = { CF_BUF_INIT, 0, 0 };
	end_scripted(&rs, t, be);
	be = open_scripted(&rs, endless, 1, &t, 8);
	ASSERT_OK(cf_be_get_range_stream(be, "data/ab/p", 26, 4, collect_bytes, &c));
	end_scripted(&rs, t, be);
	assert_int_equal(c.b.len, 4);
	assert_memory_equal(c.b.data, "abcd", 4);
	cf_buf_release(&c.b);

	/* an endless error body (503): its first KiB are enough to classify
	 * it, and the retry gets the object */
	static const char *const big_error[] = { "CHUNKED|503|1000000000000", "200|hello" };
	be = open_scripted(&rs, big_error, 2, &t, 8);
	ASSERT_OK(cf_be_get(be, "keys/k", &got));
	end_scripted(&rs, t, be);
	assert_int_equal(rs.served, 2);
	assert_int_equal(got.len, 5);

	/* a listing page over its limit names the directory */
	static const char *const big_page[] = { "CHUNKED|200|33554432" };
	be = open_scripted(&rs, big_page, 1, &t, 8);
	int nseen = 0;
	r = cf_be_list(be, "snapshots", count_names, &nseen);
	end_scripted(&rs, t, be);
	print_message("big page: %s\n", cf_errmsg(r));
	assert_int_equal(r, CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(r), "snapshots/"));
	assert_non_null(strstr(cf_errmsg(r), "16 MiB limit"));
	cf_buf_release(&got);

	/* a local file is held to the same limits */
	char dir[] = "/tmp/coffer-cap-XXXXXX", path[128];
	assert_non_null(mkdtemp(dir));
	ASSERT_OK(cf_backend_local_new(dir, &be));
	ASSERT_OK(be->ops->create(be));
	snprintf(path, sizeof(path), "%s/snapshots/huge", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), (off_t)CF_BE_SMALL_OBJECT_MAX + 1), 0);
	fclose(f);
	r = cf_be_get(be, "snapshots/huge", &got);
	assert_int_equal(r, CF_ECORRUPT);
	assert_non_null(strstr(cf_errmsg(r), "snapshots/huge"));
	assert_non_null(strstr(cf_errmsg(r), "16 MiB limit"));
	cf_backend_free(be);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	cf_buf_release(&got);
}

static void *interrupt_later(void *arg)
{
	(void)arg;
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	cf_interrupted = 1;
	return NULL;
}

/* A signal stops a transfer that moves no byte, or one byte a second, at
 * once (the transfer is polled every 100 ms) and no retry follows; a
 * DELETE (cleanup: the lock's removal) still goes out. */
static void test_interrupt_transfer(void **state)
{
	(void)state;
	fake_credentials();
	pthread_t t, killer;
	struct responder rs;
	struct cf_buf got = CF_BUF_INIT;
	/* the second entry is never asked for: it keeps the responder waiting */
	static const char *const kinds[][2] = { { "STALL", "STALL" }, { "TRICKLE|1000", "STALL" } };
	for (int k = 0; k < 2; k++) {
		struct cf_backend *be = open_scripted(&rs, kinds[k], 2, &t, 8);
		assert_int_equal(pthread_create(&killer, NULL, interrupt_later, NULL), 0);
		double t0 = cf_now_mono();
		int r = cf_be_get(be, "snapshots/abc", &got);
		double dt = cf_now_mono() - t0;
		pthread_join(killer, NULL);
		print_message("%s: %s after %.2f s\n", kinds[k][0], cf_errmsg(r), dt);
		assert_int_equal(r, CF_EINTR);
		assert_non_null(strstr(cf_errmsg(r), "snapshots/abc"));
		/* 0.3 s before the signal, then at most one poll (0.1 s) */
		assert_true(dt < 0.3 + 0.5);
		/* no further request while interrupted, but a DELETE goes out */
		assert_int_equal(cf_be_get(be, "snapshots/abc", &got), CF_EINTR);
		assert_int_equal(rs.served, 1);
		cf_interrupted = 0;
		shutdown(rs.lfd, SHUT_RDWR); /* wakes its accept() */
		pthread_join(t, NULL);
		close(rs.lfd);
		cf_backend_free(be);
	}
	static const char *const del[] = { "204|" };
	struct cf_backend *be = open_scripted(&rs, del, 1, &t, 8);
	cf_interrupted = 1;
	int r = cf_be_remove(be, "locks/l");
	cf_interrupted = 0;
	end_scripted(&rs, t, be);
	ASSERT_OK(r);
	assert_int_equal(rs.served, 1);
	cf_buf_release(&got);
}

/* A store that trickles (a byte every 100 ms) is below the rate floor: the
 * transfer is abandoned and retried, and given up after the attempts. */
static void test_rate_floor(void **state)
{
	(void)state;
	fake_credentials();
	pthread_t t;
	struct responder rs;
	struct cf_buf got = CF_BUF_INIT;
	setenv("COFFER_TEST_S3_LOW_SPEED", "1024/1", 1);
	static const char *const slow[] = { "TRICKLE|1000", "TRICKLE|1000" };
	struct cf_backend *be = open_scripted(&rs, slow, 2, &t, 2);
	double t0 = cf_now_mono();
	int r = cf_be_get(be, "snapshots/abc", &got);
	double dt = cf_now_mono() - t0;
	end_scripted(&rs, t, be);
	print_message("trickle: %s after %.2f s\n", cf_errmsg(r), dt);
	assert_int_equal(r, CF_EAGAIN);
	assert_non_null(strstr(cf_errmsg(r), "2 attempts"));
	assert_int_equal(rs.served, 2);
	/* a malformed setting is refused when the store is opened */
	setenv("COFFER_TEST_S3_LOW_SPEED", "fast", 1);
	struct cf_backend_opts o = { 0 };
	be = NULL;
	assert_int_equal(cf_backend_s3_new("http://127.0.0.1:1/b", &o, &be), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "COFFER_TEST_S3_LOW_SPEED"));
	unsetenv("COFFER_TEST_S3_LOW_SPEED");
	cf_buf_release(&got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_retries),
		cmocka_unit_test(test_stall),
		cmocka_unit_test(test_stream_resume),
		cmocka_unit_test(test_bounded_answers),
		cmocka_unit_test(test_interrupt_transfer),
		cmocka_unit_test(test_rate_floor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
