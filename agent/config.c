/*
 * config.c - the agent's key table, the config file reader, validation.
 */
#include "agent/config.h"
#include "sources/dburl.h"
#include "sources/sources.h"
#include "common/buf.h"
#include "common/array.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

typedef int (*setter_fn)(struct cf_agent_config *c, const char *key, const char *v);

struct key {
	const char *name;
	setter_fn set;        /* NULL: passed through to other modules via the environment */
	const char *def;      /* default value, NULL = unset */
	bool secret;
	const char *doc;
};

/* ------------------------------------------------------------- helpers */

static int dup_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}

/* Append a copy of s[0..len) to the NULL-terminated list *arr of *n.  *cap
 * is the room known in *arr (0 when unknown: CF_GROW then reallocates). */
static int push(char ***arr, size_t *n, size_t *cap, const char *s, size_t len)
{
	int rc;
	if ((rc = CF_GROW(*arr, *n + 2, *cap)))
		return rc;
	char **a = *arr;
	if (!(a[*n] = strndup(s, len)))
		return cf_err(CF_ENOMEM, "out of memory");
	a[++*n] = NULL;
	return CF_OK;
}

static void free_list(char **a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i]);
	free(a);
}

/* Split v at any character of seps, trimming blanks, skipping empty items. */
static int split(const char *v, const char *seps, char ***arr, size_t *n)
{
	const char *p = v;
	size_t cap = 0; /* what *arr held before is kept by the first CF_GROW */
	while (*p) {
		size_t len = strcspn(p, seps);
		const char *s = p, *e = p + len;
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (e > s) {
			int r = push(arr, n, &cap, s, (size_t)(e - s));
			if (r)
				return r;
		}
		p += len;
		if (*p)
			p++;
	}
	return CF_OK;
}

static int parse_uint(const char *key, const char *v, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*v))
		goto bad;
	unsigned long x = strtoul(v, &end, 10);
	if (errno || *end || x > max)
		goto bad;
	*out = x;
	return CF_OK;
bad:
	return cf_err(CF_EINVAL, "%s: \"%s\" is not a whole number from 0 to %lu", key, v, max);
}

/* "90", "90s", "15m", "2h", "1d" -> seconds */
static int parse_seconds(const char *key, const char *v, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long mult = 1;
	errno = 0;
	if (!isdigit((unsigned char)*v))
		goto bad;
	unsigned long x = strtoul(v, &end, 10);
	if (errno)
		goto bad;
	if (*end) {
		if (end[1])
			goto bad;
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: goto bad;
		}
	}
	if (x > max / mult)
		return cf_err(CF_EINVAL, "%s: \"%s\" is longer than the maximum of %lu seconds", key, v, max);
	*out = (unsigned)(x * mult);
	return CF_OK;
bad:
	return cf_err(CF_EINVAL, "%s: \"%s\" is not a duration (a number of seconds, or with a unit: "
			      "90s, 15m, 2h, 1d)", key, v);
}

/* COFFER_PARSE_ONLY=1 (the CLI validates a command line, e.g. one from an
 * example, on a machine that is not where it will run): values are checked,
 * the files and directories they name are not looked at. */
static bool parse_only(void)
{
	const char *po = getenv("COFFER_PARSE_ONLY");
	return po && !strcmp(po, "1");
}

static int readable_file(const char *key, const char *path)
{
	struct stat st;
	if (path[0] != '/')
		return cf_err(CF_EINVAL, "%s: \"%s\" is not an absolute path", key, path);
	if (parse_only())
		return CF_OK;
	if (stat(path, &st) != 0)
		return cf_err_errno("%s: cannot use %s", key, path);
	if (!S_ISREG(st.st_mode))
		return cf_err(CF_EINVAL, "%s: %s is not a regular file", key, path);
	if (access(path, R_OK) != 0)
		return cf_err_errno("%s: cannot read %s", key, path);
	return CF_OK;
}

static int abs_path(const char *key, const char *v)
{
	if (v[0] != '/')
		return cf_err(CF_EINVAL, "%s: \"%s\" is not an absolute path", key, v);
	return CF_OK;
}

/* --------------------------------------------------------------- setters */

static int set_repository(struct cf_agent_config *c, const char *key, const char *v)
{
	if (!strncmp(v, "s3:", 3)) {
		if (strncmp(v, "s3://", 5) && strncmp(v, "s3:http://", 10) && strncmp(v, "s3:https://", 11))
			return cf_err(CF_EINVAL, "%s: \"%s\" is not an S3 location (s3:https://HOST/BUCKET[/PREFIX] "
					      "or s3://BUCKET[/PREFIX])", key, v);
	} else {
		const char *p = strncmp(v, "local:", 6) ? v : v + 6;
		if (p[0] != '/')
			return cf_err(CF_EINVAL, "%s: \"%s\" is neither an absolute directory nor an s3: location",
				      key, v);
	}
	return dup_str(&c->repository, v);
}

static int set_password_file(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = readable_file(key, v);
	return r ? r : dup_str(&c->password_file, v);
}

