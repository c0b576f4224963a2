/*
 * ops.c: the Engine API operations of docker.h, each one or a few
 * exchanges (client.c) chained by step functions.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docker/internal.h"

#define EXEC_KILL_GRACE_MS 5000 /* a killed exec must end within this */
#define EXEC_INSPECT_TRIES 20   /* exec inspect still says running: retry */
#define EXEC_INSPECT_RETRY_MS 50
/* A timed-out exec the daemon has not started yet (a loaded daemon may
   take seconds to: runc spawns several processes) is looked at again this
   often until it runs (then it is killed, and has EXEC_KILL_GRACE_MS to
   end) or has ended, for as long as any request to the daemon may take
   (TSVC_DOCKER_TIMEOUT_MS): given up earlier, it would run on unkilled. */
#define EXEC_KILL_RETRY_MS 50

/* ---- shared steps -------------------------------------------------------- */

/* End with the body as JSON (or no JSON for an empty body). */
static void step_json(tsvc_docker_req_t *r, int status, const char *errmsg) {
  if (status) {
    tsvc__docker_fail(r, status, errmsg);
    return;
  }
  json_t *j = tsvc__docker_body_json(r);
  tsvc_docker_reply_t rep = {.json = j, .exit_code = -1};
  tsvc__docker_done(r, &rep);
  json_decref(j);
}

/* End with the demultiplexed output. */
static void step_output(tsvc_docker_req_t *r, int status, const char *errmsg) {
  if (status) {
    tsvc__docker_fail(r, status, errmsg);
    return;
  }
  tsvc_docker_reply_t rep = {.data = r->tail.buf ? r->tail.buf : "",
                             .len = r->tail.len,
                             .truncated = tsvc_tail_truncated(&r->tail),
                             .exit_code = -1};
  tsvc__docker_done(r, &rep);
}

/* One request, one exchange: path built from fmt with escaped arguments. */
static int simple(tsvc_docker_t *d, const char *method, char *path, const json_t *body,
                  tsvc__step_fn step, tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp,
                  tsvc_docker_req_t **rout) {
  if (!path) return TSVC_ENOMEM;
  tsvc_docker_req_t *r = tsvc__docker_req_new(d, cb, data);
  if (!r) {
    free(path);
    return TSVC_ENOMEM;
  }
  if (rout) *rout = r;
  int rc = tsvc__docker_launch(r, method, path, body, step, reqp);
  free(path);
  return rc;
}

/* "/containers/%s/start" with id escaped. NULL on ENOMEM. */
static char *path1(const char *fmt, const char *id) {
  char *e = tsvc__docker_esc(id);
  if (!e) return NULL;
  char *p = tsvc_asprintf(fmt, e);
  free(e);
  return p;
}

static bool bad(const tsvc_docker_t *d, const void *cb, const char *s) {
  return !d || !cb || !s || !*s;
}

int tsvc_docker_request(tsvc_docker_t *d, const char *method, const char *path,
                        const json_t *body, tsvc_docker_cb cb, void *data,
                        tsvc_docker_req_t **reqp) {
  if (bad(d, cb, method) || !path || path[0] != '/') return TSVC_EINVAL;
  return simple(d, method, tsvc_strdup(path), body, step_json, cb, data, reqp, NULL);
}

/* ---- networks --------------------------------------------------------------- */

int tsvc_docker_network_inspect(tsvc_docker_t *d, const char *name, tsvc_docker_cb cb,
                                void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, name)) return TSVC_EINVAL;
  return simple(d, "GET", path1("/networks/%s", name), NULL, step_json, cb, data, reqp, NULL);
}

int tsvc_docker_network_remove(tsvc_docker_t *d, const char *name, tsvc_docker_cb cb,
                               void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, name)) return TSVC_EINVAL;
  return simple(d, "DELETE", path1("/networks/%s", name), NULL, step_json, cb, data, reqp, NULL);
}

static void ensure_created(tsvc_docker_req_t *r, int status, const char *errmsg);

static void ensure_inspected(tsvc_docker_req_t *r, int status, const char *errmsg) {
  if (status != TSVC_ENOENT || !r->spec) {
    step_json(r, status, errmsg);
    return;
  }
  /* Missing: create it, then inspect it again (spec is dropped so that a
   * second "missing" ends the request). */
  json_t *spec = r->spec;
  r->spec = NULL;
  int rc = tsvc__docker_xfer(r, "POST", "/networks/create", spec, ensure_created);
  json_decref(spec);
  if (rc) tsvc__docker_fail(r, rc, "cannot send the network creation");
}

