/*
 * test_tree - the tree blob codec: round trips of every node type and of
 * names that are not UTF-8, binary xattrs, 64-bit device numbers, long
 * content lists; byte-exact and order-independent encoding (a golden string
 * pins the format); and a decoder that refuses every malformed input with
 * CF_ECORRUPT and a message that names the problem.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "repo/tree.h"

static void fill_id(uint8_t id[CF_ID_LEN], uint32_t seed)
{
	for (int i = 0; i < CF_ID_LEN; i++)
		id[i] = (uint8_t)(seed * 131 + i * 7 + (seed >> 8));
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	assert_non_null(d);
	return d;
}

static struct cf_node *add(struct cf_tree *t, const char *name, int type)
{
	struct cf_node *n = cf_tree_add(t);

	assert_non_null(n);
	n->name = xstrdup(name);
	n->type = type;
	n->mode = 0644;
	n->uid = 1000;
	n->gid = 100;
	n->mtime_ns = 1795410240123456789LL;
	n->atime_ns = 1795410241000000001LL;
	n->ctime_ns = 1795410242999999999LL;
	n->dev = 2049;
	n->ino = 123456;
	n->nlink = 1;
	return n;
}

static void add_xattr(struct cf_node *n, const char *name, const void *val, size_t len)
{
	struct cf_xattr *x = realloc(n->xattrs, (n->nxattrs + 1) * sizeof(*x));

	assert_non_null(x);
	n->xattrs = x;
	x = &x[n->nxattrs++];
	x->name = xstrdup(name);
	x->value = malloc(len ? len : 1);
	assert_non_null(x->value);
	memcpy(x->value, val, len);
	x->len = len;
}

static void set_content(struct cf_node *n, size_t count, uint32_t seed)
{
	n->content = count ? malloc(count * sizeof(*n->content)) : NULL;
	n->ncontent = count;
	for (size_t i = 0; i < count; i++)
		fill_id(n->content[i], seed + (uint32_t)i);
}

static int str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Compare xattrs as sets: the encoder sorts them by name. */
static void assert_xattrs_equal(const struct cf_node *a, const struct cf_node *b)
{
	assert_int_equal(a->nxattrs, b->nxattrs);
	for (size_t i = 0; i < a->nxattrs; i++) {
		size_t j;

		for (j = 0; j < b->nxattrs; j++)
			if (strcmp(a->xattrs[i].name, b->xattrs[j].name) == 0)
				break;
		assert_true(j < b->nxattrs);
		assert_int_equal(a->xattrs[i].len, b->xattrs[j].len);
		if (a->xattrs[i].len)
			assert_memory_equal(a->xattrs[i].value, b->xattrs[j].value, a->xattrs[i].len);
	}
}

/* Equal as far as the format promises: type-specific fields only where the
 * type carries them. */
static void assert_node_equal(const struct cf_node *a, const struct cf_node *b)
{
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_true(str_eq(a->user, b->user));
	assert_true(str_eq(a->group, b->group));
	assert_true(a->mtime_ns == b->mtime_ns);
	assert_true(a->atime_ns == b->atime_ns);
	assert_true(a->ctime_ns == b->ctime_ns);
	assert_true(a->dev == b->dev);
	assert_true(a->ino == b->ino);
	assert_int_equal(a->nlink, b->nlink);
	assert_xattrs_equal(a, b);
	switch (a->type) {
	case CF_NODE_FILE:
		assert_true(a->size == b->size);
		assert_int_equal(a->ncontent, b->ncontent);
		if (a->ncontent)
			assert_memory_equal(a->content, b->content, a->ncontent * CF_ID_LEN);
		break;
	case CF_NODE_DIR:
		assert_int_equal(a->has_subtree, b->has_subtree);
		if (a->has_subtree)
			assert_memory_equal(a->subtree, b->subtree, CF_ID_LEN);
		break;
	case CF_NODE_SYMLINK:
		assert_string_equal(a->linktarget, b->linktarget);
		break;
	case CF_NODE_CHARDEV:
	case CF_NODE_BLOCKDEV:
		assert_true(a->rdev == b->rdev);
		break;
	}
}

static void assert_tree_equal(const struct cf_tree *a, const struct cf_tree *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++)
		assert_node_equal(&a->nodes[i], &b->nodes[i]);
}

/* encode(t) -> decode -> equal to t; and encode(decode) gives the same bytes. */
static void roundtrip(const struct cf_tree *t, struct cf_buf *json)
{
	struct cf_tree d = CF_TREE_INIT;
	struct cf_buf again = CF_BUF_INIT;

	cf_buf_reset(json);
	assert_int_equal(cf_tree_encode(t, json), CF_OK);
	assert_int_equal(cf_tree_decode(json->data, json->len, &d), CF_OK);
	assert_tree_equal(t, &d);
	assert_int_equal(cf_tree_encode(&d, &again), CF_OK);
	assert_int_equal(again.len, json->len);
	assert_memory_equal(again.data, json->data, json->len);
	cf_buf_release(&again);
	cf_tree_release(&d);
}

