/*
 * crypto.c - keys, blob ids, hashes, sealing, the gear table, base64.
 * Key files (Argon2id) live in keyfile.c.
 */
#include "crypto/crypto.h"
#include "crypto/crypto_int.h"
#include "common/error.h"
#include "common/util.h"

#include <sodium.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* crypto_kdf contexts are exactly 8 bytes; the string literal is padded with NULs. */
static const char kdf_context[crypto_kdf_CONTEXTBYTES] = "coffer";

#define AD_LEN (1 + CF_HASH_LEN)
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

_Static_assert(CF_SEAL_OVERHEAD == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
			   crypto_aead_xchacha20poly1305_ietf_ABYTES, "seal layout");
_Static_assert(CF_KEY_LEN == crypto_kdf_KEYBYTES, "master key size");
_Static_assert(CF_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "data key size");
_Static_assert(CF_KEY_LEN == crypto_stream_chacha20_KEYBYTES, "chunker key size");
_Static_assert(CF_HASH_LEN >= crypto_generichash_BYTES_MIN &&
		       CF_HASH_LEN <= crypto_generichash_BYTES_MAX, "hash size");

int cf_crypto_init(void)
{
	if (sodium_init() < 0)
		return cf_err(CF_ECRYPTO, "libsodium failed to initialise");
	return CF_OK;
}

int cf_key_alloc(struct cf_key **out)
{
	int r;

	*out = NULL;
	if ((r = cf_crypto_init()) != CF_OK)
		return r;
	struct cf_key *k = sodium_malloc(sizeof(*k));
	if (!k)
		return cf_err(CF_ENOMEM, "out of memory (guarded key memory)");
	sodium_memzero(k, sizeof(*k));
	*out = k;
	return CF_OK;
}

int cf_key_derive(struct cf_key *k)
{
	if (crypto_kdf_derive_from_key(k->blob_id, sizeof(k->blob_id), CF_SUBKEY_BLOB_ID,
				       kdf_context, k->master) != 0 ||
	    crypto_kdf_derive_from_key(k->data, sizeof(k->data), CF_SUBKEY_DATA,
				       kdf_context, k->master) != 0 ||
	    crypto_kdf_derive_from_key(k->chunker, sizeof(k->chunker), CF_SUBKEY_CHUNKER,
				       kdf_context, k->master) != 0)
		return cf_err(CF_ECRYPTO, "key derivation failed");
	/* Hardening only: a stray write through a bad pointer now faults instead
	 * of silently changing the key.  Failure to protect is not an error. */
	(void)sodium_mprotect_readonly(k);
	return CF_OK;
}

int cf_key_new_random(struct cf_key **out)
{
	struct cf_key *k = NULL;
	int r;

	*out = NULL;
	if ((r = cf_key_alloc(&k)) != CF_OK)
		goto out;
	crypto_kdf_keygen(k->master);
	if ((r = cf_key_derive(k)) != CF_OK)
		goto out;
	*out = k;
	k = NULL;
out:
	cf_key_free(k);
	return r;
}

void cf_key_free(struct cf_key *k)
{
	/* sodium_free makes the region writable, zeroes it and unmaps it. */
	if (k)
		sodium_free(k);
}

/* Blob ids are HMAC-SHA-256 under the blob-id key, through OpenSSL: with
 * the CPU's SHA extensions it is the fastest keyed hash at hand (the
 * figures: doc/benchmarks.md, "Blob ids: HMAC-SHA-256 through OpenSSL"). */
int cf_blob_id(const struct cf_key *k, const void *p, size_t n, uint8_t id[CF_HASH_LEN])
{
	unsigned int len = CF_HASH_LEN;
	if (!HMAC(EVP_sha256(), k->blob_id, sizeof(k->blob_id), p, n, id, &len) || len != CF_HASH_LEN) {
		sodium_memzero(id, CF_HASH_LEN); /* only on allocation failure inside OpenSSL; */
		return cf_err(CF_ECRYPTO, "HMAC-SHA-256 failed (libcrypto)"); /* never a wrong id */
	}
	return CF_OK;
}

void cf_hash(const void *p, size_t n, uint8_t out[CF_HASH_LEN])
{
	crypto_generichash(out, CF_HASH_LEN, p, n, NULL, 0);
}

/* SHA-256 through OpenSSL, which uses the CPU's SHA extensions: about twice
 * BLAKE2b's speed, and a pack is hashed as it is written, so this is CPU
 * time of every backup (doc/benchmarks.md, "Repository format 2"). */
int cf_hash_with(int alg, const void *p, size_t n, uint8_t out[CF_HASH_LEN])
{
	unsigned int len = CF_HASH_LEN;
	if (alg != CF_HASH_SHA256) {
		cf_hash(p, n, out);
		return CF_OK;
	}
	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) || len != CF_HASH_LEN) {
		sodium_memzero(out, CF_HASH_LEN); /* never a wrong name */
		return cf_err(CF_ECRYPTO, "SHA-256 failed (libcrypto)");
	}
	return CF_OK;
}

