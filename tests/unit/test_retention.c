/*
 * test_retention - restic's forget policy: restic's own golden results for
 * its 103-snapshot test list, the examples of restic's documentation, time
 * zone bucketing, keep-within and future snapshots, the duration parser and
 * the --group-by key.
 *
 * The golden cases are transcribed from restic's
 * internal/data/testdata/policy_keep_snapshots_<N> (the N is given with each
 * case): which snapshots are kept, newest first, and the reasons restic gives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "repo/retention.h"
#include "common/buf.h"
#include "common/error.h"

/* restic's testExpireSnapshots: time (UTC), tags, paths. */
static const struct {
	const char *time, *tags, *paths;
} restic_list[] = {
	{ "2014-09-01 10:20:30", "", "" },
	{ "2014-09-02 10:20:30", "", "" },
	{ "2014-09-05 10:20:30", "", "" },
	{ "2014-09-06 10:20:30", "", "" },
	{ "2014-09-08 10:20:30", "", "" },
	{ "2014-09-09 10:20:30", "", "" },
	{ "2014-09-10 10:20:30", "", "" },
	{ "2014-09-11 10:20:30", "", "" },
	{ "2014-09-20 10:20:30", "", "" },
	{ "2014-09-22 10:20:30", "", "" },
	{ "2014-08-08 10:20:30", "", "" },
	{ "2014-08-10 10:20:30", "", "" },
	{ "2014-08-12 10:20:30", "", "" },
	{ "2014-08-13 10:20:30", "", "" },
	{ "2014-08-13 10:20:30.1", "", "" },
	{ "2014-08-15 10:20:30", "", "" },
	{ "2014-08-18 10:20:30", "", "" },
	{ "2014-08-20 10:20:30", "", "" },
	{ "2014-08-21 10:20:30", "", "" },
	{ "2014-08-22 10:20:30", "", "" },
	{ "2014-10-01 10:20:30", "foo", "" },
	{ "2014-10-02 10:20:30", "foo", "" },
	{ "2014-10-05 10:20:30", "foo", "" },
	{ "2014-10-06 10:20:30", "foo", "" },
	{ "2014-10-08 10:20:30", "foo", "" },
	{ "2014-10-09 10:20:30", "foo", "" },
	{ "2014-10-10 10:20:30", "foo", "" },
	{ "2014-10-11 10:20:30", "foo", "" },
	{ "2014-10-20 10:20:30", "foo", "" },
	{ "2014-10-22 10:20:30", "foo", "" },
	{ "2014-11-08 10:20:30", "foo", "" },
	{ "2014-11-10 10:20:30", "foo", "" },
	{ "2014-11-12 10:20:30", "foo", "" },
	{ "2014-11-13 10:20:30", "foo", "" },
	{ "2014-11-13 10:20:30.1", "bar", "" },
	{ "2014-11-15 10:20:30", "foo,bar", "" },
	{ "2014-11-18 10:20:30", "", "" },
	{ "2014-11-20 10:20:30", "", "" },
	{ "2014-11-21 10:20:30", "", "" },
	{ "2014-11-22 10:20:30", "", "" },
	{ "2015-09-01 10:20:30", "", "" },
	{ "2015-09-02 10:20:30", "", "" },
	{ "2015-09-05 10:20:30", "", "" },
	{ "2015-09-06 10:20:30", "", "" },
	{ "2015-09-08 10:20:30", "", "" },
	{ "2015-09-09 10:20:30", "", "" },
	{ "2015-09-10 10:20:30", "", "" },
	{ "2015-09-11 10:20:30", "", "" },
	{ "2015-09-20 10:20:30", "", "" },
	{ "2015-09-22 10:20:30", "", "" },
	{ "2015-08-08 10:20:30", "", "" },
	{ "2015-08-10 10:20:30", "", "" },
	{ "2015-08-12 10:20:30", "", "" },
	{ "2015-08-13 10:20:30", "", "" },
	{ "2015-08-13 10:20:30.1", "", "" },
	{ "2015-08-15 10:20:30", "", "" },
	{ "2015-08-18 10:20:30", "", "" },
	{ "2015-08-20 10:20:30", "", "" },
	{ "2015-08-21 10:20:30", "", "" },
	{ "2015-08-22 10:20:30", "", "" },
	{ "2015-10-01 10:20:30", "", "" },
	{ "2015-10-02 10:20:30", "", "" },
	{ "2015-10-05 10:20:30", "", "" },
	{ "2015-10-06 10:20:30", "", "" },
	{ "2015-10-08 10:20:30", "", "" },
	{ "2015-10-09 10:20:30", "", "" },
	{ "2015-10-10 10:20:30", "", "" },
	{ "2015-10-11 10:20:30", "", "" },
	{ "2015-10-20 10:20:30", "", "" },
	{ "2015-10-22 10:20:30", "", "" },
	{ "2015-10-22 10:20:30", "", "" },
	{ "2015-10-22 10:20:30", "foo,bar", "" },
	{ "2015-10-22 10:20:30", "foo,bar", "" },
	{ "2015-10-22 10:20:30", "foo,bar", "path1,path2" },
	{ "2015-11-08 10:20:30", "", "" },
	{ "2015-11-10 10:20:30", "", "" },
	{ "2015-11-12 10:20:30", "", "" },
	{ "2015-11-13 10:20:30", "", "" },
	{ "2015-11-13 10:20:30.1", "", "" },
	{ "2015-11-15 10:20:30", "", "" },
	{ "2015-11-18 10:20:30", "", "" },
	{ "2015-11-20 10:20:30", "", "" },
	{ "2015-11-21 10:20:30", "", "" },
	{ "2015-11-22 10:20:30", "", "" },
	{ "2016-01-01 01:02:03", "", "" },
	{ "2016-01-01 01:03:03", "", "" },
	{ "2016-01-01 07:08:03", "", "" },
	{ "2016-01-03 07:02:03", "", "" },
	{ "2016-01-04 10:23:03", "", "" },
	{ "2016-01-04 11:23:03", "", "" },
	{ "2016-01-04 12:23:03", "", "" },
	{ "2016-01-04 12:24:03", "", "" },
	{ "2016-01-04 12:28:03", "", "" },
	{ "2016-01-04 12:30:03", "", "" },
	{ "2016-01-04 16:23:03", "", "" },
	{ "2016-01-05 09:02:03", "", "" },
	{ "2016-01-06 08:02:03", "", "" },
	{ "2016-01-07 10:02:03", "", "" },
	{ "2016-01-08 20:02:03", "", "" },
	{ "2016-01-09 21:02:03", "", "" },
	{ "2016-01-12 21:02:03", "", "" },
	{ "2016-01-12 21:08:03", "", "" },
	{ "2016-01-18 12:02:03", "", "" },
};
#define NRESTIC (sizeof(restic_list) / sizeof(restic_list[0]))

