/*
 * fastpath.c - the directory cache's fast path (dircache.h).
 *
 * A directory that was in the parent snapshot and that the local cache
 * describes is lstat'ed entry by entry (fstatat on the directory) and its
 * digest compared with the cached one; when they match, the parent's tree
 * id is taken without loading or encoding the tree, and only the
 * subdirectories are visited.  When a subdirectory changed, the parent's
 * tree is loaded and patched with the new subtree ids.
 *
 * What the cache's digest of a directory covers: per entry, in the tree's
 * order, the name and the lstat fields eng_fill_node() turns into the node.
 * User and group names, xattrs and symlink targets are not in it: the
 * first two follow the ids, the others cannot change without a new ctime.
 *
 * Invariants: a directory the fast path is not sure of is walked as usual,
 * with nothing counted twice (eng_dir_fast undoes its counts); the cache
 * written for the next run (dc_out) holds exactly the trees of this
 * snapshot, or nothing (eng_dc_off after a failure).
 */
#include "engine/engine_int.h"

#include "crypto/crypto.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fp {
	uint64_t size, mtime, ctime, dev, ino, rdev;
	uint32_t type, mode, uid, gid, nlink, zero;
};

static void fp_of_stat(const struct stat *st, struct fp *f)
{
	memset(f, 0, sizeof(*f));
	f->type = (uint32_t)eng_node_type(st->st_mode);
	f->mode = st->st_mode & 07777;
	f->uid = st->st_uid;
	f->gid = st->st_gid;
	f->size = f->type == CF_NODE_FILE ? (uint64_t)st->st_size : 0;
	f->mtime = (uint64_t)eng_ts_ns(st->st_mtim);
	f->ctime = (uint64_t)eng_ts_ns(st->st_ctim);
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->nlink = (uint32_t)st->st_nlink;
	if (f->type == CF_NODE_CHARDEV || f->type == CF_NODE_BLOCKDEV)
		f->rdev = st->st_rdev;
}

static void fp_of_node(const struct cf_node *n, struct fp *f)
{
	memset(f, 0, sizeof(*f));
	f->type = (uint32_t)n->type;
	f->mode = n->mode;
	f->uid = n->uid;
	f->gid = n->gid;
	f->size = n->size;
	f->mtime = (uint64_t)n->mtime_ns;
	f->ctime = (uint64_t)n->ctime_ns;
	f->dev = n->dev;
	f->ino = n->ino;
	f->nlink = n->nlink;
	f->rdev = n->rdev;
}

static void fp_add(struct cf_hasher *h, const char *name, const struct fp *f)
{
	cf_hasher_update(h, name, strlen(name) + 1);
	cf_hasher_update(h, f, sizeof(*f));
}

/* Stop writing the cache (after a failure: the next backup only walks
 * slower). */
void eng_dc_off(struct ctx *c)
{
	c->dc_write = false;
	cf_buf_release(&c->dc_out);
}

/* Note directory tree t (stored as id) for the next backup's cache. */
void eng_dc_record(struct ctx *c, const struct cf_tree *t, const uint8_t id[CF_ID_LEN])
{
	if (!c->dc_write)
		return;
	struct cf_hasher *h = cf_hasher_new();
	uint8_t dg[CF_ID_LEN];
	uint32_t nsub = 0;
	if (!h) {
		eng_dc_off(c);
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct fp f;
		fp_of_node(&t->nodes[i], &f);
		fp_add(h, t->nodes[i].name, &f);
		nsub += t->nodes[i].type == CF_NODE_DIR && t->nodes[i].has_subtree;
	}
	if (cf_hasher_final(h, dg) != CF_OK) { /* (frees it) */
		eng_dc_off(c);
		return;
	}
	bool ok = cf_dc_add(&c->dc_out, id, dg, nsub) == CF_OK;
	for (size_t i = 0; ok && i < t->n; i++)
		if (t->nodes[i].type == CF_NODE_DIR && t->nodes[i].has_subtree)
			ok = cf_dc_add_sub(&c->dc_out, t->nodes[i].name, t->nodes[i].subtree) == CF_OK;
	if (!ok)
		eng_dc_off(c);
	else
		c->dc_count++;
}


static int name_cmp(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	int r = memcmp(a, b, alen < blen ? alen : blen);
	return r ? r : (alen > blen) - (alen < blen);
}

struct fast_sub {
	char *path;
	const char *name;
	const uint8_t *old;
	uint8_t id[CF_ID_LEN];
};

/* The parent tree t of a directory whose entries matched the cache, with
 * the subdirectories' new tree ids: false if t does not have exactly those
 * subdirectories (then the caller walks the directory). */
static bool patch_subtrees(struct cf_tree *t, const struct fast_sub *subs, size_t nsubs)
{
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct cf_node *n = &t->nodes[i];
		if (n->type != CF_NODE_DIR || !n->has_subtree)
			continue;
		if (k == nsubs || strcmp(n->name, subs[k].name))
			return false;
		memcpy(n->subtree, subs[k++].id, CF_ID_LEN);
	}
	return k == nsubs;
}

/* A directory whose parent tree (old_id) the cache describes as ce: lstat
 * its entries, and when their digest is the cached one, take the parent's
 * tree id (or, when a subdirectory changed, the parent's tree with the new
 * subtree ids) without walking the directory.  *done false: not the same,
 * or not sure; nothing was counted, and the caller walks it. */
