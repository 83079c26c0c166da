/*
 * dump.h - a snapshot, a sub-tree or one file written to a stream.
 *
 * `coffer dump` pulls data out of a repository without touching the local
 * file system: one file's bytes as they are (e.g. `dump latest /etc/passwd`
 * piped into less), or a tree as a tar or zip archive (through libarchive)
 * piped into `tar -x` or onto another host.
 *
 * Archive entries are named by their snapshot path without the leading '/'
 * ("var/lib/x/file"), the same layout `coffer restore --target DIR` makes
 * under DIR.  tar (POSIX pax) keeps type, permission bits, owner (numeric and
 * by name), nanosecond mtimes, symlink targets, hard links (the second and
 * later members of a group are link entries), device numbers and extended
 * attributes.  zip keeps modes, mtimes and symlinks; hard links are written
 * as separate files.  Directories come before what they hold.
 *
 * Content is read blob by blob: memory use is one blob, whatever the size of
 * the file.  A file whose data cannot be read stops the dump with an error
 * naming it (the stream is then incomplete; the caller reports failure).
 */
#ifndef CF_DUMP_H
#define CF_DUMP_H

#include "repo/repo.h"

enum cf_dump_format {
	CF_DUMP_RAW = 0, /* one file's bytes; a directory is written as tar */
	CF_DUMP_TAR,
	CF_DUMP_ZIP,
};

/* Parse "tar" or "zip".  CF_EINVAL with a message. */
int cf_dump_parse_format(const char *s, enum cf_dump_format *out);

/* Write path (an absolute snapshot path; NULL or "/" = the whole snapshot)
 * of snapshot s to fd.  r's index must be loaded.  CF_OK; CF_ENOENT when the
 * path is not in the snapshot; CF_EINVAL for CF_DUMP_RAW of something that is
 * not a file or directory; CF_EIO when writing fails (e.g. a closed pipe);
 * the repository's code (CF_ECORRUPT, ...) naming the file it could not read. */
int cf_dump(struct cf_repo *r, const struct cf_snapshot *s, const char *path,
	    enum cf_dump_format fmt, int fd);

#endif
