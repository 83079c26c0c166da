/*
 * pack.c - blobs into packs and packs into the store.
 *
 * A pack is:  sealed blob || sealed blob || ... || sealed header || u32le hlen
 * where each blob is sealed with AD (type, id) and the header, sealed with
 * AD (CF_OBJ_PACKHDR, zeros), lists CF_ENTRY_SIZE-byte entries (type, flags,
 * id, offset, length, raw length).  A pack's name is the SHA-256 of its
 * sealed header and 4-byte trailer (format 3; formats 2 and 1 hash all its
 * bytes with SHA-256, resp. BLAKE2b-256: cf_pack_name), so `check
 * --read-data` can verify it without the key, and the header it names binds
 * every blob by its place and its authenticated id (doc/repo-format.md).
 *
 * Data and tree blobs go to separate packs (restore and check read trees
 * without touching data).  The blobs of a pack are written in a random order,
 * not in arrival (file) order, so that neither blob order nor pack boundaries
 * line up with file boundaries for someone who sees only the store.
 *
 * save_blob is called from several worker threads.  The lock covers only the
 * index look-up and the append to the open pack; hashing, compression and
 * sealing run outside it.  A full pack goes to the upload pool (a cf_pool:
 * a few uploads in flight while workers go on packing; one more pack may
 * wait, so a slow store slows the workers down instead of filling memory).
 * A backend with put_stage (local) takes a pack's bytes from the worker
 * that filled it (into a temporary file, page cache speed) and the pack
 * buffer is reused at once; the pool then runs only the fsync and rename
 * (put_commit).  Either way a pack's blobs leave CF_FLAG_PENDING, and the
 * pack enters the list for the next index file, only after put_commit.
 * The first failed upload is kept (r->upload_st): every later save_blob
 * and the flush fail with it.
 */
#include "repo/repo_int.h"
#include "repo/tree.h"
#include "common/array.h"
#include "common/error.h"
#include "common/pool.h"
#include "common/status.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
/* ZSTD_estimateCCtxSize and ZSTD_initStaticCCtx: in libzstd's exported
 * symbols since 1.3, behind this macro in the header */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#define CF_INDEX_EVERY 32 /* packs (~256 MiB) per intermediate index file */

/* ---- per-thread compression context and buffer ---- */

/* A compression context lives in one workspace sized for the level's
 * largest parameters, allocated once per thread: one that zstd manages
 * itself shrinks after 128 small inputs and is allocated and cleared again
 * for the next big chunk (doc/benchmarks.md).  The sealed buffer is reused
 * from blob to blob for the same reason. */
struct packing {
	ZSTD_CCtx *c;
	int level;
	void *ws;
	struct cf_buf sealed;
};
static pthread_key_t packing_key;
static pthread_once_t packing_once = PTHREAD_ONCE_INIT;

static void packing_free(void *p)
{
	struct packing *x = p;
	free(x->ws);
	cf_buf_release(&x->sealed);
	free(x);
}
static void packing_init(void) { pthread_key_create(&packing_key, packing_free); }

static struct packing *thread_packing(void)
{
	pthread_once(&packing_once, packing_init);
	struct packing *x = pthread_getspecific(packing_key);
	if (!x) {
		if (!(x = calloc(1, sizeof(*x))))
			return NULL;
		if (pthread_setspecific(packing_key, x)) {
			free(x);
			return NULL;
		}
	}
	return x;
}

static ZSTD_CCtx *thread_cctx(struct packing *x, int level)
{
	if (x->c && x->level == level)
		return x->c;
	free(x->ws);
	x->c = NULL;
	size_t n = ZSTD_estimateCCtxSize(level);
	if (!(x->ws = malloc(n)))
		return NULL;
	x->c = ZSTD_initStaticCCtx(x->ws, n);
	x->level = level;
	return x->c;
}

/* ---- writing packs ---- */

