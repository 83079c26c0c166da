/*
 * test_snapshot - the snapshot record: round trips with and without the
 * summary, restic-written records read back, required fields and malformed
 * values refused, the `snapshots --json` object, and the time text (RFC 3339
 * with offsets and any fractional digits, local "YYYY-MM-DD HH:MM:SS", years
 * before 1970, the ends of the int64 nanosecond range), and the "sources"
 * list (round trip, a golden record, older records without it, credentials
 * never stored).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "repo/snapshot.h"

#define NS 1000000000LL
#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void fill_id(uint8_t id[CF_ID_LEN], uint8_t seed)
{
	for (int i = 0; i < CF_ID_LEN; i++)
		id[i] = (uint8_t)(seed + 17 * i);
}

static void make_full(struct cf_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->time_ns = 1795410240123456789LL;
	s->hostname = strdup("web-1.example.org");
	s->username = strdup("root");
	s->uid = 0;
	s->gid = 4294967295u;
	assert_int_equal(cf_snapshot_add_path(s, "/var/lib/app"), CF_OK);
	assert_int_equal(cf_snapshot_add_path(s, "/srv/d\xc3\xa4ta \"quoted\""), CF_OK);
	assert_int_equal(cf_snapshot_add_tag(s, "daily"), CF_OK);
	assert_int_equal(cf_snapshot_add_tag(s, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"), CF_OK);
	assert_int_equal(cf_snapshot_add_tag(s, "\xf0\x9f\x90\xb3 emoji"), CF_OK);
	fill_id(s->tree, 1);
	s->has_parent = true;
	fill_id(s->parent, 2);
	s->program_version = strdup("coffer 0.1.0");
	s->has_summary = true;
	s->summary = (struct cf_snapshot_summary){
		.backup_start_ns = 1795410200000000001LL,
		.backup_end_ns = 1795410240123456789LL,
		.files_new = 1, .files_changed = 2, .files_unmodified = 3,
		.dirs_new = 4, .dirs_changed = 5, .dirs_unmodified = 6,
		.data_blobs = 7, .tree_blobs = 8,
		.data_added = 1ULL << 40, .data_added_packed = (1ULL << 40) - 12345,
		.total_files_processed = 6, .total_bytes_processed = UINT64_MAX,
		.files_unreadable = 9,
	};
	assert_non_null(s->hostname);
}

static void assert_list_equal(char **a, size_t na, char **b, size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++)
		assert_string_equal(a[i], b[i]);
}

static void assert_snapshot_equal(const struct cf_snapshot *a, const struct cf_snapshot *b)
{
	assert_true(a->time_ns == b->time_ns);
	assert_string_equal(a->hostname, b->hostname);
	if (a->username)
		assert_string_equal(a->username, b->username);
	else
		assert_null(b->username);
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_list_equal(a->paths, a->npaths, b->paths, b->npaths);
	assert_list_equal(a->tags, a->ntags, b->tags, b->ntags);
	assert_memory_equal(a->tree, b->tree, CF_ID_LEN);
	assert_int_equal(a->has_parent, b->has_parent);
	if (a->has_parent)
		assert_memory_equal(a->parent, b->parent, CF_ID_LEN);
	if (a->program_version)
		assert_string_equal(a->program_version, b->program_version);
	else
		assert_null(b->program_version);
	assert_int_equal(a->has_summary, b->has_summary);
	assert_memory_equal(&a->summary, &b->summary, sizeof(a->summary));
}

static void test_roundtrip_full(void **state)
{
	struct cf_snapshot s, d = { 0 };
	struct cf_buf j = CF_BUF_INIT, j2 = CF_BUF_INIT;

	(void)state;
	make_full(&s);
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_OK);
	assert_int_equal(cf_snapshot_decode(j.data, j.len, &d), CF_OK);
	assert_snapshot_equal(&s, &d);
	assert_int_equal(cf_snapshot_encode(&d, &j2), CF_OK);
	assert_int_equal(j.len, j2.len);
	assert_memory_equal(j.data, j2.data, j.len);

	/* restic's names, in restic's order, and the UTF-8 written as is. */
	const char *t = (const char *)j.data;
	assert_non_null(strstr(t, "{\"time\":\"2026-11-23T05:04:00.123456789Z\",\"parent\":\""));
	assert_non_null(strstr(t, "\"hostname\":\"web-1.example.org\",\"username\":\"root\","
			       "\"uid\":0,\"gid\":4294967295,\"tags\":[\"daily\","
			       "\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\""));
	assert_non_null(strstr(t, "\"summary\":{\"backup_start\":\"2026-11-23T05:03:20.000000001Z\","
			       "\"backup_end\":\"2026-11-23T05:04:00.123456789Z\",\"files_new\":1,"
			       "\"files_changed\":2,\"files_unmodified\":3,\"dirs_new\":4,"
			       "\"dirs_changed\":5,\"dirs_unmodified\":6,\"data_blobs\":7,"
			       "\"tree_blobs\":8,\"data_added\":1099511627776,"
			       "\"data_added_packed\":1099511615431,\"total_files_processed\":6,"
			       "\"total_bytes_processed\":-1,\"files_unreadable\":9}}"));
	assert_null(strstr(t, "\"id\""));
	cf_snapshot_release(&s);
	cf_snapshot_release(&d);
	assert_null(d.hostname);
	assert_int_equal(d.npaths, 0);
	cf_buf_release(&j);
	cf_buf_release(&j2);
}

