/*
 * lock.c - repository locks: many shared holders (backup) or one exclusive
 * (prune).
 *
 * A lock is a sealed JSON object locks/<hash> {time, hostname, username, pid,
 * exclusive}.  Taking one writes ours first, then lists the others: if a
 * conflicting live lock exists we remove ours and fail (two racing writers
 * both see each other and both back off; one retries later with
 * --retry-lock).  A lock is stale when it was not refreshed for 30 minutes,
 * or when it was taken on this host by a pid that no longer exists.  A
 * background thread refreshes ours every 5 minutes (new object, then the old
 * one removed).
 */
#include "repo_int.h"
#include "../common/error.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STALE_NS (30LL * 60 * 1000000000)
#define REFRESH_S 300

struct cf_lockfile {
	bool exclusive;
	char name[CF_ID_HEX];
	pthread_t thread;
	bool thread_running;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;
};

struct lockinfo {
	int64_t time_ns;
	char host[256];
	char user[64];
	long pid;
	bool exclusive;
};

static int lock_encode(bool exclusive, struct cf_buf *out)
{
	char host[256], t[64];
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = 0;
	cf_format_time(cf_now_ns(), t, sizeof(t));
	const char *user = getenv("USER");
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:b}", "time", t, "hostname", host,
			      "username", user ? user : "", "pid", (json_int_t)getpid(),
			      "exclusive", exclusive);
	if (!j)
		return cf_err(CF_ENOMEM, "out of memory");
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		return cf_err(CF_ENOMEM, "out of memory");
	int rc = cf_buf_adds(out, s);
	free(s);
	return rc;
}

static int lock_decode(const uint8_t *p, size_t n, struct lockinfo *li)
{
	json_error_t e;
	json_t *j = json_loadb((const char *)p, n, 0, &e);
	const char *t = NULL, *host = NULL, *user = "";
	json_int_t pid = 0;
	int excl = 0;
	if (!j)
		return cf_err(CF_ECORRUPT, "lock does not parse");
	int bad = json_unpack(j, "{s:s, s:s, s?:s, s:I, s:b}", "time", &t, "hostname", &host,
			      "username", &user, "pid", &pid, "exclusive", &excl) < 0 ||
		  cf_parse_time(t, &li->time_ns) != CF_OK;
	if (!bad) {
		snprintf(li->host, sizeof(li->host), "%s", host);
		snprintf(li->user, sizeof(li->user), "%s", user);
		li->pid = (long)pid;
		li->exclusive = excl;
	}
	json_decref(j);
	return bad ? cf_err(CF_ECORRUPT, "lock is malformed") : CF_OK;
}

static bool lock_stale(const struct lockinfo *li)
{
	char host[256];
	if (cf_now_ns() - li->time_ns > STALE_NS)
		return true;
	if (gethostname(host, sizeof(host)) == 0 && strcmp(host, li->host) == 0 && li->pid > 0 &&
	    kill((pid_t)li->pid, 0) < 0 && errno == ESRCH)
		return true;
	return false;
}

static int write_lock(struct cf_repo *r, bool exclusive, char name[CF_ID_HEX])
{
	struct cf_buf b = CF_BUF_INIT;
	int rc = lock_encode(exclusive, &b);
	if (!rc)
		rc = cf_repo_put_hashed(r, "locks", CF_OBJ_LOCK, b.data, b.len, name, NULL);
	cf_buf_release(&b);
	return rc;
}

struct lockscan {
	struct cf_repo *r;
	const char *ours;
	bool exclusive;
	bool remove_stale, remove_all;
	int removed;
	char conflict[512];
};

static int scan_lock(const char *name, uint64_t size, void *ctx)
{
	struct lockscan *ls = ctx;
	struct cf_buf b = CF_BUF_INIT;
	struct lockinfo li;
	char path[600];
	(void)size;
	if (ls->ours && strcmp(name, ls->ours) == 0)
		return 0;
	snprintf(path, sizeof(path), "locks/%s", name);
	int rc = cf_repo_get_sealed(ls->r, path, CF_OBJ_LOCK, &b);
	if (rc == CF_ENOENT) { /* removed meanwhile */
		cf_buf_release(&b);
		return 0;
	}
	if (!rc)
		rc = lock_decode(b.data, b.len, &li);
	cf_buf_release(&b);
	if (rc) {
		/* a lock we cannot read is treated as live, unless told to remove all */
		if (ls->remove_all) {
			cf_be_remove(ls->r->be, path);
			ls->removed++;
			return 0;
		}
		if (!ls->remove_stale)
			snprintf(ls->conflict, sizeof(ls->conflict), "unreadable lock %.8s", name);
		return 0;
	}
	bool stale = lock_stale(&li);
	if (ls->remove_all || (ls->remove_stale && stale)) {
		if ((rc = cf_be_remove(ls->r->be, path)))
			return rc;
		ls->removed++;
		return 0;
	}
	if (!stale && !ls->remove_stale && (ls->exclusive || li.exclusive)) {
		char t[64];
		cf_format_time(li.time_ns, t, sizeof(t));
		snprintf(ls->conflict, sizeof(ls->conflict),
			 "%s lock %.8s held by %s@%s (pid %ld) since %s",
			 li.exclusive ? "an exclusive" : "a", name, li.user, li.host, li.pid, t);
	}
	return 0;
}

