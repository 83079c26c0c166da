/*
 * config_keys.c - what each of the agent's keys means: the table (name,
 * setter, default, whether it is a secret, the line `coffer agent --help`
 * shows) and the setters, which check a value and store it in struct
 * cf_agent_config.  A setter's message names the key and the value (never
 * a secret's value).  Where values come from is config.c.
 */
#include "agent/config.h"
#include "agent/config_int.h"
#include "agent/docker.h"
#include "agent/metrics.h"
#include "agent/webhook.h"
#include "sources/dburl.h"
#include "sources/postgres.h"
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

/* ------------------------------------------------------------- helpers */

int agent_dup_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}

/* Append a copy of s[0..len) to the NULL-terminated list *arr of *n.  *cap
 * is the room known in *arr (0 when unknown: CF_GROW then reallocates). */
int agent_push(char ***arr, size_t *n, size_t *cap, const char *s, size_t len)
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

void agent_free_list(char **a, size_t n)
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
			int r = agent_push(arr, n, &cap, s, (size_t)(e - s));
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
bool agent_parse_only(void)
{
	const char *po = getenv("COFFER_PARSE_ONLY");
	return po && !strcmp(po, "1");
}

static int readable_file(const char *key, const char *path)
{
	struct stat st;
	if (path[0] != '/')
		return cf_err(CF_EINVAL, "%s: \"%s\" is not an absolute path", key, path);
	if (agent_parse_only())
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
	return agent_dup_str(&c->repository, v);
}

static int set_password_file(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = readable_file(key, v);
	return r ? r : agent_dup_str(&c->password_file, v);
}

static int set_cacert(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = readable_file(key, v);
	return r ? r : agent_dup_str(&c->cacert, v);
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
	return agent_dup_str(&c->password, v);
}

static int set_cron(const char *key, const char *v, struct cf_cron *cron, char **dst)
{
	int r = cf_cron_parse(cron, v);
	if (r)
		return cf_err_prefix(r, "%s", key);
	return agent_dup_str(dst, v);
}

static int set_schedule(struct cf_agent_config *c, const char *key, const char *v)
{
	return set_cron(key, v, &c->cron, &c->schedule);
}

static int set_prune_schedule(struct cf_agent_config *c, const char *key, const char *v)
{
	if (!strcmp(v, "off"))
		return agent_dup_str(&c->prune_schedule, v);
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
	return agent_dup_str(&c->check_subset, v);
}

static int set_check_schedule(struct cf_agent_config *c, const char *key, const char *v)
{
	if (!strcmp(v, "off"))
		return agent_dup_str(&c->check_schedule, v);
	return set_cron(key, v, &c->check_cron, &c->check_schedule);
}

static int set_drill_schedule(struct cf_agent_config *c, const char *key, const char *v)
{
	if (!strcmp(v, "off"))
		return agent_dup_str(&c->drill_schedule, v);
	return set_cron(key, v, &c->drill_cron, &c->drill_schedule);
}

static int set_drill_dir(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = abs_path(key, v);
	return r ? r : agent_dup_str(&c->drill_dir, v);
}

static int set_tz(struct cf_agent_config *c, const char *key, const char *v)
{
	if (strcmp(v, "UTC") && strcmp(v, "Etc/UTC")) {
		int r = cf_tz_check(v);
		if (r)
			return cf_err_prefix(r, "%s", key);
	}
	return agent_dup_str(&c->tz, v);
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
		if (!agent_parse_only() && lstat(c->paths[i], &st) != 0)
			r = cf_err_errno("%s: cannot back up %s", key, c->paths[i]);
	}
	return r;
}

static int set_backup_root(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = abs_path(key, v);
	return r ? r : agent_dup_str(&c->backup_root, v);
}

static int set_excludes(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return split(v, ",", &c->excludes, &c->nexcludes);
}

