/* postgres_load.c - cf_pg_load(): a dump into a new database under a
 * temporary name through psql, then renamed into place (see postgres.h). */
#include "sources/postgres.h"
#include "sources/postgres_int.h"
#include "common/error.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#define PG_NAME_MAX 63

/* Run sql on c; CF_OK or CF_EDB "postgres who: what: message". */
static int run(const struct cf_pgurl *u, PGconn *c, const char *sql, const char *what)
{
	PGresult *res = PQexec(c, sql);
	int r = CF_OK;
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		char line[512];
		cf_pg_oneline(PQerrorMessage(c), line, sizeof(line));
		r = cf_err(CF_EDB, "postgres %s: %s: %s", u->who, what, line);
	}
	PQclear(res);
	return r;
}

/* "<head of name>_coffer_<tag>_<pid>", at most PG_NAME_MAX bytes, quoted */
static char *side_name(PGconn *c, const char *name, const char *tag, char *plain, size_t n)
{
	char suffix[48];
	int sl = snprintf(suffix, sizeof(suffix), "_coffer_%s_%ld", tag, (long)getpid());
	int keep = (int)strlen(name);
	if (keep > PG_NAME_MAX - sl)
		keep = PG_NAME_MAX - sl;
	snprintf(plain, n, "%.*s%s", keep, name, suffix);
	return PQescapeIdentifier(c, plain, strlen(plain));
}

/* Run sql, keeping the error message already set (cleanup after a failure). */
static void run_quiet(PGconn *c, const char *sql)
{
	PQclear(PQexec(c, sql));
}

static bool db_exists(PGconn *c, const char *name)
{
	const char *p[1] = { name };
	PGresult *res = PQexecParams(c, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", 1, NULL, p,
				     NULL, NULL, 0);
	bool yes = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
	PQclear(res);
	return yes;
}

