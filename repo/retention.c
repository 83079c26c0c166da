/*
 * retention.c - restic's forget policy, line for line where it matters.
 *
 * The walk below mirrors restic's ApplyPolicy loop: the order of the rules
 * decides the order of the reasons, and the quirks (a bucket rule compares
 * with the last bucket it KEPT, the oldest snapshot is kept when counts are
 * left, within-rules ignore the counts) are deliberate, so that restic's own
 * golden results come out unchanged.
 */
#include "repo/retention.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/error.h"
#include "common/tz.h"

/* ------------------------------------------------------------- durations */

int cf_duration_parse(const char *s, struct cf_duration *out)
{
	struct cf_duration d = { 0 };
	const char *p = s;

	if (!s)
		return cf_err(CF_EINVAL, "no duration given");
	while (isspace((unsigned char)*p))
		p++;
	size_t len = strlen(p);
	while (len && isspace((unsigned char)p[len - 1]))
		len--;
	const char *end = p + len;
	while (p < end) {
		bool neg = false;
		long long v = 0;
		const char *digits;
		if (*p == '-') {
			neg = true;
			p++;
		}
		digits = p;
		while (p < end && isdigit((unsigned char)*p)) {
			v = v * 10 + (*p - '0');
			if (v > INT_MAX)
				return cf_err(CF_EINVAL, "duration \"%s\": number too large", s);
			p++;
		}
		if (p == digits)
			return cf_err(CF_EINVAL, "duration \"%s\": no number found at \"%.*s\" "
				      "(expected e.g. 1y2m3d4h)", s, (int)(end - digits), digits);
		if (neg)
			return cf_err(CF_EINVAL, "duration \"%s\": negative values are not allowed", s);
		if (p == end)
			return cf_err(CF_EINVAL, "duration \"%s\": no unit found after number %lld "
				      "(use y, m, d or h)", s, v);
		switch (*p) {
		case 'y': d.years = (int)v; break;
		case 'm': d.months = (int)v; break;
		case 'd': d.days = (int)v; break;
		case 'h': d.hours = (int)v; break;
		default:
			return cf_err(CF_EINVAL, "duration \"%s\": invalid unit '%c' after number %lld "
				      "(use y, m, d or h; a week is 7d)", s, *p, v);
		}
		p++;
	}
	*out = d;
	return CF_OK;
}

void cf_duration_format(const struct cf_duration *d, char *out, size_t n)
{
	size_t o = 0;
	const struct {
		int v;
		char unit;
	} parts[] = { { d->years, 'y' }, { d->months, 'm' }, { d->days, 'd' }, { d->hours, 'h' } };

	if (n)
		out[0] = 0;
	for (size_t i = 0; i < 4; i++) {
		if (parts[i].v == 0 || o >= n)
			continue;
		int w = snprintf(out + o, n - o, "%d%c", parts[i].v, parts[i].unit);
		if (w > 0)
			o += (size_t)w;
	}
}

bool cf_duration_zero(const struct cf_duration *d)
{
	return !d->years && !d->months && !d->days && !d->hours;
}

bool cf_retention_policy_empty(const struct cf_retention_policy *p)
{
	return !p->last && !p->hourly && !p->daily && !p->weekly && !p->monthly && !p->yearly &&
	       cf_duration_zero(&p->within) && cf_duration_zero(&p->within_hourly) &&
	       cf_duration_zero(&p->within_daily) && cf_duration_zero(&p->within_weekly) &&
	       cf_duration_zero(&p->within_monthly) && cf_duration_zero(&p->within_yearly) &&
	       p->nkeep_tags == 0;
}

/* --------------------------------------------------------------- helpers */

/* A point in time at restic's resolution, for its strict "After". */
struct stamp {
	int64_t sec;
	int32_t nsec;
};

static int stamp_cmp(struct stamp a, struct stamp b)
{
	if (a.sec != b.sec)
		return a.sec < b.sec ? -1 : 1;
	return a.nsec < b.nsec ? -1 : a.nsec > b.nsec;
}