static void ensure_created(tsvc_docker_req_t *r, int status, const char *errmsg) {
  /* EEXIST: someone made it meanwhile, which is as good. */
  if (status && status != TSVC_EEXIST) {
    tsvc__docker_fail(r, status, errmsg);
    return;
  }
  char *p = path1("/networks/%s", r->id);
  int rc = p ? tsvc__docker_xfer(r, "GET", p, NULL, step_json) : TSVC_ENOMEM;
  free(p);
  if (rc) tsvc__docker_fail(r, rc, "cannot inspect the new network");
}

int tsvc_docker_network_ensure(tsvc_docker_t *d, const char *name, const json_t *labels,
                               tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, name) || (labels && !json_is_object(labels))) return TSVC_EINVAL;
  json_t *l = labels ? json_deep_copy(labels) : json_object();
  /* "o" takes l's reference, also on failure. */
  json_t *spec = json_pack("{s:s, s:s, s:b, s:o}", "Name", name, "Driver", "bridge",
                           "CheckDuplicate", 1, "Labels", l);
  char *id = tsvc_strdup(name), *p = path1("/networks/%s", name);
  tsvc_docker_req_t *r = spec && id && p ? tsvc__docker_req_new(d, cb, data) : NULL;
  if (!r) {
    json_decref(spec);
    free(id);
    free(p);
    return TSVC_ENOMEM;
  }
  r->spec = spec;
  r->id = id;
  int rc = tsvc__docker_launch(r, "GET", p, NULL, ensure_inspected, reqp);
  free(p);
  return rc;
}

/* ---- containers -------------------------------------------------------------- */

int tsvc_docker_container_list(tsvc_docker_t *d, const char *label, bool all, tsvc_docker_cb cb,
                               void *data, tsvc_docker_req_t **reqp) {
  if (!d || !cb) return TSVC_EINVAL;
  char *path;
  if (label) {
    json_t *f = json_pack("{s:[s]}", "label", label);
    char *fs = f ? json_dumps(f, JSON_COMPACT) : NULL;
    char *fe = fs ? tsvc__docker_esc(fs) : NULL;
    path = fe ? tsvc_asprintf("/containers/json?all=%d&filters=%s", all ? 1 : 0, fe) : NULL;
    json_decref(f);
    free(fs);
    free(fe);
  } else {
    path = tsvc_asprintf("/containers/json?all=%d", all ? 1 : 0);
  }
  return simple(d, "GET", path, NULL, step_json, cb, data, reqp, NULL);
}

/* A NULL-terminated list as a JSON array; NULL list -> NULL (absent). */
static int add_list(json_t *o, const char *key, const char *const *list) {
  if (!list) return 0;
  json_t *a = json_array();
  if (!a) return TSVC_ENOMEM;
  for (size_t i = 0; list[i]; i++) {
    json_t *s = json_string(list[i]);
    if (!s || json_array_append_new(a, s)) {
      json_decref(a);
      return s ? TSVC_ENOMEM : TSVC_EINVAL; /* json_string: NULL for bad UTF-8 */
    }
  }
  return json_object_set_new(o, key, a) ? TSVC_ENOMEM : 0;
}

/* The body of POST /containers/create. jansson's *_new setters take the
 * value's reference even when they fail, so errors only free the root. */
