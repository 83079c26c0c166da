/*
 * fault.c - a backend that wraps another and fails chosen calls: the test
 * harness for "every run either succeeds or fails cleanly, and nothing
 * earlier is lost" (tests/e2e/faults.sh).
 *
 * Location: fault:INNER (e.g. fault:/srv/repo or fault:s3:http://...).
 * What fails comes from COFFER_FAULTS, a comma-separated list of
 * KIND=N[:permanent|:transient|:kill|:killafter], KIND one of put, get,
 * list, remove, stat: the Nth call of that kind (1-based, counted across
 * threads) and every later one fails with CF_EIO (permanent, the default) or
 * CF_EAGAIN (transient).  A put that fails writes nothing, as a real store's
 * failed PUT would.
 *
 * kill and killafter are the crash harness (tests/e2e/crash_points.sh): the
 * Nth call raises SIGKILL, before doing the call (kill) or right after the
 * inner backend returned (killafter), so a process death lands at an exact,
 * repeatable point of a backup, prune or restore.
 *
 * The wrapper has its inner store's capabilities (caps): it streams where
 * the inner store streams and stages where it stages, so a test through it
 * runs the policy the real store would get.
 * Never used unless a location starts with "fault:".
 */
#include "store/backend.h"
#include "common/error.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F_PUT, F_GET, F_LIST, F_REMOVE, F_STAT, F_KINDS };
/* what happens at the chosen call; the error modes are cf error codes */
enum { M_FAIL, M_KILL, M_KILL_AFTER };
static const char *const kind_names[F_KINDS] = { "put", "get", "list", "remove", "stat" };

struct fault {
	struct cf_backend base;
	struct cf_backend *inner;
	long at[F_KINDS];        /* 0 = never */
	int code[F_KINDS];
	int mode[F_KINDS];
	atomic_long calls[F_KINDS];
};

static void die_now(void)
{
	raise(SIGKILL);
	abort(); /* not reached */
}

/* hit: counts a call of KIND; returns the injected error, or CF_OK to go on.
 * *after is set when the process must die once the inner call returned. */
static int hit(struct fault *f, int kind, const char *what, int *after)
{
	long n = atomic_fetch_add(&f->calls[kind], 1) + 1;
	*after = 0;
	if (!f->at[kind] || n < f->at[kind])
		return CF_OK;
	if (f->mode[kind] == M_KILL)
		die_now();
	if (f->mode[kind] == M_KILL_AFTER) {
		*after = n == f->at[kind];
		return CF_OK;
	}
	return cf_err(f->code[kind], "injected fault: %s call %ld (%s) fails (%s)", kind_names[kind], n,
		      what, f->code[kind] == CF_EAGAIN ? "transient" : "permanent");
}

static int done(int after, int rc)
{
	if (after)
		die_now();
	return rc;
}

#define F(be) ((struct fault *)(be))

static int f_create(struct cf_backend *be)
{
	return F(be)->inner->ops->create(F(be)->inner);
}

static int f_put(struct cf_backend *be, const char *path, const void *d, size_t n)
{
	int after, rc = hit(F(be), F_PUT, path, &after);
	return rc ? rc : done(after, cf_be_put(F(be)->inner, path, d, n));
}

static int f_put_iov(struct cf_backend *be, const char *path, const struct iovec *iov, int n,
		     const uint8_t *sha256)
{
	int after, rc = hit(F(be), F_PUT, path, &after);
	return rc ? rc : done(after, cf_be_put_iov(F(be)->inner, path, iov, n, sha256));
}

static int f_get(struct cf_backend *be, const char *path, struct cf_buf *out)
{
	int after, rc = hit(F(be), F_GET, path, &after);
	return rc ? rc : done(after, cf_be_get(F(be)->inner, path, out));
}

static int f_get_range(struct cf_backend *be, const char *path, uint64_t off, size_t len,
		       struct cf_buf *out)
{
	int after, rc = hit(F(be), F_GET, path, &after);
	return rc ? rc : done(after, cf_be_get_range(F(be)->inner, path, off, len, out));
}

static int f_stat(struct cf_backend *be, const char *path, uint64_t *size)
{
	int after, rc = hit(F(be), F_STAT, path, &after);
	return rc ? rc : done(after, cf_be_stat(F(be)->inner, path, size));
}

static int f_list(struct cf_backend *be, const char *dir, cf_list_fn fn, void *ctx)
{
	int after, rc = hit(F(be), F_LIST, dir, &after);
	return rc ? rc : done(after, cf_be_list(F(be)->inner, dir, fn, ctx));
}

/* counted as a list call; the inner store's ages, or -1 where it has none */
static int f_list_mtime(struct cf_backend *be, const char *dir, cf_list_mtime_fn fn, void *ctx)
{
	int after, rc = hit(F(be), F_LIST, dir, &after);
	return rc ? rc : done(after, cf_be_list_mtime(F(be)->inner, dir, fn, ctx));
}

