/*
 * notify.c - the COFFER_NOTIFY_URLS kinds: how each is recognised and what
 * request each event becomes.
 */
#include "agent/notify.h"
#include "agent/http.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *prefix;
	const char *name;
} kinds[CF_NOTIFY_NKINDS] = {
	[CF_NOTIFY_HEALTHCHECKS] = { "hc+", "healthchecks" },
	[CF_NOTIFY_KUMA] = { "kuma+", "uptime-kuma" },
	[CF_NOTIFY_NTFY] = { "ntfy+", "ntfy" },
	[CF_NOTIFY_GENERIC] = { NULL, "generic" },
	[CF_NOTIFY_WEBHOOK] = { NULL, "webhook" },
};

const char *cf_notify_kind_name(int kind)
{
	return kind >= 0 && kind < CF_NOTIFY_NKINDS ? kinds[kind].name : "?";
}

static bool http_url(const char *u)
{
	return !strncmp(u, "http://", 7) || !strncmp(u, "https://", 8);
}

int cf_notify_parse(const char *key, const char *entry, struct cf_notify_url *u)
{
	char shown[1024];
	const char *url = entry;
	int kind = CF_NOTIFY_GENERIC;

	cf_redact_url(entry, shown, sizeof(shown));
	memset(u, 0, sizeof(*u));
	for (int k = 0; k < CF_NOTIFY_NKINDS; k++)
		if (kinds[k].prefix && !strncmp(entry, kinds[k].prefix, strlen(kinds[k].prefix))) {
			kind = k;
			url = entry + strlen(kinds[k].prefix);
		}
	if (!http_url(url))
		return cf_err(CF_EINVAL, "%s: \"%s\" is not an http:// or https:// URL (with hc+, kuma+ or ntfy+ "
				      "in front for Healthchecks, Uptime Kuma or ntfy)", key, shown);
	if (kind == CF_NOTIFY_GENERIC && !strstr(url, "{status}"))
		return cf_err(CF_EINVAL, "%s: \"%s\" has no kind: write hc+%s, kuma+%s or ntfy+%s, or put {status} in "
				      "a generic URL (a bare ping would report a failure as a success)",
			      key, shown, "URL", "URL", "URL");
	CURLU *cu = curl_url();
	if (!cu)
		return cf_err(CF_ENOMEM, "out of memory");
	/* {status} is not valid in a URL until it is replaced: check a stand-in */
	char *probe = NULL;
	const char *vars[] = { "status", "success", "job", "backup", "host", "h", "message", "m" };
	int r = cf_http_expand(url, vars, 4, &probe);
	if (!r && curl_url_set(cu, CURLUPART_URL, probe, 0) != CURLUE_OK)
		r = cf_err(CF_EINVAL, "%s: \"%s\" is not a valid URL", key, shown);
	free(probe);
	curl_url_cleanup(cu);
	if (r)
		return r;
	u->kind = kind;
	if (!(u->url = strdup(url)))
		return cf_err(CF_ENOMEM, "out of memory");
	return CF_OK;
}

static bool is_failure(const struct cf_notify_event *e)
{
	return strcmp(e->status, "start") && strcmp(e->status, "success");
}

bool cf_notify_wanted(int kind, int level, const struct cf_notify_event *e)
{
	bool start = !strcmp(e->status, "start");
	switch (kind) {
	case CF_NOTIFY_HEALTHCHECKS:
		return true;
	case CF_NOTIFY_KUMA:
		return !start;
	default:
		if (level == CF_NOTIFY_LEVEL_INFO)
			return true;
		return !start && (is_failure(e) || e->recovered);
	}
}

