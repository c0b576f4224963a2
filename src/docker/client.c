/*
 * client.c: the transport of the docker module. libcurl's multi-socket API
 * on a libuv loop (curl's docs/examples/multi-uv.c): libcurl tells which
 * sockets to watch (on_curl_socket) and when to wake it (on_curl_timer);
 * libuv tells libcurl when a socket is ready or the timer fired (that glue
 * is common/curl_uv.c, shared with the webhooks), and finished transfers
 * are collected in check_done.
 *
 * Re-entrancy: user callbacks never run inside a libcurl callback (libcurl
 * refuses most calls from there); they run from check_done or timers, where
 * they may start, cancel or free anything. A tsvc_docker_free from inside a
 * callback is finished when the outermost loop callback returns (depth).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "docker/internal.h"

static void check_done(tsvc_docker_t *d);
static int launch(tsvc_docker_req_t *r);
static void destroy_now(tsvc_docker_t *d);

/* ---- small helpers ---------------------------------------------------- */

static char *esc_keep(const char *s, const char *keep) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(s);
  char *o = malloc(3 * n + 1), *p = o;
  if (!o) return NULL;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '.' || c == '_' || c == '~' || (c && strchr(keep, c))) {
      *p++ = (char)c;
    } else {
      *p++ = '%';
      *p++ = hex[c >> 4];
      *p++ = hex[c & 15];
    }
  }
  *p = '\0';
  return o;
}

char *tsvc__docker_esc(const char *s) { return esc_keep(s, ""); }

char *tsvc__docker_esc_path(const char *s) { return esc_keep(s, "/:@"); }

/* "1.41" -> 1041; -1 when not a version. */
static int version_num(const char *v) {
  char *end;
  errno = 0;
  long major = strtol(v, &end, 10);
  if (errno || end == v || *end != '.') return -1;
  const char *m = end + 1;
  long minor = strtol(m, &end, 10);
  if (errno || end == m || *end != '\0' || major < 0 || major > 99 || minor < 0 || minor > 999)
    return -1;
  return (int)(major * 1000 + minor);
}

/* ---- the client --------------------------------------------------------- */

const char *tsvc_docker_default_host(void) {
  const char *h = getenv("DOCKER_HOST");
  return h && *h ? h : TSVC_DOCKER_DEFAULT_HOST;
}

const char *tsvc_docker_api_version(const tsvc_docker_t *d) {
  return d->api_version;
}

const char *tsvc_docker_host(const tsvc_docker_t *d) {
  return d->host;
}

void tsvc__docker_enter(tsvc_docker_t *d) {
  d->depth++;
}

void tsvc__docker_leave(tsvc_docker_t *d) {
  if (--d->depth == 0 && d->closing) destroy_now(d);
}

/* After each turn of libcurl's work (common/curl_uv.c): finished
   transfers are collected; a tsvc_docker_free from a callback there is
   finished on the way out. */
static void after_curl(tsvc_curl_uv_t *cu, void *data) {
  (void)cu;
  tsvc_docker_t *d = data;
  tsvc__docker_enter(d);
  check_done(d);
  tsvc__docker_leave(d);
}

static void on_tunnel(tsvc_tunnel_state_t state, const char *msg, void *data);

/* A TLS file: copied, and readable now (a missing key is named at once,
   not as a handshake failure later). */
static int tls_file(tsvc_docker_t *d, char **dst, const char *path, const char *what,
                    char *err, size_t errlen) {
  if (!path) return 0;
  if (!(*dst = tsvc_strdup(path))) return TSVC_ENOMEM;
  if (access(path, R_OK) != 0) {
    tsvc_errf(err, errlen, "docker host %s: the TLS %s %s (%s) cannot be read: %s", d->host, what,
            path, d->tls_origin, strerror(errno));
    return TSVC_EINVAL;
  }
  return 0;
}

/* TLS as the docker CLI takes it from the environment. */
static int tls_from_env(tsvc_docker_t *d, char *err, size_t errlen) {
  const char *v = getenv("DOCKER_TLS_VERIFY");
  if (!v || !*v) return 0;
  d->tls = d->tls_verify = true;
  const char *dir = getenv("DOCKER_CERT_PATH");
  char *home_dir = NULL;
  if (!dir || !*dir) {
    const char *home = getenv("HOME");
    home_dir = tsvc_asprintf("%s/.docker", home ? home : "");
    if (!home_dir) return TSVC_ENOMEM;
    dir = home_dir;
  }
  char *ca = tsvc_asprintf("%s/ca.pem", dir), *cert = tsvc_asprintf("%s/cert.pem", dir),
       *key = tsvc_asprintf("%s/key.pem", dir);
  d->tls_origin = home_dir ? tsvc_asprintf("DOCKER_TLS_VERIFY with %s", dir)
                           : tsvc_asprintf("DOCKER_TLS_VERIFY with DOCKER_CERT_PATH=%s", dir);
  free(home_dir);
  int rc = ca && cert && key && d->tls_origin ? 0 : TSVC_ENOMEM;
  if (!rc) rc = tls_file(d, &d->ca, ca, "CA file", err, errlen);
  if (!rc) rc = tls_file(d, &d->cert, cert, "client certificate", err, errlen);
  if (!rc) rc = tls_file(d, &d->key, key, "client key", err, errlen);
  free(ca);
  free(cert);
  free(key);
  return rc;
}