static int set_state_dir(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = abs_path(key, v);
	return r ? r : agent_dup_str(&c->state_dir, v);
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

static int set_postgres(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = split(v, " \t\r\n", &c->postgres, &c->npostgres);
	for (size_t i = 0; !r && i < c->npostgres; i++)
		if ((r = cf_pgurl_check(c->postgres[i])))
			r = cf_err_prefix(r, "%s", key);
	return r;
}

static int set_mariadb_lock(struct cf_agent_config *c, const char *key, const char *v)
{
	return cf_parse_bool(key, v, &c->mariadb_lock);
}

static int set_mariadb_users(struct cf_agent_config *c, const char *key, const char *v)
{
	return cf_parse_bool(key, v, &c->mariadb_users);
}

static int set_sqlite(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = split(v, ",", &c->sqlite, &c->nsqlite);
	for (size_t i = 0; !r && i < c->nsqlite; i++)
		r = abs_path(key, c->sqlite[i]);
	return r;
}

static int set_sqlite_replicate(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = split(v, ",", &c->sqlite_replicate, &c->nsqlite_replicate);
	for (size_t i = 0; !r && i < c->nsqlite_replicate; i++)
		r = abs_path(key, c->sqlite_replicate[i]);
	return r;
}

static int set_sqlite_interval(struct cf_agent_config *c, const char *key, const char *v)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (end != v && *end == 's' && !end[1])
		end++;
	if (errno || end == v || *end || !(d >= 0.01 && d <= 3600))
		return cf_err(CF_EINVAL, "%s: \"%s\" is not a number of seconds from 0.01 to 3600", key, v);
	c->sqlite_interval = d;
	return CF_OK;
}

static int set_sqlite_max_lag(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = parse_seconds(key, v, 86400 * 30, &c->sqlite_max_lag);
	if (!r && !c->sqlite_max_lag)
		r = cf_err(CF_EINVAL, "%s: \"%s\": give at least 1 s", key, v);
	return r;
}

static int set_sqlite_retention(struct cf_agent_config *c, const char *key, const char *v)
{
	memset(&c->sqlite_retention_d, 0, sizeof(c->sqlite_retention_d));
	if (strcmp(v, "snapshots")) {
		int r = cf_duration_parse(v, &c->sqlite_retention_d);
		if (r || cf_duration_zero(&c->sqlite_retention_d))
			return cf_err(CF_EINVAL, "%s: \"%s\" is neither \"snapshots\" nor a duration like 7d or 1m15d%s%s",
				      key, v, r ? ": " : "", r ? cf_errmsg(r) : "");
	}
	return agent_dup_str(&c->sqlite_retention, v);
}

static int set_sqlite_queue_bytes(struct cf_agent_config *c, const char *key, const char *v)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*v))
		goto bad;
	unsigned long long x = strtoull(v, &end, 10), mult = 1;
	if (*end && !end[1]) {
		switch (*end) {
		case 'K': mult = 1ull << 10; break;
		case 'M': mult = 1ull << 20; break;
		case 'G': mult = 1ull << 30; break;
		default: goto bad;
		}
		end++;
	}
	if (errno || *end || !x || x > (1ull << 40) / mult)
		goto bad;
	c->sqlite_queue_bytes = x * mult;
	return CF_OK;
bad:
	return cf_err(CF_EINVAL, "%s: \"%s\" is not a size in bytes (a number, optionally with K, M or G; at most 1 TiB)",
		      key, v);
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
	agent_free_list(lines, n);
	return r;
}

static int set_host(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return agent_dup_str(&c->host, v);
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
	return agent_dup_str(&c->keep_within, v);
}

static int set_pre(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return agent_dup_str(&c->pre_command, v);
}

static int set_post(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)key;
	return agent_dup_str(&c->post_command, v);
}

int agent_set_docker_host(struct cf_agent_config *c, const char *key, const char *v)
{
	free(c->docker_host);
	c->docker_host = NULL;
	return cf_docker_parse_host(key, v, &c->docker_host);
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
	int r = cf_docker_stop_alias(v, c->stop_alias, sizeof(c->stop_alias));
	return r ? cf_err_prefix(r, "%s", key) : agent_dup_str(&c->stop_label, v);
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
	if (!agent_parse_only() && (stat(*dir ? dir : "/", &st) != 0 || !S_ISDIR(st.st_mode)))
		r = cf_err(CF_EINVAL, "%s: directory %s does not exist", key, *dir ? dir : "/");
	free(dir);
	return r ? r : agent_dup_str(&c->metrics_file, v);
}

