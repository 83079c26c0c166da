/*
 * fsat.h - opening and removing beneath a directory, never through a symlink.
 *
 * Code that changes a directory tree someone else can write to (restore
 * writes over live volumes) must not be led out of it by a symlink swapped
 * in between a check and a use.  These helpers take a directory descriptor
 * and a relative path and refuse any symlink on the way, the last component
 * included (ELOOP or ENOTDIR, never a detour), and anything outside the
 * directory: one openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where the
 * kernel (5.6+) and any seccomp filter allow it, else a walk of
 * openat(O_NOFOLLOW) one component at a time.
 *
 * Once an O_PATH descriptor of a node is held and checked (cf_fsat_same_inode),
 * cf_fsat_reopen() opens that very inode, whatever its name leads to by then.
 *
 * Functions returning a descriptor return -1 with errno on failure (the
 * caller names the path in its message); cf_fsat_remove() sets a message.
 */
#ifndef CF_FSAT_H
#define CF_FSAT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* Open rel ("" = dirfd itself) beneath dirfd with flags (O_PATH, O_RDONLY,
 * ...; O_DIRECTORY for a directory; O_CLOEXEC and O_NOFOLLOW are added),
 * through no symlink.  With O_PATH a symlink as the last component is
 * opened as itself.  A descriptor, or -1 with errno. */
int cf_fsat_open(int dirfd, const char *rel, int flags);

/* Open directory rel beneath dirfd (cf_fsat_open with O_DIRECTORY).  flags:
 * O_PATH or O_RDONLY. */
int cf_fsat_open_dir(int dirfd, const char *rel, int flags);

/* Is st the inode expected: the same device, inode number and type
 * (type & S_IFMT)? */
bool cf_fsat_same_inode(const struct stat *st, uint64_t dev, uint64_t ino, mode_t type);

/* Open, with flags, the very inode the O_PATH descriptor pfd refers to,
 * whatever name it has now: through its /proc/self/fd link.  -1 with errno;
 * ENOENT when /proc is not mounted. */
int cf_fsat_reopen(int pfd, int flags);

/* Remove name (recursively if a directory: rm -rf) from dirfd without
 * following any symlink: directories are entered with O_NOFOLLOW, a symlink
 * is unlinked as itself.  path names name in messages.  CF_OK (also when
 * name is not there) or an error naming path (or an entry below it). */
int cf_fsat_remove(int dirfd, const char *name, const char *path);

#endif
