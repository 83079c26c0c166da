/*
 * main.c - the coffer command line: a thin layer over libcoffer.
 *
 * Exit codes (as restic's): 0 ok; 1 error; 3 snapshot written but some
 * sources could not be read; 10 no repository; 11 lock failed; 12 wrong
 * password; 130 interrupted.
 */
#include "cli/cli.h"
#include "engine/backup.h"
#include "restore/restore.h"
#include "repo/tree.h"
#include "crypto/crypto.h"
#include "common/error.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
"usage: coffer [-r REPOSITORY] COMMAND [OPTIONS] [ARGS]\n"
"\n"
"Commands:\n"
"  init                        create a repository (--chunk-size MIN,AVG,MAX in KiB, --compression N)\n"
"  backup PATH...              back up files and directories into a new snapshot\n"
"  snapshots                   list snapshots (--json for restic-compatible JSON)\n"
"  ls SNAPSHOT [PATH]          list the files of a snapshot\n"
"  restore SNAPSHOT --target DIR [--include PATH]...\n"
"                              restore a snapshot (or parts) into DIR (see restore options)\n"
"  restore SNAPSHOT:FOLDER --target DIR\n"
"                              restore only that folder, its contents straight into DIR\n"
"                              (restic's syntax; ls and dump take SNAPSHOT:FOLDER too)\n"
"  restore SNAPSHOT --all [--yes] [--dry-run]\n"
"                              restore every volume, SQLite file and database the snapshot\n"
"                              records to where it came from (doc/restore.md)\n"
"  dump SNAPSHOT [PATH] [--archive tar|zip]\n"
"                              write a file's bytes, or a tree as an archive, to stdout\n"
"  diff SNAPSHOT1 SNAPSHOT2    paths added (+), removed (-), changed (M), with new metadata (U)\n"
"  check [--read-data]         verify the repository (and with --read-data every byte;\n"
"                              --read-data-subset n/m or N% for a part)\n"
"  key list|add|remove ID|passwd\n"
"                              manage the passwords that open the repository\n"
"  unlock [--remove-all]       remove stale locks\n"
"  forget [ID...] [--keep-* ...] [--dry-run] [--prune]\n"
"                              remove snapshots by restic's policy (see below) or by id\n"
"  prune [--max-unused N%] [--dry-run]\n"
"                              delete data no snapshot needs, repack partly used packs\n"
"  copy --from-repo LOCATION [--from-password-file F] [SNAPSHOT...]\n"
"                              copy snapshots from another repository (only what is missing)\n"
"  stats                       repository size, raw size, deduplication ratio, counts\n"
"  agent [--once | --run backup|copy:NAME|drill | --print-schedule N | --healthcheck | --print-config]\n"
"                              scheduled backups as a sidecar, configured by COFFER_* variables\n"
"                              (see doc/agent.md); --once runs one job now (the backup, then\n"
"                              the copies and the drill that are due); --run copy:NAME one\n"
"                              copy now, --run drill the restore drill now\n"
"  healthcheck                 exit 1 if the agent's last job failed or one is overdue\n"
"  replicate DB...             follow live SQLite databases continuously into the repository\n"
"                              (until SIGINT/SIGTERM; doc/databases.md)\n"
"  sqlite list DB...           replicated generations and the times each can restore\n"
"  restore --sqlite DB [--time 'YYYY-MM-DD HH:MM:SS'] --target FILE\n"
"                              rebuild a replicated database as of a time (default: latest)\n"
"  version                     print the version\n"
"\n"
"SNAPSHOT is an id prefix or 'latest' (filtered by --host, --tag, --path); restore, ls and\n"
"dump also take SNAPSHOT:FOLDER (a folder of the snapshot, paths relative to it).\n"
"'coffer COMMAND --help' lists the options COMMAND takes; any other one is refused.\n"
"\n"
"Global options:\n"
"  -r, --repo LOCATION         repository: a directory, local:DIR, s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]\n"
"                              or s3://BUCKET[/PREFIX] (default: $COFFER_REPOSITORY)\n"
"  --password-command CMD      the password is the first line CMD (run with /bin/sh -c)\n"
"                              prints (default: $COFFER_PASSWORD_COMMAND; a non-zero exit is\n"
"                              an error); not with --password-file\n"
"  --password-file FILE        read the password from FILE (default: $COFFER_PASSWORD_FILE,\n"
"                              then $COFFER_PASSWORD, then a prompt on the terminal)\n"
"  --json                      machine-readable output: restic's JSON where the names match\n"
"                              (JSON lines for backup, restore, ls, check; doc/json.md)\n"
"  -v, --verbose               more output (progress is shown on a terminal)\n"
"  -q, --quiet                 only errors\n"
"  --retry-lock SECONDS        wait this long for a lock held by another process\n"
"  --cacert FILE               extra CA certificate for TLS (S3) (default: $COFFER_CACERT)\n"
"  --s3-connections N          parallel S3 requests (default $COFFER_S3_CONNECTIONS, else 6;\n"
"                              a backup uploads 4 packs at once unless this is given)\n"
"  --s3-sign-payload           sign the SHA-256 of every request body over https too, so that\n"
"                              the store itself verifies it (default: $COFFER_S3_SIGN_PAYLOAD,\n"
"                              else only over http; TLS already authenticates every byte on an\n"
"                              https connection)\n"
"  --no-lock                   commands that only read take no lock (they also go on without\n"
"                              one, with a warning, when the storage is read-only)\n"
"\n"
"backup options:\n"
"  --host NAME                 hostname recorded in the snapshot (default: this host)\n"
"  --tag TAG                   add a tag (repeatable)\n"
"  --time 'YYYY-MM-DD HH:MM:SS'  snapshot time (default: now)\n"
"  --exclude PATTERN           skip paths or names matching a shell pattern (repeatable)\n"
"  --exclude-file FILE         --exclude each line of FILE (blank lines and lines starting\n"
"                              with # skipped; repeatable)\n"
"  --exclude-if-present NAME[:HEADER]\n"
"                              skip directories holding a file NAME (that starts with HEADER,\n"
"                              if given; repeatable)\n"
"  --exclude-caches            skip directories holding a CACHEDIR.TAG with its signature\n"
"  --exclude-larger-than SIZE  skip files larger than SIZE (bytes, or with K, M, G, T)\n"
"  --files-from FILE           back up the paths listed in FILE (one per line, blank lines and\n"
"                              lines starting with # skipped) as well as those given; a missing\n"
"                              one is refused\n"
"  --one-file-system           do not cross file system boundaries\n"
"  --force                     read every file even if unchanged since the parent snapshot\n"
"  --no-cache                  neither use nor write the local directory cache (default:\n"
"                              $COFFER_CACHE_DIR, else $XDG_CACHE_HOME/coffer or ~/.cache/coffer;\n"
"                              COFFER_CACHE_DIR=off disables it; see doc/repo-format.md)\n"
"  --threads N                 worker threads (default: number of CPUs)\n"
"  --mariadb URL               dump MariaDB/MySQL databases consistently into the snapshot as\n"
"                              mariadb/<db>.sql; URL mariadb://USER[:PW]@HOST[:PORT]/[DB1,DB2][?socket=PATH]\n"
"                              (password also from MARIADB_PASSWORD or MARIADB_PASSWORD_FILE)\n"
"  --mariadb-lock              take FLUSH TABLES WITH READ LOCK while the snapshot starts\n"
"                              (an exact start point; MyISAM tables are still read as they are)\n"
"  --mariadb-users             end each dump with the accounts, roles and grants it needs: the\n"
"                              DEFINERs of its views, routines, triggers and events and the\n"
"                              accounts holding grants on it (needs SELECT on the mysql database)\n"
"  --postgres URL              pg_dump PostgreSQL databases (each in one consistent snapshot)\n"
"                              into the snapshot as postgres/<db>.sql; URL\n"
"                              postgres://USER[:PW]@HOST[:PORT]/[DB1,DB2][?sslmode=...] (libpq's;\n"
"                              password also from PGPASSWORD or ~/.pgpass; needs pg_dump)\n"
"  --sqlite PATH               a consistent copy of a live SQLite database, stored under PATH\n"
"  --stdin-from-command CMD    store CMD's standard output (run with /bin/sh -c) as a file;\n"
"  --stdin-filename NAME       ...named NAME in the snapshot; a non-zero exit fails the backup\n"
"                              (repeatable: the Nth command goes with the Nth NAME)\n"
"  -n, --dry-run               do everything but write: walk, read and chunk as a backup would\n"
"                              (databases dumped, commands run), look each chunk up in the\n"
"                              index and report what would be added; no pack, index, snapshot,\n"
"                              lock or directory cache is written\n"
"  (an --exclude matching a --sqlite copy or a command's file is refused: dumps are never\n"
"  excluded)\n"
"\n"
"restore options:\n"
"  --target DIR                where to restore files\n"
"  --include PATH              restore only this snapshot path (repeatable; one the snapshot\n"
"                              does not have is refused)\n"
"  --exclude PATTERN           do not restore (nor delete) paths or names matching it\n"
"  --path-map SNAP_PATH=DIR    restore the snapshot directory SNAP_PATH's contents into DIR\n"
"                              (repeatable; --target is then needed only for other paths)\n"
"  --overwrite always|if-changed|never\n"
"                              existing files: rewrite all, only those whose content differs\n"
"                              (default), or none\n"
"  --delete                    remove what the snapshot does not have: DIR ends up equal to it\n"
"  --dry-run                   list what would be created, replaced, deleted, kept; change nothing\n"
"  --verify                    read the restored files back and compare them with the snapshot\n"
"  --threads N                 writing threads (default: number of CPUs + 1; from S3, threads\n"
"                              that each fetch and write: default 6)\n"
"  --mariadb URL               load the snapshot's mariadb/<db>.sql dumps into this server\n"
"                              (instead of restoring files)\n"
"  --postgres URL              load the snapshot's postgres/<db>.sql dumps into this server, each\n"
"                              into a new database renamed into place once fully loaded\n"
"                              (an existing one of that name is replaced; needs psql)\n"
"  --database DB               only this database (repeatable)\n"
"  --rename OLD=NEW            load database OLD under the name NEW (OLD must be in the\n"
"                              snapshot and among the --database ones, if any)\n"
"                              (a dump made with --mariadb-users creates the accounts it names\n"
"                              that the server lacks and adds their grants; an existing account's\n"
"                              password, TLS and limits are left as they are unless\n"
"  --mariadb-users-replace     ...is given: then they are set as in the snapshot (ALTER USER))\n"
"  --all                       restore everything the snapshot records (its sources) to where\n"
"                              it came from: each volume mirrored onto its path (as --delete;\n"
"                              --path-map and --overwrite apply), each SQLite file put in place,\n"
"                              each MariaDB dump loaded into --mariadb URL or $COFFER_MARIADB,\n"
"                              each PostgreSQL dump into --postgres URL or $COFFER_POSTGRES\n"
"                              (--database/--rename apply); prints a plan first, --dry-run\n"
"                              stops there; command dumps outside a volume are not restored\n"
"  --yes                       with --all: restore without asking (required off a terminal)\n"
"  --no-stop                   with --all: do not stop the containers labelled\n"
"                              coffer.stop-during-backup and those mounting a restored volume\n"
"                              (stopped by default while it writes, started again afterwards;\n"
"                              engine from COFFER_DOCKER_HOST or DOCKER_HOST: unix:///PATH,\n"
"                              tcp://HOST:PORT or http://HOST:PORT)\n"
"  --force                     replace an SQLite file even with a -wal/-shm beside it or while\n"
"                              another process has it open (the -wal/-shm are removed)\n"
"\n"
"snapshot filters: --host NAME, --tag TAG, --path PATH (repeatable)\n"
"\n"
"forget options (restic's semantics; see doc/maintenance.md):\n"
"  --keep-last/--keep-hourly/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly N\n"
"                              keep the last N snapshots / per hour, day, week, month, year\n"
"                              (-1 = unlimited)\n"
"  --keep-within DURATION      keep snapshots within DURATION (e.g. 1y2m3d4h) of the latest\n"
"  --keep-within-hourly/-daily/-weekly/-monthly/-yearly DURATION\n"
"                              one per hour/day/... within DURATION of the latest\n"
"  --keep-tag TAG[,TAG]        keep snapshots with all these tags (repeatable)\n"
"  --group-by host,paths,tags  apply the policy per group (default host,paths; '' = one group)\n"
"  --dry-run                   only show what would be kept and removed, and why\n"
"  --prune                     prune after forgetting\n"
"prune: --max-unused N%|unlimited (default 5%), --dry-run\n"
"check: --read-data-subset n/m|N% reads the packs of bucket n of m, or N% of them at random\n"
"\n"
"init/key options: --kdf-passes N, --kdf-memory KIB (Argon2id cost; defaults 3 and 65536),\n"
"  --repo-version 2|3 (init: format version, default 3; 2 is also read by older coffer builds),\n"
"  --new-password-file FILE (key add/passwd)\n"
"\n"
"Exit codes: 0 ok, 1 error, 3 some source files unreadable (snapshot written),\n"
"10 no repository, 11 lock failed, 12 wrong password, 130 interrupted.\n"
"\n"
"COFFER_PARSE_ONLY=1: only validate the command line (options, arguments, the agent's\n"
"settings) and exit 0 if it is valid; no repository is opened.\n";

