/*
 * bench_monitor: what a check costs, and how many services one core keeps on
 * schedule.
 *
 * Modes (one per run, all against servers this program starts on 127.0.0.1):
 *   monitor  the real monitor (src/monitor) watching N external services
 *            with native probes, every --interval, on one libuv loop;
 *   loop     a minimal blocking C loop doing the same exchange (connect,
 *            PING+QUIT, read +PONG, close with an RST; tcp: connect, close;
 *            postgres: startup packet, ReadyForQuery, Terminate), paced at
 *            the same rate: the floor a check costs in the kernel's TCP;
 *   loop --session (redis)  the held floor: a minimal epoll loop holding
 *            one connection per service, PING to each check due in a
 *            --grid step, on the monitor's schedule (run_floor);
 *            --uring: the same on io_uring, one io_uring_enter a
 *            step (run_floor_uring);
 *   fork     the original request's way: fork+exec `redis-cli ping` or
 *            `pg_isready` (or `docker exec <container> redis-cli ping`)
 *            for every check, at a modest rate;
 *   idle     nothing: the machine's background busy time (other builds).
 *
 * monitor with --scrape HZ: a thread does what GET /metrics does, HZ times
 * a second, while the loop keeps its schedule: takes a snapshot of every
 * status from the monitor's board, renders the Prometheus text of the
 * services and of the monitor, and lets go (the socket transfer, on an API
 * thread that holds no lock, is left out). It runs on the CPUs other than
 * the monitor's (--cpu), as the API's threads may; --scrape-same-cpu puts
 * it on the monitor's CPU instead. Reported: the loop's lateness as usual,
 * and per scrape its time (p50/max) and size.
 *
 * Reported per run, over --windows consecutive windows after a warm-up
 * (median and min-max across windows): checks per second; CPU microseconds
 * per check of this process (getrusage user+sys; fork mode adds the reaped
 * children), of the probed servers (/proc/<pid>/stat, postgres with its
 * backends) and of the whole machine (/proc/stat busy delta, noise from
 * other work included); schedule lateness p50/p99/max (the monitor's
 * observer, 1 ms resolution); VmRSS/VmHWM at the end; failed checks; how
 * much of each window the loop's thread spent waiting for a CPU that other
 * work held (/proc/thread-self/schedstat; RESULT runq_pct: the worst
 * window's), which tells a loop that falls behind for its own work from one
 * that is starved on a shared machine. Held postgres sessions (--probe
 * postgres|pgfloor --session) also report what a check exchanged, to tell
 * more work from dearer work: run slices of the loop and of the sessions'
 * server processes, the loop's preemptions, the floor's messages and the
 * time from its wake-up to its answer, the sessions' connects and full
 * probes; and they measure from when every session is held and has
 * answered a check (up to 10 s past the warm-up).
 *
 * Output: details on stderr; one markdown table row on stdout, and one
 * "RESULT k=v ..." line for scripts. Exit 0; 1 when a server cannot be
 * started or the setup fails; 2 on bad options. The run is bounded: warm-up
 * plus --seconds, and an alarm ends the process (and, through the
 * parent-death signal, its servers) if anything hangs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#ifdef BENCH_URING
#include <liburing.h>
#endif
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "api/metrics.h"
#include "benchutil.h"
#include "common/util.h"
#include "config/config.h"
#include "log/log.h"
#include "monitor/monitor.h"

extern char **environ;

#define MAX_SERVERS 16
#define MAX_WINDOWS 20

typedef enum { MODE_MONITOR, MODE_LOOP, MODE_FORK, MODE_IDLE } bench_mode_t;
/* PROBE_PGFLOOR: the postgres probe against bu_pgfloor_start's server, the
   floor of what a held check's wake-ups cost a server process. */
typedef enum { PROBE_REDIS, PROBE_TCP, PROBE_POSTGRES, PROBE_PGFLOOR } bench_probe_t;

typedef struct {
  bench_mode_t mode;
  bench_probe_t probe;
  const char *tool; /* fork: redis-cli | pg_isready | docker */
  long services;
  int64_t interval_ms;
  int64_t timeout_ms;
  double seconds; /* measured, split into windows */
  int windows;
  double warmup_s; /* < 0: default */
  int cpu;         /* -1: not pinned */
  int servers;     /* redis servers / tcp listeners; 0: default */
  double rate;     /* loop / fork: checks per second; 0: services/interval */
  bool stagger;
  bool header;
  double scrape_hz;     /* monitor: /metrics renders per second, 0: none */
  bool scrape_same_cpu; /* ... on the monitor's CPU */
  bool session;         /* monitor: healthcheck.session: true (held sessions) */
  long grid_ms;         /* monitor: tsvc_monitor_set_timer_grid (0: none) */
  long stall_ms;        /* monitor, redis/tcp: the first server stopped this long */
  bool turns;           /* monitor: measure the loop's turns (turns_t) */
  bool defer;           /* loop --session: read replies once a grid step (run_floor) */
  bool defer_ready;     /* ... finding them through a second epoll set (--defer-ready) */
  bool uring;           /* loop --session: io_uring, one io_uring_enter a step (--uring) */
  bool uring_now;       /* ... each reply's recvmsg submitted with its PING (--uring-now) */
} opts_t;

/* ---- servers ---------------------------------------------------------------- */

typedef struct {
  int n;
  bu_redis_t redis[MAX_SERVERS];
  bu_tcp_t tcp[MAX_SERVERS];
  bu_pg_t pg;
  int ports[MAX_SERVERS];
  bench_probe_t kind;
} servers_t;

static void servers_stop(servers_t *s) {
  for (int i = 0; i < s->n; i++) {
    if (s->kind == PROBE_REDIS) bu_redis_stop(&s->redis[i]);
    if (s->kind == PROBE_TCP || s->kind == PROBE_PGFLOOR) bu_tcp_stop(&s->tcp[i]);
  }
  if (s->kind == PROBE_POSTGRES && s->n) bu_pg_stop(&s->pg);
  s->n = 0;
}

static int servers_start(servers_t *s, bench_probe_t kind, int n, uint64_t cpus) {
  memset(s, 0, sizeof *s);
  s->kind = kind;
  if (kind == PROBE_POSTGRES || kind == PROBE_PGFLOOR) n = 1;
  for (int i = 0; i < n; i++) {
    int rc;
    if (kind == PROBE_REDIS) {
      rc = bu_redis_start(&s->redis[i], cpus);
      s->ports[i] = s->redis[i].port;
    } else if (kind == PROBE_TCP || kind == PROBE_PGFLOOR) {
      rc = kind == PROBE_TCP ? bu_tcp_start(&s->tcp[i], cpus) : bu_pgfloor_start(&s->tcp[i], cpus);
      s->ports[i] = s->tcp[i].port;
    } else {
      rc = bu_pg_start(&s->pg, cpus);
      s->ports[i] = s->pg.port;
    }
    s->n = i + 1; /* so that stop covers a half-started one */
    if (rc) {
      servers_stop(s);
      return -1;
    }
  }
  return 0;
}

/* CPU of every server process (postgres: with its backends). */
static int64_t servers_cpu_us(const servers_t *s) {
  int64_t t = 0;
  for (int i = 0; i < s->n; i++) {
    int64_t v = 0;
    if (s->kind == PROBE_REDIS) v = bu_pid_cpu_us(s->redis[i].pid, true);
    if (s->kind == PROBE_TCP) v = bu_pid_cpu_us(s->tcp[i].pid, true);
    if (s->kind == PROBE_PGFLOOR) v = bu_pid_cpu_us(s->tcp[i].pid, false);
    if (s->kind == PROBE_POSTGRES) v = bu_tree_cpu_us(s->pg.pid);
    if (v > 0) t += v;
  }
  return t;
}

/* ---- measurement windows ------------------------------------------------------ */

typedef struct {
  int64_t t_us, self_us, child_us, srv_us, mach_us, runq_us;
  int64_t sys_us; /* this process's system time (in self_us) */
  int64_t be_us; /* postgres: the live client backends' own CPU */
  int64_t sleeps; /* this process's voluntary context switches */
  int64_t slices, preempted; /* the loop thread's run slices; involuntary switches */
  int64_t be_slices;  /* postgres / floor: the held sessions' server run slices */
  bu_floor_counts_t floor; /* floor: messages its sessions answered, their spans */
  uint64_t connects, held, full; /* postgres, monitor: the sessions' counters */
  int not_held;          /* ... services holding no connection now */
  char why[256];         /* ... the first one's name and session_error */
  /* loop --session: the floor's epoll_waits, reply reads, reads that found
     nothing yet, and the replies' response times (sum, us; count). */
  int64_t fwaits, freads, fempty, fctls, fpolls, frt_n;
  double frt_us;
  uint64_t checks, fails;
} snap_t;

/* The held floor's counters (run_floor), read by snap(). */
static struct {
  int64_t waits, reads, empty, ctls, polls, rt_n;
  double rt_us;
} floor_ctr;

/* Messages counted by kind: digits folded into '#', so that "no answer
   within 450 ms" and the like count as one. The first REASONS kinds kept;
   later kinds go to other. */
#define REASONS 16
typedef struct {
  char text[REASONS][128];
  uint64_t n[REASONS], other;
  int kinds;
} reasons_t;

static void reasons_add(reasons_t *r, const char *msg) {
  char key[128];
  size_t k = 0;
  for (const char *p = msg ? msg : "?"; *p && k + 1 < sizeof key; p++) {
    bool digit = *p >= '0' && *p <= '9';
    if (digit && k && key[k - 1] == '#') continue;
    key[k++] = digit ? '#' : *p;
  }
  key[k] = 0;
  for (int i = 0; i < r->kinds; i++)
    if (strcmp(r->text[i], key) == 0) {
      r->n[i]++;
      return;
    }
  if (r->kinds == REASONS) {
    r->other++;
    return;
  }
  memcpy(r->text[r->kinds], key, k + 1);
  r->n[r->kinds++] = 1;
}

static void reasons_print(const reasons_t *r, const char *what) {
  for (int i = 0; i < r->kinds; i++)
    fprintf(stderr, "bench: %s: %llu x %s\n", what, (unsigned long long)r->n[i], r->text[i]);
  if (r->other)
    fprintf(stderr, "bench: %s: %llu x (other kinds)\n", what, (unsigned long long)r->other);
}

/* The loop's turns (monitor mode): where a late check's lateness comes from.
   A check is late when its timer fires late, i.e. when the turn before it
   (I/O callbacks, closes, the timers due with it) ran long, or the loop's
   thread waited for a CPU meanwhile. A turn runs from one prepare callback
   (just before the poll) to the next, less the time blocked in epoll_wait
   (uv_metrics_idle_time); its CPU is the thread's own (CLOCK_THREAD_CPUTIME_ID),
   so wall minus CPU is time the thread was runnable but not running (or
   blocked elsewhere). Two clock reads a turn, a few hundred turns a second. */
#define TURN_BUCKETS 8
static const int64_t turn_bucket_ms[TURN_BUCKETS] = {0, 1, 5, 10, 20, 50, 100, 200};
#define TURN_TOP 3

typedef struct {
  int64_t wall_us, cpu_us; /* busy wall time and the thread's CPU in it */
  uint64_t done;           /* checks that completed in it */
  int64_t at_ms;           /* its end, ms since the window began */
} turn_t;

typedef struct {
  uv_prepare_t prep;
  bool on;
  int64_t t_us, cpu_us; /* at the last prepare */
  uint64_t idle_ns;     /* uv_metrics_idle_time then */
  uint64_t done_at;     /* completions then */
  uint64_t done;        /* checks completed (all, warm-up included) */
  int64_t win_t0;       /* the window's start, us */
  /* this window */
  uint64_t n, hist[TURN_BUCKETS];
  int64_t busy_us, cpu_sum_us;   /* over every turn */
  int64_t long_wall_us, long_cpu_us; /* over turns of 10 ms and more */
  turn_t top[TURN_TOP];          /* the longest, longest first */
} turns_t;

