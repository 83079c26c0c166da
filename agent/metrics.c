/*
 * metrics.c - Prometheus text: render, write atomically, serve (libmicrohttpd).
 */
#include "agent/metrics.h"
#include "common/error.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int metric(struct cf_buf *b, const char *labels, const char *name, const char *type, const char *help,
		  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* One family of one sample; labels: "" or "{k=\"v\",...}". */
static int metric(struct cf_buf *b, const char *labels, const char *name, const char *type, const char *help,
		  const char *fmt, ...)
{
	char val[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	return cf_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n%s%s %s\n", name, help, name, type, name, labels, val);
}

/* A label value: \\, \" and newline escaped. */
static int label_value(struct cf_buf *b, const char *v)
{
	int r = CF_OK;
	for (const char *p = v; *p && !r; p++)
		r = *p == '\\' || *p == '"' ? cf_buf_addf(b, "\\%c", *p) :
		    *p == '\n' ? cf_buf_adds(b, "\\n") : cf_buf_add(b, p, 1);
	return r;
}

void cf_metrics_repository_label(const char *location, char *out, size_t n)
{
	const char *p = location, *scheme = strstr(location, "://");
	size_t k = 0;
	if (!n)
		return;
	if (scheme) {
		/* copy up to the authority, then skip a user[:password]@ in it */
		const char *auth = scheme + 3, *end = auth + strcspn(auth, "/?#"), *at = memchr(auth, '@', (size_t)(end - auth));
		for (; p < auth && k + 1 < n; p++)
			out[k++] = *p;
		if (at)
			p = at + 1;
	}
	for (; *p && *p != '?' && *p != '#' && k + 1 < n; p++)
		out[k++] = *p;
	out[k] = 0;
}

/* A family with one sample per copy target (label target="NAME"); the
 * samples for which want() is false are left out, and so is the family
 * when none is left. */
typedef bool (*copy_want_fn)(const struct cf_metrics_copy *m);
typedef double (*copy_val_fn)(const struct cf_metrics_copy *m);

static int copy_family(struct cf_buf *b, const struct cf_metrics_values *v, const char *name, const char *type,
		       const char *help, const char *fmt, copy_want_fn want, copy_val_fn val)
{
	bool head = false;
	int r = CF_OK;
	for (size_t i = 0; i < v->ncopies && !r; i++) {
		const struct cf_metrics_copy *m = &v->copies[i];
		char num[64];
		if (!want(m))
			continue;
		if (!head && (r = cf_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type)))
			break;
		head = true;
		snprintf(num, sizeof(num), fmt, val(m));
		if ((r = cf_buf_addf(b, "%s{target=\"", name)) || (r = label_value(b, m->target)))
			break;
		if (!r)
			r = cf_buf_addf(b, "\"} %s\n", num);
	}
	return r;
}

static bool w_ran(const struct cf_metrics_copy *m) { return m->have_run; }
static bool w_success(const struct cf_metrics_copy *m) { return m->last_success_timestamp > 0; }
static bool w_next(const struct cf_metrics_copy *m) { return m->next_run_timestamp > 0; }
static bool w_snaps(const struct cf_metrics_copy *m) { return m->have_run && m->snapshots >= 0; }
static double v_success(const struct cf_metrics_copy *m) { return m->last_success_timestamp; }
static double v_run(const struct cf_metrics_copy *m) { return m->last_run_timestamp; }
static double v_dur(const struct cf_metrics_copy *m) { return m->last_run_duration; }
static double v_status(const struct cf_metrics_copy *m) { return m->last_run_status; }
static double v_ok(const struct cf_metrics_copy *m) { return m->last_run_status == 0; }
static double v_copied(const struct cf_metrics_copy *m) { return (double)m->snapshots_copied; }
static double v_added(const struct cf_metrics_copy *m) { return (double)m->bytes_added; }
static double v_snaps(const struct cf_metrics_copy *m) { return (double)m->snapshots; }
static double v_next(const struct cf_metrics_copy *m) { return m->next_run_timestamp; }

