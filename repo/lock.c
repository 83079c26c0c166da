/*
 * lock.c - repository locks: many shared holders (backup) or one exclusive
 * (prune), and the end-of-backup check that the lock held.
 *
 * A lock is a sealed JSON object locks/<hash> {time, hostname, username, pid,
 * exclusive, instance, boot_id, pidns} (doc/repo-format.md; locks written
 * before instance/boot_id/pidns existed are still read).  Taking one writes
 * ours first, then lists the others: if a conflicting live lock exists we
 * remove ours and fail (two racing writers both see each other and both back
 * off; one retries later with --retry-lock).
 *
 * Staleness (cf_lock_judge, a pure function of the lock, our identity and
 * the time): a lock is stale when its refresh is overdue by the margin (30
 * minutes), or when it was written on this host AND in this boot AND in this
 * PID namespace (same hostname, boot id and pid-namespace inode) by a pid
 * that no longer exists.  A hostname alone proves nothing: two containers,
 * --uts=host or a cloned VM share it while their pids mean different
 * processes.  An old-format lock (no boot id / pid namespace) is stale only
 * by age.
 *
 * A background thread refreshes ours every 5 minutes (new object, then the
 * old one removed).  Before each refresh it checks that our object is still
 * there: one that vanished (someone ran 'unlock --remove-all', or judged it
 * stale) or a lock that could not be refreshed within the margin is recorded
 * as lost, and cf_repo_verify_session() - called by a backup right before it
 * writes its snapshot - fails loudly instead of saving a snapshot whose data
 * a prune may have deleted meanwhile.  The same check lists data/ once and
 * makes sure every pack the session wrote or deduplicated against
 * (cf_repo_note_pack) is still in the store.
 */
#include "repo/repo_int.h"
#include "common/array.h"
#include "common/error.h"
#include "common/status.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STALE_DEFAULT_S (30 * 60)
#define REFRESH_S 300
#define RETRY_S 30 /* after a failed refresh */

struct cf_lockfile {
	bool exclusive;
	char name[CF_ID_HEX];
	char instance[33];
	pthread_t thread;
	bool thread_running;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;
	/* guarded by mu */
	int64_t last_ok_ns;       /* when our current lock object was written */
	bool failing;             /* the last refresh attempt failed */
	struct cf_status lost;    /* why the lock can no longer be trusted (CF_OK: held);
				   * kept by the refresher, raised by the backup's thread */
	/* packs this session used: one bit per r->idx.packs number (guarded by r->mu) */
	uint8_t *used;
	size_t used_cap;          /* bytes */
	bool used_oom;            /* a note failed: verify every pack of the index */
};

/* ---- identity and the staleness rule ---- */

static long env_seconds(const char *name, long dflt)
{
	const char *v = getenv(name);
	char *end;
	if (!v || !*v)
		return dflt;
	long s = strtol(v, &end, 10);
	return *end || s < 0 ? dflt : s;
}

int64_t cf_lock_stale_ns(void)
{
	/* test-only: lets tests/e2e/prune_pidns.sh age a lock without waiting 30 minutes */
	return env_seconds("COFFER_TEST_LOCK_STALE_SECONDS", STALE_DEFAULT_S) * 1000000000LL;
}

static long refresh_s(void)
{
	long s = (long)(cf_lock_stale_ns() / 1000000000LL) / 6; /* 5 min for 30 min */
	return s < 1 ? 1 : s > REFRESH_S ? REFRESH_S : s;
}

void cf_lock_self(struct cf_lock_id *self)
{
	struct stat st;
	memset(self, 0, sizeof(*self));
	if (gethostname(self->host, sizeof(self->host)) < 0)
		snprintf(self->host, sizeof(self->host), "unknown");
	self->host[sizeof(self->host) - 1] = 0;
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (f) {
		if (fgets(self->boot_id, sizeof(self->boot_id), f))
			self->boot_id[strcspn(self->boot_id, "\r\n")] = 0;
		fclose(f);
	}
	if (self->boot_id[0] && stat("/proc/self/ns/pid", &st) == 0 && st.st_ino) {
		self->pidns = (uint64_t)st.st_ino;
		self->has_ns = true;
	}
}

enum cf_lock_state cf_lock_judge(const struct cf_lock_info *li, const struct cf_lock_id *self,
				 int64_t now_ns, int64_t stale_ns)
{
	/* (compared so that no time a lock may hold overflows; a lock from
	 * the future stays live: a holder's clock ahead is no reason to delete) */
	if (li->time_ns < now_ns - stale_ns)
		return CF_LOCK_EXPIRED;
	if (li->id.has_ns && self->has_ns && li->pid > 0 && !strcmp(li->id.host, self->host) &&
	    !strcmp(li->id.boot_id, self->boot_id) && li->id.pidns == self->pidns)
		return CF_LOCK_LOCAL;
	return CF_LOCK_LIVE;
}

