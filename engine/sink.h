/*
 * sink.h - the byte-stream interface between a source and the backup engine.
 *
 * A source that produces a file's content (a database dump, a command's
 * stdout) pushes it through a cf_sink_fn the engine provides, typically one
 * that feeds the chunker; the source never buffers the whole stream and
 * never writes a temp file.  The engine decides where the bytes go, the
 * source decides nothing but their order.
 */
#ifndef CF_SINK_H
#define CF_SINK_H

#include <stddef.h>

/* Consume n bytes at p (n may be 0).  Return CF_OK, or a cf_error code with
 * the message set (cf_err): the source stops at once and returns that code. */
typedef int (*cf_sink_fn)(void *ctx, const void *p, size_t n);

#endif