static void test_roundtrip_minimal(void **state)
{
	struct cf_snapshot s = { 0 }, d = { 0 };
	struct cf_buf j = CF_BUF_INIT;
	char hex[CF_ID_HEX], want[256];

	(void)state;
	s.time_ns = -1;  /* one nanosecond before 1970 */
	s.hostname = strdup("h");
	fill_id(s.tree, 9);
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_OK);
	cf_hex(s.tree, CF_ID_LEN, hex);
	snprintf(want, sizeof(want), "{\"time\":\"1969-12-31T23:59:59.999999999Z\",\"tree\":\"%s\","
		 "\"paths\":[],\"hostname\":\"h\",\"uid\":0,\"gid\":0}", hex);
	assert_string_equal((const char *)j.data, want);
	assert_int_equal(cf_snapshot_decode(j.data, j.len, &d), CF_OK);
	assert_snapshot_equal(&s, &d);
	assert_false(d.has_parent);
	assert_false(d.has_summary);
	assert_null(d.tags);
	cf_snapshot_release(&s);
	cf_snapshot_release(&d);
	cf_buf_release(&j);
}

/* A record as restic writes it: an offset, 7 fractional digits, fields coffer
 * does not know, no files_unreadable. */
static void test_decode_restic(void **state)
{
	static const char json[] =
		"{\"time\":\"2024-03-10T14:22:05.1234567+01:00\",\"parent\":\"" ID64 "\","
		"\"tree\":\"" ID64 "\",\"paths\":[\"/home/u\"],\"hostname\":\"laptop\","
		"\"username\":\"u\",\"uid\":1000,\"gid\":1000,\"excludes\":[\"*.tmp\"],"
		"\"tags\":[\"x\"],\"original\":\"" ID64 "\",\"program_version\":\"restic 0.16.4\","
		"\"summary\":{\"backup_start\":\"2024-03-10T14:22:03.5+01:00\","
		"\"backup_end\":\"2024-03-10T14:22:05.123456789+01:00\",\"files_new\":10,"
		"\"files_changed\":0,\"files_unmodified\":5,\"dirs_new\":1,\"dirs_changed\":0,"
		"\"dirs_unmodified\":2,\"data_blobs\":12,\"tree_blobs\":2,\"data_added\":4096,"
		"\"data_added_packed\":2048,\"total_files_processed\":15,"
		"\"total_bytes_processed\":123456}}";
	struct cf_snapshot s = { 0 };
	int64_t want;

	(void)state;
	assert_int_equal(cf_snapshot_decode(json, strlen(json), &s), CF_OK);
	assert_int_equal(cf_parse_time("2024-03-10T13:22:05Z", &want), CF_OK);
	assert_true(s.time_ns == want + 123456700);
	assert_true(s.summary.backup_start_ns == want - 2 * NS + 500000000 - 0);
	assert_true(s.summary.backup_end_ns == want + 123456789);
	assert_string_equal(s.hostname, "laptop");
	assert_string_equal(s.program_version, "restic 0.16.4");
	assert_int_equal(s.uid, 1000);
	assert_true(s.has_parent);
	assert_int_equal(s.parent[0], 0x01);
	assert_int_equal(s.tree[31], 0xef);
	assert_int_equal(s.npaths, 1);
	assert_int_equal(s.ntags, 1);
	assert_true(s.has_summary);
	assert_int_equal(s.summary.files_new, 10);
	assert_int_equal(s.summary.files_unmodified, 5);
	assert_int_equal(s.summary.total_bytes_processed, 123456);
	assert_int_equal(s.summary.files_unreadable, 0);
	cf_snapshot_release(&s);
}

