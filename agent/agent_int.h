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
	time_t next_run;
	struct cf_metrics_server *server;
	char host[256];   /* the host snapshots carry: resolve_host() */
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

/* report.c: the state file, read (NULL if none or unreadable; caller
 * json_decref()s) and written; the metrics of a finished job. */
json_t *agent_read_state(const char *state_dir);
void agent_write_state(const struct cf_agent_config *c, const char *agent_state, json_t *last_job);
void agent_publish_metrics(const struct cf_agent_config *c, const struct cf_agent_job *job);

#endif
