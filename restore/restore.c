/* restore.c - see restore.h. */
#include "restore.h"
#include "../repo/tree.h"
#include "../common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

struct fjob {
	int dirfd;          /* dup'ed; closed by the worker */
	char *relpath;      /* for messages, relative to target */
	struct cf_node node;/* owned copy */
};

struct link_job {
	char *from, *to;    /* relative to target */
};

struct dir_meta {
	char *relpath;
	struct cf_node node;
};

struct rctx {
	struct cf_repo *repo;
	const struct cf_restore_opts *o;
	struct cf_restore_stats *st;
	int targetfd;
	bool root;

	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	struct fjob *q;
	size_t cap, head, n;
	bool stop;
	pthread_t *threads;
	int nthreads;

	struct dir_meta *dirs; size_t ndirs, dircap;
	struct link_job *links; size_t nlinks, linkcap;
	/* first restored path of each multiply-linked inode */
	struct { uint64_t dev, ino; char *path; } *hl; size_t nhl, hlcap;
};

static void count_error(struct rctx *c)
{
	pthread_mutex_lock(&c->mu);
	c->st->errors++;
	pthread_mutex_unlock(&c->mu);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	if (n == 0 || p[0])
		return false;
	return memcmp(p, p + 1, n - 1) == 0;
}

/* Write p[0..n) at off, skipping 4 KiB blocks of zeros so that holes come
 * back as holes (the file is extended to its full size by ftruncate). */
static int write_sparse(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	const size_t B = 4096;
	size_t i = 0;
	while (i < n) {
		size_t len = n - i < B ? n - i : B;
		if (all_zero(p + i, len)) {
			i += len;
			continue;
		}
		size_t start = i;
		while (i < n) {
			len = n - i < B ? n - i : B;
			if (all_zero(p + i, len))
				break;
			i += len;
		}
		if (cf_pwrite_full(fd, p + start, i - start, (off_t)(off + start)) < 0)
			return cf_err_errno("pwrite");
	}
	return CF_OK;
}

static void set_meta_fd(struct rctx *c, int fd, const struct cf_node *n, const char *rel)
{
	if (c->root && fchown(fd, n->uid, n->gid) < 0)
		cf_warn("warning: %s: cannot set owner: %s", rel, strerror(errno));
	if (fchmod(fd, n->mode) < 0)
		cf_warn("warning: %s: cannot set mode: %s", rel, strerror(errno));
	for (size_t i = 0; i < n->nxattrs; i++)
		if (fsetxattr(fd, n->xattrs[i].name, n->xattrs[i].value, n->xattrs[i].len, 0) < 0 &&
		    errno != ENOTSUP)
			cf_warn("warning: %s: cannot set xattr %s: %s", rel, n->xattrs[i].name, strerror(errno));
	struct timespec ts[2] = {
		{ n->atime_ns / 1000000000, n->atime_ns % 1000000000 },
		{ n->mtime_ns / 1000000000, n->mtime_ns % 1000000000 },
	};
	if (futimens(fd, ts) < 0)
		cf_warn("warning: %s: cannot set times: %s", rel, strerror(errno));
}

static int write_file(struct rctx *c, struct fjob *j)
{
	struct cf_buf blob = CF_BUF_INIT;
	const struct cf_node *n = &j->node;
	char tmp[300];
	static _Atomic unsigned counter;
	uint64_t off = 0;
	int rc = CF_OK;

	snprintf(tmp, sizeof(tmp), ".coffer-tmp-%d-%u", (int)getpid(), counter++);
	int fd = openat(j->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return cf_err_errno("%s: create", j->relpath);
	for (size_t i = 0; i < n->ncontent; i++) {
		if ((rc = cf_repo_load_blob(c->repo, CF_BLOB_DATA, n->content[i], &blob))) {
			rc = cf_err_prefix(rc, "%s", j->relpath);
			goto fail;
		}
		if ((rc = write_sparse(fd, blob.data, blob.len, off))) {
			rc = cf_err_prefix(rc, "%s: write", j->relpath);
			goto fail;
		}
		off += blob.len;
		if (cf_interrupted) {
			rc = cf_err(CF_EINTR, "interrupted");
			goto fail;
		}
	}
	if (off != n->size)
		cf_warn("warning: %s: restored %llu bytes, the snapshot recorded %llu", j->relpath,
			(unsigned long long)off, (unsigned long long)n->size);
	if (ftruncate(fd, (off_t)off) < 0) { /* trailing hole */
		rc = cf_err_errno("%s: truncate", j->relpath);
		goto fail;
	}
	set_meta_fd(c, fd, n, j->relpath);
	if (close(fd) < 0) {
		fd = -1;
		rc = cf_err_errno("%s: close", j->relpath);
		goto fail;
	}
	fd = -1;
	if (renameat(j->dirfd, tmp, j->dirfd, n->name) < 0) {
		rc = cf_err_errno("%s: rename into place", j->relpath);
		goto fail;
	}
	pthread_mutex_lock(&c->mu);
	c->st->files++;
	c->st->bytes += off;
	pthread_mutex_unlock(&c->mu);
	cf_buf_release(&blob);
	return CF_OK;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(j->dirfd, tmp, 0);
	cf_buf_release(&blob);
	return rc;
}

static void *rworker(void *arg)
{
	struct rctx *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->mu);
		while (!c->n && !c->stop)
			pthread_cond_wait(&c->not_empty, &c->mu);
		if (!c->n) {
			pthread_mutex_unlock(&c->mu);
			return NULL;
		}
		struct fjob j = c->q[c->head];
		c->head = (c->head + 1) % c->cap;
		c->n--;
		pthread_cond_signal(&c->not_full);
		pthread_mutex_unlock(&c->mu);
		int rc = write_file(c, &j);
		if (rc) {
			cf_warn("error: %s", cf_errmsg(rc));
			count_error(c);
		}
		close(j.dirfd);
		free(j.relpath);
		cf_node_release(&j.node);
	}
}

