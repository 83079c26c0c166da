/*
 * meta.c - what a node records of a file besides its content.
 *
 * eng_fill_node() turns an lstat() into a tree node: type, mode, ids and
 * their names, size, times, inode, device, symlink target and xattrs.
 * eng_excluded() is the --exclude test (a shell pattern on the whole path
 * or on the name); eng_excluded_stat() the tests that need the lstat
 * (--exclude-larger-than, --exclude-if-present).
 *
 * Invariants: atime is not recorded (an unchanged directory must give the
 * same tree blob every time); the user and group name caches are shared by
 * every thread and guarded by their own mutex; xattrs are read only when
 * the parent snapshot's node cannot vouch that there are none.
 */
#include "engine/engine_int.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static char *dupstr(const char *s)
{
	return s ? strdup(s) : NULL;
}

int eng_node_type(mode_t m)
{
	if (S_ISREG(m)) return CF_NODE_FILE;
	if (S_ISDIR(m)) return CF_NODE_DIR;
	if (S_ISLNK(m)) return CF_NODE_SYMLINK;
	if (S_ISFIFO(m)) return CF_NODE_FIFO;
	if (S_ISCHR(m)) return CF_NODE_CHARDEV;
	if (S_ISBLK(m)) return CF_NODE_BLOCKDEV;
	return CF_NODE_SOCKET;
}

static int read_xattrs(const char *path, struct cf_node *n)
{
	char list[16384];
	ssize_t len = llistxattr(path, list, sizeof(list));
	if (len <= 0)
		return CF_OK; /* none, or not supported here */
	for (ssize_t off = 0; off < len; off += (ssize_t)strlen(list + off) + 1) {
		const char *name = list + off;
		ssize_t vl = lgetxattr(path, name, NULL, 0);
		if (vl < 0)
			continue;
		uint8_t *v = malloc(vl ? (size_t)vl : 1);
		if (!v)
			return cf_err(CF_ENOMEM, "out of memory");
		vl = lgetxattr(path, name, v, (size_t)vl);
		if (vl < 0) {
			free(v);
			continue;
		}
		void *nx = realloc(n->xattrs, (n->nxattrs + 1) * sizeof(*n->xattrs));
		if (!nx) {
			free(v);
			return cf_err(CF_ENOMEM, "out of memory");
		}
		n->xattrs = nx;
		n->xattrs[n->nxattrs].name = strdup(name);
		n->xattrs[n->nxattrs].value = v;
		n->xattrs[n->nxattrs].len = (size_t)vl;
		if (!n->xattrs[n->nxattrs].name) {
			free(v);
			return cf_err(CF_ENOMEM, "out of memory");
		}
		n->nxattrs++;
	}
	return CF_OK;
}

/* uid/gid -> name caches: a lookup parses /etc/passwd (or asks NSS), far too
 * slow to repeat for every file of a volume that has two or three owners */
#define NAME_CACHE 16
struct name_cache {
	pthread_mutex_t mu;
	unsigned id[NAME_CACHE];
	char name[NAME_CACHE][256];
	bool known[NAME_CACHE], used[NAME_CACHE];
	unsigned next;
};
static struct name_cache ucache = { .mu = PTHREAD_MUTEX_INITIALIZER };
static struct name_cache gcache = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char *cached_name(struct name_cache *nc, unsigned id, char *buf, size_t len,
			       const char *(*lookup)(unsigned, char *, size_t))
{
	pthread_mutex_lock(&nc->mu);
	for (int i = 0; i < NAME_CACHE; i++)
		if (nc->used[i] && nc->id[i] == id) {
			bool known = nc->known[i];
			if (known)
				snprintf(buf, len, "%s", nc->name[i]);
			pthread_mutex_unlock(&nc->mu);
			return known ? buf : NULL;
		}
	pthread_mutex_unlock(&nc->mu);
	const char *r = lookup(id, buf, len);
	pthread_mutex_lock(&nc->mu);
	unsigned k = nc->next++ % NAME_CACHE;
	nc->used[k] = true;
	nc->id[k] = id;
	nc->known[k] = r != NULL;
	snprintf(nc->name[k], sizeof(nc->name[k]), "%s", r ? r : "");
	pthread_mutex_unlock(&nc->mu);
	return r;
}

static const char *user_lookup(unsigned uid, char *buf, size_t len);
static const char *group_lookup(unsigned gid, char *buf, size_t len);

const char *eng_user_name(uid_t uid, char *buf, size_t len)
{
	return cached_name(&ucache, uid, buf, len, user_lookup);
}

