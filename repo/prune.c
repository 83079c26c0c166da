/*
 * prune.c - removing what no snapshot needs (and forgetting snapshots).
 *
 * Plan (reads, changes nothing):
 *  1. list data/ (pack sizes) and index/ (the files to supersede);
 *  2. mark every blob reachable from every snapshot: one bit per slot of the
 *     in-memory index, so marking costs cap/8 bytes however many blobs;
 *  3. read every index file again, entry by entry, and count per pack the
 *     used and unused bytes.  A blob is "used" in a pack only if the merged
 *     index chose that copy: duplicates left by concurrent writers count as
 *     unused, so prune also removes them.  A pack named by two index files
 *     is described by the first one only (its entries are identical);
 *  4. classify: no index names it -> delete (left by an interrupted run; the
 *     exclusive lock guarantees no backup is writing), no used blob ->
 *     delete, all used -> keep, partly used -> keep, or repack when the
 *     unused bytes of all kept packs exceed --max-unused (restic's rule:
 *     limit = p/(1-p) * used bytes, emptiest packs repacked first).
 *     The safety margin overrides all of this: a pack whose store mtime is
 *     younger than CF_PRUNE_MARGIN (or whose age the store cannot tell) is
 *     kept as it is, never deleted or repacked.  Locks say no backup is
 *     writing, but a lock can be misjudged (a suspended holder, a clock, a
 *     bug): a running backup's packs are exactly the unindexed or unused
 *     ones, and they are young (kopia's time-based safety, same idea).
 *
 * Run:
 *  5. the entries of every kept pack go into the repository's pending index
 *     (r->new_index), exactly as its old index file listed them;
 *  6. the used blobs of packs to repack are authenticated and their sealed
 *     bytes copied into new packs (same ids, same seal: no recompression);
 *  7. cf_repo_flush writes ONE index naming every kept and new pack;
 *  8. only now: the old index files, then the packs, are deleted.
 * A kill before 8 leaves the old index files valid (new packs are merely
 * unindexed garbage); during 8 the new index already covers everything kept.
 */
#include "repo/pack_read.h"
#include "repo/repo_int.h"
#include "repo/tree.h"
#include "common/array.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

/* Packs younger than this are never deleted or repacked (doc/maintenance.md):
 * twice the lock staleness margin, so a backup suspended for up to an hour
 * past its last lock refresh still finds its packs; one suspended longer
 * fails loudly at its final check (cf_repo_verify_session) instead of
 * saving a snapshot with missing data. */
#define CF_PRUNE_MARGIN_S 3600

#define NO_FILE UINT32_MAX

enum { A_KEEP, A_DELETE, A_REPACK, A_UNINDEXED, A_YOUNG /* unindexed, within the margin */ };

struct ppack {
	uint8_t id[CF_ID_LEN];
	uint64_t size;
	uint64_t used_bytes, unused_bytes;
	uint32_t used, unused;
	uint32_t src_file;   /* the index file whose entries describe it */
	uint8_t action;
	bool young;          /* within the safety margin (or of unknown age) */
	int64_t mtime_ns;    /* -1: unknown */
};

struct cf_prune {
	struct cf_repo *r;
	struct cf_prune_opts opts;
	struct cf_prune_stats st;
	struct ppack *packs;
	size_t npacks, packcap;
	char (*idxfiles)[CF_ID_HEX];
	size_t nidx, idxcap;
	uint8_t *mark;        /* one bit per r->idx slot */
};

int cf_repo_forget_snapshot(struct cf_repo *r, const uint8_t id[CF_ID_LEN])
{
	char hex[CF_ID_HEX], path[96];
	cf_hex(id, CF_ID_LEN, hex);
	snprintf(path, sizeof(path), "snapshots/%s", hex);
	int rc = cf_be_remove(r->be, path);
	return rc ? cf_err_prefix(rc, "remove snapshot %.8s", hex) : CF_OK;
}

/* ---- listing ---- */

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, CF_ID_LEN);
}

