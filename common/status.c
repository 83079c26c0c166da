/* status.c - see status.h. */
#include "common/status.h"

#include <stdio.h>

#include "common/error.h"

int cf_status_keep(struct cf_status *st, int code)
{
	if (code != CF_OK && st->code == CF_OK) {
		st->code = code;
		snprintf(st->msg, sizeof(st->msg), "%s", cf_errmsg(code));
	}
	return code;
}

int cf_status_raise(const struct cf_status *st)
{
	if (st->code == CF_OK)
		return CF_OK;
	return cf_err(st->code, "%s", st->msg);
}