static json_t *create_body(const tsvc_docker_container_spec_t *s, int *rc) {
  json_t *b = json_object(), *hc = json_object();
  if (!b || json_object_set_new(b, "HostConfig", hc)) goto nomem;
  if (json_object_set_new(b, "Image", json_string(s->image))) goto nomem;
  if ((*rc = add_list(b, "Env", s->env)) || (*rc = add_list(b, "Cmd", s->cmd)) ||
      (*rc = add_list(hc, "Binds", s->volumes)))
    goto err;
  if (s->labels) {
    json_t *l = json_object();
    if (json_object_set_new(b, "Labels", l)) goto nomem;
    for (size_t i = 0; s->labels[i]; i++) {
      const char *eq = strchr(s->labels[i], '=');
      char *k = eq ? tsvc_strndup(s->labels[i], (size_t)(eq - s->labels[i]))
                   : tsvc_strdup(s->labels[i]);
      int fail = !k || json_object_set_new(l, k, json_string(eq ? eq + 1 : ""));
      free(k);
      if (fail) goto nomem;
    }
  }
  if (s->port > 0) {
    char key[32], hp[16];
    snprintf(key, sizeof key, "%d/tcp", s->port);
    snprintf(hp, sizeof hp, "%d", s->host_port > 0 ? s->host_port : s->port);
    if (json_object_set_new(b, "ExposedPorts", json_pack("{s:{}}", key)) ||
        json_object_set_new(hc, "PortBindings",
                            json_pack("{s:[{s:s, s:s}]}", key, "HostIp",
                                      s->host_ip && *s->host_ip ? s->host_ip : "127.0.0.1",
                                      "HostPort", hp)))
      goto nomem;
  }
  if (json_object_set_new(hc, "RestartPolicy", json_pack("{s:s}", "Name", "no"))) goto nomem;
  if (s->network) {
    json_t *ep = json_object();
    if (!ep) goto nomem;
    if ((*rc = add_list(ep, "Aliases", s->aliases))) {
      json_decref(ep);
      goto err;
    }
    /* "o" takes ep's reference, also on failure. */
    if (json_object_set_new(b, "NetworkingConfig",
                            json_pack("{s:{s:o}}", "EndpointsConfig", s->network, ep)) ||
        json_object_set_new(hc, "NetworkMode", json_string(s->network)))
      goto nomem;
  }
  *rc = 0;
  return b;
nomem:
  *rc = TSVC_ENOMEM;
err:
  if (!b) json_decref(hc);
  json_decref(b);
  return NULL;
}

int tsvc_docker_container_create(tsvc_docker_t *d, const tsvc_docker_container_spec_t *spec,
                                 tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp) {
  if (!d || !cb || !spec || !spec->name || !*spec->name || !spec->image || !*spec->image ||
      spec->port < 0 || spec->port > 65535 || spec->host_port < 0 || spec->host_port > 65535)
    return TSVC_EINVAL;
  int rc;
  json_t *body = create_body(spec, &rc);
  if (!body) return rc;
  rc = simple(d, "POST", path1("/containers/create?name=%s", spec->name), body, step_json, cb,
              data, reqp, NULL);
  json_decref(body);
  return rc;
}

int tsvc_docker_container_start(tsvc_docker_t *d, const char *id, tsvc_docker_cb cb, void *data,
                                tsvc_docker_req_t **reqp) {
  if (bad(d, cb, id)) return TSVC_EINVAL;
  return simple(d, "POST", path1("/containers/%s/start", id), NULL, step_json, cb, data, reqp,
                NULL);
}

static int stop_or_restart(tsvc_docker_t *d, const char *what, const char *id, int t,
                           tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, id) || t < 0 || t > 24 * 3600) return TSVC_EINVAL;
  char *e = tsvc__docker_esc(id);
  char *p = e ? tsvc_asprintf("/containers/%s/%s?t=%d", e, what, t) : NULL;
  free(e);
  tsvc_docker_req_t *r = NULL;
  /* The daemon answers once the container is down: allow t seconds more. */
  int rc = p ? 0 : TSVC_ENOMEM;
  if (!rc) {
    r = tsvc__docker_req_new(d, cb, data);
    if (!r) rc = TSVC_ENOMEM;
  }
  if (!rc) {
    r->timeout_ms = (long)t * 1000 + TSVC_DOCKER_TIMEOUT_MS;
    rc = tsvc__docker_launch(r, "POST", p, NULL, step_json, reqp);
  }
  free(p);
  return rc;
}

int tsvc_docker_container_stop(tsvc_docker_t *d, const char *id, int stop_timeout_s,
                               tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp) {
  return stop_or_restart(d, "stop", id, stop_timeout_s, cb, data, reqp);
}

int tsvc_docker_container_restart(tsvc_docker_t *d, const char *id, int stop_timeout_s,
                                  tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp) {
  return stop_or_restart(d, "restart", id, stop_timeout_s, cb, data, reqp);
}

