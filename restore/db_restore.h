/*
 * db_restore.h - loading a snapshot's database dumps back into a server.
 *
 * A snapshot holds MariaDB dumps as files under /mariadb (see
 * agent/sources.h).  Each chosen dump is streamed blob by blob from the
 * repository into the loader (restore/mariadb_load.h): nothing is staged on
 * disk, and memory does not grow with the dump's size.
 */
#ifndef CF_DB_RESTORE_H
#define CF_DB_RESTORE_H

#include <stddef.h>
#include <stdint.h>
#include "../repo/repo.h"

struct cf_db_restore_opts {
	const char *url;                          /* mariadb://... */
	const char *const *databases; size_t ndatabases; /* only these (all when none) */
	const char *const *renames; size_t nrenames;     /* "OLD=NEW" */
};

/* Load the dumps of snapshot s into the server.  Stops at the first
 * database that fails (its name and the failing line in the message); the
 * ones loaded before it stay loaded.  *loaded counts databases loaded. */
int cf_restore_mariadb(struct cf_repo *r, const struct cf_snapshot *s,
		       const struct cf_db_restore_opts *o, size_t *loaded);

#endif
