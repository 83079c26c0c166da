/*
 * test_repo - the repository layer on a real local backend in a temporary
 * directory: init and open (right, wrong and no password), the options init
 * stores, snapshots and their selection, snapshot and index files used only
 * under their own names, locks, and keys.  Blobs and packs are
 * test_repo_blobs; check is test_repo_check; the fixture they share is
 * testutil.h's (TESTUTIL_REPO).
 *
 * Every test reopens the repository from disk where it matters: what counts
 * is what a later process reads, not what one handle has in memory.  The KDF
 * runs at its cheapest (1 pass, 8 KiB) so the suite stays fast.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "repo/repo_int.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "store/backend.h"
#define TESTUTIL_REPO
#include "testutil.h"

/* ---- init / open ---- */

static void test_init_open(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir), *r2 = NULL;
	uint8_t id[CF_ID_LEN];
	char keyname[CF_ID_HEX];

	memcpy(id, cf_repo_config(r)->id, CF_ID_LEN);
	snprintf(keyname, sizeof(keyname), "%s", cf_repo_key_name(r));
	assert_int_equal(strlen(keyname), 64);
	assert_int_equal(cf_repo_config(r)->version, CF_REPO_VERSION);
	assert_int_equal(cf_repo_config(r)->compression, 3);
	assert_int_equal(cf_repo_config(r)->chunker.avg, CF_CHUNKER_DEFAULT_AVG);
	cf_repo_free(r);

	assert_int_equal(open_pw(f->dir, PW, &r), CF_OK);
	assert_memory_equal(cf_repo_config(r)->id, id, CF_ID_LEN);
	assert_string_equal(cf_repo_key_name(r), keyname);
	assert_int_equal(cf_repo_config(r)->chunker.min, CF_CHUNKER_DEFAULT_MIN);
	assert_int_equal(cf_repo_config(r)->chunker.max, CF_CHUNKER_DEFAULT_MAX);
	/* the chunker gear table is derived from the key: same on every open */
	uint64_t gear0 = cf_repo_gear(r)[0], gear255 = cf_repo_gear(r)[255];
	assert_true(gear0 != 0 || gear255 != 0);
	assert_int_equal(open_pw(f->dir, PW, &r2), CF_OK);
	assert_int_equal(cf_repo_gear(r2)[0], gear0);
	assert_int_equal(cf_repo_gear(r2)[255], gear255);
	cf_repo_free(r2);
	cf_repo_free(r);

	r = (struct cf_repo *)1;
	assert_int_equal(open_pw(f->dir, "wrong horse", &r), CF_EBADPASS);
	assert_null(r);
	assert_int_equal(open_pw(f->dir, "", &r), CF_EBADPASS);

	/* a second init is refused and leaves the repository as it was */
	struct cf_backend *be;
	struct cf_repo_init_opts o = { .compression = -1, .kdf_opslimit = 1, .kdf_memlimit = 8192 };
	assert_int_equal(cf_backend_local_new(f->dir, &be), CF_OK);
	assert_int_equal(cf_repo_init(be, "other", 5, &o, &r), CF_EEXIST);
	assert_null(r);
	r = reopen(f->dir);
	assert_memory_equal(cf_repo_config(r)->id, id, CF_ID_LEN);
	assert_int_equal(count_objects(r, "keys"), 1);
	cf_repo_free(r);
}

