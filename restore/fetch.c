/*
 * fetch.c - phase 3, the scheduler: which bytes of which pack, read when.
 *
 * rs_plan_writes() lists every use of a blob (a file and an offset in it)
 * and sorts the uses by pack and offset; packs come in the order the files
 * first need them, so files complete early and few are open at a time.
 * make_ranges() cuts each pack's uses into ranges: runs of needed blobs
 * within RANGE_GAP of each other, up to c->range_max bytes.  Each pack is
 * read once, each blob opened once and written to every use (rs_write_use).
 *
 * Two pipelines, both on the work queue (common/pool.h, one long job per
 * thread):
 *   - held ranges (a local store, or one that does not stream): fetching
 *     threads read the ranges in order into a bounded pool of buffers
 *     (struct rslot, one per thread) while writing threads take them in the
 *     same order, open and write: reading runs ahead of the writers instead
 *     of between their writes (measured: doc/benchmarks.md).  A buffer goes
 *     to the next range under rg_mu, so the first range not yet written
 *     always has one or gets the next that is freed: no deadlock, whatever
 *     the number of threads that started.
 *   - streamed ranges (S3): each thread asks for a whole range at once and
 *     opens and writes each blob as soon as its last byte arrived; memory is
 *     one sealed and one opened blob per thread.
 * A fetch's failure reaches the blobs' files with its message as a struct
 * cf_status (the fetch ran in another thread).  A blob that fails where the
 * index put it is read from another copy if the index lists one.
 * Interrupted (c->stop): the rest is left unwritten; the run removes the
 * temporary files of what was not finished.
 */
#include "restore/restore_int.h"
#include "common/array.h"
#include "common/pool.h"

#include <stdlib.h>
#include <string.h>

/* A range covers needed blobs within RANGE_GAP of each other (reading a
 * small gap is cheaper than another request), up to what one thread holds
 * in memory; a local read costs a system call, a remote one a round trip. */
#define RANGE_MAX (4u << 20)
#define RANGE_MAX_LOCAL (2u << 20)
/* a streamed range is not held in memory: a whole pack (or more) at once */
#define RANGE_MAX_STREAM (64u << 20)
#define RANGE_GAP (256u << 10)
#define FETCH_LOCAL 2  /* fetching threads: local reads in flight */
#define FETCH_REMOTE 6 /* remote requests in flight (the S3 connections' default) */

void rs_fetch_setup(struct rctx *c)
{
	bool local = !cf_be_remote(cf_repo_backend(c->repo));
	c->nfetch = local ? FETCH_LOCAL : FETCH_REMOTE;
	c->streaming = !local && cf_be_streams(cf_repo_backend(c->repo));
	if (c->streaming && c->o->threads > 0) /* its threads fetch and write */
		c->nfetch = c->o->threads;
	c->range_max = local ? RANGE_MAX_LOCAL : c->streaming ? RANGE_MAX_STREAM : RANGE_MAX;
}

void rs_set_stop(struct rctx *c)
{
	pthread_mutex_lock(&c->rg_mu);
	atomic_store(&c->stop, true);
	pthread_cond_broadcast(&c->rg_cond);
	pthread_mutex_unlock(&c->rg_mu);
}

/* A blob that failed at u's place (brc): read it from another place the
 * index lists it at (a replayed index, a second writer's copy), if any.
 * CF_OK with the blob in plain, or brc. */
static int other_copy(struct rctx *c, const struct ruse *u, struct cf_buf *plain, int brc)
{
	if (!brc || brc == CF_ENOMEM || brc == CF_EINTR || atomic_load(&c->stop))
		return brc;
	if (cf_repo_load_blob_except(c->repo, CF_BLOB_DATA, u->id, u->pack, plain) == CF_OK)
		return CF_OK;
	cf_err_clear();
	return brc;
}

