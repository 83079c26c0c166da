/*
 * copy.c - snapshots from one repository into another with a different key.
 *
 * Blob ids are keyed hashes (the repository's blob-id key), so the same
 * bytes have different ids in the two repositories: a data blob is read from
 * the source, its target id computed, and it is stored only if the target
 * lacks it; every tree is then rewritten bottom-up with the target's content
 * and subtree ids (tree encoding is deterministic, so an unchanged directory
 * still dedups in the target).  Blobs keep the source's chunk boundaries.
 *
 * A map from source to target id, shared across the snapshots of one run,
 * makes a blob or subtree shared by several snapshots cost one read.  It
 * holds 72 bytes per distinct blob copied.
 *
 * The new snapshot records the source snapshot's id in "original" (or the
 * source's own "original" when it is itself a copy), which is how a second
 * copy recognises what is already there.
 */
#include "repo/repo_int.h"
#include "repo/tree.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

struct cmap_ent {
	uint8_t src[CF_ID_LEN], dst[CF_ID_LEN];
	uint8_t type, used;
};

struct cf_copy_map {
	struct cmap_ent *e;
	size_t cap, n;
};

struct cf_copy_map *cf_copy_map_new(void)
{
	return calloc(1, sizeof(struct cf_copy_map));
}

void cf_copy_map_free(struct cf_copy_map *m)
{
	if (!m)
		return;
	free(m->e);
	free(m);
}

static const uint8_t *map_get(const struct cf_copy_map *m, int type, const uint8_t src[CF_ID_LEN])
{
	if (!m->cap)
		return NULL;
	uint64_t h;
	memcpy(&h, src, 8);
	for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const struct cmap_ent *e = &m->e[i];
		if (!e->used)
			return NULL;
		if (e->type == type && !memcmp(e->src, src, CF_ID_LEN))
			return e->dst;
	}
}

static void map_insert(struct cmap_ent *tab, size_t cap, const struct cmap_ent *v)
{
	uint64_t h;
	memcpy(&h, v->src, 8);
	size_t i = (size_t)h & (cap - 1);
	while (tab[i].used)
		i = (i + 1) & (cap - 1);
	tab[i] = *v;
	tab[i].used = 1;
}

static int map_put(struct cf_copy_map *m, int type, const uint8_t src[CF_ID_LEN], const uint8_t dst[CF_ID_LEN])
{
	if ((m->n + 1) * 4 > m->cap * 3) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		struct cmap_ent *t = calloc(cap, sizeof(*t));
		if (!t)
			return cf_err(CF_ENOMEM, "out of memory");
		for (size_t i = 0; i < m->cap; i++)
			if (m->e[i].used)
				map_insert(t, cap, &m->e[i]);
		free(m->e);
		m->e = t;
		m->cap = cap;
	}
	struct cmap_ent v = { .type = (uint8_t)type };
	memcpy(v.src, src, CF_ID_LEN);
	memcpy(v.dst, dst, CF_ID_LEN);
	map_insert(m->e, m->cap, &v);
	m->n++;
	return CF_OK;
}

struct copier {
	struct cf_repo *src, *dst;
	struct cf_copy_map *map;
	struct cf_copy_stats *st;
	struct cf_buf buf;
};

/* src and dst may be the same array (ids are rewritten in place). */
static int copy_data(struct copier *c, const uint8_t srcid[CF_ID_LEN], uint8_t dst[CF_ID_LEN])
{
	uint8_t src[CF_ID_LEN];
	memcpy(src, srcid, CF_ID_LEN);
	const uint8_t *hit = map_get(c->map, CF_BLOB_DATA, src);
	bool added = false;
	int rc;

	if (hit) {
		memcpy(dst, hit, CF_ID_LEN);
		return CF_OK;
	}
	c->st->data_blobs++;
	if ((rc = cf_repo_load_blob(c->src, CF_BLOB_DATA, src, &c->buf)))
		return rc;
	/* save_blob stores it only if the target lacks that id */
	if ((rc = cf_repo_save_blob(c->dst, CF_BLOB_DATA, c->buf.data, c->buf.len, dst, &added,
				    &c->st->bytes_stored)))
		return rc;
	if (added) {
		c->st->blobs_copied++;
		c->st->bytes_copied += c->buf.len;
	}
	return map_put(c->map, CF_BLOB_DATA, src, dst);
}

