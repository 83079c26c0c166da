/* pg_restore.c - see pg_restore.h. */
#include "restore/pg_restore.h"
#include "sources/postgres.h"
#include "repo/tree.h"
#include "common/array.h"
#include "common/error.h"
#include "common/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a file's content blob by blob. */
struct blobsrc {
	struct cf_repo *r;
	const struct cf_node *n;
	size_t next;
	struct cf_buf cur;
	size_t pos;
	int rc;
};

static ssize_t read_blobs(void *ctx, void *buf, size_t n)
{
	struct blobsrc *b = ctx;
	while (b->pos == b->cur.len) {
		if (b->next == b->n->ncontent)
			return 0;
		if ((b->rc = cf_repo_load_blob(b->r, CF_BLOB_DATA, b->n->content[b->next], &b->cur)))
			return -b->rc;
		b->next++;
		b->pos = 0;
	}
	size_t k = b->cur.len - b->pos < n ? b->cur.len - b->pos : n;
	memcpy(buf, b->cur.data + b->pos, k);
	b->pos += k;
	return (ssize_t)k;
}

struct dump {
	const struct cf_node *node;  /* borrowed from trees */
	char *db, *qual;             /* "shop", "shop" or "127.0.0.1-2/shop" */
	const char *target;
};

struct dumps {
	struct dump *v;
	size_t n, cap;
	struct cf_tree trees[1 + 64]; /* /postgres and its server directories */
	size_t ntrees;
};

static void dumps_release(struct dumps *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].db);
		free(d->v[i].qual);
	}
	for (size_t i = 0; i < d->ntrees; i++)
		cf_tree_release(&d->trees[i]);
	free(d->v);
}

static int add_dumps(struct dumps *d, const struct cf_tree *t, const char *sub)
{
	int rc;
	for (size_t i = 0; i < t->n; i++) {
		const struct cf_node *n = &t->nodes[i];
		size_t l = strlen(n->name);
		if (n->type != CF_NODE_FILE || l < 5 || strcmp(n->name + l - 4, ".sql"))
			continue;
		if ((rc = CF_GROW(d->v, d->n + 1, d->cap)))
			return rc;
		struct dump *x = &d->v[d->n];
		memset(x, 0, sizeof(*x));
		x->node = n;
		if (!(x->db = strndup(n->name, l - 4)) ||
		    (sub ? asprintf(&x->qual, "%s/%s", sub, x->db) < 0 : !(x->qual = strdup(x->db)))) {
			free(x->db);
			return cf_err(CF_ENOMEM, "out of memory");
		}
		d->n++;
	}
	return CF_OK;
}

static int find_dumps(struct cf_repo *r, const struct cf_snapshot *s, struct dumps *d)
{
	struct cf_tree root = CF_TREE_INIT;
	int rc;

	if ((rc = cf_repo_load_tree(r, s->tree, &root)))
		return rc;
	const struct cf_node *m = cf_tree_find(&root, "postgres");
	if (!m || m->type != CF_NODE_DIR || !m->has_subtree) {
		rc = cf_err(CF_ENOENT, "the snapshot holds no PostgreSQL dumps (no /postgres directory)");
		goto out;
	}
	d->trees[0] = (struct cf_tree)CF_TREE_INIT;
	d->ntrees = 1;
	if ((rc = cf_repo_load_tree(r, m->subtree, &d->trees[0])) || (rc = add_dumps(d, &d->trees[0], NULL)))
		goto out;
	for (size_t i = 0; i < d->trees[0].n && d->ntrees < sizeof(d->trees) / sizeof(d->trees[0]); i++) {
		const struct cf_node *n = &d->trees[0].nodes[i];
		if (n->type != CF_NODE_DIR || !n->has_subtree)
			continue;
		struct cf_tree *sub = &d->trees[d->ntrees++];
		*sub = (struct cf_tree)CF_TREE_INIT;
		if ((rc = cf_repo_load_tree(r, n->subtree, sub)) || (rc = add_dumps(d, sub, n->name)))
			goto out;
	}
out:
	cf_tree_release(&root);
	return rc;
}

static bool names(const char *want, size_t l, const struct dump *x)
{
	return (strlen(x->db) == l && !strncmp(want, x->db, l)) || (strlen(x->qual) == l && !strncmp(want, x->qual, l));
}

static bool chosen(const struct cf_db_restore_opts *o, const struct dump *x)
{
	bool want = !o->ndatabases;
	for (size_t k = 0; k < o->ndatabases && !want; k++)
		want = names(o->databases[k], strlen(o->databases[k]), x);
	return want;
}

