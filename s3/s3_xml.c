/* s3_xml.c - the S3 XML documents coffer reads, parsed with expat, and the
 * one it writes (a DeleteObjects request).  See s3_int.h.
 *
 * The documents are shallow: ListBucketResult/Contents/{Key,Size,LastModified},
 * DeleteResult/Error/{Key,Code,Message} and Error/{Code,Message,...}.  The parser keeps the element names of the first
 * three levels and the text of the current leaf, and ignores everything else,
 * so unknown elements from newer or other stores do no harm. */
#include "s3/s3_int.h"
#include "common/error.h"

#include <expat.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEPTH 3
#define MAX_TEXT (64 * 1024) /* keys are at most 1 KiB; anything this long is garbage */

struct xml_state {
	XML_Parser parser;
	int depth;
	char names[MAX_DEPTH + 1][48];
	struct cf_buf text;
	int r;              /* first failure, or the callback's stop value */
	bool root_ok;
	const char *root;   /* expected document element */
	/* listing */
	cf_s3_list_item_fn fn;
	cf_s3_list_mtime_fn mfn;  /* instead of fn: with LastModified */
	void *ctx;
	struct cf_s3_list_page *page;
	char *key;
	uint64_t size;
	bool have_size;
	int64_t mtime_ns;   /* LastModified, -1 when absent or unreadable */
	/* error */
	struct cf_s3_error *err;
	/* delete result */
	cf_s3_delete_error_fn del_fn;
	char *code, *message;
};

static void fail(struct xml_state *s, int r)
{
	if (!s->r)
		s->r = r;
	XML_StopParser(s->parser, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct xml_state *s = ud;
	(void)attrs;
	s->depth++;
	if (s->depth == 1 && !strcmp(name, s->root))
		s->root_ok = true;
	if (s->depth <= MAX_DEPTH)
		snprintf(s->names[s->depth], sizeof(s->names[0]), "%s", name);
	cf_buf_reset(&s->text);
	if (s->depth == 2 && (!strcmp(name, "Contents") || !strcmp(name, "Error"))) {
		free(s->key);
		free(s->code);
		free(s->message);
		s->key = s->code = s->message = NULL;
		s->have_size = false;
		s->mtime_ns = -1;
	}
}

static void XMLCALL on_text(void *ud, const XML_Char *t, int len)
{
	struct xml_state *s = ud;
	if (s->depth < 2 || s->depth > MAX_DEPTH)
		return;
	if (s->text.len + (size_t)len > MAX_TEXT) {
		fail(s, cf_err(CF_ECORRUPT, "S3 answer: element <%s> too long", s->names[s->depth]));
		return;
	}
	if (cf_buf_add(&s->text, t, (size_t)len))
		fail(s, CF_ENOMEM);
}

static const char *text(struct xml_state *s)
{
	return s->text.data ? (const char *)s->text.data : "";
}

static int dup_text(struct xml_state *s, char **out)
{
	free(*out);
	*out = strdup(text(s));
	return *out ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}

static int parse_u64(const char *t, uint64_t *v)
{
	uint64_t x = 0;
	if (!*t)
		return CF_ECORRUPT;
	for (; *t; t++) {
		uint64_t d = (uint64_t)(*t - '0');
		if (*t < '0' || *t > '9' || x > (UINT64_MAX - d) / 10)
			return CF_ECORRUPT;
		x = x * 10 + d;
	}
	*v = x;
	return CF_OK;
}

/* LastModified: "2026-12-07T08:03:23.000Z" (ISO 8601, UTC); -1 if not that */
static int64_t parse_mtime(const char *t)
{
	struct tm tm;
	int n = 0;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &n) != 6 || tm.tm_mon < 1 || tm.tm_mon > 12)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	int64_t frac = 0, scale = 1000000000;
	t += n;
	if (*t == '.')
		for (t++; *t >= '0' && *t <= '9'; t++)
			if (scale > 1) {
				scale /= 10;
				frac += (*t - '0') * scale;
			}
	if (strcmp(t, "Z"))
		return -1;
	time_t sec = timegm(&tm);
	/* beyond 2262 the nanoseconds do not fit: not a time a store can mean */
	if (sec < 0 || (int64_t)sec > INT64_MAX / 1000000000LL - 1)
		return -1;
	return (int64_t)sec * 1000000000LL + frac;
}

