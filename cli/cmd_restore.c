#include "cli/cli.h"
#include "agent/docker.h"
#include "agent/config.h"
#include "agent/metrics.h"
#include "agent/webhook.h"
#include "restore/db_restore.h"
#include "restore/pg_restore.h"
#include "sources/postgres.h"
#include "restore/sqlite_live.h"
#include "engine/backup.h"
#include "restore/restore.h"
#include "repo/tree.h"
#include <limits.h>
#include "crypto/crypto.h"
#include "common/error.h"
#include "common/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* restore SNAPSHOT --mariadb URL [--database DB]... [--rename OLD=NEW]... */
static int restore_databases(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	struct cf_db_restore_opts o = { c->mariadb[0], c->databases, c->ndatabases,
					c->renames, c->nrenames,
					c->mariadb_users_replace ? CF_MARIADB_USERS_REPLACE : 0 };
	size_t loaded = 0;
	int rc;

	memset(&s, 0, sizeof(s));
	if (c->nmariadb > 1)
		return fail(cf_err(CF_EINVAL, "restore: give one --mariadb server to load into"));
	if ((rc = open_repo(c, &r, 1, true)))
		return fail(rc);
	if (!(rc = pick_snapshot(c, r, c->args[0], &s))) {
		rc = cf_restore_mariadb(r, &s, &o, &loaded);
		if (!c->quiet && loaded) {
			char hex[CF_ID_HEX];
			cf_hex(s.id, CF_ID_LEN, hex);
			printf("loaded %zu database%s from snapshot %.8s\n", loaded, loaded == 1 ? "" : "s", hex);
		}
	}
	cf_snapshot_release(&s);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

/* "SNAP_PATH=DIR" (split at the first '=') */
static int parse_maps(struct cli *c, struct cf_restore_map *maps)
{
	for (size_t i = 0; i < c->npath_maps; i++) {
		const char *eq = strchr(c->path_maps[i], '=');
		if (!eq || eq == c->path_maps[i] || !eq[1])
			return cf_err(CF_EINVAL, "--path-map wants SNAPSHOT_PATH=DIR, not '%s'", c->path_maps[i]);
		maps[i].snap_path = strndup(c->path_maps[i], (size_t)(eq - c->path_maps[i]));
		maps[i].dir = eq + 1;
		if (!maps[i].snap_path)
			return cf_err(CF_ENOMEM, "out of memory");
	}
	return CF_OK;
}

/* Every --include must name something the snapshot has: a typo would
 * otherwise restore nothing and exit 0.  Looked up before anything is
 * written (the --path-map sources are checked likewise by cf_restore_run's
 * setup, also before anything is made). */
static int check_includes(const char *const *incs, size_t ninc, struct cf_repo *r, const struct cf_snapshot *s)
{
	for (size_t i = 0; i < ninc; i++) {
		const char *p = incs[i];
		struct cf_node n;
		if (p[0] != '/')
			return cf_err(CF_EINVAL, "--include %s: give an absolute snapshot path", p);
		if (!p[strspn(p, "/")])
			continue; /* "/": everything */
		int rc = cf_tree_find_path(r, s->tree, p, &n);
		if (rc == CF_ENOENT) {
			char hex[CF_ID_HEX];
			cf_hex(s->id, CF_ID_LEN, hex);
			return cf_err(CF_ENOENT, "--include %s matches nothing in snapshot %.8s; nothing was "
				      "restored (see 'coffer ls %.8s')", p, hex, hex);
		}
		if (rc)
			return rc;
		cf_node_release(&n);
	}
	return CF_OK;
}

/* restore --json: restic's status lines (doc/075_scripting.rst) on stdout,
 * while it runs; phase is coffer's: only "restoring" counts files and bytes
 * restored.  files_skipped, files_deleted and bytes_skipped (counted by the
 * workers) are in the last status line only, as restic omits zero counts. */
static void json_status(void *ctx, const struct cf_restore_status *st)
{
	(void)ctx;
	bool w = st->phase && !strcmp(st->phase, "restoring");
	json_line(stdout, json_pack("{s:s, s:I, s:f, s:I, s:I, s:I, s:I, s:s}",
		"message_type", "status", "seconds_elapsed", (json_int_t)st->seconds_elapsed,
		"percent_done", w && st->bytes_total ? (double)st->bytes_done / (double)st->bytes_total : 0.0,
		"total_files", (json_int_t)st->files_total, "files_restored", (json_int_t)(w ? st->files_done : 0),
		"total_bytes", (json_int_t)st->bytes_total, "bytes_restored", (json_int_t)(w ? st->bytes_done : 0),
		"phase", st->phase ? st->phase : ""));
}

static double restore_started; /* cf_now_mono() when cf_restore_run began */

/* restore --json's summary: restic's keys, then coffer's own */
static json_t *json_summary(struct cli *c, const struct cf_snapshot *s, const struct cf_restore_stats *st)
{
	char hex[CF_ID_HEX];
	cf_hex(s->id, CF_ID_LEN, hex);
	uint64_t written = st->files_created + st->files_replaced + st->files_linked;
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
			 " s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"message_type", "summary", "seconds_elapsed", (json_int_t)(cf_now_mono() - restore_started),
		"total_files", (json_int_t)(written + st->files_kept), "files_restored", (json_int_t)written,
		"files_skipped", (json_int_t)st->files_kept, "files_deleted", (json_int_t)st->deleted,
		"total_bytes", (json_int_t)(st->bytes_written + st->bytes_kept),
		"bytes_restored", (json_int_t)st->bytes_written, "bytes_skipped", (json_int_t)st->bytes_kept,
		"snapshot_id", hex, "dry_run", c->dry_run, "files_created", (json_int_t)st->files_created,
		"files_replaced", (json_int_t)st->files_replaced, "files_linked", (json_int_t)st->files_linked,
		"dirs_restored", (json_int_t)st->dirs, "bytes_deleted", (json_int_t)st->bytes_deleted,
		"files_verified", (json_int_t)st->verified, "errors", (json_int_t)st->errors);
}

