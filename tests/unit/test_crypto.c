/*
 * test_crypto.c - the crypto module against what a user relies on: sealed
 * objects open only with the right key, type and id; key files open only
 * with the right password and survive hostile input; blob ids and the gear
 * table are stable per master key and differ between keys.
 *
 * Key files here use libsodium's minimum Argon2id limits (1 pass, 8 KiB) so
 * the suite stays fast; the default limits are exercised by bench_crypto.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"

static const struct cf_kdf_params fast_kdf = { 1, 8192 };
#define PW "correct horse battery staple"

/* A key file written by this implementation (password "golden", limits 1 and
 * 8 KiB) and the blob id of "abc" and first and last gear entries under its
 * master key.
 * The expected values were cross-checked with an independent implementation
 * (Python: Argon2id, XChaCha20-Poly1305 via HChaCha20, BLAKE2b with salt and
 * personal as crypto_kdf does it, ChaCha20); the blob id (HMAC-SHA-256 under
 * the derived blob-id key) with `openssl dgst -sha256 -mac HMAC`.  If this
 * test fails, existing repositories would no longer open. */
static const char golden_keyfile[] =
	"{\n"
	"  \"version\": 1,\n"
	"  \"kdf\": \"argon2id\",\n"
	"  \"opslimit\": 1,\n"
	"  \"memlimit\": 8192,\n"
	"  \"salt\": \"t1WAmBzZpwM2DdKQIFk7yw==\",\n"
	"  \"hostname\": \"golden-host\",\n"
	"  \"username\": \"golden-user\",\n"
	"  \"created\": \"2026-11-23T19:26:37Z\",\n"
	"  \"data\": \"QMZwjjzdf96SpnU491hnxl6sZAUhHPPG4ikhcEB+4Go5Lzbv+EQroT9/YIHDn8T99CG2/1vfiGnNO453mNnpTpevPZ9Smc/x\"\n"
	"}";
static const char golden_blob_id_abc[] = "714e0a9e1b8db6303dfd6e108ce35f43024ccf76ee34199bf50dfe1fc49cb9c5";
static const uint64_t golden_gear0 = 0xefa6ca09656836f9ull;
static const uint64_t golden_gear255 = 0xcb746bdc3c8fbbcfull;

static int setup(void **state)
{
	(void)state;
	return cf_crypto_init() == CF_OK ? 0 : -1;
}

static struct cf_key *new_key(void)
{
	struct cf_key *k = NULL;
	assert_int_equal(cf_key_new_random(&k), CF_OK);
	assert_non_null(k);
	return k;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = seed >> 16;
	}
}

/* Seal plaintext p under k as (type, id) and return the sealed bytes. */
static uint8_t *seal(const struct cf_key *k, uint8_t type, const uint8_t *id,
		     const void *p, size_t n)
{
	uint8_t *s = malloc(n + CF_SEAL_OVERHEAD);
	assert_non_null(s);
	assert_int_equal(cf_seal(k, type, id, p, n, s), CF_OK);
	return s;
}

static void test_seal_roundtrip(void **state)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 1000, 65536, 1 << 20 };
	struct cf_key *k = new_key();
	uint8_t id[CF_HASH_LEN];
	(void)state;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		uint8_t *p = malloc(n + 1), *o = malloc(n + 1);
		assert_non_null(p);
		assert_non_null(o);
		fill(p, n, (uint32_t)i);
		cf_blob_id(k, p, n, id);
		uint8_t *s = seal(k, 3, id, p, n);
		/* The plaintext must not show through (n >= 16 so a match is not chance). */
		if (n >= 16)
			assert_memory_not_equal(s + 24, p, 16);
		memset(o, 0xAA, n + 1);
		assert_int_equal(cf_unseal(k, 3, id, s, n + CF_SEAL_OVERHEAD, o), CF_OK);
		assert_memory_equal(o, p, n);
		assert_int_equal(o[n], 0xAA); /* wrote exactly n bytes */
		free(s);
		free(p);
		free(o);
	}
	cf_key_free(k);
}

/* Sealing in place (plaintext at out + CF_SEAL_NONCE, as pack.c does after
 * compressing there) gives an object that opens to the same bytes. */
