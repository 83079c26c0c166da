#include "sources/mariadb_load.h"
#include "common/error.h"
#include "common/util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>

enum {
	S_NORMAL,
	S_DASH1,      /* read '-': a comment if another '-' and a blank follow */
	S_DASH2,      /* read "--" */
	S_SLASH,      /* read '/': a comment if '*' follows */
	S_BLOCK_OPEN, /* read slash-star: '!' next makes it executable */
	S_BLOCK,
	S_BLOCK_STAR,
	S_LINE,       /* "-- " or '#' comment, to the end of the line */
	S_SQUOTE,
	S_SQUOTE_ESC,
	S_DQUOTE,
	S_DQUOTE_ESC,
	S_BTICK,
};

#define NONE SIZE_MAX

void cf_sqlsplit_init(struct cf_sqlsplit *s)
{
	memset(s, 0, sizeof(*s));
	s->stmt = (struct cf_buf)CF_BUF_INIT;
	s->content = NONE;
	s->delim[0] = ';';
	s->dlen = 1;
	s->state = S_NORMAL;
	s->line = 1;
}

void cf_sqlsplit_release(struct cf_sqlsplit *s)
{
	cf_buf_release(&s->stmt);
}

static void reset_stmt(struct cf_sqlsplit *s)
{
	cf_buf_reset(&s->stmt);
	s->content = NONE;
	s->plain_run = 0;
}

static void mark_content(struct cf_sqlsplit *s, size_t at)
{
	if (s->content == NONE) {
		s->content = at;
		s->stmt_line = s->line;
	}
}

/* Is the statement a "DELIMITER xx" client command (still on its first line)? */
static bool is_delimiter_cmd(const struct cf_sqlsplit *s)
{
	const char *p = (const char *)s->stmt.data + s->content;
	size_t n = s->stmt.len - s->content;

	return s->content != NONE && s->stmt_line == s->line && n > 10 &&
	       !strncasecmp(p, "delimiter", 9) && (p[9] == ' ' || p[9] == '\t');
}

static int set_delimiter(struct cf_sqlsplit *s)
{
	const char *p = (const char *)s->stmt.data + s->content + 9;
	const char *end = (const char *)s->stmt.data + s->stmt.len;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	const char *t = p;
	while (t < end && (unsigned char)*t > ' ')
		t++;
	if (t == p || (size_t)(t - p) >= sizeof(s->delim))
		return cf_err(CF_ECORRUPT, "line %lu: bad DELIMITER command", s->stmt_line);
	memcpy(s->delim, p, (size_t)(t - p));
	s->dlen = (size_t)(t - p);
	s->delim[s->dlen] = 0;
	reset_stmt(s);
	return CF_OK;
}

/* Hand over stmt[content .. len - cut) without surrounding blanks. */
static int emit(struct cf_sqlsplit *s, size_t cut, cf_stmt_fn cb, void *ctx)
{
	int r = CF_OK;

	if (s->content != NONE) {
		char *p = (char *)s->stmt.data + s->content;
		size_t n = s->stmt.len - cut - s->content;
		while (n && (unsigned char)p[n - 1] <= ' ')
			n--;
		if (n) {
			char saved = p[n];
			p[n] = 0;
			r = cb(ctx, p, n, s->stmt_line);
			p[n] = saved;
		}
	}
	reset_stmt(s);
	return r;
}

/* A byte of plain SQL was added: does the statement now end in the delimiter? */
static int plain_byte(struct cf_sqlsplit *s, cf_stmt_fn cb, void *ctx)
{
	s->plain_run++;
	if (s->plain_run < s->dlen ||
	    memcmp(s->stmt.data + s->stmt.len - s->dlen, s->delim, s->dlen) != 0)
		return CF_OK;
	if (is_delimiter_cmd(s))
		return CF_OK;  /* "DELIMITER ;" itself: handled at the newline */
	return emit(s, s->dlen, cb, ctx);
}