static int node_copy(const struct cf_node *src, struct cf_node *dst)
{
	memset(dst, 0, sizeof(*dst));
	*dst = *src;
	dst->name = strdup(src->name);
	dst->user = src->user ? strdup(src->user) : NULL;
	dst->group = src->group ? strdup(src->group) : NULL;
	dst->linktarget = src->linktarget ? strdup(src->linktarget) : NULL;
	dst->xattrs = NULL;
	dst->nxattrs = 0;
	dst->content = NULL;
	dst->ncontent = 0;
	if (src->ncontent) {
		dst->content = malloc(src->ncontent * CF_ID_LEN);
		if (dst->content) {
			memcpy(dst->content, src->content, src->ncontent * CF_ID_LEN);
			dst->ncontent = src->ncontent;
		}
	}
	if (src->nxattrs && (dst->xattrs = calloc(src->nxattrs, sizeof(*dst->xattrs)))) {
		for (size_t i = 0; i < src->nxattrs; i++) {
			dst->xattrs[i].name = strdup(src->xattrs[i].name);
			dst->xattrs[i].value = malloc(src->xattrs[i].len ? src->xattrs[i].len : 1);
			if (dst->xattrs[i].value)
				memcpy(dst->xattrs[i].value, src->xattrs[i].value, src->xattrs[i].len);
			dst->xattrs[i].len = src->xattrs[i].len;
			dst->nxattrs++;
		}
	}
	if (!dst->name || (src->ncontent && !dst->content)) {
		cf_node_release(dst);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	return CF_OK;
}

static int queue_file(struct rctx *c, int dirfd, const char *rel, const struct cf_node *n)
{
	struct fjob j;
	int rc;
	if ((rc = node_copy(n, &j.node)))
		return rc;
	j.dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	j.relpath = strdup(rel);
	if (j.dirfd < 0 || !j.relpath) {
		if (j.dirfd >= 0)
			close(j.dirfd);
		free(j.relpath);
		cf_node_release(&j.node);
		return cf_err_errno("%s", rel);
	}
	pthread_mutex_lock(&c->mu);
	while (c->n == c->cap)
		pthread_cond_wait(&c->not_full, &c->mu);
	c->q[(c->head + c->n) % c->cap] = j;
	c->n++;
	pthread_cond_signal(&c->not_empty);
	pthread_mutex_unlock(&c->mu);
	return CF_OK;
}

#define GROW(arr, n, cap) \
	((n) < (cap) ? 0 : ((cap) = (cap) ? (cap) * 2 : 64, \
	 ((arr) = realloc_or_keep((arr), (cap) * sizeof(*(arr)))) ? 0 : -1))

static void *realloc_or_keep(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q)
		free(p);
	return q;
}

/* Is the snapshot path rel (e.g. "/var/lib/x") wanted by --include? */
static bool wanted(const struct rctx *c, const char *rel, bool *descend_only)
{
	*descend_only = false;
	if (!c->o->nincludes)
		return true;
	size_t rl = strlen(rel);
	for (size_t i = 0; i < c->o->nincludes; i++) {
		const char *inc = c->o->includes[i];
		size_t il = strlen(inc);
		while (il > 1 && inc[il - 1] == '/')
			il--;
		/* inside an included sub-tree */
		if (rl >= il && strncmp(rel, inc, il) == 0 && (rel[il] == 0 || rel[il] == '/' || il == 1))
			return true;
	}
	for (size_t i = 0; i < c->o->nincludes; i++) {
		const char *inc = c->o->includes[i];
		/* on the way to one: create the directory, restore nothing else */
		if (strncmp(inc, rel, rl) == 0 && inc[rl] == '/') {
			*descend_only = true;
			return true;
		}
	}
	return false;
}