static int64_t prune_margin_ns(void)
{
	/* test-only override (tests/e2e/prune_pidns.sh, e2e lib.sh) */
	const char *v = getenv("COFFER_TEST_PRUNE_MARGIN_SECONDS");
	char *end;
	long s = CF_PRUNE_MARGIN_S;
	if (v && *v) {
		long t = strtol(v, &end, 10);
		if (!*end && t >= 0)
			s = t;
	}
	return (int64_t)s * 1000000000LL;
}

static int list_pack(const char *name, uint64_t size, int64_t mtime_ns, void *ctx)
{
	struct cf_prune *p = ctx;
	uint8_t id[CF_ID_LEN];
	if (strlen(name) != CF_ID_HEX - 1 || cf_unhex(name, id, CF_ID_LEN))
		return 0; /* not a pack: not ours to delete */
	if (CF_GROW(p->packs, p->npacks + 1, p->packcap))
		return CF_ENOMEM;
	struct ppack *k = &p->packs[p->npacks++];
	memset(k, 0, sizeof(*k));
	memcpy(k->id, id, CF_ID_LEN);
	k->size = size;
	k->src_file = NO_FILE;
	k->mtime_ns = mtime_ns;
	return 0;
}

static int list_index(const char *name, uint64_t size, void *ctx)
{
	struct cf_prune *p = ctx;
	(void)size;
	if (strlen(name) != CF_ID_HEX - 1)
		return 0;
	if (CF_GROW(p->idxfiles, p->nidx + 1, p->idxcap))
		return CF_ENOMEM;
	snprintf(p->idxfiles[p->nidx++], CF_ID_HEX, "%s", name);
	return 0;
}

static struct ppack *find_pack(struct cf_prune *p, const uint8_t id[CF_ID_LEN])
{
	if (!p->npacks)
		return NULL;
	return bsearch(id, p->packs, p->npacks, sizeof(*p->packs), cmp_id);
}

/* ---- marking ---- */

static bool marked(const struct cf_prune *p, const struct cf_ientry *e)
{
	size_t i = (size_t)(e - p->r->idx.slots);
	return p->mark[i >> 3] & (1u << (i & 7));
}

