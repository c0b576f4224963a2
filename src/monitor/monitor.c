/* monitor.c: see monitor.h. */
#include "monitor/monitor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/index.h"
#include "common/rcstr.h"
#include "common/util.h"
#include "health/depends.h"
#include "log/log.h"
#include "monitor/check.h"
#include "probe/session.h"

/*
 * A completion owed to someone, delivered from the loop by the `later`
 * timer, never inside the call that asked: a person's operation (cb), an
 * on-demand check (check_cb), or the runtime's refusal of an operation,
 * which is answered as if the runtime had called back (op).
 */
typedef struct done_s {
  struct done_s *next;
  tsvc_mon_done_cb cb;
  tsvc_mon_check_cb check_cb;
  struct ctx_s *op;
  void *data;
  int status;
  char *msg;                /* owned; NULL: "" */
  bool have_rec;
  tsvc_check_record_t rec;  /* checks: the verdict (strings owned) */
} done_t;

/* A runtime operation or inspection in flight. It cannot be cancelled: the
   service clears svc when it goes away first. keep holds the config of
   the service conf the operation was given. */
typedef struct ctx_s {
  struct svc_s *svc;
  tsvc_ref_t *keep;
  bool verify; /* inspections: feed "died" when found not running */
} ctx_t;

/* What a service's status needs that its machine, config, spec and
   session do not hold; publish() puts a tsvc_status_t together from it on
   its stack. (A tsvc_status_t of its own was 1.3 KB a service, 930 bytes
   of it fixed-size text fields, mostly empty: issue 13.) */
typedef struct {
  bool running;
  int pid;
  size_t nwaiting;        /* entries of the service's waits that status shows */
  int64_t last_check_ms, last_healthy_ms, last_latency_us;
  double latency_sum_s;
  uint64_t checks_by_result[TSVC_RESULT__COUNT];
  uint64_t latency_buckets[TSVC_LATENCY_NBUCKETS]; /* cumulative counts */
  char probe_via[16];
  char *container_id;     /* owned, at their length; NULL: "" */
  char *container_name;
  char *last_error;
} kept_t;

typedef struct svc_s {
  tsvc_monitor_t *m;
  const tsvc_service_conf_t *conf; /* borrowed; keep holds its config */
  tsvc_ref_t *keep;
  char *name;                      /* owned */
  tsvc_health_t h;
  tsvc_probe_spec_t spec; /* strings point into conf or host */
  char *host;             /* owned, at its length; NULL: none */
  uv_timer_t timer;
  tsvc_ms_t armed_at;     /* deadline the timer is set for, or TSVC_NEVER */
  /* The check in flight: check, or a check on the session. */
  tsvc_check_t *check;
  tsvc_session_t *session; /* healthcheck.session, redis and postgres */
  bool session_checking;   /* the session owes us a verdict */
  bool session_stale;      /* the config changed under a session check:
                              make a new session when it ends */
  tsvc_ref_t *check_keep;
  int64_t check_started_wall;
  tsvc_ms_t lateness;       /* of the check the last step started */
  tsvc_ms_t check_lateness; /* of the check in flight */
  done_t *check_waiters;    /* told the verdict of the check in flight */
  done_t *next_waiters;     /* asked while a check was in flight: told the
                               verdict of the next, which starts when that
                               one ends */
  /* The runtime operation in flight (start/stop/restart). */
  ctx_t *op;
  tsvc_health_op_t failed_op; /* the operation an OP_FAILED is about, for
                                 its log line */
  done_t *op_waiters;         /* told when op is done */
  /* The inspection in flight (container id, pid, address). */
  ctx_t *info;
  bool info_again;            /* asked again meanwhile: its answer may be
                                 older than what was asked for */
  bool info_again_verify;
  done_t *info_waiters;       /* told once it answers: a (re)start's
                                 waiters, so that the new pid is known */
  kept_t st;
  char *addr;                /* where checks go (probe_address), shared by
                                the history's records (rcstr) */
  size_t hist_cap;           /* records kept (healthcheck.history) */
  tsvc_hist_t hist;          /* the last hist_cap records (board.h) */
  bool hist_clean;           /* scrubbing left its newest message as it was, */
  unsigned clean_gen;        /* ... under these secrets (tsvc_log_secrets_gen) */
  tsvc_board_slot_t *slot;
  tsvc_deadline_t at;        /* timer's deadline on the grid (arm) */
  struct svc_s *due_next;    /* in the monitor's due list (publish_soon) */
  bool listed;               /* ... while it is there */
  bool due;                  /* a publish waits for the turn's end */
  /* depends_on (docs/design.md, "Dependencies"). */
  uint64_t gen;              /* (re)starts begun (tsvc_dep_is_start) */
  uint64_t *dep_gen;         /* per entry of conf->depends_on: its
                                generation when our last (re)start went
                                (restart: true compares) */
  tsvc_wait_t *waits;        /* per entry of conf->depends_on: room for
                                what status shows while waiting */
  size_t ndeps;              /* entries of dep_gen and waits */
  bool waiting;              /* op is held until the conditions hold */
  unsigned wait_act;         /* ... and is then TSVC_HACT_START or _RESTART */
  tsvc_ms_t wait_began, wait_until; /* the wait gives up at wait_until */
} svc_t;

struct tsvc_monitor_s {
  uv_loop_t *loop;
  tsvc_runtime_t *rt;
  tsvc_board_t *board;
  bool own_board;
  svc_t **svcs;   /* in the order added */
  size_t n, cap;
  tsvc_index_t index; /* the svcs by name, for find() */
  tsvc_mon_observer_cb observer;
  void *observer_data;
  uv_timer_t later; /* delivers `ready` */
  done_t *ready, *ready_tail;
  uv_timer_t gate;  /* a pass over the services with depends_on, from the
                       loop, after a change of another service */
  size_t ndependents; /* services with depends_on */
  tsvc_ms_t grid;     /* timers due on multiples of it (set_timer_grid) */
  uv_check_t turn;    /* after the loop's poll: publishes the due list */
  uv_timer_t turn_bound; /* keeps that poll from waiting past TURN_BOUND_MS */
  svc_t *due;         /* services whose publish waits for the turn's end */
  tsvc_deadlines_t deadlines; /* the held sessions' check timeouts, shared
                                 (probe/deadline.h) */
  tsvc_deadlines_t on_grid;   /* the services' deadlines when on a grid */
  int64_t wall_off;           /* wall ms - loop ms, for to_wall */
  bool wall_off_set;
  bool closed;
};

static const double latency_bounds[] = TSVC_LATENCY_BUCKETS_S;

/* ---- time ----------------------------------------------------------------- */

static tsvc_ms_t now_of(tsvc_monitor_t *m) { return (tsvc_ms_t)uv_now(m->loop); }

/* Wall-clock ms less loop ms, for to_wall. The loop's time (uv_now) is
   the monotonic clock in ms as it was at the poll's end; the wall clock
   is read later in the turn. The offset is taken from the monotonic
   clock read now (uv_hrtime) with the wall clock, not from uv_now, which
   lags by however long the turn has run (tens of ms under load: a
   state's since moved between snapshots and a reload test saw it), and
   kept while it agrees within 2 ms (both clocks are read in whole ms):
   since reads the same in every snapshot, and a step of the wall clock
   is followed. */
static int64_t wall_off(tsvc_monitor_t *m) {
  int64_t off = tsvc_wall_ms() - (int64_t)(uv_hrtime() / 1000000);
  if (!m->wall_off_set || llabs(off - m->wall_off) > 2) {
    m->wall_off = off;
    m->wall_off_set = true;
  }
  return m->wall_off;
}