static void test_open_no_repo(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = NULL;
	char p[128];

	cf_err_clear();
	assert_int_equal(open_pw(f->dir, PW, &r), CF_ENOREPO);
	assert_non_null(strstr(cf_errmsg(CF_ENOREPO), f->dir));
	assert_null(r);
	snprintf(p, sizeof(p), "%s/does-not-exist", f->dir);
	assert_int_equal(open_pw(p, PW, &r), CF_ENOREPO);
	/* keys but no config (an init that died half-way) is not a repository */
	snprintf(p, sizeof(p), "%s/keys", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(open_pw(f->dir, PW, &r), CF_ENOREPO);
}

static void test_init_options_persist(void **state)
{
	struct fixture *f = *state;
	struct cf_backend *be;
	struct cf_repo *r = NULL;
	struct cf_repo_init_opts o = { .chunker = { 64 * 1024, 256 * 1024, 1024 * 1024 },
				       .compression = 0, .kdf_opslimit = 1, .kdf_memlimit = 8192 };
	assert_int_equal(cf_backend_local_new(f->dir, &be), CF_OK);
	assert_int_equal(cf_repo_init(be, PW, strlen(PW), &o, &r), CF_OK);
	cf_repo_free(r);
	r = reopen(f->dir);
	assert_int_equal(cf_repo_config(r)->compression, 0);
	assert_int_equal(cf_repo_config(r)->chunker.min, 64 * 1024);
	assert_int_equal(cf_repo_config(r)->chunker.avg, 256 * 1024);
	assert_int_equal(cf_repo_config(r)->chunker.max, 1024 * 1024);

	/* with compression off, compressible data is stored raw */
	uint8_t text[100000], id[CF_ID_LEN];
	struct cf_blob_loc loc;
	fill_text(text, sizeof(text), 0);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, text, sizeof(text), id, NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	assert_int_equal(cf_repo_lookup(r, CF_BLOB_DATA, id, &loc), CF_OK);
	assert_int_equal(loc.flags & CF_FLAG_ZSTD, 0);
	assert_int_equal(loc.length, sizeof(text) + CF_SEAL_OVERHEAD);
	expect_blob(r, CF_BLOB_DATA, id, text, sizeof(text));
	cf_repo_free(r);
}

/* ---- snapshots ---- */

static void make_snap(struct cf_repo *r, struct cf_snapshot *s, int64_t t, const char *host,
		      const char *tags, const char *paths)
{
	char *copy, *tok, *save;
	memset(s, 0, sizeof(*s));
	s->time_ns = t;
	s->hostname = strdup(host);
	s->username = strdup("tester");
	assert_non_null(s->hostname);
	fill_random(s->tree, CF_ID_LEN, (uint64_t)t);
	copy = strdup(tags);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		assert_int_equal(cf_snapshot_add_tag(s, tok), CF_OK);
	free(copy);
	copy = strdup(paths);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		assert_int_equal(cf_snapshot_add_path(s, tok), CF_OK);
	free(copy);
	assert_int_equal(cf_repo_save_snapshot(r, s), CF_OK);
}

static long pick(const struct cf_snapshot *l, size_t n, const char *spec, const char *host,
		 const char *tag1, const char *tag2, const char *path1, const char *path2)
{
	const char *tags[2] = { tag1, tag2 }, *paths[2] = { path1, path2 };
	struct cf_snapshot_filter flt = { .host = host, .tags = tags,
					  .ntags = tag2 ? 2 : tag1 ? 1 : 0,
					  .paths = paths, .npaths = path2 ? 2 : path1 ? 1 : 0 };
	return cf_snapshot_pick(l, n, spec, &flt);
}

static void test_snapshots(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	struct cf_snapshot in[4], *l = NULL;
	size_t n = 0, bad = 9;
	const int64_t T = 1767225600LL * 1000000000; /* 2026-01-01 */

	/* saved out of time order: the list comes back sorted by time */
	make_snap(r, &in[2], T + 3000000000LL, "h1", "", "/etc,/home");
	make_snap(r, &in[0], T + 1000000001LL, "h1", "daily", "/etc");
	make_snap(r, &in[3], T + 4000000000LL, "h2", "weekly", "/etc");
	make_snap(r, &in[1], T + 2000000000LL, "h2", "daily,db", "/var");
	cf_repo_free(r);

	r = reopen(f->dir);
	assert_int_equal(cf_repo_snapshots(r, &l, &n, &bad), CF_OK);
	assert_int_equal(n, 4);
	assert_int_equal(bad, 0);
	for (size_t i = 0; i < 4; i++) {
		assert_memory_equal(l[i].id, in[i].id, CF_ID_LEN);
		assert_int_equal(l[i].time_ns, in[i].time_ns);
		assert_string_equal(l[i].hostname, in[i].hostname);
		assert_memory_equal(l[i].tree, in[i].tree, CF_ID_LEN);
		assert_int_equal(l[i].ntags, in[i].ntags);
		assert_int_equal(l[i].npaths, in[i].npaths);
	}
	assert_string_equal(l[1].tags[1], "db");
	assert_string_equal(l[2].paths[1], "/home");

	assert_int_equal(pick(l, n, "latest", NULL, NULL, NULL, NULL, NULL), 3);
	assert_int_equal(pick(l, n, "latest", "h1", NULL, NULL, NULL, NULL), 2);
	assert_int_equal(pick(l, n, "latest", NULL, "daily", NULL, NULL, NULL), 1);
	assert_int_equal(pick(l, n, "latest", NULL, "db", "daily", NULL, NULL), 1);
	assert_int_equal(pick(l, n, "latest", "h1", "daily", NULL, NULL, NULL), 0);
	assert_int_equal(pick(l, n, "latest", NULL, NULL, NULL, "/etc", NULL), 3);
	assert_int_equal(pick(l, n, "latest", NULL, NULL, NULL, "/home", "/etc"), 2);
	/* --path (restic): snapshots that include the path, here h1's /etc,/home */
	assert_int_equal(pick(l, n, "latest", "h1", NULL, NULL, "/etc", NULL), 2);
	{
		/* the parent search wants exactly the same set of paths */
		const char *p1[1] = { "/etc" };
		struct cf_snapshot_filter ex = { .host = "h1", .paths = p1, .npaths = 1, .exact_paths = true };
		assert_int_equal(cf_snapshot_pick(l, n, "latest", &ex), 0);
	}
	cf_err_clear();
	assert_int_equal(pick(l, n, "latest", "h3", NULL, NULL, NULL, NULL), -1);
	assert_int_equal(pick(l, n, "latest", NULL, "weekly", "daily", NULL, NULL), -1);
	assert_int_equal(pick(l, 0, "latest", NULL, NULL, NULL, NULL, NULL), -1);

	char hex[CF_ID_HEX];
	for (size_t i = 0; i < 4; i++) {
		cf_hex(l[i].id, CF_ID_LEN, hex);
		assert_int_equal(pick(l, n, hex, NULL, NULL, NULL, NULL, NULL), (long)i);
		hex[8] = 0;
		assert_int_equal(cf_snapshot_pick(l, n, hex, NULL), (long)i);
	}
	assert_int_equal(cf_snapshot_pick(l, n, "", NULL), -1);
	/* a full-length id that no snapshot has */
	cf_hex(l[0].id, CF_ID_LEN, hex);
	hex[63] = hex[63] == '0' ? '1' : '0';
	cf_err_clear();
	assert_int_equal(cf_snapshot_pick(l, n, hex, NULL), -1);
	assert_non_null(strstr(cf_errmsg(CF_ENOENT), hex));
	assert_int_equal(cf_snapshot_pick(l, n, "zz", NULL), -1);
	cf_snapshots_free(l, n);

	/* ambiguous prefix: with 17 snapshots two share the first hex digit */
	for (int i = 0; i < 13; i++) {
		struct cf_snapshot s;
		make_snap(r, &s, T + 10000000000LL + i, "h9", "", "/x");
		cf_snapshot_release(&s);
	}
	assert_int_equal(cf_repo_snapshots(r, &l, &n, NULL), CF_OK);
	assert_int_equal(n, 17);
	int shared = -1;
	for (int d = 0; d < 16 && shared < 0; d++) {
		int c = 0;
		for (size_t i = 0; i < n; i++) {
			cf_hex(l[i].id, CF_ID_LEN, hex);
			c += hex[0] == "0123456789abcdef"[d];
		}
		if (c >= 2)
			shared = d;
	}
	assert_true(shared >= 0);
	char amb[2] = { "0123456789abcdef"[shared], 0 };
	cf_err_clear();
	assert_int_equal(cf_snapshot_pick(l, n, amb, NULL), -1);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "ambiguous"));
	cf_snapshots_free(l, n);

	/* a damaged snapshot object is reported and skipped, the rest listed */
	char path[256];
	cf_hex(in[0].id, CF_ID_LEN, hex);
	snprintf(path, sizeof(path), "%s/snapshots/%s", f->dir, hex);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 30), 1);
	close(fd);
	assert_int_equal(cf_repo_snapshots(r, &l, &n, &bad), CF_OK);
	assert_int_equal(n, 16);
	assert_int_equal(bad, 1);
	cf_snapshots_free(l, n);

	for (int i = 0; i < 4; i++)
		cf_snapshot_release(&in[i]);
	cf_repo_free(r);
}

