/*
 * s3_request.c - one logical S3 request, run by s3_do(): the machinery
 * under every operation of the S3 backend (s3.c, s3_delete.c, s3_list.c).
 *
 * s3_do() checks a curl easy handle out of a bounded pool (so
 * opts->connections bounds the requests in flight, and each handle keeps
 * its connection alive for the next call), signs the request afresh for
 * every attempt (the signature carries the time), and classifies the
 * outcome: success, a transient failure that is retried with exponential
 * backoff and jitter, or a permanent refusal that is reported at once with
 * the store's own Code and Message.  A wrong region named by the store is
 * corrected once and the request sent again.  A body is a list of pieces
 * (put_iov), so a pack goes out without being copied into one buffer first.
 *
 * No transfer may hang: connecting is bounded, and a transfer that moves
 * fewer than low_speed (1 KiB) bytes a second either way for stall_timeout
 * seconds is abandoned and retried; SIGINT/SIGTERM stop a transfer within
 * POLL_MS (perform(), which drives the handle's curl multi) and no retry
 * follows.  No answer may exhaust memory: each body is held to a limit
 * derived from the request (cf_be_object_max for a whole object, the length
 * for a range, LIST_PAGE_MAX for a listing page, ERROR_BODY_MAX for an
 * error), and over it is an error naming the object and the limit.
 */
#include "store/backend.h"
#include "s3/s3_int.h"
#include "s3/sigv4.h"
#include "common/error.h"
#include "common/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int64_t cf_s3_clock_skew_for_tests;

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

/* ---- the handle pool ---- */

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
	return cf_interrupt_pending() && interruptible(x->req); /* non-zero: CURLE_ABORTED_BY_CALLBACK */
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

bool s3_transient_code(const char *code)
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
	if (st >= 500 || st == 429 || s3_transient_code(e.code)) {
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

void s3_backoff_sleep(double seconds)
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
	for (double now; !cf_interrupt_pending() && (now = cf_now_mono()) < end;) {
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
	if (cf_interrupt_pending())
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
		if (cf_interrupt_pending() && interruptible(req)) {
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

int s3_do(struct s3_backend *be, struct s3_req *req)
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
		if (cf_interrupt_pending() && interruptible(req)) {
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
		} else if (cc == CURLE_ABORTED_BY_CALLBACK && cf_interrupt_pending()) {
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
		s3_backoff_sleep(d);
		if (cf_interrupt_pending()) {
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
