/*
 * crypto.h - every use of libsodium in coffer goes through here.
 *
 * A repository has one random master key (struct cf_key).  It is stored in
 * keys/<id> sealed under a key-encryption key derived from a password with
 * Argon2id; several key files (passwords) may seal the same master key.
 * From the master key, subkeys are derived with crypto_kdf:
 *   - the blob-id key: blob ids are HMAC-SHA-256 of the plaintext under it
 *     (OpenSSL's, for speed: doc/benchmarks.md), so the store cannot
 *     confirm the content of a known file;
 *   - the data key: every stored object is sealed with XChaCha20-Poly1305,
 *     random 24-byte nonce, associated data = type byte || 32-byte id (zeros
 *     when the object has no id), so a blob moved to another id or type fails;
 *   - the chunker seed: the gear table is a keystream of it.
 *
 * Sealed layout: nonce(24) || ciphertext(n) || tag(16); CF_SEAL_OVERHEAD = 40.
 * Keys live in sodium_malloc'd memory and are wiped on cf_key_free().
 * Call cf_crypto_init() once before anything else (it is idempotent).
 * Nothing here aborts: a failure inside libsodium or libcrypto (in practice
 * an allocation inside OpenSSL) is CF_ECRYPTO with a message, and an id or
 * hash is never handed out wrong (it is zeroed then).
 */
#ifndef CF_CRYPTO_H
#define CF_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"

#define CF_SEAL_OVERHEAD 40
#define CF_SEAL_NONCE 24 /* where the ciphertext starts in a sealed object */
#define CF_HASH_LEN 32

struct cf_key;

struct cf_kdf_params {
	uint64_t opslimit; /* Argon2id passes */
	uint64_t memlimit; /* bytes */
};
/* Default: 3 passes, 64 MiB (about a third of a second here). */
#define CF_KDF_DEFAULT { 3, 64ull << 20 }

/* The Argon2id limits a key file may carry (doc/repo-format.md).  The floor
 * is Argon2id's own minimum; the ceiling is what `init` / `key add` create at
 * most: 10 passes, 1 GiB, and passes x memory at most 4 GiB (libsodium's
 * "sensitive" level, 4 passes of 1 GiB: about 5 s on a 2-core VM, 28x the
 * default's cost).  A key file from the store asking for more is refused
 * before any work, so a hostile store cannot make an open cost minutes. */
#define CF_KDF_OPS_MIN 1ull
#define CF_KDF_OPS_MAX 10ull
#define CF_KDF_MEM_MIN 8192ull
#define CF_KDF_MEM_MAX (1ull << 30)
#define CF_KDF_COST_MAX (4ull << 30) /* opslimit * memlimit */

/* CF_OK if p is within the floor and the ceiling above, else CF_EINVAL with
 * a message naming the limit that is exceeded. */
int cf_kdf_params_check(const struct cf_kdf_params *p);

/* sodium_init(); CF_OK or CF_ECRYPTO. */
int cf_crypto_init(void);

/* A fresh random master key.  Caller frees with cf_key_free(). */
int cf_key_new_random(struct cf_key **out);
void cf_key_free(struct cf_key *k);

/* Seal k under password into a key file (JSON text appended to out):
 * {"version":1,"kdf":"argon2id","opslimit":..,"memlimit":..,"salt":"<b64>",
 *  "hostname":..,"username":..,"created":"RFC3339","data":"<b64 sealed master>"}.
 * host/user may be NULL (stored as null); kdf NULL means CF_KDF_DEFAULT.
 * CF_EINVAL if kdf is outside what cf_keyfile_open accepts
 * (cf_kdf_params_check), CF_ENOMEM. */
int cf_keyfile_seal(const struct cf_key *k, const char *password, size_t pwlen,
		    const struct cf_kdf_params *kdf, const char *host, const char *user,
		    struct cf_buf *out);

/* Open a key file with password.  CF_EBADPASS if the password does not open
 * it, CF_ECORRUPT if the file does not parse or its limits are out of range
 * (checked before any key derivation), CF_EFORMAT if its version is not 1,
 * CF_ENOMEM.  *out freed with cf_key_free(). */
