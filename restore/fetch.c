/*
 * fetch.c - phase 3, the scheduler: which blobs of which pack, read when.
 *
 * rs_plan_writes() lists every use of a blob (a file and an offset in it)
 * and sorts the uses by pack and offset; packs come in the order the files
 * first need them, so files complete early and few are open at a time.
 * Each pack's uses become wants of the one pack reader (repo/pack_read.h),
 * which cuts them into ranges for this store, reads, opens (another copy if
 * the index lists one where a blob fails) and hands every blob to
 * write_blob(), which writes it to its use (rs_write_use).  Restore only
 * schedules: where a pack lies and how to ask the store for it is repo/'s.
 *
 * Two pipelines, both on the work queue (common/pool.h, one long job per
 * thread):
 *   - held ranges (a store that does not stream, e.g. a local directory):
 *     fetching threads read the ranges in order (cf_repo_fetch_range) into
 *     a bounded pool of buffers (struct rslot, one per thread) while writing
 *     threads take them in the same order and open and write them
 *     (cf_repo_open_range): reading runs ahead of the writers instead of
 *     between their writes (measured: doc/benchmarks.md).  A buffer goes to
 *     the next range under rg_mu, so the first range not yet written always
 *     has one or gets the next that is freed: no deadlock, whatever the
 *     number of threads that started.
 *   - a store that streams (S3): each thread reads one pack at a time
 *     (cf_repo_read_pack), each blob written as soon as it arrived.
 * A fetch's failure reaches the open in the writing thread with its
 * message as a struct cf_status.  Interrupted (c->stop): the rest is left
 * unwritten; the run removes the temporary files of what was not finished.
 */
#include "restore/restore_int.h"
#include "common/array.h"
#include "common/pool.h"

#include <stdlib.h>
#include <string.h>

void rs_fetch_setup(struct rctx *c)
{
	c->streaming = cf_repo_pack_streams(c->repo);
	c->nfetch = (int)cf_repo_read_concurrency(c->repo);
	if (c->streaming && c->o->threads > 0) /* its threads fetch and write */
		c->nfetch = c->o->threads;
	if (c->nfetch < 1)
		c->nfetch = 1;
}

void rs_set_stop(struct rctx *c)
{
	pthread_mutex_lock(&c->rg_mu);
	atomic_store(&c->stop, true);
	pthread_cond_broadcast(&c->rg_cond);
	pthread_mutex_unlock(&c->rg_mu);
}

/* The reader's callback: blob w (rc: opened, or failed with the thread's
 * message) goes to its use. */
static int write_blob(const struct cf_pack_want *w, int rc, const uint8_t *plain, size_t n,
		      void *ctx)
{
	struct rctx *c = ctx;
	struct cf_status st;
	st.code = CF_OK;
	st.msg[0] = 0;
	cf_status_keep(&st, rc);
	rs_write_use(c, w->arg, plain, n, &st);
	return CF_OK;
}

/* ---------- held ranges: fetching threads read ahead of writing threads ---------- */

/* Take a free buffer of the pool and the next range (in this order, under
 * one lock), fetch the range into the buffer, which its writer gives back. */
static int fetch_job(void *arg, unsigned worker)
{
	struct rctx *c = arg;
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
		const struct rgroup *g = &c->groups[rr->group];
		int frc = cf_repo_fetch_range(c->repo, c->uses[g->start].pack, &rr->rg, &slot->sealed);
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

/* Write the ranges in their order, each once fetched. */
static int write_job(void *arg, unsigned worker)
{
	struct rctx *c = arg;
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
		if (!atomic_load(&c->stop)) {
			const struct rgroup *g = &c->groups[rr->group];
			const struct rslot *slot = &c->slots[rr->buf];
			cf_repo_open_range(c->repo, c->uses[g->start].pack, &c->wants[g->start], &rr->rg,
					   &slot->sealed, slot->st.code, slot->st.code ? slot->st.msg : NULL,
					   write_blob, c);
		}
		pthread_mutex_lock(&c->rg_mu);
		c->freebufs[c->nfree++] = rr->buf;
		rr->buf = -1;
		pthread_cond_broadcast(&c->rg_cond);
		pthread_mutex_unlock(&c->rg_mu);
	}
	return CF_OK;
}

/* c->ranges: each pack's wants cut by the reader, in the packs' order. */
static int make_ranges(struct rctx *c)
{
	int rc;
	for (size_t g = 0; g < c->ngroups; g++) {
		const struct rgroup *gr = &c->groups[g];
		struct cf_pack_range *rg = NULL;
		size_t nrg = 0;
		if ((rc = cf_repo_pack_ranges(c->repo, &c->wants[gr->start], gr->end - gr->start,
					      CF_SPAN_HELD, &rg, &nrg)))
			return rc;
		if ((rc = CF_GROW(c->ranges, c->nranges + nrg, c->rangecap))) {
			free(rg);
			return rc;
		}
		for (size_t i = 0; i < nrg; i++)
			c->ranges[c->nranges++] = (struct rrange){ g, rg[i], -1, false };
		free(rg);
	}
	return CF_OK;
}

/* ---------- a store that streams (S3): one pack at a time per thread ---------- */

/* write_blob, but an interrupt stops the read */
static int stream_blob(const struct cf_pack_want *w, int rc, const uint8_t *plain, size_t n,
		       void *ctx)
{
	struct rctx *c = ctx;
	if (cf_interrupted)
		rs_set_stop(c);
	if (atomic_load(&c->stop))
		return cf_err(CF_EINTR, "interrupted");
	return write_blob(w, rc, plain, n, ctx);
}

static int stream_job(void *arg, unsigned worker)
{
	struct rctx *c = arg;
	(void)worker;
	for (;;) {
		if (cf_interrupted)
			rs_set_stop(c);
		size_t g = atomic_fetch_add(&c->next, 1);
		if (g >= c->ngroups || atomic_load(&c->stop))
			break;
		const struct rgroup *gr = &c->groups[g];
		cf_repo_read_pack(c->repo, c->uses[gr->start].pack, &c->wants[gr->start],
				  gr->end - gr->start, stream_blob, c);
		cf_err_clear(); /* every blob went to its file, failed ones with their error */
	}
	return CF_OK;
}

/* ---------- both ---------- */

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

int rs_fetch_and_write(struct rctx *c)
{
	struct cf_pool *fp = NULL, *wp = NULL;
	int rc, nbufs = c->nthreads + c->nfetch;
	atomic_store(&c->next, 0);
	if (c->streaming) {
		if ((rc = start_jobs(&fp, "restore", c->nfetch, stream_job, c)))
			return rc;
		rc = cf_pool_join(fp, CF_OK);
		cf_pool_free(fp);
		return rc;
	}
	if ((rc = make_ranges(c)))
		return rc;
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
	if (c->nuses && !(c->wants = calloc(c->nuses, sizeof(*c->wants))))
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < c->nuses; i++) {
		const struct ruse *u = &c->uses[i];
		c->wants[i] = (struct cf_pack_want){ .id = u->id, .offset = u->offset,
			.length = u->length, .rawlen = u->rawlen, .flags = u->flags,
			.type = CF_BLOB_DATA, .arg = (void *)u };
	}
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
