/*
 * restore.c - the run: setup, the phases in order, progress, the summary.
 *
 * cf_restore_run() (restore.h) is the only entry point.  It sets up a
 * struct rctx (restore_int.h), checks the options and opens the roots
 * before anything is made, then runs the phases:
 *
 *   1. plan      (plan.c, this thread)   directories, specials, deletions;
 *                                        every file given a state
 *   2. compare   (verify.c, workers)     files already there: keep or write
 *   3. write     (fetch.c + write.c)     fetch, write, place; hard links
 *   4. metadata  (meta.c, this thread)   directories, deepest first
 *   5. verify    (verify.c, workers)     with `verify`
 *
 * Threads come from the work queue (common/pool.h): the workers of a phase
 * are one long job each, the progress line is one job of its own pool.
 * Invariants: an error of a single entry never stops the run (it is named,
 * counted, and the run ends CF_EPARTIAL); an interrupt stops at the next
 * entry and leaves no half-written file under a real name; nothing is
 * changed in a dry run.
 */
#include "restore/restore_int.h"
#include "common/array.h"
#include "common/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------- shared helpers ---------- */

void rs_add_stat(struct rctx *c, uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&c->mu);
	*field += v;
	pthread_mutex_unlock(&c->mu);
}

void rs_path_failed(struct rctx *c, const char *path, int rc)
{
	cf_warn("error: %s", cf_errmsg(rc));
	pthread_mutex_lock(&c->mu);
	c->st->errors++;
	if (CF_GROW(c->st->failed, c->st->nfailed + 1, c->failedcap) == CF_OK &&
	    (c->st->failed[c->st->nfailed] = strdup(path)))
		c->st->nfailed++;
	pthread_mutex_unlock(&c->mu);
}

void rs_list(struct rctx *c, const char *verb, const char *path, bool dir, uint64_t bytes)
{
	if (!c->o->listing)
		return;
	pthread_mutex_lock(&c->mu);
	if (dir)
		fprintf(c->o->listing, "%-8s %s/\n", verb, path);
	else
		fprintf(c->o->listing, "%-8s %s (%llu bytes)\n", verb, path, (unsigned long long)bytes);
	pthread_mutex_unlock(&c->mu);
}

char *rs_join(const char *a, const char *b)
{
	char *s;
	if (asprintf(&s, "%s%s%s", a, *a && *b ? "/" : "", b) < 0)
		return NULL;
	return s;
}

bool rs_under(const char *p, const char *prefix)
{
	size_t l = strlen(prefix);
	if (l == 1 && prefix[0] == '/')
		return true;
	return strncmp(p, prefix, l) == 0 && (p[l] == 0 || p[l] == '/');
}

/* ---------- workers and progress ---------- */

struct each {
	struct rctx *c;
	size_t n;
	rs_item_fn fn;
};

/* One worker of rs_parallel(): items until none is left.  Its two buffers
 * are reused from item to item (fresh megabytes for every item would cost a
 * page fault per 4 KiB). */
static int each_job(void *arg, unsigned worker)
{
	struct each *e = arg;
	struct cf_buf buf[2] = { CF_BUF_INIT, CF_BUF_INIT };
	(void)worker;
	for (;;) {
		if (atomic_load(&e->c->stop))
			break;
		if (cf_interrupted) {
			atomic_store(&e->c->stop, true);
			break;
		}
		size_t i = atomic_fetch_add(&e->c->next, 1);
		if (i >= e->n)
			break;
		e->fn(e->c, i, buf);
	}
	cf_buf_release(&buf[0]);
	cf_buf_release(&buf[1]);
	return CF_OK;
}

void rs_parallel(struct rctx *c, size_t n, rs_item_fn fn)
{
	struct each e = { c, n, fn };
	struct cf_pool *p = NULL;
	size_t nw = (size_t)c->nthreads < n ? (size_t)c->nthreads : n, queued = 0;
	atomic_store(&c->next, 0);
	if (nw && cf_pool_new(&p, "restore", (unsigned)nw, 0, 0) == CF_OK)
		for (; queued < nw; queued++)
			if (cf_pool_add(p, each_job, &e, 0) != CF_OK)
				break;
	if (!queued) { /* no threads to be had: do it here */
		cf_err_clear();
		each_job(&e, 0);
	}
	cf_pool_free(p);
}