static int set_metrics_listen(struct cf_agent_config *c, const char *key, const char *v)
{
	const char *colon = strrchr(v, ':');
	unsigned long port = 0;
	if (!colon || parse_uint(key, colon + 1, 65535, &port) || port == 0)
		return cf_err(CF_EINVAL, "%s: \"%s\" is not [ADDRESS]:PORT with a port from 1 to 65535", key, v);
	/* the address is checked here, not first when the agent starts */
	struct sockaddr_in6 sa;
	bool v6;
	int r = cf_metrics_parse_listen(v, &sa, &v6);
	if (r)
		return cf_err_prefix(r, "%s", key);
	return agent_dup_str(&c->metrics_listen, v);
}

static int set_webhook_url(struct cf_agent_config *c, const char *key, const char *v)
{
	if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
		return cf_err(CF_EINVAL, "%s: \"%s\" is not an http:// or https:// URL", key, v);
	return agent_dup_str(&c->webhook_url, v);
}

static int set_webhook_secret(struct cf_agent_config *c, const char *key, const char *v)
{
	int r = cf_webhook_check_secret(key, v);
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
	if (!r && agent_parse_only())
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
	int r = parse_uint(key, v, 100, &x);
	c->webhook_retries = (unsigned)x;
	return r;
}

static int set_webhook_retry_for(struct cf_agent_config *c, const char *key, const char *v)
{
	return parse_seconds(key, v, 86400, &c->webhook_retry_for);
}

static int set_webhook_backoff(struct cf_agent_config *c, const char *key, const char *v)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (!isdigit((unsigned char)*v) || errno || *end || !(x >= 0.01 && x <= 3600))
		return cf_err(CF_EINVAL, "%s: \"%s\" is not a number of seconds from 0.01 to 3600", key, v);
	c->webhook_backoff = x;
	return CF_OK;
}

/* COFFER_NOTIFY_URLS: comma- or space-separated, each of a kind notify.h knows */
static int set_notify_urls(struct cf_agent_config *c, const char *key, const char *v)
{
	char **items = NULL;
	size_t n = 0;
	int r = split(v, ", \t\n", &items, &n);
	for (size_t i = 0; i < c->nnotify; i++)
		cf_agent_secret_free(c->notify[i].url);
	free(c->notify);
	c->notify = NULL;
	c->nnotify = 0;
	if (!r && n && !(c->notify = calloc(n, sizeof(*c->notify))))
		r = cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; !r && i < n; i++)
		if (!(r = cf_notify_parse(key, items[i], &c->notify[c->nnotify])))
			c->nnotify++;
	for (size_t i = 0; i < n; i++)
		cf_agent_secret_free(items[i]);
	free(items);
	return r;
}

static int set_notify_urls_file(struct cf_agent_config *c, const char *key, const char *v)
{
	char *s = NULL;
	int r = readable_file(key, v);
	if (!r && agent_parse_only())
		return CF_OK;
	if (!r)
		r = cf_agent_read_secret(v, key, &s);
	if (!r)
		r = set_notify_urls(c, key, s);
	cf_agent_secret_free(s);
	return r;
}

static int set_notify_level(struct cf_agent_config *c, const char *key, const char *v)
{
	if (!strcmp(v, "error"))
		c->notify_level = CF_NOTIFY_LEVEL_ERROR;
	else if (!strcmp(v, "info"))
		c->notify_level = CF_NOTIFY_LEVEL_INFO;
	else
		return cf_err(CF_EINVAL, "%s: \"%s\" is not error or info", key, v);
	return CF_OK;
}

int agent_passthrough_file(struct cf_agent_config *c, const char *key, const char *v)
{
	(void)c;
	return readable_file(key, v);
}

/* ------------------------------------------------ copy targets' keys */

static int copy_set_repository(struct cf_agent_copy *t, const char *key, const char *v)
{
	struct cf_agent_config tmp = CF_AGENT_CONFIG_INIT;
	int r = set_repository(&tmp, key, v); /* the same locations as COFFER_REPOSITORY */
	if (!r) {
		free(t->repository);
		t->repository = tmp.repository;
	}
	return r;
}

static int copy_set_password_file(struct cf_agent_copy *t, const char *key, const char *v)
{
	int r = readable_file(key, v);
	return r ? r : agent_dup_str(&t->password_file, v);
}

