/*
 * manager.c: the ServiceManager (docs/design.md, "The manager").
 *
 * One thread runs the libuv loop, and that thread alone owns the runtime,
 * the monitor, the services' state and the config in use. Every public
 * call from another thread is a command: one struct per kind, queued
 * under a mutex, the loop woken with uv_async_send, carried out on the loop
 * (often in several asynchronous steps) and ended by exactly one
 * completion, which the caller waits for on a condition variable (on the
 * monotonic clock). A call made on the loop thread itself would wait for
 * its own thread: it is refused with TSVC_EDEADLK.
 *
 * Readers never need the loop: statuses come from the board (immutable
 * snapshots the monitor publishes), the loop's lag and the runtime's name
 * from atomics.
 *
 * Configs are shared by reference (cfgref_t): the manager's current one,
 * the runtime's, and whatever the monitor and operations in flight began
 * with. A config replaced by a reload is freed when the last of them lets
 * go.
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

#include "common/ref.h"
#include "common/util.h"
#include "config/config.h"
#include "log/log.h"
#include "manager/diff.h"
#include "manager/conninfo.h"
#include "manager/manager.h"
#include "manager/hooks.h"
#include "manager/webhook.h"
#include "api/api_json.h"
#include "manager/plan.h"
#include "monitor/board.h"
#include "monitor/monitor.h"
#include "runtime/docker_rt.h"
#include "runtime/process.h"
#include "runtime/remote.h"
#include "tsvc.h"

/* The loop's heartbeat: how late it fires is the loop's lag. */
#define HEARTBEAT_MS 100

/* A config shared by reference. */
typedef struct {
  tsvc_ref_t ref;
  tsvc_config_t *cfg;
} cfgref_t;

typedef struct cmd_s cmd_t;

/* What a kind of command does. */
typedef struct {
  const char *name;
  /* On the loop: begin the work; cmd_finish() ends it, now or later. */
  void (*run)(tsvc_manager_t *m, cmd_t *c);
  /* Free what the command owns beyond cmd_t (NULL: nothing). */
  void (*clear)(cmd_t *c);
} cmd_kind_t;

/* What every command has: its kind, its place in the queue, and its one
   completion. Two references: the caller's and the loop's. */
struct cmd_s {
  tsvc_ref_t ref;
  const cmd_kind_t *kind;
  cmd_t *next;
  pthread_mutex_t mu;
  pthread_cond_t cv;   /* on CLOCK_MONOTONIC */
  bool done;           /* under mu: rc and err are final */
  bool finished;       /* the loop's: cmd_finish() was called */
  int64_t deadline;    /* under mu: the caller gives up at this monotonic
                          ms (0: waits for the completion) */
  int rc;
  tsvc_buf_t err;      /* for people; written by the loop before done */
};

typedef struct {
  int id;
  tsvc_change_cb cb;
  void *data;
} sub_t;

struct tsvc_manager_s {
  /* Set before the loop thread starts, then read-only. */
  char *config_path; /* absolute, for reloads */
  char *state_dir;
  char *project;
  tsvc_runtime_kind_t want; /* the runtime asked for */
  uv_loop_t loop;
  pthread_t thread;
  bool thread_started;
  tsvc_board_t *board; /* statuses, for every thread */

  /* Commands: the only thing other threads hand to the loop. */
  pthread_mutex_t qmu;
  cmd_t *head, *tail;
  bool closed;         /* under qmu: the loop ends, no command is taken */
  uv_async_t wake;

  /* Published by the loop for readers. */
  _Atomic(const char *) runtime_name;
  _Atomic int64_t heartbeat_ms;   /* wall clock of the last beat */
  _Atomic int64_t beat_mono_ms;   /* monotonic time of the last beat */
  _Atomic int64_t beat_lag_ms;    /* how late the last beat fired */
  pthread_mutex_t pub_mu;
  cfgref_t *pub_cfg;              /* under pub_mu: the config in use */

  pthread_mutex_t sub_mu;
  sub_t *subs;
  size_t nsubs;
  int next_sub;

  /* The loop's own. */
  uv_timer_t heartbeat;
  cfgref_t *cfg;      /* the config in use */
  size_t *order;      /* its services in depends_on order */
  tsvc_runtime_t *rt;
  cfgref_t *rt_cfg;   /* the config the runtime reads */
  tsvc_monitor_t *mon;
  tsvc_monitor_t **dead; /* closed monitors, freed once the loop ended */
  size_t ndead;
  cmd_t *starting;    /* start_services is going through the services */
  tsvc_hooks_t *hooks; /* hooks.on_change runs (hooks.h) */
  tsvc_webhook_t *webhook; /* hooks.webhook deliveries (webhook.h); made
                              at the first change a webhook is set for */
  bool webhook_broken;     /* could not be made: said once */
  tsvc_hook_counters_t hook_counters; /* for /metrics, from any thread */
  bool quitting;      /* quit ran: nothing new is set up */
};

/* ---- configs -------------------------------------------------------------- */

static atomic_int configs_alive; /* for tests: tsvc_manager_debug_configs() */

static void cfgref_free(tsvc_ref_t *r) {
  cfgref_t *c = (cfgref_t *)r;
  tsvc_config_free(c->cfg);
  free(c);
  atomic_fetch_sub(&configs_alive, 1);
}

/* Takes over cfg; NULL (and cfg freed) when out of memory. */
static cfgref_t *cfgref_new(tsvc_config_t *cfg) {
  cfgref_t *c = malloc(sizeof *c);
  if (!c) {
    tsvc_config_free(cfg);
    return NULL;
  }
  tsvc_ref_init(&c->ref, cfgref_free);
  c->cfg = cfg;
  atomic_fetch_add(&configs_alive, 1);
  return c;
}

static void cfgref_put(cfgref_t *c) {
  if (c) tsvc_ref_put(&c->ref);
}

static cfgref_t *cfgref_get(cfgref_t *c) {
  if (c) tsvc_ref_get(&c->ref);
  return c;
}

/* Make cfg the config in use (the loop's and the readers'). Takes over
   the caller's reference. */
static void set_config(tsvc_manager_t *m, cfgref_t *cfg) {
  cfgref_t *old = m->cfg;
  m->cfg = cfg;
  pthread_mutex_lock(&m->pub_mu);
  cfgref_t *old_pub = m->pub_cfg;
  m->pub_cfg = cfgref_get(cfg);
  pthread_mutex_unlock(&m->pub_mu);
  cfgref_put(old_pub);
  cfgref_put(old);
}

/* ---- commands ------------------------------------------------------------- */

static void cmd_free(tsvc_ref_t *r) {
  cmd_t *c = (cmd_t *)r;
  if (c->kind->clear) c->kind->clear(c);
  tsvc_buf_free(&c->err);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}

/* A command of `size` bytes (its struct, which begins with a cmd_t),
   zeroed. NULL when out of memory. */
static void *cmd_new(const cmd_kind_t *kind, size_t size) {
  cmd_t *c = calloc(1, size);
  if (!c) return NULL;
  tsvc_ref_init(&c->ref, cmd_free);
  c->kind = kind;
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  tsvc_buf_init(&c->err, 16 * 1024);
  return c;
}

