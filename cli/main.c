/*
 * main.c - the coffer command line: a thin layer over libcoffer.
 *
 * Exit codes (as restic's): 0 ok; 1 error; 3 snapshot written but some
 * sources could not be read; 10 no repository; 11 lock failed; 12 wrong
 * password; 130 interrupted.
 */
#include "cli.h"
#include "../agent/backup.h"
#include "../restore/restore.h"
#include "../repo/tree.h"
#include "../crypto/crypto.h"
#include "../common/error.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_PARTIAL = 3, EXIT_NOREPO = 10, EXIT_LOCKED = 11,
       EXIT_BADPASS = 12, EXIT_INTR = 130 };

static const char usage_text[] =
"usage: coffer [-r REPOSITORY] COMMAND [OPTIONS] [ARGS]\n"
"\n"
"Commands:\n"
"  init                        create a repository (--chunk-size MIN,AVG,MAX in KiB, --compression N)\n"
"  backup PATH...              back up files and directories into a new snapshot\n"
"  snapshots                   list snapshots (--json for restic-compatible JSON)\n"
"  ls SNAPSHOT [PATH]          list the files of a snapshot\n"
"  restore SNAPSHOT --target DIR [--include PATH]...\n"
"                              restore a snapshot (or parts) into DIR\n"
"  check [--read-data]         verify the repository (and with --read-data every byte)\n"
"  key list|add|remove ID|passwd\n"
"                              manage the passwords that open the repository\n"
"  unlock [--remove-all]       remove stale locks\n"
"  version                     print the version\n"
"\n"
"SNAPSHOT is an id prefix or 'latest' (filtered by --host, --tag, --path).\n"
"\n"
"Global options:\n"
"  -r, --repo LOCATION         repository: a directory, local:DIR, s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]\n"
"                              or s3://BUCKET[/PREFIX] (default: $COFFER_REPOSITORY)\n"
"  --password-file FILE        read the password from FILE (default: $COFFER_PASSWORD_FILE,\n"
"                              then $COFFER_PASSWORD, then a prompt on the terminal)\n"
"  --json                      machine-readable output\n"
"  -v, --verbose               more output (progress is shown on a terminal)\n"
"  -q, --quiet                 only errors\n"
"  --retry-lock SECONDS        wait this long for a lock held by another process\n"
"  --cacert FILE               extra CA certificate for TLS (S3)\n"
"  --s3-connections N          parallel S3 requests (default 8)\n"
"\n"
"backup options:\n"
"  --host NAME                 hostname recorded in the snapshot (default: this host)\n"
"  --tag TAG                   add a tag (repeatable)\n"
"  --time 'YYYY-MM-DD HH:MM:SS'  snapshot time (default: now)\n"
"  --exclude PATTERN           skip paths or names matching a shell pattern (repeatable)\n"
"  --one-file-system           do not cross file system boundaries\n"
"  --force                     read every file even if unchanged since the parent snapshot\n"
"  --threads N                 worker threads (default: number of CPUs)\n"
"\n"
"snapshot filters: --host NAME, --tag TAG, --path PATH (repeatable)\n"
"\n"
"init/key options: --kdf-passes N, --kdf-memory KIB (Argon2id cost; defaults 3 and 65536),\n"
"  --new-password-file FILE (key add/passwd)\n"
"\n"
"Exit codes: 0 ok, 1 error, 3 some source files unreadable (snapshot written),\n"
"10 no repository, 11 lock failed, 12 wrong password, 130 interrupted.\n";

static int exit_code(int rc)
{
	switch (rc) {
	case CF_OK: return EXIT_OK;
	case CF_EPARTIAL: return EXIT_PARTIAL;
	case CF_ENOREPO: return EXIT_NOREPO;
	case CF_ELOCKED: return EXIT_LOCKED;
	case CF_EBADPASS: return EXIT_BADPASS;
	case CF_EINTR: return EXIT_INTR;
	default: return EXIT_ERR;
	}
}

static int fail(int rc)
{
	fprintf(stderr, "coffer: %s\n", cf_errmsg(rc));
	return exit_code(rc);
}

static void on_signal(int sig)
{
	(void)sig;
	if (cf_interrupted)
		_exit(EXIT_INTR); /* second signal: stop now */
	cf_interrupted = 1;
}

/* ---------- opening ---------- */

