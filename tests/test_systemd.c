/*
 * test_systemd: `tanuki-svc up` as a Type=notify service, with this test in
 * the service manager's place: a unix datagram socket of its own as
 * $NOTIFY_SOCKET (with the sender's credentials and the kernel's receive
 * time on every datagram, as systemd reads them), and $JOURNAL_STREAM
 * naming the file the monitor's stderr goes to. The monitor runs a redis
 * (on a free port) and a command of ours under the process runtime.
 *
 * Checked: READY=1, STATUS= ("2/2 healthy", and again when a service is
 * stopped and started), WATCHDOG=1 every WATCHDOG_USEC/2 while the loop
 * turns and none once every thread but the notifier is frozen (ptrace),
 * STOPPING=1; every datagram comes from the monitor itself, and the services
 * it starts do not inherit NOTIFY_SOCKET; journald lines carry "<N>" and no
 * timestamp.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "servers.h"
#include "testutil.h"

/* Generous bounds: a loaded 2-core machine runs several test suites at once,
   and the process runtime starts a real redis-server. They bound waits for
   something that must happen; none decides a pass by being fast. */
#define START_MS 60000
#define EXIT_MS 30000

typedef struct {
  char *dir;
  char sock[256];
  char log[512];
  int fd;    /* the notify socket */
  pid_t up;  /* the monitor */
  pid_t frozen[64]; /* its threads stopped by ptrace */
  int nfrozen;
} fx_t;

typedef struct {
  char text[512];
  pid_t pid;      /* the sender, from SCM_CREDENTIALS */
  int64_t ts_ms;  /* when the kernel queued it (SO_TIMESTAMP, wall clock) */
} msg_t;

/* The fixture of the test running: static, as the teardown reads it after
   a failed assertion left the test function. */
static fx_t the_fx;
static fx_t *cur;

static const char *binary(void) {
  const char *bin = getenv("TSVC_BINARY");
  if (!bin) fail_msg("TSVC_BINARY is not set");
  return bin;
}

/* The temp dir, a config with one redis, and the notify socket. */
static void fx_open(fx_t *f) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  f->up = -1;
  cur = f;
  char why[256];
  if (!tu_redis_available(why, sizeof why)) fail_msg("%s", why);
  f->dir = tu_mkdtemp("tsvc-systemd");
  assert_non_null(f->dir);
  int port = tu_free_port();
  assert_true(port > 0);
  char path[512], yaml[2048];
  snprintf(path, sizeof path, "%s/tanuki.yaml", f->dir);
  /* envdump: a service of our own that writes down the environment it
     was given (redis overwrites its /proc/PID/environ with its title). */
  snprintf(yaml, sizeof yaml,
           "runtime: process\n"
           "services:\n"
           "  redis:\n"
           "    port: %d\n"
           "    healthcheck: {interval: 1s, timeout: 900ms, retries: 3, start_period: 30s,"
           " start_interval: 200ms}\n"
           "    restart: {backoff: 200ms}\n"
           "  envdump:\n"
           "    process: {command: [sh, -c, 'env > \"$0\"/env.txt; exec sleep 600', '%s']}\n"
           "    healthcheck: {probe: running, interval: 1s, timeout: 900ms, start_period: 30s,"
           " start_interval: 200ms}\n",
           port, f->dir);
  assert_int_equal(tu_write_file(path, yaml), 0);
  snprintf(f->sock, sizeof f->sock, "%s/notify", f->dir);
  snprintf(f->log, sizeof f->log, "%s/up.log", f->dir);
  f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(f->fd >= 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  assert_true(strlen(f->sock) < sizeof a.sun_path);
  memcpy(a.sun_path, f->sock, strlen(f->sock) + 1);
  assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof a), 0);
  int one = 1;
  assert_int_equal(setsockopt(f->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one), 0);
  assert_int_equal(setsockopt(f->fd, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one), 0);
}

/* Start `tanuki-svc up` in the temp dir with env (NULL-terminated "K=V"),
   stdout and stderr to up.log. journal: JOURNAL_STREAM names that file. */
