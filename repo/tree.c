/*
 * tree.c - the tree blob codec (see tree.h; grammar in doc/repo-format.md).
 *
 * The encoder refuses what the decoder would refuse (unsorted or duplicate
 * names, bad names, mode bits outside 07777, ...), so every tree it writes
 * reads back, and a decoded tree re-encodes to the same bytes.  Both sides
 * keep one spelling of each value: lowercase hex ids, "name" for well-formed
 * UTF-8 and "name_b64" only for anything else, xattrs sorted by name.
 *
 * JSON integers are signed 64-bit in jansson; dev, inode and rdev are uint64,
 * so they are stored as the int64 with the same bit pattern (a device number
 * above 2^63 appears negative in the JSON) and cast back when read.
 */
#include "repo/tree.h"
#include "common/array.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "crypto/crypto.h"
#include "repo/repo.h"

/* Bounds that keep allocation sizes far from overflow whatever the input
 * says; real directories and files stay well below them (2^26 content ids
 * is 64 PiB at the smallest chunk size). */
#define MAX_NODES (1u << 24)
#define MAX_CONTENT (1u << 26)
#define MAX_XATTRS (1u << 16)

static const char *const type_names[] = {
	[CF_NODE_FILE] = "file",
	[CF_NODE_DIR] = "dir",
	[CF_NODE_SYMLINK] = "symlink",
	[CF_NODE_FIFO] = "fifo",
	[CF_NODE_CHARDEV] = "chardev",
	[CF_NODE_BLOCKDEV] = "blockdev",
	[CF_NODE_SOCKET] = "socket",
};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

/* ---- memory ---------------------------------------------------------- */

void cf_node_release(struct cf_node *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->user);
	free(n->group);
	free(n->linktarget);
	for (size_t i = 0; i < n->nxattrs; i++) {
		free(n->xattrs[i].name);
		free(n->xattrs[i].value);
	}
	free(n->xattrs);
	free(n->content);
	memset(n, 0, sizeof(*n));
}

void cf_tree_release(struct cf_tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		cf_node_release(&t->nodes[i]);
	free(t->nodes);
	t->nodes = NULL;
	t->n = t->cap = 0;
}

struct cf_node *cf_tree_add(struct cf_tree *t)
{
	if (CF_GROW(t->nodes, t->n + 1, t->cap))
		return NULL;
	memset(&t->nodes[t->n], 0, sizeof(t->nodes[0]));
	return &t->nodes[t->n++];
}

static int node_cmp(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: the bytewise order of tree.h. */
	return strcmp(((const struct cf_node *)a)->name, ((const struct cf_node *)b)->name);
}

void cf_tree_sort(struct cf_tree *t)
{
	if (t->n > 1)
		qsort(t->nodes, t->n, sizeof(t->nodes[0]), node_cmp);
}

const struct cf_node *cf_tree_find(const struct cf_tree *t, const char *name)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, t->nodes[mid].name);

		if (c == 0)
			return &t->nodes[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

bool cf_node_equal(const struct cf_node *a, const struct cf_node *b)
{
	if (a->type != b->type || a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
	    a->mtime_ns != b->mtime_ns || a->atime_ns != b->atime_ns ||
	    a->ctime_ns != b->ctime_ns || a->dev != b->dev || a->ino != b->ino ||
	    a->nlink != b->nlink || a->nxattrs != b->nxattrs || !str_eq(a->name, b->name) ||
	    !str_eq(a->user, b->user) || !str_eq(a->group, b->group))
		return false;
	switch (a->type) {
	case CF_NODE_FILE:
		if (a->size != b->size || a->ncontent != b->ncontent ||
		    (a->ncontent && memcmp(a->content, b->content, a->ncontent * CF_ID_LEN)))
			return false;
		break;
	case CF_NODE_DIR:
		if (a->has_subtree != b->has_subtree ||
		    (a->has_subtree && memcmp(a->subtree, b->subtree, CF_ID_LEN)))
			return false;
		break;
	case CF_NODE_SYMLINK:
		if (!str_eq(a->linktarget, b->linktarget))
			return false;
		break;
	case CF_NODE_CHARDEV:
	case CF_NODE_BLOCKDEV:
		if (a->rdev != b->rdev)
			return false;
		break;
	}
	for (size_t i = 0; i < a->nxattrs; i++)
		if (!str_eq(a->xattrs[i].name, b->xattrs[i].name) || a->xattrs[i].len != b->xattrs[i].len ||
		    (a->xattrs[i].len && memcmp(a->xattrs[i].value, b->xattrs[i].value, a->xattrs[i].len)))
			return false;
	return true;
}

/* ---- names ----------------------------------------------------------- */

bool cf_name_ok(const char *name)
{
	return name && name[0] && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	       !strchr(name, '/');
}

size_t cf_utf8_len(const uint8_t *p, size_t n)
{
	uint8_t c, lo = 0x80, hi = 0xbf;
	size_t need;

	if (n == 0)
		return 0;
	c = p[0];
	if (c < 0x80)
		return 1;
	if (c < 0xc2)          /* a continuation byte, or an overlong 2-byte form */
		return 0;
	if (c < 0xe0) {
		need = 1;
	} else if (c < 0xf0) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;     /* overlong */
		if (c == 0xed)
			hi = 0x9f;     /* surrogates */
	} else if (c < 0xf5) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;     /* overlong */
		if (c == 0xf4)
			hi = 0x8f;     /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n <= need || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i <= need; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return need + 1;
}

