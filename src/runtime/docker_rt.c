/* docker_rt.c: see docker_rt.h. */
#include "runtime/docker_rt.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "docker/docker.h"
#include "docker/image.h"
#include "export/export.h"
#include "log/log.h"
#include "runtime/docker_pull.h"
#include "runtime/remote.h"

#define LABEL_SERVICE "tanuki.service"
#define LABEL_PROJECT "tanuki.project"
#define LABEL_CONFIG "tanuki.config"

typedef struct op_s op_t;

typedef struct {
  tsvc_runtime_t base;
  tsvc_docker_t *d;
  const tsvc_config_t *cfg;
  char *project;             /* tsvc_project_id of the config's path */
  char *config_path;         /* absolute: named in the tanuki.config label */
  char *legacy;              /* the config's directory: the tanuki.project
                                of containers made by earlier releases */
  json_t *owned;             /* service -> id of the container last found to
                                be ours: exec probes go to that id, so a
                                container of our name made since by someone
                                else is never entered */
  bool network_ok;           /* the network exists (checked once) */
  bool network_busy;         /* an op is making sure of it; others wait */
  tsvc_docker_events_t *events;
  tsvc_rt_event_cb event_cb;
  void *event_data;
  bool reachable;            /* as the event stream last said */
  bool told_down;
  op_t *ops;                 /* every operation in flight */
  struct closer_s *closer;   /* answers them once the runtime is freed */
  json_t *inherit;           /* service -> ["volume:/dest", ...]: anonymous
                                volumes of a container we removed to
                                recreate it, handed to the new one */
  /* Where the engine runs, and so where probes connect (remote.h): found
     by the first operation (GET /info here and on the local engine), again
     after the engine was away. */
  bool route_known;
  bool route_busy;           /* an op is finding it out; others wait */
  bool local;                /* the engine runs on this machine */
  tsvc_probe_via_t via;      /* docker.probe_via resolved */
  char engine_id[128];       /* its ID and name, from GET /info */
  char engine_name[128];
  char pub_host[256];        /* where published ports are reached from here */
  tsvc_docker_t *local_d;    /* the local engine, asked during the check */
  bool publish_warned;       /* the exposure warning is said once */
  json_t *addrs;             /* service -> its container's address, as the
                                last inspection found it */
} drt_t;

typedef enum { OP_START, OP_STOP, OP_RESTART, OP_INSPECT, OP_EXEC, OP_REMOVE } op_kind_t;

/* One runtime operation: a few Engine API requests in a row. */
struct op_s {
  drt_t *rt;
  op_t *prev, *next;
  op_kind_t kind;
  const tsvc_service_conf_t *svc;
  char cname[256];
  tsvc_docker_req_t *req; /* the request in flight */
  tsvc_rt_done_cb done;
  tsvc_rt_inspect_cb inspect;
  tsvc_probe_cb probe;
  void *data;
  uint64_t t0;
  size_t vol;         /* start: the next configured volume to look at */
  char **argv;        /* exec: the command (owned), NULL-terminated */
  int timeout_ms;     /* exec */
  /* The image step of a start (pull_policy). */
  tsvc_docker_pull_t *pull; /* the pull in flight */
  bool pulled;              /* pulled during this operation */
  bool container_known;     /* the container was inspected */
  bool running;             /* ... and runs */
  char container_image[80]; /* ... made from this image id */
  bool network_wait;        /* waits for another op's network check */
  bool route_wait;          /* waits for another op's route check */
  json_t *container;        /* ... its inspection (always: a recreation
                               hands its anonymous volumes on) */
};

/* ---- bookkeeping ---------------------------------------------------------- */

static op_t *op_new(drt_t *rt, op_kind_t kind, const tsvc_service_conf_t *svc, void *data) {
  op_t *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->rt = rt;
  o->kind = kind;
  o->svc = svc;
  o->data = data;
  o->t0 = uv_hrtime();
  snprintf(o->cname, sizeof o->cname, "%s%s", rt->cfg->docker.container_prefix, svc->name);
  o->next = rt->ops;
  if (rt->ops) rt->ops->prev = o;
  rt->ops = o;
  return o;
}

static void op_free(op_t *o) {
  drt_t *rt = o->rt;
  tsvc_docker_pull_cancel(o->pull);
  json_decref(o->container);
  if (o->prev) o->prev->next = o->next;
  else rt->ops = o->next;
  if (o->next) o->next->prev = o->prev;
  for (char **a = o->argv; a && *a; a++) free(*a);
  free(o->argv);
  free(o);
}

/* ---- whose container is it? ------------------------------------------------- */

typedef enum {
  OWNER_OURS,    /* our service and our project (or, made by an earlier
                    release, our config's directory as its project) */
  OWNER_NONE,    /* not tanuki-svc's for this service */
  OWNER_OTHER    /* this service of another tanuki-svc project */
} owner_t;

static const char *label_of(const json_t *labels, const char *key) {
  return json_string_value(json_object_get(labels, key));
}

/* Is a tanuki.project value ours? The project id, or the directory that the
   previous release wrote there: the same config, so the same project (it
   cannot tell two configs of one directory apart; nor could that release). */
static bool our_project(const drt_t *rt, const char *project) {
  return project && (strcmp(project, rt->project) == 0 || strcmp(project, rt->legacy) == 0);
}

/* Name the project of a container's labels for people, into buf. */
static void describe_project(const json_t *labels, char *buf, size_t len) {
  const char *prj = label_of(labels, LABEL_PROJECT), *cfg = label_of(labels, LABEL_CONFIG);
  if (prj && cfg)
    snprintf(buf, len, "the project of %s (%s=%s)", cfg, LABEL_PROJECT, prj);
  else if (prj && prj[0] == '/')
    snprintf(buf, len, "the project in %s (made by an earlier tanuki-svc)", prj);
  else if (prj)
    snprintf(buf, len, "project %s", prj);
  else
    snprintf(buf, len, "an unknown project (no %s label)", LABEL_PROJECT);
}

/* Whose is the container of this inspection (or of a container list entry:
   labels at "Labels")? When not ours, why says so for people. */
static owner_t owner(const drt_t *rt, const json_t *c, const char *cname, const char *service,
                     char *why, size_t len) {
  json_t *labels = json_object_get(json_object_get(c, "Config"), "Labels");
  if (!labels) labels = json_object_get(c, "Labels");
  const char *svc = label_of(labels, LABEL_SERVICE);
  if (!svc || strcmp(svc, service) != 0) {
    snprintf(why, len,
             "a container named %s exists but was not made by tanuki-svc for this service "
             "(no %s=%s label); tanuki-svc leaves it alone: rename or remove it, or change "
             "docker.container_prefix",
             cname, LABEL_SERVICE, service);
    return OWNER_NONE;
  }
  if (our_project(rt, label_of(labels, LABEL_PROJECT))) return OWNER_OURS;
  char whose[768];
  describe_project(labels, whose, sizeof whose);
  snprintf(why, len,
           "a container named %s belongs to another tanuki-svc project: %s; tanuki-svc leaves "
           "it alone (never stops, adopts, restarts or removes it): give one of the projects "
           "another docker.container_prefix, or remove it once that project is done with it",
           cname, whose);
  return OWNER_OTHER;
}

