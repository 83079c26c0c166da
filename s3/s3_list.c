/*
 * s3_list.c - the S3 backend's list and list_mtime: ListObjectsV2 pages of
 * list_max_keys under a directory's prefix, followed by continuation token,
 * each page held to LIST_PAGE_MAX and parsed by s3_xml.c.
 */
#include "store/backend.h"
#include "s3/s3_int.h"
#include "s3/sigv4.h"
#include "common/error.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the listing's guards ----
 *
 * A listing is a loop the store drives: it says when there is more and how
 * to ask for it.  A store that repeats a continuation token, or keeps
 * answering "more" with nothing new, would keep coffer listing forever; one
 * that sends a key twice would have every caller see it twice.  So each
 * listing keeps the set of names it handed over (16 bytes each: a 128-bit
 * hash, not the name) and of the tokens it was given, merges repeated
 * names, and stops with an error naming the directory at a token seen
 * before, at LIST_IDLE_PAGES "more" pages in a row with no new name, or
 * past the pages and objects a repository can have under one directory. */

struct hset {
	uint64_t (*slot)[2]; /* {0, 0}: empty; slot[i][0] is odd otherwise */
	size_t n, cap;       /* cap: a power of two, or 0 */
};

static uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

/* Two independent 64-bit lanes (FNV-1a, and a multiply-xorshift one). */
static void hash128(const char *p, size_t len, uint64_t h[2])
{
	uint64_t a = 0xcbf29ce484222325ULL ^ len, b = 0x9e3779b97f4a7c15ULL + len;
	for (size_t i = 0; i < len; i++) {
		a = (a ^ (uint8_t)p[i]) * 0x100000001b3ULL;
		b = (b + (uint8_t)p[i]) * 0xc6a4a7935bd1e995ULL;
		b ^= b >> 29;
	}
	h[0] = fmix64(a) | 1;
	h[1] = fmix64(b);
}

/* Add p[0..len) to the set; *added false when it was there.  CF_OK or
 * CF_ENOMEM. */
static int hset_add(struct hset *hs, const char *p, size_t len, bool *added)
{
	uint64_t h[2];
	hash128(p, len, h);
	if (2 * (hs->n + 1) > hs->cap) { /* load at most 1/2 */
		size_t cap = hs->cap ? 2 * hs->cap : 64;
		uint64_t(*slot)[2] = calloc(cap, sizeof(*slot));
		if (!slot)
			return cf_err(CF_ENOMEM, "out of memory (listing)");
		for (size_t i = 0; i < hs->cap; i++) {
			if (!hs->slot[i][0])
				continue;
			size_t j = (size_t)hs->slot[i][1] & (cap - 1);
			while (slot[j][0])
				j = (j + 1) & (cap - 1);
			slot[j][0] = hs->slot[i][0];
			slot[j][1] = hs->slot[i][1];
		}
		free(hs->slot);
		hs->slot = slot;
		hs->cap = cap;
	}
	size_t j = (size_t)h[1] & (hs->cap - 1);
	for (; hs->slot[j][0]; j = (j + 1) & (hs->cap - 1))
		if (hs->slot[j][0] == h[0] && hs->slot[j][1] == h[1]) {
			*added = false;
			return CF_OK;
		}
	hs->slot[j][0] = h[0];
	hs->slot[j][1] = h[1];
	hs->n++;
	*added = true;
	return CF_OK;
}

static void hset_release(struct hset *hs)
{
	free(hs->slot);
	hs->slot = NULL;
	hs->n = hs->cap = 0;
}

struct list_ctx {
	const char *prefix; /* full key prefix, "pfx/data/" */
	size_t prefix_len;
	cf_list_fn fn;
	void *ctx;
	const char *location;
	cf_list_mtime_fn mfn; /* instead of fn: list_mtime */
	const char *dir;    /* "snapshots", for messages */
	struct hset names;  /* handed over so far */
	size_t fresh;       /* new names on the current page */
	size_t dups;        /* repeated names merged, over the listing */
};

/* Whether name is new to this listing (then it is counted): CF_OK with
 * *is_new false for one handed over before, CF_ES3 past LIST_MAX_OBJECTS,
 * CF_ENOMEM. */
static int list_new_name(struct list_ctx *lc, const char *name, bool *is_new)
{
	int r = hset_add(&lc->names, name, strlen(name), is_new);
	if (r)
		return r;
	if (!*is_new) {
		lc->dups++;
		return CF_OK;
	}
	if (lc->names.n > LIST_MAX_OBJECTS)
		return cf_err(CF_ES3, "S3 listing of %s/%s/: more than %d objects, more than a repository holds "
				      "there; the store's listing does not end", lc->location, lc->dir, LIST_MAX_OBJECTS);
	lc->fresh++;
	return CF_OK;
}

/* After page number `pages` said there is more (token next): CF_OK to go
 * on, or CF_ES3 naming the directory when the listing would not end. */
