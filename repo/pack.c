/*
 * pack.c - blobs into packs, packs into the store, and the index files that
 * name them.
 *
 * A pack is:  sealed blob || sealed blob || ... || sealed header || u32le hlen
 * where each blob is sealed with AD (type, id) and the header, sealed with
 * AD (CF_OBJ_PACKHDR, zeros), lists CF_ENTRY_SIZE-byte entries (type, flags,
 * id, offset, length, raw length).  A pack's name is the SHA-256 (format 1: BLAKE2b-256) of its
 * bytes, so `check --read-data` can verify it without the key.
 *
 * Data and tree blobs go to separate packs (restore and check read trees
 * without touching data).  The blobs of a pack are written in a random order,
 * not in arrival (file) order, so that neither blob order nor pack boundaries
 * line up with file boundaries for someone who sees only the store.
 *
 * save_blob is called from several worker threads.  The lock covers only the
 * index look-up and the append to the open pack; hashing, compression and
 * sealing run outside it.  A full pack goes to a queue served by uploader
 * threads, so several uploads are in flight while workers go on packing; the
 * queue holds at most as many packs as there are uploaders, so a slow store
 * slows the workers down instead of filling memory.  A backend with
 * put_stage (local) takes a pack's bytes from the worker that filled it
 * (into a temporary file, page cache speed) and the pack buffer is reused
 * at once; the queue then holds only staged packs waiting for their fsync
 * and rename (put_commit).  Either way a pack's blobs leave PENDING, and the
 * pack enters the list for the next index file, only after put_commit.
 */
#include "repo/repo_int.h"
#include "repo/tree.h"
#include "common/array.h"
#include "common/error.h"
#include "common/status.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
/* ZSTD_estimateCCtxSize and ZSTD_initStaticCCtx: in libzstd's exported
 * symbols since 1.3, behind this macro in the header */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#define PENDING 0x80 /* entry flag: its pack is not uploaded yet */
#define CF_INDEX_EVERY 32 /* packs (~256 MiB) per intermediate index file */

/* ---- per-thread zstd contexts ---- */

static pthread_key_t cctx_key, dctx_key;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;

/* A compression context lives in one workspace sized for the level's
 * largest parameters, allocated once per thread.  A context that zstd
 * manages itself shrinks its workspace after 128 small inputs (files of a
 * few KiB) and grows it again for the next big chunk: a fresh, page-faulting
 * and memset() workspace each time, 200 MB of it in a 2 GiB backup. */
struct cctx {
	ZSTD_CCtx *c;
	int level;
	void *ws;
};

static void free_cctx(void *p)
{
	struct cctx *x = p;
	free(x->ws);
	free(x);
}
static void free_dctx(void *p) { ZSTD_freeDCtx(p); }
static void zstd_keys(void)
{
	pthread_key_create(&cctx_key, free_cctx);
	pthread_key_create(&dctx_key, free_dctx);
}

