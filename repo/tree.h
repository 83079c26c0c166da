/*
 * tree.h - directory listings, the metadata half of a snapshot.
 *
 * Each directory of a backup is one tree blob: the list of its entries sorted
 * by name (bytewise), each with its type, metadata and either the ids of its
 * content chunks (files) or the id of its subtree (directories).  A tree blob
 * is encoded as JSON (jansson) so it can be read by a person and by later
 * versions; doc/repo-format.md gives the grammar.  Names and symlink targets
 * are raw bytes: valid UTF-8 goes into "name"/"linktarget", anything else
 * into "name_b64"/"linktarget_b64" (base64) so every byte survives.
 *
 * A decoded tree owns all its memory: cf_tree_release() frees it.  Decoding
 * never trusts its input: names that are empty, ".", ".." or contain '/' or
 * NUL, duplicates, unsorted entries, unknown types and malformed ids are
 * CF_ECORRUPT.
 */
#ifndef CF_TREE_H
#define CF_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/util.h"

enum cf_node_type {
	CF_NODE_FILE = 1,
	CF_NODE_DIR = 2,
	CF_NODE_SYMLINK = 3,
	CF_NODE_FIFO = 4,
	CF_NODE_CHARDEV = 5,
	CF_NODE_BLOCKDEV = 6,
	CF_NODE_SOCKET = 7,
};

struct cf_xattr {
	char *name;       /* NUL-terminated */
	uint8_t *value;   /* may hold any bytes */
	size_t len;
};

struct cf_node {
	char *name;              /* raw bytes, NUL-terminated (names cannot hold NUL) */
	int type;                /* enum cf_node_type */
	uint32_t mode;           /* permission bits incl. setuid/setgid/sticky (07777) */
	uint32_t uid, gid;
	char *user, *group;      /* NULL when unknown */
	uint64_t size;           /* file size in bytes */
	int64_t mtime_ns, atime_ns, ctime_ns;
	uint64_t dev, ino;       /* change detection and hardlink identity */
	uint32_t nlink;
	uint64_t rdev;           /* device nodes */
	char *linktarget;        /* symlinks: raw bytes, NUL-terminated */
	struct cf_xattr *xattrs;
	size_t nxattrs;
	uint8_t (*content)[CF_ID_LEN]; /* files: data blob ids in order */
	size_t ncontent;
	bool has_subtree;
	uint8_t subtree[CF_ID_LEN];    /* directories */
};

struct cf_tree {
	struct cf_node *nodes;
	size_t n, cap;
};

#define CF_TREE_INIT { NULL, 0, 0 }

/* Free every node's memory and the array; the tree is reinitialised. */
void cf_tree_release(struct cf_tree *t);
/* Free one node's memory (not the node itself). */
void cf_node_release(struct cf_node *n);

/* Append a zeroed node to t and return it (NULL on ENOMEM).  The caller fills
 * it with malloc'd strings/arrays that the tree then owns. */
struct cf_node *cf_tree_add(struct cf_tree *t);

/* Sort nodes by name (bytewise, as memcmp/strcmp on the raw names). */
void cf_tree_sort(struct cf_tree *t);

/* Find a node by name in a sorted tree (binary search); NULL if absent. */
const struct cf_node *cf_tree_find(const struct cf_tree *t, const char *name);

/* True if a and b encode to the same bytes: every field cf_tree_encode
 * writes for their type is equal (xattrs compared in order, so a different
 * order reads as a difference: a false "different" only costs an encode). */
bool cf_node_equal(const struct cf_node *a, const struct cf_node *b);

/* Encode a sorted tree as JSON into out (appended).  Deterministic: the same
 * tree always gives the same bytes (so identical directories dedup). */
int cf_tree_encode(const struct cf_tree *t, struct cf_buf *out);

/* Decode JSON into t (must be CF_TREE_INIT).  CF_ECORRUPT with a message on any
 * malformed input; t is released on failure. */
int cf_tree_decode(const void *p, size_t n, struct cf_tree *t);

/* True if name is acceptable as a directory entry name (non-empty, not "."
 * or "..", no '/'). */
bool cf_name_ok(const char *name);

/* Length (1 to 4) of the well-formed UTF-8 sequence that starts at p (n bytes
 * available), or 0 if none does: overlong forms, surrogates (U+D800-DFFF),
 * code points above U+10FFFF and truncated sequences are not well-formed.
 * This is the test that decides "name" versus "name_b64". */
size_t cf_utf8_len(const uint8_t *p, size_t n);

/* Copy a node with all its memory (dst is overwritten; caller frees it with
 * cf_node_release()).  CF_OK or CF_ENOMEM. */
int cf_tree_node_copy(const struct cf_node *src, struct cf_node *dst);

/* Find the node at an absolute snapshot path ("/a/b"; "/" is not a node)
 * below the root tree root (a snapshot's tree), loading the trees on the way
 * from r.  The node is copied into *out (caller frees with
 * cf_node_release()).  CF_ENOENT "<path> is not in the snapshot" when it is
 * not there, CF_EINVAL for the root, or the error of loading a tree. */
struct cf_repo;
int cf_tree_find_path(struct cf_repo *r, const uint8_t root[CF_ID_LEN], const char *path,
		      struct cf_node *out);

#endif
