/*
 * snapshot.c - the snapshot record codec and the time text it uses (see
 * snapshot.h; grammar in doc/repo-format.md).
 *
 * Field order follows restic's struct (time, parent, tree, paths, hostname,
 * username, uid, gid, tags, program_version, summary) so the output lines up
 * with `restic snapshots --json`.  Decoding is lenient where restic's own
 * records vary (unknown fields, any RFC 3339 offset and number of fractional
 * digits, summary counters that an older writer left out) and strict where a
 * wrong value would mislead (ids, times, types).
 *
 * Counters are uint64 but JSON integers in jansson are int64: a value above
 * INT64_MAX is written as the int64 with the same bits and read back the same
 * way, as tree.c does for device numbers.
 *
 * Strings that are not UTF-8 (a path given on the command line in Latin-1)
 * cannot be JSON strings; they are written with U+FFFD for each bad byte, as
 * restic does.  The snapshot's paths and tags are labels: the exact bytes of
 * every name live in the trees.
 *
 * Times are converted with days-from-civil arithmetic on int64 rather than
 * gmtime/timegm, so any int64 nanosecond count formats and every year
 * 0000-9999 parses (then range-checked) without overflow.
 */
#include "repo/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "repo/tree.h"

#define NS_PER_SEC 1000000000LL
/* Bounds on list lengths so a hostile record cannot ask for absurd arrays. */
#define MAX_LIST (1u << 20)

/* ---- time ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm; exact for every int32 year). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dm[m - 1];
}

void cf_format_time(int64_t ns, char *out, size_t outlen)
{
	/* Floor division: -1 ns is 1969-12-31T23:59:59.999999999Z. */
	int64_t secs = ns / NS_PER_SEC, frac = ns % NS_PER_SEC, days, y;
	unsigned m, d, sod;

	if (frac < 0) {
		frac += NS_PER_SEC;
		secs--;
	}
	days = secs / 86400;
	if (secs % 86400 < 0)
		days--;
	sod = (unsigned)(secs - days * 86400);
	civil_from_days(days, &y, &m, &d);
	snprintf(out, outlen, "%04lld-%02u-%02uT%02u:%02u:%02u.%09lldZ", (long long)y, m, d,
		 sod / 3600, sod / 60 % 60, sod % 60, (long long)frac);
}

/* n decimal digits at *p into *v; advances *p. */
static bool digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return false;
		*v = *v * 10 + (**p - '0');
	}
	return true;
}

/* "YYYY-MM-DD[Tt ]HH:MM:SS[.f+]" then "Z", "z", "+HH:MM", "-HH:MM" or, only
 * when allow_local, nothing (the process's local time zone). */
static int parse_time(const char *s, bool allow_local, int64_t *ns)
{
	const char *p = s;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, secs;
	bool local = false;

	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d))
		goto bad;
	/* RFC 3339 allows 't', and in its note a space, for 'T'. */
	if (*p != 'T' && *p != 't' && *p != ' ')
		goto bad;
	p++;
	if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
	    !digits(&p, 2, &sec))
		goto bad;
	if (*p == '.') {
		int nd = 0;

		if (*++p < '0' || *p > '9')
			goto bad;
		/* Digits past nanoseconds are accepted and truncated. */
		for (; *p >= '0' && *p <= '9'; p++, nd++)
			if (nd < 9)
				frac = frac * 10 + (*p - '0');
		for (; nd < 9; nd++)
			frac *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
			goto bad;
	} else if (*p == 0 && allow_local) {
		local = true;
	} else {
		goto bad;
	}
	if (*p != 0 || mo < 1 || mo > 12 || d < 1 || (unsigned)d > days_in_month(y, mo) ||
	    h > 23 || mi > 59 || sec > 59)
		goto bad;

	if (local) {
		struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
				 .tm_hour = h, .tm_min = mi, .tm_sec = sec, .tm_isdst = -1,
				 .tm_wday = -1 };
		time_t t = mktime(&tm);

		/* mktime's -1 is also a valid time; an untouched tm_wday is not. */
		if (tm.tm_wday == -1)
			goto range;
		secs = (int64_t)t;
	} else {
		secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
		       sign * (oh * 3600 + om * 60);
	}
	/* Near INT64_MIN, secs * 10^9 alone would overflow although the sum
	 * fits: borrow the fraction from the next second up. */
	if (secs < 0 && frac > 0) {
		secs++;
		frac -= NS_PER_SEC;
	}
	if (__builtin_mul_overflow(secs, NS_PER_SEC, ns) || __builtin_add_overflow(*ns, frac, ns))
		goto range;
	return CF_OK;
