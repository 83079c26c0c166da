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
#include "common/buf.h"
#include "common/util.h"
#include "chunker/chunker.h"
#include "store/backend.h"
#include "repo/snapshot.h"

/* Object types: the first byte of every sealed object's associated data. */
enum cf_obj_type {
	CF_BLOB_DATA = 0,
	CF_BLOB_TREE = 1,
	CF_OBJ_PACKHDR = 2,
	CF_OBJ_INDEX = 3,
	CF_OBJ_SNAPSHOT = 4,
	CF_OBJ_CONFIG = 5,
	CF_OBJ_LOCK = 6,
	CF_OBJ_LOCAL = 7, /* kept outside the repository: the local directory cache */
};

/* Format 3: a pack is named by the SHA-256 of its sealed header and
 * trailer; format 2: of all its bytes, as every other object still is;
 * format 1: objects named by BLAKE2b-256.  This coffer reads all three and
 * writes each repository in its own format (doc/repo-format.md). */
#define CF_REPO_VERSION 3
/* A pack is closed once it holds this many bytes.  Each open pack, spare and
 * pack waiting for upload is a buffer of this size, so it sets most of a
 * backup's memory: 8 MiB (as restic's packs before 0.15: 4-8 MiB) keeps an
 * initial backup near 64 MiB RSS; 16 MiB cost ~100 MiB for no speed gain
 * locally.  Readers accept packs of any size. */
#define CF_PACK_TARGET (8u << 20)

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
	int version;                      /* 0 = CF_REPO_VERSION; 2 or 3 */
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
 * when a conflicting lock is live; stale locks are ignored: not refreshed for
 * 30 minutes, or written on this host in this boot and this PID namespace by
 * a pid that is gone (lock.c; doc/maintenance.md).  retry_seconds > 0 keeps
 * trying that long.  The lock is refreshed in the background every 5 minutes
 * and removed by cf_repo_free(). */
int cf_repo_lock(struct cf_repo *r, bool exclusive, double retry_seconds);
/* Remove stale locks (all locks when all is true).  *removed counts them;
 * every lock kept is named on stderr with the reason. */
int cf_repo_unlock_stale(struct cf_repo *r, bool all, int *removed);
/* For a holder of the exclusive lock about to delete (prune): list the locks
 * again.  CF_ELOCKED naming it when a live foreign lock appeared, or when our
 * own lock was lost. */
int cf_repo_lock_recheck(struct cf_repo *r);
/* A backup's check right before it writes its snapshot (after
 * cf_repo_flush): refreshes the lock, fails (CF_ELOCKED) when the lock was
 * lost meanwhile (removed, or not refreshable within the margin), fails
 * (CF_ECORRUPT) when parent (the parent snapshot's id, may be NULL) is gone,
 * or when a pack this session wrote or deduplicated against is missing from
 * the store (one listing of data/).  Each failure message says that no
 * snapshot was written.  CF_OK without a lock. */
int cf_repo_verify_session(struct cf_repo *r, const uint8_t *parent);

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
/* Forget the in-memory index and load it again: for a long-lived handle
 * (the replicator) whose index a prune elsewhere may have made stale.
 * Nothing may be pending (call after cf_repo_flush).  Take the lock first. */
int cf_repo_reload_index(struct cf_repo *r);

/* True if a blob of that type and id is in the index (or pending). */
bool cf_repo_has_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN]);

/* Store plaintext as a blob unless one with the same id exists: id computed,
 * compressed, sealed, packed.  *added (may be NULL) tells whether it was new;
 * *stored (may be NULL) adds the bytes it will take in the repository. */
int cf_repo_save_blob(struct cf_repo *r, int type, const void *p, size_t n,
		      uint8_t id[CF_ID_LEN], bool *added, uint64_t *stored);

/* The blob id this repository gives plaintext p (HMAC-SHA-256 under the blob-id key), e.g. to
 * see whether a file on disk already holds a snapshot's content. */
int cf_repo_blob_id(const struct cf_repo *r, const void *p, size_t n, uint8_t id[CF_ID_LEN]);
/* Seal bytes kept outside the repository (the local directory cache) with
 * the repository key, and open them again: CF_ECORRUPT when they were not
 * sealed by this repository's key or were changed since. */
int cf_repo_seal_local(struct cf_repo *r, const void *p, size_t n, struct cf_buf *out);
int cf_repo_open_local(struct cf_repo *r, const void *p, size_t n, struct cf_buf *out);

/* Read a blob into out (replaced), through the pack reader (pack_read.h: a
 * ranged read, or for a tree of a remote store the tree-pack cache).
 * CF_ENOENT if no index names it; CF_ECORRUPT naming the pack and the blob
 * if it fails to open or its pack is missing; the store's error, naming
 * the pack, if the read fails.  A blob that index files list at several
 * places is tried at each (the one in a pack the store has first) before
 * this gives up. */
