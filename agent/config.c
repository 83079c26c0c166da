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
#include <strings.h>
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
		char tname[128];
		if (!agent_find_key(key) && !agent_copy_find(key, tname, sizeof(tname))) {
			r = cf_err(CF_EINVAL, "%s:%d: unknown key %s%s", path, line, key,
				   agent_is_copy_key(key) ? " (a copy target's keys are COFFER_COPY_TO_<NAME>_REPOSITORY, "
				   "_PASSWORD_FILE, _SCHEDULE, _KEEP_DAILY...: doc/agent.md)" : "");
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
		char tname[128];
		if (agent_is_copy_key(name)) {
			/* a typo here would silently drop a target's retention: refused */
			if (agent_copy_find(name, tname, sizeof(tname)))
				continue;
			return cf_err(CF_EINVAL, "unknown setting %s in the environment (a copy target's keys are "
					      "COFFER_COPY_TO_<NAME>_REPOSITORY, _PASSWORD_FILE, _SCHEDULE, _KEEP_DAILY...: "
					      "doc/agent.md)", name);
		}
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

/* ------------------------------------------------------ copy targets */

/* The COFFER_COPY_TO_* keys given: names from the environment (only when it
 * is the real one: a test's lookup cannot be listed) and then from the file;
 * each name once, the environment's value winning. */
struct copy_kv {
	char **k;
	const char **v;
	bool *from_file;
	size_t n, kcap, vcap, fcap;
};

static void copy_kv_free(struct copy_kv *ck)
{
	agent_free_list(ck->k, ck->n);
	free(ck->v);
	free(ck->from_file);
	memset(ck, 0, sizeof(*ck));
}

static int copy_kv_add(struct copy_kv *ck, const char *k, const char *v, bool from_file)
{
	int r;
	for (size_t i = 0; i < ck->n; i++)
		if (!strcmp(ck->k[i], k))
			return CF_OK;
	if ((r = CF_GROW(ck->v, ck->n + 1, ck->vcap)) || (r = CF_GROW(ck->from_file, ck->n + 1, ck->fcap)))
		return r;
	ck->v[ck->n] = v;
	ck->from_file[ck->n] = from_file;
	return agent_push(&ck->k, &ck->n, &ck->kcap, k, strlen(k));
}

static int copy_keys_given(cf_agent_getenv_fn get, void *ctx, const struct kv *kv, struct copy_kv *ck)
{
	int r = CF_OK;
	if (get == env_get) {
		for (char **e = environ; e && *e && !r; e++) {
			size_t n = strcspn(*e, "=");
			char name[256];
			if (!agent_is_copy_key(*e) || n >= sizeof(name) || !(*e)[n])
				continue;
			memcpy(name, *e, n);
			name[n] = 0;
			r = copy_kv_add(ck, name, get(ctx, name), false);
		}
	}
	for (size_t i = 0; i < kv->n && !r; i++)
		if (agent_is_copy_key(kv->k[i]))
			r = copy_kv_add(ck, kv->k[i], kv_get(kv, kv->k[i]), true);
	return r;
}

static void copy_release(struct cf_agent_copy *t)
{
	free(t->name);
	free(t->key_name);
	free(t->repository);
	free(t->password_file);
	cf_agent_secret_free(t->password);
	free(t->access_key);
	free(t->access_key_file);
	cf_agent_secret_free(t->secret_key);
	free(t->secret_key_file);
	cf_agent_secret_free(t->session_token);
	free(t->session_token_file);
	free(t->region);
	free(t->from_name);
	free(t->schedule);
	free(t->keep_within);
	memset(t, 0, sizeof(*t));
}

static struct cf_agent_copy *copy_target(struct cf_agent_config *c, const char *key_name, size_t *cap)
{
	for (size_t i = 0; i < c->ncopies; i++)
		if (!strcmp(c->copies[i].key_name, key_name))
			return &c->copies[i];
	if (CF_GROW(c->copies, c->ncopies + 1, *cap))
		return NULL;
	struct cf_agent_copy *t = &c->copies[c->ncopies];
	memset(t, 0, sizeof(*t));
	t->from = -1;
	if (!(t->key_name = strdup(key_name)) || !(t->name = strdup(key_name))) {
		copy_release(t);
		cf_err(CF_ENOMEM, "out of memory");
		return NULL;
	}
	for (char *p = t->name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	c->ncopies++;
	return t;
}

static long copy_index(const struct cf_agent_config *c, const char *name)
{
	for (size_t i = 0; i < c->ncopies; i++)
		if (!strcasecmp(c->copies[i].key_name, name))
			return (long)i;
	return -1;
}

/* Each target complete; _FROM names another target and no chain loops; the
 * targets sorted so that each comes after the one it copies from (a job
 * then runs a daily copy before the monthly copy taken from it). */
static int copy_check(struct cf_agent_config *c)
{
	struct cf_agent_copy *sorted = NULL;
	bool *placed = NULL;
	int r = CF_OK;

	for (size_t i = 0; i < c->ncopies; i++) {
		struct cf_agent_copy *t = &c->copies[i];
		const char *k = t->key_name;
		if (!t->repository)
			return cf_err(CF_EINVAL, "COFFER_COPY_TO_%s_REPOSITORY is not set: where should the copy "
					      "target %s go?", k, t->name);
		if (c->repository && !strcmp(t->repository, c->repository))
			return cf_err(CF_EINVAL, "COFFER_COPY_TO_%s_REPOSITORY: %s is the main repository", k,
				      t->repository);
		if (t->password_file && t->password) {
			cf_agent_secret_free(t->password); /* the file wins, as for the main repository */
			t->password = NULL;
		}
		if (!t->password_file && !t->password)
			return cf_err(CF_EINVAL, "COFFER_COPY_TO_%s_PASSWORD_FILE is not set (nor "
					      "COFFER_COPY_TO_%s_PASSWORD): the copy target %s cannot be opened", k, k, t->name);
		bool ak = t->access_key || t->access_key_file, sk = t->secret_key || t->secret_key_file;
		if (ak != sk)
			return cf_err(CF_EINVAL, "COFFER_COPY_TO_%s_%s is set but COFFER_COPY_TO_%s_%s is not "
					      "(a target's S3 credentials are given together, or not at all to use the main ones)",
				      k, ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY", k,
				      ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		t->from = -1;
		if (t->from_name) {
			t->from = copy_index(c, t->from_name);
			if (t->from < 0)
				return cf_err(CF_EINVAL, "COFFER_COPY_TO_%s_FROM: there is no copy target \"%s\" "
						      "(no COFFER_COPY_TO_%s_REPOSITORY)", k, t->from_name, t->from_name);
			if ((size_t)t->from == i)
				return cf_err(CF_EINVAL, "COFFER_COPY_TO_%s_FROM: a target cannot copy from itself", k);
		}
	}
	if (!c->ncopies)
		return CF_OK;
	if (!(sorted = calloc(c->ncopies, sizeof(*sorted))) || !(placed = calloc(c->ncopies, sizeof(*placed)))) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	/* by name first, so the order does not depend on the environment's */
	for (size_t i = 1; i < c->ncopies; i++)
		for (size_t j = i; j > 0 && strcmp(c->copies[j - 1].name, c->copies[j].name) > 0; j--) {
			struct cf_agent_copy x = c->copies[j];
			c->copies[j] = c->copies[j - 1];
			c->copies[j - 1] = x;
		}
	for (size_t i = 0; i < c->ncopies; i++)
		c->copies[i].from = c->copies[i].from_name ? copy_index(c, c->copies[i].from_name) : -1;
	long *newidx = calloc(c->ncopies, sizeof(long));
	if (!newidx) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	size_t n = 0;
	while (n < c->ncopies) {
		bool progress = false;
		for (size_t i = 0; i < c->ncopies; i++) {
			if (placed[i] || (c->copies[i].from >= 0 && !placed[c->copies[i].from]))
				continue;
			newidx[i] = (long)n;
			sorted[n++] = c->copies[i];
			placed[i] = progress = true;
		}
		if (!progress) {
			for (size_t i = 0; i < c->ncopies; i++)
				if (!placed[i]) {
					r = cf_err(CF_EINVAL, "COFFER_COPY_TO_%s_FROM: the targets' _FROM settings go "
							      "round in a circle", c->copies[i].key_name);
					break;
				}
			free(newidx);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (sorted[i].from >= 0)
			sorted[i].from = newidx[sorted[i].from];
	memcpy(c->copies, sorted, n * sizeof(*sorted));
	free(newidx);
out:
	free(sorted);
	free(placed);
	return r;
}

static int load_copies(struct cf_agent_config *c, cf_agent_getenv_fn get, void *ctx, const struct kv *kv)
{
	struct copy_kv ck = { 0 };
	size_t cap = 0;
	int r = copy_keys_given(get, ctx, kv, &ck);
	for (size_t i = 0; i < ck.n && !r; i++) {
		char name[128];
		const struct agent_copy_key *k = agent_copy_find(ck.k[i], name, sizeof(name));
		struct cf_agent_copy *t;
		if (!k) {
			r = cf_err(CF_EINVAL, "unknown setting %s (a copy target's keys are COFFER_COPY_TO_<NAME>_"
					      "REPOSITORY, _PASSWORD_FILE, _SCHEDULE, _KEEP_DAILY...: doc/agent.md)", ck.k[i]);
			break;
		}
		if (!ck.v[i])
			continue;
		if (!(t = copy_target(c, name, &cap))) {
			r = CF_ENOMEM;
			break;
		}
		r = k->set(t, ck.k[i], ck.v[i]);
	}
	copy_kv_free(&ck);
	return r ? r : copy_check(c);
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
	c->webhook_retries = 10;
	c->webhook_retry_for = 900;
	c->webhook_backoff = 5;
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
		const char *key = k->name;
		/* the engine the docker CLI would use, when coffer's own key is unset */
		if (!v && k->set == agent_set_docker_host && (v = get(ctx, "DOCKER_HOST")))
			key = "DOCKER_HOST";
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
		if (k->set && (r = k->set(c, key, v)))
			goto out;
		if (k->set == agent_set_docker_host && v != k->def)
			c->docker_explicit = true;
	}
	if ((r = load_copies(c, get, ctx, &kv)))
		goto out;
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
	agent_free_list(c->postgres, c->npostgres);
	agent_free_list(c->sqlite, c->nsqlite);
	agent_free_list(c->sqlite_replicate, c->nsqlite_replicate);
	free(c->sqlite_retention);
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
	free(c->docker_host);
	free(c->stop_label);
	free(c->metrics_file);
	free(c->metrics_listen);
	free(c->webhook_url);
	cf_agent_secret_free(c->webhook_secret);
	for (size_t i = 0; i < c->nnotify; i++)
		cf_agent_secret_free(c->notify[i].url);
	free(c->notify);
	free(c->drill_schedule);
	free(c->drill_dir);
	for (size_t i = 0; i < c->ncopies; i++)
		copy_release(&c->copies[i]);
	free(c->copies);
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
	struct copy_kv ck = { 0 };
	if (copy_keys_given(get, ctx, &kv, &ck) == CF_OK)
		for (size_t i = 0; i < ck.n; i++) {
			char name[128], shown[4096];
			const struct agent_copy_key *k = agent_copy_find(ck.k[i], name, sizeof(name));
			const char *src = ck.from_file[i] ? "file" : "environment";
			if (!ck.v[i])
				continue;
			if (!k)
				fprintf(f, "%s=(unknown key) # %s\n", ck.k[i], src);
			else if (k->secret && !strstr(k->suffix, "_FILE"))
				fprintf(f, "%s=(set) # %s\n", ck.k[i], src);
			else {
				cf_redact_url(ck.v[i], shown, sizeof(shown));
				fprintf(f, "%s=%s # %s\n", ck.k[i], shown, src);
			}
		}
	copy_kv_free(&ck);
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