/* Open u's blob from its sealed bytes into plain, or another copy of it.
 * *st: CF_OK, or the failure and its message (kept apart: each file it
 * fails adds its name). */
static void open_use(struct rctx *c, const struct ruse *u, const uint8_t *sealed,
		     struct cf_buf *plain, struct cf_status *st)
{
	struct cf_blob_loc loc;
	memcpy(loc.pack, u->pack, CF_ID_LEN);
	loc.offset = u->offset;
	loc.length = u->length;
	loc.rawlen = u->rawlen;
	loc.flags = u->flags;
	st->code = CF_OK;
	st->msg[0] = 0;
	cf_status_keep(st, cf_repo_open_blob(c->repo, CF_BLOB_DATA, u->id, &loc, sealed, plain));
	st->code = other_copy(c, u, plain, st->code);
}

/* ---------- held ranges: fetching threads read ahead of writing threads ---------- */

/* Take a free buffer of the pool and the next range (in this order, under
 * one lock), fetch the range into the buffer, which its writer gives back. */
static int fetch_job(void *arg, unsigned worker)
{
	struct rctx *c = arg;
	struct cf_backend *be = cf_repo_backend(c->repo);
	(void)worker;
	for (;;) {
		if (cf_interrupted)
			rs_set_stop(c);
		pthread_mutex_lock(&c->rg_mu);
		while (!c->nfree && !atomic_load(&c->stop))
			pthread_cond_wait(&c->rg_cond, &c->rg_mu);
		size_t k = c->fnext;
		if (atomic_load(&c->stop) || k >= c->nranges) {
			pthread_mutex_unlock(&c->rg_mu);
			break;
		}
		c->fnext++;
		int b = c->freebufs[--c->nfree];
		pthread_mutex_unlock(&c->rg_mu);

		struct rrange *rr = &c->ranges[k];
		struct rslot *slot = &c->slots[b];
		char hex[CF_ID_HEX], ppath[128];
		cf_hex(c->uses[rr->i].pack, CF_ID_LEN, hex);
		cf_backend_pack_path(hex, ppath, sizeof(ppath));
		int frc = cf_be_get_range(be, ppath, rr->rs, (size_t)(rr->re - rr->rs), &slot->sealed);
		if (frc == CF_ENOENT)
			frc = cf_err(CF_ECORRUPT, "pack %s is missing", hex);
		pthread_mutex_lock(&c->rg_mu);
		slot->st.code = CF_OK;
		cf_status_keep(&slot->st, frc);
		rr->buf = b;
		rr->ready = true;
		pthread_cond_broadcast(&c->rg_cond);
		pthread_mutex_unlock(&c->rg_mu);
	}
	return CF_OK;
}

/* Open the blobs of one fetched range (or fail them with the fetch's error)
 * and write each to every place that holds it. */
static void write_range(struct rctx *c, const struct rrange *rr, const struct rslot *slot,
			struct cf_buf *plain)
{
	struct cf_status bst = CF_STATUS_INIT;
	for (size_t k = rr->i; k < rr->j; k++) {
		const struct ruse *u = &c->uses[k];
		if (k == rr->i || u->offset != c->uses[k - 1].offset) {
			if (slot->st.code) {
				bst = slot->st;
				bst.code = other_copy(c, u, plain, bst.code);
			} else {
				open_use(c, u, slot->sealed.data + (u->offset - rr->rs), plain, &bst);
			}
		}
		rs_write_use(c, u, plain->data, plain->len, &bst);
	}
}

