/* postgres.c - see postgres.h: the URL, connections, listing, pg_dump. */
#include "sources/postgres.h"
#include "sources/postgres_int.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

extern char **environ;

/* NAMEDATALEN - 1: longer names are truncated by the server, so refused here */
#define PG_NAME_MAX 63

static void free_list(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void cf_pgurl_release(struct cf_pgurl *u)
{
	if (u->password) {
		explicit_bzero(u->password, strlen(u->password));
		free(u->password);
	}
	free_list(u->keys, u->nopts);
	free_list(u->vals, u->nopts);
	free_list(u->dbs, u->ndbs);
	*u = (struct cf_pgurl)CF_PGURL_INIT;
}

static int split_dbs(struct cf_pgurl *u, const char *s)
{
	size_t count = 1;
	for (const char *p = s; *p; p++)
		count += *p == ',';
	if (!(u->dbs = calloc(count, sizeof(*u->dbs))))
		return CF_ENOMEM;
	for (const char *p = s;; p++) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (!l)
			return cf_err(CF_EINVAL, "postgres URL: empty database name in the list");
		if (l > PG_NAME_MAX)
			return cf_err(CF_EINVAL, "postgres URL: database name longer than %d bytes", PG_NAME_MAX);
		if (!(u->dbs[u->ndbs] = strndup(p, l)))
			return CF_ENOMEM;
		u->ndbs++;
		if (!e)
			break;
		p = e;
	}
	return CF_OK;
}

