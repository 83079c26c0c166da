/*
 * progress.c - the progress line and the scanner that gives it an ETA.
 *
 * eng_progress() prints at most twice a second on stderr (with --progress)
 * and hands the counts to the status callback four times a second (backup
 * --json); eng_error() reports an entry that cannot be read;
 * the totals it divides by come from a scanner that walks the sources
 * beside the backup (lstat only) as one long job on a pool of its own.
 *
 * Invariants: the scanner only adds to the atomics scan_files and
 * scan_bytes and sets scan_done at its end; it changes nothing the backup
 * reads, and a scanner that cannot start only costs the ETA.
 */
#include "engine/engine_int.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The status callback (backup --json): every quarter second, and once at
 * the end. */
static void eng_status(struct ctx *c, double now, bool final)
{
	if (!final && now - c->last_status < 0.25)
		return;
	c->last_status = now;
	struct cf_backup_status st = {
		.seconds_elapsed = now - c->start,
		.files_done = c->sum->total_files_processed,
		.bytes_done = c->sum->total_bytes_processed,
		.total_files = c->scan_files,
		.total_bytes = c->scan_bytes,
		.totals_final = c->scan_done,
		.error_count = (uint64_t)c->unreadable,
		.current_file = final ? NULL : c->cur_file,
		.final = final,
	};
	/* what was processed is found too, also before the scanner gets there */
	if (st.total_files < st.files_done)
		st.total_files = st.files_done;
	if (st.total_bytes < st.bytes_done)
		st.total_bytes = st.bytes_done;
	c->o->status(c->o->report_ctx, &st);
}

void eng_progress(struct ctx *c, bool final)
{
	if (c->o->status)
		eng_status(c, cf_now_mono(), final);
	if (!c->o->progress)
		return;
	double now = cf_now_mono();
	if (!final && now - c->last_progress < 0.5)
		return;
	c->last_progress = now;
	double el = now - c->start;
	uint64_t files = c->sum->total_files_processed, bytes = c->sum->total_bytes_processed;
	uint64_t tf = c->scan_files, tb = c->scan_bytes;
	double rate = el > 0 ? bytes / el : 0;
	char eta[32] = "";
	if (c->scan_done && rate > 0 && tb > bytes) {
		int s = (int)((tb - bytes) / rate);
		snprintf(eta, sizeof(eta), ", ETA %d:%02d", s / 60, s % 60);
	}
	fprintf(stderr, "\r\033[K[%02d:%02d] %llu/%llu%s files, %.1f/%.1f MiB, %.1f MiB/s%s",
		(int)el / 60, (int)el % 60, (unsigned long long)files, (unsigned long long)tf,
		c->scan_done ? "" : "+", bytes / 1048576.0, tb / 1048576.0, rate / 1048576.0, eta);
	if (final)
		fputc('\n', stderr);
}

void eng_error(struct ctx *c, const char *item, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->o->error)
		c->o->error(c->o->report_ctx, item, msg);
	else
		cf_warn("error: %s", msg);
}

/* ---------------- the scanner (totals for the ETA) ---------------- */

static void scan_tree(struct ctx *c, const char *path, int depth)
{
	struct stat st;
	if (cf_interrupted || depth > 256 || lstat(path, &st) < 0)
		return;
	if (S_ISREG(st.st_mode)) {
		c->scan_files++;
		c->scan_bytes += (uint64_t)st.st_size;
		return;
	}
	if (!S_ISDIR(st.st_mode))
		return;
	DIR *d = opendir(path);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *sub = NULL;
		if (asprintf(&sub, "%s/%s", path, e->d_name) < 0)
			break;
		scan_tree(c, sub, depth + 1);
		free(sub);
	}
	closedir(d);
}

/* The scanner: one long job on a pool of its own. */
static int scanner(void *arg, unsigned worker)
{
	struct ctx *c = arg;
	(void)worker;
	for (size_t i = 0; i < c->scan_n; i++)
		scan_tree(c, c->scan_paths[i], 0);
	c->scan_done = 1;
	return CF_OK;
}

/* Count what lies below paths, beside the walk (for the progress line or
 * the status callback only).
 * Without a thread there is no ETA, nothing else changes. */
void eng_scan_start(struct ctx *c, char **paths, size_t n)
{
	if (!c->o->progress && !c->o->status)
		return;
	c->scan_paths = paths;
	c->scan_n = n;
	if (cf_pool_new(&c->scan, "scanner", 1, 0, 0) != CF_OK) {
		cf_err_clear();
		return;
	}
	if (cf_pool_add(c->scan, scanner, c, 0) != CF_OK) {
		cf_err_clear();
		cf_pool_free(c->scan);
		c->scan = NULL;
	}
}

/* Wait for the scanner to end (it stops early on an interrupt). */
void eng_scan_stop(struct ctx *c)
{
	cf_pool_free(c->scan);
	c->scan = NULL;
}
