/*
 * agent_int.h - what the agent's files (daemon.c, job.c, hooks.c,
 * report.c) share: the counters the loop carries from job to job, the state
 * file, and a few helpers.  Not a public API: agent/daemon.h is.
 */
#ifndef CF_AGENT_INT_H
#define CF_AGENT_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/metrics.h"
#include "agent/notify.h"
#include "repo/repo.h"

#define STATE_FILE "state.json"
/* A waiting agent whose next job is this late is unhealthy (it is stuck, or
 * the clock jumped): one hour covers COFFER_JITTER's default range and slow
 * container stops. */
#define OVERDUE_GRACE 3600

/* What the loop carries from job to job (and from the last run, via the
 * state file): counters for the metrics and the healthcheck. */
struct agent_globals {
	uint64_t runs, errors, skipped;
	double last_success;
	int64_t last_tick;
	int64_t last_prune, last_check;
	int64_t check_errors;   /* problems the last scheduled check found, -1 = none ran */
	int64_t last_check_success;
	time_t next_run;
	struct cf_metrics_server *server;
	char host[256];   /* the host snapshots carry: resolve_host() */
	json_t *copies;   /* the copy targets' records: the state file's "copies" */
	json_t *drill;    /* the last restore drill: the state file's "drill" */
	/* the state file's "notify": {"last": {JOB: status}, "failures": {KIND: n}} */
	json_t *notify_last;
	uint64_t notify_failures[CF_NOTIFY_NKINDS];
};
extern struct agent_globals agent_g;


/* daemon.c: the zone to show times in (NULL: UTC); an RFC 3339 UTC time;
 * make sure the state directory exists (CF_OK or the error, message set). */
const char *agent_zone(const struct cf_agent_config *c);
void agent_utc_text(int64_t ns, char *out, size_t n);
int agent_state_dir(const struct cf_agent_config *c);

/* hooks.c: run a hook command (COFFER_PRE_COMMAND, ...) with the hooks'
 * environment: see there. */
int agent_run_hook(const struct cf_agent_config *c, const char *key, const char *cmd, const char *status,
		   const char *snapshot_id);

/* job.c: the word for a job's result ("success", "partial", ...); the
 * previous run's counters from the state file, once per process. */
const char *agent_status_word(int rc);
void agent_load_state(const struct cf_agent_config *c);

/* job.c: opening a repository (the main one or a copy target's) under
 * the agent's S3 settings, its password read now; a shared or exclusive
 * lock taken (waiting up to 10 minutes) and the index loaded.  what the
 * messages call the password key. */
struct agent_repo_spec {
	const char *location;
	const char *password_file, *password;
	const char *password_key;      /* "COFFER_PASSWORD_FILE", "COFFER_COPY_TO_X_PASSWORD_FILE" */
	const char *access_key, *secret_key, *session_token, *region;  /* NULL: the environment's */
	bool no_lock;                  /* take no lock (the replicator locks for its base copies only) */
	int max_attempts;              /* S3 attempts per request, 0 = the backend's default */
};
int agent_open_repo(const struct cf_agent_config *c, const struct agent_repo_spec *sp, bool exclusive,
		    struct cf_repo **r);
/* job.c: the one-job-at-a-time lock (COFFER_JOB_WAIT; CF_ELOCKED); the
 * CLI's exit code of a result; the host snapshots carry. */
int agent_job_lock(const struct cf_agent_config *c, int *fdp);
int agent_exit_of(int rc);
void agent_host(const struct cf_agent_config *c, char *out, size_t n);
/* job.c: retention.  Which of s[0..n) policy keep keeps (this host's
 * snapshots grouped by paths; other hosts' always kept); forgetting what
 * it does not keep in r; whether COFFER_PRUNE_SCHEDULE has ticked since
 * last_prune (never pruned: due); a prune (5% unused tolerated). */
int agent_retention_keep(const struct cf_agent_config *c, const struct cf_retention_policy *keep,
			 const struct cf_snapshot *const *s, size_t n, bool *keep_out);
