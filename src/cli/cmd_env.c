/*
 * cmd_env.c: `tanuki-svc env [--format shell|json]`: the connection
 * variables agents need, from the config: the host is 127.0.0.1 and the
 * port the published one.
 *
 *   postgres (by name or image): POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER,
 *     POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_URL
 *   redis: REDIS_HOST, REDIS_PORT, REDIS_URL (with the password when set)
 *   any other service with a port: <NAME>_HOST, <NAME>_PORT
 */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"

static const char *env_get(const tsvc_service_conf_t *s, const char *key) {
  for (size_t i = 0; i < s->env_len; i++)
    if (strcmp(s->env[i].key, key) == 0) return s->env[i].value;
  return NULL;
}

/* Is s of kind ("postgres", "redis")? By name first, then by image. */
static bool is_kind(const tsvc_service_conf_t *s, const char *kind) {
  if (strcmp(s->name, kind) == 0) return true;
  if (!s->image) return false;
  const char *slash = strrchr(s->image, '/');
  const char *base = slash ? slash + 1 : s->image;
  return strncmp(base, kind, strlen(kind)) == 0 &&
         (base[strlen(kind)] == '\0' || base[strlen(kind)] == ':' || base[strlen(kind)] == '-');
}

/* A URL userinfo/path part, percent-encoded. Caller frees with curl_free. */
static char *esc(const char *s) { return curl_easy_escape(NULL, s ? s : "", 0); }

static int add(json_t *o, const char *k, const char *v) {
  return json_object_set_new(o, k, json_string(v ? v : ""));
}

static int collect(const tsvc_config_t *cfg, json_t *o) {
  bool pg_done = false, redis_done = false;
  char port[16];
  for (size_t i = 0; i < cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    if (!s->port) continue;
    snprintf(port, sizeof port, "%d", s->port);
    if (!pg_done && is_kind(s, "postgres")) {
      pg_done = true;
      const char *user = env_get(s, "POSTGRES_USER");
      if (!user || !*user) user = "postgres";
      const char *pw = env_get(s, "POSTGRES_PASSWORD");
      const char *db = env_get(s, "POSTGRES_DB");
      if (!db || !*db) db = user;
      add(o, "POSTGRES_HOST", "127.0.0.1");
      add(o, "POSTGRES_PORT", port);
      add(o, "POSTGRES_USER", user);
      add(o, "POSTGRES_PASSWORD", pw ? pw : "");
      add(o, "POSTGRES_DB", db);
      char *u = esc(user), *p = esc(pw), *d = esc(db);
      char *url = tsvc_asprintf("postgres://%s%s%s@127.0.0.1:%d/%s", u, pw && *pw ? ":" : "",
                                pw && *pw ? p : "", s->port, d);
      add(o, "POSTGRES_URL", url);
      free(url);
      curl_free(u);
      curl_free(p);
      curl_free(d);
      continue;
    }
    if (!redis_done && is_kind(s, "redis")) {
      redis_done = true;
      const char *pw = env_get(s, "REDIS_PASSWORD");
      add(o, "REDIS_HOST", "127.0.0.1");
      add(o, "REDIS_PORT", port);
      char *p = esc(pw);
      char *url = pw && *pw ? tsvc_asprintf("redis://:%s@127.0.0.1:%d/0", p, s->port)
                            : tsvc_asprintf("redis://127.0.0.1:%d/0", s->port);
      add(o, "REDIS_URL", url);
      free(url);
      curl_free(p);
      continue;
    }
    char key[256];
    size_t k = 0;
    for (const char *c = s->name; *c && k < sizeof key - 8; c++)
      key[k++] = isalnum((unsigned char)*c) ? (char)toupper((unsigned char)*c) : '_';
    key[k] = '\0';
    char hk[272], pk[272];
    snprintf(hk, sizeof hk, "%s_HOST", key);
    snprintf(pk, sizeof pk, "%s_PORT", key);
    add(o, hk, "127.0.0.1");
    add(o, pk, port);
  }
  return 0;
}

/* 'value' for a POSIX shell. */
static void shell_quote(const char *v) {
  putchar('\'');
  for (const char *c = v; *c; c++) {
    if (*c == '\'') fputs("'\\''", stdout);
    else putchar(*c);
  }
  putchar('\'');
}

int cmd_env(const cli_args_t *a) {
  const char *format = cli_str(a, &CLI_OPT_FORMAT);
  if (!format) format = "shell";
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p);
  if (rc) return rc;
  json_t *o = json_object();
  collect(p.cfg, o);
  if (strcmp(format, "json") == 0) {
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text ? text : "{}");
    free(text);
  } else {
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
      printf("export %s=", k);
      shell_quote(json_string_value(v));
      putchar('\n');
    }
  }
  json_decref(o);
  cli_project_free(&p);
  return fflush(stdout) == 0 ? TSVC_EXIT_OK : TSVC_EXIT_FAIL;
}
