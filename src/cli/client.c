/* client.c: the project a command acts on, and a small HTTP client of the
   monitor's API over its unix socket (libcurl, as curl's unixsocket.c). */
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"
#include "common/util.h"

const char *cli_config_path(const char *opt) {
  if (opt && *opt) return opt;
  const char *env = getenv("TANUKI_CONFIG");
  return env && *env ? env : TSVC_DEFAULT_CONFIG;
}

int cli_project_load(const char *path, cli_project_t *p) {
  return cli_project_load2(path, p, false);
}

int cli_project_load2(const char *path, cli_project_t *p, bool warnings) {
  memset(p, 0, sizeof *p);
  tsvc_diag_t diag = {0};
  int rc = tsvc_config_load(path, &p->cfg, &diag);
  /* Warnings are for 'config validate' and 'up'; errors for everyone. */
  for (size_t i = 0; (rc || warnings) && i < diag.n; i++) fprintf(stderr, "%s\n", diag.lines[i]);
  tsvc_diag_free(&diag);
  if (rc) {
    cli_err("cannot load %s: %s", path, tsvc_strerror(rc));
    return TSVC_EXIT_FAIL;
  }
  char abs[PATH_MAX];
  p->config_path = strdup(realpath(path, abs) ? abs : path);
  const char *slash = p->config_path ? strrchr(p->config_path, '/') : NULL;
  p->dir = slash ? tsvc_strndup(p->config_path, (size_t)(slash - p->config_path)) : strdup(".");
  if (p->dir && !p->dir[0]) {
    free(p->dir);
    p->dir = strdup("/");
  }
  p->state_dir = p->dir ? tsvc_asprintf("%s/.tanuki", strcmp(p->dir, "/") ? p->dir : "") : NULL;
  p->socket = p->config_path ? tsvc_api_socket_path(p->config_path, p->cfg->monitor.socket) : NULL;
  if (!p->config_path || !p->dir || !p->state_dir || !p->socket) {
    cli_err("out of memory");
    cli_project_free(p);
    return TSVC_EXIT_FAIL;
  }
  return 0;
}

void cli_project_free(cli_project_t *p) {
  tsvc_config_free(p->cfg);
  free(p->config_path);
  free(p->dir);
  free(p->state_dir);
  free(p->socket);
  memset(p, 0, sizeof *p);
}

void cli_no_monitor(const cli_project_t *p) {
  fprintf(stderr, "tanuki-svc: no monitor running (no socket at %s); acting directly\n",
          p->socket);
}

static size_t on_body(char *ptr, size_t size, size_t n, void *data) {
  tsvc_buf_t *b = data;
  return tsvc_buf_add(b, ptr, size * n) ? 0 : size * n;
}

int cli_api(const char *socket, const char *method, const char *path, long timeout_ms,
            cli_reply_t *r, char *err, size_t errlen) {
  r->status = 0;
  r->body = NULL;
  char why[512];
  switch (tsvc_api_socket_state(socket, why, sizeof why)) {
  case TSVC_API_SOCK_NONE:
  case TSVC_API_SOCK_STALE: return CLI_API_NONE;
  case TSVC_API_SOCK_DENIED:
    snprintf(err, errlen, "cannot reach the monitor: %s", why);
    return CLI_API_UNREACH;
  case TSVC_API_SOCK_LIVE: break;
  }
  CURL *c = curl_easy_init();
  if (!c) {
    snprintf(err, errlen, "out of memory");
    return CLI_API_UNREACH;
  }
  tsvc_buf_t b;
  tsvc_buf_init(&b, 64u << 20);
  char url[1024];
  /* The name part is escaped: a service name is a path segment. */
  snprintf(url, sizeof url, "http://localhost%s", path);
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  }
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  CURLcode cc = curl_easy_perform(c);
  int rc = CLI_API_OK;
  if (cc == CURLE_COULDNT_CONNECT) {
    rc = CLI_API_NONE; /* it went away meanwhile */
  } else if (cc != CURLE_OK) {
    snprintf(err, errlen, "cannot reach the monitor at %s: %s", socket, curl_easy_strerror(cc));
    rc = CLI_API_UNREACH;
  } else {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->body = b.data ? tsvc_buf_steal(&b) : strdup("");
  }
  tsvc_buf_free(&b);
  curl_easy_cleanup(c);
  return rc;
}

const char *cli_api_error(const cli_reply_t *r) {
  static char msg[4096];
  json_t *v = r->body ? json_loads(r->body, 0, NULL) : NULL;
  const char *e = json_string_value(json_object_get(v, "error"));
  if (e) tsvc_strlcpy(msg, e, sizeof msg);
  else snprintf(msg, sizeof msg, "HTTP %ld: %s", r->status, r->body ? r->body : "");
  json_decref(v);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n') msg[--n] = '\0';
  return msg;
}

char *cli_service_path(const char *name, const char *action) {
  char *esc = curl_easy_escape(NULL, name, 0);
  if (!esc) return NULL;
  char *p = tsvc_asprintf("/v1/services/%s%s%s", esc, action ? "/" : "", action ? action : "");
  curl_free(esc);
  return p;
}
