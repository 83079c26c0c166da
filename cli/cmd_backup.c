#include "cli/cli.h"
#include "sources/sources.h"
#include "sources/postgres.h"
#include "engine/backup.h"
#include "engine/dircache.h"
#include "restore/restore.h"
#include "repo/tree.h"
#include "crypto/crypto.h"
#include "common/array.h"
#include "common/error.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* backup --json's last line: restic's flat summary (doc/075_scripting.rst),
 * then coffer's snapshot fields beside it (id, tree, paths, summary, ...). */
static void print_json_summary(const struct cf_snapshot *s, bool dry)
{
	const struct cf_snapshot_summary *m = &s->summary;
	char hex[CF_ID_HEX], start[64], end[64];
	cf_hex(s->id, CF_ID_LEN, hex);
	cf_format_time(m->backup_start_ns, start, sizeof(start));
	cf_format_time(m->backup_end_ns, end, sizeof(end));
	json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
			      " s:f, s:s, s:s, s:s, s:I}",
		"message_type", "summary", "dry_run", dry,
		"files_new", (json_int_t)m->files_new, "files_changed", (json_int_t)m->files_changed,
		"files_unmodified", (json_int_t)m->files_unmodified,
		"dirs_new", (json_int_t)m->dirs_new, "dirs_changed", (json_int_t)m->dirs_changed,
		"dirs_unmodified", (json_int_t)m->dirs_unmodified,
		"data_blobs", (json_int_t)m->data_blobs, "tree_blobs", (json_int_t)m->tree_blobs,
		"data_added", (json_int_t)m->data_added, "data_added_packed", (json_int_t)m->data_added_packed,
		"total_files_processed", (json_int_t)m->total_files_processed,
		"total_bytes_processed", (json_int_t)m->total_bytes_processed,
		"total_duration", (double)(m->backup_end_ns - m->backup_start_ns) / 1e9,
		"backup_start", start, "backup_end", end, "snapshot_id", hex,
		"files_unreadable", (json_int_t)m->files_unreadable);
	/* a dry run made no snapshot: restic omits snapshot_id, and there are
	 * no snapshot fields to add */
	json_t *snap = dry ? NULL : cf_snapshot_to_json(s);
	if (j && dry)
		json_object_del(j, "snapshot_id");
	if (j && snap)
		json_object_update_missing(j, snap);
	json_decref(snap);
	json_line(stdout, j);
}

/* backup --json: restic's "status" lines on stdout */
static void json_status(void *ctx, const struct cf_backup_status *st)
{
	(void)ctx;
	double pct = st->total_bytes ? (double)st->bytes_done / (double)st->total_bytes : 0;
	if (st->final)
		pct = 1;
	json_t *j = json_pack("{s:s, s:I, s:f, s:I, s:I, s:I, s:I, s:I}", "message_type", "status",
		"seconds_elapsed", (json_int_t)st->seconds_elapsed, "percent_done", pct,
		"total_files", (json_int_t)st->total_files, "files_done", (json_int_t)st->files_done,
		"total_bytes", (json_int_t)st->total_bytes, "bytes_done", (json_int_t)st->bytes_done,
		"error_count", (json_int_t)st->error_count);
	if (!j)
		return;
	/* an estimate only once the totals are known, as restic */
	if (st->totals_final && st->bytes_done && st->seconds_elapsed > 0 && !st->final) {
		double rate = (double)st->bytes_done / st->seconds_elapsed;
		json_object_set_new(j, "seconds_remaining",
				    json_integer((json_int_t)((double)(st->total_bytes - st->bytes_done) / rate)));
	}
	json_t *cur = json_array();
	if (cur && st->current_file)
		json_array_append_new(cur, json_string(st->current_file));
	json_object_set_new(j, "current_files", cur);
	json_line(stdout, j);
}

