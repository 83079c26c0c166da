/*
 * copy_job.c - the agent's offsite copies (COFFER_COPY_TO_<NAME>_*): one copy
 * job brings this host's snapshots from the main repository (or, with
 * _FROM, from another target's) into the target that lacks them, then
 * applies the target's own retention there.
 *
 * One copy, agent_run_copy():
 *
 *     job lock -> open the source (shared lock) -> open the target (shared)
 *     -> what the target lacks: a source snapshot is there when the target
 *        holds it or a copy of it ("original", as `coffer copy` tells)
 *     -> with a retention (_KEEP_*): the policy applied to the target's
 *        snapshots plus the missing ones; a missing snapshot the policy would
 *        forget at once is not copied at all (a monthly target is not sent
 *        every daily snapshot to delete it again)
 *     -> copy, oldest first (blobs the target has are not sent again)
 *     -> with a retention: exclusive lock on the target, forget what the
 *        policy does not keep; prune the target when a tick of
 *        COFFER_PRUNE_SCHEDULE has passed since the target's last prune
 *
 * When: a target without _SCHEDULE runs after each backup that wrote a
 * snapshot (agent_run_copies(.., after_backup = true)); one with a schedule
 * when a tick of it has passed since its last run (never run: due).  Targets
 * run in the order config.c sorted them: a target after the one it copies
 * from.  A failing target does not stop the others.
 *
 * Each copy is reported on its own: a logfmt line "coffer agent: copy
 * target=NAME ...", the state file's "copies" object (what the healthcheck
 * and the metrics read), the metrics with a target label, the webhook
 * coffer.copy.succeeded / coffer.copy.failed.
 */
#include "agent/daemon.h"
#include "agent/agent_int.h"
#include "common/error.h"
#include "common/util.h"
#include "crypto/crypto.h"
#include "repo/repo.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The target's record in the state file ("copies": {NAME: {...}}),
 * created when missing.  NULL only when out of memory. */
static json_t *copy_record(const char *name)
{
	json_t *rec;
	if (!agent_g.copies && !(agent_g.copies = json_object()))
		return NULL;
	if ((rec = json_object_get(agent_g.copies, name)))
		return rec;
	if (!(rec = json_object()) || json_object_set_new(agent_g.copies, name, rec))
		return NULL;
	return rec;
}

static int64_t rec_int(const json_t *rec, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(rec, k));
}

static void rec_set_int(json_t *rec, const char *k, int64_t v)
{
	if (rec)
		json_object_set_new(rec, k, json_integer((json_int_t)v));
}

/* When a scheduled target is next due after t (0 if it cannot tell). */
static int64_t next_due(const struct cf_agent_config *c, const struct cf_agent_copy *t, time_t after)
{
	time_t due;
	if (!t->schedule || cf_cron_next(&t->cron, agent_zone(c), after, &due) != CF_OK)
		return 0;
	return (int64_t)due;
}

void agent_copies_sync(const struct cf_agent_config *c)
{
	json_t *rec, *keep = json_object();
	if (!keep)
		return;
	for (size_t i = 0; i < c->ncopies; i++) {
		const struct cf_agent_copy *t = &c->copies[i];
		if (!(rec = copy_record(t->name)))
			break;
		/* a scheduled target that has never run is due at its first tick */
		if (t->schedule && !rec_int(rec, "ended_unix") && !rec_int(rec, "due_unix"))
			rec_set_int(rec, "due_unix", next_due(c, t, time(NULL)));
		if (!t->schedule && json_object_get(rec, "schedule") && rec_int(rec, "due_unix") &&
		    !rec_int(rec, "ended_unix"))
			rec_set_int(rec, "due_unix", 0);
		json_object_set_new(rec, "schedule", json_string(t->schedule ? t->schedule : "after-backup"));
		json_object_set(keep, t->name, rec);
	}
	/* targets no longer configured are forgotten (the healthcheck would
	 * otherwise complain about them forever) */
	json_decref(agent_g.copies);
	agent_g.copies = keep;
}

