/*
 * fuzz_s3_url.c - the S3 location parser on arbitrary strings (a location
 * comes from the command line or the environment).  A location that parses
 * must have a scheme, a bucket without '/', and a prefix without empty, "."
 * or ".." segments, so that keys built from it are the keys the user meant.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "s3/s3_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	struct cf_s3_loc loc;
	if (cf_s3_loc_parse(s, &loc) == 0) {
		if (!loc.scheme || !loc.bucket || !*loc.bucket || strchr(loc.bucket, '/') || !loc.prefix)
			abort();
		if (!loc.virtual_hosted && (!loc.host || !*loc.host))
			abort();
		size_t pl = strlen(loc.prefix);
		if (pl && (loc.prefix[0] == '/' || loc.prefix[pl - 1] == '/' || strstr(loc.prefix, "//")))
			abort();
		struct cf_buf key = CF_BUF_INIT;
		if (cf_s3_loc_key(&loc, "config", &key) == 0 && strcmp((char *)key.data + key.len - 6, "config"))
			abort();
		cf_buf_release(&key);
	}
	cf_s3_loc_release(&loc);
	free(s);
	return 0;
}