/* libsodium declares the BLAKE2b state 64-byte aligned, more than malloc promises. */
struct cf_hasher {
	crypto_generichash_state st;
	EVP_MD_CTX *md; /* SHA-256, or NULL for BLAKE2b */
	bool failed;    /* an update failed: final fails too */
};

struct cf_hasher *cf_hasher_new_with(int alg)
{
	size_t size = (sizeof(struct cf_hasher) + 63) & ~(size_t)63;
	struct cf_hasher *h = aligned_alloc(64, size);
	if (!h) {
		cf_err(CF_ENOMEM, "out of memory (hash state)");
		return NULL;
	}
	h->md = NULL;
	h->failed = false;
	if (alg == CF_HASH_SHA256) {
		if (!(h->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(h->md, EVP_sha256(), NULL)) {
			EVP_MD_CTX_free(h->md);
			free(h);
			cf_err(CF_ENOMEM, "out of memory (hash state)");
			return NULL;
		}
		return h;
	}
	crypto_generichash_init(&h->st, NULL, 0, CF_HASH_LEN);
	return h;
}

struct cf_hasher *cf_hasher_new(void)
{
	return cf_hasher_new_with(CF_HASH_BLAKE2B);
}

int cf_hasher_update(struct cf_hasher *h, const void *p, size_t n)
{
	if (h->failed)
		return cf_err(CF_ECRYPTO, "SHA-256 failed (libcrypto)");
	if (h->md) {
		if (!EVP_DigestUpdate(h->md, p, n)) {
			h->failed = true;
			return cf_err(CF_ECRYPTO, "SHA-256 failed (libcrypto)");
		}
		return CF_OK;
	}
	crypto_generichash_update(&h->st, p, n);
	return CF_OK;
}

int cf_hasher_final(struct cf_hasher *h, uint8_t out[CF_HASH_LEN])
{
	int rc = CF_OK;
	if (h->md) {
		unsigned int len = CF_HASH_LEN;
		if (h->failed || !EVP_DigestFinal_ex(h->md, out, &len) || len != CF_HASH_LEN) {
			sodium_memzero(out, CF_HASH_LEN); /* never a wrong name */
			rc = cf_err(CF_ECRYPTO, "SHA-256 failed (libcrypto)");
		}
		EVP_MD_CTX_free(h->md);
	} else {
		crypto_generichash_final(&h->st, out, CF_HASH_LEN);
	}
	free(h);
	return rc;
}

/* The associated data binds a sealed object to what it claims to be, so the
 * store cannot swap one blob for another or a tree for a data blob. */
static void make_ad(uint8_t ad[AD_LEN], uint8_t type, const uint8_t *id)
{
	ad[0] = type;
	if (id)
		memcpy(ad + 1, id, CF_HASH_LEN);
	else
		memset(ad + 1, 0, CF_HASH_LEN);
}

/*
 * Bulk sealing runs XChaCha20-Poly1305-IETF built from its two halves:
 * libsodium's HChaCha20 derives the per-nonce subkey from the first 16 nonce
 * bytes, and OpenSSL's ChaCha20-Poly1305 (RFC 8439) encrypts with the subkey
 * and the nonce 0^4 || nonce[16..24].  That is exactly libsodium's
 * construction, so the bytes are identical to crypto_aead_xchacha20poly1305_
 * ietf_encrypt (the golden repository proves it), but OpenSSL's vectorised
 * ChaCha20 and Poly1305 are several times faster than libsodium's portable
 * code (doc/benchmarks.md, "Sealing: ChaCha20-Poly1305 through OpenSSL";
 * bench/bench_crypto measures it).
 */
static _Thread_local EVP_CIPHER_CTX *tl_ctx;
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void free_ctx(void *p)
{
	EVP_CIPHER_CTX_free(p);
}

static void make_ctx_key(void)
{
	pthread_key_create(&ctx_key, free_ctx);
}

static EVP_CIPHER_CTX *thread_ctx(void)
{
	if (!tl_ctx) {
		pthread_once(&ctx_once, make_ctx_key);
		tl_ctx = EVP_CIPHER_CTX_new();
		if (tl_ctx)
			pthread_setspecific(ctx_key, tl_ctx);
	}
	return tl_ctx;
}

/* enc: 1 seal, 0 open.  in/out n bytes; tag read or written. */
static int xchacha(const struct cf_key *k, int enc, const uint8_t nonce[NONCE_LEN],
		   const uint8_t *ad, size_t adlen, const uint8_t *in, size_t n, uint8_t *out,
		   uint8_t tag[16])
{
	uint8_t subkey[32], n12[12] = { 0 };
	EVP_CIPHER_CTX *c = thread_ctx();
	int len, ok;

	if (!c)
		return cf_err(CF_ENOMEM, "out of memory (cipher context)");
	crypto_core_hchacha20(subkey, nonce, k->data, NULL);
	memcpy(n12 + 4, nonce + 16, 8);
	ok = EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, subkey, n12, enc) == 1;
	sodium_memzero(subkey, sizeof(subkey));
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1;
	ok = ok && EVP_CipherUpdate(c, NULL, &len, ad, (int)adlen) == 1;
	/* EVP lengths are int: feed large objects in slices */
	for (size_t done = 0; ok && done < n;) {
		size_t k2 = n - done > (1u << 30) ? (1u << 30) : n - done;
		ok = EVP_CipherUpdate(c, out + done, &len, in + done, (int)k2) == 1;
		done += k2;
	}
	if (!ok)
		return cf_err(CF_ECRYPTO, "cipher failure");
	if (EVP_CipherFinal_ex(c, out + n, &len) != 1)
		return enc ? cf_err(CF_ECRYPTO, "cipher failure") : cf_err(CF_ECORRUPT, "authentication failed");
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
		return cf_err(CF_ECRYPTO, "cipher failure");
	return CF_OK;
}

