/*
 * test_chunker - FastCDC chunker: golden cut points, agreement with a naive
 * reference model, independence from buffer boundaries, size bounds, locality
 * of edits, mean chunk size, parameter checks.
 *
 * Chunk boundaries are part of the repository format (they decide which
 * chunks dedup), so the golden lists below must only change together with a
 * format version bump.  Regenerate them with
 *
 *	test_chunker --print-golden
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "chunker/chunker.h"
#include "common/error.h"
#include "common/util.h"

#define KiB (1024u)
#define MiB (1024u * 1024)

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* len pseudo-random bytes from seed (little-endian splitmix64 words). */
static uint8_t *random_stream(size_t len, uint64_t seed)
{
	uint8_t *d = malloc(len + 8);
	uint64_t s = seed;

	assert_non_null(d);
	for (size_t i = 0; i < len; i += 8)
		cf_put_le64(d + i, splitmix64(&s));
	return d;
}

struct cuts {
	uint64_t *v;
	size_t n, cap;
};

static void cuts_push(struct cuts *c, uint64_t off)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		assert_non_null(c->v);
	}
	c->v[c->n++] = off;
}

static void cuts_release(struct cuts *c)
{
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/*
 * Chunk data[0..len) feeding it in pieces of piece bytes (0: random sizes
 * from 1 byte to a few max) and record the stream offset of every cut the
 * chunker reports.  The end of the stream is not a cut.
 */
static void chunk_stream(const struct cf_chunker_params *p, const uint64_t *gear,
			 const uint8_t *data, size_t len, size_t piece, struct cuts *out)
{
	static const size_t spans[] = { 1, 3, 100, 4096, 70000 };
	struct cf_chunker c;
	uint64_t rng = 7;
	size_t off = 0;

	cf_chunker_init(&c, p, gear);
	while (off < len) {
		size_t n = piece;

		if (n == 0) {
			uint64_t r = splitmix64(&rng);
			size_t span = r % 6 == 5 ? 3 * (size_t)p->max : spans[r % 5];

			n = 1 + (r >> 8) % span;
		}
		if (n > len - off)
			n = len - off;
		while (n > 0) {
			size_t k = cf_chunker_scan(&c, data + off, n);

			if (k == CF_CHUNKER_NONE) {
				off += n;
				break;
			}
			assert_true(k >= 1 && k <= n);
			off += k;
			n -= k;
			cuts_push(out, off);
		}
	}
}

/*
 * The format, written the slow and obvious way: hash every byte of a chunk
 * from its start, cut where the top log2(avg)+2 bits (before avg) or
 * log2(avg)-2 bits (from avg on) of the gear hash are zero, never before
 * min, always at max.
 */
static void reference_chunk(const struct cf_chunker_params *p, const uint64_t *gear,
			    const uint8_t *data, size_t len, struct cuts *out)
{
	unsigned bits = 0;
	uint64_t mask_s, mask_l;
	size_t start = 0;

	while ((1u << bits) < p->avg)
		bits++;
	mask_s = ~(uint64_t)0 << (64 - (bits + 2));
	mask_l = ~(uint64_t)0 << (64 - (bits - 2));
	for (;;) {
		uint64_t h = 0;
		size_t l;

		for (l = 1; start + l <= len; l++) {
			h = (h << 1) + gear[data[start + l - 1]];
			if (l == p->max)
				break;
			if (l >= p->min && !(h & (l < p->avg ? mask_s : mask_l)))
				break;
		}
		if (start + l > len)
			return;
		start += l;
		cuts_push(out, start);
	}
}

static void assert_cuts_equal(const struct cuts *a, const struct cuts *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		if (a->v[i] != b->v[i])
			fail_msg("cut %zu: %llu != %llu", i,
				 (unsigned long long)a->v[i], (unsigned long long)b->v[i]);
	}
}

static const struct cf_chunker_params small_params = { 2 * KiB, 8 * KiB, 64 * KiB };
static const struct cf_chunker_params mid_params = { 64 * KiB, 256 * KiB, 1 * MiB };
static const struct cf_chunker_params default_params = {
	CF_CHUNKER_DEFAULT_MIN, CF_CHUNKER_DEFAULT_AVG, CF_CHUNKER_DEFAULT_MAX
};