/* "YYYY-MM-DD HH:MM:SS[.f]" in UTC. */
static void parse_utc(const char *s, int64_t *sec, int32_t *nsec)
{
	struct tm tm = { 0 };
	double frac = 0;
	const char *dot;
	assert_int_equal(sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
				&tm.tm_hour, &tm.tm_min, &tm.tm_sec), 6);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*sec = timegm(&tm);
	if ((dot = strchr(s, '.')))
		frac = atof(dot);
	*nsec = (int32_t)(frac * 1e9 + 0.5);
}

static void fmt_utc(int64_t sec, int32_t nsec, char *out, size_t n)
{
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t l = strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
	if (nsec)
		snprintf(out + l, n - l, ".%d", nsec / 100000000);
}

/* Split "a,b" into a NULL-free array (count in *n); "" gives none. */
static const char **split(const char *s, size_t *n)
{
	const char **v = calloc(8, sizeof(*v));
	char *copy = strdup(s), *save = NULL;
	*n = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		v[(*n)++] = t;
	if (*n == 0)
		free(copy);
	return v;
}

struct list {
	struct cf_retention_snap *s;
	size_t n;
};

static struct list restic_snaps(void)
{
	struct list l = { calloc(NRESTIC, sizeof(struct cf_retention_snap)), NRESTIC };
	for (size_t i = 0; i < NRESTIC; i++) {
		parse_utc(restic_list[i].time, &l.s[i].time, &l.s[i].nsec);
		l.s[i].host = "";
		l.s[i].tags = split(restic_list[i].tags, &l.s[i].ntags);
		l.s[i].paths = split(restic_list[i].paths, &l.s[i].npaths);
	}
	return l;
}

static void list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->s[i].ntags)
			free((void *)l->s[i].tags[0]);
		if (l->s[i].npaths)
			free((void *)l->s[i].paths[0]);
		free((void *)l->s[i].tags);
		free((void *)l->s[i].paths);
	}
	free(l->s);
}

/* Render the kept snapshots newest first: "time: reason; reason\n" each. */
static char *render(const struct list *l, const struct cf_retention_result *r)
{
	struct cf_buf b = CF_BUF_INIT;
	for (size_t rank = 0; rank < l->n; rank++) {
		for (size_t i = 0; i < l->n; i++) {
			char t[40];
			if (r[i].rank != rank || !r[i].keep)
				continue;
			fmt_utc(l->s[i].time, l->s[i].nsec, t, sizeof(t));
			assert_int_equal(cf_buf_addf(&b, "%s: ", t), CF_OK);
			for (size_t j = 0; j < r[i].nreasons; j++)
				assert_int_equal(cf_buf_addf(&b, "%s%s", j ? "; " : "", r[i].reasons[j]), CF_OK);
			assert_int_equal(cf_buf_adds(&b, "\n"), CF_OK);
		}
	}
	return (char *)cf_buf_detach(&b, NULL);
}

static char *apply_render(const struct list *l, const struct cf_retention_policy *p, const char *tz,
			  int64_t now)
{
	struct cf_retention_result *r = NULL;
	int rc = cf_retention_apply(p, l->s, l->n, tz, now, &r);
	if (rc != CF_OK)
		fail_msg("apply: %s", cf_errmsg(rc));
	/* every snapshot is either kept with reasons or removed without */
	for (size_t i = 0; i < l->n; i++)
		assert_true(r[i].keep == (r[i].nreasons > 0));
	char *s = render(l, r);
	cf_retention_results_free(r, l->n);
	return s;
}

