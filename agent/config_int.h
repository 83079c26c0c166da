/*
 * config_int.h - what the agent's configuration files share: config_keys.c
 * says what each key means (the table, each value's check and setter),
 * config.c where the values come from (the environment, the config file,
 * the defaults) and loads them.  Not a public API: agent/config.h is.
 */
#ifndef CF_AGENT_CONFIG_INT_H
#define CF_AGENT_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/config.h"

typedef int (*agent_setter_fn)(struct cf_agent_config *c, const char *key, const char *v);

struct agent_key {
	const char *name;
	agent_setter_fn set;        /* NULL: passed through to other modules via the environment */
	const char *def;      /* default value, NULL = unset */
	bool secret;
	const char *doc;
};

/* Every key but COFFER_CONFIG_FILE, in the order print-config shows them. */
extern const struct agent_key agent_keys[];
extern const size_t agent_nkeys;

/* The key named name, or NULL. */
const struct agent_key *agent_find_key(const char *name);

/* A copy target's key COFFER_COPY_TO_<NAME>_<suffix> (config_keys.c). */
struct agent_copy_key {
	const char *suffix;   /* "REPOSITORY", "KEEP_DAILY", ... */
	int (*set)(struct cf_agent_copy *t, const char *key, const char *v);
	bool secret;
	const char *doc;
};
extern const struct agent_copy_key agent_copy_keys[];
extern const size_t agent_ncopy_keys;

/* key starts with COFFER_COPY_TO_ (every such key must be a copy target's). */
bool agent_is_copy_key(const char *key);

/* The suffix row of key COFFER_COPY_TO_<NAME>_<SUFFIX> (the longest suffix
 * that matches) and NAME into name (n bytes: upper case letters, digits,
 * '_' inside); NULL when key is no such key. */
const struct agent_copy_key *agent_copy_find(const char *key, char *name, size_t n);

/* Setters the loader singles out: a key whose file another module reads
 * with getenv() (checked readable here; exported by the loader when it came
 * from the config file), and COFFER_DOCKER_HOST (given rather than
 * defaulted, an unreachable engine then fails the job: docker_explicit). */
int agent_passthrough_file(struct cf_agent_config *c, const char *key, const char *v);
int agent_set_docker_host(struct cf_agent_config *c, const char *key, const char *v);

/* *dst = a copy of v (the old one freed).  CF_OK or CF_ENOMEM. */
int agent_dup_str(char **dst, const char *v);
int agent_push(char ***arr, size_t *n, size_t *cap, const char *s, size_t len);
void agent_free_list(char **a, size_t n);

/* COFFER_PARSE_ONLY=1: values are checked, the files they name are not. */
bool agent_parse_only(void);

#endif
