/*
 * cron.c - parse cron expressions; compute the next fire time in a zone.
 *
 * The search walks wall-clock days (civil calendar arithmetic, no time zone
 * needed to decide whether a day matches), and only for matching days maps
 * each matching wall time to instants with the zone's UTC offset.  A wall
 * time w (seconds since the epoch as if the zone were UTC) corresponds to the
 * instants t with t + offset(t) == w: one normally, none in a gap, two in a
 * fold.  The candidate offsets are the ones a day before and a day after,
 * which covers every zone with at most one transition per two days.
 */
#include "agent/cron.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

/* ---------------------------------------------------------------- parse */

struct field {
	const char *name;
	int min, max;
	const char *const *names;  /* 3-letter names for values min.., or NULL */
};

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL,
};
static const char *const wday_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL,
};

static const struct field fields[5] = {
	{ "minute", 0, 59, NULL },
	{ "hour", 0, 23, NULL },
	{ "day-of-month", 1, 31, NULL },
	{ "month", 1, 12, month_names },
	{ "day-of-week", 0, 7, wday_names },
};

static const struct {
	const char *name;
	const char *expansion;
} shortcuts[] = {
	{ "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
	{ "@monthly", "0 0 1 * *" },
	{ "@weekly", "0 0 * * 0" },
	{ "@daily", "0 0 * * *" },
	{ "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

/* Error context: the whole expression and the field being parsed. */
struct perr {
	const char *expr;
	const struct field *f;
	const char *text;
	size_t len;
};

static int field_err(const struct perr *e, const char *why)
{
	return cf_err(CF_EINVAL, "cron expression \"%s\": %s field \"%.*s\": %s",
		      e->expr, e->f->name, (int)e->len, e->text, why);
}

/* A number or (where the field has them) a 3-letter name at *p. */
static int parse_value(const struct perr *e, const char **p, const char *end, int *out)
{
	const char *s = *p;
	char why[128];

	if (s < end && isdigit((unsigned char)*s)) {
		long v = 0;
		while (s < end && isdigit((unsigned char)*s)) {
			if (v < 100000)
				v = v * 10 + (*s - '0');
			s++;
		}
		if (v < e->f->min || v > e->f->max) {
			snprintf(why, sizeof(why), "%.*s is out of range %d-%d",
				 (int)(s - *p), *p, e->f->min, e->f->max);
			return field_err(e, why);
		}
		*out = (int)v;
		*p = s;
		return CF_OK;
	}
	if (s < end && isalpha((unsigned char)*s)) {
		while (s < end && isalpha((unsigned char)*s))
			s++;
		if (e->f->names && s - *p == 3) {
			for (int i = 0; e->f->names[i]; i++) {
				if (strncasecmp(*p, e->f->names[i], 3) == 0) {
					*out = e->f == &fields[3] ? i + 1 : i;
					*p = s;
					return CF_OK;
				}
			}
		}
		snprintf(why, sizeof(why), "unknown name \"%.*s\"%s", (int)(s - *p), *p,
			 e->f->names ? (e->f == &fields[3] ? " (expected JAN-DEC)" : " (expected SUN-SAT)")
				     : " (this field takes numbers only)");
		return field_err(e, why);
	}
	if (s == end)
		return field_err(e, "a value is missing");
	snprintf(why, sizeof(why), "unexpected character '%c'", *s);
	return field_err(e, why);
}

/* One list item: "*", "N", "N-M", each with an optional "/STEP". */
static int parse_item(const struct perr *e, const char *p, const char *end, uint64_t *bits)
{
	const struct field *f = e->f;
	int lo, hi, step = 1, r;
	bool single = false;
	char why[128];

	if (p == end)
		return field_err(e, "empty list item");
	if (*p == '*') {
		lo = f->min;
		hi = f->max == 7 ? 6 : f->max;
		p++;
	} else {
		if ((r = parse_value(e, &p, end, &lo)) != CF_OK)
			return r;
		hi = lo;
		single = true;
		if (p < end && *p == '-') {
			p++;
			if ((r = parse_value(e, &p, end, &hi)) != CF_OK)
				return r;
			single = false;
			if (hi < lo) {
				snprintf(why, sizeof(why),
					 "range %d-%d is backwards (wrap-around ranges are not supported)", lo, hi);
				return field_err(e, why);
			}
		}
	}
	if (p < end && *p == '/') {
		const char *s = ++p;
		long v = 0;
		while (p < end && isdigit((unsigned char)*p)) {
			if (v < 100000)
				v = v * 10 + (*p - '0');
			p++;
		}
		if (p == s)
			return field_err(e, "a step must be a number after '/'");
		int span = f->max - f->min + 1;
		if (v < 1 || v > span) {
			snprintf(why, sizeof(why), "step %ld is out of range 1-%d", v, span);
			return field_err(e, why);
		}
		step = (int)v;
		if (single)  /* "N/STEP" runs from N to the end of the field */
			hi = f->max;
	}
	if (p != end) {
		snprintf(why, sizeof(why), "unexpected character '%c'", *p);
		return field_err(e, why);
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= 1ull << v;
	return CF_OK;
}

static int parse_field(const char *expr, int idx, const char *text, size_t len, uint64_t *bits)
{
	struct perr e = { expr, &fields[idx], text, len };
	const char *end = text + len, *p = text;
	int r;

	*bits = 0;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *ie = comma ? comma : end;
		if ((r = parse_item(&e, p, ie, bits)) != CF_OK)
			return r;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (idx == 4 && (*bits & (1u << 7)))  /* 7 is Sunday too */
		*bits = (*bits | 1u) & 0x7f;
	return CF_OK;
}

static const int mdays_max[13] = { 0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

/* True if some month in the mask has some day in the mask (Feb counts 29). */
static bool some_date_exists(const struct cf_cron *c)
{
	for (int m = 1; m <= 12; m++) {
		if (!(c->months & (1u << m)))
			continue;
		uint32_t valid = (uint32_t)(((1ull << (mdays_max[m] + 1)) - 1) & ~1ull);
		if (c->mdays & valid)
			return true;
	}
	return false;
}

int cf_cron_parse(struct cf_cron *out, const char *expr)
{
	const char *s = expr, *start[6];
	size_t len[6];
	struct cf_cron c = { 0 };
	uint64_t bits[5];
	int n = 0, r;

	if (!expr)
		return cf_err(CF_EINVAL, "no cron expression given");
	for (const char *p = expr; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return cf_err(CF_EINVAL, "cron expression contains a control character");
		else if ((unsigned char)*p >= 0x7f)
			return cf_err(CF_EINVAL, "cron expression contains a non-ASCII character");
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '@') {
		size_t l = strcspn(s, " \t");
		const char *rest = s + l;
		while (*rest == ' ' || *rest == '\t')
			rest++;
		for (size_t i = 0; i < sizeof(shortcuts) / sizeof(shortcuts[0]); i++) {
			if (strlen(shortcuts[i].name) == l && strncasecmp(s, shortcuts[i].name, l) == 0) {
				if (*rest)
					return cf_err(CF_EINVAL, "cron expression \"%s\": nothing may follow %s",
						      expr, shortcuts[i].name);
				return cf_cron_parse(out, shortcuts[i].expansion);
			}
		}
		return cf_err(CF_EINVAL, "cron expression \"%s\": unknown shortcut \"%.*s\" (expected "
			      "@yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)",
			      expr, (int)l, s);
	}
	while (*s) {
		if (n == 6)
			break;
		start[n] = s;
		len[n] = strcspn(s, " \t");
		s += len[n];
		n++;
		while (*s == ' ' || *s == '\t')
			s++;
	}
	if (n == 0)
		return cf_err(CF_EINVAL, "empty cron expression");
	if (n != 5)
		return cf_err(CF_EINVAL, "cron expression \"%s\": expected 5 fields "
			      "(minute hour day-of-month month day-of-week), got %s%d",
			      expr, n == 6 ? "more than " : "", n == 6 ? 5 : n);
	for (int i = 0; i < 5; i++)
		if ((r = parse_field(expr, i, start[i], len[i], &bits[i])) != CF_OK)
			return r;
	c.minutes = bits[0];
	c.hours = (uint32_t)bits[1];
	c.mdays = (uint32_t)bits[2];
	c.months = (uint16_t)bits[3];
	c.wdays = (uint8_t)bits[4];
	c.mday_star = start[2][0] == '*';
	c.wday_star = start[4][0] == '*';
	/* Under the AND rule a day needs a date that exists; every existing
	 * date meets every weekday within 400 years, and the OR rule always
	 * has some weekday, so this is the whole "can it ever fire" test. */
	if ((c.mday_star || c.wday_star) && !some_date_exists(&c))
		return cf_err(CF_EINVAL, "cron expression \"%s\": never fires (no month in the "
			      "month field has any of the days in the day-of-month field)", expr);
	*out = c;
	return CF_OK;
}

/* ---------------------------------------------------------------- search */

#define DAY 86400LL
/* One Gregorian cycle: whatever never fires in 400 years never fires. */
#define SEARCH_DAYS 146097
#define MIN_TIME (-2208988800LL)  /* 1900-01-01 */
#define MAX_TIME (253370764800LL) /* 9999-01-01 */

static long long floor_div(long long a, long long b)
{
	long long q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Howard Hinnant's civil_from_days: days since 1970-01-01 to y/m/d. */
static void civil_from_days(long long z, int *y, int *m, int *d)
{
	z += 719468;
	long long era = floor_div(z, 146097);
	long long doe = z - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

struct zone {
	bool utc;
	int err;  /* set when localtime_r fails */
};

static long offset_at(struct zone *z, time_t t)
{
	struct tm tm;
	if (z->utc)
		return 0;
	if (!localtime_r(&t, &tm)) {
		z->err = 1;
		return 0;
	}
	return tm.tm_gmtoff;
}

static bool day_matches(const struct cf_cron *c, long long day)
{
	int y, m, d;
	int wd = (int)(((day + 4) % 7 + 7) % 7);  /* 1970-01-01 was a Thursday */

	civil_from_days(day, &y, &m, &d);
	if (!(c->months & (1u << m)))
		return false;
	bool dm = c->mdays & (1u << d), wm = c->wdays & (1u << wd);
	if (c->mday_star || c->wday_star)
		return dm && wm;
	return dm || wm;
}

/*
 * The instants at which wall time w fires, into t[] (ascending); returns how
 * many (0-2).  periodic: the schedule covers every hour, so a gap is skipped
 * and both passes of a fold fire; otherwise a gap fires once at its end and a
 * fold only on its first pass.
 */
static int wall_fires(struct zone *z, long long w, bool periodic, time_t t[2])
{
	long oa, ob;
	int n = 0;

	if (z->utc) {
		t[0] = (time_t)w;
		return 1;
	}
	oa = offset_at(z, (time_t)(w - DAY));
	ob = offset_at(z, (time_t)(w + DAY));
	if (offset_at(z, (time_t)(w - oa)) == oa)
		t[n++] = (time_t)(w - oa);
	if (ob != oa && offset_at(z, (time_t)(w - ob)) == ob)
		t[n++] = (time_t)(w - ob);
	if (n == 2) {
		if (t[1] < t[0]) {
			time_t x = t[0];
			t[0] = t[1];
			t[1] = x;
		}
		return periodic ? 2 : 1;
	}
	if (n == 1 || periodic || ob <= oa)
		return n;
	/* In the gap: the clock jumped from w-ob+oa.. to past w.  Find the jump. */
	time_t lo = (time_t)(w - ob), hi = (time_t)(w - oa);
	while (hi - lo > 1) {
		time_t mid = lo + (hi - lo) / 2;
		if (offset_at(z, mid) == oa)
			lo = mid;
		else
			hi = mid;
	}
	t[0] = hi;
	return 1;
}

/* Earliest fire > after among the wall times of one day; false if none. */
static bool scan_day(const struct cf_cron *c, struct zone *z, long long day, bool periodic,
		     time_t after, time_t *best)
{
	bool found = false;

	for (int h = 0; h < 24; h++) {
		if (!(c->hours & (1u << h)))
			continue;
		for (int mi = 0; mi < 60; mi++) {
			time_t t[2];
			if (!(c->minutes & (1ull << mi)))
				continue;
			int n = wall_fires(z, day * DAY + h * 3600LL + mi * 60LL, periodic, t);
			for (int i = 0; i < n; i++) {
				if (t[i] > after && (!found || t[i] < *best)) {
					*best = t[i];
					found = true;
				}
			}
		}
	}
	return found;
}

static int search(const struct cf_cron *c, struct zone *z, time_t after, time_t *next)
{
	bool periodic = (c->hours & 0xffffffu) == 0xffffffu, found = false;
	long long first = floor_div((long long)after + offset_at(z, after), DAY) - 1, stop = -1;
	time_t best = 0;

	for (long long day = first; day <= first + SEARCH_DAYS; day++) {
		if (found && day > stop)
			break;
		if (!day_matches(c, day))
			continue;
		time_t t = 0;
		if (scan_day(c, z, day, periodic, after, &t) && (!found || t < best)) {
			/* A fold can put the next day's first fire before this day's
			 * last one, so look at one more day before answering. */
			if (!found)
				stop = day + 1;
			best = t;
			found = true;
		}
		if (z->err)
			return cf_err(CF_EINVAL, "time conversion failed near %lld", (long long)after);
	}
	if (!found)
		return cf_err(CF_EINVAL, "cron schedule does not fire within %d days", SEARCH_DAYS);
	*next = best;
	return CF_OK;
}

int cf_cron_next(const struct cf_cron *c, const char *tz, time_t after, time_t *next)
{
	struct zone z = { .utc = !tz || !*tz };
	int r;

	if ((long long)after < MIN_TIME || (long long)after >= MAX_TIME)
		return cf_err(CF_EINVAL, "time %lld is outside the years 1900-9998", (long long)after);
	if (!c->minutes || !c->hours || !c->months || !c->mdays || !c->wdays)
		return cf_err(CF_EINVAL, "cron schedule is empty (not parsed?)");
	if (z.utc)
		return search(c, &z, after, next);
	if ((r = cf_tz_enter(tz)) != CF_OK)
		return r;
	r = search(c, &z, after, next);
	cf_tz_leave();
	return r;
}