static bool utf8_ok(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;

	while (n) {
		size_t l = cf_utf8_len(p, n);

		if (!l)
			return false;
		p += l;
		n -= l;
	}
	return true;
}

/* ---- encoding -------------------------------------------------------- */

static int enomem(void)
{
	return cf_err(CF_ENOMEM, "out of memory encoding a tree");
}

/* Set o[key] = v, taking v (which may be NULL after a failed allocation). */
static int put(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new(o, key, v) == 0 ? CF_OK : enomem();
}

/* Bytes as key (well-formed UTF-8) or key_b64 (anything else). */
static int put_bytes(json_t *o, const char *key, const char *key_b64, const char *s, size_t n)
{
	struct cf_buf b = CF_BUF_INIT;
	int r;

	if (utf8_ok(s, n))
		return put(o, key, json_stringn(s, n));
	if ((r = cf_base64(s, n, &b)) != CF_OK)
		goto out;
	r = put(o, key_b64, json_stringn((const char *)b.data, b.len));
out:
	cf_buf_release(&b);
	return r;
}

static int put_id(json_t *o, const char *key, const uint8_t id[CF_ID_LEN])
{
	char hex[CF_ID_HEX];

	cf_hex(id, CF_ID_LEN, hex);
	return put(o, key, json_string(hex));
}

static int put_int(json_t *o, const char *key, int64_t v)
{
	return put(o, key, json_integer((json_int_t)v));
}

/* Bit pattern of a uint64 as an int64, defined without relying on the
 * implementation-defined conversion of out-of-range values. */
static int64_t u2i(uint64_t v)
{
	int64_t i;

	memcpy(&i, &v, sizeof(i));
	return i;
}

