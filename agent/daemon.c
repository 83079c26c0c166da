/*
 * daemon.c - the agent's loop, its job, and the report of each job.
 */
#include "agent/daemon.h"
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

extern char **environ;

#define STATE_FILE "state.json"
/* A waiting agent whose next job is this late is unhealthy (it is stuck, or
 * the clock jumped): one hour covers COFFER_JITTER's default range and slow
 * container stops. */
#define OVERDUE_GRACE 3600

/* What the loop carries from job to job (and from the last run, via the
 * state file): counters for the metrics and the healthcheck. */
static struct {
	uint64_t runs, errors, skipped;
	double last_success;
	int64_t last_tick;
	int64_t last_prune, last_check;
	time_t next_run;
	struct cf_metrics_server *server;
	char host[256];   /* the host snapshots carry: resolve_host() */
} g;

static volatile sig_atomic_t reload_requested;

/* ------------------------------------------------------------ helpers */

static const char *zone(const struct cf_agent_config *c)
{
	if (!c->tz || !strcmp(c->tz, "UTC") || !strcmp(c->tz, "Etc/UTC"))
		return NULL;
	return c->tz;
}

static void utc_text(int64_t ns, char *out, size_t n)
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

static int state_dir(const struct cf_agent_config *c)
{
	int r = cf_mkdirs(c->state_dir, 0755);
	return r ? cf_err_prefix(r, "COFFER_STATE_DIR") : CF_OK;
}

/* -------------------------------------------------------- child processes */

/* Wait for pid; on SIGTERM pass it on once (the child is not in our process
 * group's line of fire when Docker signals only PID 1). */
static int wait_child(pid_t pid, int *status)
{
	bool passed = false;
	for (;;) {
		if (waitpid(pid, status, 0) == pid)
			return CF_OK;
		if (errno != EINTR)
			return cf_err_errno("waitpid");
		if (cf_interrupted && !passed) {
			kill(pid, SIGTERM);
			passed = true;
		}
	}
}

