/*
 * dburl.h - where and how to reach a MariaDB/MySQL server.
 *
 * A database source is named by one URL:
 *
 *     mariadb://USER[:PASSWORD]@HOST[:PORT][/DB1,DB2,...][?socket=/path]
 *
 * ("mysql://" is accepted as a synonym.)  Every part is percent-decoded, so a
 * password holding '@' or ':' is written %40 / %3A.  HOST may be an IPv6
 * address in brackets, or empty when ?socket= names a unix socket.  PORT
 * defaults to 3306.  No database list means "every user database" to the
 * dumper and is ignored by the loader.
 *
 * Parsing is a pure function of the string (no environment, no I/O) so that it
 * can be fuzzed.  The password is looked up separately by cf_dburl_password():
 * the URL's own, else $MARIADB_PASSWORD, else the first line of the file named
 * by $MARIADB_PASSWORD_FILE.  The password never appears in an error message;
 * cf_dburl_describe() gives the form used in messages ("user@host:port").
 *
 * cf_dburl_connect() opens a libmariadb connection from a parsed URL; both the
 * dumper (sources/mariadb.c) and the loader (sources/mariadb_load.c) use it so
 * that they speak to the server the same way (utf8mb4, timeouts, no option
 * files read).
 */
#ifndef CF_DBURL_H
#define CF_DBURL_H

#include <stdbool.h>
#include <stddef.h>

struct cf_dburl {
	char *user;      /* never NULL after a successful parse */
	char *password;  /* NULL when the URL holds none ("u:@h" gives "") */
	char *host;      /* "localhost" when the URL leaves it empty */
	unsigned port;   /* 3306 unless given */
	char *socket;    /* NULL unless ?socket= */
	char **dbs;      /* ndbs decoded database names, in URL order */
	size_t ndbs;
};

#define CF_DBURL_INIT { NULL, NULL, NULL, 0, NULL, NULL, 0 }

/* Parse url into *u (which must be CF_DBURL_INIT or released).  CF_OK; or
 * CF_EINVAL with a one-line message naming the faulty part (the password is
 * never quoted), *u left empty; or CF_ENOMEM.  Release with cf_dburl_release()
 * in every case. */
int cf_dburl_parse(struct cf_dburl *u, const char *url);

/* Wipe the password and free everything; u is CF_DBURL_INIT afterwards. */
void cf_dburl_release(struct cf_dburl *u);

/* The password to use: u->password, else $MARIADB_PASSWORD, else the content
 * of the file named by $MARIADB_PASSWORD_FILE with one trailing newline (LF or
 * CRLF) removed.  *out is a malloc'd copy the caller wipes and frees with
 * cf_dburl_password_free(), or NULL when none of the three is set.  CF_OK, or
 * an error from reading the file (message names the file), or CF_ENOMEM. */
int cf_dburl_password(const struct cf_dburl *u, char **out);
void cf_dburl_password_free(char *pw);

/* "user@host:port" or "user@socket" into out (always NUL-terminated). */
void cf_dburl_describe(const struct cf_dburl *u, char *out, size_t size);

/* Connect to the server u names (no default database).  The connection uses
 * utf8mb4, a 10 s connect timeout and reads no option files.  *out is a
 * MYSQL * (declared void ** so that this header does not pull in mysql.h);
 * the caller closes it with mysql_close().  CF_OK, or CF_EDB with
 * "mariadb USER@HOST:PORT: <server message>", or the password lookup's error. */
int cf_dburl_connect(const struct cf_dburl *u, void **out);

#endif
