/*
 * Tests of common/pool.c, the one bounded work queue.
 *
 * Nothing here sleeps to prove a point.  Bounds are proved with counters
 * kept under one mutex: a producer counts a job when cf_pool_add() returned
 * and a job counts itself finished before it returns, so at every moment
 * "added - finished" is at most what the pool holds (queued + running), and
 * an assertion on it at each add is an assertion on the pool's bound.  Jobs
 * that must hold their place wait on a gate that the test opens, and the test
 * waits for the state it needs on a condition variable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/pool.h"

/* The shared state of one test, under mu. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* any counter changed */
	bool gate_open;           /* gated jobs wait for this */
	unsigned nthreads;        /* of the pool under test */
	size_t added, started, finished;
	size_t added_bytes, finished_bytes;
	size_t running, max_running;
	size_t max_inflight;      /* max of added - finished seen at an add */
	size_t max_inflight_bytes;
	bool big_running, overlap, bad_worker;
	unsigned *runs;           /* per job: how often it ran */
} S = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static int setup(void **state)
{
	(void)state;
	pthread_mutex_lock(&S.mu);
	S.gate_open = false;
	S.nthreads = 0;
	S.added = S.started = S.finished = 0;
	S.added_bytes = S.finished_bytes = 0;
	S.running = S.max_running = S.max_inflight = S.max_inflight_bytes = 0;
	S.big_running = S.overlap = S.bad_worker = false;
	S.runs = NULL;
	pthread_mutex_unlock(&S.mu);
	cf_err_clear();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(S.runs);
	S.runs = NULL;
	return 0;
}

struct job {
	size_t id;
	size_t cost;
	bool gated;     /* wait for the gate before finishing */
	bool big;       /* over the whole budget: must run alone */
	int fail;       /* CF_OK, or the code to fail with */
	const char *msg;
};

static void wait_for(size_t *counter, size_t want)
{
	pthread_mutex_lock(&S.mu);
	while (*counter < want)
		pthread_cond_wait(&S.cv, &S.mu);
	pthread_mutex_unlock(&S.mu);
}

static void open_gate(void)
{
	pthread_mutex_lock(&S.mu);
	S.gate_open = true;
	pthread_cond_broadcast(&S.cv);
	pthread_mutex_unlock(&S.mu);
}

static int job_fn(void *arg, unsigned worker)
{
	struct job *j = arg;
	pthread_mutex_lock(&S.mu);
	if (worker >= S.nthreads)
		S.bad_worker = true;
	if (S.runs)
		S.runs[j->id]++;
	S.started++;
	S.running++;
	if (S.running > S.max_running)
		S.max_running = S.running;
	if (S.big_running || (j->big && S.running != 1))
		S.overlap = true;
	if (j->big)
		S.big_running = true;
	pthread_cond_broadcast(&S.cv);
	while (j->gated && !S.gate_open)
		pthread_cond_wait(&S.cv, &S.mu);
	pthread_mutex_unlock(&S.mu);

	if (j->big) /* give another job the chance to start beside it, were it allowed */
		for (int i = 0; i < 1000; i++)
			sched_yield();

	pthread_mutex_lock(&S.mu);
	if (j->big) {
		if (S.running != 1)
			S.overlap = true;
		S.big_running = false;
	}
	S.running--;
	S.finished++;
	S.finished_bytes += j->cost;
	pthread_cond_broadcast(&S.cv);
	pthread_mutex_unlock(&S.mu);
	if (j->fail)
		return cf_err(j->fail, "%s", j->msg);
	return CF_OK;
}

/* cf_pool_add() and count the job as added (after it was accepted). */
static int add(struct cf_pool *p, struct job *j)
{
	int rc = cf_pool_add(p, job_fn, j, j->cost);
	if (rc != CF_OK)
		return rc;
	pthread_mutex_lock(&S.mu);
	S.added++;
	S.added_bytes += j->cost;
	if (S.added - S.finished > S.max_inflight)
		S.max_inflight = S.added - S.finished;
	if (S.added_bytes - S.finished_bytes > S.max_inflight_bytes)
		S.max_inflight_bytes = S.added_bytes - S.finished_bytes;
	pthread_cond_broadcast(&S.cv);
	pthread_mutex_unlock(&S.mu);
	return CF_OK;
}

static struct job *jobs(size_t n)
{
	struct job *v = calloc(n, sizeof(*v));
	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i].id = i;
	S.runs = calloc(n, sizeof(*S.runs));
	assert_non_null(S.runs);
	return v;
}

