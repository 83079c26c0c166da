/*
 * docker.c - the few Docker Engine API calls the agent needs, over a unix
 * socket with libcurl (CURLOPT_UNIX_SOCKET_PATH); answers parsed with jansson.
 */
#include "agent/docker.h"
#include "common/buf.h"
#include "common/array.h"
#include "common/error.h"
#include "common/util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define API "http://localhost/v1.41"

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
	return cf_buf_add(ctx, p, size * n) == CF_OK ? size * n : 0;
}

static void curl_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One request; the answer's status into *status and body into out. */
static int request(const char *sock, const char *method, const char *path, long timeout,
		   long *status, struct cf_buf *out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct cf_buf url = CF_BUF_INIT;
	CURL *curl;
	int r;

	pthread_once(&once, curl_once);
	cf_buf_reset(out);
	if (!(curl = curl_easy_init()))
		return cf_err(CF_ENOMEM, "out of memory (curl)");
	if ((r = cf_buf_addf(&url, "%s%s", API, path)) != CF_OK)
		goto out;
	curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(curl, CURLOPT_URL, (char *)url.data);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "POST")) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout);
	CURLcode cc = curl_easy_perform(curl);
	if (cc != CURLE_OK) {
		r = cf_err(CF_EIO, "Docker API at %s: %s %s: %s", sock, method, path,
			   errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
out:
	cf_buf_release(&url);
	curl_easy_cleanup(curl);
	return r;
}

/* The engine's own message ({"message": "..."}) or the raw text. */
static int api_error(const char *sock, const char *what, long status, const struct cf_buf *body)
{
	json_t *j = body->len ? json_loadb((const char *)body->data, body->len, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(j, "message"));
	int r = cf_err(CF_EIO, "Docker API at %s: %s: HTTP %ld: %.200s", sock, what, status,
		       m ? m : body->len ? (const char *)body->data : "(no message)");
	json_decref(j);
	return r;
}

static int set_add(struct cf_docker_set *set, const char *id, const char *name)
{
	int rc;
	if ((rc = CF_GROW(set->ids, set->n + 1, set->idcap)) ||
	    (rc = CF_GROW(set->names, set->n + 1, set->namecap)))
		return rc;
	char **ids = set->ids, **names = set->names;
	ids[set->n] = strdup(id);
	names[set->n] = strdup(name);
	if (!ids[set->n] || !names[set->n]) {
		free(ids[set->n]);
		free(names[set->n]);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	set->n++;
	return CF_OK;
}

int cf_docker_stop_labelled(const char *sock, const char *label, unsigned timeout,
			    struct cf_docker_set *set)
{
	struct cf_buf body = CF_BUF_INIT, path = CF_BUF_INIT;
	json_t *filter = NULL, *list = NULL;
	char *ffilter = NULL, *enc = NULL;
	long status = 0;
	int r;

	/* running containers only (no all=1): a stopped one stays stopped */
	if (!(filter = json_pack("{s:[s]}", "label", label)) ||
	    !(ffilter = json_dumps(filter, JSON_COMPACT)) ||
	    !(enc = curl_easy_escape(NULL, ffilter, 0))) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = cf_buf_addf(&path, "/containers/json?filters=%s", enc)) != CF_OK ||
	    (r = request(sock, "GET", (char *)path.data, 30, &status, &body)) != CF_OK)
		goto out;
	if (status != 200) {
		r = api_error(sock, "listing containers", status, &body);
		goto out;
	}
	json_error_t je;
	if (!(list = json_loadb((const char *)body.data, body.len, 0, &je)) || !json_is_array(list)) {
		r = cf_err(CF_ECORRUPT, "Docker API at %s: the container list does not parse: %s", sock,
			   list ? "not an array" : je.text);
		goto out;
	}
	size_t i;
	json_t *c;
	json_array_foreach(list, i, c) {
		const char *id = json_string_value(json_object_get(c, "Id"));
		const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
		if (!id) {
			r = cf_err(CF_ECORRUPT, "Docker API at %s: a listed container has no Id", sock);
			goto out;
		}
		if (!name)
			name = id;
		if (*name == '/')
			name++;
		cf_buf_reset(&path);
		if ((r = cf_buf_addf(&path, "/containers/%s/stop?t=%u", id, timeout)) != CF_OK ||
		    (r = request(sock, "POST", (char *)path.data, (long)timeout + 60, &status, &body)) != CF_OK)
			goto out;
		if (status == 304) /* stopped meanwhile by someone else: not ours to start */
			continue;
		if (status != 204) {
			char what[300];
			snprintf(what, sizeof(what), "stopping %s", name);
			r = api_error(sock, what, status, &body);
			goto out;
		}
		cf_info("coffer agent: stopped container %s", name);
		if ((r = set_add(set, id, name)) != CF_OK)
			goto out;
	}
out:
	json_decref(filter);
	json_decref(list);
	free(ffilter);
	curl_free(enc);
	cf_buf_release(&body);
	cf_buf_release(&path);
	return r;
}

int cf_docker_start(const char *sock, const struct cf_docker_set *set)
{
	struct cf_buf body = CF_BUF_INIT, path = CF_BUF_INIT;
	int first = CF_OK;

	for (size_t i = set->n; i-- > 0;) {
		long status = 0;
		int r;
		cf_buf_reset(&path);
		if ((r = cf_buf_addf(&path, "/containers/%s/start", set->ids[i])) == CF_OK &&
		    (r = request(sock, "POST", (char *)path.data, 120, &status, &body)) == CF_OK &&
		    status != 204 && status != 304) {
			char what[300];
			snprintf(what, sizeof(what), "starting %s", set->names[i]);
			r = api_error(sock, what, status, &body);
		}
		if (r) {
			cf_warn("coffer agent: %s", cf_errmsg(r));
			if (!first)
				first = r;
		} else {
			cf_info("coffer agent: started container %s", set->names[i]);
		}
	}
	cf_buf_release(&body);
	cf_buf_release(&path);
	if (first)
		return cf_err(first, "%zu container(s) could not be started again (named above)", set->n);
	return CF_OK;
}

void cf_docker_set_release(struct cf_docker_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->ids[i]);
		free(set->names[i]);
	}
	free(set->ids);
	free(set->names);
	memset(set, 0, sizeof(*set));
}

int cf_docker_compose_name(const char *sock, const char *container, char *out, size_t n)
{
	struct cf_buf body = CF_BUF_INIT, path = CF_BUF_INIT;
	long status = 0;
	int r;

	for (const char *p = container; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			return CF_ENOENT; /* not a container name: nothing to ask */
	if ((r = cf_buf_addf(&path, "/containers/%s/json", container)) != CF_OK ||
	    (r = request(sock, "GET", (const char *)path.data, 5, &status, &body)) != CF_OK)
		goto out;
	r = CF_ENOENT;
	if (status == 200) {
		json_t *j = json_loadb((const char *)body.data, body.len, 0, NULL);
		json_t *labels = json_object_get(json_object_get(j, "Config"), "Labels");
		const char *proj = json_string_value(json_object_get(labels, "com.docker.compose.project"));
		const char *svc = json_string_value(json_object_get(labels, "com.docker.compose.service"));
		if (svc && *svc) {
			snprintf(out, n, "%s%s%s", proj && *proj ? proj : "", proj && *proj ? "-" : "", svc);
			r = CF_OK;
		}
		json_decref(j);
	}
out:
	cf_buf_release(&path);
	cf_buf_release(&body);
	return r;
}
