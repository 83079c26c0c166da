/*
 * chunker.c - FastCDC with normalized chunking (level 2).
 *
 * The gear hash h = (h << 1) + gear[byte] forgets a byte after 64 steps: its
 * contribution is shifted out of the word.  So h at any point is a pure
 * function of the last 64 bytes, however long ago hashing started, and we may
 * start hashing only 64 bytes before the first candidate cut (at min) instead
 * of at the chunk start.  The first min - 64 bytes of a chunk are skipped
 * without being read at all.  A cut decision thus depends only on the 64-byte
 * window before the candidate and the candidate's offset in its chunk, which
 * is what makes cut points independent of how the stream is split into
 * buffers (the state that crosses buffers is just hash and pos).
 *
 * The test is on the top bits of h: bit k of h depends on the last k + 1
 * bytes, so the high bits are the ones that see the whole window.  Lengths in
 * [min, avg) use mask_s (log2(avg) + 2 bits, 1/4 the probability per byte),
 * lengths in [avg, max) use mask_l (log2(avg) - 2 bits, 4x), and max is a
 * forced cut: this pulls chunk sizes towards avg (the paper's "normalization
 * level 2").
 *
 * Offsets below are the index j of a byte within its chunk; the cut test
 * after byte j is for a chunk of length j + 1.
 */
#include "chunker/chunker.h"

#include "common/error.h"

/* Bytes that fully determine the gear hash. */
#define GEAR_WINDOW 64
#define MAX_MAX (64u * 1024 * 1024)

int cf_chunker_params_check(const struct cf_chunker_params *p)
{
	if (!p)
		return cf_err(CF_EINVAL, "chunker: no parameters");
	if (p->min < GEAR_WINDOW)
		return cf_err(CF_EINVAL, "chunker: min %u below %u bytes", p->min, GEAR_WINDOW);
	if (p->avg == 0 || (p->avg & (p->avg - 1)) != 0)
		return cf_err(CF_EINVAL, "chunker: avg %u is not a power of two", p->avg);
	if (p->min >= p->avg)
		return cf_err(CF_EINVAL, "chunker: min %u not below avg %u", p->min, p->avg);
	if (p->avg >= p->max)
		return cf_err(CF_EINVAL, "chunker: avg %u not below max %u", p->avg, p->max);
	if (p->max > MAX_MAX)
		return cf_err(CF_EINVAL, "chunker: max %u above %u bytes", p->max, MAX_MAX);
	return CF_OK;
}

/* A mask of the top bits bits of a 64-bit word; bits is in [5, 28] for
 * checked params. */
static uint64_t top_mask(unsigned bits)
{
	return ~(uint64_t)0 << (64 - bits);
}

void cf_chunker_init(struct cf_chunker *c, const struct cf_chunker_params *p, const uint64_t *gear)
{
	unsigned avg_bits = (unsigned)__builtin_ctz(p->avg);

	c->gear = gear;
	c->min = p->min;
	c->avg = p->avg;
	c->max = p->max;
	c->mask_s = top_mask(avg_bits + 2);
	c->mask_l = top_mask(avg_bits - 2);
	cf_chunker_reset(c);
}

void cf_chunker_reset(struct cf_chunker *c)
{
	c->hash = 0;
	c->pos = 0;
}

/*
 * The hot loop: hash p[i..end) and return the index of the first byte after
 * which (h & mask) == 0, or end if there is none (then *hp is the hash so
 * far; after a cut the hash is not needed).  Two bytes per iteration, both
 * hashes computed from h (h1 = 4h + 2g0 + g1), which halves the loop
 * overhead and shortens the loop-carried chain: about 1.4x over one byte per
 * iteration on the benchmark.
 */
static inline __attribute__((always_inline)) size_t
gear_find(const uint64_t *gear, const uint8_t *p, size_t i, size_t end, uint64_t *hp, uint64_t mask)
{
	uint64_t h = *hp;

	for (; i + 2 <= end; i += 2) {
		uint64_t g0 = gear[p[i]], g1 = gear[p[i + 1]];
		uint64_t h0 = (h << 1) + g0;

		h = (h << 2) + ((g0 << 1) + g1);
		if (__builtin_expect(!(h0 & mask), 0))
			return i;
		if (__builtin_expect(!(h & mask), 0))
			return i + 1;
	}
	if (i < end) {
		h = (h << 1) + gear[p[i]];
		if (!(h & mask))
			return i;
		i++;
	}
	*hp = h;
	return end;
}

static size_t min_sz(size_t a, uint64_t b)
{
	return b < a ? (size_t)b : a;
}

size_t cf_chunker_scan(struct cf_chunker *c, const uint8_t *p, size_t n)
{
	const uint64_t hash_from = c->min - GEAR_WINDOW; /* first byte hashed */
	const uint64_t test_from = c->min - 1;           /* first byte tested */
	const uint64_t loose_from = c->avg - 1;          /* first byte tested with mask_l */
	const uint64_t last = c->max - 1;                /* always cut after it */
	const uint64_t *gear = c->gear;
	uint64_t pos = c->pos; /* chunk offset of p[0] */
	uint64_t h = c->hash;
	size_t i = 0, k;

	while (i < n) {
		uint64_t j = pos + i;
		size_t end;

		if (j < hash_from) {
			i += min_sz(n - i, hash_from - j);
			continue;
		}
		if (j < test_from) {
			end = i + min_sz(n - i, test_from - j);
			for (; i < end; i++)
				h = (h << 1) + gear[p[i]];
			continue;
		}
		if (j >= last) {
			k = i;
			goto cut;
		}
		if (j < loose_from) {
			end = i + min_sz(n - i, loose_from - j);
			k = gear_find(gear, p, i, end, &h, c->mask_s);
		} else {
			end = i + min_sz(n - i, last - j);
			k = gear_find(gear, p, i, end, &h, c->mask_l);
		}
		if (k < end)
			goto cut;
		i = end;
	}
	c->pos = pos + n;
	c->hash = h;
	return CF_CHUNKER_NONE;

cut:
	cf_chunker_reset(c);
	return k + 1;
}

void cf_chunker_gear_from_seed(uint64_t gear[256], uint64_t seed)
{
	uint64_t s = seed;

	for (int i = 0; i < 256; i++) {
		uint64_t z = (s += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		gear[i] = z ^ (z >> 31);
	}
}
