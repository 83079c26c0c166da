/*
 * http.h - the agent's outgoing HTTP requests (libcurl): the webhook
 * (agent/webhook.h) and the notification URLs (agent/notify.h) share this
 * transport and its retry schedule.
 *
 *     struct cf_http_req q = { "POST", url, headers, nheaders, body, n, 10, cacert, "ntfy" };
 *     for (attempt = 0;; attempt++) {
 *             r = cf_http_send(&q, &status, &retry_after);
 *             if (r != CF_EAGAIN || (wait = cf_http_retry_wait(&rt, attempt, elapsed, retry_after)) < 0)
 *                     break;
 *             if (cf_http_sleep(wait)) -> interrupted
 *     }
 *
 * Messages name the URL with its secrets redacted (cf_redact_url): a
 * password in the userinfo, a token in the query.
 */
#ifndef CF_AGENT_HTTP_H
#define CF_AGENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct cf_http_req {
	const char *method;              /* "GET" or "POST" */
	const char *url;
	const char *const *headers;      /* "Name: value" lines */
	size_t nheaders;
	const void *body;                /* POST only */
	size_t n;
	double timeout;                  /* seconds for the whole attempt, 0 = 30 */
	const char *cacert;              /* extra CA bundle (PEM), NULL = the system's only */
	const char *what;                /* names the request in messages: "webhook", "notify ntfy" */
};

/* One attempt.  CF_OK when a 2xx answer came; CF_EAGAIN with a message (what,
 * URL, why) for no connection, a timeout or another answer; CF_EIO (not worth
 * retrying) for a certificate that does not verify; CF_ENOMEM.  *status (may be
 * NULL) gets the HTTP status, 0 when none came; *retry_after (may be NULL) the
 * seconds a Retry-After header asked for (delta or HTTP date), 0 when none. */
int cf_http_send(const struct cf_http_req *q, long *status, double *retry_after);

/* When to try again.  Attempts stop after `retries` retries, or when the next
 * one would start more than retry_for seconds after the first (0 = no time
 * bound).  The k-th retry (k from 0) waits backoff * 2^k seconds, at most
 * max_delay (0 = no cap), or what the receiver asked in Retry-After when that
 * is longer. */
struct cf_http_retry {
	unsigned retries;
	double retry_for;
	double backoff;
	double max_delay;
};

/* The wait before retry number attempt (0 = the first retry), elapsed seconds
 * after the first attempt began, retry_after as cf_http_send gave it: seconds
 * to wait, or -1 when the schedule says give up.  Pure. */
double cf_http_retry_wait(const struct cf_http_retry *rt, unsigned attempt, double elapsed, double retry_after);

/* Sleep seconds in small steps; true when cf_interrupted was set (SIGTERM
 * does not wait for a backoff). */
bool cf_http_sleep(double seconds);

/* A URL with every "{name}" of vars (name, value pairs, nvars of them)
 * replaced by the value, percent-encoded, into *out (caller frees).  Unknown
 * names stay as they are.  CF_OK or CF_ENOMEM. */
int cf_http_expand(const char *tmpl, const char *const *vars, size_t nvars, char **out);

#endif