/* ---- golden cut points --------------------------------------------------- */

#define GOLDEN_SEED 0x636f66666572ull /* "coffer" */
#define GOLDEN_MID_LEN (32 * (size_t)MiB)
#define GOLDEN_DEFAULT_LEN (160 * (size_t)MiB)

/* gear seed 1, random_stream(GOLDEN_MID_LEN, GOLDEN_SEED), 64K/256K/1M */
static const uint64_t golden_mid[] = {
	301396, 568257, 863085, 1164732, 1491243, 1780918,
	2068419, 2437570, 2901637, 3163706, 3233835, 3460411,
	3774330, 4117429, 4185197, 4478907, 4803903, 5001870,
	5271313, 5537521, 5896892, 6170452, 6575195, 6843569,
	7197651, 7482715, 7842658, 8118173, 8429111, 8880998,
	9167179, 9465655, 9765819, 10314882, 10606413, 11083378,
	11450157, 11757769, 12109473, 12485631, 12825502, 13258558,
	13550122, 13881922, 14157616, 14340517, 14645970, 14982132,
	15400819, 15701629, 15803492, 15885859, 16288012, 16608287,
	16674979, 17025949, 17382301, 17788134, 18075252, 18340290,
	18732492, 19016437, 19431165, 19796878, 20068783, 20349809,
	20663274, 20930484, 21276266, 21589069, 21769342, 22026194,
	22390169, 22472238, 22773622, 23082745, 23177184, 23472061,
	23769682, 24043322, 24367614, 24748514, 25072425, 25363598,
	25666797, 25957838, 26254612, 26572140, 26889961, 27272248,
	27567026, 28075112, 28405568, 28730189, 29213323, 29521298,
	29790834, 30108520, 30372030, 30755749, 31112645, 31385391,
	31668647, 32013620, 32280264, 32539742, 32848954, 33301162,
};

/* gear seed 1, random_stream(GOLDEN_DEFAULT_LEN, GOLDEN_SEED), defaults */
static const uint64_t golden_default[] = {
	1304558, 2452864, 3460411, 4702856, 5754137, 6843569,
	8124158, 10501301, 11757769, 12828882, 14340517, 15409412,
	16471438, 18169443, 19670971, 20964246, 21769342, 23177184,
	24254813, 25363598, 26469766, 27691160, 29213323, 30372030,
	31484102, 32539742, 33714874, 34791475, 35809784, 37241945,
	38418450, 39055540, 39902980, 41334109, 42644923, 44394373,
	45760748, 47522001, 48620389, 49899602, 51183856, 52640149,
	54088113, 55244899, 57133441, 58223114, 59940831, 60991547,
	62174030, 63233796, 64604939, 65944231, 67014903, 67906987,
	69211378, 71048895, 72253931, 73345867, 74557580, 75753178,
	76809556, 78068307, 79641448, 80827489, 82041197, 82689191,
	84008199, 85154117, 86237376, 87425321, 88402314, 89663119,
	90776356, 91419243, 92824158, 94081925, 95202685, 97556389,
	98899327, 100024445, 101329836, 103033016, 103830386, 105233201,
	106526483, 107860839, 109945210, 111128304, 112203978, 113459000,
	114558617, 116747276, 117844232, 119240834, 120316433, 121940640,
	122568893, 124230268, 125435587, 126551810, 127752408, 128421119,
	129602094, 131037658, 132288744, 133420708, 134879083, 135500553,
	137482165, 138958929, 140322642, 141454517, 142572093, 143874550,
	144781485, 145904141, 147372863, 148460022, 149653449, 150994485,
	152185908, 153698712, 154776514, 156363214, 157494406, 158601340,
	159234825, 160361779, 161500248, 162836507, 163900641, 165298037,
	166445645, 167413584,
};

static void golden_cuts(const struct cf_chunker_params *p, size_t len, struct cuts *out)
{
	uint64_t gear[256];
	uint8_t *data = random_stream(len, GOLDEN_SEED);

	cf_chunker_gear_from_seed(gear, 1);
	chunk_stream(p, gear, data, len, 0, out);
	free(data);
}

