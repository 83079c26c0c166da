/* libFuzzer target for the exec output stream (agent/docker_stream.c): the
 * Engine API's multiplexed frames, as they come from the network in pieces,
 * and the lines logged from them.  The first input byte seeds the piece
 * sizes; the rest is the stream.  Fed whole and fed in pieces, the demuxer
 * must give the same payload per stream and the same verdict, and the line
 * splitter the same lines, each at most CF_DOCKER_LINE_MAX bytes without a
 * '\n'; no leaks, no reads past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/docker_stream.h"
#include "common/buf.h"

struct seen {
	struct cf_buf payload[4]; /* each stream's bytes */
	struct cf_buf lines;      /* every line: stream byte, length, bytes */
	struct cf_docker_lines split;
};

static int on_line(void *ctx, int stream, const char *line, size_t n)
{
	struct seen *s = ctx;
	uint32_t len = (uint32_t)n;
	if (n > CF_DOCKER_LINE_MAX || memchr(line, '\n', n))
		abort();
	unsigned char st = (unsigned char)stream;
	if (cf_buf_add(&s->lines, &st, 1) || cf_buf_add(&s->lines, &len, sizeof(len)) || cf_buf_add(&s->lines, line, n))
		return 1;
	return 0;
}

static int on_payload(void *ctx, int stream, const char *p, size_t n)
{
	struct seen *s = ctx;
	if (!n || stream < 0 || stream > CF_DOCKER_SYSERR)
		abort();
	if (cf_buf_add(&s->payload[stream], p, n))
		return 1;
	return cf_docker_lines_add(&s->split, stream, p, n, on_line, s);
}

static int run(const uint8_t *data, size_t size, unsigned seed, struct seen *s)
{
	struct cf_docker_demux d = CF_DOCKER_DEMUX_INIT;
	size_t off = 0;
	int r = 0;
	while (off < size && !r) {
		size_t piece = size - off;
		if (seed) { /* a small pseudo-random piece: 1..16 bytes */
			seed = seed * 1103515245u + 12345u;
			piece = 1 + (seed >> 16) % 16;
			if (piece > size - off)
				piece = size - off;
		}
		r = cf_docker_demux_feed(&d, data + off, piece, on_payload, s);
		off += piece;
	}
	if (!r)
		r = cf_docker_demux_end(&d);
	if (!r)
		r = cf_docker_lines_end(&s->split, on_line, s);
	return r != 0;
}

static void release(struct seen *s)
{
	for (int i = 0; i < 4; i++)
		cf_buf_release(&s->payload[i]);
	cf_buf_release(&s->lines);
	cf_docker_lines_release(&s->split);
}

static int same(const struct cf_buf *a, const struct cf_buf *b)
{
	return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	struct seen whole, pieces;
	memset(&whole, 0, sizeof(whole));
	memset(&pieces, 0, sizeof(pieces));
	int a = run(data + 1, size - 1, 0, &whole);
	int b = run(data + 1, size - 1, (unsigned)data[0] + 1, &pieces);
	if (a != b)
		abort();
	if (!a) {
		for (int i = 0; i < 4; i++)
			if (!same(&whole.payload[i], &pieces.payload[i]))
				abort();
		if (!same(&whole.lines, &pieces.lines))
			abort();
	}
	release(&whole);
	release(&pieces);
	return 0;
}