int eng_dir_fast(struct ctx *c, const char *path, const uint8_t *old_id,
		 const struct cf_dc_entry *ce, uint8_t id[CF_ID_LEN], bool *done)
{
	struct cf_snapshot_summary keep = *c->sum;
	struct cf_tree t = CF_TREE_INIT;
	struct fast_sub *subs = NULL;
	struct cf_hasher *h = NULL;
	char **names = NULL;
	size_t nnames = 0, nsubs = 0;
	uint64_t files = 0, bytes = 0;
	int dfd = -1, rc = CF_OK;
	uint8_t dg[CF_ID_LEN];

	*done = false;
	if ((rc = eng_list_names(path, &names, &nnames)))
		return rc == CF_ENOMEM ? rc : CF_OK; /* the walk names the error */
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		goto out;
	if (nnames && !(subs = calloc(nnames, sizeof(*subs)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if (!(h = cf_hasher_new())) {
		rc = CF_ENOMEM;
		goto out;
	}
	const uint8_t *cur = ce->subs;
	uint32_t left = ce->nsub;
	size_t plen = strlen(path);
	const char *sep = plen && path[plen - 1] == '/' ? "" : "/";
	for (size_t i = 0; i < nnames; i++) {
		/* the full path only for exclude patterns and subdirectories: not
		 * a malloc per file of an unchanged directory */
		char *sub = NULL;
		struct stat st;
		if (c->o->nexcludes && asprintf(&sub, "%s%s%s", path, sep, names[i]) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		bool skip = sub && eng_excluded(c, sub, names[i]);
		if (!skip && fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			free(sub);
			goto out;
		}
		if (!skip && (c->o->exclude_larger_than || (c->o->nexclude_if_present && S_ISDIR(st.st_mode)))) {
			if (!sub && asprintf(&sub, "%s%s%s", path, sep, names[i]) < 0) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			skip = eng_excluded_stat(c, sub, &st);
		}
		if (skip || (c->o->one_file_system && S_ISDIR(st.st_mode) && st.st_dev != c->root_dev)) {
			free(sub);
			continue;
		}
		struct fp f;
		fp_of_stat(&st, &f);
		fp_add(h, names[i], &f);
		if (!S_ISDIR(st.st_mode)) {
			free(sub);
			if (S_ISREG(st.st_mode)) {
				files++;
				bytes += (uint64_t)st.st_size;
			}
			continue;
		}
		const uint8_t *sid = NULL;
		while (left && !sid) {
			const uint8_t *at = cur, *xid;
			const char *nm;
			size_t len;
			cf_dc_sub(&cur, &nm, &len, &xid);
			int cmp = name_cmp(nm, len, names[i]);
			if (cmp > 0) {
				cur = at;
				break;
			}
			left--;
			if (cmp == 0)
				sid = xid;
		}
		if (!sid) {
			free(sub);
			goto out;
		}
		if (!sub && asprintf(&sub, "%s%s%s", path, sep, names[i]) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		subs[nsubs].path = sub;
		subs[nsubs].name = names[i];
		subs[nsubs++].old = sid;
	}
	int hrc = cf_hasher_final(h, dg);
	h = NULL;
	if (hrc != CF_OK || memcmp(dg, ce->digest, CF_ID_LEN))
		goto out; /* (no digest: as if changed, the directory is walked) */

	/* the directory's own entries are unchanged: count its files, go down */
	c->sum->total_files_processed += files;
	c->sum->files_unmodified += files;
	c->sum->total_bytes_processed += bytes;
	eng_progress(c, false);
	bool changed = false;
	for (size_t k = 0; k < nsubs; k++) {
		if ((rc = eng_dir_known(c, subs[k].path, subs[k].old, subs[k].id, NULL)))
			goto out;
		if (memcmp(subs[k].id, subs[k].old, CF_ID_LEN)) {
			changed = true;
			c->sum->dirs_changed++;
		} else {
			c->sum->dirs_unmodified++;
		}
	}
	if (!changed && cf_repo_has_blob(c->repo, CF_BLOB_TREE, old_id)) {
		memcpy(id, old_id, CF_ID_LEN);
		if (c->dc_write) {
			bool ok = cf_dc_add(&c->dc_out, id, ce->digest, (uint32_t)nsubs) == CF_OK;
			for (size_t k = 0; ok && k < nsubs; k++)
				ok = cf_dc_add_sub(&c->dc_out, subs[k].name, subs[k].id) == CF_OK;
			if (!ok)
				eng_dc_off(c);
			else
				c->dc_count++;
		}
		c->dc_hits++;
		*done = true;
		goto out;
	}
	/* a subdirectory changed: the parent's tree with its new subtree ids */
	rc = cf_repo_load_tree(c->repo, old_id, &t);
	if (rc == CF_OK && patch_subtrees(&t, subs, nsubs)) {
		if ((rc = eng_store_tree(c, &t, id)) == CF_OK)
			*done = true;
		goto out;
	}
	if (rc == CF_ENOMEM)
		goto out;
	rc = CF_OK;
	/* that tree is unreadable after all: undo the counts, the caller walks
	 * the directory (again, down to the bottom) */
	uint64_t tree_blobs = c->sum->tree_blobs;
	*c->sum = keep;
	c->sum->tree_blobs = tree_blobs;
out:
	if (h)
		cf_hasher_final(h, dg); /* frees it */
	if (dfd >= 0)
		close(dfd);
	for (size_t k = 0; k < nsubs; k++)
		free(subs[k].path);
	free(subs);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	cf_tree_release(&t);
	return rc;
}
