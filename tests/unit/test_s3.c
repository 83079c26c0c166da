/*
 * test_s3.c - the S3 backend against a real, strict S3 server on loopback.
 *
 * Start one with tests/infra/swift-s3-up.sh (OpenStack Swift + s3api, which
 * checks SigV4, payload hashes and clock skew), then:
 *	COFFER_TEST_S3=http://127.0.0.1:16080/coffer-test-$RANDOM \
 *	AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing ./test_s3
 * Without COFFER_TEST_S3 the server tests report themselves skipped; the
 * location and XML parser tests always run.  Each run works under a fresh
 * random prefix, so runs never see each other's objects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/backend.h"
#include "s3/s3_int.h"
#include "common/error.h"
#include "common/util.h"

static char run_url[512];   /* COFFER_TEST_S3 + "/run-<random>" */
static char base_url[512];  /* COFFER_TEST_S3 as given */

static void need_server(void)
{
	if (!base_url[0])
		skip();
}

static void randhex(char *out, size_t nbytes)
{
	uint8_t b[32];
	assert_true(nbytes <= sizeof(b));
	assert_int_equal(getrandom(b, nbytes, 0), (ssize_t)nbytes);
	cf_hex(b, nbytes, out);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static struct cf_backend *open_url(const char *url, int connections, int attempts)
{
	struct cf_backend_opts o = { connections, NULL, attempts, false };
	struct cf_backend *be = NULL;
	int r = cf_backend_s3_new(url, &o, &be);
	if (r)
		fail_msg("cf_backend_s3_new(%s): %s", url, cf_errmsg(r));
	return be;
}

static struct cf_backend *open_run(void)
{
	return open_url(run_url, 0, 0);
}

#define ASSERT_OK(expr)                                                          \
	do {                                                                     \
		int r_ = (expr);                                                 \
		if (r_ != CF_OK)                                                 \
			fail_msg("%s: %s (%d)", #expr, cf_errmsg(r_), r_);       \
	} while (0)

static int group_setup(void **state)
{
	(void)state;
	const char *u = getenv("COFFER_TEST_S3");
	if (!u || !*u)
		return 0;
	char rnd[17];
	randhex(rnd, 8);
	snprintf(base_url, sizeof(base_url), "%s", u);
	snprintf(run_url, sizeof(run_url), "%s/run-%s", u, rnd);
	/* The test bucket may not exist yet: create() makes it. */
	struct cf_backend *be = open_run();
	int r = be->ops->create(be);
	if (r) {
		fprintf(stderr, "test_s3: create %s: %s\n", run_url, cf_errmsg(r));
		cf_backend_free(be);
		return -1;
	}
	cf_backend_free(be);
	return 0;
}

/* ---- tests that need no server ---- */

static void test_locations(void **state)
{
	(void)state;
	struct cf_s3_loc l;
	ASSERT_OK(cf_s3_loc_parse("http://127.0.0.1:16080/bkt/some/prefix/", &l));
	assert_string_equal(l.scheme, "http");
	assert_string_equal(l.host, "127.0.0.1:16080");
	assert_string_equal(l.bucket, "bkt");
	assert_string_equal(l.prefix, "some/prefix");
	assert_false(l.virtual_hosted);
	cf_s3_loc_release(&l);

	ASSERT_OK(cf_s3_loc_parse("https://minio.example.org/backups", &l));
	assert_string_equal(l.host, "minio.example.org");
	assert_string_equal(l.prefix, "");
	cf_s3_loc_release(&l);

	ASSERT_OK(cf_s3_loc_parse("//my-bucket/host1", &l));
	assert_true(l.virtual_hosted);
	assert_string_equal(l.scheme, "https");
	assert_string_equal(l.bucket, "my-bucket");
	assert_string_equal(l.prefix, "host1");
	struct cf_buf k = CF_BUF_INIT;
	ASSERT_OK(cf_s3_loc_key(&l, "data/ab/abcd", &k));
	assert_string_equal((char *)k.data, "host1/data/ab/abcd");
	cf_buf_release(&k);
	cf_s3_loc_release(&l);

	static const char *const bad[] = {
		"ftp://h/b", "http://h/", "http://h", "http://user:pw@h/b", "http://h/b?x=1",
		"//my.bucket/p", "//", "http://h/b/p//q", "http://h/b/../x", "http://h/b/./x",
		"http://h/b%20c", "bucket/prefix", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = cf_s3_loc_parse(bad[i], &l);
		if (r != CF_EINVAL)
			fail_msg("location \"%s\" accepted (%d)", bad[i], r);
		cf_s3_loc_release(&l);
	}
	/* The parser must not echo credentials back in its message. */
	assert_int_equal(cf_s3_loc_parse("http://AKID:SeCrEt@h/b", &l), CF_EINVAL);
	assert_null(strstr(cf_errmsg(CF_EINVAL), "SeCrEt"));
	cf_s3_loc_release(&l);
}

struct seen {
	int n;
	uint64_t total;
	char names[8][64];
};

static int collect(const char *key, uint64_t size, void *ctx)
{
	struct seen *s = ctx;
	if (s->n < 8)
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", key);
	s->n++;
	s->total += size;
	return 0;
}

static void test_xml(void **state)
{
	(void)state;
	const char *page =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Name>b</Name><Prefix>p/data/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
		"<IsTruncated>true</IsTruncated>"
		"<Contents><Key>p/data/ab/a&amp;b</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
		"<ETag>&quot;x&quot;</ETag><Size>10</Size><StorageClass>STANDARD</StorageClass></Contents>"
		"<Contents><Key>p/data/cd/c\xc3\xbc</Key><Size>18446744073709551615</Size></Contents>"
		"<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
		"</ListBucketResult>";
	struct seen s = { 0 };
	struct cf_s3_list_page pg;
	ASSERT_OK(cf_s3_list_parse(page, strlen(page), collect, &s, &pg));
	assert_int_equal(s.n, 2);
	assert_string_equal(s.names[0], "p/data/ab/a&b");
	assert_string_equal(s.names[1], "p/data/cd/c\xc3\xbc");
	assert_true(pg.truncated);
	assert_string_equal(pg.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	free(pg.next_token);

	static const char *const broken[] = {
		"<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>",
		"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size>99999999999999999999</Size></Contents></ListBucketResult>",
		"<Error><Code>x</Code></Error>",
		"<ListBucketResult><Contents>",
		"<html><body>502 Bad Gateway</body></html>",
		"",
	};
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		int r = cf_s3_list_parse(broken[i], strlen(broken[i]), collect, &s, &pg);
		if (r != CF_ECORRUPT)
			fail_msg("broken listing %zu accepted (%d)", i, r);
		assert_null(pg.next_token);
	}

	const char *err = "<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>RequestTimeTooSkewed</Code>"
			  "<Message>The difference between the request time and the current time is too large.</Message>"
			  "<RequestTime>20240101T000000Z</RequestTime><ServerTime>2024-01-01T01:00:00Z</ServerTime>"
			  "<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds><RequestId>tx1</RequestId></Error>";
	struct cf_s3_error e;
	ASSERT_OK(cf_s3_error_parse(err, strlen(err), &e));
	assert_string_equal(e.code, "RequestTimeTooSkewed");
	assert_string_equal(e.request_time, "20240101T000000Z");
	assert_string_equal(e.server_time, "2024-01-01T01:00:00Z");
	assert_string_equal(e.max_skew_ms, "900000");
	assert_null(e.region);
	cf_s3_error_release(&e);
	assert_int_equal(cf_s3_error_parse("<html/>", 7, &e), CF_ECORRUPT);
	assert_null(e.code);
}

/* ---- tests against the server ---- */

static void test_create(void **state)
{
	(void)state;
	need_server();
	/* A bucket that surely does not exist yet: BUCKET-c<random>. */
	char url[600], rnd[9];
	randhex(rnd, 4);
	const char *hostpart = strstr(base_url, "://");
	assert_non_null(hostpart);
	const char *bstart = strchr(hostpart + 3, '/');
	assert_non_null(bstart);
	const char *bend = strchr(bstart + 1, '/');
	size_t upto = bend ? (size_t)(bend - base_url) : strlen(base_url);
	snprintf(url, sizeof(url), "%.*s-c%s/repo", (int)upto, base_url, rnd);

	struct cf_backend *be = open_url(url, 0, 0);
	uint64_t size;
	struct seen s = { 0 };
	assert_int_equal(be->ops->list(be, "keys", collect, &s), CF_ENOENT); /* no bucket yet */
	ASSERT_OK(be->ops->create(be));
	ASSERT_OK(be->ops->list(be, "keys", collect, &s));
	assert_int_equal(s.n, 0);
	ASSERT_OK(be->ops->create(be)); /* bucket there, no repository: fine */
	ASSERT_OK(cf_be_put(be, "config", "cfg", 3));
	assert_int_equal(be->ops->create(be), CF_EEXIST);
	assert_non_null(strstr(cf_errmsg(CF_EEXIST), "already exists"));
	ASSERT_OK(cf_be_remove(be, "config"));
	assert_int_equal(cf_be_stat(be, "config", &size), CF_ENOENT);
	cf_backend_free(be);
}

/* A consumer of streamed bytes that keeps them. */
struct collected {
	struct cf_buf b;
	int calls, fail_at; /* fail_at > 0: the fail_at-th call returns CF_EIO */
};

static int collect_bytes(const uint8_t *p, size_t n, void *ctx)
{
	struct collected *c = ctx;
	if (++c->calls == c->fail_at)
		return cf_err(CF_EIO, "the consumer gave up");
	return cf_buf_add(&c->b, p, n);
}

static void test_roundtrip(void **state)
{
	(void)state;
	need_server();
	struct cf_backend *be = open_run();
	struct cf_buf got = CF_BUF_INIT;
	uint64_t size = 0;
	size_t n = 100000;
	uint8_t *data = malloc(n);
	assert_non_null(data);
	fill(data, n, 1);

	ASSERT_OK(cf_be_put(be, "data/ab/abcdef", data, n));
	ASSERT_OK(cf_be_get(be, "data/ab/abcdef", &got));
	assert_int_equal(got.len, n);
	assert_memory_equal(got.data, data, n);
	ASSERT_OK(cf_be_stat(be, "data/ab/abcdef", &size));
	assert_int_equal(size, n);
	ASSERT_OK(cf_be_get_range(be, "data/ab/abcdef", 1000, 5000, &got));
	assert_int_equal(got.len, 5000);
	assert_memory_equal(got.data, data + 1000, 5000);
	ASSERT_OK(cf_be_get_range(be, "data/ab/abcdef", n - 1, 1, &got));
	assert_int_equal(got.len, 1);
	assert_int_equal(got.data[0], data[n - 1]);
	/* Past the end: a short object is corruption, not success. */
	assert_int_equal(cf_be_get_range(be, "data/ab/abcdef", n - 10, 20, &got), CF_ECORRUPT);
	assert_int_equal(cf_be_get_range(be, "data/ab/abcdef", n + 10, 20, &got), CF_ECORRUPT);
	/* Re-putting identical bytes is a retry and succeeds. */
	ASSERT_OK(cf_be_put(be, "data/ab/abcdef", data, n));

	/* Missing objects: CF_ENOENT with the name in the message. */
	assert_int_equal(cf_be_get(be, "snapshots/missing", &got), CF_ENOENT);
	assert_non_null(strstr(cf_errmsg(CF_ENOENT), "snapshots/missing"));
	assert_int_equal(cf_be_stat(be, "snapshots/missing", &size), CF_ENOENT);
	assert_int_equal(cf_be_get_range(be, "snapshots/missing", 0, 10, &got), CF_ENOENT);

	/* Empty and large (8 MiB) objects. */
	ASSERT_OK(cf_be_put(be, "locks/empty", "", 0));
	ASSERT_OK(cf_be_stat(be, "locks/empty", &size));
	assert_int_equal(size, 0);
	ASSERT_OK(cf_be_get(be, "locks/empty", &got));
	assert_int_equal(got.len, 0);
	size_t big = 8u << 20;
	uint8_t *bd = malloc(big);
	assert_non_null(bd);
	fill(bd, big, 7);
	double t0 = cf_now_mono();
	ASSERT_OK(cf_be_put(be, "data/cd/big", bd, big));
	double t1 = cf_now_mono();
	ASSERT_OK(cf_be_get(be, "data/cd/big", &got));
	double t2 = cf_now_mono();
	assert_int_equal(got.len, big);
	assert_memory_equal(got.data, bd, big);
	print_message("8 MiB object: PUT %.0f MiB/s, GET %.0f MiB/s\n", 8 / (t1 - t0), 8 / (t2 - t1));
	/* streamed: the same bytes, in pieces as they arrive */
	struct collected c = { CF_BUF_INIT, 0, 0 };
	ASSERT_OK(cf_be_get_range_stream(be, "data/cd/big", 1000, big - 3000, collect_bytes, &c));
	assert_int_equal(c.b.len, big - 3000);
	assert_memory_equal(c.b.data, bd + 1000, big - 3000);
	assert_true(c.calls > 1);
	assert_int_equal(cf_be_get_range_stream(be, "data/cd/big", big - 10, 20, collect_bytes, &c), CF_ECORRUPT);
	assert_int_equal(cf_be_get_range_stream(be, "data/cd/missing", 0, 20, collect_bytes, &c), CF_ENOENT);
	cf_buf_release(&c.b);

	/* Remove, then it is gone; removing again is fine. */
	ASSERT_OK(cf_be_remove(be, "data/ab/abcdef"));
	assert_int_equal(cf_be_get(be, "data/ab/abcdef", &got), CF_ENOENT);
	ASSERT_OK(cf_be_remove(be, "data/ab/abcdef"));
	ASSERT_OK(cf_be_remove(be, "data/cd/big"));
	ASSERT_OK(cf_be_remove(be, "locks/empty"));
	cf_buf_release(&got);
	free(bd);
	free(data);
	cf_backend_free(be);
}

/* A body whose SHA-256 the caller gives (a format-2 pack: its name) is
 * signed with that hash, not hashed again; a wrong one is refused by the
 * store and leaves no object. */
static void test_put_known_hash(void **state)
{
	(void)state;
	need_server();
	struct cf_backend *be = open_run();
	struct cf_buf got = CF_BUF_INIT;
	size_t n = 300000;
	uint8_t *data = malloc(n), h[32], bad[32];
	assert_non_null(data);
	fill(data, n, 3);
	unsigned hl = 0;
	assert_int_equal(EVP_Digest(data, n, h, &hl, EVP_sha256(), NULL), 1);
	struct iovec iov[2] = { { data, 1000 }, { data + 1000, n - 1000 } };
	ASSERT_OK(cf_be_put_iov(be, "data/ee/hashed", iov, 2, h));
	ASSERT_OK(cf_be_get(be, "data/ee/hashed", &got));
	assert_int_equal(got.len, n);
	assert_memory_equal(got.data, data, n);

	memcpy(bad, h, sizeof(bad));
	bad[7] ^= 1;
	int rc = cf_be_put_iov(be, "data/ee/wrong", iov, 2, bad);
	assert_int_not_equal(rc, CF_OK);
	assert_int_not_equal(rc, CF_EAGAIN); /* refused at once, not retried 8 times */
	print_message("wrong body hash: %s\n", cf_errmsg(rc));
	assert_int_equal(cf_be_stat(be, "data/ee/wrong", NULL), CF_ENOENT);
	ASSERT_OK(cf_be_remove(be, "data/ee/hashed"));
	cf_buf_release(&got);
	free(data);
	cf_backend_free(be);
}

/* Over https (COFFER_TEST_S3_TLS, the same store through Swift's TLS proxy),
 * bodies go out as UNSIGNED-PAYLOAD unless sign_payload is set.  Observable
 * with a wrong known hash: unsigned, the hash is never sent and the body is
 * stored as it is; signed, the store recomputes it and refuses the body. */
static void test_https_payload(void **state)
{
	(void)state;
	const char *tls = getenv("COFFER_TEST_S3_TLS"), *ca = getenv("COFFER_TEST_S3_CACERT");
	if (!tls || !*tls || !ca || !*ca)
		skip();
	char url[600], rnd[17];
	randhex(rnd, 8);
	snprintf(url, sizeof(url), "%s/tls-%s", tls, rnd);
	size_t n = 200000;
	uint8_t *data = malloc(n), h[32];
	assert_non_null(data);
	fill(data, n, 9);
	unsigned hl = 0;
	assert_int_equal(EVP_Digest(data, n, h, &hl, EVP_sha256(), NULL), 1);
	h[3] ^= 1; /* wrong */
	struct iovec iov[2] = { { data, 100 }, { data + 100, n - 100 } };
	struct cf_buf got = CF_BUF_INIT;

	struct cf_backend_opts o = { 0, ca, 0, false };
	struct cf_backend *be = NULL;
	ASSERT_OK(cf_backend_s3_new(url, &o, &be));
	ASSERT_OK(be->ops->create(be));
	ASSERT_OK(cf_be_put_iov(be, "data/aa/unsigned", iov, 2, h));
	ASSERT_OK(cf_be_get(be, "data/aa/unsigned", &got));
	assert_int_equal(got.len, n);
	assert_memory_equal(got.data, data, n);
	ASSERT_OK(cf_be_put(be, "plain", data, 1000)); /* no known hash: the same */
	ASSERT_OK(cf_be_get(be, "plain", &got));
	assert_int_equal(got.len, 1000);
	assert_memory_equal(got.data, data, 1000);
	cf_backend_free(be);

	o.sign_payload = true;
	be = NULL;
	ASSERT_OK(cf_backend_s3_new(url, &o, &be));
	int rc = cf_be_put_iov(be, "data/aa/signed", iov, 2, h);
	assert_int_not_equal(rc, CF_OK);
	assert_int_not_equal(rc, CF_EAGAIN);
	print_message("https, signed, wrong body hash: %s\n", cf_errmsg(rc));
	assert_int_equal(cf_be_stat(be, "data/aa/signed", NULL), CF_ENOENT);
	ASSERT_OK(cf_be_put(be, "data/aa/signed", data, n)); /* its own hash: stored */
	ASSERT_OK(cf_be_get(be, "data/aa/signed", &got));
	assert_int_equal(got.len, n);
	assert_memory_equal(got.data, data, n);
	ASSERT_OK(cf_be_remove(be, "data/aa/signed"));
	ASSERT_OK(cf_be_remove(be, "data/aa/unsigned"));
	ASSERT_OK(cf_be_remove(be, "plain"));
	cf_buf_release(&got);
	free(data);
	cf_backend_free(be);
}

/* Work shared by threads: object i of n is "dir/xx/name<i>" with size i % 97. */
struct job {
	struct cf_backend *be;
	const char *dir;
	int from, to;
	int op; /* 0 put, 1 remove, 2 put+get+verify+remove */
	int failed;
	char msg[512];
};

static void obj_name(const char *dir, int i, char *out, size_t n)
{
	snprintf(out, n, "%s/%02x/obj%05d", dir, i % 256, i);
}

static void *worker(void *arg)
{
	struct job *j = arg;
	struct cf_buf got = CF_BUF_INIT;
	uint8_t buf[4096];
	for (int i = j->from; i < j->to && !j->failed; i++) {
		char name[128];
		size_t len = j->op == 2 ? (size_t)(i * 37) % sizeof(buf) : (size_t)(i % 97);
		int r = CF_OK;
		obj_name(j->dir, i, name, sizeof(name));
		fill(buf, len, (uint32_t)i);
		if (j->op == 0 || j->op == 2)
			r = cf_be_put(j->be, name, buf, len);
		if (!r && j->op == 2) {
			r = cf_be_get(j->be, name, &got);
			if (!r && (got.len != len || (len && memcmp(got.data, buf, len)))) {
				snprintf(j->msg, sizeof(j->msg), "%s: content differs", name);
				j->failed = 1;
			}
		}
		if (!r && (j->op == 1 || j->op == 2))
			r = cf_be_remove(j->be, name);
		if (r) {
			snprintf(j->msg, sizeof(j->msg), "%s: %s", name, cf_errmsg(r));
			j->failed = 1;
		}
	}
	cf_buf_release(&got);
	return NULL;
}

static void run_jobs(struct cf_backend *be, const char *dir, int n, int op, int nthreads)
{
	pthread_t t[16];
	struct job j[16];
	for (int k = 0; k < nthreads; k++) {
		j[k] = (struct job){ be, dir, n * k / nthreads, n * (k + 1) / nthreads, op, 0, "" };
		assert_int_equal(pthread_create(&t[k], NULL, worker, &j[k]), 0);
	}
	for (int k = 0; k < nthreads; k++)
		pthread_join(t[k], NULL);
	for (int k = 0; k < nthreads; k++)
		if (j[k].failed)
			fail_msg("thread %d: %s", k, j[k].msg);
}

struct census {
	unsigned char *seen;
	int n, dup, bad, stop_after;
};

static int count_obj(const char *name, uint64_t size, void *ctx)
{
	struct census *c = ctx;
	int i;
	if (sscanf(name, "obj%05d", &i) != 1 || i < 0 || i >= c->n || size != (uint64_t)(i % 97)) {
		c->bad++;
		return 0;
	}
	if (c->seen[i]++)
		c->dup++;
	if (c->stop_after && --c->stop_after == 0)
		return 1234;
	return 0;
}

static void check_listing(struct cf_backend *be, int n)
{
	struct census c = { calloc((size_t)n, 1), n, 0, 0, 0 };
	assert_non_null(c.seen);
	ASSERT_OK(cf_be_list(be, "data", count_obj, &c));
	int found = 0;
	for (int i = 0; i < n; i++)
		found += c.seen[i] != 0;
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.dup, 0);
	assert_int_equal(found, n);
	free(c.seen);
}

static void test_list_many(void **state)
{
	(void)state;
	need_server();
	const int n = 1100;
	struct cf_backend *be = open_run();
	double t0 = cf_now_mono();
	run_jobs(be, "data", n, 0, 8);
	double t1 = cf_now_mono();
	print_message("%d small PUTs with 8 threads: %.2f s (%.0f/s)\n", n, t1 - t0, n / (t1 - t0));
	/* Neighbours that a sloppy prefix would pick up. */
	ASSERT_OK(cf_be_put(be, "datax/aa/obj00001", "x", 1));
	ASSERT_OK(cf_be_put(be, "index/obj00002", "y", 1));

	t0 = cf_now_mono();
	check_listing(be, n); /* two pages of at most 1000 */
	print_message("list of %d objects: %.2f s\n", n, cf_now_mono() - t0);

	/* Stopping early returns the callback's value. */
	struct census c = { calloc((size_t)n, 1), n, 0, 0, 5 };
	assert_int_equal(cf_be_list(be, "data", count_obj, &c), 1234);
	free(c.seen);

	/* Small pages: eleven continuation tokens in a row. */
	setenv("COFFER_S3_LIST_MAX_KEYS", "100", 1);
	struct cf_backend *small = open_run();
	unsetenv("COFFER_S3_LIST_MAX_KEYS");
	check_listing(small, n);
	cf_backend_free(small);

	run_jobs(be, "data", n, 1, 8);
	struct seen s = { 0 };
	ASSERT_OK(cf_be_list(be, "data", collect, &s));
	assert_int_equal(s.n, 0);
	ASSERT_OK(cf_be_remove(be, "datax/aa/obj00001"));
	ASSERT_OK(cf_be_remove(be, "index/obj00002"));
	cf_backend_free(be);
}

struct name_census {
	const char *const *names;
	size_t n;
	int *hits;
	int other;
};

static int list_fn(const char *name, uint64_t size, void *ctx)
{
	struct name_census *l = ctx;
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(name, l->names[i]) && size == strlen(name)) {
			l->hits[i]++;
			return 0;
		}
	l->other++;
	return 0;
}