static int set_cacert(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = readable_file(key, v);
	return r ? r : dup_str(&c->cacert, v);
}

static int set_s3_connections(struct cf_agent_config *c, const char *key, const char *v)
{
	unsigned long x = 0;
	if (parse_uint(key, v, 128, &x) || x == 0)
		return cf_err(CF_EINVAL, "%s: \"%s\" is not a whole number from 1 to 128", key, v);
	c->s3_connections = (int)x;
	return CF_OK;
}

static int set_s3_sign_payload(struct cf_agent_config *c, const char *key, const char *v)
{
	return cf_parse_bool(key, v, &c->s3_sign_payload);
}

static int set_password(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return dup_str(&c->password, v);
}

static int set_cron(const char *key, const char *v, struct cf_cron *cron, char **dst)
{
	int r = cf_cron_parse(cron, v);
	if (r)
		return cf_err_prefix(r, "%s", key);
	return dup_str(dst, v);
}

static int set_schedule(struct cf_agent_config *c, const char *key, const char *v)
{
	return set_cron(key, v, &c->cron, &c->schedule);
}

static int set_prune_schedule(struct cf_agent_config *c, const char *key, const char *v)
{
	if (!strcmp(v, "off"))
		return dup_str(&c->prune_schedule, v);
	return set_cron(key, v, &c->prune_cron, &c->prune_schedule);
}

static int set_check_subset(struct cf_agent_config *c, const char *key, const char *v)
{
	unsigned n = 0, m = 0;
	double pct = 0;
	char tail = 0;
	c->check_subset_n = c->check_subset_m = 0;
	c->check_subset_percent = 0;
	if (sscanf(v, "%u/%u%c", &n, &m, &tail) == 2 && m >= 1 && n >= 1 && n <= m) {
		c->check_subset_n = n;
		c->check_subset_m = m;
	} else if (sscanf(v, "%lf%%%c", &pct, &tail) == 1 && v[strlen(v) - 1] == '%' && pct > 0 &&
		   pct <= 100) {
		c->check_subset_percent = pct;
	} else {
		return cf_err(CF_EINVAL, "%s: '%s' is not n/m (1 <= n <= m) or N%% (0 < N <= 100)", key, v);
	}
	return dup_str(&c->check_subset, v);
}

static int set_check_schedule(struct cf_agent_config *c, const char *key, const char *v)
{
	if (!strcmp(v, "off"))
		return dup_str(&c->check_schedule, v);
	return set_cron(key, v, &c->check_cron, &c->check_schedule);
}

static int set_tz(struct cf_agent_config *c, const char *key, const char *v)
{
	if (strcmp(v, "UTC") && strcmp(v, "Etc/UTC")) {
		int r = cf_tz_check(v);
		if (r)
			return cf_err_prefix(r, "%s", key);
	}
	return dup_str(&c->tz, v);
}


static int set_run_missed(struct cf_agent_config *c, const char *key, const char *v)
{
	return cf_parse_bool(key, v, &c->run_missed);
}

static int set_verbose(struct cf_agent_config *c, const char *key, const char *v)
{
	bool b = false;
	int r = cf_parse_bool(key, v, &b);
	c->log_level = b ? 2 : 1;
	return r;
}

static int set_jitter(struct cf_agent_config *c, const char *key, const char *v)
{
	return parse_seconds(key, v, 86400, &c->jitter);
}

static int set_stop_timeout(struct cf_agent_config *c, const char *key, const char *v)
{
	return parse_seconds(key, v, 3600, &c->stop_timeout);
}

static int set_job_wait(struct cf_agent_config *c, const char *key, const char *v)
{
	return parse_seconds(key, v, 86400, &c->job_wait);
}

static int set_paths(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = split(v, ",", &c->paths, &c->npaths);
	for (size_t i = 0; !r && i < c->npaths; i++) {
		struct stat st;
		if ((r = abs_path(key, c->paths[i])))
			break;
		if (!parse_only() && lstat(c->paths[i], &st) != 0)
			r = cf_err_errno("%s: cannot back up %s", key, c->paths[i]);
	}
	return r;
}

static int set_backup_root(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = abs_path(key, v);
	return r ? r : dup_str(&c->backup_root, v);
}

static int set_excludes(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return split(v, ",", &c->excludes, &c->nexcludes);
}

static int set_state_dir(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = abs_path(key, v);
	return r ? r : dup_str(&c->state_dir, v);
}

static int set_mariadb(struct cf_agent_config *c, const char *key, const char *v)
{
	/* URLs carry commas in their database lists: whitespace separates them. */
	int r = split(v, " \t\r\n", &c->mariadb, &c->nmariadb);
	for (size_t i = 0; !r && i < c->nmariadb; i++) {
		struct cf_dburl u = CF_DBURL_INIT;
		if ((r = cf_dburl_parse(&u, c->mariadb[i])))
			r = cf_err_prefix(r, "%s", key);
		cf_dburl_release(&u);
	}
	return r;
}

