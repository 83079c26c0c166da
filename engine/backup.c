/*
 * backup.c - the backup engine (see backup.h for the design).
 *
 * Threads: the calling thread walks and reads; `threads` workers take chunks
 * from a bounded queue and store them.  The queue bound (a megabyte of chunks
 * per worker, and always one chunk per worker whatever its size; see submit)
 * is what keeps memory flat whatever the input size: at most that much
 * (each chunk at most the chunker's max size) is in memory.
 *
 * A file's chunk ids are written by workers into reference blocks that never
 * move (linked blocks of 64), so the reader can go on to the next file without
 * waiting.  A directory's tree is encoded once all its files' chunks
 * ("batch") are stored; the reader does not wait for that at the end of the
 * directory but goes on walking, and finishes the directory later ("directories
 * finished later"), so the workers never run dry at directory boundaries.
 */
#include "engine/backup.h"
#include "engine/dircache.h"
#include "repo/tree.h"
#include "common/error.h"
#include "crypto/crypto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define READ_SIZE (1u << 20)
#define REFS_PER_BLOCK 64
#define QUEUE_MAX 64

struct refblock {
	uint8_t ids[REFS_PER_BLOCK][CF_ID_LEN];
	struct refblock *next;
};

/* the chunk ids of one file, filled in by workers */
struct refs {
	struct refblock *head, *tail;
	size_t n;
};

struct batch {
	int outstanding;
	int rc;
	char msg[512]; /* the worker's message for rc (messages are per thread) */
};

struct job {
	uint8_t *data;
	size_t len, cap;
	uint8_t *id_out;
	struct batch *batch;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full, done;
	struct job *q;
	size_t cap, head, n;
	/* bytes of the queued chunks, and the bound on them (see submit) */
	size_t bytes, max_bytes, min_jobs;
	bool stop;
	pthread_t *threads;
	int nthreads;
};

/* Trees of the parent snapshot, loaded ahead (see "read ahead" below). */
#define AHEAD_SLOTS 12
#define AHEAD_PER_DIR 4
#define AHEAD_THREADS 2
enum { AH_FREE, AH_QUEUED, AH_LOADING, AH_DONE };
struct ahead_slot {
	int state;
	unsigned long order;
	uint8_t id[CF_ID_LEN];
	struct cf_tree t;
	int rc;
};
struct ahead {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct ahead_slot s[AHEAD_SLOTS];
	unsigned long seq;
	bool stop;
	pthread_t thread[AHEAD_THREADS];
	int nthreads; /* 0: every take is a load of one's own */
	struct cf_repo *repo;
};

struct ctx {
	struct cf_repo *repo;
	struct ahead ahead;
	const struct cf_backup_opts *o;
	struct pool pool;
	struct cf_chunker_params cp;
	struct cf_snapshot_summary *sum;
	uint64_t added, added_packed, blobs_new; /* under pool.mu */
	dev_t root_dev;
	int unreadable;
	double last_progress, start;
	/* stream sources inside a walked directory (a SQLite copy standing in
	 * for the live file of the same name) */
	const struct cf_stream_source **overlays;
	size_t noverlays;
	/* totals found by the scanner thread, for the ETA (progress only) */
	_Atomic uint64_t scan_files, scan_bytes;
	_Atomic int scan_done;
	/* the local directory cache (dircache.h): the parent snapshot's
	 * directories (empty without one), and this snapshot's, being written */
	struct cf_dircache dc;
	bool dc_write;
	struct cf_buf dc_out;
	uint32_t dc_count;
	uint64_t dc_hits; /* directories taken from the cache, trees not loaded */
	/* directories walked whose trees are finished later (see "directories
	 * finished later"), oldest first */
	struct dirjob *dq_head, *dq_tail;
	size_t dq_n;
};

/* ---------------- chunk buffers ----------------
 *
 * Chunk buffers go round: the reader fills one, a worker stores it and puts
 * it back here.  Reusing them spares the kernel a page fault for every 4 KiB
 * read (fresh memory costs one; a 2 GiB backup took 680,000 of them).  The
 * pool keeps as many as can be in flight at once (the reader's, one queued
 * and one being stored per worker): with one fewer, a 2 GiB backup still
 * took 420,000-480,000 page faults (0.5 s of system time); with more, each
 * extra buffer only adds to the peak RSS. */
#define POOL_MAX 17
static struct {
	pthread_mutex_t mu;
	uint8_t *buf[POOL_MAX];
	size_t cap[POOL_MAX];
	int n, max;
} bufpool = { .mu = PTHREAD_MUTEX_INITIALIZER, .max = 5 };

/* A buffer of at least want bytes (*cap gets its real size), or NULL. */
static uint8_t *buf_get(size_t want, size_t *cap)
{
	*cap = want;
	if (want < READ_SIZE)
		return malloc(want);
	pthread_mutex_lock(&bufpool.mu);
	for (int i = bufpool.n; i-- > 0;) {
		if (bufpool.cap[i] >= want) {
			uint8_t *b = bufpool.buf[i];
			*cap = bufpool.cap[i];
			bufpool.buf[i] = bufpool.buf[bufpool.n - 1];
			bufpool.cap[i] = bufpool.cap[bufpool.n - 1];
			bufpool.n--;
			pthread_mutex_unlock(&bufpool.mu);
			return b;
		}
	}
	pthread_mutex_unlock(&bufpool.mu);
	return malloc(want);
}

static void buf_put(uint8_t *b, size_t cap)
{
	if (!b)
		return;
	/* keep ordinary sizes only: a max-size chunk buffer (8 MiB+) would
	 * pin memory that most chunks never need, and a small file's buffer
	 * would take the place of one a big file needs (malloc serves those
	 * from its heap without page faults anyway) */
	if (cap >= READ_SIZE && cap <= 4u * READ_SIZE) {
		pthread_mutex_lock(&bufpool.mu);
		if (bufpool.n < bufpool.max) {
			bufpool.buf[bufpool.n] = b;
			bufpool.cap[bufpool.n] = cap;
			bufpool.n++;
			b = NULL;
		}
		pthread_mutex_unlock(&bufpool.mu);
	}
	free(b);
}

static void bufpool_drain(void)
{
	pthread_mutex_lock(&bufpool.mu);
	while (bufpool.n > 0) {
		bufpool.n--;
		free(bufpool.buf[bufpool.n]);
	}
	pthread_mutex_unlock(&bufpool.mu);
}

/* ---------------- the worker pool ---------------- */

static void *worker(void *arg)
{
	struct ctx *c = arg;
	struct pool *p = &c->pool;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->n && !p->stop)
			pthread_cond_wait(&p->not_empty, &p->mu);
		if (!p->n && p->stop) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		struct job j = p->q[p->head];
		p->head = (p->head + 1) % p->cap;
		p->n--;
		p->bytes -= j.len;
		pthread_cond_signal(&p->not_full);
		pthread_mutex_unlock(&p->mu);

		bool added = false;
		uint64_t stored = 0;
		int rc = cf_repo_save_blob(c->repo, CF_BLOB_DATA, j.data, j.len, j.id_out, &added, &stored);
		char msg[512] = "";
		if (rc)
			snprintf(msg, sizeof(msg), "%s", cf_errmsg(rc));
		buf_put(j.data, j.cap);

		pthread_mutex_lock(&p->mu);
		if (added) {
			c->blobs_new++;
			c->added += j.len;
			c->added_packed += stored;
		}
		if (rc && !j.batch->rc) {
			j.batch->rc = rc;
			memcpy(j.batch->msg, msg, sizeof(msg));
		}
		if (--j.batch->outstanding == 0)
			pthread_cond_broadcast(&p->done);
		pthread_mutex_unlock(&p->mu);
	}
}

static int pool_start(struct ctx *c, int n)
{
	struct pool *p = &c->pool;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->not_empty, NULL);
	pthread_cond_init(&p->not_full, NULL);
	pthread_cond_init(&p->done, NULL);
	p->cap = QUEUE_MAX;
	p->min_jobs = (size_t)n;
	p->max_bytes = (size_t)n * READ_SIZE;
	bufpool.max = 2 * n + 1 < POOL_MAX ? 2 * n + 1 : POOL_MAX;
	p->q = calloc(p->cap, sizeof(*p->q));
	p->threads = calloc((size_t)n, sizeof(*p->threads));
	if (!p->q || !p->threads)
		return cf_err(CF_ENOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		if (pthread_create(&p->threads[i], NULL, worker, c) != 0)
			return cf_err(CF_ENOMEM, "cannot start worker threads");
		p->nthreads++;
	}
	return CF_OK;
}