static int64_t thread_cpu_us(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void turns_reset(turns_t *t) {
  t->n = 0;
  memset(t->hist, 0, sizeof t->hist);
  t->busy_us = t->cpu_sum_us = t->long_wall_us = t->long_cpu_us = 0;
  memset(t->top, 0, sizeof t->top);
  t->win_t0 = bu_now_us();
}

static void turn_note(turns_t *t, int64_t wall, int64_t cpu, uint64_t done, int64_t now) {
  if (wall < 0) wall = 0;
  t->n++;
  t->busy_us += wall;
  t->cpu_sum_us += cpu;
  int b = TURN_BUCKETS - 1;
  while (b > 0 && wall < turn_bucket_ms[b] * 1000) b--;
  t->hist[b]++;
  if (wall >= 10000) {
    t->long_wall_us += wall;
    t->long_cpu_us += cpu;
  }
  for (int i = 0; i < TURN_TOP; i++) {
    if (wall <= t->top[i].wall_us) continue;
    memmove(&t->top[i + 1], &t->top[i], (TURN_TOP - 1 - (size_t)i) * sizeof t->top[0]);
    t->top[i] = (turn_t){wall, cpu, done, (now - t->win_t0) / 1000};
    break;
  }
}

static void prepare_cb(uv_prepare_t *h) {
  turns_t *t = h->data;
  int64_t now = bu_now_us(), cpu = thread_cpu_us();
  uint64_t idle = uv_metrics_idle_time(h->loop);
  if (t->on)
    turn_note(t, now - t->t_us - (int64_t)((idle - t->idle_ns) / 1000), cpu - t->cpu_us,
              t->done - t->done_at, now);
  t->on = true;
  t->t_us = now;
  t->cpu_us = cpu;
  t->idle_ns = idle;
  t->done_at = t->done;
}

static void turns_print(const turns_t *t) {
  if (!t->n) return;
  fprintf(stderr, "    turns: %llu, busy %.0f ms (CPU %.0f ms); by length",
          (unsigned long long)t->n, (double)t->busy_us / 1e3, (double)t->cpu_sum_us / 1e3);
  for (int b = 0; b < TURN_BUCKETS; b++)
    fprintf(stderr, " %s%lld ms: %llu", b + 1 < TURN_BUCKETS ? "<" : ">=",
            (long long)(b + 1 < TURN_BUCKETS ? turn_bucket_ms[b + 1] : turn_bucket_ms[b]),
            (unsigned long long)t->hist[b]);
  fprintf(stderr, "; turns >= 10 ms: %.0f ms wall, %.0f ms CPU\n", (double)t->long_wall_us / 1e3,
          (double)t->long_cpu_us / 1e3);
  for (int i = 0; i < TURN_TOP && t->top[i].wall_us; i++)
    fprintf(stderr, "    longest turn %d: %.1f ms, CPU %.1f ms, %llu checks completed, ended at +%lld ms\n",
            i + 1, (double)t->top[i].wall_us / 1e3, (double)t->top[i].cpu_us / 1e3,
            (unsigned long long)t->top[i].done, (long long)t->top[i].at_ms);
}

/* Lateness by range, ms: how many checks started how late. */
#define LATE_BUCKETS 9
static const int64_t late_bucket_ms[LATE_BUCKETS] = {0, 1, 5, 10, 20, 50, 100, 200, 500};

static void lateness_print(const bu_hist_t *h) {
  uint64_t c[LATE_BUCKETS] = {0};
  for (int64_t ms = 0; ms <= BU_HIST_MS; ms++) {
    if (!h->c[ms]) continue;
    int b = LATE_BUCKETS - 1;
    while (b > 0 && ms < late_bucket_ms[b]) b--;
    c[b] += h->c[ms];
  }
  fprintf(stderr, "    lateness:");
  for (int b = 0; b < LATE_BUCKETS; b++) {
    if (b + 1 < LATE_BUCKETS)
      fprintf(stderr, " %lld-%lld ms: %llu", (long long)late_bucket_ms[b],
              (long long)late_bucket_ms[b + 1] - 1, (unsigned long long)c[b]);
    else
      fprintf(stderr, " >= %lld ms: %llu", (long long)late_bucket_ms[b], (unsigned long long)c[b]);
  }
  fprintf(stderr, "\n");
}

typedef struct {
  const opts_t *o;
  const servers_t *srv;
  bu_hist_t hist;    /* lateness of the current window */
  uint64_t checks, fails;
  bool measuring;
  int window;        /* windows done */
  snap_t last;
  double rate[MAX_WINDOWS], own[MAX_WINDOWS], server[MAX_WINDOWS], machine[MAX_WINDOWS];
  double backend[MAX_WINDOWS];
  double own_sys[MAX_WINDOWS]; /* ... of own: this process's system time per check */
  double wakes[MAX_WINDOWS]; /* wake-ups (sleeps) of this process per check */
  /* What happened per check, to tell more work from dearer work: the
     loop's run slices and preemptions, the sessions' server slices and (the
     floor) messages, and the per-slice cost of each side. */
  double slices[MAX_WINDOWS], preempted[MAX_WINDOWS], be_slices[MAX_WINDOWS];
  double msgs[MAX_WINDOWS], own_slice[MAX_WINDOWS], be_slice[MAX_WINDOWS];
  double span[MAX_WINDOWS], slow[MAX_WINDOWS]; /* floor: us from wake-up to answer; > 1 ms */
  /* loop --session, per check: epoll_waits, reads, reads that found nothing;
     the mean response time (us) */
  double fwaits[MAX_WINDOWS], freads[MAX_WINDOWS], fempty[MAX_WINDOWS], frt[MAX_WINDOWS];
  double fctls[MAX_WINDOWS]; /* ... epoll_ctls (--defer: slow replies) */
  double fpolls[MAX_WINDOWS]; /* ... epoll_waits on the ready set (--defer-ready) */
  tsvc_monitor_t *mon; /* postgres probes: the sessions' counters come from it */
  turns_t *turns;      /* monitor mode: the loop's turns (NULL: not measured) */
  bu_tcpstat_t tcp0, tcp1; /* the machine's TCP counters at the first window and the end */
  long tw0;                /* TIME_WAITs on the machine at the first window */
  snap_t first;        /* at the start of the first window */
  double p50[MAX_WINDOWS], p99[MAX_WINDOWS], pmax[MAX_WINDOWS];
  double runq[MAX_WINDOWS]; /* % of the window the loop's thread waited for
                               a CPU (-1: unknown) */
  char first_error[256];
  reasons_t fail_why;  /* failed checks by reason, warm-up included */
  reasons_t sess_why;  /* monitor --session, at the end: session_error */
  int64_t sess_n, sess_held; /* ... services with a session, held now */
  uint64_t sess_connects, sess_held_checks, sess_full_checks;
  int64_t setup_config_us, setup_add_us;
  int scrapes, scrape_failed;
  double scrape_p50_ms, scrape_max_ms;
  size_t scrape_bytes;
} meas_t;

static void snap(meas_t *m, snap_t *s) {
  s->t_us = bu_now_us();
  s->self_us = bu_self_cpu_us();
  struct rusage ru;
  s->sys_us = getrusage(RUSAGE_SELF, &ru) == 0
                  ? (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec
                  : 0;
  s->child_us = bu_children_cpu_us();
  s->srv_us = servers_cpu_us(m->srv);
  s->be_slices = 0;
  s->be_us = !m->srv->n                        ? 0
             : m->srv->kind == PROBE_POSTGRES ? bu_pg_backends_cpu_us(m->srv->pg.pid, &s->be_slices)
             : m->srv->kind == PROBE_PGFLOOR  ? bu_kids_run_us(m->srv->tcp[0].pid, &s->be_slices)
                                              : 0;
  s->slices = bu_self_slices();
  s->preempted = bu_self_preempted();
  bu_pgfloor_counts(&s->floor);
  s->connects = s->held = s->full = 0;
  s->not_held = 0;
  s->why[0] = '\0';
  tsvc_status_list_t l;
  if (m->mon && tsvc_monitor_get_all(m->mon, &l) == 0) {
    for (size_t i = 0; i < l.n; i++) {
      s->connects += l.v[i].session_connects;
      s->held += l.v[i].session_held_checks;
      s->full += l.v[i].session_full_checks;
      if (!l.v[i].session_held && !s->not_held++)
        snprintf(s->why, sizeof s->why, "%.60s: %s", l.v[i].name, l.v[i].session_error);
    }
    tsvc_status_list_free(&l);
  }
  s->mach_us = bu_machine_busy_us();
  s->runq_us = bu_runq_us();
  s->sleeps = bu_self_sleeps();
  s->fwaits = floor_ctr.waits;
  s->freads = floor_ctr.reads;
  s->fempty = floor_ctr.empty;
  s->fctls = floor_ctr.ctls;
  s->fpolls = floor_ctr.polls;
  s->frt_n = floor_ctr.rt_n;
  s->frt_us = floor_ctr.rt_us;
  s->checks = m->checks;
  s->fails = m->fails;
}

static void window_begin(meas_t *m) {
  m->checks = m->fails = 0;
  bu_hist_reset(&m->hist);
  m->measuring = true;
  if (m->turns) turns_reset(m->turns);
  bu_tcpstat(&m->tcp0);
  m->tw0 = bu_timewait();
  snap(m, &m->last);
  m->first = m->last;
}

/* Close the current window and open the next. Returns true when it was the
   last one. */
static bool window_end(meas_t *m) {
  snap_t now;
  snap(m, &now);
  int w = m->window++;
  double secs = (double)(now.t_us - m->last.t_us) / 1e6;
  double n = (double)(now.checks - m->last.checks);
  double per = n > 0 ? n : 1;
  m->rate[w] = n / secs;
  m->own[w] = (double)(now.self_us - m->last.self_us + now.child_us - m->last.child_us) / per;
  m->server[w] = (double)(now.srv_us - m->last.srv_us) / per;
  m->own_sys[w] = (double)(now.sys_us - m->last.sys_us) / per;
  /* Held sessions' backends live through the window: their own CPU per
     check, without postgres's background work (which, at 20 checks a
     second, weighs more than the checks in server_us). */
  m->backend[w] = (double)(now.be_us - m->last.be_us) / per;
  m->wakes[w] = (double)(now.sleeps - m->last.sleeps) / per;
  m->slices[w] = (double)(now.slices - m->last.slices) / per;
  m->preempted[w] = (double)(now.preempted - m->last.preempted) / per;
  m->be_slices[w] = (double)(now.be_slices - m->last.be_slices) / per;
  double fm = (double)(now.floor.messages - m->last.floor.messages);
  m->msgs[w] = fm / per;
  m->span[w] = fm > 0 ? (now.floor.span_us - m->last.floor.span_us) / fm : 0;
  m->slow[w] = (double)(now.floor.slow - m->last.floor.slow) / per;
  m->own_slice[w] = now.slices > m->last.slices
                        ? (double)(now.self_us - m->last.self_us) /
                              (double)(now.slices - m->last.slices)
                        : 0;
  m->be_slice[w] = now.be_slices > m->last.be_slices
                       ? (double)(now.be_us - m->last.be_us) /
                             (double)(now.be_slices - m->last.be_slices)
                       : 0;
  m->machine[w] = (double)(now.mach_us - m->last.mach_us) / per;
  m->fwaits[w] = (double)(now.fwaits - m->last.fwaits) / per;
  m->freads[w] = (double)(now.freads - m->last.freads) / per;
  m->fempty[w] = (double)(now.fempty - m->last.fempty) / per;
  m->fctls[w] = (double)(now.fctls - m->last.fctls) / per;
  m->fpolls[w] = (double)(now.fpolls - m->last.fpolls) / per;
  m->frt[w] = now.frt_n > m->last.frt_n
                  ? (now.frt_us - m->last.frt_us) / (double)(now.frt_n - m->last.frt_n)
                  : 0;
  if (m->o->mode == MODE_IDLE) {
    /* Idle: machine busy microseconds per second instead. */
    m->machine[w] = (double)(now.mach_us - m->last.mach_us) / secs;
  }
  m->runq[w] = now.runq_us >= 0 && m->last.runq_us >= 0
                   ? 100.0 * (double)(now.runq_us - m->last.runq_us) / (secs * 1e6)
                   : -1;
  m->p50[w] = (double)bu_hist_quantile(&m->hist, 0.50);
  m->p99[w] = (double)bu_hist_quantile(&m->hist, 0.99);
  m->pmax[w] = (double)bu_hist_quantile(&m->hist, 1.0);
  fprintf(stderr,
          "  window %d: %.1f s, %llu checks, %.0f checks/s, own %.1f us/check, servers %.1f, machine %.1f,"
          " lateness p50 %.0f p99 %.0f max %.0f ms, fails %llu, waited for a CPU %.0f%%\n",
          w + 1, secs, (unsigned long long)(now.checks - m->last.checks), m->rate[w], m->own[w], m->server[w], m->machine[w], m->p50[w], m->p99[w],
          m->pmax[w], (unsigned long long)(now.fails - m->last.fails), m->runq[w]);
  if (m->o->session && (m->srv->kind == PROBE_POSTGRES || m->srv->kind == PROBE_PGFLOOR))
    fprintf(stderr,
            "    per check: loop slices %.2f (%.1f us each), preempted %.2f; server slices %.2f"
            " (%.1f us each), floor messages %.2f (wake-up to answer %.1f us, above 1 ms %.3f);"
            " sessions: +%llu connects, +%llu held, +%llu full, %d holding none%s%s\n",
            m->slices[w], m->own_slice[w], m->preempted[w], m->be_slices[w], m->be_slice[w],
            m->msgs[w], m->span[w], m->slow[w], (unsigned long long)(now.connects - m->last.connects),
            (unsigned long long)(now.held - m->last.held),
            (unsigned long long)(now.full - m->last.full), now.not_held,
            now.not_held ? ", first: " : "", now.why);
  if (m->o->session && m->o->mode == MODE_LOOP)
    fprintf(stderr,
            "    floor%s per check: %s %.3f (+ ready set %.3f), reads %.3f (found nothing %.3f),"
            " epoll_ctl %.3f, wake-ups %.3f; response time %.1f us (%s)\n",
            m->o->uring_now     ? " --uring-now"
            : m->o->uring       ? " --uring"
            : m->o->defer_ready ? " --defer-ready"
            : m->o->defer       ? " --defer"
                                : "",
            m->o->uring ? "io_uring_enter" : "epoll_wait", m->fwaits[w],
            m->fpolls[w], m->freads[w], m->fempty[w], m->fctls[w],
            m->wakes[w], m->frt[w],
            m->o->defer || m->o->uring ? "the reply's kernel timestamp" : "when it was read");
  lateness_print(&m->hist);
  if (m->turns) {
    turns_print(m->turns);
    turns_reset(m->turns);
  }
  bu_hist_reset(&m->hist);
  m->last = now;
  if (m->window >= m->o->windows) bu_tcpstat(&m->tcp1);
  return m->window >= m->o->windows;
}

static void note_check(meas_t *m, bool ok, int64_t lateness_ms, const char *msg) {
  if (!ok && !m->first_error[0] && msg) snprintf(m->first_error, sizeof m->first_error, "%s", msg);
  if (!ok) reasons_add(&m->fail_why, msg);
  if (!m->measuring) return;
  m->checks++;
  if (!ok) m->fails++;
  bu_hist_add(&m->hist, lateness_ms);
}

/* ---- mode monitor ------------------------------------------------------------- */

/* ---- the scraper ------------------------------------------------------------ */

#define MAX_SCRAPES 100000

typedef struct {
  const opts_t *o;
  tsvc_board_t *board;
  uint64_t cpus;          /* where it runs (0: inherited) */
  atomic_bool stop;
  pthread_t thread;
  bool running;
  int n;
  int64_t us[MAX_SCRAPES]; /* time of each scrape */
  size_t bytes;            /* of the last one */
  int failed;
} scraper_t;

/* What GET /metrics does (src/api/api.c, get_metrics), without the socket. */
static void *scrape_main(void *arg) {
  scraper_t *sc = arg;
  if (sc->cpus) bu_pin(sc->cpus);
  int64_t step = (int64_t)(1e6 / sc->o->scrape_hz), next = bu_now_us() + step;
  while (!atomic_load(&sc->stop)) {
    int64_t now = bu_now_us();
    if (now < next) {
      bu_sleep_us(next - now < 20000 ? next - now : 20000);
      continue;
    }
    next += step;
    int64_t t0 = bu_now_us();
    tsvc_snapshot_t *snap;
    tsvc_buf_t b;
    tsvc_buf_init(&b, 64u << 20);
    int rc = tsvc_board_snapshot(sc->board, &snap);
    if (!rc) {
      rc = tsvc_metrics_render_snapshot(snap, &b);
      if (!rc) rc = tsvc_metrics_render_monitor(tsvc_snapshot_stats(snap), &b);
      tsvc_snapshot_release(snap);
    }
    int64_t took = bu_now_us() - t0;
    if (rc) sc->failed++;
    else if (sc->n < MAX_SCRAPES) sc->us[sc->n++] = took;
    sc->bytes = b.len;
    tsvc_buf_free(&b);
  }
  return NULL;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  meas_t *m;
  tsvc_monitor_t *mon;
  tsvc_config_t *cfg;
  uv_timer_t stagger, control, stall;
  const servers_t *srv;
  bool stalled; /* the first redis server is stopped (SIGSTOP) */
  size_t started;
  uint64_t t0;
  uint64_t win;     /* a window, ms */
  int settle_waits; /* 100 ms waits past the warm-up for the sessions */
  bool warm;
} mon_run_t;

static void observer(const tsvc_mon_event_t *e, void *data) {
  mon_run_t *r = data;
  if (e->type != TSVC_MON_EV_CHECK) return;
  if (r->m->turns) r->m->turns->done++;
  note_check(r->m, e->result == TSVC_RESULT_OK, e->lateness_ms, e->reason);
}

/* Start the services spread evenly over one interval (the steady state of
   a monitor that has run for a while), or all at once. */
static void stagger_cb(uv_timer_t *t) {
  mon_run_t *r = t->data;
  size_t n = r->cfg->nservices;
  uint64_t el = uv_now(t->loop) - r->t0;
  size_t upto = r->m->o->stagger ? (size_t)((double)n * (double)el /
                                            (double)r->m->o->interval_ms) + 1
                                 : n;
  if (upto > n) upto = n;
  for (; r->started < upto; r->started++)
    tsvc_monitor_started(r->mon, r->cfg->services[r->started].name);
  if (r->started == n) uv_timer_stop(t);
}

/* --stall: the first redis server or tcp listener stopped, as a machine
   that does not schedule it for a while leaves it, then let go. */
static pid_t stall_pid(const servers_t *srv) {
  return srv->kind == PROBE_TCP ? srv->tcp[0].pid : srv->redis[0].pid;
}

static void stall_end(mon_run_t *r) {
  if (!r->stalled) return;
  r->stalled = false;
  kill(stall_pid(r->srv), SIGCONT);
  fprintf(stderr, "  stall: the first server continued\n");
}

static void stall_cb(uv_timer_t *t) { stall_end(t->data); }

/* The held sessions that do not hold their connection yet or have not
   answered a check on it; 0: every one has. */
static size_t sessions_unsettled(tsvc_monitor_t *mon) {
  tsvc_status_list_t l;
  if (tsvc_monitor_get_all(mon, &l) != 0) return 0;
  size_t n = 0;
  for (size_t i = 0; i < l.n; i++)
    n += l.v[i].session && !(l.v[i].session_held && l.v[i].session_held_checks > 0);
  tsvc_status_list_free(&l);
  return n;
}

static void control_cb(uv_timer_t *t) {
  mon_run_t *r = t->data;
  if (!r->warm) {
    /* Held postgres sessions: the first check of each is the full probe,
       a new backend (tens of ms of server CPU), then the login; on a
       loaded machine some are still at it after the warm-up, or a first
       check timed out and the next is the full probe again, and the first
       window counted them as held checks' cost. Held redis sessions: the
       first check is the login, 10,500 of them to 2 servers within an
       interval (the 20,000 checks/s variant), and a login still waiting
       for its server in the first window was a failed check there ("no
       answer within 450 ms (waiting for the reply)"). Measure from when
       every session is held and has answered a check (at most 10 s
       more). */
    size_t left = r->m->o->session ? sessions_unsettled(r->mon) : 0;
    if (left && r->settle_waits < 100) {
      r->settle_waits++;
      uv_timer_start(t, control_cb, 100, r->win);
      return;
    }
    if (r->m->o->session)
      fprintf(stderr, "  sessions %s %d ms after the warm-up (%.1f s from the start)\n",
              left ? "NOT settled" : "settled", r->settle_waits * 100,
              (double)(uv_now(t->loop) - r->t0) / 1e3);
    if (left) fprintf(stderr, "  sessions not held or not checked on their connection: %zu\n", left);
    r->warm = true;
    window_begin(r->m);
    if (r->m->o->stall_ms > 0 && kill(stall_pid(r->srv), SIGSTOP) == 0) {
      r->stalled = true;
      fprintf(stderr, "  stall: the first server stopped for %ld ms\n", r->m->o->stall_ms);
      uv_timer_start(&r->stall, stall_cb, (uint64_t)r->m->o->stall_ms, 0);
    }
    uv_timer_start(t, control_cb, r->win, r->win);
    return;
  }
  if (window_end(r->m)) uv_stop(t->loop);
}

static char *services_yaml(const opts_t *o, const servers_t *srv) {
  tsvc_buf_t y;
  tsvc_buf_init(&y, (size_t)1 << 30);
  const char *probe = o->probe == PROBE_REDIS ? "redis" : o->probe == PROBE_TCP ? "tcp" : "postgres";
  /* PROBE_PGFLOOR: "postgres" too. */
  int rc = tsvc_buf_addf(&y, "services:\n");
  for (long i = 0; !rc && i < o->services; i++)
    rc = tsvc_buf_addf(&y,
                       "  s%ld:\n    external: true\n"
                       "    healthcheck: {probe: %s, address: \"127.0.0.1:%d\","
                       " interval: %lldms, timeout: %lldms, start_period: 0s, history: 20%s}\n",
                       i, probe, srv->ports[i % srv->n], (long long)o->interval_ms,
                       (long long)o->timeout_ms, o->session ? ", session: true" : "");
  if (rc) {
    tsvc_buf_free(&y);
    return NULL;
  }
  return tsvc_buf_steal(&y);
}

/* The sessions at the end of the run: how many hold a connection, and why
   the others do not (their session_error). */
static void session_summary(meas_t *m, tsvc_board_t *board) {
  tsvc_snapshot_t *snap;
  if (tsvc_board_snapshot_packed(board, &snap) != 0) return;
  tsvc_status_t *st = malloc(sizeof *st);
  for (size_t i = 0; st && i < tsvc_snapshot_count(snap); i++) {
    tsvc_snap_status(tsvc_snapshot_snap(snap, i), st);
    if (!st->session) continue;
    m->sess_n++;
    if (st->session_held) m->sess_held++;
    else reasons_add(&m->sess_why, st->session_error[0] ? st->session_error : "(none)");
    m->sess_connects += st->session_connects;
    m->sess_held_checks += st->session_held_checks;
    m->sess_full_checks += st->session_full_checks;
  }
  free(st);
  tsvc_snapshot_release(snap);
}

static int run_monitor(const opts_t *o, meas_t *m, const servers_t *srv) {
  char *yaml = services_yaml(o, srv);
  if (!yaml) {
    fprintf(stderr, "bench: fatal: unable to build the config (out of memory)\n");
    return -1;
  }
  mon_run_t r = {.m = m, .srv = srv};
  scraper_t *sc = NULL;
  tsvc_diag_t d = {0};
  int64_t t0 = bu_now_us();
  int rc = tsvc_config_load_string("bench.yaml", yaml, strlen(yaml), &r.cfg, &d);
  m->setup_config_us = bu_now_us() - t0;
  free(yaml);
  for (size_t i = 0; i < d.n && i < 5; i++) fprintf(stderr, "%s\n", d.lines[i]);
  tsvc_diag_free(&d);
  if (rc) {
    fprintf(stderr, "bench: fatal: unable to load the generated config: %s\n", tsvc_strerror(rc));
    return -1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  /* --turns: the turn meter needs the time blocked in epoll_wait (which
     costs libuv a non-blocking epoll_wait before each blocking one). */
  static turns_t turns;
  memset(&turns, 0, sizeof turns);
  if (o->turns && uv_loop_configure(&loop, UV_METRICS_IDLE_TIME) == 0) {
    uv_prepare_init(&loop, &turns.prep);
    turns.prep.data = &turns;
    uv_prepare_start(&turns.prep, prepare_cb);
    uv_unref((uv_handle_t *)&turns.prep);
    m->turns = &turns;
  }
  rc = tsvc_monitor_new(&loop, NULL, NULL, &r.mon);
  if (rc) {
    fprintf(stderr, "bench: fatal: unable to create the monitor: %s\n", tsvc_strerror(rc));
    tsvc_config_free(r.cfg);
    return -1;
  }
  tsvc_monitor_set_observer(r.mon, observer, &r);
  if (o->session && (o->probe == PROBE_POSTGRES || o->probe == PROBE_PGFLOOR)) m->mon = r.mon;
  tsvc_monitor_set_timer_grid(r.mon, o->grid_ms);
  t0 = bu_now_us();
  for (size_t i = 0; i < r.cfg->nservices && !rc; i++)
    rc = tsvc_monitor_add(r.mon, &r.cfg->services[i], NULL);
  m->setup_add_us = bu_now_us() - t0;
  if (rc) {
    fprintf(stderr, "bench: fatal: unable to add a service: %s\n", tsvc_strerror(rc));
  } else {
    fprintf(stderr, "  setup: config load %.1f ms, monitor_add x%zu %.1f ms\n",
            (double)m->setup_config_us / 1e3, r.cfg->nservices, (double)m->setup_add_us / 1e3);
    uv_update_time(&loop);
    r.t0 = uv_now(&loop);
    uv_timer_init(&loop, &r.stagger);
    uv_timer_init(&loop, &r.control);
    uv_timer_init(&loop, &r.stall);
    r.stagger.data = r.control.data = r.stall.data = &r;
    uv_timer_start(&r.stagger, stagger_cb, 0, 1);
    double warm = o->warmup_s >= 0 ? o->warmup_s : 2.0 * (double)o->interval_ms / 1e3 + 1.0;
    uint64_t win = (uint64_t)(o->seconds * 1000.0 / o->windows);
    r.win = win;
    uv_timer_start(&r.control, control_cb, (uint64_t)(warm * 1000.0), win);
    if (o->scrape_hz > 0 && (sc = calloc(1, sizeof *sc))) {
      sc->o = o;
      sc->board = tsvc_monitor_board(r.mon);
      uint64_t all = bu_allowed_cpus(), mine = o->cpu >= 0 ? UINT64_C(1) << o->cpu : 0;
      sc->cpus = o->scrape_same_cpu ? mine : (all & ~mine ? all & ~mine : 0);
      atomic_init(&sc->stop, false);
      sc->running = pthread_create(&sc->thread, NULL, scrape_main, sc) == 0;
      if (!sc->running) fprintf(stderr, "bench: warning: unable to start the scraper\n");
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (sc && sc->running) {
      atomic_store(&sc->stop, true);
      pthread_join(sc->thread, NULL);
      qsort(sc->us, (size_t)sc->n, sizeof sc->us[0], cmp_i64);
      m->scrapes = sc->n;
      m->scrape_failed = sc->failed;
      m->scrape_p50_ms = sc->n ? (double)sc->us[sc->n / 2] / 1000.0 : 0;
      m->scrape_max_ms = sc->n ? (double)sc->us[sc->n - 1] / 1000.0 : 0;
      m->scrape_bytes = sc->bytes;
      fprintf(stderr, "  scrapes: %d at %.0f/s, %.1f ms p50, %.1f ms max, %zu bytes each%s\n",
              sc->n, o->scrape_hz, m->scrape_p50_ms, m->scrape_max_ms, sc->bytes,
              sc->failed ? " (some failed)" : "");
    }
    free(sc);
    if (o->session) session_summary(m, tsvc_monitor_board(r.mon));
    uv_close((uv_handle_t *)&r.stagger, NULL);
    uv_close((uv_handle_t *)&r.control, NULL);
    stall_end(&r);
    uv_close((uv_handle_t *)&r.stall, NULL);
  }
  if (m->mon) {
    /* Held sessions opened more than once, or checked by the full probe
       more than once (the first check): what closed them. */
    tsvc_status_list_t l;
    if (tsvc_monitor_get_all(m->mon, &l) == 0) {
      int again = 0;
      for (size_t i = 0; i < l.n; i++) {
        const tsvc_status_t *v = &l.v[i];
        if (v->session_connects <= 1 && v->session_full_checks <= 1) continue;
        if (again++ < 3)
          fprintf(stderr, "  session %s: %llu connects, %llu full checks, last error: %s\n",
                  v->name, (unsigned long long)v->session_connects,
                  (unsigned long long)v->session_full_checks, v->session_error);
      }
      fprintf(stderr, "  sessions opened or fully checked more than once: %d of %zu\n", again,
              l.n);
      tsvc_status_list_free(&l);
    }
  }
  m->mon = NULL;
  if (m->turns) {
    uv_close((uv_handle_t *)&turns.prep, NULL);
    m->turns = NULL;
  }
  tsvc_monitor_close(r.mon);
  uv_run(&loop, UV_RUN_DEFAULT);
  tsvc_monitor_free(r.mon);
  int lc = uv_loop_close(&loop);
  if (lc) fprintf(stderr, "bench: warning: the loop still had handles: %s\n", uv_strerror(lc));
  tsvc_config_free(r.cfg);
  return rc ? -1 : 0;
}

static const char *probe_name(const opts_t *o);

/* ---- mode loop: the minimal blocking client --------------------------------- */

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Read until the peer closes; at most cap bytes kept. Returns bytes or -1. */
static ssize_t read_to_eof(int fd, char *buf, size_t cap) {
  size_t n = 0;
  for (;;) {
    char tmp[512];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r == 0) return (ssize_t)n;
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    size_t c = (size_t)r < cap - n ? (size_t)r : cap - n;
    memcpy(buf + n, tmp, c);
    n += c;
  }
}

/* The probe's exchange (src/probe/redis.c): PING and QUIT in one write,
   read until PING's reply, then close with an RST (SO_LINGER 0), without
   waiting for QUIT's close. */
static bool loop_redis(int port) {
  static const char req[] = "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n";
  int fd = dial(port);
  if (fd < 0) return false;
  char buf[256];
  size_t n = 0;
  bool ok = write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1);
  while (ok && n < 7) {
    ssize_t r = read(fd, buf + n, sizeof buf - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) ok = false;
    else n += (size_t)r;
  }
  ok = ok && memcmp(buf, "+PONG\r\n", 7) == 0;
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
  return ok;
}

static bool loop_tcp(int port) {
  int fd = dial(port);
  if (fd < 0) return false;
  close(fd);
  return true;
}

/* Startup packet as user postgres, wait for ReadyForQuery ('Z'), send
   Terminate and let the server close. */
static bool loop_postgres(int port) {
  static const char params[] = "user\0postgres\0database\0postgres\0";
  unsigned char pkt[64];
  uint32_t len = (uint32_t)(8 + sizeof params); /* the array's NUL ends the list */
  pkt[0] = (unsigned char)(len >> 24);
  pkt[1] = (unsigned char)(len >> 16);
  pkt[2] = (unsigned char)(len >> 8);
  pkt[3] = (unsigned char)len;
  pkt[4] = 0; /* protocol 3.0 */
  pkt[5] = 3;
  pkt[6] = 0;
  pkt[7] = 0;
  memcpy(pkt + 8, params, sizeof params);
  int fd = dial(port);
  if (fd < 0) return false;
  bool ok = false;
  if (write(fd, pkt, len) == (ssize_t)len) {
    unsigned char buf[2048];
    size_t n = 0;
    for (;;) {
      ssize_t r = read(fd, buf + n, sizeof buf - n);
      if (r <= 0) break;
      n += (size_t)r;
      /* Walk the messages: type, int32 length. */
      size_t off = 0;
      bool ready = false, err = false;
      while (off + 5 <= n) {
        uint32_t l = (uint32_t)buf[off + 1] << 24 | (uint32_t)buf[off + 2] << 16 |
                     (uint32_t)buf[off + 3] << 8 | buf[off + 4];
        if (off + 1 + l > n) break;
        if (buf[off] == 'Z') ready = true;
        if (buf[off] == 'E') err = true;
        off += 1 + l;
      }
      if (err) break;
      if (ready) {
        static const unsigned char term[5] = {'X', 0, 0, 0, 4};
        ok = write(fd, term, sizeof term) == (ssize_t)sizeof term;
        char rest[64];
        if (ok) read_to_eof(fd, rest, sizeof rest);
        break;
      }
      if (n == sizeof buf) break;
    }
  }
  close(fd);
  return ok;
}

/* Run one check every 1/rate s until the last window ends. */
typedef bool (*one_check_fn)(const opts_t *o, const servers_t *srv, long i, char *err,
                             size_t errlen);

static int paced(const opts_t *o, meas_t *m, const servers_t *srv, double rate,
                 one_check_fn fn) {
  double warm = o->warmup_s >= 0 ? o->warmup_s : 1.0;
  int64_t step = (int64_t)(1e6 / rate);
  if (step < 1) step = 1;
  int64_t start = bu_now_us();
  int64_t warm_end = start + (int64_t)(warm * 1e6);
  int64_t win = (int64_t)(o->seconds * 1e6 / o->windows);
  int64_t next_win = warm_end + win;
  int64_t due = start;
  char err[256];
  for (long i = 0;; i++) {
    int64_t now = bu_now_us();
    if (!m->measuring && now >= warm_end) {
      window_begin(m);
    } else if (m->measuring && now >= next_win) {
      if (window_end(m)) break;
      next_win += win;
    }
    if (due > now) {
      bu_sleep_us(due - now);
      now = bu_now_us();
    }
    int64_t late_ms = (now - due) / 1000;
    err[0] = 0;
    bool ok = fn(o, srv, i, err, sizeof err);
    note_check(m, ok, late_ms, err[0] ? err : "check failed");
    due += step;
    /* Behind by more than a second: do not try to catch up in a burst. */
    if (bu_now_us() - due > 1000000) due = bu_now_us();
  }
  return 0;
}

static bool loop_one(const opts_t *o, const servers_t *srv, long i, char *err, size_t len) {
  int port = srv->ports[i % srv->n];
  bool ok = o->probe == PROBE_REDIS  ? loop_redis(port)
            : o->probe == PROBE_TCP ? loop_tcp(port)
                                    : loop_postgres(port);
  if (!ok) snprintf(err, len, "%s check failed: %s", probe_name(o), strerror(errno));
  return ok;
}

/* ---- mode loop --session: the held floor ------------------------------------- */

/* The floor of a held redis check: one thread, one epoll set, no libuv and
 * no tanuki code. It holds one connection per service (as many as the
 * monitor holds, spread over the same servers), and checks each as the
 * monitor schedules a held check: the first at a random point of the
 * interval, each next one an interval plus a random extra of up to 10%
 * after the reply (src/health/health.c), started at the first step of the
 * --grid at or after its deadline. A check writes PING and reads +PONG;
 * no answer within --timeout fails it. Deadlines and timeouts sit in a
 * wheel of grid-wide slots (a doubly linked list a slot, O(1) each way),
 * and the loop sleeps in epoll_wait until the next slot that holds one.
 *
 * --defer (issue 13, point 4): replies are read once a grid step instead of
 * as they arrive. A connection is in the epoll set for EPOLLRDHUP only (a
 * server that closes or resets it still wakes the loop; a reply does not);
 * a check that has sent its PING waits in a pending list, and every wake-up
 * (at least one a grid step while any is pending) reads each pending reply
 * with a non-blocking recvmsg; one not there yet stays pending. The
 * response time is the reply's kernel arrival time (SO_TIMESTAMPNS) less
 * the send; a reply that arrived after the timeout fails the check.
 *
 * --defer-ready: the same, but each connection is also in a second epoll
 * set (EPOLLIN) that the loop never sleeps on: each wake-up with checks in
 * flight asks it, without waiting, which replies are there (one
 * epoll_wait a step) and reads only those; a slow reply costs nothing
 * until it is there. */

typedef struct {
  int fd;
  int slot;             /* the wheel slot it is listed in; -1: none */
  int prev, next;       /* in that slot's list */
  bool busy;            /* PING sent, +PONG awaited */
  int64_t due_ms;       /* the scheduled start of the next check */
  int64_t sent_ms;      /* ... of the one in flight (its lateness counted) */
  int64_t sent_us;      /* ... the wake-up's clock when it was sent */
  int pidx;             /* --defer: its index in the pending list; -1: none */
  bool armed;           /* --defer: its fd waits for EPOLLIN (a slow reply) */
  uint8_t rlen;
  char rbuf[16];
} fconn_t;

typedef struct {
  fconn_t *c;
  int *head;     /* per slot: the first connection, -1: none */
  long nslots;
  int64_t width; /* ms a slot */
  int64_t base;  /* the start of slot 0's current turn, ms */
  uint64_t rng;
} wheel_t;

static int64_t floor_now_ms(void) { return bu_now_us() / 1000; }

static uint64_t floor_rand(wheel_t *w) { /* xorshift64 */
  w->rng ^= w->rng << 13;
  w->rng ^= w->rng >> 7;
  w->rng ^= w->rng << 17;
  return w->rng;
}

static void wheel_unlink(wheel_t *w, int i) {
  fconn_t *c = &w->c[i];
  if (c->slot < 0) return;
  if (c->prev >= 0) w->c[c->prev].next = c->next;
  else w->head[c->slot] = c->next;
  if (c->next >= 0) w->c[c->next].prev = c->prev;
  c->slot = -1;
}

/* List i at time t (ms), rounded up to the grid as arm() does. */
static void wheel_put(wheel_t *w, int i, int64_t t) {
  fconn_t *c = &w->c[i];
  wheel_unlink(w, i);
  long s = (long)(((t + w->width - 1) / w->width) % w->nslots);
  c->slot = (int)s;
  c->prev = -1;
  c->next = w->head[s];
  if (c->next >= 0) w->c[c->next].prev = i;
  w->head[s] = i;
}

/* Connection i's next check is due at its due_ms, moved up to the step
   as arm() does (the lateness counted from there, as the library's). */
static void wheel_due(wheel_t *w, int i) {
  fconn_t *c = &w->c[i];
  c->due_ms = (c->due_ms + w->width - 1) / w->width * w->width;
  wheel_put(w, i, c->due_ms);
}

/* A wheel for o's services: slots as wide as the step the library puts
   their deadlines on (tsvc_timer_step), spanning a deadline (at most an
   interval + 10% + a step ahead) and a --timeout, and then some; every
   slot empty. 0, or -1 with errno (w's arrays, NULL or not, the caller's
   to free). */
static int wheel_init(wheel_t *w, const opts_t *o) {
  int64_t g = tsvc_timer_step(o->grid_ms, o->interval_ms);
  if (g < 1) g = 1;
  *w = (wheel_t){.width = g, .rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid()};
  int64_t span = o->interval_ms + o->interval_ms / 10 + o->timeout_ms + 2 * g;
  w->nslots = (long)(span / g) + 2;
  w->c = calloc((size_t)o->services, sizeof *w->c);
  w->head = malloc((size_t)w->nslots * sizeof *w->head);
  if (!w->c || !w->head) return -1;
  for (long s = 0; s < w->nslots; s++) w->head[s] = -1;
  return 0;
}

/* CLOCK_REALTIME less the loop's clock (bu_now_us), us: puts the kernel's
   timestamps (SO_TIMESTAMPNS) on the loop's clock. */
static int64_t realtime_off_us(void) {
  struct timespec rt0;
  clock_gettime(CLOCK_REALTIME, &rt0);
  return (int64_t)rt0.tv_sec * 1000000 + rt0.tv_nsec / 1000 - bu_now_us();
}

/* --defer: the check in flight on connection i got its whole reply, which
   arrived at arr_us (the loop's clock): its verdict, the next check's due
   time. Returns 0, or -1 (errno 0) when the reply is not +PONG. */
static int floor_defer_done(meas_t *m, wheel_t *w, int i, int64_t arr_us) {
  fconn_t *c = &w->c[i];
  if (c->rlen != 7 || memcmp(c->rbuf, "+PONG\r\n", 7) != 0) {
    errno = 0;
    return -1;
  }
  double rt = (double)(arr_us - c->sent_us);
  floor_ctr.rt_us += rt;
  floor_ctr.rt_n++;
  bool on_time = rt < (double)m->o->timeout_ms * 1000.0;
  note_check(m, on_time, c->sent_ms - c->due_ms,
             on_time ? NULL : "answer after the timeout (floor, kernel timestamp)");
  c->busy = false;
  c->rlen = 0;
  c->due_ms = arr_us / 1000 + m->o->interval_ms +
              (int64_t)(floor_rand(w) % (uint64_t)(m->o->interval_ms / 10 + 1));
  wheel_due(w, i);
  return 0;
}

static int floor_dial(int port, bool defer) {
  int fd = dial(port);
  if (fd < 0) return -1;
  int one = 1;
  /* As the session's connection (uv_tcp_nodelay), non-blocking. */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  /* --defer: every segment carries its arrival time. */
  if (defer && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Dial connection i and add it to the epoll set: for its replies, or
   (--defer) for a close only; and to the ready set ep2 (>= 0) for its
   replies. Returns 0, or -1 with errno set. */
static int floor_add(int ep, int ep2, fconn_t *c, int i, int port, bool defer) {
  c->fd = floor_dial(port, defer);
  struct epoll_event ev = {.events = defer ? EPOLLRDHUP : EPOLLIN, .data.u32 = (uint32_t)i};
  if (c->fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) return -1;
  ev.events = EPOLLIN;
  if (ep2 >= 0 && epoll_ctl(ep2, EPOLL_CTL_ADD, c->fd, &ev) != 0) return -1;
  return 0;
}

/* --defer: read connection c's reply if it is there. Returns 1 with the
   whole reply read (*arr_us: its kernel arrival time, CLOCK_REALTIME), 0
   when not all of it is there yet, -1 on a closed connection or an error. */
static int floor_recv(fconn_t *c, int64_t *arr_us) {
  char ctl[CMSG_SPACE(sizeof(struct timespec))];
  struct iovec iov = {c->rbuf + c->rlen, sizeof c->rbuf - c->rlen};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                      .msg_controllen = sizeof ctl};
  floor_ctr.reads++;
  ssize_t got = recvmsg(c->fd, &mh, 0);
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
    floor_ctr.empty++;
    return 0;
  }
  if (got <= 0) return -1;
  c->rlen = (uint8_t)(c->rlen + got);
  if (c->rlen < 7) return 0;
  *arr_us = -1;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(h), sizeof ts);
      *arr_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
  if (*arr_us < 0) errno = ENOMSG; /* no timestamp: SO_TIMESTAMPNS was set */
  return *arr_us < 0 ? -1 : 1;
}

static int run_floor(const opts_t *o, meas_t *m, const servers_t *srv) {
  long n = o->services;
  wheel_t w;
  int wheel_rc = wheel_init(&w, o);
  int64_t g = w.width;
  int *pend = o->defer ? malloc((size_t)n * sizeof *pend) : NULL; /* --defer */
  int npend = 0; /* --defer: checks in flight (--defer-ready: not listed) */
  int ep2 = o->defer_ready ? epoll_create1(EPOLL_CLOEXEC) : -1;
  int64_t off_us = realtime_off_us(); /* --defer */
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int rc = -1;
  if (wheel_rc || ep < 0 || (o->defer && !pend) || (o->defer_ready && ep2 < 0)) {
    fprintf(stderr, "bench: fatal: unable to set up the floor: %s\n", strerror(errno));
    goto out;
  }
  int64_t start = floor_now_ms();
  for (long i = 0; i < n; i++) {
    fconn_t *c = &w.c[i];
    c->slot = -1;
    c->pidx = -1;
    if (floor_add(ep, ep2, c, (int)i, srv->ports[i % srv->n], o->defer) != 0) {
      fprintf(stderr, "bench: fatal: floor connection %ld: %s\n", i, strerror(errno));
      goto out;
    }
    c->due_ms = start + 1 + (int64_t)(floor_rand(&w) % (uint64_t)o->interval_ms);
    wheel_due(&w, (int)i);
  }
  fprintf(stderr, "  floor: %ld connections held, %ld slots of %lld ms%s\n", n, w.nslots,
          (long long)g,
          o->defer_ready ? ", replies read once a step, found by a ready set (--defer-ready)"
          : o->defer     ? ", replies read once a step (--defer)"
                         : "");
  double warm = o->warmup_s >= 0 ? o->warmup_s : 2.0 * (double)o->interval_ms / 1e3 + 1.0;
  int64_t warm_end = start + (int64_t)(warm * 1e3);
  int64_t win = (int64_t)(o->seconds * 1e3 / o->windows);
  int64_t next_win = warm_end + win;
  int64_t now = start, now_us = bu_now_us();
  /* The first slot not yet run, as an absolute slot number. */
  int64_t cur = start / g;
  struct epoll_event evs[256];
  static const char ping[] = "*1\r\n$4\r\nPING\r\n";
  for (;;) {
    if (!m->measuring && now >= warm_end) {
      window_begin(m);
    } else if (m->measuring && now >= next_win) {
      if (window_end(m)) break;
      next_win += win;
    }
    /* Run every slot whose time has come. */
    for (; cur * g <= now; cur++) {
      long s = (long)(cur % w.nslots);
      for (int i = w.head[s], nx; i >= 0; i = nx) {
        fconn_t *c = &w.c[i];
        nx = c->next;
        if (c->busy) {
          if (now - c->sent_ms < o->timeout_ms) continue; /* a later turn's */
          note_check(m, false, c->sent_ms - c->due_ms, "no answer in time (floor)");
          wheel_unlink(&w, i);
          close(c->fd); /* as the session: a new connection for the next */
          c->busy = false;
          c->rlen = 0;
          if (c->pidx >= 0) { /* --defer: off the pending list */
            pend[c->pidx] = pend[--npend];
            w.c[pend[c->pidx]].pidx = c->pidx;
            c->pidx = -1;
          } else if (o->defer_ready) {
            npend--;
          }
          c->armed = false;
          if (floor_add(ep, ep2, c, i, srv->ports[i % srv->n], o->defer) != 0) goto fail;
          c->due_ms = now + o->interval_ms;
          wheel_due(&w, i);
          continue;
        }
        if (c->due_ms > now) continue; /* a later turn of the wheel's */
        if (write(c->fd, ping, sizeof ping - 1) != (ssize_t)(sizeof ping - 1)) goto fail;
        c->busy = true;
        c->sent_ms = now;
        c->sent_us = now_us;
        if (o->defer_ready) {
          npend++;
        } else if (o->defer) {
          c->pidx = npend;
          pend[npend++] = i;
        }
        wheel_put(&w, i, now + o->timeout_ms);
      }
    }
    /* Sleep until the next slot that lists anything (or a window's end). */
    int64_t wake = next_win;
    if (!m->measuring && warm_end < wake) wake = warm_end;
    for (int64_t k = cur; k * g < wake; k++)
      if (w.head[k % w.nslots] >= 0) {
        wake = k * g;
        break;
      }
    /* --defer: replies pending, the next step reads them. */
    if (npend && cur * g < wake) wake = cur * g;
    int to = wake > now ? (int)(wake - now) : 0;
    floor_ctr.waits++;
    int r = epoll_wait(ep, evs, (int)(sizeof evs / sizeof evs[0]), to);
    if (r < 0 && errno != EINTR) goto fail;
    now_us = bu_now_us(); /* one clock read a wake-up, as libuv's loop */
    now = now_us / 1000;
    /* --defer: an event is a close or an error (fatal here, as a reply
       that is not +PONG), or the reply of a check whose first read found
       nothing (armed: it waits for its reply as the plain floor does). */
    for (int k = 0; k < r && o->defer; k++) {
      int i = (int)evs[k].data.u32;
      fconn_t *c = &w.c[i];
      int64_t arr_us;
      errno = ECONNRESET; /* a close; recvmsg's own error otherwise */
      int got = c->armed && (evs[k].events & EPOLLIN) ? floor_recv(c, &arr_us) : -1;
      if (got < 0) goto fail;
      if (got == 0) continue;
      struct epoll_event ev = {.events = EPOLLRDHUP, .data.u32 = (uint32_t)i};
      floor_ctr.ctls++;
      if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) goto fail;
      c->armed = false;
      if (floor_defer_done(m, &w, i, arr_us - off_us) != 0) goto fail;
    }
    /* --defer-ready: the replies there now, without waiting. */
    while (o->defer_ready && npend) {
      floor_ctr.polls++;
      int r2 = epoll_wait(ep2, evs, (int)(sizeof evs / sizeof evs[0]), 0);
      if (r2 < 0 && errno != EINTR) goto fail;
      for (int k = 0; k < r2; k++) {
        int i = (int)evs[k].data.u32;
        fconn_t *c = &w.c[i];
        int64_t arr_us;
        errno = 0; /* not busy: a reply nobody asked for */
        int got = c->busy ? floor_recv(c, &arr_us) : -1;
        if (got < 0) goto fail;
        if (got == 0) continue;
        npend--;
        if (floor_defer_done(m, &w, i, arr_us - off_us) != 0) goto fail;
      }
      if (r2 < (int)(sizeof evs / sizeof evs[0])) break;
    }
    for (int k = 0; o->defer && !o->defer_ready && k < npend;) {
      int i = pend[k];
      fconn_t *c = &w.c[i];
      int64_t arr_us;
      int got = floor_recv(c, &arr_us);
      if (got < 0) goto fail;
      pend[k] = pend[--npend]; /* k now holds the one moved here */
      w.c[pend[k]].pidx = k;
      c->pidx = -1;
      if (got == 0) {
        /* Not there a step after it was sent (a slow server): rather than
           read it again every step, wait for it (an epoll_ctl each way). */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        floor_ctr.ctls++;
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) goto fail;
        c->armed = true;
        continue;
      }
      if (floor_defer_done(m, &w, i, arr_us - off_us) != 0) goto fail;
    }
    for (int k = 0; k < r && !o->defer; k++) {
      int i = (int)evs[k].data.u32;
      fconn_t *c = &w.c[i];
      floor_ctr.reads++;
      ssize_t got = read(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0 || !c->busy) goto fail;
      c->rlen = (uint8_t)(c->rlen + got);
      if (c->rlen < 7) continue;
      if (c->rlen != 7 || memcmp(c->rbuf, "+PONG\r\n", 7) != 0) {
        errno = 0;
        goto fail;
      }
      note_check(m, true, c->sent_ms - c->due_ms, NULL);
      floor_ctr.rt_us += (double)(now_us - c->sent_us);
      floor_ctr.rt_n++;
      c->busy = false;
      c->rlen = 0;
      c->due_ms = now + o->interval_ms +
                  (int64_t)(floor_rand(&w) % (uint64_t)(o->interval_ms / 10 + 1));
      wheel_due(&w, i);
    }
  }
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "bench: fatal: the floor's exchange failed: %s\n",
          errno ? strerror(errno) : "not +PONG");
