/*
 * cron.h - five-field cron schedules and "when does this fire next".
 *
 * The agent wakes on a cron schedule (default CF_CRON_DEFAULT, 05:04 every
 * day) in a configured time zone.  This module is two pure functions: parse
 * the expression into bitmasks once, then ask for the first fire time strictly
 * after a given instant.  The agent's loop is
 *
 *     struct cf_cron c;
 *     if ((r = cf_cron_parse(&c, expr)) != CF_OK) ...   // message names the field
 *     for (;;) { cf_cron_next(&c, tz, now, &t); sleep until t; run; now = t; }
 *
 * Syntax (vixie cron / cronie): "minute hour day-of-month month day-of-week",
 * each field a comma list of "*", "N", "N-M", each optionally "/STEP";
 * "N/STEP" means "N-max/STEP" (as cronie, systemd and most libraries read it).
 * Months JAN-DEC and days SUN-SAT may be given by name, case-insensitively;
 * day-of-week 7 is Sunday too.  @yearly, @annually, @monthly, @weekly, @daily,
 * @midnight and @hourly stand for their usual expansions; @reboot is refused.
 * When both day fields are restricted (neither starts with '*') a day matches
 * if EITHER matches, otherwise both must (the historic vixie rule, so
 * "0 0 13 * FRI" fires on every 13th and every Friday).  An expression that
 * can never fire ("0 0 30 2 *") is refused at parse time.
 *
 * Time zones and daylight saving.  Wall-clock times are read in the IANA
 * zone given to cf_cron_next() (NULL or "" = UTC), never in the process's own
 * TZ.  A schedule with specific hours behaves like a once-a-day alarm clock:
 * a wall time that does not exist (the spring-forward gap) fires once, at the
 * first instant after the gap; a wall time that occurs twice (fall back)
 * fires only at its first occurrence.  A schedule that fires in every hour
 * ("*" or all 24 hours) behaves like a periodic timer instead, as in cronie:
 * the skipped hour is simply skipped and the repeated hour fires again, so
 * such a job keeps its real-time rhythm.  Either way no job runs twice for
 * one wall-clock time and no day's fixed-time job is lost.
 *
 * Thread-safety: the C library offers no per-call time zone, so a non-UTC
 * cf_cron_next() switches the process's TZ under a global mutex (see
 * cf_tz_enter()) and restores it before returning.  Other threads must not
 * call localtime()/mktime()/getenv("TZ") concurrently unless they too hold
 * cf_tz_enter(); coffer itself formats times in UTC or under that lock.
 * The UTC path touches no global state at all.
 */
#ifndef CF_CRON_H
#define CF_CRON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/tz.h"

#define CF_CRON_DEFAULT "4 5 * * *"

struct cf_cron {
	uint64_t minutes;  /* bit m: minute m (0-59) */
	uint32_t hours;    /* bit h: hour h (0-23) */
	uint32_t mdays;    /* bit d: day of month d (1-31) */
	uint16_t months;   /* bit m: month m (1-12) */
	uint8_t wdays;     /* bit w: weekday w (0-6, 0 = Sunday) */
	bool mday_star;    /* day-of-month field started with '*' */
	bool wday_star;    /* day-of-week field started with '*' */
};

/*
 * Parse a cron expression into *c.  Returns CF_OK, or CF_EINVAL with a
 * one-line message naming the field and what is wrong with it, e.g.
 *   cron expression "61 5 * * *": minute field "61": 61 is out of range 0-59
 * *c is only written on success.  Allocates nothing.
 */
int cf_cron_parse(struct cf_cron *c, const char *expr);

/*
 * The first fire time strictly after `after`, read in time zone tz (an IANA
 * name such as "Europe/Berlin"; NULL or "" means UTC), into *next.  A pure
 * function of its arguments (see the DST rules above).  Returns CF_OK;
 * CF_EINVAL for an unknown zone, an `after` outside the years 1900-9998,
 * or a schedule that does not fire within 400 years (cannot happen for a
 * parsed expression).  Takes the time zone lock for non-UTC zones.
 */
int cf_cron_next(const struct cf_cron *c, const char *tz, time_t after, time_t *next);


#endif