static void pool_stop(struct ctx *c)
{
	struct pool *p = &c->pool;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->not_empty);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->q);
	free(p->threads);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->not_empty);
	pthread_cond_destroy(&p->not_full);
	pthread_cond_destroy(&p->done);
}

/* Queue a chunk (takes ownership of data, a cap-byte buffer).  The queue
 * holds one chunk per worker whatever their size, and more only while the
 * queued bytes stay under a megabyte per worker: small files' chunks (the
 * benchmark corpus has 20,000 files of 4-40 KiB) no longer go through a
 * queue two deep, where a worker woke for every file and the walker slept
 * whenever both were busy.  Memory stays what one chunk per worker took. */
static void submit(struct ctx *c, struct batch *b, uint8_t *data, size_t len, size_t cap, uint8_t *id_out)
{
	struct pool *p = &c->pool;
	pthread_mutex_lock(&p->mu);
	while (p->n == p->cap || (p->n >= p->min_jobs && p->bytes + len > p->max_bytes))
		pthread_cond_wait(&p->not_full, &p->mu);
	p->bytes += len;
	p->q[(p->head + p->n) % p->cap] = (struct job){ data, len, cap, id_out, b };
	p->n++;
	b->outstanding++;
	pthread_cond_signal(&p->not_empty);
	pthread_mutex_unlock(&p->mu);
}

/* Wait until every chunk of batch b is stored; its first error, if any
 * (not reported: for cleaning up after another error, whose message stays). */