static void on_signal(int sig)
{
	(void)sig;
	if (cf_interrupted)
		_exit(EXIT_INTR); /* second signal: stop now */
	cf_interrupted = 1;
}

/* ---------- argument parsing ---------- */

enum { O_AGENT_ONCE = 400, O_AGENT_SCHEDULE, O_AGENT_HEALTH, O_AGENT_PRINTCONF, O_AGENT_RUN };
enum { O_DELETE = 600, O_VERIFY, O_OVERWRITE, O_PATHMAP, O_ARCHIVE, O_ALL, O_YES, O_NO_STOP };
enum {
	O_KEEP_LAST = 500, O_KEEP_HOURLY, O_KEEP_DAILY, O_KEEP_WEEKLY, O_KEEP_MONTHLY, O_KEEP_YEARLY,
	O_KEEP_WITHIN, O_KEEP_WITHIN_HOURLY, O_KEEP_WITHIN_DAILY, O_KEEP_WITHIN_WEEKLY,
	O_KEEP_WITHIN_MONTHLY, O_KEEP_WITHIN_YEARLY, O_KEEP_TAG, O_GROUP_BY, O_DRY_RUN, O_PRUNE,
	O_MAX_UNUSED, O_FROM_REPO, O_FROM_PWFILE, O_READ_SUBSET,
};
enum {
	O_PWFILE = 256, O_PWCMD, O_NEWPWFILE, O_JSON, O_RETRY, O_CACERT, O_CONN, O_SIGNP, O_HOST, O_TAG, O_TIME,
	O_EXCLUDE, O_OFS, O_FORCE, O_NOCACHE, O_THREADS, O_PATH, O_TARGET, O_INCLUDE, O_READDATA, O_CHUNK,
	O_COMP, O_REPOVER, O_KDFOPS, O_KDFMEM, O_REMOVEALL, O_HELP, O_VERSION,
	O_NOLOCK = 700,
	O_MARIADB, O_MARIADB_LOCK, O_SQLITE, O_STDIN_CMD, O_STDIN_NAME, O_DATABASE, O_RENAME,
	O_EXCLUDE_FILE, O_EXCLUDE_IF_PRESENT, O_EXCLUDE_CACHES, O_EXCLUDE_LARGER, O_FILES_FROM,
	O_POSTGRES = 800, O_MARIADB_USERS, O_MARIADB_USERS_REPLACE,
};

