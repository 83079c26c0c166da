/*
 * pg_restore.h - loading a snapshot's PostgreSQL dumps back into a server.
 *
 * A snapshot holds them as postgres/<db>.sql (postgres/<host>-<n>/<db>.sql
 * for the second and later --postgres of a backup; sources/postgres.h).  The
 * choice works as for MariaDB (restore/db_restore.h): --database picks dumps
 * by "db" or "<host>-<n>/db", --rename OLD=NEW loads OLD under NEW, and all of
 * it is checked before anything is loaded.  Each dump is streamed blob by
 * blob from the repository into cf_pg_load(): a new database under a
 * temporary name, renamed into place once psql loaded every statement in one
 * transaction, so a failed load leaves the target as it was.
 */
#ifndef CF_PG_RESTORE_H
#define CF_PG_RESTORE_H

#include <stddef.h>
#include "repo/repo.h"
#include "restore/db_restore.h"

/* Load the PostgreSQL dumps of snapshot s into the server o->url
 * (postgres://...).  Errors as cf_restore_mariadb(); a database that failed
 * is named with psql's error line; the ones loaded before it stay loaded.
 * *loaded counts databases loaded. */
int cf_restore_postgres(struct cf_repo *r, const struct cf_snapshot *s,
			const struct cf_db_restore_opts *o, size_t *loaded);

#endif
