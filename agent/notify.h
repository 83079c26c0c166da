/*
 * notify.h - ping the monitoring people already run: COFFER_NOTIFY_URLS.
 *
 * Each URL names its kind by a prefix before the scheme (explicit: a URL is
 * never guessed from its path, so a Kuma URL cannot be taken for a
 * Healthchecks one and report every failure as a success):
 *
 *   hc+https://hc-ping.com/UUID       Healthchecks (or anything speaking its
 *                                     protocol): POST URL/start when a job
 *                                     starts, POST URL on success, POST
 *                                     URL/fail on failure; the body is the
 *                                     job's log tail (at most 100 000 bytes,
 *                                     Healthchecks' limit)
 *   kuma+https://KUMA/api/push/TOKEN  Uptime Kuma push monitor: GET with
 *                                     ?status=up|down&msg=...&ping=MS (a query
 *                                     the URL had is replaced)
 *   ntfy+https://ntfy.sh/TOPIC        ntfy: POST of the message to the topic,
 *                                     headers Title, Priority (high on
 *                                     failure), Tags
 *   https://.../{status}...           anything else: a GET of the URL with
 *                                     {status} (start, success, partial,
 *                                     failed, interrupted), {job} (backup,
 *                                     copy:NAME, drill), {host} and {message}
 *                                     replaced, percent-encoded; a URL
 *                                     without {status} is refused (a bare ping
 *                                     would say "up" for a failure)
 *
 * A delivery that fails (no connection, non-2xx) is retried twice (1 s,
 * 2 s, at most 10 s an attempt), then logged; it never changes the job's
 * result.  The transport is agent/http.h's.
 */
#ifndef CF_AGENT_NOTIFY_H
#define CF_AGENT_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

enum cf_notify_kind {
	CF_NOTIFY_HEALTHCHECKS,
	CF_NOTIFY_KUMA,
	CF_NOTIFY_NTFY,
	CF_NOTIFY_GENERIC,
	CF_NOTIFY_WEBHOOK,      /* not a COFFER_NOTIFY_URLS kind: the webhook's failures are counted beside them */
	CF_NOTIFY_NKINDS
};

/* The kind's name in metrics and messages: "healthchecks", "uptime-kuma",
 * "ntfy", "generic", "webhook". */
const char *cf_notify_kind_name(int kind);

/* Healthchecks' largest request body; the log tail is cut to it. */
#define CF_NOTIFY_BODY_MAX 100000

/* COFFER_NOTIFY_LEVEL. */
enum { CF_NOTIFY_LEVEL_ERROR, CF_NOTIFY_LEVEL_INFO };

struct cf_notify_url {
	int kind;
	char *url;               /* without the kind's prefix */
};

/* Parse one entry of COFFER_NOTIFY_URLS into *u (caller frees u->url).
 * CF_OK; CF_EINVAL naming key and what is wrong (the URL is shown redacted);
 * CF_ENOMEM. */
int cf_notify_parse(const char *key, const char *entry, struct cf_notify_url *u);

struct cf_notify_event {
	const char *job;         /* "backup", "copy:NAME", "drill" */
	const char *host;
	const char *status;      /* "start", "success", "partial", "failed", "interrupted" */
	bool recovered;          /* a success after a failure of the same job */
	double duration;         /* seconds (end events) */
	const char *message;     /* one line: what happened */
	const char *log;         /* the job's log tail so far (may be NULL) */
	size_t nlog;
};

/* Whether a URL of kind gets event e at level: Healthchecks every event
 * (it measures from /start and alarms on silence), Kuma every outcome (no
 * start: a push monitor has none); ntfy and generic URLs at level info every
 * event, at level error only outcomes that are not a success, and the first
 * success after one (recovered).  Pure. */
bool cf_notify_wanted(int kind, int level, const struct cf_notify_event *e);

/* Send e to u.  CF_OK; CF_EAGAIN with a message after the retries; CF_EIO
 * (certificate); CF_EINTR; CF_ENOMEM. */
int cf_notify_send(const struct cf_notify_url *u, const struct cf_notify_event *e, const char *cacert);

#endif
