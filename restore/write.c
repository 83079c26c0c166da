/*
 * write.c - phase 3, the writer: blobs into temporary files, files into place.
 *
 * A file to write (F_WRITE) is made in its directory under a temporary name
 * (".coffer-tmp-<pid>-<n>", O_CREAT|O_EXCL|O_NOFOLLOW) when its first blob
 * arrives (rs_write_use), written with pwrite at each blob's offset (blocks
 * of zeros skipped: holes stay holes, rs_write_sparse) and, when its last
 * blob is in (rs_finish_file), given its metadata and renamed over its real
 * name once the disk has it (the "behind" queue below).  A crash never
 * leaves a half-written file under the real name; a re-run finds the
 * renamed files identical, keeps them, and finishes the rest.
 *
 * Invariants:
 *   - A file's write state is guarded by its stripe lock (restore_int.h);
 *     the pwrite itself runs unlocked while f->writers > 0 keeps fd open.
 *   - The only inode restore touches under a file's name is the one it made
 *     (f->dev, f->ino): a descriptor closed for the FD_CAP limit is reopened
 *     through a checked O_PATH descriptor, never by name alone, and a
 *     temporary file swapped meanwhile fails the file instead of being
 *     renamed into place.
 *   - A failed file's temporary file is removed; what it would have
 *     replaced is kept.
 * Hard links (F_LINK) are made after every file is placed (rs_link_one).
 */
#include "restore/restore_int.h"
#include "common/fsat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BEHIND_BYTES (64u << 20) /* written files' bytes waiting to leave the page cache */
/* a file this big leaves the page cache while it is written: a window
 * BEHIND_LAG bytes behind each write (see write_behind) */
#define BEHIND_BIG (16u << 20)
#define BEHIND_LAG (32u << 20)

/* The parent directory of a file (O_PATH: for openat, renameat, linkat). */
int rs_open_parent(struct rctx *c, const struct rfile *f)
{
	const char *slash = strrchr(f->rel, '/');
	if (!slash)
		return cf_fsat_open_dir(c->roots[f->root].fd, "", O_PATH);
	char *dir = strndup(f->rel, (size_t)(slash - f->rel));
	if (!dir) {
		errno = ENOMEM;
		return -1;
	}
	int fd = cf_fsat_open_dir(c->roots[f->root].fd, dir, O_PATH);
	int e = errno;
	free(dir);
	errno = e;
	return fd;
}

static pthread_mutex_t *stripe(struct rctx *c, size_t file)
{
	return &c->stripes[file % NSTRIPES];
}

static void tmp_name(const struct rctx *c, const struct rfile *f, char *out, size_t n)
{
	snprintf(out, n, TMP_PREFIX "%d-%u", c->pid, f->tmpno);
}

void rs_close_tmp(struct rctx *c, struct rfile *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		atomic_fetch_sub(&c->open_files, 1);
	}
	if (f->dirfd >= 0)
		close(f->dirfd);
	f->fd = f->dirfd = -1;
}

/* The temporary file restore made for f, again (more than FD_CAP files were
 * open, so its descriptor was closed): never by its name alone, which
 * anyone who can write to the directory could have swapped for a hard link
 * to another file.  The name is looked at through an O_PATH descriptor,
 * which must be the inode made (f->dev, f->ino), and that inode is opened
 * through the descriptor's /proc/self/fd link.  Without /proc, by name
 * (O_NOFOLLOW, O_NONBLOCK) and checked before any write. */
static int reopen_tmp(struct rfile *f, const char *tmp)
{
	struct stat st;
	int pfd = openat(f->dirfd, tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC), fd = -1;
	if (pfd < 0)
		return -1;
	if (fstat(pfd, &st) == 0 && cf_fsat_same_inode(&st, f->dev, f->ino, S_IFREG)) {
		fd = cf_fsat_reopen(pfd, O_WRONLY);
		if (fd < 0 && errno == ENOENT)
			fd = openat(f->dirfd, tmp, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0 && (fstat(fd, &st) < 0 || !cf_fsat_same_inode(&st, f->dev, f->ino, S_IFREG))) {
			close(fd);
			fd = -1;
			errno = ESTALE;
		}
	} else {
		errno = ESTALE;
	}
	int e = errno;
	close(pfd);
	errno = e;
	return fd;
}

