/*
 * replication.c - the agent's continuous SQLite replication
 * (COFFER_SQLITE_REPLICATE; the replicator itself is sources/replicate.h).
 *
 * The daemon starts one thread beside its schedule (agent_repl_start) that
 * opens its own repository handle (a cf_repo is not shared between
 * threads: its index, packers and lock are one session's) without a lock,
 * and runs cf_replicate_run() until agent_repl_stop() sets its stop flag;
 * the run then stores what it read (a clean SIGTERM loses nothing that was
 * committed before it).  A run that fails (a database gone, the store down
 * when a run starts) is reported and started again 10 s later.  The thread
 * blocks the signals, so SIGTERM/SIGHUP reach the loop's ppoll.  SIGHUP
 * stops the thread, reloads, and starts it again (the reload rewrites the
 * environment the thread's S3 client reads).  `agent --once` never
 * replicates.
 *
 * A scheduled backup that wrote a snapshot bumps base_request: every
 * database then starts a new generation ("backup") at its next interval,
 * so each generation spans about a day and retention can drop whole ones.
 *
 * What it reports (under R.mu, written by the replicator's status callback):
 *   - STATE_DIR/replication.json, replaced atomically at every change of a
 *     database's state and every 10 s: `coffer healthcheck` reads it (lag =
 *     now - the oldest transaction not stored; unhealthy past
 *     COFFER_SQLITE_MAX_LAG, when a database is not followed, or when the
 *     file is not refreshed while the agent says it runs);
 *   - the coffer_sqlite_replication_* gauges: rendered at each scrape of
 *     COFFER_METRICS_LISTEN, and written every 10 s to coffer-sqlite.prom
 *     beside COFFER_METRICS_FILE;
 *   - webhook events coffer.sqlite.failed (a database stops being
 *     followed, or its segments start queueing) and coffer.sqlite.recovered,
 *     posted from a helper thread so that a slow receiver does not hold the
 *     replicator.
 *
 * Retention (agent_repl_retention, from the job's retention step, under the
 * exclusive lock): whole generations whose restorable range ends before the
 * cut (the oldest snapshot kept, or now - COFFER_SQLITE_RETENTION) are
 * removed with their base snapshot; a generation that still covers a kept
 * time is kept whole (its segments replay from its base).
 */
#include "agent/agent_int.h"
#include "agent/metrics.h"
#include "agent/replication.h"
#include "sources/replicate.h"
#include "repo/segment.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REPL_FILE "replication.json"
#define REPL_WRITE_EVERY 10.0   /* seconds between rewrites of the state and the .prom file */
#define REPL_RESTART 10.0       /* seconds before a failed run is started again */

struct repl_db {
	char name[128];          /* the metrics' db label */
	char *path;
	char gen[CF_SEG_GEN_HEX];
	int64_t last_upload_ns, pending_since_ns;
	uint64_t queued_bytes;
	char state[16];          /* following, queued, outage, failed, stopped, starting */
	char error[512];
};

static struct {
	const struct cf_agent_config *c;
	pthread_t th;
	bool running;
	volatile sig_atomic_t stop;
	_Atomic unsigned base_request;
	pthread_mutex_t mu;
	struct repl_db *db;
	size_t n;
	double last_write;
	char prom[4200];         /* coffer-sqlite.prom beside COFFER_METRICS_FILE, "" = none */
	pthread_t hook;
	bool hook_running;
} R = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* "/data/app.db" -> "app" */
static void db_label(const char *path, char *out, size_t n)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	snprintf(out, n, "%s", b);
	char *dot = strrchr(out, '.');
	if (dot && dot != out)
		*dot = 0;
}

/* ---- webhook events, off the replicator's thread ---- */

struct hook_ev {
	char type[64];
	json_t *data;
};

static void *hook_main(void *arg)
{
	struct hook_ev *e = arg;
	agent_post_event(R.c, e->type, e->data);
	json_decref(e->data);
	free(e);
	return NULL;
}

static void post_async(const char *type, json_t *data)
{
	struct hook_ev *e;
	if (!R.c->webhook_url || !data || !(e = calloc(1, sizeof(*e)))) {
		json_decref(data);
		return;
	}
	if (R.hook_running)
		pthread_join(R.hook, NULL);
	R.hook_running = false;
	snprintf(e->type, sizeof(e->type), "%s", type);
	e->data = data;
	if (pthread_create(&R.hook, NULL, hook_main, e) == 0) {
		R.hook_running = true;
	} else {
		json_decref(e->data);
		free(e);
	}
}