int tsvc_docker_container_kill(tsvc_docker_t *d, const char *id, const char *signal,
                               tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, id)) return TSVC_EINVAL;
  char *e = tsvc__docker_esc(id), *se = tsvc__docker_esc(signal ? signal : "SIGKILL");
  char *p = e && se ? tsvc_asprintf("/containers/%s/kill?signal=%s", e, se) : NULL;
  free(e);
  free(se);
  return simple(d, "POST", p, NULL, step_json, cb, data, reqp, NULL);
}

int tsvc_docker_container_remove(tsvc_docker_t *d, const char *id, bool force, tsvc_docker_cb cb,
                                 void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, id)) return TSVC_EINVAL;
  char *e = tsvc__docker_esc(id);
  /* v=0: the container's volumes, named or anonymous, stay. */
  char *p = e ? tsvc_asprintf("/containers/%s?v=0&force=%d", e, force ? 1 : 0) : NULL;
  free(e);
  return simple(d, "DELETE", p, NULL, step_json, cb, data, reqp, NULL);
}

int tsvc_docker_container_inspect(tsvc_docker_t *d, const char *id, tsvc_docker_cb cb,
                                  void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, id)) return TSVC_EINVAL;
  return simple(d, "GET", path1("/containers/%s/json", id), NULL, step_json, cb, data, reqp,
                NULL);
}

int tsvc_docker_container_logs(tsvc_docker_t *d, const char *id, int tail, tsvc_docker_cb cb,
                               void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, id)) return TSVC_EINVAL;
  char *e = tsvc__docker_esc(id);
  char *p = NULL;
  if (e && tail >= 0)
    p = tsvc_asprintf("/containers/%s/logs?stdout=1&stderr=1&tail=%d", e, tail);
  else if (e)
    p = tsvc_asprintf("/containers/%s/logs?stdout=1&stderr=1&tail=all", e);
  free(e);
  if (!p) return TSVC_ENOMEM;
  tsvc_docker_req_t *r = tsvc__docker_req_new(d, cb, data);
  if (!r) {
    free(p);
    return TSVC_ENOMEM;
  }
  r->sink = TSVC__SINK_STREAM;
  r->max = TSVC_DOCKER_MAX_LOGS;
  int rc = tsvc__docker_launch(r, "GET", p, NULL, step_output, reqp);
  free(p);
  return rc;
}

int tsvc_docker_image_inspect(tsvc_docker_t *d, const char *image, tsvc_docker_cb cb,
                              void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, image)) return TSVC_EINVAL;
  char *e = tsvc__docker_esc_path(image);
  char *p = e ? tsvc_asprintf("/images/%s/json", e) : NULL;
  free(e);
  return simple(d, "GET", p, NULL, step_json, cb, data, reqp, NULL);
}

static void copy_str(char *dst, size_t n, const json_t *v) {
  const char *s = json_string_value(v);
  tsvc_strlcpy(dst, s ? s : "", n);
}

int tsvc_docker_container_info(const json_t *inspect, const char *network,
                               tsvc_docker_container_info_t *out) {
  memset(out, 0, sizeof *out);
  json_t *state = json_object_get(inspect, "State");
  if (!json_is_object(inspect) || !json_is_object(state)) return TSVC_EINVAL;
  copy_str(out->id, sizeof out->id, json_object_get(inspect, "Id"));
  const char *name = json_string_value(json_object_get(inspect, "Name"));
  if (name && name[0] == '/') name++;
  tsvc_strlcpy(out->name, name ? name : "", sizeof out->name);
  copy_str(out->status, sizeof out->status, json_object_get(state, "Status"));
  out->running = json_is_true(json_object_get(state, "Running"));
  out->oom_killed = json_is_true(json_object_get(state, "OOMKilled"));
  out->pid = (int)json_integer_value(json_object_get(state, "Pid"));
  out->exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
  copy_str(out->error, sizeof out->error, json_object_get(state, "Error"));
  copy_str(out->health, sizeof out->health,
           json_object_get(json_object_get(state, "Health"), "Status"));
  json_t *nets = json_object_get(json_object_get(inspect, "NetworkSettings"), "Networks");
  json_t *net = NULL;
  if (network) {
    net = json_object_get(nets, network);
  } else if (json_is_object(nets)) {
    void *it = json_object_iter(nets);
    net = it ? json_object_iter_value(it) : NULL;
  }
  copy_str(out->ip, sizeof out->ip, json_object_get(net, "IPAddress"));
  return 0;
}

