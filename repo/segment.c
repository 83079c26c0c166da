/*
 * segment.c - SQLite replication objects: segments of WAL frames and
 * generation records (segment.h; doc/repo-format.md, "SQLite replication").
 */
#include "repo/segment.h"
#include "repo/repo_int.h"
#include "common/error.h"
#include "common/util.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* header: magic, version, gen (16 bytes), seq, page size, tx count */
#define SEG_HDR (4 + 4 + 16 + 8 + 4 + 4)
#define TX_HDR (8 + 4 + 4)
#define SEG_FLAG_ZSTD 1

int cf_seg_begin(struct cf_buf *out, const char *gen, uint64_t seq, uint32_t page_size)
{
	uint8_t h[SEG_HDR];
	memcpy(h, CF_SEG_MAGIC, 4);
	cf_put_le32(h + 4, CF_SEG_VERSION);
	if (strlen(gen) != 32 || cf_unhex(gen, h + 8, 16))
		return cf_err(CF_EINVAL, "bad generation name '%s'", gen);
	cf_put_le64(h + 24, seq);
	cf_put_le32(h + 32, page_size);
	cf_put_le32(h + 36, 0);
	cf_buf_reset(out);
	return cf_buf_add(out, h, sizeof(h));
}

int cf_seg_add_tx(struct cf_buf *out, int64_t time_ns, uint32_t db_pages, uint32_t n,
		  const uint32_t *pgnos, const uint8_t *pages, uint32_t page_size)
{
	uint8_t h[TX_HDR], pg[4];
	int rc;
	cf_put_le64(h, (uint64_t)time_ns);
	cf_put_le32(h + 8, db_pages);
	cf_put_le32(h + 12, n);
	if ((rc = cf_buf_grow(out, TX_HDR + (size_t)n * (4 + page_size))) ||
	    (rc = cf_buf_add(out, h, sizeof(h))))
		return rc;
	for (uint32_t i = 0; i < n; i++) {
		cf_put_le32(pg, pgnos[i]);
		if ((rc = cf_buf_add(out, pg, 4)) ||
		    (rc = cf_buf_add(out, pages + (size_t)i * page_size, page_size)))
			return rc;
	}
	return CF_OK;
}

void cf_seg_finish(struct cf_buf *out, uint32_t ntx)
{
	if (out->len >= SEG_HDR)
		cf_put_le32(out->data + 36, ntx);
}

void cf_seg_release(struct cf_segment *seg)
{
	if (!seg)
		return;
	for (size_t i = 0; i < seg->ntx; i++)
		free(seg->tx[i].frames);
	free(seg->tx);
	memset(seg, 0, sizeof(*seg));
}

/* A page size SQLite can have: a power of two from 512 to 65536. */
static bool page_size_ok(uint32_t ps)
{
	return ps >= 512 && ps <= 65536 && !(ps & (ps - 1));
}