static struct cf_duration dur(const char *s)
{
	struct cf_duration d;
	int rc = cf_duration_parse(s, &d);
	if (rc != CF_OK)
		fail_msg("duration %s: %s", s, cf_errmsg(rc));
	return d;
}

#define NOW_2020 1577836800  /* 2020-01-01: after every test snapshot */

static void check_golden(const struct cf_retention_policy *p, const char *want)
{
	struct list l = restic_snaps();
	char *got = apply_render(&l, p, NULL, NOW_2020);
	if (strcmp(got, want) != 0)
		fail_msg("policy result differs\n--- want\n%s--- got\n%s", want, got);
	free(got);
	list_free(&l);
}

/* policy_keep_snapshots_1: keep-last 10 */
static void test_golden_last10(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .last = 10 };
	check_golden(&p,
		"2016-01-18 12:02:03: last snapshot\n"
		"2016-01-12 21:08:03: last snapshot\n"
		"2016-01-12 21:02:03: last snapshot\n"
		"2016-01-09 21:02:03: last snapshot\n"
		"2016-01-08 20:02:03: last snapshot\n"
		"2016-01-07 10:02:03: last snapshot\n"
		"2016-01-06 08:02:03: last snapshot\n"
		"2016-01-05 09:02:03: last snapshot\n"
		"2016-01-04 16:23:03: last snapshot\n"
		"2016-01-04 12:30:03: last snapshot\n");
}

/* policy_keep_snapshots_5: keep-hourly 20 */
static void test_golden_hourly20(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .hourly = 20 };
	check_golden(&p,
		"2016-01-18 12:02:03: hourly snapshot\n"
		"2016-01-12 21:08:03: hourly snapshot\n"
		"2016-01-09 21:02:03: hourly snapshot\n"
		"2016-01-08 20:02:03: hourly snapshot\n"
		"2016-01-07 10:02:03: hourly snapshot\n"
		"2016-01-06 08:02:03: hourly snapshot\n"
		"2016-01-05 09:02:03: hourly snapshot\n"
		"2016-01-04 16:23:03: hourly snapshot\n"
		"2016-01-04 12:30:03: hourly snapshot\n"
		"2016-01-04 11:23:03: hourly snapshot\n"
		"2016-01-04 10:23:03: hourly snapshot\n"
		"2016-01-03 07:02:03: hourly snapshot\n"
		"2016-01-01 07:08:03: hourly snapshot\n"
		"2016-01-01 01:03:03: hourly snapshot\n"
		"2015-11-22 10:20:30: hourly snapshot\n"
		"2015-11-21 10:20:30: hourly snapshot\n"
		"2015-11-20 10:20:30: hourly snapshot\n"
		"2015-11-18 10:20:30: hourly snapshot\n"
		"2015-11-15 10:20:30: hourly snapshot\n"
		"2015-11-13 10:20:30.1: hourly snapshot\n");
}

/* policy_keep_snapshots_7: keep-daily 10 (several a day: the latest wins) */
static void test_golden_daily10(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .daily = 10 };
	check_golden(&p,
		"2016-01-18 12:02:03: daily snapshot\n"
		"2016-01-12 21:08:03: daily snapshot\n"
		"2016-01-09 21:02:03: daily snapshot\n"
		"2016-01-08 20:02:03: daily snapshot\n"
		"2016-01-07 10:02:03: daily snapshot\n"
		"2016-01-06 08:02:03: daily snapshot\n"
		"2016-01-05 09:02:03: daily snapshot\n"
		"2016-01-04 16:23:03: daily snapshot\n"
		"2016-01-03 07:02:03: daily snapshot\n"
		"2016-01-01 07:08:03: daily snapshot\n");
}

/* policy_keep_snapshots_14: keep-monthly 6 */
static void test_golden_monthly6(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .monthly = 6 };
	check_golden(&p,
		"2016-01-18 12:02:03: monthly snapshot\n"
		"2015-11-22 10:20:30: monthly snapshot\n"
		"2015-10-22 10:20:30: monthly snapshot\n"
		"2015-09-22 10:20:30: monthly snapshot\n"
		"2015-08-22 10:20:30: monthly snapshot\n"
		"2014-11-22 10:20:30: monthly snapshot\n");
}

/* policy_keep_snapshots_15: daily 2, weekly 2, monthly 6 */
static void test_golden_d2w2m6(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .daily = 2, .weekly = 2, .monthly = 6 };
	check_golden(&p,
		"2016-01-18 12:02:03: daily snapshot; weekly snapshot; monthly snapshot\n"
		"2016-01-12 21:08:03: daily snapshot; weekly snapshot\n"
		"2015-11-22 10:20:30: monthly snapshot\n"
		"2015-10-22 10:20:30: monthly snapshot\n"
		"2015-09-22 10:20:30: monthly snapshot\n"
		"2015-08-22 10:20:30: monthly snapshot\n"
		"2014-11-22 10:20:30: monthly snapshot\n");
}