static void test_roundtrip_every_type(void **state)
{
	struct cf_tree t = CF_TREE_INIT;
	struct cf_buf json = CF_BUF_INIT;
	struct cf_node *n;
	static const uint8_t bin[] = { 0, 1, 0xff, 0xfe, 0, 0x80, '\n', '"', '\\' };

	(void)state;
	n = add(&t, "file.txt", CF_NODE_FILE);
	n->size = 123456789012ULL;
	n->user = xstrdup("alice");
	n->group = xstrdup("users");
	n->mode = 07755;
	set_content(n, 3, 10);
	add_xattr(n, "user.binary", bin, sizeof(bin));
	add_xattr(n, "security.selinux", "system_u:object_r:etc_t:s0", 27);
	add_xattr(n, "user.empty", "", 0);
	n = add(&t, "empty", CF_NODE_FILE);
	n->size = 0;
	n = add(&t, "subdir", CF_NODE_DIR);
	n->mode = 0755;
	n->has_subtree = true;
	fill_id(n->subtree, 99);
	n = add(&t, "dir-without-subtree", CF_NODE_DIR);
	n = add(&t, "link", CF_NODE_SYMLINK);
	n->linktarget = xstrdup("../some/where \xe2\x9c\x93");
	n = add(&t, "badlink", CF_NODE_SYMLINK);
	n->linktarget = xstrdup("/tmp/\xff\xfe latin1 \xe9");
	n = add(&t, "fifo", CF_NODE_FIFO);
	n = add(&t, "tty", CF_NODE_CHARDEV);
	n->rdev = (5ULL << 8) | 0;
	n = add(&t, "sda", CF_NODE_BLOCKDEV);
	n->rdev = UINT64_MAX;           /* bit pattern of -1 */
	n->dev = (1ULL << 63) + 12345;  /* above INT64_MAX */
	n->ino = UINT64_MAX - 1;
	n = add(&t, "sock", CF_NODE_SOCKET);
	n->uid = UINT32_MAX;
	n->gid = UINT32_MAX;
	n->nlink = UINT32_MAX;
	n->mtime_ns = INT64_MIN;        /* long before 1970 */
	n->atime_ns = -1;
	n->ctime_ns = INT64_MAX;
	n = add(&t, "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", CF_NODE_FILE);
	set_content(n, 1, 7);
	n->size = 5;
	cf_tree_sort(&t);

	roundtrip(&t, &json);
	/* The text carries what a person reading it expects. */
	const char *s = (const char *)json.data;
	assert_non_null(strstr(s, "\"type\":\"blockdev\""));
	assert_non_null(strstr(s, "\"type\":\"chardev\""));
	assert_non_null(strstr(s, "\"type\":\"socket\""));
	assert_non_null(strstr(s, "\"type\":\"fifo\""));
	assert_non_null(strstr(s, "\"linktarget_b64\":"));
	assert_non_null(strstr(s, "\"linktarget\":\"../some/where \xe2\x9c\x93\""));
	assert_non_null(strstr(s, "\"name\":\"caf\xc3\xa9 "));
	assert_non_null(strstr(s, "\"rdev\":-1"));
	assert_non_null(strstr(s, "\"mode\":4077"));
	assert_null(strstr(s, "name_b64"));
	/* Empty files still list their (empty) content; a fifo has none. */
	assert_non_null(strstr(s, "\"name\":\"empty\",\"type\":\"file\""));
	assert_non_null(strstr(s, "\"content\":[]"));
	const struct cf_node *f = cf_tree_find(&t, "fifo");
	assert_non_null(f);
	assert_int_equal(f->type, CF_NODE_FIFO);
	assert_null(cf_tree_find(&t, "nope"));
	assert_null(cf_tree_find(&t, "fif"));
	cf_buf_release(&json);
	cf_tree_release(&t);
	assert_null(t.nodes);
	assert_int_equal(t.n, 0);
}

static void test_non_utf8_names(void **state)
{
	struct cf_tree t = CF_TREE_INIT, d = CF_TREE_INIT;
	struct cf_buf json = CF_BUF_INIT;
	char name[8];
	size_t b64 = 0;

	(void)state;
	/* Every byte 0x80-0xff alone, and after an ASCII letter. */
	for (int c = 0x80; c <= 0xff; c++) {
		snprintf(name, sizeof(name), "%c", c);
		add(&t, name, CF_NODE_FILE);
		snprintf(name, sizeof(name), "x%c", c);
		add(&t, name, CF_NODE_DIR);
	}
	/* Almost-UTF-8 that a lax validator accepts. */
	add(&t, "overlong\xc0\xaf", CF_NODE_FILE);
	add(&t, "overlong3\xe0\x80\xaf", CF_NODE_FILE);
	add(&t, "surrogate\xed\xa0\x80", CF_NODE_FILE);
	add(&t, "toobig\xf4\x90\x80\x80", CF_NODE_FILE);
	add(&t, "truncated\xe6\x97", CF_NODE_FILE);
	add(&t, "f5\xf5\x80\x80\x80", CF_NODE_FILE);
	cf_tree_sort(&t);
	roundtrip(&t, &json);
	for (const char *p = (const char *)json.data; (p = strstr(p, "\"name_b64\"")); p++)
		b64++;
	assert_int_equal(b64, 2 * 128 + 6);
	/* The bytes come back exactly. */
	assert_int_equal(cf_tree_decode(json.data, json.len, &d), CF_OK);
	assert_non_null(cf_tree_find(&d, "\xff"));
	assert_non_null(cf_tree_find(&d, "x\x80"));
	assert_non_null(cf_tree_find(&d, "surrogate\xed\xa0\x80"));
	cf_tree_release(&d);
	cf_buf_release(&json);
	cf_tree_release(&t);
}