/* ---- snapshot and index files under their own names ---- */

/* Snapshot and index files are used only under their own name (the hash of
 * their stored bytes): two snapshot files swapped are both refused, named,
 * and counted as bad; an index file copied over another's name is skipped
 * (its blobs come from its own file), and the blobs only the overwritten
 * file knew are not found. */
static void test_names_verified(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	struct cf_snapshot a, c, *l = NULL;
	uint8_t d1[5000], d2[5000], i1[CF_ID_LEN], i2[CF_ID_LEN];
	char ha[CF_ID_HEX], hc[CF_ID_HEX], pa[256], pc[256], tmp[256];
	size_t n = 9, bad = 0;

	make_snap(r, &a, 1000, "h1", "", "/a");
	make_snap(r, &c, 2000, "h2", "", "/c");
	cf_hex(a.id, CF_ID_LEN, ha);
	cf_hex(c.id, CF_ID_LEN, hc);
	snprintf(pa, sizeof(pa), "%s/snapshots/%s", f->dir, ha);
	snprintf(pc, sizeof(pc), "%s/snapshots/%s", f->dir, hc);
	snprintf(tmp, sizeof(tmp), "%s/snapshots/x", f->dir);
	assert_int_equal(rename(pa, tmp), 0);
	assert_int_equal(rename(pc, pa), 0);
	assert_int_equal(rename(tmp, pc), 0);
	assert_int_equal(cf_repo_snapshots(r, &l, &n, &bad), CF_OK);
	assert_int_equal(n, 0);
	assert_int_equal(bad, 2);
	cf_snapshots_free(l, n);
	cf_snapshot_release(&a);
	cf_snapshot_release(&c);

	fill_random(d1, sizeof(d1), 61);
	fill_random(d2, sizeof(d2), 62);
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, d1, sizeof(d1), i1, NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	struct names before = list_names(r, "index");
	assert_int_equal(cf_repo_save_blob(r, CF_BLOB_DATA, d2, sizeof(d2), i2, NULL, NULL), CF_OK);
	assert_int_equal(cf_repo_flush(r), CF_OK);
	struct names after = list_names(r, "index");
	assert_int_equal(before.n, 1);
	assert_int_equal(after.n, 2);
	const char *second = strcmp(after.name[0], before.name[0]) ? after.name[0] : after.name[1];
	char p1[256], p2[256];
	snprintf(p1, sizeof(p1), "%s/index/%s", f->dir, before.name[0]);
	snprintf(p2, sizeof(p2), "%s/index/%s", f->dir, second);
	cf_repo_free(r);
	/* the first index file's bytes under the second's name */
	int in = open(p1, O_RDONLY), out = open(p2, O_WRONLY | O_TRUNC);
	assert_true(in >= 0 && out >= 0);
	char buf[65536];
	ssize_t got = read(in, buf, sizeof(buf));
	assert_true(got > 0);
	assert_int_equal(write(out, buf, (size_t)got), got);
	close(in);
	close(out);
	r = reopen(f->dir);
	expect_blob(r, CF_BLOB_DATA, i1, d1, sizeof(d1));
	assert_false(cf_repo_has_blob(r, CF_BLOB_DATA, i2));
	struct cf_check_stats st;
	int rc = cf_repo_check(r, false, &st);
	assert_int_equal(rc, CF_ECORRUPT);
	assert_true(st.errors >= 1);
	cf_repo_free(r);
	free(before.name);
	free(after.name);
}