/* A loop time as wall-clock ms (off: wall_off); 0 for never. */
static int64_t to_wall(tsvc_ms_t t, int64_t off) {
  return t == TSVC_NEVER ? 0 : (int64_t)t + off;
}

/* ---- lookup (loop thread) -------------------------------------------------- */

/* By name in O(1): API calls and runtime events name services, and a
   monitor may watch thousands. */
static svc_t *find(tsvc_monitor_t *m, const char *name) {
  return tsvc_index_find(&m->index, name);
}

/* ---- completions ------------------------------------------------------------ */

static done_t *done_new(tsvc_mon_done_cb cb, tsvc_mon_check_cb check_cb, void *data) {
  done_t *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->cb = cb;
  d->check_cb = check_cb;
  d->data = data;
  return d;
}

static void op_cb(int status, const char *msg, void *data);

static void deliver(done_t *d) {
  const char *msg = d->msg ? d->msg : "";
  if (d->op) op_cb(d->status, msg, d->op);
  else if (d->cb) d->cb(d->status, msg, d->data);
  else if (d->check_cb) d->check_cb(d->status, d->have_rec ? &d->rec : NULL, d->data);
  free(d->msg);
  free(d->rec.message);
  free(d->rec.output);
  free(d->rec.probe_address);
  free(d);
}

static void later_cb(uv_timer_t *t) {
  tsvc_monitor_t *m = t->data;
  /* What is delivered may queue more: that goes in the next round. */
  done_t *d = m->ready;
  m->ready = m->ready_tail = NULL;
  while (d) {
    done_t *next = d->next;
    deliver(d);
    d = next;
  }
}

/* Queue d to be delivered from the loop with status and msg (copied). */
static void queue(tsvc_monitor_t *m, done_t *d, int status, const char *msg) {
  d->status = status;
  d->msg = msg && *msg ? strdup(msg) : NULL; /* out of memory: "" */
  d->next = NULL;
  if (m->ready_tail) m->ready_tail->next = d;
  else m->ready = d;
  m->ready_tail = d;
  if (!uv_is_closing((uv_handle_t *)&m->later)) uv_timer_start(&m->later, later_cb, 0, 0);
}

/* Queue every waiter of *list with status and msg. */
static void tell(tsvc_monitor_t *m, done_t **list, int status, const char *msg) {
  done_t *d = *list;
  *list = NULL;
  while (d) {
    done_t *next = d->next;
    queue(m, d, status, msg);
    d = next;
  }
}

/* Queue every check waiter of *list with the verdict. */
static void tell_verdict(tsvc_monitor_t *m, done_t **list, const tsvc_check_record_t *r) {
  done_t *d = *list;
  *list = NULL;
  while (d) {
    done_t *next = d->next;
    d->have_rec = true;
    d->rec = *r;
    d->rec.message = strdup(r->message ? r->message : "");
    d->rec.output = r->output ? strdup(r->output) : NULL;
    d->rec.probe_address = r->probe_address ? strdup(r->probe_address) : NULL;
    if (!d->rec.message) d->have_rec = false; /* out of memory: no record */
    queue(m, d, d->have_rec ? 0 : TSVC_ENOMEM, NULL);
    d = next;
  }
}

static void push(done_t **list, done_t *d) {
  d->next = *list;
  *list = d;
}

/* ---- status ----------------------------------------------------------------- */

/* Keep v (NULL or "": none) in *text at its length, unless it is there
   already. Out of memory: the old text stays. */
static void set_text(char **text, const char *v) {
  if (!v || !*v) {
    free(*text);
    *text = NULL;
    return;
  }
  if (*text && strcmp(*text, v) == 0) return;
  char *c = strdup(v);
  if (!c) return;
  free(*text);
  *text = c;
}

/* Publish the service's status as a new snapshot. Out of memory: readers
   keep the previous one. */
static void publish(svc_t *s) {
  tsvc_monitor_t *m = s->m;
  if (m->closed) return;
  s->due = false; /* what publish_soon asked for is done (turn_cb skips it) */
  tsvc_ms_t now = now_of(m);
  int64_t off = wall_off(m);
  const tsvc_health_t *h = &s->h;
  /* The status for the snapshot to pack: the fields kept in s->st, then
     what the machine, the config and the session say now. Its text fields
     go to the snapshot as strings (tsvc_snap_new_texts): the 1.3 KB
     status is neither zeroed nor filled with them (issue 13: zeroing and
     copying were ~600 instructions of a held check). */
  tsvc_status_t full;
  tsvc_status_zero_fixed(&full);
  tsvc_status_t *st = &full;
  st->name = s->name;
  st->running = s->st.running;
  st->enabled = s->conf->enabled;
  st->external = s->conf->external;
  st->pid = s->st.pid;
  st->last_check_ms = s->st.last_check_ms;
  st->last_healthy_ms = s->st.last_healthy_ms;
  st->latency_sum_s = s->st.latency_sum_s;
  st->last_latency_us = s->st.last_latency_us;
  memcpy(st->checks_by_result, s->st.checks_by_result, sizeof st->checks_by_result);
  memcpy(st->latency_buckets, s->st.latency_buckets, sizeof st->latency_buckets);
  const char *tx[TSVC_SNAP_NTEXTS] = {
      [TSVC_SNAP_PROBE] = tsvc_probe_kind_name(s->spec.kind),
      [TSVC_SNAP_PROBE_VIA] = s->st.probe_via,
      [TSVC_SNAP_PROBE_ADDRESS] = s->addr,
      [TSVC_SNAP_CONTAINER_ID] = s->st.container_id,
      [TSVC_SNAP_CONTAINER_NAME] = s->st.container_name,
      [TSVC_SNAP_LAST_ERROR] = s->st.last_error,
  };
  st->state = h->state;
  st->healthy = h->state == TSVC_STATE_HEALTHY;
  st->since_ms = to_wall(h->since, off);
  st->next_check_ms = h->checking ? 0 : to_wall(h->check_at, off);
  st->consecutive_failures = h->fails;
  st->consecutive_successes = h->successes;
  st->retries = h->p.retries;
  st->success_threshold = h->p.success_threshold;
  st->checks_total = h->checks_total;
  st->failures_total = h->failures_total;
  st->restarts_total = h->restarts_total;
  st->restarts_in_window = tsvc_health_restarts_in_window(h, now);
  st->max_restarts = h->p.max_restarts;
  st->session = s->session != NULL;
  tsvc_session_info_t si; /* its last_error is a text of the snapshot */
  if (s->session) {
    tsvc_session_info(s->session, &si);
    st->session_held = si.held;
    st->session_connects = si.connects;
    st->session_held_checks = si.held_checks;
    st->session_full_checks = si.full_checks;
    tx[TSVC_SNAP_SESSION_ERROR] = si.last_error;
  }
  if (s->waiting) {
    st->waiting_for = s->waits;
    st->nwaiting = s->st.nwaiting;
    st->wait_until_ms = to_wall(s->wait_until, off);
  }
  tsvc_snap_t *snap = tsvc_snap_new_texts(st, tx, &s->hist);
  if (snap) tsvc_board_publish(m->board, s->slot, snap);
}

/* The longest a deferred publish waits for the loop's poll to return: a
   check that has not answered by then is shown "checking" at that poll's
   end (the timer only ends the poll; turn_cb publishes). */
#define TURN_BOUND_MS 20

static void turn_bound_cb(uv_timer_t *t) {
  (void)t; /* the poll returns; turn_cb runs after it */
}

static void turn_cb(uv_check_t *t) {
  tsvc_monitor_t *m = t->data;
  svc_t *s = m->due;
  m->due = NULL;
  uv_check_stop(&m->turn);
  uv_timer_stop(&m->turn_bound);
  for (svc_t *next; s; s = next) {
    next = s->due_next;
    s->due_next = NULL;
    s->listed = false;
    if (s->due) publish(s);
  }
}

