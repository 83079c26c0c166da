#include "sources/mariadb.h"
#include "sources/mariadb_grant.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>

/* Hand the output to the sink in pieces of about this size: large enough to
 * keep the number of sink calls low, small enough to keep memory flat. */
#define FLUSH_AT (256u << 10)

/* The session settings the dump's statements assume when loaded. */
#define LOAD_SQL_MODE "NO_AUTO_VALUE_ON_ZERO"

struct cf_mariadb {
	MYSQL *m;
	char who[300];
	bool in_snapshot;
	bool broken;
	char version[128];
	char snap_time[40];
	char gtid[256];
	char **want;  /* the URL's database list, NULL-terminated, or NULL */
	unsigned long long packet;  /* the server's max_allowed_packet */
	bool users;  /* end each dump with its accounts (--mariadb-users) */
};

struct out {
	cf_sink_fn sink;
	void *ctx;
	struct cf_buf b;
	struct cf_mariadb_stats *st;
};

static int db_err(struct cf_mariadb *db, const char *what)
{
	db->broken = true;
	return cf_err(CF_EDB, "mariadb %s: %s: %s", db->who, what, mysql_error(db->m));
}

static int query(struct cf_mariadb *db, const char *sql, const char *what)
{
	if (mysql_real_query(db->m, sql, strlen(sql)))
		return db_err(db, what);
	return CF_OK;
}

static int query_store(struct cf_mariadb *db, const char *sql, const char *what, MYSQL_RES **res)
{
	int r;

	if ((r = query(db, sql, what)) != CF_OK)
		return r;
	if (!(*res = mysql_store_result(db->m)))
		return db_err(db, what);
	return CF_OK;
}

static int add_ident(struct cf_buf *b, const char *s)
{
	int r;

	if ((r = cf_buf_add(b, "`", 1)) != CF_OK)
		return r;
	for (const char *p = s; *p; p++) {
		if (*p == '`' && (r = cf_buf_add(b, "`", 1)) != CF_OK)
			return r;
		if ((r = cf_buf_add(b, p, 1)) != CF_OK)
			return r;
	}
	return cf_buf_add(b, "`", 1);
}

static int add_quoted(MYSQL *m, struct cf_buf *b, const char *s, size_t n)
{
	int r;

	if (n > (SIZE_MAX - 4) / 2)
		return CF_ENOMEM;
	if ((r = cf_buf_grow(b, 2 * n + 3)) != CF_OK)
		return r;
	b->data[b->len++] = '\'';
	unsigned long e = mysql_real_escape_string(m, (char *)b->data + b->len, s, n);
	if (e == (unsigned long)-1)
		return cf_err(CF_EDB, "mariadb: cannot escape a string value");
	b->len += e;
	b->data[b->len++] = '\'';
	b->data[b->len] = 0;
	return CF_OK;
}

static int add_hex(struct cf_buf *b, const char *s, size_t n)
{
	int r;

	if (n > (SIZE_MAX - 4) / 2)
		return CF_ENOMEM;
	if ((r = cf_buf_grow(b, 2 * n + 3)) != CF_OK)
		return r;
	b->data[b->len++] = 'X';
	b->data[b->len++] = '\'';
	cf_hex((const uint8_t *)s, n, (char *)b->data + b->len);
	b->len += 2 * n;
	b->data[b->len++] = '\'';
	b->data[b->len] = 0;
	return CF_OK;
}

/* Text for a "-- " comment line: control bytes would end the comment early. */
static int add_comment_text(struct cf_buf *b, const char *s)
{
	int r;

	for (const char *p = s; *p; p++) {
		char c = (unsigned char)*p < 0x20 ? '?' : *p;
		if ((r = cf_buf_add(b, &c, 1)) != CF_OK)
			return r;
	}
	return CF_OK;
}

static int out_flush(struct out *o)
{
	int r;

	if (!o->b.len)
		return CF_OK;
	if ((r = o->sink(o->ctx, o->b.data, o->b.len)) != CF_OK)
		return r;
	o->st->bytes += o->b.len;
	cf_buf_reset(&o->b);
	return CF_OK;
}

static int out_maybe_flush(struct out *o)
{
	return o->b.len >= FLUSH_AT ? out_flush(o) : CF_OK;
}

int cf_mariadb_open(const struct cf_dburl *url, struct cf_mariadb **out)
{
	struct cf_mariadb *db;
	void *m;
	int r;

	*out = NULL;
	if (!(db = calloc(1, sizeof(*db))))
		return CF_ENOMEM;
	cf_dburl_describe(url, db->who, sizeof(db->who));
	if ((r = cf_dburl_connect(url, &m)) != CF_OK)
		goto fail;
	db->m = m;
	if (url->ndbs) {
		if (!(db->want = calloc(url->ndbs + 1, sizeof(*db->want)))) {
			r = CF_ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < url->ndbs; i++)
			if (!(db->want[i] = strdup(url->dbs[i]))) {
				r = CF_ENOMEM;
				goto fail;
			}
	}
	/* '' keeps SHOW CREATE output in backticks whatever the server default
	 * (ANSI_QUOTES would turn them into double quotes); UTC makes TIMESTAMP
	 * values exact; a long write timeout lets a slow sink (an upload that
	 * retries) pause the row stream without the server giving up on us. */
	if ((r = query(db, "SET SESSION sql_mode = '', time_zone = '+00:00', "
			   "net_write_timeout = 3600, net_read_timeout = 3600",
		       "session settings")) != CF_OK)
		goto fail;
	snprintf(db->version, sizeof(db->version), "%s", mysql_get_server_info(db->m));
	*out = db;
	return CF_OK;
fail:
	cf_mariadb_close(db);
	return r;
}

void cf_mariadb_close(struct cf_mariadb *db)
{
	if (!db)
		return;
	if (db->m)
		mysql_close(db->m);
	cf_mariadb_names_free(db->want);
	free(db);
}

void cf_mariadb_names_free(char **names)
{
	if (!names)
		return;
	for (char **p = names; *p; p++)
		free(*p);
	free(names);
}

static bool is_system_db(const char *s)
{
	return !strcmp(s, "information_schema") || !strcmp(s, "performance_schema") ||
	       !strcmp(s, "mysql") || !strcmp(s, "sys");
}

/* The URL's own list is checked against the server so that a typo fails the
 * backup before any data moves. */