out:
  for (long i = 0; w.c && i < n; i++)
    if (w.c[i].fd > 0) close(w.c[i].fd);
  if (ep >= 0) close(ep);
  if (ep2 >= 0) close(ep2);
  free(w.c);
  free(w.head);
  free(pend);
  return rc;
}

/* ---- mode loop --session --uring: the held floor on io_uring ---------------- */

/* --uring (issue 13): the held floor with io_uring instead of epoll and
 * read/write, to see what batching the kernel entries saves. Same
 * connections, schedule, jitter, wheel, timeout and counters as run_floor;
 * only the I/O differs. Each grid step the loop makes one io_uring_enter:
 * it submits that step's PINGs (IORING_OP_SEND) and the recvmsgs of the
 * replies to the PINGs of the step before (or, --uring-now, of this step's,
 * each right after its PING), and then sleeps in the same call until the
 * next step that has anything to do; the completions it finds on waking
 * are the verdicts. The ring runs its completion work only inside that
 * call (IORING_SETUP_DEFER_TASKRUN, with SINGLE_ISSUER), and the call asks
 * for more completions than can come, so a reply never wakes the loop: it
 * wakes once a step at most, as --defer does. No SQPOLL: its kernel
 * thread's CPU would not be counted as this process's.
 *
 * The response time is the reply's kernel arrival time (SO_TIMESTAMPNS,
 * the control message of the recvmsg) less the step's clock when the PING
 * went, as --defer's; a reply that arrived after --timeout fails the check.
 * A check with no reply at --timeout fails; its connection is shut down
 * (which ends its pending recvmsg with 0 bytes) and closed, and a new one
 * dialled: each connection carries a generation in its completions'
 * user_data, so that the old connection's late completions are ignored
 * (the old recvmsg writes nothing into rbuf after the shutdown, and the
 * new connection's first recvmsg is an interval later).
 * A send that fails or is short, a recvmsg that fails or finds the
 * connection closed, or a reply that is not +PONG end the run (as in
 * run_floor). Counted: io_uring_enter calls as the floor's waits, recvmsgs
 * as its reads, and as "found nothing" the replies that arrived after
 * their recvmsg was submitted (which the kernel had to wait for). */

