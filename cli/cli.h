/* cli.h - the command-line front end's shared state. */
#ifndef CF_CLI_H
#define CF_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include "../repo/repo.h"

#define MAXV 256

struct cli {
	const char *repo;
	const char *password_file, *new_password_file;
	bool json, verbose, quiet;
	double retry_lock;
	const char *cacert;
	int connections;
	/* backup */
	const char *host;
	const char *tags[MAXV]; size_t ntags;
	const char *excludes[MAXV]; size_t nexcludes;
	const char *time;
	bool one_file_system, force;
	int threads;
	/* filters (snapshot selection) */
	const char *paths[MAXV]; size_t npaths;
	/* restore */
	const char *target;
	const char *includes[MAXV]; size_t nincludes;
	/* check */
	bool read_data;
	/* init */
	const char *chunk_size;
	int compression;
	long kdf_ops, kdf_mem_kib;
	/* unlock */
	bool remove_all;
	/* positional arguments after the command */
	char **args; int nargs;
};

/* Password for opening (or, twice = true, for creating) a repository:
 * --password-file, COFFER_PASSWORD_FILE, COFFER_PASSWORD, else a prompt on
 * /dev/tty.  Caller frees with cli_password_free(). */
int cli_password(const struct cli *c, bool twice, char **out);
int cli_new_password(const struct cli *c, char **out);
int cli_prompt_new(const char *what, bool twice, char **out);
void cli_password_free(char *p);

#endif
