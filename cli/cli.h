/* cli.h - the command-line front end's shared state. */
#ifndef CF_CLI_H
#define CF_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "repo/repo.h"

#define MAXV 256

struct cli {
	const char *repo;
	const char *password_file, *new_password_file;
	const char *password_command; /* --password-command */
	bool json, verbose, quiet;
	/* COFFER_PARSE_ONLY=1: validate the command line, then exit 0 where the
	 * command would open the repository (open_backend) or, for the agent,
	 * once its configuration is loaded; nothing is read or written */
	bool parse_only;
	bool no_lock;      /* --no-lock: read-only commands take no lock */
	bool lock_needed;  /* set by commands that write: --no-lock is refused */
	double retry_lock;
	const char *cacert;
	int connections;
	bool sign_payload; /* --s3-sign-payload */
	/* backup */
	const char *host;
	const char *tags[MAXV]; size_t ntags;
	const char *excludes[MAXV]; size_t nexcludes;
	const char *exclude_files[MAXV]; size_t nexclude_files;   /* --exclude-file */
	const char *exclude_if_present[MAXV]; size_t nexclude_if_present;
	uint64_t exclude_larger_than;                             /* 0 = none */
	const char *files_from[MAXV]; size_t nfiles_from;         /* --files-from */
	const char *time;
	bool one_file_system, force, no_cache;
	int threads;
	/* database and command sources (backup), database targets (restore) */
	const char *mariadb[MAXV]; size_t nmariadb;
	bool mariadb_lock;
	bool mariadb_users;          /* backup --mariadb-users */
	bool mariadb_users_replace;  /* restore --mariadb-users-replace */
	const char *sqlite[MAXV]; size_t nsqlite;
	const char *postgres[MAXV]; size_t npostgres; /* --postgres URL */
	/* --stdin-from-command / --stdin-filename: the i-th of each make a pair */
	const char *stdin_commands[MAXV]; size_t nstdin_commands;
	const char *stdin_filenames[MAXV]; size_t nstdin_filenames;
	const char *databases[MAXV]; size_t ndatabases;
	const char *renames[MAXV]; size_t nrenames;
	/* filters (snapshot selection) */
	const char *paths[MAXV]; size_t npaths;
	/* restore */
	const char *target;
	const char *includes[MAXV]; size_t nincludes;
	/* check */
	bool read_data;
	/* init */
	const char *chunk_size;
	int compression;
	int repo_version; /* init --repo-version (0 = the newest) */
	long kdf_ops, kdf_mem_kib;
	/* unlock */
	bool remove_all;
	/* positional arguments after the command */
	char **args; int nargs;
	/* agent */
	bool agent_once, agent_healthcheck, agent_print_config;
	const char *agent_run;       /* --run WHAT: "backup", "copy:NAME" */
	int agent_print_schedule;
	/* forget, prune, copy, check subsets (cmd_maint.c) */
	int keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly;
	const char *keep_within, *keep_within_hourly, *keep_within_daily, *keep_within_weekly;
	const char *keep_within_monthly, *keep_within_yearly;
	const char *keep_tags[MAXV]; size_t nkeep_tags;
	const char *group_by;
	bool dry_run, prune;
	const char *max_unused;
	const char *from_repo, *from_password_file;
	const char *read_data_subset;
	/* restore (files) and dump; dry_run above is shared */
	bool restore_delete, verify;
	bool restore_all, yes, no_stop; /* restore --all, --yes, --no-stop */
	const char *overwrite;
	const char *path_maps[MAXV]; size_t npath_maps;
	const char *archive;
	/* restore SNAPSHOT:SUBFOLDER: the folder (absolute snapshot path) */
	const char *subfolder;
};

/* Password for opening (or, twice = true, for creating) a repository:
 * --password-file or --password-command (not both), COFFER_PASSWORD_FILE,
 * COFFER_PASSWORD_COMMAND, COFFER_PASSWORD, else a prompt on /dev/tty.  Caller frees with cli_password_free(). */
