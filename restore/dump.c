/* dump.c - see dump.h. */
#include "restore/dump.h"
#include "common/array.h"
#include "restore/restore.h"
#include "repo/tree.h"
#include "common/error.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct dctx {
	struct cf_repo *repo;
	struct archive *a;
	bool zip;
	struct cf_buf blob;
	/* first archived path of each multiply-linked inode */
	struct { uint64_t dev, ino; char *path; } *hl;
	size_t nhl, hlcap;
};

int cf_dump_parse_format(const char *s, enum cf_dump_format *out)
{
	if (!strcmp(s, "tar"))
		*out = CF_DUMP_TAR;
	else if (!strcmp(s, "zip"))
		*out = CF_DUMP_ZIP;
	else
		return cf_err(CF_EINVAL, "--archive wants tar or zip, not '%s'", s);
	return CF_OK;
}

static int arch_err(struct dctx *d, const char *what)
{
	const char *m = archive_error_string(d->a);
	return cf_err(CF_EIO, "%s: %s", what, m ? m : "archive write failed");
}

static mode_t type_bits(int type)
{
	switch (type) {
	case CF_NODE_DIR: return AE_IFDIR;
	case CF_NODE_SYMLINK: return AE_IFLNK;
	case CF_NODE_FIFO: return AE_IFIFO;
	case CF_NODE_CHARDEV: return AE_IFCHR;
	case CF_NODE_BLOCKDEV: return AE_IFBLK;
	case CF_NODE_SOCKET: return AE_IFSOCK;
	default: return AE_IFREG;
	}
}

/* Stream a file's blobs through write(p, n) in order. */
static int file_data(struct dctx *d, const struct cf_node *n, const char *path, int fd)
{
	int rc;
	for (size_t i = 0; i < n->ncontent; i++) {
		if ((rc = cf_repo_load_blob(d->repo, CF_BLOB_DATA, n->content[i], &d->blob)))
			return cf_err_prefix(rc, "/%s", path);
		if (fd >= 0) {
			if (cf_write_full(fd, d->blob.data, d->blob.len) < 0)
				return cf_err_errno("write to output");
		} else if (archive_write_data(d->a, d->blob.data, d->blob.len) != (la_ssize_t)d->blob.len) {
			return arch_err(d, path);
		}
		if (cf_interrupted)
			return cf_err(CF_EINTR, "interrupted");
	}
	return CF_OK;
}

static int dump_tree(struct dctx *d, const uint8_t id[CF_ID_LEN], const char *prefix);

/* One node as an archive entry named path (no leading '/'). */
static int dump_node(struct dctx *d, const struct cf_node *n, const char *path)
{
	struct archive_entry *e;
	bool link = false;
	int rc = CF_OK;

	if (n->type == CF_NODE_SOCKET && d->zip)
		return CF_OK;
	if (!(e = archive_entry_new()))
		return cf_err(CF_ENOMEM, "out of memory");
	archive_entry_set_pathname(e, path);
	archive_entry_set_mode(e, type_bits(n->type) | (n->mode & 07777));
	archive_entry_set_uid(e, n->uid);
	archive_entry_set_gid(e, n->gid);
	if (n->user)
		archive_entry_set_uname(e, n->user);
	if (n->group)
		archive_entry_set_gname(e, n->group);
	archive_entry_set_mtime(e, (time_t)(n->mtime_ns / 1000000000), n->mtime_ns % 1000000000);
	archive_entry_set_atime(e, (time_t)(n->atime_ns / 1000000000), n->atime_ns % 1000000000);
	for (size_t i = 0; i < n->nxattrs; i++)
		archive_entry_xattr_add_entry(e, n->xattrs[i].name, n->xattrs[i].value, n->xattrs[i].len);
	if (n->type == CF_NODE_SYMLINK)
		archive_entry_set_symlink(e, n->linktarget ? n->linktarget : "");
	if (n->type == CF_NODE_CHARDEV || n->type == CF_NODE_BLOCKDEV)
		archive_entry_set_rdev(e, (dev_t)n->rdev);
	if (n->type == CF_NODE_FILE) {
		archive_entry_set_size(e, (la_int64_t)n->size);
		if (n->nlink > 1 && !d->zip) {
			for (size_t i = 0; i < d->nhl && !link; i++)
				if (d->hl[i].dev == n->dev && d->hl[i].ino == n->ino) {
					archive_entry_set_hardlink(e, d->hl[i].path);
					archive_entry_set_size(e, 0);
					link = true;
				}
			if (!link) {
				if ((rc = CF_GROW(d->hl, d->nhl + 1, d->hlcap)))
					goto out;
				if (!(d->hl[d->nhl].path = strdup(path))) {
					rc = cf_err(CF_ENOMEM, "out of memory");
					goto out;
				}
				d->hl[d->nhl].dev = n->dev;
				d->hl[d->nhl].ino = n->ino;
				d->nhl++;
			}
		}
	}
	int w = archive_write_header(d->a, e);
	if (w < ARCHIVE_WARN) {
		rc = arch_err(d, path);
		goto out;
	}
	if (n->type == CF_NODE_FILE && !link && (rc = file_data(d, n, path, -1)))
		goto out;
	if (n->type == CF_NODE_DIR && n->has_subtree)
		rc = dump_tree(d, n->subtree, path);
out:
	archive_entry_free(e);
	return rc;
}