/* Healthchecks: URL, URL/start or URL/fail (the path extended, a query kept). */
static int hc_url(const char *base, const char *suffix, char **out)
{
	CURLU *cu = curl_url();
	char *path = NULL, *u = NULL;
	struct cf_buf b = CF_BUF_INIT;
	int r = CF_OK;

	*out = NULL;
	if (!cu)
		return cf_err(CF_ENOMEM, "out of memory");
	if (curl_url_set(cu, CURLUPART_URL, base, 0) != CURLUE_OK ||
	    curl_url_get(cu, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		r = cf_err(CF_EINVAL, "notify: not a URL");
		goto out;
	}
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	if ((r = cf_buf_add(&b, path, len)) || (r = cf_buf_adds(&b, suffix)))
		goto out;
	if (curl_url_set(cu, CURLUPART_PATH, (char *)b.data, 0) != CURLUE_OK ||
	    curl_url_get(cu, CURLUPART_URL, &u, 0) != CURLUE_OK) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if (!(*out = strdup(u)))
		r = cf_err(CF_ENOMEM, "out of memory");
out:
	curl_free(path);
	curl_free(u);
	cf_buf_release(&b);
	curl_url_cleanup(cu);
	return r;
}

/* Uptime Kuma: the push URL with its query replaced by status, msg, ping. */
static int kuma_url(const char *base, const struct cf_notify_event *e, char **out)
{
	CURLU *cu = curl_url();
	char *u = NULL, q[64];
	struct cf_buf msg = CF_BUF_INIT;
	int r = CF_OK;

	*out = NULL;
	if (!cu)
		return cf_err(CF_ENOMEM, "out of memory");
	/* Kuma keeps msg short: the job, the outcome, the message's first 200 bytes */
	if ((r = cf_buf_addf(&msg, "msg=%s %s: %.200s", e->job, e->status, e->message ? e->message : "")))
		goto out;
	snprintf(q, sizeof(q), "ping=%.0f", e->duration * 1000);
	if (curl_url_set(cu, CURLUPART_URL, base, 0) != CURLUE_OK ||
	    curl_url_set(cu, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
	    curl_url_set(cu, CURLUPART_QUERY, is_failure(e) ? "status=down" : "status=up", CURLU_APPENDQUERY) ||
	    curl_url_set(cu, CURLUPART_QUERY, (char *)msg.data, CURLU_APPENDQUERY | CURLU_URLENCODE) ||
	    curl_url_set(cu, CURLUPART_QUERY, q, CURLU_APPENDQUERY) ||
	    curl_url_get(cu, CURLUPART_URL, &u, 0) != CURLUE_OK) {
		r = cf_err(CF_EINVAL, "notify: not a URL");
		goto out;
	}
	if (!(*out = strdup(u)))
		r = cf_err(CF_ENOMEM, "out of memory");
out:
	curl_free(u);
	cf_buf_release(&msg);
	curl_url_cleanup(cu);
	return r;
}

/* The tail of the log, cut at a line start so that it fits max bytes. */
static void tail_of(const char *log, size_t n, size_t max, const char **p, size_t *len)
{
	*p = log;
	*len = log ? n : 0;
	if (*len <= max)
		return;
	const char *s = log + n - max, *nl = memchr(s, '\n', max);
	if (nl && (size_t)(nl + 1 - s) < max)
		s = nl + 1;
	*p = s;
	*len = (size_t)(log + n - s);
}

int cf_notify_send(const struct cf_notify_url *u, const struct cf_notify_event *e, const char *cacert)
{
	struct cf_http_retry rt = { 2, 30, 1.0, 0 }; /* never long: the job waits */
	struct cf_buf body = CF_BUF_INIT, title = CF_BUF_INIT;
	const char *headers[4];
	size_t nh = 0;
	char *url = NULL, what[48];
	const char *method = "GET";
	bool fail = is_failure(e), start = !strcmp(e->status, "start");
	int r = CF_OK;

	snprintf(what, sizeof(what), "notify %s", cf_notify_kind_name(u->kind));
	switch (u->kind) {
	case CF_NOTIFY_HEALTHCHECKS: {
		const char *t;
		size_t tl;
		method = "POST";
		if ((r = hc_url(u->url, start ? "/start" : fail ? "/fail" : "", &url)))
			goto out;
		/* the body: the outcome line, then as much of the log as fits */
		if ((r = cf_buf_addf(&body, "coffer %s on %s: %s%s%s\n", e->job, e->host, e->status,
				     e->message && *e->message ? ": " : "", e->message ? e->message : "")))
			goto out;
		tail_of(e->log, e->nlog, CF_NOTIFY_BODY_MAX - (body.len < CF_NOTIFY_BODY_MAX ? body.len : CF_NOTIFY_BODY_MAX),
			&t, &tl);
		if (body.len < CF_NOTIFY_BODY_MAX && (r = cf_buf_add(&body, t, tl)))
			goto out;
		if (body.len > CF_NOTIFY_BODY_MAX)
			body.len = CF_NOTIFY_BODY_MAX;
		headers[nh++] = "Content-Type: text/plain; charset=utf-8";
		break;
	}
	case CF_NOTIFY_KUMA:
		if ((r = kuma_url(u->url, e, &url)))
			goto out;
		break;
	case CF_NOTIFY_NTFY: {
		static const char *prio_high = "Priority: high", *prio_default = "Priority: default",
				  *prio_low = "Priority: low";
		method = "POST";
		if (!(url = strdup(u->url))) {
			r = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		if ((r = cf_buf_addf(&title, "Title: coffer %s on %s: %s%s", e->job, e->host,
				     start ? "started" : e->status, e->recovered ? " (recovered)" : "")))
			goto out;
		/* one line per event; a failure's last log lines follow (ntfy keeps 4 kB as a message) */
		if ((r = cf_buf_adds(&body, e->message && *e->message ? e->message : e->status)))
			goto out;
		if (fail && e->log && e->nlog) {
			const char *t;
			size_t tl;
			tail_of(e->log, e->nlog, 2048, &t, &tl);
			if ((r = cf_buf_adds(&body, "\n\n")) || (r = cf_buf_add(&body, t, tl)))
				goto out;
		}
		headers[nh++] = (char *)title.data;
		headers[nh++] = fail ? prio_high : start ? prio_low : prio_default;
		headers[nh++] = fail ? "Tags: warning,coffer" : start ? "Tags: hourglass,coffer" : "Tags: white_check_mark,coffer";
		break;
	}
	default: {
		const char *vars[] = { "status", e->status, "job", e->job, "host", e->host, "message",
				       e->message ? e->message : "" };
		if ((r = cf_http_expand(u->url, vars, 4, &url)))
			goto out;
		break;
	}
	}
	struct cf_http_req q = { method, url, headers, nh, body.data, body.len, 10, cacert, what };
	double t0 = cf_now_mono(), ra = 0;
	for (unsigned i = 0;; i++) {
		r = cf_http_send(&q, NULL, &ra);
		double wait;
		if (r != CF_EAGAIN || (wait = cf_http_retry_wait(&rt, i, cf_now_mono() - t0, ra)) < 0)
			break;
		cf_info("coffer agent: %s; retrying in %.0f s", cf_errmsg(r), wait);
		if (cf_http_sleep(wait)) {
			r = cf_err(CF_EINTR, "%s: interrupted", what);
			break;
		}
	}
out:
	free(url);
	cf_buf_release(&body);
	cf_buf_release(&title);
	return r;
}
