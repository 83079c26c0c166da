/*
 * s3.c - the S3 backend: repository objects in an S3-compatible object store
 * (AWS S3, MinIO, Swift's s3api, R2, B2), over libcurl, signed with SigV4.
 *
 * Each backend call is one logical request run by s3_do(): it checks a curl
 * easy handle out of a bounded pool (so opts->connections bounds the requests
 * in flight, and each handle keeps its connection alive for the next call),
 * signs the request afresh for every attempt (the signature carries the
 * time), and classifies the outcome: success, a transient failure that is
 * retried with exponential backoff and jitter, or a permanent refusal that is
 * reported at once with the store's own Code and Message.  DNS and TLS
 * sessions are shared between handles through a curl share object.
 *
 * Over plain http, bodies are signed with their real SHA-256
 * (x-amz-content-sha256), so the store rejects a body damaged in transit.
 * Over https, TLS already authenticates every byte between coffer and the
 * TLS endpoint, and a body goes out as UNSIGNED-PAYLOAD (as restic's
 * minio-go uploads over https do): for the benchmark's 1.1 GB of packs the
 * hash cost coffer 0.9 CPU s and the store's check 1.0 s more.  opts->sign_payload (--s3-sign-payload)
 * signs them over https too, for a TLS endpoint that is not the store (a
 * proxy that forwards plain http).  A body is a list of pieces (put_iov), so
 * a pack goes out without being copied into one buffer first.
 *
 * remove_many is DeleteObjects: batches of 1000 keys, each with Content-MD5,
 * per-key errors sorted into gone already (fine), transient (sent again in
 * the next round) and permanent (reported by name).
 *
 * No transfer may hang: connecting is bounded, and a transfer that moves
 * fewer than low_speed (1 KiB) bytes a second either way for stall_timeout
 * seconds is abandoned and retried; SIGINT/SIGTERM stop a transfer within
 * POLL_MS (perform()) and no retry follows.  No answer may exhaust memory:
 * each body is held to a limit derived from the request (cf_be_object_max
 * for a whole object, the length for a range, LIST_PAGE_MAX for a listing
 * page, ERROR_BODY_MAX for an error), and over it is an error naming the
 * object and the limit.  No listing may go on for ever: see "the listing's
 * guards" below.
 */
#include "store/backend.h"
#include "s3/s3_int.h"
#include "s3/sigv4.h"
#include "common/error.h"
#include "common/util.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONNECTIONS 6
#define DEFAULT_ATTEMPTS 8
#define BACKOFF_BASE 0.2   /* seconds before the second attempt */
#define BACKOFF_CAP 60.0   /* no single wait is longer */
#define LIST_MAX_KEYS 1000 /* S3's own page limit */
#define DELETE_MAX_KEYS 1000 /* and DeleteObjects' */
#define STALL_TIMEOUT 60   /* seconds */
#define LOW_SPEED 1024     /* bytes/s: slower than this for stall_timeout s is a stall */
#define LIST_PAGE_MAX ((size_t)16 << 20) /* a ListObjectsV2 page (1000 keys of <= 1 KiB: ~1.5 MB) */
#define ANSWER_MAX ((size_t)16 << 20)    /* a DeleteObjects result, a CreateBucket answer */
#define ERROR_BODY_MAX ((size_t)16 << 10) /* an <Error> document: the rest is dropped */
#define LIST_MAX_OBJECTS 10000000 /* more under one directory is not a repository */
#define LIST_IDLE_PAGES 100 /* truncated pages in a row that bring no new name */
#define POLL_MS 100        /* how often a transfer looks at cf_interrupted */

int64_t cf_s3_clock_skew_for_tests;

struct s3_handle {
	CURL *curl;
	CURLM *multi; /* drives curl, polled every POLL_MS (see perform()) */
	struct s3_handle *next;
};

struct s3_backend {
	struct cf_backend base;
	struct cf_s3_loc loc;
	char *access_key, *secret_key, *session_token;
	char *cacert;
	int connections, max_attempts, list_max_keys;
	int stall_timeout; /* seconds below low_speed before a transfer is retried */
	long low_speed;    /* bytes/s */
	bool sign_payload; /* bodies' SHA-256 in the signature (http, or asked for) */

	pthread_mutex_t mu; /* guards the pool and region */
	pthread_cond_t cond;
	struct s3_handle *idle;
	int nhandles;
	char region[64]; /* may be corrected by the store's region error */

	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
};

/* One logical request; s3_do() fills the results. */
struct s3_req {
	const char *method;
	const char *path; /* repository path; NULL for the bucket itself */
	const struct cf_sigv4_pair *query;
	size_t nquery;
	const struct iovec *iov; /* the body, in pieces (niov 0: none) */
	int niov;
	size_t body_len;         /* the sum of the pieces */
	const uint8_t *sha256;   /* the body's SHA-256 if the caller knows it, else NULL */
	const char *content_md5; /* base64, signed and sent; NULL: none */
	const char *range;       /* "bytes=0-9" or NULL */
	bool head;
	struct cf_buf *out; /* response body; NULL: discard */
	uint64_t max;       /* most bytes a 2xx body may have (0: ERROR_BODY_MAX) */
	uint64_t range_off; /* a ranged GET into out: where the range starts (a 200 */
	bool ranged;        /* answer, the whole object, is cut to [range_off, +max)) */
	struct s3_stream *stream; /* a streamed GET (then range is set per attempt), or NULL */
	/* results */
	long status;
	int64_t content_length;
};

/* A streamed range: a 2xx answer's body goes to fn as it arrives, the
 * first `done` bytes were handed over by earlier attempts (so the next one
 * asks for the rest), and rc is fn's error, which ends the request. */
struct s3_stream {
	cf_stream_fn fn;
	void *ctx;
	uint64_t off, len, done;
	int rc;
	char range[64];
};