static void cmd_errf(cmd_t *c, const char *fmt, ...) TSVC_PRINTF(2, 3);
static void cmd_errf(cmd_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (c->err.len) tsvc_buf_add(&c->err, "\n", 1);
  tsvc_buf_vaddf(&c->err, fmt, ap);
  va_end(ap);
}

/* The one completion of a command, on the loop: the caller wakes up. */
static void cmd_finish(cmd_t *c, int rc) {
  if (c->finished) return; /* never twice (a bug if it were asked) */
  c->finished = true;
  pthread_mutex_lock(&c->mu);
  c->rc = rc;
  c->done = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  tsvc_ref_put(&c->ref); /* the loop's */
}

/* For commands that learn their deadline on the loop (a check: its
   probe's timeout). */
static void cmd_set_deadline(cmd_t *c, int64_t ms_from_now) {
  pthread_mutex_lock(&c->mu);
  c->deadline = tsvc_mono_ms() + ms_from_now;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static bool on_loop_thread(tsvc_manager_t *m) {
  return m->thread_started && pthread_equal(pthread_self(), m->thread);
}

/* Hand c to the loop and wait for its completion. Returns its rc, with its
   message in err; TSVC_EDEADLK on the loop's own thread, TSVC_ECANCELED
   once the loop has ended, TSVC_ETIMEDOUT past a deadline the loop set.
   Takes over the caller's reference (and frees c when the loop is done). */
static int submit(tsvc_manager_t *m, cmd_t *c, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  int rc = 0;
  if (on_loop_thread(m)) {
    rc = TSVC_EDEADLK;
    if (err)
      snprintf(err, errlen, "%s: called on the monitor's own thread, which would wait for itself",
               c->kind->name);
  } else {
    pthread_mutex_lock(&m->qmu);
    if (m->closed) {
      rc = TSVC_ECANCELED;
    } else {
      tsvc_ref_get(&c->ref); /* the loop's */
      if (m->tail) m->tail->next = c;
      else m->head = c;
      m->tail = c;
    }
    pthread_mutex_unlock(&m->qmu);
    if (rc && err) snprintf(err, errlen, "the monitor has stopped");
  }
  if (rc) {
    tsvc_ref_put(&c->ref);
    return rc;
  }
  uv_async_send(&m->wake);
  pthread_mutex_lock(&c->mu);
  while (!c->done) {
    if (!c->deadline) {
      pthread_cond_wait(&c->cv, &c->mu);
      continue;
    }
    struct timespec ts = {.tv_sec = (time_t)(c->deadline / 1000),
                          .tv_nsec = (long)(c->deadline % 1000) * 1000000L};
    if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0 && !c->done) break;
  }
  if (c->done) {
    rc = c->rc;
    if (err && errlen) tsvc_strlcpy(err, c->err.data ? c->err.data : "", errlen);
  } else {
    rc = TSVC_ETIMEDOUT;
    if (err) snprintf(err, errlen, "no answer in time");
  }
  pthread_mutex_unlock(&c->mu);
  tsvc_ref_put(&c->ref);
  return rc;
}

static void wake_cb(uv_async_t *a) {
  tsvc_manager_t *m = a->data;
  for (;;) {
    pthread_mutex_lock(&m->qmu);
    cmd_t *c = m->closed ? NULL : m->head;
    if (c) {
      m->head = c->next;
      if (!m->head) m->tail = NULL;
      c->next = NULL;
    }
    pthread_mutex_unlock(&m->qmu);
    if (!c) return;
    c->kind->run(m, c);
  }
}

static void heartbeat_cb(uv_timer_t *t) {
  tsvc_manager_t *m = t->data;
  int64_t now = tsvc_mono_ms(), last = atomic_load(&m->beat_mono_ms);
  int64_t late = now - last - HEARTBEAT_MS;
  atomic_store(&m->beat_lag_ms, late > 0 ? late : 0);
  atomic_store(&m->beat_mono_ms, now);
  atomic_store(&m->heartbeat_ms, tsvc_wall_ms());
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
      .time_ms = tsvc_wall_ms(),
      .failures = ev->failures,
      .retries = ev->retries,
      .restarts = ev->restarts,
      .max_restarts = ev->max_restarts,
  };
  pthread_mutex_lock(&m->sub_mu);
  for (size_t i = 0; i < m->nsubs; i++) m->subs[i].cb(&c, m->subs[i].data);
  pthread_mutex_unlock(&m->sub_mu);
  /* hooks.on_change: the top level's, then the service's own; started (or
     queued) here, never waited for. */
  if (m->hooks && !m->quitting && m->cfg) {
    const tsvc_config_t *cfg = m->cfg->cfg;
    const tsvc_service_conf_t *svc = tsvc_config_service(cfg, ev->service);
    tsvc_hooks_on_change(m->hooks, &cfg->hooks, ev->service, ev->from, ev->to, ev->reason,
                         c.time_ms);
    if (svc)
      tsvc_hooks_on_change(m->hooks, &svc->hooks, ev->service, ev->from, ev->to, ev->reason,
                           c.time_ms);
    /* hooks.webhook: the same two, each POSTed the event as GET /v1/events
       streams it; queued here, delivered from the loop. */
    const tsvc_hooks_conf_t *wh[2] = {&cfg->hooks, svc ? &svc->hooks : NULL};
    char *body = NULL;
    for (int i = 0; i < 2; i++) {
      if (!wh[i] || !wh[i]->webhook) continue;
      if (!m->webhook && !m->webhook_broken) {
        char err[256] = "";
        if (tsvc_webhook_new(&m->loop, &m->hook_counters, &m->webhook, err, sizeof err)) {
          m->webhook_broken = true;
          TSVC_LOG(TSVC_LOG_ERROR, NULL, "hooks.webhook: no webhook is sent: %s",
                   err[0] ? err : "out of memory");
        }
      }
      if (!m->webhook) break;
      if (!body) {
        json_t *j = tsvc_api_json_change(&c);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!body) break;
      }
      tsvc_webhook_post(m->webhook, wh[i]->webhook, wh[i]->webhook_timeout, ev->service, body);
    }
    free(body);
  }
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
  tsvc_monitor_t **v = realloc(m->dead, (m->ndead + 1) * sizeof *v);
  if (v) {
    m->dead = v;
    m->dead[m->ndead++] = m->mon;
  } /* else: leaked rather than freed while its handles close */
  m->mon = NULL;
}