int cf_pgurl_parse(struct cf_pgurl *u, const char *url)
{
	PQconninfoOption *opts = NULL;
	char *perr = NULL;
	const char *user = NULL, *host = NULL, *port = NULL;
	size_t n = 0;
	int r;

	/* lower case: libpq reads anything else as "key=value" pairs */
	if (strncmp(url, "postgres://", 11) && strncmp(url, "postgresql://", 13))
		return cf_err(CF_EINVAL, "postgres URL: must start with postgres:// or postgresql://");
	if (!(opts = PQconninfoParse(url, &perr))) {
		char line[300];
		cf_pg_oneline(perr ? perr : "out of memory", line, sizeof(line));
		PQfreemem(perr);
		/* libpq quotes the part it did not understand, which may be the
		 * password: only an unknown parameter's name is shown */
		char *q = strstr(line, ": \""); /* libpq's fixed text never holds one */
		/* an unknown parameter's name stays when it is just a name */
		bool name = q && !strncmp(line, "invalid URI query parameter", 27) && strlen(q) <= 44 &&
			    q[strlen(q) - 1] == '"' && strspn(q + 3, "abcdefghijklmnopqrstuvwxyz"
							  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(q) - 4;
		if (q && !name)
			*q = 0;
		if (strstr(line, "://"))
			snprintf(line, sizeof(line), "not a valid URI");
		return cf_err(CF_EINVAL, "postgres URL: %s", line);
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		n += o->val && strcmp(o->keyword, "password") && strcmp(o->keyword, "dbname");
	u->keys = calloc(n + 1, sizeof(*u->keys));
	u->vals = calloc(n + 1, sizeof(*u->vals));
	if (!u->keys || !u->vals) {
		r = CF_ENOMEM;
		goto out;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (!strcmp(o->keyword, "password")) {
			if (!(u->password = strdup(o->val))) {
				r = CF_ENOMEM;
				goto out;
			}
			continue;
		}
		if (!strcmp(o->keyword, "dbname")) {
			if (o->val[0] && (r = split_dbs(u, o->val)) != CF_OK)
				goto out;
			continue;
		}
		if (!(u->keys[u->nopts] = strdup(o->keyword)) || !(u->vals[u->nopts] = strdup(o->val))) {
			free(u->keys[u->nopts]);
			r = CF_ENOMEM;
			goto out;
		}
		u->nopts++;
		if (!strcmp(o->keyword, "user"))
			user = o->val;
		else if (!strcmp(o->keyword, "host"))
			host = o->val;
		else if (!strcmp(o->keyword, "port"))
			port = o->val;
	}
	snprintf(u->who, sizeof(u->who), "%.64s@%.128s:%.32s", user ? user : "(default user)",
		 host && host[0] ? host : "localhost", port && port[0] ? port : "5432");
	for (char *p = u->who; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	r = CF_OK;
out:
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val && !strcmp(o->keyword, "password"))
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
	if (r != CF_OK)
		cf_pgurl_release(u);
	return r;
}

static int add_kv(struct cf_buf *b, const char *k, const char *v)
{
	int r;
	if ((b->len && (r = cf_buf_add(b, " ", 1))) || (r = cf_buf_adds(b, k)) || (r = cf_buf_adds(b, "='")))
		return r;
	for (const char *p = v; *p; p++)
		if (((*p == '\'' || *p == '\\') && (r = cf_buf_add(b, "\\", 1))) || (r = cf_buf_add(b, p, 1)))
			return r;
	return cf_buf_add(b, "'", 1);
}

int cf_pgurl_check(const char *url)
{
	struct cf_pgurl u = CF_PGURL_INIT;
	int r = cf_pgurl_parse(&u, url);
	cf_pgurl_release(&u);
	return r;
}

int cf_pgurl_conninfo(const struct cf_pgurl *u, const char *dbname, char **out)
{
	struct cf_buf b = CF_BUF_INIT;
	int r = CF_OK;

	*out = NULL;
	for (size_t i = 0; i < u->nopts && !r; i++)
		r = add_kv(&b, u->keys[i], u->vals[i]);
	if (!r)
		r = add_kv(&b, "dbname", dbname);
	if (!r && !(*out = (char *)cf_buf_detach(&b, NULL)))
		r = CF_ENOMEM;
	cf_buf_release(&b);
	return r;
}

void cf_pg_oneline(const char *in, char *out, size_t n)
{
	size_t j = 0;
	bool blank = true; /* drops leading blanks */
	if (!n)
		return;
	for (const char *p = in; *p && j + 1 < n; p++) {
		bool sp = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
		if (sp) {
			if (!blank)
				out[j++] = ' ';
			blank = true;
			continue;
		}
		out[j++] = (unsigned char)*p < 0x20 ? '?' : *p;
		blank = false;
	}
	while (j && out[j - 1] == ' ')
		j--;
	out[j] = 0;
}

/* libpq prints NOTICEs on stderr ("... does not exist, skipping"): not for our users */
static void no_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

int cf_pg_connect(const struct cf_pgurl *u, const char *dbname, void **conn)
{
	const char **k = calloc(u->nopts + 5, sizeof(*k)), **v = calloc(u->nopts + 5, sizeof(*v));
	size_t n = 0;
	bool has_timeout = false;
	PGconn *c = NULL;
	int r = CF_OK;

	*conn = NULL;
	if (!k || !v) {
		r = CF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < u->nopts; i++) {
		has_timeout = has_timeout || !strcmp(u->keys[i], "connect_timeout");
		k[n] = u->keys[i];
		v[n++] = u->vals[i];
	}
	k[n] = "dbname";
	v[n++] = dbname ? dbname : "postgres";
	if (u->password) {
		k[n] = "password";
		v[n++] = u->password;
	}
	if (!has_timeout) {
		k[n] = "connect_timeout";
		v[n++] = "10";
	}
	k[n] = "application_name";
	v[n++] = "coffer";
	if (!(c = PQconnectdbParams(k, v, 0))) {
		r = CF_ENOMEM;
		goto out;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		char line[512];
		cf_pg_oneline(PQerrorMessage(c), line, sizeof(line));
		r = cf_err(CF_EDB, "postgres %s: %s", u->who, line);
		PQfinish(c);
		goto out;
	}
	PQsetNoticeProcessor(c, no_notice, NULL);
	*conn = c;
out:
	free(k);
	free(v);
	return r;
}

void cf_pg_names_free(char **names)
{
	if (!names)
		return;
	for (char **p = names; *p; p++)
		free(*p);
	free(names);
}

static int check_name(const struct cf_pgurl *u, const char *name)
{
	if (!name[0] || name[0] == '.' || strchr(name, '/'))
		return cf_err(CF_EINVAL, "postgres %s: database '%s' cannot be stored as a file name "
			      "(empty, '/' or a leading '.'): name the others in the URL", u->who, name);
	return CF_OK;
}

int cf_pg_list_dbs(const struct cf_pgurl *u, char ***names, size_t *n)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	char **v = NULL;
	void *cv;
	size_t count = 0;
	int r;

	*names = NULL;
	*n = 0;
	/* the maintenance database, so that an unknown name in the list is
	 * reported as such; a server without one: the first listed */
	if ((r = cf_pg_connect(u, NULL, &cv)) != CF_OK &&
	    (!u->ndbs || cf_pg_connect(u, u->dbs[0], &cv) != CF_OK))
		return r;
	cf_err_clear();
	c = cv;
	res = PQexec(c, "SELECT datname FROM pg_catalog.pg_database WHERE NOT datistemplate AND datallowconn "
		     "ORDER BY datname COLLATE \"C\"");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		char line[512];
		cf_pg_oneline(PQerrorMessage(c), line, sizeof(line));
		r = cf_err(CF_EDB, "postgres %s: list databases: %s", u->who, line);
		goto out;
	}
	int rows = PQntuples(res);
	size_t want = u->ndbs ? u->ndbs : (size_t)rows;
	if (!(v = calloc(want + 1, sizeof(*v)))) {
		r = CF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < want; i++) {
		const char *name = u->ndbs ? u->dbs[i] : PQgetvalue(res, (int)i, 0);
		bool found = !u->ndbs;
		for (int j = 0; j < rows && !found; j++)
			found = !strcmp(PQgetvalue(res, j, 0), name);
		if (!found) {
			r = cf_err(CF_ENOENT, "postgres %s: unknown database '%s'", u->who, name);
			goto out;
		}
		if ((r = check_name(u, name)) != CF_OK)
			goto out;
		for (size_t j = 0; j < count; j++)
			if (!strcmp(v[j], name)) {
				r = cf_err(CF_EINVAL, "postgres URL: database '%s' is listed twice", name);
				goto out;
			}
		if (!(v[count++] = strdup(name))) {
			r = CF_ENOMEM;
			goto out;
		}
	}
	*names = v;
	*n = count;
	v = NULL;
out:
	cf_pg_names_free(v);
	PQclear(res);
	PQfinish(c);
	return r;
}