static int open_backend(struct cli *c, struct cf_backend **be)
{
	struct cf_backend_opts bo = { c->connections, c->cacert, 0 };
	const char *loc = c->repo ? c->repo : getenv("COFFER_REPOSITORY");
	if (!loc || !*loc)
		return cf_err(CF_EINVAL, "no repository given: use -r LOCATION or set COFFER_REPOSITORY");
	return cf_backend_open(loc, &bo, be);
}

static int open_repo(struct cli *c, struct cf_repo **r, int lock /* 0 none, 1 shared, 2 exclusive */,
		     bool index)
{
	struct cf_backend *be = NULL;
	char *pw = NULL;
	int rc;
	*r = NULL;
	if ((rc = open_backend(c, &be)))
		return rc;
	if ((rc = cli_password(c, false, &pw))) {
		cf_backend_free(be);
		return rc;
	}
	rc = cf_repo_open(be, pw, strlen(pw), r);
	cli_password_free(pw);
	if (rc)
		return rc;
	if (lock && (rc = cf_repo_lock(*r, lock == 2, c->retry_lock)))
		goto fail;
	if (index && (rc = cf_repo_load_index(*r)))
		goto fail;
	return CF_OK;
fail:
	cf_repo_free(*r);
	*r = NULL;
	return rc;
}

static void human(uint64_t b, char *out, size_t n)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(out, n, i ? "%.2f %s" : "%.0f %s", v, u[i]);
}

static void local_time(int64_t ns, char *out, size_t n)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

/* ---------- commands ---------- */

static int parse_chunk_size(const char *s, struct cf_chunker_params *p)
{
	unsigned long a, b, m;
	if (sscanf(s, "%lu,%lu,%lu", &a, &b, &m) != 3)
		return cf_err(CF_EINVAL, "--chunk-size wants MIN,AVG,MAX in KiB, e.g. 512,1024,8192");
	p->min = (uint32_t)(a * 1024);
	p->avg = (uint32_t)(b * 1024);
	p->max = (uint32_t)(m * 1024);
	return cf_chunker_params_check(p);
}

static int cmd_init(struct cli *c)
{
	struct cf_backend *be = NULL;
	struct cf_repo *r = NULL;
	struct cf_repo_init_opts o = { .compression = c->compression };
	char *pw = NULL;
	int rc;

	if (c->chunk_size && (rc = parse_chunk_size(c->chunk_size, &o.chunker)))
		return fail(rc);
	o.kdf_opslimit = (uint64_t)c->kdf_ops;
	o.kdf_memlimit = (uint64_t)c->kdf_mem_kib * 1024;
	if ((rc = open_backend(c, &be)))
		return fail(rc);
	if ((rc = cli_password(c, true, &pw))) {
		cf_backend_free(be);
		return fail(rc);
	}
	rc = cf_repo_init(be, pw, strlen(pw), &o, &r);
	cli_password_free(pw);
	if (rc)
		return fail(rc);
	if (!c->quiet) {
		char id[CF_ID_HEX];
		cf_hex(cf_repo_config(r)->id, CF_ID_LEN, id);
		printf("created coffer repository %.10s at %s\n", id, cf_repo_backend(r)->location);
		printf("Keep the password safe: without it the data cannot be restored.\n");
	}
	cf_repo_free(r);
	return EXIT_OK;
}

