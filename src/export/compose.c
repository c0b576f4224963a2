/*
 * compose.c: the services of a config as a docker-compose.yml
 * (export.h; docs/export.md has the table of what maps to what).
 *
 * The same images, command, environment, ports (published on
 * docker.publish_address, 127.0.0.1 by default, as the docker runtime does), volumes (named ones keep their names, so
 * the data is the same), network (by its name) and depends_on with its
 * conditions; the health check as Docker's HEALTHCHECK. Docker restarts a
 * container that exits, never one that is unhealthy: restart:
 * unless-stopped is as near as compose gets to restart.policy.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "export/export.h"

typedef struct {
  json_t *root;
  export_notes_t *notes;
  bool oom;
} cx_t;

static void note(cx_t *c, const char *fmt, ...) TSVC_PRINTF(2, 3);
static void note(cx_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (export_notes_vaddf(c->notes, fmt, ap)) c->oom = true;
  va_end(ap);
}

/* Set key of o to v (taken); a NULL v is out of memory. */
static void set(cx_t *c, json_t *o, const char *key, json_t *v) {
  if (!v || !o || json_object_set_new(o, key, v)) c->oom = true;
}

static json_t *dur(tsvc_ms_t ms) {
  char b[32];
  return json_string(tsvc_duration_format(ms, b, sizeof b));
}

static json_t *strv(const tsvc_strv_t *s) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < s->n; i++)
    if (json_array_append_new(a, json_string(s->v[i]))) json_decref(a), a = NULL;
  return a;
}

/* The named volume of "name:/dest[:opts]" (not a host path, not an
   anonymous "/dest"): its length, else 0. */
static size_t volume_name_len(const char *spec) {
  const char *colon = strchr(spec, ':');
  if (!colon || colon == spec || spec[0] == '/' || spec[0] == '.' || spec[0] == '~') return 0;
  return (size_t)(colon - spec);
}

/* Is service i exported (enabled, not external)? */
static bool exported(const tsvc_service_conf_t *s) { return s->enabled && !s->external; }

static json_t *healthcheck(cx_t *c, const tsvc_service_conf_t *s, const export_opts_t *o) {
  const tsvc_healthcheck_conf_t *hc = &s->healthcheck;
  bool oom = false;
  json_t *test = export_health_test(s, &oom);
  if (oom) c->oom = true;
  if (!test) return NULL;
  json_t *h = json_object();
  set(c, h, "test", test);
  set(c, h, "interval", dur(hc->interval));
  set(c, h, "timeout", dur(hc->timeout));
  set(c, h, "retries", json_integer(hc->retries));
  set(c, h, "start_period", dur(hc->start_period));
  if (!o->compose_v1) set(c, h, "start_interval", dur(hc->start_interval));
  if (hc->success_threshold > 1)
    note(c, "%s: healthcheck.success_threshold %d has no equivalent (Docker: one success)",
         s->name, hc->success_threshold);
  return h;
}

static json_t *depends(cx_t *c, const tsvc_config_t *cfg, const tsvc_service_conf_t *s,
                       const export_opts_t *o) {
  json_t *d = json_object();
  for (size_t i = 0; d && i < s->depends_on.n; i++) {
    const char *name = s->depends_on.v[i];
    const tsvc_dep_conf_t *dc = &s->depends[i];
    const tsvc_service_conf_t *dep = tsvc_config_service(cfg, name);
    if (!dep || !exported(dep)) {
      note(c, "%s: depends_on %s left out (%s is not exported: %s)", s->name, name, name,
           dep && dep->external ? "external" : "disabled");
      continue;
    }
    tsvc_dep_condition_t cond = dc->condition;
    if (cond == TSVC_DEP_HEALTHY) {
      bool oom = false;
      json_t *t = export_health_test(dep, &oom);
      if (oom) c->oom = true;
      if (!t) {
        note(c, "%s: depends_on %s: service_started, as %s has no health check (probe: "
             "running)", s->name, name, name);
        cond = TSVC_DEP_STARTED;
      }
      json_decref(t);
    }
    json_t *e = json_object();
    set(c, e, "condition", json_string(tsvc_dep_condition_name(cond)));
    if (dc->restart) {
      if (o->compose_v1)
        note(c, "%s: depends_on %s: restart: true left out (docker-compose 1.x has no "
             "such key)", s->name, name);
      else
        set(c, e, "restart", json_true());
    }
    set(c, d, name, e);
  }
  return d;
}

