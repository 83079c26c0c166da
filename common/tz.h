/*
 * tz.h - time zones for local-time arithmetic.
 *
 * The C library offers no per-call time zone, so code that needs local time in
 * a named zone (cron's next fire time, retention's calendar buckets) switches
 * the process's TZ under one global mutex with cf_tz_enter() and restores it
 * with cf_tz_leave().  Other threads must not call localtime()/mktime() or
 * getenv("TZ") concurrently unless they hold it too.
 */
#ifndef CF_TZ_H
#define CF_TZ_H

/* Whether tz names a usable zone: NULL, "" or a file under $TZDIR
 * (default /usr/share/zoneinfo) that starts with the TZif magic.  CF_OK or
 * CF_EINVAL with a message naming the zone.  For validating configuration. */
int cf_tz_check(const char *tz);

/*
 * Switch the process's local time zone to tz (as cf_tz_check() accepts;
 * NULL/"" = UTC) and hold the global time zone lock, so that localtime_r()
 * and mktime() compute in that zone until cf_tz_leave() restores the
 * previous TZ and releases the lock.  Returns CF_OK (lock held), or
 * CF_EINVAL/CF_ENOMEM (lock not held).  Not reentrant: do not nest.
 */
int cf_tz_enter(const char *tz);
void cf_tz_leave(void);

#endif