static int list_next_page(struct list_ctx *lc, struct hset *tokens, const char *token, int pages,
			  int max_pages, int *idle)
{
	bool added;
	int r = hset_add(tokens, token, strlen(token), &added);
	if (r)
		return r;
	if (!added)
		return cf_err(CF_ES3, "S3 listing of %s/%s/: page %d repeats a continuation token the store sent "
				      "before; the listing would go round in circles", lc->location, lc->dir, pages);
	*idle = lc->fresh ? 0 : *idle + 1;
	if (*idle >= LIST_IDLE_PAGES)
		return cf_err(CF_ES3, "S3 listing of %s/%s/: %d pages in a row brought no new object, yet the store "
				      "says there is more; the listing does not end", lc->location, lc->dir, *idle);
	if (pages >= max_pages)
		return cf_err(CF_ES3, "S3 listing of %s/%s/: more than %d pages, more than a repository fills "
				      "there; the store's listing does not end", lc->location, lc->dir, max_pages);
	return CF_OK;
}


static int list_item(const char *key, uint64_t size, int64_t mtime_ns, void *ud)
{
	struct list_ctx *lc = ud;
	if (strncmp(key, lc->prefix, lc->prefix_len))
		return cf_err(CF_ECORRUPT, "S3 listing of %s/%s returned a foreign key \"%s\"", lc->location,
			      lc->prefix, key);
	const char *name = strrchr(key + lc->prefix_len, '/');
	name = name ? name + 1 : key + lc->prefix_len;
	if (!*name) /* a "directory marker" some tools create */
		return 0;
	bool is_new;
	int r = list_new_name(lc, name, &is_new);
	if (r || !is_new)
		return r;
	return lc->mfn ? lc->mfn(name, size, mtime_ns, lc->ctx) : lc->fn(name, size, lc->ctx);
}

/* list and list_mtime (LastModified from the same ListObjectsV2 pages) */
static int list_any(struct cf_backend *b, const char *dir, cf_list_fn fn, cf_list_mtime_fn mfn, void *ctx)
{
	struct s3_backend *be = S3(b);
	struct cf_buf prefix = CF_BUF_INIT, page = CF_BUF_INIT, dirslash = CF_BUF_INIT;
	struct hset tokens = { 0 };
	char *token = NULL, maxkeys[16];
	int r, pages = 0, idle = 0;
	int max_pages = LIST_MAX_OBJECTS / be->list_max_keys;
	struct list_ctx lc = { .fn = fn, .ctx = ctx, .location = b->location, .mfn = mfn, .dir = dir };
	if ((r = cf_buf_addf(&dirslash, "%s/", dir)) || (r = cf_s3_loc_key(&be->loc, (char *)dirslash.data, &prefix)))
		goto out;
	snprintf(maxkeys, sizeof(maxkeys), "%d", be->list_max_keys);
	lc.prefix = (char *)prefix.data;
	lc.prefix_len = prefix.len;
	do {
		struct cf_sigv4_pair q[4] = {
			{ "list-type", "2" },
			{ "prefix", (char *)prefix.data },
			{ "max-keys", maxkeys },
			{ "continuation-token", token },
		};
		struct s3_req req = { .method = "GET", .query = q, .nquery = token ? 4 : 3, .out = &page,
				      .max = LIST_PAGE_MAX };
		struct cf_s3_list_page pg;
		if ((r = s3_do(be, &req))) {
			if (r == CF_ECORRUPT) /* a page over LIST_PAGE_MAX */
				r = cf_err_prefix(r, "S3 listing of %s/%s/", b->location, dir);
			goto out;
		}
		lc.fresh = 0;
		r = cf_s3_list_parse_mtime((char *)page.data, page.len, list_item, &lc, &pg);
		free(token);
		token = pg.next_token;
		if (r)
			goto out;
		cf_debug("S3 list %s/%s: page %d%s", b->location, dir, ++pages, pg.truncated ? ", more" : "");
		if (!pg.truncated) {
			free(token);
			token = NULL;
		} else if ((r = list_next_page(&lc, &tokens, token, pages, max_pages, &idle))) {
			goto out;
		}
	} while (token);
	if (lc.dups)
		cf_info("S3 listing of %s/%s/: the store named %zu objects more than once (merged)", b->location,
			dir, lc.dups);
out:
	hset_release(&lc.names);
	hset_release(&tokens);
	free(token);
	cf_buf_release(&prefix);
	cf_buf_release(&page);
	cf_buf_release(&dirslash);
	return r;
}

int s3_list(struct cf_backend *b, const char *dir, cf_list_fn fn, void *ctx)
{
	return list_any(b, dir, fn, NULL, ctx);
}

int s3_list_mtime(struct cf_backend *b, const char *dir, cf_list_mtime_fn fn, void *ctx)
{
	return list_any(b, dir, NULL, fn, ctx);
}