static struct cf_pool *pool(unsigned nthreads, size_t max_jobs, size_t max_bytes)
{
	struct cf_pool *p;
	assert_int_equal(cf_pool_new(&p, "test", nthreads, max_jobs, max_bytes), CF_OK);
	assert_int_equal(cf_pool_threads(p), nthreads);
	S.nthreads = nthreads;
	return p;
}

static void test_each_job_once(void **state)
{
	enum { N = 2000 };
	(void)state;
	struct job *v = jobs(N);
	struct cf_pool *p = pool(4, 8, 0);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(add(p, &v[i]), CF_OK);
	assert_int_equal(cf_pool_join(p, CF_OK), CF_OK);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(S.runs[i], 1);
	assert_int_equal(S.finished, N);
	assert_false(S.bad_worker);
	cf_pool_free(p);
	free(v);
}

/* A producer thread: adds every job of a test, then returns. */
struct producer {
	struct cf_pool *p;
	struct job *v;
	size_t n;
	int rc;
};

static void *produce(void *arg)
{
	struct producer *pr = arg;
	pr->rc = CF_OK;
	for (size_t i = 0; i < pr->n && pr->rc == CF_OK; i++)
		pr->rc = add(pr->p, &pr->v[i]);
	return NULL;
}

/* max_jobs bounds the queue: with every worker held by a gated job, the
 * producer gets exactly nthreads + max_jobs jobs in and then blocks. */
static void test_max_jobs_bounds_queue(void **state)
{
	enum { N = 40, THREADS = 2, MAXJ = 3 };
	(void)state;
	struct job *v = jobs(N);
	for (size_t i = 0; i < N; i++)
		v[i].gated = true;
	struct cf_pool *p = pool(THREADS, MAXJ, 0);
	struct producer pr = { p, v, N, 0 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, produce, &pr), 0);
	/* both workers hold a job and the queue is full: the bound is reached */
	wait_for(&S.started, THREADS);
	wait_for(&S.added, THREADS + MAXJ);
	pthread_mutex_lock(&S.mu);
	assert_int_equal(S.finished, 0);
	assert_int_equal(S.started, THREADS);
	/* with nothing finished, nothing more got in: the producer waits in
	 * cf_pool_add() for the 1 + THREADS + MAXJ'th job */
	assert_int_equal(S.max_inflight, THREADS + MAXJ);
	pthread_mutex_unlock(&S.mu);
	open_gate();
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(pr.rc, CF_OK);
	assert_int_equal(cf_pool_join(p, CF_OK), CF_OK);
	assert_int_equal(S.finished, N);
	/* at no add did the pool hold more than its workers and its queue */
	assert_true(S.max_inflight <= THREADS + MAXJ);
	assert_true(S.max_running <= THREADS);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(S.runs[i], 1);
	cf_pool_free(p);
	free(v);
}

/* The byte budget bounds the jobs queued or running: with a budget of 100
 * and jobs of 30, at most 3 are in the pool, even with 4 idle workers. */
static void test_byte_budget_bounds(void **state)
{
	enum { N = 30, THREADS = 4, BUDGET = 100, COST = 30, FIT = BUDGET / COST };
	(void)state;
	struct job *v = jobs(N);
	for (size_t i = 0; i < N; i++) {
		v[i].gated = true;
		v[i].cost = COST;
	}
	struct cf_pool *p = pool(THREADS, 0, BUDGET);
	struct producer pr = { p, v, N, 0 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, produce, &pr), 0);
	wait_for(&S.started, FIT);
	wait_for(&S.added, FIT);
	pthread_mutex_lock(&S.mu);
	/* a fourth worker is free, but the budget keeps the fourth job out */
	assert_int_equal(S.started, FIT);
	assert_int_equal(S.added, FIT);
	assert_int_equal(S.max_inflight_bytes, FIT * COST);
	pthread_mutex_unlock(&S.mu);
	open_gate();
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(pr.rc, CF_OK);
	assert_int_equal(cf_pool_join(p, CF_OK), CF_OK);
	assert_int_equal(S.finished, N);
	assert_true(S.max_inflight_bytes <= BUDGET);
	assert_true(S.max_running <= FIT);
	cf_pool_free(p);
	free(v);
}

/* Mixed costs: the sum in the pool never passes the budget. */
static void test_byte_budget_mixed(void **state)
{
	enum { N = 3000, BUDGET = 1000 };
	(void)state;
	struct job *v = jobs(N);
	unsigned seed = 1;
	for (size_t i = 0; i < N; i++)
		v[i].cost = 1 + (size_t)rand_r(&seed) % 400;
	struct cf_pool *p = pool(3, 0, BUDGET);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(add(p, &v[i]), CF_OK);
	assert_int_equal(cf_pool_join(p, CF_OK), CF_OK);
	assert_true(S.max_inflight_bytes <= BUDGET);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(S.runs[i], 1);
	cf_pool_free(p);
	free(v);
}

