/*
 * index_file.c - the repository's index: index files read and merged into
 * the in-memory index (index.c), looked up, and written.
 *
 * Every index file lists, per pack, the entries of its header; the index
 * in memory is the union of all of them (doc/repo-format.md, "Index
 * files").  A blob listed at several places keeps each (index.c's side
 * table), and a location whose pack the store has is made the main one.
 * Blobs of packs still being written are in the index too, flagged
 * CF_FLAG_PENDING: found by dedup, not by readers, and written to the next
 * index file only once their pack is durable (pack.c).
 */
#include "repo/repo_int.h"
#include "common/array.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

/* ---- lookups ---- */

bool cf_repo_has_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN])
{
	pthread_mutex_lock(&r->mu);
	struct cf_ientry *e = cf_index_get(&r->idx, type, id);
	bool has = e != NULL;
	if (e && !(e->flags & CF_FLAG_PENDING))
		cf_repo_note_pack(r, e->pack); /* checked before the snapshot (lock.c) */
	pthread_mutex_unlock(&r->mu);
	return has;
}

int cf_repo_lookup(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN], struct cf_blob_loc *loc)
{
	return cf_repo_lookup_nth(r, type, id, 0, loc);
}

int cf_repo_lookup_nth(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN], unsigned k,
		       struct cf_blob_loc *loc)
{
	int rc = CF_OK;
	char hex[CF_ID_HEX];
	pthread_mutex_lock(&r->mu);
	struct cf_ientry *e = cf_index_get(&r->idx, type, id);
	if (e && k && !(e->flags & CF_FLAG_PENDING))
		e = cf_index_alt(&r->idx, e, k - 1);
	else if (k)
		e = NULL;
	if (!e || (e->flags & CF_FLAG_PENDING)) {
		cf_hex(id, CF_ID_LEN, hex);
		rc = k ? CF_ENOENT
		       : cf_err(CF_ENOENT, "%s blob %s is not in the index",
				type == CF_BLOB_TREE ? "tree" : "data", hex);
	} else {
		memcpy(loc->pack, r->idx.packs[e->pack], CF_ID_LEN);
		loc->offset = e->offset;
		loc->length = e->length;
		loc->rawlen = e->rawlen;
		loc->flags = e->flags;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int cf_repo_index_foreach(struct cf_repo *r, cf_index_fn fn, void *ctx)
{
	for (size_t i = 0; i < r->idx.cap; i++) {
		struct cf_ientry *e = &r->idx.slots[i];
		if (!e->used || (e->flags & CF_FLAG_PENDING))
			continue;
		struct cf_blob_loc loc;
		memcpy(loc.pack, r->idx.packs[e->pack], CF_ID_LEN);
		loc.offset = e->offset;
		loc.length = e->length;
		loc.rawlen = e->rawlen;
		loc.flags = e->flags;
		int rc = fn(e->type, e->id, &loc, ctx);
		if (rc)
			return rc;
	}
	return CF_OK;
}

/* ---- index files ---- */

/* Write an index file for the packs uploaded since the last one.  Takes the
 * pending list under r->mu and writes it outside the lock, so uploader
 * threads may call it while others go on. */
int cf_repo_write_index(struct cf_repo *r)
{
	struct cf_buf b = CF_BUF_INIT, list;
	uint8_t h[12];
	char hex[CF_ID_HEX];
	size_t npacks;
	int rc;

	pthread_mutex_lock(&r->mu);
	list = r->new_index;
	npacks = r->new_index_packs;
	r->new_index = (struct cf_buf)CF_BUF_INIT;
	r->new_index_packs = 0;
	pthread_mutex_unlock(&r->mu);
	if (!npacks)
		return CF_OK;
	memcpy(h, CF_INDEX_MAGIC, 4);
	cf_put_le32(h + 4, 1);
	cf_put_le32(h + 8, (uint32_t)npacks);
	if ((rc = cf_buf_add(&b, h, sizeof(h))) || (rc = cf_buf_add(&b, list.data, list.len)))
		goto out;
	if ((rc = cf_repo_put_hashed(r, "index", CF_OBJ_INDEX, b.data, b.len, hex, NULL)))
		rc = cf_err_prefix(rc, "write index");
out:
	cf_buf_release(&b);
	cf_buf_release(&list);
	return rc;
}

int cf_index_parse(const char *name, const uint8_t *p, size_t n, cf_index_entry_fn fn, void *ctx)
{
	if (n < 12 || memcmp(p, CF_INDEX_MAGIC, 4) != 0 || cf_get_le32(p + 4) != 1)
		return cf_err(CF_ECORRUPT, "index %s: bad header", name);
	uint32_t npacks = cf_get_le32(p + 8);
	size_t off = 12;
	for (uint32_t i = 0; i < npacks; i++) {
		if (n - off < CF_ID_LEN + 4)
			return cf_err(CF_ECORRUPT, "index %s: truncated", name);
		const uint8_t *packid = p + off;
		uint32_t cnt = cf_get_le32(p + off + CF_ID_LEN);
		off += CF_ID_LEN + 4;
		if ((n - off) / CF_ENTRY_SIZE < cnt)
			return cf_err(CF_ECORRUPT, "index %s: truncated", name);
		for (uint32_t k = 0; k < cnt; k++) {
			struct cf_pack_entry pe;
			cf_entry_decode(p + off, &pe);
			off += CF_ENTRY_SIZE;
			if ((pe.type != CF_BLOB_DATA && pe.type != CF_BLOB_TREE) ||
			    (pe.flags & ~CF_FLAG_ZSTD) || pe.length < CF_SEAL_OVERHEAD ||
			    (uint64_t)pe.offset + pe.length > UINT32_MAX)
				return cf_err(CF_ECORRUPT, "index %s: bad entry", name);
			int rc = fn(packid, &pe, ctx);
			if (rc)
				return rc;
		}
	}
	if (off != n)
		return cf_err(CF_ECORRUPT, "index %s: trailing bytes", name);
	return CF_OK;
}

struct merge {
	struct cf_repo *r;
	const uint8_t *last_pack;
	uint32_t num;
};

static int merge_entry(const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *pe, void *ctx)
{
	struct merge *m = ctx;
	int rc;
	if (m->last_pack != packid) {
		if ((rc = cf_index_add_pack(&m->r->idx, packid, &m->num)))
			return rc;
		m->last_pack = packid;
	}
	struct cf_ientry e = { .pack = m->num, .offset = pe->offset, .length = pe->length,
			       .rawlen = pe->rawlen, .type = pe->type, .flags = pe->flags };
	memcpy(e.id, pe->id, CF_ID_LEN);
	return cf_index_put_loc(&m->r->idx, &e);
}

/* Parse a decoded index file and merge it. */
static int index_merge(struct cf_repo *r, const char *name, const uint8_t *p, size_t n)
{
	struct merge m = { r, NULL, 0 };
	return cf_index_parse(name, p, n, merge_entry, &m);
}

struct idxload {
	struct cf_repo *r;
	int bad;
};

static int load_one_index(const char *name, uint64_t size, void *ctx)
{
	struct idxload *il = ctx;
	struct cf_buf b = CF_BUF_INIT;
	(void)size;
	/* an index file is named by the hash of its bytes: one stored under
	 * another's name (swapped, replayed over it) is not used */
	int rc = cf_repo_get_named(il->r, "index", name, CF_OBJ_INDEX, &b);
	if (!rc)
		rc = index_merge(il->r, name, b.data, b.len);
	cf_buf_release(&b);
	if (rc && rc != CF_ENOMEM && rc != CF_EINTR) {
		/* one damaged or unreadable index must not make the rest
		 * unreadable: what only it knows then fails by name (blob, file),
		 * its packs are still there for check to name.  A half-merged
		 * file leaves only correct locations behind (each entry is
		 * authenticated with the file), so nothing needs undoing. */
		cf_warn("warning: %s (index file %.16s skipped)", cf_errmsg(rc), name);
		cf_err_clear();
		il->bad++;
		return 0;
	}
	return rc;
}

struct packlist {
	uint8_t (*id)[CF_ID_LEN];
	size_t n, cap;
};

static int list_pack_id(const char *name, uint64_t size, void *ctx)
{
	struct packlist *pl = ctx;
	(void)size;
	if (CF_GROW(pl->id, pl->n + 1, pl->cap))
		return CF_ENOMEM;
	if (!cf_unhex(name, pl->id[pl->n], CF_ID_LEN))
		pl->n++;
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, CF_ID_LEN);
}

static bool pack_listed(const struct packlist *pl, const uint8_t id[CF_ID_LEN])
{
	return pl->n && bsearch(id, pl->id, pl->n, CF_ID_LEN, cmp_id);
}

/* Blobs listed at several places: make a location whose pack the store has
 * the main one, so that a replayed index from before a prune (naming packs
 * prune deleted) costs no failed read and every planner (restore, prune)
 * sees the copy that is there.  One listing of data/, only when some blob
 * has more than one location. */
static int prefer_existing_packs(struct cf_repo *r)
{
	struct packlist pl = { NULL, 0, 0 };
	int rc;
	if ((rc = cf_be_list(r->be, "data", list_pack_id, &pl)))
		goto out;
	if (pl.n)
		qsort(pl.id, pl.n, CF_ID_LEN, cmp_id);
	for (size_t i = 0; i < r->idx.cap; i++) {
		struct cf_ientry *e = &r->idx.slots[i];
		if (!e->used || !e->nalt || pack_listed(&pl, r->idx.packs[e->pack]))
			continue;
		for (unsigned k = 0; k < e->nalt; k++) {
			struct cf_ientry *a = cf_index_alt(&r->idx, e, k);
			if (a && pack_listed(&pl, r->idx.packs[a->pack])) {
				cf_index_alt_swap(&r->idx, e, k);
				break;
			}
		}
	}
out:
	free(pl.id);
	return rc;
}

int cf_repo_load_index(struct cf_repo *r)
{
	struct idxload il = { r, 0 };
	int rc = cf_be_list(r->be, "index", load_one_index, &il);
	if (!rc && r->idx.naltn)
		rc = prefer_existing_packs(r);
	return rc;
}

int cf_repo_reload_index(struct cf_repo *r)
{
	pthread_mutex_lock(&r->mu);
	cf_index_release(&r->idx);
	pthread_mutex_unlock(&r->mu);
	return cf_repo_load_index(r);
}
