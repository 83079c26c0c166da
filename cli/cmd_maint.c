#include "cli/cli.h"
#include "repo/retention.h"
#include "crypto/crypto.h"
#include "common/array.h"
#include "common/error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cmd_maint.c - forget, prune, copy, stats, and check --read-data-subset. */

/* ---------- prune ---------- */

static int parse_max_unused(const char *s, double *out)
{
	char *end;
	if (!s) {
		*out = 0.05;
		return CF_OK;
	}
	if (!strcmp(s, "unlimited")) {
		*out = -1;
		return CF_OK;
	}
	double v = strtod(s, &end);
	if (end == s || strcmp(end, "%") || v < 0 || v >= 100)
		return cf_err(CF_EINVAL, "--max-unused wants a percentage below 100 (e.g. 5%%) or "
			      "'unlimited', not '%s'", s);
	*out = v / 100;
	return CF_OK;
}

static void print_prune_plan(struct cli *c, const struct cf_prune_stats *s)
{
	char a[32], b[32], d[32];
	if (c->quiet || c->json)
		return;
	human(s->pack_bytes, a, sizeof(a));
	printf("%llu snapshots, %llu packs (%s), %llu index files\n", (unsigned long long)s->snapshots,
	       (unsigned long long)s->packs, a, (unsigned long long)s->index_files);
	human(s->bytes_used, a, sizeof(a));
	human(s->bytes_unused, b, sizeof(b));
	printf("used:            %llu blobs, %s\n", (unsigned long long)s->blobs_used, a);
	printf("unused:          %llu blobs, %s\n", (unsigned long long)s->blobs_unused, b);
	human(s->bytes_delete, a, sizeof(a));
	printf("to delete:       %llu packs with no used blob, %s\n", (unsigned long long)s->packs_delete, a);
	human(s->bytes_unindexed, a, sizeof(a));
	printf("unreferenced:    %llu packs no index names (interrupted runs), %s\n",
	       (unsigned long long)s->packs_unindexed, a);
	human(s->bytes_repack, a, sizeof(a));
	human(s->bytes_repack_used, b, sizeof(b));
	printf("to repack:       %llu packs, %s (%s of used blobs rewritten)\n",
	       (unsigned long long)s->packs_repack, a, b);
	human(s->bytes_young, a, sizeof(a));
	printf("kept young:      %llu packs, %s (%s: a running backup may be writing them)\n",
	       (unsigned long long)s->packs_young, a,
	       s->ages_unknown ? "the store gives no ages, so every unused or unindexed pack is kept"
			       : "younger than the 1 hour safety margin");
	printf("to keep:         %llu packs\n", (unsigned long long)s->packs_keep);
	human(s->bytes_freed, a, sizeof(a));
	human(s->bytes_unused_after, d, sizeof(d));
	printf("will free:       %s; unused space left: %s\n", a, d);
	fflush(stdout);
}

static void print_prune_json(const struct cf_prune_stats *s, bool dry_run)
{
	/* restic's documented schema has no prune output: the JSON-lines
	 * summary shape (message_type "summary") with coffer's counts */
	json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"message_type", "summary",
		"dry_run", dry_run,
		"snapshots", (json_int_t)s->snapshots, "packs", (json_int_t)s->packs,
		"pack_bytes", (json_int_t)s->pack_bytes,
		"blobs_used", (json_int_t)s->blobs_used, "bytes_used", (json_int_t)s->bytes_used,
		"blobs_unused", (json_int_t)s->blobs_unused, "bytes_unused", (json_int_t)s->bytes_unused,
		"packs_delete", (json_int_t)s->packs_delete, "bytes_delete", (json_int_t)s->bytes_delete,
		"packs_unindexed", (json_int_t)s->packs_unindexed,
		"bytes_unindexed", (json_int_t)s->bytes_unindexed,
		"packs_repack", (json_int_t)s->packs_repack, "bytes_repack", (json_int_t)s->bytes_repack,
		"packs_keep", (json_int_t)s->packs_keep, "bytes_freed", (json_int_t)s->bytes_freed,
		"bytes_unused_after", (json_int_t)s->bytes_unused_after,
		"packs_written", (json_int_t)s->packs_written,
		"packs_young", (json_int_t)s->packs_young, "bytes_young", (json_int_t)s->bytes_young);
	json_line(stdout, j);
}

