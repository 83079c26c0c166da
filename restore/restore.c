/* restore.c - see restore.h. */
#include "restore/restore.h"
#include "repo/tree.h"
#include "common/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define TMP_PREFIX ".coffer-tmp-"
/* A ranged read covers needed blobs that lie within RANGE_GAP of each other
 * (reading a small unneeded gap is cheaper than another request), up to
 * RANGE_MAX bytes: what one worker holds in memory at a time.  A local read
 * costs a syscall, so local ranges stay small (RANGE_MAX_LOCAL); a remote
 * one costs a round trip. */
#define RANGE_MAX (4u << 20)
#define RANGE_MAX_LOCAL (2u << 20)
/* a streamed range is not held in memory: a whole pack (or more) at once */
#define RANGE_MAX_STREAM (64u << 20)
#define RANGE_GAP (256u << 10)
#define FETCH_LOCAL 2  /* fetching threads: local reads in flight */
#define FETCH_REMOTE 6 /* remote requests in flight (the S3 connections' default) */
#define NSTRIPES 256   /* locks over files being written */
#ifndef FD_CAP /* (a test build sets it lower: every blob reopens its file) */
#define FD_CAP 256     /* files kept open between writes; beyond, reopened per blob */
#endif
#define BEHIND_FILES 128         /* written files waiting to leave the page cache */
#define BEHIND_BYTES (64u << 20) /* and their bytes */
/* a file this big leaves the page cache while it is written: a window
 * BEHIND_LAG bytes behind each write (see write_behind) */
#define BEHIND_BIG (16u << 20)
#define BEHIND_LAG (32u << 20)

enum fstate { F_CHECK, F_WRITE, F_KEEP, F_LINK, F_FAILED };

struct rfile {
	struct cf_node node;    /* owned copy */
	char *rel;              /* relative to its root: "a/b/name" */
	char *path;             /* for messages: root dir + "/" + rel */
	uint32_t root;
	uint8_t state;          /* enum fstate */
	bool existed;           /* something was in its place before */
	/* write phase, guarded by the file's stripe lock */
	bool failed, opened, done;
	int fd, dirfd;
	int writers;            /* threads writing through fd right now (unlocked) */
	unsigned tmpno;
	size_t remaining;       /* blob uses not yet written */
	uint64_t size;          /* sum of the blobs' lengths */
	uint64_t end;           /* end of the last byte written (all-zero blocks are not) */
	size_t leader;          /* F_LINK: the file it is a hard link of */
	/* the inode restore may touch under this name: the one found there at
	 * plan time, then the temporary file it made (F_WRITE) or the leader's
	 * (F_LINK); anything else found under the name is left alone */
	uint64_t dev, ino;
};

struct rdir {
	char *rel;
	uint32_t root;
	struct cf_node node;
	bool has_ino;           /* dev, ino: the directory planned (opened at plan time) */
	uint64_t dev, ino;
};

struct rroot {
	int fd;                 /* -1 in a dry run when the directory does not exist */
	char *dir;              /* as given, for messages */
	const char *snap;       /* snapshot path of the root ("" = "/") */
	bool has_tree;
	uint8_t tree[CF_ID_LEN];
	const char **incs; size_t nincs; /* includes that apply here (none = all) */
	bool is_target;         /* the --target root: mapped sub-trees are skipped */
	bool has_node;          /* map roots: the directory's own metadata */
	struct cf_node node;
};

struct ruse {
	uint8_t pack[CF_ID_LEN];
	uint32_t offset, length, rawlen;
	uint8_t flags;
	const uint8_t *id;
	size_t file;
	uint64_t foff;
};

struct rgroup {
	size_t start, end, first;
};

/* uses [i, j) of one pack, read at once: bytes [rs, re) */
struct rrange {
	size_t i, j;
	uint64_t rs, re;
	int buf;        /* the pool buffer holding it, -1: none */
	int rc;         /* the fetch's error */
	char *msg;      /* and its message (messages are per thread), or NULL */
	bool ready;     /* fetched (or failed) */
};

struct hlent {
	uint64_t dev, ino;
	uint32_t root;
	size_t file;
};

struct rctx {
	struct cf_repo *repo;
	const struct cf_restore_opts *o;
	struct cf_restore_stats *st;
	bool is_root;
	int pid;                /* in temporary names (getpid is a system call) */
	int nthreads;           /* writing threads (check, verify: workers) */
	size_t range_max;       /* RANGE_MAX, RANGE_MAX_LOCAL or RANGE_MAX_STREAM */
	bool streaming;         /* the store streams ranges: fetch_and_write streams */
	/* the snapshot's source paths: `delete` removes extras only beneath
	 * them, never in the directories above (/, /backup, a sibling volume) */
	char *const *srcpaths; size_t nsrc;

	struct rroot *roots; size_t nroots;
	struct rfile *files; size_t nfiles, filecap;
	struct rdir *dirs; size_t ndirs, dircap;
	struct hlent *hl; size_t nhl, hlcap;
	struct ruse *uses; size_t nuses, usecap;
	struct rgroup *groups; size_t ngroups, groupcap;
	struct rrange *ranges; size_t nranges, rangecap;
	/* fetch and write: the buffer pool, guarded by rg_mu */
	pthread_mutex_t rg_mu;
	pthread_cond_t rg_cond;   /* a range is ready, a buffer is free, stop */
	struct cf_buf *bufs;
	int *freebufs, nfree;
	size_t fnext;             /* next range to fetch */

	pthread_mutex_t mu;               /* stats, failed list, listing */
	pthread_mutex_t stripes[NSTRIPES];
	atomic_size_t next;               /* parallel phases: next item */
	atomic_int open_files;
	atomic_uint tmpctr;
	/* written files whose pages leave the page cache later (see "behind") */
	pthread_mutex_t bh_mu;
	struct behind { int fd; size_t file; uint64_t size; } bh[BEHIND_FILES];
	size_t bh_head, bh_n;
	uint64_t bh_bytes;
	atomic_bool stop;
	/* progress */
	atomic_uint_least64_t pg_done, pg_total, pg_bytes, pg_bytes_total;
	const char *volatile phase;
	bool pg_stop;
	pthread_cond_t pg_cond;
};

/* ---------- small helpers ---------- */

static void *grow(void *arr, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return arr;
	size_t nc = *cap ? *cap * 2 : 64;
	void *p = realloc(arr, nc * size);
	if (p)
		*cap = nc;
	return p;
}
#define GROW(c, arr, n, cap) \
	({ void *_p = grow((c)->arr, (c)->n, &(c)->cap, sizeof(*(c)->arr)); \
	   (c)->arr = _p ? _p : (c)->arr; \
	   _p ? CF_OK : cf_err(CF_ENOMEM, "out of memory"); })

static void add_stat(struct rctx *c, uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&c->mu);
	*field += v;
	pthread_mutex_unlock(&c->mu);
}

/* A path could not be restored: say why (the thread's message, which names
 * it) and remember it for the summary. */
static void path_failed(struct rctx *c, const char *path, int rc)
{
	cf_warn("error: %s", cf_errmsg(rc));
	pthread_mutex_lock(&c->mu);
	c->st->errors++;
	char **f = realloc(c->st->failed, (c->st->nfailed + 1) * sizeof(*f));
	if (f) {
		c->st->failed = f;
		if ((f[c->st->nfailed] = strdup(path)))
			c->st->nfailed++;
	}
	pthread_mutex_unlock(&c->mu);
}

static void list_action(struct rctx *c, const char *verb, const char *path, bool dir, uint64_t bytes)
{
	if (!c->o->listing)
		return;
	pthread_mutex_lock(&c->mu);
	if (dir)
		fprintf(c->o->listing, "%-8s %s/\n", verb, path);
	else
		fprintf(c->o->listing, "%-8s %s (%llu bytes)\n", verb, path, (unsigned long long)bytes);
	pthread_mutex_unlock(&c->mu);
}

static char *join(const char *a, const char *b)
{
	char *s;
	if (asprintf(&s, "%s%s%s", a, *a && *b ? "/" : "", b) < 0)
		return NULL;
	return s;
}

