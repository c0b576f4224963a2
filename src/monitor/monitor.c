/* monitor.c: see monitor.h. */
#include "monitor/monitor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rcstr.h"
#include "common/util.h"
#include "log/log.h"
#include "monitor/check.h"

/* A callback context for runtime operations that cannot be cancelled: the
   service clears ctx->svc when it goes away first. */
typedef struct {
  struct svc_s *svc;
  bool verify; /* inspections: feed "died" when found not running */
} ctx_t;

/* Someone waiting for the runtime operation in flight. */
typedef struct waiter_s {
  tsvc_mon_done_cb cb;
  void *data;
  uint64_t id;
  struct waiter_s *next;
} waiter_t;

typedef struct svc_s {
  tsvc_monitor_t *m;
  const tsvc_service_conf_t *conf; /* borrowed */
  char *name;                      /* owned */
  tsvc_health_t h;
  tsvc_probe_spec_t spec; /* strings point into conf or host */
  char host[256];
  char *addr;             /* where checks go (st.probe_address), shared by
                             the history's records (rcstr) */
  uv_timer_t timer;
  tsvc_ms_t armed_at;     /* deadline the timer is set for, or TSVC_NEVER */
  tsvc_check_t *check;    /* probe in flight */
  int64_t check_started_wall;
  tsvc_ms_t lateness;       /* of the check the last step started */
  tsvc_ms_t check_lateness; /* of the check in flight */
  ctx_t *op;              /* runtime start/stop/restart in flight */
  tsvc_health_op_t failed_op; /* the operation an OP_FAILED is about, for
                                 its log line */
  waiter_t *waiters;      /* told when op is done */
  uint64_t waiter_seq;
  ctx_t *info;            /* runtime inspection for status in flight */
  /* The published status; written on the loop under m->mu. */
  tsvc_status_t st;
  size_t hist_cap;
  size_t hist_head; /* index of the oldest record when the ring is full */
} svc_t;

struct tsvc_monitor_s {
  uv_loop_t *loop;
  tsvc_runtime_t *rt;
  pthread_mutex_t mu;
  svc_t **svcs;   /* in the order added */
  size_t n, cap;
  svc_t **index;  /* open-addressing hash of names, for find(); NULL slots
                     empty; rebuilt on add (when growing) and remove */
  size_t index_cap; /* a power of two, at least twice n */
  tsvc_mon_observer_cb observer;
  void *observer_data;
  bool closed;
};

static const double latency_bounds[] = TSVC_LATENCY_BUCKETS_S;

/* ---- time ----------------------------------------------------------------- */

static int64_t wall_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A loop time as wall-clock ms; 0 for never. */
static int64_t to_wall(tsvc_monitor_t *m, tsvc_ms_t t, int64_t wall_now) {
  if (t == TSVC_NEVER) return 0;
  return wall_now - ((tsvc_ms_t)uv_now(m->loop) - t);
}

/* ---- lookup --------------------------------------------------------------- */

static uint64_t hash_name(const char *name) {
  uint64_t x = UINT64_C(1469598103934665603); /* FNV-1a */
  for (const char *p = name; *p; p++) x = (x ^ (unsigned char)*p) * UINT64_C(1099511628211);
  return x;
}

/* By name in O(1): API calls and runtime events name services, and a
   monitor may watch thousands. Caller holds m->mu or is the loop thread. */
static svc_t *find(tsvc_monitor_t *m, const char *name) {
  if (!m->index) return NULL;
  size_t mask = m->index_cap - 1;
  for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
    svc_t *s = m->index[i];
    if (!s) return NULL;
    if (strcmp(s->name, name) == 0) return s;
  }
}

/* Rebuild the index for the current svcs, at least cap slots. Called with
   m->mu held. Returns 0 or TSVC_ENOMEM (the old index stays then). */
static int reindex(tsvc_monitor_t *m, size_t want) {
  size_t cap = 16;
  while (cap < 2 * want) cap *= 2;
  svc_t **idx = calloc(cap, sizeof *idx);
  if (!idx) return TSVC_ENOMEM;
  for (size_t k = 0; k < m->n; k++) {
    size_t i = hash_name(m->svcs[k]->name) & (cap - 1);
    while (idx[i]) i = (i + 1) & (cap - 1);
    idx[i] = m->svcs[k];
  }
  free(m->index);
  m->index = idx;
  m->index_cap = cap;
  return 0;
}

/* ---- status --------------------------------------------------------------- */

/* Copy the machine's view into the published status. */
static void publish(svc_t *s) {
  tsvc_monitor_t *m = s->m;
  tsvc_ms_t now = (tsvc_ms_t)uv_now(m->loop);
  int64_t wall = wall_now_ms();
  const tsvc_health_t *h = &s->h;
  pthread_mutex_lock(&m->mu);
  s->st.state = h->state;
  s->st.healthy = h->state == TSVC_STATE_HEALTHY;
  s->st.since_ms = to_wall(m, h->since, wall);
  s->st.next_check_ms = h->checking ? 0 : to_wall(m, h->check_at, wall);
  s->st.consecutive_failures = h->fails;
  s->st.consecutive_successes = h->successes;
  s->st.retries = h->p.retries;
  s->st.success_threshold = h->p.success_threshold;
  s->st.checks_total = h->checks_total;
  s->st.failures_total = h->failures_total;
  s->st.restarts_total = h->restarts_total;
  s->st.restarts_in_window = tsvc_health_restarts_in_window(h, now);
  s->st.max_restarts = h->p.max_restarts;
  pthread_mutex_unlock(&m->mu);
}

