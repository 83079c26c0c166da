/* libFuzzer target for the Docker API answers restore --all reads
 * and the agent (agent/docker.c, cf_docker_select with offen's stop label as
 * alias, cf_docker_select_exec for the exec labels): the input is the
 * container list, a NUL, and this container's inspection; any input selects
 * a consistent set or fails cleanly, without leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/docker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t n = nul ? (size_t)(nul - data) : size;
	static const char *const paths[] = { "/backup/app-data", "/", "/srv/x/" };
	struct cf_docker_match m = { "coffer.stop-during-backup=true", paths, 3,
				     "docker-volume-backup.stop-during-backup=true" };
	struct cf_docker_set set = CF_DOCKER_SET_INIT;

	if (cf_docker_select("fuzz", data, n, nul ? nul + 1 : NULL, nul ? size - n - 1 : 0, &m, &set) == 0)
		for (size_t i = 0; i < set.n; i++)
			if (!set.ids[i] || !set.names[i])
				abort();
	cf_docker_set_release(&set);

	struct cf_docker_set ex = CF_DOCKER_SET_INIT;
	if (cf_docker_select_exec("fuzz", data, n, CF_DOCKER_EXEC_PRE, CF_DOCKER_EXEC_PRE_OFFEN, &ex) == 0)
		for (size_t i = 0; i < ex.n; i++)
			if (!ex.ids[i] || !ex.names[i] || !ex.cmds[i] || !ex.cmds[i][0])
				abort();
	cf_docker_set_release(&ex);
	return 0;
}
