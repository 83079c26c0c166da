/* engine/dircache.h - the local directory cache of backups.
 *
 * A backup with a parent snapshot compares every directory with the
 * parent's tree of it.  Decoding those trees (JSON) costs more than the walk
 * itself once a volume holds a million files, so each backup leaves a small
 * file in the local cache directory that summarizes every directory tree of
 * the snapshot it wrote: the tree id, a digest of what the tree's entries
 * were made from (name and lstat fields, node by node), and the names and
 * tree ids of its subdirectories.  The next backup lstat()s a directory's
 * entries, and when their digest equals the parent tree's it takes the tree
 * id without loading the tree (see dir_fast in backup.c).
 *
 * The file is sealed with the repository key (confidential and
 * authenticated: a changed or foreign file is ignored) and is only used
 * when it describes the very parent snapshot the backup chose: everything
 * that snapshot references stays in the repository until it is forgotten
 * and pruned.  Losing or deleting it costs speed, never data.
 *
 * Payload (after unsealing), little-endian:
 *   "CFDC" u32 version (1) snapshot id[32] u32 count
 *   count x { tree id[32] digest[32] u32 nsub
 *             nsub x { u16 namelen name[namelen] subtree id[32] } }
 * Subdirectories are listed in the tree's order (byte order of names).
 */
#ifndef CF_DIRCACHE_H
#define CF_DIRCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"

#define CF_DC_ID 32

struct cf_dc_entry {
	const uint8_t *id, *digest; /* CF_DC_ID bytes each, inside the payload */
	uint32_t nsub;
	const uint8_t *subs;        /* nsub x { u16 len, name, id[32] }, validated */
};

struct cf_dircache {
	struct cf_buf payload;
	uint8_t snapshot[CF_DC_ID];
	struct cf_dc_entry *e; /* sorted by id, no duplicate ids */
	size_t n;
};
#define CF_DIRCACHE_INIT { CF_BUF_INIT, { 0 }, NULL, 0 }

/* Parse (and copy) a payload.  CF_EFORMAT with a message when it is not
 * one; dc is empty then. */
int cf_dc_parse(const void *p, size_t n, struct cf_dircache *dc);
const struct cf_dc_entry *cf_dc_find(const struct cf_dircache *dc, const uint8_t id[CF_DC_ID]);
void cf_dc_release(struct cf_dircache *dc);

/* Walk an entry's subdirectories: *cur starts at e->subs, one call per
 * subdirectory (e->nsub calls at most). */
void cf_dc_sub(const uint8_t **cur, const char **name, size_t *len, const uint8_t **id);

/* Writing: start a payload, add entries (each cf_dc_add followed by its
 * nsub subdirectories, in the tree's order), finish (snapshot, count). */
int cf_dc_begin(struct cf_buf *out);
int cf_dc_add(struct cf_buf *out, const uint8_t id[CF_DC_ID], const uint8_t digest[CF_DC_ID], uint32_t nsub);
int cf_dc_add_sub(struct cf_buf *out, const char *name, const uint8_t id[CF_DC_ID]);
void cf_dc_finish(struct cf_buf *out, const uint8_t snapshot[CF_DC_ID], uint32_t count);


#endif
