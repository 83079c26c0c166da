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
