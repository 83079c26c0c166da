/*
 * s3.c - the S3 backend: repository objects in an S3-compatible object store
 * (AWS S3, MinIO, Swift's s3api, R2, B2), over libcurl, signed with SigV4.
 *
 * This file is the backend as the store layer sees it: cf_backend_s3_new()
 * reads the location, the credentials (AWS_ACCESS_KEY_ID and friends, or
 * their _FILE forms: Docker secrets) and the settings, and fills the vtable.
 * Each operation is one logical request handed to s3_do() (s3_request.c:
 * the handle pool, signing, retries, the caps on every answer);
 * remove_many is DeleteObjects (s3_delete.c) and list is ListObjectsV2
 * with its guards against a store that never ends a listing (s3_list.c).
 * The store-facing internals they share are in s3_int.h.
 *
 * Over plain http, bodies are signed with their real SHA-256
 * (x-amz-content-sha256), so the store rejects a body damaged in transit.
 * Over https, TLS already authenticates every byte between coffer and the
 * TLS endpoint, and a body goes out as UNSIGNED-PAYLOAD (as restic's
 * minio-go uploads over https do): the hash costs both ends about 1 CPU s
 * per GiB (doc/s3.md, doc/benchmarks.md).  opts->sign_payload
 * (--s3-sign-payload) signs them over https too, for a TLS endpoint that is
 * not the store (a proxy that forwards plain http).
 */
#include "store/backend.h"
#include "s3/s3_int.h"
#include "s3/sigv4.h"
#include "common/error.h"
#include "common/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- credentials and settings from the environment ---- */

/* NAME from the environment, or the contents of the file NAME_FILE names
 * (Docker secrets), trailing newlines stripped.  *out NULL when neither. */
