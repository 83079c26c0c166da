/* sources.c - see sources.h. */
#include "sources/sources.h"
#include "sources/mariadb.h"
#include "sources/postgres.h"
#include "sources/sqlite_snap.h"
#include "sources/dburl.h"
#include "common/array.h"
#include "repo/snapshot.h"
#include "common/error.h"
#include "common/util.h"

#include <errno.h>
#include <fnmatch.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SRC_MARIADB, SRC_FILE, SRC_COMMAND, SRC_POSTGRES };

struct cf_src_item {
	int kind;
	char *path;              /* in the snapshot */
	struct cf_mariadb *db;   /* SRC_MARIADB: borrowed from s->servers */
	char *dbname;
	char *file;              /* SRC_FILE: temporary copy to stream and remove */
	char *command;           /* SRC_COMMAND */
	char *label;             /* for messages */
	char *pgurl;             /* SRC_POSTGRES: the URL (dbname: dbname) */
	unsigned pgserver;       /* SRC_POSTGRES: which --postgres of the backup, from 1 */
};

static int grow(struct cf_sources *s)
{
	int rc;
	if ((rc = CF_GROW(s->streams, s->n + 1, s->cap)))
		return rc;
	return CF_GROW(s->items, s->n + 1, s->itemcap);
}

/* Items move when the arrays grow, so streams point at them by index and
 * are fixed up by fix_ctx() after every add. */
static void fix_ctx(struct cf_sources *s)
{
	for (size_t i = 0; i < s->n; i++) {
		s->streams[i].ctx = &s->items[i];
		s->streams[i].path = s->items[i].path;
	}
}

static int produce_mariadb(void *ctx, cf_sink_fn sink, void *sink_ctx)
{
	struct cf_src_item *it = ctx;
	struct cf_mariadb_stats st;
	int rc = cf_mariadb_dump_db(it->db, it->dbname, sink, sink_ctx, &st);
	if (!rc)
		cf_info("dumped %s: %llu tables, %llu rows, %llu bytes", it->label,
			(unsigned long long)st.tables, (unsigned long long)st.rows,
			(unsigned long long)st.bytes);
	return rc;
}

static int produce_postgres(void *ctx, cf_sink_fn sink, void *sink_ctx)
{
	struct cf_src_item *it = ctx;
	struct cf_pgurl u = CF_PGURL_INIT;
	uint64_t bytes = 0;
	int rc = cf_pgurl_parse(&u, it->pgurl);
	if (!rc)
		rc = cf_pg_dump_db(&u, it->dbname, sink, sink_ctx, &bytes);
	if (!rc)
		cf_info("dumped %s: %llu bytes", it->label, (unsigned long long)bytes);
	cf_pgurl_release(&u);
	return rc;
}

static int stream_fd(int fd, const char *label, cf_sink_fn sink, void *sink_ctx)
{
	size_t cap = 1u << 20;
	uint8_t *buf = malloc(cap);
	int rc = CF_OK;
	if (!buf)
		return cf_err(CF_ENOMEM, "out of memory");
	for (;;) {
		ssize_t k = read(fd, buf, cap);
		if (k < 0) {
			if (errno == EINTR && !cf_interrupted)
				continue;
			rc = cf_interrupted ? cf_err(CF_EINTR, "interrupted") : cf_err_errno("read %s", label);
			break;
		}
		if (k == 0)
			break;
		if ((rc = sink(sink_ctx, buf, (size_t)k)))
			break;
	}
	free(buf);
	return rc;
}