static void print_summary(const struct cf_snapshot *s, bool json)
{
	const struct cf_snapshot_summary *m = &s->summary;
	char hex[CF_ID_HEX];
	cf_hex(s->id, CF_ID_LEN, hex);
	if (json) {
		json_t *j = cf_snapshot_to_json(s);
		if (j) {
			json_object_set_new(j, "message_type", json_string("summary"));
			json_object_set_new(j, "snapshot_id", json_string(hex));
			char *t = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
			if (t)
				puts(t);
			free(t);
			json_decref(j);
		}
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
	printf("Added to the repository: %s (%s stored)\n", a, b);
	printf("processed %llu files, %s in %.1fs\n", (unsigned long long)m->total_files_processed,
	       tot, secs);
	printf("snapshot %.8s saved\n", hex);
}

static int cmd_backup(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot snap;
	struct cf_backup_opts o;
	int rc;

	memset(&snap, 0, sizeof(snap));
	memset(&o, 0, sizeof(o));
	if (c->nargs < 1)
		return fail(cf_err(CF_EINVAL, "backup: give at least one path to back up"));
	o.paths = (const char *const *)c->args;
	o.npaths = (size_t)c->nargs;
	o.host = c->host;
	o.tags = c->tags;
	o.ntags = c->ntags;
	o.excludes = c->excludes;
	o.nexcludes = c->nexcludes;
	o.one_file_system = c->one_file_system;
	o.threads = c->threads;
	o.no_parent = c->force;
	o.progress = !c->quiet && !c->json && isatty(2);
	if (c->time && (rc = cf_parse_time(c->time, &o.time_ns)))
		return fail(rc);
	for (size_t i = 0; i < o.npaths; i++)
		if (access(o.paths[i], F_OK) != 0)
			return fail(cf_err(CF_EINVAL, "backup: %s does not exist", o.paths[i]));
	if ((rc = open_repo(c, &r, 1, true)))
		return fail(rc);
	rc = cf_backup_run(r, &o, &snap);
	if (rc == CF_OK || rc == CF_EPARTIAL) {
		if (!c->quiet)
			print_summary(&snap, c->json);
		if (rc == CF_EPARTIAL)
			fprintf(stderr, "coffer: warning: %llu source files could not be read "
				"(named above); the snapshot was saved without them\n",
				(unsigned long long)snap.summary.files_unreadable);
		cf_snapshot_release(&snap);
		cf_repo_free(r);
		return exit_code(rc);
	}
	cf_repo_free(r);
	return fail(rc);
}

static void build_filter(struct cli *c, struct cf_snapshot_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->host = c->host;
	f->tags = c->tags;
	f->ntags = c->ntags;
	f->paths = c->paths;
	f->npaths = c->npaths;
}

static int cmd_snapshots(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot *s = NULL;
	struct cf_snapshot_filter f;
	size_t n = 0;
	int rc;

	if ((rc = open_repo(c, &r, 0, false)))
		return fail(rc);
	if ((rc = cf_repo_snapshots(r, &s, &n, NULL))) {
		cf_repo_free(r);
		return fail(rc);
	}
	build_filter(c, &f);
	if (c->json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			if (cf_snapshot_matches(&s[i], &f))
				json_array_append_new(arr, cf_snapshot_to_json(&s[i]));
		char *t = json_dumps(arr, JSON_PRESERVE_ORDER);
		if (t)
			puts(t);
		free(t);
		json_decref(arr);
	} else {
		size_t shown = 0;
		printf("%-8s  %-19s  %-16s  %-16s  %s\n", "ID", "Time", "Host", "Tags", "Paths");
		printf("--------------------------------------------------------------------------------\n");
		for (size_t i = 0; i < n; i++) {
			if (!cf_snapshot_matches(&s[i], &f))
				continue;
			char hex[CF_ID_HEX], t[32], tags[256] = "";
			cf_hex(s[i].id, CF_ID_LEN, hex);
			local_time(s[i].time_ns, t, sizeof(t));
			for (size_t k = 0; k < s[i].ntags; k++) {
				size_t l = strlen(tags);
				snprintf(tags + l, sizeof(tags) - l, "%s%s", k ? "," : "", s[i].tags[k]);
			}
			for (size_t k = 0; k < (s[i].npaths ? s[i].npaths : 1); k++)
				printf("%-8.8s  %-19s  %-16s  %-16s  %s\n", k ? "" : hex, k ? "" : t,
				       k ? "" : s[i].hostname, k ? "" : tags,
				       s[i].npaths ? s[i].paths[k] : "");
			shown++;
		}
		printf("--------------------------------------------------------------------------------\n");
		printf("%zu snapshots\n", shown);
	}
	cf_snapshots_free(s, n);
	cf_repo_free(r);
	return EXIT_OK;
}

/* Load the snapshot named by args[0] (latest / id prefix) with filters. */
static int pick_snapshot(struct cli *c, struct cf_repo *r, const char *spec, struct cf_snapshot *out)
{
	struct cf_snapshot *s = NULL;
	struct cf_snapshot_filter f;
	size_t n = 0;
	int rc = cf_repo_snapshots(r, &s, &n, NULL);
	if (rc)
		return rc;
	build_filter(c, &f);
	long i = cf_snapshot_pick(s, n, spec, &f);
	if (i < 0) {
		cf_snapshots_free(s, n);
		return CF_ENOENT;
	}
	*out = s[i];
	memset(&s[i], 0, sizeof(s[i]));
	cf_snapshots_free(s, n);
	return CF_OK;
}

static const char *type_name(int t)
{
	switch (t) {
	case CF_NODE_FILE: return "file";
	case CF_NODE_DIR: return "dir";
	case CF_NODE_SYMLINK: return "symlink";
	case CF_NODE_FIFO: return "fifo";
	case CF_NODE_CHARDEV: return "chardev";
	case CF_NODE_BLOCKDEV: return "dev";
	default: return "socket";
	}
}

static int ls_tree(struct cli *c, struct cf_repo *r, const uint8_t id[CF_ID_LEN], const char *prefix,
		   const char *only)
{
	struct cf_tree t = CF_TREE_INIT;
	int rc = cf_repo_load_tree(r, id, &t);
	if (rc)
		return rc;
	for (size_t i = 0; i < t.n && !rc; i++) {
		const struct cf_node *n = &t.nodes[i];
		char *p = NULL;
		if (asprintf(&p, "%s/%s", prefix, n->name) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		size_t pl = strlen(p), ol = only ? strlen(only) : 0;
		bool inside = !only || (pl >= ol && !strncmp(p, only, ol) && (p[ol] == 0 || p[ol] == '/'));
		bool above = only && !inside && !strncmp(only, p, pl) && only[pl] == '/';
		if (inside) {
			if (c->json) {
				char mt[64];
				cf_format_time(n->mtime_ns, mt, sizeof(mt));
				json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s}",
						      "name", n->name, "type", type_name(n->type), "path", p,
						      "uid", (json_int_t)n->uid, "gid", (json_int_t)n->gid,
						      "size", (json_int_t)n->size, "mode", (json_int_t)n->mode,
						      "mtime", mt, "struct_type", "node");
				char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
				if (s)
					puts(s);
				free(s);
				json_decref(j);
			} else {
				puts(p);
			}
		}
		if ((inside || above) && n->type == CF_NODE_DIR && n->has_subtree)
			rc = ls_tree(c, r, n->subtree, p, only);
		free(p);
	}
	cf_tree_release(&t);
	return rc;
}