/* The status line, every half second until c->pg_stop; or the status
 * callback, every quarter second. */
static int progress_job(void *arg, unsigned worker)
{
	struct rctx *c = arg;
	long step = c->o->status ? 250000000 : 500000000;
	(void)worker;
	pthread_mutex_lock(&c->mu);
	while (!c->pg_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += step;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->pg_cond, &c->mu, &ts);
		if (c->pg_stop)
			break;
		if (c->o->status) {
			struct cf_restore_status st = {
				c->phase, cf_now_mono() - c->pg_start, atomic_load(&c->pg_done),
				atomic_load(&c->pg_total), atomic_load(&c->pg_bytes),
				atomic_load(&c->pg_bytes_total),
			};
			/* not under mu: the workers count under it */
			pthread_mutex_unlock(&c->mu);
			c->o->status(c->o->status_ctx, &st);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		double mb = (double)atomic_load(&c->pg_bytes) / (1 << 20);
		double mbt = (double)atomic_load(&c->pg_bytes_total) / (1 << 20);
		fprintf(stderr, "\r\033[K%s: %llu/%llu files, %.1f/%.1f MiB", c->phase,
			(unsigned long long)atomic_load(&c->pg_done),
			(unsigned long long)atomic_load(&c->pg_total), mb, mbt);
	}
	if (!c->o->status)
		fprintf(stderr, "\r\033[K");
	pthread_mutex_unlock(&c->mu);
	return CF_OK;
}

/* Start the status line (NULL: none, also when no thread could be had). */
static struct cf_pool *progress_start(struct rctx *c)
{
	struct cf_pool *p = NULL;
	c->pg_start = cf_now_mono();
	if (cf_pool_new(&p, "restore progress", 1, 0, 0) != CF_OK ||
	    cf_pool_add(p, progress_job, c, 0) != CF_OK) {
		cf_pool_free(p);
		cf_err_clear();
		p = NULL;
	}
	return p;
}

static void progress_stop(struct rctx *c, struct cf_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&c->mu);
	c->pg_stop = true;
	pthread_cond_signal(&c->pg_cond);
	pthread_mutex_unlock(&c->mu);
	cf_pool_free(p);
}

static void set_phase(struct rctx *c, const char *phase, uint64_t total, uint64_t bytes_total)
{
	pthread_mutex_lock(&c->mu);
	c->phase = phase;
	atomic_store(&c->pg_done, 0);
	atomic_store(&c->pg_total, total);
	atomic_store(&c->pg_bytes, 0);
	atomic_store(&c->pg_bytes_total, bytes_total);
	pthread_mutex_unlock(&c->mu);
}

/* ---------- setup ---------- */

/* "/a/b/" -> "/a/b"; NULL unless absolute. */
static char *norm_path(const char *p)
{
	if (!p || p[0] != '/')
		return NULL;
	size_t l = strlen(p);
	while (l > 1 && p[l - 1] == '/')
		l--;
	return strndup(p, l);
}

int cf_restore_parse_overwrite(const char *s, enum cf_overwrite *out)
{
	if (!strcmp(s, "if-changed"))
		*out = CF_OVERWRITE_IF_CHANGED;
	else if (!strcmp(s, "always"))
		*out = CF_OVERWRITE_ALWAYS;
	else if (!strcmp(s, "never"))
		*out = CF_OVERWRITE_NEVER;
	else
		return cf_err(CF_EINVAL, "--overwrite wants always, if-changed or never, not '%s'", s);
	return CF_OK;
}

void cf_restore_stats_release(struct cf_restore_stats *st)
{
	for (size_t i = 0; i < st->nfailed; i++)
		free(st->failed[i]);
	free(st->failed);
	st->failed = NULL;
	st->nfailed = 0;
}

/* Open (creating unless dry) the directory of a root. */
static int open_root(struct rctx *c, struct rroot *rt, const char *dir)
{
	int rc;
	if (!(rt->dir = strdup(dir)))
		return cf_err(CF_ENOMEM, "out of memory");
	if (!c->o->dry_run && (rc = cf_mkdirs(dir, 0755)))
		return rc;
	rt->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rt->fd < 0 && !(c->o->dry_run && errno == ENOENT))
		return cf_err_errno("open target %s", dir);
	return CF_OK;
}

/* The roots: one per --path-map (first, in order), then --target unless
 * every include is mapped.  Options are checked before anything is made. */
