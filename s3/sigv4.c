/* sigv4.c - AWS Signature Version 4, header form.  See sigv4.h. */
#include "s3/sigv4.h"
#include "common/error.h"
#include "common/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int cf_sigv4_encode(struct cf_buf *out, const char *s, size_t n, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	int r = cf_buf_grow(out, 3 * n);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/')) {
			out->data[out->len++] = c;
		} else {
			out->data[out->len++] = '%';
			out->data[out->len++] = hex[c >> 4];
			out->data[out->len++] = hex[c & 15];
		}
	}
	out->data[out->len] = 0;
	return CF_OK;
}

struct enc_pair {
	char *name;
	char *value;
};

static int cmp_enc_pair(const void *a, const void *b)
{
	const struct enc_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

static char *encode_dup(const char *s, bool keep_slash)
{
	struct cf_buf b = CF_BUF_INIT;
	if (cf_buf_grow(&b, 0) || cf_sigv4_encode(&b, s ? s : "", s ? strlen(s) : 0, keep_slash)) {
		cf_buf_release(&b);
		return NULL;
	}
	return (char *)b.data;
}

int cf_sigv4_query(struct cf_buf *out, const struct cf_sigv4_pair *q, size_t n)
{
	int r = CF_OK;
	struct enc_pair *v = n ? calloc(n, sizeof(*v)) : NULL;
	if (n && !v)
		return cf_err(CF_ENOMEM, "out of memory signing a request");
	for (size_t i = 0; i < n; i++) {
		v[i].name = encode_dup(q[i].name, false);
		v[i].value = encode_dup(q[i].value, false);
		if (!v[i].name || !v[i].value) {
			r = cf_err(CF_ENOMEM, "out of memory signing a request");
			goto out;
		}
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_enc_pair);
	for (size_t i = 0; i < n && !r; i++)
		r = cf_buf_addf(out, "%s%s=%s", i ? "&" : "", v[i].name, v[i].value);
out:
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
	return r;
}

int cf_sigv4_sha256_hex(const void *p, size_t n, char hex[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return cf_err(CF_ECRYPTO, "SHA-256 failed (libcrypto)");
	cf_hex(md, 32, hex);
	return CF_OK;
}

int cf_sigv4_sha256_iov_hex(const struct iovec *iov, int n, char hex[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	int ok;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return cf_err(CF_ENOMEM, "out of memory");
	ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	for (int i = 0; ok && i < n; i++)
		ok = EVP_DigestUpdate(c, iov[i].iov_base, iov[i].iov_len);
	ok = ok && EVP_DigestFinal_ex(c, md, &mdlen) && mdlen == 32;
	EVP_MD_CTX_free(c);
	if (!ok)
		return cf_err(CF_ECRYPTO, "SHA-256 failed (libcrypto)");
	cf_hex(md, 32, hex);
	return CF_OK;
}

static int hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
	unsigned int len = 0;
	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &len) ||
	    len != 32)
		return cf_err(CF_ECRYPTO, "HMAC-SHA-256 failed (libcrypto)");
	return CF_OK;
}

/* A header as it enters the canonical form: lowercase name, value trimmed
 * with inner whitespace runs (including folded lines) squeezed to one space. */
struct canon_header {
	char *name;
	char *value;
	size_t order; /* position in the request: duplicates keep their order */
};

