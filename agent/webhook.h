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
 * Several secrets (separated by spaces: a key rotation) give one signature
 * each, space-separated in the one header, as the specification allows; a
 * receiver that knows either key verifies the message.
 *
 * A failed delivery (no connection, a non-2xx answer) is retried on the
 * schedule of agent/http.h (exponential backoff, Retry-After honoured, bounded
 * in count and time); a set cf_interrupted stops the retries.  Delivery is
 * best effort: a webhook that cannot be delivered is logged, it does not
 * change the job's result.  The transport is agent/http.h's.
 */
#ifndef CF_WEBHOOK_H
#define CF_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* The secrets' shortest and longest key (decoded bytes), as the
 * specification recommends. */
#define CF_WEBHOOK_KEY_MIN 24
#define CF_WEBHOOK_KEY_MAX 64

/* The webhook-signature value for one message, appended to out:
 * "v1,<base64>", one per secret, separated by a space.  secret is
 * "whsec_<base64>" (the prefix may be left out), or several of them separated
 * by spaces.  CF_OK; CF_EINVAL when a secret is not base64 (the secret is not
 * quoted); CF_ENOMEM; CF_ECRYPTO. */
int cf_webhook_sign(const char *secret, const char *msg_id, int64_t timestamp,
		    const void *body, size_t n, struct cf_buf *out);

/* Check one or several space-separated secrets as cf_webhook_sign takes
 * them: each base64 of CF_WEBHOOK_KEY_MIN to _MAX bytes.  CF_OK or CF_EINVAL
 * with a message naming key (the secret is not quoted), or CF_ENOMEM. */
int cf_webhook_check_secret(const char *key, const char *secret);

struct cf_webhook_opts {
	const char *url;
	const char *secret;        /* NULL: unsigned (no webhook-signature header) */
	unsigned retries;          /* most retries after the first attempt */
	double backoff;            /* seconds before the first retry, doubled each time (0 = 1 s) */
	double timeout;            /* seconds per attempt (0 = 30) */
	const char *cacert;        /* extra CA bundle (PEM) for https, NULL = the system's only */
	double retry_for;          /* no retry starts later than this after the first attempt (0 = unbounded) */
	double max_delay;          /* longest wait between attempts (0 = no cap) */
};

/* POST the JSON body to o->url, retrying as above.  *status (may be NULL)
 * gets the last HTTP status (0 when no answer came), *attempts (may be NULL)
 * how many were made.  CF_OK when a 2xx answer came; CF_EAGAIN with a message
 * naming the URL and the last failure otherwise (CF_EIO, not retried, for a
 * certificate that does not verify); CF_EINTR when interrupted; CF_EINVAL for
 * a bad secret; CF_ENOMEM. */
int cf_webhook_post(const struct cf_webhook_opts *o, const char *body, size_t n, long *status,
		    unsigned *attempts);

#endif