static void *refresher(void *arg)
{
	struct cf_repo *r = arg;
	struct cf_lockfile *lf = r->lock;
	pthread_mutex_lock(&lf->mu);
	while (!lf->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += REFRESH_S;
		pthread_cond_timedwait(&lf->cond, &lf->mu, &ts);
		if (lf->stop)
			break;
		char name[CF_ID_HEX], old[CF_ID_HEX], path[128];
		if (write_lock(r, lf->exclusive, name) == CF_OK) {
			snprintf(old, sizeof(old), "%s", lf->name);
			snprintf(lf->name, sizeof(lf->name), "%s", name);
			snprintf(path, sizeof(path), "locks/%s", old);
			cf_be_remove(r->be, path);
		} else {
			cf_warn("warning: could not refresh the repository lock: %s", cf_errmsg(CF_EIO));
		}
	}
	pthread_mutex_unlock(&lf->mu);
	return NULL;
}

int cf_repo_lock(struct cf_repo *r, bool exclusive, double retry_seconds)
{
	double deadline = cf_now_mono() + retry_seconds;
	struct cf_lockfile *lf = calloc(1, sizeof(*lf));
	char path[128];
	int rc;

	if (!lf)
		return cf_err(CF_ENOMEM, "out of memory");
	lf->exclusive = exclusive;
	pthread_mutex_init(&lf->mu, NULL);
	pthread_cond_init(&lf->cond, NULL);
	for (;;) {
		if ((rc = write_lock(r, exclusive, lf->name))) {
			rc = cf_err(rc, "cannot lock the repository at %s: %s", r->be->location,
				    cf_strerror(rc));
			goto fail;
		}
		struct lockscan ls = { .r = r, .ours = lf->name, .exclusive = exclusive };
		if ((rc = cf_be_list(r->be, "locks", scan_lock, &ls)))
			goto fail_remove;
		if (!ls.conflict[0])
			break;
		snprintf(path, sizeof(path), "locks/%s", lf->name);
		cf_be_remove(r->be, path);
		if (cf_now_mono() >= deadline || cf_interrupted) {
			rc = cf_err(CF_ELOCKED, "repository is already locked: %s "
				    "(if no coffer is running, remove stale locks with 'coffer unlock')",
				    ls.conflict);
			goto fail;
		}
		sleep(cf_now_mono() + 5 < deadline ? 5 : 1);
	}
	r->lock = lf;
	if (pthread_create(&lf->thread, NULL, refresher, r) == 0)
		lf->thread_running = true;
	return CF_OK;
fail_remove:
	snprintf(path, sizeof(path), "locks/%s", lf->name);
	cf_be_remove(r->be, path);
fail:
	pthread_mutex_destroy(&lf->mu);
	pthread_cond_destroy(&lf->cond);
	free(lf);
	return rc;
}

void cf_repo_lock_release(struct cf_repo *r)
{
	struct cf_lockfile *lf = r->lock;
	char path[128];
	if (!lf)
		return;
	if (lf->thread_running) {
		pthread_mutex_lock(&lf->mu);
		lf->stop = true;
		pthread_cond_signal(&lf->cond);
		pthread_mutex_unlock(&lf->mu);
		pthread_join(lf->thread, NULL);
	}
	snprintf(path, sizeof(path), "locks/%s", lf->name);
	cf_be_remove(r->be, path);
	pthread_mutex_destroy(&lf->mu);
	pthread_cond_destroy(&lf->cond);
	free(lf);
	r->lock = NULL;
}

int cf_repo_unlock_stale(struct cf_repo *r, bool all, int *removed)
{
	struct lockscan ls = { .r = r, .remove_stale = true, .remove_all = all };
	int rc = cf_be_list(r->be, "locks", scan_lock, &ls);
	*removed = ls.removed;
	return rc;
}