static void expect_corrupt(const char *json, const char *msg_part, int line)
{
	struct cf_snapshot s = { 0 };
	int r;

	cf_err_clear();
	r = cf_snapshot_decode(json, strlen(json), &s);
	if (r != CF_ECORRUPT)
		fail_msg("line %d: decode returned %d for %s", line, r, json);
	if (msg_part && !strstr(cf_errmsg(r), msg_part))
		fail_msg("line %d: message \"%s\" lacks \"%s\"", line, cf_errmsg(r), msg_part);
	assert_null(s.hostname);
	assert_null(s.paths);
	assert_int_equal(s.npaths, 0);
	assert_null(s.sources);
	assert_int_equal(s.nsources, 0);
}
#define BAD(json, msg) expect_corrupt(json, msg, __LINE__)

#define T "\"time\":\"2026-01-01T00:00:00Z\""
#define TR "\"tree\":\"" ID64 "\""
#define P "\"paths\":[\"/a\"]"
#define H "\"hostname\":\"h\""

static void test_decode_rejects(void **state)
{
	(void)state;
	/* Each required field missing. */
	BAD("{" TR "," P "," H "}", "missing \"time\"");
	BAD("{" T "," P "," H "}", "missing \"tree\"");
	BAD("{" T "," TR "," H "}", "missing \"paths\"");
	BAD("{" T "," TR "," P "}", "missing \"hostname\"");
	/* Malformed values. */
	BAD("{\"time\":\"2026-01-01 00:00:00\"," TR "," P "," H "}", "\"time\"");  /* no zone */
	BAD("{\"time\":\"yesterday\"," TR "," P "," H "}", "\"time\"");
	BAD("{\"time\":1767225600," TR "," P "," H "}", "\"time\" is not a string");
	BAD("{" T ",\"tree\":\"" ID64 "00\"," P "," H "}", "\"tree\"");
	BAD("{" T ",\"tree\":\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\","
	    P "," H "}", "\"tree\"");
	BAD("{" T ",\"tree\":null," P "," H "}", "\"tree\"");
	BAD("{" T "," TR ",\"parent\":\"abc\"," P "," H "}", "\"parent\"");
	BAD("{" T "," TR ",\"paths\":\"/a\"," H "}", "\"paths\" is not an array");
	BAD("{" T "," TR ",\"paths\":[\"/a\",5]," H "}", "\"paths\"[1]");
	BAD("{" T "," TR "," P ",\"hostname\":[]}", "\"hostname\" is not a string");
	BAD("{" T "," TR "," P "," H ",\"uid\":\"0\"}", "\"uid\" is not an integer");
	BAD("{" T "," TR "," P "," H ",\"uid\":-1}", "\"uid\" is out of range");
	BAD("{" T "," TR "," P "," H ",\"gid\":4294967296}", "\"gid\" is out of range");
	BAD("{" T "," TR "," P "," H ",\"tags\":[null]}", "\"tags\"[0]");
	BAD("{" T "," TR "," P "," H ",\"summary\":[]}", "\"summary\" is not an object");
	BAD("{" T "," TR "," P "," H ",\"summary\":{\"files_new\":1.5}}", "\"files_new\"");
	BAD("{" T "," TR "," P "," H ",\"summary\":{\"backup_end\":\"x\"}}", "\"backup_end\"");
	BAD("{" T "," TR "," P "," H ",\"hostname\":\"h2\"}", "duplicate");
	BAD("{" T "," TR "," P ",\"hostname\":\"a\\u0000b\"}", "JSON");
	BAD("[]", "not a JSON object");
	BAD("", "JSON");
	BAD("{" T "," TR "," P "," H, "JSON");  /* truncated */

	/* The minimal valid record, for contrast; unknown fields ignored. */
	struct cf_snapshot s = { 0 };
	const char *ok = "{" T "," TR "," P "," H ",\"future\":{\"a\":[1]}}";
	assert_int_equal(cf_snapshot_decode(ok, strlen(ok), &s), CF_OK);
	cf_snapshot_release(&s);
}

static void test_truncations(void **state)
{
	struct cf_snapshot s, d = { 0 };
	struct cf_buf j = CF_BUF_INIT;

	(void)state;
	make_full(&s);
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_OK);
	for (size_t len = 0; len < j.len; len++) {
		int r = cf_snapshot_decode(j.data, len, &d);

		if (r != CF_ECORRUPT)
			fail_msg("prefix of %zu bytes: %d", len, r);
		assert_null(d.hostname);
	}
	cf_snapshot_release(&s);
	cf_buf_release(&j);
}

