/*
 * docker_stream.h - read the output of a command run in a container.
 *
 * The Docker Engine API (and podman's compatible one) answers
 * POST /exec/ID/start, for an exec without a terminal, with one byte stream
 * carrying both stdout and stderr: a sequence of frames, each an 8-byte
 * header (byte 0 the stream: 0 stdin, 1 stdout, 2 stderr, 3 an error of the
 * engine itself; bytes 1-3 unused; bytes 4-7 the payload length, big-endian)
 * followed by that many bytes.  The bytes come from the network in pieces
 * that need not fall on frame boundaries, so both readers here are
 * push-style: the caller feeds whatever arrived, they keep the state.
 *
 *     struct cf_docker_demux d = CF_DOCKER_DEMUX_INIT;
 *     cf_docker_demux_feed(&d, piece, n, on_payload, ctx)   ... per piece
 *     cf_docker_demux_end(&d)          CF_ECORRUPT when cut mid-frame
 *
 * and, to log the output line by line per stream:
 *
 *     struct cf_docker_lines l = CF_DOCKER_LINES_INIT;
 *     cf_docker_lines_add(&l, stream, p, n, on_line, ctx)   ... per payload
 *     cf_docker_lines_end(&l, on_line, ctx)   the unterminated last lines
 *     cf_docker_lines_release(&l)
 *
 * Neither allocates per byte nor trusts a length: a frame of 4 GiB is read
 * as it comes, a line longer than CF_DOCKER_LINE_MAX is handed out in
 * pieces of that size.
 */
#ifndef CF_DOCKER_STREAM_H
#define CF_DOCKER_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define CF_DOCKER_STDIN 0
#define CF_DOCKER_STDOUT 1
#define CF_DOCKER_STDERR 2
#define CF_DOCKER_SYSERR 3

struct cf_docker_demux {
	unsigned char hdr[8];
	size_t hlen;   /* header bytes held (0-7): inside a header when > 0 */
	uint32_t left; /* payload bytes of the current frame still to come */
	int stream;    /* the current frame's stream */
	uint64_t frames;
};

#define CF_DOCKER_DEMUX_INIT { { 0 }, 0, 0, 0, 0 }

/* Called with each piece of a frame's payload (never empty); a frame may
 * come in several calls.  A non-zero return stops the feed and is returned. */
typedef int (*cf_docker_payload_fn)(void *ctx, int stream, const char *p, size_t n);

/* Feed n bytes of the stream.  CF_OK; CF_ECORRUPT (message naming the byte)
 * for a header whose stream is not 0-3 (the stream is not multiplexed);
 * fn's error. */
int cf_docker_demux_feed(struct cf_docker_demux *d, const void *p, size_t n, cf_docker_payload_fn fn, void *ctx);

/* At the end of the stream: CF_OK on a frame boundary, else CF_ECORRUPT. */
int cf_docker_demux_end(const struct cf_docker_demux *d);

#define CF_DOCKER_LINE_MAX 4096

struct cf_docker_lines {
	struct cf_buf part[4]; /* the unterminated line of each stream */
};

#define CF_DOCKER_LINES_INIT { { CF_BUF_INIT, CF_BUF_INIT, CF_BUF_INIT, CF_BUF_INIT } }

/* Called with each line, without its '\n' (a trailing '\r' is dropped too). */
typedef int (*cf_docker_line_fn)(void *ctx, int stream, const char *line, size_t n);

/* Split n bytes of stream (0-3) into lines.  CF_OK, CF_ENOMEM or fn's error. */
int cf_docker_lines_add(struct cf_docker_lines *l, int stream, const char *p, size_t n, cf_docker_line_fn fn,
			void *ctx);

/* Hand out each stream's unterminated last line, if any (streams in order). */
int cf_docker_lines_end(struct cf_docker_lines *l, cf_docker_line_fn fn, void *ctx);

void cf_docker_lines_release(struct cf_docker_lines *l);

#endif
