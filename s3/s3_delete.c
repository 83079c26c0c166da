/*
 * s3_delete.c - the S3 backend's remove_many: DeleteObjects.
 *
 * Paths go in batches of DELETE_MAX_KEYS (S3's limit; tests make them smaller
 * with COFFER_S3_DELETE_MAX_KEYS), each request with
 * the Content-MD5 S3 demands.  The answer's per-key errors are sorted into
 * gone already (fine: what was wanted), transient (sent again in the next
 * round, with backoff, up to max_attempts rounds) and permanent (counted,
 * the first one kept with its message).  A whole batch refused, or an
 * answer that is an <Error> document, counts for every key of it.  The call
 * goes through every batch and then reports how many objects were not
 * removed and the first reason; only running out of memory or an interrupt
 * stops it early.
 */
#include "store/backend.h"
#include "s3/s3_int.h"
#include "s3/sigv4.h"
#include "common/error.h"
#include "common/status.h"
#include "common/util.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

/* ---- DeleteObjects ---- */

/* One batch of at most DELETE_MAX_KEYS paths and what became of them. */
struct del_batch {
	const char *const *paths;
	char **keys;       /* the object keys of paths */
	bool *retry;       /* failed transiently in the last round */
	size_t n;
	size_t nretry;
	size_t failed;     /* failed for good, over the whole call */
	struct cf_status first; /* the first permanent failure */
};

static void note_failure(struct del_batch *d, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note_failure(struct del_batch *d, int code, const char *fmt, ...)
{
	if (!d->failed++) {
		/* formatted into the status in place (there is no va_list
		 * cf_err()); reported, with the count, after the last batch */
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(d->first.msg, sizeof(d->first.msg), fmt, ap);
		va_end(ap);
		d->first.code = code;
	}
}

static int on_delete_error(const char *key, const char *code, const char *message, void *ctx)
{
	struct del_batch *d = ctx;
	size_t i;
	for (i = 0; i < d->n && strcmp(d->keys[i], key); i++)
		;
	if (i == d->n)
		return cf_err(CF_ECORRUPT, "S3 DeleteObjects answer names a key not asked for: \"%.200s\"", key);
	if (!strcmp(code, "NoSuchKey"))
		return 0; /* gone already: what was wanted */
	if (s3_transient_code(code)) {
		if (!d->retry[i])
			d->nretry++;
		d->retry[i] = true;
		return 0;
	}
	note_failure(d, !strcmp(code, "AccessDenied") ? CF_EPERM : CF_ES3, "%s: %s%s%s", d->paths[i],
		     *code ? code : "(no error code)", *message ? ": " : "", message);
	return 0;
}

/* base64 of the body's MD5, which S3 demands on DeleteObjects so that a
 * damaged list cannot delete the wrong objects. */
static int content_md5(const struct cf_buf *body, char out[25])
{
	unsigned char md[16];
	unsigned int mdlen = 0;
	if (!EVP_Digest(body->data, body->len, md, &mdlen, EVP_md5(), NULL) || mdlen != 16)
		return cf_err(CF_ECRYPTO, "MD5 failed (libcrypto)");
	EVP_EncodeBlock((unsigned char *)out, md, 16);
	return CF_OK;
}

/* Delete one batch: one request, then the keys that failed transiently
 * again (with backoff) until they are gone or the attempts are spent.
 * Returns non-zero only when the caller should not go on to more batches
 * (out of memory, interrupted); failures are counted in d. */
static int delete_batch(struct s3_backend *be, struct del_batch *d)
{
	struct cf_buf body = CF_BUF_INIT, answer = CF_BUF_INIT;
	const char **sel = calloc(d->n, sizeof(*sel));
	static const struct cf_sigv4_pair q[] = { { "delete", "" } };
	int r = CF_OK;
	if (!sel)
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < d->n; i++)
		d->retry[i] = true;
	d->nretry = d->n;
	for (int round = 1; d->nretry; round++) {
		size_t k = 0;
		char md5[25];
		for (size_t i = 0; i < d->n; i++)
			if (d->retry[i])
				sel[k++] = d->keys[i];
		if (round > be->max_attempts) {
			for (size_t i = 0; i < d->n; i++)
				if (d->retry[i])
					note_failure(d, CF_EAGAIN, "%s: still refused after %d attempts (transient error)",
						     d->paths[i], be->max_attempts);
			break;
		}
		if (round > 1) {
			double w = BACKOFF_BASE * (double)(1ULL << (round - 2 < 20 ? round - 2 : 20));
			s3_backoff_sleep(w < BACKOFF_CAP ? w : BACKOFF_CAP);
			if (cf_interrupt_pending()) {
				r = cf_err(CF_EINTR, "S3 DeleteObjects %s: interrupted", be->base.location);
				goto out;
			}
		}
		cf_buf_reset(&body);
		if ((r = cf_s3_delete_body(&body, sel, k)) || (r = content_md5(&body, md5)))
			goto out;
		struct iovec v = { body.data, body.len };
		struct s3_req req = { .method = "POST", .query = q, .nquery = 1, .iov = &v, .niov = 1,
				      .body_len = body.len, .content_md5 = md5, .out = &answer, .max = ANSWER_MAX };
		int rq = s3_do(be, &req);
		if (rq == CF_ENOMEM || rq == CF_EINTR) {
			r = rq;
			goto out;
		}
		if (rq) {
			/* The whole request was refused: every key of it failed alike. */
			char msg[1024];
			snprintf(msg, sizeof(msg), "%s", cf_errmsg(rq));
			for (size_t i = 0; i < d->n; i++)
				if (d->retry[i])
					note_failure(d, rq, "%s", msg);
			break;
		}
		for (size_t i = 0; i < d->n; i++)
			d->retry[i] = false;
		d->nretry = 0;
		int pr = cf_s3_delete_parse((char *)answer.data, answer.len, on_delete_error, d);
		if (pr == CF_ENOMEM) {
			r = pr;
			goto out;
		}
		if (pr) {
			/* Some stores answer 200 with an <Error> document. */
			struct cf_s3_error e = { 0 };
			char msg[1024];
			bool again = !cf_s3_error_parse((char *)answer.data, answer.len, &e) && s3_transient_code(e.code);
			snprintf(msg, sizeof(msg), "S3 DeleteObjects %s: %s%s%s", be->base.location,
				 e.code ? e.code : cf_errmsg(pr), e.message ? ": " : "", e.message ? e.message : "");
			cf_s3_error_release(&e);
			for (size_t i = 0; i < d->n; i++)
				d->retry[i] = false; /* whatever was read before the damage */
			d->nretry = 0;
			for (size_t j = 0; j < k; j++) {
				size_t i;
				for (i = 0; i < d->n && d->keys[i] != sel[j]; i++)
					;
				if (again) {
					d->retry[i] = true;
					d->nretry++;
				} else {
					note_failure(d, CF_ES3, "%s", msg);
				}
			}
		}
		if (d->nretry)
			cf_info("S3 DeleteObjects %s: %zu of %zu objects refused for now; attempt %d of %d",
				be->base.location, d->nretry, k, round, be->max_attempts);
	}
out:
	free(sel);
	cf_buf_release(&body);
	cf_buf_release(&answer);
	return r;
}