static void test_special_names(void **state)
{
	(void)state;
	need_server();
	static const char *const names[] = {
		"a b", "plus+sign", "percent%41", "amp&eq=q?hash#", "tilde~dot.dash-under_",
		"\xc3\xbcml\xc3\xa4ut \xe2\x82\xac", "star*paren()bang!quote'", "dollar$comma,semi;colon:at@",
		"brackets[]{}", "caret^pipe|back\\slash", "lt<gt>quote\"", "..", ".x",
	};
	size_t n = sizeof(names) / sizeof(names[0]);
	struct cf_backend *be = open_run();
	struct cf_buf got = CF_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		char path[256];
		uint64_t size;
		snprintf(path, sizeof(path), "keys/%s", names[i]);
		ASSERT_OK(cf_be_put(be, path, names[i], strlen(names[i])));
		ASSERT_OK(cf_be_get(be, path, &got));
		assert_int_equal(got.len, strlen(names[i]));
		assert_memory_equal(got.data, names[i], got.len);
		ASSERT_OK(cf_be_stat(be, path, &size));
		assert_int_equal(size, strlen(names[i]));
	}
	/* The listing gives the same names back, each once. */
	int hits[32] = { 0 };
	struct name_census lc = { names, n, hits, 0 };
	ASSERT_OK(cf_be_list(be, "keys", list_fn, &lc));
	assert_int_equal(lc.other, 0);
	for (size_t i = 0; i < n; i++)
		if (hits[i] != 1)
			fail_msg("\"%s\" listed %d times", names[i], hits[i]);
	for (size_t i = 0; i < n; i++) {
		char path[256];
		snprintf(path, sizeof(path), "keys/%s", names[i]);
		ASSERT_OK(cf_be_remove(be, path));
		assert_int_equal(cf_be_get(be, path, &got), CF_ENOENT);
	}
	cf_buf_release(&got);
	cf_backend_free(be);
}

