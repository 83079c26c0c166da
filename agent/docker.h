/*
 * docker.h - stop the labelled containers during a backup, start them after.
 *
 * A database or application that writes while its volume is being read
 * gives an inconsistent copy; the usual cure (offen/docker-volume-backup's
 * docker-volume-backup.stop-during-backup label) is to stop those containers
 * for the few seconds the backup takes.  This module speaks the Docker Engine
 * API (v1.41, which podman's compatible service also serves) over its unix
 * socket with libcurl:
 *
 *     cf_docker_stop_labelled(sock, label, timeout, &set)   list running
 *         containers carrying label, stop each (the engine waits up to
 *         timeout seconds, then kills); set records which ones were stopped
 *     ... back up ...
 *     cf_docker_start(sock, &set)    start exactly those again, even when
 *         the backup failed or was interrupted
 *     cf_docker_set_release(&set)
 *
 * Only containers that were running are stopped, so a container that was
 * down before the job stays down after it.  If stopping one fails, the ones
 * already stopped are in the set and the caller starts them again.
 */
#ifndef CF_DOCKER_H
#define CF_DOCKER_H

#include <stddef.h>

struct cf_docker_set {
	char **ids;      /* full container ids, in stop order */
	char **names;    /* their names (for the log) */
	size_t n;
	size_t idcap, namecap;
};

#define CF_DOCKER_SET_INIT { NULL, NULL, 0, 0, 0 }

/* Stop every running container whose labels include label ("key=value" or
 * "key").  Stopped ones are appended to *set (CF_DOCKER_SET_INIT or an
 * earlier set).  CF_OK; CF_EIO with a message naming the socket when the
 * engine cannot be reached or answers an error; CF_ECORRUPT for an answer
 * that does not parse; CF_ENOMEM. */
int cf_docker_stop_labelled(const char *socket_path, const char *label, unsigned timeout,
			    struct cf_docker_set *set);

/* Start every container of set, in reverse stop order.  Tries all of them;
 * returns CF_OK, or the first failure (each failure is also logged). */
int cf_docker_start(const char *socket_path, const struct cf_docker_set *set);

void cf_docker_set_release(struct cf_docker_set *set);

/* ---- restore: the containers that use what is being overwritten ----
 *
 * Before `restore --all` writes, it stops the running containers that carry
 * the stop label and those that mount a directory being restored:
 *
 *     cf_docker_find(sock, &match, &found)     who would be stopped (the plan)
 *     cf_docker_stop(sock, &found, timeout, &stopped)
 *     ... restore ...
 *     cf_docker_start(sock, &stopped)
 *
 * A container "mounts a directory being restored" when one of its mounts'
 * host Source is that directory, lies beneath it or above it.  When coffer
 * itself runs in a container (the restore sidecar, whose /backup/<volume>
 * is a volume), the directory is first translated through this container's
 * own mounts: the mount whose Destination holds it gives the host Source
 * (plus the rest of the path) and, for a named volume, its Name; another
 * container then matches by that Source or by mounting the volume of that
 * Name.  This container itself is never stopped. */
struct cf_docker_match {
	const char *label;                      /* "key" or "key=value"; NULL = none by label */
	const char *const *paths; size_t npaths; /* directories about to be overwritten */
};

/* Append to *found (CF_DOCKER_SET_INIT) every running container chosen by
 * m, each once.  CF_OK; CF_EIO naming the socket when the engine cannot be
 * reached or answers an error; CF_ECORRUPT; CF_ENOMEM. */
int cf_docker_find(const char *socket_path, const struct cf_docker_match *m, struct cf_docker_set *found);

/* The selection itself, on the engine's answers (exposed for the fuzzer):
 * list_json is GET /containers/json's body, self_json (NULL or not an
 * object: none) this container's GET /containers/ID/json; what names the
 * engine in messages.  Returns as cf_docker_find. */
int cf_docker_select(const char *what, const void *list_json, size_t n, const void *self_json, size_t self_n,
		     const struct cf_docker_match *m, struct cf_docker_set *found);

/* Stop the containers of found (the engine waits up to timeout seconds,
 * then kills); each one stopped is appended to *stopped, so that after a
 * failure the caller starts those again.  A container that stopped meanwhile
 * is not ours to start and is left out.  CF_OK or the first failure. */
int cf_docker_stop(const char *socket_path, const struct cf_docker_set *found, unsigned timeout,
		   struct cf_docker_set *stopped);

/* The Docker API socket path from a COFFER_DOCKER_HOST / DOCKER_HOST value
 * (key names it in the message): "unix:///PATH" gives a malloc'd "/PATH"
 * in *out; "", "none" and "off" give NULL (containers not handled).
 * CF_EINVAL for anything else (only unix sockets are spoken); CF_ENOMEM. */
int cf_docker_parse_host(const char *key, const char *value, char **out);

/* The compose name of container (an id or name, e.g. this container's
 * hostname): "PROJECT-SERVICE" from its com.docker.compose.project and
 * com.docker.compose.service labels, into out (n bytes).  CF_OK; CF_ENOENT
 * when the container has no such labels; CF_EIO when the engine cannot be
 * asked (no message is meant for the user then: callers fall back). */
int cf_docker_compose_name(const char *socket_path, const char *container, char *out, size_t n);

#endif