/* A job that costs more than the whole budget still runs, alone. */
static void test_over_budget_runs_alone(void **state)
{
	enum { N = 200, BUDGET = 100 };
	(void)state;
	struct job *v = jobs(N);
	for (size_t i = 0; i < N; i++) {
		v[i].cost = 10;
		if (i % 50 == 25) {
			v[i].cost = 5 * BUDGET;
			v[i].big = true;
		}
	}
	struct cf_pool *p = pool(4, 0, BUDGET);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(add(p, &v[i]), CF_OK);
	assert_int_equal(cf_pool_join(p, CF_OK), CF_OK);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(S.runs[i], 1);
	assert_false(S.overlap);
	cf_pool_free(p);
	free(v);
}

/* The first failure comes back, code and message, in the caller's thread;
 * from then on cf_pool_add() refuses; jobs already queued still run once. */
static void test_first_failure(void **state)
{
	enum { N = 100000 };
	(void)state;
	struct job *v = jobs(N);
	struct cf_pool *p = pool(1, 4, 0);
	v[0].gated = true; /* hold the one worker until everything below is queued */
	v[1].fail = CF_EIO;
	v[1].msg = "the first failure";
	v[2].fail = CF_EINVAL;
	v[2].msg = "the second failure";
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(add(p, &v[i]), CF_OK);
	wait_for(&S.started, 1);
	assert_false(cf_pool_failed(p));
	open_gate();
	/* add until the pool refuses: each accepted job must run once */
	size_t i = 4;
	int rc;
	while ((rc = add(p, &v[i])) == CF_OK) {
		i++;
		assert_true(i < N);
	}
	assert_int_equal(rc, CF_EIO);
	assert_string_equal(cf_errmsg(rc), "the first failure");
	assert_true(cf_pool_failed(p));
	assert_int_equal(add(p, &v[i]), CF_EIO); /* and again */
	cf_err_clear();
	assert_int_equal(cf_pool_join(p, CF_OK), CF_EIO);
	assert_string_equal(cf_errmsg(CF_EIO), "the first failure");
	for (size_t k = 0; k < i; k++)
		assert_int_equal(S.runs[k], 1); /* v[2], failing after v[1], too */
	for (size_t k = i; k < N; k++)
		assert_int_equal(S.runs[k], 0);
	assert_int_equal(S.finished, S.added);

	/* the failure was handed out: the pool works again */
	assert_false(cf_pool_failed(p));
	for (size_t k = 0; k < 10; k++)
		v[k].gated = false, v[k].fail = CF_OK;
	cf_err_clear();
	for (size_t k = 0; k < 10; k++)
		assert_int_equal(add(p, &v[k]), CF_OK);
	assert_int_equal(cf_pool_join(p, CF_OK), CF_OK);
	for (size_t k = 0; k < 10; k++)
		assert_int_equal(S.runs[k], k < i ? 2 : 1);
	cf_pool_free(p);
	free(v);
}

/* cf_pool_cancel(): new jobs are refused with its code, queued ones still
 * run, and join returns the cancel with the canceller's message. */
static void test_cancel(void **state)
{
	enum { N = 5 };
	(void)state;
	struct job *v = jobs(N);
	struct cf_pool *p = pool(1, 0, 0);
	v[0].gated = true;
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(add(p, &v[i]), CF_OK);
	wait_for(&S.started, 1);
	cf_err(CF_EINTR, "interrupted by the test");
	cf_pool_cancel(p, 0); /* 0: CF_EINTR */
	assert_true(cf_pool_failed(p));
	cf_err_clear();
	assert_int_equal(cf_pool_add(p, job_fn, &v[4], 0), CF_EINTR);
	assert_string_equal(cf_errmsg(CF_EINTR), "interrupted by the test");
	open_gate();
	cf_err_clear();
	assert_int_equal(cf_pool_join(p, CF_OK), CF_EINTR);
	assert_string_equal(cf_errmsg(CF_EINTR), "interrupted by the test");
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(S.runs[i], 1);
	assert_int_equal(S.runs[4], 0);

	/* a cancel with a code; a later cancel does not replace the first */
	assert_false(cf_pool_failed(p));
	cf_err(CF_ENOSPC, "the producer failed");
	cf_pool_cancel(p, CF_ENOSPC);
	cf_err(CF_EINTR, "a later interrupt");
	cf_pool_cancel(p, CF_EINTR);
	cf_err_clear();
	assert_int_equal(cf_pool_add(p, job_fn, &v[4], 0), CF_ENOSPC);
	assert_int_equal(cf_pool_join(p, CF_OK), CF_ENOSPC);
	assert_string_equal(cf_errmsg(CF_ENOSPC), "the producer failed");
	assert_int_equal(S.runs[4], 0);
	cf_pool_free(p);
	free(v);
}

