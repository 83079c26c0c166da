/*
 * test_cron - cron parsing and "next fire time": the 05:04 default, lists,
 * ranges, steps and names, the day-of-month/day-of-week OR rule, Feb 29,
 * DST changes in Berlin, New York, Lord Howe (30-minute shift) and Santiago
 * (shift at midnight), independence from the process's TZ, and error
 * messages.
 *
 * Besides hand-picked cases, a property test compares cf_cron_next() with a
 * brute-force reference that walks every minute of real time around each DST
 * change of 2026 and applies the documented rules directly; the two share
 * nothing but the C library's zone data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/cron.h"
#include "common/error.h"

static time_t utc(const char *s)
{
	struct tm tm = { 0 };
	assert_int_equal(sscanf(s, "%d-%d-%d %d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
				&tm.tm_hour, &tm.tm_min), 5);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

static struct cf_cron parse_ok(const char *expr)
{
	struct cf_cron c;
	int r = cf_cron_parse(&c, expr);
	if (r != CF_OK)
		fail_msg("parse \"%s\": %s", expr, cf_errmsg(r));
	return c;
}

/* The next n fire times after `from`, as "YYYY-MM-DD HH:MM" UTC, one a line. */
static char *next_n(const char *expr, const char *tz, const char *from, int n)
{
	struct cf_cron c = parse_ok(expr);
	static char out[4096];
	size_t o = 0;
	time_t t = utc(from);
	out[0] = 0;
	for (int i = 0; i < n; i++) {
		struct tm tm;
		int r = cf_cron_next(&c, tz, t, &t);
		if (r != CF_OK)
			fail_msg("next \"%s\": %s", expr, cf_errmsg(r));
		gmtime_r(&t, &tm);
		o += strftime(out + o, sizeof(out) - o, "%Y-%m-%d %H:%M\n", &tm);
	}
	return out;
}

static void test_default_0504_utc(void **state)
{
	(void)state;
	struct cf_cron c = parse_ok(CF_CRON_DEFAULT);
	time_t t;
	assert_int_equal(cf_cron_next(&c, NULL, utc("2026-01-01 00:00"), &t), CF_OK);
	assert_int_equal(t, utc("2026-01-01 05:04"));
	/* strictly after: a job that just ran at 05:04 next runs tomorrow */
	assert_int_equal(cf_cron_next(&c, "", utc("2026-01-01 05:04"), &t), CF_OK);
	assert_int_equal(t, utc("2026-01-02 05:04"));
	assert_int_equal(cf_cron_next(&c, NULL, utc("2026-01-01 05:04") - 1, &t), CF_OK);
	assert_int_equal(t, utc("2026-01-01 05:04"));
	assert_string_equal(next_n(CF_CRON_DEFAULT, NULL, "2026-12-30 06:00", 3),
			    "2026-12-31 05:04\n2027-01-01 05:04\n2027-01-02 05:04\n");
}

static void test_default_in_zones(void **state)
{
	(void)state;
	/* 05:04 local: CET is UTC+1, CEST UTC+2, EST UTC-5, EDT UTC-4 */
	assert_string_equal(next_n(CF_CRON_DEFAULT, "Europe/Berlin", "2026-01-10 00:00", 2),
			    "2026-01-10 04:04\n2026-01-11 04:04\n");
	assert_string_equal(next_n(CF_CRON_DEFAULT, "Europe/Berlin", "2026-07-10 00:00", 1),
			    "2026-07-10 03:04\n");
	assert_string_equal(next_n(CF_CRON_DEFAULT, "America/New_York", "2026-01-10 00:00", 1),
			    "2026-01-10 10:04\n");
	assert_string_equal(next_n(CF_CRON_DEFAULT, "America/New_York", "2026-07-10 00:00", 1),
			    "2026-07-10 09:04\n");
}