static int cmp_canon_header(const void *a, const void *b)
{
	const struct canon_header *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int canon_header_set(struct canon_header *h, const char *name, const char *value, size_t order)
{
	size_t nl = strlen(name), vl = value ? strlen(value) : 0;
	h->order = order;
	h->name = malloc(nl + 1);
	h->value = malloc(vl + 1);
	if (!h->name || !h->value)
		return cf_err(CF_ENOMEM, "out of memory signing a request");
	for (size_t i = 0; i <= nl; i++)
		h->name[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
	size_t o = 0;
	bool pending_space = false;
	for (size_t i = 0; i < vl; i++) {
		if (is_ws(value[i])) {
			pending_space = o > 0;
			continue;
		}
		if (pending_space)
			h->value[o++] = ' ';
		pending_space = false;
		h->value[o++] = value[i];
	}
	h->value[o] = 0;
	return CF_OK;
}

static int format_amz_date(int64_t t, char out[17], char day[9])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (t < 0 || t > 253402300799LL || !gmtime_r(&tt, &tm)) /* up to 9999-12-31 */
		return cf_err(CF_EINVAL, "SigV4: timestamp %lld out of range", (long long)t);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
	memcpy(day, out, 8);
	day[8] = 0;
	return CF_OK;
}

/* Canonical headers block plus the signed-headers list. */
static int canonical_headers(const struct cf_sigv4_request *req, const struct cf_sigv4_creds *creds,
			     const char *amz_date, struct cf_buf *cr, struct cf_buf *signed_hdrs)
{
	size_t n = req->nheaders + 2;
	struct canon_header *h = calloc(n, sizeof(*h));
	size_t k = 0;
	int r = CF_OK;
	if (!h)
		return cf_err(CF_ENOMEM, "out of memory signing a request");
	for (size_t i = 0; i < req->nheaders; i++) {
		if (!req->headers[i].name)
			continue;
		if ((r = canon_header_set(&h[k], req->headers[i].name, req->headers[i].value, k)))
			goto out;
		k++;
	}
	if ((r = canon_header_set(&h[k], "x-amz-date", amz_date, k)))
		goto out;
	k++;
	if (creds->session_token && *creds->session_token) {
		if ((r = canon_header_set(&h[k], "x-amz-security-token", creds->session_token, k)))
			goto out;
		k++;
	}
	qsort(h, k, sizeof(*h), cmp_canon_header);
	for (size_t i = 0; i < k && !r; i++) {
		bool same = i > 0 && !strcmp(h[i].name, h[i - 1].name);
		if (same) {
			r = cf_buf_addf(cr, ",%s", h[i].value);
			continue;
		}
		if (i > 0 && (r = cf_buf_adds(cr, "\n")))
			break;
		r = cf_buf_addf(cr, "%s:%s", h[i].name, h[i].value);
		if (!r)
			r = cf_buf_addf(signed_hdrs, "%s%s", signed_hdrs->len ? ";" : "", h[i].name);
	}
	if (!r)
		r = cf_buf_adds(cr, "\n\n");
out:
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
	return r;
}

int cf_sigv4_sign(const struct cf_sigv4_request *req, const struct cf_sigv4_creds *creds,
		  struct cf_sigv4_result *res)
{
	struct cf_buf signed_hdrs = CF_BUF_INIT, key = CF_BUF_INIT;
	char day[9], scope_hash[65];
	unsigned char k[32];
	int r;

	cf_buf_reset(&res->canonical_request);
	cf_buf_reset(&res->string_to_sign);
	cf_buf_reset(&res->authorization);
	if (!req->method || !req->uri || !req->payload_hash || !req->region || !req->service ||
	    !creds->access_key || !creds->secret_key)
		return cf_err(CF_EINVAL, "SigV4: incomplete request or credentials");
	if ((r = format_amz_date(req->time, res->amz_date, day)))
		return r;

	struct cf_buf *cr = &res->canonical_request;
	if ((r = cf_buf_addf(cr, "%s\n%s\n", req->method, req->uri)) ||
	    (r = cf_sigv4_query(cr, req->query, req->nquery)) || (r = cf_buf_adds(cr, "\n")) ||
	    (r = cf_buf_grow(&signed_hdrs, 0)) ||
	    (r = canonical_headers(req, creds, res->amz_date, cr, &signed_hdrs)) ||
	    (r = cf_buf_addf(cr, "%s\n%s", (char *)signed_hdrs.data, req->payload_hash)))
		goto out;

	if ((r = cf_sigv4_sha256_hex(cr->data, cr->len, scope_hash)))
		goto out;
	if ((r = cf_buf_addf(&res->string_to_sign, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
			     res->amz_date, day, req->region, req->service, scope_hash)))
		goto out;

	if ((r = cf_buf_addf(&key, "AWS4%s", creds->secret_key)) ||
	    (r = hmac(key.data, key.len, day, k)) || (r = hmac(k, 32, req->region, k)) ||
	    (r = hmac(k, 32, req->service, k)) || (r = hmac(k, 32, "aws4_request", k)) ||
	    (r = hmac(k, 32, (char *)res->string_to_sign.data, k)))
		goto out;
	cf_hex(k, 32, res->signature);

	r = cf_buf_addf(&res->authorization,
			"AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
			creds->access_key, day, req->region, req->service, (char *)signed_hdrs.data,
			res->signature);
out:
	/* The derived key and "AWS4<secret>" are as good as the secret. */
	OPENSSL_cleanse(k, sizeof(k));
	if (key.data)
		OPENSSL_cleanse(key.data, key.cap);
	cf_buf_release(&key);
	cf_buf_release(&signed_hdrs);
	return r;
}

void cf_sigv4_result_release(struct cf_sigv4_result *res)
{
	cf_buf_release(&res->canonical_request);
	cf_buf_release(&res->string_to_sign);
	cf_buf_release(&res->authorization);
	memset(res->signature, 0, sizeof(res->signature));
	res->amz_date[0] = 0;
}