static void record_check(svc_t *s, const tsvc_probe_result_t *res) {
  tsvc_monitor_t *m = s->m;
  int64_t end = wall_now_ms();
  pthread_mutex_lock(&m->mu);
  tsvc_status_t *st = &s->st;
  tsvc_check_record_t *r;
  if (st->nhistory < s->hist_cap) {
    r = &st->history[st->nhistory++];
  } else {
    r = &st->history[s->hist_head];
    s->hist_head = (s->hist_head + 1) % s->hist_cap;
    free(r->message);
    free(r->output);
    tsvc_rcstr_unref(r->probe_address);
  }
  r->start_ms = s->check_started_wall;
  r->end_ms = end;
  r->result = res->result;
  r->exit_code = res->exit_code;
  r->latency_us = res->latency_us;
  /* Messages are kept by pointer, sized to fit: most are short ("PONG"),
     and twenty 256-byte slots per service were most of the memory. */
  char msg[TSVC_PROBE_MSG_LEN];
  tsvc_log_scrub(msg, sizeof msg, res->message);
  r->message = strdup(msg);
  /* One copy for every record of the same address (rcstr). */
  r->probe_address = tsvc_rcstr_ref(s->addr);
  r->output = NULL;
  if (res->output) {
    size_t n = strlen(res->output) + 1;
    if ((r->output = malloc(n))) tsvc_log_scrub(r->output, n, res->output);
  }
  st->last_check_ms = end;
  st->last_latency_us = res->latency_us;
  if ((unsigned)res->result < TSVC_RESULT__COUNT) st->checks_by_result[res->result]++;
  double secs = (double)res->latency_us / 1e6;
  st->latency_sum_s += secs;
  for (size_t i = 0; i < TSVC_LATENCY_NBUCKETS; i++)
    if (i == TSVC_LATENCY_NBUCKETS - 1 || secs <= latency_bounds[i]) st->latency_buckets[i]++;
  if (res->result == TSVC_RESULT_OK) {
    st->last_healthy_ms = end;
  } else {
    tsvc_strlcpy(st->last_error, msg, sizeof st->last_error);
  }
  pthread_mutex_unlock(&m->mu);
}

static void set_error(svc_t *s, const char *msg) {
  pthread_mutex_lock(&s->m->mu);
  tsvc_log_scrub(s->st.last_error, sizeof s->st.last_error, msg ? msg : "");
  pthread_mutex_unlock(&s->m->mu);
}

static void set_running(svc_t *s, bool running) {
  pthread_mutex_lock(&s->m->mu);
  s->st.running = running;
  pthread_mutex_unlock(&s->m->mu);
}

/* Deep copy of a status; the caller holds m->mu. */
static int copy_status(const svc_t *s, tsvc_status_t *out) {
  *out = s->st;
  out->name = NULL;
  out->history = NULL;
  out->nhistory = 0;
  if (!(out->name = strdup(s->name))) return TSVC_ENOMEM;
  if (s->st.nhistory) {
    out->history = calloc(s->st.nhistory, sizeof *out->history);
    if (!out->history) goto nomem;
    /* Oldest first: the ring starts at hist_head once full. */
    size_t start = s->st.nhistory < s->hist_cap ? 0 : s->hist_head;
    for (size_t i = 0; i < s->st.nhistory; i++) {
      const tsvc_check_record_t *r = &s->st.history[(start + i) % s->st.nhistory];
      out->history[i] = *r;
      out->history[i].output = NULL;
      out->history[i].message = NULL;
      out->history[i].probe_address = NULL;
      out->nhistory = i + 1;
      if (!(out->history[i].message = strdup(r->message ? r->message : ""))) goto nomem;
      if (r->probe_address && !(out->history[i].probe_address = strdup(r->probe_address)))
        goto nomem;
      if (r->output && !(out->history[i].output = strdup(r->output))) goto nomem;
    }
  }
  return 0;
nomem:
  tsvc_status_clear(out);
  return TSVC_ENOMEM;
}

/* ---- logging and observers ------------------------------------------------ */

static void notify(svc_t *s, tsvc_mon_event_type_t type, tsvc_state_t from, tsvc_state_t to,
                   const char *reason, tsvc_result_t result, int64_t lateness) {
  tsvc_monitor_t *m = s->m;
  if (!m->observer) return;
  tsvc_ms_t now = (tsvc_ms_t)uv_now(m->loop);
  tsvc_mon_event_t ev = {
      .type = type,
      .service = s->name,
      .from = from,
      .to = to,
      .result = result,
      .reason = reason,
      .failures = s->h.fails,
      .retries = s->h.p.retries,
      .restarts = tsvc_health_restarts_in_window(&s->h, now),
      .max_restarts = s->h.p.max_restarts,
      .now = now,
      .lateness_ms = lateness,
  };
  m->observer(&ev, m->observer_data);
}