/* Per-attempt transfer state for the curl callbacks. */
struct xfer {
	const struct s3_req *req;
	CURL *curl;
	int body_kind;    /* streamed bodies: 0 not known yet, 1 to fn, 2 to sink (an error) */
	uint64_t skip;    /* bytes of a whole-object answer (200) before the wanted ones */
	int piece;        /* the body piece the next read starts in */
	size_t piece_off; /* and where in it */
	struct cf_buf *sink;
	char bucket_region[64];
	int64_t sign_time;   /* the time the request was signed with */
	int64_t server_date; /* the answer's Date header, -1 if none */
	int oom;
	bool too_big;  /* a 2xx body longer than req->max: the transfer was stopped */
	bool enough;   /* all of a range arrived inside a 200 answer: stopped there */
	bool cut;      /* an error body cut at ERROR_BODY_MAX: stopped there */
	uint64_t max;  /* req->max, or ERROR_BODY_MAX when it is 0 */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- credentials and settings from the environment ---- */

/* NAME from the environment, or the contents of the file NAME_FILE names
 * (Docker secrets), trailing newlines stripped.  *out NULL when neither. */
static int env_secret(const char *name, char **out)
{
	char fname[64];
	*out = NULL;
	const char *v = getenv(name);
	if (v && *v) {
		*out = strdup(v);
		return *out ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
	}
	snprintf(fname, sizeof(fname), "%s_FILE", name);
	const char *path = getenv(fname);
	if (!path || !*path)
		return CF_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cf_err_errno("cannot read %s=%s", fname, path);
	char buf[4096];
	ssize_t n = cf_read_full(fd, buf, sizeof(buf));
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return cf_err_errno("cannot read %s=%s", fname, path);
	}
	if (n == (ssize_t)sizeof(buf))
		return cf_err(CF_EINVAL, "%s=%s: file too large for a credential", fname, path);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0)
		return CF_OK; /* an empty file counts as unset */
	*out = strndup(buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
	return *out ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* ---- the handle pool ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access acc, void *ud)
{
	(void)h;
	(void)acc;
	struct s3_backend *be = ud;
	pthread_mutex_lock(&be->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	(void)h;
	struct s3_backend *be = ud;
	pthread_mutex_unlock(&be->share_mu[data]);
}

/* Wait for an idle handle, or make one while fewer than connections exist. */
static int handle_get(struct s3_backend *be, struct s3_handle **out)
{
	struct s3_handle *h = NULL;
	pthread_mutex_lock(&be->mu);
	while (!be->idle && be->nhandles >= be->connections)
		pthread_cond_wait(&be->cond, &be->mu);
	if (be->idle) {
		h = be->idle;
		be->idle = h->next;
	} else {
		be->nhandles++;
	}
	pthread_mutex_unlock(&be->mu);
	if (!h) {
		h = calloc(1, sizeof(*h));
		if (h && (!(h->curl = curl_easy_init()) || !(h->multi = curl_multi_init()))) {
			if (h->curl)
				curl_easy_cleanup(h->curl);
			free(h);
			h = NULL;
		}
		if (!h) {
			pthread_mutex_lock(&be->mu);
			be->nhandles--;
			pthread_cond_signal(&be->cond);
			pthread_mutex_unlock(&be->mu);
			return cf_err(CF_ENOMEM, "out of memory (curl handle)");
		}
	}
	*out = h;
	return CF_OK;
}

static void handle_put(struct s3_backend *be, struct s3_handle *h)
{
	pthread_mutex_lock(&be->mu);
	h->next = be->idle;
	be->idle = h;
	pthread_cond_signal(&be->cond);
	pthread_mutex_unlock(&be->mu);
}

/* ---- curl callbacks ---- */

/* A 2xx answer to a streamed GET: its bytes go to the consumer, those of a
 * store that ignored the range (200, the whole object) from the offset on.
 * Once the range is complete the transfer stops: what follows (the rest of
 * a whole object, or a store that sends more than it was asked for) is
 * never waited for. */
static size_t stream_body(struct xfer *x, struct s3_stream *s, const char *p, size_t len)
{
	size_t n = len;
	if (x->skip) {
		size_t k = x->skip < n ? (size_t)x->skip : n;
		x->skip -= k;
		p += k, n -= k;
	}
	bool beyond = n > s->len - s->done;
	if (beyond)
		n = (size_t)(s->len - s->done);
	if (n && (s->rc = s->fn((const uint8_t *)p, n, s->ctx)))
		return 0; /* curl stops: CURLE_WRITE_ERROR */
	s->done += n;
	if (beyond) {
		x->enough = true;
		return 0;
	}
	return len;
}

/* A 2xx answer into the sink, at most x->max bytes: past them the
 * transfer stops (too_big), except in the whole object (200) a store sent
 * for a range, which is cut to the range (enough). */
static size_t whole_body(struct xfer *x, const char *p, size_t len)
{
	size_t n = len;
	if (x->skip) {
		size_t k = x->skip < n ? (size_t)x->skip : n;
		x->skip -= k;
		p += k, n -= k;
	}
	uint64_t room = x->max - x->sink->len;
	bool over = n > room;
	if (over && x->body_kind != 3) {
		x->too_big = true;
		return 0;
	}
	if (over)
		n = (size_t)room;
	if (cf_buf_add(x->sink, p, n)) {
		x->oom = 1;
		return 0;
	}
	if (over) {
		x->enough = true;
		return 0;
	}
	return len;
}

/* Every answer's body comes here.  body_kind, from the status of the
 * first piece: 1 a 2xx body (streamed to the consumer or bounded by
 * req->max), 3 the same for a whole object sent for a ranged GET, 2 an
 * error body, kept up to ERROR_BODY_MAX (enough for its Code and Message;
 * the transfer stops there, cut). */
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	const struct s3_req *req = x->req;
	struct s3_stream *s = req->stream;
	size_t len = size * n;
	if (x->body_kind == 0) {
		long st = 0;
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &st);
		if (s) {
			x->body_kind = st == 200 || st == 206 ? 1 : 2;
			x->skip = st == 200 ? s->off + s->done : 0;
		} else if (st >= 200 && st <= 299) {
			x->body_kind = st == 200 && req->ranged ? 3 : 1;
			x->skip = x->body_kind == 3 ? req->range_off : 0;
		} else {
			x->body_kind = 2;
		}
	}
	if (x->body_kind == 2) {
		size_t room = ERROR_BODY_MAX - x->sink->len;
		size_t k = len < room ? len : room;
		if (cf_buf_add(x->sink, p, k)) {
			x->oom = 1;
			return 0;
		}
		if (k < len) {
			x->cut = true;
			return 0;
		}
		return len;
	}
	if (s)
		return stream_body(x, s, p, len);
	return whole_body(x, p, len);
}

/* Requests that a signal stops at once: all but DELETE, which is what
 * cleanup after an interruption sends (the lock's removal). */
static bool interruptible(const struct s3_req *req)
{
	return strcmp(req->method, "DELETE") != 0;
}

static int on_progress(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
	(void)dlt, (void)dln, (void)ult, (void)uln;
	struct xfer *x = ud;
	return cf_interrupted && interruptible(x->req); /* non-zero: CURLE_ABORTED_BY_CALLBACK */
}

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t want = size * n, done = 0;
	while (done < want && x->piece < x->req->niov) {
		const struct iovec *v = &x->req->iov[x->piece];
		size_t left = v->iov_len - x->piece_off;
		size_t k = want - done < left ? want - done : left;
		memcpy(p + done, (const char *)v->iov_base + x->piece_off, k);
		done += k;
		x->piece_off += k;
		if (x->piece_off == v->iov_len) {
			x->piece++;
			x->piece_off = 0;
		}
	}
	return done;
}

/* curl rewinds the body when it must send it again (a redirect, an
 * authentication round, a connection that died while the body went out). */
static int on_seek(void *ud, curl_off_t off, int origin)
{
	struct xfer *x = ud;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	size_t left = (size_t)off;
	x->piece = 0;
	while (x->piece < x->req->niov && left >= x->req->iov[x->piece].iov_len) {
		left -= x->req->iov[x->piece].iov_len;
		x->piece++;
	}
	x->piece_off = left;
	return CURL_SEEKFUNC_OK;
}

/* AWS names a bucket's region in this header on redirects and region errors. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	static const char name[] = "x-amz-bucket-region:";
	if (len > sizeof(name) - 1 && !strncasecmp(p, name, sizeof(name) - 1)) {
		const char *v = p + sizeof(name) - 1;
		size_t vl = len - (sizeof(name) - 1);
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl < sizeof(x->bucket_region))
			snprintf(x->bucket_region, sizeof(x->bucket_region), "%.*s", (int)vl, v);
	} else if (len > 5 && len < 128 && !strncasecmp(p, "date:", 5)) {
		/* For the clock-skew message when the error body lacks ServerTime. */
		char d[128];
		snprintf(d, sizeof(d), "%.*s", (int)(len - 5), p + 5);
		time_t t = curl_getdate(d, NULL);
		x->server_date = t == (time_t)-1 ? -1 : (int64_t)t;
	}
	return len;
}

/* ---- one request ---- */

enum outcome { DONE, RETRY, REGION };

static void describe(const struct s3_backend *be, const struct s3_req *req, char *out, size_t n)
{
	snprintf(out, n, "S3 %s %s%s%s", req->method, be->base.location, req->path ? "/" : "",
		 req->path ? req->path : "");
}

static bool transient_code(const char *code)
{
	static const char *const codes[] = { "SlowDown", "RequestTimeout", "InternalError",
					     "ServiceUnavailable", "Throttling", "ThrottlingException",
					     "RequestLimitExceeded", "OperationAborted" };
	for (size_t i = 0; code && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strcmp(code, codes[i]))
			return true;
	return false;
}

static bool transient_curl(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR: /* includes resets during the handshake */
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
		return true;
	default:
		return false;
	}
}

/* "20240102T030405Z" (S3's RequestTime/ServerTime) or ISO 8601 to seconds. */
static bool parse_s3_time(const char *s, int64_t *t)
{
	struct tm tm = { 0 };
	const char *e = s ? strptime(s, "%Y%m%dT%H%M%SZ", &tm) : NULL;
	if (!e && s)
		e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!e)
		return false;
	*t = (int64_t)timegm(&tm);
	return true;
}

/* Turn a non-2xx answer into an outcome and, for DONE, an error code with the
 * message set.  msg receives the reason for a RETRY. */
