/*
 * report.c - what a finished job leaves behind: one logfmt line on stderr,
 * the state file (state.json: the agent's counters and the last job, read
 * by the healthcheck and the next run), the metrics (file and HTTP
 * endpoint), and the webhook.
 */
#include "agent/daemon.h"
#include "agent/agent_int.h"
#include "engine/backup.h"
#include "engine/dircache.h"
#include "agent/docker.h"
#include "agent/metrics.h"
#include "sources/sources.h"
#include "agent/webhook.h"
#include "common/buf.h"
#include "common/array.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"
#include "repo/repo.h"
#include "store/backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------- reporting */

static json_t *job_json(const struct cf_agent_config *c, const struct cf_agent_job *job)
{
	char start[40], end[40];
	agent_utc_text(job->start_ns, start, sizeof(start));
	agent_utc_text(job->end_ns, end, sizeof(end));
	json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:I, s:I, s:f, s:s?, s:s?, s:s?, s:I, s:I, s:I, s:I, s:I}",
			      "status", agent_status_word(job->rc),
			      "exit_code", job->exit_code,
			      "started", start,
			      "ended", end,
			      "started_unix", (json_int_t)(job->start_ns / 1000000000),
			      "ended_unix", (json_int_t)(job->end_ns / 1000000000),
			      "duration_seconds", (double)(job->end_ns - job->start_ns) / 1e9,
			      "snapshot_id", job->snapshot_id[0] ? job->snapshot_id : NULL,
			      "stage", job->stage,
			      "error", job->error[0] ? job->error : NULL,
			      "files", (json_int_t)job->summary.total_files_processed,
			      "bytes_processed", (json_int_t)job->summary.total_bytes_processed,
			      "bytes_added", (json_int_t)job->summary.data_added_packed,
			      "containers_stopped", (json_int_t)job->containers_stopped,
			      "tick_unix", (json_int_t)job->tick);
	if (j && job->snapshots >= 0)
		json_object_set_new(j, "snapshots_total", json_integer(job->snapshots));
	if (j) {
		json_object_set_new(j, "repository", json_string(c->repository));
		json_object_set_new(j, "snapshots_forgotten", json_integer((json_int_t)job->forgotten));
		json_object_set_new(j, "bytes_pruned", json_integer((json_int_t)job->pruned_bytes));
		if (job->repo_bytes >= 0) {
			json_object_set_new(j, "repository_bytes", json_integer((json_int_t)job->repo_bytes));
			json_object_set_new(j, "repository_packs", json_integer((json_int_t)job->repo_packs));
		}
		if (job->checked)
			json_object_set_new(j, "check_errors", json_integer((json_int_t)job->check_errors));
	}
	return j;
}

/* state.json: {"agent": {...}, "last_job": {...}} */
void agent_write_state(const struct cf_agent_config *c, const char *agent_state, json_t *last_job)
{
	char path[4200];
	json_t *st = json_object();
	json_t *a = json_pack("{s:s, s:i, s:I, s:I, s:I, s:f, s:I, s:I, s:I}", "state", agent_state, "pid",
			      (int)getpid(), "next_run_unix", (json_int_t)agent_g.next_run, "runs_total", (json_int_t)agent_g.runs,
			      "errors_total", (json_int_t)agent_g.errors, "last_success_unix", agent_g.last_success,
			      "last_tick_unix", (json_int_t)agent_g.last_tick, "last_prune_unix", (json_int_t)agent_g.last_prune,
			      "last_check_unix", (json_int_t)agent_g.last_check);
	char *text = NULL;
	int r;

	if (!st || !a)
		goto oom;
	if (agent_g.check_errors >= 0)
		json_object_set_new(a, "last_check_errors", json_integer((json_int_t)agent_g.check_errors));
	if (agent_g.last_check_success > 0)
		json_object_set_new(a, "last_check_success_unix", json_integer((json_int_t)agent_g.last_check_success));
	json_object_set_new(st, "agent", a);
	a = NULL;
	if (last_job)
		json_object_set(st, "last_job", last_job);
	if (agent_g.copies && json_object_size(agent_g.copies))
		json_object_set(st, "copies", agent_g.copies);
	if (agent_g.drill)
		json_object_set(st, "drill", agent_g.drill);
	json_t *nf = json_object();
	for (int k = 0; nf && k < CF_NOTIFY_NKINDS; k++)
		if (agent_g.notify_failures[k])
			json_object_set_new(nf, cf_notify_kind_name(k), json_integer((json_int_t)agent_g.notify_failures[k]));
	json_t *nt = json_pack("{s:O?, s:o?}", "last", agent_g.notify_last, "failures", nf);
	if (nt)
		json_object_set_new(st, "notify", nt);
	if (!(text = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER)))
		goto oom;
	snprintf(path, sizeof(path), "%s/%s", c->state_dir, STATE_FILE);
	if ((r = agent_state_dir(c)) || (r = cf_write_atomic(path, text, strlen(text), 0644)))
		cf_warn("coffer agent: state file: %s", cf_errmsg(r));
	goto out;