static void test_next_five(void **state)
{
	(void)state;
	/* Friday afternoon, business hours every 15 minutes */
	assert_string_equal(next_n("*/15 9-17 * * MON-FRI", NULL, "2026-01-02 17:10", 5),
			    "2026-01-02 17:15\n2026-01-02 17:30\n2026-01-02 17:45\n"
			    "2026-01-05 09:00\n2026-01-05 09:15\n");
	/* range with step, list */
	assert_string_equal(next_n("1-10/4,30 * * * *", NULL, "2026-01-01 00:00", 5),
			    "2026-01-01 00:01\n2026-01-01 00:05\n2026-01-01 00:09\n"
			    "2026-01-01 00:30\n2026-01-01 01:01\n");
	/* month names, mixed case */
	assert_string_equal(next_n("0 0 1 JAN,jul *", NULL, "2026-02-01 00:00", 5),
			    "2026-07-01 00:00\n2027-01-01 00:00\n2027-07-01 00:00\n"
			    "2028-01-01 00:00\n2028-07-01 00:00\n");
	/* 7 is Sunday; 5-7 is Fri, Sat, Sun (2026-01-02 is a Friday) */
	assert_string_equal(next_n("0 12 * * 5-7", NULL, "2026-01-01 00:00", 5),
			    "2026-01-02 12:00\n2026-01-03 12:00\n2026-01-04 12:00\n"
			    "2026-01-09 12:00\n2026-01-10 12:00\n");
	assert_string_equal(next_n("@weekly", NULL, "2026-01-01 00:00", 2),
			    "2026-01-04 00:00\n2026-01-11 00:00\n");
	assert_string_equal(next_n("@HOURLY", NULL, "2026-01-01 00:00", 2),
			    "2026-01-01 01:00\n2026-01-01 02:00\n");
	assert_string_equal(next_n("@yearly", NULL, "2026-01-01 00:00", 2),
			    "2027-01-01 00:00\n2028-01-01 00:00\n");
	assert_string_equal(next_n("@monthly", NULL, "2026-01-31 00:00", 2),
			    "2026-02-01 00:00\n2026-03-01 00:00\n");
	assert_string_equal(next_n("@midnight", NULL, "2026-01-31 00:00", 1), "2026-02-01 00:00\n");
	/* N/STEP runs to the end of the field */
	assert_string_equal(next_n("50/5 0 * * *", NULL, "2026-01-01 00:00", 3),
			    "2026-01-01 00:50\n2026-01-01 00:55\n2026-01-02 00:50\n");
	/* "7/4" is Sunday (7) and nothing after it; "5/1" is Fri, Sat, Sun */
	assert_string_equal(next_n("0 0 * * 7/4", NULL, "2026-01-01 00:00", 2),
			    "2026-01-04 00:00\n2026-01-11 00:00\n");
	assert_string_equal(next_n("0 0 * * 5/1", NULL, "2026-01-01 00:00", 4),
			    "2026-01-02 00:00\n2026-01-03 00:00\n2026-01-04 00:00\n2026-01-09 00:00\n");
	/* tabs and extra blanks separate fields too */
	assert_string_equal(next_n("  4\t5  * *   *  ", NULL, "2026-01-01 00:00", 1), "2026-01-01 05:04\n");
}

static void test_dom_dow_or_rule(void **state)
{
	(void)state;
	/* both restricted: the 13th OR any Friday (2026-02-13 is both) */
	assert_string_equal(next_n("0 0 13 * FRI", NULL, "2026-02-01 00:00", 5),
			    "2026-02-06 00:00\n2026-02-13 00:00\n2026-02-20 00:00\n"
			    "2026-02-27 00:00\n2026-03-06 00:00\n");
	assert_string_equal(next_n("0 0 13 * FRI", NULL, "2026-03-07 00:00", 2),
			    "2026-03-13 00:00\n2026-03-20 00:00\n");
	assert_string_equal(next_n("0 0 10 * MON", NULL, "2026-03-01 00:00", 3),
			    "2026-03-02 00:00\n2026-03-09 00:00\n2026-03-10 00:00\n");
	/* day-of-month starting with '*': both must match (vixie) */
	assert_string_equal(next_n("0 0 */2 * MON", NULL, "2026-01-01 00:00", 3),
			    "2026-01-05 00:00\n2026-01-19 00:00\n2026-02-09 00:00\n");
	/* day-of-week '*': only day-of-month counts */
	assert_string_equal(next_n("0 0 31 * *", NULL, "2026-01-31 00:01", 3),
			    "2026-03-31 00:00\n2026-05-31 00:00\n2026-07-31 00:00\n");
}

