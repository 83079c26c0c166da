/*
 * chunkq.c - chunk buffers and the queue of chunks to store.
 *
 * The walker cuts chunks (cstream.c) and hands each to eng_cq_submit(); a
 * cf_pool of workers hashes, deduplicates, compresses, seals and packs it
 * (cf_repo_save_blob), writes its id into the slot the walker gave (a
 * struct refs block, which never moves) and puts the buffer back here.
 *
 * Invariants:
 * - Memory stays flat whatever the input size: the pool's byte budget is two
 *   megabytes of chunks per worker, a chunk costing at most a megabyte, so
 *   at least one chunk per worker waits whatever their size and small files'
 *   chunks (many per megabyte) never go through a queue two deep
 *   (doc/benchmarks.md).
 * - No allocation and no lock of ours per chunk: the job argument is one of
 *   QUEUE_MAX + workers + 1 preallocated slots (the pool holds at most
 *   QUEUE_MAX queued and one running per worker, so a free one is always
 *   there); a worker counts into its own struct cq_stats; a batch's count of
 *   outstanding chunks is atomic and done_mu is taken only when a batch
 *   empties or a chunk fails.
 * - Jobs never fail the pool: a worker's error is kept, with its message,
 *   in the batch's cf_status and raised by eng_batch_wait() on the walker,
 *   which names it when it finishes that directory.
 */
#include "engine/engine_int.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- chunk buffers ----------------
 *
 * Chunk buffers go round: the reader fills one, a worker stores it and puts
 * it back here.  Reusing them spares the kernel a page fault for every 4 KiB
 * read (doc/benchmarks.md).  The pool keeps as many as can be in flight at
 * once: the reader's, one queued and one being stored per worker. */
#define POOL_MAX 17
static struct {
	pthread_mutex_t mu;
	uint8_t *buf[POOL_MAX];
	size_t cap[POOL_MAX];
	int n, max;
} bufpool = { .mu = PTHREAD_MUTEX_INITIALIZER, .max = 5 };

/* A buffer of at least want bytes (*cap gets its real size), or NULL. */
uint8_t *eng_buf_get(size_t want, size_t *cap)
{
	*cap = want;
	if (want < READ_SIZE)
		return malloc(want);
	pthread_mutex_lock(&bufpool.mu);
	for (int i = bufpool.n; i-- > 0;) {
		if (bufpool.cap[i] >= want) {
			uint8_t *b = bufpool.buf[i];
			*cap = bufpool.cap[i];
			bufpool.buf[i] = bufpool.buf[bufpool.n - 1];
			bufpool.cap[i] = bufpool.cap[bufpool.n - 1];
			bufpool.n--;
			pthread_mutex_unlock(&bufpool.mu);
			return b;
		}
	}
	pthread_mutex_unlock(&bufpool.mu);
	return malloc(want);
}

void eng_buf_put(uint8_t *b, size_t cap)
{
	if (!b)
		return;
	/* keep ordinary sizes only: a max-size chunk buffer (8 MiB+) would
	 * pin memory that most chunks never need, and a small file's buffer
	 * would take the place of one a big file needs (malloc serves those
	 * from its heap without page faults anyway) */
	if (cap >= READ_SIZE && cap <= 4u * READ_SIZE) {
		pthread_mutex_lock(&bufpool.mu);
		if (bufpool.n < bufpool.max) {
			bufpool.buf[bufpool.n] = b;
			bufpool.cap[bufpool.n] = cap;
			bufpool.n++;
			b = NULL;
		}
		pthread_mutex_unlock(&bufpool.mu);
	}
	free(b);
}

void eng_bufpool_drain(void)
{
	pthread_mutex_lock(&bufpool.mu);
	while (bufpool.n > 0) {
		bufpool.n--;
		free(bufpool.buf[bufpool.n]);
	}
	pthread_mutex_unlock(&bufpool.mu);
}

/* ---------------- the queue ---------------- */

/* The pool's job: store one chunk. */
static int store_chunk(void *arg, unsigned worker)
{
	struct cq_job *j = arg;
	struct ctx *c = j->c;
	struct batch *b = j->batch;
	uint8_t *data = j->data;
	size_t len = j->len, cap = j->cap;
	bool added = false;
	uint64_t stored = 0;
	int rc = cf_repo_save_blob(c->repo, CF_BLOB_DATA, data, len, j->id_out, &added, &stored);
	atomic_store_explicit(&j->busy, 0, memory_order_release); /* the slot is the walker's again */
	eng_buf_put(data, cap);
	if (added) {
		struct cq_stats *w = &c->wstats[worker];
		w->blobs_new++;
		w->added += len;
		w->added_packed += stored;
	}
	if (rc) {
		pthread_mutex_lock(&c->done_mu);
		cf_status_keep(&b->st, rc);
		pthread_mutex_unlock(&c->done_mu);
	}
	/* after this, b may be gone (its directory finished) */
	if (atomic_fetch_sub(&b->outstanding, 1) == 1) {
		pthread_mutex_lock(&c->done_mu);
		pthread_cond_broadcast(&c->done);
		pthread_mutex_unlock(&c->done_mu);
	}
	return CF_OK;
}

