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
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>
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

/* ---------------------------------------------------------- restore */

int cf_docker_parse_host(const char *key, const char *v, char **out)
{
	*out = NULL;
	if (!*v || !strcmp(v, "none") || !strcmp(v, "off"))
		return CF_OK;
	if (strncmp(v, "unix://", 7) || v[7] != '/')
		return cf_err(CF_EINVAL, "%s: \"%s\" is not unix:///PATH (only a unix socket is supported; "
				      "\"none\" turns container handling off)", key, v);
	if (!(*out = strdup(v + 7)))
		return cf_err(CF_ENOMEM, "out of memory");
	return CF_OK;
}

/* Is a at or beneath b, or b at or beneath a?  (absolute paths) */
static bool overlaps(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	while (na > 1 && a[na - 1] == '/')
		na--;
	while (nb > 1 && b[nb - 1] == '/')
		nb--;
	size_t n = na < nb ? na : nb;
	if (strncmp(a, b, n))
		return false;
	if (na == nb)
		return true;
	const char *longer = na > nb ? a : b;
	return longer[n] == '/' || n == 1; /* n == 1: one of them is "/" */
}

/* Does container c (a list entry) carry label "key" or "key=value"? */
static bool has_label(json_t *c, const char *label)
{
	json_t *labels = json_object_get(c, "Labels");
	size_t klen = strcspn(label, "=");
	char key[256];
	if (klen >= sizeof(key))
		return false;
	memcpy(key, label, klen);
	key[klen] = 0;
	const char *v = json_string_value(json_object_get(labels, key));
	return v && (!label[klen] || !strcmp(v, label + klen + 1));
}

struct keys {
	char **v;
	size_t n, cap;
};

static int keys_add(struct keys *k, const char *s, size_t len)
{
	int rc = CF_GROW(k->v, k->n + 1, k->cap);
	if (rc)
		return rc;
	if (!(k->v[k->n] = strndup(s, len)))
		return cf_err(CF_ENOMEM, "out of memory");
	k->n++;
	return CF_OK;
}

static void keys_release(struct keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->v[i]);
	free(k->v);
}

/* The host paths and volume names that stand for the directories of m:
 * the paths themselves, and through this container's own mounts (when in
 * one) the Source and Name of the mount holding each. */
static int match_keys(const struct cf_docker_match *m, json_t *self, struct keys *hostp, struct keys *vols)
{
	int rc;
	for (size_t i = 0; i < m->npaths; i++) {
		const char *p = m->paths[i];
		if ((rc = keys_add(hostp, p, strlen(p))))
			return rc;
		size_t k;
		json_t *mt;
		json_array_foreach(json_object_get(self, "Mounts"), k, mt) {
			const char *dst = json_string_value(json_object_get(mt, "Destination"));
			const char *src = json_string_value(json_object_get(mt, "Source"));
			const char *name = json_string_value(json_object_get(mt, "Name"));
			size_t nd = dst ? strlen(dst) : 0;
			while (nd > 1 && dst[nd - 1] == '/')
				nd--;
			if (!dst || !overlaps(p, dst))
				continue;
			if (src && *src) {
				struct cf_buf b = CF_BUF_INIT;
				/* beneath the mount: the same place beneath its source */
				const char *rest = strlen(p) > nd && nd > 1 ? p + nd : "";
				if ((rc = cf_buf_addf(&b, "%s%s", src, rest)) ||
				    (rc = keys_add(hostp, (const char *)b.data, b.len))) {
					cf_buf_release(&b);
					return rc;
				}
				cf_buf_release(&b);
			}
			if (name && *name && (rc = keys_add(vols, name, strlen(name))))
				return rc;
		}
	}
	return CF_OK;
}

static bool uses(json_t *c, const struct keys *hostp, const struct keys *vols)
{
	size_t k;
	json_t *mt;
	json_array_foreach(json_object_get(c, "Mounts"), k, mt) {
		const char *src = json_string_value(json_object_get(mt, "Source"));
		const char *name = json_string_value(json_object_get(mt, "Name"));
		for (size_t i = 0; name && *name && i < vols->n; i++)
			if (!strcmp(name, vols->v[i]))
				return true;
		for (size_t i = 0; src && *src == '/' && i < hostp->n; i++)
			if (overlaps(src, hostp->v[i]))
				return true;
	}
	return false;
}