static void test_utf8_len(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} cases[] = {
		{ "a", 1 }, { "\x7f", 1 },
		{ "\xc2\x80", 2 }, { "\xdf\xbf", 2 },
		{ "\xc0\x80", 0 }, { "\xc1\xbf", 0 },             /* overlong 2 */
		{ "\xe0\xa0\x80", 3 }, { "\xe0\x9f\xbf", 0 },     /* overlong 3 */
		{ "\xed\x9f\xbf", 3 }, { "\xed\xa0\x80", 0 }, { "\xed\xbf\xbf", 0 }, /* surrogates */
		{ "\xee\x80\x80", 3 }, { "\xef\xbf\xbf", 3 },
		{ "\xf0\x90\x80\x80", 4 }, { "\xf0\x8f\xbf\xbf", 0 }, /* overlong 4 */
		{ "\xf4\x8f\xbf\xbf", 4 }, { "\xf4\x90\x80\x80", 0 }, /* > U+10FFFF */
		{ "\xf5\x80\x80\x80", 0 }, { "\xff", 0 }, { "\x80", 0 }, { "\xbf", 0 },
		{ "\xe6\x97", 0 }, { "\xe6\x97\x41", 0 }, { "\xf0\x9f\x98", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t got = cf_utf8_len((const uint8_t *)cases[i].s, strlen(cases[i].s));

		if (got != cases[i].len)
			fail_msg("case %zu: got %zu want %zu", i, got, cases[i].len);
	}
	assert_int_equal(cf_utf8_len((const uint8_t *)"", 0), 0);
}

static void test_many_content_ids(void **state)
{
	struct cf_tree t = CF_TREE_INIT, d = CF_TREE_INIT;
	struct cf_buf json = CF_BUF_INIT;
	struct cf_node *n;

	(void)state;
	n = add(&t, "big", CF_NODE_FILE);
	n->size = 1000ULL << 20;
	set_content(n, 1000, 5);
	roundtrip(&t, &json);
	assert_int_equal(cf_tree_decode(json.data, json.len, &d), CF_OK);
	assert_int_equal(d.nodes[0].ncontent, 1000);
	for (size_t i = 0; i < 1000; i++) {
		uint8_t want[CF_ID_LEN];

		fill_id(want, 5 + (uint32_t)i);
		assert_memory_equal(d.nodes[0].content[i], want, CF_ID_LEN);
	}
	cf_tree_release(&d);
	cf_buf_release(&json);
	cf_tree_release(&t);
}

/* Two trees built in different orders (nodes and xattrs) encode to the same
 * bytes, and those bytes are exactly the documented grammar. */