/* ---------- child processes ---------- */

int cf_pg_spawn(const char *prog, char *const argv[], const struct cf_pgurl *u, int in, int out, int err,
		pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t def;
	size_t ne = 0;
	char **env, *pw = NULL;
	int e, r = CF_OK;

	for (char **p = environ; *p; p++)
		ne++;
	if (!(env = calloc(ne + 2, sizeof(*env))))
		return CF_ENOMEM;
	ne = 0;
	for (char **p = environ; *p; p++)
		if (!u->password || strncmp(*p, "PGPASSWORD=", 11))
			env[ne++] = *p;
	if (u->password) {
		if (asprintf(&pw, "PGPASSWORD=%s", u->password) < 0) {
			free(env);
			return CF_ENOMEM;
		}
		env[ne++] = pw;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
	if (in >= 0)
		posix_spawn_file_actions_adddup2(&fa, in, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out >= 0)
		posix_spawn_file_actions_adddup2(&fa, out, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, err, 2);
	if ((e = posix_spawnp(pid, prog, &fa, &at, argv, env)) != 0)
		r = e == ENOENT ? cf_err(CF_EIO, "%s is not installed (Debian: apt-get install postgresql-client)",
					 prog)
				: cf_err(CF_EIO, "cannot run %s: %s", prog, strerror(e));
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	free(env);
	return r;
}

int cf_pg_wait(pid_t pid, char *out, size_t n)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			snprintf(out, n, "lost: %s", strerror(errno));
			return -1;
		}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		snprintf(out, n, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(out, n, "killed by signal %d", WTERMSIG(st));
	return -1;
}

