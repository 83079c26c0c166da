/*
 * backend.h - where repository objects are stored: one vtable, several stores.
 *
 * A backend stores opaque objects under repository-relative names such as
 * "config", "keys/<hex>", "data/ab/<hex>", "index/<hex>", "snapshots/<hex>",
 * "locks/<hex>".  It knows nothing of what the bytes mean.
 *
 * Contract every implementation keeps (the repository's crash safety stands on it):
 *  - put is atomic: a reader sees the whole object or none of it, never a
 *    prefix.  Putting a name that exists with the same bytes succeeds (objects
 *    are content-addressed or randomly named, so a re-put is a retry).
 *  - get of a missing object returns CF_ENOENT (and sets a message naming it).
 *  - Transient failures return CF_EAGAIN after the backend's own retries are
 *    spent; permanent refusals return CF_ES3/CF_EPERM/CF_EIO with a message.
 *  - Every operation may be called from several threads at once.
 *
 * Lifecycle: cf_backend_open() parses a location ("/path", "local:/path",
 * "s3:http://host:port/bucket/prefix", "s3://bucket/prefix"); the caller frees
 * the backend with cf_backend_free().
 */
#ifndef CF_BACKEND_H
#define CF_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <sys/uio.h>
#include "common/buf.h"

struct cf_backend;

/* Called by list() once per object; return non-zero to stop (list then
 * returns that value).  name is the last path component (for "data" the
 * pack id, without the "ab/" fan-out directory). */
typedef int (*cf_list_fn)(const char *name, uint64_t size, void *ctx);
/* The same with the object's modification time (ns since the epoch, as the
 * store gives it: a file's mtime, S3's LastModified), or -1 when the store
 * cannot tell. */
typedef int (*cf_list_mtime_fn)(const char *name, uint64_t size, int64_t mtime_ns, void *ctx);

/* Given the bytes of a streamed range in order, in pieces; a non-zero
 * return stops the read, which then returns that value. */
typedef int (*cf_stream_fn)(const uint8_t *p, size_t n, void *ctx);

struct cf_backend_ops {
	const char *name; /* "local", "s3", "fault" */
	/* Create the empty layout (directories / bucket).  CF_EEXIST if a
	 * repository (a "config" object) is already there. */
	int (*create)(struct cf_backend *be);
	int (*put)(struct cf_backend *be, const char *path, const void *data, size_t len);
	/* Replace out's contents with the whole object. */
	int (*get)(struct cf_backend *be, const char *path, struct cf_buf *out);
	/* Replace out's contents with len bytes at off; a short object is CF_ECORRUPT. */
	int (*get_range)(struct cf_backend *be, const char *path, uint64_t off, size_t len,
			 struct cf_buf *out);
	/* Size of an object (size may be NULL: existence only); CF_ENOENT if missing. */
	int (*stat)(struct cf_backend *be, const char *path, uint64_t *size);
	/* Every object under dir ("data", "index", "snapshots", "keys", "locks"), any order. */
	int (*list)(struct cf_backend *be, const char *dir, cf_list_fn fn, void *ctx);
	/* Remove an object; removing a missing one is CF_OK. */
	int (*remove)(struct cf_backend *be, const char *path);
	void (*free)(struct cf_backend *be);
	/* Optional (may be NULL): put the concatenation of iov[0..n) as one
	 * object, same contract as put.  Packs are written this way, so their
	 * blobs need not be copied into one buffer first.  sha256, when not
	 * NULL, is the SHA-256 of those bytes, known to the caller (a format-2
	 * object's name): a store that signs the body's hash (S3) uses it
	 * instead of hashing the bytes again, and the store checks it. */
	int (*put_iov)(struct cf_backend *be, const char *path, const struct iovec *iov, int n,
		       const uint8_t *sha256);
	/* Optional (may be NULL): remove paths[0..n) with as few requests as
	 * the store allows (S3: DeleteObjects, 1000 keys each).  Same contract
	 * as remove for each path; every path is attempted even when some
	 * fail, and the error names how many failed and the first of them. */
	int (*remove_many)(struct cf_backend *be, const char *const *paths, size_t n);
	/* Optional (all three or none): put_iov in two halves, so that the
	 * caller has its buffers back before the object is durable.  put_stage
	 * copies the bytes out of iov (the memory may be reused when it
	 * returns) to where no reader looks, and sets *handle.  put_commit
	 * makes the object durable and visible under the staged path: after it
	 * returns CF_OK the contract is that of put.  put_abort drops a staged
	 * object.  commit and abort free the handle, whatever they return. */
	int (*put_stage)(struct cf_backend *be, const char *path, const struct iovec *iov, int n,
			 void **handle);
	int (*put_commit)(struct cf_backend *be, void *handle);
	void (*put_abort)(struct cf_backend *be, void *handle);
	/* Optional (may be NULL): the len bytes at off, handed to fn in order
	 * as they arrive, each byte once: a transfer that breaks off is resumed
	 * where it stopped, so the caller needs no buffer for the whole range.
	 * A short object is CF_ECORRUPT (after fn had what there was). */
	int (*get_range_stream)(struct cf_backend *be, const char *path, uint64_t off, size_t len,
				cf_stream_fn fn, void *ctx);
	/* Optional (may be NULL): list with each object's modification time
	 * (prune's safety margin: packs younger than it are never deleted).
	 * Same contract as list. */
	int (*list_mtime)(struct cf_backend *be, const char *dir, cf_list_mtime_fn fn, void *ctx);
};

