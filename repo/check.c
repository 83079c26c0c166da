/*
 * check.c - verifying a repository.
 *
 * Structure (always): every index file and snapshot is named by the hash of
 * its stored bytes (doc/repo-format.md, "What check verifies about names");
 * every index file opens and parses; every pack the
 * index names exists with exactly the size its entries imply; every snapshot
 * opens; every tree reachable from a snapshot opens and decodes; every blob a
 * tree references is in the index.  Data (--read-data): every pack is read
 * whole (cf_repo_read_pack_all), its bytes must have its name (format 3:
 * the hash of its header and trailer; 1 and 2: of all its bytes), its
 * header must open, and every blob in it must open, decompress and hash to
 * its id.
 *
 * Each problem is reported on stderr as one line naming the object; the
 * return is CF_OK when there were none, CF_ECORRUPT otherwise.
 */
#include "repo/pack_read.h"
#include "repo/repo_int.h"
#include "repo/tree.h"
#include "common/array.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

struct packinfo {
	uint8_t id[CF_ID_LEN];
	uint64_t size;
	uint64_t expect;  /* bytes implied by the index files that name it */
	uint32_t entries;
	bool indexed;     /* an index file names it (a pack appears once per index file) */
};

struct chk {
	struct cf_repo *r;
	uint64_t errors;
	struct packinfo *packs; size_t npacks, cap;
	struct cf_index seen;   /* trees already walked; also missing packs reported */
	uint64_t trees, blobs_checked, packs_read;
	struct cf_index damaged; /* packs found missing or damaged (type 2 entries) */
};

/* Remember a pack as damaged so that what depends on it can be named. */
static int mark_damaged(struct chk *k, const uint8_t id[CF_ID_LEN])
{
	struct cf_ientry e = { .type = 2 };
	memcpy(e.id, id, CF_ID_LEN);
	return cf_index_put(&k->damaged, &e);
}

static void problem(struct chk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct chk *k, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cf_warn("error: %s", buf);
	k->errors++;
}

static int collect_pack(const char *name, uint64_t size, void *ctx)
{
	struct chk *k = ctx;
	uint8_t id[CF_ID_LEN];
	if (cf_unhex(name, id, CF_ID_LEN)) {
		problem(k, "data/%s: not a pack name", name);
		return 0;
	}
	if (CF_GROW(k->packs, k->npacks + 1, k->cap))
		return CF_ENOMEM;
	memset(&k->packs[k->npacks], 0, sizeof(k->packs[k->npacks]));
	memcpy(k->packs[k->npacks].id, id, CF_ID_LEN);
	k->packs[k->npacks].size = size;
	k->npacks++;
	return 0;
}

static int cmp_pack(const void *a, const void *b)
{
	return memcmp(a, b, CF_ID_LEN);
}

static const struct packinfo *find_pack(struct chk *k, const uint8_t id[CF_ID_LEN])
{
	if (!k->npacks)
		return NULL;
	return bsearch(id, k->packs, k->npacks, sizeof(*k->packs), cmp_pack);
}

struct idxcheck {
	struct chk *k;
	const char *name;
	const uint8_t *last;
	struct packinfo *cur;
	const uint8_t *missing;   /* the current pack, when the store lacks it */
	uint32_t missing_entries, orphans; /* its entries; those with no copy elsewhere */
};

/* Some location of (type, id) other than pack not_in is in a pack the store
 * has. */
static bool copy_elsewhere(struct chk *k, int type, const uint8_t id[CF_ID_LEN],
			   const uint8_t not_in[CF_ID_LEN])
{
	struct cf_ientry *m = cf_index_get(&k->r->idx, type, id), *e = m;
	for (unsigned a = 0; e; e = cf_index_alt(&k->r->idx, m, a++)) {
		const uint8_t *p = k->r->idx.packs[e->pack];
		if (memcmp(p, not_in, CF_ID_LEN) && find_pack(k, p))
			return true;
	}
	return false;
}

/* The entries of a missing pack are all read: an error, unless every blob
 * it lists is in another pack the store has (an index file from before a
 * prune, put back: stale, not damage). */
static int missing_done(struct idxcheck *ic)
{
	char hex[CF_ID_HEX];
	int rc = CF_OK;
	if (!ic->missing)
		return CF_OK;
	cf_hex(ic->missing, CF_ID_LEN, hex);
	if (!ic->orphans) {
		cf_warn("warning: index %.16s is stale: it names pack %.16s, which is missing, but each of "
			"the %u blobs it lists there is in another pack ('coffer prune' drops it)",
			ic->name, hex, ic->missing_entries);
	} else if (!cf_index_get(&ic->k->seen, 2, ic->missing)) {
		struct cf_ientry mark = { .type = 2 };
		memcpy(mark.id, ic->missing, CF_ID_LEN);
		problem(ic->k, "pack %s is missing (index %.16s names it)", hex, ic->name);
		rc = cf_index_put(&ic->k->seen, &mark);
		if (!rc)
			rc = mark_damaged(ic->k, ic->missing);
	}
	ic->missing = NULL;
	return rc;
}

