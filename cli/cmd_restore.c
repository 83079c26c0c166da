#include "cli/cli.h"
#include "restore/db_restore.h"
#include "engine/backup.h"
#include "restore/restore.h"
#include "repo/tree.h"
#include "crypto/crypto.h"
#include "common/error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* restore SNAPSHOT --mariadb URL [--database DB]... [--rename OLD=NEW]... */
static int restore_databases(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	struct cf_db_restore_opts o = { c->mariadb[0], c->databases, c->ndatabases,
					c->renames, c->nrenames };
	size_t loaded = 0;
	int rc;

	memset(&s, 0, sizeof(s));
	if (c->nmariadb > 1)
		return fail(cf_err(CF_EINVAL, "restore: give one --mariadb server to load into"));
	if ((rc = open_repo(c, &r, 1, true)))
		return fail(rc);
	if (!(rc = pick_snapshot(c, r, c->args[0], &s))) {
		rc = cf_restore_mariadb(r, &s, &o, &loaded);
		if (!c->quiet && loaded) {
			char hex[CF_ID_HEX];
			cf_hex(s.id, CF_ID_LEN, hex);
			printf("loaded %zu database%s from snapshot %.8s\n", loaded, loaded == 1 ? "" : "s", hex);
		}
	}
	cf_snapshot_release(&s);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

/* "SNAP_PATH=DIR" (split at the first '=') */
static int parse_maps(struct cli *c, struct cf_restore_map *maps)
{
	for (size_t i = 0; i < c->npath_maps; i++) {
		const char *eq = strchr(c->path_maps[i], '=');
		if (!eq || eq == c->path_maps[i] || !eq[1])
			return cf_err(CF_EINVAL, "--path-map wants SNAPSHOT_PATH=DIR, not '%s'", c->path_maps[i]);
		maps[i].snap_path = strndup(c->path_maps[i], (size_t)(eq - c->path_maps[i]));
		maps[i].dir = eq + 1;
		if (!maps[i].snap_path)
			return cf_err(CF_ENOMEM, "out of memory");
	}
	return CF_OK;
}

/* Every --include must name something the snapshot has: a typo would
 * otherwise restore nothing and exit 0.  Looked up before anything is
 * written (the --path-map sources are checked likewise by cf_restore_run's
 * setup, also before anything is made). */
static int check_includes(struct cli *c, struct cf_repo *r, const struct cf_snapshot *s)
{
	for (size_t i = 0; i < c->nincludes; i++) {
		const char *p = c->includes[i];
		struct cf_node n;
		if (p[0] != '/')
			return cf_err(CF_EINVAL, "--include %s: give an absolute snapshot path", p);
		if (!p[strspn(p, "/")])
			continue; /* "/": everything */
		int rc = cf_tree_find_path(r, s->tree, p, &n);
		if (rc == CF_ENOENT) {
			char hex[CF_ID_HEX];
			cf_hex(s->id, CF_ID_LEN, hex);
			return cf_err(CF_ENOENT, "--include %s matches nothing in snapshot %.8s; nothing was "
				      "restored (see 'coffer ls %.8s')", p, hex, hex);
		}
		if (rc)
			return rc;
		cf_node_release(&n);
	}
	return CF_OK;
}

static void print_summary(struct cli *c, const struct cf_snapshot *s, const struct cf_restore_stats *st)
{
	char hex[CF_ID_HEX], w[32], k[32], d[32];
	cf_hex(s->id, CF_ID_LEN, hex);
	human(st->bytes_written, w, sizeof(w));
	human(st->bytes_kept, k, sizeof(k));
	human(st->bytes_deleted, d, sizeof(d));
	if (c->json) {
		printf("{\"message_type\":\"summary\",\"snapshot_id\":\"%s\",\"dry_run\":%s,"
		       "\"files_restored\":%llu,\"files_created\":%llu,\"files_replaced\":%llu,"
		       "\"files_linked\":%llu,\"files_skipped\":%llu,\"dirs_restored\":%llu,"
		       "\"bytes_restored\":%llu,\"bytes_skipped\":%llu,\"files_deleted\":%llu,"
		       "\"bytes_deleted\":%llu,\"files_verified\":%llu,\"errors\":%llu}\n", hex,
		       c->dry_run ? "true" : "false",
		       (unsigned long long)(st->files_created + st->files_replaced + st->files_linked),
		       (unsigned long long)st->files_created, (unsigned long long)st->files_replaced,
		       (unsigned long long)st->files_linked, (unsigned long long)st->files_kept,
		       (unsigned long long)st->dirs, (unsigned long long)st->bytes_written,
		       (unsigned long long)st->bytes_kept, (unsigned long long)st->deleted,
		       (unsigned long long)st->bytes_deleted, (unsigned long long)st->verified,
		       (unsigned long long)st->errors);
		return;
	}
	printf("%s snapshot %.8s: %llu files written (%llu new, %llu replaced, %llu links), %s; "
	       "%llu unchanged files skipped, %s; %llu entries deleted, %s; %llu directories; "
	       "%llu errors\n", c->dry_run ? "dry run of" : "restored", hex,
	       (unsigned long long)(st->files_created + st->files_replaced + st->files_linked),
	       (unsigned long long)st->files_created, (unsigned long long)st->files_replaced,
	       (unsigned long long)st->files_linked, w, (unsigned long long)st->files_kept, k,
	       (unsigned long long)st->deleted, d, (unsigned long long)st->dirs,
	       (unsigned long long)st->errors);
	if (c->verify && !c->dry_run)
		printf("verified %llu files against the snapshot\n", (unsigned long long)st->verified);
}

int cmd_restore(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	struct cf_restore_stats st;
	struct cf_restore_opts o;
	struct cf_restore_map maps[MAXV];
	int rc;

	memset(&s, 0, sizeof(s));
	memset(&o, 0, sizeof(o));
	memset(&st, 0, sizeof(st));
	memset(maps, 0, sizeof(maps));
	if (c->nargs < 1)
		return fail(cf_err(CF_EINVAL, "restore: which snapshot? (an id or 'latest')"));
	if (c->nmariadb)
		return restore_databases(c);
	if (c->ndatabases || c->nrenames)
		return fail(cf_err(CF_EINVAL, "--database and --rename go with --mariadb URL"));
	if (!c->target && !c->npath_maps)
		return fail(cf_err(CF_EINVAL, "restore: --target DIR (or --path-map) is required"));
	if (c->overwrite && (rc = cf_restore_parse_overwrite(c->overwrite, &o.overwrite)))
		return fail(rc);
	if ((rc = parse_maps(c, maps)))
		goto out;
	o.target = c->target;
	o.includes = c->includes;
	o.nincludes = c->nincludes;
	o.excludes = c->excludes;
	o.nexcludes = c->nexcludes;
	o.maps = maps;
	o.nmaps = c->npath_maps;
	o.delete_extra = c->restore_delete;
	o.dry_run = c->dry_run;
	o.verify = c->verify;
	o.threads = c->threads;
	o.progress = !c->quiet && !c->json && isatty(2);
	/* a dry run is a listing; otherwise -v lists what is done */
	o.listing = c->json ? NULL : c->dry_run || c->verbose ? stdout : NULL;
	if ((rc = open_repo(c, &r, 1, true)))
		goto out;
	if ((rc = pick_snapshot(c, r, c->args[0], &s)))
		goto out;
	if ((rc = check_includes(c, r, &s)))
		goto out;
	rc = cf_restore_run(r, &s, &o, &st);
	if (!c->quiet && (rc == CF_OK || rc == CF_EPARTIAL))
		print_summary(c, &s, &st);
	if (st.nfailed) {
		fflush(stdout);
		fprintf(stderr, "coffer: could not restore %zu path%s:\n", st.nfailed, st.nfailed == 1 ? "" : "s");
		for (size_t i = 0; i < st.nfailed; i++)
			fprintf(stderr, "  %s\n", st.failed[i]);
	}
out:
	for (size_t i = 0; i < c->npath_maps; i++)
		free((char *)maps[i].snap_path);
	cf_restore_stats_release(&st);
	cf_snapshot_release(&s);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}
