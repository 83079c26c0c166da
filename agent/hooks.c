/*
 * hooks.c - COFFER_PRE_COMMAND and COFFER_POST_COMMAND: a user's shell
 * command run by /bin/sh with posix_spawn(), waited for (a SIGTERM to the
 * agent is passed on once), in an environment without the agent's secrets
 * (below).  A hook that fails or is killed is an error naming it.
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

extern char **environ;

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
 *   - COFFER_MARIADB (its URLs may carry a password), COFFER_NOTIFY_URLS
 *     (a Healthchecks UUID, a Kuma push token or an ntfy topic is the secret);
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
	if ((n == 14 && !strncmp(entry, "COFFER_MARIADB", 14)) || (n == 18 && !strncmp(entry, "COFFER_NOTIFY_URLS", 18)) ||
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
int agent_run_hook(const struct cf_agent_config *c, const char *key, const char *cmd, const char *status,
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