static void test_seal_in_place(void **state)
{
	static const size_t sizes[] = { 0, 1, 17, 65536, 1 << 20 };
	struct cf_key *k = new_key();
	uint8_t id[CF_HASH_LEN];
	(void)state;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		uint8_t *p = malloc(n + 1), *o = malloc(n + 1), *s = malloc(n + CF_SEAL_OVERHEAD);
		assert_non_null(p);
		assert_non_null(o);
		assert_non_null(s);
		fill(p, n, (uint32_t)i + 7);
		cf_blob_id(k, p, n, id);
		memcpy(s + CF_SEAL_NONCE, p, n);
		assert_int_equal(cf_seal(k, 3, id, s + CF_SEAL_NONCE, n, s), CF_OK);
		if (n >= 16)
			assert_memory_not_equal(s + CF_SEAL_NONCE, p, 16);
		assert_int_equal(cf_unseal(k, 3, id, s, n + CF_SEAL_OVERHEAD, o), CF_OK);
		assert_memory_equal(o, p, n);
		free(s);
		free(p);
		free(o);
	}
	cf_key_free(k);
}

static void test_seal_any_flipped_byte_fails(void **state)
{
	struct cf_key *k = new_key();
	uint8_t p[100], o[100], id[CF_HASH_LEN];
	const size_t n = sizeof(p) + CF_SEAL_OVERHEAD;
	(void)state;

	fill(p, sizeof(p), 7);
	cf_blob_id(k, p, sizeof(p), id);
	uint8_t *s = seal(k, 1, id, p, sizeof(p));
	for (size_t i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			s[i] ^= (uint8_t)(1u << bit);
			cf_err_clear();
			assert_int_equal(cf_unseal(k, 1, id, s, n, o), CF_ECORRUPT);
			assert_non_null(strstr(cf_errmsg(CF_ECORRUPT), "authentication failed"));
			s[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Truncated at every length, including shorter than the overhead. */
	for (size_t len = 0; len < n; len++)
		assert_int_equal(cf_unseal(k, 1, id, s, len, o), CF_ECORRUPT);
	assert_int_equal(cf_unseal(k, 1, id, s, n, o), CF_OK);
	assert_memory_equal(o, p, sizeof(p));
	free(s);
	cf_key_free(k);
}

static void test_seal_binds_type_id_and_key(void **state)
{
	struct cf_key *k = new_key(), *other = new_key();
	uint8_t p[64], o[64], id[CF_HASH_LEN], id2[CF_HASH_LEN], zero[CF_HASH_LEN] = { 0 };
	const size_t n = sizeof(p) + CF_SEAL_OVERHEAD;
	(void)state;

	fill(p, sizeof(p), 9);
	cf_blob_id(k, p, sizeof(p), id);
	memcpy(id2, id, sizeof(id));
	id2[31] ^= 1;
	uint8_t *s = seal(k, 2, id, p, sizeof(p));
	assert_int_equal(cf_unseal(k, 1, id, s, n, o), CF_ECORRUPT);
	assert_int_equal(cf_unseal(k, 3, id, s, n, o), CF_ECORRUPT);
	assert_int_equal(cf_unseal(k, 2, id2, s, n, o), CF_ECORRUPT);
	assert_int_equal(cf_unseal(k, 2, NULL, s, n, o), CF_ECORRUPT);
	assert_int_equal(cf_unseal(other, 2, id, s, n, o), CF_ECORRUPT);
	assert_int_equal(cf_unseal(k, 2, id, s, n, o), CF_OK);
	free(s);

	/* An object without id: NULL means 32 zero bytes, and a real id fails. */
	s = seal(k, 5, NULL, p, sizeof(p));
	assert_int_equal(cf_unseal(k, 5, id, s, n, o), CF_ECORRUPT);
	assert_int_equal(cf_unseal(k, 5, zero, s, n, o), CF_OK);
	assert_int_equal(cf_unseal(k, 5, NULL, s, n, o), CF_OK);
	assert_memory_equal(o, p, sizeof(p));
	free(s);
	cf_key_free(k);
	cf_key_free(other);
}

static void test_seal_random_nonce(void **state)
{
	struct cf_key *k = new_key();
	uint8_t p[32] = "the same plaintext, twice", o[32];
	(void)state;

	uint8_t *a = seal(k, 1, NULL, p, sizeof(p));
	uint8_t *b = seal(k, 1, NULL, p, sizeof(p));
	assert_memory_not_equal(a, b, 24);                             /* nonces */
	assert_memory_not_equal(a + 24, b + 24, sizeof(p) + 16);        /* ciphertext+tag */
	assert_int_equal(cf_unseal(k, 1, NULL, a, sizeof(p) + CF_SEAL_OVERHEAD, o), CF_OK);
	assert_int_equal(cf_unseal(k, 1, NULL, b, sizeof(p) + CF_SEAL_OVERHEAD, o), CF_OK);
	assert_memory_equal(o, p, sizeof(p));
	free(a);
	free(b);
	cf_key_free(k);
}

static void test_blob_id(void **state)
{
	struct cf_key *k = new_key(), *other = new_key();
	uint8_t a[CF_HASH_LEN], b[CF_HASH_LEN], c[CF_HASH_LEN], h[CF_HASH_LEN];
	(void)state;

	cf_blob_id(k, "hello", 5, a);
	cf_blob_id(k, "hello", 5, b);
	assert_memory_equal(a, b, CF_HASH_LEN);
	cf_blob_id(k, "hellp", 5, b);
	assert_memory_not_equal(a, b, CF_HASH_LEN);
	cf_blob_id(other, "hello", 5, c);
	assert_memory_not_equal(a, c, CF_HASH_LEN);
	cf_hash("hello", 5, h);
	assert_memory_not_equal(a, h, CF_HASH_LEN);
	assert_memory_not_equal(c, h, CF_HASH_LEN);
	cf_key_free(k);
	cf_key_free(other);
}

static void assert_hex(const uint8_t *p, const char *hex)
{
	char s[CF_ID_HEX];
	cf_hex(p, CF_HASH_LEN, s);
	assert_string_equal(s, hex);
}

static void test_hash_vectors_and_streaming(void **state)
{
	uint8_t one[CF_HASH_LEN], two[CF_HASH_LEN];
	static uint8_t big[300000];
	(void)state;

	/* BLAKE2b-256 reference values (RFC 7693 algorithm, 32-byte output). */
	cf_hash("", 0, one);
	assert_hex(one, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
	cf_hash("abc", 3, one);
	assert_hex(one, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");

	/* SHA-256 (FIPS 180-2 examples), the names of format-2 repositories */
	cf_hash_with(CF_HASH_SHA256, "", 0, one);
	assert_hex(one, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	cf_hash_with(CF_HASH_SHA256, "abc", 3, one);
	assert_hex(one, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cf_hash_with(CF_HASH_BLAKE2B, "abc", 3, one);
	assert_hex(one, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");

	fill(big, sizeof(big), 42);
	/* Uneven pieces, including empty ones and ones across the 128-byte block. */
	static const size_t steps[] = { 0, 1, 127, 128, 129, 1000, 0, 65536, 3 };
	for (size_t round = 0; round < 6; round++) {
		int alg = round < 3 ? CF_HASH_BLAKE2B : CF_HASH_SHA256;
		cf_hash_with(alg, big, sizeof(big), one);
		struct cf_hasher *h = cf_hasher_new_with(alg);
		assert_non_null(h);
		size_t off = 0, i = round;
		while (off < sizeof(big)) {
			size_t n = steps[i++ % (sizeof(steps) / sizeof(steps[0]))] * (round + 1);
			if (n > sizeof(big) - off)
				n = sizeof(big) - off;
			cf_hasher_update(h, big + off, n);
			off += n;
		}
		cf_hasher_final(h, two);
		assert_memory_equal(one, two, CF_HASH_LEN);
	}
	struct cf_hasher *h = cf_hasher_new();
	assert_non_null(h);
	cf_hasher_update(h, "ab", 2);
	cf_hasher_update(h, "c", 1);
	cf_hasher_final(h, two);
	assert_hex(two, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
	h = cf_hasher_new_with(CF_HASH_SHA256);
	assert_non_null(h);
	cf_hasher_update(h, "ab", 2);
	cf_hasher_update(h, "c", 1);
	cf_hasher_final(h, two);
	assert_hex(two, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void seal_keyfile(const struct cf_key *k, const char *pw, const char *host,
			 const char *user, struct cf_buf *out)
{
	assert_int_equal(cf_keyfile_seal(k, pw, strlen(pw), &fast_kdf, host, user, out), CF_OK);
	assert_true(out->len > 0);
}

static int open_keyfile(const struct cf_buf *kf, const char *pw, struct cf_key **k)
{
	*k = (struct cf_key *)1; /* must be reset on failure */
	int r = cf_keyfile_open(kf->data, kf->len, pw, strlen(pw), k);
	if (r != CF_OK)
		assert_null(*k);
	return r;
}

static void assert_same_master(const struct cf_key *a, const struct cf_key *b)
{
	uint8_t x[CF_HASH_LEN], y[CF_HASH_LEN], p[50], o[50];
	uint64_t ga[256], gb[256];

	cf_blob_id(a, "some chunk", 10, x);
	cf_blob_id(b, "some chunk", 10, y);
	assert_memory_equal(x, y, CF_HASH_LEN);
	cf_key_gear(a, ga);
	cf_key_gear(b, gb);
	assert_memory_equal(ga, gb, sizeof(ga));
	fill(p, sizeof(p), 5);
	uint8_t *s = seal(a, 4, x, p, sizeof(p));
	assert_int_equal(cf_unseal(b, 4, x, s, sizeof(p) + CF_SEAL_OVERHEAD, o), CF_OK);
	assert_memory_equal(o, p, sizeof(p));
	free(s);
}

static void test_keyfile_roundtrip_and_info(void **state)
{
	struct cf_key *k = new_key(), *k2 = NULL;
	struct cf_buf kf = CF_BUF_INIT;
	char *host, *user, *created;
	(void)state;

	seal_keyfile(k, PW, "backup-host", "alice", &kf);
	assert_int_equal(open_keyfile(&kf, PW, &k2), CF_OK);
	assert_non_null(k2);
	assert_same_master(k, k2);

	assert_int_equal(cf_keyfile_info(kf.data, kf.len, &host, &user, &created), CF_OK);
	assert_string_equal(host, "backup-host");
	assert_string_equal(user, "alice");
	/* RFC 3339 UTC, within a minute of now. */
	struct tm tm = { 0 };
	char *end = strptime(created, "%Y-%m-%dT%H:%M:%SZ", &tm);
	assert_non_null(end);
	assert_int_equal(*end, 0);
	time_t t = timegm(&tm), now = time(NULL);
	assert_true(t <= now && now - t < 60);
	free(host);
	free(user);
	free(created);

	/* No host/user recorded: info gives empty strings. */
	cf_buf_reset(&kf);
	seal_keyfile(k, PW, NULL, NULL, &kf);
	assert_int_equal(cf_keyfile_info(kf.data, kf.len, &host, &user, &created), CF_OK);
	assert_string_equal(host, "");
	assert_string_equal(user, "");
	assert_true(strlen(created) == 20);
	free(host);
	free(user);
	free(created);

	/* The file is the documented JSON. */
	json_t *o = json_loadb((const char *)kf.data, kf.len, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "version")), 1);
	assert_string_equal(json_string_value(json_object_get(o, "kdf")), "argon2id");
	assert_int_equal(json_integer_value(json_object_get(o, "opslimit")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "memlimit")), 8192);
	assert_int_equal(strlen(json_string_value(json_object_get(o, "salt"))), 24);
	assert_int_equal(strlen(json_string_value(json_object_get(o, "data"))), 96);
	json_decref(o);

	cf_buf_release(&kf);
	cf_key_free(k);
	cf_key_free(k2);
	cf_key_free(NULL);
}

static void test_keyfile_wrong_password(void **state)
{
	struct cf_key *k = new_key(), *k2;
	struct cf_buf kf = CF_BUF_INIT;
	(void)state;

	seal_keyfile(k, PW, "h", "u", &kf);
	cf_err_clear();
	assert_int_equal(open_keyfile(&kf, "correct horse battery stapler", &k2), CF_EBADPASS);
	assert_string_equal(cf_errmsg(CF_EBADPASS), "wrong password or no matching key");
	assert_int_equal(open_keyfile(&kf, "", &k2), CF_EBADPASS);
	/* A password that is a prefix of the real one is a different password. */
	assert_int_equal(cf_keyfile_open(kf.data, kf.len, PW, strlen(PW) - 1, &k2), CF_EBADPASS);
	assert_int_equal(open_keyfile(&kf, PW, &k2), CF_OK);
	cf_key_free(k2);
	cf_buf_release(&kf);
	cf_key_free(k);
}

/* Re-serialise key file kf with field name replaced by v (stolen). */
static void edit_keyfile(const struct cf_buf *kf, const char *name, json_t *v, struct cf_buf *out)
{
	json_t *o = json_loadb((const char *)kf->data, kf->len, 0, NULL);
	assert_non_null(o);
	if (v)
		assert_int_equal(json_object_set_new(o, name, v), 0);
	else
		assert_int_equal(json_object_del(o, name), 0);
	char *s = json_dumps(o, 0);
	assert_non_null(s);
	cf_buf_reset(out);
	assert_int_equal(cf_buf_adds(out, s), CF_OK);
	free(s);
	json_decref(o);
}

static void test_keyfile_uses_stored_limits_and_salt(void **state)
{
	struct cf_key *k = new_key(), *k2;
	struct cf_buf kf = CF_BUF_INIT, ed = CF_BUF_INIT;
	uint8_t salt[16] = { 0 };
	struct cf_buf b64 = CF_BUF_INIT;
	(void)state;

	seal_keyfile(k, PW, "h", "u", &kf);
	/* Another valid cost gives another KEK: proof the file's limits are used. */
	edit_keyfile(&kf, "opslimit", json_integer(2), &ed);
	assert_int_equal(open_keyfile(&ed, PW, &k2), CF_EBADPASS);
	edit_keyfile(&kf, "memlimit", json_integer(16384), &ed);
	assert_int_equal(open_keyfile(&ed, PW, &k2), CF_EBADPASS);
	assert_int_equal(cf_base64(salt, sizeof(salt), &b64), CF_OK);
	edit_keyfile(&kf, "salt", json_string((const char *)b64.data), &ed);
	assert_int_equal(open_keyfile(&ed, PW, &k2), CF_EBADPASS);
	/* Unauthenticated facts may change without harm. */
	edit_keyfile(&kf, "hostname", json_string("elsewhere"), &ed);
	assert_int_equal(open_keyfile(&ed, PW, &k2), CF_OK);
	cf_key_free(k2);

	/* Default limits (NULL) are accepted by seal; opening them is for the bench. */
	struct cf_kdf_params bad = { 101, 8192 };
	assert_int_equal(cf_keyfile_seal(k, PW, 3, &bad, NULL, NULL, &ed), CF_EINVAL);
	bad = (struct cf_kdf_params){ 1, 4096 };
	assert_int_equal(cf_keyfile_seal(k, PW, 3, &bad, NULL, NULL, &ed), CF_EINVAL);
	bad = (struct cf_kdf_params){ 0, 8192 };
	assert_int_equal(cf_keyfile_seal(k, PW, 3, &bad, NULL, NULL, &ed), CF_EINVAL);
	cf_buf_release(&b64);
	cf_buf_release(&ed);
	cf_buf_release(&kf);
	cf_key_free(k);
}

static void test_keyfile_truncated(void **state)
{
	struct cf_key *k = new_key(), *k2;
	struct cf_buf kf = CF_BUF_INIT;
	(void)state;

	seal_keyfile(k, PW, "h", "u", &kf);
	for (size_t len = 0; len < kf.len; len++) {
		/* Copy so that reading past len would be caught by ASan. */
		char *p = malloc(len + 1);
		assert_non_null(p);
		memcpy(p, kf.data, len);
		assert_int_equal(cf_keyfile_open(p, len, PW, strlen(PW), &k2), CF_ECORRUPT);
		assert_null(k2);
		free(p);
	}
	cf_buf_release(&kf);
	cf_key_free(k);
}

static void test_keyfile_garbage(void **state)
{
	static const char *const bad[] = {
		"", " ", "garbage", "null", "1", "\"text\"", "[]", "{}", "{\"version\":1}",
		"{\"version\":\"1\"}", "{\"version\":1,\"kdf\":\"scrypt\"}",
		"{\"version\":1,\"kdf\":\"argon2id\",\"opslimit\":1,\"memlimit\":8192}",
		"{\"version\":1,\"version\":1}",
		"\xff\xfe\x00\x01",
	};
	struct cf_key *k = new_key(), *k2;
	struct cf_buf kf = CF_BUF_INIT, ed = CF_BUF_INIT;
	char *h, *u, *c;
	uint8_t rnd[512];
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]);
		if (i == sizeof(bad) / sizeof(bad[0]) - 1)
			len = 4;
		assert_int_equal(cf_keyfile_open(bad[i], len, PW, strlen(PW), &k2), CF_ECORRUPT);
	}
	for (int i = 0; i < 50; i++) {
		cf_random(rnd, sizeof(rnd));
		assert_int_equal(cf_keyfile_open(rnd, sizeof(rnd), PW, strlen(PW), &k2),
				 CF_ECORRUPT);
		assert_int_equal(cf_keyfile_info(rnd, sizeof(rnd), &h, &u, &c), CF_ECORRUPT);
		assert_null(h);
	}
	assert_int_equal(cf_keyfile_info("{}", 2, &h, &u, &c), CF_ECORRUPT); /* no created */
	assert_int_equal(cf_keyfile_info("[1]", 3, &h, &u, &c), CF_ECORRUPT);

	/* One field broken at a time in an otherwise valid file. */
	seal_keyfile(k, PW, "h", "u", &kf);
	struct { const char *name; json_t *v; int code; } cases[] = {
		{ "version", json_integer(2), CF_EFORMAT },
		{ "version", NULL, CF_ECORRUPT },
		{ "kdf", json_string("argon2i"), CF_ECORRUPT },
		{ "kdf", NULL, CF_ECORRUPT },
		{ "salt", json_string("AAAA"), CF_ECORRUPT },		/* 3 bytes */
		{ "salt", json_string("not base64!!"), CF_ECORRUPT },
		{ "salt", json_integer(5), CF_ECORRUPT },
		{ "salt", NULL, CF_ECORRUPT },
		{ "data", json_string("AAAA"), CF_ECORRUPT },
		{ "data", json_null(), CF_ECORRUPT },
		{ "opslimit", json_real(1.0), CF_ECORRUPT },
		{ "opslimit", json_string("1"), CF_ECORRUPT },
		{ "memlimit", NULL, CF_ECORRUPT },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		edit_keyfile(&kf, cases[i].name, cases[i].v, &ed);
		assert_int_equal(open_keyfile(&ed, PW, &k2), cases[i].code);
	}
	cf_buf_release(&ed);
	cf_buf_release(&kf);
	cf_key_free(k);
}

static void test_keyfile_hostile_limits(void **state)
{
	struct cf_key *k = new_key(), *k2;
	struct cf_buf kf = CF_BUF_INIT, ed = CF_BUF_INIT;
	(void)state;

	seal_keyfile(k, PW, "h", "u", &kf);
	struct { const char *name; json_int_t v; } cases[] = {
		{ "opslimit", 0 }, { "opslimit", 101 }, { "opslimit", -1 },
		{ "opslimit", INT64_MAX },
		{ "memlimit", 0 }, { "memlimit", 8191 }, { "memlimit", (1ll << 30) + 1 },
		{ "memlimit", 1ll << 40 }, { "memlimit", -8192 }, { "memlimit", INT64_MAX },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		edit_keyfile(&kf, cases[i].name, json_integer(cases[i].v), &ed);
		double t0 = cf_now_mono();
		assert_int_equal(open_keyfile(&ed, PW, &k2), CF_ECORRUPT);
		/* Refused before any Argon2id work. */
		assert_true(cf_now_mono() - t0 < 0.5);
	}
	/* A number beyond 64 bits does not parse at all. */
	static const char huge[] = "{\"version\":1,\"kdf\":\"argon2id\","
				   "\"opslimit\":99999999999999999999999,\"memlimit\":8192}";
	assert_int_equal(cf_keyfile_open(huge, sizeof(huge) - 1, PW, strlen(PW), &k2),
			 CF_ECORRUPT);
	cf_buf_release(&ed);
	cf_buf_release(&kf);
	cf_key_free(k);
}

/* The ceiling is what init can create (10 passes, 1 GiB, passes x memory
 * 4 GiB), the floor Argon2id's minimum; each edge is tested on both sides,
 * for the check, for seal and for a key file from the store. */
static void test_kdf_ceiling_and_floor(void **state)
{
	struct cf_key *k = new_key(), *k2 = NULL;
	struct cf_buf kf = CF_BUF_INIT, ed = CF_BUF_INIT, ed2 = CF_BUF_INIT;
	(void)state;

	static const struct cf_kdf_params ok[] = {
		{ 1, 8192 }, { 3, 64ull << 20 }, { 10, 8192 }, { 1, 1ull << 30 }, { 4, 1ull << 30 },
		{ 10, 400ull << 20 },
	};
	static const struct cf_kdf_params bad[] = {
		{ 0, 8192 }, { 1, 8191 }, { 11, 8192 }, { 1, (1ull << 30) + 1 }, { 5, 1ull << 30 },
		{ 10, 410ull << 20 }, { 100, 4ull << 30 }, { UINT64_MAX, UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_int_equal(cf_kdf_params_check(&ok[i]), CF_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cf_kdf_params_check(&bad[i]), CF_EINVAL);
		assert_int_equal(cf_keyfile_seal(k, PW, 3, &bad[i], NULL, NULL, &ed), CF_EINVAL);
	}
	assert_int_equal(cf_kdf_params_check(&bad[4]), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "above the ceiling"));
	assert_int_equal(cf_kdf_params_check(&bad[2]), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "opslimit 11"));

	/* a key file from the store above the ceiling: refused, said so, and
	 * before any work (the derivation alone would take minutes) */
	seal_keyfile(k, PW, "h", "u", &kf);
	for (size_t i = 1; i < sizeof(bad) / sizeof(bad[0]) - 1; i++) {
		edit_keyfile(&kf, "opslimit", json_integer((json_int_t)bad[i].opslimit), &ed);
		edit_keyfile(&ed, "memlimit", json_integer((json_int_t)bad[i].memlimit), &ed2);
		double t0 = cf_now_mono();
		assert_int_equal(open_keyfile(&ed2, PW, &k2), CF_ECORRUPT);
		assert_true(cf_now_mono() - t0 < 0.5);
		assert_non_null(strstr(cf_errmsg(CF_ECORRUPT), "refused before key derivation"));
	}
	/* at the edge it is accepted (and derives: the cheapest edge, 10 x 8 KiB) */
	edit_keyfile(&kf, "opslimit", json_integer(10), &ed);
	assert_int_equal(open_keyfile(&ed, PW, &k2), CF_EBADPASS); /* limits are in the KEK */
	cf_buf_release(&ed);
	cf_buf_release(&ed2);
	cf_buf_release(&kf);
	cf_key_free(k);
}

static void test_two_keyfiles_one_master(void **state)
{
	struct cf_key *k = new_key(), *a, *b, *other = new_key();
	struct cf_buf ka = CF_BUF_INIT, kb = CF_BUF_INIT;
	uint8_t x[CF_HASH_LEN], y[CF_HASH_LEN];
	(void)state;

	seal_keyfile(k, "first password", "h1", "alice", &ka);
	seal_keyfile(k, "second password", "h2", "bob", &kb);
	assert_memory_not_equal(ka.data, kb.data, ka.len < kb.len ? ka.len : kb.len);
	assert_int_equal(open_keyfile(&ka, "first password", &a), CF_OK);
	assert_int_equal(open_keyfile(&kb, "second password", &b), CF_OK);
	/* Each password opens only its own file. */
	struct cf_key *none;
	assert_int_equal(open_keyfile(&ka, "second password", &none), CF_EBADPASS);
	assert_same_master(a, b);
	assert_same_master(k, a);
	cf_blob_id(other, "some chunk", 10, x);
	cf_blob_id(a, "some chunk", 10, y);
	assert_memory_not_equal(x, y, CF_HASH_LEN);
	cf_buf_release(&ka);
	cf_buf_release(&kb);
	cf_key_free(a);
	cf_key_free(b);
	cf_key_free(k);
	cf_key_free(other);
}

static void test_gear(void **state)
{
	struct cf_key *k = new_key(), *other = new_key();
	static uint64_t g1[256], g2[256], g3[256];
	(void)state;

	cf_key_gear(k, g1);
	cf_key_gear(k, g2);
	assert_memory_equal(g1, g2, sizeof(g1));
	cf_key_gear(other, g3);
	for (int i = 0; i < 256; i++)
		assert_true(g1[i] != g3[i]);
	/* A keystream: no zero entries, no repeats (each has odds of 2^-64). */
	for (int i = 0; i < 256; i++) {
		assert_true(g1[i] != 0);
		for (int j = i + 1; j < 256; j++)
			assert_true(g1[i] != g1[j]);
	}
	cf_key_free(k);
	cf_key_free(other);
}

static void test_golden_keyfile(void **state)
{
	struct cf_key *k;
	uint8_t id[CF_HASH_LEN];
	uint64_t gear[256];
	char *h, *u, *c;
	(void)state;

	assert_int_equal(cf_keyfile_open(golden_keyfile, strlen(golden_keyfile), "golden", 6, &k),
			 CF_OK);
	cf_blob_id(k, "abc", 3, id);
	assert_hex(id, golden_blob_id_abc);
	cf_key_gear(k, gear);
	assert_true(gear[0] == golden_gear0);
	assert_true(gear[255] == golden_gear255);
	cf_key_free(k);
	assert_int_equal(cf_keyfile_open(golden_keyfile, strlen(golden_keyfile), "Golden", 6, &k),
			 CF_EBADPASS);
	assert_int_equal(cf_keyfile_info(golden_keyfile, strlen(golden_keyfile), &h, &u, &c),
			 CF_OK);
	assert_string_equal(h, "golden-host");
	assert_string_equal(u, "golden-user");
	free(h);
	free(u);
	free(c);
}

static void test_base64(void **state)
{
	struct cf_buf b = CF_BUF_INIT, d = CF_BUF_INIT;
	uint8_t p[70];
	(void)state;

	/* RFC 4648 section 10 vectors; cf_base64 appends. */
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					   "Zm9vYmFy" };
	for (int i = 0; i < 7; i++) {
		cf_buf_reset(&b);
		assert_int_equal(cf_buf_adds(&b, "x:"), CF_OK);
		assert_int_equal(cf_base64(plain[i], strlen(plain[i]), &b), CF_OK);
		assert_int_equal(b.len, 2 + strlen(enc[i]));
		assert_string_equal((char *)b.data + 2, enc[i]);
		assert_int_equal(cf_unbase64(enc[i], strlen(enc[i]), &d), CF_OK);
		assert_int_equal(d.len, strlen(plain[i]));
		assert_memory_equal(d.data, plain[i], d.len);
	}
	/* Binary round trip at every length, with '+' and '/' in play. */
	for (size_t n = 0; n <= sizeof(p); n++) {
		cf_random(p, n);
		if (n)
			p[0] = 0xfb, p[n - 1] = 0xff;
		cf_buf_reset(&b);
		assert_int_equal(cf_base64(p, n, &b), CF_OK);
		assert_int_equal(b.len, (n + 2) / 3 * 4);
		assert_int_equal(cf_unbase64((char *)b.data, b.len, &d), CF_OK);
		assert_int_equal(d.len, n);
		assert_memory_equal(d.data, p, n);
	}
	/* Refused: missing or short padding, non-zero leftover bits, foreign
	 * characters, URL-safe alphabet, whitespace, trailing garbage. */
	static const char *const bad[] = { "Zg", "Zg=", "Zh==", "Zm9v!", "Zm9v Zm9v", "Zm9v\n",
					   "Zm9vYmFy=", "====", "A", "-_-_", "Zg==Zg==", "Zm9v=" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cf_buf_reset(&d);
		assert_int_equal(cf_buf_adds(&d, "old"), CF_OK);
		assert_int_equal(cf_unbase64(bad[i], strlen(bad[i]), &d), CF_EINVAL);
		assert_int_equal(d.len, 0);
	}
	/* Only len characters are read: a valid prefix of a longer string decodes. */
	assert_int_equal(cf_unbase64("Zm9vYmFy", 4, &d), CF_OK);
	assert_int_equal(d.len, 3);
	assert_memory_equal(d.data, "foo", 3);
	cf_buf_release(&b);
	cf_buf_release(&d);
}

static void test_random_and_memeq(void **state)
{
	uint8_t a[32], b[32];
	(void)state;

	cf_random(a, sizeof(a));
	cf_random(b, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(cf_memeq(a, b, sizeof(a)), 0);
	memcpy(b, a, sizeof(a));
	assert_int_equal(cf_memeq(a, b, sizeof(a)), 1);
	b[31] ^= 0x80;
	assert_int_equal(cf_memeq(a, b, sizeof(a)), 0);
	assert_int_equal(cf_memeq(a, b, 31), 1);
	assert_int_equal(cf_memeq(a, b, 0), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_roundtrip),
		cmocka_unit_test(test_seal_in_place),
		cmocka_unit_test(test_seal_any_flipped_byte_fails),
		cmocka_unit_test(test_seal_binds_type_id_and_key),
		cmocka_unit_test(test_seal_random_nonce),
		cmocka_unit_test(test_blob_id),
		cmocka_unit_test(test_hash_vectors_and_streaming),
		cmocka_unit_test(test_keyfile_roundtrip_and_info),
		cmocka_unit_test(test_keyfile_wrong_password),
		cmocka_unit_test(test_keyfile_uses_stored_limits_and_salt),
		cmocka_unit_test(test_keyfile_truncated),
		cmocka_unit_test(test_keyfile_garbage),
		cmocka_unit_test(test_keyfile_hostile_limits),
		cmocka_unit_test(test_kdf_ceiling_and_floor),
		cmocka_unit_test(test_two_keyfiles_one_master),
		cmocka_unit_test(test_gear),
		cmocka_unit_test(test_golden_keyfile),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_random_and_memeq),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
