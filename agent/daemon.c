/*
 * daemon.c - the agent's loop: signals (SIGTERM and SIGINT stop it, SIGHUP
 * reloads the configuration), the schedule (the next tick, jitter, ticks
 * missed while the agent was down or skipped while a job ran), the sleep
 * between jobs, and the healthcheck that reads the state file the loop
 * writes.  A job itself is job.c, its hooks hooks.c, its report report.c;
 * the counters they share are agent_g (agent_int.h).
 */
#include "agent/daemon.h"
#include "agent/agent_int.h"
#include "engine/backup.h"
#include "engine/dircache.h"
#include "agent/docker.h"
#include "agent/metrics.h"
#include "agent/replication.h"
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

struct agent_globals agent_g = { .check_errors = -1 };

static volatile sig_atomic_t reload_requested;

/* ------------------------------------------------------------ helpers */

const char *agent_zone(const struct cf_agent_config *c)
{
	if (!c->tz || !strcmp(c->tz, "UTC") || !strcmp(c->tz, "Etc/UTC"))
		return NULL;
	return c->tz;
}

void agent_utc_text(int64_t ns, char *out, size_t n)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "2026-11-24 05:04:00 CET (+0100)" in zone tz. */
static int zone_text(const char *tz, time_t t, char *out, size_t n)
{
	struct tm tm;
	int r;
	if (!tz) {
		gmtime_r(&t, &tm);
		strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
		return CF_OK;
	}
	if ((r = cf_tz_enter(tz)) != CF_OK)
		return r;
	localtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%S %Z (%z)", &tm);
	cf_tz_leave();
	return CF_OK;
}

int agent_state_dir(const struct cf_agent_config *c)
{
	int r = cf_mkdirs(c->state_dir, 0755);
	return r ? cf_err_prefix(r, "COFFER_STATE_DIR") : CF_OK;
}

/* ------------------------------------------------------------ the loop */

static void on_stop(int sig)
{
	(void)sig;
	cf_interrupted = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	reload_requested = 1;
}

void cf_agent_install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;  /* no SA_RESTART: a sleeping agent wakes at once */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* The latest tick after `from` and at or before `to` in *latest, and how
 * many there were in *count (0: none, *latest untouched). */
static int latest_tick(const struct cf_cron *cron, const char *tz, time_t from, time_t to, time_t *latest,
		       unsigned *count)
{
	time_t t = from;
	int r;
	*count = 0;
	for (;;) {
		if ((r = cf_cron_next(cron, tz, t, &t)) != CF_OK)
			return r;
		if (t > to)
			return CF_OK;
		*latest = t;
		if (++*count >= 1000000) /* every minute for two years: enough */
			return CF_OK;
	}
}

int cf_agent_ticks_between(const struct cf_cron *cron, const char *tz, time_t from, time_t to,
			   unsigned *count)
{
	time_t latest;
	return latest_tick(cron, tz, from, to, &latest, count);
}

int cf_agent_print_schedule(const struct cf_agent_config *c, time_t now, int n, FILE *f)
{
	time_t t = now;
	char text[80];
	int r;
	for (int i = 0; i < n; i++) {
		if ((r = cf_cron_next(&c->cron, agent_zone(c), t, &t)) || (r = zone_text(agent_zone(c), t, text, sizeof(text))))
			return r;
		fprintf(f, "%s\n", text);
	}
	return CF_OK;
}

/* Sleep until `until` (wall clock) or a signal.  Signals are blocked while
 * the flags are tested and atomically unblocked by ppoll(), so one that
 * arrives in between is not lost.  Wakes at least every minute, so a
 * wall-clock jump (NTP, suspend) delays a job by at most a minute. */
