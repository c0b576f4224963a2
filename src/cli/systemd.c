/* systemd.c: see systemd.h. */
#include "cli/systemd.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "common/util.h"
#include "log/log.h"

/* Status lines are rebuilt at most this often: each one copies every
   service's status, and a flapping service must not turn that into a busy
   loop. */
#define STATUS_MIN_INTERVAL_MS 1000
/* While the heartbeat is stale, look again this often, to ping as soon as
   the loop turns again. */
#define STALE_RECHECK_MS 1000
#define STATUS_MAX 256

struct cli_systemd_s {
  int fd;
  struct sockaddr_un addr;
  socklen_t addrlen;
  int64_t watchdog_ms; /* the ping interval (half of WATCHDOG_USEC), 0: none */

  tsvc_manager_t *m;
  int sub;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t mu;
  pthread_mutex_t send_mu; /* one status line at a time (update_status) */
  pthread_cond_t cond; /* on CLOCK_MONOTONIC */
  bool dirty;          /* a state changed since the last status line */
  bool quit;
  bool stopping_sent;
  bool warned_stale;
  char status[STATUS_MAX]; /* the last one sent */
};

/* Send one datagram. Failures are logged once at debug level: systemd
   being away must never stop the monitor. */
static void send_msg(cli_systemd_t *sd, const char *msg) {
  ssize_t n = sendto(sd->fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sd->addr,
                     sd->addrlen);
  if (n < 0) TSVC_LOG(TSVC_LOG_DEBUG, NULL, "sd_notify: %s", strerror(errno));
}

cli_systemd_t *cli_systemd_open(void) {
  const char *path = getenv("NOTIFY_SOCKET");
  const char *usec = getenv("WATCHDOG_USEC");
  const char *wpid = getenv("WATCHDOG_PID");
  cli_systemd_t *sd = NULL;
  size_t len = path ? strlen(path) : 0;
  /* An absolute path, or "@name" in the abstract namespace. */
  if (!len || (path[0] != '/' && path[0] != '@') || len >= sizeof sd->addr.sun_path)
    goto out;
  if (!(sd = calloc(1, sizeof *sd))) goto out;
  sd->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sd->fd < 0) {
    free(sd);
    sd = NULL;
    goto out;
  }
  sd->addr.sun_family = AF_UNIX;
  memcpy(sd->addr.sun_path, path, len);
  if (path[0] == '@') sd->addr.sun_path[0] = '\0';
  sd->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  /* The watchdog is ours unless WATCHDOG_PID names another process. */
  char *end;
  long long us = usec ? strtoll(usec, &end, 10) : 0;
  long long pid = wpid ? strtoll(wpid, NULL, 10) : 0;
  if (usec && !*end && us > 0 && (!wpid || pid == (long long)getpid())) {
    sd->watchdog_ms = us / 2000;
    if (sd->watchdog_ms < 1) sd->watchdog_ms = 1;
  }
  pthread_mutex_init(&sd->mu, NULL);
  pthread_mutex_init(&sd->send_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&sd->cond, &ca);
  pthread_condattr_destroy(&ca);
out:
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  return sd;
}

/* "2/2 healthy", or "1/2 healthy; redis unhealthy": enabled services only
   (a disabled one is stopped on purpose), the others named with their
   state until the line is full. */
static void summary(tsvc_manager_t *m, char *buf, size_t len) {
  tsvc_snapshot_t *snap;
  if (tsvc_manager_snapshot(m, &snap) != 0) {
    snprintf(buf, len, "status unavailable");
    return;
  }
  size_t total = 0, healthy = 0, nsvc = tsvc_snapshot_count(snap);
  for (size_t i = 0; i < nsvc; i++) {
    const tsvc_status_t *s = tsvc_snapshot_status(snap, i);
    if (!s->enabled) continue;
    total++;
    if (s->healthy) healthy++;
  }
  int n = snprintf(buf, len, "%zu/%zu healthy", healthy, total);
  const char *sep = "; ";
  for (size_t i = 0; i < nsvc && n > 0 && (size_t)n < len; i++) {
    const tsvc_status_t *s = tsvc_snapshot_status(snap, i);
    if (!s->enabled || s->healthy) continue;
    char item[160];
    int k = snprintf(item, sizeof item, "%s%s %s", sep, s->name, tsvc_state_name(s->state));
    if (k < 0 || (size_t)(n + k) + 5 >= len) {
      snprintf(buf + n, len - (size_t)n, ", ...");
      break;
    }
    memcpy(buf + n, item, (size_t)k + 1);
    n += k;
    sep = ", ";
  }
  tsvc_snapshot_release(snap);
}

/* Send STATUS= when the summary changed (and READY=1 first when ready).
   The main thread (READY) and the notify thread (changes) both call it:
   one at a time, from reading the snapshot to sending, so that the line
   sent last is the one read last (else a READY read before a change and
   sent after the change's line would leave systemd a stale status). */
static void update_status(cli_systemd_t *sd, bool ready) {
  pthread_mutex_lock(&sd->send_mu);
  char line[STATUS_MAX];
  summary(sd->m, line, sizeof line);
  pthread_mutex_lock(&sd->mu);
  bool changed = strcmp(line, sd->status) != 0;
  if (changed) memcpy(sd->status, line, sizeof line);
  pthread_mutex_unlock(&sd->mu);
  if (changed || ready) {
    char msg[STATUS_MAX + 32];
    snprintf(msg, sizeof msg, "%sSTATUS=%s", ready ? "READY=1\n" : "", line);
    send_msg(sd, msg);
  }
  pthread_mutex_unlock(&sd->send_mu);
}

