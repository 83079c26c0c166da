/*
 * retention.h - which snapshots `coffer forget` keeps: restic's policy.
 *
 * The semantics are restic's ApplyPolicy (internal/data/snapshot_policy.go)
 * exactly, so that a restic user's --keep-* flags mean the same here:
 *
 *  - Snapshots are sorted newest first (stable: equal times keep input order).
 *  - keep-last/hourly/daily/weekly/monthly/yearly N: walking from the newest,
 *    a snapshot is kept when its bucket (itself / the hour / day / ISO week /
 *    month / year of its local time) differs from the previous kept one's of
 *    that rule, while the rule has counts left; -1 (CF_KEEP_UNLIMITED) never
 *    runs out.  If a rule still has counts left at the oldest snapshot, that
 *    snapshot is kept too ("oldest daily snapshot"), so history is as long as
 *    possible.
 *  - keep-within D: every snapshot newer than (latest - D), where latest is
 *    the newest snapshot not in the future (relative to `now`) and D is
 *    calendar years, months, days, then hours ("1y2m3d4h").
 *  - keep-within-hourly/daily/... D: the bucket rule above, unlimited, but
 *    only among snapshots newer than (latest - D).
 *  - keep-tag "a,b": snapshots carrying every tag of the list; several lists
 *    are ORed; the list "" matches untagged snapshots.
 *  - A snapshot is kept if any rule keeps it; the reasons are listed in the
 *    words restic's `forget --dry-run` prints ("daily snapshot", "within 30d",
 *    "has tags [foo, bar]", "oldest monthly snapshot").
 *  - An empty policy is refused (CF_EINVAL "no policy given"), as restic
 *    refuses to forget everything by accident.
 *
 * Buckets are computed in the time zone passed in (NULL = UTC), so "daily"
 * means the user's days.  The policy is applied to one group at a time; the
 * caller groups snapshots with cf_retention_group_key() (restic's --group-by,
 * default "host,paths").  Pure functions: no I/O, no clock (now is passed in).
 */
#ifndef CF_RETENTION_H
#define CF_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define CF_KEEP_UNLIMITED (-1)

/* restic's Duration: calendar units, applied largest first. */
struct cf_duration {
	int years, months, days, hours;
};

struct cf_retention_policy {
	int last, hourly, daily, weekly, monthly, yearly;  /* 0 = off, -1 = unlimited */
	struct cf_duration within;
	struct cf_duration within_hourly, within_daily, within_weekly;
	struct cf_duration within_monthly, within_yearly;
	const char *const *keep_tags;  /* each a comma-separated tag list (--keep-tag) */
	size_t nkeep_tags;
};

struct cf_retention_snap {
	int64_t time;          /* unix seconds */
	int32_t nsec;          /* sub-second part; only orders snapshots */
	const char *host;
	const char *const *tags;
	size_t ntags;
	const char *const *paths;
	size_t npaths;
};

enum { CF_RET_LAST, CF_RET_HOURLY, CF_RET_DAILY, CF_RET_WEEKLY, CF_RET_MONTHLY, CF_RET_YEARLY,
       CF_RET_NCOUNTERS };

struct cf_retention_result {
	bool keep;
	size_t rank;        /* position newest-first (0 = newest), ties in input order */
	char **reasons;     /* nreasons strings, empty when removed */
	size_t nreasons;
	int counters[CF_RET_NCOUNTERS];  /* counts left after this snapshot (kept ones) */
};

/*
 * Parse a duration "6y5m234d37h" (any subset, any order, as restic does; a
 * later unit of the same kind wins).  Surrounding whitespace is ignored.
 * CF_OK, or CF_EINVAL naming what is wrong ("no unit after number 3",
 * "invalid unit 'w'", "negative ...").  "" parses as the zero duration.
 */
int cf_duration_parse(const char *s, struct cf_duration *d);

/* Format like restic ("1y2m3d4h", zero units left out, "" for zero) into
 * out (at least 64 bytes). */
void cf_duration_format(const struct cf_duration *d, char *out, size_t n);

/* True if every unit is zero. */
bool cf_duration_zero(const struct cf_duration *d);

/* True if p keeps nothing at all (no count, no duration, no tag list). */
bool cf_retention_policy_empty(const struct cf_retention_policy *p);

/*
 * Apply policy p to the n snapshots of one group.  tz: IANA zone for the
 * calendar buckets and duration arithmetic (NULL/"" = UTC).  now: unix
 * seconds; snapshots at or after it are ignored when finding "latest".
 * On CF_OK *out is an array of n results, out[i] describing snaps[i];
 * free it with cf_retention_results_free(*out, n).  CF_EINVAL for an empty
 * policy, a count below -1, a negative duration or an unknown zone; CF_ENOMEM.
 * n == 0 gives CF_OK and *out == NULL.
 */
int cf_retention_apply(const struct cf_retention_policy *p, const struct cf_retention_snap *snaps,
		       size_t n, const char *tz, int64_t now, struct cf_retention_result **out);

/* Free what cf_retention_apply() returned; NULL is a no-op. */
void cf_retention_results_free(struct cf_retention_result *r, size_t n);

#define CF_GROUP_HOST  1u
#define CF_GROUP_PATHS 2u
#define CF_GROUP_TAGS  4u

/*
 * Parse a --group-by spec: comma-separated "host"/"hosts", "path"/"paths",
 * "tag"/"tags"; "" means no grouping.  CF_OK with *flags set, or CF_EINVAL
 * "unknown grouping option".
 */
int cf_retention_group_parse(const char *spec, unsigned *flags);

/*
 * The group key of s under flags, appended to out: a JSON object like
 * restic's ({"hostname":"h","paths":["/a","/b"],"tags":null}, paths and tags
 * sorted), so that equal keys mean the same group and the key can be shown.
 * CF_OK or CF_ENOMEM.
 */
int cf_retention_group_key(unsigned flags, const struct cf_retention_snap *s, struct cf_buf *out);

#endif