/* policy_keep_snapshots_16: keep-yearly 10, counts left: the oldest is kept */
static void test_golden_yearly10_oldest(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .yearly = 10 };
	check_golden(&p,
		"2016-01-18 12:02:03: yearly snapshot\n"
		"2015-11-22 10:20:30: yearly snapshot\n"
		"2014-11-22 10:20:30: yearly snapshot\n"
		"2014-08-08 10:20:30: oldest yearly snapshot\n");
}

/* policy_keep_snapshots_19: keep-tag foo,bar (both tags needed) */
static void test_golden_tag_both(void **state)
{
	(void)state;
	const char *tags[] = { "foo,bar" };
	struct cf_retention_policy p = { .keep_tags = tags, .nkeep_tags = 1 };
	check_golden(&p,
		"2015-10-22 10:20:30: has tags [foo, bar]\n"
		"2015-10-22 10:20:30: has tags [foo, bar]\n"
		"2015-10-22 10:20:30: has tags [foo, bar]\n"
		"2014-11-15 10:20:30: has tags [foo, bar]\n");
}

/* policy_keep_snapshots_20: keep-tag foo --keep-tag bar (either) */
static void test_golden_tag_either(void **state)
{
	(void)state;
	const char *tags[] = { "foo", "bar" };
	struct cf_retention_policy p = { .keep_tags = tags, .nkeep_tags = 2 };
	check_golden(&p,
		"2015-10-22 10:20:30: has tags [foo]; has tags [bar]\n"
		"2015-10-22 10:20:30: has tags [foo]; has tags [bar]\n"
		"2015-10-22 10:20:30: has tags [foo]; has tags [bar]\n"
		"2014-11-15 10:20:30: has tags [foo]; has tags [bar]\n"
		"2014-11-13 10:20:30.1: has tags [bar]\n"
		"2014-11-13 10:20:30: has tags [foo]\n"
		"2014-11-12 10:20:30: has tags [foo]\n"
		"2014-11-10 10:20:30: has tags [foo]\n"
		"2014-11-08 10:20:30: has tags [foo]\n"
		"2014-10-22 10:20:30: has tags [foo]\n"
		"2014-10-20 10:20:30: has tags [foo]\n"
		"2014-10-11 10:20:30: has tags [foo]\n"
		"2014-10-10 10:20:30: has tags [foo]\n"
		"2014-10-09 10:20:30: has tags [foo]\n"
		"2014-10-08 10:20:30: has tags [foo]\n"
		"2014-10-06 10:20:30: has tags [foo]\n"
		"2014-10-05 10:20:30: has tags [foo]\n"
		"2014-10-02 10:20:30: has tags [foo]\n"
		"2014-10-01 10:20:30: has tags [foo]\n");
}

/* policy_keep_snapshots_25: keep-within 1m14d */
static void test_golden_within_1m14d(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .within = dur("1m14d") };
	check_golden(&p,
		"2016-01-18 12:02:03: within 1m14d\n"
		"2016-01-12 21:08:03: within 1m14d\n"
		"2016-01-12 21:02:03: within 1m14d\n"
		"2016-01-09 21:02:03: within 1m14d\n"
		"2016-01-08 20:02:03: within 1m14d\n"
		"2016-01-07 10:02:03: within 1m14d\n"
		"2016-01-06 08:02:03: within 1m14d\n"
		"2016-01-05 09:02:03: within 1m14d\n"
		"2016-01-04 16:23:03: within 1m14d\n"
		"2016-01-04 12:30:03: within 1m14d\n"
		"2016-01-04 12:28:03: within 1m14d\n"
		"2016-01-04 12:24:03: within 1m14d\n"
		"2016-01-04 12:23:03: within 1m14d\n"
		"2016-01-04 11:23:03: within 1m14d\n"
		"2016-01-04 10:23:03: within 1m14d\n"
		"2016-01-03 07:02:03: within 1m14d\n"
		"2016-01-01 07:08:03: within 1m14d\n"
		"2016-01-01 01:03:03: within 1m14d\n"
		"2016-01-01 01:02:03: within 1m14d\n");
}

/* policy_keep_snapshots_27: keep-within 13d23h (hours are real hours) */
static void test_golden_within_13d23h(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .within = dur("13d23h") };
	check_golden(&p,
		"2016-01-18 12:02:03: within 13d23h\n"
		"2016-01-12 21:08:03: within 13d23h\n"
		"2016-01-12 21:02:03: within 13d23h\n"
		"2016-01-09 21:02:03: within 13d23h\n"
		"2016-01-08 20:02:03: within 13d23h\n"
		"2016-01-07 10:02:03: within 13d23h\n"
		"2016-01-06 08:02:03: within 13d23h\n"
		"2016-01-05 09:02:03: within 13d23h\n"
		"2016-01-04 16:23:03: within 13d23h\n");
}

