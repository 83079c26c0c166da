/*
 * mariadb_grant.h - reading the statements of a dump's account section.
 *
 * With --mariadb-users the dumper (sources/mariadb.c) ends a database's dump
 * with the accounts its objects name as DEFINER or that hold grants on it:
 * CREATE ROLE IF NOT EXISTS, CREATE USER IF NOT EXISTS (SHOW CREATE USER's
 * text), GRANT lines of SHOW GRANTS cut down to the global privileges, those
 * on this database and role grants, and SET DEFAULT ROLE.  The dumper picks
 * the lines to keep and the loader (sources/mariadb_load.c) points a renamed
 * restore's grants at the new database; both find the database name of a
 * GRANT here.  Pure functions over statement text, no I/O.
 */
#ifndef CF_MARIADB_GRANT_H
#define CF_MARIADB_GRANT_H

#include <stdbool.h>
#include <stddef.h>

/* Where the database name of a "GRANT privs ON [FUNCTION | PROCEDURE |
 * PACKAGE [BODY]] db.what TO ..." statement sits: returns its first byte
 * (a `quoted` or bare identifier) and sets *end past it.  NULL for a
 * statement that is not such a GRANT: a global grant (ON *.*), a role
 * grant (no ON before TO), a PROXY grant, an ON clause without
 * "identifier." (a grant on a table of the current database). */
const char *cf_mariadb_grant_db(const char *stmt, size_t len, const char **end);

/* A GRANT on *.*: *privs to *privs_end span its privilege list.  Returns
 * false for any other statement. */
bool cf_mariadb_grant_global(const char *stmt, size_t len, const char **privs, const char **privs_end);

/* Does the identifier at [p, end) (`quoted`, with `` for a backtick, or
 * bare) spell name exactly? */
bool cf_mariadb_ident_eq(const char *p, const char *end, const char *name);

#endif
