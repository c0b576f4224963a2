/*
 * kube.c: the services of a config as Kubernetes manifests (export.h;
 * docs/export.md has the table of what maps to what, and what Kubernetes
 * does differently).
 *
 * Per service: a PersistentVolumeClaim holding every volume of the
 * service (one subPath each), a Service on its port (so that other pods
 * reach it by its name, as containers do on the Docker network), and a
 * Deployment of one replica (strategy Recreate: the claim is
 * ReadWriteOnce, two pods must never write it at once) with the probes:
 *   startupProbe    every start_interval; gives up after start_period
 *                   plus retries checks (the grace period, then retries)
 *   readinessProbe  every interval, timeout, retries, success_threshold
 *   livenessProbe   the same with one success (Kubernetes wants 1); none
 *                   with restart.policy: never
 * Kubernetes counts probe times in whole seconds: each is rounded up.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "export/export.h"
#include "probe/probe.h"

#define LABEL_NAME "app.kubernetes.io/name"
#define NAME_MAX_LEN 63

typedef struct {
  export_notes_t *notes;
  bool oom;
} kx_t;

static void note(kx_t *c, const char *fmt, ...) TSVC_PRINTF(2, 3);
static void note(kx_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (export_notes_vaddf(c->notes, fmt, ap)) c->oom = true;
  va_end(ap);
}

static void set(kx_t *c, json_t *o, const char *key, json_t *v) {
  if (!v || !o || json_object_set_new(o, key, v)) c->oom = true;
}

static void append(kx_t *c, json_t *a, json_t *v) {
  if (!v || !a || json_array_append_new(a, v)) c->oom = true;
}

/* Whole seconds, rounded up, at least 1. */
static json_int_t secs(tsvc_ms_t ms) {
  json_int_t s = (json_int_t)((ms + 999) / 1000);
  return s < 1 ? 1 : s;
}

/*
 * name as a DNS-1035 label (what a Service's name must be): lower case,
 * letters, digits and '-', a letter first, at most 63. Returns buf.
 */
static const char *dns_label(const char *name, char *buf, size_t len) {
  size_t n = 0;
  if (!isalpha((unsigned char)name[0])) n = (size_t)snprintf(buf, len, "svc-");
  for (const char *p = name; *p && n + 1 < len && n < NAME_MAX_LEN; p++) {
    char ch = (char)tolower((unsigned char)*p);
    if (!isalnum((unsigned char)ch)) ch = '-';
    if (ch == '-' && n > 0 && buf[n - 1] == '-') continue;
    buf[n++] = ch;
  }
  while (n > 0 && buf[n - 1] == '-') n--;
  buf[n] = '\0';
  return buf;
}

static json_t *labels(const char *name) {
  return json_pack("{s:s, s:s}", LABEL_NAME, name, "app.kubernetes.io/managed-by", "tanuki-svc");
}

static json_t *meta(const char *name) {
  return json_pack("{s:s, s:o}", "name", name, "labels", labels(name));
}

/* The action of the probes: tcpSocket, httpGet, or exec; NULL for none. */
static json_t *probe_action(kx_t *c, const tsvc_service_conf_t *s) {
  tsvc_probe_spec_t sp;
  tsvc_probe_resolve(s, &sp);
  const char *addr = s->healthcheck.address;
  if (!addr && sp.kind == TSVC_PROBE_TCP && sp.port > 0)
    return json_pack("{s:{s:i}}", "tcpSocket", "port", sp.port);
  if (!addr && sp.kind == TSVC_PROBE_HTTP && sp.status_min == 200 && sp.status_max == 399)
    return json_pack("{s:{s:s, s:i}}", "httpGet", "path", sp.path, "port", sp.port);
  bool oom = false;
  json_t *test = export_health_test(s, &oom);
  if (oom) c->oom = true;
  if (!test) return NULL;
  json_t *argv;
  const char *form = json_string_value(json_array_get(test, 0));
  if (form && strcmp(form, "CMD-SHELL") == 0) {
    argv = json_pack("[s,s,O]", "/bin/sh", "-c", json_array_get(test, 1));
  } else {
    argv = json_array();
    for (size_t i = 1; argv && i < json_array_size(test); i++)
      append(c, argv, json_incref(json_array_get(test, i)));
  }
  json_decref(test);
  if (!argv) c->oom = true;
  return argv ? json_pack("{s:{s:o}}", "exec", "command", argv) : NULL;
}

/* A probe: the action (copied) and its numbers. */
static json_t *probe(kx_t *c, const json_t *action, tsvc_ms_t period, tsvc_ms_t timeout,
                     json_int_t failures, json_int_t successes) {
  json_t *p = json_deep_copy(action);
  set(c, p, "periodSeconds", json_integer(secs(period)));
  set(c, p, "timeoutSeconds", json_integer(secs(timeout)));
  set(c, p, "failureThreshold", json_integer(failures < 1 ? 1 : failures));
  set(c, p, "successThreshold", json_integer(successes < 1 ? 1 : successes));
  return p;
}