static const struct option longopts[] = {
	{ "repo", required_argument, NULL, 'r' },
	{ "password-file", required_argument, NULL, O_PWFILE },
	{ "password-command", required_argument, NULL, O_PWCMD },
	{ "new-password-file", required_argument, NULL, O_NEWPWFILE },
	{ "json", no_argument, NULL, O_JSON },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "retry-lock", required_argument, NULL, O_RETRY },
	{ "cacert", required_argument, NULL, O_CACERT },
	{ "s3-connections", required_argument, NULL, O_CONN },
	{ "s3-sign-payload", no_argument, NULL, O_SIGNP },
	{ "host", required_argument, NULL, O_HOST },
	{ "tag", required_argument, NULL, O_TAG },
	{ "time", required_argument, NULL, O_TIME },
	{ "exclude", required_argument, NULL, O_EXCLUDE },
	{ "exclude-file", required_argument, NULL, O_EXCLUDE_FILE },
	{ "exclude-if-present", required_argument, NULL, O_EXCLUDE_IF_PRESENT },
	{ "exclude-caches", no_argument, NULL, O_EXCLUDE_CACHES },
	{ "exclude-larger-than", required_argument, NULL, O_EXCLUDE_LARGER },
	{ "files-from", required_argument, NULL, O_FILES_FROM },
	{ "one-file-system", no_argument, NULL, O_OFS },
	{ "force", no_argument, NULL, O_FORCE },
	{ "no-cache", no_argument, NULL, O_NOCACHE },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "path", required_argument, NULL, O_PATH },
	{ "target", required_argument, NULL, O_TARGET },
	{ "include", required_argument, NULL, O_INCLUDE },
	{ "read-data", no_argument, NULL, O_READDATA },
	{ "chunk-size", required_argument, NULL, O_CHUNK },
	{ "compression", required_argument, NULL, O_COMP },
	{ "repo-version", required_argument, NULL, O_REPOVER },
	{ "kdf-passes", required_argument, NULL, O_KDFOPS },
	{ "kdf-memory", required_argument, NULL, O_KDFMEM },
	{ "remove-all", no_argument, NULL, O_REMOVEALL },
	{ "mariadb", required_argument, NULL, O_MARIADB },
	{ "mariadb-lock", no_argument, NULL, O_MARIADB_LOCK },
	{ "mariadb-users", no_argument, NULL, O_MARIADB_USERS },
	{ "mariadb-users-replace", no_argument, NULL, O_MARIADB_USERS_REPLACE },
	{ "sqlite", required_argument, NULL, O_SQLITE },
	{ "postgres", required_argument, NULL, O_POSTGRES },
	{ "stdin-from-command", required_argument, NULL, O_STDIN_CMD },
	{ "stdin-filename", required_argument, NULL, O_STDIN_NAME },
	{ "database", required_argument, NULL, O_DATABASE },
	{ "rename", required_argument, NULL, O_RENAME },
	{ "no-lock", no_argument, NULL, O_NOLOCK },
	{ "help", no_argument, NULL, O_HELP },
	{ "version", no_argument, NULL, O_VERSION },
	{ "once", no_argument, NULL, O_AGENT_ONCE },
	{ "print-schedule", required_argument, NULL, O_AGENT_SCHEDULE },
	{ "healthcheck", no_argument, NULL, O_AGENT_HEALTH },
	{ "print-config", no_argument, NULL, O_AGENT_PRINTCONF },
	{ "run", required_argument, NULL, O_AGENT_RUN },
	{ "delete", no_argument, NULL, O_DELETE },
	{ "all", no_argument, NULL, O_ALL },
	{ "yes", no_argument, NULL, O_YES },
	{ "no-stop", no_argument, NULL, O_NO_STOP },
	{ "verify", no_argument, NULL, O_VERIFY },
	{ "overwrite", required_argument, NULL, O_OVERWRITE },
	{ "path-map", required_argument, NULL, O_PATHMAP },
	{ "archive", required_argument, NULL, O_ARCHIVE },
	{ "keep-last", required_argument, NULL, O_KEEP_LAST },
	{ "keep-hourly", required_argument, NULL, O_KEEP_HOURLY },
	{ "keep-daily", required_argument, NULL, O_KEEP_DAILY },
	{ "keep-weekly", required_argument, NULL, O_KEEP_WEEKLY },
	{ "keep-monthly", required_argument, NULL, O_KEEP_MONTHLY },
	{ "keep-yearly", required_argument, NULL, O_KEEP_YEARLY },
	{ "keep-within", required_argument, NULL, O_KEEP_WITHIN },
	{ "keep-within-hourly", required_argument, NULL, O_KEEP_WITHIN_HOURLY },
	{ "keep-within-daily", required_argument, NULL, O_KEEP_WITHIN_DAILY },
	{ "keep-within-weekly", required_argument, NULL, O_KEEP_WITHIN_WEEKLY },
	{ "keep-within-monthly", required_argument, NULL, O_KEEP_WITHIN_MONTHLY },
	{ "keep-within-yearly", required_argument, NULL, O_KEEP_WITHIN_YEARLY },
	{ "keep-tag", required_argument, NULL, O_KEEP_TAG },
	{ "group-by", required_argument, NULL, O_GROUP_BY },
	{ "dry-run", no_argument, NULL, O_DRY_RUN },
	{ "prune", no_argument, NULL, O_PRUNE },
	{ "max-unused", required_argument, NULL, O_MAX_UNUSED },
	{ "from-repo", required_argument, NULL, O_FROM_REPO },
	{ "from-password-file", required_argument, NULL, O_FROM_PWFILE },
	{ "read-data-subset", required_argument, NULL, O_READ_SUBSET },
	{ NULL, 0, NULL, 0 },
};

