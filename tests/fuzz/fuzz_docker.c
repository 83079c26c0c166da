/* libFuzzer target for the Docker API answers restore --all reads
 * (agent/docker.c, cf_docker_select): the input is the container list, a NUL,
 * and this container's inspection; any input selects a consistent set or
 * fails cleanly, without leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/docker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t n = nul ? (size_t)(nul - data) : size;
	static const char *const paths[] = { "/backup/app-data", "/", "/srv/x/" };
	struct cf_docker_match m = { "coffer.stop-during-backup=true", paths, 3 };
	struct cf_docker_set set = CF_DOCKER_SET_INIT;

	if (cf_docker_select("fuzz", data, n, nul ? nul + 1 : NULL, nul ? size - n - 1 : 0, &m, &set) == 0)
		for (size_t i = 0; i < set.n; i++)
			if (!set.ids[i] || !set.names[i])
				abort();
	cf_docker_set_release(&set);
	return 0;
}