/* Calendar buckets of one snapshot, in restic's integer encodings. */
enum { B_ALWAYS, B_YMDH, B_YMD, B_YW, B_YM, B_Y, B_N };

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Go's time.ISOWeek: the year and week of the Thursday of tm's week. */
static int64_t iso_week(const struct tm *tm)
{
	int year = tm->tm_year + 1900;
	int wday = tm->tm_wday == 0 ? 7 : tm->tm_wday;  /* Monday 1 .. Sunday 7 */
	int yday = tm->tm_yday - (wday - 4);
	if (yday < 0) {
		year--;
		yday += leap(year) ? 366 : 365;
	} else if (yday >= (leap(year) ? 366 : 365)) {
		yday -= leap(year) ? 366 : 365;
		year++;
	}
	return (int64_t)year * 100 + yday / 7 + 1;
}

static void buckets_of(const struct tm *tm, int64_t b[B_N])
{
	int64_t y = tm->tm_year + 1900, m = tm->tm_mon + 1;
	b[B_YMDH] = y * 1000000 + m * 10000 + tm->tm_mday * 100 + tm->tm_hour;
	b[B_YMD] = y * 10000 + m * 100 + tm->tm_mday;
	b[B_YW] = iso_week(tm);
	b[B_YM] = y * 100 + m;
	b[B_Y] = y;
}

static int broken_down(bool utc, int64_t t, struct tm *tm)
{
	time_t tt = (time_t)t;
	if (!(utc ? gmtime_r(&tt, tm) : localtime_r(&tt, tm)))
		return cf_err(CF_EINVAL, "snapshot time %lld cannot be converted", (long long)t);
	return CF_OK;
}

/* restic: latest.AddDate(-y, -m, -d).Add(-h hours), in the zone. */
static int subtract(bool utc, struct stamp latest, const struct cf_duration *d, struct stamp *out)
{
	struct tm tm;
	time_t t;
	int r;

	if ((r = broken_down(utc, latest.sec, &tm)) != CF_OK)
		return r;
	tm.tm_year -= d->years;
	tm.tm_mon -= d->months;
	tm.tm_mday -= d->days;
	tm.tm_isdst = -1;
	t = utc ? timegm(&tm) : mktime(&tm);
	if (t == (time_t)-1 && tm.tm_year < -1000)
		return cf_err(CF_EINVAL, "duration reaches before the start of time");
	out->sec = (int64_t)t - (int64_t)d->hours * 3600;
	out->nsec = latest.nsec;
	return CF_OK;
}

struct taglist {
	char **tags;
	size_t n;
	char *label;  /* "has tags [a, b]" */
};

static void taglists_free(struct taglist *l, size_t n)
{
	if (!l)
		return;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < l[i].n; j++)
			free(l[i].tags[j]);
		free(l[i].tags);
		free(l[i].label);
	}
	free(l);
}

/* restic's splitTagList: split on ',', trim each; "" is one empty tag. */
static int taglist_parse(const char *s, struct taglist *l)
{
	struct cf_buf label = CF_BUF_INIT;
	size_t n = 1;
	int r = CF_ENOMEM;

	for (const char *p = s; *p; p++)
		n += *p == ',';
	if (!(l->tags = calloc(n, sizeof(*l->tags))))
		goto out;
	if (cf_buf_adds(&label, "has tags ["))
		goto out;
	for (const char *p = s;; ) {
		const char *e = strchr(p, ',');
		const char *stop = e ? e : p + strlen(p);
		while (p < stop && isspace((unsigned char)*p))
			p++;
		while (stop > p && isspace((unsigned char)stop[-1]))
			stop--;
		if (!(l->tags[l->n] = strndup(p, (size_t)(stop - p))))
			goto out;
		if ((l->n && cf_buf_adds(&label, ", ")) || cf_buf_adds(&label, l->tags[l->n]))
			goto out;
		l->n++;
		if (!e)
			break;
		p = e + 1;
	}
	if (cf_buf_adds(&label, "]"))
		goto out;
	l->label = (char *)cf_buf_detach(&label, NULL);
	r = l->label ? CF_OK : CF_ENOMEM;
out:
	cf_buf_release(&label);
	if (r)
		return cf_err(r, "out of memory parsing tag list");
	return r;
}

