/*
 * fuzz_dircache - cf_dc_parse on arbitrary bytes (the payload of the local
 * directory cache, after it was unsealed) must fail cleanly or give entries
 * that can be walked; writing those entries again and parsing the result
 * must give the same entries.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dircache.h"
#include "common/buf.h"
#include "common/error.h"

static void die(const char *what)
{
	fprintf(stderr, "fuzz_dircache: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cf_dircache dc = CF_DIRCACHE_INIT, again = CF_DIRCACHE_INIT;
	struct cf_buf out = CF_BUF_INIT;
	if (cf_dc_parse(data, size, &dc) != CF_OK)
		return 0;
	if (cf_dc_begin(&out) != CF_OK)
		die("begin");
	for (size_t i = 0; i < dc.n; i++) {
		const struct cf_dc_entry *e = &dc.e[i];
		if (cf_dc_find(&dc, e->id) != e)
			die("an entry is not found by its id");
		if (cf_dc_add(&out, e->id, e->digest, e->nsub) != CF_OK)
			die("add");
		const uint8_t *cur = e->subs, *id;
		for (uint32_t k = 0; k < e->nsub; k++) {
			const char *nm;
			size_t len;
			cf_dc_sub(&cur, &nm, &len, &id);
			char *copy = strndup(nm, len);
			if (!copy || strlen(copy) != len)
				die("a name is not what its length says");
			if (cf_dc_add_sub(&out, copy, id) != CF_OK)
				die("add a subdirectory");
			free(copy);
		}
	}
	cf_dc_finish(&out, dc.snapshot, (uint32_t)dc.n);
	if (cf_dc_parse(out.data, out.len, &again) != CF_OK || again.n != dc.n ||
	    memcmp(again.snapshot, dc.snapshot, CF_DC_ID))
		die("written again, it does not parse to the same entries");
	for (size_t i = 0; i < dc.n; i++)
		if (memcmp(again.e[i].id, dc.e[i].id, CF_DC_ID) ||
		    memcmp(again.e[i].digest, dc.e[i].digest, CF_DC_ID) || again.e[i].nsub != dc.e[i].nsub)
			die("an entry changed on the way");
	cf_dc_release(&dc);
	cf_dc_release(&again);
	cf_buf_release(&out);
	return 0;
}
