/* process.c: see process.h; the files of this runtime: process_int.h. */
#include "runtime/process.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/process_int.h"

const char *tsvc__proc_env(const tsvc_service_conf_t *svc, const char *key) {
  for (size_t i = 0; i < svc->env_len; i++)
    if (strcmp(svc->env[i].key, key) == 0) return svc->env[i].value;
  return NULL;
}

static bool has_word(const char *s, const char *word, const char *not_word) {
  return s && strstr(s, word) && !(not_word && strstr(s, not_word));
}

kind_t tsvc__proc_kind(const tsvc_service_conf_t *svc) {
  if (svc->process.command.n > 0) return KIND_COMMAND;
  /* "postgrest" (PostgREST) is an HTTP server, not postgres. */
  if (has_word(svc->name, "postgres", "postgrest") ||
      has_word(svc->image, "postgres", "postgrest"))
    return KIND_POSTGRES;
  if (has_word(svc->name, "redis", NULL) || has_word(svc->image, "redis", NULL))
    return KIND_REDIS;
  return KIND_COMMAND;
}

int tsvc__proc_port(const tsvc_service_conf_t *svc, kind_t k) {
  /* No container here: the service listens where the host's view points
     (port: "H:C" -> H). */
  if (svc->host_port > 0) return svc->host_port;
  if (svc->port > 0) return svc->port;
  return k == KIND_POSTGRES ? 5432 : k == KIND_REDIS ? 6379 : 0;
}

/* The data directory of e's service, and its parent created (each missing
   part mode 0755, so that the user a service runs as can pass); *old: it
   is an older version's (may be NULL). 0, or -1 after tsvc__proc_fail. */
int tsvc__proc_data_dir(entry_t *e, char *dir, size_t len, bool *old_out) {
  prt_t *rt = e->rt;
  bool old = false;
  if (tsvc_process_data_dir(&rt->lay, e->svc, dir, len, &old) != 0) {
    tsvc__proc_fail(e, "the data directory of %s is too long a path", e->name);
    return -1;
  }
  if (old_out) *old_out = old;
  if (old)
    tsvc__plog_note(&e->log, "using %s, made by an older version (data beside the config)", dir);
  char parent[PATH_MAX];
  tsvc_strlcpy(parent, dir, sizeof parent);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = '\0';
    if (tsvc__proc_mkdir_p(parent, 0755) != 0) {
      tsvc__proc_fail(e, "cannot create %s: %s", parent, strerror(errno));
      return -1;
    }
  }
  return 0;
}

/* ---- handles and lifetime ------------------------------------------------ */

static void rt_release(prt_t *rt);

void tsvc__proc_handle_done(prt_t *rt) {
  rt->handles--;
  if (rt->freeing && rt->handles == 0) rt_release(rt);
}

static void timer_closed(uv_handle_t *h) { tsvc__proc_handle_done(h->data); }

/* ---- the runtime's operations -------------------------------------------- */

/* By name in O(1), as the monitor's lookup: every operation and
   inspection names its service, and a runtime may run thousands. */
static entry_t *entry_find(const prt_t *rt, const char *name) {
  return tsvc_index_find(&rt->index, name);
}

/* The entry of name, made when missing; NULL when out of memory. */
static entry_t *entry_get(prt_t *rt, const char *name) {
  entry_t *e = entry_find(rt, name);
  if (e) return e;
  /* Entries are never removed: they live until the runtime. */
  if (tsvc_index_reserve(&rt->index, rt->index.n + 1) != 0) return NULL;
  e = calloc(1, sizeof *e);
  if (!e || !(e->name = strdup(name))) {
    free(e);
    return NULL;
  }
  e->rt = rt;
  tsvc__plog_init(&e->log, rt->logs_dir, e->name, rt->log_max);
  e->exit_code = -1;
  e->stop_sig = SIGTERM;
  uv_timer_init(rt->base.loop, &e->timer);
  uv_unref((uv_handle_t *)&e->timer);
  e->timer.data = e;
  rt->handles++;
  e->next = rt->entries;
  rt->entries = e;
  tsvc_index_put(&rt->index, e); /* room reserved, name new: cannot fail */
  return e;
}

