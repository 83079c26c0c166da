#include "cli/cli.h"
#include "engine/backup.h"
#include "restore/restore.h"
#include "repo/tree.h"
#include "crypto/crypto.h"
#include "common/error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cmd_repo.c - init, snapshots, ls, check, key, unlock. */

static int parse_chunk_size(const char *s, struct cf_chunker_params *p)
{
	unsigned long a, b, m;
	if (sscanf(s, "%lu,%lu,%lu", &a, &b, &m) != 3)
		return cf_err(CF_EINVAL, "--chunk-size wants MIN,AVG,MAX in KiB, e.g. 512,1024,8192");
	p->min = (uint32_t)(a * 1024);
	p->avg = (uint32_t)(b * 1024);
	p->max = (uint32_t)(m * 1024);
	return cf_chunker_params_check(p);
}

int cmd_init(struct cli *c)
{
	struct cf_backend *be = NULL;
	struct cf_repo *r = NULL;
	struct cf_repo_init_opts o = { .compression = c->compression };
	char *pw = NULL;
	int rc;

	if (c->chunk_size && (rc = parse_chunk_size(c->chunk_size, &o.chunker)))
		return fail(rc);
	o.version = c->repo_version;
	o.kdf_opslimit = (uint64_t)c->kdf_ops;
	o.kdf_memlimit = (uint64_t)c->kdf_mem_kib * 1024;
	if ((rc = open_backend(c, &be)))
		return fail(rc);
	if ((rc = cli_password(c, true, &pw))) {
		cf_backend_free(be);
		return fail(rc);
	}
	rc = cf_repo_init(be, pw, strlen(pw), &o, &r);
	cli_password_free(pw);
	if (rc)
		return fail(rc);
	if (!c->quiet) {
		char id[CF_ID_HEX];
		cf_hex(cf_repo_config(r)->id, CF_ID_LEN, id);
		printf("created coffer repository %.10s at %s\n", id, cf_repo_backend(r)->location);
		printf("Keep the password safe: without it the data cannot be restored.\n");
	}
	cf_repo_free(r);
	return EXIT_OK;
}

/* Under a snapshot's rows, in the Paths column, one line per source it
 * records (none for a snapshot written before sources were recorded):
 * "source: volume /data/app", "source: mariadb mariadb from mariadb://db:3306
 * (databases app, shop)", "source: sqlite /data/app.db", "source: command
 * postgres/x.sql". */
static void print_sources(const struct cf_snapshot *s)
{
	for (size_t k = 0; k < s->nsources; k++) {
		const struct cf_snapshot_source *e = &s->sources[k];
		printf("%-8s  %-19s  %-16s  %-16s  source: %s %s", "", "", "", "",
		       cf_source_kind_name((int)e->kind), e->path);
		if (e->url)
			printf(" from %s", e->url);
		for (size_t d = 0; d < e->ndbs; d++)
			printf("%s%s", d ? ", " : " (databases ", e->dbs[d].name);
		printf("%s\n", e->ndbs ? ")" : "");
	}
}

int cmd_snapshots(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot *s = NULL;
	struct cf_snapshot_filter f;
	size_t n = 0;
	int rc;

	if ((rc = open_repo(c, &r, 0, false)))
		return fail(rc);
	if ((rc = cf_repo_snapshots(r, &s, &n, NULL))) {
		cf_repo_free(r);
		return fail(rc);
	}
	build_filter(c, &f);
	if (c->json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			if (cf_snapshot_matches(&s[i], &f))
				json_array_append_new(arr, cf_snapshot_to_json(&s[i]));
		char *t = json_dumps(arr, JSON_PRESERVE_ORDER);
		if (t)
			puts(t);
		free(t);
		json_decref(arr);
	} else {
		size_t shown = 0;
		printf("%-8s  %-19s  %-16s  %-16s  %s\n", "ID", "Time", "Host", "Tags", "Paths");
		printf("--------------------------------------------------------------------------------\n");
		for (size_t i = 0; i < n; i++) {
			if (!cf_snapshot_matches(&s[i], &f))
				continue;
			char hex[CF_ID_HEX], t[32], tags[256] = "";
			cf_hex(s[i].id, CF_ID_LEN, hex);
			local_time(s[i].time_ns, t, sizeof(t));
			for (size_t k = 0; k < s[i].ntags; k++) {
				size_t l = strlen(tags);
				snprintf(tags + l, sizeof(tags) - l, "%s%s", k ? "," : "", s[i].tags[k]);
			}
			for (size_t k = 0; k < (s[i].npaths ? s[i].npaths : 1); k++)
				printf("%-8.8s  %-19s  %-16s  %-16s  %s\n", k ? "" : hex, k ? "" : t,
				       k ? "" : s[i].hostname, k ? "" : tags,
				       s[i].npaths ? s[i].paths[k] : "");
			print_sources(&s[i]);
			shown++;
		}
		printf("--------------------------------------------------------------------------------\n");
		printf("%zu snapshots\n", shown);
	}
	cf_snapshots_free(s, n);
	cf_repo_free(r);
	return EXIT_OK;
}

