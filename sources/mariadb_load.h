/*
 * mariadb_load.h - load an SQL dump back into a MariaDB/MySQL server.
 *
 * The restore engine reads mariadb/<db>.sql out of a snapshot as a byte
 * stream and hands it to cf_mariadb_load() through a cf_source_fn.  The
 * loader cuts the stream into statements the way the stock `mariadb` client
 * does and runs each one through libmariadb; nothing is buffered beyond one
 * statement (the dumper keeps those near 1 MiB).  The first statement the
 * server refuses stops the load with "line N: <server message>", N being the
 * line in the dump where that statement starts.
 *
 * The splitter (struct cf_sqlsplit) is push-style and knows: 'strings' and
 * "strings" with backslash escapes and doubled quotes, `identifiers`,
 * "-- " and "#" comments to the end of the line, block comments (the
 * executable slash-star-bang kind is kept as statement text), and
 * "DELIMITER xx" lines at the start of a statement, which sources/mariadb.c writes around routines,
 * triggers and events exactly as mysqldump does.  Comments before a
 * statement are dropped; comments inside one are kept, so routine bodies
 * load byte for byte.
 *
 * Accounts: a dump made with --mariadb-users ends with CREATE ROLE IF NOT
 * EXISTS, CREATE USER IF NOT EXISTS, GRANT and SET DEFAULT ROLE statements
 * (sources/mariadb_grant.h).  They run after everything else (in replace
 * mode after the swap, since a GRANT on a table needs the table in the real
 * database); a missing account is made, an existing one keeps its
 * password, TLS and limits unless CF_MARIADB_USERS_REPLACE (then ALTER USER
 * sets them as dumped), and the grants are added (GRANT never revokes).
 * A renamed load's grants on the dump's database name the new database.
 *
 * Renaming: with target_db set, the loader rewrites the database name in
 * "CREATE DATABASE [IF NOT EXISTS] name" and "USE name" statements, which is
 * where the dumper writes it; everything else in a coffer dump is
 * unqualified.  A dump of someone else's making that qualifies names
 * (`db`.`t`) elsewhere is loaded as written.
 */
#ifndef CF_MARIADB_LOAD_H
#define CF_MARIADB_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sources/dburl.h"
#include "common/buf.h"

/* Fill buf with up to n bytes.  Return the count, 0 at the end of the
 * stream, or minus a cf_error code with the message set (cf_err). */
typedef ssize_t (*cf_source_fn)(void *ctx, void *buf, size_t n);

/* Receive one statement: len bytes at stmt (NUL-terminated, delimiter and
 * surrounding blanks removed), starting on line `line` (1-based) of the
 * input.  Return CF_OK to go on or an error code to stop the split. */
typedef int (*cf_stmt_fn)(void *ctx, char *stmt, size_t len, unsigned long line);

struct cf_sqlsplit {
	struct cf_buf stmt;       /* bytes since the last statement; blanks and
				   * comments before its text are dropped */
	size_t content;           /* offset of the statement's first byte, or SIZE_MAX */
	size_t pend;              /* offset of a '-' or '/' not yet known to start a comment */
	char delim[16];           /* current delimiter, ";" at first */
	size_t dlen;
	int state;                /* lexer state, see mariadb_load.c */
	size_t plain_run;         /* trailing bytes of stmt read outside quotes and comments */
	unsigned long line;       /* current input line, 1-based */
	unsigned long stmt_line;  /* where the statement's text begins */
	unsigned long state_line; /* where the open quote or comment began */
};

/* Start a split: ";" as delimiter, line 1. */
void cf_sqlsplit_init(struct cf_sqlsplit *s);
void cf_sqlsplit_release(struct cf_sqlsplit *s);

/* Feed n bytes; cb is called for every statement completed by them.  CF_OK,
 * the callback's code, or CF_ENOMEM. */
int cf_sqlsplit_feed(struct cf_sqlsplit *s, const void *p, size_t n, cf_stmt_fn cb, void *ctx);

/* End of input: pass on a last statement without delimiter, if any.  CF_OK,
 * the callback's code, or CF_ECORRUPT "line N: unterminated ..." when the input
 * ends inside a quote or comment. */