static void test_to_json(void **state)
{
	struct cf_snapshot s;
	struct cf_buf j = CF_BUF_INIT;
	json_t *o;
	char *dumped;

	(void)state;
	make_full(&s);
	for (int i = 0; i < CF_ID_LEN; i++)
		s.id[i] = (uint8_t)(0xde + i);
	o = cf_snapshot_to_json(&s);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "id")),
			    "dedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfd");
	assert_string_equal(json_string_value(json_object_get(o, "short_id")), "dedfe0e1");
	assert_string_equal(json_string_value(json_object_get(o, "hostname")), "web-1.example.org");
	assert_int_equal(json_array_size(json_object_get(o, "tags")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "summary"),
							    "files_unreadable")), 9);
	/* Apart from id and short_id it is the encoded record. */
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_OK);
	json_object_del(o, "id");
	json_object_del(o, "short_id");
	dumped = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_non_null(dumped);
	assert_string_equal(dumped, (const char *)j.data);
	free(dumped);
	json_decref(o);
	cf_buf_release(&j);
	cf_snapshot_release(&s);
}

static void test_encode_lossy_and_refusals(void **state)
{
	struct cf_snapshot s = { 0 }, d = { 0 };
	struct cf_buf j = CF_BUF_INIT;

	(void)state;
	fill_id(s.tree, 3);
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_EINVAL);  /* no hostname */
	assert_int_equal(j.len, 0);
	s.hostname = strdup("h\xff");
	assert_int_equal(cf_snapshot_add_path(&s, "/data/caf\xe9"), CF_OK);  /* Latin-1 */
	assert_int_equal(cf_snapshot_add_tag(&s, "\xed\xa0\x80"), CF_OK);    /* surrogate */
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_OK);
	assert_int_equal(cf_snapshot_decode(j.data, j.len, &d), CF_OK);
	assert_string_equal(d.hostname, "h\xef\xbf\xbd");
	assert_string_equal(d.paths[0], "/data/caf\xef\xbf\xbd");
	assert_string_equal(d.tags[0], "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	cf_snapshot_release(&s);
	cf_snapshot_release(&d);
	cf_buf_release(&j);
}

/* ---- sources --------------------------------------------------------- */

/* make_full plus one source of each kind; the server URL carries a password,
 * a secret query value and a database list. */
static void make_with_sources(struct cf_snapshot *s)
{
	struct cf_snapshot_source *e;

	make_full(s);
	assert_int_equal(cf_snapshot_add_source(s, CF_SOURCE_VOLUME, "/var/lib/app", NULL, NULL), CF_OK);
	assert_int_equal(cf_snapshot_add_source(s, CF_SOURCE_MARIADB, "mariadb",
						"mariadb://bkuser:s3cr%40t@db:3306/app,shop?socket=/run/m.sock&token=tok3n",
						&e), CF_OK);
	assert_int_equal(cf_snapshot_source_add_db(e, "app", "mariadb/app.sql"), CF_OK);
	assert_int_equal(cf_snapshot_source_add_db(e, "shop", "mariadb/shop.sql"), CF_OK);
	assert_int_equal(cf_snapshot_add_source(s, CF_SOURCE_SQLITE, "/data/app.db", NULL, NULL), CF_OK);
	assert_int_equal(cf_snapshot_add_source(s, CF_SOURCE_COMMAND, "postgres/x.sql", NULL, NULL), CF_OK);
}

/* The sources as this version encodes them: the golden bytes of the field. */
#define SOURCES_JSON \
	"\"sources\":[{\"kind\":\"volume\",\"path\":\"/var/lib/app\"}," \
	"{\"kind\":\"mariadb\",\"path\":\"mariadb\"," \
	"\"url\":\"mariadb://db:3306/app,shop?socket=/run/m.sock&token=***\"," \
	"\"databases\":[{\"name\":\"app\",\"path\":\"mariadb/app.sql\"}," \
	"{\"name\":\"shop\",\"path\":\"mariadb/shop.sql\"}]}," \
	"{\"kind\":\"sqlite\",\"path\":\"/data/app.db\"}," \
	"{\"kind\":\"command\",\"path\":\"postgres/x.sql\"}]"

static void assert_sources_equal(const struct cf_snapshot *a, const struct cf_snapshot *b)
{
	assert_int_equal(a->nsources, b->nsources);
	for (size_t i = 0; i < a->nsources; i++) {
		const struct cf_snapshot_source *x = &a->sources[i], *y = &b->sources[i];

		assert_int_equal(x->kind, y->kind);
		assert_string_equal(x->path, y->path);
		if (x->url)
			assert_string_equal(x->url, y->url);
		else
			assert_null(y->url);
		assert_int_equal(x->ndbs, y->ndbs);
		for (size_t k = 0; k < x->ndbs; k++) {
			assert_string_equal(x->dbs[k].name, y->dbs[k].name);
			assert_string_equal(x->dbs[k].path, y->dbs[k].path);
		}
	}
}