long agent_copy_find_target(const struct cf_agent_config *c, const char *name)
{
	for (size_t i = 0; i < c->ncopies; i++)
		if (!strcasecmp(c->copies[i].name, name))
			return (long)i;
	return -1;
}

/* Read a credential given as a value or a file.  *out NULL when neither. */
static int credential(const char *value, const char *file, const char *key, char **out)
{
	*out = NULL;
	if (value)
		return (*out = strdup(value)) ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
	if (file)
		return cf_agent_read_secret(file, key, out);
	return CF_OK;
}

static int open_target(const struct cf_agent_config *c, const struct cf_agent_copy *t, bool exclusive,
		       struct cf_repo **r)
{
	char pwkey[200], akey[200], skey[200], tkey[200];
	char *ak = NULL, *sk = NULL, *tok = NULL;
	int rc;

	snprintf(pwkey, sizeof(pwkey), "COFFER_COPY_TO_%s_PASSWORD_FILE", t->key_name);
	snprintf(akey, sizeof(akey), "COFFER_COPY_TO_%s_AWS_ACCESS_KEY_ID_FILE", t->key_name);
	snprintf(skey, sizeof(skey), "COFFER_COPY_TO_%s_AWS_SECRET_ACCESS_KEY_FILE", t->key_name);
	snprintf(tkey, sizeof(tkey), "COFFER_COPY_TO_%s_AWS_SESSION_TOKEN_FILE", t->key_name);
	if ((rc = credential(t->access_key, t->access_key_file, akey, &ak)) ||
	    (rc = credential(t->secret_key, t->secret_key_file, skey, &sk)) ||
	    (rc = credential(t->session_token, t->session_token_file, tkey, &tok)))
		goto out;
	struct agent_repo_spec sp = { .location = t->repository, .password_file = t->password_file,
				      .password = t->password, .password_key = pwkey, .access_key = ak,
				      .secret_key = sk, .session_token = tok, .region = t->region };
	rc = agent_open_repo(c, &sp, exclusive, r);
out:
	cf_agent_secret_free(ak);
	cf_agent_secret_free(sk);
	cf_agent_secret_free(tok);
	return rc;
}

static int open_main(const struct cf_agent_config *c, struct cf_repo **r)
{
	struct agent_repo_spec sp = { .location = c->repository, .password_file = c->password_file,
				      .password = c->password, .password_key = "COFFER_PASSWORD_FILE" };
	return agent_open_repo(c, &sp, false, r);
}

static void copy_fail(struct agent_copy_result *res, int rc, const char *stage)
{
	if (res->rc)
		return;
	res->rc = rc;
	res->stage = stage;
	snprintf(res->error, sizeof(res->error), "%s", cf_errmsg(rc));
}

static bool id_in(const uint8_t (*have)[CF_ID_LEN], size_t n, const uint8_t *id)
{
	for (size_t i = 0; i < n; i++)
		if (!memcmp(have[i], id, CF_ID_LEN))
			return true;
	return false;
}

static int cmp_time(const void *a, const void *b)
{
	const struct cf_snapshot *x = *(const struct cf_snapshot *const *)a, *y = *(const struct cf_snapshot *const *)b;
	return x->time_ns < y->time_ns ? -1 : x->time_ns > y->time_ns;
}

/* The copy itself, both repositories open: what is missing, what the
 * retention keeps of it, the copies.  Figures into res. */
static int bring_missing(const struct cf_agent_config *c, const struct cf_agent_copy *t, struct cf_repo *src,
			 struct cf_repo *dst, struct agent_copy_result *res)
{
	struct cf_snapshot *ss = NULL, *ds = NULL;
	size_t nss = 0, nds = 0, nmiss = 0, nh = 0;
	const struct cf_snapshot **miss = NULL, **all = NULL;
	uint8_t (*have)[CF_ID_LEN] = NULL;
	bool *kept = NULL;
	struct cf_copy_map *map = NULL;
	struct cf_copy_stats st;
	char host[256];
	int rc;

