/*
 * db_restore.h - loading a snapshot's database dumps back into a server.
 *
 * A snapshot holds MariaDB dumps as files under /mariadb (see
 * sources/sources.h): mariadb/<db>.sql for the first server of a backup,
 * mariadb/<host>-<n>/<db>.sql for later ones.  A dump is named by its
 * database ("shop") or, to tell two of the same name apart, by
 * "<host>-<n>/shop".  Which dump loads into which database is decided and
 * checked (every --database found, no two dumps into one database) before
 * anything is loaded (and every --rename's OLD found).  Each chosen dump is then streamed blob by blob from
 * the repository into the loader (sources/mariadb_load.h): nothing is staged
 * on disk, and memory does not grow with the dump's size.
 */
#ifndef CF_DB_RESTORE_H
#define CF_DB_RESTORE_H

#include <stddef.h>
#include <stdint.h>
#include "repo/repo.h"
#include "sources/mariadb_load.h"

struct cf_db_restore_opts {
	const char *url;                          /* mariadb://... */
	const char *const *databases; size_t ndatabases; /* only these (all when none);
							  * "db" or "host-n/db" */
	const char *const *renames; size_t nrenames;     /* "OLD=NEW", OLD as above */
	unsigned load_flags;  /* CF_MARIADB_USERS_* of sources/mariadb_load.h (0: a dump's
			       * accounts are made when missing, existing ones keep their
			       * passwords) */
};

/* Load the dumps of snapshot s into the server.  CF_ENOENT when the snapshot
 * has no dumps or a --database or a --rename's OLD names none (the message
 * lists the snapshot's databases); CF_EINVAL for a malformed --rename, one
 * whose OLD is not among the --database ones, or two dumps bound for one
 * database (nothing loaded then).
 * A database that fails to load (its name and the failing line in the
 * message) is left as it was and does not stop the others: with several
 * chosen each failure is warned about and the result is CF_EPARTIAL naming
 * them all (exit 3), with one it is that database's own error.  *loaded
 * counts databases loaded. */
int cf_restore_mariadb(struct cf_repo *r, const struct cf_snapshot *s,
		       const struct cf_db_restore_opts *o, size_t *loaded);

#endif
