/*
 * cmd_replicate.c - `coffer replicate PATH...`, `coffer sqlite list PATH...`
 * and `coffer sqlite restore --sqlite PATH [--time T] --target FILE` (also
 * reached as `coffer restore --sqlite PATH ...`): continuous SQLite
 * replication and point-in-time restore (doc/databases.md).
 */
#include "cli/cli.h"
#include "sources/replicate.h"
#include "restore/sqlite_pitr.h"
#include "repo/segment.h"
#include "common/error.h"
#include "common/util.h"

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "YYYY-MM-DD HH:MM:SS.mmm" local time */
static void time_ms(int64_t ns, char *out, size_t n)
{
	char s[32];
	local_time(ns, s, sizeof(s));
	snprintf(out, n, "%.31s.%03u", s, (unsigned)((ns % 1000000000) / 1000000) % 1000u);
}

static int env_interval(double *out)
{
	const char *v = getenv("COFFER_SQLITE_SYNC_INTERVAL");
	char *end;
	*out = 1.0;
	if (!v || !*v)
		return CF_OK;
	double d = strtod(v, &end);
	if (*end == 's' && !end[1])
		end++;
	if (*end || !(d >= 0.01 && d <= 3600))
		return cf_err(CF_EINVAL, "COFFER_SQLITE_SYNC_INTERVAL is seconds from 0.01 to 3600, not '%s'", v);
	*out = d;
	return CF_OK;
}