static int batch_drain(struct ctx *c, struct batch *b)
{
	struct pool *p = &c->pool;
	pthread_mutex_lock(&p->mu);
	while (b->outstanding > 0)
		pthread_cond_wait(&p->done, &p->mu);
	int rc = b->rc;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* batch_drain, and its error reported. */
static int batch_wait(struct ctx *c, struct batch *b)
{
	int rc = batch_drain(c, b);
	if (rc)
		cf_err(rc, "%s", b->msg);
	return rc;
}

/* ---------------- chunk streams ---------------- */

struct cstream {
	struct ctx *c;
	struct batch *batch;
	struct refs *refs;
	struct cf_chunker ch;
	uint8_t *buf;
	size_t len, cap;
	uint64_t total;
};

static uint8_t *ref_slot(struct refs *r)
{
	size_t k = r->n % REFS_PER_BLOCK;
	if (k == 0) {
		struct refblock *b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		if (r->tail)
			r->tail->next = b;
		else
			r->head = b;
		r->tail = b;
	}
	r->n++;
	return r->tail->ids[k];
}

static void refs_free(struct refs *r)
{
	struct refblock *b = r->head;
	while (b) {
		struct refblock *n = b->next;
		free(b);
		b = n;
	}
	r->head = r->tail = NULL;
	r->n = 0;
}

/* Copy ids into a node's content array (after the batch is done). */
static int refs_to_node(struct refs *r, struct cf_node *n)
{
	n->ncontent = 0;
	if (!r->n)
		return CF_OK;
	n->content = malloc(r->n * CF_ID_LEN);
	if (!n->content)
		return cf_err(CF_ENOMEM, "out of memory");
	size_t i = 0;
	for (struct refblock *b = r->head; b; b = b->next)
		for (size_t k = 0; k < REFS_PER_BLOCK && i < r->n; k++, i++)
			memcpy(n->content[i], b->ids[k], CF_ID_LEN);
	n->ncontent = r->n;
	return CF_OK;
}

static void cs_init(struct cstream *s, struct ctx *c, struct batch *b, struct refs *refs)
{
	memset(s, 0, sizeof(*s));
	s->c = c;
	s->batch = b;
	s->refs = refs;
	cf_chunker_init(&s->ch, &c->cp, cf_repo_gear(c->repo));
}

/* Room for want more bytes at buf + len. */
static uint8_t *cs_space(struct cstream *s, size_t want)
{
	if (!s->buf) {
		s->buf = buf_get(want, &s->cap);
		if (!s->buf)
			return NULL;
	}
	if (s->len + want > s->cap) {
		size_t cap = s->cap * 2;
		if (cap < s->len + want)
			cap = s->len + want;
		uint8_t *p = realloc(s->buf, cap);
		if (!p)
			return NULL;
		s->buf = p;
		s->cap = cap;
	}
	return s->buf + s->len;
}

static int cs_emit(struct cstream *s, uint8_t *data, size_t len, size_t cap)
{
	uint8_t *slot = ref_slot(s->refs);
	if (!slot) {
		free(data);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	submit(s->c, s->batch, data, len, cap, slot);
	return CF_OK;
}

/* n bytes were written at buf + len: find cuts, hand off whole chunks. */
static int cs_commit(struct cstream *s, size_t n)
{
	size_t start = s->len;
	s->len += n;
	s->total += n;
	while (start < s->len) {
		size_t k = cf_chunker_scan(&s->ch, s->buf + start, s->len - start);
		if (k == CF_CHUNKER_NONE)
			break;
		size_t cut = start + k, rem = s->len - cut;
		size_t ncap;
		uint8_t *nb = buf_get(rem + READ_SIZE, &ncap);
		if (!nb)
			return cf_err(CF_ENOMEM, "out of memory");
		memcpy(nb, s->buf + cut, rem);
		int rc = cs_emit(s, s->buf, cut, s->cap);
		s->buf = nb;
		s->cap = ncap;
		s->len = rem;
		start = 0;
		if (rc)
			return rc;
	}
	return CF_OK;
}

static int cs_finish(struct cstream *s)
{
	int rc = CF_OK;
	if (s->len) {
		rc = cs_emit(s, s->buf, s->len, s->cap);
		s->buf = NULL;
	}
	buf_put(s->buf, s->cap);
	s->buf = NULL;
	s->len = s->cap = 0;
	return rc;
}

static void cs_abort(struct cstream *s)
{
	buf_put(s->buf, s->cap);
	s->buf = NULL;
}

/* ---------------- holes ----------------
 *
 * A hole of a sparse file reads as zeros, and the chunks must be exactly
 * those of reading them (a file backed up sparse and the same bytes written
 * out must share their blobs, and the next backup must find them).  The
 * chunker is a function of its state and the bytes: on a run of zeros, from
 * the state right after a cut, it cuts again at the same length zlen every
 * time (the gear hash of zeros is constant after 64 bytes), so every chunk
 * that lies wholly inside a hole and starts at a cut is the same blob.  So
 * the zeros before the first cut in the hole, up to the cut that follows it
 * and after the last whole chunk are fed through the chunker as if read
 * (at most about three chunks' worth); the whole chunks between are not:
 * each is one reference to the zero blob, whose id is computed once (the
 * first of them is stored as usual, so the blob exists).  Nothing of the
 * hole is read: 1 TiB of hole costs 131072 references. */

struct zero_chunk {
	size_t len;          /* 0: unknown yet; SIZE_MAX: the chunker never cuts zeros */
	uint8_t id[CF_ID_LEN];
};

static int zero_chunk_learn(struct cstream *s, struct zero_chunk *z)
{
	struct cf_chunker ch;
	uint8_t *zeros = calloc(1, s->c->cp.max);
	if (!zeros)
		return cf_err(CF_ENOMEM, "out of memory");
	cf_chunker_init(&ch, &s->c->cp, cf_repo_gear(s->c->repo));
	size_t k = cf_chunker_scan(&ch, zeros, s->c->cp.max);
	if (k == CF_CHUNKER_NONE || k == 0) {
		z->len = SIZE_MAX;
	} else {
		z->len = k;
		cf_repo_blob_id(s->c->repo, zeros, k, z->id);
	}
	free(zeros);
	return CF_OK;
}

/* Feed n zeros through the chunker as if read. */
static int cs_feed_zeros(struct cstream *s, size_t n)
{
	uint8_t *dst = cs_space(s, n);
	if (!dst)
		return cf_err(CF_ENOMEM, "out of memory");
	memset(dst, 0, n);
	return cs_commit(s, n);
}

/* A hole of len bytes at the stream's current end. */
static int cs_hole(struct cstream *s, struct zero_chunk *z, uint64_t len)
{
	bool cut = false; /* a cut inside this hole: what follows is zeros from a fresh state */
	int rc;
	while (len) {
		if (!z->len && (rc = zero_chunk_learn(s, z)))
			return rc;
		if (cut && s->len == 0 && z->len != SIZE_MAX && len >= z->len) {
			uint64_t n = len / z->len;
			/* the first one stored as usual, so that the blob exists */
			uint8_t *data = calloc(1, z->len);
			if (!data)
				return cf_err(CF_ENOMEM, "out of memory");
			if ((rc = cs_emit(s, data, z->len, z->len)))
				return rc;
			for (uint64_t i = 1; i < n; i++) {
				uint8_t *slot = ref_slot(s->refs);
				if (!slot)
					return cf_err(CF_ENOMEM, "out of memory");
				memcpy(slot, z->id, CF_ID_LEN);
			}
			s->total += n * z->len;
			len -= n * z->len;
			continue;
		}
		size_t k = len < READ_SIZE ? (size_t)len : READ_SIZE;
		/* after the first cut, stop exactly at the next one */
		if (cut && z->len != SIZE_MAX && s->len < z->len && k > z->len - s->len)
			k = z->len - s->len;
		size_t before = s->refs->n;
		if ((rc = cs_feed_zeros(s, k)))
			return rc;
		if (s->refs->n != before)
			cut = true;
		len -= k;
		if (cf_interrupted)
			return cf_err(CF_EINTR, "interrupted");
	}
	return CF_OK;
}

static int cs_sink(void *ctx, const void *p, size_t n)
{
	struct cstream *s = ctx;
	while (n) {
		size_t k = n < READ_SIZE ? n : READ_SIZE;
		uint8_t *dst = cs_space(s, k);
		if (!dst)
			return cf_err(CF_ENOMEM, "out of memory");
		memcpy(dst, p, k);
		int rc = cs_commit(s, k);
		if (rc)
			return rc;
		p = (const uint8_t *)p + k;
		n -= k;
	}
	return cf_interrupted ? cf_err(CF_EINTR, "interrupted") : CF_OK;
}

/* ---------------- progress ---------------- */

static void progress(struct ctx *c, bool final)
{
	if (!c->o->progress)
		return;
	double now = cf_now_mono();
	if (!final && now - c->last_progress < 0.5)
		return;
	c->last_progress = now;
	double el = now - c->start;
	uint64_t files = c->sum->total_files_processed, bytes = c->sum->total_bytes_processed;
	uint64_t tf = c->scan_files, tb = c->scan_bytes;
	double rate = el > 0 ? bytes / el : 0;
	char eta[32] = "";
	if (c->scan_done && rate > 0 && tb > bytes) {
		int s = (int)((tb - bytes) / rate);
		snprintf(eta, sizeof(eta), ", ETA %d:%02d", s / 60, s % 60);
	}
	fprintf(stderr, "\r\033[K[%02d:%02d] %llu/%llu%s files, %.1f/%.1f MiB, %.1f MiB/s%s",
		(int)el / 60, (int)el % 60, (unsigned long long)files, (unsigned long long)tf,
		c->scan_done ? "" : "+", bytes / 1048576.0, tb / 1048576.0, rate / 1048576.0, eta);
	if (final)
		fputc('\n', stderr);
}

/* ---------------- the scanner (totals for the ETA) ---------------- */

struct scan_arg {
	struct ctx *c;
	char **paths;
	size_t n;
};

static void scan_tree(struct ctx *c, const char *path, int depth)
{
	struct stat st;
	if (cf_interrupted || depth > 256 || lstat(path, &st) < 0)
		return;
	if (S_ISREG(st.st_mode)) {
		c->scan_files++;
		c->scan_bytes += (uint64_t)st.st_size;
		return;
	}
	if (!S_ISDIR(st.st_mode))
		return;
	DIR *d = opendir(path);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *sub = NULL;
		if (asprintf(&sub, "%s/%s", path, e->d_name) < 0)
			break;
		scan_tree(c, sub, depth + 1);
		free(sub);
	}
	closedir(d);
}

static void *scanner(void *arg)
{
	struct scan_arg *a = arg;
	for (size_t i = 0; i < a->n; i++)
		scan_tree(a->c, a->paths[i], 0);
	a->c->scan_done = 1;
	return NULL;
}

/* ---------------- metadata ---------------- */

static char *dupstr(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int node_type(mode_t m)
{
	if (S_ISREG(m)) return CF_NODE_FILE;
	if (S_ISDIR(m)) return CF_NODE_DIR;
	if (S_ISLNK(m)) return CF_NODE_SYMLINK;
	if (S_ISFIFO(m)) return CF_NODE_FIFO;
	if (S_ISCHR(m)) return CF_NODE_CHARDEV;
	if (S_ISBLK(m)) return CF_NODE_BLOCKDEV;
	return CF_NODE_SOCKET;
}

static int read_xattrs(const char *path, struct cf_node *n)
{
	char list[16384];
	ssize_t len = llistxattr(path, list, sizeof(list));
	if (len <= 0)
		return CF_OK; /* none, or not supported here */
	for (ssize_t off = 0; off < len; off += (ssize_t)strlen(list + off) + 1) {
		const char *name = list + off;
		ssize_t vl = lgetxattr(path, name, NULL, 0);
		if (vl < 0)
			continue;
		uint8_t *v = malloc(vl ? (size_t)vl : 1);
		if (!v)
			return cf_err(CF_ENOMEM, "out of memory");
		vl = lgetxattr(path, name, v, (size_t)vl);
		if (vl < 0) {
			free(v);
			continue;
		}
		void *nx = realloc(n->xattrs, (n->nxattrs + 1) * sizeof(*n->xattrs));
		if (!nx) {
			free(v);
			return cf_err(CF_ENOMEM, "out of memory");
		}
		n->xattrs = nx;
		n->xattrs[n->nxattrs].name = strdup(name);
		n->xattrs[n->nxattrs].value = v;
		n->xattrs[n->nxattrs].len = (size_t)vl;
		if (!n->xattrs[n->nxattrs].name) {
			free(v);
			return cf_err(CF_ENOMEM, "out of memory");
		}
		n->nxattrs++;
	}
	return CF_OK;
}

/* uid/gid -> name caches: a lookup parses /etc/passwd (or asks NSS), far too
 * slow to repeat for every file of a volume that has two or three owners */
#define NAME_CACHE 16
struct name_cache {
	pthread_mutex_t mu;
	unsigned id[NAME_CACHE];
	char name[NAME_CACHE][256];
	bool known[NAME_CACHE], used[NAME_CACHE];
	unsigned next;
};
static struct name_cache ucache = { .mu = PTHREAD_MUTEX_INITIALIZER };
static struct name_cache gcache = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char *cached_name(struct name_cache *nc, unsigned id, char *buf, size_t len,
			       const char *(*lookup)(unsigned, char *, size_t))
{
	pthread_mutex_lock(&nc->mu);
	for (int i = 0; i < NAME_CACHE; i++)
		if (nc->used[i] && nc->id[i] == id) {
			bool known = nc->known[i];
			if (known)
				snprintf(buf, len, "%s", nc->name[i]);
			pthread_mutex_unlock(&nc->mu);
			return known ? buf : NULL;
		}
	pthread_mutex_unlock(&nc->mu);
	const char *r = lookup(id, buf, len);
	pthread_mutex_lock(&nc->mu);
	unsigned k = nc->next++ % NAME_CACHE;
	nc->used[k] = true;
	nc->id[k] = id;
	nc->known[k] = r != NULL;
	snprintf(nc->name[k], sizeof(nc->name[k]), "%s", r ? r : "");
	pthread_mutex_unlock(&nc->mu);
	return r;
}

static const char *user_lookup(unsigned uid, char *buf, size_t len);
static const char *group_lookup(unsigned gid, char *buf, size_t len);

static const char *user_name(uid_t uid, char *buf, size_t len)
{
	return cached_name(&ucache, uid, buf, len, user_lookup);
}

static const char *group_name(gid_t gid, char *buf, size_t len)
{
	return cached_name(&gcache, gid, buf, len, group_lookup);
}

static const char *user_lookup(unsigned uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res) {
		snprintf(buf, len, "%s", pw.pw_name);
		return buf;
	}
	return NULL;
}

static const char *group_lookup(unsigned gid, char *buf, size_t len)
{
	struct group gr, *res = NULL;
	char tmp[1024];
	if (getgrgid_r(gid, &gr, tmp, sizeof(tmp), &res) == 0 && res) {
		snprintf(buf, len, "%s", gr.gr_name);
		return buf;
	}
	return NULL;
}

static int64_t ts_ns(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* old: the same name in the parent snapshot, or NULL */
static int fill_node(const char *path, const char *name, const struct stat *st,
		     const struct cf_node *old, struct cf_node *n)
{
	char ub[256], gb[256];
	n->name = strdup(name);
	if (!n->name)
		return cf_err(CF_ENOMEM, "out of memory");
	n->type = node_type(st->st_mode);
	n->mode = st->st_mode & 07777;
	n->uid = st->st_uid;
	n->gid = st->st_gid;
	n->user = dupstr(user_name(st->st_uid, ub, sizeof(ub)));
	n->group = dupstr(group_name(st->st_gid, gb, sizeof(gb)));
	n->size = n->type == CF_NODE_FILE ? (uint64_t)st->st_size : 0;
	n->mtime_ns = ts_ns(st->st_mtim);
	/* atime is not recorded: reading a directory changes it, and an
	 * unchanged directory must give the same tree blob every time */
	n->atime_ns = n->mtime_ns;
	n->ctime_ns = ts_ns(st->st_ctim);
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->nlink = (uint32_t)st->st_nlink;
	if (n->type == CF_NODE_CHARDEV || n->type == CF_NODE_BLOCKDEV)
		n->rdev = st->st_rdev;
	if (n->type == CF_NODE_SYMLINK) {
		char target[8192];
		ssize_t k = readlink(path, target, sizeof(target) - 1);
		if (k < 0)
			return cf_err_errno("readlink %s", path);
		target[k] = 0;
		if (!(n->linktarget = strdup(target)))
			return cf_err(CF_ENOMEM, "out of memory");
	}
	/* Setting or removing an xattr changes the ctime: an inode that had
	 * none in the parent snapshot and kept its ctime still has none, and
	 * the llistxattr call (a tenth of a no-change backup) is saved. */
	if (old && old->nxattrs == 0 && old->type == n->type && old->ino == n->ino &&
	    old->dev == n->dev && old->ctime_ns == n->ctime_ns)
		return CF_OK;
	return read_xattrs(path, n);
}

static bool excluded(const struct ctx *c, const char *path, const char *name)
{
	for (size_t i = 0; i < c->o->nexcludes; i++) {
		const char *pat = c->o->excludes[i];
		if (fnmatch(pat, path, 0) == 0 || fnmatch(pat, name, 0) == 0)
			return true;
	}
	return false;
}

/* ---------------- the directory cache ----------------
 *
 * What the cache's digest of a directory covers: per entry, in the tree's
 * order, the name and the lstat fields fill_node() turns into the node.
 * User and group names, xattrs and symlink targets are not in it: the
 * first two follow the ids, the others cannot change without a new ctime. */
struct fp {
	uint64_t size, mtime, ctime, dev, ino, rdev;
	uint32_t type, mode, uid, gid, nlink, zero;
};

static void fp_of_stat(const struct stat *st, struct fp *f)
{
	memset(f, 0, sizeof(*f));
	f->type = (uint32_t)node_type(st->st_mode);
	f->mode = st->st_mode & 07777;
	f->uid = st->st_uid;
	f->gid = st->st_gid;
	f->size = f->type == CF_NODE_FILE ? (uint64_t)st->st_size : 0;
	f->mtime = (uint64_t)ts_ns(st->st_mtim);
	f->ctime = (uint64_t)ts_ns(st->st_ctim);
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->nlink = (uint32_t)st->st_nlink;
	if (f->type == CF_NODE_CHARDEV || f->type == CF_NODE_BLOCKDEV)
		f->rdev = st->st_rdev;
}

static void fp_of_node(const struct cf_node *n, struct fp *f)
{
	memset(f, 0, sizeof(*f));
	f->type = (uint32_t)n->type;
	f->mode = n->mode;
	f->uid = n->uid;
	f->gid = n->gid;
	f->size = n->size;
	f->mtime = (uint64_t)n->mtime_ns;
	f->ctime = (uint64_t)n->ctime_ns;
	f->dev = n->dev;
	f->ino = n->ino;
	f->nlink = n->nlink;
	f->rdev = n->rdev;
}

static void fp_add(struct cf_hasher *h, const char *name, const struct fp *f)
{
	cf_hasher_update(h, name, strlen(name) + 1);
	cf_hasher_update(h, f, sizeof(*f));
}

/* Stop writing the cache (after a failure: the next backup only walks
 * slower). */
static void dc_off(struct ctx *c)
{
	c->dc_write = false;
	cf_buf_release(&c->dc_out);
}

/* Note directory tree t (stored as id) for the next backup's cache. */
static void dc_record(struct ctx *c, const struct cf_tree *t, const uint8_t id[CF_ID_LEN])
{
	if (!c->dc_write)
		return;
	struct cf_hasher *h = cf_hasher_new();
	uint8_t dg[CF_ID_LEN];
	uint32_t nsub = 0;
	if (!h) {
		dc_off(c);
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct fp f;
		fp_of_node(&t->nodes[i], &f);
		fp_add(h, t->nodes[i].name, &f);
		nsub += t->nodes[i].type == CF_NODE_DIR && t->nodes[i].has_subtree;
	}
	cf_hasher_final(h, dg);
	bool ok = cf_dc_add(&c->dc_out, id, dg, nsub) == CF_OK;
	for (size_t i = 0; ok && i < t->n; i++)
		if (t->nodes[i].type == CF_NODE_DIR && t->nodes[i].has_subtree)
			ok = cf_dc_add_sub(&c->dc_out, t->nodes[i].name, t->nodes[i].subtree) == CF_OK;
	if (!ok)
		dc_off(c);
	else
		c->dc_count++;
}

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

/* ---------------- parent trees, read ahead ----------------
 *
 * A backup with a parent snapshot loads the parent's tree of every directory
 * it enters, and decoding those (JSON) is most of a no-change backup's time.
 * So two threads load and decode, in order, the trees of the next few
 * subdirectories of the directory being walked while the walker stats files;
 * the walker takes a tree from here when it enters the directory, and loads
 * it itself when it is not here (never asked for, pushed out, or failed: its
 * error is then reported by the walker's own load).  At most AHEAD_SLOTS
 * decoded trees are held; asking with no free slot pushes out the oldest
 * finished one, which the walk has most likely passed. */
static void *ahead_main(void *arg)
{
	struct ahead *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct ahead_slot *next = NULL;
		for (int i = 0; i < AHEAD_SLOTS; i++)
			if (a->s[i].state == AH_QUEUED && (!next || a->s[i].order < next->order))
				next = &a->s[i];
		if (a->stop)
			break;
		if (!next) {
			pthread_cond_wait(&a->work, &a->mu);
			continue;
		}
		next->state = AH_LOADING;
		uint8_t id[CF_ID_LEN];
		memcpy(id, next->id, CF_ID_LEN);
		pthread_mutex_unlock(&a->mu);
		struct cf_tree t = CF_TREE_INIT;
		int rc = cf_repo_load_tree(a->repo, id, &t);
		pthread_mutex_lock(&a->mu);
		next->t = t;
		next->rc = rc;
		next->state = AH_DONE;
		pthread_cond_broadcast(&a->done);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void ahead_start(struct ctx *c)
{
	struct ahead *a = &c->ahead;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->done, NULL);
	a->repo = c->repo;
	/* Two threads: decoding is the slow part and a directory's trees are
	 * independent.  Without threads every take is a load of one's own:
	 * still correct. */
	while (a->nthreads < AHEAD_THREADS &&
	       pthread_create(&a->thread[a->nthreads], NULL, ahead_main, a) == 0)
		a->nthreads++;
}

static void ahead_stop(struct ctx *c)
{
	struct ahead *a = &c->ahead;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_broadcast(&a->work);
	pthread_mutex_unlock(&a->mu);
	for (int i = 0; i < a->nthreads; i++)
		pthread_join(a->thread[i], NULL);
	a->nthreads = 0;
	for (int i = 0; i < AHEAD_SLOTS; i++)
		cf_tree_release(&a->s[i].t);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->done);
}

static void ahead_want(struct ctx *c, const uint8_t id[CF_ID_LEN])
{
	struct ahead *a = &c->ahead;
	struct ahead_slot *slot = NULL, *oldest = NULL;
	if (!a->nthreads)
		return;
	pthread_mutex_lock(&a->mu);
	for (int i = 0; i < AHEAD_SLOTS; i++) {
		struct ahead_slot *s = &a->s[i];
		if (s->state != AH_FREE && !memcmp(s->id, id, CF_ID_LEN))
			goto out; /* asked already (an identical directory) */
		if (s->state == AH_FREE && !slot)
			slot = s;
		if (s->state == AH_DONE && (!oldest || s->order < oldest->order))
			oldest = s;
	}
	if (!slot && oldest) {
		cf_tree_release(&oldest->t);
		slot = oldest;
	}
	if (slot) {
		slot->state = AH_QUEUED;
		slot->order = a->seq++;
		memcpy(slot->id, id, CF_ID_LEN);
		pthread_cond_signal(&a->work);
	}
out:
	pthread_mutex_unlock(&a->mu);
}

static int ahead_take(struct ctx *c, const uint8_t id[CF_ID_LEN], struct cf_tree *t)
{
	struct ahead *a = &c->ahead;
	if (a->nthreads) {
		pthread_mutex_lock(&a->mu);
		for (int i = 0; i < AHEAD_SLOTS; i++) {
			struct ahead_slot *s = &a->s[i];
			if (s->state == AH_FREE || memcmp(s->id, id, CF_ID_LEN))
				continue;
			if (s->state == AH_QUEUED) {
				s->state = AH_FREE; /* not started: load it here */
				break;
			}
			while (s->state == AH_LOADING)
				pthread_cond_wait(&a->done, &a->mu);
			int rc = s->rc;
			*t = s->t;
			s->t = (struct cf_tree)CF_TREE_INIT;
			s->state = AH_FREE;
			pthread_mutex_unlock(&a->mu);
			if (rc == CF_OK)
				return CF_OK;
			cf_tree_release(t); /* load again for this thread's message */
			return cf_repo_load_tree(c->repo, id, t);
		}
		pthread_mutex_unlock(&a->mu);
	}
	return cf_repo_load_tree(c->repo, id, t);
}

/* ---------------- walking ---------------- */

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
		uint8_t *dst = cs_space(s, want);
		if (!dst) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		ssize_t k = read(fd, dst, want);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			cf_warn("error: read %s: %s", path, strerror(errno));
			*unreadable = true;
			break;
		}
		if (k == 0)
			break;
		*got += (uint64_t)k;
		c->sum->total_bytes_processed += (uint64_t)k;
		if ((rc = cs_commit(s, (size_t)k)))
			break;
		/* a short read is usually the end: ask for the rest of the
		 * buffer (no reallocation) to see EOF; a full one means more */
		want = (size_t)k < want ? want - (size_t)k : READ_SIZE;
		if (cf_interrupted) {
			rc = cf_err(CF_EINTR, "interrupted");
			break;
		}
		progress(c, false);
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
			if ((rc = cs_hole(s, &z, (uint64_t)(d - *pos))))
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
		cf_warn("error: seek %s: %s", path, strerror(errno));
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
		cf_warn("error: %s: %s", path, strerror(errno));
		*unreadable = true;
		return CF_OK;
	}
	cs_init(&s, c, b, refs);
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
	if (rc || *unreadable) {
		cs_abort(&s);
		return rc;
	}
	return cs_finish(&s);
}

