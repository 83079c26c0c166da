#include "cli/cli.h"
#include "engine/backup.h"
#include "restore/restore.h"
#include "repo/tree.h"
#include "crypto/crypto.h"
#include "common/error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/utsname.h>
#include <unistd.h>

/* common.c - what every command shares: opening, exit codes, formatting. */

int exit_code(int rc)
{
	switch (rc) {
	case CF_OK: return EXIT_OK;
	case CF_EPARTIAL: return EXIT_PARTIAL;
	case CF_ENOREPO: return EXIT_NOREPO;
	case CF_ELOCKED: return EXIT_LOCKED;
	case CF_EBADPASS: return EXIT_BADPASS;
	case CF_EINTR: return EXIT_INTR;
	default: return EXIT_ERR;
	}
}

bool cli_json_errors;

int fail(int rc)
{
	int code = exit_code(rc);
	if (cli_json_errors) {
		/* restic's exit_error: scripts read the reason from stderr */
		fflush(stdout);
		const char *m = cf_errmsg(rc);
		json_line(stderr, json_pack("{s:s, s:i, s:s}", "message_type", "exit_error", "code", code,
					    "message", m ? m : "error"));
		return code;
	}
	fprintf(stderr, "coffer: %s\n", cf_errmsg(rc));
	return code;
}

void json_line(FILE *f, json_t *j)
{
	char *t = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (t) {
		fputs(t, f);
		fputc('\n', f);
		fflush(f);
	}
	free(t);
	json_decref(j);
}

/* ---------- opening ---------- */

void parse_only_done(const struct cli *c)
{
	if (!c->quiet)
		fprintf(stderr, "coffer: COFFER_PARSE_ONLY: the command line is valid\n");
	exit(EXIT_OK); /* the command has only parsed: nothing to clean up */
}

/* COFFER_S3_CONNECTIONS and COFFER_S3_SIGN_PAYLOAD, the agent's keys, when
 * the command line does not give them */
static int cli_env_s3_options(struct cli *c)
{
	const char *v;
	if (!c->connections && (v = getenv("COFFER_S3_CONNECTIONS")) && *v) {
		char *end;
		long n = strtol(v, &end, 10);
		if (*end || n < 1 || n > 128)
			return cf_err(CF_EINVAL, "COFFER_S3_CONNECTIONS: \"%s\" is not a whole number from 1 to 128", v);
		c->connections = (int)n;
	}
	if (!c->sign_payload && (v = getenv("COFFER_S3_SIGN_PAYLOAD")))
		return cf_parse_bool("COFFER_S3_SIGN_PAYLOAD", v, &c->sign_payload);
	return CF_OK;
}

int open_backend(struct cli *c, struct cf_backend **be)
{
	const char *loc = c->repo ? c->repo : getenv("COFFER_REPOSITORY");
	int rc;
	/* the agent's keys, so a restore container can share its env file */
	if (!c->cacert && (c->cacert = getenv("COFFER_CACERT")) && !*c->cacert)
		c->cacert = NULL;
	if ((rc = cli_env_s3_options(c)))
		return rc;
	struct cf_backend_opts bo = { .connections = c->connections, .cacert = c->cacert, .sign_payload = c->sign_payload };
	if (c->parse_only)
		parse_only_done(c);
	if (!loc || !*loc)
		return cf_err(CF_EINVAL, "no repository given: use -r LOCATION or set COFFER_REPOSITORY%s",
			      getenv("RESTIC_REPOSITORY") ? " (RESTIC_REPOSITORY is set: coffer does not read "
			      "restic's variables)" : "");
	return cf_backend_open(loc, &bo, be);
}

int open_repo(struct cli *c, struct cf_repo **r, int lock /* 0 none, 1 shared, 2 exclusive */,
		     bool index)
{
	struct cf_backend *be = NULL;
	char *pw = NULL;
	int rc;
	*r = NULL;
	if ((rc = open_backend(c, &be)))
		return rc;
	if ((rc = cli_password(c, false, &pw))) {
		cf_backend_free(be);
		return rc;
	}
	rc = cf_repo_open(be, pw, strlen(pw), r);
	cli_password_free(pw);
	if (rc)
		return rc;
	/* packs in flight (default: repo/pack.c): --s3-connections sets both
	 * the uploads and the other requests (restore's GETs) */
	if (c->connections)
		cf_repo_set_upload_threads(*r, c->connections);
	/* --no-lock: reading a repository on read-only storage (never for
	 * commands that write or delete) */
	if (lock == 1 && c->no_lock && !c->lock_needed)
		lock = 0;
	if (lock && (rc = cf_repo_lock(*r, lock == 2, c->retry_lock))) {
		/* a command that only reads goes on without a lock on storage it
		 * cannot write to (a read-only mount, another user's repository) */
		if (rc == CF_EPERM && lock == 1 && !c->lock_needed) {
			cf_warn("warning: %s; reading without a lock", cf_errmsg(rc));
			rc = CF_OK;
			lock = 0;
		}
	}
	if (rc)
		goto fail;
	if (index && (rc = cf_repo_load_index(*r)))
		goto fail;
	return CF_OK;
fail:
	cf_repo_free(*r);
	*r = NULL;
	return rc;
}