static void test_wrong_secret(void **state)
{
	(void)state;
	need_server();
	char *saved = strdup(getenv("AWS_SECRET_ACCESS_KEY") ? getenv("AWS_SECRET_ACCESS_KEY") : "");
	const char *wrong = "WrongSecret-Do-Not-Print-123";
	setenv("AWS_SECRET_ACCESS_KEY", wrong, 1);
	struct cf_backend *be = open_run();
	setenv("AWS_SECRET_ACCESS_KEY", saved, 1);
	struct cf_buf got = CF_BUF_INIT;
	uint64_t size;

	double t0 = cf_now_mono();
	int r = cf_be_put(be, "keys/k1", "x", 1);
	assert_int_equal(r, CF_EPERM);
	const char *m = cf_errmsg(r);
	print_message("wrong secret: %s\n", m);
	assert_non_null(strstr(m, "403"));
	assert_non_null(strstr(m, "SignatureDoesNotMatch"));
	assert_non_null(strstr(m, "keys/k1"));
	assert_non_null(strstr(m, "AWS_SECRET_ACCESS_KEY"));
	assert_null(strstr(m, wrong));
	assert_true(cf_now_mono() - t0 < 2.0); /* refused at once, not retried */
	assert_int_equal(cf_be_get(be, "keys/k1", &got), CF_EPERM);
	/* stat's HEAD gets no body; the backend fetches the reason anyway. */
	assert_int_equal(cf_be_stat(be, "keys/k1", &size), CF_EPERM);
	assert_non_null(strstr(cf_errmsg(CF_EPERM), "SignatureDoesNotMatch"));
	cf_backend_free(be);
	cf_buf_release(&got);
	free(saved);
}