/* ---------- which command takes which option ----------
 *
 * One getopt table parses every command line, so each command lists the
 * options it reads: any other one (besides the global ones) is refused
 * before anything runs, naming the option and the command.  An option that
 * is accepted and then ignored is a slip answered with exit 0 ("snapshots
 * --keep-daily 3" forgets nothing; "backup --dry-run" wrote a snapshot). */

/* taken by every command: where the repository is and how to reach it,
 * how much to say */
static const char global_opts[] =
	" repo password-file password-command json verbose quiet retry-lock cacert s3-connections"
	" s3-sign-payload no-lock help version ";

#define FILTER_OPTS " host tag path"
static const struct cmd_doc {
	const char *name, *synopsis, *opts; /* opts: " a b c " */
} cmds[] = {
	{ "init", "init [--chunk-size MIN,AVG,MAX] [--compression N]",
	  " chunk-size compression repo-version kdf-passes kdf-memory " },
	{ "backup", "backup PATH... [--mariadb URL] [--postgres URL] [--sqlite DB] [--stdin-from-command CMD --stdin-filename NAME]... [-n|--dry-run]",
	  " host tag time exclude exclude-file exclude-if-present exclude-caches exclude-larger-than"
	  " files-from one-file-system force no-cache threads mariadb mariadb-lock mariadb-users sqlite postgres"
	  " stdin-from-command stdin-filename dry-run " },
	{ "snapshots", "snapshots [--host H] [--tag T] [--path P]", FILTER_OPTS " " },
	{ "ls", "ls SNAPSHOT[:FOLDER] [PATH]", FILTER_OPTS " " },
	{ "restore", "restore SNAPSHOT[:FOLDER] --target DIR [--include PATH]... | --mariadb URL|--postgres URL [--database DB]... | --all [--yes]",
	  " target include exclude path-map overwrite delete dry-run verify threads mariadb postgres database"
	  " rename mariadb-users-replace all yes no-stop force sqlite time" FILTER_OPTS " " },
	{ "dump", "dump SNAPSHOT[:FOLDER] [PATH] [--archive tar|zip]", " archive" FILTER_OPTS " " },
	{ "diff", "diff SNAPSHOT1 SNAPSHOT2", FILTER_OPTS " " },
	{ "check", "check [--read-data | --read-data-subset n/m|N%]", " read-data read-data-subset " },
	{ "key", "key list|add|remove ID|passwd", " kdf-passes kdf-memory new-password-file " },
	{ "unlock", "unlock [--remove-all]", " remove-all " },
	{ "forget", "forget [ID...] [--keep-* ...] [--dry-run] [--prune]",
	  " keep-last keep-hourly keep-daily keep-weekly keep-monthly keep-yearly keep-within"
	  " keep-within-hourly keep-within-daily keep-within-weekly keep-within-monthly"
	  " keep-within-yearly keep-tag group-by dry-run prune max-unused" FILTER_OPTS " " },
	{ "prune", "prune [--max-unused N%] [--dry-run]", " max-unused dry-run " },
	{ "copy", "copy --from-repo LOCATION [--from-password-file F] [SNAPSHOT...]",
	  " from-repo from-password-file" FILTER_OPTS " " },
	{ "stats", "stats", " " },
	{ "agent", "agent [--once | --run backup|copy:NAME|drill | --print-schedule N | --healthcheck | --print-config]",
	  " once run print-schedule healthcheck print-config " },
	{ "healthcheck", "healthcheck", " " },
	{ "replicate", "replicate DB...", " host " },
	{ "sqlite", "sqlite list DB... | sqlite restore --sqlite DB [--time T] --target FILE",
	  " sqlite time target " },
	{ "version", "version", " " },
	{ "help", "help [COMMAND]", " " },
};