#ifdef BENCH_URING

typedef struct {
  struct msghdr mh;
  struct iovec iov;
  /* The control message: CMSG_SPACE(sizeof(struct timespec)) bytes are
     used (32 on 64-bit Linux; clang takes neither CMSG_SPACE as a constant
     size in a struct nor a struct cmsghdr, whose data is a flexible array,
     in a union), aligned for the cmsghdr. */
  _Alignas(struct cmsghdr) char ctl[64];
  uint32_t gen;    /* bumped at each new connection */
  int64_t recv_us; /* when its recvmsg was submitted (the loop's clock) */
} uconn_t;

enum { URING_SEND = 1, URING_RECV = 2 };

static uint64_t uring_tag(int i, uint32_t gen, unsigned op) {
  return (uint64_t)op << 62 | (uint64_t)(gen & 0x3fffffffu) << 32 | (uint32_t)i;
}

/* An SQE, submitting what is queued first when the ring is full (counted as
   an io_uring_enter). NULL with errno set when none can be had. */
static struct io_uring_sqe *uring_sqe(struct io_uring *ring) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
  if (sqe) return sqe;
  floor_ctr.waits++;
  int r = io_uring_submit(ring);
  if (r < 0) {
    errno = -r;
    return NULL;
  }
  sqe = io_uring_get_sqe(ring);
  if (!sqe) errno = EBUSY;
  return sqe;
}

