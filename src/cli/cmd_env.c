/*
 * cmd_env.c: `tanuki-svc env [--format shell|json]`: the connection
 * variables agents need, from the config: the host is 127.0.0.1 and the
 * port the published one.
 *
 *   postgres (by name or image): POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER,
 *     POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_URL
 *   redis: REDIS_HOST, REDIS_PORT, REDIS_URL (with the password when set)
 *   any other service with a port: <NAME>_HOST, <NAME>_PORT, NAME in a form
 *     a shell takes (tsvc_env_prefix: 9lives -> _9LIVES_HOST)
 */
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
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

/* A URL userinfo/path part, percent-encoded. Caller frees with curl_free. */
static char *esc(const char *s) { return curl_easy_escape(NULL, s ? s : "", 0); }

static int add(json_t *o, const char *k, const char *v) {
  return json_object_set_new(o, k, json_string(v ? v : ""));
}

/* The variables, in file order. Prefixes come from the config module, which
   refused a config where two services would share one. Returns 0 or
   TSVC_ENOMEM. */
static int collect(const tsvc_config_t *cfg, json_t *o) {
  char **pre = tsvc_env_prefixes(cfg);
  if (!pre) return TSVC_ENOMEM;
  char port[16];
  for (size_t i = 0; i < cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    if (!s->host_port) continue;
    /* The host's view: the published port (port: "H:C" -> H). */
    snprintf(port, sizeof port, "%d", s->host_port);
    const char *kind = tsvc_env_kind(s);
    if (kind && strcmp(kind, "postgres") == 0 && strcmp(pre[i], "POSTGRES") == 0) {
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
                                pw && *pw ? p : "", s->host_port, d);
      add(o, "POSTGRES_URL", url);
      free(url);
      curl_free(u);
      curl_free(p);
      curl_free(d);
      continue;
    }
    if (kind && strcmp(kind, "redis") == 0 && strcmp(pre[i], "REDIS") == 0) {
      const char *pw = env_get(s, "REDIS_PASSWORD");
      add(o, "REDIS_HOST", "127.0.0.1");
      add(o, "REDIS_PORT", port);
      char *p = esc(pw);
      char *url = pw && *pw ? tsvc_asprintf("redis://:%s@127.0.0.1:%d/0", p, s->host_port)
                            : tsvc_asprintf("redis://127.0.0.1:%d/0", s->host_port);
      add(o, "REDIS_URL", url);
      free(url);
      curl_free(p);
      continue;
    }
    char hk[200], pk[200];
    snprintf(hk, sizeof hk, "%s_HOST", pre[i]);
    snprintf(pk, sizeof pk, "%s_PORT", pre[i]);
    add(o, hk, "127.0.0.1");
    add(o, pk, port);
  }
  tsvc_env_prefixes_free(pre, cfg->nservices);
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

/* Where each service's data is, as comment lines (eval passes over them). */
static void print_data(const cli_project_t *p) {
  const char *runtime = NULL;
  for (size_t i = 0; i < p->cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &p->cfg->services[i];
    if (s->external || !s->enabled) continue;
    if (!runtime) runtime = cli_runtime_in_use(p);
    char where[PATH_MAX + 128];
    if (cli_data_location(p, s, runtime, where, sizeof where) == 0)
      printf("# %s data (%s runtime): %s\n", s->name, runtime, where);
  }
}

int cmd_env(const cli_args_t *a) {
  const char *format = cli_str(a, &CLI_OPT_FORMAT);
  if (!format) format = "shell";
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p);
  if (rc) return rc;
  json_t *o = json_object();
  if (!o || collect(p.cfg, o) != 0) {
    cli_err("env: out of memory");
    json_decref(o);
    cli_project_free(&p);
    return TSVC_EXIT_FAIL;
  }
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
    print_data(&p);
  }
  json_decref(o);
  cli_project_free(&p);
  return fflush(stdout) == 0 ? TSVC_EXIT_OK : TSVC_EXIT_FAIL;
}