void human(uint64_t b, char *out, size_t n)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(out, n, i ? "%.2f %s" : "%.0f %s", v, u[i]);
}

void local_time(int64_t ns, char *out, size_t n)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

void build_filter(struct cli *c, struct cf_snapshot_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->host = c->host;
	f->tags = c->tags;
	f->ntags = c->ntags;
	f->paths = c->paths;
	f->npaths = c->npaths;
}

/* Load the snapshot named by args[0] (latest / id prefix) with filters. */
int pick_snapshot(struct cli *c, struct cf_repo *r, const char *spec, struct cf_snapshot *out)
{
	struct cf_snapshot *s = NULL;
	struct cf_snapshot_filter f;
	size_t n = 0;
	int rc = cf_repo_snapshots(r, &s, &n, NULL);
	if (rc)
		return rc;
	build_filter(c, &f);
	long i = cf_snapshot_pick(s, n, spec, &f);
	if (i < 0) {
		cf_snapshots_free(s, n);
		return CF_ENOENT;
	}
	*out = s[i];
	memset(&s[i], 0, sizeof(s[i]));
	cf_snapshots_free(s, n);
	return CF_OK;
}

int split_snapshot_arg(const char *arg, char **spec, char **sub)
{
	const char *colon = strchr(arg, ':');
	*spec = *sub = NULL;
	if (!colon) {
		*spec = strdup(arg);
		return *spec ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
	}
	if (colon == arg)
		return cf_err(CF_EINVAL, "'%s': give the snapshot before the ':' (e.g. latest:/data)", arg);
	const char *p = colon + 1;
	for (const char *q = p; *q; q += strcspn(q, "/"), q += *q == '/')
		if (q[0] == '.' && q[1] == '.' && (!q[2] || q[2] == '/'))
			return cf_err(CF_EINVAL, "'%s': the folder may not contain '..'", arg);
	char *d = malloc(strlen(p) + 2);
	if (!d || !(*spec = strndup(arg, (size_t)(colon - arg)))) {
		free(d);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	/* absolute, no "//", "/./" nor trailing "/" */
	size_t n = 0;
	for (const char *q = p; *q;) {
		while (*q == '/')
			q++;
		size_t len = strcspn(q, "/");
		if (len && !(len == 1 && q[0] == '.')) {
			d[n++] = '/';
			memcpy(d + n, q, len);
			n += len;
		}
		q += len;
	}
	d[n] = 0;
	if (!n) {
		free(d); /* "SNAP:" or "SNAP:/": the whole snapshot */
		return CF_OK;
	}
	*sub = d;
	return CF_OK;
}

int check_subfolder(struct cf_repo *r, const struct cf_snapshot *s, const char *sub)
{
	struct cf_node n;
	char hex[CF_ID_HEX];
	cf_hex(s->id, CF_ID_LEN, hex);
	int rc = cf_tree_find_path(r, s->tree, sub, &n);
	if (rc == CF_ENOENT)
		return cf_err(CF_ENOENT, "snapshot %.8s has no folder %s (see 'coffer ls %.8s')",
			      hex, sub, hex);
	if (rc)
		return rc;
	bool dir = n.type == CF_NODE_DIR;
	cf_node_release(&n);
	if (!dir)
		return cf_err(CF_EINVAL, "%s in snapshot %.8s is not a folder (restore a file with --include %s)",
			      sub, hex, sub);
	return CF_OK;
}

/* ---------- version ---------- */

int cmd_version(struct cli *c)
{
	if (!c->json) {
		printf("coffer %s\n", COFFER_VERSION);
		return EXIT_OK;
	}
	/* restic's go_os and go_arch name the platform as Go does ("linux",
	 * "amd64"); there is no go_version: coffer is C (its compiler is in
	 * "compiler") */
	struct utsname u;
	const char *arch = "unknown";
	if (uname(&u) == 0) {
		arch = u.machine;
		if (!strcmp(arch, "x86_64"))
			arch = "amd64";
		else if (!strcmp(arch, "aarch64"))
			arch = "arm64";
		else if (!strncmp(arch, "i686", 4) || !strncmp(arch, "i386", 4))
			arch = "386";
	}
	json_line(stdout, json_pack("{s:s, s:s, s:s, s:s, s:s}", "message_type", "version",
				    "version", COFFER_VERSION, "go_os", "linux", "go_arch", arch,
				    "compiler", __VERSION__));
	return EXIT_OK;
}