static int spawn_sh(const char *cmd, int stdout_fd, char *const *envp, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	int e;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	if (stdout_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, stdout_fd, 1);
	e = posix_spawn(pid, "/bin/sh", &fa, &at, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (e) {
		errno = e;
		return cf_err_errno("cannot run /bin/sh");
	}
	return CF_OK;
}

static void describe_status(int st, char *out, size_t n)
{
	if (WIFEXITED(st))
		snprintf(out, n, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(out, n, "was killed by signal %d", WTERMSIG(st));
	else
		snprintf(out, n, "ended with wait status %d", st);
}

/* ------------------------------------------------- the hooks' environment
 *
 * A hook is a user's shell command: it needs the agent's ordinary
 * environment (PATH, HOME, TZ, the paths it backs up) and what the job did,
 * but none of the agent's credentials.  Its environment is the agent's with
 * every variable left out that is, or may hold, a secret:
 *   - a name containing PASS (PASSWORD, PASSWD, PASSPHRASE), SECRET, TOKEN,
 *     KEY or CREDENTIAL, or ending in _PW or _PWD (MYSQL_PWD), in any case.  This
 *     drops AWS_ACCESS_KEY_ID (not secret, but no hook needs it) and the
 *     *_FILE forms (COFFER_PASSWORD_FILE is a path, not a secret; a hook runs
 *     as the agent's user and could read it, but nothing a hook does needs it
 *     and naming it helps nobody);
 *   - COFFER_MARIADB (its URLs may carry a password);
 *   - any value holding a URL with credentials (scheme://USER:PASS@...);
 *   - any value holding the agent's own password or webhook secret (read
 *     from their files, they have no variable of their own to match).
 * Then the job's facts are added: COFFER_JOB_STATUS and COFFER_SNAPSHOT_ID
 * for the post hook (values inherited under these names are dropped first). */

static bool name_has(const char *name, size_t n, const char *word)
{
	size_t w = strlen(word);
	for (size_t i = 0; i + w <= n; i++)
		if (!strncasecmp(name + i, word, w))
			return true;
	return false;
}

/* "scheme://user:pass@host": a ':' in the part before '@' of an authority. */
static bool has_url_credentials(const char *v)
{
	for (const char *p = strstr(v, "://"); p; p = strstr(p + 1, "://")) {
		const char *a = p + 3;
		size_t n = strcspn(a, "/?#@ \t\n");
		if (a[n] == '@' && memchr(a, ':', n))
			return true;
	}
	return false;
}

static bool secret_variable(const char *entry, const char *const *secrets)
{
	static const char *const words[] = { "PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL" };
	size_t n = strcspn(entry, "=");
	const char *v = entry[n] ? entry + n + 1 : "";
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (name_has(entry, n, words[i]))
			return true;
	if ((n >= 4 && !strncasecmp(entry + n - 4, "_PWD", 4)) || (n >= 3 && !strncasecmp(entry + n - 3, "_PW", 3)))
		return true;
	if ((n == 14 && !strncmp(entry, "COFFER_MARIADB", 14)) ||
	    (n == 17 && !strncmp(entry, "COFFER_JOB_STATUS", 17)) ||
	    (n == 18 && !strncmp(entry, "COFFER_SNAPSHOT_ID", 18)))
		return true;
	if (has_url_credentials(v))
		return true;
	/* a short secret would match too much by containment: equality then */
	for (size_t i = 0; secrets && secrets[i]; i++)
		if (*secrets[i] && (strlen(secrets[i]) >= 8 ? strstr(v, secrets[i]) != NULL : !strcmp(v, secrets[i])))
			return true;
	return false;
}

/* The hook's environment: environ less secrets, plus the NULL-terminated
 * "NAME=value" strings of extra.  The array is the caller's to free (with
 * free(); its strings are environ's and extra's). */
static int hook_env(const char *const *secrets, char *const *extra, char ***out)
{
	size_t n = 0, k = 0, m = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	for (char *const *x = extra; x && *x; x++)
		m++;
	char **env = calloc(n + m + 1, sizeof(*env));
	if (!env)
		return cf_err(CF_ENOMEM, "out of memory");
	for (char **e = environ; e && *e; e++)
		if (!secret_variable(*e, secrets))
			env[k++] = *e;
	for (size_t i = 0; i < m; i++)
		env[k++] = extra[i];
	env[k] = NULL;
	*out = env;
	return CF_OK;
}

/* Run a hook; its output goes to the agent's stdout/stderr.  status: the
 * job's status word for the post hook (NULL for the pre hook); snapshot_id:
 * "" when no snapshot was written. */
static int run_hook(const struct cf_agent_config *c, const char *key, const char *cmd, const char *status,
		    const char *snapshot_id)
{
	pid_t pid;
	int st, r;
	char how[64];
	char status_var[64], snap_var[32 + CF_ID_HEX];
	char *extra[3] = { NULL, NULL, NULL }, **env = NULL;
	const char *secrets[4] = { NULL, NULL, NULL, NULL };
	char *pw = NULL;
	size_t nx = 0, ns = 0;

	if (status) {
		snprintf(status_var, sizeof(status_var), "COFFER_JOB_STATUS=%s", status);
		extra[nx++] = status_var;
	}
	if (snapshot_id && *snapshot_id) {
		snprintf(snap_var, sizeof(snap_var), "COFFER_SNAPSHOT_ID=%s", snapshot_id);
		extra[nx++] = snap_var;
	}
	/* the password file's content is matched too (a file that cannot be
	 * read now fails the open, not the hook) */
	if (c->password_file) {
		if (cf_agent_read_secret(c->password_file, "COFFER_PASSWORD_FILE", &pw) == CF_OK)
			secrets[ns++] = pw;
		else
			cf_err_clear();
	}
	if (c->password)
		secrets[ns++] = c->password;
	if (c->webhook_secret)
		secrets[ns++] = c->webhook_secret;
	cf_info("coffer agent: running %s", key);
	r = hook_env(secrets, extra, &env);
	cf_agent_secret_free(pw);
	if (r)
		return cf_err_prefix(r, "%s", key);
	r = spawn_sh(cmd, -1, env, &pid);
	free(env);
	if (r || (r = wait_child(pid, &st)))
		return cf_err_prefix(r, "%s", key);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return CF_OK;
	describe_status(st, how, sizeof(how));
	return cf_err(cf_interrupted ? CF_EINTR : CF_EIO, "%s %s", key, how);
}

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
		if (errno == ENOENT && (c->nstdin_cmds || c->nmariadb || c->nsqlite))
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
	if (!r && !*n && !c->nstdin_cmds && !c->nmariadb && !c->nsqlite)
		r = cf_err(CF_ENOENT, "nothing to back up: COFFER_BACKUP_PATHS is unset and %s holds no "
				      "directory (mount each volume as a directory under it)", c->backup_root);
	return r;
}

static int open_repository(const struct cf_agent_config *c, bool exclusive, struct cf_repo **r)
{
	struct cf_backend_opts bo = { c->s3_connections, c->cacert, 0, c->s3_sign_payload };
	struct cf_backend *be = NULL;
	char *pw = NULL;
	int rc;

	*r = NULL;
	if (c->password_file) {
		if ((rc = cf_agent_read_secret(c->password_file, "COFFER_PASSWORD_FILE", &pw)))
			return rc;
	} else if (!(pw = strdup(c->password))) {
		return cf_err(CF_ENOMEM, "out of memory");
	}
	if ((rc = cf_backend_open(c->repository, &bo, &be)) == CF_OK)
		rc = cf_repo_open(be, pw, strlen(pw), r);
	cf_agent_secret_free(pw);
	if (rc)
		return rc;
	if (c->s3_connections) /* as the CLI's --s3-connections */
		cf_repo_set_upload_threads(*r, c->s3_connections);
	/* a prune elsewhere may hold the lock for a while: wait rather than miss the day */
	if ((rc = cf_repo_lock(*r, exclusive, 600)) || (rc = cf_repo_load_index(*r))) {
		cf_repo_free(*r);
		*r = NULL;
	}
	return rc;
}

static const char *status_word(int rc)
{
	switch (rc) {
	case CF_OK: return "success";
	case CF_EPARTIAL: return "partial";
	case CF_EINTR: return "interrupted";
	default: return "failed";
	}
}

static int exit_of(int rc)
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

static json_t *read_state(const char *state_dir);

/* What the previous run (or process: --once under systemd) left in the state
 * file: the last tick for COFFER_RUN_MISSED, the last success for the
 * metrics, the last prune for COFFER_PRUNE_SCHEDULE.  Once per process. */
static void load_state(const struct cf_agent_config *c)
{
	static bool loaded;
	json_t *prev;
	if (loaded)
		return;
	loaded = true;
	if ((prev = read_state(c->state_dir))) {
		json_t *a = json_object_get(prev, "agent");
		g.last_tick = (int64_t)json_integer_value(json_object_get(a, "last_tick_unix"));
		g.last_success = json_number_value(json_object_get(a, "last_success_unix"));
		g.last_prune = (int64_t)json_integer_value(json_object_get(a, "last_prune_unix"));
		g.last_check = (int64_t)json_integer_value(json_object_get(a, "last_check_unix"));
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
static int job_lock(const struct cf_agent_config *c, int *fdp)
{
	char path[4096], holder[200] = "";
	int r, fd;
	*fdp = -1;
	if ((r = state_dir(c)))
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
	utc_text(cf_now_ns(), t, sizeof(t));
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
 * container id seen).  Resolved once per process, into g.host. */
static void resolve_host(const struct cf_agent_config *c)
{
	char h[256] = "", path[4096];
	if (g.host[0])
		return;
	if (c->host) {
		snprintf(g.host, sizeof(g.host), "%s", c->host);
		return;
	}
	if (gethostname(h, sizeof(h)) != 0 || !h[0])
		snprintf(h, sizeof(h), "localhost");
	h[sizeof(h) - 1] = 0;
	if (!looks_like_container_id(h)) {
		snprintf(g.host, sizeof(g.host), "%s", h);
		return;
	}
	if (c->docker_socket && access(c->docker_socket, F_OK) == 0 &&
	    cf_docker_compose_name(c->docker_socket, h, g.host, sizeof(g.host)) == CF_OK) {
		cf_warn("coffer agent: the hostname %s is a container id; snapshots carry the compose "
			"service's name %s instead (set COFFER_HOST to choose one)", h, g.host);
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
			snprintf(g.host, sizeof(g.host), "%s", line);
			return;
		}
	}
	snprintf(g.host, sizeof(g.host), "coffer-%.12s", h);
	int r = state_dir(c);
	if (!r) {
		char text[300];
		snprintf(text, sizeof(text), "%s\n", g.host);
		r = cf_write_atomic(path, text, strlen(text), 0644);
	}
	cf_warn("coffer agent: the hostname %s is a container id, which changes when the container is "
		"recreated; snapshots carry the host %s%s (set COFFER_HOST, or hostname: in compose)", h, g.host,
		r ? " (it could not be kept in the state directory)" : ", kept in the state directory");
}

/* The host this agent's snapshots carry (as cf_backup_run records it). */
static void agent_host(const struct cf_agent_config *c, char *out, size_t n)
{
	resolve_host(c);
	snprintf(out, n, "%s", g.host);
}

/* COFFER_KEEP_*: restic's policy over this host's snapshots, grouped by
 * paths (forget --host H --group-by host,paths).  Other hosts' snapshots in
 * a shared repository are never touched.  *forgotten counts removals. */
static int forget_by_policy(const struct cf_agent_config *c, struct cf_repo *r, uint64_t *forgotten)
{
	struct cf_snapshot *s = NULL;
	struct cf_retention_snap *rs = NULL;
	struct cf_retention_result *res = NULL;
	struct cf_buf key = CF_BUF_INIT;
	char **keys = NULL, host[256];
	size_t n = 0, *idx = NULL;
	bool *done = NULL;
	int rc;

	agent_host(c, host, sizeof(host));
	if ((rc = cf_repo_snapshots(r, &s, &n, NULL)))
		return rc;
	if (!(rs = calloc(n + 1, sizeof(*rs))) || !(keys = calloc(n + 1, sizeof(*keys))) ||
	    !(idx = calloc(n + 1, sizeof(*idx))) || !(done = calloc(n + 1, sizeof(*done)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rs[i].time = s[i].time_ns / 1000000000;
		rs[i].nsec = (int32_t)(s[i].time_ns % 1000000000);
		rs[i].host = s[i].hostname;
		rs[i].tags = (const char *const *)s[i].tags;
		rs[i].ntags = s[i].ntags;
		rs[i].paths = (const char *const *)s[i].paths;
		rs[i].npaths = s[i].npaths;
		cf_buf_reset(&key);
		if ((rc = cf_retention_group_key(CF_GROUP_HOST | CF_GROUP_PATHS, &rs[i], &key)))
			goto out;
		if (!(keys[i] = strdup((const char *)key.data))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		done[i] = !s[i].hostname || strcmp(s[i].hostname, host) != 0;
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
		rc = cf_retention_apply(&c->keep, g, ng, zone(c), (int64_t)time(NULL), &res);
		free(g);
		if (rc)
			goto out;
		for (size_t k = 0; k < ng && !rc; k++) {
			char hex[CF_ID_HEX];
			if (res[k].keep)
				continue;
			cf_hex(s[idx[k]].id, CF_ID_LEN, hex);
			if ((rc = cf_repo_forget_snapshot(r, s[idx[k]].id)) == CF_OK) {
				cf_info("coffer agent: retention: removed snapshot %.8s", hex);
				(*forgotten)++;
			}
		}
		cf_retention_results_free(res, ng);
		res = NULL;
		if (rc)
			goto out;
	}
out:
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	free(idx);
	free(done);
	free(rs);
	cf_buf_release(&key);
	cf_snapshots_free(s, n);
	return rc;
}

/* Retention after a good backup: forget by policy, then prune when a tick of
 * COFFER_PRUNE_SCHEDULE has passed since the last prune.  Both under the
 * exclusive lock, so the shared-locked repository is closed first. */
static int retention(const struct cf_agent_config *c, struct cf_repo **repo, struct cf_agent_job *job)
{
	bool prune_due = false;
	time_t now = time(NULL), due;
	int rc;

	/* No record of a prune (a new agent, or a state directory that does not
	 * persist, as in a Kubernetes CronJob's /tmp) means due: counting from
	 * "now" would put it off at every run, and the repository would grow. */
	if (c->prune_schedule && strcmp(c->prune_schedule, "off") &&
	    (g.last_prune <= 0 ||
	     (cf_cron_next(&c->prune_cron, zone(c), (time_t)g.last_prune, &due) == CF_OK && due <= now)))
		prune_due = true;
	if (cf_retention_policy_empty(&c->keep) && !prune_due)
		return CF_OK;
	cf_repo_free(*repo);
	*repo = NULL;
	if ((rc = open_repository(c, true, repo)))
		return rc;
	if (!cf_retention_policy_empty(&c->keep) && (rc = forget_by_policy(c, *repo, &job->forgotten)))
		return rc;
	if (prune_due) {
		struct cf_prune_opts po = { 0.05 };
		struct cf_prune *p = NULL;
		if ((rc = cf_prune_plan(*repo, &po, &p)) == CF_OK && (rc = cf_prune_run(p)) == CF_OK) {
			job->pruned_bytes = cf_prune_stats(p)->bytes_freed;
			g.last_prune = now;
			cf_info("coffer agent: prune freed about %" PRIu64 " bytes", job->pruned_bytes);
		}
		cf_prune_free(p);
		if (rc)
			return rc;
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
	if (g.last_check > 0 &&
	    (cf_cron_next(&c->check_cron, zone(c), (time_t)g.last_check, &due) != CF_OK || due > now))
		return CF_OK;
	struct cf_check_opts o = { .subset_n = c->check_subset_n, .subset_m = c->check_subset_m,
				   .subset_percent = c->check_subset_percent };
	struct cf_check_stats st;
	memset(&st, 0, sizeof(st));
	int rc = cf_repo_check_opts(repo, &o, &st);
	job->checked = true;
	job->check_errors = st.errors;
	g.last_check = now;
	cf_info("coffer agent: check read %" PRIu64 " packs, %" PRIu64 " problems", st.packs_read, st.errors);
	return rc;
}

int cf_agent_run_job(const struct cf_agent_config *c, int64_t tick, struct cf_agent_job *job)
{
	struct cf_docker_set stopped = CF_DOCKER_SET_INIT;
	struct cf_sources src = CF_SOURCES_INIT;
	struct cf_snapshot snap;
	struct cf_repo *repo = NULL;
	char **paths = NULL;
	size_t npaths = 0;
	int rc, lockfd = -1;

	memset(job, 0, sizeof(*job));
	memset(&snap, 0, sizeof(snap));
	job->tick = tick;
	job->snapshots = -1;
	job->start_ns = cf_now_ns();
	cf_err_clear();
	if ((rc = job_lock(c, &lockfd))) {
		job_fail(job, rc, "job-lock");
		goto done;
	}
	load_state(c);
	cf_info("coffer agent: job started");

	if (c->pre_command && (rc = run_hook(c, "COFFER_PRE_COMMAND", c->pre_command, NULL, NULL))) {
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
	if (c->docker_socket && (c->docker_explicit || access(c->docker_socket, F_OK) == 0)) {
		rc = cf_docker_stop_labelled(c->docker_socket, c->stop_label, c->stop_timeout, &stopped);
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
	for (size_t i = 0; i < c->nmariadb; i++)
		if ((rc = cf_sources_add_mariadb(&src, c->mariadb[i], c->mariadb_lock))) {
			job_fail(job, rc, "databases");
			goto start;
		}
	for (size_t i = 0; i < c->nsqlite; i++)
		if ((rc = cf_sources_add_sqlite(&src, c->sqlite[i], NULL))) {
			job_fail(job, rc, "databases");
			goto start;
		}
	for (size_t i = 0; i < c->nstdin_cmds; i++)
		if ((rc = cf_sources_add_command(&src, c->stdin_cmds[i].command, c->stdin_cmds[i].path))) {
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
	resolve_host(c);
	o.host = g.host;
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
	if (stopped.n && (rc = cf_docker_start(c->docker_socket, &stopped)))
		job_fail(job, rc, "start-containers");
post:
	if (c->post_command) {
		rc = run_hook(c, "COFFER_POST_COMMAND", c->post_command, status_word(job->rc), job->snapshot_id);
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
	}
done:
	cf_repo_free(repo);
	cf_snapshot_release(&snap);
	cf_docker_set_release(&stopped);
	cf_sources_release(&src);
	for (size_t i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	job->end_ns = cf_now_ns();
	job->exit_code = exit_of(job->rc);
	if (lockfd >= 0)
		close(lockfd); /* after the report's figures are final; the state file is written by the caller */
	return job->exit_code;
}

/* ---------------------------------------------------------- reporting */

static json_t *job_json(const struct cf_agent_config *c, const struct cf_agent_job *job)
{
	char start[40], end[40];
	utc_text(job->start_ns, start, sizeof(start));
	utc_text(job->end_ns, end, sizeof(end));
	json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:I, s:I, s:f, s:s?, s:s?, s:s?, s:I, s:I, s:I, s:I, s:I}",
			      "status", status_word(job->rc),
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
	}
	return j;
}

/* state.json: {"agent": {...}, "last_job": {...}} */
static void write_state(const struct cf_agent_config *c, const char *agent_state, json_t *last_job)
{
	char path[4200];
	json_t *st = json_object();
	json_t *a = json_pack("{s:s, s:i, s:I, s:I, s:I, s:f, s:I, s:I, s:I}", "state", agent_state, "pid",
			      (int)getpid(), "next_run_unix", (json_int_t)g.next_run, "runs_total", (json_int_t)g.runs,
			      "errors_total", (json_int_t)g.errors, "last_success_unix", g.last_success,
			      "last_tick_unix", (json_int_t)g.last_tick, "last_prune_unix", (json_int_t)g.last_prune,
			      "last_check_unix", (json_int_t)g.last_check);
	char *text = NULL;
	int r;

	if (!st || !a)
		goto oom;
	json_object_set_new(st, "agent", a);
	a = NULL;
	if (last_job)
		json_object_set(st, "last_job", last_job);
	if (!(text = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER)))
		goto oom;
	snprintf(path, sizeof(path), "%s/%s", c->state_dir, STATE_FILE);
	if ((r = state_dir(c)) || (r = cf_write_atomic(path, text, strlen(text), 0644)))
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
static json_t *read_state(const char *state_dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", state_dir, STATE_FILE);
	return json_load_file(path, 0, NULL);
}

static void publish_metrics(const struct cf_agent_config *c, const struct cf_agent_job *job)
{
	struct cf_metrics_values v;
	struct cf_buf text = CF_BUF_INIT;
	int r;

	if (!c->metrics_file && !g.server)
		return;
	memset(&v, 0, sizeof(v));
	v.snapshots = -1;
	if (job) {
		v.have_run = true;
		v.last_run_timestamp = (double)job->end_ns / 1e9;
		v.last_run_duration = (double)(job->end_ns - job->start_ns) / 1e9;
		v.last_run_status = job->exit_code;
		v.backup_files = job->summary.total_files_processed;
		v.backup_bytes_processed = job->summary.total_bytes_processed;
		v.backup_bytes_added = job->summary.data_added_packed;
		v.snapshots = job->snapshots;
		v.containers_stopped = job->containers_stopped;
	}
	v.last_success_timestamp = g.last_success;
	v.runs_total = g.runs;
	v.errors_total = g.errors;
	v.ticks_skipped_total = g.skipped;
	v.next_run_timestamp = (double)g.next_run;
	if ((r = cf_metrics_format(&v, &text)))
		goto out;
	if (c->metrics_file && (r = cf_metrics_write_file(c->metrics_file, text.data, text.len)))
		goto out;
	if (g.server)
		r = cf_metrics_server_update(g.server, text.data, text.len);
out:
	if (r)
		cf_warn("coffer agent: metrics: %s", cf_errmsg(r));
	cf_buf_release(&text);
}

static void post_webhook(const struct cf_agent_config *c, json_t *jj)
{
	struct cf_webhook_opts o = { c->webhook_url, c->webhook_secret, c->webhook_retries, 0, 0,
				       c->cacert };
	char now[40];
	long status = 0;
	int r;

	if (!c->webhook_url)
		return;
	utc_text(cf_now_ns(), now, sizeof(now));
	const char *st = json_string_value(json_object_get(jj, "status"));
	json_t *body = json_pack("{s:s, s:s, s:O}", "type",
				 st && !strcmp(st, "success") ? "coffer.job.succeeded" : "coffer.job.failed",
				 "timestamp", now, "data", jj);
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!text)
		r = cf_err(CF_ENOMEM, "out of memory");
	else
		r = cf_webhook_post(&o, text, strlen(text), &status);
	if (r)
		cf_warn("coffer agent: %s", cf_errmsg(r));
	else
		cf_info("coffer agent: webhook delivered (HTTP %ld)", status);
	free(text);
	json_decref(body);
}

void cf_agent_report(const struct cf_agent_config *c, const struct cf_agent_job *job)
{
	char start[40], end[40], added[32];
	double secs = (double)(job->end_ns - job->start_ns) / 1e9;

	g.runs++;
	if (job->rc == CF_OK)
		g.last_success = (double)job->end_ns / 1e9;
	else
		g.errors++;
	if (job->tick)
		g.last_tick = job->tick;
	utc_text(job->start_ns, start, sizeof(start));
	utc_text(job->end_ns, end, sizeof(end));
	snprintf(added, sizeof(added), "%" PRIu64, job->summary.data_added_packed);
	/* one line a job, logfmt: easy to grep and to parse */
	struct cf_buf line = CF_BUF_INIT;
	cf_buf_addf(&line, "coffer agent: job start=%s end=%s result=%s exit=%d snapshot=%s files=%" PRIu64
		    " bytes_added=%s duration=%.1fs containers_stopped=%zu forgotten=%" PRIu64,
		    start, end, status_word(job->rc), job->exit_code,
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
	write_state(c, "waiting", jj);
	publish_metrics(c, job);
	if (jj)
		post_webhook(c, jj);
	json_decref(jj);
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
		if ((r = cf_cron_next(&c->cron, zone(c), t, &t)) || (r = zone_text(zone(c), t, text, sizeof(text))))
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
		g.host[0] = 0; /* COFFER_HOST may have changed: resolved again */
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
	json_t *prev = read_state(c->state_dir);
	write_state(c, state, json_object_get(prev, "last_job"));
	json_decref(prev);
}

static int run_and_report(const struct cf_agent_config *c, int64_t tick)
{
	struct cf_agent_job job;
	g.next_run = 0;
	set_agent_state(c, "running");
	cf_agent_run_job(c, tick, &job);
	cf_agent_report(c, &job);
	return job.exit_code;
}

int cf_agent_loop(struct cf_agent_config *c)
{
	int code = 0, r;

	if ((r = state_dir(c)) != CF_OK) {
		cf_warn("coffer agent: %s", cf_errmsg(r));
		return 1;
	}
	if (c->metrics_listen && (r = cf_metrics_serve(c->metrics_listen, &g.server)) != CF_OK) {
		cf_warn("coffer agent: %s", cf_errmsg(r));
		return 1;
	}
	load_state(c);
	cf_warn("coffer agent: started: schedule \"%s\" in %s, repository %s", c->schedule,
		c->tz ? c->tz : "UTC", c->repository);

	/* Ticks missed while the agent was down: made up only when asked, and
	 * by one job however many passed.  It stands for the latest of them, so
	 * that a restart right after it does not make up the older ones. */
	time_t missed;
	unsigned nmissed = 0;
	if (c->run_missed && g.last_tick > 0 &&
	    latest_tick(&c->cron, zone(c), (time_t)g.last_tick, time(NULL), &missed, &nmissed) == CF_OK &&
	    nmissed) {
		char when[80];
		zone_text(zone(c), missed, when, sizeof(when));
		cf_warn("coffer agent: %u tick(s) of the schedule passed while the agent was down: "
			"running one job now for the one due at %s", nmissed, when);
		code = run_and_report(c, (int64_t)missed);
	}
	while (!cf_interrupted) {
		time_t now = time(NULL), next;
		char when[80];
		if ((r = cf_cron_next(&c->cron, zone(c), now, &next)) != CF_OK) {
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
		g.next_run = fire;
		set_agent_state(c, "waiting");
		publish_metrics(c, NULL);
		zone_text(zone(c), fire, when, sizeof(when));
		cf_info("coffer agent: next job at %s", when);
		sleep_until(fire);
		if (cf_interrupted)
			break; /* between jobs: nothing to clean up */
		if (reload_requested) {
			reload(c);
			continue;
		}
		if (time(NULL) < fire)
			continue;
		code = run_and_report(c, (int64_t)next);
		unsigned skipped = 0;
		if (!cf_interrupted && cf_agent_ticks_between(&c->cron, zone(c), next, time(NULL), &skipped) == CF_OK &&
		    skipped) {
			g.skipped += skipped;
			cf_warn("coffer agent: %u tick(s) of the schedule passed while the job ran: skipped", skipped);
		}
		if (cf_interrupted)
			return code; /* SIGTERM during the job: it has cleaned up and reported */
	}
	cf_warn("coffer agent: stopping");
	cf_metrics_server_free(g.server);
	g.server = NULL;
	return cf_interrupted ? 0 : code;
}

/* -------------------------------------------------------- healthcheck */

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
	} else {
		snprintf(why, whylen, "%s; last job: %s", state ? state : "unknown",
			 job ? json_string_value(json_object_get(job, "status")) : "none yet");
		bad = 0;
	}
	json_decref(st);
	return bad;
}