static int set_mariadb_lock(struct cf_agent_config *c, const char *key, const char *v)
{
	return cf_parse_bool(key, v, &c->mariadb_lock);
}

static int set_sqlite(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = split(v, ",", &c->sqlite, &c->nsqlite);
	for (size_t i = 0; !r && i < c->nsqlite; i++)
		r = abs_path(key, c->sqlite[i]);
	return r;
}

static bool bad_snapshot_path(const char *p)
{
	if (!*p || p[0] == '/')
		return true;
	for (const char *s = p; *s; s = strchr(s, '/') ? strchr(s, '/') + 1 : s + strlen(s))
		if (!strncmp(s, "..", 2) && (s[2] == '/' || !s[2]))
			return true;
	return false;
}

static int set_stdin_commands(struct cf_agent_config *c, const char *key, const char *v)
{
	char **lines = NULL;
	size_t n = 0;
	int r = split(v, "\n", &lines, &n);
	if (!r && !(c->stdin_cmds = calloc(n ? n : 1, sizeof(*c->stdin_cmds))))
		r = cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; !r && i < n; i++) {
		char *eq = strchr(lines[i], '=');
		if (!eq || eq == lines[i] || !eq[1 + strspn(eq + 1, " \t")]) {
			r = cf_err(CF_EINVAL, "%s: line %zu \"%s\" is not FILENAME=COMMAND", key, i + 1, lines[i]);
			break;
		}
		*eq = 0;
		for (char *e = eq; e > lines[i] && isspace((unsigned char)e[-1]);)
			*--e = 0;
		for (eq++; isspace((unsigned char)*eq);)
			eq++;
		if (bad_snapshot_path(lines[i])) {
			r = cf_err(CF_EINVAL, "%s: line %zu: \"%s\" must be a relative path without '..'",
				   key, i + 1, lines[i]);
			break;
		}
		c->stdin_cmds[i].path = strdup(lines[i]);
		c->stdin_cmds[i].command = strdup(eq);
		c->nstdin_cmds = i + 1;
		if (!c->stdin_cmds[i].path || !c->stdin_cmds[i].command)
			r = cf_err(CF_ENOMEM, "out of memory");
	}
	free_list(lines, n);
	return r;
}

static int set_host(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return dup_str(&c->host, v);
}

static int set_tags(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return split(v, ",", &c->tags, &c->ntags);
}

static int set_keep(const char *key, const char *v, int *out)
{
	unsigned long x = 0;
	if (!strcmp(v, "unlimited") || !strcmp(v, "-1"))
		return *out = CF_KEEP_UNLIMITED, CF_OK;
	int r = parse_uint(key, v, 1000000, &x);
	if (r)
		return cf_err(r, "%s: \"%s\" is not a whole number from 0 to 1000000 (or \"unlimited\")", key, v);
	*out = (int)x;
	return CF_OK;
}

#define KEEP_SETTER(field) \
	static int set_keep_##field(struct cf_agent_config *c, const char *key, const char *v) \
	{ return set_keep(key, v, &c->keep.field); }
KEEP_SETTER(last)
KEEP_SETTER(hourly)
KEEP_SETTER(daily)
KEEP_SETTER(weekly)
KEEP_SETTER(monthly)
KEEP_SETTER(yearly)

static int set_keep_within(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = cf_duration_parse(v, &c->keep.within);
	if (r)
		return cf_err_prefix(r, "%s", key);
	return dup_str(&c->keep_within, v);
}

static int set_pre(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return dup_str(&c->pre_command, v);
}

static int set_post(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return dup_str(&c->post_command, v);
}

static int set_docker_host(struct cf_agent_config *c, const char *key, const char *v)
{
	free(c->docker_socket);
	c->docker_socket = NULL;
	if (!*v || !strcmp(v, "none") || !strcmp(v, "off"))
		return CF_OK;
	if (strncmp(v, "unix://", 7) || v[7] != '/')
		return cf_err(CF_EINVAL, "%s: \"%s\" is not unix:///PATH (only a unix socket is supported; "
				      "\"none\" turns container handling off)", key, v);
	return dup_str(&c->docker_socket, v + 7);
}

static int set_stop_label(struct cf_agent_config *c, const char *key, const char *v)
{
	size_t klen = strcspn(v, "=");
	if (!klen)
		return cf_err(CF_EINVAL, "%s: \"%s\" is not a label (KEY or KEY=VALUE)", key, v);
	for (size_t i = 0; i < klen; i++)
		if (!isalnum((unsigned char)v[i]) && !strchr("._-/", v[i]))
			return cf_err(CF_EINVAL, "%s: \"%s\": a label key may hold only letters, digits "
					      "and . _ - /", key, v);
	return dup_str(&c->stop_label, v);
}