static int copy_tree(struct copier *c, const uint8_t srcid[CF_ID_LEN], uint8_t dst[CF_ID_LEN])
{
	struct cf_tree t = CF_TREE_INIT;
	uint8_t src[CF_ID_LEN];
	memcpy(src, srcid, CF_ID_LEN);
	const uint8_t *hit = map_get(c->map, CF_BLOB_TREE, src);
	bool added = false;
	int rc;

	if (hit) {
		memcpy(dst, hit, CF_ID_LEN);
		return CF_OK;
	}
	c->st->trees++;
	if ((rc = cf_repo_load_tree(c->src, src, &t)))
		return rc;
	for (size_t i = 0; i < t.n && !rc; i++) {
		struct cf_node *n = &t.nodes[i];
		if (n->type == CF_NODE_DIR && n->has_subtree)
			rc = copy_tree(c, n->subtree, n->subtree);
		for (size_t k = 0; k < n->ncontent && !rc; k++)
			rc = copy_data(c, n->content[k], n->content[k]);
		if (!rc && cf_interrupted)
			rc = cf_err(CF_EINTR, "interrupted");
	}
	if (!rc && !(rc = cf_repo_save_tree(c->dst, &t, dst, &added, &c->st->bytes_stored))) {
		if (added)
			c->st->blobs_copied++;
		rc = map_put(c->map, CF_BLOB_TREE, src, dst);
	}
	cf_tree_release(&t);
	return rc;
}

static int dup_strs(char **from, size_t n, int (*add)(struct cf_snapshot *, const char *),
		    struct cf_snapshot *s)
{
	int rc = CF_OK;
	for (size_t i = 0; i < n && !rc; i++)
		rc = add(s, from[i]);
	return rc;
}

int cf_repo_copy_snapshot(struct cf_repo *src, struct cf_repo *dst, const struct cf_snapshot *s,
			  struct cf_copy_map *map, struct cf_copy_stats *st, uint8_t new_id[CF_ID_LEN])
{
	struct copier c = { src, dst, map, st, CF_BUF_INIT };
	struct cf_snapshot n;
	int rc;

	memset(&n, 0, sizeof(n));
	if ((rc = copy_tree(&c, s->tree, n.tree)))
		goto out;
	if ((rc = cf_repo_flush(dst)))
		goto out;
	n.time_ns = s->time_ns;
	n.uid = s->uid;
	n.gid = s->gid;
	if (!(n.hostname = strdup(s->hostname ? s->hostname : "")) ||
	    (s->username && !(n.username = strdup(s->username))) ||
	    (s->program_version && !(n.program_version = strdup(s->program_version)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dup_strs(s->paths, s->npaths, cf_snapshot_add_path, &n)) ||
	    (rc = dup_strs(s->tags, s->ntags, cf_snapshot_add_tag, &n)) ||
	    (rc = cf_snapshot_copy_sources(&n, s->sources, s->nsources)))
		goto out;
	/* the summary describes the source run; the parent is a source id */
	n.has_summary = s->has_summary;
	n.summary = s->summary;
	n.has_original = true;
	memcpy(n.original, s->has_original ? s->original : s->id, CF_ID_LEN);
	if ((rc = cf_repo_save_snapshot(dst, &n)))
		goto out;
	memcpy(new_id, n.id, CF_ID_LEN);
out:
	cf_snapshot_release(&n);
	cf_buf_release(&c.buf);
	return rc;
}