static void test_deterministic_golden(void **state)
{
	static const char *order1[] = { "b", "a", "\xc3\xa9", "B", "a.txt", "Z" };
	static const char *order2[] = { "a.txt", "\xc3\xa9", "Z", "b", "B", "a" };
	struct cf_tree t1 = CF_TREE_INIT, t2 = CF_TREE_INIT, small = CF_TREE_INIT;
	struct cf_buf j1 = CF_BUF_INIT, j2 = CF_BUF_INIT, js = CF_BUF_INIT;
	struct cf_node *n;

	(void)state;
	for (size_t i = 0; i < 6; i++) {
		n = add(&t1, order1[i], CF_NODE_FIFO);
		add_xattr(n, "user.b", "2", 1);
		add_xattr(n, "user.a", "1", 1);
		n = add(&t2, order2[i], CF_NODE_FIFO);
		add_xattr(n, "user.a", "1", 1);
		add_xattr(n, "user.b", "2", 1);
	}
	cf_tree_sort(&t1);
	cf_tree_sort(&t2);
	assert_int_equal(cf_tree_encode(&t1, &j1), CF_OK);
	assert_int_equal(cf_tree_encode(&t2, &j2), CF_OK);
	assert_int_equal(j1.len, j2.len);
	assert_memory_equal(j1.data, j2.data, j1.len);
	/* Sorted bytewise: uppercase before lowercase, UTF-8 last. */
	const char *s = (const char *)j1.data;
	const char *want[] = { "\"B\"", "\"Z\"", "\"a\"", "\"a.txt\"", "\"b\"", "\"\xc3\xa9\"" };
	const char *prev = s;
	for (size_t i = 0; i < 6; i++) {
		const char *p = strstr(s, want[i]);

		assert_non_null(p);
		assert_true(p >= prev);
		prev = p;
	}

	/* The golden bytes: this string changes only with a format change. */
	n = add(&small, "hello.txt", CF_NODE_FILE);
	n->size = 11;
	n->user = xstrdup("root");
	set_content(n, 1, 0);
	memset(n->content[0], 0xab, CF_ID_LEN);
	add_xattr(n, "user.k", "v\0", 2);
	n = add(&small, "lib", CF_NODE_DIR);
	n->mode = 0755;
	n->has_subtree = true;
	memset(n->subtree, 0x01, CF_ID_LEN);
	n = add(&small, "\xff", CF_NODE_SYMLINK);
	n->linktarget = xstrdup("hello.txt");
	n->mode = 0777;
	n->dev = UINT64_MAX;
	assert_int_equal(cf_tree_encode(&small, &js), CF_OK);
	assert_string_equal((const char *)js.data,
		"{\"nodes\":["
		"{\"name\":\"hello.txt\",\"type\":\"file\",\"mode\":420,\"uid\":1000,\"gid\":100,"
		"\"user\":\"root\",\"size\":11,\"mtime\":1795410240123456789,"
		"\"atime\":1795410241000000001,\"ctime\":1795410242999999999,\"dev\":2049,"
		"\"inode\":123456,\"links\":1,\"xattrs\":[{\"name\":\"user.k\",\"value_b64\":\"dgA=\"}],"
		"\"content\":[\"abababababababababababababababababababababababababababababababab\"]},"
		"{\"name\":\"lib\",\"type\":\"dir\",\"mode\":493,\"uid\":1000,\"gid\":100,"
		"\"mtime\":1795410240123456789,\"atime\":1795410241000000001,"
		"\"ctime\":1795410242999999999,\"dev\":2049,\"inode\":123456,\"links\":1,"
		"\"subtree\":\"0101010101010101010101010101010101010101010101010101010101010101\"},"
		"{\"name_b64\":\"/w==\",\"type\":\"symlink\",\"mode\":511,\"uid\":1000,\"gid\":100,"
		"\"mtime\":1795410240123456789,\"atime\":1795410241000000001,"
		"\"ctime\":1795410242999999999,\"dev\":-1,\"inode\":123456,\"links\":1,"
		"\"linktarget\":\"hello.txt\"}]}");

	/* Encoding appends. */
	cf_buf_reset(&j1);
	assert_int_equal(cf_buf_adds(&j1, "prefix"), CF_OK);
	assert_int_equal(cf_tree_encode(&small, &j1), CF_OK);
	assert_int_equal(j1.len, 6 + js.len);
	assert_memory_equal(j1.data + 6, js.data, js.len);

	/* An empty tree is valid. */
	cf_tree_release(&t1);
	cf_buf_reset(&j1);
	assert_int_equal(cf_tree_encode(&t1, &j1), CF_OK);
	assert_string_equal((const char *)j1.data, "{\"nodes\":[]}");
	assert_int_equal(cf_tree_decode(j1.data, j1.len, &t1), CF_OK);
	assert_int_equal(t1.n, 0);

	cf_buf_release(&j1);
	cf_buf_release(&j2);
	cf_buf_release(&js);
	cf_tree_release(&t1);
	cf_tree_release(&t2);
	cf_tree_release(&small);
}

static void test_encode_refuses(void **state)
{
	struct cf_tree t = CF_TREE_INIT;
	struct cf_buf json = CF_BUF_INIT;
	struct cf_node *n;

	(void)state;
	add(&t, "b", CF_NODE_FILE);
	add(&t, "a", CF_NODE_FILE);
	assert_int_equal(cf_tree_encode(&t, &json), CF_EINVAL);  /* not sorted */
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "not sorted"));
	assert_int_equal(json.len, 0);
	cf_tree_sort(&t);
	assert_int_equal(cf_tree_encode(&t, &json), CF_OK);
	cf_tree_release(&t);

	add(&t, "a", CF_NODE_FILE);
	add(&t, "a", CF_NODE_FILE);
	assert_int_equal(cf_tree_encode(&t, &json), CF_EINVAL);  /* duplicate */
	cf_tree_release(&t);

	static const char *bad[] = { "", ".", "..", "a/b", "/" };
	for (size_t i = 0; i < 5; i++) {
		add(&t, bad[i], CF_NODE_FILE);
		assert_false(cf_name_ok(bad[i]));
		assert_int_equal(cf_tree_encode(&t, &json), CF_EINVAL);
		cf_tree_release(&t);
	}
	assert_true(cf_name_ok("..."));
	assert_true(cf_name_ok(".hidden"));

	n = add(&t, "f", CF_NODE_FILE);
	n->mode = 0100644;             /* S_IFREG left in */
	assert_int_equal(cf_tree_encode(&t, &json), CF_EINVAL);
	n->mode = 0644;
	n->type = 42;
	assert_int_equal(cf_tree_encode(&t, &json), CF_EINVAL);
	n->type = CF_NODE_FILE;
	add_xattr(n, "user.x", "1", 1);
	add_xattr(n, "user.x", "2", 1);
	assert_int_equal(cf_tree_encode(&t, &json), CF_EINVAL);
	cf_tree_release(&t);
	cf_buf_release(&json);
}