static int env_secret(const char *name, char **out)
{
	char fname[64];
	*out = NULL;
	const char *v = getenv(name);
	if (v && *v) {
		*out = strdup(v);
		return *out ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
	}
	snprintf(fname, sizeof(fname), "%s_FILE", name);
	const char *path = getenv(fname);
	if (!path || !*path)
		return CF_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cf_err_errno("cannot read %s=%s", fname, path);
	char buf[4096];
	ssize_t n = cf_read_full(fd, buf, sizeof(buf));
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return cf_err_errno("cannot read %s=%s", fname, path);
	}
	if (n == (ssize_t)sizeof(buf))
		return cf_err(CF_EINVAL, "%s=%s: file too large for a credential", fname, path);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0)
		return CF_OK; /* an empty file counts as unset */
	*out = strndup(buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
	return *out ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* ---- the curl share: DNS and TLS sessions between handles ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access acc, void *ud)
{
	(void)h;
	(void)acc;
	struct s3_backend *be = ud;
	pthread_mutex_lock(&be->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	(void)h;
	struct s3_backend *be = ud;
	pthread_mutex_unlock(&be->share_mu[data]);
}

/* ---- the vtable ---- */

static int s3_put_iov(struct cf_backend *b, const char *path, const struct iovec *iov, int n,
		      const uint8_t *sha256)
{
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	struct s3_req req = { .method = "PUT", .path = path, .iov = iov, .niov = n, .body_len = len,
			      .sha256 = sha256 };
	return s3_do(S3(b), &req);
}

static int s3_put(struct cf_backend *b, const char *path, const void *data, size_t len)
{
	struct iovec v = { (void *)data, len };
	return s3_put_iov(b, path, &v, 1, NULL);
}

static int s3_get(struct cf_backend *b, const char *path, struct cf_buf *out)
{
	struct s3_req req = { .method = "GET", .path = path, .out = out, .max = cf_be_object_max(path) };
	return s3_do(S3(b), &req);
}

static int s3_stat(struct cf_backend *b, const char *path, uint64_t *size)
{
	struct s3_req req = { .method = "HEAD", .path = path, .head = true };
	int r = s3_do(S3(b), &req);
	if (r == CF_EPERM || r == CF_ES3) {
		/* A HEAD refusal has no body: a one-byte GET fetches the store's
		 * Code and Message so the user learns why. */
		struct cf_buf tmp = CF_BUF_INIT;
		struct s3_req get = { .method = "GET", .path = path, .range = "bytes=0-0", .out = &tmp,
				      .max = 1, .ranged = true };
		int r2 = s3_do(S3(b), &get);
		cf_buf_release(&tmp);
		if (r2 != CF_OK && r2 != CF_ECORRUPT)
			r = r2;
	}
	if (r)
		return r;
	if (req.content_length < 0)
		return cf_err(CF_ES3, "S3 HEAD %s/%s: no Content-Length in the answer", b->location, path);
	if (size)
		*size = (uint64_t)req.content_length;
	return CF_OK;
}

static int s3_get_range(struct cf_backend *b, const char *path, uint64_t off, size_t len,
			struct cf_buf *out)
{
	char range[64];
	if (len == 0) {
		uint64_t size;
		cf_buf_reset(out);
		int r = s3_stat(b, path, &size);
		if (!r && off > size)
			r = cf_err(CF_ECORRUPT, "S3 %s/%s: offset %" PRIu64 " beyond its end", b->location, path, off);
		return r;
	}
	if (off > UINT64_MAX - len)
		return cf_err(CF_EINVAL, "S3 %s/%s: range overflows", b->location, path);
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
	/* A store that ignores the range answers 200 with the whole object:
	 * on_body keeps only the range of it, and stops there. */
	struct s3_req req = { .method = "GET", .path = path, .range = range, .out = out, .max = len,
			      .ranged = true, .range_off = off };
	int r = s3_do(S3(b), &req);
	if (r)
		return r;
	if (out->len != len) {
		size_t got = out->len;
		cf_buf_reset(out);
		return cf_err(CF_ECORRUPT, "S3 %s/%s: asked for %zu bytes at %" PRIu64 ", got %zu (object too short)",
			      b->location, path, len, off, got);
	}
	return CF_OK;
}

static int s3_get_range_stream(struct cf_backend *b, const char *path, uint64_t off, size_t len,
			       cf_stream_fn fn, void *ctx)
{
	if (len == 0 || off > UINT64_MAX - len)
		return cf_err(CF_EINVAL, "S3 %s/%s: bad range of %zu bytes at %" PRIu64, b->location, path, len, off);
	struct s3_stream sm = { .fn = fn, .ctx = ctx, .off = off, .len = len };
	struct s3_req req = { .method = "GET", .path = path, .stream = &sm };
	int r = s3_do(S3(b), &req);
	if (!r && sm.done != len)
		r = cf_err(CF_ECORRUPT, "S3 %s/%s: asked for %zu bytes at %" PRIu64 ", got %" PRIu64
				" (object too short)", b->location, path, len, off, sm.done);
	return r;
}

static int s3_remove(struct cf_backend *b, const char *path)
{
	struct s3_req req = { .method = "DELETE", .path = path };
	int r = s3_do(S3(b), &req);
	if (r == CF_ENOENT) {
		cf_err_clear();
		r = CF_OK;
	}
	return r;
}
static int s3_create(struct cf_backend *b)
{
	struct s3_backend *be = S3(b);
	struct s3_req head = { .method = "HEAD", .head = true };
	int r = s3_do(be, &head);
	if (r == CF_EPERM || r == CF_ES3) {
		/* A HEAD refusal carries no reason: ask again with a one-key
		 * listing, whose answer names it (NoSuchBucket, AccessDenied). */
		struct cf_buf tmp = CF_BUF_INIT;
		static const struct cf_sigv4_pair q[] = { { "list-type", "2" }, { "max-keys", "1" } };
		struct s3_req get = { .method = "GET", .query = q, .nquery = 2, .out = &tmp, .max = LIST_PAGE_MAX };
		r = s3_do(be, &get);
		cf_buf_release(&tmp);
		if (r == CF_EPERM && strstr(cf_errmsg(r), " AccessDenied"))
			return cf_err_prefix(r, "bucket \"%s\" cannot be used with these credentials (it may be "
					     "missing, and they may not create it)", be->loc.bucket);
	}
	if (r == CF_ENOENT) {
		char body[512] = "";
		char region[64];
		pthread_mutex_lock(&be->mu);
		memcpy(region, be->region, sizeof(region));
		pthread_mutex_unlock(&be->mu);
		if (strcmp(region, "us-east-1"))
			snprintf(body, sizeof(body),
				 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
				 "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>", region);
		struct iovec v = { body, strlen(body) };
		struct s3_req put = { .method = "PUT", .iov = &v, .niov = 1, .body_len = v.iov_len };
		r = s3_do(be, &put);
		if (r && put.status == 409 && strstr(cf_errmsg(r), "BucketAlreadyOwnedByYou"))
			r = CF_OK; /* created meanwhile by us */
		if (r)
			return cf_err_prefix(r, "bucket \"%s\" is missing and could not be created", be->loc.bucket);
		cf_info("created bucket %s", be->loc.bucket);
	} else if (r) {
		return r;
	}
	uint64_t size;
	r = s3_stat(b, "config", &size);
	if (r == CF_OK)
		return cf_err(CF_EEXIST, "a repository already exists at %s (it has a config object)", b->location);
	if (r == CF_ENOENT) {
		cf_err_clear();
		return CF_OK;
	}
	return r;
}

static void s3_free(struct cf_backend *b)
{
	struct s3_backend *be = S3(b);
	if (!be)
		return;
	while (be->idle) {
		struct s3_handle *h = be->idle;
		be->idle = h->next;
		curl_multi_cleanup(h->multi);
		curl_easy_cleanup(h->curl);
		free(h);
	}
	if (be->share)
		curl_share_cleanup(be->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&be->share_mu[i]);
	pthread_mutex_destroy(&be->mu);
	pthread_cond_destroy(&be->cond);
	cf_s3_loc_release(&be->loc);
	wipe_free(be->access_key);
	wipe_free(be->secret_key);
	wipe_free(be->session_token);
	free(be->cacert);
	free(be->base.location);
	free(be);
}

static const struct cf_backend_ops s3_ops = {
	.name = "s3",
	.create = s3_create,
	.put = s3_put,
	.put_iov = s3_put_iov,
	.get = s3_get,
	.get_range = s3_get_range,
	.get_range_stream = s3_get_range_stream,
	.stat = s3_stat,
	.list = s3_list,
	.list_mtime = s3_list_mtime,
	.remove = s3_remove,
	.remove_many = s3_remove_many,
	.free = s3_free,
};

int cf_backend_s3_new(const char *url, const struct cf_backend_opts *opts, struct cf_backend **out)
{
	struct s3_backend *be;
	int r;
	*out = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return cf_err(CF_EIO, "libcurl initialisation failed: %s", curl_easy_strerror(curl_init_rc));
	if (!(be = calloc(1, sizeof(*be))))
		return cf_err(CF_ENOMEM, "out of memory");
	be->base.ops = &s3_ops;
	be->base.caps = CF_BE_REMOTE | CF_BE_STREAMS;
	pthread_mutex_init(&be->mu, NULL);
	pthread_cond_init(&be->cond, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&be->share_mu[i], NULL);
	if (!(be->base.location = malloc(strlen(url ? url : "") + 4))) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto fail;
	}
	sprintf(be->base.location, "s3:%s", url ? url : "");
	if ((r = cf_s3_loc_parse(url, &be->loc)))
		goto fail;

	be->connections = opts && opts->connections > 0 ? opts->connections : DEFAULT_CONNECTIONS;
	be->max_attempts = opts && opts->max_attempts > 0 ? opts->max_attempts : DEFAULT_ATTEMPTS;
	be->sign_payload = strcmp(be->loc.scheme, "https") != 0 || (opts && opts->sign_payload);
	if (opts && opts->cacert && !(be->cacert = strdup(opts->cacert))) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto fail;
	}
	be->list_max_keys = LIST_MAX_KEYS;
	const char *mk = getenv("COFFER_S3_LIST_MAX_KEYS"); /* tests force small pages */
	if (mk && atoi(mk) > 0 && atoi(mk) < LIST_MAX_KEYS)
		be->list_max_keys = atoi(mk);
	be->delete_max_keys = DELETE_MAX_KEYS;
	const char *dk = getenv("COFFER_S3_DELETE_MAX_KEYS"); /* tests force small batches */
	if (dk && atoi(dk) > 0 && atoi(dk) < DELETE_MAX_KEYS)
		be->delete_max_keys = atoi(dk);
	be->stall_timeout = STALL_TIMEOUT;
	const char *st = getenv("COFFER_S3_STALL_TIMEOUT"); /* tests provoke stalls */
	if (st && atoi(st) > 0 && atoi(st) < 3600)
		be->stall_timeout = atoi(st);
	be->low_speed = LOW_SPEED;
	/* Tests only: "BYTES/SECONDS", the rate floor and its window, so that
	 * a trickling store is given up on in seconds rather than minutes. */
	const char *ls = getenv("COFFER_TEST_S3_LOW_SPEED");
	if (ls && *ls) {
		long bytes = 0, secs = 0;
		char extra;
		if (sscanf(ls, "%ld/%ld%c", &bytes, &secs, &extra) != 2 || bytes < 1 || secs < 1 || secs >= 3600) {
			r = cf_err(CF_EINVAL, "COFFER_TEST_S3_LOW_SPEED=\"%.40s\": want BYTES/SECONDS, e.g. 1024/5", ls);
			goto fail;
		}
		be->low_speed = bytes;
		be->stall_timeout = (int)secs;
	}
	const char *region = opts && opts->region && *opts->region ? opts->region : getenv("AWS_REGION");
	if (!region || !*region)
		region = getenv("AWS_DEFAULT_REGION");
	if (!region || !*region)
		region = "us-east-1";
	if (strlen(region) >= sizeof(be->region)) {
		r = cf_err(CF_EINVAL, "AWS region \"%.80s\" is too long", region);
		goto fail;
	}
	snprintf(be->region, sizeof(be->region), "%s", region);

	if (opts && opts->access_key) {
		if (!(be->access_key = strdup(opts->access_key)) ||
		    (opts->secret_key && !(be->secret_key = strdup(opts->secret_key))) ||
		    (opts->session_token && !(be->session_token = strdup(opts->session_token)))) {
			r = cf_err(CF_ENOMEM, "out of memory");
			goto fail;
		}
	} else if ((r = env_secret("AWS_ACCESS_KEY_ID", &be->access_key)) ||
		   (r = env_secret("AWS_SECRET_ACCESS_KEY", &be->secret_key)) ||
		   (r = env_secret("AWS_SESSION_TOKEN", &be->session_token))) {
		goto fail;
	}
	if (!be->access_key || !be->secret_key) {
		r = cf_err(CF_EINVAL, "no S3 credentials for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
				      "(or AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE)",
			   be->base.location);
		goto fail;
	}

	if (!(be->share = curl_share_init())) {
		r = cf_err(CF_ENOMEM, "out of memory (curl share)");
		goto fail;
	}
	if (curl_share_setopt(be->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(be->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(be->share, CURLSHOPT_USERDATA, be) ||
	    curl_share_setopt(be->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(be->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)) {
		r = cf_err(CF_EIO, "libcurl share setup failed");
		goto fail;
	}
	*out = &be->base;
	return CF_OK;
fail:
	s3_free(&be->base);
	return r;
}
