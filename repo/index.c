/*
 * index.c - the in-memory blob index: (type, id) -> pack, offset, lengths.
 *
 * An open-addressing hash table with linear probing, keyed by the first 8
 * bytes of the id (ids are uniformly distributed hashes, so no mixing is
 * needed).  About 48 bytes per blob: a repository of 2 million 1 MiB blobs
 * (2 TiB) needs ~130 MiB at the 75% load factor.  Pack ids are stored once,
 * entries refer to them by number.
 *
 * A blob listed at more than one place (a replayed index file from before a
 * prune, two writers that stored the same blob) keeps its first location in
 * the main table and the others in a side table of the same shape, which
 * holds only those extra locations (52 bytes each): readers try them in turn
 * when the first fails, so one stale location cannot hide a good copy.
 */
#include "repo/repo_int.h"
#include "common/array.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

void cf_index_release(struct cf_index *ix)
{
	free(ix->slots);
	free(ix->packs);
	free(ix->alt);
	memset(ix, 0, sizeof(*ix));
}

static size_t slot_of(const uint8_t *id, size_t cap)
{
	uint64_t h;
	memcpy(&h, id, 8);
	return (size_t)h & (cap - 1);
}

struct cf_ientry *cf_index_get(struct cf_index *ix, int type, const uint8_t id[CF_ID_LEN])
{
	if (!ix->cap)
		return NULL;
	for (size_t i = slot_of(id, ix->cap);; i = (i + 1) & (ix->cap - 1)) {
		struct cf_ientry *e = &ix->slots[i];
		if (!e->used)
			return NULL;
		if (e->type == type && memcmp(e->id, id, CF_ID_LEN) == 0)
			return e;
	}
}

static void insert_slot(struct cf_ientry *slots, size_t cap, const struct cf_ientry *e)
{
	size_t i = slot_of(e->id, cap);
	while (slots[i].used)
		i = (i + 1) & (cap - 1);
	slots[i] = *e;
	slots[i].used = 1;
}

int cf_index_put(struct cf_index *ix, const struct cf_ientry *e)
{
	if (cf_index_get(ix, e->type, e->id))
		return CF_OK;
	if ((ix->n + 1) * 4 > ix->cap * 3) {
		size_t cap = ix->cap ? ix->cap * 2 : 1024;
		struct cf_ientry *s = calloc(cap, sizeof(*s));
		if (!s)
			return cf_err(CF_ENOMEM, "out of memory growing the index to %zu entries", cap);
		for (size_t i = 0; i < ix->cap; i++)
			if (ix->slots[i].used)
				insert_slot(s, cap, &ix->slots[i]);
		free(ix->slots);
		ix->slots = s;
		ix->cap = cap;
	}
	insert_slot(ix->slots, ix->cap, e);
	ix->n++;
	return CF_OK;
}

static bool same_place(const struct cf_ientry *a, const struct cf_ientry *b)
{
	return a->pack == b->pack && a->offset == b->offset;
}

/* The k-th slot of the side table holding key (type, id), or NULL. */
static struct cf_ientry *alt_find(struct cf_index *ix, int type, const uint8_t *id, unsigned k)
{
	if (!ix->altcap)
		return NULL;
	for (size_t i = slot_of(id, ix->altcap);; i = (i + 1) & (ix->altcap - 1)) {
		struct cf_ientry *e = &ix->alt[i];
		if (!e->used)
			return NULL;
		if (e->type == type && memcmp(e->id, id, CF_ID_LEN) == 0 && k-- == 0)
			return e;
	}
}

int cf_index_put_loc(struct cf_index *ix, const struct cf_ientry *e)
{
	struct cf_ientry *m = cf_index_get(ix, e->type, e->id);
	if (!m)
		return cf_index_put(ix, e);
	if (same_place(m, e) || m->nalt >= CF_INDEX_MAX_ALT)
		return CF_OK;
	for (unsigned k = 0; k < m->nalt; k++)
		if (same_place(alt_find(ix, e->type, e->id, k), e))
			return CF_OK;
	if ((ix->naltn + 1) * 4 > ix->altcap * 3) {
		size_t cap = ix->altcap ? ix->altcap * 2 : 64;
		struct cf_ientry *s = calloc(cap, sizeof(*s));
		if (!s)
			return cf_err(CF_ENOMEM, "out of memory growing the index's side table to %zu entries", cap);
		/* the order of one key's alternates may change here: callers
		 * never keep a number k across an insert */
		for (size_t i = 0; i < ix->altcap; i++)
			if (ix->alt[i].used)
				insert_slot(s, cap, &ix->alt[i]);
		free(ix->alt);
		ix->alt = s;
		ix->altcap = cap;
	}
	insert_slot(ix->alt, ix->altcap, e);
	ix->naltn++;
	m->nalt++;
	return CF_OK;
}

struct cf_ientry *cf_index_alt(struct cf_index *ix, const struct cf_ientry *e, unsigned k)
{
	if (k >= e->nalt)
		return NULL;
	return alt_find(ix, e->type, e->id, k);
}

void cf_index_alt_swap(struct cf_index *ix, struct cf_ientry *e, unsigned k)
{
	struct cf_ientry *a = cf_index_alt(ix, e, k);
	if (!a)
		return;
	uint32_t pack = a->pack, offset = a->offset, length = a->length, rawlen = a->rawlen;
	uint8_t flags = a->flags;
	a->pack = e->pack, a->offset = e->offset, a->length = e->length, a->rawlen = e->rawlen;
	a->flags = e->flags;
	e->pack = pack, e->offset = offset, e->length = length, e->rawlen = rawlen;
	e->flags = flags;
}

int cf_index_add_pack(struct cf_index *ix, const uint8_t id[CF_ID_LEN], uint32_t *num)
{
	/* callers add packs in runs (one index file at a time), so checking the
	 * last one catches the common duplicate without a second hash table */
	if (ix->npacks && memcmp(ix->packs[ix->npacks - 1], id, CF_ID_LEN) == 0) {
		*num = (uint32_t)(ix->npacks - 1);
		return CF_OK;
	}
	if (CF_GROW(ix->packs, ix->npacks + 1, ix->packcap))
		return CF_ENOMEM;
	memcpy(ix->packs[ix->npacks], id, CF_ID_LEN);
	*num = (uint32_t)ix->npacks++;
	return CF_OK;
}

void cf_entry_encode(const struct cf_pack_entry *e, uint8_t *p)
{
	p[0] = e->type;
	p[1] = e->flags;
	memcpy(p + 2, e->id, CF_ID_LEN);
	cf_put_le32(p + 2 + CF_ID_LEN, e->offset);
	cf_put_le32(p + 6 + CF_ID_LEN, e->length);
	cf_put_le32(p + 10 + CF_ID_LEN, e->rawlen);
}

void cf_entry_decode(const uint8_t *p, struct cf_pack_entry *e)
{
	e->type = p[0];
	e->flags = p[1];
	memcpy(e->id, p + 2, CF_ID_LEN);
	e->offset = cf_get_le32(p + 2 + CF_ID_LEN);
	e->length = cf_get_le32(p + 6 + CF_ID_LEN);
	e->rawlen = cf_get_le32(p + 10 + CF_ID_LEN);
}