static void fx_start(fx_t *f, const char *const env[], bool journal) {
  int logfd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(logfd >= 0);
  struct stat st;
  assert_int_equal(fstat(logfd, &st), 0);
  char stream[64];
  snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (chdir(f->dir) != 0) _exit(126);
    dup2(logfd, 1);
    dup2(logfd, 2);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    unsetenv("JOURNAL_STREAM");
    setenv("NOTIFY_SOCKET", f->sock, 1);
    if (journal) setenv("JOURNAL_STREAM", stream, 1);
    for (size_t i = 0; env && env[i]; i++) putenv((char *)env[i]);
    execl(binary(), "tanuki-svc", "up", "-c", "tanuki.yaml", (char *)NULL);
    _exit(127);
  }
  close(logfd);
  f->up = pid;
}

/* Next datagram within ms, or false. */
static bool recv_msg(fx_t *f, int ms, msg_t *m) {
  struct pollfd p = {.fd = f->fd, .events = POLLIN};
  if (poll(&p, 1, ms) <= 0) return false;
  char cbuf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(struct timeval))];
  struct iovec iov = {.iov_base = m->text, .iov_len = sizeof m->text - 1};
  struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                     .msg_controllen = sizeof cbuf};
  ssize_t n = recvmsg(f->fd, &h, 0);
  if (n < 0) return false;
  m->text[n] = '\0';
  m->pid = -1;
  m->ts_ms = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_CREDENTIALS) {
      struct ucred u;
      memcpy(&u, CMSG_DATA(c), sizeof u);
      m->pid = u.pid;
    } else if (c->cmsg_type == SCM_TIMESTAMP) {
      struct timeval tv;
      memcpy(&tv, CMSG_DATA(c), sizeof tv);
      m->ts_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    }
  }
  return true;
}

static bool has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; p; p = strchr(p, '\n')) {
    if (*p == '\n') p++;
    if (strncmp(p, line, n) == 0) return true;
  }
  return false;
}

/* Read datagrams until one has a line starting with want (or ms pass);
   every datagram must come from the monitor. Counts WATCHDOG=1 in
   *pings (may be NULL). */
static bool wait_msg(fx_t *f, const char *want, int ms, int *pings, msg_t *out) {
  int64_t end = tsvc_mono_ms() + ms;
  msg_t m;
  for (int64_t left; (left = end - tsvc_mono_ms()) > 0;) {
    if (!recv_msg(f, (int)left, &m)) continue;
    if (getenv("TSVC_TEST_VERBOSE")) fprintf(stderr, "notify: %s\n", m.text);
    if (m.pid != f->up) fail_msg("a datagram from pid %d, not the monitor (%d): %s", m.pid, f->up, m.text);
    if (pings && has_line(m.text, "WATCHDOG=1")) (*pings)++;
    if (has_line(m.text, want)) {
      if (out) *out = m;
      return true;
    }
  }
  return false;
}

/* The monitor's children (every thread's) named comm, by /proc. */
static int children(pid_t pid, const char *comm, pid_t *out, int max) {
  char path[128];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  int n = 0;
  if (!d) return 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char cpath[512];
    snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", pid, e->d_name);
    char *text = tu_read_file(cpath, 0);
    for (char *p = text, *end; p && *p && n < max; p = end) {
      long c = strtol(p, &end, 10);
      if (end == p) break;
      char ppath[64];
      snprintf(ppath, sizeof ppath, "/proc/%ld/comm", c);
      char *name = tu_read_file(ppath, 0);
      if (name && strncmp(name, comm, strlen(comm)) == 0) out[n++] = (pid_t)c;
      free(name);
    }
    free(text);
  }
  closedir(d);
  return n;
}

/* Wait until the monitor's log has a line starting with want, reading the
   notifications meanwhile (a full socket queue would block the sender). */
static bool wait_log(fx_t *f, const char *want, int ms) {
  int64_t end = tsvc_mono_ms() + ms;
  msg_t m;
  while (tsvc_mono_ms() < end) {
    char *log = tu_read_file(f->log, 0);
    bool found = log && has_line(log, want);
    free(log);
    if (found) return true;
    recv_msg(f, 100, &m);
  }
  return false;
}

/* `tanuki-svc VERB redis` through the monitor's API. Returns its exit
   status. */
static int ctl(fx_t *f, const char *verb) {
  char cfg[512];
  snprintf(cfg, sizeof cfg, "%s/tanuki.yaml", f->dir);
  char *const argv[] = {(char *)binary(), (char *)verb, (char *)"redis", (char *)"-c", cfg, NULL};
  return tu_cmd(argv, false, NULL, NULL, 0);
}