static void test_credentials_from_files(void **state)
{
	(void)state;
	need_server();
	char *id = strdup(getenv("AWS_ACCESS_KEY_ID") ? getenv("AWS_ACCESS_KEY_ID") : "");
	char *secret = strdup(getenv("AWS_SECRET_ACCESS_KEY") ? getenv("AWS_SECRET_ACCESS_KEY") : "");
	char f1[] = "/tmp/coffer-s3-idXXXXXX", f2[] = "/tmp/coffer-s3-secretXXXXXX";
	int fd1 = mkstemp(f1), fd2 = mkstemp(f2);
	assert_true(fd1 >= 0 && fd2 >= 0);
	/* Docker secrets often end in a newline; it is not part of the key. */
	assert_int_equal(cf_write_full(fd1, id, strlen(id)), 0);
	assert_int_equal(cf_write_full(fd1, "\n", 1), 0);
	assert_int_equal(cf_write_full(fd2, secret, strlen(secret)), 0);
	assert_int_equal(cf_write_full(fd2, "\r\n", 2), 0);
	close(fd1);
	close(fd2);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");

	struct cf_backend *be = NULL;
	assert_int_equal(cf_backend_s3_new(run_url + 0, NULL, &be), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "AWS_SECRET_ACCESS_KEY"));

	setenv("AWS_ACCESS_KEY_ID_FILE", f1, 1);
	setenv("AWS_SECRET_ACCESS_KEY_FILE", f2, 1);
	be = open_run();
	unsetenv("AWS_ACCESS_KEY_ID_FILE");
	unsetenv("AWS_SECRET_ACCESS_KEY_FILE");
	setenv("AWS_ACCESS_KEY_ID", id, 1);
	setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
	ASSERT_OK(cf_be_put(be, "keys/fromfile", "z", 1));
	ASSERT_OK(cf_be_remove(be, "keys/fromfile"));
	cf_backend_free(be);
	unlink(f1);
	unlink(f2);
	free(id);
	free(secret);
}

