/* cmd_dump.c - `coffer dump SNAPSHOT [PATH] [--archive tar|zip]`. */
#include "cli/cli.h"
#include "restore/dump.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_dump(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	enum cf_dump_format fmt = CF_DUMP_RAW;
	int rc;

	memset(&s, 0, sizeof(s));
	if (c->nargs < 1 || c->nargs > 2)
		return fail(cf_err(CF_EINVAL, "dump: give a snapshot (an id or 'latest') and optionally a path"));
	if (c->archive && (rc = cf_dump_parse_format(c->archive, &fmt)))
		return fail(rc);
	if (fmt != CF_DUMP_RAW && isatty(1))
		return fail(cf_err(CF_EINVAL, "dump: standard output is a terminal: redirect it to a file or a pipe"));
	/* SNAPSHOT:FOLDER (restic's): PATH is within FOLDER */
	char *spec = NULL, *sub = NULL, *path = NULL;
	const char *rel = c->nargs > 1 ? c->args[1] : NULL;
	if ((rc = split_snapshot_arg(c->args[0], &spec, &sub)))
		return fail(rc);
	if (sub && rel && asprintf(&path, "%s%s%s", sub, rel[0] == '/' ? "" : "/", rel) < 0)
		path = NULL, rc = cf_err(CF_ENOMEM, "out of memory");
	if (!rc && (rc = open_repo(c, &r, 1, true)) == CF_OK && !(rc = pick_snapshot(c, r, spec, &s)) &&
	    !(rc = sub ? check_subfolder(r, &s, sub) : CF_OK))
		rc = cf_dump(r, &s, path ? path : sub ? sub : rel, fmt, 1);
	cf_snapshot_release(&s);
	cf_repo_free(r);
	free(spec);
	free(sub);
	free(path);
	return rc ? fail(rc) : EXIT_OK;
}