static int setup_roots(struct rctx *c, const struct cf_snapshot *s)
{
	char **incs = c->incs;
	size_t ninc = c->ninc;
	const struct cf_restore_opts *o = c->o;
	const char **rest = NULL;
	size_t unmapped = 0;
	int rc = CF_OK;
	if (!(c->roots = calloc(o->nmaps + 1, sizeof(*c->roots))) ||
	    !(rest = calloc(ninc + 1, sizeof(*rest)))) {
		free(rest);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i <= o->nmaps; i++)
		c->roots[i].fd = -1;
	for (size_t i = 0; i < o->nmaps; i++) {
		struct rroot *rt = &c->roots[c->nroots++];
		char *sp = norm_path(o->maps[i].snap_path);
		if (!sp || !strcmp(sp, "/")) {
			free(sp);
			rc = cf_err(CF_EINVAL, "--path-map %s=%s: give an absolute snapshot directory",
				    o->maps[i].snap_path, o->maps[i].dir);
			goto out;
		}
		rt->snap = sp;
	}
	/* includes no map covers go to --target */
	for (size_t k = 0; k < ninc; k++) {
		bool m = false;
		for (size_t i = 0; i < o->nmaps && !m; i++)
			m = rs_under(incs[k], c->roots[i].snap);
		if (!m)
			rest[unmapped++] = incs[k];
	}
	bool need_target = !o->nmaps || unmapped > 0 || (ninc == 0 && o->target);
	if (need_target && (!o->target || !*o->target)) {
		rc = unmapped ? cf_err(CF_EINVAL, "--include %s is not under any --path-map: give --target DIR",
				       rest[0]) :
				cf_err(CF_EINVAL, "no --target given");
		goto out;
	}
	for (size_t i = 0; i < o->nmaps; i++) {
		struct rroot *rt = &c->roots[i];
		if ((rc = cf_tree_find_path(c->repo, s->tree, rt->snap, &rt->node))) {
			rc = cf_err_prefix(rc, "--path-map");
			goto out;
		}
		rt->has_node = true;
		if (rt->node.type != CF_NODE_DIR) {
			rc = cf_err(CF_EINVAL, "--path-map: %s is not a directory in the snapshot", rt->snap);
			goto out;
		}
	}
	for (size_t i = 0; i < o->nmaps; i++) {
		struct rroot *rt = &c->roots[i];
		rt->has_tree = rt->node.has_subtree;
		memcpy(rt->tree, rt->node.subtree, CF_ID_LEN);
		if (!(rt->incs = calloc(ninc + 1, sizeof(*rt->incs)))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		/* includes inside the mapped tree narrow it; one above it takes all */
		bool all = false;
		for (size_t k = 0; k < ninc; k++) {
			if (rs_under(rt->snap, incs[k]))
				all = true;
			else if (rs_under(incs[k], rt->snap))
				rt->incs[rt->nincs++] = incs[k];
		}
		if (all)
			rt->nincs = 0;
		if ((rc = open_root(c, rt, o->maps[i].dir)))
			goto out;
	}
	if (need_target) {
		struct rroot *rt = &c->roots[c->nroots++];
		rt->snap = "";
		rt->is_target = true;
		rt->has_tree = true;
		memcpy(rt->tree, s->tree, CF_ID_LEN);
		rt->incs = rest;
		rt->nincs = unmapped;
		rest = NULL;
		rc = open_root(c, rt, o->target);
	}
out:
	free(rest);
	return rc;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

void rs_init(struct rctx *c, struct cf_repo *r, const struct cf_snapshot *s,
	     const struct cf_restore_opts *o, struct cf_restore_stats *st)
{
	memset(c, 0, sizeof(*c));
	memset(st, 0, sizeof(*st));
	c->repo = r;
	c->o = o;
	c->st = st;
	c->srcpaths = s->paths;
	c->nsrc = s->npaths;
	c->is_root = geteuid() == 0;
	c->pid = (int)getpid();
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->bh_mu, NULL);
	pthread_mutex_init(&c->rg_mu, NULL);
	pthread_cond_init(&c->rg_cond, NULL);
	pthread_cond_init(&c->pg_cond, NULL);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&c->stripes[i], NULL);
	c->phase = "restore";
	/* writers: one more than the CPUs, as they also wait for the disk
	 * (doc/benchmarks.md) */
	int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	c->nthreads = o->threads > 0 ? o->threads : (cpus > 0 ? cpus : 1) + 1;
	rs_fetch_setup(c);
}