static int op_begin(tsvc_runtime_t *base, const tsvc_service_conf_t *svc, op_kind_t op,
                    tsvc_rt_done_cb cb, void *data) {
  prt_t *rt = (prt_t *)base;
  if (!svc || !svc->name || !cb) return TSVC_EINVAL;
  if (rt->freeing) return TSVC_ECANCELED;
  entry_t *e = entry_get(rt, svc->name);
  if (!e) return TSVC_ENOMEM;
  if (e->op != OP_NONE) return TSVC_EBUSY;
  e->op = op;
  e->phase = PH_BEGIN;
  e->svc = svc;
  e->cb = cb;
  e->cbdata = data;
  e->stop_timeout = svc->restart.stop_timeout;
  /* SIGTERM is postgres's "smart" shutdown, which waits for every client to
     disconnect; SIGINT is its fast one (docker's postgres image stops with
     SIGINT too). */
  e->stop_sig = tsvc__proc_kind(svc) == KIND_POSTGRES ? SIGINT : SIGTERM;
  /* Never call back from inside the call: go on from the loop. */
  uv_timer_start(&e->timer, tsvc__proc_timer_cb, 0, 0);
  return 0;
}

static int rt_start(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                    void *data) {
  return op_begin(rt, svc, OP_START, cb, data);
}

static int rt_stop(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                   void *data) {
  return op_begin(rt, svc, OP_STOP, cb, data);
}

static int rt_restart(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                      void *data) {
  return op_begin(rt, svc, OP_RESTART, cb, data);
}

static void kick_cb(uv_timer_t *t) {
  prt_t *rt = t->data;
  /* Answer in the order asked; answers may ask again (a new list). */
  inspect_t *list = NULL;
  while (rt->inspects) {
    inspect_t *q = rt->inspects;
    rt->inspects = q->next;
    q->next = list;
    list = q;
  }
  while (list) {
    inspect_t *q = list;
    list = q->next;
    tsvc_rt_info_t info = {.exit_code = -1};
    entry_t *e = entry_find(rt, q->svc->name);
    if (e) {
      info.exists = e->ever;
      info.running = e->server != NULL;
      info.pid = e->server ? e->server->pid : 0;
      info.exit_code = e->server ? -1 : e->exit_code;
    }
    tsvc_strlcpy(info.name, q->svc->name, sizeof info.name);
    tsvc_strlcpy(info.host, "127.0.0.1", sizeof info.host);
    tsvc_rt_inspect_cb cb = q->cb;
    void *data = q->data;
    free(q);
    cb(0, NULL, &info, data);
  }
}

static int rt_inspect(tsvc_runtime_t *base, const tsvc_service_conf_t *svc,
                      tsvc_rt_inspect_cb cb, void *data) {
  prt_t *rt = (prt_t *)base;
  if (!svc || !svc->name || !cb) return TSVC_EINVAL;
  if (rt->freeing) return TSVC_ECANCELED;
  inspect_t *q = calloc(1, sizeof *q);
  if (!q) return TSVC_ENOMEM;
  q->svc = svc;
  q->cb = cb;
  q->data = data;
  q->next = rt->inspects;
  rt->inspects = q;
  uv_timer_start(&rt->kick, kick_cb, 0, 0);
  return 0;
}

static int rt_watch(tsvc_runtime_t *base, tsvc_rt_event_cb cb, void *data) {
  prt_t *rt = (prt_t *)base;
  rt->watch_cb = cb;
  rt->watch_data = data;
  return 0;
}

static void rt_probe_host(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, char *buf,
                          size_t len) {
  (void)rt;
  (void)svc;
  tsvc_strlcpy(buf, "127.0.0.1", len);
}

/* ---- free ---------------------------------------------------------------- */