/* A comment ended: a comment before any statement text is dropped. */
static void comment_done(struct cf_sqlsplit *s)
{
	s->state = S_NORMAL;
	s->plain_run = 0;
	if (s->content == NONE)
		reset_stmt(s);
}

static int add(struct cf_sqlsplit *s, char c)
{
	return cf_buf_add(&s->stmt, &c, 1);
}

static int step(struct cf_sqlsplit *s, char c, cf_stmt_fn cb, void *ctx)
{
	int r;

again:
	switch (s->state) {
	case S_NORMAL:
		if ((unsigned char)c <= ' ') {
			if (s->content == NONE)
				return CF_OK;
			if ((r = add(s, c)) != CF_OK)
				return r;
			s->plain_run++;
			if (c == '\n' && is_delimiter_cmd(s))
				return set_delimiter(s);
			return CF_OK;
		}
		if ((r = add(s, c)) != CF_OK)
			return r;
		switch (c) {
		case '\'': case '"': case '`':
			mark_content(s, s->stmt.len - 1);
			s->plain_run = 0;
			s->state = c == '\'' ? S_SQUOTE : c == '"' ? S_DQUOTE : S_BTICK;
			s->state_line = s->line;
			return CF_OK;
		case '#':
			s->plain_run = 0;
			s->state = S_LINE;
			return CF_OK;
		case '-': case '/':
			s->pend = s->stmt.len - 1;
			s->state = c == '-' ? S_DASH1 : S_SLASH;
			s->state_line = s->line;
			return CF_OK;
		default:
			mark_content(s, s->stmt.len - 1);
			return plain_byte(s, cb, ctx);
		}
	case S_DASH1:
	case S_SLASH:
		if ((s->state == S_DASH1 && c == '-') || (s->state == S_SLASH && c == '*')) {
			s->state = s->state == S_DASH1 ? S_DASH2 : S_BLOCK_OPEN;
			return add(s, c);
		}
		goto pending_was_plain;
	case S_DASH2:
		if ((unsigned char)c <= ' ') {
			s->plain_run = 0;
			if ((r = add(s, c)) != CF_OK)
				return r;
			if (c == '\n')
				comment_done(s);
			else
				s->state = S_LINE;
			return CF_OK;
		}
		goto pending_was_plain;
	case S_BLOCK_OPEN:
		/* Executable comments are SQL the server runs. */
		if (c == '!' || c == 'M') {
			unsigned long l = s->line;
			s->line = s->state_line;
			mark_content(s, s->pend);
			s->line = l;
		}
		s->state = c == '*' ? S_BLOCK_STAR : S_BLOCK;
		return add(s, c);
	case S_BLOCK:
		if (c == '*')
			s->state = S_BLOCK_STAR;
		return add(s, c);
	case S_BLOCK_STAR:
		if ((r = add(s, c)) != CF_OK)
			return r;
		if (c == '/')
			comment_done(s);
		else if (c != '*')
			s->state = S_BLOCK;
		return CF_OK;
	case S_LINE:
		if ((r = add(s, c)) != CF_OK)
			return r;
		if (c == '\n')
			comment_done(s);
		return CF_OK;
	case S_SQUOTE:
	case S_DQUOTE:
		if (c == '\\')
			s->state++;  /* the _ESC state */
		else if (c == (s->state == S_SQUOTE ? '\'' : '"'))
			s->state = S_NORMAL;
		return add(s, c);
	case S_SQUOTE_ESC:
	case S_DQUOTE_ESC:
		s->state--;
		return add(s, c);
	case S_BTICK:
		if (c == '`')
			s->state = S_NORMAL;
		return add(s, c);
	}
	return CF_OK;

pending_was_plain:
	/* The '-', "--" or '/' was an operator.  Those bytes are plain SQL; then
	 * read c again from the normal state. */
	{
		unsigned long l = s->line;
		s->line = s->state_line;
		mark_content(s, s->pend);
		s->line = l;
	}
	s->state = S_NORMAL;
	for (size_t i = s->pend; i < s->stmt.len; i++)
		if ((r = plain_byte(s, cb, ctx)) != CF_OK)
			return r;
	goto again;
}

