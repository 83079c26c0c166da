/*
 * test_s3_list.c - listings (ListObjectsV2, s3/s3_list.c) and deletes
 * (DeleteObjects, s3/s3_delete.c): their XML, their guards against a store
 * that drives them in circles or refuses some keys (scripted responders on
 * loopback), and many objects against the real S3 server in COFFER_TEST_S3
 * (skipped without it; see test_s3.c), plus the local backend's remove_many.
 */
#include "s3_testutil.h"

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
	/* Pages are forced small (the same code as S3's 1000-key pages, at a
	 * fraction of the PUTs): 250 objects are two pages of 200 ... */
	const int n = 250;
	setenv("COFFER_S3_LIST_MAX_KEYS", "200", 1);
	struct cf_backend *be = open_run();
	unsetenv("COFFER_S3_LIST_MAX_KEYS");
	double t0 = cf_now_mono();
	run_jobs(be, "data", n, 0, 8);
	double t1 = cf_now_mono();
	print_message("%d small PUTs with 8 threads: %.2f s (%.0f/s)\n", n, t1 - t0, n / (t1 - t0));
	/* Neighbours that a sloppy prefix would pick up. */
	ASSERT_OK(cf_be_put(be, "datax/aa/obj00001", "x", 1));
	ASSERT_OK(cf_be_put(be, "index/obj00002", "y", 1));

	t0 = cf_now_mono();
	check_listing(be, n); /* two pages */
	print_message("list of %d objects: %.2f s\n", n, cf_now_mono() - t0);

	/* Stopping early returns the callback's value. */
	struct census c = { calloc((size_t)n, 1), n, 0, 0, 5 };
	assert_int_equal(cf_be_list(be, "data", count_obj, &c), 1234);
	free(c.seen);

	/* ... and ten pages of 25: nine continuation tokens in a row. */
	setenv("COFFER_S3_LIST_MAX_KEYS", "25", 1);
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
	const int n = 234; /* three DeleteObjects requests of at most 100 */
	setenv("COFFER_S3_DELETE_MAX_KEYS", "100", 1);
	struct cf_backend *be = open_run();
	unsetenv("COFFER_S3_DELETE_MAX_KEYS");
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
		cmocka_unit_test(test_listing_guards),
		cmocka_unit_test(test_delete_xml),
		cmocka_unit_test(test_remove_many_errors),
		cmocka_unit_test(test_remove_many_local),
		cmocka_unit_test(test_list_many),
		cmocka_unit_test(test_remove_many),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
