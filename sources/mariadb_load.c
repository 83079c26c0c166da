#include "sources/mariadb_load.h"
#include "sources/mariadb_grant.h"
#include "common/array.h"
#include "common/error.h"
#include "common/util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
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

/* A statement kept for the replay in the real database (replace mode). */
struct kept {
	size_t off, len;       /* in load.keep */
	unsigned long line;
	int kind;              /* K_SET, K_OBJECT, K_EVENT or K_ACCOUNT */
};

struct load {
	MYSQL *m;
	const char *target;
	struct cf_buf q;
	struct cf_mariadb_load_stats *st;
	bool replace;          /* keep SET and object statements, defer events */
	struct cf_buf keep;    /* their text, back to back */
	struct kept *kv;
	size_t nkept, capkept;
	unsigned flags;        /* CF_MARIADB_USERS_* */
	char *orig_db;         /* the dump's own database name (its CREATE DATABASE) */
	const char *grant_db;  /* its GRANTs go to this database instead, or NULL */
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
const char *cf_mariadb_find_db_name(const char *stmt, size_t len, const char **name_end)
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

/* The next word of a statement's head at p: blanks and the marks of
 * executable comments skipped (mysqldump writes "slash-star-bang50003 CREATE
 * star-slash ..."), quotes inside a word (DEFINER=`a b`@`%`) kept whole. */
static const char *next_word(const char *p, const char *end, const char **wend)
{
	for (;;) {
		p = skip_blank(p, end);
		if (end - p >= 3 && !memcmp(p, "/*!", 3)) {
			for (p += 3; p < end && *p >= '0' && *p <= '9'; p++)
				;
		} else if (end - p >= 2 && !memcmp(p, "*/", 2)) {
			p += 2;
		} else {
			break;
		}
	}
	const char *q = p;
	while (q < end && (unsigned char)*q > ' ' && *q != '(' && *q != ';') {
		if (end - q >= 2 && !memcmp(q, "*/", 2))
			break;
		if (*q == '`' || *q == '\'' || *q == '"') {
			char c = *q++;
			while (q < end && *q != c)
				q++;
		}
		if (q < end)
			q++;
	}
	*wend = q;
	return p;
}

static bool is_word(const char *p, const char *e, const char *kw)
{
	return (size_t)(e - p) == strlen(kw) && !strncasecmp(p, kw, (size_t)(e - p));
}

#define K_OTHER CF_MARIADB_K_OTHER
#define K_SET CF_MARIADB_K_SET
#define K_OBJECT CF_MARIADB_K_OBJECT
#define K_EVENT CF_MARIADB_K_EVENT
#define K_DROP_OBJECT CF_MARIADB_K_DROP_OBJECT
#define K_ACCOUNT CF_MARIADB_K_ACCOUNT

int cf_mariadb_classify(const char *stmt, size_t len, const char **create_end)
{
	static const char *const objs[] = { "VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "PACKAGE" };
	static const char *const others[] = { "TABLE", "DATABASE", "SCHEMA", "SEQUENCE", "INDEX",
					      "TEMPORARY", "SERVER" };
	const char *end = stmt + len, *we, *p = next_word(stmt, end, &we);

	*create_end = NULL;
	if (is_word(p, we, "GRANT"))
		return K_ACCOUNT;
	if (is_word(p, we, "SET")) {
		const char *w2e, *w2 = next_word(we, end, &w2e), *w3e, *w3;
		if (is_word(w2, w2e, "DEFAULT") && (w3 = next_word(w2e, end, &w3e)) && is_word(w3, w3e, "ROLE"))
			return K_ACCOUNT;
		return K_SET;
	}
	bool create = is_word(p, we, "CREATE");
	if (!create && !is_word(p, we, "DROP"))
		return K_OTHER;
	if (create)
		*create_end = we;
	for (int i = 0; i < 10 && we < end; i++) {
		p = next_word(we, end, &we);
		if (p == we)
			break;
		if (is_word(p, we, "EVENT"))
			return create ? K_EVENT : K_DROP_OBJECT;
		for (size_t k = 0; k < sizeof(objs) / sizeof(objs[0]); k++)
			if (is_word(p, we, objs[k]))
				return create ? K_OBJECT : K_DROP_OBJECT;
		if (is_word(p, we, "USER") || is_word(p, we, "ROLE")) {
			*create_end = NULL;
			return create ? K_ACCOUNT : K_OTHER;
		}
		for (size_t k = 0; k < sizeof(others) / sizeof(others[0]); k++)
			if (is_word(p, we, others[k])) {
				*create_end = NULL;
				return K_OTHER;
			}
	}
	*create_end = NULL;
	return K_OTHER;
}

/* Keep a statement for the replay in the real database. */
static int keep_stmt(struct load *L, const char *stmt, size_t len, unsigned long line, int kind)
{
	int r;

	if ((r = CF_GROW(L->kv, L->nkept + 1, L->capkept)) != CF_OK)
		return r;
	L->kv[L->nkept] = (struct kept){ L->keep.len, len, line, kind };
	if ((r = cf_buf_add(&L->keep, stmt, len)) != CF_OK)
		return r;
	L->nkept++;
	return CF_OK;
}

static int exec_stmt(struct load *L, const char *q, size_t qlen, unsigned long line);

/* The name an identifier at [p, end) spells (`quoted` or bare); caller frees. */
static char *ident_text(const char *p, const char *end)
{
	char *s = malloc((size_t)(end - p) + 1), *o = s;

	if (!s)
		return NULL;
	if (p < end && *p == '`') {
		for (p++, end--; p < end; p++) {
			if (*p == '`' && p + 1 < end && p[1] == '`')
				p++;
			*o++ = *p;
		}
	} else {
		memcpy(s, p, (size_t)(end - p));
		o += end - p;
	}
	*o = 0;
	return s;
}

static bool prefix(const char *s, size_t len, const char *pre)
{
	size_t n = strlen(pre);
	return len >= n && !strncasecmp(s, pre, n);
}

/* One statement of a dump's account section (see mariadb_load.h). */
static int run_account(struct load *L, const char *stmt, size_t len, unsigned long line)
{
	static const char user_ine[] = "CREATE USER IF NOT EXISTS ", role_ine[] = "CREATE ROLE IF NOT EXISTS ";
	struct cf_buf q = CF_BUF_INIT;
	const char *p, *e;
	int r;

	if (L->flags & CF_MARIADB_USERS_SKIP)
		return CF_OK;
	if (L->grant_db && L->orig_db && (p = cf_mariadb_grant_db(stmt, len, &e)) &&
	    cf_mariadb_ident_eq(p, e, L->orig_db)) {
		if ((r = cf_buf_add(&q, stmt, (size_t)(p - stmt))) || (r = add_ident(&q, L->grant_db)) ||
		    (r = cf_buf_add(&q, e, (size_t)(stmt + len - e))))
			goto out;
		stmt = (const char *)q.data;
		len = q.len;
	}
	bool user = prefix(stmt, len, user_ine), role = prefix(stmt, len, role_ine);
	if ((r = exec_stmt(L, stmt, len, line)))
		goto out;
	if (!user && !role)
		goto out;
	/* IF NOT EXISTS leaves an existing account alone with a note. */
	if (!mysql_warning_count(L->m)) {
		L->st->accounts_made++;
		goto out;
	}
	L->st->accounts_kept++;
	if (user && (L->flags & CF_MARIADB_USERS_REPLACE)) {
		struct cf_buf a = CF_BUF_INIT;
		if (!(r = cf_buf_adds(&a, "ALTER USER ")) &&
		    !(r = cf_buf_add(&a, stmt + sizeof(user_ine) - 1, len - (sizeof(user_ine) - 1))))
			r = exec_stmt(L, (const char *)a.data, a.len, line);
		cf_buf_release(&a);
	}
out:
	cf_buf_release(&q);
	return r;
}

static int run_stmt(void *ctx, char *stmt, size_t len, unsigned long line)
{
	struct load *L = ctx;
	const char *q = stmt, *name, *name_end;
	size_t qlen = len;
	int r;

	if (cf_interrupted)
		return cf_err(CF_EINTR, "line %lu: load interrupted", line);
	name = cf_mariadb_find_db_name(stmt, len, &name_end);
	if (name && !L->orig_db && prefix(stmt, len, "CREATE") && !(L->orig_db = ident_text(name, name_end)))
		return CF_ENOMEM;
	if (!name) {
		const char *ce;
		int kind = cf_mariadb_classify(stmt, len, &ce);
		if (kind == K_ACCOUNT && !L->replace)
			return run_account(L, stmt, len, line);
		if (kind == K_ACCOUNT)  /* after the swap: a GRANT on a table needs it there */
			return keep_stmt(L, stmt, len, line, kind);
	}
	if (L->target && name) {
		cf_buf_reset(&L->q);
		if ((r = cf_buf_add(&L->q, stmt, (size_t)(name - stmt))) ||
		    (r = add_ident(&L->q, L->target)) ||
		    (r = cf_buf_add(&L->q, name_end, (size_t)(stmt + len - name_end))))
			return r;
		q = (const char *)L->q.data;
		qlen = L->q.len;
	} else if (L->replace) {
		/* Views, triggers and routines cannot move into the real database
		 * with its tables: they are made here (which proves they load)
		 * and made again there after the swap, under the same SETs.
		 * Events are only made there: one would run here. */
		const char *ce;
		int kind = cf_mariadb_classify(stmt, len, &ce);
		if ((kind == K_SET || kind == K_OBJECT || kind == K_EVENT) &&
		    (r = keep_stmt(L, stmt, len, line, kind)) != CF_OK)
			return r;
		if (kind == K_EVENT) {
			L->st->statements++;
			return CF_OK;
		}
	}
	return exec_stmt(L, q, qlen, line);
}

/* After a statement with warnings: CF_EDB when one says a value passed
 * max_allowed_packet (1301), else CF_OK. */
static int packet_warning(struct load *L, unsigned long line)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	int r = CF_OK;

	if (mysql_real_query(L->m, "SHOW WARNINGS", 13) || !(res = mysql_store_result(L->m)))
		return cf_err(CF_EDB, "line %lu: SHOW WARNINGS: %s", line, mysql_error(L->m));
	while (!r && (row = mysql_fetch_row(res)))
		if (row[1] && !strcmp(row[1], "1301"))
			r = cf_err(CF_EDB, "line %lu: a value is larger than the server's max_allowed_packet "
				   "(raise it to load this row): %s", line, row[2] ? row[2] : "");
	mysql_free_result(res);
	return r;
}

static int exec_stmt(struct load *L, const char *q, size_t qlen, unsigned long line)
{
	if (mysql_real_query(L->m, q, qlen))
		return cf_err(CF_EDB, "line %lu: %s", line, mysql_error(L->m));
	/* A CONCAT() whose result would pass max_allowed_packet gives NULL and
	 * only a warning: a row written in pieces would lose its value. */
	if (mysql_field_count(L->m) == 0 && mysql_warning_count(L->m) && !strncasecmp(q, "UPDATE ", 7))
		return packet_warning(L, line);
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

/* Split src into statements and run them on L->m. */
static int load_stream(struct load *L, cf_source_fn src, void *ctx)
{
	struct cf_sqlsplit sp;
	char *buf = NULL;
	const size_t bufsize = 64 << 10;
	int r;

	cf_sqlsplit_init(&sp);
	/* Dumps written before the dump set it itself load as fast: a dump is
	 * consistent already, the server need not check unique keys row by row
	 * (mariadb-dump's files set it too). */
	if (mysql_real_query(L->m, "SET SESSION unique_checks = 0", 29)) {
		r = cf_err(CF_EDB, "session settings: %s", mysql_error(L->m));
		goto out;
	}
	if (!(buf = malloc(bufsize))) {
		r = CF_ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = src(ctx, buf, bufsize);
		if (n < 0) {
			r = (int)-n;
			goto out;
		}
		if (n == 0)
			break;
		L->st->bytes += (uint64_t)n;
		if ((r = cf_sqlsplit_feed(&sp, buf, (size_t)n, run_stmt, L)) != CF_OK)
			goto out;
	}
	r = cf_sqlsplit_finish(&sp, run_stmt, L);
out:
	L->st->lines = sp.line;
	cf_sqlsplit_release(&sp);
	free(buf);
	return r;
}

static void load_release(struct load *L)
{
	if (L->m)
		mysql_close(L->m);
	L->m = NULL;
	cf_buf_release(&L->q);
	cf_buf_release(&L->keep);
	free(L->kv);
	free(L->orig_db);
}

int cf_mariadb_load(const struct cf_dburl *url, const char *target_db, cf_source_fn src, void *ctx,
		    struct cf_mariadb_load_stats *stats)
{
	struct cf_mariadb_load_stats st_local;
	struct load L = { .target = target_db, .q = CF_BUF_INIT, .st = stats ? stats : &st_local,
			  .keep = CF_BUF_INIT, .grant_db = target_db };
	void *m = NULL;
	int r;

	memset(L.st, 0, sizeof(*L.st));
	if (target_db && (!target_db[0] || strlen(target_db) > 64)) {
		r = cf_err(CF_EINVAL, "mariadb: bad target database name");
		goto out;
	}
	if ((r = cf_dburl_connect(url, &m)) != CF_OK)
		goto out;
	L.m = m;
	r = load_stream(&L, src, ctx);
out:
	load_release(&L);
	return r;
}

/* ---- replacing a database whole ---- */

/* Run one statement of the swap; its result, if any, is dropped. */
static int sql(MYSQL *m, const struct cf_buf *q, const char *what)
{
	if (mysql_real_query(m, (const char *)q->data, q->len))
		return cf_err(CF_EDB, "%s: %s", what, mysql_error(m));
	MYSQL_RES *res = mysql_store_result(m);
	if (res)
		mysql_free_result(res);
	return CF_OK;
}

static int add_str(MYSQL *m, struct cf_buf *b, const char *s)
{
	size_t n = strlen(s);
	int r;

	if ((r = cf_buf_grow(b, 2 * n + 3)) != CF_OK)
		return r;
	b->data[b->len++] = '\'';
	b->len += mysql_real_escape_string(m, (char *)b->data + b->len, s, n);
	b->data[b->len++] = '\'';
	b->data[b->len] = 0;
	return CF_OK;
}

/* Rows of a query whose text is head + 'db' + tail; caller frees *res. */
static int select_db(MYSQL *m, const char *head, const char *db, const char *tail, MYSQL_RES **res)
{
	struct cf_buf q = CF_BUF_INIT;
	int r;

	*res = NULL;
	if ((r = cf_buf_adds(&q, head)) || (r = add_str(m, &q, db)) || (r = cf_buf_adds(&q, tail)))
		goto out;
	if (mysql_real_query(m, (const char *)q.data, q.len) || !(*res = mysql_store_result(m)))
		r = cf_err(CF_EDB, "reading the catalog: %s", mysql_error(m));
out:
	cf_buf_release(&q);
	return r;
}

#define BASE_TABLES "TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE')"

/* Drop every row[0] (and row[1] as its kind when kind is NULL) of res:
 * "DROP <kind> db.name". */
static int drop_all(MYSQL *m, MYSQL_RES *res, const char *kind, const char *db)
{
	struct cf_buf q = CF_BUF_INIT;
	MYSQL_ROW row;
	int r = CF_OK;

	while (!r && (row = mysql_fetch_row(res))) {
		cf_buf_reset(&q);
		if (!(r = cf_buf_addf(&q, "DROP %s ", kind ? kind : row[1])) && !(r = add_ident(&q, db)) &&
		    !(r = cf_buf_add(&q, ".", 1)) && !(r = add_ident(&q, row[0])))
			r = sql(m, &q, "dropping an object");
	}
	cf_buf_release(&q);
	return r;
}

/* One RENAME TABLE, which the server runs as one atomic DDL: the real
 * database's tables into the database old (their foreign key names must
 * leave db: InnoDB keeps them unique per database), then the loaded ones
 * from tmp in their place. */
static int swap_tables(MYSQL *m, const char *db, const char *tmp, const char *old)
{
	struct cf_buf q = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	bool any = false;
	int r;

	if ((r = cf_buf_adds(&q, "RENAME TABLE ")))
		goto out;
	for (int pass = 0; pass < 2; pass++) {
		const char *from = pass ? tmp : db, *to = pass ? db : old;
		if ((r = select_db(m, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ",
				   from, " AND " BASE_TABLES, &res)))
			goto out;
		while ((row = mysql_fetch_row(res))) {
			if ((any && (r = cf_buf_adds(&q, ", "))) || (r = add_ident(&q, from)) ||
			    (r = cf_buf_add(&q, ".", 1)) || (r = add_ident(&q, row[0])) ||
			    (r = cf_buf_adds(&q, " TO ")) || (r = add_ident(&q, to)) ||
			    (r = cf_buf_add(&q, ".", 1)) || (r = add_ident(&q, row[0])))
				goto out;
			any = true;
		}
		mysql_free_result(res);
		res = NULL;
	}
	if (any)
		r = sql(m, &q, "swapping the tables in");
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	return r;
}

/* A DEFAULT NEXTVAL(seq) was resolved to `tmp`.`seq` when the table was
 * made in tmp; point it at the database the table now lives in. */
static int fix_seq_defaults(MYSQL *m, const char *db, const char *tmp)
{
	struct cf_buf q = CF_BUF_INIT, pat = CF_BUF_INIT, like = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	int r;

	if ((r = add_ident(&pat, tmp)) || (r = cf_buf_add(&pat, ".", 1)) || (r = cf_buf_adds(&like, "%")))
		goto out;
	for (const char *p = (const char *)pat.data; *p; p++)
		if (((*p == '%' || *p == '_' || *p == '\\') && (r = cf_buf_add(&like, "\\", 1))) ||
		    (r = cf_buf_add(&like, p, 1)))
			goto out;
	if ((r = cf_buf_add(&like, "%", 1)) ||
	    (r = cf_buf_adds(&q, " AND (TABLE_SCHEMA, TABLE_NAME) NOT IN (SELECT TABLE_SCHEMA, TABLE_NAME "
				 "FROM information_schema.VIEWS) AND COLUMN_DEFAULT LIKE ")) ||
	    (r = add_str(m, &q, (char *)like.data)))
		goto out;
	if ((r = select_db(m, "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT FROM information_schema.COLUMNS "
			      "WHERE TABLE_SCHEMA = ", db, (char *)q.data, &res)))
		goto out;
	while ((row = mysql_fetch_row(res))) {
		cf_buf_reset(&q);
		if ((r = cf_buf_adds(&q, "ALTER TABLE ")) || (r = add_ident(&q, db)) || (r = cf_buf_add(&q, ".", 1)) ||
		    (r = add_ident(&q, row[0])) || (r = cf_buf_adds(&q, " ALTER COLUMN ")) ||
		    (r = add_ident(&q, row[1])) || (r = cf_buf_adds(&q, " SET DEFAULT ")))
			goto out;
		for (const char *p = row[2]; *p;) {
			if (!strncmp(p, (char *)pat.data, pat.len)) {
				p += pat.len;
				continue;
			}
			if ((r = cf_buf_add(&q, p++, 1)))
				goto out;
		}
		if ((r = sql(m, &q, "pointing a DEFAULT NEXTVAL() at the restored sequence")))
			goto out;
	}
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	cf_buf_release(&pat);
	cf_buf_release(&like);
	return r;
}

/* Make the kept views, triggers, routines and events in db (the current
 * database), each as CREATE OR REPLACE so that an object of the same name
 * is replaced without a moment of absence, under the SETs it had. */
static int replay(struct load *L)
{
	int r = CF_OK;

	for (size_t i = 0; i < L->nkept && !r; i++) {
		const struct kept *k = &L->kv[i];
		const char *stmt = (const char *)L->keep.data + k->off, *ce, *w = NULL, *we = NULL;
		cf_buf_reset(&L->q);
		if (k->kind == K_ACCOUNT) {
			r = run_account(L, stmt, k->len, k->line);
			continue;
		}
		if (cf_mariadb_classify(stmt, k->len, &ce) != K_SET && ce)
			w = next_word(ce, stmt + k->len, &we);
		if (w && !is_word(w, we, "OR")) {
			if ((r = cf_buf_add(&L->q, stmt, (size_t)(ce - stmt))) ||
			    (r = cf_buf_adds(&L->q, " OR REPLACE")) ||
			    (r = cf_buf_add(&L->q, ce, k->len - (size_t)(ce - stmt))))
				break;
		} else if ((r = cf_buf_add(&L->q, stmt, k->len))) {
			break;
		}
		r = exec_stmt(L, (const char *)L->q.data, L->q.len, k->line);
	}
	return r;
}

/* What the real database holds that the snapshot does not: views and
 * routines tmp lacks, and every event (the kept ones are made again). */
static int drop_strangers(MYSQL *m, const char *db, const char *tmp)
{
	struct cf_buf t = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	int r;

	if ((r = cf_buf_adds(&t, " AND TABLE_NAME NOT IN (SELECT TABLE_NAME FROM information_schema.VIEWS "
				 "WHERE TABLE_SCHEMA = ")) || (r = add_str(m, &t, tmp)) || (r = cf_buf_adds(&t, ")")) ||
	    (r = select_db(m, "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ", db,
			   (char *)t.data, &res)) ||
	    (r = drop_all(m, res, "VIEW", db)))
		goto out;
	mysql_free_result(res);
	res = NULL;
	cf_buf_reset(&t);
	if ((r = cf_buf_adds(&t, " AND NOT EXISTS (SELECT 1 FROM information_schema.ROUTINES x WHERE "
				 "x.ROUTINE_SCHEMA = ")) || (r = add_str(m, &t, tmp)) ||
	    (r = cf_buf_adds(&t, " AND x.ROUTINE_NAME = r.ROUTINE_NAME AND x.ROUTINE_TYPE = r.ROUTINE_TYPE)")) ||
	    (r = select_db(m, "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES r "
			      "WHERE ROUTINE_SCHEMA = ", db, (char *)t.data, &res)) ||
	    (r = drop_all(m, res, NULL, db)))
		goto out;
	mysql_free_result(res);
	res = NULL;
	if ((r = select_db(m, "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ", db, "",
			   &res)))
		goto out;
	r = drop_all(m, res, "EVENT", db);
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&t);
	return r;
}

/* The swap once the dump has loaded into tmp. */
static int swap_in(struct load *L, const char *db, const char *tmp, const char *old, double *window, bool *in)
{
	struct cf_buf q = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	int r;

	/* Triggers pin a table to its database; they are made again below. */
	if ((r = select_db(L->m, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ",
			   tmp, "", &res)) || (r = drop_all(L->m, res, "TRIGGER", tmp)))
		goto out;
	mysql_free_result(res);
	/* The database itself, with the snapshot's character set. */
	if ((r = select_db(L->m, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
				 "information_schema.SCHEMATA WHERE SCHEMA_NAME = ", tmp, "", &res)))
		goto out;
	if (!(row = mysql_fetch_row(res)) || !row[0] || !row[1]) {
		r = cf_err(CF_ECORRUPT, "the dump did not create its database");
		goto out;
	}
	for (int alter = 0; alter < 2; alter++) {
		cf_buf_reset(&q);
		if ((r = cf_buf_adds(&q, alter ? "ALTER DATABASE " : "CREATE DATABASE IF NOT EXISTS ")) ||
		    (r = add_ident(&q, db)) || (r = cf_buf_addf(&q, " CHARACTER SET %s COLLATE %s", row[0], row[1])) ||
		    (r = sql(L->m, &q, "creating the database")))
			goto out;
	}
	mysql_free_result(res);
	/* A table with triggers cannot leave its database: drop them (the
	 * snapshot's are made again below), then swap at once. */
	if ((r = select_db(L->m, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ",
			   db, "", &res)))
		goto out;
	int64_t t0 = cf_now_ns();
	if ((r = drop_all(L->m, res, "TRIGGER", db)))
		goto out;
	mysql_free_result(res);
	res = NULL;
	if ((r = swap_tables(L->m, db, tmp, old)))
		goto out;
	*in = true;
	/* From here the real database holds the snapshot's tables; what
	 * follows makes its other objects.  An error is reported, and the
	 * tables stay. */
	if (mysql_select_db(L->m, db)) {
		r = cf_err(CF_EDB, "USE the restored database: %s", mysql_error(L->m));
		goto out;
	}
	if ((r = fix_seq_defaults(L->m, db, tmp)) || (r = drop_strangers(L->m, db, tmp)) || (r = replay(L)))
		goto out;
	*window = (double)(cf_now_ns() - t0) / 1e9;
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	return r;
}

/* db + suffix, db cut at a character boundary to fit 64 characters. */
static void tmp_name(const char *db, const char *suffix, char *out, size_t cap)
{
	size_t n = strlen(db), chars = 0, keep = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)db[i] & 0xc0) != 0x80) {
			if (chars == 64 - strlen(suffix))
				break;
			chars++;
			keep = i + 1;
			while (keep < n && ((unsigned char)db[keep] & 0xc0) == 0x80)
				keep++;
		}
	snprintf(out, cap, "%.*s%s", (int)keep, db, suffix);
}

