/*
 * docker_stream.c - the Engine API's multiplexed exec stream and its lines.
 */
#include "agent/docker_stream.h"
#include "common/error.h"

#include <string.h>

int cf_docker_demux_feed(struct cf_docker_demux *d, const void *data, size_t n, cf_docker_payload_fn fn, void *ctx)
{
	const unsigned char *p = data;
	int r;

	while (n) {
		if (d->left == 0) {
			size_t take = sizeof(d->hdr) - d->hlen;
			if (take > n)
				take = n;
			memcpy(d->hdr + d->hlen, p, take);
			d->hlen += take;
			p += take;
			n -= take;
			if (d->hlen < sizeof(d->hdr))
				break;
			d->hlen = 0;
			if (d->hdr[0] > CF_DOCKER_SYSERR)
				return cf_err(CF_ECORRUPT, "the exec output is not a multiplexed stream: frame %llu "
						      "names stream %u (0-3 are known)",
					      (unsigned long long)d->frames + 1, d->hdr[0]);
			d->stream = d->hdr[0];
			d->left = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 | (uint32_t)d->hdr[6] << 8 |
				  (uint32_t)d->hdr[7];
			d->frames++;
			continue; /* an empty frame is just a header */
		}
		size_t take = d->left < n ? d->left : n;
		if ((r = fn(ctx, d->stream, (const char *)p, take)))
			return r;
		d->left -= (uint32_t)take;
		p += take;
		n -= take;
	}
	return CF_OK;
}

int cf_docker_demux_end(const struct cf_docker_demux *d)
{
	if (d->hlen || d->left)
		return cf_err(CF_ECORRUPT, "the exec output ends inside frame %llu (%s)",
			      (unsigned long long)d->frames + (d->hlen ? 1 : 0),
			      d->hlen ? "in its header" : "payload missing");
	return CF_OK;
}

static int emit(struct cf_buf *b, int stream, cf_docker_line_fn fn, void *ctx)
{
	size_t len = b->len;
	if (len && b->data[len - 1] == '\r')
		len--;
	int r = fn(ctx, stream, len ? (const char *)b->data : "", len);
	cf_buf_reset(b);
	return r;
}

int cf_docker_lines_add(struct cf_docker_lines *l, int stream, const char *p, size_t n, cf_docker_line_fn fn,
			void *ctx)
{
	if (stream < 0 || stream > CF_DOCKER_SYSERR)
		return cf_err(CF_EINVAL, "no stream %d", stream);
	struct cf_buf *b = &l->part[stream];
	int r;

	while (n) {
		if (b->len == CF_DOCKER_LINE_MAX) {
			/* full: a line of exactly the maximum, or a piece of a longer
			 * one; decided by the next byte, so that how the bytes came
			 * in pieces does not change the lines */
			if (*p == '\n') {
				p++;
				n--;
			}
			if ((r = emit(b, stream, fn, ctx)))
				return r;
			continue;
		}
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) : n, room = CF_DOCKER_LINE_MAX - b->len;
		size_t take = seg < room ? seg : room;
		if ((r = cf_buf_add(b, p, take)))
			return r;
		p += take;
		n -= take;
		if (nl && take == seg) {
			p++;
			n--;
			if ((r = emit(b, stream, fn, ctx)))
				return r;
		}
	}
	return CF_OK;
}

int cf_docker_lines_end(struct cf_docker_lines *l, cf_docker_line_fn fn, void *ctx)
{
	int r;
	for (int s = 0; s <= CF_DOCKER_SYSERR; s++)
		if (l->part[s].len && (r = emit(&l->part[s], s, fn, ctx)))
			return r;
	return CF_OK;
}

void cf_docker_lines_release(struct cf_docker_lines *l)
{
	for (int s = 0; s <= CF_DOCKER_SYSERR; s++)
		cf_buf_release(&l->part[s]);
}
