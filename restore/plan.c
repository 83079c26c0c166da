/*
 * plan.c - phase 1: the snapshot's trees walked beside the target.
 *
 * One thread walks each root's tree (rs_plan) and, for every entry the
 * options want (--include, --exclude, --path-map: wanted(), excluded(),
 * is_mapped()), decides what happens to it:
 *   - a directory is opened, or made (what is in its way removed first);
 *   - a symlink, fifo or device is kept if the same, else made under a
 *     temporary name and renamed over whatever is there;
 *   - a file becomes an rfile: F_CHECK (there, same size: compare it),
 *     F_WRITE, F_KEEP (--overwrite never) or F_LINK (a later name of an
 *     inode the snapshot has several names for: c->hl finds its leader);
 *   - what the directory holds that the snapshot does not is removed with
 *     `delete` (only beneath a source path of the snapshot, inside an
 *     included tree, never an excluded name), stale temporary files always.
 *
 * Invariants: every step into the target is relative to the parent's
 * descriptor with O_NOFOLLOW, so a symlink already there is never followed;
 * unsafe names in the snapshot ("", ".", "..", "/") are refused; in a dry
 * run nothing is changed, only listed; an error on one entry is reported
 * (rs_path_failed) and the walk goes on, only CF_ENOMEM and CF_EINTR stop it.
 * The plan runs before any other thread: it writes c->st unlocked.
 */
#include "restore/restore_int.h"
#include "common/array.h"
#include "common/fsat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Is snapshot path p strictly beneath one of the snapshot's source paths? */
static bool beneath_source(const struct rctx *c, const char *p)
{
	for (size_t i = 0; i < c->nsrc; i++)
		if (rs_under(p, c->srcpaths[i]) && strcmp(p, c->srcpaths[i]) != 0)
			return true;
	return false;
}

/* Does an --exclude pattern match the snapshot path or the name? */
static bool excluded(const struct rctx *c, const char *snap, const char *name)
{
	for (size_t i = 0; i < c->o->nexcludes; i++)
		if (fnmatch(c->o->excludes[i], snap, 0) == 0 || fnmatch(c->o->excludes[i], name, 0) == 0)
			return true;
	return false;
}

/* Does root rt restore snapshot path snap?  *descend_only: only because an
 * include lies below it (make the directory, restore nothing else in it). */
static bool wanted(const struct rroot *rt, const char *snap, bool *descend_only)
{
	*descend_only = false;
	if (!rt->nincs)
		return true;
	for (size_t i = 0; i < rt->nincs; i++)
		if (rs_under(snap, rt->incs[i]))
			return true;
	for (size_t i = 0; i < rt->nincs; i++)
		if (rs_under(rt->incs[i], snap)) {
			*descend_only = true;
			return true;
		}
	return false;
}

/* Is snap the directory of a --path-map (its own root restores it)? */
static bool is_mapped(const struct rctx *c, const char *snap)
{
	for (size_t i = 0; i < c->o->nmaps; i++)
		if (!strcmp(c->roots[i].snap, snap))
			return true;
	return false;
}

/* Size of the regular files below a directory fd (dry-run byte counts). */
static uint64_t tree_bytes(int dirfd, uint64_t *count)
{
	uint64_t total = 0;
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		(*count)++;
		if (S_ISREG(st.st_mode))
			total += (uint64_t)st.st_size;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				total += tree_bytes(sub, count);
				close(sub);
			}
		}
	}
	closedir(d);
	return total;
}

/* Remove (or in a dry run, count) an entry the snapshot does not have. */
static void delete_extra(struct rctx *c, int dirfd, const char *name, const char *path)
{
	struct stat st;
	uint64_t bytes = 0, count = 1;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISREG(st.st_mode))
		bytes = (uint64_t)st.st_size;
	if (S_ISDIR(st.st_mode)) {
		int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			bytes = tree_bytes(fd, &count);
			close(fd);
		}
	}
	rs_list(c, "delete", path, S_ISDIR(st.st_mode), bytes);
	if (!c->o->dry_run) {
		int rc = cf_fsat_remove(dirfd, name, path);
		if (rc) {
			rs_path_failed(c, path, rc);
			return;
		}
	}
	rs_add_stat(c, &c->st->deleted, count);
	rs_add_stat(c, &c->st->bytes_deleted, bytes);
}