int cf_seg_parse(const uint8_t *p, size_t n, struct cf_segment *seg)
{
	size_t off = SEG_HDR;
	uint32_t ntx;
	int rc = CF_OK;

	memset(seg, 0, sizeof(*seg));
	if (n < SEG_HDR || memcmp(p, CF_SEG_MAGIC, 4))
		return cf_err(CF_ECORRUPT, "segment: not a segment (bad magic or too short)");
	if (cf_get_le32(p + 4) != CF_SEG_VERSION)
		return cf_err(CF_EFORMAT, "segment: version %" PRIu32 " is not supported (this coffer reads %d)",
			      cf_get_le32(p + 4), CF_SEG_VERSION);
	cf_hex(p + 8, 16, seg->gen);
	seg->seq = cf_get_le64(p + 24);
	seg->page_size = cf_get_le32(p + 32);
	ntx = cf_get_le32(p + 36);
	if (!page_size_ok(seg->page_size))
		return cf_err(CF_ECORRUPT, "segment: bad page size %" PRIu32, seg->page_size);
	/* each transaction takes at least its header and one frame */
	if (ntx > (n - off) / (TX_HDR + 4 + seg->page_size))
		return cf_err(CF_ECORRUPT, "segment: %" PRIu32 " transactions do not fit in %zu bytes", ntx, n);
	if (ntx && !(seg->tx = calloc(ntx, sizeof(*seg->tx))))
		return cf_err(CF_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < ntx; i++) {
		struct cf_seg_tx *t = &seg->tx[i];
		size_t fsz = 4 + (size_t)seg->page_size;
		seg->ntx = i + 1;
		if (n - off < TX_HDR) {
			rc = cf_err(CF_ECORRUPT, "segment: transaction %" PRIu32 " is cut off", i);
			goto fail;
		}
		t->time_ns = (int64_t)cf_get_le64(p + off);
		t->db_pages = cf_get_le32(p + off + 8);
		t->nframes = cf_get_le32(p + off + 12);
		off += TX_HDR;
		if (!t->nframes || t->nframes > (n - off) / fsz) {
			rc = cf_err(CF_ECORRUPT, "segment: transaction %" PRIu32 " has %" PRIu32
				    " frames, which do not fit", i, t->nframes);
			goto fail;
		}
		if (!t->db_pages) {
			rc = cf_err(CF_ECORRUPT, "segment: transaction %" PRIu32 " leaves an empty database", i);
			goto fail;
		}
		if (i && t->time_ns < seg->tx[i - 1].time_ns) {
			rc = cf_err(CF_ECORRUPT, "segment: transaction %" PRIu32 " goes back in time", i);
			goto fail;
		}
		if (!(t->frames = calloc(t->nframes, sizeof(*t->frames)))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto fail;
		}
		for (uint32_t k = 0; k < t->nframes; k++) {
			t->frames[k].pgno = cf_get_le32(p + off);
			t->frames[k].page = p + off + 4;
			if (!t->frames[k].pgno) {
				rc = cf_err(CF_ECORRUPT, "segment: transaction %" PRIu32 " writes page 0", i);
				goto fail;
			}
			off += fsz;
		}
	}
	if (off != n) {
		rc = cf_err(CF_ECORRUPT, "segment: %zu bytes after the last transaction", n - off);
		goto fail;
	}
	return CF_OK;
fail:
	cf_seg_release(seg);
	return rc;
}

/* ---- names ---- */

int cf_seg_db_key(struct cf_repo *r, const char *abspath, char db[CF_SEG_DB_HEX])
{
	static const char pfx[] = "coffer sqlite";
	struct cf_buf b = CF_BUF_INIT;
	uint8_t id[CF_ID_LEN];
	int rc;
	if ((rc = cf_buf_add(&b, pfx, sizeof(pfx))) || (rc = cf_buf_adds(&b, abspath)) ||
	    (rc = cf_repo_blob_id(r, b.data, b.len, id)))
		goto out;
	cf_hex(id, 16, db);
out:
	cf_buf_release(&b);
	return rc;
}

void cf_seg_gen_new(int64_t time_ns, char gen[CF_SEG_GEN_HEX])
{
	uint8_t rnd[8];
	cf_random(rnd, sizeof(rnd));
	snprintf(gen, 17, "%016" PRIx64, (uint64_t)(time_ns / 1000000000));
	cf_hex(rnd, 8, gen + 16);
}

static void seg_name(const char *db, const char *gen, uint64_t seq, char *out, size_t n)
{
	snprintf(out, n, "sqlite-%s/%s.%016" PRIx64, db, gen, seq);
}

/* the associated data's id: the SHA-256 of the object's name */
static int name_id(const char *name, uint8_t id[CF_ID_LEN])
{
	return cf_hash_with(CF_HASH_SHA256, name, strlen(name), id);
}

static int put_named(struct cf_repo *r, int type, const char *name, const void *p, size_t n)
{
	struct cf_buf sealed = CF_BUF_INIT;
	uint8_t id[CF_ID_LEN];
	int rc;
	if ((rc = name_id(name, id)) || (rc = cf_repo_seal(r, type, id, p, n, &sealed)))
		goto out;
	rc = cf_be_put(r->be, name, sealed.data, sealed.len);
out:
	cf_buf_release(&sealed);
	return rc;
}

static int open_named(struct cf_repo *r, int type, const char *name, const uint8_t *p, size_t n,
		      struct cf_buf *out)
{
	uint8_t id[CF_ID_LEN];
	int rc;
	if (n < CF_SEAL_OVERHEAD)
		return cf_err(CF_ECORRUPT, "%s is damaged: %zu bytes is too short", name, n);
	if ((rc = name_id(name, id)))
		return rc;
	cf_buf_reset(out);
	if ((rc = cf_buf_grow(out, n - CF_SEAL_OVERHEAD + 1)))
		return rc;
	if (cf_unseal(r->key, (uint8_t)type, id, p, n, out->data))
		return cf_err(CF_ECORRUPT, "%s is damaged or not stored under its own name: authentication failed",
			      name);
	out->len = n - CF_SEAL_OVERHEAD;
	out->data[out->len] = 0;
	return CF_OK;
}

