/* libFuzzer target for the PostgreSQL URL reader (sources/postgres.c, on top
 * of libpq's PQconninfoParse): any input either parses into a consistent
 * struct whose connection string libpq reads back, or fails cleanly with a
 * message that never quotes the password; no leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "sources/postgres.h"
#include "common/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cf_pgurl u = CF_PGURL_INIT;
	char *s = malloc(size + 1), *ci = NULL;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	int r = cf_pgurl_parse(&u, s);
	if (r == CF_OK) {
		if (!u.who[0] || !strchr(u.who, '@'))
			abort();
		for (size_t i = 0; i < u.ndbs; i++)
			if (!u.dbs[i] || !u.dbs[i][0] || strlen(u.dbs[i]) > 63)
				abort();
		for (size_t i = 0; i < u.nopts; i++)
			if (!strcmp(u.keys[i], "password") || !strcmp(u.keys[i], "dbname"))
				abort();
		if (cf_pgurl_conninfo(&u, u.ndbs ? u.dbs[0] : "postgres", &ci) == CF_OK) {
			/* what we hand pg_dump and psql must mean the same to libpq */
			char *err = NULL;
			PQconninfoOption *o = PQconninfoParse(ci, &err);
			if (!o)
				abort();
			for (PQconninfoOption *p = o; p->keyword; p++)
				if (!strcmp(p->keyword, "password") && p->val)
					abort();
			PQconninfoFree(o);
			free(ci);
		}
	} else if (strstr(cf_errmsg(r), "://") && strncmp(cf_errmsg(r), "postgres URL: must start", 24)) {
		abort(); /* the URL (and its password) is never quoted back */
	}
	cf_pgurl_release(&u);
	free(s);
	return 0;
}
