/* backend.c - choosing a backend from a location string. */
#include "store/backend.h"
#include "common/error.h"
#include "common/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cf_backend_open(const char *location, const struct cf_backend_opts *opts,
		    struct cf_backend **out)
{
	static const struct cf_backend_opts defaults = { 0 };
	if (!opts)
		opts = &defaults;
	*out = NULL;
	if (!location || !*location)
		return cf_err(CF_EINVAL, "no repository given: use -r LOCATION or COFFER_REPOSITORY");
	if (strncmp(location, "fault:", 6) == 0)
		return cf_backend_fault_new(location + 6, opts, out);
	if (strncmp(location, "s3:", 3) == 0)
		return cf_backend_s3_new(location + 3, opts, out);
	if (strncmp(location, "local:", 6) == 0)
		location += 6;
	else if (strstr(location, "://") || (strchr(location, ':') && location[0] != '/' && location[0] != '.'))
		return cf_err(CF_EINVAL, "unknown repository location '%s': use a directory path, "
			      "local:PATH, s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX] or s3://BUCKET[/PREFIX]",
			      location);
	return cf_backend_local_new(location, out);
}

int cf_be_put_iov(struct cf_backend *be, const char *path, const struct iovec *iov, int n,
		  const uint8_t *sha256)
{
	if (be->ops->put_iov)
		return be->ops->put_iov(be, path, iov, n, sha256);
	struct cf_buf b = CF_BUF_INIT;
	int rc = CF_OK;
	for (int i = 0; i < n && !rc; i++)
		rc = cf_buf_add(&b, iov[i].iov_base, iov[i].iov_len);
	if (!rc)
		rc = be->ops->put(be, path, b.data, b.len);
	cf_buf_release(&b);
	return rc;
}

int cf_be_remove_many(struct cf_backend *be, const char *const *paths, size_t n)
{
	if (be->ops->remove_many)
		return be->ops->remove_many(be, paths, n);
	struct cf_status first = CF_STATUS_INIT;
	size_t failed = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = be->ops->remove(be, paths[i]);
		if (rc) {
			failed++;
			cf_status_keep(&first, rc);
		}
	}
	if (failed)
		return cf_err(first.code, "%zu of %zu objects not removed; the first: %s", failed, n,
			      first.msg);
	return CF_OK;
}

void cf_backend_free(struct cf_backend *be)
{
	if (be)
		be->ops->free(be);
}

uint64_t cf_be_object_max(const char *path)
{
	static const char *const small[] = { "config", "keys/", "snapshots/", "locks/" };
	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
		if (!strncmp(path, small[i], strlen(small[i])))
			return CF_BE_SMALL_OBJECT_MAX;
	return CF_BE_LARGE_OBJECT_MAX;
}

struct mtime_adapter {
	cf_list_mtime_fn fn;
	void *ctx;
};

static int no_mtime(const char *name, uint64_t size, void *ctx)
{
	struct mtime_adapter *a = ctx;
	return a->fn(name, size, -1, a->ctx);
}

int cf_be_list_mtime(struct cf_backend *be, const char *dir, cf_list_mtime_fn fn, void *ctx)
{
	if (be->ops->list_mtime)
		return be->ops->list_mtime(be, dir, fn, ctx);
	struct mtime_adapter a = { fn, ctx };
	return be->ops->list(be, dir, no_mtime, &a);
}