/* Is p the path prefix or below it?  Both absolute; "/" holds everything. */
static bool under(const char *p, const char *prefix)
{
	size_t l = strlen(prefix);
	if (l == 1 && prefix[0] == '/')
		return true;
	return strncmp(p, prefix, l) == 0 && (p[l] == 0 || p[l] == '/');
}

/* Is snapshot path p strictly beneath one of the snapshot's source paths? */
static bool beneath_source(const struct rctx *c, const char *p)
{
	for (size_t i = 0; i < c->nsrc; i++)
		if (under(p, c->srcpaths[i]) && strcmp(p, c->srcpaths[i]) != 0)
			return true;
	return false;
}

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
		if (under(snap, rt->incs[i]))
			return true;
	for (size_t i = 0; i < rt->nincs; i++)
		if (under(rt->incs[i], snap)) {
			*descend_only = true;
			return true;
		}
	return false;
}

static bool is_mapped(const struct rctx *c, const char *snap)
{
	for (size_t i = 0; i < c->o->nmaps; i++)
		if (!strcmp(c->roots[i].snap, snap))
			return true;
	return false;
}

int cf_restore_node_copy(const struct cf_node *src, struct cf_node *dst)
{
	*dst = *src;
	dst->name = strdup(src->name);
	dst->user = src->user ? strdup(src->user) : NULL;
	dst->group = src->group ? strdup(src->group) : NULL;
	dst->linktarget = src->linktarget ? strdup(src->linktarget) : NULL;
	dst->xattrs = NULL;
	dst->nxattrs = 0;
	dst->content = NULL;
	dst->ncontent = 0;
	bool bad = !dst->name || (src->user && !dst->user) || (src->group && !dst->group) ||
		   (src->linktarget && !dst->linktarget);
	if (src->ncontent) {
		if ((dst->content = malloc(src->ncontent * CF_ID_LEN))) {
			memcpy(dst->content, src->content, src->ncontent * CF_ID_LEN);
			dst->ncontent = src->ncontent;
		} else {
			bad = true;
		}
	}
	if (src->nxattrs) {
		if (!(dst->xattrs = calloc(src->nxattrs, sizeof(*dst->xattrs))))
			bad = true;
		for (size_t i = 0; dst->xattrs && i < src->nxattrs; i++) {
			struct cf_xattr *x = &dst->xattrs[dst->nxattrs++];
			x->name = strdup(src->xattrs[i].name);
			x->value = malloc(src->xattrs[i].len ? src->xattrs[i].len : 1);
			x->len = src->xattrs[i].len;
			if (!x->name || !x->value) {
				bad = true;
				break;
			}
			memcpy(x->value, src->xattrs[i].value, x->len);
		}
	}
	if (bad) {
		cf_node_release(dst);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	return CF_OK;
}

/* ---------- the file system, never following a symlink ---------- */

static _Atomic int no_openat2; /* the kernel or a seccomp filter refuses it */

/* Open rel ("" = the root itself) below rootfd with flags (O_PATH,
 * O_RDONLY, ...; O_DIRECTORY for a directory), never through a symlink: a
 * symlink anywhere on the way, the last component included, is an error
 * (ELOOP/ENOTDIR), never a detour, and nothing outside rootfd is reached.
 * With O_PATH a symlink as the last component is opened as itself. */
static int open_beneath(int rootfd, const char *rel, int flags)
{
	/* One openat2 where the kernel has it (5.6+) and a seccomp filter lets
	 * it through: the same refusals (no symlink anywhere, nothing outside
	 * rootfd) in one call instead of one per component, 12 calls a file
	 * for the benchmark corpus' depth (a restore made 268,000 openat). */
	if (*rel && !no_openat2) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno == ENOSYS || errno == EPERM || errno == E2BIG)
			no_openat2 = 1;
		else if (errno != EAGAIN && errno != EXDEV && errno != EINTR)
			return -1;
		/* else the walk below: it is also what names the failure */
	}
	if (!*rel)
		return openat(rootfd, ".", flags | O_CLOEXEC);
	/* each directory on the way O_NOFOLLOW relative to the one before */
	int fd = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	const char *p = rel;
	char name[256];
	while (fd >= 0 && *p) {
		size_t l = strcspn(p, "/");
		if (l == 0 || l >= sizeof(name)) {
			close(fd);
			errno = l ? ENAMETOOLONG : EINVAL;
			return -1;
		}
		memcpy(name, p, l);
		name[l] = 0;
		p += l;
		if (*p == '/')
			p++;
		int nfd = openat(fd, name, (*p ? O_PATH | O_DIRECTORY : flags) | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		errno = e;
		fd = nfd;
	}
	return fd;
}

/* Open directory rel below rootfd (see open_beneath).  flags: O_PATH or
 * O_RDONLY. */
static int open_dir_beneath(int rootfd, const char *rel, int flags)
{
	return open_beneath(rootfd, rel, flags | O_DIRECTORY);
}

/* Is st the inode planned: the same device, inode number and type? */
static bool same_inode(const struct stat *st, uint64_t dev, uint64_t ino, mode_t type)
{
	return (uint64_t)st->st_dev == dev && (uint64_t)st->st_ino == ino &&
	       (st->st_mode & S_IFMT) == (type & S_IFMT);
}

/* Open, with flags, the very inode the O_PATH descriptor pfd refers to,
 * whatever name it has now: through its /proc/self/fd link, which leads to
 * the inode, not to a name that could have been swapped.  -1 with errno;
 * ENOENT when /proc is not mounted. */
static int reopen_fd(int pfd, int flags)
{
	char p[32];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", pfd);
	return open(p, flags | O_CLOEXEC | O_NOCTTY);
}

/* The parent directory of a file (O_PATH: for openat, renameat, linkat). */
static int open_parent(struct rctx *c, const struct rfile *f)
{
	const char *slash = strrchr(f->rel, '/');
	if (!slash)
		return open_dir_beneath(c->roots[f->root].fd, "", O_PATH);
	char *dir = strndup(f->rel, (size_t)(slash - f->rel));
	if (!dir) {
		errno = ENOMEM;
		return -1;
	}
	int fd = open_dir_beneath(c->roots[f->root].fd, dir, O_PATH);
	int e = errno;
	free(dir);
	errno = e;
	return fd;
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

/* Remove name (recursively if a directory) from dirfd without following any
 * symlink: directories are entered with O_NOFOLLOW, a symlink is unlinked
 * as itself. */
static int remove_entry(int dirfd, const char *name, const char *path)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? CF_OK : cf_err_errno("%s: stat", path);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return cf_err_errno("%s: remove", path);
		return CF_OK;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cf_err_errno("%s: open directory", path);
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	int rc = CF_OK;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		close(fd);
		return cf_err_errno("%s: read directory", path);
	}
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *sub = join(path, de->d_name);
		if (!sub) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		rc = remove_entry(fd, de->d_name, sub);
		free(sub);
	}
	closedir(d);
	close(fd);
	if (!rc && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = cf_err_errno("%s: remove directory", path);
	return rc;
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
	list_action(c, "delete", path, S_ISDIR(st.st_mode), bytes);
	if (!c->o->dry_run) {
		int rc = remove_entry(dirfd, name, path);
		if (rc) {
			path_failed(c, path, rc);
			return;
		}
	}
	add_stat(c, &c->st->deleted, count);
	add_stat(c, &c->st->bytes_deleted, bytes);
}

/* ---------- metadata ---------- */

