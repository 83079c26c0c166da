/*
 * cstream.c - chunk streams: a file's bytes in, chunks to the queue out.
 *
 * The walker writes a file's bytes into the stream's buffer (eng_cs_space,
 * then eng_cs_commit with how many it wrote); the chunker finds the cuts and
 * every whole chunk goes to the queue (chunkq.c) with a slot of the file's
 * struct refs for its id.  eng_cs_finish hands off the tail; eng_cs_abort
 * drops it (the chunks already queued are the batch's: garbage if the file
 * is left out).
 *
 * Invariants: the refs' blocks never move (workers write ids into them while
 * the walker goes on); a stream's buffer holds at most one partial chunk
 * plus one read; a hole of a sparse file yields exactly the chunks reading
 * its zeros would (see "holes" below).
 */
#include "engine/engine_int.h"

#include "common/array.h"
#include "crypto/crypto.h"

#include <stdlib.h>
#include <string.h>

/* ---------------- references ---------------- */

uint8_t *eng_ref_slot(struct refs *r)
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

void eng_refs_free(struct refs *r)
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
int eng_refs_to_node(struct refs *r, struct cf_node *n)
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

void eng_cs_init(struct cstream *s, struct ctx *c, struct batch *b, struct refs *refs)
{
	memset(s, 0, sizeof(*s));
	s->c = c;
	s->batch = b;
	s->refs = refs;
	cf_chunker_init(&s->ch, &c->cp, cf_repo_gear(c->repo));
}

/* Room for want more bytes at buf + len. */
uint8_t *eng_cs_space(struct cstream *s, size_t want)
{
	if (!s->buf) {
		s->buf = eng_buf_get(want, &s->cap);
		if (!s->buf)
			return NULL;
	}
	if (CF_GROW(s->buf, s->len + want, s->cap))
		return NULL;
	return s->buf + s->len;
}

static int cs_emit(struct cstream *s, uint8_t *data, size_t len, size_t cap)
{
	uint8_t *slot = eng_ref_slot(s->refs);
	if (!slot) {
		free(data);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	return eng_cq_submit(s->c, s->batch, data, len, cap, slot);
}

/* n bytes were written at buf + len: find cuts, hand off whole chunks. */
int eng_cs_commit(struct cstream *s, size_t n)
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
		uint8_t *nb = eng_buf_get(rem + READ_SIZE, &ncap);
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

int eng_cs_finish(struct cstream *s)
{
	int rc = CF_OK;
	if (s->len) {
		rc = cs_emit(s, s->buf, s->len, s->cap);
		s->buf = NULL;
	}
	eng_buf_put(s->buf, s->cap);
	s->buf = NULL;
	s->len = s->cap = 0;
	return rc;
}

void eng_cs_abort(struct cstream *s)
{
	eng_buf_put(s->buf, s->cap);
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
		int rc = cf_repo_blob_id(s->c->repo, zeros, k, z->id);
		if (rc) {
			free(zeros);
			return rc;
		}
	}
	free(zeros);
	return CF_OK;
}

/* Feed n zeros through the chunker as if read. */
static int cs_feed_zeros(struct cstream *s, size_t n)
{
	uint8_t *dst = eng_cs_space(s, n);
	if (!dst)
		return cf_err(CF_ENOMEM, "out of memory");
	memset(dst, 0, n);
	return eng_cs_commit(s, n);
}

/* A hole of len bytes at the stream's current end. */
int eng_cs_hole(struct cstream *s, struct zero_chunk *z, uint64_t len)
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
				uint8_t *slot = eng_ref_slot(s->refs);
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

int eng_cs_sink(void *ctx, const void *p, size_t n)
{
	struct cstream *s = ctx;
	while (n) {
		size_t k = n < READ_SIZE ? n : READ_SIZE;
		uint8_t *dst = eng_cs_space(s, k);
		if (!dst)
			return cf_err(CF_ENOMEM, "out of memory");
		memcpy(dst, p, k);
		int rc = eng_cs_commit(s, k);
		if (rc)
			return rc;
		p = (const uint8_t *)p + k;
		n -= k;
	}
	return cf_interrupted ? cf_err(CF_EINTR, "interrupted") : CF_OK;
}