static void sleep_until(time_t until)
{
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	for (;;) {
		time_t now = time(NULL);
		if (cf_interrupted || reload_requested || now >= until)
			break;
		struct timespec ts = { until - now > 60 ? 60 : until - now, 0 };
		ppoll(NULL, 0, &ts, &old);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void reload(struct cf_agent_config *c)
{
	struct cf_agent_config fresh = CF_AGENT_CONFIG_INIT;
	size_t n = c->nexported;
	char **names = c->exported, **values = calloc(n ? n : 1, sizeof(char *));
	int r;

	reload_requested = 0;
	if (!values) {
		cf_warn("coffer agent: SIGHUP: out of memory, configuration not reloaded");
		return;
	}
	/* The load unsets what the old file exported (so that the environment
	 * lookup sees only what the process started with); keep the values to
	 * put back if the new configuration is refused. */
	for (size_t i = 0; i < n; i++) {
		const char *v = getenv(names[i]);
		values[i] = v ? strdup(v) : NULL;
	}
	fresh.exported = calloc(n ? n + 1 : 1, sizeof(char *));
	for (size_t i = 0; fresh.exported && i < n; i++)
		if ((fresh.exported[i] = strdup(names[i])))
			fresh.nexported = i + 1;
	if ((r = cf_agent_config_load(&fresh, NULL, NULL)) != CF_OK) {
		cf_warn("coffer agent: SIGHUP: the new configuration is refused, keeping the old one: %s",
			cf_errmsg(r));
		for (size_t i = 0; i < fresh.nexported; i++)
			unsetenv(fresh.exported[i]);
		for (size_t i = 0; i < n; i++)
			if (values[i])
				setenv(names[i], values[i], 1);
	} else {
		cf_agent_config_release(c);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		*c = fresh;
		memset(&fresh, 0, sizeof(fresh));
		agent_g.host[0] = 0; /* COFFER_HOST may have changed: resolved again */
		cf_log_level = c->log_level;
		cf_warn("coffer agent: configuration reloaded (schedule \"%s\" in %s)", c->schedule, c->tz);
	}
	for (size_t i = 0; i < fresh.nexported; i++)
		free(fresh.exported[i]);
	free(fresh.exported);
	for (size_t i = 0; i < n; i++)
		cf_agent_secret_free(values[i]);
	free(values);
}

/* Change the agent's state, keeping the last job's record. */
static void set_agent_state(const struct cf_agent_config *c, const char *state)
{
	json_t *prev = agent_read_state(c->state_dir);
	agent_write_state(c, state, json_object_get(prev, "last_job"));
	json_decref(prev);
}

/* The backup job, then the copies that are due: the after-backup ones when
 * the backup wrote a snapshot, the scheduled ones whose tick has passed.
 * The backup's exit code when it failed, else CF_AGENT_EXIT_COPY when a
 * copy failed (130 when interrupted), else 0. */
static int run_and_report(const struct cf_agent_config *c, int64_t tick)
{
	struct cf_agent_job job;
	agent_g.next_run = 0;
	agent_load_state(c);
	agent_copies_sync(c);
	set_agent_state(c, "running");
	cf_agent_run_job(c, tick, &job);
	bool wrote = job.snapshot_id[0] != 0;
	if (wrote)
		agent_copies_backup_done(c, job.end_ns / 1000000000);
	cf_agent_report(c, &job);
	if (job.exit_code == 130 || cf_interrupted)
		return 130;
	int copies = 0, drill = 0;
	if (c->ncopies) {
		set_agent_state(c, "running");
		copies = agent_run_copies(c, wrote);
	}
	if (!cf_interrupted && agent_drill_due(c, time(NULL))) {
		set_agent_state(c, "running");
		drill = agent_run_drill_reported(c);
	}
	set_agent_state(c, "waiting");
	if (job.exit_code)
		return job.exit_code;
	if (copies == 130 || drill == 130 || cf_interrupted)
		return 130;
	if (copies)
		return CF_AGENT_EXIT_COPY;
	return drill ? CF_AGENT_EXIT_DRILL : 0;
}

int cf_agent_run_once(const struct cf_agent_config *c)
{
	return run_and_report(c, 0);
}

int cf_agent_run_named(const struct cf_agent_config *c, const char *what)
{
	if (!strcmp(what, "backup"))
		return cf_agent_run_once(c);
	if (!strcmp(what, "drill")) {
		agent_load_state(c);
		agent_copies_sync(c);
		set_agent_state(c, "running");
		int code = agent_run_drill_reported(c);
		set_agent_state(c, "waiting");
		return code;
	}
	if (!strncmp(what, "copy:", 5)) {
		long i = agent_copy_find_target(c, what + 5);
		struct agent_copy_result res;
		if (i < 0) {
			struct cf_buf names = CF_BUF_INIT;
			for (size_t k = 0; k < c->ncopies; k++)
				cf_buf_addf(&names, "%s%s", k ? ", " : "", c->copies[k].name);
			cf_warn("coffer agent: --run %s: there is no copy target \"%s\" (configured: %s)", what, what + 5,
				names.len ? (char *)names.data : "none; set COFFER_COPY_TO_<NAME>_REPOSITORY");
			cf_buf_release(&names);
			return 1;
		}
		agent_load_state(c);
		agent_copies_sync(c);
		set_agent_state(c, "running");
		int code = agent_run_copy(c, (size_t)i, &res);
		agent_report_copy(c, (size_t)i, &res);
		set_agent_state(c, "waiting");
		return code;
	}
	cf_warn("coffer agent: --run %s: not something to run (backup, copy:NAME, drill)", what);
	return 1;
}

static int loop(struct cf_agent_config *c);

int cf_agent_loop(struct cf_agent_config *c)
{
	int code = loop(c);
	/* a clean stop stores what the replicator read (the last interval) */
	agent_repl_stop();
	cf_metrics_server_free(agent_g.server);
	agent_g.server = NULL;
	return code;
}

static int loop(struct cf_agent_config *c)
{
	int code = 0, r;

	if ((r = agent_state_dir(c)) != CF_OK) {
		cf_warn("coffer agent: %s", cf_errmsg(r));
		return 1;
	}
	if (c->metrics_listen && (r = cf_metrics_serve(c->metrics_listen, &agent_g.server)) != CF_OK) {
		cf_warn("coffer agent: %s", cf_errmsg(r));
		return 1;
	}
	agent_load_state(c);
	if ((r = agent_repl_start(c)) != CF_OK) {
		cf_warn("coffer agent: %s", cf_errmsg(r));
		return 1;
	}
	cf_warn("coffer agent: started: schedule \"%s\" in %s, repository %s", c->schedule,
		c->tz ? c->tz : "UTC", c->repository);

	/* Ticks missed while the agent was down: made up only when asked, and
	 * by one job however many passed.  It stands for the latest of them, so
	 * that a restart right after it does not make up the older ones. */
	time_t missed;
	unsigned nmissed = 0;
	if (c->run_missed && agent_g.last_tick > 0 &&
	    latest_tick(&c->cron, agent_zone(c), (time_t)agent_g.last_tick, time(NULL), &missed, &nmissed) == CF_OK &&
	    nmissed) {
		char when[80];
		zone_text(agent_zone(c), missed, when, sizeof(when));
		cf_warn("coffer agent: %u tick(s) of the schedule passed while the agent was down: "
			"running one job now for the one due at %s", nmissed, when);
		code = run_and_report(c, (int64_t)missed);
	}
	while (!cf_interrupted) {
		time_t now = time(NULL), next;
		char when[80];
		if ((r = cf_cron_next(&c->cron, agent_zone(c), now, &next)) != CF_OK) {
			cf_warn("coffer agent: %s", cf_errmsg(r));
			code = 1;
			break;
		}
		time_t fire = next;
		if (c->jitter) {
			uint32_t rnd;
			cf_random(&rnd, sizeof(rnd));
			fire += (time_t)(rnd % (c->jitter + 1));
		}
		agent_g.next_run = fire;
		agent_copies_sync(c);
		set_agent_state(c, "waiting");
		agent_publish_metrics(c, NULL);
		zone_text(agent_zone(c), fire, when, sizeof(when));
		cf_info("coffer agent: next job at %s", when);
		/* a scheduled copy may be due before the next backup */
		time_t wake = fire;
		for (size_t i = 0; i < c->ncopies; i++) {
			time_t t;
			if (c->copies[i].schedule && cf_cron_next(&c->copies[i].cron, agent_zone(c), now, &t) == CF_OK &&
			    t < wake)
				wake = t;
		}
		time_t td;
		if (c->drill_schedule && strcmp(c->drill_schedule, "off") &&
		    cf_cron_next(&c->drill_cron, agent_zone(c), now, &td) == CF_OK && td < wake)
			wake = td;
		sleep_until(wake);
		if (cf_interrupted)
			break; /* between jobs: nothing to clean up */
		if (reload_requested) {
			/* the replicator reads c and the environment the reload rewrites */
			agent_repl_stop();
			reload(c);
			if ((r = agent_repl_start(c)) != CF_OK) {
				cf_warn("coffer agent: %s", cf_errmsg(r));
				return 1;
			}
			continue;
		}
		if (time(NULL) < fire) {
			if (time(NULL) >= wake && c->ncopies) {
				set_agent_state(c, "running");
				code = agent_run_copies(c, false);
				if (cf_interrupted)
					return code;
			}
			if (time(NULL) >= wake && !cf_interrupted && agent_drill_due(c, time(NULL))) {
				set_agent_state(c, "running");
				code = agent_run_drill_reported(c);
				if (cf_interrupted)
					return code;
			}
			continue;
		}
		code = run_and_report(c, (int64_t)next);
		unsigned skipped = 0;
		if (!cf_interrupted && cf_agent_ticks_between(&c->cron, agent_zone(c), next, time(NULL), &skipped) == CF_OK &&
		    skipped) {
			agent_g.skipped += skipped;
			cf_warn("coffer agent: %u tick(s) of the schedule passed while the job ran: skipped", skipped);
		}
		if (cf_interrupted)
			return code; /* SIGTERM during the job: it has cleaned up and reported */
	}
	cf_warn("coffer agent: stopping");
	return cf_interrupted ? 0 : code;
}

/* -------------------------------------------------------- healthcheck */

/* A copy target whose last copy failed, or whose next copy is overdue (its
 * due time, the next tick of its schedule or the end of a backup not yet
 * copied, more than OVERDUE_GRACE ago while the agent waits).  True with the
 * reason in why. */
static bool copy_unhealthy(json_t *copies, const char *state, time_t now, char *why, size_t whylen)
{
	const char *name;
	json_t *rec;
	json_object_foreach(copies, name, rec) {
		json_t *ec = json_object_get(rec, "exit_code");
		json_int_t due = json_integer_value(json_object_get(rec, "due_unix"));
		if (ec && json_integer_value(ec) != 0) {
			snprintf(why, whylen, "the last copy to %s %s: %s", name,
				 json_string_value(json_object_get(rec, "status")) ?: "failed",
				 json_string_value(json_object_get(rec, "error")) ?: "(no message)");
			return true;
		}
		if (state && !strcmp(state, "waiting") && due > 0 && now > due + OVERDUE_GRACE) {
			snprintf(why, whylen, "the copy to %s due at unix time %lld is more than %d s overdue", name,
				 (long long)due, OVERDUE_GRACE);
			return true;
		}
	}
	return false;
}

int cf_agent_healthcheck(const char *state_dir, time_t now, char *why, size_t whylen)
{
	json_error_t je;
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", state_dir, STATE_FILE);
	json_t *st = json_load_file(path, 0, &je), *a, *job;
	int bad = 1;

	if (!st) {
		snprintf(why, whylen, "no readable state file %s (has the agent started?): %s", path, je.text);
		return 1;
	}
	a = json_object_get(st, "agent");
	job = json_object_get(st, "last_job");
	const char *state = json_string_value(json_object_get(a, "state"));
	json_int_t next = json_integer_value(json_object_get(a, "next_run_unix"));
	if (job && json_integer_value(json_object_get(job, "exit_code")) != 0) {
		snprintf(why, whylen, "the last job %s: %s", json_string_value(json_object_get(job, "status")),
			 json_string_value(json_object_get(job, "error")) ?: "(no message)");
	} else if (state && !strcmp(state, "waiting") && next > 0 && now > next + OVERDUE_GRACE) {
		snprintf(why, whylen, "the job due at unix time %lld is more than %d s overdue", (long long)next,
			 OVERDUE_GRACE);
	} else if (copy_unhealthy(json_object_get(st, "copies"), state, now, why, whylen)) {
		/* why is set */
	} else if (agent_repl_unhealthy(state_dir, now, why, whylen)) {
		/* why is set */
	} else if (json_object_get(st, "drill") &&
		   json_integer_value(json_object_get(json_object_get(st, "drill"), "exit_code")) != 0) {
		json_t *d = json_object_get(st, "drill");
		snprintf(why, whylen, "the last restore drill %s: %s",
			 json_string_value(json_object_get(d, "status")) ?: "failed",
			 json_string_value(json_object_get(d, "error")) ?: "(no message)");
	} else {
		snprintf(why, whylen, "%s; last job: %s", state ? state : "unknown",
			 job ? json_string_value(json_object_get(job, "status")) : "none yet");
		bad = 0;
	}
	json_decref(st);
	return bad;
}
