/*
 * fuzz_s3_xml.c - the S3 XML readers (ListObjectsV2 pages, error bodies and
 * DeleteObjects results)
 * on arbitrary bytes: they parse whatever a store, or anything posing as
 * one, sends back.  Checks that neither crashes nor leaks, that a listing
 * either fails or yields only NUL-free keys, and that a truncated page always
 * has a continuation token.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3_int.h"

static int on_item(const char *key, uint64_t size, void *ctx)
{
	(void)size;
	(*(size_t *)ctx) += strlen(key);
	return 0;
}

static int on_delete_error(const char *key, const char *code, const char *message, void *ctx)
{
	(void)code;
	(void)message;
	(*(size_t *)ctx) += strlen(key);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cf_s3_list_page page;
	size_t total = 0;
	if (cf_s3_list_parse((const char *)data, size, on_item, &total, &page) == 0) {
		if (page.truncated && (!page.next_token || !*page.next_token))
			abort();
		free(page.next_token);
	} else if (page.next_token) {
		abort(); /* a failed parse hands out nothing */
	}
	struct cf_s3_error err;
	if (cf_s3_error_parse((const char *)data, size, &err) == 0)
		cf_s3_error_release(&err);
	size_t failed = 0;
	cf_s3_delete_parse((const char *)data, size, on_delete_error, &failed);
	return 0;
}