static int restore_special(struct rctx *c, int dirfd, const char *rel, const struct cf_node *n)
{
	char tmp[300];
	static _Atomic unsigned counter;
	snprintf(tmp, sizeof(tmp), ".coffer-tmp-%d-s%u", (int)getpid(), counter++);
	int r;
	switch (n->type) {
	case CF_NODE_SYMLINK:
		r = symlinkat(n->linktarget ? n->linktarget : "", dirfd, tmp);
		break;
	case CF_NODE_FIFO:
		r = mkfifoat(dirfd, tmp, n->mode);
		break;
	case CF_NODE_CHARDEV:
	case CF_NODE_BLOCKDEV:
		r = mknodat(dirfd, tmp, (n->type == CF_NODE_CHARDEV ? S_IFCHR : S_IFBLK) | n->mode,
			    (dev_t)n->rdev);
		break;
	default: /* sockets are not recreated: nothing can use a dead socket file */
		return CF_OK;
	}
	if (r < 0)
		return cf_err_errno("%s: create", rel);
	if (c->root && fchownat(dirfd, tmp, n->uid, n->gid, AT_SYMLINK_NOFOLLOW) < 0)
		cf_warn("warning: %s: cannot set owner: %s", rel, strerror(errno));
	if (n->type != CF_NODE_SYMLINK && fchmodat(dirfd, tmp, n->mode, 0) < 0)
		cf_warn("warning: %s: cannot set mode: %s", rel, strerror(errno));
	struct timespec ts[2] = {
		{ n->atime_ns / 1000000000, n->atime_ns % 1000000000 },
		{ n->mtime_ns / 1000000000, n->mtime_ns % 1000000000 },
	};
	utimensat(dirfd, tmp, ts, AT_SYMLINK_NOFOLLOW);
	if (renameat(dirfd, tmp, dirfd, n->name) < 0) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		errno = e;
		return cf_err_errno("%s: rename into place", rel);
	}
	pthread_mutex_lock(&c->mu);
	c->st->others++;
	pthread_mutex_unlock(&c->mu);
	return CF_OK;
}

static int restore_tree(struct rctx *c, int dirfd, const char *rel, const uint8_t id[CF_ID_LEN]);

static int restore_node(struct rctx *c, int dirfd, const char *prefix, const struct cf_node *n)
{
	char *rel = NULL;
	int rc = CF_OK;
	bool descend_only;

	if (!cf_name_ok(n->name)) {
		cf_warn("error: %s: refusing entry with unsafe name", prefix);
		count_error(c);
		return CF_OK;
	}
	if (asprintf(&rel, "%s/%s", strcmp(prefix, "/") ? prefix : "", n->name) < 0)
		return cf_err(CF_ENOMEM, "out of memory");
	if (!wanted(c, rel, &descend_only))
		goto out;
	if (descend_only && n->type != CF_NODE_DIR)
		goto out;
	if (n->type == CF_NODE_DIR) {
		if (mkdirat(dirfd, n->name, 0700) < 0 && errno != EEXIST) {
			rc = cf_err_errno("%s: create directory", rel);
			goto fail_entry;
		}
		int sub = openat(dirfd, n->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			rc = cf_err_errno("%s: open directory (a symlink or file is in the way?)", rel);
			goto fail_entry;
		}
		if (n->has_subtree)
			rc = restore_tree(c, sub, rel, n->subtree);
		close(sub);
		if (rc == CF_ENOMEM || rc == CF_EINTR)
			goto out;
		if (rc) {
			cf_warn("error: %s", cf_errmsg(rc));
			count_error(c);
			rc = CF_OK;
		}
		if (!descend_only) {
			if (GROW(c->dirs, c->ndirs, c->dircap)) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			struct dir_meta *dm = &c->dirs[c->ndirs];
			if ((rc = node_copy(n, &dm->node)))
				goto out;
			dm->relpath = rel;
			rel = NULL;
			c->ndirs++;
			c->st->dirs++;
		}
		goto out;
	}
	if (n->type == CF_NODE_FILE) {
		if (n->nlink > 1) {
			for (size_t i = 0; i < c->nhl; i++)
				if (c->hl[i].dev == n->dev && c->hl[i].ino == n->ino) {
					if (GROW(c->links, c->nlinks, c->linkcap)) {
						rc = cf_err(CF_ENOMEM, "out of memory");
						goto out;
					}
					c->links[c->nlinks].from = strdup(c->hl[i].path);
					c->links[c->nlinks].to = rel;
					rel = NULL;
					c->nlinks++;
					goto out;
				}
			if (GROW(c->hl, c->nhl, c->hlcap)) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			c->hl[c->nhl].dev = n->dev;
			c->hl[c->nhl].ino = n->ino;
			c->hl[c->nhl].path = strdup(rel);
			c->nhl++;
		}
		rc = queue_file(c, dirfd, rel, n);
		goto out;
	}
	rc = restore_special(c, dirfd, rel, n);
	if (rc)
		goto fail_entry;
	goto out;
fail_entry:
	cf_warn("error: %s", cf_errmsg(rc));
	count_error(c);
	rc = CF_OK;
out:
	free(rel);
	return rc;
}