bad:
	return cf_err(CF_EINVAL, "invalid time \"%.64s\": expected YYYY-MM-DD HH:MM:SS or RFC 3339 "
		      "(2026-11-23T05:04:00Z)", s);
range:
	return cf_err(CF_EINVAL, "time \"%.64s\" is out of range", s);
}

int cf_parse_time(const char *s, int64_t *ns)
{
	return parse_time(s, true, ns);
}

/* ---- memory ---------------------------------------------------------- */

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void sources_free(struct cf_snapshot_source *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < v[i].ndbs; k++) {
			free(v[i].dbs[k].name);
			free(v[i].dbs[k].path);
		}
		free(v[i].dbs);
		free(v[i].path);
		free(v[i].url);
	}
	free(v);
}

void cf_snapshot_release(struct cf_snapshot *s)
{
	sources_free(s->sources, s->nsources);
	free(s->hostname);
	free(s->username);
	free(s->program_version);
	free_list(s->paths, s->npaths);
	free_list(s->tags, s->ntags);
	memset(s, 0, sizeof(*s));
}

static int list_add(char ***v, size_t *n, const char *str)
{
	char **p, *dup;

	if (*n >= MAX_LIST)
		return cf_err(CF_EINVAL, "too many entries (%zu)", *n);
	if (!(dup = strdup(str)))
		return cf_err(CF_ENOMEM, "out of memory");
	if (!(p = realloc(*v, (*n + 1) * sizeof(*p)))) {
		free(dup);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	p[(*n)++] = dup;
	*v = p;
	return CF_OK;
}

int cf_snapshot_add_path(struct cf_snapshot *s, const char *path)
{
	return list_add(&s->paths, &s->npaths, path);
}

int cf_snapshot_add_tag(struct cf_snapshot *s, const char *tag)
{
	return list_add(&s->tags, &s->ntags, tag);
}

/* ---- sources --------------------------------------------------------- */

static const char *const kind_names[] = {
	[CF_SOURCE_VOLUME] = "volume", [CF_SOURCE_MARIADB] = "mariadb",
	[CF_SOURCE_SQLITE] = "sqlite", [CF_SOURCE_COMMAND] = "command",
	[CF_SOURCE_POSTGRES] = "postgres",
};

const char *cf_source_kind_name(int kind)
{
	if (kind < CF_SOURCE_VOLUME || kind > CF_SOURCE_POSTGRES)
		return NULL;
	return kind_names[kind];
}

static int kind_of(const char *name)
{
	for (int k = CF_SOURCE_VOLUME; k <= CF_SOURCE_POSTGRES; k++)
		if (!strcmp(kind_names[k], name))
			return k;
	return 0;
}

char *cf_snapshot_strip_url(const char *in)
{
	const char *sep = strstr(in, "://");
	size_t start = sep ? (size_t)(sep - in) + 3 : 0;
	size_t alen = strcspn(in + start, "/?#");
	const char *at = NULL;
	char *bare, *out;
	size_t n;

	/* userinfo ends at the last '@' of the authority (a password may hold
	 * '@' when the writer did not percent-encode it) */
	for (const char *q = in + start; q < in + start + alen; q++)
		if (*q == '@')
			at = q;
	n = strlen(in);
	if (!(bare = malloc(n + 1)))
		return NULL;
	memcpy(bare, in, start);
	snprintf(bare + start, n + 1 - start, "%s", at ? at + 1 : in + start);
	/* "***" is 3 bytes where a secret value may be 1: room for that */
	n = strlen(bare) * 3 + 4;
	if ((out = malloc(n)))
		cf_redact_url(bare, out, n);
	free(bare);
	return out;
}

int cf_snapshot_add_source(struct cf_snapshot *s, enum cf_source_kind kind, const char *path,
			   const char *url, struct cf_snapshot_source **out)
{
	struct cf_snapshot_source *v, *e;

	if (!cf_source_kind_name((int)kind) || !path)
		return cf_err(CF_EINVAL, "snapshot source: unknown kind %d or no path", (int)kind);
	if (s->nsources >= MAX_LIST)
		return cf_err(CF_EINVAL, "too many sources (%zu)", s->nsources);
	if (!(v = realloc(s->sources, (s->nsources + 1) * sizeof(*v))))
		return cf_err(CF_ENOMEM, "out of memory");
	s->sources = v;
	e = &v[s->nsources];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	if (!(e->path = strdup(path)) || (url && !(e->url = cf_snapshot_strip_url(url)))) {
		free(e->path);
		e->path = NULL;
		return cf_err(CF_ENOMEM, "out of memory");
	}
	s->nsources++;
	if (out)
		*out = e;
	return CF_OK;
}

int cf_snapshot_source_add_db(struct cf_snapshot_source *src, const char *name, const char *path)
{
	struct cf_snapshot_db *v;
	char *a, *b;

	if (src->ndbs >= MAX_LIST)
		return cf_err(CF_EINVAL, "too many databases (%zu)", src->ndbs);
	a = strdup(name);
	b = strdup(path);
	v = a && b ? realloc(src->dbs, (src->ndbs + 1) * sizeof(*v)) : NULL;
	if (!v) {
		free(a);
		free(b);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	src->dbs = v;
	v[src->ndbs].name = a;
	v[src->ndbs].path = b;
	src->ndbs++;
	return CF_OK;
}

int cf_snapshot_copy_sources(struct cf_snapshot *s, const struct cf_snapshot_source *v, size_t n)
{
	struct cf_snapshot_source *e;
	int r;

	for (size_t i = 0; i < n; i++) {
		if ((r = cf_snapshot_add_source(s, v[i].kind, v[i].path, v[i].url, &e)) != CF_OK)
			return r;
		for (size_t k = 0; k < v[i].ndbs; k++)
			if ((r = cf_snapshot_source_add_db(e, v[i].dbs[k].name, v[i].dbs[k].path)) != CF_OK)
				return r;
	}
	return CF_OK;
}

/* ---- encoding -------------------------------------------------------- */

static int enomem(void)
{
	return cf_err(CF_ENOMEM, "out of memory encoding a snapshot");
}

static int put(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new(o, key, v) == 0 ? CF_OK : enomem();
}

static int64_t u2i(uint64_t v)
{
	int64_t i;

	memcpy(&i, &v, sizeof(i));
	return i;
}

static uint64_t i2u(int64_t v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

/* A JSON string of s, each byte that is not part of well-formed UTF-8
 * replaced by U+FFFD.  NULL on ENOMEM. */
static json_t *lossy_string(const char *s)
{
	static const char repl[] = "\xef\xbf\xbd";
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s), i, l;
	struct cf_buf b = CF_BUF_INIT;
	json_t *j = NULL;

	for (i = 0; i < n && (l = cf_utf8_len(p + i, n - i)) != 0; i += l)
		;
	if (i == n)
		return json_stringn(s, n);
	if (cf_buf_add(&b, s, i) != CF_OK)
		goto out;
	while (i < n) {
		l = cf_utf8_len(p + i, n - i);
		if ((l ? cf_buf_add(&b, p + i, l) : cf_buf_add(&b, repl, 3)) != CF_OK)
			goto out;
		i += l ? l : 1;
	}
	j = json_stringn((const char *)b.data, b.len);
out:
	cf_buf_release(&b);
	return j;
}

static int put_time(json_t *o, const char *key, int64_t ns)
{
	char t[40];

	cf_format_time(ns, t, sizeof(t));
	return put(o, key, json_string(t));
}

static int put_id(json_t *o, const char *key, const uint8_t id[CF_ID_LEN])
{
	char hex[CF_ID_HEX];

	cf_hex(id, CF_ID_LEN, hex);
	return put(o, key, json_string(hex));
}

static int put_list(json_t *o, const char *key, char *const *v, size_t n)
{
	json_t *a = json_array();

	if (!a)
		return enomem();
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(a, lossy_string(v[i])) != 0) {
			json_decref(a);
			return enomem();
		}
	return put(o, key, a);
}

static int put_summary(json_t *o, const struct cf_snapshot_summary *m)
{
	json_t *j = json_object();
	int r;

	if (!j)
		return enomem();
	if ((r = put_time(j, "backup_start", m->backup_start_ns)) != CF_OK ||
	    (r = put_time(j, "backup_end", m->backup_end_ns)) != CF_OK)
		goto out;
#define N(f) if ((r = put(j, #f, json_integer(u2i(m->f)))) != CF_OK) goto out
	N(files_new); N(files_changed); N(files_unmodified);
	N(dirs_new); N(dirs_changed); N(dirs_unmodified);
	N(data_blobs); N(tree_blobs);
	N(data_added); N(data_added_packed);
	N(total_files_processed); N(total_bytes_processed);
	N(files_unreadable);
#undef N
	return put(o, "summary", j);
out:
	json_decref(j);
	return r;
}

/* {"kind","path"[,"url"][,"databases":[{"name","path"},...]]} per source */
static int put_sources(json_t *o, const struct cf_snapshot_source *v, size_t n)
{
	json_t *a = json_array(), *e = NULL, *dbs = NULL;
	char *url = NULL;
	int r = CF_OK;

	if (!a)
		return enomem();
	for (size_t i = 0; i < n && r == CF_OK; i++) {
		const char *kind = cf_source_kind_name((int)v[i].kind);

		if (!kind || !v[i].path) {
			r = cf_err(CF_EINVAL, "snapshot source %zu: unknown kind or no path", i);
			break;
		}
		if (!(e = json_object())) {
			r = enomem();
			break;
		}
		if ((r = put(e, "kind", json_string(kind))) != CF_OK ||
		    (r = put(e, "path", lossy_string(v[i].path))) != CF_OK)
			break;
		/* stripped again here: whatever filled the struct, no password is
		 * ever written */
		if (v[i].url) {
			if (!(url = cf_snapshot_strip_url(v[i].url)) ||
			    (r = put(e, "url", lossy_string(url))) != CF_OK) {
				r = r != CF_OK ? r : enomem();
				break;
			}
			free(url);
			url = NULL;
		}
		if (v[i].ndbs) {
			if (!(dbs = json_array())) {
				r = enomem();
				break;
			}
			for (size_t k = 0; k < v[i].ndbs && r == CF_OK; k++) {
				json_t *d = json_object();

				if (!d || json_array_append_new(dbs, d) != 0) {
					r = enomem();
					break;
				}
				if ((r = put(d, "name", lossy_string(v[i].dbs[k].name))) == CF_OK)
					r = put(d, "path", lossy_string(v[i].dbs[k].path));
			}
			if (r != CF_OK)
				break;
			r = put(e, "databases", dbs);
			dbs = NULL; /* put took it, also on failure */
			if (r != CF_OK)
				break;
		}
		if (json_array_append_new(a, e) != 0)
			r = enomem();
		e = NULL;
	}
	free(url);
	json_decref(dbs);
	json_decref(e);
	if (r != CF_OK) {
		json_decref(a);
		return r;
	}
	return put(o, "sources", a);
}

static int build(const struct cf_snapshot *s, json_t **out)
{
	json_t *o;
	int r;

	*out = NULL;
	if (!s->hostname)
		return cf_err(CF_EINVAL, "snapshot has no hostname");
	if (s->npaths && !s->paths)
		return cf_err(CF_EINVAL, "snapshot paths missing");
	if (!(o = json_object()))
		return enomem();
	if ((r = put_time(o, "time", s->time_ns)) != CF_OK ||
	    (s->has_parent && (r = put_id(o, "parent", s->parent)) != CF_OK) ||
	    (r = put_id(o, "tree", s->tree)) != CF_OK ||
	    (r = put_list(o, "paths", s->paths, s->npaths)) != CF_OK ||
	    (r = put(o, "hostname", lossy_string(s->hostname))) != CF_OK ||
	    (s->username && (r = put(o, "username", lossy_string(s->username))) != CF_OK) ||
	    (r = put(o, "uid", json_integer(s->uid))) != CF_OK ||
	    (r = put(o, "gid", json_integer(s->gid))) != CF_OK ||
	    (s->ntags && (r = put_list(o, "tags", s->tags, s->ntags)) != CF_OK) ||
	    (s->program_version &&
	     (r = put(o, "program_version", lossy_string(s->program_version))) != CF_OK) ||
	    (s->has_summary && (r = put_summary(o, &s->summary)) != CF_OK) ||
	    (s->has_original && (r = put_id(o, "original", s->original)) != CF_OK) ||
	    (s->nsources && (r = put_sources(o, s->sources, s->nsources)) != CF_OK)) {
		json_decref(o);
		return r;
	}
	*out = o;
	return CF_OK;
}

/* jansson 2.14 ignores a failed write of an object key and dumps on, so
 * one failed allocation would yield bytes that are not JSON under a
 * success: a failure here is sticky, the next write fails the dump too, and
 * the caller checks the flag as well. */
struct dump_ctx {
	struct cf_buf *out;
	bool failed;
};

static int dump_cb(const char *p, size_t n, void *data)
{
	struct dump_ctx *d = data;
	if (d->failed || cf_buf_add(d->out, p, n) != CF_OK) {
		d->failed = true;
		return -1;
	}
	return 0;
}

int cf_snapshot_encode(const struct cf_snapshot *s, struct cf_buf *out)
{
	json_t *o;
	size_t oldlen = out->len;
	int r;

	if ((r = build(s, &o)) != CF_OK)
		return r;
	struct dump_ctx dc = { out, false };
	if (json_dump_callback(o, dump_cb, &dc, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || dc.failed) {
		out->len = oldlen;
		if (out->data)
			out->data[oldlen] = 0;
		r = enomem();
	}
	json_decref(o);
	return r;
}

json_t *cf_snapshot_to_json(const struct cf_snapshot *s)
{
	char hex[CF_ID_HEX];
	json_t *o;

	if (build(s, &o) != CF_OK)
		return NULL;
	cf_hex(s->id, CF_ID_LEN, hex);
	if (put(o, "id", json_string(hex)) != CF_OK ||
	    put(o, "short_id", json_stringn(hex, 8)) != CF_OK) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- decoding -------------------------------------------------------- */

#define BAD(...) cf_err(CF_ECORRUPT, "snapshot: " __VA_ARGS__)

static int get_str(json_t *o, const char *key, bool required, char **out)
{
	json_t *j = json_object_get(o, key);

	if (!j)
		return required ? BAD("missing \"%s\"", key) : CF_OK;
	/* Without JSON_ALLOW_NUL jansson refuses \u0000; checked again because
	 * the struct holds C strings. */
	if (!json_is_string(j) || memchr(json_string_value(j), 0, json_string_length(j)))
		return BAD("\"%s\" is not a string", key);
	if (!(*out = strdup(json_string_value(j))))
		return enomem();
	return CF_OK;
}

static int get_list(json_t *o, const char *key, bool required, char ***v, size_t *n)
{
	json_t *a = json_object_get(o, key);
	size_t count;

	if (!a)
		return required ? BAD("missing \"%s\"", key) : CF_OK;
	if (!json_is_array(a))
		return BAD("\"%s\" is not an array", key);
	count = json_array_size(a);
	if (count > MAX_LIST)
		return BAD("\"%s\" has too many entries (%zu)", key, count);
	for (size_t i = 0; i < count; i++) {
		json_t *e = json_array_get(a, i);
		int r;

		if (!json_is_string(e) || memchr(json_string_value(e), 0, json_string_length(e)))
			return BAD("\"%s\"[%zu] is not a string", key, i);
		if ((r = list_add(v, n, json_string_value(e))) != CF_OK)
			return r;
	}
	return CF_OK;
}

static int get_id(json_t *o, const char *key, bool required, uint8_t id[CF_ID_LEN], bool *present)
{
	json_t *j = json_object_get(o, key);
	const char *s;

	if (present)
		*present = j != NULL;
	if (!j)
		return required ? BAD("missing \"%s\"", key) : CF_OK;
	if (!json_is_string(j) || json_string_length(j) != 2 * CF_ID_LEN)
		return BAD("\"%s\" is not 64 hex digits", key);
	s = json_string_value(j);
	for (size_t i = 0; i < 2 * CF_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return BAD("\"%s\" is not 64 lowercase hex digits", key);
	if (cf_unhex(s, id, CF_ID_LEN) != CF_OK)
		return BAD("\"%s\" is not 64 hex digits", key);
	return CF_OK;
}

static int get_time(json_t *o, const char *key, bool required, int64_t *ns)
{
	json_t *j = json_object_get(o, key);

	if (!j)
		return required ? BAD("missing \"%s\"", key) : CF_OK;
	if (!json_is_string(j))
		return BAD("\"%s\" is not a string", key);
	/* Stored times always carry their offset: reading them must not depend
	 * on the reader's time zone. */
	if (parse_time(json_string_value(j), false, ns) != CF_OK)
		return BAD("\"%s\": %s", key, cf_errmsg(CF_EINVAL));
	return CF_OK;
}

static int get_int(json_t *o, const char *key, int64_t min, int64_t max, int64_t *v)
{
	json_t *j = json_object_get(o, key);

	if (!j)
		return CF_OK;
	if (!json_is_integer(j))
		return BAD("\"%s\" is not an integer", key);
	if (json_integer_value(j) < min || json_integer_value(j) > max)
		return BAD("\"%s\" is out of range", key);
	*v = json_integer_value(j);
	return CF_OK;
}

static int get_u32(json_t *o, const char *key, uint32_t *v)
{
	int64_t i = 0;
	int r = get_int(o, key, 0, UINT32_MAX, &i);

	*v = (uint32_t)i;
	return r;
}

static int get_summary(json_t *j, struct cf_snapshot_summary *m)
{
	int64_t v;
	int r;

	if (!json_is_object(j))
		return BAD("\"summary\" is not an object");
	if ((r = get_time(j, "backup_start", false, &m->backup_start_ns)) != CF_OK ||
	    (r = get_time(j, "backup_end", false, &m->backup_end_ns)) != CF_OK)
		return r;
	/* Counters are optional: files_unreadable is coffer's own, and restic
	 * versions differ in what they wrote. */
#define N(f) do { v = 0; \
		if ((r = get_int(j, #f, INT64_MIN, INT64_MAX, &v)) != CF_OK) return r; \
		m->f = i2u(v); } while (0)
	N(files_new); N(files_changed); N(files_unmodified);
	N(dirs_new); N(dirs_changed); N(dirs_unmodified);
	N(data_blobs); N(tree_blobs);
	N(data_added); N(data_added_packed);
	N(total_files_processed); N(total_bytes_processed);
	N(files_unreadable);
#undef N
	return CF_OK;
}

/* One MariaDB source's "databases". */
static int get_dbs(json_t *a, size_t i, struct cf_snapshot_source *e)
{
	size_t count;
	int r;

	if (!json_is_array(a))
		return BAD("\"sources\"[%zu].databases is not an array", i);
	if ((count = json_array_size(a)) > MAX_LIST)
		return BAD("\"sources\"[%zu].databases has too many entries (%zu)", i, count);
	for (size_t k = 0; k < count; k++) {
		json_t *d = json_array_get(a, k);
		char *name = NULL, *path = NULL;

		if (!json_is_object(d))
			return BAD("\"sources\"[%zu].databases[%zu] is not an object", i, k);
		if ((r = get_str(d, "name", true, &name)) != CF_OK ||
		    (r = get_str(d, "path", true, &path)) != CF_OK ||
		    (r = cf_snapshot_source_add_db(e, name, path)) != CF_OK) {
			free(name);
			free(path);
			return r == CF_EINVAL ? BAD("\"sources\"[%zu]: too many databases", i) : r;
		}
		free(name);
		free(path);
	}
	return CF_OK;
}

/* "sources": an entry of a kind this version does not know is skipped (a
 * later version's source: the files are in the tree all the same); unknown
 * keys in an entry are ignored. */
static int get_sources(json_t *a, struct cf_snapshot *s)
{
	size_t count;
	int r;

	if (!json_is_array(a))
		return BAD("\"sources\" is not an array");
	if ((count = json_array_size(a)) > MAX_LIST)
		return BAD("\"sources\" has too many entries (%zu)", count);
	for (size_t i = 0; i < count; i++) {
		json_t *o = json_array_get(a, i), *k, *dbs;
		struct cf_snapshot_source *e;
		char *path = NULL, *url = NULL;
		int kind;

		if (!json_is_object(o))
			return BAD("\"sources\"[%zu] is not an object", i);
		k = json_object_get(o, "kind");
		if (!json_is_string(k))
			return BAD("\"sources\"[%zu].kind is missing or not a string", i);
		if ((r = get_str(o, "path", true, &path)) != CF_OK ||
		    (r = get_str(o, "url", false, &url)) != CF_OK) {
			free(path);
			return r;
		}
		kind = kind_of(json_string_value(k));
		r = kind ? cf_snapshot_add_source(s, (enum cf_source_kind)kind, path, url, &e) : CF_OK;
		free(path);
		free(url);
		if (r != CF_OK)
			return r == CF_EINVAL ? BAD("too many sources") : r;
		if (kind && (dbs = json_object_get(o, "databases")) && (r = get_dbs(dbs, i, e)) != CF_OK)
			return r;
	}
	return CF_OK;
}

int cf_snapshot_decode(const void *p, size_t n, struct cf_snapshot *s)
{
	json_error_t jerr;
	json_t *root, *sum, *src;
	int r;

	memset(&jerr, 0, sizeof(jerr));
	root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		/* jansson leaves the text empty when its first allocation
		 * fails, before it can record a code. */
		if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0])
			return enomem();
		return BAD("not valid JSON (line %d, column %d: %s)", jerr.line, jerr.column,
			   jerr.text);
	}
	if (!json_is_object(root)) {
		r = BAD("not a JSON object");
		goto out;
	}
	if ((r = get_time(root, "time", true, &s->time_ns)) != CF_OK ||
	    (r = get_id(root, "tree", true, s->tree, NULL)) != CF_OK ||
	    (r = get_id(root, "parent", false, s->parent, &s->has_parent)) != CF_OK ||
	    (r = get_list(root, "paths", true, &s->paths, &s->npaths)) != CF_OK ||
	    (r = get_str(root, "hostname", true, &s->hostname)) != CF_OK ||
	    (r = get_str(root, "username", false, &s->username)) != CF_OK ||
	    (r = get_u32(root, "uid", &s->uid)) != CF_OK ||
	    (r = get_u32(root, "gid", &s->gid)) != CF_OK ||
	    (r = get_list(root, "tags", false, &s->tags, &s->ntags)) != CF_OK ||
	    (r = get_str(root, "program_version", false, &s->program_version)) != CF_OK ||
	    (r = get_id(root, "original", false, s->original, &s->has_original)) != CF_OK)
		goto out;
	if ((sum = json_object_get(root, "summary")) != NULL) {
		if ((r = get_summary(sum, &s->summary)) != CF_OK)
			goto out;
		s->has_summary = true;
	}
	if ((src = json_object_get(root, "sources")) != NULL && (r = get_sources(src, s)) != CF_OK)
		goto out;
	r = CF_OK;
out:
	json_decref(root);
	if (r != CF_OK)
		cf_snapshot_release(s);
	return r;
}