static int copy_set_secret(char **dst, const char *v)
{
	cf_agent_secret_free(*dst);
	*dst = strdup(v);
	return *dst ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}

static int copy_set_password(struct cf_agent_copy *t, const char *key, const char *v)
{
	(void)key;
	return copy_set_secret(&t->password, v);
}

static int copy_set_access_key(struct cf_agent_copy *t, const char *key, const char *v)
{
	(void)key;
	return agent_dup_str(&t->access_key, v);
}

static int copy_set_access_key_file(struct cf_agent_copy *t, const char *key, const char *v)
{
	int r = readable_file(key, v);
	return r ? r : agent_dup_str(&t->access_key_file, v);
}

static int copy_set_secret_key(struct cf_agent_copy *t, const char *key, const char *v)
{
	(void)key;
	return copy_set_secret(&t->secret_key, v);
}

static int copy_set_secret_key_file(struct cf_agent_copy *t, const char *key, const char *v)
{
	int r = readable_file(key, v);
	return r ? r : agent_dup_str(&t->secret_key_file, v);
}

static int copy_set_session_token(struct cf_agent_copy *t, const char *key, const char *v)
{
	(void)key;
	return copy_set_secret(&t->session_token, v);
}

static int copy_set_session_token_file(struct cf_agent_copy *t, const char *key, const char *v)
{
	int r = readable_file(key, v);
	return r ? r : agent_dup_str(&t->session_token_file, v);
}

static int copy_set_region(struct cf_agent_copy *t, const char *key, const char *v)
{
	(void)key;
	return agent_dup_str(&t->region, v);
}

static int copy_set_from(struct cf_agent_copy *t, const char *key, const char *v)
{
	if (!*v || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != strlen(v))
		return cf_err(CF_EINVAL, "%s: \"%s\" is not the name of a copy target (letters, digits, _)", key, v);
	return agent_dup_str(&t->from_name, v);
}

static int copy_set_schedule(struct cf_agent_copy *t, const char *key, const char *v)
{
	if (!strcmp(v, "after-backup")) {
		free(t->schedule);
		t->schedule = NULL;
		return CF_OK;
	}
	return set_cron(key, v, &t->cron, &t->schedule);
}

#define COPY_KEEP_SETTER(field) \
	static int copy_set_keep_##field(struct cf_agent_copy *t, const char *key, const char *v) \
	{ return set_keep(key, v, &t->keep.field); }
COPY_KEEP_SETTER(last)
COPY_KEEP_SETTER(hourly)
COPY_KEEP_SETTER(daily)
COPY_KEEP_SETTER(weekly)
COPY_KEEP_SETTER(monthly)
COPY_KEEP_SETTER(yearly)

static int copy_set_keep_within(struct cf_agent_copy *t, const char *key, const char *v)
{
	int r = cf_duration_parse(v, &t->keep.within);
	if (r)
		return cf_err_prefix(r, "%s", key);
	return agent_dup_str(&t->keep_within, v);
}

/* Longer suffixes first: COFFER_COPY_TO_X_PASSWORD_FILE is X's
 * PASSWORD_FILE, not the PASSWORD of a target "X_PASSWORD"... (the longest
 * suffix that matches wins). */
