/*
 * gen_stream - write N bytes of deterministic incompressible data to stdout,
 * cheaply, for bench/scale.sh's large-stream test: a 1 MiB block of splitmix64
 * output, and every further MiB is that block XORed with a new splitmix64 word
 * (one XOR per 8 bytes, so generating costs far less than backing up).
 *
 *	gen_stream BYTES [SEED]
 *
 * BYTES may end in K, M or G (powers of 1024).  Nothing repeats, so neither
 * deduplication nor compression shortens it.  Exit 0 when all bytes are
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

int main(int argc, char **argv)
{
	static uint64_t base[BUF_WORDS], buf[BUF_WORDS];
	unsigned long long total, left;
	uint64_t seed;
	char *end;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: gen_stream BYTES[K|M|G] [SEED]\n");
		return 2;
	}
	total = strtoull(argv[1], &end, 10);
	if (*end == 'K')
		total <<= 10;
	else if (*end == 'M')
		total <<= 20;
	else if (*end == 'G')
		total <<= 30;
	else if (*end != '\0') {
		fprintf(stderr, "gen_stream: bad size '%s' (bytes, or a number with K, M or G)\n", argv[1]);
		return 2;
	}
	seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 42;
	for (size_t i = 0; i < BUF_WORDS; i++)
		base[i] = splitmix64(&seed);
	for (left = total; left > 0;) {
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf), off = 0, i;
		uint64_t x = splitmix64(&seed);

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