static int produce_file(void *ctx, cf_sink_fn sink, void *sink_ctx)
{
	struct cf_src_item *it = ctx;
	int fd = open(it->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cf_err_errno("open %s", it->file);
	int rc = stream_fd(fd, it->label, sink, sink_ctx);
	close(fd);
	return rc;
}

static int produce_command(void *ctx, cf_sink_fn sink, void *sink_ctx)
{
	struct cf_src_item *it = ctx;
	int p[2], status = 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return cf_err_errno("pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return cf_err_errno("fork");
	}
	if (pid == 0) {
		dup2(p[1], 1);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", it->command, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	int rc = stream_fd(p[0], it->label, sink, sink_ctx);
	close(p[0]);
	if (rc)
		kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc)
		return rc;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return CF_OK;
	if (WIFEXITED(status))
		return cf_err(CF_EIO, "command '%s' exited with status %d; no snapshot was written",
			      it->command, WEXITSTATUS(status));
	return cf_err(CF_EIO, "command '%s' was killed by signal %d; no snapshot was written",
		      it->command, WTERMSIG(status));
}

/* st: the original file a copy stands for (its owner and mtime are kept),
 * or NULL for a produced stream (owned by the running user, dated now). */
static int add_item(struct cf_sources *s, struct cf_src_item *it,
		    int (*produce)(void *, cf_sink_fn, void *), uint32_t mode, const struct stat *st)
{
	int rc = grow(s);
	if (rc)
		return rc;
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->items[i].path, it->path))
			return cf_err(CF_EINVAL, "two sources would both be stored as %s", it->path);
	s->items[s->n] = *it;
	s->streams[s->n] = (struct cf_stream_source){ .path = it->path, .produce = produce, .mode = mode };
	if (st) {
		s->streams[s->n].has_owner = true;
		s->streams[s->n].uid = st->st_uid;
		s->streams[s->n].gid = st->st_gid;
		s->streams[s->n].mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	}
	s->n++;
	fix_ctx(s);
	return CF_OK;
}

static void item_release(struct cf_src_item *it)
{
	if (it->file) {
		unlink(it->file);
		free(it->file);
	}
	free(it->path);
	free(it->dbname);
	free(it->command);
	free(it->label);
	if (it->pgurl) {
		explicit_bzero(it->pgurl, strlen(it->pgurl));
		free(it->pgurl);
	}
	memset(it, 0, sizeof(*it));
}

int cf_sources_add_mariadb(struct cf_sources *s, const char *url, bool lock, bool users)
{
	struct cf_dburl u = CF_DBURL_INIT;
	struct cf_mariadb *db = NULL;
	struct cf_mariadb_opts o = { .lock = lock, .users = users };
	char **names = NULL, where[300];
	size_t n = 0;
	int rc;

	if ((rc = cf_dburl_parse(&u, url)))
		goto out;
	cf_dburl_describe(&u, where, sizeof(where));
	if ((rc = cf_mariadb_open(&u, &db)))
		goto out;
	if ((rc = cf_mariadb_begin_snapshot(db, &o)))
		goto out;
	if ((rc = cf_mariadb_list_dbs(db, &names, &n)))
		goto out;
	if (n == 0) {
		rc = cf_err(CF_EDB, "mariadb %s: no databases to back up", where);
		goto out;
	}
	if ((rc = CF_GROW(s->servers, s->nservers + 1, s->servercap)))
		goto out;
	s->servers[s->nservers++] = db;
	struct cf_mariadb *mine = db;
	db = NULL; /* owned by s now */
	for (size_t i = 0; i < n; i++) {
		struct cf_src_item it = { .kind = SRC_MARIADB, .db = mine };
		int k = s->nservers > 1
			? asprintf(&it.path, "mariadb/%s-%u/%s.sql", u.socket ? "socket" : u.host,
				   (unsigned)s->nservers, names[i])
			: asprintf(&it.path, "mariadb/%s.sql", names[i]);
		it.dbname = strdup(names[i]);
		if (k < 0 || !it.dbname || asprintf(&it.label, "mariadb %s/%s", where, names[i]) < 0) {
			if (k < 0)
				it.path = NULL;
			item_release(&it);
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = add_item(s, &it, produce_mariadb, 0600, NULL))) {
			item_release(&it);
			goto out;
		}
	}
out:
	if (names)
		cf_mariadb_names_free(names);
	cf_mariadb_close(db);
	cf_dburl_release(&u);
	return rc;
}