static void log_line(svc_t *s, tsvc_log_level_t level, const char *action, tsvc_state_t from,
                     tsvc_state_t to, bool change, const char *reason, const char *extra_key,
                     const char *extra_val) {
  if (!tsvc_log_enabled(level)) return;
  char failures[32], restarts[32];
  tsvc_ms_t now = (tsvc_ms_t)uv_now(s->m->loop);
  snprintf(failures, sizeof failures, "%d/%d", s->h.fails, s->h.p.retries);
  snprintf(restarts, sizeof restarts, "%d/%d", tsvc_health_restarts_in_window(&s->h, now),
           s->h.p.max_restarts);
  tsvc_log_field_t f[] = {
      {"service", s->name},
      {"action", action},
      {"state", change ? tsvc_state_name(to) : NULL},
      {"prev", change ? tsvc_state_name(from) : NULL},
      {"failures", failures},
      {"restarts", restarts},
      {extra_key ? extra_key : "-", extra_val},
      {"reason", reason},
  };
  tsvc_log_fields(level, NULL, f, TSVC_ARRAY_LEN(f));
}

static tsvc_log_level_t change_level(tsvc_state_t to) {
  switch (to) {
  case TSVC_STATE_UNHEALTHY:
  case TSVC_STATE_FAILED:
  case TSVC_STATE_UNKNOWN:
    return TSVC_LOG_WARN;
  default:
    return TSVC_LOG_INFO;
  }
}

/* ---- carrying out the machine's actions ----------------------------------- */

static void feed(svc_t *s, const tsvc_health_event_t *ev, int *rc_out);

static void timer_cb(uv_timer_t *t);

/* Set the service's one timer to the machine's earliest deadline. */
static void arm(svc_t *s) {
  if (s->m->closed) return;
  tsvc_ms_t d = tsvc_health_next_deadline(&s->h);
  if (d == s->armed_at) return;
  s->armed_at = d;
  if (d == TSVC_NEVER) {
    uv_timer_stop(&s->timer);
    return;
  }
  tsvc_ms_t now = (tsvc_ms_t)uv_now(s->m->loop);
  uv_timer_start(&s->timer, timer_cb, (uint64_t)(d > now ? d - now : 0), 0);
}

/* Tell everyone waiting for the operation in flight how it ended. */
static void wake_waiters(svc_t *s, int status, const char *msg) {
  waiter_t *w = s->waiters;
  s->waiters = NULL;
  while (w) {
    waiter_t *next = w->next;
    w->cb(status, msg, w->data);
    free(w);
    w = next;
  }
}

static void op_cb(int status, const char *msg, void *data) {
  ctx_t *c = data;
  svc_t *s = c->svc;
  free(c);
  if (!s) return; /* the service went away meanwhile */
  s->op = NULL;
  /* Copy: the message is only valid during this callback. */
  char why[1024];
  tsvc_strlcpy(why, status ? (msg && *msg ? msg : tsvc_strerror(status)) : "", sizeof why);
  tsvc_health_event_t ev = {.now = (tsvc_ms_t)uv_now(s->m->loop)};
  if (status) {
    ev.type = TSVC_HEV_OP_FAILED;
    ev.message = msg && *msg ? msg : tsvc_strerror(status);
    s->failed_op = s->h.op;
  } else {
    ev.type = TSVC_HEV_OP_DONE;
    set_running(s, s->h.op != TSVC_OP_STOP);
  }
  feed(s, &ev, NULL);
  if (status) {
    /* Whoever waits learns what happens next: a start or restart that
       failed is retried on the backoff schedule, or given up. */
    size_t n = strlen(why);
    tsvc_ms_t now = (tsvc_ms_t)uv_now(s->m->loop);
    if (s->h.state == TSVC_STATE_UNHEALTHY && s->h.restart_at != TSVC_NEVER) {
      char in[32];
      tsvc_duration_format(s->h.restart_at > now ? s->h.restart_at - now : 0, in, sizeof in);
      snprintf(why + n, sizeof why - n, " (%s again in %s)",
               s->h.not_started ? "starting" : "restarting", in);
    } else if (s->h.state == TSVC_STATE_FAILED) {
      int k = tsvc_health_restarts_in_window(&s->h, now);
      snprintf(why + n, sizeof why - n, " (gave up after %d attempt%s)", k, k == 1 ? "" : "s");
    }
  }
  wake_waiters(s, status, why);
}

static void prepare_spec(svc_t *s);