/* Queue the recvmsg of connection i's reply (into what is left of rbuf). */
static int uring_recv(struct io_uring *ring, fconn_t *c, uconn_t *u, int i, int64_t now_us) {
  struct io_uring_sqe *sqe = uring_sqe(ring);
  if (!sqe) return -1;
  u->iov = (struct iovec){c->rbuf + c->rlen, sizeof c->rbuf - c->rlen};
  u->mh = (struct msghdr){.msg_iov = &u->iov, .msg_iovlen = 1, .msg_control = u->ctl,
                          .msg_controllen = CMSG_SPACE(sizeof(struct timespec))};
  memset(u->ctl, 0, sizeof(struct cmsghdr)); /* no stale timestamp */
  io_uring_prep_recvmsg(sqe, c->fd, &u->mh, 0);
  io_uring_sqe_set_data64(sqe, uring_tag(i, u->gen, URING_RECV));
  u->recv_us = now_us;
  floor_ctr.reads++;
  return 0;
}

/* The kernel arrival time (CLOCK_REALTIME, us) in a completed recvmsg's
   control message, or -1. The kernel writes it at the start of the
   buffer; msg_controllen is not relied on (io_uring need not copy it
   back). */
static int64_t uring_stamp(const uconn_t *u) {
  struct cmsghdr h;
  memcpy(&h, u->ctl, sizeof h);
  if (h.cmsg_level != SOL_SOCKET || h.cmsg_type != SCM_TIMESTAMPNS ||
      h.cmsg_len < CMSG_LEN(sizeof(struct timespec)))
    return -1;
  struct timespec ts;
  memcpy(&ts, CMSG_DATA((const struct cmsghdr *)(const void *)u->ctl), sizeof ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int run_floor_uring(const opts_t *o, meas_t *m, const servers_t *srv) {
  long n = o->services;
  wheel_t w;
  int wheel_rc = wheel_init(&w, o);
  int64_t g = w.width;
  uconn_t *u = calloc((size_t)n, sizeof *u);
  /* The PINGs sent in the last step, whose recvmsgs the next step submits:
     (connection, generation) pairs. */
  int *sent = malloc((size_t)n * sizeof *sent), *sent_gen = malloc((size_t)n * sizeof *sent_gen);
  int nsent = 0;
  long inflight = 0; /* recvmsgs submitted and not completed */
  int64_t off_us = realtime_off_us();
  struct io_uring ring;
  bool ring_up = false;
  int rc = -1;
  if (wheel_rc || !u || !sent || !sent_gen) {
    fprintf(stderr, "bench: fatal: unable to set up the floor: %s\n", strerror(errno));
    goto out;
  }
  if (CMSG_SPACE(sizeof(struct timespec)) > sizeof u->ctl) {
    fprintf(stderr, "bench: fatal: a timestamp's control message does not fit in %zu bytes\n",
            sizeof u->ctl);
    goto out;
  }
  /* Completions: at most a send and a recvmsg a connection at once (the
     kernel wants at least as many as the 1024 submission entries). */
  unsigned cq = 2048;
  while (cq < 2u * (unsigned)n + 64) cq *= 2;
  struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                                       IORING_SETUP_DEFER_TASKRUN,
                              .cq_entries = cq};
  int r = io_uring_queue_init_params(1024, &ring, &p);
  if (r < 0) {
    fprintf(stderr,
            "bench: fatal: io_uring_queue_init_params (DEFER_TASKRUN, CQ %u): %s (see "
            "sysctl kernel.io_uring_disabled; DEFER_TASKRUN needs Linux 6.1)\n",
            cq, strerror(-r));
    goto out;
  }
  ring_up = true;
  if (!(p.features & IORING_FEAT_EXT_ARG)) {
    fprintf(stderr, "bench: fatal: io_uring without IORING_FEAT_EXT_ARG (Linux 5.11)\n");
    goto out;
  }
  int64_t start = floor_now_ms();
  for (long i = 0; i < n; i++) {
    fconn_t *c = &w.c[i];
    c->slot = -1;
    c->pidx = -1;
    c->fd = floor_dial(srv->ports[i % srv->n], true);
    if (c->fd < 0) {
      fprintf(stderr, "bench: fatal: floor connection %ld: %s\n", i, strerror(errno));
      goto out;
    }
    c->due_ms = start + 1 + (int64_t)(floor_rand(&w) % (uint64_t)o->interval_ms);
    wheel_due(&w, (int)i);
  }
  fprintf(stderr,
          "  floor: %ld connections held, %ld slots of %lld ms, io_uring (CQ %u, "
          "DEFER_TASKRUN), one io_uring_enter a step, recvmsg %s\n",
          n, w.nslots, (long long)g, p.cq_entries,
          o->uring_now ? "with its PING (--uring-now)" : "a step after its PING");
  /* More completions than can come: the wait ends at its timeout only. */
  unsigned wait_nr = p.cq_entries;
  double warm = o->warmup_s >= 0 ? o->warmup_s : 2.0 * (double)o->interval_ms / 1e3 + 1.0;
  int64_t warm_end = start + (int64_t)(warm * 1e3);
  int64_t win = (int64_t)(o->seconds * 1e3 / o->windows);
  int64_t next_win = warm_end + win;
  int64_t now = start, now_us = bu_now_us();
  int64_t cur = start / g;
  static const char ping[] = "*1\r\n$4\r\nPING\r\n";
  for (;;) {
    /* The completions of the last io_uring_enter. */
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      uint64_t d = cqe->user_data;
      int i = (int)(uint32_t)d;
      unsigned op = (unsigned)(d >> 62);
      fconn_t *c = &w.c[i];
      if (op == URING_RECV) inflight--;
      if ((uint32_t)(d >> 32 & 0x3fffffffu) != (u[i].gen & 0x3fffffffu)) continue; /* old */
      if (op == URING_SEND) {
        errno = cqe->res < 0 ? -cqe->res : EIO; /* EIO: a short send */
        if (cqe->res != (int)(sizeof ping - 1)) goto fail;
        continue;
      }
      errno = cqe->res < 0 ? -cqe->res : ECONNRESET; /* 0: closed */
      if (cqe->res <= 0) goto fail;
      errno = 0; /* not busy: a reply nobody asked for */
      if (!c->busy) goto fail;
      c->rlen = (uint8_t)(c->rlen + cqe->res);
      if (c->rlen < 7) { /* a part: the rest next */
        if (uring_recv(&ring, c, &u[i], i, now_us) != 0) goto fail;
        inflight++;
        continue;
      }
      int64_t arr_us = uring_stamp(&u[i]);
      errno = ENOMSG; /* no timestamp: SO_TIMESTAMPNS was set */
      if (arr_us < 0) goto fail;
      arr_us -= off_us;
      if (arr_us > u[i].recv_us) floor_ctr.empty++; /* the kernel waited for it */
      if (floor_defer_done(m, &w, i, arr_us) != 0) goto fail;
    }
    io_uring_cq_advance(&ring, seen);
    if (!m->measuring && now >= warm_end) {
      window_begin(m);
    } else if (m->measuring && now >= next_win) {
      if (window_end(m)) break;
      next_win += win;
    }
    /* The recvmsgs of the last step's PINGs. */
    for (int k = 0; k < nsent; k++) {
      int i = sent[k];
      if (!w.c[i].busy || u[i].gen != (uint32_t)sent_gen[k]) continue; /* timed out */
      if (uring_recv(&ring, &w.c[i], &u[i], i, now_us) != 0) goto fail;
      inflight++;
    }
    nsent = 0;
    /* Run every slot whose time has come. */
    for (; cur * g <= now; cur++) {
      long s = (long)(cur % w.nslots);
      for (int i = w.head[s], nx; i >= 0; i = nx) {
        fconn_t *c = &w.c[i];
        nx = c->next;
        if (c->busy) {
          if (now - c->sent_ms < o->timeout_ms) continue; /* a later turn's */
          note_check(m, false, c->sent_ms - c->due_ms, "no answer in time (floor)");
          wheel_unlink(&w, i);
          /* As the session: a new connection for the next. The shutdown
             ends the pending recvmsg (its completion is ignored). */
          shutdown(c->fd, SHUT_RDWR);
          close(c->fd);
          u[i].gen++;
          c->busy = false;
          c->rlen = 0;
          c->fd = floor_dial(srv->ports[i % srv->n], true);
          if (c->fd < 0) goto fail;
          c->due_ms = now + o->interval_ms;
          wheel_due(&w, i);
          continue;
        }
        if (c->due_ms > now) continue; /* a later turn of the wheel's */
        struct io_uring_sqe *sqe = uring_sqe(&ring);
        if (!sqe) goto fail;
        io_uring_prep_send(sqe, c->fd, ping, sizeof ping - 1, 0);
        io_uring_sqe_set_data64(sqe, uring_tag(i, u[i].gen, URING_SEND));
        c->busy = true;
        c->sent_ms = now;
        c->sent_us = now_us;
        if (o->uring_now) {
          if (uring_recv(&ring, c, &u[i], i, now_us) != 0) goto fail;
          inflight++;
        } else {
          sent[nsent] = i;
          sent_gen[nsent++] = (int)u[i].gen;
        }
        wheel_put(&w, i, now + o->timeout_ms);
      }
    }
    /* Sleep until the next slot that lists anything (or a window's end),
       or the next step while replies are awaited. */
    int64_t wake = next_win;
    if (!m->measuring && warm_end < wake) wake = warm_end;
    for (int64_t k = cur; k * g < wake; k++)
      if (w.head[k % w.nslots] >= 0) {
        wake = k * g;
        break;
      }
    if ((nsent || inflight) && cur * g < wake) wake = cur * g;
    int64_t to = wake > now ? wake - now : 0;
    struct __kernel_timespec ts = {.tv_sec = to / 1000, .tv_nsec = (to % 1000) * 1000000};
    floor_ctr.waits++;
    r = io_uring_submit_and_wait_timeout(&ring, &cqe, wait_nr, &ts, NULL);
    if (r < 0 && r != -ETIME && r != -EINTR) {
      errno = -r;
      goto fail;
    }
    now_us = bu_now_us(); /* one clock read a wake-up, as libuv's loop */
    now = now_us / 1000;
  }
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "bench: fatal: the floor's exchange failed (io_uring): %s\n",
          errno ? strerror(errno) : "not +PONG");