/* What a directory's tree needs of an entry once its chunks are stored. */
struct pending {
	struct refs refs;
	size_t node; /* index into the tree */
	bool reused;
	/* a subdirectory whose tree is finished later: its id comes from
	 * there, and the parent snapshot's id of it for the summary */
	struct dirjob *sub;
	uint8_t sub_kind; /* DIR_NEW, DIR_OLD_NOT_DIR or DIR_COMPARE */
	uint8_t sub_old[CF_ID_LEN];
};
enum { DIR_NEW, DIR_OLD_NOT_DIR, DIR_COMPARE };

/* ---------------- directories finished later ----------------
 *
 * A directory's tree can be encoded only when every chunk of its files is
 * stored (the nodes carry their ids).  Waiting for that at the end of each
 * directory drained the workers' queue 900 times in a backup of the
 * benchmark corpus: the workers sat idle while the walker waited, encoded
 * the tree and listed the next directory.  So the walker goes on, and the
 * directory (its tree, its pending entries, its batch of chunks and the
 * parent snapshot's tree of it) waits in a queue, oldest first, to be
 * finished by the walker later: when its chunks are stored, or when more
 * than DEFER_MAX wait.  The queue is in the order directories were walked
 * to their end, so a directory's subdirectories are always finished before
 * it; its parent copies their ids into its nodes when it is finished in
 * turn, and frees them.  Everything stays on the walker's thread. */
