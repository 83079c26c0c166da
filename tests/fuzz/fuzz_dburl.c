/* libFuzzer target for the database URL parser (sources/dburl.c): any input
 * either parses into a consistent struct or fails cleanly, without leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sources/dburl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cf_dburl u = CF_DBURL_INIT;
	char *s = malloc(size + 1), d[256];

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	if (cf_dburl_parse(&u, s) == 0) {
		if (!u.user || !u.user[0] || !u.host || !u.host[0] || u.port == 0 || u.port > 65535)
			abort();
		for (size_t i = 0; i < u.ndbs; i++)
			if (!u.dbs[i] || !u.dbs[i][0] || strlen(u.dbs[i]) > 64)
				abort();
		cf_dburl_describe(&u, d, sizeof(d));
	}
	cf_dburl_release(&u);
	free(s);
	return 0;
}