static ZSTD_CCtx *thread_cctx(int level)
{
	pthread_once(&zstd_once, zstd_keys);
	struct cctx *x = pthread_getspecific(cctx_key);
	if (!x) {
		if (!(x = calloc(1, sizeof(*x))))
			return NULL;
		pthread_setspecific(cctx_key, x);
	}
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

/* per-thread scratch buffers for compression and sealing: reused from blob
 * to blob, so that every blob does not cost fresh (page-faulting) memory */
struct scratch {
	struct cf_buf sealed;
	struct cf_buf zplain; /* a compressed blob, opened, before zstd (cf_repo_open_blob) */
};
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void free_scratch(void *p)
{
	struct scratch *sc = p;
	cf_buf_release(&sc->sealed);
	cf_buf_release(&sc->zplain);
	free(sc);
}

static void scratch_keys(void)
{
	pthread_key_create(&scratch_key, free_scratch);
}

static struct scratch *thread_scratch(void)
{
	pthread_once(&scratch_once, scratch_keys);
	struct scratch *sc = pthread_getspecific(scratch_key);
	if (!sc && (sc = calloc(1, sizeof(*sc))))
		pthread_setspecific(scratch_key, sc);
	return sc;
}

static ZSTD_DCtx *thread_dctx(void)
{
	pthread_once(&zstd_once, zstd_keys);
	ZSTD_DCtx *d = pthread_getspecific(dctx_key);
	if (!d && (d = ZSTD_createDCtx()))
		pthread_setspecific(dctx_key, d);
	return d;
}

/* ---- index lookups ---- */

void cf_repo_blob_id(const struct cf_repo *r, const void *p, size_t n, uint8_t id[CF_ID_LEN])
{
	cf_blob_id(r->key, p, n, id);
}

bool cf_repo_has_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN])
{
	pthread_mutex_lock(&r->mu);
	struct cf_ientry *e = cf_index_get(&r->idx, type, id);
	bool has = e != NULL;
	if (e && !(e->flags & PENDING))
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
	if (e && k && !(e->flags & PENDING))
		e = cf_index_alt(&r->idx, e, k - 1);
	else if (k)
		e = NULL;
	if (!e || (e->flags & PENDING)) {
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
		if (!e->used || (e->flags & PENDING))
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
	if (r->cfg.version < 3) {
		cf_hash_with(cf_repo_name_alg(r), pack, len, id);
		return CF_OK;
	}
	uint32_t hl = len >= 4 ? cf_get_le32(pack + len - 4) : 0;
	if (len < 4 || hl > len - 4)
		return cf_err(CF_ECORRUPT, "its last 4 bytes do not give the length of a header");
	cf_hash_with(CF_HASH_SHA256, pack + len - 4 - hl, (size_t)hl + 4, id);
	return CF_OK;
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
	cf_hasher_final(hs, p->packid);
	hs = NULL;

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
 * it in the index (its blobs stop being PENDING only now) and in the list
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
			e->flags &= ~PENDING;
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

static void record_upload_error(struct cf_repo *r, int rc)
{
	pthread_mutex_lock(&r->mu);
	if (!r->upload_error) {
		r->upload_error = rc;
		snprintf(r->upload_errmsg, sizeof(r->upload_errmsg), "%s", cf_errmsg(rc));
	}
	pthread_mutex_unlock(&r->mu);
}

static void upload_done(struct cf_repo *r)
{
	pthread_mutex_lock(&r->mu);
	r->uploads_in_flight--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

static int write_index(struct cf_repo *r);

static void *uploader(void *arg)
{
	struct cf_repo *r = arg;
	for (;;) {
		pthread_mutex_lock(&r->mu);
		while (!r->upq_n && !r->up_stop)
			pthread_cond_wait(&r->cond, &r->mu);
		if (!r->upq_n) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		struct cf_packer *p = r->upq[r->upq_head];
		r->upq_head = (r->upq_head + 1) % r->upq_cap;
		r->upq_n--;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->mu);

		int rc = pack_finish(r, p);
		packer_free(r, p);
		/* every CF_INDEX_EVERY packs, an index file: a backup that is
		 * killed then loses only its last packs, and a re-run dedups
		 * against the rest instead of uploading everything again */
		if (!rc) {
			pthread_mutex_lock(&r->mu);
			bool due = r->new_index_packs >= CF_INDEX_EVERY;
			pthread_mutex_unlock(&r->mu);
			if (due)
				rc = write_index(r);
		}
		if (rc)
			record_upload_error(r, rc);
		upload_done(r);
	}
}

void cf_repo_set_upload_threads(struct cf_repo *r, int n)
{
	r->want_uploaders = n < 1 ? 1 : n > 64 ? 64 : n;
}

/* Hand a full pack to the uploaders, starting them on first use; waits while
 * the queue is full. */
static int enqueue_upload(struct cf_repo *r, struct cf_packer *p)
{
	pthread_mutex_lock(&r->mu);
	if (!r->uploaders) {
		/* a remote store wants several packs in flight, a local disk a
		 * couple.  Each upload in flight holds its 8 MiB pack in memory:
		 * 4 for S3 (6 cost 15-17 MiB more RSS for the same speed on
		 * loopback) */
		int n = r->want_uploaders ? r->want_uploaders : cf_be_remote(r->be) ? 4 : 2;
		/* one pack waits while n upload: enough to keep them busy */
		r->upq = calloc(1, sizeof(*r->upq));
		r->uploaders = calloc((size_t)n, sizeof(*r->uploaders));
		if (!r->upq || !r->uploaders) {
			free(r->upq);
			free(r->uploaders);
			r->upq = NULL;
			r->uploaders = NULL;
			pthread_mutex_unlock(&r->mu);
			packer_free(r, p);
			return cf_err(CF_ENOMEM, "out of memory");
		}
		r->upq_cap = 1;
		r->up_stop = false;
		for (int i = 0; i < n; i++)
			if (pthread_create(&r->uploaders[i], NULL, uploader, r) == 0)
				r->nuploaders++;
		if (!r->nuploaders) {
			pthread_mutex_unlock(&r->mu);
			packer_free(r, p);
			return cf_err(CF_ENOMEM, "cannot start uploader threads");
		}
	}
	while (r->upq_n == r->upq_cap)
		pthread_cond_wait(&r->cond, &r->mu);
	r->upq[(r->upq_head + r->upq_n) % r->upq_cap] = p;
	r->upq_n++;
	r->uploads_in_flight++;
	pthread_cond_broadcast(&r->cond);
	int rc = r->upload_error;
	char msg[sizeof(r->upload_errmsg)];
	memcpy(msg, r->upload_errmsg, sizeof(msg));
	pthread_mutex_unlock(&r->mu);
	return rc ? cf_err(rc, "%s", msg) : CF_OK;
}

void cf_repo_uploaders_stop(struct cf_repo *r)
{
	if (!r->uploaders)
		return;
	pthread_mutex_lock(&r->mu);
	r->up_stop = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < r->nuploaders; i++)
		pthread_join(r->uploaders[i], NULL);
	/* packs still queued were never uploaded: drop them (no index names them) */
	while (r->upq_n) {
		packer_free(r, r->upq[r->upq_head]);
		r->upq_head = (r->upq_head + 1) % r->upq_cap;
		r->upq_n--;
	}
	free(r->uploaders);
	free(r->upq);
	r->uploaders = NULL;
	r->upq = NULL;
	r->nuploaders = 0;
}

/* Already-compressed data (video, images, archives, encrypted files) gains
 * nothing from zstd, which still spends its full match search on it: level 3
 * runs at about 470 MB/s over random bytes, 0.75 CPU s for the benchmark's
 * 350 MiB video.  A chunk of at least PROBE_MIN bytes whose byte histogram
 * over four samples spread across it (16 KiB in all) has an entropy above
 * 7.97 bits per byte is stored as it is.  Random bytes measure 7.987-7.990
 * on such samples; text, SQL, database pages and float arrays 2.6-7.4.  On
 * the benchmark corpus the chunks this skips would have shrunk by 0.06%.
 * A chunk holding the same random bytes twice (which only zstd's matches
 * would find) is the case it gets wrong: stored larger, never wrong. */
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
static int maybe_compress(struct cf_repo *r, const void *p, size_t n, uint8_t *dst, size_t *zlen,
			  uint8_t *flags)
{
	*flags = 0;
	if (r->cfg.compression <= 0 || n < 64 || looks_incompressible(p, n))
		return CF_OK;
	ZSTD_CCtx *c = thread_cctx(r->cfg.compression);
	if (!c)
		return cf_err(CF_ENOMEM, "out of memory (zstd context)");
	/* Level 3 as zstd defines it for this size, with the tables of a 1 MiB
	 * chunk one size smaller (hashLog 16, chainLog 15 instead of 17, 16):
	 * 384 KiB of tables stay in a core's L2 cache.  Over the benchmark
	 * corpus in 1 MiB pieces: 18% less CPU, output 0.4% larger. */
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
	struct scratch *sc = thread_scratch();
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
	cf_blob_id(r->key, p, n, id);

	pthread_mutex_lock(&r->mu);
	if (r->upload_error) {
		rc = cf_err(r->upload_error, "%s", r->upload_errmsg);
		pthread_mutex_unlock(&r->mu);
		return rc;
	}
	struct cf_ientry *have = cf_index_get(&r->idx, type, id);
	if (have) {
		if (!(have->flags & PENDING))
			cf_repo_note_pack(r, have->pack); /* deduplicated against it */
		pthread_mutex_unlock(&r->mu);
		return CF_OK;
	}
	/* reserve the id now, so a second thread with the same content does not
	 * store it again while this one compresses */
	struct cf_ientry res = { .type = (uint8_t)type, .flags = PENDING };
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
	if ((rc = maybe_compress(r, p, n, sealed + CF_SEAL_NONCE, &plen, &flags)))
		goto fail;
	const void *payload = flags ? sealed + CF_SEAL_NONCE : p;
	if ((rc = cf_seal(r->key, (uint8_t)type, id, payload, plen, sealed)))
		goto fail;
	size_t slen = plen + CF_SEAL_OVERHEAD;

	pthread_mutex_lock(&r->mu);
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
	e->flags = flags | PENDING;
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
	/* the reservation stays PENDING with no pack: leave it, the run fails */
	return rc;
}

/* ---- index files ---- */

#define IDX_MAGIC "CFIX"

/* Write an index file for the packs uploaded since the last one.  Takes the
 * pending list under r->mu and writes it outside the lock, so uploader
 * threads may call it while others go on. */
static int write_index(struct cf_repo *r)
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
	memcpy(h, IDX_MAGIC, 4);
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

int cf_repo_flush(struct cf_repo *r)
{
	int rc = CF_OK;
	for (int t = 0; t < 2; t++) {
		pthread_mutex_lock(&r->mu);
		struct cf_packer *pk = r->packer[t];
		r->packer[t] = NULL;
		pthread_mutex_unlock(&r->mu);
		if (pk && pk->n) {
			int r2 = pack_finish(r, pk);
			if (r2 && !rc)
				rc = r2;
		}
		packer_free(r, pk);
	}
	pthread_mutex_lock(&r->mu);
	while (r->uploads_in_flight > 0)
		pthread_cond_wait(&r->cond, &r->mu);
	if (!rc && r->upload_error)
		rc = cf_err(r->upload_error, "%s", r->upload_errmsg);
	pthread_mutex_unlock(&r->mu);
	if (rc)
		return rc;
	return write_index(r);
}

int cf_index_parse(const char *name, const uint8_t *p, size_t n, cf_index_entry_fn fn, void *ctx)
{
	if (n < 12 || memcmp(p, IDX_MAGIC, 4) != 0 || cf_get_le32(p + 4) != 1)
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

/* ---- reading blobs ---- */

#define ZPLAIN_KEEP (16u << 20)

int cf_repo_open_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
		      const struct cf_blob_loc *loc, const uint8_t *sealed, struct cf_buf *out)
{
	char hex[CF_ID_HEX], phex[CF_ID_HEX];
	uint8_t *plain = NULL;
	size_t plen = loc->length - CF_SEAL_OVERHEAD;
	bool own = false;
	int rc;

	cf_hex(loc->pack, CF_ID_LEN, phex);
	cf_hex(id, CF_ID_LEN, hex);
	if (loc->length < CF_SEAL_OVERHEAD)
		return cf_err(CF_ECORRUPT, "pack %s: blob %.16s has a bad length", phex, hex);
	cf_buf_reset(out);
	if (loc->flags & CF_FLAG_ZSTD) {
		/* the thread's scratch buffer, not fresh memory for every blob (a
		 * restore of the benchmark corpus mapped and unmapped 1,000 such
		 * buffers, 160,000 page faults); a huge one is not kept */
		struct scratch *sc = plen <= ZPLAIN_KEEP ? thread_scratch() : NULL;
		if (sc && !cf_buf_grow(&sc->zplain, plen))
			plain = sc->zplain.data;
		else if (!(plain = malloc(plen ? plen : 1)))
			return cf_err(CF_ENOMEM, "out of memory");
		else
			own = true;
	} else {
		if ((rc = cf_buf_grow(out, plen)))
			return rc;
		plain = out->data;
	}
	if (cf_unseal(r->key, (uint8_t)type, id, sealed, loc->length, plain)) {
		rc = cf_err(CF_ECORRUPT, "pack %s is damaged: blob %.16s fails authentication", phex, hex);
		goto out;
	}
	if (loc->flags & CF_FLAG_ZSTD) {
		ZSTD_DCtx *d = thread_dctx();
		if (!d) {
			rc = cf_err(CF_ENOMEM, "out of memory (zstd context)");
			goto out;
		}
		if ((rc = cf_buf_grow(out, loc->rawlen)))
			goto out;
		size_t z = ZSTD_decompressDCtx(d, out->data, loc->rawlen, plain, plen);
		if (ZSTD_isError(z) || z != loc->rawlen) {
			rc = cf_err(CF_ECORRUPT, "pack %s: blob %.16s does not decompress", phex, hex);
			goto out;
		}
		out->len = z;
	} else {
		if (plen != loc->rawlen) {
			rc = cf_err(CF_ECORRUPT, "pack %s: blob %.16s has the wrong length", phex, hex);
			goto out;
		}
		out->len = plen;
	}
	out->data[out->len] = 0;
	rc = CF_OK;
out:
	if (own)
		free(plain);
	return rc;
}

/* Try every location of the blob, the main one first, skipping those in
 * pack skip (NULL: none), until one opens.  All failing: the first
 * location's error, saying how many were tried. */
int cf_repo_load_blob_except(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
			     const uint8_t *skip, struct cf_buf *out)
{
	struct cf_blob_loc loc;
	char first[CF_STATUS_MSG_MAX] = "", hex[CF_ID_HEX];
	int rc = CF_OK, first_rc = CF_OK;
	unsigned tried = 0, k;

	for (k = 0;; k++) {
		if ((rc = cf_repo_lookup_nth(r, type, id, k, &loc))) {
			if (k == 0)
				goto out; /* not in the index: its message stands */
			break;
		}
		if (skip && !memcmp(loc.pack, skip, CF_ID_LEN))
			continue;
		tried++;
		if (!(rc = cf_repo_load_at(r, type, id, &loc, out)))
			goto out;
		if (rc == CF_ENOMEM || rc == CF_EINTR)
			goto out;
		if (!first_rc) {
			first_rc = rc;
			snprintf(first, sizeof(first), "%s", cf_errmsg(rc));
		}
		cf_err_clear();
	}
	cf_hex(id, CF_ID_LEN, hex);
	if (!tried)
		rc = cf_err(CF_ECORRUPT, "%s blob %.16s: no other copy in the index",
			    type == CF_BLOB_TREE ? "tree" : "data", hex);
	else if (tried == 1)
		rc = cf_err(first_rc, "%s", first);
	else
		rc = cf_err(first_rc, "%s (and the %u other copies of blob %.16s failed too)", first,
			    tried - 1, hex);
out:
	return rc;
}

int cf_repo_load_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN], struct cf_buf *out)
{
	return cf_repo_load_blob_except(r, type, id, NULL, out);
}