out:
  for (long i = 0; w.c && i < n; i++)
    if (w.c[i].fd > 0) close(w.c[i].fd);
  if (ring_up) io_uring_queue_exit(&ring);
  free(w.c);
  free(w.head);
  free(u);
  free(sent);
  free(sent_gen);
  return rc;
}

#else /* !BENCH_URING */

static int run_floor_uring(const opts_t *o, meas_t *m, const servers_t *srv) {
  fprintf(stderr, "bench: fatal: --uring: bench_monitor was built without liburing "
                  "(pkg-config liburing; Debian: liburing-dev)\n");
  return -1;
}

#endif

/* ---- mode fork: the original request's commands ----------------------------- */

static bool fork_one(const opts_t *o, const servers_t *srv, long i, char *err, size_t len) {
  char port[16];
  /* docker mode starts no server of ours: no port to name. */
  snprintf(port, sizeof port, "%d", srv->n ? srv->ports[i % srv->n] : 0);
  const char *container = getenv("BENCH_REDIS_CONTAINER");
  char pgbin[512];
  snprintf(pgbin, sizeof pgbin, "%s/pg_isready", srv->kind == PROBE_POSTGRES ? srv->pg.bindir : "/usr/bin");
  char *redis_argv[] = {"redis-cli", "-h", "127.0.0.1", "-p", port, "ping", NULL};
  char *pg_argv[] = {pgbin, "-h", "127.0.0.1", "-p", port, "-U", "postgres", NULL};
  char *docker_argv[] = {"docker", "exec", (char *)(container ? container : ""), "redis-cli",
                         "ping", NULL};
  char **argv = strcmp(o->tool, "pg_isready") == 0 ? pg_argv
                : strcmp(o->tool, "docker") == 0   ? docker_argv
                                                   : redis_argv;
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) {
    snprintf(err, len, "pipe: %s", strerror(errno));
    return false;
  }
  /* As Go's exec.Command(...).Output(): stdout through a pipe, read whole. */
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pfd[1]);
  if (rc != 0) {
    close(pfd[0]);
    snprintf(err, len, "cannot run %s: %s", argv[0], strerror(rc));
    return false;
  }
  char out[256];
  ssize_t n = read_to_eof(pfd[0], out, sizeof out - 1);
  close(pfd[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  out[n > 0 ? n : 0] = 0;
  bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (ok && argv != pg_argv) ok = strncmp(out, "PONG", 4) == 0;
  if (!ok) snprintf(err, len, "%s failed (status %d): %.100s", argv[0], st, out);
  return ok;
}

/* ---- mode idle ---------------------------------------------------------------- */

static bool idle_one(const opts_t *o, const servers_t *srv, long i, char *err, size_t len) {
  (void)o, (void)srv, (void)i, (void)err, (void)len;
  return true;
}

/* ---- main --------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_monitor [options]\n"
          "  --mode monitor|loop|fork|idle|postgres  (postgres = monitor --probe postgres)\n"
          "  --probe redis|tcp|postgres|pgfloor   what the checks talk to (default redis);\n"
          "                               pgfloor (monitor): the postgres probe against a trivial\n"
          "                               process-per-connection server, the floor of a held check\n"
          "  --tool redis-cli|pg_isready|docker   fork mode's command (default by probe;\n"
          "                               docker: `docker exec $BENCH_REDIS_CONTAINER redis-cli ping`)\n"
          "  --services N                 services watched (default 1000)\n"
          "  --interval MS                check interval in ms (default 1000)\n"
          "  --timeout MS                 probe timeout in ms (default 1000)\n"
          "  --seconds S                  measured time, after the warm-up (default 10)\n"
          "  --windows K                  split the measured time into K windows (default 3)\n"
          "  --warmup S                   warm-up (default monitor, loop --session: 2 intervals\n"
          "                               + 1 s; else 1 s)\n"
          "  --rate R                     loop/fork: checks per second (default services/interval;\n"
          "                               fork: 20)\n"
          "  --cpu C                      pin this process to CPU C, servers to the others\n"
          "  --servers K                  redis servers / tcp listeners (default 1, 2 above 2000\n"
          "                               services)\n"
          "  --no-stagger                 start every service at once (default: spread over one\n"
          "                               interval, the steady state)\n"
          "  --scrape HZ                  monitor: render /metrics (snapshot + text) HZ times a\n"
          "                               second in a thread on the other CPUs\n"
          "  --scrape-same-cpu            ... on the monitor's CPU instead\n"
          "  --session                    monitor, redis/postgres: held sessions\n"
          "                               (healthcheck.session: true); loop, redis: the held\n"
          "                               floor (a minimal epoll loop holding the same\n"
          "                               connections, PING each due check, same schedule)\n"
          "  --defer                      loop --session: read replies once a grid step, the\n"
          "                               response time from the kernel's timestamp\n"
          "  --defer-ready                ... the replies there found by a second epoll set\n"
          "                               (one epoll_wait a step, no read that finds nothing)\n"
          "  --uring                      loop --session: io_uring instead of epoll, one\n"
          "                               io_uring_enter a step (its PINGs, the last step's\n"
          "                               recvmsgs, the sleep); response time from the kernel's\n"
          "                               timestamp (needs liburing at build time)\n"
          "  --uring-now                  ... each recvmsg submitted with its PING\n"
          "  --grid MS                    monitor, loop --session: the timers' grid\n"
          "                               (monitor.timer_grid; default 0, every deadline to the ms)\n"
          "  --stall MS                   monitor, redis/tcp: stop the first server (SIGSTOP) for MS ms\n"
          "                               when the first window starts (a server not scheduled)\n"
          "  --turns                      monitor: per window, the loop's turns by length (busy\n"
          "                               wall time and the thread's CPU), the longest three, and\n"
          "                               the checks' lateness by range\n"
          "  --header                     print the table header first\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int parse_opts(int argc, char **argv, opts_t *o) {
  *o = (opts_t){.mode = MODE_MONITOR, .probe = PROBE_REDIS, .services = 1000,
                .interval_ms = 1000, .timeout_ms = 1000, .seconds = 10, .windows = 3,
                .warmup_s = -1, .cpu = -1, .stagger = true};
  static const struct option lo[] = {
      {"mode", 1, NULL, 'm'},    {"probe", 1, NULL, 'p'},   {"tool", 1, NULL, 'T'},
      {"services", 1, NULL, 'n'}, {"interval", 1, NULL, 'i'}, {"timeout", 1, NULL, 't'},
      {"seconds", 1, NULL, 's'}, {"windows", 1, NULL, 'w'}, {"warmup", 1, NULL, 'W'},
      {"rate", 1, NULL, 'r'},    {"cpu", 1, NULL, 'c'},     {"servers", 1, NULL, 'S'},
      {"no-stagger", 0, NULL, 'G'}, {"header", 0, NULL, 'H'}, {"help", 0, NULL, 'h'},
      {"scrape", 1, NULL, 'X'},  {"scrape-same-cpu", 0, NULL, 'Y'},
      {"session", 0, NULL, 'Z'}, {"grid", 1, NULL, 'g'},      {"stall", 1, NULL, 'L'},
      {"turns", 0, NULL, 'U'},   {"defer", 0, NULL, 'D'},   {"defer-ready", 0, NULL, 'R'},
      {"uring", 0, NULL, 'Q'},   {"uring-now", 0, NULL, 'N'},
      {NULL, 0, NULL, 0}};
  int c;
  long v;
  bool pg_mode = false;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'm':
      if (strcmp(optarg, "monitor") == 0) o->mode = MODE_MONITOR;
      else if (strcmp(optarg, "loop") == 0) o->mode = MODE_LOOP;
      else if (strcmp(optarg, "fork") == 0) o->mode = MODE_FORK;
      else if (strcmp(optarg, "idle") == 0) o->mode = MODE_IDLE;
      else if (strcmp(optarg, "postgres") == 0) pg_mode = true;
      else return -1;
      break;
    case 'p':
      if (strcmp(optarg, "redis") == 0) o->probe = PROBE_REDIS;
      else if (strcmp(optarg, "tcp") == 0) o->probe = PROBE_TCP;
      else if (strcmp(optarg, "postgres") == 0) o->probe = PROBE_POSTGRES;
      else if (strcmp(optarg, "pgfloor") == 0) o->probe = PROBE_PGFLOOR;
      else return -1;
      break;
    case 'T':
      if (strcmp(optarg, "redis-cli") && strcmp(optarg, "pg_isready") && strcmp(optarg, "docker"))
        return -1;
      o->tool = optarg;
      break;
    case 'n':
      if (parse_long(optarg, 1, 1000000, &v)) return -1;
      o->services = v;
      break;
    case 'i':
      if (parse_long(optarg, 1, 3600000, &v)) return -1;
      o->interval_ms = v;
      break;
    case 't':
      if (parse_long(optarg, 1, 3600000, &v)) return -1;
      o->timeout_ms = v;
      break;
    case 's':
      o->seconds = strtod(optarg, NULL);
      if (!(o->seconds > 0 && o->seconds <= 600)) return -1;
      break;
    case 'w':
      if (parse_long(optarg, 1, MAX_WINDOWS, &v)) return -1;
      o->windows = (int)v;
      break;
    case 'W':
      o->warmup_s = strtod(optarg, NULL);
      if (!(o->warmup_s >= 0 && o->warmup_s <= 600)) return -1;
      break;
    case 'r':
      o->rate = strtod(optarg, NULL);
      if (!(o->rate > 0 && o->rate <= 1e6)) return -1;
      break;
    case 'c':
      if (parse_long(optarg, 0, 63, &v)) return -1;
      o->cpu = (int)v;
      break;
    case 'U':
      o->turns = true;
      break;
    case 'S':
      if (parse_long(optarg, 1, MAX_SERVERS, &v)) return -1;
      o->servers = (int)v;
      break;
    case 'G':
      o->stagger = false;
      break;
    case 'X':
      o->scrape_hz = strtod(optarg, NULL);
      if (!(o->scrape_hz > 0 && o->scrape_hz <= 1000)) return -1;
      break;
    case 'Y':
      o->scrape_same_cpu = true;
      break;
    case 'Z':
      o->session = true;
      break;
    case 'D':
      o->defer = true;
      break;
    case 'R':
      o->defer = o->defer_ready = true;
      break;
    case 'Q':
      o->uring = true;
      break;
    case 'N':
      o->uring = o->uring_now = true;
      break;
    case 'g':
      if (parse_long(optarg, 0, 1000, &v)) return -1;
      o->grid_ms = v;
      break;
    case 'L':
      if (parse_long(optarg, 1, 600000, &v)) return -1;
      o->stall_ms = v;
      break;
    case 'H':
      o->header = true;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      return -1;
    }
  }
  if (optind != argc) return -1;
  if (pg_mode) {
    o->mode = MODE_MONITOR;
    o->probe = PROBE_POSTGRES;
  }
  if (!o->tool) o->tool = o->probe == PROBE_POSTGRES ? "pg_isready" : "redis-cli";
  if (o->mode == MODE_FORK && o->probe == PROBE_TCP) return -1;
  /* loop --session: the held floor (redis only). */
  if (o->session && !(o->mode == MODE_MONITOR && o->probe != PROBE_TCP) &&
      !(o->mode == MODE_LOOP && o->probe == PROBE_REDIS))
    return -1;
  if (o->probe == PROBE_PGFLOOR && o->mode != MODE_MONITOR) return -1;
  if (o->defer && !(o->session && o->mode == MODE_LOOP)) return -1;
  if (o->uring && (o->defer || !(o->session && o->mode == MODE_LOOP))) return -1;
  if (o->stall_ms && (o->mode != MODE_MONITOR || (o->probe != PROBE_REDIS && o->probe != PROBE_TCP)))
    return -1;
  if (!o->servers) o->servers = o->services > 2000 ? 2 : 1;
  if (!o->rate) o->rate = o->mode == MODE_FORK ? 20 : (double)o->services * 1000.0 / (double)o->interval_ms;
  return 0;
}

