/*
 * backup.c - one backup run (see backup.h for the design).
 *
 * cf_backup_run() turns the options into the virtual root (vroot.c), finds
 * the parent snapshot and its directory cache, starts the chunk queue's
 * workers (chunkq.c), the scanner (progress.c) and the parent trees' loaders
 * (ahead.c), walks (eng_save_vdir), waits for every chunk, flushes the packs
 * and the index, and writes the snapshot last; then the directory cache for
 * the next run.
 *
 * Invariants: nothing is written to the snapshot list before every blob it
 * names is stored and flushed and the session is verified (a concurrent
 * prune); every thread the run started has ended when it returns, whatever
 * happened; a failure of the directory cache's file is a warning only.
 *
 * The engine's files: chunkq.c (chunk buffers, the queue and its workers),
 * cstream.c (chunk streams, holes), meta.c (stat to node), walk.c (files and
 * directories), fastpath.c (the directory cache), dirq.c (trees finished
 * later), ahead.c (parent trees read ahead), vroot.c (the root, streams),
 * progress.c; what they share is in engine_int.h.
 */
#include "engine/engine_int.h"

#include "common/array.h"
#include "crypto/crypto.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int find_parent(struct cf_repo *r, const struct cf_backup_opts *o, const char *host,
		       const char *const *paths, size_t npaths, struct cf_snapshot *parent, bool *found)
{
	struct cf_snapshot *list = NULL;
	size_t n = 0;
	*found = false;
	int rc = cf_repo_snapshots(r, &list, &n, NULL);
	if (rc)
		return rc;
	long pick = -1;
	if (o->parent) {
		for (size_t i = 0; i < n; i++)
			if (!memcmp(list[i].id, o->parent, CF_ID_LEN))
				pick = (long)i;
		if (pick < 0) {
			cf_snapshots_free(list, n);
			return cf_err(CF_ENOENT, "parent snapshot not found");
		}
	} else {
		struct cf_snapshot_filter f = { .host = host, .paths = (const char **)paths, .npaths = npaths,
						 .exact_paths = true };
		for (size_t i = n; i-- > 0 && pick < 0;)
			if (cf_snapshot_matches(&list[i], &f))
				pick = (long)i;
	}
	if (pick >= 0) {
		*parent = list[pick];
		memset(&list[pick], 0, sizeof(list[pick]));
		*found = true;
	}
	cf_snapshots_free(list, n);
	return CF_OK;
}

static int absolutize(const char *p, char **out)
{
	char cwd[4096];
	*out = NULL;
	if (p[0] == '/') {
		*out = strdup(p);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return cf_err_errno("getcwd");
		if (asprintf(out, "%s/%s", cwd, p) < 0)
			*out = NULL;
	}
	if (!*out)
		return cf_err(CF_ENOMEM, "out of memory");
	/* clean: drop "//", "/./" and a trailing "/" (".." is refused later) */
	char *s = *out, *d = *out;
	while (*s) {
		if (s[0] == '/' && (s[1] == '/' || (s[1] == '.' && (s[2] == '/' || !s[2])))) {
			s += s[1] == '/' ? 1 : 2;
			continue;
		}
		*d++ = *s++;
	}
	*d = 0;
	size_t len = strlen(*out);
	while (len > 1 && (*out)[len - 1] == '/')
		(*out)[--len] = 0;
	return CF_OK;
}

/* ---------------- the directory cache's file ---------------- */

/* <cache dir>/<repository id>/dirs-<keyed hash of host and paths>: one file
 * per backup set, whose name does not show the paths. */
static bool dc_file(struct cf_repo *r, const char *dir, const char *host, char *const *paths,
		    size_t npaths, char *out, size_t n)
{
	struct cf_buf k = CF_BUF_INIT;
	bool ok = cf_buf_add(&k, host, strlen(host) + 1) == CF_OK;
	for (size_t i = 0; ok && i < npaths; i++)
		ok = cf_buf_add(&k, paths[i], strlen(paths[i]) + 1) == CF_OK;
	uint8_t h[CF_ID_LEN];
	char rid[CF_ID_HEX], hh[CF_ID_HEX];
	if (ok && (ok = cf_repo_blob_id(r, k.data, k.len, h) == CF_OK)) {
		cf_hex(cf_repo_config(r)->id, CF_ID_LEN, rid);
		cf_hex(h, 16, hh);
		ok = (size_t)snprintf(out, n, "%s/%s/dirs-%s", dir, rid, hh) < n;
	}
	cf_buf_release(&k);
	return ok;
}