/* ---- locks ---- */

static void *free_later(void *arg)
{
	usleep(500 * 1000);
	cf_repo_free(arg);
	return NULL;
}

static void test_locks(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r1 = init_repo(f->dir), *r2 = reopen(f->dir), *r3 = reopen(f->dir);
	char host[256], pidstr[64];

	gethostname(host, sizeof(host));
	snprintf(pidstr, sizeof(pidstr), "pid %ld", (long)getpid());

	assert_int_equal(cf_repo_lock(r1, false, 0), CF_OK);
	assert_int_equal(count_objects(r1, "locks"), 1);
	assert_int_equal(cf_repo_lock(r2, false, 0), CF_OK); /* shared + shared */
	assert_int_equal(count_objects(r1, "locks"), 2);
	cf_err_clear();
	assert_int_equal(cf_repo_lock(r3, true, 0), CF_ELOCKED);
	const char *msg = cf_errmsg(CF_ELOCKED);
	assert_non_null(strstr(msg, host));
	assert_non_null(strstr(msg, pidstr));
	/* the failed attempt took its own lock object back */
	assert_int_equal(count_objects(r1, "locks"), 2);

	/* waiting with a retry: succeeds once the holders are gone */
	cf_repo_free(r2);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, free_later, r1), 0);
	double t0 = cf_now_mono();
	assert_int_equal(cf_repo_lock(r3, true, 10), CF_OK);
	assert_true(cf_now_mono() - t0 < 9);
	pthread_join(t, NULL);
	assert_int_equal(count_objects(r3, "locks"), 1);

	/* an exclusive lock keeps out shared ones too */
	r1 = reopen(f->dir);
	cf_err_clear();
	assert_int_equal(cf_repo_lock(r1, false, 0), CF_ELOCKED);
	assert_non_null(strstr(cf_errmsg(CF_ELOCKED), "exclusive"));
	assert_non_null(strstr(cf_errmsg(CF_ELOCKED), pidstr));
	cf_repo_free(r3);
	assert_int_equal(cf_repo_lock(r1, false, 0), CF_OK);
	cf_repo_free(r1);
	r1 = reopen(f->dir);
	assert_int_equal(count_objects(r1, "locks"), 0);
	cf_repo_free(r1);
}

