/*
 * resolve.c: probe: auto (docs/design.md, "Probes"), and the parameters of an
 * explicit probe kind, derived from a service's config.
 *
 * Pure: no I/O, no allocation. Every string put in the spec points into
 * the service's config or into static storage.
 *
 * Well-known commands become native probes only when every word of them is
 * understood; anything else (an unknown flag, an extra word, a conninfo
 * string for -d, the CMD-SHELL form) keeps the command, run by exec.
 * A -h/--host naming the loopback or a unix socket directory means "the
 * service itself" (the command runs inside the container): host stays NULL
 * and the caller fills in where the service is reached.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "probe/probe.h"

#define DEFAULT_TIMEOUT_MS 5000

typedef struct {
  const char *user, *dbname, *host;
  int port;
} pg_cmd_t;

typedef struct {
  const char *password, *user, *host;
  int port;
} redis_cmd_t;

/* An option of a well-known command. */
typedef struct {
  char short_name;       /* 0: none */
  const char *long_name; /* NULL: none */
  bool has_arg;
  int slot;              /* where the value goes; -1: ignored */
} cmd_opt_t;

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static const char *env_get(const tsvc_service_conf_t *svc, const char *key) {
  for (size_t i = 0; i < svc->env_len; i++)
    if (svc->env[i].key && strcmp(svc->env[i].key, key) == 0)
      return svc->env[i].value && *svc->env[i].value ? svc->env[i].value : NULL;
  return NULL;
}

static bool parse_port(const char *s, int *out) {
  long v;
  if (!s || tsvc_parse_int(s, 1, 65535, &v) != 0) return false;
  *out = (int)v;
  return true;
}

/* Loopback names and socket directories mean the service itself. */
static const char *host_or_self(const char *h) {
  if (!h) return NULL;
  if (h[0] == '/' || strcmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 ||
      strcmp(h, "::1") == 0)
    return NULL;
  return h;
}

/*
 * getopt-like walk over args[1..n) with the option table opts. Values go
 * to vals[slot]. Returns the index of the first word that is not an option
 * (n when none), or -1 when an option is unknown, lacks its value, or a
 * value is empty.
 */
static long walk_options(char *const *args, size_t n, const cmd_opt_t *opts, size_t nopts,
                         const char **vals) {
  size_t i = 1;
  for (; i < n; i++) {
    const char *a = args[i];
    if (!a) return -1;
    if (a[0] != '-' || a[1] == '\0') break;
    const cmd_opt_t *o = NULL;
    const char *val = NULL;
    if (a[1] == '-') {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      for (size_t k = 0; k < nopts; k++)
        if (opts[k].long_name && strlen(opts[k].long_name) == len &&
            strncmp(opts[k].long_name, name, len) == 0)
          o = &opts[k];
      if (!o || (eq && !o->has_arg)) return -1;
      if (o->has_arg) val = eq ? eq + 1 : (i + 1 < n ? args[++i] : NULL);
    } else {
      for (size_t k = 0; k < nopts; k++)
        if (opts[k].short_name && opts[k].short_name == a[1]) o = &opts[k];
      if (!o) return -1;
      if (o->has_arg)
        val = a[2] ? a + 2 : (i + 1 < n ? args[++i] : NULL);
      else if (a[2])
        return -1; /* bundled flags: not worth guessing */
    }
    if (o->has_arg) {
      if (!val || !*val) return -1;
      if (o->slot >= 0) vals[o->slot] = val;
    }
  }
  return (long)i;
}

enum { S_USER, S_DB, S_HOST, S_PORT, S_PASS, S_NSLOTS };

static bool parse_pg_isready(const tsvc_strv_t *c, pg_cmd_t *out) {
  static const cmd_opt_t opts[] = {
      {'U', "username", true, S_USER}, {'d', "dbname", true, S_DB},
      {'h', "host", true, S_HOST},     {'p', "port", true, S_PORT},
      {'t', "timeout", true, -1},      {'q', "quiet", false, -1},
  };
  if (!c->v || c->n < 1 || !c->v[0] || strcmp(base_name(c->v[0]), "pg_isready") != 0)
    return false;
  const char *vals[S_NSLOTS] = {0};
  long end = walk_options(c->v, c->n, opts, TSVC_ARRAY_LEN(opts), vals);
  if (end < 0 || (size_t)end != c->n) return false; /* pg_isready takes no words */
  memset(out, 0, sizeof *out);
  /* A conninfo string or URI in -d says more than we would understand. */
  if (vals[S_DB] && (strchr(vals[S_DB], '=') || strstr(vals[S_DB], "://"))) return false;
  if (vals[S_PORT] && !parse_port(vals[S_PORT], &out->port)) return false;
  out->user = vals[S_USER];
  out->dbname = vals[S_DB];
  out->host = host_or_self(vals[S_HOST]);
  return true;
}

