/*
 * repo.h - a coffer repository: config, keys, packs, index, snapshots, locks.
 *
 * This is the only layer that knows the repository format (doc/repo-format.md).
 * Above it, backup and restore deal in blobs ("store these bytes as a data
 * blob, give me its id"; "give me the bytes of tree X") and snapshots.  Below
 * it, a backend stores opaque objects and crypto seals them.
 *
 * Calling sequence:
 *	cf_repo_open(backend, password, &repo)       (or cf_repo_init for a new one)
 *	cf_repo_lock(repo, exclusive)                 (backup: shared; prune: exclusive)
 *	cf_repo_load_index(repo)
 *	cf_repo_save_blob(...) from any number of threads
 *	cf_repo_flush(repo)                           packs, then the index that names them
 *	cf_repo_save_snapshot(repo, &snap, id)        last: names the trees
 *	cf_repo_free(repo)                            releases the lock
 *
 * Write order is the crash-safety argument: a pack is uploaded before any
 * index names it, and an index before any snapshot refers to its blobs, so an
 * interrupted run leaves at worst unreferenced packs, never a dangling
 * reference.  Nothing is ever modified in place, and nothing is deleted
 * except by prune under an exclusive lock.
 *
 * Thread safety: cf_repo_save_blob, cf_repo_load_blob and cf_repo_has_blob
 * may be called from several threads at once; the rest from one thread.
 */
#ifndef CF_REPO_H
#define CF_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../common/buf.h"
#include "../common/util.h"
#include "../chunker/chunker.h"
#include "../s3/backend.h"
#include "snapshot.h"

/* Object types: the first byte of every sealed object's associated data. */
enum cf_obj_type {
	CF_BLOB_DATA = 0,
	CF_BLOB_TREE = 1,
	CF_OBJ_PACKHDR = 2,
	CF_OBJ_INDEX = 3,
	CF_OBJ_SNAPSHOT = 4,
	CF_OBJ_CONFIG = 5,
	CF_OBJ_LOCK = 6,
};

#define CF_REPO_VERSION 1
#define CF_PACK_TARGET (16u << 20)

struct cf_repo_config {
	int version;
	uint8_t id[CF_ID_LEN];
	struct cf_chunker_params chunker;
	int compression; /* zstd level; 0 = store uncompressed */
};

struct cf_repo_init_opts {
	struct cf_chunker_params chunker; /* zero = defaults */
	int compression;                  /* -1 = default (3) */
	uint64_t kdf_opslimit, kdf_memlimit; /* zero = defaults */
};

struct cf_repo;

/* Create a repository in an empty location, sealing a new master key with
 * password.  Takes ownership of be (freed with the repo, or on failure).
 * CF_EEXIST if one is already there. */
int cf_repo_init(struct cf_backend *be, const char *password, size_t pwlen,
		 const struct cf_repo_init_opts *opts, struct cf_repo **out);

/* Open with password.  Takes ownership of be.  CF_ENOREPO if there is no
 * config, CF_EBADPASS if no key file opens with password, CF_EFORMAT for a
 * newer format. */
int cf_repo_open(struct cf_backend *be, const char *password, size_t pwlen,
		 struct cf_repo **out);

/* Release locks, free memory and the backend.  Does NOT flush: a repo freed
 * without cf_repo_flush() leaves unindexed packs (garbage, not corruption). */
void cf_repo_free(struct cf_repo *r);

struct cf_backend *cf_repo_backend(struct cf_repo *r);
const struct cf_repo_config *cf_repo_config(const struct cf_repo *r);
const uint64_t *cf_repo_gear(const struct cf_repo *r);
/* Hex name of the key file that opened the repository. */
const char *cf_repo_key_name(const struct cf_repo *r);

/* --- locks ------------------------------------------------------------- */

/* Take a lock (shared or exclusive).  Fails with CF_ELOCKED naming the holder
 * when a conflicting lock is live; stale locks (not refreshed for 30 minutes,
 * or same host and the pid is dead) are ignored.  retry_seconds > 0 keeps
 * trying that long.  The lock is refreshed in the background every 5 minutes
 * and removed by cf_repo_free(). */
int cf_repo_lock(struct cf_repo *r, bool exclusive, double retry_seconds);
/* Remove stale locks (all locks when all is true).  *removed counts them. */
int cf_repo_unlock_stale(struct cf_repo *r, bool all, int *removed);

/* --- keys -------------------------------------------------------------- */

struct cf_keyinfo {
	char name[CF_ID_HEX];
	char *host, *user, *created;
	bool current;
};
/* List key files; caller frees with cf_keyinfo_free(). */
int cf_repo_keys(struct cf_repo *r, struct cf_keyinfo **out, size_t *n);
void cf_keyinfo_free(struct cf_keyinfo *k, size_t n);
/* Seal the master key under a new password (Argon2id limits; 0 = default);
 * the new key file's hex name into name_out. */
int cf_repo_key_add(struct cf_repo *r, const char *password, size_t pwlen,
		    uint64_t opslimit, uint64_t memlimit, char name_out[CF_ID_HEX]);