/* A node restore just made under a temporary name in dirfd: *pfd, an O_PATH
 * descriptor of it, once its fstat (*st) shows that it is still the one made
 * (the type asked for, this process' owner, one link: not a hard link to
 * something elsewhere that was swapped in).  CF_OK, or an error naming path. */
static int open_made(int dirfd, const char *tmp, mode_t type, struct stat *st, const char *path,
		     int *pfd)
{
	if ((*pfd = openat(dirfd, tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return cf_err_errno("%s: open what was made", path);
	if (fstat(*pfd, st) < 0 || (st->st_mode & S_IFMT) != type || st->st_nlink != 1 ||
	    st->st_uid != geteuid()) {
		close(*pfd);
		*pfd = -1;
		return cf_err(CF_EIO, "%s: replaced by something else while being restored", path);
	}
	return CF_OK;
}

static int add_file(struct rctx *c, uint32_t root, const char *rel, const struct cf_node *n,
		    int state, bool existed, size_t leader)
{
	int rc;
	if ((rc = CF_GROW(c->files, c->nfiles + 1, c->filecap)))
		return rc;
	struct rfile *f = &c->files[c->nfiles];
	memset(f, 0, sizeof(*f));
	if ((rc = cf_tree_node_copy(n, &f->node)))
		return rc;
	f->rel = strdup(rel);
	f->path = rs_join(c->roots[root].dir, rel);
	if (!f->rel || !f->path) {
		free(f->rel);
		free(f->path);
		cf_node_release(&f->node);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	f->root = root;
	f->state = (uint8_t)state;
	f->existed = existed;
	f->leader = leader;
	f->fd = f->dirfd = -1;
	c->nfiles++;
	return CF_OK;
}

/* Make a symlink, fifo or device node under a temporary name, set its
 * metadata through a descriptor of the node made (rs_set_meta_path) and rename
 * it into place (replacing whatever is there, never following it). */
static int make_special(struct rctx *c, int dirfd, const char *path, const struct cf_node *n)
{
	char tmp[64];
	struct stat st;
	mode_t type;
	int r, rc, pfd;
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%d-s%u", c->pid, atomic_fetch_add(&c->tmpctr, 1));
	switch (n->type) {
	case CF_NODE_SYMLINK:
		type = S_IFLNK;
		r = symlinkat(n->linktarget ? n->linktarget : "", dirfd, tmp);
		break;
	case CF_NODE_FIFO:
		type = S_IFIFO;
		r = mkfifoat(dirfd, tmp, n->mode);
		break;
	default:
		type = n->type == CF_NODE_CHARDEV ? S_IFCHR : S_IFBLK;
		r = mknodat(dirfd, tmp, type | n->mode, (dev_t)n->rdev);
		break;
	}
	if (r < 0)
		return cf_err_errno("%s: create", path);
	if ((rc = open_made(dirfd, tmp, type, &st, path, &pfd))) {
		unlinkat(dirfd, tmp, 0); /* the name is restore's; what it names now is not */
		return rc;
	}
	rs_set_meta_path(c, pfd, &st, n, path);
	close(pfd);
	if (renameat(dirfd, tmp, dirfd, n->name) < 0) {
		rc = cf_err_errno("%s: rename into place", path);
		unlinkat(dirfd, tmp, 0);
		return rc;
	}
	return CF_OK;
}

/* Is the node pfd refers to (st: its fstat) the snapshot's n? */
static bool special_same(int pfd, const struct cf_node *n, const struct stat *st)
{
	switch (n->type) {
	case CF_NODE_SYMLINK: {
		if (!S_ISLNK(st->st_mode))
			return false;
		char buf[4096];
		ssize_t l = readlinkat(pfd, "", buf, sizeof(buf)); /* the link pfd is */
		const char *want = n->linktarget ? n->linktarget : "";
		return l >= 0 && (size_t)l == strlen(want) && !memcmp(buf, want, (size_t)l);
	}
	case CF_NODE_FIFO:
		return S_ISFIFO(st->st_mode);
	case CF_NODE_CHARDEV:
		return S_ISCHR(st->st_mode) && st->st_rdev == (dev_t)n->rdev;
	case CF_NODE_BLOCKDEV:
		return S_ISBLK(st->st_mode) && st->st_rdev == (dev_t)n->rdev;
	}
	return false;
}

/* An existing symlink, fifo or device node where the snapshot has the same:
 * keep it (and reset its metadata, unless dry) if the node the name leads
 * to now is the same kind with the same target or device, has no other
 * link (a hard link is shared with a name elsewhere: it is replaced, not
 * changed), and needs no setuid/setgid bit it lacks.  The decision and the
 * change are made on one O_PATH descriptor, so a name swapped meanwhile
 * cannot turn a change onto something else.  false: replace it. */
static bool keep_special(struct rctx *c, int dirfd, const struct cf_node *n, const char *path)
{
	struct stat st;
	bool keep = false;
	int pfd = openat(dirfd, n->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return false;
	/* (the link count first: a node shared with a name elsewhere is not
	 * even read) */
	if (fstat(pfd, &st) == 0 && st.st_nlink == 1 && special_same(pfd, n, &st) &&
	    (!(n->mode & 06000) ||
	     ((st.st_mode & 07777) == n->mode && st.st_uid == n->uid && st.st_gid == n->gid))) {
		keep = true;
		rs_list(c, "keep", path, false, 0);
		if (!c->o->dry_run)
			rs_set_meta_path(c, pfd, &st, n, path);
	}
	close(pfd);
	return keep;
}

static int plan_tree(struct rctx *c, uint32_t root, int dirfd, const char *snap, const char *rel,
		     const uint8_t *tree_id, bool descend_only, bool fresh);

/* One entry of a directory.  Errors that concern only this entry are
 * reported and swallowed; CF_ENOMEM and CF_EINTR stop the plan. */
static int plan_node(struct rctx *c, uint32_t root, int dirfd, const char *snap, const char *rel,
		     const struct cf_node *n, bool fresh)
{
	const struct rroot *rt = &c->roots[root];
	char *csnap = NULL, *crel = NULL, *path = NULL;
	struct stat st;
	bool desc, exists = false, dry = c->o->dry_run, never = c->o->overwrite == CF_OVERWRITE_NEVER;
	int rc = CF_OK;

	if (!cf_name_ok(n->name)) {
		char *p = rs_join(rt->dir, rel);
		rc = cf_err(CF_ECORRUPT, "%s: refusing an entry with an unsafe name in the snapshot",
			    p ? p : rel);
		rs_path_failed(c, p ? p : rel, rc);
		free(p);
		return CF_OK;
	}
	if (asprintf(&csnap, "%s/%s", snap, n->name) < 0)
		return cf_err(CF_ENOMEM, "out of memory");
	crel = rs_join(rel, n->name);
	path = crel ? rs_join(rt->dir, crel) : NULL;
	if (!crel || !path) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if (!wanted(rt, csnap, &desc) || excluded(c, csnap, n->name) ||
	    (rt->is_target && is_mapped(c, csnap)) || (desc && n->type != CF_NODE_DIR))
		goto out;
	/* in a directory this restore made, nothing is there but what it put */
	if (dirfd >= 0 && !fresh && fstatat(dirfd, n->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		exists = true;

	if (n->type == CF_NODE_DIR) {
		int sub = -1;
		bool made = false, opened;
		struct stat dst;
		memset(&dst, 0, sizeof(dst));
		if (exists && never && !S_ISDIR(st.st_mode)) {
			rs_list(c, "keep", path, false, 0);
			goto out;
		}
		if (exists && S_ISDIR(st.st_mode)) {
			sub = openat(dirfd, n->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				rc = cf_err_errno("%s: open directory", path);
				goto fail;
			}
		} else {
			rs_list(c, exists ? "replace" : "create", path, true, 0);
			if (!dry) {
				/* a symlink or file where the directory should be is
				 * removed, never followed */
				if (exists && unlinkat(dirfd, n->name, 0) < 0) {
					rc = cf_err_errno("%s: remove what is in the way", path);
					goto fail;
				}
				if (mkdirat(dirfd, n->name, 0700) < 0) {
					rc = cf_err_errno("%s: create directory", path);
					goto fail;
				}
				made = true;
				sub = openat(dirfd, n->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (sub < 0) {
					rc = cf_err_errno("%s: open directory", path);
					goto fail;
				}
			}
		}
		/* the directory opened is the one whose metadata is set at the
		 * end (rs_set_dir_meta checks that it still is); one swapped in for
		 * the one just made is not taken as empty */
		if (sub >= 0 && fstat(sub, &dst) < 0) {
			rc = cf_err_errno("%s: stat directory", path);
			close(sub);
			goto fail;
		}
		if (made && dst.st_uid != geteuid())
			made = false;
		opened = sub >= 0;
		if (n->has_subtree)
			rc = plan_tree(c, root, sub, csnap, crel, n->subtree, desc, made);
		if (sub >= 0)
			close(sub);
		if (rc)
			goto out;
		if (!desc) {
			if ((rc = CF_GROW(c->dirs, c->ndirs + 1, c->dircap)))
				goto out;
			struct rdir *d = &c->dirs[c->ndirs];
			if ((rc = cf_tree_node_copy(n, &d->node)))
				goto out;
			d->rel = crel;
			d->root = root;
			d->has_ino = opened;
			d->dev = (uint64_t)dst.st_dev;
			d->ino = (uint64_t)dst.st_ino;
			crel = NULL;
			c->ndirs++;
			c->st->dirs++;
		}
		goto out;
	}

	if (exists && never) {
		rs_list(c, "keep", path, false, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
		if (n->type == CF_NODE_FILE) {
			c->st->files_kept++;
			c->st->bytes_kept += S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
			if (!(rc = add_file(c, root, crel, n, F_KEEP, true, 0)))
				rs_set_planned(&c->files[c->nfiles - 1], &st);
		}
		goto out;
	}
	if (exists && S_ISDIR(st.st_mode)) {
		/* a directory where a file should be goes, with what is in it */
		uint64_t count = 0;
		int fd = openat(dirfd, n->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		uint64_t bytes = fd >= 0 ? tree_bytes(fd, &count) : 0;
		if (fd >= 0)
			close(fd);
		rs_list(c, "delete", path, true, bytes);
		if (!dry && (rc = cf_fsat_remove(dirfd, n->name, path)))
			goto fail;
		c->st->deleted += count + 1;
		c->st->bytes_deleted += bytes;
		exists = false;
	}

	if (n->type == CF_NODE_FILE) {
		if (n->nlink > 1) {
			for (size_t i = 0; i < c->nhl; i++)
				if (c->hl[i].dev == n->dev && c->hl[i].ino == n->ino && c->hl[i].root == root) {
					rc = add_file(c, root, crel, n, F_LINK, exists, c->hl[i].file);
					goto out;
				}
			if ((rc = CF_GROW(c->hl, c->nhl + 1, c->hlcap)))
				goto out;
			c->hl[c->nhl++] = (struct hlent){ n->dev, n->ino, root, c->nfiles };
		}
		/* a file with more links than the snapshot's shares its inode
		 * with a name elsewhere (perhaps outside the target): it is
		 * replaced, never changed */
		bool check = exists && S_ISREG(st.st_mode) && c->o->overwrite == CF_OVERWRITE_IF_CHANGED &&
			     (uint64_t)st.st_size == n->size &&
			     (st.st_nlink == 1 || (n->nlink > 1 && st.st_nlink <= n->nlink));
		if (!(rc = add_file(c, root, crel, n, check ? F_CHECK : F_WRITE, exists, 0)) && check)
			rs_set_planned(&c->files[c->nfiles - 1], &st);
		goto out;
	}
	if (n->type == CF_NODE_SOCKET) /* nothing can use a dead socket file */
		goto out;
	if (exists && keep_special(c, dirfd, n, path))
		goto out;
	rs_list(c, exists ? "replace" : "create", path, false, 0);
	c->st->others++;
	if (!dry && (rc = make_special(c, dirfd, path, n)))
		goto fail;
	goto out;
fail:
	rs_path_failed(c, path, rc);
	rc = CF_OK;
out:
	free(csnap);
	free(crel);
	free(path);
	return rc;
}

/* Remove stale temporary files and (with delete_extra) whatever the tree t
 * does not hold from the target directory dirfd. */
static int plan_extras(struct rctx *c, uint32_t root, int dirfd, const char *snap, const char *rel,
		       const struct cf_tree *t, bool descend_only)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	char **names = NULL;
	size_t nn = 0, cap = 0;
	int rc = CF_OK;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return CF_OK; /* unreadable: the entries themselves will say so */
	}
	/* collect first: removing while readdir runs may skip entries */
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || cf_tree_find(t, de->d_name))
			continue;
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) &&
		    (!c->o->delete_extra || descend_only))
			continue;
		if ((rc = CF_GROW(names, nn + 1, cap)))
			goto out;
		if (!(names[nn] = strdup(de->d_name))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		nn++;
	}
	for (size_t i = 0; i < nn; i++) {
		char *csnap = NULL, *crel = rs_join(rel, names[i]);
		char *path = crel ? rs_join(c->roots[root].dir, crel) : NULL;
		if (!path || asprintf(&csnap, "%s/%s", snap, names[i]) < 0) {
			free(crel);
			free(path);
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		if (!strncmp(names[i], TMP_PREFIX, strlen(TMP_PREFIX))) {
			/* left by a killed restore: never a complete file */
			if (!c->o->dry_run) {
				int r = cf_fsat_remove(dirfd, names[i], path);
				if (r)
					rs_path_failed(c, path, r);
			}
		} else {
			bool desc;
			const struct rroot *rt = &c->roots[root];
			/* only beneath a source path of the snapshot (restoring
			 * /backup/app-data to / with --delete must not remove /etc
			 * or a sibling /backup/other), with --include only inside
			 * an included tree; excluded names are left alone */
			if (beneath_source(c, csnap) && wanted(rt, csnap, &desc) && !desc &&
			    !excluded(c, csnap, names[i]))
				delete_extra(c, dirfd, names[i], path);
		}
		free(csnap);
		free(crel);
		free(path);
	}
out:
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

/* fresh: dirfd is a directory this restore has just made (empty). */
static int plan_tree(struct rctx *c, uint32_t root, int dirfd, const char *snap, const char *rel,
		     const uint8_t *tree_id, bool descend_only, bool fresh)
{
	struct cf_tree t = CF_TREE_INIT;
	int rc = cf_repo_load_tree(c->repo, tree_id, &t);
	if (rc) {
		char *p = rs_join(c->roots[root].dir, rel);
		rc = cf_err_prefix(rc, "%s", p ? p : rel);
		rs_path_failed(c, p ? p : rel, rc);
		free(p);
		return CF_OK;
	}
	if (dirfd >= 0 && !fresh)
		rc = plan_extras(c, root, dirfd, snap, rel, &t, descend_only);
	for (size_t i = 0; i < t.n && !rc; i++) {
		rc = plan_node(c, root, dirfd, snap, rel, &t.nodes[i], fresh);
		if (!rc && cf_interrupted)
			rc = cf_err(CF_EINTR, "interrupted");
	}
	cf_tree_release(&t);
	return rc;
}


int rs_plan(struct rctx *c)
{
	int rc = CF_OK;
	for (size_t i = 0; i < c->nroots && !rc; i++) {
		struct rroot *rt = &c->roots[i];
		if (rt->has_tree) {
			rc = plan_tree(c, (uint32_t)i, rt->fd, rt->snap, "", rt->tree, false, false);
		} else if (rt->fd >= 0) { /* an empty mapped directory: only extras to remove */
			struct cf_tree empty = CF_TREE_INIT;
			rc = plan_extras(c, (uint32_t)i, rt->fd, rt->snap, "", &empty, false);
		}
	}
	return rc;
}