/* one line per option for 'coffer COMMAND --help' */
static const struct { const char *name, *arg, *help; } opt_docs[] = {
	{ "host", "NAME", "backup: hostname recorded; others: only snapshots of this host" },
	{ "tag", "TAG", "backup: add a tag; others: only snapshots with it (repeatable)" },
	{ "path", "PATH", "only snapshots of this path (repeatable)" },
	{ "time", "'YYYY-MM-DD HH:MM:SS'", "backup: snapshot time (default: now); restore --sqlite: as of then (default: latest)" },
	{ "exclude", "PATTERN", "skip paths or names matching a shell pattern (repeatable)" },
	{ "exclude-file", "FILE", "--exclude each line of FILE (blank and # lines skipped)" },
	{ "exclude-if-present", "NAME[:HEADER]", "skip directories holding NAME (starting with HEADER)" },
	{ "exclude-caches", NULL, "skip directories with a CACHEDIR.TAG (its signature checked)" },
	{ "exclude-larger-than", "SIZE", "skip files larger than SIZE (bytes, or with K, M, G, T)" },
	{ "files-from", "FILE", "back up the paths listed in FILE too, one per line" },
	{ "one-file-system", NULL, "do not cross file system boundaries" },
	{ "force", NULL, "backup: read every file even if unchanged since the parent snapshot; "
	  "restore: replace an SQLite file that has a -wal/-shm beside it or is open (removes them)" },
	{ "no-cache", NULL, "neither use nor write the local directory cache" },
	{ "threads", "N", "worker threads" },
	{ "mariadb", "URL", "backup: dump this server's databases; restore: load the dumps into it" },
	{ "mariadb-lock", NULL, "FLUSH TABLES WITH READ LOCK while the snapshot starts" },
	{ "mariadb-users", NULL, "end each dump with the accounts, roles and grants its objects need" },
	{ "mariadb-users-replace", NULL, "restore: set existing accounts' passwords, TLS and limits as in the snapshot" },
	{ "sqlite", "PATH", "backup: a consistent copy of a live SQLite database (repeatable); restore: a replicated one" },
	{ "postgres", "URL", "backup: pg_dump this server's databases; restore: load the dumps into it" },
	{ "stdin-from-command", "CMD", "store CMD's stdout as a file (repeatable, each with" },
	{ "stdin-filename", "NAME", "...its own --stdin-filename, paired in order)" },
	{ "target", "DIR", "where to restore files (restore --sqlite: the new database file)" },
	{ "include", "PATH", "restore only this snapshot path (repeatable; must exist)" },
	{ "path-map", "SNAP_PATH=DIR", "restore SNAP_PATH's contents into DIR (repeatable)" },
	{ "overwrite", "always|if-changed|never", "what to do with existing files (default if-changed)" },
	{ "delete", NULL, "remove what the snapshot does not have" },
	{ "dry-run", NULL, "only show what would be done; change nothing (-n; backup: read, chunk and "
	  "count what would be added, write nothing)" },
	{ "verify", NULL, "read the restored files back and compare" },
	{ "database", "DB", "only this database (repeatable; must be in the snapshot)" },
	{ "rename", "OLD=NEW", "load database OLD as NEW (OLD must be in the snapshot)" },
	{ "all", NULL, "restore every source the snapshot records to where it came from" },
	{ "yes", NULL, "--all: do not ask for confirmation (required off a terminal)" },
	{ "no-stop", NULL, "--all: leave the containers running (see doc/restore.md)" },
	{ "archive", "tar|zip", "archive format for a directory" },
	{ "read-data", NULL, "also read and verify every pack" },
	{ "read-data-subset", "n/m|N%", "read bucket n of m, or N% of the packs" },
	{ "chunk-size", "MIN,AVG,MAX", "chunk sizes in KiB" },
	{ "compression", "N", "zstd level 0-19" },
	{ "repo-version", "2|3", "repository format version (default 3)" },
	{ "kdf-passes", "N", "Argon2id passes (default 3)" },
	{ "kdf-memory", "KIB", "Argon2id memory (default 65536)" },
	{ "new-password-file", "FILE", "the new password (key add/passwd)" },
	{ "remove-all", NULL, "remove every lock, not only stale ones" },
	{ "keep-last", "N", "keep the last N snapshots" },
	{ "keep-hourly", "N", "keep one per hour for N hours" },
	{ "keep-daily", "N", "keep one per day for N days" },
	{ "keep-weekly", "N", "keep one per week for N weeks" },
	{ "keep-monthly", "N", "keep one per month for N months" },
	{ "keep-yearly", "N", "keep one per year for N years" },
	{ "keep-within", "DURATION", "keep snapshots within DURATION of the latest" },
	{ "keep-within-hourly", "DURATION", "one per hour within DURATION" },
	{ "keep-within-daily", "DURATION", "one per day within DURATION" },
	{ "keep-within-weekly", "DURATION", "one per week within DURATION" },
	{ "keep-within-monthly", "DURATION", "one per month within DURATION" },
	{ "keep-within-yearly", "DURATION", "one per year within DURATION" },
	{ "keep-tag", "TAG[,TAG]", "keep snapshots with all these tags (repeatable)" },
	{ "group-by", "host,paths,tags", "apply the policy per group" },
	{ "prune", NULL, "prune after forgetting" },
	{ "max-unused", "N%|unlimited", "unused space to tolerate (default 5%)" },
	{ "from-repo", "LOCATION", "the repository to copy from" },
	{ "from-password-file", "FILE", "its password" },
	{ "once", NULL, "run one job now" },
	{ "print-schedule", "N", "print the next N job times" },
	{ "healthcheck", NULL, "exit 1 if the last job failed or one is overdue" },
	{ "print-config", NULL, "print the configuration" },
};