int cf_keyfile_open(const void *json, size_t len, const char *password, size_t pwlen,
		    struct cf_key **out);

/* The unsealed facts of a key file, for `key list`.  Strings are malloc'd
 * (caller frees; "" when host/user were not recorded); created is the
 * RFC 3339 text.  CF_ECORRUPT if the file does not parse, CF_ENOMEM. */
int cf_keyfile_info(const void *json, size_t len, char **host, char **user, char **created);

/* HMAC-SHA-256 of the plaintext under the blob-id key: the blob id.  CF_OK,
 * or CF_ECRYPTO with a message (id zeroed) when libcrypto fails. */
int cf_blob_id(const struct cf_key *k, const void *p, size_t n, uint8_t id[CF_HASH_LEN]);

/* Unkeyed hashes naming stored objects (packs, index files, snapshots, key
 * files: hashes of their stored, already-sealed bytes): BLAKE2b-256 in
 * repository format 1, SHA-256 from format 2 (doc/repo-format.md). */
enum cf_hash_alg { CF_HASH_BLAKE2B = 1, CF_HASH_SHA256 = 2 };
/* CF_OK, or CF_ECRYPTO with a message (out zeroed) when libcrypto fails. */
int cf_hash_with(int alg, const void *p, size_t n, uint8_t out[CF_HASH_LEN]);
/* BLAKE2b-256 (local digests, e.g. the directory cache's). */
void cf_hash(const void *p, size_t n, uint8_t out[CF_HASH_LEN]);

/* Streaming unkeyed hash; new returns NULL on ENOMEM (message set).  A
 * failed update is remembered: update returns CF_ECRYPTO (message set) and
 * so does final, which always frees h (out zeroed on failure). */
struct cf_hasher;
struct cf_hasher *cf_hasher_new_with(int alg);
struct cf_hasher *cf_hasher_new(void); /* BLAKE2b-256 */
int cf_hasher_update(struct cf_hasher *h, const void *p, size_t n);
int cf_hasher_final(struct cf_hasher *h, uint8_t out[CF_HASH_LEN]);

/* Seal n bytes of in into out (n + CF_SEAL_OVERHEAD bytes).  in and out may
 * not overlap, except in place: in == out + CF_SEAL_NONCE (the plaintext
 * already where its ciphertext goes, so no second buffer is needed).  id may
 * be NULL (treated as 32 zero bytes).  CF_OK. */
int cf_seal(const struct cf_key *k, uint8_t type, const uint8_t *id,
	    const void *in, size_t n, uint8_t *out);

/* Open a sealed object of n bytes into out (n - CF_SEAL_OVERHEAD bytes).
 * CF_ECORRUPT if it is too short or the tag, type or id do not match. */
int cf_unseal(const struct cf_key *k, uint8_t type, const uint8_t *id,
	      const void *in, size_t n, uint8_t *out);

/* The 256-entry gear table for the chunker, derived from the master key. */
void cf_key_gear(const struct cf_key *k, uint64_t gear[256]);

/* n random bytes. */
void cf_random(void *p, size_t n);

/* Constant-time equality of n bytes: 1 if equal. */
int cf_memeq(const void *a, const void *b, size_t n);

/* Base64 (original alphabet, padded) of n bytes appended to out, and back.
 * cf_unbase64 replaces out; CF_EINVAL if s is not valid base64. */
int cf_base64(const void *p, size_t n, struct cf_buf *out);
int cf_unbase64(const char *s, size_t len, struct cf_buf *out);

/* HMAC-SHA-256 of n bytes at p under a key of keylen bytes (any length, as
 * RFC 2104 allows) into out: used to sign webhooks (Standard Webhooks).
 * CF_OK, or CF_ECRYPTO if libsodium fails. */
#define CF_HMAC_SHA256_LEN 32
int cf_hmac_sha256(const void *key, size_t keylen, const void *p, size_t n,
		   uint8_t out[CF_HMAC_SHA256_LEN]);

#endif