/* write all of p to fd; false when the reader went away (psql stopped) */
static bool write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR && !cf_interrupted)
			continue;
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* psql on database tmp with src on its stdin */
static int feed_psql(const struct cf_pgurl *u, const char *tmp, cf_source_fn src, void *ctx, uint64_t *bytes)
{
	char *ci = NULL, *dbarg = NULL, why[64], line[512];
	int p[2] = { -1, -1 }, r, src_rc = CF_OK;
	bool broken = false;
	FILE *err = NULL;
	char *buf = NULL;
	pid_t pid;

	if ((r = cf_pgurl_conninfo(u, tmp, &ci)) != CF_OK || asprintf(&dbarg, "--dbname=%s", ci) < 0) {
		dbarg = NULL;
		r = CF_ENOMEM;
		goto out;
	}
	if (!(buf = malloc(1u << 20)) || !(err = tmpfile())) {
		r = buf ? cf_err_errno("psql: temporary file for its messages") : CF_ENOMEM;
		goto out;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = cf_err_errno("pipe");
		goto out;
	}
	char *argv[] = { "psql", "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction",
			 dbarg, "-f", "-", NULL };
	if ((r = cf_pg_spawn("psql", argv, u, p[0], -1, fileno(err), &pid)) != CF_OK)
		goto out;
	close(p[0]);
	p[0] = -1;
	while (!broken) {
		if (cf_interrupted) {
			src_rc = cf_err(CF_EINTR, "load interrupted");
			break;
		}
		ssize_t k = src(ctx, buf, 1u << 20);
		if (k < 0) {
			src_rc = (int)-k;
			break;
		}
		if (k == 0)
			break;
		*bytes += (uint64_t)k;
		broken = !write_all(p[1], buf, (size_t)k);
	}
	close(p[1]);
	p[1] = -1;
	if (src_rc != CF_OK)
		kill(pid, SIGTERM); /* its transaction is rolled back */
	int st = cf_pg_wait(pid, why, sizeof(why));
	fflush(err);
	if (src_rc != CF_OK) {
		r = src_rc;
	} else if (st != 0 || broken) {
		cf_pg_errline(err, line, sizeof(line));
		r = cf_err(CF_EDB, "%s", line[0] ? line : broken ? "psql stopped reading" : why);
	}
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

int cf_pg_load(const struct cf_pgurl *u, const char *target, cf_source_fn src, void *ctx, uint64_t *bytes)
{
	char tmp[PG_NAME_MAX + 1], old[PG_NAME_MAX + 1];
	char *qtarget = NULL, *qtmp = NULL, *qold = NULL, *sql = NULL;
	uint64_t nbytes = 0;
	bool created = false;
	PGconn *c = NULL;
	void *cv;
	int r;

	if (!target[0] || strlen(target) > PG_NAME_MAX)
		return cf_err(CF_EINVAL, "postgres: database name '%s' is empty or longer than %d bytes", target,
			      PG_NAME_MAX);
	/* not the database being renamed: a connection to it would block that */
	if ((r = cf_pg_connect(u, strcmp(target, "postgres") ? "postgres" : "template1", &cv)) != CF_OK)
		return r;
	c = cv;
	if (!(qtarget = PQescapeIdentifier(c, target, strlen(target))) ||
	    !(qtmp = side_name(c, target, "new", tmp, sizeof(tmp))) ||
	    !(qold = side_name(c, target, "old", old, sizeof(old)))) {
		r = CF_ENOMEM;
		goto out;
	}
	/* a leftover of a load that was killed */
	if ((r = asprintf(&sql, "DROP DATABASE IF EXISTS %s", qtmp)) < 0 ||
	    (r = run(u, c, sql, "drop an old temporary database")) != CF_OK)
		goto out;
	free(sql);
	if ((r = asprintf(&sql, "CREATE DATABASE %s TEMPLATE template0", qtmp)) < 0 ||
	    (r = run(u, c, sql, "create the temporary database")) != CF_OK)
		goto out;
	created = true;
	if ((r = feed_psql(u, tmp, src, ctx, &nbytes)) != CF_OK)
		goto out;
	free(sql);
	sql = NULL;
	if (db_exists(c, target)) {
		/* one transaction: the name is never missing nor half loaded */
		if (asprintf(&sql, "BEGIN; ALTER DATABASE %s RENAME TO %s; ALTER DATABASE %s RENAME TO %s; COMMIT",
			     qtarget, qold, qtmp, qtarget) < 0) {
			sql = NULL;
			r = CF_ENOMEM;
			goto out;
		}
		if ((r = run(u, c, sql, "replace the database")) != CF_OK) {
			run_quiet(c, "ROLLBACK");
			goto out;
		}
		created = false;
		free(sql);
		if (asprintf(&sql, "DROP DATABASE %s", qold) < 0) {
			sql = NULL;
			r = CF_ENOMEM;
			goto out;
		}
		if (run(u, c, sql, "drop the replaced database") != CF_OK)
			cf_warn("postgres %s: the replaced database %s is left as %s", u->who, target, old);
	} else {
		if (asprintf(&sql, "ALTER DATABASE %s RENAME TO %s", qtmp, qtarget) < 0) {
			sql = NULL;
			r = CF_ENOMEM;
			goto out;
		}
		if ((r = run(u, c, sql, "rename the loaded database")) != CF_OK)
			goto out;
		created = false;
	}
	r = CF_OK;
out:
	if (r < 0)
		r = CF_ENOMEM;
	if (created) {
		char *drop = NULL;
		if (asprintf(&drop, "DROP DATABASE IF EXISTS %s", qtmp) >= 0)
			run_quiet(c, drop);
		free(drop);
	}
	if (bytes)
		*bytes = nbytes;
	free(sql);
	PQfreemem(qtarget);
	PQfreemem(qtmp);
	PQfreemem(qold);
	PQfinish(c);
	return r;
}