static void test_feb29(void **state)
{
	(void)state;
	assert_string_equal(next_n("0 0 29 2 *", NULL, "2026-01-01 00:00", 3),
			    "2028-02-29 00:00\n2032-02-29 00:00\n2036-02-29 00:00\n");
	/* 2100 is not a leap year: eight years between */
	assert_string_equal(next_n("0 0 29 2 *", NULL, "2096-03-01 00:00", 1), "2104-02-29 00:00\n");
	/* AND rule (day-of-month starts with '*'): Feb 1 (and 30, never) on a
	 * Monday, up to eleven years apart; checked against date(1) */
	assert_string_equal(next_n("0 0 */29 2 MON", NULL, "2026-01-01 00:00", 6),
			    "2027-02-01 00:00\n2038-02-01 00:00\n2044-02-01 00:00\n"
			    "2049-02-01 00:00\n2055-02-01 00:00\n2066-02-01 00:00\n");
	/* Feb 29 on a Sunday (day-of-week "*\/7" is Sunday only): every 28 years */
	assert_string_equal(next_n("0 0 29 2 */7", NULL, "2026-01-01 00:00", 3),
			    "2032-02-29 00:00\n2060-02-29 00:00\n2088-02-29 00:00\n");
	/* the 30th and 31st in February never come, other months still do */
	assert_string_equal(next_n("0 0 30,31 2,3 *", NULL, "2026-01-01 00:00", 2),
			    "2026-03-30 00:00\n2026-03-31 00:00\n");
}

/* Europe/Berlin 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC). */
static void test_berlin_spring_forward(void **state)
{
	(void)state;
	/* the 02:30 job runs once, at 03:00 CEST, then at 02:30 CEST */
	assert_string_equal(next_n("30 2 * * *", "Europe/Berlin", "2026-03-27 12:00", 4),
			    "2026-03-28 01:30\n2026-03-29 01:00\n2026-03-30 00:30\n2026-03-31 00:30\n");
	/* a job at 02:00, 02:30 and 03:00 runs once at 03:00, not three times */
	assert_string_equal(next_n("0,30 2,3 * * *", "Europe/Berlin", "2026-03-28 23:00", 3),
			    "2026-03-29 01:00\n2026-03-29 01:30\n2026-03-30 00:00\n");
	/* an hourly job keeps its real-time rhythm: 01:00 CET, then 03:00 CEST */
	assert_string_equal(next_n("0 * * * *", "Europe/Berlin", "2026-03-28 23:30", 3),
			    "2026-03-29 00:00\n2026-03-29 01:00\n2026-03-29 02:00\n");
	/* the 05:04 default is untouched */
	assert_string_equal(next_n(CF_CRON_DEFAULT, "Europe/Berlin", "2026-03-28 12:00", 2),
			    "2026-03-29 03:04\n2026-03-30 03:04\n");
}

/* Europe/Berlin 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC). */
static void test_berlin_fall_back(void **state)
{
	(void)state;
	/* 02:30 happens at 00:30 UTC and again at 01:30 UTC: runs only at the first */
	assert_string_equal(next_n("30 2 * * *", "Europe/Berlin", "2026-10-24 12:00", 3),
			    "2026-10-25 00:30\n2026-10-26 01:30\n2026-10-27 01:30\n");
	/* asked between the two occurrences (the job just ran): not again today */
	assert_string_equal(next_n("30 2 * * *", "Europe/Berlin", "2026-10-25 00:31", 1),
			    "2026-10-26 01:30\n");
	/* a job every 30 minutes fires every 30 real minutes through the repeat */
	assert_string_equal(next_n("*/30 * * * *", "Europe/Berlin", "2026-10-24 23:45", 5),
			    "2026-10-25 00:00\n2026-10-25 00:30\n2026-10-25 01:00\n"
			    "2026-10-25 01:30\n2026-10-25 02:00\n");
}