int cf_docker_select(const char *what, const void *list_json, size_t n, const void *self_json, size_t self_n,
		     const struct cf_docker_match *m, struct cf_docker_set *found)
{
	struct keys hostp = { 0 }, vols = { 0 };
	json_t *list = NULL, *self = NULL;
	json_error_t je;
	int r;

	if (!(list = json_loadb(list_json, n, 0, &je)) || !json_is_array(list)) {
		r = cf_err(CF_ECORRUPT, "Docker API at %s: the container list does not parse: %s", what,
			   list ? "not an array" : je.text);
		goto out;
	}
	if (self_json)
		self = json_loadb(self_json, self_n, 0, NULL);
	if (self && !json_is_object(self)) {
		json_decref(self);
		self = NULL; /* not a container we can read: no translation */
	}
	if ((r = match_keys(m, self, &hostp, &vols)))
		goto out;
	const char *self_id = json_string_value(json_object_get(self, "Id"));
	size_t i;
	json_t *c;
	json_array_foreach(list, i, c) {
		const char *id = json_string_value(json_object_get(c, "Id"));
		const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
		if (!id) {
			r = cf_err(CF_ECORRUPT, "Docker API at %s: a listed container has no Id", what);
			goto out;
		}
		if (self_id && !strcmp(id, self_id))
			continue; /* never this container itself */
		if (!(m->label && has_label(c, m->label)) && !uses(c, &hostp, &vols))
			continue;
		if (!name)
			name = id;
		if (*name == '/')
			name++;
		if ((r = set_add(found, id, name)) != CF_OK)
			goto out;
	}
out:
	keys_release(&hostp);
	keys_release(&vols);
	json_decref(list);
	json_decref(self);
	return r;
}

/* This container's inspection, when coffer runs in one: asked by its
 * hostname (which Docker and podman set to the container id unless told
 * otherwise).  Left empty when not in a container or the engine does not
 * know it. */
static void inspect_self(const char *sock, struct cf_buf *out)
{
	char host[256];
	struct cf_buf path = CF_BUF_INIT;
	long status = 0;

	if (access("/.dockerenv", F_OK) && access("/run/.containerenv", F_OK))
		return;
	if (gethostname(host, sizeof(host)) || !host[0])
		return;
	host[sizeof(host) - 1] = 0;
	for (const char *p = host; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			return;
	if (cf_buf_addf(&path, "/containers/%s/json", host) != CF_OK ||
	    request(sock, "GET", (const char *)path.data, 10, &status, out) != CF_OK || status != 200)
		cf_buf_reset(out);
	cf_buf_release(&path);
}

int cf_docker_find(const char *sock, const struct cf_docker_match *m, struct cf_docker_set *found)
{
	struct cf_buf body = CF_BUF_INIT, self = CF_BUF_INIT;
	long status = 0;
	int r;

	/* running containers only (no all=1): a stopped one stays stopped */
	if ((r = request(sock, "GET", "/containers/json", 30, &status, &body)) != CF_OK)
		goto out;
	if (status != 200) {
		r = api_error(sock, "listing containers", status, &body);
		goto out;
	}
	if (m->npaths)
		inspect_self(sock, &self);
	r = cf_docker_select(sock, body.data, body.len, self.len ? self.data : NULL, self.len, m, found);
out:
	cf_buf_release(&body);
	cf_buf_release(&self);
	return r;
}

int cf_docker_stop(const char *sock, const struct cf_docker_set *found, unsigned timeout,
		   struct cf_docker_set *stopped)
{
	struct cf_buf body = CF_BUF_INIT, path = CF_BUF_INIT;
	int r = CF_OK;

	for (size_t i = 0; i < found->n; i++) {
		long status = 0;
		cf_buf_reset(&path);
		if ((r = cf_buf_addf(&path, "/containers/%s/stop?t=%u", found->ids[i], timeout)) != CF_OK ||
		    (r = request(sock, "POST", (char *)path.data, (long)timeout + 60, &status, &body)) != CF_OK)
			break;
		if (status == 304) /* stopped meanwhile by someone else: not ours to start */
			continue;
		if (status != 204) {
			char what[300];
			snprintf(what, sizeof(what), "stopping %s", found->names[i]);
			r = api_error(sock, what, status, &body);
			break;
		}
		cf_info("coffer: stopped container %s", found->names[i]);
		if ((r = set_add(stopped, found->ids[i], found->names[i])) != CF_OK)
			break;
	}
	cf_buf_release(&body);
	cf_buf_release(&path);
	return r;
}