static int make_order(tsvc_manager_t *m) {
  size_t n = m->cfg->cfg->nservices;
  size_t *order = calloc(n ? n : 1, sizeof *order);
  if (!order) return TSVC_ENOMEM;
  tsvc_config_order(m->cfg->cfg, order);
  free(m->order);
  m->order = order;
  return 0;
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

/* ---- start_services --------------------------------------------------------- */

typedef struct {
  cmd_t c;
  tsvc_manager_t *m;
  unsigned char *phase; /* per service: 0 waiting, 1 being started, 2 done
                           (started, failed, or nothing to start) */
  int pending;          /* starts in flight */
  int failures;
} cmd_start_all_t;

static void clear_start_all(cmd_t *c) { free(((cmd_start_all_t *)c)->phase); }

/* One start in flight. */
typedef struct {
  cmd_start_all_t *c;
  const char *name;
  size_t idx;
} start_ctx_t;

static void start_ready(tsvc_manager_t *m, cmd_start_all_t *c);

static void start_ended_cb(int status, const char *msg, void *data) {
  start_ctx_t *x = data;
  cmd_start_all_t *c = x->c;
  if (status) {
    c->failures++;
    cmd_errf(&c->c, "%s: %s", x->name, msg && *msg ? msg : tsvc_strerror(status));
  }
  c->phase[x->idx] = 2;
  c->pending--;
  free(x);
  start_ready(c->m, c);
}

/* Have the starts of every service s depends on ended? */
static bool deps_ended(const tsvc_config_t *cfg, const cmd_start_all_t *c,
                       const tsvc_service_conf_t *s) {
  for (size_t d = 0; d < s->depends_on.n; d++)
    for (size_t x = 0; x < cfg->nservices; x++)
      if (strcmp(cfg->services[x].name, s->depends_on.v[d]) == 0 && c->phase[x] != 2)
        return false;
  return true;
}

/* Start the enabled services in depends_on order, each through the
   monitor (so it begins in its grace period): each one as soon as the
   starts of the services it depends on have ended (well or not), every
   other one at once, so that a slow start (a long image pull) delays only
   the services that depend on it. Called again as each start ends (never
   inside the call that began it: the monitor answers from the loop); the
   command ends when every start has ended. */
static void start_ready(tsvc_manager_t *m, cmd_start_all_t *c) {
  const tsvc_config_t *cfg = m->cfg->cfg;
  size_t n = cfg->nservices;
  m->starting = &c->c;
  bool again = m->mon != NULL;
  while (again) {
    again = false;
    for (size_t k = 0; k < n; k++) {
      size_t i = m->order[k];
      const tsvc_service_conf_t *s = &cfg->services[i];
      if (c->phase[i] != 0 || !deps_ended(cfg, c, s)) continue;
      again = true; /* a change: services after it may be ready now */
      c->phase[i] = 2;
      if (!s->enabled) continue;
      if (s->external) {
        /* Only watched: checked from now on, never started by us. */
        tsvc_monitor_started(m->mon, s->name);
        continue;
      }
      start_ctx_t *x = malloc(sizeof *x);
      if (!x) {
        c->failures++;
        cmd_errf(&c->c, "%s: out of memory", s->name);
        continue;
      }
      *x = (start_ctx_t){c, s->name, i};
      int rc = tsvc_monitor_user_start(m->mon, s->name, start_ended_cb, x);
      if (rc == 0) {
        c->phase[i] = 1;
        c->pending++;
        continue; /* start_ended_cb carries on */
      }
      free(x);
      if (rc == TSVC_ERUNNING) continue; /* adopted: already running */
      c->failures++;
      cmd_errf(&c->c, "%s: %s", s->name, tsvc_strerror(rc));
    }
  }
  if (c->pending) return;
  if (!m->mon) {
    for (size_t i = 0; i < n; i++)
      if (c->phase[i] == 0) {
        c->failures++;
        cmd_errf(&c->c, "monitoring stopped while the services were being started");
        break;
      }
  }
  m->starting = NULL;
  cmd_finish(&c->c, c->failures ? TSVC_ERUNTIME : 0);
}

static void begin_monitoring(tsvc_manager_t *m, cmd_start_all_t *c) {
  tsvc_monitor_t *mon;
  int rc = tsvc_monitor_new(&m->loop, m->rt, m->board, &mon);
  if (rc) {
    cmd_finish(&c->c, rc);
    return;
  }
  tsvc_monitor_set_observer(mon, observer, m);
  tsvc_monitor_set_timer_grid(mon, m->cfg->cfg->monitor.timer_grid);
  m->mon = mon;
  const tsvc_config_t *cfg = m->cfg->cfg;
  for (size_t i = 0; i < cfg->nservices; i++) {
    rc = tsvc_monitor_add(mon, &cfg->services[i], &m->cfg->ref);
    if (rc) {
      cmd_errf(&c->c, "%s: %s", cfg->services[i].name, tsvc_strerror(rc));
      retire_monitor(m);
      cmd_finish(&c->c, rc);
      return;
    }
  }
  rc = tsvc_monitor_watch_runtime(mon);
  if (rc) TSVC_LOG(TSVC_LOG_WARN, NULL, "cannot watch runtime events: %s", tsvc_strerror(rc));
  if (!(c->phase = calloc(cfg->nservices ? cfg->nservices : 1, 1))) {
    cmd_errf(&c->c, "out of memory");
    cmd_finish(&c->c, TSVC_ENOMEM);
    return;
  }
  start_ready(m, c);
}

static int make_runtime(tsvc_manager_t *m, tsvc_runtime_kind_t kind, cmd_t *c) {
  char err[512] = "";
  int rc;
  const char *name = kind == TSVC_RUNTIME_DOCKER ? "docker" : "process";
  if (kind == TSVC_RUNTIME_DOCKER)
    rc = tsvc_docker_runtime_new(&m->loop, m->cfg->cfg, m->config_path, &m->rt, err, sizeof err);
  else {
    /* Data and sockets outside the checkout as root (process.h). */
    tsvc_process_layout_t lay;
    rc = tsvc_process_layout_init(&lay, m->config_path, m->state_dir, geteuid() == 0, err,
                                  sizeof err);
    if (!rc) rc = tsvc_process_runtime_new(&m->loop, m->cfg->cfg, &lay, &m->rt, err, sizeof err);
  }
  if (rc) {
    cmd_errf(c, "cannot set up the %s runtime: %s", name, err[0] ? err : tsvc_strerror(rc));
    return rc;
  }
  /* The runtime reads the config it was given until reconfigured. */
  m->rt_cfg = cfgref_get(m->cfg);
  atomic_store(&m->runtime_name, name);
  return 0;
}

typedef struct {
  tsvc_manager_t *m;
  cmd_start_all_t *c;
} ping_ctx_t;

static void ping_cb(int status, const char *msg, void *data) {
  ping_ctx_t *p = data;
  tsvc_manager_t *m = p->m;
  cmd_start_all_t *c = p->c;
  free(p);
  const char *host = m->cfg->cfg->docker.host;
  tsvc_runtime_kind_t kind;
  if (m->quitting) {
    /* The manager is going away: no runtime, no monitor any more. */
    cmd_errf(&c->c, "the monitor has stopped");
    cmd_finish(&c->c, TSVC_ECANCELED);
    return;
  }
  /* auto falls back to processes only when no engine was named (remote.h). */
  if (tsvc_runtime_choose(m->want, m->cfg->cfg->docker.host_named, status, &kind) != 0) {
    /* (The client's message names the engine already.) */
    bool named = msg && strstr(msg, host);
    cmd_errf(&c->c, "%s%s%s%s%s", named ? "" : "the docker engine at ", named ? "" : host,
             named ? "" : " cannot be reached: ", msg && *msg ? msg : "no answer",
             m->want == TSVC_RUNTIME_AUTO
                 ? " (runtime auto runs local processes only when no engine is named: "
                   "docker.host and $DOCKER_HOST unset)"
                 : "");
    cmd_finish(&c->c, TSVC_EUNREACH);
    return;
  }
  if (kind == TSVC_RUNTIME_DOCKER)
    TSVC_LOG(TSVC_LOG_INFO, NULL, "runtime docker: the daemon answers at %s", host);
  else
    TSVC_LOG(TSVC_LOG_INFO, NULL,
             "runtime process: no docker daemon at %s (%s); services run as local processes",
             host, msg && *msg ? msg : "no answer");
  if (m->rt || make_runtime(m, kind, &c->c) == 0) begin_monitoring(m, c);
  else cmd_finish(&c->c, TSVC_ERUNTIME);
}

static void run_start_all(tsvc_manager_t *m, cmd_t *cmd) {
  cmd_start_all_t *c = (cmd_start_all_t *)cmd;
  c->m = m;
  if (m->mon) {
    cmd_finish(cmd, 0); /* already monitoring */
    return;
  }
  if (m->starting) {
    cmd_errf(cmd, "services are being started already");
    cmd_finish(cmd, TSVC_EBUSY);
    return;
  }
  if (m->rt) {
    begin_monitoring(m, c);
    return;
  }
  if (m->want == TSVC_RUNTIME_PROCESS) {
    int rc = make_runtime(m, TSVC_RUNTIME_PROCESS, cmd);
    if (rc) {
      cmd_finish(cmd, rc);
      return;
    }
    TSVC_LOG(TSVC_LOG_INFO, NULL, "runtime process: services run as local processes");
    begin_monitoring(m, c);
    return;
  }
  /* docker, or auto: ask the daemon first. */
  ping_ctx_t *p = malloc(sizeof *p);
  char err[1024] = "";
  int rc = p ? tsvc_docker_probe_engine(&m->loop, m->cfg->cfg, ping_cb, p, err, sizeof err)
             : TSVC_ENOMEM;
  if (rc == TSVC_ENOMEM) {
    free(p);
    cmd_errf(cmd, "cannot ask the docker daemon: %s", tsvc_strerror(rc));
    cmd_finish(cmd, rc);
    return;
  }
  *p = (ping_ctx_t){m, c};
  /* No client for the engine (a certificate file missing, no ssh): as an
     engine that does not answer, with the reason (the callback was not and
     will not be called). */
  if (rc) ping_cb(TSVC_EUNREACH, err[0] ? err : tsvc_strerror(rc), p);
}

static const cmd_kind_t START_ALL = {"start_services", run_start_all, clear_start_all};

/* ---- stop_services, stop_monitoring ----------------------------------------------- */

typedef struct {
  cmd_t c;
  int pending;  /* stops sent, not yet answered */
  int failures;
} cmd_stop_all_t;

typedef struct {
  cmd_stop_all_t *c;
  const char *name;
  cfgref_t *keep;
} stop_ctx_t;

static void stop_one_done(int status, const char *msg, void *data) {
  stop_ctx_t *x = data;
  cmd_stop_all_t *c = x->c;
  if (status) {
    c->failures++;
    cmd_errf(&c->c, "%s: %s", x->name, msg && *msg ? msg : tsvc_strerror(status));
  }
  cfgref_put(x->keep);
  free(x);
  if (--c->pending == 0) cmd_finish(&c->c, c->failures ? TSVC_ERUNTIME : 0);
}

static void run_stop_all(tsvc_manager_t *m, cmd_t *cmd) {
  cmd_stop_all_t *c = (cmd_stop_all_t *)cmd;
  /* Monitoring stops first, so nothing restarts what we stop. */
  retire_monitor(m);
  const tsvc_config_t *cfg = m->cfg->cfg;
  for (size_t k = cfg->nservices; m->rt && k-- > 0;) {
    const tsvc_service_conf_t *s = &cfg->services[m->order[k]];
    if (!s->enabled || s->external) continue;
    stop_ctx_t *x = malloc(sizeof *x);
    int rc = TSVC_ENOMEM;
    if (x) {
      *x = (stop_ctx_t){c, s->name, cfgref_get(m->cfg)};
      rc = m->rt->ops->stop(m->rt, s, stop_one_done, x);
    }
    if (rc) {
      if (x) cfgref_put(x->keep);
      free(x);
      c->failures++;
      cmd_errf(cmd, "%s: %s", s->name, tsvc_strerror(rc));
      continue;
    }
    /* Answers come from the loop, never inside stop(): counting as we go
       needs no hold. */
    c->pending++;
    TSVC_LOG(TSVC_LOG_INFO, s->name, "stopping");
  }
  if (c->pending == 0) cmd_finish(cmd, c->failures ? TSVC_ERUNTIME : 0);
}

static const cmd_kind_t STOP_ALL = {"stop_services", run_stop_all, NULL};

static void run_stop_monitoring(tsvc_manager_t *m, cmd_t *c) {
  retire_monitor(m);
  cmd_finish(c, 0);
}

static const cmd_kind_t STOP_MONITORING = {"stop_monitoring", run_stop_monitoring, NULL};

/* ---- one service: start, stop, restart ---------------------------------------- */

typedef enum { OP_START, OP_STOP, OP_RESTART } one_op_t;

typedef struct {
  cmd_t c;
  char *name;
  one_op_t op;
} cmd_one_t;

static void clear_one(cmd_t *c) { free(((cmd_one_t *)c)->name); }

/* Why a person's operation was refused, naming the state the service is
   really in (the API answers 409 with it). */
static void refusal(tsvc_manager_t *m, cmd_t *c, const char *name, int rc) {
  tsvc_state_t st = TSVC_STATE_UNKNOWN;
  tsvc_health_op_t op = TSVC_OP_NONE;
  if (rc != TSVC_ENOENT && tsvc_monitor_state(m->mon, name, &st, &op) != 0) rc = TSVC_ENOENT;
  const char *state = tsvc_state_name(st);
  switch (rc) {
  case TSVC_ENOENT: cmd_errf(c, "no service named '%s'", name); break;
  case TSVC_EBUSY:
    cmd_errf(c, "%s is %s: %s is in progress", name, state,
             op == TSVC_OP_START     ? "a start"
             : op == TSVC_OP_STOP    ? "a stop"
             : op == TSVC_OP_RESTART ? "a restart"
                                     : "another operation");
    break;
  case TSVC_ERUNNING:
    cmd_errf(c, "%s is %s, not stopped: start applies to a stopped service (use restart)", name,
             state);
    break;
  case TSVC_EUNREACH: cmd_errf(c, "%s is %s: the runtime cannot be reached", name, state); break;
  default: cmd_errf(c, "%s: %s", name, tsvc_strerror(rc)); break;
  }
}

static void one_done(int status, const char *msg, void *data) {
  cmd_t *c = data;
  if (status) cmd_errf(c, "%s", msg && *msg ? msg : tsvc_strerror(status));
  cmd_finish(c, status);
}

/* A service the monitor may act on for a person: 0, or the refusal. */
static int actionable(tsvc_manager_t *m, cmd_t *c, const char *name) {
  if (!m->mon) {
    cmd_errf(c, "services are not being monitored (start them first)");
    return TSVC_ENOTMONITORED;
  }
  const tsvc_service_conf_t *svc = tsvc_config_service(m->cfg->cfg, name);
  if (svc && svc->external) {
    cmd_errf(c, "%s is external: only watched, never started, stopped or restarted", name);
    return TSVC_EEXTERNAL;
  }
  return 0;
}

static void run_one(tsvc_manager_t *m, cmd_t *cmd) {
  cmd_one_t *c = (cmd_one_t *)cmd;
  int rc = actionable(m, cmd, c->name);
  if (rc) {
    cmd_finish(cmd, rc);
    return;
  }
  int (*fn)(tsvc_monitor_t *, const char *, tsvc_mon_done_cb, void *) =
      c->op == OP_START  ? tsvc_monitor_user_start
      : c->op == OP_STOP ? tsvc_monitor_user_stop
                         : tsvc_monitor_user_restart;
  rc = fn(m->mon, c->name, one_done, cmd);
  if (rc) {
    refusal(m, cmd, c->name, rc);
    cmd_finish(cmd, rc);
  }
}

static const cmd_kind_t ONE = {"service operation", run_one, clear_one};

/* ---- check ------------------------------------------------------------------ */

typedef struct {
  cmd_t c;
  tsvc_manager_t *m;
  char *name;
  tsvc_check_record_t rec; /* the verdict */
} cmd_check_t;

static void clear_check(cmd_t *c) {
  cmd_check_t *k = (cmd_check_t *)c;
  free(k->name);
  free(k->rec.message);
  free(k->rec.output);
  free(k->rec.probe_address);
}

/* "NAME is not checked now: it is STATE (not running: WHY)". */
static void not_checked(tsvc_manager_t *m, cmd_t *c, const char *name, const char *what) {
  tsvc_snap_t *s = NULL;
  if (tsvc_board_get(m->board, name, &s) != 0) {
    cmd_errf(c, "%s %s", name, what);
    return;
  }
  tsvc_status_t st;
  tsvc_snap_status(s, &st);
  bool why = !st.running && st.last_error[0];
  cmd_errf(c, "%s %s: it is %s%s%s%s", name, what, tsvc_state_name(st.state),
           why ? " (not running: " : "", why ? st.last_error : "", why ? ")" : "");
  tsvc_snap_release(s);
}

/* A check's verdict: the caller's. */
static void check_done(int status, const tsvc_check_record_t *rec, void *data) {
  cmd_check_t *c = data;
  if (!status) {
    c->rec = *rec;
    c->rec.message = strdup(rec->message ? rec->message : "");
    c->rec.output = rec->output ? strdup(rec->output) : NULL;
    c->rec.probe_address = rec->probe_address ? strdup(rec->probe_address) : NULL;
    if (!c->rec.message) status = TSVC_ENOMEM;
  } else if (status == TSVC_ENOTCHECKED) {
    /* A restart, a stop or the runtime going away came first. */
    not_checked(c->m, &c->c, c->name, "was not checked (the check was cancelled)");
  } else if (status == TSVC_ECANCELED) {
    cmd_errf(&c->c, "the monitor stopped watching %s", c->name);
  }
  cmd_finish(&c->c, status);
}

static void run_check(tsvc_manager_t *m, cmd_t *cmd) {
  cmd_check_t *c = (cmd_check_t *)cmd;
  c->m = m;
  if (!m->mon) {
    cmd_errf(cmd, "services are not being monitored (start them first)");
    cmd_finish(cmd, TSVC_ENOTMONITORED);
    return;
  }
  const tsvc_service_conf_t *svc = tsvc_config_service(m->cfg->cfg, c->name);
  int rc = svc ? tsvc_monitor_check(m->mon, c->name, check_done, c) : TSVC_ENOENT;
  if (rc == TSVC_ENOENT) cmd_errf(cmd, "no service named '%s'", c->name);
  else if (rc == TSVC_ENOTCHECKED) not_checked(m, cmd, c->name, "is not checked now");
  else if (rc) cmd_errf(cmd, "%s: %s", c->name, tsvc_strerror(rc));
  if (rc) {
    cmd_finish(cmd, rc);
    return;
  }
  /* The verdict comes within the probe's timeout, or twice that when a
     check was in flight (ours follows it): the caller gives up after that
     and 2 s more, the loop being late. */
  cmd_set_deadline(cmd, 2 * svc->healthcheck.timeout + 2000);
}

static const cmd_kind_t CHECK = {"check", run_check, clear_check};

/* ---- quit, and the test hook -------------------------------------------------- */

static void run_quit(tsvc_manager_t *m, cmd_t *c) {
  m->quitting = true;
  retire_monitor(m);
  tsvc_hooks_close(m->hooks); /* what runs is killed; freed once closed */
  m->hooks = NULL;
  tsvc_webhook_close(m->webhook); /* what is in flight is cancelled */
  m->webhook = NULL;
  if (m->rt) {
    /* Operations in flight are answered from the loop, which runs until
       the runtime's handles are closed. */
    tsvc_runtime_free(m->rt);
    m->rt = NULL;
  }
  uv_close((uv_handle_t *)&m->heartbeat, NULL);
  uv_close((uv_handle_t *)&m->wake, NULL);
  /* No command is taken from now on: those queued are cancelled. */
  pthread_mutex_lock(&m->qmu);
  m->closed = true;
  cmd_t *rest = m->head;
  m->head = m->tail = NULL;
  pthread_mutex_unlock(&m->qmu);
  while (rest) {
    cmd_t *next = rest->next;
    cmd_errf(rest, "the monitor has stopped");
    cmd_finish(rest, TSVC_ECANCELED);
    rest = next;
  }
  cmd_finish(c, 0);
}

static const cmd_kind_t QUIT = {"quit", run_quit, NULL};

typedef struct {
  cmd_t c;
  int64_t ms;
} cmd_stall_t;

static void run_stall(tsvc_manager_t *m, cmd_t *cmd) {
  (void)m;
  int64_t ms = ((cmd_stall_t *)cmd)->ms;
  cmd_finish(cmd, 0); /* the caller goes on while the loop is held */
  int64_t end = tsvc_mono_ms() + ms;
  for (int64_t now = tsvc_mono_ms(); now < end; now = tsvc_mono_ms()) usleep((useconds_t)(end - now) * 1000);
}

static const cmd_kind_t STALL = {"stall", run_stall, NULL};

/* ---- reload (SIGHUP) ------------------------------------------------------ */

typedef struct {
  cmd_t c;
  cfgref_t *cfg;   /* the new config (until swapped in) */
  cfgref_t *old;   /* the config it replaces, until the plan is applied */
  tsvc_plan_t plan;
  int pending;     /* steps in flight */
  int failures;
} cmd_reload_t;

static void clear_reload(cmd_t *cmd) {
  cmd_reload_t *c = (cmd_reload_t *)cmd;
  cfgref_put(c->cfg);
  cfgref_put(c->old);
  tsvc_plan_free(&c->plan);
}

/* One service's part of a reload, on its own asynchronous steps. */
typedef struct {
  tsvc_manager_t *m;
  cmd_reload_t *c;
  const tsvc_service_conf_t *svc;
  cfgref_t *keep; /* svc's config */
  int step;       /* recreate: 0 stopping, 1 removing, 2 starting */
} step_t;

static void reload_end(cmd_reload_t *c) {
  if (c->pending) return;
  cfgref_put(c->old); /* the monitor and the runtime hold what they use */
  c->old = NULL;
  cmd_finish(&c->c, c->failures ? TSVC_ERUNTIME : 0);
}

/* A step is over: its failure noted (ERUNNING: already running, as
   wanted), its memory freed. */
static void step_free(step_t *o, int status, const char *msg) {
  cmd_reload_t *c = o->c;
  if (status && status != TSVC_ERUNNING) {
    c->failures++;
    cmd_errf(&c->c, "%s: %s", o->svc->name, msg && *msg ? msg : tsvc_strerror(status));
    TSVC_LOG(TSVC_LOG_ERROR, o->svc->name, "reload: %s",
             msg && *msg ? msg : tsvc_strerror(status));
  }
  cfgref_put(o->keep);
  free(o);
}

/* The end of a step in flight (from the loop): the reload ends with the
   last. */
static void step_end(step_t *o, int status, const char *msg) {
  cmd_reload_t *c = o->c;
  step_free(o, status, msg);
  c->pending--;
  reload_end(c);
}

static void step_cb(int status, const char *msg, void *data);

/* The first operation of a step, begun by run_reload: rc its answer. In
   flight, it counts until step_cb ends it; refused at once, it was never
   in flight (its callback is never called). */
static void step_go(step_t *o, int rc) {
  if (rc) {
    step_free(o, rc, NULL);
    return;
  }
  o->c->pending++;
}

/* The next operation of a step in flight, begun by step_cb: refused at
   once, the step ends there. */
static void step_next(step_t *o, int rc) {
  if (rc) step_end(o, rc, NULL);
}

static void step_cb(int status, const char *msg, void *data) {
  step_t *o = data;
  tsvc_manager_t *m = o->m;
  if (status || o->step == 2 || !m->mon) {
    step_end(o, status, msg);
    return;
  }
  if (o->step == 0) {
    o->step = 1;
    if (m->rt && m->rt->ops->remove) {
      step_next(o, m->rt->ops->remove(m->rt, o->svc, step_cb, o));
      return;
    }
  }
  o->step = 2;
  step_next(o, tsvc_monitor_user_start(m->mon, o->svc->name, step_cb, o));
}

static step_t *step_new(tsvc_manager_t *m, cmd_reload_t *c, const tsvc_service_conf_t *svc,
                        cfgref_t *keep, int step) {
  step_t *o = malloc(sizeof *o);
  if (!o) {
    c->failures++;
    cmd_errf(&c->c, "%s: out of memory", svc->name);
    return NULL;
  }
  *o = (step_t){m, c, svc, cfgref_get(keep), step};
  return o;
}

/* Apply one step of the plan. */
static void apply_step(tsvc_manager_t *m, cmd_reload_t *c, const tsvc_plan_step_t *st) {
  const tsvc_service_conf_t *s = st->svc;
  tsvc_monitor_t *mon = m->mon;
  step_t *o;
  switch (st->action) {
  case TSVC_PLAN_DROP:
  case TSVC_PLAN_DROP_STOP:
    TSVC_LOG(TSVC_LOG_INFO, s->name, "reload: removed from the config%s",
             st->action == TSVC_PLAN_DROP_STOP ? "; stopping it" : "");
    if (mon) tsvc_monitor_remove(mon, s->name);
    if (st->action == TSVC_PLAN_DROP || !m->rt) return;
    if ((o = step_new(m, c, s, c->old, 2)))
      step_go(o, m->rt->ops->stop(m->rt, s, step_cb, o));
    return;
  case TSVC_PLAN_ADD:
  case TSVC_PLAN_ADD_START:
  case TSVC_PLAN_ADD_WATCH: {
    TSVC_LOG(TSVC_LOG_INFO, s->name, "reload: added to the config%s",
             st->action == TSVC_PLAN_ADD_START   ? "; starting it"
             : st->action == TSVC_PLAN_ADD_WATCH ? "; watching it"
                                                 : "");
    if (!mon) return;
    int rc = tsvc_monitor_add(mon, s, &m->cfg->ref);
    if (rc) {
      c->failures++;
      cmd_errf(&c->c, "%s: %s", s->name, tsvc_strerror(rc));
      return;
    }
    if (st->action == TSVC_PLAN_ADD_WATCH) tsvc_monitor_started(mon, s->name);
    if (st->action == TSVC_PLAN_ADD_START && (o = step_new(m, c, s, m->cfg, 2)))
      step_go(o, tsvc_monitor_user_start(mon, s->name, step_cb, o));
    return;
  }
  default: break;
  }
  /* A kept service: the monitor lets go of the old config's conf, always. */
  if (mon) {
    int rc = tsvc_monitor_update(mon, s, &m->cfg->ref);
    if (rc) {
      c->failures++;
      cmd_errf(&c->c, "%s: %s", s->name, tsvc_strerror(rc));
      return;
    }
  }
  if (st->action == TSVC_PLAN_KEEP) return;
  unsigned d = st->diff;
  char what[96];
  snprintf(what, sizeof what, "%s%s%s%s", d & TSVC_DIFF_SPEC ? ", container spec" : "",
           d & TSVC_DIFF_KNOBS ? ", healthcheck/restart" : "",
           d & TSVC_DIFF_ENABLED ? ", enabled" : "", d & TSVC_DIFF_EXTERNAL ? ", external" : "");
  TSVC_LOG(TSVC_LOG_INFO, s->name, "reload: changed (%s)%s", what + 2,
           st->action == TSVC_PLAN_RECREATE ? "; recreating it" : "");
  if (!mon) return;
  switch (st->action) {
  case TSVC_PLAN_STOP:
    if ((o = step_new(m, c, s, m->cfg, 2)))
      step_go(o, tsvc_monitor_user_stop(mon, s->name, step_cb, o));
    break;
  case TSVC_PLAN_WATCH: tsvc_monitor_started(mon, s->name); break;
  case TSVC_PLAN_RECREATE:
    if ((o = step_new(m, c, s, m->cfg, 0)))
      step_go(o, tsvc_monitor_user_stop(mon, s->name, step_cb, o));
    break;
  case TSVC_PLAN_START:
    if ((o = step_new(m, c, s, m->cfg, 2)))
      step_go(o, tsvc_monitor_user_start(mon, s->name, step_cb, o));
    break;
  default: break;
  }
}

/*
 * Plan the reload from the config in use to c->cfg (pure: plan.c), swap
 * the configs, then apply the plan: each step begins at once, the command
 * ends when the last one ends.
 */
static void run_reload(tsvc_manager_t *m, cmd_t *cmd) {
  cmd_reload_t *c = (cmd_reload_t *)cmd;
  const tsvc_config_t *old = m->cfg->cfg, *nc = c->cfg->cfg;
  char why[512];
  if (m->starting) {
    cmd_errf(cmd, "services are still being started; reload again once they are");
    cmd_finish(cmd, TSVC_EBUSY);
    return;
  }
  if (m->rt && !tsvc_config_reloadable(old, nc, why, sizeof why)) {
    cmd_errf(cmd, "%s", why);
    cmd_finish(cmd, TSVC_ECONFIG);
    return;
  }
  size_t *order = calloc(nc->nservices ? nc->nservices : 1, sizeof *order);
  if (!order || tsvc_plan_reload(old, nc, &c->plan)) {
    free(order);
    cmd_errf(cmd, "out of memory");
    cmd_finish(cmd, TSVC_ENOMEM);
    return;
  }
  tsvc_config_order(nc, order);
  free(m->order);
  m->order = order;
  c->old = cfgref_get(m->cfg);
  set_config(m, c->cfg);
  c->cfg = NULL;
  register_secrets(nc);
  if (m->rt && m->rt->ops->reconfigure) {
    m->rt->ops->reconfigure(m->rt, nc);
    cfgref_put(m->rt_cfg);
    m->rt_cfg = cfgref_get(m->cfg);
  }
  if (m->mon) tsvc_monitor_set_timer_grid(m->mon, nc->monitor.timer_grid);
  /* Callbacks never come inside the calls that begin the steps: only
     those in flight count, and none ends before this loop does. */
  for (size_t i = 0; i < c->plan.n; i++) apply_step(m, c, &c->plan.v[i]);
  /* The summary goes first; failures follow, one per line. */
  char summary[256];
  snprintf(summary, sizeof summary,
           "reloaded %s: %zu added, %zu removed, %zu changed (%zu recreated), %zu unchanged",
           nc->path ? nc->path : "the config", c->plan.added, c->plan.removed, c->plan.changed,
           c->plan.recreated, c->plan.same);
  TSVC_LOG(TSVC_LOG_INFO, NULL, "%s", summary);
  tsvc_buf_t rest = cmd->err;
  tsvc_buf_init(&cmd->err, 16 * 1024);
  tsvc_buf_addf(&cmd->err, "%s%s%s", summary, rest.len ? "\n" : "", rest.data ? rest.data : "");
  tsvc_buf_free(&rest);
  reload_end(c);
}

static const cmd_kind_t RELOAD = {"reload", run_reload, clear_reload};

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
  tsvc_config_t *cfg = NULL;
  int rc = tsvc_config_load(opts->config_path, &cfg, &d);
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
  if (!(m->cfg = cfgref_new(cfg))) {
    free(m);
    return TSVC_ENOMEM;
  }
  m->pub_cfg = cfgref_get(m->cfg);
  /* Values that must never reach a log line. */
  register_secrets(cfg);
  m->want = cfg->runtime;
  char abs[PATH_MAX];
  const char *path = realpath(opts->config_path, abs) ? abs : opts->config_path;
  m->config_path = strdup(path);
  if (opts->runtime) {
    if (strcmp(opts->runtime, "docker") == 0) m->want = TSVC_RUNTIME_DOCKER;
    else if (strcmp(opts->runtime, "process") == 0) m->want = TSVC_RUNTIME_PROCESS;
    else if (strcmp(opts->runtime, "auto") == 0) m->want = TSVC_RUNTIME_AUTO;
    else {
      if (err) snprintf(err, errlen, "unknown runtime '%s' (auto, docker, process)", opts->runtime);
      rc = TSVC_EINVAL;
      goto err;
    }
  }
  m->project = dir_of(path);
  m->state_dir = opts->state_dir ? strdup(opts->state_dir)
                                 : tsvc_asprintf("%s/.tanuki", m->project ? m->project : ".");
  atomic_init(&m->runtime_name, "");
  if (!m->project || !m->state_dir || !m->config_path || make_order(m) ||
      tsvc_board_new(&m->board)) {
    rc = TSVC_ENOMEM;
    goto err;
  }
  pthread_mutex_init(&m->qmu, NULL);
  pthread_mutex_init(&m->pub_mu, NULL);
  pthread_mutex_init(&m->sub_mu, NULL);
  uv_loop_init(&m->loop);
  if (tsvc_hooks_new(&m->loop, &m->hooks)) {
    uv_loop_close(&m->loop);
    pthread_mutex_destroy(&m->qmu);
    pthread_mutex_destroy(&m->pub_mu);
    pthread_mutex_destroy(&m->sub_mu);
    rc = TSVC_ENOMEM;
    goto err;
  }
  tsvc_hooks_set_counters(m->hooks, &m->hook_counters);
  uv_async_init(&m->loop, &m->wake, wake_cb);
  m->wake.data = m;
  uv_timer_init(&m->loop, &m->heartbeat);
  m->heartbeat.data = m;
  atomic_init(&m->heartbeat_ms, tsvc_wall_ms());
  atomic_init(&m->beat_mono_ms, tsvc_mono_ms());
  atomic_init(&m->beat_lag_ms, 0);
  uv_timer_start(&m->heartbeat, heartbeat_cb, HEARTBEAT_MS, HEARTBEAT_MS);
  if (pthread_create(&m->thread, NULL, loop_main, m) != 0) {
    rc = TSVC_ENOMEM;
    uv_close((uv_handle_t *)&m->wake, NULL);
    uv_close((uv_handle_t *)&m->heartbeat, NULL);
    tsvc_hooks_close(m->hooks);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    uv_loop_close(&m->loop);
    pthread_mutex_destroy(&m->qmu);
    pthread_mutex_destroy(&m->pub_mu);
    pthread_mutex_destroy(&m->sub_mu);
    goto err;
  }
  m->thread_started = true;
  *out = m;
  return 0;
err:
  tsvc_board_free(m->board);
  cfgref_put(m->pub_cfg);
  cfgref_put(m->cfg);
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
    cmd_t *c = cmd_new(&QUIT, sizeof *c);
    if (c) submit(m, c, NULL, 0);
    pthread_join(m->thread, NULL);
  }
  /* The loop has ended: what it owned is ours now. */
  for (size_t i = 0; i < m->ndead; i++) tsvc_monitor_free(m->dead[i]);
  free(m->dead);
  uv_loop_close(&m->loop);
  pthread_mutex_destroy(&m->qmu);
  pthread_mutex_destroy(&m->pub_mu);
  pthread_mutex_destroy(&m->sub_mu);
  tsvc_board_free(m->board);
  free(m->subs);
  free(m->order);
  cfgref_put(m->rt_cfg);
  cfgref_put(m->pub_cfg);
  cfgref_put(m->cfg);
  free(m->config_path);
  free(m->project);
  free(m->state_dir);
  free(m);
}

