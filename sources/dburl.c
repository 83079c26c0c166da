#include "sources/dburl.h"
#include "common/buf.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <mysql.h>

/* Database names longer than this are refused by the server anyway. */
#define DBNAME_MAX 64

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into a new string.  NUL bytes are refused because
 * every consumer takes C strings. */
static int decode(const char *s, size_t n, const char *what, char **out)
{
	char *d = malloc(n + 1);
	size_t j = 0;

	if (!d)
		return CF_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			d[j++] = s[i];
			continue;
		}
		int a = i + 2 < n ? hexval(s[i + 1]) : -1;
		int b = i + 2 < n ? hexval(s[i + 2]) : -1;
		if (a < 0 || b < 0 || (a == 0 && b == 0)) {
			free(d);
			return cf_err(CF_EINVAL, "database URL: bad percent-escape in %s", what);
		}
		d[j++] = (char)(a << 4 | b);
		i += 2;
	}
	d[j] = 0;
	*out = d;
	return CF_OK;
}

static int parse_port(const char *s, size_t n, unsigned *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return cf_err(CF_EINVAL, "database URL: bad port");
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return cf_err(CF_EINVAL, "database URL: bad port");
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return cf_err(CF_EINVAL, "database URL: port out of range");
	*port = v;
	return CF_OK;
}

static int parse_dbs(struct cf_dburl *u, const char *s, size_t n)
{
	size_t count = 1, start = 0;
	int r;

	if (n == 0)
		return CF_OK;
	for (size_t i = 0; i < n; i++)
		count += s[i] == ',';
	u->dbs = calloc(count, sizeof(*u->dbs));
	if (!u->dbs)
		return CF_ENOMEM;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != ',')
			continue;
		if (i == start)
			return cf_err(CF_EINVAL, "database URL: empty database name in list");
		if ((r = decode(s + start, i - start, "database name", &u->dbs[u->ndbs])) != CF_OK)
			return r;
		u->ndbs++;
		size_t len = strlen(u->dbs[u->ndbs - 1]);
		if (len > DBNAME_MAX)
			return cf_err(CF_EINVAL, "database URL: database name longer than %d bytes",
				      DBNAME_MAX);
		start = i + 1;
	}
	return CF_OK;
}

static int parse_query(struct cf_dburl *u, const char *s, size_t n)
{
	size_t start = 0;
	int r;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '&')
			continue;
		const char *kv = s + start, *eq = memchr(kv, '=', i - start);
		size_t klen = eq ? (size_t)(eq - kv) : i - start;
		if (klen == 6 && !memcmp(kv, "socket", 6) && eq) {
			free(u->socket);
			u->socket = NULL;
			if ((r = decode(eq + 1, (size_t)(s + i - eq - 1), "socket", &u->socket)) != CF_OK)
				return r;
			if (!u->socket[0])
				return cf_err(CF_EINVAL, "database URL: empty socket path");
		} else if (i > start) {
			return cf_err(CF_EINVAL, "database URL: unknown parameter '%.*s' (only socket= is known)",
				      (int)(klen > 40 ? 40 : klen), kv);
		}
		start = i + 1;
	}
	return CF_OK;
}

int cf_dburl_parse(struct cf_dburl *u, const char *url)
{
	const char *p, *end, *at, *hostp, *hend, *path, *query;
	int r;

	if (!strncasecmp(url, "mariadb://", 10))
		p = url + 10;
	else if (!strncasecmp(url, "mysql://", 8))
		p = url + 8;
	else
		return cf_err(CF_EINVAL, "database URL: must start with mariadb://");
	if (strchr(p, '#')) {
		r = cf_err(CF_EINVAL, "database URL: '#' must be written %%23");
		goto out;
	}
	end = p + strlen(p);
	query = strchr(p, '?');
	if (!query)
		query = end;
	path = memchr(p, '/', (size_t)(query - p));
	if (!path)
		path = query;
	/* The last '@' before the path ends the credentials: a raw '@' in a
	 * password is a common mistake and this reading forgives it. */
	at = NULL;
	for (const char *q = p; q < path; q++)
		if (*q == '@')
			at = q;
	if (!at || at == p) {
		r = cf_err(CF_EINVAL, "database URL: missing USER@ before the host");
		goto out;
	}
	const char *colon = memchr(p, ':', (size_t)(at - p));
	if ((r = decode(p, (size_t)((colon ? colon : at) - p), "user", &u->user)) != CF_OK)
		goto out;
	if (!u->user[0]) {
		r = cf_err(CF_EINVAL, "database URL: empty user name");
		goto out;
	}
	if (colon && (r = decode(colon + 1, (size_t)(at - colon - 1), "password", &u->password)) != CF_OK)
		goto out;

	hostp = at + 1;
	hend = path;
	const char *portp = NULL;
	if (hostp < hend && *hostp == '[') {
		const char *rb = memchr(hostp, ']', (size_t)(hend - hostp));
		if (!rb) {
			r = cf_err(CF_EINVAL, "database URL: unterminated [IPv6] host");
			goto out;
		}
		if (rb + 1 < hend) {
			if (rb[1] != ':') {
				r = cf_err(CF_EINVAL, "database URL: junk after ]");
				goto out;
			}
			portp = rb + 2;
		}
		if ((r = decode(hostp + 1, (size_t)(rb - hostp - 1), "host", &u->host)) != CF_OK)
			goto out;
	} else {
		const char *c = memchr(hostp, ':', (size_t)(hend - hostp));
		if (c)
			portp = c + 1;
		if ((r = decode(hostp, (size_t)((c ? c : hend) - hostp), "host", &u->host)) != CF_OK)
			goto out;
	}
	u->port = 3306;
	if (portp && (r = parse_port(portp, (size_t)(hend - portp), &u->port)) != CF_OK)
		goto out;
	if (path < query && (r = parse_dbs(u, path + 1, (size_t)(query - path - 1))) != CF_OK)
		goto out;
	if (query < end && (r = parse_query(u, query + 1, (size_t)(end - query - 1))) != CF_OK)
		goto out;
	if (!u->host[0]) {
		if (!u->socket) {
			r = cf_err(CF_EINVAL, "database URL: missing host (or ?socket=)");
			goto out;
		}
		free(u->host);
		if (!(u->host = strdup("localhost"))) {
			r = CF_ENOMEM;
			goto out;
		}
	}
	r = CF_OK;
out:
	if (r != CF_OK)
		cf_dburl_release(u);
	return r;
}

