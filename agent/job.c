/*
 * job.c - one job of the agent, cf_agent_run_job(): one at a time (the
 * job lock in the state directory); the pre hook; the sources and the
 * repository opened; the labelled containers stopped; the databases'
 * snapshots and the backup of the paths, under the host the snapshots
 * carry (resolved once: COFFER_HOST, the compose service, the hostname);
 * the containers started again; the post hook; then retention (forget,
 * prune) and the scheduled check.  The first failure is the job's (its
 * stage and message go to the report); the stages that undo or report
 * (starting containers, the post hook) run anyway.
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

/* -------------------------------------------------------------- the job */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* COFFER_BACKUP_PATHS, or every directory under COFFER_BACKUP_ROOT. */
static int job_paths(const struct cf_agent_config *c, char ***out, size_t *n)
{
	DIR *d;
	struct dirent *e;
	size_t cap = 0;
	int r = CF_OK;

	*out = NULL;
	*n = 0;
	if (c->npaths) {
		if (!(*out = calloc(c->npaths, sizeof(char *))))
			return cf_err(CF_ENOMEM, "out of memory");
		for (size_t i = 0; i < c->npaths; i++) {
			if (!((*out)[i] = strdup(c->paths[i])))
				return cf_err(CF_ENOMEM, "out of memory");
			*n = i + 1;
		}
		return CF_OK;
	}
	if (!(d = opendir(c->backup_root))) {
		if (errno == ENOENT && (c->nstdin_cmds || c->nmariadb || c->npostgres || c->nsqlite))
			return CF_OK;
		return cf_err_errno("nothing to back up: COFFER_BACKUP_PATHS is unset and %s cannot be read "
				    "(mount the volumes under it)", c->backup_root);
	}
	while ((e = readdir(d))) {
		char p[4096];
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", c->backup_root, e->d_name);
		if (lstat(p, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		if (CF_GROW(*out, *n + 1, cap) || !((*out)[*n] = strdup(p))) {
			r = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		(*n)++;
	}
	closedir(d);
	if (!r && *n)
		qsort(*out, *n, sizeof(char *), cmp_str);
	if (!r && !*n && !c->nstdin_cmds && !c->nmariadb && !c->npostgres && !c->nsqlite)
		r = cf_err(CF_ENOENT, "nothing to back up: COFFER_BACKUP_PATHS is unset and %s holds no "
				      "directory (mount each volume as a directory under it)", c->backup_root);
	return r;
}

int agent_open_repo(const struct cf_agent_config *c, const struct agent_repo_spec *sp, bool exclusive,
		    struct cf_repo **r)
{
	struct cf_backend_opts bo = { .connections = c->s3_connections, .cacert = c->cacert,
				      .sign_payload = c->s3_sign_payload, .access_key = sp->access_key,
				      .secret_key = sp->secret_key, .session_token = sp->session_token,
				      .region = sp->region, .max_attempts = sp->max_attempts };
	struct cf_backend *be = NULL;
	char *pw = NULL;
	int rc;

	*r = NULL;
	if (sp->password_file) {
		if ((rc = cf_agent_read_secret(sp->password_file, sp->password_key, &pw)))
			return rc;
	} else if (!(pw = strdup(sp->password))) {
		return cf_err(CF_ENOMEM, "out of memory");
	}
	if ((rc = cf_backend_open(sp->location, &bo, &be)) == CF_OK)
		rc = cf_repo_open(be, pw, strlen(pw), r);
	cf_agent_secret_free(pw);
	if (rc)
		return rc;
	if (c->s3_connections) /* as the CLI's --s3-connections */
		cf_repo_set_upload_threads(*r, c->s3_connections);
	/* a prune elsewhere may hold the lock for a while: wait rather than miss the day */
	if ((!sp->no_lock && (rc = cf_repo_lock(*r, exclusive, 600))) || (rc = cf_repo_load_index(*r))) {
		cf_repo_free(*r);
		*r = NULL;
	}
	return rc;
}

static int open_repository(const struct cf_agent_config *c, bool exclusive, struct cf_repo **r)
{
	struct agent_repo_spec sp = { .location = c->repository, .password_file = c->password_file,
				      .password = c->password, .password_key = "COFFER_PASSWORD_FILE" };
	return agent_open_repo(c, &sp, exclusive, r);
}

const char *agent_status_word(int rc)
{
	switch (rc) {
	case CF_OK: return "success";
	case CF_EPARTIAL: return "partial";
	case CF_EINTR: return "interrupted";
	default: return "failed";
	}
}

int agent_exit_of(int rc)
{
	switch (rc) {
	case CF_OK: return 0;
	case CF_EPARTIAL: return 3;
	case CF_ENOREPO: return 10;
	case CF_ELOCKED: return 11;
	case CF_EBADPASS: return 12;
	case CF_EINTR: return 130;
	default: return 1;
	}
}

/* Record the first failure of the job. */
static void job_fail(struct cf_agent_job *job, int rc, const char *stage)
{
	if (job->rc && job->rc != CF_EPARTIAL)
		return;
	job->rc = rc;
	job->stage = stage;
	snprintf(job->error, sizeof(job->error), "%s", cf_errmsg(rc));
	cf_warn("coffer agent: %s: %s", stage, job->error);
}

/* What the previous run (or process: --once under systemd) left in the state
 * file: the last tick for COFFER_RUN_MISSED, the last success for the
 * metrics, the last prune for COFFER_PRUNE_SCHEDULE.  Once per process. */
void agent_load_state(const struct cf_agent_config *c)
{
	static bool loaded;
	json_t *prev;
	if (loaded)
		return;
	loaded = true;
	if ((prev = agent_read_state(c->state_dir))) {
		json_t *a = json_object_get(prev, "agent");
		agent_g.last_tick = (int64_t)json_integer_value(json_object_get(a, "last_tick_unix"));
		agent_g.last_success = json_number_value(json_object_get(a, "last_success_unix"));
		agent_g.last_prune = (int64_t)json_integer_value(json_object_get(a, "last_prune_unix"));
		agent_g.last_check = (int64_t)json_integer_value(json_object_get(a, "last_check_unix"));
		json_t *ce = json_object_get(a, "last_check_errors");
		agent_g.check_errors = ce ? (int64_t)json_integer_value(ce) : -1;
		agent_g.last_check_success = (int64_t)json_integer_value(json_object_get(a, "last_check_success_unix"));
		json_t *cp = json_object_get(prev, "copies");
		if (json_is_object(cp)) {
			json_decref(agent_g.copies);
			agent_g.copies = json_deep_copy(cp);
		}
		json_t *dr = json_object_get(prev, "drill");
		if (json_is_object(dr)) {
			json_decref(agent_g.drill);
			agent_g.drill = json_deep_copy(dr);
		}
		json_t *nt = json_object_get(prev, "notify"), *nl = json_object_get(nt, "last");
		if (json_is_object(nl)) {
			json_decref(agent_g.notify_last);
			agent_g.notify_last = json_deep_copy(nl);
		}
		for (int k = 0; k < CF_NOTIFY_NKINDS; k++)
			agent_g.notify_failures[k] = (uint64_t)json_integer_value(
				json_object_get(json_object_get(nt, "failures"), cf_notify_kind_name(k)));
		json_decref(prev);
	}
}

/* A name as Docker gives containers by default: 12 or 64 hex digits. */
static bool looks_like_container_id(const char *h)
{
	size_t n = strlen(h);
	return (n == 12 || n == 64) && strspn(h, "0123456789abcdef") == n;
}

#define HOST_FILE "host"
#define JOB_LOCK_FILE "job.lock"

/* One job at a time per agent: the daemon's scheduled job and a `coffer agent
 * --once` beside it (docker compose exec) share the state directory, and two
 * jobs at once would stop and start the same containers and race retention.
 * An flock on STATE_DIR/job.lock, held for the whole job (released by the
 * kernel if the process dies); the file names its holder for the message.
 * Waits up to COFFER_JOB_WAIT seconds; then CF_ELOCKED (exit 11). */
int agent_job_lock(const struct cf_agent_config *c, int *fdp)
{
	char path[4096], holder[200] = "";
	int r, fd;
	*fdp = -1;
	if ((r = agent_state_dir(c)))
		return r;
	snprintf(path, sizeof(path), "%s/%s", c->state_dir, JOB_LOCK_FILE);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0)
		return cf_err_errno("cannot open the job lock %s", path);
	double deadline = cf_now_mono() + c->job_wait;
	bool said = false;
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			r = cf_err_errno("cannot lock %s", path);
			close(fd);
			return r;
		}
		ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = 0;
		holder[strcspn(holder, "\n")] = 0;
		if (cf_interrupted || cf_now_mono() >= deadline) {
			close(fd);
			if (cf_interrupted)
				return cf_err(CF_EINTR, "interrupted while waiting for another job");
			return cf_err(CF_ELOCKED, "another job of this agent is running (%s; lock %s); "
				      "waited %u s (COFFER_JOB_WAIT)", holder[0] ? holder : "holder unknown",
				      path, c->job_wait);
		}
		if (!said) {
			cf_warn("coffer agent: waiting up to %u s for another job of this agent (%s)", c->job_wait,
				holder[0] ? holder : "holder unknown");
			said = true;
		}
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	char t[40], me[160];
	agent_utc_text(cf_now_ns(), t, sizeof(t));
	snprintf(me, sizeof(me), "pid %ld, started %s\n", (long)getpid(), t);
	if (ftruncate(fd, 0) != 0 || pwrite(fd, me, strlen(me), 0) < 0)
		cf_debug("coffer agent: cannot record the job lock's holder: %s", strerror(errno));
	*fdp = fd;
	return CF_OK;
}

/* The host this agent's snapshots carry, stable across recreated containers:
 * COFFER_HOST; else the hostname unless it is a container id (which changes
 * with every `docker compose up`: retention would never forget the old
 * container's snapshots and `--host` would match nothing); else the compose
 * project and service of this container (asked from the Docker API); else a
 * name kept in the state directory (made once: "coffer-" and the first
 * container id seen).  Resolved once per process, into agent_g.host. */
static void resolve_host(const struct cf_agent_config *c)
{
	char h[256] = "", path[4096];
	if (agent_g.host[0])
		return;
	if (c->host) {
		snprintf(agent_g.host, sizeof(agent_g.host), "%s", c->host);
		return;
	}
	if (gethostname(h, sizeof(h)) != 0 || !h[0])
		snprintf(h, sizeof(h), "localhost");
	h[sizeof(h) - 1] = 0;
	if (!looks_like_container_id(h)) {
		snprintf(agent_g.host, sizeof(agent_g.host), "%s", h);
		return;
	}
	if (cf_docker_present(c->docker_host) &&
	    cf_docker_compose_name(c->docker_host, h, agent_g.host, sizeof(agent_g.host)) == CF_OK) {
		cf_warn("coffer agent: the hostname %s is a container id; snapshots carry the compose "
			"service's name %s instead (set COFFER_HOST to choose one)", h, agent_g.host);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", c->state_dir, HOST_FILE);
	FILE *f = fopen(path, "re");
	if (f) {
		char line[256] = "";
		if (fgets(line, sizeof(line), f))
			line[strcspn(line, "\r\n")] = 0;
		fclose(f);
		if (line[0]) {
			snprintf(agent_g.host, sizeof(agent_g.host), "%s", line);
			return;
		}
	}
	snprintf(agent_g.host, sizeof(agent_g.host), "coffer-%.12s", h);
	int r = agent_state_dir(c);
	if (!r) {
		char text[300];
		snprintf(text, sizeof(text), "%s\n", agent_g.host);
		r = cf_write_atomic(path, text, strlen(text), 0644);
	}
	cf_warn("coffer agent: the hostname %s is a container id, which changes when the container is "
		"recreated; snapshots carry the host %s%s (set COFFER_HOST, or hostname: in compose)", h, agent_g.host,
		r ? " (it could not be kept in the state directory)" : ", kept in the state directory");
}

/* The host this agent's snapshots carry (as cf_backup_run records it). */
void agent_host(const struct cf_agent_config *c, char *out, size_t n)
{
	resolve_host(c);
	snprintf(out, n, "%s", agent_g.host);
}

/* Which of snapshots s[0..n) a policy keeps: restic's policy over this
 * host's snapshots, grouped by paths (forget --host H --group-by
 * host,paths); other hosts' snapshots are always kept.  keep_out[i] for each. */
int agent_retention_keep(const struct cf_agent_config *c, const struct cf_retention_policy *keep,
			 const struct cf_snapshot *const *s, size_t n, bool *keep_out)
{
	struct cf_retention_snap *rs = NULL;
	struct cf_retention_result *res = NULL;
	struct cf_buf key = CF_BUF_INIT;
	char **keys = NULL, host[256];
	size_t *idx = NULL;
	bool *done = NULL;
	int rc = CF_OK;

	agent_host(c, host, sizeof(host));
	if (!(rs = calloc(n + 1, sizeof(*rs))) || !(keys = calloc(n + 1, sizeof(*keys))) ||
	    !(idx = calloc(n + 1, sizeof(*idx))) || !(done = calloc(n + 1, sizeof(*done)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		keep_out[i] = true;
		rs[i].time = s[i]->time_ns / 1000000000;
		rs[i].nsec = (int32_t)(s[i]->time_ns % 1000000000);
		rs[i].host = s[i]->hostname;
		rs[i].tags = (const char *const *)s[i]->tags;
		rs[i].ntags = s[i]->ntags;
		rs[i].paths = (const char *const *)s[i]->paths;
		rs[i].npaths = s[i]->npaths;
		cf_buf_reset(&key);
		if ((rc = cf_retention_group_key(CF_GROUP_HOST | CF_GROUP_PATHS, &rs[i], &key)))
			goto out;
		if (!(keys[i] = strdup((const char *)key.data))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		done[i] = !s[i]->hostname || strcmp(s[i]->hostname, host) != 0;
		/* a replica's base copy goes with its generation (agent_repl_retention) */
		for (size_t k = 0; k < s[i]->ntags; k++)
			done[i] |= !strcmp(s[i]->tags[k], "sqlite-replica");
	}
	for (size_t i = 0; i < n; i++) {
		struct cf_retention_snap *g = NULL;
		size_t ng = 0;
		if (done[i])
			continue;
		for (size_t j = i; j < n; j++)
			if (!done[j] && !strcmp(keys[i], keys[j])) {
				idx[ng++] = j;
				done[j] = true;
			}
		if (!(g = calloc(ng, sizeof(*g)))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t k = 0; k < ng; k++)
			g[k] = rs[idx[k]];
		rc = cf_retention_apply(keep, g, ng, agent_zone(c), (int64_t)time(NULL), &res);
		free(g);
		if (rc)
			goto out;
		for (size_t k = 0; k < ng; k++)
			keep_out[idx[k]] = res[k].keep;
		cf_retention_results_free(res, ng);
		res = NULL;
	}
out:
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	free(idx);
	free(done);
	free(rs);
	cf_buf_release(&key);
	return rc;
}

int agent_forget_by_policy(const struct cf_agent_config *c, struct cf_repo *r,
			   const struct cf_retention_policy *keep, uint64_t *forgotten)
{
	struct cf_snapshot *s = NULL;
	const struct cf_snapshot **ps = NULL;
	bool *kept = NULL;
	size_t n = 0;
	int rc;

	if ((rc = cf_repo_snapshots(r, &s, &n, NULL)))
		return rc;
	if (!(ps = calloc(n + 1, sizeof(*ps))) || !(kept = calloc(n + 1, sizeof(*kept)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ps[i] = &s[i];
	if ((rc = agent_retention_keep(c, keep, ps, n, kept)))
		goto out;
	for (size_t i = 0; i < n && !rc; i++) {
		char hex[CF_ID_HEX];
		if (kept[i])
			continue;
		cf_hex(s[i].id, CF_ID_LEN, hex);
		if ((rc = cf_repo_forget_snapshot(r, s[i].id)) == CF_OK) {
			cf_info("coffer agent: retention: removed snapshot %.8s", hex);
			(*forgotten)++;
		}
	}
out:
	free(ps);
	free(kept);
	cf_snapshots_free(s, n);
	return rc;
}

bool agent_prune_due(const struct cf_agent_config *c, int64_t last_prune, time_t now)
{
	time_t due;
	/* No record of a prune (a new agent, or a state directory that does not
	 * persist, as in a Kubernetes CronJob's /tmp) means due: counting from
	 * "now" would put it off at every run, and the repository would grow. */
	return c->prune_schedule && strcmp(c->prune_schedule, "off") &&
	       (last_prune <= 0 ||
		(cf_cron_next(&c->prune_cron, agent_zone(c), (time_t)last_prune, &due) == CF_OK && due <= now));
}

int agent_prune(struct cf_repo *r, uint64_t *freed)
{
	struct cf_prune_opts po = { 0.05 };
	struct cf_prune *p = NULL;
	int rc;
	if ((rc = cf_prune_plan(r, &po, &p)) == CF_OK && (rc = cf_prune_run(p)) == CF_OK)
		*freed = cf_prune_stats(p)->bytes_freed;
	cf_prune_free(p);
	return rc;
}

/* Retention after a good backup: forget by policy, then prune when a tick of
 * COFFER_PRUNE_SCHEDULE has passed since the last prune.  Both under the
 * exclusive lock, so the shared-locked repository is closed first. */
static int retention(const struct cf_agent_config *c, struct cf_repo **repo, struct cf_agent_job *job)
{
	time_t now = time(NULL);
	bool prune_due = agent_prune_due(c, agent_g.last_prune, now);
	int rc;

	if (cf_retention_policy_empty(&c->keep) && !prune_due && !c->nsqlite_replicate)
		return CF_OK;
	cf_repo_free(*repo);
	*repo = NULL;
	if ((rc = open_repository(c, true, repo)))
		return rc;
	if (!cf_retention_policy_empty(&c->keep) && (rc = agent_forget_by_policy(c, *repo, &c->keep, &job->forgotten)))
		return rc;
	/* then the replicated history older than what is kept */
	if ((rc = agent_repl_retention(c, *repo, &job->sqlite_generations_removed, &job->sqlite_segments_removed)))
		return rc;
	if (prune_due) {
		if ((rc = agent_prune(*repo, &job->pruned_bytes)))
			return rc;
		agent_g.last_prune = now;
		cf_info("coffer agent: prune freed about %" PRIu64 " bytes", job->pruned_bytes);
		/* the index changed under the open repository: count snapshots fresh */
	}
	return CF_OK;
}

/* After a good backup, when a tick of COFFER_CHECK_SCHEDULE has passed since
 * the last check: verify the repository's structure and read back a subset
 * of the packs (COFFER_CHECK_READ_DATA_SUBSET), so every byte is read over
 * the days.  Problems are named in the log and fail the job. */
static int scheduled_check(const struct cf_agent_config *c, struct cf_repo *repo, struct cf_agent_job *job)
{
	time_t now = time(NULL), due;
	if (!c->check_schedule || !strcmp(c->check_schedule, "off"))
		return CF_OK;
	/* no record of a check means due, as for prune */
	if (agent_g.last_check > 0 &&
	    (cf_cron_next(&c->check_cron, agent_zone(c), (time_t)agent_g.last_check, &due) != CF_OK || due > now))
		return CF_OK;
	struct cf_check_opts o = { .subset_n = c->check_subset_n, .subset_m = c->check_subset_m,
				   .subset_percent = c->check_subset_percent };
	struct cf_check_stats st;
	memset(&st, 0, sizeof(st));
	int rc = cf_repo_check_opts(repo, &o, &st);
	job->checked = true;
	job->check_errors = st.errors;
	agent_g.last_check = now;
	agent_g.check_errors = (int64_t)st.errors;
	if (rc == CF_OK && st.errors == 0)
		agent_g.last_check_success = now;
	cf_info("coffer agent: check read %" PRIu64 " packs, %" PRIu64 " problems", st.packs_read, st.errors);
	return rc;
}

int cf_agent_run_job(const struct cf_agent_config *c, int64_t tick, struct cf_agent_job *job)
{
	struct cf_docker_set stopped = CF_DOCKER_SET_INIT, pre = CF_DOCKER_SET_INIT;
	struct cf_sources src = CF_SOURCES_INIT;
	struct cf_snapshot snap, desc; /* desc: only its sources, what the streams are */
	struct cf_repo *repo = NULL;
	char **paths = NULL;
	size_t npaths = 0;
	int rc, lockfd = -1;
	bool engine = false; /* containers are handled in this job */

	memset(job, 0, sizeof(*job));
	memset(&snap, 0, sizeof(snap));
	memset(&desc, 0, sizeof(desc));
	job->tick = tick;
	job->snapshots = -1;
	job->repo_bytes = job->repo_packs = -1;
	job->start_ns = cf_now_ns();
	cf_err_clear();
	if ((rc = agent_job_lock(c, &lockfd))) {
		job_fail(job, rc, "job-lock");
		goto done;
	}
	agent_load_state(c);
	agent_notify_start(c, "backup");
	cf_info("coffer agent: job started");

	if (c->pre_command && (rc = agent_run_hook(c, "COFFER_PRE_COMMAND", c->pre_command, NULL, NULL))) {
		job_fail(job, rc, "pre-command");
		goto done; /* nothing was touched: no post command either */
	}
	/* Open before stopping anything: a wrong password must not cost downtime. */
	if ((rc = job_paths(c, &paths, &npaths))) {
		job_fail(job, rc, "sources");
		goto post;
	}
	if ((rc = open_repository(c, false, &repo))) {
		job_fail(job, rc, "repository");
		goto post;
	}
	engine = c->docker_host && (c->docker_explicit || cf_docker_present(c->docker_host));
	/* The exec-pre labels first, while every container still runs: one that
	 * is about to be stopped can still take its own dump.  A failure fails
	 * the job before anything is stopped or read, and like a failed
	 * COFFER_PRE_COMMAND, it is not followed by the exec-post labels. */
	if (engine && (rc = cf_docker_find_exec(c->docker_host, CF_DOCKER_EXEC_PRE, CF_DOCKER_EXEC_PRE_OFFEN, &pre))) {
		job_fail(job, rc, "containers");
		goto post;
	}
	if (pre.n && (rc = cf_docker_exec(c->docker_host, "exec-pre", &pre, false))) {
		job_fail(job, rc, "exec-pre");
		goto post;
	}
	if (engine) {
		rc = cf_docker_stop_labelled(c->docker_host, c->stop_label, c->stop_alias, c->stop_timeout, &stopped);
		job->containers_stopped = stopped.n;
		if (rc) {
			job_fail(job, rc, "containers");
			goto start;
		}
	}
	if (cf_interrupted) {
		job_fail(job, cf_err(CF_EINTR, "interrupted"), "backup");
		goto start;
	}
	/* Databases are dumped, not stopped: their consistent snapshots start
	 * here, as close to the file backup as possible. */
	for (size_t i = 0, from = src.n; i < c->nmariadb; i++, from = src.n)
		if ((rc = cf_sources_add_mariadb(&src, c->mariadb[i], c->mariadb_lock, c->mariadb_users)) ||
		    (rc = cf_sources_describe(&desc, &src, from, CF_SOURCE_MARIADB, c->mariadb[i]))) {
			job_fail(job, rc, "databases");
			goto start;
		}
	for (size_t i = 0, from = src.n; i < c->npostgres; i++, from = src.n)
		if ((rc = cf_sources_add_postgres(&src, c->postgres[i])) ||
		    (rc = cf_sources_describe(&desc, &src, from, CF_SOURCE_POSTGRES, c->postgres[i]))) {
			job_fail(job, rc, "databases");
			goto start;
		}
	for (size_t i = 0, from = src.n; i < c->nsqlite; i++, from = src.n)
		if ((rc = cf_sources_add_sqlite(&src, c->sqlite[i], NULL)) ||
		    (rc = cf_sources_describe(&desc, &src, from, CF_SOURCE_SQLITE, NULL))) {
			job_fail(job, rc, "databases");
			goto start;
		}
	for (size_t i = 0, from = src.n; i < c->nstdin_cmds; i++, from = src.n)
		if ((rc = cf_sources_add_command(&src, c->stdin_cmds[i].command, c->stdin_cmds[i].path)) ||
		    (rc = cf_sources_describe(&desc, &src, from, CF_SOURCE_COMMAND, NULL))) {
			job_fail(job, rc, "databases");
			goto start;
		}
	/* a COFFER_EXCLUDES pattern must not drop a dump (the MariaDB dumps'
	 * names are known only now): refused, naming both */
	if ((rc = cf_sources_check(&src, (const char *const *)paths, npaths,
				   (const char *const *)c->excludes, c->nexcludes))) {
		job_fail(job, rc, "sources");
		goto start;
	}
	struct cf_backup_opts o;
	memset(&o, 0, sizeof(o));
	o.paths = (const char *const *)paths;
	o.npaths = npaths;
	o.streams = src.streams;
	o.nstreams = src.n;
	o.sources = desc.sources;
	o.nsources = desc.nsources;
	resolve_host(c);
	o.host = agent_g.host;
	o.tags = (const char *const *)c->tags;
	o.ntags = c->ntags;
	o.excludes = (const char *const *)c->excludes;
	o.nexcludes = c->nexcludes;
	char cache_dir[4096];
	if (cf_cache_dir_default(cache_dir, sizeof(cache_dir)))
		o.cache_dir = cache_dir;
	rc = cf_backup_run(repo, &o, &snap);
	if (rc == CF_OK || rc == CF_EPARTIAL) {
		cf_hex(snap.id, CF_ID_LEN, job->snapshot_id);
		/* the replicated databases start new generations from here */
		agent_repl_new_base();
		job->summary = snap.summary;
		if (rc == CF_EPARTIAL) {
			job->rc = rc;
			snprintf(job->error, sizeof(job->error), "%" PRIu64 " source files could not be read",
				 snap.summary.files_unreadable);
		}
	} else {
		job_fail(job, rc, "backup");
	}
start:
	/* close the database transactions before anything slow */
	cf_sources_release(&src);
	if (stopped.n && (rc = cf_docker_start(c->docker_host, &stopped)))
		job_fail(job, rc, "start-containers");
	/* after the containers run again, whatever the backup did */
	if (engine && (rc = cf_docker_exec_labelled(c->docker_host, "exec-post", CF_DOCKER_EXEC_POST,
						    CF_DOCKER_EXEC_POST_OFFEN, true)))
		job_fail(job, rc, "exec-post");
post:
	if (c->post_command) {
		rc = agent_run_hook(c, "COFFER_POST_COMMAND", c->post_command, agent_status_word(job->rc), job->snapshot_id);
		if (rc)
			job_fail(job, rc, "post-command");
	}
	if (repo && (job->rc == CF_OK || job->rc == CF_EPARTIAL) && (rc = retention(c, &repo, job)))
		job_fail(job, rc, "retention");
	if (repo && (job->rc == CF_OK || job->rc == CF_EPARTIAL) && (rc = scheduled_check(c, repo, job)))
		job_fail(job, rc, "check");
	if (repo) {
		struct cf_snapshot *list = NULL;
		size_t n = 0;
		if (cf_repo_snapshots(repo, &list, &n, NULL) == CF_OK)
			job->snapshots = (int64_t)n;
		cf_snapshots_free(list, n);
		uint64_t packs, bytes;
		if (cf_repo_pack_totals(repo, &packs, &bytes) == CF_OK) {
			job->repo_packs = (int64_t)packs;
			job->repo_bytes = (int64_t)bytes;
		}
	}
done:
	cf_repo_free(repo);
	cf_snapshot_release(&snap);
	cf_snapshot_release(&desc);
	cf_docker_set_release(&stopped);
	cf_docker_set_release(&pre);
	cf_sources_release(&src);
	for (size_t i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	job->end_ns = cf_now_ns();
	job->exit_code = agent_exit_of(job->rc);
	if (lockfd >= 0)
		close(lockfd); /* after the report's figures are final; the state file is written by the caller */
	return job->exit_code;
}