/* Write the ranges in their order, each once fetched. */
static int write_job(void *arg, unsigned worker)
{
	struct rctx *c = arg;
	struct cf_buf plain = CF_BUF_INIT;
	(void)worker;
	for (;;) {
		if (cf_interrupted)
			rs_set_stop(c);
		size_t k = atomic_fetch_add(&c->next, 1);
		if (k >= c->nranges || atomic_load(&c->stop))
			break;
		struct rrange *rr = &c->ranges[k];
		pthread_mutex_lock(&c->rg_mu);
		while (!rr->ready && !atomic_load(&c->stop))
			pthread_cond_wait(&c->rg_cond, &c->rg_mu);
		bool ready = rr->ready;
		pthread_mutex_unlock(&c->rg_mu);
		if (!ready)
			break;
		if (!atomic_load(&c->stop))
			write_range(c, rr, &c->slots[rr->buf], &plain);
		pthread_mutex_lock(&c->rg_mu);
		c->freebufs[c->nfree++] = rr->buf;
		rr->buf = -1;
		pthread_cond_broadcast(&c->rg_cond);
		pthread_mutex_unlock(&c->rg_mu);
	}
	cf_buf_release(&plain);
	return CF_OK;
}

/* A pool of n threads each running fn(c) (one long job per thread: any one
 * of them alone would do all the work, so fewer threads only slow it).
 * CF_OK, or CF_ENOMEM when no thread could be started. */
static int start_jobs(struct cf_pool **out, const char *name, int n, cf_job_fn fn, struct rctx *c)
{
	int queued = 0;
	if (cf_pool_new(out, name, (unsigned)n, 0, 0) != CF_OK) {
		*out = NULL;
		return cf_err(CF_ENOMEM, "out of memory (cannot start threads)");
	}
	for (; queued < n; queued++)
		if (cf_pool_add(*out, fn, c, 0) != CF_OK)
			break;
	if (!queued) {
		cf_pool_free(*out);
		*out = NULL;
		return cf_err(CF_ENOMEM, "out of memory (cannot start threads)");
	}
	if (queued < n)
		cf_err_clear(); /* the threads that started do the work */
	return CF_OK;
}

/* ---------- streamed ranges (S3) ----------
 *
 * Each of nfetch threads takes the next range, asks for all of it at once
 * (ranges are whole packs, but for gaps over RANGE_GAP) and opens and writes
 * each blob as soon as its last byte has arrived: half the requests of
 * ranges held whole (doc/benchmarks.md). */
struct rstream {
	struct rctx *c;
	const struct rrange *rr;
	size_t k;              /* the use whose blob comes next */
	uint64_t pos;          /* pack offset of the next byte to arrive */
	struct cf_buf *sealed, *plain;
	struct cf_status bst;  /* the last blob's result */
};

/* Open the blob now whole in s->sealed and write it to its uses. */
static void stream_blob(struct rstream *s)
{
	struct rctx *c = s->c;
	const struct ruse *u = &c->uses[s->k];
	open_use(c, u, s->sealed->data, s->plain, &s->bst);
	uint32_t off = u->offset;
	for (; s->k < s->rr->j && c->uses[s->k].offset == off; s->k++)
		rs_write_use(c, &c->uses[s->k], s->plain->data, s->plain->len, &s->bst);
	cf_buf_reset(s->sealed);
}

/* The range's next n bytes: into the blob they belong to, gaps skipped. */
static int stream_bytes(const uint8_t *p, size_t n, void *ctx)
{
	struct rstream *s = ctx;
	struct rctx *c = s->c;
	if (cf_interrupted)
		rs_set_stop(c);
	if (atomic_load(&c->stop))
		return cf_err(CF_EINTR, "interrupted");
	while (n && s->k < s->rr->j) {
		const struct ruse *u = &c->uses[s->k];
		uint64_t bs = u->offset, be = bs + u->length, take;
		if (s->pos < bs) { /* a gap between needed blobs */
			take = bs - s->pos < n ? bs - s->pos : n;
		} else {
			take = be - s->pos < n ? be - s->pos : n;
			int rc = cf_buf_add(s->sealed, p, (size_t)take);
			if (rc)
				return rc;
		}
		s->pos += take, p += take, n -= (size_t)take;
		if (s->pos == be)
			stream_blob(s);
	}
	return CF_OK;
}