static int get_named(struct cf_repo *r, int type, const char *name, struct cf_buf *out)
{
	struct cf_buf stored = CF_BUF_INIT;
	int rc;
	if ((rc = cf_be_get(r->be, name, &stored)) == CF_OK)
		rc = open_named(r, type, name, stored.data, stored.len, out);
	cf_buf_release(&stored);
	return rc;
}

/* ---- segments ---- */

int cf_seg_put(struct cf_repo *r, const char *db, const char *gen, uint64_t seq,
	       const void *payload, size_t n)
{
	struct cf_buf body = CF_BUF_INIT;
	char name[128];
	int rc;
	size_t bound = ZSTD_compressBound(n);

	if ((rc = cf_buf_grow(&body, 1 + (bound > n ? bound : n))))
		goto out;
	body.data[0] = 0;
	if (r->cfg.compression > 0) {
		size_t z = ZSTD_compress(body.data + 1, bound, payload, n, r->cfg.compression);
		if (!ZSTD_isError(z) && z + 16 < n) {
			body.data[0] = SEG_FLAG_ZSTD;
			body.len = 1 + z;
		}
	}
	if (!body.data[0]) {
		memcpy(body.data + 1, payload, n);
		body.len = 1 + n;
	}
	seg_name(db, gen, seq, name, sizeof(name));
	rc = put_named(r, CF_OBJ_SEGMENT, name, body.data, body.len);
out:
	cf_buf_release(&body);
	return rc;
}

int cf_seg_open(struct cf_repo *r, const char *name, const uint8_t *p, size_t n, struct cf_buf *out)
{
	struct cf_buf body = CF_BUF_INIT;
	int rc;

	if ((rc = open_named(r, CF_OBJ_SEGMENT, name, p, n, &body)))
		goto out;
	if (body.len < 1 || (body.data[0] & ~SEG_FLAG_ZSTD)) {
		rc = cf_err(CF_ECORRUPT, "%s: unknown flags", name);
		goto out;
	}
	if (!(body.data[0] & SEG_FLAG_ZSTD)) {
		cf_buf_reset(out);
		rc = cf_buf_add(out, body.data + 1, body.len - 1);
		goto out;
	}
	unsigned long long raw = ZSTD_getFrameContentSize(body.data + 1, body.len - 1);
	if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN || raw > CF_SEG_MAX) {
		rc = cf_err(CF_ECORRUPT, "%s: bad compressed size", name);
		goto out;
	}
	cf_buf_reset(out);
	if ((rc = cf_buf_grow(out, (size_t)raw + 1)))
		goto out;
	size_t z = ZSTD_decompress(out->data, (size_t)raw, body.data + 1, body.len - 1);
	if (ZSTD_isError(z) || z != raw) {
		rc = cf_err(CF_ECORRUPT, "%s: does not decompress", name);
		goto out;
	}
	out->len = z;
out:
	cf_buf_release(&body);
	return rc;
}

int cf_seg_get(struct cf_repo *r, const char *db, const char *gen, uint64_t seq, struct cf_buf *out)
{
	struct cf_buf stored = CF_BUF_INIT;
	char name[128];
	int rc;
	seg_name(db, gen, seq, name, sizeof(name));
	if ((rc = cf_be_get(r->be, name, &stored)) == CF_OK)
		rc = cf_seg_open(r, name, stored.data, stored.len, out);
	cf_buf_release(&stored);
	return rc;
}

/* ---- generation records ---- */

void cf_seg_gen_release(struct cf_seg_gen *g)
{
	if (!g)
		return;
	free(g->path);
	free(g->hostname);
	free(g->reason);
	memset(g, 0, sizeof(*g));
}

