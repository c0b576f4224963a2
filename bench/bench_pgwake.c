/*
 * bench_pgwake: where a held postgres session's server CPU goes (issue 13,
 * point 4). A blocking client (no tanuki-svc code) holds N connections to a
 * real postgres and sends one message per connection per interval, as a
 * held-session check does, then reads the backends' own run time from
 * /proc/PID/schedstat (the backend pids come from BackendKeyData). The
 * experiments, in alternating rounds so that the machine's other work
 * weighs on each alike:
 *
 *   - an empty simple query ('Q') vs a bare Sync ('S'), 20 connections at 1 s;
 *   - the same Sync against bu_pgfloor_start's server, a process per
 *     connection that only wakes up, answers and waits: the floor;
 *   - the same messages back to back on one connection (warm caches) and
 *     round-robin on 20 (a different process woken each time);
 *   - 200 connections at 1 s;
 *   - a new connection per check (startup packet, ReadyForQuery, Terminate:
 *     what the probe and pg_isready cost, and the held session's full probe
 *     every full_every): the postmaster's CPU with its reaped backends.
 *
 * Usage: bench_pgwake [--rounds R] [--seconds S] [--cpu C]
 * Prints one markdown row per experiment: the median over rounds (min-max).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchutil.h"

#define MAX_CONNS 200
#define MAX_ROUNDS 9

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read messages until ReadyForQuery. Returns 0, or -1 on EOF, an error
   reply or a message above the buffer; *pid from BackendKeyData. */
static int until_ready(int fd, int *pid) {
  uint8_t buf[8192];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    have += (size_t)n;
    size_t off = 0;
    while (have - off >= 5) {
      uint32_t len = get32(buf + off + 1);
      if (len < 4 || len >= sizeof buf) return -1;
      if (have - off < len + 1) break;
      char t = (char)buf[off];
      if (t == 'K' && pid && len >= 12) *pid = (int)get32(buf + off + 5);
      if (t == 'E') return -1;
      off += len + 1;
      if (t == 'Z') return 0;
    }
    memmove(buf, buf + off, have - off);
    have -= off;
  }
}

static int write_all(int fd, const void *p, size_t n) {
  return write(fd, p, n) == (ssize_t)n ? 0 : -1;
}

/* A logged-in connection (trust, user postgres), or -1. */
static int pg_connect(int port, int *pid) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  static const char kv[] = "user\0postgres\0database\0postgres\0application_name\0tanuki-svc\0";
  uint8_t pkt[8 + sizeof kv];
  uint32_t n = sizeof pkt;
  pkt[0] = (uint8_t)(n >> 24), pkt[1] = (uint8_t)(n >> 16), pkt[2] = (uint8_t)(n >> 8);
  pkt[3] = (uint8_t)n;
  pkt[4] = 0, pkt[5] = 3, pkt[6] = 0, pkt[7] = 0; /* protocol 3.0 */
  memcpy(pkt + 8, kv, sizeof kv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
      write_all(fd, pkt, sizeof pkt) != 0 || until_ready(fd, pid) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Client backends of the postmaster still alive (their title names a
   client address). */
static int client_backends(pid_t postmaster) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end;
    long p = strtol(de->d_name, &end, 10);
    if (*end || p <= 0) continue;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", p);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *rp = strrchr(buf, ')');
    int ppid = 0;
    if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1 || ppid != postmaster) continue;
    snprintf(path, sizeof path, "/proc/%ld/cmdline", p);
    if (!(f = fopen(path, "r"))) continue;
    len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    n += strstr(buf, "127.0.0.1(") != NULL;
  }
  closedir(d);
  return n;
}

/* A process's time on a CPU (ns), 0 when it is gone. */
static int64_t run_ns(int pid) {
  bu_sched_t s;
  return bu_sched((pid_t)pid, &s) == 0 ? s.run_ns : 0;
}

typedef struct {
  const char *name;
  bool floor;  /* bu_pgfloor_start's server, not postgres */
  char msg;    /* 'Q' empty query, 'S' Sync, 'C' a new connection per check */
  int conns;
  int interval_ms; /* per connection; 0: back to back */
} exp_t;

static const exp_t exps[] = {
    {"empty query, 20 connections at 1 s", false, 'Q', 20, 1000},
    {"Sync, 20 connections at 1 s", false, 'S', 20, 1000},
    {"floor: Sync to a server that only wakes up, answers, waits; 20 at 1 s", true, 'S', 20,
     1000},
    {"empty query, 1 connection back to back", false, 'Q', 1, 0},
    {"Sync, 1 connection back to back", false, 'S', 1, 0},
    {"empty query, 20 connections round-robin back to back", false, 'Q', 20, 0},
    {"empty query, 200 connections at 1 s", false, 'Q', 200, 1000},
    {"Sync, 200 connections at 1 s", false, 'S', 200, 1000},
    {"new connection per check (startup, ReadyForQuery, Terminate), 20/s", false, 'C', 20,
     1000},
};
#define N_EXPS (sizeof exps / sizeof exps[0])

/* One run: server CPU per check in us (backends' run time; for 'C' the
   postmaster's with its reaped children, 10 ms ticks), or -1. */
