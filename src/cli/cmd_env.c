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
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"

static const char usage_text[] =
    "usage: tanuki-svc env [--format shell|json] [-c FILE]\n"
    "\n"
    "Print the connection variables of the services, from the config (host\n"
    "127.0.0.1, the published port):\n"
    "  postgres  POSTGRES_HOST POSTGRES_PORT POSTGRES_USER POSTGRES_PASSWORD\n"
    "            POSTGRES_DB POSTGRES_URL\n"
    "  redis     REDIS_HOST REDIS_PORT REDIS_URL (with the password when set)\n"
    "  others    NAME_HOST NAME_PORT (NAME upper-cased, other characters '_')\n"
    "A service is postgres or redis by its name, else by its image. The shell\n"
    "format ends with a comment line per service saying where its data is.\n"
    "\n"
    "  -f, --format F     shell (default: export lines for eval) or json\n"
    "  -c, --config FILE  the config (default: $TANUKI_CONFIG, else tanuki.yaml)\n"
    "  -h, --help         this text\n"
    "\n"
    "  eval \"$(tanuki-svc env)\"\n"
    "\n"
    "Exit: 0 ok, 1 invalid config, 2 usage.\n";

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

int cmd_env(int argc, char **argv) {
  const char *copt = NULL, *format = "shell";
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:f:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': copt = optarg; break;
    case 'f': format = optarg; break;
    case 'h': fputs(usage_text, stdout); return TSVC_EXIT_OK;
    default: fputs(usage_text, stderr); return TSVC_EXIT_USAGE;
    }
  }
  if (optind != argc || (strcmp(format, "shell") != 0 && strcmp(format, "json") != 0)) {
    if (optind == argc) cli_err("env: unknown format '%s' (shell, json)", format);
    fputs(usage_text, stderr);
    return TSVC_EXIT_USAGE;
  }
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(copt), &p);
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
    print_data(&p);
  }
  json_decref(o);
  cli_project_free(&p);
  return fflush(stdout) == 0 ? TSVC_EXIT_OK : TSVC_EXIT_FAIL;
}
