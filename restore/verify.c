/*
 * verify.c - comparing a file on disk with the snapshot.
 *
 * Used twice: before writing (phase 2: a file already in the target whose
 * size matches is read and each piece hashed with the repository's blob-id
 * key; if every id matches, it is kept) and, with `verify`, after (every
 * restored or kept file is read back and must match).
 *
 * Invariant: a file is only opened if what its name leads to now (beneath
 * the root, through no symlink) is the very inode planned (open_planned), so
 * a fifo, a device or a hard link to a file outside swapped in is never
 * read, let alone changed.  Both run on the rs_parallel() workers; each
 * touches only its own file (and the stats under c->mu).
 */
#include "restore/restore_int.h"
#include "common/fsat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* *eq: the open file fd holds exactly the node's content (same size, and
 * every piece hashes to the snapshot's blob id).  Errors only for a failed
 * read; a blob the index does not know makes the file "different". */
static int file_matches(struct rctx *c, int fd, const struct cf_node *n, struct cf_buf *buf,
			bool *eq)
{
	struct stat st;
	uint64_t off = 0;
	*eq = false;
	if (fstat(fd, &st) < 0)
		return cf_err_errno("stat");
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != n->size)
		return CF_OK;
	for (size_t i = 0; i < n->ncontent; i++) {
		struct cf_blob_loc loc;
		uint8_t id[CF_ID_LEN];
		if (cf_repo_lookup(c->repo, CF_BLOB_DATA, n->content[i], &loc)) {
			cf_err_clear();
			return CF_OK;
		}
		cf_buf_reset(buf);
		if (cf_buf_grow(buf, loc.rawlen))
			return CF_ENOMEM;
		ssize_t got = cf_pread_full(fd, buf->data, loc.rawlen, (off_t)off);
		if (got < 0)
			return cf_err_errno("read");
		if ((size_t)got != loc.rawlen)
			return CF_OK;
		int hrc = cf_repo_blob_id(c->repo, buf->data, loc.rawlen, id);
		if (hrc)
			return hrc;
		if (memcmp(id, n->content[i], CF_ID_LEN))
			return CF_OK;
		off += loc.rawlen;
		if (atomic_load(&c->stop))
			return cf_err(CF_EINTR, "interrupted");
	}
	*eq = off == n->size;
	return CF_OK;
}

/* Open f's file for reading if what its name leads to now (beneath the
 * root, through no symlink) is the regular file planned (f->dev, f->ino):
 * looked at through an O_PATH descriptor first, so that nothing else (a
 * fifo, a device, a hard link to a file outside the target swapped in) is
 * ever opened, let alone read or changed.  -1 with errno; ESTALE: something
 * else is there now. */
static int open_planned(struct rctx *c, const struct rfile *f)
{
	struct stat st;
	int rootfd = c->roots[f->root].fd;
	int pfd = cf_fsat_open(rootfd, f->rel, O_PATH), fd = -1, e;
	if (pfd < 0)
		return -1;
	if (fstat(pfd, &st) < 0)
		goto fail;
	if (!cf_fsat_same_inode(&st, f->dev, f->ino, S_IFREG)) {
		errno = ESTALE;
		goto fail;
	}
	fd = cf_fsat_reopen(pfd, O_RDONLY);
	if (fd < 0 && errno == ENOENT) /* no /proc: by name again, checked below */
		fd = cf_fsat_open(rootfd, f->rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!cf_fsat_same_inode(&st, f->dev, f->ino, S_IFREG)) {
		errno = ESTALE;
		goto fail;
	}
	close(pfd);
	return fd;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	close(pfd);
	errno = e;
	return -1;
}

/* Phase 2: is F_CHECK file i already the snapshot's?  Then F_KEEP (its
 * metadata reset unless dry), else F_WRITE. */
void rs_check_one(struct rctx *c, size_t i, struct cf_buf bufs[2])
{
	struct cf_buf *buf = &bufs[0];
	struct rfile *f = &c->files[i];
	bool eq = false;
	if (f->state != F_CHECK)
		return;
	int fd = open_planned(c, f);
	if (fd >= 0) {
		struct stat st;
		if (file_matches(c, fd, &f->node, buf, &eq))
			eq = false; /* unreadable: rewrite it */
		/* setuid and setgid bits are only given to a file restore writes
		 * itself (through the descriptor it wrote it with, after its
		 * owner): a kept file that lacks them, or whose owner is not yet
		 * the snapshot's, is written anew */
		if (eq && (f->node.mode & 06000) &&
		    (fstat(fd, &st) < 0 || (st.st_mode & 07777) != f->node.mode ||
		     st.st_uid != f->node.uid || st.st_gid != f->node.gid))
			eq = false;
		if (eq && !c->o->dry_run)
			rs_set_meta_fd(c, fd, &f->node, f->path);
		close(fd);
	}
	cf_err_clear();
	f->state = eq ? F_KEEP : F_WRITE;
	atomic_fetch_add(&c->pg_done, 1);
	atomic_fetch_add(&c->pg_bytes, f->node.size);
}

/* --verify: read file i back (unless it failed) and compare. */
void rs_verify_one(struct rctx *c, size_t i, struct cf_buf bufs[2])
{
	struct cf_buf *buf = &bufs[0];
	struct rfile *f = &c->files[i];
	bool eq = false;
	int rc;
	if (f->state == F_FAILED || f->failed)
		return;
	int fd = open_planned(c, f);
	if (fd < 0) {
		rc = errno == ESTALE ?
			cf_err(CF_ECORRUPT, "%s: verify: not the file restored there (replaced since)", f->path) :
			cf_err_errno("%s: verify: open", f->path);
	} else {
		rc = file_matches(c, fd, &f->node, buf, &eq);
		close(fd);
		if (rc)
			rc = cf_err_prefix(rc, "%s: verify", f->path);
		else if (!eq)
			rc = cf_err(CF_ECORRUPT, "%s: verify: the file differs from the snapshot", f->path);
	}
	if (rc)
		rs_path_failed(c, f->path, rc);
	else
		rs_add_stat(c, &c->st->verified, 1);
	atomic_fetch_add(&c->pg_done, 1);
	atomic_fetch_add(&c->pg_bytes, f->node.size);
}
