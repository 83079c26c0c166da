/*
 * sqlite_pitr.c - point-in-time restore of a replicated SQLite database.
 */
#include "restore/sqlite_pitr.h"
#include "restore/dump.h"
#include "repo/segment.h"
#include "sources/replicate.h"
#include "common/error.h"
#include "common/util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

static int integrity(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int rc = CF_OK;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_step(q) != SQLITE_ROW) {
		rc = cf_err(CF_ECORRUPT, "restored database does not open: %s",
			    db ? sqlite3_errmsg(db) : "out of memory");
	} else {
		const char *v = (const char *)sqlite3_column_text(q, 0);
		if (!v || strcmp(v, "ok"))
			rc = cf_err(CF_ECORRUPT, "restored database fails PRAGMA integrity_check: %s",
				    v ? v : "?");
	}
	sqlite3_finalize(q);
	if (sqlite3_close(db) != SQLITE_OK && !rc)
		rc = cf_err(CF_EDB, "closing the restored database failed");
	return rc;
}

static void unlink_side(const char *p)
{
	char s[4200];
	unlink(p);
	snprintf(s, sizeof(s), "%s-wal", p);
	unlink(s);
	snprintf(s, sizeof(s), "%s-shm", p);
	unlink(s);
}

/* The snapshot with this id. */
static int find_snapshot(struct cf_repo *r, const uint8_t id[CF_ID_LEN], struct cf_snapshot *out)
{
	struct cf_snapshot *v = NULL;
	size_t n = 0;
	int rc;
	if ((rc = cf_repo_snapshots(r, &v, &n, NULL)))
		return rc;
	rc = CF_ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (!memcmp(v[i].id, id, CF_ID_LEN)) {
			*out = v[i];
			memset(&v[i], 0, sizeof(v[i]));
			rc = CF_OK;
			break;
		}
	}
	cf_snapshots_free(v, n);
	if (rc) {
		char hex[CF_ID_HEX];
		cf_hex(id, CF_ID_LEN, hex);
		rc = cf_err(CF_ENOENT, "the base copy's snapshot %.8s is gone (forgotten?)", hex);
	}
	return rc;
}

int cf_sqlite_pitr(struct cf_repo *r, const char *abspath, int64_t at_ns, const char *target,
		   struct cf_pitr_result *res)
{
	struct cf_seg_listing *gens = NULL;
	struct cf_seg_gen g = { 0 };
	struct cf_snapshot snap = { 0 };
	struct cf_buf plain = CF_BUF_INIT;
	char db[CF_SEG_DB_HEX], *tmp = NULL;
	size_t ngen = 0;
	long pick = -1;
	int fd = -1, rc;
	struct stat st;

	memset(res, 0, sizeof(*res));
	if (lstat(target, &st) == 0)
		return cf_err(CF_EEXIST, "--target %s exists; give a new file", target);
	if ((rc = cf_seg_db_key(r, abspath, db)) || (rc = cf_seg_list(r, db, &gens, &ngen)))
		goto out;
	/* the newest generation whose base is at or before at_ns */
	for (size_t i = ngen; i-- > 0;) {
		if (!gens[i].has_record)
			continue;
		struct cf_seg_gen c = { 0 };
		if ((rc = cf_seg_gen_get(r, db, gens[i].gen, &c))) {
			cf_warn("%s (generation skipped)", cf_errmsg(rc));
			cf_err_clear();
			continue;
		}
		if (c.time_ns <= at_ns && strcmp(c.path, abspath) == 0) {
			g = c;
			pick = (long)i;
			break;
		}
		cf_seg_gen_release(&c);
	}
	if (pick < 0) {
		rc = ngen ? cf_err(CF_ENOENT, "no replica of %s starts at or before that time "
				   "(see 'coffer sqlite list %s')", abspath, abspath)
			  : cf_err(CF_ENOENT, "nothing was replicated from %s (see 'coffer replicate')", abspath);
		goto out;
	}
	if ((rc = find_snapshot(r, g.snapshot, &snap)))
		goto out;
	if (asprintf(&tmp, "%s.coffer-XXXXXX", target) < 0) {
		tmp = NULL;
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if ((fd = mkstemp(tmp)) < 0) {
		rc = cf_err_errno("create a temp file for %s", target);
		free(tmp);
		tmp = NULL;
		goto out;
	}
	if ((rc = cf_dump(r, &snap, abspath, CF_DUMP_RAW, fd)))
		goto out;
	memcpy(res->gen, g.gen, sizeof(res->gen));
	res->base_ns = res->state_ns = g.time_ns;
	bool done = false;
	for (uint64_t s = 1; s <= gens[pick].nseg && !done; s++) {
		struct cf_segment seg;
		if ((rc = cf_seg_get(r, db, g.gen, s, &plain)) || (rc = cf_seg_parse(plain.data, plain.len, &seg))) {
			rc = cf_err_prefix(rc, "sqlite-%s/%s.%016" PRIx64 ": ", db, g.gen, s);
			goto out;
		}
		if (seg.page_size != g.page_size || seg.seq != s || strcmp(seg.gen, g.gen)) {
			cf_seg_release(&seg);
			rc = cf_err(CF_ECORRUPT, "sqlite-%s/%s.%016" PRIx64 " belongs elsewhere "
				    "(generation, number or page size differ)", db, g.gen, s);
			goto out;
		}
		res->segments++;
		for (size_t k = 0; k < seg.ntx; k++) {
			if (seg.tx[k].time_ns > at_ns) {
				done = true;
				break;
			}
			if ((rc = cf_wal_apply_tx(fd, tmp, seg.page_size, &seg.tx[k]))) {
				cf_seg_release(&seg);
				goto out;
			}
			res->ntx++;
			res->state_ns = seg.tx[k].time_ns;
		}
		cf_seg_release(&seg);
	}
	if (fsync(fd) < 0) {
		rc = cf_err_errno("fsync %s", tmp);
		goto out;
	}
	close(fd);
	fd = -1;
	if ((rc = integrity(tmp)))
		goto out;
	if (rename(tmp, target) < 0) {
		rc = cf_err_errno("rename %s to %s", tmp, target);
		goto out;
	}
	free(tmp);
	tmp = NULL;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink_side(tmp);
		free(tmp);
	}
	cf_buf_release(&plain);
	cf_snapshot_release(&snap);
	cf_seg_gen_release(&g);
	free(gens);
	return rc;
}