static int format_copies(const struct cf_metrics_values *v, struct cf_buf *out)
{
	int r = CF_OK;
#define C(...) do { if ((r = copy_family(out, v, __VA_ARGS__)) != CF_OK) return r; } while (0)
	C("coffer_copy_last_success_timestamp_seconds", "gauge", "When the last successful copy to the target ended.",
	  "%.0f", w_success, v_success);
	C("coffer_copy_last_run_timestamp_seconds", "gauge", "When the last copy to the target ended.", "%.0f", w_ran,
	  v_run);
	C("coffer_copy_last_run_duration_seconds", "gauge", "How long the last copy to the target took.", "%.3f", w_ran,
	  v_dur);
	C("coffer_copy_last_status", "gauge",
	  "Exit code of the last copy to the target: 0 ok, 1 failed, 11 locked, 12 wrong password, 130 interrupted.",
	  "%.0f", w_ran, v_status);
	C("coffer_copy_last_success", "gauge", "1 if the last copy to the target succeeded, else 0.", "%.0f", w_ran,
	  v_ok);
	C("coffer_copy_snapshots_copied", "gauge", "Snapshots the last copy brought to the target.", "%.0f", w_ran,
	  v_copied);
	C("coffer_copy_bytes_added", "gauge", "Bytes the last copy added to the target.", "%.0f", w_ran, v_added);
	C("coffer_copy_snapshots", "gauge", "Snapshots in the target after the last copy.", "%.0f", w_snaps,
	  v_snaps);
	C("coffer_copy_next_run_timestamp_seconds", "gauge",
	  "When the next copy to the target is due (scheduled targets; after-backup ones while a copy is pending).",
	  "%.0f", w_next, v_next);
#undef C
	return r;
}

