/*
 * status.h - an error code and its message, carried between threads.
 *
 * Messages are per thread (error.h): a worker that fails sets its own.  To
 * hand that failure to the thread that reports it, the worker captures it
 * into a struct cf_status and the caller raises it again:
 *
 *     struct cf_status st = CF_STATUS_INIT;
 *     ... in the worker:  cf_status_keep(&st, rc);        // first one wins
 *     ... in the caller:  return cf_status_raise(&st);    // CF_OK or st's code
 *
 * cf_status_keep() is not synchronised: a struct shared by threads is kept
 * under the caller's lock (the work queue, pool.h, does this itself).
 */
#ifndef CF_STATUS_H
#define CF_STATUS_H

#define CF_STATUS_MSG_MAX 1024

struct cf_status {
	int code;                       /* CF_OK while nothing failed */
	char msg[CF_STATUS_MSG_MAX];    /* the failing thread's message */
};

#define CF_STATUS_INIT { 0, "" }

/* If st holds no failure and code is not CF_OK, keep code and the calling
 * thread's message (cf_errmsg(code)).  Returns code. */
int cf_status_keep(struct cf_status *st, int code);

/* Set the calling thread's message to st's and return st's code (CF_OK:
 * nothing is set). */
int cf_status_raise(const struct cf_status *st);

#endif
