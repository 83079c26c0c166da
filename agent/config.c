/*
 * config.c - where the agent's settings come from, and loading them: the
 * environment wins over the config file (COFFER_CONFIG_FILE, KEY=VALUE
 * lines), which wins over the defaults; each value goes through its key's
 * setter (config_keys.c).  Keys from the file that other modules read
 * with getenv() (the S3 settings, the MariaDB password, the cache) are
 * exported, and unexported by the next load, so that a SIGHUP reload sees
 * only what the process started with.  Then the checks across keys: a
 * repository and a password, no dump the job's walk would drop.
 * print-config shows each value and where it came from, secrets as "(set)"
 * and URLs' passwords as ***.
 */
#include "agent/config.h"
#include "agent/config_int.h"
#include "sources/dburl.h"
#include "sources/sources.h"
#include "common/buf.h"
#include "common/array.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------ the file */

struct kv {
	char **k, **v;
	size_t n, kcap, vcap;
};

static void kv_free(struct kv *kv)
{
	for (size_t i = 0; i < kv->n; i++) {
		free(kv->k[i]);
		if (kv->v[i])
			explicit_bzero(kv->v[i], strlen(kv->v[i]));
		free(kv->v[i]);
	}
	free(kv->k);
	free(kv->v);
	memset(kv, 0, sizeof(*kv));
}

static const char *kv_get(const struct kv *kv, const char *k)
{
	for (size_t i = kv->n; i-- > 0;)
		if (!strcmp(kv->k[i], k))
			return kv->v[i];
	return NULL;
}

static int read_whole(const char *path, struct cf_buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cf_err_errno("COFFER_CONFIG_FILE: cannot open %s", path);
	int r = CF_OK;
	for (;;) {
		if ((r = cf_buf_grow(b, 4096)))
			break;
		ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = cf_err_errno("COFFER_CONFIG_FILE: cannot read %s", path);
			break;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
		b->data[b->len] = 0;
		if (b->len > (1u << 20)) {
			r = cf_err(CF_EINVAL, "COFFER_CONFIG_FILE: %s is larger than 1 MiB", path);
			break;
		}
	}
	close(fd);
	return r;
}

/* KEY=VALUE lines; a double- or single-quoted value may span lines. */
static int parse_file(const char *path, struct kv *kv)
{
	struct cf_buf b = CF_BUF_INIT;
	int r = read_whole(path, &b), line = 1;
	char *p = b.data ? (char *)b.data : "";

	while (!r && *p) {
		int start_line = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\r') {
			p += strcspn(p, "\n");
			if (*p)
				p++, line++;
			continue;
		}
		if (!strncmp(p, "export ", 7))
			p += 7;
		size_t klen = strcspn(p, "=\n");
		if (p[klen] != '=') {
			r = cf_err(CF_EINVAL, "%s:%d: not KEY=VALUE", path, line);
			break;
		}
		char *key = strndup(p, klen);
		if (!key) {
			r = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		for (char *e = key + strlen(key); e > key && isspace((unsigned char)e[-1]);)
			*--e = 0;
		if (!agent_find_key(key)) {
			r = cf_err(CF_EINVAL, "%s:%d: unknown key %s", path, line, key);
			free(key);
			break;
		}
		p += klen + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		char *val;
		if (*p == '"' || *p == '\'') {
			char q = *p++, *end = strchr(p, q);
			if (!end) {
				r = cf_err(CF_EINVAL, "%s:%d: %s: unterminated quote", path, start_line, key);
				free(key);
				break;
			}
			val = strndup(p, (size_t)(end - p));
			for (char *s = p; s < end; s++)
				line += *s == '\n';
			p = end + 1;
			p += strcspn(p, "\n");
		} else {
			size_t vlen = strcspn(p, "\n");
			while (vlen && isspace((unsigned char)p[vlen - 1]))
				vlen--;
			val = strndup(p, vlen);
			p += strcspn(p, "\n");
		}
		if (*p)
			p++, line++;
		if (!val || CF_GROW(kv->k, kv->n + 1, kv->kcap) || CF_GROW(kv->v, kv->n + 1, kv->vcap)) {
			free(key);
			free(val);
			r = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		kv->k[kv->n] = key;
		kv->v[kv->n++] = val;
	}
	if (b.data)
		explicit_bzero(b.data, b.cap);
	cf_buf_release(&b);
	return r;
}

/* ------------------------------------------------------------ loading */

static const char *env_get(void *ctx, const char *key)
{
	(void)ctx;
	return getenv(key);
}

static void unexport(struct cf_agent_config *c)
{
	for (size_t i = 0; i < c->nexported; i++)
		unsetenv(c->exported[i]);
	agent_free_list(c->exported, c->nexported);
	c->exported = NULL;
	c->nexported = 0;
}

/* An unknown COFFER_* variable in the environment is warned about (the
 * environment is shared with other programs), or refused when the command
 * line is only being validated (COFFER_PARSE_ONLY=1: a typo must show). */
static int check_unknown_env(void)
{
	bool strict = agent_parse_only();
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "COFFER_", 7))
			continue;
		size_t n = strcspn(*e, "=");
		char name[128];
		if (n >= sizeof(name))
			continue;
		memcpy(name, *e, n);
		name[n] = 0;
		/* the CLI's own and the test suite's variables */
		static const char *const others[] = {
			"COFFER_CONFIG_FILE", "COFFER_S3_LIST_MAX_KEYS", "COFFER_SOURCE_DIR", "COFFER_BUILD_DIR",
			"COFFER_TESTDATA", "COFFER_JOB_STATUS", "COFFER_PARSE_ONLY", "COFFER_FROM_PASSWORD_FILE",
			"COFFER_FAULTS",
		};
		bool other = !strncmp(name, "COFFER_TEST_", 12);
		for (size_t i = 0; i < sizeof(others) / sizeof(others[0]) && !other; i++)
			other = !strcmp(name, others[i]);
		if (other)
			continue;
		if (agent_find_key(name))
			continue;
		if (strict)
			return cf_err(CF_EINVAL, "unknown setting %s in the environment", name);
		cf_warn("coffer agent: warning: unknown setting %s in the environment (ignored)", name);
	}
	return CF_OK;
}

