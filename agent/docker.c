/*
 * docker.c - the few Docker Engine API calls the agent needs, over a unix
 * socket (CURLOPT_UNIX_SOCKET_PATH) or plain HTTP on TCP (an engine's
 * tcp:// listener, a docker-socket-proxy) with libcurl; answers parsed with
 * jansson, exec output demultiplexed by docker_stream.c.
 */
#include "agent/docker.h"
#include "agent/docker_stream.h"
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

#define API_VERSION "/v1.41"

static void curl_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One request to the engine.  host is a socket path ("/...") or a base URL
 * ("http://HOST:PORT[/PATH]"), as cf_docker_parse_host gives.  The answer's
 * status goes into *status; its body is collected into out, or, when stream
 * is set and the status is 200, fed to stream as it arrives (the exec
 * output, which can be long). */
struct req {
	const char *method, *path;
	const char *json;  /* request body, NULL: none */
	long timeout;      /* seconds; 0: none */
	int (*stream)(void *ctx, const char *p, size_t n);
	void *ctx;
	bool interruptible; /* give up when SIGTERM/SIGINT arrives */
};

struct wctx {
	CURL *curl;
	struct cf_buf *out;
	const struct req *rq;
	int rc; /* the stream's error, which stopped the transfer */
};

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
	struct wctx *w = ctx;
	long status = 0;
	if (w->rq->stream) {
		curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200) {
			if ((w->rc = w->rq->stream(w->rq->ctx, p, size * n)))
				return 0;
			return size * n;
		}
	}
	if (w->out->len > 1 << 20) /* an error text or a list: never this long */
		return size * n;
	return cf_buf_add(w->out, p, size * n) == CF_OK ? size * n : 0;
}

static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)ctx, (void)dt, (void)dn, (void)ut, (void)un;
	return cf_interrupted ? 1 : 0;
}

