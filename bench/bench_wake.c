/*
 * bench_wake: what one wake-up costs on this machine, the floor under a
 * held session's server CPU per check (issue 13, point 4). No tanuki-svc
 * code and no protocol: a blocking client pinned to one CPU and N server
 * processes pinned to another, each holding one loopback TCP connection.
 * Every --interval the client writes 6 bytes to each connection in turn
 * (spread over the interval, as 20 held sessions at 1 s are); the server
 * process wakes up in epoll_wait, reads them, writes 11 bytes back and
 * waits again: the shape of a held postgres check (Q, then I+Z) without
 * postgres. Reported: the servers' and the client's own run time per
 * exchange (/proc/PID/schedstat, ns, so load does not blur it into ticks)
 * and run slices per exchange.
 *
 * --spin puts a busy loop at nice 19 on the servers' CPU (server), on
 * both CPUs (both) or nowhere (none): a CPU that has something to run never
 * halts, so the difference tells what waking a halted virtual CPU costs
 * the task that it wakes for. Variants alternate over --rounds.
 *
 * Usage: bench_wake [--rounds R] [--seconds S] [--conns N] [--interval MS]
 *                   [--client-cpu C] [--server-cpu C]
 * Prints one markdown row per variant: median over rounds (min-max).
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"

#define MAX_CONNS 200
#define MAX_ROUNDS 9

/* One server process: wake, read, answer, wait; until EOF. */
static void serve(int fd, int cpu) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (cpu >= 0) bu_pin(1ull << cpu);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) _exit(1);
  static const uint8_t reply[11] = {'I', 0, 0, 0, 4, 'Z', 0, 0, 0, 5, 'I'};
  uint8_t buf[64];
  for (;;) {
    struct epoll_event out;
    if (epoll_wait(ep, &out, 1, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) _exit(0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      _exit(1);
    }
    if (send(fd, reply, sizeof reply, MSG_NOSIGNAL) < 0) _exit(1);
  }
}

static pid_t spinner(int cpu) {
  pid_t p = fork();
  if (p == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    bu_pin(1ull << cpu);
    setpriority(PRIO_PROCESS, 0, 19);
    for (volatile unsigned long i = 0;; i++) {
    }
  }
  return p;
}

typedef struct {
  double srv_us, cli_us, srv_slices, rate;
} result_t;

static int run_variant(const char *spin, int conns, int interval_ms, double seconds, int ccpu,
                       int scpu, result_t *r) {
  pid_t spins[2] = {-1, -1};
  if (!strcmp(spin, "server") || !strcmp(spin, "both")) spins[0] = spinner(scpu);
  if (!strcmp(spin, "both")) spins[1] = spinner(ccpu);
  int fds[MAX_CONNS];
  pid_t kids[MAX_CONNS];
  /* Loopback TCP, as the held sessions use: a listener, then one
     connection and one server process per slot. */
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, MAX_CONNS) ||
      getsockname(lfd, (struct sockaddr *)&a, &l)) {
    fprintf(stderr, "bench_wake: fatal: unable to listen on 127.0.0.1: %s\n", strerror(errno));
    return -1;
  }
  int one = 1;
  for (int i = 0; i < conns; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a)) {
      fprintf(stderr, "bench_wake: fatal: unable to connect: %s\n", strerror(errno));
      return -1;
    }
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int sfd = accept(lfd, NULL, NULL);
    if (sfd < 0) {
      fprintf(stderr, "bench_wake: fatal: unable to accept: %s\n", strerror(errno));
      return -1;
    }
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    kids[i] = fork();
    if (kids[i] == 0) {
      close(lfd);
      for (int j = 0; j <= i; j++) close(fds[j]);
      serve(sfd, scpu);
    }
    close(sfd);
  }
  close(lfd);
  if (ccpu >= 0) bu_pin(1ull << ccpu);
  static const uint8_t q[6] = {'Q', 0, 0, 0, 5, 0};
  uint8_t buf[64];
  int64_t step_us = (int64_t)interval_ms * 1000 / conns;
  /* One interval of warm-up, then the measured part. */
  int64_t warm = (int64_t)interval_ms * 1000, total = warm + (int64_t)(seconds * 1e6);
  int64_t t0 = bu_now_us(), next = t0;
  bu_sched_t s0[MAX_CONNS], c0 = {0}, s1, c1;
  bool measuring = false;
  long n = 0;
  int64_t m0 = 0;
  for (long k = 0;; k++) {
    int64_t now = bu_now_us();
    if (!measuring && now - t0 >= warm) {
      measuring = true;
      for (int i = 0; i < conns; i++) bu_sched(kids[i], &s0[i]);
      bu_sched(getpid(), &c0);
      m0 = now;
    }
    if (now - t0 >= total) break;
    if (next > now) bu_sleep_us(next - now);
    next += step_us;
    int fd = fds[k % conns];
    if (write(fd, q, sizeof q) != (ssize_t)sizeof q) {
      fprintf(stderr, "bench_wake: fatal: unable to write: %s\n", strerror(errno));
      return -1;
    }
    size_t got = 0;
    while (got < 11) {
      ssize_t m = read(fd, buf, sizeof buf);
      if (m < 0 && errno == EINTR) continue;
      if (m <= 0) {
        fprintf(stderr, "bench_wake: fatal: a server went away\n");
        return -1;
      }
      got += (size_t)m;
    }
    if (measuring) n++;
  }
  double secs = (double)(bu_now_us() - m0) / 1e6;
  bu_sched(getpid(), &c1);
  int64_t srv = 0, sl = 0;
  for (int i = 0; i < conns; i++) {
    if (bu_sched(kids[i], &s1) == 0) {
      srv += s1.run_ns - s0[i].run_ns;
      sl += s1.slices - s0[i].slices;
    }
  }
  for (int i = 0; i < conns; i++) close(fds[i]);
  for (int i = 0; i < conns; i++) waitpid(kids[i], NULL, 0);
  for (int i = 0; i < 2; i++)
    if (spins[i] > 0) {
      kill(spins[i], SIGKILL);
      waitpid(spins[i], NULL, 0);
    }
  double per = n > 0 ? (double)n : 1;
  r->srv_us = (double)srv / 1e3 / per;
  r->cli_us = (double)(c1.run_ns - c0.run_ns) / 1e3 / per;
  r->srv_slices = (double)sl / per;
  r->rate = (double)n / secs;
  return 0;
}