static void check_golden(const struct cf_chunker_params *p, size_t len,
			 const uint64_t *golden, size_t n)
{
	struct cuts got = { 0 };

	golden_cuts(p, len, &got);
	if (got.n != n)
		fail_msg("%zu cuts, golden list has %zu", got.n, n);
	for (size_t i = 0; i < n; i++) {
		if (got.v[i] != golden[i])
			fail_msg("cut %zu at %llu, golden %llu", i,
				 (unsigned long long)got.v[i], (unsigned long long)golden[i]);
	}
	cuts_release(&got);
}

static void test_golden_mid(void **state)
{
	(void)state;
	check_golden(&mid_params, GOLDEN_MID_LEN, golden_mid,
		     sizeof(golden_mid) / sizeof(golden_mid[0]));
}

static void test_golden_default(void **state)
{
	(void)state;
	check_golden(&default_params, GOLDEN_DEFAULT_LEN, golden_default,
		     sizeof(golden_default) / sizeof(golden_default[0]));
}

static void print_golden(const char *name, const struct cf_chunker_params *p, size_t len)
{
	struct cuts got = { 0 };

	golden_cuts(p, len, &got);
	printf("static const uint64_t %s[] = {", name);
	for (size_t i = 0; i < got.n; i++)
		printf("%s%llu,", i % 6 ? " " : "\n\t", (unsigned long long)got.v[i]);
	printf("\n};\n");
	cuts_release(&got);
}

/* ---- gear table ---------------------------------------------------------- */

static void test_gear_from_seed(void **state)
{
	uint64_t a[256], b[256];

	(void)state;
	/* The first splitmix64 outputs for seed 0 (Vigna's reference). */
	cf_chunker_gear_from_seed(a, 0);
	assert_true(a[0] == 0xe220a8397b1dcdafull);
	assert_true(a[1] == 0x6e789e6aa1b965f4ull);
	cf_chunker_gear_from_seed(b, 0);
	assert_memory_equal(a, b, sizeof(a));
	cf_chunker_gear_from_seed(b, 1);
	assert_memory_not_equal(a, b, sizeof(a));
}

/* ---- behaviour ----------------------------------------------------------- */

/*
 * A stream that has every kind of cut: random data (content-defined cuts,
 * before and after avg) and a long run of zeros, where the window never
 * matches and the chunker must force cuts at max.
 */
static uint8_t *mixed_stream(const struct cf_chunker_params *p, size_t *len)
{
	size_t rnd = 24 * (size_t)p->avg, zeros = 3 * (size_t)p->max + 12345;
	uint8_t *d;

	*len = 2 * rnd + zeros;
	d = malloc(*len + 8);
	assert_non_null(d);
	{
		uint8_t *r1 = random_stream(rnd, 11), *r2 = random_stream(rnd, 12);

		memcpy(d, r1, rnd);
		memset(d + rnd, 0, zeros);
		memcpy(d + rnd + zeros, r2, rnd);
		free(r1);
		free(r2);
	}
	return d;
}

static void test_matches_reference(void **state)
{
	const struct cf_chunker_params *ps[] = { &small_params, &mid_params };
	uint64_t gear[256];

	(void)state;
	cf_chunker_gear_from_seed(gear, 1);
	for (size_t i = 0; i < 2; i++) {
		struct cuts fast = { 0 }, ref = { 0 };
		size_t len;
		uint8_t *d = mixed_stream(ps[i], &len);

		chunk_stream(ps[i], gear, d, len, 0, &fast);
		reference_chunk(ps[i], gear, d, len, &ref);
		assert_true(ref.n > 20);
		assert_cuts_equal(&fast, &ref);
		cuts_release(&fast);
		cuts_release(&ref);
		free(d);
	}
}

/*
 * A 64-byte window whose gear hash has the bits of mask clear, but would not
 * if its first byte were left out: a cut there is only found by a chunker
 * that has hashed the whole window (the warm-up before min must be 64 bytes).
 */
static void find_window(const uint64_t *gear, uint64_t mask, uint64_t *rng, uint8_t w[64])
{
	for (;;) {
		uint64_t h = 0;

		for (int i = 0; i < 64; i += 8)
			cf_put_le64(w + i, splitmix64(rng));
		for (int i = 0; i < 64; i++)
			h = (h << 1) + gear[w[i]];
		if (!(h & mask) && ((h - (gear[w[0]] << 63)) & mask))
			return;
	}
}

