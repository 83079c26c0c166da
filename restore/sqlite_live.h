/*
 * sqlite_live.h - replacing an SQLite database that is in use.
 *
 * Writing a restored copy over app.db while app.db-wal holds frames undoes
 * the restore: the next connection replays the old WAL onto the new file
 * (issue 25: 9,310 rows restored, 1,392 seen).  So before a restore
 * writes a file the snapshot records as an SQLite database:
 *
 *     cf_sqlite_live_check(path, &why)   is it in use?  (why says how)
 *     refused unless --force; with --force:
 *     cf_sqlite_live_aside(path, &aside)  -wal and -shm renamed to
 *         <name>-wal.coffer-replaced / -shm.coffer-replaced
 *     ... the restore renames the new file over path ...
 *     cf_sqlite_live_done(&aside, replaced)  replaced: the side files are
 *         removed; not replaced: renamed back
 *
 * The order makes a crash safe: the old WAL is never beside the new
 * database (it is moved away before the new file is renamed in); a crash in
 * between leaves the old database with its WAL under the .coffer-replaced
 * names, to be renamed back by hand, or the new database with harmless side
 * files.
 *
 * "In use" is: a non-empty -wal, a -shm (a WAL-mode connection holds it
 * while open), a POSIX or flock lock on the database, -wal or -shm in
 * /proc/locks (every process's, whoever owns it), or another process of
 * ours holding one of them open (/proc/PID/fd: only processes we may
 * inspect, so as root all of them).
 */
#ifndef CF_SQLITE_LIVE_H
#define CF_SQLITE_LIVE_H

#include <stdbool.h>
#include <stddef.h>

/* CF_OK with *busy false when path (the database's final name) is not in
 * use or does not exist; *busy true with a reason in why (n bytes) when it
 * is.  Errors only for out of memory. */
int cf_sqlite_live_check(const char *path, bool *busy, char *why, size_t n);

struct cf_sqlite_aside {
	char *path;         /* the database */
	bool wal, shm;      /* which were moved aside */
};

/* Move path-wal and path-shm aside (those that exist).  CF_OK or CF_EIO
 * naming the file (what was moved is moved back then). */
int cf_sqlite_live_aside(const char *path, struct cf_sqlite_aside *a);

/* After the restore: remove the side files when the database was replaced,
 * else put them back.  Frees a's members.  CF_OK or CF_EIO (logged). */
int cf_sqlite_live_done(struct cf_sqlite_aside *a, bool replaced);

#endif