static int request_ex(const char *host, const struct req *rq, long *status, struct cf_buf *out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct cf_buf url = CF_BUF_INIT;
	struct curl_slist *hdr = NULL;
	struct wctx w = { NULL, out, rq, CF_OK };
	CURL *curl;
	int r;

	pthread_once(&once, curl_once);
	cf_buf_reset(out);
	*status = 0;
	if (!(curl = curl_easy_init()))
		return cf_err(CF_ENOMEM, "out of memory (curl)");
	w.curl = curl;
	bool unix_socket = host[0] == '/';
	if ((r = cf_buf_addf(&url, "%s%s%s", unix_socket ? "http://localhost" : host, API_VERSION, rq->path)) != CF_OK)
		goto out;
	if (unix_socket)
		curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, host);
	curl_easy_setopt(curl, CURLOPT_URL, (char *)url.data);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, rq->method);
	if (!strcmp(rq->method, "POST")) {
		const char *body = rq->json ? rq->json : "";
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		if (rq->json && !(hdr = curl_slist_append(hdr, "Content-Type: application/json"))) {
			r = cf_err(CF_ENOMEM, "out of memory (curl)");
			goto out;
		}
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
	}
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &w);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, rq->timeout);
	if (rq->interruptible) {
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	}
	CURLcode cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	if (w.rc) {
		r = w.rc;
		goto out;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		r = cf_err(CF_EINTR, "Docker API at %s: %s %s: interrupted", host, rq->method, rq->path);
		goto out;
	}
	if (cc != CURLE_OK) {
		r = cf_err(CF_EIO, "Docker API at %s: %s %s: %s", host, rq->method, rq->path,
			   errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
out:
	cf_buf_release(&url);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(curl);
	return r;
}

static int request(const char *host, const char *method, const char *path, long timeout, long *status,
		   struct cf_buf *out)
{
	struct req rq = { method, path, NULL, timeout, NULL, NULL, false };
	return request_ex(host, &rq, status, out);
}

bool cf_docker_present(const char *host)
{
	return host && (host[0] != '/' || access(host, F_OK) == 0);
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

static int set_add_cmd(struct cf_docker_set *set, const char *id, const char *name, const char *cmd)
{
	int rc;
	if ((rc = CF_GROW(set->ids, set->n + 1, set->idcap)) ||
	    (rc = CF_GROW(set->names, set->n + 1, set->namecap)) ||
	    (cmd && (rc = CF_GROW(set->cmds, set->n + 1, set->cmdcap))))
		return rc;
	char **ids = set->ids, **names = set->names;
	ids[set->n] = strdup(id);
	names[set->n] = strdup(name);
	if (cmd)
		set->cmds[set->n] = strdup(cmd);
	if (!ids[set->n] || !names[set->n] || (cmd && !set->cmds[set->n])) {
		free(ids[set->n]);
		free(names[set->n]);
		if (cmd)
			free(set->cmds[set->n]);
		return cf_err(CF_ENOMEM, "out of memory");
	}
	set->n++;
	return CF_OK;
}

static int set_add(struct cf_docker_set *set, const char *id, const char *name)
{
	return set_add_cmd(set, id, name, NULL);
}

int cf_docker_stop_labelled(const char *sock, const char *label, const char *alias, unsigned timeout,
			    struct cf_docker_set *set)
{
	struct cf_docker_match m = { label, NULL, 0, alias };
	struct cf_docker_set found = CF_DOCKER_SET_INIT;
	int r = cf_docker_find(sock, &m, &found);
	if (r == CF_OK)
		r = cf_docker_stop(sock, &found, timeout, set);
	cf_docker_set_release(&found);
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
		if (set->cmds)
			free(set->cmds[i]);
	}
	free(set->ids);
	free(set->names);
	free(set->cmds);
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

/* "HOST[:PORT][/PATH]" of a tcp:// or http:// value into "http://HOST:PORT[/PATH]"
 * (port 2375 when none is given, as the docker CLI does), checked with
 * libcurl's own URL parser. */
static int tcp_url(const char *key, const char *v, const char *rest, char **out)
{
	struct cf_buf b = CF_BUF_INIT;
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *user = NULL, *query = NULL, *frag = NULL, *url = NULL;
	int r = CF_OK;

	if (!u || cf_buf_addf(&b, "http://%s", rest)) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if (!*rest || strchr("/?#", *rest) || curl_url_set(u, CURLUPART_URL, (char *)b.data, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		r = cf_err(CF_EINVAL, "%s: \"%s\" is not a Docker engine address (unix:///PATH, tcp://HOST:PORT, "
				      "http://HOST:PORT, or none)", key, v);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		r = cf_err(CF_EINVAL, "%s: \"%s\": a Docker engine address takes no user, query or fragment", key, v);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
		char *end;
		unsigned long n = strtoul(port, &end, 10);
		if (*end || n == 0 || n > 65535) {
			r = cf_err(CF_EINVAL, "%s: \"%s\": port %s is not 1-65535", key, v, port);
			goto out;
		}
	} else if (curl_url_set(u, CURLUPART_PORT, "2375", 0) != CURLUE_OK) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	size_t n = strlen(url);
	while (n && url[n - 1] == '/') /* the API version follows the base path */
		url[--n] = 0;
	if (!(*out = strdup(url)))
		r = cf_err(CF_ENOMEM, "out of memory");
out:
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_free(query);
	curl_free(frag);
	curl_free(url);
	curl_url_cleanup(u);
	cf_buf_release(&b);
	return r;
}

int cf_docker_parse_host(const char *key, const char *v, char **out)
{
	const char *tls = getenv("DOCKER_TLS_VERIFY");
	*out = NULL;
	if (!*v || !strcmp(v, "none") || !strcmp(v, "off"))
		return CF_OK;
	if (!strncmp(v, "unix://", 7)) {
		if (v[7] != '/')
			return cf_err(CF_EINVAL, "%s: \"%s\" is not unix:///PATH (an absolute socket path)", key, v);
		if (!(*out = strdup(v + 7)))
			return cf_err(CF_ENOMEM, "out of memory");
		return CF_OK;
	}
	if (!strncmp(v, "https://", 8) || (!strncmp(v, "tcp://", 6) && tls && *tls))
		return cf_err(CF_EINVAL, "%s: \"%s\": TLS to the Docker engine (https://, DOCKER_TLS_VERIFY, "
					  "DOCKER_CERT_PATH) is not supported: use unix:///PATH, or tcp:// or http:// "
					  "to an engine or socket proxy on a private network (and unset DOCKER_TLS_VERIFY)",
			       key, v);
	if (!strncmp(v, "tcp://", 6))
		return tcp_url(key, v, v + 6, out);
	if (!strncmp(v, "http://", 7))
		return tcp_url(key, v, v + 7, out);
	return cf_err(CF_EINVAL, "%s: \"%s\" is not a Docker engine address (unix:///PATH, tcp://HOST:PORT, "
			      "http://HOST:PORT, or none; ssh:// and npipe:// are not supported)", key, v);
}

int cf_docker_stop_alias(const char *label, char *out, size_t n)
{
	const char *eq = strchr(label, '=');
	int len = snprintf(out, n, "docker-volume-backup.stop-during-backup=%s", eq ? eq + 1 : "true");
	return len < 0 || (size_t)len >= n ? cf_err(CF_EINVAL, "the stop label \"%s\" is too long", label) : CF_OK;
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
		if (!(m->label && has_label(c, m->label)) && !(m->alias && has_label(c, m->alias)) &&
		    !uses(c, &hostp, &vols))
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

/* ---------------------------------------------------------- exec labels */

int cf_docker_select_exec(const char *what, const void *list_json, size_t n, const char *key, const char *alias,
			  struct cf_docker_set *found)
{
	json_error_t je;
	json_t *list = json_loadb(list_json, n, 0, &je), *c;
	size_t i;
	int r = CF_OK;

	if (!list || !json_is_array(list)) {
		r = cf_err(CF_ECORRUPT, "Docker API at %s: the container list does not parse: %s", what,
			   list ? "not an array" : je.text);
		goto out;
	}
	json_array_foreach(list, i, c) {
		const char *id = json_string_value(json_object_get(c, "Id"));
		const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
		json_t *labels = json_object_get(c, "Labels");
		const char *cmd = json_string_value(json_object_get(labels, key));
		if (!cmd && alias)
			cmd = json_string_value(json_object_get(labels, alias));
		if (!id) {
			r = cf_err(CF_ECORRUPT, "Docker API at %s: a listed container has no Id", what);
			goto out;
		}
		if (!cmd || !*cmd)
			continue;
		if (!name)
			name = id;
		if (*name == '/')
			name++;
		if ((r = set_add_cmd(found, id, name, cmd)) != CF_OK)
			goto out;
	}
out:
	json_decref(list);
	return r;
}

#define EXEC_LOG_MAX (64 * 1024) /* output bytes logged per command; the rest is counted */

struct exec_out {
	const char *name;
	struct cf_docker_demux demux;
	struct cf_docker_lines lines;
	size_t logged, dropped;
};

static int exec_line(void *ctx, int stream, const char *line, size_t n)
{
	struct exec_out *o = ctx;
	static const char *const tag[] = { "stdin", "stdout", "stderr", "engine error" };
	if (o->logged + n > EXEC_LOG_MAX) {
		o->dropped += n + 1;
		return CF_OK;
	}
	o->logged += n + 1;
	cf_log(1, "coffer agent: [%s %s] %.*s", o->name, tag[stream], (int)n, line);
	return CF_OK;
}

static int exec_payload(void *ctx, int stream, const char *p, size_t n)
{
	struct exec_out *o = ctx;
	return cf_docker_lines_add(&o->lines, stream, p, n, exec_line, o);
}

static int exec_stream(void *ctx, const char *p, size_t n)
{
	struct exec_out *o = ctx;
	return cf_docker_demux_feed(&o->demux, p, n, exec_payload, o);
}

/* Run cmd in container id (name for the messages) and wait for it. */
static int exec_one(const char *host, const char *stage, const char *id, const char *name, const char *cmd,
		    bool interruptible)
{
	struct cf_buf body = CF_BUF_INIT, path = CF_BUF_INIT;
	struct exec_out o = { name, CF_DOCKER_DEMUX_INIT, CF_DOCKER_LINES_INIT, 0, 0 };
	json_t *create = NULL, *ans = NULL;
	char *js = NULL, what[300], *eid = NULL;
	long status = 0;
	int r;

	snprintf(what, sizeof(what), "%s in container %s", stage, name);
	cf_log(1, "coffer agent: %s: running %s", what, cmd);
	if (!(create = json_pack("{s:b,s:b,s:b,s:b,s:[sss]}", "AttachStdin", 0, "AttachStdout", 1, "AttachStderr", 1,
				 "Tty", 0, "Cmd", "/bin/sh", "-c", cmd)) ||
	    !(js = json_dumps(create, JSON_COMPACT))) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}
	struct req rq = { "POST", NULL, js, 60, NULL, NULL, false };
	if ((r = cf_buf_addf(&path, "/containers/%s/exec", id)))
		goto out;
	rq.path = (const char *)path.data;
	if ((r = request_ex(host, &rq, &status, &body)))
		goto out;
	if (status != 201) {
		r = api_error(host, what, status, &body);
		goto out;
	}
	ans = json_loadb((const char *)body.data, body.len, 0, NULL);
	const char *e = json_string_value(json_object_get(ans, "Id"));
	if (!e || !*e || strspn(e, "0123456789abcdefABCDEF") != strlen(e)) {
		r = cf_err(CF_ECORRUPT, "Docker API at %s: %s: the exec's Id is missing or not hex", host, what);
		goto out;
	}
	if (!(eid = strdup(e))) {
		r = cf_err(CF_ENOMEM, "out of memory");
		goto out;
	}

	/* the output, demultiplexed as it comes: no time limit (a dump takes
	 * what it takes), but a signal stops the wait before the backup */
	cf_buf_reset(&path);
	if ((r = cf_buf_addf(&path, "/exec/%s/start", eid)))
		goto out;
	struct req start = { "POST", (const char *)path.data, "{\"Detach\":false,\"Tty\":false}", 0, exec_stream, &o,
			     interruptible };
	if ((r = request_ex(host, &start, &status, &body)))
		goto out;
	if (status != 200) {
		r = api_error(host, what, status, &body);
		goto out;
	}
	if ((r = cf_docker_lines_end(&o.lines, exec_line, &o)))
		goto out;
	if (o.dropped)
		cf_log(1, "coffer agent: [%s] %zu more bytes of output not logged", name, o.dropped);
	if ((r = cf_docker_demux_end(&o.demux))) {
		r = cf_err_prefix(r, "Docker API at %s: %s", host, what);
		goto out;
	}

	/* the exit code; the engine may mark the exec done a moment after the
	 * stream closes */
	cf_buf_reset(&path);
	if ((r = cf_buf_addf(&path, "/exec/%s/json", eid)))
		goto out;
	for (int tries = 0;; tries++) {
		if ((r = request(host, "GET", (const char *)path.data, 30, &status, &body)))
			goto out;
		if (status != 200) {
			r = api_error(host, what, status, &body);
			goto out;
		}
		json_decref(ans);
		ans = json_loadb((const char *)body.data, body.len, 0, NULL);
		json_t *code = json_object_get(ans, "ExitCode");
		if (!json_is_true(json_object_get(ans, "Running")) && json_is_integer(code)) {
			json_int_t x = json_integer_value(code);
			if (x != 0)
				r = cf_err(CF_EIO, "%s: \"%s\" exited with status %lld", what, cmd, (long long)x);
			else
				cf_log(1, "coffer agent: %s: done", what);
			goto out;
		}
		if (tries == 100) {
			r = cf_err(CF_EIO, "Docker API at %s: %s: the output ended but the command still runs", host, what);
			goto out;
		}
		usleep(100 * 1000);
	}
out:
	cf_docker_lines_release(&o.lines);
	json_decref(create);
	json_decref(ans);
	free(js);
	free(eid);
	cf_buf_release(&body);
	cf_buf_release(&path);
	return r;
}

int cf_docker_find_exec(const char *host, const char *key, const char *alias, struct cf_docker_set *found)
{
	struct cf_buf body = CF_BUF_INIT;
	long status = 0;
	int r;

	/* running containers only: a command cannot run in a stopped one */
	if ((r = request(host, "GET", "/containers/json", 30, &status, &body)) != CF_OK)
		goto out;
	if (status != 200) {
		r = api_error(host, "listing containers", status, &body);
		goto out;
	}
	r = cf_docker_select_exec(host, body.data, body.len, key, alias, found);
out:
	cf_buf_release(&body);
	return r;
}

int cf_docker_exec(const char *host, const char *stage, const struct cf_docker_set *set, bool all)
{
	int r, first = CF_OK;
	char msg[1024] = "";

	for (size_t i = 0; i < set->n; i++) {
		r = exec_one(host, stage, set->ids[i], set->names[i], set->cmds[i], !all);
		if (r && !all)
			return r;
		if (r) {
			cf_warn("coffer agent: %s", cf_errmsg(r));
			if (!first) {
				first = r;
				snprintf(msg, sizeof(msg), "%s", cf_errmsg(r));
			}
		}
	}
	return first ? cf_err(first, "%s", msg) : CF_OK;
}

int cf_docker_exec_labelled(const char *host, const char *stage, const char *key, const char *alias, bool all)
{
	struct cf_docker_set set = CF_DOCKER_SET_INIT;
	int r = cf_docker_find_exec(host, key, alias, &set);
	if (r == CF_OK)
		r = cf_docker_exec(host, stage, &set, all);
	cf_docker_set_release(&set);
	return r;
}
