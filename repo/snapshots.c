/* snapshots.c - storing, listing and choosing snapshots. */
#include "repo/repo_int.h"
#include "common/array.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

int cf_repo_save_snapshot(struct cf_repo *r, struct cf_snapshot *s)
{
	struct cf_buf b = CF_BUF_INIT;
	char hex[CF_ID_HEX];
	int rc = cf_snapshot_encode(s, &b);
	if (!rc)
		rc = cf_repo_put_hashed(r, "snapshots", CF_OBJ_SNAPSHOT, b.data, b.len, hex, s->id);
	cf_buf_release(&b);
	return rc;
}

struct snaplist {
	struct cf_repo *r;
	struct cf_snapshot *s;
	size_t n, cap, bad;
};

static int load_snap(const char *name, uint64_t size, void *ctx)
{
	struct snaplist *sl = ctx;
	struct cf_buf b = CF_BUF_INIT;
	uint8_t id[CF_ID_LEN];
	int rc;

	(void)size;
	if (cf_unhex(name, id, CF_ID_LEN))
		return 0; /* not ours */
	if ((rc = CF_GROW(sl->s, sl->n + 1, sl->cap)))
		return rc;
	struct cf_snapshot *s = &sl->s[sl->n];
	memset(s, 0, sizeof(*s));
	/* the id is the name, so the name must be the content's hash: a
	 * snapshot moved under another's name would otherwise be listed and
	 * restored as that one */
	rc = cf_repo_get_named(sl->r, "snapshots", name, CF_OBJ_SNAPSHOT, &b);
	if (!rc && (rc = cf_snapshot_decode(b.data, b.len, s)))
		rc = cf_err_prefix(rc, "snapshot %.8s", name);
	cf_buf_release(&b);
	if (rc == CF_ECORRUPT || rc == CF_ENOENT) {
		cf_warn("warning: %s (snapshot not used)", cf_errmsg(rc));
		sl->bad++;
		return 0;
	}
	if (rc)
		return rc;
	memcpy(s->id, id, CF_ID_LEN);
	sl->n++;
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct cf_snapshot *x = a, *y = b;
	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return memcmp(x->id, y->id, CF_ID_LEN);
}

int cf_repo_snapshots(struct cf_repo *r, struct cf_snapshot **out, size_t *n, size_t *bad)
{
	struct snaplist sl = { r, NULL, 0, 0, 0 };
	int rc = cf_be_list(r->be, "snapshots", load_snap, &sl);
	if (rc) {
		cf_snapshots_free(sl.s, sl.n);
		return rc;
	}
	if (sl.n)
		qsort(sl.s, sl.n, sizeof(*sl.s), by_time);
	*out = sl.s;
	*n = sl.n;
	if (bad)
		*bad = sl.bad;
	return CF_OK;
}

void cf_snapshots_free(struct cf_snapshot *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cf_snapshot_release(&s[i]);
	free(s);
}

static bool has_str(char **arr, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(arr[i], s) == 0)
			return true;
	return false;
}

bool cf_snapshot_matches(const struct cf_snapshot *s, const struct cf_snapshot_filter *f)
{
	if (!f)
		return true;
	if (f->host && strcmp(f->host, s->hostname ? s->hostname : "") != 0)
		return false;
	for (size_t i = 0; i < f->ntags; i++)
		if (!has_str(s->tags, s->ntags, f->tags[i]))
			return false;
	if (f->npaths) {
		for (size_t i = 0; i < f->npaths; i++)
			if (!has_str(s->paths, s->npaths, f->paths[i]))
				return false;
		/* --path (restic): snapshots that include these paths; the parent
		 * search needs the same set exactly */
		for (size_t i = 0; f->exact_paths && i < s->npaths; i++) {
			bool found = false;
			for (size_t k = 0; k < f->npaths && !found; k++)
				found = strcmp(f->paths[k], s->paths[i]) == 0;
			if (!found)
				return false;
		}
	}
	return true;
}

long cf_snapshot_pick(const struct cf_snapshot *list, size_t n, const char *spec,
		      const struct cf_snapshot_filter *f)
{
	if (strcmp(spec, "latest") == 0) {
		for (size_t i = n; i-- > 0;)
			if (cf_snapshot_matches(&list[i], f))
				return (long)i;
		cf_err(CF_ENOENT, "no snapshot matches 'latest'%s", f && (f->host || f->ntags || f->npaths)
		       ? " with the given --host/--tag/--path" : "");
		return -1;
	}
	size_t len = strlen(spec);
	if (len == 0 || len > CF_ID_HEX - 1) {
		cf_err(CF_EINVAL, "'%s' is not a snapshot id", spec);
		return -1;
	}
	long hit = -1;
	for (size_t i = 0; i < n; i++) {
		char hex[CF_ID_HEX];
		cf_hex(list[i].id, CF_ID_LEN, hex);
		if (strncmp(hex, spec, len) == 0) {
			if (hit >= 0) {
				cf_err(CF_EINVAL, "snapshot id prefix '%s' is ambiguous", spec);
				return -1;
			}
			hit = (long)i;
		}
	}
	if (hit < 0)
		cf_err(CF_ENOENT, "no snapshot with id %s", spec);
	return hit;
}
