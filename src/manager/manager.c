/*
 * manager.c: the ServiceManager of the request, in C (DESIGN.md section 7).
 *
 * One thread runs the libuv loop that owns the runtime and the monitor.
 * Public calls from other threads become jobs: queued under a mutex, the
 * loop woken with uv_async_send, carried out on the loop (often in several
 * asynchronous steps), and the caller waits on a condition variable until
 * the job says it is done. Status reads need no job: the monitor's status
 * copies are taken under its own mutex.
 */
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/util.h"
#include "config/config.h"
#include "log/log.h"
#include "manager/diff.h"
#include "manager/manager.h"
#include "monitor/monitor.h"
#include "runtime/docker_rt.h"
#include "runtime/process.h"
#include "runtime/remote.h"
#include "tsvc.h"

typedef struct job_s job_t;
typedef void (*job_fn)(tsvc_manager_t *m, job_t *j);

struct job_s {
  job_fn run;
  const char *name;  /* the service, for per-service jobs */
  int rc;
  tsvc_buf_t err;    /* what went wrong, for people */
  bool done;
  job_t *next;
  /* start_services / stop_services */
  size_t idx;
  tsvc_config_t *cfg; /* reload: the new config, owned until applied */
  int failures;
  int pending;
  unsigned char *phase; /* start_services: per service, 0 waiting, 1 being
                           started, 2 done (started, failed, or skipped) */
  bool walking;         /* start_ready is running */
};

typedef struct {
  int id;
  tsvc_change_cb cb;
  void *data;
} sub_t;

struct tsvc_manager_s {
  tsvc_config_t *cfg; /* replaced by a reload under mu */
  char *config_path;  /* absolute, for reloads */
  tsvc_config_t **old_cfgs; /* replaced configs: the monitor, the runtime and
                               operations in flight may still point into them;
                               freed with the manager */
  size_t nold;
  job_t *starting;    /* start_services is going through the services */
  char *state_dir;
  char *project;
  tsvc_runtime_kind_t want; /* the runtime asked for */
  const char *runtime_name;

  uv_loop_t loop;
  uv_async_t wake;
  uv_timer_t heartbeat;
  pthread_t thread;
  bool thread_started;
  _Atomic int64_t heartbeat_ms;

  pthread_mutex_t mu; /* jobs, mon, dead */
  pthread_cond_t cv;
  job_t *jobs, *jobs_tail;

  tsvc_runtime_t *rt;
  tsvc_monitor_t *mon;
  tsvc_monitor_t **dead; /* closed monitors, freed after the loop ends */
  size_t ndead;

  pthread_mutex_t sub_mu;
  sub_t *subs;
  size_t nsubs;
  int next_sub;

  size_t *order; /* services in depends_on order (indexes into cfg) */
};

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- jobs ----------------------------------------------------------------- */

