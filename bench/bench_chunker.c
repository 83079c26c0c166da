/*
 * bench_chunker - single-core throughput of cf_chunker_scan on pseudo-random
 * data (no I/O, no hashing of chunks: just finding the cut points).
 *
 *	bench_chunker [MiB [rounds [min avg max]]]
 *
 * Defaults: 256 MiB, 5 rounds, the default chunker parameters.  Prints the
 * best round's MB/s (10^6 bytes per second) and the chunk size statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunker/chunker.h"
#include "common/error.h"
#include "common/util.h"

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	struct cf_chunker_params params = {
		CF_CHUNKER_DEFAULT_MIN, CF_CHUNKER_DEFAULT_AVG, CF_CHUNKER_DEFAULT_MAX
	};
	uint64_t gear[256], seed = 42;
	size_t len = mib << 20;
	uint8_t *data;
	double best = 0;
	int r;

	if (argc > 5) {
		params.min = (uint32_t)strtoul(argv[3], NULL, 0);
		params.avg = (uint32_t)strtoul(argv[4], NULL, 0);
		params.max = (uint32_t)strtoul(argv[5], NULL, 0);
	}
	if ((r = cf_chunker_params_check(&params)) != CF_OK) {
		fprintf(stderr, "bench_chunker: %s\n", cf_errmsg(r));
		return 2;
	}
	if (mib == 0 || rounds < 1) {
		fprintf(stderr, "usage: bench_chunker [MiB [rounds [min avg max]]]\n");
		return 2;
	}
	data = malloc(len);
	if (!data) {
		fprintf(stderr, "bench_chunker: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i + 8 <= len; i += 8)
		cf_put_le64(data + i, splitmix64(&seed));
	cf_chunker_gear_from_seed(gear, 1);

	for (int round = 0; round < rounds; round++) {
		struct cf_chunker c;
		size_t off = 0, last = 0, count = 0, smin = SIZE_MAX, smax = 0;
		double t0, dt;

		cf_chunker_init(&c, &params, gear);
		t0 = cf_now_mono();
		while (off < len) {
			size_t k = cf_chunker_scan(&c, data + off, len - off);
			size_t sz;

			off = k == CF_CHUNKER_NONE ? len : off + k;
			sz = off - last;
			if (sz == 0)
				break;
			count++;
			if (k != CF_CHUNKER_NONE && sz < smin)
				smin = sz; /* the last chunk may be short */
			if (sz > smax)
				smax = sz;
			last = off;
		}
		dt = cf_now_mono() - t0;
		if (len / dt / 1e6 > best)
			best = len / dt / 1e6;
		printf("round %d: %.0f MB/s, %zu chunks, mean %.0f, min %zu, max %zu\n",
		       round, len / dt / 1e6, count, (double)len / count, smin, smax);
	}
	printf("best: %.0f MB/s (%zu MiB, min %u avg %u max %u)\n",
	       best, mib, params.min, params.avg, params.max);
	free(data);
	return 0;
}