static bool lock_stale(const struct cf_lock_info *li, const struct cf_lock_id *self)
{
	switch (cf_lock_judge(li, self, cf_now_ns(), cf_lock_stale_ns())) {
	case CF_LOCK_EXPIRED:
		return true;
	case CF_LOCK_LOCAL:
		return kill((pid_t)li->pid, 0) < 0 && errno == ESRCH;
	default:
		return false;
	}
}

/* ---- encoding ---- */

static int lock_encode(const struct cf_lockfile *lf, struct cf_buf *out)
{
	struct cf_lock_id self;
	char t[64];
	cf_lock_self(&self);
	cf_format_time(cf_now_ns(), t, sizeof(t));
	const char *user = getenv("USER");
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:b, s:s}", "time", t, "hostname", self.host,
			      "username", user ? user : "", "pid", (json_int_t)getpid(),
			      "exclusive", lf->exclusive, "instance", lf->instance);
	if (j && self.has_ns &&
	    (json_object_set_new(j, "boot_id", json_string(self.boot_id)) ||
	     json_object_set_new(j, "pidns", json_integer((json_int_t)self.pidns)))) {
		json_decref(j);
		j = NULL;
	}
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

int cf_lock_decode(const uint8_t *p, size_t n, struct cf_lock_info *li)
{
	json_error_t e;
	json_t *j = json_loadb((const char *)p, n, 0, &e);
	const char *t = NULL, *host = NULL, *user = "", *inst = "", *boot = NULL;
	json_int_t pid = 0, pidns = 0;
	int excl = 0;
	memset(li, 0, sizeof(*li));
	if (!j)
		return cf_err(CF_ECORRUPT, "lock does not parse");
	int bad = json_unpack(j, "{s:s, s:s, s?:s, s:I, s:b, s?:s, s?:s, s?:I}", "time", &t,
			      "hostname", &host, "username", &user, "pid", &pid, "exclusive", &excl,
			      "instance", &inst, "boot_id", &boot, "pidns", &pidns) < 0 ||
		  cf_parse_time(t, &li->time_ns) != CF_OK;
	if (!bad) {
		snprintf(li->id.host, sizeof(li->id.host), "%s", host);
		snprintf(li->user, sizeof(li->user), "%s", user);
		snprintf(li->instance, sizeof(li->instance), "%s", inst);
		li->pid = (long)pid;
		li->exclusive = excl;
		if (boot && *boot && pidns > 0) {
			snprintf(li->id.boot_id, sizeof(li->id.boot_id), "%s", boot);
			li->id.pidns = (uint64_t)pidns;
			li->id.has_ns = true;
		}
	}
	json_decref(j);
	return bad ? cf_err(CF_ECORRUPT, "lock is malformed") : CF_OK;
}

static int write_lock(struct cf_repo *r, const struct cf_lockfile *lf, char name[CF_ID_HEX])
{
	struct cf_buf b = CF_BUF_INIT;
	int rc = lock_encode(lf, &b);
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
	struct cf_lock_id self;
	char conflict[512];
};

/* unlock: say why a lock is kept, so the user knows when it will go */
static void explain_kept(const struct lockscan *ls, const char *name, const struct cf_lock_info *li)
{
	char t[64];
	const char *why;
	cf_format_time(li->time_ns, t, sizeof(t));
	if (cf_lock_judge(li, &ls->self, cf_now_ns(), cf_lock_stale_ns()) == CF_LOCK_LOCAL)
		why = "its process is running";
	else if (!li->id.has_ns)
		why = "an old-format lock, stale only once not refreshed for the margin";
	else
		why = "written on another host, boot or PID namespace, where its pid cannot be checked: "
		      "stale once not refreshed for the margin";
	cf_warn("kept lock %.8s of %s@%s (pid %ld), last refreshed %s: %s (%ld min); "
		"'coffer unlock --remove-all' removes it if no coffer is running there",
		name, li->user, li->id.host, li->pid, t, why, (long)(cf_lock_stale_ns() / 60000000000LL));
}