int cf_seg_gen_encode(const struct cf_seg_gen *g, struct cf_buf *out)
{
	char snap[CF_ID_HEX], t[48];
	cf_hex(g->snapshot, CF_ID_LEN, snap);
	cf_format_time(g->time_ns, t, sizeof(t));
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "version", 1, "generation", g->gen,
			      "path", g->path, "hostname", g->hostname ? g->hostname : "", "time", t,
			      "snapshot", snap, "page_size", (int)g->page_size, "reason",
			      g->reason ? g->reason : "start");
	if (!j)
		return cf_err(CF_ENOMEM, "out of memory");
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!s)
		return cf_err(CF_ENOMEM, "out of memory");
	cf_buf_reset(out);
	int rc = cf_buf_adds(out, s);
	free(s);
	return rc;
}

int cf_seg_gen_decode(const uint8_t *p, size_t n, struct cf_seg_gen *g)
{
	json_error_t e;
	json_int_t ver = 0, ps = 0;
	const char *gen = NULL, *path = NULL, *host = "", *t = NULL, *snap = NULL, *reason = "start";
	int rc = CF_OK;
	json_t *j = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &e);

	memset(g, 0, sizeof(*g));
	if (!j)
		return cf_err(CF_ECORRUPT, "generation record does not parse: %s", e.text);
	if (json_unpack_ex(j, &e, 0, "{s:I, s:s, s:s, s?:s, s:s, s:s, s:I, s?:s}", "version", &ver,
			   "generation", &gen, "path", &path, "hostname", &host, "time", &t,
			   "snapshot", &snap, "page_size", &ps, "reason", &reason) < 0) {
		rc = cf_err(CF_ECORRUPT, "generation record is malformed: %s", e.text);
		goto out;
	}
	uint8_t tmp[16];
	if (ver != 1 || strlen(gen) != 32 || cf_unhex(gen, tmp, 16) || strlen(snap) != CF_ID_HEX - 1 ||
	    cf_unhex(snap, g->snapshot, CF_ID_LEN) || ps < 512 || ps > 65536 || (ps & (ps - 1)) ||
	    path[0] != '/' || cf_parse_time(t, &g->time_ns)) {
		cf_err_clear();
		rc = cf_err(CF_ECORRUPT, "generation record has a bad field");
		goto out;
	}
	memcpy(g->gen, gen, CF_SEG_GEN_HEX);
	g->page_size = (uint32_t)ps;
	if (!(g->path = strdup(path)) || !(g->hostname = strdup(host)) || !(g->reason = strdup(reason)))
		rc = cf_err(CF_ENOMEM, "out of memory");
out:
	if (rc)
		cf_seg_gen_release(g);
	json_decref(j);
	return rc;
}

int cf_seg_gen_put(struct cf_repo *r, const char *db, const struct cf_seg_gen *g)
{
	struct cf_buf b = CF_BUF_INIT;
	char name[128];
	int rc;
	snprintf(name, sizeof(name), "sqlite-%s/%s.gen", db, g->gen);
	if ((rc = cf_seg_gen_encode(g, &b)) == CF_OK)
		rc = put_named(r, CF_OBJ_GENERATION, name, b.data, b.len);
	cf_buf_release(&b);
	return rc;
}

int cf_seg_gen_get(struct cf_repo *r, const char *db, const char *gen, struct cf_seg_gen *g)
{
	struct cf_buf b = CF_BUF_INIT;
	char name[128];
	int rc;
	snprintf(name, sizeof(name), "sqlite-%s/%s.gen", db, gen);
	if ((rc = get_named(r, CF_OBJ_GENERATION, name, &b)) == CF_OK &&
	    (rc = cf_seg_gen_decode(b.data, b.len, g)))
		rc = cf_err_prefix(rc, "%s: ", name);
	cf_buf_release(&b);
	return rc;
}

/* ---- listing ---- */

struct lst {
	struct cf_seg_listing *v;
	size_t n, cap;
	struct seqv { char gen[CF_SEG_GEN_HEX]; uint64_t seq, size; } *s;
	size_t ns, scap;
};

static struct cf_seg_listing *lst_gen(struct lst *l, const char *gen)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].gen, gen))
			return &l->v[i];
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		void *nv = realloc(l->v, cap * sizeof(*l->v));
		if (!nv)
			return NULL;
		l->v = nv;
		l->cap = cap;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[0]));
	memcpy(l->v[l->n].gen, gen, CF_SEG_GEN_HEX);
	return &l->v[l->n++];
}