static int create_db(MYSQL *m, const char *name)
{
	struct cf_buf q = CF_BUF_INIT;
	int r;

	if (!(r = cf_buf_adds(&q, "CREATE DATABASE ")) && !(r = add_ident(&q, name)))
		r = sql(m, &q, "creating the database for the old tables");
	cf_buf_release(&q);
	return r;
}

/* Drop a temporary database, leaving the error message of the load (if
 * any) alone: this only warns. */
static void drop_tmp(const struct cf_dburl *url, MYSQL *m, const char *tmp)
{
	struct cf_buf q = CF_BUF_INIT;
	void *fresh = NULL;

	/* The load's connection may be gone (a packet too big, a timeout). */
	if (!m || mysql_ping(m)) {
		if (cf_dburl_connect(url, &fresh) != CF_OK) {
			cf_warn("mariadb: could not drop the temporary database %s", tmp);
			return;
		}
		m = fresh;
	}
	/* A load cut short inside LOCK TABLES still holds them. */
	(void)mysql_real_query(m, "UNLOCK TABLES", 13);
	(void)mysql_real_query(m, "SET SESSION foreign_key_checks = 0", 34);
	if (!cf_buf_adds(&q, "DROP DATABASE IF EXISTS ") && !add_ident(&q, tmp) &&
	    mysql_real_query(m, (const char *)q.data, q.len))
		cf_warn("mariadb: could not drop the temporary database %s: %s", tmp, mysql_error(m));
	if (fresh)
		mysql_close(fresh);
	cf_buf_release(&q);
}

