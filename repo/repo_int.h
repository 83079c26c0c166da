/* repo_int.h - internals shared by the files of the repo module. */
#ifndef CF_REPO_INT_H
#define CF_REPO_INT_H

#include <pthread.h>
#include "repo/repo.h"
#include "common/status.h"
#include "crypto/crypto.h"

struct cf_pool;

/* ---- the in-memory index: open addressing on the id's first 8 bytes ---- */

struct cf_ientry {
	uint8_t id[CF_ID_LEN];
	uint32_t pack;    /* index into idx.packs */
	uint32_t offset, length, rawlen;
	uint8_t type, flags, used;
	uint8_t nalt;     /* other locations of this blob in idx.alt (cf_index_put_loc) */
};

/* At most this many other locations are kept per blob (a blob listed by many
 * index files at different places: a replayed index, concurrent writers). */
#define CF_INDEX_MAX_ALT 8

struct cf_index {
	struct cf_ientry *slots;
	size_t cap, n;             /* cap is a power of two */
	uint8_t (*packs)[CF_ID_LEN];
	size_t npacks, packcap;
	/* Side table of the other locations of blobs that have more than one
	 * (open addressing like slots, one slot per extra location, several
	 * slots per key): empty, and costing nothing, unless some blob is
	 * listed at two places. */
	struct cf_ientry *alt;
	size_t altcap, naltn;
};

void cf_index_release(struct cf_index *ix);
/* Find (type,id); NULL if absent. */
struct cf_ientry *cf_index_get(struct cf_index *ix, int type, const uint8_t id[CF_ID_LEN]);
/* Insert (or keep the existing entry).  CF_OK, CF_ENOMEM. */
int cf_index_put(struct cf_index *ix, const struct cf_ientry *e);
/* Insert a location read from an index file: a new key as cf_index_put; a
 * key already present at another (pack, offset) is kept as an alternate
 * location (up to CF_INDEX_MAX_ALT), the same place again is ignored.
 * CF_OK, CF_ENOMEM. */
int cf_index_put_loc(struct cf_index *ix, const struct cf_ientry *e);
/* The k-th (0-based) other location of the blob whose main entry is e, or
 * NULL when it has no more. */
struct cf_ientry *cf_index_alt(struct cf_index *ix, const struct cf_ientry *e, unsigned k);
/* Swap e's main location with its k-th other one. */
void cf_index_alt_swap(struct cf_index *ix, struct cf_ientry *e, unsigned k);
/* Register a pack id, returning its number (dedups the same id). */
int cf_index_add_pack(struct cf_index *ix, const uint8_t id[CF_ID_LEN], uint32_t *num);

/* Encoded pack-header / index entry: type, flags, id, offset, length, rawlen. */
#define CF_ENTRY_SIZE (1 + 1 + CF_ID_LEN + 4 + 4 + 4)
void cf_entry_encode(const struct cf_pack_entry *e, uint8_t *p);
void cf_entry_decode(const uint8_t *p, struct cf_pack_entry *e);

#define CF_FLAG_ZSTD 1
/* In the in-memory index only: the blob's pack is not uploaded yet (found
 * by dedup, not by readers). */
#define CF_FLAG_PENDING 0x80

/* An index file's first 4 bytes (doc/repo-format.md). */
#define CF_INDEX_MAGIC "CFIX"

/* Parse a decoded (unsealed) index file, calling fn for every entry with its
 * pack id.  CF_ECORRUPT naming the file on malformed input.  (Exposed for the
 * fuzzer and tests.) */
typedef int (*cf_index_entry_fn)(const uint8_t packid[CF_ID_LEN], const struct cf_pack_entry *e, void *ctx);
int cf_index_parse(const char *name, const uint8_t *p, size_t n, cf_index_entry_fn fn, void *ctx);

/* Parse a decoded pack header of plen bytes for a pack whose blob area is
 * body bytes long.  Caller frees *entries. */
int cf_pack_header_parse(const uint8_t *plain, size_t plen, size_t body,
			 struct cf_pack_entry **entries, size_t *n);

/* Decode the config JSON (CF_ECORRUPT / CF_EFORMAT). */
int cf_config_decode(const uint8_t *p, size_t n, struct cf_repo_config *c);

/* ---- a pack being filled ---- */
struct cf_packer {
	struct cf_repo *repo;
	int type;                 /* data or tree packs */
	struct cf_buf buf;        /* sealed blobs, in arrival order */
	struct cf_pack_entry *entries;
	size_t n, cap;
	uint32_t pending_num;     /* index pack number reserved for this pack */
	/* once staged (pack.c, pack_stage): buf is gone, the bytes are with
	 * the backend until put_commit */
	bool is_staged;
	void *staged;             /* the backend's handle (NULL: nothing to commit) */
	uint8_t packid[CF_ID_LEN];
	struct cf_buf hdr;        /* encoded entries, for the index file */
};

struct cf_lockfile;

/* Tree packs fetched whole from a remote store (pack_read.c, cf_repo_load_at):
 * one GET per pack instead of one ranged GET per tree.  Most recently used
 * first; evicted by total size. */
struct cf_tree_pack {
	uint8_t id[CF_ID_LEN];
	struct cf_buf bytes;       /* the whole pack, as stored */
	struct cf_tree_pack *next;
};
#define CF_TREE_CACHE_MAX (48u << 20)

struct cf_repo {
	struct cf_backend *be;
	struct cf_key *key;
	struct cf_repo_config cfg;
	uint64_t gear[256];
	char keyname[CF_ID_HEX];