static int open_tmp(struct rctx *c, struct rfile *f)
{
	char tmp[64];
	struct stat st;
	if (f->dirfd < 0 && (f->dirfd = rs_open_parent(c, f)) < 0)
		return cf_err_errno("%s: open its directory", f->path);
	if (!f->opened)
		f->tmpno = atomic_fetch_add(&c->tmpctr, 1);
	tmp_name(c, f, tmp, sizeof(tmp));
	if (f->opened) {
		if ((f->fd = reopen_tmp(f, tmp)) < 0)
			return errno == ESTALE ?
				cf_err(CF_EIO, "%s: its temporary file was replaced while being written", f->path) :
				cf_err_errno("%s: open its temporary file", f->path);
		atomic_fetch_add(&c->open_files, 1);
		return CF_OK;
	}
	/* a file everyone may read in the end is made with its mode, which
	 * saves the fchmod (rs_set_meta_fd); any other is made 0600 until then:
	 * its owner is still this process', and its group that of the
	 * directory, not yet its own */
	mode_t mode = f->node.mode & 07777;
	if ((mode & 07000) || (mode & 0604) != 0604)
		mode = 0600;
	f->fd = openat(f->dirfd, tmp, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_CREAT | O_EXCL,
		       mode); /* less the umask: then fchmod */
	if (f->fd < 0)
		return cf_err_errno("%s: create", f->path);
	if (fstat(f->fd, &st) < 0) {
		int rc = cf_err_errno("%s: create", f->path);
		close(f->fd);
		f->fd = -1;
		unlinkat(f->dirfd, tmp, 0);
		return rc;
	}
	f->dev = (uint64_t)st.st_dev; /* from now on the only inode restore touches here */
	f->ino = (uint64_t)st.st_ino;
	f->opened = true;
	atomic_fetch_add(&c->open_files, 1);
	return CF_OK;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	if (n == 0 || p[0])
		return false;
	return memcmp(p, p + 1, n - 1) == 0;
}

/* Write p[0..n) at off, skipping 4 KiB blocks of zeros so that holes come
 * back as holes (the file is extended to its full size by ftruncate).  *end
 * grows to the end of what was written. */
int rs_write_sparse(int fd, const uint8_t *p, size_t n, uint64_t off, uint64_t *end)
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
			return cf_err_errno("write");
		if (off + i > *end)
			*end = off + i;
	}
	return CF_OK;
}

static void file_failed(struct rctx *c, struct rfile *f, int rc)
{
	if (f->failed)
		return;
	f->failed = true;
	rs_path_failed(c, f->path, rc);
}

/* The temporary file of f is complete and closed (rc: or not): rename it
 * into place and count it, or remove it. */