/* Sizes are summed per index file entry, not from the merged in-memory
 * index: two writers may store the same blob in two packs, and each pack
 * must match what its own index file says about it. */
static int check_entry(const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx)
{
	struct idxcheck *ic = ctx;
	int rc;
	if (ic->last != packid) {
		if ((rc = missing_done(ic)))
			return rc;
		ic->last = packid;
		ic->cur = (struct packinfo *)find_pack(ic->k, packid);
		if (!ic->cur) {
			ic->missing = packid;
			ic->missing_entries = ic->orphans = 0;
		} else if (ic->cur->indexed) {
			/* the same pack in a second index file (e.g. after a re-run):
			 * count it once */
			ic->cur = NULL;
		} else {
			ic->cur->indexed = true;
		}
	}
	if (ic->missing) {
		ic->missing_entries++;
		if (!copy_elsewhere(ic->k, e->type, e->id, packid))
			ic->orphans++;
	}
	if (ic->cur) {
		ic->cur->expect += e->length;
		ic->cur->entries++;
	}
	return 0;
}

static int check_index_file(const char *name, uint64_t size, void *ctx)
{
	struct chk *k = ctx;
	struct cf_buf b = CF_BUF_INIT;
	(void)size;
	int rc = cf_repo_get_named(k->r, "index", name, CF_OBJ_INDEX, &b);
	if (!rc) {
		struct idxcheck ic = { k, name, NULL, NULL, NULL, 0, 0 };
		rc = cf_index_parse(name, b.data, b.len, check_entry, &ic);
		if (!rc)
			rc = missing_done(&ic);
	}
	cf_buf_release(&b);
	if (rc == CF_ENOMEM)
		return rc;
	if (rc)
		problem(k, "%s", cf_errmsg(rc));
	return 0;
}

