/*
 * tz.c - the process's time zone, switched under one lock (see tz.h).
 */
#include "common/tz.h"

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static char *tz_saved;      /* previous TZ value, valid while the lock is held */
static bool tz_was_set;

static const char *tz_dir(void)
{
	const char *d = getenv("TZDIR");
	return d && *d ? d : "/usr/share/zoneinfo";
}

int cf_tz_check(const char *tz)
{
	char path[4096], magic[4];
	int fd;
	ssize_t n;

	if (!tz || !*tz)
		return CF_OK;
	/* Only IANA names: no POSIX rule strings, no escaping the zone directory. */
	for (const char *p = tz; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("/_+-.", *p))
			return cf_err(CF_EINVAL, "time zone \"%s\" is not an IANA zone name", tz);
	if (tz[0] == '/' || tz[0] == '.' || strstr(tz, "/.") || strlen(tz) > 255)
		return cf_err(CF_EINVAL, "time zone \"%s\" is not an IANA zone name", tz);
	snprintf(path, sizeof(path), "%s/%s", tz_dir(), tz);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cf_err(CF_EINVAL, "unknown time zone \"%s\" (no %s; is tzdata installed?)", tz, path);
	n = read(fd, magic, sizeof(magic));
	close(fd);
	if (n != 4 || memcmp(magic, "TZif", 4) != 0)
		return cf_err(CF_EINVAL, "unknown time zone \"%s\" (%s is not a zone file)", tz, path);
	return CF_OK;
}

int cf_tz_enter(const char *tz)
{
	const char *old;
	int r;

	if ((r = cf_tz_check(tz)) != CF_OK)
		return r;
	pthread_mutex_lock(&tz_lock);
	old = getenv("TZ");
	tz_was_set = old != NULL;
	tz_saved = NULL;
	if (old && !(tz_saved = strdup(old))) {
		pthread_mutex_unlock(&tz_lock);
		return cf_err(CF_ENOMEM, "out of memory switching time zone");
	}
	if (setenv("TZ", tz && *tz ? tz : "UTC0", 1) != 0) {
		free(tz_saved);
		tz_saved = NULL;
		pthread_mutex_unlock(&tz_lock);
		return cf_err(CF_ENOMEM, "out of memory switching time zone");
	}
	tzset();
	return CF_OK;
}

void cf_tz_leave(void)
{
	if (tz_was_set && tz_saved)
		setenv("TZ", tz_saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(tz_saved);
	tz_saved = NULL;
	pthread_mutex_unlock(&tz_lock);
}