static const char *type_name(int t)
{
	switch (t) {
	case CF_NODE_FILE: return "file";
	case CF_NODE_DIR: return "dir";
	case CF_NODE_SYMLINK: return "symlink";
	case CF_NODE_FIFO: return "fifo";
	case CF_NODE_CHARDEV: return "chardev";
	case CF_NODE_BLOCKDEV: return "dev";
	default: return "socket";
	}
}

/* The node's mode as Go's os.FileMode, which restic's JSON carries: the
 * permission bits, the type as one high bit (dir 1<<31, symlink 1<<27,
 * device 1<<26 plus 1<<21 for a character device, named pipe 1<<25, socket
 * 1<<24) and setuid/setgid/sticky as 1<<23, 1<<22, 1<<20.  perm gets its
 * String() form, "drwxr-xr-x", "Lrwxrwxrwx", "Dcrw-rw-rw-". */
static uint32_t go_mode(const struct cf_node *n, char perm[32])
{
	static const char letters[] = "dalTLDpSugct?";
	uint32_t m = n->mode & 0777;
	switch (n->type) {
	case CF_NODE_DIR: m |= 1u << 31; break;
	case CF_NODE_SYMLINK: m |= 1u << 27; break;
	case CF_NODE_BLOCKDEV: m |= 1u << 26; break;
	case CF_NODE_CHARDEV: m |= 1u << 26 | 1u << 21; break;
	case CF_NODE_FIFO: m |= 1u << 25; break;
	case CF_NODE_SOCKET: m |= 1u << 24; break;
	default: break;
	}
	if (n->mode & 04000)
		m |= 1u << 23;
	if (n->mode & 02000)
		m |= 1u << 22;
	if (n->mode & 01000)
		m |= 1u << 20;
	size_t k = 0;
	for (int i = 0; letters[i]; i++)
		if (m & (1u << (31 - i)))
			perm[k++] = letters[i];
	if (!k)
		perm[k++] = '-';
	for (int i = 8; i >= 0; i--)
		perm[k++] = m & (1u << i) ? "xwr"[i % 3] : '-';
	perm[k] = 0;
	return m;
}

static int ls_tree(struct cli *c, struct cf_repo *r, const uint8_t id[CF_ID_LEN], const char *prefix,
		   const char *only)
{
	struct cf_tree t = CF_TREE_INIT;
	int rc = cf_repo_load_tree(r, id, &t);
	if (rc)
		return rc;
	for (size_t i = 0; i < t.n && !rc; i++) {
		const struct cf_node *n = &t.nodes[i];
		char *p = NULL;
		if (asprintf(&p, "%s/%s", prefix, n->name) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		size_t pl = strlen(p), ol = only ? strlen(only) : 0;
		bool inside = !only || (pl >= ol && !strncmp(p, only, ol) && (p[ol] == 0 || p[ol] == '/'));
		bool above = only && !inside && !strncmp(only, p, pl) && only[pl] == '/';
		if (inside) {
			if (c->json) {
				/* restic's node (doc/075_scripting.rst); "struct_type"
				 * as restic 0.14 writes it, "message_type" as newer ones */
				char mt[64], at[64], ct[64], perm[32];
				uint32_t mode = go_mode(n, perm);
				cf_format_time(n->mtime_ns, mt, sizeof(mt));
				cf_format_time(n->atime_ns, at, sizeof(at));
				cf_format_time(n->ctime_ns, ct, sizeof(ct));
				json_line(stdout, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s,"
							    " s:s, s:s, s:I, s:s}", "message_type", "node",
						      "name", n->name, "type", type_name(n->type), "path", p,
						      "uid", (json_int_t)n->uid, "gid", (json_int_t)n->gid,
						      "size", (json_int_t)n->size, "mode", (json_int_t)mode,
						      "permissions", perm, "mtime", mt, "atime", at, "ctime", ct,
						      "inode", (json_int_t)n->ino, "struct_type", "node"));
			} else {
				puts(p);
			}
		}
		if ((inside || above) && n->type == CF_NODE_DIR && n->has_subtree)
			rc = ls_tree(c, r, n->subtree, p, only);
		free(p);
	}
	cf_tree_release(&t);
	return rc;
}