static void fake_lock(struct cf_repo *r, int64_t t, const char *host, long pid, bool excl)
{
	char ts[64], hex[CF_ID_HEX];
	char *j = NULL;
	cf_format_time(t, ts, sizeof(ts));
	assert_true(asprintf(&j, "{\"time\":\"%s\",\"hostname\":\"%s\",\"username\":\"someone\","
			     "\"pid\":%ld,\"exclusive\":%s}", ts, host, pid,
			     excl ? "true" : "false") > 0);
	assert_int_equal(cf_repo_put_hashed(r, "locks", CF_OBJ_LOCK, j, strlen(j), hex, NULL), CF_OK);
	free(j);
}

/* A lock written by this host, boot and PID namespace (the new format):
 * only such a lock is judged stale by its pid (issue 23). */
static void fake_local_lock(struct cf_repo *r, int64_t t, long pid, bool excl)
{
	char ts[64], hex[CF_ID_HEX];
	char *j = NULL;
	struct cf_lock_id self;
	cf_lock_self(&self);
	assert_true(self.has_ns);
	cf_format_time(t, ts, sizeof(ts));
	assert_true(asprintf(&j, "{\"time\":\"%s\",\"hostname\":\"%s\",\"username\":\"someone\","
			     "\"pid\":%ld,\"exclusive\":%s,\"boot_id\":\"%s\",\"pidns\":%llu}", ts,
			     self.host, pid, excl ? "true" : "false", self.boot_id,
			     (unsigned long long)self.pidns) > 0);
	assert_int_equal(cf_repo_put_hashed(r, "locks", CF_OBJ_LOCK, j, strlen(j), hex, NULL), CF_OK);
	free(j);
}

