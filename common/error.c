#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {
	[CF_OK] = "success",
	[CF_ENOMEM] = "out of memory",
	[CF_EIO] = "input/output error",
	[CF_ENOENT] = "not found",
	[CF_EEXIST] = "already exists",
	[CF_EINVAL] = "invalid argument",
	[CF_ECORRUPT] = "corrupt data",
	[CF_EBADPASS] = "wrong password or no matching key",
	[CF_ENOREPO] = "no repository at that location",
	[CF_ELOCKED] = "repository is locked",
	[CF_EFORMAT] = "unsupported repository format",
	[CF_ES3] = "object store error",
	[CF_EAGAIN] = "temporary failure",
	[CF_EINTR] = "interrupted",
	[CF_ECRYPTO] = "crypto failure",
	[CF_EDB] = "database error",
	[CF_ENOTSUP] = "not supported",
	[CF_EPARTIAL] = "some items failed",
	[CF_ENOSPC] = "no space left on device",
	[CF_EPERM] = "permission denied",
};

static _Thread_local char msg[1024];

const char *cf_strerror(int code)
{
	if (code < 0 || (size_t)code >= sizeof(names) / sizeof(names[0]) || !names[code])
		return "unknown error";
	return names[code];
}

/* The new text is formatted aside first: an argument may be the old text
 * itself (cf_err(rc, "...: %s", cf_errmsg(rc))), and vsnprintf() into the
 * buffer it reads from is undefined. */
int cf_err(int code, const char *fmt, ...)
{
	char tmp[sizeof(msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(msg, tmp, sizeof(msg));
	return code;
}

static int map_errno(int e)
{
	switch (e) {
	case ENOENT: return CF_ENOENT;
	case ENOSPC: case EDQUOT: return CF_ENOSPC;
	case EACCES: case EPERM: case EROFS: return CF_EPERM;
	case ENOMEM: return CF_ENOMEM;
	case EEXIST: return CF_EEXIST;
	case EINTR: return CF_EINTR;
	default: return CF_EIO;
	}
}

int cf_err_errno(const char *fmt, ...)
{
	int e = errno;
	char tmp[sizeof(msg)];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(tmp))
		snprintf(tmp + n, sizeof(tmp) - n, ": %s", strerror(e));
	memcpy(msg, tmp, sizeof(msg));
	return map_errno(e);
}

int cf_err_prefix(int code, const char *fmt, ...)
{
	char old[sizeof(msg)], tmp[sizeof(msg)];
	va_list ap;
	snprintf(old, sizeof(old), "%s", msg[0] ? msg : cf_strerror(code));
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(msg, tmp, sizeof(msg));
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof(msg) - 3) {
		size_t room = sizeof(msg) - (size_t)n;
		memcpy(msg + n, ": ", 2);
		size_t k = strlen(old);
		if (k > room - 3)
			k = room - 3;
		memcpy(msg + n + 2, old, k);
		msg[n + 2 + k] = 0;
	}
	return code;
}

const char *cf_errmsg(int code)
{
	return msg[0] ? msg : cf_strerror(code);
}

void cf_err_clear(void)
{
	msg[0] = 0;
}
