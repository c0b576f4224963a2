/* hooks.c: see hooks.h. */
#include "manager/hooks.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "log/log.h"

extern char **environ;

/* One run of a hook: queued, then running. Its handles (process, pipe,
   timer) each hold a reference; it is freed after the last close. */
typedef struct run_s {
  struct run_s *next;
  tsvc_hooks_t *h;
  char *service;
  char **argv;  /* owned, NULL-terminated */
  char **env;   /* owned, NULL-terminated: environ plus ours */
  tsvc_ms_t timeout;
  uv_process_t proc;
  uv_pipe_t out;
  uv_timer_t timer;
  int refs;           /* handles not yet closed */
  bool proc_init, exited, out_eof, timed_out, logged;
  int64_t status;
  int term_signal;
  uint64_t began;     /* uv_now */
  char buf[TSVC_HOOKS_OUTPUT];
  size_t nbuf;
  uint64_t dropped_bytes;
} run_t;

struct tsvc_hooks_s {
  uv_loop_t *loop;
  run_t *queue, *queue_tail;
  size_t nqueued;
  int running;
  run_t *live[TSVC_HOOKS_RUNNING]; /* the runs started, until closed */
  bool closing;
  tsvc_hooks_stats_t stats;
  tsvc_hook_counters_t *counters; /* the manager's, or NULL */
};

static void count(tsvc_hooks_t *h, int what) {
  if (h->counters) tsvc_hook_count(h->counters, TSVC_HOOK_COMMAND, what);
}

void tsvc_hook_totals(const tsvc_hook_counters_t *c, tsvc_hook_totals_t *out) {
  for (int k = 0; k < TSVC_HOOK__KINDS; k++)
    for (int i = 0; i < TSVC_HOOK__COUNTS; i++)
      out->v[k][i] = atomic_load_explicit(&c->v[k][i], memory_order_relaxed);
}

const char *tsvc_hook_kind_name(tsvc_hook_kind_t kind) {
  return kind == TSVC_HOOK_WEBHOOK ? "webhook" : "command";
}

void tsvc_hooks_set_counters(tsvc_hooks_t *h, tsvc_hook_counters_t *c) {
  h->counters = c;
}

static void strv_free0(char **v) {
  for (size_t i = 0; v && v[i]; i++) free(v[i]);
  free(v);
}

static void run_free(run_t *r) {
  free(r->service);
  strv_free0(r->argv);
  strv_free0(r->env);
  free(r);
}

int tsvc_hooks_new(uv_loop_t *loop, tsvc_hooks_t **out) {
  tsvc_hooks_t *h = calloc(1, sizeof *h);
  if (!h) return TSVC_ENOMEM;
  h->loop = loop;
  *out = h;
  return 0;
}

void tsvc_hooks_stats(const tsvc_hooks_t *h, tsvc_hooks_stats_t *out) {
  *out = h->stats;
  out->running = h->running;
}

static void start_next(tsvc_hooks_t *h);

static void maybe_free_hooks(tsvc_hooks_t *h) {
  if (h->closing && h->running == 0 && !h->queue) free(h);
}

static void run_closed(uv_handle_t *hd) {
  run_t *r = hd->data;
  if (--r->refs > 0) return;
  tsvc_hooks_t *h = r->h;
  for (int i = 0; i < TSVC_HOOKS_RUNNING; i++)
    if (h->live[i] == r) h->live[i] = NULL;
  run_free(r);
  h->running--;
  if (h->closing) maybe_free_hooks(h);
  else start_next(h);
}

static void kill_group(run_t *r) {
  if (r->proc.pid > 0 && !r->exited) kill(-r->proc.pid, SIGKILL);
}

/* The one line a hook leaves in the log, once it exited and its output
   ended (or was cut: a writer that left its process group). */
static void log_end(run_t *r) {
  if (r->logged) return;
  r->logged = true;
  char took[32], why[96];
  tsvc_duration_format((tsvc_ms_t)(uv_now(r->h->loop) - r->began), took, sizeof took);
  if (r->timed_out)
    snprintf(why, sizeof why, "timed out after %s: killed", took);
  else if (r->term_signal)
    snprintf(why, sizeof why, "killed by signal %d after %s", r->term_signal, took);
  else
    snprintf(why, sizeof why, "exited %lld after %s", (long long)r->status, took);
  bool bad = r->timed_out || r->term_signal || r->status != 0;
  if (bad) {
    r->h->stats.failed++;
    count(r->h, TSVC_HOOK_FAILURES);
  }
  if (r->timed_out) r->h->stats.timed_out++;
  /* The output as one value: newlines shown as "\n" by the logger's
     quoting; secrets masked by the logger as everywhere. */
  char more[64] = "";
  if (r->dropped_bytes)
    snprintf(more, sizeof more, "%llu", (unsigned long long)r->dropped_bytes);
  r->buf[r->nbuf < sizeof r->buf ? r->nbuf : sizeof r->buf - 1] = '\0';
  while (r->nbuf && (r->buf[r->nbuf - 1] == '\n' || r->buf[r->nbuf - 1] == '\r'))
    r->buf[--r->nbuf] = '\0';
  tsvc_log_field_t f[] = {{"service", r->service},
                          {"action", "hook"},
                          {"hook", "on_change"},
                          {"result", why},
                          {"output", r->nbuf ? r->buf : NULL},
                          {"output_dropped_bytes", more[0] ? more : NULL}};
  tsvc_log_fields(bad ? TSVC_LOG_WARN : TSVC_LOG_INFO, NULL, f, TSVC_ARRAY_LEN(f));
}