/* The blobs of a streamed range that did not arrive fail with the read's
 * error rc (unless another copy serves them). */
static void stream_failed(struct rstream *s, int rc)
{
	struct rctx *c = s->c;
	struct cf_status rst = CF_STATUS_INIT, ok = CF_STATUS_INIT;
	cf_status_keep(&rst, rc);
	int urc = rc;
	for (size_t first = s->k; s->k < s->rr->j; s->k++) {
		const struct ruse *u = &c->uses[s->k];
		if (s->k == first || u->offset != c->uses[s->k - 1].offset)
			urc = other_copy(c, u, s->plain, rc);
		rs_write_use(c, u, urc ? NULL : s->plain->data, urc ? 0 : s->plain->len,
			     urc ? &rst : &ok);
	}
}

static int stream_job(void *arg, unsigned worker)
{
	struct rctx *c = arg;
	struct cf_backend *be = cf_repo_backend(c->repo);
	struct cf_buf sealed = CF_BUF_INIT, plain = CF_BUF_INIT;
	struct rstream s = { .c = c, .sealed = &sealed, .plain = &plain };
	(void)worker;
	for (;;) {
		if (cf_interrupted)
			rs_set_stop(c);
		size_t k = atomic_fetch_add(&c->next, 1);
		if (k >= c->nranges || atomic_load(&c->stop))
			break;
		const struct rrange *rr = &c->ranges[k];
		s.rr = rr;
		s.k = rr->i;
		s.pos = rr->rs;
		char hex[CF_ID_HEX], ppath[128];
		cf_hex(c->uses[rr->i].pack, CF_ID_LEN, hex);
		cf_backend_pack_path(hex, ppath, sizeof(ppath));
		cf_buf_reset(&sealed);
		int rc = cf_be_get_range_stream(be, ppath, rr->rs, (size_t)(rr->re - rr->rs), stream_bytes, &s);
		if (rc == CF_ENOENT)
			rc = cf_err(CF_ECORRUPT, "pack %s is missing", hex);
		if (atomic_load(&c->stop))
			break; /* interrupted: the rest stays unwritten */
		if (rc)
			stream_failed(&s, rc);
	}
	cf_buf_release(&sealed);
	cf_buf_release(&plain);
	return CF_OK;
}

/* ---------- both ---------- */

/* c->ranges from c->groups */
static int make_ranges(struct rctx *c)
{
	for (size_t g = 0; g < c->ngroups; g++) {
		size_t end = c->groups[g].end;
		for (size_t i = c->groups[g].start; i < end;) {
			uint64_t rs = c->uses[i].offset, re = rs + c->uses[i].length;
			size_t j = i + 1;
			while (j < end && c->uses[j].offset <= re + RANGE_GAP &&
			       (c->uses[j].offset + (uint64_t)c->uses[j].length > re ?
				c->uses[j].offset + (uint64_t)c->uses[j].length : re) - rs <= c->range_max) {
				if (c->uses[j].offset + (uint64_t)c->uses[j].length > re)
					re = c->uses[j].offset + (uint64_t)c->uses[j].length;
				j++;
			}
			int rc = CF_GROW(c->ranges, c->nranges + 1, c->rangecap);
			if (rc)
				return rc;
			c->ranges[c->nranges++] = (struct rrange){ i, j, rs, re, -1, false };
			i = j;
		}
	}
	return CF_OK;
}

