/*
 * index.c - the in-memory blob index: (type, id) -> pack, offset, lengths.
 *
 * An open-addressing hash table with linear probing, keyed by the first 8
 * bytes of the id (ids are uniformly distributed hashes, so no mixing is
 * needed).  About 48 bytes per blob: a repository of 2 million 1 MiB blobs
 * (2 TiB) needs ~130 MiB at the 75% load factor.  Pack ids are stored once,
 * entries refer to them by number.
 */
#include "repo_int.h"
#include "../common/error.h"

#include <stdlib.h>
#include <string.h>

void cf_index_release(struct cf_index *ix)
{
	free(ix->slots);
	free(ix->packs);
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

int cf_index_add_pack(struct cf_index *ix, const uint8_t id[CF_ID_LEN], uint32_t *num)
{
	/* callers add packs in runs (one index file at a time), so checking the
	 * last one catches the common duplicate without a second hash table */
	if (ix->npacks && memcmp(ix->packs[ix->npacks - 1], id, CF_ID_LEN) == 0) {
		*num = (uint32_t)(ix->npacks - 1);
		return CF_OK;
	}
	if (ix->npacks == ix->packcap) {
		size_t cap = ix->packcap ? ix->packcap * 2 : 256;
		void *p = realloc(ix->packs, cap * CF_ID_LEN);
		if (!p)
			return cf_err(CF_ENOMEM, "out of memory");
		ix->packs = p;
		ix->packcap = cap;
	}
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
