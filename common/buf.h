/*
 * buf.h - the one growable byte buffer (git's strbuf, curl's dynbuf).
 *
 * A struct cf_buf is owned by the caller: start it with CF_BUF_INIT, grow it
 * with the cf_buf_add* functions, hand its memory out with cf_buf_detach()
 * (the receiver frees it with free()), or drop it with cf_buf_release().
 * data is always NUL-terminated past len when cap > 0, so text can be used
 * as a C string.
 */
#ifndef CF_BUF_H
#define CF_BUF_H

#include <stddef.h>
#include <stdint.h>

struct cf_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

#define CF_BUF_INIT { NULL, 0, 0 }

/* Make room for extra more bytes.  CF_OK or CF_ENOMEM. */
int cf_buf_grow(struct cf_buf *b, size_t extra);
int cf_buf_add(struct cf_buf *b, const void *p, size_t n);
int cf_buf_adds(struct cf_buf *b, const char *s);
int cf_buf_addf(struct cf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set len to 0, keep the memory. */
void cf_buf_reset(struct cf_buf *b);
/* Free the memory and reinitialise. */
void cf_buf_release(struct cf_buf *b);
/* Return the data (caller frees with free()) and reinitialise b.  Never NULL
 * unless allocation fails: an empty buffer yields a 1-byte "" allocation. */
uint8_t *cf_buf_detach(struct cf_buf *b, size_t *len);

#endif
