/*
 * sigv4.h - AWS Signature Version 4 (header signing) as a pure function.
 *
 * Every request to an S3 store carries an Authorization header that proves
 * the sender knows the secret key and binds the method, path, query, chosen
 * headers and the SHA-256 of the body to a timestamp.  The store recomputes
 * the same "canonical request" from what it received and refuses the request
 * (403 SignatureDoesNotMatch) if one byte differs.  So the signer must produce
 * exactly the bytes the client then sends: the S3 client builds its URL query
 * with cf_sigv4_query() and its path with cf_sigv4_encode(), the same
 * functions the signer uses.
 *
 * The signer does no I/O and reads no clock: the caller passes the time.
 * That makes it testable byte for byte against the AWS test suite
 * (tests/data/aws-sigv4) and lets a test sign "in the past" to provoke the
 * store's clock-skew check.
 *
 * Calling sequence:
 *	struct cf_sigv4_result res = CF_SIGV4_RESULT_INIT;
 *	r = cf_sigv4_sign(&req, &creds, &res);
 *	... send res.amz_date as x-amz-date, res.authorization as Authorization ...
 *	cf_sigv4_result_release(&res);
 *
 * SHA-256 and HMAC come from OpenSSL's libcrypto (only crypto/ may use
 * libsodium, and this is transport, not repository cryptography).
 */
#ifndef CF_SIGV4_H
#define CF_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "common/buf.h"

/* SHA-256 of nothing, the payload hash of every body-less request. */
#define CF_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A query parameter or header, both strings raw (not percent-encoded). */
struct cf_sigv4_pair {
	const char *name;
	const char *value; /* NULL or "" for a valueless subresource ("uploads") */
};

struct cf_sigv4_creds {
	const char *access_key;
	const char *secret_key;
	const char *session_token; /* NULL when not using temporary credentials */
};

struct cf_sigv4_request {
	const char *method;       /* "GET", "PUT", ... */
	const char *uri;          /* canonical URI, already percent-encoded ("/bucket/a%20b") */
	const struct cf_sigv4_pair *query;
	size_t nquery;
	/* Headers to sign, as sent; must include "host".  x-amz-date and
	 * x-amz-security-token are added by the signer. */
	const struct cf_sigv4_pair *headers;
	size_t nheaders;
	const char *payload_hash; /* lowercase hex SHA-256 of the body */
	const char *region;       /* "us-east-1" */
	const char *service;      /* "s3" */
	int64_t time;             /* seconds since the epoch, UTC */
};

struct cf_sigv4_result {
	struct cf_buf canonical_request;
	struct cf_buf string_to_sign;
	struct cf_buf authorization; /* value of the Authorization header */
	char signature[65];          /* lowercase hex */
	char amz_date[17];           /* "20150830T123600Z", value of x-amz-date */
};

#define CF_SIGV4_RESULT_INIT { CF_BUF_INIT, CF_BUF_INIT, CF_BUF_INIT, "", "" }

/* Sign req with creds into res (whose buffers are replaced).  The session
 * token, if any, is signed as x-amz-security-token and must be sent as that
 * header.  CF_OK, CF_EINVAL (missing field, time out of range), CF_ENOMEM or
 * CF_ECRYPTO.  res is released by the caller with cf_sigv4_result_release()
 * on success and failure alike. */
int cf_sigv4_sign(const struct cf_sigv4_request *req, const struct cf_sigv4_creds *creds,
		  struct cf_sigv4_result *res);

/* Free res's buffers and wipe the signature. */
void cf_sigv4_result_release(struct cf_sigv4_result *res);

/* Append s[0..n) to out percent-encoded the SigV4 way: every byte but
 * A-Za-z0-9-._~ becomes %XX (uppercase hex); '/' is kept when keep_slash.
 * S3 object paths use keep_slash=true, encoding each segment once; query
 * names and values use false.  CF_OK or CF_ENOMEM. */
int cf_sigv4_encode(struct cf_buf *out, const char *s, size_t n, bool keep_slash);

/* Append the canonical query string for q[0..n): names and values encoded,
 * sorted by encoded name then value, "name=value" joined by '&', a valueless
 * parameter written "name=".  The same string is the URL's query, so the
 * signed and the sent query cannot differ.  CF_OK or CF_ENOMEM. */
int cf_sigv4_query(struct cf_buf *out, const struct cf_sigv4_pair *q, size_t n);

/* Lowercase hex SHA-256 of p[0..n) into hex (65 bytes).  CF_OK or CF_ECRYPTO. */
int cf_sigv4_sha256_hex(const void *p, size_t n, char hex[65]);

/* The same over the concatenation of iov[0..n) (a body sent in pieces). */
struct iovec;
int cf_sigv4_sha256_iov_hex(const struct iovec *iov, int n, char hex[65]);

#endif
