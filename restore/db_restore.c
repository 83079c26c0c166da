/* db_restore.c - see db_restore.h. */
#include "db_restore.h"
#include "mariadb_load.h"
#include "../agent/dburl.h"
#include "../repo/tree.h"
#include "../common/error.h"
#include "../common/util.h"

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
			return -1;
		b->next++;
		b->pos = 0;
	}
	size_t k = b->cur.len - b->pos < n ? b->cur.len - b->pos : n;
	memcpy(buf, b->cur.data + b->pos, k);
	b->pos += k;
	return (ssize_t)k;
}

static const char *renamed(const struct cf_db_restore_opts *o, const char *db)
{
	size_t l = strlen(db);
	for (size_t i = 0; i < o->nrenames; i++)
		if (!strncmp(o->renames[i], db, l) && o->renames[i][l] == '=')
			return o->renames[i] + l + 1;
	return NULL;
}

static bool chosen(const struct cf_db_restore_opts *o, const char *db)
{
	if (!o->ndatabases)
		return true;
	for (size_t i = 0; i < o->ndatabases; i++)
		if (!strcmp(o->databases[i], db))
			return true;
	return false;
}

int cf_restore_mariadb(struct cf_repo *r, const struct cf_snapshot *s,
		       const struct cf_db_restore_opts *o, size_t *loaded)
{
	struct cf_tree root = CF_TREE_INIT, dir = CF_TREE_INIT;
	struct cf_dburl u = CF_DBURL_INIT;
	char where[300];
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
	if ((rc = cf_repo_load_tree(r, s->tree, &root)))
		goto out;
	const struct cf_node *m = cf_tree_find(&root, "mariadb");
	if (!m || m->type != CF_NODE_DIR || !m->has_subtree) {
		rc = cf_err(CF_ENOENT, "the snapshot holds no MariaDB dumps (no /mariadb directory)");
		goto out;
	}
	if ((rc = cf_repo_load_tree(r, m->subtree, &dir)))
		goto out;
	for (size_t i = 0; i < o->ndatabases; i++) {
		char name[512];
		snprintf(name, sizeof(name), "%s.sql", o->databases[i]);
		if (!cf_tree_find(&dir, name)) {
			rc = cf_err(CF_ENOENT, "database %s is not in the snapshot (no /mariadb/%s)",
				    o->databases[i], name);
			goto out;
		}
	}
	for (size_t i = 0; i < dir.n; i++) {
		const struct cf_node *n = &dir.nodes[i];
		size_t l = strlen(n->name);
		if (n->type != CF_NODE_FILE || l < 5 || strcmp(n->name + l - 4, ".sql"))
			continue;
		char *db = strndup(n->name, l - 4);
		if (!db) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		if (!chosen(o, db)) {
			free(db);
			continue;
		}
		const char *target = renamed(o, db);
		struct blobsrc b = { .r = r, .n = n };
		struct cf_mariadb_load_stats st;
		cf_info("loading %s into %s%s%s", db, where, target ? " as " : "", target ? target : "");
		rc = cf_mariadb_load(&u, target, read_blobs, &b, &st);
		if (b.rc)
			rc = b.rc;
		cf_buf_release(&b.cur);
		if (rc) {
			rc = cf_err_prefix(rc, "restore of database %s into %s stopped", db, where);
			free(db);
			goto out;
		}
		(*loaded)++;
		free(db);
	}
	if (!*loaded && !rc)
		rc = cf_err(CF_ENOENT, "no database dump was restored");
out:
	cf_tree_release(&root);
	cf_tree_release(&dir);
	cf_dburl_release(&u);
	return rc;
}
