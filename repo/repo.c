/*
 * repo.c - creating and opening repositories: config, key files, sealed
 * objects addressed by their hash.
 */
#include "repo/repo_int.h"
#include "common/array.h"
#include "common/error.h"
#include "common/util.h"

#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void default_params(struct cf_chunker_params *p)
{
	p->min = CF_CHUNKER_DEFAULT_MIN;
	p->avg = CF_CHUNKER_DEFAULT_AVG;
	p->max = CF_CHUNKER_DEFAULT_MAX;
}

static struct cf_repo *repo_alloc(struct cf_backend *be)
{
	struct cf_repo *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->be = be;
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->tc_mu, NULL);
	return r;
}

void cf_repo_free(struct cf_repo *r)
{
	if (!r)
		return;
	cf_repo_uploaders_stop(r);
	cf_repo_lock_release(r);
	for (int i = 0; i < 2; i++) {
		if (r->packer[i]) {
			cf_buf_release(&r->packer[i]->buf);
			free(r->packer[i]->entries);
			free(r->packer[i]);
		}
	}
	cf_index_release(&r->idx);
	cf_repo_tree_cache_release(r);
	pthread_mutex_destroy(&r->tc_mu);
	cf_buf_release(&r->new_index);
	for (int i = 0; i < r->nspare; i++)
		cf_buf_release(&r->spare[i]);
	cf_key_free(r->key);
	cf_backend_free(r->be);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

struct cf_backend *cf_repo_backend(struct cf_repo *r) { return r->be; }
const struct cf_repo_config *cf_repo_config(const struct cf_repo *r) { return &r->cfg; }
const uint64_t *cf_repo_gear(const struct cf_repo *r) { return r->gear; }
const char *cf_repo_key_name(const struct cf_repo *r) { return r->keyname; }

int cf_repo_seal(struct cf_repo *r, int type, const uint8_t *id, const void *p, size_t n, struct cf_buf *out)
{
	int rc;
	cf_buf_reset(out);
	if ((rc = cf_buf_grow(out, n + CF_SEAL_OVERHEAD)))
		return rc;
	if ((rc = cf_seal(r->key, (uint8_t)type, id, p, n, out->data)))
		return rc;
	out->len = n + CF_SEAL_OVERHEAD;
	return CF_OK;
}

int cf_repo_seal_local(struct cf_repo *r, const void *p, size_t n, struct cf_buf *out)
{
	return cf_repo_seal(r, CF_OBJ_LOCAL, NULL, p, n, out);
}

int cf_repo_open_local(struct cf_repo *r, const void *p, size_t n, struct cf_buf *out)
{
	int rc;
	if (n < CF_SEAL_OVERHEAD)
		return cf_err(CF_ECORRUPT, "too short (%zu bytes)", n);
	cf_buf_reset(out);
	if ((rc = cf_buf_grow(out, n - CF_SEAL_OVERHEAD + 1)))
		return rc;
	if (cf_unseal(r->key, CF_OBJ_LOCAL, NULL, p, n, out->data))
		return cf_err(CF_ECORRUPT, "authentication failed");
	out->len = n - CF_SEAL_OVERHEAD;
	return CF_OK;
}

int cf_repo_put_hashed(struct cf_repo *r, const char *dir, int type, const void *p, size_t n,
		       char hex[CF_ID_HEX], uint8_t id[CF_ID_LEN])
{
	struct cf_buf sealed = CF_BUF_INIT;
	uint8_t h[CF_ID_LEN];
	char path[128];
	int rc;

	if (r->dry_run) /* index files, snapshots, locks: a dry run writes none */
		return cf_err(CF_EINVAL, "a dry run writes nothing to the repository (%s)", dir);
	if ((rc = cf_repo_seal(r, type, NULL, p, n, &sealed)) ||
	    (rc = cf_hash_with(cf_repo_name_alg(r), sealed.data, sealed.len, h)))
		goto out;
	cf_hex(h, CF_ID_LEN, hex);
	snprintf(path, sizeof(path), "%s/%s", dir, hex);
	if ((rc = cf_be_put(r->be, path, sealed.data, sealed.len)))
		goto out;
	if (id)
		memcpy(id, h, CF_ID_LEN);
out:
	cf_buf_release(&sealed);
	return rc;
}

static int get_sealed(struct cf_repo *r, const char *path, const uint8_t *want, int type,
		      struct cf_buf *out)
{
	struct cf_buf sealed = CF_BUF_INIT;
	int rc;

	if ((rc = cf_be_get(r->be, path, &sealed)))
		goto out;
	if (want) {
		uint8_t h[CF_ID_LEN];
		char hex[CF_ID_HEX];
		if ((rc = cf_hash_with(cf_repo_name_alg(r), sealed.data, sealed.len, h)))
			goto out;
		if (memcmp(h, want, CF_ID_LEN)) {
			cf_hex(h, CF_ID_LEN, hex);
			rc = cf_err(CF_ECORRUPT, "%s does not match its name: its %zu bytes hash to %.16s "
				    "(damaged, or another object stored under this name)", path, sealed.len, hex);
			goto out;
		}
	}
	if (sealed.len < CF_SEAL_OVERHEAD) {
		rc = cf_err(CF_ECORRUPT, "%s is damaged: %zu bytes is too short", path, sealed.len);
		goto out;
	}
	cf_buf_reset(out);
	if ((rc = cf_buf_grow(out, sealed.len - CF_SEAL_OVERHEAD)))
		goto out;
	if ((rc = cf_unseal(r->key, (uint8_t)type, NULL, sealed.data, sealed.len, out->data))) {
		rc = cf_err(CF_ECORRUPT, "%s is damaged: authentication failed", path);
		goto out;
	}
	out->len = sealed.len - CF_SEAL_OVERHEAD;
	out->data[out->len] = 0;
out:
	cf_buf_release(&sealed);
	return rc;
}

int cf_repo_get_sealed(struct cf_repo *r, const char *path, int type, struct cf_buf *out)
{
	return get_sealed(r, path, NULL, type, out);
}

int cf_repo_get_named(struct cf_repo *r, const char *dir, const char *name, int type, struct cf_buf *out)
{
	uint8_t want[CF_ID_LEN];
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (strlen(name) != CF_ID_HEX - 1 || cf_unhex(name, want, CF_ID_LEN))
		return cf_err(CF_ECORRUPT, "%s is not named by a content hash", path);
	return get_sealed(r, path, want, type, out);
}

/* ---- config ---- */

static int config_encode(const struct cf_repo_config *c, struct cf_buf *out)
{
	char idhex[CF_ID_HEX];
	cf_hex(c->id, CF_ID_LEN, idhex);
	json_t *j = json_pack("{s:i, s:s, s:{s:I, s:I, s:I}, s:i}",
			      "version", c->version, "id", idhex,
			      "chunker", "min", (json_int_t)c->chunker.min,
			      "avg", (json_int_t)c->chunker.avg, "max", (json_int_t)c->chunker.max,
			      "compression", c->compression);
	if (!j)
		return cf_err(CF_ENOMEM, "out of memory");
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!s)
		return cf_err(CF_ENOMEM, "out of memory");
	int rc = cf_buf_adds(out, s);
	free(s);
	return rc;
}

