/*
 * gen_files - a deterministic tree of many small files, for bench/scale.sh.
 *
 *	gen_files DIR COUNT [SEED]
 *
 * Writes COUNT files into DIR/dNNNN/fNNNN, 1000 files per directory.  File i
 * holds 64-2111 pseudo-random (incompressible) bytes drawn from SEED and i, so
 * every file is different and the same arguments give the same bytes.  mtimes
 * are set to a fixed date, so two trees made alike are alike in metadata too.
 * Exit 0 on success, 1 with a message naming the file on error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILES_PER_DIR 1000
#define MAX_FILE 2112

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "gen_files: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	const struct timespec times[2] = { { 1717200000, 0 }, { 1717200000, 0 } };
	uint8_t buf[MAX_FILE + 8];
	char path[4096];
	unsigned long long count, i;
	uint64_t seed;
	int dfd = -1;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: gen_files DIR COUNT [SEED]\n");
		return 2;
	}
	count = strtoull(argv[2], NULL, 10);
	seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 42;
	if (mkdir(argv[1], 0755) != 0 && errno != EEXIST)
		return fail("cannot create", argv[1]);
	for (i = 0; i < count; i++) {
		uint64_t s = seed * 0x100000001b3ull ^ i, w;
		size_t len = 64 + splitmix64(&s) % (MAX_FILE - 64), k;
		char name[32];
		int fd;

		if (i % FILES_PER_DIR == 0) {
			if (dfd >= 0) {
				futimens(dfd, times);
				close(dfd);
			}
			snprintf(path, sizeof(path), "%s/d%04llu", argv[1], i / FILES_PER_DIR);
			if (mkdir(path, 0755) != 0 && errno != EEXIST)
				return fail("cannot create", path);
			dfd = open(path, O_RDONLY | O_DIRECTORY);
			if (dfd < 0)
				return fail("cannot open", path);
		}
		for (k = 0; k < len; k += 8) {
			w = splitmix64(&s);
			memcpy(buf + k, &w, 8);
		}
		snprintf(name, sizeof(name), "f%04llu", i % FILES_PER_DIR);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, buf, len) != (ssize_t)len || futimens(fd, times) != 0 ||
		    close(fd) != 0) {
			snprintf(path, sizeof(path), "%s/d%04llu/%s", argv[1], i / FILES_PER_DIR, name);
			return fail("cannot write", path);
		}
	}
	if (dfd >= 0) {
		futimens(dfd, times);
		close(dfd);
	}
	return 0;
}