static enum outcome classify_http(struct s3_backend *be, const struct s3_req *req, struct xfer *x,
				  bool region_tried, int *code, char *msg, size_t msgn)
{
	char what[1024];
	struct cf_s3_error e = { 0 };
	long st = req->status;
	describe(be, req, what, sizeof(what));
	if (x->sink->len) {
		cf_debug("%s: HTTP %ld: %.*s", what, st, (int)(x->sink->len < 2000 ? x->sink->len : 2000),
			 (const char *)x->sink->data);
		cf_s3_error_parse((const char *)x->sink->data, x->sink->len, &e); /* best effort */
	}
	const char *ecode = e.code ? e.code : "";
	const char *emsg = e.message ? e.message : "";
	enum outcome o = DONE;

	const char *learnt = e.region ? e.region : (x->bucket_region[0] ? x->bucket_region : NULL);
	if (!region_tried && learnt && (st == 301 || st == 307 || st == 400 || st == 403) &&
	    strlen(learnt) < sizeof(be->region)) {
		pthread_mutex_lock(&be->mu);
		bool changed = strcmp(be->region, learnt) != 0;
		if (changed) {
			cf_info("%s: the bucket is in region %s, not %s; using %s", what, learnt,
				be->region, learnt);
			snprintf(be->region, sizeof(be->region), "%s", learnt);
		}
		pthread_mutex_unlock(&be->mu);
		if (changed) {
			o = REGION;
			goto out;
		}
	}
	if (st >= 500 || st == 429 || transient_code(e.code)) {
		snprintf(msg, msgn, "HTTP %ld%s%s%s%s", st, *ecode ? " " : "", ecode, *emsg ? ": " : "", emsg);
		o = RETRY;
		goto out;
	}
	if (st == 404) {
		if (!strcmp(ecode, "NoSuchBucket") || !req->path)
			*code = cf_err(CF_ENOENT, "%s: bucket \"%s\" does not exist", what, be->loc.bucket);
		else
			*code = cf_err(CF_ENOENT, "%s: no such object", what);
		goto out;
	}
	if (!strcmp(ecode, "RequestTimeTooSkewed")) {
		/* Prefer the store's own account of the two times; else our
		 * signing time against the answer's Date header. */
		int64_t rt = x->sign_time, stime = x->server_date;
		bool known = (parse_s3_time(e.request_time, &rt) && parse_s3_time(e.server_time, &stime)) ||
			     x->server_date >= 0;
		if (known)
			*code = cf_err(CF_ES3, "%s: HTTP %ld RequestTimeTooSkewed: this computer's clock is %lld s %s the "
					       "store's; set the clock right (NTP): %s",
				       what, st, (long long)llabs(rt - stime), rt < stime ? "behind" : "ahead of",
				       emsg);
		else
			*code = cf_err(CF_ES3, "%s: HTTP %ld RequestTimeTooSkewed: this computer's clock differs too much "
					       "from the store's; set the clock right (NTP): %s",
				       what, st, emsg);
		goto out;
	}
	if (st == 416) {
		*code = cf_err(CF_ECORRUPT, "%s: range %s lies beyond the end of the object", what,
			       req->range ? req->range : "");
		goto out;
	}
	if (!*ecode && req->head) {
		/* HEAD answers carry no body, hence no Code: say so rather than guess. */
		*code = cf_err(st == 403 ? CF_EPERM : CF_ES3, "%s: HTTP %ld (no details in a HEAD answer)", what, st);
		goto out;
	}
	/* The two refusals a user can fix at once get a hint saying where. */
	const char *hint = !strcmp(ecode, "SignatureDoesNotMatch") ? " (is AWS_SECRET_ACCESS_KEY right?)"
			   : !strcmp(ecode, "InvalidAccessKeyId")    ? " (is AWS_ACCESS_KEY_ID right?)"
								     : "";
	*code = cf_err(st == 403 ? CF_EPERM : CF_ES3, "%s: HTTP %ld %s%s%s%s", what, st,
		       *ecode ? ecode : "(no error code)", *emsg ? ": " : "", emsg, hint);
out:
	cf_s3_error_release(&e);
	return o;
}

/* Build URL, Host and canonical URI for this attempt's region. */
static int target(struct s3_backend *be, const struct s3_req *req, const char *region,
		  struct cf_buf *url, struct cf_buf *host, struct cf_buf *uri)
{
	struct cf_buf key = CF_BUF_INIT;
	int r;
	if (be->loc.virtual_hosted)
		r = cf_buf_addf(host, "%s.s3.%s.amazonaws.com", be->loc.bucket, region);
	else
		r = cf_buf_adds(host, be->loc.host);
	if (r)
		goto out;
	if (!be->loc.virtual_hosted && (r = cf_buf_addf(uri, "/%s", be->loc.bucket)))
		goto out;
	if (req->path) {
		if ((r = cf_s3_loc_key(&be->loc, req->path, &key)) || (r = cf_buf_adds(uri, "/")) ||
		    (r = cf_sigv4_encode(uri, (char *)key.data, key.len, true)))
			goto out;
	} else if (be->loc.virtual_hosted) {
		r = cf_buf_adds(uri, "/");
	}
	if (r || (r = cf_buf_addf(url, "%s://%s%s", be->loc.scheme, (char *)host->data, (char *)uri->data)))
		goto out;
	if (req->nquery && ((r = cf_buf_adds(url, "?")) || (r = cf_sigv4_query(url, req->query, req->nquery))))
		goto out;
out:
	cf_buf_release(&key);
	return r;
}

static void backoff_sleep(double seconds)
{
	static _Thread_local uint64_t rng;
	if (!rng)
		rng = (uint64_t)cf_now_ns() ^ ((uint64_t)pthread_self() << 17) ^ 0x9e3779b97f4a7c15ULL;
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	/* Jitter in [d/2, d]: clients that failed together do not retry together. */
	double d = seconds * (0.5 + 0.5 * (double)(rng >> 11) / (double)(1ULL << 53));
	double end = cf_now_mono() + d;
	for (double now; !cf_interrupted && (now = cf_now_mono()) < end;) {
		double step = end - now < 0.1 ? end - now : 0.1;
		struct timespec ts = { 0, (long)(step * 1e9) };
		nanosleep(&ts, NULL);
	}
}

/* Configure h for one attempt.  Everything the signature covers is passed in. */
static int setup(struct s3_backend *be, CURL *c, const struct s3_req *req, struct xfer *x,
		 const char *url, struct curl_slist *hdrs, char *errbuf)
{
	CURLcode e = CURLE_OK;
	curl_easy_reset(c); /* keeps the connection and caches */
#define SET(opt, val) \
	if (!e)       \
	e = curl_easy_setopt(c, opt, val)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_HTTPHEADER, hdrs);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SHARE, be->share);
	SET(CURLOPT_PATH_AS_IS, 1L); /* the signed path is the sent path: no dot-segment squashing */
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_CONNECTTIMEOUT, be->stall_timeout < 15 ? (long)be->stall_timeout : 15L);
	/* A stalled transfer (fewer than low_speed bytes/s either way for
	 * stall_timeout seconds, waiting for the answer included) is a
	 * timeout, hence retried: a dead peer behind a NAT, a hung proxy or a
	 * store that trickles a byte now and then never makes coffer hang. */
	SET(CURLOPT_LOW_SPEED_LIMIT, be->low_speed);
	SET(CURLOPT_LOW_SPEED_TIME, (long)be->stall_timeout);
	/* A signal stops the transfer (perform() looks too, between polls). */
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, on_progress);
	SET(CURLOPT_XFERINFODATA, x);
	/* An announced body longer than the answer may be is refused before
	 * a byte of it is read (whole_body() bounds a chunked one).  Not for
	 * ranges: a store may answer those with the whole object (200). */
	if (req->max && !req->ranged && !req->stream && !req->head)
		SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
	/* Cleanup after a signal (a DELETE) gets a few seconds, not the stall
	 * timeout: the user asked coffer to stop. */
	if (cf_interrupted)
		SET(CURLOPT_TIMEOUT, 5L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (be->cacert)
		SET(CURLOPT_CAINFO, be->cacert);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, x);
	if (req->head) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (!strcmp(req->method, "PUT")) {
		SET(CURLOPT_UPLOAD, 1L);
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, x);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, x);
		SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
	} else if (!strcmp(req->method, "POST")) {
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, x);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, x);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	} else if (!strcmp(req->method, "GET")) {
		SET(CURLOPT_HTTPGET, 1L);
	} else {
		SET(CURLOPT_CUSTOMREQUEST, req->method);
	}
