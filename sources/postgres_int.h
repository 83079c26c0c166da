/* postgres_int.h - what postgres.c and postgres_load.c share: running the
 * PostgreSQL client programs. */
#ifndef CF_POSTGRES_INT_H
#define CF_POSTGRES_INT_H

#include <stdio.h>
#include <sys/types.h>

#include "sources/postgres.h"

/* Start prog (looked up in PATH) with argv, its stdin/stdout on in/out (-1:
 * /dev/null), stderr on err, the environment ours plus PGPASSWORD when the URL
 * holds a password, SIGPIPE at its default.  CF_OK with *pid; CF_EIO naming
 * prog ("not installed" when it is not found). */
int cf_pg_spawn(const char *prog, char *const argv[], const struct cf_pgurl *u, int in, int out, int err,
		pid_t *pid);

/* Wait for pid; 0 when it exited with 0, else -1 with why in out ("exited
 * with status 1", "killed by signal 9"). */
int cf_pg_wait(pid_t pid, char *out, size_t n);

/* The line of a program's stderr (captured in f) that says what failed: the
 * first one holding "error:", "ERROR:" or "FATAL:", else the last non-empty
 * one, into out (empty when f is empty). */
void cf_pg_errline(FILE *f, char *out, size_t n);

/* libpq's message made one line (newlines and runs of blanks to one space). */
void cf_pg_oneline(const char *in, char *out, size_t n);

#endif