void cf_dburl_release(struct cf_dburl *u)
{
	if (u->password) {
		explicit_bzero(u->password, strlen(u->password));
		free(u->password);
	}
	free(u->user);
	free(u->host);
	free(u->socket);
	for (size_t i = 0; i < u->ndbs; i++)
		free(u->dbs[i]);
	free(u->dbs);
	*u = (struct cf_dburl)CF_DBURL_INIT;
}

void cf_dburl_password_free(char *pw)
{
	if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
}

static int read_password_file(const char *path, char **out)
{
	struct cf_buf b = CF_BUF_INIT;
	char tmp[512];
	int fd, r = CF_OK;
	ssize_t n;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return cf_err_errno("MARIADB_PASSWORD_FILE %s", path);
	while ((n = read(fd, tmp, sizeof(tmp))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = cf_err_errno("MARIADB_PASSWORD_FILE %s", path);
			goto out;
		}
		if ((r = cf_buf_add(&b, tmp, (size_t)n)) != CF_OK)
			goto out;
	}
	if (b.len && b.data[b.len - 1] == '\n')
		b.len--;
	if (b.len && b.data[b.len - 1] == '\r')
		b.len--;
	if (memchr(b.data, 0, b.len)) {
		r = cf_err(CF_EINVAL, "MARIADB_PASSWORD_FILE %s: holds a NUL byte", path);
		goto out;
	}
	if ((r = cf_buf_grow(&b, 1)) != CF_OK)
		goto out;
	b.data[b.len] = 0;
	*out = (char *)cf_buf_detach(&b, NULL);
	if (!*out)
		r = CF_ENOMEM;
out:
	explicit_bzero(tmp, sizeof(tmp));
	if (b.data)
		explicit_bzero(b.data, b.cap);
	cf_buf_release(&b);
	close(fd);
	return r;
}

int cf_dburl_password(const struct cf_dburl *u, char **out)
{
	const char *env;

	*out = NULL;
	if (u->password)
		return (*out = strdup(u->password)) ? CF_OK : CF_ENOMEM;
	if ((env = getenv("MARIADB_PASSWORD")))
		return (*out = strdup(env)) ? CF_OK : CF_ENOMEM;
	if ((env = getenv("MARIADB_PASSWORD_FILE")) && env[0])
		return read_password_file(env, out);
	return CF_OK;
}

void cf_dburl_describe(const struct cf_dburl *u, char *out, size_t size)
{
	if (u->socket)
		snprintf(out, size, "%s@%s", u->user ? u->user : "", u->socket);
	else
		snprintf(out, size, "%s@%s:%u", u->user ? u->user : "", u->host ? u->host : "", u->port);
}

int cf_dburl_connect(const struct cf_dburl *u, void **out)
{
	MYSQL *m = NULL;
	char *pw = NULL, who[300];
	unsigned timeout = 10;
	int r;

	*out = NULL;
	cf_dburl_describe(u, who, sizeof(who));
	if ((r = cf_dburl_password(u, &pw)) != CF_OK)
		goto out;
	if (!(m = mysql_init(NULL))) {
		r = CF_ENOMEM;
		goto out;
	}
	mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	/* Statements of the dump are bounded (about 1 MiB) but one row can be
	 * larger; let the server's max_allowed_packet be the only limit. */
	unsigned long maxpkt = 1UL << 30;
	mysql_options(m, MYSQL_OPT_MAX_ALLOWED_PACKET, &maxpkt);
	/* A socket given explicitly wins; libmariadb only uses it for "localhost". */
	const char *host = u->socket ? "localhost" : u->host;
	if (!mysql_real_connect(m, host, u->user, pw, NULL, u->port, u->socket, 0)) {
		r = cf_err(CF_EDB, "mariadb %s: %s", who, mysql_error(m));
		mysql_close(m);
		m = NULL;
		goto out;
	}
	*out = m;
out:
	cf_dburl_password_free(pw);
	return r;
}