static int tls_from_opts(tsvc_docker_t *d, const tsvc_docker_opts_t *o, char *err,
                         size_t errlen) {
  if (!o->tls) return 0;
  d->tls = true;
  d->tls_verify = o->tls_verify;
  if (!(d->tls_origin = tsvc_strdup(o->tls_origin ? o->tls_origin : "TLS"))) return TSVC_ENOMEM;
  if (o->tls_verify && !o->tls_ca) {
    tsvc_errf(err, errlen, "docker host %s: verifying the engine's certificate needs the CA that "
            "signed it (%s: ca)", d->host, d->tls_origin);
    return TSVC_EINVAL;
  }
  if (!o->tls_cert != !o->tls_key) {
    tsvc_errf(err, errlen, "docker host %s: a client certificate goes with its key: %s names %s "
            "but not %s", d->host, d->tls_origin, o->tls_cert ? "cert" : "key",
            o->tls_cert ? "key" : "cert");
    return TSVC_EINVAL;
  }
  int rc = tls_file(d, &d->ca, o->tls_ca, "CA file", err, errlen);
  if (!rc) rc = tls_file(d, &d->cert, o->tls_cert, "client certificate", err, errlen);
  if (!rc) rc = tls_file(d, &d->key, o->tls_key, "client key", err, errlen);
  return rc;
}

static int parse_host(tsvc_docker_t *d, const tsvc_docker_opts_t *o, char *err, size_t errlen) {
  int rc = tsvc_docker_endpoint_parse(d->host, &d->ep, err, errlen);
  if (rc) return rc;
  const tsvc_docker_endpoint_t *ep = &d->ep;
  switch (ep->transport) {
  case TSVC_DOCKER_UNIX:
    d->local = true;
    d->unix_path = tsvc_strdup(ep->path);
    d->base_url = tsvc_strdup("http://localhost");
    return d->unix_path && d->base_url ? 0 : TSVC_ENOMEM;
  case TSVC_DOCKER_TCP: {
    rc = o->tls_env ? tls_from_env(d, err, errlen) : tls_from_opts(d, o, err, errlen);
    if (rc) return rc;
    char hp[300];
    tsvc_hostport(ep->host, ep->port ? ep->port : d->tls ? 2376 : 2375, hp, sizeof hp);
    d->base_url = tsvc_asprintf("%s://%s", d->tls ? "https" : "http", hp);
    return d->base_url ? 0 : TSVC_ENOMEM;
  }
  case TSVC_DOCKER_SSH: {
    tsvc_tunnel_opts_t to = {
        .user = ep->user,
        .host = ep->host,
        .port = ep->port,
        .remote_socket = o->ssh_socket ? o->ssh_socket : "/var/run/docker.sock",
        .identity_file = o->ssh_identity_file,
        .config_file = o->ssh_config_file,
        .program = o->ssh_program,
    };
    d->base_url = tsvc_strdup("http://localhost");
    if (!d->base_url) return TSVC_ENOMEM;
    rc = tsvc_tunnel_new(d->loop, &to, on_tunnel, d, &d->tunnel, err, errlen);
    if (rc) return rc;
    d->unix_path = tsvc_strdup(tsvc_tunnel_socket(d->tunnel));
    return d->unix_path ? 0 : TSVC_ENOMEM;
  }
  }
  return TSVC_EINVAL;
}

static void free_fields(tsvc_docker_t *d) {
  free(d->host);
  free(d->base_url);
  free(d->unix_path);
  free(d->ca);
  free(d->cert);
  free(d->key);
  free(d->tls_origin);
}

int tsvc_docker_new_opts(uv_loop_t *loop, const tsvc_docker_opts_t *o, tsvc_docker_t **out,
                         char *err, size_t errlen) {
  *out = NULL;
  if (!loop || !o) return TSVC_EINVAL;
  const char *host = o->host && *o->host ? o->host : tsvc_docker_default_host();
  tsvc_docker_t *d = calloc(1, sizeof *d);
  if (!d) goto nomem;
  d->loop = loop;
  d->host = tsvc_strdup(host);
  if (!d->host) goto nomem;
  int rc = parse_host(d, o, err, errlen);
  if (rc == TSVC_ENOMEM) goto nomem;
  if (rc) goto fail;
  rc = tsvc_curl_uv_init(&d->cu, loop, after_curl, d, err, errlen);
  if (rc == TSVC_ENOMEM) goto nomem;
  if (rc) goto fail;
  *out = d;
  return 0;
nomem:
  tsvc_errf(err, errlen, "out of memory");
  rc = TSVC_ENOMEM;
fail:
  if (d) {
    /* Its handles close on the loop; it calls nothing back any more. */
    tsvc_tunnel_free(d->tunnel);
    free_fields(d);
    free(d);
  }
  return rc;
}