static void owner_failed(struct rctx *c, const char *path)
{
	if (c->is_root) {
		cf_warn("warning: %s: cannot set owner: %s", path, strerror(errno));
	} else {
		cf_info("%s: owner not set (not root): %s", path, strerror(errno));
		add_stat(c, &c->st->owner_unset, 1);
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
static void set_meta_fd(struct rctx *c, int fd, const struct cf_node *n, const char *path)
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
static void set_meta_path(struct rctx *c, int pfd, const struct stat *st, const struct cf_node *n,
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

/* ---------- comparing a file on disk with the snapshot ---------- */

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
		cf_repo_blob_id(c->repo, buf->data, loc.rawlen, id);
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
	int pfd = open_beneath(rootfd, f->rel, O_PATH), fd = -1, e;
	if (pfd < 0)
		return -1;
	if (fstat(pfd, &st) < 0)
		goto fail;
	if (!same_inode(&st, f->dev, f->ino, S_IFREG)) {
		errno = ESTALE;
		goto fail;
	}
	fd = reopen_fd(pfd, O_RDONLY);
	if (fd < 0 && errno == ENOENT) /* no /proc: by name again, checked below */
		fd = open_beneath(rootfd, f->rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!same_inode(&st, f->dev, f->ino, S_IFREG)) {
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

/* ---------- parallel phases ---------- */

/* buf: two buffers of the calling thread, reused from item to item (fresh
 * megabytes for every item would cost a page fault per 4 KiB) */
typedef void (*item_fn)(struct rctx *c, size_t i, struct cf_buf buf[2]);
struct prun {
	struct rctx *c;
	size_t n;
	item_fn fn;
};

static void *prun_thread(void *arg)
{
	struct prun *p = arg;
	struct cf_buf buf[2] = { CF_BUF_INIT, CF_BUF_INIT };
	for (;;) {
		if (atomic_load(&p->c->stop))
			break;
		if (cf_interrupted) {
			atomic_store(&p->c->stop, true);
			break;
		}
		size_t i = atomic_fetch_add(&p->c->next, 1);
		if (i >= p->n)
			break;
		p->fn(p->c, i, buf);
	}
	cf_buf_release(&buf[0]);
	cf_buf_release(&buf[1]);
	return NULL;
}

/* fn(c, i) for i in [0, n) on c->nthreads threads. */
static void parallel(struct rctx *c, size_t n, item_fn fn)
{
	struct prun p = { c, n, fn };
	pthread_t *t = calloc((size_t)c->nthreads, sizeof(*t));
	int started = 0;
	atomic_store(&c->next, 0);
	for (int i = 0; t && i < c->nthreads && (size_t)i < n; i++) {
		if (pthread_create(&t[i], NULL, prun_thread, &p))
			break;
		started++;
	}
	if (!started) /* no threads to be had: do it here */
		prun_thread(&p);
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
}

static void *progress_thread(void *arg)
{
	struct rctx *c = arg;
	pthread_mutex_lock(&c->mu);
	while (!c->pg_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->pg_cond, &c->mu, &ts);
		if (c->pg_stop)
			break;
		double mb = (double)atomic_load(&c->pg_bytes) / (1 << 20);
		double mbt = (double)atomic_load(&c->pg_bytes_total) / (1 << 20);
		fprintf(stderr, "\r\033[K%s: %llu/%llu files, %.1f/%.1f MiB", c->phase,
			(unsigned long long)atomic_load(&c->pg_done),
			(unsigned long long)atomic_load(&c->pg_total), mb, mbt);
	}
	fprintf(stderr, "\r\033[K");
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void set_phase(struct rctx *c, const char *phase, uint64_t total, uint64_t bytes_total)
{
	pthread_mutex_lock(&c->mu);
	c->phase = phase;
	atomic_store(&c->pg_done, 0);
	atomic_store(&c->pg_total, total);
	atomic_store(&c->pg_bytes, 0);
	atomic_store(&c->pg_bytes_total, bytes_total);
	pthread_mutex_unlock(&c->mu);
}

/* ---------- phase 1: plan ---------- */

static int add_file(struct rctx *c, uint32_t root, const char *rel, const struct cf_node *n,
		    int state, bool existed, size_t leader)
{
	int rc;
	if ((rc = GROW(c, files, nfiles, filecap)))
		return rc;
	struct rfile *f = &c->files[c->nfiles];
	memset(f, 0, sizeof(*f));
	if ((rc = cf_restore_node_copy(n, &f->node)))
		return rc;
	f->rel = strdup(rel);
	f->path = join(c->roots[root].dir, rel);
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

/* The inode restore may touch under f's name is the one found there (st). */
static void set_planned(struct rfile *f, const struct stat *st)
{
	f->dev = (uint64_t)st->st_dev;
	f->ino = (uint64_t)st->st_ino;
}

/* Make a symlink, fifo or device node under a temporary name, set its
 * metadata through a descriptor of the node made (set_meta_path) and rename
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
	set_meta_path(c, pfd, &st, n, path);
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
		list_action(c, "keep", path, false, 0);
		if (!c->o->dry_run)
			set_meta_path(c, pfd, &st, n, path);
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
		char *p = join(rt->dir, rel);
		rc = cf_err(CF_ECORRUPT, "%s: refusing an entry with an unsafe name in the snapshot",
			    p ? p : rel);
		path_failed(c, p ? p : rel, rc);
		free(p);
		return CF_OK;
	}
	if (asprintf(&csnap, "%s/%s", snap, n->name) < 0)
		return cf_err(CF_ENOMEM, "out of memory");
	crel = join(rel, n->name);
	path = crel ? join(rt->dir, crel) : NULL;
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
			list_action(c, "keep", path, false, 0);
			goto out;
		}
		if (exists && S_ISDIR(st.st_mode)) {
			sub = openat(dirfd, n->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				rc = cf_err_errno("%s: open directory", path);
				goto fail;
			}
		} else {
			list_action(c, exists ? "replace" : "create", path, true, 0);
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
		 * end (set_dir_meta checks that it still is); one swapped in for
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
			if ((rc = GROW(c, dirs, ndirs, dircap)))
				goto out;
			struct rdir *d = &c->dirs[c->ndirs];
			if ((rc = cf_restore_node_copy(n, &d->node)))
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
		list_action(c, "keep", path, false, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
		if (n->type == CF_NODE_FILE) {
			c->st->files_kept++;
			c->st->bytes_kept += S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
			if (!(rc = add_file(c, root, crel, n, F_KEEP, true, 0)))
				set_planned(&c->files[c->nfiles - 1], &st);
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
		list_action(c, "delete", path, true, bytes);
		if (!dry && (rc = remove_entry(dirfd, n->name, path)))
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
			if ((rc = GROW(c, hl, nhl, hlcap)))
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
			set_planned(&c->files[c->nfiles - 1], &st);
		goto out;
	}
	if (n->type == CF_NODE_SOCKET) /* nothing can use a dead socket file */
		goto out;
	if (exists && keep_special(c, dirfd, n, path))
		goto out;
	list_action(c, exists ? "replace" : "create", path, false, 0);
	c->st->others++;
	if (!dry && (rc = make_special(c, dirfd, path, n)))
		goto fail;
	goto out;
fail:
	path_failed(c, path, rc);
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
		if (nn == cap) {
			char **p = realloc(names, (cap = cap ? 2 * cap : 32) * sizeof(*p));
			if (!p) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			names = p;
		}
		if (!(names[nn] = strdup(de->d_name))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		nn++;
	}
	for (size_t i = 0; i < nn; i++) {
		char *csnap = NULL, *crel = join(rel, names[i]);
		char *path = crel ? join(c->roots[root].dir, crel) : NULL;
		if (!path || asprintf(&csnap, "%s/%s", snap, names[i]) < 0) {
			free(crel);
			free(path);
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		if (!strncmp(names[i], TMP_PREFIX, strlen(TMP_PREFIX))) {
			/* left by a killed restore: never a complete file */
			if (!c->o->dry_run) {
				int r = remove_entry(dirfd, names[i], path);
				if (r)
					path_failed(c, path, r);
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
		char *p = join(c->roots[root].dir, rel);
		rc = cf_err_prefix(rc, "%s", p ? p : rel);
		path_failed(c, p ? p : rel, rc);
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

/* ---------- phase 2: compare ---------- */

static void check_one(struct rctx *c, size_t i, struct cf_buf bufs[2])
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
			set_meta_fd(c, fd, &f->node, f->path);
		close(fd);
	}
	cf_err_clear();
	f->state = eq ? F_KEEP : F_WRITE;
	atomic_fetch_add(&c->pg_done, 1);
	atomic_fetch_add(&c->pg_bytes, f->node.size);
}

/* ---------- phase 3: write ---------- */

static pthread_mutex_t *stripe(struct rctx *c, size_t file)
{
	return &c->stripes[file % NSTRIPES];
}

static void tmp_name(const struct rctx *c, const struct rfile *f, char *out, size_t n)
{
	snprintf(out, n, TMP_PREFIX "%d-%u", c->pid, f->tmpno);
}

static void close_tmp(struct rctx *c, struct rfile *f)
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
	if (fstat(pfd, &st) == 0 && same_inode(&st, f->dev, f->ino, S_IFREG)) {
		fd = reopen_fd(pfd, O_WRONLY);
		if (fd < 0 && errno == ENOENT)
			fd = openat(f->dirfd, tmp, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0 && (fstat(fd, &st) < 0 || !same_inode(&st, f->dev, f->ino, S_IFREG))) {
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
	if (f->dirfd < 0 && (f->dirfd = open_parent(c, f)) < 0)
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
	 * saves the fchmod (set_meta_fd); any other is made 0600 until then:
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
static int write_sparse(int fd, const uint8_t *p, size_t n, uint64_t off, uint64_t *end)
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
	path_failed(c, f->path, rc);
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
		    !same_inode(&st, f->dev, f->ino, S_IFREG)))
		rc = cf_err(CF_EIO, "%s: its temporary file was replaced while being written", f->path);
	if (!rc && renameat(f->dirfd, tmp, f->dirfd, f->node.name) < 0)
		rc = cf_err_errno("%s: rename into place", f->path);
	if (!rc) {
		close_tmp(c, f);
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
		f->dirfd = open_parent(c, f);
	if (f->dirfd >= 0)
		unlinkat(f->dirfd, tmp, 0);
	close_tmp(c, f);
}

/* ---------- written files leave the page cache ----------
 *
 * A restore writes every byte once and reads none of it back, yet each one
 * goes through the page cache: gigabytes of pages allocated and filled,
 * which evicts what the host had cached (the application's files, on a
 * production host) and, where fresh memory is dear (a VM whose free pages
 * go back to the hypervisor), costs most of the restore's time: restoring
 * the 2 GiB benchmark corpus took 4-11 s of system time here, mostly
 * copy_folio_from_iter_atomic into new pages.  So the writeback of a
 * finished file starts at once (sync_file_range), and once BEHIND_BYTES or
 * BEHIND_FILES of later files are finished too, its writeback is waited
 * for, its pages dropped
 * (POSIX_FADV_DONTNEED) to be reused for the files being written, and only
 * then is it renamed into place: a file that the disk refused (EIO, or
 * ENOSPC of a delayed allocation, which a plain write and close never
 * see) is named as not restored and what it would have replaced is kept.
 * Restores of the corpus into fresh directories, alternating with the
 * code before, three pairs: system time 3.6-8.6 s -> 2.5-5.2 s, wall
 * 4.2-8.1 s -> 4.1-6.1 s (the pages a restore needs came from reclaiming
 * other files' pages or from fresh memory; now 64 MiB of them go round). */
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
static void behind_drain(struct rctx *c)
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
static void finish_file(struct rctx *c, struct rfile *f)
{
	int rc = CF_OK;
	f->done = true;
	if (!f->failed && !f->opened && (rc = open_tmp(c, f))) /* empty file */
		goto fail;
	if (f->failed)
		goto fail;
	if (f->fd < 0 && (rc = open_tmp(c, f)))
		goto fail;
	/* a trailing hole (only then: 20,000 small files' ftruncate calls
	 * were 4% of their restore's CPU time) */
	if (f->end != f->size && ftruncate(f->fd, (off_t)f->size) < 0) {
		rc = cf_err_errno("%s: truncate", f->path);
		goto fail;
	}
	set_meta_fd(c, f->fd, &f->node, f->path);
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
			f->dirfd = open_parent(c, f);
		tmp_name(c, f, tmp, sizeof(tmp));
		if (f->dirfd >= 0)
			unlinkat(f->dirfd, tmp, 0);
	}
	close_tmp(c, f);
}

/* A big file's bytes leave the page cache while it is written, not only
 * when it is finished (behind_add): the writeback of what was just written
 * starts at once, and the same span BEHIND_LAG bytes before it (written a
 * while ago: the packs of a big file are restored roughly in its order) is
 * waited for and dropped.  The spans behind the writes tile the file up to
 * its last BEHIND_LAG bytes, which finish_file drops with the rest.  Without
 * this, the 1.25 GB of the benchmark's five big files sat dirty in the page
 * cache until each was complete.  A dirty page is never dropped
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
static void write_use(struct rctx *c, const struct ruse *u, const uint8_t *data, size_t len, int err,
		      const char *errmsg)
{
	struct rfile *f = &c->files[u->file];
	pthread_mutex_t *m = stripe(c, u->file);
	int rc = CF_OK;
	pthread_mutex_lock(m);
	if (err) {
		file_failed(c, f, cf_err(err, "%s: %s", f->path, errmsg));
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
			rc = write_sparse(fd, data, len, u->foff, &end);
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
		finish_file(c, f);
	else if (f->fd >= 0 && !f->writers && atomic_load(&c->open_files) > FD_CAP)
		close_tmp(c, f);
	pthread_mutex_unlock(m);
}

/* ---------- fetch and write ----------
 *
 * The blobs to write are cut into ranges: runs of needed blobs of one pack
 * that lie within RANGE_GAP of each other, up to range_max bytes, in the
 * packs' order (plan_writes).  Fetching threads read the ranges in that
 * order into a bounded pool of buffers; writing threads take them in the
 * same order, open each blob once and write it to every place that holds
 * it.  Reading thus runs ahead of the writers instead of between their
 * writes: when each thread read a range and then wrote it, a local restore
 * of the benchmark corpus kept the CPUs a third idle, its threads waiting
 * for O_DIRECT reads of the packs (off-CPU profile).
 * Memory: writers + fetchers sealed ranges, and one opened blob per writer.
 * A store that streams (S3) is read differently: see stream_and_write. */

/* c->ranges from c->groups */
static int make_ranges(struct rctx *c)
{
	for (size_t g = 0; g < c->ngroups; g++) {
		size_t end = c->groups[g].end;
		for (size_t i = c->groups[g].start; i < end;) {
			uint64_t rs = c->uses[i].offset, re = rs + c->uses[i].length;
			size_t j = i + 1;
			while (j < end && c->uses[j].offset <= re + RANGE_GAP &&
			       (c->uses[j].offset + (uint64_t)c->uses[j].length > re ?
				c->uses[j].offset + (uint64_t)c->uses[j].length : re) - rs <= c->range_max) {
				if (c->uses[j].offset + (uint64_t)c->uses[j].length > re)
					re = c->uses[j].offset + (uint64_t)c->uses[j].length;
				j++;
			}
			int rc = GROW(c, ranges, nranges, rangecap);
			if (rc)
				return rc;
			c->ranges[c->nranges++] = (struct rrange){ i, j, rs, re, -1, CF_OK, NULL, false };
			i = j;
		}
	}
	return CF_OK;
}

static void set_stop(struct rctx *c)
{
	pthread_mutex_lock(&c->rg_mu);
	atomic_store(&c->stop, true);
	pthread_cond_broadcast(&c->rg_cond);
	pthread_mutex_unlock(&c->rg_mu);
}

/* Take a free buffer of the pool and the next range (in this order, under
 * one lock: buffers go to ranges in the ranges' order, so the first range
 * not yet written always has one or gets the next that is freed), fetch it
 * into the buffer, which its writer gives back. */
static void *fetch_thread(void *arg)
{
	struct rctx *c = arg;
	struct cf_backend *be = cf_repo_backend(c->repo);
	for (;;) {
		if (cf_interrupted)
			set_stop(c);
		pthread_mutex_lock(&c->rg_mu);
		while (!c->nfree && !atomic_load(&c->stop))
			pthread_cond_wait(&c->rg_cond, &c->rg_mu);
		size_t k = c->fnext;
		if (atomic_load(&c->stop) || k >= c->nranges) {
			pthread_mutex_unlock(&c->rg_mu);
			break;
		}
		c->fnext++;
		int b = c->freebufs[--c->nfree];
		pthread_mutex_unlock(&c->rg_mu);

		struct rrange *rr = &c->ranges[k];
		char hex[CF_ID_HEX], ppath[128];
		cf_hex(c->uses[rr->i].pack, CF_ID_LEN, hex);
		cf_backend_pack_path(hex, ppath, sizeof(ppath));
		int frc = cf_be_get_range(be, ppath, rr->rs, (size_t)(rr->re - rr->rs), &c->bufs[b]);
		if (frc == CF_ENOENT)
			frc = cf_err(CF_ECORRUPT, "pack %s is missing", hex);
		char *msg = frc ? strdup(cf_errmsg(frc)) : NULL;
		pthread_mutex_lock(&c->rg_mu);
		rr->buf = b;
		rr->rc = frc;
		rr->msg = msg;
		rr->ready = true;
		pthread_cond_broadcast(&c->rg_cond);
		pthread_mutex_unlock(&c->rg_mu);
	}
	return NULL;
}

/* A blob that failed at u's place (brc): read it from another place the
 * index lists it at (a replayed index, a second writer's copy), if any.
 * CF_OK with the blob in plain, or brc. */
static int other_copy(struct rctx *c, const struct ruse *u, struct cf_buf *plain, int brc)
{
	if (!brc || brc == CF_ENOMEM || brc == CF_EINTR || atomic_load(&c->stop))
		return brc;
	if (cf_repo_load_blob_except(c->repo, CF_BLOB_DATA, u->id, u->pack, plain) == CF_OK)
		return CF_OK;
	cf_err_clear();
	return brc;
}

/* Open the blobs of one fetched range (or fail them with the fetch's error)
 * and write each to every place that holds it. */
static void write_range(struct rctx *c, const struct rrange *rr, const struct cf_buf *sealed,
			struct cf_buf *plain)
{
	char errmsg[512] = "";
	int brc = CF_OK;
	for (size_t k = rr->i; k < rr->j; k++) {
		const struct ruse *u = &c->uses[k];
		if (k == rr->i || u->offset != c->uses[k - 1].offset) {
			struct cf_blob_loc loc;
			memcpy(loc.pack, u->pack, CF_ID_LEN);
			loc.offset = u->offset;
			loc.length = u->length;
			loc.rawlen = u->rawlen;
			loc.flags = u->flags;
			brc = rr->rc ? rr->rc : cf_repo_open_blob(c->repo, CF_BLOB_DATA, u->id, &loc,
								   sealed->data + (u->offset - rr->rs), plain);
			/* the message is kept apart: each file it fails adds its name */
			if (brc)
				snprintf(errmsg, sizeof(errmsg), "%s",
					 rr->rc && rr->msg ? rr->msg : cf_errmsg(brc));
			brc = other_copy(c, u, plain, brc);
		}
		write_use(c, u, plain->data, plain->len, brc, errmsg);
	}
}

/* Write the ranges in their order, each once fetched.  Interrupted: the
 * rest is left unwritten (and its files' temporary files removed). */
static void *write_thread(void *arg)
{
	struct rctx *c = arg;
	struct cf_buf plain = CF_BUF_INIT;
	for (;;) {
		if (cf_interrupted)
			set_stop(c);
		size_t k = atomic_fetch_add(&c->next, 1);
		if (k >= c->nranges || atomic_load(&c->stop))
			break;
		struct rrange *rr = &c->ranges[k];
		pthread_mutex_lock(&c->rg_mu);
		while (!rr->ready && !atomic_load(&c->stop))
			pthread_cond_wait(&c->rg_cond, &c->rg_mu);
		bool ready = rr->ready;
		pthread_mutex_unlock(&c->rg_mu);
		if (!ready)
			break;
		if (!atomic_load(&c->stop))
			write_range(c, rr, &c->bufs[rr->buf], &plain);
		pthread_mutex_lock(&c->rg_mu);
		c->freebufs[c->nfree++] = rr->buf;
		rr->buf = -1;
		pthread_cond_broadcast(&c->rg_cond);
		pthread_mutex_unlock(&c->rg_mu);
	}
	cf_buf_release(&plain);
	return NULL;
}

/* ---------- a store that streams (S3) ----------
 *
 * Each of nfetch threads takes the next range, asks for all of it at once
 * (ranges are whole packs, but for gaps over RANGE_GAP) and opens and writes
 * each blob as soon as its last byte has arrived: memory is one sealed and
 * one opened blob per thread, however big the request.  With ranges of at
 * most 4 MiB held whole, a restore of the benchmark corpus made twice the
 * requests, and the store spent more CPU on them than on the bytes. */
struct rstream {
	struct rctx *c;
	const struct rrange *rr;
	size_t k;              /* the use whose blob comes next */
	uint64_t pos;          /* pack offset of the next byte to arrive */
	struct cf_buf *sealed, *plain;
};

/* Open the blob now whole in s->sealed and write it to its uses. */
static void stream_blob(struct rstream *s)
{
	struct rctx *c = s->c;
	const struct ruse *u = &c->uses[s->k];
	struct cf_blob_loc loc;
	char errmsg[512] = "";
	memcpy(loc.pack, u->pack, CF_ID_LEN);
	loc.offset = u->offset;
	loc.length = u->length;
	loc.rawlen = u->rawlen;
	loc.flags = u->flags;
	int brc = cf_repo_open_blob(c->repo, CF_BLOB_DATA, u->id, &loc, s->sealed->data, s->plain);
	if (brc)
		snprintf(errmsg, sizeof(errmsg), "%s", cf_errmsg(brc));
	brc = other_copy(c, u, s->plain, brc);
	uint32_t off = u->offset;
	for (; s->k < s->rr->j && c->uses[s->k].offset == off; s->k++)
		write_use(c, &c->uses[s->k], s->plain->data, s->plain->len, brc, errmsg);
	cf_buf_reset(s->sealed);
}

/* The range's next n bytes: into the blob they belong to, gaps skipped. */
static int stream_bytes(const uint8_t *p, size_t n, void *ctx)
{
	struct rstream *s = ctx;
	struct rctx *c = s->c;
	if (cf_interrupted)
		set_stop(c);
	if (atomic_load(&c->stop))
		return cf_err(CF_EINTR, "interrupted");
	while (n && s->k < s->rr->j) {
		const struct ruse *u = &c->uses[s->k];
		uint64_t bs = u->offset, be = bs + u->length, take;
		if (s->pos < bs) { /* a gap between needed blobs */
			take = bs - s->pos < n ? bs - s->pos : n;
		} else {
			take = be - s->pos < n ? be - s->pos : n;
			int rc = cf_buf_add(s->sealed, p, (size_t)take);
			if (rc)
				return rc;
		}
		s->pos += take, p += take, n -= (size_t)take;
		if (s->pos == be)
			stream_blob(s);
	}
	return CF_OK;
}

static void *stream_thread(void *arg)
{
	struct rctx *c = arg;
	struct cf_backend *be = cf_repo_backend(c->repo);
	struct cf_buf sealed = CF_BUF_INIT, plain = CF_BUF_INIT;
	for (;;) {
		if (cf_interrupted)
			set_stop(c);
		size_t k = atomic_fetch_add(&c->next, 1);
		if (k >= c->nranges || atomic_load(&c->stop))
			break;
		const struct rrange *rr = &c->ranges[k];
		struct rstream st = { c, rr, rr->i, rr->rs, &sealed, &plain };
		char hex[CF_ID_HEX], ppath[128];
		cf_hex(c->uses[rr->i].pack, CF_ID_LEN, hex);
		cf_backend_pack_path(hex, ppath, sizeof(ppath));
		cf_buf_reset(&sealed);
		int rc = cf_be_get_range_stream(be, ppath, rr->rs, (size_t)(rr->re - rr->rs), stream_bytes, &st);
		if (rc == CF_ENOENT)
			rc = cf_err(CF_ECORRUPT, "pack %s is missing", hex);
		if (atomic_load(&c->stop))
			break; /* interrupted: the rest stays unwritten */
		if (rc) { /* the blobs that did not arrive fail with the read's error */
			char errmsg[512];
			snprintf(errmsg, sizeof(errmsg), "%s", cf_errmsg(rc));
			int urc = rc;
			for (size_t first = st.k; st.k < rr->j; st.k++) {
				const struct ruse *u = &c->uses[st.k];
				if (st.k == first || u->offset != c->uses[st.k - 1].offset)
					urc = other_copy(c, u, &plain, rc);
				write_use(c, u, urc ? NULL : plain.data, urc ? 0 : plain.len, urc, errmsg);
			}
		}
	}
	cf_buf_release(&sealed);
	cf_buf_release(&plain);
	return NULL;
}

static int stream_and_write(struct rctx *c, int nfetch)
{
	int rc, n = 0;
	pthread_t *t = NULL;
	if ((rc = make_ranges(c)))
		return rc;
	if (!(t = calloc((size_t)nfetch, sizeof(*t))))
		return cf_err(CF_ENOMEM, "out of memory");
	atomic_store(&c->next, 0);
	for (; n < nfetch; n++)
		if (pthread_create(&t[n], NULL, stream_thread, c))
			break;
	if (!n)
		rc = cf_err(CF_ENOMEM, "out of memory (cannot start threads)");
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	free(t);
	return rc;
}

/* Fetch and write every range: nfetch fetching and c->nthreads writing
 * threads.  CF_ENOMEM when no thread of either kind could be started (then
 * nothing was written). */
static int fetch_and_write(struct rctx *c, int nfetch)
{
	int rc, nbufs = c->nthreads + nfetch, nf = 0, nw = 0;
	pthread_t *t = NULL;
	if (c->streaming)
		return stream_and_write(c, nfetch);
	if ((rc = make_ranges(c)))
		return rc;
	if (!(c->bufs = calloc((size_t)nbufs, sizeof(*c->bufs))) ||
	    !(c->freebufs = calloc((size_t)nbufs, sizeof(*c->freebufs))) ||
	    !(t = calloc((size_t)(nfetch + c->nthreads), sizeof(*t))))
		return cf_err(CF_ENOMEM, "out of memory");
	for (int i = 0; i < nbufs; i++) {
		c->bufs[i] = (struct cf_buf)CF_BUF_INIT;
		c->freebufs[c->nfree++] = i;
	}
	atomic_store(&c->next, 0);
	for (; nf < nfetch; nf++)
		if (pthread_create(&t[nf], NULL, fetch_thread, c))
			break;
	for (; nf && nw < c->nthreads; nw++)
		if (pthread_create(&t[nf + nw], NULL, write_thread, c))
			break;
	if (!nf || !nw) {
		set_stop(c); /* the threads that did start */
		rc = cf_err(CF_ENOMEM, "out of memory (cannot start threads)");
	}
	for (int i = 0; i < nf + nw; i++)
		pthread_join(t[i], NULL);
	free(t);
	for (int i = 0; i < nbufs; i++)
		cf_buf_release(&c->bufs[i]);
	return rc;
}

static int use_cmp(const void *a, const void *b)
{
	const struct ruse *x = a, *y = b;
	int r = memcmp(x->pack, y->pack, CF_ID_LEN);
	if (r)
		return r;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->file < y->file ? -1 : x->file > y->file;
}

static int group_cmp(const void *a, const void *b)
{
	const struct rgroup *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* Where every blob of every file to write lies, grouped by pack, packs in
 * the order the files first need them (so files complete early and few are
 * open at a time). */
static int plan_writes(struct rctx *c, uint64_t *total)
{
	int rc;
	*total = 0;
	for (size_t i = 0; i < c->nfiles; i++) {
		struct rfile *f = &c->files[i];
		if (f->state != F_WRITE)
			continue;
		size_t mark = c->nuses;
		uint64_t off = 0;
		for (size_t b = 0; b < f->node.ncontent; b++) {
			struct cf_blob_loc loc;
			if ((rc = cf_repo_lookup(c->repo, CF_BLOB_DATA, f->node.content[b], &loc))) {
				if (rc == CF_ENOMEM)
					return rc;
				f->state = F_FAILED;
				path_failed(c, f->path, cf_err_prefix(rc, "%s", f->path));
				c->nuses = mark;
				break;
			}
			if ((rc = GROW(c, uses, nuses, usecap)))
				return rc;
			struct ruse *u = &c->uses[c->nuses++];
			memcpy(u->pack, loc.pack, CF_ID_LEN);
			u->offset = loc.offset;
			u->length = loc.length;
			u->rawlen = loc.rawlen;
			u->flags = loc.flags;
			u->id = f->node.content[b];
			u->file = i;
			u->foff = off;
			off += loc.rawlen;
		}
		if (f->state == F_FAILED)
			continue;
		f->size = off;
		f->remaining = f->node.ncontent;
		*total += off;
		if (off != f->node.size)
			cf_warn("warning: %s: the snapshot records %llu bytes but its blobs hold %llu",
				f->path, (unsigned long long)f->node.size, (unsigned long long)off);
	}
	if (c->nuses)
		qsort(c->uses, c->nuses, sizeof(*c->uses), use_cmp);
	for (size_t i = 0; i < c->nuses;) {
		size_t j = i, first = c->uses[i].file;
		while (j < c->nuses && !memcmp(c->uses[j].pack, c->uses[i].pack, CF_ID_LEN)) {
			if (c->uses[j].file < first)
				first = c->uses[j].file;
			j++;
		}
		if ((rc = GROW(c, groups, ngroups, groupcap)))
			return rc;
		c->groups[c->ngroups++] = (struct rgroup){ i, j, first };
		i = j;
	}
	if (c->ngroups)
		qsort(c->groups, c->ngroups, sizeof(*c->groups), group_cmp);
	return CF_OK;
}

/* ---------- hard links, directories, verify ---------- */

/* Link f to its leader: to the inode restore placed or kept under the
 * leader's name (l->dev, l->ino), through an O_PATH descriptor of it, not
 * to whatever the name leads to by the time of the link. */
static void link_one(struct rctx *c, struct rfile *f)
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
	if ((lfd = open_parent(c, l)) < 0 || (ffd = open_parent(c, f)) < 0) {
		rc = cf_err_errno("%s: open its directory", f->path);
		goto fail;
	}
	if ((pfd = openat(lfd, l->node.name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(pfd, &a) < 0) {
		rc = cf_err_errno("%s: cannot link to %s", f->path, l->path);
		goto fail;
	}
	if (!same_inode(&a, l->dev, l->ino, S_IFREG)) {
		rc = cf_err(CF_EIO, "%s: not linked: %s was replaced while being restored", f->path, l->path);
		goto fail;
	}
	if (fstatat(ffd, f->node.name, &b, AT_SYMLINK_NOFOLLOW) == 0 && same_inode(&b, l->dev, l->ino, S_IFREG)) {
		set_planned(f, &a);
		add_stat(c, &c->st->files_kept, 1);
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
	set_planned(f, &a);
	add_stat(c, &c->st->files_linked, 1);
	goto out;
fail:
	f->state = F_FAILED;
	path_failed(c, f->path, rc);
out:
	if (pfd >= 0)
		close(pfd);
	if (lfd >= 0)
		close(lfd);
	if (ffd >= 0)
		close(ffd);
}

/* Set a directory's metadata once it is opened (beneath its root, through
 * no symlink) and found to be the directory planned (dev, ino). */
static void set_dir_meta(struct rctx *c, uint32_t root, const char *rel, const struct cf_node *n,
			 uint64_t dev, uint64_t ino)
{
	int fd = open_dir_beneath(c->roots[root].fd, rel, O_RDONLY);
	char *path = join(c->roots[root].dir, rel);
	const char *p = path ? path : rel;
	struct stat st;
	if (fd < 0) {
		path_failed(c, p, cf_err_errno("%s: open directory", p));
	} else if (fstat(fd, &st) < 0) {
		path_failed(c, p, cf_err_errno("%s: stat directory", p));
	} else if (!same_inode(&st, dev, ino, S_IFDIR)) {
		path_failed(c, p, cf_err(CF_EIO, "%s: replaced by another directory while being restored "
					 "(its metadata is not set)", p));
	} else {
		set_meta_fd(c, fd, n, p);
	}
	if (fd >= 0)
		close(fd);
	free(path);
}

static void verify_one(struct rctx *c, size_t i, struct cf_buf bufs[2])
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
		path_failed(c, f->path, rc);
	else
		add_stat(c, &c->st->verified, 1);
	atomic_fetch_add(&c->pg_done, 1);
	atomic_fetch_add(&c->pg_bytes, f->node.size);
}

/* ---------- setup ---------- */

/* "/a/b/" -> "/a/b"; NULL unless absolute. */
static char *norm_path(const char *p)
{
	if (!p || p[0] != '/')
		return NULL;
	size_t l = strlen(p);
	while (l > 1 && p[l - 1] == '/')
		l--;
	return strndup(p, l);
}

int cf_restore_find(struct cf_repo *r, const struct cf_snapshot *s, const char *path,
		    struct cf_node *out)
{
	struct cf_tree t = CF_TREE_INIT;
	uint8_t id[CF_ID_LEN];
	const char *p = path;
	char name[4096];
	int rc;

	memset(out, 0, sizeof(*out));
	memcpy(id, s->tree, CF_ID_LEN);
	while (*p == '/')
		p++;
	if (!*p)
		return cf_err(CF_EINVAL, "%s: the snapshot's root is not an entry", path);
	for (;;) {
		size_t l = strcspn(p, "/");
		if (l >= sizeof(name))
			return cf_err(CF_ENOENT, "%s is not in the snapshot", path);
		memcpy(name, p, l);
		name[l] = 0;
		p += l;
		while (*p == '/')
			p++;
		if ((rc = cf_repo_load_tree(r, id, &t)))
			return rc;
		const struct cf_node *n = cf_tree_find(&t, name);
		if (!n) {
			rc = cf_err(CF_ENOENT, "%s is not in the snapshot", path);
		} else if (!*p) {
			rc = cf_restore_node_copy(n, out);
		} else if (n->type != CF_NODE_DIR || !n->has_subtree) {
			rc = cf_err(CF_ENOENT, "%s is not in the snapshot", path);
		} else {
			memcpy(id, n->subtree, CF_ID_LEN);
			cf_tree_release(&t);
			continue;
		}
		cf_tree_release(&t);
		return rc;
	}
}

int cf_restore_parse_overwrite(const char *s, enum cf_overwrite *out)
{
	if (!strcmp(s, "if-changed"))
		*out = CF_OVERWRITE_IF_CHANGED;
	else if (!strcmp(s, "always"))
		*out = CF_OVERWRITE_ALWAYS;
	else if (!strcmp(s, "never"))
		*out = CF_OVERWRITE_NEVER;
	else
		return cf_err(CF_EINVAL, "--overwrite wants always, if-changed or never, not '%s'", s);
	return CF_OK;
}

void cf_restore_stats_release(struct cf_restore_stats *st)
{
	for (size_t i = 0; i < st->nfailed; i++)
		free(st->failed[i]);
	free(st->failed);
	st->failed = NULL;
	st->nfailed = 0;
}

/* Open (creating unless dry) the directory of a root. */
static int open_root(struct rctx *c, struct rroot *rt, const char *dir)
{
	int rc;
	if (!(rt->dir = strdup(dir)))
		return cf_err(CF_ENOMEM, "out of memory");
	if (!c->o->dry_run && (rc = cf_mkdirs(dir, 0755)))
		return rc;
	rt->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rt->fd < 0 && !(c->o->dry_run && errno == ENOENT))
		return cf_err_errno("open target %s", dir);
	return CF_OK;
}

/* The roots: one per --path-map (first, in order), then --target unless
 * every include is mapped.  Options are checked before anything is made. */
static int setup_roots(struct rctx *c, const struct cf_snapshot *s, char **incs, size_t ninc)
{
	const struct cf_restore_opts *o = c->o;
	const char **rest = NULL;
	size_t unmapped = 0;
	int rc = CF_OK;
	if (!(c->roots = calloc(o->nmaps + 1, sizeof(*c->roots))) ||
	    !(rest = calloc(ninc + 1, sizeof(*rest)))) {
		free(rest);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i <= o->nmaps; i++)
		c->roots[i].fd = -1;
	for (size_t i = 0; i < o->nmaps; i++) {
		struct rroot *rt = &c->roots[c->nroots++];
		char *sp = norm_path(o->maps[i].snap_path);
		if (!sp || !strcmp(sp, "/")) {
			free(sp);
			rc = cf_err(CF_EINVAL, "--path-map %s=%s: give an absolute snapshot directory",
				    o->maps[i].snap_path, o->maps[i].dir);
			goto out;
		}
		rt->snap = sp;
	}
	/* includes no map covers go to --target */
	for (size_t k = 0; k < ninc; k++) {
		bool m = false;
		for (size_t i = 0; i < o->nmaps && !m; i++)
			m = under(incs[k], c->roots[i].snap);
		if (!m)
			rest[unmapped++] = incs[k];
	}
	bool need_target = !o->nmaps || unmapped > 0 || (ninc == 0 && o->target);
	if (need_target && (!o->target || !*o->target)) {
		rc = unmapped ? cf_err(CF_EINVAL, "--include %s is not under any --path-map: give --target DIR",
				       rest[0]) :
				cf_err(CF_EINVAL, "no --target given");
		goto out;
	}
	for (size_t i = 0; i < o->nmaps; i++) {
		struct rroot *rt = &c->roots[i];
		if ((rc = cf_restore_find(c->repo, s, rt->snap, &rt->node))) {
			rc = cf_err_prefix(rc, "--path-map");
			goto out;
		}
		rt->has_node = true;
		if (rt->node.type != CF_NODE_DIR) {
			rc = cf_err(CF_EINVAL, "--path-map: %s is not a directory in the snapshot", rt->snap);
			goto out;
		}
	}
	for (size_t i = 0; i < o->nmaps; i++) {
		struct rroot *rt = &c->roots[i];
		rt->has_tree = rt->node.has_subtree;
		memcpy(rt->tree, rt->node.subtree, CF_ID_LEN);
		if (!(rt->incs = calloc(ninc + 1, sizeof(*rt->incs)))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		/* includes inside the mapped tree narrow it; one above it takes all */
		bool all = false;
		for (size_t k = 0; k < ninc; k++) {
			if (under(rt->snap, incs[k]))
				all = true;
			else if (under(incs[k], rt->snap))
				rt->incs[rt->nincs++] = incs[k];
		}
		if (all)
			rt->nincs = 0;
		if ((rc = open_root(c, rt, o->maps[i].dir)))
			goto out;
	}
	if (need_target) {
		struct rroot *rt = &c->roots[c->nroots++];
		rt->snap = "";
		rt->is_target = true;
		rt->has_tree = true;
		memcpy(rt->tree, s->tree, CF_ID_LEN);
		rt->incs = rest;
		rt->nincs = unmapped;
		rest = NULL;
		rc = open_root(c, rt, o->target);
	}
out:
	free(rest);
	return rc;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int cf_restore_run(struct cf_repo *r, const struct cf_snapshot *s, const struct cf_restore_opts *o,
		   struct cf_restore_stats *st)
{
	struct rctx c;
	char **incs = NULL;
	size_t ninc = 0;
	pthread_t pg;
	bool pg_started = false;
	uint64_t total;
	int rc = CF_OK;

	memset(&c, 0, sizeof(c));
	memset(st, 0, sizeof(*st));
	c.repo = r;
	c.o = o;
	c.st = st;
	c.srcpaths = s->paths;
	c.nsrc = s->npaths;
	c.is_root = geteuid() == 0;
	c.pid = (int)getpid();
	pthread_mutex_init(&c.mu, NULL);
	pthread_mutex_init(&c.bh_mu, NULL);
	pthread_mutex_init(&c.rg_mu, NULL);
	pthread_cond_init(&c.rg_cond, NULL);
	pthread_cond_init(&c.pg_cond, NULL);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&c.stripes[i], NULL);
	c.phase = "restore";

	/* writers: one more than the CPUs, as they also wait for the disk
	 * (3 on 2 CPUs restored the benchmark corpus 5% faster than 4, with
	 * 6 MiB less memory); fetchers: enough reads or requests in flight */
	int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	bool local = !cf_be_remote(cf_repo_backend(r));
	c.nthreads = o->threads > 0 ? o->threads : (cpus > 0 ? cpus : 1) + 1;
	int nfetch = local ? FETCH_LOCAL : FETCH_REMOTE;
	c.streaming = !local && cf_be_streams(cf_repo_backend(r));
	if (c.streaming && o->threads > 0) /* its threads fetch and write */
		nfetch = o->threads;
	c.range_max = local ? RANGE_MAX_LOCAL : c.streaming ? RANGE_MAX_STREAM : RANGE_MAX;
	raise_fd_limit();

	if (!(incs = calloc(o->nincludes + 1, sizeof(*incs)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < o->nincludes; i++) {
		if (!(incs[ninc] = norm_path(o->includes[i]))) {
			rc = cf_err(CF_EINVAL, "--include %s: give an absolute snapshot path", o->includes[i]);
			goto out;
		}
		ninc++;
	}
	if ((rc = setup_roots(&c, s, incs, ninc)))
		goto out;
	if (o->progress && !pthread_create(&pg, NULL, progress_thread, &c))
		pg_started = true;

	/* 1. plan: directories, specials, deletions; what each file needs */
	for (size_t i = 0; i < c.nroots && !rc; i++) {
		struct rroot *rt = &c.roots[i];
		if (rt->has_tree)
			rc = plan_tree(&c, (uint32_t)i, rt->fd, rt->snap, "", rt->tree, false, false);
		else if (rt->fd >= 0) { /* an empty mapped directory: only extras to remove */
			struct cf_tree empty = CF_TREE_INIT;
			rc = plan_extras(&c, (uint32_t)i, rt->fd, rt->snap, "", &empty, false);
		}
	}
	if (rc)
		goto finish;

	/* 2. compare files already there */
	uint64_t ncheck = 0, bcheck = 0;
	for (size_t i = 0; i < c.nfiles; i++)
		if (c.files[i].state == F_CHECK) {
			ncheck++;
			bcheck += c.files[i].node.size;
		}
	set_phase(&c, "comparing", ncheck, bcheck);
	if (ncheck)
		parallel(&c, c.nfiles, check_one);
	if (atomic_load(&c.stop)) {
		rc = cf_err(CF_EINTR, "interrupted");
		goto finish;
	}
	for (size_t i = 0; i < c.nfiles; i++) {
		struct rfile *f = &c.files[i];
		if (f->state == F_KEEP && o->overwrite != CF_OVERWRITE_NEVER) {
			st->files_kept++;
			st->bytes_kept += f->node.size;
			list_action(&c, "keep", f->path, false, f->node.size);
		} else if (f->state == F_WRITE) {
			list_action(&c, f->existed ? "replace" : "create", f->path, false, f->node.size);
		} else if (f->state == F_LINK) {
			list_action(&c, "link", f->path, false, f->node.size);
		}
	}
	if (o->dry_run) {
		/* what would be written */
		for (size_t i = 0; i < c.nfiles; i++) {
			struct rfile *f = &c.files[i];
			if (f->state != F_WRITE)
				continue;
			if (f->existed)
				st->files_replaced++;
			else
				st->files_created++;
			st->bytes_written += f->node.size;
		}
		goto finish;
	}

	/* 3. write */
	if ((rc = plan_writes(&c, &total)))
		goto finish;
	uint64_t nwrite = 0;
	for (size_t i = 0; i < c.nfiles; i++)
		nwrite += c.files[i].state == F_WRITE;
	set_phase(&c, "restoring", nwrite, total);
	for (size_t i = 0; i < c.nfiles; i++) { /* empty files: nothing to fetch */
		struct rfile *f = &c.files[i];
		if (f->state == F_WRITE && f->remaining == 0 && !f->done)
			finish_file(&c, f);
	}
	int wrc = fetch_and_write(&c, nfetch);
	for (size_t i = 0; i < c.nfiles; i++) {
		struct rfile *f = &c.files[i];
		if (f->state != F_WRITE)
			continue;
		if (!f->done) { /* interrupted: leave nothing half-written */
			f->failed = true;
			finish_file(&c, f);
		}
	}
	behind_drain(&c);
	for (size_t i = 0; i < c.nfiles; i++)
		if (c.files[i].state == F_WRITE && c.files[i].failed)
			c.files[i].state = F_FAILED;
	if (wrc) {
		rc = wrc;
		goto finish;
	}
	if (atomic_load(&c.stop) || cf_interrupted) {
		rc = cf_err(CF_EINTR, "interrupted");
		goto finish;
	}
	for (size_t i = 0; i < c.nfiles; i++)
		if (c.files[i].state == F_LINK)
			link_one(&c, &c.files[i]);

	/* directory metadata last, deepest first, so writing into a directory
	 * does not disturb its times */
	for (size_t i = c.ndirs; i-- > 0;)
		if (c.dirs[i].has_ino)
			set_dir_meta(&c, c.dirs[i].root, c.dirs[i].rel, &c.dirs[i].node, c.dirs[i].dev,
				     c.dirs[i].ino);
	for (size_t i = 0; i < c.nroots; i++) {
		struct stat rst;
		if (c.roots[i].has_node && c.roots[i].fd >= 0 && fstat(c.roots[i].fd, &rst) == 0)
			set_dir_meta(&c, (uint32_t)i, "", &c.roots[i].node, (uint64_t)rst.st_dev,
				     (uint64_t)rst.st_ino);
	}

	if (o->verify) {
		uint64_t nv = 0, bv = 0;
		for (size_t i = 0; i < c.nfiles; i++)
			if (c.files[i].state != F_FAILED) {
				nv++;
				bv += c.files[i].node.size;
			}
		set_phase(&c, "verifying", nv, bv);
		parallel(&c, c.nfiles, verify_one);
		if (atomic_load(&c.stop)) {
			rc = cf_err(CF_EINTR, "interrupted");
			goto finish;
		}
	}

finish:
	behind_drain(&c);
	if (pg_started) {
		pthread_mutex_lock(&c.mu);
		c.pg_stop = true;
		pthread_cond_signal(&c.pg_cond);
		pthread_mutex_unlock(&c.mu);
		pthread_join(pg, NULL);
	}
	if (!rc && st->owner_unset)
		cf_warn("warning: not running as root: the owner of %llu entries was not restored "
			"(they belong to the restoring user)", (unsigned long long)st->owner_unset);
	if (!rc && st->errors)
		rc = cf_err(CF_EPARTIAL, "%llu entries could not be restored (named above)",
			    (unsigned long long)st->errors);
out:
	for (size_t i = 0; i < c.nfiles; i++) {
		close_tmp(&c, &c.files[i]);
		cf_node_release(&c.files[i].node);
		free(c.files[i].rel);
		free(c.files[i].path);
	}
	free(c.files);
	for (size_t i = 0; i < c.ndirs; i++) {
		free(c.dirs[i].rel);
		cf_node_release(&c.dirs[i].node);
	}
	free(c.dirs);
	for (size_t i = 0; i < c.nroots; i++) {
		struct rroot *rt = &c.roots[i];
		if (rt->fd >= 0)
			close(rt->fd);
		free(rt->dir);
		if (!rt->is_target)
			free((char *)rt->snap);
		free(rt->incs);
		cf_node_release(&rt->node);
	}
	free(c.roots);
	for (size_t i = 0; i < ninc; i++)
		free(incs[i]);
	free(incs);
	free(c.hl);
	free(c.uses);
	free(c.groups);
	for (size_t i = 0; i < c.nranges; i++)
		free(c.ranges[i].msg);
	free(c.ranges);
	free(c.bufs);
	free(c.freebufs);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_destroy(&c.stripes[i]);
	pthread_cond_destroy(&c.pg_cond);
	pthread_mutex_destroy(&c.bh_mu);
	pthread_mutex_destroy(&c.rg_mu);
	pthread_cond_destroy(&c.rg_cond);
	pthread_mutex_destroy(&c.mu);
	return rc;
}
