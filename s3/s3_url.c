/* s3_url.c - S3 repository locations.  See s3_int.h. */
#include "s3/s3_int.h"
#include "common/error.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

void cf_s3_loc_release(struct cf_s3_loc *loc)
{
	free(loc->scheme);
	free(loc->host);
	free(loc->bucket);
	free(loc->prefix);
	memset(loc, 0, sizeof(*loc));
}

/* Bucket names: S3's rules are stricter (3-63 lowercase characters), but
 * Swift and MinIO accept more, so only what would break a URL path or a host
 * name is refused here; the store judges the rest. */
static int check_bucket(const char *b, const char *url)
{
	size_t n = strlen(b);
	if (n == 0)
		return cf_err(CF_EINVAL, "S3 location %s names no bucket", url);
	if (n > 255)
		return cf_err(CF_EINVAL, "S3 location %s: bucket name too long", url);
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return cf_err(CF_EINVAL, "S3 location %s: bad character in bucket name \"%s\"",
				      url, b);
	}
	return CF_OK;
}

/* Split "bucket[/prefix...]" (leading slashes already gone) into loc.  The
 * prefix loses surrounding slashes; empty, "." and ".." segments are refused
 * because stores and proxies treat them inconsistently. */
static int split_path(const char *p, const char *url, struct cf_s3_loc *loc)
{
	const char *slash = strchr(p, '/');
	size_t bl = slash ? (size_t)(slash - p) : strlen(p);
	loc->bucket = strndup(p, bl);
	if (!loc->bucket)
		return cf_err(CF_ENOMEM, "out of memory");
	int r = check_bucket(loc->bucket, url);
	if (r)
		return r;
	const char *pre = slash ? slash + 1 : "";
	size_t pl = strlen(pre);
	while (pl && pre[pl - 1] == '/')
		pl--;
	loc->prefix = strndup(pre, pl);
	if (!loc->prefix)
		return cf_err(CF_ENOMEM, "out of memory");
	for (const char *s = loc->prefix; *s;) {
		const char *e = strchr(s, '/');
		size_t sl = e ? (size_t)(e - s) : strlen(s);
		if (sl == 0 || (sl == 1 && s[0] == '.') || (sl == 2 && s[0] == '.' && s[1] == '.'))
			return cf_err(CF_EINVAL, "S3 location %s: empty, \".\" or \"..\" in the prefix", url);
		s += sl + (e ? 1 : 0);
	}
	return CF_OK;
}

static int parse_endpoint(const char *url, struct cf_s3_loc *loc)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *query = NULL,
	     *frag = NULL;
	int r = CF_OK;
	if (!u)
		return cf_err(CF_ENOMEM, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_PATH_AS_IS) != CURLUE_OK) {
		r = cf_err(CF_EINVAL, "S3 location s3:%s is not a URL (want s3:http://HOST:PORT/BUCKET[/PREFIX])",
			   url);
		goto out;
	}
	curl_url_get(u, CURLUPART_USER, &user, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
	if (user) {
		/* Credentials come from the environment only, never from a
		 * location that ends up in logs and process listings. */
		r = cf_err(CF_EINVAL, "S3 location must not contain credentials; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
		goto out;
	}
	if (query || frag) {
		r = cf_err(CF_EINVAL, "S3 location s3:%s: no query or fragment allowed", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK) {
		r = cf_err(CF_EINVAL, "S3 location s3:%s: cannot read scheme, host and path", url);
		goto out;
	}
	if (strcmp(scheme, "http") && strcmp(scheme, "https")) {
		r = cf_err(CF_EINVAL, "S3 location s3:%s: scheme must be http or https", url);
		goto out;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	loc->scheme = strdup(scheme);
	size_t hl = strlen(host) + (port ? strlen(port) + 1 : 0) + 1;
	loc->host = malloc(hl);
	if (!loc->scheme || !loc->host) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(loc->host, hl, "%s%s%s", host, port ? ":" : "", port ? port : "");
	const char *p = path;
	while (*p == '/')
		p++;
	r = split_path(p, url, loc);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(user);
	curl_free(query);
	curl_free(frag);
	curl_url_cleanup(u);
	return r;
}

int cf_s3_loc_parse(const char *url, struct cf_s3_loc *loc)
{
	memset(loc, 0, sizeof(*loc));
	if (!url)
		return cf_err(CF_EINVAL, "no S3 location");
	if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
		return parse_endpoint(url, loc);
	if (!strncmp(url, "//", 2)) {
		loc->virtual_hosted = true;
		loc->scheme = strdup("https");
		if (!loc->scheme)
			return cf_err(CF_ENOMEM, "out of memory");
		int r = split_path(url + 2, url, loc);
		if (r)
			return r;
		/* A dotted bucket name would not match the *.s3 TLS certificate. */
		if (strchr(loc->bucket, '.') || strchr(loc->bucket, '_'))
			return cf_err(CF_EINVAL, "S3 location s3:%s: bucket \"%s\" cannot be used virtual-hosted "
					      "(dots or underscores); use s3:https://s3.REGION.amazonaws.com/%s",
				      url, loc->bucket, loc->bucket);
		return CF_OK;
	}
	return cf_err(CF_EINVAL, "S3 location s3:%s: want s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] or s3://BUCKET[/PREFIX]",
		      url);
}

int cf_s3_loc_key(const struct cf_s3_loc *loc, const char *path, struct cf_buf *out)
{
	if (loc->prefix && *loc->prefix)
		return cf_buf_addf(out, "%s/%s", loc->prefix, path);
	return cf_buf_adds(out, path);
}