int tsvc_docker_new(uv_loop_t *loop, const char *host, tsvc_docker_t **out, char *err,
                    size_t errlen) {
  tsvc_docker_opts_t o = {.host = host, .tls_env = true};
  return tsvc_docker_new_opts(loop, &o, out, err, errlen);
}

const tsvc_docker_endpoint_t *tsvc_docker_endpoint(const tsvc_docker_t *d) { return &d->ep; }

bool tsvc_docker_is_local(const tsvc_docker_t *d) { return d->local; }

void tsvc_docker_set_local(tsvc_docker_t *d, bool local) {
  /* A unix socket is this machine's; an ssh tunnel's socket is not. */
  if (d->ep.transport != TSVC_DOCKER_UNIX) d->local = local;
}

int tsvc_docker_tunnel_pid(const tsvc_docker_t *d) {
  return d->tunnel ? tsvc_tunnel_pid(d->tunnel) : 0;
}

static void client_closed(void *data) {
  tsvc_docker_t *d = data;
  free_fields(d);
  free(d);
}

/* The end of a client: nothing of it is running any more. */
static void destroy_now(tsvc_docker_t *d) {
  while (d->events) tsvc__docker_events_destroy(d->events);
  while (d->reqs) tsvc__docker_req_destroy(d->reqs);
  tsvc_tunnel_free(d->tunnel);
  d->tunnel = NULL;
  tsvc_curl_uv_close(&d->cu, client_closed);
}

void tsvc_docker_free(tsvc_docker_t *d) {
  if (!d || d->closing) return;
  d->closing = true;
  /* Nothing is called back from now on: cancel everything now, except a
   * request whose callback is running (done() frees it when it returns). */
  while (d->events) tsvc__docker_events_destroy(d->events);
  for (tsvc_docker_req_t *r = d->reqs, *next; r; r = next) {
    next = r->next;
    if (!r->in_cb) {
      tsvc__docker_req_destroy(r);
      next = d->reqs; /* a destroy may take a child along: start over */
      while (next && next->in_cb) next = next->next;
    }
  }
  if (d->depth == 0) destroy_now(d);
}

/* ---- requests ------------------------------------------------------------ */

tsvc_docker_req_t *tsvc__docker_req_new(tsvc_docker_t *d, tsvc_docker_cb cb, void *data) {
  tsvc_docker_req_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->easy = curl_easy_init();
  if (!r->easy) {
    free(r);
    return NULL;
  }
  r->d = d;
  r->cb = cb;
  r->data = data;
  r->versioned = true;
  r->sink = TSVC__SINK_BODY;
  r->max = TSVC_DOCKER_MAX_BODY;
  r->timeout_ms = TSVC_DOCKER_TIMEOUT_MS;
  r->exit_code = -1;
  tsvc_buf_init(&r->body, TSVC_DOCKER_MAX_BODY);
  tsvc_lines_init(&r->lines, TSVC_DOCKER_MAX_EVENT);
  r->next = d->reqs;
  if (d->reqs) d->reqs->prev = r;
  d->reqs = r;
  return r;
}

static void req_close_cb(uv_handle_t *h) {
  free(h->data);
}

void tsvc__docker_req_destroy(tsvc_docker_req_t *r) {
  tsvc_docker_t *d = r->d;
  if (r->child) {
    tsvc_docker_req_t *c = r->child;
    r->child = NULL;
    c->parent = NULL;
    if (!c->in_cb) tsvc__docker_req_destroy(c);
  }
  if (r->parent) {
    r->parent->child = NULL;
    r->parent = NULL;
  }
  if (r->in_multi) curl_multi_remove_handle(d->cu.multi, r->easy);
  r->in_multi = false;
  if (d->negotiation == r) d->negotiation = NULL;
  if (r->prev) r->prev->next = r->next; else d->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->hdrs);
  free(r->method);
  free(r->path);
  free(r->post);
  free(r->id);
  free(r->id2);
  if (r->xhdr) memset(r->xhdr, 0, strlen(r->xhdr)); /* credentials */
  free(r->xhdr);
  if (r->op_free) r->op_free(r->op);
  json_decref(r->spec);
  tsvc_buf_free(&r->body);
  tsvc_tail_free(&r->tail);
  tsvc_lines_free(&r->lines);
  if (r->timer_used) {
    uv_timer_stop(&r->timer);
    r->timer.data = r;
    uv_close((uv_handle_t *)&r->timer, req_close_cb);
  } else {
    free(r);
  }
}