static int check_db_exists(struct cf_mariadb *db, const char *name)
{
	struct cf_buf q = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	int r;

	if ((r = cf_buf_adds(&q, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ")) ||
	    (r = add_quoted(db->m, &q, name, strlen(name))))
		goto out;
	if ((r = query_store(db, (char *)q.data, "check database", &res)) != CF_OK)
		goto out;
	r = mysql_num_rows(res) ? CF_OK : cf_err(CF_ENOENT, "mariadb %s: unknown database '%s'", db->who, name);
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	return r;
}

int cf_mariadb_list_dbs(struct cf_mariadb *db, char ***names, size_t *n)
{
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	char **v = NULL;
	size_t count = 0;
	int r;

	*names = NULL;
	*n = 0;
	if (db->want) {
		for (char **p = db->want; *p; p++)
			if ((r = check_db_exists(db, *p)) != CF_OK)
				return r;
		for (; db->want[count]; count++)
			;
		if (!(v = calloc(count + 1, sizeof(*v))))
			return CF_ENOMEM;
		for (size_t i = 0; i < count; i++)
			if (!(v[i] = strdup(db->want[i]))) {
				r = CF_ENOMEM;
				goto out;
			}
		*names = v;
		*n = count;
		return CF_OK;
	}
	if ((r = query_store(db, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME",
			     "list databases", &res)) != CF_OK)
		goto out;
	if (!(v = calloc(mysql_num_rows(res) + 1, sizeof(*v)))) {
		r = CF_ENOMEM;
		goto out;
	}
	while ((row = mysql_fetch_row(res))) {
		if (!row[0] || is_system_db(row[0]))
			continue;
		if (!(v[count] = strdup(row[0]))) {
			r = CF_ENOMEM;
			goto out;
		}
		count++;
	}
	*names = v;
	*n = count;
	v = NULL;
	r = CF_OK;
out:
	if (res)
		mysql_free_result(res);
	cf_mariadb_names_free(v);
	return r;
}

int cf_mariadb_begin_snapshot(struct cf_mariadb *db, const struct cf_mariadb_opts *opts)
{
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	bool locked = false;
	int r;

	if (db->in_snapshot)
		return cf_err(CF_EINVAL, "mariadb: snapshot already started");
	if (opts && opts->lock) {
		if ((r = query(db, "FLUSH TABLES WITH READ LOCK", "FLUSH TABLES WITH READ LOCK")) != CF_OK)
			goto out;
		locked = true;
	}
	if ((r = query(db, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "isolation level")) ||
	    (r = query(db, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", "start transaction")))
		goto out;
	if ((r = query_store(db, "SELECT UTC_TIMESTAMP(6), @@GLOBAL.gtid_binlog_pos, @@GLOBAL.max_allowed_packet",
			     "snapshot position", &res)) != CF_OK)
		goto out;
	if ((row = mysql_fetch_row(res))) {
		snprintf(db->snap_time, sizeof(db->snap_time), "%s", row[0] ? row[0] : "");
		snprintf(db->gtid, sizeof(db->gtid), "%s", row[1] ? row[1] : "");
		db->packet = row[2] ? strtoull(row[2], NULL, 10) : 0;
	}
	db->in_snapshot = true;
	db->users = opts && opts->users;
	r = CF_OK;
out:
	if (res)
		mysql_free_result(res);
	/* Hold the global lock only while the transaction starts: writers stall
	 * for milliseconds, not for the length of the dump. */
	if (locked && mysql_real_query(db->m, "UNLOCK TABLES", 13) && r == CF_OK)
		r = db_err(db, "UNLOCK TABLES");
	return r;
}

/* One row of a table listing. */
struct tbl {
	char *name;
	char kind;  /* 'T' base table, 'V' view, 'S' sequence */
	bool nontx;
	bool versioned;  /* WITH SYSTEM VERSIONING: its history is dumped too */
	char *def;  /* views only: SHOW CREATE VIEW text */
};

struct tbl_list {
	struct tbl *v;
	size_t n;
};

static void tbl_list_release(struct tbl_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].def);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int list_tables(struct cf_mariadb *db, const char *name, struct tbl_list *l)
{
	struct cf_buf q = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	int r;

	if ((r = cf_buf_adds(&q, "SELECT t.TABLE_NAME, t.TABLE_TYPE, IFNULL(e.TRANSACTIONS, 'YES') "
				 "FROM information_schema.TABLES t LEFT JOIN information_schema.ENGINES e "
				 "ON e.ENGINE = t.ENGINE WHERE t.TABLE_SCHEMA = ")) ||
	    (r = add_quoted(db->m, &q, name, strlen(name))) ||
	    (r = cf_buf_adds(&q, " ORDER BY t.TABLE_NAME")))
		goto out;
	if ((r = query_store(db, (char *)q.data, "list tables", &res)) != CF_OK)
		goto out;
	if (!(l->v = calloc(mysql_num_rows(res) + 1, sizeof(*l->v)))) {
		r = CF_ENOMEM;
		goto out;
	}
	while ((row = mysql_fetch_row(res))) {
		struct tbl *t = &l->v[l->n];
		const char *type = row[1] ? row[1] : "";
		if (!strcmp(type, "VIEW"))
			t->kind = 'V';
		else if (!strcmp(type, "SEQUENCE"))
			t->kind = 'S';
		else if (!strcmp(type, "BASE TABLE") || !strcmp(type, "SYSTEM VERSIONED"))
			t->kind = 'T';
		else
			continue;
		if (!(t->name = strdup(row[0]))) {
			r = CF_ENOMEM;
			goto out;
		}
		t->nontx = t->kind == 'T' && row[2] && strcmp(row[2], "YES") != 0;
		t->versioned = !strcmp(type, "SYSTEM VERSIONED");
		l->n++;
	}
	r = CF_OK;
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	return r;
}

/* Run "SHOW CREATE <kind> `name`" and copy column col of its row. */
static int show_create(struct cf_mariadb *db, const char *kind, const char *name, int col, char **out,
		       char **sql_mode, char **tz)
{
	struct cf_buf q = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	int r;

	*out = NULL;
	if ((r = cf_buf_addf(&q, "SHOW CREATE %s ", kind)) || (r = add_ident(&q, name)))
		goto out;
	if ((r = query_store(db, (char *)q.data, (char *)q.data, &res)) != CF_OK)
		goto out;
	if (!(row = mysql_fetch_row(res)) || (int)mysql_num_fields(res) <= col) {
		r = cf_err(CF_EDB, "mariadb %s: %s returned nothing", db->who, (char *)q.data);
		goto out;
	}
	if (!row[col]) {
		r = cf_err(CF_EPERM, "mariadb %s: %s: no privilege to read the definition", db->who,
			   (char *)q.data);
		goto out;
	}
	if (!(*out = strdup(row[col])) || (sql_mode && !(*sql_mode = strdup(row[1] ? row[1] : ""))) ||
	    (tz && !(*tz = strdup(row[2] ? row[2] : "SYSTEM")))) {
		r = CF_ENOMEM;
		goto out;
	}
	r = CF_OK;
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	return r;
}

static bool is_numeric(enum enum_field_types t)
{
	switch (t) {
	case MYSQL_TYPE_DECIMAL: case MYSQL_TYPE_NEWDECIMAL: case MYSQL_TYPE_TINY:
	case MYSQL_TYPE_SHORT: case MYSQL_TYPE_LONG: case MYSQL_TYPE_FLOAT:
	case MYSQL_TYPE_DOUBLE: case MYSQL_TYPE_LONGLONG: case MYSQL_TYPE_INT24:
	case MYSQL_TYPE_YEAR:
		return true;
	default:
		return false;
	}
}

static bool is_temporal(enum enum_field_types t)
{
	switch (t) {
	case MYSQL_TYPE_TIMESTAMP: case MYSQL_TYPE_DATE: case MYSQL_TYPE_TIME:
	case MYSQL_TYPE_DATETIME: case MYSQL_TYPE_NEWDATE: case MYSQL_TYPE_TIMESTAMP2:
	case MYSQL_TYPE_DATETIME2: case MYSQL_TYPE_TIME2:
		return true;
	default:
		return false;
	}
}

static int add_value(MYSQL *m, struct cf_buf *b, const MYSQL_FIELD *f, const char *v, unsigned long n)
{
	if (!v)
		return cf_buf_add(b, "NULL", 4);
	if (is_numeric(f->type))
		return cf_buf_add(b, v, n);
	/* charsetnr 63 is "binary": bytes that no character set conversion may
	 * touch.  Temporal fields also report it but are plain ASCII text. */
	if (f->type == MYSQL_TYPE_BIT || (f->charsetnr == 63 && !is_temporal(f->type)))
		return add_hex(b, v, n);
	return add_quoted(m, b, v, n);
}

/* The INSERT column list (cols) and the SELECT list (sel) of a table:
 * every column but generated ones.  FLOAT is selected as DOUBLE: the
 * server prints a FLOAT with 6 digits (1234567 as 1234570), a DOUBLE with
 * as many as it takes, and that text rounds back to the same FLOAT.  For a
 * system-versioned table (versioned) the row start and end columns are
 * added to both (their own names, or ROW_START and ROW_END when they are
 * implicit), so that its history loads under system_versioning_insert_history;
 * *history is cleared when the period is kept in transaction ids, which no
 * INSERT can set (current rows only then). */
static int column_list(struct cf_mariadb *db, const char *dbname, const char *table, bool versioned,
		       struct cf_buf *cols, struct cf_buf *sel, bool *history)
{
	struct cf_buf q = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	bool first = true, period = false;
	int r;

	*history = versioned;
	if ((r = cf_buf_adds(&q, "SELECT COLUMN_NAME, IS_GENERATED, DATA_TYPE, GENERATION_EXPRESSION "
				 "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ")) ||
	    (r = add_quoted(db->m, &q, dbname, strlen(dbname))) ||
	    (r = cf_buf_adds(&q, " AND TABLE_NAME = ")) ||
	    (r = add_quoted(db->m, &q, table, strlen(table))) ||
	    (r = cf_buf_adds(&q, " ORDER BY ORDINAL_POSITION")))
		goto out;
	if ((r = query_store(db, (char *)q.data, "list columns", &res)) != CF_OK)
		goto out;
	while ((row = mysql_fetch_row(res))) {
		bool generated = row[1] && !strcmp(row[1], "ALWAYS");
		/* A period column is "generated" as ROW START or ROW END. */
		bool period_col = versioned && generated && row[3] &&
				  (!strcasecmp(row[3], "ROW START") || !strcasecmp(row[3], "ROW END"));
		if (period_col) {
			period = true;
			if (row[2] && strcasecmp(row[2], "timestamp") != 0)
				*history = false;
		}
		if (generated && (!period_col || !*history))
			continue;
		if (!first && ((r = cf_buf_add(cols, ",", 1)) || (r = cf_buf_add(sel, ",", 1))))
			goto out;
		if ((r = add_ident(cols, row[0])) || (r = add_ident(sel, row[0])))
			goto out;
		if (row[2] && !strcasecmp(row[2], "float") && (r = cf_buf_adds(sel, "+0e0")))
			goto out;
		first = false;
	}
	if (*history && !period && cols->len &&
	    ((r = cf_buf_adds(cols, ",`ROW_START`,`ROW_END`")) || (r = cf_buf_adds(sel, ",ROW_START,ROW_END"))))
		goto out;
	if (versioned && !*history)
		cf_warn("mariadb: %s.%s: system versioning by transaction id: only its current rows are "
			"dumped, not its history", dbname, table);
	r = CF_OK;
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	return r;
}

/* The primary key's columns of a table, "," separated in key order, in
 * *pk (empty when it has none). */
static int primary_key(struct cf_mariadb *db, const char *dbname, const char *table, struct cf_buf *pk,
		       size_t *npk)
{
	struct cf_buf q = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	int r;

	*npk = 0;
	if ((r = cf_buf_adds(&q, "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ")) ||
	    (r = add_quoted(db->m, &q, dbname, strlen(dbname))) || (r = cf_buf_adds(&q, " AND TABLE_NAME = ")) ||
	    (r = add_quoted(db->m, &q, table, strlen(table))) ||
	    (r = cf_buf_adds(&q, " AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX")))
		goto out;
	if ((r = query_store(db, (char *)q.data, "read the primary key", &res)) != CF_OK)
		goto out;
	while ((row = mysql_fetch_row(res)))
		if ((r = cf_buf_add(pk, row[0], strlen(row[0]) + 1)) != CF_OK)
			goto out;
		else
			(*npk)++;
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	return r;
}

/* A row bigger than this much data is written in pieces (split_row). */
#define SPLIT_ROW (4u << 20)
/* Bytes of one column's data per piece: a piece's statement stays under
 * 2 * PIECE + a little, which loads into any server whose
 * max_allowed_packet is 8M or more (MariaDB's default is 16M). */
#define PIECE (2u << 20)

/* Can column i of the result be written in pieces: a string or BLOB (the
 * server has sent text in utf8mb4, binary as bytes)? */
static bool splittable(const MYSQL_FIELD *f)
{
	switch (f->type) {
	case MYSQL_TYPE_VAR_STRING: case MYSQL_TYPE_STRING: case MYSQL_TYPE_VARCHAR:
	case MYSQL_TYPE_BLOB: case MYSQL_TYPE_TINY_BLOB: case MYSQL_TYPE_MEDIUM_BLOB:
	case MYSQL_TYPE_LONG_BLOB:
		return true;
	default:
		return false;
	}
}

/* The WHERE clause naming one row by its primary key. */
static int add_where(MYSQL *m, struct cf_buf *b, const MYSQL_FIELD *fields, MYSQL_ROW row,
		     const unsigned long *len, const int *pki, size_t npk)
{
	int r;

	if ((r = cf_buf_adds(b, " WHERE ")))
		return r;
	for (size_t k = 0; k < npk; k++) {
		const MYSQL_FIELD *f = &fields[pki[k]];
		if ((k && (r = cf_buf_adds(b, " AND "))) || (r = add_ident(b, f->org_name)) ||
		    (r = cf_buf_adds(b, " = ")) || (r = add_value(m, b, f, row[pki[k]], len[pki[k]])))
			return r;
	}
	return CF_OK;
}

/* A row too big for one statement: an INSERT with its big string columns
 * empty, then "UPDATE t SET c = CONCAT(c, piece) WHERE <primary key>" for
 * each piece of PIECE bytes (text cut between UTF-8 characters, so each
 * piece is valid on its own).  Every statement fits a server whose
 * max_allowed_packet is 8M; the stock client loads it too. */
static int split_row(struct cf_mariadb *db, struct out *o, const char *table, const struct cf_buf *cols,
		     const MYSQL_FIELD *fields, unsigned nf, MYSQL_ROW row, const unsigned long *len,
		     const int *pki, size_t npk)
{
	int r;

	if ((r = cf_buf_adds(&o->b, "INSERT INTO ")) || (r = add_ident(&o->b, table)) ||
	    (r = cf_buf_adds(&o->b, " (")) || (r = cf_buf_add(&o->b, cols->data, cols->len)) ||
	    (r = cf_buf_adds(&o->b, ") VALUES\n(")))
		return r;
	for (unsigned i = 0; i < nf; i++) {
		bool big = row[i] && len[i] > PIECE && splittable(&fields[i]);
		if (i && (r = cf_buf_add(&o->b, ",", 1)))
			return r;
		if (big)
			r = cf_buf_adds(&o->b, fields[i].charsetnr == 63 ? "X''" : "''");
		else
			r = add_value(db->m, &o->b, &fields[i], row[i], len[i]);
		if (r)
			return r;
	}
	if ((r = cf_buf_adds(&o->b, ");\n")) || (r = out_flush(o)))
		return r;
	for (unsigned i = 0; i < nf; i++) {
		if (!row[i] || len[i] <= PIECE || !splittable(&fields[i]))
			continue;
		bool bin = fields[i].charsetnr == 63;
		for (unsigned long off = 0; off < len[i];) {
			unsigned long n = len[i] - off < PIECE ? len[i] - off : PIECE;
			/* never between the bytes of one UTF-8 character */
			while (!bin && off + n < len[i] && n > 1 && ((unsigned char)row[i][off + n] & 0xc0) == 0x80)
				n--;
			if ((r = cf_buf_adds(&o->b, "UPDATE ")) || (r = add_ident(&o->b, table)) ||
			    (r = cf_buf_adds(&o->b, " SET ")) || (r = add_ident(&o->b, fields[i].org_name)) ||
			    (r = cf_buf_adds(&o->b, " = CONCAT(")) || (r = add_ident(&o->b, fields[i].org_name)) ||
			    (r = cf_buf_adds(&o->b, ", ")) ||
			    (r = bin ? add_hex(&o->b, row[i] + off, n) : add_quoted(db->m, &o->b, row[i] + off, n)) ||
			    (r = cf_buf_adds(&o->b, ")")) || (r = add_where(db->m, &o->b, fields, row, len, pki, npk)) ||
			    (r = cf_buf_adds(&o->b, ";\n")) || (r = out_flush(o)))
				return r;
			off += n;
		}
	}
	return CF_OK;
}

/* Content-defined statement boundaries.  A statement ends after a row
 * whose key hashes below a threshold proportional to the row's own size:
 * statements average CF_MARIADB_STMT_AVG bytes whatever the row size, and
 * whether a row ends one depends on that row alone, so a change moves only
 * the boundaries of the rows it changes and every other statement comes out
 * byte for byte as before (the chunker then finds the same chunks).  The
 * key is the primary key's values, else the whole row's text. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ull;
	return h;
}

static bool stmt_ends_after(const struct out *o, size_t row_start, MYSQL_ROW row,
			    const unsigned long *len, const int *pki, size_t npk, uint64_t stmt_bytes)
{
	uint64_t h = 0xcbf29ce484222325ull, rowbytes = o->b.len - row_start;

	if (stmt_bytes >= CF_MARIADB_STMT_MAX || rowbytes >= CF_MARIADB_STMT_AVG)
		return true;
	if (npk) {
		for (size_t k = 0; k < npk; k++)
			h = fnv1a(row[pki[k]] ? fnv1a(h, row[pki[k]], len[pki[k]]) : h, "\0", 1);
	} else {
		h = fnv1a(h, o->b.data + row_start, rowbytes);
	}
	h ^= h >> 29;  /* FNV's low bits mix poorly */
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	/* P(end) = rowbytes / AVG, taken from the top 32 bits */
	return (h >> 32) < ((rowbytes << 32) / CF_MARIADB_STMT_AVG);
}

static int dump_rows(struct cf_mariadb *db, struct out *o, const char *dbname, const struct tbl *t)
{
	const char *table = t->name;
	struct cf_buf cols = CF_BUF_INIT, sel = CF_BUF_INIT, q = CF_BUF_INIT, pk = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	bool open_stmt = false, history;
	size_t npk = 0;
	int *pki = NULL;
	int r;

	if ((r = column_list(db, dbname, table, t->versioned, &cols, &sel, &history)) != CF_OK ||
	    (r = primary_key(db, dbname, table, &pk, &npk)) != CF_OK)
		goto out;
	if (!cols.len)
		goto out;
	if ((r = cf_buf_adds(&q, "SELECT ")) || (r = cf_buf_add(&q, sel.data, sel.len)) ||
	    (r = cf_buf_adds(&q, " FROM ")) || (r = add_ident(&q, table)) ||
	    (history && (r = cf_buf_adds(&q, " FOR SYSTEM_TIME ALL"))))
		goto out;
	/* As mariadb-dump --dump-history writes it: the setting exists from
	 * MariaDB 10.11 on, which alone can load the history. */
	if (history && (r = cf_buf_adds(&o->b, "/*M!101100 SET @@SESSION.system_versioning_insert_history = 1 */;\n")))
		goto out;
	if ((r = query(db, (char *)q.data, "select rows")) != CF_OK)
		goto out;
	if (!(res = mysql_use_result(db->m))) {
		r = db_err(db, "select rows");
		goto out;
	}
	unsigned nf = mysql_num_fields(res);
	const MYSQL_FIELD *fields = mysql_fetch_fields(res);
	/* The key that names a row for split_row(): each column found by its
	 * name in the result (an expression such as a FLOAT's has none). */
	if (npk && !(pki = calloc(npk, sizeof(*pki)))) {
		r = CF_ENOMEM;
		goto out;
	}
	const char *pkname = (const char *)pk.data;
	for (size_t k = 0; k < npk; k++, pkname += strlen(pkname) + 1) {
		pki[k] = -1;
		for (unsigned i = 0; i < nf; i++)
			if (fields[i].org_name && !strcmp(fields[i].org_name, pkname))
				pki[k] = (int)i;
		if (pki[k] < 0)
			npk = 0;
	}
	uint64_t stmt_bytes = 0, biggest = 0, nsplit = 0, nunsplit = 0;
	while ((row = mysql_fetch_row(res))) {
		const unsigned long *len = mysql_fetch_lengths(res);
		if (cf_interrupted) {
			r = cf_err(CF_EINTR, "mariadb: dump interrupted");
			goto out;
		}
		uint64_t data = 0;
		for (unsigned i = 0; i < nf; i++)
			data += len[i];
		if (data > SPLIT_ROW) {
			biggest = data > biggest ? data : biggest;
			/* A history row shares its key with the others of its row,
			 * and an UPDATE would add history: not split. */
			if (npk && !history) {
				if (open_stmt && (r = cf_buf_adds(&o->b, ";\n")))
					goto out;
				open_stmt = false;
				if ((r = split_row(db, o, table, &cols, fields, nf, row, len, pki, npk)))
					goto out;
				o->st->rows++;
				nsplit++;
				continue;
			}
			nunsplit++;
		}
		size_t before = o->b.len;
		if (!open_stmt) {
			if ((r = cf_buf_adds(&o->b, "INSERT INTO ")) || (r = add_ident(&o->b, table)) ||
			    (r = cf_buf_adds(&o->b, " (")) || (r = cf_buf_add(&o->b, cols.data, cols.len)) ||
			    (r = cf_buf_adds(&o->b, ") VALUES\n(")))
				goto out;
			open_stmt = true;
			stmt_bytes = 0;
		} else if ((r = cf_buf_adds(&o->b, ",\n(")) != CF_OK) {
			goto out;
		}
		for (unsigned i = 0; i < nf; i++) {
			if ((i && (r = cf_buf_add(&o->b, ",", 1))) ||
			    (r = add_value(db->m, &o->b, &fields[i], row[i], len[i])))
				goto out;
		}
		if ((r = cf_buf_add(&o->b, ")", 1)) != CF_OK)
			goto out;
		o->st->rows++;
		stmt_bytes += o->b.len - before;
		if (stmt_ends_after(o, before, row, len, pki, npk, stmt_bytes)) {
			if ((r = cf_buf_adds(&o->b, ";\n")) != CF_OK)
				goto out;
			open_stmt = false;
		}
		/* Flushing mid-statement is fine: the sink sees a byte stream. */
		if ((r = out_maybe_flush(o)) != CF_OK)
			goto out;
	}
	if (mysql_errno(db->m)) {
		r = db_err(db, "reading rows");
		goto out;
	}
	if (open_stmt && (r = cf_buf_adds(&o->b, ";\n")) != CF_OK)
		goto out;
	if (history && (r = cf_buf_adds(&o->b, "/*M!101100 SET @@SESSION.system_versioning_insert_history = 0 */;\n")))
		goto out;
	if (nunsplit)
		cf_warn("mariadb: %s.%s: %llu row%s of up to %llu bytes in one statement (%s): loading %s needs "
			"a max_allowed_packet above twice that", dbname, table, (unsigned long long)nunsplit,
			nunsplit == 1 ? "" : "s", (unsigned long long)biggest,
			history ? "history rows are not split" : "no primary key to split by",
			nunsplit == 1 ? "it" : "them");
	if (biggest && db->packet && 2 * biggest > db->packet)
		cf_warn("mariadb: %s.%s: a row of %llu bytes is larger than this server's max_allowed_packet "
			"(%llu) as SQL: %s", dbname, table, (unsigned long long)biggest, db->packet,
			nsplit ? "coffer writes such rows in pieces that load, but a copy made another way may not"
			       : "it may not load back");
	r = CF_OK;
out:
	if (res) {
		/* Freeing an unfinished mysql_use_result() reads the rest of the
		 * table; after a failure, cut the connection instead. */
		if (r != CF_OK) {
			mariadb_cancel(db->m);
			db->broken = true;
		}
		mysql_free_result(res);
	}
	cf_buf_release(&cols);
	cf_buf_release(&sel);
	cf_buf_release(&pk);
	free(pki);
	cf_buf_release(&q);
	return r;
}

/* SHOW CREATE TABLE qualifies sequences in DEFAULT NEXTVAL(`db`.`s`) even
 * inside their own database; drop "`db`." there so that a renamed restore
 * points at its own sequence.  Other qualified names (a foreign key into
 * another database) are real cross-database references and stay. */
static int unqualify_seq_calls(char *def, const char *dbname)
{
	static const char *const fns[] = { "nextval(", "lastval(", "setval(" };
	struct cf_buf pat = CF_BUF_INIT;
	int r;

	if ((r = add_ident(&pat, dbname)) || (r = cf_buf_add(&pat, ".", 1)))
		goto out;
	for (char *p = strstr(def, (char *)pat.data); p; p = strstr(p, (char *)pat.data)) {
		bool call = false;
		for (size_t i = 0; i < 3; i++) {
			size_t n = strlen(fns[i]);
			if ((size_t)(p - def) >= n && !strncasecmp(p - n, fns[i], n))
				call = true;
		}
		if (call)
			memmove(p, p + pat.len, strlen(p + pat.len) + 1);
		else
			p++;
	}
out:
	cf_buf_release(&pat);
	return r;
}

static int dump_table(struct cf_mariadb *db, struct out *o, const char *dbname, const struct tbl *t)
{
	char *def = NULL;
	int r;

	/* SHOW CREATE TABLE of a sequence loses its START, INCREMENT, CYCLE
	 * and cache options: SHOW CREATE SEQUENCE keeps them. */
	if ((r = show_create(db, t->kind == 'S' ? "SEQUENCE" : "TABLE", t->name, 1, &def, NULL, NULL)) != CF_OK ||
	    (r = unqualify_seq_calls(def, dbname)) != CF_OK)
		goto out;
	if ((r = cf_buf_adds(&o->b, "\n-- ")) || (r = cf_buf_adds(&o->b, t->kind == 'S' ? "Sequence " : "Table ")) ||
	    (r = add_comment_text(&o->b, t->name)) || (r = cf_buf_adds(&o->b, "\n\nDROP TABLE IF EXISTS ")) ||
	    (r = add_ident(&o->b, t->name)) || (r = cf_buf_adds(&o->b, ";\n")) ||
	    (r = cf_buf_adds(&o->b, def)) || (r = cf_buf_adds(&o->b, ";\n")))
		goto out;
	if (t->kind == 'S') {
		/* A sequence's state is one value: where it continues. */
		struct cf_buf q = CF_BUF_INIT;
		MYSQL_RES *res = NULL;
		MYSQL_ROW row;
		if (!(r = cf_buf_adds(&q, "SELECT next_not_cached_value, cycle_count FROM ")) &&
		    !(r = add_ident(&q, t->name)))
			r = query_store(db, (char *)q.data, "read sequence", &res);
		if (!r && (row = mysql_fetch_row(res)) && row[0]) {
			/* The round too, so that a CYCLE sequence keeps its count. */
			if (!(r = cf_buf_adds(&o->b, "SELECT SETVAL(")) && !(r = add_ident(&o->b, t->name)))
				r = cf_buf_addf(&o->b, ", %s, 0, %s);\n", row[0], row[1] ? row[1] : "0");
		}
		if (res)
			mysql_free_result(res);
		cf_buf_release(&q);
		o->st->objects++;
	} else {
		o->st->tables++;
		/* As mariadb-dump writes it: the table locked for its rows (one
		 * lock instead of one per statement) and a MyISAM/Aria table's
		 * non-unique indexes built once at the end.  Not for a table
		 * whose DEFAULT reads a sequence: LOCK TABLES would have to name
		 * that sequence too. */
		bool lock = !strcasestr(def, "nextval(");
		if (lock && ((r = cf_buf_adds(&o->b, "LOCK TABLES ")) || (r = add_ident(&o->b, t->name)) ||
			     (r = cf_buf_adds(&o->b, " WRITE;\nALTER TABLE ")) || (r = add_ident(&o->b, t->name)) ||
			     (r = cf_buf_adds(&o->b, " DISABLE KEYS;\n"))))
			goto out;
		r = dump_rows(db, o, dbname, t);
		if (!r && lock && ((r = cf_buf_adds(&o->b, "ALTER TABLE ")) || (r = add_ident(&o->b, t->name)) ||
				   (r = cf_buf_adds(&o->b, " ENABLE KEYS;\nUNLOCK TABLES;\n"))))
			goto out;
	}
	if (r == CF_OK)
		r = out_flush(o);
out:
	free(def);
	return r;
}

/* Emit a routine, trigger or event: its body holds ';', so it goes between
 * DELIMITER lines, under the sql_mode (and time zone) it was created with. */
static int dump_compound(struct cf_mariadb *db, struct out *o, const char *kind, const char *name)
{
	char *def = NULL, *mode = NULL, *tz = NULL;
	bool event = !strcmp(kind, "EVENT");
	int r;

	if ((r = show_create(db, kind, name, event ? 3 : 2, &def, &mode, event ? &tz : NULL)) != CF_OK)
		goto out;
	if ((r = cf_buf_addf(&o->b, "\nDROP %s IF EXISTS ", kind)) || (r = add_ident(&o->b, name)) ||
	    (r = cf_buf_adds(&o->b, ";\nSET SESSION sql_mode = ")) ||
	    (r = add_quoted(db->m, &o->b, mode, strlen(mode))) || (r = cf_buf_adds(&o->b, ";\n")))
		goto out;
	if (tz && ((r = cf_buf_adds(&o->b, "SET SESSION time_zone = ")) ||
		   (r = add_quoted(db->m, &o->b, tz, strlen(tz))) || (r = cf_buf_adds(&o->b, ";\n"))))
		goto out;
	if ((r = cf_buf_adds(&o->b, "DELIMITER ;;\n")) || (r = cf_buf_adds(&o->b, def)) ||
	    (r = cf_buf_adds(&o->b, " ;;\nDELIMITER ;\nSET SESSION sql_mode = '" LOAD_SQL_MODE "';\n")))
		goto out;
	if (tz && (r = cf_buf_adds(&o->b, "SET SESSION time_zone = '+00:00';\n")))
		goto out;
	o->st->objects++;
	r = out_flush(o);
out:
	free(def);
	free(mode);
	free(tz);
	return r;
}

static int dump_names(struct cf_mariadb *db, struct out *o, const char *dbname, const char *sql_head,
		      const char *sql_tail, const char *kind_col_match)
{
	struct cf_buf q = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	int r;

	if ((r = cf_buf_adds(&q, sql_head)) || (r = add_quoted(db->m, &q, dbname, strlen(dbname))) ||
	    (r = cf_buf_adds(&q, sql_tail)))
		goto out;
	if ((r = query_store(db, (char *)q.data, "list objects", &res)) != CF_OK)
		goto out;
	while ((row = mysql_fetch_row(res))) {
		const char *kind = kind_col_match ? kind_col_match : row[1];
		if (!kind || (strcmp(kind, "FUNCTION") && strcmp(kind, "PROCEDURE") &&
			      strcmp(kind, "TRIGGER") && strcmp(kind, "EVENT"))) {
			cf_warn("mariadb: %s: %s `%s` is not dumped (unsupported kind)", dbname,
				kind ? kind : "?", row[0]);
			continue;
		}
		if ((r = dump_compound(db, o, kind, row[0])) != CF_OK)
			goto out;
	}
	r = CF_OK;
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	return r;
}

/* Does a view's definition mention `name`?  A false positive (a column of
 * that name) only changes the order, never drops a view. */
static bool mentions(const char *def, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = strchr(def, '`'); p; p = strchr(p + 1, '`'))
		if (!strncmp(p + 1, name, n) && p[1 + n] == '`')
			return true;
	return false;
}

static int dump_views(struct cf_mariadb *db, struct out *o, struct tbl_list *l)
{
	size_t left = 0;
	int r;

	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].kind != 'V')
			continue;
		if ((r = show_create(db, "VIEW", l->v[i].name, 1, &l->v[i].def, NULL, NULL)) != CF_OK)
			return r;
		left++;
	}
	/* Views on views must come after what they read: emit any view whose
	 * view dependencies are out already; on a cycle, the first one left. */
	while (left) {
		size_t pick = l->n;
		for (size_t i = 0; i < l->n && pick == l->n; i++) {
			if (l->v[i].kind != 'V')
				continue;
			bool ready = true;
			for (size_t j = 0; j < l->n && ready; j++)
				if (j != i && l->v[j].kind == 'V' && mentions(l->v[i].def, l->v[j].name))
					ready = false;
			if (ready)
				pick = i;
		}
		if (pick == l->n)
			for (pick = 0; l->v[pick].kind != 'V'; pick++)
				;
		struct tbl *t = &l->v[pick];
		if ((r = cf_buf_adds(&o->b, "\n-- View ")) || (r = add_comment_text(&o->b, t->name)) ||
		    (r = cf_buf_adds(&o->b, "\n\nDROP VIEW IF EXISTS ")) || (r = add_ident(&o->b, t->name)) ||
		    (r = cf_buf_adds(&o->b, ";\n")) || (r = cf_buf_adds(&o->b, t->def)) ||
		    (r = cf_buf_adds(&o->b, ";\n")) || (r = out_flush(o)))
			return r;
		t->kind = 'v';  /* done */
		o->st->objects++;
		left--;
	}
	return CF_OK;
}