int main(int argc, char **argv) {
  int rounds = 3, conns = 20, interval_ms = 1000, ccpu = 0, scpu = 1;
  double seconds = 10;
  static const struct option opts[] = {
      {"rounds", 1, NULL, 'r'},     {"seconds", 1, NULL, 's'},    {"conns", 1, NULL, 'n'},
      {"interval", 1, NULL, 'i'},   {"client-cpu", 1, NULL, 'c'}, {"server-cpu", 1, NULL, 'S'},
      {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'r': rounds = atoi(optarg); break;
    case 's': seconds = atof(optarg); break;
    case 'n': conns = atoi(optarg); break;
    case 'i': interval_ms = atoi(optarg); break;
    case 'c': ccpu = atoi(optarg); break;
    case 'S': scpu = atoi(optarg); break;
    default:
      fprintf(stderr, "usage: bench_wake [--rounds R] [--seconds S] [--conns N] [--interval MS]"
                      " [--client-cpu C] [--server-cpu C]\n");
      return 2;
    }
  }
  if (rounds < 1 || rounds > MAX_ROUNDS || conns < 1 || conns > MAX_CONNS || interval_ms < 1 ||
      !(seconds > 0) || ccpu < -1 || scpu < -1) {
    fprintf(stderr, "bench_wake: bad option: rounds 1-%d, conns 1-%d, interval >= 1 ms,"
                    " seconds > 0, cpus >= -1\n", MAX_ROUNDS, MAX_CONNS);
    return 2;
  }
  static const char *variants[] = {"none", "server", "both"};
  enum { NV = 3 };
  double srv[NV][MAX_ROUNDS], cli[NV][MAX_ROUNDS], sl[NV][MAX_ROUNDS], rate[NV][MAX_ROUNDS];
  for (int r = 0; r < rounds; r++)
    for (int v = 0; v < NV; v++) {
      result_t res;
      if (run_variant(variants[v], conns, interval_ms, seconds, ccpu, scpu, &res) != 0) {
        fprintf(stderr, "bench_wake: fatal: the variant spin=%s failed\n", variants[v]);
        return 1;
      }
      srv[v][r] = res.srv_us, cli[v][r] = res.cli_us, sl[v][r] = res.srv_slices;
      rate[v][r] = res.rate;
      fprintf(stderr, "round %d spin=%s: %.1f exchanges/s, server %.1f us, client %.1f us,"
                      " server slices %.2f per exchange\n",
              r + 1, variants[v], res.rate, res.srv_us, res.cli_us, res.srv_slices);
    }
  printf("| nice-19 spinner | exchanges/s | server us/exchange | client us/exchange |"
         " server slices/exchange |\n|---|---:|---:|---:|---:|\n");
  for (int v = 0; v < NV; v++) {
    double m[4], lo[4], hi[4];
    bu_summary(rate[v], rounds, &m[0], &lo[0], &hi[0]);
    bu_summary(srv[v], rounds, &m[1], &lo[1], &hi[1]);
    bu_summary(cli[v], rounds, &m[2], &lo[2], &hi[2]);
    bu_summary(sl[v], rounds, &m[3], &lo[3], &hi[3]);
    printf("| %s | %.1f | %.1f (%.1f-%.1f) | %.1f (%.1f-%.1f) | %.2f |\n", variants[v], m[0], m[1],
           lo[1], hi[1], m[2], lo[2], hi[2], m[3]);
  }
  printf("RESULT conns=%d interval_ms=%d rounds=%d load=%.2f\n", conns, interval_ms, rounds,
         bu_loadavg());
  return 0;
}