static int scan_lock(const char *name, uint64_t size, void *ctx)
{
	struct lockscan *ls = ctx;
	struct cf_buf b = CF_BUF_INIT;
	struct cf_lock_info li;
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
		rc = cf_lock_decode(b.data, b.len, &li);
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
		else
			cf_warn("kept lock %.8s: it cannot be read ('coffer unlock --remove-all' removes it)", name);
		return 0;
	}
	bool stale = lock_stale(&li, &ls->self);
	if (ls->remove_all || (ls->remove_stale && stale)) {
		if ((rc = cf_be_remove(ls->r->be, path)))
			return rc;
		ls->removed++;
		return 0;
	}
	if (ls->remove_stale) {
		explain_kept(ls, name, &li);
		return 0;
	}
	if (!stale && (ls->exclusive || li.exclusive)) {
		char t[64];
		cf_format_time(li.time_ns, t, sizeof(t));
		snprintf(ls->conflict, sizeof(ls->conflict),
			 "%s lock %.8s held by %s@%s (pid %ld), last refreshed %s",
			 li.exclusive ? "an exclusive" : "a", name, li.user, li.id.host, li.pid, t);
	}
	return 0;
}

/* One refresh of our lock (lf->mu held): make sure our object is still
 * there, write a new one, remove the old.  Records in lf->lost why the lock
 * can no longer be trusted. */
static void refresh_once(struct cf_repo *r, struct cf_lockfile *lf)
{
	char name[CF_ID_HEX], path[128];
	int64_t now = cf_now_ns(), stale = cf_lock_stale_ns();
	int rc;

	if (lf->lost.code)
		return;
	snprintf(path, sizeof(path), "locks/%s", lf->name);
	rc = cf_be_stat(r->be, path, NULL);
	if (rc == CF_ENOENT) {
		cf_status_keep(&lf->lost, cf_err(CF_ELOCKED, "our lock %.8s was removed from the repository "
						     "while this run held it ('coffer unlock --remove-all', or a coffer "
						     "elsewhere that judged it stale)", lf->name));
		return;
	}
	if (!rc)
		rc = write_lock(r, lf, name);
	if (rc) {
		if (now - lf->last_ok_ns > stale)
			cf_status_keep(&lf->lost, cf_err(CF_ELOCKED, "our lock could not be refreshed for %lld s "
							     "(others may have judged it stale): %s",
							     (long long)((now - lf->last_ok_ns) / 1000000000LL),
							     cf_errmsg(rc)));
		else
			cf_warn("warning: could not refresh the repository lock (will retry): %s", cf_errmsg(rc));
		lf->failing = true;
		return;
	}
	if (now - lf->last_ok_ns > stale)
		cf_warn("warning: the repository lock was not refreshed for %lld s (process suspended?): "
			"others may have judged it stale; checking this run's packs before its snapshot",
			(long long)((now - lf->last_ok_ns) / 1000000000LL));
	cf_be_remove(r->be, path);
	snprintf(lf->name, sizeof(lf->name), "%s", name);
	lf->last_ok_ns = now;
	lf->failing = false;
}

static void *refresher(void *arg)
{
	struct cf_repo *r = arg;
	struct cf_lockfile *lf = r->lock;
	pthread_mutex_lock(&lf->mu);
	while (!lf->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += lf->failing ? (refresh_s() < RETRY_S ? refresh_s() : RETRY_S) : refresh_s();
		pthread_cond_timedwait(&lf->cond, &lf->mu, &ts);
		if (lf->stop)
			break;
		refresh_once(r, lf);
	}
	pthread_mutex_unlock(&lf->mu);
	return NULL;
}