static void rt_release(prt_t *rt) {
  /* What we still owe an answer is told now, from the loop (the last close
     callback), never inside rt_free (runtime.h). */
  static const char closed[] = "the runtime was closed";
  while (rt->inspects) {
    inspect_t *q = rt->inspects;
    rt->inspects = q->next;
    tsvc_rt_inspect_cb cb = q->cb;
    void *data = q->data;
    free(q);
    cb(TSVC_ECANCELED, closed, &(tsvc_rt_info_t){.exit_code = -1}, data);
  }
  for (entry_t *e = rt->entries; e; e = e->next) {
    tsvc_rt_done_cb cb = e->cb;
    void *data = e->cbdata;
    e->cb = NULL;
    e->cbdata = NULL;
    if (cb) cb(TSVC_ECANCELED, closed, data);
  }
  while (rt->entries) {
    entry_t *e = rt->entries;
    rt->entries = e->next;
    tsvc__plog_close(&e->log);
    free(e->name);
    free(e);
  }
  tsvc_index_free(&rt->index);
  free(rt);
}

static void rt_free(tsvc_runtime_t *base) {
  prt_t *rt = (prt_t *)base;
  rt->freeing = true;
  rt->watch_cb = NULL;
  /* New operations are refused from here; those in flight end now, and are
     answered (TSVC_ECANCELED) once the handles are closed (rt_release). */
  uv_timer_stop(&rt->kick);
  for (entry_t *e = rt->entries; e; e = e->next) {
    if (e->op == OP_NONE) e->cb = NULL;
    e->op = OP_NONE;
  }
  tsvc__proc_shutdown(rt);
  uv_close((uv_handle_t *)&rt->kick, timer_closed);
}

/* A reload: the config to read from now on (the old one may be freed once
   the operations begun with it have ended). */
static void rt_reconfigure(tsvc_runtime_t *base, const tsvc_config_t *cfg) {
  ((prt_t *)base)->cfg = cfg;
}

static const tsvc_runtime_ops_t process_ops = {
    .name = "process",
    .start = rt_start,
    .stop = rt_stop,
    .restart = rt_restart,
    .inspect = rt_inspect,
    .exec = NULL,
    .exec_cancel = NULL,
    .watch = rt_watch,
    .probe_host = rt_probe_host,
    .free = rt_free,
    .reconfigure = rt_reconfigure,
};

/* ---- where the files are ------------------------------------------------- */

/* path made absolute against the working directory, without trailing
   slashes, into out (PATH_MAX). 0 or -1 with why in err. */
static int absolute(const char *path, char *out, char *err, size_t errlen) {
  char buf[PATH_MAX];
  if (path[0] == '/') {
    if (tsvc_strlcpy(buf, path, sizeof buf) >= sizeof buf) goto long_path;
  } else {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
      snprintf(err, errlen, "cannot get the working directory: %s", strerror(errno));
      return -1;
    }
    if (snprintf(buf, sizeof buf, "%s/%s", cwd, path) >= (int)sizeof buf) goto long_path;
  }
  size_t n = strlen(buf);
  while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
  /* Room for "/<service>.init" and the like below it. */
  if (n > PATH_MAX - 512) goto long_path;
  memcpy(out, buf, n + 1);
  return 0;
long_path:
  snprintf(err, errlen, "the path %.200s... is too long", path);
  return -1;
}

int tsvc_process_layout_init(tsvc_process_layout_t *l, const char *config_path,
                             const char *state_dir, bool privileged, char *err, size_t errlen) {
  memset(l, 0, sizeof *l);
  if (!config_path || !*config_path || !state_dir || !*state_dir) {
    snprintf(err, errlen, "no config path or state directory");
    return TSVC_EINVAL;
  }
  char config_abs[PATH_MAX];
  if (absolute(config_path, config_abs, err, errlen) != 0 ||
      absolute(state_dir, l->state_dir, err, errlen) != 0)
    return TSVC_EINVAL;
  tsvc_strlcpy(l->config_dir, config_abs, sizeof l->config_dir);
  char *slash = strrchr(l->config_dir, '/');
  slash[slash == l->config_dir ? 1 : 0] = '\0';
  if (!privileged) {
    snprintf(l->data_root, sizeof l->data_root, "%.3500s/data", l->state_dir);
    snprintf(l->run_dir, sizeof l->run_dir, "%.3500s/run", l->state_dir);
    return 0;
  }
  char id[TSVC_PROJECT_ID_MAX];
  int rc = tsvc_project_id(config_abs, id, sizeof id);
  if (rc) {
    snprintf(err, errlen, "no project id for %s", config_abs);
    return rc;
  }
  snprintf(l->data_root, sizeof l->data_root, "%s/%s", TSVC_PROCESS_DATA_BASE, id);
  snprintf(l->run_dir, sizeof l->run_dir, "%s/%s", TSVC_PROCESS_RUN_BASE, id);
  snprintf(l->old_data_root, sizeof l->old_data_root, "%.3500s/data", l->state_dir);
  return 0;
}