/* ---- accounts (--mariadb-users) ---- */

struct acct {
	char *user, *host;  /* host NULL for a role */
};

struct accts {
	struct acct *v;
	size_t n, cap;
};

static void accts_release(struct accts *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].user);
		free(a->v[i].host);
	}
	free(a->v);
}

static int accts_add(struct accts *a, const char *user, const char *host)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->v[i].user, user) && (host ? a->v[i].host && !strcmp(a->v[i].host, host) : !a->v[i].host))
			return CF_OK;
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 8;
		struct acct *v = realloc(a->v, cap * sizeof(*v));
		if (!v)
			return CF_ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	struct acct *x = &a->v[a->n];
	x->user = strdup(user);
	x->host = host ? strdup(host) : NULL;
	if (!x->user || (host && !x->host)) {
		free(x->user);
		free(x->host);
		return CF_ENOMEM;
	}
	a->n++;
	return CF_OK;
}

/* `user`@`host`, or `role`. */
static int add_acct(struct cf_buf *b, const struct acct *a)
{
	int r;

	if ((r = add_ident(b, a->user)))
		return r;
	if (a->host && ((r = cf_buf_add(b, "@", 1)) || (r = add_ident(b, a->host))))
		return r;
	return CF_OK;
}

/* The accounts and roles the database's objects name as DEFINER or that
 * hold grants on it, then the roles granted to those, transitively.  Roles
 * first (a GRANT of a role needs it made), each group by name. */