#undef SET
	if (e)
		return cf_err(CF_EIO, "libcurl refused an option: %s", curl_easy_strerror(e));
	return CF_OK;
}

/* Sign for now and build the header list curl will send, byte for byte the
 * headers that were signed. */
static int sign(struct s3_backend *be, const struct s3_req *req, const char *region, const char *host,
		const char *uri, const char *payload_hash, int64_t *sign_time, struct curl_slist **out)
{
	struct cf_sigv4_pair h[4];
	size_t nh = 0;
	h[nh++] = (struct cf_sigv4_pair){ "host", host };
	h[nh++] = (struct cf_sigv4_pair){ "x-amz-content-sha256", payload_hash };
	if (req->content_md5)
		h[nh++] = (struct cf_sigv4_pair){ "content-md5", req->content_md5 };
	if (req->range)
		h[nh++] = (struct cf_sigv4_pair){ "range", req->range };
	struct cf_sigv4_request sr = {
		.method = req->head ? "HEAD" : req->method,
		.uri = uri,
		.query = req->query,
		.nquery = req->nquery,
		.headers = h,
		.nheaders = nh,
		.payload_hash = payload_hash,
		.region = region,
		.service = "s3",
		.time = (int64_t)time(NULL) + cf_s3_clock_skew_for_tests,
	};
	*sign_time = sr.time;
	struct cf_sigv4_creds cr = { be->access_key, be->secret_key, be->session_token };
	struct cf_sigv4_result res = CF_SIGV4_RESULT_INIT;
	struct cf_buf line = CF_BUF_INIT;
	struct curl_slist *l = NULL, *t;
	int r = cf_sigv4_sign(&sr, &cr, &res);
	if (r)
		goto out;
#define ADD(...)                                                                        \
	do {                                                                            \
		cf_buf_reset(&line);                                                    \
		if ((r = cf_buf_addf(&line, __VA_ARGS__)))                              \
			goto out;                                                       \
		if (!(t = curl_slist_append(l, (char *)line.data))) {                   \
			r = cf_err(CF_ENOMEM, "out of memory");                         \
			goto out;                                                       \
		}                                                                       \
		l = t;                                                                  \
	} while (0)
	ADD("Host: %s", host);
	ADD("x-amz-date: %s", res.amz_date);
	ADD("x-amz-content-sha256: %s", payload_hash);
	if (be->session_token)
		ADD("x-amz-security-token: %s", be->session_token);
	if (req->range)
		ADD("Range: %s", req->range);
	if (req->content_md5)
		ADD("Content-MD5: %s", req->content_md5);
	if (!strcmp(req->method, "POST"))
		ADD("Content-Type: application/xml"); /* not curl's form encoding */
	ADD("Authorization: %s", (char *)res.authorization.data);
	/* No "Expect: 100-continue" round trip before each upload. */
	ADD("Expect:");
#undef ADD
out:
	if (r) {
		curl_slist_free_all(l);
		l = NULL;
	}
	*out = l;
	cf_buf_release(&line);
	cf_sigv4_result_release(&res);
	return r;
}

/* curl_easy_perform, but through the handle's multi handle polled every
 * POLL_MS, so that a signal stops a transfer within that time whatever
 * state it is in (resolving, connecting, waiting for an answer that does
 * not come).  CURLE_ABORTED_BY_CALLBACK when it was stopped so. */
static CURLcode perform(struct s3_handle *h, const struct s3_req *req)
{
	CURLcode res = CURLE_GOT_NOTHING;
	CURLMcode mc = curl_multi_add_handle(h->multi, h->curl);
	int running = 1, q;
	if (mc != CURLM_OK)
		return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
	while (running && mc == CURLM_OK) {
		if (cf_interrupted && interruptible(req)) {
			res = CURLE_ABORTED_BY_CALLBACK;
			goto out;
		}
		mc = curl_multi_perform(h->multi, &running);
		if (mc == CURLM_OK && running)
			mc = curl_multi_poll(h->multi, NULL, 0, POLL_MS, NULL);
	}
	if (mc != CURLM_OK) {
		res = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_RECV_ERROR;
		goto out;
	}
	for (CURLMsg *m; (m = curl_multi_info_read(h->multi, &q));)
		if (m->msg == CURLMSG_DONE && m->easy_handle == h->curl)
			res = m->data.result;
out:
	curl_multi_remove_handle(h->multi, h->curl);
	return res;
}

/* "16 MiB" */
static void human_size(uint64_t n, char *out, size_t len)
{
	if (n >= (1u << 30) && !(n % (1u << 30)))
		snprintf(out, len, "%" PRIu64 " GiB", n >> 30);
	else if (n >= (1u << 20) && !(n % (1u << 20)))
		snprintf(out, len, "%" PRIu64 " MiB", n >> 20);
	else if (n >= (1u << 10) && !(n % (1u << 10)))
		snprintf(out, len, "%" PRIu64 " KiB", n >> 10);
	else
		snprintf(out, len, "%" PRIu64 " bytes", n);
}

