/*
 * replicate.c - the WAL follower (replicate.h has the model and invariants).
 */
#include "sources/replicate.h"
#include "repo/segment.h"
#include "engine/backup.h"
#include "common/array.h"
#include "common/error.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/* ---- the WAL format ---- */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void cf_wal_checksum(bool big_endian, const uint8_t *p, size_t n, uint32_t *s1, uint32_t *s2)
{
	uint32_t a = *s1, b = *s2;
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint32_t x = big_endian ? be32(p + i) : cf_get_le32(p + i);
		uint32_t y = big_endian ? be32(p + i + 4) : cf_get_le32(p + i + 4);
		a += x + b;
		b += y + a;
	}
	*s1 = a;
	*s2 = b;
}

int cf_wal_header(struct cf_wal *w, const uint8_t h[CF_WAL_HDR])
{
	uint32_t magic = be32(h), ps = be32(h + 8), s1 = 0, s2 = 0;
	memset(w, 0, sizeof(*w));
	if ((magic & ~1u) != 0x377f0682)
		return cf_err(CF_ECORRUPT, "WAL header: bad magic %08" PRIx32, magic);
	if (be32(h + 4) != 3007000)
		return cf_err(CF_ECORRUPT, "WAL header: unknown version %" PRIu32, be32(h + 4));
	/* page size 65536 is stored as 1 in the database header, but as itself here */
	if (ps < 512 || ps > 65536 || (ps & (ps - 1)))
		return cf_err(CF_ECORRUPT, "WAL header: bad page size %" PRIu32, ps);
	w->big_endian = magic & 1;
	cf_wal_checksum(w->big_endian, h, 24, &s1, &s2);
	if (s1 != be32(h + 24) || s2 != be32(h + 28))
		return cf_err(CF_ECORRUPT, "WAL header: checksum mismatch");
	w->page_size = ps;
	w->ckpt_seq = be32(h + 12);
	w->salt1 = be32(h + 16);
	w->salt2 = be32(h + 20);
	w->ck1 = s1;
	w->ck2 = s2;
	return CF_OK;
}

bool cf_wal_frame(struct cf_wal *w, const uint8_t *f, uint32_t *pgno, uint32_t *commit)
{
	uint32_t s1 = w->ck1, s2 = w->ck2;
	if (be32(f + 8) != w->salt1 || be32(f + 12) != w->salt2 || !be32(f))
		return false;
	cf_wal_checksum(w->big_endian, f, 8, &s1, &s2);
	cf_wal_checksum(w->big_endian, f + CF_WAL_FRAME_HDR, w->page_size, &s1, &s2);
	if (s1 != be32(f + 16) || s2 != be32(f + 20))
		return false;
	w->ck1 = s1;
	w->ck2 = s2;
	*pgno = be32(f);
	*commit = be32(f + 4);
	return true;
}

#include "repo/segment.h"

int cf_wal_apply_tx(int fd, const char *label, uint32_t page_size, const struct cf_seg_tx *tx)
{
	for (uint32_t i = 0; i < tx->nframes; i++) {
		off_t off = (off_t)(tx->frames[i].pgno - 1) * page_size;
		if (cf_pwrite_full(fd, tx->frames[i].page, page_size, off) < 0)
			return cf_err_errno("write %s", label);
	}
	if (ftruncate(fd, (off_t)tx->db_pages * page_size) < 0)
		return cf_err_errno("truncate %s", label);
	return CF_OK;
}

/* ---- one replicated database ---- */

