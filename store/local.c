/*
 * local.c - the local-directory backend, coffer's embedded default.
 *
 * Objects are files under the repository directory with the same relative
 * names as in a bucket.  Packs fan out into data/00..ff/.  A put writes a
 * temporary file in the same directory, fsyncs it, renames it into place and
 * fsyncs the directory (doc/repo-format.md, "fsync points"): after put returns,
 * the object survives a power cut, and a crash before that leaves only a
 * ".tmp-*" file that no reader looks at.  Putting an existing object succeeds
 * without rewriting it: names are content hashes or random.
 */
#include "store/backend.h"
#include "common/error.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct local {
	struct cf_backend base;
	char *dir;
};

static const char *const subdirs[] = { "keys", "data", "index", "snapshots", "locks" };

static int mkpath(const struct local *l, const char *rel, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/%s", l->dir, rel);
	if (n < 0 || (size_t)n >= outlen)
		return cf_err(CF_EINVAL, "path too long: %s/%s", l->dir, rel);
	return CF_OK;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cf_err_errno("open directory %s", path);
	int r = fsync(fd);
	close(fd);
	if (r < 0 && errno != EINVAL)
		return cf_err_errno("fsync directory %s", path);
	return CF_OK;
}

static int local_create(struct cf_backend *be)
{
	struct local *l = (struct local *)be;
	char p[4096];
	int r;

	if (mkdir(l->dir, 0700) < 0 && errno != EEXIST)
		return cf_err_errno("create repository directory %s", l->dir);
	if ((r = mkpath(l, "config", p, sizeof(p))))
		return r;
	if (access(p, F_OK) == 0)
		return cf_err(CF_EEXIST, "a repository already exists at %s", l->dir);
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if ((r = mkpath(l, subdirs[i], p, sizeof(p))))
			return r;
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return cf_err_errno("create %s", p);
	}
	for (int i = 0; i < 256; i++) {
		char rel[16];
		snprintf(rel, sizeof(rel), "data/%02x", i);
		if ((r = mkpath(l, rel, p, sizeof(p))))
			return r;
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return cf_err_errno("create %s", p);
	}
	return fsync_dir(l->dir);
}

static int write_iov(int fd, const struct iovec *iov, int n)
{
	struct iovec v[64];
	int i = 0;
	size_t skip = 0; /* bytes of iov[i] already written */
	while (i < n) {
		int k = 0;
		for (int j = i; j < n && k < 64; j++, k++) {
			v[k] = iov[j];
			if (j == i) {
				v[k].iov_base = (char *)v[k].iov_base + skip;
				v[k].iov_len -= skip;
			}
		}
		ssize_t w = writev(fd, v, k);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		size_t left = (size_t)w;
		while (i < n && left >= iov[i].iov_len - skip) {
			left -= iov[i].iov_len - skip;
			skip = 0;
			i++;
		}
		skip += left;
	}
	return 0;
}

/* Staged objects of 1 MiB and more (packs) go to the disk with O_DIRECT,
 * copied in order through a 1 MiB aligned buffer of the writing thread, the
 * last piece padded to 4 KiB and the file truncated to its length: the
 * kernel's copy into the page cache cost 2-3 CPU seconds of a 2 GiB initial
 * backup (system time 2.8-3.9 s -> 1.2 s), and a backup no longer fills
 * the page cache of the host with its packs.  fsync still makes them
 * durable (put_commit).  Where O_DIRECT is refused (EINVAL: tmpfs, some
 * file systems) it is not tried again, and the write is an ordinary one;
 * -2: the file could not be emptied for that second try. */
#define BOUNCE (1u << 20)
static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;
static _Atomic int direct_refused;

static void bounce_keys(void) { pthread_key_create(&bounce_key, free); }

static int write_direct(int fd, const struct iovec *iov, int n)
{
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total < BOUNCE || direct_refused)
		return -1;
	pthread_once(&bounce_once, bounce_keys);
	uint8_t *bb = pthread_getspecific(bounce_key);
	if (!bb) {
		if (posix_memalign((void **)&bb, 4096, BOUNCE))
			return -1;
		pthread_setspecific(bounce_key, bb);
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0) {
		direct_refused = 1;
		return -1;
	}
	/* (tmpfs takes the flag and refuses the first write: EINVAL) */
	int i = 0, rc = 0;
	size_t skip = 0;
	off_t at = 0;
	while (i < n && rc == 0) {
		size_t k = 0;
		while (k < BOUNCE && i < n) {
			size_t m = iov[i].iov_len - skip;
			if (m > BOUNCE - k)
				m = BOUNCE - k;
			memcpy(bb + k, (const uint8_t *)iov[i].iov_base + skip, m);
			k += m;
			skip += m;
			if (skip == iov[i].iov_len) {
				i++;
				skip = 0;
			}
		}
		size_t padded = (k + 4095) & ~(size_t)4095; /* only the last piece */
		memset(bb + k, 0, padded - k);
		ssize_t w;
		do
			w = pwrite(fd, bb, padded, at);
		while (w < 0 && errno == EINTR);
		if (w != (ssize_t)padded) {
			if (w < 0 && errno == EINVAL)
				direct_refused = 1;
			rc = -1;
		}
		at += (off_t)padded;
	}
	fcntl(fd, F_SETFL, fl);
	if (rc == 0 && ftruncate(fd, (off_t)total) == 0 && lseek(fd, (off_t)total, SEEK_SET) >= 0)
		return 0;
	/* start again with ordinary writes */
	if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return -2;
	return -1;
}