/* ---- decoding refuses ------------------------------------------------ */

#define NODE(name, extra) \
	"{" name ",\"type\":\"fifo\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":0,\"atime\":0," \
	"\"ctime\":0,\"dev\":0,\"inode\":0,\"links\":1" extra "}"
#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FILE_NODE(extra) \
	"{\"name\":\"f\",\"type\":\"file\",\"mode\":420,\"uid\":0,\"gid\":0,\"size\":1,\"mtime\":0," \
	"\"atime\":0,\"ctime\":0,\"dev\":0,\"inode\":0,\"links\":1" extra "}"

static void expect_corrupt(const char *json, size_t len, const char *msg_part, int line)
{
	struct cf_tree t = CF_TREE_INIT;
	int r;

	cf_err_clear();
	r = cf_tree_decode(json, len, &t);
	if (r != CF_ECORRUPT)
		fail_msg("line %d: decode returned %d for %s", line, r, json);
	if (msg_part && !strstr(cf_errmsg(r), msg_part))
		fail_msg("line %d: message \"%s\" lacks \"%s\"", line, cf_errmsg(r), msg_part);
	assert_null(t.nodes);
	assert_int_equal(t.n, 0);
}
#define BAD(json, msg) expect_corrupt(json, strlen(json), msg, __LINE__)

static void expect_ok(const char *json, int line)
{
	struct cf_tree t = CF_TREE_INIT;
	int r = cf_tree_decode(json, strlen(json), &t);

	if (r != CF_OK)
		fail_msg("line %d: decode returned %d (%s) for %s", line, r, cf_errmsg(r), json);
	cf_tree_release(&t);
}
#define OK(json) expect_ok(json, __LINE__)

static void test_decode_accepts(void **state)
{
	(void)state;
	OK("{\"nodes\":[" NODE("\"name\":\"a\"", "") "]}");
	OK("{\"nodes\":[]}");
	/* Unknown fields are ignored, at top level and in nodes. */
	OK("{\"version\":2,\"nodes\":[" NODE("\"name\":\"a\"", ",\"future\":{\"x\":[1,2]}") "]}");
	OK("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"xattrs\":[]") "]}");
	OK("{\"nodes\":[" FILE_NODE(",\"content\":[\"" ID64 "\"]") "]}");
	OK("{\"nodes\":[" NODE("\"name_b64\":\"/w==\"", "") "]}");
	/* Whitespace and key order do not matter to the reader. */
	OK("{ \"nodes\" : [ {\"links\":1,\"inode\":0,\"dev\":0,\"ctime\":0,\"atime\":0,"
	   "\"mtime\":0,\"gid\":0,\"uid\":0,\"mode\":0,\"type\":\"socket\",\"name\":\"s\"} ] }");
}