/* Publish s at the end of this turn of the loop, after its poll, unless
 * something publishes it before. A check started from a timer publishes
 * "checking" (next_check_ms 0) this way: a held check's reply is mostly
 * read in the same turn's poll, and its verdict's publish then makes the
 * first one needless (issue 13: two snapshots a check, a third of the
 * loop's instructions of a held check). A check still in flight after the
 * poll is published at the poll's end, which comes within TURN_BOUND_MS. */
static void publish_soon(svc_t *s) {
  tsvc_monitor_t *m = s->m;
  if (m->closed) return;
  s->due = true;
  if (s->listed) return; /* (published since it was listed) */
  s->listed = true;
  s->due_next = m->due;
  if (!m->due) {
    uv_check_start(&m->turn, turn_cb);
    uv_timer_start(&m->turn_bound, turn_bound_cb, TURN_BOUND_MS, 0);
  }
  m->due = s;
}

/* Take s off the due list (it goes away). */
static void unlist_due(svc_t *s) {
  for (svc_t **p = &s->m->due; s->listed && *p; p = &(*p)->due_next) {
    if (*p == s) {
      *p = s->due_next;
      break;
    }
  }
  s->due_next = NULL;
  s->due = s->listed = false;
}

/* The record of a check into *out, its message scrubbed into msg (the
   caller's, TSVC_PROBE_MSG_LEN bytes: out->message points there, no copy a
   check), its output malloc'd (the caller frees it). */
static void record_check(svc_t *s, const tsvc_probe_result_t *res, tsvc_check_record_t *out,
                         char *msg) {
  int64_t end = tsvc_wall_ms();
  kept_t *st = &s->st;
  /* Scrubbed once here: every copy of the record says the same. A message
     that repeats the newest record's, which scrubbing left as it was under
     the same secrets, scrubs to itself (a held check's "PONG", a steady
     error): taken as it is (issue 13: scrubbing was ~550 instructions of
     a held check). */
  unsigned gen = tsvc_log_secrets_gen();
  const char *last = tsvc_hist_last_message(&s->hist);
  bool clean;
  if (s->hist_clean && s->clean_gen == gen && last && strcmp(last, res->message) == 0) {
    tsvc_strlcpy(msg, res->message, TSVC_PROBE_MSG_LEN);
    clean = true;
  } else {
    tsvc_log_scrub(msg, TSVC_PROBE_MSG_LEN, res->message);
    clean = strcmp(msg, res->message) == 0;
  }
  char *output = NULL;
  if (res->output) {
    size_t n = strlen(res->output) + 1;
    if ((output = malloc(n))) tsvc_log_scrub(output, n, res->output);
  }
  *out = (tsvc_check_record_t){.start_ms = s->check_started_wall,
                               .end_ms = end,
                               .result = res->result,
                               .exit_code = res->exit_code,
                               .latency_us = res->latency_us,
                               .message = msg,
                               .output = output,
                               /* Borrowed: the record takes its own
                                  reference (board.h). */
                               .probe_address = s->addr};
  /* Out of memory: the history goes without this record. */
  bool pushed = tsvc_hist_push(&s->hist, s->hist_cap, out) == 0;
  s->hist_clean = pushed && clean;
  s->clean_gen = gen;
  st->last_check_ms = end;
  st->last_latency_us = res->latency_us;
  if ((unsigned)res->result < TSVC_RESULT__COUNT) st->checks_by_result[res->result]++;
  double secs = (double)res->latency_us / 1e6;
  st->latency_sum_s += secs;
  for (size_t i = 0; i < TSVC_LATENCY_NBUCKETS; i++)
    if (i == TSVC_LATENCY_NBUCKETS - 1 || secs <= latency_bounds[i]) st->latency_buckets[i]++;
  if (res->result == TSVC_RESULT_OK) st->last_healthy_ms = end;
  else set_text(&st->last_error, msg);
}

static void free_history(svc_t *s) { tsvc_hist_clear(&s->hist); }

/* ---- logging and observers ------------------------------------------------ */