/* ---- state file and metrics (R.mu held) ---- */

static double lag_of(const struct repl_db *d, int64_t now)
{
	return d->pending_since_ns && now > d->pending_since_ns ? (double)(now - d->pending_since_ns) / 1e9 : 0;
}

static int render(struct cf_buf *out)
{
	struct cf_metrics_sqlite v[64];
	size_t n = R.n < 64 ? R.n : 64;
	int64_t now = cf_now_ns();
	for (size_t i = 0; i < n; i++) {
		v[i].db = R.db[i].name;
		v[i].lag_seconds = lag_of(&R.db[i], now);
		v[i].last_upload_timestamp = (double)R.db[i].last_upload_ns / 1e9;
		v[i].queued_bytes = R.db[i].queued_bytes;
		v[i].up = !strcmp(R.db[i].state, "following") || !strcmp(R.db[i].state, "queued") ||
			  !strcmp(R.db[i].state, "stopped");
	}
	return cf_metrics_format_sqlite(v, n, out);
}

static int serve_extra(void *ctx, struct cf_buf *out)
{
	(void)ctx;
	pthread_mutex_lock(&R.mu);
	int r = render(out);
	pthread_mutex_unlock(&R.mu);
	return r;
}

static void write_files(const char *agent_state)
{
	char path[4200];
	json_t *st = json_object(), *dbs = json_object();
	for (size_t i = 0; st && dbs && i < R.n; i++) {
		struct repl_db *d = &R.db[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:f, s:I, s:s?}", "path", d->path, "generation", d->gen,
				      "state", d->state, "last_upload_unix", (double)d->last_upload_ns / 1e9,
				      "pending_since_unix", (double)d->pending_since_ns / 1e9,
				      "queued_bytes", (json_int_t)d->queued_bytes,
				      "error", d->error[0] ? d->error : NULL);
		json_object_set_new(dbs, d->name, o);
	}
	if (st && dbs) {
		json_object_set_new(st, "state", json_string(agent_state));
		json_object_set_new(st, "pid", json_integer(getpid()));
		json_object_set_new(st, "updated_unix", json_real((double)cf_now_ns() / 1e9));
		json_object_set_new(st, "interval_seconds", json_real(R.c->sqlite_interval));
		json_object_set_new(st, "max_lag_seconds", json_integer(R.c->sqlite_max_lag));
		json_object_set_new(st, "databases", dbs);
		dbs = NULL;
		char *text = json_dumps(st, JSON_INDENT(1));
		snprintf(path, sizeof(path), "%s/%s", R.c->state_dir, REPL_FILE);
		if (!text || cf_write_atomic(path, text, strlen(text), 0644)) {
			cf_warn("coffer agent: cannot write %s: %s", path, cf_errmsg(CF_EIO));
			cf_err_clear();
		}
		free(text);
	}
	json_decref(dbs);
	json_decref(st);
	if (R.prom[0]) {
		struct cf_buf b = CF_BUF_INIT;
		if (render(&b) == CF_OK && cf_metrics_write_file(R.prom, b.data ? (char *)b.data : "", b.len)) {
			cf_warn("coffer agent: %s", cf_errmsg(CF_EIO));
			cf_err_clear();
		}
		cf_buf_release(&b);
	}
	R.last_write = cf_now_mono();
}

static json_t *event_data(const struct repl_db *d)
{
	return json_pack("{s:s, s:s, s:s, s:s?, s:I, s:f}", "db", d->name, "path", d->path, "state", d->state,
			 "error", d->error[0] ? d->error : NULL, "queued_bytes", (json_int_t)d->queued_bytes,
			 "lag_seconds", lag_of(d, cf_now_ns()));
}

static bool is_bad(const char *state)
{
	return !strcmp(state, "queued") || !strcmp(state, "outage") || !strcmp(state, "failed");
}