static void test_sources_roundtrip(void **state)
{
	struct cf_snapshot s, d = { 0 }, c = { 0 };
	struct cf_buf j = CF_BUF_INIT, j2 = CF_BUF_INIT;
	json_t *o;

	(void)state;
	make_with_sources(&s);
	/* stored stripped, not only encoded stripped */
	assert_string_equal(s.sources[1].url, "mariadb://db:3306/app,shop?socket=/run/m.sock&token=***");
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_OK);
	const char *t = (const char *)j.data;
	/* after every restic field, in the order given */
	assert_non_null(strstr(t, "\"files_unreadable\":9}," SOURCES_JSON "}"));
	assert_null(strstr(t, "s3cr"));
	assert_null(strstr(t, "bkuser"));
	assert_null(strstr(t, "tok3n"));
	assert_int_equal(cf_snapshot_decode(j.data, j.len, &d), CF_OK);
	assert_snapshot_equal(&s, &d);
	assert_sources_equal(&s, &d);
	assert_int_equal(cf_snapshot_encode(&d, &j2), CF_OK);
	assert_int_equal(j.len, j2.len);
	assert_memory_equal(j.data, j2.data, j.len);
	/* `snapshots --json` shows them */
	o = cf_snapshot_to_json(&d);
	assert_non_null(o);
	assert_int_equal(json_array_size(json_object_get(o, "sources")), 4);
	json_decref(o);
	/* a deep copy, as the backup makes of its caller's list */
	assert_int_equal(cf_snapshot_copy_sources(&c, s.sources, s.nsources), CF_OK);
	assert_sources_equal(&s, &c);
	assert_ptr_not_equal(c.sources[1].dbs[0].name, s.sources[1].dbs[0].name);
	cf_snapshot_release(&c);
	cf_snapshot_release(&s);
	cf_snapshot_release(&d);
	assert_null(d.sources);
	assert_int_equal(d.nsources, 0);
	cf_buf_release(&j);
	cf_buf_release(&j2);
}

/* A record written before sources existed reads as it did: no sources, and
 * it encodes without the field. */
static void test_sources_absent(void **state)
{
	struct cf_snapshot s = { 0 };
	struct cf_buf j = CF_BUF_INIT;
	const char *old = "{" T "," TR "," P "," H ",\"uid\":0,\"gid\":0}";

	(void)state;
	assert_int_equal(cf_snapshot_decode(old, strlen(old), &s), CF_OK);
	assert_int_equal(s.nsources, 0);
	assert_null(s.sources);
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_OK);
	assert_null(strstr((const char *)j.data, "sources"));
	cf_snapshot_release(&s);
	cf_buf_release(&j);
}

/* A golden record with sources, bytes as this version writes them: a later
 * version must read it the same. */
static void test_sources_golden(void **state)
{
	static const char golden[] =
		"{\"time\":\"2026-12-07T12:00:00.000000000Z\",\"tree\":\"" ID64 "\","
		"\"paths\":[\"/var/lib/app\",\"mariadb/app.sql\",\"mariadb/shop.sql\","
		"\"/data/app.db\",\"postgres/x.sql\"],\"hostname\":\"h\",\"uid\":0,\"gid\":0,"
		SOURCES_JSON "}";
	struct cf_snapshot s = { 0 };
	struct cf_buf j = CF_BUF_INIT;

	(void)state;
	assert_int_equal(cf_snapshot_decode(golden, strlen(golden), &s), CF_OK);
	assert_int_equal(s.nsources, 4);
	assert_int_equal(s.sources[0].kind, CF_SOURCE_VOLUME);
	assert_string_equal(s.sources[0].path, "/var/lib/app");
	assert_null(s.sources[0].url);
	assert_int_equal(s.sources[1].kind, CF_SOURCE_MARIADB);
	assert_string_equal(s.sources[1].path, "mariadb");
	assert_int_equal(s.sources[1].ndbs, 2);
	assert_string_equal(s.sources[1].dbs[1].name, "shop");
	assert_string_equal(s.sources[1].dbs[1].path, "mariadb/shop.sql");
	assert_int_equal(s.sources[2].kind, CF_SOURCE_SQLITE);
	assert_int_equal(s.sources[3].kind, CF_SOURCE_COMMAND);
	assert_string_equal(s.sources[3].path, "postgres/x.sql");
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_OK);
	assert_string_equal((const char *)j.data, golden);
	cf_snapshot_release(&s);
	cf_buf_release(&j);
}