/* What loads where, decided before anything is loaded (see db_restore.c). */
static int plan(struct dumps *d, const struct cf_db_restore_opts *o, size_t *nchosen)
{
	char have[512] = "";
	size_t len = 0;
	for (size_t j = 0; j < d->n && len < sizeof(have); j++) {
		int k = snprintf(have + len, sizeof(have) - len, "%s%s", j ? ", " : "", d->v[j].qual);
		len += k > 0 ? (size_t)k : 0;
	}
	*nchosen = 0;
	for (size_t i = 0; i < o->ndatabases; i++) {
		bool found = false;
		for (size_t j = 0; j < d->n && !found; j++)
			found = names(o->databases[i], strlen(o->databases[i]), &d->v[j]);
		if (!found)
			return cf_err(CF_ENOENT, "database %s is not in the snapshot (no /postgres/%s.sql; it has: %s)",
				      o->databases[i], o->databases[i], have);
	}
	for (size_t i = 0; i < o->nrenames; i++) {
		const char *eq = strchr(o->renames[i], '=');
		size_t l = (size_t)(eq - o->renames[i]);
		bool found = false, want = false;
		for (size_t j = 0; j < d->n; j++)
			if (names(o->renames[i], l, &d->v[j])) {
				found = true;
				want = want || chosen(o, &d->v[j]);
			}
		if (!found)
			return cf_err(CF_ENOENT, "--rename %s: database %.*s is not in the snapshot (it has: %s); "
				      "nothing was loaded", o->renames[i], (int)l, o->renames[i], have);
		if (!want)
			return cf_err(CF_EINVAL, "--rename %s: database %.*s is not among the --database ones to "
				      "load; nothing was loaded", o->renames[i], (int)l, o->renames[i]);
	}
	for (size_t j = 0; j < d->n; j++) {
		struct dump *x = &d->v[j];
		if (!chosen(o, x))
			continue;
		x->target = x->db;
		for (size_t i = 0; i < o->nrenames; i++) {
			const char *eq = strchr(o->renames[i], '=');
			if (names(o->renames[i], (size_t)(eq - o->renames[i]), x))
				x->target = eq + 1;
		}
		for (size_t k = 0; k < j; k++)
			if (d->v[k].target && !strcmp(d->v[k].target, x->target))
				return cf_err(CF_EINVAL, "postgres/%s.sql and postgres/%s.sql would both be loaded into "
					      "database %s: choose one with --database, or give one --rename %s=NEW",
					      d->v[k].qual, x->qual, x->target, x->qual);
		(*nchosen)++;
	}
	return CF_OK;
}

int cf_restore_postgres(struct cf_repo *r, const struct cf_snapshot *s, const struct cf_db_restore_opts *o,
			size_t *loaded)
{
	struct dumps *d = calloc(1, sizeof(*d));
	struct cf_pgurl u = CF_PGURL_INIT;
	size_t nchosen;
	int rc;

	*loaded = 0;
	if (!d)
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < o->nrenames; i++) {
		const char *eq = strchr(o->renames[i], '=');
		if (!eq || eq == o->renames[i] || !eq[1]) {
			rc = cf_err(CF_EINVAL, "--rename wants OLD=NEW, not '%s'", o->renames[i]);
			goto out;
		}
	}
	if ((rc = cf_pgurl_parse(&u, o->url)) || (rc = find_dumps(r, s, d)) || (rc = plan(d, o, &nchosen)))
		goto out;
	if (!nchosen) {
		rc = cf_err(CF_ENOENT, "the snapshot holds no PostgreSQL dumps (nothing under /postgres)");
		goto out;
	}
	for (size_t i = 0; i < d->n; i++) {
		const struct dump *x = &d->v[i];
		if (!x->target)
			continue;
		struct blobsrc b = { .r = r, .n = x->node };
		uint64_t bytes = 0;
		bool rename = strcmp(x->target, x->db) != 0;
		cf_info("loading postgres/%s.sql into %s%s%s", x->qual, u.who, rename ? " as " : "",
			rename ? x->target : "");
		rc = cf_pg_load(&u, x->target, read_blobs, &b, &bytes);
		if (b.rc)
			rc = b.rc;
		cf_buf_release(&b.cur);
		if (rc) {
			rc = cf_err_prefix(rc, "restore of database %s into %s stopped (%s left as it was)", x->qual,
					   u.who, x->target);
			goto out;
		}
		(*loaded)++;
	}
out:
	dumps_release(d);
	free(d);
	cf_pgurl_release(&u);
	return rc;
}