static void test_decode_rejects(void **state)
{
	(void)state;
	/* Names. */
	BAD("{\"nodes\":[" NODE("\"name\":\"..\"", "") "]}", "invalid name");
	BAD("{\"nodes\":[" NODE("\"name\":\".\"", "") "]}", "invalid name");
	BAD("{\"nodes\":[" NODE("\"name\":\"\"", "") "]}", "invalid name");
	BAD("{\"nodes\":[" NODE("\"name\":\"a/b\"", "") "]}", "invalid name");
	BAD("{\"nodes\":[" NODE("\"name_b64\":\"Lw==\"", "") "]}", "UTF-8");  /* "/" in b64 */
	BAD("{\"nodes\":[" NODE("\"name_b64\":\"/y8=\"", "") "]}", "invalid name"); /* ff '/' */
	BAD("{\"nodes\":[" NODE("\"name_b64\":\"YQ==\"", "") "]}", "UTF-8");  /* "a" */
	BAD("{\"nodes\":[" NODE("\"name_b64\":\"/wA=\"", "") "]}", "NUL");    /* ff 00 */
	BAD("{\"nodes\":[" NODE("\"name_b64\":\"!!!!\"", "") "]}", "base64");
	BAD("{\"nodes\":[" NODE("\"name_b64\":\"/w\"", "") "]}", "base64");   /* unpadded */
	BAD("{\"nodes\":[" NODE("\"name\":\"a\\u0000b\"", "") "]}", "JSON");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\",\"name_b64\":\"/w==\"", "") "]}", "both");
	BAD("{\"nodes\":[" NODE("\"nom\":\"a\"", "") "]}", "missing \"name\"");
	BAD("{\"nodes\":[" NODE("\"name\":7", "") "]}", "not a string");
	/* Invalid UTF-8 in the JSON text itself, and an escaped lone surrogate. */
	BAD("{\"nodes\":[" NODE("\"name\":\"\xff\"", "") "]}", "JSON");
	BAD("{\"nodes\":[" NODE("\"name\":\"\xc0\xaf\"", "") "]}", "JSON");
	BAD("{\"nodes\":[" NODE("\"name\":\"\\ud800\"", "") "]}", "JSON");
	/* Order and uniqueness. */
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", "") "," NODE("\"name\":\"a\"", "") "]}",
	    "duplicated");
	BAD("{\"nodes\":[" NODE("\"name\":\"b\"", "") "," NODE("\"name\":\"a\"", "") "]}",
	    "not sorted");
	BAD("{\"nodes\":[" NODE("\"name\":\"\xc3\xa9\"", "") "," NODE("\"name\":\"z\"", "") "]}",
	    "not sorted");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"xattrs\":[{\"name\":\"b\",\"value_b64\":\"\"},"
	    "{\"name\":\"a\",\"value_b64\":\"\"}]") "]}", "not sorted");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"xattrs\":[{\"name\":\"a\",\"value_b64\":\"\"},"
	    "{\"name\":\"a\",\"value_b64\":\"\"}]") "]}", "duplicated");
	/* Ids. */
	BAD("{\"nodes\":[" FILE_NODE(",\"content\":[\"" ID64 "0\"]") "]}", "content id 0");
	BAD("{\"nodes\":[" FILE_NODE(",\"content\":[\"" ID64 "\",\"0123\"]") "]}", "content id 1");
	BAD("{\"nodes\":[" FILE_NODE(",\"content\":[\"g123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef\"]") "]}", "hex");
	BAD("{\"nodes\":[" FILE_NODE(",\"content\":[\"0123456789ABCDEF0123456789abcdef"
	    "0123456789abcdef0123456789abcdef\"]") "]}", "hex");
	BAD("{\"nodes\":[" FILE_NODE(",\"content\":[7]") "]}", "hex");
	BAD("{\"nodes\":[" FILE_NODE(",\"content\":\"" ID64 "\"") "]}", "not an array");
	BAD("{\"nodes\":[{\"name\":\"d\",\"type\":\"dir\",\"mode\":493,\"uid\":0,\"gid\":0,"
	    "\"mtime\":0,\"atime\":0,\"ctime\":0,\"dev\":0,\"inode\":0,\"links\":1,"
	    "\"subtree\":\"xyz\"}]}", "subtree");
	/* Types. */
	BAD("{\"nodes\":[{\"name\":\"a\",\"type\":\"door\",\"mode\":0}]}", "unknown type");
	BAD("{\"nodes\":[{\"name\":\"a\",\"type\":3,\"mode\":0}]}", "unknown type");
	BAD("{\"nodes\":[{\"name\":\"a\",\"mode\":0}]}", "missing \"type\"");
	BAD("{\"nodes\":[" FILE_NODE("") "]}", "without \"content\"");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"size\":1") "]}", "\"size\" not allowed");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"rdev\":1") "]}", "\"rdev\" not allowed");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"content\":[]") "]}", "not allowed");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"subtree\":\"" ID64 "\"") "]}", "not allowed");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"linktarget\":\"x\"") "]}", "not allowed");
	/* Wrong JSON types and ranges. */
	BAD("{\"nodes\":[{\"name\":\"a\",\"type\":\"fifo\",\"mode\":\"420\"}]}", "\"mode\" is not an integer");
	BAD("{\"nodes\":[{\"name\":\"a\",\"type\":\"fifo\",\"mode\":420.0}]}", "\"mode\" is not an integer");
	BAD("{\"nodes\":[{\"name\":\"a\",\"type\":\"fifo\",\"mode\":33188}]}", "\"mode\" out of range");
	BAD("{\"nodes\":[{\"name\":\"a\",\"type\":\"fifo\",\"mode\":0,\"uid\":-1}]}", "\"uid\" out of range");
	BAD("{\"nodes\":[{\"name\":\"a\",\"type\":\"fifo\",\"mode\":0,\"uid\":4294967296}]}", "out of range");
	BAD("{\"nodes\":[{\"name\":\"a\",\"type\":\"fifo\",\"mode\":0,\"uid\":null}]}", "not an integer");
	BAD("{\"nodes\":[{\"name\":\"a\",\"type\":\"fifo\",\"mode\":0,\"uid\":true}]}", "not an integer");
	BAD("{\"nodes\":[" FILE_NODE(",\"size\":-1,\"content\":[]") "]}", NULL);  /* duplicate key */
	BAD("{\"nodes\":[{\"name\":\"f\",\"type\":\"file\",\"mode\":420,\"uid\":0,\"gid\":0,"
	    "\"size\":-1,\"mtime\":0,\"atime\":0,\"ctime\":0,\"dev\":0,\"inode\":0,\"links\":1,"
	    "\"content\":[]}]}", "\"size\" out of range");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"dev\":99999999999999999999") "]}", "JSON");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"user\":5") "]}", "\"user\"");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"xattrs\":{}") "]}", "not an array");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"xattrs\":[5]") "]}", "not an object");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"xattrs\":[{\"name\":\"a\"}]") "]}", "value_b64");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"xattrs\":[{\"name\":\"a\",\"value_b64\":\"%%\"}]") "]}",
	    "base64");
	BAD("{\"nodes\":[" NODE("\"name\":\"a\"", ",\"xattrs\":[{\"name\":\"\",\"value_b64\":\"\"}]") "]}",
	    "empty name");
	BAD("{\"nodes\":{}}", "\"nodes\"");
	BAD("{\"nodes\":[5]}", "not an object");
	BAD("{}", "\"nodes\"");
	BAD("[]", "not a JSON object");
	BAD("{\"nodes\":[],\"nodes\":[]}", "duplicate");
	BAD("", "JSON");
	BAD("null", "JSON");
	BAD("{\"nodes\":[]} x", "JSON");
	BAD("\xef\xbb\xbf{\"nodes\":[]}", "JSON");
	/* Every required field, removed in turn. */
	static const char *req[] = { "mode", "uid", "gid", "mtime", "atime", "ctime", "dev", "inode",
				     "links" };
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		char json[512], want[32];

		snprintf(json, sizeof(json), "{\"nodes\":[" NODE("\"name\":\"a\"", "") "]}");
		/* Rename the key so it is absent but the JSON stays valid. */
		char key[16];
		snprintf(key, sizeof(key), "\"%s\":", req[i]);
		char *p = strstr(json, key);
		assert_non_null(p);
		p[1] = 'X';
		snprintf(want, sizeof(want), "missing \"%s\"", req[i]);
		expect_corrupt(json, strlen(json), want, __LINE__);
	}
}

