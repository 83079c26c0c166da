/*
 * test_dircache - the local directory cache's payload (engine/dircache.h):
 * what is written parses back to the same entries, found by id; identical
 * trees listed twice count once; every kind of damage (magic, version,
 * count, truncation, an empty or NUL-holding name, subdirectories out of
 * order, trailing bytes) is refused with a message; the default directory
 * follows COFFER_CACHE_DIR, XDG_CACHE_HOME and HOME, and "off" turns it off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/dircache.h"
#include "common/util.h"
#include "common/buf.h"
#include "common/error.h"

static void fill(uint8_t *p, int v) { memset(p, v, CF_DC_ID); }

/* a payload: snapshot 0x51, trees 0x10 (subs "a" -> 0x11, "b" -> 0x12), 0x11,
 * 0x12 (sub "c" -> 0x13), 0x13, and 0x11 again */
static void make(struct cf_buf *out)
{
	uint8_t id[5][CF_DC_ID], dg[CF_DC_ID], snap[CF_DC_ID];
	for (int i = 0; i < 5; i++)
		fill(id[i], 0x10 + i);
	fill(snap, 0x51);
	assert_int_equal(cf_dc_begin(out), CF_OK);
	fill(dg, 0xd0);
	assert_int_equal(cf_dc_add(out, id[0], dg, 2), CF_OK);
	assert_int_equal(cf_dc_add_sub(out, "a", id[1]), CF_OK);
	assert_int_equal(cf_dc_add_sub(out, "b", id[2]), CF_OK);
	fill(dg, 0xd1);
	assert_int_equal(cf_dc_add(out, id[1], dg, 0), CF_OK);
	fill(dg, 0xd2);
	assert_int_equal(cf_dc_add(out, id[2], dg, 1), CF_OK);
	assert_int_equal(cf_dc_add_sub(out, "c", id[3]), CF_OK);
	fill(dg, 0xd3);
	assert_int_equal(cf_dc_add(out, id[3], dg, 0), CF_OK);
	fill(dg, 0xd1);
	assert_int_equal(cf_dc_add(out, id[1], dg, 0), CF_OK);
	cf_dc_finish(out, snap, 5);
}

static void test_roundtrip(void **state)
{
	(void)state;
	struct cf_buf b = CF_BUF_INIT;
	struct cf_dircache dc = CF_DIRCACHE_INIT;
	uint8_t id[CF_DC_ID], want[CF_DC_ID];
	make(&b);
	assert_int_equal(cf_dc_parse(b.data, b.len, &dc), CF_OK);
	assert_int_equal(dc.n, 4); /* 0x11 is listed twice, kept once */
	fill(want, 0x51);
	assert_memory_equal(dc.snapshot, want, CF_DC_ID);
	fill(id, 0x10);
	const struct cf_dc_entry *e = cf_dc_find(&dc, id);
	assert_non_null(e);
	fill(want, 0xd0);
	assert_memory_equal(e->digest, want, CF_DC_ID);
	assert_int_equal(e->nsub, 2);
	const uint8_t *cur = e->subs, *sid;
	const char *nm;
	size_t len;
	cf_dc_sub(&cur, &nm, &len, &sid);
	assert_int_equal(len, 1);
	assert_memory_equal(nm, "a", 1);
	fill(want, 0x11);
	assert_memory_equal(sid, want, CF_DC_ID);
	cf_dc_sub(&cur, &nm, &len, &sid);
	assert_memory_equal(nm, "b", 1);
	fill(want, 0x12);
	assert_memory_equal(sid, want, CF_DC_ID);
	fill(id, 0x12);
	assert_non_null((e = cf_dc_find(&dc, id)));
	assert_int_equal(e->nsub, 1);
	fill(id, 0x14); /* never added */
	assert_null(cf_dc_find(&dc, id));
	fill(id, 0x00);
	assert_null(cf_dc_find(&dc, id));
	cf_dc_release(&dc);
	assert_int_equal(dc.n, 0);
	cf_buf_release(&b);
}