	memset(&st, 0, sizeof(st));
	agent_host(c, host, sizeof(host));
	if (!memcmp(cf_repo_config(src)->id, cf_repo_config(dst)->id, CF_ID_LEN))
		return cf_err(CF_EINVAL, "the copy target %s is the same repository as its source", t->name);
	if ((rc = cf_repo_snapshots(src, &ss, &nss, NULL)) || (rc = cf_repo_snapshots(dst, &ds, &nds, NULL)))
		goto out;
	if (!(have = calloc(2 * nds + 1, CF_ID_LEN)) || !(miss = calloc(nss + 1, sizeof(*miss))) ||
	    !(all = calloc(nss + nds + 1, sizeof(*all))) || !(kept = calloc(nss + nds + 1, sizeof(*kept))) ||
	    !(map = cf_copy_map_new())) {
		rc = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nds; i++) {
		memcpy(have[nh++], ds[i].id, CF_ID_LEN);
		if (ds[i].has_original)
			memcpy(have[nh++], ds[i].original, CF_ID_LEN);
	}
	/* this host's snapshots, as retention sees only them */
	for (size_t i = 0; i < nss; i++) {
		if (!ss[i].hostname || strcmp(ss[i].hostname, host))
			continue;
		if (id_in((const uint8_t (*)[CF_ID_LEN])have, nh, ss[i].id) ||
		    (ss[i].has_original && id_in((const uint8_t (*)[CF_ID_LEN])have, nh, ss[i].original)))
			res->present++;
		else
			miss[nmiss++] = &ss[i];
	}
	if (nmiss && !cf_retention_policy_empty(&t->keep)) {
		size_t n = 0;
		for (size_t i = 0; i < nds; i++)
			all[n++] = &ds[i];
		for (size_t i = 0; i < nmiss; i++)
			all[n++] = miss[i];
		if ((rc = agent_retention_keep(c, &t->keep, all, n, kept)))
			goto out;
		size_t k = 0;
		for (size_t i = 0; i < nmiss; i++)
			if (kept[nds + i])
				miss[k++] = miss[i];
		res->not_kept = nmiss - k;
		nmiss = k;
	}
	qsort(miss, nmiss, sizeof(*miss), cmp_time);
	for (size_t i = 0; i < nmiss; i++) {
		uint8_t nid[CF_ID_LEN];
		char hex[CF_ID_HEX];
		cf_hex(miss[i]->id, CF_ID_LEN, hex);
		if ((rc = cf_repo_copy_snapshot(src, dst, miss[i], map, &st, nid))) {
			rc = cf_err_prefix(rc, "copy snapshot %.8s", hex);
			goto out;
		}
		res->copied++;
		cf_debug("coffer agent: copy to %s: snapshot %.8s copied", t->name, hex);
		if (cf_interrupted) {
			rc = cf_err(CF_EINTR, "interrupted");
			goto out;
		}
	}
out:
	res->bytes_stored = st.bytes_stored;
	res->blobs_copied = st.blobs_copied;
	cf_copy_map_free(map);
	free(kept);
	free(all);
	free(miss);
	free(have);
	cf_snapshots_free(ss, nss);
	cf_snapshots_free(ds, nds);
	return rc;
}