/* policy_keep_snapshots_33: keep-within-monthly 1y2m3d3h */
static void test_golden_within_monthly(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .within_monthly = dur("1y2m3d3h") };
	check_golden(&p,
		"2016-01-18 12:02:03: monthly within 1y2m3d3h\n"
		"2015-11-22 10:20:30: monthly within 1y2m3d3h\n"
		"2015-10-22 10:20:30: monthly within 1y2m3d3h\n"
		"2015-09-22 10:20:30: monthly within 1y2m3d3h\n"
		"2015-08-22 10:20:30: monthly within 1y2m3d3h\n"
		"2014-11-22 10:20:30: monthly within 1y2m3d3h\n");
}

/* policy_keep_snapshots_39: daily 3, weekly 2, monthly and yearly unlimited */
static void test_golden_unlimited(void **state)
{
	(void)state;
	struct cf_retention_policy p = { .daily = 3, .weekly = 2, .monthly = CF_KEEP_UNLIMITED,
					 .yearly = CF_KEEP_UNLIMITED };
	check_golden(&p,
		"2016-01-18 12:02:03: daily snapshot; weekly snapshot; monthly snapshot; yearly snapshot\n"
		"2016-01-12 21:08:03: daily snapshot; weekly snapshot\n"
		"2016-01-09 21:02:03: daily snapshot\n"
		"2015-11-22 10:20:30: monthly snapshot; yearly snapshot\n"
		"2015-10-22 10:20:30: monthly snapshot\n"
		"2015-09-22 10:20:30: monthly snapshot\n"
		"2015-08-22 10:20:30: monthly snapshot\n"
		"2014-11-22 10:20:30: monthly snapshot; yearly snapshot\n"
		"2014-10-22 10:20:30: monthly snapshot\n"
		"2014-09-22 10:20:30: monthly snapshot\n"
		"2014-08-22 10:20:30: monthly snapshot\n"
		"2014-08-08 10:20:30: oldest monthly snapshot; oldest yearly snapshot\n");
}

/* restic's golden counters for keep-last 10 and for policy 39. */
static void test_golden_counters(void **state)
{
	(void)state;
	struct list l = restic_snaps();
	struct cf_retention_result *r;
	struct cf_retention_policy p = { .daily = 3, .weekly = 2, .monthly = -1, .yearly = -1 };

	assert_int_equal(cf_retention_apply(&p, l.s, l.n, NULL, NOW_2020, &r), CF_OK);
	for (size_t i = 0; i < l.n; i++) {
		if (r[i].rank == 0) {  /* 2016-01-18: daily 2, weekly 1, monthly -1, yearly -1 */
			assert_int_equal(r[i].counters[CF_RET_DAILY], 2);
			assert_int_equal(r[i].counters[CF_RET_WEEKLY], 1);
			assert_int_equal(r[i].counters[CF_RET_MONTHLY], -1);
			assert_int_equal(r[i].counters[CF_RET_YEARLY], -1);
		}
		if (r[i].rank == 1) {  /* 2016-01-12 21:08: daily 1, weekly 0 */
			assert_int_equal(r[i].counters[CF_RET_DAILY], 1);
			assert_int_equal(r[i].counters[CF_RET_WEEKLY], 0);
		}
	}
	cf_retention_results_free(r, l.n);

	struct cf_retention_policy last = { .last = 10 };
	assert_int_equal(cf_retention_apply(&last, l.s, l.n, NULL, NOW_2020, &r), CF_OK);
	for (size_t i = 0; i < l.n; i++)
		if (r[i].keep)
			assert_int_equal(r[i].counters[CF_RET_LAST], 9 - (int)r[i].rank);
	cf_retention_results_free(r, l.n);
	list_free(&l);
}

/* The input order does not matter (beyond ties between equal times). */
static void test_unsorted_input(void **state)
{
	(void)state;
	struct list l = restic_snaps();
	struct cf_retention_policy p = { .daily = 7, .weekly = 2, .monthly = 3, .yearly = 10 };
	char *a = apply_render(&l, &p, NULL, NOW_2020);
	uint64_t seed = 42;
	for (size_t i = l.n - 1; i > 0; i--) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		size_t j = (size_t)(seed >> 33) % (i + 1);
		struct cf_retention_snap t = l.s[i];
		l.s[i] = l.s[j];
		l.s[j] = t;
	}
	char *b = apply_render(&l, &p, NULL, NOW_2020);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "2016-01-18 12:02:03: daily snapshot; weekly snapshot; "
			       "monthly snapshot; yearly snapshot\n"));
	free(a);
	free(b);
	list_free(&l);
}

static struct list series(int64_t start, int64_t step, size_t n)
{
	struct list l = { calloc(n, sizeof(struct cf_retention_snap)), n };
	for (size_t i = 0; i < n; i++) {
		l.s[i].time = start + (int64_t)i * step;
		l.s[i].host = "mopped";
	}
	return l;
}

/* restic docs: one backup every Sunday for 12 weeks; forget --keep-daily 4. */
static void test_doc_sundays(void **state)
{
	(void)state;
	int64_t s, first;
	int32_t ns;
	parse_utc("2019-09-01 11:00:00", &first, &ns);
	struct list l = series(first, 7 * 86400, 12);
	struct cf_retention_policy p = { .daily = 4 };
	char *got = apply_render(&l, &p, NULL, NOW_2020);
	assert_string_equal(got,
		"2019-11-17 11:00:00: daily snapshot\n"
		"2019-11-10 11:00:00: daily snapshot\n"
		"2019-11-03 11:00:00: daily snapshot\n"
		"2019-10-27 11:00:00: daily snapshot\n");
	free(got);
	parse_utc("2019-11-17 11:00:00", &s, &ns);
	assert_int_equal(l.s[11].time, s);
	free(l.s);
}