/* America/New_York 2026: spring 03-08 02:00 EST -> 03:00 EDT (07:00 UTC);
 * fall 11-01 02:00 EDT -> 01:00 EST (06:00 UTC). */
static void test_new_york(void **state)
{
	(void)state;
	assert_string_equal(next_n("30 2 * * *", "America/New_York", "2026-03-07 12:00", 3),
			    "2026-03-08 07:00\n2026-03-09 06:30\n2026-03-10 06:30\n");
	assert_string_equal(next_n("30 1 * * *", "America/New_York", "2026-10-31 12:00", 3),
			    "2026-11-01 05:30\n2026-11-02 06:30\n2026-11-03 06:30\n");
	assert_string_equal(next_n("30 1 * * *", "America/New_York", "2026-11-01 05:30", 1),
			    "2026-11-02 06:30\n");
	assert_string_equal(next_n("0 9 * * MON-FRI", "America/New_York", "2026-03-06 15:00", 2),
			    "2026-03-09 13:00\n2026-03-10 13:00\n");
}

/* Chile moves its clocks at midnight: 2026-09-06 00:00 -04 becomes 01:00 -03,
 * so that day has no midnight; the midnight job runs at 01:00. */
static void test_santiago_midnight_gap(void **state)
{
	(void)state;
	assert_string_equal(next_n("0 0 * * *", "America/Santiago", "2026-09-04 12:00", 3),
			    "2026-09-05 04:00\n2026-09-06 04:00\n2026-09-07 03:00\n");
}

/* The answer does not depend on the process's TZ, which is left as it was. */
static void test_process_tz_ignored_and_restored(void **state)
{
	(void)state;
	struct cf_cron c = parse_ok("30 2 * * *");
	time_t a, b, d;
	struct tm tm;
	time_t noon = utc("2026-06-01 12:00");

	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	assert_int_equal(cf_cron_next(&c, NULL, noon, &a), CF_OK);
	assert_int_equal(cf_cron_next(&c, "Europe/Berlin", noon, &b), CF_OK);
	assert_string_equal(getenv("TZ"), "Asia/Tokyo");
	localtime_r(&noon, &tm);
	assert_int_equal(tm.tm_hour, 21);  /* still Tokyo */
	unsetenv("TZ");
	tzset();
	assert_int_equal(cf_cron_next(&c, NULL, noon, &d), CF_OK);
	assert_int_equal(a, d);
	assert_int_equal(a, utc("2026-06-02 02:30"));
	assert_int_equal(cf_cron_next(&c, "Europe/Berlin", noon, &d), CF_OK);
	assert_int_equal(b, d);
	assert_int_equal(b, utc("2026-06-02 00:30"));
	assert_null(getenv("TZ"));
}

static void expect_error(const char *expr, const char *needle)
{
	struct cf_cron c;
	int r = cf_cron_parse(&c, expr);
	if (r != CF_EINVAL)
		fail_msg("\"%s\" was accepted", expr ? expr : "(null)");
	const char *m = cf_errmsg(r);
	if (!strstr(m, needle))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", expr, m, needle);
	assert_null(strchr(m, '\n'));
}

