/* mariadb_grant.c - see mariadb_grant.h. */
#include "sources/mariadb_grant.h"

#include <string.h>
#include <strings.h>

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Offset of the keyword kw as a whole word outside quotes and parentheses,
 * at or after from, or len. */
static size_t find_kw(const char *s, size_t len, size_t from, const char *kw)
{
	size_t n = strlen(kw), depth = 0;
	char q = 0;

	for (size_t i = from; i < len; i++) {
		char c = s[i];
		if (q) {
			if (c == q)
				q = 0;
			else if (c == '\\' && q != '`' && i + 1 < len)
				i++;
			continue;
		}
		if (c == '`' || c == '\'' || c == '"')
			q = c;
		else if (c == '(')
			depth++;
		else if (c == ')' && depth)
			depth--;
		else if (!depth && (i == 0 || blank(s[i - 1])) && len - i >= n && !strncasecmp(s + i, kw, n) &&
			 (i + n == len || blank(s[i + n])))
			return i;
	}
	return len;
}

static size_t skip_blanks(const char *s, size_t len, size_t i)
{
	while (i < len && blank(s[i]))
		i++;
	return i;
}

static bool word_at(const char *s, size_t len, size_t i, const char *kw)
{
	size_t n = strlen(kw);
	return len - i > n && !strncasecmp(s + i, kw, n) && blank(s[i + n]);
}

/* The ON keyword's offset in a GRANT that has one before TO, or len. */
static size_t grant_on(const char *s, size_t len)
{
	size_t i = skip_blanks(s, len, 0);

	if (!word_at(s, len, i, "GRANT") || word_at(s, len, skip_blanks(s, len, i + 5), "PROXY"))
		return len;
	size_t on = find_kw(s, len, i + 5, "ON"), to = find_kw(s, len, i + 5, "TO");
	return on < to ? on : len;
}

/* End of the identifier at i, or i when there is none. */
static size_t ident_end(const char *s, size_t len, size_t i)
{
	if (i < len && s[i] == '`') {
		for (size_t k = i + 1; k < len; k++) {
			if (s[k] != '`')
				continue;
			if (k + 1 < len && s[k + 1] == '`')
				k++;
			else
				return k + 1;
		}
		return i;
	}
	size_t k = i;
	while (k < len && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') ||
			   (s[k] >= '0' && s[k] <= '9') || s[k] == '_' || s[k] == '$' ||
			   (unsigned char)s[k] >= 0x80))
		k++;
	return k;
}

const char *cf_mariadb_grant_db(const char *stmt, size_t len, const char **end)
{
	size_t on = grant_on(stmt, len), i;

	*end = NULL;
	if (on == len)
		return NULL;
	i = skip_blanks(stmt, len, on + 2);
	static const char *const kinds[] = { "FUNCTION", "PROCEDURE", "PACKAGE" };
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (word_at(stmt, len, i, kinds[k])) {
			i = skip_blanks(stmt, len, i + strlen(kinds[k]));
			if (k == 2 && word_at(stmt, len, i, "BODY"))
				i = skip_blanks(stmt, len, i + 4);
			break;
		}
	size_t e = ident_end(stmt, len, i);
	if (e == i || e >= len || stmt[e] != '.')
		return NULL;
	*end = stmt + e;
	return stmt + i;
}

bool cf_mariadb_grant_global(const char *stmt, size_t len, const char **privs, const char **privs_end)
{
	size_t on = grant_on(stmt, len), i;

	if (on == len)
		return false;
	i = skip_blanks(stmt, len, on + 2);
	if (len - i < 3 || memcmp(stmt + i, "*.*", 3))
		return false;
	*privs = stmt + skip_blanks(stmt, len, skip_blanks(stmt, len, 0) + 5);
	size_t pe = on;
	while (pe > 0 && blank(stmt[pe - 1]))
		pe--;
	*privs_end = stmt + pe;
	return *privs_end > *privs;
}

bool cf_mariadb_ident_eq(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);

	if (p < end && *p == '`') {
		const char *q = p + 1;
		size_t k = 0;
		while (q < end - 1) {
			if (*q == '`')
				q++;  /* the second of `` */
			if (k >= n || *q != name[k])
				return false;
			q++;
			k++;
		}
		return k == n && end - p >= 2 && end[-1] == '`';
	}
	return (size_t)(end - p) == n && !memcmp(p, name, n);
}