static const struct cmd_doc *find_cmd(const char *name)
{
	for (size_t i = 0; name && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

/* Is " name " in the space-separated list? */
static bool in_list(const char *list, const char *name, size_t len)
{
	for (const char *p = list; (p = strstr(p, name)); p++)
		if (p > list && p[-1] == ' ' && p[len] == ' ' && !strncmp(p, name, len))
			return true;
	return false;
}

static void cmd_help(const struct cmd_doc *d)
{
	printf("usage: coffer [-r REPOSITORY] %s\n", d->synopsis);
	bool any = false;
	for (size_t i = 0; i < sizeof(opt_docs) / sizeof(opt_docs[0]); i++) {
		if (!in_list(d->opts, opt_docs[i].name, strlen(opt_docs[i].name)))
			continue;
		char lhs[64];
		snprintf(lhs, sizeof(lhs), "--%s%s%s", opt_docs[i].name, opt_docs[i].arg ? " " : "",
			 opt_docs[i].arg ? opt_docs[i].arg : "");
		if (!any)
			printf("\n%s options:\n", d->name);
		any = true;
		printf(strlen(lhs) < 28 ? "  %-28s%s\n" : "  %s\n  %28s%s\n", lhs,
		       strlen(lhs) < 28 ? opt_docs[i].help : "", opt_docs[i].help);
	}
	printf("\nGlobal options (every command): -r/--repo, --password-file, --password-command, --json, -v, -q,\n"
	       "--retry-lock, --cacert, --s3-connections, --s3-sign-payload, --no-lock\n"
	       "(see 'coffer --help')\n");
}

/* The command (the first argument that is not an option or an option's
 * value), and every long option refused: unknown or abbreviated ones
 * anywhere, and ones the command does not take.  0 = go on, else the exit
 * code (the message is printed). */
static int prescan(int argc, char **argv, const char **cmd_out)
{
	const char *cmd = NULL;
	int *seen = calloc((size_t)argc + 1, sizeof(*seen)), nseen = 0, code = 0;
	bool short_n = false;
	if (!seen) {
		fprintf(stderr, "coffer: out of memory\n");
		return EXIT_ERR;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			if (!cmd && i + 1 < argc)
				cmd = argv[i + 1];
			break;
		}
		if (!strncmp(a, "--", 2)) {
			size_t len = strcspn(a + 2, "=");
			const struct option *o = longopts;
			while (o->name && !(strlen(o->name) == len && !strncmp(o->name, a + 2, len)))
				o++;
			/* getopt_long takes unique abbreviations ("--pass" for
			 * "--password-file"); refuse them, so that a mistyped
			 * "--password SECRET" is an unknown option and the secret
			 * is never echoed back */
			if (!o->name) {
				fprintf(stderr, "coffer: unknown option --%.*s (see 'coffer --help'; "
					"passwords are never taken from the command line)\n", (int)len, a + 2);
				free(seen);
				return EXIT_ERR;
			}
			seen[nseen++] = (int)(o - longopts);
			if (o->has_arg == required_argument && !a[2 + len])
				i++;
			continue;
		}
		if (a[0] == '-' && a[1]) {
			for (const char *p = a + 1; *p; p++) {
				if (*p == 'n')
					short_n = true;
				if (*p == 'r') {
					if (!p[1])
						i++;
					break;
				}
			}
			continue;
		}
		if (!cmd)
			cmd = a;
	}
	*cmd_out = cmd;
	const struct cmd_doc *d = find_cmd(cmd);
	if (!d) {
		free(seen);
		return 0; /* no command or an unknown one: said later */
	}
	/* -n is --dry-run (restic's), for the commands that take that */
	if (short_n && !in_list(d->opts, "dry-run", 7)) {
		fprintf(stderr, "coffer: %s does not take -n/--dry-run (see 'coffer %s --help')\n", d->name,
			d->name);
		free(seen);
		return EXIT_ERR;
	}
	for (int k = 0; k < nseen; k++) {
		const char *name = longopts[seen[k]].name;
		size_t len = strlen(name);
		if (in_list(global_opts, name, len) || in_list(d->opts, name, len))
			continue;
		fprintf(stderr, "coffer: %s does not take --%s (see 'coffer %s --help')\n", d->name, name,
			d->name);
		code = EXIT_ERR;
		break;
	}
	free(seen);
	return code;
}

static int add_multi(const char **arr, size_t *n, const char *v, const char *opt)
{
	if (*n >= MAXV)
		return cf_err(CF_EINVAL, "too many %s options", opt);
	arr[(*n)++] = v;
	return CF_OK;
}

/* SIZE: bytes, or a number with K, M, G or T (powers of 1024; a trailing
 * "B" or "iB" allowed), above 0 */
static int parse_size(const char *s, const char *opt, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift && *end == 'i')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (!isdigit((unsigned char)*s) || *end || errno || v == 0 || (shift && v > (UINT64_MAX >> shift)))
		return cf_err(CF_EINVAL, "%s wants a size above 0 (e.g. 500M, 2G), not '%s'", opt, s);
	*out = (uint64_t)v << shift;
	return CF_OK;
}