static const char *mode_name(const opts_t *o) {
  switch (o->mode) {
  case MODE_MONITOR: return "monitor";
  case MODE_LOOP: return "loop";
  case MODE_FORK: return "fork";
  case MODE_IDLE: return "idle";
  }
  return "?";
}

static const char *probe_name(const opts_t *o) {
  if (o->mode == MODE_FORK) return o->tool;
  if (o->session)
    return o->uring_now                ? "redis-session-uring-now"
           : o->uring                  ? "redis-session-uring"
           : o->defer_ready            ? "redis-session-defer-ready"
           : o->defer                  ? "redis-session-defer"
           : o->probe == PROBE_REDIS   ? "redis-session"
           : o->probe == PROBE_PGFLOOR ? "pgfloor-session"
                                       : "postgres-session";
  return o->probe == PROBE_REDIS     ? "redis"
         : o->probe == PROBE_TCP     ? "tcp"
         : o->probe == PROBE_PGFLOOR ? "pgfloor"
                                     : "postgres";
}

/* "median (min-max)" of v[0..n) with the given precision. */
static void fmt_range(char *out, size_t len, double *v, int n, int prec) {
  double med, mn, mx;
  bu_summary(v, n, &med, &mn, &mx);
  if (n == 1 || mn == mx) snprintf(out, len, "%.*f", prec, med);
  else snprintf(out, len, "%.*f (%.*f-%.*f)", prec, med, prec, mn, prec, mx);
}