int cf_sources_add_postgres(struct cf_sources *s, const char *url)
{
	struct cf_pgurl u = CF_PGURL_INIT;
	char **names = NULL;
	size_t n = 0;
	unsigned server = 1;
	int rc;

	for (size_t i = 0; i < s->n; i++)
		if (s->items[i].kind == SRC_POSTGRES && s->items[i].pgserver >= server)
			server = s->items[i].pgserver + 1;
	if ((rc = cf_pgurl_parse(&u, url)) || (rc = cf_pg_list_dbs(&u, &names, &n)))
		goto out;
	if (n == 0) {
		rc = cf_err(CF_EDB, "postgres %s: no databases to back up", u.who);
		goto out;
	}
	/* "user@host:port" less the user: the directory of a later server */
	const char *hp = strrchr(u.who, '@') + 1;
	for (size_t i = 0; i < n; i++) {
		struct cf_src_item it = { .kind = SRC_POSTGRES, .pgserver = server };
		int k = server > 1 ? asprintf(&it.path, "postgres/%.*s-%u/%s.sql", (int)strcspn(hp, ":/"), hp,
					      server, names[i])
				   : asprintf(&it.path, "postgres/%s.sql", names[i]);
		it.dbname = strdup(names[i]);
		it.pgurl = strdup(url);
		if (k < 0 || !it.dbname || !it.pgurl || asprintf(&it.label, "postgres %s/%s", u.who, names[i]) < 0) {
			if (k < 0)
				it.path = NULL;
			it.label = NULL;
			item_release(&it);
			rc = cf_err(CF_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = add_item(s, &it, produce_postgres, 0600, NULL))) {
			item_release(&it);
			goto out;
		}
	}
out:
	cf_pg_names_free(names);
	cf_pgurl_release(&u);
	return rc;
}

int cf_sources_add_sqlite(struct cf_sources *s, const char *path, const char *tmp_dir)
{
	char abs[PATH_MAX], dir[PATH_MAX];
	struct stat st;
	struct cf_src_item it = { .kind = SRC_FILE };
	int rc;

	if (!realpath(path, abs))
		return cf_err_errno("sqlite %s", path);
	if (stat(abs, &st) < 0)
		return cf_err_errno("sqlite %s", path);
	if (!tmp_dir) {
		snprintf(dir, sizeof(dir), "%s", abs);
		char *slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = 0;
		else
			*slash = 0;
		tmp_dir = dir;
	}
	if ((rc = cf_sqlite_snapshot(abs, tmp_dir, &it.file)))
		return rc;
	it.path = strdup(abs);
	if (!it.path || asprintf(&it.label, "sqlite %s", abs) < 0) {
		it.label = NULL;
		item_release(&it);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	if ((rc = add_item(s, &it, produce_file, st.st_mode & 07777, &st)))
		item_release(&it);
	return rc;
}

int cf_sources_add_command(struct cf_sources *s, const char *command, const char *filename)
{
	struct cf_src_item it = { .kind = SRC_COMMAND };
	int rc;
	if (!filename || !*filename)
		return cf_err(CF_EINVAL, "--stdin-from-command needs --stdin-filename NAME");
	while (*filename == '/')
		filename++;
	if (!*filename || strstr(filename, "..") || filename[strlen(filename) - 1] == '/')
		return cf_err(CF_EINVAL, "--stdin-filename %s is not a usable file name", filename);
	it.path = strdup(filename);
	it.command = strdup(command);
	if (!it.path || !it.command || asprintf(&it.label, "command '%s'", command) < 0) {
		it.label = NULL;
		item_release(&it);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	if ((rc = add_item(s, &it, produce_command, 0600, NULL)))
		item_release(&it);
	return rc;
}

/* "/a/b" for "a//b/", made absolute against the working directory the way
 * the backup makes its paths absolute (no symlinks resolved) */
static char *abs_clean(const char *p, bool rel_is_root)
{
	char cwd[4096], *out = NULL;
	if (p[0] == '/' || rel_is_root) {
		if (asprintf(&out, "/%s", p) < 0)
			return NULL;
	} else {
		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&out, "%s/%s", cwd, p) < 0)
			return NULL;
	}
	char *r = out, *w = out;
	while (*r) {
		if (r[0] == '/' && (r[1] == '/' || (r[1] == '.' && (r[2] == '/' || !r[2])))) {
			r += r[1] == '/' ? 1 : 2;
			continue;
		}
		*w++ = *r++;
	}
	*w = 0;
	size_t len = strlen(out);
	while (len > 1 && out[len - 1] == '/')
		out[--len] = 0;
	return out;
}