static int walk_tree(struct chk *k, const uint8_t id[CF_ID_LEN], const char *path, const char *snap)
{
	struct cf_ientry mark = { .type = CF_BLOB_TREE };
	struct cf_tree t = CF_TREE_INIT;
	char hex[CF_ID_HEX];
	int rc;

	if (cf_index_get(&k->seen, CF_BLOB_TREE, id))
		return CF_OK;
	memcpy(mark.id, id, CF_ID_LEN);
	if ((rc = cf_index_put(&k->seen, &mark)))
		return rc;
	k->trees++;
	cf_hex(id, CF_ID_LEN, hex);
	rc = cf_repo_load_tree(k->r, id, &t);
	if (rc == CF_ENOMEM)
		return rc;
	if (rc) {
		problem(k, "snapshot %.8s: directory %s: %s", snap, path[0] ? path : "/", cf_errmsg(rc));
		return CF_OK;
	}
	for (size_t i = 0; i < t.n && !rc; i++) {
		const struct cf_node *n = &t.nodes[i];
		char *sub = NULL;
		if (asprintf(&sub, "%s/%s", path, n->name) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		if (n->type == CF_NODE_DIR && n->has_subtree) {
			rc = walk_tree(k, n->subtree, sub, snap);
		} else if (n->type == CF_NODE_FILE) {
			for (size_t c = 0; c < n->ncontent; c++)
				if (!cf_index_get(&k->r->idx, CF_BLOB_DATA, n->content[c])) {
					cf_hex(n->content[c], CF_ID_LEN, hex);
					problem(k, "snapshot %.8s: file %s: data blob %.16s is not in the index",
						snap, sub, hex);
					break;
				}
		}
		free(sub);
	}
	cf_tree_release(&t);
	return rc;
}

struct packcheck {
	struct chk *k;
	const char *hex;
};

/* One blob of a pack read whole: opened, and hashing to its id. */
static int check_item(const struct cf_pack_item *it, void *ctx)
{
	struct packcheck *pc = ctx;
	struct chk *k = pc->k;
	if (it->rc == CF_ENOMEM)
		return it->rc;
	if (it->rc) {
		problem(k, "%s", cf_errmsg(it->rc));
		return CF_OK;
	}
	uint8_t id[CF_ID_LEN];
	int hrc = cf_blob_id(k->r->key, it->plain, it->n, id);
	if (hrc)
		return hrc;
	if (memcmp(id, it->e->id, CF_ID_LEN)) {
		char bh[CF_ID_HEX];
		cf_hex(it->e->id, CF_ID_LEN, bh);
		problem(k, "pack %s: blob %.16s does not hash to its id", pc->hex, bh);
	}
	k->blobs_checked++;
	return CF_OK;
}

static int read_pack(struct chk *k, const struct packinfo *p)
{
	uint64_t errors_before = k->errors;
	char hex[CF_ID_HEX];
	struct packcheck pc = { k, hex };
	size_t fetched;

	cf_hex(p->id, CF_ID_LEN, hex);
	int rc = cf_repo_read_pack_all(k->r, p->id, CF_PACK_VERIFY_NAME, NULL, check_item, &pc, &fetched);
	if (fetched)
		k->packs_read++;
	if (rc && rc != CF_ENOMEM) {
		problem(k, "%s", cf_errmsg(rc));
		rc = CF_OK;
	}
	if (rc == CF_OK && k->errors != errors_before)
		rc = mark_damaged(k, p->id);
	return rc;
}

int cf_repo_check(struct cf_repo *r, bool read_data, struct cf_check_stats *st)
{
	struct cf_check_opts o = { .read_data = read_data };
	return cf_repo_check_opts(r, &o, st);
}

/* --read-data-subset: restic's n/m buckets by the first byte of the pack id,
 * or a random share of the packs. */
static bool *choose_packs(const struct chk *k, const struct cf_check_opts *o)
{
	bool *pick = calloc(k->npacks ? k->npacks : 1, sizeof(*pick));
	if (!pick)
		return NULL;
	if (o->subset_m) {
		for (size_t i = 0; i < k->npacks; i++)
			pick[i] = k->packs[i].id[0] % o->subset_m == o->subset_n - 1;
	} else if (o->subset_percent > 0) {
		size_t want = (size_t)((double)k->npacks * o->subset_percent / 100.0);
		if (want == 0 && k->npacks)
			want = 1;
		if (want > k->npacks)
			want = k->npacks;
		/* selection sampling (Knuth's algorithm S): exactly want packs */
		size_t left = want;
		for (size_t i = 0; i < k->npacks && left; i++) {
			uint32_t x;
			cf_random(&x, sizeof(x));
			if ((double)x / 4294967296.0 * (double)(k->npacks - i) < (double)left) {
				pick[i] = true;
				left--;
			}
		}
	} else {
		for (size_t i = 0; i < k->npacks; i++)
			pick[i] = o->read_data;
	}
	return pick;
}

struct dep {
	struct chk *k;
	const char *snap;
	uint64_t lines;
};

#define MAX_DEP_LINES 200

/* Every location of the blob is in a damaged or missing pack (one good copy
 * is enough: the readers try each). */
static bool in_damaged(struct chk *k, int type, const uint8_t id[CF_ID_LEN], char phex[CF_ID_HEX])
{
	struct cf_ientry *m = cf_index_get(&k->r->idx, type, id), *e = m;
	if (!m)
		return false;
	for (unsigned a = 0; e; e = cf_index_alt(&k->r->idx, m, a++))
		if (!cf_index_get(&k->damaged, 2, k->r->idx.packs[e->pack]))
			return false;
	cf_hex(k->r->idx.packs[m->pack], CF_ID_LEN, phex);
	return true;
}

static void dep_line(struct dep *d, const char *what, const char *path, const char *phex)
{
	if (d->lines++ < MAX_DEP_LINES)
		cf_warn("  snapshot %.8s: %s %s needs damaged pack %.16s", d->snap, what,
			path[0] ? path : "/", phex);
}

/* Name every file and directory of one snapshot whose blobs lie in a damaged
 * pack (by the merged index: the copies restore would read). */
static int walk_deps(struct dep *d, const uint8_t id[CF_ID_LEN], const char *path)
{
	struct cf_tree t = CF_TREE_INIT;
	char phex[CF_ID_HEX];
	int rc;

	if (in_damaged(d->k, CF_BLOB_TREE, id, phex)) {
		dep_line(d, "directory", path, phex);
		return CF_OK; /* its contents cannot be listed */
	}
	if ((rc = cf_repo_load_tree(d->k->r, id, &t)))
		return rc == CF_ENOMEM ? rc : CF_OK; /* already reported by the structure check */
	for (size_t i = 0; i < t.n && !rc; i++) {
		const struct cf_node *n = &t.nodes[i];
		char *sub = NULL;
		if (asprintf(&sub, "%s/%s", path, n->name) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		if (n->type == CF_NODE_DIR && n->has_subtree)
			rc = walk_deps(d, n->subtree, sub);
		for (size_t c = 0; c < n->ncontent; c++)
			if (in_damaged(d->k, CF_BLOB_DATA, n->content[c], phex)) {
				dep_line(d, "file", sub, phex);
				break;
			}
		free(sub);
	}
	cf_tree_release(&t);
	return rc;
}

static int report_dependents(struct chk *k, const struct cf_snapshot *snaps, size_t n)
{
	uint64_t total = 0;
	cf_warn("damaged or missing packs: %zu; what depends on them:", k->damaged.n);
	for (size_t i = 0; i < n; i++) {
		char hex[CF_ID_HEX];
		cf_hex(snaps[i].id, CF_ID_LEN, hex);
		struct dep d = { k, hex, 0 };
		int rc = walk_deps(&d, snaps[i].tree, "");
		if (rc)
			return rc;
		if (d.lines > MAX_DEP_LINES)
			cf_warn("  snapshot %.8s: ... and %llu more", hex,
				(unsigned long long)(d.lines - MAX_DEP_LINES));
		total += d.lines;
	}
	if (!total)
		cf_warn("  no snapshot needs them (prune will remove them)");
	return CF_OK;
}

int cf_repo_check_opts(struct cf_repo *r, const struct cf_check_opts *o, struct cf_check_stats *st)
{
	bool read_data = o->read_data || o->subset_m || o->subset_percent > 0;
	bool *pick = NULL;
	struct chk k;
	struct cf_snapshot *snaps = NULL;
	size_t nsnaps = 0, bad = 0;
	int rc;

	memset(&k, 0, sizeof(k));
	k.r = r;
	if ((rc = cf_be_list(r->be, "data", collect_pack, &k)))
		goto out;
	if (k.npacks)
		qsort(k.packs, k.npacks, sizeof(*k.packs), cmp_pack);
	cf_log(2, "checking index files");
	if ((rc = cf_be_list(r->be, "index", check_index_file, &k)))
		goto out;
	for (size_t i = 0, unindexed = 0; i < k.npacks; i++) {
		const struct packinfo *p = &k.packs[i];
		char hex[CF_ID_HEX];
		if (!p->indexed) {
			/* left by an interrupted run (garbage for prune), or the index
			 * file naming it was lost: not an error by itself, but named so
			 * that a "not in the index" below can be traced to it */
			cf_hex(p->id, CF_ID_LEN, hex);
			if (unindexed++ < 5)
				cf_warn("warning: pack %s is in no index file (left by an interrupted run, "
					"or the index file naming it is lost)", hex);
			continue;
		}
		uint64_t want = p->expect + (uint64_t)p->entries * CF_ENTRY_SIZE + CF_SEAL_OVERHEAD + 4;
		if (p->size != want) {
			cf_hex(p->id, CF_ID_LEN, hex);
			problem(&k, "pack %s has %llu bytes, its index implies %llu", hex,
				(unsigned long long)p->size, (unsigned long long)want);
			if ((rc = mark_damaged(&k, p->id)))
				goto out;
		}
	}

	cf_log(2, "checking snapshots and trees");
	if ((rc = cf_repo_snapshots(r, &snaps, &nsnaps, &bad)))
		goto out;
	k.errors += bad;
	for (size_t i = 0; i < nsnaps; i++) {
		char hex[CF_ID_HEX];
		cf_hex(snaps[i].id, CF_ID_LEN, hex);
		if ((rc = walk_tree(&k, snaps[i].tree, "", hex)))
			goto out;
	}
	if (read_data) {
		cf_log(2, "reading all data");
		if (!(pick = choose_packs(&k, o))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < k.npacks; i++) {
			if (!pick[i])
				continue;
			if ((rc = read_pack(&k, &k.packs[i])))
				goto out;
			if (cf_interrupted) {
				rc = cf_err(CF_EINTR, "interrupted");
				goto out;
			}
		}
	}
	if (k.damaged.n && (rc = report_dependents(&k, snaps, nsnaps)))
		goto out;
	rc = k.errors ? cf_err(CF_ECORRUPT, "%llu problems found", (unsigned long long)k.errors) : CF_OK;
out:
	free(pick);
	cf_index_release(&k.damaged);
	if (st) {
		st->errors = k.errors;
		st->packs = k.npacks;
		st->snapshots = nsnaps;
		st->trees = k.trees;
		st->blobs_read = k.blobs_checked;
		st->packs_read = k.packs_read;
	}
	cf_snapshots_free(snaps, nsnaps);
	free(k.packs);
	cf_index_release(&k.seen);
	return rc;
}
