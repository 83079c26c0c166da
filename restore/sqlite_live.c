/* sqlite_live.c - see sqlite_live.h. */
#include "restore/sqlite_live.h"
#include "common/error.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Is (dev, ino) locked by anyone?  /proc/locks: "1: POSIX ADVISORY WRITE
 * PID MAJ:MIN:INO START END" (hex major and minor). */
static bool locked(const struct stat *st)
{
	FILE *f = fopen("/proc/locks", "r");
	char line[512];
	bool hit = false;
	if (!f)
		return false;
	while (!hit && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		unsigned long long ino;
		char *p = line;
		/* the MAJ:MIN:INO field is the one with two colons */
		for (char *tok = strtok(p, " \n"); tok; tok = strtok(NULL, " \n"))
			if (sscanf(tok, "%x:%x:%llu", &maj, &min, &ino) == 3 && strchr(strchr(tok, ':') + 1, ':')) {
				hit = makedev(maj, min) == st->st_dev && ino == (unsigned long long)st->st_ino;
				break;
			}
	}
	fclose(f);
	return hit;
}

/* Another process (one we may look at) holding (dev, ino) open: its pid, else 0. */
static long opened_by(const struct stat *st)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	long found = 0, self = (long)getpid();
	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid == self)
			continue;
		char dir[64];
		snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
		DIR *fd = opendir(dir);
		struct dirent *f;
		if (!fd)
			continue;
		while (!found && (f = readdir(fd))) {
			char p[PATH_MAX];
			struct stat fs;
			if (f->d_name[0] == '.' || snprintf(p, sizeof(p), "%s/%s", dir, f->d_name) >= (int)sizeof(p))
				continue;
			if (!stat(p, &fs) && fs.st_dev == st->st_dev && fs.st_ino == st->st_ino)
				found = pid;
		}
		closedir(fd);
	}
	closedir(d);
	return found;
}

int cf_sqlite_live_check(const char *path, bool *busy, char *why, size_t n)
{
	static const char *const sfx[] = { "-wal", "-shm", "" };
	char p[PATH_MAX];
	*busy = false;
	/* the side files first: they are what undoes a restore */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < 3; i++) {
			struct stat st;
			long pid = 0;
			if (snprintf(p, sizeof(p), "%s%s", path, sfx[i]) >= (int)sizeof(p) || lstat(p, &st) ||
			    !S_ISREG(st.st_mode))
				continue;
			if (!pass && i == 0 && st.st_size > 0)
				snprintf(why, n, "%s holds %lld bytes not yet in the database", p, (long long)st.st_size);
			else if (!pass && i == 1)
				snprintf(why, n, "%s is there (a connection has the database open in WAL mode, or "
					 "was killed)", p);
			else if (pass && locked(&st))
				snprintf(why, n, "%s is locked by another process (see /proc/locks)", p);
			else if (pass && (pid = opened_by(&st)))
				snprintf(why, n, "%s is open in process %ld", p, pid);
			else
				continue;
			*busy = true;
			return CF_OK;
		}
	return CF_OK;
}

static int side(const char *path, const char *sfx, bool back)
{
	char a[PATH_MAX], b[PATH_MAX];
	snprintf(a, sizeof(a), "%s%s", path, sfx);
	snprintf(b, sizeof(b), "%s%s.coffer-replaced", path, sfx);
	if (rename(back ? b : a, back ? a : b))
		return cf_err_errno("cannot rename %s to %s", back ? b : a, back ? a : b);
	return CF_OK;
}

int cf_sqlite_live_aside(const char *path, struct cf_sqlite_aside *a)
{
	char p[PATH_MAX];
	struct stat st;
	int rc;
	memset(a, 0, sizeof(*a));
	if (!(a->path = strdup(path)))
		return cf_err(CF_ENOMEM, "out of memory");
	snprintf(p, sizeof(p), "%s-wal", path);
	if (!lstat(p, &st)) {
		if ((rc = side(path, "-wal", false)))
			goto fail;
		a->wal = true;
	}
	snprintf(p, sizeof(p), "%s-shm", path);
	if (!lstat(p, &st)) {
		if ((rc = side(path, "-shm", false)))
			goto fail;
		a->shm = true;
	}
	return CF_OK;
fail:
	cf_sqlite_live_done(a, false);
	return rc;
}

int cf_sqlite_live_done(struct cf_sqlite_aside *a, bool replaced)
{
	char p[PATH_MAX];
	int rc = CF_OK, r;
	for (int i = 0; i < 2 && a->path; i++) {
		const char *sfx = i ? "-shm" : "-wal";
		if (!(i ? a->shm : a->wal))
			continue;
		if (replaced) {
			snprintf(p, sizeof(p), "%s%s.coffer-replaced", a->path, sfx);
			if (unlink(p) && errno != ENOENT && !rc)
				rc = cf_err_errno("cannot remove %s", p);
		} else if ((r = side(a->path, sfx, true)) && !rc) {
			rc = r;
		}
	}
	if (rc)
		cf_warn("coffer: %s", cf_errmsg(rc));
	free(a->path);
	memset(a, 0, sizeof(*a));
	return rc;
}