static void test_clock_skew(void **state)
{
	(void)state;
	need_server();
	struct cf_backend *be = open_run();
	cf_s3_clock_skew_for_tests = -3600; /* sign an hour in the past */
	int r = cf_be_put(be, "keys/skew", "x", 1);
	cf_s3_clock_skew_for_tests = 0;
	assert_int_equal(r, CF_ES3);
	const char *m = cf_errmsg(r);
	print_message("skewed clock: %s\n", m);
	assert_non_null(strstr(m, "RequestTimeTooSkewed"));
	assert_non_null(strstr(m, "behind"));
	cf_backend_free(be);
}

static void test_threads(void **state)
{
	(void)state;
	need_server();
	/* 8 threads through 4 connections: the pool makes them take turns. */
	struct cf_backend *be = open_url(run_url, 4, 0);
	double t0 = cf_now_mono();
	run_jobs(be, "data", 400, 2, 8);
	print_message("400 put+get+remove with 8 threads over 4 connections: %.2f s\n", cf_now_mono() - t0);
	struct seen s = { 0 };
	ASSERT_OK(cf_be_list(be, "data", collect, &s));
	assert_int_equal(s.n, 0);
	cf_backend_free(be);
}

/* Tests against a server that checks no signature still need keys to sign
 * with: the real ones when set, else any. */
static void fake_credentials(void)
{
	setenv("AWS_ACCESS_KEY_ID", getenv("AWS_ACCESS_KEY_ID") ? getenv("AWS_ACCESS_KEY_ID") : "x", 1);
	setenv("AWS_SECRET_ACCESS_KEY", getenv("AWS_SECRET_ACCESS_KEY") ? getenv("AWS_SECRET_ACCESS_KEY") : "y", 1);
}

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

/* ---- retries, against a misbehaving HTTP responder on loopback ---- */

/* Answers each connection with the next scripted reply; "RESET" closes the
 * connection without a word (as a crashed proxy would), "STALL" keeps it
 * open and silent (a hung peer), "RAW|..." sends the rest as it is,
 * "CHUNKED|STATUS|N" a chunked answer of N bytes ('a' + i % 26), for as long
 * as the client reads, "TRICKLE|N" a 200 announcing N bytes and sending one
 * every 100 ms.  The first requests are kept for asserts. */