static int cmd_ls(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	int rc;
	memset(&s, 0, sizeof(s));
	if (c->nargs < 1)
		return fail(cf_err(CF_EINVAL, "ls: which snapshot? (an id or 'latest')"));
	if ((rc = open_repo(c, &r, 0, true)))
		return fail(rc);
	if ((rc = pick_snapshot(c, r, c->args[0], &s)))
		goto out;
	if (c->json) {
		json_t *j = cf_snapshot_to_json(&s);
		json_object_set_new(j, "struct_type", json_string("snapshot"));
		char *t = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (t)
			puts(t);
		free(t);
		json_decref(j);
	}
	const char *only = c->nargs > 1 ? c->args[1] : NULL;
	char *o = NULL;
	if (only) {
		size_t l = strlen(only);
		while (l > 1 && only[l - 1] == '/')
			l--;
		o = strndup(only, l);
	}
	rc = ls_tree(c, r, s.tree, "", o);
	free(o);
out:
	cf_snapshot_release(&s);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

static int cmd_restore(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	struct cf_restore_stats st;
	struct cf_restore_opts o;
	int rc;

	memset(&s, 0, sizeof(s));
	memset(&o, 0, sizeof(o));
	if (c->nargs < 1)
		return fail(cf_err(CF_EINVAL, "restore: which snapshot? (an id or 'latest')"));
	if (!c->target)
		return fail(cf_err(CF_EINVAL, "restore: --target DIR is required"));
	o.target = c->target;
	o.includes = c->includes;
	o.nincludes = c->nincludes;
	o.threads = c->threads;
	o.progress = !c->quiet && isatty(2);
	if ((rc = open_repo(c, &r, 0, true)))
		return fail(rc);
	if ((rc = pick_snapshot(c, r, c->args[0], &s))) {
		cf_repo_free(r);
		return fail(rc);
	}
	rc = cf_restore_run(r, &s, &o, &st);
	if (!c->quiet && (rc == CF_OK || rc == CF_EPARTIAL)) {
		char b[32], hex[CF_ID_HEX];
		human(st.bytes, b, sizeof(b));
		cf_hex(s.id, CF_ID_LEN, hex);
		if (c->json)
			printf("{\"message_type\":\"summary\",\"snapshot_id\":\"%s\",\"files_restored\":%llu,"
			       "\"dirs_restored\":%llu,\"bytes_restored\":%llu,\"errors\":%llu}\n", hex,
			       (unsigned long long)st.files, (unsigned long long)st.dirs,
			       (unsigned long long)st.bytes, (unsigned long long)st.errors);
		else
			printf("restored snapshot %.8s to %s: %llu files, %llu directories, %s\n", hex,
			       c->target, (unsigned long long)st.files, (unsigned long long)st.dirs, b);
	}
	cf_snapshot_release(&s);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

static int cmd_check(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_check_stats st;
	int rc;
	memset(&st, 0, sizeof(st));
	if ((rc = open_repo(c, &r, 1, true)))
		return fail(rc);
	rc = cf_repo_check(r, c->read_data, &st);
	if (!c->quiet)
		printf("checked %llu snapshots, %llu trees, %llu packs%s: %s\n",
		       (unsigned long long)st.snapshots, (unsigned long long)st.trees,
		       (unsigned long long)st.packs, c->read_data ? " (all data read)" : "",
		       st.errors ? "PROBLEMS FOUND" : "no errors");
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

static int cmd_key(struct cli *c)
{
	struct cf_repo *r = NULL;
	int rc;
	const char *sub = c->nargs ? c->args[0] : "list";
	if ((rc = open_repo(c, &r, 0, false)))
		return fail(rc);
	if (!strcmp(sub, "list")) {
		struct cf_keyinfo *k = NULL;
		size_t n = 0;
		if (!(rc = cf_repo_keys(r, &k, &n))) {
			if (c->json) {
				json_t *a = json_array();
				for (size_t i = 0; i < n; i++)
					json_array_append_new(a, json_pack("{s:b, s:s, s:s, s:s, s:s}",
						"current", k[i].current, "id", k[i].name,
						"userName", k[i].user ? k[i].user : "",
						"hostName", k[i].host ? k[i].host : "",
						"created", k[i].created ? k[i].created : ""));
				char *t = json_dumps(a, 0);
				if (t)
					puts(t);
				free(t);
				json_decref(a);
			} else {
				printf(" %-10s %-16s %-24s %s\n", "ID", "User", "Host", "Created");
				for (size_t i = 0; i < n; i++)
					printf("%c%-10.8s %-16s %-24s %s\n", k[i].current ? '*' : ' ', k[i].name,
					       k[i].user ? k[i].user : "", k[i].host ? k[i].host : "",
					       k[i].created ? k[i].created : "");
			}
		}
		cf_keyinfo_free(k, n);
	} else if (!strcmp(sub, "add") || !strcmp(sub, "passwd")) {
		char *pw = NULL, name[CF_ID_HEX];
		if (!(rc = cli_new_password(c, &pw))) {
			rc = cf_repo_key_add(r, pw, strlen(pw), (uint64_t)c->kdf_ops,
					     (uint64_t)c->kdf_mem_kib * 1024, name);
			cli_password_free(pw);
		}
		if (!rc && !strcmp(sub, "passwd")) {
			char old[CF_ID_HEX];
			snprintf(old, sizeof(old), "%s", cf_repo_key_name(r));
			char path[128];
			snprintf(path, sizeof(path), "keys/%s", old);
			/* the new key is written (and synced) before the old one goes */
			rc = cf_be_remove(cf_repo_backend(r), path);
			if (!rc && !c->quiet)
				printf("password changed: key %.8s replaces %.8s\n", name, old);
		} else if (!rc && !c->quiet) {
			printf("added key %.8s\n", name);
		}
	} else if (!strcmp(sub, "remove")) {
		if (c->nargs < 2)
			rc = cf_err(CF_EINVAL, "key remove: which key? (an id prefix from 'key list')");
		else if (!(rc = cf_repo_key_remove(r, c->args[1])) && !c->quiet)
			printf("removed key %s\n", c->args[1]);
	} else {
		rc = cf_err(CF_EINVAL, "key: unknown subcommand '%s' (list, add, remove, passwd)", sub);
	}
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

static int cmd_unlock(struct cli *c)
{
	struct cf_repo *r = NULL;
	int removed = 0, rc;
	if ((rc = open_repo(c, &r, 0, false)))
		return fail(rc);
	rc = cf_repo_unlock_stale(r, c->remove_all, &removed);
	if (!rc && !c->quiet)
		printf("removed %d %slocks\n", removed, c->remove_all ? "" : "stale ");
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

/* ---------- argument parsing ---------- */

enum {
	O_PWFILE = 256, O_NEWPWFILE, O_JSON, O_RETRY, O_CACERT, O_CONN, O_HOST, O_TAG, O_TIME,
	O_EXCLUDE, O_OFS, O_FORCE, O_THREADS, O_PATH, O_TARGET, O_INCLUDE, O_READDATA, O_CHUNK,
	O_COMP, O_KDFOPS, O_KDFMEM, O_REMOVEALL, O_HELP, O_VERSION,
};

static const struct option longopts[] = {
	{ "repo", required_argument, NULL, 'r' },
	{ "password-file", required_argument, NULL, O_PWFILE },
	{ "new-password-file", required_argument, NULL, O_NEWPWFILE },
	{ "json", no_argument, NULL, O_JSON },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "retry-lock", required_argument, NULL, O_RETRY },
	{ "cacert", required_argument, NULL, O_CACERT },
	{ "s3-connections", required_argument, NULL, O_CONN },
	{ "host", required_argument, NULL, O_HOST },
	{ "tag", required_argument, NULL, O_TAG },
	{ "time", required_argument, NULL, O_TIME },
	{ "exclude", required_argument, NULL, O_EXCLUDE },
	{ "one-file-system", no_argument, NULL, O_OFS },
	{ "force", no_argument, NULL, O_FORCE },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "path", required_argument, NULL, O_PATH },
	{ "target", required_argument, NULL, O_TARGET },
	{ "include", required_argument, NULL, O_INCLUDE },
	{ "read-data", no_argument, NULL, O_READDATA },
	{ "chunk-size", required_argument, NULL, O_CHUNK },
	{ "compression", required_argument, NULL, O_COMP },
	{ "kdf-passes", required_argument, NULL, O_KDFOPS },
	{ "kdf-memory", required_argument, NULL, O_KDFMEM },
	{ "remove-all", no_argument, NULL, O_REMOVEALL },
	{ "help", no_argument, NULL, O_HELP },
	{ "version", no_argument, NULL, O_VERSION },
	{ NULL, 0, NULL, 0 },
};

static int add_multi(const char **arr, size_t *n, const char *v, const char *opt)
{
	if (*n >= MAXV)
		return cf_err(CF_EINVAL, "too many %s options", opt);
	arr[(*n)++] = v;
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

	memset(&c, 0, sizeof(c));
	c.compression = -1;
	while ((opt = getopt_long(argc, argv, "r:vqh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r': c.repo = optarg; break;
		case O_PWFILE: c.password_file = optarg; break;
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
		case O_HOST: c.host = optarg; break;
		case O_TAG: rc = add_multi(c.tags, &c.ntags, optarg, "--tag"); break;
		case O_TIME: c.time = optarg; break;
		case O_EXCLUDE: rc = add_multi(c.excludes, &c.nexcludes, optarg, "--exclude"); break;
		case O_OFS: c.one_file_system = true; break;
		case O_FORCE: c.force = true; break;
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
		case O_KDFOPS: rc = parse_long(optarg, "--kdf-passes", 1, 100, &c.kdf_ops); break;
		case O_KDFMEM: rc = parse_long(optarg, "--kdf-memory", 8, 4L << 20, &c.kdf_mem_kib); break;
		case O_REMOVEALL: c.remove_all = true; break;
		case 'h':
		case O_HELP: fputs(usage_text, stdout); return EXIT_OK;
		case O_VERSION: printf("coffer %s\n", COFFER_VERSION); return EXIT_OK;
		default:
			fprintf(stderr, "coffer: see 'coffer --help'\n");
			return EXIT_ERR;
		}
		if (rc)
			return fail(rc);
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return EXIT_ERR;
	}
	const char *cmd = argv[optind];
	c.args = argv + optind + 1;
	c.nargs = argc - optind - 1;
	cf_log_level = c.quiet ? 0 : c.verbose ? 2 : 1;

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
	if (!strcmp(cmd, "restore"))
		return cmd_restore(&c);
	if (!strcmp(cmd, "check"))
		return cmd_check(&c);
	if (!strcmp(cmd, "key"))
		return cmd_key(&c);
	if (!strcmp(cmd, "unlock"))
		return cmd_unlock(&c);
	if (!strcmp(cmd, "version")) {
		printf("coffer %s\n", COFFER_VERSION);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	fprintf(stderr, "coffer: unknown command '%s' (see 'coffer --help')\n", cmd);
	return EXIT_ERR;
}