/* Remember (id) or forget (NULL) the container of ours for svc. */
static void set_owned(drt_t *rt, const char *service, const char *id) {
  if (id && *id) json_object_set_new(rt->owned, service, json_string(id));
  else json_object_del(rt->owned, service);
}

static const char *or_empty(const char *s) { return s ? s : ""; }

static void drt_probe_route(tsvc_runtime_t *base, const tsvc_service_conf_t *svc,
                            tsvc_probe_route_t *out);

static void finish(op_t *o, int status, const char *msg) {
  o->req = NULL;
  if (o->done) o->done(status, status ? msg : NULL, o->data);
  op_free(o);
}

/* ---- create / start / restart / stop ---------------------------------------- */

static void after_inspect(const tsvc_docker_reply_t *r, void *data);
static void do_create(op_t *o);
static void container_step(op_t *o);
static void image_step(op_t *o);
static void pull_image(op_t *o);
static void inspect_image(op_t *o);
static void after_pull(int status, const char *msg, void *data);

static void after_simple(const tsvc_docker_reply_t *r, void *data) {
  finish(data, r->status, r->errmsg);
}

static void after_create(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  o->req = NULL;
  if (r->status) {
    finish(o, r->status, r->errmsg);
    return;
  }
  set_owned(o->rt, o->svc->name, json_string_value(json_object_get(r->json, "Id")));
  int rc = tsvc_docker_container_start(o->rt->d, o->cname, after_simple, o, &o->req);
  if (rc) finish(o, rc, "cannot start the container");
}

/* The network check is done (status 0: it exists): o and every op that
   waited for it go on, or fail with its words. One at a time, from the
   list's head each time: a step may finish (free) any op. */
static void network_done(op_t *o, int status, const char *msg) {
  drt_t *rt = o->rt;
  rt->network_busy = false;
  if (!status) rt->network_ok = true;
  char copy[512];
  tsvc_strlcpy(copy, msg ? msg : "", sizeof copy);
  for (op_t *w = o;;) {
    w->network_wait = false;
    if (status) finish(w, status, copy);
    else container_step(w);
    for (w = rt->ops; w && !w->network_wait; w = w->next) {
    }
    if (!w) break;
  }
}

static void after_network(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  o->req = NULL;
  if (r->status) {
    char msg[512];
    snprintf(msg, sizeof msg, "network %s: %s", o->rt->cfg->docker.network, r->errmsg);
    network_done(o, r->status, msg);
    return;
  }
  network_done(o, 0, NULL);
}

/* A NULL-terminated copy (of the pointers only) of the n strings at v, as
   the docker client takes lists: a tsvc_strv_t has no NULL at its end.
   NULL when n is 0 (no list) or out of memory (*oom set). */
static const char **null_terminated(char *const *v, size_t n, bool *oom) {
  if (!n) return NULL;
  const char **out = calloc(n + 1, sizeof *out);
  if (!out) {
    *oom = true;
    return NULL;
  }
  for (size_t i = 0; i < n; i++) out[i] = v[i];
  return out;
}

/* An anonymous volume's name: 64 hex digits (a named one is the user's). */
static bool anonymous(const char *name) {
  size_t n = 0;
  for (; name[n]; n++)
    if (!((name[n] >= '0' && name[n] <= '9') || (name[n] >= 'a' && name[n] <= 'f'))) return false;
  return n == 64;
}

/* Does a configured volume ("name:/dest[:opts]") mount at dest? */
static bool configured_at(const tsvc_service_conf_t *svc, const char *dest) {
  size_t dl = strlen(dest);
  for (size_t i = 0; i < svc->volumes.n; i++) {
    const char *c = strchr(svc->volumes.v[i], ':');
    if (c && strncmp(c + 1, dest, dl) == 0 && (c[1 + dl] == '\0' || c[1 + dl] == ':'))
      return true;
  }
  return false;
}

/* Before removing a container to recreate it (a reload that changed its
   image, environment, ...): remember its anonymous volumes (an image's
   VOLUME with no volume of ours there), so that the new container mounts
   the same ones and their data lives on, as `docker compose up` does. */
static void remember_anonymous(drt_t *rt, const tsvc_service_conf_t *svc, const json_t *inspect) {
  json_t *list = json_array();
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(inspect, "Mounts"), i, m) {
    const char *type = json_string_value(json_object_get(m, "Type"));
    const char *name = json_string_value(json_object_get(m, "Name"));
    const char *dest = json_string_value(json_object_get(m, "Destination"));
    if (!type || strcmp(type, "volume") != 0 || !name || !dest || !anonymous(name)) continue;
    if (configured_at(svc, dest)) continue;
    char *spec = tsvc_asprintf("%s:%s", name, dest);
    if (spec) json_array_append_new(list, json_string(spec));
    free(spec);
  }
  if (json_array_size(list)) json_object_set_new(rt->inherit, svc->name, list);
  else json_decref(list);
}

/* The container from config, as the request's DockerManager made it. */
static void do_create(op_t *o) {
  const tsvc_service_conf_t *svc = o->svc;
  drt_t *rt = o->rt;
  size_t n = svc->env_len;
  const char **env = calloc(n + 1, sizeof *env);
  char **envs = calloc(n + 1, sizeof *envs);
  char *label_svc = tsvc_asprintf("%s=%s", LABEL_SERVICE, svc->name);
  char *label_prj = tsvc_asprintf("%s=%s", LABEL_PROJECT, rt->project);
  char *label_cfg = tsvc_asprintf("%s=%s", LABEL_CONFIG, rt->config_path);
  const char *labels[] = {label_svc, label_prj, label_cfg, NULL};
  const char *aliases[] = {svc->name, NULL};
  bool oom = false;
  const char **cmd = null_terminated(svc->command.v, svc->command.n, &oom);
  /* The configured volumes, then those inherited from the container this
     one replaces. */
  json_t *inh = json_object_get(rt->inherit, svc->name);
  size_t ninh = json_array_size(inh);
  const char **volumes = NULL;
  if (svc->volumes.n + ninh) {
    volumes = calloc(svc->volumes.n + ninh + 1, sizeof *volumes);
    if (!volumes) oom = true;
    size_t k = 0;
    for (size_t i = 0; volumes && i < svc->volumes.n; i++) volumes[k++] = svc->volumes.v[i];
    for (size_t i = 0; volumes && i < ninh; i++) {
      const char *v = json_string_value(json_array_get(inh, i));
      const char *dest = v ? strchr(v, ':') : NULL;
      /* A volume of the new config at that place wins. */
      if (dest && !configured_at(svc, dest + 1)) volumes[k++] = v;
    }
  }
  int rc = TSVC_ENOMEM;
  if (!env || !envs || !label_svc || !label_prj || !label_cfg || oom) goto out;
  for (size_t i = 0; i < n; i++) {
    if (!(envs[i] = tsvc_asprintf("%s=%s", svc->env[i].key, svc->env[i].value))) goto out;
    env[i] = envs[i];
  }
  tsvc_docker_container_spec_t spec = {
      .name = o->cname,
      .image = svc->image,
      .env = env,
      .cmd = cmd,
      .volumes = volumes,
      .labels = labels,
      .network = rt->cfg->docker.network,
      .aliases = aliases,
      .port = svc->port,
      .host_port = svc->host_port,
      .host_ip = rt->cfg->docker.publish_address,
  };
  rc = tsvc_docker_container_create(rt->d, &spec, after_create, o, &o->req);
  if (!rc && inh) json_object_del(rt->inherit, svc->name); /* handed over */
out:
  for (size_t i = 0; envs && i < n; i++) free(envs[i]);
  free(envs);
  free(env);
  free(cmd);
  free(volumes);
  free(label_svc);
  free(label_prj);
  free(label_cfg);
  if (rc) finish(o, rc, "cannot create the container");
}