static void close_all(run_t *r) {
  if (!uv_is_closing((uv_handle_t *)&r->timer)) {
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, run_closed);
  }
  if (!uv_is_closing((uv_handle_t *)&r->out)) uv_close((uv_handle_t *)&r->out, run_closed);
  if (r->proc_init && !uv_is_closing((uv_handle_t *)&r->proc))
    uv_close((uv_handle_t *)&r->proc, run_closed);
}

/* Done when it exited and its output ended. */
static void maybe_done(run_t *r) {
  if (!r->exited || !r->out_eof) return;
  log_end(r);
  close_all(r);
}

static void out_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b) {
  (void)hd;
  (void)suggested;
  static char scratch[4096]; /* loop thread only: read, copied, forgotten */
  b->base = scratch;
  b->len = sizeof scratch;
}

static void out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  run_t *r = s->data;
  if (n > 0) {
    size_t room = sizeof r->buf - 1 - r->nbuf, k = (size_t)n < room ? (size_t)n : room;
    memcpy(r->buf + r->nbuf, b->base, k);
    r->nbuf += k;
    r->dropped_bytes += (size_t)n - k;
    return;
  }
  if (n == 0) return;
  /* EOF or an error: the output ended. */
  uv_read_stop(s);
  r->out_eof = true;
  maybe_done(r);
}

static void timer_fired(uv_timer_t *t);

static void proc_exit(uv_process_t *p, int64_t status, int term_signal) {
  run_t *r = p->data;
  r->exited = true;
  r->status = status;
  r->term_signal = term_signal;
  uv_timer_stop(&r->timer);
  if (r->out_eof) {
    maybe_done(r);
    return;
  }
  /* A writer that left its group may keep the pipe open: 200 ms for the
     rest of the output, then it is cut (timer_fired). */
  uv_timer_start(&r->timer, timer_fired, 200, 0);
}

static void timer_fired(uv_timer_t *t) {
  run_t *r = t->data;
  if (!r->exited) {
    /* Its timeout: the whole group goes; proc_exit follows. */
    r->timed_out = true;
    kill_group(r);
    return;
  }
  /* Exited, output still open after the grace: cut. */
  uv_read_stop((uv_stream_t *)&r->out);
  r->out_eof = true;
  maybe_done(r);
}

/* Start r now; when it cannot start, that is logged and r is closed. */
static void start_run(tsvc_hooks_t *h, run_t *r) {
  h->running++;
  h->stats.run++;
  count(h, TSVC_HOOK_RUNS);
  for (int i = 0; i < TSVC_HOOKS_RUNNING; i++)
    if (!h->live[i]) {
      h->live[i] = r;
      break;
    }
  r->began = uv_now(h->loop);
  uv_timer_init(h->loop, &r->timer);
  r->timer.data = r;
  uv_pipe_init(h->loop, &r->out, 0);
  r->out.data = r;
  r->refs = 2; /* timer, pipe; the process once spawned */
  int fds[2] = {-1, -1};
  int rc = uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
  if (rc == 0 && (rc = uv_pipe_open(&r->out, fds[0])) != 0) {
    close(fds[0]);
    close(fds[1]);
  }
  if (rc == 0) {
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fds[1];
    stdio[2] = stdio[1];
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.exit_cb = proc_exit;
    o.file = r->argv[0];
    o.args = r->argv;
    o.env = r->env;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.flags = UV_PROCESS_DETACHED; /* setsid: its own process group, killed whole */
    rc = uv_spawn(h->loop, &r->proc, &o);
    /* uv_spawn initialises the handle even when it fails: closed either way. */
    r->proc.data = r;
    r->proc_init = true;
    r->refs++;
    close(fds[1]); /* the child holds the write end now */
  }
  if (rc) {
    TSVC_LOG(TSVC_LOG_WARN, r->service, "hook on_change: cannot run %s: %s", r->argv[0],
             uv_strerror(rc));
    h->stats.failed++;
    count(h, TSVC_HOOK_FAILURES);
    r->logged = true;
    r->exited = true;
    close_all(r);
    return;
  }
  uv_timer_start(&r->timer, timer_fired, (uint64_t)r->timeout, 0);
  if (uv_read_start((uv_stream_t *)&r->out, out_alloc, out_read)) r->out_eof = true;
}