static void test_bad_expressions(void **state)
{
	(void)state;
	expect_error("61 5 * * *", "minute field \"61\": 61 is out of range 0-59");
	expect_error("4 24 * * *", "hour field \"24\": 24 is out of range 0-23");
	expect_error("0 0 0 * *", "day-of-month field \"0\": 0 is out of range 1-31");
	expect_error("0 0 * 13 *", "month field \"13\": 13 is out of range 1-12");
	expect_error("0 0 * * 8", "day-of-week field \"8\": 8 is out of range 0-7");
	expect_error("0 0 * FOO *", "month field \"FOO\": unknown name \"FOO\"");
	expect_error("0 0 * * MONDAY", "unknown name \"MONDAY\"");
	expect_error("0 JAN * * *", "hour field \"JAN\": unknown name \"JAN\" (this field takes numbers only)");
	expect_error("5-1 * * * *", "range 5-1 is backwards");
	expect_error("*/0 * * * *", "step 0 is out of range");
	expect_error("*/ * * * *", "a step must be a number");
	expect_error("1,,2 * * * *", "empty list item");
	expect_error("1, * * * *", "empty list item");
	expect_error("1- * * * *", "a value is missing");
	expect_error("1x * * * *", "unexpected character 'x'");
	expect_error("-1 * * * *", "unexpected character '-'");
	expect_error("4 5 * *", "expected 5 fields");
	expect_error("4 5 * * * /bin/true", "got more than 5");
	expect_error("", "empty cron expression");
	expect_error("   ", "empty cron expression");
	expect_error(NULL, "no cron expression");
	expect_error("@reboot", "unknown shortcut \"@reboot\"");
	expect_error("@daily 5", "nothing may follow @daily");
	expect_error("0 0 30 2 *", "never fires");
	expect_error("0 0 31 4,6,9,11 *", "never fires");
	expect_error("0 0 4 5 *\n0 0 * * *", "control character");
}

static void test_bad_zone_and_time(void **state)
{
	(void)state;
	struct cf_cron c = parse_ok(CF_CRON_DEFAULT);
	time_t t;
	assert_int_equal(cf_cron_next(&c, "Mars/Olympus_Mons", 0, &t), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "unknown time zone \"Mars/Olympus_Mons\""));
	assert_int_equal(cf_cron_next(&c, "../../etc/passwd", 0, &t), CF_EINVAL);
	assert_int_equal(cf_cron_next(&c, "CET-1CEST,M3.5.0", 0, &t), CF_EINVAL);
	assert_int_equal(cf_tz_check("Europe/Berlin"), CF_OK);
	assert_int_equal(cf_tz_check(NULL), CF_OK);
	assert_int_equal(cf_tz_check("Europe"), CF_EINVAL);  /* a directory */
	assert_int_equal(cf_cron_next(&c, NULL, (time_t)300000000000LL, &t), CF_EINVAL);
	/* "0 0 30 2 *" cannot be parsed; a hand-made impossible one is bounded */
	struct cf_cron never = c;
	never.months = 1u << 2;
	never.mdays = 1u << 30;
	never.mday_star = false;
	never.wday_star = true;
	assert_int_equal(cf_cron_next(&never, NULL, 0, &t), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "does not fire"));
}

/* ------------------------------------------------ brute-force reference */

static bool wall_matches(const struct cf_cron *c, int64_t w)
{
	time_t tt = (time_t)w;
	struct tm tm;
	gmtime_r(&tt, &tm);
	if (!(c->minutes >> tm.tm_min & 1) || !(c->hours >> tm.tm_hour & 1) ||
	    !(c->months >> (tm.tm_mon + 1) & 1))
		return false;
	bool dm = c->mdays >> tm.tm_mday & 1, wm = c->wdays >> tm.tm_wday & 1;
	return (c->mday_star || c->wday_star) ? dm && wm : dm || wm;
}

/*
 * Walk real time minute by minute over [t0, t1) and fire as documented:
 * a matching wall time fires; after a jump forward, a fixed-hour schedule
 * fires once at the jump if any skipped wall time matched; a repeated wall
 * time fires only for schedules that cover every hour.  Returns the count.
 */