/* ---- named volumes: never two projects on one ----------------------------- */

static void next_volume(op_t *o);

/* The named volume of a configured volume ("name:/dest[:opts]") into buf;
   false for binds (an absolute or relative host path) and read-only mounts
   (reading what another project writes is a choice, not an accident). */
static bool named_volume(const char *spec, char *buf, size_t len) {
  const char *c = strchr(spec, ':');
  if (!c || c == spec || spec[0] == '/' || spec[0] == '.' || spec[0] == '~') return false;
  const char *opts = strchr(c + 1, ':');
  for (const char *p = opts ? opts + 1 : ""; *p;) {
    size_t n = strcspn(p, ",");
    if (n == 2 && strncmp(p, "ro", 2) == 0) return false;
    p += n + (p[n] == ',');
  }
  size_t n = (size_t)(c - spec);
  if (n >= len) return false;
  memcpy(buf, spec, n);
  buf[n] = '\0';
  return true;
}

static void after_volume_users(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  o->req = NULL;
  if (r->status) {
    finish(o, r->status, r->errmsg);
    return;
  }
  char vname[256] = "";
  named_volume(o->svc->volumes.v[o->vol - 1], vname, sizeof vname);
  size_t i;
  json_t *c;
  json_array_foreach(r->json, i, c) {
    json_t *labels = json_object_get(c, "Labels");
    const char *svc = label_of(labels, LABEL_SERVICE);
    /* Only tanuki-svc's containers of another project: a backup container
       of the user's own is the user's business. */
    if (!svc || our_project(o->rt, label_of(labels, LABEL_PROJECT))) continue;
    const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
    char whose[768], msg[1400];
    describe_project(labels, whose, sizeof whose);
    snprintf(msg, sizeof msg,
             "the volume %s is used by %s, a container of another tanuki-svc project: %s; "
             "two projects never share a data volume (their servers would write the same "
             "files): name another volume in this service's volumes",
             vname, name ? (name[0] == '/' ? name + 1 : name) : "?", whose);
    finish(o, TSVC_EEXIST, msg);
    return;
  }
  next_volume(o);
}

/* Before creating a container: each named volume it mounts read-write must
   not be mounted by a container of another project (GET /containers/json
   filtered by volume), then the image step, then create. */
static void next_volume(op_t *o) {
  const tsvc_strv_t *v = &o->svc->volumes;
  char vname[256];
  while (o->vol < v->n && !named_volume(v->v[o->vol], vname, sizeof vname)) o->vol++;
  if (o->vol >= v->n) {
    image_step(o);
    return;
  }
  o->vol++;
  json_t *f = json_pack("{s:[s]}", "volume", vname);
  char *fs = f ? json_dumps(f, JSON_COMPACT) : NULL;
  char *fe = fs ? curl_easy_escape(NULL, fs, 0) : NULL;
  char *path = fe ? tsvc_asprintf("/containers/json?all=1&filters=%s", fe) : NULL;
  int rc = path ? tsvc_docker_request(o->rt->d, "GET", path, NULL, after_volume_users, o, &o->req)
                : TSVC_ENOMEM;
  json_decref(f);
  free(fs);
  curl_free(fe);
  free(path);
  if (rc) finish(o, rc, "cannot send the request to the docker daemon");
}

static void after_recreate_remove(const tsvc_docker_reply_t *r, void *data);

/* Does the container publish svc's port on another host address than
   docker.publish_address? (An empty HostIp is every interface.) */
static bool published_elsewhere(const drt_t *rt, const tsvc_service_conf_t *svc,
                                const json_t *inspect) {
  if (!svc->port) return false;
  char key[32];
  snprintf(key, sizeof key, "%d/tcp", svc->port);
  json_t *b = json_array_get(
      json_object_get(json_object_get(json_object_get(inspect, "HostConfig"), "PortBindings"),
                      key),
      0);
  if (!b) return false;
  const char *ip = json_string_value(json_object_get(b, "HostIp"));
  const char *want = rt->cfg->docker.publish_address;
  if (!ip || !*ip) ip = "0.0.0.0";
  return want && strcmp(ip, want) != 0;
}

static void after_inspect(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  drt_t *rt = o->rt;
  o->req = NULL;
  int stop_s = (int)((o->svc->restart.stop_timeout + 999) / 1000);
  if (r->status == TSVC_ENOENT) {
    /* No container (never made, or removed behind our back). */
    o->container_known = true;
    set_owned(rt, o->svc->name, NULL);
    if (o->kind == OP_STOP || o->kind == OP_REMOVE) finish(o, 0, NULL);
    else next_volume(o);
    return;
  }
  if (r->status) {
    finish(o, r->status, r->errmsg);
    return;
  }
  char why[1400];
  if (owner(rt, r->json, o->cname, o->svc->name, why, sizeof why) != OWNER_OURS) {
    /* Not ours: never stopped, adopted, restarted or removed. */
    finish(o, TSVC_EEXIST, why);
    return;
  }
  set_owned(rt, o->svc->name, json_string_value(json_object_get(r->json, "Id")));
  tsvc_docker_container_info_t info;
  tsvc_docker_container_info(r->json, rt->cfg->docker.network, &info);
  int rc = 0;
  switch (o->kind) {
  case OP_START:
    if (published_elsewhere(rt, o->svc, r->json)) {
      /* docker.publish_address changed since it was made (a fix for a
         refused start, say): made again to publish there, as a reload
         does; its volumes stay. */
      TSVC_LOG(TSVC_LOG_INFO, o->svc->name, "recreating %s: it publishes port %d on another "
               "address than docker.publish_address %s", o->cname, o->svc->port,
               rt->cfg->docker.publish_address);
      remember_anonymous(rt, o->svc, r->json);
      set_owned(rt, o->svc->name, NULL);
      o->container_known = true;
      rc = tsvc_docker_container_remove(rt->d, o->cname, true, after_recreate_remove, o,
                                        &o->req);
      break;
    }
    if (o->pulled) {
      /* pull_policy always: is the container made from what was pulled? */
      const char *img = json_string_value(json_object_get(r->json, "Image"));
      o->container_known = true;
      o->running = info.running;
      tsvc_strlcpy(o->container_image, img ? img : "", sizeof o->container_image);
      if (o->container_image[0]) {
        json_decref(o->container);
        o->container = json_incref(r->json);
        inspect_image(o);
        return;
      }
    }
    if (info.running) {
      finish(o, 0, NULL); /* adopted as it is */
      return;
    }
    rc = tsvc_docker_container_start(rt->d, o->cname, after_simple, o, &o->req);
    break;
  case OP_RESTART:
    rc = tsvc_docker_container_restart(rt->d, o->cname, stop_s, after_simple, o, &o->req);
    break;
  case OP_STOP:
    rc = tsvc_docker_container_stop(rt->d, o->cname, stop_s, after_simple, o, &o->req);
    break;
  case OP_REMOVE:
    /* force: it may still be running; v=false: volumes stay. */
    remember_anonymous(rt, o->svc, r->json);
    set_owned(rt, o->svc->name, NULL);
    rc = tsvc_docker_container_remove(rt->d, o->cname, true, after_simple, o, &o->req);
    break;
  default:
    rc = TSVC_EINVAL;
  }
  if (rc) finish(o, rc, "cannot send the request to the docker daemon");
}