int cf_repo_lock(struct cf_repo *r, bool exclusive, double retry_seconds)
{
	double deadline = cf_now_mono() + retry_seconds;
	struct cf_lockfile *lf = calloc(1, sizeof(*lf));
	uint8_t inst[16];
	char path[128];
	int rc;

	if (!lf)
		return cf_err(CF_ENOMEM, "out of memory");
	lf->exclusive = exclusive;
	cf_random(inst, sizeof(inst));
	cf_hex(inst, sizeof(inst), lf->instance);
	pthread_mutex_init(&lf->mu, NULL);
	pthread_cond_init(&lf->cond, NULL);
	for (;;) {
		lf->last_ok_ns = cf_now_ns();
		if ((rc = write_lock(r, lf, lf->name))) {
			rc = cf_err(rc, "cannot lock the repository at %s: %s", r->be->location,
				    cf_strerror(rc));
			goto fail;
		}
		struct lockscan ls = { .r = r, .ours = lf->name, .exclusive = exclusive };
		cf_lock_self(&ls.self);
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
	free(lf->used);
	free(lf);
	r->lock = NULL;
}

int cf_repo_unlock_stale(struct cf_repo *r, bool all, int *removed)
{
	struct lockscan ls = { .r = r, .remove_stale = true, .remove_all = all };
	cf_lock_self(&ls.self);
	int rc = cf_be_list(r->be, "locks", scan_lock, &ls);
	*removed = ls.removed;
	return rc;
}

int cf_repo_lock_recheck(struct cf_repo *r)
{
	struct cf_lockfile *lf = r->lock;
	struct lockscan ls = { .r = r, .ours = lf ? lf->name : NULL, .exclusive = true };
	int rc;
	cf_lock_self(&ls.self);
	if (lf)
		pthread_mutex_lock(&lf->mu); /* lf->name changes on refresh */
	rc = cf_be_list(r->be, "locks", scan_lock, &ls);
	if (!rc && lf)
		rc = cf_status_raise(&lf->lost);
	if (lf)
		pthread_mutex_unlock(&lf->mu);
	if (!rc && ls.conflict[0])
		rc = cf_err(CF_ELOCKED, "a lock appeared while this run held the exclusive one: %s",
			    ls.conflict);
	return rc;
}

/* ---- the session's packs ---- */

void cf_repo_note_pack(struct cf_repo *r, uint32_t num)
{
	struct cf_lockfile *lf = r->lock;
	if (!lf || lf->used_oom)
		return;
	size_t byte = num / 8;
	size_t old = lf->used_cap;
	if (CF_GROW(lf->used, byte + 1, lf->used_cap)) {
		lf->used_oom = true; /* verify every pack instead */
		return;
	}
	memset(lf->used + old, 0, lf->used_cap - old);
	lf->used[byte] |= (uint8_t)(1u << (num % 8));
}

struct idlist {
	uint8_t (*ids)[CF_ID_LEN];
	size_t n, cap;
};

static int add_present(const char *name, uint64_t size, void *ctx)
{
	struct idlist *l = ctx;
	uint8_t id[CF_ID_LEN];
	(void)size;
	if (strlen(name) != CF_ID_HEX - 1 || cf_unhex(name, id, CF_ID_LEN))
		return 0;
	int rc;
	if ((rc = CF_GROW(l->ids, l->n + 1, l->cap)))
		return rc;
	memcpy(l->ids[l->n++], id, CF_ID_LEN);
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, CF_ID_LEN);
}

int cf_repo_verify_session(struct cf_repo *r, const uint8_t *parent)
{
	struct cf_lockfile *lf = r->lock;
	struct idlist present = { NULL, 0, 0 };
	char hex[CF_ID_HEX], path[96];
	int rc = CF_OK;

	if (!lf)
		return CF_OK;
	/* a fresh lock first: a prune that planned while ours looked stale
	 * sees it when it re-checks the locks before deleting */
	pthread_mutex_lock(&lf->mu);
	refresh_once(r, lf);
	if (!lf->lost.code && lf->failing)
		cf_status_keep(&lf->lost, cf_err(CF_ELOCKED, "our lock could not be refreshed: %s",
						 cf_errmsg(CF_EIO)));
	if (lf->lost.code)
		rc = cf_err(CF_ELOCKED, "%s; a concurrent prune may have removed data this backup "
			    "needs, so no snapshot was written (run the backup again)", lf->lost.msg);
	pthread_mutex_unlock(&lf->mu);
	if (rc)
		return rc;
	if (parent) {
		cf_hex(parent, CF_ID_LEN, hex);
		snprintf(path, sizeof(path), "snapshots/%s", hex);
		rc = cf_be_stat(r->be, path, NULL);
		if (rc == CF_ENOENT)
			return cf_err(CF_ECORRUPT, "the parent snapshot %.8s was removed while this backup "
				      "ran (a concurrent forget or prune); its unchanged files may be gone "
				      "too, so no snapshot was written (run the backup again)", hex);
		if (rc)
			return rc;
	}
	if ((rc = cf_be_list(r->be, "data", add_present, &present)))
		goto out;
	if (present.n)
		qsort(present.ids, present.n, sizeof(*present.ids), cmp_id);
	size_t checked = 0, missing = 0;
	uint8_t first[CF_ID_LEN];
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->idx.npacks; i++) {
		if (!lf->used_oom && (i / 8 >= lf->used_cap || !(lf->used[i / 8] & (1u << (i % 8)))))
			continue;
		checked++;
		if (present.n && bsearch(r->idx.packs[i], present.ids, present.n, sizeof(*present.ids), cmp_id))
			continue;
		if (!missing++)
			memcpy(first, r->idx.packs[i], CF_ID_LEN);
	}
	pthread_mutex_unlock(&r->mu);
	cf_debug("verified %zu packs this backup wrote or deduplicated against", checked);
	if (missing) {
		cf_hex(first, CF_ID_LEN, hex);
		rc = cf_err(CF_ECORRUPT, "pack %s, which this backup wrote or deduplicated against, is "
			    "gone from the store (%zu of %zu packs missing): a prune or 'unlock' run "
			    "while this backup was running likely removed it; no snapshot was written "
			    "(run 'coffer prune', which drops index entries of missing packs, then the "
			    "backup again)", hex, missing, checked);
	}
out:
	free(present.ids);
	return rc;
}