static void test_unlock_stale(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir);
	char host[256];
	int removed = -1;

	gethostname(host, sizeof(host));
	pid_t dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);

	int64_t now = cf_now_ns();
	fake_lock(r, now - 2 * 3600 * 1000000000LL, "otherhost", 4242, true); /* too old */
	fake_local_lock(r, now, dead, true);                                /* this host, dead pid */
	fake_lock(r, now - 60 * 1000000000LL, "otherhost", 4243, false);     /* live, shared */
	assert_int_equal(count_objects(r, "locks"), 3);

	/* stale locks do not block; the live shared one blocks exclusive only */
	cf_err_clear();
	assert_int_equal(cf_repo_lock(r, true, 0), CF_ELOCKED);
	assert_non_null(strstr(cf_errmsg(CF_ELOCKED), "otherhost"));
	assert_non_null(strstr(cf_errmsg(CF_ELOCKED), "pid 4243"));
	assert_int_equal(cf_repo_lock(r, false, 0), CF_OK);
	cf_repo_lock_release(r);

	assert_int_equal(cf_repo_unlock_stale(r, false, &removed), CF_OK);
	assert_int_equal(removed, 2);
	assert_int_equal(count_objects(r, "locks"), 1);
	assert_int_equal(cf_repo_unlock_stale(r, false, &removed), CF_OK);
	assert_int_equal(removed, 0);

	/* an unreadable lock counts as live (we cannot tell whose it is) */
	assert_int_equal(cf_be_put(cf_repo_backend(r),
				   "locks/00000000000000000000000000000000000000000000000000000000000000ff",
				   "garbage that does not open", 26), CF_OK);
	assert_int_equal(cf_repo_lock(r, false, 0), CF_ELOCKED);
	assert_int_equal(cf_repo_unlock_stale(r, false, &removed), CF_OK);
	assert_int_equal(removed, 0);
	/* --remove-all takes everything */
	assert_int_equal(cf_repo_unlock_stale(r, true, &removed), CF_OK);
	assert_int_equal(removed, 2);
	assert_int_equal(count_objects(r, "locks"), 0);
	assert_int_equal(cf_repo_lock(r, true, 0), CF_OK);
	cf_repo_free(r);
}

/* ---- keys ---- */

static void test_keys(void **state)
{
	struct fixture *f = *state;
	struct cf_repo *r = init_repo(f->dir), *r2 = NULL;
	struct cf_keyinfo *k = NULL;
	size_t n = 0;
	char first[CF_ID_HEX], second[CF_ID_HEX];
	uint8_t id[CF_ID_LEN];

	memcpy(id, cf_repo_config(r)->id, CF_ID_LEN);
	snprintf(first, sizeof(first), "%s", cf_repo_key_name(r));
	assert_int_equal(cf_repo_keys(r, &k, &n), CF_OK);
	assert_int_equal(n, 1);
	assert_string_equal(k[0].name, first);
	assert_true(k[0].current);
	assert_non_null(k[0].created);
	cf_keyinfo_free(k, n);

	assert_int_equal(cf_repo_key_add(r, "second pw", 9, 1, 8192, second), CF_OK);
	assert_string_not_equal(first, second);
	assert_int_equal(cf_repo_keys(r, &k, &n), CF_OK);
	assert_int_equal(n, 2);
	assert_int_equal((int)k[0].current + (int)k[1].current, 1);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(k[i].current, strcmp(k[i].name, first) == 0);
	cf_keyinfo_free(k, n);

	/* both passwords open the same repository */
	assert_int_equal(open_pw(f->dir, "second pw", &r2), CF_OK);
	assert_string_equal(cf_repo_key_name(r2), second);
	assert_memory_equal(cf_repo_config(r2)->id, id, CF_ID_LEN);

	/* the key in use cannot be removed; prefixes must be unique */
	assert_int_equal(cf_repo_key_remove(r2, second), CF_EINVAL);
	assert_int_equal(cf_repo_key_remove(r2, ""), CF_EINVAL);
	assert_int_equal(cf_repo_key_remove(r2, "not-a-key"), CF_ENOENT);
	char prefix[9];
	snprintf(prefix, sizeof(prefix), "%.8s", first);
	assert_int_equal(cf_repo_key_remove(r2, prefix), CF_OK);
	assert_int_equal(count_objects(r2, "keys"), 1);
	cf_repo_free(r2);
	cf_repo_free(r);

	assert_int_equal(open_pw(f->dir, PW, &r), CF_EBADPASS);
	assert_int_equal(open_pw(f->dir, "second pw", &r), CF_OK);
	cf_repo_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_no_repo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_options_persist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_verified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlock_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