/*
 * restic docs: a backup every day for 100 years; --keep-daily 7 --keep-weekly
 * 5 --keep-monthly 12 --keep-yearly 75 keeps 7 dailies, 4 more weeklies
 * (the dailies include one), 12 or 11 monthlies and 75 or 74 yearlies.
 * "The dailies include one weekly" holds when the newest is a Sunday (ISO
 * weeks end on Sunday); otherwise the seven days straddle two weeks.
 */
static void test_doc_hundred_years(void **state)
{
	(void)state;
	int64_t first;
	int32_t ns;
	size_t n = 36525;
	parse_utc("2049-12-26 12:00:00", &first, &ns);  /* a Sunday */
	first -= (int64_t)(n - 1) * 86400;
	struct list l = series(first, 86400, n);
	struct cf_retention_policy p = { .daily = 7, .weekly = 5, .monthly = 12, .yearly = 75 };
	struct cf_retention_result *r;
	size_t kept = 0, match[4] = { 0 }, weekly_only = 0, monthly_new = 0, yearly_new = 0;
	const char *names[4] = { "daily snapshot", "weekly snapshot", "monthly snapshot", "yearly snapshot" };

	assert_int_equal(cf_retention_apply(&p, l.s, n, NULL, first + 200LL * 366 * 86400, &r), CF_OK);
	for (size_t i = 0; i < n; i++) {
		bool has[4] = { false };
		if (!r[i].keep)
			continue;
		kept++;
		for (int k = 0; k < 4; k++)
			for (size_t j = 0; j < r[i].nreasons; j++)
				if (!strcmp(r[i].reasons[j], names[k]))
					has[k] = true;
		for (int k = 0; k < 4; k++)
			match[k] += has[k];
		weekly_only += has[1] && !has[0];
		monthly_new += has[2] && !has[0] && !has[1];
		yearly_new += has[3] && !has[0] && !has[1] && !has[2];
	}
	assert_int_equal(match[0], 7);
	assert_int_equal(match[1], 5);
	assert_int_equal(match[2], 12);
	assert_int_equal(match[3], 75);
	assert_int_equal(weekly_only, 4);          /* the dailies include one weekly */
	assert_in_range(monthly_new, 11, 12);
	assert_in_range(yearly_new, 74, 75);
	assert_int_equal(kept, 7 + 4 + monthly_new + yearly_new);
	cf_retention_results_free(r, n);
	free(l.s);
}

static void test_keep_last_3_of_10(void **state)
{
	(void)state;
	struct list l = series(1700000000, 3600, 10);
	struct cf_retention_policy p = { .last = 3 };
	struct cf_retention_result *r;
	assert_int_equal(cf_retention_apply(&p, l.s, 10, NULL, 1800000000, &r), CF_OK);
	for (size_t i = 0; i < 10; i++) {
		assert_int_equal(r[i].keep, i >= 7);
		assert_int_equal(r[i].rank, 9 - i);
		if (r[i].keep) {
			assert_int_equal(r[i].nreasons, 1);
			assert_string_equal(r[i].reasons[0], "last snapshot");
		}
	}
	cf_retention_results_free(r, 10);
	free(l.s);
}

/* Four snapshots a day for five days: keep-daily keeps each day's latest. */
static void test_daily_keeps_latest_of_day(void **state)
{
	(void)state;
	struct list l = series(1767225600 /* 2026-01-01 00:00Z */ + 3600, 6 * 3600, 20);
	struct cf_retention_policy p = { .daily = 3 };
	char *got = apply_render(&l, &p, NULL, 1800000000);
	assert_string_equal(got,
		"2026-01-05 19:00:00: daily snapshot\n"
		"2026-01-04 19:00:00: daily snapshot\n"
		"2026-01-03 19:00:00: daily snapshot\n");
	free(got);
	/* More days asked than exist: every day's latest, plus the oldest. */
	p.daily = 10;
	got = apply_render(&l, &p, NULL, 1800000000);
	assert_string_equal(got,
		"2026-01-05 19:00:00: daily snapshot\n"
		"2026-01-04 19:00:00: daily snapshot\n"
		"2026-01-03 19:00:00: daily snapshot\n"
		"2026-01-02 19:00:00: daily snapshot\n"
		"2026-01-01 19:00:00: daily snapshot\n"
		"2026-01-01 01:00:00: oldest daily snapshot\n");
	free(got);
	free(l.s);
}