static const char *group_name(gid_t gid, char *buf, size_t len)
{
	return cached_name(&gcache, gid, buf, len, group_lookup);
}

static const char *user_lookup(unsigned uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res) {
		snprintf(buf, len, "%s", pw.pw_name);
		return buf;
	}
	return NULL;
}

static const char *group_lookup(unsigned gid, char *buf, size_t len)
{
	struct group gr, *res = NULL;
	char tmp[1024];
	if (getgrgid_r(gid, &gr, tmp, sizeof(tmp), &res) == 0 && res) {
		snprintf(buf, len, "%s", gr.gr_name);
		return buf;
	}
	return NULL;
}

int64_t eng_ts_ns(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* old: the same name in the parent snapshot, or NULL */
int eng_fill_node(const char *path, const char *name, const struct stat *st,
		  const struct cf_node *old, struct cf_node *n)
{
	char ub[256], gb[256];
	n->name = strdup(name);
	if (!n->name)
		return cf_err(CF_ENOMEM, "out of memory");
	n->type = eng_node_type(st->st_mode);
	n->mode = st->st_mode & 07777;
	n->uid = st->st_uid;
	n->gid = st->st_gid;
	n->user = dupstr(eng_user_name(st->st_uid, ub, sizeof(ub)));
	n->group = dupstr(group_name(st->st_gid, gb, sizeof(gb)));
	n->size = n->type == CF_NODE_FILE ? (uint64_t)st->st_size : 0;
	n->mtime_ns = eng_ts_ns(st->st_mtim);
	/* atime is not recorded: reading a directory changes it, and an
	 * unchanged directory must give the same tree blob every time */
	n->atime_ns = n->mtime_ns;
	n->ctime_ns = eng_ts_ns(st->st_ctim);
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->nlink = (uint32_t)st->st_nlink;
	if (n->type == CF_NODE_CHARDEV || n->type == CF_NODE_BLOCKDEV)
		n->rdev = st->st_rdev;
	if (n->type == CF_NODE_SYMLINK) {
		char target[8192];
		ssize_t k = readlink(path, target, sizeof(target) - 1);
		if (k < 0)
			return cf_err_errno("readlink %s", path);
		target[k] = 0;
		if (!(n->linktarget = strdup(target)))
			return cf_err(CF_ENOMEM, "out of memory");
	}
	/* Setting or removing an xattr changes the ctime: an inode that had
	 * none in the parent snapshot and kept its ctime still has none: the
	 * llistxattr call is saved (doc/benchmarks.md). */
	if (old && old->nxattrs == 0 && old->type == n->type && old->ino == n->ino &&
	    old->dev == n->dev && old->ctime_ns == n->ctime_ns)
		return CF_OK;
	return read_xattrs(path, n);
}

bool eng_excluded(const struct ctx *c, const char *path, const char *name)
{
	for (size_t i = 0; i < c->o->nexcludes; i++) {
		const char *pat = c->o->excludes[i];
		if (fnmatch(pat, path, 0) == 0 || fnmatch(pat, name, 0) == 0)
			return true;
	}
	return false;
}

/* Does directory dir hold marker spec ("NAME" or "NAME:HEADER")? */
static bool has_marker(const char *dir, const char *spec)
{
	const char *colon = strchr(spec, ':');
	size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
	char *p = malloc(strlen(dir) + nlen + 2);
	if (!p)
		return false;
	sprintf(p, "%s/%.*s", dir, (int)nlen, spec);
	bool found;
	if (!colon) {
		struct stat st;
		found = lstat(p, &st) == 0;
	} else {
		/* the header must start the file: read exactly its length */
		size_t hlen = strlen(colon + 1);
		char *buf = malloc(hlen + 1);
		int fd = buf ? open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK) : -1;
		size_t got = 0;
		while (fd >= 0 && got < hlen) {
			ssize_t k = read(fd, buf + got, hlen - got);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		found = fd >= 0 && got == hlen && memcmp(buf, colon + 1, hlen) == 0;
		if (fd >= 0)
			close(fd);
		free(buf);
	}
	free(p);
	return found;
}

bool eng_excluded_stat(const struct ctx *c, const char *path, const struct stat *st)
{
	if (c->o->exclude_larger_than && S_ISREG(st->st_mode) &&
	    (uint64_t)st->st_size > c->o->exclude_larger_than)
		return true;
	if (S_ISDIR(st->st_mode))
		for (size_t i = 0; i < c->o->nexclude_if_present; i++)
			if (has_marker(path, c->o->exclude_if_present[i]))
				return true;
	return false;
}