static int collect_accounts(struct cf_mariadb *db, const char *name, struct accts *a)
{
	struct cf_buf q = CF_BUF_INIT, n = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	int r;

	if ((r = add_quoted(db->m, &n, name, strlen(name))))
		goto out;
	const char *x = (const char *)n.data;
	if ((r = cf_buf_addf(&q,
			     "SELECT u.User, u.Host, u.is_role FROM mysql.user u WHERE (u.User, u.Host) IN ("
			     "SELECT User, Host FROM mysql.db WHERE Db = %s UNION "
			     "SELECT User, Host FROM mysql.tables_priv WHERE Db = %s UNION "
			     "SELECT User, Host FROM mysql.columns_priv WHERE Db = %s UNION "
			     "SELECT User, Host FROM mysql.procs_priv WHERE Db = %s) "
			     "OR CONVERT(IF(u.is_role = 'Y', u.User, CONCAT(u.User, '@', u.Host)) USING utf8mb4) "
			     "COLLATE utf8mb4_bin IN (SELECT CONVERT(d USING utf8mb4) COLLATE utf8mb4_bin FROM ("
			     "SELECT DEFINER d FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s UNION "
			     "SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s UNION "
			     "SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s UNION "
			     "SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s) defs) "
			     "ORDER BY u.is_role DESC, u.User, u.Host",
			     x, x, x, x, x, x, x, x)))
		goto out;
	if (mysql_real_query(db->m, (char *)q.data, q.len) || !(res = mysql_store_result(db->m))) {
		db->broken = true;
		r = cf_err(CF_EDB, "mariadb %s: --mariadb-users: reading the accounts of %s (needs SELECT on "
			   "the mysql database): %s", db->who, name, mysql_error(db->m));
		goto out;
	}
	while ((row = mysql_fetch_row(res)))
		if ((r = accts_add(a, row[0], row[2] && !strcmp(row[2], "Y") ? NULL : row[1])))
			goto out;
	mysql_free_result(res);
	res = NULL;
	/* The roles they were granted, and those roles' roles. */
	for (size_t i = 0; i < a->n; i++) {
		cf_buf_reset(&q);
		if ((r = cf_buf_adds(&q, "SELECT Role FROM mysql.roles_mapping WHERE User = ")) ||
		    (r = add_quoted(db->m, &q, a->v[i].user, strlen(a->v[i].user))) ||
		    (r = cf_buf_adds(&q, " AND Host = ")) ||
		    (r = add_quoted(db->m, &q, a->v[i].host ? a->v[i].host : "",
				    a->v[i].host ? strlen(a->v[i].host) : 0)) ||
		    (r = cf_buf_adds(&q, " ORDER BY Role")) ||
		    (r = query_store(db, (char *)q.data, "--mariadb-users: reading role grants", &res)))
			goto out;
		while ((row = mysql_fetch_row(res)))
			if ((r = accts_add(a, row[0], NULL)))
				goto out;
		mysql_free_result(res);
		res = NULL;
	}
	r = CF_OK;
out:
	if (res)
		mysql_free_result(res);
	cf_buf_release(&q);
	cf_buf_release(&n);
	return r;
}

