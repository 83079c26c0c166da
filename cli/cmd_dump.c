/* cmd_dump.c - `coffer dump SNAPSHOT [PATH] [--archive tar|zip]`. */
#include "cli/cli.h"
#include "restore/dump.h"
#include "common/error.h"

#include <stdio.h>
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
	if ((rc = open_repo(c, &r, 1, true)))
		return fail(rc);
	if (!(rc = pick_snapshot(c, r, c->args[0], &s)))
		rc = cf_dump(r, &s, c->nargs > 1 ? c->args[1] : NULL, fmt, 1);
	cf_snapshot_release(&s);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}