/* Days are the given zone's days. */
static void test_daily_in_time_zone(void **state)
{
	(void)state;
	const char *times[] = { "2026-01-01 10:00:00", "2026-01-01 23:30:00",
				"2026-01-02 00:30:00", "2026-01-02 12:00:00" };
	struct list l = series(0, 0, 4);
	int32_t ns;
	for (int i = 0; i < 4; i++)
		parse_utc(times[i], &l.s[i].time, &ns);
	struct cf_retention_policy p = { .daily = 2 };
	char *utc = apply_render(&l, &p, NULL, 1800000000);
	assert_string_equal(utc, "2026-01-02 12:00:00: daily snapshot\n"
				 "2026-01-01 23:30:00: daily snapshot\n");
	/* New York is 5 hours behind: 00:30Z is still Jan 1 there. */
	char *ny = apply_render(&l, &p, "America/New_York", 1800000000);
	assert_string_equal(ny, "2026-01-02 12:00:00: daily snapshot\n"
				"2026-01-02 00:30:00: daily snapshot\n");
	free(utc);
	free(ny);
	free(l.s);
}

/* keep-within counts from the newest snapshot that is not in the future;
 * future snapshots are kept. */
static void test_within_and_future(void **state)
{
	(void)state;
	int64_t day0 = 1767225600;
	struct list l = series(day0, 86400, 11);
	l.s[10].time = day0 + 100 * 86400;  /* in the future relative to now */
	struct cf_retention_policy p = { .within = dur("2d") };
	struct cf_retention_result *r;
	assert_int_equal(cf_retention_apply(&p, l.s, 11, NULL, day0 + 10 * 86400, &r), CF_OK);
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(r[i].keep, i == 8 || i == 9);  /* day 7 is exactly 2d: not after */
	assert_true(r[10].keep);
	assert_string_equal(r[8].reasons[0], "within 2d");
	cf_retention_results_free(r, 11);
	free(l.s);
}

/* The forum example contrasting --keep-daily 4 and --keep-within-daily 4d. */
static void test_within_daily_vs_daily(void **state)
{
	(void)state;
	const char *times[] = { "2023-05-01 08:00:00", "2023-05-02 08:00:00", "2023-05-02 11:00:00",
				"2023-05-04 09:00:00", "2023-05-05 10:00:00" };
	struct list l = series(0, 0, 5);
	int32_t ns;
	for (int i = 0; i < 5; i++)
		parse_utc(times[i], &l.s[i].time, &ns);
	struct cf_retention_policy d = { .daily = 4 }, w = { .within_daily = dur("4d") };
	char *a = apply_render(&l, &d, NULL, 1800000000);
	char *b = apply_render(&l, &w, NULL, 1800000000);
	assert_string_equal(a, "2023-05-05 10:00:00: daily snapshot\n"
			       "2023-05-04 09:00:00: daily snapshot\n"
			       "2023-05-02 11:00:00: daily snapshot\n"
			       "2023-05-01 08:00:00: daily snapshot\n");
	assert_string_equal(b, "2023-05-05 10:00:00: daily within 4d\n"
			       "2023-05-04 09:00:00: daily within 4d\n"
			       "2023-05-02 11:00:00: daily within 4d\n");
	free(a);
	free(b);
	free(l.s);
}

/* --keep-tag '' keeps untagged snapshots only. */
static void test_keep_tag_empty_means_untagged(void **state)
{
	(void)state;
	struct list l = series(1767225600, 3600, 3);
	const char *t1[] = { "daily" };
	l.s[1].tags = t1;
	l.s[1].ntags = 1;
	const char *keep[] = { "" };
	struct cf_retention_policy p = { .keep_tags = keep, .nkeep_tags = 1 };
	struct cf_retention_result *r;
	assert_int_equal(cf_retention_apply(&p, l.s, 3, NULL, 1800000000, &r), CF_OK);
	assert_true(r[0].keep);
	assert_false(r[1].keep);
	assert_true(r[2].keep);
	assert_string_equal(r[0].reasons[0], "has tags []");
	cf_retention_results_free(r, 3);
	free(l.s);
}

static void test_policy_errors(void **state)
{
	(void)state;
	struct list l = series(1767225600, 3600, 3);
	struct cf_retention_result *r = (void *)1;
	struct cf_retention_policy empty = { 0 };
	assert_true(cf_retention_policy_empty(&empty));
	assert_int_equal(cf_retention_apply(&empty, l.s, 3, NULL, 1800000000, &r), CF_EINVAL);
	assert_null(r);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "no policy given"));
	struct cf_retention_policy neg = { .daily = -2 };
	assert_int_equal(cf_retention_apply(&neg, l.s, 3, NULL, 1800000000, &r), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "keep-daily -2"));
	struct cf_retention_policy bad_tz = { .last = 1 };
	assert_int_equal(cf_retention_apply(&bad_tz, l.s, 3, "Mars/Olympus", 1800000000, &r), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "Mars/Olympus"));
	/* no snapshots: nothing to do */
	assert_int_equal(cf_retention_apply(&bad_tz, l.s, 0, NULL, 1800000000, &r), CF_OK);
	assert_null(r);
	free(l.s);
}

