/*
 * webhook.c - Standard Webhooks signatures and the signed POST (over
 * agent/http.h's transport).
 */
#include "agent/webhook.h"
#include "agent/http.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The next space-separated word of *p (skipping spaces) as [*w, *w + *len);
 * false at the end. */
static bool next_word(const char **p, const char **w, size_t *len)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
	if (!**p)
		return false;
	*w = *p;
	while (**p && **p != ' ' && **p != '\t')
		(*p)++;
	*len = (size_t)(*p - *w);
	return true;
}

/* The key of one secret word (its "whsec_" prefix optional), into key. */
static int decode_key(const char *w, size_t len, struct cf_buf *key)
{
	if (len >= 6 && !strncmp(w, "whsec_", 6)) {
		w += 6;
		len -= 6;
	}
	return cf_unbase64(w, len, key);
}

int cf_webhook_check_secret(const char *key, const char *secret)
{
	const char *p = secret, *w;
	size_t len, count = 0;
	int r = CF_OK;

	while (!r && next_word(&p, &w, &len)) {
		struct cf_buf b = CF_BUF_INIT;
		r = decode_key(w, len, &b);
		size_t n = b.len;
		if (b.data)
			explicit_bzero(b.data, b.cap);
		cf_buf_release(&b);
		count++;
		if (r == CF_ENOMEM)
			break;
		/* never quote the secret itself */
		if (r)
			r = cf_err(CF_EINVAL, "%s: secret %zu is not a Standard Webhooks secret (\"whsec_\" followed by "
					      "base64)", key, count);
		else if (n < CF_WEBHOOK_KEY_MIN || n > CF_WEBHOOK_KEY_MAX)
			r = cf_err(CF_EINVAL, "%s: secret %zu is %zu bytes; Standard Webhooks secrets are %d to %d random "
					      "bytes (make one with: echo whsec_$(head -c 32 /dev/urandom | base64))",
				   key, count, n, CF_WEBHOOK_KEY_MIN, CF_WEBHOOK_KEY_MAX);
	}
	if (!r && !count)
		r = cf_err(CF_EINVAL, "%s: empty", key);
	return r;
}

int cf_webhook_sign(const char *secret, const char *msg_id, int64_t timestamp,
		    const void *body, size_t n, struct cf_buf *out)
{
	struct cf_buf key = CF_BUF_INIT, msg = CF_BUF_INIT;
	uint8_t mac[CF_HMAC_SHA256_LEN];
	const char *p = secret, *w;
	size_t len, count = 0;
	int r;

	if ((r = cf_buf_addf(&msg, "%s.%" PRId64 ".", msg_id, timestamp)) != CF_OK ||
	    (r = cf_buf_add(&msg, body, n)) != CF_OK)
		goto out;
	while (next_word(&p, &w, &len)) {
		if (key.data)
			explicit_bzero(key.data, key.cap);
		cf_buf_reset(&key);
		if ((r = decode_key(w, len, &key)) != CF_OK) {
			if (r != CF_ENOMEM)
				r = cf_err(CF_EINVAL, "webhook secret is not whsec_<base64>");
			goto out;
		}
		if ((count++ && (r = cf_buf_adds(out, " ")) != CF_OK) ||
		    (r = cf_hmac_sha256(key.data, key.len, msg.data, msg.len, mac)) != CF_OK ||
		    (r = cf_buf_adds(out, "v1,")) != CF_OK ||
		    (r = cf_base64(mac, sizeof(mac), out)) != CF_OK)
			goto out;
	}
	if (!count)
		r = cf_err(CF_EINVAL, "webhook secret is empty");
out:
	if (key.data)
		explicit_bzero(key.data, key.cap);
	explicit_bzero(mac, sizeof(mac));
	cf_buf_release(&key);
	cf_buf_release(&msg);
	return r;
}

/* One signed attempt (a fresh timestamp each time).  As cf_http_send. */
static int attempt(const struct cf_webhook_opts *o, const char *msg_id, const char *body, size_t n,
		   long *status, double *retry_after)
{
	struct cf_buf hid = CF_BUF_INIT, hts = CF_BUF_INIT, hsig = CF_BUF_INIT;
	int64_t ts = (int64_t)time(NULL);
	const char *headers[5] = { "Content-Type: application/json" };
	size_t nh = 1;
	int r;

	if ((r = cf_buf_addf(&hid, "webhook-id: %s", msg_id)) ||
	    (r = cf_buf_addf(&hts, "webhook-timestamp: %" PRId64, ts)))
		goto out;
	headers[nh++] = (char *)hid.data;
	headers[nh++] = (char *)hts.data;
	if (o->secret) {
		if ((r = cf_buf_adds(&hsig, "webhook-signature: ")) ||
		    (r = cf_webhook_sign(o->secret, msg_id, ts, body, n, &hsig)))
			goto out;
		headers[nh++] = (char *)hsig.data;
	}
	struct cf_http_req q = { "POST", o->url, headers, nh, body, n, o->timeout, o->cacert, "webhook" };
	r = cf_http_send(&q, status, retry_after);
out:
	if (hsig.data)
		explicit_bzero(hsig.data, hsig.cap);
	cf_buf_release(&hid);
	cf_buf_release(&hts);
	cf_buf_release(&hsig);
	return r;
}

int cf_webhook_post(const struct cf_webhook_opts *o, const char *body, size_t n, long *status,
		    unsigned *attempts)
{
	struct cf_http_retry rt = { o->retries, o->retry_for, o->backoff, o->max_delay };
	uint8_t rnd[16];
	char msg_id[4 + 2 * sizeof(rnd) + 1];
	char shown[2048];
	double t0 = cf_now_mono(), ra = 0;
	long st = 0;
	unsigned i;
	int r;

	cf_redact_url(o->url, shown, sizeof(shown));
	cf_random(rnd, sizeof(rnd));
	memcpy(msg_id, "msg_", 4);
	cf_hex(rnd, sizeof(rnd), msg_id + 4);
	for (i = 0;; i++) {
		r = attempt(o, msg_id, body, n, &st, &ra);
		if (r != CF_EAGAIN)
			break;
		double wait = cf_http_retry_wait(&rt, i, cf_now_mono() - t0, ra);
		if (wait < 0) {
			if (i > 0)
				r = cf_err_prefix(r, "gave up after %u attempts in %.0f s", i + 1, cf_now_mono() - t0);
			break;
		}
		cf_info("coffer agent: %s; retrying in %.1f s%s", cf_errmsg(r), wait, ra > 0 ? " (Retry-After)" : "");
		if (cf_http_sleep(wait)) {
			r = cf_err(CF_EINTR, "webhook %s: interrupted", shown);
			i++;
			break;
		}
	}
	if (status)
		*status = st;
	if (attempts)
		*attempts = i + 1;
	return r;
}