bool tsvc_process_has_data(const tsvc_service_conf_t *svc) {
  return svc && tsvc__proc_kind(svc) != KIND_COMMAND;
}

int tsvc_process_data_dir(const tsvc_process_layout_t *l, const tsvc_service_conf_t *svc,
                          char *buf, size_t len, bool *old) {
  if (old) *old = false;
  if (!tsvc_process_has_data(svc) || !svc->name) return TSVC_EINVAL;
  const char *set = svc->process.data_dir;
  int n;
  if (set && *set) {
    n = set[0] == '/' ? snprintf(buf, len, "%s", set)
                      : snprintf(buf, len, "%s%s%s", l->config_dir,
                                 strcmp(l->config_dir, "/") ? "/" : "", set);
    if (n < 0 || (size_t)n >= len) return TSVC_EINVAL;
    /* No trailing slash: "<dir>.init" is made beside it. */
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    return 0;
  }
  n = snprintf(buf, len, "%s/%s", l->data_root, svc->name);
  if (n < 0 || (size_t)n >= len) return TSVC_EINVAL;
  if (l->old_data_root[0] && tsvc__proc_dir_state(buf) != 2) {
    char prev[PATH_MAX];
    n = snprintf(prev, sizeof prev, "%s/%s", l->old_data_root, svc->name);
    if (n > 0 && (size_t)n < sizeof prev && (size_t)n < len && tsvc__proc_dir_state(prev) == 2) {
      memcpy(buf, prev, (size_t)n + 1);
      if (old) *old = true;
    }
  }
  return 0;
}

/* ---- construction --------------------------------------------------------- */

int tsvc_process_runtime_new(uv_loop_t *loop, const tsvc_config_t *cfg,
                             const tsvc_process_layout_t *layout, tsvc_runtime_t **out,
                             char *err, size_t errlen) {
  *out = NULL;
  if (!loop || !layout || layout->state_dir[0] != '/') {
    snprintf(err, errlen, "no state directory");
    return TSVC_EINVAL;
  }
  prt_t *rt = calloc(1, sizeof *rt);
  if (!rt) {
    snprintf(err, errlen, "out of memory");
    return TSVC_ENOMEM;
  }
  rt->base.ops = &process_ops;
  rt->base.loop = loop;
  rt->cfg = cfg;
  rt->log_max = TSVC_PROCESS_LOG_MAX;
  rt->lay = *layout;
  tsvc_index_init(&rt->index, offsetof(entry_t, name));
  snprintf(rt->logs_dir, sizeof rt->logs_dir, "%.4000s/logs", rt->lay.state_dir);
  const char *dirs[] = {rt->lay.state_dir, rt->logs_dir};
  for (size_t i = 0; i < TSVC_ARRAY_LEN(dirs); i++) {
    if (tsvc__proc_mkdir_p(dirs[i], 0755) != 0) {
      snprintf(err, errlen, "cannot create %s: %s", dirs[i], strerror(errno));
      free(rt);
      return TSVC_EIO;
    }
  }
  if (!tsvc_find_exec("setpriv", rt->setpriv, sizeof rt->setpriv)) rt->setpriv[0] = '\0';
  uv_timer_init(loop, &rt->kick);
  uv_unref((uv_handle_t *)&rt->kick);
  rt->kick.data = rt;
  rt->handles++;
  *out = &rt->base;
  return 0;
}

void tsvc_process_runtime_set_log_max(tsvc_runtime_t *base, size_t bytes) {
  prt_t *rt = (prt_t *)base;
  rt->log_max = bytes > 0 ? bytes : TSVC_PROCESS_LOG_MAX;
  for (entry_t *e = rt->entries; e; e = e->next) e->log.max = rt->log_max;
}
