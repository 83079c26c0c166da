/*
 * meta.c - owner, mode, xattrs and times of what restore wrote, made or kept.
 *
 * Metadata is always set through a descriptor, never by name: a file or
 * directory through the descriptor it was written or checked with, a
 * symlink, fifo or device through an O_PATH descriptor of the very node (the
 * mode and times through its /proc/self/fd link).  A name could be swapped
 * for a symlink or a hard link to something outside the target between a
 * check and the change; a descriptor cannot.
 *
 * Invariants: only what differs is changed (a kept file stays untouched);
 * the owner is set first and the mode after it (chown clears setuid bits);
 * a failure here is a warning, never a failed path, except a directory that
 * is no longer the one planned.  Not being root is counted
 * (st->owner_unset), not warned about per entry.
 */
#include "restore/restore_int.h"
#include "common/fsat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static void owner_failed(struct rctx *c, const char *path)
{
	if (c->is_root) {
		cf_warn("warning: %s: cannot set owner: %s", path, strerror(errno));
	} else {
		cf_info("%s: owner not set (not root): %s", path, strerror(errno));
		rs_add_stat(c, &c->st->owner_unset, 1);
	}
}

static void set_xattrs_fd(struct rctx *c, int fd, const struct cf_node *n, const char *path)
{
	uint8_t small[256];
	for (size_t i = 0; i < n->nxattrs; i++) {
		const struct cf_xattr *x = &n->xattrs[i];
		ssize_t l = fgetxattr(fd, x->name, small, sizeof(small));
		if (l >= 0 && (size_t)l == x->len && !memcmp(small, x->value, x->len))
			continue;
		if (fsetxattr(fd, x->name, x->value, x->len, 0) < 0 && errno != ENOTSUP)
			cf_warn("warning: %s: cannot set xattr %s: %s", path, x->name, strerror(errno));
	}
	if (!c->o->delete_extra)
		return;
	/* "equal to the snapshot" includes user attributes it did not have */
	char names[4096];
	ssize_t l = flistxattr(fd, names, sizeof(names));
	for (ssize_t off = 0; l > 0 && off < l; off += (ssize_t)strlen(names + off) + 1) {
		const char *nm = names + off;
		bool keep = strncmp(nm, "user.", 5) != 0;
		for (size_t i = 0; i < n->nxattrs && !keep; i++)
			keep = !strcmp(n->xattrs[i].name, nm);
		if (!keep && fremovexattr(fd, nm) < 0)
			cf_warn("warning: %s: cannot remove xattr %s: %s", path, nm, strerror(errno));
	}
}

/* Reset owner, mode, xattrs and times of an open file or directory to the
 * node's, touching only what differs (a kept file stays untouched). */
void rs_set_meta_fd(struct rctx *c, int fd, const struct cf_node *n, const char *path)
{
	struct stat st;
	bool have = fstat(fd, &st) == 0;
	bool chowned = false;
	if (!have || st.st_uid != n->uid || st.st_gid != n->gid) {
		if (fchown(fd, n->uid, n->gid) < 0)
			owner_failed(c, path);
		else
			chowned = true; /* may have cleared setuid bits: set the mode again */
	}
	if ((!have || chowned || (st.st_mode & 07777) != n->mode) && fchmod(fd, n->mode) < 0)
		cf_warn("warning: %s: cannot set mode: %s", path, strerror(errno));
	set_xattrs_fd(c, fd, n, path);
	if (!have || st.st_mtim.tv_sec != n->mtime_ns / 1000000000 ||
	    st.st_mtim.tv_nsec != n->mtime_ns % 1000000000) {
		struct timespec ts[2] = {
			{ n->atime_ns / 1000000000, n->atime_ns % 1000000000 },
			{ n->mtime_ns / 1000000000, n->mtime_ns % 1000000000 },
		};
		if (futimens(fd, ts) < 0)
			cf_warn("warning: %s: cannot set times: %s", path, strerror(errno));
	}
}

/* The same for an entry that cannot be opened for reading (symlink, fifo,
 * device): through pfd, an O_PATH descriptor of the very node (st: its
 * fstat), never through its name, which could be swapped for a symlink or a
 * hard link to something outside the target between a check and the change.
 * The owner through fchownat(AT_EMPTY_PATH); mode and times through the
 * descriptor's /proc/self/fd link, which leads to the node itself (a symlink
 * as itself: its link is not followed again).  Without /proc the mode is not
 * set (a warning): chmod by name would follow a swapped symlink. */
void rs_set_meta_path(struct rctx *c, int pfd, const struct stat *st, const struct cf_node *n,
		      const char *path)
{
	char proc[32];
	bool chowned = false;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	if (st->st_uid != n->uid || st->st_gid != n->gid) {
		if (fchownat(pfd, "", n->uid, n->gid, AT_EMPTY_PATH) < 0)
			owner_failed(c, path);
		else
			chowned = true; /* may have cleared setuid bits: set the mode again */
	}
	if (n->type != CF_NODE_SYMLINK && (chowned || (st->st_mode & 07777) != n->mode) &&
	    fchmodat(AT_FDCWD, proc, n->mode, 0) < 0)
		cf_warn("warning: %s: cannot set mode: %s%s", path, strerror(errno),
			errno == ENOENT ? " (/proc is not mounted)" : "");
	if (st->st_mtim.tv_sec != n->mtime_ns / 1000000000 ||
	    st->st_mtim.tv_nsec != n->mtime_ns % 1000000000) {
		struct timespec ts[2] = {
			{ n->atime_ns / 1000000000, n->atime_ns % 1000000000 },
			{ n->mtime_ns / 1000000000, n->mtime_ns % 1000000000 },
		};
		/* AT_EMPTY_PATH: Linux 5.8+; before, the /proc link */
		if (utimensat(pfd, "", ts, AT_EMPTY_PATH) < 0 &&
		    (errno != EINVAL || utimensat(AT_FDCWD, proc, ts, 0) < 0))
			cf_warn("warning: %s: cannot set times: %s", path, strerror(errno));
	}
}

/* Set a directory's metadata once it is opened (beneath its root, through
 * no symlink) and found to be the directory planned (dev, ino). */
void rs_set_dir_meta(struct rctx *c, uint32_t root, const char *rel, const struct cf_node *n,
		     uint64_t dev, uint64_t ino)
{
	int fd = cf_fsat_open_dir(c->roots[root].fd, rel, O_RDONLY);
	char *path = rs_join(c->roots[root].dir, rel);
	const char *p = path ? path : rel;
	struct stat st;
	if (fd < 0) {
		rs_path_failed(c, p, cf_err_errno("%s: open directory", p));
	} else if (fstat(fd, &st) < 0) {
		rs_path_failed(c, p, cf_err_errno("%s: stat directory", p));
	} else if (!cf_fsat_same_inode(&st, dev, ino, S_IFDIR)) {
		rs_path_failed(c, p, cf_err(CF_EIO, "%s: replaced by another directory while being restored "
					 "(its metadata is not set)", p));
	} else {
		rs_set_meta_fd(c, fd, n, p);
	}
	if (fd >= 0)
		close(fd);
	free(path);
}