	pthread_mutex_t mu;        /* guards idx, packers, pending lists, counters */
	struct cf_index idx;
	struct cf_packer *packer[2];   /* open pack per blob type */
	struct cf_pool *uploads;       /* full packs being uploaded (pack.c) */
	int want_uploaders;
	/* spare pack buffers: reused instead of a fresh, page-faulting one
	 * per pack */
	struct cf_buf spare[2];
	int nspare;
	struct cf_status upload_st;    /* the first failed pack upload */
	/* entries of packs written in this session, for the next index file */
	struct cf_buf new_index;       /* encoded: pack id + count + entries, repeated */
	size_t new_index_packs;

	struct cf_lockfile *lock;
	/* cf_repo_set_dry_run: blobs are counted, never packed; nothing is
	 * written (save_blob, put_hashed) */
	bool dry_run;

	pthread_mutex_t tc_mu;         /* guards tc_* */
	struct cf_tree_pack *tc_head;
	size_t tc_bytes;
	unsigned long tc_fetches;      /* whole tree packs fetched (tests) */
};

/* The hash naming this repository's objects: BLAKE2b-256 in format 1,
 * SHA-256 from format 2. */
static inline int cf_repo_name_alg(const struct cf_repo *r)
{
	return r->cfg.version >= 2 ? CF_HASH_SHA256 : CF_HASH_BLAKE2B;
}

/* The name a pack's bytes must have: the SHA-256 of its sealed header and
 * 4-byte trailer (format 3), or of all its bytes (formats 1 and 2, by
 * cf_repo_name_alg).  CF_ECORRUPT when the trailer gives no header. */
int cf_pack_name(const struct cf_repo *r, const uint8_t *pack, size_t len, uint8_t id[CF_ID_LEN]);

/* Where pack hexid is stored: "data/ab/abcdef..." into out (at least
 * CF_PACK_PATH_MAX bytes).  Only repo/ knows it. */
#define CF_PACK_PATH_MAX 80
void cf_repo_pack_path(const char *hexid, char *out, size_t outlen);

/* Read and open the blob at loc into out (pack_read.c): a ranged read, or
 * for a tree of a remote store the tree-pack cache; no other copy is tried.
 * CF_OK, or an error whose message names the pack and the blob. */
int cf_repo_load_at(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
		    const struct cf_blob_loc *loc, struct cf_buf *out);

/* Drop the tree-pack cache (repo.c, cf_repo_free). */
void cf_repo_tree_cache_release(struct cf_repo *r);
/* How many whole tree packs this handle has fetched (for tests). */
unsigned long cf_repo_tree_pack_fetches(struct cf_repo *r);

/* Seal plaintext of type (AD id may be NULL) into out (replaced). */
int cf_repo_seal(struct cf_repo *r, int type, const uint8_t *id, const void *p, size_t n, struct cf_buf *out);
/* Store a sealed unnamed object under dir/<hash of bytes>; name into hex. */
int cf_repo_put_hashed(struct cf_repo *r, const char *dir, int type, const void *p, size_t n,
		       char hex[CF_ID_HEX], uint8_t id[CF_ID_LEN]);
/* Get dir/name and unseal (type, AD NULL) into out. */
int cf_repo_get_sealed(struct cf_repo *r, const char *path, int type, struct cf_buf *out);
/* The same for an object named by the hash of its stored bytes (index files,
 * snapshots): the bytes fetched must hash (cf_repo_name_alg) to name, so
 * an object stored or moved under another's name is refused, CF_ECORRUPT
 * naming dir/name and what its content hashes to. */
int cf_repo_get_named(struct cf_repo *r, const char *dir, const char *name, int type, struct cf_buf *out);

void cf_repo_lock_release(struct cf_repo *r);

/* ---- locks (lock.c) ---- */

/* Who wrote a lock: hostname, boot id (/proc/sys/kernel/random/boot_id) and
 * the inode of the writer's PID namespace; has_ns false when unknown (an
 * old-format lock, or no /proc). */
struct cf_lock_id {
	char host[256];
	char boot_id[40];
	uint64_t pidns;
	bool has_ns;
};
struct cf_lock_info {
	int64_t time_ns;          /* written (refreshed) at */
	char user[64];
	long pid;
	bool exclusive;
	char instance[33];        /* random per lock holder; "" in old locks */
	struct cf_lock_id id;
};
enum cf_lock_state {
	CF_LOCK_LIVE,     /* refreshed within the margin, holder not checkable here */
	CF_LOCK_EXPIRED,  /* not refreshed for longer than stale_ns: stale */
	CF_LOCK_LOCAL,    /* fresh, and written in this host, boot and PID namespace:
			   * stale exactly when its pid is gone */
};
/* The staleness rule, a pure function (tests/unit/test_prune.c). */
enum cf_lock_state cf_lock_judge(const struct cf_lock_info *li, const struct cf_lock_id *self,
				 int64_t now_ns, int64_t stale_ns);
/* This process's identity. */
void cf_lock_self(struct cf_lock_id *self);
/* The staleness margin: 30 minutes (COFFER_TEST_LOCK_STALE_SECONDS, test-only). */
int64_t cf_lock_stale_ns(void);
/* Decode a lock object's JSON (old and new formats).  CF_ECORRUPT. */
int cf_lock_decode(const uint8_t *p, size_t n, struct cf_lock_info *li);
/* Record that this session wrote or deduplicated against pack number num
 * (r->idx.packs); called with r->mu held; a no-op without a lock. */
void cf_repo_note_pack(struct cf_repo *r, uint32_t num);
/* Stop the upload pool (after the packs queued are uploaded). */
void cf_repo_uploaders_stop(struct cf_repo *r);
/* Write an index file for the packs uploaded since the last one
 * (index_file.c); none if there are none.  Safe from upload jobs while
 * others go on.  CF_OK or the error, "write index: ...". */
int cf_repo_write_index(struct cf_repo *r);

#endif