static void info_cb(int status, const char *msg, const tsvc_rt_info_t *info, void *data) {
  ctx_t *c = data;
  svc_t *s = c->svc;
  bool verify = c->verify;
  free(c);
  (void)msg;
  if (!s) return;
  s->info = NULL;
  if (status) return;
  pthread_mutex_lock(&s->m->mu);
  s->st.running = info->running;
  s->st.pid = info->pid;
  tsvc_strlcpy(s->st.container_id, info->id, sizeof s->st.container_id);
  tsvc_strlcpy(s->st.container_name, info->name, sizeof s->st.container_name);
  pthread_mutex_unlock(&s->m->mu);
  /* Where probes connect, unless the config or the command names a host:
     the runtime's route, which the inspection may have changed. */
  if (s->m->rt && s->m->rt->ops->probe_route) {
    prepare_spec(s);
  } else if (info->host[0] && !s->conf->healthcheck.address && s->spec.host == s->host) {
    tsvc_strlcpy(s->host, info->host, sizeof s->host);
  }
  if (verify && !info->running && s->h.op == TSVC_OP_NONE) {
    /* It died while the runtime could not tell us: found by inspection. */
    char why[96];
    if (info->exists)
      snprintf(why, sizeof why, "not running: exited (%d)", info->exit_code);
    else
      snprintf(why, sizeof why, "not running: does not exist");
    tsvc_health_event_t ev = {.type = TSVC_HEV_DIED,
                              .now = (tsvc_ms_t)uv_now(s->m->loop),
                              .message = why};
    feed(s, &ev, NULL);
  }
}

/* Refresh container id / pid / address after a (re)start; with verify, a
   service found not running is fed as died. */
static void inspect_svc(svc_t *s, bool verify) {
  tsvc_runtime_t *rt = s->m->rt;
  if (!rt) return;
  if (s->info) {
    s->info->verify |= verify; /* the one in flight will do */
    return;
  }
  ctx_t *c = malloc(sizeof *c);
  if (!c) return;
  c->svc = s;
  c->verify = verify;
  if (rt->ops->inspect(rt, s->conf, info_cb, c) == 0) s->info = c;
  else free(c);
}

static void refresh_info(svc_t *s) { inspect_svc(s, false); }

static void run_op(svc_t *s, unsigned act) {
  tsvc_runtime_t *rt = s->m->rt;
  int rc = TSVC_EINVAL;
  ctx_t *c = malloc(sizeof *c);
  if (!c) {
    rc = TSVC_ENOMEM;
  } else if (rt) {
    c->svc = s;
    c->verify = false;
    s->op = c;
    if (act == TSVC_HACT_RESTART) rc = rt->ops->restart(rt, s->conf, op_cb, c);
    else if (act == TSVC_HACT_START) rc = rt->ops->start(rt, s->conf, op_cb, c);
    else rc = rt->ops->stop(rt, s->conf, op_cb, c);
  }
  if (rc) {
    /* The callback will never come: fail the operation now. */
    free(c);
    s->op = NULL;
    char msg[160];
    snprintf(msg, sizeof msg, "%s", rt ? tsvc_strerror(rc) : "no runtime to act with");
    tsvc_health_event_t ev = {.type = TSVC_HEV_OP_FAILED,
                              .now = (tsvc_ms_t)uv_now(s->m->loop),
                              .message = msg};
    s->failed_op = s->h.op;
    feed(s, &ev, NULL);
    wake_waiters(s, rc, msg);
  }
}

static void check_cb(const tsvc_probe_result_t *res, void *data);

static void start_check(svc_t *s) {
  s->check_started_wall = wall_now_ms();
  s->check_lateness = s->lateness;
  int rc = tsvc_check_start(s->m->loop, s->m->rt, s->conf, &s->spec, check_cb, s, &s->check);
  if (rc) {
    /* Could not even start: that is this check's verdict. */
    s->check = NULL;
    tsvc_probe_result_t res = {.result = TSVC_RESULT_RUNTIME_ERROR, .exit_code = -1};
    snprintf(res.message, sizeof res.message, "cannot start the %s probe: %s",
             tsvc_probe_kind_name(s->spec.kind), tsvc_strerror(rc));
    check_cb(&res, s);
  }
}