int cf_config_decode(const uint8_t *p, size_t n, struct cf_repo_config *c)
{
	json_error_t e;
	json_t *j = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &e);
	const char *idhex = NULL;
	json_int_t ver = 0, mn = 0, avg = 0, mx = 0, comp = 3;
	int rc = CF_OK;

	if (!j)
		return cf_err(CF_ECORRUPT, "config does not parse: %s", e.text);
	if (json_unpack_ex(j, &e, 0, "{s:I, s:s, s:{s:I, s:I, s:I}, s?:I}", "version", &ver,
			   "id", &idhex, "chunker", "min", &mn, "avg", &avg, "max", &mx,
			   "compression", &comp) < 0) {
		rc = cf_err(CF_ECORRUPT, "config is malformed: %s", e.text);
		goto out;
	}
	if (ver > CF_REPO_VERSION || ver < 1) {
		rc = cf_err(CF_EFORMAT, "repository format version %lld is not supported by this "
			    "coffer (it reads version %d)", (long long)ver, CF_REPO_VERSION);
		goto out;
	}
	c->version = (int)ver;
	if (cf_unhex(idhex, c->id, CF_ID_LEN)) {
		rc = cf_err(CF_ECORRUPT, "config has a malformed id");
		goto out;
	}
	if (mn <= 0 || avg <= 0 || mx <= 0 || mx > (1 << 26) || comp < 0 || comp > 22) {
		rc = cf_err(CF_ECORRUPT, "config has out-of-range parameters");
		goto out;
	}
	c->chunker.min = (uint32_t)mn;
	c->chunker.avg = (uint32_t)avg;
	c->chunker.max = (uint32_t)mx;
	c->compression = (int)comp;
	if (cf_chunker_params_check(&c->chunker)) {
		rc = cf_err(CF_ECORRUPT, "config has invalid chunker parameters");
		goto out;
	}
