/*
 * postgres.h - PostgreSQL databases as backup sources, and loading them back.
 *
 * A server is named by one URL, libpq's own form:
 *
 *     postgres://[USER[:PASSWORD]@]HOST[:PORT][/DB1,DB2,...][?sslmode=...&...]
 *
 * ("postgresql://" too).  libpq parses it (PQconninfoParse), so every
 * parameter libpq knows (sslmode, sslrootcert, connect_timeout, host=/socket
 * /dir, ...) works as it does for psql.  The path is a comma-separated list of
 * databases; none means every database that is not a template and accepts
 * connections.  The password is the URL's, else what libpq finds itself
 * ($PGPASSWORD, $PGPASSFILE or ~/.pgpass).  It never appears in a message:
 * cf_pgurl_describe() gives "user@host:port".
 *
 * Dumping drives `pg_dump --format=plain` (Debian's postgresql-client), one
 * process per database, its stdout streamed straight into the backup as
 * postgres/<db>.sql (from the second server of a backup on,
 * postgres/<host>-<n>/<db>.sql).  pg_dump reads each database inside one
 * REPEATABLE READ transaction (a consistent snapshot), and writes everything
 * the database holds: schemas, tables, sequences with their state, views,
 * functions, triggers, large objects, extensions, comments, grants.  Why
 * pg_dump and not a libpq dumper of our own: doc/databases.md ("PostgreSQL",
 * measured).  The dump is plain SQL for psql, without CREATE DATABASE, so it
 * loads into whatever database it is given: that is what makes --rename
 * free.  A non-zero exit of pg_dump fails the backup with its first error
 * line; no snapshot is written.
 *
 * Loading (cf_pg_load) creates a new database under a temporary name, runs
 * `psql --single-transaction -v ON_ERROR_STOP=1` on it with the dump on its
 * stdin, and only when every statement succeeded renames it to the target
 * (swapping out and then dropping a database of that name that exists, both
 * renames in one transaction).  A failed load drops the temporary database:
 * the target is never seen half loaded.
 *
 * The child processes get the password in their environment (PGPASSWORD),
 * never on their command line.
 */
#ifndef CF_POSTGRES_H
#define CF_POSTGRES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/sink.h"
#include "sources/mariadb_load.h" /* cf_source_fn */

struct cf_pgurl {
	char **keys, **vals;  /* the libpq options the URL sets, but dbname and password */
	size_t nopts;
	char *password;       /* the URL's, or NULL */
	char **dbs;           /* the URL's database list (decoded), or NULL */
	size_t ndbs;
	char who[256];        /* "user@host:port" for messages */
};

#define CF_PGURL_INIT { NULL, NULL, 0, NULL, NULL, 0, { 0 } }

/* Parse url into *u (CF_PGURL_INIT or released).  CF_OK; CF_EINVAL with a
 * one-line message (the password never quoted); CF_ENOMEM.  Release with
 * cf_pgurl_release() in every case.  No I/O. */
int cf_pgurl_parse(struct cf_pgurl *u, const char *url);

/* cf_pgurl_parse() for validation only: CF_OK or its error. */
int cf_pgurl_check(const char *url);

/* Wipe the password and free; u is CF_PGURL_INIT afterwards. */
void cf_pgurl_release(struct cf_pgurl *u);

/* A libpq "key='value' ..." connection string for database dbname, without
 * the password, for pg_dump --dbname and psql.  Caller frees.  CF_OK or
 * CF_ENOMEM. */
int cf_pgurl_conninfo(const struct cf_pgurl *u, const char *dbname, char **out);

/* Connect to database dbname (NULL: "postgres").  *conn is a PGconn * (void
 * here so that this header does not pull in libpq-fe.h), closed with
 * PQfinish().  CF_OK, or CF_EDB "postgres user@host:port: <libpq message,
 * one line>". */
int cf_pg_connect(const struct cf_pgurl *u, const char *dbname, void **conn);

/* The databases to dump: the URL's list, each checked to exist (CF_ENOENT
 * "postgres user@host:port: unknown database 'x'"), or every database that
 * is not a template and allows connections, sorted.  A name holding '/' or
 * starting with '.' is refused (CF_EINVAL): it could not be a file name.
 * *names is NULL-terminated, freed with cf_pg_names_free(). */
int cf_pg_list_dbs(const struct cf_pgurl *u, char ***names, size_t *n);
void cf_pg_names_free(char **names);

/* Stream `pg_dump --format=plain` of database name to sink; *bytes (may be
 * NULL) counts what the sink got.  CF_OK; the sink's error; CF_EINTR;
 * CF_EDB "pg_dump of database x: <its first error line>" on a non-zero exit;
 * CF_EIO when pg_dump cannot be started. */
int cf_pg_dump_db(const struct cf_pgurl *u, const char *name, cf_sink_fn sink, void *ctx,
		  uint64_t *bytes);

/* Load the dump read from src into database target (created; see above for
 * the temporary name and the swap).  *bytes (may be NULL) counts what was
 * read.  CF_OK; CF_EDB "psql: <stdin>:LINE: ERROR: ..." for a refused
 * statement or a connection problem; the source's code; CF_EINTR. */
int cf_pg_load(const struct cf_pgurl *u, const char *target, cf_source_fn src, void *ctx,
	       uint64_t *bytes);

#endif