static void notify(svc_t *s, tsvc_mon_event_type_t type, tsvc_state_t from, tsvc_state_t to,
                   const char *reason, tsvc_result_t result, int64_t lateness) {
  tsvc_monitor_t *m = s->m;
  if (!m->observer) return;
  tsvc_ms_t now = now_of(m);
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
  tsvc_ms_t now = now_of(s->m);
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

static int feed(svc_t *s, const tsvc_health_event_t *ev);
static void timer_cb(uv_timer_t *t);
static void due_cb(tsvc_deadline_t *d);

/* The step of the grid s's deadlines fall on (tsvc_timer_step), 0: none. */
static tsvc_ms_t step_of(const svc_t *s) {
  const tsvc_health_params_t *p = &s->h.p;
  tsvc_ms_t iv = p->interval;
  if (p->start_interval > 0 && (iv <= 0 || p->start_interval < iv)) iv = p->start_interval;
  return tsvc_timer_step(s->m->grid, iv);
}

/* t moved up to the next multiple of step (0: t). */
static tsvc_ms_t on_step(tsvc_ms_t t, tsvc_ms_t step) {
  return step > 1 ? (t + step - 1) / step * step : t;
}

/* Set the service's one timer to the machine's earliest deadline. */
static void arm(svc_t *s) {
  if (s->m->closed) return;
  tsvc_ms_t d = tsvc_health_next_deadline(&s->h);
  if (s->waiting && s->wait_until < d) d = s->wait_until;
  if (d == s->armed_at) return;
  s->armed_at = d;
  if (d == TSVC_NEVER) {
    uv_timer_stop(&s->timer);
    tsvc_deadline_stop(&s->at);
    return;
  }
  tsvc_ms_t now = now_of(s->m);
  /* On the grid: the services due in one step of it share one wake-up of
     the loop (tsvc_monitor_set_timer_grid), and one bucket of the on_grid
     deadline set: no timer heap operation a check (issue 13: the timer's
     pop and push were ~1,000 instructions and ~6 cache misses a held
     check among 1,000 services). The same moment as the service's timer
     would fire. A deadline already due is not put off. */
  tsvc_ms_t g = step_of(s);
  if (d > now) d = on_step(d, g);
  if (g > 1 &&
      tsvc_deadline_start(&s->m->on_grid, &s->at,
                          (uint64_t)now_of(s->m) + (uint64_t)(d > now ? d - now : 0),
                          due_cb) == 0) {
    uv_timer_stop(&s->timer);
    return;
  }
  tsvc_deadline_stop(&s->at);
  uv_timer_start(&s->timer, timer_cb, (uint64_t)(d > now ? d - now : 0), 0);
}

static ctx_t *ctx_new(svc_t *s, bool verify) {
  ctx_t *c = malloc(sizeof *c);
  if (!c) return NULL;
  c->svc = s;
  c->keep = tsvc_ref_get(s->keep);
  c->verify = verify;
  return c;
}

/* The end of a ctx_t: its config may go. */
static svc_t *ctx_end(ctx_t *c) {
  svc_t *s = c->svc;
  tsvc_ref_put(c->keep);
  free(c);
  return s;
}

static void gate_soon(tsvc_monitor_t *m);

static void op_cb(int status, const char *msg, void *data) {
  svc_t *s = ctx_end(data);
  if (!s) return; /* the service went away meanwhile */
  s->op = NULL;
  /* Whether service_started holds for it may have changed. */
  gate_soon(s->m);
  /* Copy: the message is only valid during this callback. */
  char why[1024];
  tsvc_strlcpy(why, status ? (msg && *msg ? msg : tsvc_strerror(status)) : "", sizeof why);
  tsvc_health_event_t ev = {.now = now_of(s->m)};
  if (status) {
    ev.type = TSVC_HEV_OP_FAILED;
    ev.message = why;
    s->failed_op = s->h.op;
  } else {
    ev.type = TSVC_HEV_OP_DONE;
    s->st.running = s->h.op != TSVC_OP_STOP;
  }
  char reason[1024];
  tsvc_strlcpy(reason, why, sizeof reason);
  feed(s, &ev);
  if (status) {
    /* Whoever waits learns what happens next: a start or restart that
       failed is retried on the backoff schedule, or given up. */
    size_t n = strlen(reason);
    tsvc_ms_t now = now_of(s->m);
    if (s->h.state == TSVC_STATE_UNHEALTHY && s->h.restart_at != TSVC_NEVER) {
      char in[32];
      tsvc_duration_format(s->h.restart_at > now ? s->h.restart_at - now : 0, in, sizeof in);
      snprintf(reason + n, sizeof reason - n, " (%s again in %s)",
               s->h.not_started ? "starting" : "restarting", in);
    } else if (s->h.state == TSVC_STATE_FAILED) {
      int k = tsvc_health_restarts_in_window(&s->h, now);
      snprintf(reason + n, sizeof reason - n, " (gave up after %d attempt%s)", k,
               k == 1 ? "" : "s");
    }
    tell(s->m, &s->op_waiters, status, reason);
    return;
  }
  /* Done. After a (re)start, wait for the inspection feed() asked for, so
     that the reply shows the new pid and container. */
  if (s->info) {
    while (s->op_waiters) {
      done_t *d = s->op_waiters;
      s->op_waiters = d->next;
      push(&s->info_waiters, d);
    }
  } else {
    tell(s->m, &s->op_waiters, 0, NULL);
  }
}

static void inspect_svc(svc_t *s, bool verify);
static void prepare_spec(svc_t *s);

static void info_cb(int status, const char *msg, const tsvc_rt_info_t *info, void *data) {
  bool verify = ((ctx_t *)data)->verify;
  svc_t *s = ctx_end(data);
  (void)msg;
  if (!s) return;
  s->info = NULL;
  if (!status) {
    s->st.running = info->running;
    s->st.pid = info->pid;
    set_text(&s->st.container_id, info->id);
    set_text(&s->st.container_name, info->name);
    /* Where probes connect, unless the config or the command names a host:
       the runtime's route, which the inspection may have changed. */
    if (s->m->rt && s->m->rt->ops->probe_route)
      prepare_spec(s);
    else if (info->host[0] && !s->conf->healthcheck.address && s->spec.host == s->host) {
      set_text(&s->host, info->host);
      s->spec.host = s->host;
    }
  }
  if (s->info_again) {
    /* Asked again while this one was out: its answer may predate what the
       asker waits for (a restart that ended meanwhile). */
    bool v = s->info_again_verify;
    s->info_again = s->info_again_verify = false;
    inspect_svc(s, v);
  } else if (!status && verify && !info->running && s->h.op == TSVC_OP_NONE) {
    /* It died while the runtime could not tell us: found by inspection. */
    char why[96];
    if (info->exists) snprintf(why, sizeof why, "not running: exited (%d)", info->exit_code);
    else snprintf(why, sizeof why, "not running: does not exist");
    tsvc_health_event_t ev = {.type = TSVC_HEV_DIED, .now = now_of(s->m), .message = why};
    feed(s, &ev);
  }
  if (!s->info) tell(s->m, &s->info_waiters, 0, NULL);
  publish(s);
}

/* Refresh container id / pid / address; with verify, a service found not
   running is fed as died. */
static void inspect_svc(svc_t *s, bool verify) {
  tsvc_runtime_t *rt = s->m->rt;
  if (!rt || s->m->closed) return;
  if (s->info) {
    s->info_again = true;
    s->info_again_verify |= verify;
    return;
  }
  ctx_t *c = ctx_new(s, verify);
  if (!c) return;
  if (rt->ops->inspect(rt, s->conf, info_cb, c) == 0) s->info = c;
  else ctx_end(c);
}

/* The operation asked for cannot even begin (out of memory): the machine
   hears it now (the caller's waiters are queued, so they are still told
   from the loop). */
static void op_failed_now(svc_t *s, const char *why) {
  tsvc_health_event_t ev = {.type = TSVC_HEV_OP_FAILED, .now = now_of(s->m), .message = why};
  s->failed_op = s->h.op;
  feed(s, &ev);
  tell(s->m, &s->op_waiters, TSVC_ENOMEM, why);
}

/* ---- depends_on (docs/design.md, "Dependencies") ---------------------------- */

/* Look at each dependency of s: s->waits gets those whose condition does
   not hold (s->st.nwaiting of them), why (may be NULL) says so for people.
   Returns true when every condition holds. */
static bool deps_hold(svc_t *s, char *why, size_t len) {
  const tsvc_service_conf_t *c = s->conf;
  size_t n = 0, wl = 0;
  if (why && len) why[0] = '\0';
  for (size_t i = 0; i < c->depends_on.n && i < s->ndeps; i++) {
    tsvc_dep_condition_t cond = c->depends ? c->depends[i].condition : TSVC_DEP_STARTED;
    svc_t *d = find(s->m, c->depends_on.v[i]);
    tsvc_dep_view_t v = {.monitored = false, .state = TSVC_STATE_STOPPED};
    if (d) v = tsvc_dep_view_of(&d->h);
    if (tsvc_dep_holds(cond, &v)) continue;
    tsvc_wait_t *w = &s->waits[n++];
    tsvc_strlcpy(w->service, c->depends_on.v[i], sizeof w->service);
    w->condition = tsvc_dep_condition_name(cond);
    w->state = v.state;
    if (why && wl + 1 < len) {
      char one[256];
      tsvc_dep_why(c->depends_on.v[i], cond, &v, one, sizeof one);
      int k = snprintf(why + wl, len - wl, "%s%s", wl ? "; " : "", one);
      wl = k < 0 ? len : wl + (size_t)k;
    }
  }
  s->st.nwaiting = n;
  return n == 0;
}

/* The generations of s's dependencies as its (re)start goes. */
static void note_dep_gens(svc_t *s) {
  for (size_t i = 0; i < s->ndeps && i < s->conf->depends_on.n; i++) {
    svc_t *d = find(s->m, s->conf->depends_on.v[i]);
    s->dep_gen[i] = d ? d->gen : 0;
  }
}

/* Ask the runtime to do what s->op stands for. Its answer (op_cb) always
   comes later from the loop: a refusal at once is answered through
   `later`, so that the machine and whoever waits hear of it the same way. */
static void launch_op(svc_t *s, unsigned act) {
  tsvc_runtime_t *rt = s->m->rt;
  ctx_t *c = s->op;
  done_t *d = done_new(NULL, NULL, NULL);
  if (!d) {
    s->op = NULL;
    ctx_end(c);
    op_failed_now(s, "out of memory");
    return;
  }
  if (act != TSVC_HACT_STOP) note_dep_gens(s);
  int rc = TSVC_EINVAL;
  if (rt) {
    if (act == TSVC_HACT_RESTART) rc = rt->ops->restart(rt, s->conf, op_cb, c);
    else if (act == TSVC_HACT_START) rc = rt->ops->start(rt, s->conf, op_cb, c);
    else rc = rt->ops->stop(rt, s->conf, op_cb, c);
  }
  if (!rc) {
    free(d);
    return;
  }
  d->op = c;
  queue(s->m, d, rc, rt ? tsvc_strerror(rc) : "no runtime to act with");
}

/* The conditions hold: the held operation goes. */
static void release(svc_t *s) {
  char waited[32];
  tsvc_duration_format(now_of(s->m) - s->wait_began, waited, sizeof waited);
  s->waiting = false;
  s->st.nwaiting = 0;
  log_line(s, TSVC_LOG_INFO, "wait_over", 0, 0, false, "the conditions of depends_on hold",
           "waited", waited);
  launch_op(s, s->wait_act);
  publish(s);
  arm(s);
}

/* depends_timeout is over: the held operation fails (a failed start or
   restart, retried on the backoff schedule). */
static void wait_timeout(svc_t *s) {
  char why[600], msg[700], waited[32];
  deps_hold(s, why, sizeof why);
  /* The timeout as configured: the timer may fire a little late. */
  tsvc_duration_format(s->wait_until - s->wait_began, waited, sizeof waited);
  snprintf(msg, sizeof msg, "gave up waiting for depends_on after %s: %s", waited, why);
  s->waiting = false;
  s->st.nwaiting = 0;
  op_cb(TSVC_ETIMEDOUT, msg, s->op);
}

/* A person stops a service whose (re)start is held: the held operation
   ends as a failed one (it never reached the runtime), so that the stop
   that follows finds nothing in flight. */
static void cancel_wait(svc_t *s) {
  s->waiting = false;
  s->st.nwaiting = 0;
  op_cb(TSVC_ECANCELED, "cancelled while waiting for depends_on: stop requested", s->op);
}

/* A dependent whose dependency (restart: true) restarted since its own
   start, and is healthy again: restarted now, as a person would. */
static void cascade(svc_t *s) {
  const tsvc_service_conf_t *c = s->conf;
  if (!c->depends || c->external || !c->enabled) return;
  tsvc_dep_view_t self = tsvc_dep_view_of(&s->h);
  for (size_t i = 0; i < s->ndeps && i < c->depends_on.n; i++) {
    if (!c->depends[i].restart) continue;
    svc_t *d = find(s->m, c->depends_on.v[i]);
    if (!d) continue;
    tsvc_dep_view_t v = tsvc_dep_view_of(&d->h);
    if (!tsvc_dep_restart_due(&v, d->gen, s->dep_gen[i], &self)) continue;
    char why[160];
    snprintf(why, sizeof why, "%s restarted (depends_on: restart: true)", d->name);
    tsvc_health_event_t ev = {.type = TSVC_HEV_USER_RESTART, .now = now_of(s->m),
                              .message = why};
    feed(s, &ev);
    return;
  }
}

/* The pass over the services with depends_on, after another one changed:
   held operations whose conditions hold go; dependents owed a restart get
   it. */
static void gate_cb(uv_timer_t *t) {
  tsvc_monitor_t *m = t->data;
  for (size_t i = 0; i < m->n && !m->closed; i++) {
    svc_t *s = m->svcs[i];
    if (!s->ndeps) continue;
    if (!s->waiting) {
      cascade(s);
      continue;
    }
    /* What it waits for may have changed: published either way. */
    if (deps_hold(s, NULL, 0)) release(s);
    else publish(s);
  }
}

static void gate_soon(tsvc_monitor_t *m) {
  if (m->ndependents && !m->closed) uv_timer_start(&m->gate, gate_cb, 0, 0);
}

/* Carry out the machine's start, restart or stop: a (re)start of a service
   with depends_on is held until their conditions hold (s->waiting), at
   most depends_timeout. */
static void run_op(svc_t *s, unsigned act) {
  ctx_t *c = ctx_new(s, false);
  if (!c) {
    op_failed_now(s, "out of memory");
    return;
  }
  s->op = c;
  char why[600];
  if (act != TSVC_HACT_STOP && s->ndeps && !deps_hold(s, why, sizeof why)) {
    tsvc_ms_t now = now_of(s->m);
    char t[32];
    s->waiting = true;
    s->wait_act = act;
    s->wait_began = now;
    s->wait_until = now + s->conf->depends_timeout;
    log_line(s, TSVC_LOG_INFO, "wait", 0, 0, false, why, "timeout",
             tsvc_duration_format(s->conf->depends_timeout, t, sizeof t));
    return; /* the caller publishes and arms */
  }
  launch_op(s, act);
}

static void check_cb(const tsvc_probe_result_t *res, void *data);
static void session_renew(svc_t *s);

static void start_check(svc_t *s) {
  s->check_started_wall = tsvc_wall_ms();
  s->check_lateness = s->lateness;
  s->check_keep = tsvc_ref_get(s->keep);
  tsvc_board_note_in_flight(s->m->board, 1);
  int rc;
  if (s->session) {
    rc = tsvc_session_check(s->session, check_cb, s);
    s->session_checking = rc == 0;
  } else {
    rc = tsvc_check_start(s->m->loop, s->m->rt, s->conf, &s->spec, check_cb, s, &s->check);
  }
  if (rc) {
    /* Could not even start: that is this check's verdict. */
    s->check = NULL;
    tsvc_probe_result_t res = {.result = TSVC_RESULT_RUNTIME_ERROR, .exit_code = -1};
    snprintf(res.message, sizeof res.message, "cannot start the %s probe: %s",
             tsvc_probe_kind_name(s->spec.kind), tsvc_strerror(rc));
    check_cb(&res, s);
  }
}

/* The check in flight is dropped: whoever waits for a verdict is told. */
static void drop_check(svc_t *s, int status, const char *why) {
  if (s->check || s->session_checking) {
    if (s->check) tsvc_check_cancel(s->check);
    else tsvc_session_cancel(s->session);
    s->check = NULL;
    s->session_checking = false;
    tsvc_board_note_in_flight(s->m->board, -1);
    tsvc_ref_put(s->check_keep);
    s->check_keep = NULL;
  }
  tell(s->m, &s->check_waiters, status, why);
  tell(s->m, &s->next_waiters, status, why);
}

static void carry_out(svc_t *s, const tsvc_health_actions_t *a) {
  if (a->flags & TSVC_HACT_CANCEL_CHECK)
    drop_check(s, TSVC_ENOTCHECKED, "the check was cancelled");
  /* Published before anyone is told: a subscriber told "healthy" that asks
     for the status must read "healthy" (feed() publishes again after the
     actions). */
  if (a->nchanges) publish(s);
  /* A start in flight is `starting`: that change is logged on the start's
     own line (action=start state=starting prev=stopped); a change into
     `restarting` on the restart's line. Observers hear of every change. */
  const tsvc_health_change_t *start = NULL;
  if ((a->flags & TSVC_HACT_START) && a->nchanges &&
      a->changes[a->nchanges - 1].to == TSVC_STATE_STARTING)
    start = &a->changes[a->nchanges - 1];
  for (int i = 0; i < a->nchanges; i++) {
    if (!tsvc_dep_is_start(a->changes[i].from, a->changes[i].to)) continue;
    /* A (re)start of its own: its dependents may owe one (restart: true).
       One that reaches the runtime notes its dependencies' generations as
       it goes (launch_op), not here: a held one may never go (its checks
       pass meanwhile and the retry is dropped), and must still owe itself
       the restart: true of a dependency that restarted since its last real
       start. One without an operation (a container adopted at `up`, or
       started behind our back) runs against its dependencies as they are
       now. A container adopted at `up` owes its dependents nothing: they
       are adopted after it. */
    s->gen++;
    if (!(a->flags & (TSVC_HACT_RESTART | TSVC_HACT_START))) note_dep_gens(s);
  }
  if (a->nchanges) gate_soon(s->m);
  for (int i = 0; i < a->nchanges; i++) {
    const tsvc_health_change_t *c = &a->changes[i];
    if (c == start) continue; /* logged and told with the action below */
    if (c->to != TSVC_STATE_RESTARTING)
      log_line(s, change_level(c->to), NULL, c->from, c->to, true, c->reason, NULL, NULL);
    notify(s, TSVC_MON_EV_CHANGE, c->from, c->to, c->reason, TSVC_RESULT_OK, 0);
  }
  if (a->flags & TSVC_HACT_OP_FAILED) {
    /* Named after what failed: a person's start that fails is no restart. */
    const char *what = s->failed_op == TSVC_OP_START  ? "start_failed"
                       : s->failed_op == TSVC_OP_STOP ? "stop_failed"
                                                      : "restart_failed";
    char why[sizeof(((tsvc_status_t *)0)->last_error)];
    tsvc_log_scrub(why, sizeof why, a->reason ? a->reason : "");
    set_text(&s->st.last_error, why);
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
    tsvc_duration_format(a->restart_at - now_of(s->m), in, sizeof in);
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
    if (ops == TSVC_HACT_STOP) s->st.running = false;
    run_op(s, ops);
  }
  if (a->flags & TSVC_HACT_CHECK) start_check(s);
}

/* Feed one event to the machine, carry out its actions, publish, re-arm.
   A check it starts counts as on time (lateness 0). Returns the machine's
   answer (0, or why it refused: nothing changed then). */
static int feed(svc_t *s, const tsvc_health_event_t *ev) {
  tsvc_health_actions_t a;
  int rc = tsvc_health_step(&s->h, ev, &a);
  if (rc) return rc;
  /* (Re)started: its container id, pid and address are new. A start in
     flight is starting too, but there is nothing to look at yet. */
  if (s->h.state == TSVC_STATE_STARTING && s->h.op == TSVC_OP_NONE &&
      ((a.flags & TSVC_HACT_CHANGED) || ev->type == TSVC_HEV_OP_DONE))
    inspect_svc(s, false);
  s->lateness = 0;
  carry_out(s, &a);
  publish(s);
  arm(s);
  return 0;
}

static void svc_due(svc_t *s);

static void timer_cb(uv_timer_t *t) { svc_due(t->data); }

static void due_cb(tsvc_deadline_t *d) { svc_due((svc_t *)((char *)d - offsetof(svc_t, at))); }

/* The service's deadline came (its timer or its on_grid deadline). */
static void svc_due(svc_t *s) {
  s->armed_at = TSVC_NEVER;
  if (s->waiting) {
    /* Its only deadline while an operation is held: depends_timeout. */
    if (deps_hold(s, NULL, 0)) release(s);
    else if (now_of(s->m) >= s->wait_until) wait_timeout(s);
    arm(s);
    return;
  }
  tsvc_ms_t due = s->h.check_at;
  tsvc_health_event_t ev = {.type = TSVC_HEV_TICK, .now = now_of(s->m)};
  tsvc_health_actions_t a;
  if (tsvc_health_step(&s->h, &ev, &a) == 0) {
    /* How late the check starts against its schedule: from the step of
       the grid its deadline was put on (arm), or from the deadline
       itself when it was due already then (not put off). */
    tsvc_ms_t on = due != TSVC_NEVER ? on_step(due, step_of(s)) : due;
    s->lateness = (a.flags & TSVC_HACT_CHECK) && due != TSVC_NEVER
                      ? ev.now - (on <= ev.now ? on : due)
                      : 0;
    if (a.flags & TSVC_HACT_CHECK) tsvc_board_note_lateness(s->m->board, s->lateness);
    carry_out(s, &a);
    publish_soon(s);
  }
  arm(s);
}

/* Bring the scheduled check forward to now. Returns 0 when a check
   started, else TSVC_ENOTCHECKED (the machine does not check the service
   in its state) with nothing changed. waiters (a list, may be NULL) are
   told the verdict of that check: they are in place before it starts, as
   a check that cannot start has its verdict at once. On an error they are
   left to the caller. */
static int check_now(svc_t *s, done_t *waiters) {
  tsvc_ms_t now = now_of(s->m);
  tsvc_ms_t saved = s->h.check_at;
  s->h.check_at = now;
  tsvc_health_event_t ev = {.type = TSVC_HEV_TICK, .now = now};
  tsvc_health_actions_t a;
  tsvc_health_step(&s->h, &ev, &a);
  if (!(a.flags & TSVC_HACT_CHECK)) {
    s->h.check_at = saved;
  } else {
    while (waiters) {
      done_t *next = waiters->next;
      push(&s->check_waiters, waiters);
      waiters = next;
    }
  }
  s->lateness = 0;
  carry_out(s, &a);
  publish(s);
  arm(s);
  return (a.flags & TSVC_HACT_CHECK) ? 0 : TSVC_ENOTCHECKED;
}

static void check_cb(const tsvc_probe_result_t *res, void *data) {
  svc_t *s = data;
  s->check = NULL;
  s->session_checking = false;
  if (s->session_stale) session_renew(s);
  tsvc_board_note_in_flight(s->m->board, -1);
  tsvc_check_record_t rec;
  char msg[TSVC_PROBE_MSG_LEN];
  record_check(s, res, &rec, msg);
  if (tsvc_log_enabled(TSVC_LOG_DEBUG)) {
    char lat[32];
    snprintf(lat, sizeof lat, "%.3fms", (double)res->latency_us / 1000.0);
    log_line(s, TSVC_LOG_DEBUG, "check", 0, 0, false, res->message, "latency", lat);
  }
  notify(s, TSVC_MON_EV_CHECK, s->h.state, s->h.state, res->message, res->result,
         s->check_lateness);
  tsvc_health_event_t ev = {.type = TSVC_HEV_CHECK_RESULT,
                            .now = now_of(s->m),
                            .result = res->result,
                            .message = res->message};
  feed(s, &ev);
  tsvc_ref_put(s->check_keep);
  s->check_keep = NULL;
  tell_verdict(s->m, &s->check_waiters, &rec);
  free(rec.output);
  if (s->next_waiters && !s->check && !s->session_checking) {
    /* Asked for while this one was in flight: theirs starts now. */
    done_t *w = s->next_waiters;
    s->next_waiters = NULL;
    if (check_now(s, w) != 0) tell(s->m, &w, TSVC_ENOTCHECKED, "the check was cancelled");
  }
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

/* A new session for the current spec, or none when the config asks for
   none or the probe cannot hold one. A session with a check in flight is
   replaced when that check ends (session_stale). */
static void session_renew(svc_t *s) {
  if (s->session_checking) {
    s->session_stale = true;
    return;
  }
  s->session_stale = false;
  tsvc_session_free(s->session);
  s->session = NULL;
  const tsvc_healthcheck_conf_t *hc = &s->conf->healthcheck;
  if (!hc->session || !tsvc_session_supported(s->spec.kind)) return;
  if (tsvc_session_new(s->m->loop, &s->spec, hc->full_every > 0 ? hc->full_every : 60000,
                       &s->session) != 0)
    s->session = NULL; /* no memory: the checks connect each time */
  else tsvc_session_set_deadlines(s->session, &s->m->deadlines);
}

static void prepare_spec(svc_t *s) {
  tsvc_check_where_t where;
  char host[256];
  tsvc_check_prepare_where(s->conf, s->m->rt, &s->spec, host, sizeof host, &where);
  if (s->spec.host == host) {
    /* Kept at its length (out of memory: the last one; none: NULL, the
       probes' 127.0.0.1). */
    set_text(&s->host, host);
    s->spec.host = s->host;
  }
  if (!s->addr || strcmp(s->addr, where.address) != 0) {
    char *a = tsvc_rcstr_new(where.address);
    if (a) { /* (out of memory: the records keep the last one) */
      tsvc_rcstr_unref(s->addr);
      s->addr = a;
    }
  }
  tsvc_strlcpy(s->st.probe_via, where.via, sizeof s->st.probe_via);
  session_renew(s);
}

/* A jitter seed per service: its name, and the time, so that two monitors
   of the same services do not jitter in step. */
static uint64_t seed_of(const char *name) {
  uint64_t x = tsvc_str_hash(name) ^ (uint64_t)uv_hrtime();
  return x ? x : 1;
}

int tsvc_monitor_new(uv_loop_t *loop, tsvc_runtime_t *rt, tsvc_board_t *board,
                     tsvc_monitor_t **out) {
  tsvc_monitor_t *m = calloc(1, sizeof *m);
  if (!m) return TSVC_ENOMEM;
  m->loop = loop;
  m->rt = rt;
  tsvc_index_init(&m->index, offsetof(svc_t, name));
  m->board = board;
  if (!board) {
    int rc = tsvc_board_new(&m->board);
    if (rc) {
      free(m);
      return rc;
    }
    m->own_board = true;
  }
  tsvc_board_set_live(m->board, true);
  uv_timer_init(loop, &m->later);
  m->later.data = m;
  uv_timer_init(loop, &m->gate);
  m->gate.data = m;
  uv_check_init(loop, &m->turn);
  m->turn.data = m;
  uv_timer_init(loop, &m->turn_bound);
  m->turn_bound.data = m;
  tsvc_deadlines_init(loop, &m->deadlines);
  tsvc_deadlines_init(loop, &m->on_grid);
  *out = m;
  return 0;
}

static size_t hist_cap_of(const tsvc_service_conf_t *conf) {
  return conf->healthcheck.history > 0 ? (size_t)conf->healthcheck.history : 1;
}

/* Room for conf's depends_on in s (dep_gen, waits): 0 or TSVC_ENOMEM (s
   unchanged then). Each dependency's generation seen is kept when old
   (the conf s had, or NULL) named it too, else it is the current one: a
   reload owes no restart. */
static int size_deps(svc_t *s, const tsvc_service_conf_t *conf,
                     const tsvc_service_conf_t *old) {
  size_t n = conf->depends_on.n;
  uint64_t *gen = NULL;
  tsvc_wait_t *waits = NULL;
  if (n && (!(gen = calloc(n, sizeof *gen)) || !(waits = calloc(n, sizeof *waits)))) {
    free(gen);
    return TSVC_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    svc_t *d = find(s->m, conf->depends_on.v[i]);
    gen[i] = d ? d->gen : 0;
    for (size_t k = 0; old && k < old->depends_on.n && k < s->ndeps; k++)
      if (strcmp(old->depends_on.v[k], conf->depends_on.v[i]) == 0) gen[i] = s->dep_gen[k];
  }
  /* While waiting, what status shows is looked at again from the new
     conf at the next pass. */
  if (s->st.nwaiting > n) s->st.nwaiting = n;
  if (waits && s->waits) memcpy(waits, s->waits, s->st.nwaiting * sizeof *waits);
  if (!s->ndeps && n) s->m->ndependents++;
  if (s->ndeps && !n) s->m->ndependents--;
  free(s->dep_gen);
  free(s->waits);
  s->dep_gen = gen;
  s->waits = waits;
  s->ndeps = n;
  return 0;
}

int tsvc_monitor_add(tsvc_monitor_t *m, const tsvc_service_conf_t *conf, tsvc_ref_t *keep) {
  if (m->closed) return TSVC_ECANCELED;
  if (find(m, conf->name)) return TSVC_EEXIST;
  tsvc_health_params_t p;
  tsvc_health_params_from_conf(conf, &p);
  svc_t *s = calloc(1, sizeof *s);
  if (!s) return TSVC_ENOMEM;
  int rc = tsvc_health_init(&s->h, &p, now_of(m), seed_of(conf->name));
  if (rc) {
    free(s);
    return rc;
  }
  s->m = m;
  s->conf = conf;
  s->armed_at = TSVC_NEVER;
  s->hist_cap = hist_cap_of(conf);
  s->name = strdup(conf->name);
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    svc_t **v = realloc(m->svcs, cap * sizeof *v);
    if (v) {
      m->svcs = v;
      m->cap = cap;
    }
  }
  bool full = m->n == m->cap;
  if (!full && tsvc_index_reserve(&m->index, m->n + 1)) full = true;
  if (!full && size_deps(s, conf, NULL)) full = true;
  if (s->name && !full) s->slot = tsvc_board_add(m->board, s->name);
  if (!s->slot) {
    if (s->ndeps) m->ndependents--;
    free(s->dep_gen);
    free(s->waits);
    free(s->name);
    tsvc_health_free(&s->h);
    free(s);
    return TSVC_ENOMEM;
  }
  s->keep = tsvc_ref_get(keep);
  prepare_spec(s);
  uv_timer_init(m->loop, &s->timer);
  s->timer.data = s;
  m->svcs[m->n++] = s;
  tsvc_index_put(&m->index, s); /* room reserved, name new: cannot fail */
  publish(s);
  gate_soon(m); /* what waits for it sees it monitored */
  return 0;
}

static void svc_timer_closed(uv_handle_t *h) {
  svc_t *s = h->data;
  free(s->dep_gen);
  free(s->waits);
  free_history(s);
  tsvc_rcstr_unref(s->addr);
  free(s->host);
  free(s->st.container_id);
  free(s->st.container_name);
  free(s->st.last_error);
  tsvc_health_free(&s->h);
  tsvc_ref_put(s->keep);
  free(s->name);
  free(s);
}

/* Detach a service from everything in flight, tell whoever waits, and
   close its timer; it is freed in the close callback. */
static void svc_close(svc_t *s, const char *why) {
  tsvc_monitor_t *m = s->m;
  drop_check(s, TSVC_ECANCELED, why);
  /* A held operation never reached the runtime: nothing will answer it. */
  if (s->waiting) ctx_end(s->op);
  else if (s->op) s->op->svc = NULL;
  s->waiting = false;
  if (s->ndeps) m->ndependents--;
  s->ndeps = 0;
  if (s->info) s->info->svc = NULL;
  s->op = s->info = NULL;
  tell(m, &s->op_waiters, TSVC_ECANCELED, why);
  tell(m, &s->info_waiters, TSVC_ECANCELED, why);
  tsvc_board_remove(m->board, s->slot);
  s->slot = NULL;
  unlist_due(s);
  tsvc_session_free(s->session);
  s->session = NULL;
  tsvc_deadline_stop(&s->at);
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, svc_timer_closed);
}