out:
	json_decref(j);
	return rc;
}

static void whoami(char *host, size_t hl, char *user, size_t ul)
{
	if (gethostname(host, hl) < 0)
		snprintf(host, hl, "unknown");
	host[hl - 1] = 0;
	struct passwd pw, *res = NULL;
	char buf[1024];
	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(user, ul, "%s", pw.pw_name);
	else
		snprintf(user, ul, "%u", (unsigned)getuid());
}

static int write_keyfile(struct cf_repo *r, const char *password, size_t pwlen,
			 const struct cf_kdf_params *kdf, char name[CF_ID_HEX])
{
	struct cf_buf kf = CF_BUF_INIT;
	char host[256], user[256], path[128];
	uint8_t h[CF_ID_LEN];
	int rc;

	whoami(host, sizeof(host), user, sizeof(user));
	if ((rc = cf_keyfile_seal(r->key, password, pwlen, kdf, host, user, &kf)) ||
	    (rc = cf_hash_with(cf_repo_name_alg(r), kf.data, kf.len, h)))
		goto out;
	cf_hex(h, CF_ID_LEN, name);
	snprintf(path, sizeof(path), "keys/%s", name);
	rc = cf_be_put(r->be, path, kf.data, kf.len);
out:
	cf_buf_release(&kf);
	return rc;
}