/* A put in two halves (put_stage / put_commit, see backend.h): the bytes go
 * to a temporary file first; the fsync, the rename and the directory fsync
 * come later, so the caller's buffers are free while the disk catches up. */
struct staged {
	int fd;        /* -1: the object already existed, nothing to do */
	char p[4096], tmp[4200], dir[4096];
};

static void staged_abort(struct cf_backend *be, void *h)
{
	struct staged *st = h;
	(void)be;
	if (!st)
		return;
	if (st->fd >= 0) {
		close(st->fd);
		unlink(st->tmp);
	}
	free(st);
}

static int local_put_stage(struct cf_backend *be, const char *path, const struct iovec *iov, int niov,
			   void **handle)
{
	struct local *l = (struct local *)be;
	struct staged *st = calloc(1, sizeof(*st));
	int r;

	*handle = NULL;
	if (!st)
		return cf_err(CF_ENOMEM, "out of memory");
	st->fd = -1;
	if ((r = mkpath(l, path, st->p, sizeof(st->p))))
		goto fail;
	if (access(st->p, F_OK) == 0) {
		*handle = st; /* content-addressed or random name: already there */
		return CF_OK;
	}
	snprintf(st->dir, sizeof(st->dir), "%s", st->p);
	char *slash = strrchr(st->dir, '/');
	*slash = 0;
	/* unique among processes (pid) and threads (counter) */
	static _Atomic unsigned counter;
	snprintf(st->tmp, sizeof(st->tmp), "%s/.tmp-%d-%u-%s", st->dir, (int)getpid(), counter++, slash + 1);
	st->fd = open(st->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (st->fd < 0 && errno == ENOENT) {
		/* the fan-out directory may be missing (repository made by an
		 * older layout or removed by hand): create it once */
		if (mkdir(st->dir, 0700) < 0 && errno != EEXIST) {
			r = cf_err_errno("create %s", st->dir);
			goto fail;
		}
		st->fd = open(st->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (st->fd < 0) {
		r = cf_err_errno("create %s", st->tmp);
		goto fail;
	}
	int d = write_direct(st->fd, iov, niov);
	if (d == -2 || (d < 0 && write_iov(st->fd, iov, niov) < 0)) {
		r = cf_err_errno("write %s", st->tmp);
		goto fail;
	}
	*handle = st;
	return CF_OK;
fail:
	staged_abort(be, st);
	return r;
}

static int local_put_commit(struct cf_backend *be, void *h)
{
	struct staged *st = h;
	int r = CF_OK;

	if (st->fd < 0)
		goto out;
	if (fsync(st->fd) < 0) {
		r = cf_err_errno("fsync %s", st->tmp);
		goto out;
	}
	int fd = st->fd;
	st->fd = -1;
	if (close(fd) < 0) {
		r = cf_err_errno("close %s", st->tmp);
		unlink(st->tmp);
		goto out;
	}
	if (rename(st->tmp, st->p) < 0) {
		r = cf_err_errno("rename %s", st->p);
		unlink(st->tmp);
		goto out;
	}
	r = fsync_dir(st->dir);
out:
	staged_abort(be, st);
	return r;
}

static int local_put_iov(struct cf_backend *be, const char *path, const struct iovec *iov, int niov,
			 const uint8_t *sha256)
{
	(void)sha256; /* nothing signs a local file's bytes */
	void *h;
	int r = local_put_stage(be, path, iov, niov, &h);
	return r ? r : local_put_commit(be, h);
}

static int local_put(struct cf_backend *be, const char *path, const void *data, size_t len)
{
	struct iovec v = { (void *)data, len };
	return local_put_iov(be, path, &v, 1, NULL);
}

/* Ranges of DIRECT_READ_MIN bytes and more (restore and check read packs
 * that way) are read with O_DIRECT: no page-cache pages are allocated and
 * filled for bytes read once (the packs of a local backup are written with
 * O_DIRECT and are not cached anyway).  A local restore of the 2 GiB
 * benchmark corpus spent a fifth of its samples copying pack pages out of
 * the page cache (_copy_to_iter).  The aligned blocks around the range are
 * read into out's buffer (made 4 KiB-aligned once; the caller reuses it)
 * and the range moved to its start.  0: read; -1: not done (refused, or
 * failed: the caller reads again without O_DIRECT, which reports errors). */
#define DIRECT_READ_MIN (256u << 10)
static _Atomic int direct_read_refused;

static int read_direct(int fd, uint64_t off, size_t len, struct cf_buf *out)
{
	if (len < DIRECT_READ_MIN || direct_read_refused)
		return -1;
	uint64_t start = off & ~(uint64_t)4095;
	size_t want = (size_t)(((off + len + 4095) & ~(uint64_t)4095) - start);
	if (((uintptr_t)out->data & 4095) || out->cap < want + 1) {
		uint8_t *p;
		if (posix_memalign((void **)&p, 4096, want + 1))
			return -1;
		free(out->data);
		out->data = p;
		out->cap = want + 1;
		out->len = 0;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0) {
		direct_read_refused = 1;
		return -1;
	}
	size_t got = 0;
	while (got < want) { /* the file's end may cut the last block short */
		ssize_t n = pread(fd, out->data + got, want - got, (off_t)(start + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINVAL)
			direct_read_refused = 1;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got & 4095)
			break; /* short: the end of the file */
	}
	fcntl(fd, F_SETFL, fl);
	if (got < (size_t)(off - start) + len)
		return -1;
	memmove(out->data, out->data + (off - start), len);
	return 0;
}

/* whole_max 0: len bytes at off; else the whole file, which may have at
 * most whole_max bytes (cf_be_object_max: a huge file is not read into
 * memory). */
static int read_range(const char *p, uint64_t off, size_t len, uint64_t whole_max, struct cf_buf *out)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int r = CF_OK;

	cf_buf_reset(out);
	if (fd < 0) {
		if (errno == ENOENT)
			return cf_err(CF_ENOENT, "%s does not exist", p);
		return cf_err_errno("open %s", p);
	}
	if (fstat(fd, &st) < 0) {
		r = cf_err_errno("stat %s", p);
		goto out;
	}
	if (whole_max && (uint64_t)st.st_size > whole_max) {
		r = cf_err(CF_ECORRUPT, "%s is %lld bytes, over the %llu MiB limit for it; not read", p,
			   (long long)st.st_size, (unsigned long long)(whole_max >> 20));
		goto out;
	}
	if (whole_max) {
		off = 0;
		len = (size_t)st.st_size;
	} else if (off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off) {
		r = cf_err(CF_ECORRUPT, "%s is %lld bytes, too short to read %zu bytes at %llu",
			   p, (long long)st.st_size, len, (unsigned long long)off);
		goto out;
	}
	if (!whole_max && read_direct(fd, off, len, out) == 0) {
		out->len = len;
		out->data[len] = 0;
		goto out;
	}
	if ((r = cf_buf_grow(out, len)))
		goto out;
	ssize_t n = cf_pread_full(fd, out->data, len, (off_t)off);
	if (n < 0) {
		r = cf_err_errno("read %s", p);
		goto out;
	}
	if ((size_t)n != len) {
		r = cf_err(CF_ECORRUPT, "%s: short read (%zd of %zu bytes)", p, n, len);
		goto out;
	}
	out->len = len;
	out->data[len] = 0;
out:
	close(fd);
	return r;
}

static int local_get(struct cf_backend *be, const char *path, struct cf_buf *out)
{
	char p[4096];
	int r = mkpath((struct local *)be, path, p, sizeof(p));
	return r ? r : read_range(p, 0, 0, cf_be_object_max(path), out);
}

static int local_get_range(struct cf_backend *be, const char *path, uint64_t off, size_t len,
			   struct cf_buf *out)
{
	char p[4096];
	int r = mkpath((struct local *)be, path, p, sizeof(p));
	return r ? r : read_range(p, off, len, 0, out);
}

static int local_stat(struct cf_backend *be, const char *path, uint64_t *size)
{
	char p[4096];
	struct stat st;
	int r = mkpath((struct local *)be, path, p, sizeof(p));
	if (r)
		return r;
	if (stat(p, &st) < 0) {
		if (errno == ENOENT)
			return cf_err(CF_ENOENT, "%s does not exist", p);
		return cf_err_errno("stat %s", p);
	}
	if (size)
		*size = (uint64_t)st.st_size;
	return CF_OK;
}

/* list_dir calls fn, or mfn with the file's mtime when fn is NULL */
static int list_dir(const char *dirpath, int recurse, cf_list_fn fn, cf_list_mtime_fn mfn, void *ctx)
{
	DIR *d = opendir(dirpath);
	struct dirent *e;
	int r = CF_OK;

	if (!d) {
		if (errno == ENOENT)
			return CF_OK;
		return cf_err_errno("open directory %s", dirpath);
	}
	while ((errno = 0, e = readdir(d))) {
		char p[4096];
		struct stat st;
		if (e->d_name[0] == '.')
			continue; /* ".", "..", and ".tmp-*" leftovers of an interrupted put */
		snprintf(p, sizeof(p), "%s/%s", dirpath, e->d_name);
		if (stat(p, &st) < 0) {
			if (errno == ENOENT)
				continue; /* removed while listing */
			r = cf_err_errno("stat %s", p);
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			if (recurse && (r = list_dir(p, 0, fn, mfn, ctx)))
				break;
			continue;
		}
		if ((r = fn ? fn(e->d_name, (uint64_t)st.st_size, ctx)
			    : mfn(e->d_name, (uint64_t)st.st_size,
				  (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec, ctx)))
			break;
	}
	if (!e && errno && !r)
		r = cf_err_errno("read directory %s", dirpath);
	closedir(d);
	return r;
}

static int local_list(struct cf_backend *be, const char *dir, cf_list_fn fn, void *ctx)
{
	char p[4096];
	int r = mkpath((struct local *)be, dir, p, sizeof(p));
	return r ? r : list_dir(p, strcmp(dir, "data") == 0, fn, NULL, ctx);
}

static int local_list_mtime(struct cf_backend *be, const char *dir, cf_list_mtime_fn fn, void *ctx)
{
	char p[4096];
	int r = mkpath((struct local *)be, dir, p, sizeof(p));
	return r ? r : list_dir(p, strcmp(dir, "data") == 0, NULL, fn, ctx);
}

static int local_remove(struct cf_backend *be, const char *path)
{
	char p[4096];
	int r = mkpath((struct local *)be, path, p, sizeof(p));
	if (r)
		return r;
	if (unlink(p) < 0 && errno != ENOENT)
		return cf_err_errno("remove %s", p);
	return CF_OK;
}

/* fsync the directory holding rel once per batch (consecutive paths of a
 * batch mostly share it) */
static int sync_parent(struct local *l, const char *rel, char *last, size_t lastlen)
{
	char p[4096];
	int r = mkpath(l, rel, p, sizeof(p));
	if (r)
		return r;
	char *slash = strrchr(p, '/');
	*slash = 0;
	if (!strcmp(p, last))
		return CF_OK;
	snprintf(last, lastlen, "%s", p);
	return fsync_dir(p);
}

/* Local removals are cheap, so a plain loop; it goes on past a failure as
 * the contract asks, so one bad file does not keep the others around.
 * The batch is durable when this returns (the directories are fsynced):
 * prune deletes the old index files in one batch and the packs in the
 * next, and a power cut must not keep an old index naming deleted packs. */
static int local_remove_many(struct cf_backend *be, const char *const *paths, size_t n)
{
	int first = CF_OK;
	size_t failed = 0;
	char msg[1024] = "", last[4096] = "";
	for (size_t i = 0; i < n; i++) {
		int r = local_remove(be, paths[i]);
		if (r && !failed++) {
			first = r;
			snprintf(msg, sizeof(msg), "%s", cf_errmsg(r));
		}
	}
	if (failed)
		return cf_err(first, "%zu of %zu objects not removed; the first: %s", failed, n, msg);
	/* removed, but not durable until their directories are synced: the
	 * first failing fsync is the error (its message names the directory) */
	int sync_rc = CF_OK;
	for (size_t i = 0; i < n; i++) {
		int r = sync_parent((struct local *)be, paths[i], last, sizeof(last));
		if (r && !sync_rc)
			sync_rc = r;
	}
	return sync_rc;
}

static void local_free(struct cf_backend *be)
{
	struct local *l = (struct local *)be;
	free(l->dir);
	free(l->base.location);
	free(l);
}

static const struct cf_backend_ops local_ops = {
	.name = "local",
	.create = local_create,
	.put = local_put,
	.put_iov = local_put_iov,
	.put_stage = local_put_stage,
	.put_commit = local_put_commit,
	.put_abort = staged_abort,
	.get = local_get,
	.get_range = local_get_range,
	.stat = local_stat,
	.list = local_list,
	.list_mtime = local_list_mtime,
	.remove = local_remove,
	.remove_many = local_remove_many,
	.free = local_free,
};

int cf_backend_local_new(const char *dir, struct cf_backend **out)
{
	struct local *l = calloc(1, sizeof(*l));
	*out = NULL;
	if (!l)
		return cf_err(CF_ENOMEM, "out of memory");
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	l->dir = strndup(dir, n);
	l->base.location = strdup(dir);
	if (!l->dir || !l->base.location) {
		local_free(&l->base);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	l->base.ops = &local_ops;
	l->base.caps = CF_BE_STAGED;
	*out = &l->base;
	return CF_OK;
}
