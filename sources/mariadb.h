/*
 * mariadb.h - consistent SQL dumps of MariaDB/MySQL databases, streamed.
 *
 * A copy of a running server's files is not a backup; a dump taken inside
 * one transaction is.  The calling sequence is:
 *
 *     cf_mariadb_open(&url, &db)             connect (sources/dburl.h)
 *     cf_mariadb_list_dbs(db, &names, &n)    the URL's list, checked, or every
 *                                            user database
 *     cf_mariadb_begin_snapshot(db, &opts)   REPEATABLE READ + START TRANSACTION
 *                                            WITH CONSISTENT SNAPSHOT (under a
 *                                            brief FLUSH TABLES WITH READ LOCK
 *                                            when opts.lock)
 *     for each name:
 *         cf_mariadb_dump_db(db, name, sink, ctx, &stats)   -> mariadb/<name>.sql
 *     cf_mariadb_close(db)
 *
 * Every database is read inside the same transaction, so all InnoDB data of
 * all dumps is one point in time.  Tables of engines without transactions
 * (MyISAM, Aria, MEMORY, ...) are read as they are when their turn comes;
 * cf_mariadb_dump_db() warns about them by name and counts them.
 *
 * The dump is plain SQL that the stock `mariadb` client also loads:
 * a header comment, session settings (utf8mb4, foreign_key_checks=0,
 * time_zone '+00:00' so TIMESTAMPs round-trip exactly, sql_mode
 * NO_AUTO_VALUE_ON_ZERO), CREATE DATABASE IF NOT EXISTS + USE, then for each
 * table DROP TABLE IF EXISTS + SHOW CREATE TABLE + its rows, then sequences,
 * functions and procedures, views (dependencies first), triggers (after the
 * data, so they do not fire during a load), events.  Routines, triggers and
 * events are wrapped in "DELIMITER ;;" ... ";;" / "DELIMITER ;" like
 * mysqldump writes them.  Rows are multi-row INSERTs with an explicit column
 * list that leaves generated columns out, one row per line, each statement
 * ending where a hash of a row's primary key meets a threshold (see
 * mariadb.c: content-defined, so that a change shifts only the statements
 * around it), at most about CF_MARIADB_STMT_MAX bytes.  Sequences come as SHOW CREATE SEQUENCE plus SETVAL();
 * system-versioned tables with their history (FOR SYSTEM_TIME ALL, loaded
 * under system_versioning_insert_history).  Values: NULL; numbers as the
 * server prints them, FLOAT selected as DOUBLE so that it is exact; binary
 * strings, BLOBs, BIT and geometry as X'hex'; other strings, dates and times
 * quoted with mysql_real_escape_string().  The only names the loader
 * rewrites for a rename are in the CREATE DATABASE and USE lines; other
 * objects are written without a database qualifier.
 *
 * Rows are read with mysql_use_result(): memory holds one row and one
 * statement, whatever the table's size.
 */
#ifndef CF_MARIADB_H
#define CF_MARIADB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sources/dburl.h"
#include "engine/sink.h"

/* Multi-row INSERTs end at content-defined points averaging
 * CF_MARIADB_STMT_AVG bytes, and at CF_MARIADB_STMT_MAX at the latest. */
#define CF_MARIADB_STMT_AVG (256u << 10)
#define CF_MARIADB_STMT_MAX (4u << 20)

struct cf_mariadb;

struct cf_mariadb_opts {
	bool lock;  /* FLUSH TABLES WITH READ LOCK while the transaction starts */
	bool users; /* end each dump with its accounts, roles and grants
		     * (--mariadb-users; see sources/mariadb_grant.h) */
};

struct cf_mariadb_stats {
	uint64_t tables;        /* base tables dumped (views etc. not counted) */
	uint64_t nontx_tables;  /* of which not transactional (warned about) */
	uint64_t rows;
	uint64_t bytes;         /* bytes given to the sink */
	uint64_t objects;       /* views, triggers, routines, events, sequences */
};

/* Connect to the server url names.  *out is freed with cf_mariadb_close().
 * CF_OK, CF_EDB ("mariadb user@host:port: Access denied ...", never the
 * password), CF_ENOMEM, or the password file's error. */
int cf_mariadb_open(const struct cf_dburl *url, struct cf_mariadb **out);

/* Close the connection (rolling back the snapshot transaction) and free.
 * NULL is a no-op. */
void cf_mariadb_close(struct cf_mariadb *db);

/* The databases to dump: the URL's list, each checked to exist (CF_ENOENT
 * "mariadb: unknown database 'x'" otherwise), or when the URL names none every
 * database but information_schema, performance_schema, mysql and sys, sorted.
 * *names is a NULL-terminated array the caller frees with
 * cf_mariadb_names_free(); *n its length (may be 0). */
int cf_mariadb_list_dbs(struct cf_mariadb *db, char ***names, size_t *n);
void cf_mariadb_names_free(char **names);

/* Start the one transaction every later dump reads from.  Call once, before
 * the first cf_mariadb_dump_db().  CF_OK or CF_EDB. */
int cf_mariadb_begin_snapshot(struct cf_mariadb *db, const struct cf_mariadb_opts *opts);

/* Stream the dump of database name to sink.  stats (may be NULL) is
 * overwritten.  CF_OK; the sink's error; CF_EINTR when cf_interrupted is set;
 * CF_EDB on a server error (the connection is then unusable: close it);
 * CF_EINVAL before cf_mariadb_begin_snapshot(). */
int cf_mariadb_dump_db(struct cf_mariadb *db, const char *name, cf_sink_fn sink, void *ctx,
		       struct cf_mariadb_stats *stats);

#endif