void tsvc_docker_cancel(tsvc_docker_req_t *r) {
  if (!r || r->in_cb) return;
  tsvc__docker_req_destroy(r);
}

void tsvc__docker_done(tsvc_docker_req_t *r, tsvc_docker_reply_t *rep) {
  if (!rep->http_status) rep->http_status = r->http;
  if (!rep->errmsg) rep->errmsg = "";
  if (r->cb && !r->d->closing) {
    r->in_cb = true;
    r->cb(rep, r->data);
    r->in_cb = false;
  }
  tsvc__docker_req_destroy(r);
}

void tsvc__docker_fail(tsvc_docker_req_t *r, int status, const char *errmsg) {
  tsvc_docker_reply_t rep = {.status = status, .errmsg = errmsg, .exit_code = -1};
  tsvc__docker_done(r, &rep);
}

static void req_timer_cb(uv_timer_t *t) {
  tsvc_docker_req_t *r = t->data;
  tsvc_docker_t *d = r->d;
  tsvc__docker_enter(d);
  r->timer_fn(r);
  tsvc__docker_leave(d);
}

int tsvc__docker_req_timer(tsvc_docker_req_t *r, uint64_t ms, void (*fn)(tsvc_docker_req_t *r)) {
  if (!r->timer_used) {
    int rc = uv_timer_init(r->d->loop, &r->timer);
    if (rc) return TSVC_ERUNTIME;
    r->timer_used = true;
    r->timer.data = r;
  }
  r->timer_fn = fn;
  return uv_timer_start(&r->timer, req_timer_cb, ms, 0) == 0 ? 0 : TSVC_ERUNTIME;
}

void tsvc__docker_req_timer_stop(tsvc_docker_req_t *r) {
  if (r->timer_used) uv_timer_stop(&r->timer);
}

json_t *tsvc__docker_body_json(const tsvc_docker_req_t *r) {
  if (!r->body.len) return NULL;
  return json_loadb(r->body.data, r->body.len, 0, NULL);
}

/* ---- one exchange ---------------------------------------------------------- */

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
  tsvc_docker_req_t *r = ud;
  size_t n = size * nmemb;
  if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
    /* A new response (after a 100 Continue, say) starts over. */
    const char *sp = memchr(p, ' ', n);
    r->http = sp ? strtol(sp + 1, NULL, 10) : 0;
    r->ctype[0] = '\0';
    r->api_header[0] = '\0';
    r->headers_done = false;
    return n;
  }
  if (n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
    if (r->http >= 200) {
      r->headers_done = true;
      if (r->on_headers) r->on_headers(r);
    }
    return n;
  }
  const char *colon = memchr(p, ':', n);
  if (!colon) return n;
  size_t klen = (size_t)(colon - p);
  const char *v = colon + 1;
  size_t vlen = n - klen - 1;
  while (vlen && (*v == ' ' || *v == '\t')) v++, vlen--;
  while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ')) vlen--;
  char *dst = NULL;
  size_t dstlen = 0;
  if (klen == 11 && strncasecmp(p, "Api-Version", 11) == 0) {
    dst = r->api_header;
    dstlen = sizeof r->api_header;
  } else if (klen == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
    dst = r->ctype;
    dstlen = sizeof r->ctype;
  }
  if (dst) {
    if (vlen >= dstlen) vlen = dstlen - 1;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
  }
  return n;
}

static int demux_sink(void *ctx, int stream, const char *p, size_t n) {
  tsvc_docker_req_t *r = ctx;
  if (stream != TSVC_DEMUX_STDIN) tsvc_tail_add(&r->tail, p, n);
  return 0;
}

static bool http_ok(long http) {
  return (http >= 200 && http < 300) || http == 304;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
  tsvc_docker_req_t *r = ud;
  size_t n = size * nmemb;
  int rc = 0;
  /* Error bodies are JSON ({"message": ...}) whatever the sink. */
  if (r->sink == TSVC__SINK_BODY || !http_ok(r->http)) {
    rc = tsvc_buf_add(&r->body, p, n);
    if (rc == TSVC_EINVAL) rc = TSVC_EIO;
  } else if (r->sink == TSVC__SINK_STREAM) {
    rc = tsvc_demux_feed(&r->demux, p, n, demux_sink, r);
  } else {
    rc = tsvc_lines_feed(&r->lines, p, n, r->on_line, r);
  }
  if (rc) {
    r->sink_err = rc;
    return 0; /* not n: libcurl ends the transfer with CURLE_WRITE_ERROR */
  }
  return n;
}