struct rdb {
	char *path;               /* absolute, as given (realpath) */
	char *wal_path;
	char db[CF_SEG_DB_HEX], gen[CF_SEG_GEN_HEX];
	dev_t dev;
	ino_t ino;
	sqlite3 *rd[2];           /* read-transaction holders, one at a time (two while moving) */
	int cur;
	sqlite3 *ck;              /* checkpoints, journal mode */
	int walfd;
	/* how far the WAL has been read: whole transactions only */
	bool have_hdr;
	uint8_t hdr[CF_WAL_HDR];
	struct cf_wal w;
	uint64_t frames;          /* frames of this WAL cycle read (committed ones) */
	uint32_t db_pages;        /* the database's size after the last transaction read */
	/* read, not yet stored */
	struct cf_buf seg;
	uint32_t ntx;
	uint64_t seq;             /* the last segment sealed (stored or queued) */
	int64_t seg_first_ns;     /* when the first transaction of seg was read */
	/* sealed segments the store has not taken yet (it failed), oldest
	 * first, in memory: at most queue_max bytes (cf_replicate_opts) */
	struct qseg { uint64_t seq; int64_t first_ns; struct cf_buf buf; } *q;
	size_t nq, qcap;
	uint64_t qbytes;
	int64_t last_upload_ns;   /* when the store last took a segment, 0 = not yet */
	int64_t lost_ns;          /* the oldest transaction dropped by an overflow, 0 = none */
	const char *needs_base;   /* not following (outage, failed base): why a generation is due */
	double retry_at;          /* monotonic time of the next attempt at one */
	bool failing;             /* the store failed since it last worked (warned once) */
	char err[512];            /* that failure */
	unsigned base_seen;       /* *base_request as last acted on */
	uint64_t since_base;      /* bytes of frames since the base */
	bool dirty;               /* read something since the last checkpoint */
	const char *new_gen;      /* reason to start a new generation, else NULL */
	/* the transaction being read */
	struct cf_buf txpages;
	uint32_t *txpg;
	size_t txn, txcap;
	uint8_t *frame;           /* one frame's bytes */
};

static int sq_exec(sqlite3 *db, const char *path, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = cf_err(CF_EDB, "sqlite %s: %s: %s", path, sql, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return rc;
	}
	return CF_OK;
}

static int begin_read(struct rdb *d, int k)
{
	/* BEGIN is deferred: the SELECT takes the read lock (a WAL snapshot) */
	return sq_exec(d->rd[k], d->path, "BEGIN; SELECT count(*) FROM sqlite_master;");
}

static void end_read(struct rdb *d, int k)
{
	if (d->rd[k] && !sqlite3_get_autocommit(d->rd[k]))
		sqlite3_exec(d->rd[k], "ROLLBACK", NULL, NULL, NULL);
}

static void close_db(struct rdb *d)
{
	for (int k = 0; k < 2; k++) {
		end_read(d, k);
		sqlite3_close(d->rd[k]);
		d->rd[k] = NULL;
	}
	sqlite3_close(d->ck);
	d->ck = NULL;
	if (d->walfd >= 0)
		close(d->walfd);
	d->walfd = -1;
}

