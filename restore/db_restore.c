/* db_restore.c - see db_restore.h. */
#include "restore/db_restore.h"
#include "common/array.h"
#include "sources/mariadb_load.h"
#include "sources/dburl.h"
#include "repo/tree.h"
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
	size_t next;        /* next content blob */
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

/* One dump found in the snapshot: mariadb/<db>.sql, or
 * mariadb/<server>/<db>.sql for the second and later --mariadb of a backup. */
struct dump {
	const struct cf_node *node; /* borrowed from one of the loaded trees */
	char *db;                   /* "shop" */
	char *qual;                 /* "shop" or "127.0.0.1-2/shop" */
	const char *target;         /* name to load into */
};

struct dumps {
	struct dump *v;
	size_t n, cap;
	struct cf_tree *trees;      /* /mariadb and its sub-directories */
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
	free(d->trees);
	free(d->v);
}

/* "OLD=NEW" naming db (by its plain or qualified name): NEW, else NULL. */
static const char *match_eq(const char *const *list, size_t n, const struct dump *x)
{
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(list[i], '=');
		size_t l = (size_t)(eq - list[i]);
		if ((strlen(x->qual) == l && !strncmp(list[i], x->qual, l)) ||
		    (strlen(x->db) == l && !strncmp(list[i], x->db, l)))
			return eq + 1;
	}
	return NULL;
}

static bool names(const char *want, const struct dump *x)
{
	return !strcmp(want, x->db) || !strcmp(want, x->qual);
}

static int add_dumps(struct dumps *d, const struct cf_tree *t, const char *sub)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct cf_node *n = &t->nodes[i];
		size_t l = strlen(n->name);
		if (n->type != CF_NODE_FILE || l < 5 || strcmp(n->name + l - 4, ".sql"))
			continue;
		int grc = CF_GROW(d->v, d->n + 1, d->cap);
		if (grc)
			return grc;
		struct dump *x = &d->v[d->n];
		memset(x, 0, sizeof(*x));
		x->node = n;
		x->db = strndup(n->name, l - 4);
		if (!x->db)
			return cf_err(CF_ENOMEM, "out of memory");
		if (sub ? asprintf(&x->qual, "%s/%s", sub, x->db) < 0 : !(x->qual = strdup(x->db))) {
			x->qual = NULL;
			free(x->db);
			return cf_err(CF_ENOMEM, "out of memory");
		}
		d->n++;
	}
	return CF_OK;
}

/* Every dump under /mariadb, its own files first, then one level of
 * per-server sub-directories. */