static void carry_out(svc_t *s, const tsvc_health_actions_t *a) {
  if ((a->flags & TSVC_HACT_CANCEL_CHECK) && s->check) {
    tsvc_check_cancel(s->check);
    s->check = NULL;
  }
  /* Published before anyone is told: a subscriber told "healthy" that asks
     for the status must read "healthy" (feed() publishes again after the
     actions). */
  if (a->nchanges) publish(s);
  /* A start in flight is `starting`: that change is logged on the start's
     own line (action=start state=starting prev=stopped). */
  const tsvc_health_change_t *start = NULL;
  if ((a->flags & TSVC_HACT_START) && a->nchanges &&
      a->changes[a->nchanges - 1].to == TSVC_STATE_STARTING)
    start = &a->changes[a->nchanges - 1];
  for (int i = 0; i < a->nchanges; i++) {
    const tsvc_health_change_t *c = &a->changes[i];
    if (c->to == TSVC_STATE_RESTARTING || c == start) continue; /* logged as the action */
    log_line(s, change_level(c->to), NULL, c->from, c->to, true, c->reason, NULL, NULL);
    notify(s, TSVC_MON_EV_CHANGE, c->from, c->to, c->reason, TSVC_RESULT_OK, 0);
  }
  if (a->flags & TSVC_HACT_OP_FAILED) {
    /* Named after what failed: a person's start that fails is no restart. */
    const char *what = s->failed_op == TSVC_OP_START  ? "start_failed"
                       : s->failed_op == TSVC_OP_STOP ? "stop_failed"
                                                      : "restart_failed";
    set_error(s, a->reason);
    log_line(s, TSVC_LOG_ERROR, what, 0, 0, false, a->reason, NULL, NULL);
    notify(s, TSVC_MON_EV_RESTART_FAILED, s->h.state, s->h.state, a->reason, TSVC_RESULT_OK, 0);
  }
  if (a->flags & TSVC_HACT_GAVE_UP) {
    char cd[32];
    if (s->h.p.cooldown > 0) tsvc_duration_format(s->h.p.cooldown, cd, sizeof cd);
    else tsvc_strlcpy(cd, "never", sizeof cd);
    log_line(s, TSVC_LOG_WARN, "give_up", 0, 0, false, a->reason, "retry_after", cd);
    notify(s, TSVC_MON_EV_GAVE_UP, TSVC_STATE_FAILED, TSVC_STATE_FAILED, a->reason,
           TSVC_RESULT_OK, 0);
  }
  if (a->flags & TSVC_HACT_RESTART_LATER) {
    char in[32];
    tsvc_duration_format(a->restart_at - (tsvc_ms_t)uv_now(s->m->loop), in, sizeof in);
    /* After a failed start the retry is a start. */
    log_line(s, TSVC_LOG_INFO, s->h.not_started ? "start_scheduled" : "restart_scheduled", 0, 0,
             false, a->reason, "in", in);
    notify(s, TSVC_MON_EV_RESTART_LATER, s->h.state, s->h.state, a->reason, TSVC_RESULT_OK, 0);
  }
  unsigned ops = a->flags & (TSVC_HACT_RESTART | TSVC_HACT_START | TSVC_HACT_STOP);
  if (ops) {
    const char *action = ops == TSVC_HACT_RESTART ? "restart"
                         : ops == TSVC_HACT_START ? "start" : "stop";
    const char *reason = a->nchanges ? a->changes[a->nchanges - 1].reason : NULL;
    if (start) {
      /* A retry of a failed start is the monitor's doing, as a restart is. */
      log_line(s, start->from == TSVC_STATE_STOPPED ? TSVC_LOG_INFO : TSVC_LOG_WARN, action,
               start->from, start->to, true, start->reason, NULL, NULL);
      notify(s, TSVC_MON_EV_CHANGE, start->from, start->to, start->reason, TSVC_RESULT_OK, 0);
    } else {
      log_line(s, ops == TSVC_HACT_RESTART ? TSVC_LOG_WARN : TSVC_LOG_INFO, action, 0, 0, false,
               reason, NULL, NULL);
    }
    if (ops == TSVC_HACT_RESTART)
      notify(s, TSVC_MON_EV_RESTART, TSVC_STATE_RESTARTING, TSVC_STATE_RESTARTING, reason,
             TSVC_RESULT_OK, 0);
    if (ops == TSVC_HACT_STOP) set_running(s, false);
    run_op(s, ops);
  }
  if (a->flags & TSVC_HACT_CHECK) start_check(s);
}

/* Feed one event to the machine, carry out its actions, publish, re-arm.
   A check it starts counts as on time (lateness 0). */
static void feed(svc_t *s, const tsvc_health_event_t *ev, int *rc_out) {
  tsvc_health_actions_t a;
  int rc = tsvc_health_step(&s->h, ev, &a);
  if (rc_out) *rc_out = rc;
  if (rc) return;
  /* (Re)started: its container id, pid and address are new. A start in
     flight is starting too, but there is nothing to look at yet. */
  if (s->h.state == TSVC_STATE_STARTING && s->h.op == TSVC_OP_NONE &&
      ((a.flags & TSVC_HACT_CHANGED) || ev->type == TSVC_HEV_OP_DONE))
    refresh_info(s);
  s->lateness = 0;
  carry_out(s, &a);
  publish(s);
  arm(s);
}

static void timer_cb(uv_timer_t *t) {
  svc_t *s = t->data;
  s->armed_at = TSVC_NEVER;
  tsvc_ms_t due = s->h.check_at;
  tsvc_health_event_t ev = {.type = TSVC_HEV_TICK, .now = (tsvc_ms_t)uv_now(s->m->loop)};
  tsvc_health_actions_t a;
  if (tsvc_health_step(&s->h, &ev, &a) == 0) {
    /* How late the check starts against its schedule. */
    s->lateness = (a.flags & TSVC_HACT_CHECK) && due != TSVC_NEVER ? ev.now - due : 0;
    carry_out(s, &a);
    publish(s);
  }
  arm(s);
}

static void check_cb(const tsvc_probe_result_t *res, void *data) {
  svc_t *s = data;
  s->check = NULL;
  record_check(s, res);
  if (tsvc_log_enabled(TSVC_LOG_DEBUG)) {
    char lat[32];
    snprintf(lat, sizeof lat, "%.3fms", (double)res->latency_us / 1000.0);
    log_line(s, TSVC_LOG_DEBUG, "check", 0, 0, false, res->message, "latency", lat);
  }
  notify(s, TSVC_MON_EV_CHECK, s->h.state, s->h.state, res->message, res->result,
         s->check_lateness);
  tsvc_health_event_t ev = {.type = TSVC_HEV_CHECK_RESULT,
                            .now = (tsvc_ms_t)uv_now(s->m->loop),
                            .result = res->result,
                            .message = res->message};
  feed(s, &ev, NULL);
}