int cf_seal(const struct cf_key *k, uint8_t type, const uint8_t *id,
	    const void *in, size_t n, uint8_t *out)
{
	uint8_t ad[AD_LEN];

	if (n > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
		return cf_err(CF_EINVAL, "object too large to seal (%zu bytes)", n);
	make_ad(ad, type, id);
	/* 192-bit random nonces: collisions are negligible without any state. */
	randombytes_buf(out, NONCE_LEN);
	return xchacha(k, 1, out, ad, sizeof(ad), in, n, out + NONCE_LEN, out + NONCE_LEN + n);
}

int cf_unseal(const struct cf_key *k, uint8_t type, const uint8_t *id,
	      const void *in, size_t n, uint8_t *out)
{
	const uint8_t *c = in;
	uint8_t ad[AD_LEN], tag[16];

	if (n < CF_SEAL_OVERHEAD)
		return cf_err(CF_ECORRUPT, "sealed object too short (%zu bytes)", n);
	make_ad(ad, type, id);
	size_t m = n - CF_SEAL_OVERHEAD;
	memcpy(tag, c + NONCE_LEN + m, 16);
	int rc = xchacha(k, 0, c, ad, sizeof(ad), c + NONCE_LEN, m, out, tag);
	if (rc == CF_ECORRUPT)
		sodium_memzero(out, m); /* no unauthenticated plaintext escapes */
	return rc;
}

void cf_key_gear(const struct cf_key *k, uint64_t gear[256])
{
	/* A fixed nonce is fine: the key is used for this one keystream only. */
	static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
	uint8_t ks[256 * 8];

	crypto_stream_chacha20(ks, sizeof(ks), nonce, k->chunker);
	for (int i = 0; i < 256; i++)
		gear[i] = cf_get_le64(ks + 8 * i);
	sodium_memzero(ks, sizeof(ks));
}

void cf_random(void *p, size_t n)
{
	randombytes_buf(p, n);
}

int cf_memeq(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

int cf_base64(const void *p, size_t n, struct cf_buf *out)
{
	size_t enc = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	int r;

	if (n > (SIZE_MAX - 4) / 4 * 3)
		return cf_err(CF_ENOMEM, "buffer too large to encode (%zu bytes)", n);
	/* enc counts the NUL, which cf_buf keeps past len anyway. */
	if ((r = cf_buf_grow(out, enc)) != CF_OK)
		return r;
	sodium_bin2base64((char *)out->data + out->len, enc, p, n, sodium_base64_VARIANT_ORIGINAL);
	out->len += enc - 1;
	return CF_OK;
}

int cf_unbase64(const char *s, size_t len, struct cf_buf *out)
{
	size_t max = len / 4 * 3 + 3, bin_len = 0;
	int r;

	cf_buf_reset(out);
	if ((r = cf_buf_grow(out, max)) != CF_OK)
		return r;
	/* No b64_end: libsodium then refuses trailing garbage, missing padding
	 * and non-zero leftover bits, so only canonical text is accepted. */
	if (sodium_base642bin(out->data, max, s, len, NULL, &bin_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		cf_buf_reset(out);
		return cf_err(CF_EINVAL, "invalid base64");
	}
	out->len = bin_len;
	out->data[bin_len] = 0;
	return CF_OK;
}

int cf_hmac_sha256(const void *key, size_t keylen, const void *p, size_t n,
		   uint8_t out[CF_HMAC_SHA256_LEN])
{
	crypto_auth_hmacsha256_state st;
	_Static_assert(CF_HMAC_SHA256_LEN == crypto_auth_hmacsha256_BYTES, "hmac size");

	if (crypto_auth_hmacsha256_init(&st, key, keylen) != 0 ||
	    crypto_auth_hmacsha256_update(&st, p, n) != 0 ||
	    crypto_auth_hmacsha256_final(&st, out) != 0) {
		sodium_memzero(&st, sizeof(st));
		return cf_err(CF_ECRYPTO, "HMAC-SHA-256 failed");
	}
	sodium_memzero(&st, sizeof(st));
	return CF_OK;
}