int cli_password(const struct cli *c, bool twice, char **out);
int cli_new_password(const struct cli *c, char **out);
int cli_prompt_new(const char *what, bool twice, char **out);
void cli_password_free(char *p);

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_PARTIAL = 3, EXIT_NOREPO = 10, EXIT_LOCKED = 11,
       EXIT_BADPASS = 12, EXIT_INTR = 130 };

/* common.c */
struct cf_snapshot_filter;
int exit_code(int rc);
/* Print "coffer: <message>" (with --json: restic's {"message_type":
 * "exit_error","code":N,"message":...} line) on stderr and return the exit
 * code for rc. */
int fail(int rc);
/* --json was given: fail() writes exit_error lines (set by main). */
extern bool cli_json_errors;
/* Print j on one line to f (compact, keys in insertion order) and drop the
 * reference; nothing when j is NULL (out of memory). */
void json_line(FILE *f, json_t *j);
/* Open the storage named by -r / COFFER_REPOSITORY.  Every command that
 * touches a repository comes through here after validating its options and
 * arguments: with c->parse_only it exits 0 instead (see parse_only_done). */
int open_backend(struct cli *c, struct cf_backend **be);
/* COFFER_PARSE_ONLY: report that the command line is valid and exit 0. */
void parse_only_done(const struct cli *c);
/* Open the repository: lock 0 none, 1 shared, 2 exclusive; index: load it. */
int open_repo(struct cli *c, struct cf_repo **r, int lock, bool index);
void human(uint64_t b, char *out, size_t n);
void local_time(int64_t ns, char *out, size_t n);
void build_filter(struct cli *c, struct cf_snapshot_filter *f);
/* The snapshot named by spec ('latest' or an id prefix) under the --host/--tag/--path filters. */
int pick_snapshot(struct cli *c, struct cf_repo *r, const char *spec, struct cf_snapshot *out);
/* restic's SNAPSHOT:SUBFOLDER: arg split into *spec (the part before the
 * first ':', caller frees) and *sub (the folder as an absolute snapshot
 * path without a trailing '/', caller frees; NULL without ':' or when it
 * is "/").  CF_EINVAL for an empty snapshot part or one with "..". */
int split_snapshot_arg(const char *arg, char **spec, char **sub);
/* sub must be a directory of snapshot s: CF_ENOENT naming it and the
 * snapshot when it is not there, CF_EINVAL when it is not a directory. */
int check_subfolder(struct cf_repo *r, const struct cf_snapshot *s, const char *sub);

/* one function per command, each in cmd_*.c */
int cmd_init(struct cli *c);
int cmd_backup(struct cli *c);
int cmd_snapshots(struct cli *c);
int cmd_ls(struct cli *c);
int cmd_restore(struct cli *c);
int cmd_check(struct cli *c);
int cmd_key(struct cli *c);
int cmd_unlock(struct cli *c);
int cmd_diff(struct cli *c);
int cmd_agent(struct cli *c);
int cmd_dump(struct cli *c);
/* restore SNAPSHOT --postgres URL (cmd_restore_pg.c) */
int cmd_restore_postgres(struct cli *c);
/* cmd_replicate.c */
int cmd_replicate(struct cli *c);
int cmd_sqlite(struct cli *c);
int cmd_sqlite_restore(struct cli *c);
/* version: "coffer VERSION", with --json restic's {"message_type":"version",...} */
int cmd_version(struct cli *c);
/* cmd_maint.c */
int cmd_forget(struct cli *c);
int cmd_prune(struct cli *c);
int cmd_copy(struct cli *c);
int cmd_stats(struct cli *c);
/* check --read-data-subset (dispatched here when that option is given) */
/* --read-data-subset n/m or N% into o (cmd_maint.c). */
struct cf_check_opts;
int cli_parse_subset(const char *s, struct cf_check_opts *o);

#endif