int cf_sources_check_dump(const char *label, const char *path, const char *const *walked,
			  size_t nwalked, const char *const *excludes, size_t nexcludes)
{
	/* a dump's path is absolute (SQLite) or relative to the snapshot's
	 * root (commands, MariaDB): both hang under "/" in the snapshot */
	char *full = abs_clean(path, true);
	int rc = CF_OK;
	if (!full)
		return cf_err(CF_ENOMEM, "out of memory");
	/* every prefix: "/data", "/data/app.db" (the walker matches an entry's
	 * whole path and its name; a directory left out takes the dump along) */
	for (char *e = full + 1; !rc; e++) {
		if (*e != '/' && *e)
			continue;
		char save = *e;
		*e = 0;
		const char *name = strrchr(full, '/') + 1;
		for (size_t i = 0; i < nexcludes && !rc; i++)
			if (fnmatch(excludes[i], full, 0) == 0 || fnmatch(excludes[i], name, 0) == 0)
				rc = cf_err(CF_EINVAL, "exclude pattern '%s' matches %s, which holds %s: a database or "
					    "command dump is never excluded; narrow the pattern or drop the "
					    "source", excludes[i], full, label);
		*e = save;
		if (!save)
			break;
	}
	for (size_t i = 0; i < nwalked && !rc && path[0] != '/'; i++) {
		char *w = abs_clean(walked[i], false);
		if (!w) {
			rc = cf_err(CF_ENOMEM, "out of memory");
			break;
		}
		size_t l = strlen(w);
		if (!strcmp(w, "/") || (!strncmp(full, w, l) && full[l] == '/'))
			rc = cf_err(CF_EINVAL, "%s would be stored as %s, inside the backed-up directory %s, "
				    "whose walk would leave it out: store it under a name outside the "
				    "backed-up paths", label, full, w);
		free(w);
	}
	free(full);
	return rc;
}

int cf_sources_check(const struct cf_sources *s, const char *const *walked, size_t nwalked,
		     const char *const *excludes, size_t nexcludes)
{
	int rc = CF_OK;
	for (size_t i = 0; i < s->n && !rc; i++)
		rc = cf_sources_check_dump(s->items[i].label, s->items[i].path, walked, nwalked,
					   excludes, nexcludes);
	return rc;
}

void cf_sources_release(struct cf_sources *s)
{
	for (size_t i = 0; i < s->n; i++)
		item_release(&s->items[i]);
	for (size_t i = 0; i < s->nservers; i++)
		cf_mariadb_close(s->servers[i]);
	free(s->servers);
	free(s->items);
	free(s->streams);
	memset(s, 0, sizeof(*s));
}

/* Record in desc what the streams src gained since `from` are: one entry per
 * SQLite file or command dump, one per MariaDB server with a database per
 * dump.  A server's dumps are "mariadb/<db>.sql", from the second server on
 * "mariadb/<host>-<n>/<db>.sql" (sources.h): the directory is the entry's
 * path and the rest, less ".sql", the database's name. */
int cf_sources_describe(struct cf_snapshot *desc, const struct cf_sources *src, size_t from,
			enum cf_source_kind kind, const char *url)
{
	struct cf_snapshot_source *e;
	char dir[4096] = "mariadb";
	int rc;

	if (kind == CF_SOURCE_POSTGRES)
		snprintf(dir, sizeof(dir), "postgres");
	if (kind != CF_SOURCE_MARIADB && kind != CF_SOURCE_POSTGRES) {
		for (size_t i = from; i < src->n; i++)
			if ((rc = cf_snapshot_add_source(desc, kind, src->streams[i].path, NULL, NULL)))
				return rc;
		return CF_OK;
	}
	if (from >= src->n)
		return CF_OK;
	if (kind == CF_SOURCE_MARIADB ? src->nservers > 1 : src->items[from].pgserver > 1) {
		const char *p = src->streams[from].path, *sl = strchr(p + strlen(dir) + 1, '/');
		snprintf(dir, sizeof(dir), "%.*s", sl ? (int)(sl - p) : (int)strlen(p), p);
	}
	if ((rc = cf_snapshot_add_source(desc, kind, dir, url, &e)))
		return rc;
	for (size_t i = from; i < src->n; i++) {
		const char *p = src->streams[i].path;
		size_t dl = strlen(dir), pl = strlen(p);
		if (pl < dl + 5 || strncmp(p, dir, dl) || p[dl] != '/' || strcmp(p + pl - 4, ".sql"))
			return cf_err(CF_EINVAL, "unexpected database dump path %s", p);
		char *name = strndup(p + dl + 1, pl - dl - 5);
		if (!name)
			return cf_err(CF_ENOMEM, "out of memory");
		rc = cf_snapshot_source_add_db(e, name, p);
		free(name);
		if (rc)
			return rc;
	}
	return CF_OK;
}