int cf_metrics_format(const struct cf_metrics_values *v, struct cf_buf *out)
{
	struct cf_buf lb = CF_BUF_INIT;
	const char *L;
	int r = CF_OK;

	/* the main repository's labels, rendered once */
	if (v->host || v->repository) {
		if ((r = cf_buf_adds(&lb, "{")))
			goto out;
		if (v->host && ((r = cf_buf_adds(&lb, "host=\"")) || (r = label_value(&lb, v->host)) ||
				(r = cf_buf_adds(&lb, "\""))))
			goto out;
		if (v->repository && ((r = cf_buf_adds(&lb, v->host ? ",repository=\"" : "repository=\"")) ||
				      (r = label_value(&lb, v->repository)) || (r = cf_buf_adds(&lb, "\""))))
			goto out;
		if ((r = cf_buf_adds(&lb, "}")))
			goto out;
	}
	L = lb.data ? (const char *)lb.data : "";
#define M(...) do { if ((r = metric(out, L, __VA_ARGS__)) != CF_OK) goto out; } while (0)
	/* the version as a label, the value 1 (Prometheus' build_info idiom) */
	if ((r = cf_buf_addf(out, "# HELP coffer_build_info The coffer version running.\n"
			     "# TYPE coffer_build_info gauge\ncoffer_build_info{version=\"%s\"} 1\n",
			     COFFER_VERSION)) != CF_OK)
		goto out;
	M("coffer_runs_total", "counter", "Backup jobs run since the agent started.", "%" PRIu64, v->runs_total);
	M("coffer_errors_total", "counter", "Backup jobs that failed since the agent started.", "%" PRIu64,
	  v->errors_total);
	M("coffer_ticks_skipped_total", "counter", "Schedule ticks skipped because a job was still running.",
	  "%" PRIu64, v->ticks_skipped_total);
	if ((r = cf_buf_adds(out, "# HELP coffer_notify_failures_total Notifications (COFFER_NOTIFY_URLS) and webhooks "
			     "that could not be delivered, by kind.\n# TYPE coffer_notify_failures_total counter\n")))
		goto out;
	for (int k = 0; k < CF_NOTIFY_NKINDS; k++)
		if ((r = cf_buf_addf(out, "coffer_notify_failures_total{kind=\"%s\"} %" PRIu64 "\n", cf_notify_kind_name(k),
				     v->notify_failures[k])))
			goto out;
	if (v->next_run_timestamp > 0)
		M("coffer_next_run_timestamp_seconds", "gauge", "When the next job is due.", "%.0f",
		  v->next_run_timestamp);
	/* kept across restarts (state file), so an alert on its age never sees a gap */
	if (v->last_success_timestamp > 0)
		M("coffer_last_success_timestamp_seconds", "gauge", "When the last successful job ended.", "%.3f",
		  v->last_success_timestamp);
	if ((r = format_copies(v, out)))
		goto out;
	if (v->drill_last_success_timestamp > 0)
		M("coffer_drill_last_success_timestamp_seconds", "gauge",
		  "When the last successful restore drill ended.", "%.0f", v->drill_last_success_timestamp);
	if (v->drill_have_run) {
		M("coffer_drill_last_run_timestamp_seconds", "gauge", "When the last restore drill ended.", "%.0f",
		  v->drill_last_run_timestamp);
		M("coffer_drill_last_status", "gauge", "Exit code of the last restore drill: 0 ok, 1 failed.", "%d",
		  v->drill_last_status);
		M("coffer_drill_last_run_duration_seconds", "gauge", "How long the last restore drill took.", "%.3f",
		  v->drill_duration);
		M("coffer_drill_files_verified", "gauge", "Files the last restore drill read back and found equal.",
		  "%" PRIu64, v->drill_files_verified);
	}
	if (v->check_have_run) {
		M("coffer_check_last_run_timestamp_seconds", "gauge", "When the last scheduled check ran.", "%.0f",
		  v->check_last_run_timestamp);
		M("coffer_check_last_success", "gauge", "1 if the last scheduled check found no problem, else 0.", "%d",
		  v->check_errors == 0);
		M("coffer_check_errors", "gauge", "Problems the last scheduled check found.", "%" PRIu64, v->check_errors);
	}
	if (v->check_last_success_timestamp > 0)
		M("coffer_check_last_success_timestamp_seconds", "gauge",
		  "When the last scheduled check that found no problem ran.", "%.0f", v->check_last_success_timestamp);
	if (v->repository_bytes >= 0)
		M("coffer_repository_size_bytes", "gauge", "Bytes of data (packs) the repository holds.", "%" PRId64,
		  v->repository_bytes);
	if (v->repository_packs >= 0)
		M("coffer_repository_packs", "gauge", "Packs the repository holds.", "%" PRId64, v->repository_packs);
	if (!v->have_run)
		goto out;
	M("coffer_last_run_timestamp_seconds", "gauge", "When the last job ended.", "%.3f", v->last_run_timestamp);
	M("coffer_last_run_duration_seconds", "gauge", "How long the last job took.", "%.3f", v->last_run_duration);
	M("coffer_last_run_status", "gauge",
	  "Exit code of the last job: 0 ok, 1 failed, 3 some files unreadable, 130 interrupted.", "%d",
	  v->last_run_status);
	M("coffer_last_run_success", "gauge", "1 if the last job succeeded, else 0.", "%d",
	  v->last_run_status == 0);
	/* gauges: no _total (promtool: "non-counter metrics should not have
	 * _total suffix"), the unit last */
	M("coffer_backup_files", "gauge", "Files processed by the last backup.", "%" PRIu64, v->backup_files);
	M("coffer_backup_processed_bytes", "gauge", "Bytes read by the last backup.", "%" PRIu64,
	  v->backup_bytes_processed);
	M("coffer_backup_added_bytes", "gauge", "Bytes the last backup added to the repository.", "%" PRIu64,
	  v->backup_bytes_added);
	M("coffer_containers_stopped", "gauge", "Containers the last job stopped and started again.", "%" PRIu64,
	  v->containers_stopped);
	if (v->snapshots >= 0)
		M("coffer_snapshots", "gauge", "Snapshots in the repository after the last job.", "%" PRId64,
		  v->snapshots);
#undef M
out:
	cf_buf_release(&lb);
	return r;
}