/* A COFFER_SQLITE copy or a COFFER_STDIN_COMMANDS file that the job's walk
 * would drop (COFFER_EXCLUDES matching it, a command's file inside a walked
 * volume) is refused at start, not lost at every job (sources/sources.h). */
static int check_dumps(const struct cf_agent_config *c)
{
	const char *const *ex = (const char *const *)c->excludes;
	char label[4200];
	int r = CF_OK;
	for (size_t i = 0; i < c->nsqlite && !r; i++) {
		snprintf(label, sizeof(label), "the COFFER_SQLITE database %s", c->sqlite[i]);
		r = cf_sources_check_dump(label, c->sqlite[i], (const char *const *)c->paths, c->npaths,
					  ex, c->nexcludes);
	}
	for (size_t i = 0; i < c->nstdin_cmds && !r; i++) {
		const char *f = c->stdin_cmds[i].path + strspn(c->stdin_cmds[i].path, "/");
		snprintf(label, sizeof(label), "the COFFER_STDIN_COMMANDS file %s", c->stdin_cmds[i].path);
		if (!*f)
			continue;
		if (c->npaths) {
			r = cf_sources_check_dump(label, f, (const char *const *)c->paths, c->npaths, ex,
						  c->nexcludes);
			continue;
		}
		/* no COFFER_BACKUP_PATHS: every directory under the root is walked,
		 * so a file two levels below it lies inside one of them */
		char vol[4200];
		const char *root = c->backup_root ? c->backup_root + strspn(c->backup_root, "/") : "";
		size_t rl = strlen(root);
		while (rl && root[rl - 1] == '/')
			rl--;
		const char *walked[1] = { vol };
		size_t nw = 0;
		if (rl && !strncmp(f, root, rl) && f[rl] == '/' && strchr(f + rl + 1, '/')) {
			snprintf(vol, sizeof(vol), "/%.*s/%.*s", (int)rl, root,
				 (int)strcspn(f + rl + 1, "/"), f + rl + 1);
			nw = 1;
		}
		r = cf_sources_check_dump(label, f, walked, nw, ex, c->nexcludes);
	}
	return r;
}

static int load(struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx, bool schedule_only)
{
	struct kv kv = { 0 };
	const char *file;
	size_t exportcap = 0;
	int r = CF_OK;

	/* A reload drops what the previous load exported, so that the
	 * environment lookup below sees only what the process was started with. */
	unexport(c);
	cf_agent_config_release(c);
	if (!get) {
		get = env_get;
		if ((r = check_unknown_env()))
			goto out;
	}
	c->log_level = 1;
	c->webhook_retries = 3;
	file = get(ctx, "COFFER_CONFIG_FILE");
	if (file && *file) {
		if ((r = agent_dup_str(&c->config_file, file)) || (r = parse_file(file, &kv)))
			goto out;
	}
	for (size_t i = 0; i < agent_nkeys; i++) {
		const struct agent_key *k = &agent_keys[i];
		const char *v = get(ctx, k->name);
		bool from_file = false;
		if (!v && (v = kv_get(&kv, k->name)))
			from_file = true;
		if (!v)
			v = k->def;
		if (!v)
			continue;
		if (from_file && (!k->set || k->set == agent_passthrough_file)) {
			/* read by s3.c / dburl.c with getenv() */
			if ((r = agent_push(&c->exported, &c->nexported, &exportcap, k->name, strlen(k->name))))
				goto out;
			if (setenv(k->name, v, 1) != 0) {
				r = cf_err_errno("cannot set %s", k->name);
				goto out;
			}
		}
		if (k->set && (r = k->set(c, k->name, v)))
			goto out;
		if (k->set == agent_set_docker_host && v != k->def)
			c->docker_explicit = true;
	}
	if (schedule_only)
		goto out;
	if (!c->repository) {
		r = cf_err(CF_EINVAL, "COFFER_REPOSITORY is not set: where should the snapshots go?");
		goto out;
	}
	if (c->password_file && c->password) {
		cf_agent_secret_free(c->password); /* the file wins, as for the CLI */
		c->password = NULL;
	}
	if (!c->password_file && !c->password) {
		r = cf_err(CF_EINVAL, "COFFER_PASSWORD_FILE is not set (nor COFFER_PASSWORD): "
				      "the agent cannot open the repository");
		goto out;
	}
	if (c->webhook_secret && !c->webhook_url) {
		r = cf_err(CF_EINVAL, "COFFER_WEBHOOK_SECRET is set but COFFER_WEBHOOK_URL is not");
		goto out;
	}
	if ((r = check_dumps(c)))
		goto out;
out:
	kv_free(&kv);
	if (r) {
		char **ex = c->exported;
		size_t nex = c->nexported;
		c->exported = NULL;
		cf_agent_config_release(c);
		c->exported = ex;   /* so the next load still unsets them */
		c->nexported = nex;
	}
	return r;
}