/* The parent snapshot's directories, if the cache file describes them. */
static void dc_load(struct ctx *c, const char *file, const uint8_t parent[CF_ID_LEN])
{
	struct cf_buf raw = CF_BUF_INIT, plain = CF_BUF_INIT;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return; /* none yet */
	struct stat st;
	const char *why = NULL;
	if (fstat(fd, &st) < 0 || cf_buf_grow(&raw, (size_t)st.st_size + 1) ||
	    read(fd, raw.data, (size_t)st.st_size + 1) != st.st_size) {
		why = "cannot read it";
	} else {
		raw.len = (size_t)st.st_size;
		if (cf_repo_open_local(c->repo, raw.data, raw.len, &plain) ||
		    cf_dc_parse(plain.data, plain.len, &c->dc))
			why = cf_errmsg(CF_ECORRUPT);
		else if (memcmp(c->dc.snapshot, parent, CF_ID_LEN))
			cf_dc_release(&c->dc); /* of another snapshot: of no use */
		else
			cf_info("directory cache %s: %zu directories of the parent snapshot", file, c->dc.n);
	}
	if (why)
		cf_warn("warning: directory cache %s ignored: %s", file, why);
	close(fd);
	cf_buf_release(&raw);
	cf_buf_release(&plain);
}

/* Write this snapshot's directories.  A failure is a warning: the next
 * backup only walks slower. */
static void dc_save(struct ctx *c, const char *file, const uint8_t snap[CF_ID_LEN])
{
	struct cf_buf sealed = CF_BUF_INIT;
	char dir[4096];
	cf_dc_finish(&c->dc_out, snap, c->dc_count);
	snprintf(dir, sizeof(dir), "%s", file);
	*strrchr(dir, '/') = 0;
	int rc = cf_mkdirs(dir, 0700);
	if (!rc)
		rc = cf_repo_seal_local(c->repo, c->dc_out.data, c->dc_out.len, &sealed);
	if (!rc)
		rc = cf_write_atomic(file, sealed.data, sealed.len, 0600);
	if (rc)
		cf_warn("warning: directory cache %s not saved: %s", file, cf_errmsg(rc));
	cf_buf_release(&sealed);
}

/* Stream src lies inside a walked directory: the walk stores it in place of
 * the entry at its path.  A stream's path may be relative to the snapshot's
 * root ("data/app.sql") or absolute, with "//" or a trailing "/": the walk
 * compares the path it builds, "/data/app.sql", so that is what is kept. */
static int add_overlay(struct ctx *c, const struct cf_stream_source *src)
{
	if (CF_GROW(c->overlays, c->noverlays + 1, c->overlays_cap))
		return cf_err(CF_ENOMEM, "out of memory");
	struct overlay *ov = &c->overlays[c->noverlays];
	char *d = malloc(strlen(src->path) + 2);
	if (!d)
		return cf_err(CF_ENOMEM, "out of memory");
	ov->path = d;
	ov->src = src;
	c->noverlays++; /* freed with the rest, even on the error below */
	for (const char *p = src->path; *p;) {
		while (*p == '/')
			p++;
		size_t len = strcspn(p, "/");
		if (!len)
			break;
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return cf_err(CF_EINVAL, "path %s: '.' and '..' components are not allowed",
				      src->path);
		*d++ = '/';
		memcpy(d, p, len);
		d += len;
		p += len;
	}
	*d = 0;
	return CF_OK;
}

