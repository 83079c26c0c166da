/*
 * vroot.c - the snapshot's root: path components as directories.
 *
 * The snapshot's root tree holds each backed-up path under its full
 * absolute path (/var/lib/x -> var -> lib -> x), as restic does, so two
 * volumes with the same last name never collide and restore recreates the
 * same layout under --target.
 *
 * Streams (database dumps, a command's stdout) are files at a chosen path:
 * a vnode of their own, or, inside a walked directory, an overlay that
 * stands in for the live file of the same name (eng_overlay_entry).
 *
 * Invariants: a path given twice, or one inside another walked path, is
 * refused before anything is read; intermediate directories take their
 * metadata from the file system when they exist there, else they are
 * plain 0755 directories; the root's trees are built in name order.
 */
#include "engine/engine_int.h"

#include "common/array.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void eng_vnode_free(struct vnode *v)
{
	for (size_t i = 0; i < v->nkids; i++)
		eng_vnode_free(&v->kids[i]);
	free(v->kids);
	free(v->name);
	free(v->fspath);
}

int eng_vnode_insert(struct vnode *root, const char *path, const struct cf_stream_source *stream)
{
	struct vnode *cur = root;
	const char *p = path;
	size_t fslen = 0;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		fslen = (size_t)(p - path) + len;
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return cf_err(CF_EINVAL, "path %s: '.' and '..' components are not allowed", path);
		struct vnode *k = NULL;
		for (size_t i = 0; i < cur->nkids; i++)
			if (strlen(cur->kids[i].name) == len && !memcmp(cur->kids[i].name, p, len))
				k = &cur->kids[i];
		if (cur->stream || (cur->leaf && !stream))
			return cf_err(CF_EINVAL, "%s lies inside %s, which is backed up as a whole",
				      path, cur->fspath);
		if (cur->leaf)
			return CF_EEXIST; /* a stream inside a walked directory: an overlay */
		if (!k) {
			if (CF_GROW(cur->kids, cur->nkids + 1, cur->kids_cap))
				return cf_err(CF_ENOMEM, "out of memory");
			k = &cur->kids[cur->nkids++];
			memset(k, 0, sizeof(*k));
			if (!(k->name = strndup(p, len)))
				return cf_err(CF_ENOMEM, "out of memory");
			/* a relative stream path ("mariadb/app.sql") names no real
			 * directory: its parents get synthetic metadata */
			if (path[0] == '/' && !(k->fspath = strndup(path, fslen)))
				return cf_err(CF_ENOMEM, "out of memory");
		}
		cur = k;
		p += len;
	}
	if (cur == root)
		return cf_err(CF_EINVAL, "cannot back up '/' itself as a path; name directories under it");
	if (cur->leaf || cur->stream)
		return cf_err(CF_EINVAL, "path %s is given twice", path);
	if (cur->nkids)
		return cf_err(CF_EINVAL, "%s contains another source (%s/%s...): give one or the other",
			      path, path, cur->kids[0].name);
	if (stream)
		cur->stream = stream;
	else
		cur->leaf = true;
	return CF_OK;
}


static int stream_node(struct ctx *c, struct vnode *v, struct cf_node *n, struct batch *b, struct refs *refs)
{
	struct cstream s;
	n->name = strdup(v->name);
	if (!n->name)
		return cf_err(CF_ENOMEM, "out of memory");
	n->type = CF_NODE_FILE;
	n->mode = v->stream->mode ? v->stream->mode : 0600;
	n->uid = v->stream->has_owner ? v->stream->uid : getuid();
	n->gid = v->stream->has_owner ? v->stream->gid : getgid();
	n->mtime_ns = n->ctime_ns = n->atime_ns = cf_now_ns();
	if (v->stream->has_owner)
		n->mtime_ns = v->stream->mtime_ns;
	eng_cs_init(&s, c, b, refs);
	int rc = v->stream->produce(v->stream->ctx, eng_cs_sink, &s);
	if (rc) {
		eng_cs_abort(&s);
		return cf_err_prefix(rc, "%s", v->stream->path);
	}
	n->size = s.total;
	c->sum->total_files_processed++;
	c->sum->total_bytes_processed += s.total;
	c->sum->files_new++;
	return eng_cs_finish(&s);
}

/* If sub is where an overlay stream goes, store the stream there instead of
 * the live file (*handled).  The live database's -wal/-shm/-journal files and
 * the temporary copy are left out (*skip). */
int eng_overlay_entry(struct ctx *c, const char *sub, const char *name, struct cf_node *n,
		      struct batch *b, struct refs *refs, bool *handled, bool *skip)
{
	*handled = *skip = false;
	if (!strncmp(name, "coffer-sqlite-", 14)) {
		*skip = true;
		return CF_OK;
	}
	for (size_t i = 0; i < c->noverlays; i++) {
		const char *op = c->overlays[i].path;
		size_t ol = strlen(op);
		if (!strcmp(op, sub)) {
			struct vnode v = { .name = (char *)name, .stream = c->overlays[i].src };
			*handled = true;
			return stream_node(c, &v, n, b, refs);
		}
		if (!strncmp(op, sub, ol) && (!strcmp(sub + ol, "-wal") || !strcmp(sub + ol, "-shm") ||
					      !strcmp(sub + ol, "-journal"))) {
			*skip = true;
			return CF_OK;
		}
	}
	return CF_OK;
}

/* Whether a stream lies below directory path (absolute, clean). */
bool eng_overlay_below(const struct ctx *c, const char *path)
{
	size_t len = strlen(path);
	for (size_t i = 0; i < c->noverlays; i++)
		if (!strncmp(c->overlays[i].path, path, len) && c->overlays[i].path[len] == '/')
			return true;
	return false;
}