const struct agent_copy_key agent_copy_keys[] = {
	{ "REPOSITORY", copy_set_repository, false,
	  "the copy target's repository (the same forms as COFFER_REPOSITORY); required for each target" },
	{ "PASSWORD_FILE", copy_set_password_file, true,
	  "file holding the target repository's password; this or _PASSWORD is required" },
	{ "PASSWORD", copy_set_password, true, "the target repository's password itself (prefer the _FILE form)" },
	{ "AWS_ACCESS_KEY_ID", copy_set_access_key, false,
	  "S3 access key for the target (default: the main AWS_ACCESS_KEY_ID[_FILE] and its secret)" },
	{ "AWS_ACCESS_KEY_ID_FILE", copy_set_access_key_file, false, "file holding the target's S3 access key" },
	{ "AWS_SECRET_ACCESS_KEY", copy_set_secret_key, true, "the target's S3 secret key" },
	{ "AWS_SECRET_ACCESS_KEY_FILE", copy_set_secret_key_file, true, "file holding the target's S3 secret key" },
	{ "AWS_SESSION_TOKEN", copy_set_session_token, true, "the target's S3 session token" },
	{ "AWS_SESSION_TOKEN_FILE", copy_set_session_token_file, true, "file holding the target's S3 session token" },
	{ "AWS_REGION", copy_set_region, false, "the target's S3 region (default: as the main repository's)" },
	{ "FROM", copy_set_from, false,
	  "copy from the repository of the target of this name instead of the main one (daily -> monthly)" },
	{ "SCHEDULE", copy_set_schedule, false,
	  "cron expression of the copy, or after-backup (the default: after each backup that wrote a snapshot)" },
	{ "KEEP_LAST", copy_set_keep_last, false, "the target's retention: keep the N newest snapshots" },
	{ "KEEP_HOURLY", copy_set_keep_hourly, false, "the target's retention: the newest of each of N hours" },
	{ "KEEP_DAILY", copy_set_keep_daily, false, "the target's retention: the newest of each of N days" },
	{ "KEEP_WEEKLY", copy_set_keep_weekly, false, "the target's retention: the newest of each of N weeks" },
	{ "KEEP_MONTHLY", copy_set_keep_monthly, false, "the target's retention: the newest of each of N months" },
	{ "KEEP_YEARLY", copy_set_keep_yearly, false, "the target's retention: the newest of each of N years" },
	{ "KEEP_WITHIN", copy_set_keep_within, false,
	  "the target's retention: keep everything newer than this (1y2m3d4h)" },
};

const size_t agent_ncopy_keys = sizeof(agent_copy_keys) / sizeof(agent_copy_keys[0]);

#define COPY_PREFIX "COFFER_COPY_TO_"

bool agent_is_copy_key(const char *key)
{
	return !strncmp(key, COPY_PREFIX, strlen(COPY_PREFIX));
}

