/*
 * keyfile.c - the master key sealed under a password (keys/<id>).
 *
 * The file is JSON written and read with jansson.  Argon2id turns the
 * password and a random 16-byte salt into a 32-byte key-encryption key (KEK)
 * with the limits recorded in the file; the KEK seals the master key with
 * XChaCha20-Poly1305 (nonce || ciphertext || tag, AD "coffer key v1").
 *
 * A key file comes from the store, which we do not trust: every field is
 * checked before use, and the Argon2id limits are bounded by the ceiling of
 * crypto.h (what init can create: 10 passes, 1 GiB, passes x memory 4 GiB)
 * before anything is derived, so that a hostile file cannot make an open
 * cost minutes or gigabytes.
 * Salt and limits need no MAC of their own: changing them changes the KEK,
 * and the tag then fails as for a wrong password.
 */
#include "crypto/crypto.h"
#include "crypto/crypto_int.h"
#include "common/error.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KF_VERSION 1
#define KF_SALT_LEN crypto_pwhash_SALTBYTES
#define KF_SEALED_LEN (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + CF_KEY_LEN + \
		       crypto_aead_xchacha20poly1305_ietf_ABYTES)

static const char kf_ad[] = "coffer key v1";

_Static_assert(KF_SALT_LEN == 16, "Argon2id salt is 16 bytes");
_Static_assert(CF_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "KEK size");

_Static_assert(CF_KDF_OPS_MIN >= crypto_pwhash_OPSLIMIT_MIN, "Argon2id's floor");
_Static_assert(CF_KDF_MEM_MIN >= crypto_pwhash_MEMLIMIT_MIN, "Argon2id's floor");

int cf_kdf_params_check(const struct cf_kdf_params *p)
{
	uint64_t ops = p->opslimit, mem = p->memlimit;
	if (ops < CF_KDF_OPS_MIN || ops > CF_KDF_OPS_MAX)
		return cf_err(CF_EINVAL, "Argon2id opslimit %llu is out of range (%llu to %llu passes)",
			      (unsigned long long)ops, CF_KDF_OPS_MIN, CF_KDF_OPS_MAX);
	if (mem < CF_KDF_MEM_MIN || mem > CF_KDF_MEM_MAX)
		return cf_err(CF_EINVAL, "Argon2id memlimit %llu is out of range (%llu to %llu bytes)",
			      (unsigned long long)mem, CF_KDF_MEM_MIN, CF_KDF_MEM_MAX);
	/* both are bounded above, so the product cannot overflow */
	if (ops * mem > CF_KDF_COST_MAX)
		return cf_err(CF_EINVAL, "Argon2id cost %llu passes x %llu MiB is above the ceiling "
			      "(passes x memory at most %llu MiB)", (unsigned long long)ops,
			      (unsigned long long)(mem >> 20), CF_KDF_COST_MAX >> 20);
	return CF_OK;
}

/* Derive the KEK into guarded memory; *kek freed with sodium_free(). */
static int derive_kek(const char *password, size_t pwlen, const uint8_t salt[KF_SALT_LEN],
		      uint64_t ops, uint64_t mem, uint8_t **kek)
{
	*kek = sodium_malloc(CF_KEY_LEN);
	if (!*kek)
		return cf_err(CF_ENOMEM, "out of memory (guarded key memory)");
	if (crypto_pwhash(*kek, CF_KEY_LEN, password, pwlen, salt, ops, (size_t)mem,
			  crypto_pwhash_ALG_ARGON2ID13) != 0) {
		sodium_free(*kek);
		*kek = NULL;
		/* libsodium fails here only when it cannot get the memory. */
		return cf_err(CF_ENOMEM, "Argon2id: cannot allocate %llu bytes",
			      (unsigned long long)mem);
	}
	return CF_OK;
}

static int set_str(json_t *o, const char *name, const char *s)
{
	json_t *v = s ? json_string(s) : json_null();
	/* json_string refuses invalid UTF-8; record such a name as null. */
	if (!v)
		v = json_null();
	if (!v || json_object_set_new(o, name, v) != 0)
		return cf_err(CF_ENOMEM, "out of memory (key file)");
	return CF_OK;
}

