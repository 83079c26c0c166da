/*
 * fsat.c - see fsat.h.
 *
 * The openat2 path and the component walk refuse the same things; the walk
 * is also what names a failure precisely when openat2 says only EXDEV or
 * EAGAIN.  A kernel or a seccomp filter that refuses openat2 (ENOSYS,
 * EPERM, E2BIG) is remembered, so the walk is not preceded by a failing
 * call every time.
 */
#include "common/fsat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"

static _Atomic int no_openat2; /* the kernel or a seccomp filter refuses it */

int cf_fsat_open(int rootfd, const char *rel, int flags)
{
	/* one call instead of one per component (doc/benchmarks.md) */
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

int cf_fsat_open_dir(int rootfd, const char *rel, int flags)
{
	return cf_fsat_open(rootfd, rel, flags | O_DIRECTORY);
}

bool cf_fsat_same_inode(const struct stat *st, uint64_t dev, uint64_t ino, mode_t type)
{
	return (uint64_t)st->st_dev == dev && (uint64_t)st->st_ino == ino &&
	       (st->st_mode & S_IFMT) == (type & S_IFMT);
}

int cf_fsat_reopen(int pfd, int flags)
{
	char p[32];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", pfd);
	return open(p, flags | O_CLOEXEC | O_NOCTTY);
}

int cf_fsat_remove(int dirfd, const char *name, const char *path)
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
		char *sub;
		if (asprintf(&sub, "%s%s%s", path, *path ? "/" : "", de->d_name) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		rc = cf_fsat_remove(fd, de->d_name, sub);
		free(sub);
	}
	closedir(d);
	close(fd);
	if (!rc && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = cf_err_errno("%s: remove directory", path);
	return rc;
}
