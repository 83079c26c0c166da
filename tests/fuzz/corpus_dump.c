/*
 * corpus_dump.c - writes the plaintext of a real repository's objects as
 * seeds for the fuzz targets (tests/fuzz/corpus/<target>/).  Not built by
 * CMake; tests/fuzz/make-corpus.sh compiles it against libcoffer and runs it
 * on tests/golden/repo-v1.
 *
 * usage: corpus_dump REPO PASSWORD OUTDIR
 * writes OUTDIR/{config,index,snapshot,tree,packhdr}.N (N = 0, 1, ...)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"
#include "repo/repo_int.h"
#include "repo/snapshot.h"
#include "store/backend.h"

static const char *outdir;
static struct cf_repo *repo;
static int nidx, nsnap, ntree, npack;

static void save(const char *kind, int n, const void *p, size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.%d", outdir, kind, n);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static int one(const char *dir, const char *name, int type, const char *kind, int *n)
{
	struct cf_buf b = CF_BUF_INIT;
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int rc = cf_repo_get_sealed(repo, path, type, &b);
	if (!rc)
		save(kind, (*n)++, b.data, b.len);
	cf_buf_release(&b);
	return rc;
}

static int on_index(const char *name, uint64_t size, void *ctx)
{
	(void)size, (void)ctx;
	return nidx < 3 ? one("index", name, CF_OBJ_INDEX, "index", &nidx) : 0;
}

static int on_snap(const char *name, uint64_t size, void *ctx)
{
	(void)size, (void)ctx;
	return nsnap < 3 ? one("snapshots", name, CF_OBJ_SNAPSHOT, "snapshot", &nsnap) : 0;
}

static int on_blob(int type, const uint8_t id[CF_ID_LEN], const struct cf_blob_loc *loc, void *ctx)
{
	(void)loc, (void)ctx;
	struct cf_buf b = CF_BUF_INIT;
	if (type != CF_BLOB_TREE || ntree >= 4)
		return 0;
	int rc = cf_repo_load_blob(repo, type, id, &b);
	if (!rc)
		save("tree", ntree++, b.data, b.len);
	cf_buf_release(&b);
	return rc;
}

static int on_pack(const char *name, uint64_t size, void *ctx)
{
	(void)size, (void)ctx;
	struct cf_buf b = CF_BUF_INIT, plain = CF_BUF_INIT;
	char path[600];
	if (npack >= 3)
		return 0;
	snprintf(path, sizeof(path), "data/%.2s/%s", name, name);
	int rc = cf_be_get(cf_repo_backend(repo), path, &b);
	/* the tail: sealed header, then its length (4 bytes, little endian) */
	if (!rc && b.len > 4 + CF_SEAL_OVERHEAD) {
		uint32_t hl = cf_get_le32(b.data + b.len - 4);
		if (hl >= CF_SEAL_OVERHEAD && hl + 4 <= b.len &&
		    cf_buf_grow(&plain, hl) == CF_OK &&
		    !cf_unseal(repo->key, CF_OBJ_PACKHDR, NULL, b.data + b.len - 4 - hl, hl, plain.data))
			save("packhdr", npack++, plain.data, hl - CF_SEAL_OVERHEAD);
	}
	cf_buf_release(&b);
	cf_buf_release(&plain);
	return rc;
}

int main(int argc, char **argv)
{
	struct cf_backend *be;
	struct cf_buf cfg = CF_BUF_INIT;
	int nc = 0;
	if (argc != 4) {
		fprintf(stderr, "usage: corpus_dump REPO PASSWORD OUTDIR\n");
		return 2;
	}
	outdir = argv[3];
	if (cf_backend_local_new(argv[1], &be) || cf_repo_open(be, argv[2], strlen(argv[2]), &repo) ||
	    cf_repo_load_index(repo)) {
		fprintf(stderr, "corpus_dump: cannot open %s: %s\n", argv[1], cf_errmsg(CF_EIO));
		return 1;
	}
	if (cf_repo_get_sealed(repo, "config", CF_OBJ_CONFIG, &cfg) == CF_OK)
		save("config", nc++, cfg.data, cfg.len);
	cf_buf_release(&cfg);
	int rc;
	if ((rc = cf_be_list(be, "index", on_index, NULL)) || (rc = cf_be_list(be, "snapshots", on_snap, NULL)) ||
	    (rc = cf_repo_index_foreach(repo, on_blob, NULL)) || (rc = cf_be_list(be, "data", on_pack, NULL))) {
		fprintf(stderr, "corpus_dump: reading %s failed: %s\n", argv[1], cf_errmsg(rc));
		return 1;
	}
	printf("config %d, index %d, snapshot %d, tree %d, packhdr %d\n", nc, nidx, nsnap, ntree, npack);
	cf_repo_free(repo);
	return 0;
}