/* A TCP counter's change over the measured windows. */
static int64_t tcp_delta(const meas_t *m, const char *name) {
  int i = bu_tcpstat_index(name);
  return i < 0 ? 0 : m->tcp1.v[i] - m->tcp0.v[i];
}

int main(int argc, char **argv) {
  opts_t o;
  if (parse_opts(argc, argv, &o) != 0) {
    usage(stderr);
    return 2;
  }
  if (o.header) {
    printf("| mode | probe | services | interval | checks/s | own CPU us/check | servers us/check"
           " | machine us/check | lateness p50 / p99 / max ms | RSS / HWM MiB | failed |\n"
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
  }
  /* Bounded whatever happens: SIGALRM's default action ends us, and the
     servers follow through their parent-death signal. */
  double warm = o.warmup_s >= 0 ? o.warmup_s : 2.0 * (double)o.interval_ms / 1e3 + 1.0;
  alarm((unsigned)(warm + o.seconds) + 180);
  signal(SIGPIPE, SIG_IGN);

  /* Root raises the hard limit too (CAP_SYS_RESOURCE), and the servers
     started below inherit it (redis sizes maxclients from it). */
  long nofile = bu_raise_nofile(o.services + 4096 > 65536 ? o.services + 4096 : 65536);
  if (nofile >= 0 && nofile < o.services + 64)
    fprintf(stderr,
            "bench: warning: open files are limited to %ld (the hard RLIMIT_NOFILE, which only "
            "a process with CAP_SYS_RESOURCE may raise): %ld services need a socket each, and "
            "checks beyond the limit fail with \"too many open files\"\n",
            nofile, o.services);
  uint64_t all = bu_allowed_cpus(), mine = all, others = 0;
  if (o.cpu >= 0) {
    mine = UINT64_C(1) << o.cpu;
    if (!(all & mine)) {
      fprintf(stderr, "bench: fatal: CPU %d is not available to us\n", o.cpu);
      return 1;
    }
    others = all & ~mine;
    if (!others) others = all;
  }
  fprintf(stderr, "bench: mode=%s probe=%s services=%ld interval=%lldms rate=%.0f/s cpu=%d "
                  "nofile=%ld\n",
          mode_name(&o), probe_name(&o), o.services, (long long)o.interval_ms,
          o.mode == MODE_MONITOR ? (double)o.services * 1000.0 / (double)o.interval_ms : o.rate,
          o.cpu, nofile);

  servers_t srv = {0};
  if (o.mode != MODE_IDLE &&
      !(o.mode == MODE_FORK && strcmp(o.tool, "docker") == 0)) {
    if (servers_start(&srv, o.probe,
                      o.probe == PROBE_POSTGRES || o.probe == PROBE_PGFLOOR ? 1 : o.servers,
                      others) != 0)
      return 1;
  }
  if (o.cpu >= 0 && bu_pin(mine) != 0) {
    fprintf(stderr, "bench: fatal: unable to pin to CPU %d\n", o.cpu);
    servers_stop(&srv);
    return 1;
  }
  tsvc_log_setup(stderr, TSVC_LOG_WARN, false);

  meas_t m = {.o = &o, .srv = &srv};
  if (bu_hist_init(&m.hist) != 0) {
    servers_stop(&srv);
    return 1;
  }
  int rc;
  switch (o.mode) {
  case MODE_MONITOR: rc = run_monitor(&o, &m, &srv); break;
  case MODE_LOOP:
    rc = o.uring     ? run_floor_uring(&o, &m, &srv)
         : o.session ? run_floor(&o, &m, &srv)
                     : paced(&o, &m, &srv, o.rate, loop_one);
    break;
  case MODE_FORK: rc = paced(&o, &m, &srv, o.rate, fork_one); break;
  default: rc = paced(&o, &m, &srv, 100, idle_one); break;
  }
  long rss, hwm;
  bu_rss_kib(&rss, &hwm);
  long tw = bu_timewait();
  servers_stop(&srv);
  bu_hist_free(&m.hist);
  if (rc) return 1;
  if (m.window < 1) {
    fprintf(stderr, "bench: fatal: no window was measured\n");
    return 1;
  }

  int n = m.window;
  char rate[64], own[64], server[64], mach[64], p50[32], p99[32], pmax[32];
  fmt_range(rate, sizeof rate, m.rate, n, 0);
  fmt_range(own, sizeof own, m.own, n, 1);
  fmt_range(server, sizeof server, m.server, n, 1);
  fmt_range(mach, sizeof mach, m.machine, n, 1);
  double med50, mx99, mxmax, lo, hi;
  bu_summary(m.p50, n, &med50, &lo, &hi);
  bu_summary(m.p99, n, &lo, &hi, &mx99); /* worst window's p99 */
  bu_summary(m.pmax, n, &lo, &hi, &mxmax);
  snprintf(p50, sizeof p50, "%.0f", med50);
  snprintf(p99, sizeof p99, "%.0f", mx99);
  snprintf(pmax, sizeof pmax, "%.0f", mxmax);
  /* Failures over every window (m.fails counts from the first one). */
  uint64_t all_fails = m.last.fails;
  char interval[32];
  if (o.mode == MODE_MONITOR || o.session)
    snprintf(interval, sizeof interval, "%lld ms", (long long)o.interval_ms);
  else snprintf(interval, sizeof interval, "(%.0f/s)", o.rate);
  char services[64];
  if (o.mode == MODE_MONITOR && o.scrape_hz > 0)
    snprintf(services, sizeof services, "%ld, /metrics %.0f/s%s", o.services, o.scrape_hz,
             o.scrape_same_cpu ? " same CPU" : "");
  else if (o.mode == MODE_MONITOR && !o.stagger)
    snprintf(services, sizeof services, "%ld (all at once)", o.services);
  else if (o.mode == MODE_MONITOR || o.mode == MODE_LOOP)
    snprintf(services, sizeof services, "%ld", o.services);
  else snprintf(services, sizeof services, "-");
  if (o.mode == MODE_IDLE) {
    printf("| idle | - | - | - | - | - | - | %s us/s busy | - | - | - |\n", mach);
  } else {
    printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %.1f / %.1f | %llu |\n",
           mode_name(&o), probe_name(&o), services, interval, rate, own, server, mach, p50, p99,
           pmax, (double)rss / 1024.0, (double)hwm / 1024.0, (unsigned long long)all_fails);
  }
  double own_med, srv_med, mach_med, rate_med, runq_max, be_med;
  bu_summary(m.runq, n, &lo, &hi, &runq_max); /* the worst window's */
  bu_summary(m.own, n, &own_med, &lo, &hi);
  bu_summary(m.backend, n, &be_med, &lo, &hi);
  double wakes_med, sl_med, pre_med, besl_med, msgs_med, osl_med, bsl_med, span_med, slow_med;
  bu_summary(m.span, n, &span_med, &lo, &hi);
  bu_summary(m.slow, n, &slow_med, &lo, &hi);
  bu_summary(m.wakes, n, &wakes_med, &lo, &hi);
  bu_summary(m.slices, n, &sl_med, &lo, &hi);
  bu_summary(m.preempted, n, &pre_med, &lo, &hi);
  bu_summary(m.be_slices, n, &besl_med, &lo, &hi);
  bu_summary(m.msgs, n, &msgs_med, &lo, &hi);
  bu_summary(m.own_slice, n, &osl_med, &lo, &hi);
  bu_summary(m.be_slice, n, &bsl_med, &lo, &hi);
  bu_summary(m.server, n, &srv_med, &lo, &hi);
  bu_summary(m.machine, n, &mach_med, &lo, &hi);
  bu_summary(m.rate, n, &rate_med, &lo, &hi);
  double fw_med, fr_med, fe_med, fc_med, fp_med, frt_med, sys_med;
  bu_summary(m.own_sys, n, &sys_med, &lo, &hi);
  bu_summary(m.fpolls, n, &fp_med, &lo, &hi);
  bu_summary(m.fctls, n, &fc_med, &lo, &hi);
  bu_summary(m.fwaits, n, &fw_med, &lo, &hi);
  bu_summary(m.freads, n, &fr_med, &lo, &hi);
  bu_summary(m.fempty, n, &fe_med, &lo, &hi);
  bu_summary(m.frt, n, &frt_med, &lo, &hi);
  printf("RESULT mode=%s probe=%s services=%ld interval_ms=%lld rate=%.0f own_us=%.1f "
         "server_us=%.1f machine_us=%.1f p50_ms=%s p99_ms=%s max_ms=%s rss_kib=%ld hwm_kib=%ld "
         "failed=%llu timewait=%ld config_ms=%.1f add_ms=%.1f stagger=%d scrape_hz=%.0f "
         "scrape_same_cpu=%d scrapes=%d scrape_p50_ms=%.2f scrape_max_ms=%.2f "
         "scrape_bytes=%zu runq_pct=%.0f backend_us=%.1f grid_ms=%ld wakes_per_check=%.2f "
         "slices_per_check=%.2f preempted_per_check=%.2f us_per_slice=%.1f "
         "server_slices_per_check=%.2f server_us_per_slice=%.1f floor_msgs_per_check=%.2f "
         "floor_span_us=%.1f floor_slow_per_check=%.3f session_connects=%llu session_full=%llu "
         "stall_ms=%ld tw_start=%ld listen_overflows=%lld syn_retrans=%lld tw_created=%lld "
         "floor_epoll_per_check=%.3f floor_reads_per_check=%.3f floor_empty_per_check=%.3f "
         "floor_ctl_per_check=%.3f floor_polls_per_check=%.3f floor_rt_us=%.1f own_sys_us=%.1f step_ms=%lld\n",
         mode_name(&o), probe_name(&o), o.services, (long long)o.interval_ms, rate_med, own_med,
         srv_med, mach_med, p50, p99, pmax, rss, hwm, (unsigned long long)all_fails, tw,
         (double)m.setup_config_us / 1e3, (double)m.setup_add_us / 1e3, o.stagger, o.scrape_hz,
         o.scrape_same_cpu, m.scrapes, m.scrape_p50_ms, m.scrape_max_ms, m.scrape_bytes,
         runq_max, be_med, o.grid_ms, wakes_med, sl_med, pre_med, osl_med, besl_med, bsl_med,
         msgs_med, span_med, slow_med, (unsigned long long)(m.last.connects - m.first.connects),
         (unsigned long long)(m.last.full - m.first.full), o.stall_ms, m.tw0,
         (long long)tcp_delta(&m, "TcpExtListenOverflows"),
         (long long)tcp_delta(&m, "TcpExtTCPSynRetrans"), (long long)tcp_delta(&m, "TcpExtTW"),
         fw_med, fr_med, fe_med, fc_med, fp_med, frt_med, sys_med,
         (long long)tsvc_timer_step(o.grid_ms, o.interval_ms));
  if (all_fails && m.first_error[0])
    fprintf(stderr, "bench: %llu checks failed; first error: %s\n",
            (unsigned long long)all_fails, m.first_error);
  reasons_print(&m.fail_why, "failed checks (warm-up included) by reason");
  if (m.window >= o.windows) {
    /* What the kernel saw over the measured windows (nstat's names): a SYN
       dropped by a full accept queue (ListenOverflows) is sent again only
       after 1 s (TCPSynRetrans), past a 900 ms timeout. Machine-wide. */
    fprintf(stderr, "bench: TCP over the measured windows (machine-wide), TIME_WAITs at the start %ld:",
            m.tw0);
    for (int i = 0; i < BU_TCPSTAT_N; i++)
      if (m.tcp1.v[i] != m.tcp0.v[i])
        fprintf(stderr, " %s %lld", bu_tcpstat_names[i], (long long)(m.tcp1.v[i] - m.tcp0.v[i]));
    fprintf(stderr, "\n");
  }
  if (o.session && o.mode == MODE_MONITOR) {
    fprintf(stderr,
            "bench: sessions at the end: %lld of %lld held; %llu connections opened, %llu "
            "checks on held connections, %llu by the full probe\n",
            (long long)m.sess_held, (long long)m.sess_n, (unsigned long long)m.sess_connects,
            (unsigned long long)m.sess_held_checks, (unsigned long long)m.sess_full_checks);
    reasons_print(&m.sess_why, "not held at the end, last_error");
    printf("SESSIONS held=%lld of=%lld connects=%llu held_checks=%llu full_checks=%llu\n",
           (long long)m.sess_held, (long long)m.sess_n, (unsigned long long)m.sess_connects,
           (unsigned long long)m.sess_held_checks, (unsigned long long)m.sess_full_checks);
  }
  fflush(stdout);
  return 0;
}