/* The replicator's status callback (its thread). */
static void on_status(void *ctx, size_t i, const struct cf_replicate_status *st)
{
	(void)ctx;
	if (i >= R.n)
		return;
	pthread_mutex_lock(&R.mu);
	struct repl_db *d = &R.db[i];
	bool was_bad = is_bad(d->state), changed = strcmp(d->state, st->state) != 0;
	snprintf(d->state, sizeof(d->state), "%s", st->state);
	snprintf(d->gen, sizeof(d->gen), "%s", st->gen);
	if (st->last_upload_ns)
		d->last_upload_ns = st->last_upload_ns;
	d->pending_since_ns = st->pending_since_ns;
	d->queued_bytes = st->queued_bytes;
	snprintf(d->error, sizeof(d->error), "%s", st->error ? st->error : "");
	if (changed || cf_now_mono() - R.last_write >= REPL_WRITE_EVERY)
		write_files("running");
	json_t *ev = NULL;
	const char *type = NULL;
	if (changed && is_bad(d->state) && !was_bad) {
		type = "coffer.sqlite.failed";
		ev = event_data(d);
	} else if (changed && was_bad && !strcmp(d->state, "following")) {
		type = "coffer.sqlite.recovered";
		ev = event_data(d);
	}
	pthread_mutex_unlock(&R.mu);
	if (type)
		post_async(type, ev);
}

/* A run that ended in a failure: every database "failed" with its message. */
static void run_failed(int rc)
{
	json_t *evs[64];
	size_t nev = 0;
	pthread_mutex_lock(&R.mu);
	for (size_t i = 0; i < R.n; i++) {
		struct repl_db *d = &R.db[i];
		bool was_bad = is_bad(d->state);
		snprintf(d->state, sizeof(d->state), "failed");
		snprintf(d->error, sizeof(d->error), "%s", cf_errmsg(rc));
		/* whatever was read and not stored is lost: lag counts from it, or from now */
		if (!d->pending_since_ns)
			d->pending_since_ns = cf_now_ns();
		if (!was_bad && nev < 64)
			evs[nev++] = event_data(d);
	}
	write_files("running");
	pthread_mutex_unlock(&R.mu);
	for (size_t k = 0; k < nev; k++)
		post_async("coffer.sqlite.failed", evs[k]);
}