#define DEFER_MAX 16

struct dirjob {
	struct batch b; /* the chunks of its files (workers point here) */
	struct cf_tree t;
	struct pending *pd;
	size_t npd;
	struct cf_tree old; /* the parent snapshot's tree of it, if has_old */
	bool has_old;
	uint8_t old_id[CF_ID_LEN];
	uint8_t id[CF_ID_LEN]; /* its tree id, once finished */
	struct dirjob *next;
};

static int save_dir(struct ctx *c, const char *path, struct cf_tree *old,
		    const uint8_t *old_id, uint8_t id[CF_ID_LEN], struct dirjob **later);
static int dir_known(struct ctx *c, const char *path, const uint8_t *old_id, uint8_t id[CF_ID_LEN],
		     struct dirjob **later);
struct vnode;
static int stream_node(struct ctx *c, struct vnode *v, struct cf_node *n, struct batch *b, struct refs *refs);
static int overlay_entry(struct ctx *c, const char *sub, const char *name, struct cf_node *n,
			 struct batch *b, struct refs *refs, bool *handled, bool *skip);

/* The summary's count of a subdirectory whose tree id is now known. */
static void count_dir(struct ctx *c, const struct pending *pd, const uint8_t id[CF_ID_LEN])
{
	if (pd->sub_kind == DIR_NEW)
		c->sum->dirs_new++;
	else if (pd->sub_kind == DIR_OLD_NOT_DIR || memcmp(pd->sub_old, id, CF_ID_LEN))
		c->sum->dirs_changed++;
	else
		c->sum->dirs_unmodified++;
}