int agent_run_copy(const struct cf_agent_config *c, size_t i, struct agent_copy_result *res)
{
	const struct cf_agent_copy *t = &c->copies[i];
	struct cf_repo *src = NULL, *dst = NULL;
	json_t *rec = copy_record(t->name);
	time_t now;
	int rc, lockfd = -1;

	memset(res, 0, sizeof(*res));
	res->snapshots = -1;
	res->start_ns = cf_now_ns();
	cf_err_clear();
	if ((rc = agent_job_lock(c, &lockfd))) {
		copy_fail(res, rc, "job-lock");
		goto done;
	}
	agent_load_state(c);
	char job[300];
	snprintf(job, sizeof(job), "copy:%s", t->name);
	agent_notify_start(c, job);
	cf_info("coffer agent: copy to %s started", t->name);
	rc = t->from >= 0 ? open_target(c, &c->copies[t->from], false, &src) : open_main(c, &src);
	if (rc) {
		copy_fail(res, t->from >= 0 ? cf_err_prefix(rc, "the source (copy target %s)", c->copies[t->from].name)
					    : cf_err_prefix(rc, "the source (the main repository)"), "source");
		goto done;
	}
	if ((rc = open_target(c, t, false, &dst))) {
		copy_fail(res, cf_err_prefix(rc, "the copy target %s", t->name), "target");
		goto done;
	}
	if ((rc = bring_missing(c, t, src, dst, res))) {
		copy_fail(res, rc, "copy");
		goto done;
	}
	cf_repo_free(src);
	src = NULL;
	if (!cf_retention_policy_empty(&t->keep)) {
		now = time(NULL);
		cf_repo_free(dst);
		dst = NULL;
		if ((rc = open_target(c, t, true, &dst))) {
			copy_fail(res, cf_err_prefix(rc, "the copy target %s", t->name), "retention");
			goto done;
		}
		if ((rc = agent_forget_by_policy(c, dst, &t->keep, &res->forgotten))) {
			copy_fail(res, rc, "retention");
			goto done;
		}
		if (agent_prune_due(c, rec ? rec_int(rec, "last_prune_unix") : 0, now)) {
			if ((rc = agent_prune(dst, &res->pruned_bytes))) {
				copy_fail(res, rc, "prune");
				goto done;
			}
			rec_set_int(rec, "last_prune_unix", now);
		}
	}
	struct cf_snapshot *list = NULL;
	size_t n = 0;
	if (cf_repo_snapshots(dst, &list, &n, NULL) == CF_OK)
		res->snapshots = (int64_t)n;
	cf_snapshots_free(list, n);
done:
	cf_repo_free(src);
	cf_repo_free(dst);
	res->end_ns = cf_now_ns();
	res->exit_code = agent_exit_of(res->rc);
	if (lockfd >= 0)
		close(lockfd);
	return res->exit_code;
}

/* ---------------------------------------------------------- reporting */

static void log_copy(const struct cf_agent_copy *t, const struct agent_copy_result *res, const char *from)
{
	char start[40], end[40];
	struct cf_buf line = CF_BUF_INIT;
	agent_utc_text(res->start_ns, start, sizeof(start));
	agent_utc_text(res->end_ns, end, sizeof(end));
	cf_buf_addf(&line, "coffer agent: copy target=%s from=%s start=%s end=%s result=%s exit=%d copied=%" PRIu64
		    " present=%" PRIu64 " not_kept=%" PRIu64 " bytes_added=%" PRIu64 " forgotten=%" PRIu64
		    " duration=%.1fs", t->name, from, start, end, agent_status_word(res->rc), res->exit_code, res->copied,
		    res->present, res->not_kept, res->bytes_stored, res->forgotten,
		    (double)(res->end_ns - res->start_ns) / 1e9);
	if (res->stage)
		cf_buf_addf(&line, " stage=%s", res->stage);
	if (res->error[0]) {
		cf_buf_adds(&line, " error=\"");
		for (const char *p = res->error; *p; p++) {
			if (*p == '"' || *p == '\\')
				cf_buf_add(&line, "\\", 1);
			cf_buf_add(&line, *p == '\n' ? " " : p, 1);
		}
		cf_buf_adds(&line, "\"");
	}
	fprintf(stderr, "%s\n", line.data ? (char *)line.data : "coffer agent: copy done (out of memory)");
	fflush(stderr);
	cf_buf_release(&line);
}