static void on_state(bool reachable, const char *errmsg, void *data);
static void on_event(json_t *ev, void *data);

/* The daemon takes no new client: tell the monitor now (its services go
   unknown, so nothing is restarted), and watch the events stream again
   from scratch, whose reconnection says when the daemon is back. */
static void runtime_down(drt_t *rt, const char *errmsg) {
  if (!rt->told_down) on_state(false, errmsg, rt);
  if (rt->events) {
    tsvc_docker_events_stop(rt->events);
    rt->events = NULL;
    tsvc_docker_events_start(rt->d, LABEL_SERVICE, on_event, on_state, rt, &rt->events);
  }
}

/* Look at the container; a start with pull_policy always pulls first. */
static void container_step(op_t *o) {
  if (o->kind == OP_START && o->svc->pull_policy == TSVC_PULL_ALWAYS && !o->pulled) {
    pull_image(o);
    return;
  }
  int rc = tsvc_docker_container_inspect(o->rt->d, o->cname, after_inspect, o, &o->req);
  if (rc) finish(o, rc, "cannot inspect the container");
}

/* The first request of an operation, once the daemon is known to answer. */
static void proceed(op_t *o) {
  drt_t *rt = o->rt;
  int rc;
  if (o->kind != OP_STOP && o->kind != OP_REMOVE && !rt->network_ok && rt->network_busy) {
    /* Two creations at once would make two networks of one name (the
       daemon's duplicate check is not atomic): wait for the one going on. */
    o->network_wait = true;
    return;
  }
  if (o->kind != OP_STOP && o->kind != OP_REMOVE && !rt->network_ok) {
    rt->network_busy = true;
    const char *net = rt->cfg->docker.network;
    /* Made by this project (when it is missing); shared by name with every
       project that names it: it is how other containers reach ours. */
    json_t *labels = json_pack("{ssss}", LABEL_PROJECT, rt->project, LABEL_CONFIG,
                               rt->config_path);
    rc = tsvc_docker_network_ensure(rt->d, net, labels, after_network, o, &o->req);
    json_decref(labels);
    if (rc) network_done(o, rc, "cannot send the request to the docker daemon");
    return;
  }
  container_step(o);
}

/* ---- the image step of a start: pull_policy, then the port check ---------- */

static void after_image(const tsvc_docker_reply_t *r, void *data);

static void pull_image(op_t *o) {
  char err[512] = "";
  int rc = tsvc_docker_pull(o->rt->d, o->svc->name, o->svc->image, after_pull, o, &o->pull, err,
                            sizeof err);
  if (rc) finish(o, rc, err[0] ? err : "cannot pull the image");
}

static void inspect_image(op_t *o) {
  int rc = tsvc_docker_image_inspect(o->rt->d, o->svc->image, after_image, o, &o->req);
  if (rc) finish(o, rc, "cannot inspect the image");
}

/* Before a container is made: the image is there (pulled when the policy
   says so), then create. */
static void image_step(op_t *o) {
  if (o->svc->pull_policy == TSVC_PULL_ALWAYS && !o->pulled) pull_image(o);
  else inspect_image(o);
}

static void after_pull(int status, const char *msg, void *data) {
  op_t *o = data;
  o->pull = NULL;
  if (status) {
    finish(o, status, msg);
    return;
  }
  o->pulled = true;
  /* pull_policy always pulls before the container is looked at (it may be
     made from an older image); missing pulls when the image is not here. */
  if (!o->container_known) container_step(o);
  else inspect_image(o);
}

/* The image's warning about ports, said where a person reads it: the log
   of `up` (config validate says it too, when the image is local). */
static void check_ports(op_t *o, const json_t *inspect) {
  char msg[512];
  const tsvc_service_conf_t *svc = o->svc;
  if (tsvc_expose_hint(inspect, svc->image, svc->port, svc->host_port, msg, sizeof msg))
    TSVC_LOG(TSVC_LOG_WARN, svc->name, "%s", msg);
}

static void after_recreate_remove(const tsvc_docker_reply_t *r, void *data);

static void after_image(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  const tsvc_service_conf_t *svc = o->svc;
  o->req = NULL;
  if (r->status == TSVC_ENOENT && svc->pull_policy == TSVC_PULL_NEVER) {
    char msg[768];
    /* The daemon's words repeat the name ("no such image: X: No such
       image: X"): ours say it once. */
    snprintf(msg, sizeof msg, "No such image: %s (not present locally, and services.%s."
             "pull_policy is never: pull it with 'tanuki-svc pull %s', or build it)", svc->image,
             svc->name, svc->name);
    finish(o, TSVC_ENOENT, msg);
    return;
  }
  if (r->status == TSVC_ENOENT && !o->pulled) {
    pull_image(o);
    return;
  }
  if (r->status) {
    finish(o, r->status, r->errmsg);
    return;
  }
  const char *id = json_string_value(json_object_get(r->json, "Id"));
  if (o->container_known && o->container_image[0]) {
    /* pull_policy always found a container: recreate it when the image it
       was made from is no longer the one the name points to, as compose
       does (its anonymous volumes are handed on; volumes are never
       removed). */
    if (!id || strcmp(id, o->container_image) == 0) {
      o->container_image[0] = '\0';
      if (o->running) {
        finish(o, 0, NULL); /* adopted as it is */
        return;
      }
      int rc = tsvc_docker_container_start(o->rt->d, o->cname, after_simple, o, &o->req);
      if (rc) finish(o, rc, "cannot start the container");
      return;
    }
    TSVC_LOG(TSVC_LOG_INFO, svc->name, "recreating %s: %s now names image %.19s (it was made "
             "from %.19s)", o->cname, svc->image, id, o->container_image);
    o->container_image[0] = '\0';
    if (o->container) remember_anonymous(o->rt, svc, o->container);
    set_owned(o->rt, svc->name, NULL);
    int rc = tsvc_docker_container_remove(o->rt->d, o->cname, true, after_recreate_remove, o,
                                          &o->req);
    if (rc) finish(o, rc, "cannot remove the container to recreate it");
    return;
  }
  check_ports(o, r->json);
  do_create(o);
}