/* restic's Snapshot.HasTags. */
static bool has_tags(const struct cf_retention_snap *s, const struct taglist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		bool found = false;
		if (!l->tags[i][0] && s->ntags == 0)
			return true;
		for (size_t j = 0; j < s->ntags && !found; j++)
			found = strcmp(s->tags[j], l->tags[i]) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* Newest first; equal stamps keep input order (restic's sort.Stable). */
static int by_time_desc(const void *a, const void *b, void *arg)
{
	const struct cf_retention_snap *sort_base = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	struct stamp si = { sort_base[i].time, sort_base[i].nsec };
	struct stamp sj = { sort_base[j].time, sort_base[j].nsec };
	int c = stamp_cmp(sj, si);
	return c ? c : (i > j) - (i < j);
}

static int add_reason(struct cf_retention_result *res, const char *fmt, const char *a, const char *b)
{
	char *s;
	if (asprintf(&s, fmt, a, b) < 0)
		return cf_err(CF_ENOMEM, "out of memory listing reasons");
	res->reasons[res->nreasons++] = s;
	return CF_OK;
}

static int validate(const struct cf_retention_policy *p)
{
	const int counts[] = { p->last, p->hourly, p->daily, p->weekly, p->monthly, p->yearly };
	const char *names[] = { "last", "hourly", "daily", "weekly", "monthly", "yearly" };
	const struct cf_duration *durs[] = { &p->within, &p->within_hourly, &p->within_daily,
					     &p->within_weekly, &p->within_monthly, &p->within_yearly };

	if (cf_retention_policy_empty(p))
		return cf_err(CF_EINVAL, "no policy given (refusing to remove every snapshot; "
			      "use at least one --keep-* option)");
	for (int i = 0; i < 6; i++)
		if (counts[i] < CF_KEEP_UNLIMITED)
			return cf_err(CF_EINVAL, "keep-%s %d: negative values other than -1 (unlimited) "
				      "are not allowed", names[i], counts[i]);
	for (int i = 0; i < 6; i++)
		if (durs[i]->years < 0 || durs[i]->months < 0 || durs[i]->days < 0 || durs[i]->hours < 0)
			return cf_err(CF_EINVAL, "keep-within durations must not be negative");
	return CF_OK;
}

/* ----------------------------------------------------------------- apply */

struct rule {
	int count;           /* counts left; -1 = unlimited */
	int bucket;          /* B_* */
	int64_t last;        /* bucket of the last snapshot kept by this rule */
	bool have_last;
	const char *reason;
	const struct cf_duration *within;  /* within-rules only */
	struct stamp since;  /* within-rules: keep snapshots after this */
};

int cf_retention_apply(const struct cf_retention_policy *p, const struct cf_retention_snap *snaps,
		       size_t n, const char *tz, int64_t now, struct cf_retention_result **out)
{
	bool utc = !tz || !*tz, locked = false, have_latest = false;
	struct cf_retention_result *res = NULL;
	struct taglist *tags = NULL;
	size_t *order = NULL;
	int64_t (*bk)[B_N] = NULL;
	struct stamp latest = { 0, 0 }, within_since = { 0, 0 };
	char dur[64];
	int r;

	struct rule rules[6] = {
		{ p->last, B_ALWAYS, 0, false, "last snapshot", NULL, { 0, 0 } },
		{ p->hourly, B_YMDH, 0, false, "hourly snapshot", NULL, { 0, 0 } },
		{ p->daily, B_YMD, 0, false, "daily snapshot", NULL, { 0, 0 } },
		{ p->weekly, B_YW, 0, false, "weekly snapshot", NULL, { 0, 0 } },
		{ p->monthly, B_YM, 0, false, "monthly snapshot", NULL, { 0, 0 } },
		{ p->yearly, B_Y, 0, false, "yearly snapshot", NULL, { 0, 0 } },
	};
	struct rule within[5] = {
		{ 0, B_YMDH, 0, false, "hourly within", &p->within_hourly, { 0, 0 } },
		{ 0, B_YMD, 0, false, "daily within", &p->within_daily, { 0, 0 } },
		{ 0, B_YW, 0, false, "weekly within", &p->within_weekly, { 0, 0 } },
		{ 0, B_YM, 0, false, "monthly within", &p->within_monthly, { 0, 0 } },
		{ 0, B_Y, 0, false, "yearly within", &p->within_yearly, { 0, 0 } },
	};

	*out = NULL;
	if ((r = validate(p)) != CF_OK)
		return r;
	if (n == 0)
		return CF_OK;
	r = CF_ENOMEM;
	if (!(res = calloc(n, sizeof(*res))) || !(order = malloc(n * sizeof(*order))) ||
	    !(bk = malloc(n * sizeof(*bk))) ||
	    (p->nkeep_tags && !(tags = calloc(p->nkeep_tags, sizeof(*tags))))) {
		r = cf_err(CF_ENOMEM, "out of memory applying retention policy");
		goto out;
	}
	for (size_t i = 0; i < p->nkeep_tags; i++)
		if ((r = taglist_parse(p->keep_tags[i] ? p->keep_tags[i] : "", &tags[i])) != CF_OK)
			goto out;
	for (size_t i = 0; i < n; i++) {
		size_t cap = p->nkeep_tags + 12;
		if (!(res[i].reasons = calloc(cap, sizeof(char *)))) {
			r = cf_err(CF_ENOMEM, "out of memory applying retention policy");
			goto out;
		}
		order[i] = i;
	}
	qsort_r(order, n, sizeof(*order), by_time_desc, (void *)snaps);

	/* restic ignores snapshots in the future when finding "latest". */
	for (size_t i = 0; i < n; i++) {
		struct stamp s = { snaps[i].time, snaps[i].nsec };
		if (stamp_cmp(s, (struct stamp){ now, 0 }) < 0 && (!have_latest || stamp_cmp(s, latest) > 0)) {
			latest = s;
			have_latest = true;
		}
	}

	if (!utc) {
		if ((r = cf_tz_enter(tz)) != CF_OK)
			goto out;
		locked = true;
	}
	for (size_t i = 0; i < n; i++) {
		struct tm tm;
		if ((r = broken_down(utc, snaps[i].time, &tm)) != CF_OK)
			goto out;
		buckets_of(&tm, bk[i]);
	}
	if (have_latest) {
		if (!cf_duration_zero(&p->within) &&
		    (r = subtract(utc, latest, &p->within, &within_since)) != CF_OK)
			goto out;
		for (int k = 0; k < 5; k++)
			if (!cf_duration_zero(within[k].within) &&
			    (r = subtract(utc, latest, within[k].within, &within[k].since)) != CF_OK)
				goto out;
	}
	if (locked) {
		cf_tz_leave();
		locked = false;
	}

	for (size_t nr = 0; nr < n; nr++) {
		size_t idx = order[nr];
		const struct cf_retention_snap *cur = &snaps[idx];
		struct cf_retention_result *rs = &res[idx];
		struct stamp t = { cur->time, cur->nsec };
		bool oldest = nr == n - 1;

		rs->rank = nr;
		for (size_t k = 0; k < p->nkeep_tags; k++) {
			if (has_tags(cur, &tags[k])) {
				rs->keep = true;
				if ((r = add_reason(rs, "%s%s", tags[k].label, "")) != CF_OK)
					goto out;
			}
		}
		/* Without a latest snapshot restic compares with the zero time,
		 * which every snapshot is after. */
		if (!cf_duration_zero(&p->within) && (!have_latest || stamp_cmp(t, within_since) > 0)) {
			rs->keep = true;
			cf_duration_format(&p->within, dur, sizeof(dur));
			if ((r = add_reason(rs, "within %s%s", dur, "")) != CF_OK)
				goto out;
		}
		for (int k = 0; k < 6; k++) {
			struct rule *b = &rules[k];
			int count_before = b->count;
			if (count_before <= 0 && count_before != CF_KEEP_UNLIMITED)
				continue;
			int64_t val = k == 0 ? (int64_t)nr : bk[idx][b->bucket];
			bool same = b->have_last && val == b->last;
			if (same && !oldest)
				continue;
			rs->keep = true;
			b->last = val;
			b->have_last = true;
			if (b->count > 0)
				b->count--;
			if ((r = add_reason(rs, "%s%s", same ? "oldest " : "", b->reason)) != CF_OK)
				goto out;
		}
		for (int k = 0; k < 5; k++) {
			struct rule *b = &within[k];
			if (cf_duration_zero(b->within))
				continue;
			if (have_latest && stamp_cmp(t, b->since) <= 0)
				continue;
			int64_t val = bk[idx][b->bucket];
			bool same = b->have_last && val == b->last;
			if (same && !oldest)
				continue;
			rs->keep = true;
			b->last = val;
			b->have_last = true;
			cf_duration_format(b->within, dur, sizeof(dur));
			char reason[96];
			snprintf(reason, sizeof(reason), "%s%s", same ? "oldest " : "", b->reason);
			if ((r = add_reason(rs, "%s %s", reason, dur)) != CF_OK)
				goto out;
		}
		if (rs->keep)
			for (int k = 0; k < CF_RET_NCOUNTERS; k++)
				rs->counters[k] = rules[k].count;
	}
	*out = res;
	res = NULL;
	r = CF_OK;
out:
	if (locked)
		cf_tz_leave();
	cf_retention_results_free(res, n);
	taglists_free(tags, p->nkeep_tags);
	free(order);
	free(bk);
	return r;
}

void cf_retention_results_free(struct cf_retention_result *r, size_t n)
{
	if (!r)
		return;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < r[i].nreasons; j++)
			free(r[i].reasons[j]);
		free(r[i].reasons);
	}
	free(r);
}