static double run_one(const exp_t *e, int port, pid_t server, double secs) {
  static const uint8_t q[6] = {'Q', 0, 0, 0, 5, 0};
  static const uint8_t s[5] = {'S', 0, 0, 0, 4};
  static const uint8_t x[5] = {'X', 0, 0, 0, 4};
  const uint8_t *m = e->msg == 'Q' ? q : s;
  size_t ml = e->msg == 'Q' ? sizeof q : sizeof s;
  int fd[MAX_CONNS], pid[MAX_CONNS];
  int nc = e->msg == 'C' ? 0 : e->conns;
  double res = -1;
  int opened = 0;
  /* The backends of the run before have exited and been reaped (the
     postmaster's reaped CPU is what 'C' measures; 200 more would not fit). */
  if (!e->floor)
    for (int i = 0; i < 300 && client_backends(server) > 0; i++) bu_sleep_us(100000);
  for (; opened < nc; opened++) {
    pid[opened] = 0;
    if ((fd[opened] = pg_connect(port, &pid[opened])) < 0 || pid[opened] <= 0) goto out;
  }
  /* One check each first: the login's own work is not the check's. */
  for (int i = 0; i < nc; i++)
    if (write_all(fd[i], m, ml) != 0 || until_ready(fd[i], NULL) != 0) goto out;
  bu_sleep_us((int64_t)e->interval_ms * 1000);
  int64_t be0 = 0, be1 = 0, srv0 = e->msg == 'C' ? bu_pid_cpu_us(server, true) : 0;
  for (int i = 0; i < nc; i++) be0 += run_ns(pid[i]);
  int64_t start = bu_now_us(), end = start + (int64_t)(secs * 1e6);
  int per = e->msg == 'C' ? e->conns : nc;
  int64_t step = e->interval_ms ? (int64_t)e->interval_ms * 1000 / per : 0;
  int64_t next = start;
  long checks = 0;
  for (int i = 0; bu_now_us() < end; i = nc ? (i + 1) % nc : 0) {
    if (step) {
      next += step;
      int64_t w = next - bu_now_us();
      if (w > 0) bu_sleep_us(w);
    }
    if (e->msg == 'C') {
      int f = pg_connect(port, NULL);
      if (f < 0 || write_all(f, x, sizeof x) != 0) {
        if (f >= 0) close(f);
        goto out;
      }
      char c;
      while (read(f, &c, 1) > 0) {
      }
      close(f);
    } else if (write_all(fd[i], m, ml) != 0 || until_ready(fd[i], NULL) != 0) {
      goto out;
    }
    checks++;
  }
  if (!checks) goto out;
  if (e->msg == 'C') {
    bu_sleep_us(200000); /* the last backends exit and are reaped */
    res = (double)(bu_pid_cpu_us(server, true) - srv0) / (double)checks;
  } else {
    for (int i = 0; i < nc; i++) be1 += run_ns(pid[i]);
    res = (double)(be1 - be0) / 1e3 / (double)checks;
  }
out:
  for (int i = 0; i < opened; i++)
    if (fd[i] >= 0) close(fd[i]);
  return res;
}

int main(int argc, char **argv) {
  int rounds = 3, cpu = 0;
  double secs = 10;
  static const struct option lo[] = {{"rounds", 1, NULL, 'r'},
                                     {"seconds", 1, NULL, 's'},
                                     {"cpu", 1, NULL, 'c'},
                                     {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (c == 'r') rounds = atoi(optarg);
    else if (c == 's') secs = strtod(optarg, NULL);
    else if (c == 'c') cpu = atoi(optarg);
    else {
      fprintf(stderr, "usage: bench_pgwake [--rounds R] [--seconds S] [--cpu C]\n");
      return 2;
    }
  }
  if (rounds < 1 || rounds > MAX_ROUNDS || !(secs > 0 && secs <= 600) || cpu < 0 || cpu > 63) {
    fprintf(stderr, "bench_pgwake: fatal: --rounds 1-%d, --seconds 0-600, --cpu 0-63\n",
            MAX_ROUNDS);
    return 2;
  }
  bu_raise_nofile(4 * MAX_CONNS);
  uint64_t all = bu_allowed_cpus(), mine = UINT64_C(1) << cpu, others = all & ~mine;
  if (!others) others = all;
  bu_pg_t pg;
  bu_tcp_t fl;
  if (bu_pg_start(&pg, others) != 0) return 1;
  if (bu_pgfloor_start(&fl, others) != 0) {
    bu_pg_stop(&pg);
    return 1;
  }
  if (bu_pin(mine) != 0) fprintf(stderr, "bench_pgwake: unable to pin to CPU %d\n", cpu);
  double v[N_EXPS][MAX_ROUNDS];
  int rc = 0;
  for (int r = 0; r < rounds && !rc; r++) {
    for (size_t i = 0; i < N_EXPS; i++) {
      const exp_t *e = &exps[i];
      v[i][r] = run_one(e, e->floor ? fl.port : pg.port, e->floor ? fl.pid : pg.pid, secs);
      fprintf(stderr, "round %d: %s: %.1f us per check (load %.2f)\n", r + 1, e->name, v[i][r],
              bu_loadavg());
      if (v[i][r] < 0) {
        fprintf(stderr, "bench_pgwake: fatal: %s failed\n", e->name);
        rc = 1;
        break;
      }
    }
  }
  if (!rc) {
    printf("| experiment | server CPU per check, us: median (min-max) over %d rounds |\n", rounds);
    printf("|---|---:|\n");
    for (size_t i = 0; i < N_EXPS; i++) {
      double med, mn, mx;
      bu_summary(v[i], rounds, &med, &mn, &mx);
      printf("| %s | %.1f (%.1f-%.1f) |\n", exps[i].name, med, mn, mx);
    }
    printf("\nload average at the end: %.2f\n", bu_loadavg());
  }
  bu_tcp_stop(&fl);
  bu_pg_stop(&pg);
  return rc;
}