static void expect_strip(const char *in, const char *want, int line)
{
	char *got = cf_snapshot_strip_url(in);

	assert_non_null(got);
	if (strcmp(got, want))
		fail_msg("line %d: strip(%s) = %s, want %s", line, in, got, want);
	free(got);
}
#define STRIP(in, want) expect_strip(in, want, __LINE__)

static void test_sources_urls(void **state)
{
	struct cf_snapshot s = { 0 };

	(void)state;
	STRIP("mariadb://u:pw@db:3306/app", "mariadb://db:3306/app");
	STRIP("mariadb://u@db", "mariadb://db");
	STRIP("mysql://u:p@ss@w:rd@[::1]:3307/", "mysql://[::1]:3307/");  /* '@' in a raw password */
	STRIP("mariadb://u:pw@?socket=/run/mysqld.sock", "mariadb://?socket=/run/mysqld.sock");
	STRIP("mariadb://db:3306/a@b", "mariadb://db:3306/a@b");            /* '@' after the host */
	STRIP("mariadb://db/x?password=hunter2&socket=/s", "mariadb://db/x?password=***&socket=/s");
	STRIP("u:pw@db:3306", "db:3306");                                    /* no scheme */
	STRIP("", "");

	/* a stored URL that holds a password (another writer) is stripped on
	 * reading too: it never reaches `snapshots --json` */
	const char *j = "{" T "," TR "," P "," H ",\"sources\":[{\"kind\":\"mariadb\",\"path\":\"mariadb\","
			"\"url\":\"mariadb://root:hunter2@db/app\",\"databases\":[]}]}";
	assert_int_equal(cf_snapshot_decode(j, strlen(j), &s), CF_OK);
	assert_int_equal(s.nsources, 1);
	assert_string_equal(s.sources[0].url, "mariadb://db/app");
	assert_int_equal(s.sources[0].ndbs, 0);
	cf_snapshot_release(&s);

	/* what the struct holds is stripped again when encoded */
	struct cf_buf b = CF_BUF_INIT;
	make_full(&s);
	assert_int_equal(cf_snapshot_add_source(&s, CF_SOURCE_MARIADB, "mariadb", "mariadb://db", NULL), CF_OK);
	free(s.sources[0].url);
	s.sources[0].url = strdup("mariadb://u:hunter2@db");
	assert_int_equal(cf_snapshot_encode(&s, &b), CF_OK);
	assert_null(strstr((const char *)b.data, "hunter2"));
	assert_non_null(strstr((const char *)b.data, "\"url\":\"mariadb://db\""));
	cf_snapshot_release(&s);
	cf_buf_release(&b);

	/* the add functions refuse what cannot be encoded */
	assert_int_equal(cf_snapshot_add_source(&s, 0, "/x", NULL, NULL), CF_EINVAL);
	assert_int_equal(cf_snapshot_add_source(&s, CF_SOURCE_VOLUME, NULL, NULL, NULL), CF_EINVAL);
	assert_int_equal(s.nsources, 0);
	assert_null(cf_source_kind_name(0));
	assert_null(cf_source_kind_name(CF_SOURCE_POSTGRES + 1));
	assert_string_equal(cf_source_kind_name(CF_SOURCE_POSTGRES), "postgres");
	assert_string_equal(cf_source_kind_name(CF_SOURCE_SQLITE), "sqlite");
	cf_snapshot_release(&s);
}

#define S0 "{" T "," TR "," P "," H ",\"sources\":"

static void test_sources_rejects(void **state)
{
	struct cf_snapshot s = { 0 };

	(void)state;
	BAD(S0 "{}}", "\"sources\" is not an array");
	BAD(S0 "[1]}", "\"sources\"[0] is not an object");
	BAD(S0 "[{\"path\":\"/a\"}]}", "\"sources\"[0].kind");
	BAD(S0 "[{\"kind\":7,\"path\":\"/a\"}]}", "\"sources\"[0].kind");
	BAD(S0 "[{\"kind\":\"volume\"}]}", "missing \"path\"");
	BAD(S0 "[{\"kind\":\"volume\",\"path\":[]}]}", "\"path\" is not a string");
	BAD(S0 "[{\"kind\":\"mariadb\",\"path\":\"m\",\"url\":1}]}", "\"url\" is not a string");
	BAD(S0 "[{\"kind\":\"mariadb\",\"path\":\"m\",\"databases\":{}}]}", "databases is not an array");
	BAD(S0 "[{\"kind\":\"mariadb\",\"path\":\"m\",\"databases\":[\"app\"]}]}", "databases[0]");
	BAD(S0 "[{\"kind\":\"mariadb\",\"path\":\"m\",\"databases\":[{\"name\":\"a\"}]}]}", "missing \"path\"");
	/* a second bad entry after a good one: nothing is left behind */
	BAD(S0 "[{\"kind\":\"volume\",\"path\":\"/a\"},{\"kind\":\"volume\",\"path\":\"/b\",\"url\":{}}]}", "\"url\"");

	/* a kind of a later version is skipped, unknown keys are ignored */
	const char *ok = S0 "[{\"kind\":\"oracle\",\"path\":\"pg\",\"databases\":[1]},"
			 "{\"kind\":\"volume\",\"path\":\"/a\",\"owner\":{\"x\":1}}]}";
	assert_int_equal(cf_snapshot_decode(ok, strlen(ok), &s), CF_OK);
	assert_int_equal(s.nsources, 1);
	assert_string_equal(s.sources[0].path, "/a");
	cf_snapshot_release(&s);
	const char *empty = S0 "[]}";
	assert_int_equal(cf_snapshot_decode(empty, strlen(empty), &s), CF_OK);
	assert_int_equal(s.nsources, 0);
	cf_snapshot_release(&s);
}