static void list_end(struct xml_state *s, const char *name)
{
	int r = CF_OK;
	if (s->depth == 2 && !strcmp(name, "IsTruncated")) {
		s->page->truncated = !strcmp(text(s), "true");
	} else if (s->depth == 2 && !strcmp(name, "NextContinuationToken")) {
		r = dup_text(s, &s->page->next_token);
	} else if (s->depth == 3 && !strcmp(s->names[2], "Contents")) {
		if (!strcmp(name, "Key"))
			r = dup_text(s, &s->key);
		else if (!strcmp(name, "Size")) {
			if (parse_u64(text(s), &s->size))
				r = cf_err(CF_ECORRUPT, "S3 listing: bad object size \"%.40s\"", text(s));
			s->have_size = true;
		} else if (!strcmp(name, "LastModified")) {
			s->mtime_ns = parse_mtime(text(s));
		}
	} else if (s->depth == 2 && !strcmp(name, "Contents")) {
		if (!s->key || !s->have_size)
			r = cf_err(CF_ECORRUPT, "S3 listing: an entry without Key or Size");
		else if (s->mfn)
			r = s->mfn(s->key, s->size, s->mtime_ns, s->ctx);
		else
			r = s->fn(s->key, s->size, s->ctx);
	}
	if (r)
		fail(s, r);
}

static void delete_end(struct xml_state *s, const char *name)
{
	int r = CF_OK;
	if (s->depth == 3 && !strcmp(s->names[2], "Error")) {
		if (!strcmp(name, "Key"))
			r = dup_text(s, &s->key);
		else if (!strcmp(name, "Code"))
			r = dup_text(s, &s->code);
		else if (!strcmp(name, "Message"))
			r = dup_text(s, &s->message);
	} else if (s->depth == 2 && !strcmp(name, "Error")) {
		if (!s->key)
			r = cf_err(CF_ECORRUPT, "S3 delete result: an Error without a Key");
		else
			r = s->del_fn(s->key, s->code ? s->code : "", s->message ? s->message : "", s->ctx);
	}
	if (r)
		fail(s, r);
}

static void error_end(struct xml_state *s, const char *name)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
		{ "Code", offsetof(struct cf_s3_error, code) },
		{ "Message", offsetof(struct cf_s3_error, message) },
		{ "Region", offsetof(struct cf_s3_error, region) },
		{ "RequestTime", offsetof(struct cf_s3_error, request_time) },
		{ "ServerTime", offsetof(struct cf_s3_error, server_time) },
		{ "MaxAllowedSkewMilliseconds", offsetof(struct cf_s3_error, max_skew_ms) },
	};
	if (s->depth != 2)
		return;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (!strcmp(name, fields[i].name)) {
			if (dup_text(s, (char **)((char *)s->err + fields[i].off)))
				fail(s, CF_ENOMEM);
			return;
		}
	}
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xml_state *s = ud;
	if (s->root_ok && !s->r) {
		if (s->fn || s->mfn)
			list_end(s, name);
		else if (s->del_fn)
			delete_end(s, name);
		else
			error_end(s, name);
	}
	cf_buf_reset(&s->text);
	s->depth--;
}

static int run(struct xml_state *s, const char *xml, size_t len, const char *what)
{
	s->parser = XML_ParserCreate(NULL);
	if (!s->parser)
		return cf_err(CF_ENOMEM, "out of memory");
	XML_SetUserData(s->parser, s);
	XML_SetElementHandler(s->parser, on_start, on_end);
	XML_SetCharacterDataHandler(s->parser, on_text);
	int r = CF_OK;
	if (len > (size_t)INT32_MAX) {
		r = cf_err(CF_ECORRUPT, "S3 %s too large", what);
	} else if (XML_Parse(s->parser, xml, (int)len, XML_TRUE) != XML_STATUS_OK) {
		r = s->r ? s->r
			 : cf_err(CF_ECORRUPT, "S3 %s is not valid XML (line %lu: %s)", what,
				  (unsigned long)XML_GetCurrentLineNumber(s->parser),
				  XML_ErrorString(XML_GetErrorCode(s->parser)));
	} else if (s->r) {
		r = s->r;
	} else if (!s->root_ok) {
		r = cf_err(CF_ECORRUPT, "S3 %s: no <%s> element", what, s->root);
	}
	XML_ParserFree(s->parser);
	cf_buf_release(&s->text);
	return r;
}