int cf_metrics_write_file(const char *path, const void *text, size_t n)
{
	size_t len = strlen(path);
	char *tmp = malloc(len + 32);
	int fd = -1, r = CF_OK;

	if (!tmp)
		return cf_err(CF_ENOMEM, "out of memory");
	/* a dot name: node_exporter reads only *.prom, so the temp file is never scraped */
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
	snprintf(tmp, len + 32, "%.*s.%s.%ld.tmp", (int)dirlen, path, path + dirlen, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		r = cf_err_errno("metrics file: cannot create %s", tmp);
		goto out;
	}
	if (cf_write_full(fd, text, n) != 0 || fsync(fd) != 0) {
		r = cf_err_errno("metrics file: cannot write %s", tmp);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		r = cf_err_errno("metrics file: cannot write %s", tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		r = cf_err_errno("metrics file: cannot rename %s to %s", tmp, path);
out:
	if (fd >= 0)
		close(fd);
	if (r)
		unlink(tmp);
	free(tmp);
	return r;
}

/* ------------------------------------------------------------- serving */

/* One family of the replicated databases (label db="NAME"). */
static int sqlite_family(struct cf_buf *b, const struct cf_metrics_sqlite *v, size_t n, const char *name,
			 const char *help, int which)
{
	bool head = false;
	int r = CF_OK;
	for (size_t i = 0; i < n && !r; i++) {
		double x = which == 0 ? v[i].lag_seconds : which == 1 ? v[i].last_upload_timestamp :
			   which == 2 ? (double)v[i].queued_bytes : (double)v[i].up;
		if (which == 1 && x <= 0)
			continue;  /* nothing stored since the agent started */
		if (!head && (r = cf_buf_addf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)))
			break;
		head = true;
		if ((r = cf_buf_addf(b, "%s{db=\"", name)))
			break;
		for (const char *p = v[i].db; *p && !r; p++)
			r = *p == '\\' || *p == '"' ? cf_buf_addf(b, "\\%c", *p) :
			    *p == '\n' ? cf_buf_adds(b, "\\n") : cf_buf_add(b, p, 1);
		if (!r)
			r = cf_buf_addf(b, which == 1 ? "\"} %.3f\n" : "\"} %.17g\n", x);
	}
	return r;
}

int cf_metrics_format_sqlite(const struct cf_metrics_sqlite *v, size_t n, struct cf_buf *out)
{
	int r;
	if ((r = sqlite_family(out, v, n, "coffer_sqlite_replication_lag_seconds",
			       "Age of the oldest transaction read from the database but not yet stored (0 when none).", 0)) ||
	    (r = sqlite_family(out, v, n, "coffer_sqlite_replication_last_upload_timestamp_seconds",
			       "When the store last took a segment of the database.", 1)) ||
	    (r = sqlite_family(out, v, n, "coffer_sqlite_replication_queued_bytes",
			       "Bytes of transactions read but not yet stored (queued while the store fails).", 2)) ||
	    (r = sqlite_family(out, v, n, "coffer_sqlite_replication_up",
			       "1 while the database is followed, 0 while replication is stopped by a failure.", 3)))
		return r;
	return CF_OK;
}

struct cf_metrics_server {
	struct MHD_Daemon *d;
	pthread_mutex_t lock;
	char *text;
	size_t n;
	cf_metrics_extra_fn extra;
	void *extra_ctx;
};

void cf_metrics_server_set_extra(struct cf_metrics_server *s, cf_metrics_extra_fn fn, void *ctx)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->extra = fn;
	s->extra_ctx = ctx;
	pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_len, void **con_cls)
{
	struct cf_metrics_server *s = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned code = MHD_HTTP_OK;
	(void)version;
	(void)upload;
	(void)upload_len;
	(void)con_cls;

	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		static const char msg[] = "method not allowed\n";
		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics")) {
		static const char msg[] = "not found: the metrics are at /metrics\n";
		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NOT_FOUND;
	} else {
		struct cf_buf b = CF_BUF_INIT;
		pthread_mutex_lock(&s->lock);
		int r = cf_buf_add(&b, s->text ? s->text : "", s->n);
		/* figures that change between jobs (replication lag) are rendered now */
		if (!r && s->extra)
			r = s->extra(s->extra_ctx, &b);
		pthread_mutex_unlock(&s->lock);
		resp = r ? NULL : MHD_create_response_from_buffer(b.len, b.data ? (char *)b.data : (char *)"",
								  MHD_RESPMEM_MUST_COPY);
		cf_buf_release(&b);
		if (resp)
			MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	}
	if (!resp)
		return MHD_NO;
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

