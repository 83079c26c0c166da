/*
 * fuzz_cron - cf_cron_parse() on arbitrary bytes, then cf_cron_next() on
 * whatever parses.  Checks: no crash or sanitizer report, error messages are
 * one line, and a fire time is strictly later than its start and lies on a
 * minute whose UTC fields the schedule allows.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/cron.h"
#include "common/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cf_cron c;
	char *s;
	time_t after = 1767225600;  /* 2026-01-01 00:00 UTC */
	time_t t;
	struct tm tm;

	if (size > 256)
		return 0;
	if (!(s = malloc(size + 1)))
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	if (cf_cron_parse(&c, s) != CF_OK) {
		if (strchr(cf_errmsg(CF_EINVAL), '\n'))
			abort();
		free(s);
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		if (cf_cron_next(&c, NULL, after, &t) != CF_OK || t <= after)
			abort();
		gmtime_r(&t, &tm);
		if (!(c.minutes >> tm.tm_min & 1) || !(c.hours >> tm.tm_hour & 1) ||
		    !(c.months >> (tm.tm_mon + 1) & 1) || tm.tm_sec != 0)
			abort();
		after = t;
	}
	/* a zone with DST changes, near one of them */
	if (size && (data[0] & 1)) {
		if (cf_cron_next(&c, "Europe/Berlin", 1774652400 /* 2026-03-27 23:00Z */, &t) != CF_OK ||
		    t <= 1774652400)
			abort();
	}
	free(s);
	return 0;
}
