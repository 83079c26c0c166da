#include "common/buf.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cf_buf_grow(struct cf_buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return CF_OK;
	if (extra > SIZE_MAX / 2 - b->len)
		return cf_err(CF_ENOMEM, "buffer too large");
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return cf_err(CF_ENOMEM, "out of memory (%zu bytes)", cap);
	b->data = p;
	b->cap = cap;
	return CF_OK;
}

int cf_buf_add(struct cf_buf *b, const void *p, size_t n)
{
	int r = cf_buf_grow(b, n);
	if (r)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return CF_OK;
}

int cf_buf_adds(struct cf_buf *b, const char *s)
{
	return cf_buf_add(b, s, strlen(s));
}

int cf_buf_addf(struct cf_buf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[256];
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return cf_err(CF_EINVAL, "bad format");
	if ((size_t)n < sizeof(tmp))
		return cf_buf_add(b, tmp, n);
	int r = cf_buf_grow(b, (size_t)n);
	if (r)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
	return CF_OK;
}

void cf_buf_reset(struct cf_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

void cf_buf_release(struct cf_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

uint8_t *cf_buf_detach(struct cf_buf *b, size_t *len)
{
	uint8_t *p = b->data;
	if (len)
		*len = b->len;
	if (!p)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