void agent_report_copy(const struct cf_agent_config *c, size_t i, const struct agent_copy_result *res)
{
	const struct cf_agent_copy *t = &c->copies[i];
	const char *from = t->from >= 0 ? c->copies[t->from].name : "main";
	char start[40], end[40];
	json_t *rec = copy_record(t->name), *data;

	log_copy(t, res, from);
	agent_utc_text(res->start_ns, start, sizeof(start));
	agent_utc_text(res->end_ns, end, sizeof(end));
	data = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:I, s:f, s:s?, s:s?, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "target", t->name, "from", from, "repository", t->repository,
			 "status", agent_status_word(res->rc), "exit_code", res->exit_code,
			 "started", start, "ended", end,
			 "started_unix", (json_int_t)(res->start_ns / 1000000000),
			 "ended_unix", (json_int_t)(res->end_ns / 1000000000),
			 "duration_seconds", (double)(res->end_ns - res->start_ns) / 1e9,
			 "stage", res->stage, "error", res->error[0] ? res->error : NULL,
			 "snapshots_copied", (json_int_t)res->copied, "snapshots_present", (json_int_t)res->present,
			 "snapshots_not_kept", (json_int_t)res->not_kept,
			 "snapshots_forgotten", (json_int_t)res->forgotten,
			 "bytes_added", (json_int_t)res->bytes_stored, "bytes_pruned", (json_int_t)res->pruned_bytes);
	if (data && res->snapshots >= 0)
		json_object_set_new(data, "snapshots_total", json_integer(res->snapshots));
	if (rec && data) {
		/* the record keeps what the healthcheck and the metrics need */
		const char *k;
		json_t *v;
		json_object_foreach(data, k, v)
			json_object_set(rec, k, v);
		if (res->rc == CF_OK)
			rec_set_int(rec, "last_success_unix", res->end_ns / 1000000000);
		if (res->snapshots < 0)
			rec_set_int(rec, "snapshots_total", -1);
		/* next due: the next tick; after-backup targets are due again after the next backup */
		rec_set_int(rec, "due_unix", t->schedule ? next_due(c, t, (time_t)(res->end_ns / 1000000000)) :
					     (res->rc == CF_OK ? 0 : rec_int(rec, "due_unix")));
	}
	/* "running": more copies may follow; the caller says "waiting" after them */
	agent_publish_running(c);
	char job[300];
	struct cf_buf msg = CF_BUF_INIT;
	double secs = (double)(res->end_ns - res->start_ns) / 1e9;
	snprintf(job, sizeof(job), "copy:%s", t->name);
	if (res->error[0])
		cf_buf_addf(&msg, "%s%s%s", res->stage ? res->stage : "", res->stage ? ": " : "", res->error);
	else
		cf_buf_addf(&msg, "%" PRIu64 " snapshots copied from %s, %" PRIu64 " bytes added in %.1f s", res->copied,
			    from, res->bytes_stored, secs);
	bool failed = agent_notify_end(c, job, res->rc, secs, msg.data ? (char *)msg.data : "");
	cf_buf_release(&msg);
	if (data && agent_post_event(c, res->rc == CF_OK ? "coffer.copy.succeeded" : "coffer.copy.failed", data))
		failed = true;
	if (failed) /* the failure counters in the state and the metrics */
		agent_publish_running(c);
	json_decref(data);
}

bool agent_copy_due(const struct cf_agent_config *c, size_t i, bool after_backup, time_t now)
{
	const struct cf_agent_copy *t = &c->copies[i];
	json_t *rec = copy_record(t->name);
	int64_t last = rec ? rec_int(rec, "ended_unix") : 0;
	time_t due;
	if (!t->schedule)
		return after_backup;
	/* never run: due, as for prune (a state directory that does not persist
	 * must not put the copy off forever) */
	return last <= 0 || (cf_cron_next(&t->cron, agent_zone(c), (time_t)last, &due) == CF_OK && due <= now);
}

void agent_copies_backup_done(const struct cf_agent_config *c, int64_t when)
{
	for (size_t i = 0; i < c->ncopies; i++) {
		json_t *rec;
		if (c->copies[i].schedule || !(rec = copy_record(c->copies[i].name)))
			continue;
		if (!rec_int(rec, "due_unix"))
			rec_set_int(rec, "due_unix", when);
	}
}

int agent_run_copies(const struct cf_agent_config *c, bool after_backup)
{
	int worst = 0;
	for (size_t i = 0; i < c->ncopies && !cf_interrupted; i++) {
		struct agent_copy_result res;
		if (!agent_copy_due(c, i, after_backup, time(NULL)))
			continue;
		int code = agent_run_copy(c, i, &res);
		agent_report_copy(c, i, &res);
		if (code && !worst)
			worst = code;
	}
	if (cf_interrupted)
		return 130;
	return worst;
}