oom:
	cf_warn("coffer agent: state file: out of memory");
out:
	free(text);
	json_decref(a);
	json_decref(st);
}

/* The state file's last job, kept across restarts so the healthcheck and
 * COFFER_RUN_MISSED see the job before the restart. */
json_t *agent_read_state(const char *state_dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", state_dir, STATE_FILE);
	return json_load_file(path, 0, NULL);
}

void agent_publish_metrics(const struct cf_agent_config *c, const struct cf_agent_job *job)
{
	struct cf_metrics_values v;
	struct cf_buf text = CF_BUF_INIT;
	int r;

	if (!c->metrics_file && !agent_g.server)
		return;
	memset(&v, 0, sizeof(v));
	v.snapshots = -1;
	v.repository_bytes = v.repository_packs = -1;
	char host[256], repo_label[1024];
	agent_host(c, host, sizeof(host));
	cf_metrics_repository_label(c->repository, repo_label, sizeof(repo_label));
	v.host = host;
	v.repository = repo_label;
	if (job) {
		v.repository_bytes = job->repo_bytes;
		v.repository_packs = job->repo_packs;
		v.have_run = true;
		v.last_run_timestamp = (double)job->end_ns / 1e9;
		v.last_run_duration = (double)(job->end_ns - job->start_ns) / 1e9;
		v.last_run_status = job->exit_code;
		v.backup_files = job->summary.total_files_processed;
		v.backup_bytes_processed = job->summary.total_bytes_processed;
		v.backup_bytes_added = job->summary.data_added_packed;
		v.snapshots = job->snapshots;
		v.containers_stopped = job->containers_stopped;
	} else {
		/* between jobs, or after a copy: the last job's figures as the state
		 * file keeps them, so that a rewrite of the metrics does not drop them */
		json_t *st = agent_read_state(c->state_dir), *lj = json_object_get(st, "last_job");
		if (lj) {
			v.have_run = true;
			v.last_run_timestamp = json_number_value(json_object_get(lj, "ended_unix"));
			v.last_run_duration = json_number_value(json_object_get(lj, "duration_seconds"));
			v.last_run_status = (int)json_integer_value(json_object_get(lj, "exit_code"));
			v.backup_files = (uint64_t)json_integer_value(json_object_get(lj, "files"));
			v.backup_bytes_processed = (uint64_t)json_integer_value(json_object_get(lj, "bytes_processed"));
			v.backup_bytes_added = (uint64_t)json_integer_value(json_object_get(lj, "bytes_added"));
			if (json_object_get(lj, "snapshots_total"))
				v.snapshots = (int64_t)json_integer_value(json_object_get(lj, "snapshots_total"));
			v.containers_stopped = (uint64_t)json_integer_value(json_object_get(lj, "containers_stopped"));
			if (json_object_get(lj, "repository_bytes")) {
				v.repository_bytes = (int64_t)json_integer_value(json_object_get(lj, "repository_bytes"));
				v.repository_packs = (int64_t)json_integer_value(json_object_get(lj, "repository_packs"));
			}
		}
		json_decref(st);
	}
	v.last_success_timestamp = agent_g.last_success;
	v.runs_total = agent_g.runs;
	v.errors_total = agent_g.errors;
	v.ticks_skipped_total = agent_g.skipped;
	v.next_run_timestamp = (double)agent_g.next_run;
	v.check_have_run = agent_g.last_check > 0 && agent_g.check_errors >= 0;
	v.check_last_run_timestamp = (double)agent_g.last_check;
	v.check_errors = agent_g.check_errors > 0 ? (uint64_t)agent_g.check_errors : 0;
	v.check_last_success_timestamp = (double)agent_g.last_check_success;
	memcpy(v.notify_failures, agent_g.notify_failures, sizeof(v.notify_failures));
	/* the copy targets, from their records (kept across restarts) */
	struct cf_metrics_copy mc[64];
	size_t nmc = 0;
	for (size_t i = 0; i < c->ncopies && nmc < sizeof(mc) / sizeof(mc[0]); i++) {
		json_t *rec = agent_g.copies ? json_object_get(agent_g.copies, c->copies[i].name) : NULL;
		struct cf_metrics_copy *m = &mc[nmc++];
		memset(m, 0, sizeof(*m));
		m->target = c->copies[i].name;
		m->snapshots = -1;
		if (!rec)
			continue;
		m->have_run = json_object_get(rec, "ended_unix") != NULL;
		m->last_run_timestamp = (double)json_integer_value(json_object_get(rec, "ended_unix"));
		m->last_success_timestamp = (double)json_integer_value(json_object_get(rec, "last_success_unix"));
		m->last_run_duration = json_number_value(json_object_get(rec, "duration_seconds"));
		m->last_run_status = (int)json_integer_value(json_object_get(rec, "exit_code"));
		m->snapshots_copied = (uint64_t)json_integer_value(json_object_get(rec, "snapshots_copied"));
		m->bytes_added = (uint64_t)json_integer_value(json_object_get(rec, "bytes_added"));
		if (json_object_get(rec, "snapshots_total"))
			m->snapshots = (int64_t)json_integer_value(json_object_get(rec, "snapshots_total"));
		m->next_run_timestamp = (double)json_integer_value(json_object_get(rec, "due_unix"));
	}
	v.copies = mc;
	v.ncopies = nmc;
	if (agent_g.drill) {
		v.drill_have_run = true;
		v.drill_last_run_timestamp = (double)json_integer_value(json_object_get(agent_g.drill, "ended_unix"));
		v.drill_last_success_timestamp =
			(double)json_integer_value(json_object_get(agent_g.drill, "last_success_unix"));
		v.drill_last_status = (int)json_integer_value(json_object_get(agent_g.drill, "exit_code"));
		v.drill_files_verified = (uint64_t)json_integer_value(json_object_get(agent_g.drill, "files_verified"));
		v.drill_duration = json_number_value(json_object_get(agent_g.drill, "duration_seconds"));
	}
	if ((r = cf_metrics_format(&v, &text)))
		goto out;
	if (c->metrics_file && (r = cf_metrics_write_file(c->metrics_file, text.data, text.len)))
		goto out;
	if (agent_g.server)
		r = cf_metrics_server_update(agent_g.server, text.data, text.len);
out:
	if (r)
		cf_warn("coffer agent: metrics: %s", cf_errmsg(r));
	cf_buf_release(&text);
}

