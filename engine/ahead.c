/*
 * ahead.c - parent trees, read ahead.
 *
 * A backup with a parent snapshot loads the parent's tree of every directory
 * it enters, and decoding those is most of a no-change backup's time
 * (doc/benchmarks.md).  So two loaders (long jobs on a pool of their own)
 * load and decode, in order, the trees of the next few subdirectories of
 * the directory being walked while the walker stats files; the walker takes
 * a tree from here when it enters the directory, and loads it itself when
 * it is not here (never asked for, pushed out, or failed: its error is then
 * reported by the walker's own load).
 *
 * Invariants: at most AHEAD_SLOTS decoded trees are held; asking with no
 * free slot pushes out the oldest finished one, which the walk has most
 * likely passed.  Every slot field is under ahead.mu.  Without loaders
 * (nthreads 0) every take is a load of one's own: still correct.
 */
#include "engine/engine_int.h"

#include <string.h>

/* One loader: a long job, until eng_ahead_stop. */
static int ahead_main(void *arg, unsigned worker)
{
	struct ahead *a = arg;
	(void)worker;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct ahead_slot *next = NULL;
		for (int i = 0; i < AHEAD_SLOTS; i++)
			if (a->s[i].state == AH_QUEUED && (!next || a->s[i].order < next->order))
				next = &a->s[i];
		if (a->stop)
			break;
		if (!next) {
			pthread_cond_wait(&a->work, &a->mu);
			continue;
		}
		next->state = AH_LOADING;
		uint8_t id[CF_ID_LEN];
		memcpy(id, next->id, CF_ID_LEN);
		pthread_mutex_unlock(&a->mu);
		struct cf_tree t = CF_TREE_INIT;
		int rc = cf_repo_load_tree(a->repo, id, &t);
		pthread_mutex_lock(&a->mu);
		next->t = t;
		next->rc = rc;
		next->state = AH_DONE;
		pthread_cond_broadcast(&a->done);
	}
	pthread_mutex_unlock(&a->mu);
	return CF_OK;
}

void eng_ahead_start(struct ctx *c)
{
	struct ahead *a = &c->ahead;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->done, NULL);
	a->repo = c->repo;
	/* Two threads: decoding is the slow part and a directory's trees are
	 * independent.  Without threads every take is a load of one's own:
	 * still correct. */
	if (cf_pool_new(&a->pool, "read-ahead", AHEAD_THREADS, 0, 0) != CF_OK) {
		cf_err_clear();
		return;
	}
	unsigned n = cf_pool_threads(a->pool);
	for (unsigned i = 0; i < n; i++)
		if (cf_pool_add(a->pool, ahead_main, a, 0) == CF_OK)
			a->nthreads++;
		else
			cf_err_clear();
}

void eng_ahead_stop(struct ctx *c)
{
	struct ahead *a = &c->ahead;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_broadcast(&a->work);
	pthread_mutex_unlock(&a->mu);
	cf_pool_free(a->pool); /* the loaders see stop and end */
	a->pool = NULL;
	a->nthreads = 0;
	for (int i = 0; i < AHEAD_SLOTS; i++)
		cf_tree_release(&a->s[i].t);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->done);
}

void eng_ahead_want(struct ctx *c, const uint8_t id[CF_ID_LEN])
{
	struct ahead *a = &c->ahead;
	struct ahead_slot *slot = NULL, *oldest = NULL;
	if (!a->nthreads)
		return;
	pthread_mutex_lock(&a->mu);
	for (int i = 0; i < AHEAD_SLOTS; i++) {
		struct ahead_slot *s = &a->s[i];
		if (s->state != AH_FREE && !memcmp(s->id, id, CF_ID_LEN))
			goto out; /* asked already (an identical directory) */
		if (s->state == AH_FREE && !slot)
			slot = s;
		if (s->state == AH_DONE && (!oldest || s->order < oldest->order))
			oldest = s;
	}
	if (!slot && oldest) {
		cf_tree_release(&oldest->t);
		slot = oldest;
	}
	if (slot) {
		slot->state = AH_QUEUED;
		slot->order = a->seq++;
		memcpy(slot->id, id, CF_ID_LEN);
		pthread_cond_signal(&a->work);
	}
out:
	pthread_mutex_unlock(&a->mu);
}

int eng_ahead_take(struct ctx *c, const uint8_t id[CF_ID_LEN], struct cf_tree *t)
{
	struct ahead *a = &c->ahead;
	if (a->nthreads) {
		pthread_mutex_lock(&a->mu);
		for (int i = 0; i < AHEAD_SLOTS; i++) {
			struct ahead_slot *s = &a->s[i];
			if (s->state == AH_FREE || memcmp(s->id, id, CF_ID_LEN))
				continue;
			if (s->state == AH_QUEUED) {
				s->state = AH_FREE; /* not started: load it here */
				break;
			}
			while (s->state == AH_LOADING)
				pthread_cond_wait(&a->done, &a->mu);
			int rc = s->rc;
			*t = s->t;
			s->t = (struct cf_tree)CF_TREE_INIT;
			s->state = AH_FREE;
			pthread_mutex_unlock(&a->mu);
			if (rc == CF_OK)
				return CF_OK;
			cf_tree_release(t); /* load again for this thread's message */
			return cf_repo_load_tree(c->repo, id, t);
		}
		pthread_mutex_unlock(&a->mu);
	}
	return cf_repo_load_tree(c->repo, id, t);
}

/* A subdirectory's parent tree is loaded ahead unless the directory
 * cache describes it (then it is most likely never loaded). */
bool eng_wants_ahead(const struct ctx *c, const struct cf_node *on)
{
	return on && on->type == CF_NODE_DIR && on->has_subtree && !cf_dc_find(&c->dc, on->subtree);
}
