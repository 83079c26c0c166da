/*
 * fuzz_snapshot - cf_snapshot_decode on arbitrary bytes must fail cleanly or
 * give a snapshot that encodes, decodes again and re-encodes to the same
 * bytes; cf_snapshot_to_json must work on it.  Its "sources" must hold no
 * URL with a userinfo (a password is never kept, whatever was stored); the
 * seed sources.0 has one of each kind.  The input's first bytes are
 * also fed to cf_parse_time, whose answers must survive cf_format_time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/error.h"
#include "repo/snapshot.h"

static void die(const char *what, int r)
{
	fprintf(stderr, "fuzz_snapshot: %s: %d %s\n", what, r, cf_errmsg(r));
	abort();
}

static void fuzz_time(const uint8_t *data, size_t size)
{
	char text[64], out[40];
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	int64_t ns, back;

	memcpy(text, data, n);
	text[n] = 0;
	if (cf_parse_time(text, &ns) != CF_OK)
		return;
	cf_format_time(ns, out, sizeof(out));
	if (cf_parse_time(out, &back) != CF_OK || back != ns)
		die("parse(format(parse(x))) differs", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cf_snapshot s = { 0 }, s2 = { 0 };
	struct cf_buf a = CF_BUF_INIT, b = CF_BUF_INIT;
	json_t *j;
	int r;

	fuzz_time(data, size);
	r = cf_snapshot_decode(data, size, &s);
	if (r != CF_OK) {
		if (r != CF_ECORRUPT && r != CF_ENOMEM)
			die("decode returned an unexpected code", r);
		if (s.hostname || s.paths || s.tags || s.sources || s.nsources)
			die("failed decode left memory behind", r);
		return 0;
	}
	for (size_t i = 0; i < s.nsources; i++) {
		const char *u = s.sources[i].url, *sep = u ? strstr(u, "://") : NULL;
		if (!cf_source_kind_name((int)s.sources[i].kind) || !s.sources[i].path)
			die("a decoded source without a kind or path", 0);
		if (u && memchr(sep ? sep + 3 : u, '@', strcspn(sep ? sep + 3 : u, "/?#")))
			die("a decoded source URL kept its userinfo", 0);
	}
	if ((r = cf_snapshot_encode(&s, &a)) != CF_OK)
		die("encode of a decoded snapshot", r);
	if ((r = cf_snapshot_decode(a.data, a.len, &s2)) != CF_OK)
		die("decode of an encoded snapshot", r);
	if ((r = cf_snapshot_encode(&s2, &b)) != CF_OK)
		die("second encode", r);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		die("encode -> decode -> encode changed the bytes", 0);
	if (!(j = cf_snapshot_to_json(&s)))
		die("to_json", 0);
	json_decref(j);
	cf_buf_release(&a);
	cf_buf_release(&b);
	cf_snapshot_release(&s);
	cf_snapshot_release(&s2);
	return 0;
}