/*
 * Chunks built to end exactly at the edges of each phase: at min (the first
 * candidate), just after it, at the last length tested with the strict mask,
 * at the first with the loose one, at max - 1, and a forced cut at max.
 * Filler is zeros, which never cut by themselves.
 */
static void test_phase_edges(void **state)
{
	const struct cf_chunker_params *p = &small_params;
	const uint32_t lens[] = { p->min, p->min + 1, p->min + 63, p->avg - 2, p->avg - 1,
				  p->avg, p->avg + 1, p->max - 1, p->max };
	const size_t nlens = sizeof(lens) / sizeof(lens[0]);
	uint64_t gear[256], rng = 21;
	unsigned bits = (unsigned)__builtin_ctz(p->avg);
	uint64_t mask_s = ~(uint64_t)0 << (64 - (bits + 2));
	uint64_t mask_l = ~(uint64_t)0 << (64 - (bits - 2));
	struct cuts designed = { 0 }, fast = { 0 }, ref = { 0 };
	size_t len = 0, cap = 0, exact = 0;
	uint8_t *d = NULL;

	(void)state;
	cf_chunker_gear_from_seed(gear, 1);
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < nlens; i++) {
			uint32_t l = lens[i];

			if (len + l > cap) {
				cap = 2 * (len + l);
				d = realloc(d, cap);
				assert_non_null(d);
			}
			memset(d + len, 0, l);
			if (l < p->max)
				find_window(gear, l < p->avg ? mask_s : mask_l, &rng, d + len + l - 64);
			len += l;
			cuts_push(&designed, len);
		}
	}
	reference_chunk(p, gear, d, len, &ref);
	for (size_t pieces = 0; pieces < 3; pieces++) {
		chunk_stream(p, gear, d, len, pieces == 0 ? len : pieces == 1 ? 1 : 0, &fast);
		assert_cuts_equal(&fast, &ref);
		cuts_release(&fast);
	}
	/* A designed cut can be pre-empted by a chance match a few bytes
	 * earlier inside the window, rarely; nearly all must land. */
	for (size_t i = 0, j = 0; i < designed.n && j < ref.n;) {
		if (designed.v[i] == ref.v[j]) {
			exact++;
			i++;
			j++;
		} else if (designed.v[i] < ref.v[j]) {
			i++;
		} else {
			j++;
		}
	}
	if (exact < designed.n * 9 / 10)
		fail_msg("%zu of %zu designed cuts found", exact, designed.n);
	cuts_release(&designed);
	cuts_release(&ref);
	free(d);
}

static void test_split_invariance(void **state)
{
	const struct cf_chunker_params *ps[] = { &small_params, &mid_params };
	const size_t pieces[] = { 1, 7, 0, 4093, 65536 };
	uint64_t gear[256];

	(void)state;
	cf_chunker_gear_from_seed(gear, 3);
	for (size_t i = 0; i < 2; i++) {
		struct cuts whole = { 0 };
		size_t len;
		uint8_t *d = mixed_stream(ps[i], &len);

		chunk_stream(ps[i], gear, d, len, len, &whole);
		assert_true(whole.n > 20);
		for (size_t j = 0; j < sizeof(pieces) / sizeof(pieces[0]); j++) {
			struct cuts split = { 0 };

			chunk_stream(ps[i], gear, d, len, pieces[j], &split);
			assert_cuts_equal(&whole, &split);
			cuts_release(&split);
		}
		cuts_release(&whole);
		free(d);
	}
}