static void *repl_main(void *arg)
{
	(void)arg;
	const struct cf_agent_config *c = R.c;
	struct agent_repo_spec sp = { .location = c->repository, .password_file = c->password_file,
				      .password = c->password, .password_key = "COFFER_PASSWORD_FILE",
				      .no_lock = true, .max_attempts = 3 };
	char host[256];
	agent_host(c, host, sizeof(host));
	struct cf_replicate_opts o = { .paths = (const char *const *)c->sqlite_replicate,
				       .npaths = c->nsqlite_replicate, .interval = c->sqlite_interval,
				       .host = host, .retry_lock = 600, .queue_bytes = c->sqlite_queue_bytes,
				       .base_request = &R.base_request, .status = on_status };
	while (!R.stop) {
		struct cf_repo *r = NULL;
		int rc = agent_open_repo(c, &sp, false, &r);
		if (rc == CF_OK)
			rc = cf_replicate_run(r, &o, &R.stop);
		cf_repo_free(r);
		if (rc == CF_OK || R.stop)
			break;
		cf_warn("coffer agent: sqlite replication: %s; starting again in %.0f s (with a new generation)",
			cf_errmsg(rc), REPL_RESTART);
		/* the restart's own base copy stands for the backups until now */
		o.base_seen = atomic_load(&R.base_request);
		run_failed(rc);
		cf_err_clear();
		for (int k = 0; k < (int)(REPL_RESTART * 10) && !R.stop; k++) {
			struct timespec ts = { 0, 100 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	pthread_mutex_lock(&R.mu);
	for (size_t i = 0; i < R.n; i++)
		if (strcmp(R.db[i].state, "failed") && strcmp(R.db[i].state, "outage"))
			snprintf(R.db[i].state, sizeof(R.db[i].state), "stopped");
	write_files("stopped");
	pthread_mutex_unlock(&R.mu);
	return NULL;
}

int agent_repl_start(const struct cf_agent_config *c)
{
	sigset_t all, old;
	if (R.running || !c->nsqlite_replicate)
		return CF_OK;
	int r = agent_state_dir(c);
	if (r)
		return r;
	R.c = c;
	R.stop = 0;
	atomic_store(&R.base_request, 0);
	if (!(R.db = calloc(c->nsqlite_replicate, sizeof(*R.db))))
		return cf_err(CF_ENOMEM, "out of memory");
	R.n = c->nsqlite_replicate;
	for (size_t i = 0; i < R.n; i++) {
		db_label(c->sqlite_replicate[i], R.db[i].name, sizeof(R.db[i].name));
		for (size_t k = 0; k < i; k++)
			if (!strcmp(R.db[k].name, R.db[i].name)) {
				size_t l = strlen(R.db[i].name);
				snprintf(R.db[i].name + (l < 100 ? l : 100), 28, "_%zu", i + 1);
			}
		R.db[i].path = c->sqlite_replicate[i];
		snprintf(R.db[i].state, sizeof(R.db[i].state), "starting");
	}
	R.prom[0] = 0;
	if (c->metrics_file) {
		snprintf(R.prom, sizeof(R.prom), "%s", c->metrics_file);
		char *slash = strrchr(R.prom, '/');
		size_t at = slash ? (size_t)(slash + 1 - R.prom) : 0;
		snprintf(R.prom + at, sizeof(R.prom) - at, "coffer-sqlite.prom");
		if (c->metrics_file[strlen(c->metrics_file) - 1] == '/' || !strcmp(R.prom, c->metrics_file))
			snprintf(R.prom + at, sizeof(R.prom) - at, "coffer-sqlite-replication.prom");
	}
	pthread_mutex_lock(&R.mu);
	write_files("running");
	pthread_mutex_unlock(&R.mu);
	cf_metrics_server_set_extra(agent_g.server, serve_extra, NULL);
	/* libcurl's global state before a second thread uses it */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&R.th, NULL, repl_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		free(R.db);
		R.db = NULL;
		R.n = 0;
		return cf_err(CF_ENOMEM, "cannot start the replication thread: %s", strerror(e));
	}
	R.running = true;
	cf_warn("coffer agent: replicating %zu SQLite database(s) every %g s", R.n, c->sqlite_interval);
	return CF_OK;
}

void agent_repl_stop(void)
{
	if (!R.running)
		return;
	R.stop = 1;
	pthread_join(R.th, NULL);
	R.running = false;
	if (R.hook_running)
		pthread_join(R.hook, NULL);
	R.hook_running = false;
	cf_metrics_server_set_extra(agent_g.server, NULL, NULL);
	pthread_mutex_lock(&R.mu);
	free(R.db);
	R.db = NULL;
	R.n = 0;
	pthread_mutex_unlock(&R.mu);
}

void agent_repl_new_base(void)
{
	if (R.running)
		atomic_fetch_add(&R.base_request, 1);
}

/* ---- the healthcheck's part ---- */

bool agent_repl_unhealthy(const char *state_dir, time_t now, char *why, size_t whylen)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", state_dir, REPL_FILE);
	json_t *st = json_load_file(path, 0, NULL);
	bool bad = false;
	if (!st)
		return false;  /* not replicating */
	const char *state = json_string_value(json_object_get(st, "state"));
	double updated = json_number_value(json_object_get(st, "updated_unix"));
	double max_lag = json_number_value(json_object_get(st, "max_lag_seconds"));
	double interval = json_number_value(json_object_get(st, "interval_seconds"));
	if (!state || strcmp(state, "running"))
		goto out;
	/* the file is rewritten every 10 s (at each interval's report): a
	 * replicator stuck longer than the lag allowed is a lag too */
	double stale = (max_lag > interval ? max_lag : interval) + REPL_WRITE_EVERY;
	if ((double)now - updated > stale) {
		snprintf(why, whylen, "sqlite replication: no report for %.0f s (more than %.0f s: stuck or killed?)",
			 (double)now - updated, stale);
		bad = true;
		goto out;
	}
	const char *name;
	json_t *d;
	json_object_foreach(json_object_get(st, "databases"), name, d) {
		const char *ds = json_string_value(json_object_get(d, "state")) ?: "?";
		const char *err = json_string_value(json_object_get(d, "error"));
		double since = json_number_value(json_object_get(d, "pending_since_unix"));
		double lag = since > 0 && now > since ? (double)now - since : 0;
		if (!strcmp(ds, "failed") || !strcmp(ds, "outage")) {
			snprintf(why, whylen, "sqlite %s: not replicated (%s)%s%s", name, ds, err ? ": " : "", err ? err : "");
			bad = true;
			break;
		}
		if (lag > max_lag) {
			snprintf(why, whylen, "sqlite %s: replication lag %.0f s exceeds COFFER_SQLITE_MAX_LAG (%.0f s)%s%s",
				 name, lag, max_lag, err ? ": " : "", err ? err : "");
			bad = true;
			break;
		}
	}
out:
	json_decref(st);
	return bad;
}

/* ---- retention ---- */

/* The cut: restore points older than it are not kept.  0 = keep all. */
static int retention_cut(const struct cf_agent_config *c, struct cf_repo *r, int64_t *cut_ns)
{
	struct cf_snapshot *s = NULL;
	size_t n = 0;
	char host[256];
	int rc;
	*cut_ns = 0;
	if (!cf_duration_zero(&c->sqlite_retention_d)) {
		/* calendar units as the retention policy counts them: a month is 30 days here */
		const struct cf_duration *d = &c->sqlite_retention_d;
		int64_t secs = (((int64_t)d->years * 365 + (int64_t)d->months * 30 + d->days) * 24 + d->hours) * 3600;
		*cut_ns = cf_now_ns() - secs * 1000000000;
		return CF_OK;
	}
	if ((rc = cf_repo_snapshots(r, &s, &n, NULL)))
		return rc;
	agent_host(c, host, sizeof(host));
	/* the oldest snapshot of this host that is not a replica's base */
	for (size_t i = 0; i < n; i++) {
		bool replica = false;
		for (size_t k = 0; k < s[i].ntags; k++)
			replica |= !strcmp(s[i].tags[k], "sqlite-replica");
		if (!replica && s[i].hostname && !strcmp(s[i].hostname, host)) {
			*cut_ns = s[i].time_ns;
			break;
		}
	}
	cf_snapshots_free(s, n);
	return CF_OK;
}

int agent_repl_retention(const struct cf_agent_config *c, struct cf_repo *r, uint64_t *gens_removed,
			 uint64_t *segments_removed)
{
	int64_t cut;
	int rc;
	if (!c->nsqlite_replicate)
		return CF_OK;
	if ((rc = retention_cut(c, r, &cut)) || !cut)
		return rc;
	for (size_t i = 0; i < c->nsqlite_replicate; i++) {
		struct cf_seg_listing *gens = NULL;
		char db[CF_SEG_DB_HEX];
		size_t n = 0;
		if ((rc = cf_seg_db_key(r, c->sqlite_replicate[i], db)) || (rc = cf_seg_list(r, db, &gens, &n)))
			return rc;
		/* starts[k]: when generation k's base was taken (0: no readable record) */
		int64_t *starts = calloc(n ? n : 1, sizeof(*starts));
		if (!starts) {
			free(gens);
			return cf_err(CF_ENOMEM, "out of memory");
		}
		for (size_t k = 0; k < n; k++) {
			struct cf_seg_gen g = { 0 };
			if (gens[k].has_record && cf_seg_gen_get(r, db, gens[k].gen, &g) == CF_OK)
				starts[k] = g.time_ns;
			cf_err_clear();
			cf_seg_gen_release(&g);
		}
		/* A restore at T uses the newest generation starting at or before
		 * T, so generation k serves [start k, start of the next one).  It
		 * is dropped when the next one with a record starts at or before
		 * the cut: every kept time is then served by a later one.  The
		 * newest is never dropped (a replicator may be writing it). */
		int64_t next_start = 0;
		for (size_t k = n; k-- > 0;) {
			if (next_start && next_start <= cut) {
				struct cf_seg_gen g = { 0 };
				uint64_t segs = 0;
				bool have = gens[k].has_record && cf_seg_gen_get(r, db, gens[k].gen, &g) == CF_OK;
				cf_err_clear();
				if ((rc = cf_seg_gen_remove(r, db, gens[k].gen, &segs))) {
					cf_seg_gen_release(&g);
					free(starts);
					free(gens);
					return rc;
				}
				/* its base copy goes with it (prune frees the data) */
				if (have && (rc = cf_repo_forget_snapshot(r, g.snapshot)) && rc != CF_ENOENT) {
					cf_seg_gen_release(&g);
					free(starts);
					free(gens);
					return rc;
				}
				cf_err_clear();
				rc = CF_OK;
				cf_info("coffer agent: sqlite retention: %s: generation %s removed (%" PRIu64 " segments)",
					c->sqlite_replicate[i], gens[k].gen, segs);
				cf_seg_gen_release(&g);
				(*gens_removed)++;
				*segments_removed += segs;
			} else if (starts[k]) {
				next_start = starts[k];
			}
		}
		free(starts);
		free(gens);
	}
	return CF_OK;
}