int s3_remove_many(struct cf_backend *b, const char *const *paths, size_t n)
{
	struct s3_backend *be = S3(b);
	struct del_batch d = { 0 };
	struct cf_buf key = CF_BUF_INIT;
	size_t cap = n < (size_t)be->delete_max_keys ? n : (size_t)be->delete_max_keys;
	int r = CF_OK;
	d.keys = calloc(cap ? cap : 1, sizeof(*d.keys));
	d.retry = calloc(cap ? cap : 1, sizeof(*d.retry));
	if (!d.keys || !d.retry) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t at = 0; at < n; at += d.n) {
		d.paths = paths + at;
		d.n = n - at < cap ? n - at : cap;
		for (size_t i = 0; i < d.n; i++) {
			cf_buf_reset(&key);
			free(d.keys[i]);
			d.keys[i] = NULL;
			if ((r = cf_s3_loc_key(&be->loc, d.paths[i], &key)))
				goto out;
			if (!(d.keys[i] = strdup((char *)key.data))) {
				r = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
		}
		if ((r = delete_batch(be, &d))) {
			d.failed += n - at; /* this batch and the rest were not (all) done */
			goto out;
		}
	}
out:
	if (!r && d.failed)
		r = cf_err(d.first.code, "S3 DeleteObjects %s: %zu of %zu objects not removed; the first: %s",
			   b->location, d.failed, n, d.first.msg);
	else if (r && r != CF_ENOMEM)
		r = cf_err_prefix(r, "S3 DeleteObjects %s: stopped, up to %zu of %zu objects not removed",
				  b->location, d.failed, n);
	for (size_t i = 0; d.keys && i < cap; i++)
		free(d.keys[i]);
	free(d.keys);
	free(d.retry);
	cf_buf_release(&key);
	return r;
}