static int post_simple(tsvc_manager_t *m, const cmd_kind_t *kind, size_t size, char *err,
                       size_t errlen) {
  cmd_t *c = cmd_new(kind, size);
  if (!c) return TSVC_ENOMEM;
  return submit(m, c, err, errlen);
}

int tsvc_manager_start_services(tsvc_manager_t *m, char *err, size_t errlen) {
  return post_simple(m, &START_ALL, sizeof(cmd_start_all_t), err, errlen);
}

int tsvc_manager_stop_services(tsvc_manager_t *m, char *err, size_t errlen) {
  return post_simple(m, &STOP_ALL, sizeof(cmd_stop_all_t), err, errlen);
}

int tsvc_manager_stop_monitoring(tsvc_manager_t *m) {
  return post_simple(m, &STOP_MONITORING, sizeof(cmd_t), NULL, 0);
}

static int post_one(tsvc_manager_t *m, const char *name, one_op_t op, char *err,
                    size_t errlen) {
  cmd_one_t *c = cmd_new(&ONE, sizeof *c);
  if (!c) return TSVC_ENOMEM;
  c->op = op;
  if (!(c->name = strdup(name))) {
    tsvc_ref_put(&c->c.ref);
    return TSVC_ENOMEM;
  }
  return submit(m, &c->c, err, errlen);
}