/* backup --json: restic's "error" lines on stderr */
static void json_error(void *ctx, const char *item, const char *message)
{
	(void)ctx;
	fflush(stdout);
	json_line(stderr, json_pack("{s:s, s:{s:s}, s:s, s:s}", "message_type", "error", "error",
				    "message", message, "during", "archival", "item", item));
}

static void print_summary(const struct cf_snapshot *s, bool json, bool dry)
{
	const struct cf_snapshot_summary *m = &s->summary;
	char hex[CF_ID_HEX];
	cf_hex(s->id, CF_ID_LEN, hex);
	if (json) {
		print_json_summary(s, dry);
		return;
	}
	char a[32], b[32], tot[32];
	human(m->data_added, a, sizeof(a));
	human(m->data_added_packed, b, sizeof(b));
	human(m->total_bytes_processed, tot, sizeof(tot));
	double secs = (double)(m->backup_end_ns - m->backup_start_ns) / 1e9;
	printf("Files:       %6llu new, %6llu changed, %6llu unmodified\n",
	       (unsigned long long)m->files_new, (unsigned long long)m->files_changed,
	       (unsigned long long)m->files_unmodified);
	printf("Dirs:        %6llu new, %6llu changed, %6llu unmodified\n",
	       (unsigned long long)m->dirs_new, (unsigned long long)m->dirs_changed,
	       (unsigned long long)m->dirs_unmodified);
	/* restic's words for a dry run */
	printf("%s to the repository: %s (%s stored)\n", dry ? "Would add" : "Added", a, b);
	printf("Data blobs:  %6llu new; tree blobs: %llu new\n", (unsigned long long)m->data_blobs,
	       (unsigned long long)m->tree_blobs);
	printf("processed %llu files, %s in %.1fs\n", (unsigned long long)m->total_files_processed,
	       tot, secs);
	if (dry)
		printf("dry run: nothing was written to the repository\n");
	else
		printf("snapshot %.8s saved\n", hex);
}

/* What to walk and what to leave out: the command line's paths and
 * --exclude patterns, then the lines of each --files-from and
 * --exclude-file. */
struct lists {
	char **paths; size_t npaths, pathcap;
	char **excludes; size_t nexcludes, exclcap;
	size_t owned_paths, owned_excludes; /* the first ones are the command line's */
};

/* Append the lines of file (blank ones and those starting with # skipped;
 * a trailing \r dropped) to *v. */