int eng_cq_start(struct ctx *c, int n)
{
	pthread_mutex_init(&c->done_mu, NULL);
	pthread_cond_init(&c->done, NULL);
	bufpool.max = 2 * n + 1 < POOL_MAX ? 2 * n + 1 : POOL_MAX;
	int rc = cf_pool_new(&c->cq, "worker", (unsigned)n, QUEUE_MAX, 2 * (size_t)n * READ_SIZE);
	if (rc)
		return rc;
	c->cq_threads = cf_pool_threads(c->cq);
	c->njobs = QUEUE_MAX + (size_t)c->cq_threads + 1;
	c->jobs = calloc(c->njobs, sizeof(*c->jobs));
	c->wstats = calloc(c->cq_threads, sizeof(*c->wstats));
	if (!c->jobs || !c->wstats)
		return cf_err(CF_ENOMEM, "out of memory");
	return CF_OK;
}

/* Wait for every chunk, stop the workers, take over their counts.  Again
 * after that: a no-op. */
void eng_cq_stop(struct ctx *c)
{
	if (!c->cq)
		return;
	cf_pool_free(c->cq);
	c->cq = NULL;
	for (unsigned i = 0; c->wstats && i < c->cq_threads; i++) {
		c->blobs_new += c->wstats[i].blobs_new;
		c->added += c->wstats[i].added;
		c->added_packed += c->wstats[i].added_packed;
	}
	free(c->jobs);
	free(c->wstats);
	c->jobs = NULL;
	c->wstats = NULL;
	pthread_mutex_destroy(&c->done_mu);
	pthread_cond_destroy(&c->done);
}

/* A free job slot.  One always is (see the top); the loop is a guard. */
static struct cq_job *free_slot(struct ctx *c)
{
	for (;;) {
		for (size_t k = 0; k < c->njobs; k++) {
			struct cq_job *j = &c->jobs[c->cq_next];
			c->cq_next = (c->cq_next + 1) % (unsigned)c->njobs;
			if (!atomic_load_explicit(&j->busy, memory_order_acquire))
				return j;
		}
		sched_yield();
	}
}

/* Queue a chunk (takes ownership of data, a cap-byte buffer); its id will
 * be written at id_out.  Blocks while the workers are a budget ahead.
 * CF_OK, or the pool's error (data freed). */
int eng_cq_submit(struct ctx *c, struct batch *b, uint8_t *data, size_t len, size_t cap,
		  uint8_t *id_out)
{
	struct cq_job *j = free_slot(c);
	j->c = c;
	j->data = data;
	j->len = len;
	j->cap = cap;
	j->id_out = id_out;
	j->batch = b;
	atomic_store_explicit(&j->busy, 1, memory_order_relaxed);
	atomic_fetch_add(&b->outstanding, 1);
	int rc = cf_pool_add(c->cq, store_chunk, j, len < READ_SIZE ? len : READ_SIZE);
	if (rc) {
		atomic_fetch_sub(&b->outstanding, 1);
		atomic_store(&j->busy, 0);
		eng_buf_put(data, cap);
	}
	return rc;
}

/* Whether chunks of b are still queued or being stored. */
bool eng_batch_busy(struct batch *b)
{
	return atomic_load(&b->outstanding) > 0;
}

/* Wait until every chunk of batch b is stored; its first error, if any
 * (not reported: for cleaning up after another error, whose message stays). */
int eng_batch_drain(struct ctx *c, struct batch *b)
{
	pthread_mutex_lock(&c->done_mu);
	while (atomic_load(&b->outstanding) > 0)
		pthread_cond_wait(&c->done, &c->done_mu);
	int rc = b->st.code;
	pthread_mutex_unlock(&c->done_mu);
	return rc;
}

/* eng_batch_drain, and its error reported. */
int eng_batch_wait(struct ctx *c, struct batch *b)
{
	int rc = eng_batch_drain(c, b);
	if (rc)
		cf_status_raise(&b->st);
	return rc;
}