/* -------------------------------------------------------------- grouping */

int cf_retention_group_parse(const char *spec, unsigned *flags)
{
	unsigned f = 0;
	const char *p = spec ? spec : "";

	for (;;) {
		size_t l = strcspn(p, ",");
		if (l == 0)
			;
		else if ((l == 4 && !strncmp(p, "host", 4)) || (l == 5 && !strncmp(p, "hosts", 5)))
			f |= CF_GROUP_HOST;
		else if ((l == 4 && !strncmp(p, "path", 4)) || (l == 5 && !strncmp(p, "paths", 5)))
			f |= CF_GROUP_PATHS;
		else if ((l == 3 && !strncmp(p, "tag", 3)) || (l == 4 && !strncmp(p, "tags", 4)))
			f |= CF_GROUP_TAGS;
		else
			return cf_err(CF_EINVAL, "unknown grouping option \"%.*s\" in --group-by \"%s\" "
				      "(expected host, paths, tags)", (int)l, p, spec);
		if (!p[l])
			break;
		p += l + 1;
	}
	*flags = f;
	return CF_OK;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A sorted JSON array of the strings (null when there are none) into *a.
 * json_string() fails on invalid UTF-8 as well as on ENOMEM. */
static int sorted_array(const char *const *v, size_t n, json_t **a)
{
	const char **copy;
	int r = CF_OK;

	if (n == 0)
		return (*a = json_null()) ? CF_OK : CF_ENOMEM;
	if (!(copy = malloc(n * sizeof(*copy))) || !(*a = json_array())) {
		free(copy);
		return CF_ENOMEM;
	}
	memcpy(copy, v, n * sizeof(*copy));
	qsort(copy, n, sizeof(*copy), cmp_str);
	for (size_t i = 0; i < n && r == CF_OK; i++) {
		json_t *s = json_string(copy[i]);
		if (!s)
			r = cf_err(CF_EINVAL, "snapshot path or tag \"%s\" is not valid UTF-8", copy[i]);
		else if (json_array_append_new(*a, s) != 0)
			r = CF_ENOMEM;
	}
	free(copy);
	return r;
}

int cf_retention_group_key(unsigned flags, const struct cf_retention_snap *s, struct cf_buf *out)
{
	json_t *o = json_object(), *host = NULL, *paths = NULL, *tags = NULL;
	const char *h = flags & CF_GROUP_HOST && s->host ? s->host : "";
	char *text = NULL;
	int r = CF_ENOMEM;

	if (!o)
		goto out;
	if ((r = sorted_array(s->paths, flags & CF_GROUP_PATHS ? s->npaths : 0, &paths)) != CF_OK ||
	    (r = sorted_array(s->tags, flags & CF_GROUP_TAGS ? s->ntags : 0, &tags)) != CF_OK)
		goto out;
	r = CF_ENOMEM;
	if (!(host = json_string(h))) {
		r = cf_err(CF_EINVAL, "snapshot host \"%s\" is not valid UTF-8", h);
		goto out;
	}
	if (json_object_set(o, "hostname", host) || json_object_set(o, "paths", paths) ||
	    json_object_set(o, "tags", tags))
		goto out;
	if (!(text = json_dumps(o, JSON_COMPACT)))
		goto out;
	r = cf_buf_adds(out, text);
out:
	free(text);
	json_decref(host);
	json_decref(paths);
	json_decref(tags);
	json_decref(o);
	if (r == CF_ENOMEM)
		return cf_err(r, "out of memory building snapshot group key");
	return r;
}