int cf_metrics_parse_listen(const char *listen, struct sockaddr_in6 *sa, bool *v6)
{
	const char *colon = strrchr(listen, ':');
	char host[64];
	size_t hl;

	memset(sa, 0, sizeof(*sa));
	*v6 = false;
	if (!colon)
		return cf_err(CF_EINVAL, "metrics address \"%s\" is not [ADDRESS]:PORT", listen);
	/* "[::]:9150", "[::1]:9150": the brackets of an IPv6 address */
	const char *h = listen;
	hl = (size_t)(colon - listen);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
		*v6 = true;
	}
	if (hl >= sizeof(host))
		return cf_err(CF_EINVAL, "metrics address \"%s\" is not [ADDRESS]:PORT", listen);
	memcpy(host, h, hl);
	host[hl] = 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 1 || port > 65535)
		return cf_err(CF_EINVAL, "metrics address \"%s\": the port is not from 1 to 65535", listen);
	if (*v6) {
		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
			return cf_err(CF_EINVAL, "metrics address \"%s\": %s is not an IPv6 address", listen, host);
		return CF_OK;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	if (!*host || !strcmp(host, "*"))
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return cf_err(CF_EINVAL, "metrics address \"%s\": %s is not an IPv4 address (an IPv6 one "
			      "goes in brackets: [::]:PORT)", listen, host);
	return CF_OK;
}

int cf_metrics_serve(const char *listen, struct cf_metrics_server **out)
{
	struct sockaddr_in6 sa;
	bool v6;
	int r = CF_OK;

	*out = NULL;
	if ((r = cf_metrics_parse_listen(listen, &sa, &v6)))
		return r;
	uint16_t port = ntohs(v6 ? sa.sin6_port : ((struct sockaddr_in *)&sa)->sin_port);
	/* [::] takes IPv4 too (dual stack); another IPv6 address only itself */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (v6)
		flags |= IN6_IS_ADDR_UNSPECIFIED(&sa.sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;

	struct cf_metrics_server *s = calloc(1, sizeof(*s));
	if (!s)
		return cf_err(CF_ENOMEM, "out of memory");
	pthread_mutex_init(&s->lock, NULL);
	s->d = MHD_start_daemon(flags, port, NULL, NULL,
				answer, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned)10, MHD_OPTION_END);
	if (!s->d) {
		r = cf_err(CF_EIO, "cannot serve metrics on %s (address in use or not available)", listen);
		cf_metrics_server_free(s);
		return r;
	}
	*out = s;
	return CF_OK;
}

int cf_metrics_server_update(struct cf_metrics_server *s, const void *text, size_t n)
{
	char *copy = malloc(n ? n : 1);
	if (!copy)
		return cf_err(CF_ENOMEM, "out of memory");
	memcpy(copy, text, n);
	pthread_mutex_lock(&s->lock);
	free(s->text);
	s->text = copy;
	s->n = n;
	pthread_mutex_unlock(&s->lock);
	return CF_OK;
}

void cf_metrics_server_free(struct cf_metrics_server *s)
{
	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	pthread_mutex_destroy(&s->lock);
	free(s->text);
	free(s);
}