static int restore_tree(struct rctx *c, int dirfd, const char *rel, const uint8_t id[CF_ID_LEN])
{
	struct cf_tree t = CF_TREE_INIT;
	int rc = cf_repo_load_tree(c->repo, id, &t);
	if (rc)
		return cf_err_prefix(rc, "%s", rel);
	for (size_t i = 0; i < t.n && !rc; i++) {
		rc = restore_node(c, dirfd, rel, &t.nodes[i]);
		if (!rc && cf_interrupted)
			rc = cf_err(CF_EINTR, "interrupted");
	}
	cf_tree_release(&t);
	return rc;
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return cf_err_errno("create %s", buf);
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return cf_err_errno("create %s", buf);
	return CF_OK;
}

int cf_restore_run(struct cf_repo *r, const struct cf_snapshot *s, const struct cf_restore_opts *o,
		   struct cf_restore_stats *st)
{
	struct rctx c;
	int rc;

	memset(&c, 0, sizeof(c));
	memset(st, 0, sizeof(*st));
	c.repo = r;
	c.o = o;
	c.st = st;
	c.root = geteuid() == 0;
	c.targetfd = -1;
	if (!o->target || !*o->target)
		return cf_err(CF_EINVAL, "no --target given");
	if ((rc = mkdir_p(o->target)))
		return rc;
	c.targetfd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.targetfd < 0)
		return cf_err_errno("open target %s", o->target);

	int threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1)
		threads = 1;
	threads *= 2; /* writers block on I/O; a few more than cores keeps the disk busy */
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.not_empty, NULL);
	pthread_cond_init(&c.not_full, NULL);
	c.cap = (size_t)threads * 4;
	c.q = calloc(c.cap, sizeof(*c.q));
	c.threads = calloc((size_t)threads, sizeof(*c.threads));
	if (!c.q || !c.threads) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&c.threads[i], NULL, rworker, &c))
			break;
		c.nthreads++;
	}
	rc = restore_tree(&c, c.targetfd, "", s->tree);

	pthread_mutex_lock(&c.mu);
	c.stop = true;
	pthread_cond_broadcast(&c.not_empty);
	pthread_mutex_unlock(&c.mu);
	for (int i = 0; i < c.nthreads; i++)
		pthread_join(c.threads[i], NULL);

	/* hard links once their first member exists */
	for (size_t i = 0; i < c.nlinks; i++) {
		const char *from = c.links[i].from + 1, *to = c.links[i].to + 1;
		unlinkat(c.targetfd, to, 0);
		if (linkat(c.targetfd, from, c.targetfd, to, 0) < 0) {
			cf_warn("error: %s: cannot link to %s: %s", c.links[i].to, c.links[i].from, strerror(errno));
			st->errors++;
		} else {
			st->files++;
		}
	}
	/* directory metadata last, deepest first */
	for (size_t i = c.ndirs; i-- > 0;) {
		struct dir_meta *d = &c.dirs[i];
		int fd = openat(c.targetfd, d->relpath + 1, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			cf_warn("error: %s: %s", d->relpath, strerror(errno));
			st->errors++;
			continue;
		}
		set_meta_fd(&c, fd, &d->node, d->relpath);
		close(fd);
	}
	if (!rc && st->errors)
		rc = cf_err(CF_EPARTIAL, "%llu entries could not be restored (named above)",
			    (unsigned long long)st->errors);
out:
	for (size_t i = 0; i < c.ndirs; i++) {
		free(c.dirs[i].relpath);
		cf_node_release(&c.dirs[i].node);
	}
	free(c.dirs);
	for (size_t i = 0; i < c.nlinks; i++) {
		free(c.links[i].from);
		free(c.links[i].to);
	}
	free(c.links);
	for (size_t i = 0; i < c.nhl; i++)
		free(c.hl[i].path);
	free(c.hl);
	free(c.q);
	free(c.threads);
	pthread_mutex_destroy(&c.mu);
	pthread_cond_destroy(&c.not_empty);
	pthread_cond_destroy(&c.not_full);
	if (c.targetfd >= 0)
		close(c.targetfd);
	return rc;
}