int cf_sqlsplit_feed(struct cf_sqlsplit *s, const void *p, size_t n, cf_stmt_fn cb, void *ctx)
{
	const char *c = p;
	int r;

	for (size_t i = 0; i < n; i++) {
		if ((r = step(s, c[i], cb, ctx)) != CF_OK)
			return r;
		/* Counted after the step so that a statement ended by this
		 * newline keeps the line it started on. */
		if (c[i] == '\n')
			s->line++;
	}
	return CF_OK;
}

int cf_sqlsplit_finish(struct cf_sqlsplit *s, cf_stmt_fn cb, void *ctx)
{
	int r;

	switch (s->state) {
	case S_SQUOTE: case S_SQUOTE_ESC: case S_DQUOTE: case S_DQUOTE_ESC:
		return cf_err(CF_ECORRUPT, "line %lu: quoted string not closed at end of input",
			      s->state_line);
	case S_BTICK:
		return cf_err(CF_ECORRUPT, "line %lu: `identifier` not closed at end of input",
			      s->state_line);
	case S_BLOCK_OPEN: case S_BLOCK: case S_BLOCK_STAR:
		return cf_err(CF_ECORRUPT, "line %lu: comment not closed at end of input", s->state_line);
	case S_DASH1: case S_DASH2: case S_SLASH:
		/* A trailing operator: plain text.  Feeding a blank settles it. */
		if ((r = step(s, ' ', cb, ctx)) != CF_OK)
			return r;
		break;
	default:
		break;
	}
	if (s->content != NONE && is_delimiter_cmd(s))
		return set_delimiter(s);
	return emit(s, 0, cb, ctx);
}

/* ---- loading ---- */

struct load {
	MYSQL *m;
	const char *target;
	struct cf_buf q;
	struct cf_mariadb_load_stats *st;
};

static const char *skip_blank(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p <= ' ')
		p++;
	return p;
}

/* Match keyword kw (case-insensitive) followed by a blank at p. */
static const char *word(const char *p, const char *end, const char *kw)
{
	size_t n = strlen(kw);
	if ((size_t)(end - p) <= n || strncasecmp(p, kw, n) || (unsigned char)p[n] > ' ')
		return NULL;
	return skip_blank(p + n, end);
}

/* End of an identifier at p: `quoted` or bare. */
static const char *ident_end(const char *p, const char *end)
{
	if (p < end && *p == '`') {
		for (p++; p < end; p++) {
			if (*p != '`')
				continue;
			if (p + 1 < end && p[1] == '`')
				p++;
			else
				return p + 1;
		}
		return NULL;
	}
	const char *q = p;
	while (q < end && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
			   (*q >= '0' && *q <= '9') || *q == '_' || *q == '$' || (unsigned char)*q >= 0x80))
		q++;
	return q == p ? NULL : q;
}

/* Where the database name of "CREATE DATABASE [IF NOT EXISTS] x" or "USE x"
 * sits in stmt, or NULL when stmt is neither. */
static const char *find_db_name(const char *stmt, size_t len, const char **name_end)
{
	const char *end = stmt + len, *p = skip_blank(stmt, end), *q;

	if ((q = word(p, end, "USE"))) {
		p = q;
	} else if ((q = word(p, end, "CREATE"))) {
		if (!(p = word(q, end, "DATABASE")) && !(p = word(q, end, "SCHEMA")))
			return NULL;
		/* mysqldump writes the clause as an executable comment. */
		if (end - p > 3 && !memcmp(p, "/*!", 3)) {
			const char *c = p + 3;
			while (c < end && *c >= '0' && *c <= '9')
				c++;
			c = skip_blank(c, end);
			if ((q = word(c, end, "IF")) && (q = word(q, end, "NOT")) &&
			    !strncasecmp(q, "EXISTS", 6) && (q = strstr(q, "*/")) && q < end)
				p = skip_blank(q + 2, end);
		} else if ((q = word(p, end, "IF")) && (q = word(q, end, "NOT")) && (q = word(q, end, "EXISTS"))) {
			p = q;
		}
	} else {
		return NULL;
	}
	if (!(*name_end = ident_end(p, end)))
		return NULL;
	return p;
}