int tsvc_manager_start(tsvc_manager_t *m, const char *name, char *err, size_t errlen) {
  return post_one(m, name, OP_START, err, errlen);
}

int tsvc_manager_stop(tsvc_manager_t *m, const char *name, char *err, size_t errlen) {
  return post_one(m, name, OP_STOP, err, errlen);
}

int tsvc_manager_restart(tsvc_manager_t *m, const char *name, char *err, size_t errlen) {
  return post_one(m, name, OP_RESTART, err, errlen);
}

int tsvc_manager_check(tsvc_manager_t *m, const char *name, tsvc_check_record_t *out,
                       char *err, size_t errlen) {
  if (out) memset(out, 0, sizeof *out);
  cmd_check_t *c = cmd_new(&CHECK, sizeof *c);
  if (!c) return TSVC_ENOMEM;
  if (!(c->name = strdup(name))) {
    tsvc_ref_put(&c->c.ref);
    return TSVC_ENOMEM;
  }
  /* The verdict outlives submit() in c, which submit() may free: hold it. */
  tsvc_ref_get(&c->c.ref);
  int rc = submit(m, &c->c, err, errlen);
  if (!rc && out) {
    *out = c->rec;
    c->rec.message = c->rec.output = c->rec.probe_address = NULL; /* moved */
  }
  tsvc_ref_put(&c->c.ref);
  return rc;
}