int cf_backup_run(struct cf_repo *r, const struct cf_backup_opts *o, struct cf_snapshot *out)
{
	struct ctx c;
	struct vnode root;
	struct cf_snapshot snap, parent;
	struct cf_snapshot_summary sum;
	struct cf_tree old = CF_TREE_INIT;
	char **abs = NULL;
	char host[256];
	bool have_parent = false;
	int rc;

	memset(&c, 0, sizeof(c));
	memset(&root, 0, sizeof(root));
	memset(&snap, 0, sizeof(snap));
	memset(&parent, 0, sizeof(parent));
	memset(&sum, 0, sizeof(sum));
	if (o->dry_run)
		cf_repo_set_dry_run(r);
	c.repo = r;
	c.o = o;
	c.sum = &sum;
	c.cp = cf_repo_config(r)->chunker;
	c.start = cf_now_mono();
	sum.backup_start_ns = cf_now_ns();

	if (!o->npaths && !o->nstreams)
		return cf_err(CF_EINVAL, "nothing to back up: give at least one path");
	if (!(abs = calloc(o->npaths + o->nstreams + 1, sizeof(*abs))))
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < o->npaths; i++) {
		if ((rc = absolutize(o->paths[i], &abs[i])))
			goto out;
		if ((rc = eng_vnode_insert(&root, abs[i], NULL)))
			goto out;
	}
	for (size_t i = 0; i < o->nstreams; i++) {
		if (!(abs[o->npaths + i] = strdup(o->streams[i].path))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		rc = eng_vnode_insert(&root, o->streams[i].path, &o->streams[i]);
		if (rc == CF_EEXIST) {
			if ((rc = add_overlay(&c, &o->streams[i])))
				goto out;
		}
		if (rc)
			goto out;
	}
	if (o->host)
		snprintf(host, sizeof(host), "%s", o->host);
	else if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = 0;

	if (!o->no_parent) {
		if ((rc = find_parent(r, o, host, (const char *const *)abs, o->npaths + o->nstreams,
				      &parent, &have_parent)))
			goto out;
		if (have_parent && cf_repo_load_tree(r, parent.tree, &old) != CF_OK) {
			cf_warn("warning: cannot read the parent snapshot's tree; reading every file");
			have_parent = false;
		}
	}
	/* the directory cache: not with a database copy standing in for a file
	 * inside a walked directory (its node does not come from lstat) */
	char dcf[4096];
	bool use_dc = o->cache_dir && !c.noverlays &&
		      dc_file(r, o->cache_dir, host, abs, o->npaths + o->nstreams, dcf, sizeof(dcf));
	if (use_dc && have_parent)
		dc_load(&c, dcf, parent.id);
	c.dc_write = use_dc && !o->dry_run && cf_dc_begin(&c.dc_out) == CF_OK;

	int threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1)
		threads = 1;
	if ((rc = eng_cq_start(&c, threads)))
		goto out;

	eng_scan_start(&c, abs, o->npaths);
	if (have_parent)
		eng_ahead_start(&c);
	rc = eng_save_vdir(&c, &root, have_parent ? &old : NULL, snap.tree);
	if (have_parent)
		eng_ahead_stop(&c);
	eng_scan_stop(&c);
	if (rc)
		goto out;
	eng_cq_stop(&c);
	if ((rc = cf_repo_flush(r)))
		goto out;

	/* the snapshot, last */
	snap.time_ns = o->time_ns ? o->time_ns : sum.backup_start_ns;
	if (!(snap.hostname = strdup(host))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	{
		char ub[256];
		const char *u = eng_user_name(getuid(), ub, sizeof(ub));
		snap.username = strdup(u ? u : "");
	}
	snap.uid = getuid();
	snap.gid = getgid();
	for (size_t i = 0; i < o->npaths + o->nstreams; i++)
		if ((rc = cf_snapshot_add_path(&snap, abs[i])))
			goto out;
	for (size_t i = 0; i < o->ntags; i++)
		if ((rc = cf_snapshot_add_tag(&snap, o->tags[i])))
			goto out;
	/* what the snapshot holds: each walked path, then the streams as the
	 * caller described them */
	for (size_t i = 0; i < o->npaths; i++)
		if ((rc = cf_snapshot_add_source(&snap, CF_SOURCE_VOLUME, abs[i], NULL, NULL)))
			goto out;
	if ((rc = cf_snapshot_copy_sources(&snap, o->sources, o->nsources)))
		goto out;
	if (have_parent) {
		snap.has_parent = true;
		memcpy(snap.parent, parent.id, CF_ID_LEN);
	}
	snap.program_version = strdup("coffer " COFFER_VERSION);
	sum.data_blobs = c.blobs_new;
	sum.data_added = c.added;
	sum.data_added_packed = c.added_packed;
	sum.files_unreadable = (uint64_t)c.unreadable;
	sum.backup_end_ns = cf_now_ns();
	snap.has_summary = true;
	snap.summary = sum;
	eng_progress(&c, true);
	if (o->dry_run) {
		*out = snap; /* what would have been saved; no id */
		memset(&snap, 0, sizeof(snap));
		rc = c.unreadable ? CF_EPARTIAL : CF_OK;
		goto out;
	}
	/* never "saved" with data a concurrent prune removed: the lock held,
	 * the parent and every pack this run used are still there */
	if ((rc = cf_repo_verify_session(r, have_parent ? parent.id : NULL)))
		goto out;
	if ((rc = cf_repo_save_snapshot(r, &snap)))
		goto out;
	if (use_dc)
		cf_info("directory cache: %llu directories unchanged without loading their trees",
			 (unsigned long long)c.dc_hits);
	if (c.dc_write)
		dc_save(&c, dcf, snap.id);
	*out = snap;
	memset(&snap, 0, sizeof(snap));
	rc = c.unreadable ? CF_EPARTIAL : CF_OK;
out:
	eng_cq_stop(&c);
	if (abs) {
		for (size_t i = 0; i < o->npaths + o->nstreams; i++)
			free(abs[i]);
		free(abs);
	}
	eng_vnode_free(&root);
	for (size_t i = 0; i < c.noverlays; i++)
		free(c.overlays[i].path);
	free(c.overlays);
	eng_bufpool_drain();
	cf_dc_release(&c.dc);
	cf_buf_release(&c.dc_out);
	cf_tree_release(&old);
	cf_snapshot_release(&parent);
	cf_snapshot_release(&snap);
	return rc;
}