static int set_metrics_file(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = abs_path(key, v);
	if (r)
		return r;
	char *dir = strdup(v);
	if (!dir)
		return cf_err(CF_ENOMEM, "out of memory");
	*strrchr(dir, '/') = 0;
	struct stat st;
	if (!parse_only() && (stat(*dir ? dir : "/", &st) != 0 || !S_ISDIR(st.st_mode)))
		r = cf_err(CF_EINVAL, "%s: directory %s does not exist", key, *dir ? dir : "/");
	free(dir);
	return r ? r : dup_str(&c->metrics_file, v);
}

static int set_metrics_listen(struct cf_agent_config *c, const char *key, const char *v)
{
	const char *colon = strrchr(v, ':');
	unsigned long port = 0;
	if (!colon || parse_uint(key, colon + 1, 65535, &port) || port == 0)
		return cf_err(CF_EINVAL, "%s: \"%s\" is not [ADDRESS]:PORT with a port from 1 to 65535", key, v);
	return dup_str(&c->metrics_listen, v);
}

static int set_webhook_url(struct cf_agent_config *c, const char *key, const char *v)
{
	if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
		return cf_err(CF_EINVAL, "%s: \"%s\" is not an http:// or https:// URL", key, v);
	return dup_str(&c->webhook_url, v);
}

static int check_whsec(const char *key, const char *v)
{
	struct cf_buf b = CF_BUF_INIT;
	const char *p = strncmp(v, "whsec_", 6) ? v : v + 6;
	int r = cf_unbase64(p, strlen(p), &b);
	size_t n = b.len;
	if (b.data)
		explicit_bzero(b.data, b.cap);
	cf_buf_release(&b);
	/* never quote the secret itself */
	if (r == CF_ENOMEM)
		return r;
	if (r || n < 16)
		return cf_err(CF_EINVAL, "%s: not a Standard Webhooks secret (\"whsec_\" followed by the "
				      "base64 of 16 to 64 random bytes)", key);
	return CF_OK;
}

static int set_webhook_secret(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = check_whsec(key, v);
	if (r)
		return r;
	cf_agent_secret_free(c->webhook_secret);
	c->webhook_secret = strdup(v);
	return c->webhook_secret ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}

static int set_webhook_secret_file(struct cf_agent_config *c, const char *key, const char *v)
{
	char *s = NULL;
	int r = readable_file(key, v);
	if (!r && parse_only())
		return CF_OK; /* the secret is not read */
	if (!r)
		r = cf_agent_read_secret(v, key, &s);
	if (!r)
		r = set_webhook_secret(c, key, s);
	cf_agent_secret_free(s);
	return r;
}

static int set_webhook_retries(struct cf_agent_config *c, const char *key, const char *v)
{
	unsigned long x = 0;
	int r = parse_uint(key, v, 10, &x);
	c->webhook_retries = (unsigned)x;
	return r;
}

static int passthrough_file(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)c;
	return readable_file(key, v);
}

/* ----------------------------------------------------------------- table */

