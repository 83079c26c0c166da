/* testutil.h - helpers shared by the unit tests (header only). */
#ifndef CF_TESTUTIL_H
#define CF_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int testutil_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

/* Remove dir and everything below it (best effort; for fixtures' teardown). */
static inline void rm_tree(const char *dir)
{
	nftw(dir, testutil_rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

#endif