/* Give a finished packer's buffer to the next packer (or free it). */
static void packer_recycle(struct cf_repo *r, struct cf_packer *p)
{
	pthread_mutex_lock(&r->mu);
	if (p->buf.data && r->nspare < (int)(sizeof(r->spare) / sizeof(r->spare[0]))) {
		cf_buf_reset(&p->buf);
		r->spare[r->nspare++] = p->buf;
		p->buf = (struct cf_buf)CF_BUF_INIT;
	}
	pthread_mutex_unlock(&r->mu);
	cf_buf_release(&p->buf);
}

static void packer_free(struct cf_repo *r, struct cf_packer *p)
{
	if (!p)
		return;
	cf_be_put_abort(r->be, p->staged);
	cf_buf_release(&p->buf);
	cf_buf_release(&p->hdr);
	free(p->entries);
	free(p);
}

int cf_pack_name(const struct cf_repo *r, const uint8_t *pack, size_t len, uint8_t id[CF_ID_LEN])
{
	if (r->cfg.version < 3)
		return cf_hash_with(cf_repo_name_alg(r), pack, len, id);
	uint32_t hl = len >= 4 ? cf_get_le32(pack + len - 4) : 0;
	if (len < 4 || hl > len - 4)
		return cf_err(CF_ECORRUPT, "its last 4 bytes do not give the length of a header");
	return cf_hash_with(CF_HASH_SHA256, pack + len - 4 - hl, (size_t)hl + 4, id);
}

/* First half of a pack's upload: shuffle the blobs, seal the header, name
 * the pack and hand its bytes to the backend (cf_be_put_stage); the
 * packer's buffer then goes back to the packers.  The shuffled pack is never
 * assembled in memory: it is a list of pieces of the packer's buffer.  For a
 * backend without put_stage this is the whole upload.  Called without r->mu. */
static int pack_stage(struct cf_repo *r, struct cf_packer *p)
{
	struct cf_buf shdr = CF_BUF_INIT;
	struct cf_hasher *hs = NULL;
	struct iovec *iov = NULL;
	size_t *perm = NULL;
	uint8_t trailer[4];
	char hex[CF_ID_HEX], path[128];
	int rc;

	perm = malloc(p->n * sizeof(*perm));
	iov = malloc((p->n + 2) * sizeof(*iov));
	hs = cf_hasher_new_with(cf_repo_name_alg(r));
	if (!perm || !iov || !hs) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < p->n; i++)
		perm[i] = i;
	for (size_t i = p->n; i > 1; i--) { /* Fisher-Yates with a crypto RNG */
		uint32_t j;
		cf_random(&j, sizeof(j));
		j %= (uint32_t)i;
		size_t t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
	cf_buf_reset(&p->hdr);
	if ((rc = cf_buf_grow(&p->hdr, p->n * CF_ENTRY_SIZE)))
		goto out;
	uint32_t off = 0;
	bool whole = r->cfg.version < 3; /* formats 1 and 2 name packs by all their bytes */
	for (size_t k = 0; k < p->n; k++) {
		struct cf_pack_entry *e = &p->entries[perm[k]];
		iov[k].iov_base = p->buf.data + e->offset;
		iov[k].iov_len = e->length;
		if (whole)
			cf_hasher_update(hs, iov[k].iov_base, iov[k].iov_len);
		e->offset = off;
		off += e->length;
		cf_entry_encode(e, p->hdr.data + p->hdr.len);
		p->hdr.len += CF_ENTRY_SIZE;
	}
	if ((rc = cf_repo_seal(r, CF_OBJ_PACKHDR, NULL, p->hdr.data, p->hdr.len, &shdr)))
		goto out;
	cf_put_le32(trailer, (uint32_t)shdr.len);
	iov[p->n] = (struct iovec){ shdr.data, shdr.len };
	iov[p->n + 1] = (struct iovec){ trailer, 4 };
	cf_hasher_update(hs, shdr.data, shdr.len);
	cf_hasher_update(hs, trailer, 4);
	rc = cf_hasher_final(hs, p->packid); /* (a failed update is remembered) */
	hs = NULL;
	if (rc)
		goto out;

	cf_hex(p->packid, CF_ID_LEN, hex);
	cf_repo_pack_path(hex, path, sizeof(path));
	/* format 2's name is the body's SHA-256, which S3 signs with */
	if ((rc = cf_be_put_stage(r->be, path, iov, (int)p->n + 2,
				   r->cfg.version == 2 ? p->packid : NULL, &p->staged))) {
		rc = cf_err_prefix(rc, "upload pack %.16s", hex);
		goto out;
	}
	p->is_staged = true;
	packer_recycle(r, p);
out:
	if (hs)
		cf_hasher_final(hs, p->packid); /* frees it */
	free(perm);
	free(iov);
	cf_buf_release(&shdr);
	return rc;
}