int rs_fetch_and_write(struct rctx *c)
{
	struct cf_pool *fp = NULL, *wp = NULL;
	int rc, nbufs = c->nthreads + c->nfetch;
	if ((rc = make_ranges(c)))
		return rc;
	atomic_store(&c->next, 0);
	if (c->streaming) {
		if ((rc = start_jobs(&fp, "restore", c->nfetch, stream_job, c)))
			return rc;
		rc = cf_pool_join(fp, CF_OK);
		cf_pool_free(fp);
		return rc;
	}
	if (!(c->slots = calloc((size_t)nbufs, sizeof(*c->slots))) ||
	    !(c->freebufs = calloc((size_t)nbufs, sizeof(*c->freebufs))))
		return cf_err(CF_ENOMEM, "out of memory");
	for (int i = 0; i < nbufs; i++) {
		c->slots[i].sealed = (struct cf_buf)CF_BUF_INIT;
		c->freebufs[c->nfree++] = i;
	}
	if (!(rc = start_jobs(&fp, "restore fetch", c->nfetch, fetch_job, c)) &&
	    (rc = start_jobs(&wp, "restore write", c->nthreads, write_job, c)))
		rs_set_stop(c); /* the fetching threads that did start */
	if (wp)
		rc = cf_pool_join(wp, rc);
	if (fp)
		rc = cf_pool_join(fp, rc);
	cf_pool_free(wp);
	cf_pool_free(fp);
	for (int i = 0; i < nbufs; i++)
		cf_buf_release(&c->slots[i].sealed);
	return rc;
}

static int use_cmp(const void *a, const void *b)
{
	const struct ruse *x = a, *y = b;
	int r = memcmp(x->pack, y->pack, CF_ID_LEN);
	if (r)
		return r;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->file < y->file ? -1 : x->file > y->file;
}

static int group_cmp(const void *a, const void *b)
{
	const struct rgroup *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* Where every blob of every file to write lies, grouped by pack, packs in
 * the order the files first need them (so files complete early and few are
 * open at a time). */
int rs_plan_writes(struct rctx *c, uint64_t *total)
{
	int rc;
	*total = 0;
	for (size_t i = 0; i < c->nfiles; i++) {
		struct rfile *f = &c->files[i];
		if (f->state != F_WRITE)
			continue;
		size_t mark = c->nuses;
		uint64_t off = 0;
		for (size_t b = 0; b < f->node.ncontent; b++) {
			struct cf_blob_loc loc;
			if ((rc = cf_repo_lookup(c->repo, CF_BLOB_DATA, f->node.content[b], &loc))) {
				if (rc == CF_ENOMEM)
					return rc;
				f->state = F_FAILED;
				rs_path_failed(c, f->path, cf_err_prefix(rc, "%s", f->path));
				c->nuses = mark;
				break;
			}
			if ((rc = CF_GROW(c->uses, c->nuses + 1, c->usecap)))
				return rc;
			struct ruse *u = &c->uses[c->nuses++];
			memcpy(u->pack, loc.pack, CF_ID_LEN);
			u->offset = loc.offset;
			u->length = loc.length;
			u->rawlen = loc.rawlen;
			u->flags = loc.flags;
			u->id = f->node.content[b];
			u->file = i;
			u->foff = off;
			off += loc.rawlen;
		}
		if (f->state == F_FAILED)
			continue;
		f->size = off;
		f->remaining = f->node.ncontent;
		*total += off;
		if (off != f->node.size)
			cf_warn("warning: %s: the snapshot records %llu bytes but its blobs hold %llu",
				f->path, (unsigned long long)f->node.size, (unsigned long long)off);
	}
	if (c->nuses)
		qsort(c->uses, c->nuses, sizeof(*c->uses), use_cmp);
	for (size_t i = 0; i < c->nuses;) {
		size_t j = i, first = c->uses[i].file;
		while (j < c->nuses && !memcmp(c->uses[j].pack, c->uses[i].pack, CF_ID_LEN)) {
			if (c->uses[j].file < first)
				first = c->uses[j].file;
			j++;
		}
		if ((rc = CF_GROW(c->groups, c->ngroups + 1, c->groupcap)))
			return rc;
		c->groups[c->ngroups++] = (struct rgroup){ i, j, first };
		i = j;
	}
	if (c->ngroups)
		qsort(c->groups, c->ngroups, sizeof(*c->groups), group_cmp);
	return CF_OK;
}
