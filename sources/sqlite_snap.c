#include "sources/sqlite_snap.h"
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

/* Remove the temp file and the side files SQLite may have made next to it. */
static void unlink_all(const char *path)
{
	static const char *const sfx[] = { "", "-journal", "-wal", "-shm" };
	char tmp[4096];

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(tmp, sizeof(tmp), "%s%s", path, sfx[i]);
		unlink(tmp);
	}
}

int cf_sqlite_snapshot(const char *db_path, const char *tmp_dir, char **out_tmp_path)
{
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *bk = NULL;
	char *tmp = NULL;
	struct stat st;
	int fd = -1, rc, r;

	*out_tmp_path = NULL;
	/* sqlite3_open_v2 would report a missing file as "unable to open";
	 * say what the user needs to hear instead. */
	if (stat(db_path, &st) < 0)
		return cf_err_errno("sqlite %s", db_path);
	if (asprintf(&tmp, "%s/coffer-sqlite-XXXXXX", tmp_dir) < 0)
		return CF_ENOMEM;
	if ((fd = mkstemp(tmp)) < 0) {
		r = cf_err_errno("sqlite snapshot temp file in %s", tmp_dir);
		free(tmp);
		return r;
	}
	close(fd);

	if (sqlite3_open_v2(db_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		r = cf_err(CF_EDB, "sqlite %s: %s", db_path, src ? sqlite3_errmsg(src) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(src, 10000);
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		r = cf_err(CF_EDB, "sqlite %s: %s", tmp, dst ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	if (!(bk = sqlite3_backup_init(dst, "main", src, "main"))) {
		r = cf_err(CF_EDB, "sqlite %s: %s", db_path, sqlite3_errmsg(dst));
		goto out;
	}
	/* All pages in one step: one read transaction, hence one commit's state.
	 * BUSY/LOCKED (a writer in rollback-journal mode) is retried: the busy
	 * handler of src has waited already, so back off a little more. */
	for (int tries = 0;; tries++) {
		rc = sqlite3_backup_step(bk, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && tries < 50) {
			sqlite3_sleep(100);
			continue;
		}
		sqlite3_backup_finish(bk);
		bk = NULL;
		r = cf_err(CF_EDB, "sqlite %s: %s", db_path, sqlite3_errstr(rc));
		goto out;
	}
	rc = sqlite3_backup_finish(bk);
	bk = NULL;
	if (rc != SQLITE_OK) {
		r = cf_err(CF_EDB, "sqlite %s: %s", db_path, sqlite3_errmsg(dst));
		goto out;
	}
	/* Closing the copy checkpoints and removes its own -wal, so the temp
	 * file alone is the whole database. */
	rc = sqlite3_close(dst);
	dst = NULL;
	if (rc != SQLITE_OK) {
		r = cf_err(CF_EDB, "sqlite %s: closing the copy failed", tmp);
		goto out;
	}
	r = CF_OK;
out:
	if (bk)
		sqlite3_backup_finish(bk);
	sqlite3_close(dst);
	sqlite3_close(src);
	if (r != CF_OK) {
		unlink_all(tmp);
		free(tmp);
	} else {
		*out_tmp_path = tmp;
	}
	return r;
}