static void test_sources_truncations(void **state)
{
	struct cf_snapshot s, d = { 0 };
	struct cf_buf j = CF_BUF_INIT;

	(void)state;
	make_with_sources(&s);
	assert_int_equal(cf_snapshot_encode(&s, &j), CF_OK);
	for (size_t len = 0; len < j.len; len++) {
		if (cf_snapshot_decode(j.data, len, &d) != CF_ECORRUPT)
			fail_msg("prefix of %zu bytes decoded", len);
		assert_null(d.sources);
	}
	cf_snapshot_release(&s);
	cf_buf_release(&j);
}

/* ---- time ------------------------------------------------------------ */

static void expect_time(const char *text, int64_t want, int line)
{
	int64_t got = 0;
	int r = cf_parse_time(text, &got);

	if (r != CF_OK)
		fail_msg("line %d: \"%s\": %s", line, text, cf_errmsg(r));
	if (got != want)
		fail_msg("line %d: \"%s\": got %lld want %lld", line, text, (long long)got,
			 (long long)want);
}
#define TIME(text, want) expect_time(text, want, __LINE__)

static void expect_bad_time(const char *text, int line)
{
	int64_t got;

	if (cf_parse_time(text, &got) != CF_EINVAL)
		fail_msg("line %d: \"%s\" accepted (%lld)", line, text, (long long)got);
}
#define BADTIME(text) expect_bad_time(text, __LINE__)

static void test_parse_time_rfc3339(void **state)
{
	const int64_t t0 = 1795410240LL * NS;  /* 2026-11-23T05:04:00Z */

	(void)state;
	TIME("2026-11-23T05:04:00Z", t0);
	TIME("2026-11-23t05:04:00z", t0);
	TIME("2026-11-23T06:04:00+01:00", t0);
	TIME("2026-11-23T00:34:00-04:30", t0);
	TIME("2026-11-24T04:04:00+23:00", t0);
	TIME("2026-11-23T05:04:00.5Z", t0 + 500000000);
	TIME("2026-11-23T05:04:00.000000001Z", t0 + 1);
	TIME("2026-11-23T05:04:00.123456789999Z", t0 + 123456789);  /* truncated */
	TIME("2026-11-23T06:04:00.25+01:00", t0 + 250000000);
	TIME("1970-01-01T00:00:00Z", 0);
	TIME("1969-12-31T23:59:59.999999999Z", -1);
	TIME("1970-01-01T01:00:00+01:00", 0);
	TIME("1960-01-01T00:00:00Z", -315619200LL * NS);
	TIME("1900-01-01T00:00:00Z", -2208988800LL * NS);
	TIME("2000-02-29T12:00:00Z", 951825600LL * NS);
	TIME("1677-09-21T00:12:43.145224192Z", INT64_MIN);
	TIME("2262-04-11T23:47:16.854775807Z", INT64_MAX);

	BADTIME("2262-04-11T23:47:16.854775808Z");  /* one past int64 */
	BADTIME("1677-09-21T00:12:43.145224191Z");
	BADTIME("9999-12-31T23:59:59Z");
	BADTIME("0000-01-01T00:00:00Z");
	BADTIME("");
	BADTIME("2026-11-23");
	BADTIME("2026-11-23T05:04Z");
	BADTIME("2026-11-23T05:04:00.Z");
	BADTIME("2026-11-23T05:04:00ZZ");
	BADTIME("2026-11-23T05:04:00+01");
	BADTIME("2026-11-23T05:04:00+0100");
	BADTIME("2026-11-23T05:04:00+24:00");
	BADTIME("2026-11-23T05:04:00 Z");
	BADTIME("2026-02-29T00:00:00Z");      /* not a leap year */
	BADTIME("1900-02-29T00:00:00Z");
	BADTIME("2026-04-31T00:00:00Z");
	BADTIME("2026-13-01T00:00:00Z");
	BADTIME("2026-00-01T00:00:00Z");
	BADTIME("2026-11-00T00:00:00Z");
	BADTIME("2026-11-23T24:00:00Z");
	BADTIME("2026-11-23T23:60:00Z");
	BADTIME("2026-11-23T23:59:60Z");
	BADTIME("2026-11-23X05:04:00Z");
	BADTIME("+2026-11-23T05:04:00Z");
	BADTIME("2026-1-23T05:04:00Z");
	BADTIME("2026-11-23T05:04:00Z ");
}

