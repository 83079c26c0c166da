/*
 * util.h - small helpers shared by every module: hex ids, little-endian
 * integers, full reads/writes that retry on EINTR, the log.
 */
#ifndef CF_UTIL_H
#define CF_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

#define CF_ID_LEN 32
#define CF_ID_HEX (2 * CF_ID_LEN + 1)

/* Write n bytes of p as lowercase hex plus NUL into out (2n+1 bytes). */
void cf_hex(const uint8_t *p, size_t n, char *out);
/* Parse exactly 2n hex digits into out.  CF_OK or CF_EINVAL. */
int cf_unhex(const char *s, uint8_t *out, size_t n);

static inline void cf_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}
static inline uint32_t cf_get_le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void cf_put_le64(uint8_t *p, uint64_t v)
{
	cf_put_le32(p, (uint32_t)v);
	cf_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t cf_get_le64(const uint8_t *p)
{
	return cf_get_le32(p) | (uint64_t)cf_get_le32(p + 4) << 32;
}

/* read()/write()/pread()/pwrite() until done or error; EINTR retried.
 * cf_read_full returns bytes read (< n only at EOF) or -1. */
ssize_t cf_read_full(int fd, void *p, size_t n);
int cf_write_full(int fd, const void *p, size_t n);  /* 0 or -1 with errno */
/* mkdir -p with mode for every directory it creates ("cannot create DIR"). */
int cf_mkdirs(const char *dir, mode_t mode);
/* Replace path with n bytes of p: written to path.tmp<pid> (a leftover
 * removed first, never followed), fsynced, renamed over path. */
int cf_write_atomic(const char *path, const void *p, size_t n, mode_t mode);
ssize_t cf_pread_full(int fd, void *p, size_t n, off_t off);
int cf_pwrite_full(int fd, const void *p, size_t n, off_t off);

/* Log levels: 0 quiet, 1 normal (warnings/errors), 2 verbose, 3 debug. */
extern int cf_log_level;
void cf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define cf_warn(...) cf_log(1, __VA_ARGS__)
#define cf_info(...) cf_log(2, __VA_ARGS__)
#define cf_debug(...) cf_log(3, __VA_ARGS__)
/* A tap sees every line of level 1 or 2 (warnings and verbose lines, whether
 * printed or not), without its newline: the agent keeps a job's log tail for
 * its notifications (agent/notify.h).  NULL removes it.  The tap runs under
 * the log's lock: it must not log. */
typedef void (*cf_log_tap_fn)(void *ctx, const char *line, size_t n);
void cf_log_set_tap(cf_log_tap_fn fn, void *ctx);

/* Monotonic seconds, and wall-clock nanoseconds since the epoch. */
/* "1/true/yes/on" or "0/false/no/off/" (any case) into *out; else CF_EINVAL
 * with "KEY: \"v\" is not a boolean ..." */
int cf_parse_bool(const char *key, const char *v, bool *out);

double cf_now_mono(void);
int64_t cf_now_ns(void);

/* Copy the URL (or any text holding URLs) in into out (n bytes, always
 * terminated, cut when too long) with its secrets replaced by "***": the
 * password of a "scheme://user:password@host" userinfo, and the value of a
 * query parameter whose name says it holds a secret (token, secret, password,
 * passwd, pass, key, sig, signature, auth, credential: any case, as part of the
 * name).  For messages, logs and print-config; what is sent stays as it was. */
void cf_redact_url(const char *in, char *out, size_t n);

/* The cache directory: $COFFER_CACHE_DIR, else $XDG_CACHE_HOME/coffer, else
 * $HOME/.cache/coffer; false (no cache) when none is set or
 * COFFER_CACHE_DIR is "off". */
bool cf_cache_dir_default(char *buf, size_t n);


/* Set by signal handlers (SIGINT/SIGTERM); long loops check it and return CF_EINTR. */
extern volatile int cf_interrupted;
/* Set by a thread whose requests must finish even after a signal (the
 * replicator storing its last interval at a clean stop): the S3 client
 * then does not abort them (cf_interrupt_pending() is false). */
extern _Thread_local bool cf_interrupt_ignored;
static inline bool cf_interrupt_pending(void)
{
	return cf_interrupted && !cf_interrupt_ignored;
}

#endif