static void test_duration_parse(void **state)
{
	(void)state;
	struct cf_duration d;
	char s[64];
	assert_int_equal(cf_duration_parse("1y2m3d4h", &d), CF_OK);
	assert_int_equal(d.years, 1);
	assert_int_equal(d.months, 2);
	assert_int_equal(d.days, 3);
	assert_int_equal(d.hours, 4);
	cf_duration_format(&d, s, sizeof(s));
	assert_string_equal(s, "1y2m3d4h");
	assert_int_equal(cf_duration_parse(" 1y1d1m ", &d), CF_OK);  /* any order */
	cf_duration_format(&d, s, sizeof(s));
	assert_string_equal(s, "1y1m1d");
	assert_int_equal(cf_duration_parse("", &d), CF_OK);
	assert_true(cf_duration_zero(&d));
	assert_int_equal(cf_duration_parse("30d", &d), CF_OK);
	assert_int_equal(d.days, 30);

	assert_int_equal(cf_duration_parse("2w", &d), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "invalid unit 'w' after number 2"));
	assert_int_equal(cf_duration_parse("5", &d), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "no unit found after number 5"));
	assert_int_equal(cf_duration_parse("d", &d), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "no number found"));
	assert_int_equal(cf_duration_parse("-3d", &d), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "negative"));
	assert_int_equal(cf_duration_parse("99999999999d", &d), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "too large"));
}

static void test_group_key(void **state)
{
	(void)state;
	unsigned f;
	const char *p1[] = { "/srv", "/home" }, *p2[] = { "/home", "/srv" };
	const char *t1[] = { "b", "a" };
	struct cf_retention_snap a = { .host = "kasimir", .paths = p1, .npaths = 2, .tags = t1, .ntags = 2 };
	struct cf_retention_snap b = { .host = "kasimir", .paths = p2, .npaths = 2 };
	struct cf_retention_snap c = { .host = "luigi", .paths = p2, .npaths = 2 };
	struct cf_buf ka = CF_BUF_INIT, kb = CF_BUF_INIT, kc = CF_BUF_INIT;

	assert_int_equal(cf_retention_group_parse("host,paths", &f), CF_OK);
	assert_int_equal(f, CF_GROUP_HOST | CF_GROUP_PATHS);
	assert_int_equal(cf_retention_group_key(f, &a, &ka), CF_OK);
	assert_int_equal(cf_retention_group_key(f, &b, &kb), CF_OK);
	assert_int_equal(cf_retention_group_key(f, &c, &kc), CF_OK);
	assert_string_equal((char *)ka.data, "{\"hostname\":\"kasimir\",\"paths\":[\"/home\",\"/srv\"],\"tags\":null}");
	assert_string_equal((char *)ka.data, (char *)kb.data);  /* path order and tags do not matter */
	assert_string_not_equal((char *)ka.data, (char *)kc.data);

	assert_int_equal(cf_retention_group_parse("tags", &f), CF_OK);
	cf_buf_reset(&ka);
	cf_buf_reset(&kb);
	assert_int_equal(cf_retention_group_key(f, &a, &ka), CF_OK);
	assert_int_equal(cf_retention_group_key(f, &b, &kb), CF_OK);
	assert_string_equal((char *)ka.data, "{\"hostname\":\"\",\"paths\":null,\"tags\":[\"a\",\"b\"]}");
	assert_string_not_equal((char *)ka.data, (char *)kb.data);

	assert_int_equal(cf_retention_group_parse("", &f), CF_OK);  /* no grouping */
	assert_int_equal(f, 0);
	assert_int_equal(cf_retention_group_parse("hosts,tag,path", &f), CF_OK);
	assert_int_equal(f, CF_GROUP_HOST | CF_GROUP_PATHS | CF_GROUP_TAGS);
	assert_int_equal(cf_retention_group_parse("host,colour", &f), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "unknown grouping option \"colour\""));
	cf_buf_release(&ka);
	cf_buf_release(&kb);
	cf_buf_release(&kc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_last10),
		cmocka_unit_test(test_golden_hourly20),
		cmocka_unit_test(test_golden_daily10),
		cmocka_unit_test(test_golden_monthly6),
		cmocka_unit_test(test_golden_d2w2m6),
		cmocka_unit_test(test_golden_yearly10_oldest),
		cmocka_unit_test(test_golden_tag_both),
		cmocka_unit_test(test_golden_tag_either),
		cmocka_unit_test(test_golden_within_1m14d),
		cmocka_unit_test(test_golden_within_13d23h),
		cmocka_unit_test(test_golden_within_monthly),
		cmocka_unit_test(test_golden_unlimited),
		cmocka_unit_test(test_golden_counters),
		cmocka_unit_test(test_unsorted_input),
		cmocka_unit_test(test_doc_sundays),
		cmocka_unit_test(test_doc_hundred_years),
		cmocka_unit_test(test_keep_last_3_of_10),
		cmocka_unit_test(test_daily_keeps_latest_of_day),
		cmocka_unit_test(test_daily_in_time_zone),
		cmocka_unit_test(test_within_and_future),
		cmocka_unit_test(test_within_daily_vs_daily),
		cmocka_unit_test(test_keep_tag_empty_means_untagged),
		cmocka_unit_test(test_policy_errors),
		cmocka_unit_test(test_duration_parse),
		cmocka_unit_test(test_group_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
