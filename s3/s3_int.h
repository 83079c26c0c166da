/*
 * s3_int.h - internals shared by the S3 backend's files (s3.c, s3_url.c,
 * s3_xml.c) and by their tests and fuzz targets.  Not a public API.
 *
 * s3_url.c turns the location the user wrote into where requests go:
 *   "http://HOST:PORT/BUCKET[/PREFIX]", "https://..."  path-style, custom endpoint
 *   "//BUCKET[/PREFIX]"                                 AWS, virtual-hosted style
 * s3_xml.c reads the XML documents the backend needs, with expat:
 * ListObjectsV2 pages, DeleteObjects results and error bodies, and writes
 * the DeleteObjects request.  Both parse untrusted network data
 * and have fuzz targets (tests/fuzz/fuzz_s3_url.c, fuzz_s3_xml.c).
 */
#ifndef CF_S3_INT_H
#define CF_S3_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"

struct cf_s3_loc {
	char *scheme;  /* "http" or "https" */
	char *host;    /* authority sent as Host: "127.0.0.1:16080"; NULL for AWS (from region) */
	char *bucket;
	char *prefix;  /* "" or "a/b" (no leading or trailing slash) */
	bool virtual_hosted;
};

/* Parse url (what follows "s3:") into loc.  CF_OK, or CF_EINVAL with a
 * message naming what is wrong; CF_ENOMEM.  Release with cf_s3_loc_release()
 * either way. */
int cf_s3_loc_parse(const char *url, struct cf_s3_loc *loc);
void cf_s3_loc_release(struct cf_s3_loc *loc);

/* Object key for a repository path: "prefix/path", or path when there is no
 * prefix.  Appended to out.  CF_OK or CF_ENOMEM. */
int cf_s3_loc_key(const struct cf_s3_loc *loc, const char *path, struct cf_buf *out);

/* One page of a ListObjectsV2 answer.  Called once per <Contents>. */
typedef int (*cf_s3_list_item_fn)(const char *key, uint64_t size, void *ctx);

struct cf_s3_list_page {
	bool truncated;
	char *next_token; /* NextContinuationToken, NULL if none; caller frees */
};

/* Parse a ListBucketResult document, calling fn for each object.  CF_OK,
 * CF_ECORRUPT (not XML, no ListBucketResult, a bad Size, truncated without
 * a token), CF_ENOMEM, or the first non-zero value fn returned. */
int cf_s3_list_parse(const char *xml, size_t len, cf_s3_list_item_fn fn, void *ctx,
		     struct cf_s3_list_page *page);
/* The same, with each object's LastModified in ns (-1 when absent or not
 * an ISO 8601 UTC time). */
typedef int (*cf_s3_list_mtime_fn)(const char *key, uint64_t size, int64_t mtime_ns, void *ctx);
int cf_s3_list_parse_mtime(const char *xml, size_t len, cf_s3_list_mtime_fn fn, void *ctx,
			   struct cf_s3_list_page *page);

/* The fields of an S3 <Error> body the backend reports or acts upon.  Each
 * is NULL when absent; release with cf_s3_error_release(). */
struct cf_s3_error {
	char *code;         /* "SignatureDoesNotMatch" */
	char *message;
	char *region;       /* AuthorizationHeaderMalformed: the bucket's region */
	char *request_time; /* RequestTimeTooSkewed */
	char *server_time;
	char *max_skew_ms;  /* MaxAllowedSkewMilliseconds */
};

/* Parse an <Error> document.  CF_OK (fields set), CF_ECORRUPT when it is not
 * an S3 error document (an HTML page from a proxy, say), CF_ENOMEM. */
int cf_s3_error_parse(const char *xml, size_t len, struct cf_s3_error *err);
void cf_s3_error_release(struct cf_s3_error *err);

/* Append the body of a DeleteObjects request (quiet mode: the answer lists
 * only failures) for the keys keys[0..n), XML-escaped.  CF_OK, CF_ENOMEM, or
 * CF_EINVAL for a key with a control character XML cannot carry. */
int cf_s3_delete_body(struct cf_buf *out, const char *const *keys, size_t n);

/* Called for each <Error> of a DeleteResult: a key that was not deleted. */
typedef int (*cf_s3_delete_error_fn)(const char *key, const char *code, const char *message, void *ctx);

/* Parse a DeleteResult document, calling fn for every per-key <Error>
 * (<Deleted> entries are skipped).  CF_OK, CF_ECORRUPT (not XML, no
 * DeleteResult, an Error without a Key), CF_ENOMEM, or fn's first non-zero
 * value. */
int cf_s3_delete_parse(const char *xml, size_t len, cf_s3_delete_error_fn fn, void *ctx);

/* Tests only: seconds added to the clock used for signing, to provoke the
 * store's RequestTimeTooSkewed.  0 in production. */
extern int64_t cf_s3_clock_skew_for_tests;

#endif