int cf_repo_init(struct cf_backend *be, const char *password, size_t pwlen,
		 const struct cf_repo_init_opts *opts, struct cf_repo **out)
{
	struct cf_repo *r;
	struct cf_buf cfg = CF_BUF_INIT, sealed = CF_BUF_INIT;
	struct cf_kdf_params kdf = CF_KDF_DEFAULT;
	int rc;

	*out = NULL;
	if ((rc = cf_crypto_init())) {
		cf_backend_free(be);
		return rc;
	}
	if (!(r = repo_alloc(be))) {
		cf_backend_free(be);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	r->cfg.version = CF_REPO_VERSION;
	if (opts && opts->version) {
		if (opts->version < 2 || opts->version > CF_REPO_VERSION) {
			rc = cf_err(CF_EINVAL, "repository version %d: this coffer creates versions 2 to %d",
				    opts->version, CF_REPO_VERSION);
			goto fail;
		}
		r->cfg.version = opts->version;
	}
	cf_random(r->cfg.id, CF_ID_LEN);
	default_params(&r->cfg.chunker);
	r->cfg.compression = 3;
	if (opts) {
		if (opts->chunker.avg)
			r->cfg.chunker = opts->chunker;
		if (opts->compression >= 0)
			r->cfg.compression = opts->compression;
		if (opts->kdf_opslimit)
			kdf.opslimit = opts->kdf_opslimit;
		if (opts->kdf_memlimit)
			kdf.memlimit = opts->kdf_memlimit;
	}
	if ((rc = cf_chunker_params_check(&r->cfg.chunker)))
		goto fail;
	if ((rc = be->ops->create(be)))
		goto fail;
	if ((rc = cf_key_new_random(&r->key)))
		goto fail;
	/* key first, config last: "config exists" is what makes a repository */
	if ((rc = write_keyfile(r, password, pwlen, &kdf, r->keyname)))
		goto fail;
	if ((rc = config_encode(&r->cfg, &cfg)))
		goto fail;
	if ((rc = cf_repo_seal(r, CF_OBJ_CONFIG, NULL, cfg.data, cfg.len, &sealed)))
		goto fail;
	if ((rc = cf_be_put(be, "config", sealed.data, sealed.len)))
		goto fail;
	cf_key_gear(r->key, r->gear);
	cf_buf_release(&cfg);
	cf_buf_release(&sealed);
	*out = r;
	return CF_OK;
fail:
	cf_buf_release(&cfg);
	cf_buf_release(&sealed);
	cf_repo_free(r);
	return rc;
}

struct keyscan {
	struct cf_repo *r;
	const char *password;
	size_t pwlen;
	int rc;
	int tried;
	int unreadable;           /* key files that could not be read at all */
	char first_error[512];    /* why the first one could not */
	char hint[CF_ID_HEX];     /* the key file tried first ("" if none) */
};

/* The key file that opened this repository last is remembered in the local
 * cache directory (COFFER_CACHE_DIR, as the directory cache's), under
 * keys/<BLAKE2b of the location>: only its name, never a secret.  It is
 * tried first, so key files a store adds that sort before it cost nothing. */
static bool key_hint_path(const struct cf_backend *be, char *path, size_t n, char *dir, size_t dn)
{
	char base[4096], hex[CF_ID_HEX];
	uint8_t h[CF_HASH_LEN];
	if (!be->location || !cf_cache_dir_default(base, sizeof(base)))
		return false;
	cf_hash(be->location, strlen(be->location), h);
	cf_hex(h, CF_ID_LEN, hex);
	return (size_t)snprintf(dir, dn, "%s/keys", base) < dn &&
	       (size_t)snprintf(path, n, "%s/keys/%s", base, hex) < n;
}

static void key_hint_read(const struct cf_backend *be, char name[CF_ID_HEX])
{
	char path[4200], dir[4200], buf[CF_ID_HEX + 1];
	uint8_t id[CF_ID_LEN];
	int fd;
	ssize_t got;

	name[0] = 0;
	if (!key_hint_path(be, path, sizeof(path), dir, sizeof(dir)) ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return;
	got = cf_read_full(fd, buf, sizeof(buf));
	close(fd);
	if (got >= CF_ID_HEX - 1) {
		buf[CF_ID_HEX - 1] = 0;
		if (!cf_unhex(buf, id, CF_ID_LEN))
			memcpy(name, buf, CF_ID_HEX);
	}
}

static void key_hint_write(const struct cf_backend *be, const char *name)
{
	char path[4200], dir[4200], line[CF_ID_HEX + 1];
	if (!key_hint_path(be, path, sizeof(path), dir, sizeof(dir)))
		return;
	snprintf(line, sizeof(line), "%s\n", name);
	/* a cache: failing to write it only costs the next open some time */
	if (cf_mkdirs(dir, 0700) != CF_OK || cf_write_atomic(path, line, strlen(line), 0600) != CF_OK)
		cf_err_clear();
}

static int try_key(const char *name, uint64_t size, void *ctx)
{
	struct keyscan *ks = ctx;
	struct cf_buf kf = CF_BUF_INIT;
	char path[600];
	int rc;

	(void)size;
	if (ks->hint[0] && !strcmp(name, ks->hint))
		return 0; /* tried first already */
	ks->tried++;
	snprintf(path, sizeof(path), "keys/%s", name);
	if ((rc = cf_be_get(ks->r->be, path, &kf))) {
		cf_warn("warning: cannot read key file %s: %s", name, cf_errmsg(rc));
		if (!ks->unreadable++) {
			ks->rc = rc;
			snprintf(ks->first_error, sizeof(ks->first_error), "cannot read key file %.16s: %s",
				 name, cf_errmsg(rc));
		}
		cf_buf_release(&kf);
		return 0;
	}
	rc = cf_keyfile_open(kf.data, kf.len, ks->password, ks->pwlen, &ks->r->key);
	cf_buf_release(&kf);
	if (rc == CF_OK) {
		snprintf(ks->r->keyname, sizeof(ks->r->keyname), "%s", name);
		return 1; /* stop: found */
	}
	if (rc == CF_ENOMEM) {
		/* not the file's fault: the key may well fit, so say why it was not tried */
		if (!ks->unreadable++) {
			ks->rc = rc;
			snprintf(ks->first_error, sizeof(ks->first_error), "cannot open key file %.16s: %s",
				 name, cf_errmsg(rc));
		}
		return 0;
	}
	if (rc != CF_EBADPASS)
		cf_warn("warning: key file %s is damaged: %s", name, cf_errmsg(rc));
	return 0;
}

int cf_repo_open(struct cf_backend *be, const char *password, size_t pwlen, struct cf_repo **out)
{
	struct cf_repo *r;
	struct cf_buf cfg = CF_BUF_INIT;
	struct keyscan ks;
	char hint[CF_ID_HEX];
	int rc;

	*out = NULL;
	if ((rc = cf_crypto_init())) {
		cf_backend_free(be);
		return rc;
	}
	if (!(r = repo_alloc(be))) {
		cf_backend_free(be);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	if ((rc = cf_be_stat(be, "config", NULL))) {
		if (rc == CF_ENOENT)
			rc = cf_err(CF_ENOREPO, "no repository at %s (no config; run 'coffer init' first?)",
				    be->location);
		goto fail;
	}
	ks = (struct keyscan){ .r = r, .password = password, .pwlen = pwlen };
	key_hint_read(be, hint);
	rc = 0;
	if (hint[0]) {
		/* a hint that no longer opens (key removed, password changed) is
		 * forgotten quietly; the listing then tries every other file */
		struct cf_buf kf = CF_BUF_INIT;
		char path[128];
		snprintf(path, sizeof(path), "keys/%s", hint);
		int krc = cf_be_get(be, path, &kf);
		if (krc == CF_OK)
			krc = cf_keyfile_open(kf.data, kf.len, password, pwlen, &r->key);
		if (krc == CF_OK) {
			snprintf(r->keyname, sizeof(r->keyname), "%s", hint);
			rc = 1;
		} else {
			if (krc == CF_ECORRUPT)
				cf_warn("warning: key file %s is damaged: %s", hint, cf_errmsg(krc));
			cf_err_clear();
			/* tried and refused: not tried twice.  Not read (a store
			 * error, out of memory): the listing tries it again and says
			 * why, rather than blaming the password */
			if (krc == CF_EBADPASS || krc == CF_ECORRUPT) {
				memcpy(ks.hint, hint, sizeof(hint));
				ks.tried++;
			}
		}
		cf_buf_release(&kf);
	}
	if (rc != 1)
		rc = cf_be_list(be, "keys", try_key, &ks);
	if (rc < 0 || (rc != 1 && rc != 0))
		goto fail;
	if (rc == 1 && strcmp(hint, r->keyname))
		key_hint_write(be, r->keyname);
	if (rc != 1) {
		/* a key file we could not read might be the one that fits: say
		 * so, rather than blaming the password */
		if (ks.unreadable)
			rc = cf_err(ks.rc, "%s", ks.first_error);
		else
			rc = ks.tried ? cf_err(CF_EBADPASS, "wrong password or no matching key")
				      : cf_err(CF_ECORRUPT, "repository at %s has no key files", be->location);
		goto fail;
	}
	if ((rc = cf_repo_get_sealed(r, "config", CF_OBJ_CONFIG, &cfg)))
		goto fail;
	if ((rc = cf_config_decode(cfg.data, cfg.len, &r->cfg)))
		goto fail;
	cf_key_gear(r->key, r->gear);
	cf_buf_release(&cfg);
	*out = r;
	return CF_OK;
fail:
	cf_buf_release(&cfg);
	cf_repo_free(r);
	return rc;
}

/* ---- keys ---- */

struct keylist {
	struct cf_repo *r;
	struct cf_keyinfo *k;
	size_t n, cap;
	int rc;
};

static int collect_key(const char *name, uint64_t size, void *ctx)
{
	struct keylist *kl = ctx;
	struct cf_buf kf = CF_BUF_INIT;
	char path[600];
	(void)size;
	if (strlen(name) != CF_ID_HEX - 1)
		return 0;
	if (CF_GROW(kl->k, kl->n + 1, kl->cap))
		return CF_ENOMEM;
	struct cf_keyinfo *ki = &kl->k[kl->n];
	memset(ki, 0, sizeof(*ki));
	snprintf(ki->name, sizeof(ki->name), "%s", name);
	ki->current = strcmp(name, kl->r->keyname) == 0;
	snprintf(path, sizeof(path), "keys/%s", name);
	int rc = cf_be_get(kl->r->be, path, &kf);
	if (rc == CF_OK) {
		/* a key file is named by the hash of its bytes: one moved under
		 * another's name would be listed, and removed, as the other */
		uint8_t h[CF_ID_LEN], want[CF_ID_LEN];
		if (cf_hash_with(cf_repo_name_alg(kl->r), kf.data, kf.len, h) != CF_OK ||
		    cf_unhex(name, want, CF_ID_LEN) || memcmp(h, want, CF_ID_LEN))
			cf_warn("warning: key file %s does not match its name (another key file stored "
				"under this name?)", name);
		rc = cf_keyfile_info(kf.data, kf.len, &ki->host, &ki->user, &ki->created);
	}
	cf_buf_release(&kf);
	if (rc)
		cf_warn("warning: key file %s: %s", name, cf_errmsg(rc));
	kl->n++;
	return 0;
}

int cf_repo_keys(struct cf_repo *r, struct cf_keyinfo **out, size_t *n)
{
	struct keylist kl = { r, NULL, 0, 0, 0 };
	int rc = cf_be_list(r->be, "keys", collect_key, &kl);
	if (rc) {
		cf_keyinfo_free(kl.k, kl.n);
		return rc;
	}
	*out = kl.k;
	*n = kl.n;
	return CF_OK;
}

void cf_keyinfo_free(struct cf_keyinfo *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(k[i].host);
		free(k[i].user);
		free(k[i].created);
	}
	free(k);
}

int cf_repo_key_add(struct cf_repo *r, const char *password, size_t pwlen,
		    uint64_t opslimit, uint64_t memlimit, char name_out[CF_ID_HEX])
{
	struct cf_kdf_params kdf = CF_KDF_DEFAULT;
	if (opslimit)
		kdf.opslimit = opslimit;
	if (memlimit)
		kdf.memlimit = memlimit;
	return write_keyfile(r, password, pwlen, &kdf, name_out);
}

int cf_repo_key_remove(struct cf_repo *r, const char *prefix)
{
	struct cf_keyinfo *k = NULL;
	size_t n = 0, hits = 0, which = 0;
	int rc = cf_repo_keys(r, &k, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (strncmp(k[i].name, prefix, strlen(prefix)) == 0) {
			hits++;
			which = i;
		}
	if (hits == 0)
		rc = cf_err(CF_ENOENT, "no key %s", prefix);
	else if (hits > 1)
		rc = cf_err(CF_EINVAL, "key prefix %s is ambiguous", prefix);
	else if (k[which].current)
		rc = cf_err(CF_EINVAL, "refusing to remove key %.8s: it is the key in use "
			    "(open the repository with another password to remove it)", k[which].name);
	else {
		char path[128];
		snprintf(path, sizeof(path), "keys/%s", k[which].name);
		rc = cf_be_remove(r->be, path);
	}
	cf_keyinfo_free(k, n);
	return rc;
}