/* Plan, say what it will free, then (unless --dry-run) do it.  r must hold
 * the exclusive lock and have its index loaded. */
static int do_prune(struct cli *c, struct cf_repo *r)
{
	struct cf_prune_opts o;
	struct cf_prune *p = NULL;
	int rc;

	if ((rc = parse_max_unused(c->max_unused, &o.max_unused)))
		return rc;
	if ((rc = cf_prune_plan(r, &o, &p)))
		return rc;
	print_prune_plan(c, cf_prune_stats(p));
	if (!c->dry_run) {
		rc = cf_prune_run(p);
		if (!rc && !c->quiet && !c->json)
			printf("done: %llu new packs written, old index files and unused packs deleted\n",
			       (unsigned long long)cf_prune_stats(p)->packs_written);
	} else if (!c->quiet && !c->json) {
		printf("dry run: nothing changed\n");
	}
	if (!rc && c->json)
		print_prune_json(cf_prune_stats(p), c->dry_run);
	cf_prune_free(p);
	return rc;
}

int cmd_prune(struct cli *c)
{
	struct cf_repo *r = NULL;
	int rc;
	double mu;
	if ((rc = parse_max_unused(c->max_unused, &mu)))
		return fail(rc);
	if ((rc = open_repo(c, &r, 2, true)))
		return fail(rc);
	rc = do_prune(c, r);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

/* ---------- forget ---------- */

static int build_policy(struct cli *c, struct cf_retention_policy *p)
{
	struct { const char *s; struct cf_duration *d; const char *opt; } durs[] = {
		{ c->keep_within, &p->within, "--keep-within" },
		{ c->keep_within_hourly, &p->within_hourly, "--keep-within-hourly" },
		{ c->keep_within_daily, &p->within_daily, "--keep-within-daily" },
		{ c->keep_within_weekly, &p->within_weekly, "--keep-within-weekly" },
		{ c->keep_within_monthly, &p->within_monthly, "--keep-within-monthly" },
		{ c->keep_within_yearly, &p->within_yearly, "--keep-within-yearly" },
	};
	int rc;
	memset(p, 0, sizeof(*p));
	p->last = c->keep_last;
	p->hourly = c->keep_hourly;
	p->daily = c->keep_daily;
	p->weekly = c->keep_weekly;
	p->monthly = c->keep_monthly;
	p->yearly = c->keep_yearly;
	for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++)
		if (durs[i].s && (rc = cf_duration_parse(durs[i].s, durs[i].d)))
			return cf_err_prefix(rc, "%s", durs[i].opt);
	p->keep_tags = c->keep_tags;
	p->nkeep_tags = c->nkeep_tags;
	return CF_OK;
}

static void snap_row(const struct cf_snapshot *s, const struct cf_retention_result *res)
{
	char hex[CF_ID_HEX], t[32], tags[128] = "", why[256] = "";
	cf_hex(s->id, CF_ID_LEN, hex);
	local_time(s->time_ns, t, sizeof(t));
	for (size_t k = 0; k < s->ntags; k++) {
		size_t l = strlen(tags);
		snprintf(tags + l, sizeof(tags) - l, "%s%s", k ? "," : "", s->tags[k]);
	}
	for (size_t k = 0; res && k < res->nreasons; k++) {
		size_t l = strlen(why);
		snprintf(why + l, sizeof(why) - l, "%s%s", k ? ", " : "", res->reasons[k]);
	}
	printf("%-8.8s  %-19s  %-12s  %-12s  %-28s  %s\n", hex, t, s->hostname, tags, why,
	       s->npaths ? s->paths[0] : "");
	for (size_t k = 1; k < s->npaths; k++)
		printf("%-8s  %-19s  %-12s  %-12s  %-28s  %s\n", "", "", "", "", "", s->paths[k]);
}

struct group {
	char *key;
	size_t *idx;      /* indices into the snapshot list */
	size_t n, cap;
};