int tsvc__docker_xfer(tsvc_docker_req_t *r, const char *method, const char *path,
                      const json_t *body, tsvc__step_fn step) {
  char *m = tsvc_strdup(method), *pa = tsvc_strdup(path), *post = NULL;
  if (body) post = json_dumps(body, JSON_COMPACT);
  if (!m || !pa || (body && !post)) {
    free(m);
    free(pa);
    free(post);
    return TSVC_ENOMEM;
  }
  free(r->method);
  free(r->path);
  free(r->post);
  r->method = m;
  r->path = pa;
  r->post = post;
  r->step = step;
  return launch(r);
}

int tsvc__docker_launch(tsvc_docker_req_t *r, const char *method, const char *path,
                        const json_t *body, tsvc__step_fn step, tsvc_docker_req_t **reqp) {
  int rc = tsvc__docker_xfer(r, method, path, body, step);
  if (rc) {
    tsvc__docker_req_destroy(r);
    return rc;
  }
  if (reqp) *reqp = r;
  return 0;
}

static int start_negotiation(tsvc_docker_t *d);

static int launch(tsvc_docker_req_t *r) {
  tsvc_docker_t *d = r->d;
  if (d->closing) return TSVC_EINVAL;
  if (d->tunnel && tsvc_tunnel_state(d->tunnel) == TSVC_TUNNEL_STARTING) {
    /* ssh is logging in: the request goes once it has (on_tunnel). A
       tunnel that is down lets it fail at once, with its reason. */
    r->tunnel_wait = true;
    return 0;
  }
  if (r->versioned && !d->api_version[0]) {
    r->parked = true;
    int rc = start_negotiation(d);
    if (rc) r->parked = false;
    return rc;
  }
  char *url = r->versioned ? tsvc_asprintf("%s/v%s%s", d->base_url, d->api_version, r->path)
                           : tsvc_asprintf("%s%s", d->base_url, r->path);
  if (!url) return TSVC_ENOMEM;

  /* Fresh state for this exchange. The tail is kept: exec_run reads it
   * after the exchange that follows the one that filled it. */
  tsvc_buf_free(&r->body);
  tsvc_buf_init(&r->body, r->sink == TSVC__SINK_BODY ? r->max : TSVC_DOCKER_MAX_BODY);
  tsvc_demux_init(&r->demux);
  tsvc_lines_free(&r->lines);
  tsvc_lines_init(&r->lines, r->sink == TSVC__SINK_LINES ? r->max : TSVC_DOCKER_MAX_EVENT);
  if (r->sink == TSVC__SINK_STREAM) {
    tsvc_tail_free(&r->tail);
    if (tsvc_tail_init(&r->tail, r->max)) {
      free(url);
      return TSVC_ENOMEM;
    }
  }
  r->sink_err = 0;
  r->http = 0;
  r->headers_done = false;
  r->ctype[0] = r->api_header[0] = r->curl_err[0] = '\0';
  curl_slist_free_all(r->hdrs);
  r->hdrs = NULL;

  CURL *e = r->easy;
  curl_easy_reset(e);
  struct curl_slist *h = curl_slist_append(NULL, "Expect:");
  if (h && strcmp(r->method, "GET") != 0) {
    struct curl_slist *h2 = curl_slist_append(h, "Content-Type: application/json");
    if (!h2) {
      curl_slist_free_all(h);
      h = NULL;
    } else {
      h = h2;
    }
  }
  if (h && r->xhdr) {
    struct curl_slist *h3 = curl_slist_append(h, r->xhdr);
    if (!h3) curl_slist_free_all(h);
    h = h3;
  }
  if (!h) {
    free(url);
    return TSVC_ENOMEM;
  }
  r->hdrs = h;
  curl_easy_setopt(e, CURLOPT_URL, url);
  free(url); /* libcurl copies string options */
  if (d->unix_path) curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, d->unix_path);
  if (d->tls) {
    if (d->ca) curl_easy_setopt(e, CURLOPT_CAINFO, d->ca);
    if (d->cert) curl_easy_setopt(e, CURLOPT_SSLCERT, d->cert);
    if (d->key) curl_easy_setopt(e, CURLOPT_SSLKEY, d->key);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, d->tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, d->tls_verify ? 2L : 0L);
  }
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_err);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)TSVC_DOCKER_CONNECT_TIMEOUT_MS);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  if (r->stall_s > 0) {
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, r->stall_s);
  }
  if (r->fresh) {
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  }
  if (strcmp(r->method, "GET") != 0) {
    if (strcmp(r->method, "POST") == 0 || r->post) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post ? r->post : "");
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(r->post ? strlen(r->post) : 0));
    }
    if (strcmp(r->method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
  }
  if (curl_multi_add_handle(d->cu.multi, e) != CURLM_OK) return TSVC_ERUNTIME;
  r->in_multi = true;
  return 0;
}