/* ---- exec -------------------------------------------------------------------- */

static json_t *exec_body(const char *const *argv) {
  json_t *b = json_pack("{s:b, s:b, s:b, s:b}", "AttachStdin", 0, "AttachStdout", 1,
                        "AttachStderr", 1, "Tty", 0);
  if (b && add_list(b, "Cmd", argv)) {
    json_decref(b);
    return NULL;
  }
  return b;
}

int tsvc_docker_exec_create(tsvc_docker_t *d, const char *container, const char *const *argv,
                            tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, container) || !argv || !argv[0]) return TSVC_EINVAL;
  json_t *b = exec_body(argv);
  if (!b) return TSVC_ENOMEM;
  int rc = simple(d, "POST", path1("/containers/%s/exec", container), b, step_json, cb, data,
                  reqp, NULL);
  json_decref(b);
  return rc;
}

/* Prepare r to run POST /exec/{id}/start attached. */
static int exec_start_xfer(tsvc_docker_req_t *r, const char *exec_id, tsvc__step_fn step) {
  char *p = path1("/exec/%s/start", exec_id);
  json_t *b = json_pack("{s:b, s:b}", "Detach", 0, "Tty", 0);
  r->sink = TSVC__SINK_STREAM;
  r->max = TSVC_DOCKER_MAX_OUTPUT;
  r->timeout_ms = 0; /* as long as the command runs; exec_run has a timer */
  int rc = p && b ? tsvc__docker_xfer(r, "POST", p, b, step) : TSVC_ENOMEM;
  free(p);
  json_decref(b);
  return rc;
}

int tsvc_docker_exec_start(tsvc_docker_t *d, const char *exec_id, tsvc_docker_cb cb, void *data,
                           tsvc_docker_req_t **reqp) {
  if (bad(d, cb, exec_id)) return TSVC_EINVAL;
  tsvc_docker_req_t *r = tsvc__docker_req_new(d, cb, data);
  if (!r) return TSVC_ENOMEM;
  int rc = exec_start_xfer(r, exec_id, step_output);
  if (rc) {
    tsvc__docker_req_destroy(r);
    return rc;
  }
  if (reqp) *reqp = r;
  return 0;
}

int tsvc_docker_exec_inspect(tsvc_docker_t *d, const char *exec_id, tsvc_docker_cb cb,
                             void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, exec_id)) return TSVC_EINVAL;
  return simple(d, "GET", path1("/exec/%s/json", exec_id), NULL, step_json, cb, data, reqp, NULL);
}

/* Whether host pid belongs to the container: its cgroup path names the
 * container's full id (cgroupfs: /docker/<id>; systemd: docker-<id>.scope). */
static bool pid_in_container(int pid, const char *container_id) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return strlen(container_id) == 64 && strstr(buf, container_id) != NULL;
}

static void kill_inspected(tsvc_docker_req_t *r, int status, const char *errmsg) {
  if (status) {
    tsvc__docker_fail(r, status, errmsg);
    return;
  }
  json_t *j = tsvc__docker_body_json(r);
  bool running = json_is_true(json_object_get(j, "Running"));
  int pid = (int)json_integer_value(json_object_get(j, "Pid"));
  const char *cid = json_string_value(json_object_get(j, "ContainerID"));
  tsvc_docker_reply_t rep = {.exit_code = -1};
  char msg[256];
  if (running && pid > 1) {
    if (!cid || !pid_in_container(pid, cid)) {
      snprintf(msg, sizeof msg,
               "exec'd process %d is not in container %.12s as seen from this host; not killed",
               pid, cid ? cid : "?");
      rep.status = TSVC_ERUNTIME;
      rep.errmsg = msg;
    } else if (kill(pid, SIGKILL) == 0) {
      rep.pid = pid;
    } else if (errno != ESRCH) {
      snprintf(msg, sizeof msg, "kill(%d, SIGKILL): %s", pid, strerror(errno));
      rep.status = TSVC_ERUNTIME;
      rep.errmsg = msg;
    }
  }
  rep.json = j;
  tsvc__docker_done(r, &rep);
  json_decref(j);
}

static int exec_kill_req(tsvc_docker_t *d, const char *exec_id, tsvc_docker_cb cb, void *data,
                         tsvc_docker_req_t **rout) {
  if (!d->local) return TSVC_EINVAL; /* a remote engine's pids are not ours */
  return simple(d, "GET", path1("/exec/%s/json", exec_id), NULL, kill_inspected, cb, data, NULL,
                rout);
}

