/*
 * walk.c - the walk: files read into chunk streams, directories into trees.
 *
 * eng_save_dir() lists a directory (sorted names), lstats each entry and
 * fills its node (eng_save_entry): a file unchanged since the parent
 * snapshot keeps its content ids, any other file is read (read_file: holes
 * of a sparse file are not read, cstream.c), a subdirectory is walked in
 * turn (eng_dir_known when the parent snapshot had it: the directory cache's
 * fast path first, fastpath.c, then the parent's tree, read ahead, ahead.c).
 * The directory's tree is finished once its chunks are stored (dirq.c).
 *
 * Invariants: a source that cannot be read is named on stderr, counted
 * (unreadable) and left out of its tree; only repository errors and
 * running out of memory end the walk.  Everything here runs on the walker.
 */
#include "engine/engine_int.h"

#include "common/array.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Same file as in the parent snapshot?  Then its content ids can be reused. */
static bool unchanged(struct ctx *c, const struct cf_node *old, const struct cf_node *n)
{
	if (!old || old->type != CF_NODE_FILE || old->size != n->size ||
	    old->mtime_ns != n->mtime_ns || old->ctime_ns != n->ctime_ns || old->ino != n->ino)
		return false;
	for (size_t i = 0; i < old->ncontent; i++)
		if (!cf_repo_has_blob(c->repo, CF_BLOB_DATA, old->content[i]))
			return false; /* pruned meanwhile or index damaged: read again */
	return true;
}

/* Read fd into s until EOF, or until limit bytes were read (*got: how
 * many).  want: the first read's size. */
static int read_stream(struct ctx *c, struct cstream *s, int fd, const char *path, uint64_t limit,
		       size_t want, uint64_t *got, bool *unreadable)
{
	int rc = CF_OK;
	*got = 0;
	while (*got < limit) {
		if (want > limit - *got)
			want = (size_t)(limit - *got);
		uint8_t *dst = eng_cs_space(s, want);
		if (!dst) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		ssize_t k = read(fd, dst, want);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			eng_error(c, path, "read %s: %s", path, strerror(errno));
			*unreadable = true;
			break;
		}
		if (k == 0)
			break;
		*got += (uint64_t)k;
		c->sum->total_bytes_processed += (uint64_t)k;
		if ((rc = eng_cs_commit(s, (size_t)k)))
			break;
		/* a short read is usually the end: ask for the rest of the
		 * buffer (no reallocation) to see EOF; a full one means more */
		want = (size_t)k < want ? want - (size_t)k : READ_SIZE;
		if (cf_interrupted) {
			rc = cf_err(CF_EINTR, "interrupted");
			break;
		}
		eng_progress(c, false);
	}
	return rc;
}

/* A sparse file's data regions are read, its holes not (cs_hole); from
 * the last data region on (or wherever SEEK_DATA/SEEK_HOLE do not help, e.g.
 * a file system without them) the rest is read to EOF by the caller.
 * *pos: where that read starts (the file offset is set there). */
static int read_sparse(struct ctx *c, struct cstream *s, int fd, const char *path, off_t *pos,
		       bool *unreadable)
{
	struct zero_chunk z = { 0 };
	struct stat st;
	uint64_t got;
	int rc = CF_OK;

	for (;;) {
		off_t d = lseek(fd, *pos, SEEK_DATA);
		if (d < 0 && errno == ENXIO && fstat(fd, &st) == 0 && st.st_size > *pos)
			d = st.st_size; /* a hole to the end (as the file is now) */
		if (d < *pos)
			break; /* no more data, or no SEEK_DATA: read on plainly */
		if (d > *pos) {
			if ((rc = eng_cs_hole(s, &z, (uint64_t)(d - *pos))))
				break;
			c->sum->total_bytes_processed += (uint64_t)(d - *pos);
			*pos = d;
		}
		off_t h = lseek(fd, *pos, SEEK_HOLE);
		if (h <= *pos || fstat(fd, &st) != 0 || h >= st.st_size)
			break; /* the last data region: read to EOF */
		if (lseek(fd, *pos, SEEK_SET) != *pos)
			break;
		rc = read_stream(c, s, fd, path, (uint64_t)(h - *pos), READ_SIZE, &got, unreadable);
		*pos += (off_t)got;
		if (rc || *unreadable || *pos != h)
			break; /* an error, or the file shrank: read on plainly from here */
	}
	if (lseek(fd, *pos, SEEK_SET) != *pos && !rc && !*unreadable) {
		eng_error(c, path, "seek %s: %s", path, strerror(errno));
		*unreadable = true;
	}
	return rc;
}