static int set_b64(json_t *o, const char *name, const void *p, size_t n)
{
	struct cf_buf b = CF_BUF_INIT;
	int r;

	if ((r = cf_base64(p, n, &b)) != CF_OK)
		goto out;
	r = set_str(o, name, (const char *)b.data);
out:
	cf_buf_release(&b);
	return r;
}

static int set_int(json_t *o, const char *name, uint64_t v)
{
	if (json_object_set_new(o, name, json_integer((json_int_t)v)) != 0)
		return cf_err(CF_ENOMEM, "out of memory (key file)");
	return CF_OK;
}

int cf_keyfile_seal(const struct cf_key *k, const char *password, size_t pwlen,
		    const struct cf_kdf_params *kdf, const char *host, const char *user,
		    struct cf_buf *out)
{
	static const struct cf_kdf_params def = CF_KDF_DEFAULT;
	uint8_t salt[KF_SALT_LEN], sealed[KF_SEALED_LEN];
	uint8_t *kek = NULL;
	unsigned long long clen;
	char created[32];
	struct tm tm;
	time_t now = time(NULL);
	json_t *o = NULL;
	char *text = NULL;
	int r;

	if (!kdf)
		kdf = &def;
	if ((r = cf_kdf_params_check(kdf)) != CF_OK)
		return r;
	if ((r = cf_crypto_init()) != CF_OK)
		return r;
	randombytes_buf(salt, sizeof(salt));
	if ((r = derive_kek(password, pwlen, salt, kdf->opslimit, kdf->memlimit, &kek)) != CF_OK)
		goto out;
	randombytes_buf(sealed, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
		sealed + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen, k->master,
		CF_KEY_LEN, (const uint8_t *)kf_ad, strlen(kf_ad), NULL, sealed, kek);
	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);

	r = cf_err(CF_ENOMEM, "out of memory (key file)");
	if (!(o = json_object()))
		goto out;
	if ((r = set_int(o, "version", KF_VERSION)) != CF_OK ||
	    (r = set_str(o, "kdf", "argon2id")) != CF_OK ||
	    (r = set_int(o, "opslimit", kdf->opslimit)) != CF_OK ||
	    (r = set_int(o, "memlimit", kdf->memlimit)) != CF_OK ||
	    (r = set_b64(o, "salt", salt, sizeof(salt))) != CF_OK ||
	    (r = set_str(o, "hostname", host)) != CF_OK ||
	    (r = set_str(o, "username", user)) != CF_OK ||
	    (r = set_str(o, "created", created)) != CF_OK ||
	    (r = set_b64(o, "data", sealed, sizeof(sealed))) != CF_OK)
		goto out;
	if (!(text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER))) {
		r = cf_err(CF_ENOMEM, "out of memory (key file)");
		goto out;
	}
	r = cf_buf_adds(out, text);
out:
	free(text);
	json_decref(o);
	if (kek)
		sodium_free(kek);
	return r;
}

static int parse(const void *json, size_t len, json_t **root)
{
	json_error_t e;

	*root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
	if (!*root)
		return cf_err(CF_ECORRUPT, "key file: not JSON (line %d: %s)", e.line, e.text);
	if (!json_is_object(*root)) {
		json_decref(*root);
		*root = NULL;
		return cf_err(CF_ECORRUPT, "key file: not a JSON object");
	}
	return CF_OK;
}

static int get_u64(json_t *o, const char *name, uint64_t *v)
{
	json_t *j = json_object_get(o, name);
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return cf_err(CF_ECORRUPT, "key file: \"%s\" is not a non-negative integer", name);
	*v = (uint64_t)json_integer_value(j);
	return CF_OK;
}