/* A TLS failure for people: which file or which check, and what to do.
   detail is libcurl's (OpenSSL's) own words, kept at the end. */
static void tls_message(const tsvc_docker_t *d, CURLcode cc, const char *detail, char *out,
                        size_t len) {
  const char *o = d->tls_origin ? d->tls_origin : "TLS";
  if (cc == CURLE_SSL_CACERT_BADFILE) {
    tsvc_errf(out, len, "the TLS CA file %s (%s) cannot be used: %s", d->ca ? d->ca : "(none)", o,
             detail);
  } else if (cc == CURLE_SSL_CERTPROBLEM) {
    tsvc_errf(out, len, "the TLS client certificate %s or its key %s (%s) cannot be used: %s",
             d->cert ? d->cert : "(none)", d->key ? d->key : "(none)", o, detail);
  } else if (cc == CURLE_PEER_FAILED_VERIFICATION &&
             (strstr(detail, "subject name") || strstr(detail, "host name"))) {
    tsvc_errf(out, len, "hostname check failed: the engine's certificate does not name %s (%s; "
             "connect by a name or address the certificate holds, or give the engine a "
             "certificate for this one): %s", d->ep.host, o, detail);
  } else if (cc == CURLE_PEER_FAILED_VERIFICATION) {
    tsvc_errf(out, len, "the engine's certificate is not signed by the CA in %s (%s): %s",
             d->ca ? d->ca : "(none)", o, detail);
  } else if (strstr(detail, "unknown ca") || strstr(detail, "bad certificate") ||
             strstr(detail, "certificate unknown") || strstr(detail, "decrypt error")) {
    tsvc_errf(out, len, "the engine refused our client certificate %s (%s): it is not signed "
             "by a CA the engine trusts (its --tlscacert): %s", d->cert ? d->cert : "(none)", o,
             detail);
  } else if (strstr(detail, "certificate required") || strstr(detail, "handshake failure")) {
    tsvc_errf(out, len, "the engine wants a client certificate%s%s (%s): %s",
             d->cert ? " and refused " : "; none is set", d->cert ? d->cert : "", o, detail);
  } else if (strstr(detail, "wrong version number") || strstr(detail, "packet length too long")) {
    tsvc_errf(out, len, "no TLS at %s (%s; is this the engine's plain port? 2375 is plain, "
             "2376 TLS): %s", d->host, o, detail);
  } else {
    tsvc_errf(out, len, "TLS with the engine failed (%s): %s", o, detail);
  }
}

static bool tls_failure(CURLcode cc, const char *detail) {
  switch (cc) {
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CACERT_BADFILE:
    return true;
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
    /* TLS 1.3: the engine's verdict on our certificate comes after the
       handshake, as an alert on the first read. */
    return strstr(detail, "alert") || strstr(detail, "SSL_read") || strstr(detail, "SSL_write");
  default:
    return false;
  }
}

/* What libcurl's failure means for a caller. */
static int curl_status(tsvc_docker_req_t *r, CURLcode cc) {
  switch (cc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CACERT_BADFILE:
    return TSVC_EUNREACH;
  case CURLE_OPERATION_TIMEDOUT: {
    curl_off_t connected = 0;
    curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &connected);
    return connected > 0 || r->http ? TSVC_ETIMEDOUT : TSVC_EUNREACH;
  }
  default:
    return TSVC_ERUNTIME;
  }
}

/* The daemon's message from an error body, or the body's first line. */
static void http_message(const tsvc_docker_req_t *r, char *out, size_t outlen) {
  json_t *j = tsvc__docker_body_json(r);
  const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
  if (m) {
    tsvc_strlcpy(out, m, outlen);
  } else if (r->body.len) {
    size_t n = strcspn(r->body.data, "\r\n");
    if (n > 200) n = 200;
    snprintf(out, outlen, "HTTP %ld: %.*s", r->http, (int)n, r->body.data);
  } else {
    snprintf(out, outlen, "HTTP %ld from the Docker daemon", r->http);
  }
  json_decref(j);
}

static int http_status_code(long http, const char *msg) {
  if (http == 404) return TSVC_ENOENT;
  if (http == 409)
    return strstr(msg, "already in use") || strstr(msg, "already exists") ? TSVC_EEXIST
                                                                          : TSVC_EBUSY;
  return TSVC_ERUNTIME;
}