void cf_pg_errline(FILE *f, char *out, size_t n)
{
	char line[1024], last[1024] = "";
	out[0] = 0;
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		if (!out[0] && (strstr(line, "error:") || strstr(line, "ERROR:") || strstr(line, "FATAL:")))
			cf_pg_oneline(line, out, n);
		if (line[strspn(line, " \t\r\n")])
			cf_pg_oneline(line, last, sizeof(last));
	}
	if (!out[0])
		snprintf(out, n, "%s", last);
}

/* ---------- pg_dump ---------- */

int cf_pg_dump_db(const struct cf_pgurl *u, const char *name, cf_sink_fn sink, void *ctx, uint64_t *bytes)
{
	char *ci = NULL, *dbarg = NULL, why[64], line[512];
	int p[2] = { -1, -1 }, r;
	FILE *err = NULL;
	uint8_t *buf = NULL;
	pid_t pid = -1;
	uint64_t total = 0;

	if (bytes)
		*bytes = 0;
	if ((r = cf_pgurl_conninfo(u, name, &ci)) != CF_OK || asprintf(&dbarg, "--dbname=%s", ci) < 0) {
		dbarg = NULL;
		r = CF_ENOMEM;
		goto out;
	}
	if (!(buf = malloc(1u << 20)) || !(err = tmpfile())) {
		r = buf ? cf_err_errno("pg_dump: temporary file for its messages") : CF_ENOMEM;
		goto out;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = cf_err_errno("pipe");
		goto out;
	}
	/* plain SQL: deduplicates across backups (a custom-format archive is
	 * compressed) and loads with psql; no --create: it loads into any name */
	char *argv[] = { "pg_dump", "--format=plain", "--no-password", dbarg, NULL };
	if ((r = cf_pg_spawn("pg_dump", argv, u, -1, p[1], fileno(err), &pid)) != CF_OK)
		goto out;
	close(p[1]);
	p[1] = -1;
	for (;;) {
		ssize_t k = read(p[0], buf, 1u << 20);
		if (k < 0 && errno == EINTR && !cf_interrupted)
			continue;
		if (cf_interrupted) {
			r = cf_err(CF_EINTR, "pg_dump of database %s interrupted", name);
			break;
		}
		if (k < 0) {
			r = cf_err_errno("reading pg_dump of database %s", name);
			break;
		}
		if (k == 0)
			break;
		if ((r = sink(ctx, buf, (size_t)k)) != CF_OK)
			break;
		total += (uint64_t)k;
	}
	close(p[0]);
	p[0] = -1;
	if (r != CF_OK)
		kill(pid, SIGTERM);
	int st = cf_pg_wait(pid, why, sizeof(why));
	fflush(err);
	if (r == CF_OK && st != 0) {
		cf_pg_errline(err, line, sizeof(line));
		r = cf_err(CF_EDB, "pg_dump of database %s (%s) %s: %s", name, u->who, why,
			   line[0] ? line : "no message");
	} else if (r == CF_OK) {
		/* warnings of a dump that succeeded */
		cf_pg_errline(err, line, sizeof(line));
		if (line[0])
			cf_warn("pg_dump of database %s: %s", name, line);
	}
	if (bytes)
		*bytes = total;
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (err)
		fclose(err);
	free(buf);
	free(dbarg);
	free(ci);
	return r;
}