int tsvc_monitor_remove(tsvc_monitor_t *m, const char *name) {
  for (size_t i = 0; i < m->n; i++) {
    svc_t *s = m->svcs[i];
    if (strcmp(s->name, name) != 0) continue;
    memmove(&m->svcs[i], &m->svcs[i + 1], (m->n - i - 1) * sizeof *m->svcs);
    m->n--;
    tsvc_index_remove(&m->index, s);
    char why[256];
    snprintf(why, sizeof why, "%s is no longer monitored (removed from the config)", s->name);
    svc_close(s, why);
    gate_soon(m); /* what waits for it sees it gone */
    return 0;
  }
  return TSVC_ENOENT;
}

int tsvc_monitor_update(tsvc_monitor_t *m, const tsvc_service_conf_t *conf, tsvc_ref_t *keep) {
  svc_t *s = find(m, conf->name);
  if (!s) return TSVC_ENOENT;
  tsvc_health_params_t p;
  tsvc_health_params_from_conf(conf, &p);
  int rc = tsvc_health_set_params(&s->h, &p);
  if (rc) return rc;
  size_t cap = hist_cap_of(conf);
  if (size_deps(s, conf, s->conf)) return TSVC_ENOMEM;
  if (cap != s->hist_cap) {
    /* Start the history afresh at the new size. */
    free_history(s);
    s->hist_cap = cap;
  }
  s->conf = conf;
  gate_soon(m);
  tsvc_ref_get(keep);
  tsvc_ref_put(s->keep);
  s->keep = keep;
  prepare_spec(s);
  publish(s);
  arm(s);
  return 0;
}