/* One line of SHOW GRANTS, as the dump keeps it (or not at all): global
 * privileges without the IDENTIFIED and resource clauses (SHOW CREATE USER
 * has them; a GRANT with IDENTIFIED would set an existing account's
 * password), grants on this database, role grants and SET DEFAULT ROLE;
 * grants on other databases and PROXY grants are left out. */
static int add_grant_line(struct cf_buf *b, const char *line, const char *name, const struct acct *a)
{
	size_t len = strlen(line);
	const char *p, *e;
	int r;

	if (!strncasecmp(line, "SET DEFAULT ROLE", 16)) {
		if ((r = cf_buf_adds(b, line)) || (r = cf_buf_adds(b, ";\n")))
			return r;
		return CF_OK;
	}
	if (strncasecmp(line, "GRANT ", 6))
		return CF_OK;
	if (cf_mariadb_grant_global(line, len, &p, &e)) {
		bool with = strstr(e, " WITH GRANT OPTION") != NULL;
		if ((size_t)(e - p) == 5 && !strncasecmp(p, "USAGE", 5) && !with)
			return CF_OK;
		if ((r = cf_buf_adds(b, "GRANT ")) || (r = cf_buf_add(b, p, (size_t)(e - p))) ||
		    (r = cf_buf_adds(b, " ON *.* TO ")) || (r = add_acct(b, a)) ||
		    (with && (r = cf_buf_adds(b, " WITH GRANT OPTION"))) || (r = cf_buf_adds(b, ";\n")))
			return r;
		return CF_OK;
	}
	if ((p = cf_mariadb_grant_db(line, len, &e))) {
		if (!cf_mariadb_ident_eq(p, e, name))
			return CF_OK;
	} else if (strstr(line, " ON ")) {
		return CF_OK;  /* PROXY, or a shape this dump does not know */
	}
	if ((r = cf_buf_adds(b, line)) || (r = cf_buf_adds(b, ";\n")))
		return r;
	return CF_OK;
}