struct responder {
	int lfd, port, served;
	const char *const *script;
	int nscript;
	char req[4][16384];
};

/* send() that reports a client gone away (no SIGPIPE) as false */
static bool send_all(int fd, const void *p, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t k = send(fd, (const char *)p + done, n - done, MSG_NOSIGNAL);
		if (k <= 0)
			return false;
		done += (size_t)k;
	}
	return true;
}

static void serve_chunked(int fd, int status, unsigned long long n)
{
	char head[128], piece[65536 + 16];
	int hl = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
			  status);
	if (!send_all(fd, head, (size_t)hl))
		return;
	for (unsigned long long at = 0; at < n;) {
		size_t k = n - at < 65536 ? (size_t)(n - at) : 65536;
		int pl = snprintf(piece, 16, "%zx\r\n", k);
		for (size_t j = 0; j < k; j++)
			piece[pl + j] = (char)('a' + (at + j) % 26);
		memcpy(piece + pl + k, "\r\n", 2);
		if (!send_all(fd, piece, (size_t)pl + k + 2))
			return; /* the client stopped reading */
		at += k;
	}
	send_all(fd, "0\r\n\r\n", 5);
}

static void serve_trickle(int fd, unsigned long long n)
{
	char head[128];
	int hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\nConnection: close\r\n\r\n", n);
	if (!send_all(fd, head, (size_t)hl))
		return;
	for (unsigned long long at = 0; at < n; at++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (!send_all(fd, "t", 1))
			return;
	}
}