static void rounding_notes(kx_t *c, const tsvc_service_conf_t *s) {
  const tsvc_healthcheck_conf_t *hc = &s->healthcheck;
  const struct {
    const char *key;
    tsvc_ms_t ms;
  } t[] = {{"interval", hc->interval},
           {"timeout", hc->timeout},
           {"start_interval", hc->start_interval}};
  for (size_t i = 0; i < TSVC_ARRAY_LEN(t); i++) {
    if (t[i].ms % 1000 == 0) continue;
    char b[32];
    note(c, "%s: healthcheck.%s %s is %llds (Kubernetes counts whole seconds)", s->name,
         t[i].key, tsvc_duration_format(t[i].ms, b, sizeof b), (long long)secs(t[i].ms));
  }
}

static void probes(kx_t *c, const tsvc_service_conf_t *s, json_t *ctr) {
  json_t *action = probe_action(c, s);
  if (!action) return;
  const tsvc_healthcheck_conf_t *hc = &s->healthcheck;
  tsvc_ms_t si = hc->start_interval > 0 ? hc->start_interval : 1000;
  json_int_t grace = (json_int_t)((hc->start_period + si - 1) / si);
  set(c, ctr, "startupProbe", probe(c, action, si, hc->timeout, grace + hc->retries, 1));
  set(c, ctr, "readinessProbe",
      probe(c, action, hc->interval, hc->timeout, hc->retries, hc->success_threshold));
  if (s->restart.policy == TSVC_POLICY_NEVER)
    note(c, "%s: no livenessProbe (restart.policy: never); Kubernetes still restarts a "
         "container that exits", s->name);
  else
    set(c, ctr, "livenessProbe", probe(c, action, hc->interval, hc->timeout, hc->retries, 1));
  json_decref(action);
  rounding_notes(c, s);
}

/* Mounts of the service's volumes, each a subPath of its claim. */
static json_t *mounts(kx_t *c, const tsvc_service_conf_t *s, const char *claim_vol) {
  json_t *m = json_array();
  for (size_t i = 0; i < s->volumes.n; i++) {
    const char *spec = s->volumes.v[i];
    const char *colon = strchr(spec, ':');
    char sub[128];
    const char *dest = spec, *opts = NULL;
    if (!colon) {
      snprintf(sub, sizeof sub, "anon-%zu", i + 1); /* an anonymous "/dest" */
    } else {
      dest = colon + 1;
      const char *c2 = strchr(dest, ':');
      opts = c2 ? c2 + 1 : NULL;
      size_t n = (size_t)(colon - spec);
      bool host = spec[0] == '/' || spec[0] == '.' || spec[0] == '~';
      if (host || n >= sizeof sub) {
        snprintf(sub, sizeof sub, "host-%zu", i + 1);
        note(c, "%s: volume %.*s is a host path: mounted from an empty directory of the "
             "claim (copy its content in, or use a ConfigMap)", s->name, (int)n, spec);
      } else {
        memcpy(sub, spec, n);
        sub[n] = '\0';
      }
    }
    size_t dlen = opts ? (size_t)(opts - 1 - dest) : strlen(dest);
    char *path = tsvc_strndup(dest, dlen);
    json_t *e = json_pack("{s:s, s:s?, s:s}", "name", claim_vol, "mountPath", path, "subPath",
                          sub);
    free(path);
    if (opts) {
      for (const char *p = opts; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 2 && strncmp(p, "ro", 2) == 0) set(c, e, "readOnly", json_true());
        p += n + (p[n] == ',');
      }
    }
    append(c, m, e);
  }
  return m;
}