/* cf_pool_join(p, rc) with the caller's own failure: rc comes back and the
 * caller's message stays, even over a job's failure; the pool is clean after. */
static void test_join_with_callers_failure(void **state)
{
	enum { N = 4 };
	(void)state;
	struct job *v = jobs(N);
	struct cf_pool *p = pool(1, 0, 0);
	v[0].fail = CF_EIO;
	v[0].msg = "a job failed";
	v[1].gated = true;
	assert_int_equal(add(p, &v[0]), CF_OK);
	assert_int_equal(add(p, &v[1]), CF_OK);
	wait_for(&S.started, 2); /* v[0]'s failure is kept: v[1] was taken after it */
	assert_true(cf_pool_failed(p));
	open_gate();
	cf_err(CF_EINVAL, "the caller's own");
	assert_int_equal(cf_pool_join(p, CF_EINVAL), CF_EINVAL);
	assert_string_equal(cf_errmsg(CF_EINVAL), "the caller's own");
	assert_false(cf_pool_failed(p));

	/* the caller's failure with nothing failed in the pool */
	assert_int_equal(add(p, &v[2]), CF_OK);
	cf_err(CF_ENOSPC, "disk full");
	assert_int_equal(cf_pool_join(p, CF_ENOSPC), CF_ENOSPC);
	assert_string_equal(cf_errmsg(CF_ENOSPC), "disk full");
	assert_int_equal(S.runs[2], 1);
	assert_false(cf_pool_failed(p));
	assert_int_equal(add(p, &v[3]), CF_OK);
	assert_int_equal(cf_pool_join(p, CF_OK), CF_OK);
	assert_int_equal(S.runs[3], 1);
	cf_pool_free(p);
	free(v);
}

/* cf_pool_free() waits for queued jobs, drops their failure and leaves the
 * caller's message alone; NULL is a no-op. */
static void test_pool_free(void **state)
{
	enum { N = 50 };
	(void)state;
	cf_pool_free(NULL);
	struct job *v = jobs(N);
	struct cf_pool *p = pool(1, 0, 0);
	v[0].gated = true; /* everything is queued before v[7] fails */
	v[7].fail = CF_EIO;
	v[7].msg = "dropped";
	for (size_t i = 0; i < N; i++)
		assert_int_equal(add(p, &v[i]), CF_OK);
	open_gate();
	cf_err(CF_EINVAL, "mine");
	cf_pool_free(p);
	assert_string_equal(cf_errmsg(CF_EINVAL), "mine");
	for (size_t i = 0; i < N; i++)
		assert_int_equal(S.runs[i], 1);
	free(v);
}

/* nthreads 0 is one worker; a NULL name is allowed. */
static void test_new_defaults(void **state)
{
	(void)state;
	struct cf_pool *p;
	assert_int_equal(cf_pool_new(&p, NULL, 0, 0, 0), CF_OK);
	assert_int_equal(cf_pool_threads(p), 1);
	assert_false(cf_pool_failed(p));
	assert_int_equal(cf_pool_join(p, CF_OK), CF_OK); /* nothing queued */
	cf_pool_free(p);
}

/* A job may queue more jobs into its own pool. */
static struct cf_pool *self_pool;
static int spawn_fn(void *arg, unsigned worker)
{
	struct job *j = arg;
	int rc = job_fn(j, worker);
	if (rc == CF_OK && j->id + 1 < 20)
		rc = cf_pool_add(self_pool, spawn_fn, j + 1, 0);
	return rc;
}

static void test_job_adds(void **state)
{
	(void)state;
	struct job *v = jobs(20);
	self_pool = pool(2, 0, 0);
	assert_int_equal(cf_pool_add(self_pool, spawn_fn, &v[0], 0), CF_OK);
	/* join waits for the chain: each job was queued before its parent ended */
	assert_int_equal(cf_pool_join(self_pool, CF_OK), CF_OK);
	for (size_t i = 0; i < 20; i++)
		assert_int_equal(S.runs[i], 1);
	cf_pool_free(self_pool);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_each_job_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_jobs_bounds_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_byte_budget_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_byte_budget_mixed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_over_budget_runs_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_join_with_callers_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_adds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_defaults, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
