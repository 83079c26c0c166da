/*
 * crypto_int.h - what crypto.c and keyfile.c share, and nobody else sees.
 *
 * A struct cf_key is one sodium_malloc'd region (guard pages, mlock'd where
 * the rlimit allows) holding the master key and the subkeys derived from it.
 * It is built in two steps so that keyfile.c can decrypt the master key
 * straight into guarded memory: cf_key_alloc() gives a writable region, the
 * caller fills master, cf_key_derive() fills the subkeys and makes the region
 * read-only.  After that nothing writes to it until cf_key_free() wipes it.
 *
 * The subkey ids are part of the repository format: changing one makes every
 * existing repository unreadable.
 */
#ifndef CF_CRYPTO_INT_H
#define CF_CRYPTO_INT_H

#include <stdint.h>

#define CF_KEY_LEN 32

enum {
	CF_SUBKEY_BLOB_ID = 1,
	CF_SUBKEY_DATA = 2,
	CF_SUBKEY_CHUNKER = 3,
};

struct cf_key {
	uint8_t master[CF_KEY_LEN];
	uint8_t blob_id[CF_KEY_LEN];	/* HMAC-SHA-256 key for blob ids */
	uint8_t data[CF_KEY_LEN];	/* XChaCha20-Poly1305 key for every object */
	uint8_t chunker[CF_KEY_LEN];	/* ChaCha20 key whose keystream is the gear table */
};

/* A writable, zeroed key region.  CF_OK or CF_ENOMEM; free with cf_key_free(). */
int cf_key_alloc(struct cf_key **out);

/* Derive the subkeys from k->master and make k read-only.  CF_OK or CF_ECRYPTO. */
int cf_key_derive(struct cf_key *k);

#endif