static void start_next(tsvc_hooks_t *h) {
  while (h->queue && h->running < TSVC_HOOKS_RUNNING && !h->closing) {
    run_t *r = h->queue;
    h->queue = r->next;
    if (!h->queue) h->queue_tail = NULL;
    h->nqueued--;
    start_run(h, r);
  }
}

/* environ plus the event's variables (ours replace any of the same name). */
static char **make_env(const char *const *ours, size_t nours) {
  size_t n = 0;
  while (environ && environ[n]) n++;
  char **env = calloc(n + nours + 1, sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (strncmp(environ[i], "TSVC_", 5) == 0) continue;
    if (!(env[k++] = strdup(environ[i]))) goto oom;
  }
  for (size_t i = 0; i < nours; i++)
    if (!(env[k++] = strdup(ours[i]))) goto oom;
  return env;
oom:
  strv_free0(env);
  return NULL;
}

int tsvc_hooks_on_change(tsvc_hooks_t *h, const tsvc_hooks_conf_t *conf, const char *service,
                         tsvc_state_t from, tsvc_state_t to, const char *reason,
                         int64_t time_ms) {
  if (!conf || conf->on_change.n == 0 || h->closing) return 0;
  if (h->nqueued >= TSVC_HOOKS_QUEUED) {
    h->stats.dropped++;
    count(h, TSVC_HOOK_DROPS);
    TSVC_LOG(TSVC_LOG_WARN, service,
             "hook on_change dropped: %d hooks running and %d waiting (%llu dropped so far)",
             h->running, TSVC_HOOKS_QUEUED, (unsigned long long)h->stats.dropped);
    return TSVC_EBUSY;
  }
  run_t *r = calloc(1, sizeof *r);
  if (!r) return TSVC_ENOMEM;
  r->h = h;
  r->timeout = conf->timeout > 0 ? conf->timeout : 10000;
  r->service = strdup(service ? service : "");
  r->argv = calloc(conf->on_change.n + 1, sizeof *r->argv);
  for (size_t i = 0; r->argv && i < conf->on_change.n; i++)
    if (!(r->argv[i] = strdup(conf->on_change.v[i]))) {
      strv_free0(r->argv);
      r->argv = NULL;
    }
  /* TSVC_TIME: RFC 3339 UTC with ms, as the API's times. */
  char tm_s[40] = "";
  time_t secs = (time_t)(time_ms / 1000);
  struct tm tm;
  if (gmtime_r(&secs, &tm)) {
    char date[32];
    if (strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm))
      snprintf(tm_s, sizeof tm_s, "%s.%03dZ", date, (int)(time_ms % 1000));
  }
  char reason_s[1100];
  tsvc_log_scrub(reason_s, sizeof reason_s, reason ? reason : "");
  char *vars[5] = {tsvc_asprintf("TSVC_SERVICE=%s", r->service ? r->service : ""),
                   tsvc_asprintf("TSVC_STATE=%s", tsvc_state_name(to)),
                   tsvc_asprintf("TSVC_PREV=%s", tsvc_state_name(from)),
                   tsvc_asprintf("TSVC_REASON=%s", reason_s),
                   tsvc_asprintf("TSVC_TIME=%s", tm_s)};
  bool ok = r->service && r->argv;
  for (int i = 0; i < 5; i++) ok = ok && vars[i];
  if (ok) r->env = make_env((const char *const *)vars, 5);
  for (int i = 0; i < 5; i++) free(vars[i]);
  if (!ok || !r->env) {
    run_free(r);
    return TSVC_ENOMEM;
  }
  if (h->queue_tail) h->queue_tail->next = r;
  else h->queue = r;
  h->queue_tail = r;
  h->nqueued++;
  start_next(h);
  return 0;
}

void tsvc_hooks_close(tsvc_hooks_t *h) {
  if (!h) return;
  h->closing = true;
  while (h->queue) {
    run_t *r = h->queue;
    h->queue = r->next;
    run_free(r);
  }
  h->queue_tail = NULL;
  h->nqueued = 0;
  /* What runs is killed and closed: each run ends with its handles'
     closes, and h with the last one. */
  for (int i = 0; i < TSVC_HOOKS_RUNNING; i++) {
    run_t *r = h->live[i];
    if (!r) continue;
    kill_group(r);
    if (!r->logged) {
      r->logged = true;
      TSVC_LOG(TSVC_LOG_WARN, r->service, "hook on_change killed: the monitor stops");
    }
    close_all(r);
  }
  maybe_free_hooks(h);
}
