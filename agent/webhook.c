/*
 * webhook.c - Standard Webhooks signatures and the POST itself (libcurl).
 */
#include "agent/webhook.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int cf_webhook_sign(const char *secret, const char *msg_id, int64_t timestamp,
		    const void *body, size_t n, struct cf_buf *out)
{
	struct cf_buf key = CF_BUF_INIT, msg = CF_BUF_INIT;
	uint8_t mac[CF_HMAC_SHA256_LEN];
	const char *b64 = strncmp(secret, "whsec_", 6) ? secret : secret + 6;
	int r;

	if ((r = cf_unbase64(b64, strlen(b64), &key)) != CF_OK) {
		if (r != CF_ENOMEM)
			r = cf_err(CF_EINVAL, "webhook secret is not whsec_<base64>");
		goto out;
	}
	if ((r = cf_buf_addf(&msg, "%s.%" PRId64 ".", msg_id, timestamp)) != CF_OK ||
	    (r = cf_buf_add(&msg, body, n)) != CF_OK ||
	    (r = cf_hmac_sha256(key.data, key.len, msg.data, msg.len, mac)) != CF_OK ||
	    (r = cf_buf_adds(out, "v1,")) != CF_OK ||
	    (r = cf_base64(mac, sizeof(mac), out)) != CF_OK)
		goto out;
out:
	if (key.data)
		explicit_bzero(key.data, key.cap);
	explicit_bzero(mac, sizeof(mac));
	cf_buf_release(&key);
	cf_buf_release(&msg);
	return r;
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

static void curl_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One attempt.  CF_OK on 2xx; CF_EAGAIN with a message otherwise. */
static int attempt(const struct cf_webhook_opts *o, const char *msg_id, const char *body, size_t n,
		   long *status)
{
	struct curl_slist *h = NULL, *t;
	struct cf_buf line = CF_BUF_INIT;
	char errbuf[CURL_ERROR_SIZE] = "", shown[2048];
	int64_t ts = (int64_t)time(NULL);
	CURL *curl = curl_easy_init();
	int r = CF_OK;

	cf_redact_url(o->url, shown, sizeof(shown)); /* messages never show its password or token */

	*status = 0;
	if (!curl)
		return cf_err(CF_ENOMEM, "out of memory (curl)");
#define ADD_HEADER(...) \
	do { \
		cf_buf_reset(&line); \
		if ((r = cf_buf_addf(&line, __VA_ARGS__)) != CF_OK) \
			goto out; \
		if (!(t = curl_slist_append(h, (char *)line.data))) { \
			r = cf_err(CF_ENOMEM, "out of memory"); \
			goto out; \
		} \
		h = t; \
	} while (0)
	ADD_HEADER("Content-Type: application/json");
	ADD_HEADER("User-Agent: coffer/%s", COFFER_VERSION);
	ADD_HEADER("webhook-id: %s", msg_id);
	ADD_HEADER("webhook-timestamp: %" PRId64, ts);
	if (o->secret) {
		cf_buf_reset(&line);
		if ((r = cf_buf_adds(&line, "webhook-signature: ")) != CF_OK ||
		    (r = cf_webhook_sign(o->secret, msg_id, ts, body, n, &line)) != CF_OK)
			goto out;
		if (!(t = curl_slist_append(h, (char *)line.data))) {
			r = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		h = t;
	}
#undef ADD_HEADER
	curl_easy_setopt(curl, CURLOPT_URL, o->url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)((o->timeout > 0 ? o->timeout : 30) * 1000));
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (o->cacert)
		curl_easy_setopt(curl, CURLOPT_CAINFO, o->cacert);
	CURLcode cc = curl_easy_perform(curl);
	if (cc == CURLE_PEER_FAILED_VERIFICATION) { /* will not mend by itself */
		r = cf_err(CF_EIO, "webhook %s: %s%s", shown, errbuf[0] ? errbuf : curl_easy_strerror(cc),
			   o->cacert ? "" : " (a receiver with a private CA: give its certificate with COFFER_CACERT)");
		goto out;
	}
	if (cc != CURLE_OK) {
		r = cf_err(CF_EAGAIN, "webhook %s: %s", shown, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	if (*status < 200 || *status > 299)
		r = cf_err(CF_EAGAIN, "webhook %s: the receiver answered HTTP %ld", shown, *status);
out:
	curl_slist_free_all(h);
	if (line.data)
		explicit_bzero(line.data, line.cap);
	cf_buf_release(&line);
	curl_easy_cleanup(curl);
	return r;
}

int cf_webhook_post(const struct cf_webhook_opts *o, const char *body, size_t n, long *status)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	uint8_t rnd[16];
	char msg_id[4 + 2 * sizeof(rnd) + 1];
	double delay = o->backoff > 0 ? o->backoff : 1.0;
	char shown[2048];
	long st = 0;
	int r;

	cf_redact_url(o->url, shown, sizeof(shown));
	pthread_once(&once, curl_once);
	cf_random(rnd, sizeof(rnd));
	memcpy(msg_id, "msg_", 4);
	cf_hex(rnd, sizeof(rnd), msg_id + 4);
	for (unsigned i = 0;; i++) {
		r = attempt(o, msg_id, body, n, &st);
		if (r != CF_EAGAIN || i >= o->retries)
			break;
		cf_info("coffer agent: %s; retrying in %.0f s", cf_errmsg(r), delay);
		/* sleep in small steps so that SIGTERM does not wait for the backoff */
		for (double left = delay; left > 0 && !cf_interrupted; left -= 0.1) {
			struct timespec ts = { 0, 100 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (cf_interrupted) {
			r = cf_err(CF_EINTR, "webhook %s: interrupted", shown);
			break;
		}
		delay *= 2;
	}
	if (status)
		*status = st;
	return r;
}