int tsvc_manager_reload(tsvc_manager_t *m, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  /* Read and validate here, off the loop; only the plan and its
     application run on it. */
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
  cmd_reload_t *c = cmd_new(&RELOAD, sizeof *c);
  if (!c || !(c->cfg = cfgref_new(nc))) {
    if (c) tsvc_ref_put(&c->c.ref);
    else tsvc_config_free(nc);
    return TSVC_ENOMEM;
  }
  return submit(m, &c->c, err, errlen);
}

int tsvc_manager_debug_configs(void) { return atomic_load(&configs_alive); }

int tsvc_manager_debug_stall(tsvc_manager_t *m, int64_t ms) {
  cmd_stall_t *c = cmd_new(&STALL, sizeof *c);
  if (!c) return TSVC_ENOMEM;
  c->ms = ms;
  return submit(m, &c->c, NULL, 0);
}

/* ---- readers ---------------------------------------------------------------- */

/* Not monitored: the service is ENOENT when the config has no such name. */
static int not_monitored(tsvc_manager_t *m, const char *name) {
  pthread_mutex_lock(&m->pub_mu);
  cfgref_t *cfg = cfgref_get(m->pub_cfg);
  pthread_mutex_unlock(&m->pub_mu);
  int rc = tsvc_config_service(cfg->cfg, name) ? TSVC_ENOTMONITORED : TSVC_ENOENT;
  cfgref_put(cfg);
  return rc;
}

