/* fuzz_repo_parsers.c - index files, pack headers, config and locks, after
 * unsealing (sealed input would only exercise the AEAD's rejection), and a
 * format-3 pack's name (its trailer gives the length of what is hashed).
 * The first byte picks the parser. */
#include "repo/repo_int.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

static int count(const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx)
{
	(void)packid;
	(void)e;
	(*(size_t *)ctx)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 5) {
	case 0: {
		size_t k = 0;
		cf_index_parse("fuzz", p, n, count, &k);
		break;
	}
	case 1: {
		struct cf_pack_entry *e = NULL;
		size_t cnt = 0;
		if (cf_pack_header_parse(p, n, 1u << 24, &e, &cnt) == CF_OK) {
			for (size_t i = 0; i < cnt; i++)
				if ((uint64_t)e[i].offset + e[i].length > (1u << 24))
					abort();
		}
		free(e);
		break;
	}
	case 3: {
		static struct cf_repo r; /* only its format version is read */
		uint8_t id[CF_ID_LEN];
		r.cfg.version = 3;
		cf_pack_name(&r, p, n, id);
		break;
	}
	case 4: {
		/* a lock another process (or a hostile store) wrote; the judge
		 * must cope with whatever it holds */
		struct cf_lock_info li;
		struct cf_lock_id self;
		memset(&self, 0, sizeof(self));
		if (cf_lock_decode(p, n, &li) == CF_OK)
			(void)cf_lock_judge(&li, &self, cf_now_ns(), 1800LL * 1000000000);
		break;
	}
	default: {
		struct cf_repo_config c;
		cf_config_decode(p, n, &c);
		break;
	}
	}
	return 0;
}
