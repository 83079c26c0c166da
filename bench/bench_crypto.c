/*
 * bench_crypto - throughput of the primitives coffer uses, against the
 * alternatives it could have used, on this machine.
 *
 *   bench_crypto [seconds per figure, default 1]
 *
 * Blob ids: OpenSSL's HMAC-SHA-256 (cf_blob_id) vs libsodium's.
 * Object names: SHA-256 (format 2) vs BLAKE2b-256 (format 1).
 * Sealing:  XChaCha20-Poly1305 (cf_seal) vs AES-256-GCM (when the CPU has
 *           AES-NI; libsodium offers it only then).
 * Key files: the time Argon2id takes with CF_KDF_DEFAULT.
 * Buffers are 1 MiB, the order of a chunk.  This benchmark includes
 * <sodium.h> itself only to reach the alternatives coffer does not use.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"

#define BUF_LEN (1u << 20)

enum which { BLOB_ID, HASH, SHA256, HMAC, SEAL, UNSEAL, AESGCM };

static const char *const names[] = {
	[BLOB_ID] = "HMAC-SHA-256, OpenSSL (cf_blob_id)",
	[HASH] = "BLAKE2b-256 unkeyed (format-1 names)",
	[SHA256] = "SHA-256 unkeyed (format-2 names)",
	[HMAC] = "HMAC-SHA-256, libsodium (crypto_auth_hmacsha256)",
	[SEAL] = "XChaCha20-Poly1305 seal (cf_seal)",
	[UNSEAL] = "XChaCha20-Poly1305 open (cf_unseal)",
	[AESGCM] = "AES-256-GCM seal (crypto_aead_aes256gcm)",
};

static struct cf_key *key;
static uint8_t *in, *sealed, *out;
static uint8_t hkey[crypto_auth_hmacsha256_KEYBYTES], gkey[crypto_aead_aes256gcm_KEYBYTES];
static volatile uint8_t sink;

static int one(enum which w)
{
	uint8_t id[CF_HASH_LEN] = { 0 }, nonce[crypto_aead_aes256gcm_NPUBBYTES];
	unsigned long long clen;

	switch (w) {
	case BLOB_ID:
		cf_blob_id(key, in, BUF_LEN, id);
		sink ^= id[0];
		return CF_OK;
	case HASH:
		cf_hash(in, BUF_LEN, id);
		sink ^= id[0];
		return CF_OK;
	case SHA256:
		cf_hash_with(CF_HASH_SHA256, in, BUF_LEN, id);
		sink ^= id[0];
		return CF_OK;
	case HMAC:
		crypto_auth_hmacsha256(id, in, BUF_LEN, hkey);
		sink ^= id[0];
		return CF_OK;
	case SEAL:
		return cf_seal(key, 1, id, in, BUF_LEN, sealed);
	case UNSEAL:
		return cf_unseal(key, 1, NULL, sealed, BUF_LEN + CF_SEAL_OVERHEAD, out);
	case AESGCM:
		/* The nonce is drawn as cf_seal draws its own, to compare like with like. */
		randombytes_buf(nonce, sizeof(nonce));
		crypto_aead_aes256gcm_encrypt(sealed, &clen, in, BUF_LEN, id, sizeof(id), NULL,
					      nonce, gkey);
		return CF_OK;
	}
	return CF_EINVAL;
}

static int measure(enum which w, double seconds)
{
	double t0 = cf_now_mono(), t;
	long n = 0;
	int r;

	do {
		if ((r = one(w)) != CF_OK)
			return r;
		n++;
	} while ((t = cf_now_mono() - t0) < seconds);
	printf("  %-42s %8.0f MiB/s\n", names[w], n / t);
	return CF_OK;
}

static int bench_kdf(void)
{
	struct cf_kdf_params def = CF_KDF_DEFAULT;
	struct cf_buf kf = CF_BUF_INIT;
	struct cf_key *k = NULL;
	int r;

	double t0 = cf_now_mono();
	if ((r = cf_keyfile_seal(key, "password", 8, &def, NULL, NULL, &kf)) != CF_OK)
		goto out;
	double t1 = cf_now_mono();
	if ((r = cf_keyfile_open(kf.data, kf.len, "password", 8, &k)) != CF_OK)
		goto out;
	double t2 = cf_now_mono();
	printf("  Argon2id opslimit %llu memlimit %llu MiB: seal %.3f s, open %.3f s\n",
	       (unsigned long long)def.opslimit, (unsigned long long)(def.memlimit >> 20),
	       t1 - t0, t2 - t1);
out:
	cf_key_free(k);
	cf_buf_release(&kf);
	return r;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	int r;

	if (seconds <= 0)
		seconds = 1.0;
	in = malloc(BUF_LEN);
	out = malloc(BUF_LEN);
	sealed = malloc(BUF_LEN + CF_SEAL_OVERHEAD);
	if (!in || !out || !sealed) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = cf_crypto_init()) != CF_OK || (r = cf_key_new_random(&key)) != CF_OK)
		goto out;
	cf_random(in, BUF_LEN);
	cf_random(hkey, sizeof(hkey));
	cf_random(gkey, sizeof(gkey));
	if ((r = cf_seal(key, 1, NULL, in, BUF_LEN, sealed)) != CF_OK)
		goto out;

	printf("libsodium %s, %u KiB buffers, %.1f s per figure\n", sodium_version_string(),
	       BUF_LEN >> 10, seconds);
	printf("ids:\n");
	if ((r = measure(BLOB_ID, seconds)) != CF_OK || (r = measure(HASH, seconds)) != CF_OK ||
	    (r = measure(SHA256, seconds)) != CF_OK ||
	    (r = measure(HMAC, seconds)) != CF_OK)
		goto out;
	printf("sealing:\n");
	if ((r = measure(SEAL, seconds)) != CF_OK)
		goto out;
	/* The open direction re-reads the object sealed above, with id NULL. */
	if ((r = cf_seal(key, 1, NULL, in, BUF_LEN, sealed)) != CF_OK ||
	    (r = measure(UNSEAL, seconds)) != CF_OK)
		goto out;
	if (crypto_aead_aes256gcm_is_available()) {
		if ((r = measure(AESGCM, seconds)) != CF_OK)
			goto out;
	} else {
		printf("  %-42s not available on this CPU\n", names[AESGCM]);
	}
	printf("key files:\n");
	r = bench_kdf();
out:
	if (r != CF_OK)
		fprintf(stderr, "bench_crypto: %s\n", cf_errmsg(r));
	cf_key_free(key);
	free(in);
	free(out);
	free(sealed);
	return r == CF_OK ? 0 : 1;
}