static int stop_up(fx_t *f) {
  if (f->up <= 0) return -1;
  kill(f->up, SIGTERM);
  int st = tu_wait_pid(f->up, EXIT_MS);
  if (st < 0) tu_stop_pid(f->up, SIGKILL);
  f->up = -1;
  return st;
}

/* Let the frozen threads go (a signal sent meanwhile would be lost to a
   traced thread: thaw before stopping the monitor). */
static void thaw(fx_t *f) {
  for (int i = 0; i < f->nfrozen; i++) ptrace(PTRACE_DETACH, f->frozen[i], NULL, NULL);
  f->nfrozen = 0;
}

static int teardown(void **state) {
  (void)state;
  fx_t *f = cur;
  if (!f) return 0;
  thaw(f);
  if (f->up > 0) tu_stop_pid(f->up, SIGTERM);
  if (f->fd >= 0) close(f->fd);
  if (f->dir) {
    tu_rmtree(f->dir);
    free(f->dir);
  }
  cur = NULL;
  return 0;
}

/* READY, STATUS on start and on change, WATCHDOG, STOPPING; the journal's
   format; the child services do not inherit the notify socket. */
static void notify_lifecycle(void **state) {
  (void)state;
  fx_t *f = &the_fx;
  fx_open(f);
  /* 1 s: a ping every 500 ms. */
  const char *env[] = {"WATCHDOG_USEC=1000000", NULL};
  fx_start(f, env, true);
  int pings = 0;
  msg_t m;
  assert_true(wait_msg(f, "READY=1", START_MS, &pings, &m));
  assert_non_null(strstr(m.text, "\nSTATUS=")); /* READY comes with a status */
  /* All healthy: said with READY when they were before it went (a slow
     start of `up`, ASan on a loaded machine: no later line then, nothing
     changes), else in a line of its own after it. */
  if (!has_line(m.text, "STATUS=2/2 healthy"))
    assert_true(wait_msg(f, "STATUS=2/2 healthy", START_MS, &pings, NULL));
  int64_t t0 = tsvc_mono_ms();
  while (pings < 3 && tsvc_mono_ms() - t0 < START_MS) wait_msg(f, "WATCHDOG=1", START_MS, &pings, NULL);
  assert_true(pings >= 3);

  /* The services it runs know nothing of NOTIFY_SOCKET: Debian's postgres
     and redis speak sd_notify and would report in our name. */
  char envfile[512];
  snprintf(envfile, sizeof envfile, "%s/env.txt", f->dir);
  char *given = tu_read_file(envfile, 0);
  assert_non_null(given);
  assert_true(has_line(given, "PATH="));
  assert_false(has_line(given, "NOTIFY_SOCKET="));
  assert_false(has_line(given, "WATCHDOG_USEC="));
  free(given);
  pid_t kids[16];
  int nkids = children(f->up, "redis-server", kids, 16);
  assert_int_equal(nkids, 1);

  /* redis dies and comes back: a warning, then healthy again. (Too quick
     for a status line of its own: the status is at most one line a second,
     and says how things are when it is written.) */
  for (int i = 0; i < nkids; i++) kill(kids[i], SIGKILL);
  assert_true(wait_log(f, "<4>level=warn service=redis state=unhealthy", START_MS));
  assert_true(wait_log(f, "<6>level=info service=redis state=healthy prev=starting failures=0/3 "
                           "restarts=1/", START_MS));

  /* A change that lasts: stopped by a person, then started. */
  assert_int_equal(ctl(f, "stop"), 0);
  assert_true(wait_msg(f, "STATUS=1/2 healthy; redis stopped", START_MS, &pings, NULL));
  assert_int_equal(ctl(f, "start"), 0);
  assert_true(wait_msg(f, "STATUS=2/2 healthy", START_MS, &pings, NULL));

  assert_int_equal(kill(f->up, SIGTERM), 0);
  assert_true(wait_msg(f, "STOPPING=1", EXIT_MS, &pings, NULL));
  assert_int_equal(stop_up(f), 0);

  /* Under journald: "<N>" priority prefixes, no timestamp of ours. */
  char *log = tu_read_file(f->log, 0);
  assert_non_null(log);
  assert_false(has_line(log, "ts=")); /* (" restarts=" holds "ts=") */
  assert_null(strstr(log, " ts="));
  assert_true(has_line(log, "<6>level=info service=redis state=healthy"));
  assert_true(has_line(log, "<4>level=warn service=redis state=unhealthy"));
  for (const char *p = log; *p; p = strchr(p, '\n') + 1) {
    if (p[0] != '<') fail_msg("a log line without a priority: %.200s", p);
    if (!strchr(p, '\n')) break;
  }
  free(log);
  teardown(NULL);
}