static void set_mark(struct cf_prune *p, const struct cf_ientry *e)
{
	size_t i = (size_t)(e - p->r->idx.slots);
	p->mark[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static int mark_tree(struct cf_prune *p, const uint8_t id[CF_ID_LEN], const char *snap)
{
	struct cf_tree t = CF_TREE_INIT;
	char hex[CF_ID_HEX];
	int rc;

	struct cf_ientry *e = cf_index_get(&p->r->idx, CF_BLOB_TREE, id);
	if (!e) {
		cf_hex(id, CF_ID_LEN, hex);
		return cf_err(CF_ECORRUPT, "snapshot %.8s needs tree %.16s, which is not in the index "
			      "(run 'coffer check'; nothing was deleted)", snap, hex);
	}
	if (marked(p, e))
		return CF_OK; /* shared subtree: walked already */
	set_mark(p, e);
	if ((rc = cf_repo_load_tree(p->r, id, &t)))
		return cf_err_prefix(rc, "snapshot %.8s (nothing was deleted)", snap);
	for (size_t i = 0; i < t.n && !rc; i++) {
		const struct cf_node *n = &t.nodes[i];
		if (n->type == CF_NODE_DIR && n->has_subtree) {
			rc = mark_tree(p, n->subtree, snap);
			continue;
		}
		for (size_t c = 0; c < n->ncontent; c++) {
			struct cf_ientry *d = cf_index_get(&p->r->idx, CF_BLOB_DATA, n->content[c]);
			if (!d) {
				cf_hex(n->content[c], CF_ID_LEN, hex);
				rc = cf_err(CF_ECORRUPT, "snapshot %.8s: file %s needs data blob %.16s, "
					    "which is not in the index (run 'coffer check'; nothing was deleted)",
					    snap, n->name, hex);
				break;
			}
			set_mark(p, d);
		}
	}
	cf_tree_release(&t);
	if (!rc && cf_interrupted)
		rc = cf_err(CF_EINTR, "interrupted");
	return rc;
}

/* True if this entry of pack packid is the copy the merged index uses for a
 * blob some snapshot needs. */
static bool entry_used(struct cf_prune *p, const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *pe)
{
	struct cf_ientry *e = cf_index_get(&p->r->idx, pe->type, pe->id);
	return e && marked(p, e) && e->offset == pe->offset &&
	       memcmp(p->r->idx.packs[e->pack], packid, CF_ID_LEN) == 0;
}

/* ---- reading index files ---- */

typedef int (*pass_fn)(struct cf_prune *p, uint32_t file, struct ppack *k,
		       const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx);

struct pass {
	struct cf_prune *p;
	uint32_t file;
	const uint8_t *last;
	struct ppack *cur;
	pass_fn fn;
	void *ctx;
};

static int pass_entry(const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx)
{
	struct pass *ps = ctx;
	if (ps->last != packid) {
		ps->last = packid;
		ps->cur = find_pack(ps->p, packid);
		if (ps->cur && ps->cur->src_file == NO_FILE)
			ps->cur->src_file = ps->file;
	}
	return ps->fn(ps->p, ps->file, ps->cur, packid, e, ps->ctx);
}

/* Call fn for every entry of every index file listed at plan time.  An
 * index file that cannot be read stops prune: the packs it names would look
 * unindexed and be deleted. */
static int each_entry(struct cf_prune *p, pass_fn fn, void *ctx)
{
	struct cf_buf b = CF_BUF_INIT;
	char path[96];
	int rc = CF_OK;
	for (uint32_t i = 0; i < p->nidx && !rc; i++) {
		snprintf(path, sizeof(path), "index/%s", p->idxfiles[i]);
		if ((rc = cf_repo_get_sealed(p->r, path, CF_OBJ_INDEX, &b))) {
			rc = cf_err_prefix(rc, "index %.16s (run 'coffer check'; nothing was deleted)",
					   p->idxfiles[i]);
			break;
		}
		struct pass ps = { p, i, NULL, NULL, fn, ctx };
		rc = cf_index_parse(p->idxfiles[i], b.data, b.len, pass_entry, &ps);
	}
	cf_buf_release(&b);
	return rc;
}

static int count_entry(struct cf_prune *p, uint32_t file, struct ppack *k,
		       const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx)
{
	(void)ctx;
	bool used = entry_used(p, packid, e);
	if (!k) {
		if (used) {
			char hex[CF_ID_HEX];
			cf_hex(packid, CF_ID_LEN, hex);
			return cf_err(CF_ECORRUPT, "pack %s is missing but holds blobs snapshots need "
				      "(run 'coffer check'; nothing was deleted)", hex);
		}
		return CF_OK; /* a missing pack with nothing needed: the new index drops it */
	}
	if (k->src_file != file)
		return CF_OK;
	if (used) {
		k->used++;
		k->used_bytes += e->length;
	} else {
		k->unused++;
		k->unused_bytes += e->length;
	}
	return CF_OK;
}

/* ---- the plan ---- */

static int by_unused_share(const void *a, const void *b)
{
	const struct ppack *x = *(const struct ppack *const *)a, *y = *(const struct ppack *const *)b;
	double fx = (double)x->unused_bytes / (double)(x->used_bytes + x->unused_bytes);
	double fy = (double)y->unused_bytes / (double)(y->used_bytes + y->unused_bytes);
	return fx < fy ? 1 : fx > fy ? -1 : 0;
}

static int classify(struct cf_prune *p)
{
	struct cf_prune_stats *st = &p->st;
	struct ppack **cand = NULL;
	size_t ncand = 0;
	uint64_t unused_left = 0;
	int64_t now = cf_now_ns(), margin = prune_margin_ns();

	for (size_t i = 0; i < p->npacks; i++) {
		struct ppack *k = &p->packs[i];
		st->blobs_used += k->used;
		st->bytes_used += k->used_bytes;
		st->blobs_unused += k->unused;
		st->bytes_unused += k->unused_bytes;
		if (k->mtime_ns < 0)
			st->ages_unknown = true;
		k->young = margin > 0 && (k->mtime_ns < 0 || now - k->mtime_ns < margin);
		if (k->young && (k->src_file == NO_FILE || !k->used || k->unused)) {
			/* kept as it is: unindexed ones stay unindexed (their
			 * writer indexes them), indexed ones keep their entries */
			k->action = k->src_file == NO_FILE ? A_YOUNG : A_KEEP;
			st->packs_young++;
			st->bytes_young += k->size;
			if (k->src_file != NO_FILE)
				unused_left += k->unused_bytes;
		} else if (k->src_file == NO_FILE) {
			k->action = A_UNINDEXED;
			st->packs_unindexed++;
			st->bytes_unindexed += k->size;
		} else if (!k->used) {
			k->action = A_DELETE;
			st->packs_delete++;
			st->bytes_delete += k->size;
		} else {
			k->action = A_KEEP;
			if (k->unused) {
				unused_left += k->unused_bytes;
				ncand++;
			}
		}
	}
	if (ncand && !(cand = malloc(ncand * sizeof(*cand))))
		return cf_err(CF_ENOMEM, "out of memory");
	ncand = 0;
	for (size_t i = 0; i < p->npacks; i++)
		if (p->packs[i].action == A_KEEP && p->packs[i].unused && !p->packs[i].young)
			cand[ncand++] = &p->packs[i];
	if (ncand)
		qsort(cand, ncand, sizeof(*cand), by_unused_share);
	double m = p->opts.max_unused;
	double limit = m < 0 ? -1 : m >= 1 ? 1e30 : m / (1 - m) * (double)st->bytes_used;
	for (size_t i = 0; i < ncand && limit >= 0 && (double)unused_left > limit; i++) {
		cand[i]->action = A_REPACK;
		unused_left -= cand[i]->unused_bytes;
		st->packs_repack++;
		st->bytes_repack += cand[i]->size;
		st->bytes_repack_used += cand[i]->used_bytes;
	}
	free(cand);
	for (size_t i = 0; i < p->npacks; i++)
		st->packs_keep += p->packs[i].action == A_KEEP || p->packs[i].action == A_YOUNG;
	st->bytes_unused_after = unused_left;
	st->bytes_freed = st->bytes_delete + st->bytes_unindexed + st->bytes_repack - st->bytes_repack_used;
	return CF_OK;
}

int cf_prune_plan(struct cf_repo *r, const struct cf_prune_opts *o, struct cf_prune **out)
{
	struct cf_snapshot *snaps = NULL;
	size_t nsnaps = 0, bad = 0;
	struct cf_prune *p;
	int rc;

	*out = NULL;
	if (!(p = calloc(1, sizeof(*p))))
		return cf_err(CF_ENOMEM, "out of memory");
	p->r = r;
	p->opts = *o;
	if ((rc = cf_be_list_mtime(r->be, "data", list_pack, p)) ||
	    (rc = cf_be_list(r->be, "index", list_index, p)))
		goto out;
	if (p->npacks)
		qsort(p->packs, p->npacks, sizeof(*p->packs), cmp_id);
	for (size_t i = 0; i < p->npacks; i++) {
		p->st.pack_bytes += p->packs[i].size;
		if (i && !memcmp(p->packs[i].id, p->packs[i - 1].id, CF_ID_LEN)) {
			rc = cf_err(CF_ECORRUPT, "pack listed twice by the store");
			goto out;
		}
	}
	p->st.packs = p->npacks;
	p->st.index_files = p->nidx;

	if (!(p->mark = calloc(r->idx.cap / 8 + 1, 1))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = cf_repo_snapshots(r, &snaps, &nsnaps, &bad)))
		goto out;
	if (bad) {
		rc = cf_err(CF_ECORRUPT, "%zu snapshot%s cannot be read: prune would delete what they "
			    "need (run 'coffer check'; nothing was deleted)", bad, bad == 1 ? "" : "s");
		goto out;
	}
	p->st.snapshots = nsnaps;
	cf_log(2, "marking blobs used by %zu snapshots", nsnaps);
	for (size_t i = 0; i < nsnaps; i++) {
		char hex[CF_ID_HEX];
		cf_hex(snaps[i].id, CF_ID_LEN, hex);
		if ((rc = mark_tree(p, snaps[i].tree, hex)))
			goto out;
	}
	if ((rc = each_entry(p, count_entry, NULL)) || (rc = classify(p)))
		goto out;
	*out = p;
	p = NULL;
out:
	cf_snapshots_free(snaps, nsnaps);
	cf_prune_free(p);
	return rc;
}

const struct cf_prune_stats *cf_prune_stats(const struct cf_prune *p)
{
	return &p->st;
}

void cf_prune_free(struct cf_prune *p)
{
	if (!p)
		return;
	free(p->packs);
	free(p->idxfiles);
	free(p->mark);
	free(p);
}

/* ---- run: the kept packs' entries into the new index ---- */

struct keepctx {
	const uint8_t *run;      /* packid pointer of the run being copied */
	size_t count_off;        /* where its entry count goes in r->new_index */
	uint32_t count;
};

static void close_run(struct cf_repo *r, struct keepctx *kc)
{
	if (kc->run)
		cf_put_le32(r->new_index.data + kc->count_off, kc->count);
	kc->run = NULL;
}

/* Called with r->mu held (no uploader runs yet, but pack_finish appends to
 * the same buffer). */
static int keep_entry(struct cf_prune *p, uint32_t file, struct ppack *k,
		      const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx)
{
	struct keepctx *kc = ctx;
	struct cf_repo *r = p->r;
	uint8_t ent[CF_ENTRY_SIZE], zero[4] = { 0 };
	int rc;

	if (packid != kc->run)
		close_run(r, kc);
	if (!k || k->action != A_KEEP || k->src_file != file)
		return CF_OK;
	if (!kc->run) {
		if ((rc = cf_buf_add(&r->new_index, packid, CF_ID_LEN)))
			return rc;
		kc->count_off = r->new_index.len;
		if ((rc = cf_buf_add(&r->new_index, zero, 4)))
			return rc;
		kc->run = packid;
		kc->count = 0;
		r->new_index_packs++;
	}
	cf_entry_encode(e, ent);
	kc->count++;
	return cf_buf_add(&r->new_index, ent, sizeof(ent));
}

static int keep_entries(struct cf_prune *p)
{
	struct cf_buf b = CF_BUF_INIT;
	struct cf_repo *r = p->r;
	char path[96];
	int rc = CF_OK;
	/* each index file is parsed on its own so a run never spans two files */
	for (uint32_t i = 0; i < p->nidx && !rc; i++) {
		snprintf(path, sizeof(path), "index/%s", p->idxfiles[i]);
		if ((rc = cf_repo_get_sealed(r, path, CF_OBJ_INDEX, &b))) {
			rc = cf_err_prefix(rc, "index %.16s (nothing was deleted)", p->idxfiles[i]);
			break;
		}
		struct keepctx kc = { NULL, 0, 0 };
		struct pass ps = { p, i, NULL, NULL, keep_entry, &kc };
		pthread_mutex_lock(&r->mu);
		rc = cf_index_parse(p->idxfiles[i], b.data, b.len, pass_entry, &ps);
		close_run(r, &kc);
		pthread_mutex_unlock(&r->mu);
	}
	cf_buf_release(&b);
	return rc;
}

/* ---- run: repacking ---- */

struct repacker {
	struct cf_buf buf;            /* sealed blobs */
	struct cf_pack_entry *e;
	size_t n, cap;
};

/* Write a pack as pack.c does (shuffled blobs, sealed header, name = hash)
 * and queue its entries for the new index. */
static int repacker_finish(struct cf_prune *p, struct repacker *rp)
{
	struct cf_repo *r = p->r;
	struct cf_buf out = CF_BUF_INIT, hdr = CF_BUF_INIT, shdr = CF_BUF_INIT;
	uint8_t packid[CF_ID_LEN], cnt[4];
	char hex[CF_ID_HEX], path[128];
	int rc;

	if (!rp->n)
		return CF_OK;
	for (size_t i = rp->n; i > 1; i--) {
		uint32_t j;
		cf_random(&j, sizeof(j));
		j %= (uint32_t)i;
		struct cf_pack_entry t = rp->e[i - 1];
		rp->e[i - 1] = rp->e[j];
		rp->e[j] = t;
	}
	if ((rc = cf_buf_grow(&out, rp->buf.len + rp->n * CF_ENTRY_SIZE + CF_SEAL_OVERHEAD + 4)) ||
	    (rc = cf_buf_grow(&hdr, rp->n * CF_ENTRY_SIZE)))
		goto out;
	for (size_t i = 0; i < rp->n; i++) {
		struct cf_pack_entry e = rp->e[i];
		memcpy(out.data + out.len, rp->buf.data + e.offset, e.length);
		e.offset = (uint32_t)out.len;
		out.len += e.length;
		cf_entry_encode(&e, hdr.data + hdr.len);
		hdr.len += CF_ENTRY_SIZE;
	}
	if ((rc = cf_repo_seal(r, CF_OBJ_PACKHDR, NULL, hdr.data, hdr.len, &shdr)))
		goto out;
	memcpy(out.data + out.len, shdr.data, shdr.len);
	out.len += shdr.len;
	cf_put_le32(out.data + out.len, (uint32_t)shdr.len);
	out.len += 4;
	if ((rc = cf_pack_name(r, out.data, out.len, packid))) /* well formed: built here; */
		goto out;                                       /* only hashing can fail */
	cf_hex(packid, CF_ID_LEN, hex);
	cf_repo_pack_path(hex, path, sizeof(path));
	if ((rc = cf_be_put(r->be, path, out.data, out.len))) {
		rc = cf_err_prefix(rc, "upload pack %.16s", hex);
		goto out;
	}
	cf_put_le32(cnt, (uint32_t)rp->n);
	pthread_mutex_lock(&r->mu);
	if (!(rc = cf_buf_add(&r->new_index, packid, CF_ID_LEN)) &&
	    !(rc = cf_buf_add(&r->new_index, cnt, 4)) &&
	    !(rc = cf_buf_add(&r->new_index, hdr.data, hdr.len)))
		r->new_index_packs++;
	pthread_mutex_unlock(&r->mu);
	if (!rc)
		p->st.packs_written++;
	cf_buf_reset(&rp->buf);
	rp->n = 0;
out:
	cf_buf_release(&out);
	cf_buf_release(&hdr);
	cf_buf_release(&shdr);
	return rc;
}

static int repacker_add(struct cf_prune *p, struct repacker *rp, const struct cf_pack_entry *e,
			const uint8_t *sealed)
{
	int rc;
	if (CF_GROW(rp->e, rp->n + 1, rp->cap))
		return CF_ENOMEM;
	rp->e[rp->n] = *e;
	rp->e[rp->n].offset = (uint32_t)rp->buf.len;
	if ((rc = cf_buf_add(&rp->buf, sealed, e->length)))
		return rc;
	rp->n++;
	return rp->buf.len >= CF_PACK_TARGET ? repacker_finish(p, rp) : CF_OK;
}

struct repack {
	struct cf_prune *p;
	const struct ppack *k;
	struct repacker *rp;
	bool failed;         /* a blob failed: its message is final */
};

static bool repack_pick(const struct cf_pack_entry *e, void *ctx)
{
	struct repack *x = ctx;
	return entry_used(x->p, x->k->id, e);
}

/* A used blob, opened (authenticated before copying: never spread a
 * damaged blob), copied sealed into the new pack of its type. */
static int repack_item(const struct cf_pack_item *it, void *ctx)
{
	struct repack *x = ctx;
	int rc = it->rc;
	if (rc)
		rc = cf_err_prefix(rc, "repacking (nothing was deleted)");
	else
		rc = repacker_add(x->p, &x->rp[it->e->type == CF_BLOB_TREE], it->e, it->sealed);
	x->failed = rc != CF_OK;
	return rc;
}

static int repack_one(struct cf_prune *p, const struct ppack *k, struct repacker rp[2])
{
	struct repack x = { p, k, rp, false };
	size_t fetched;
	int rc = cf_repo_read_pack_all(p->r, k->id, 0, repack_pick, repack_item, &x, &fetched);
	if (rc && fetched && !x.failed && rc != CF_ENOMEM && rc != CF_EINTR)
		rc = cf_err(rc, "%s (nothing was deleted)", cf_errmsg(rc));
	return rc;
}

/* Delete the old index files (index true) or the packs prune does not keep,
 * in one batch call (DeleteObjects on S3, 1000 names a request). */
static int delete_batch(struct cf_repo *r, struct cf_prune *p, bool index)
{
	size_t n = index ? p->nidx : p->npacks, k = 0;
	char **paths = calloc(n ? n : 1, sizeof(*paths));
	char hex[CF_ID_HEX];
	int rc = CF_OK;

	if (!paths)
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && !rc; i++) {
		char buf[128];
		if (index) {
			snprintf(buf, sizeof(buf), "index/%s", p->idxfiles[i]);
		} else {
			if (p->packs[i].action == A_KEEP || p->packs[i].action == A_YOUNG)
				continue;
			cf_hex(p->packs[i].id, CF_ID_LEN, hex);
			cf_repo_pack_path(hex, buf, sizeof(buf));
		}
		if (!(paths[k++] = strdup(buf)))
			rc = cf_err(CF_ENOMEM, "out of memory");
	}
	if (!rc && k && (rc = cf_be_remove_many(r->be, (const char *const *)paths, k)))
		rc = cf_err_prefix(rc, "delete %s", index ? "old index files" : "packs");
	for (size_t i = 0; i < k; i++)
		free(paths[i]);
	free(paths);
	return rc;
}