static int list_parse(const char *xml, size_t len, cf_s3_list_item_fn fn, cf_s3_list_mtime_fn mfn,
		      void *ctx, struct cf_s3_list_page *page)
{
	struct xml_state s = { .root = "ListBucketResult", .fn = fn, .mfn = mfn, .ctx = ctx, .page = page };
	page->truncated = false;
	page->next_token = NULL;
	int r = run(&s, xml, len, "listing");
	free(s.key);
	if (!r && page->truncated && (!page->next_token || !*page->next_token))
		r = cf_err(CF_ECORRUPT, "S3 listing is truncated but has no NextContinuationToken");
	if (r) {
		free(page->next_token);
		page->next_token = NULL;
	}
	return r;
}

int cf_s3_list_parse(const char *xml, size_t len, cf_s3_list_item_fn fn, void *ctx,
		     struct cf_s3_list_page *page)
{
	return list_parse(xml, len, fn, NULL, ctx, page);
}

int cf_s3_list_parse_mtime(const char *xml, size_t len, cf_s3_list_mtime_fn fn, void *ctx,
			   struct cf_s3_list_page *page)
{
	return list_parse(xml, len, NULL, fn, ctx, page);
}

int cf_s3_delete_parse(const char *xml, size_t len, cf_s3_delete_error_fn fn, void *ctx)
{
	struct xml_state s = { .root = "DeleteResult", .del_fn = fn, .ctx = ctx };
	int r = run(&s, xml, len, "delete result");
	free(s.key);
	free(s.code);
	free(s.message);
	return r;
}

int cf_s3_delete_body(struct cf_buf *out, const char *const *keys, size_t n)
{
	int r = cf_buf_adds(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
				 "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
	for (size_t i = 0; i < n && !r; i++) {
		if ((r = cf_buf_adds(out, "<Object><Key>")))
			break;
		for (const unsigned char *k = (const unsigned char *)keys[i]; *k && !r; k++) {
			switch (*k) {
			case '&': r = cf_buf_adds(out, "&amp;"); break;
			case '<': r = cf_buf_adds(out, "&lt;"); break;
			case '>': r = cf_buf_adds(out, "&gt;"); break;
			case '"': r = cf_buf_adds(out, "&quot;"); break;
			case '\'': r = cf_buf_adds(out, "&apos;"); break;
			case '\r': r = cf_buf_adds(out, "&#13;"); break; /* else read back as \n */
			default:
				if (*k < 0x20 && *k != '\t' && *k != '\n')
					return cf_err(CF_EINVAL, "S3 DeleteObjects: key \"%s\" has a control character",
						      keys[i]);
				r = cf_buf_add(out, k, 1);
			}
		}
		if (!r)
			r = cf_buf_adds(out, "</Key></Object>");
	}
	if (!r)
		r = cf_buf_adds(out, "</Delete>");
	return r;
}

int cf_s3_error_parse(const char *xml, size_t len, struct cf_s3_error *err)
{
	memset(err, 0, sizeof(*err));
	struct xml_state s = { .root = "Error", .err = err };
	int r = run(&s, xml, len, "error document");
	if (r)
		cf_s3_error_release(err);
	return r;
}

void cf_s3_error_release(struct cf_s3_error *err)
{
	free(err->code);
	free(err->message);
	free(err->region);
	free(err->request_time);
	free(err->server_time);
	free(err->max_skew_ms);
	memset(err, 0, sizeof(*err));
}