int tsvc_docker_exec_kill(tsvc_docker_t *d, const char *exec_id, tsvc_docker_cb cb, void *data,
                          tsvc_docker_req_t **reqp) {
  if (bad(d, cb, exec_id)) return TSVC_EINVAL;
  tsvc_docker_req_t *r = NULL;
  int rc = exec_kill_req(d, exec_id, cb, data, &r);
  if (!rc && reqp) *reqp = r;
  return rc;
}

/* exec_run: create -> start (timer: timeout -> kill, guard) -> inspect. */
static void run_started(tsvc_docker_req_t *r, int status, const char *errmsg);
static void run_inspected(tsvc_docker_req_t *r, int status, const char *errmsg);

static void run_guard(tsvc_docker_req_t *r) {
  char msg[160];
  if (r->pid)
    snprintf(msg, sizeof msg, "exec in %s ran past its %d ms timeout and was still running %d ms "
             "after SIGKILL", r->id, r->timeout, EXEC_KILL_GRACE_MS);
  else
    snprintf(msg, sizeof msg, "exec in %s ran past its %d ms timeout and the daemon had not "
             "started it %d ms later", r->id, r->timeout, TSVC_DOCKER_TIMEOUT_MS);
  tsvc__docker_fail(r, TSVC_ETIMEDOUT, msg);
}

/* r's timer: fn in ms, or run_guard at r->guard_at if that comes first
   (fn NULL: only the guard). */
static void arm_guard(tsvc_docker_req_t *r, uint64_t ms, void (*fn)(tsvc_docker_req_t *r)) {
  uint64_t now = uv_now(r->d->loop);
  uint64_t left = r->guard_at > now ? r->guard_at - now : 0;
  int rc = !fn || left <= ms ? tsvc__docker_req_timer(r, left, run_guard)
                             : tsvc__docker_req_timer(r, ms, fn);
  if (rc) tsvc__docker_fail(r, TSVC_ERUNTIME, "cannot start a timer");
}

static void run_kill(tsvc_docker_req_t *r);

static void run_killed(const tsvc_docker_reply_t *rep, void *data) {
  tsvc_docker_req_t *r = data;
  if (rep->status) {
    char msg[512];
    snprintf(msg, sizeof msg, "exec in %s ran past its %d ms timeout and could not be killed: %s",
             r->id, r->timeout, rep->errmsg);
    /* The child is in its callback: r's destroy leaves it to done(). */
    tsvc__docker_fail(r, TSVC_ETIMEDOUT, msg);
    return;
  }
  if (rep->pid) {
    /* Killed: it has EXEC_KILL_GRACE_MS to end from now. */
    r->pid = rep->pid;
    r->guard_at = uv_now(r->d->loop) + EXEC_KILL_GRACE_MS;
    arm_guard(r, 0, NULL);
    return;
  }
  /* Nothing killed. Ended already: its stream ends too (run_started). Not
     started yet (the timeout came first: the daemon is slow to start it):
     look again shortly, else it would run on unkilled. The engine says
     Running from the moment it begins to start the exec, and has a Pid
     only once the process runs (Docker 20.10 answered Running true, Pid 0
     to an inspect between the two every time it was asked, and a loaded
     daemon stays there for seconds): that is "not started yet" too. */
  bool running = json_is_true(json_object_get(rep->json, "Running"));
  json_int_t pid = json_integer_value(json_object_get(rep->json, "Pid"));
  bool ended = json_is_integer(json_object_get(rep->json, "ExitCode"));
  if (!ended && (!running || pid <= 1)) arm_guard(r, EXEC_KILL_RETRY_MS, run_kill);
}

/* Inspect the exec and kill its process (exec_kill_req) under the guard. */
static void run_kill(tsvc_docker_req_t *r) {
  tsvc_docker_req_t *c = NULL;
  int rc = exec_kill_req(r->d, r->id2, run_killed, r, &c);
  if (rc) {
    char msg[320];
    snprintf(msg, sizeof msg, "exec in %.12s ran past its %d ms timeout and cannot be killed%s",
             r->id, r->timeout,
             rc == TSVC_EINVAL ? " from here: the engine runs on another machine (the command "
                                 "may go on there until it ends)" : "");
    tsvc__docker_fail(r, TSVC_ETIMEDOUT, msg);
    return;
  }
  c->parent = r;
  r->child = c;
  arm_guard(r, 0, NULL);
}

