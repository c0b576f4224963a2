/*
 * load.c: tanuki.yaml into a tsvc_config_t.
 *
 * Every key of our sections is one row of a table (name, parse function,
 * field offset, limits), as HAProxy's and Monit's keywords are: a key is
 * validated in exactly one place, and the list of valid keys that feeds
 * "did you mean" is the table itself.
 *
 * The loader never stops at the first error: each parse function reports
 * into the diagnostics and leaves the default in place, and the walk goes
 * on, so one run shows every problem of a file. An explicit null value
 * (`key:` with nothing after it) keeps the default.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include "config/config_int.h"
#include "docker/host.h"
#include "tsvc.h"

#define MAX_FILE_SIZE (16u * 1024 * 1024)
#define MAX_MERGES 10000 /* "<<" merges followed in one file */
#define PATH_MAX_LEN 512

typedef struct {
  const char *file;
  tsvc_diag_t *d;
  tsvc_config_t *cfg;
  char path[PATH_MAX_LEN]; /* "services.postgres.healthcheck" */
  size_t pathlen;
  bool oom;
  size_t merges;
  bool docker_host_set, docker_network_set;
  const ynode_t *docker_host_node; /* where docker.host is set, or NULL */
  const ynode_t *tls_node;         /* docker.tls, when given */
  const ynode_t *ssh_node;         /* docker.ssh, when given */
  const char *network_name;  /* top-level network.name; in the tree */
  const ynode_t **svc_nodes; /* per service: its value node (or NULL) */
  const ynode_t **svc_keys;  /* per service: its name node */
} ctx_t;

typedef struct keydef keydef_t;
typedef void (*parse_fn)(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base);

struct keydef {
  const char *name;
  parse_fn parse;
  size_t off;     /* of the field in the struct the table fills */
  long min, max;  /* integers; durations: min 0 allows zero */
  const void *aux;
};

typedef struct {
  const char *label;        /* "probe", for messages */
  const char *const *names; /* index = enum value; NULL-terminated */
} enumdef_t;

static const char *const runtime_names[] = {"auto", "docker", "process", NULL};
static const char *const probe_names[] = {"auto", "postgres", "redis",   "tcp",
                                          "http", "exec",     "running", NULL};
static const char *const policy_names[] = {"on-unhealthy", "never", NULL};
static const char *const logfmt_names[] = {"text", "json", NULL};
static const char *const pull_names[] = {"missing", "always", "never", NULL};
static const char *const dep_condition_names[] = {"service_started", "service_healthy", NULL};
static const char *const via_names[] = {"auto", "container", "published", "exec", NULL};

static const enumdef_t runtime_enum = {"runtime", runtime_names};
static const enumdef_t probe_enum = {"probe", probe_names};
static const enumdef_t policy_enum = {"restart policy", policy_names};
static const enumdef_t logfmt_enum = {"log_format", logfmt_names};
static const enumdef_t pull_enum = {"pull_policy", pull_names};
static const enumdef_t dep_condition_enum = {"condition", dep_condition_names};
static const enumdef_t via_enum = {"probe_via", via_names};

const char *tsvc_runtime_kind_name(tsvc_runtime_kind_t k) {
  if ((unsigned)k >= TSVC_ARRAY_LEN(runtime_names) - 1) return "invalid";
  return runtime_names[k];
}

const char *tsvc_dep_condition_name(tsvc_dep_condition_t k) {
  if ((unsigned)k >= TSVC_ARRAY_LEN(dep_condition_names) - 1) return "invalid";
  return dep_condition_names[k];
}

const char *tsvc_probe_kind_name(tsvc_probe_kind_t k) {
  if ((unsigned)k >= TSVC_ARRAY_LEN(probe_names) - 1) return "invalid";
  return probe_names[k];
}

const char *tsvc_probe_via_name(tsvc_probe_via_t v) {
  if ((unsigned)v >= TSVC_ARRAY_LEN(via_names) - 1) return "invalid";
  return via_names[v];
}

const char *tsvc_pull_policy_name(tsvc_pull_policy_t p) {
  if ((unsigned)p >= TSVC_ARRAY_LEN(pull_names) - 1) return "invalid";
  return pull_names[p];
}

/* ---- messages ---- */

static void report(ctx_t *c, const ynode_t *at, diag_sev_t sev, const char *fmt, ...)
    TSVC_PRINTF(4, 5);
static void report(ctx_t *c, const ynode_t *at, diag_sev_t sev, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (diag_add(c->d, c->file, at ? at->line : 1, at ? at->col : 1, sev, "%s", msg))
    c->oom = true;
}

#define ERR(c, at, ...) report((c), (at), DIAG_ERROR, __VA_ARGS__)
#define WARN(c, at, ...) report((c), (at), DIAG_WARNING, __VA_ARGS__)

/* What a node is, for "got ...": the scalar in quotes, else its kind. */
static const char *got(const ynode_t *v, char *buf, size_t len) {
  if (v->kind != YN_SCALAR || ynode_is_null(v)) return ynode_kind_name(v);
  if (v->len > 40)
    snprintf(buf, len, "\"%.37s...\"", v->text);
  else
    snprintf(buf, len, "\"%s\"", v->text);
  return buf;
}

static void type_error(ctx_t *c, const ynode_t *v, const char *expected) {
  char g[64];
  ERR(c, v, "%s: expected %s, got %s", c->path, expected, got(v, g, sizeof g));
}

static size_t path_push(ctx_t *c, const char *name) {
  size_t old = c->pathlen;
  int n = snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "." : "", name);
  if (n > 0) c->pathlen = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
  return old;
}

static void path_pop(ctx_t *c, size_t old) {
  c->pathlen = old;
  c->path[old] = '\0';
}

static char *dup_or_oom(ctx_t *c, const char *s) {
  char *p = tsvc_strdup(s);
  if (!p) c->oom = true;
  return p;
}

/* ---- generic value parsers ---- */

static bool as_string(ctx_t *c, const ynode_t *v) {
  if (v->kind == YN_SCALAR) return true;
  type_error(c, v, "a string");
  return false;
}

static void set_string(ctx_t *c, char **field, const char *s) {
  char *p = dup_or_oom(c, s);
  if (!p) return;
  free(*field);
  *field = p;
}