int cf_agent_config_load(struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx)
{
	return load(c, get, ctx, false);
}

int cf_agent_config_load_schedule(struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx)
{
	return load(c, get, ctx, true);
}

void cf_agent_secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void cf_agent_config_done(struct cf_agent_config *c)
{
	cf_agent_config_release(c);
	unexport(c);
}

void cf_agent_config_release(struct cf_agent_config *c)
{
	char **ex = c->exported;
	size_t nex = c->nexported;
	free(c->config_file);
	free(c->repository);
	free(c->cacert);
	free(c->password_file);
	cf_agent_secret_free(c->password);
	free(c->schedule);
	free(c->tz);
	agent_free_list(c->paths, c->npaths);
	free(c->backup_root);
	agent_free_list(c->excludes, c->nexcludes);
	free(c->state_dir);
	agent_free_list(c->mariadb, c->nmariadb);
	agent_free_list(c->sqlite, c->nsqlite);
	for (size_t i = 0; i < c->nstdin_cmds; i++) {
		free(c->stdin_cmds[i].path);
		free(c->stdin_cmds[i].command);
	}
	free(c->stdin_cmds);
	free(c->host);
	agent_free_list(c->tags, c->ntags);
	free(c->keep_within);
	free(c->prune_schedule);
	free(c->check_schedule);
	free(c->check_subset);
	free(c->pre_command);
	free(c->post_command);
	free(c->docker_socket);
	free(c->stop_label);
	free(c->metrics_file);
	free(c->metrics_listen);
	free(c->webhook_url);
	cf_agent_secret_free(c->webhook_secret);
	memset(c, 0, sizeof(*c));
	/* exported names survive a release: only the next load unsets them */
	c->exported = ex;
	c->nexported = nex;
}

void cf_agent_config_print(const struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx,
			   FILE *f)
{
	(void)c;
	if (!get)
		get = env_get;
	const char *file = get(ctx, "COFFER_CONFIG_FILE");
	struct kv kv = { 0 };
	if (file && *file && parse_file(file, &kv) != CF_OK)
		kv_free(&kv);
	fprintf(f, "COFFER_CONFIG_FILE=%s\n", file && *file ? file : "(unset)");
	for (size_t i = 0; i < agent_nkeys; i++) {
		const struct agent_key *k = &agent_keys[i];
		const char *v = get(ctx, k->name), *src = "environment";
		if (!v && (v = kv_get(&kv, k->name)))
			src = "file";
		if (!v && (v = k->def))
			src = "default";
		if (!v)
			fprintf(f, "%s=(unset)\n", k->name);
		else if (k->secret && strstr(k->name, "_FILE") == NULL)
			fprintf(f, "%s=(set) # %s\n", k->name, src);
		else {
			/* a URL's password or token is shown as *** */
			char shown[4096];
			cf_redact_url(v, shown, sizeof(shown));
			fprintf(f, "%s=%s # %s\n", k->name, shown, src);
		}
	}
	kv_free(&kv);
}

int cf_agent_read_secret(const char *path, const char *what, char **out)
{
	char buf[4096];
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cf_err_errno("%s: cannot open %s", what, path);
	ssize_t n = cf_read_full(fd, buf, sizeof(buf));
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return cf_err_errno("%s: cannot read %s", what, path);
	}
	if (n == (ssize_t)sizeof(buf))
		return cf_err(CF_EINVAL, "%s: %s is too large for a secret", what, path);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0)
		return cf_err(CF_EINVAL, "%s: %s is empty", what, path);
	*out = strndup(buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
	return *out ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}