/* ---- services ------------------------------------------------------------- */

void tsvc_health_params_from_conf(const tsvc_service_conf_t *svc, tsvc_health_params_t *p) {
  const tsvc_healthcheck_conf_t *hc = &svc->healthcheck;
  const tsvc_restart_conf_t *r = &svc->restart;
  p->interval = hc->interval;
  p->start_interval = hc->start_interval;
  p->start_period = hc->start_period;
  p->retries = hc->retries;
  p->success_threshold = hc->success_threshold;
  p->can_restart = r->policy == TSVC_POLICY_ON_UNHEALTHY && !svc->external;
  p->max_restarts = r->max_restarts;
  p->window = r->window;
  p->backoff = r->backoff;
  p->max_backoff = r->max_backoff > r->backoff ? r->max_backoff : r->backoff;
  p->cooldown = r->cooldown;
  p->jitter_permille = 100;
}

static void prepare_spec(svc_t *s) {
  tsvc_check_where_t where;
  tsvc_check_prepare_where(s->conf, s->m->rt, &s->spec, s->host, sizeof s->host, &where);
  if (!s->addr || strcmp(s->addr, where.address) != 0) {
    char *a = tsvc_rcstr_new(where.address);
    if (a) { /* (out of memory: the records keep the last one) */
      tsvc_rcstr_unref(s->addr);
      s->addr = a;
    }
  }
  pthread_mutex_lock(&s->m->mu);
  tsvc_strlcpy(s->st.probe_via, where.via, sizeof s->st.probe_via);
  tsvc_strlcpy(s->st.probe_address, where.address, sizeof s->st.probe_address);
  pthread_mutex_unlock(&s->m->mu);
}

/* A jitter seed per service: its name, and the time, so that two monitors
   of the same services do not jitter in step. */
static uint64_t seed_of(const char *name) {
  uint64_t x = hash_name(name) ^ (uint64_t)uv_hrtime();
  return x ? x : 1;
}

int tsvc_monitor_new(uv_loop_t *loop, tsvc_runtime_t *rt, tsvc_monitor_t **out) {
  tsvc_monitor_t *m = calloc(1, sizeof *m);
  if (!m) return TSVC_ENOMEM;
  m->loop = loop;
  m->rt = rt;
  pthread_mutex_init(&m->mu, NULL);
  *out = m;
  return 0;
}

int tsvc_monitor_add(tsvc_monitor_t *m, const tsvc_service_conf_t *conf) {
  if (m->closed) return TSVC_ESTATE;
  if (find(m, conf->name)) return TSVC_EEXIST;
  tsvc_health_params_t p;
  tsvc_health_params_from_conf(conf, &p);
  svc_t *s = calloc(1, sizeof *s);
  if (!s) return TSVC_ENOMEM;
  int rc = tsvc_health_init(&s->h, &p, (tsvc_ms_t)uv_now(m->loop), seed_of(conf->name));
  if (rc) {
    free(s);
    return rc;
  }
  s->m = m;
  s->conf = conf;
  s->armed_at = TSVC_NEVER;
  s->hist_cap = conf->healthcheck.history > 0 ? (size_t)conf->healthcheck.history : 1;
  s->name = strdup(conf->name);
  s->st.history = calloc(s->hist_cap, sizeof *s->st.history);
  pthread_mutex_lock(&m->mu); /* readers on other threads walk svcs */
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    svc_t **v = realloc(m->svcs, cap * sizeof *v);
    if (v) {
      m->svcs = v;
      m->cap = cap;
    }
  }
  bool full = m->n == m->cap;
  if (!full && 2 * (m->n + 1) > m->index_cap && reindex(m, m->n + 1)) full = true;
  pthread_mutex_unlock(&m->mu);
  if (!s->name || !s->st.history || full) {
    free(s->name);
    free(s->st.history);
    tsvc_health_free(&s->h);
    free(s);
    return TSVC_ENOMEM;
  }
  prepare_spec(s);
  s->st.enabled = conf->enabled;
  s->st.external = conf->external;
  tsvc_strlcpy(s->st.probe, tsvc_probe_kind_name(s->spec.kind), sizeof s->st.probe);
  uv_timer_init(m->loop, &s->timer);
  s->timer.data = s;
  pthread_mutex_lock(&m->mu);
  m->svcs[m->n++] = s;
  size_t i = hash_name(s->name) & (m->index_cap - 1);
  while (m->index[i]) i = (i + 1) & (m->index_cap - 1);
  m->index[i] = s;
  pthread_mutex_unlock(&m->mu);
  publish(s);
  return 0;
}

static void svc_timer_closed(uv_handle_t *h) {
  svc_t *s = h->data;
  /* The records' addresses are shared (rcstr), not theirs to free. */
  for (size_t i = 0; i < s->st.nhistory; i++) {
    tsvc_rcstr_unref(s->st.history[i].probe_address);
    s->st.history[i].probe_address = NULL;
  }
  tsvc_rcstr_unref(s->addr);
  tsvc_status_clear(&s->st);
  tsvc_health_free(&s->h);
  free(s->name);
  free(s);
}

/* Detach a service from everything in flight and close its timer; it is
   freed in the close callback. */
