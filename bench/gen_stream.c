/*
 * gen_stream - write N bytes of deterministic incompressible data to stdout,
 * cheaply, for bench/scale.sh's large-stream test: a 1 MiB block of splitmix64
 * output, and every further MiB is that block XORed with a new splitmix64 word
 * (one XOR per 8 bytes, so generating costs far less than backing up).
 *
 *	gen_stream BYTES [SEED [PERIOD]]
 *
 * BYTES and PERIOD may end in K, M or G (powers of 1024).  Without PERIOD
 * nothing repeats, so neither deduplication nor compression shortens it; with
 * PERIOD (rounded up to whole MiB) the stream repeats itself every PERIOD
 * bytes, so a repository that deduplicates stores about PERIOD bytes of it.  Exit 0 when all bytes are
 * written, 1 on a write error (e.g. the reader went away).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_WORDS (1 << 17) /* 1 MiB */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int parse_size(const char *s, unsigned long long *out)
{
	char *end;

	*out = strtoull(s, &end, 10);
	if (*end == 'K')
		*out <<= 10;
	else if (*end == 'M')
		*out <<= 20;
	else if (*end == 'G')
		*out <<= 30;
	else if (*end != '\0' || end == s)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	static uint64_t base[BUF_WORDS], buf[BUF_WORDS];
	unsigned long long total, left, period = 0, block = 0, pblocks = 0;
	uint64_t seed, s0;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: gen_stream BYTES[K|M|G] [SEED [PERIOD[K|M|G]]]\n");
		return 2;
	}
	if (parse_size(argv[1], &total) != 0 || (argc > 3 && parse_size(argv[3], &period) != 0)) {
		fprintf(stderr, "gen_stream: bad size '%s' (bytes, or a number with K, M or G)\n",
			parse_size(argv[1], &total) != 0 ? argv[1] : argv[3]);
		return 2;
	}
	pblocks = (period + sizeof(buf) - 1) / sizeof(buf);
	seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 42;
	for (size_t i = 0; i < BUF_WORDS; i++)
		base[i] = splitmix64(&seed);
	s0 = seed;
	for (left = total; left > 0;) {
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf), off = 0, i;
		uint64_t x;

		if (pblocks && block % pblocks == 0)
			seed = s0; /* the period starts again */
		x = splitmix64(&seed);
		block++;

		for (i = 0; i < BUF_WORDS; i++)
			buf[i] = base[i] ^ x;
		while (off < n) {
			ssize_t w = write(STDOUT_FILENO, (char *)buf + off, n - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "gen_stream: write to stdout: %s\n", strerror(errno));
				return 1;
			}
			off += (size_t)w;
		}
		left -= n;
	}
	return 0;
}