int cf_mariadb_load_replace(const struct cf_dburl *url, const char *db, cf_source_fn src, void *ctx,
			    unsigned flags, struct cf_mariadb_load_stats *stats)
{
	struct cf_mariadb_load_stats st_local;
	struct load L = { .q = CF_BUF_INIT, .st = stats ? stats : &st_local, .replace = true,
			  .keep = CF_BUF_INIT, .flags = flags, .grant_db = db };
	char tmp[300], old[300];
	void *m = NULL;
	bool swapped = false;
	int r;

	memset(L.st, 0, sizeof(*L.st));
	if (!db[0] || strlen(db) > 256) {
		r = cf_err(CF_EINVAL, "mariadb: bad target database name");
		goto out;
	}
	tmp_name(db, "__coffer_new", tmp, sizeof(tmp));
	tmp_name(db, "__coffer_old", old, sizeof(old));
	L.target = tmp;
	if ((r = cf_dburl_connect(url, &m)) != CF_OK)
		goto out;
	L.m = m;
	drop_tmp(url, L.m, tmp);  /* left by a restore that was killed */
	drop_tmp(url, L.m, old);
	if ((r = load_stream(&L, src, ctx)) != CF_OK)
		goto out;
	double window = 0;
	if ((r = create_db(L.m, old)) != CF_OK || (r = swap_in(&L, db, tmp, old, &window, &swapped)) != CF_OK)
		goto out;
	cf_info("mariadb: database %s replaced; its views, triggers, routines and events were remade "
		"%.3f s after the tables were swapped in", db, window);
	if (L.st->accounts_made || L.st->accounts_kept)
		cf_info("mariadb: accounts of %s: %llu made, %llu there already (%s)", db,
			(unsigned long long)L.st->accounts_made, (unsigned long long)L.st->accounts_kept,
			flags & CF_MARIADB_USERS_REPLACE ? "set as in the snapshot"
							  : "their passwords left as they were");
out:
	if (L.target) {
		drop_tmp(url, L.m, tmp);
		drop_tmp(url, L.m, old);  /* the old tables, with foreign_key_checks = 0 */
	}
	if (r && swapped)
		r = cf_err_prefix(r, "the tables were swapped in, but making the other objects failed");
	else if (r && L.m)
		r = cf_err_prefix(r, "database %s left as it was", db);
	load_release(&L);
	return r;
}
