/*
 * http.c - one HTTP request through libcurl, and the retry schedule.
 */
#include "agent/http.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

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

int cf_http_send(const struct cf_http_req *q, long *status, double *retry_after)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct curl_slist *h = NULL, *t;
	char errbuf[CURL_ERROR_SIZE] = "", shown[2048];
	long st = 0;
	curl_off_t ra = 0;
	int r = CF_OK;

	pthread_once(&once, curl_once);
	cf_redact_url(q->url, shown, sizeof(shown)); /* messages never show its password or token */
	if (status)
		*status = 0;
	if (retry_after)
		*retry_after = 0;
	CURL *curl = curl_easy_init();
	if (!curl)
		return cf_err(CF_ENOMEM, "out of memory (curl)");
	for (size_t i = 0; i < q->nheaders; i++) {
		if (!(t = curl_slist_append(h, q->headers[i]))) {
			r = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		h = t;
	}
	curl_easy_setopt(curl, CURLOPT_URL, q->url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	if (!strcmp(q->method, "POST")) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, q->body ? (const char *)q->body : "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(q->body ? q->n : 0));
	}
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)((q->timeout > 0 ? q->timeout : 30) * 1000));
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "coffer/" COFFER_VERSION);
	if (q->cacert)
		curl_easy_setopt(curl, CURLOPT_CAINFO, q->cacert);
	CURLcode cc = curl_easy_perform(curl);
	if (cc == CURLE_PEER_FAILED_VERIFICATION) { /* will not mend by itself */
		r = cf_err(CF_EIO, "%s %s: %s%s", q->what, shown, errbuf[0] ? errbuf : curl_easy_strerror(cc),
			   q->cacert ? "" : " (a receiver with a private CA: give its certificate with COFFER_CACERT)");
		goto out;
	}
	if (cc != CURLE_OK) {
		r = cf_err(CF_EAGAIN, "%s %s: %s", q->what, shown, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &st);
	if (status)
		*status = st;
	if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0 && retry_after)
		*retry_after = (double)ra;
	if (st < 200 || st > 299)
		r = cf_err(CF_EAGAIN, "%s %s: the receiver answered HTTP %ld", q->what, shown, st);
out:
	curl_slist_free_all(h);
	curl_easy_cleanup(curl);
	return r;
}

double cf_http_retry_wait(const struct cf_http_retry *rt, unsigned attempt, double elapsed, double retry_after)
{
	if (attempt >= rt->retries)
		return -1;
	double wait = (rt->backoff > 0 ? rt->backoff : 1.0) * ldexp(1.0, attempt > 60 ? 60 : (int)attempt);
	if (rt->max_delay > 0 && wait > rt->max_delay)
		wait = rt->max_delay;
	if (retry_after > wait)
		wait = retry_after;
	if (rt->retry_for > 0 && elapsed + wait > rt->retry_for)
		return -1;
	return wait;
}

bool cf_http_sleep(double seconds)
{
	for (double left = seconds; left > 0 && !cf_interrupted; left -= 0.05) {
		double step = left < 0.05 ? left : 0.05;
		struct timespec ts = { 0, (long)(step * 1e9) };
		nanosleep(&ts, NULL);
	}
	return cf_interrupted != 0;
}

int cf_http_expand(const char *tmpl, const char *const *vars, size_t nvars, char **out)
{
	struct cf_buf b = CF_BUF_INIT;
	int r = CF_OK;
	*out = NULL;
	for (const char *p = tmpl; *p;) {
		bool done = false;
		if (*p == '{') {
			for (size_t i = 0; i + 1 < 2 * nvars && !done; i += 2) {
				size_t len = strlen(vars[i]);
				if (!strncmp(p + 1, vars[i], len) && p[1 + len] == '}') {
					char *e = curl_easy_escape(NULL, vars[i + 1], 0);
					if (!e) {
						r = cf_err(CF_ENOMEM, "out of memory");
						goto out;
					}
					r = cf_buf_adds(&b, e);
					curl_free(e);
					if (r)
						goto out;
					p += len + 2;
					done = true;
				}
			}
		}
		if (!done && (r = cf_buf_add(&b, p++, 1)))
			goto out;
	}
	*out = (char *)cf_buf_detach(&b, NULL);
	if (!*out)
		r = cf_err(CF_ENOMEM, "out of memory");
out:
	cf_buf_release(&b);
	return r;
}