/* What a store can do (struct cf_backend's caps), set by each backend when
 * it is made; a wrapper (the fault backend) passes on its inner store's, so
 * that callers choose the same policy for it (SQLite's sqlite3_io_methods
 * iVersion and xDeviceCharacteristics play this part there). */
enum cf_backend_caps {
	/* a request costs a round trip (S3): callers keep more requests in
	 * flight, read bigger ranges and cache tree packs */
	CF_BE_REMOTE = 1u << 0,
	/* ops->get_range_stream: ranges handed over as they arrive */
	CF_BE_STREAMS = 1u << 1,
	/* ops->put_stage/put_commit/put_abort: a put in two halves */
	CF_BE_STAGED = 1u << 2,
};

/* Every backend embeds this first. */
struct cf_backend {
	const struct cf_backend_ops *ops;
	char *location; /* as the user wrote it, for messages */
	unsigned caps;  /* enum cf_backend_caps */
};

/* Options that apply to remote backends; zero means default. */
struct cf_backend_opts {
	int connections;       /* parallel requests (S3), default 6 */
	const char *cacert;    /* extra CA bundle for TLS */
	int max_attempts;      /* retries for transient errors, default 8 */
	bool sign_payload;     /* S3: sign request bodies' SHA-256 over https too */
	/* S3 credentials and region given by the caller (the agent's copy
	 * targets: one process, several stores).  NULL = from the environment
	 * (AWS_ACCESS_KEY_ID[_FILE], AWS_SECRET_ACCESS_KEY[_FILE],
	 * AWS_SESSION_TOKEN[_FILE], AWS_REGION / AWS_DEFAULT_REGION).  A given
	 * access key replaces the environment's key, secret and token together. */
	const char *access_key, *secret_key, *session_token, *region;
};

/* Open the backend for a location string.  *out is freed with cf_backend_free().
 * CF_EINVAL with a message for a location that does not parse. */
int cf_backend_open(const char *location, const struct cf_backend_opts *opts,
		    struct cf_backend **out);
void cf_backend_free(struct cf_backend *be);

/* The local-directory backend (store/local.c). */
int cf_backend_local_new(const char *dir, struct cf_backend **out);

/* The S3 backend (s3/s3.c).  url is what follows "s3:". */
int cf_backend_s3_new(const char *url, const struct cf_backend_opts *opts, struct cf_backend **out);

/* The fault-injecting wrapper (store/fault.c, for tests): "fault:INNER". */
int cf_backend_fault_new(const char *inner_location, const struct cf_backend_opts *opts,
			 struct cf_backend **out);