bool tsvc_manager_is_healthy(tsvc_manager_t *m, const char *name) {
  return tsvc_board_is_healthy(m->board, name);
}

int tsvc_manager_get_status(tsvc_manager_t *m, const char *name, tsvc_status_t *out) {
  int rc = tsvc_board_get_status(m->board, name, out);
  return rc == TSVC_ENOTMONITORED ? not_monitored(m, name) : rc;
}

int tsvc_manager_get_all_status(tsvc_manager_t *m, tsvc_status_list_t *out) {
  return tsvc_board_get_all(m->board, out);
}

static int manager_view(tsvc_manager_t *m, bool unpack, tsvc_snapshot_t **out) {
  int rc = unpack ? tsvc_board_snapshot(m->board, out) : tsvc_board_snapshot_packed(m->board, out);
  if (!rc) tsvc_snapshot_set_lag(*out, (double)tsvc_manager_loop_lag_ms(m) / 1000.0);
  return rc;
}

int tsvc_manager_snapshot(tsvc_manager_t *m, tsvc_snapshot_t **out) {
  return manager_view(m, true, out);
}

int tsvc_manager_snapshot_packed(tsvc_manager_t *m, tsvc_snapshot_t **out) {
  return manager_view(m, false, out);
}

void tsvc_manager_hook_totals(tsvc_manager_t *m, tsvc_hook_totals_t *out) {
  tsvc_hook_totals(&m->hook_counters, out);
}

