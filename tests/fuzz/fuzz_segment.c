/*
 * fuzz_segment - the parsers of SQLite replication objects on arbitrary
 * bytes (repo/segment.c): first byte 0 = a segment's plaintext
 * (cf_seg_parse), which must fail cleanly or give transactions whose frames
 * all lie inside the input; 1 = a generation record (cf_seg_gen_decode),
 * which must fail cleanly or encode and decode again to the same record;
 * 2 = a WAL header and frames (cf_wal_header / cf_wal_frame), as the
 * replicator reads a -wal file.  Seeds: tests/fuzz/corpus/fuzz_segment.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/error.h"
#include "repo/segment.h"
#include "sources/replicate.h"

static void die(const char *what)
{
	fprintf(stderr, "fuzz_segment: %s\n", what);
	abort();
}

static void segment(const uint8_t *p, size_t n)
{
	struct cf_segment s;
	if (cf_seg_parse(p, n, &s) != CF_OK)
		return;
	for (size_t i = 0; i < s.ntx; i++)
		for (uint32_t k = 0; k < s.tx[i].nframes; k++) {
			const uint8_t *pg = s.tx[i].frames[k].page;
			if (pg < p || pg + s.page_size > p + n || !s.tx[i].frames[k].pgno)
				die("a frame outside the input");
		}
	cf_seg_release(&s);
}

static void generation(const uint8_t *p, size_t n)
{
	struct cf_seg_gen g, g2;
	struct cf_buf b = CF_BUF_INIT;
	if (cf_seg_gen_decode(p, n, &g) != CF_OK)
		return;
	if (cf_seg_gen_encode(&g, &b) != CF_OK || cf_seg_gen_decode(b.data, b.len, &g2) != CF_OK)
		die("a decoded record does not encode and decode again");
	if (strcmp(g.gen, g2.gen) || strcmp(g.path, g2.path) || g.page_size != g2.page_size ||
	    memcmp(g.snapshot, g2.snapshot, sizeof(g.snapshot)))
		die("the record changed through encode and decode");
	cf_seg_gen_release(&g);
	cf_seg_gen_release(&g2);
	cf_buf_release(&b);
}

static void wal(const uint8_t *p, size_t n)
{
	struct cf_wal w;
	uint32_t pgno, commit;
	if (n < CF_WAL_HDR || cf_wal_header(&w, p) != CF_OK)
		return;
	size_t fsz = CF_WAL_FRAME_HDR + w.page_size;
	for (size_t off = CF_WAL_HDR; off + fsz <= n; off += fsz)
		if (!cf_wal_frame(&w, p + off, &pgno, &commit))
			break;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0]) {
	case 0: segment(data + 1, size - 1); break;
	case 1: generation(data + 1, size - 1); break;
	case 2: wal(data + 1, size - 1); break;
	}
	cf_err_clear();
	return 0;
}