static int add_ident(struct cf_buf *b, const char *s)
{
	int r;

	if ((r = cf_buf_add(b, "`", 1)) != CF_OK)
		return r;
	for (const char *p = s; *p; p++)
		if ((*p == '`' && (r = cf_buf_add(b, "`", 1))) || (r = cf_buf_add(b, p, 1)))
			return r;
	return cf_buf_add(b, "`", 1);
}

static int run_stmt(void *ctx, char *stmt, size_t len, unsigned long line)
{
	struct load *L = ctx;
	const char *q = stmt, *name, *name_end;
	size_t qlen = len;
	int r;

	if (cf_interrupted)
		return cf_err(CF_EINTR, "line %lu: load interrupted", line);
	if (L->target && (name = find_db_name(stmt, len, &name_end))) {
		cf_buf_reset(&L->q);
		if ((r = cf_buf_add(&L->q, stmt, (size_t)(name - stmt))) ||
		    (r = add_ident(&L->q, L->target)) ||
		    (r = cf_buf_add(&L->q, name_end, (size_t)(stmt + len - name_end))))
			return r;
		q = (const char *)L->q.data;
		qlen = L->q.len;
	}
	if (mysql_real_query(L->m, q, qlen))
		return cf_err(CF_EDB, "line %lu: %s", line, mysql_error(L->m));
	/* SELECT SETVAL() and CALL return result sets; read and drop them. */
	for (;;) {
		MYSQL_RES *res = mysql_store_result(L->m);
		if (res)
			mysql_free_result(res);
		else if (mysql_field_count(L->m))
			return cf_err(CF_EDB, "line %lu: %s", line, mysql_error(L->m));
		int more = mysql_next_result(L->m);
		if (more > 0)
			return cf_err(CF_EDB, "line %lu: %s", line, mysql_error(L->m));
		if (more < 0)
			break;
	}
	L->st->statements++;
	return CF_OK;
}

int cf_mariadb_load(const struct cf_dburl *url, const char *target_db, cf_source_fn src, void *ctx,
		    struct cf_mariadb_load_stats *stats)
{
	struct cf_mariadb_load_stats st_local;
	struct load L = { NULL, target_db, CF_BUF_INIT, stats ? stats : &st_local };
	struct cf_sqlsplit sp;
	void *m = NULL;
	char *buf = NULL;
	const size_t bufsize = 64 << 10;
	int r;

	memset(L.st, 0, sizeof(*L.st));
	cf_sqlsplit_init(&sp);
	if (target_db && (!target_db[0] || strlen(target_db) > 64)) {
		r = cf_err(CF_EINVAL, "mariadb: bad target database name");
		goto out;
	}
	if (!(buf = malloc(bufsize))) {
		r = CF_ENOMEM;
		goto out;
	}
	if ((r = cf_dburl_connect(url, &m)) != CF_OK)
		goto out;
	L.m = m;
	for (;;) {
		ssize_t n = src(ctx, buf, bufsize);
		if (n < 0) {
			r = (int)-n;
			goto out;
		}
		if (n == 0)
			break;
		L.st->bytes += (uint64_t)n;
		if ((r = cf_sqlsplit_feed(&sp, buf, (size_t)n, run_stmt, &L)) != CF_OK)
			goto out;
	}
	r = cf_sqlsplit_finish(&sp, run_stmt, &L);
out:
	L.st->lines = sp.line;
	if (L.m)
		mysql_close(L.m);
	cf_sqlsplit_release(&sp);
	cf_buf_release(&L.q);
	free(buf);
	return r;
}
