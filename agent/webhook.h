/*
 * webhook.h - tell someone how a job went: a signed JSON POST.
 *
 * After each job the agent POSTs a JSON report to COFFER_WEBHOOK_URL.  With a
 * secret, the request is signed as the Standard Webhooks specification
 * (standardwebhooks.com) says, so any of its receiver libraries verifies it:
 *
 *     webhook-id:        msg_<32 hex>      same for every retry (idempotency key)
 *     webhook-timestamp: <unix seconds>    of this attempt
 *     webhook-signature: v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>
 *
 * where key is the base64 decoding of the secret after its "whsec_" prefix.
 * A failed delivery (no connection, a non-2xx answer) is retried with
 * exponential backoff; a set cf_interrupted stops the retries.  Delivery is
 * best effort: a webhook that cannot be delivered is logged, it does not
 * change the job's result.
 */
#ifndef CF_WEBHOOK_H
#define CF_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* The webhook-signature value for one message, appended to out:
 * "v1,<base64>".  secret is "whsec_<base64>" (the prefix may be left out).
 * CF_OK; CF_EINVAL when the secret is not base64 (the secret is not quoted);
 * CF_ENOMEM; CF_ECRYPTO. */
int cf_webhook_sign(const char *secret, const char *msg_id, int64_t timestamp,
		    const void *body, size_t n, struct cf_buf *out);

struct cf_webhook_opts {
	const char *url;
	const char *secret;        /* NULL: unsigned (no webhook-signature header) */
	unsigned retries;          /* extra attempts after the first */
	double backoff;            /* seconds before the first retry, doubled each time (0 = 1 s) */
	double timeout;            /* seconds per attempt (0 = 30) */
	const char *cacert;        /* extra CA bundle (PEM) for https, NULL = the system's only */
};

/* POST the JSON body to o->url, retrying as above.  *status (may be NULL)
 * gets the last HTTP status (0 when no answer came).  CF_OK when a 2xx answer
 * came; CF_EAGAIN with a message naming the URL and the last failure
 * otherwise (CF_EIO, not retried, for a certificate that does not verify);
 * CF_EINTR when interrupted; CF_EINVAL for a bad secret;
 * CF_ENOMEM. */
int cf_webhook_post(const struct cf_webhook_opts *o, const char *body, size_t n, long *status);

#endif