static int find_dumps(struct cf_repo *r, const struct cf_snapshot *s, struct dumps *d)
{
	struct cf_tree root = CF_TREE_INIT;
	int rc;

	if ((rc = cf_repo_load_tree(r, s->tree, &root)))
		return rc;
	const struct cf_node *m = cf_tree_find(&root, "mariadb");
	if (!m || m->type != CF_NODE_DIR || !m->has_subtree) {
		rc = cf_err(CF_ENOENT, "the snapshot holds no MariaDB dumps (no /mariadb directory)");
		goto out;
	}
	if (!(d->trees = calloc(1, sizeof(*d->trees)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	d->trees[0] = (struct cf_tree)CF_TREE_INIT;
	d->ntrees = 1;
	if ((rc = cf_repo_load_tree(r, m->subtree, &d->trees[0])))
		goto out;
	size_t nsub = 0;
	for (size_t i = 0; i < d->trees[0].n; i++)
		nsub += d->trees[0].nodes[i].type == CF_NODE_DIR && d->trees[0].nodes[i].has_subtree;
	/* sized once: dumps point into these trees, so they must not move */
	void *t = realloc(d->trees, (1 + nsub) * sizeof(*d->trees));
	if (!t) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	d->trees = t;
	if ((rc = add_dumps(d, &d->trees[0], NULL)))
		goto out;
	for (size_t i = 0; i < d->trees[0].n; i++) {
		const struct cf_node *n = &d->trees[0].nodes[i];
		if (n->type != CF_NODE_DIR || !n->has_subtree)
			continue;
		struct cf_tree *sub = &d->trees[d->ntrees];
		*sub = (struct cf_tree)CF_TREE_INIT;
		d->ntrees++;
		if ((rc = cf_repo_load_tree(r, n->subtree, sub)) || (rc = add_dumps(d, sub, n->name)))
			goto out;
	}
out:
	cf_tree_release(&root);
	return rc;
}

/* "shop, blog, 127.0.0.1-2/shop" (cut short past what fits) */
static void list_dumps(const struct dumps *d, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = 0;
	for (size_t j = 0; j < d->n && len < cap; j++) {
		int k = snprintf(out + len, cap - len, "%s%s", j ? ", " : "", d->v[j].qual);
		len += k > 0 ? (size_t)k : 0;
	}
	if (len >= cap && cap > 4)
		memcpy(out + cap - 4, "...", 4);
}

/* Decide what loads where, before anything is loaded: every --database
 * and the OLD of every --rename must name a dump (a typo would load the
 * database under its own name, over the live one), a renamed dump must be
 * one that is loaded, and no two dumps may land in the same database. */
static int plan(struct dumps *d, const struct cf_db_restore_opts *o, size_t *nchosen)
{
	char have[512];
	*nchosen = 0;
	list_dumps(d, have, sizeof(have));
	for (size_t i = 0; i < o->ndatabases; i++) {
		bool found = false;
		for (size_t j = 0; j < d->n && !found; j++)
			found = names(o->databases[i], &d->v[j]);
		if (!found)
			return cf_err(CF_ENOENT, "database %s is not in the snapshot (no /mariadb/%s.sql; it "
				      "has: %s)", o->databases[i], o->databases[i], have);
	}
	for (size_t i = 0; i < o->nrenames; i++) {
		const char *eq = strchr(o->renames[i], '=');
		size_t l = (size_t)(eq - o->renames[i]);
		bool found = false, chosen = false;
		for (size_t j = 0; j < d->n; j++) {
			const struct dump *x = &d->v[j];
			if ((strlen(x->qual) != l || strncmp(o->renames[i], x->qual, l)) &&
			    (strlen(x->db) != l || strncmp(o->renames[i], x->db, l)))
				continue;
			found = true;
			bool want = !o->ndatabases;
			for (size_t k = 0; k < o->ndatabases && !want; k++)
				want = names(o->databases[k], x);
			chosen = chosen || want;
		}
		if (!found)
			return cf_err(CF_ENOENT, "--rename %s: database %.*s is not in the snapshot (it has: %s); "
				      "nothing was loaded", o->renames[i], (int)l, o->renames[i], have);
		if (!chosen)
			return cf_err(CF_EINVAL, "--rename %s: database %.*s is not among the --database "
				      "ones to load; nothing was loaded", o->renames[i], (int)l, o->renames[i]);
	}
	for (size_t j = 0; j < d->n; j++) {
		struct dump *x = &d->v[j];
		bool want = !o->ndatabases;
		for (size_t i = 0; i < o->ndatabases && !want; i++)
			want = names(o->databases[i], x);
		if (!want)
			continue;
		const char *to = match_eq(o->renames, o->nrenames, x);
		x->target = to ? to : x->db;
		for (size_t k = 0; k < j; k++)
			if (d->v[k].target && !strcmp(d->v[k].target, x->target))
				return cf_err(CF_EINVAL, "mariadb/%s.sql and mariadb/%s.sql would both be loaded "
					      "into database %s: choose one with --database, or give one "
					      "--rename %s=NEW", d->v[k].qual, x->qual, x->target, x->qual);
		(*nchosen)++;
	}
	return CF_OK;
}

int cf_restore_mariadb(struct cf_repo *r, const struct cf_snapshot *s,
		       const struct cf_db_restore_opts *o, size_t *loaded)
{
	struct dumps d = { 0 };
	struct cf_dburl u = CF_DBURL_INIT;
	char where[300];
	size_t nchosen;
	int rc;

	*loaded = 0;
	for (size_t i = 0; i < o->nrenames; i++) {
		const char *eq = strchr(o->renames[i], '=');
		if (!eq || eq == o->renames[i] || !eq[1])
			return cf_err(CF_EINVAL, "--rename wants OLD=NEW, not '%s'", o->renames[i]);
	}
	if ((rc = cf_dburl_parse(&u, o->url)))
		return rc;
	cf_dburl_describe(&u, where, sizeof(where));
	if ((rc = find_dumps(r, s, &d)) || (rc = plan(&d, o, &nchosen)))
		goto out;
	if (!nchosen) {
		rc = cf_err(CF_ENOENT, "the snapshot holds no MariaDB dumps (nothing under /mariadb)");
		goto out;
	}
	struct cf_buf failed = CF_BUF_INIT;
	size_t nfailed = 0;
	int first_rc = CF_OK;
	for (size_t i = 0; i < d.n; i++) {
		const struct dump *x = &d.v[i];
		if (!x->target)
			continue;
		bool rename = strcmp(x->target, x->db) != 0;
		struct blobsrc b = { .r = r, .n = x->node };
		struct cf_mariadb_load_stats st;
		cf_info("loading mariadb/%s.sql into %s%s%s", x->qual, where, rename ? " as " : "",
			rename ? x->target : "");
		rc = cf_mariadb_load_replace(&u, x->target, read_blobs, &b, o->load_flags, &st);
		if (b.rc)
			rc = b.rc;
		cf_buf_release(&b.cur);
		if (rc == CF_EINTR || rc == CF_ENOMEM)
			goto out_failed;
		if (rc) {
			/* One database that does not load does not stop the others. */
			rc = cf_err_prefix(rc, "restore of database %s into %s failed", x->qual, where);
			if (nchosen > 1)
				cf_warn("%s", cf_errmsg(rc));
			first_rc = first_rc ? first_rc : rc;
			if ((failed.len && (rc = cf_buf_adds(&failed, ", "))) ||
			    (rc = cf_buf_adds(&failed, x->target)))
				goto out_failed;
			nfailed++;
			continue;
		}
		(*loaded)++;
	}
	rc = CF_OK;
	if (nfailed > 1 || (nfailed && *loaded))
		rc = cf_err(CF_EPARTIAL, "%zu of %zu databases were not restored: %s (named above); the others were",
			    nfailed, nchosen, (char *)failed.data);
	else if (nfailed)
		rc = first_rc;  /* the one database: its own message stands */
out_failed:
	cf_buf_release(&failed);
out:
	dumps_release(&d);
	cf_dburl_release(&u);
	return rc;
}