/* Second half: make the staged pack durable (cf_be_put_commit), then record
 * it in the index (its blobs stop being CF_FLAG_PENDING only now) and in the list
 * for the next index file.  Called without r->mu held. */
static int pack_commit(struct cf_repo *r, struct cf_packer *p)
{
	char hex[CF_ID_HEX];
	int rc;

	void *staged = p->staged;
	p->staged = NULL;
	if ((rc = cf_be_put_commit(r->be, staged))) {
		cf_hex(p->packid, CF_ID_LEN, hex);
		return cf_err_prefix(rc, "upload pack %.16s", hex);
	}

	pthread_mutex_lock(&r->mu);
	memcpy(r->idx.packs[p->pending_num], p->packid, CF_ID_LEN);
	for (size_t i = 0; i < p->n; i++) {
		struct cf_ientry *e = cf_index_get(&r->idx, p->entries[i].type, p->entries[i].id);
		if (e) {
			e->offset = p->entries[i].offset;
			e->flags &= ~CF_FLAG_PENDING;
		}
	}
	uint8_t cnt[4];
	cf_put_le32(cnt, (uint32_t)p->n);
	rc = cf_buf_add(&r->new_index, p->packid, CF_ID_LEN);
	if (!rc)
		rc = cf_buf_add(&r->new_index, cnt, 4);
	if (!rc)
		rc = cf_buf_add(&r->new_index, p->hdr.data, p->hdr.len);
	if (!rc)
		r->new_index_packs++;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* Both halves, for a pack not staged yet. */
static int pack_finish(struct cf_repo *r, struct cf_packer *p)
{
	int rc = CF_OK;
	if (!p->is_staged)
		rc = pack_stage(r, p);
	return rc ? rc : pack_commit(r, p);
}

/* ---- uploads ---- */

/* Keep rc, the thread's failure, as the session's first failed upload (if
 * it is the first).  Returns rc. */
static int upload_failed(struct cf_repo *r, int rc)
{
	pthread_mutex_lock(&r->mu);
	cf_status_keep(&r->upload_st, rc);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* A job of the upload pool: the rest of a full pack's upload, and every
 * CF_INDEX_EVERY packs an index file (a backup that is killed then loses
 * only its last packs, and a re-run dedups against the rest).  After a
 * failed upload the packs still queued are dropped: no index names them. */
static int upload_job(void *arg, unsigned worker)
{
	struct cf_packer *p = arg;
	struct cf_repo *r = p->repo;
	(void)worker;
	pthread_mutex_lock(&r->mu);
	bool failed = r->upload_st.code != CF_OK;
	pthread_mutex_unlock(&r->mu);
	int rc = failed ? CF_OK : pack_finish(r, p);
	packer_free(r, p);
	if (!rc && !failed) {
		pthread_mutex_lock(&r->mu);
		bool due = r->new_index_packs >= CF_INDEX_EVERY;
		pthread_mutex_unlock(&r->mu);
		if (due)
			rc = cf_repo_write_index(r);
	}
	return rc ? upload_failed(r, rc) : CF_OK;
}

void cf_repo_set_dry_run(struct cf_repo *r)
{
	r->dry_run = true;
}

bool cf_repo_dry_run(const struct cf_repo *r)
{
	return r->dry_run;
}

void cf_repo_set_upload_threads(struct cf_repo *r, int n)
{
	r->want_uploaders = n < 1 ? 1 : n > 64 ? 64 : n;
}

/* Hand a full pack to the upload pool, started on first use; waits while
 * a pack is already waiting.  The pack is the pool's (or freed). */
static int enqueue_upload(struct cf_repo *r, struct cf_packer *p)
{
	int rc = CF_OK;
	pthread_mutex_lock(&r->mu);
	if (!r->uploads) {
		/* several packs in flight to a remote store, a couple to a local
		 * disk; each holds its pack in memory, so 4 for S3, where more
		 * cost memory for no speed (doc/s3.md).  One pack waits
		 * while they upload: enough to keep them busy. */
		int n = r->want_uploaders ? r->want_uploaders : cf_be_remote(r->be) ? 4 : 2;
		rc = cf_pool_new(&r->uploads, "upload", (unsigned)n, 1, 0);
	}
	struct cf_pool *pool = r->uploads;
	pthread_mutex_unlock(&r->mu);
	if (!rc)
		rc = cf_pool_add(pool, upload_job, p, 0);
	if (rc)
		packer_free(r, p);
	return rc;
}

void cf_repo_uploaders_stop(struct cf_repo *r)
{
	/* the packs queued are uploaded first (as a flush would) */
	cf_pool_free(r->uploads);
	r->uploads = NULL;
}

/* Already-compressed data (video, images, archives, encrypted files) gains
 * nothing from zstd, which still spends its full match search on it.  A
 * chunk of at least PROBE_MIN bytes whose byte histogram over four samples
 * spread across it (16 KiB in all) has an entropy above 7.97 bits per byte
 * is stored as it is: random bytes measure just below 8, text, SQL,
 * database pages and float arrays far less (doc/benchmarks.md).  A chunk
 * holding the same random bytes twice (which only zstd's matches would
 * find) is the case it gets wrong: stored larger, never wrong. */
#define PROBE_MIN (64u << 10)
#define PROBE_LEN 4096u
#define PROBE_BITS 7.97

static bool looks_incompressible(const uint8_t *p, size_t n)
{
	if (n < PROBE_MIN)
		return false;
	uint32_t h[256] = { 0 };
	for (size_t s = 0; s < 4; s++) {
		const uint8_t *q = p + (n - PROBE_LEN) / 3 * s;
		for (size_t i = 0; i < PROBE_LEN; i++)
			h[q[i]]++;
	}
	const double total = 4.0 * PROBE_LEN;
	double bits = 0;
	for (int i = 0; i < 256; i++)
		if (h[i])
			bits -= h[i] * log2(h[i] / total);
	return bits / total > PROBE_BITS;
}

/* Compress p into dst (room for ZSTD_compressBound(n) bytes) if that makes
 * it smaller: *flags CF_FLAG_ZSTD and *zlen set; else *flags 0. */
static int maybe_compress(struct cf_repo *r, struct packing *x, const void *p, size_t n, uint8_t *dst,
			  size_t *zlen, uint8_t *flags)
{
	*flags = 0;
	if (r->cfg.compression <= 0 || n < 64 || looks_incompressible(p, n))
		return CF_OK;
	ZSTD_CCtx *c = thread_cctx(x, r->cfg.compression);
	if (!c)
		return cf_err(CF_ENOMEM, "out of memory (zstd context)");
	/* Level 3 as zstd defines it for this size, with the tables of a 1 MiB
	 * chunk one size smaller (hashLog 16, chainLog 15 instead of 17, 16),
	 * so they stay in a core's L2 cache: less CPU for slightly larger
	 * output (doc/benchmarks.md). */
	ZSTD_compressionParameters cp = ZSTD_getCParams(r->cfg.compression, n, 0);
	if (r->cfg.compression == 3) {
		cp.hashLog = cp.hashLog > 16 ? 16 : cp.hashLog;
		cp.chainLog = cp.chainLog > 15 ? 15 : cp.chainLog;
	}
	ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
	const struct { ZSTD_cParameter k; int v; } set[] = {
		{ ZSTD_c_windowLog, (int)cp.windowLog }, { ZSTD_c_chainLog, (int)cp.chainLog },
		{ ZSTD_c_hashLog, (int)cp.hashLog },     { ZSTD_c_searchLog, (int)cp.searchLog },
		{ ZSTD_c_minMatch, (int)cp.minMatch },   { ZSTD_c_targetLength, (int)cp.targetLength },
		{ ZSTD_c_strategy, (int)cp.strategy },
	};
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
		size_t e = ZSTD_CCtx_setParameter(c, set[i].k, set[i].v);
		if (ZSTD_isError(e))
			return cf_err(CF_EIO, "zstd: %s", ZSTD_getErrorName(e));
	}
	size_t z = ZSTD_compress2(c, dst, ZSTD_compressBound(n), p, n);
	if (ZSTD_isError(z))
		return cf_err(CF_EIO, "zstd: %s", ZSTD_getErrorName(z));
	if (z + 16 < n) { /* keep raw unless it actually saves space */
		*zlen = z;
		*flags = CF_FLAG_ZSTD;
	}
	return CF_OK;
}

int cf_repo_save_blob(struct cf_repo *r, int type, const void *p, size_t n,
		      uint8_t id[CF_ID_LEN], bool *added, uint64_t *stored)
{
	struct packing *sc = thread_packing();
	uint8_t *sealed = NULL;
	struct cf_packer *full = NULL;
	uint8_t flags;
	int rc;

	if (added)
		*added = false;
	if (n > UINT32_MAX - CF_SEAL_OVERHEAD)
		return cf_err(CF_EINVAL, "blob of %zu bytes is too large", n);
	if (!sc)
		return cf_err(CF_ENOMEM, "out of memory");
	if ((rc = cf_blob_id(r->key, p, n, id)))
		return rc;

	pthread_mutex_lock(&r->mu);
	if (r->upload_st.code) {
		rc = cf_status_raise(&r->upload_st);
		pthread_mutex_unlock(&r->mu);
		return rc;
	}
	struct cf_ientry *have = cf_index_get(&r->idx, type, id);
	if (have) {
		if (!(have->flags & CF_FLAG_PENDING))
			cf_repo_note_pack(r, have->pack); /* deduplicated against it */
		pthread_mutex_unlock(&r->mu);
		return CF_OK;
	}
	/* reserve the id now, so a second thread with the same content does not
	 * store it again while this one compresses */
	struct cf_ientry res = { .type = (uint8_t)type, .flags = CF_FLAG_PENDING };
	memcpy(res.id, id, CF_ID_LEN);
	rc = cf_index_put(&r->idx, &res);
	pthread_mutex_unlock(&r->mu);
	if (rc)
		return rc;

	/* compressed straight to where the sealed blob goes and sealed in
	 * place: one scratch buffer per worker, no copy between them */
	cf_buf_reset(&sc->sealed);
	if ((rc = cf_buf_grow(&sc->sealed, ZSTD_compressBound(n) + CF_SEAL_OVERHEAD)))
		goto fail;
	sealed = sc->sealed.data;
	size_t plen = n;
	if ((rc = maybe_compress(r, sc, p, n, sealed + CF_SEAL_NONCE, &plen, &flags)))
		goto fail;
	const void *payload = flags ? sealed + CF_SEAL_NONCE : p;
	if ((rc = cf_seal(r->key, (uint8_t)type, id, payload, plen, sealed)))
		goto fail;
	size_t slen = plen + CF_SEAL_OVERHEAD;

	pthread_mutex_lock(&r->mu);
	if (r->dry_run) {
		/* counted as a real run would count it; the reservation (in no
		 * pack, CF_FLAG_PENDING: never read) makes a later copy dedup */
		struct cf_ientry *de = cf_index_get(&r->idx, type, id);
		de->length = (uint32_t)slen;
		de->rawlen = (uint32_t)n;
		pthread_mutex_unlock(&r->mu);
		if (added)
			*added = true;
		if (stored)
			*stored += slen;
		return CF_OK;
	}
	int t = type == CF_BLOB_TREE;
	struct cf_packer *pk = r->packer[t];
	if (!pk) {
		uint8_t placeholder[CF_ID_LEN];
		cf_random(placeholder, sizeof(placeholder));
		pk = calloc(1, sizeof(*pk));
		if (!pk || (rc = cf_index_add_pack(&r->idx, placeholder, &pk->pending_num))) {
			free(pk);
			pthread_mutex_unlock(&r->mu);
			rc = rc ? rc : cf_err(CF_ENOMEM, "out of memory");
			goto fail;
		}
		pk->type = type;
		pk->repo = r;
		if (type == CF_BLOB_DATA && r->nspare)
			pk->buf = r->spare[--r->nspare];
		r->packer[t] = pk;
	}
	if ((rc = CF_GROW(pk->entries, pk->n + 1, pk->cap))) {
		pthread_mutex_unlock(&r->mu);
		goto fail;
	}
	struct cf_pack_entry *pe = &pk->entries[pk->n];
	pe->type = (uint8_t)type;
	pe->flags = flags;
	memcpy(pe->id, id, CF_ID_LEN);
	pe->offset = (uint32_t)pk->buf.len;
	pe->length = (uint32_t)slen;
	pe->rawlen = (uint32_t)n;
	if ((rc = cf_buf_add(&pk->buf, sealed, slen))) {
		pthread_mutex_unlock(&r->mu);
		goto fail;
	}
	pk->n++;
	struct cf_ientry *e = cf_index_get(&r->idx, type, id);
	e->pack = pk->pending_num;
	cf_repo_note_pack(r, pk->pending_num);
	e->length = (uint32_t)slen;
	e->rawlen = (uint32_t)n;
	e->flags = flags | CF_FLAG_PENDING;
	if (pk->buf.len >= CF_PACK_TARGET) {
		full = pk;
		r->packer[t] = NULL;
	}
	pthread_mutex_unlock(&r->mu);
	if (added)
		*added = true;
	if (stored)
		*stored += slen;
	/* a backend that takes a pack's bytes before making them durable
	 * (local) gets them from this worker: the buffer is free again before
	 * the next pack fills, and only the fsyncs wait in the queue */
	if (full && cf_be_staged(r->be) && (rc = pack_stage(r, full))) {
		packer_free(r, full);
		return rc;
	}
	if (full)
		rc = enqueue_upload(r, full);
	return rc;
fail:
	/* the reservation stays CF_FLAG_PENDING with no pack: leave it, the run fails */
	return rc;
}

int cf_repo_flush(struct cf_repo *r)
{
	struct cf_status st = CF_STATUS_INIT; /* the first failure, with its message */
	for (int t = 0; t < 2; t++) {
		pthread_mutex_lock(&r->mu);
		struct cf_packer *pk = r->packer[t];
		r->packer[t] = NULL;
		pthread_mutex_unlock(&r->mu);
		if (pk && pk->n)
			cf_status_keep(&st, pack_finish(r, pk));
		packer_free(r, pk);
	}
	if (r->uploads)
		cf_status_keep(&st, cf_pool_join(r->uploads, CF_OK));
	pthread_mutex_lock(&r->mu);
	if (!st.code)
		st = r->upload_st;
	pthread_mutex_unlock(&r->mu);
	if (st.code)
		return cf_status_raise(&st);
	return cf_repo_write_index(r);
}

int cf_repo_save_tree(struct cf_repo *r, const struct cf_tree *t, uint8_t id[CF_ID_LEN],
		      bool *added, uint64_t *stored)
{
	struct cf_buf b = CF_BUF_INIT;
	int rc = cf_tree_encode(t, &b);
	if (!rc)
		rc = cf_repo_save_blob(r, CF_BLOB_TREE, b.data, b.len, id, added, stored);
	cf_buf_release(&b);
	return rc;
}
