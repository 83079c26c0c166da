/*
 * metrics.h - the agent's job results in Prometheus text format.
 *
 * After each job the agent renders its counters and gauges
 * (cf_metrics_format) and publishes the text two ways, either or both:
 *
 *   - written atomically to COFFER_METRICS_FILE (temp file in the same
 *     directory, fsync, rename), the form node_exporter's textfile collector
 *     reads: a scrape never sees half a file;
 *   - served at http://COFFER_METRICS_LISTEN/metrics by libmicrohttpd from
 *     its own thread; cf_metrics_server_update() swaps the text under a
 *     mutex.
 *
 * Names follow Prometheus conventions: coffer_ prefix, base units (seconds,
 * bytes) as the last word, _total for counters only (promtool check metrics
 * passes), coffer_build_info{version} = 1.  The main repository's families
 * carry the labels host and repository; the copy targets' target; the
 * notification failures kind.  The exposition format is version 0.0.4 (HELP
 * and TYPE lines, then "name value").
 */
#ifndef CF_METRICS_H
#define CF_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>

#include "agent/notify.h"
#include "common/buf.h"

/* One copy target's figures (label target="NAME"). */
struct cf_metrics_copy {
	const char *target;
	bool have_run;                  /* false: only the next-run gauge */
	double last_run_timestamp, last_success_timestamp, last_run_duration;
	int last_run_status;            /* exit code of its last copy */
	uint64_t snapshots_copied, bytes_added;
	int64_t snapshots;              /* in the target, -1 unknown */
	double next_run_timestamp;      /* 0 = not due (after-backup target, nothing pending) */
};

struct cf_metrics_values {
	/* the labels of the main repository's families: host="..." (as snapshots
	 * record it), repository="..." (the location, credentials stripped);
	 * NULL = left out */
	const char *host, *repository;
	bool have_run;                  /* false until the first job: job gauges are left out */
	double last_run_timestamp;      /* unix seconds at the job's end */
	double last_success_timestamp;  /* 0 = never */
	double last_run_duration;       /* seconds */
	int last_run_status;            /* the job's exit code: 0 ok, 1 failed, 3 partial, 130 interrupted */
	uint64_t backup_files;          /* files processed by the last backup */
	uint64_t backup_bytes_processed;
	uint64_t backup_bytes_added;    /* bytes added to the repository (packed) */
	int64_t snapshots;              /* snapshots in the repository, -1 = unknown */
	uint64_t containers_stopped;    /* by the last job */
	uint64_t runs_total, errors_total, ticks_skipped_total;
	double next_run_timestamp;      /* 0 = unknown */
	const struct cf_metrics_copy *copies;  /* COFFER_COPY_TO_* targets */
	size_t ncopies;
	/* the restore drill (COFFER_DRILL_SCHEDULE) */
	bool drill_have_run;
	double drill_last_run_timestamp, drill_last_success_timestamp, drill_duration;
	int drill_last_status;
	uint64_t drill_files_verified;
	/* the last scheduled check (COFFER_CHECK_SCHEDULE) */
	bool check_have_run;
	double check_last_run_timestamp, check_last_success_timestamp;
	uint64_t check_errors;          /* problems the last check found */
	/* the repository's data (its packs), -1 = unknown */
	int64_t repository_bytes, repository_packs;
	/* deliveries to COFFER_NOTIFY_URLS and the webhook that failed, by kind */
	uint64_t notify_failures[CF_NOTIFY_NKINDS];
};

/* The repository location as a label shows it: userinfo and query left
 * out (they may hold credentials), into out (n bytes, cut when longer). */
void cf_metrics_repository_label(const char *location, char *out, size_t n);

/* One continuously replicated SQLite database (label db="NAME"). */
struct cf_metrics_sqlite {
	const char *db;                 /* the file's name without its extension ("app") */
	double lag_seconds;             /* age of the oldest transaction read, not stored; 0 = none */
	double last_upload_timestamp;   /* 0 = nothing stored since the agent started (left out) */
	uint64_t queued_bytes;
	int up;                         /* 1 following, 0 stopped by a failure */
};

/* Render the replication families (coffer_sqlite_replication_lag_seconds,
 * _last_upload_timestamp_seconds, _queued_bytes, _up), appended to out.
 * CF_OK or CF_ENOMEM. */
int cf_metrics_format_sqlite(const struct cf_metrics_sqlite *v, size_t n, struct cf_buf *out);

/* Render v as exposition text, appended to out.  CF_OK or CF_ENOMEM. */
int cf_metrics_format(const struct cf_metrics_values *v, struct cf_buf *out);

/* Replace path with n bytes of text atomically.  CF_OK or an errno code
 * naming the file. */
int cf_metrics_write_file(const char *path, const void *text, size_t n);

struct cf_metrics_server;

/* Parse listen: "ADDRESS:PORT" with an IPv4 ADDRESS (empty or "*" = every
 * IPv4 address) or "[IPV6]:PORT" ("[::]" = every address, IPv4 too).  Into
 * *sa (a struct sockaddr_in for IPv4, *v6 false).  CF_OK or CF_EINVAL with a
 * message naming what is wrong. */
int cf_metrics_parse_listen(const char *listen, struct sockaddr_in6 *sa, bool *v6);

/* Serve /metrics on listen (as cf_metrics_parse_listen takes it) until freed.  Other paths answer 404.  CF_OK; CF_EINVAL for
 * a bad address; CF_EIO when the port cannot be bound; CF_ENOMEM. */
int cf_metrics_serve(const char *listen, struct cf_metrics_server **out);

/* Publish new text (copied).  CF_OK or CF_ENOMEM (the old text stays). */
int cf_metrics_server_update(struct cf_metrics_server *s, const void *text, size_t n);

/* Text appended to every answer, rendered at the request (from the
 * server's thread, under its lock): fn appends to out, CF_OK or CF_ENOMEM.
 * NULL fn stops it.  s NULL is a no-op. */
typedef int (*cf_metrics_extra_fn)(void *ctx, struct cf_buf *out);
void cf_metrics_server_set_extra(struct cf_metrics_server *s, cf_metrics_extra_fn fn, void *ctx);

/* Stop serving and free.  NULL is a no-op. */
void cf_metrics_server_free(struct cf_metrics_server *s);

#endif