void agent_publish_running(const struct cf_agent_config *c)
{
	json_t *prev = agent_read_state(c->state_dir);
	agent_write_state(c, "running", json_object_get(prev, "last_job"));
	json_decref(prev);
	agent_publish_metrics(c, NULL);
}

/* ------------------------------------------------------ notifications */

/* The job's log lines so far (warnings and verbose lines, printed or not):
 * the Healthchecks body.  Kept under twice the limit; the sender cuts it. */
static struct cf_buf log_tail;

static void tap(void *ctx, const char *line, size_t n)
{
	(void)ctx;
	if (log_tail.len > 2 * CF_NOTIFY_BODY_MAX) {
		size_t drop = log_tail.len - CF_NOTIFY_BODY_MAX;
		memmove(log_tail.data, log_tail.data + drop, log_tail.len - drop);
		log_tail.len -= drop;
		log_tail.data[log_tail.len] = 0;
	}
	if (cf_buf_add(&log_tail, line, n) == CF_OK)
		cf_buf_add(&log_tail, "\n", 1);
}

static void count_failure(int kind)
{
	agent_g.notify_failures[kind]++;
}

static void notify_all(const struct cf_agent_config *c, struct cf_notify_event *e, bool *failed)
{
	char host[256];
	cf_log_set_tap(NULL, NULL); /* the tail is read while sending: no line may move it */
	agent_host(c, host, sizeof(host));
	e->host = host;
	e->log = (const char *)log_tail.data;
	e->nlog = log_tail.len;
	for (size_t i = 0; i < c->nnotify; i++) {
		const struct cf_notify_url *u = &c->notify[i];
		if (!cf_notify_wanted(u->kind, c->notify_level, e))
			continue;
		int r = cf_notify_send(u, e, c->cacert);
		if (r) {
			cf_warn("coffer agent: %s", cf_errmsg(r));
			count_failure(u->kind);
			*failed = true;
		} else {
			cf_info("coffer agent: %s notified (%s %s)", cf_notify_kind_name(u->kind), e->job, e->status);
		}
	}
}

void agent_notify_start(const struct cf_agent_config *c, const char *job)
{
	bool failed = false;
	cf_buf_reset(&log_tail);
	if (!c->nnotify)
		return; /* no tail kept: nobody reads it */
	struct cf_notify_event e = { .job = job, .status = "start", .message = "started" };
	notify_all(c, &e, &failed);
	cf_log_set_tap(tap, NULL);
}

bool agent_notify_end(const struct cf_agent_config *c, const char *job, int rc, double duration,
		      const char *message)
{
	const char *st = agent_status_word(rc);
	bool failed = false;

	cf_log_set_tap(NULL, NULL);
	if (!agent_g.notify_last)
		agent_g.notify_last = json_object();
	const char *prev = json_string_value(json_object_get(agent_g.notify_last, job));
	struct cf_notify_event e = { .job = job, .status = st, .duration = duration, .message = message,
				     .recovered = rc == CF_OK && prev && strcmp(prev, "success") };
	if (c->nnotify)
		notify_all(c, &e, &failed);
	if (agent_g.notify_last)
		json_object_set_new(agent_g.notify_last, job, json_string(st));
	cf_buf_release(&log_tail);
	return failed;
}

