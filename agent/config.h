/*
 * config.h - the agent's settings: environment variables, plus an optional
 * file with the same keys (the Docker convention).
 *
 * Every setting is one row of a table (config_keys.c): its key, what kind of
 * value it takes, its default, and a one-line description that doc/agent.md
 * repeats.  cf_agent_config_load() reads each key from the environment, else
 * from the file named by COFFER_CONFIG_FILE (lines KEY=VALUE, '#' comments,
 * optional single or double quotes around the value), else the default, and
 * validates it.  A bad value is refused with one line naming the key and
 * what is wrong ("COFFER_KEEP_DAILY: \"seven\" is not a whole number"); the
 * agent then refuses to start.  A key in the file that the table does not
 * know is refused too (a typo would otherwise silently fall back to a
 * default); an unknown COFFER_* environment variable is only warned about,
 * since the environment is shared with other software.
 *
 * Secrets.  COFFER_PASSWORD, AWS_SECRET_ACCESS_KEY, COFFER_WEBHOOK_SECRET and
 * their *_FILE forms are never printed: messages name the key only, and
 * cf_agent_config_print() shows them as "(set)".  The S3 backend and the
 * MariaDB dumper read AWS_* and MARIADB_PASSWORD* from the environment
 * themselves, so values of those keys that come from the file are exported
 * with setenv() (and unset again by the next load, so SIGHUP can change them).
 *
 * Lifecycle: struct cf_agent_config is caller-owned: CF_AGENT_CONFIG_INIT,
 * cf_agent_config_load(), cf_agent_config_release().  Loading again into a
 * released struct is how SIGHUP reloads.
 */
#ifndef CF_AGENT_CONFIG_H
#define CF_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/cron.h"
#include "agent/notify.h"
#include "repo/retention.h"

struct cf_agent_stdin_cmd {
	char *path;     /* where the output appears in the snapshot */
	char *command;  /* run with /bin/sh -c */
};

/*
 * A copy target, COFFER_COPY_TO_<NAME>_*: a second repository the agent
 * keeps a copy of this host's snapshots in (doc/agent.md, "Offsite copies").
 * name is <NAME> in lower case (the metrics' target label; "--run
 * copy:NAME" takes either case).  from: the index of the target whose
 * repository is the source (COFFER_COPY_TO_<NAME>_FROM), -1 = the main
 * repository.  Unset credentials mean the main ones' environment
 * (AWS_ACCESS_KEY_ID...).
 */
struct cf_agent_copy {
	char *name;                  /* lower case */
	char *key_name;              /* as in the keys: upper case */
	char *repository;
	char *password_file, *password;  /* one of them (secret) */
	char *access_key, *access_key_file, *secret_key, *secret_key_file, *session_token,
		*session_token_file, *region;
	char *from_name;             /* _FROM as given, NULL = the main repository */
	long from;                   /* index into copies, -1 = the main repository */
	char *schedule;              /* NULL = after each backup */
	struct cf_cron cron;
	struct cf_retention_policy keep;  /* _KEEP_*: the target's own retention, empty = keep all */
	char *keep_within;
};