static void svc_close(svc_t *s) {
  if (s->check) {
    tsvc_check_cancel(s->check);
    s->check = NULL;
  }
  if (s->op) s->op->svc = NULL;
  if (s->info) s->info->svc = NULL;
  wake_waiters(s, TSVC_ESTATE, "the monitor stopped watching this service");
  s->op = s->info = NULL;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, svc_timer_closed);
}

int tsvc_monitor_remove(tsvc_monitor_t *m, const char *name) {
  for (size_t i = 0; i < m->n; i++) {
    svc_t *s = m->svcs[i];
    if (strcmp(s->name, name) != 0) continue;
    pthread_mutex_lock(&m->mu);
    memmove(&m->svcs[i], &m->svcs[i + 1], (m->n - i - 1) * sizeof *m->svcs);
    m->n--;
    if (reindex(m, m->n)) {
      /* No memory for a new index: drop the entry in place by rebuilding
         into the old one (same size, fewer entries). */
      memset(m->index, 0, m->index_cap * sizeof *m->index);
      for (size_t k = 0; k < m->n; k++) {
        size_t j = hash_name(m->svcs[k]->name) & (m->index_cap - 1);
        while (m->index[j]) j = (j + 1) & (m->index_cap - 1);
        m->index[j] = m->svcs[k];
      }
    }
    pthread_mutex_unlock(&m->mu);
    svc_close(s);
    return 0;
  }
  return TSVC_ENOENT;
}

int tsvc_monitor_update(tsvc_monitor_t *m, const tsvc_service_conf_t *conf) {
  svc_t *s = find(m, conf->name);
  if (!s) return TSVC_ENOENT;
  tsvc_health_params_t p;
  tsvc_health_params_from_conf(conf, &p);
  int rc = tsvc_health_set_params(&s->h, &p);
  if (rc) return rc;
  size_t cap = conf->healthcheck.history > 0 ? (size_t)conf->healthcheck.history : 1;
  if (cap != s->hist_cap) {
    /* Start the history afresh at the new size. */
    tsvc_check_record_t *h = calloc(cap, sizeof *h);
    if (!h) return TSVC_ENOMEM;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < s->st.nhistory; i++) {
      free(s->st.history[i].message);
      free(s->st.history[i].output);
      tsvc_rcstr_unref(s->st.history[i].probe_address);
    }
    free(s->st.history);
    s->st.history = h;
    s->st.nhistory = 0;
    s->hist_cap = cap;
    s->hist_head = 0;
    pthread_mutex_unlock(&m->mu);
  }
  s->conf = conf;
  prepare_spec(s);
  pthread_mutex_lock(&m->mu);
  s->st.enabled = conf->enabled;
  s->st.external = conf->external;
  tsvc_strlcpy(s->st.probe, tsvc_probe_kind_name(s->spec.kind), sizeof s->st.probe);
  pthread_mutex_unlock(&m->mu);
  publish(s);
  arm(s);
  return 0;
}

static int user_event(tsvc_monitor_t *m, const char *name, tsvc_health_event_type_t type,
                      tsvc_mon_done_cb cb, void *data) {
  svc_t *s = find(m, name);
  if (!s) return TSVC_ENOENT;
  waiter_t *w = NULL;
  uint64_t id = 0;
  if (cb) {
    if (!(w = malloc(sizeof *w))) return TSVC_ENOMEM;
    w->cb = cb;
    w->data = data;
    w->id = id = ++s->waiter_seq;
    /* Queued first, so that an operation that fails inside feed() tells it. */
    w->next = s->waiters;
    s->waiters = w;
  }
  tsvc_health_event_t ev = {.type = type, .now = (tsvc_ms_t)uv_now(m->loop)};
  int rc = 0;
  feed(s, &ev, &rc);
  if (id && (rc || !s->op)) {
    /* Refused, or nothing in flight to wait for: unhook our waiter if it is
       still queued (it may have been told, and freed, already). */
    for (waiter_t **pp = &s->waiters; *pp; pp = &(*pp)->next) {
      if ((*pp)->id != id) continue;
      w = *pp;
      *pp = w->next;
      if (!rc) cb(0, "", data);
      free(w);
      break;
    }
  }
  return rc;
}

int tsvc_monitor_started(tsvc_monitor_t *m, const char *name) {
  svc_t *s = find(m, name);
  if (s) set_running(s, true);
  return user_event(m, name, TSVC_HEV_STARTED, NULL, NULL);
}

int tsvc_monitor_user_start(tsvc_monitor_t *m, const char *name, tsvc_mon_done_cb cb,
                            void *data) {
  return user_event(m, name, TSVC_HEV_USER_START, cb, data);
}

int tsvc_monitor_user_stop(tsvc_monitor_t *m, const char *name, tsvc_mon_done_cb cb,
                           void *data) {
  return user_event(m, name, TSVC_HEV_USER_STOP, cb, data);
}

int tsvc_monitor_user_restart(tsvc_monitor_t *m, const char *name, tsvc_mon_done_cb cb,
                              void *data) {
  return user_event(m, name, TSVC_HEV_USER_RESTART, cb, data);
}