static int lst_fn(const char *name, uint64_t size, void *ctx)
{
	struct lst *l = ctx;
	char gen[CF_SEG_GEN_HEX];
	uint8_t tmp[16];
	const char *dot = strchr(name, '.');
	if (!dot || dot - name != 32)
		return 0; /* not ours: ignored */
	memcpy(gen, name, 32);
	gen[32] = 0;
	if (cf_unhex(gen, tmp, 16))
		return 0;
	if (!strcmp(dot + 1, "gen")) {
		struct cf_seg_listing *g = lst_gen(l, gen);
		if (!g)
			return cf_err(CF_ENOMEM, "out of memory");
		g->has_record = true;
		return 0;
	}
	char *end;
	if (strlen(dot + 1) != 16)
		return 0;
	uint64_t seq = strtoull(dot + 1, &end, 16);
	if (*end || !seq)
		return 0;
	if (l->ns == l->scap) {
		size_t cap = l->scap ? l->scap * 2 : 64;
		void *nv = realloc(l->s, cap * sizeof(*l->s));
		if (!nv)
			return cf_err(CF_ENOMEM, "out of memory");
		l->s = nv;
		l->scap = cap;
	}
	memcpy(l->s[l->ns].gen, gen, CF_SEG_GEN_HEX);
	l->s[l->ns].seq = seq;
	l->s[l->ns++].size = size;
	return 0;
}

static int seqv_cmp(const void *a, const void *b)
{
	const struct seqv *x = a, *y = b;
	int c = strcmp(x->gen, y->gen);
	return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int listing_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cf_seg_listing *)a)->gen, ((const struct cf_seg_listing *)b)->gen);
}

int cf_seg_list(struct cf_repo *r, const char *db, struct cf_seg_listing **out, size_t *n)
{
	struct lst l = { 0 };
	char dir[64];
	int rc;

	*out = NULL;
	*n = 0;
	snprintf(dir, sizeof(dir), "sqlite-%s", db);
	if ((rc = cf_be_list(r->be, dir, lst_fn, &l)))
		goto out;
	if (l.ns)
		qsort(l.s, l.ns, sizeof(*l.s), seqv_cmp);
	for (size_t i = 0; i < l.ns; i++) {
		struct cf_seg_listing *g = lst_gen(&l, l.s[i].gen);
		if (!g) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		if (l.s[i].seq == g->nseg + 1) {
			g->nseg++;
			g->bytes += l.s[i].size;
		}
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), listing_cmp);
	*out = l.v;
	*n = l.n;
	l.v = NULL;
out:
	free(l.v);
	free(l.s);
	return rc;
}

struct rm_lst {
	const char *db, *gen;
	char **names;
	size_t n, cap;
	bool record;
};

static int rm_fn(const char *name, uint64_t size, void *ctx)
{
	struct rm_lst *l = ctx;
	(void)size;
	if (strncmp(name, l->gen, 32) || name[32] != '.')
		return 0;
	if (!strcmp(name + 33, "gen")) {
		l->record = true;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *nv = realloc(l->names, cap * sizeof(*l->names));
		if (!nv)
			return cf_err(CF_ENOMEM, "out of memory");
		l->names = nv;
		l->cap = cap;
	}
	if (asprintf(&l->names[l->n], "sqlite-%s/%s", l->db, name) < 0)
		return cf_err(CF_ENOMEM, "out of memory");
	l->n++;
	return 0;
}

int cf_seg_gen_remove(struct cf_repo *r, const char *db, const char *gen, uint64_t *removed)
{
	struct rm_lst l = { .db = db, .gen = gen };
	char dir[64], name[128];
	int rc;

	snprintf(dir, sizeof(dir), "sqlite-%s", db);
	if ((rc = cf_be_list(r->be, dir, rm_fn, &l)))
		goto out;
	/* the record first: a generation without one is not offered for restore,
	 * so an interrupted removal never leaves a shortened one that is */
	if (l.record) {
		snprintf(name, sizeof(name), "sqlite-%s/%s.gen", db, gen);
		if ((rc = cf_be_remove(r->be, name)))
			goto out;
	}
	if (l.n && (rc = cf_be_remove_many(r->be, (const char *const *)l.names, l.n)))
		goto out;
	if (removed)
		*removed = l.n;
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.names[i]);
	free(l.names);
	return rc;
}

void cf_seg_unlock(struct cf_repo *r)
{
	cf_repo_lock_release(r);
}