static void after_recreate_remove(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  o->req = NULL;
  if (r->status && r->status != TSVC_ENOENT) {
    finish(o, r->status, r->errmsg);
    return;
  }
  next_volume(o); /* pulled already: volumes, the ports, then create */
}

/* ---- where the engine runs (remote.h) ---------------------------------------- */

/* The engine's host for people: its name in docker.host, or this machine. */
static const char *engine_host(const drt_t *rt) {
  const tsvc_docker_endpoint_t *ep = tsvc_docker_endpoint(rt->d);
  return ep->transport == TSVC_DOCKER_UNIX ? "this machine" : ep->host;
}

/* Before a (re)start: may its port be published where probes reach it? */
static void publish_step(op_t *o) {
  drt_t *rt = o->rt;
  if ((o->kind == OP_START || o->kind == OP_RESTART) && o->svc->port) {
    char msg[1024];
    int rc = tsvc_publish_check(rt->via, rt->local, engine_host(rt),
                                rt->cfg->docker.publish_address, msg, sizeof msg);
    if (rc < 0) {
      finish(o, TSVC_EINVAL, msg);
      return;
    }
    if (rc > 0 && !rt->publish_warned) {
      rt->publish_warned = true;
      TSVC_LOG(TSVC_LOG_WARN, NULL, "%s", msg);
    }
  }
  proceed(o);
}

/* The route check is done (status 0: rt->local and rt->via are known): o
   and every op that waited for it go on, or fail with its words. */
static void route_done(op_t *o, int status, const char *msg) {
  drt_t *rt = o->rt;
  rt->route_busy = false;
  char copy[1024];
  tsvc_strlcpy(copy, msg ? msg : "", sizeof copy);
  for (op_t *w = o;;) {
    w->route_wait = false;
    if (status) finish(w, status, copy);
    else publish_step(w);
    for (w = rt->ops; w && !w->route_wait; w = w->next) {
    }
    if (!w) break;
  }
}

static void decide_route(drt_t *rt, const char *local_id) {
  const tsvc_docker_endpoint_t *ep = tsvc_docker_endpoint(rt->d);
  rt->local = tsvc_engine_is_local(ep->transport, rt->engine_id, local_id);
  rt->via = tsvc_probe_via_resolve(rt->cfg->docker.probe_via, rt->local);
  rt->route_known = true;
  tsvc_docker_set_local(rt->d, rt->local);
  const char *where = ep->transport == TSVC_DOCKER_UNIX ? "this machine (a unix socket)"
                      : rt->local ? "this machine (its ID is the local engine's)"
                                  : "another machine";
  char how[400];
  if (rt->via == TSVC_VIA_CONTAINER)
    snprintf(how, sizeof how, "probes connect to the containers' addresses");
  else if (rt->via == TSVC_VIA_PUBLISHED)
    snprintf(how, sizeof how, "probes connect to the published ports at %s", rt->pub_host);
  else
    snprintf(how, sizeof how, "probes run inside the containers");
  /* Over a unix socket the engine is not asked who it is (GET /info):
     no name or ID to show then. */
  TSVC_LOG(TSVC_LOG_INFO, NULL, "docker engine%s%s%s%s at %s runs on %s: %s (docker.probe_via: %s)",
           rt->engine_name[0] ? " " : "", rt->engine_name, rt->engine_id[0] ? " ID " : "",
           rt->engine_id, rt->cfg->docker.host, where, how,
           tsvc_probe_via_name(rt->cfg->docker.probe_via));
}

static void after_local_info(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  drt_t *rt = o->rt;
  char local_id[128] = "";
  if (!r->status)
    tsvc_strlcpy(local_id, or_empty(json_string_value(json_object_get(r->json, "ID"))),
                 sizeof local_id);
  tsvc_docker_free(rt->local_d); /* (from its own callback: allowed) */
  rt->local_d = NULL;
  decide_route(rt, local_id);
  route_done(o, 0, NULL);
}

static void after_engine_info(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  drt_t *rt = o->rt;
  o->req = NULL;
  if (r->status) {
    char msg[1024];
    snprintf(msg, sizeof msg, "cannot ask the docker engine at %s who it is (GET /info): %s",
             rt->cfg->docker.host, r->errmsg);
    route_done(o, r->status, msg);
    return;
  }
  tsvc_strlcpy(rt->engine_id, or_empty(json_string_value(json_object_get(r->json, "ID"))),
               sizeof rt->engine_id);
  tsvc_strlcpy(rt->engine_name, or_empty(json_string_value(json_object_get(r->json, "Name"))),
               sizeof rt->engine_name);
  /* The same ID as the engine at this machine's socket: the same engine,
     reached another way (tcp://127.0.0.1, an ssh to here). None answers
     here: another machine. */
  tsvc_docker_opts_t lo = {.host = TSVC_DOCKER_DEFAULT_HOST};
  if (tsvc_docker_new_opts(rt->base.loop, &lo, &rt->local_d, NULL, 0) != 0 ||
      tsvc_docker_request(rt->local_d, "GET", "/info", NULL, after_local_info, o, NULL) != 0) {
    tsvc_docker_free(rt->local_d);
    rt->local_d = NULL;
    decide_route(rt, "");
    route_done(o, 0, NULL);
  }
}

/* Once per engine (and again after it was away): where does it run? */
static void route_step(op_t *o) {
  drt_t *rt = o->rt;
  if (rt->route_known) {
    publish_step(o);
    return;
  }
  if (rt->route_busy) {
    o->route_wait = true;
    return;
  }
  rt->route_busy = true;
  if (tsvc_docker_endpoint(rt->d)->transport == TSVC_DOCKER_UNIX) {
    decide_route(rt, NULL);
    route_done(o, 0, NULL);
    return;
  }
  int rc = tsvc_docker_request(rt->d, "GET", "/info", NULL, after_engine_info, o, &o->req);
  if (rc) route_done(o, rc, "cannot send the request to the docker engine");
}

static void after_ping_op(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  o->req = NULL;
  if (r->status == TSVC_EUNREACH) {
    char msg[1024];
    tsvc_strlcpy(msg, r->errmsg, sizeof msg);
    runtime_down(o->rt, msg);
    finish(o, TSVC_EUNREACH, msg);
    return;
  }
  route_step(o);
}

static int begin(drt_t *rt, op_kind_t kind, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                 void *data) {
  if (kind != OP_STOP && kind != OP_REMOVE && !svc->image) return TSVC_EINVAL;
  op_t *o = op_new(rt, kind, svc, data);
  if (!o) return TSVC_ENOMEM;
  o->done = cb;
  int rc;
  if (kind == OP_STOP || kind == OP_REMOVE) {
    rc = tsvc_docker_container_inspect(rt->d, o->cname, after_inspect, o, &o->req);
  } else {
    /* A (re)start goes to a daemon that takes new clients only. Docker
       stops the containers when it shuts down, after closing its listener
       but still serving the connections we keep alive: the die events come
       in, and a restart sent then is refused in odd ways or leaves a
       containerd task behind that makes every later start fail. */
    rc = tsvc_docker_ping(rt->d, after_ping_op, o, &o->req);
  }
  if (rc) op_free(o);
  return rc;
}

