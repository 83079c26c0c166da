/* pool.c - see pool.h. */
#include "common/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common/status.h"

struct job {
	cf_job_fn fn;
	void *arg;
	size_t cost;
};

struct cf_pool {
	pthread_mutex_t mu;
	pthread_cond_t work;      /* a job was queued, or the pool stops */
	pthread_cond_t room;      /* a job left the queue or finished */
	struct job *q;            /* ring of qcap */
	size_t qcap, qhead, qlen;
	size_t max_jobs, max_bytes;
	size_t bytes;             /* costs of jobs queued or running */
	size_t running;
	bool stop;
	struct cf_status st;      /* the first failure */
	unsigned nthreads;
	pthread_t *threads;
	char name[32];
};

struct starter {
	struct cf_pool *p;
	unsigned worker;
};

static int grow_queue(struct cf_pool *p)
{
	size_t n = p->qcap ? p->qcap * 2 : 16;
	struct job *q = malloc(n * sizeof(*q));
	if (!q)
		return cf_err(CF_ENOMEM, "out of memory (%s queue)", p->name);
	for (size_t i = 0; i < p->qlen; i++)
		q[i] = p->q[(p->qhead + i) % p->qcap];
	free(p->q);
	p->q = q;
	p->qcap = n;
	p->qhead = 0;
	return CF_OK;
}

static void *worker_main(void *arg)
{
	struct starter *s = arg;
	struct cf_pool *p = s->p;
	unsigned worker = s->worker;
	free(s);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->qlen && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		if (!p->qlen)
			break; /* stop, and nothing is left */
		struct job j = p->q[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
		p->running++;
		pthread_cond_broadcast(&p->room);
		pthread_mutex_unlock(&p->mu);
		cf_err_clear();
		int rc = j.fn(j.arg, worker);
		pthread_mutex_lock(&p->mu);
		cf_status_keep(&p->st, rc);
		p->running--;
		p->bytes -= j.cost;
		pthread_cond_broadcast(&p->room);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int cf_pool_new(struct cf_pool **out, const char *name, unsigned nthreads, size_t max_jobs,
		size_t max_bytes)
{
	struct cf_pool *p = calloc(1, sizeof(*p));
	*out = NULL;
	if (!p)
		return cf_err(CF_ENOMEM, "out of memory (work queue)");
	if (!nthreads)
		nthreads = 1;
	snprintf(p->name, sizeof(p->name), "%s", name ? name : "work");
	p->max_jobs = max_jobs;
	p->max_bytes = max_bytes;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->room, NULL);
	if (!(p->threads = calloc(nthreads, sizeof(*p->threads))) || grow_queue(p) != CF_OK) {
		cf_pool_free(p);
		return cf_err(CF_ENOMEM, "out of memory (%s threads)", name ? name : "work");
	}
	for (unsigned i = 0; i < nthreads; i++) {
		struct starter *s = malloc(sizeof(*s));
		if (!s)
			break;
		*s = (struct starter){ p, i };
		if (pthread_create(&p->threads[i], NULL, worker_main, s) != 0) {
			free(s);
			break;
		}
		p->nthreads++;
	}
	if (!p->nthreads) {
		cf_pool_free(p);
		return cf_err(CF_ENOMEM, "cannot start %s threads", name ? name : "work");
	}
	*out = p;
	return CF_OK;
}

static bool fits(const struct cf_pool *p, size_t cost)
{
	if (p->max_jobs && p->qlen >= p->max_jobs)
		return false;
	/* a job over the whole budget waits until the pool is idle, then runs alone */
	if (p->max_bytes && p->bytes && p->bytes + cost > p->max_bytes)
		return false;
	return true;
}

int cf_pool_add(struct cf_pool *p, cf_job_fn fn, void *arg, size_t cost)
{
	int rc = CF_OK;
	pthread_mutex_lock(&p->mu);
	while (p->st.code == CF_OK && !fits(p, cost))
		pthread_cond_wait(&p->room, &p->mu);
	if (p->st.code != CF_OK) {
		rc = cf_status_raise(&p->st);
	} else if (p->qlen == p->qcap && (rc = grow_queue(p)) != CF_OK) {
		/* rc and message set */
	} else {
		p->q[(p->qhead + p->qlen) % p->qcap] = (struct job){ fn, arg, cost };
		p->qlen++;
		p->bytes += cost;
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void cf_pool_cancel(struct cf_pool *p, int code)
{
	pthread_mutex_lock(&p->mu);
	cf_status_keep(&p->st, code ? code : CF_EINTR);
	pthread_cond_broadcast(&p->room);
	pthread_mutex_unlock(&p->mu);
}

bool cf_pool_failed(struct cf_pool *p)
{
	pthread_mutex_lock(&p->mu);
	bool f = p->st.code != CF_OK;
	pthread_mutex_unlock(&p->mu);
	return f;
}

unsigned cf_pool_threads(const struct cf_pool *p)
{
	return p->nthreads;
}

/* Wait until nothing is queued or running; the kept failure is handed out
 * (and the pool's cleared) in *st. */
static void wait_idle(struct cf_pool *p, struct cf_status *st)
{
	pthread_mutex_lock(&p->mu);
	while (p->qlen || p->running)
		pthread_cond_wait(&p->room, &p->mu);
	*st = p->st;
	p->st = (struct cf_status)CF_STATUS_INIT;
	pthread_mutex_unlock(&p->mu);
}

int cf_pool_join(struct cf_pool *p, int rc)
{
	struct cf_status st;
	if (rc != CF_OK)
		cf_pool_cancel(p, rc);
	wait_idle(p, &st);
	if (rc != CF_OK)
		return rc;
	return cf_status_raise(&st);
}

void cf_pool_free(struct cf_pool *p)
{
	if (!p)
		return;
	if (p->threads) {
		struct cf_status st;
		wait_idle(p, &st); /* the caller's own message stays */
		pthread_mutex_lock(&p->mu);
		p->stop = true;
		pthread_cond_broadcast(&p->work);
		pthread_mutex_unlock(&p->mu);
		for (unsigned i = 0; i < p->nthreads; i++)
			pthread_join(p->threads[i], NULL);
	}
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->room);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p->q);
	free(p);
}