static bool parse_redis_cli(const tsvc_strv_t *c, redis_cmd_t *out) {
  static const cmd_opt_t opts[] = {
      {'h', NULL, true, S_HOST},      {'p', NULL, true, S_PORT},
      {'a', "pass", true, S_PASS},    {0, "user", true, S_USER},
      {0, "no-auth-warning", false, -1},
  };
  if (!c->v || c->n < 1 || !c->v[0] || strcmp(base_name(c->v[0]), "redis-cli") != 0)
    return false;
  const char *vals[S_NSLOTS] = {0};
  long end = walk_options(c->v, c->n, opts, TSVC_ARRAY_LEN(opts), vals);
  /* Exactly one word, PING, and last: redis-cli sends what follows it as
   * arguments of the command. */
  if (end < 0 || (size_t)end + 1 != c->n || !c->v[end] || strcasecmp(c->v[end], "ping") != 0)
    return false;
  memset(out, 0, sizeof *out);
  if (vals[S_PORT] && !parse_port(vals[S_PORT], &out->port)) return false;
  out->password = vals[S_PASS];
  out->user = vals[S_USER];
  out->host = host_or_self(vals[S_HOST]);
  return true;
}

static bool image_has(const char *image, const char *word, const char *not_word) {
  if (!image) return false;
  const char *s = strstr(image, word);
  if (!s) return false;
  return !(not_word && strstr(image, not_word));
}

static bool builtin_postgres(const tsvc_service_conf_t *svc) {
  /* "postgrest" (PostgREST) is an HTTP server, not postgres. */
  return (svc->name && strcmp(svc->name, "postgres") == 0) ||
         image_has(svc->image, "postgres", "postgrest");
}

static bool builtin_redis(const tsvc_service_conf_t *svc) {
  return (svc->name && strcmp(svc->name, "redis") == 0) || image_has(svc->image, "redis", NULL);
}

void tsvc_probe_resolve(const tsvc_service_conf_t *svc, tsvc_probe_spec_t *spec) {
  memset(spec, 0, sizeof *spec);
  const tsvc_healthcheck_conf_t *hc = &svc->healthcheck;
  pg_cmd_t pg;
  redis_cmd_t rc;
  /* The CMD-SHELL form is one string for a shell: expansions and quoting
   * could change its meaning, so it always runs as it is. */
  bool is_pg = !hc->shell && parse_pg_isready(&hc->command, &pg);
  bool is_redis = !hc->shell && parse_redis_cli(&hc->command, &rc);

  tsvc_probe_kind_t kind = hc->probe;
  if (kind == TSVC_PROBE_AUTO) {
    if (is_pg)
      kind = TSVC_PROBE_POSTGRES;
    else if (is_redis)
      kind = TSVC_PROBE_REDIS;
    else if (hc->command.n > 0)
      kind = TSVC_PROBE_EXEC;
    else if (builtin_postgres(svc))
      kind = TSVC_PROBE_POSTGRES;
    else if (builtin_redis(svc))
      kind = TSVC_PROBE_REDIS;
    else if (svc->port > 0)
      kind = TSVC_PROBE_TCP;
    else
      kind = TSVC_PROBE_RUNNING;
  }
  spec->kind = kind;
  spec->timeout = hc->timeout > 0 ? hc->timeout : DEFAULT_TIMEOUT_MS;

  switch (kind) {
    case TSVC_PROBE_POSTGRES: {
      const char *user = is_pg && pg.user ? pg.user : env_get(svc, "POSTGRES_USER");
      if (!user) user = "postgres";
      const char *db = is_pg && pg.dbname ? pg.dbname : env_get(svc, "POSTGRES_DB");
      spec->user = user;
      spec->database = db ? db : user;
      /* Only a held session (healthcheck.session) logs in; the probe
         itself stops at the authentication request. */
      spec->password = env_get(svc, "POSTGRES_PASSWORD");
      spec->host = is_pg ? pg.host : NULL;
      spec->port = is_pg && pg.port ? pg.port : svc->port > 0 ? svc->port : 5432;
      break;
    }
    case TSVC_PROBE_REDIS:
      spec->password =
          is_redis && rc.password ? rc.password : env_get(svc, "REDIS_PASSWORD");
      spec->username = is_redis ? rc.user : NULL;
      spec->host = is_redis ? rc.host : NULL;
      spec->port = is_redis && rc.port ? rc.port : svc->port > 0 ? svc->port : 6379;
      break;
    case TSVC_PROBE_HTTP:
      spec->port = svc->port > 0 ? svc->port : 80;
      spec->path = hc->path && *hc->path ? hc->path : "/";
      spec->status_min = hc->expect_status_min > 0 ? hc->expect_status_min : 200;
      spec->status_max = hc->expect_status_max > 0 ? hc->expect_status_max : 399;
      break;
    case TSVC_PROBE_TCP:
      spec->port = svc->port;
      break;
    case TSVC_PROBE_EXEC:
      spec->argv = hc->command.v;
      spec->argc = hc->command.n;
      spec->shell = hc->shell;
      break;
    case TSVC_PROBE_AUTO:
    case TSVC_PROBE_RUNNING:
      spec->kind = TSVC_PROBE_RUNNING;
      break;
  }
}