static int dump_accounts(struct cf_mariadb *db, struct out *o, const char *name)
{
	struct accts a = { NULL, 0, 0 };
	struct cf_buf q = CF_BUF_INIT, grants = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	int r;

	if ((r = collect_accounts(db, name, &a)) || !a.n)
		goto out;
	if ((r = cf_buf_adds(&o->b, "\n-- Accounts (--mariadb-users): made when missing, grants added; an existing "
				   "account's password is left alone\n")))
		goto out;
	for (size_t i = 0; i < a.n; i++) {
		const struct acct *x = &a.v[i];
		if (!x->host) {
			if ((r = cf_buf_adds(&o->b, "CREATE ROLE IF NOT EXISTS ")) || (r = add_acct(&o->b, x)) ||
			    (r = cf_buf_adds(&o->b, ";\n")))
				goto out;
		} else {
			cf_buf_reset(&q);
			if ((r = cf_buf_adds(&q, "SHOW CREATE USER ")) || (r = add_acct(&q, x)) ||
			    (r = query_store(db, (char *)q.data, "--mariadb-users: SHOW CREATE USER", &res)))
				goto out;
			if (!(row = mysql_fetch_row(res)) || !row[0] || strncasecmp(row[0], "CREATE USER ", 12)) {
				r = cf_err(CF_EDB, "mariadb %s: %s gave no CREATE USER", db->who, (char *)q.data);
				goto out;
			}
			if ((r = cf_buf_adds(&o->b, "CREATE USER IF NOT EXISTS ")) || (r = cf_buf_adds(&o->b, row[0] + 12)) ||
			    (r = cf_buf_adds(&o->b, ";\n")))
				goto out;
			mysql_free_result(res);
			res = NULL;
		}
		cf_buf_reset(&q);
		if ((r = cf_buf_adds(&q, "SHOW GRANTS FOR ")) || (r = add_acct(&q, x)) ||
		    (r = query_store(db, (char *)q.data, "--mariadb-users: SHOW GRANTS", &res)))
			goto out;
		while ((row = mysql_fetch_row(res)))
			if (row[0] && (r = add_grant_line(&grants, row[0], name, x)))
				goto out;
		mysql_free_result(res);
		res = NULL;
		o->st->objects++;
	}
	/* Grants after every CREATE: one may name a role made after it. */
	if (grants.len && (r = cf_buf_add(&o->b, grants.data, grants.len)))
		goto out;
	r = out_flush(o);
out:
	if (res)
		mysql_free_result(res);
	accts_release(&a);
	cf_buf_release(&q);
	cf_buf_release(&grants);
	return r;
}