static int drt_start(tsvc_runtime_t *base, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                     void *data) {
  return begin((drt_t *)base, OP_START, svc, cb, data);
}

static int drt_stop(tsvc_runtime_t *base, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                    void *data) {
  return begin((drt_t *)base, OP_STOP, svc, cb, data);
}

static int drt_restart(tsvc_runtime_t *base, const tsvc_service_conf_t *svc,
                       tsvc_rt_done_cb cb, void *data) {
  return begin((drt_t *)base, OP_RESTART, svc, cb, data);
}

static int drt_remove(tsvc_runtime_t *base, const tsvc_service_conf_t *svc,
                      tsvc_rt_done_cb cb, void *data) {
  return begin((drt_t *)base, OP_REMOVE, svc, cb, data);
}

static void drt_reconfigure(tsvc_runtime_t *base, const tsvc_config_t *cfg) {
  ((drt_t *)base)->cfg = cfg;
}

/* ---- inspect -------------------------------------------------------------- */

static void after_info(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  tsvc_rt_info_t info = {.exit_code = -1};
  int status = r->status;
  if (status == TSVC_ENOENT) {
    status = 0; /* no container: exists = false */
    set_owned(o->rt, o->svc->name, NULL);
  } else if (!status) {
    tsvc_docker_container_info_t ci;
    char why[1400];
    if (owner(o->rt, r->json, o->cname, o->svc->name, why, sizeof why) != OWNER_OURS) {
      /* Another's: nothing of it is reported as ours. */
      o->req = NULL;
      o->inspect(TSVC_EEXIST, why, &info, o->data);
      op_free(o);
      return;
    }
    if (tsvc_docker_container_info(r->json, o->rt->cfg->docker.network, &ci) == 0) {
      set_owned(o->rt, o->svc->name, ci.id);
      info.exists = true;
      info.running = ci.running;
      info.pid = ci.pid;
      info.exit_code = ci.running ? -1 : ci.exit_code;
      tsvc_strlcpy(info.id, ci.id, sizeof info.id);
      tsvc_strlcpy(info.name, ci.name, sizeof info.name);
      if (ci.ip[0]) json_object_set_new(o->rt->addrs, o->svc->name, json_string(ci.ip));
      tsvc_probe_route_t route = {0};
      drt_probe_route(&o->rt->base, o->svc, &route);
      tsvc_strlcpy(info.host, route.host, sizeof info.host);
    } else {
      status = TSVC_ERUNTIME;
    }
  }
  o->req = NULL;
  o->inspect(status, status ? r->errmsg : NULL, &info, o->data);
  op_free(o);
}

static int drt_inspect(tsvc_runtime_t *base, const tsvc_service_conf_t *svc,
                       tsvc_rt_inspect_cb cb, void *data) {
  drt_t *rt = (drt_t *)base;
  op_t *o = op_new(rt, OP_INSPECT, svc, data);
  if (!o) return TSVC_ENOMEM;
  o->inspect = cb;
  int rc = tsvc_docker_container_inspect(rt->d, o->cname, after_info, o, &o->req);
  if (rc) op_free(o);
  return rc;
}

/* ---- exec probe ----------------------------------------------------------- */

static void after_exec(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  tsvc_probe_result_t res = {.exit_code = -1};
  char output[TSVC_PROBE_OUTPUT_LEN + 1];
  res.latency_us = (int64_t)((uv_hrtime() - o->t0) / 1000);
  if (r->status == 0 && r->timed_out) {
    res.result = TSVC_RESULT_TIMEOUT;
    res.exit_code = r->exit_code;
    snprintf(res.message, sizeof res.message, "no answer within %lldms; the command was killed",
             (long long)o->svc->healthcheck.timeout);
  } else if (r->status == 0) {
    res.exit_code = r->exit_code;
    res.result = r->exit_code == 0 ? TSVC_RESULT_OK : TSVC_RESULT_EXEC_FAILED;
    snprintf(res.message, sizeof res.message, "exit code %d", r->exit_code);
  } else if (r->status == TSVC_EBUSY || r->status == TSVC_ENOENT) {
    /* 409 "container ... is not running", 404 "No such container" */
    res.result = TSVC_RESULT_NOT_RUNNING;
    snprintf(res.message, sizeof res.message, "%s", r->errmsg);
  } else if (r->status == TSVC_ETIMEDOUT) {
    res.result = TSVC_RESULT_TIMEOUT;
    snprintf(res.message, sizeof res.message, "%s", r->errmsg);
  } else {
    res.result = TSVC_RESULT_RUNTIME_ERROR;
    snprintf(res.message, sizeof res.message, "exec: %s", r->errmsg);
  }
  /* One printable line for the message; the output goes to the history. */
  for (char *p = res.message; *p; p++)
    if ((unsigned char)*p < ' ') *p = ' ';
  if (r->data && r->len) {
    size_t n = r->len < TSVC_PROBE_OUTPUT_LEN ? r->len : TSVC_PROBE_OUTPUT_LEN;
    memcpy(output, r->data + (r->len - n), n);
    output[n] = '\0';
    res.output = output;
  }
  o->req = NULL;
  tsvc_probe_cb cb = o->probe;
  void *cbdata = o->data;
  op_free(o);
  cb(&res, cbdata);
}

/* The exec probe's answer when it cannot run: result with msg. */
static void exec_fail(op_t *o, tsvc_result_t result, const char *msg) {
  tsvc_probe_result_t res = {.result = result, .exit_code = -1};
  res.latency_us = (int64_t)((uv_hrtime() - o->t0) / 1000);
  /* (A long message is cut to fit; tsvc_strlcpy, as gcc -O3 warns about a
     "%s" snprintf that may truncate.) */
  tsvc_strlcpy(res.message, msg, sizeof res.message);
  o->req = NULL;
  tsvc_probe_cb cb = o->probe;
  void *cbdata = o->data;
  op_free(o);
  cb(&res, cbdata);
}

/* Run the command in the container of ours with this id. */
static int exec_in(op_t *o, const char *id) {
  return tsvc_docker_exec_run(o->rt->d, id, (const char *const *)o->argv, o->timeout_ms,
                              after_exec, o, &o->req);
}

/* No container of ours known yet for the service: look at the one of our
   name first; another's is never entered. */
static void after_exec_inspect(const tsvc_docker_reply_t *r, void *data) {
  op_t *o = data;
  o->req = NULL;
  if (r->status == TSVC_ENOENT || r->status == TSVC_EBUSY) {
    exec_fail(o, TSVC_RESULT_NOT_RUNNING, r->errmsg);
    return;
  }
  if (r->status) {
    char msg[512];
    snprintf(msg, sizeof msg, "exec: %s", r->errmsg);
    exec_fail(o, TSVC_RESULT_RUNTIME_ERROR, msg);
    return;
  }
  char why[1400];
  if (owner(o->rt, r->json, o->cname, o->svc->name, why, sizeof why) != OWNER_OURS) {
    exec_fail(o, TSVC_RESULT_RUNTIME_ERROR, why);
    return;
  }
  const char *id = json_string_value(json_object_get(r->json, "Id"));
  set_owned(o->rt, o->svc->name, id);
  int rc = id ? exec_in(o, id) : TSVC_EINVAL;
  if (rc) exec_fail(o, TSVC_RESULT_RUNTIME_ERROR, tsvc_strerror(rc));
}