static int dump_tree(struct dctx *d, const uint8_t id[CF_ID_LEN], const char *prefix)
{
	struct cf_tree t = CF_TREE_INIT;
	int rc = cf_repo_load_tree(d->repo, id, &t);
	if (rc)
		return cf_err_prefix(rc, "/%s", prefix);
	for (size_t i = 0; i < t.n && !rc; i++) {
		char *p;
		if (!cf_name_ok(t.nodes[i].name)) {
			rc = cf_err(CF_ECORRUPT, "/%s: the snapshot holds an entry with an unsafe name", prefix);
			break;
		}
		if (asprintf(&p, "%s%s%s", prefix, *prefix ? "/" : "", t.nodes[i].name) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		rc = dump_node(d, &t.nodes[i], p);
		free(p);
	}
	cf_tree_release(&t);
	return rc;
}

int cf_dump(struct cf_repo *r, const struct cf_snapshot *s, const char *path,
	    enum cf_dump_format fmt, int fd)
{
	struct dctx d;
	struct cf_node node;
	bool whole = !path || !path[strspn(path, "/")];
	int rc = CF_OK;

	memset(&d, 0, sizeof(d));
	memset(&node, 0, sizeof(node));
	d.repo = r;
	d.blob = (struct cf_buf)CF_BUF_INIT;
	if (!whole && (rc = cf_tree_find_path(r, s->tree, path, &node)))
		return rc;
	if (fmt == CF_DUMP_RAW) {
		if (!whole && node.type == CF_NODE_FILE) {
			rc = file_data(&d, &node, path + strspn(path, "/"), fd);
			goto out;
		}
		if (!whole && node.type != CF_NODE_DIR) {
			rc = cf_err(CF_EINVAL, "%s is not a file or directory: use --archive tar", path);
			goto out;
		}
		fmt = CF_DUMP_TAR;
	}
	d.zip = fmt == CF_DUMP_ZIP;
	if (!(d.a = archive_write_new())) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if ((d.zip ? archive_write_set_format_zip(d.a) : archive_write_set_format_pax(d.a)) != ARCHIVE_OK ||
	    archive_write_open_fd(d.a, fd) != ARCHIVE_OK) {
		rc = arch_err(&d, "open archive");
		goto out;
	}
	if (whole) {
		rc = dump_tree(&d, s->tree, "");
	} else {
		/* entries keep their snapshot path, as restore lays them out */
		const char *rel = path + strspn(path, "/");
		char *p = strdup(rel);
		if (!p) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		size_t l = strlen(p);
		while (l > 0 && p[l - 1] == '/')
			p[--l] = 0;
		rc = dump_node(&d, &node, p);
		free(p);
	}
	if (!rc && archive_write_close(d.a) != ARCHIVE_OK)
		rc = arch_err(&d, "finish archive");
out:
	if (d.a) {
		if (rc) /* no end-of-archive marker after a failure: the stream must look cut */
			archive_write_fail(d.a);
		archive_write_free(d.a);
	}
	for (size_t i = 0; i < d.nhl; i++)
		free(d.hl[i].path);
	free(d.hl);
	cf_buf_release(&d.blob);
	cf_node_release(&node);
	return rc;
}