static void xfer_done(tsvc_docker_req_t *r, CURLcode cc) {
  tsvc_docker_t *d = r->d;
  char msg[1024] = "";
  int status = 0;
  if (r->sink_err == TSVC_EIO && r->sink != TSVC__SINK_STREAM) {
    status = TSVC_EIO;
    snprintf(msg, sizeof msg, "the Docker daemon's response to %s %s exceeds %zu bytes",
             r->method, r->path, r->body.max);
  } else if (r->sink_err == TSVC_EIO) {
    status = TSVC_EIO;
    snprintf(msg, sizeof msg, "corrupt output stream from the Docker daemon (%s %s)",
             r->method, r->path);
  } else if (r->sink_err) {
    status = r->sink_err;
    snprintf(msg, sizeof msg, "%s", tsvc_strerror(status));
  } else if (cc != CURLE_OK) {
    status = curl_status(r, cc);
    const char *detail = r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc);
    curl_off_t tls_done = 0; /* when the TLS handshake ended (us), 0: never */
    if (d->tls) curl_easy_getinfo(r->easy, CURLINFO_APPCONNECT_TIME_T, &tls_done);
    if (status == TSVC_EUNREACH && d->tls && r->http == 0 && tls_failure(cc, detail)) {
      char why[600];
      tls_message(d, cc, detail, why, sizeof why);
      snprintf(msg, sizeof msg, "cannot connect to the Docker engine at %s: %s", d->host, why);
      d->api_version[0] = '\0';
    } else if (status == TSVC_EUNREACH && d->tls && d->cert && r->http == 0 && tls_done > 0) {
      /* TLS 1.3: the server judges our certificate after its side of the
         handshake. Its alert is lost when it resets the connection before
         sending it (it closes with our request unread), so all we see is
         the connection gone before any answer. */
      snprintf(msg, sizeof msg,
               "cannot connect to the Docker engine at %s: it closed the connection after the "
               "TLS handshake without answering: either the engine refused our client "
               "certificate %s (%s; is it signed by a CA the engine trusts, its --tlscacert?) "
               "or the engine behind the TLS endpoint is down: %s",
               d->host, d->cert, d->tls_origin ? d->tls_origin : "TLS", detail);
      d->api_version[0] = '\0';
    } else if (status == TSVC_EUNREACH && d->tunnel && r->http == 0 &&
               tsvc_tunnel_state(d->tunnel) != TSVC_TUNNEL_UP) {
      snprintf(msg, sizeof msg, "cannot connect to the Docker engine at %s: %s", d->host,
               tsvc_tunnel_state(d->tunnel) == TSVC_TUNNEL_DOWN ? tsvc_tunnel_why(d->tunnel)
                                                              : "the ssh tunnel is starting");
      d->api_version[0] = '\0';
    } else if (status == TSVC_EUNREACH) {
      long oserr = 0;
      curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
      if (r->http == 0 && oserr)
        snprintf(msg, sizeof msg, "cannot connect to the Docker daemon at %s: %s (is dockerd running?)",
                 d->host, strerror((int)oserr));
      else if (r->http == 0)
        snprintf(msg, sizeof msg, "cannot connect to the Docker daemon at %s: %s", d->host, detail);
      else
        snprintf(msg, sizeof msg, "the Docker daemon at %s went away during %s %s: %s", d->host,
                 r->method, r->path, detail);
      d->api_version[0] = '\0'; /* negotiate again when it is back */
    } else if (status == TSVC_ETIMEDOUT && r->stall_s > 0 && !r->timeout_ms) {
      snprintf(msg, sizeof msg, "the Docker daemon sent nothing for %ld s during %s %s",
               r->stall_s, r->method, r->path);
    } else if (status == TSVC_ETIMEDOUT) {
      snprintf(msg, sizeof msg, "the Docker daemon did not answer %s %s within %ld ms", r->method,
               r->path, r->timeout_ms);
    } else {
      snprintf(msg, sizeof msg, "%s %s: %s", r->method, r->path, detail);
    }
  } else if (!http_ok(r->http)) {
    http_message(r, msg, sizeof msg);
    status = http_status_code(r->http, msg);
  } else if (r->sink == TSVC__SINK_STREAM && tsvc_demux_end(&r->demux, demux_sink, r)) {
    status = TSVC_EIO;
    snprintf(msg, sizeof msg, "the output stream of %s %s ended inside a frame", r->method,
             r->path);
  }
  r->step(r, status, msg);
}