static void test_size_bounds(void **state)
{
	const struct cf_chunker_params *ps[] = { &small_params, &mid_params, &default_params };
	uint64_t gear[256];

	(void)state;
	cf_chunker_gear_from_seed(gear, 1);
	for (size_t i = 0; i < 3; i++) {
		const struct cf_chunker_params *p = ps[i];
		struct cuts cuts = { 0 };
		size_t len, at_max = 0, before_avg = 0, after_avg = 0;
		uint8_t *d = mixed_stream(p, &len);
		uint64_t prev = 0;

		chunk_stream(p, gear, d, len, 0, &cuts);
		for (size_t j = 0; j < cuts.n; j++) {
			uint64_t sz = cuts.v[j] - prev;

			if (sz < p->min || sz > p->max)
				fail_msg("chunk %zu of %llu bytes outside [%u, %u]", j,
					 (unsigned long long)sz, p->min, p->max);
			at_max += sz == p->max;
			before_avg += sz < p->avg;
			after_avg += sz > p->avg && sz < p->max;
			prev = cuts.v[j];
		}
		/* The last chunk is what is left: no lower bound. */
		assert_true(len - prev > 0 && len - prev <= p->max);
		/* The zero run forces max cuts; random data cuts on both sides of avg. */
		assert_true(at_max >= 3);
		assert_true(before_avg > 0);
		assert_true(after_avg > 0);
		cuts_release(&cuts);
		free(d);
	}
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Hashes of the chunks of data[0..len), sorted. */
static uint64_t *chunk_hashes(const uint64_t *gear, const uint8_t *d, size_t len, size_t *n)
{
	struct cuts cuts = { 0 };
	uint64_t *h, prev = 0;

	chunk_stream(&default_params, gear, d, len, 4 * MiB, &cuts);
	cuts_push(&cuts, len);
	h = malloc(cuts.n * sizeof(*h));
	assert_non_null(h);
	for (size_t i = 0; i < cuts.n; i++) {
		h[i] = fnv1a(d + prev, cuts.v[i] - prev);
		prev = cuts.v[i];
	}
	*n = cuts.n;
	cuts_release(&cuts);
	qsort(h, *n, sizeof(*h), cmp_u64);
	return h;
}

static void test_insertion_locality(void **state)
{
	const size_t len = 100 * (size_t)MiB;
	const size_t at[] = { 50 * (size_t)MiB + 12345, 3 * (size_t)MiB + 1, 77 * (size_t)MiB };
	uint64_t gear[256];
	uint8_t *a = random_stream(len, 99), *b = malloc(len + 1);
	uint64_t *ha, *hb;
	size_t na, nb;

	(void)state;
	assert_non_null(b);
	cf_chunker_gear_from_seed(gear, 5);
	ha = chunk_hashes(gear, a, len, &na);
	assert_true(na > 50);
	for (size_t t = 0; t < sizeof(at) / sizeof(at[0]); t++) {
		size_t changed = 0, i = 0, j = 0;

		memcpy(b, a, at[t]);
		b[at[t]] = 0x5a;
		memcpy(b + at[t] + 1, a + at[t], len - at[t]);
		hb = chunk_hashes(gear, b, len + 1, &nb);
		/* chunks of b that a does not have (multiset difference) */
		while (j < nb) {
			if (i < na && ha[i] < hb[j]) {
				i++;
			} else if (i < na && ha[i] == hb[j]) {
				i++;
				j++;
			} else {
				changed++;
				j++;
			}
		}
		if (changed < 1 || changed > 3)
			fail_msg("insertion at %zu: %zu of %zu chunks new", at[t], changed, nb);
		free(hb);
	}
	free(ha);
	free(a);
	free(b);
}

/*
 * Expected chunk length for random data: min, plus an exponential wait with
 * rate 2^-(bits+2) cut off at avg, plus (if that got to avg) one with rate
 * 2^-(bits-2).  max is too far out to matter.
 */
static double model_mean(const struct cf_chunker_params *p)
{
	double ps = 1.0 / (4.0 * p->avg), pl = 4.0 / p->avg;
	double reach_avg = exp(-ps * (p->avg - p->min));

	return p->min + (1 - reach_avg) / ps + reach_avg / pl;
}

static void test_mean_size(void **state)
{
	const struct cf_chunker_params *ps[] = { &small_params, &mid_params, &default_params };
	const size_t lens[] = { 64 * (size_t)MiB, 64 * (size_t)MiB, 192 * (size_t)MiB };
	const double tolerance[] = { 0.03, 0.06, 0.12 };
	uint64_t gear[256];

	(void)state;
	cf_chunker_gear_from_seed(gear, 9);
	for (size_t i = 0; i < 3; i++) {
		struct cuts cuts = { 0 };
		uint8_t *d = random_stream(lens[i], 1000 + i);
		double mean, want = model_mean(ps[i]);

		chunk_stream(ps[i], gear, d, lens[i], 0, &cuts);
		assert_true(cuts.n > 10);
		mean = (double)cuts.v[cuts.n - 1] / cuts.n;
		if (mean < want * (1 - tolerance[i]) || mean > want * (1 + tolerance[i]))
			fail_msg("avg %u: mean chunk %.0f, model %.0f", ps[i]->avg, mean, want);
		/* and, whatever the model says, near the configured average */
		assert_true(mean > 0.9 * ps[i]->avg && mean < 1.5 * ps[i]->avg);
		cuts_release(&cuts);
		free(d);
	}
}

static void test_reset(void **state)
{
	uint64_t gear[256];
	struct cf_chunker c;
	struct cuts fresh = { 0 };
	size_t len = 2 * MiB, off = 0, n = 0;
	uint8_t *d = random_stream(len, 4);

	(void)state;
	cf_chunker_gear_from_seed(gear, 1);
	chunk_stream(&small_params, gear, d, len, len, &fresh);
	cf_chunker_init(&c, &small_params, gear);
	/* half a chunk of other data, then start over */
	assert_true(cf_chunker_scan(&c, d + 1000, small_params.min + 500) == CF_CHUNKER_NONE);
	cf_chunker_reset(&c);
	while (off < len) {
		size_t k = cf_chunker_scan(&c, d + off, len - off);

		if (k == CF_CHUNKER_NONE)
			break;
		off += k;
		assert_true(n < fresh.n);
		assert_true(fresh.v[n++] == off);
	}
	assert_int_equal(n, fresh.n);
	cuts_release(&fresh);
	free(d);
}

static void test_params_check(void **state)
{
	static const struct cf_chunker_params good[] = {
		{ CF_CHUNKER_DEFAULT_MIN, CF_CHUNKER_DEFAULT_AVG, CF_CHUNKER_DEFAULT_MAX },
		{ 64, 128, 129 },
		{ 2 * KiB, 8 * KiB, 64 * KiB },
		{ 16 * MiB, 32 * MiB, 64 * MiB },
	};
	static const struct cf_chunker_params bad[] = {
		{ 0, 0, 0 },
		{ 63, 128, 256 },                 /* min below the hash window */
		{ 512 * KiB, 1000 * KiB, 8 * MiB }, /* avg not a power of two */
		{ 512 * KiB, 0, 8 * MiB },        /* avg zero */
		{ 1 * MiB, 1 * MiB, 8 * MiB },    /* min == avg */
		{ 2 * MiB, 1 * MiB, 8 * MiB },    /* min > avg */
		{ 512 * KiB, 1 * MiB, 1 * MiB },  /* max == avg */
		{ 512 * KiB, 1 * MiB, 768 * KiB },/* max < avg */
		{ 16 * MiB, 32 * MiB, 64 * MiB + 1 }, /* max too big */
		{ 64 * MiB, 128 * MiB, 256 * MiB },
		{ 512 * KiB, 0x80000000u, 0xffffffffu },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(cf_chunker_params_check(&good[i]), CF_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cf_err_clear();
		if (cf_chunker_params_check(&bad[i]) != CF_EINVAL)
			fail_msg("params %zu {%u, %u, %u} accepted", i, bad[i].min, bad[i].avg, bad[i].max);
		assert_string_not_equal(cf_errmsg(CF_EINVAL), cf_strerror(CF_EINVAL));
	}
	assert_int_equal(cf_chunker_params_check(NULL), CF_EINVAL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params_check),
		cmocka_unit_test(test_gear_from_seed),
		cmocka_unit_test(test_matches_reference),
		cmocka_unit_test(test_phase_edges),
		cmocka_unit_test(test_split_invariance),
		cmocka_unit_test(test_size_bounds),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_mean_size),
		cmocka_unit_test(test_insertion_locality),
		cmocka_unit_test(test_golden_mid),
		cmocka_unit_test(test_golden_default),
	};

	if (argc > 1 && strcmp(argv[1], "--print-golden") == 0) {
		print_golden("golden_mid", &mid_params, GOLDEN_MID_LEN);
		print_golden("golden_default", &default_params, GOLDEN_DEFAULT_LEN);
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
