/*
 * pool.h - the one bounded work queue (zstd's lib/common/pool.h).
 *
 * A pool is a fixed set of worker threads taking jobs from one queue.  The
 * queue is bounded by a count of jobs and, optionally, by a byte budget (the
 * sum of the costs of jobs queued or running): cf_pool_add() blocks while
 * the job would not fit, so a fast producer cannot run ahead of the workers
 * by more than the budget.  A job that costs more than the whole budget runs
 * alone.
 *
 *     struct cf_pool *p;
 *     if ((rc = cf_pool_new(&p, "restore", nthreads, 64, 0)) != CF_OK) ...
 *     while (...)
 *             if ((rc = cf_pool_add(p, job_fn, arg, cost)) != CF_OK) break;
 *     rc = cf_pool_join(p, rc);   // waits for every queued job; rc or the first failure
 *     cf_pool_free(p);
 *
 * Errors: a job returns CF_OK or an error code with its message set in the
 * worker thread (cf_err()).  The pool keeps the first failure, code and
 * message (a struct cf_status); from then on cf_pool_add() refuses new jobs
 * with that code.  Jobs already queued still run (each is called exactly
 * once, so a job that owns its arg frees it); they poll cf_pool_failed() to
 * return early.  cf_pool_join() returns the first failure and sets it as the
 * calling thread's message.
 *
 * Jobs may run for as long as they like: a pipeline stage that loops until
 * its input ends is one job per thread.  worker is 0..nthreads-1, so a
 * caller can keep per-thread state in an array.  A job must not call
 * cf_pool_join() or cf_pool_free() on its own pool; it may cf_pool_add(),
 * which blocks as a producer's does, until another worker makes room (so
 * not every worker may wait in cf_pool_add() on a full pool at once).
 *
 * Thread creation failure: cf_pool_new() succeeds if at least one thread
 * started (nthreads is then lower, see cf_pool_threads()); CF_ENOMEM if none.
 */
#ifndef CF_POOL_H
#define CF_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

struct cf_pool;

/* A job: CF_OK, or an error code with the thread's message set. */
typedef int (*cf_job_fn)(void *arg, unsigned worker);

/* Start nthreads workers (at least 1).  max_jobs bounds the jobs queued but
 * not yet running (0: unbounded); max_bytes bounds the sum of the costs of
 * jobs queued or running (0: no byte budget).  name is for messages.
 * *out is freed with cf_pool_free().  CF_OK or CF_ENOMEM. */
int cf_pool_new(struct cf_pool **out, const char *name, unsigned nthreads, size_t max_jobs,
		size_t max_bytes);

/* Queue fn(arg, worker) with a cost in bytes (0 if the pool has no byte
 * budget).  Blocks while the queue is full.  CF_OK; or, once a job failed
 * or the pool was cancelled, that failure's code (the job is not queued and
 * arg stays the caller's). */
int cf_pool_add(struct cf_pool *p, cf_job_fn fn, void *arg, size_t cost);

/* Wait until every queued job ran.  rc is the caller's own result: when it
 * is not CF_OK, the pool is cancelled first (cf_pool_failed() turns true for
 * the jobs still queued or running, which still run once each) and rc is
 * returned with the caller's message kept.  Otherwise returns CF_OK or the first job failure, whose
 * message becomes the calling thread's.  The kept failure is cleared: the
 * pool can be used again. */
int cf_pool_join(struct cf_pool *p, int rc);

/* Record a failure from outside the jobs (code, CF_EINTR if 0, and the
 * calling thread's message, if no failure is kept yet): new jobs are
 * refused and cf_pool_failed() turns true.  For interrupts and for a
 * producer that fails. */
void cf_pool_cancel(struct cf_pool *p, int code);

/* Whether a failure is kept (a job's or cf_pool_cancel()'s): long jobs poll
 * it to stop early. */
bool cf_pool_failed(struct cf_pool *p);

/* How many workers run. */
unsigned cf_pool_threads(const struct cf_pool *p);

/* Wait for every queued job (their failure is dropped; the caller's own
 * message is left alone), stop the workers, free.  NULL is a no-op. */
void cf_pool_free(struct cf_pool *p);

#endif
