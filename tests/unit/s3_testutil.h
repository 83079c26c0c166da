/*
 * s3_testutil.h - fixtures shared by the S3 backend's unit tests
 * (test_s3.c, test_s3_request.c, test_s3_list.c); header only.
 *
 * Two kinds of store: the real, strict S3 server the tests find in
 * COFFER_TEST_S3 (each binary works under a fresh random prefix made by
 * group_setup, so runs never see each other's objects; without it the
 * server tests skip), and scripted HTTP responders on loopback
 * (start_responder, open_scripted) that misbehave on purpose.
 */
#ifndef CF_S3_TESTUTIL_H
#define CF_S3_TESTUTIL_H

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

/* ---- the real server (COFFER_TEST_S3) ---- */

static char run_url[512];   /* COFFER_TEST_S3 + "/run-<random>" */
static char base_url[512];  /* COFFER_TEST_S3 as given */

static inline void need_server(void)
{
	if (!base_url[0])
		skip();
}

static inline void randhex(char *out, size_t nbytes)
{
	uint8_t b[32];
	assert_true(nbytes <= sizeof(b));
	assert_int_equal(getrandom(b, nbytes, 0), (ssize_t)nbytes);
	cf_hex(b, nbytes, out);
}

static inline void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static inline struct cf_backend *open_url(const char *url, int connections, int attempts)
{
	struct cf_backend_opts o = { .connections = connections, .max_attempts = attempts };
	struct cf_backend *be = NULL;
	int r = cf_backend_s3_new(url, &o, &be);
	if (r)
		fail_msg("cf_backend_s3_new(%s): %s", url, cf_errmsg(r));
	return be;
}

static inline struct cf_backend *open_run(void)
{
	return open_url(run_url, 0, 0);
}

#define ASSERT_OK(expr)                                                          \
	do {                                                                     \
		int r_ = (expr);                                                 \
		if (r_ != CF_OK)                                                 \
			fail_msg("%s: %s (%d)", #expr, cf_errmsg(r_), r_);       \
	} while (0)

static inline int group_setup(void **state)
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

struct seen {
	int n;
	uint64_t total;
	char names[8][64];
};

static inline int collect(const char *key, uint64_t size, void *ctx)
{
	struct seen *s = ctx;
	if (s->n < 8)
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", key);
	s->n++;
	s->total += size;
	return 0;
}

/* A consumer of streamed bytes that keeps them. */
struct collected {
	struct cf_buf b;
	int calls, fail_at; /* fail_at > 0: the fail_at-th call returns CF_EIO */
};

static inline int collect_bytes(const uint8_t *p, size_t n, void *ctx)
{
	struct collected *c = ctx;
	if (++c->calls == c->fail_at)
		return cf_err(CF_EIO, "the consumer gave up");
	return cf_buf_add(&c->b, p, n);
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

static inline void obj_name(const char *dir, int i, char *out, size_t n)
{
	snprintf(out, n, "%s/%02x/obj%05d", dir, i % 256, i);
}

static inline void *worker(void *arg)
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

static inline void run_jobs(struct cf_backend *be, const char *dir, int n, int op, int nthreads)
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

/* Tests against a server that checks no signature still need keys to sign
 * with: the real ones when set, else any. */
static inline void fake_credentials(void)
{
	setenv("AWS_ACCESS_KEY_ID", getenv("AWS_ACCESS_KEY_ID") ? getenv("AWS_ACCESS_KEY_ID") : "x", 1);
	setenv("AWS_SECRET_ACCESS_KEY", getenv("AWS_SECRET_ACCESS_KEY") ? getenv("AWS_SECRET_ACCESS_KEY") : "y", 1);
}

/* ---- a misbehaving HTTP responder on loopback ---- */

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
static inline bool send_all(int fd, const void *p, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t k = send(fd, (const char *)p + done, n - done, MSG_NOSIGNAL);
		if (k <= 0)
			return false;
		done += (size_t)k;
	}
	return true;
}

static inline void serve_chunked(int fd, int status, unsigned long long n)
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

static inline void serve_trickle(int fd, unsigned long long n)
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

static inline void *respond(void *arg)
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

static inline void start_responder(struct responder *rs, const char *const *script, int n, pthread_t *t)
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

static inline struct cf_backend *open_scripted(struct responder *rs, const char *const *script, int n,
					       pthread_t *t, int attempts)
{
	char url[128];
	start_responder(rs, script, n, t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", rs->port);
	return open_url(url, 0, attempts);
}

static inline void end_scripted(struct responder *rs, pthread_t t, struct cf_backend *be)
{
	pthread_join(t, NULL);
	close(rs->lfd);
	cf_backend_free(be);
}

struct names_seen {
	int n;
	char name[8][16];
};

static inline int count_names(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	int *n = ctx;
	(*n)++;
	(void)name;
	return 0;
}

static inline int keep_names(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	struct names_seen *ns = ctx;
	if (ns->n < 8)
		snprintf(ns->name[ns->n], sizeof(ns->name[0]), "%s", name);
	ns->n++;
	return 0;
}

#endif