static void p_string(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  if (k->min > 0 && v->len == 0) {
    ERR(c, v, "%s: must not be empty", c->path);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
}

static bool as_bool(ctx_t *c, const ynode_t *v, bool *out) {
  static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
  static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
  if (v->kind == YN_SCALAR && v->plain) {
    for (size_t i = 0; i < TSVC_ARRAY_LEN(yes); i++) {
      if (strcmp(v->text, yes[i]) == 0) return (*out = true), true;
      if (strcmp(v->text, no[i]) == 0) return (*out = false), true;
    }
  }
  type_error(c, v, "a boolean (true or false)");
  return false;
}

static void p_bool(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  bool b;
  if (as_bool(c, v, &b)) *(bool *)((char *)base + k->off) = b;
}

/*
 * An integer from min to max: a plain number, or a quoted one ("5432", as
 * compose writes). Every integer key reads through here, so each says the
 * same thing when it is out of range, however far: "... is too large (at
 * most N)", "... is too small (at least N)", even past what a long holds.
 * Reports and returns false when v is not one.
 */
static bool as_int(ctx_t *c, const ynode_t *v, const char *what, long min, long max,
                   long *out) {
  const char *t = v->kind == YN_SCALAR ? v->text : "";
  const char *digits = t[0] == '-' ? t + 1 : t;
  bool number = v->kind == YN_SCALAR && *digits && strspn(digits, "0123456789") == strlen(digits);
  if (!number) {
    type_error(c, v, "an integer");
    return false;
  }
  errno = 0;
  long n = strtol(t, NULL, 10);
  bool neg = t[0] == '-';
  if (errno == ERANGE || n > max || n < min) {
    if (errno == ERANGE ? !neg : n > max)
      ERR(c, v, "%s: %s is too large (at most %ld)", what, t, max);
    else
      ERR(c, v, "%s: %s is too small (at least %ld)", what, t, min);
    return false;
  }
  *out = n;
  return true;
}

static void p_int(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  long n;
  if (as_int(c, v, c->path, k->min, k->max, &n)) *(int *)((char *)base + k->off) = (int)n;
}

static void p_duration(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (v->kind != YN_SCALAR) {
    type_error(c, v, "a duration (like 5s or 1m30s)");
    return;
  }
  char err[256];
  tsvc_ms_t ms;
  if (tsvc_duration_parse(v->text, &ms, err, sizeof err) != 0) {
    ERR(c, v, "%s: %s", c->path, err);
    return;
  }
  if (ms == 0 && k->min > 0) {
    ERR(c, v, "%s: must be greater than 0", c->path);
    return;
  }
  *(tsvc_ms_t *)((char *)base + k->off) = ms;
}

static void p_enum(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  const enumdef_t *e = k->aux;
  if (v->kind != YN_SCALAR) {
    type_error(c, v, "a string");
    return;
  }
  for (int i = 0; e->names[i]; i++) {
    if (strcmp(v->text, e->names[i]) == 0) {
      /* Every enum of config.h is an int-sized enum with values 0..n. */
      *(int *)((char *)base + k->off) = i;
      return;
    }
  }
  char valid[256];
  size_t n = 0;
  valid[0] = '\0';
  for (size_t i = 0; e->names[i] && n < sizeof valid; i++)
    n += (size_t)snprintf(valid + n, sizeof valid - n, "%s%s", i ? ", " : "", e->names[i]);
  const char *hint = did_you_mean(v->text, e->names);
  if (hint)
    ERR(c, v, "%s: unknown %s \"%s\"; did you mean \"%s\"? (valid: %s)", c->path, e->label,
        v->text, hint, valid);
  else
    ERR(c, v, "%s: unknown %s \"%s\" (valid: %s)", c->path, e->label, v->text, valid);
}

/* pull_policy: compose's words. if_not_present is compose's other name for
 * missing; build (compose builds the image) has no meaning here. */
static void p_pull_policy(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (v->kind == YN_SCALAR && strcmp(v->text, "if_not_present") == 0) {
    *(int *)((char *)base + k->off) = TSVC_PULL_MISSING;
    return;
  }
  if (v->kind == YN_SCALAR && strcmp(v->text, "build") == 0) {
    ERR(c, v, "%s: \"build\" is not supported: tanuki-svc builds no images (build it with "
        "docker build, then use missing or never)", c->path);
    return;
  }
  p_enum(c, k, v, base);
}

/* One port number of a "H:C" form: 1..65535. */
static bool port_number(const char *s, size_t n, int *out) {
  char buf[16];
  long v;
  if (n == 0 || n >= sizeof buf) return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (tsvc_parse_int(buf, 1, 65535, &v) != 0) return false;
  *out = (int)v;
  return true;
}

/*
 * port: N (an integer, or a quoted one as compose writes "5432"): the
 * service listens on N, published on host port N. "H:C": compose's short
 * form, host port H published to container port C. Compose's other forms
 * (an address "127.0.0.1:H:C", ranges, "/udp") are refused by name: ports
 * are published on docker.publish_address, over tcp.
 */
static void p_port(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  (void)k;
  tsvc_service_conf_t *s = base;
  s->port_line = v->line;
  s->port_column = v->col;
  static const char expected[] = "a port (6379) or \"HOST:CONTAINER\" (\"16379:6379\")";
  if (v->kind != YN_SCALAR) {
    type_error(c, v, expected);
    return;
  }
  const char *t = v->text;
  const char *colon = strchr(t, ':');
  if (!colon) {
    const char *digits = t[0] == '-' ? t + 1 : t;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits)) {
      type_error(c, v, expected);
      return;
    }
    long n;
    if (!as_int(c, v, c->path, 1, 65535, &n)) return;
    s->port = s->host_port = (int)n;
    return;
  }
  if (strchr(t, '/')) {
    ERR(c, v, "%s: \"%s\": a protocol is not supported (ports are published over tcp); "
        "write \"HOST:CONTAINER\"", c->path, t);
    return;
  }
  if (strchr(colon + 1, ':')) {
    ERR(c, v, "%s: \"%s\": an address is not supported (ports are published on "
        "docker.publish_address, 127.0.0.1 by default); write \"HOST:CONTAINER\"", c->path, t);
    return;
  }
  if (strchr(t, '-')) {
    ERR(c, v, "%s: \"%s\": port ranges are not supported; write one \"HOST:CONTAINER\"",
        c->path, t);
    return;
  }
  int h, ct;
  bool hok = port_number(t, (size_t)(colon - t), &h);
  bool cok = port_number(colon + 1, strlen(colon + 1), &ct);
  if (!hok || !cok) {
    ERR(c, v, "%s: \"%s\": the %s port must be a number from 1 to 65535 (as in "
        "\"16379:6379\": host port 16379 published to container port 6379)",
        c->path, t, !hok ? "host" : "container");
    return;
  }
  s->host_port = h;
  s->port = ct;
}

static void strv_clear(tsvc_strv_t *s) {
  strv_free_raw(s->v, s->n);
  s->v = NULL;
  s->n = 0;
}

/* A list of non-empty strings; *out is replaced only when all are valid. */
static bool parse_strv(ctx_t *c, const ynode_t *v, tsvc_strv_t *out) {
  if (v->kind != YN_SEQ) {
    type_error(c, v, "a list");
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < v->nitems; i++) {
    const ynode_t *it = v->items[i];
    if (it->kind != YN_SCALAR || ynode_is_null(it)) {
      char g[64];
      ERR(c, it, "%s: expected a string in the list, got %s", c->path, got(it, g, sizeof g));
      ok = false;
    }
  }
  if (!ok) return false;
  char **arr = calloc(v->nitems + 1, sizeof *arr); /* NULL-terminated: an argv */
  if (!arr) {
    c->oom = true;
    return false;
  }
  for (size_t i = 0; i < v->nitems; i++) {
    if (!(arr[i] = dup_or_oom(c, v->items[i]->text))) {
      strv_free_raw(arr, v->nitems);
      return false;
    }
  }
  strv_clear(out);
  out->v = arr;
  out->n = v->nitems;
  return true;
}

static void p_strv(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  parse_strv(c, v, (tsvc_strv_t *)((char *)base + k->off));
}

/*
 * A command as Docker and compose write it: a list (argv); ["CMD", ...];
 * ["CMD-SHELL", "string"]; or a plain string, run by the shell.
 * Returns true with *shell set when the command is one shell string.
 */
static bool parse_command(ctx_t *c, const ynode_t *v, tsvc_strv_t *out, bool *shell) {
  if (v->kind == YN_SCALAR) {
    if (v->len == 0) {
      ERR(c, v, "%s: must not be empty", c->path);
      return false;
    }
    tsvc_strv_t tmp = {0};
    char **arr = calloc(2, sizeof *arr);
    if (!arr || !(arr[0] = dup_or_oom(c, v->text))) {
      free(arr);
      c->oom = true;
      return false;
    }
    tmp.v = arr;
    tmp.n = 1;
    strv_clear(out);
    *out = tmp;
    *shell = true;
    return true;
  }
  if (v->kind != YN_SEQ) {
    type_error(c, v, "a string or a list");
    return false;
  }
  tsvc_strv_t tmp = {0};
  if (!parse_strv(c, v, &tmp)) return false;
  if (tmp.n == 0) {
    ERR(c, v, "%s: must not be empty", c->path);
    strv_clear(&tmp);
    return false;
  }
  bool sh = false;
  if (strcmp(tmp.v[0], "CMD") == 0) {
    if (tmp.n == 1) {
      ERR(c, v, "%s: [\"CMD\"] needs the command after it", c->path);
      strv_clear(&tmp);
      return false;
    }
    free(tmp.v[0]);
    memmove(tmp.v, tmp.v + 1, (tmp.n - 1) * sizeof *tmp.v);
    tmp.n--;
  } else if (strcmp(tmp.v[0], "CMD-SHELL") == 0) {
    if (tmp.n != 2) {
      ERR(c, v, "%s: [\"CMD-SHELL\", ...] takes exactly one string after it", c->path);
      strv_clear(&tmp);
      return false;
    }
    free(tmp.v[0]);
    tmp.v[0] = tmp.v[1];
    tmp.n = 1;
    sh = true;
  } else if (strcmp(tmp.v[0], "NONE") == 0) {
    ERR(c, v, "%s: [\"NONE\"] is not supported; use probe: running for no check", c->path);
    strv_clear(&tmp);
    return false;
  }
  strv_clear(out);
  *out = tmp;
  *shell = sh;
  return true;
}

static void p_hc_command(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  tsvc_healthcheck_conf_t *hc = base;
  (void)k;
  parse_command(c, v, &hc->command, &hc->shell);
}

/* A command with no shell flag beside it: a shell string becomes
 * ["/bin/sh", "-c", string], which any runtime can run as it is. */
static void p_argv_command(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  tsvc_strv_t *field = (tsvc_strv_t *)((char *)base + k->off);
  bool shell = false;
  if (!parse_command(c, v, field, &shell) || !shell) return;
  char **arr = calloc(4, sizeof *arr);
  if (!arr) {
    c->oom = true;
    return;
  }
  arr[0] = dup_or_oom(c, "/bin/sh");
  arr[1] = dup_or_oom(c, "-c");
  arr[2] = field->v[0];
  if (!arr[0] || !arr[1]) {
    free(arr[0]);
    free(arr[1]);
    free(arr);
    return;
  }
  free(field->v);
  field->v = arr;
  field->n = 3;
}