/* Node n for directory path (name), which an exclude pattern leaves out
 * but which holds streams: the directory with those streams alone (and the
 * directories on the way to them), as the root holds its sources. */
int eng_overlay_dir(struct ctx *c, const char *path, const char *name, struct cf_node *n)
{
	struct vnode root;
	struct stat st;
	size_t len = strlen(path);
	int rc = CF_OK;

	memset(&root, 0, sizeof(root));
	for (size_t i = 0; i < c->noverlays && !rc; i++)
		if (!strncmp(c->overlays[i].path, path, len) && c->overlays[i].path[len] == '/')
			rc = eng_vnode_insert(&root, c->overlays[i].path, c->overlays[i].src);
	/* down to path's own vnode: one kid per component */
	struct vnode *v = &root;
	for (const char *p = path; !rc && *p;) {
		p++;
		size_t k = strcspn(p, "/");
		struct vnode *next = NULL;
		for (size_t i = 0; i < v->nkids && !next; i++)
			if (strlen(v->kids[i].name) == k && !memcmp(v->kids[i].name, p, k))
				next = &v->kids[i];
		if (!next) {
			rc = cf_err(CF_EINVAL, "%s: no stream below it", path);
			break;
		}
		v = next;
		p += k;
	}
	if (rc)
		goto out;
	if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		rc = eng_fill_node(path, name, &st, NULL, n);
	} else if (!(n->name = strdup(name))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
	} else {
		n->type = CF_NODE_DIR;
		n->mode = 0755;
		n->mtime_ns = n->ctime_ns = n->atime_ns = cf_now_ns();
	}
	if (!rc && !(rc = eng_save_vdir(c, v, NULL, n->subtree)))
		n->has_subtree = true;
out:
	eng_vnode_free(&root);
	return rc;
}

static int cmp_vnode(const void *a, const void *b)
{
	return strcmp(((const struct vnode *)a)->name, ((const struct vnode *)b)->name);
}

int eng_save_vdir(struct ctx *c, struct vnode *v, const struct cf_tree *old, uint8_t id[CF_ID_LEN])
{
	struct cf_tree t = CF_TREE_INIT;
	struct pending *pd = calloc(v->nkids ? v->nkids : 1, sizeof(*pd));
	struct batch b = BATCH_INIT;
	size_t npd = 0;
	int rc = CF_OK;

	if (!pd)
		return cf_err(CF_ENOMEM, "out of memory");
	/* build the tree in name order so it needs no sorting afterwards */
	if (v->nkids)
		qsort(v->kids, v->nkids, sizeof(*v->kids), cmp_vnode);
	for (size_t i = 0; i < v->nkids; i++) {
		struct vnode *k = &v->kids[i];
		const struct cf_node *on = old ? cf_tree_find(old, k->name) : NULL;
		struct cf_node *n = cf_tree_add(&t);
		if (!n) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto fail;
		}
		pd[npd].node = t.n - 1;
		if (k->stream) {
			if ((rc = stream_node(c, k, n, &b, &pd[npd].refs)))
				goto fail;
			npd++;
			continue;
		}
		struct stat st;
		bool have_stat = k->fspath && lstat(k->fspath, &st) == 0;
		if (k->leaf) {
			if (!have_stat) {
				eng_error(c, k->fspath, "%s: %s", k->fspath, strerror(errno));
				c->unreadable++;
				cf_node_release(n);
				t.n--;
				continue;
			}
			c->root_dev = st.st_dev;
			bool drop = false;
			if ((rc = eng_save_entry(c, k->fspath, &st, on, n, &pd[npd], &b, &drop)))
				goto fail;
			if (drop) {
				eng_refs_free(&pd[npd].refs);
				cf_node_release(n);
				t.n--;
				continue;
			}
			npd++;
			continue;
		}
		/* an intermediate directory: its own metadata if it exists on disk
		 * (it does for file paths), else a plain 0755 directory (streams) */
		if (have_stat && S_ISDIR(st.st_mode)) {
			if ((rc = eng_fill_node(k->fspath, k->name, &st, NULL, n)))
				goto fail;
		} else {
			if (!(n->name = strdup(k->name))) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto fail;
			}
			n->type = CF_NODE_DIR;
			n->mode = 0755;
			n->mtime_ns = n->ctime_ns = n->atime_ns = cf_now_ns();
		}
		struct cf_tree ot = CF_TREE_INIT;
		bool have_old = on && on->type == CF_NODE_DIR && on->has_subtree &&
				cf_repo_load_tree(c->repo, on->subtree, &ot) == CF_OK;
		rc = eng_save_vdir(c, k, have_old ? &ot : NULL, n->subtree);
		cf_tree_release(&ot);
		if (rc)
			goto fail;
		n->has_subtree = true;
		npd++;
	}
	/* the directories still waiting first: some are this one's */
	if ((rc = eng_dq_run(c, true)))
		goto fail;
	rc = eng_finish_tree(c, &t, pd, npd, &b, NULL, NULL, id);
	free(pd);
	cf_tree_release(&t);
	return rc;
fail:
	eng_dq_abort(c);
	eng_batch_drain(c, &b);
	for (size_t i = 0; i < npd + 1 && i < (v->nkids ? v->nkids : 1); i++) {
		eng_refs_free(&pd[i].refs);
		free(pd[i].sub);
	}
	free(pd);
	cf_tree_release(&t);
	return rc;
}