int cf_prune_run(struct cf_prune *p)
{
	struct cf_repo *r = p->r;
	struct repacker rp[2];
	int rc;

	memset(rp, 0, sizeof(rp));
	if (!p->st.packs_delete && !p->st.packs_repack && !p->st.packs_unindexed && p->nidx <= 1)
		return CF_OK; /* nothing to free, nothing to merge */
	if ((rc = keep_entries(p)))
		goto out;
	for (size_t i = 0; i < p->npacks; i++) {
		if (p->packs[i].action != A_REPACK)
			continue;
		if ((rc = repack_one(p, &p->packs[i], rp)))
			goto out;
		if (cf_interrupted) {
			rc = cf_err(CF_EINTR, "interrupted (nothing was deleted)");
			goto out;
		}
	}
	if ((rc = repacker_finish(p, &rp[0])) || (rc = repacker_finish(p, &rp[1])))
		goto out;
	/* the one index that makes everything below safe */
	if ((rc = cf_repo_flush(r)))
		goto out;
	if (cf_interrupted) {
		rc = cf_err(CF_EINTR, "interrupted (new index written, nothing deleted)");
		goto out;
	}
	/* the locks again, right before deleting: a live lock that appeared
	 * since ours was taken (a holder we misjudged, now refreshed) stops
	 * prune with nothing deleted */
	if ((rc = cf_repo_lock_recheck(r))) {
		rc = cf_err_prefix(rc, "prune stopped (new index written, nothing deleted)");
		goto out;
	}
	/* batches: one DeleteObjects request per 1000 objects on S3 */
	cf_log(2, "deleting %zu old index files", p->nidx);
	if ((rc = delete_batch(r, p, true)))
		goto out;
	if ((rc = delete_batch(r, p, false)))
		goto out;
out:
	for (int t = 0; t < 2; t++) {
		cf_buf_release(&rp[t].buf);
		free(rp[t].e);
	}
	if (rc) {
		/* never let a later flush write a half-built index */
		pthread_mutex_lock(&r->mu);
		cf_buf_reset(&r->new_index);
		r->new_index_packs = 0;
		pthread_mutex_unlock(&r->mu);
	}
	return rc;
}