int rs_setup(struct rctx *c, const struct cf_snapshot *s)
{
	const struct cf_restore_opts *o = c->o;
	if (!(c->incs = calloc(o->nincludes + 1, sizeof(*c->incs))))
		return cf_err(CF_ENOMEM, "out of memory");
	for (size_t i = 0; i < o->nincludes; i++) {
		if (!(c->incs[c->ninc] = norm_path(o->includes[i])))
			return cf_err(CF_EINVAL, "--include %s: give an absolute snapshot path", o->includes[i]);
		c->ninc++;
	}
	return setup_roots(c, s);
}

void rs_release(struct rctx *c)
{
	for (size_t i = 0; i < c->nfiles; i++) {
		rs_close_tmp(c, &c->files[i]);
		cf_node_release(&c->files[i].node);
		free(c->files[i].rel);
		free(c->files[i].path);
	}
	free(c->files);
	for (size_t i = 0; i < c->ndirs; i++) {
		free(c->dirs[i].rel);
		cf_node_release(&c->dirs[i].node);
	}
	free(c->dirs);
	for (size_t i = 0; i < c->nroots; i++) {
		struct rroot *rt = &c->roots[i];
		if (rt->fd >= 0)
			close(rt->fd);
		free(rt->dir);
		if (!rt->is_target)
			free((char *)rt->snap);
		free(rt->incs);
		cf_node_release(&rt->node);
	}
	free(c->roots);
	for (size_t i = 0; i < c->ninc; i++)
		free(c->incs[i]);
	free(c->incs);
	free(c->hl);
	free(c->uses);
	free(c->wants);
	free(c->groups);
	free(c->ranges);
	free(c->slots);
	free(c->freebufs);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_destroy(&c->stripes[i]);
	pthread_cond_destroy(&c->pg_cond);
	pthread_mutex_destroy(&c->bh_mu);
	pthread_mutex_destroy(&c->rg_mu);
	pthread_cond_destroy(&c->rg_cond);
	pthread_mutex_destroy(&c->mu);
}

/* ---------- the phases ---------- */

/* 2. Compare the files already there (F_CHECK: keep or write), then list
 * what happens to every file.  CF_OK or CF_EINTR. */
static int compare(struct rctx *c)
{
	struct cf_restore_stats *st = c->st;
	uint64_t ncheck = 0, bcheck = 0;
	for (size_t i = 0; i < c->nfiles; i++)
		if (c->files[i].state == F_CHECK) {
			ncheck++;
			bcheck += c->files[i].node.size;
		}
	set_phase(c, "comparing", ncheck, bcheck);
	if (ncheck)
		rs_parallel(c, c->nfiles, rs_check_one);
	if (atomic_load(&c->stop))
		return cf_err(CF_EINTR, "interrupted");
	for (size_t i = 0; i < c->nfiles; i++) {
		struct rfile *f = &c->files[i];
		if (f->state == F_KEEP && c->o->overwrite != CF_OVERWRITE_NEVER) {
			st->files_kept++;
			st->bytes_kept += f->node.size;
			rs_list(c, "keep", f->path, false, f->node.size);
		} else if (f->state == F_WRITE) {
			rs_list(c, f->existed ? "replace" : "create", f->path, false, f->node.size);
		} else if (f->state == F_LINK) {
			rs_list(c, "link", f->path, false, f->node.size);
		}
	}
	return CF_OK;
}

/* A dry run's count of what would be written. */
static void count_dry(struct rctx *c)
{
	for (size_t i = 0; i < c->nfiles; i++) {
		struct rfile *f = &c->files[i];
		if (f->state != F_WRITE)
			continue;
		if (f->existed)
			c->st->files_replaced++;
		else
			c->st->files_created++;
		c->st->bytes_written += f->node.size;
	}
}

/* 3. Write every F_WRITE file, then the hard links.  CF_OK (single files may
 * have failed), CF_EINTR, or an error that stopped the writing. */