void tsvc_manager_monitor_stats(tsvc_manager_t *m, tsvc_monitor_stats_t *out) {
  tsvc_board_stats(m->board, out);
  out->loop_lag_s = (double)tsvc_manager_loop_lag_ms(m) / 1000.0;
}

const char *tsvc_manager_runtime_name(tsvc_manager_t *m) { return atomic_load(&m->runtime_name); }

int64_t tsvc_manager_loop_heartbeat(tsvc_manager_t *m) { return atomic_load(&m->heartbeat_ms); }

int64_t tsvc_manager_loop_lag_ms(tsvc_manager_t *m) {
  /* How late the last beat was, or how late the next one is already. */
  int64_t late = tsvc_mono_ms() - atomic_load(&m->beat_mono_ms) - HEARTBEAT_MS;
  int64_t last = atomic_load(&m->beat_lag_ms);
  return late > last ? late : last;
}

int tsvc_manager_connection_info(tsvc_manager_t *m, tsvc_view_t view, tsvc_conn_list_t *out) {
  pthread_mutex_lock(&m->pub_mu);
  cfgref_t *cfg = cfgref_get(m->pub_cfg);
  pthread_mutex_unlock(&m->pub_mu);
  /* The engine's host for a remote engine (remote.h). */
  char host[256];
  tsvc_env_host_addr(cfg->cfg, tsvc_manager_runtime_name(m), host, sizeof host);
  int rc = tsvc_conn_collect(cfg->cfg, tsvc_manager_runtime_name(m), view, host, out);
  cfgref_put(cfg);
  for (size_t i = 0; !rc && i < out->n; i++) {
    tsvc_snap_t *s;
    if (tsvc_board_get(m->board, out->v[i].service, &s) != 0) continue;
    out->v[i].monitored = true;
    tsvc_status_t st;
    tsvc_snap_status(s, &st);
    out->v[i].state = st.state;
    tsvc_snap_release(s);
  }
  return rc;
}
