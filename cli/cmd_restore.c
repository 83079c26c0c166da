#include "cli.h"
#include "../restore/db_restore.h"
#include "../agent/backup.h"
#include "../restore/restore.h"
#include "../repo/tree.h"
#include "../crypto/crypto.h"
#include "../common/error.h"

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
	if ((rc = open_repo(c, &r, 0, true)))
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

int cmd_restore(struct cli *c)
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
	if (c->nmariadb)
		return restore_databases(c);
	if (c->ndatabases || c->nrenames)
		return fail(cf_err(CF_EINVAL, "--database and --rename go with --mariadb URL"));
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