static int read_lines(const char *file, const char *opt, char ***v, size_t *n, size_t *cap)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	if (!f)
		return cf_err(CF_EINVAL, "%s %s: %s", opt, file, strerror(errno));
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	int rc = CF_OK;
	while (!rc && (len = getline(&line, &lcap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len || line[0] == '#')
			continue;
		if (!(rc = CF_GROW(*v, *n + 1, *cap)) && !((*v)[*n] = strdup(line)))
			rc = cf_err(CF_ENOMEM, "out of memory");
		if (!rc)
			(*n)++;
	}
	if (!rc && ferror(f))
		rc = cf_err(CF_EIO, "%s %s: %s", opt, file, strerror(errno));
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

static void lists_release(struct lists *l)
{
	for (size_t i = l->npaths - l->owned_paths; i < l->npaths; i++)
		free(l->paths[i]);
	for (size_t i = l->nexcludes - l->owned_excludes; i < l->nexcludes; i++)
		free(l->excludes[i]);
	free(l->paths);
	free(l->excludes);
}

static int lists_build(const struct cli *c, struct lists *l)
{
	int rc;
	memset(l, 0, sizeof(*l));
	if ((rc = CF_GROW(l->paths, (size_t)c->nargs + 1, l->pathcap)) ||
	    (rc = CF_GROW(l->excludes, c->nexcludes + 1, l->exclcap)))
		return rc;
	for (int i = 0; i < c->nargs; i++)
		l->paths[l->npaths++] = c->args[i];
	for (size_t i = 0; i < c->nexcludes; i++)
		l->excludes[l->nexcludes++] = (char *)c->excludes[i];
	size_t before = l->npaths;
	for (size_t i = 0; i < c->nfiles_from; i++) {
		if ((rc = read_lines(c->files_from[i], "--files-from", &l->paths, &l->npaths, &l->pathcap)))
			break;
	}
	l->owned_paths = l->npaths - before;
	before = l->nexcludes;
	for (size_t i = 0; !rc && i < c->nexclude_files; i++)
		rc = read_lines(c->exclude_files[i], "--exclude-file", &l->excludes, &l->nexcludes, &l->exclcap);
	l->owned_excludes = l->nexcludes - before;
	if (!rc && c->nfiles_from && !l->owned_paths)
		rc = cf_err(CF_EINVAL, "--files-from: no path in %s%s", c->files_from[0],
			    c->nfiles_from > 1 ? " (nor the others)" : "");
	return rc;
}

static int backup_run(struct cli *c, const struct lists *l);

int cmd_backup(struct cli *c)
{
	struct lists l;
	int rc = lists_build(c, &l);
	if (rc) {
		lists_release(&l);
		return fail(rc);
	}
	rc = backup_run(c, &l);
	lists_release(&l);
	return rc;
}

static int backup_run(struct cli *c, const struct lists *l)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot snap;
	struct cf_backup_opts o;
	int rc;

	memset(&snap, 0, sizeof(snap));
	memset(&o, 0, sizeof(o));
	if (l->npaths < 1 && !c->nmariadb && !c->npostgres && !c->nsqlite && !c->nstdin_commands)
		return fail(cf_err(CF_EINVAL, "backup: give at least one path (or --mariadb, --postgres, --sqlite, "
				   "--stdin-from-command) to back up"));
	/* pairs in the order given: the i-th command's output is stored as the
	 * i-th name; a name or a command without its partner is refused */
	if (c->nstdin_filenames != c->nstdin_commands)
		return fail(cf_err(CF_EINVAL, "backup: %zu --stdin-from-command and %zu --stdin-filename: "
				   "give each command its own --stdin-filename NAME",
				   c->nstdin_commands, c->nstdin_filenames));
	o.paths = (const char *const *)l->paths;
	o.npaths = l->npaths;
	o.host = c->host;
	o.tags = c->tags;
	o.ntags = c->ntags;
	o.excludes = (const char *const *)l->excludes;
	o.nexcludes = l->nexcludes;
	o.exclude_if_present = c->exclude_if_present;
	o.nexclude_if_present = c->nexclude_if_present;
	o.exclude_larger_than = c->exclude_larger_than;
	o.one_file_system = c->one_file_system;
	o.threads = c->threads;
	o.no_parent = c->force;
	o.dry_run = c->dry_run;
	char cache_dir[4096];
	if (!c->no_cache && cf_cache_dir_default(cache_dir, sizeof(cache_dir)))
		o.cache_dir = cache_dir;
	o.progress = !c->quiet && !c->json && isatty(2);
	if (c->json) {
		o.error = json_error;
		if (!c->quiet)
			o.status = json_status;
	}
	if (c->time && (rc = cf_parse_time(c->time, &o.time_ns)))
		return fail(rc);
	for (size_t i = 0; i < o.npaths && !c->parse_only; i++)
		if (access(o.paths[i], F_OK) != 0)
			return fail(cf_err(CF_EINVAL, "backup: %s does not exist", o.paths[i]));
	/* a dump the walk would drop (an --exclude matching it, a command's
	 * file inside a walked directory) is refused before anything runs;
	 * MariaDB's names are known once connected (checked again below) */
	for (size_t i = 0; i < c->nsqlite; i++) {
		char abs[PATH_MAX], label[PATH_MAX + 16];
		if (!realpath(c->sqlite[i], abs))
			continue; /* named by cf_sources_add_sqlite */
		snprintf(label, sizeof(label), "--sqlite %s", c->sqlite[i]);
		if ((rc = cf_sources_check_dump(label, abs, o.paths, o.npaths, o.excludes, o.nexcludes)))
			return fail(rc);
	}
	for (size_t i = 0; i < c->npostgres; i++)
		if ((rc = cf_pgurl_check(c->postgres[i])))
			return fail(rc);
	for (size_t i = 0; i < c->nstdin_commands; i++) {
		const char *f = c->stdin_filenames[i] + strspn(c->stdin_filenames[i], "/");
		char label[512];
		snprintf(label, sizeof(label), "--stdin-filename %s", c->stdin_filenames[i]);
		if (*f && (rc = cf_sources_check_dump(label, f, o.paths, o.npaths, o.excludes, o.nexcludes)))
			return fail(rc);
	}
	/* a real run writes (--no-lock does not apply); a dry run writes
	 * nothing, not even a lock (as restic's) */
	c->lock_needed = !c->dry_run;
	if ((rc = open_repo(c, &r, c->dry_run ? 0 : 1, true)))
		return fail(rc);
	/* databases are opened after the repository: a wrong password must not
	 * cost a dump, and the consistent snapshot starts as late as possible */
	struct cf_sources src = CF_SOURCES_INIT;
	struct cf_snapshot desc; /* only its sources: what the streams are */
	memset(&desc, 0, sizeof(desc));
	for (size_t i = 0, from = src.n; i < c->nmariadb && !rc; i++, from = src.n)
		if (!(rc = cf_sources_add_mariadb(&src, c->mariadb[i], c->mariadb_lock, c->mariadb_users)))
			rc = cf_sources_describe(&desc, &src, from, CF_SOURCE_MARIADB, c->mariadb[i]);
	for (size_t i = 0, from = src.n; i < c->npostgres && !rc; i++, from = src.n)
		if (!(rc = cf_sources_add_postgres(&src, c->postgres[i])))
			rc = cf_sources_describe(&desc, &src, from, CF_SOURCE_POSTGRES, c->postgres[i]);
	for (size_t i = 0, from = src.n; i < c->nsqlite && !rc; i++, from = src.n)
		if (!(rc = cf_sources_add_sqlite(&src, c->sqlite[i], NULL)))
			rc = cf_sources_describe(&desc, &src, from, CF_SOURCE_SQLITE, NULL);
	for (size_t i = 0, from = src.n; i < c->nstdin_commands && !rc; i++, from = src.n)
		if (!(rc = cf_sources_add_command(&src, c->stdin_commands[i], c->stdin_filenames[i])))
			rc = cf_sources_describe(&desc, &src, from, CF_SOURCE_COMMAND, NULL);
	if (!rc)
		rc = cf_sources_check(&src, o.paths, o.npaths, o.excludes, o.nexcludes);
	if (rc) {
		cf_snapshot_release(&desc);
		cf_sources_release(&src);
		cf_repo_free(r);
		return fail(rc);
	}
	o.streams = src.streams;
	o.nstreams = src.n;
	o.sources = desc.sources;
	o.nsources = desc.nsources;
	rc = cf_backup_run(r, &o, &snap);
	cf_sources_release(&src);
	cf_snapshot_release(&desc);
	if (rc == CF_OK || rc == CF_EPARTIAL) {
		if (!c->quiet)
			print_summary(&snap, c->json, c->dry_run);
		if (rc == CF_EPARTIAL)
			fprintf(stderr, "coffer: warning: %llu source files could not be read "
				"(named above); %s without them\n",
				(unsigned long long)snap.summary.files_unreadable,
				c->dry_run ? "a real backup would save the snapshot" : "the snapshot was saved");
		cf_snapshot_release(&snap);
		cf_repo_free(r);
		return exit_code(rc);
	}
	cf_repo_free(r);
	return fail(rc);
}