/* Freeze every thread of the monitor but the notifier's (ptrace): the loop
   stops turning, so the pings must stop, though the thread that sends
   them runs on. */
static void freeze(fx_t *f) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", f->up);
  DIR *d = opendir(path);
  assert_non_null(d);
  char why[256] = "";
  for (struct dirent *e; (e = readdir(d)) && f->nfrozen < 64 && !why[0];) {
    if (e->d_name[0] == '.') continue;
    pid_t tid = (pid_t)strtol(e->d_name, NULL, 10);
    char cpath[128];
    snprintf(cpath, sizeof cpath, "/proc/%d/task/%d/comm", f->up, tid);
    char *comm = tu_read_file(cpath, 0);
    bool notifier = comm && strncmp(comm, "tsvc-notify", 11) == 0;
    free(comm);
    if (notifier) continue;
    if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0) {
      snprintf(why, sizeof why, "ptrace(PTRACE_SEIZE, %d): %s", tid, strerror(errno));
      break;
    }
    f->frozen[f->nfrozen++] = tid;
    int st;
    if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) != 0)
      snprintf(why, sizeof why, "ptrace(PTRACE_INTERRUPT, %d): %s", tid, strerror(errno));
    else if (waitpid(tid, &st, __WALL) != tid)
      snprintf(why, sizeof why, "waitpid(%d): %s", tid, strerror(errno));
  }
  closedir(d);
  if (why[0]) {
    thaw(f);
    fail_msg("%s", why);
  }
}

static void watchdog_follows_the_loop(void **state) {
  (void)state;
  fx_t *f = &the_fx;
  fx_open(f);
  /* 400 ms: a ping every 200 ms. */
  const char *env[] = {"WATCHDOG_USEC=400000", NULL};
  fx_start(f, env, false);
  assert_true(wait_msg(f, "READY=1", START_MS, NULL, NULL));
  assert_true(wait_msg(f, "WATCHDOG=1", START_MS, NULL, NULL));

  freeze(f);
  int n = f->nfrozen;
  int64_t t0 = tsvc_wall_ms();
  /* Pings may go on while the last heartbeat is fresh: 3 s (the /livez
     rule, TSVC_API_LIVEZ_LAG_MS), plus 2.5 s for a ping decided just
     before and sent late on a loaded machine. Then none for 3.5 s (at one
     ping every 200 ms, 17 are missing by then). */
  int64_t last = 0;
  int64_t end = tsvc_mono_ms() + 9000;
  msg_t m;
  for (int64_t left; (left = end - tsvc_mono_ms()) > 0;)
    if (recv_msg(f, (int)left, &m) && has_line(m.text, "WATCHDOG=1")) last = m.ts_ms;
  thaw(f);
  assert_true(n >= 2); /* at least the main thread and the loop's */
  if (last > t0 + 5500)
    fail_msg("a WATCHDOG=1 %lld ms after the loop froze", (long long)(last - t0));
  assert_true(wait_msg(f, "WATCHDOG=1", START_MS, NULL, NULL));
  char *log = tu_read_file(f->log, 0);
  assert_non_null(log);
  assert_non_null(strstr(log, "loop has not turned for"));
  assert_true(has_line(log, "ts=")); /* not the journal: the usual lines */
  free(log);
  assert_int_equal(stop_up(f), 0);
  teardown(NULL);
}

/* WATCHDOG_PID names another process: the watchdog is not ours. */
static void watchdog_of_another_pid(void **state) {
  (void)state;
  fx_t *f = &the_fx;
  fx_open(f);
  const char *env[] = {"WATCHDOG_USEC=200000", "WATCHDOG_PID=1", NULL};
  fx_start(f, env, false);
  int pings = 0;
  assert_true(wait_msg(f, "READY=1", START_MS, &pings, NULL));
  /* 2 s: ten ping intervals. */
  wait_msg(f, "WATCHDOG=1", 2000, &pings, NULL);
  assert_int_equal(pings, 0);
  assert_int_equal(stop_up(f), 0);
  teardown(NULL);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(notify_lifecycle, teardown),
      cmocka_unit_test_teardown(watchdog_follows_the_loop, teardown),
      cmocka_unit_test_teardown(watchdog_of_another_pid, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
