/*
 * s3_int.h - internals shared by the S3 backend's files (s3.c,
 * s3_request.c, s3_delete.c, s3_list.c, s3_url.c, s3_xml.c) and by their
 * tests and fuzz targets.  Not a public API.
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

#include <curl/curl.h>
#include <pthread.h>
#include <sys/uio.h>

#include "store/backend.h"
#include "s3/sigv4.h"

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

/* ---- the backend's own internals: s3.c, s3_request.c, s3_delete.c, s3_list.c ---- */

#define DEFAULT_CONNECTIONS 6
#define DEFAULT_ATTEMPTS 8
#define BACKOFF_BASE 0.2   /* seconds before the second attempt */
#define BACKOFF_CAP 60.0   /* no single wait is longer */
#define LIST_MAX_KEYS 1000 /* S3's own page limit */
#define DELETE_MAX_KEYS 1000 /* and DeleteObjects' */
#define STALL_TIMEOUT 60   /* seconds */
#define LOW_SPEED 1024     /* bytes/s: slower than this for stall_timeout s is a stall */
#define LIST_PAGE_MAX ((size_t)16 << 20) /* a ListObjectsV2 page (1000 keys of <= 1 KiB: ~1.5 MB) */
#define ANSWER_MAX ((size_t)16 << 20)    /* a DeleteObjects result, a CreateBucket answer */
#define ERROR_BODY_MAX ((size_t)16 << 10) /* an <Error> document: the rest is dropped */
#define LIST_MAX_OBJECTS 10000000 /* more under one directory is not a repository */
#define LIST_IDLE_PAGES 100 /* truncated pages in a row that bring no new name */
#define POLL_MS 100        /* how often a transfer looks at cf_interrupted */


struct s3_handle {
	CURL *curl;
	CURLM *multi; /* drives curl, polled every POLL_MS (see perform()) */
	struct s3_handle *next;
};

struct s3_backend {
	struct cf_backend base;
	struct cf_s3_loc loc;
	char *access_key, *secret_key, *session_token;
	char *cacert;
	int connections, max_attempts, list_max_keys, delete_max_keys;
	int stall_timeout; /* seconds below low_speed before a transfer is retried */
	long low_speed;    /* bytes/s */
	bool sign_payload; /* bodies' SHA-256 in the signature (http, or asked for) */

	pthread_mutex_t mu; /* guards the pool and region */
	pthread_cond_t cond;
	struct s3_handle *idle;
	int nhandles;
	char region[64]; /* may be corrected by the store's region error */

	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
};

/* One logical request; s3_do() fills the results. */
struct s3_req {
	const char *method;
	const char *path; /* repository path; NULL for the bucket itself */
	const struct cf_sigv4_pair *query;
	size_t nquery;
	const struct iovec *iov; /* the body, in pieces (niov 0: none) */
	int niov;
	size_t body_len;         /* the sum of the pieces */
	const uint8_t *sha256;   /* the body's SHA-256 if the caller knows it, else NULL */
	const char *content_md5; /* base64, signed and sent; NULL: none */
	const char *range;       /* "bytes=0-9" or NULL */
	bool head;
	struct cf_buf *out; /* response body; NULL: discard */
	uint64_t max;       /* most bytes a 2xx body may have (0: ERROR_BODY_MAX) */
	uint64_t range_off; /* a ranged GET into out: where the range starts (a 200 */
	bool ranged;        /* answer, the whole object, is cut to [range_off, +max)) */
	struct s3_stream *stream; /* a streamed GET (then range is set per attempt), or NULL */
	/* results */
	long status;
	int64_t content_length;
};

/* A streamed range: a 2xx answer's body goes to fn as it arrives, the
 * first `done` bytes were handed over by earlier attempts (so the next one
 * asks for the rest), and rc is fn's error, which ends the request. */
struct s3_stream {
	cf_stream_fn fn;
	void *ctx;
	uint64_t off, len, done;
	int rc;
	char range[64];
};

static inline struct s3_backend *S3(struct cf_backend *be)
{
	return (struct s3_backend *)be;
}

/* Run one logical request (s3_request.c): sign, send, retry transient
 * failures with backoff, classify the answer.  CF_OK with req's results
 * (status, content_length, the body in out or the stream) set; otherwise
 * the code (CF_ENOENT for a 404, CF_EPERM or CF_ES3 for a refusal, with the
 * store's Code and Message; CF_EAGAIN once the attempts are spent; CF_EIO,
 * CF_EINTR, CF_ECORRUPT for an answer over its cap, CF_ENOMEM) with a
 * message naming the method and the object. */
int s3_do(struct s3_backend *be, struct s3_req *req);

/* Whether an S3 error Code is worth retrying (SlowDown, InternalError, ...). */
bool s3_transient_code(const char *code);

/* Sleep a jittered [seconds/2, seconds], waking early on cf_interrupted. */
void s3_backoff_sleep(double seconds);

/* The vtable's remove_many (s3_delete.c), list and list_mtime (s3_list.c). */
int s3_remove_many(struct cf_backend *b, const char *const *paths, size_t n);
int s3_list(struct cf_backend *b, const char *dir, cf_list_fn fn, void *ctx);
int s3_list_mtime(struct cf_backend *b, const char *dir, cf_list_mtime_fn fn, void *ctx);

#endif
