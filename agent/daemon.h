/*
 * daemon.h - `coffer agent`: the scheduled backup loop and its one job.
 *
 * The loop (cf_agent_loop) sleeps until the next tick of COFFER_SCHEDULE in
 * TZ (agent/cron.h), runs one job, reports, and goes back to sleep.  A job is
 *
 *     pre command -> open the repository -> stop labelled containers ->
 *     back up (paths + stream sources) -> start the containers again ->
 *     post command -> retention (forget by COFFER_KEEP_*, prune when a tick
 *     of COFFER_PRUNE_SCHEDULE has passed) -> check (when a tick of
 *     COFFER_CHECK_SCHEDULE has passed) -> report
 *
 * with these guarantees:
 *   - one job at a time: ticks that pass while a job runs are skipped and
 *     logged (cf_agent_ticks_between counts them), and a `coffer agent
 *     --once` beside the loop waits for the job lock (COFFER_JOB_WAIT);
 *   - containers that were stopped are started again whatever happened
 *     after the stop (failed backup, SIGTERM);
 *   - a failing pre command fails the job before anything is touched; the
 *     post command runs whenever the pre command succeeded, with
 *     COFFER_JOB_STATUS=success|partial|failed|interrupted in its environment;
 *   - SIGTERM/SIGINT during a job set cf_interrupted: the engine stops at its
 *     next safe point (no snapshot is written, earlier ones untouched), the
 *     containers are started, the result is reported and the agent exits;
 *     between jobs the agent exits at once.  SIGHUP reloads the
 *     configuration (a bad new configuration is logged and the old one kept).
 *
 * Reporting: one log line per job on stderr; the state file
 * COFFER_STATE_DIR/state.json (replaced atomically) that `coffer agent
 * --healthcheck` reads; Prometheus metrics (agent/metrics.h); a signed
 * webhook (agent/webhook.h).
 *
 * Databases (COFFER_MARIADB, COFFER_SQLITE) and commands
 * (COFFER_STDIN_COMMANDS) become stream sources through sources/sources.h, the
 * same code `coffer backup --mariadb/--sqlite/--stdin-from-command` uses.
 *
 * The loop, signals and healthcheck are daemon.c; a job job.c; the hooks
 * hooks.c; the report report.c (their shared state: agent_int.h).
 */
#ifndef CF_AGENT_DAEMON_H
#define CF_AGENT_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "agent/config.h"
#include "repo/snapshot.h"

struct cf_agent_job {
	int rc;                  /* CF_OK, CF_EPARTIAL, or the failure's code */
	int exit_code;           /* as the CLI's: 0, 1, 3, 130 ... */
	const char *stage;       /* what failed ("pre-command", "repository", "containers",
				    "databases", "backup", "retention", "check", "start-containers", "post-command"); NULL if nothing */
	char error[1024];        /* the failure's message ("" if none) */
	int64_t start_ns, end_ns;
	int64_t tick;            /* unix seconds of the schedule tick, 0 for --once */
	char snapshot_id[CF_ID_HEX];  /* "" when no snapshot was written */
	struct cf_snapshot_summary summary;
	int64_t snapshots;       /* snapshots in the repository afterwards, -1 unknown */
	size_t containers_stopped;
	uint64_t forgotten;      /* snapshots removed by COFFER_KEEP_* */
	uint64_t pruned_bytes;   /* freed by a prune (COFFER_PRUNE_SCHEDULE), 0 if none ran */
	bool checked;            /* a scheduled check ran (COFFER_CHECK_SCHEDULE) */
	uint64_t check_errors;   /* problems it found (the job fails when > 0) */
	int64_t repo_bytes, repo_packs; /* the repository's packs afterwards, -1 unknown */
	uint64_t sqlite_generations_removed, sqlite_segments_removed; /* COFFER_SQLITE_RETENTION */
};

/* Run one job now under c.  tick: the schedule tick it serves (0 = by
 * hand).  The result is in *job; returns job->exit_code.  Logs as it goes. */
int cf_agent_run_job(const struct cf_agent_config *c, int64_t tick, struct cf_agent_job *job);

/* What `coffer agent --once` exits with when the backup succeeded (or was
 * partial: 3 wins) but a copy to a COFFER_COPY_TO_* target failed. */
#define CF_AGENT_EXIT_COPY 4
/* ... and when the backup and the copies succeeded but a due restore drill
 * (COFFER_DRILL_SCHEDULE) failed. */
#define CF_AGENT_EXIT_DRILL 5

/* `coffer agent --once`: the backup job, reported, then every copy that is
 * due (after each backup that wrote a snapshot, or by its schedule), each
 * reported.  Returns the backup's exit code when it failed, else
 * CF_AGENT_EXIT_COPY when a copy failed, 130 when interrupted, else 0. */
int cf_agent_run_once(const struct cf_agent_config *c);

/* `coffer agent --run WHAT`: "backup" (as cf_agent_run_once), "copy:NAME"
 * (that copy now, due or not; its exit code as a job's: 0, 1, 11, 12, 130)
 * or "drill" (the restore drill now, configured or not; the same codes).
 * An unknown WHAT or NAME: 1 with a message naming the configured targets. */
int cf_agent_run_named(const struct cf_agent_config *c, const char *what);

/* Report a finished job: log line, state file, metrics, webhook.  Failures
 * to report are logged, not returned. */
void cf_agent_report(const struct cf_agent_config *c, const struct cf_agent_job *job);

/* The foreground loop.  c is loaded and checked; it is reloaded in place on
 * SIGHUP.  Returns the exit code: 0 after SIGTERM between jobs, the job's
 * code after SIGTERM during one, 1 when the loop cannot go on. */
int cf_agent_loop(struct cf_agent_config *c);

/* Install the agent's handlers: SIGTERM/SIGINT set cf_interrupted (a second
 * one does NOT exit at once: the containers must be started again), SIGHUP
 * requests a reload, SIGPIPE is ignored. */
void cf_agent_install_signals(void);

/* Print the next n fire times of c's schedule after now, one a line, as
 * "YYYY-MM-DD HH:MM:SS ZONE (UTC offset)" in c->tz.  CF_OK or CF_EINVAL. */
int cf_agent_print_schedule(const struct cf_agent_config *c, time_t now, int n, FILE *f);

/* How many fire times of cron (in tz) lie in (from, to].  For the "ticks
 * skipped while a job ran" log line.  Pure.  CF_OK or CF_EINVAL. */
int cf_agent_ticks_between(const struct cf_cron *cron, const char *tz, time_t from, time_t to,
			   unsigned *count);

/* The healthcheck: 0 when the state file in state_dir says the last job
 * succeeded (or none has run yet) and no job is overdue at now, else 1 with
 * the reason in why. */
int cf_agent_healthcheck(const char *state_dir, time_t now, char *why, size_t whylen);

#endif
