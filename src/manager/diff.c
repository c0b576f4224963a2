/* diff.c: see diff.h. */
#include "manager/diff.h"

#include <stdio.h>
#include <string.h>

static bool str_eq(const char *a, const char *b) {
  if (!a || !b) return a == b;
  return strcmp(a, b) == 0;
}

static bool strv_eq(const tsvc_strv_t *a, const tsvc_strv_t *b) {
  if (a->n != b->n) return false;
  for (size_t i = 0; i < a->n; i++)
    if (!str_eq(a->v[i], b->v[i])) return false;
  return true;
}

static bool env_eq(const tsvc_kv_t *a, size_t na, const tsvc_kv_t *b, size_t nb) {
  if (na != nb) return false;
  for (size_t i = 0; i < na; i++)
    if (!str_eq(a[i].key, b[i].key) || !str_eq(a[i].value, b[i].value)) return false;
  return true;
}

static bool hc_eq(const tsvc_healthcheck_conf_t *a, const tsvc_healthcheck_conf_t *b) {
  return strv_eq(&a->command, &b->command) && a->shell == b->shell && a->probe == b->probe &&
         a->interval == b->interval && a->timeout == b->timeout && a->retries == b->retries &&
         a->success_threshold == b->success_threshold && a->start_period == b->start_period &&
         a->start_interval == b->start_interval && a->history == b->history &&
         str_eq(a->address, b->address) && str_eq(a->path, b->path) &&
         a->expect_status_min == b->expect_status_min &&
         a->expect_status_max == b->expect_status_max;
}

static bool restart_eq(const tsvc_restart_conf_t *a, const tsvc_restart_conf_t *b) {
  return a->policy == b->policy && a->max_restarts == b->max_restarts &&
         a->window == b->window && a->backoff == b->backoff &&
         a->max_backoff == b->max_backoff && a->cooldown == b->cooldown &&
         a->stop_timeout == b->stop_timeout;
}

/* The conditions of depends_on (the names are compared as a list). */
static bool deps_eq(const tsvc_service_conf_t *a, const tsvc_service_conf_t *b) {
  for (size_t i = 0; i < a->depends_on.n && i < b->depends_on.n; i++)
    if (a->depends[i].condition != b->depends[i].condition ||
        a->depends[i].restart != b->depends[i].restart)
      return false;
  return true;
}

unsigned tsvc_service_diff(const tsvc_service_conf_t *a, const tsvc_service_conf_t *b) {
  unsigned d = TSVC_DIFF_SAME;
  if (!str_eq(a->image, b->image) || a->port != b->port || a->host_port != b->host_port ||
      !env_eq(a->env, a->env_len, b->env, b->env_len) || !strv_eq(&a->volumes, &b->volumes) ||
      !strv_eq(&a->command, &b->command) || !strv_eq(&a->process.command, &b->process.command) ||
      !env_eq(a->process.env, a->process.env_len, b->process.env, b->process.env_len) ||
      !str_eq(a->process.workdir, b->process.workdir) ||
      !str_eq(a->process.data_dir, b->process.data_dir))
    d |= TSVC_DIFF_SPEC;
  if (!hc_eq(&a->healthcheck, &b->healthcheck) || !restart_eq(&a->restart, &b->restart) ||
      !strv_eq(&a->depends_on, &b->depends_on) || !deps_eq(a, b) ||
      a->depends_timeout != b->depends_timeout || !strv_eq(&a->hooks.on_change, &b->hooks.on_change) ||
      a->hooks.timeout != b->hooks.timeout)
    d |= TSVC_DIFF_KNOBS;
  if (a->enabled != b->enabled) d |= TSVC_DIFF_ENABLED;
  if (a->external != b->external) d |= TSVC_DIFF_EXTERNAL;
  return d;
}

bool tsvc_config_reloadable(const tsvc_config_t *old, const tsvc_config_t *n, char *err,
                            size_t errlen) {
  const char *what = NULL;
  if (old->runtime != n->runtime) what = "runtime";
  else if (!str_eq(old->docker.host, n->docker.host)) what = "docker.host";
  else if (!str_eq(old->docker.network, n->docker.network)) what = "docker.network";
  else if (!str_eq(old->docker.container_prefix, n->docker.container_prefix))
    what = "docker.container_prefix";
  if (!what) return true;
  snprintf(err, errlen,
           "%s changed: a reload cannot apply it (run 'tanuki-svc down' and 'up' again)", what);
  return false;
}