static const struct key keys[] = {
	{ "COFFER_REPOSITORY", set_repository, NULL, false,
	  "repository location: /dir, local:/dir, s3:https://HOST/BUCKET[/PREFIX] or s3://BUCKET[/PREFIX] (required)" },
	{ "COFFER_PASSWORD_FILE", set_password_file, NULL, true,
	  "file holding the repository password (a Docker secret); this or COFFER_PASSWORD is required" },
	{ "COFFER_PASSWORD", set_password, NULL, true, "the repository password itself (prefer the _FILE form)" },
	{ "AWS_ACCESS_KEY_ID", NULL, NULL, false, "S3 access key" },
	{ "AWS_ACCESS_KEY_ID_FILE", passthrough_file, NULL, false, "file holding the S3 access key" },
	{ "AWS_SECRET_ACCESS_KEY", NULL, NULL, true, "S3 secret key" },
	{ "AWS_SECRET_ACCESS_KEY_FILE", passthrough_file, NULL, true, "file holding the S3 secret key" },
	{ "AWS_SESSION_TOKEN", NULL, NULL, true, "S3 session token (temporary credentials)" },
	{ "AWS_SESSION_TOKEN_FILE", passthrough_file, NULL, true, "file holding the S3 session token" },
	{ "AWS_REGION", NULL, NULL, false, "S3 region (default us-east-1)" },
	{ "AWS_DEFAULT_REGION", NULL, NULL, false, "S3 region if AWS_REGION is unset" },
	{ "COFFER_CACERT", set_cacert, NULL, false,
	  "file of extra CA certificates (PEM) for https to the S3 endpoint and the webhook, e.g. a private MinIO's CA" },
	{ "COFFER_S3_CONNECTIONS", set_s3_connections, NULL, false,
	  "parallel S3 requests, 1-128 (default 6; a backup uploads 4 packs at once unless this is set)" },
	{ "COFFER_S3_SIGN_PAYLOAD", set_s3_sign_payload, "0", false,
	  "1: sign every request body's SHA-256 over https too, so the store verifies it (TLS already protects it)" },
	{ "MARIADB_PASSWORD", NULL, NULL, true, "password for COFFER_MARIADB URLs that hold none" },
	{ "MARIADB_PASSWORD_FILE", passthrough_file, NULL, true, "file holding that password" },
	{ "COFFER_SCHEDULE", set_schedule, CF_CRON_DEFAULT, false,
	  "five-field cron expression (or @daily, @hourly...) of the backup job" },
	{ "TZ", set_tz, "UTC", false, "IANA time zone the schedules and retention days are read in" },
	{ "COFFER_RUN_MISSED", set_run_missed, "0", false,
	  "1: a run missed while the agent was down is made up at start" },
	{ "COFFER_JITTER", set_jitter, "0", false,
	  "random delay of up to this long after each tick (90, 90s, 15m, 2h; at most 1d)" },
	{ "COFFER_BACKUP_PATHS", set_paths, NULL, false,
	  "comma-separated absolute paths to back up (default: every directory under COFFER_BACKUP_ROOT)" },
	{ "COFFER_BACKUP_ROOT", set_backup_root, "/backup", false,
	  "where the volumes are mounted when COFFER_BACKUP_PATHS is unset" },
	{ "COFFER_EXCLUDES", set_excludes, NULL, false, "comma-separated shell patterns to leave out" },
	{ "COFFER_STATE_DIR", set_state_dir, "/var/lib/coffer", false,
	  "where the last job's result is kept (for the healthcheck and COFFER_RUN_MISSED)" },
	{ "COFFER_CACHE_DIR", NULL, NULL, false,
	  "local directory cache that speeds up backups, or off (default $XDG_CACHE_HOME/coffer or "
	  "$HOME/.cache/coffer; /var/lib/coffer/cache in the image, inside the state volume)" },
	{ "COFFER_MARIADB", set_mariadb, NULL, false,
	  "whitespace-separated mariadb://USER@HOST[:PORT][/DB1,DB2] URLs to dump into each snapshot" },
	{ "COFFER_MARIADB_LOCK", set_mariadb_lock, "0", false,
	  "1: FLUSH TABLES WITH READ LOCK for the moment the dump's transaction starts (for MyISAM tables)" },
	{ "COFFER_SQLITE", set_sqlite, NULL, false, "comma-separated SQLite database files to copy consistently" },
	{ "COFFER_STDIN_COMMANDS", set_stdin_commands, NULL, false,
	  "one FILENAME=COMMAND a line: COMMAND's stdout is stored as FILENAME (e.g. postgres/app.sql=pg_dump app)" },
	{ "COFFER_HOST", set_host, NULL, false, "host name recorded in snapshots (default: the hostname unless it is a container id)" },
	{ "COFFER_TAGS", set_tags, NULL, false, "comma-separated tags added to every snapshot" },
	{ "COFFER_KEEP_LAST", set_keep_last, NULL, false, "retention: keep the N newest snapshots" },
	{ "COFFER_KEEP_HOURLY", set_keep_hourly, NULL, false, "retention: keep the newest of each of N hours" },
	{ "COFFER_KEEP_DAILY", set_keep_daily, NULL, false, "retention: keep the newest of each of N days" },
	{ "COFFER_KEEP_WEEKLY", set_keep_weekly, NULL, false, "retention: keep the newest of each of N weeks" },
	{ "COFFER_KEEP_MONTHLY", set_keep_monthly, NULL, false, "retention: keep the newest of each of N months" },
	{ "COFFER_KEEP_YEARLY", set_keep_yearly, NULL, false, "retention: keep the newest of each of N years" },
	{ "COFFER_KEEP_WITHIN", set_keep_within, NULL, false, "retention: keep everything newer than this (1y2m3d4h)" },
	{ "COFFER_PRUNE_SCHEDULE", set_prune_schedule, "4 6 * * 0", false,
	  "cron expression for pruning unused data, or off (default Sundays 06:04)" },
	{ "COFFER_CHECK_SCHEDULE", set_check_schedule, "off", false,
	  "cron expression for a repository check after the backup, or off" },
	{ "COFFER_CHECK_READ_DATA_SUBSET", set_check_subset, "5%", false,
	  "share of the packs a scheduled check reads back: n/m or N% (spreads full verification over days)" },
	{ "COFFER_PRE_COMMAND", set_pre, NULL, false, "shell command run before each job; failing fails the job" },
	{ "COFFER_POST_COMMAND", set_post, NULL, false,
	  "shell command run after each job whose pre command ran (COFFER_JOB_STATUS is set, and COFFER_SNAPSHOT_ID when a snapshot was written)" },
	{ "COFFER_DOCKER_HOST", set_docker_host, "unix:///var/run/docker.sock", false,
	  "Docker Engine API socket (unix:///PATH), or none" },
	{ "COFFER_STOP_LABEL", set_stop_label, "coffer.stop-during-backup=true", false,
	  "containers with this label are stopped during the backup and started again" },
	{ "COFFER_STOP_TIMEOUT", set_stop_timeout, "30", false, "seconds Docker waits for a container to stop" },
	{ "COFFER_JOB_WAIT", set_job_wait, "600", false,
	  "seconds a job waits while another job of this agent (same state directory) runs; then it fails with exit 11" },
	{ "COFFER_METRICS_FILE", set_metrics_file, NULL, false,
	  "Prometheus text file written after each job (node_exporter textfile collector)" },
	{ "COFFER_METRICS_LISTEN", set_metrics_listen, NULL, false, "serve the metrics on [ADDRESS]:PORT at /metrics" },
	{ "COFFER_WEBHOOK_URL", set_webhook_url, NULL, false, "URL POSTed a JSON report after each job" },
	{ "COFFER_WEBHOOK_SECRET", set_webhook_secret, NULL, true,
	  "whsec_<base64> secret signing the webhook (Standard Webhooks)" },
	{ "COFFER_WEBHOOK_SECRET_FILE", set_webhook_secret_file, NULL, true, "file holding that secret" },
	{ "COFFER_WEBHOOK_RETRIES", set_webhook_retries, "3", false, "retries of a failed webhook, with backoff (0-10)" },
	{ "COFFER_VERBOSE", set_verbose, "0", false, "1: log each step of a job" },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const char *cf_agent_config_key(size_t i, const char **description)
{
	if (i == 0) {
		if (description)
			*description = "file with KEY=VALUE lines for any key below (the environment wins)";
		return "COFFER_CONFIG_FILE";
	}
	if (i - 1 >= NKEYS)
		return NULL;
	if (description)
		*description = keys[i - 1].doc;
	return keys[i - 1].name;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

/* ------------------------------------------------------------ the file */

struct kv {
	char **k, **v;
	size_t n, kcap, vcap;
};

static void kv_free(struct kv *kv)
{
	for (size_t i = 0; i < kv->n; i++) {
		free(kv->k[i]);
		if (kv->v[i])
			explicit_bzero(kv->v[i], strlen(kv->v[i]));
		free(kv->v[i]);
	}
	free(kv->k);
	free(kv->v);
	memset(kv, 0, sizeof(*kv));
}

static const char *kv_get(const struct kv *kv, const char *k)
{
	for (size_t i = kv->n; i-- > 0;)
		if (!strcmp(kv->k[i], k))
			return kv->v[i];
	return NULL;
}

static int read_whole(const char *path, struct cf_buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cf_err_errno("COFFER_CONFIG_FILE: cannot open %s", path);
	int r = CF_OK;
	for (;;) {
		if ((r = cf_buf_grow(b, 4096)))
			break;
		ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = cf_err_errno("COFFER_CONFIG_FILE: cannot read %s", path);
			break;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
		b->data[b->len] = 0;
		if (b->len > (1u << 20)) {
			r = cf_err(CF_EINVAL, "COFFER_CONFIG_FILE: %s is larger than 1 MiB", path);
			break;
		}
	}
	close(fd);
	return r;
}

/* KEY=VALUE lines; a double- or single-quoted value may span lines. */
static int parse_file(const char *path, struct kv *kv)
{
	struct cf_buf b = CF_BUF_INIT;
	int r = read_whole(path, &b), line = 1;
	char *p = b.data ? (char *)b.data : "";

	while (!r && *p) {
		int start_line = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\r') {
			p += strcspn(p, "\n");
			if (*p)
				p++, line++;
			continue;
		}
		if (!strncmp(p, "export ", 7))
			p += 7;
		size_t klen = strcspn(p, "=\n");
		if (p[klen] != '=') {
			r = cf_err(CF_EINVAL, "%s:%d: not KEY=VALUE", path, line);
			break;
		}
		char *key = strndup(p, klen);
		if (!key) {
			r = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		for (char *e = key + strlen(key); e > key && isspace((unsigned char)e[-1]);)
			*--e = 0;
		if (!find_key(key)) {
			r = cf_err(CF_EINVAL, "%s:%d: unknown key %s", path, line, key);
			free(key);
			break;
		}
		p += klen + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		char *val;
		if (*p == '"' || *p == '\'') {
			char q = *p++, *end = strchr(p, q);
			if (!end) {
				r = cf_err(CF_EINVAL, "%s:%d: %s: unterminated quote", path, start_line, key);
				free(key);
				break;
			}
			val = strndup(p, (size_t)(end - p));
			for (char *s = p; s < end; s++)
				line += *s == '\n';
			p = end + 1;
			p += strcspn(p, "\n");
		} else {
			size_t vlen = strcspn(p, "\n");
			while (vlen && isspace((unsigned char)p[vlen - 1]))
				vlen--;
			val = strndup(p, vlen);
			p += strcspn(p, "\n");
		}
		if (*p)
			p++, line++;
		if (!val || CF_GROW(kv->k, kv->n + 1, kv->kcap) || CF_GROW(kv->v, kv->n + 1, kv->vcap)) {
			free(key);
			free(val);
			r = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		kv->k[kv->n] = key;
		kv->v[kv->n++] = val;
	}
	if (b.data)
		explicit_bzero(b.data, b.cap);
	cf_buf_release(&b);
	return r;
}

/* ------------------------------------------------------------ loading */

static const char *env_get(void *ctx, const char *key)
{
	(void)ctx;
	return getenv(key);
}

static void unexport(struct cf_agent_config *c)
{
	for (size_t i = 0; i < c->nexported; i++)
		unsetenv(c->exported[i]);
	free_list(c->exported, c->nexported);
	c->exported = NULL;
	c->nexported = 0;
}

/* An unknown COFFER_* variable in the environment is warned about (the
 * environment is shared with other programs), or refused when the command
 * line is only being validated (COFFER_PARSE_ONLY=1: a typo must show). */
static int check_unknown_env(void)
{
	bool strict = parse_only();
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "COFFER_", 7))
			continue;
		size_t n = strcspn(*e, "=");
		char name[128];
		if (n >= sizeof(name))
			continue;
		memcpy(name, *e, n);
		name[n] = 0;
		/* the CLI's own and the test suite's variables */
		static const char *const others[] = {
			"COFFER_CONFIG_FILE", "COFFER_S3_LIST_MAX_KEYS", "COFFER_SOURCE_DIR", "COFFER_BUILD_DIR",
			"COFFER_TESTDATA", "COFFER_JOB_STATUS", "COFFER_PARSE_ONLY", "COFFER_FROM_PASSWORD_FILE",
			"COFFER_FAULTS",
		};
		bool other = !strncmp(name, "COFFER_TEST_", 12);
		for (size_t i = 0; i < sizeof(others) / sizeof(others[0]) && !other; i++)
			other = !strcmp(name, others[i]);
		if (other)
			continue;
		if (find_key(name))
			continue;
		if (strict)
			return cf_err(CF_EINVAL, "unknown setting %s in the environment", name);
		cf_warn("coffer agent: warning: unknown setting %s in the environment (ignored)", name);
	}
	return CF_OK;
}