static void job_done(tsvc_manager_t *m, job_t *j, int rc) {
  pthread_mutex_lock(&m->mu);
  j->rc = rc;
  j->done = true;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

static void job_errf(job_t *j, const char *fmt, ...) TSVC_PRINTF(2, 3);
static void job_errf(job_t *j, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (j->err.len) tsvc_buf_add(&j->err, "\n", 1);
  tsvc_buf_vaddf(&j->err, fmt, ap);
  va_end(ap);
}

/* Run a job on the loop and wait for it. Returns its rc; its message goes to
   err. */
static int post_job(tsvc_manager_t *m, job_t *j, char *err, size_t errlen);
static int post(tsvc_manager_t *m, job_fn run, const char *name, char *err, size_t errlen) {
  job_t j = {.run = run, .name = name};
  return post_job(m, &j, err, errlen);
}

static int post_job(tsvc_manager_t *m, job_t *j, char *err, size_t errlen) {
  tsvc_buf_init(&j->err, 16 * 1024);
  pthread_mutex_lock(&m->mu);
  if (m->jobs_tail) m->jobs_tail->next = j;
  else m->jobs = j;
  m->jobs_tail = j;
  pthread_mutex_unlock(&m->mu);
  uv_async_send(&m->wake);
  pthread_mutex_lock(&m->mu);
  while (!j->done) pthread_cond_wait(&m->cv, &m->mu);
  pthread_mutex_unlock(&m->mu);
  if (err && errlen) tsvc_strlcpy(err, j->err.data ? j->err.data : "", errlen);
  tsvc_buf_free(&j->err);
  return j->rc;
}

static void wake_cb(uv_async_t *a) {
  tsvc_manager_t *m = a->data;
  for (;;) {
    pthread_mutex_lock(&m->mu);
    job_t *j = m->jobs;
    if (j) {
      m->jobs = j->next;
      if (!m->jobs) m->jobs_tail = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    if (!j) return;
    j->run(m, j);
  }
}

static void heartbeat_cb(uv_timer_t *t) {
  tsvc_manager_t *m = t->data;
  atomic_store(&m->heartbeat_ms, wall_ms());
}

static void *loop_main(void *arg) {
  tsvc_manager_t *m = arg;
  uv_run(&m->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* ---- observers -------------------------------------------------------------- */

static void observer(const tsvc_mon_event_t *ev, void *data) {
  tsvc_manager_t *m = data;
  if (ev->type != TSVC_MON_EV_CHANGE) return;
  tsvc_change_t c = {
      .service = ev->service,
      .from = ev->from,
      .to = ev->to,
      .reason = ev->reason,
      .time_ms = wall_ms(),
      .failures = ev->failures,
      .retries = ev->retries,
      .restarts = ev->restarts,
      .max_restarts = ev->max_restarts,
  };
  pthread_mutex_lock(&m->sub_mu);
  for (size_t i = 0; i < m->nsubs; i++) m->subs[i].cb(&c, m->subs[i].data);
  pthread_mutex_unlock(&m->sub_mu);
}

int tsvc_manager_subscribe(tsvc_manager_t *m, tsvc_change_cb cb, void *data) {
  pthread_mutex_lock(&m->sub_mu);
  sub_t *v = realloc(m->subs, (m->nsubs + 1) * sizeof *v);
  int id = TSVC_ENOMEM;
  if (v) {
    m->subs = v;
    id = ++m->next_sub;
    v[m->nsubs++] = (sub_t){id, cb, data};
  }
  pthread_mutex_unlock(&m->sub_mu);
  return id;
}

void tsvc_manager_unsubscribe(tsvc_manager_t *m, int id) {
  pthread_mutex_lock(&m->sub_mu);
  for (size_t i = 0; i < m->nsubs; i++)
    if (m->subs[i].id == id) {
      memmove(&m->subs[i], &m->subs[i + 1], (m->nsubs - i - 1) * sizeof *m->subs);
      m->nsubs--;
      break;
    }
  pthread_mutex_unlock(&m->sub_mu);
}

/* ---- the monitor's life ----------------------------------------------------- */

/* Close the monitor (if any) and keep it until the loop ends. */
static void retire_monitor(tsvc_manager_t *m) {
  if (!m->mon) return;
  tsvc_monitor_close(m->mon);
  pthread_mutex_lock(&m->mu);
  tsvc_monitor_t **v = realloc(m->dead, (m->ndead + 1) * sizeof *v);
  if (v) {
    m->dead = v;
    m->dead[m->ndead++] = m->mon;
  } /* else: leaked rather than freed while its handles close */
  m->mon = NULL;
  pthread_mutex_unlock(&m->mu);
}

/* Services in depends_on order: dependencies first. */
static int make_order(tsvc_manager_t *m) {
  size_t n = m->cfg->nservices;
  m->order = calloc(n ? n : 1, sizeof *m->order);
  char *mark = calloc(n ? n : 1, 1);
  if (!m->order || !mark) {
    free(mark);
    free(m->order);
    m->order = NULL;
    return TSVC_ENOMEM;
  }
  size_t k = 0;
  /* The config rejects cycles, so repeated passes place everything. */
  while (k < n) {
    size_t before = k;
    for (size_t i = 0; i < n; i++) {
      if (mark[i]) continue;
      const tsvc_service_conf_t *s = &m->cfg->services[i];
      bool ready = true;
      for (size_t d = 0; d < s->depends_on.n && ready; d++)
        for (size_t x = 0; x < n; x++)
          if (!mark[x] && strcmp(m->cfg->services[x].name, s->depends_on.v[d]) == 0)
            ready = false;
      if (ready) {
        mark[i] = 1;
        m->order[k++] = i;
      }
    }
    if (k == before) break; /* a cycle slipped through: keep file order */
  }
  for (size_t i = 0; k < n && i < n; i++)
    if (!mark[i]) m->order[k++] = i;
  free(mark);
  return 0;
}

static void start_ready(tsvc_manager_t *m, job_t *j);

/* Start the enabled services in depends_on order: each one as soon as the
   starts of the services it depends on have ended (well or not), every
   other one at once, so that a slow start (a long image pull) delays only
   the services that depend on it. */
static void start_ended_cb(int status, const char *msg, void *data);

typedef struct {
  tsvc_manager_t *m;
  job_t *j;
  const char *name;
  size_t idx;
} start_ctx_t;

static void start_ended_cb(int status, const char *msg, void *data) {
  start_ctx_t *c = data;
  tsvc_manager_t *m = c->m;
  job_t *j = c->j;
  if (status) {
    j->failures++;
    job_errf(j, "%s: %s", c->name, msg && *msg ? msg : tsvc_strerror(status));
  }
  j->phase[c->idx] = 2;
  j->pending--;
  free(c);
  start_ready(m, j);
}

/* Have the starts of every service s depends on ended? */
static bool deps_ended(const tsvc_manager_t *m, const job_t *j, const tsvc_service_conf_t *s) {
  for (size_t d = 0; d < s->depends_on.n; d++)
    for (size_t x = 0; x < m->cfg->nservices; x++)
      if (strcmp(m->cfg->services[x].name, s->depends_on.v[d]) == 0 && j->phase[x] != 2)
        return false;
  return true;
}

/* Launch what is ready; the job ends when every start has ended. */
static void start_ready(tsvc_manager_t *m, job_t *j) {
  if (j->walking) return; /* the walk in progress goes round again */
  j->walking = true;
  m->starting = j;
  size_t n = m->cfg->nservices;
  bool again = true;
  while (again) {
    again = false;
    for (size_t k = 0; k < n; k++) {
      size_t i = m->order[k];
      const tsvc_service_conf_t *s = &m->cfg->services[i];
      if (j->phase[i] != 0 || !deps_ended(m, j, s)) continue;
      again = true; /* a change: services after it may be ready now */
      j->phase[i] = 2;
      if (!s->enabled) continue;
      if (s->external) {
        /* Only watched: checked from now on, never started by us. */
        tsvc_monitor_started(m->mon, s->name);
        continue;
      }
      start_ctx_t *c = malloc(sizeof *c);
      if (!c) {
        j->failures++;
        job_errf(j, "%s: out of memory", s->name);
        continue;
      }
      *c = (start_ctx_t){m, j, s->name, i};
      j->phase[i] = 1;
      j->pending++;
      int rc = tsvc_monitor_user_start(m->mon, s->name, start_ended_cb, c);
      if (rc == 0) continue; /* start_ended_cb carries on */
      j->phase[i] = 2;
      j->pending--;
      free(c);
      if (rc == TSVC_ESTATE) continue; /* already running */
      j->failures++;
      job_errf(j, "%s: %s", s->name, tsvc_strerror(rc));
    }
  }
  j->walking = false;
  if (j->pending) return;
  m->starting = NULL;
  free(j->phase);
  j->phase = NULL;
  job_done(m, j, j->failures ? TSVC_ERUNTIME : 0);
}

static void begin_monitoring(tsvc_manager_t *m, job_t *j) {
  tsvc_monitor_t *mon;
  int rc = tsvc_monitor_new(&m->loop, m->rt, &mon);
  if (rc) {
    job_done(m, j, rc);
    return;
  }
  tsvc_monitor_set_observer(mon, observer, m);
  for (size_t i = 0; i < m->cfg->nservices; i++) {
    rc = tsvc_monitor_add(mon, &m->cfg->services[i]);
    if (rc) {
      job_errf(j, "%s: %s", m->cfg->services[i].name, tsvc_strerror(rc));
      pthread_mutex_lock(&m->mu);
      m->mon = mon;
      pthread_mutex_unlock(&m->mu);
      retire_monitor(m);
      job_done(m, j, rc);
      return;
    }
  }
  pthread_mutex_lock(&m->mu);
  m->mon = mon;
  pthread_mutex_unlock(&m->mu);
  rc = tsvc_monitor_watch_runtime(mon);
  if (rc) TSVC_LOG(TSVC_LOG_WARN, NULL, "cannot watch runtime events: %s", tsvc_strerror(rc));
  j->phase = calloc(m->cfg->nservices ? m->cfg->nservices : 1, 1);
  if (!j->phase) {
    job_errf(j, "out of memory");
    job_done(m, j, TSVC_ENOMEM);
    return;
  }
  start_ready(m, j);
}

static int make_runtime(tsvc_manager_t *m, tsvc_runtime_kind_t kind, job_t *j) {
  char err[512] = "";
  int rc;
  if (kind == TSVC_RUNTIME_DOCKER) {
    rc = tsvc_docker_runtime_new(&m->loop, m->cfg, m->config_path, &m->rt, err, sizeof err);
    m->runtime_name = "docker";
  } else {
    /* Data and sockets outside the checkout as root (process.h). */
    tsvc_process_layout_t lay;
    rc = tsvc_process_layout_init(&lay, m->config_path, m->state_dir, geteuid() == 0, err,
                                  sizeof err);
    if (!rc) rc = tsvc_process_runtime_new(&m->loop, m->cfg, &lay, &m->rt, err, sizeof err);
    m->runtime_name = "process";
  }
  if (rc) {
    job_errf(j, "cannot set up the %s runtime: %s", m->runtime_name, err[0] ? err : tsvc_strerror(rc));
    m->runtime_name = "";
  }
  return rc;
}

typedef struct {
  tsvc_manager_t *m;
  job_t *j;
} ping_ctx_t;

static void ping_cb(int status, const char *msg, void *data) {
  ping_ctx_t *p = data;
  tsvc_manager_t *m = p->m;
  job_t *j = p->j;
  free(p);
  const char *host = m->cfg->docker.host;
  tsvc_runtime_kind_t kind;
  /* auto falls back to processes only when no engine was named (remote.h). */
  if (tsvc_runtime_choose(m->want, m->cfg->docker.host_named, status, &kind) != 0) {
    /* (The client's message names the engine already.) */
    bool named = msg && strstr(msg, host);
    job_errf(j, "%s%s%s%s%s", named ? "" : "the docker engine at ", named ? "" : host,
             named ? "" : " cannot be reached: ", msg && *msg ? msg : "no answer",
             m->want == TSVC_RUNTIME_AUTO
                 ? " (runtime auto runs local processes only when no engine is named: "
                   "docker.host and $DOCKER_HOST unset)"
                 : "");
    job_done(m, j, TSVC_EUNREACH);
    return;
  }
  if (kind == TSVC_RUNTIME_DOCKER)
    TSVC_LOG(TSVC_LOG_INFO, NULL, "runtime docker: the daemon answers at %s", host);
  else
    TSVC_LOG(TSVC_LOG_INFO, NULL,
             "runtime process: no docker daemon at %s (%s); services run as local processes",
             host, msg && *msg ? msg : "no answer");
  int rc = make_runtime(m, kind, j);
  if (rc) {
    job_done(m, j, rc);
    return;
  }
  begin_monitoring(m, j);
}

static void job_start_services(tsvc_manager_t *m, job_t *j) {
  if (m->mon) {
    job_done(m, j, 0); /* already monitoring */
    return;
  }
  if (m->rt) {
    begin_monitoring(m, j);
    return;
  }
  if (m->want == TSVC_RUNTIME_PROCESS) {
    int rc = make_runtime(m, TSVC_RUNTIME_PROCESS, j);
    if (rc) job_done(m, j, rc);
    else {
      TSVC_LOG(TSVC_LOG_INFO, NULL, "runtime process: services run as local processes");
      begin_monitoring(m, j);
    }
    return;
  }
  /* docker, or auto: ask the daemon first. */
  ping_ctx_t *p = malloc(sizeof *p);
  char err[1024] = "";
  int rc = p ? tsvc_docker_probe_engine(&m->loop, m->cfg, ping_cb, p, err, sizeof err)
             : TSVC_ENOMEM;
  if (rc == TSVC_ENOMEM) {
    free(p);
    job_errf(j, "cannot ask the docker daemon: %s", tsvc_strerror(rc));
    job_done(m, j, rc);
    return;
  }
  p->m = m;
  p->j = j;
  /* No client for the engine (a certificate file missing, no ssh): as an
     engine that does not answer, with the reason. */
  if (rc) ping_cb(TSVC_EUNREACH, err[0] ? err : tsvc_strerror(rc), p);
}

static void stop_one_done(int status, const char *msg, void *data) {
  start_ctx_t *c = data;
  job_t *j = c->j;
  if (status) {
    j->failures++;
    job_errf(j, "%s: %s", c->name, msg && *msg ? msg : tsvc_strerror(status));
  }
  tsvc_manager_t *m = c->m;
  free(c);
  if (--j->pending == 0) job_done(m, j, j->failures ? TSVC_ERUNTIME : 0);
}

static void job_stop_services(tsvc_manager_t *m, job_t *j) {
  /* Monitoring stops first, so nothing restarts what we stop. */
  retire_monitor(m);
  if (!m->rt) {
    job_done(m, j, 0);
    return;
  }
  j->pending = 1; /* held until every stop is sent */
  for (size_t k = m->cfg->nservices; k-- > 0;) {
    const tsvc_service_conf_t *s = &m->cfg->services[m->order[k]];
    if (!s->enabled || s->external) continue;
    start_ctx_t *c = malloc(sizeof *c);
    if (!c) continue;
    *c = (start_ctx_t){m, j, s->name, 0};
    j->pending++;
    int rc = m->rt->ops->stop(m->rt, s, stop_one_done, c);
    if (rc) {
      j->pending--;
      j->failures++;
      job_errf(j, "%s: %s", s->name, tsvc_strerror(rc));
      free(c);
    } else {
      TSVC_LOG(TSVC_LOG_INFO, s->name, "stopping");
    }
  }
  if (--j->pending == 0) job_done(m, j, j->failures ? TSVC_ERUNTIME : 0);
}

static void job_stop_monitoring(tsvc_manager_t *m, job_t *j) {
  retire_monitor(m);
  job_done(m, j, 0);
}

static void user_done(int status, const char *msg, void *data) {
  start_ctx_t *c = data;
  if (status) job_errf(c->j, "%s", msg && *msg ? msg : tsvc_strerror(status));
  job_done(c->m, c->j, status);
  free(c);
}

/* Why a person's operation was refused, naming the state the service is
   really in (the API answers 409 with it). */
static void refusal(tsvc_manager_t *m, job_t *j, int rc) {
  tsvc_state_t st = TSVC_STATE_UNKNOWN;
  tsvc_health_op_t op = TSVC_OP_NONE;
  if (rc != TSVC_ENOENT && tsvc_monitor_state(m->mon, j->name, &st, &op) != 0) rc = TSVC_ENOENT;
  const char *state = tsvc_state_name(st);
  switch (rc) {
  case TSVC_ENOENT: job_errf(j, "no service named '%s'", j->name); break;
  case TSVC_EBUSY:
    job_errf(j, "%s is %s: %s is in progress", j->name, state,
             op == TSVC_OP_START     ? "a start"
             : op == TSVC_OP_STOP    ? "a stop"
             : op == TSVC_OP_RESTART ? "a restart"
                                     : "another operation");
    break;
  case TSVC_ESTATE:
    job_errf(j, "%s is %s, not stopped: start applies to a stopped service (use restart)",
             j->name, state);
    break;
  case TSVC_EUNREACH:
    job_errf(j, "%s is %s: the runtime cannot be reached", j->name, state);
    break;
  default: job_errf(j, "%s: %s", j->name, tsvc_strerror(rc)); break;
  }
}

static void job_user(tsvc_manager_t *m, job_t *j,
                     int (*fn)(tsvc_monitor_t *, const char *, tsvc_mon_done_cb, void *)) {
  if (!m->mon) {
    job_errf(j, "services are not being monitored (start them first)");
    job_done(m, j, TSVC_ESTATE);
    return;
  }
  const tsvc_service_conf_t *svc = tsvc_config_service(m->cfg, j->name);
  if (svc && svc->external) {
    job_errf(j, "%s is external: only watched, never started, stopped or restarted", j->name);
    job_done(m, j, TSVC_ESTATE);
    return;
  }
  start_ctx_t *c = malloc(sizeof *c);
  if (!c) {
    job_done(m, j, TSVC_ENOMEM);
    return;
  }
  *c = (start_ctx_t){m, j, j->name, 0};
  int rc = fn(m->mon, j->name, user_done, c);
  if (rc) {
    free(c);
    refusal(m, j, rc);
    job_done(m, j, rc);
  }
}

static void job_user_start(tsvc_manager_t *m, job_t *j) {
  job_user(m, j, tsvc_monitor_user_start);
}
static void job_user_stop(tsvc_manager_t *m, job_t *j) { job_user(m, j, tsvc_monitor_user_stop); }
static void job_user_restart(tsvc_manager_t *m, job_t *j) {
  job_user(m, j, tsvc_monitor_user_restart);
}

static void job_check(tsvc_manager_t *m, job_t *j) {
  job_done(m, j, m->mon ? tsvc_monitor_check_now(m->mon, j->name) : TSVC_ESTATE);
}

static void job_quit(tsvc_manager_t *m, job_t *j) {
  retire_monitor(m);
  if (m->rt) {
    tsvc_runtime_free(m->rt);
    m->rt = NULL;
  }
  uv_close((uv_handle_t *)&m->heartbeat, NULL);
  uv_close((uv_handle_t *)&m->wake, NULL);
  job_done(m, j, 0);
}

/* ---- reload (SIGHUP) ------------------------------------------------------ */

/* One service's part of a reload, on its own asynchronous steps. */
typedef struct {
  tsvc_manager_t *m;
  job_t *j;
  const tsvc_service_conf_t *svc;
  int step; /* recreate: 0 stopping, 1 removing, 2 starting */
} reload_op_t;

static void reload_op_end(reload_op_t *o, int status, const char *msg) {
  job_t *j = o->j;
  tsvc_manager_t *m = o->m;
  if (status && status != TSVC_ESTATE) { /* ESTATE: already as wanted */
    j->failures++;
    job_errf(j, "%s: %s", o->svc->name, msg && *msg ? msg : tsvc_strerror(status));
    TSVC_LOG(TSVC_LOG_ERROR, o->svc->name, "reload: %s",
             msg && *msg ? msg : tsvc_strerror(status));
  }
  free(o);
  if (--j->pending == 0) job_done(m, j, j->failures ? TSVC_ERUNTIME : 0);
}

static void reload_step(int status, const char *msg, void *data);

/* Begin a step whose callback is reload_step; on an error at once, end. */
static void reload_go(reload_op_t *o, int rc) {
  if (rc) reload_op_end(o, rc, NULL);
}

static void reload_step(int status, const char *msg, void *data) {
  reload_op_t *o = data;
  tsvc_manager_t *m = o->m;
  if (status || o->step == 2 || !m->mon) {
    reload_op_end(o, status, msg);
    return;
  }
  if (o->step == 0) {
    o->step = 1;
    if (m->rt && m->rt->ops->remove) {
      reload_go(o, m->rt->ops->remove(m->rt, o->svc, reload_step, o));
      return;
    }
  }
  o->step = 2;
  reload_go(o, tsvc_monitor_user_start(m->mon, o->svc->name, reload_step, o));
}

static void reload_rt_done(int status, const char *msg, void *data) {
  reload_op_end(data, status, msg);
}

static reload_op_t *reload_op(tsvc_manager_t *m, job_t *j, const tsvc_service_conf_t *svc,
                              int step) {
  reload_op_t *o = malloc(sizeof *o);
  if (!o) {
    j->failures++;
    job_errf(j, "%s: out of memory", svc->name);
    return NULL;
  }
  *o = (reload_op_t){m, j, svc, step};
  j->pending++;
  return o;
}

static void register_secrets(const tsvc_config_t *cfg) {
  for (size_t i = 0; i < cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    for (size_t k = 0; k < s->env_len; k++)
      if (tsvc_is_secret_key(s->env[k].key)) tsvc_log_add_secret(s->env[k].value);
    for (size_t k = 0; k < s->process.env_len; k++)
      if (tsvc_is_secret_key(s->process.env[k].key)) tsvc_log_add_secret(s->process.env[k].value);
  }
}

/*
 * Apply j->cfg: removed services stop, added ones start, changed ones are
 * applied (health and restart knobs in place; image, environment, ports,
 * volumes or command: stop, remove the container, start afresh), unchanged
 * ones are not touched. Every kept service is pointed at the new config
 * (tsvc_monitor_update); the old config stays alive (old_cfgs) because
 * operations in flight may still read it.
 */
static void job_reload(tsvc_manager_t *m, job_t *j) {
  tsvc_config_t *nc = j->cfg, *old = m->cfg;
  j->cfg = NULL;
  char why[512];
  if (m->starting) {
    tsvc_config_free(nc);
    job_errf(j, "services are still being started; reload again once they are");
    job_done(m, j, TSVC_EBUSY);
    return;
  }
  if (m->rt && !tsvc_config_reloadable(old, nc, why, sizeof why)) {
    tsvc_config_free(nc);
    job_errf(j, "%s", why);
    job_done(m, j, TSVC_ECONFIG);
    return;
  }
  tsvc_config_t **v = realloc(m->old_cfgs, (m->nold + 1) * sizeof *v);
  size_t *old_order = m->order;
  m->order = NULL;
  pthread_mutex_lock(&m->mu);
  m->cfg = nc;
  pthread_mutex_unlock(&m->mu);
  if (!v || make_order(m)) {
    pthread_mutex_lock(&m->mu);
    m->cfg = old;
    pthread_mutex_unlock(&m->mu);
    m->order = old_order;
    if (v) m->old_cfgs = v;
    tsvc_config_free(nc);
    job_errf(j, "out of memory");
    job_done(m, j, TSVC_ENOMEM);
    return;
  }
  free(old_order);
  m->old_cfgs = v;
  m->old_cfgs[m->nold++] = old;
  register_secrets(nc);
  if (m->rt && m->rt->ops->reconfigure) m->rt->ops->reconfigure(m->rt, nc);

  size_t added = 0, removed = 0, changed = 0, recreated = 0, same = 0;
  j->pending = 1; /* held until every operation is sent */
  for (size_t i = 0; i < old->nservices; i++) {
    const tsvc_service_conf_t *s = &old->services[i];
    if (tsvc_config_service(nc, s->name)) continue;
    removed++;
    TSVC_LOG(TSVC_LOG_INFO, s->name, "reload: removed from the config%s",
             s->external || !s->enabled ? "" : "; stopping it");
    if (m->mon) tsvc_monitor_remove(m->mon, s->name);
    if (!m->rt || s->external || !s->enabled) continue;
    reload_op_t *o = reload_op(m, j, s, 2);
    if (o) reload_go(o, m->rt->ops->stop(m->rt, s, reload_rt_done, o));
  }
  for (size_t k = 0; k < nc->nservices; k++) {
    const tsvc_service_conf_t *s = &nc->services[m->order[k]];
    const tsvc_service_conf_t *was = tsvc_config_service(old, s->name);
    if (!was) {
      added++;
      TSVC_LOG(TSVC_LOG_INFO, s->name, "reload: added to the config%s",
               s->enabled ? (s->external ? "; watching it" : "; starting it") : "");
      if (!m->mon) continue;
      int rc = tsvc_monitor_add(m->mon, s);
      if (rc) {
        j->failures++;
        job_errf(j, "%s: %s", s->name, tsvc_strerror(rc));
        continue;
      }
      if (!s->enabled) continue;
      if (s->external) {
        tsvc_monitor_started(m->mon, s->name);
        continue;
      }
      reload_op_t *o = reload_op(m, j, s, 2);
      if (o) reload_go(o, tsvc_monitor_user_start(m->mon, s->name, reload_step, o));
      continue;
    }
    unsigned d = tsvc_service_diff(was, s);
    if (m->mon) {
      /* Always: the monitor must let go of the old config's pointers. */
      int rc = tsvc_monitor_update(m->mon, s);
      if (rc) {
        j->failures++;
        job_errf(j, "%s: %s", s->name, tsvc_strerror(rc));
        continue;
      }
    }
    if (d == TSVC_DIFF_SAME) {
      same++;
      continue;
    }
    changed++;
    bool spec = (d & TSVC_DIFF_SPEC) && s->enabled && !s->external;
    recreated += spec;
    char what[96];
    snprintf(what, sizeof what, "%s%s%s%s", d & TSVC_DIFF_SPEC ? ", container spec" : "",
             d & TSVC_DIFF_KNOBS ? ", healthcheck/restart" : "",
             d & TSVC_DIFF_ENABLED ? ", enabled" : "", d & TSVC_DIFF_EXTERNAL ? ", external" : "");
    TSVC_LOG(TSVC_LOG_INFO, s->name, "reload: changed (%s)%s", what + 2,
             spec ? "; recreating it" : "");
    if (!m->mon) continue;
    reload_op_t *o = NULL;
    if (!s->enabled && (d & TSVC_DIFF_ENABLED) && !was->external && !s->external) {
      if ((o = reload_op(m, j, s, 2)))
        reload_go(o, tsvc_monitor_user_stop(m->mon, s->name, reload_step, o));
    } else if (s->enabled && s->external && (d & (TSVC_DIFF_ENABLED | TSVC_DIFF_EXTERNAL))) {
      tsvc_monitor_started(m->mon, s->name);
    } else if (spec) {
      if ((o = reload_op(m, j, s, 0)))
        reload_go(o, tsvc_monitor_user_stop(m->mon, s->name, reload_step, o));
    } else if (s->enabled && !s->external && (d & (TSVC_DIFF_ENABLED | TSVC_DIFF_EXTERNAL))) {
      if ((o = reload_op(m, j, s, 2)))
        reload_go(o, tsvc_monitor_user_start(m->mon, s->name, reload_step, o));
    }
  }
  /* The summary goes first; failures follow, one per line. */
  char summary[256];
  snprintf(summary, sizeof summary,
           "reloaded %s: %zu added, %zu removed, %zu changed (%zu recreated), %zu unchanged",
           nc->path ? nc->path : "the config", added, removed, changed, recreated, same);
  TSVC_LOG(TSVC_LOG_INFO, NULL, "%s", summary);
  tsvc_buf_t rest = j->err;
  tsvc_buf_init(&j->err, 16 * 1024);
  tsvc_buf_addf(&j->err, "%s%s%s", summary, rest.len ? "\n" : "", rest.data ? rest.data : "");
  tsvc_buf_free(&rest);
  if (--j->pending == 0) job_done(m, j, j->failures ? TSVC_ERUNTIME : 0);
}

/* ---- public --------------------------------------------------------------- */

static char *dir_of(const char *path) {
  char *copy = strdup(path);
  if (!copy) return NULL;
  char *d = strdup(dirname(copy));
  free(copy);
  return d;
}

int tsvc_manager_new(const tsvc_manager_opts_t *opts, tsvc_manager_t **out, char *err,
                     size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!opts || !opts->config_path) return TSVC_EINVAL;
  tsvc_manager_t *m = calloc(1, sizeof *m);
  if (!m) return TSVC_ENOMEM;
  tsvc_diag_t d = {0};
  int rc = tsvc_config_load(opts->config_path, &m->cfg, &d);
  if (err && errlen) {
    tsvc_buf_t b;
    tsvc_buf_init(&b, errlen > 1 ? errlen - 1 : 1);
    for (size_t i = 0; i < d.n; i++)
      if (tsvc_buf_addf(&b, "%s%s", i ? "\n" : "", d.lines[i])) break;
    tsvc_strlcpy(err, b.data ? b.data : "", errlen);
    tsvc_buf_free(&b);
  }
  tsvc_diag_free(&d);
  if (rc) {
    free(m);
    return rc;
  }
  /* Values that must never reach a log line. */
  for (size_t i = 0; i < m->cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &m->cfg->services[i];
    for (size_t k = 0; k < s->env_len; k++)
      if (tsvc_is_secret_key(s->env[k].key)) tsvc_log_add_secret(s->env[k].value);
    for (size_t k = 0; k < s->process.env_len; k++)
      if (tsvc_is_secret_key(s->process.env[k].key)) tsvc_log_add_secret(s->process.env[k].value);
  }
  m->want = m->cfg->runtime;
  {
    char cabs[PATH_MAX];
    m->config_path = strdup(realpath(opts->config_path, cabs) ? cabs : opts->config_path);
  }
  if (opts->runtime) {
    if (strcmp(opts->runtime, "docker") == 0) m->want = TSVC_RUNTIME_DOCKER;
    else if (strcmp(opts->runtime, "process") == 0) m->want = TSVC_RUNTIME_PROCESS;
    else if (strcmp(opts->runtime, "auto") == 0) m->want = TSVC_RUNTIME_AUTO;
    else {
      if (err) snprintf(err, errlen, "unknown runtime '%s' (auto, docker, process)", opts->runtime);
      tsvc_config_free(m->cfg);
      free(m);
      return TSVC_EINVAL;
    }
  }
  char abs[PATH_MAX];
  char *dir = dir_of(realpath(opts->config_path, abs) ? abs : opts->config_path);
  m->project = dir;
  m->state_dir = opts->state_dir ? strdup(opts->state_dir) : tsvc_asprintf("%s/.tanuki", dir ? dir : ".");
  m->runtime_name = "";
  if (!m->project || !m->state_dir || !m->config_path || make_order(m)) {
    rc = TSVC_ENOMEM;
    goto err;
  }
  pthread_mutex_init(&m->mu, NULL);
  pthread_mutex_init(&m->sub_mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  uv_loop_init(&m->loop);
  uv_async_init(&m->loop, &m->wake, wake_cb);
  m->wake.data = m;
  uv_timer_init(&m->loop, &m->heartbeat);
  m->heartbeat.data = m;
  uv_timer_start(&m->heartbeat, heartbeat_cb, 0, 1000);
  atomic_store(&m->heartbeat_ms, wall_ms());
  if (pthread_create(&m->thread, NULL, loop_main, m) != 0) {
    rc = TSVC_ENOMEM;
    uv_close((uv_handle_t *)&m->wake, NULL);
    uv_close((uv_handle_t *)&m->heartbeat, NULL);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    uv_loop_close(&m->loop);
    goto err;
  }
  m->thread_started = true;
  *out = m;
  return 0;
err:
  tsvc_config_free(m->cfg);
  free(m->config_path);
  free(m->order);
  free(m->project);
  free(m->state_dir);
  free(m);
  return rc;
}

void tsvc_manager_free(tsvc_manager_t *m) {
  if (!m) return;
  if (m->thread_started) {
    post(m, job_quit, NULL, NULL, 0);
    pthread_join(m->thread, NULL);
  }
  for (size_t i = 0; i < m->ndead; i++) tsvc_monitor_free(m->dead[i]);
  free(m->dead);
  uv_loop_close(&m->loop);
  pthread_mutex_destroy(&m->mu);
  pthread_mutex_destroy(&m->sub_mu);
  pthread_cond_destroy(&m->cv);
  free(m->subs);
  free(m->order);
  tsvc_config_free(m->cfg);
  for (size_t i = 0; i < m->nold; i++) tsvc_config_free(m->old_cfgs[i]);
  free(m->old_cfgs);
  free(m->config_path);
  free(m->project);
  free(m->state_dir);
  free(m);
}

int tsvc_manager_start_services(tsvc_manager_t *m, char *err, size_t errlen) {
  return post(m, job_start_services, NULL, err, errlen);
}

int tsvc_manager_stop_services(tsvc_manager_t *m, char *err, size_t errlen) {
  return post(m, job_stop_services, NULL, err, errlen);
}

int tsvc_manager_stop_monitoring(tsvc_manager_t *m) {
  return post(m, job_stop_monitoring, NULL, NULL, 0);
}

int tsvc_manager_start(tsvc_manager_t *m, const char *name, char *err, size_t errlen) {
  return post(m, job_user_start, name, err, errlen);
}

int tsvc_manager_stop(tsvc_manager_t *m, const char *name, char *err, size_t errlen) {
  return post(m, job_user_stop, name, err, errlen);
}

int tsvc_manager_restart(tsvc_manager_t *m, const char *name, char *err, size_t errlen) {
  return post(m, job_user_restart, name, err, errlen);
}

int tsvc_manager_check(tsvc_manager_t *m, const char *name) {
  return post(m, job_check, name, NULL, 0);
}

int tsvc_manager_reload(tsvc_manager_t *m, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  /* Read and validate here, off the loop; only the swap runs on it. */
  tsvc_diag_t d = {0};
  tsvc_config_t *nc = NULL;
  int rc = tsvc_config_load(m->config_path, &nc, &d);
  if (rc) {
    if (err && errlen) {
      tsvc_buf_t b;
      tsvc_buf_init(&b, errlen > 1 ? errlen - 1 : 1);
      tsvc_buf_addf(&b, "%s: the config was not reloaded (the old one keeps running)",
                    m->config_path);
      for (size_t i = 0; i < d.n; i++) tsvc_buf_addf(&b, "\n%s", d.lines[i]);
      tsvc_strlcpy(err, b.data ? b.data : "", errlen);
      tsvc_buf_free(&b);
    }
    tsvc_diag_free(&d);
    return rc;
  }
  tsvc_diag_free(&d);
  job_t j = {.run = job_reload, .cfg = nc};
  return post_job(m, &j, err, errlen);
}

/* The current monitor, under m->mu; closed monitors live until the end. */
static tsvc_monitor_t *current(tsvc_manager_t *m) {
  pthread_mutex_lock(&m->mu);
  tsvc_monitor_t *mon = m->mon;
  pthread_mutex_unlock(&m->mu);
  return mon;
}

bool tsvc_manager_is_healthy(tsvc_manager_t *m, const char *name) {
  tsvc_monitor_t *mon = current(m);
  return mon && tsvc_monitor_is_healthy(mon, name);
}

int tsvc_manager_get_status(tsvc_manager_t *m, const char *name, tsvc_status_t *out) {
  tsvc_monitor_t *mon = current(m);
  if (!mon) {
    memset(out, 0, sizeof *out);
    return tsvc_config_service(tsvc_manager_config(m), name) ? TSVC_ESTATE : TSVC_ENOENT;
  }
  return tsvc_monitor_get_status(mon, name, out);
}

int tsvc_manager_get_all_status(tsvc_manager_t *m, tsvc_status_list_t *out) {
  tsvc_monitor_t *mon = current(m);
  if (!mon) {
    out->v = NULL;
    out->n = 0;
    return TSVC_ESTATE;
  }
  return tsvc_monitor_get_all(mon, out);
}

const char *tsvc_manager_runtime_name(tsvc_manager_t *m) { return m->runtime_name; }

const tsvc_config_t *tsvc_manager_config(tsvc_manager_t *m) {
  /* A reload swaps it on the loop; the old one lives until the end. */
  pthread_mutex_lock(&m->mu);
  const tsvc_config_t *cfg = m->cfg;
  pthread_mutex_unlock(&m->mu);
  return cfg;
}

int64_t tsvc_manager_loop_heartbeat(tsvc_manager_t *m) { return atomic_load(&m->heartbeat_ms); }