static void print_summary(struct cli *c, const struct cf_snapshot *s, const struct cf_restore_stats *st)
{
	char hex[CF_ID_HEX], w[32], k[32], d[32];
	cf_hex(s->id, CF_ID_LEN, hex);
	human(st->bytes_written, w, sizeof(w));
	human(st->bytes_kept, k, sizeof(k));
	human(st->bytes_deleted, d, sizeof(d));
	if (c->json) {
		/* a last status line (there is at least one), then the summary */
		json_t *j = json_summary(c, s, st);
		json_t *f = json_pack("{s:s, s:f}", "message_type", "status", "percent_done", 1.0);
		const char *keys[] = { "seconds_elapsed", "total_files", "files_restored", "files_skipped",
				       "files_deleted", "total_bytes", "bytes_restored", "bytes_skipped" };
		for (size_t i = 0; j && f && i < sizeof(keys) / sizeof(keys[0]); i++)
			json_object_set(f, keys[i], json_object_get(j, keys[i]));
		json_line(stdout, f);
		json_line(stdout, j);
		return;
	}
	printf("%s snapshot %.8s: %llu files written (%llu new, %llu replaced, %llu links), %s; "
	       "%llu unchanged files skipped, %s; %llu entries deleted, %s; %llu directories; "
	       "%llu errors\n", c->dry_run ? "dry run of" : "restored", hex,
	       (unsigned long long)(st->files_created + st->files_replaced + st->files_linked),
	       (unsigned long long)st->files_created, (unsigned long long)st->files_replaced,
	       (unsigned long long)st->files_linked, w, (unsigned long long)st->files_kept, k,
	       (unsigned long long)st->deleted, d, (unsigned long long)st->dirs,
	       (unsigned long long)st->errors);
	if (c->verify && !c->dry_run)
		printf("verified %llu files against the snapshot\n", (unsigned long long)st->verified);
}

/* ---------- restore SNAPSHOT --all ---------- */

/* Is snapshot path p at or beneath dir?  (both absolute, no trailing '/') */
static bool path_under(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '/')
		return true;
	return !strncmp(p, dir, n) && (p[n] == '/' || !p[n]);
}

/* Where snapshot directory snap goes: the --path-map whose SNAP_PATH is snap or
 * the nearest above it (its DIR plus the rest of snap), else snap itself.
 * malloc'd. */
static char *mapped_dir(const struct cf_restore_map *maps, size_t nmaps, const char *snap)
{
	const struct cf_restore_map *best = NULL;
	size_t bestn = 0;
	for (size_t i = 0; i < nmaps; i++) {
		size_t n = strlen(maps[i].snap_path);
		while (n > 1 && maps[i].snap_path[n - 1] == '/')
			n--;
		if ((!best || n > bestn) && !strncmp(snap, maps[i].snap_path, n) &&
		    (snap[n] == '/' || !snap[n])) {
			best = &maps[i];
			bestn = n;
		}
	}
	if (!best)
		return strdup(snap);
	char *out = NULL;
	return asprintf(&out, "%s%s", best->dir, snap + bestn) < 0 ? NULL : out;
}

static double secs_since(int64_t t0)
{
	return (double)(cf_now_ns() - t0) / 1e9;
}

/* The counts a plan and the report print alike, so that they can be compared. */
static void print_counts(const struct cf_restore_stats *st)
{
	printf("%llu new, %llu replaced, %llu bytes; %llu deleted, %llu bytes; %llu unchanged",
	       (unsigned long long)st->files_created, (unsigned long long)(st->files_replaced + st->files_linked),
	       (unsigned long long)st->bytes_written, (unsigned long long)st->deleted,
	       (unsigned long long)st->bytes_deleted, (unsigned long long)st->files_kept);
}

/* One part of the restore: a volume (a mirrored directory) or an SQLite file. */
struct all_item {
	const struct cf_snapshot_source *src;
	char *dir;                 /* the directory restored into */
	struct cf_restore_map map; /* the source's directory (volume) or the file's directory */
	const char *inc;           /* SQLite: the file */
};

static int run_item(struct cli *c, struct cf_repo *r, const struct cf_snapshot *s, struct all_item *it,
		    enum cf_overwrite ow, bool dry, struct cf_restore_stats *st)
{
	struct cf_restore_opts o;
	memset(&o, 0, sizeof(o));
	memset(st, 0, sizeof(*st));
	o.maps = &it->map;
	o.nmaps = 1;
	o.includes = it->inc ? &it->inc : NULL;
	o.nincludes = it->inc ? 1 : 0;
	o.excludes = c->excludes;
	o.nexcludes = c->nexcludes;
	o.overwrite = ow;
	o.delete_extra = !it->inc; /* a volume is mirrored; beside an SQLite file nothing is removed */
	o.dry_run = dry;
	o.verify = c->verify && !dry;
	o.threads = c->threads;
	o.progress = !dry && !c->quiet && isatty(2);
	o.listing = dry && c->verbose ? stdout : NULL;
	return cf_restore_run(r, s, &o, st);
}