/* Fill node n for path (already lstat'ed into st) and everything below it. */
static int save_entry(struct ctx *c, const char *path, const struct stat *st, const struct cf_node *old,
		      struct cf_node *n, struct pending *pd, struct batch *b, bool *drop)
{
	int rc;
	const char *name = strrchr(path, '/');
	name = name && name[1] ? name + 1 : path;
	if ((rc = fill_node(path, name, st, old, n))) {
		if (rc == CF_ENOMEM)
			return rc;
		cf_warn("error: %s", cf_errmsg(rc));
		c->unreadable++;
		*drop = true;
		return CF_OK;
	}
	if (n->type == CF_NODE_DIR) {
		struct dirjob *later = NULL;
		if (old && old->type == CF_NODE_DIR && old->has_subtree)
			rc = dir_known(c, path, old->subtree, n->subtree, &later);
		else
			rc = save_dir(c, path, NULL, NULL, n->subtree, &later);
		pd->sub = later; /* even after a failure: the caller frees it */
		if (rc)
			return rc;
		n->has_subtree = true;
		pd->sub_kind = !old ? DIR_NEW : !old->has_subtree ? DIR_OLD_NOT_DIR : DIR_COMPARE;
		if (pd->sub_kind == DIR_COMPARE)
			memcpy(pd->sub_old, old->subtree, CF_ID_LEN);
		if (!later) /* else counted when its id is known */
			count_dir(c, pd, n->subtree);
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

static int list_names(const char *path, char ***out, size_t *n)
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
		if (cnt == cap) {
			cap = cap ? cap * 2 : 32;
			char **nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				goto nomem;
			v = nv;
		}
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

/* The directory's tree is the parent snapshot's, node for node, and that
 * tree is still in the index: its id is the answer, no encoding needed (the
 * case of every unchanged directory of a no-change backup). */
static bool same_tree(struct ctx *c, const struct cf_tree *t, const struct cf_tree *old,
		      const uint8_t *old_id)
{
	if (!old || !old_id || old->n != t->n)
		return false;
	for (size_t i = 0; i < t->n; i++)
		if (!cf_node_equal(&t->nodes[i], &old->nodes[i]))
			return false;
	return cf_repo_has_blob(c->repo, CF_BLOB_TREE, old_id);
}

static int store_tree(struct ctx *c, const struct cf_tree *t, uint8_t id[CF_ID_LEN])
{
	bool added = false;
	uint64_t stored = 0;
	int rc = cf_repo_save_tree(c->repo, t, id, &added, &stored);
	if (added) {
		pthread_mutex_lock(&c->pool.mu);
		c->sum->tree_blobs++;
		c->added_packed += stored;
		pthread_mutex_unlock(&c->pool.mu);
	}
	if (rc == CF_OK)
		dc_record(c, t, id);
	return rc;
}

/* Finish the nodes of a directory once its chunks are stored (and its
 * subdirectories finished later are finished), then store its tree (or
 * reuse the parent's: same_tree).  pd's entries are released either way. */
static int finish_tree(struct ctx *c, struct cf_tree *t, struct pending *pd, size_t npd,
		       struct batch *b, const struct cf_tree *old, const uint8_t *old_id,
		       uint8_t id[CF_ID_LEN])
{
	int rc = batch_wait(c, b);
	for (size_t i = 0; i < npd; i++) {
		struct cf_node *n = &t->nodes[pd[i].node];
		if (pd[i].sub) {
			memcpy(n->subtree, pd[i].sub->id, CF_ID_LEN);
			count_dir(c, &pd[i], n->subtree);
			free(pd[i].sub);
			pd[i].sub = NULL;
		} else if (!rc && !pd[i].reused && n->type == CF_NODE_FILE) {
			rc = refs_to_node(&pd[i].refs, n);
		}
		refs_free(&pd[i].refs);
	}
	if (rc)
		return rc;
	if (same_tree(c, t, old, old_id)) {
		memcpy(id, old_id, CF_ID_LEN);
		dc_record(c, t, id);
		return CF_OK;
	}
	return store_tree(c, t, id);
}

/* A subdirectory's parent tree is loaded ahead unless the directory
 * cache describes it (then it is most likely never loaded). */
static bool wants_ahead(const struct ctx *c, const struct cf_node *on)
{
	return on && on->type == CF_NODE_DIR && on->has_subtree && !cf_dc_find(&c->dc, on->subtree);
}

static int name_cmp(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	int r = memcmp(a, b, alen < blen ? alen : blen);
	return r ? r : (alen > blen) - (alen < blen);
}

struct fast_sub {
	char *path;
	const char *name;
	const uint8_t *old;
	uint8_t id[CF_ID_LEN];
};

/* The parent tree t of a directory whose entries matched the cache, with
 * the subdirectories' new tree ids: false if t does not have exactly those
 * subdirectories (then the caller walks the directory). */
static bool patch_subtrees(struct cf_tree *t, const struct fast_sub *subs, size_t nsubs)
{
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct cf_node *n = &t->nodes[i];
		if (n->type != CF_NODE_DIR || !n->has_subtree)
			continue;
		if (k == nsubs || strcmp(n->name, subs[k].name))
			return false;
		memcpy(n->subtree, subs[k++].id, CF_ID_LEN);
	}
	return k == nsubs;
}

/* A directory whose parent tree (old_id) the cache describes as ce: lstat
 * its entries, and when their digest is the cached one, take the parent's
 * tree id (or, when a subdirectory changed, the parent's tree with the new
 * subtree ids) without walking the directory.  *done false: not the same,
 * or not sure; nothing was counted, and the caller walks it. */
static int dir_fast(struct ctx *c, const char *path, const uint8_t *old_id,
		    const struct cf_dc_entry *ce, uint8_t id[CF_ID_LEN], bool *done)
{
	struct cf_snapshot_summary keep = *c->sum;
	struct cf_tree t = CF_TREE_INIT;
	struct fast_sub *subs = NULL;
	struct cf_hasher *h = NULL;
	char **names = NULL;
	size_t nnames = 0, nsubs = 0;
	uint64_t files = 0, bytes = 0;
	int dfd = -1, rc = CF_OK;
	uint8_t dg[CF_ID_LEN];

	*done = false;
	if ((rc = list_names(path, &names, &nnames)))
		return rc == CF_ENOMEM ? rc : CF_OK; /* the walk names the error */
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		goto out;
	if (nnames && !(subs = calloc(nnames, sizeof(*subs)))) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if (!(h = cf_hasher_new())) {
		rc = CF_ENOMEM;
		goto out;
	}
	const uint8_t *cur = ce->subs;
	uint32_t left = ce->nsub;
	size_t plen = strlen(path);
	const char *sep = plen && path[plen - 1] == '/' ? "" : "/";
	for (size_t i = 0; i < nnames; i++) {
		/* the full path only for exclude patterns and subdirectories: not
		 * a malloc per file of an unchanged directory */
		char *sub = NULL;
		struct stat st;
		if (c->o->nexcludes && asprintf(&sub, "%s%s%s", path, sep, names[i]) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		bool skip = sub && excluded(c, sub, names[i]);
		if (!skip && fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			free(sub);
			goto out;
		}
		if (skip || (c->o->one_file_system && S_ISDIR(st.st_mode) && st.st_dev != c->root_dev)) {
			free(sub);
			continue;
		}
		struct fp f;
		fp_of_stat(&st, &f);
		fp_add(h, names[i], &f);
		if (!S_ISDIR(st.st_mode)) {
			free(sub);
			if (S_ISREG(st.st_mode)) {
				files++;
				bytes += (uint64_t)st.st_size;
			}
			continue;
		}
		const uint8_t *sid = NULL;
		while (left && !sid) {
			const uint8_t *at = cur, *xid;
			const char *nm;
			size_t len;
			cf_dc_sub(&cur, &nm, &len, &xid);
			int cmp = name_cmp(nm, len, names[i]);
			if (cmp > 0) {
				cur = at;
				break;
			}
			left--;
			if (cmp == 0)
				sid = xid;
		}
		if (!sid) {
			free(sub);
			goto out;
		}
		if (!sub && asprintf(&sub, "%s%s%s", path, sep, names[i]) < 0) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		subs[nsubs].path = sub;
		subs[nsubs].name = names[i];
		subs[nsubs++].old = sid;
	}
	cf_hasher_final(h, dg);
	h = NULL;
	if (memcmp(dg, ce->digest, CF_ID_LEN))
		goto out;

	/* the directory's own entries are unchanged: count its files, go down */
	c->sum->total_files_processed += files;
	c->sum->files_unmodified += files;
	c->sum->total_bytes_processed += bytes;
	progress(c, false);
	bool changed = false;
	for (size_t k = 0; k < nsubs; k++) {
		if ((rc = dir_known(c, subs[k].path, subs[k].old, subs[k].id, NULL)))
			goto out;
		if (memcmp(subs[k].id, subs[k].old, CF_ID_LEN)) {
			changed = true;
			c->sum->dirs_changed++;
		} else {
			c->sum->dirs_unmodified++;
		}
	}
	if (!changed && cf_repo_has_blob(c->repo, CF_BLOB_TREE, old_id)) {
		memcpy(id, old_id, CF_ID_LEN);
		if (c->dc_write) {
			bool ok = cf_dc_add(&c->dc_out, id, ce->digest, (uint32_t)nsubs) == CF_OK;
			for (size_t k = 0; ok && k < nsubs; k++)
				ok = cf_dc_add_sub(&c->dc_out, subs[k].name, subs[k].id) == CF_OK;
			if (!ok)
				dc_off(c);
			else
				c->dc_count++;
		}
		c->dc_hits++;
		*done = true;
		goto out;
	}
	/* a subdirectory changed: the parent's tree with its new subtree ids */
	rc = cf_repo_load_tree(c->repo, old_id, &t);
	if (rc == CF_OK && patch_subtrees(&t, subs, nsubs)) {
		if ((rc = store_tree(c, &t, id)) == CF_OK)
			*done = true;
		goto out;
	}
	if (rc == CF_ENOMEM)
		goto out;
	rc = CF_OK;
	/* that tree is unreadable after all: undo the counts, the caller walks
	 * the directory (again, down to the bottom) */
	uint64_t tree_blobs = c->sum->tree_blobs;
	*c->sum = keep;
	c->sum->tree_blobs = tree_blobs;
out:
	if (h)
		cf_hasher_final(h, dg); /* frees it */
	if (dfd >= 0)
		close(dfd);
	for (size_t k = 0; k < nsubs; k++)
		free(subs[k].path);
	free(subs);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	cf_tree_release(&t);
	return rc;
}

/* Drop what a directory job holds (after its chunks are all stored), but
 * not the job itself: its parent frees it. */
static void job_release(struct dirjob *j)
{
	for (size_t i = 0; i < j->npd; i++) {
		refs_free(&j->pd[i].refs);
		free(j->pd[i].sub); /* finished before j: out of the queue */
		j->pd[i].sub = NULL;
	}
	free(j->pd);
	j->pd = NULL;
	j->npd = 0;
	cf_tree_release(&j->t);
	cf_tree_release(&j->old);
}

/* Finish the oldest waiting directories: those whose chunks are stored,
 * and while more than DEFER_MAX wait (or all, with all) the oldest even
 * if that means waiting for its chunks.  The first failure is returned;
 * the failed job is dropped like the rest (dq_abort). */
static int dq_run(struct ctx *c, bool all)
{
	while (c->dq_head) {
		struct dirjob *j = c->dq_head;
		if (!all && c->dq_n <= DEFER_MAX) {
			pthread_mutex_lock(&c->pool.mu);
			int left = j->b.outstanding;
			pthread_mutex_unlock(&c->pool.mu);
			if (left)
				return CF_OK;
		}
		c->dq_head = j->next;
		if (!c->dq_head)
			c->dq_tail = NULL;
		c->dq_n--;
		int rc = finish_tree(c, &j->t, j->pd, j->npd, &j->b, j->has_old ? &j->old : NULL,
				     j->has_old ? j->old_id : NULL, j->id);
		job_release(j);
		if (rc)
			return rc;
	}
	return CF_OK;
}

/* After a failure: wait for the chunks of every waiting directory and drop
 * them (their parents, on the walker's stack or later in the queue, free
 * the jobs themselves). */
static void dq_abort(struct ctx *c)
{
	while (c->dq_head) {
		struct dirjob *j = c->dq_head;
		c->dq_head = j->next;
		c->dq_n--;
		batch_drain(c, &j->b);
		job_release(j);
	}
	c->dq_tail = NULL;
}

/* A directory that was in the parent snapshot as tree old_id.  later: as
 * for save_dir (NULL: finish it before returning). */
static int dir_known(struct ctx *c, const char *path, const uint8_t *old_id, uint8_t id[CF_ID_LEN],
		     struct dirjob **later)
{
	const struct cf_dc_entry *ce = cf_dc_find(&c->dc, old_id);
	bool done = false;
	int rc;
	if (ce && ((rc = dir_fast(c, path, old_id, ce, id, &done)) || done))
		return rc;
	struct cf_tree ot = CF_TREE_INIT;
	rc = ahead_take(c, old_id, &ot);
	if (rc == CF_ENOMEM)
		return rc;
	/* a damaged parent tree only costs a full read */
	bool have = rc == CF_OK;
	rc = save_dir(c, path, have ? &ot : NULL, have ? old_id : NULL, id, later);
	cf_tree_release(&ot);
	return rc;
}

/* Walk directory path into a tree.  old (the parent snapshot's tree of it,
 * old_id) is taken over: *old is left empty.  With later, the tree may be
 * finished after this returns (*later set: the job that will hold its id,
 * which the caller puts in its pending entry and frees); without, id is set
 * when this returns. */
static int save_dir(struct ctx *c, const char *path, struct cf_tree *old_in,
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
	if ((rc = dq_run(c, false)))
		goto out;

	if ((rc = list_names(path, &names, &nnames))) {
		if (rc == CF_ENOMEM)
			goto out;
		cf_warn("error: %s", cf_errmsg(rc));
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
			if (wants_ahead(c, on))
				ahead_n--;
			if (ahead_next <= i)
				ahead_next = i + 1; /* this one is loaded when needed, not ahead */
			while (ahead_n < AHEAD_PER_DIR && ahead_next < nnames) {
				on = cf_tree_find(old, names[ahead_next++]);
				if (wants_ahead(c, on)) {
					ahead_want(c, on->subtree);
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
		if (excluded(c, sub, names[i]))
			continue;
		if (c->noverlays) {
			bool handled = false, skip = false;
			struct cf_node *n = cf_tree_add(tp);
			if (!n) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			pd[npd].node = tp->n - 1;
			if ((rc = overlay_entry(c, sub, names[i], n, bp, &pd[npd].refs, &handled, &skip)))
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
		if (lstat(sub, &st) < 0) {
			cf_warn("error: %s: %s", sub, strerror(errno));
			c->unreadable++;
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
		if ((rc = save_entry(c, sub, &st, on, n, &pd[npd], bp, &drop)))
			goto out;
		if (drop) {
			/* leave it out of the tree; its chunks (if any) are garbage */
			refs_free(&pd[npd].refs);
			cf_node_release(n);
			tp->n--;
			continue;
		}
		npd++;
		progress(c, false);
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
		return dq_run(c, false);
	}
	/* now: everything that waits first (it may hold this one's
	 * subdirectories), then this one */
	if (!(rc = dq_run(c, true)))
		rc = finish_tree(c, tp, pd, npd, bp, old, old_id, id);
	job_release(j);
	free(j);
	return rc;
out:
	/* the waiting directories first (they may be this one's), then the
	 * chunks of this one's files, also the entry being read when the
	 * error struck */
	dq_abort(c);
	batch_drain(c, bp);
	j->pd = pd;
	j->npd = pd ? (npd < nnames ? npd + 1 : npd) : 0;
	job_release(j);
	free(j);
	free(sub);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	return rc;
}


/* ---------------- the root: path components as directories ---------------- */

/* The snapshot's root tree holds each backed-up path under its full
 * absolute path (/var/lib/x -> var -> lib -> x), as restic does, so two
 * volumes with the same last name never collide and restore recreates the
 * same layout under --target. */
struct vnode {
	char *name;
	char *fspath;            /* real path for metadata (intermediate dirs too) */
	bool leaf;               /* backed-up path itself */
	const struct cf_stream_source *stream;
	struct vnode *kids;
	size_t nkids;
};

static void vnode_free(struct vnode *v)
{
	for (size_t i = 0; i < v->nkids; i++)
		vnode_free(&v->kids[i]);
	free(v->kids);
	free(v->name);
	free(v->fspath);
}

static int vnode_insert(struct vnode *root, const char *path, const struct cf_stream_source *stream)
{
	struct vnode *cur = root;
	const char *p = path;
	size_t fslen = 0;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		fslen = (size_t)(p - path) + len;
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return cf_err(CF_EINVAL, "path %s: '.' and '..' components are not allowed", path);
		struct vnode *k = NULL;
		for (size_t i = 0; i < cur->nkids; i++)
			if (strlen(cur->kids[i].name) == len && !memcmp(cur->kids[i].name, p, len))
				k = &cur->kids[i];
		if (cur->stream || (cur->leaf && !stream))
			return cf_err(CF_EINVAL, "%s lies inside %s, which is backed up as a whole",
				      path, cur->fspath);
		if (cur->leaf)
			return CF_EEXIST; /* a stream inside a walked directory: an overlay */
		if (!k) {
			void *nk = realloc(cur->kids, (cur->nkids + 1) * sizeof(*cur->kids));
			if (!nk)
				return cf_err(CF_ENOMEM, "out of memory");
			cur->kids = nk;
			k = &cur->kids[cur->nkids++];
			memset(k, 0, sizeof(*k));
			if (!(k->name = strndup(p, len)))
				return cf_err(CF_ENOMEM, "out of memory");
			/* a relative stream path ("mariadb/app.sql") names no real
			 * directory: its parents get synthetic metadata */
			if (path[0] == '/' && !(k->fspath = strndup(path, fslen)))
				return cf_err(CF_ENOMEM, "out of memory");
		}
		cur = k;
		p += len;
	}
	if (cur == root)
		return cf_err(CF_EINVAL, "cannot back up '/' itself as a path; name directories under it");
	if (cur->leaf || cur->stream)
		return cf_err(CF_EINVAL, "path %s is given twice", path);
	if (cur->nkids)
		return cf_err(CF_EINVAL, "%s contains another source (%s/%s...): give one or the other",
			      path, path, cur->kids[0].name);
	if (stream)
		cur->stream = stream;
	else
		cur->leaf = true;
	return CF_OK;
}

static int save_vdir(struct ctx *c, struct vnode *v, const struct cf_tree *old, uint8_t id[CF_ID_LEN]);

static int stream_node(struct ctx *c, struct vnode *v, struct cf_node *n, struct batch *b, struct refs *refs)
{
	struct cstream s;
	n->name = strdup(v->name);
	if (!n->name)
		return cf_err(CF_ENOMEM, "out of memory");
	n->type = CF_NODE_FILE;
	n->mode = v->stream->mode ? v->stream->mode : 0600;
	n->uid = v->stream->has_owner ? v->stream->uid : getuid();
	n->gid = v->stream->has_owner ? v->stream->gid : getgid();
	n->mtime_ns = n->ctime_ns = n->atime_ns = cf_now_ns();
	if (v->stream->has_owner)
		n->mtime_ns = v->stream->mtime_ns;
	cs_init(&s, c, b, refs);
	int rc = v->stream->produce(v->stream->ctx, cs_sink, &s);
	if (rc) {
		cs_abort(&s);
		return cf_err_prefix(rc, "%s", v->stream->path);
	}
	n->size = s.total;
	c->sum->total_files_processed++;
	c->sum->total_bytes_processed += s.total;
	c->sum->files_new++;
	return cs_finish(&s);
}

/* If sub is where an overlay stream goes, store the stream there instead of
 * the live file (*handled).  The live database's -wal/-shm/-journal files and
 * the temporary copy are left out (*skip). */
static int overlay_entry(struct ctx *c, const char *sub, const char *name, struct cf_node *n,
			 struct batch *b, struct refs *refs, bool *handled, bool *skip)
{
	*handled = *skip = false;
	if (!strncmp(name, "coffer-sqlite-", 14)) {
		*skip = true;
		return CF_OK;
	}
	for (size_t i = 0; i < c->noverlays; i++) {
		const char *op = c->overlays[i]->path;
		size_t ol = strlen(op);
		if (!strcmp(op, sub)) {
			struct vnode v = { .name = (char *)name, .stream = c->overlays[i] };
			*handled = true;
			return stream_node(c, &v, n, b, refs);
		}
		if (!strncmp(op, sub, ol) && (!strcmp(sub + ol, "-wal") || !strcmp(sub + ol, "-shm") ||
					      !strcmp(sub + ol, "-journal"))) {
			*skip = true;
			return CF_OK;
		}
	}
	return CF_OK;
}

static int cmp_vnode(const void *a, const void *b)
{
	return strcmp(((const struct vnode *)a)->name, ((const struct vnode *)b)->name);
}

static int save_vdir(struct ctx *c, struct vnode *v, const struct cf_tree *old, uint8_t id[CF_ID_LEN])
{
	struct cf_tree t = CF_TREE_INIT;
	struct pending *pd = calloc(v->nkids ? v->nkids : 1, sizeof(*pd));
	struct batch b = { 0, 0, "" };
	size_t npd = 0;
	int rc = CF_OK;

	if (!pd)
		return cf_err(CF_ENOMEM, "out of memory");
	/* build the tree in name order so it needs no sorting afterwards */
	if (v->nkids)
		qsort(v->kids, v->nkids, sizeof(*v->kids), cmp_vnode);
	for (size_t i = 0; i < v->nkids; i++) {
		struct vnode *k = &v->kids[i];
		const struct cf_node *on = old ? cf_tree_find(old, k->name) : NULL;
		struct cf_node *n = cf_tree_add(&t);
		if (!n) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto fail;
		}
		pd[npd].node = t.n - 1;
		if (k->stream) {
			if ((rc = stream_node(c, k, n, &b, &pd[npd].refs)))
				goto fail;
			npd++;
			continue;
		}
		struct stat st;
		bool have_stat = k->fspath && lstat(k->fspath, &st) == 0;
		if (k->leaf) {
			if (!have_stat) {
				cf_warn("error: %s: %s", k->fspath, strerror(errno));
				c->unreadable++;
				cf_node_release(n);
				t.n--;
				continue;
			}
			c->root_dev = st.st_dev;
			bool drop = false;
			if ((rc = save_entry(c, k->fspath, &st, on, n, &pd[npd], &b, &drop)))
				goto fail;
			if (drop) {
				refs_free(&pd[npd].refs);
				cf_node_release(n);
				t.n--;
				continue;
			}
			npd++;
			continue;
		}
		/* an intermediate directory: its own metadata if it exists on disk
		 * (it does for file paths), else a plain 0755 directory (streams) */
		if (have_stat && S_ISDIR(st.st_mode)) {
			if ((rc = fill_node(k->fspath, k->name, &st, NULL, n)))
				goto fail;
		} else {
			if (!(n->name = strdup(k->name))) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto fail;
			}
			n->type = CF_NODE_DIR;
			n->mode = 0755;
			n->mtime_ns = n->ctime_ns = n->atime_ns = cf_now_ns();
		}
		struct cf_tree ot = CF_TREE_INIT;
		bool have_old = on && on->type == CF_NODE_DIR && on->has_subtree &&
				cf_repo_load_tree(c->repo, on->subtree, &ot) == CF_OK;
		rc = save_vdir(c, k, have_old ? &ot : NULL, n->subtree);
		cf_tree_release(&ot);
		if (rc)
			goto fail;
		n->has_subtree = true;
		npd++;
	}
	/* the directories still waiting first: some are this one's */
	if ((rc = dq_run(c, true)))
		goto fail;
	rc = finish_tree(c, &t, pd, npd, &b, NULL, NULL, id);
	free(pd);
	cf_tree_release(&t);
	return rc;
fail:
	dq_abort(c);
	batch_drain(c, &b);
	for (size_t i = 0; i < npd + 1 && i < (v->nkids ? v->nkids : 1); i++) {
		refs_free(&pd[i].refs);
		free(pd[i].sub);
	}
	free(pd);
	cf_tree_release(&t);
	return rc;
}

/* ---------------- the run ---------------- */

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
	if (ok) {
		cf_repo_blob_id(r, k.data, k.len, h);
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

int cf_backup_run(struct cf_repo *r, const struct cf_backup_opts *o, struct cf_snapshot *out)
{
	struct ctx c;
	struct vnode root;
	struct cf_snapshot snap, parent;
	struct cf_snapshot_summary sum;
	struct cf_tree old = CF_TREE_INIT;
	char **abs = NULL;
	char host[256];
	bool have_parent = false, pool_up = false;
	int rc;

	memset(&c, 0, sizeof(c));
	memset(&root, 0, sizeof(root));
	memset(&snap, 0, sizeof(snap));
	memset(&parent, 0, sizeof(parent));
	memset(&sum, 0, sizeof(sum));
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
		if ((rc = vnode_insert(&root, abs[i], NULL)))
			goto out;
	}
	for (size_t i = 0; i < o->nstreams; i++) {
		if (!(abs[o->npaths + i] = strdup(o->streams[i].path))) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		rc = vnode_insert(&root, o->streams[i].path, &o->streams[i]);
		if (rc == CF_EEXIST) {
			const struct cf_stream_source **ov =
				realloc(c.overlays, (c.noverlays + 1) * sizeof(*ov));
			if (!ov) {
				rc = cf_err(CF_ENOMEM, "out of memory");
				goto out;
			}
			c.overlays = ov;
			c.overlays[c.noverlays++] = &o->streams[i];
			rc = CF_OK;
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
	c.dc_write = use_dc && cf_dc_begin(&c.dc_out) == CF_OK;

	int threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1)
		threads = 1;
	if ((rc = pool_start(&c, threads)))
		goto out;
	pool_up = true;

	pthread_t scan_thread;
	struct scan_arg sa = { &c, abs, o->npaths };
	bool scanning = o->progress && pthread_create(&scan_thread, NULL, scanner, &sa) == 0;
	if (have_parent)
		ahead_start(&c);
	rc = save_vdir(&c, &root, have_parent ? &old : NULL, snap.tree);
	if (have_parent)
		ahead_stop(&c);
	if (scanning)
		pthread_join(scan_thread, NULL);
	if (rc)
		goto out;
	pool_stop(&c);
	pool_up = false;
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
		const char *u = user_name(getuid(), ub, sizeof(ub));
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
	progress(&c, true);
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
	if (pool_up)
		pool_stop(&c);
	if (abs) {
		for (size_t i = 0; i < o->npaths + o->nstreams; i++)
			free(abs[i]);
		free(abs);
	}
	vnode_free(&root);
	free(c.overlays);
	bufpool_drain();
	cf_dc_release(&c.dc);
	cf_buf_release(&c.dc_out);
	cf_tree_release(&old);
	cf_snapshot_release(&parent);
	cf_snapshot_release(&snap);
	return rc;
}