static int user_event(tsvc_monitor_t *m, const char *name, tsvc_health_event_type_t type,
                      tsvc_mon_done_cb cb, void *data) {
  if (m->closed) return TSVC_ECANCELED;
  svc_t *s = find(m, name);
  if (!s) return TSVC_ENOENT;
  done_t *d = NULL;
  if (cb && !(d = done_new(cb, NULL, data))) return TSVC_ENOMEM;
  if (type == TSVC_HEV_USER_STOP && s->waiting) cancel_wait(s);
  tsvc_health_event_t ev = {.type = type, .now = now_of(m)};
  int rc = feed(s, &ev);
  if (rc) {
    free(d);
    return rc;
  }
  if (!d) return 0;
  /* The operation in flight (this one, or the one it joined) tells when it
     ends; nothing in flight: nothing to do, told from the loop all the
     same. */
  if (s->op) push(&s->op_waiters, d);
  else queue(m, d, 0, NULL);
  return 0;
}

int tsvc_monitor_started(tsvc_monitor_t *m, const char *name) {
  svc_t *s = m->closed ? NULL : find(m, name);
  if (s) s->st.running = true;
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

int tsvc_monitor_check(tsvc_monitor_t *m, const char *name, tsvc_mon_check_cb cb, void *data) {
  if (m->closed) return TSVC_ECANCELED;
  svc_t *s = find(m, name);
  if (!s) return TSVC_ENOENT;
  done_t *d = NULL;
  if (cb && !(d = done_new(NULL, cb, data))) return TSVC_ENOMEM;
  if (s->check || s->session_checking) {
    /* The check in flight started before this call: the next one, started
       as soon as it ends, is the one asked for. */
    if (d) push(&s->next_waiters, d);
    return 0;
  }
  int rc = check_now(s, d);
  if (rc) free(d);
  return rc;
}

void tsvc_monitor_runtime_event(tsvc_monitor_t *m, tsvc_rt_event_type_t type,
                                const char *service, const char *msg) {
  if (m->closed) return;
  tsvc_health_event_t ev = {.now = now_of(m), .message = msg};
  switch (type) {
  case TSVC_RT_EV_DOWN:
  case TSVC_RT_EV_UP:
    ev.type = type == TSVC_RT_EV_DOWN ? TSVC_HEV_RUNTIME_DOWN : TSVC_HEV_RUNTIME_UP;
    for (size_t i = 0; i < m->n; i++) {
      svc_t *s = m->svcs[i];
      feed(s, &ev);
      /* What died meanwhile sent no event: look (docs/design.md, "The
         runtime's return"). */
      if (type == TSVC_RT_EV_UP && s->h.state != TSVC_STATE_STOPPED && s->conf->enabled)
        inspect_svc(s, true);
    }
    return;
  case TSVC_RT_EV_STARTED:
  case TSVC_RT_EV_DIED: {
    svc_t *s = service ? find(m, service) : NULL;
    if (!s) return;
    ev.type = type == TSVC_RT_EV_STARTED ? TSVC_HEV_STARTED : TSVC_HEV_DIED;
    if (s->h.op == TSVC_OP_NONE) s->st.running = type == TSVC_RT_EV_STARTED;
    feed(s, &ev);
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

void tsvc_monitor_set_timer_grid(tsvc_monitor_t *m, tsvc_ms_t grid) {
  m->grid = grid > 0 ? grid : 0;
}

tsvc_ms_t tsvc_timer_step(tsvc_ms_t grid, tsvc_ms_t shortest_interval) {
  if (grid <= 1) return 0;
  tsvc_ms_t s = shortest_interval > 0 ? shortest_interval / 20 : 0;
  if (s > TSVC_TIMER_STEP_MAX_MS) s = TSVC_TIMER_STEP_MAX_MS;
  return s > grid ? s : grid;
}

void tsvc_monitor_set_observer(tsvc_monitor_t *m, tsvc_mon_observer_cb cb, void *data) {
  m->observer = cb;
  m->observer_data = data;
}

/* ---- readers (any thread) ------------------------------------------------------ */

tsvc_board_t *tsvc_monitor_board(tsvc_monitor_t *m) { return m->board; }

int tsvc_monitor_get_status(tsvc_monitor_t *m, const char *name, tsvc_status_t *out) {
  int rc = tsvc_board_get_status(m->board, name, out);
  return rc == TSVC_ENOTMONITORED ? TSVC_ENOENT : rc; /* closed: nothing watched */
}

int tsvc_monitor_get_all(tsvc_monitor_t *m, tsvc_status_list_t *out) {
  int rc = tsvc_board_get_all(m->board, out);
  return rc == TSVC_ENOTMONITORED ? 0 : rc;
}

bool tsvc_monitor_is_healthy(tsvc_monitor_t *m, const char *name) {
  return tsvc_board_is_healthy(m->board, name);
}

int tsvc_monitor_state(tsvc_monitor_t *m, const char *name, tsvc_state_t *state,
                       tsvc_health_op_t *op) {
  svc_t *s = find(m, name);
  if (!s) return TSVC_ENOENT;
  *state = s->h.state;
  *op = s->h.op;
  return 0;
}

/* ---- the end ------------------------------------------------------------------- */

static void later_closed(uv_handle_t *h) {
  /* The last deliveries: whoever waited when the monitor closed. */
  later_cb((uv_timer_t *)h);
}

void tsvc_monitor_close(tsvc_monitor_t *m) {
  if (m->closed) return;
  m->closed = true;
  tsvc_board_set_live(m->board, false);
  size_t n = m->n;
  svc_t **v = m->svcs;
  m->svcs = NULL;
  m->n = m->cap = 0;
  tsvc_index_free(&m->index);
  for (size_t i = 0; i < n; i++) {
    char why[256];
    snprintf(why, sizeof why, "the monitor stopped watching %s", v[i]->name);
    svc_close(v[i], why);
  }
  free(v);
  uv_timer_stop(&m->gate);
  uv_close((uv_handle_t *)&m->gate, NULL);
  m->due = NULL; /* every service is closed: none is listed */
  uv_check_stop(&m->turn);
  uv_close((uv_handle_t *)&m->turn, NULL);
  uv_timer_stop(&m->turn_bound);
  uv_close((uv_handle_t *)&m->turn_bound, NULL);
  /* Every service is closed: no deadline is pending. */
  tsvc_deadlines_close(&m->deadlines);
  tsvc_deadlines_close(&m->on_grid);
  uv_close((uv_handle_t *)&m->later, later_closed);
}

void tsvc_monitor_free(tsvc_monitor_t *m) {
  if (!m) return;
  /* Queued after the last delivery (nobody should): dropped. */
  for (done_t *d = m->ready, *next; d; d = next) {
    next = d->next;
    if (d->op) ctx_end(d->op);
    free(d->msg);
    free(d->rec.message);
    free(d->rec.output);
    free(d->rec.probe_address);
    free(d);
  }
  if (m->own_board) tsvc_board_free(m->board);
  tsvc_deadlines_free(&m->deadlines);
  tsvc_deadlines_free(&m->on_grid);
  free(m->svcs);
  tsvc_index_free(&m->index);
  free(m);
}