static void check_done(tsvc_docker_t *d) {
  tsvc__docker_events_flush(d);
  CURLMsg *m;
  int left;
  while (!d->closing && (m = curl_multi_info_read(d->cu.multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode cc = m->data.result;
    char *priv = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    tsvc_docker_req_t *r = (tsvc_docker_req_t *)(void *)priv;
    curl_multi_remove_handle(d->cu.multi, e);
    r->in_multi = false;
    xfer_done(r, cc);
  }
  tsvc__docker_events_flush(d);
}

/* ---- ping and version negotiation ---------------------------------------- */

/* The version to speak: the daemon's, at most ours. */
static int negotiate(tsvc_docker_t *d, const char *daemon, char *msg, size_t msglen) {
  int v = version_num(daemon);
  if (v < 0) {
    snprintf(msg, msglen, "the Docker daemon at %s sent no usable Api-Version header (\"%s\")",
             d->host, daemon);
    return TSVC_ERUNTIME;
  }
  if (v < version_num(TSVC_DOCKER_API_MIN)) {
    snprintf(msg, msglen, "the Docker daemon at %s speaks API %s, older than the %s we need",
             d->host, daemon, TSVC_DOCKER_API_MIN);
    return TSVC_ERUNTIME;
  }
  tsvc_strlcpy(d->api_version, v > version_num(TSVC_DOCKER_API_MAX) ? TSVC_DOCKER_API_MAX : daemon,
               sizeof d->api_version);
  return 0;
}

/* Run or fail what waited for the negotiation. One at a time, from the
 * list's head each time: a step may free any request. */
static void resume_parked(tsvc_docker_t *d, int status, const char *msg) {
  for (;;) {
    if (d->closing) return;
    tsvc_docker_req_t *r = d->reqs;
    while (r && !r->parked) r = r->next;
    if (!r) return;
    r->parked = false;
    int rc = status;
    char buf[128];
    const char *m = msg;
    if (!rc) {
      rc = launch(r);
      if (rc) {
        snprintf(buf, sizeof buf, "cannot start a request: %s", tsvc_strerror(rc));
        m = buf;
      }
    }
    if (rc) r->step(r, rc, m);
  }
}

/* The ssh tunnel changed: what waited for it goes (up) or fails (down).
   One at a time, from the list's head each time: a step may free any
   request. */
static void on_tunnel(tsvc_tunnel_state_t state, const char *msg, void *data) {
  tsvc_docker_t *d = data;
  if (state == TSVC_TUNNEL_STARTING) return;
  tsvc__docker_enter(d);
  for (;;) {
    if (d->closing) break;
    tsvc_docker_req_t *r = d->reqs;
    while (r && !r->tunnel_wait) r = r->next;
    if (!r) break;
    r->tunnel_wait = false;
    int rc = TSVC_EUNREACH;
    char buf[900];
    if (state == TSVC_TUNNEL_UP) {
      rc = launch(r);
      snprintf(buf, sizeof buf, "cannot start a request: %s", tsvc_strerror(rc));
    } else {
      snprintf(buf, sizeof buf, "cannot connect to the Docker engine at %s: %s", d->host, msg);
      d->api_version[0] = '\0';
    }
    if (rc) r->step(r, rc, buf);
  }
  tsvc__docker_leave(d);
}

static void ping_step(tsvc_docker_req_t *r, int status, const char *errmsg) {
  tsvc_docker_t *d = r->d;
  char msg[1024];
  tsvc_strlcpy(msg, errmsg, sizeof msg);
  if (!status) status = negotiate(d, r->api_header, msg, sizeof msg);
  bool internal = d->negotiation == r;
  if (internal) d->negotiation = NULL;
  /* The request is not freed yet: resume_parked runs other requests'
   * steps, which never free this one (it has no parent or child). */
  resume_parked(d, status, msg);
  if (internal || d->closing) {
    tsvc__docker_req_destroy(r);
    return;
  }
  if (status) {
    tsvc__docker_fail(r, status, msg);
    return;
  }
  json_t *j = json_pack("{s:s, s:s}", "ApiVersion", r->api_header, "Negotiated", d->api_version);
  tsvc_docker_reply_t rep = {.json = j, .exit_code = -1};
  /* The body of /_ping is "OK"; the OS comes in a header we do not keep. */
  tsvc__docker_done(r, &rep);
  json_decref(j);
}

static int start_negotiation(tsvc_docker_t *d) {
  if (d->negotiation) return 0;
  tsvc_docker_req_t *n = tsvc__docker_req_new(d, NULL, NULL);
  if (!n) return TSVC_ENOMEM;
  n->versioned = false;
  n->max = 4096;
  d->negotiation = n;
  int rc = tsvc__docker_xfer(n, "GET", "/_ping", NULL, ping_step);
  if (rc) tsvc__docker_req_destroy(n);
  return rc;
}

int tsvc_docker_ping(tsvc_docker_t *d, tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp) {
  if (!d || !cb) return TSVC_EINVAL;
  tsvc_docker_req_t *r = tsvc__docker_req_new(d, cb, data);
  if (!r) return TSVC_ENOMEM;
  r->versioned = false;
  r->max = 4096;
  /* A ping asks whether the daemon takes clients: a connection kept alive
     from before may still be served by a daemon that is shutting down and
     accepts no new one (dockerd closes its listener first). */
  r->fresh = true;
  return tsvc__docker_launch(r, "GET", "/_ping", NULL, ping_step, reqp);
}
