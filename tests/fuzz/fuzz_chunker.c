/*
 * fuzz_chunker - libFuzzer target for the chunker's invariants on arbitrary
 * input: the cuts found when the input is fed whole equal those found when it
 * is fed in pieces (sizes derived from the input), and every chunk but the
 * last is within [min, max].  The first three bytes pick small parameters so
 * that short inputs reach every phase (skip, warm-up, strict, loose, max).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunker/chunker.h"
#include "common/error.h"

#define MAX_CUTS 4096

static size_t cuts_of(const struct cf_chunker_params *pp, const uint64_t *gear,
		      const uint8_t *d, size_t len, uint32_t piece_seed, uint64_t *cuts)
{
	struct cf_chunker c;
	size_t off = 0, n_cuts = 0;
	uint32_t x = piece_seed;

	cf_chunker_init(&c, pp, gear);
	while (off < len) {
		size_t n = len - off;

		if (piece_seed) {
			x = x * 1103515245u + 12345u;
			n = 1 + (x >> 16) % (x & 0x8000 ? 7 : 3 * pp->max);
			if (n > len - off)
				n = len - off;
		}
		while (n > 0) {
			size_t k = cf_chunker_scan(&c, d + off, n);

			if (k == CF_CHUNKER_NONE) {
				off += n;
				break;
			}
			if (k < 1 || k > n || n_cuts == MAX_CUTS)
				abort();
			off += k;
			n -= k;
			cuts[n_cuts++] = off;
		}
	}
	return n_cuts;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t gear[256], whole[MAX_CUTS], split[MAX_CUTS];
	struct cf_chunker_params p;
	size_t nw, ns;
	uint64_t prev = 0;

	/* MAX_CUTS chunks of at least 64 bytes */
	if (size < 4 || size > 64 * MAX_CUTS)
		return 0;
	if (!gear[0])
		cf_chunker_gear_from_seed(gear, 1);
	p.min = 64 + data[0] * 4u;
	p.avg = 128;
	while (p.avg <= p.min)
		p.avg <<= 1;
	p.avg <<= data[1] % 3;
	p.max = p.avg + 1 + data[2] * 16u;
	if (cf_chunker_params_check(&p) != CF_OK)
		abort();
	data += 3;
	size -= 3;

	nw = cuts_of(&p, gear, data, size, 0, whole);
	ns = cuts_of(&p, gear, data, size, 1 + (uint32_t)size, split);
	if (nw != ns || memcmp(whole, split, nw * sizeof(*whole)) != 0)
		abort();
	for (size_t i = 0; i < nw; i++) {
		if (whole[i] - prev < p.min || whole[i] - prev > p.max)
			abort();
		prev = whole[i];
	}
	if (size - prev > p.max)
		abort();
	return 0;
}