int agent_forget_by_policy(const struct cf_agent_config *c, struct cf_repo *r,
			   const struct cf_retention_policy *keep, uint64_t *forgotten);
bool agent_prune_due(const struct cf_agent_config *c, int64_t last_prune, time_t now);
int agent_prune(struct cf_repo *r, uint64_t *freed);

/* copy_job.c: the copy targets (COFFER_COPY_TO_*).  One copy's result;
 * running one (under the job lock) and reporting it (log line, state,
 * metrics, webhook); whether one is due (after_backup: a backup just wrote
 * a snapshot); every due copy run and reported (0, or the first failed
 * copy's exit code; 130 when interrupted); a backup that wrote a snapshot
 * makes the after-backup targets due (for the healthcheck); the state's
 * records matched to the configured targets; a target by name (either
 * case) or -1. */
struct agent_copy_result {
	int rc, exit_code;
	const char *stage;       /* "job-lock", "source", "target", "copy", "retention", "prune"; NULL if none */
	char error[1024];
	int64_t start_ns, end_ns;
	uint64_t copied, present, not_kept, forgotten, bytes_stored, blobs_copied, pruned_bytes;
	int64_t snapshots;       /* in the target afterwards, -1 unknown */
};
int agent_run_copy(const struct cf_agent_config *c, size_t i, struct agent_copy_result *res);
void agent_report_copy(const struct cf_agent_config *c, size_t i, const struct agent_copy_result *res);
bool agent_copy_due(const struct cf_agent_config *c, size_t i, bool after_backup, time_t now);
int agent_run_copies(const struct cf_agent_config *c, bool after_backup);
void agent_copies_backup_done(const struct cf_agent_config *c, int64_t when);
void agent_copies_sync(const struct cf_agent_config *c);
long agent_copy_find_target(const struct cf_agent_config *c, const char *name);

/* drill.c: the restore drill (COFFER_DRILL_SCHEDULE).  Its result; running
 * it (job lock, latest snapshot of this host restored into the scratch
 * directory with verify, MariaDB dumps loaded into scratch databases,
 * everything removed); its report; whether it is due; both together. */
struct agent_drill_result {
	int rc, exit_code;
	const char *stage;       /* "job-lock", "repository", "snapshot", "scratch", "restore", "databases" */
	char error[1024];
	int64_t start_ns, end_ns;
	char snapshot_id[CF_ID_HEX];
	uint64_t files, verified, bytes, databases;
};
int agent_run_drill(const struct cf_agent_config *c, struct agent_drill_result *res);
void agent_report_drill(const struct cf_agent_config *c, const struct agent_drill_result *res);
bool agent_drill_due(const struct cf_agent_config *c, time_t now);
int agent_run_drill_reported(const struct cf_agent_config *c);

/* report.c: COFFER_NOTIFY_URLS.  A job (job: "backup", "copy:NAME",
 * "drill") begins: its log tail starts to be kept and the start event is
 * sent; it ended with rc after duration seconds, message saying what
 * happened in one line: the outcome is sent with the log tail.  Failures
 * are logged and counted (agent_g.notify_failures); true when one was. */
void agent_notify_start(const struct cf_agent_config *c, const char *job);
bool agent_notify_end(const struct cf_agent_config *c, const char *job, int rc, double duration,
		      const char *message);

/* report.c: a webhook event {"type": type, "timestamp": now, "data": data}
 * to COFFER_WEBHOOK_URL (if set), data given "host"; failures logged and
 * counted; true when it failed. */
bool agent_post_event(const struct cf_agent_config *c, const char *type, json_t *data);

/* report.c: the state file, read (NULL if none or unreadable; caller
 * json_decref()s) and written; the metrics of a finished job. */
json_t *agent_read_state(const char *state_dir);
void agent_write_state(const struct cf_agent_config *c, const char *agent_state, json_t *last_job);
void agent_publish_metrics(const struct cf_agent_config *c, const struct cf_agent_job *job);
/* report.c: between the jobs of one run (copies, the drill): the state file
 * says "running" with the last job kept, and the metrics are published. */
void agent_publish_running(const struct cf_agent_config *c);

#endif