/* Decode base64 field name, which must be exactly n bytes, into p. */
static int get_b64(json_t *o, const char *name, void *p, size_t n)
{
	struct cf_buf b = CF_BUF_INIT;
	json_t *j = json_object_get(o, name);
	int r = CF_OK;

	if (json_is_string(j))
		r = cf_unbase64(json_string_value(j), json_string_length(j), &b);
	if (r == CF_ENOMEM)
		goto out; /* out of memory is not a damaged key file */
	if (!json_is_string(j) || r != CF_OK || b.len != n) {
		r = cf_err(CF_ECORRUPT, "key file: \"%s\" is not %zu bytes of base64", name, n);
		goto out;
	}
	memcpy(p, b.data, n);
out:
	cf_buf_release(&b);
	return r;
}

int cf_keyfile_open(const void *json, size_t len, const char *password, size_t pwlen,
		    struct cf_key **out)
{
	uint8_t salt[KF_SALT_LEN], sealed[KF_SEALED_LEN];
	uint64_t version = 0, ops = 0, mem = 0;
	uint8_t *kek = NULL;
	struct cf_key *k = NULL;
	unsigned long long mlen;
	json_t *o = NULL;
	const char *kdf;
	int r;

	*out = NULL;
	if ((r = parse(json, len, &o)) != CF_OK)
		goto out;
	if ((r = get_u64(o, "version", &version)) != CF_OK)
		goto out;
	if (version != KF_VERSION) {
		r = cf_err(CF_EFORMAT, "key file: unsupported version %llu",
			   (unsigned long long)version);
		goto out;
	}
	kdf = json_string_value(json_object_get(o, "kdf"));
	if (!kdf || strcmp(kdf, "argon2id") != 0) {
		r = cf_err(CF_ECORRUPT, "key file: unknown kdf");
		goto out;
	}
	if ((r = get_u64(o, "opslimit", &ops)) != CF_OK ||
	    (r = get_u64(o, "memlimit", &mem)) != CF_OK ||
	    (r = get_b64(o, "salt", salt, sizeof(salt))) != CF_OK ||
	    (r = get_b64(o, "data", sealed, sizeof(sealed))) != CF_OK)
		goto out;
	{
		struct cf_kdf_params kp = { ops, mem };
		if (cf_kdf_params_check(&kp) != CF_OK) {
			/* refused before any work: the store does not choose our cost */
			cf_err_prefix(CF_EINVAL, "key file refused before key derivation");
			r = CF_ECORRUPT;
			goto out;
		}
	}
	if ((r = derive_kek(password, pwlen, salt, ops, mem, &kek)) != CF_OK ||
	    (r = cf_key_alloc(&k)) != CF_OK)
		goto out;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    k->master, &mlen, NULL, sealed + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
		    sizeof(sealed) - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
		    (const uint8_t *)kf_ad, strlen(kf_ad), sealed, kek) != 0) {
		r = cf_err(CF_EBADPASS, "wrong password or no matching key");
		goto out;
	}
	if ((r = cf_key_derive(k)) != CF_OK)
		goto out;
	*out = k;
	k = NULL;
out:
	cf_key_free(k);
	if (kek)
		sodium_free(kek);
	json_decref(o);
	return r;
}

/* A malloc'd copy of string field name; "" when it is missing or null. */
static int get_str(json_t *o, const char *name, int required, char **out)
{
	json_t *j = json_object_get(o, name);

	if (!json_is_string(j) && (required || (j && !json_is_null(j))))
		return cf_err(CF_ECORRUPT, "key file: \"%s\" is not a string", name);
	*out = strdup(json_is_string(j) ? json_string_value(j) : "");
	if (!*out)
		return cf_err(CF_ENOMEM, "out of memory (key file)");
	return CF_OK;
}

int cf_keyfile_info(const void *json, size_t len, char **host, char **user, char **created)
{
	char *h = NULL, *u = NULL, *c = NULL;
	json_t *o = NULL;
	int r;

	*host = *user = *created = NULL;
	if ((r = parse(json, len, &o)) != CF_OK ||
	    (r = get_str(o, "hostname", 0, &h)) != CF_OK ||
	    (r = get_str(o, "username", 0, &u)) != CF_OK ||
	    (r = get_str(o, "created", 1, &c)) != CF_OK)
		goto out;
	*host = h;
	*user = u;
	*created = c;
	h = u = c = NULL;
out:
	free(h);
	free(u);
	free(c);
	json_decref(o);
	return r;
}