int cf_pack_header_parse(const uint8_t *plain, size_t plen, size_t body,
			 struct cf_pack_entry **entries, size_t *n)
{
	*entries = NULL;
	*n = 0;
	if (plen % CF_ENTRY_SIZE)
		return cf_err(CF_ECORRUPT, "header length %zu is not a whole number of entries", plen);
	size_t cnt = plen / CF_ENTRY_SIZE;
	struct cf_pack_entry *e = calloc(cnt ? cnt : 1, sizeof(*e));
	if (!e)
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		cf_entry_decode(plain + i * CF_ENTRY_SIZE, &e[i]);
		if ((uint64_t)e[i].offset + e[i].length > body || e[i].length < CF_SEAL_OVERHEAD ||
		    (e[i].type != CF_BLOB_DATA && e[i].type != CF_BLOB_TREE) ||
		    (e[i].flags & ~CF_FLAG_ZSTD)) {
			free(e);
			return cf_err(CF_ECORRUPT, "header entry %zu is out of range", i);
		}
	}
	*entries = e;
	*n = cnt;
	return CF_OK;
}

int cf_pack_parse(struct cf_repo *r, const uint8_t *pack, size_t len,
		  struct cf_pack_entry **entries, size_t *n)
{
	*entries = NULL;
	*n = 0;
	if (len < 4 + CF_SEAL_OVERHEAD)
		return cf_err(CF_ECORRUPT, "too short (%zu bytes) to be a pack", len);
	uint32_t hlen = cf_get_le32(pack + len - 4);
	if (hlen < CF_SEAL_OVERHEAD || hlen > len - 4)
		return cf_err(CF_ECORRUPT, "bad header length %u", hlen);
	size_t plen = hlen - CF_SEAL_OVERHEAD;
	uint8_t *plain = malloc(plen ? plen : 1);
	if (!plain)
		return cf_err(CF_ENOMEM, "out of memory");
	const uint8_t *h = pack + len - 4 - hlen;
	int rc;
	if (cf_unseal(r->key, CF_OBJ_PACKHDR, NULL, h, hlen, plain))
		rc = cf_err(CF_ECORRUPT, "header fails authentication");
	else
		rc = cf_pack_header_parse(plain, plen, len - 4 - hlen, entries, n);
	free(plain);
	return rc;
}

/* ---- trees ---- */

static int load_tree_blob(struct cf_repo *r, const uint8_t id[CF_ID_LEN], struct cf_buf *out)
{
	/* load_at takes a remote store's trees from the tree-pack cache */
	return cf_repo_load_blob(r, CF_BLOB_TREE, id, out);
}

int cf_repo_load_tree(struct cf_repo *r, const uint8_t id[CF_ID_LEN], struct cf_tree *t)
{
	struct cf_buf b = CF_BUF_INIT;
	int rc = load_tree_blob(r, id, &b);
	if (!rc) {
		rc = cf_tree_decode(b.data, b.len, t);
		if (rc) {
			char hex[CF_ID_HEX];
			cf_hex(id, CF_ID_LEN, hex);
			rc = cf_err_prefix(rc, "tree %.16s", hex);
		}
	}
	cf_buf_release(&b);
	return rc;
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