static int s3_do(struct s3_backend *be, struct s3_req *req)
{
	struct cf_buf local = CF_BUF_INIT, url = CF_BUF_INIT, host = CF_BUF_INIT, uri = CF_BUF_INIT;
	char payload_hash[65], reason[1200] = "", what[1024], errbuf[CURL_ERROR_SIZE];
	bool region_tried = false;
	int r = CF_OK;

	/* the caller's hash of the body (a format-2 pack's name) is not
	 * trusted blindly: the store recomputes it and refuses a mismatch
	 * (XAmzContentSHA256Mismatch), so a wrong one fails, never stores */
	if (req->body_len > 0 && !be->sign_payload)
		strcpy(payload_hash, "UNSIGNED-PAYLOAD");
	else if (req->sha256)
		cf_hex(req->sha256, 32, payload_hash);
	else if ((r = cf_sigv4_sha256_iov_hex(req->iov, req->niov, payload_hash)))
		return r;
	for (int attempt = 1;; attempt++) {
		char region[64];
		struct curl_slist *hdrs = NULL;
		struct s3_handle *h = NULL;
		struct xfer x = { .req = req, .sink = req->out ? req->out : &local, .server_date = -1,
				  .max = req->max ? req->max : ERROR_BODY_MAX };
		enum outcome o = DONE;
		struct s3_stream *sm = req->stream;
		if (sm) { /* the bytes not yet handed over */
			snprintf(sm->range, sizeof(sm->range), "bytes=%" PRIu64 "-%" PRIu64, sm->off + sm->done,
				 sm->off + sm->len - 1);
			req->range = sm->range;
		}

		describe(be, req, what, sizeof(what));
		if (cf_interrupted && interruptible(req)) {
			r = cf_err(CF_EINTR, "%s: interrupted", what);
			break;
		}
		pthread_mutex_lock(&be->mu);
		memcpy(region, be->region, sizeof(region));
		pthread_mutex_unlock(&be->mu);
		cf_buf_reset(&url);
		cf_buf_reset(&host);
		cf_buf_reset(&uri);
		cf_buf_reset(x.sink);
		errbuf[0] = 0;
		if ((r = target(be, req, region, &url, &host, &uri)) ||
		    (r = sign(be, req, region, (char *)host.data, (char *)uri.data, payload_hash, &x.sign_time,
			      &hdrs)) ||
		    (r = handle_get(be, &h)))
			goto attempt_out;
		if ((r = setup(be, h->curl, req, &x, (char *)url.data, hdrs, errbuf)))
			goto attempt_out;
		x.curl = h->curl;
		CURLcode cc = perform(h, req);
		req->status = 0;
		curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &req->status);
		curl_off_t cl = -1;
		curl_easy_getinfo(h->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		req->content_length = cl;
		if (cc == CURLE_WRITE_ERROR && (x.cut || (x.enough && !sm)))
			cc = CURLE_OK; /* stopped on purpose: all that is needed is in */
		char cap[32];
		human_size(x.max, cap, sizeof(cap));
		if (sm && sm->rc) {
			r = sm->rc; /* the consumer's own error */
		} else if (x.oom) {
			r = cf_err(CF_ENOMEM, "%s: out of memory for the answer", what);
		} else if (x.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
			/* not a retry: the store would send the same again */
			if (cc == CURLE_FILESIZE_EXCEEDED && cl >= 0)
				r = cf_err(CF_ECORRUPT, "%s: the answer (HTTP %ld) announces %" PRId64 " bytes, over the "
							"%s limit for it; not read", what, req->status, (int64_t)cl, cap);
			else if (cc == CURLE_FILESIZE_EXCEEDED)
				r = cf_err(CF_ECORRUPT, "%s: the answer (HTTP %ld) announces more than the %s limit for "
							"it; not read", what, req->status, cap);
			else
				r = cf_err(CF_ECORRUPT, "%s: the answer (HTTP %ld) exceeds the %s limit for it; not "
							"read further", what, req->status, cap);
		} else if (cc == CURLE_ABORTED_BY_CALLBACK && cf_interrupted) {
			r = cf_err(CF_EINTR, "%s: interrupted", what);
		} else if (sm && cc != CURLE_OK && x.body_kind == 1 && sm->done == sm->len) {
			o = DONE; /* everything wanted arrived before the transfer broke */
		} else if (cc != CURLE_OK) {
			const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
			if (transient_curl(cc)) {
				snprintf(reason, sizeof(reason), "%s", detail);
				o = RETRY;
			} else if (cc == CURLE_PEER_FAILED_VERIFICATION && !be->cacert) {
				r = cf_err(CF_EIO, "%s: %s (a store with a private CA: give its certificate "
						   "with --cacert FILE or COFFER_CACERT)", what, detail);
			} else {
				r = cf_err(CF_EIO, "%s: %s", what, detail);
			}
		} else if (req->status < 200 || req->status > 299) {
			o = classify_http(be, req, &x, region_tried, &r, reason, sizeof(reason));
		}
attempt_out:
		if (h)
			handle_put(be, h);
		curl_slist_free_all(hdrs);
		if (r || o == DONE)
			break;
		if (o == REGION) {
			region_tried = true;
			attempt--;
			continue;
		}
		if (attempt >= be->max_attempts) {
			r = cf_err(CF_EAGAIN, "%s: giving up after %d attempts: %s", what, attempt, reason);
			break;
		}
		double d = BACKOFF_BASE * (double)(1ULL << (attempt - 1 < 20 ? attempt - 1 : 20));
		d = d < BACKOFF_CAP ? d : BACKOFF_CAP;
		cf_info("%s: %s; attempt %d of %d, retrying in about %.1f s", what, reason, attempt,
			be->max_attempts, d);
		backoff_sleep(d);
		if (cf_interrupted) {
			r = cf_err(CF_EINTR, "%s: interrupted while waiting to retry", what);
			break;
		}
	}
	if (r && req->out)
		cf_buf_reset(req->out);
	cf_buf_release(&local);
	cf_buf_release(&url);
	cf_buf_release(&host);
	cf_buf_release(&uri);
	return r;
}

/* ---- the vtable ---- */

static struct s3_backend *S3(struct cf_backend *be)
{
	return (struct s3_backend *)be;
}

static int s3_put_iov(struct cf_backend *b, const char *path, const struct iovec *iov, int n,
		      const uint8_t *sha256)
{
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	struct s3_req req = { .method = "PUT", .path = path, .iov = iov, .niov = n, .body_len = len,
			      .sha256 = sha256 };
	return s3_do(S3(b), &req);
}

static int s3_put(struct cf_backend *b, const char *path, const void *data, size_t len)
{
	struct iovec v = { (void *)data, len };
	return s3_put_iov(b, path, &v, 1, NULL);
}

static int s3_get(struct cf_backend *b, const char *path, struct cf_buf *out)
{
	struct s3_req req = { .method = "GET", .path = path, .out = out, .max = cf_be_object_max(path) };
	return s3_do(S3(b), &req);
}

static int s3_stat(struct cf_backend *b, const char *path, uint64_t *size)
{
	struct s3_req req = { .method = "HEAD", .path = path, .head = true };
	int r = s3_do(S3(b), &req);
	if (r == CF_EPERM || r == CF_ES3) {
		/* A HEAD refusal has no body: a one-byte GET fetches the store's
		 * Code and Message so the user learns why. */
		struct cf_buf tmp = CF_BUF_INIT;
		struct s3_req get = { .method = "GET", .path = path, .range = "bytes=0-0", .out = &tmp,
				      .max = 1, .ranged = true };
		int r2 = s3_do(S3(b), &get);
		cf_buf_release(&tmp);
		if (r2 != CF_OK && r2 != CF_ECORRUPT)
			r = r2;
	}
	if (r)
		return r;
	if (req.content_length < 0)
		return cf_err(CF_ES3, "S3 HEAD %s/%s: no Content-Length in the answer", b->location, path);
	if (size)
		*size = (uint64_t)req.content_length;
	return CF_OK;
}

static int s3_get_range(struct cf_backend *b, const char *path, uint64_t off, size_t len,
			struct cf_buf *out)
{
	char range[64];
	if (len == 0) {
		uint64_t size;
		cf_buf_reset(out);
		int r = s3_stat(b, path, &size);
		if (!r && off > size)
			r = cf_err(CF_ECORRUPT, "S3 %s/%s: offset %" PRIu64 " beyond its end", b->location, path, off);
		return r;
	}
	if (off > UINT64_MAX - len)
		return cf_err(CF_EINVAL, "S3 %s/%s: range overflows", b->location, path);
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
	/* A store that ignores the range answers 200 with the whole object:
	 * on_body keeps only the range of it, and stops there. */
	struct s3_req req = { .method = "GET", .path = path, .range = range, .out = out, .max = len,
			      .ranged = true, .range_off = off };
	int r = s3_do(S3(b), &req);
	if (r)
		return r;
	if (out->len != len) {
		size_t got = out->len;
		cf_buf_reset(out);
		return cf_err(CF_ECORRUPT, "S3 %s/%s: asked for %zu bytes at %" PRIu64 ", got %zu (object too short)",
			      b->location, path, len, off, got);
	}
	return CF_OK;
}

static int s3_get_range_stream(struct cf_backend *b, const char *path, uint64_t off, size_t len,
			       cf_stream_fn fn, void *ctx)
{
	if (len == 0 || off > UINT64_MAX - len)
		return cf_err(CF_EINVAL, "S3 %s/%s: bad range of %zu bytes at %" PRIu64, b->location, path, len, off);
	struct s3_stream sm = { .fn = fn, .ctx = ctx, .off = off, .len = len };
	struct s3_req req = { .method = "GET", .path = path, .stream = &sm };
	int r = s3_do(S3(b), &req);
	if (!r && sm.done != len)
		r = cf_err(CF_ECORRUPT, "S3 %s/%s: asked for %zu bytes at %" PRIu64 ", got %" PRIu64
				" (object too short)", b->location, path, len, off, sm.done);
	return r;
}

static int s3_remove(struct cf_backend *b, const char *path)
{
	struct s3_req req = { .method = "DELETE", .path = path };
	int r = s3_do(S3(b), &req);
	if (r == CF_ENOENT) {
		cf_err_clear();
		r = CF_OK;
	}
	return r;
}

/* ---- DeleteObjects ---- */

/* One batch of at most DELETE_MAX_KEYS paths and what became of them. */
struct del_batch {
	const char *const *paths;
	char **keys;       /* the object keys of paths */
	bool *retry;       /* failed transiently in the last round */
	size_t n;
	size_t nretry;
	size_t failed;     /* failed for good, over the whole call */
	int first;         /* code of the first permanent failure */
	char first_msg[1024];
};