static int f_remove(struct cf_backend *be, const char *path)
{
	int after, rc = hit(F(be), F_REMOVE, path, &after);
	return rc ? rc : done(after, cf_be_remove(F(be)->inner, path));
}

/* counted as a get call, like get_range */
static int f_get_range_stream(struct cf_backend *be, const char *path, uint64_t off, size_t len,
			      cf_stream_fn fn, void *ctx)
{
	int after, rc = hit(F(be), F_GET, path, &after);
	return rc ? rc : done(after, cf_be_get_range_stream(F(be)->inner, path, off, len, fn, ctx));
}

/* A staged put is counted as one put call at its commit, where the object
 * becomes durable and visible: a failed or killed put leaves no object, and
 * the numbering of put calls is the same as for a store that does not stage. */
struct staged {
	void *inner;
	char path[];
};

static int f_put_stage(struct cf_backend *be, const char *path, const struct iovec *iov, int n,
		       void **handle)
{
	size_t pl = strlen(path) + 1;
	struct staged *s = malloc(sizeof(*s) + pl);
	int rc;
	*handle = NULL;
	if (!s)
		return cf_err(CF_ENOMEM, "out of memory");
	memcpy(s->path, path, pl);
	if ((rc = F(be)->inner->ops->put_stage(F(be)->inner, path, iov, n, &s->inner))) {
		free(s);
		return rc;
	}
	*handle = s;
	return CF_OK;
}

static int f_put_commit(struct cf_backend *be, void *handle)
{
	struct staged *s = handle;
	int after, rc = hit(F(be), F_PUT, s->path, &after);
	if (rc)
		cf_be_put_abort(F(be)->inner, s->inner);
	else
		rc = done(after, cf_be_put_commit(F(be)->inner, s->inner));
	free(s);
	return rc;
}

static void f_put_abort(struct cf_backend *be, void *handle)
{
	struct staged *s = handle;
	cf_be_put_abort(F(be)->inner, s->inner);
	free(s);
}

static void f_free(struct cf_backend *be)
{
	cf_backend_free(F(be)->inner);
	free(be->location);
	free(be);
}

static const struct cf_backend_ops fault_ops = {
	.name = "fault",
	.create = f_create,
	.put = f_put,
	.get = f_get,
	.get_range = f_get_range,
	.stat = f_stat,
	.list = f_list,
	.list_mtime = f_list_mtime,
	.remove = f_remove,
	.free = f_free,
	.put_iov = f_put_iov,
	/* called only when the inner store has them (the caps it passes on) */
	.get_range_stream = f_get_range_stream,
	.put_stage = f_put_stage,
	.put_commit = f_put_commit,
	.put_abort = f_put_abort,
};

static int parse_faults(struct fault *f, const char *spec)
{
	char *copy = strdup(spec ? spec : ""), *save = NULL;
	int rc = CF_OK;
	if (!copy)
		return cf_err(CF_ENOMEM, "out of memory");
	for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
		char kind[16], mode[16] = "permanent";
		long n = 0;
		int k = -1;
		if (sscanf(tok, "%15[a-z]=%ld:%15s", kind, &n, mode) < 2 || n < 1) {
			rc = cf_err(CF_EINVAL, "COFFER_FAULTS: '%s' is not KIND=N[:permanent|:transient|:kill|:killafter]", tok);
			break;
		}
		for (int i = 0; i < F_KINDS; i++)
			if (!strcmp(kind, kind_names[i]))
				k = i;
		if (k < 0 || (strcmp(mode, "permanent") && strcmp(mode, "transient") &&
			      strcmp(mode, "kill") && strcmp(mode, "killafter"))) {
			rc = cf_err(CF_EINVAL, "COFFER_FAULTS: unknown kind or mode in '%s'", tok);
			break;
		}
		f->at[k] = n;
		f->code[k] = strcmp(mode, "transient") ? CF_EIO : CF_EAGAIN;
		f->mode[k] = !strcmp(mode, "kill") ? M_KILL : !strcmp(mode, "killafter") ? M_KILL_AFTER : M_FAIL;
	}
	free(copy);
	return rc;
}

int cf_backend_fault_new(const char *inner_location, const struct cf_backend_opts *opts,
			 struct cf_backend **out)
{
	struct fault *f = calloc(1, sizeof(*f));
	int rc;
	*out = NULL;
	if (!f)
		return cf_err(CF_ENOMEM, "out of memory");
	f->base.ops = &fault_ops;
	if (!(f->base.location = strdup(inner_location))) {
		free(f);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	if ((rc = parse_faults(f, getenv("COFFER_FAULTS"))) ||
	    (rc = cf_backend_open(inner_location, opts, &f->inner))) {
		free(f->base.location);
		free(f);
		return rc;
	}
	f->base.caps = f->inner->caps;
	*out = &f->base;
	return CF_OK;
}