int cmd_ls(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_snapshot s;
	int rc;
	memset(&s, 0, sizeof(s));
	if (c->nargs < 1)
		return fail(cf_err(CF_EINVAL, "ls: which snapshot? (an id or 'latest')"));
	/* SNAPSHOT:FOLDER (restic's): the folder's tree, its paths relative to it */
	char *spec = NULL, *sub = NULL;
	uint8_t root[CF_ID_LEN];
	if ((rc = split_snapshot_arg(c->args[0], &spec, &sub)))
		return fail(rc);
	if ((rc = open_repo(c, &r, 0, true))) {
		free(spec);
		free(sub);
		return fail(rc);
	}
	if ((rc = pick_snapshot(c, r, spec, &s)))
		goto out;
	memcpy(root, s.tree, CF_ID_LEN);
	if (sub) {
		struct cf_node n;
		if ((rc = check_subfolder(r, &s, sub)) || (rc = cf_tree_find_path(r, s.tree, sub, &n)))
			goto out;
		memcpy(root, n.subtree, CF_ID_LEN);
		bool has = n.has_subtree;
		cf_node_release(&n);
		if (!has) {
			rc = cf_err(CF_ECORRUPT, "folder %s has no tree", sub);
			goto out;
		}
	}
	if (c->json) {
		json_t *j = cf_snapshot_to_json(&s);
		if (j) {
			json_object_set_new(j, "message_type", json_string("snapshot"));
			json_object_set_new(j, "struct_type", json_string("snapshot"));
		}
		json_line(stdout, j);
	}
	const char *only = c->nargs > 1 ? c->args[1] : NULL;
	char *o = NULL;
	if (only) {
		size_t l = strlen(only);
		while (l > 1 && only[l - 1] == '/')
			l--;
		/* within a folder, a relative PATH is the folder's */
		if (sub && only[0] != '/' && asprintf(&o, "/%.*s", (int)l, only) < 0)
			o = NULL;
		else if (!o)
			o = strndup(only, l);
	}
	rc = ls_tree(c, r, root, "", o);
	free(o);
out:
	free(spec);
	free(sub);
	cf_snapshot_release(&s);
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

int cmd_check(struct cli *c)
{
	struct cf_repo *r = NULL;
	struct cf_check_opts o = { .read_data = c->read_data };
	struct cf_check_stats st;
	char what[96] = "";
	int rc;
	memset(&st, 0, sizeof(st));
	if (c->read_data_subset) {
		if (c->read_data)
			return fail(cf_err(CF_EINVAL, "--read-data and --read-data-subset exclude each other"));
		if ((rc = cli_parse_subset(c->read_data_subset, &o)))
			return fail(rc);
	}
	if ((rc = open_repo(c, &r, 1, true)))
		return fail(rc);
	rc = cf_repo_check_opts(r, &o, &st);
	if (c->read_data)
		snprintf(what, sizeof(what), " (all data read)");
	else if (c->read_data_subset)
		snprintf(what, sizeof(what), " (data of %llu packs read, subset %s)",
			 (unsigned long long)st.packs_read, c->read_data_subset);
	if (c->json && (rc == CF_OK || rc == CF_ECORRUPT)) {
		/* restic's check summary (doc/075_scripting.rst); broken packs
		 * are named on stderr, not listed here yet */
		json_line(stdout, json_pack("{s:s, s:I, s:[], s:b, s:b, s:I, s:I, s:I, s:I, s:I}",
			"message_type", "summary", "num_errors", (json_int_t)st.errors, "broken_packs",
			"suggest_repair_index", 0, "suggest_prune", 0,
			"snapshots", (json_int_t)st.snapshots, "trees", (json_int_t)st.trees,
			"packs", (json_int_t)st.packs, "packs_read", (json_int_t)st.packs_read,
			"blobs_read", (json_int_t)st.blobs_read));
	} else if (!c->quiet)
		printf("checked %llu snapshots, %llu trees, %llu packs%s: %s\n",
		       (unsigned long long)st.snapshots, (unsigned long long)st.trees,
		       (unsigned long long)st.packs, what, st.errors ? "PROBLEMS FOUND" : "no errors");
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

int cmd_key(struct cli *c)
{
	struct cf_repo *r = NULL;
	int rc;
	const char *sub = c->nargs ? c->args[0] : "list";
	if (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "passwd") && strcmp(sub, "remove"))
		return fail(cf_err(CF_EINVAL, "key: unknown subcommand '%s' (list, add, remove, passwd)", sub));
	if (!strcmp(sub, "remove") && c->nargs < 2)
		return fail(cf_err(CF_EINVAL, "key remove: which key? (an id prefix from 'key list')"));
	if ((rc = open_repo(c, &r, 0, false)))
		return fail(rc);
	if (!strcmp(sub, "list")) {
		struct cf_keyinfo *k = NULL;
		size_t n = 0;
		if (!(rc = cf_repo_keys(r, &k, &n))) {
			if (c->json) {
				json_t *a = json_array();
				for (size_t i = 0; i < n; i++)
					json_array_append_new(a, json_pack("{s:b, s:s, s:s, s:s, s:s}",
						"current", k[i].current, "id", k[i].name,
						"userName", k[i].user ? k[i].user : "",
						"hostName", k[i].host ? k[i].host : "",
						"created", k[i].created ? k[i].created : ""));
				char *t = json_dumps(a, 0);
				if (t)
					puts(t);
				free(t);
				json_decref(a);
			} else {
				printf(" %-10s %-16s %-24s %s\n", "ID", "User", "Host", "Created");
				for (size_t i = 0; i < n; i++)
					printf("%c%-10.8s %-16s %-24s %s\n", k[i].current ? '*' : ' ', k[i].name,
					       k[i].user ? k[i].user : "", k[i].host ? k[i].host : "",
					       k[i].created ? k[i].created : "");
			}
		}
		cf_keyinfo_free(k, n);
	} else if (!strcmp(sub, "add") || !strcmp(sub, "passwd")) {
		char *pw = NULL, name[CF_ID_HEX];
		if (!(rc = cli_new_password(c, &pw))) {
			rc = cf_repo_key_add(r, pw, strlen(pw), (uint64_t)c->kdf_ops,
					     (uint64_t)c->kdf_mem_kib * 1024, name);
			cli_password_free(pw);
		}
		if (!rc && !strcmp(sub, "passwd")) {
			char old[CF_ID_HEX];
			snprintf(old, sizeof(old), "%s", cf_repo_key_name(r));
			char path[128];
			snprintf(path, sizeof(path), "keys/%s", old);
			/* the new key is written (and synced) before the old one goes */
			rc = cf_be_remove(cf_repo_backend(r), path);
			if (!rc && !c->quiet)
				printf("password changed: key %.8s replaces %.8s\n", name, old);
		} else if (!rc && !c->quiet) {
			printf("added key %.8s\n", name);
		}
	} else if (!strcmp(sub, "remove")) {
		if (c->nargs < 2)
			rc = cf_err(CF_EINVAL, "key remove: which key? (an id prefix from 'key list')");
		else if (!(rc = cf_repo_key_remove(r, c->args[1])) && !c->quiet)
			printf("removed key %s\n", c->args[1]);
	} else {
		rc = cf_err(CF_EINVAL, "key: unknown subcommand '%s' (list, add, remove, passwd)", sub);
	}
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

int cmd_unlock(struct cli *c)
{
	struct cf_repo *r = NULL;
	int removed = 0, rc;
	if ((rc = open_repo(c, &r, 0, false)))
		return fail(rc);
	rc = cf_repo_unlock_stale(r, c->remove_all, &removed);
	if (!rc && !c->quiet)
		printf("removed %d %slocks\n", removed, c->remove_all ? "" : "stale ");
	cf_repo_free(r);
	return rc ? fail(rc) : EXIT_OK;
}