static int open_conn(struct rdb *d, sqlite3 **out)
{
	if (sqlite3_open_v2(d->path, out, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		int rc = cf_err(CF_EDB, "sqlite %s: %s", d->path, *out ? sqlite3_errmsg(*out) : "out of memory");
		sqlite3_close(*out);
		*out = NULL;
		return rc;
	}
	sqlite3_busy_timeout(*out, 10000);
	/* Closing the last connection of a database deletes its -wal by name.
	 * Ours may close after the file was replaced, when that name is the
	 * new database's live WAL: keep it (the application's own close still
	 * removes it). */
	int persist = 1;
	sqlite3_file_control(*out, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	return CF_OK;
}

static int open_db(struct rdb *d)
{
	struct stat st;
	sqlite3_stmt *q = NULL;
	int rc;

	if (stat(d->path, &st) < 0)
		return cf_err_errno("sqlite %s", d->path);
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	if ((rc = open_conn(d, &d->ck)) || (rc = open_conn(d, &d->rd[0])) || (rc = open_conn(d, &d->rd[1])))
		return rc;
	/* WAL mode (persistent: it is written in the database header) */
	if (sqlite3_prepare_v2(d->ck, "PRAGMA journal_mode=WAL", -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_step(q) != SQLITE_ROW) {
		rc = cf_err(CF_EDB, "sqlite %s: cannot switch to WAL mode: %s", d->path, sqlite3_errmsg(d->ck));
		sqlite3_finalize(q);
		return rc;
	}
	const char *mode = (const char *)sqlite3_column_text(q, 0);
	if (!mode || strcmp(mode, "wal")) {
		rc = cf_err(CF_EDB, "sqlite %s: cannot switch to WAL mode (it stays in %s mode)", d->path,
			    mode ? mode : "?");
		sqlite3_finalize(q);
		return rc;
	}
	sqlite3_finalize(q);
	/* the application checkpoints as it likes; only we must not lose frames */
	return CF_OK;
}

static void reset_wal_state(struct rdb *d)
{
	d->have_hdr = false;
	d->frames = 0;
	d->txn = 0;
	d->txpages.len = 0;
}

static int tx_add(struct rdb *d, uint32_t pgno, const uint8_t *page, uint32_t ps)
{
	int rc;
	if (d->txn == d->txcap) {
		size_t cap = d->txcap ? d->txcap * 2 : 64;
		uint32_t *nv = realloc(d->txpg, cap * sizeof(*nv));
		if (!nv)
			return cf_err(CF_ENOMEM, "out of memory");
		d->txpg = nv;
		d->txcap = cap;
	}
	if ((rc = cf_buf_add(&d->txpages, page, ps)))
		return rc;
	d->txpg[d->txn++] = pgno;
	return CF_OK;
}

/* Read the WAL from where we are to the end of the last whole transaction. */
static int scan(struct rdb *d)
{
	uint8_t h[CF_WAL_HDR];
	struct stat st;
	int rc;

	if (d->walfd < 0) {
		d->walfd = open(d->wal_path, O_RDONLY | O_CLOEXEC);
		if (d->walfd < 0)
			return errno == ENOENT ? CF_OK : cf_err_errno("open %s", d->wal_path);
	}
	if (fstat(d->walfd, &st) < 0)
		return cf_err_errno("stat %s", d->wal_path);
	if (st.st_size < CF_WAL_HDR)
		return CF_OK;  /* truncated by a checkpoint: the next writer writes a new header */
	if (cf_pread_full(d->walfd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return cf_err_errno("read %s", d->wal_path);
	if (!d->have_hdr || memcmp(h, d->hdr, sizeof(h))) {
		struct cf_wal w;
		if (cf_wal_header(&w, h) != CF_OK) {
			cf_err_clear();
			return CF_OK; /* being written: look again at the next poll */
		}
		/* A new WAL cycle.  Every frame of the old one was read (the
		 * read transaction held keeps SQLite from restarting the WAL
		 * over frames not read), so the new one continues the log. */
		if (d->have_hdr && w.page_size != d->w.page_size) {
			d->new_gen = "page-size";
			return CF_OK;
		}
		memcpy(d->hdr, h, sizeof(h));
		d->w = w;
		d->have_hdr = true;
		d->frames = 0;
		d->txn = 0;
		d->txpages.len = 0;
	}
	uint32_t ps = d->w.page_size;
	size_t fsz = CF_WAL_FRAME_HDR + (size_t)ps;
	if (!d->frame && !(d->frame = malloc(CF_WAL_FRAME_HDR + 65536)))
		return cf_err(CF_ENOMEM, "out of memory");
	struct cf_wal w = d->w;   /* advanced frame by frame, kept at commits */
	uint64_t n = d->frames;
	d->txn = 0;
	d->txpages.len = 0;
	for (;;) {
		off_t off = CF_WAL_HDR + (off_t)(n * fsz);
		uint32_t pgno, commit;
		if (off + (off_t)fsz > st.st_size) {
			if (fstat(d->walfd, &st) < 0)
				return cf_err_errno("stat %s", d->wal_path);
			if (off + (off_t)fsz > st.st_size)
				break;
		}
		if (cf_pread_full(d->walfd, d->frame, fsz, off) != (ssize_t)fsz)
			break;
		if (!cf_wal_frame(&w, d->frame, &pgno, &commit))
			break;
		n++;
		if ((rc = tx_add(d, pgno, d->frame + CF_WAL_FRAME_HDR, ps)))
			return rc;
		if (!commit)
			continue;
		if (!d->seg.len) {
			if ((rc = cf_seg_begin(&d->seg, d->gen, d->seq + 1, ps)))
				return rc;
			d->seg_first_ns = cf_now_ns();
		}
		if ((rc = cf_seg_add_tx(&d->seg, cf_now_ns(), commit, (uint32_t)d->txn, d->txpg,
					d->txpages.data, ps)))
			return rc;
		d->ntx++;
		d->since_base += d->txn * (uint64_t)ps;
		if (d->db_pages && commit < d->db_pages && !d->new_gen)
			d->new_gen = "shrunk";  /* VACUUM: start again from a smaller base */
		d->db_pages = commit;
		d->frames = n;
		d->w = w;
		d->dirty = true;
		d->txn = 0;
		d->txpages.len = 0;
	}
	d->txn = 0;
	d->txpages.len = 0;
	return CF_OK;
}

/* Close the segment being built and queue it. */
static int seal(struct rdb *d)
{
	int rc;
	if (!d->ntx)
		return CF_OK;
	if ((rc = CF_GROW(d->q, d->nq + 1, d->qcap)))
		return rc;
	cf_seg_finish(&d->seg, d->ntx);
	struct qseg *e = &d->q[d->nq++];
	e->seq = ++d->seq;
	e->first_ns = d->seg_first_ns;
	e->buf = d->seg;  /* moved */
	memset(&d->seg, 0, sizeof(d->seg));
	d->qbytes += e->buf.len;
	d->ntx = 0;
	return CF_OK;
}

static void drop_queue(struct rdb *d)
{
	for (size_t i = 0; i < d->nq; i++)
		cf_buf_release(&d->q[i].buf);
	d->nq = 0;
	d->qbytes = 0;
	cf_buf_reset(&d->seg);
	d->ntx = 0;
}

/* Store the queued segments, oldest first (a gap would end the generation
 * for restore), up to the first failure. */
static int drain(struct cf_repo *r, struct rdb *d)
{
	int rc;
	while (d->nq) {
		struct qseg *e = &d->q[0];
		if ((rc = cf_seg_put(r, d->db, d->gen, e->seq, e->buf.data, e->buf.len)))
			return cf_err_prefix(rc, "sqlite %s: storing segment %" PRIu64 ": ", d->path, e->seq);
		cf_info("sqlite %s: segment %" PRIu64 " stored (%zu bytes)", d->path, e->seq, e->buf.len);
		d->last_upload_ns = cf_now_ns();
		d->qbytes -= e->buf.len;
		cf_buf_release(&e->buf);
		memmove(d->q, d->q + 1, --d->nq * sizeof(*d->q));
	}
	return CF_OK;
}

/* Store what was read as the next segment (and what is queued before it). */
static int flush(struct cf_repo *r, struct rdb *d)
{
	int rc = seal(d);
	return rc ? rc : drain(r, d);
}

/* Hold a read transaction on the other connection, read the WAL up to what
 * it sees (at least), then let go of the old one. */
static int move_read(struct rdb *d)
{
	int k = !d->cur, rc;
	if ((rc = begin_read(d, k)) || (rc = scan(d)))
		return rc;
	end_read(d, d->cur);
	d->cur = k;
	return CF_OK;
}

static int checkpoint(struct rdb *d)
{
	int log = 0, done = 0, rc;
	if (!d->dirty)
		return CF_OK;
	if ((rc = move_read(d)))
		return rc;
	int s = sqlite3_wal_checkpoint_v2(d->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
	if (s != SQLITE_OK && s != SQLITE_BUSY)
		return cf_err(CF_EDB, "sqlite %s: checkpoint: %s", d->path, sqlite3_errmsg(d->ck));
	/* a fresh read transaction that starts with everything backfilled
	 * reads the database file only, so the next writer may restart the WAL */
	if ((rc = move_read(d)))
		return rc;
	d->dirty = false;
	return CF_OK;
}

struct file_src {
	const char *path;
};

static int produce_file(void *ctx, cf_sink_fn sink, void *sink_ctx)
{
	struct file_src *fs = ctx;
	uint8_t *buf = malloc(1 << 20);
	int fd = open(fs->path, O_RDONLY | O_CLOEXEC), rc = CF_OK;
	ssize_t got;
	if (!buf || fd < 0) {
		rc = buf ? cf_err_errno("open %s", fs->path) : cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	while ((got = cf_read_full(fd, buf, 1 << 20)) > 0)
		if ((rc = sink(sink_ctx, buf, (size_t)got)))
			goto out;
	if (got < 0)
		rc = cf_err_errno("read %s", fs->path);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* Copy the database inside the read transaction held on rd[cur]. */
static int base_copy(struct rdb *d, const char *tmp_dir, char **tmp_out)
{
	sqlite3 *dst = NULL;
	sqlite3_backup *bk = NULL;
	char *tmp = NULL;
	int fd, rc;

	if (asprintf(&tmp, "%s/coffer-replica-XXXXXX", tmp_dir) < 0)
		return cf_err(CF_ENOMEM, "out of memory");
	if ((fd = mkstemp(tmp)) < 0) {
		rc = cf_err_errno("base copy temp file in %s", tmp_dir);
		free(tmp);
		return rc;
	}
	close(fd);
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		rc = cf_err(CF_EDB, "sqlite %s: %s", tmp, dst ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	/* the source is in a read transaction: the backup reads in it */
	if (!(bk = sqlite3_backup_init(dst, "main", d->rd[d->cur], "main"))) {
		rc = cf_err(CF_EDB, "sqlite %s: %s", d->path, sqlite3_errmsg(dst));
		goto out;
	}
	int s = sqlite3_backup_step(bk, -1);
	sqlite3_backup_finish(bk);
	if (s != SQLITE_DONE) {
		rc = cf_err(CF_EDB, "sqlite %s: base copy: %s", d->path, sqlite3_errstr(s));
		goto out;
	}
	rc = sqlite3_close(dst) == SQLITE_OK ? CF_OK : cf_err(CF_EDB, "sqlite %s: closing the copy failed", tmp);
	dst = NULL;
out:
	sqlite3_close(dst);
	if (rc) {
		char side[4200];
		unlink(tmp);
		snprintf(side, sizeof(side), "%s-wal", tmp);
		unlink(side);
		snprintf(side, sizeof(side), "%s-shm", tmp);
		unlink(side);
		free(tmp);
	} else {
		*tmp_out = tmp;
	}
	return rc;
}

static int page_size_of(struct rdb *d, uint32_t *ps)
{
	sqlite3_stmt *q = NULL;
	int rc = CF_OK;
	if (sqlite3_prepare_v2(d->rd[d->cur], "PRAGMA page_size", -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_step(q) != SQLITE_ROW)
		rc = cf_err(CF_EDB, "sqlite %s: page_size: %s", d->path, sqlite3_errmsg(d->rd[d->cur]));
	else
		*ps = (uint32_t)sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return rc;
}

/* Start a generation: open the database, hold a read transaction, copy it,
 * store the copy as a snapshot and the generation record, and read the WAL
 * as it is (its frames become the first segment). */
static int new_generation(struct cf_repo *r, const struct cf_replicate_opts *o, struct rdb *d,
			  const char *reason)
{
	struct cf_snapshot snap = { 0 };
	struct cf_seg_gen g = { 0 };
	char *tmp = NULL, dir[4096], host[256];
	struct stat st;
	int rc;

	close_db(d);
	reset_wal_state(d);
	drop_queue(d);
	d->seq = 0;
	d->since_base = 0;
	d->db_pages = 0;
	d->dirty = false;
	d->new_gen = NULL;
	d->cur = 0;
	if ((rc = open_db(d)) || (rc = begin_read(d, 0)))
		goto out;
	int64_t t0 = cf_now_ns();
	cf_seg_gen_new(t0, d->gen);
	snprintf(dir, sizeof(dir), "%s", d->path);
	*strrchr(dir, '/') = 0;
	if ((rc = page_size_of(d, &g.page_size)) ||
	    (rc = base_copy(d, o->tmp_dir ? o->tmp_dir : (dir[0] ? dir : "/"), &tmp)))
		goto out;
	/* the WAL as the held transaction sees it, and perhaps a little more;
	 * its transactions from before the base do not count as shrinking it */
	if ((rc = scan(d)))
		goto out;
	d->new_gen = NULL;
	if (stat(d->path, &st) < 0) {
		rc = cf_err_errno("sqlite %s", d->path);
		goto out;
	}
	struct file_src fs = { tmp };
	struct cf_stream_source ss = { .path = d->path, .produce = produce_file, .ctx = &fs,
				       .mode = st.st_mode & 07777, .has_owner = true, .uid = st.st_uid,
				       .gid = st.st_gid, .mtime_ns = t0 };
	struct cf_snapshot desc = { 0 };
	const char *tags[] = { "sqlite-replica" };
	if ((rc = cf_snapshot_add_source(&desc, CF_SOURCE_SQLITE, d->path, NULL, NULL)))
		goto out;
	struct cf_backup_opts bo = { .streams = &ss, .nstreams = 1, .host = o->host, .tags = tags, .ntags = 1,
				     .time_ns = t0, .sources = desc.sources, .nsources = desc.nsources,
				     .no_parent = true };
	/* a prune since the last base may have removed packs the index still
	 * names: deduplicating against them would make a broken snapshot */
	if ((rc = cf_repo_lock(r, false, o->retry_lock)) == CF_OK) {
		if ((rc = cf_repo_reload_index(r)) == CF_OK)
			rc = cf_backup_run(r, &bo, &snap);
		cf_seg_unlock(r);
	}
	cf_snapshot_release(&desc);
	if (rc && rc != CF_EPARTIAL) {
		rc = cf_err_prefix(rc, "sqlite %s: base copy: ", d->path);
		goto out;
	}
	if (o->host)
		snprintf(host, sizeof(host), "%s", o->host);
	else if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = 0;
	memcpy(g.gen, d->gen, CF_SEG_GEN_HEX);
	g.path = d->path;
	g.hostname = host;
	g.time_ns = t0;
	memcpy(g.snapshot, snap.id, CF_ID_LEN);
	g.reason = (char *)reason;
	if ((rc = cf_seg_gen_put(r, d->db, &g)))
		goto out;
	char sid[CF_ID_HEX];
	cf_hex(snap.id, CF_ID_LEN, sid);
	cf_log(1, "sqlite %s: generation %s started (%s), base copy in snapshot %.8s", d->path, d->gen,
	       reason, sid);
	rc = CF_OK;
out:
	cf_snapshot_release(&snap);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return rc;
}

/* Was the file at the path replaced (another inode), or removed? */
static bool replaced(struct rdb *d)
{
	struct stat st;
	return stat(d->path, &st) < 0 || st.st_ino != d->ino || st.st_dev != d->dev;
}

static void rdb_release(struct rdb *d)
{
	close_db(d);
	free(d->path);
	free(d->wal_path);
	drop_queue(d);
	free(d->q);
	cf_buf_release(&d->seg);
	cf_buf_release(&d->txpages);
	free(d->txpg);
	free(d->frame);
}

/* The oldest transaction read but not in the store, 0 if none. */
static int64_t pending_since(const struct rdb *d)
{
	int64_t t = d->lost_ns;
	if (d->nq && (!t || d->q[0].first_ns < t))
		t = d->q[0].first_ns;
	if (d->ntx && (!t || d->seg_first_ns < t))
		t = d->seg_first_ns;
	return t;
}

static void report(const struct cf_replicate_opts *o, size_t i, const struct rdb *d, const char *state)
{
	if (!o->status)
		return;
	struct cf_replicate_status st = {
		.path = d->path, .gen = d->gen, .last_upload_ns = d->last_upload_ns,
		.pending_since_ns = pending_since(d), .queued_bytes = d->qbytes + d->seg.len,
		.queued_segments = d->nq,
		.state = state ? state : d->needs_base ? "outage" : d->failing ? "queued" : "following",
		.error = d->failing || d->needs_base ? d->err : NULL,
	};
	o->status(o->status_ctx, i, &st);
}

/* The store refused a segment or a base copy: keep what was read queued,
 * up to the bound; past it drop it and let go of the database (no read
 * transaction held, so the application's checkpoints run and its WAL
 * stays bounded) until a new generation can be started. */
static void store_failed(const struct cf_replicate_opts *o, size_t i, struct rdb *d, int rc, uint64_t queue_max,
			 double retry)
{
	snprintf(d->err, sizeof(d->err), "%s", cf_errmsg(rc));
	cf_err_clear();
	if (!d->failing)
		cf_warn("%s; what was read stays queued in memory (up to %" PRIu64 " bytes) and is retried every interval",
			d->err, queue_max);
	d->failing = true;
	if (d->needs_base || d->qbytes + d->seg.len <= queue_max)
		return;
	d->lost_ns = pending_since(d);
	cf_warn("sqlite %s: %" PRIu64 " bytes queued exceed the bound (%" PRIu64 " bytes): dropped, the read "
		"transaction released; a new generation starts when the store takes one (the transactions since "
		"the last stored segment cannot be restored)", d->path, d->qbytes + d->seg.len, queue_max);
	close_db(d);
	reset_wal_state(d);
	drop_queue(d);
	d->needs_base = "outage";
	d->retry_at = cf_now_mono() + retry;
	report(o, i, d, NULL);
}

/* Start a generation, or note why it could not start and when to retry. */
static void try_generation(struct cf_repo *r, const struct cf_replicate_opts *o, size_t i, struct rdb *d,
			   const char *reason, double retry)
{
	int64_t lost = d->lost_ns ? d->lost_ns : pending_since(d);
	struct cf_seg_listing *probe = NULL;
	size_t nprobe = 0;
	int rc = CF_OK;
	/* after a failure, ask the store first (one listing): a base copy
	 * holds a read transaction, which a dead store should not prolong */
	if (d->needs_base)
		rc = cf_seg_list(r, d->db, &probe, &nprobe);
	free(probe);
	if (rc == CF_OK)
		rc = new_generation(r, o, d, reason);
	if (rc == CF_OK) {
		if (d->failing || d->needs_base)
			cf_warn("sqlite %s: replicating again (generation %s)", d->path, d->gen);
		d->failing = false;
		d->needs_base = NULL;
		d->lost_ns = 0;
		d->err[0] = 0;
		return;
	}
	snprintf(d->err, sizeof(d->err), "%s", cf_errmsg(rc));
	cf_err_clear();
	cf_warn("%s; retrying in %.0f s", d->err, retry);
	close_db(d);
	reset_wal_state(d);
	drop_queue(d);
	d->failing = true;
	d->needs_base = reason;
	d->lost_ns = lost;
	d->retry_at = cf_now_mono() + retry;
	report(o, i, d, NULL);
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

int cf_replicate_run(struct cf_repo *r, const struct cf_replicate_opts *o, volatile sig_atomic_t *stop)
{
	double interval = o->interval > 0 ? o->interval : 1.0;
	double poll = o->poll > 0 ? o->poll : 0.1;
	double retry = interval * 5 > 1 ? interval * 5 : 1;
	uint64_t base_bytes = o->base_bytes ? o->base_bytes : (uint64_t)256 << 20;
	uint64_t queue_max = o->queue_bytes ? o->queue_bytes : CF_REPLICATE_QUEUE_DEFAULT;
	struct rdb *dbs = calloc(o->npaths ? o->npaths : 1, sizeof(*dbs));
	int rc = CF_OK;

	if (poll > interval)
		poll = interval;
	if (!dbs)
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < o->npaths; i++) {
		dbs[i].walfd = -1;
		char abs[PATH_MAX];
		if (!realpath(o->paths[i], abs)) {
			rc = cf_err_errno("sqlite %s", o->paths[i]);
			goto out;
		}
		if (!(dbs[i].path = strdup(abs)) || asprintf(&dbs[i].wal_path, "%s-wal", abs) < 0) {
			dbs[i].wal_path = NULL;
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = cf_seg_db_key(r, abs, dbs[i].db)))
			goto out;
		dbs[i].base_seen = o->base_seen;
	}
	for (size_t i = 0; i < o->npaths && !*stop; i++) {
		if ((rc = new_generation(r, o, &dbs[i], "start")))
			goto out;
		report(o, i, &dbs[i], NULL);
	}
	double next_sync = cf_now_mono() + interval;
	while (!*stop) {
		sleep_s(poll);
		bool sync = cf_now_mono() >= next_sync;
		unsigned want_base = o->base_request ? atomic_load(o->base_request) : 0;
		for (size_t i = 0; i < o->npaths; i++) {
			struct rdb *d = &dbs[i];
			if (d->needs_base) {
				/* not following: a new generation when it is time to try */
				if (sync && cf_now_mono() >= d->retry_at)
					try_generation(r, o, i, d, d->needs_base, retry);
				if (sync)
					report(o, i, d, NULL);
				continue;
			}
			if ((rc = scan(d)))
				goto out;
			if (d->seg.len >= CF_SEG_MAX / 2) {
				/* a batch is closed at CF_SEG_MAX: store it even between intervals */
				if ((rc = flush(r, d)))
					store_failed(o, i, d, rc, queue_max, retry);
				rc = CF_OK;
				if (d->needs_base)
					continue;
			}
			if (!sync)
				continue;
			/* a replaced file first: SQLite fails on the old one's
			 * connections once its -wal and -shm are gone */
			if (replaced(d))
				d->new_gen = "replaced";
			if ((rc = flush(r, d))) {
				store_failed(o, i, d, rc, queue_max, retry);
				rc = CF_OK;
				if (d->needs_base)
					continue;
			} else if (d->failing) {
				cf_warn("sqlite %s: the store works again: every queued segment is stored", d->path);
				d->failing = false;
				d->err[0] = 0;
			}
			/* the frames read are stored or queued: let the WAL be backfilled */
			if (!d->new_gen && (rc = checkpoint(d)))
				goto out;
			if (d->nq) {
				/* new generations wait until the queue is stored */
				report(o, i, d, NULL);
				continue;
			}
			if (!d->new_gen && d->since_base > base_bytes)
				d->new_gen = "size";
			if (!d->new_gen && want_base != d->base_seen)
				d->new_gen = "backup";
			if (d->new_gen) {
				/* what the checkpoint's reads added belongs to this generation */
				if ((rc = flush(r, d))) {
					store_failed(o, i, d, rc, queue_max, retry);
					rc = CF_OK;
					report(o, i, d, NULL);
					continue;
				}
				d->base_seen = want_base;
				try_generation(r, o, i, d, d->new_gen, retry);
			}
			report(o, i, d, NULL);
		}
		if (sync)
			next_sync = cf_now_mono() + interval;
	}
	/* stopping: what was read is stored (one attempt: the store may be
	 * down), the signal that stopped the run notwithstanding */
	cf_interrupt_ignored = true;
	for (size_t i = 0; i < o->npaths; i++) {
		struct rdb *d = &dbs[i];
		if (!d->path || !d->rd[0] || d->needs_base)
			continue;
		if ((rc = scan(d)))
			goto out;
		if ((rc = flush(r, d))) {
			cf_warn("%s: %" PRIu64 " bytes of transactions not stored", cf_errmsg(rc), d->qbytes + d->seg.len);
			cf_err_clear();
			rc = CF_OK;
		}
		report(o, i, d, "stopped");
	}
out:
	cf_interrupt_ignored = false;
	for (size_t i = 0; i < o->npaths; i++)
		rdb_release(&dbs[i]);
	free(dbs);
	return rc;
}