/* Remove a key file by name prefix; refuses to remove the current key. */
int cf_repo_key_remove(struct cf_repo *r, const char *prefix);

/* --- blobs ------------------------------------------------------------- */

/* Load every index file (and merge them into the in-memory index). */
int cf_repo_load_index(struct cf_repo *r);

/* True if a blob of that type and id is in the index (or pending). */
bool cf_repo_has_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN]);

/* Store plaintext as a blob unless one with the same id exists: id computed,
 * compressed, sealed, packed.  *added (may be NULL) tells whether it was new;
 * *stored (may be NULL) adds the bytes it will take in the repository. */
int cf_repo_save_blob(struct cf_repo *r, int type, const void *p, size_t n,
		      uint8_t id[CF_ID_LEN], bool *added, uint64_t *stored);

/* The blob id this repository gives plaintext p (keyed BLAKE2b-256), e.g. to
 * see whether a file on disk already holds a snapshot's content. */
void cf_repo_blob_id(const struct cf_repo *r, const void *p, size_t n, uint8_t id[CF_ID_LEN]);

/* Read a blob into out (replaced).  CF_ENOENT if no index names it;
 * CF_ECORRUPT naming the pack if it fails to open. */
int cf_repo_load_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN], struct cf_buf *out);

/* Where a blob is (for restore planning).  CF_ENOENT if unknown. */
struct cf_blob_loc {
	uint8_t pack[CF_ID_LEN];
	uint32_t offset, length, rawlen;
	uint8_t flags;
};
int cf_repo_lookup(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN], struct cf_blob_loc *loc);

/* Open one sealed blob already fetched (length loc->length) into out. */
int cf_repo_open_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
		      const struct cf_blob_loc *loc, const uint8_t *sealed, struct cf_buf *out);

/* How many packs may be uploading at once (default 2; S3: the number of
 * connections).  Full packs are handed to uploader threads so that hashing,
 * compression and sealing go on while packs travel; at most this many full
 * packs wait in memory (back-pressure on the workers). */
void cf_repo_set_upload_threads(struct cf_repo *r, int n);

/* Upload open packs and write an index file naming them.  Call before
 * cf_repo_save_snapshot(). */
int cf_repo_flush(struct cf_repo *r);

/* Walk every index entry: fn(type, id, loc, ctx); non-zero stops. */
typedef int (*cf_index_fn)(int type, const uint8_t id[CF_ID_LEN], const struct cf_blob_loc *loc, void *ctx);
int cf_repo_index_foreach(struct cf_repo *r, cf_index_fn fn, void *ctx);

/* --- packs (check) ----------------------------------------------------- */

struct cf_pack_entry {
	uint8_t type, flags;
	uint8_t id[CF_ID_LEN];
	uint32_t offset, length, rawlen;
};
/* Read and parse a pack's header from its full bytes (or the tail).  Caller
 * frees *entries with free().  CF_ECORRUPT with a message. */
int cf_pack_parse(struct cf_repo *r, const uint8_t *pack, size_t len,
		  struct cf_pack_entry **entries, size_t *n);

/* --- check ------------------------------------------------------------ */

struct cf_check_stats {
	uint64_t errors, packs, snapshots, trees, blobs_read;
};
/* Verify structure (and with read_data every pack's bytes).  Problems are
 * named on stderr; CF_ECORRUPT if there were any. */
int cf_repo_check(struct cf_repo *r, bool read_data, struct cf_check_stats *st);

/* --- snapshots --------------------------------------------------------- */

/* Seal and store a snapshot; its id (hash of the stored bytes) into s->id. */
int cf_repo_save_snapshot(struct cf_repo *r, struct cf_snapshot *s);
/* Load every snapshot, sorted by time (oldest first).  Unreadable snapshot
 * files are reported with cf_warn and counted in *bad (may be NULL).
 * Caller frees with cf_snapshots_free(). */
int cf_repo_snapshots(struct cf_repo *r, struct cf_snapshot **out, size_t *n, size_t *bad);
void cf_snapshots_free(struct cf_snapshot *s, size_t n);

struct cf_snapshot_filter {
	const char *host;        /* NULL = any */
	const char **tags; size_t ntags;   /* each must be present */
	const char **paths; size_t npaths; /* each must be among the snapshot's paths */
	bool exact_paths;                  /* ...and the snapshot has no others */
};
/* Pick "latest" (newest matching filter) or an id prefix (unique) from a
 * loaded list.  Returns an index into list or -1 with a message set
 * (no match, ambiguous prefix). */
long cf_snapshot_pick(const struct cf_snapshot *list, size_t n, const char *spec,
		      const struct cf_snapshot_filter *f);
bool cf_snapshot_matches(const struct cf_snapshot *s, const struct cf_snapshot_filter *f);

/* Load and decode a tree blob. */
struct cf_tree;
int cf_repo_load_tree(struct cf_repo *r, const uint8_t id[CF_ID_LEN], struct cf_tree *t);
/* Encode and store a tree blob. */
int cf_repo_save_tree(struct cf_repo *r, const struct cf_tree *t, uint8_t id[CF_ID_LEN],
		      bool *added, uint64_t *stored);

#endif