static int write_header(struct cf_mariadb *db, struct out *o, const char *name, MYSQL_ROW schema)
{
	int r;

	if ((r = cf_buf_adds(&o->b, "-- coffer dump of MariaDB database ")) || (r = add_comment_text(&o->b, name)) ||
	    (r = cf_buf_adds(&o->b, "\n-- server ")) || (r = add_comment_text(&o->b, db->version)) ||
	    (r = cf_buf_adds(&o->b, ", consistent snapshot at ")) || (r = add_comment_text(&o->b, db->snap_time)) ||
	    (r = cf_buf_adds(&o->b, " UTC")))
		return r;
	if (db->gtid[0] && ((r = cf_buf_adds(&o->b, ", gtid_binlog_pos ")) ||
			    (r = add_comment_text(&o->b, db->gtid))))
		return r;
	if ((r = cf_buf_adds(&o->b,
			     "\n-- Load with `coffer restore ... --mariadb URL` or `mariadb < this-file`.\n\n"
			     "SET NAMES utf8mb4;\n"
			     "SET @cf_old_fk = @@SESSION.foreign_key_checks, @cf_old_uc = @@SESSION.unique_checks, "
			     "@cf_old_sql_mode = @@SESSION.sql_mode, "
			     "@cf_old_tz = @@SESSION.time_zone;\n"
			     "SET SESSION foreign_key_checks = 0, unique_checks = 0;\n"
			     "SET SESSION sql_mode = '" LOAD_SQL_MODE "';\n"
			     "SET SESSION time_zone = '+00:00';\n\n"
			     "CREATE DATABASE IF NOT EXISTS ")) ||
	    (r = add_ident(&o->b, name)))
		return r;
	if (schema[0] && ((r = cf_buf_adds(&o->b, " CHARACTER SET ")) || (r = cf_buf_adds(&o->b, schema[0]))))
		return r;
	if (schema[1] && ((r = cf_buf_adds(&o->b, " COLLATE ")) || (r = cf_buf_adds(&o->b, schema[1]))))
		return r;
	if ((r = cf_buf_adds(&o->b, ";\nUSE ")) || (r = add_ident(&o->b, name)) || (r = cf_buf_adds(&o->b, ";\n")))
		return r;
	return out_flush(o);
}