static void note_failure(struct del_batch *d, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note_failure(struct del_batch *d, int code, const char *fmt, ...)
{
	if (!d->failed++) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(d->first_msg, sizeof(d->first_msg), fmt, ap);
		va_end(ap);
		d->first = code;
	}
}

static int on_delete_error(const char *key, const char *code, const char *message, void *ctx)
{
	struct del_batch *d = ctx;
	size_t i;
	for (i = 0; i < d->n && strcmp(d->keys[i], key); i++)
		;
	if (i == d->n)
		return cf_err(CF_ECORRUPT, "S3 DeleteObjects answer names a key not asked for: \"%.200s\"", key);
	if (!strcmp(code, "NoSuchKey"))
		return 0; /* gone already: what was wanted */
	if (transient_code(code)) {
		if (!d->retry[i])
			d->nretry++;
		d->retry[i] = true;
		return 0;
	}
	note_failure(d, !strcmp(code, "AccessDenied") ? CF_EPERM : CF_ES3, "%s: %s%s%s", d->paths[i],
		     *code ? code : "(no error code)", *message ? ": " : "", message);
	return 0;
}

/* base64 of the body's MD5, which S3 demands on DeleteObjects so that a
 * damaged list cannot delete the wrong objects. */
static int content_md5(const struct cf_buf *body, char out[25])
{
	unsigned char md[16];
	unsigned int mdlen = 0;
	if (!EVP_Digest(body->data, body->len, md, &mdlen, EVP_md5(), NULL) || mdlen != 16)
		return cf_err(CF_ECRYPTO, "MD5 failed (libcrypto)");
	EVP_EncodeBlock((unsigned char *)out, md, 16);
	return CF_OK;
}

/* Delete one batch: one request, then the keys that failed transiently
 * again (with backoff) until they are gone or the attempts are spent.
 * Returns non-zero only when the caller should not go on to more batches
 * (out of memory, interrupted); failures are counted in d. */
static int delete_batch(struct s3_backend *be, struct del_batch *d)
{
	struct cf_buf body = CF_BUF_INIT, answer = CF_BUF_INIT;
	const char **sel = calloc(d->n, sizeof(*sel));
	static const struct cf_sigv4_pair q[] = { { "delete", "" } };
	int r = CF_OK;
	if (!sel)
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < d->n; i++)
		d->retry[i] = true;
	d->nretry = d->n;
	for (int round = 1; d->nretry; round++) {
		size_t k = 0;
		char md5[25];
		for (size_t i = 0; i < d->n; i++)
			if (d->retry[i])
				sel[k++] = d->keys[i];
		if (round > be->max_attempts) {
			for (size_t i = 0; i < d->n; i++)
				if (d->retry[i])
					note_failure(d, CF_EAGAIN, "%s: still refused after %d attempts (transient error)",
						     d->paths[i], be->max_attempts);
			break;
		}
		if (round > 1) {
			double w = BACKOFF_BASE * (double)(1ULL << (round - 2 < 20 ? round - 2 : 20));
			backoff_sleep(w < BACKOFF_CAP ? w : BACKOFF_CAP);
			if (cf_interrupted) {
				r = cf_err(CF_EINTR, "S3 DeleteObjects %s: interrupted", be->base.location);
				goto out;
			}
		}
		cf_buf_reset(&body);
		if ((r = cf_s3_delete_body(&body, sel, k)) || (r = content_md5(&body, md5)))
			goto out;
		struct iovec v = { body.data, body.len };
		struct s3_req req = { .method = "POST", .query = q, .nquery = 1, .iov = &v, .niov = 1,
				      .body_len = body.len, .content_md5 = md5, .out = &answer, .max = ANSWER_MAX };
		int rq = s3_do(be, &req);
		if (rq == CF_ENOMEM || rq == CF_EINTR) {
			r = rq;
			goto out;
		}
		if (rq) {
			/* The whole request was refused: every key of it failed alike. */
			char msg[1024];
			snprintf(msg, sizeof(msg), "%s", cf_errmsg(rq));
			for (size_t i = 0; i < d->n; i++)
				if (d->retry[i])
					note_failure(d, rq, "%s", msg);
			break;
		}
		for (size_t i = 0; i < d->n; i++)
			d->retry[i] = false;
		d->nretry = 0;
		int pr = cf_s3_delete_parse((char *)answer.data, answer.len, on_delete_error, d);
		if (pr == CF_ENOMEM) {
			r = pr;
			goto out;
		}
		if (pr) {
			/* Some stores answer 200 with an <Error> document. */
			struct cf_s3_error e = { 0 };
			char msg[1024];
			bool again = !cf_s3_error_parse((char *)answer.data, answer.len, &e) && transient_code(e.code);
			snprintf(msg, sizeof(msg), "S3 DeleteObjects %s: %s%s%s", be->base.location,
				 e.code ? e.code : cf_errmsg(pr), e.message ? ": " : "", e.message ? e.message : "");
			cf_s3_error_release(&e);
			for (size_t i = 0; i < d->n; i++)
				d->retry[i] = false; /* whatever was read before the damage */
			d->nretry = 0;
			for (size_t j = 0; j < k; j++) {
				size_t i;
				for (i = 0; i < d->n && d->keys[i] != sel[j]; i++)
					;
				if (again) {
					d->retry[i] = true;
					d->nretry++;
				} else {
					note_failure(d, CF_ES3, "%s", msg);
				}
			}
		}
		if (d->nretry)
			cf_info("S3 DeleteObjects %s: %zu of %zu objects refused for now; attempt %d of %d",
				be->base.location, d->nretry, k, round, be->max_attempts);
	}
out:
	free(sel);
	cf_buf_release(&body);
	cf_buf_release(&answer);
	return r;
}

static int s3_remove_many(struct cf_backend *b, const char *const *paths, size_t n)
{
	struct s3_backend *be = S3(b);
	struct del_batch d = { 0 };
	struct cf_buf key = CF_BUF_INIT;
	size_t cap = n < DELETE_MAX_KEYS ? n : DELETE_MAX_KEYS;
	int r = CF_OK;
	d.keys = calloc(cap ? cap : 1, sizeof(*d.keys));
	d.retry = calloc(cap ? cap : 1, sizeof(*d.retry));
	if (!d.keys || !d.retry) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t at = 0; at < n; at += d.n) {
		d.paths = paths + at;
		d.n = n - at < cap ? n - at : cap;
		for (size_t i = 0; i < d.n; i++) {
			cf_buf_reset(&key);
			free(d.keys[i]);
			d.keys[i] = NULL;
			if ((r = cf_s3_loc_key(&be->loc, d.paths[i], &key)))
				goto out;
			if (!(d.keys[i] = strdup((char *)key.data))) {
				r = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
		}
		if ((r = delete_batch(be, &d))) {
			d.failed += n - at; /* this batch and the rest were not (all) done */
			goto out;
		}
	}
out:
	if (!r && d.failed)
		r = cf_err(d.first, "S3 DeleteObjects %s: %zu of %zu objects not removed; the first: %s",
			   b->location, d.failed, n, d.first_msg);
	else if (r && r != CF_ENOMEM)
		r = cf_err_prefix(r, "S3 DeleteObjects %s: stopped, up to %zu of %zu objects not removed",
				  b->location, d.failed, n);
	for (size_t i = 0; d.keys && i < cap; i++)
		free(d.keys[i]);
	free(d.keys);
	free(d.retry);
	cf_buf_release(&key);
	return r;
}

/* ---- the listing's guards ----
 *
 * A listing is a loop the store drives: it says when there is more and how
 * to ask for it.  A store that repeats a continuation token, or keeps
 * answering "more" with nothing new, would keep coffer listing forever; one
 * that sends a key twice would have every caller see it twice.  So each
 * listing keeps the set of names it handed over (16 bytes each: a 128-bit
 * hash, not the name) and of the tokens it was given, merges repeated
 * names, and stops with an error naming the directory at a token seen
 * before, at LIST_IDLE_PAGES "more" pages in a row with no new name, or
 * past the pages and objects a repository can have under one directory. */

