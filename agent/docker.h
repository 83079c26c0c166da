/*
 * docker.h - stop the labelled containers during a backup, start them after.
 *
 * A database or application that writes while its volume is being read
 * gives an inconsistent copy; the usual cure (offen/docker-volume-backup's
 * docker-volume-backup.stop-during-backup label) is to stop those containers
 * for the few seconds the backup takes.  This module speaks the Docker Engine
 * API (v1.41, which podman's compatible service also serves) with libcurl,
 * over its unix socket or plain HTTP on TCP (DOCKER_HOST=tcp://..., the way
 * a docker-socket-proxy is reached).  Every function takes the engine as
 * "host": a socket path ("/run/docker.sock") or a base URL
 * ("http://HOST:PORT"), as cf_docker_parse_host() makes them.
 *
 *     cf_docker_find_exec(host, "coffer.exec-pre", alias, &pre)
 *     cf_docker_exec(host, "exec-pre", &pre, false)   run each running
 *         container's exec-pre label in it (a dump taken where the
 *         database client lives); the first failure stops
 *     cf_docker_stop_labelled(host, label, alias, timeout, &set)   list running
 *         containers carrying label (or alias), stop each (the engine waits up to
 *         timeout seconds, then kills); set records which ones were stopped
 *     ... back up ...
 *     cf_docker_start(sock, &set)    start exactly those again, even when
 *         the backup failed or was interrupted
 *     cf_docker_exec_labelled(host, "exec-post", "coffer.exec-post", alias, true)
 *         run every exec-post label, also after a failed backup
 *     cf_docker_set_release(&set)
 *
 * Only containers that were running are stopped, so a container that was
 * down before the job stays down after it.  If stopping one fails, the ones
 * already stopped are in the set and the caller starts them again.
 */
#ifndef CF_DOCKER_H
#define CF_DOCKER_H

#include <stdbool.h>
#include <stddef.h>

struct cf_docker_set {
	char **ids;      /* full container ids, in stop order */
	char **names;    /* their names (for the log) */
	size_t n;
	size_t idcap, namecap;
	char **cmds;     /* exec labels: the command of each; NULL otherwise */
	size_t cmdcap;
};

#define CF_DOCKER_SET_INIT { NULL, NULL, 0, 0, 0, NULL, 0 }

/* Is the engine there to be asked?  A socket path: when it exists; a URL:
 * always (only a request tells).  false for NULL. */
bool cf_docker_present(const char *host);

/* Stop every running container whose labels include label or alias
 * ("key=value" or "key"; alias NULL: none).  Stopped ones are appended to
 * *set (CF_DOCKER_SET_INIT or an earlier set).  CF_OK; CF_EIO with a message
 * naming the engine when it cannot be reached or answers an error;
 * CF_ECORRUPT for an answer that does not parse; CF_ENOMEM. */
int cf_docker_stop_labelled(const char *host, const char *label, const char *alias, unsigned timeout,
			    struct cf_docker_set *set);

/* offen/docker-volume-backup's name for the stop label: its key,
 * docker-volume-backup.stop-during-backup, with label's value ("true" when
 * label has none), so that BACKUP_STOP_DURING_BACKUP_LABEL=service1 setups
 * carry over as COFFER_STOP_LABEL=coffer.stop-during-backup=service1.  Into
 * out (n bytes).  CF_OK, or CF_EINVAL when it does not fit. */
int cf_docker_stop_alias(const char *label, char *out, size_t n);

/* The exec labels, and offen/docker-volume-backup's names for them. */
#define CF_DOCKER_EXEC_PRE "coffer.exec-pre"
#define CF_DOCKER_EXEC_POST "coffer.exec-post"
#define CF_DOCKER_EXEC_PRE_OFFEN "docker-volume-backup.archive-pre"
#define CF_DOCKER_EXEC_POST_OFFEN "docker-volume-backup.archive-post"

/* The running containers whose label key (or, when they have none, alias;
 * NULL: none) is a non-empty command, appended to *found (CF_DOCKER_SET_INIT)
 * with the commands in found->cmds, in the engine's list order.  CF_OK;
 * CF_EIO naming the engine when it cannot be reached or answers an error;
 * CF_ECORRUPT; CF_ENOMEM. */
int cf_docker_find_exec(const char *host, const char *key, const char *alias, struct cf_docker_set *found);

/* Run each command of set (from cf_docker_find_exec) in its container with
 * /bin/sh -c through the engine's exec API, one after another, and wait for
 * it.  stage ("exec-pre") names the step in the log, where each line of the
 * command's stdout and stderr goes, tagged with the container's name.
 * all = false: the first failure stops, and SIGTERM stops the wait (the
 * command itself runs on in the container: the API has no way to end it);
 * all = true: every one runs whatever the others did, and a signal does not
 * cut it short.  CF_OK; CF_EIO naming the container and the command with
 * its exit status, or the engine's error; CF_EINTR; CF_ECORRUPT for an
 * answer that does not parse; CF_ENOMEM. */
int cf_docker_exec(const char *host, const char *stage, const struct cf_docker_set *set, bool all);

/* cf_docker_find_exec, then cf_docker_exec. */
int cf_docker_exec_labelled(const char *host, const char *stage, const char *key, const char *alias, bool all);

/* The selection of cf_docker_exec_labelled on GET /containers/json's body
 * (exposed for the fuzzer): each container with a command, into *found
 * with its command in found->cmds.  Returns as cf_docker_find. */
int cf_docker_select_exec(const char *what, const void *list_json, size_t n, const char *key, const char *alias,
			  struct cf_docker_set *found);

/* Start every container of set, in reverse stop order.  Tries all of them;
 * returns CF_OK, or the first failure (each failure is also logged). */
int cf_docker_start(const char *host, const struct cf_docker_set *set);

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
	const char *alias;                      /* a second label that counts as label; NULL = none */
};

/* Append to *found (CF_DOCKER_SET_INIT) every running container chosen by
 * m, each once.  CF_OK; CF_EIO naming the socket when the engine cannot be
 * reached or answers an error; CF_ECORRUPT; CF_ENOMEM. */
int cf_docker_find(const char *host, const struct cf_docker_match *m, struct cf_docker_set *found);

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
int cf_docker_stop(const char *host, const struct cf_docker_set *found, unsigned timeout,
		   struct cf_docker_set *stopped);

/* The engine from a COFFER_DOCKER_HOST / DOCKER_HOST value (key names it in
 * the message), malloc'd into *out: "unix:///PATH" gives "/PATH";
 * "tcp://HOST[:PORT][/PATH]" and "http://HOST[:PORT][/PATH]" give
 * "http://HOST:PORT[/PATH]" (port 2375 when none is given); "", "none" and
 * "off" give NULL (containers not handled).  CF_EINVAL, the message naming
 * what is wrong, for https:// and for tcp:// while DOCKER_TLS_VERIFY is set
 * (TLS is not spoken), and for anything else (ssh://, a bad host or port, a
 * user or query part); CF_ENOMEM. */
int cf_docker_parse_host(const char *key, const char *value, char **out);

/* The compose name of container (an id or name, e.g. this container's
 * hostname): "PROJECT-SERVICE" from its com.docker.compose.project and
 * com.docker.compose.service labels, into out (n bytes).  CF_OK; CF_ENOENT
 * when the container has no such labels; CF_EIO when the engine cannot be
 * asked (no message is meant for the user then: callers fall back). */
int cf_docker_compose_name(const char *host, const char *container, char *out, size_t n);

#endif
