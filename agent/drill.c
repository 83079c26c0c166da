/*
 * drill.c - the scheduled restore drill (COFFER_DRILL_SCHEDULE, off by
 * default): backups that were never restored are not backups.
 *
 *     job lock -> open the main repository (shared lock) -> the latest
 *     snapshot of this host -> restore all of it into an empty scratch
 *     directory (COFFER_DRILL_DIR, default STATE_DIR/drill) with --verify:
 *     every file read back and compared with the snapshot's blob ids ->
 *     with COFFER_MARIADB set, each MariaDB dump of the snapshot loaded
 *     into a scratch database "coffer_drill_<n>_<db>" on the first
 *     COFFER_MARIADB server (the restore's --rename), then dropped ->
 *     the scratch directory removed, whatever happened
 *
 * The scratch databases are dropped before the load (a drill killed
 * half-way leaves one behind) and after it.  The drill never touches the
 * real databases or volumes.  Reported like a copy: a log line, the state
 * file's "drill" record (the healthcheck fails while the last drill
 * failed), metrics coffer_drill_*, the webhook coffer.drill.succeeded /
 * coffer.drill.failed.
 */
#include "agent/daemon.h"
#include "agent/agent_int.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"
#include "repo/repo.h"
#include "restore/db_restore.h"
#include "restore/restore.h"
#include "sources/dburl.h"
#include "sources/mariadb_load.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	if (type == FTW_DP)
		return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Remove dir and everything beneath it (never following a symlink). */
static int remove_scratch(const char *dir)
{
	struct stat st;
	if (lstat(dir, &st) != 0)
		return errno == ENOENT ? CF_OK : cf_err_errno("drill: cannot remove %s", dir);
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
		return cf_err_errno("drill: cannot remove the scratch directory %s", dir);
	return CF_OK;
}

static void drill_dir(const struct cf_agent_config *c, char *out, size_t n)
{
	if (c->drill_dir)
		snprintf(out, n, "%s", c->drill_dir);
	else
		snprintf(out, n, "%s/drill", c->state_dir);
}

/* A one-statement "dump" for the loader: how a scratch database is dropped
 * through the public loader API. */
struct text_src {
	const char *p;
	size_t left;
};

static ssize_t text_read(void *ctx, void *buf, size_t n)
{
	struct text_src *t = ctx;
	if (n > t->left)
		n = t->left;
	memcpy(buf, t->p, n);
	t->p += n;
	t->left -= n;
	return (ssize_t)n;
}

static int drop_db(const struct cf_dburl *u, const char *db)
{
	char sql[400];
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS `%s`;\n", db);
	struct text_src t = { sql, strlen(sql) };
	return cf_mariadb_load(u, NULL, text_read, &t, NULL);
}

/* The dump's name as the restore takes it: its path without "mariadb/" and ".sql". */
static void dump_name(const char *path, char *out, size_t n)
{
	const char *p = path + strspn(path, "/");
	if (!strncmp(p, "mariadb/", 8))
		p += 8;
	size_t l = strlen(p);
	if (l > 4 && !strcmp(p + l - 4, ".sql"))
		l -= 4;
	snprintf(out, n, "%.*s", (int)l, p);
}

/* Load every MariaDB dump of s into scratch databases of the first
 * COFFER_MARIADB server, dropping them before and after. */
static int drill_databases(const struct cf_agent_config *c, struct cf_repo *r, const struct cf_snapshot *s,
			   struct agent_drill_result *res)
{
	struct cf_dburl u = CF_DBURL_INIT;
	int rc = CF_OK;
	size_t k = 0;

	if (!c->nmariadb)
		return CF_OK;
	if ((rc = cf_dburl_parse(&u, c->mariadb[0])))
		return rc;
	for (size_t i = 0; i < s->nsources && !rc; i++) {
		const struct cf_snapshot_source *src = &s->sources[i];
		if (src->kind != CF_SOURCE_MARIADB)
			continue;
		for (size_t d = 0; d < src->ndbs && !rc; d++, k++) {
			char name[300], scratch[200], rename[600];
			dump_name(src->dbs[d].path, name, sizeof(name));
			snprintf(scratch, sizeof(scratch), "coffer_drill_%zu_%.40s", k, src->dbs[d].name);
			snprintf(rename, sizeof(rename), "%s=%s", name, scratch);
			const char *dbs[1] = { name }, *ren[1] = { rename };
			/* A drill loads into a scratch database: it neither makes
			 * accounts nor grants them anything on the live server. */
			struct cf_db_restore_opts o = { c->mariadb[0], dbs, 1, ren, 1, CF_MARIADB_USERS_SKIP };
			size_t loaded = 0;
			if ((rc = drop_db(&u, scratch)))
				break;
			rc = cf_restore_mariadb(r, s, &o, &loaded);
			int r2 = drop_db(&u, scratch);
			if (rc) {
				rc = cf_err_prefix(rc, "drill: loading %s into %s", name, scratch);
				break;
			}
			if ((rc = r2))
				break;
			res->databases += loaded;
			cf_info("coffer agent: drill: %s loaded into %s and dropped", name, scratch);
		}
	}
	cf_dburl_release(&u);
	return rc;
}

