/*
 * chunker.h - FastCDC content-defined chunking (Xia et al., USENIX ATC 2016),
 * with normalized chunking, push-style.
 *
 * The chunker owns no I/O and allocates nothing.  The caller feeds bytes and
 * is told where the current chunk ends:
 *
 *	struct cf_chunker c;
 *	cf_chunker_init(&c, &params, gear);
 *	for each buffer (p, n):
 *		while (n > 0) {
 *			size_t k = cf_chunker_scan(&c, p, n);
 *			if (k == CF_CHUNKER_NONE) { append p[0..n) to the chunk; break; }
 *			append p[0..k) to the chunk; emit it; p += k; n -= k;
 *		}
 *	at end of stream: whatever was appended since the last cut is the last chunk.
 *
 * Invariants: every chunk but the last is within [min, max]; the cut points of
 * a stream do not depend on how it is split into buffers; after a cut the
 * chunker starts the next chunk by itself.  The gear table (256 random 64-bit
 * words) is derived from a repository secret by the caller (crypto), so chunk
 * boundaries do not fingerprint known files.
 */
#ifndef CF_CHUNKER_H
#define CF_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#define CF_CHUNKER_NONE ((size_t)-1)

struct cf_chunker_params {
	uint32_t min; /* default 512 KiB */
	uint32_t avg; /* power of two, default 1 MiB */
	uint32_t max; /* default 8 MiB */
};

#define CF_CHUNKER_DEFAULT_MIN (512u * 1024)
#define CF_CHUNKER_DEFAULT_AVG (1024u * 1024)
#define CF_CHUNKER_DEFAULT_MAX (8u * 1024 * 1024)

struct cf_chunker {
	const uint64_t *gear; /* 256 entries, borrowed */
	uint64_t mask_s, mask_l; /* stricter before avg, looser after */
	uint32_t min, avg, max;
	uint64_t hash;
	uint64_t pos; /* bytes of the current chunk seen so far */
};

/* Check params: 64 <= min < avg < max <= 64 MiB, avg a power of two.
 * CF_OK or CF_EINVAL with a message. */
int cf_chunker_params_check(const struct cf_chunker_params *p);

/* Start a chunker.  gear must stay valid while the chunker is used. */
void cf_chunker_init(struct cf_chunker *c, const struct cf_chunker_params *p, const uint64_t *gear);

/* Forget the current chunk (start a new stream). */
void cf_chunker_reset(struct cf_chunker *c);

/* Scan n bytes of p continuing the current chunk.  Returns k in [1, n] if the
 * chunk ends after p[k-1] (the chunker is then reset for the next chunk), or
 * CF_CHUNKER_NONE if all n bytes belong to the current chunk. */
size_t cf_chunker_scan(struct cf_chunker *c, const uint8_t *p, size_t n);

/* A deterministic, NON-secret gear table from a 64-bit seed (splitmix64), for
 * tests and benchmarks.  Repositories use a table derived by crypto. */
void cf_chunker_gear_from_seed(uint64_t gear[256], uint64_t seed);

#endif