static bool confirm(void)
{
	char line[64];
	printf("restore all of this? [y/N] ");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

/* The name a dump is loaded under: --rename OLD=NEW, else its own; NULL when
 * --database leaves it out. */
static const char *db_target(struct cli *c, const struct cf_snapshot_db *d)
{
	bool chosen = !c->ndatabases;
	for (size_t i = 0; i < c->ndatabases; i++)
		chosen |= !strcmp(c->databases[i], d->name);
	if (!chosen)
		return NULL;
	for (size_t i = 0; i < c->nrenames; i++) {
		const char *eq = strchr(c->renames[i], '=');
		if (eq && (size_t)(eq - c->renames[i]) == strlen(d->name) &&
		    !strncmp(c->renames[i], d->name, strlen(d->name)))
			return eq + 1;
	}
	return d->name;
}

/* ---------- SQLite files in use (issue 25) ---------- */

struct guard {
	struct cf_sqlite_aside *v;
	char **dest;
	size_t n;
};

/* One SQLite database about to be written at dest: refused while in use
 * unless --force, whose -wal/-shm are then moved aside until the swap. */
static int guard_one(struct cli *c, struct guard *g, const char *dest)
{
	char why[600];
	bool busy;
	int rc;
	if ((rc = cf_sqlite_live_check(dest, &busy, why, sizeof(why))) || !busy)
		return rc;
	if (!c->force)
		return cf_err(CF_EINVAL, "SQLite database %s is in use: %s; stop what uses it (restore --all stops "
			      "its containers) or add --force, which removes its -wal/-shm with the swap (their "
			      "changes are lost); nothing was restored", dest, why);
	printf("--force: %s is in use (%s): its -wal/-shm are removed with the swap\n", dest, why);
	if (!(g->dest[g->n] = strdup(dest)))
		return cf_err(CF_ENOMEM, "out of memory");
	if ((rc = cf_sqlite_live_aside(dest, &g->v[g->n]))) {
		free(g->dest[g->n]);
		return rc;
	}
	g->n++;
	return CF_OK;
}

static int guard_alloc(struct guard *g, size_t n)
{
	memset(g, 0, sizeof(*g));
	g->v = calloc(n + 1, sizeof(*g->v));
	g->dest = calloc(n + 1, sizeof(*g->dest));
	return g->v && g->dest ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}

/* After the restore: a file replaced loses its side files, one that was not
 * gets them back. */
static void guard_done(struct guard *g, int rc, const struct cf_restore_stats *st)
{
	for (size_t i = 0; i < g->n; i++) {
		bool replaced = rc == CF_OK || rc == CF_EPARTIAL;
		for (size_t k = 0; st && replaced && k < st->nfailed; k++)
			replaced = strcmp(st->failed[k], g->dest[i]) != 0;
		cf_sqlite_live_done(&g->v[i], replaced);
		free(g->dest[i]);
	}
	free(g->v);
	free(g->dest);
	memset(g, 0, sizeof(*g));
}

/* Plain restore: where each recorded SQLite file the restore writes lands
 * (a --path-map covering it, else --target + its path). */
static int guard_plain(struct cli *c, const struct cf_snapshot *s, const struct cf_restore_opts *o, struct guard *g)
{
	int rc;
	if ((rc = guard_alloc(g, s->nsources)))
		return rc;
	for (size_t i = 0; i < s->nsources; i++) {
		const struct cf_snapshot_source *src = &s->sources[i];
		if (src->kind != CF_SOURCE_SQLITE || !src->path)
			continue;
		bool inc = !o->nincludes;
		for (size_t k = 0; k < o->nincludes && !inc; k++)
			inc = path_under(src->path, o->includes[k]);
		if (!inc)
			continue;
		bool mapped = false;
		for (size_t k = 0; k < o->nmaps && !mapped; k++)
			mapped = path_under(src->path, o->maps[k].snap_path);
		char *dest = NULL;
		if (mapped)
			dest = mapped_dir(o->maps, o->nmaps, src->path);
		else if (o->target && asprintf(&dest, "%s%s", o->target[strspn(o->target, "/")] ? o->target : "",
					       src->path) < 0)
			dest = NULL;
		else if (!o->target)
			continue;
		if (!dest)
			return cf_err(CF_ENOMEM, "out of memory");
		rc = guard_one(c, g, dest);
		free(dest);
		if (rc)
			return rc;
	}
	return CF_OK;
}

/* The Docker engine restore --all stops containers through: COFFER_DOCKER_HOST,
 * else DOCKER_HOST (either given: explicit, an engine that cannot be reached
 * refuses the restore), else /var/run/docker.sock when it exists. */
struct engine {
	char *sock;       /* the engine (socket path or http:// URL); NULL: containers are not handled */
	bool explicit_;
	struct cf_docker_match match;
	const char *label;
	char alias[320]; /* offen's name for label (cf_docker_stop_alias) */
	unsigned timeout;
};

static int engine_setup(struct cli *c, struct engine *e, const char *const *dirs, size_t ndirs)
{
	const char *key = "COFFER_DOCKER_HOST", *v = getenv(key), *t = getenv("COFFER_STOP_TIMEOUT");

	memset(e, 0, sizeof(*e));
	e->label = getenv("COFFER_STOP_LABEL");
	if (!e->label || !*e->label)
		e->label = "coffer.stop-during-backup=true";
	e->timeout = 30;
	if (t && *t) {
		char *end;
		unsigned long n = strtoul(t, &end, 10);
		if (*end || n > 3600)
			return cf_err(CF_EINVAL, "COFFER_STOP_TIMEOUT: \"%s\" is not a number of seconds (0-3600)", t);
		e->timeout = (unsigned)n;
	}
	int r = cf_docker_stop_alias(e->label, e->alias, sizeof(e->alias));
	if (r)
		return cf_err_prefix(r, "COFFER_STOP_LABEL");
	e->match.label = e->label;
	e->match.alias = e->alias;
	e->match.paths = dirs;
	e->match.npaths = ndirs;
	if (c->no_stop)
		return CF_OK;
	if (!v) {
		key = "DOCKER_HOST";
		v = getenv(key);
	}
	if (v) {
		e->explicit_ = true;
		return cf_docker_parse_host(key, v, &e->sock);
	}
	if (access("/var/run/docker.sock", F_OK)) {
		printf("no Docker engine at /var/run/docker.sock (nor COFFER_DOCKER_HOST or DOCKER_HOST): no "
		       "containers are stopped\n");
		return CF_OK;
	}
	if (!(e->sock = strdup("/var/run/docker.sock")))
		return cf_err(CF_ENOMEM, "out of memory");
	return CF_OK;
}

static void print_names(const struct cf_docker_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		printf("%s%s", i ? ", " : "", set->names[i]);
}

/* ---------- reporting a restore like the agent reports a backup ---------- */

/* One part's outcome in the report: kind, what, where, and how it went. */
static void part_add(json_t *parts, const char *kind, const char *name, const char *to, int r,
		     const struct cf_restore_stats *st, double secs)
{
	json_t *j = json_pack("{s:s, s:s, s:s?, s:s, s:f}", "kind", kind, "source", name, "target", to,
			      "status", r == CF_OK ? "restored" : r == CF_EPARTIAL ? "partial" : "failed",
			      "duration_seconds", secs);
	if (!j)
		return;
	if (r && r != CF_EPARTIAL)
		json_object_set_new(j, "error", json_string(cf_errmsg(r)));
	if (st) {
		json_object_set_new(j, "files_written", json_integer((json_int_t)(st->files_created +
						st->files_replaced + st->files_linked)));
		json_object_set_new(j, "bytes_written", json_integer((json_int_t)st->bytes_written));
		json_object_set_new(j, "entries_deleted", json_integer((json_int_t)st->deleted));
		json_object_set_new(j, "entries_failed", json_integer((json_int_t)st->nfailed));
	}
	json_array_append_new(parts, j);
}

/* COFFER_WEBHOOK_URL gets coffer.restore.succeeded or coffer.restore.failed,
 * signed with COFFER_WEBHOOK_SECRET(_FILE) as the agent's job reports are. */
static void post_restore_webhook(struct cli *c, json_t *data, bool ok)
{
	const char *url = getenv("COFFER_WEBHOOK_URL"), *sec = getenv("COFFER_WEBHOOK_SECRET");
	const char *secfile = getenv("COFFER_WEBHOOK_SECRET_FILE"), *rt = getenv("COFFER_WEBHOOK_RETRIES");
	char *filesec = NULL, *text = NULL, now[40];
	long status = 0;
	int r = CF_OK;

	if (!url || !*url)
		return;
	if (secfile && *secfile && (r = cf_agent_read_secret(secfile, "COFFER_WEBHOOK_SECRET_FILE", &filesec)))
		goto out;
	time_t t = time(NULL);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	json_t *body = json_pack("{s:s, s:s, s:O}", "type", ok ? "coffer.restore.succeeded" : "coffer.restore.failed",
				 "timestamp", now, "data", data);
	text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(body);
	if (!text) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	/* the agent's retry settings (it validates them), but one minute unless
	 * told: someone may be waiting for the command to end */
	const char *rf = getenv("COFFER_WEBHOOK_RETRY_FOR"), *bo = getenv("COFFER_WEBHOOK_BACKOFF");
	char *unit = NULL;
	double retry_for = rf && *rf ? strtod(rf, &unit) : 60;
	if (unit && *unit)
		retry_for *= *unit == 'm' ? 60 : *unit == 'h' ? 3600 : *unit == 'd' ? 86400 : 1;
	struct cf_webhook_opts o = { url, filesec ? filesec : sec && *sec ? sec : NULL,
				     rt && *rt ? (unsigned)strtoul(rt, NULL, 10) : 10, bo && *bo ? strtod(bo, NULL) : 5, 0,
				     c->cacert, retry_for, 300 };
	if (o.retries > 100)
		o.retries = 100;
	r = cf_webhook_post(&o, text, strlen(text), &status, NULL);
out:
	if (r)
		fprintf(stderr, "coffer: webhook: %s\n", cf_errmsg(r));
	else if (c->verbose)
		printf("webhook delivered (HTTP %ld)\n", status);
	free(text);
	cf_agent_secret_free(filesec);
}

/* The restore's gauges in their own textfile, beside the agent's (a
 * node_exporter textfile collector reads every *.prom of the directory):
 * COFFER_RESTORE_METRICS_FILE, else coffer-restore.prom in the directory of
 * COFFER_METRICS_FILE.  The agent's own file is rewritten by the agent after
 * each job, so it is not touched here. */
static void write_restore_metrics(int exit_code_, double end, double secs, size_t nfailed)
{
	const char *f = getenv("COFFER_RESTORE_METRICS_FILE"), *m = getenv("COFFER_METRICS_FILE");
	struct cf_buf path = CF_BUF_INIT, text = CF_BUF_INIT, old = CF_BUF_INIT;
	double last_ok = 0;
	int r;

	if (f && *f)
		r = cf_buf_adds(&path, f);
	else if (m && *m) {
		const char *sl = strrchr(m, '/');
		r = sl ? cf_buf_addf(&path, "%.*s/coffer-restore.prom", (int)(sl - m), m)
		       : cf_buf_adds(&path, "coffer-restore.prom");
	} else
		return;
	if (r)
		goto out;
	FILE *in = fopen((const char *)path.data, "r");
	if (in) { /* a failed restore keeps the last success */
		char line[256];
		while (fgets(line, sizeof(line), in))
			if (sscanf(line, "coffer_restore_last_success_timestamp_seconds %lf", &last_ok) == 1)
				break;
		fclose(in);
	}
	if (!exit_code_)
		last_ok = end;
	r = cf_buf_addf(&text,
			"# HELP coffer_restore_last_run_timestamp_seconds End of the last restore --all.\n"
			"# TYPE coffer_restore_last_run_timestamp_seconds gauge\n"
			"coffer_restore_last_run_timestamp_seconds %.3f\n"
			"# HELP coffer_restore_last_success_timestamp_seconds End of the last restore --all that restored every part.\n"
			"# TYPE coffer_restore_last_success_timestamp_seconds gauge\n"
			"coffer_restore_last_success_timestamp_seconds %.3f\n"
			"# HELP coffer_restore_last_run_duration_seconds How long the last restore --all took.\n"
			"# TYPE coffer_restore_last_run_duration_seconds gauge\n"
			"coffer_restore_last_run_duration_seconds %.3f\n"
			"# HELP coffer_restore_last_run_status Exit code of the last restore --all (0 ok).\n"
			"# TYPE coffer_restore_last_run_status gauge\n"
			"coffer_restore_last_run_status %d\n"
			"# HELP coffer_restore_last_run_parts_failed Parts (volumes, files, databases) the last restore --all did not restore.\n"
			"# TYPE coffer_restore_last_run_parts_failed gauge\n"
			"coffer_restore_last_run_parts_failed %zu\n",
			end, last_ok, secs, exit_code_, nfailed);
	if (!r)
		r = cf_metrics_write_file((const char *)path.data, text.data, text.len);
out:
	if (r)
		fprintf(stderr, "coffer: restore metrics: %s\n", cf_errmsg(r));
	cf_buf_release(&path);
	cf_buf_release(&text);
	cf_buf_release(&old);
}

static int restore_all(struct cli *c)
{
	json_t *parts = json_array();
	bool report = false;
	int64_t t_start = 0;
	struct engine eng = { 0 };
	struct guard g = { 0 };
	struct cf_docker_set found = CF_DOCKER_SET_INIT, stopped = CF_DOCKER_SET_INIT;
	const char **dirs = NULL;
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	struct cf_restore_map maps[MAXV];
	struct all_item *items = NULL;
	struct cf_restore_stats *plan = NULL;
	size_t nitems = 0, ndbsrc = 0, npgsrc = 0;
	enum cf_overwrite ow = CF_OVERWRITE_IF_CHANGED;
	const char *url = c->nmariadb ? c->mariadb[0] : getenv("COFFER_MARIADB");
	const char *pgurl = c->npostgres ? c->postgres[0] : getenv("COFFER_POSTGRES");
	char hex[CF_ID_HEX];
	int rc, failed = 0;

	memset(&s, 0, sizeof(s));
	memset(maps, 0, sizeof(maps));
	if (url && !*url)
		url = NULL;
	if (pgurl && !*pgurl)
		pgurl = NULL;
	if (c->target || c->nincludes || c->restore_delete)
		return fail(cf_err(CF_EINVAL, "restore --all restores each source to its own path: "
				   "--target, --include and --delete do not go with it (use --path-map)"));
	if (c->json)
		return fail(cf_err(CF_EINVAL, "restore --all has no --json output yet"));
	if (c->nmariadb > 1)
		return fail(cf_err(CF_EINVAL, "restore: give one --mariadb server to load into"));
	if (c->npostgres > 1)
		return fail(cf_err(CF_EINVAL, "restore: give one --postgres server to load into"));
	if (c->npostgres && (rc = cf_pgurl_check(pgurl)))
		return fail(rc);
	if (c->overwrite && (rc = cf_restore_parse_overwrite(c->overwrite, &ow)))
		return fail(rc);
	if ((rc = parse_maps(c, maps)))
		goto out;
	if ((rc = open_repo(c, &r, 1, true)))
		goto out;
	if ((rc = pick_snapshot(c, r, c->args[0], &s)))
		goto out;
	cf_hex(s.id, CF_ID_LEN, hex);
	if (!s.nsources) {
		rc = cf_err(CF_EINVAL, "snapshot %.8s predates source records: --all cannot tell where its "
			    "contents came from; restore it with --target DIR [--include PATH]", hex);
		goto out;
	}
	if (!(items = calloc(s.nsources, sizeof(*items))) || !(plan = calloc(s.nsources, sizeof(*plan)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	/* volumes first, then SQLite files */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < s.nsources; i++) {
			const struct cf_snapshot_source *src = &s.sources[i];
			if (src->kind != (pass ? CF_SOURCE_SQLITE : CF_SOURCE_VOLUME) || !src->path)
				continue;
			struct all_item *it = &items[nitems];
			it->src = src;
			if (src->kind == CF_SOURCE_VOLUME) {
				it->map.snap_path = src->path;
			} else {
				char *slash = strrchr(src->path, '/');
				if (!slash || slash == src->path) {
					rc = cf_err(CF_EINVAL, "restore --all: SQLite source %s has no directory", src->path);
					goto out;
				}
				if (!(it->map.snap_path = strndup(src->path, (size_t)(slash - src->path)))) {
					rc = cf_err(CF_ENOMEM, "out of memory");
					goto out;
				}
				it->inc = src->path;
			}
			if (!(it->dir = mapped_dir(maps, c->npath_maps, it->map.snap_path))) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			it->map.dir = it->dir;
			nitems++;
		}
	for (size_t i = 0; i < s.nsources; i++) {
		ndbsrc += s.sources[i].kind == CF_SOURCE_MARIADB;
		npgsrc += s.sources[i].kind == CF_SOURCE_POSTGRES;
	}
	if (ndbsrc && !url) {
		rc = cf_err(CF_EINVAL, "snapshot %.8s holds MariaDB dumps: give --mariadb URL (or set "
			    "COFFER_MARIADB) to load them into", hex);
		goto out;
	}
	if (npgsrc && !pgurl) {
		rc = cf_err(CF_EINVAL, "snapshot %.8s holds PostgreSQL dumps: give --postgres URL (or set "
			    "COFFER_POSTGRES) to load them into", hex);
		goto out;
	}
	/* COFFER_POSTGRES is checked when it is used */
	if (npgsrc && !c->npostgres && (rc = cf_pgurl_check(pgurl)))
		goto out;

	/* the containers: asked before the plan, so that an engine that cannot
	 * be reached refuses the restore before anything is written */
	if (!(dirs = calloc(nitems + 1, sizeof(*dirs)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nitems; i++)
		dirs[i] = items[i].dir;
	if ((rc = engine_setup(c, &eng, dirs, nitems)))
		goto out;
	if (eng.sock && (rc = cf_docker_find(eng.sock, &eng.match, &found))) {
		rc = cf_err_prefix(rc, "restore --all: cannot tell which containers to stop (nothing was "
				   "changed; --no-stop restores with them running)");
		goto out;
	}

	/* the plan: every part run as a dry run, nothing written */
	printf("plan for restoring snapshot %.8s%s (per volume: files to write, new and replaced, and their "
	       "bytes; entries to delete and their bytes; files unchanged):\n", hex,
	       c->dry_run ? ", a dry run: nothing is changed" : "");
	for (size_t i = 0; i < nitems; i++) {
		struct all_item *it = &items[i];
		if ((rc = run_item(c, r, &s, it, ow, true, &plan[i])))
			goto out;
		if (it->inc)
			printf("  sqlite %s -> %s: ", it->inc, it->dir);
		else
			printf("  volume %s -> %s: ", it->src->path, it->dir);
		print_counts(&plan[i]);
		printf("\n");
	}
	for (size_t i = 0; i < s.nsources; i++) {
		const struct cf_snapshot_source *src = &s.sources[i];
		if (src->kind == CF_SOURCE_MARIADB || src->kind == CF_SOURCE_POSTGRES) {
			bool pg = src->kind == CF_SOURCE_POSTGRES;
			char *safe = cf_snapshot_strip_url(pg ? pgurl : url);
			for (size_t k = 0; k < src->ndbs; k++) {
				const char *to = db_target(c, &src->dbs[k]);
				if (to)
					printf("  %sdatabase %s on %s: %s replaced by the dump %s\n", pg ? "PostgreSQL " : "",
					       to, safe ? safe : "the server",
					       pg ? "the whole database is" : "its tables, views and routines are",
					       src->dbs[k].path);
			}
			free(safe);
		} else if (src->kind == CF_SOURCE_COMMAND && src->path) {
			char *abs = NULL;
			bool in_vol = false;
			if (asprintf(&abs, "/%s", src->path + strspn(src->path, "/")) < 0) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			for (size_t k = 0; k < nitems && !in_vol; k++)
				in_vol = !items[k].inc && path_under(abs, items[k].src->path);
			if (in_vol)
				printf("  command dump %s: restored with its volume\n", abs);
			else
				printf("  command dump %s: not restored: a command dump (restore it with --include %s)\n",
				       abs, abs);
			free(abs);
		}
	}
	if (c->no_stop)
		printf("  containers: not stopped (--no-stop)\n");
	else if (eng.sock && found.n) {
		printf("  containers stopped while restoring and started again afterwards: ");
		print_names(&found);
		printf("\n");
	} else if (eng.sock) {
		printf("  containers: none to stop (none running carries %s or mounts a volume restored)\n",
		       eng.label);
	}
	fflush(stdout);
	if (c->dry_run)
		goto out;
	if (!c->yes) {
		if (!isatty(0) || !isatty(1)) {
			fprintf(stderr, "coffer: restore --all overwrites the sources above: add --yes to run it "
				"without a terminal to confirm on (nothing was changed)\n");
			rc = CF_OK;
			failed = 2;
			goto out;
		}
		if (!confirm()) {
			printf("nothing was changed\n");
			goto out;
		}
	}

	report = true;
	t_start = cf_now_ns();
	/* asked again: the answer may have waited at the prompt */
	if (eng.sock) {
		cf_docker_set_release(&found);
		if ((rc = cf_docker_find(eng.sock, &eng.match, &found)) ||
		    (rc = cf_docker_stop(eng.sock, &found, eng.timeout, &stopped))) {
			rc = cf_err_prefix(rc, "restore --all: stopping the containers failed (nothing was "
					   "restored; those stopped are started again)");
			goto out;
		}
		if (stopped.n) {
			printf("stopped containers: ");
			print_names(&stopped);
			printf("\n");
		}
	}
	if (cf_interrupted) {
		failed = exit_code(CF_EINTR);
		fprintf(stderr, "coffer: interrupted before anything was restored\n");
		goto out;
	}

	/* SQLite files in use: checked with the containers down (they were
	 * the users, most likely) and before anything is written */
	if ((rc = guard_alloc(&g, nitems)))
		goto out;
	for (size_t i = 0; i < nitems; i++) {
		if (!items[i].inc)
			continue;
		const char *base = strrchr(items[i].inc, '/') + 1;
		char *dest = NULL;
		if (asprintf(&dest, "%s/%s", items[i].dir, base) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		rc = guard_one(c, &g, dest);
		free(dest);
		if (rc)
			goto out;
	}

	/* volumes, then SQLite files (items are in that order), then databases */
	printf("restoring snapshot %.8s (files written, entries deleted, files unchanged, time):\n", hex);
	for (size_t i = 0; i < nitems; i++) {
		struct all_item *it = &items[i];
		struct cf_restore_stats st;
		int64_t t0 = cf_now_ns();
		int r1 = run_item(c, r, &s, it, ow, false, &st);
		const char *what = it->inc ? "sqlite" : "volume", *name = it->inc ? it->inc : it->src->path;
		fflush(stdout);
		part_add(parts, what, name, it->dir, r1, r1 && r1 != CF_EPARTIAL ? NULL : &st, secs_since(t0));
		if (r1 && r1 != CF_EPARTIAL) {
			fprintf(stderr, "coffer: %s %s was not restored: %s\n", what, name, cf_errmsg(r1));
			failed = failed ? failed : exit_code(r1);
		} else {
			printf("  %s %s -> %s: ", what, name, it->dir);
			print_counts(&st);
			printf("; %.2f s%s\n", secs_since(t0), r1 ? " (some entries failed)" : "");
			fflush(stdout);
			for (size_t k = 0; k < st.nfailed; k++)
				fprintf(stderr, "coffer: %s %s: could not restore %s\n", what, name, st.failed[k]);
			if (r1)
				failed = failed ? failed : exit_code(r1);
		}
		for (size_t k = 0; it->inc && k < g.n; k++) {
			char *dest = NULL;
			if (asprintf(&dest, "%s/%s", it->dir, strrchr(it->inc, '/') + 1) >= 0 && !strcmp(dest, g.dest[k])) {
				bool ok = !r1 || r1 == CF_EPARTIAL;
				for (size_t f = 0; ok && f < st.nfailed; f++)
					ok = strcmp(st.failed[f], dest) != 0;
				cf_sqlite_live_done(&g.v[k], ok);
			}
			free(dest);
		}
		cf_restore_stats_release(&st);
		if (r1 == CF_EINTR)
			goto out;
	}
	for (size_t i = 0; i < s.nsources; i++) {
		const struct cf_snapshot_source *src = &s.sources[i];
		bool pg = src->kind == CF_SOURCE_POSTGRES;
		if (src->kind != CF_SOURCE_MARIADB && !pg)
			continue;
		for (size_t k = 0; k < src->ndbs; k++) {
			const struct cf_snapshot_db *d = &src->dbs[k];
			const char *to = db_target(c, d), *only[1] = { d->name };
			char ren[512];
			const char *rens[1] = { ren };
			if (!to)
				continue;
			if (cf_interrupted) {
				fprintf(stderr, "coffer: database %s was not restored: interrupted\n", to);
				part_add(parts, "database", d->name, to, cf_err(CF_EINTR, "interrupted"), NULL, 0);
				failed = failed ? failed : exit_code(CF_EINTR);
				continue;
			}
			snprintf(ren, sizeof(ren), "%s=%s", d->name, to);
			struct cf_db_restore_opts o = { pg ? pgurl : url, only, 1, rens, strcmp(to, d->name) ? 1 : 0,
							(!pg && c->mariadb_users_replace) ? CF_MARIADB_USERS_REPLACE : 0 };
			size_t loaded = 0;
			int64_t t0 = cf_now_ns();
			int r1 = pg ? cf_restore_postgres(r, &s, &o, &loaded) : cf_restore_mariadb(r, &s, &o, &loaded);
			part_add(parts, "database", d->name, to, r1, NULL, secs_since(t0));
			fflush(stdout);
			if (r1) {
				fprintf(stderr, "coffer: database %s was not restored: %s\n", to, cf_errmsg(r1));
				failed = failed ? failed : exit_code(r1);
			} else {
				printf("  database %s: loaded from %s; %.2f s\n", to, d->path, secs_since(t0));
			}
		}
	}
	fflush(stdout);
	if (cf_interrupted && !failed) {
		fprintf(stderr, "coffer: interrupted (what is reported above as restored is)\n");
		failed = exit_code(CF_EINTR);
	}
	if (failed)
		fprintf(stderr, "coffer: restore --all of snapshot %.8s did not finish: what is named above was "
			"not restored (the rest was)\n", hex);
	else if (!c->quiet)
		printf("restored snapshot %.8s\n", hex);
out:
	/* started again whatever happened after they were stopped: a failed
	 * part, an interruption (the first SIGINT/SIGTERM lets this run) */
	if (stopped.n) {
		fflush(stdout);
		int r2 = cf_docker_start(eng.sock, &stopped);
		if (r2) {
			fprintf(stderr, "coffer: %s\n", cf_errmsg(r2));
			if (!rc && !failed)
				failed = exit_code(r2);
		} else {
			printf("started containers again: ");
			print_names(&stopped);
			printf("\n");
		}
	}
	guard_done(&g, CF_EINVAL, NULL); /* side files of parts not reached go back */
	if (report) {
		char err[1024] = "";
		if (rc) { /* printed now: the reporting below may set other messages */
			snprintf(err, sizeof(err), "%s", cf_errmsg(rc));
			failed = fail(rc);
			rc = CF_OK;
		}
		int code = failed;
		size_t nbad = 0, k;
		json_t *pj, *names = json_array();
		json_array_foreach(parts, k, pj)
			nbad += strcmp(json_string_value(json_object_get(pj, "status")), "restored") != 0;
		for (size_t i = 0; names && i < stopped.n; i++)
			json_array_append_new(names, json_string(stopped.names[i]));
		double end = (double)cf_now_ns() / 1e9, secs = secs_since(t_start);
		json_t *data = json_pack("{s:s, s:s, s:i, s:f, s:s?, s:o, s:o}", "snapshot_id", hex,
					 "status", code ? "failed" : "success", "exit_code", code,
					 "duration_seconds", secs, "error", err[0] ? err : NULL,
					 "containers_stopped", names ? names : json_array(), "parts", json_incref(parts));
		if (data)
			post_restore_webhook(c, data, !code);
		json_decref(data);
		write_restore_metrics(code, end, secs, nbad);
	}
	json_decref(parts);
	cf_docker_set_release(&found);
	cf_docker_set_release(&stopped);
	free(eng.sock);
	free(dirs);
	for (size_t i = 0; i < nitems; i++) {
		if (items[i].inc)
			free((char *)items[i].map.snap_path);
		free(items[i].dir);
	}
	for (size_t i = 0; plan && i < nitems; i++)
		cf_restore_stats_release(&plan[i]);
	free(plan);
	free(items);
	for (size_t i = 0; i < c->npath_maps; i++)
		free((char *)maps[i].snap_path);
	cf_snapshot_release(&s);
	cf_repo_free(r);
	if (rc)
		return fail(rc);
	return failed;
}

/* restore SNAPSHOT:SUBFOLDER --target DIR (restic's): only that folder, its
 * contents straight into DIR (as --path-map SUBFOLDER=DIR); --include and
 * --exclude paths are relative to the folder, as restic's. */
static int restore_subfolder(struct cli *c)
{
	char *spec = NULL, *sub = NULL;
	const char *orig_arg = c->args[0];
	char *incs[MAXV], *excs[MAXV], mapv[PATH_MAX + 8];
	size_t ninc = 0, nexc = 0;
	bool ran = false; /* cmd_restore ran: its rc is already reported */
	int rc = split_snapshot_arg(orig_arg, &spec, &sub);
	if (rc)
		goto out;
	if (c->restore_all || c->nmariadb || c->npostgres || c->nsqlite || c->ndatabases || c->nrenames ||
	    c->npath_maps) {
		rc = cf_err(CF_EINVAL, "restore %s: a snapshot's folder is restored into --target DIR; it does "
			    "not go with --all, --mariadb, --postgres, --sqlite, --database, --rename or --path-map",
			    orig_arg);
		goto out;
	}
	if (!c->target) {
		rc = cf_err(CF_EINVAL, "restore %s: --target DIR is required", orig_arg);
		goto out;
	}
	if (!sub) { /* "SNAP:/": the whole snapshot */
		c->args[0] = spec;
		rc = cmd_restore(c);
		ran = true;
		goto out;
	}
	/* the folder's paths, as --include/--exclude give them, are below sub */
	for (size_t i = 0; i < c->nincludes && !rc; i++) {
		const char *p = c->includes[i];
		if (asprintf(&incs[ninc], "%s%s%s", sub, p[0] == '/' ? "" : "/", p) < 0)
			rc = cf_err(CF_ENOMEM, "out of memory");
		else
			ninc++;
	}
	for (size_t i = 0; i < c->nexcludes && !rc; i++) {
		const char *p = c->excludes[i];
		/* a name pattern stays one; a path pattern is under the folder */
		if (asprintf(&excs[nexc], "%s%s", p[0] == '/' ? sub : "", p) < 0)
			rc = cf_err(CF_ENOMEM, "out of memory");
		else
			nexc++;
	}
	if (rc)
		goto out;
	if (!ninc) { /* nothing outside the folder */
		if (!(incs[0] = strdup(sub))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		ninc = 1;
	}
	snprintf(mapv, sizeof(mapv), "%s=%s", sub, c->target);
	/* the rest is a restore with those includes and a --path-map; the
	 * folder is checked first, so a typo is named as such */
	struct cli sc = *c;
	sc.args[0] = spec;
	memcpy(sc.includes, incs, ninc * sizeof(*incs));
	sc.nincludes = ninc;
	memcpy(sc.excludes, excs, nexc * sizeof(*excs));
	sc.nexcludes = nexc;
	sc.path_maps[0] = mapv;
	sc.npath_maps = 1;
	sc.target = NULL;
	sc.subfolder = sub;
	rc = cmd_restore(&sc);
	ran = true;
out:
	c->args[0] = (char *)orig_arg;
	for (size_t i = 0; i < ninc; i++)
		free(incs[i]);
	for (size_t i = 0; i < nexc; i++)
		free(excs[i]);
	free(spec);
	free(sub);
	return ran ? rc : fail(rc); /* cmd_restore reported its own failure */
}

int cmd_restore(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	struct cf_restore_stats st;
	struct cf_restore_opts o;
	struct cf_restore_map maps[MAXV];
	struct guard g = { 0 };
	int rc;

	memset(&s, 0, sizeof(s));
	memset(&o, 0, sizeof(o));
	memset(&st, 0, sizeof(st));
	memset(maps, 0, sizeof(maps));
	if (c->nargs < 1)
		return fail(cf_err(CF_EINVAL, "restore: which snapshot? (an id or 'latest')"));
	if (strchr(c->args[0], ':'))
		return restore_subfolder(c);
	if (c->restore_all)
		return restore_all(c);
	if (c->yes)
		return fail(cf_err(CF_EINVAL, "--yes goes with --all"));
	if (c->npostgres)
		return cmd_restore_postgres(c);
	if (c->nmariadb)
		return restore_databases(c);
	if (c->ndatabases || c->nrenames)
		return fail(cf_err(CF_EINVAL, "--database and --rename go with --mariadb URL or --postgres URL"));
	if (!c->target && !c->npath_maps)
		return fail(cf_err(CF_EINVAL, "restore: --target DIR (or --path-map) is required"));
	if (c->overwrite && (rc = cf_restore_parse_overwrite(c->overwrite, &o.overwrite)))
		return fail(rc);
	if ((rc = parse_maps(c, maps)))
		goto out;
	o.target = c->target;
	o.includes = c->includes;
	o.nincludes = c->nincludes;
	o.excludes = c->excludes;
	o.nexcludes = c->nexcludes;
	o.maps = maps;
	o.nmaps = c->npath_maps;
	o.delete_extra = c->restore_delete;
	o.dry_run = c->dry_run;
	o.verify = c->verify;
	o.threads = c->threads;
	o.progress = !c->quiet && !c->json && isatty(2);
	/* a dry run is a listing; otherwise -v lists what is done */
	o.listing = c->json ? NULL : c->dry_run || c->verbose ? stdout : NULL;
	if ((rc = open_repo(c, &r, 1, true)))
		goto out;
	if ((rc = pick_snapshot(c, r, c->args[0], &s)))
		goto out;
	if (c->subfolder && (rc = check_subfolder(r, &s, c->subfolder)))
		goto out;
	if ((rc = check_includes(c->includes, c->nincludes, r, &s)))
		goto out;
	if (!c->dry_run && (rc = guard_plain(c, &s, &o, &g)))
		goto out;
	if (c->json && !c->quiet)
		o.status = json_status;
	restore_started = cf_now_mono();
	rc = cf_restore_run(r, &s, &o, &st);
	guard_done(&g, rc, &st);
	if (!c->quiet && (rc == CF_OK || rc == CF_EPARTIAL))
		print_summary(c, &s, &st);
	if (st.nfailed) {
		fflush(stdout);
		fprintf(stderr, "coffer: could not restore %zu path%s:\n", st.nfailed, st.nfailed == 1 ? "" : "s");
		for (size_t i = 0; i < st.nfailed; i++)
			fprintf(stderr, "  %s\n", st.failed[i]);
	}
out:
	guard_done(&g, CF_EINVAL, NULL); /* refused midway: side files back */
	for (size_t i = 0; i < c->npath_maps; i++)
		free((char *)maps[i].snap_path);
	cf_restore_stats_release(&st);
	cf_snapshot_release(&s);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}
