/* cmd_restore_pg.c - restore SNAPSHOT --postgres URL [--database DB]... [--rename OLD=NEW]... */
#include "cli/cli.h"
#include "restore/pg_restore.h"
#include "sources/postgres.h"
#include "crypto/crypto.h"
#include "common/error.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

int cmd_restore_postgres(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	struct cf_db_restore_opts o = { c->postgres[0], c->databases, c->ndatabases, c->renames, c->nrenames, 0 };
	size_t loaded = 0;
	int rc;

	memset(&s, 0, sizeof(s));
	if (c->npostgres > 1)
		return fail(cf_err(CF_EINVAL, "restore: give one --postgres server to load into"));
	if (c->nmariadb)
		return fail(cf_err(CF_EINVAL, "restore: --mariadb and --postgres load into one server each: "
				   "run restore once per server"));
	if (c->target || c->nincludes || c->npath_maps)
		return fail(cf_err(CF_EINVAL, "restore: --postgres loads databases; --target, --include and "
				   "--path-map restore files (run restore once for each)"));
	if ((rc = cf_pgurl_check(c->postgres[0])) || (rc = open_repo(c, &r, 1, true)))
		return fail(rc);
	if (!(rc = pick_snapshot(c, r, c->args[0], &s))) {
		rc = cf_restore_postgres(r, &s, &o, &loaded);
		if (!c->quiet && loaded) {
			char hex[CF_ID_HEX];
			cf_hex(s.id, CF_ID_LEN, hex);
			printf("loaded %zu PostgreSQL database%s from snapshot %.8s\n", loaded,
			       loaded == 1 ? "" : "s", hex);
		}
	}
	cf_snapshot_release(&s);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}