struct hset {
	uint64_t (*slot)[2]; /* {0, 0}: empty; slot[i][0] is odd otherwise */
	size_t n, cap;       /* cap: a power of two, or 0 */
};

static uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

/* Two independent 64-bit lanes (FNV-1a, and a multiply-xorshift one). */
static void hash128(const char *p, size_t len, uint64_t h[2])
{
	uint64_t a = 0xcbf29ce484222325ULL ^ len, b = 0x9e3779b97f4a7c15ULL + len;
	for (size_t i = 0; i < len; i++) {
		a = (a ^ (uint8_t)p[i]) * 0x100000001b3ULL;
		b = (b + (uint8_t)p[i]) * 0xc6a4a7935bd1e995ULL;
		b ^= b >> 29;
	}
	h[0] = fmix64(a) | 1;
	h[1] = fmix64(b);
}

/* Add p[0..len) to the set; *added false when it was there.  CF_OK or
 * CF_ENOMEM. */
static int hset_add(struct hset *hs, const char *p, size_t len, bool *added)
{
	uint64_t h[2];
	hash128(p, len, h);
	if (2 * (hs->n + 1) > hs->cap) { /* load at most 1/2 */
		size_t cap = hs->cap ? 2 * hs->cap : 64;
		uint64_t(*slot)[2] = calloc(cap, sizeof(*slot));
		if (!slot)
			return cf_err(CF_ENOMEM, "out of memory (listing)");
		for (size_t i = 0; i < hs->cap; i++) {
			if (!hs->slot[i][0])
				continue;
			size_t j = (size_t)hs->slot[i][1] & (cap - 1);
			while (slot[j][0])
				j = (j + 1) & (cap - 1);
			slot[j][0] = hs->slot[i][0];
			slot[j][1] = hs->slot[i][1];
		}
		free(hs->slot);
		hs->slot = slot;
		hs->cap = cap;
	}
	size_t j = (size_t)h[1] & (hs->cap - 1);
	for (; hs->slot[j][0]; j = (j + 1) & (hs->cap - 1))
		if (hs->slot[j][0] == h[0] && hs->slot[j][1] == h[1]) {
			*added = false;
			return CF_OK;
		}
	hs->slot[j][0] = h[0];
	hs->slot[j][1] = h[1];
	hs->n++;
	*added = true;
	return CF_OK;
}

static void hset_release(struct hset *hs)
{
	free(hs->slot);
	hs->slot = NULL;
	hs->n = hs->cap = 0;
}

struct list_ctx {
	const char *prefix; /* full key prefix, "pfx/data/" */
	size_t prefix_len;
	cf_list_fn fn;
	void *ctx;
	const char *location;
	cf_list_mtime_fn mfn; /* instead of fn: list_mtime */
	const char *dir;    /* "snapshots", for messages */
	struct hset names;  /* handed over so far */
	size_t fresh;       /* new names on the current page */
	size_t dups;        /* repeated names merged, over the listing */
};

/* Whether name is new to this listing (then it is counted): CF_OK with
 * *is_new false for one handed over before, CF_ES3 past LIST_MAX_OBJECTS,
 * CF_ENOMEM. */
static int list_new_name(struct list_ctx *lc, const char *name, bool *is_new)
{
	int r = hset_add(&lc->names, name, strlen(name), is_new);
	if (r)
		return r;
	if (!*is_new) {
		lc->dups++;
		return CF_OK;
	}
	if (lc->names.n > LIST_MAX_OBJECTS)
		return cf_err(CF_ES3, "S3 listing of %s/%s/: more than %d objects, more than a repository holds "
				      "there; the store's listing does not end", lc->location, lc->dir, LIST_MAX_OBJECTS);
	lc->fresh++;
	return CF_OK;
}

/* After page number `pages` said there is more (token next): CF_OK to go
 * on, or CF_ES3 naming the directory when the listing would not end. */
static int list_next_page(struct list_ctx *lc, struct hset *tokens, const char *token, int pages,
			  int max_pages, int *idle)
{
	bool added;
	int r = hset_add(tokens, token, strlen(token), &added);
	if (r)
		return r;
	if (!added)
		return cf_err(CF_ES3, "S3 listing of %s/%s/: page %d repeats a continuation token the store sent "
				      "before; the listing would go round in circles", lc->location, lc->dir, pages);
	*idle = lc->fresh ? 0 : *idle + 1;
	if (*idle >= LIST_IDLE_PAGES)
		return cf_err(CF_ES3, "S3 listing of %s/%s/: %d pages in a row brought no new object, yet the store "
				      "says there is more; the listing does not end", lc->location, lc->dir, *idle);
	if (pages >= max_pages)
		return cf_err(CF_ES3, "S3 listing of %s/%s/: more than %d pages, more than a repository fills "
				      "there; the store's listing does not end", lc->location, lc->dir, max_pages);
	return CF_OK;
}


static int list_item(const char *key, uint64_t size, int64_t mtime_ns, void *ud)
{
	struct list_ctx *lc = ud;
	if (strncmp(key, lc->prefix, lc->prefix_len))
		return cf_err(CF_ECORRUPT, "S3 listing of %s/%s returned a foreign key \"%s\"", lc->location,
			      lc->prefix, key);
	const char *name = strrchr(key + lc->prefix_len, '/');
	name = name ? name + 1 : key + lc->prefix_len;
	if (!*name) /* a "directory marker" some tools create */
		return 0;
	bool is_new;
	int r = list_new_name(lc, name, &is_new);
	if (r || !is_new)
		return r;
	return lc->mfn ? lc->mfn(name, size, mtime_ns, lc->ctx) : lc->fn(name, size, lc->ctx);
}

/* list and list_mtime (LastModified from the same ListObjectsV2 pages) */
static int list_any(struct cf_backend *b, const char *dir, cf_list_fn fn, cf_list_mtime_fn mfn, void *ctx)
{
	struct s3_backend *be = S3(b);
	struct cf_buf prefix = CF_BUF_INIT, page = CF_BUF_INIT, dirslash = CF_BUF_INIT;
	struct hset tokens = { 0 };
	char *token = NULL, maxkeys[16];
	int r, pages = 0, idle = 0;
	int max_pages = LIST_MAX_OBJECTS / be->list_max_keys;
	struct list_ctx lc = { .fn = fn, .ctx = ctx, .location = b->location, .mfn = mfn, .dir = dir };
	if ((r = cf_buf_addf(&dirslash, "%s/", dir)) || (r = cf_s3_loc_key(&be->loc, (char *)dirslash.data, &prefix)))
		goto out;
	snprintf(maxkeys, sizeof(maxkeys), "%d", be->list_max_keys);
	lc.prefix = (char *)prefix.data;
	lc.prefix_len = prefix.len;
	do {
		struct cf_sigv4_pair q[4] = {
			{ "list-type", "2" },
			{ "prefix", (char *)prefix.data },
			{ "max-keys", maxkeys },
			{ "continuation-token", token },
		};
		struct s3_req req = { .method = "GET", .query = q, .nquery = token ? 4 : 3, .out = &page,
				      .max = LIST_PAGE_MAX };
		struct cf_s3_list_page pg;
		if ((r = s3_do(be, &req))) {
			if (r == CF_ECORRUPT) /* a page over LIST_PAGE_MAX */
				r = cf_err_prefix(r, "S3 listing of %s/%s/", b->location, dir);
			goto out;
		}
		lc.fresh = 0;
		r = cf_s3_list_parse_mtime((char *)page.data, page.len, list_item, &lc, &pg);
		free(token);
		token = pg.next_token;
		if (r)
			goto out;
		cf_debug("S3 list %s/%s: page %d%s", b->location, dir, ++pages, pg.truncated ? ", more" : "");
		if (!pg.truncated) {
			free(token);
			token = NULL;
		} else if ((r = list_next_page(&lc, &tokens, token, pages, max_pages, &idle))) {
			goto out;
		}
	} while (token);
	if (lc.dups)
		cf_info("S3 listing of %s/%s/: the store named %zu objects more than once (merged)", b->location,
			dir, lc.dups);
out:
	hset_release(&lc.names);
	hset_release(&tokens);
	free(token);
	cf_buf_release(&prefix);
	cf_buf_release(&page);
	cf_buf_release(&dirslash);
	return r;
}

