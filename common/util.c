#include <ctype.h>
#include "common/util.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

int cf_log_level = 1;
volatile int cf_interrupted;
_Thread_local bool cf_interrupt_ignored;

void cf_hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int cf_unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int a = hexval(s[2 * i]), b = a < 0 ? -1 : hexval(s[2 * i + 1]);
		if (a < 0 || b < 0)
			return CF_EINVAL;
		out[i] = (uint8_t)(a << 4 | b);
	}
	return s[2 * n] == 0 ? CF_OK : CF_EINVAL;
}

ssize_t cf_read_full(int fd, void *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, (char *)p + done, n - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += r;
	}
	return done;
}

int cf_write_full(int fd, const void *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = write(fd, (const char *)p + done, n - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += r;
	}
	return 0;
}

ssize_t cf_pread_full(int fd, void *p, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, (char *)p + done, n - done, off + done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += r;
	}
	return done;
}

int cf_pwrite_full(int fd, const void *p, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pwrite(fd, (const char *)p + done, n - done, off + done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += r;
	}
	return 0;
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static cf_log_tap_fn log_tap;
static void *log_tap_ctx;

void cf_log_set_tap(cf_log_tap_fn fn, void *ctx)
{
	pthread_mutex_lock(&log_lock);
	log_tap = fn;
	log_tap_ctx = ctx;
	pthread_mutex_unlock(&log_lock);
}

void cf_log(int level, const char *fmt, ...)
{
	bool tapped = log_tap && level >= 1 && level <= 2;
	if (level > cf_log_level && !tapped)
		return;
	va_list ap;
	pthread_mutex_lock(&log_lock);
	if (level <= cf_log_level) {
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	if (log_tap && level >= 1 && level <= 2) {
		char line[2048];
		va_start(ap, fmt);
		int n = vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		if (n > 0)
			log_tap(log_tap_ctx, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	}
	pthread_mutex_unlock(&log_lock);
}

double cf_now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int64_t cf_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int cf_mkdirs(const char *dir, mode_t mode)
{
	char p[4096];
	if ((size_t)snprintf(p, sizeof(p), "%s", dir) >= sizeof(p))
		return cf_err(CF_EINVAL, "path too long: %s", dir);
	for (char *s = p + 1;; s++) {
		if (*s == '/' || !*s) {
			char c = *s;
			*s = 0;
			if (mkdir(p, mode) != 0 && errno != EEXIST)
				return cf_err_errno("cannot create %s", p);
			*s = c;
			if (!c)
				break;
		}
	}
	return CF_OK;
}

int cf_write_atomic(const char *path, const void *p, size_t n, mode_t mode)
{
	char *tmp;
	int fd, r = CF_OK;
	if (asprintf(&tmp, "%s.tmp%ld", path, (long)getpid()) < 0)
		return cf_err(CF_ENOMEM, "out of memory");
	unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)) < 0) {
		r = cf_err_errno("cannot create %s", tmp);
		free(tmp);
		return r;
	}
	if (cf_write_full(fd, p, n) != 0 || fsync(fd) != 0)
		r = cf_err_errno("cannot write %s", tmp);
	if (close(fd) != 0 && !r)
		r = cf_err_errno("cannot write %s", tmp);
	if (!r && rename(tmp, path) != 0)
		r = cf_err_errno("cannot rename %s to %s", tmp, path);
	if (r)
		unlink(tmp);
	free(tmp);
	return r;
}

int cf_parse_bool(const char *key, const char *v, bool *out)
{
	static const char *yes[] = { "1", "true", "yes", "on" }, *no[] = { "0", "false", "no", "off", "" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
		if (!strcasecmp(v, yes[i]))
			return *out = true, CF_OK;
	for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
		if (!strcasecmp(v, no[i]))
			return *out = false, CF_OK;
	return cf_err(CF_EINVAL, "%s: \"%s\" is not a boolean (use 1/0, true/false, yes/no)", key, v);
}

/* Is the query parameter name [p, p+len) one whose value is a secret? */
static bool secret_param(const char *p, size_t len)
{
	static const char *const words[] = { "token", "secret", "pass", "key", "sig", "auth", "credential" };
	char low[64];
	if (len >= sizeof(low))
		len = sizeof(low) - 1;
	for (size_t i = 0; i < len; i++)
		low[i] = (char)tolower((unsigned char)p[i]);
	low[len] = 0;
	for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
		if (strstr(low, words[i]))
			return true;
	return false;
}

void cf_redact_url(const char *in, char *out, size_t n)
{
	size_t o = 0;
	bool in_query = false;
#define PUT(c) do { char c_ = (c); if (o + 1 < n) out[o++] = c_; } while (0) /* c evaluated once, always */
	if (!n)
		return;
	for (const char *p = in; *p;) {
		if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
			/* an authority: userinfo ends at the last '@' before its end */
			const char *a = p + 3, *end = a + strcspn(a, "/?# \t\n"), *at = NULL;
			for (const char *q = a; q < end; q++)
				if (*q == '@')
					at = q;
			for (const char *q = p; q < a; q++)
				PUT(*q);
			in_query = false;
			if (at) {
				const char *colon = memchr(a, ':', (size_t)(at - a));
				for (const char *q = a; q < (colon ? colon : at); q++)
					PUT(*q);
				if (colon) {
					PUT(':');
					PUT('*'); PUT('*'); PUT('*');
				}
				p = at;
			} else {
				p = a;
			}
			continue;
		}
		if (*p == '?' || (in_query && *p == '&')) {
			in_query = true;
			PUT(*p++);
			size_t nl = strcspn(p, "=&# \t\n");
			for (size_t i = 0; i < nl; i++)
				PUT(p[i]);
			bool secret = p[nl] == '=' && secret_param(p, nl);
			p += nl;
			if (secret) {
				PUT(*p++);
				p += strcspn(p, "&# \t\n");
				PUT('*'); PUT('*'); PUT('*');
			}
			continue;
		}
		if (*p == '#' || *p == ' ' || *p == '\t' || *p == '\n')
			in_query = false;
		PUT(*p++);
	}
#undef PUT
	out[o] = 0;
}

bool cf_cache_dir_default(char *buf, size_t n)
{
	const char *d = getenv("COFFER_CACHE_DIR");
	if (d && *d) {
		if (!strcmp(d, "off"))
			return false;
		return (size_t)snprintf(buf, n, "%s", d) < n;
	}
	if ((d = getenv("XDG_CACHE_HOME")) && *d == '/')
		return (size_t)snprintf(buf, n, "%s/coffer", d) < n;
	if ((d = getenv("HOME")) && *d == '/')
		return (size_t)snprintf(buf, n, "%s/.cache/coffer", d) < n;
	return false;
}