int cmd_replicate(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_replicate_opts o = { 0 };
	int rc;

	if (c->nargs < 1)
		return fail(cf_err(CF_EINVAL, "replicate: give the SQLite database files to replicate"));
	if ((rc = env_interval(&o.interval)))
		return fail(rc);
	const char *bb = getenv("COFFER_SQLITE_BASE_BYTES");
	if (bb && *bb) {
		char *end;
		unsigned long long v = strtoull(bb, &end, 10);
		if (*end || !v)
			return fail(cf_err(CF_EINVAL, "COFFER_SQLITE_BASE_BYTES is a number of bytes, not '%s'", bb));
		o.base_bytes = v;
	}
	const char *qb = getenv("COFFER_SQLITE_QUEUE_BYTES");
	if (qb && *qb) {
		char *end;
		unsigned long long v = strtoull(qb, &end, 10);
		if (*end || !v)
			return fail(cf_err(CF_EINVAL, "COFFER_SQLITE_QUEUE_BYTES is a number of bytes, not '%s'", qb));
		o.queue_bytes = v;
	}
	o.paths = (const char *const *)c->args;
	o.npaths = (size_t)c->nargs;
	o.host = c->host;
	o.retry_lock = c->retry_lock > 0 ? c->retry_lock : 60;
	c->lock_needed = true;
	if ((rc = open_repo(c, &r, 0, true)))
		return fail(rc);
	rc = cf_replicate_run(r, &o, &cf_interrupted);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

static int abs_path(const char *in, char *out)
{
	if (realpath(in, out))
		return CF_OK;
	/* the database may be gone (that is why it is restored): take the path as given */
	if (in[0] != '/')
		return cf_err(CF_EINVAL, "%s does not exist: give its absolute path", in);
	snprintf(out, PATH_MAX, "%s", in);
	return CF_OK;
}

static int list_one(struct cli *c, struct cf_repo *r, const char *path, json_t *arr)
{
	struct cf_seg_listing *gens = NULL;
	struct cf_buf plain = CF_BUF_INIT;
	char db[CF_SEG_DB_HEX], abs[PATH_MAX];
	size_t n = 0;
	int rc;

	if ((rc = abs_path(path, abs)) || (rc = cf_seg_db_key(r, abs, db)) || (rc = cf_seg_list(r, db, &gens, &n)))
		goto out;
	if (!c->json)
		printf("%s:%s\n", abs, n ? "" : " not replicated");
	for (size_t i = 0; i < n; i++) {
		struct cf_seg_gen g = { 0 };
		if (!gens[i].has_record)
			continue;
		if ((rc = cf_seg_gen_get(r, db, gens[i].gen, &g))) {
			cf_warn("%s", cf_errmsg(rc));
			cf_err_clear();
			continue;
		}
		int64_t last = g.time_ns;
		uint64_t ntx = 0;
		if (gens[i].nseg) {
			struct cf_segment seg;
			if ((rc = cf_seg_get(r, db, g.gen, gens[i].nseg, &plain)) ||
			    (rc = cf_seg_parse(plain.data, plain.len, &seg))) {
				cf_seg_gen_release(&g);
				goto out;
			}
			if (seg.ntx)
				last = seg.tx[seg.ntx - 1].time_ns;
			ntx = seg.ntx;
			cf_seg_release(&seg);
		}
		char from[64], to[64], sid[CF_ID_HEX], size[32];
		time_ms(g.time_ns, from, sizeof(from));
		time_ms(last, to, sizeof(to));
		cf_hex(g.snapshot, CF_ID_LEN, sid);
		human(gens[i].bytes, size, sizeof(size));
		if (c->json) {
			char f3[48], t3[48];
			cf_format_time(g.time_ns, f3, sizeof(f3));
			cf_format_time(last, t3, sizeof(t3));
			json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "path", abs,
					      "generation", g.gen, "reason", g.reason, "snapshot", sid,
					      "from", f3, "to", t3, "segments", (json_int_t)gens[i].nseg,
					      "segment_bytes", (json_int_t)gens[i].bytes);
			if (!o || json_array_append_new(arr, o)) {
				cf_seg_gen_release(&g);
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
		} else {
			printf("  generation %s (%s) base %.8s: restorable %s to %s, %" PRIu64
			       " segments, %s%s\n", g.gen, g.reason, sid, from, to, gens[i].nseg, size,
			       ntx || !gens[i].nseg ? "" : " (last segment empty)");
		}
		cf_seg_gen_release(&g);
	}
out:
	cf_buf_release(&plain);
	free(gens);
	return rc;
}

int cmd_sqlite_restore(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_pitr_result res;
	char abs[PATH_MAX];
	int64_t at = INT64_MAX;
	int rc;

	if (c->nsqlite != 1)
		return fail(cf_err(CF_EINVAL, "restore --sqlite: give one database (--sqlite PATH)"));
	if (!c->target)
		return fail(cf_err(CF_EINVAL, "restore --sqlite: give the file to write (--target FILE)"));
	if (c->time) {
		if ((rc = cf_parse_time(c->time, &at)))
			return fail(rc);
		/* a time without a fraction means that whole second */
		if (!strchr(c->time, '.'))
			at += 999999999;
	}
	if ((rc = abs_path(c->sqlite[0], abs)))
		return fail(rc);
	if ((rc = open_repo(c, &r, 1, true)))
		return fail(rc);
	rc = cf_sqlite_pitr(r, abs, at, c->target, &res);
	cf_repo_free(r);
	if (rc)
		return fail(rc);
	char base[64], state[64];
	time_ms(res.base_ns, base, sizeof(base));
	time_ms(res.state_ns, state, sizeof(state));
	if (!c->quiet)
		printf("restored %s as of %s to %s (generation %s: base of %s + %" PRIu64
		       " transactions from %" PRIu64 " segments); integrity_check ok\n", abs, state, c->target,
		       res.gen, base, res.ntx, res.segments);
	return EXIT_OK;
}

int cmd_sqlite(struct cli *c)
{
	struct cf_repo *r = NULL;
	int rc = CF_OK;

	if (c->nargs < 1)
		return fail(cf_err(CF_EINVAL, "sqlite: give a subcommand: list PATH... or restore --sqlite PATH --target FILE"));
	if (!strcmp(c->args[0], "restore")) {
		if (c->nargs > 1)
			return fail(cf_err(CF_EINVAL, "sqlite restore: unexpected argument '%s' (the database is --sqlite PATH)",
					   c->args[1]));
		return cmd_sqlite_restore(c);
	}
	if (strcmp(c->args[0], "list"))
		return fail(cf_err(CF_EINVAL, "sqlite: unknown subcommand '%s' (list or restore)", c->args[0]));
	if (c->nargs < 2)
		return fail(cf_err(CF_EINVAL, "sqlite list: give the database paths"));
	if (c->time || c->target || c->nsqlite)
		return fail(cf_err(CF_EINVAL, "sqlite list takes no --time, --target or --sqlite"));
	if ((rc = open_repo(c, &r, 1, false)))
		return fail(rc);
	json_t *arr = c->json ? json_array() : NULL;
	for (int i = 1; i < c->nargs && !rc; i++)
		rc = list_one(c, r, c->args[i], arr);
	if (!rc && arr) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		if (s)
			puts(s);
		free(s);
	}
	json_decref(arr);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}