static int write_files(struct rctx *c)
{
	uint64_t total, nwrite = 0;
	int rc;
	if ((rc = rs_plan_writes(c, &total)))
		return rc;
	for (size_t i = 0; i < c->nfiles; i++)
		nwrite += c->files[i].state == F_WRITE;
	set_phase(c, "restoring", nwrite, total);
	for (size_t i = 0; i < c->nfiles; i++) { /* empty files: nothing to fetch */
		struct rfile *f = &c->files[i];
		if (f->state == F_WRITE && f->remaining == 0 && !f->done)
			rs_finish_file(c, f);
	}
	int wrc = rs_fetch_and_write(c);
	bool stopped = atomic_load(&c->stop) || cf_interrupted;
	for (size_t i = 0; i < c->nfiles; i++) {
		struct rfile *f = &c->files[i];
		if (f->state == F_WRITE && !f->done) { /* leave nothing half-written */
			/* Interrupted, the run says so once.  Otherwise every blob
			 * should have reached its file, failed ones with their
			 * error: a file still waiting for data is named, never
			 * dropped in silence. */
			if (!stopped && !f->failed)
				rs_path_failed(c, f->path,
					       cf_err(CF_EIO, "%s: not restored: %zu of its blobs were never read",
						      f->path, f->remaining));
			f->failed = true;
			rs_finish_file(c, f);
		}
	}
	rs_behind_drain(c);
	for (size_t i = 0; i < c->nfiles; i++)
		if (c->files[i].state == F_WRITE && c->files[i].failed)
			c->files[i].state = F_FAILED;
	if (wrc)
		return wrc;
	if (atomic_load(&c->stop) || cf_interrupted)
		return cf_err(CF_EINTR, "interrupted");
	for (size_t i = 0; i < c->nfiles; i++)
		if (c->files[i].state == F_LINK)
			rs_link_one(c, &c->files[i]);
	return CF_OK;
}

/* 4. Directory metadata last, deepest first, so writing into a directory
 * does not disturb its times. */
static void dir_meta(struct rctx *c)
{
	for (size_t i = c->ndirs; i-- > 0;)
		if (c->dirs[i].has_ino)
			rs_set_dir_meta(c, c->dirs[i].root, c->dirs[i].rel, &c->dirs[i].node,
					c->dirs[i].dev, c->dirs[i].ino);
	for (size_t i = 0; i < c->nroots; i++) {
		struct stat rst;
		if (c->roots[i].has_node && c->roots[i].fd >= 0 && fstat(c->roots[i].fd, &rst) == 0)
			rs_set_dir_meta(c, (uint32_t)i, "", &c->roots[i].node, (uint64_t)rst.st_dev,
					(uint64_t)rst.st_ino);
	}
}

/* 5. Read every file restored or kept back.  CF_OK or CF_EINTR. */
static int verify(struct rctx *c)
{
	uint64_t nv = 0, bv = 0;
	for (size_t i = 0; i < c->nfiles; i++)
		if (c->files[i].state != F_FAILED) {
			nv++;
			bv += c->files[i].node.size;
		}
	set_phase(c, "verifying", nv, bv);
	rs_parallel(c, c->nfiles, rs_verify_one);
	if (atomic_load(&c->stop))
		return cf_err(CF_EINTR, "interrupted");
	return CF_OK;
}

int cf_restore_run(struct cf_repo *r, const struct cf_snapshot *s, const struct cf_restore_opts *o,
		   struct cf_restore_stats *st)
{
	struct rctx c;
	struct cf_pool *pg = NULL;
	int rc;

	rs_init(&c, r, s, o, st);
	raise_fd_limit();
	if ((rc = rs_setup(&c, s)))
		goto out;
	if (o->progress || o->status)
		pg = progress_start(&c);

	if ((rc = rs_plan(&c)) || (rc = compare(&c)))
		goto finish;
	if (o->dry_run) {
		count_dry(&c);
		goto finish;
	}
	if ((rc = write_files(&c)))
		goto finish;
	dir_meta(&c);
	if (o->verify)
		rc = verify(&c);

finish:
	rs_behind_drain(&c);
	progress_stop(&c, pg);
	if (!rc && st->owner_unset)
		cf_warn("warning: not running as root: the owner of %llu entries was not restored "
			"(they belong to the restoring user)", (unsigned long long)st->owner_unset);
	if (!rc && st->errors)
		rc = cf_err(CF_EPARTIAL, "%llu entries could not be restored (named above)",
			    (unsigned long long)st->errors);
out:
	rs_release(&c);
	return rc;
}