int cf_repo_load_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN], struct cf_buf *out);
/* The same, skipping the locations in pack skip (a caller that already
 * failed to read it there): CF_ECORRUPT when the blob has no other. */
int cf_repo_load_blob_except(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
			     const uint8_t *skip, struct cf_buf *out);

/* Where a blob is (for restore planning).  CF_ENOENT if unknown. */
struct cf_blob_loc {
	uint8_t pack[CF_ID_LEN];
	uint32_t offset, length, rawlen;
	uint8_t flags;
};
int cf_repo_lookup(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN], struct cf_blob_loc *loc);
/* Location k of a blob: 0 is cf_repo_lookup's, 1.. the other places index
 * files list it at; CF_ENOENT (no message for k > 0) past the last. */
int cf_repo_lookup_nth(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN], unsigned k,
		       struct cf_blob_loc *loc);

/* Open one sealed blob already fetched (length loc->length) into out
 * (replaced, NUL-terminated): unseal it with (type, id), decompress, check
 * its length.  CF_OK, CF_ENOMEM, or CF_ECORRUPT naming the pack and the
 * blob.  Allocates nothing per blob (the thread keeps its buffers). */
int cf_repo_open_blob(struct cf_repo *r, int type, const uint8_t id[CF_ID_LEN],
		      const struct cf_blob_loc *loc, const uint8_t *sealed, struct cf_buf *out);

/* How many packs may be uploading at once (default 2 to a local directory,
 * 4 to a remote store; --s3-connections sets it to the number of
 * connections).  Full packs are handed to an upload pool of this many
 * threads so that hashing, compression and sealing go on while packs
 * travel; one more full pack may wait, then save_blob waits (back-pressure
 * on the workers).  Read when the first full pack is uploaded. */
void cf_repo_set_upload_threads(struct cf_repo *r, int n);

/* A dry run (backup --dry-run): from now on this handle writes nothing.
 * cf_repo_save_blob still computes the id, looks it up, compresses and
 * seals the bytes (so *added and *stored say exactly what a real run would
 * add) and remembers the id for the rest of the run (a second copy dedups
 * as it would), then drops the bytes: no pack, no index file; flush has
 * nothing to write; cf_repo_save_snapshot and every other write are
 * refused (CF_EINVAL).  Take no lock for it (cf_repo_lock writes one). */
void cf_repo_set_dry_run(struct cf_repo *r);
bool cf_repo_dry_run(const struct cf_repo *r);

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
 * frees *entries with free().  CF_ECORRUPT with a message.  Readers of whole
 * packs use cf_repo_read_pack_all() (pack_read.h). */
int cf_pack_parse(struct cf_repo *r, const uint8_t *pack, size_t len,
		  struct cf_pack_entry **entries, size_t *n);

/* --- check ------------------------------------------------------------ */

