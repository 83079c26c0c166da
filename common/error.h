/*
 * error.h - coffer's one error enum and its thread-local message.
 *
 * Every function that can fail returns an int: CF_OK (0) or a negative-free
 * positive code from enum cf_error.  The code says what kind of failure it was
 * (callers branch on it: CF_ENOENT for a missing object, CF_EAGAIN for a
 * transient backend error that may be retried, ...); the user-facing text says
 * what failed, on which object, and why.  That text is set in one place by
 * cf_err()/cf_err_errno() at the point of failure and read by main() with
 * cf_errmsg().  A caller that adds context uses cf_err_prefix().
 *
 * Codes are never reused or renumbered: they end up in logs and tests.
 */
#ifndef CF_ERROR_H
#define CF_ERROR_H

#include <stdarg.h>

enum cf_error {
	CF_OK = 0,
	CF_ENOMEM = 1,    /* allocation failed */
	CF_EIO = 2,       /* an I/O call failed; errno kept by cf_err_errno */
	CF_ENOENT = 3,    /* object or file does not exist */
	CF_EEXIST = 4,    /* already exists */
	CF_EINVAL = 5,    /* bad argument or bad user input */
	CF_ECORRUPT = 6,  /* stored data failed an integrity check or does not parse */
	CF_EBADPASS = 7,  /* wrong password or no matching key */
	CF_ENOREPO = 8,   /* no repository at that location */
	CF_ELOCKED = 9,   /* repository is locked by someone else */
	CF_EFORMAT = 10,  /* unsupported repository format version */
	CF_ES3 = 11,      /* the object store refused the request (permanent) */
	CF_EAGAIN = 12,   /* transient failure (network, 5xx, throttling); retry may help */
	CF_EINTR = 13,    /* interrupted by a signal */
	CF_ECRYPTO = 14,  /* crypto library failure (not a bad tag: that is CF_ECORRUPT) */
	CF_EDB = 15,      /* database error */
	CF_ENOTSUP = 16,  /* not supported */
	CF_EPARTIAL = 17, /* done, but some items failed (each already reported) */
	CF_ENOSPC = 18,   /* no space left on device */
	CF_EPERM = 19,    /* permission denied */
};

/* Static name of a code, e.g. "corrupt data".  Never NULL. */
const char *cf_strerror(int code);

/* Set the thread's error message (printf-style) and return code. */
int cf_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like cf_err() but appends ": strerror(errno)" and maps errno to a code
 * (ENOENT -> CF_ENOENT, ENOSPC -> CF_ENOSPC, EACCES/EPERM -> CF_EPERM,
 * ENOMEM -> CF_ENOMEM, else CF_EIO).  Returns that code. */
int cf_err_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prepend "prefix: " to the current message; returns code unchanged. */
int cf_err_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The thread's last message, or cf_strerror(code) if none was set since
 * cf_err_clear().  Never NULL. */
const char *cf_errmsg(int code);

/* Forget the thread's message. */
void cf_err_clear(void);

#endif