int cf_mariadb_dump_db(struct cf_mariadb *db, const char *name, cf_sink_fn sink, void *ctx,
		       struct cf_mariadb_stats *stats)
{
	struct cf_mariadb_stats st_local;
	struct out o = { sink, ctx, CF_BUF_INIT, stats ? stats : &st_local };
	struct tbl_list tl = { NULL, 0 };
	struct cf_buf q = CF_BUF_INIT, warn = CF_BUF_INIT;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	int r;

	memset(o.st, 0, sizeof(*o.st));
	if (!db->in_snapshot)
		return cf_err(CF_EINVAL, "mariadb: cf_mariadb_dump_db() before cf_mariadb_begin_snapshot()");
	if (db->broken)
		return cf_err(CF_EDB, "mariadb %s: connection unusable after an earlier error", db->who);
	if ((r = check_db_exists(db, name)) != CF_OK)
		goto out;
	if ((r = cf_buf_adds(&q, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
				 "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ")) ||
	    (r = add_quoted(db->m, &q, name, strlen(name))))
		goto out;
	if ((r = query_store(db, (char *)q.data, "read database", &res)) != CF_OK)
		goto out;
	if (!(row = mysql_fetch_row(res))) {
		r = cf_err(CF_ENOENT, "mariadb %s: unknown database '%s'", db->who, name);
		goto out;
	}
	/* SHOW CREATE VIEW leaves names of the current database unqualified,
	 * which is what lets the loader rename a database. */
	if (mysql_select_db(db->m, name)) {
		r = db_err(db, "USE database");
		goto out;
	}
	if ((r = write_header(db, &o, name, row)) != CF_OK)
		goto out;
	if ((r = list_tables(db, name, &tl)) != CF_OK)
		goto out;
	for (size_t i = 0; i < tl.n; i++) {
		if (!tl.v[i].nontx)
			continue;
		if ((warn.len && (r = cf_buf_adds(&warn, ", "))) || (r = cf_buf_adds(&warn, tl.v[i].name)))
			goto out;
		o.st->nontx_tables++;
	}
	if (warn.len)
		cf_warn("mariadb: database %s: tables without transactions, dumped as they are when read "
			"(not part of the consistent snapshot): %s", name, (char *)warn.data);
	/* Sequences first: a table's DEFAULT NEXTVAL(s) needs s to exist. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < tl.n; i++)
			if (tl.v[i].kind == (pass ? 'T' : 'S') && (r = dump_table(db, &o, name, &tl.v[i])) != CF_OK)
				goto out;
	if ((r = dump_names(db, &o, name,
			    "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ",
			    " ORDER BY ROUTINE_TYPE, ROUTINE_NAME", NULL)) != CF_OK)
		goto out;
	if ((r = dump_views(db, &o, &tl)) != CF_OK)
		goto out;
	if ((r = dump_names(db, &o, name,
			    "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ",
			    " ORDER BY EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER",
			    "TRIGGER")) != CF_OK)
		goto out;
	if ((r = dump_names(db, &o, name,
			    "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ",
			    " ORDER BY EVENT_NAME", "EVENT")) != CF_OK)
		goto out;
	if (db->users && (r = dump_accounts(db, &o, name)) != CF_OK)
		goto out;
	if ((r = cf_buf_adds(&o.b, "\nSET SESSION foreign_key_checks = @cf_old_fk, unique_checks = @cf_old_uc, sql_mode = @cf_old_sql_mode, "
				   "time_zone = @cf_old_tz;\n-- coffer dump complete\n")) ||
	    (r = out_flush(&o)))
		goto out;
	r = CF_OK;
out:
	if (res)
		mysql_free_result(res);
	tbl_list_release(&tl);
	cf_buf_release(&q);
	cf_buf_release(&warn);
	cf_buf_release(&o.b);
	return r;
}
