/*
 * stats.c - how big the repository is, and how much deduplication saves.
 *
 * Three sizes answer different questions: the packs in data/ are what the
 * store bills for; the plaintext of the distinct blobs is what that would
 * be without compression; the files of all snapshots, each counted in every
 * snapshot that holds it, is what the backups would take without
 * deduplication (restic's "restore size").  The last needs every snapshot's
 * trees; a subtree shared by snapshots is read once and its totals reused,
 * so the walk costs the number of distinct trees, not of snapshots.
 */
#include "repo/repo_int.h"
#include "repo/tree.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

/* tree id -> (files, bytes) of everything below it */
struct tsum {
	uint8_t id[CF_ID_LEN];
	uint64_t files, bytes;
	bool used;
};

struct tmap {
	struct tsum *s;
	size_t cap, n;
};

static struct tsum *tmap_get(struct tmap *m, const uint8_t id[CF_ID_LEN])
{
	if (!m->cap)
		return NULL;
	uint64_t h;
	memcpy(&h, id, 8);
	for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->s[i].used)
			return NULL;
		if (!memcmp(m->s[i].id, id, CF_ID_LEN))
			return &m->s[i];
	}
}

static int tmap_put(struct tmap *m, const struct tsum *v)
{
	if ((m->n + 1) * 4 > m->cap * 3) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		struct tsum *s = calloc(cap, sizeof(*s));
		if (!s)
			return cf_err(CF_ENOMEM, "out of memory");
		struct tmap nm = { s, cap, 0 };
		for (size_t i = 0; i < m->cap; i++)
			if (m->s[i].used)
				tmap_put(&nm, &m->s[i]);
		free(m->s);
		*m = nm;
	}
	uint64_t h;
	memcpy(&h, v->id, 8);
	size_t i = (size_t)h & (m->cap - 1);
	while (m->s[i].used)
		i = (i + 1) & (m->cap - 1);
	m->s[i] = *v;
	m->s[i].used = true;
	m->n++;
	return CF_OK;
}

static int sum_tree(struct cf_repo *r, struct tmap *m, const uint8_t id[CF_ID_LEN],
		    uint64_t *files, uint64_t *bytes)
{
	struct cf_tree t = CF_TREE_INIT;
	struct tsum v = { .used = true };
	const struct tsum *hit = tmap_get(m, id);
	int rc;

	if (hit) {
		*files += hit->files;
		*bytes += hit->bytes;
		return CF_OK;
	}
	if ((rc = cf_repo_load_tree(r, id, &t)))
		return rc;
	for (size_t i = 0; i < t.n && !rc; i++) {
		const struct cf_node *n = &t.nodes[i];
		if (n->type == CF_NODE_DIR && n->has_subtree) {
			rc = sum_tree(r, m, n->subtree, &v.files, &v.bytes);
		} else if (n->type == CF_NODE_FILE) {
			v.files++;
			v.bytes += n->size;
		}
	}
	cf_tree_release(&t);
	if (rc)
		return rc;
	memcpy(v.id, id, CF_ID_LEN);
	*files += v.files;
	*bytes += v.bytes;
	return tmap_put(m, &v);
}

static int count_blob(int type, const uint8_t id[CF_ID_LEN], const struct cf_blob_loc *loc, void *ctx)
{
	struct cf_repo_stats *st = ctx;
	(void)id;
	if (type == CF_BLOB_TREE)
		st->tree_blobs++;
	else
		st->data_blobs++;
	st->raw_bytes += loc->rawlen;
	st->stored_blob_bytes += loc->length;
	return 0;
}

static int count_pack(const char *name, uint64_t size, void *ctx)
{
	struct cf_repo_stats *st = ctx;
	if (strlen(name) == CF_ID_HEX - 1) {
		st->packs++;
		st->pack_bytes += size;
	}
	return 0;
}

int cf_repo_pack_totals(struct cf_repo *r, uint64_t *packs, uint64_t *bytes)
{
	struct cf_repo_stats st;
	memset(&st, 0, sizeof(st));
	int rc = cf_be_list(r->be, "data", count_pack, &st);
	*packs = st.packs;
	*bytes = st.pack_bytes;
	return rc;
}

int cf_repo_stats(struct cf_repo *r, struct cf_repo_stats *st)
{
	struct cf_snapshot *snaps = NULL;
	struct tmap m = { NULL, 0, 0 };
	size_t n = 0;
	int rc;

	memset(st, 0, sizeof(*st));
	if ((rc = cf_be_list(r->be, "data", count_pack, st)) ||
	    (rc = cf_repo_index_foreach(r, count_blob, st)) ||
	    (rc = cf_repo_snapshots(r, &snaps, &n, NULL)))
		goto out;
	st->snapshots = n;
	for (size_t i = 0; i < n && !rc; i++) {
		rc = sum_tree(r, &m, snaps[i].tree, &st->files, &st->file_bytes);
		if (rc) {
			char hex[CF_ID_HEX];
			cf_hex(snaps[i].id, CF_ID_LEN, hex);
			rc = cf_err_prefix(rc, "snapshot %.8s", hex);
		}
	}
out:
	cf_snapshots_free(snaps, n);
	free(m.s);
	return rc;
}
