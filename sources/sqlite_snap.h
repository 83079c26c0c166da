/*
 * sqlite_snap.h - a consistent copy of a live SQLite database.
 *
 * Copying app.db with read() while the application writes gives a torn
 * file, and in WAL mode the newest transactions are not even in app.db yet.
 * cf_sqlite_snapshot() copies the database through SQLite's online backup
 * API in a single step (sqlite3_backup_step(-1)), which reads every page
 * inside one read transaction: the copy is the database as of one commit,
 * WAL content included, and the writer is not blocked in WAL mode (in
 * rollback-journal mode the copy waits for, or briefly holds off, writers).
 *
 * The copy goes to a new 0600 temp file in tmp_dir; the caller chunks it
 * under the original path (so the -wal and -shm files are never stored) and
 * unlinks it.  The copy keeps the source's page size and journal mode, so a
 * restored file is a normal SQLite database that opens anywhere.
 */
#ifndef CF_SQLITE_SNAP_H
#define CF_SQLITE_SNAP_H

/* Copy the database at db_path into a new temp file under tmp_dir.  On
 * success *out_tmp_path is its malloc'd path: the caller unlinks the file and
 * frees the string.  On failure no file is left behind.  The source is opened
 * read-only and waits up to 10 s for a lock.  CF_OK; CF_ENOENT when db_path
 * does not exist; CF_EDB "sqlite PATH: <sqlite message>" (not a database,
 * corrupt, busy too long); CF_EIO/CF_ENOSPC for the temp file; CF_ENOMEM. */
int cf_sqlite_snapshot(const char *db_path, const char *tmp_dir, char **out_tmp_path);

#endif