static void drill_fail(struct agent_drill_result *res, int rc, const char *stage)
{
	if (res->rc)
		return;
	res->rc = rc;
	res->stage = stage;
	snprintf(res->error, sizeof(res->error), "%s", cf_errmsg(rc));
}

int agent_run_drill(const struct cf_agent_config *c, struct agent_drill_result *res)
{
	struct agent_repo_spec sp = { .location = c->repository, .password_file = c->password_file,
				      .password = c->password, .password_key = "COFFER_PASSWORD_FILE" };
	struct cf_repo *r = NULL;
	struct cf_snapshot *list = NULL;
	struct cf_restore_stats st;
	char dir[4096], host[256];
	size_t n = 0;
	long latest = -1;
	int rc, lockfd = -1;

	memset(res, 0, sizeof(*res));
	memset(&st, 0, sizeof(st));
	res->start_ns = cf_now_ns();
	cf_err_clear();
	drill_dir(c, dir, sizeof(dir));
	if ((rc = agent_job_lock(c, &lockfd))) {
		drill_fail(res, rc, "job-lock");
		goto done;
	}
	agent_load_state(c);
	agent_notify_start(c, "drill");
	cf_info("coffer agent: drill started");
	if ((rc = agent_open_repo(c, &sp, false, &r))) {
		drill_fail(res, rc, "repository");
		goto done;
	}
	agent_host(c, host, sizeof(host));
	if ((rc = cf_repo_snapshots(r, &list, &n, NULL))) {
		drill_fail(res, rc, "repository");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if (list[i].hostname && !strcmp(list[i].hostname, host) &&
		    (latest < 0 || list[i].time_ns > list[latest].time_ns))
			latest = (long)i;
	if (latest < 0) {
		drill_fail(res, cf_err(CF_ENOENT, "drill: the repository holds no snapshot of host %s", host),
			   "snapshot");
		goto done;
	}
	cf_hex(list[latest].id, CF_ID_LEN, res->snapshot_id);
	/* a scratch directory left by a killed drill goes first */
	if ((rc = remove_scratch(dir)) || (rc = cf_mkdirs(dir, 0700))) {
		drill_fail(res, rc, "scratch");
		goto done;
	}
	struct cf_restore_opts o;
	memset(&o, 0, sizeof(o));
	o.target = dir;
	o.overwrite = CF_OVERWRITE_ALWAYS;
	o.verify = true;
	rc = cf_restore_run(r, &list[latest], &o, &st);
	res->files = st.files_created + st.files_replaced + st.files_kept + st.files_linked;
	res->bytes = st.bytes_written + st.bytes_kept;
	res->verified = st.verified;
	if (rc) {
		/* an entry that did not restore or verify fails the drill (exit 1) */
		if (rc == CF_EPARTIAL)
			rc = cf_err(CF_ECORRUPT, "drill: %zu entries of snapshot %.8s did not restore or verify "
					       "(first: %s)", st.nfailed, res->snapshot_id, st.nfailed ? st.failed[0] : "?");
		drill_fail(res, rc, "restore");
		goto done;
	}
	if ((rc = drill_databases(c, r, &list[latest], res))) {
		drill_fail(res, rc, "databases");
		goto done;
	}
done:
	if (lockfd >= 0 && (rc = remove_scratch(dir)))
		drill_fail(res, rc, "scratch");
	cf_restore_stats_release(&st);
	cf_snapshots_free(list, n);
	cf_repo_free(r);
	res->end_ns = cf_now_ns();
	res->exit_code = agent_exit_of(res->rc);
	if (lockfd >= 0)
		close(lockfd);
	return res->exit_code;
}

void agent_report_drill(const struct cf_agent_config *c, const struct agent_drill_result *res)
{
	char start[40], end[40];
	struct cf_buf line = CF_BUF_INIT;
	agent_utc_text(res->start_ns, start, sizeof(start));
	agent_utc_text(res->end_ns, end, sizeof(end));
	cf_buf_addf(&line, "coffer agent: drill start=%s end=%s result=%s exit=%d snapshot=%s files=%" PRIu64
		    " verified=%" PRIu64 " bytes=%" PRIu64 " databases=%" PRIu64 " duration=%.1fs", start, end,
		    agent_status_word(res->rc), res->exit_code, res->snapshot_id[0] ? res->snapshot_id : "none",
		    res->files, res->verified, res->bytes, res->databases, (double)(res->end_ns - res->start_ns) / 1e9);
	if (res->stage)
		cf_buf_addf(&line, " stage=%s", res->stage);
	if (res->error[0]) {
		cf_buf_adds(&line, " error=\"");
		for (const char *p = res->error; *p; p++) {
			if (*p == '"' || *p == '\\')
				cf_buf_add(&line, "\\", 1);
			cf_buf_add(&line, *p == '\n' ? " " : p, 1);
		}
		cf_buf_adds(&line, "\"");
	}
	fprintf(stderr, "%s\n", line.data ? (char *)line.data : "coffer agent: drill done (out of memory)");
	fflush(stderr);
	cf_buf_release(&line);

	json_t *data = json_pack("{s:s, s:i, s:s, s:s, s:I, s:I, s:f, s:s?, s:s?, s:s?, s:I, s:I, s:I, s:I}",
				 "status", agent_status_word(res->rc), "exit_code", res->exit_code,
				 "started", start, "ended", end,
				 "started_unix", (json_int_t)(res->start_ns / 1000000000),
				 "ended_unix", (json_int_t)(res->end_ns / 1000000000),
				 "duration_seconds", (double)(res->end_ns - res->start_ns) / 1e9,
				 "snapshot_id", res->snapshot_id[0] ? res->snapshot_id : NULL,
				 "stage", res->stage, "error", res->error[0] ? res->error : NULL,
				 "files", (json_int_t)res->files, "files_verified", (json_int_t)res->verified,
				 "bytes", (json_int_t)res->bytes, "databases_loaded", (json_int_t)res->databases);
	if (data) {
		json_t *prev_rec = agent_g.drill;
		json_t *rec = json_deep_copy(data);
		if (rec) {
			json_t *ls = json_object_get(prev_rec, "last_success_unix");
			if (res->rc == CF_OK)
				json_object_set_new(rec, "last_success_unix",
						    json_integer((json_int_t)(res->end_ns / 1000000000)));
			else if (ls)
				json_object_set(rec, "last_success_unix", ls);
			json_decref(agent_g.drill);
			agent_g.drill = rec;
		}
	}
	agent_publish_running(c);
	struct cf_buf msg = CF_BUF_INIT;
	double secs = (double)(res->end_ns - res->start_ns) / 1e9;
	if (res->error[0])
		cf_buf_addf(&msg, "%s%s%s", res->stage ? res->stage : "", res->stage ? ": " : "", res->error);
	else
		cf_buf_addf(&msg, "snapshot %.8s restored and verified: %" PRIu64 " files, %" PRIu64
			    " databases loaded in %.1f s", res->snapshot_id, res->files, res->databases, secs);
	bool failed = agent_notify_end(c, "drill", res->rc, secs, msg.data ? (char *)msg.data : "");
	cf_buf_release(&msg);
	if (data && agent_post_event(c, res->rc == CF_OK ? "coffer.drill.succeeded" : "coffer.drill.failed", data))
		failed = true;
	if (failed) /* the failure counters in the state and the metrics */
		agent_publish_running(c);
	json_decref(data);
}

bool agent_drill_due(const struct cf_agent_config *c, time_t now)
{
	time_t due;
	int64_t last;
	if (!c->drill_schedule || !strcmp(c->drill_schedule, "off"))
		return false;
	last = (int64_t)json_integer_value(json_object_get(agent_g.drill, "ended_unix"));
	/* never run: due, as for prune */
	return last <= 0 ||
	       (cf_cron_next(&c->drill_cron, agent_zone(c), (time_t)last, &due) == CF_OK && due <= now);
}

int agent_run_drill_reported(const struct cf_agent_config *c)
{
	struct agent_drill_result res;
	int code = agent_run_drill(c, &res);
	agent_report_drill(c, &res);
	return code;
}
