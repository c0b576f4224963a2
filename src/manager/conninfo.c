/*
 * conninfo.c: how clients reach the services (conninfo.h).
 */
#include "manager/conninfo.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

const char *tsvc_view_name(tsvc_view_t v) { return v == TSVC_VIEW_NETWORK ? "network" : "host"; }

int tsvc_view_parse(const char *name, tsvc_view_t *out) {
  if (name && strcmp(name, "host") == 0) *out = TSVC_VIEW_HOST;
  else if (name && strcmp(name, "network") == 0) *out = TSVC_VIEW_NETWORK;
  else return TSVC_EINVAL;
  return 0;
}

bool tsvc_conn_prefix_ok(const char *s) {
  if (!s) return false;
  if (isdigit((unsigned char)s[0])) return false;
  for (const char *c = s; *c; c++)
    if (!isalnum((unsigned char)*c) && *c != '_') return false;
  return true;
}

static const char *env_get(const tsvc_service_conf_t *s, const char *key) {
  for (size_t i = 0; i < s->env_len; i++)
    if (strcmp(s->env[i].key, key) == 0) return s->env[i].value;
  return NULL;
}

static void info_clear(tsvc_conn_info_t *c) {
  free(c->service);
  free(c->prefix);
  free(c->kind);
  free(c->host);
  free(c->url);
  free(c->username);
  free(c->password);
  free(c->database);
  free(c->dsn);
  memset(c, 0, sizeof *c);
}

void tsvc_conn_list_free(tsvc_conn_list_t *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) info_clear(&l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* A URL's userinfo or path part, percent-encoded (RFC 3986 unreserved kept).
   NULL when out of memory. */
static char *esc(const char *s) {
  char *e = curl_easy_escape(NULL, s ? s : "", 0);
  if (!e) return NULL;
  char *r = tsvc_strdup(e);
  curl_free(e);
  return r;
}

int tsvc_conn_build(tsvc_conn_info_t *c) {
  char *url = NULL, *dsn = NULL;
  const bool pw = c->password && c->password[0];
  if (strcmp(c->kind, "redis") == 0) {
    char *p = pw ? esc(c->password) : NULL;
    if (!pw || p)
      /* The user "default" (redis 6's ACL name for requirepass): redis-cli
         reads "redis://:pw@" as the user "" and fails its AUTH. */
      url = pw ? tsvc_asprintf("redis://default:%s@%s:%d", p, c->host, c->port)
               : tsvc_asprintf("redis://%s:%d", c->host, c->port);
    free(p);
    dsn = tsvc_strdup("");
  } else {
    url = tsvc_asprintf("%s:%d", c->host, c->port);
    if (strcmp(c->kind, "postgres") == 0) {
      char *u = esc(c->username), *p = esc(c->password), *d = esc(c->database);
      if (u && p && d)
        dsn = tsvc_asprintf("postgres://%s%s%s@%s:%d/%s", u, pw ? ":" : "", pw ? p : "",
                            c->host, c->port, d);
      free(u);
      free(p);
      free(d);
    } else {
      dsn = tsvc_strdup("");
    }
  }
  if (!url || !dsn) {
    free(url);
    free(dsn);
    return TSVC_ENOMEM;
  }
  free(c->url);
  free(c->dsn);
  c->url = url;
  c->dsn = dsn;
  return 0;
}

/* One service's entry. Returns 0 or TSVC_ENOMEM (c cleared). */
static int fill(tsvc_conn_info_t *c, const tsvc_config_t *cfg, const tsvc_service_conf_t *s,
                const char *prefix, bool docker, tsvc_view_t view, const char *host_addr) {
  const char *kind = tsvc_env_kind(s);
  const char *user = "", *pw = "", *db = "";
  if (kind && strcmp(kind, "postgres") == 0) {
    user = env_get(s, "POSTGRES_USER");
    if (!user || !*user) user = "postgres";
    pw = env_get(s, "POSTGRES_PASSWORD");
    db = env_get(s, "POSTGRES_DB");
    if (!db || !*db) db = user;
  } else if (kind && strcmp(kind, "redis") == 0) {
    pw = env_get(s, "REDIS_PASSWORD");
  }
  /* The network view of one of our containers: its name on the network
     and the port it listens on there. */
  bool in_net = view == TSVC_VIEW_NETWORK && docker && !s->external;
  c->service = tsvc_strdup(s->name);
  c->prefix = tsvc_strdup(prefix);
  c->kind = tsvc_strdup(kind ? kind : "");
  const char *cprefix = cfg->docker.container_prefix ? cfg->docker.container_prefix : "";
  c->host = in_net ? tsvc_asprintf("%s%s", cprefix, s->name) : tsvc_strdup(host_addr);
  c->port = in_net ? s->port : s->host_port;
  c->username = tsvc_strdup(user);
  c->password = tsvc_strdup(pw ? pw : "");
  c->database = tsvc_strdup(db);
  if (!c->service || !c->prefix || !c->kind || !c->host || !c->username || !c->password ||
      !c->database || tsvc_conn_build(c) != 0) {
    info_clear(c);
    return TSVC_ENOMEM;
  }
  return 0;
}

int tsvc_conn_collect(const tsvc_config_t *cfg, const char *runtime, tsvc_view_t view,
                      const char *host_addr, tsvc_conn_list_t *out) {
  *out = (tsvc_conn_list_t){.view = view};
  if (!host_addr) host_addr = "127.0.0.1";
  bool docker;
  if (runtime && *runtime) docker = strcmp(runtime, "process") != 0;
  else docker = cfg->runtime != TSVC_RUNTIME_PROCESS;
  out->shared_host = view == TSVC_VIEW_NETWORK && !docker;
  char **pre = tsvc_env_prefixes(cfg);
  if (!pre) return TSVC_ENOMEM;
  int rc = 0;
  if (cfg->nservices && !(out->v = calloc(cfg->nservices, sizeof *out->v))) rc = TSVC_ENOMEM;
  for (size_t i = 0; !rc && i < cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    if (!s->enabled || !s->port) continue;
    rc = fill(&out->v[out->n], cfg, s, pre[i], docker, view, host_addr);
    if (!rc) out->n++;
  }
  tsvc_env_prefixes_free(pre, cfg->nservices);
  if (rc) tsvc_conn_list_free(out);
  return rc;
}

int tsvc_conn_strip_secrets(tsvc_conn_list_t *l) {
  for (size_t i = 0; i < l->n; i++) {
    tsvc_conn_info_t *c = &l->v[i];
    if (!c->password[0]) continue;
    char *empty = tsvc_strdup("");
    if (!empty) return TSVC_ENOMEM;
    free(c->password);
    c->password = empty;
    int rc = tsvc_conn_build(c);
    if (rc) return rc;
  }
  return 0;
}

void tsvc_conn_vars_free(tsvc_kv_t *kv, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(kv[i].key);
    free(kv[i].value);
  }
  free(kv);
}