/* A NULL-terminated deep copy of the probe's command (the shell form as
   /bin/sh -c); NULL when out of memory. */
static char **exec_argv(const tsvc_probe_spec_t *spec) {
  size_t n = 0;
  if (spec->shell) n = 3;
  else if (spec->argc) n = spec->argc;
  else
    while (spec->argv[n]) n++;
  char **v = calloc(n + 1, sizeof *v);
  if (!v) return NULL;
  static const char *const sh[] = {"/bin/sh", "-c"};
  for (size_t i = 0; i < n; i++) {
    const char *a = !spec->shell ? spec->argv[i] : i < 2 ? sh[i] : spec->argv[0];
    if (!(v[i] = strdup(a))) {
      for (size_t k = 0; k < i; k++) free(v[k]);
      free(v);
      return NULL;
    }
  }
  return v;
}

/* A native probe as the command that checks the same inside the container
   (export.h: pg_isready, redis-cli ping | grep PONG, ...), for
   docker.probe_via: exec. NULL when it has none or out of memory. */
static char **native_argv(const tsvc_service_conf_t *svc) {
  bool oom = false;
  json_t *test = export_health_test(svc, &oom);
  size_t n = json_array_size(test);
  char **v = n >= 2 ? calloc(n + 2, sizeof *v) : NULL;
  const char *form = json_string_value(json_array_get(test, 0));
  size_t k = 0;
  bool ok = v && form;
  if (ok && strcmp(form, "CMD-SHELL") == 0) {
    ok = (v[k++] = strdup("/bin/sh")) && (v[k++] = strdup("-c")) &&
         (v[k++] = strdup(json_string_value(json_array_get(test, 1))));
  } else {
    for (size_t i = 1; ok && i < n; i++) ok = (v[k++] = strdup(json_string_value(json_array_get(test, i)))) != NULL;
  }
  json_decref(test);
  if (!ok) {
    for (size_t i = 0; v && i < k; i++) free(v[i]);
    free(v);
    return NULL;
  }
  return v;
}

static int drt_exec(tsvc_runtime_t *base, const tsvc_service_conf_t *svc,
                    const tsvc_probe_spec_t *spec, tsvc_probe_cb cb, void *data, void **opp) {
  drt_t *rt = (drt_t *)base;
  bool native = spec->kind != TSVC_PROBE_EXEC;
  if (!native && (!spec->argv || !spec->argv[0])) return TSVC_EINVAL;
  op_t *o = op_new(rt, OP_EXEC, svc, data);
  if (!o) return TSVC_ENOMEM;
  o->probe = cb;
  o->timeout_ms = (int)spec->timeout;
  o->argv = native ? native_argv(svc) : exec_argv(spec);
  /* Into the container found to be ours, by id: a container of our name
     made since by someone else is never entered (a 404 says ours is gone). */
  const char *id = json_string_value(json_object_get(rt->owned, svc->name));
  int rc;
  if (!o->argv) rc = TSVC_ENOMEM;
  else if (id) rc = exec_in(o, id);
  else rc = tsvc_docker_container_inspect(rt->d, o->cname, after_exec_inspect, o, &o->req);
  if (rc) {
    op_free(o);
    return rc;
  }
  if (opp) *opp = o;
  return 0;
}

static void drt_exec_cancel(tsvc_runtime_t *base, void *op) {
  (void)base;
  op_t *o = op;
  if (!o) return;
  /* The exec has its own timeout, after which the daemon-side process is
     killed; cancelling only drops our interest in it. */
  tsvc_docker_cancel(o->req);
  op_free(o);
}

/* ---- events --------------------------------------------------------------- */

static void on_event(json_t *ev, void *data) {
  drt_t *rt = data;
  if (!rt->event_cb) return;
  const char *action = json_string_value(json_object_get(ev, "Action"));
  if (!action) action = json_string_value(json_object_get(ev, "status"));
  json_t *attrs = json_object_get(json_object_get(ev, "Actor"), "Attributes");
  const char *service = json_string_value(json_object_get(attrs, LABEL_SERVICE));
  const char *name = json_string_value(json_object_get(attrs, "name"));
  if (!action || !service || !name) return;
  /* Another project's container of our name (events carry the labels). */
  if (!our_project(rt, json_string_value(json_object_get(attrs, LABEL_PROJECT)))) return;
  /* Only our project's containers: the name is ours too. */
  const tsvc_service_conf_t *svc = tsvc_config_service(rt->cfg, service);
  if (!svc) return;
  char want[256];
  snprintf(want, sizeof want, "%s%s", rt->cfg->docker.container_prefix, service);
  if (strcmp(name, want) != 0) return;
  char msg[160];
  if (strcmp(action, "start") == 0) {
    rt->event_cb(TSVC_RT_EV_STARTED, service, "container started", rt->event_data);
  } else if (strcmp(action, "die") == 0) {
    const char *code = json_string_value(json_object_get(attrs, "exitCode"));
    snprintf(msg, sizeof msg, "container died (exit code %s)", code ? code : "?");
    rt->event_cb(TSVC_RT_EV_DIED, service, msg, rt->event_data);
  } else if (strcmp(action, "oom") == 0) {
    rt->event_cb(TSVC_RT_EV_DIED, service, "container ran out of memory (oom)", rt->event_data);
  }
}

static void on_state(bool reachable, const char *errmsg, void *data) {
  drt_t *rt = data;
  rt->reachable = reachable;
  if (!rt->event_cb) return;
  if (!reachable) {
    char msg[1100];
    snprintf(msg, sizeof msg, "docker daemon unreachable: %s", errmsg);
    rt->told_down = true;
    rt->event_cb(TSVC_RT_EV_DOWN, NULL, msg, rt->event_data);
  } else if (rt->told_down) {
    rt->told_down = false;
    rt->network_ok = false; /* a new daemon may have lost it */
    rt->route_known = false; /* ... or be another engine */
    rt->event_cb(TSVC_RT_EV_UP, NULL, "docker daemon reachable again", rt->event_data);
  }
}

static int drt_watch(tsvc_runtime_t *base, tsvc_rt_event_cb cb, void *data) {
  drt_t *rt = (drt_t *)base;
  rt->event_cb = cb;
  rt->event_data = data;
  if (rt->events) return 0;
  return tsvc_docker_events_start(rt->d, LABEL_SERVICE, on_event, on_state, rt, &rt->events);
}

static void drt_probe_host(tsvc_runtime_t *base, const tsvc_service_conf_t *svc, char *buf,
                           size_t len) {
  drt_t *rt = (drt_t *)base;
  /* Unknown until an inspection gives the container's address. */
  tsvc_strlcpy(buf, or_empty(json_string_value(json_object_get(rt->addrs, svc->name))), len);
}

/* Where probes go: as docker.probe_via says, auto decided by where the
   engine runs (before the first operation found out: the container). */