/* A COFFER_SQLITE copy or a COFFER_STDIN_COMMANDS file that the job's walk
 * would drop (COFFER_EXCLUDES matching it, a command's file inside a walked
 * volume) is refused at start, not lost at every job (sources/sources.h). */
static int check_dumps(const struct cf_agent_config *c)
{
	const char *const *ex = (const char *const *)c->excludes;
	char label[4200];
	int r = CF_OK;
	for (size_t i = 0; i < c->nsqlite && !r; i++) {
		snprintf(label, sizeof(label), "the COFFER_SQLITE database %s", c->sqlite[i]);
		r = cf_sources_check_dump(label, c->sqlite[i], (const char *const *)c->paths, c->npaths,
					  ex, c->nexcludes);
	}
	for (size_t i = 0; i < c->nstdin_cmds && !r; i++) {
		const char *f = c->stdin_cmds[i].path + strspn(c->stdin_cmds[i].path, "/");
		snprintf(label, sizeof(label), "the COFFER_STDIN_COMMANDS file %s", c->stdin_cmds[i].path);
		if (!*f)
			continue;
		if (c->npaths) {
			r = cf_sources_check_dump(label, f, (const char *const *)c->paths, c->npaths, ex,
						  c->nexcludes);
			continue;
		}
		/* no COFFER_BACKUP_PATHS: every directory under the root is walked,
		 * so a file two levels below it lies inside one of them */
		char vol[4200];
		const char *root = c->backup_root ? c->backup_root + strspn(c->backup_root, "/") : "";
		size_t rl = strlen(root);
		while (rl && root[rl - 1] == '/')
			rl--;
		const char *walked[1] = { vol };
		size_t nw = 0;
		if (rl && !strncmp(f, root, rl) && f[rl] == '/' && strchr(f + rl + 1, '/')) {
			snprintf(vol, sizeof(vol), "/%.*s/%.*s", (int)rl, root,
				 (int)strcspn(f + rl + 1, "/"), f + rl + 1);
			nw = 1;
		}
		r = cf_sources_check_dump(label, f, walked, nw, ex, c->nexcludes);
	}
	return r;
}