int tsvc_monitor_check_now(tsvc_monitor_t *m, const char *name) {
  svc_t *s = find(m, name);
  if (!s) return TSVC_ENOENT;
  if (s->check) return TSVC_EBUSY;
  tsvc_ms_t now = (tsvc_ms_t)uv_now(m->loop);
  tsvc_ms_t saved = s->h.check_at;
  /* Bring the scheduled check forward to now; the machine decides whether
     the service is checked at all in its state. */
  s->h.check_at = now;
  tsvc_health_event_t ev = {.type = TSVC_HEV_TICK, .now = now};
  tsvc_health_actions_t a;
  tsvc_health_step(&s->h, &ev, &a);
  if (!(a.flags & TSVC_HACT_CHECK)) s->h.check_at = saved;
  s->lateness = 0;
  carry_out(s, &a);
  publish(s);
  arm(s);
  return (a.flags & TSVC_HACT_CHECK) ? 0 : TSVC_ESTATE;
}

void tsvc_monitor_runtime_event(tsvc_monitor_t *m, tsvc_rt_event_type_t type,
                                const char *service, const char *msg) {
  tsvc_health_event_t ev = {.now = (tsvc_ms_t)uv_now(m->loop), .message = msg};
  switch (type) {
  case TSVC_RT_EV_DOWN:
  case TSVC_RT_EV_UP:
    ev.type = type == TSVC_RT_EV_DOWN ? TSVC_HEV_RUNTIME_DOWN : TSVC_HEV_RUNTIME_UP;
    for (size_t i = 0; i < m->n; i++) {
      svc_t *s = m->svcs[i];
      feed(s, &ev, NULL);
      /* What died meanwhile sent no event: look (DESIGN.md section 4). */
      if (type == TSVC_RT_EV_UP && s->h.state != TSVC_STATE_STOPPED && s->conf->enabled)
        inspect_svc(s, true);
    }
    return;
  case TSVC_RT_EV_STARTED:
  case TSVC_RT_EV_DIED: {
    svc_t *s = service ? find(m, service) : NULL;
    if (!s) return;
    ev.type = type == TSVC_RT_EV_STARTED ? TSVC_HEV_STARTED : TSVC_HEV_DIED;
    if (s->h.op == TSVC_OP_NONE) set_running(s, type == TSVC_RT_EV_STARTED);
    feed(s, &ev, NULL);
    return;
  }
  }
}

static void rt_event_cb(tsvc_rt_event_type_t type, const char *service, const char *msg,
                        void *data) {
  tsvc_monitor_runtime_event(data, type, service, msg);
}

int tsvc_monitor_watch_runtime(tsvc_monitor_t *m) {
  if (!m->rt || !m->rt->ops->watch) return 0;
  return m->rt->ops->watch(m->rt, rt_event_cb, m);
}

void tsvc_monitor_set_observer(tsvc_monitor_t *m, tsvc_mon_observer_cb cb, void *data) {
  m->observer = cb;
  m->observer_data = data;
}

int tsvc_monitor_get_status(tsvc_monitor_t *m, const char *name, tsvc_status_t *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&m->mu);
  svc_t *s = find(m, name);
  int rc = s ? copy_status(s, out) : TSVC_ENOENT;
  pthread_mutex_unlock(&m->mu);
  return rc;
}

int tsvc_monitor_get_all(tsvc_monitor_t *m, tsvc_status_list_t *out) {
  out->v = NULL;
  out->n = 0;
  pthread_mutex_lock(&m->mu);
  int rc = 0;
  if (m->n) {
    out->v = calloc(m->n, sizeof *out->v);
    if (!out->v) rc = TSVC_ENOMEM;
    for (size_t i = 0; !rc && i < m->n; i++) {
      rc = copy_status(m->svcs[i], &out->v[i]);
      if (!rc) out->n = i + 1;
    }
  }
  pthread_mutex_unlock(&m->mu);
  if (rc) tsvc_status_list_free(out);
  return rc;
}

int tsvc_monitor_state(tsvc_monitor_t *m, const char *name, tsvc_state_t *state,
                       tsvc_health_op_t *op) {
  svc_t *s = find(m, name);
  if (!s) return TSVC_ENOENT;
  *state = s->h.state;
  *op = s->h.op;
  return 0;
}

bool tsvc_monitor_is_healthy(tsvc_monitor_t *m, const char *name) {
  pthread_mutex_lock(&m->mu);
  svc_t *s = find(m, name);
  bool ok = s && s->st.healthy;
  pthread_mutex_unlock(&m->mu);
  return ok;
}

void tsvc_monitor_close(tsvc_monitor_t *m) {
  if (m->closed) return;
  m->closed = true;
  pthread_mutex_lock(&m->mu);
  size_t n = m->n;
  svc_t **v = m->svcs;
  m->svcs = NULL;
  m->n = m->cap = 0;
  free(m->index);
  m->index = NULL;
  m->index_cap = 0;
  pthread_mutex_unlock(&m->mu);
  for (size_t i = 0; i < n; i++) svc_close(v[i]);
  free(v);
}

void tsvc_monitor_free(tsvc_monitor_t *m) {
  if (!m) return;
  pthread_mutex_destroy(&m->mu);
  free(m->svcs);
  free(m->index);
  free(m);
}
