/*
 * fuzz_tree - cf_tree_decode on arbitrary bytes must fail cleanly or give a
 * tree that encodes, decodes again and re-encodes to the same bytes (the
 * canonical form is a fixed point), with every decoded name acceptable.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/error.h"
#include "repo/tree.h"

static void die(const char *what, int r)
{
	fprintf(stderr, "fuzz_tree: %s: %d %s\n", what, r, cf_errmsg(r));
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cf_tree t = CF_TREE_INIT, t2 = CF_TREE_INIT;
	struct cf_buf a = CF_BUF_INIT, b = CF_BUF_INIT;
	int r;

	r = cf_tree_decode(data, size, &t);
	if (r != CF_OK) {
		if (r != CF_ECORRUPT && r != CF_ENOMEM)
			die("decode returned an unexpected code", r);
		if (t.nodes || t.n)
			die("failed decode left nodes behind", r);
		return 0;
	}
	for (size_t i = 0; i < t.n; i++) {
		if (!cf_name_ok(t.nodes[i].name))
			die("decoded a bad name", 0);
		if (i && strcmp(t.nodes[i - 1].name, t.nodes[i].name) >= 0)
			die("decoded unsorted names", 0);
		if (cf_tree_find(&t, t.nodes[i].name) != &t.nodes[i])
			die("find does not find a decoded node", 0);
	}
	if ((r = cf_tree_encode(&t, &a)) != CF_OK)
		die("encode of a decoded tree", r);
	if ((r = cf_tree_decode(a.data, a.len, &t2)) != CF_OK)
		die("decode of an encoded tree", r);
	if ((r = cf_tree_encode(&t2, &b)) != CF_OK)
		die("second encode", r);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		die("encode -> decode -> encode changed the bytes", 0);
	cf_buf_release(&a);
	cf_buf_release(&b);
	cf_tree_release(&t);
	cf_tree_release(&t2);
	return 0;
}