static void service(cx_t *c, const tsvc_config_t *cfg, const tsvc_service_conf_t *s,
                    const export_opts_t *o, json_t *services, json_t *volumes) {
  json_t *x = json_object();
  set(c, services, s->name, x);
  set(c, x, "image", json_string(s->image));
  if (s->command.n) set(c, x, "command", strv(&s->command));
  if (s->env_len) {
    json_t *env = json_object();
    for (size_t i = 0; i < s->env_len; i++)
      set(c, env, s->env[i].key, json_string(s->env[i].value));
    set(c, x, "environment", env);
  }
  if (s->port) {
    /* port: "H:C" publishes host port H to container port C. */
    const char *ip = cfg->docker.publish_address ? cfg->docker.publish_address : "127.0.0.1";
    bool v6 = strchr(ip, ':') != NULL;
    char *p = tsvc_asprintf("%s%s%s:%d:%d", v6 ? "[" : "", ip, v6 ? "]" : "",
                            s->host_port ? s->host_port : s->port, s->port);
    set(c, x, "ports", p ? json_pack("[s]", p) : NULL);
    free(p);
  }
  if (s->volumes.n) {
    set(c, x, "volumes", strv(&s->volumes));
    for (size_t i = 0; i < s->volumes.n; i++) {
      size_t n = volume_name_len(s->volumes.v[i]);
      if (!n) continue;
      char *name = tsvc_strndup(s->volumes.v[i], n);
      /* name: keeps Docker's name as it is (compose would put the project
         before it): the same volume, so the same data. */
      if (name && !json_object_get(volumes, name))
        set(c, volumes, name, json_pack("{s:s}", "name", name));
      else if (!name)
        c->oom = true;
      free(name);
    }
  }
  set(c, x, "networks", json_pack("[s]", cfg->docker.network));
  if (s->depends_on.n) {
    json_t *d = depends(c, cfg, s, o);
    if (d && json_object_size(d)) set(c, x, "depends_on", d);
    else json_decref(d);
  }
  json_t *h = healthcheck(c, s, o);
  if (h) set(c, x, "healthcheck", h);
  set(c, x, "restart",
      json_string(s->restart.policy == TSVC_POLICY_NEVER ? "no" : "unless-stopped"));
  set(c, x, "stop_grace_period", dur(s->restart.stop_timeout));
}

int export_compose_doc(const tsvc_config_t *cfg, const export_opts_t *o, json_t **out,
                       export_notes_t *notes, char *err, size_t errlen) {
  *out = NULL;
  for (size_t i = 0; i < cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    if (exported(s) && !s->image) {
      snprintf(err, errlen, "services.%s has no image: compose runs containers (set image, "
               "or enabled: false to leave it out)", s->name);
      return TSVC_ECONFIG;
    }
  }
  cx_t c = {json_object(), notes, false};
  json_t *services = json_object(), *volumes = json_object(), *networks = json_object();
  set(&c, c.root, "services", services);
  for (size_t i = 0; i < cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    if (!exported(s)) {
      note(&c, "%s: left out (%s)", s->name,
           s->external ? "external: runs elsewhere" : "enabled: false");
      continue;
    }
    service(&c, cfg, s, o, services, volumes);
    if (export_note_unexported(cfg, s, false, notes)) c.oom = true;
  }
  if (export_note_unexported(cfg, NULL, false, notes)) c.oom = true;
  set(&c, networks, cfg->docker.network, json_pack("{s:s}", "name", cfg->docker.network));
  set(&c, c.root, "networks", networks);
  if (json_object_size(volumes)) set(&c, c.root, "volumes", volumes);
  else json_decref(volumes);
  if (o->compose_v1)
    note(&c, "docker-compose 1.x: healthcheck.start_interval left out (checks during "
         "start_period run every interval)");
  if (c.oom) {
    json_decref(c.root);
    return TSVC_ENOMEM;
  }
  *out = c.root;
  return 0;
}