static int group_add(struct group **gs, size_t *ng, size_t *gcap, const char *key, size_t snap)
{
	int rc;
	struct group *g = NULL;
	for (size_t i = 0; i < *ng && !g; i++)
		if (!strcmp((*gs)[i].key, key))
			g = &(*gs)[i];
	if (!g) {
		if ((rc = CF_GROW(*gs, *ng + 1, *gcap)))
			return rc;
		g = &(*gs)[(*ng)++];
		memset(g, 0, sizeof(*g));
		if (!(g->key = strdup(key)))
			return cf_err(CF_ENOMEM, "out of memory");
	}
	if ((rc = CF_GROW(g->idx, g->n + 1, g->cap)))
		return rc;
	g->idx[g->n++] = snap;
	return CF_OK;
}

static void to_rsnap(const struct cf_snapshot *s, struct cf_retention_snap *rs)
{
	memset(rs, 0, sizeof(*rs));
	rs->time = s->time_ns / 1000000000;
	rs->nsec = (int32_t)(s->time_ns % 1000000000);
	if (s->time_ns < 0 && rs->nsec) {
		rs->time--;
		rs->nsec += 1000000000;
	}
	rs->host = s->hostname;
	rs->tags = (const char *const *)s->tags;
	rs->ntags = s->ntags;
	rs->paths = (const char *const *)s->paths;
	rs->npaths = s->npaths;
}

/* Apply the policy to one group: print (or add to json) and mark removals. */
static int forget_group(struct cli *c, const struct cf_retention_policy *pol, struct cf_snapshot *s,
			const struct group *g, bool *remove, json_t *out)
{
	struct cf_retention_snap *rs = calloc(g->n, sizeof(*rs));
	struct cf_retention_result *res = NULL;
	const char *tz = getenv("TZ");
	int rc;

	if (!rs)
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < g->n; i++)
		to_rsnap(&s[g->idx[i]], &rs[i]);
	if (tz && tz[0] == ':')
		tz++;
	if ((rc = cf_retention_apply(pol, rs, g->n, tz, (int64_t)time(NULL), &res)))
		goto out;
	size_t nkeep = 0;
	for (size_t i = 0; i < g->n; i++) {
		nkeep += res[i].keep;
		remove[g->idx[i]] = !res[i].keep;
	}
	if (out) {
		json_t *key = json_loads(g->key, 0, NULL);
		json_t *o = json_object(), *keep = json_array(), *rm = json_array(), *why = json_array();
		json_object_set(o, "tags", key ? json_object_get(key, "tags") : json_null());
		json_object_set(o, "host", key ? json_object_get(key, "hostname") : json_null());
		json_object_set(o, "paths", key ? json_object_get(key, "paths") : json_null());
		/* newest first, as restic lists them */
		for (size_t i = g->n; i-- > 0;) {
			const struct cf_snapshot *sn = &s[g->idx[i]];
			json_array_append_new(res[i].keep ? keep : rm, cf_snapshot_to_json(sn));
			if (!res[i].keep)
				continue;
			json_t *m = json_array();
			for (size_t k = 0; k < res[i].nreasons; k++)
				json_array_append_new(m, json_string(res[i].reasons[k]));
			json_array_append_new(why, json_pack("{s:o, s:o}", "snapshot",
							     cf_snapshot_to_json(sn), "matches", m));
		}
		json_object_set_new(o, "keep", keep);
		json_object_set_new(o, "remove", rm);
		json_object_set_new(o, "reasons", why);
		json_array_append_new(out, o);
		json_decref(key);
	} else if (!c->quiet) {
		printf("snapshots for group %s:\n", g->key);
		printf("keep %zu snapshots:\n", nkeep);
		printf("%-8s  %-19s  %-12s  %-12s  %-28s  %s\n", "ID", "Time", "Host", "Tags", "Reasons", "Paths");
		for (size_t i = g->n; i-- > 0;)
			if (res[i].keep)
				snap_row(&s[g->idx[i]], &res[i]);
		if (nkeep < g->n) {
			printf("remove %zu snapshots:\n", g->n - nkeep);
			for (size_t i = g->n; i-- > 0;)
				if (!res[i].keep)
					snap_row(&s[g->idx[i]], NULL);
		}
		printf("\n");
	}