/* Every proper prefix of a valid encoding is refused. */
static void test_decode_truncated(void **state)
{
	struct cf_tree t = CF_TREE_INIT;
	struct cf_buf json = CF_BUF_INIT;
	struct cf_node *n;

	(void)state;
	n = add(&t, "a", CF_NODE_FILE);
	set_content(n, 2, 1);
	add_xattr(n, "user.x", "\x01\x02", 2);
	n = add(&t, "b", CF_NODE_SYMLINK);
	n->linktarget = xstrdup("\xfftarget");
	assert_int_equal(cf_tree_encode(&t, &json), CF_OK);
	for (size_t len = 0; len < json.len; len++)
		expect_corrupt((const char *)json.data, len, NULL, __LINE__);
	/* And a flipped byte in an id is caught (not silently kept). */
	char *p = strstr((char *)json.data, "\"content\":[\"") + 12;
	*p = 'G';
	expect_corrupt((const char *)json.data, json.len, "content id 0", __LINE__);
	cf_buf_release(&json);
	cf_tree_release(&t);
}

static void test_decode_deep_nesting(void **state)
{
	size_t depth = 200000;
	char *s = malloc(2 * depth + 200);
	size_t k = 0;

	(void)state;
	assert_non_null(s);
	for (size_t i = 0; i < depth; i++)
		s[k++] = '[';
	for (size_t i = 0; i < depth; i++)
		s[k++] = ']';
	expect_corrupt(s, k, "JSON", __LINE__);

	/* Deep garbage inside an otherwise valid node's unknown field. */
	k = (size_t)sprintf(s, "{\"nodes\":[{\"name\":\"a\",\"junk\":");
	for (size_t i = 0; i < depth; i++)
		s[k++] = '[';
	s[k] = 0;
	expect_corrupt(s, k, "JSON", __LINE__);

	k = 0;
	for (size_t i = 0; i < depth; i++) {
		memcpy(s + k, "{\"a\":", 5);
		k += 5;
		if (k > 2 * depth)
			break;
	}
	expect_corrupt(s, k, "JSON", __LINE__);
	free(s);
}

/* jansson's allocations fail one by one while encoding (the Nth, for every
 * N until encoding succeeds): each run must end in CF_ENOMEM with nothing
 * appended, and leak nothing (ASan builds check that).  Decoding is not
 * tested this way: jansson 2.14's lexer trips its own assertion
 * (lex_unget_unsave) when an allocation fails mid-token. */
static long alloc_budget = -1;

static void *counting_malloc(size_t n)
{
	if (alloc_budget == 0)
		return NULL;
	if (alloc_budget > 0)
		alloc_budget--;
	return malloc(n);
}