static uint64_t i2u(int64_t v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

static int xattr_idx_cmp(const void *a, const void *b, void *ctx)
{
	const struct cf_xattr *x = ctx;

	return strcmp(x[*(const size_t *)a].name, x[*(const size_t *)b].name);
}

static int encode_xattrs(const struct cf_node *nd, size_t idx, json_t *o)
{
	size_t *order = NULL;
	json_t *arr = NULL, *e;
	struct cf_buf b = CF_BUF_INIT;
	int r;

	if (nd->nxattrs > MAX_XATTRS) {
		r = cf_err(CF_EINVAL, "tree: node %zu: too many xattrs (%zu)", idx, nd->nxattrs);
		goto out;
	}
	order = malloc(nd->nxattrs * sizeof(*order));
	arr = json_array();
	if (!order || !arr) {
		r = enomem();
		goto out;
	}
	for (size_t i = 0; i < nd->nxattrs; i++) {
		if (!nd->xattrs[i].name || !nd->xattrs[i].name[0] ||
		    (nd->xattrs[i].len && !nd->xattrs[i].value)) {
			r = cf_err(CF_EINVAL, "tree: node %zu: xattr %zu has no name or value", idx, i);
			goto out;
		}
		order[i] = i;
	}
	/* The file system lists xattrs in no particular order; sorting keeps
	 * identical directories byte-identical. */
	qsort_r(order, nd->nxattrs, sizeof(*order), xattr_idx_cmp, nd->xattrs);
	for (size_t k = 0; k < nd->nxattrs; k++) {
		const struct cf_xattr *x = &nd->xattrs[order[k]];

		if (k && strcmp(nd->xattrs[order[k - 1]].name, x->name) == 0) {
			r = cf_err(CF_EINVAL, "tree: node %zu: duplicate xattr name", idx);
			goto out;
		}
		if (!(e = json_object()) || json_array_append_new(arr, e) != 0) {
			r = enomem();
			goto out;
		}
		if ((r = put_bytes(e, "name", "name_b64", x->name, strlen(x->name))) != CF_OK)
			goto out;
		cf_buf_reset(&b);
		if ((r = cf_base64(x->value, x->len, &b)) != CF_OK ||
		    (r = put(e, "value_b64", json_stringn((const char *)b.data, b.len))) != CF_OK)
			goto out;
	}
	r = put(o, "xattrs", arr);
	arr = NULL;
out:
	cf_buf_release(&b);
	free(order);
	json_decref(arr);
	return r;
}

static int encode_content(const struct cf_node *nd, size_t idx, json_t *o)
{
	json_t *arr;
	char hex[CF_ID_HEX];

	if (nd->ncontent > MAX_CONTENT || (nd->ncontent && !nd->content))
		return cf_err(CF_EINVAL, "tree: node %zu: bad content list (%zu ids)", idx, nd->ncontent);
	if (!(arr = json_array()))
		return enomem();
	for (size_t i = 0; i < nd->ncontent; i++) {
		cf_hex(nd->content[i], CF_ID_LEN, hex);
		if (json_array_append_new(arr, json_string(hex)) != 0) {
			json_decref(arr);
			return enomem();
		}
	}
	return put(o, "content", arr);
}

/* The fields in their fixed order: the order is part of the bytes, and the
 * bytes decide dedup of identical directories. */
static int encode_node(const struct cf_node *nd, size_t idx, json_t *o)
{
	int r;

	if (nd->type < 1 || (size_t)nd->type >= NTYPES)
		return cf_err(CF_EINVAL, "tree: node %zu: unknown type %d", idx, nd->type);
	if (nd->mode & ~07777u)
		return cf_err(CF_EINVAL, "tree: node %zu: mode %#o has bits outside 07777", idx,
			      nd->mode);
	if (nd->type == CF_NODE_FILE && nd->size > INT64_MAX)
		return cf_err(CF_EINVAL, "tree: node %zu: size too large", idx);
	if (nd->type == CF_NODE_SYMLINK && !nd->linktarget)
		return cf_err(CF_EINVAL, "tree: node %zu: symlink without target", idx);

	if ((r = put_bytes(o, "name", "name_b64", nd->name, strlen(nd->name))) != CF_OK ||
	    (r = put(o, "type", json_string(type_names[nd->type]))) != CF_OK ||
	    (r = put_int(o, "mode", nd->mode)) != CF_OK ||
	    (r = put_int(o, "uid", nd->uid)) != CF_OK ||
	    (r = put_int(o, "gid", nd->gid)) != CF_OK)
		return r;
	/* A user or group name that is not UTF-8 is left out: uid/gid stay
	 * authoritative and the name is only a hint for restoring elsewhere. */
	if (nd->user && utf8_ok(nd->user, strlen(nd->user)) &&
	    (r = put(o, "user", json_string(nd->user))) != CF_OK)
		return r;
	if (nd->group && utf8_ok(nd->group, strlen(nd->group)) &&
	    (r = put(o, "group", json_string(nd->group))) != CF_OK)
		return r;
	if (nd->type == CF_NODE_FILE && (r = put_int(o, "size", (int64_t)nd->size)) != CF_OK)
		return r;
	if ((r = put_int(o, "mtime", nd->mtime_ns)) != CF_OK ||
	    (r = put_int(o, "atime", nd->atime_ns)) != CF_OK ||
	    (r = put_int(o, "ctime", nd->ctime_ns)) != CF_OK ||
	    (r = put_int(o, "dev", u2i(nd->dev))) != CF_OK ||
	    (r = put_int(o, "inode", u2i(nd->ino))) != CF_OK ||
	    (r = put_int(o, "links", nd->nlink)) != CF_OK)
		return r;
	if ((nd->type == CF_NODE_CHARDEV || nd->type == CF_NODE_BLOCKDEV) &&
	    (r = put_int(o, "rdev", u2i(nd->rdev))) != CF_OK)
		return r;
	if (nd->type == CF_NODE_SYMLINK &&
	    (r = put_bytes(o, "linktarget", "linktarget_b64", nd->linktarget,
			   strlen(nd->linktarget))) != CF_OK)
		return r;
	if (nd->nxattrs && (r = encode_xattrs(nd, idx, o)) != CF_OK)
		return r;
	if (nd->type == CF_NODE_FILE && (r = encode_content(nd, idx, o)) != CF_OK)
		return r;
	if (nd->type == CF_NODE_DIR && nd->has_subtree && (r = put_id(o, "subtree", nd->subtree)) != CF_OK)
		return r;
	return CF_OK;
}

/* jansson 2.14 ignores a failed write of an object key and dumps on, so
 * one failed allocation would yield bytes that are not JSON under a
 * success: a failure here is sticky, the next write fails the dump too, and
 * the caller checks the flag as well. */
struct dump_ctx {
	struct cf_buf *out;
	bool failed;
};

static int dump_cb(const char *p, size_t n, void *data)
{
	struct dump_ctx *d = data;
	if (d->failed || cf_buf_add(d->out, p, n) != CF_OK) {
		d->failed = true;
		return -1;
	}
	return 0;
}

int cf_tree_encode(const struct cf_tree *t, struct cf_buf *out)
{
	json_t *root = json_object(), *nodes = json_array(), *o;
	size_t oldlen = out->len;
	int r;

	if (!root || !nodes || json_object_set(root, "nodes", nodes) != 0) {
		r = enomem();
		goto out;
	}
	if (t->n > MAX_NODES) {
		r = cf_err(CF_EINVAL, "tree: too many nodes (%zu)", t->n);
		goto out;
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct cf_node *nd = &t->nodes[i];

		if (!cf_name_ok(nd->name)) {
			r = cf_err(CF_EINVAL, "tree: node %zu: invalid name", i);
			goto out;
		}
		if (i && strcmp(t->nodes[i - 1].name, nd->name) >= 0) {
			r = cf_err(CF_EINVAL, "tree: node %zu: names %s", i,
				   strcmp(t->nodes[i - 1].name, nd->name) ? "not sorted" : "duplicated");
			goto out;
		}
		if (!(o = json_object()) || json_array_append_new(nodes, o) != 0) {
			r = enomem();
			goto out;
		}
		if ((r = encode_node(nd, i, o)) != CF_OK)
			goto out;
	}
	struct dump_ctx dc = { out, false };
	if (json_dump_callback(root, dump_cb, &dc, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || dc.failed) {
		out->len = oldlen;
		if (out->data)
			out->data[oldlen] = 0;
		r = enomem();
		goto out;
	}
	r = CF_OK;
out:
	json_decref(nodes);
	json_decref(root);
	return r;
}

/* ---- decoding -------------------------------------------------------- */

/* Every decoding failure goes through here so the message always says which
 * node and which field. */
#define BAD(...) cf_err(CF_ECORRUPT, "tree: " __VA_ARGS__)

/* An integer field within [min, max]; absent is 0 unless required.  Reals
 * and strings are not integers (jansson keeps 1.0 a real). */
static int get_int(json_t *o, size_t idx, const char *key, bool required, int64_t min,
		   int64_t max, int64_t *v)
{
	json_t *j = json_object_get(o, key);

	*v = 0;
	if (!j)
		return required ? BAD("node %zu: missing \"%s\"", idx, key) : CF_OK;
	if (!json_is_integer(j))
		return BAD("node %zu: \"%s\" is not an integer", idx, key);
	*v = json_integer_value(j);
	if (*v < min || *v > max)
		return BAD("node %zu: \"%s\" out of range", idx, key);
	return CF_OK;
}

static int get_u32(json_t *o, size_t idx, const char *key, int64_t max, uint32_t *v)
{
	int64_t i;
	int r = get_int(o, idx, key, true, 0, max, &i);

	*v = (uint32_t)i;
	return r;
}

static int get_u64(json_t *o, size_t idx, const char *key, uint64_t *v)
{
	int64_t i;
	int r = get_int(o, idx, key, true, INT64_MIN, INT64_MAX, &i);

	*v = i2u(i);
	return r;
}

/* Exactly one of key (UTF-8 text) and key_b64 (bytes that are not UTF-8);
 * the result holds no NUL.  *out is malloc'd; NULL if absent and optional. */
static int get_bytes(json_t *o, const char *what, const char *key, const char *key_b64,
		     char **out)
{
	json_t *j = json_object_get(o, key), *jb = json_object_get(o, key_b64);
	struct cf_buf b = CF_BUF_INIT;
	const char *s;
	size_t n;
	int r;

	*out = NULL;
	if (j && jb)
		return BAD("%s: both \"%s\" and \"%s\"", what, key, key_b64);
	if (!j && !jb)
		return BAD("%s: missing \"%s\"", what, key);
	if (j) {
		if (!json_is_string(j))
			return BAD("%s: \"%s\" is not a string", what, key);
		s = json_string_value(j);
		n = json_string_length(j);
		/* jansson checks UTF-8 on load; checking again keeps this codec's
		 * notion of UTF-8 (the encoder's) the one that decides. */
		if (!utf8_ok(s, n))
			return BAD("%s: \"%s\" is not UTF-8", what, key);
	} else {
		if (!json_is_string(jb))
			return BAD("%s: \"%s\" is not a string", what, key_b64);
		r = cf_unbase64(json_string_value(jb), json_string_length(jb), &b);
		if (r == CF_ENOMEM)
			goto out;
		if (r != CF_OK) {
			r = BAD("%s: \"%s\" is not base64", what, key_b64);
			goto out;
		}
		s = (const char *)b.data;
		n = b.len;
		if (utf8_ok(s, n)) {
			r = BAD("%s: \"%s\" holds UTF-8 (must be \"%s\")", what, key_b64, key);
			goto out;
		}
	}
	if (memchr(s, 0, n)) {
		r = BAD("%s: \"%s\" contains NUL", what, j ? key : key_b64);
		goto out;
	}
	if (!(*out = strndup(s, n))) {
		r = enomem();
		goto out;
	}
	r = CF_OK;
out:
	cf_buf_release(&b);
	return r;
}

static int get_opt_str(json_t *o, size_t idx, const char *key, char **out)
{
	json_t *j = json_object_get(o, key);

	*out = NULL;
	if (!j)
		return CF_OK;
	if (!json_is_string(j) || memchr(json_string_value(j), 0, json_string_length(j)))
		return BAD("node %zu: \"%s\" is not a string", idx, key);
	if (!(*out = strdup(json_string_value(j))))
		return enomem();
	return CF_OK;
}

/* Exactly 64 lowercase hex digits: the encoder's one spelling of an id. */
static bool parse_id(json_t *j, uint8_t id[CF_ID_LEN])
{
	const char *s;

	if (!json_is_string(j) || json_string_length(j) != 2 * CF_ID_LEN)
		return false;
	s = json_string_value(j);
	for (size_t i = 0; i < 2 * CF_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return cf_unhex(s, id, CF_ID_LEN) == CF_OK;
}

static int decode_xattrs(json_t *arr, size_t idx, struct cf_node *nd)
{
	struct cf_buf b = CF_BUF_INIT;
	char what[64];
	size_t n;
	int r = CF_OK;

	if (!json_is_array(arr))
		return BAD("node %zu: \"xattrs\" is not an array", idx);
	n = json_array_size(arr);
	if (n > MAX_XATTRS)
		return BAD("node %zu: too many xattrs (%zu)", idx, n);
	if (n == 0)
		return CF_OK;
	if (!(nd->xattrs = calloc(n, sizeof(*nd->xattrs))))
		return enomem();
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(arr, i), *v;
		struct cf_xattr *x = &nd->xattrs[i];

		snprintf(what, sizeof(what), "node %zu: xattr %zu", idx, i);
		if (!json_is_object(e)) {
			r = BAD("%s: not an object", what);
			goto out;
		}
		/* Counted before filling so release frees what was filled. */
		nd->nxattrs = i + 1;
		if ((r = get_bytes(e, what, "name", "name_b64", &x->name)) != CF_OK)
			goto out;
		if (!x->name[0]) {
			r = BAD("%s: empty name", what);
			goto out;
		}
		if (i && strcmp(nd->xattrs[i - 1].name, x->name) >= 0) {
			r = BAD("%s: names %s", what,
				strcmp(nd->xattrs[i - 1].name, x->name) ? "not sorted" : "duplicated");
			goto out;
		}
		v = json_object_get(e, "value_b64");
		if (!json_is_string(v)) {
			r = BAD("%s: missing or non-string \"value_b64\"", what);
			goto out;
		}
		r = cf_unbase64(json_string_value(v), json_string_length(v), &b);
		if (r == CF_ENOMEM)
			goto out;
		if (r != CF_OK) {
			r = BAD("%s: \"value_b64\" is not base64", what);
			goto out;
		}
		x->len = b.len;
		x->value = cf_buf_detach(&b, NULL);
		if (!x->value) {
			r = enomem();
			goto out;
		}
	}
out:
	cf_buf_release(&b);
	return r;
}

static int decode_content(json_t *arr, size_t idx, struct cf_node *nd)
{
	size_t n;

	if (!arr)
		return BAD("node %zu: file without \"content\"", idx);
	if (!json_is_array(arr))
		return BAD("node %zu: \"content\" is not an array", idx);
	n = json_array_size(arr);
	if (n > MAX_CONTENT)
		return BAD("node %zu: too many content ids (%zu)", idx, n);
	if (n == 0)
		return CF_OK;
	if (!(nd->content = malloc(n * sizeof(*nd->content))))
		return enomem();
	nd->ncontent = n;
	for (size_t i = 0; i < n; i++)
		if (!parse_id(json_array_get(arr, i), nd->content[i]))
			return BAD("node %zu: content id %zu is not 64 hex digits", idx, i);
	return CF_OK;
}

static int decode_type(json_t *o, size_t idx, int *type)
{
	json_t *j = json_object_get(o, "type");

	if (!j)
		return BAD("node %zu: missing \"type\"", idx);
	if (json_is_string(j))
		for (size_t i = 1; i < NTYPES; i++)
			if (strcmp(json_string_value(j), type_names[i]) == 0) {
				*type = (int)i;
				return CF_OK;
			}
	return BAD("node %zu: unknown type", idx);
}

/* A field that belongs to another type is refused rather than dropped: it
 * would vanish on re-encoding, so the input was not written by an encoder
 * of this format. */
static int only_for(json_t *o, size_t idx, const char *key, bool allowed)
{
	if (!allowed && json_object_get(o, key))
		return BAD("node %zu: \"%s\" not allowed for this type", idx, key);
	return CF_OK;
}

static int decode_node(json_t *o, size_t idx, struct cf_node *nd)
{
	char what[48];
	int64_t v;
	uint32_t u;
	int r;

	if (!json_is_object(o))
		return BAD("node %zu: not an object", idx);
	snprintf(what, sizeof(what), "node %zu", idx);
	if ((r = get_bytes(o, what, "name", "name_b64", &nd->name)) != CF_OK)
		return r;
	if (!cf_name_ok(nd->name))
		return BAD("node %zu: invalid name (empty, \".\", \"..\" or with '/')", idx);
	if ((r = decode_type(o, idx, &nd->type)) != CF_OK)
		return r;
	bool file = nd->type == CF_NODE_FILE, dir = nd->type == CF_NODE_DIR;
	bool sym = nd->type == CF_NODE_SYMLINK;
	bool devnode = nd->type == CF_NODE_CHARDEV || nd->type == CF_NODE_BLOCKDEV;

	if ((r = only_for(o, idx, "size", file)) != CF_OK ||
	    (r = only_for(o, idx, "content", file)) != CF_OK ||
	    (r = only_for(o, idx, "subtree", dir)) != CF_OK ||
	    (r = only_for(o, idx, "rdev", devnode)) != CF_OK ||
	    (r = only_for(o, idx, "linktarget", sym)) != CF_OK ||
	    (r = only_for(o, idx, "linktarget_b64", sym)) != CF_OK)
		return r;

	if ((r = get_u32(o, idx, "mode", 07777, &nd->mode)) != CF_OK ||
	    (r = get_u32(o, idx, "uid", UINT32_MAX, &nd->uid)) != CF_OK ||
	    (r = get_u32(o, idx, "gid", UINT32_MAX, &nd->gid)) != CF_OK ||
	    (r = get_opt_str(o, idx, "user", &nd->user)) != CF_OK ||
	    (r = get_opt_str(o, idx, "group", &nd->group)) != CF_OK)
		return r;
	if (file) {
		if ((r = get_int(o, idx, "size", true, 0, INT64_MAX, &v)) != CF_OK)
			return r;
		nd->size = (uint64_t)v;
	}
	if ((r = get_int(o, idx, "mtime", true, INT64_MIN, INT64_MAX, &nd->mtime_ns)) != CF_OK ||
	    (r = get_int(o, idx, "atime", true, INT64_MIN, INT64_MAX, &nd->atime_ns)) != CF_OK ||
	    (r = get_int(o, idx, "ctime", true, INT64_MIN, INT64_MAX, &nd->ctime_ns)) != CF_OK ||
	    (r = get_u64(o, idx, "dev", &nd->dev)) != CF_OK ||
	    (r = get_u64(o, idx, "inode", &nd->ino)) != CF_OK ||
	    (r = get_u32(o, idx, "links", UINT32_MAX, &u)) != CF_OK)
		return r;
	nd->nlink = u;
	if (devnode && (r = get_u64(o, idx, "rdev", &nd->rdev)) != CF_OK)
		return r;
	if (sym && (r = get_bytes(o, what, "linktarget", "linktarget_b64", &nd->linktarget)) != CF_OK)
		return r;
	if (json_object_get(o, "xattrs") &&
	    (r = decode_xattrs(json_object_get(o, "xattrs"), idx, nd)) != CF_OK)
		return r;
	if (file && (r = decode_content(json_object_get(o, "content"), idx, nd)) != CF_OK)
		return r;
	if (dir && json_object_get(o, "subtree")) {
		if (!parse_id(json_object_get(o, "subtree"), nd->subtree))
			return BAD("node %zu: \"subtree\" is not 64 hex digits", idx);
		nd->has_subtree = true;
	}
	return CF_OK;
}

int cf_tree_decode(const void *p, size_t n, struct cf_tree *t)
{
	json_error_t jerr;
	json_t *root, *nodes;
	size_t count;
	int r;

	memset(&jerr, 0, sizeof(jerr));
	root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		/* jansson leaves the text empty when its first allocation
		 * fails, before it can record a code. */
		if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0])
			return enomem();
		return BAD("not valid JSON (line %d, column %d: %s)", jerr.line, jerr.column,
			   jerr.text);
	}
	if (!json_is_object(root)) {
		r = BAD("not a JSON object");
		goto out;
	}
	nodes = json_object_get(root, "nodes");
	if (!json_is_array(nodes)) {
		r = BAD("missing or non-array \"nodes\"");
		goto out;
	}
	count = json_array_size(nodes);
	if (count > MAX_NODES) {
		r = BAD("too many nodes (%zu)", count);
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		struct cf_node *nd = cf_tree_add(t);

		if (!nd) {
			r = enomem();
			goto out;
		}
		if ((r = decode_node(json_array_get(nodes, i), i, nd)) != CF_OK)
			goto out;
		if (i && strcmp(t->nodes[i - 1].name, nd->name) >= 0) {
			r = BAD("node %zu: names %s", i,
				strcmp(t->nodes[i - 1].name, nd->name) ? "not sorted" : "duplicated");
			goto out;
		}
	}
	r = CF_OK;
out:
	json_decref(root);
	if (r != CF_OK)
		cf_tree_release(t);
	return r;
}

/* ---------- copying and finding nodes ---------- */

int cf_tree_node_copy(const struct cf_node *src, struct cf_node *dst)
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

int cf_tree_find_path(struct cf_repo *r, const uint8_t root[CF_ID_LEN], const char *path,
		      struct cf_node *out)
{
	struct cf_tree t = CF_TREE_INIT;
	uint8_t id[CF_ID_LEN];
	const char *p = path;
	char name[4096];
	int rc;

	memset(out, 0, sizeof(*out));
	memcpy(id, root, CF_ID_LEN);
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
			rc = cf_tree_node_copy(n, out);
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