/* The most bytes a whole-object read of path may return: what an object
 * under that name can legitimately hold, so that a store answering with an
 * endless body fails the read instead of exhausting memory.  16 MiB for
 * "config", "keys/", "snapshots/" and "locks/"; 1 GiB for "index/" (46 bytes
 * per blob, and prune writes one index for the whole repository: some 23
 * million blobs) and for "data/" and anything else (a pack is closed at
 * 8 MiB plus its last blob; its offsets are 32-bit). */
#define CF_BE_SMALL_OBJECT_MAX ((uint64_t)16 << 20)
#define CF_BE_LARGE_OBJECT_MAX ((uint64_t)1 << 30)
uint64_t cf_be_object_max(const char *path);

/* The capability flags (enum cf_backend_caps). */
static inline bool cf_be_remote(const struct cf_backend *be)
{ return (be->caps & CF_BE_REMOTE) != 0; }
static inline bool cf_be_staged(const struct cf_backend *be)
{ return (be->caps & CF_BE_STAGED) != 0; }
static inline int cf_be_put(struct cf_backend *be, const char *p, const void *d, size_t n)
{ return be->ops->put(be, p, d, n); }
/* put_iov where the backend has it, else one put of the concatenation;
 * sha256 as for put_iov (NULL: not known). */
int cf_be_put_iov(struct cf_backend *be, const char *path, const struct iovec *iov, int n,
		  const uint8_t *sha256);
/* put_stage where the backend has it; elsewhere the whole put_iov, with
 * *handle NULL (commit and abort of NULL are no-ops). */
static inline int cf_be_put_stage(struct cf_backend *be, const char *p, const struct iovec *iov, int n,
				  const uint8_t *sha256, void **handle)
{
	*handle = NULL;
	if (cf_be_staged(be))
		return be->ops->put_stage(be, p, iov, n, handle);
	return cf_be_put_iov(be, p, iov, n, sha256);
}
static inline int cf_be_put_commit(struct cf_backend *be, void *handle)
{ return handle ? be->ops->put_commit(be, handle) : 0; }
static inline void cf_be_put_abort(struct cf_backend *be, void *handle)
{ if (handle) be->ops->put_abort(be, handle); }
static inline int cf_be_get(struct cf_backend *be, const char *p, struct cf_buf *out)
{ return be->ops->get(be, p, out); }
static inline int cf_be_get_range(struct cf_backend *be, const char *p, uint64_t off, size_t n, struct cf_buf *out)
{ return be->ops->get_range(be, p, off, n, out); }
static inline bool cf_be_streams(const struct cf_backend *be)
{ return (be->caps & CF_BE_STREAMS) != 0; }
/* Only for a store that streams (cf_be_streams): callers of others read
 * with cf_be_get_range. */
static inline int cf_be_get_range_stream(struct cf_backend *be, const char *p, uint64_t off, size_t n,
					 cf_stream_fn fn, void *ctx)
{ return be->ops->get_range_stream(be, p, off, n, fn, ctx); }
static inline int cf_be_stat(struct cf_backend *be, const char *p, uint64_t *size)
{ return be->ops->stat(be, p, size); }
static inline int cf_be_list(struct cf_backend *be, const char *dir, cf_list_fn fn, void *ctx)
{ return be->ops->list(be, dir, fn, ctx); }
/* list_mtime where the backend has it, else list with every mtime -1
 * (unknown: callers must treat the object as possibly brand new). */
int cf_be_list_mtime(struct cf_backend *be, const char *dir, cf_list_mtime_fn fn, void *ctx);
static inline int cf_be_remove(struct cf_backend *be, const char *p)
{ return be->ops->remove(be, p); }
/* Remove paths[0..n): remove_many where the backend has it, else remove()
 * one by one.  Either way every path is attempted; CF_OK when all are gone
 * (missing ones count as gone), else the first failure's code with a
 * message saying how many of n were not removed and why the first was not. */
int cf_be_remove_many(struct cf_backend *be, const char *const *paths, size_t n);

#endif