static void expect_refused(const uint8_t *p, size_t n, const char *msg)
{
	struct cf_dircache dc = CF_DIRCACHE_INIT;
	assert_int_equal(cf_dc_parse(p, n, &dc), CF_EFORMAT);
	const char *m = cf_errmsg(CF_EFORMAT);
	if (!strstr(m, msg) && !(!strcmp(msg, "truncated entry") && strstr(m, "count exceeds")))
		fail_msg("expected \"%s\", got \"%s\"", msg, m);
	assert_int_equal(dc.n, 0);
	assert_null(dc.e);
}

static void test_damage(void **state)
{
	(void)state;
	struct cf_buf b = CF_BUF_INIT;
	make(&b);
	uint8_t *p = malloc(b.len + 8);
	assert_non_null(p);
	const size_t head = 4 + 4 + CF_DC_ID + 4, first = head + 2 * CF_DC_ID + 4;

	memcpy(p, b.data, b.len);
	p[0] = 'X';
	expect_refused(p, b.len, "not a directory cache");
	memcpy(p, b.data, b.len);
	p[4] = 2;
	expect_refused(p, b.len, "unknown version");
	memcpy(p, b.data, b.len);
	p[head - 1] = 0x7f; /* count */
	expect_refused(p, b.len, "entry count exceeds the file");
	/* (a short file may show first as a count too large for it) */
	for (size_t cut = 1; cut < b.len - head; cut += 7)
		expect_refused(b.data, b.len - cut, "truncated entry");
	memcpy(p, b.data, b.len);
	p[first] = 0; /* length of "a" */
	p[first + 1] = 0;
	expect_refused(p, b.len, "truncated entry");
	memcpy(p, b.data, b.len);
	p[first + 2] = 0; /* the name "a" becomes a NUL byte */
	expect_refused(p, b.len, "NUL");
	memcpy(p, b.data, b.len);
	p[first + 2] = 'z'; /* "z" before "b" */
	expect_refused(p, b.len, "out of order");
	memcpy(p, b.data, b.len);
	p[first + 2 + 1 + CF_DC_ID + 2] = 'a'; /* "a" twice */
	expect_refused(p, b.len, "out of order");
	memcpy(p, b.data, b.len);
	p[b.len] = 0;
	expect_refused(p, b.len + 1, "trailing bytes");
	expect_refused(p, 3, "not a directory cache");
	free(p);
	cf_buf_release(&b);
}

static void test_names(void **state)
{
	(void)state;
	struct cf_buf b = CF_BUF_INIT;
	uint8_t id[CF_DC_ID] = { 0 };
	assert_int_equal(cf_dc_begin(&b), CF_OK);
	assert_int_equal(cf_dc_add(&b, id, id, 1), CF_OK);
	assert_int_equal(cf_dc_add_sub(&b, "", id), CF_EINVAL);
	cf_buf_release(&b);
}

static void test_default_dir(void **state)
{
	(void)state;
	char d[256];
	setenv("COFFER_CACHE_DIR", "/x/cache", 1);
	assert_true(cf_cache_dir_default(d, sizeof(d)));
	assert_string_equal(d, "/x/cache");
	setenv("COFFER_CACHE_DIR", "off", 1);
	assert_false(cf_cache_dir_default(d, sizeof(d)));
	unsetenv("COFFER_CACHE_DIR");
	setenv("XDG_CACHE_HOME", "/xdg", 1);
	assert_true(cf_cache_dir_default(d, sizeof(d)));
	assert_string_equal(d, "/xdg/coffer");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/u", 1);
	assert_true(cf_cache_dir_default(d, sizeof(d)));
	assert_string_equal(d, "/home/u/.cache/coffer");
	unsetenv("HOME");
	assert_false(cf_cache_dir_default(d, sizeof(d)));
	setenv("HOME", "/home/a-very-long-name", 1);
	assert_false(cf_cache_dir_default(d, 10)); /* does not fit */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_default_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
