/* engine/dircache.c - the local directory cache's payload (see dircache.h). */
#include "engine/dircache.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "CFDC"
#define VERSION 1u
#define HEAD (4 + 4 + CF_DC_ID + 4)

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static int cmp_entry(const void *a, const void *b)
{
	return memcmp(((const struct cf_dc_entry *)a)->id, ((const struct cf_dc_entry *)b)->id, CF_DC_ID);
}

void cf_dc_release(struct cf_dircache *dc)
{
	cf_buf_release(&dc->payload);
	free(dc->e);
	dc->e = NULL;
	dc->n = 0;
}

static int bad(struct cf_dircache *dc, const char *what)
{
	cf_dc_release(dc);
	return cf_err(CF_EFORMAT, "directory cache: %s", what);
}

int cf_dc_parse(const void *p, size_t n, struct cf_dircache *dc)
{
	int rc;
	cf_dc_release(dc);
	if (n < HEAD || memcmp(p, MAGIC, 4))
		return bad(dc, "not a directory cache");
	if (get32((const uint8_t *)p + 4) != VERSION)
		return bad(dc, "unknown version");
	if ((rc = cf_buf_add(&dc->payload, p, n)))
		return rc;
	const uint8_t *b = dc->payload.data, *end = b + n;
	memcpy(dc->snapshot, b + 8, CF_DC_ID);
	uint32_t count = get32(b + 8 + CF_DC_ID);
	/* every entry takes at least 68 bytes: a count beyond that is a lie */
	if (count > (n - HEAD) / (2 * CF_DC_ID + 4))
		return bad(dc, "entry count exceeds the file");
	if (count && !(dc->e = calloc(count, sizeof(*dc->e)))) {
		cf_dc_release(dc);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	const uint8_t *q = b + HEAD;
	for (uint32_t i = 0; i < count; i++) {
		if ((size_t)(end - q) < 2 * CF_DC_ID + 4)
			return bad(dc, "truncated entry");
		struct cf_dc_entry *e = &dc->e[i];
		e->id = q;
		e->digest = q + CF_DC_ID;
		e->nsub = get32(q + 2 * CF_DC_ID);
		q += 2 * CF_DC_ID + 4;
		e->subs = q;
		const uint8_t *prev = NULL;
		size_t prevlen = 0;
		for (uint32_t k = 0; k < e->nsub; k++) {
			if (end - q < 2)
				return bad(dc, "truncated entry");
			size_t len = (size_t)q[0] | (size_t)q[1] << 8;
			if (len == 0 || (size_t)(end - q - 2) < len + CF_DC_ID)
				return bad(dc, "truncated entry");
			if (memchr(q + 2, 0, len))
				return bad(dc, "a name holds a NUL byte");
			/* names in strictly ascending byte order, as in the tree */
			if (prev) {
				int c = memcmp(prev, q + 2, len < prevlen ? len : prevlen);
				if (c > 0 || (c == 0 && prevlen >= len))
					return bad(dc, "subdirectories out of order");
			}
			prev = q + 2;
			prevlen = len;
			q += 2 + len + CF_DC_ID;
		}
	}
	if (q != end)
		return bad(dc, "trailing bytes");
	dc->n = count;
	if (count > 1) {
		qsort(dc->e, count, sizeof(*dc->e), cmp_entry);
		size_t w = 1; /* identical trees (empty directories) are listed once */
		for (size_t i = 1; i < count; i++)
			if (memcmp(dc->e[i].id, dc->e[w - 1].id, CF_DC_ID))
				dc->e[w++] = dc->e[i];
		dc->n = w;
	}
	return CF_OK;
}

const struct cf_dc_entry *cf_dc_find(const struct cf_dircache *dc, const uint8_t id[CF_DC_ID])
{
	size_t lo = 0, hi = dc->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(dc->e[mid].id, id, CF_DC_ID);
		if (c == 0)
			return &dc->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void cf_dc_sub(const uint8_t **cur, const char **name, size_t *len, const uint8_t **id)
{
	const uint8_t *q = *cur;
	*len = (size_t)q[0] | (size_t)q[1] << 8;
	*name = (const char *)q + 2;
	*id = q + 2 + *len;
	*cur = q + 2 + *len + CF_DC_ID;
}

int cf_dc_begin(struct cf_buf *out)
{
	uint8_t head[HEAD] = { 0 };
	memcpy(head, MAGIC, 4);
	put32(head + 4, VERSION);
	cf_buf_reset(out);
	return cf_buf_add(out, head, sizeof(head));
}

int cf_dc_add(struct cf_buf *out, const uint8_t id[CF_DC_ID], const uint8_t digest[CF_DC_ID], uint32_t nsub)
{
	uint8_t n4[4];
	int rc;
	put32(n4, nsub);
	if ((rc = cf_buf_add(out, id, CF_DC_ID)) || (rc = cf_buf_add(out, digest, CF_DC_ID)))
		return rc;
	return cf_buf_add(out, n4, 4);
}

int cf_dc_add_sub(struct cf_buf *out, const char *name, const uint8_t id[CF_DC_ID])
{
	size_t len = strlen(name);
	int rc;
	if (len == 0 || len > 0xffff)
		return cf_err(CF_EINVAL, "directory cache: name of %zu bytes", len);
	uint8_t l2[2] = { (uint8_t)len, (uint8_t)(len >> 8) };
	if ((rc = cf_buf_add(out, l2, 2)) || (rc = cf_buf_add(out, name, len)))
		return rc;
	return cf_buf_add(out, id, CF_DC_ID);
}

void cf_dc_finish(struct cf_buf *out, const uint8_t snapshot[CF_DC_ID], uint32_t count)
{
	memcpy(out->data + 8, snapshot, CF_DC_ID);
	put32(out->data + 8 + CF_DC_ID, count);
}

