/*
 * sqlite_pitr.h - point-in-time restore of a replicated SQLite database
 * (sources/replicate.h writes what this reads; doc/databases.md).
 *
 * The generation used is the newest whose base copy was taken at or before
 * the time asked for.  Its base is written out of its snapshot into a temp
 * file next to the target, then the transactions of its segments are
 * applied in order (each frame's page written at (pgno - 1) * page size,
 * the file cut to the transaction's database size) up to the last one seen
 * committed at or before that time, never part of one.  The result must pass
 * PRAGMA integrity_check; then it is renamed to the target.
 */
#ifndef CF_SQLITE_PITR_H
#define CF_SQLITE_PITR_H

#include <stdint.h>
#include "repo/repo.h"

struct cf_pitr_result {
	char gen[33];
	int64_t base_ns;        /* the base copy's time */
	int64_t state_ns;       /* the time of the last transaction applied (base_ns when none) */
	uint64_t ntx;           /* transactions applied */
	uint64_t segments;      /* segments read */
};

/* Restore the database replicated from abspath as of at_ns (INT64_MAX:
 * the latest) into target, which must not exist.  r's index is loaded.
 * CF_ENOENT when nothing was replicated from abspath or nothing at or
 * before at_ns (the message says what there is); CF_EEXIST for an existing
 * target; CF_ECORRUPT for a damaged segment or a result failing the
 * integrity check (no target is written then). */
int cf_sqlite_pitr(struct cf_repo *r, const char *abspath, int64_t at_ns, const char *target,
		   struct cf_pitr_result *res);

#endif
