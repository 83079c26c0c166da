/*
 * blob.c - blobs by id: opened from their sealed bytes (unsealed with their
 * (type, id) as associated data, decompressed, length-checked), loaded from
 * the place the index gives or another it lists, and pack headers parsed.
 *
 * Reading the bytes is pack_read.c's; this file opens them.  Opening runs
 * for every blob a restore writes, so it allocates nothing per blob: the
 * zstd context and the buffer a compressed blob is unsealed into are the
 * thread's.
 */
#include "repo/repo_int.h"
#include "repo/tree.h"
#include "common/error.h"
#include "common/status.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* ---- per-thread zstd context and buffer ---- */

struct opener {
	ZSTD_DCtx *d;
	struct cf_buf zplain; /* a compressed blob, unsealed, before zstd */
};
static pthread_key_t opener_key;
static pthread_once_t opener_once = PTHREAD_ONCE_INIT;

static void opener_free(void *p)
{
	struct opener *o = p;
	ZSTD_freeDCtx(o->d);
	cf_buf_release(&o->zplain);
	free(o);
}
static void opener_init(void) { pthread_key_create(&opener_key, opener_free); }

static struct opener *thread_opener(void)
{
	pthread_once(&opener_once, opener_init);
	struct opener *o = pthread_getspecific(opener_key);
	if (!o) {
		if (!(o = calloc(1, sizeof(*o))))
			return NULL;
		if (!(o->d = ZSTD_createDCtx()) || pthread_setspecific(opener_key, o)) {
			ZSTD_freeDCtx(o->d);
			free(o);
			return NULL;
		}
	}
	return o;
}

int cf_repo_blob_id(const struct cf_repo *r, const void *p, size_t n, uint8_t id[CF_ID_LEN])
{
	return cf_blob_id(r->key, p, n, id);
}

/* ---- opening and loading ---- */

#define ZPLAIN_KEEP (16u << 20) /* a bigger unsealed buffer is not kept */

enum open_fault { BAD_LENGTH, NOT_AUTHENTIC, NO_DECOMPRESS, WRONG_LENGTH };

/* CF_ECORRUPT naming the pack and the blob.  Hex only on failure: opening
 * runs for every blob. */
static int open_failed(const struct cf_blob_loc *loc, const uint8_t id[CF_ID_LEN], enum open_fault f)
{
	char hex[CF_ID_HEX], p[CF_ID_HEX];
	cf_hex(loc->pack, CF_ID_LEN, p);
	cf_hex(id, CF_ID_LEN, hex);
	switch (f) {
	case BAD_LENGTH:
		return cf_err(CF_ECORRUPT, "pack %s: blob %.16s has a bad length", p, hex);
	case NOT_AUTHENTIC:
		return cf_err(CF_ECORRUPT, "pack %s is damaged: blob %.16s fails authentication", p, hex);
	case NO_DECOMPRESS:
		return cf_err(CF_ECORRUPT, "pack %s: blob %.16s does not decompress", p, hex);
	default:
		return cf_err(CF_ECORRUPT, "pack %s: blob %.16s has the wrong length", p, hex);
	}
}

int cf_repo_open_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
		      const struct cf_blob_loc *loc, const uint8_t *sealed, struct cf_buf *out)
{
	uint8_t *plain = NULL;
	size_t plen = loc->length - CF_SEAL_OVERHEAD;
	bool own = false;
	int rc;

	if (loc->length < CF_SEAL_OVERHEAD)
		return open_failed(loc, id, BAD_LENGTH);
	cf_buf_reset(out);
	struct opener *o = NULL;
	if (loc->flags & CF_FLAG_ZSTD) {
		if (!(o = thread_opener()))
			return cf_err(CF_ENOMEM, "out of memory (zstd context)");
		/* the thread's buffer, not fresh memory for every blob
		 * (doc/benchmarks.md); a huge one is not kept */
		if (plen <= ZPLAIN_KEEP && !cf_buf_grow(&o->zplain, plen))
			plain = o->zplain.data;
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
		rc = open_failed(loc, id, NOT_AUTHENTIC);
		goto out;
	}
	if (o) {
		if ((rc = cf_buf_grow(out, loc->rawlen)))
			goto out;
		size_t z = ZSTD_decompressDCtx(o->d, out->data, loc->rawlen, plain, plen);
		if (ZSTD_isError(z) || z != loc->rawlen) {
			rc = open_failed(loc, id, NO_DECOMPRESS);
			goto out;
		}
		out->len = z;
	} else {
		if (plen != loc->rawlen) {
			rc = open_failed(loc, id, WRONG_LENGTH);
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
	struct cf_status first = CF_STATUS_INIT; /* the first location's failure */
	char hex[CF_ID_HEX];
	int rc = CF_OK;
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
		cf_status_keep(&first, rc);
		cf_err_clear();
	}
	cf_hex(id, CF_ID_LEN, hex);
	if (!tried)
		rc = cf_err(CF_ECORRUPT, "%s blob %.16s: no other copy in the index",
			    type == CF_BLOB_TREE ? "tree" : "data", hex);
	else if (tried == 1)
		rc = cf_status_raise(&first);
	else
		rc = cf_err(first.code, "%s (and the %u other copies of blob %.16s failed too)",
			    first.msg, tried - 1, hex);
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

int cf_repo_load_tree(struct cf_repo *r, const uint8_t id[CF_ID_LEN], struct cf_tree *t)
{
	struct cf_buf b = CF_BUF_INIT;
	/* a remote store's trees come from the tree-pack cache (pack_read.c) */
	int rc = cf_repo_load_blob(r, CF_BLOB_TREE, id, &b);
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