static int read_file(struct ctx *c, const char *path, uint64_t size_hint, struct batch *b,
		     struct refs *refs, bool *unreadable)
{
	struct cstream s;
	struct stat st;
	uint64_t got;
	off_t pos = 0;
	int fd = open(path, O_RDONLY | O_NOATIME | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == EPERM)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		eng_error(c, path, "%s: %s", path, strerror(errno));
		*unreadable = true;
		return CF_OK;
	}
	eng_cs_init(&s, c, b, refs);
	c->cur_file = path;
	int rc = CF_OK;
	/* fewer blocks than the size needs: it has holes, which are not read */
	if (size_hint > READ_SIZE && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size)
		rc = read_sparse(c, &s, fd, path, &pos, unreadable);
	/* small files get a buffer of their own size (+1 to see EOF in one
	 * read), not a megabyte each */
	size_t want = size_hint < READ_SIZE ? (size_t)size_hint + 1 : READ_SIZE;
	if (!rc && !*unreadable)
		rc = read_stream(c, &s, fd, path, UINT64_MAX, want, &got, unreadable);
	close(fd);
	c->cur_file = NULL;
	if (rc || *unreadable) {
		eng_cs_abort(&s);
		return rc;
	}
	return eng_cs_finish(&s);
}

/* Fill node n for path (already lstat'ed into st) and everything below it. */
int eng_save_entry(struct ctx *c, const char *path, const struct stat *st, const struct cf_node *old,
		   struct cf_node *n, struct pending *pd, struct batch *b, bool *drop)
{
	int rc;
	const char *name = strrchr(path, '/');
	name = name && name[1] ? name + 1 : path;
	if ((rc = eng_fill_node(path, name, st, old, n))) {
		if (rc == CF_ENOMEM)
			return rc;
		eng_error(c, path, "%s", cf_errmsg(rc));
		c->unreadable++;
		*drop = true;
		return CF_OK;
	}
	if (n->type == CF_NODE_DIR) {
		struct dirjob *later = NULL;
		if (old && old->type == CF_NODE_DIR && old->has_subtree)
			rc = eng_dir_known(c, path, old->subtree, n->subtree, &later);
		else
			rc = eng_save_dir(c, path, NULL, NULL, n->subtree, &later);
		pd->sub = later; /* even after a failure: the caller frees it */
		if (rc)
			return rc;
		n->has_subtree = true;
		pd->sub_kind = !old ? DIR_NEW : !old->has_subtree ? DIR_OLD_NOT_DIR : DIR_COMPARE;
		if (pd->sub_kind == DIR_COMPARE)
			memcpy(pd->sub_old, old->subtree, CF_ID_LEN);
		if (!later) /* else counted when its id is known */
			eng_count_dir(c, pd, n->subtree);
		return CF_OK;
	}
	if (n->type != CF_NODE_FILE)
		return CF_OK;
	c->sum->total_files_processed++;
	if (unchanged(c, old, n)) {
		c->sum->files_unmodified++;
		c->sum->total_bytes_processed += n->size;
		n->content = malloc(old->ncontent ? old->ncontent * CF_ID_LEN : 1);
		if (!n->content)
			return cf_err(CF_ENOMEM, "out of memory");
		if (old->ncontent)
			memcpy(n->content, old->content, old->ncontent * CF_ID_LEN);
		n->ncontent = old->ncontent;
		pd->reused = true;
		return CF_OK;
	}
	bool bad = false;
	if ((rc = read_file(c, path, n->size, b, &pd->refs, &bad)))
		return rc;
	if (bad) {
		c->unreadable++;
		*drop = true;
		return CF_OK;
	}
	if (old)
		c->sum->files_changed++;
	else
		c->sum->files_new++;
	return CF_OK;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int eng_list_names(const char *path, char ***out, size_t *n)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if (!d)
		return cf_err_errno("open directory %s", path);
	while ((errno = 0, e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (CF_GROW(v, cnt + 1, cap))
			goto nomem;
		if (!(v[cnt] = strdup(e->d_name)))
			goto nomem;
		cnt++;
	}
	int err = errno;
	closedir(d);
	if (err) {
		for (size_t i = 0; i < cnt; i++)
			free(v[i]);
		free(v);
		errno = err;
		return cf_err_errno("read directory %s", path);
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_str);
	*out = v;
	*n = cnt;
	return CF_OK;
nomem:
	closedir(d);
	for (size_t i = 0; i < cnt; i++)
		free(v[i]);
	free(v);
	return cf_err(CF_ENOMEM, "out of memory");
}

/* A directory that was in the parent snapshot as tree old_id.  later: as
 * for eng_save_dir (NULL: finish it before returning). */
int eng_dir_known(struct ctx *c, const char *path, const uint8_t *old_id, uint8_t id[CF_ID_LEN],
		  struct dirjob **later)
{
	const struct cf_dc_entry *ce = cf_dc_find(&c->dc, old_id);
	bool done = false;
	int rc;
	if (ce && ((rc = eng_dir_fast(c, path, old_id, ce, id, &done)) || done))
		return rc;
	struct cf_tree ot = CF_TREE_INIT;
	rc = eng_ahead_take(c, old_id, &ot);
	if (rc == CF_ENOMEM)
		return rc;
	/* a damaged parent tree only costs a full read */
	bool have = rc == CF_OK;
	rc = eng_save_dir(c, path, have ? &ot : NULL, have ? old_id : NULL, id, later);
	cf_tree_release(&ot);
	return rc;
}

/* Walk directory path into a tree.  old (the parent snapshot's tree of it,
 * old_id) is taken over: *old is left empty.  With later, the tree may be
 * finished after this returns (*later set: the job that will hold its id,
 * which the caller puts in its pending entry and frees); without, id is set
 * when this returns. */
int eng_save_dir(struct ctx *c, const char *path, struct cf_tree *old_in,
		 const uint8_t *old_id, uint8_t id[CF_ID_LEN], struct dirjob **later)
{
	struct dirjob *j = calloc(1, sizeof(*j));
	struct pending *pd = NULL;
	char **names = NULL;
	size_t nnames = 0, npd = 0;
	char *sub = NULL;
	int rc;

	if (later)
		*later = NULL;
	if (!j) {
		cf_tree_release(old_in);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	j->t = (struct cf_tree)CF_TREE_INIT;
	j->old = (struct cf_tree)CF_TREE_INIT;
	if (old_in) {
		j->old = *old_in;
		*old_in = (struct cf_tree)CF_TREE_INIT;
		j->has_old = true;
		memcpy(j->old_id, old_id, CF_ID_LEN);
	}
	const struct cf_tree *old = j->has_old ? &j->old : NULL;
	struct cf_tree *tp = &j->t;
	struct batch *bp = &j->b;
	/* finish what waits and is ready, before adding to it */
	if ((rc = eng_dq_run(c, false)))
		goto out;

	if ((rc = eng_list_names(path, &names, &nnames))) {
		if (rc == CF_ENOMEM)
			goto out;
		eng_error(c, path, "%s", cf_errmsg(rc));
		c->unreadable++;
		/* an unreadable directory is stored empty (its metadata is kept) */
	}
	if (nnames && !(pd = calloc(nnames, sizeof(*pd)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	size_t plen = strlen(path);
	size_t ahead_next = 0; /* names before this were considered for ahead_want */
	int ahead_n = 0;       /* of those, wanted ones after the current entry */
	for (size_t i = 0; i < nnames; i++) {
		struct stat st;
		if (old) {
			const struct cf_node *on = i < ahead_next ? cf_tree_find(old, names[i]) : NULL;
			if (eng_wants_ahead(c, on))
				ahead_n--;
			if (ahead_next <= i)
				ahead_next = i + 1; /* this one is loaded when needed, not ahead */
			while (ahead_n < AHEAD_PER_DIR && ahead_next < nnames) {
				on = cf_tree_find(old, names[ahead_next++]);
				if (eng_wants_ahead(c, on)) {
					eng_ahead_want(c, on->subtree);
					ahead_n++;
				}
			}
		}
		free(sub);
		if (!(sub = malloc(plen + strlen(names[i]) + 2))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		sprintf(sub, "%s%s%s", path, plen && path[plen - 1] == '/' ? "" : "/", names[i]);
		/* a stream standing in for this entry first: an exclude pattern
		 * never drops a stream (the CLI refuses such patterns, too) */
		if (c->noverlays) {
			bool handled = false, skip = false;
			struct cf_node *n = cf_tree_add(tp);
			if (!n) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			pd[npd].node = tp->n - 1;
			if ((rc = eng_overlay_entry(c, sub, names[i], n, bp, &pd[npd].refs, &handled, &skip)))
				goto out;
			if (handled) {
				npd++;
				continue;
			}
			cf_node_release(n);
			tp->n--;
			if (skip)
				continue;
		}
		bool excluded = eng_excluded(c, sub, names[i]);
		if (!excluded) {
			if (lstat(sub, &st) < 0) {
				eng_error(c, sub, "%s: %s", sub, strerror(errno));
				c->unreadable++;
				continue;
			}
			excluded = eng_excluded_stat(c, sub, &st);
		}
		if (excluded) {
			/* left out, but for the streams below it */
			if (!c->noverlays || !eng_overlay_below(c, sub))
				continue;
			struct cf_node *n = cf_tree_add(tp);
			if (!n) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			pd[npd].node = tp->n - 1;
			if ((rc = eng_overlay_dir(c, sub, names[i], n)))
				goto out;
			npd++;
			continue;
		}
		if (c->o->one_file_system && S_ISDIR(st.st_mode) && st.st_dev != c->root_dev)
			continue;
		struct cf_node *n = cf_tree_add(tp);
		if (!n) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		const struct cf_node *on = old ? cf_tree_find(old, names[i]) : NULL;
		bool drop = false;
		pd[npd].node = tp->n - 1;
		if ((rc = eng_save_entry(c, sub, &st, on, n, &pd[npd], bp, &drop)))
			goto out;
		if (drop) {
			/* leave it out of the tree; its chunks (if any) are garbage */
			eng_refs_free(&pd[npd].refs);
			cf_node_release(n);
			tp->n--;
			continue;
		}
		npd++;
		eng_progress(c, false);
	}
	free(sub);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	j->pd = pd;
	j->npd = npd;
	if (later) { /* finished later, in the queue's order */
		if (c->dq_tail)
			c->dq_tail->next = j;
		else
			c->dq_head = j;
		c->dq_tail = j;
		c->dq_n++;
		*later = j;
		return eng_dq_run(c, false);
	}
	/* now: everything that waits first (it may hold this one's
	 * subdirectories), then this one */
	if (!(rc = eng_dq_run(c, true)))
		rc = eng_finish_tree(c, tp, pd, npd, bp, old, old_id, id);
	eng_job_release(j);
	free(j);
	return rc;
out:
	/* the waiting directories first (they may be this one's), then the
	 * chunks of this one's files, also the entry being read when the
	 * error struck */
	eng_dq_abort(c);
	eng_batch_drain(c, bp);
	j->pd = pd;
	j->npd = pd ? (npd < nnames ? npd + 1 : npd) : 0;
	eng_job_release(j);
	free(j);
	free(sub);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	return rc;
}