struct cf_agent_config {
	char *config_file;           /* COFFER_CONFIG_FILE, NULL when none */
	char *repository;
	char *cacert;                /* COFFER_CACERT: extra CA bundle for TLS to S3, NULL = system store */
	int s3_connections;          /* COFFER_S3_CONNECTIONS, 0 = the backend's default */
	bool s3_sign_payload;        /* COFFER_S3_SIGN_PAYLOAD */
	char *password_file;         /* NULL when COFFER_PASSWORD is used */
	char *password;              /* COFFER_PASSWORD (secret), NULL when a file is used */
	char *schedule;
	struct cf_cron cron;
	char *tz;                    /* IANA zone; "UTC" by default */
	bool run_missed;
	unsigned jitter;             /* seconds; a random delay of 0..jitter after each tick */
	char **paths; size_t npaths; /* COFFER_BACKUP_PATHS; 0 = every directory under backup_root */
	char *backup_root;
	char **excludes; size_t nexcludes;
	char *state_dir;
	char **mariadb; size_t nmariadb;
	bool mariadb_lock;           /* FLUSH TABLES WITH READ LOCK while the snapshot starts */
	bool mariadb_users;          /* dump accounts, roles and grants (COFFER_MARIADB_USERS) */
	char **postgres; size_t npostgres; /* COFFER_POSTGRES URLs */
	char **sqlite; size_t nsqlite;
	/* COFFER_SQLITE_REPLICATE and friends: continuous replication (agent/replication.c) */
	char **sqlite_replicate; size_t nsqlite_replicate;
	double sqlite_interval;      /* COFFER_SQLITE_SYNC_INTERVAL, seconds */
	unsigned sqlite_max_lag;     /* COFFER_SQLITE_MAX_LAG, seconds: the healthcheck's bound */
	char *sqlite_retention;      /* COFFER_SQLITE_RETENTION as given: "snapshots" or a duration */
	struct cf_duration sqlite_retention_d;  /* zero = as the snapshots' */
	uint64_t sqlite_queue_bytes; /* COFFER_SQLITE_QUEUE_BYTES */
	struct cf_agent_stdin_cmd *stdin_cmds; size_t nstdin_cmds;
	char *host;                  /* NULL = the engine's default (gethostname) */
	char **tags; size_t ntags;
	struct cf_retention_policy keep;  /* counts only; keep_tags unused */
	char *keep_within;
	char *prune_schedule, *check_schedule;
	struct cf_cron prune_cron, check_cron;
	/* COFFER_CHECK_READ_DATA_SUBSET: "n/m" or "N%" of the packs read per check */
	char *check_subset;
	unsigned check_subset_n, check_subset_m;
	double check_subset_percent;
	char *pre_command, *post_command;
	char *docker_host;           /* the engine: socket path or http://HOST:PORT (cf_docker_parse_host), NULL = containers not managed */
	bool docker_explicit;        /* COFFER_DOCKER_HOST or DOCKER_HOST was set: an unreachable engine fails the job */
	char *stop_label;            /* "key=value" or "key" */
	char stop_alias[320];        /* offen's docker-volume-backup.stop-during-backup=VALUE (cf_docker_stop_alias) */
	unsigned stop_timeout;       /* seconds Docker waits before SIGKILL */
	unsigned job_wait;           /* COFFER_JOB_WAIT: seconds a job waits for another job of this agent */
	char *metrics_file, *metrics_listen;
	char *webhook_url;
	char *webhook_secret;        /* "whsec_<base64>" (secret) */
	unsigned webhook_retries;    /* COFFER_WEBHOOK_RETRIES: most retries */
	unsigned webhook_retry_for;  /* COFFER_WEBHOOK_RETRY_FOR: seconds after the first attempt */
	double webhook_backoff;      /* COFFER_WEBHOOK_BACKOFF: the first retry's wait, doubled each time */
	struct cf_notify_url *notify; size_t nnotify;  /* COFFER_NOTIFY_URLS (secret: tokens in URLs) */
	int notify_level;            /* COFFER_NOTIFY_LEVEL: CF_NOTIFY_LEVEL_ERROR or _INFO */
	int log_level;               /* 1 normal, 2 verbose */
	char *drill_schedule;        /* COFFER_DRILL_SCHEDULE: cron or "off" */
	struct cf_cron drill_cron;
	char *drill_dir;             /* COFFER_DRILL_DIR, NULL = STATE_DIR/drill */
	/* COFFER_COPY_TO_<NAME>_*, sorted so that a target comes after the
	 * one it copies from (_FROM) */
	struct cf_agent_copy *copies; size_t ncopies;
	/* keys this load exported into the environment (from the file) */
	char **exported; size_t nexported;
};

#define CF_AGENT_CONFIG_INIT { 0 }

/* Look a key up (the environment, or a test's table).  NULL = unset. */
typedef const char *(*cf_agent_getenv_fn)(void *ctx, const char *key);

/*
 * Load and validate the configuration into *c (CF_AGENT_CONFIG_INIT or
 * released).  get/ctx look keys up (NULL get = getenv()).  CF_OK; CF_EINVAL
 * with a one-line message naming the key (or the file and line) and what is
 * wrong, never quoting a secret; CF_ENOENT/CF_EPERM/CF_EIO for an unreadable
 * config or password file; CF_ENOMEM.  On failure *c is released.
 */
int cf_agent_config_load(struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx);

/* The same, without requiring COFFER_REPOSITORY and a password: for
 * `--print-schedule`, which needs only the schedule (every value that is
 * given is still validated). */
int cf_agent_config_load_schedule(struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx);

/* Free everything (wiping secrets); c is CF_AGENT_CONFIG_INIT afterwards.
 * Keys exported by the load stay in the environment until the next load. */
/* Release c for good: cf_agent_config_release() and also unset (and free
 * the list of) the variables the load exported for s3.c and dburl.c.  For a
 * process that is done with its configuration (no reload follows). */
void cf_agent_config_done(struct cf_agent_config *c);
void cf_agent_config_release(struct cf_agent_config *c);

/* Print "KEY=value" for every key of the table, secrets as "(set)", unset
 * keys as "(unset)", to f. */
void cf_agent_config_print(const struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx,
			   FILE *f);

/* The table, for documentation checks: key i (NULL past the end) and its
 * one-line description. */
const char *cf_agent_config_key(size_t i, const char **description);

/* Read a secret file: its content minus trailing newlines into *out (caller
 * wipes and frees with cf_agent_secret_free()).  what names it in messages
 * ("COFFER_PASSWORD_FILE").  CF_OK, CF_EINVAL (empty or too large), errno codes. */
int cf_agent_read_secret(const char *path, const char *what, char **out);
void cf_agent_secret_free(char *s);

#endif
