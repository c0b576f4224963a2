/*
 * cmd_env.c: `tanuki-svc env [NAME...] [--network] [--prefix P] [--only
 * NAME,...] [--format shell|json]`: how to reach the services, as
 * variables (the names: manager/conninfo.h; the help: verbs.c).
 *
 * With a monitor answering, from its GET /v1/env (the runtime it chose,
 * each service's state: a warning for each that is not healthy); else
 * from the config, the runtime as `up` would choose it.
 */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_json.h"
#include "cli/cli.h"
#include "common/util.h"
#include "manager/conninfo.h"

/* 'value' for a POSIX shell. */
static void shell_quote(const char *v) {
  putchar('\'');
  for (const char *c = v; *c; c++) {
    if (*c == '\'') fputs("'\\''", stdout);
    else putchar(*c);
  }
  putchar('\'');
}

/* Where each printed service's data is, as comment lines (eval passes over
   them). */
static void print_data(const cli_project_t *p, const bool *want) {
  const char *runtime = NULL;
  for (size_t i = 0; i < p->cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &p->cfg->services[i];
    if (s->external || !s->enabled || (want && !want[i])) continue;
    if (!runtime) runtime = cli_runtime_in_use(p);
    char where[PATH_MAX + 128];
    if (cli_data_location(p, s, runtime, where, sizeof where) == 0)
      printf("# %s data (%s runtime): %s\n", s->name, runtime, where);
  }
}

/* Mark the service called name in want; a usage error when the config has
   none. */
static int want_name(const cli_project_t *p, const char *name, size_t len, bool *want) {
  for (size_t i = 0; i < p->cfg->nservices; i++)
    if (strlen(p->cfg->services[i].name) == len &&
        strncmp(p->cfg->services[i].name, name, len) == 0) {
      want[i] = true;
      return 0;
    }
  cli_err("env: no service named '%.*s' in %s", (int)len, name, p->config_path);
  return TSVC_EXIT_USAGE;
}

/* The services asked for (operands and --only), or *want NULL: every one.
   Returns 0 or an exit code. */
static int wanted(const cli_args_t *a, const cli_project_t *p, const char *only, bool **want) {
  *want = NULL;
  if (!a->noperands && !only) return 0;
  if (!(*want = calloc(p->cfg->nservices ? p->cfg->nservices : 1, sizeof **want))) {
    cli_err("env: out of memory");
    return TSVC_EXIT_FAIL;
  }
  int rc = 0;
  for (size_t i = 0; !rc && i < a->noperands; i++)
    rc = want_name(p, a->operands[i], strlen(a->operands[i]), *want);
  for (const char *c = only; !rc && c && *c;) {
    size_t len = strcspn(c, ",");
    if (len) rc = want_name(p, c, len, *want);
    c += len + (c[len] == ',');
  }
  for (size_t i = 0; !rc && i < p->cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &p->cfg->services[i];
    if (!(*want)[i]) continue;
    if (!s->enabled) cli_err("env: warning: %s is disabled: no variables", s->name);
    else if (!s->port) cli_err("env: warning: %s has no port: no variables", s->name);
  }
  return rc;
}

/* From the running monitor: 0 with *l, 1 when none answers (or it does not
   know /v1/env: an older one), else an exit code. */
static int from_monitor(const cli_project_t *p, tsvc_view_t view, tsvc_conn_list_t *l) {
  cli_reply_t r;
  char err[1024];
  char path[64];
  snprintf(path, sizeof path, "/v1/env?view=%s", tsvc_view_name(view));
  int rc = cli_api(p->socket, "GET", path, 30000L, &r, err, sizeof err);
  if (rc == CLI_API_NONE) return 1;
  if (rc == CLI_API_UNREACH) {
    cli_err("%s", err);
    return TSVC_EXIT_UNREACH;
  }
  if (r.status == 404) {
    free(r.body);
    return 1;
  }
  if (r.status != 200) {
    cli_err("env: %s", cli_api_error(&r));
    free(r.body);
    return TSVC_EXIT_UNREACH;
  }
  json_t *v = json_loads(r.body, 0, NULL);
  free(r.body);
  rc = v ? tsvc_api_env_parse(v, l, err, sizeof err) : TSVC_EINVAL;
  json_decref(v);
  if (rc) {
    cli_err("env: the monitor's reply: %s", v ? err : "not JSON");
    return TSVC_EXIT_UNREACH;
  }
  return 0;
}

static bool is_wanted(const cli_project_t *p, const bool *want, const char *name) {
  if (!want) return true;
  for (size_t i = 0; i < p->cfg->nservices; i++)
    if (strcmp(p->cfg->services[i].name, name) == 0) return want[i];
  return false;
}

int cmd_env(const cli_args_t *a) {
  const char *format = cli_str(a, &CLI_OPT_FORMAT);
  if (!format) format = "shell";
  const char *extra = cli_str(a, &CLI_OPT_PREFIX), *only = cli_str(a, &CLI_OPT_ONLY);
  bool network = cli_flag(a, &CLI_OPT_NETWORK);
  if (extra && !tsvc_conn_prefix_ok(extra)) {
    cli_err("env: --prefix '%s': a prefix is letters, digits and '_', not starting with a digit",
            extra);
    return TSVC_EXIT_USAGE;
  }
  tsvc_view_t view = network ? TSVC_VIEW_NETWORK : TSVC_VIEW_HOST;
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p);
  if (rc) return rc;
  bool *want = NULL;
  tsvc_conn_list_t l = {0};
  json_t *o = NULL;
  if ((rc = wanted(a, &p, only, &want))) goto out;

  bool monitored = false;
  rc = from_monitor(&p, view, &l);
  if (rc == 0) {
    monitored = true;
  } else if (rc == 1) {
    rc = tsvc_conn_collect(p.cfg, network ? cli_runtime_in_use(&p) : NULL, view, NULL, &l);
    if (rc) {
      cli_err("env: out of memory");
      rc = TSVC_EXIT_FAIL;
      goto out;
    }
  } else {
    goto out;
  }
  if (l.shared_host)
    cli_err("env: --network: the process runtime has no container network; its services "
            "listen on 127.0.0.1: these are the host's values");

  if (!(o = json_object())) {
    cli_err("env: out of memory");
    rc = TSVC_EXIT_FAIL;
    goto out;
  }
  for (size_t i = 0; i < l.n; i++) {
    const tsvc_conn_info_t *c = &l.v[i];
    if (!is_wanted(&p, want, c->service)) continue;
    if (monitored && !c->monitored)
      cli_err("env: warning: %s is not monitored (variables printed all the same)", c->service);
    else if (monitored && c->state != TSVC_STATE_HEALTHY)
      cli_err("env: warning: %s is %s, not healthy (variables printed all the same)",
              c->service, tsvc_state_name(c->state));
    tsvc_kv_t *kv = NULL;
    size_t n = 0;
    rc = tsvc_conn_vars(c, extra, true, &kv, &n);
    for (size_t k = 0; !rc && k < n; k++)
      if (json_object_set_new(o, kv[k].key, json_string(kv[k].value))) rc = TSVC_ENOMEM;
    tsvc_conn_vars_free(kv, n);
    if (rc) {
      cli_err("env: out of memory");
      rc = TSVC_EXIT_FAIL;
      goto out;
    }
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
    print_data(&p, want);
  }
  rc = fflush(stdout) == 0 ? TSVC_EXIT_OK : TSVC_EXIT_FAIL;
out:
  json_decref(o);
  tsvc_conn_list_free(&l);
  free(want);
  cli_project_free(&p);
  return rc;
}