static void test_jansson_enomem(void **state)
{
	struct cf_tree t = CF_TREE_INIT;
	struct cf_buf json = CF_BUF_INIT, out = CF_BUF_INIT;
	struct cf_node *n;
	int r, enomem = 0;

	(void)state;
	n = add(&t, "a", CF_NODE_FILE);
	set_content(n, 3, 1);
	add_xattr(n, "user.x", "\xff", 1);
	n = add(&t, "\xfe", CF_NODE_SYMLINK);
	n->linktarget = xstrdup("t");
	assert_int_equal(cf_tree_encode(&t, &json), CF_OK);

	json_set_alloc_funcs(counting_malloc, free);
	for (long budget = 0;; budget++) {
		alloc_budget = budget;
		cf_buf_reset(&out);
		r = cf_tree_encode(&t, &out);
		alloc_budget = -1;
		if (r == CF_OK)
			break;
		assert_int_equal(r, CF_ENOMEM);
		assert_int_equal(out.len, 0);
		enomem++;
	}
	json_set_alloc_funcs(malloc, free);
	assert_true(enomem > 20);
	assert_int_equal(out.len, json.len);
	assert_memory_equal(out.data, json.data, json.len);
	cf_tree_release(&t);
	cf_buf_release(&json);
	cf_buf_release(&out);
}

/* cf_node_equal: a node equals its decoded copy (the backup reuses the
 * parent's tree id on that), and any encoded field that differs makes it
 * unequal, else a changed directory would keep its old tree. */
static void test_node_equal(void **state)
{
	struct cf_tree t = CF_TREE_INIT, d = CF_TREE_INIT;
	struct cf_buf json = CF_BUF_INIT;
	struct cf_node *n;

	(void)state;
	n = add(&t, "a-file", CF_NODE_FILE);
	n->size = 42;
	n->user = xstrdup("alice");
	set_content(n, 2, 5);
	add_xattr(n, "user.k", "v", 1);
	n = add(&t, "b-dir", CF_NODE_DIR);
	n->has_subtree = true;
	fill_id(n->subtree, 3);
	n = add(&t, "c-link", CF_NODE_SYMLINK);
	n->linktarget = xstrdup("target");
	n = add(&t, "d-dev", CF_NODE_CHARDEV);
	n->rdev = 77;
	assert_int_equal(cf_tree_encode(&t, &json), CF_OK);
	assert_int_equal(cf_tree_decode(json.data, json.len, &d), CF_OK);
	for (size_t i = 0; i < t.n; i++)
		assert_true(cf_node_equal(&t.nodes[i], &d.nodes[i]));

	struct cf_node *f = &d.nodes[0], *dir = &d.nodes[1], *l = &d.nodes[2], *dv = &d.nodes[3];
#define DIFFERS(node, field, val)                                            \
	do {                                                                 \
		__typeof__((node)->field) keep = (node)->field;              \
		(node)->field = (val);                                       \
		assert_false(cf_node_equal(&t.nodes[(node) - d.nodes], (node))); \
		(node)->field = keep;                                        \
		assert_true(cf_node_equal(&t.nodes[(node) - d.nodes], (node)));  \
	} while (0)
	DIFFERS(f, mode, 0600);
	DIFFERS(f, uid, 1);
	DIFFERS(f, gid, 1);
	DIFFERS(f, size, 43);
	DIFFERS(f, mtime_ns, 1);
	DIFFERS(f, atime_ns, 1);
	DIFFERS(f, ctime_ns, 1);
	DIFFERS(f, dev, 1);
	DIFFERS(f, ino, 1);
	DIFFERS(f, nlink, 2);
	DIFFERS(f, ncontent, 1);
	DIFFERS(f, nxattrs, 0);
	DIFFERS(f, type, CF_NODE_FIFO);
	f->content[1][7] ^= 1;
	assert_false(cf_node_equal(&t.nodes[0], f));
	f->content[1][7] ^= 1;
	f->xattrs[0].value[0] = 'w';
	assert_false(cf_node_equal(&t.nodes[0], f));
	f->xattrs[0].value[0] = 'v';
	f->user[0] = 'A';
	assert_false(cf_node_equal(&t.nodes[0], f));
	f->user[0] = 'a';
	free(f->user);
	f->user = NULL;
	assert_false(cf_node_equal(&t.nodes[0], f));
	DIFFERS(dir, has_subtree, false);
	dir->subtree[0] ^= 1;
	assert_false(cf_node_equal(&t.nodes[1], dir));
	dir->subtree[0] ^= 1;
	l->linktarget[0] = 'T';
	assert_false(cf_node_equal(&t.nodes[2], l));
	l->linktarget[0] = 't';
	DIFFERS(dv, rdev, 78);
	d.nodes[3].name[0] = 'e';
	assert_false(cf_node_equal(&t.nodes[3], dv));
#undef DIFFERS
	cf_buf_release(&json);
	cf_tree_release(&d);
	cf_tree_release(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_every_type),
		cmocka_unit_test(test_node_equal),
		cmocka_unit_test(test_non_utf8_names),
		cmocka_unit_test(test_utf8_len),
		cmocka_unit_test(test_many_content_ids),
		cmocka_unit_test(test_deterministic_golden),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_decode_accepts),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_deep_nesting),
		cmocka_unit_test(test_jansson_enomem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
