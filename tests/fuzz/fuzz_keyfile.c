/*
 * fuzz_keyfile - arbitrary bytes as a key file from a hostile store.
 *
 * cf_keyfile_open (fixed password) and cf_keyfile_info must return an error
 * code, never crash, read out of bounds or leak.  Limits the parser accepts
 * (up to 100 passes and 4 GiB) are honoured by design, so an input that asks
 * for more Argon2id work than a fuzzer iteration can afford is still parsed by
 * cf_keyfile_info but not opened; inputs with limits out of range are opened,
 * since refusing them is what is under test.
 *
 * A useful seed: a key file written by cf_keyfile_seal with password "fuzz",
 * opslimit 1 and memlimit 8192 (test_crypto's golden file has the layout).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/error.h"
#include "crypto/crypto.h"

#define FUZZ_PW "fuzz"

/* 1 if the file names in-range limits too costly for one iteration. */
static int too_costly(const uint8_t *data, size_t size)
{
	json_t *o = json_loadb((const char *)data, size, 0, NULL);
	json_t *ops = json_object_get(o, "opslimit"), *mem = json_object_get(o, "memlimit");
	int r = 0;

	if (json_is_integer(ops) && json_is_integer(mem)) {
		json_int_t t = json_integer_value(ops), m = json_integer_value(mem);
		int in_range = t >= 1 && t <= 100 && m >= 8192 && m <= (4ll << 30);
		r = in_range && (t > 2 || m > (1 << 20));
	}
	json_decref(o);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct cf_key *k = NULL;
	char *host = NULL, *user = NULL, *created = NULL;

	if (!ready) {
		if (cf_crypto_init() != CF_OK)
			abort();
		ready = 1;
	}
	if (cf_keyfile_info(data, size, &host, &user, &created) == CF_OK) {
		if (!host || !user || !created)
			abort();
	} else if (host || user || created) {
		abort();
	}
	free(host);
	free(user);
	free(created);

	if (!too_costly(data, size)) {
		int r = cf_keyfile_open(data, size, FUZZ_PW, sizeof(FUZZ_PW) - 1, &k);
		if ((r == CF_OK) != (k != NULL))
			abort();
		cf_key_free(k);
	}
	return 0;
}