bool agent_post_event(const struct cf_agent_config *c, const char *type, json_t *data)
{
	struct cf_webhook_opts o = { c->webhook_url, c->webhook_secret, c->webhook_retries, c->webhook_backoff, 0,
				     c->cacert, c->webhook_retry_for, 300 };
	char now[40], host[256];
	long status = 0;
	int r;

	if (!c->webhook_url)
		return false;
	agent_host(c, host, sizeof(host));
	if (!json_object_get(data, "host"))
		json_object_set_new(data, "host", json_string(host));
	agent_utc_text(cf_now_ns(), now, sizeof(now));
	json_t *body = json_pack("{s:s, s:s, s:O}", "type", type, "timestamp", now, "data", data);
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!text)
		r = cf_err(CF_ENOMEM, "out of memory");
	else
		r = cf_webhook_post(&o, text, strlen(text), &status, NULL);
	if (r) {
		cf_warn("coffer agent: %s", cf_errmsg(r));
		count_failure(CF_NOTIFY_WEBHOOK);
	} else {
		cf_info("coffer agent: webhook delivered (HTTP %ld, %s)", status, type);
	}
	free(text);
	json_decref(body);
	return r != CF_OK;
}

static bool post_webhook(const struct cf_agent_config *c, json_t *jj)
{
	const char *st = json_string_value(json_object_get(jj, "status"));
	return agent_post_event(c, st && !strcmp(st, "success") ? "coffer.job.succeeded" : "coffer.job.failed", jj);
}

void cf_agent_report(const struct cf_agent_config *c, const struct cf_agent_job *job)
{
	char start[40], end[40], added[32];
	double secs = (double)(job->end_ns - job->start_ns) / 1e9;

	agent_g.runs++;
	if (job->rc == CF_OK)
		agent_g.last_success = (double)job->end_ns / 1e9;
	else
		agent_g.errors++;
	if (job->tick)
		agent_g.last_tick = job->tick;
	agent_utc_text(job->start_ns, start, sizeof(start));
	agent_utc_text(job->end_ns, end, sizeof(end));
	snprintf(added, sizeof(added), "%" PRIu64, job->summary.data_added_packed);
	/* one line a job, logfmt: easy to grep and to parse */
	struct cf_buf line = CF_BUF_INIT;
	cf_buf_addf(&line, "coffer agent: job start=%s end=%s result=%s exit=%d snapshot=%s files=%" PRIu64
		    " bytes_added=%s duration=%.1fs containers_stopped=%zu forgotten=%" PRIu64,
		    start, end, agent_status_word(job->rc), job->exit_code,
		    job->snapshot_id[0] ? job->snapshot_id : "none", job->summary.total_files_processed, added,
		    secs, job->containers_stopped, job->forgotten);
	if (job->stage)
		cf_buf_addf(&line, " stage=%s", job->stage);
	if (job->error[0]) {
		/* quoted as logfmt wants; messages never hold a secret */
		cf_buf_adds(&line, " error=\"");
		for (const char *p = job->error; *p; p++) {
			if (*p == '"' || *p == '\\')
				cf_buf_add(&line, "\\", 1);
			cf_buf_add(&line, *p == '\n' ? " " : p, 1);
		}
		cf_buf_adds(&line, "\"");
	}
	fprintf(stderr, "%s\n", line.data ? (char *)line.data : "coffer agent: job done (out of memory)");
	cf_buf_release(&line);
	fflush(stderr);
	json_t *jj = job_json(c, job);
	agent_write_state(c, "waiting", jj);
	agent_publish_metrics(c, job);
	/* the monitors last: the webhook may retry for minutes */
	struct cf_buf msg = CF_BUF_INIT;
	if (job->error[0])
		cf_buf_addf(&msg, "%s%s%s", job->stage ? job->stage : "", job->stage ? ": " : "", job->error);
	else
		cf_buf_addf(&msg, "snapshot %.8s, %" PRIu64 " files, %s bytes added in %.1f s",
			    job->snapshot_id[0] ? job->snapshot_id : "none", job->summary.total_files_processed, added, secs);
	bool failed = agent_notify_end(c, "backup", job->rc, secs, msg.data ? (char *)msg.data : "");
	cf_buf_release(&msg);
	if (jj && post_webhook(c, jj))
		failed = true;
	if (failed) { /* the failure counters in the state and the metrics */
		agent_write_state(c, "waiting", jj);
		agent_publish_metrics(c, job);
	}
	json_decref(jj);
}