static int load(struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx, bool schedule_only)
{
	struct kv kv = { 0 };
	const char *file;
	size_t exportcap = 0;
	int r = CF_OK;

	/* A reload drops what the previous load exported, so that the
	 * environment lookup below sees only what the process was started with. */
	unexport(c);
	cf_agent_config_release(c);
	if (!get) {
		get = env_get;
		if ((r = check_unknown_env()))
			goto out;
	}
	c->log_level = 1;
	c->webhook_retries = 3;
	file = get(ctx, "COFFER_CONFIG_FILE");
	if (file && *file) {
		if ((r = dup_str(&c->config_file, file)) || (r = parse_file(file, &kv)))
			goto out;
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const char *v = get(ctx, k->name);
		bool from_file = false;
		if (!v && (v = kv_get(&kv, k->name)))
			from_file = true;
		if (!v)
			v = k->def;
		if (!v)
			continue;
		if (from_file && (!k->set || k->set == passthrough_file)) {
			/* read by s3.c / dburl.c with getenv() */
			if ((r = push(&c->exported, &c->nexported, &exportcap, k->name, strlen(k->name))))
				goto out;
			if (setenv(k->name, v, 1) != 0) {
				r = cf_err_errno("cannot set %s", k->name);
				goto out;
			}
		}
		if (k->set && (r = k->set(c, k->name, v)))
			goto out;
		if (k->set == set_docker_host && v != k->def)
			c->docker_explicit = true;
	}
	if (schedule_only)
		goto out;
	if (!c->repository) {
		r = cf_err(CF_EINVAL, "COFFER_REPOSITORY is not set: where should the snapshots go?");
		goto out;
	}
	if (c->password_file && c->password) {
		cf_agent_secret_free(c->password); /* the file wins, as for the CLI */
		c->password = NULL;
	}
	if (!c->password_file && !c->password) {
		r = cf_err(CF_EINVAL, "COFFER_PASSWORD_FILE is not set (nor COFFER_PASSWORD): "
				      "the agent cannot open the repository");
		goto out;
	}
	if (c->webhook_secret && !c->webhook_url) {
		r = cf_err(CF_EINVAL, "COFFER_WEBHOOK_SECRET is set but COFFER_WEBHOOK_URL is not");
		goto out;
	}
	if ((r = check_dumps(c)))
		goto out;
out:
	kv_free(&kv);
	if (r) {
		char **ex = c->exported;
		size_t nex = c->nexported;
		c->exported = NULL;
		cf_agent_config_release(c);
		c->exported = ex;   /* so the next load still unsets them */
		c->nexported = nex;
	}
	return r;
}