static void run_timeout(tsvc_docker_req_t *r) {
  r->timed_out = true;
  /* Until it is found running and killed (run_killed): the daemon's time. */
  r->guard_at = uv_now(r->d->loop) + TSVC_DOCKER_TIMEOUT_MS;
  run_kill(r);
}

static void run_created(tsvc_docker_req_t *r, int status, const char *errmsg) {
  if (status) {
    tsvc__docker_fail(r, status, errmsg);
    return;
  }
  json_t *j = tsvc__docker_body_json(r);
  const char *id = json_string_value(json_object_get(j, "Id"));
  r->id2 = id ? tsvc_strdup(id) : NULL;
  json_decref(j);
  if (!r->id2) {
    tsvc__docker_fail(r, TSVC_ERUNTIME, "exec create: no Id in the daemon's answer");
    return;
  }
  int rc = exec_start_xfer(r, r->id2, run_started);
  if (!rc && r->timeout > 0) rc = tsvc__docker_req_timer(r, (uint64_t)r->timeout, run_timeout);
  if (rc) tsvc__docker_fail(r, rc, "cannot start the exec");
}

static void run_inspect(tsvc_docker_req_t *r) {
  char *p = path1("/exec/%s/json", r->id2);
  r->sink = TSVC__SINK_BODY;
  r->max = TSVC_DOCKER_MAX_BODY;
  r->timeout_ms = TSVC_DOCKER_TIMEOUT_MS;
  int rc = p ? tsvc__docker_xfer(r, "GET", p, NULL, run_inspected) : TSVC_ENOMEM;
  free(p);
  if (rc) tsvc__docker_fail(r, rc, "cannot inspect the exec");
}

static void run_started(tsvc_docker_req_t *r, int status, const char *errmsg) {
  tsvc__docker_req_timer_stop(r);
  if (status) {
    tsvc__docker_fail(r, status, errmsg);
    return;
  }
  run_inspect(r);
}

static void run_inspected(tsvc_docker_req_t *r, int status, const char *errmsg) {
  if (status) {
    tsvc__docker_fail(r, status, errmsg);
    return;
  }
  json_t *j = tsvc__docker_body_json(r);
  json_t *ec = json_object_get(j, "ExitCode");
  bool running = json_is_true(json_object_get(j, "Running"));
  int pid = (int)json_integer_value(json_object_get(j, "Pid"));
  if ((running || !json_is_integer(ec)) && ++r->tries < EXEC_INSPECT_TRIES) {
    /* The output ended a moment before the daemon noted the exit. */
    json_decref(j);
    if (tsvc__docker_req_timer(r, EXEC_INSPECT_RETRY_MS, run_inspect))
      tsvc__docker_fail(r, TSVC_ERUNTIME, "cannot start a timer");
    return;
  }
  tsvc_docker_reply_t rep = {.json = j,
                             .data = r->tail.buf ? r->tail.buf : "",
                             .len = r->tail.len,
                             .truncated = tsvc_tail_truncated(&r->tail),
                             .exit_code = json_is_integer(ec) ? (int)json_integer_value(ec) : -1,
                             .pid = pid ? pid : r->pid,
                             .timed_out = r->timed_out};
  tsvc__docker_done(r, &rep);
  json_decref(j);
}

int tsvc_docker_exec_run(tsvc_docker_t *d, const char *container, const char *const *argv,
                         int timeout_ms, tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp) {
  if (bad(d, cb, container) || !argv || !argv[0] || timeout_ms < 0) return TSVC_EINVAL;
  json_t *b = exec_body(argv);
  char *p = path1("/containers/%s/exec", container);
  char *id = tsvc_strdup(container);
  tsvc_docker_req_t *r = b && p && id ? tsvc__docker_req_new(d, cb, data) : NULL;
  if (!r) {
    json_decref(b);
    free(p);
    free(id);
    return TSVC_ENOMEM;
  }
  r->id = id;
  r->timeout = timeout_ms;
  int rc = tsvc__docker_launch(r, "POST", p, b, run_created, reqp);
  json_decref(b);
  free(p);
  return rc;
}