static size_t reference(const struct cf_cron *c, const long *off, time_t t0, size_t minutes,
			time_t *out)
{
	bool periodic = (c->hours & 0xffffff) == 0xffffff;
	int64_t max_wall = (int64_t)t0 - 60 + off[0];  /* assumes no change at t0 */
	size_t n = 0;
	for (size_t i = 0; i < minutes; i++) {
		int64_t t = (int64_t)t0 + 60 * (int64_t)i, w = t + off[i];
		bool fire = false;
		if (w > max_wall + 60 && !periodic)
			for (int64_t s = max_wall + 60; s < w && !fire; s += 60)
				fire = wall_matches(c, s);
		if (w <= max_wall)
			fire = periodic && wall_matches(c, w);
		else
			fire = fire || wall_matches(c, w);
		if (w > max_wall)
			max_wall = w;
		if (fire)
			out[n++] = (time_t)t;
	}
	return n;
}

static void test_against_reference(void **state)
{
	(void)state;
	const char *zones[] = { "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
				"America/Santiago" };
	const char *exprs[] = { "30 2 * * *", "0 * * * *", "*/15 * * * *", "4 5 * * *",
				"0,30 0-3 * * *", "59 23 * * *", "0 0 * * *", "*/7 1-2 * * SUN",
				"15 1 * * *", "45 1,2 * * *", "* 2 * * *", "0 */2 * * *" };
	const size_t window = 8 * 24 * 60;  /* minutes around each change */
	long *off = malloc(window * sizeof(*off));
	time_t *ref = malloc(window * sizeof(*ref));
	size_t checked = 0, changes = 0;

	for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
		/* find the 2026 offset changes of this zone, hour by hour */
		time_t hour = utc("2026-01-01 00:00");
		long prev = 0;
		for (int h = 0; h < 366 * 24; h++, hour += 3600) {
			struct tm tm;
			setenv("TZ", zones[z], 1);
			tzset();
			localtime_r(&hour, &tm);
			if (h > 0 && tm.tm_gmtoff != prev) {
				time_t t0 = hour - 4 * 86400;
				changes++;
				for (size_t i = 0; i < window; i++) {
					time_t t = t0 + 60 * (time_t)i;
					struct tm x;
					localtime_r(&t, &x);
					off[i] = x.tm_gmtoff;
				}
				unsetenv("TZ");
				tzset();
				for (size_t e = 0; e < sizeof(exprs) / sizeof(exprs[0]); e++) {
					struct cf_cron c = parse_ok(exprs[e]);
					size_t n = reference(&c, off, t0, window, ref);
					time_t t = t0 - 1;
					/* the reference sees fires from t0 on; compare all
					 * but the last day (the search may look past it) */
					for (size_t k = 0; k < n && ref[k] < t0 + 7 * 86400; k++) {
						int r = cf_cron_next(&c, zones[z], t, &t);
						assert_int_equal(r, CF_OK);
						if (t != ref[k])
							fail_msg("%s in %s after the change at %lld: fire %zu is "
								 "%lld, reference %lld", exprs[e], zones[z],
								 (long long)hour, k, (long long)t,
								 (long long)ref[k]);
						checked++;
					}
				}
				setenv("TZ", zones[z], 1);
				tzset();
			}
			prev = tm.tm_gmtoff;
		}
		unsetenv("TZ");
		tzset();
	}
	print_message("compared %zu fire times around %zu DST changes\n", checked, changes);
	assert_true(changes >= 8);
	assert_true(checked > 5000);
	free(off);
	free(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_0504_utc),
		cmocka_unit_test(test_default_in_zones),
		cmocka_unit_test(test_next_five),
		cmocka_unit_test(test_dom_dow_or_rule),
		cmocka_unit_test(test_feb29),
		cmocka_unit_test(test_berlin_spring_forward),
		cmocka_unit_test(test_berlin_fall_back),
		cmocka_unit_test(test_new_york),
		cmocka_unit_test(test_santiago_midnight_gap),
		cmocka_unit_test(test_process_tz_ignored_and_restored),
		cmocka_unit_test(test_bad_expressions),
		cmocka_unit_test(test_bad_zone_and_time),
		cmocka_unit_test(test_against_reference),
	};
	if (access("/usr/share/zoneinfo/Europe/Berlin", R_OK) != 0 && !getenv("TZDIR")) {
		fprintf(stderr, "test_cron: needs tzdata (/usr/share/zoneinfo)\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