out:
	cf_retention_results_free(res, g->n);
	free(rs);
	return rc;
}

int cmd_forget(struct cli *c)
{
	struct cf_retention_policy pol;
	struct cf_repo *r = NULL;
	struct cf_snapshot *s = NULL;
	struct cf_snapshot_filter f;
	struct group *gs = NULL;
	struct cf_buf key = CF_BUF_INIT;
	bool *remove = NULL;
	json_t *out = NULL;
	size_t n = 0, ng = 0, gcap = 0, removed = 0;
	unsigned gflags = CF_GROUP_HOST | CF_GROUP_PATHS;
	int rc;

	if ((rc = build_policy(c, &pol)))
		return fail(rc);
	bool by_id = c->nargs > 0;
	if (by_id && !cf_retention_policy_empty(&pol))
		return fail(cf_err(CF_EINVAL, "forget: give snapshot ids or a --keep-* policy, not both"));
	if (!by_id && cf_retention_policy_empty(&pol))
		return fail(cf_err(CF_EINVAL, "forget: no policy given (--keep-last, --keep-daily, ... "
				   "or snapshot ids); refusing to remove every snapshot"));
	if (c->group_by && (rc = cf_retention_group_parse(c->group_by, &gflags)))
		return fail(rc);
	if ((rc = open_repo(c, &r, 2, false)))
		return fail(rc);
	if ((rc = cf_repo_snapshots(r, &s, &n, NULL)))
		goto out;
	if (!(remove = calloc(n ? n : 1, sizeof(*remove)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	build_filter(c, &f);
	if (by_id) {
		for (int i = 0; i < c->nargs; i++) {
			long k = cf_snapshot_pick(s, n, c->args[i], &f);
			if (k < 0) {
				rc = CF_ENOENT; /* the message names the id */
				goto out;
			}
			remove[k] = true;
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			if (!cf_snapshot_matches(&s[i], &f))
				continue;
			struct cf_retention_snap rs;
			to_rsnap(&s[i], &rs);
			cf_buf_reset(&key);
			if ((rc = cf_retention_group_key(gflags, &rs, &key)) ||
			    (rc = group_add(&gs, &ng, &gcap, (const char *)key.data, i)))
				goto out;
		}
		if (c->json && !(out = json_array())) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < ng; i++)
			if ((rc = forget_group(c, &pol, s, &gs[i], remove, out)))
				goto out;
		if (out) {
			char *t = json_dumps(out, JSON_PRESERVE_ORDER);
			if (t)
				puts(t);
			free(t);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!remove[i])
			continue;
		char hex[CF_ID_HEX];
		cf_hex(s[i].id, CF_ID_LEN, hex);
		if (c->dry_run) {
			if (by_id && !c->quiet && !c->json)
				printf("would remove snapshot %s\n", hex);
			removed++;
			continue;
		}
		if ((rc = cf_repo_forget_snapshot(r, s[i].id)))
			goto out;
		removed++;
		if (c->verbose && !c->json)
			printf("removed snapshot %s\n", hex);
	}
	if (!c->quiet && !c->json)
		printf("%zu snapshots %s\n", removed, c->dry_run ? "would be removed (dry run)" : "removed");
	if (c->prune && c->dry_run) {
		if (!c->quiet && !c->json)
			printf("dry run: prune skipped (it would see the snapshots still there)\n");
	} else if (c->prune) {
		if (!(rc = cf_repo_load_index(r)))
			rc = do_prune(c, r);
	}
out:
	for (size_t i = 0; i < ng; i++) {
		free(gs[i].key);
		free(gs[i].idx);
	}
	free(gs);
	free(remove);
	json_decref(out);
	cf_buf_release(&key);
	cf_snapshots_free(s, n);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

/* ---------- copy ---------- */

static bool id_in(const uint8_t (*ids)[CF_ID_LEN], size_t n, const uint8_t id[CF_ID_LEN])
{
	for (size_t i = 0; i < n; i++)
		if (!memcmp(ids[i], id, CF_ID_LEN))
			return true;
	return false;
}

int cmd_copy(struct cli *c)
{
	struct cf_repo *src = NULL, *dst = NULL;
	struct cf_snapshot *ss = NULL, *ds = NULL;
	size_t nss = 0, nds = 0, copied = 0, skipped = 0;
	uint8_t (*have)[CF_ID_LEN] = NULL;
	struct cf_copy_map *map = NULL;
	struct cf_copy_stats st;
	struct cf_snapshot_filter f;
	bool *want = NULL;
	int rc;

	memset(&st, 0, sizeof(st));
	if (!c->from_repo)
		return fail(cf_err(CF_EINVAL, "copy: --from-repo LOCATION is required"));
	struct cli sc = *c;
	sc.repo = c->from_repo;
	sc.password_file = c->from_password_file ? c->from_password_file : getenv("COFFER_FROM_PASSWORD_FILE");
	if ((rc = open_repo(&sc, &src, 1, true))) {
		rc = cf_err_prefix(rc, "source repository");
		return fail(rc);
	}
	if ((rc = open_repo(c, &dst, 1, true))) {
		rc = cf_err_prefix(rc, "target repository");
		goto out;
	}
	if (!memcmp(cf_repo_config(src)->id, cf_repo_config(dst)->id, CF_ID_LEN)) {
		rc = cf_err(CF_EINVAL, "copy: source and target are the same repository");
		goto out;
	}
	if ((rc = cf_repo_snapshots(src, &ss, &nss, NULL)) || (rc = cf_repo_snapshots(dst, &ds, &nds, NULL)))
		goto out;
	if (!(want = calloc(nss ? nss : 1, sizeof(*want))) ||
	    !(have = calloc(2 * nds + 1, CF_ID_LEN)) || !(map = cf_copy_map_new())) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	/* what the target already has: its snapshots and their originals */
	size_t nh = 0;
	for (size_t i = 0; i < nds; i++) {
		memcpy(have[nh++], ds[i].id, CF_ID_LEN);
		if (ds[i].has_original)
			memcpy(have[nh++], ds[i].original, CF_ID_LEN);
	}
	build_filter(c, &f);
	if (c->nargs) {
		for (int i = 0; i < c->nargs; i++) {
			long k = cf_snapshot_pick(ss, nss, c->args[i], &f);
			if (k < 0) {
				rc = CF_ENOENT;
				goto out;
			}
			want[k] = true;
		}
	} else {
		for (size_t i = 0; i < nss; i++)
			want[i] = cf_snapshot_matches(&ss[i], &f);
	}
	for (size_t i = 0; i < nss; i++) {
		if (!want[i])
			continue;
		char hex[CF_ID_HEX], nhex[CF_ID_HEX], t[32];
		uint8_t nid[CF_ID_LEN];
		cf_hex(ss[i].id, CF_ID_LEN, hex);
		local_time(ss[i].time_ns, t, sizeof(t));
		if (id_in((const uint8_t (*)[CF_ID_LEN])have, nh, ss[i].id) ||
		    (ss[i].has_original && id_in((const uint8_t (*)[CF_ID_LEN])have, nh, ss[i].original))) {
			skipped++;
			if (c->verbose && !c->json)
				printf("snapshot %.8s of %s at %s is already in the target\n", hex,
				       ss[i].npaths ? ss[i].paths[0] : "", t);
			continue;
		}
		if ((rc = cf_repo_copy_snapshot(src, dst, &ss[i], map, &st, nid))) {
			rc = cf_err_prefix(rc, "copy snapshot %.8s", hex);
			goto out;
		}
		copied++;
		cf_hex(nid, CF_ID_LEN, nhex);
		if (!c->quiet && !c->json)
			printf("snapshot %.8s of %s at %s copied to %.8s\n", hex,
			       ss[i].npaths ? ss[i].paths[0] : "", t, nhex);
		if (cf_interrupted) {
			rc = cf_err(CF_EINTR, "interrupted");
			goto out;
		}
	}
	if (c->json) {
		json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "snapshots_copied", (json_int_t)copied,
				      "snapshots_skipped", (json_int_t)skipped,
				      "blobs_copied", (json_int_t)st.blobs_copied,
				      "bytes_copied", (json_int_t)st.bytes_copied,
				      "bytes_stored", (json_int_t)st.bytes_stored,
				      "data_blobs_read", (json_int_t)st.data_blobs);
		char *t = j ? json_dumps(j, JSON_PRESERVE_ORDER) : NULL;
		if (t)
			puts(t);
		free(t);
		json_decref(j);
	} else if (!c->quiet) {
		char a[32], b[32];
		human(st.bytes_copied, a, sizeof(a));
		human(st.bytes_stored, b, sizeof(b));
		printf("%zu snapshots copied, %zu already there; %llu blobs (%s) added, %s stored\n",
		       copied, skipped, (unsigned long long)st.blobs_copied, a, b);
	}
out:
	cf_copy_map_free(map);
	free(want);
	free(have);
	cf_snapshots_free(ss, nss);
	cf_snapshots_free(ds, nds);
	cf_repo_free(dst);
	cf_repo_free(src);
	return rc ? fail(rc) : EXIT_OK;
}

/* ---------- stats ---------- */

int cmd_stats(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_repo_stats st;
	int rc;
	if ((rc = open_repo(c, &r, 0, true)))
		return fail(rc);
	rc = cf_repo_stats(r, &st);
	cf_repo_free(r);
	if (rc)
		return fail(rc);
	double dedup = st.raw_bytes ? (double)st.file_bytes / (double)st.raw_bytes : 0;
	double comp = st.stored_blob_bytes ? (double)st.raw_bytes / (double)st.stored_blob_bytes : 0;
	if (c->json) {
		json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}",
			"snapshots_count", (json_int_t)st.snapshots,
			"pack_count", (json_int_t)st.packs,
			"total_size", (json_int_t)st.pack_bytes,
			"total_uncompressed_size", (json_int_t)st.raw_bytes,
			"total_blob_count", (json_int_t)(st.data_blobs + st.tree_blobs),
			"data_blob_count", (json_int_t)st.data_blobs,
			"tree_blob_count", (json_int_t)st.tree_blobs,
			"stored_blob_size", (json_int_t)st.stored_blob_bytes,
			"total_file_count", (json_int_t)st.files,
			"total_restore_size", (json_int_t)st.file_bytes,
			"dedup_ratio", dedup, "compression_ratio", comp);
		char *t = j ? json_dumps(j, JSON_PRESERVE_ORDER) : NULL;
		if (t)
			puts(t);
		free(t);
		json_decref(j);
		return EXIT_OK;
	}
	char a[32], b[32], d[32];
	human(st.pack_bytes, a, sizeof(a));
	human(st.raw_bytes, b, sizeof(b));
	human(st.file_bytes, d, sizeof(d));
	printf("snapshots:              %llu\n", (unsigned long long)st.snapshots);
	printf("repository size:        %s in %llu packs\n", a, (unsigned long long)st.packs);
	printf("raw size:               %s (plaintext of %llu data and %llu tree blobs)\n", b,
	       (unsigned long long)st.data_blobs, (unsigned long long)st.tree_blobs);
	printf("files in all snapshots: %llu, %s\n", (unsigned long long)st.files, d);
	printf("deduplication ratio:    %.2fx (files / raw size)\n", dedup);
	printf("compression ratio:      %.2fx (raw size / stored blobs)\n", comp);
	return EXIT_OK;
}

/* ---------- check --read-data-subset ---------- */

int cli_parse_subset(const char *s, struct cf_check_opts *o)
{
	unsigned n, m;
	double pct;
	char tail;
	if (sscanf(s, "%u/%u%c", &n, &m, &tail) == 2) {
		if (m < 1 || n < 1 || n > m || m > 256)
			return cf_err(CF_EINVAL, "--read-data-subset n/m wants 1 <= n <= m <= 256, not '%s'", s);
		o->subset_n = n;
		o->subset_m = m;
		return CF_OK;
	}
	if (sscanf(s, "%lf%c%c", &pct, &tail, &tail) == 2 && tail == '%' && pct > 0 && pct <= 100) {
		o->subset_percent = pct;
		return CF_OK;
	}
	return cf_err(CF_EINVAL, "--read-data-subset wants n/m (e.g. 2/7) or a percentage (e.g. 10%%), "
		      "not '%s'", s);
}