int cf_sqlsplit_finish(struct cf_sqlsplit *s, cf_stmt_fn cb, void *ctx);

struct cf_mariadb_load_stats {
	uint64_t statements;
	uint64_t bytes;
	unsigned long lines;
	uint64_t accounts_made;  /* CREATE USER/ROLE IF NOT EXISTS that made one */
	uint64_t accounts_kept;  /* ... that found it there (left as it was, or
				  * ALTERed with CF_MARIADB_USERS_REPLACE) */
};

/* flags of cf_mariadb_load_replace(): what to do with a dump's accounts. */
#define CF_MARIADB_USERS_REPLACE 1u  /* existing accounts: ALTER USER to the dumped
				      * password, TLS and limits */
#define CF_MARIADB_USERS_SKIP 2u     /* run none of the account statements */

/* What a statement of a dump is, for the loader: K_SET (a SET, SET DEFAULT
 * ROLE excepted), K_OBJECT (CREATE of a view, trigger, routine or package),
 * K_EVENT (CREATE EVENT), K_DROP_OBJECT (DROP of one of those), K_ACCOUNT
 * (CREATE USER/ROLE, GRANT, SET DEFAULT ROLE) or K_OTHER.  For K_OBJECT and
 * K_EVENT *create_end points past the word CREATE, else it is NULL.
 * Exposed for the fuzz target; a pure function of the text. */
enum { CF_MARIADB_K_OTHER, CF_MARIADB_K_SET, CF_MARIADB_K_OBJECT, CF_MARIADB_K_EVENT,
       CF_MARIADB_K_DROP_OBJECT, CF_MARIADB_K_ACCOUNT };
int cf_mariadb_classify(const char *stmt, size_t len, const char **create_end);

/* Where the database name of "CREATE DATABASE|SCHEMA [IF NOT EXISTS] x" or
 * "USE x" sits in stmt (also inside mysqldump's executable comments):
 * returns its first byte and sets *name_end past it, or NULL when stmt is
 * neither.  Exposed for the fuzz target. */
const char *cf_mariadb_find_db_name(const char *stmt, size_t len, const char **name_end);

/* Load the dump read from src into the server url names (its database list
 * is ignored).  target_db, when not NULL, replaces the database name of the
 * dump's CREATE DATABASE and USE statements.  The connection is opened and
 * closed here; the statements run in autocommit mode, so a failed load leaves
 * what ran before the failing statement in place.  stats may be NULL.
 * CF_OK; CF_EDB "mariadb user@host:port: ..." for connection problems or
 * "line N: <server message>" for a refused statement; the source's code;
 * CF_ECORRUPT for an input that ends inside a quote or comment; CF_EINTR
 * when cf_interrupted is set. */
int cf_mariadb_load(const struct cf_dburl *url, const char *target_db, cf_source_fn src, void *ctx,
		    struct cf_mariadb_load_stats *stats);

/* Replace database db whole with the dump read from src, never leaving a
 * half-loaded database under that name.  The dump (its CREATE DATABASE and
 * USE renamed) loads into "<db>__coffer_new" (dropped first if a killed
 * restore left it); only when every statement ran are the tables swapped in
 * with one RENAME TABLE (the real database's tables become
 * "__coffer_old_<n>" inside it, as a table with triggers cannot leave its
 * database), the real database's views, routines and events that the dump
 * lacks are dropped, and the dump's views, triggers, routines and events are
 * made again in db as CREATE OR REPLACE (events only there, so that none
 * runs in the temporary database); the old tables and the temporary
 * database are then dropped.  Between the RENAME and the last of those
 * objects the new tables are in place without their triggers (the window
 * is logged at info level).  A load that fails leaves db as it was and no
 * temporary database.  CF_OK or the errors of cf_mariadb_load(); an error
 * after the RENAME says so. */
int cf_mariadb_load_replace(const struct cf_dburl *url, const char *db, cf_source_fn src, void *ctx,
			    unsigned flags, struct cf_mariadb_load_stats *stats);

#endif