static int parse_long(const char *s, const char *opt, long lo, long hi, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < lo || v > hi)
		return cf_err(CF_EINVAL, "%s wants a number from %ld to %ld, not '%s'", opt, lo, hi, s);
	*out = v;
	return CF_OK;
}

int main(int argc, char **argv)
{
	struct cli c;
	int opt, rc = CF_OK;
	long v;

	/* Buffers of 256 KiB and more (chunks, packs, ranges read back) are
	 * mapped and unmapped whole, so freed ones go back to the system at
	 * once instead of staying in a heap arena of whichever thread freed
	 * them: a steadier, lower peak RSS (initial backup of the bench
	 * corpus 73-77 -> 64-66 MiB).  glibc would otherwise raise this
	 * threshold to the size of the largest buffer freed.  The busy
	 * buffers are reused (chunk pool, spare packs, per-thread scratch),
	 * so this costs few page faults. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	memset(&c, 0, sizeof(c));
	c.compression = -1;
	const char *cmd0 = NULL;
	if ((rc = prescan(argc, argv, &cmd0)))
		return rc;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "r:vqhn", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r': c.repo = optarg; break;
		case O_PWFILE: c.password_file = optarg; break;
		case O_PWCMD: c.password_command = optarg; break;
		case O_NEWPWFILE: c.new_password_file = optarg; break;
		case O_JSON: c.json = true; break;
		case 'v': c.verbose = true; break;
		case 'q': c.quiet = true; break;
		case O_RETRY:
			rc = parse_long(optarg, "--retry-lock", 0, 86400 * 7, &v);
			c.retry_lock = (double)v;
			break;
		case O_CACERT: c.cacert = optarg; break;
		case O_CONN:
			rc = parse_long(optarg, "--s3-connections", 1, 128, &v);
			c.connections = (int)v;
			break;
		case O_SIGNP: c.sign_payload = true; break;
		case O_HOST: c.host = optarg; break;
		case O_TAG: rc = add_multi(c.tags, &c.ntags, optarg, "--tag"); break;
		case O_TIME: c.time = optarg; break;
		case O_EXCLUDE: rc = add_multi(c.excludes, &c.nexcludes, optarg, "--exclude"); break;
		case O_EXCLUDE_FILE:
			rc = add_multi(c.exclude_files, &c.nexclude_files, optarg, "--exclude-file");
			break;
		case O_EXCLUDE_IF_PRESENT:
			if (!*optarg || *optarg == ':' || strchr(optarg, '/'))
				rc = cf_err(CF_EINVAL, "--exclude-if-present wants a file name (NAME or "
					    "NAME:HEADER), not '%s'", optarg);
			else
				rc = add_multi(c.exclude_if_present, &c.nexclude_if_present, optarg,
					       "--exclude-if-present");
			break;
		case O_EXCLUDE_CACHES:
			/* https://bford.info/cachedir/ */
			rc = add_multi(c.exclude_if_present, &c.nexclude_if_present,
				       "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55",
				       "--exclude-if-present");
			break;
		case O_EXCLUDE_LARGER: rc = parse_size(optarg, "--exclude-larger-than", &c.exclude_larger_than); break;
		case O_FILES_FROM: rc = add_multi(c.files_from, &c.nfiles_from, optarg, "--files-from"); break;
		case O_OFS: c.one_file_system = true; break;
		case O_FORCE: c.force = true; break;
		case O_NOCACHE: c.no_cache = true; break;
		case O_THREADS:
			rc = parse_long(optarg, "--threads", 1, 256, &v);
			c.threads = (int)v;
			break;
		case O_PATH: rc = add_multi(c.paths, &c.npaths, optarg, "--path"); break;
		case O_TARGET: c.target = optarg; break;
		case O_INCLUDE: rc = add_multi(c.includes, &c.nincludes, optarg, "--include"); break;
		case O_READDATA: c.read_data = true; break;
		case O_CHUNK: c.chunk_size = optarg; break;
		case O_COMP:
			rc = parse_long(optarg, "--compression", 0, 19, &v);
			c.compression = (int)v;
			break;
		case O_REPOVER:
			rc = parse_long(optarg, "--repo-version", 2, CF_REPO_VERSION, &v);
			c.repo_version = (int)v;
			break;
		case O_KDFOPS: rc = parse_long(optarg, "--kdf-passes", 1, (long)CF_KDF_OPS_MAX, &c.kdf_ops); break;
		case O_KDFMEM: rc = parse_long(optarg, "--kdf-memory", 8, (long)(CF_KDF_MEM_MAX >> 10), &c.kdf_mem_kib); break;
		case O_REMOVEALL: c.remove_all = true; break;
		case O_NOLOCK: c.no_lock = true; break;
		case O_MARIADB: rc = add_multi(c.mariadb, &c.nmariadb, optarg, "--mariadb"); break;
		case O_MARIADB_LOCK: c.mariadb_lock = true; break;
		case O_MARIADB_USERS: c.mariadb_users = true; break;
		case O_MARIADB_USERS_REPLACE: c.mariadb_users_replace = true; break;
		case O_SQLITE: rc = add_multi(c.sqlite, &c.nsqlite, optarg, "--sqlite"); break;
		case O_POSTGRES: rc = add_multi(c.postgres, &c.npostgres, optarg, "--postgres"); break;
		case O_STDIN_CMD:
			rc = add_multi(c.stdin_commands, &c.nstdin_commands, optarg, "--stdin-from-command");
			break;
		case O_STDIN_NAME:
			rc = add_multi(c.stdin_filenames, &c.nstdin_filenames, optarg, "--stdin-filename");
			break;
		case O_DATABASE: rc = add_multi(c.databases, &c.ndatabases, optarg, "--database"); break;
		case O_RENAME: rc = add_multi(c.renames, &c.nrenames, optarg, "--rename"); break;
		case 'h':
		case O_HELP:
			if (find_cmd(cmd0) && strcmp(cmd0, "help"))
				cmd_help(find_cmd(cmd0));
			else
				fputs(usage_text, stdout);
			return EXIT_OK;
		case O_VERSION: printf("coffer %s\n", COFFER_VERSION); return EXIT_OK;
		case O_AGENT_ONCE: c.agent_once = true; break;
		case O_AGENT_SCHEDULE:
			rc = parse_long(optarg, "--print-schedule", 1, 10000, &v);
			c.agent_print_schedule = (int)v;
			break;
		case O_AGENT_HEALTH: c.agent_healthcheck = true; break;
		case O_AGENT_PRINTCONF: c.agent_print_config = true; break;
		case O_AGENT_RUN: c.agent_run = optarg; break;
		case O_DELETE: c.restore_delete = true; break;
		case O_ALL: c.restore_all = true; break;
		case O_YES: c.yes = true; break;
		case O_NO_STOP: c.no_stop = true; break;
		case O_VERIFY: c.verify = true; break;
		case O_OVERWRITE: c.overwrite = optarg; break;
		case O_PATHMAP: rc = add_multi(c.path_maps, &c.npath_maps, optarg, "--path-map"); break;
		case O_ARCHIVE: c.archive = optarg; break;
		case O_KEEP_LAST: case O_KEEP_HOURLY: case O_KEEP_DAILY:
		case O_KEEP_WEEKLY: case O_KEEP_MONTHLY: case O_KEEP_YEARLY: {
			int *keep[] = { &c.keep_last, &c.keep_hourly, &c.keep_daily, &c.keep_weekly,
					&c.keep_monthly, &c.keep_yearly };
			rc = parse_long(optarg, "--keep-*", -1, 1000000, &v);
			*keep[opt - O_KEEP_LAST] = (int)v;
			break;
		}
		case O_KEEP_WITHIN: c.keep_within = optarg; break;
		case O_KEEP_WITHIN_HOURLY: c.keep_within_hourly = optarg; break;
		case O_KEEP_WITHIN_DAILY: c.keep_within_daily = optarg; break;
		case O_KEEP_WITHIN_WEEKLY: c.keep_within_weekly = optarg; break;
		case O_KEEP_WITHIN_MONTHLY: c.keep_within_monthly = optarg; break;
		case O_KEEP_WITHIN_YEARLY: c.keep_within_yearly = optarg; break;
		case O_KEEP_TAG: rc = add_multi(c.keep_tags, &c.nkeep_tags, optarg, "--keep-tag"); break;
		case O_GROUP_BY: c.group_by = optarg; break;
		case 'n':
		case O_DRY_RUN: c.dry_run = true; break;
		case O_PRUNE: c.prune = true; break;
		case O_MAX_UNUSED: c.max_unused = optarg; break;
		case O_FROM_REPO: c.from_repo = optarg; break;
		case O_FROM_PWFILE: c.from_password_file = optarg; break;
		case O_READ_SUBSET: c.read_data_subset = optarg; break;
		default:
			fprintf(stderr, "coffer: see 'coffer --help'\n");
			return EXIT_ERR;
		}
		if (rc)
			return fail(rc);
	}
	cli_json_errors = c.json;
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return EXIT_ERR;
	}
	const char *cmd = argv[optind];
	c.args = argv + optind + 1;
	c.nargs = argc - optind - 1;
	cf_log_level = c.quiet ? 0 : c.verbose ? 2 : 1;
	const char *po = getenv("COFFER_PARSE_ONLY");
	if (po && *po && strcmp(po, "0")) {
		if (strcmp(po, "1")) {
			fprintf(stderr, "coffer: COFFER_PARSE_ONLY is 0 or 1, not '%s'\n", po);
			return EXIT_ERR;
		}
		c.parse_only = true;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((rc = cf_crypto_init()))
		return fail(rc);
	if (!strcmp(cmd, "init"))
		return cmd_init(&c);
	if (!strcmp(cmd, "backup"))
		return cmd_backup(&c);
	if (!strcmp(cmd, "snapshots"))
		return cmd_snapshots(&c);
	if (!strcmp(cmd, "ls"))
		return cmd_ls(&c);
	if (!strcmp(cmd, "restore") && c.nsqlite)
		return cmd_sqlite_restore(&c);
	if (!strcmp(cmd, "restore"))
		return cmd_restore(&c);
	if (!strcmp(cmd, "replicate"))
		return cmd_replicate(&c);
	if (!strcmp(cmd, "sqlite"))
		return cmd_sqlite(&c);
	if (!strcmp(cmd, "dump"))
		return cmd_dump(&c);
	if (!strcmp(cmd, "check"))
		return cmd_check(&c);
	if (!strcmp(cmd, "diff"))
		return cmd_diff(&c);
	if (!strcmp(cmd, "forget"))
		return cmd_forget(&c);
	if (!strcmp(cmd, "prune"))
		return cmd_prune(&c);
	if (!strcmp(cmd, "copy"))
		return cmd_copy(&c);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(&c);
	if (!strcmp(cmd, "key"))
		return cmd_key(&c);
	if (!strcmp(cmd, "agent"))
		return cmd_agent(&c);
	if (!strcmp(cmd, "healthcheck")) {
		c.agent_healthcheck = true;
		return cmd_agent(&c);
	}
	if (!strcmp(cmd, "unlock"))
		return cmd_unlock(&c);
	if (!strcmp(cmd, "version"))
		return cmd_version(&c);
	if (!strcmp(cmd, "help")) {
		if (c.nargs > 0 && find_cmd(c.args[0]))
			cmd_help(find_cmd(c.args[0]));
		else
			fputs(usage_text, stdout);
		return EXIT_OK;
	}
	fprintf(stderr, "coffer: unknown command '%s' (see 'coffer --help')\n", cmd);
	return EXIT_ERR;
}