int cf_agent_config_load(struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx)
{
	return load(c, get, ctx, false);
}

int cf_agent_config_load_schedule(struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx)
{
	return load(c, get, ctx, true);
}

void cf_agent_secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void cf_agent_config_done(struct cf_agent_config *c)
{
	cf_agent_config_release(c);
	unexport(c);
}

void cf_agent_config_release(struct cf_agent_config *c)
{
	char **ex = c->exported;
	size_t nex = c->nexported;
	free(c->config_file);
	free(c->repository);
	free(c->cacert);
	free(c->password_file);
	cf_agent_secret_free(c->password);
	free(c->schedule);
	free(c->tz);
	free_list(c->paths, c->npaths);
	free(c->backup_root);
	free_list(c->excludes, c->nexcludes);
	free(c->state_dir);
	free_list(c->mariadb, c->nmariadb);
	free_list(c->sqlite, c->nsqlite);
	for (size_t i = 0; i < c->nstdin_cmds; i++) {
		free(c->stdin_cmds[i].path);
		free(c->stdin_cmds[i].command);
	}
	free(c->stdin_cmds);
	free(c->host);
	free_list(c->tags, c->ntags);
	free(c->keep_within);
	free(c->prune_schedule);
	free(c->check_schedule);
	free(c->check_subset);
	free(c->pre_command);
	free(c->post_command);
	free(c->docker_socket);
	free(c->stop_label);
	free(c->metrics_file);
	free(c->metrics_listen);
	free(c->webhook_url);
	cf_agent_secret_free(c->webhook_secret);
	memset(c, 0, sizeof(*c));
	/* exported names survive a release: only the next load unsets them */
	c->exported = ex;
	c->nexported = nex;
}

void cf_agent_config_print(const struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx,
			   FILE *f)
{
	(void)c;
	if (!get)
		get = env_get;
	const char *file = get(ctx, "COFFER_CONFIG_FILE");
	struct kv kv = { 0 };
	if (file && *file && parse_file(file, &kv) != CF_OK)
		kv_free(&kv);
	fprintf(f, "COFFER_CONFIG_FILE=%s\n", file && *file ? file : "(unset)");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const char *v = get(ctx, k->name), *src = "environment";
		if (!v && (v = kv_get(&kv, k->name)))
			src = "file";
		if (!v && (v = k->def))
			src = "default";
		if (!v)
			fprintf(f, "%s=(unset)\n", k->name);
		else if (k->secret && strstr(k->name, "_FILE") == NULL)
			fprintf(f, "%s=(set) # %s\n", k->name, src);
		else {
			/* a URL's password or token is shown as *** */
			char shown[4096];
			cf_redact_url(v, shown, sizeof(shown));
			fprintf(f, "%s=%s # %s\n", k->name, shown, src);
		}
	}
	kv_free(&kv);
}

int cf_agent_read_secret(const char *path, const char *what, char **out)
{
	char buf[4096];
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cf_err_errno("%s: cannot open %s", what, path);
	ssize_t n = cf_read_full(fd, buf, sizeof(buf));
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return cf_err_errno("%s: cannot read %s", what, path);
	}
	if (n == (ssize_t)sizeof(buf))
		return cf_err(CF_EINVAL, "%s: %s is too large for a secret", what, path);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0)
		return cf_err(CF_EINVAL, "%s: %s is empty", what, path);
	*out = strndup(buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
	return *out ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}