static void place_file(struct rctx *c, struct rfile *f, int rc)
{
	char tmp[64];
	struct stat st;
	tmp_name(c, f, tmp, sizeof(tmp));
	/* (a rename moves a name, never changes the inode it names: this only
	 * keeps a swapped-in stranger from being counted as restored) */
	if (!rc && (fstatat(f->dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !cf_fsat_same_inode(&st, f->dev, f->ino, S_IFREG)))
		rc = cf_err(CF_EIO, "%s: its temporary file was replaced while being written", f->path);
	if (!rc && renameat(f->dirfd, tmp, f->dirfd, f->node.name) < 0)
		rc = cf_err_errno("%s: rename into place", f->path);
	if (!rc) {
		rs_close_tmp(c, f);
		pthread_mutex_lock(&c->mu);
		if (f->existed)
			c->st->files_replaced++;
		else
			c->st->files_created++;
		c->st->bytes_written += f->size;
		pthread_mutex_unlock(&c->mu);
		atomic_fetch_add(&c->pg_done, 1);
		return;
	}
	file_failed(c, f, rc);
	if (f->dirfd < 0)
		f->dirfd = rs_open_parent(c, f);
	if (f->dirfd >= 0)
		unlinkat(f->dirfd, tmp, 0);
	rs_close_tmp(c, f);
}

/* ---------- written files leave the page cache ----------
 *
 * A restore writes every byte once and reads none of it back, yet each
 * one goes through the page cache, which evicts what the host had cached
 * and, where fresh memory is dear, costs most of the restore's time
 * (doc/benchmarks.md).  So the writeback of a finished file starts at once
 * (sync_file_range), and once BEHIND_BYTES or BEHIND_FILES of later files
 * are finished too, its writeback is waited for, its pages dropped
 * (POSIX_FADV_DONTNEED) to be reused for the files being written, and only
 * then is it renamed into place: a file that the disk refused (EIO, or
 * ENOSPC of a delayed allocation, which a plain write and close never see)
 * is named as not restored and what it would have replaced is kept. */
static void behind_drop(struct rctx *c, const struct behind *b)
{
	struct rfile *f = &c->files[b->file];
	int rc = CF_OK;
	if (sync_file_range(b->fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
						 SYNC_FILE_RANGE_WAIT_AFTER) < 0 &&
	    errno != EINVAL && errno != ENOSYS && errno != ESPIPE)
		rc = cf_err_errno("%s: write", f->path);
	else
		posix_fadvise(b->fd, 0, 0, POSIX_FADV_DONTNEED);
	if (close(b->fd) < 0 && !rc)
		rc = cf_err_errno("%s: write", f->path);
	atomic_fetch_sub(&c->open_files, 1);
	place_file(c, f, rc);
}

/* The oldest waiting file, out of the queue (bh_mu held, or no writers). */
static struct behind behind_pop(struct rctx *c)
{
	struct behind b = c->bh[c->bh_head];
	c->bh_bytes -= b.size;
	c->bh_head = (c->bh_head + 1) % BEHIND_FILES;
	c->bh_n--;
	return b;
}

/* Take a finished file's descriptor (f->fd; f->dirfd stays open for the
 * rename); drop the oldest ones beyond the limits. */
static void behind_add(struct rctx *c, struct rfile *f)
{
	struct behind out[BEHIND_FILES];
	size_t nout = 0;
	sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	pthread_mutex_lock(&c->bh_mu);
	c->bh[(c->bh_head + c->bh_n) % BEHIND_FILES] =
		(struct behind){ f->fd, (size_t)(f - c->files), f->size };
	c->bh_n++;
	c->bh_bytes += f->size;
	f->fd = -1;
	while (c->bh_n == BEHIND_FILES || (c->bh_n > 1 && c->bh_bytes > BEHIND_BYTES))
		out[nout++] = behind_pop(c);
	pthread_mutex_unlock(&c->bh_mu);
	for (size_t i = 0; i < nout; i++)
		behind_drop(c, &out[i]);
}

/* Every file still waiting (after the writing threads have stopped). */
void rs_behind_drain(struct rctx *c)
{
	while (c->bh_n) {
		struct behind b = behind_pop(c);
		behind_drop(c, &b);
	}
}

/* The last blob is in (or the file failed): set its metadata and queue it
 * to be renamed into place once written back ("behind"; an empty file at
 * once), or remove the temporary file.  Called with the file's stripe lock
 * held. */
void rs_finish_file(struct rctx *c, struct rfile *f)
{
	int rc = CF_OK;
	f->done = true;
	if (!f->failed && !f->opened && (rc = open_tmp(c, f))) /* empty file */
		goto fail;
	if (f->failed)
		goto fail;
	if (f->fd < 0 && (rc = open_tmp(c, f)))
		goto fail;
	/* a trailing hole (only then: ftruncate per file costs, doc/benchmarks.md) */
	if (f->end != f->size && ftruncate(f->fd, (off_t)f->size) < 0) {
		rc = cf_err_errno("%s: truncate", f->path);
		goto fail;
	}
	rs_set_meta_fd(c, f->fd, &f->node, f->path);
	if (f->size) { /* an empty file has nothing to write back */
		behind_add(c, f); /* placed later */
		return;
	}
	int fd = f->fd;
	f->fd = -1;
	atomic_fetch_sub(&c->open_files, 1);
	if (close(fd) < 0)
		rc = cf_err_errno("%s: write", f->path);
	place_file(c, f, rc);
	return;
fail:
	if (rc)
		file_failed(c, f, rc);
	if (f->opened) {
		char tmp[64];
		if (f->dirfd < 0)
			f->dirfd = rs_open_parent(c, f);
		tmp_name(c, f, tmp, sizeof(tmp));
		if (f->dirfd >= 0)
			unlinkat(f->dirfd, tmp, 0);
	}
	rs_close_tmp(c, f);
}

/* A big file's bytes leave the page cache while it is written, not only
 * when it is finished (behind_add): the writeback of what was just written
 * starts at once, and the same span BEHIND_LAG bytes before it (written a
 * while ago: the packs of a big file are restored roughly in its order) is
 * waited for and dropped.  The spans behind the writes tile the file up to
 * its last BEHIND_LAG bytes, which rs_finish_file drops with the rest (else
 * big files sit dirty in the page cache until complete, doc/benchmarks.md).
 * A dirty page is never dropped
 * (POSIX_FADV_DONTNEED skips it), so a span that another thread has not
 * written yet loses nothing. */
static int write_behind(int fd, uint64_t off, size_t len)
{
	if (sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) < 0 &&
	    errno != EINVAL && errno != ENOSYS && errno != ESPIPE)
		return cf_err_errno("write");
	if (off < BEHIND_LAG)
		return CF_OK;
	off -= BEHIND_LAG;
	if (sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WAIT_BEFORE |
			    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) < 0) {
		if (errno != EINVAL && errno != ENOSYS && errno != ESPIPE)
			return cf_err_errno("write");
	} else {
		posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	}
	return CF_OK;
}

