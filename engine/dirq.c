/*
 * dirq.c - finishing directories' trees, and directories finished later.
 *
 * A directory's tree can be encoded only when every chunk of its files is
 * stored (the nodes carry their ids).  Waiting for that at the end of each
 * directory left the workers idle while the walker encoded the tree and
 * listed the next directory (doc/benchmarks.md).  So the walker goes on,
 * and the directory (its tree, its pending entries, its batch of chunks and
 * the parent snapshot's tree of it) waits in a queue, oldest first, to be
 * finished by the walker later: when its chunks are stored, or when more
 * than DEFER_MAX wait.
 *
 * Invariants: the queue is in the order directories were walked to their
 * end, so a directory's subdirectories are always finished before it; its
 * parent copies their ids into its nodes when it is finished in turn, and
 * frees them.  Everything here runs on the walker's thread; only a batch's
 * count of outstanding chunks is shared with the workers (chunkq.c).
 */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

/* The summary's count of a subdirectory whose tree id is now known. */
void eng_count_dir(struct ctx *c, const struct pending *pd, const uint8_t id[CF_ID_LEN])
{
	if (pd->sub_kind == DIR_NEW)
		c->sum->dirs_new++;
	else if (pd->sub_kind == DIR_OLD_NOT_DIR || memcmp(pd->sub_old, id, CF_ID_LEN))
		c->sum->dirs_changed++;
	else
		c->sum->dirs_unmodified++;
}


/* The directory's tree is the parent snapshot's, node for node, and that
 * tree is still in the index: its id is the answer, no encoding needed (the
 * case of every unchanged directory of a no-change backup). */
static bool same_tree(struct ctx *c, const struct cf_tree *t, const struct cf_tree *old,
		      const uint8_t *old_id)
{
	if (!old || !old_id || old->n != t->n)
		return false;
	for (size_t i = 0; i < t->n; i++)
		if (!cf_node_equal(&t->nodes[i], &old->nodes[i]))
			return false;
	return cf_repo_has_blob(c->repo, CF_BLOB_TREE, old_id);
}

int eng_store_tree(struct ctx *c, const struct cf_tree *t, uint8_t id[CF_ID_LEN])
{
	bool added = false;
	uint64_t stored = 0;
	int rc = cf_repo_save_tree(c->repo, t, id, &added, &stored);
	if (added) {
		c->sum->tree_blobs++;
		c->added_packed += stored;
	}
	if (rc == CF_OK)
		eng_dc_record(c, t, id);
	return rc;
}

/* Finish the nodes of a directory once its chunks are stored (and its
 * subdirectories finished later are finished), then store its tree (or
 * reuse the parent's: same_tree).  pd's entries are released either way. */
int eng_finish_tree(struct ctx *c, struct cf_tree *t, struct pending *pd, size_t npd,
		    struct batch *b, const struct cf_tree *old, const uint8_t *old_id,
		    uint8_t id[CF_ID_LEN])
{
	int rc = eng_batch_wait(c, b);
	for (size_t i = 0; i < npd; i++) {
		struct cf_node *n = &t->nodes[pd[i].node];
		if (pd[i].sub) {
			memcpy(n->subtree, pd[i].sub->id, CF_ID_LEN);
			eng_count_dir(c, &pd[i], n->subtree);
			free(pd[i].sub);
			pd[i].sub = NULL;
		} else if (!rc && !pd[i].reused && n->type == CF_NODE_FILE) {
			rc = eng_refs_to_node(&pd[i].refs, n);
		}
		eng_refs_free(&pd[i].refs);
	}
	if (rc)
		return rc;
	if (same_tree(c, t, old, old_id)) {
		memcpy(id, old_id, CF_ID_LEN);
		eng_dc_record(c, t, id);
		return CF_OK;
	}
	return eng_store_tree(c, t, id);
}

/* Drop what a directory job holds (after its chunks are all stored), but
 * not the job itself: its parent frees it. */
void eng_job_release(struct dirjob *j)
{
	for (size_t i = 0; i < j->npd; i++) {
		eng_refs_free(&j->pd[i].refs);
		free(j->pd[i].sub); /* finished before j: out of the queue */
		j->pd[i].sub = NULL;
	}
	free(j->pd);
	j->pd = NULL;
	j->npd = 0;
	cf_tree_release(&j->t);
	cf_tree_release(&j->old);
}

/* Finish the oldest waiting directories: those whose chunks are stored,
 * and while more than DEFER_MAX wait (or all, with all) the oldest even
 * if that means waiting for its chunks.  The first failure is returned;
 * the failed job is dropped like the rest (eng_dq_abort). */
int eng_dq_run(struct ctx *c, bool all)
{
	while (c->dq_head) {
		struct dirjob *j = c->dq_head;
		if (!all && c->dq_n <= DEFER_MAX && eng_batch_busy(&j->b))
			return CF_OK;
		c->dq_head = j->next;
		if (!c->dq_head)
			c->dq_tail = NULL;
		c->dq_n--;
		int rc = eng_finish_tree(c, &j->t, j->pd, j->npd, &j->b, j->has_old ? &j->old : NULL,
					 j->has_old ? j->old_id : NULL, j->id);
		eng_job_release(j);
		if (rc)
			return rc;
	}
	return CF_OK;
}

/* After a failure: wait for the chunks of every waiting directory and drop
 * them (their parents, on the walker's stack or later in the queue, free
 * the jobs themselves). */
void eng_dq_abort(struct ctx *c)
{
	while (c->dq_head) {
		struct dirjob *j = c->dq_head;
		c->dq_head = j->next;
		c->dq_n--;
		eng_batch_drain(c, &j->b);
		eng_job_release(j);
	}
	c->dq_tail = NULL;
}