struct cf_check_stats {
	uint64_t errors, packs, snapshots, trees, blobs_read;
	uint64_t packs_read;  /* packs read whole (--read-data or a subset) */
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

/* --- maintenance: forget, prune, copy, stats (repo/prune.c, copy.c, stats.c) ---
 *
 * All of these need the index loaded (cf_repo_load_index).  forget and prune
 * need the exclusive lock (cf_repo_lock(r, true, ...)): prune deletes packs no
 * index names, and a concurrent backup's packs are exactly that until its
 * index is written.  copy needs a shared lock on both repositories.
 *
 * Prune's calling sequence:
 *	cf_prune_plan(r, &opts, &p)      reads everything, decides, changes nothing
 *	cf_prune_stats(p)                what it will free (print it)
 *	cf_prune_run(p)                  unless --dry-run
 *	cf_prune_free(p)
 * cf_prune_run's order is its crash-safety argument: repacked blobs go into
 * new packs, then ONE new index naming every kept and new pack is written,
 * and only then are the old index files and the unused packs deleted.  Killed
 * at any point, every remaining snapshot stays restorable; what is left
 * behind is garbage the next prune removes.
 */

/* Delete snapshots/<id> (forget).  Deleting a missing snapshot is CF_OK. */
int cf_repo_forget_snapshot(struct cf_repo *r, const uint8_t id[CF_ID_LEN]);

struct cf_prune_opts {
	/* Unused space tolerated after prune, as a fraction of the repository
	 * size after prune (restic's --max-unused; default 0.05).  Packs that
	 * are partly used are repacked, the emptiest first, until the unused
	 * bytes left in the rest are within this; negative = unlimited (only
	 * packs with no used blob go). */
	double max_unused;
};

struct cf_prune_stats {
	uint64_t snapshots, index_files;
	uint64_t packs, pack_bytes;            /* in data/ before prune */
	uint64_t blobs_used, bytes_used;       /* reachable from a snapshot (sealed sizes) */
	uint64_t blobs_unused, bytes_unused;   /* unreachable or duplicate copies */
	uint64_t packs_keep, packs_delete, packs_repack, packs_unindexed;
	uint64_t bytes_delete;                 /* whole size of packs with no used blob */
	uint64_t bytes_repack;                 /* whole size of the packs to repack */
	uint64_t bytes_repack_used;            /* ...of which rewritten into new packs */
	uint64_t bytes_unindexed;              /* packs no index names (interrupted runs) */
	uint64_t bytes_freed;                  /* expected net saving */
	uint64_t bytes_unused_after;           /* unused bytes left in kept packs */
	uint64_t packs_written;                /* by cf_prune_run */
	/* packs that would have been deleted or repacked but are younger than
	 * the safety margin (1 hour; doc/maintenance.md), kept as they are */
	uint64_t packs_young, bytes_young;
	bool ages_unknown;                     /* the store gives no mtimes: all such packs kept */
};

struct cf_prune;
/* Mark every blob reachable from every snapshot and classify every pack.
 * Changes nothing.  Refuses (CF_ECORRUPT naming the object) when a snapshot
 * or index file cannot be read, a tree cannot be loaded, or a needed blob is
 * missing from the index: deleting on a partial picture would lose data.
 * Memory: the index plus one bit per index slot and ~100 bytes per pack.
 * Free with cf_prune_free(). */
int cf_prune_plan(struct cf_repo *r, const struct cf_prune_opts *o, struct cf_prune **out);
const struct cf_prune_stats *cf_prune_stats(const struct cf_prune *p);
/* Carry out the plan (see the order above).  Each repacked blob is
 * authenticated before its sealed bytes are copied (no recompression);
 * a damaged one stops prune before anything is deleted.  Afterwards the
 * in-memory index is stale: reload it before using r for blobs again. */
int cf_prune_run(struct cf_prune *p);
void cf_prune_free(struct cf_prune *p);

/* copy: snapshots from src into dst (different keys, so different blob ids:
 * every tree is rewritten with dst's ids).  The map remembers src -> dst ids
 * across snapshots so shared blobs are read once.  Create with
 * cf_copy_map_new(), free with cf_copy_map_free(). */
struct cf_copy_map;
struct cf_copy_map *cf_copy_map_new(void);
void cf_copy_map_free(struct cf_copy_map *m);

struct cf_copy_stats {
	uint64_t trees, data_blobs;          /* looked at */
	uint64_t blobs_copied, bytes_copied; /* plaintext bytes stored into dst */
	uint64_t bytes_stored;               /* bytes added to dst's packs */
};

/* Copy snapshot s (from src's list) into dst: blobs dst lacks are stored,
 * trees rewritten, then (after cf_repo_flush(dst)) a snapshot with s's time,
 * host, paths, tags and "original" = s's original or id.  The new id into
 * new_id.  Both repositories need their index loaded. */
int cf_repo_copy_snapshot(struct cf_repo *src, struct cf_repo *dst, const struct cf_snapshot *s,
			  struct cf_copy_map *map, struct cf_copy_stats *st, uint8_t new_id[CF_ID_LEN]);

/* stats: sizes and counts of the whole repository. */
struct cf_repo_stats {
	uint64_t snapshots;
	uint64_t packs, pack_bytes;            /* data/ objects: what the store holds */
	uint64_t data_blobs, tree_blobs;       /* distinct blobs in the index */
	uint64_t raw_bytes;                    /* their plaintext (before compression) */
	uint64_t stored_blob_bytes;            /* their sealed, compressed size */
	uint64_t files, file_bytes;            /* files in all snapshots, counted per snapshot */
};
/* Fill st (walks every snapshot's trees; a tree shared by snapshots is read
 * once).  CF_ECORRUPT if a tree cannot be loaded. */
int cf_repo_stats(struct cf_repo *r, struct cf_repo_stats *st);
/* Only the packs' count and bytes (one listing of data/, no tree read): the
 * agent's repository size gauge.  CF_OK or the backend's error. */
int cf_repo_pack_totals(struct cf_repo *r, uint64_t *packs, uint64_t *bytes);

/* check with options: read_data for all packs, or a subset of packs:
 * subset_m > 0 reads the packs whose id's first byte % m == n - 1 (restic's
 * n/m); subset_percent > 0 reads that share of the packs chosen at random.
 * Every damaged or missing pack is followed by the snapshots and paths that
 * need it. */
struct cf_check_opts {
	bool read_data;
	unsigned subset_n, subset_m;
	double subset_percent;
};
int cf_repo_check_opts(struct cf_repo *r, const struct cf_check_opts *o, struct cf_check_stats *st);

#endif