static void drt_probe_route(tsvc_runtime_t *base, const tsvc_service_conf_t *svc,
                            tsvc_probe_route_t *out) {
  drt_t *rt = (drt_t *)base;
  if (svc->external) {
    /* Not a container of ours: where it runs is the config's to say
       (healthcheck.address); else this machine, as always. */
    tsvc_strlcpy(out->via, "host", sizeof out->via);
    return;
  }
  tsvc_probe_via_t via = rt->route_known || rt->via != TSVC_VIA_AUTO
                             ? rt->via
                             : tsvc_probe_via_resolve(rt->cfg->docker.probe_via, true);
  tsvc_strlcpy(out->via, tsvc_probe_via_name(via), sizeof out->via);
  if (via == TSVC_VIA_EXEC) {
    out->exec = true;
    return;
  }
  if (via == TSVC_VIA_CONTAINER) drt_probe_host(base, svc, out->host, sizeof out->host);
  if (via == TSVC_VIA_PUBLISHED || (!out->host[0] && svc->host_port)) {
    /* (Before an inspection has found the container's address, its
       published port is where it is known to be reached.) */
    tsvc_strlcpy(out->via, tsvc_probe_via_name(TSVC_VIA_PUBLISHED), sizeof out->via);
    tsvc_strlcpy(out->host, rt->pub_host, sizeof out->host);
    out->port = svc->host_port;
  }
}

/* Answers the operations still in flight when the runtime is freed, from
   the loop (runtime.h). Allocated with the runtime, so that freeing it
   needs no memory. */
typedef struct closer_s {
  uv_timer_t timer;
  op_t *ops;
} closer_t;

static void closer_closed(uv_handle_t *h) { free(h->data); }

static void answer_closed(uv_timer_t *t) {
  closer_t *k = t->data;
  static const char closed[] = "the runtime was closed";
  while (k->ops) {
    op_t *o = k->ops;
    k->ops = o->next;
    if (o->done) o->done(TSVC_ECANCELED, closed, o->data);
    else if (o->inspect)
      o->inspect(TSVC_ECANCELED, closed, &(tsvc_rt_info_t){.exit_code = -1}, o->data);
    for (char **a = o->argv; a && *a; a++) free(*a);
    free(o->argv);
    free(o);
  }
  uv_close((uv_handle_t *)&k->timer, closer_closed);
}

static void drt_free(tsvc_runtime_t *base) {
  drt_t *rt = (drt_t *)base;
  /* Pulls hold requests of the client: they go first. */
  for (op_t *o = rt->ops; o; o = o->next) {
    tsvc_docker_pull_cancel(o->pull);
    o->pull = NULL;
  }
  /* Freeing the client cancels every request: no callback comes any more.
     What we still owe an answer is told from the loop. */
  tsvc_docker_free(rt->d);
  rt->event_cb = NULL;
  tsvc_docker_free(rt->local_d);
  closer_t *k = rt->closer;
  k->ops = rt->ops;
  rt->ops = NULL;
  uv_timer_init(base->loop, &k->timer);
  k->timer.data = k;
  uv_timer_start(&k->timer, answer_closed, 0, 0);
  json_decref(rt->inherit);
  json_decref(rt->owned);
  json_decref(rt->addrs);
  free(rt->project);
  free(rt->config_path);
  free(rt->legacy);
  free(rt);
}

static const tsvc_runtime_ops_t docker_ops = {
    .name = "docker",
    .maps_ports = true,
    .start = drt_start,
    .stop = drt_stop,
    .restart = drt_restart,
    .inspect = drt_inspect,
    .exec = drt_exec,
    .exec_cancel = drt_exec_cancel,
    .watch = drt_watch,
    .probe_host = drt_probe_host,
    .probe_route = drt_probe_route,
    .free = drt_free,
    .remove = drt_remove,
    .reconfigure = drt_reconfigure,
};

int tsvc_docker_runtime_new(uv_loop_t *loop, const tsvc_config_t *cfg, const char *config_path,
                            tsvc_runtime_t **out, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!config_path || config_path[0] != '/') {
    if (err && errlen) snprintf(err, errlen, "the config's absolute path is needed (have '%s')",
                                config_path ? config_path : "");
    return TSVC_EINVAL;
  }
  drt_t *rt = calloc(1, sizeof *rt);
  if (!rt) return TSVC_ENOMEM;
  rt->base.ops = &docker_ops;
  rt->base.loop = loop;
  rt->cfg = cfg;
  rt->reachable = true;
  char id[TSVC_PROJECT_ID_MAX];
  int rc = tsvc_project_id(config_path, id, sizeof id);
  const char *slash = strrchr(config_path, '/');
  rt->project = rc ? NULL : strdup(id);
  rt->config_path = strdup(config_path);
  /* The directory as the previous release wrote it ("/" for /x.yaml). */
  rt->legacy = slash == config_path ? strdup("/")
                                    : tsvc_strndup(config_path, (size_t)(slash - config_path));
  rt->inherit = json_object();
  rt->owned = json_object();
  rt->addrs = json_object();
  rt->via = cfg->docker.probe_via;
  rt->closer = calloc(1, sizeof *rt->closer);
  if (!rc && (!rt->project || !rt->config_path || !rt->legacy || !rt->inherit || !rt->owned ||
              !rt->addrs || !rt->closer))
    rc = TSVC_ENOMEM;
  tsvc_docker_opts_t dopts;
  tsvc_docker_opts_from_config(cfg, &dopts);
  if (!rc) rc = tsvc_docker_new_opts(loop, &dopts, &rt->d, err, errlen);
  if (!rc)
    tsvc_published_host(tsvc_docker_endpoint(rt->d), cfg->docker.publish_address, rt->pub_host,
                        sizeof rt->pub_host);
  if (rc) {
    json_decref(rt->addrs);
    free(rt->closer);
    json_decref(rt->inherit);
    json_decref(rt->owned);
    free(rt->project);
    free(rt->config_path);
    free(rt->legacy);
    free(rt);
    return rc;
  }
  *out = &rt->base;
  return 0;
}

/* ---- is there a daemon? ----------------------------------------------------- */

typedef struct {
  tsvc_docker_t *d;
  void (*cb)(int, const char *, void *);
  void *data;
} ping_t;

static void after_ping(const tsvc_docker_reply_t *r, void *data) {
  ping_t *p = data;
  int status = r->status ? TSVC_EUNREACH : 0;
  p->cb(status, r->errmsg, p->data);
  tsvc_docker_free(p->d);
  free(p);
}

int tsvc_docker_probe_engine(uv_loop_t *loop, const tsvc_config_t *cfg,
                             void (*cb)(int status, const char *msg, void *data), void *data,
                             char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  ping_t *p = calloc(1, sizeof *p);
  if (!p) return TSVC_ENOMEM;
  tsvc_docker_opts_t o;
  tsvc_docker_opts_from_config(cfg, &o);
  int rc = tsvc_docker_new_opts(loop, &o, &p->d, err, errlen);
  if (!rc) rc = tsvc_docker_ping(p->d, after_ping, p, NULL);
  if (rc) {
    if (p->d) tsvc_docker_free(p->d);
    free(p);
    return rc;
  }
  p->cb = cb;
  p->data = data;
  return 0;
}