/* "host:port" (host may be "[v6]"); port 1..65535. */
static bool valid_hostport(const char *s) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s) return false;
  long port;
  if (tsvc_parse_int(colon + 1, 1, 65535, &port) != 0) return false;
  if (s[0] == '[') return colon[-1] == ']' && colon - s > 2;
  return memchr(s, ':', (size_t)(colon - s)) == NULL;
}

static void p_hostport(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  if (!valid_hostport(v->text)) {
    ERR(c, v, "%s: expected \"host:port\" with a port from 1 to 65535, got \"%s\"", c->path,
        v->text);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
}

/* monitor.listen: "host:port", or ":port" for loopback (docs/api.md),
   kept as 127.0.0.1:port so that everything after reads one form. */
static void p_listen(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  long port;
  if (v->text[0] == ':' && tsvc_parse_int(v->text + 1, 1, 65535, &port) == 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "127.0.0.1:%ld", port);
    set_string(c, (char **)((char *)base + k->off), buf);
    return;
  }
  if (!valid_hostport(v->text)) {
    ERR(c, v, "%s: expected \"host:port\" or \":port\" (loopback) with a port from 1 to "
              "65535, got \"%s\"",
        c->path, v->text);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
}

static void p_http_path(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  if (v->text[0] != '/') {
    ERR(c, v, "%s: must start with \"/\", got \"%s\"", c->path, v->text);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
}

/* hooks.webhook: an http:// or https:// URL with a host (the scheme in
   any case, as libcurl takes it). Shown masked in the error: it may carry
   a password. */
static void p_webhook_url(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  const char *t = v->text, *rest = NULL;
  if (strncasecmp(t, "http://", 7) == 0) rest = t + 7;
  else if (strncasecmp(t, "https://", 8) == 0) rest = t + 8;
  bool ok = rest != NULL;
  if (ok) {
    size_t auth = strcspn(rest, "/?#");
    const char *at = memchr(rest, '@', auth);
    const char *host = at ? at + 1 : rest;
    ok = host < rest + auth && *host != ':';
  }
  for (const char *p = t; ok && *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f) ok = false;
  if (!ok) {
    char shown[300];
    if (tsvc_mask_text(shown, sizeof shown, t, NULL, 0) != 0) shown[0] = '\0';
    ERR(c, v, "%s: expected an http:// or https:// URL with a host (https://hooks.example/"
              "tanuki), got \"%s\"", c->path, shown);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), t);
}

static void p_docker_host(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  tsvc_docker_endpoint_t ep;
  char why[512];
  if (tsvc_docker_endpoint_parse(v->text, &ep, why, sizeof why) != 0) {
    ERR(c, v, "%s: %s", c->path, why);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
  c->docker_host_set = true;
  c->docker_host_node = v;
}

/* An IP address of the engine's machine (Docker publishes on addresses,
   not names). */
static void p_publish_address(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  if (!tsvc_ip_literal(v->text)) {
    ERR(c, v, "%s: expected an IP address of the engine's machine (127.0.0.1, 10.0.0.5, "
        "0.0.0.0 for every interface, ::1), got \"%s\"", c->path, v->text);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
}

/* A file's path: must not be empty; made absolute in finish_defaults. */
static void p_path(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  if (v->len == 0) {
    ERR(c, v, "%s: must not be empty", c->path);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
}

static void p_section(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base);

static void p_docker_tls(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  tsvc_config_t *cfg = base;
  cfg->docker.tls.verify = true; /* the default once docker.tls is given */
  p_section(c, k, v, base);
  if (v->kind == YN_MAP) c->tls_node = v;
}

static void p_docker_ssh(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  p_section(c, k, v, base);
  if (v->kind == YN_MAP) c->ssh_node = v;
}

/* The engine's socket on the ssh host: an absolute path. */
static void p_abs_path(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  if (v->text[0] != '/') {
    ERR(c, v, "%s: must be an absolute path, got \"%s\"", c->path, v->text);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
}

static void p_docker_network(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  if (v->len == 0) {
    ERR(c, v, "%s: must not be empty", c->path);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
  c->docker_network_set = true;
}

static bool valid_name_chars(const char *s, bool first_alnum) {
  for (size_t i = 0; s[i]; i++) {
    char ch = s[i];
    bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (i == 0 && first_alnum && !alnum) return false;
    if (!alnum && ch != '_' && ch != '.' && ch != '-') return false;
  }
  return true;
}

static void p_prefix(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (!as_string(c, v)) return;
  if (!valid_name_chars(v->text, true)) {
    ERR(c, v, "%s: \"%s\" cannot start a container name (letters, digits, '_', '.', '-'; "
        "a letter or digit first)", c->path, v->text);
    return;
  }
  set_string(c, (char **)((char *)base + k->off), v->text);
}

/* expect_status: 200, or "200-399"; each code from 100 to 599. */
static void p_expect_status(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  tsvc_healthcheck_conf_t *hc = base;
  (void)k;
  const char *dash = v->kind == YN_SCALAR ? strchr(v->text, '-') : NULL;
  if (v->kind != YN_SCALAR || (dash && (dash == v->text || !dash[1] || strchr(dash + 1, '-')))) {
    type_error(c, v, "a status code (200) or a range (\"200-399\")");
    return;
  }
  /* Each side as an integer node of its own, at the same position. */
  char first[64];
  ynode_t lo_node = *v, hi_node = *v;
  if (dash) {
    size_t n = (size_t)(dash - v->text);
    if (n >= sizeof first) {
      type_error(c, v, "a status code (200) or a range (\"200-399\")");
      return;
    }
    memcpy(first, v->text, n);
    first[n] = '\0';
    lo_node.text = first;
    hi_node.text = (char *)dash + 1;
  }
  if (!lo_node.text[0] || strspn(lo_node.text, "0123456789") != strlen(lo_node.text) ||
      strspn(hi_node.text, "0123456789") != strlen(hi_node.text)) {
    type_error(c, v, "a status code (200) or a range (\"200-399\")");
    return;
  }
  long lo, hi;
  if (!as_int(c, &lo_node, c->path, 100, 599, &lo) || !as_int(c, &hi_node, c->path, 100, 599, &hi))
    return;
  if (lo > hi) {
    ERR(c, v, "%s: a range goes from low to high, got \"%s\"", c->path, v->text);
    return;
  }
  hc->expect_status_min = (int)lo;
  hc->expect_status_max = (int)hi;
}

/* ---- mappings ---- */

typedef struct {
  const char *key;
  size_t idx;
} keyref_t;

static int cmp_keyref(const void *a, const void *b) {
  const keyref_t *x = a, *y = b;
  int r = strcmp(x->key, y->key);
  if (r) return r;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * Report keys that are not strings and keys seen before in mapping m.
 * dup[i] is set for every pair to skip. what: "key" or "service".
 * Sorting keeps this O(n log n) however large a mapping is.
 */
static bool *check_keys(ctx_t *c, const ynode_t *m, const char *what) {
  bool *dup = calloc(m->npairs ? m->npairs : 1, sizeof *dup);
  keyref_t *refs = calloc(m->npairs ? m->npairs : 1, sizeof *refs);
  if (!dup || !refs) {
    free(dup);
    free(refs);
    c->oom = true;
    return NULL;
  }
  size_t n = 0;
  for (size_t i = 0; i < m->npairs; i++) {
    const ynode_t *k = m->pairs[i].key;
    if (k->kind != YN_SCALAR) {
      ERR(c, k, "%s: keys must be strings, got %s", c->pathlen ? c->path : "top level",
          ynode_kind_name(k));
      dup[i] = true;
      continue;
    }
    refs[n].key = k->text;
    refs[n].idx = i;
    n++;
  }
  qsort(refs, n, sizeof *refs, cmp_keyref);
  for (size_t i = 1; i < n; i++) {
    size_t first = i - 1;
    while (i < n && strcmp(refs[i].key, refs[first].key) == 0) {
      const ynode_t *k = m->pairs[refs[i].idx].key;
      const ynode_t *k0 = m->pairs[refs[first].idx].key;
      if (strcmp(what, "service") == 0)
        ERR(c, k, "duplicate service \"%s\" (first defined at line %d)", k->text, k0->line);
      else
        ERR(c, k, "duplicate key \"%s\" in %s (first at line %d)", k->text,
            c->pathlen ? c->path : "the top level", k0->line);
      dup[refs[i].idx] = true;
      i++;
    }
  }
  free(refs);
  return dup;
}

static void walk_map(ctx_t *c, const ynode_t *m, const keydef_t *table, void *base);

/*
 * YAML merge keys ("<<: *defaults", or a list of aliases): the merged
 * mappings are applied first, the mapping's own keys then override them.
 */
static void apply_merge(ctx_t *c, const ynode_t *v, const keydef_t *table, void *base) {
  const ynode_t *const *list = &v;
  size_t n = 1;
  if (v->kind == YN_SEQ) {
    list = (const ynode_t *const *)v->items;
    n = v->nitems;
  }
  for (size_t i = 0; i < n; i++) {
    if (list[i]->kind != YN_MAP) {
      ERR(c, list[i], "%s: a merge (\"<<\") takes a mapping or a list of mappings, got %s",
          c->path, ynode_kind_name(list[i]));
      continue;
    }
    if (++c->merges > MAX_MERGES) {
      if (c->merges == MAX_MERGES + 1)
        ERR(c, list[i], "%s: too many merges (\"<<\") in this file", c->path);
      return;
    }
    walk_map(c, list[i], table, base);
  }
}

static const keydef_t *find_key(const keydef_t *table, const char *name) {
  for (const keydef_t *k = table; k->name; k++)
    if (strcmp(k->name, name) == 0) return k;
  return NULL;
}

static bool is_section(const keydef_t *k);

static void unknown_key(ctx_t *c, const ynode_t *key, const keydef_t *table) {
  const char *names[64];
  size_t n = 0;
  for (const keydef_t *k = table; k->name && n < TSVC_ARRAY_LEN(names) - 1; k++)
    names[n++] = k->name;
  names[n] = NULL;
  const char *hint = did_you_mean(key->text, names);
  if (hint) {
    ERR(c, key, "unknown key \"%s\" in %s; did you mean \"%s\"?", key->text, c->path, hint);
    return;
  }
  /* A key of a subsection written one level too high ("interval" right
   * under the service). */
  for (const keydef_t *k = table; k->name; k++) {
    if (is_section(k) && find_key(k->aux, key->text)) {
      ERR(c, key, "unknown key \"%s\" in %s; did you mean \"%s.%s\"?", key->text, c->path,
          k->name, key->text);
      return;
    }
  }
  ERR(c, key, "unknown key \"%s\" in %s", key->text, c->path);
}

/* Parse mapping m with table into base. The caller checked m is a mapping. */
static void walk_map(ctx_t *c, const ynode_t *m, const keydef_t *table, void *base) {
  bool *dup = check_keys(c, m, "key");
  if (!dup) return;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < m->npairs; i++) {
      if (dup[i]) continue;
      const ynode_t *key = m->pairs[i].key, *val = m->pairs[i].value;
      bool merge = strcmp(key->text, "<<") == 0 && key->plain;
      if (merge != (pass == 0)) continue;
      if (merge) {
        apply_merge(c, val, table, base);
        continue;
      }
      const keydef_t *k = find_key(table, key->text);
      if (!k) {
        unknown_key(c, key, table);
        continue;
      }
      if (ynode_is_null(val)) continue;
      size_t old = path_push(c, k->name);
      k->parse(c, k, val, base);
      path_pop(c, old);
    }
  }
  free(dup);
}

/* A section: aux is the table; the field at off is the struct it fills. */
static void p_section(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  if (v->kind != YN_MAP) {
    type_error(c, v, "a mapping");
    return;
  }
  walk_map(c, v, k->aux, (char *)base + k->off);
}

/* ---- environment ---- */

static bool valid_env_name(const char *s) { return *s && !strchr(s, '='); }

static void env_clear(tsvc_kv_t **env, size_t *len) {
  for (size_t i = 0; i < *len; i++) {
    free((*env)[i].key);
    free((*env)[i].value);
  }
  free(*env);
  *env = NULL;
  *len = 0;
}

/*
 * environment as a mapping {KEY: value} or as compose's list of
 * "KEY=VALUE". Scalars are taken as written (5432, true); null is "".
 */
static void parse_env(ctx_t *c, const ynode_t *v, tsvc_kv_t **env, size_t *len) {
  if (v->kind == YN_SCALAR) {
    type_error(c, v, "a mapping or a list of \"KEY=VALUE\"");
    return;
  }
  size_t n = v->kind == YN_MAP ? v->npairs : v->nitems;
  tsvc_kv_t *kv = calloc(n ? n : 1, sizeof *kv);
  bool *dup = v->kind == YN_MAP ? check_keys(c, v, "key") : calloc(n ? n : 1, sizeof(bool));
  if (!kv || !dup) {
    free(kv);
    free(dup);
    c->oom = true;
    return;
  }
  size_t used = 0;
  bool ok = true;
  for (size_t i = 0; i < n; i++) {
    const char *key = NULL, *val = NULL;
    size_t keylen = 0;
    const ynode_t *at;
    if (v->kind == YN_MAP) {
      if (dup[i]) {
        ok = false;
        continue;
      }
      at = v->pairs[i].key;
      const ynode_t *value = v->pairs[i].value;
      key = at->text;
      keylen = at->len;
      if (!valid_env_name(key)) {
        ERR(c, at, "%s: invalid variable name \"%s\"", c->path, key);
        ok = false;
        continue;
      }
      if (value->kind != YN_SCALAR) {
        char g[64];
        ERR(c, value, "%s.%s: expected a string, got %s", c->path, key, got(value, g, sizeof g));
        ok = false;
        continue;
      }
      val = ynode_is_null(value) ? "" : value->text;
    } else {
      at = v->items[i];
      const char *eq = at->kind == YN_SCALAR ? strchr(at->text, '=') : NULL;
      if (!eq || eq == at->text) {
        char g[64];
        ERR(c, at, "%s: expected \"KEY=VALUE\", got %s", c->path, got(at, g, sizeof g));
        ok = false;
        continue;
      }
      key = at->text;
      keylen = (size_t)(eq - at->text);
      val = eq + 1;
      for (size_t j = 0; j < used; j++) {
        if (strlen(kv[j].key) == keylen && memcmp(kv[j].key, key, keylen) == 0) {
          ERR(c, at, "duplicate key \"%.*s\" in %s", (int)keylen, key, c->path);
          ok = false;
          key = NULL;
          break;
        }
      }
      if (!key) continue;
    }
    kv[used].key = tsvc_strndup(key, keylen);
    kv[used].value = tsvc_strdup(val);
    used++;
    if (!kv[used - 1].key || !kv[used - 1].value) {
      c->oom = true;
      ok = false;
      break;
    }
  }
  free(dup);
  if (!ok) {
    env_clear(&kv, &used);
    return;
  }
  env_clear(env, len);
  *env = kv;
  *len = used;
}

static void p_env(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  (void)k;
  tsvc_service_conf_t *s = base;
  parse_env(c, v, &s->env, &s->env_len);
}

static void p_process_env(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  (void)k;
  tsvc_process_conf_t *p = base;
  parse_env(c, v, &p->env, &p->env_len);
}

/* ---- depends_on ---- */

static const keydef_t depends_keys[];

/*
 * depends_on as a list of names (each: service_started), or compose's long
 * form, a mapping {name: {condition: service_healthy, restart: true}}
 * (a null value, or no condition, is service_started). Names are checked
 * against the services once all are read (check_depends_on). The old lists
 * are replaced only when the whole value is valid.
 */
static void p_depends_on(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  (void)k;
  tsvc_service_conf_t *s = base;
  tsvc_strv_t names = {0};
  tsvc_dep_conf_t *deps = NULL;
  size_t n = 0;
  if (v->kind == YN_SEQ) {
    if (!parse_strv(c, v, &names)) return;
    n = names.n;
    deps = calloc(n ? n : 1, sizeof *deps);
    if (!deps) goto oom;
    for (size_t i = 0; i < n; i++)
      deps[i] = (tsvc_dep_conf_t){TSVC_DEP_STARTED, false, v->items[i]->line, v->items[i]->col};
  } else if (v->kind == YN_MAP) {
    bool *dup = check_keys(c, v, "key");
    if (!dup) return;
    names.v = calloc(v->npairs + 1, sizeof *names.v);
    deps = calloc(v->npairs ? v->npairs : 1, sizeof *deps);
    if (!names.v || !deps) {
      free(dup);
      goto oom;
    }
    size_t errors = c->d->nerrors;
    for (size_t i = 0; i < v->npairs; i++) {
      if (dup[i]) continue;
      const ynode_t *key = v->pairs[i].key, *val = v->pairs[i].value;
      if (key->len == 0) {
        ERR(c, key, "%s: a service name must not be empty", c->path);
        continue;
      }
      tsvc_dep_conf_t *d = &deps[n];
      *d = (tsvc_dep_conf_t){TSVC_DEP_STARTED, false, key->line, key->col};
      if (!ynode_is_null(val)) {
        size_t old = path_push(c, key->text);
        if (val->kind == YN_MAP)
          walk_map(c, val, depends_keys, d);
        else
          type_error(c, val, "a mapping (condition: service_started or service_healthy, "
                     "restart: true or false)");
        path_pop(c, old);
      }
      if (!(names.v[n] = dup_or_oom(c, key->text))) break;
      names.n = ++n;
    }
    free(dup);
    if (c->oom || c->d->nerrors > errors) {
      strv_clear(&names);
      free(deps);
      return;
    }
  } else {
    type_error(c, v, "a list of services, or a mapping of services to {condition: ...}");
    return;
  }
  strv_clear(&s->depends_on);
  free(s->depends);
  s->depends_on = names;
  s->depends = n ? deps : NULL;
  if (!n) free(deps);
  return;
oom:
  c->oom = true;
  strv_clear(&names);
  free(deps);
}

/* ---- the tables ---- */

#define HC(f) offsetof(tsvc_healthcheck_conf_t, f)
#define RS(f) offsetof(tsvc_restart_conf_t, f)
#define SV(f) offsetof(tsvc_service_conf_t, f)
#define CF(f) offsetof(tsvc_config_t, f)

static const keydef_t healthcheck_keys[] = {
    {"command", p_hc_command, 0, 0, 0, NULL},
    {"probe", p_enum, HC(probe), 0, 0, &probe_enum},
    {"interval", p_duration, HC(interval), 1, 0, NULL},
    {"timeout", p_duration, HC(timeout), 1, 0, NULL},
    {"retries", p_int, HC(retries), 1, INT_MAX, NULL},
    {"success_threshold", p_int, HC(success_threshold), 1, INT_MAX, NULL},
    {"start_period", p_duration, HC(start_period), 0, 0, NULL},
    {"start_interval", p_duration, HC(start_interval), 1, 0, NULL},
    {"history", p_int, HC(history), 1, 10000, NULL},
    {"address", p_hostport, HC(address), 0, 0, NULL},
    {"path", p_http_path, HC(path), 0, 0, NULL},
    {"expect_status", p_expect_status, 0, 0, 0, NULL},
    {"session", p_bool, HC(session), 0, 0, NULL},
    {"full_every", p_duration, HC(full_every), 1, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const keydef_t restart_keys[] = {
    {"policy", p_enum, RS(policy), 0, 0, &policy_enum},
    {"max_restarts", p_int, RS(max_restarts), 1, INT_MAX, NULL},
    {"window", p_duration, RS(window), 1, 0, NULL},
    {"backoff", p_duration, RS(backoff), 0, 0, NULL},
    {"max_backoff", p_duration, RS(max_backoff), 0, 0, NULL},
    {"cooldown", p_duration, RS(cooldown), 0, 0, NULL},
    {"stop_timeout", p_duration, RS(stop_timeout), 0, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const keydef_t process_keys[] = {
    {"command", p_argv_command, offsetof(tsvc_process_conf_t, command), 0, 0, NULL},
    {"env", p_process_env, 0, 0, 0, NULL},
    {"workdir", p_string, offsetof(tsvc_process_conf_t, workdir), 1, 0, NULL},
    {"data_dir", p_string, offsetof(tsvc_process_conf_t, data_dir), 1, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

#define HK(f) offsetof(tsvc_hooks_conf_t, f)
static const keydef_t hooks_keys[] = {
    {"on_change", p_argv_command, HK(on_change), 0, 0, NULL},
    {"timeout", p_duration, HK(timeout), 1, 0, NULL},
    {"webhook", p_webhook_url, HK(webhook), 0, 0, NULL},
    {"webhook_timeout", p_duration, HK(webhook_timeout), 1, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const keydef_t depends_keys[] = {
    {"condition", p_enum, offsetof(tsvc_dep_conf_t, condition), 0, 0, &dep_condition_enum},
    {"restart", p_bool, offsetof(tsvc_dep_conf_t, restart), 0, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static void p_healthcheck(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base);
static void p_restart(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base);

static const keydef_t service_keys[] = {
    /* The Tanuki project's own keys. */
    {"enabled", p_bool, SV(enabled), 0, 0, NULL},
    {"image", p_string, SV(image), 1, 0, NULL},
    {"port", p_port, 0, 0, 0, NULL},
    {"environment", p_env, 0, 0, 0, NULL},
    {"volumes", p_strv, SV(volumes), 0, 0, NULL},
    {"healthcheck", p_healthcheck, SV(healthcheck), 0, 0, healthcheck_keys},
    /* Ours. */
    {"depends_on", p_depends_on, 0, 0, 0, NULL},
    {"depends_timeout", p_duration, SV(depends_timeout), 1, 0, NULL},
    {"external", p_bool, SV(external), 0, 0, NULL},
    {"hooks", p_section, SV(hooks), 0, 0, hooks_keys},
    {"pull_policy", p_pull_policy, SV(pull_policy), 0, 0, &pull_enum},
    {"command", p_argv_command, SV(command), 0, 0, NULL},
    {"restart", p_restart, SV(restart), 0, 0, restart_keys},
    {"process", p_section, SV(process), 0, 0, process_keys},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const keydef_t docker_tls_keys[] = {
    {"verify", p_bool, offsetof(tsvc_config_t, docker.tls.verify), 0, 0, NULL},
    {"ca", p_path, offsetof(tsvc_config_t, docker.tls.ca), 0, 0, NULL},
    {"cert", p_path, offsetof(tsvc_config_t, docker.tls.cert), 0, 0, NULL},
    {"key", p_path, offsetof(tsvc_config_t, docker.tls.key), 0, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const keydef_t docker_ssh_keys[] = {
    {"identity_file", p_path, offsetof(tsvc_config_t, docker.ssh.identity_file), 0, 0, NULL},
    {"config_file", p_path, offsetof(tsvc_config_t, docker.ssh.config_file), 0, 0, NULL},
    {"socket", p_abs_path, offsetof(tsvc_config_t, docker.ssh.socket), 0, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const keydef_t docker_keys[] = {
    {"host", p_docker_host, offsetof(tsvc_config_t, docker.host), 0, 0, NULL},
    {"probe_via", p_enum, offsetof(tsvc_config_t, docker.probe_via), 0, 0, &via_enum},
    {"publish_address", p_publish_address, offsetof(tsvc_config_t, docker.publish_address), 0,
     0, NULL},
    {"tls", p_docker_tls, 0, 0, 0, docker_tls_keys},
    {"ssh", p_docker_ssh, 0, 0, 0, docker_ssh_keys},
    {"network", p_docker_network, offsetof(tsvc_config_t, docker.network), 0, 0, NULL},
    {"container_prefix", p_prefix, offsetof(tsvc_config_t, docker.container_prefix), 0, 0,
     NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* monitor.timer_grid: a duration of at most 1s (a step of the grid is how
   late a check may start: beyond 1s, services checked every second would be
   checked once a step). 0 turns it off. */
static void p_timer_grid(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  tsvc_ms_t *g = (tsvc_ms_t *)((char *)base + k->off);
  tsvc_ms_t before = *g;
  p_duration(c, k, v, base);
  if (*g > 1000) {
    ERR(c, v, "%s: must be at most 1s (it is how late a check may start)", c->path);
    *g = before;
  }
}

static const keydef_t monitor_keys[] = {
    {"socket", p_string, offsetof(tsvc_config_t, monitor.socket), 1, 0, NULL},
    {"listen", p_listen, offsetof(tsvc_config_t, monitor.listen), 0, 0, NULL},
    {"log_format", p_enum, offsetof(tsvc_config_t, monitor.log_format), 0, 0, &logfmt_enum},
    {"timer_grid", p_timer_grid, offsetof(tsvc_config_t, monitor.timer_grid), 0, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static void p_services(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base);

/* The sections of the top level that are ours. Their tables double as the
 * candidates of "did you mean". docker and monitor fill tsvc_config_t
 * itself (offset 0): their rows carry the full offsets. */
static const keydef_t top_keys[] = {
    {"runtime", p_enum, CF(runtime), 0, 0, &runtime_enum},
    {"docker", p_section, 0, 0, 0, docker_keys},
    {"monitor", p_section, 0, 0, 0, monitor_keys},
    {"hooks", p_section, CF(hooks), 0, 0, hooks_keys},
    {"services", p_services, 0, 0, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static bool is_section(const keydef_t *k) {
  return k->parse == p_section || k->parse == p_healthcheck || k->parse == p_restart ||
         k->parse == p_docker_tls || k->parse == p_docker_ssh;
}

/* Top-level keys of Tanuki's own config: passed over silently. */
static const char *const tanuki_keys[] = {"version", "image", "worktrees", "defaults",
                                          "network", "project", "name", NULL};

/* ---- sections with checks across keys ---- */

/* The node where a key was set, else the section's node. */
static const ynode_t *where(const ynode_t *section, const char *key) {
  const ynode_t *n = ynode_get(section, key);
  return n ? n : section;
}

static void p_healthcheck(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  p_section(c, k, v, base);
  if (v->kind != YN_MAP) return;
  const tsvc_healthcheck_conf_t *hc = (const void *)((char *)base + k->off);
  if (hc->session && hc->probe != TSVC_PROBE_AUTO && hc->probe != TSVC_PROBE_REDIS &&
      hc->probe != TSVC_PROBE_POSTGRES)
    ERR(c, where(v, "session"),
        "%s.session: held sessions are for the redis and postgres probes, not %s", c->path,
        tsvc_probe_kind_name(hc->probe));
  if (hc->timeout >= hc->interval) {
    char t[32], i[32];
    const ynode_t *at = ynode_get(v, "timeout") ? where(v, "timeout") : where(v, "interval");
    WARN(c, at, "%s: timeout (%s) is not below interval (%s); a slow check runs into the next",
         c->path, tsvc_duration_format(hc->timeout, t, sizeof t),
         tsvc_duration_format(hc->interval, i, sizeof i));
  }
}

static void p_restart(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  p_section(c, k, v, base);
  if (v->kind != YN_MAP) return;
  const tsvc_restart_conf_t *r = (const void *)((char *)base + k->off);
  if (r->backoff > r->max_backoff) {
    char b[32], m[32];
    const ynode_t *at = ynode_get(v, "backoff") ? where(v, "backoff") : where(v, "max_backoff");
    WARN(c, at, "%s: backoff (%s) is greater than max_backoff (%s); max_backoff is used", c->path,
         tsvc_duration_format(r->backoff, b, sizeof b),
         tsvc_duration_format(r->max_backoff, m, sizeof m));
  }
}

/* ---- services ---- */

static void service_defaults(tsvc_service_conf_t *s) {
  s->enabled = true;
  s->depends_timeout = 2 * 60000;
  s->hooks.timeout = 10000;
  s->hooks.webhook_timeout = 5000;
  tsvc_healthcheck_conf_t *hc = &s->healthcheck;
  hc->probe = TSVC_PROBE_AUTO;
  hc->interval = 10000;
  hc->timeout = 5000;
  hc->retries = 3;
  hc->success_threshold = 1;
  hc->start_period = 60000;
  hc->start_interval = 1000;
  hc->history = 20;
  hc->expect_status_min = 200;
  hc->expect_status_max = 399;
  hc->full_every = 60000;
  tsvc_restart_conf_t *r = &s->restart;
  r->policy = TSVC_POLICY_ON_UNHEALTHY;
  r->max_restarts = 5;
  r->window = 10 * 60000;
  r->backoff = 1000;
  r->max_backoff = 5 * 60000;
  r->cooldown = 30 * 60000;
  r->stop_timeout = 10000;
}

static void service_free(tsvc_service_conf_t *s) {
  free(s->name);
  free(s->image);
  env_clear(&s->env, &s->env_len);
  strv_clear(&s->volumes);
  strv_clear(&s->depends_on);
  free(s->depends);
  strv_clear(&s->command);
  strv_clear(&s->healthcheck.command);
  free(s->healthcheck.address);
  free(s->healthcheck.path);
  strv_clear(&s->process.command);
  strv_clear(&s->hooks.on_change);
  free(s->hooks.webhook);
  env_clear(&s->process.env, &s->process.env_len);
  free(s->process.workdir);
  free(s->process.data_dir);
}

static void p_services(ctx_t *c, const keydef_t *k, const ynode_t *v, void *base) {
  (void)k;
  (void)base;
  if (v->kind != YN_MAP) {
    type_error(c, v, "a mapping of services");
    return;
  }
  bool *dup = check_keys(c, v, "service");
  if (!dup) return;
  tsvc_config_t *cfg = c->cfg;
  size_t cap = v->npairs ? v->npairs : 1;
  cfg->services = calloc(cap, sizeof *cfg->services);
  c->svc_nodes = calloc(cap, sizeof *c->svc_nodes);
  c->svc_keys = calloc(cap, sizeof *c->svc_keys);
  if (!cfg->services || !c->svc_nodes || !c->svc_keys) {
    c->oom = true;
    free(dup);
    return;
  }
  for (size_t i = 0; i < v->npairs; i++) {
    if (dup[i]) continue;
    const ynode_t *key = v->pairs[i].key, *val = v->pairs[i].value;
    if (!valid_name_chars(key->text, true) || key->len == 0 || key->len > 64) {
      ERR(c, key, "invalid service name \"%s\" (1 to 64 letters, digits, '_', '.', '-'; "
          "a letter or digit first)", key->text);
      continue;
    }
    if (!ynode_is_null(val) && val->kind != YN_MAP) {
      char g[64];
      ERR(c, val, "services.%s: expected a mapping, got %s", key->text, got(val, g, sizeof g));
      continue;
    }
    tsvc_service_conf_t *s = &cfg->services[cfg->nservices];
    service_defaults(s);
    s->line = key->line;
    s->column = key->col;
    s->name = dup_or_oom(c, key->text);
    s->healthcheck.path = dup_or_oom(c, "/");
    if (!s->name || !s->healthcheck.path) {
      service_free(s);
      break;
    }
    c->svc_nodes[cfg->nservices] = ynode_is_null(val) ? NULL : val;
    c->svc_keys[cfg->nservices] = key;
    cfg->nservices++;
    if (ynode_is_null(val)) continue;
    size_t old = path_push(c, key->text);
    walk_map(c, val, service_keys, s);
    path_pop(c, old);
  }
  free(dup);
}

static ssize_t service_index(const tsvc_config_t *cfg, const char *name) {
  for (size_t i = 0; i < cfg->nservices; i++)
    if (strcmp(cfg->services[i].name, name) == 0) return (ssize_t)i;
  return -1;
}

/* Where service i names dep in its depends_on (a list item or a key of
 * the long form), as a node for messages: *tmp is filled and returned. */
static const ynode_t *dep_node(ctx_t *c, size_t i, const char *dep, ynode_t *tmp) {
  const tsvc_service_conf_t *s = &c->cfg->services[i];
  memset(tmp, 0, sizeof *tmp);
  for (size_t j = 0; j < s->depends_on.n; j++) {
    if (strcmp(s->depends_on.v[j], dep) != 0 || !s->depends) continue;
    tmp->line = s->depends[j].line;
    tmp->col = s->depends[j].column;
    return tmp;
  }
  return c->svc_keys[i];
}

static void check_depends_on(ctx_t *c) {
  tsvc_config_t *cfg = c->cfg;
  size_t n = cfg->nservices;
  if (n == 0) return;
  const char **names = calloc(n + 1, sizeof *names);
  if (!names) {
    c->oom = true;
    return;
  }
  for (size_t i = 0; i < n; i++) names[i] = cfg->services[i].name;
  for (size_t i = 0; i < n; i++) {
    const tsvc_strv_t *d = &cfg->services[i].depends_on;
    for (size_t j = 0; j < d->n; j++) {
      if (service_index(cfg, d->v[j]) >= 0) continue;
      const char *hint = did_you_mean(d->v[j], names);
      ynode_t tmp;
      const ynode_t *at = dep_node(c, i, d->v[j], &tmp);
      if (hint)
        ERR(c, at, "services.%s.depends_on: no service named \"%s\"; did you mean \"%s\"?",
            names[i], d->v[j], hint);
      else
        ERR(c, at, "services.%s.depends_on: no service named \"%s\"", names[i], d->v[j]);
    }
  }
  free(names);

  /* Cycles: an iterative depth-first search; a back edge closes a cycle,
   * which is named from its first service round to it again. */
  enum { WHITE, GRAY, BLACK };
  unsigned char *color = calloc(n, 1);
  size_t *stack = calloc(n, sizeof *stack);
  size_t *edge = calloc(n, sizeof *edge);
  if (!color || !stack || !edge) {
    c->oom = true;
    goto out;
  }
  for (size_t root = 0; root < n; root++) {
    if (color[root] != WHITE) continue;
    size_t sp = 0;
    stack[sp] = root;
    edge[sp] = 0;
    color[root] = GRAY;
    sp++;
    while (sp > 0) {
      size_t u = stack[sp - 1];
      const tsvc_strv_t *d = &cfg->services[u].depends_on;
      if (edge[sp - 1] == d->n) {
        color[u] = BLACK;
        sp--;
        continue;
      }
      const char *dep = d->v[edge[sp - 1]++];
      ssize_t w = service_index(cfg, dep);
      if (w < 0) continue;
      if (color[w] == WHITE) {
        color[w] = GRAY;
        stack[sp] = (size_t)w;
        edge[sp] = 0;
        sp++;
      } else if (color[w] == GRAY) {
        size_t from = sp - 1;
        while (stack[from] != (size_t)w) from--;
        tsvc_buf_t b;
        tsvc_buf_init(&b, 4096);
        for (size_t s = from; s < sp; s++)
          tsvc_buf_addf(&b, "%s -> ", cfg->services[stack[s]].name);
        tsvc_buf_addf(&b, "%s", cfg->services[w].name);
        size_t next = from + 1 < sp ? stack[from + 1] : (size_t)w;
        ynode_t tmp;
        const ynode_t *at = dep_node(c, (size_t)w, cfg->services[next].name, &tmp);
        ERR(c, at, "services.%s.depends_on: dependency cycle: %s", cfg->services[w].name,
            b.data ? b.data : "");
        tsvc_buf_free(&b);
      }
    }
  }
out:
  free(color);
  free(stack);
  free(edge);
}

typedef struct {
  const char *prefix;
  size_t idx;
} prefref_t;

static int cmp_prefref(const void *a, const void *b) {
  const prefref_t *x = a, *y = b;
  int r = strcmp(x->prefix, y->prefix);
  if (r) return r;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * `tanuki-svc env` names each service's variables by a prefix (envname.c):
 * two services with the same one would print the same variables, the
 * second silently overwriting the first in the shell. Every service counts,
 * with a port or not, enabled or not, so that adding a port later does not
 * make a valid file invalid. Sorting keeps this O(n log n).
 */
static void check_env_names(ctx_t *c) {
  tsvc_config_t *cfg = c->cfg;
  size_t n = cfg->nservices;
  if (n < 2) return;
  char **pre = tsvc_env_prefixes(cfg);
  prefref_t *refs = calloc(n, sizeof *refs);
  size_t *dup = NULL;
  if (!pre || !refs) {
    c->oom = true;
    goto out;
  }
  for (size_t i = 0; i < n; i++) refs[i] = (prefref_t){pre[i], i};
  qsort(refs, n, sizeof *refs, cmp_prefref);
  /* dup[j]: the first service with the prefix of service j, when j is not it. */
  dup = malloc(n * sizeof *dup);
  if (!dup) {
    c->oom = true;
    goto out;
  }
  for (size_t i = 0; i < n; i++) dup[i] = SIZE_MAX;
  for (size_t i = 1; i < n; i++) {
    size_t first = i - 1;
    for (; i < n && strcmp(refs[i].prefix, refs[first].prefix) == 0; i++)
      dup[refs[i].idx] = refs[first].idx;
  }
  /* Reported in file order. */
  for (size_t j = 0; j < n; j++) {
    if (dup[j] == SIZE_MAX) continue;
    const tsvc_service_conf_t *a = &cfg->services[dup[j]], *b = &cfg->services[j];
    const char *p = pre[j];
    char why[200] = "";
    if (strcmp(p, "POSTGRES") == 0 || strcmp(p, "REDIS") == 0) {
      /* One of them has them as the first postgres/redis service with a
         port (a, the earlier, when it is one). */
      const char *kind = strcmp(p, "POSTGRES") == 0 ? "postgres" : "redis";
      const char *ka = a->port ? tsvc_env_kind(a) : NULL;
      const tsvc_service_conf_t *owner = ka && strcmp(ka, kind) == 0 ? a : b;
      snprintf(why, sizeof why, " (\"%s\" is the first %s service with a port)", owner->name,
               kind);
    }
    ERR(c, c->svc_keys[j],
        "services.%s: `tanuki-svc env` would name its variables %s_HOST, %s_PORT, ... as "
        "those of service \"%s\" (line %d)%s; rename one",
        b->name, p, p, a->name, a->line, why);
  }
out:
  if (pre) tsvc_env_prefixes_free(pre, n);
  free(refs);
  free(dup);
}

/* A built-in process recipe exists for postgres and redis (docs/design.md, "The runtime interface"). */
static bool has_recipe(const tsvc_service_conf_t *s) {
  const char *names[] = {s->name, s->image};
  for (size_t i = 0; i < 2; i++) {
    if (!names[i]) continue;
    const char *base = strrchr(names[i], '/');
    base = base ? base + 1 : names[i];
    if (strncmp(base, "postgres", 8) == 0 || strncmp(base, "redis", 5) == 0) return true;
  }
  return false;
}

/* Can the service be started at all by the runtime it will get? */
static void check_startable(ctx_t *c) {
  tsvc_config_t *cfg = c->cfg;
  for (size_t i = 0; i < cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    if (s->process.data_dir && s->process.command.n > 0) {
      const ynode_t *at = ynode_get(ynode_get(c->svc_nodes[i], "process"), "data_dir");
      ERR(c, at ? at : c->svc_keys[i],
          "services.%s.process.data_dir: only the built-in postgres and redis recipes keep "
          "data there; a process.command service keeps it where its command says", s->name);
    }
    if (s->external || !s->enabled) continue;
    const ynode_t *at = c->svc_keys[i];
    bool proc = s->process.command.n > 0 || has_recipe(s);
    switch (cfg->runtime) {
      case TSVC_RUNTIME_DOCKER:
        if (!s->image)
          ERR(c, at, "services.%s: no image (runtime: docker needs one, unless external: true)",
              s->name);
        break;
      case TSVC_RUNTIME_PROCESS:
        if (!proc)
          ERR(c, at, "services.%s: no process.command and no built-in recipe (postgres, redis) "
              "for runtime: process", s->name);
        break;
      case TSVC_RUNTIME_AUTO:
        if (!s->image && !proc)
          ERR(c, at, "services.%s: no image and no process.command; set one, or external: true",
              s->name);
        break;
    }
  }
}

/* Passes over a top-level key that is not ours; warns when it looks like a
 * misspelling of one of ours rather than a section of Tanuki's. */
static void other_top_key(ctx_t *c, const ynode_t *key, const ynode_t *val) {
  if (strcmp(key->text, "network") == 0) {
    const ynode_t *name = ynode_get(val, "name");
    if (name && name->kind == YN_SCALAR && !ynode_is_null(name) && name->len > 0)
      c->network_name = name->text;
    return;
  }
  for (size_t i = 0; tanuki_keys[i]; i++)
    if (strcmp(key->text, tanuki_keys[i]) == 0) return;
  const char *ours[TSVC_ARRAY_LEN(top_keys)];
  for (size_t i = 0; i < TSVC_ARRAY_LEN(top_keys); i++) ours[i] = top_keys[i].name;
  const char *hint = did_you_mean(key->text, ours);
  if (hint)
    WARN(c, key, "top-level key \"%s\" is not a tanuki-svc section and is passed over; "
         "did you mean \"%s\"?", key->text, hint);
}

/* A path of the file made absolute: "~/x" from $HOME, "x" from the
   config's directory (else the working directory). Caller frees; NULL on
   ENOMEM. */
static char *absolute(ctx_t *c, const char *p) {
  if (p[0] == '/') return tsvc_strdup(p);
  if (p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
    const char *home = getenv("HOME");
    return tsvc_asprintf("%s%s", home && *home ? home : "", p + 1);
  }
  const char *slash = strrchr(c->file, '/');
  char cwd[PATH_MAX];
  if (slash && c->file[0] == '/') return tsvc_asprintf("%.*s/%s", (int)(slash - c->file), c->file, p);
  if (!getcwd(cwd, sizeof cwd)) tsvc_strlcpy(cwd, ".", sizeof cwd);
  if (slash) return tsvc_asprintf("%s/%.*s/%s", cwd, (int)(slash - c->file), c->file, p);
  return tsvc_asprintf("%s/%s", cwd, p);
}

static void make_absolute(ctx_t *c, char **field) {
  if (!*field) return;
  char *p = absolute(c, *field);
  if (!p) {
    c->oom = true;
    return;
  }
  free(*field);
  *field = p;
}

/* The remote-engine settings, once docker.host is known: TLS from the file
   or the environment (as the docker CLI reads it), paths made absolute,
   and settings that do not apply to the engine's transport refused. */
static void finish_docker(ctx_t *c) {
  tsvc_config_t *cfg = c->cfg;
  tsvc_docker_endpoint_t ep;
  char why[512];
  bool ok = tsvc_docker_endpoint_parse(cfg->docker.host, &ep, why, sizeof why) == 0;
  if (!ok && !c->docker_host_set && cfg->runtime != TSVC_RUNTIME_PROCESS) {
    /* $DOCKER_HOST: reported here, where it is read. */
    ERR(c, NULL, "docker.host (from $DOCKER_HOST): %s", why);
    return;
  }
  if (!ok) return; /* reported where docker.host is set */
  const ynode_t *tls = c->tls_node, *ssh = c->ssh_node;
  if (tls && ep.transport != TSVC_DOCKER_TCP)
    ERR(c, tls, "docker.tls: TLS is for tcp:// engines, and docker.host is %s%s",
        cfg->docker.host, c->docker_host_set ? "" : " (from $DOCKER_HOST, or the default)");
  if (ssh && ep.transport != TSVC_DOCKER_SSH)
    ERR(c, ssh, "docker.ssh: for ssh:// engines, and docker.host is %s%s", cfg->docker.host,
        c->docker_host_set ? "" : " (from $DOCKER_HOST, or the default)");
  if (!cfg->docker.ssh.socket) set_string(c, &cfg->docker.ssh.socket, "/var/run/docker.sock");
  make_absolute(c, &cfg->docker.ssh.identity_file);
  make_absolute(c, &cfg->docker.ssh.config_file);
  if (ep.transport != TSVC_DOCKER_TCP) return;
  /* TLS: docker.tls, else DOCKER_TLS_VERIFY (any value, as the docker CLI);
     files not named come from DOCKER_CERT_PATH, else ~/.docker. */
  const char *v = getenv("DOCKER_TLS_VERIFY");
  cfg->docker.tls.enabled = tls || (v && *v);
  if (!cfg->docker.tls.enabled) return;
  if (!tls) cfg->docker.tls.verify = true;
  const char *dir = getenv("DOCKER_CERT_PATH");
  char *home_dir = NULL;
  if (!dir || !*dir) {
    const char *home = getenv("HOME");
    home_dir = tsvc_asprintf("%s/.docker", home ? home : "");
    if (!home_dir) {
      c->oom = true;
      return;
    }
    dir = home_dir;
  }
  char **files[] = {&cfg->docker.tls.ca, &cfg->docker.tls.cert, &cfg->docker.tls.key};
  static const char *const names[] = {"ca.pem", "cert.pem", "key.pem"};
  bool from_dir = false;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(files); i++) {
    if (*files[i]) {
      make_absolute(c, files[i]);
      continue;
    }
    /* DOCKER_TLS_VERIFY takes all three from the directory, as the docker
       CLI (one missing is an error when the engine is reached); under
       docker.tls, those of the directory that exist fill in. */
    char *f = tsvc_asprintf("%s/%s", dir, names[i]);
    if (!f) {
      c->oom = true;
      continue;
    }
    if (tls && access(f, R_OK) != 0) {
      free(f);
      continue;
    }
    *files[i] = f;
    from_dir = true;
  }
  char *origin = tls && !from_dir ? tsvc_strdup("docker.tls")
                 : tls            ? tsvc_asprintf("docker.tls, the rest from %s%s", home_dir
                                                  ? "" : "DOCKER_CERT_PATH=", dir)
                                  : tsvc_asprintf("DOCKER_TLS_VERIFY with %s%s", home_dir
                                                  ? "" : "DOCKER_CERT_PATH=", dir);
  if (!origin) c->oom = true;
  free(cfg->docker.tls.origin);
  cfg->docker.tls.origin = origin;
  free(home_dir);
}

static int finish_defaults(ctx_t *c) {
  tsvc_config_t *cfg = c->cfg;
  const char *env = getenv("DOCKER_HOST");
  cfg->docker.host_named = c->docker_host_set || (env && *env);
  if (!c->docker_host_set)
    set_string(c, &cfg->docker.host, env && *env ? env : "unix:///var/run/docker.sock");
  if (!cfg->docker.publish_address) set_string(c, &cfg->docker.publish_address, "127.0.0.1");
  if (cfg->docker.host) finish_docker(c);
  if (!c->docker_network_set)
    set_string(c, &cfg->docker.network, c->network_name ? c->network_name : "tanuki-net");
  return c->oom ? TSVC_ENOMEM : 0;
}

static void load_tree(ctx_t *c, const ynode_t *root) {
  if (!root || ynode_is_null(root)) return;
  if (root->kind != YN_MAP) {
    ERR(c, root, "the top level must be a mapping of sections (services, runtime, docker, "
        "monitor), got %s", ynode_kind_name(root));
    return;
  }
  bool *dup = check_keys(c, root, "key");
  if (!dup) return;
  for (size_t i = 0; i < root->npairs; i++) {
    if (dup[i]) continue;
    const ynode_t *key = root->pairs[i].key, *val = root->pairs[i].value;
    const keydef_t *k = find_key(top_keys, key->text);
    if (!k) {
      other_top_key(c, key, val);
      continue;
    }
    if (ynode_is_null(val)) continue;
    size_t old = path_push(c, k->name);
    k->parse(c, k, val, c->cfg);
    path_pop(c, old);
  }
  free(dup);
  check_depends_on(c);
  check_startable(c);
  check_env_names(c);
}

/* ---- public ---- */

void tsvc_config_free(tsvc_config_t *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < cfg->nservices; i++) service_free(&cfg->services[i]);
  free(cfg->services);
  free(cfg->path);
  free(cfg->docker.host);
  free(cfg->docker.network);
  free(cfg->docker.container_prefix);
  free(cfg->docker.publish_address);
  free(cfg->docker.tls.ca);
  free(cfg->docker.tls.cert);
  free(cfg->docker.tls.key);
  free(cfg->docker.tls.origin);
  free(cfg->docker.ssh.identity_file);
  free(cfg->docker.ssh.config_file);
  free(cfg->docker.ssh.socket);
  free(cfg->monitor.socket);
  free(cfg->monitor.listen);
  strv_clear(&cfg->hooks.on_change);
  free(cfg->hooks.webhook);
  free(cfg);
}

int tsvc_config_load_string(const char *name, const char *text, size_t len,
                            tsvc_config_t **out, tsvc_diag_t *diag) {
  *out = NULL;
  if (!name) name = "<string>";
  size_t errors_before = diag->nerrors;
  ytree_t tree;
  int rc = ytree_parse(&tree, name, text, len, diag);
  if (rc) {
    ytree_free(&tree);
    return rc;
  }
  ctx_t c;
  memset(&c, 0, sizeof c);
  c.file = name;
  c.d = diag;
  c.cfg = calloc(1, sizeof *c.cfg);
  if (!c.cfg) {
    ytree_free(&tree);
    return TSVC_ENOMEM;
  }
  tsvc_config_t *cfg = c.cfg;
  cfg->runtime = TSVC_RUNTIME_AUTO;
  cfg->monitor.log_format = TSVC_LOGFMT_TEXT;
  cfg->monitor.timer_grid = 10;
  cfg->hooks.timeout = 10000;
  cfg->hooks.webhook_timeout = 5000;
  cfg->path = dup_or_oom(&c, name);
  cfg->docker.container_prefix = dup_or_oom(&c, "tanuki-svc-");
  cfg->monitor.socket = dup_or_oom(&c, ".tanuki/tanuki-svc.sock");
  load_tree(&c, tree.root);
  rc = finish_defaults(&c);
  free(c.svc_nodes);
  free(c.svc_keys);
  ytree_free(&tree);
  if (!rc && diag->nerrors > errors_before) rc = TSVC_ECONFIG;
  if (rc) {
    tsvc_config_free(cfg);
    return rc;
  }
  *out = cfg;
  return 0;
}

int tsvc_config_load(const char *path, tsvc_config_t **out, tsvc_diag_t *diag) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    if (diag_add(diag, path, 0, 0, DIAG_ERROR, "cannot open: %s", strerror(e)))
      return TSVC_ENOMEM;
    return TSVC_EIO;
  }
  tsvc_buf_t b;
  tsvc_buf_init(&b, MAX_FILE_SIZE);
  char chunk[8192];
  int rc = 0;
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if ((rc = tsvc_buf_add(&b, chunk, n))) break;
  }
  bool readerr = ferror(f);
  fclose(f);
  if (rc == TSVC_EINVAL) {
    tsvc_buf_free(&b);
    if (diag_add(diag, path, 0, 0, DIAG_ERROR, "file is larger than %u MiB",
                 MAX_FILE_SIZE / (1024 * 1024)))
      return TSVC_ENOMEM;
    return TSVC_ECONFIG;
  }
  if (rc) {
    tsvc_buf_free(&b);
    return rc;
  }
  if (readerr) {
    tsvc_buf_free(&b);
    if (diag_add(diag, path, 0, 0, DIAG_ERROR, "read error")) return TSVC_ENOMEM;
    return TSVC_EIO;
  }
  rc = tsvc_config_load_string(path, b.data ? b.data : "", b.len, out, diag);
  tsvc_buf_free(&b);
  return rc;
}

const tsvc_service_conf_t *tsvc_config_service(const tsvc_config_t *cfg, const char *name) {
  if (!cfg || !name) return NULL;
  ssize_t i = service_index(cfg, name);
  return i < 0 ? NULL : &cfg->services[i];
}