/* On the manager's loop: note the change and wake the thread. */
static void on_change(const tsvc_change_t *c, void *data) {
  (void)c;
  cli_systemd_t *sd = data;
  pthread_mutex_lock(&sd->mu);
  sd->dirty = true;
  pthread_cond_signal(&sd->cond);
  pthread_mutex_unlock(&sd->mu);
}

/* Ping when the loop keeps its schedule, as /livez decides. Returns when
   to look again. */
static int64_t watchdog(cli_systemd_t *sd, int64_t now) {
  int64_t age = tsvc_manager_loop_lag_ms(sd->m);
  if (age <= TSVC_API_LIVEZ_LAG_MS) {
    send_msg(sd, "WATCHDOG=1");
    if (sd->warned_stale)
      TSVC_LOG(TSVC_LOG_INFO, NULL, "the monitor's loop turns again; pinging the watchdog");
    sd->warned_stale = false;
    return now + sd->watchdog_ms;
  }
  if (!sd->warned_stale)
    TSVC_LOG(TSVC_LOG_ERROR, NULL,
             "the monitor's loop has not turned for %" PRId64 " ms past its schedule: not "
             "pinging systemd's "
             "watchdog (systemd restarts a monitor that stays stuck)",
             age);
  sd->warned_stale = true;
  return now + (sd->watchdog_ms < STALE_RECHECK_MS ? sd->watchdog_ms : STALE_RECHECK_MS);
}

static void *thread_main(void *arg) {
  cli_systemd_t *sd = arg;
  /* A name to find it by (ps -L, and tests/test_systemd.c, which freezes
     every other thread to wedge the monitor). */
  pthread_setname_np(pthread_self(), "tsvc-notify");
  int64_t next_ping = sd->watchdog_ms ? tsvc_mono_ms() : TSVC_NEVER;
  int64_t next_status = 0; /* the earliest time for the next status line */
  pthread_mutex_lock(&sd->mu);
  while (!sd->quit) {
    int64_t now = tsvc_mono_ms();
    if (now >= next_ping) {
      pthread_mutex_unlock(&sd->mu);
      next_ping = watchdog(sd, now);
      pthread_mutex_lock(&sd->mu);
      continue;
    }
    if (sd->dirty && now >= next_status) {
      sd->dirty = false;
      pthread_mutex_unlock(&sd->mu);
      update_status(sd, false);
      next_status = tsvc_mono_ms() + STATUS_MIN_INTERVAL_MS;
      pthread_mutex_lock(&sd->mu);
      continue;
    }
    int64_t deadline = next_ping;
    if (sd->dirty && next_status < deadline) deadline = next_status;
    if (deadline == TSVC_NEVER) {
      pthread_cond_wait(&sd->cond, &sd->mu);
    } else {
      struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
      pthread_cond_timedwait(&sd->cond, &sd->mu, &ts);
    }
  }
  pthread_mutex_unlock(&sd->mu);
  return NULL;
}

int cli_systemd_watch(cli_systemd_t *sd, tsvc_manager_t *m) {
  if (!sd) return 0;
  sd->m = m;
  sd->sub = tsvc_manager_subscribe(m, on_change, sd);
  if (sd->sub <= 0) {
    TSVC_LOG(TSVC_LOG_ERROR, NULL, "sd_notify: cannot subscribe to changes: %s",
             tsvc_strerror(sd->sub));
    return sd->sub < 0 ? sd->sub : TSVC_ENOMEM;
  }
  int rc = pthread_create(&sd->thread, NULL, thread_main, sd);
  if (rc) {
    TSVC_LOG(TSVC_LOG_ERROR, NULL, "sd_notify: cannot start a thread: %s", strerror(rc));
    return TSVC_ENOMEM;
  }
  sd->thread_started = true;
  return 0;
}

void cli_systemd_ready(cli_systemd_t *sd) {
  if (!sd || !sd->m) return;
  update_status(sd, true);
}

void cli_systemd_stopping(cli_systemd_t *sd) {
  if (!sd) return;
  pthread_mutex_lock(&sd->mu);
  bool send = !sd->stopping_sent;
  sd->stopping_sent = true;
  pthread_mutex_unlock(&sd->mu);
  if (send) send_msg(sd, "STOPPING=1\nSTATUS=stopping");
}

void cli_systemd_close(cli_systemd_t *sd) {
  if (!sd) return;
  cli_systemd_stopping(sd);
  if (sd->m && sd->sub > 0) tsvc_manager_unsubscribe(sd->m, sd->sub);
  if (sd->thread_started) {
    pthread_mutex_lock(&sd->mu);
    sd->quit = true;
    pthread_cond_signal(&sd->cond);
    pthread_mutex_unlock(&sd->mu);
    pthread_join(sd->thread, NULL);
  }
  pthread_cond_destroy(&sd->cond);
  pthread_mutex_destroy(&sd->mu);
  pthread_mutex_destroy(&sd->send_mu);
  close(sd->fd);
  free(sd);
}

bool cli_journal_stream(int fd) {
  const char *v = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  char extra;
  if (!v || sscanf(v, "%llu:%llu%c", &dev, &ino, &extra) != 2) return false;
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}