const struct agent_copy_key *agent_copy_find(const char *key, char *name, size_t n)
{
	const struct agent_copy_key *best = NULL;
	size_t kl = strlen(key), pl = strlen(COPY_PREFIX);
	if (!agent_is_copy_key(key))
		return NULL;
	for (size_t i = 0; i < agent_ncopy_keys; i++) {
		size_t sl = strlen(agent_copy_keys[i].suffix);
		/* at least one character of name and the '_' before the suffix */
		if (kl < pl + 2 + sl || key[kl - sl - 1] != '_' || strcmp(key + kl - sl, agent_copy_keys[i].suffix))
			continue;
		if (!best || sl > strlen(best->suffix))
			best = &agent_copy_keys[i];
	}
	if (!best)
		return NULL;
	size_t nl = kl - pl - strlen(best->suffix) - 1;
	const char *nm = key + pl;
	if (strspn(nm, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") < nl || nm[0] == '_' || nm[nl - 1] == '_' ||
	    nl >= n)
		return NULL;
	memcpy(name, nm, nl);
	name[nl] = 0;
	return best;
}

/* ----------------------------------------------------------------- table */

const struct agent_key agent_keys[] = {
	{ "COFFER_REPOSITORY", set_repository, NULL, false,
	  "repository location: /dir, local:/dir, s3:https://HOST/BUCKET[/PREFIX] or s3://BUCKET[/PREFIX] (required)" },
	{ "COFFER_PASSWORD_FILE", set_password_file, NULL, true,
	  "file holding the repository password (a Docker secret); this or COFFER_PASSWORD is required" },
	{ "COFFER_PASSWORD", set_password, NULL, true, "the repository password itself (prefer the _FILE form)" },
	{ "AWS_ACCESS_KEY_ID", NULL, NULL, false, "S3 access key" },
	{ "AWS_ACCESS_KEY_ID_FILE", agent_passthrough_file, NULL, false, "file holding the S3 access key" },
	{ "AWS_SECRET_ACCESS_KEY", NULL, NULL, true, "S3 secret key" },
	{ "AWS_SECRET_ACCESS_KEY_FILE", agent_passthrough_file, NULL, true, "file holding the S3 secret key" },
	{ "AWS_SESSION_TOKEN", NULL, NULL, true, "S3 session token (temporary credentials)" },
	{ "AWS_SESSION_TOKEN_FILE", agent_passthrough_file, NULL, true, "file holding the S3 session token" },
	{ "AWS_REGION", NULL, NULL, false, "S3 region (default us-east-1)" },
	{ "AWS_DEFAULT_REGION", NULL, NULL, false, "S3 region if AWS_REGION is unset" },
	{ "COFFER_CACERT", set_cacert, NULL, false,
	  "file of extra CA certificates (PEM) for https to the S3 endpoint and the webhook, e.g. a private MinIO's CA" },
	{ "COFFER_S3_CONNECTIONS", set_s3_connections, NULL, false,
	  "parallel S3 requests, 1-128 (default 6; a backup uploads 4 packs at once unless this is set)" },
	{ "COFFER_S3_SIGN_PAYLOAD", set_s3_sign_payload, "0", false,
	  "1: sign every request body's SHA-256 over https too, so the store verifies it (TLS already protects it)" },
	{ "MARIADB_PASSWORD", NULL, NULL, true, "password for COFFER_MARIADB URLs that hold none" },
	{ "MARIADB_PASSWORD_FILE", agent_passthrough_file, NULL, true, "file holding that password" },
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
	{ "COFFER_MARIADB_USERS", set_mariadb_users, "0", false,
	  "1: each dump ends with the accounts, roles and grants its objects need (as --mariadb-users)" },
	{ "COFFER_POSTGRES", set_postgres, NULL, false,
	  "whitespace-separated postgres://USER@HOST[:PORT][/DB1,DB2][?sslmode=...] URLs: each database is "
	  "pg_dump'ed into each snapshot as postgres/<db>.sql" },
	{ "PGPASSWORD", NULL, NULL, true, "password for COFFER_POSTGRES URLs that hold none (read by libpq, pg_dump)" },
	{ "PGPASSFILE", NULL, NULL, false, "libpq's password file for COFFER_POSTGRES (default ~/.pgpass)" },
	{ "COFFER_SQLITE", set_sqlite, NULL, false, "comma-separated SQLite database files to copy consistently" },
	{ "COFFER_SQLITE_REPLICATE", set_sqlite_replicate, NULL, false,
	  "comma-separated SQLite database files the agent replicates continuously (WAL frames every "
	  "COFFER_SQLITE_SYNC_INTERVAL; restore to any second with restore --sqlite DB --time T)" },
	{ "COFFER_SQLITE_SYNC_INTERVAL", set_sqlite_interval, "1", false,
	  "seconds between uploads of the replicated databases' new transactions (0.01-3600)" },
	{ "COFFER_SQLITE_MAX_LAG", set_sqlite_max_lag, "60", false,
	  "the healthcheck is unhealthy when a replicated database's oldest unstored transaction is older than this" },
	{ "COFFER_SQLITE_RETENTION", set_sqlite_retention, "snapshots", false,
	  "how long replicated history is kept: snapshots (back to the oldest snapshot retention keeps) or a duration (7d)" },
	{ "COFFER_SQLITE_QUEUE_BYTES", set_sqlite_queue_bytes, "64M", false,
	  "memory for transactions read while the store fails; past it the replica has a gap and restarts with a new base" },
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
	{ "COFFER_DRILL_SCHEDULE", set_drill_schedule, "off", false,
	  "cron expression for the restore drill (the latest snapshot restored into a scratch directory, verified, "
	  "its MariaDB dumps loaded into scratch databases, then removed), or off" },
	{ "COFFER_DRILL_DIR", set_drill_dir, NULL, false,
	  "scratch directory of the restore drill, emptied before and removed after (default COFFER_STATE_DIR/drill)" },
	{ "COFFER_PRE_COMMAND", set_pre, NULL, false, "shell command run before each job; failing fails the job" },
	{ "COFFER_POST_COMMAND", set_post, NULL, false,
	  "shell command run after each job whose pre command ran (COFFER_JOB_STATUS is set, and COFFER_SNAPSHOT_ID when a snapshot was written)" },
	{ "COFFER_DOCKER_HOST", agent_set_docker_host, "unix:///var/run/docker.sock", false,
	  "Docker Engine API: unix:///PATH, tcp://HOST:PORT or http://HOST:PORT (an engine's or a docker-socket-proxy's "
	  "plain HTTP; no TLS), or none; unset: DOCKER_HOST, else the default" },
	{ "COFFER_STOP_LABEL", set_stop_label, "coffer.stop-during-backup=true", false,
	  "containers with this label (or offen's docker-volume-backup.stop-during-backup with the same value) are "
	  "stopped during the backup and started again" },
	{ "COFFER_STOP_TIMEOUT", set_stop_timeout, "30", false, "seconds Docker waits for a container to stop" },
	{ "COFFER_JOB_WAIT", set_job_wait, "600", false,
	  "seconds a job waits while another job of this agent (same state directory) runs; then it fails with exit 11" },
	{ "COFFER_METRICS_FILE", set_metrics_file, NULL, false,
	  "Prometheus text file written after each job (node_exporter textfile collector)" },
	{ "COFFER_METRICS_LISTEN", set_metrics_listen, NULL, false, "serve the metrics on [ADDRESS]:PORT at /metrics" },
	{ "COFFER_WEBHOOK_URL", set_webhook_url, NULL, false, "URL POSTed a JSON report after each job" },
	{ "COFFER_WEBHOOK_SECRET", set_webhook_secret, NULL, true,
	  "whsec_<base64> secret signing the webhook (Standard Webhooks): 24 to 64 random bytes; several separated by "
	  "spaces sign each message once each (key rotation)" },
	{ "COFFER_WEBHOOK_SECRET_FILE", set_webhook_secret_file, NULL, true, "file holding that secret" },
	{ "COFFER_WEBHOOK_RETRIES", set_webhook_retries, "10", false,
	  "most retries of a failed webhook (0-100), waiting COFFER_WEBHOOK_BACKOFF, then twice as long each time "
	  "(at most 5 minutes), or what the receiver's Retry-After asks" },
	{ "COFFER_WEBHOOK_RETRY_FOR", set_webhook_retry_for, "15m", false,
	  "no webhook retry starts later than this after the first attempt (90s, 15m, 2h; at most 1d)" },
	{ "COFFER_WEBHOOK_BACKOFF", set_webhook_backoff, "5", false,
	  "seconds before the first webhook retry (0.01-3600), doubled for each next one" },
	{ "COFFER_NOTIFY_URLS", set_notify_urls, NULL, true,
	  "comma- or space-separated URLs told each job's start and outcome: hc+URL (Healthchecks), kuma+URL "
	  "(Uptime Kuma push), ntfy+URL (ntfy topic), or a URL with {status} (and {job}, {host}, {message})" },
	{ "COFFER_NOTIFY_URLS_FILE", set_notify_urls_file, NULL, true, "file holding those URLs" },
	{ "COFFER_NOTIFY_LEVEL", set_notify_level, "error", false,
	  "error: ntfy and {status} URLs hear of failures and the first success after one; info: of every start "
	  "and outcome (Healthchecks and Kuma always get every outcome)" },
	{ "COFFER_VERBOSE", set_verbose, "0", false, "1: log each step of a job" },
};

const size_t agent_nkeys = sizeof(agent_keys) / sizeof(agent_keys[0]);

const char *cf_agent_config_key(size_t i, const char **description)
{
	if (i == 0) {
		if (description)
			*description = "file with KEY=VALUE lines for any key below (the environment wins)";
		return "COFFER_CONFIG_FILE";
	}
	if (i - 1 < agent_nkeys) {
		if (description)
			*description = agent_keys[i - 1].doc;
		return agent_keys[i - 1].name;
	}
	/* then the copy targets' keys, as doc/agent.md writes them */
	static char names[sizeof(agent_copy_keys) / sizeof(agent_copy_keys[0])][64];
	size_t k = i - 1 - agent_nkeys;
	if (k >= agent_ncopy_keys)
		return NULL;
	snprintf(names[k], sizeof(names[k]), COPY_PREFIX "<NAME>_%s", agent_copy_keys[k].suffix);
	if (description)
		*description = agent_copy_keys[k].doc;
	return names[k];
}

const struct agent_key *agent_find_key(const char *name)
{
	for (size_t i = 0; i < agent_nkeys; i++)
		if (!strcmp(agent_keys[i].name, name))
			return &agent_keys[i];
	return NULL;
}