/* Write one opened blob to one place that holds it. */
void rs_write_use(struct rctx *c, const struct ruse *u, const uint8_t *data, size_t len,
		  const struct cf_status *err)
{
	struct rfile *f = &c->files[u->file];
	pthread_mutex_t *m = stripe(c, u->file);
	int rc = CF_OK;
	pthread_mutex_lock(m);
	if (err->code) {
		file_failed(c, f, cf_err(err->code, "%s: %s", f->path, err->msg));
	} else if (!f->failed) {
		if (f->fd < 0)
			rc = open_tmp(c, f);
		if (!rc) {
			/* the write itself runs unlocked, so that threads holding
			 * blobs of the same big file (or of files on the same
			 * stripe) write at once; the descriptor is not closed while
			 * a writer uses it, and the file cannot be finished then (its
			 * remaining count still holds this use) */
			int fd = f->fd;
			uint64_t end = 0;
			f->writers++;
			pthread_mutex_unlock(m);
			rc = rs_write_sparse(fd, data, len, u->foff, &end);
			if (!rc && f->size >= BEHIND_BIG)
				rc = write_behind(fd, u->foff, len);
			pthread_mutex_lock(m);
			f->writers--;
			if (end > f->end)
				f->end = end;
			if (rc)
				rc = cf_err_prefix(rc, "%s", f->path);
		}
		if (rc)
			file_failed(c, f, rc);
		else
			atomic_fetch_add(&c->pg_bytes, len);
	}
	if (--f->remaining == 0)
		rs_finish_file(c, f);
	else if (f->fd >= 0 && !f->writers && atomic_load(&c->open_files) > FD_CAP)
		rs_close_tmp(c, f);
	pthread_mutex_unlock(m);
}

/* ---------- hard links ---------- */

/* Link f to its leader: to the inode restore placed or kept under the
 * leader's name (l->dev, l->ino), through an O_PATH descriptor of it, not
 * to whatever the name leads to by the time of the link. */
void rs_link_one(struct rctx *c, struct rfile *f)
{
	struct rfile *l = &c->files[f->leader];
	struct stat a, b;
	char tmp[64], proc[32];
	int rc = CF_OK, lfd = -1, ffd = -1, pfd = -1, r;

	if (l->state == F_FAILED || l->failed) {
		rc = cf_err(CF_EIO, "%s: not linked: its hard-link partner %s could not be restored",
			    f->path, l->path);
		goto fail;
	}
	if ((lfd = rs_open_parent(c, l)) < 0 || (ffd = rs_open_parent(c, f)) < 0) {
		rc = cf_err_errno("%s: open its directory", f->path);
		goto fail;
	}
	if ((pfd = openat(lfd, l->node.name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(pfd, &a) < 0) {
		rc = cf_err_errno("%s: cannot link to %s", f->path, l->path);
		goto fail;
	}
	if (!cf_fsat_same_inode(&a, l->dev, l->ino, S_IFREG)) {
		rc = cf_err(CF_EIO, "%s: not linked: %s was replaced while being restored", f->path, l->path);
		goto fail;
	}
	if (fstatat(ffd, f->node.name, &b, AT_SYMLINK_NOFOLLOW) == 0 && cf_fsat_same_inode(&b, l->dev, l->ino, S_IFREG)) {
		rs_set_planned(f, &a);
		rs_add_stat(c, &c->st->files_kept, 1);
		goto out;
	}
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%d-l%u", c->pid, atomic_fetch_add(&c->tmpctr, 1));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	r = linkat(AT_FDCWD, proc, ffd, tmp, AT_SYMLINK_FOLLOW);
	if (r < 0 && errno == ENOENT) /* no /proc: root may link a descriptor */
		r = linkat(pfd, "", ffd, tmp, AT_EMPTY_PATH);
	if (r < 0) {
		rc = cf_err_errno("%s: cannot link to %s", f->path, l->path);
		goto fail;
	}
	if (renameat(ffd, tmp, ffd, f->node.name) < 0) {
		rc = cf_err_errno("%s: rename into place", f->path);
		unlinkat(ffd, tmp, 0);
		goto fail;
	}
	rs_set_planned(f, &a);
	rs_add_stat(c, &c->st->files_linked, 1);
	goto out;
fail:
	f->state = F_FAILED;
	rs_path_failed(c, f->path, rc);
out:
	if (pfd >= 0)
		close(pfd);
	if (lfd >= 0)
		close(lfd);
	if (ffd >= 0)
		close(ffd);
}