static int var(tsvc_kv_t **kv, size_t *n, const char *extra, const char *prefix,
               const char *suffix, const char *value) {
  tsvc_kv_t *v = realloc(*kv, (*n + 1) * sizeof **kv);
  if (!v) return TSVC_ENOMEM;
  *kv = v;
  char *k = tsvc_asprintf("%s%s_%s", extra, prefix, suffix);
  char *val = tsvc_strdup(value ? value : "");
  if (!k || !val) {
    free(k);
    free(val);
    return TSVC_ENOMEM;
  }
  v[*n] = (tsvc_kv_t){k, val};
  ++*n;
  return 0;
}

int tsvc_conn_vars(const tsvc_conn_info_t *c, const char *extra, bool secrets, tsvc_kv_t **kv,
                   size_t *n) {
  if (!extra) extra = "";
  char port[16];
  snprintf(port, sizeof port, "%d", c->port);
  const char *p = c->prefix;
  int rc = var(kv, n, extra, p, "HOST", c->host);
  if (!rc) rc = var(kv, n, extra, p, "PORT", port);
  if (!rc) rc = var(kv, n, extra, p, "URL", c->url);
  if (strcmp(c->kind, "postgres") == 0) {
    if (!rc) rc = var(kv, n, extra, p, "USER", c->username);
    if (!rc && secrets) rc = var(kv, n, extra, p, "PASSWORD", c->password);
    if (!rc) rc = var(kv, n, extra, p, "DATABASE", c->database);
    if (!rc) rc = var(kv, n, extra, p, "DB", c->database);
    if (!rc) rc = var(kv, n, extra, p, "DSN", c->dsn);
  } else if (strcmp(c->kind, "redis") == 0) {
    if (!rc && secrets && c->password[0]) rc = var(kv, n, extra, p, "PASSWORD", c->password);
  }
  return rc;
}