static void service(kx_t *c, const tsvc_config_t *cfg, const tsvc_service_conf_t *s,
                    const char *name, const export_opts_t *o, json_t *docs) {
  char claim[NAME_MAX_LEN + 8];
  snprintf(claim, sizeof claim, "%s-data", name);
  if (s->volumes.n) {
    json_t *pvc = json_pack("{s:s, s:s, s:o, s:{s:[s], s:{s:{s:s}}}}", "apiVersion", "v1",
                            "kind", "PersistentVolumeClaim", "metadata", meta(claim), "spec",
                            "accessModes", "ReadWriteOnce", "resources", "requests", "storage",
                            o->storage ? o->storage : "1Gi");
    append(c, docs, pvc);
  }
  if (s->port) {
    json_t *svc = json_pack("{s:s, s:s, s:o, s:{s:{s:s}, s:[{s:s, s:i, s:i, s:s}]}}",
                            "apiVersion", "v1", "kind", "Service", "metadata", meta(name),
                            "spec", "selector", LABEL_NAME, name, "ports", "name", "main",
                            "port", s->port, "targetPort", s->port, "protocol", "TCP");
    append(c, docs, svc);
  }

  json_t *ctr = json_pack("{s:s, s:s}", "name", name, "image", s->image);
  if (s->command.n) {
    json_t *args = json_array();
    for (size_t i = 0; i < s->command.n; i++) append(c, args, json_string(s->command.v[i]));
    set(c, ctr, "args", args); /* Docker's command is the image's CMD: args */
  }
  if (s->env_len) {
    json_t *env = json_array();
    for (size_t i = 0; i < s->env_len; i++)
      append(c, env, json_pack("{s:s, s:s}", "name", s->env[i].key, "value", s->env[i].value));
    set(c, ctr, "env", env);
  }
  if (s->port) set(c, ctr, "ports", json_pack("[{s:i, s:s}]", "containerPort", s->port,
                                              "protocol", "TCP"));
  if (s->volumes.n) set(c, ctr, "volumeMounts", mounts(c, s, "data"));
  probes(c, s, ctr);

  json_t *pod = json_pack("{s:[o], s:i}", "containers", ctr, "terminationGracePeriodSeconds",
                          (int)secs(s->restart.stop_timeout));
  if (s->volumes.n)
    set(c, pod, "volumes", json_pack("[{s:s, s:{s:s}}]", "name", "data",
                                     "persistentVolumeClaim", "claimName", claim));
  json_t *dmeta = meta(name);
  if (s->depends_on.n) {
    /* Kubernetes starts every pod at once: kept as an annotation, for people. */
    tsvc_buf_t b;
    tsvc_buf_init(&b, 64u << 10);
    for (size_t i = 0; i < s->depends_on.n; i++)
      tsvc_buf_addf(&b, "%s%s: %s%s", i ? "; " : "", s->depends_on.v[i],
                    tsvc_dep_condition_name(s->depends[i].condition),
                    s->depends[i].restart ? ", restart" : "");
    set(c, dmeta, "annotations", json_pack("{s:s?}", "tanuki-svc/depends-on", b.data));
    tsvc_buf_free(&b);
    note(c, "%s: depends_on has no equivalent (every pod starts at once; the annotation "
         "tanuki-svc/depends-on keeps it)", s->name);
  }
  (void)cfg;
  json_t *dep = json_pack("{s:s, s:s, s:o, s:{s:i, s:{s:s}, s:{s:{s:s}}, s:{s:{s:o}, s:o}}}",
                          "apiVersion", "apps/v1", "kind", "Deployment", "metadata", dmeta,
                          "spec", "replicas", 1, "strategy", "type", "Recreate", "selector",
                          "matchLabels", LABEL_NAME, name, "template", "metadata", "labels",
                          labels(name), "spec", pod);
  append(c, docs, dep);
}

int export_kube_docs(const tsvc_config_t *cfg, const export_opts_t *o, json_t **out,
                     export_notes_t *notes, char *err, size_t errlen) {
  *out = NULL;
  size_t n = cfg->nservices;
  char(*names)[NAME_MAX_LEN + 8] = calloc(n ? n : 1, sizeof *names);
  if (!names) return TSVC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    if (!s->enabled || s->external) continue;
    if (!s->image) {
      snprintf(err, errlen, "services.%s has no image: Kubernetes runs containers (set image, "
               "or enabled: false to leave it out)", s->name);
      free(names);
      return TSVC_ECONFIG;
    }
    dns_label(s->name, names[i], sizeof names[i]);
    for (size_t j = 0; j < i; j++) {
      if (strcmp(names[i], names[j]) != 0) continue;
      snprintf(err, errlen, "services.%s and services.%s would both be named \"%s\" in "
               "Kubernetes (lower case, letters, digits and '-'): rename one",
               cfg->services[j].name, s->name, names[i]);
      free(names);
      return TSVC_ECONFIG;
    }
  }
  kx_t c = {notes, false};
  json_t *docs = json_array();
  for (size_t i = 0; i < n; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    if (!s->enabled || s->external) {
      note(&c, "%s: left out (%s)", s->name,
           s->external ? "external: runs elsewhere" : "enabled: false");
      continue;
    }
    if (strcmp(names[i], s->name) != 0)
      note(&c, "%s: named %s (Kubernetes names are lower case, letters, digits and '-'); "
           "other pods reach it as %s", s->name, names[i], names[i]);
    service(&c, cfg, s, names[i], o, docs);
    if (export_note_unexported(cfg, s, true, notes)) c.oom = true;
  }
  if (export_note_unexported(cfg, NULL, true, notes)) c.oom = true;
  free(names);
  if (c.oom || !docs) {
    json_decref(docs);
    return TSVC_ENOMEM;
  }
  *out = docs;
  return 0;
}