static void *respond(void *arg)
{
	struct responder *rs = arg;
	int stalled[16], nstalled = 0;
	for (int i = 0; i < rs->nscript; i++) {
		int fd = accept(rs->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		char buf[65536];
		size_t have = 0;
		/* read the header block and the announced body */
		for (;;) {
			ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			buf[have] = 0;
			char *end = strstr(buf, "\r\n\r\n");
			if (!end)
				continue;
			char *cl = strcasestr(buf, "content-length:");
			size_t want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
			if (have >= want)
				break;
		}
		if (rs->served < 4)
			snprintf(rs->req[rs->served], sizeof(rs->req[0]), "%.*s", (int)have, buf);
		rs->served++;
		if (!strcmp(rs->script[i], "STALL")) {
			stalled[nstalled++] = fd;
			continue;
		}
		if (!strncmp(rs->script[i], "CHUNKED|", 8)) {
			serve_chunked(fd, atoi(rs->script[i] + 8), strtoull(strchr(rs->script[i] + 8, '|') + 1, NULL, 10));
		} else if (!strncmp(rs->script[i], "TRICKLE|", 8)) {
			serve_trickle(fd, strtoull(rs->script[i] + 8, NULL, 10));
		} else if (!strncmp(rs->script[i], "RAW|", 4)) { /* sent as it is, then closed */
			assert_int_equal(cf_write_full(fd, rs->script[i] + 4, strlen(rs->script[i] + 4)), 0);
		} else if (strcmp(rs->script[i], "RESET")) {
			char reply[4096];
			const char *body = strchr(rs->script[i], '|') + 1;
			int code = atoi(rs->script[i]);
			int n = snprintf(reply, sizeof(reply),
					 "HTTP/1.1 %d X\r\nContent-Type: application/xml\r\nContent-Length: %zu\r\n"
					 "Connection: close\r\n\r\n%s", code, strlen(body), body);
			assert_int_equal(cf_write_full(fd, reply, (size_t)n), 0);
		} else {
			struct linger lg = { 1, 0 }; /* RST, not FIN */
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(fd);
	}
	while (nstalled)
		close(stalled[--nstalled]);
	return NULL;
}

static void start_responder(struct responder *rs, const char *const *script, int n, pthread_t *t)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	rs->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(rs->lfd >= 0);
	assert_int_equal(bind(rs->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(rs->lfd, 8), 0);
	assert_int_equal(getsockname(rs->lfd, (struct sockaddr *)&a, &al), 0);
	rs->port = ntohs(a.sin_port);
	rs->script = script;
	rs->nscript = n;
	rs->served = 0;
	assert_int_equal(pthread_create(t, NULL, respond, rs), 0);
}

#define SLOWDOWN "503|<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

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

/* ---- a hostile store: bounded answers, listings that must end ---- */

static struct cf_backend *open_scripted(struct responder *rs, const char *const *script, int n, pthread_t *t,
					int attempts)
{
	char url[128];
	start_responder(rs, script, n, t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", rs->port);
	return open_url(url, 0, attempts);
}

static void end_scripted(struct responder *rs, pthread_t t, struct cf_backend *be)
{
	pthread_join(t, NULL);
	close(rs->lfd);
	cf_backend_free(be);
}

struct names_seen {
	int n;
	char name[8][16];
};

static int count_names(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	int *n = ctx;
	(*n)++;
	(void)name;
	return 0;
}

static int keep_names(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	struct names_seen *ns = ctx;
	if (ns->n < 8)
		snprintf(ns->name[ns->n], sizeof(ns->name[0]), "%s", name);
	ns->n++;
	return 0;
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

/* "200|" + a ListBucketResult with keys snapshots/K for each letter of keys */
static char *list_page(const char *keys, const char *next)
{
	struct cf_buf b = CF_BUF_INIT;
	ASSERT_OK(cf_buf_adds(&b, "RAW|"));
	struct cf_buf body = CF_BUF_INIT;
	ASSERT_OK(cf_buf_addf(&body, "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>%s</IsTruncated>",
			      next ? "true" : "false"));
	if (next)
		ASSERT_OK(cf_buf_addf(&body, "<NextContinuationToken>%s</NextContinuationToken>", next));
	for (const char *k = keys; *k; k++)
		ASSERT_OK(cf_buf_addf(&body, "<Contents><Key>snapshots/%c</Key><Size>1</Size></Contents>", *k));
	ASSERT_OK(cf_buf_adds(&body, "</ListBucketResult>"));
	ASSERT_OK(cf_buf_addf(&b, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", body.len,
			      (char *)body.data));
	cf_buf_release(&body);
	return (char *)cf_buf_detach(&b, NULL);
}

/* A listing the store drives in circles ends with an error naming the
 * directory; one that names an object twice hands it over once. */
static void test_listing_guards(void **state)
{
	(void)state;
	fake_credentials();
	pthread_t t;
	struct responder rs;

	/* the same continuation token again */
	char *again[3] = { list_page("a", "T1"), list_page("b", "T1"), list_page("c", NULL) };
	struct cf_backend *be = open_scripted(&rs, (const char *const *)again, 2, &t, 8);
	struct names_seen ns = { 0 };
	int r = cf_be_list(be, "snapshots", keep_names, &ns);
	end_scripted(&rs, t, be);
	print_message("repeated token: %s\n", cf_errmsg(r));
	assert_int_equal(r, CF_ES3);
	assert_non_null(strstr(cf_errmsg(r), "snapshots/"));
	assert_non_null(strstr(cf_errmsg(r), "continuation token"));
	assert_int_equal(rs.served, 2);

	/* every key twice, within a page and across pages: each name once */
	char *dups[2] = { list_page("aab", "T1"), list_page("bbc", NULL) };
	be = open_scripted(&rs, (const char *const *)dups, 2, &t, 8);
	memset(&ns, 0, sizeof(ns));
	ASSERT_OK(cf_be_list(be, "snapshots", keep_names, &ns));
	end_scripted(&rs, t, be);
	assert_int_equal(ns.n, 3);
	assert_string_equal(ns.name[0], "a");
	assert_string_equal(ns.name[1], "b");
	assert_string_equal(ns.name[2], "c");

	/* "more" for ever with nothing new (fresh tokens each time) */
	enum { N = 101 };
	char *idle[N];
	idle[0] = list_page("a", "T0");
	for (int i = 1; i < N; i++) {
		char tok[16];
		snprintf(tok, sizeof(tok), "T%d", i);
		idle[i] = list_page(i % 2 ? "" : "a", tok);
	}
	be = open_scripted(&rs, (const char *const *)idle, N, &t, 8);
	int n = 0;
	r = cf_be_list(be, "snapshots", count_names, &n);
	end_scripted(&rs, t, be);
	print_message("no progress: %s\n", cf_errmsg(r));
	assert_int_equal(r, CF_ES3);
	assert_non_null(strstr(cf_errmsg(r), "snapshots/"));
	assert_non_null(strstr(cf_errmsg(r), "brought no new object"));
	assert_int_equal(n, 1);
	assert_int_equal(rs.served, N);
	for (int i = 0; i < 3; i++)
		free(again[i]);
	for (int i = 0; i < 2; i++)
		free(dups[i]);
	for (int i = 0; i < N; i++)
		free(idle[i]);
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

static void md5_b64(const char *p, size_t n, char out[25])
{
	unsigned char md[16];
	unsigned int len = 0;
	assert_true(EVP_Digest(p, n, md, &len, EVP_md5(), NULL) && len == 16);
	EVP_EncodeBlock((unsigned char *)out, md, 16);
}

/* The body of a recorded request, and its Content-MD5 must match it. */
static const char *checked_body(const char *req)
{
	const char *body = strstr(req, "\r\n\r\n");
	const char *h = strcasestr(req, "\r\ncontent-md5: ");
	char want[25], got[25] = "";
	assert_non_null(body);
	assert_non_null(h);
	body += 4;
	sscanf(h + 15, "%24s", got);
	md5_b64(body, strlen(body), want);
	assert_string_equal(got, want);
	return body;
}

struct del_seen {
	int n;
	char keys[4][32], codes[4][32];
};

static int del_collect(const char *key, const char *code, const char *message, void *ctx)
{
	struct del_seen *d = ctx;
	(void)message;
	if (d->n < 4) {
		snprintf(d->keys[d->n], sizeof(d->keys[0]), "%s", key);
		snprintf(d->codes[d->n], sizeof(d->codes[0]), "%s", code);
	}
	d->n++;
	return 0;
}

static void test_delete_xml(void **state)
{
	(void)state;
	struct cf_buf b = CF_BUF_INIT;
	static const char *const keys[] = { "p/data/ab/1", "a&b<c>\"d'e" };
	ASSERT_OK(cf_s3_delete_body(&b, keys, 2));
	assert_non_null(strstr((char *)b.data, "<Quiet>true</Quiet>"));
	assert_non_null(strstr((char *)b.data, "<Object><Key>p/data/ab/1</Key></Object>"));
	assert_non_null(strstr((char *)b.data, "<Key>a&amp;b&lt;c&gt;&quot;d&apos;e</Key>"));
	static const char *const ctl[] = { "a\001b" };
	cf_buf_reset(&b);
	assert_int_equal(cf_s3_delete_body(&b, ctl, 1), CF_EINVAL);
	cf_buf_release(&b);

	const char *res = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			  "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			  "<Deleted><Key>p/data/ab/1</Key></Deleted>"
			  "<Error><Key>a&amp;b</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
			  "<Error><Code>InternalError</Code><Key>k2</Key></Error>"
			  "</DeleteResult>";
	struct del_seen d = { 0 };
	ASSERT_OK(cf_s3_delete_parse(res, strlen(res), del_collect, &d));
	assert_int_equal(d.n, 2);
	assert_string_equal(d.keys[0], "a&b");
	assert_string_equal(d.codes[0], "AccessDenied");
	assert_string_equal(d.keys[1], "k2");
	assert_string_equal(d.codes[1], "InternalError");
	static const char *const broken[] = {
		"<DeleteResult><Error><Code>x</Code></Error></DeleteResult>",
		"<Error><Code>SlowDown</Code></Error>",
		"<DeleteResult><Error>",
		"",
	};
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
		if (cf_s3_delete_parse(broken[i], strlen(broken[i]), del_collect, &d) != CF_ECORRUPT)
			fail_msg("broken delete result %zu accepted", i);
}

/* Per-key outcomes of DeleteObjects: gone already is fine, a transient
 * refusal is sent again (alone), a permanent one is reported by name. */
static void test_remove_many_errors(void **state)
{
	(void)state;
	fake_credentials();
	char url[128];
	pthread_t t;
	struct responder rs;
	static const char *const script[] = {
		"200|<DeleteResult><Error><Key>pfx/data/aa/2</Key><Code>InternalError</Code><Message>try again</Message></Error>"
		"<Error><Key>pfx/data/aa/3</Key><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>"
		"<Error><Key>pfx/data/aa/4</Key><Code>NoSuchKey</Code></Error></DeleteResult>",
		SLOWDOWN,
		"200|<DeleteResult><Deleted><Key>pfx/data/aa/2</Key></Deleted></DeleteResult>",
	};
	start_responder(&rs, script, 3, &t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b/pfx", rs.port);
	struct cf_backend *be = open_url(url, 0, 8);
	static const char *const paths[] = { "data/aa/1", "data/aa/2", "data/aa/3", "data/aa/4", "data/aa/5" };
	int r = cf_be_remove_many(be, paths, 5);
	pthread_join(t, NULL);
	close(rs.lfd);
	assert_int_equal(rs.served, 3);
	assert_int_equal(r, CF_EPERM);
	const char *m = cf_errmsg(r);
	print_message("remove_many: %s\n", m);
	assert_non_null(strstr(m, "1 of 5 objects not removed"));
	assert_non_null(strstr(m, "data/aa/3: AccessDenied: Access Denied."));

	assert_true(!strncmp(rs.req[0], "POST /b?delete= HTTP/1.1\r\n", 26));
	const char *body = checked_body(rs.req[0]);
	for (int i = 0; i < 5; i++) {
		char k[64];
		snprintf(k, sizeof(k), "<Key>pfx/%s</Key>", paths[i]);
		assert_non_null(strstr(body, k));
	}
	/* The whole request was throttled once, then only key 2 was sent again. */
	body = checked_body(rs.req[2]);
	assert_non_null(strstr(body, "<Key>pfx/data/aa/2</Key>"));
	assert_null(strstr(body, "aa/1"));
	assert_null(strstr(body, "aa/3"));
	cf_backend_free(be);
}

static void test_remove_many(void **state)
{
	(void)state;
	need_server();
	const int n = 1234; /* two DeleteObjects requests */
	struct cf_backend *be = open_run();
	run_jobs(be, "data", n, 0, 8);
	ASSERT_OK(cf_be_put(be, "index/keepme", "k", 1));
	char **paths = calloc((size_t)n + 2, sizeof(*paths));
	assert_non_null(paths);
	for (int i = 0; i < n; i++) {
		paths[i] = malloc(64);
		obj_name("data", i, paths[i], 64);
	}
	paths[n] = strdup("data/zz/never-existed");
	paths[n + 1] = strdup("snapshots/never-existed");
	double t0 = cf_now_mono();
	ASSERT_OK(cf_be_remove_many(be, (const char *const *)paths, (size_t)n + 2));
	print_message("DeleteObjects of %d objects: %.2f s\n", n + 2, cf_now_mono() - t0);
	struct seen s = { 0 };
	ASSERT_OK(cf_be_list(be, "data", collect, &s));
	assert_int_equal(s.n, 0);
	uint64_t size;
	ASSERT_OK(cf_be_stat(be, "index/keepme", &size)); /* nothing else went */
	ASSERT_OK(cf_be_remove_many(be, NULL, 0));
	const char *one[] = { "index/keepme" };
	ASSERT_OK(cf_be_remove_many(be, one, 1));
	assert_int_equal(cf_be_stat(be, "index/keepme", &size), CF_ENOENT);
	for (int i = 0; i < n + 2; i++)
		free(paths[i]);
	free(paths);
	cf_backend_free(be);
}

/* The local backend's remove_many, and cf_be_remove_many's fallback for a
 * backend without one: both remove all, go on past a failure, name it. */
static void test_remove_many_local(void **state)
{
	(void)state;
	char dir[] = "/tmp/coffer-rm-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct cf_backend *be = NULL;
	ASSERT_OK(cf_backend_local_new(dir, &be));
	ASSERT_OK(be->ops->create(be));
	assert_non_null(be->ops->remove_many);
	struct cf_backend_ops without = *be->ops;
	without.remove_many = NULL;
	const struct cf_backend_ops *own = be->ops;
	for (int round = 0; round < 2; round++) {
		be->ops = round ? &without : own;
		static const char *const paths[] = { "index/a", "index/b", "index/missing", "index/c" };
		ASSERT_OK(cf_be_put(be, "index/a", "a", 1));
		ASSERT_OK(cf_be_put(be, "index/b", "b", 1));
		ASSERT_OK(cf_be_put(be, "index/c", "c", 1));
		ASSERT_OK(cf_be_remove_many(be, paths, 4));
		struct seen s = { 0 };
		ASSERT_OK(cf_be_list(be, "index", collect, &s));
		assert_int_equal(s.n, 0);

		/* A non-empty directory where an object should be cannot be unlinked. */
		char p[256];
		snprintf(p, sizeof(p), "%s/index/d", dir);
		assert_int_equal(mkdir(p, 0700), 0);
		snprintf(p, sizeof(p), "%s/index/d/x", dir);
		FILE *f = fopen(p, "w");
		assert_non_null(f);
		fclose(f);
		ASSERT_OK(cf_be_put(be, "index/e", "e", 1));
		static const char *const bad[] = { "index/d", "index/e" };
		int r = cf_be_remove_many(be, bad, 2);
		assert_int_not_equal(r, CF_OK);
		print_message("local remove_many (%s): %s\n", round ? "fallback" : "own", cf_errmsg(r));
		assert_non_null(strstr(cf_errmsg(r), "1 of 2 objects not removed"));
		assert_non_null(strstr(cf_errmsg(r), "index/d"));
		uint64_t size;
		assert_int_equal(cf_be_stat(be, "index/e", &size), CF_ENOENT); /* went on past it */
		assert_int_equal(unlink(p), 0);
		snprintf(p, sizeof(p), "%s/index/d", dir);
		assert_int_equal(rmdir(p), 0);
	}
	be->ops = own;
	cf_backend_free(be);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locations),
		cmocka_unit_test(test_xml),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_retries),
		cmocka_unit_test(test_stall),
		cmocka_unit_test(test_stream_resume),
		cmocka_unit_test(test_bounded_answers),
		cmocka_unit_test(test_listing_guards),
		cmocka_unit_test(test_interrupt_transfer),
		cmocka_unit_test(test_rate_floor),
		cmocka_unit_test(test_delete_xml),
		cmocka_unit_test(test_remove_many_errors),
		cmocka_unit_test(test_remove_many_local),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_put_known_hash),
		cmocka_unit_test(test_https_payload),
		cmocka_unit_test(test_special_names),
		cmocka_unit_test(test_list_many),
		cmocka_unit_test(test_wrong_secret),
		cmocka_unit_test(test_credentials_from_files),
		cmocka_unit_test(test_clock_skew),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_remove_many),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