static int s3_list(struct cf_backend *b, const char *dir, cf_list_fn fn, void *ctx)
{
	return list_any(b, dir, fn, NULL, ctx);
}

static int s3_list_mtime(struct cf_backend *b, const char *dir, cf_list_mtime_fn fn, void *ctx)
{
	return list_any(b, dir, NULL, fn, ctx);
}

static int s3_create(struct cf_backend *b)
{
	struct s3_backend *be = S3(b);
	struct s3_req head = { .method = "HEAD", .head = true };
	int r = s3_do(be, &head);
	if (r == CF_EPERM || r == CF_ES3) {
		/* A HEAD refusal carries no reason: ask again with a one-key
		 * listing, whose answer names it (NoSuchBucket, AccessDenied). */
		struct cf_buf tmp = CF_BUF_INIT;
		static const struct cf_sigv4_pair q[] = { { "list-type", "2" }, { "max-keys", "1" } };
		struct s3_req get = { .method = "GET", .query = q, .nquery = 2, .out = &tmp, .max = LIST_PAGE_MAX };
		r = s3_do(be, &get);
		cf_buf_release(&tmp);
		if (r == CF_EPERM && strstr(cf_errmsg(r), " AccessDenied"))
			return cf_err_prefix(r, "bucket \"%s\" cannot be used with these credentials (it may be "
					     "missing, and they may not create it)", be->loc.bucket);
	}
	if (r == CF_ENOENT) {
		char body[512] = "";
		char region[64];
		pthread_mutex_lock(&be->mu);
		memcpy(region, be->region, sizeof(region));
		pthread_mutex_unlock(&be->mu);
		if (strcmp(region, "us-east-1"))
			snprintf(body, sizeof(body),
				 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
				 "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>", region);
		struct iovec v = { body, strlen(body) };
		struct s3_req put = { .method = "PUT", .iov = &v, .niov = 1, .body_len = v.iov_len };
		r = s3_do(be, &put);
		if (r && put.status == 409 && strstr(cf_errmsg(r), "BucketAlreadyOwnedByYou"))
			r = CF_OK; /* created meanwhile by us */
		if (r)
			return cf_err_prefix(r, "bucket \"%s\" is missing and could not be created", be->loc.bucket);
		cf_info("created bucket %s", be->loc.bucket);
	} else if (r) {
		return r;
	}
	uint64_t size;
	r = s3_stat(b, "config", &size);
	if (r == CF_OK)
		return cf_err(CF_EEXIST, "a repository already exists at %s (it has a config object)", b->location);
	if (r == CF_ENOENT) {
		cf_err_clear();
		return CF_OK;
	}
	return r;
}

static void s3_free(struct cf_backend *b)
{
	struct s3_backend *be = S3(b);
	if (!be)
		return;
	while (be->idle) {
		struct s3_handle *h = be->idle;
		be->idle = h->next;
		curl_multi_cleanup(h->multi);
		curl_easy_cleanup(h->curl);
		free(h);
	}
	if (be->share)
		curl_share_cleanup(be->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&be->share_mu[i]);
	pthread_mutex_destroy(&be->mu);
	pthread_cond_destroy(&be->cond);
	cf_s3_loc_release(&be->loc);
	wipe_free(be->access_key);
	wipe_free(be->secret_key);
	wipe_free(be->session_token);
	free(be->cacert);
	free(be->base.location);
	free(be);
}

static const struct cf_backend_ops s3_ops = {
	.name = "s3",
	.create = s3_create,
	.put = s3_put,
	.put_iov = s3_put_iov,
	.get = s3_get,
	.get_range = s3_get_range,
	.get_range_stream = s3_get_range_stream,
	.stat = s3_stat,
	.list = s3_list,
	.list_mtime = s3_list_mtime,
	.remove = s3_remove,
	.remove_many = s3_remove_many,
	.free = s3_free,
};

int cf_backend_s3_new(const char *url, const struct cf_backend_opts *opts, struct cf_backend **out)
{
	struct s3_backend *be;
	int r;
	*out = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return cf_err(CF_EIO, "libcurl initialisation failed: %s", curl_easy_strerror(curl_init_rc));
	if (!(be = calloc(1, sizeof(*be))))
		return cf_err(CF_ENOMEM, "out of memory");
	be->base.ops = &s3_ops;
	be->base.caps = CF_BE_REMOTE | CF_BE_STREAMS;
	pthread_mutex_init(&be->mu, NULL);
	pthread_cond_init(&be->cond, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&be->share_mu[i], NULL);
	if (!(be->base.location = malloc(strlen(url ? url : "") + 4))) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto fail;
	}
	sprintf(be->base.location, "s3:%s", url ? url : "");
	if ((r = cf_s3_loc_parse(url, &be->loc)))
		goto fail;

	be->connections = opts && opts->connections > 0 ? opts->connections : DEFAULT_CONNECTIONS;
	be->max_attempts = opts && opts->max_attempts > 0 ? opts->max_attempts : DEFAULT_ATTEMPTS;
	be->sign_payload = strcmp(be->loc.scheme, "https") != 0 || (opts && opts->sign_payload);
	if (opts && opts->cacert && !(be->cacert = strdup(opts->cacert))) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto fail;
	}
	be->list_max_keys = LIST_MAX_KEYS;
	const char *mk = getenv("COFFER_S3_LIST_MAX_KEYS"); /* tests force small pages */
	if (mk && atoi(mk) > 0 && atoi(mk) < LIST_MAX_KEYS)
		be->list_max_keys = atoi(mk);
	be->stall_timeout = STALL_TIMEOUT;
	const char *st = getenv("COFFER_S3_STALL_TIMEOUT"); /* tests provoke stalls */
	if (st && atoi(st) > 0 && atoi(st) < 3600)
		be->stall_timeout = atoi(st);
	be->low_speed = LOW_SPEED;
	/* Tests only: "BYTES/SECONDS", the rate floor and its window, so that
	 * a trickling store is given up on in seconds rather than minutes. */
	const char *ls = getenv("COFFER_TEST_S3_LOW_SPEED");
	if (ls && *ls) {
		long bytes = 0, secs = 0;
		char extra;
		if (sscanf(ls, "%ld/%ld%c", &bytes, &secs, &extra) != 2 || bytes < 1 || secs < 1 || secs >= 3600) {
			r = cf_err(CF_EINVAL, "COFFER_TEST_S3_LOW_SPEED=\"%.40s\": want BYTES/SECONDS, e.g. 1024/5", ls);
			goto fail;
		}
		be->low_speed = bytes;
		be->stall_timeout = (int)secs;
	}
	const char *region = getenv("AWS_REGION");
	if (!region || !*region)
		region = getenv("AWS_DEFAULT_REGION");
	if (!region || !*region)
		region = "us-east-1";
	if (strlen(region) >= sizeof(be->region)) {
		r = cf_err(CF_EINVAL, "AWS region \"%.80s\" is too long", region);
		goto fail;
	}
	snprintf(be->region, sizeof(be->region), "%s", region);

	if ((r = env_secret("AWS_ACCESS_KEY_ID", &be->access_key)) ||
	    (r = env_secret("AWS_SECRET_ACCESS_KEY", &be->secret_key)) ||
	    (r = env_secret("AWS_SESSION_TOKEN", &be->session_token)))
		goto fail;
	if (!be->access_key || !be->secret_key) {
		r = cf_err(CF_EINVAL, "no S3 credentials for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
				      "(or AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE)",
			   be->base.location);
		goto fail;
	}

	if (!(be->share = curl_share_init())) {
		r = cf_err(CF_ENOMEM, "out of memory (curl share)");
		goto fail;
	}
	if (curl_share_setopt(be->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(be->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(be->share, CURLSHOPT_USERDATA, be) ||
	    curl_share_setopt(be->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(be->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)) {
		r = cf_err(CF_EIO, "libcurl share setup failed");
		goto fail;
	}
	*out = &be->base;
	return CF_OK;
fail:
	s3_free(&be->base);
	return r;
}
