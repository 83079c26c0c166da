/*
 * cmd_diff.c - coffer diff SNAP1 SNAP2: which paths were added, removed or
 * changed between two snapshots, as restic prints them:
 *   +  added      -  removed      M  content changed
 *   U  metadata changed (mode, owner, mtime, link target)      T  type changed
 * Directories whose subtree id is the same are skipped without being read,
 * so comparing two incremental snapshots costs only what changed.
 */
#include "cli/cli.h"
#include "repo/tree.h"
#include "common/error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct diffstat {
	uint64_t added, removed, changed, meta;
};

static void emit(struct cli *c, char mod, const char *path, bool dir)
{
	if (c->json) {
		char m[2] = { mod, 0 };
		json_t *j = json_pack("{s:s, s:s, s:s}", "message_type", "change", "path", path,
				      "modifier", m);
		char *t = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		if (t)
			puts(t);
		free(t);
		json_decref(j);
	} else {
		printf("%c    %s%s\n", mod, path, dir ? "/" : "");
	}
}

static int diff_trees(struct cli *c, struct cf_repo *r, const uint8_t *a, const uint8_t *b,
		      const char *prefix, struct diffstat *st);

/* Everything under a directory that exists on one side only. */
static int one_side(struct cli *c, struct cf_repo *r, const struct cf_node *n, const char *path,
		    char mod, struct diffstat *st)
{
	emit(c, mod, path, n->type == CF_NODE_DIR);
	if (mod == '+')
		st->added++;
	else
		st->removed++;
	if (n->type != CF_NODE_DIR || !n->has_subtree)
		return CF_OK;
	return mod == '+' ? diff_trees(c, r, NULL, n->subtree, path, st)
			  : diff_trees(c, r, n->subtree, NULL, path, st);
}

static bool same_meta(const struct cf_node *x, const struct cf_node *y)
{
	return x->mode == y->mode && x->uid == y->uid && x->gid == y->gid &&
	       (x->type == CF_NODE_DIR || x->mtime_ns == y->mtime_ns) &&
	       !strcmp(x->linktarget ? x->linktarget : "", y->linktarget ? y->linktarget : "");
}

static bool same_content(const struct cf_node *x, const struct cf_node *y)
{
	return x->size == y->size && x->ncontent == y->ncontent &&
	       (!x->ncontent || !memcmp(x->content, y->content, x->ncontent * CF_ID_LEN));
}

static int diff_trees(struct cli *c, struct cf_repo *r, const uint8_t *a, const uint8_t *b,
		      const char *prefix, struct diffstat *st)
{
	struct cf_tree ta = CF_TREE_INIT, tb = CF_TREE_INIT;
	int rc = CF_OK;
	if (a && (rc = cf_repo_load_tree(r, a, &ta)))
		goto out;
	if (b && (rc = cf_repo_load_tree(r, b, &tb)))
		goto out;
	size_t i = 0, k = 0;
	while (!rc && (i < ta.n || k < tb.n)) {
		int cmp = i == ta.n ? 1 : k == tb.n ? -1 : strcmp(ta.nodes[i].name, tb.nodes[k].name);
		const struct cf_node *x = cmp <= 0 ? &ta.nodes[i] : NULL, *y = cmp >= 0 ? &tb.nodes[k] : NULL;
		char *path = NULL;
		if (asprintf(&path, "%s/%s", prefix, (x ? x : y)->name) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		if (!y) {
			rc = one_side(c, r, x, path, '-', st);
		} else if (!x) {
			rc = one_side(c, r, y, path, '+', st);
		} else if (x->type != y->type) {
			emit(c, 'T', path, y->type == CF_NODE_DIR);
			st->changed++;
		} else if (x->type == CF_NODE_DIR) {
			if (!same_meta(x, y)) {
				emit(c, 'U', path, true);
				st->meta++;
			}
			if (x->has_subtree != y->has_subtree ||
			    (x->has_subtree && memcmp(x->subtree, y->subtree, CF_ID_LEN)))
				rc = diff_trees(c, r, x->has_subtree ? x->subtree : NULL,
						y->has_subtree ? y->subtree : NULL, path, st);
		} else if (!same_content(x, y)) {
			emit(c, 'M', path, false);
			st->changed++;
		} else if (!same_meta(x, y)) {
			emit(c, 'U', path, false);
			st->meta++;
		}
		free(path);
		if (cmp <= 0)
			i++;
		if (cmp >= 0)
			k++;
	}
out:
	cf_tree_release(&ta);
	cf_tree_release(&tb);
	return rc;
}

int cmd_diff(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s1, s2;
	struct diffstat st = { 0, 0, 0, 0 };
	int rc;

	memset(&s1, 0, sizeof(s1));
	memset(&s2, 0, sizeof(s2));
	if (c->nargs != 2)
		return fail(cf_err(CF_EINVAL, "diff: give two snapshots (ids or 'latest')"));
	if ((rc = open_repo(c, &r, 1, true)))
		return fail(rc);
	if (!(rc = pick_snapshot(c, r, c->args[0], &s1)) && !(rc = pick_snapshot(c, r, c->args[1], &s2)))
		rc = diff_trees(c, r, s1.tree, s2.tree, "", &st);
	if (!rc && !c->quiet) {
		if (c->json)
			printf("{\"message_type\":\"statistics\",\"added\":%llu,\"removed\":%llu,"
			       "\"changed\":%llu,\"metadata_changed\":%llu}\n",
			       (unsigned long long)st.added, (unsigned long long)st.removed,
			       (unsigned long long)st.changed, (unsigned long long)st.meta);
		else
			printf("\n%llu added, %llu removed, %llu changed, %llu with changed metadata\n",
			       (unsigned long long)st.added, (unsigned long long)st.removed,
			       (unsigned long long)st.changed, (unsigned long long)st.meta);
	}
	cf_snapshot_release(&s1);
	cf_snapshot_release(&s2);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}