static void test_parse_time_local(void **state)
{
	const int64_t t0 = 1795410240LL * NS;  /* 2026-11-23T05:04:00Z */
	char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;

	(void)state;
	/* A POSIX TZ rule needs no tz database: CET/CEST with EU transitions. */
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	TIME("2026-11-23 06:04:00", t0);
	TIME("2026-07-01 12:00:00", 1782900000LL * NS);   /* summer: UTC+2 */
	TIME("2026-11-23 06:04:00.75", t0 + 750000000);
	TIME("1960-01-01 01:00:00", -315619200LL * NS);    /* before 1970 */
	TIME("2026-11-23T06:04:00", t0);                   /* 'T' without a zone: local too */
	/* An explicit zone wins over TZ. */
	TIME("2026-11-23 05:04:00Z", t0);
	TIME("2026-11-23T05:04:00Z", t0);

	setenv("TZ", "UTC0", 1);
	tzset();
	TIME("2026-11-23 05:04:00", t0);
	TIME("1969-12-31 23:59:59", -NS);  /* mktime's -1, a valid answer */

	setenv("TZ", "EST5", 1);
	tzset();
	TIME("2026-11-23 00:04:00", t0);
	BADTIME("2026-11-23 00:04");
	BADTIME("2026-02-30 00:04:00");
	BADTIME("yesterday");

	if (old)
		setenv("TZ", old, 1);
	else
		unsetenv("TZ");
	tzset();
	free(old);
}

static void test_format_time(void **state)
{
	static const struct {
		int64_t ns;
		const char *text;
	} cases[] = {
		{ 0, "1970-01-01T00:00:00.000000000Z" },
		{ -1, "1969-12-31T23:59:59.999999999Z" },
		{ -NS, "1969-12-31T23:59:59.000000000Z" },
		{ 1795410240LL * NS + 123456789, "2026-11-23T05:04:00.123456789Z" },
		{ 951825600LL * NS, "2000-02-29T12:00:00.000000000Z" },
		{ -2208988800LL * NS, "1900-01-01T00:00:00.000000000Z" },
		{ INT64_MIN, "1677-09-21T00:12:43.145224192Z" },
		{ INT64_MAX, "2262-04-11T23:47:16.854775807Z" },
	};
	char buf[40];
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cf_format_time(cases[i].ns, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].text);
		TIME(buf, cases[i].ns);
	}
	/* format -> parse is the identity over the whole int64 range, and agrees
	 * with the C library's gmtime where that is defined. */
	for (int i = 0; i < 200000; i++) {
		int64_t ns, back;
		struct tm tm;
		time_t secs;
		char want[40];

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(&ns, &x, sizeof(ns));
		cf_format_time(ns, buf, sizeof(buf));
		assert_int_equal(strlen(buf), 30);
		assert_int_equal(cf_parse_time(buf, &back), CF_OK);
		if (back != ns)
			fail_msg("%lld -> %s -> %lld", (long long)ns, buf, (long long)back);
		secs = (time_t)(ns / NS - (ns % NS < 0));
		assert_non_null(gmtime_r(&secs, &tm));
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
		assert_memory_equal(buf, want, 19);
	}
	/* A short buffer is truncated, not overrun. */
	cf_format_time(0, buf, 5);
	assert_string_equal(buf, "1970");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_full),
		cmocka_unit_test(test_roundtrip_minimal),
		cmocka_unit_test(test_decode_restic),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_to_json),
		cmocka_unit_test(test_encode_lossy_and_refusals),
		cmocka_unit_test(test_sources_roundtrip),
		cmocka_unit_test(test_sources_absent),
		cmocka_unit_test(test_sources_golden),
		cmocka_unit_test(test_sources_urls),
		cmocka_unit_test(test_sources_rejects),
		cmocka_unit_test(test_sources_truncations),
		cmocka_unit_test(test_parse_time_rfc3339),
		cmocka_unit_test(test_parse_time_local),
		cmocka_unit_test(test_format_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
