/* benchutil.c: see benchutil.h. */
#include "benchutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- time and processes ------------------------------------------------- */

int64_t bu_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bu_sleep_us(int64_t us) {
  if (us <= 0) return;
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int bu_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  int port = 0;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &l) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

bool bu_port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

const char *bu_which(const char *name, const char *dir) {
  static char path[512];
  if (dir) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, X_OK) == 0) return path;
  }
  const char *s = getenv("PATH");
  if (!s) s = "/usr/bin:/bin";
  while (*s) {
    const char *e = strchr(s, ':');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    snprintf(path, sizeof path, "%.*s/%s", (int)n, s, name);
    if (access(path, X_OK) == 0) return path;
    if (!e) break;
    s = e + 1;
  }
  return NULL;
}

long bu_raise_nofile(long want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if ((long)rl.rlim_cur >= want) return (long)rl.rlim_cur;
  struct rlimit nl = {(rlim_t)want, rl.rlim_max > (rlim_t)want ? rl.rlim_max : (rlim_t)want};
  if (setrlimit(RLIMIT_NOFILE, &nl) != 0) {
    /* Not root: as far as the hard limit goes. */
    nl.rlim_cur = rl.rlim_max;
    nl.rlim_max = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  return (long)rl.rlim_cur;
}

static void mask_to_set(uint64_t mask, cpu_set_t *set) {
  CPU_ZERO(set);
  for (int i = 0; i < 64; i++)
    if (mask & (UINT64_C(1) << i)) CPU_SET(i, set);
}

int bu_pin(uint64_t mask) {
  cpu_set_t set;
  mask_to_set(mask, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : -1;
}

uint64_t bu_allowed_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  uint64_t m = 0;
  for (int i = 0; i < 64; i++)
    if (CPU_ISSET(i, &set)) m |= UINT64_C(1) << i;
  return m;
}

/* In the child, before exec: drop to postgres (when root and asked), pin,
 * die with the parent, redirect output. Only async-signal-safe calls. */
static void child_setup(bool as_pg, uid_t uid, gid_t gid, uint64_t cpus, const char *logpath) {
  if (as_pg && geteuid() == 0) {
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(126);
  }
  /* After setuid: a credential change clears the parent-death signal. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (cpus) {
    cpu_set_t set;
    mask_to_set(cpus, &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  int fd = logpath ? open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644)
                   : open("/dev/null", O_WRONLY);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2) close(fd);
  }
  int nul = open("/dev/null", O_RDONLY);
  if (nul >= 0 && nul != 0) {
    dup2(nul, 0);
    close(nul);
  }
  setpgid(0, 0);
}

static int pg_ids(uid_t *uid, gid_t *gid) {
  struct passwd *pw = getpwnam("postgres");
  if (!pw) return -1;
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
  return 0;
}

pid_t bu_spawn(char *const argv[], bool as_pg, uint64_t cpus, const char *logpath) {
  uid_t uid = 0;
  gid_t gid = 0;
  if (as_pg && geteuid() == 0 && pg_ids(&uid, &gid) != 0) {
    fprintf(stderr, "bench: fatal: unable to find the postgres user\n");
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    child_setup(as_pg, uid, gid, cpus, logpath);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

int bu_run(char *const argv[], bool as_pg, const char *logpath) {
  pid_t pid = bu_spawn(argv, as_pg, 0, logpath);
  if (pid < 0) return -1;
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

void bu_stop_pid(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  int64_t end = bu_now_us() + 10000000;
  while (bu_now_us() < end) {
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;
    bu_sleep_us(20000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

char *bu_mkdtemp(const char *prefix) {
  char tmpl[256];
  snprintf(tmpl, sizeof tmpl, "/tmp/%s-XXXXXX", prefix);
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

void bu_rmtree(const char *dir) {
  if (!dir || strncmp(dir, "/tmp/", 5) != 0) return;
  nftw(dir, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

/* ---- counters ----------------------------------------------------------- */

static int64_t ticks_to_us(unsigned long long t) {
  static long hz;
  if (!hz) hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  return (int64_t)(t * 1000000ULL / (unsigned long long)hz);
}

int64_t bu_machine_busy_us(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return -1;
  unsigned long long v[10] = {0};
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
  fclose(f);
  if (n < 4) return -1;
  /* user nice system idle iowait irq softirq steal (guest counted in user). */
  unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return ticks_to_us(busy);
}

/* Fields of /proc/<pid>/stat after the command: state is field 3. */
static int read_stat(pid_t pid, int *ppid, unsigned long long t[4]) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  char state;
  unsigned long long skip;
  int pp;
  /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     utime stime cutime cstime */
  if (sscanf(p + 2, "%c %d %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
             &state, &pp, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &t[0],
             &t[1], &t[2], &t[3]) != 15)
    return -1;
  if (ppid) *ppid = pp;
  return 0;
}

int64_t bu_pid_cpu_us(pid_t pid, bool with_children) {
  unsigned long long t[4];
  if (read_stat(pid, NULL, t) != 0) return -1;
  return ticks_to_us(t[0] + t[1] + (with_children ? t[2] + t[3] : 0));
}

int64_t bu_tree_cpu_us(pid_t pid) {
  int64_t total = bu_pid_cpu_us(pid, true);
  if (total < 0) return -1;
  DIR *d = opendir("/proc");
  if (!d) return total;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long p = strtol(e->d_name, &end, 10);
    if (*end || p <= 0) continue;
    int pp;
    unsigned long long t[4];
    if (read_stat((pid_t)p, &pp, t) == 0 && pp == pid) total += ticks_to_us(t[0] + t[1]);
  }
  closedir(d);
  return total;
}

/* Run time (us, /proc/PID/schedstat) of parent's live children; with
   pg_clients, only those whose title names a postgres client. */
static int64_t kids_run_us(pid_t parent, bool pg_clients, int64_t *slices) {
  int64_t total = 0;
  if (slices) *slices = 0;
  DIR *d = opendir("/proc");
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long p = strtol(e->d_name, &end, 10);
    if (*end || p <= 0) continue;
    int pp;
    unsigned long long t[4];
    if (read_stat((pid_t)p, &pp, t) != 0 || pp != parent) continue;
    char path[64], title[256] = "";
    FILE *f;
    if (pg_clients) {
      snprintf(path, sizeof path, "/proc/%ld/cmdline", p);
      if (!(f = fopen(path, "r"))) continue;
      size_t n = fread(title, 1, sizeof title - 1, f);
      fclose(f);
      title[n] = '\0';
      if (strncmp(title, "postgres: ", 10) != 0 ||
          !(strchr(title, '(') || strstr(title, "[local]")))
        continue;
    }
    /* schedstat's run time is in ns: a check's tens of us would vanish in
       /proc/PID/stat's 10 ms ticks. */
    bu_sched_t s;
    if (bu_sched((pid_t)p, &s) != 0) continue;
    total += s.run_ns / 1000;
    if (slices) *slices += s.slices;
  }
  closedir(d);
  return total;
}

int64_t bu_pg_backends_cpu_us(pid_t postmaster, int64_t *slices) {
  return kids_run_us(postmaster, true, slices);
}

int64_t bu_kids_run_us(pid_t parent, int64_t *slices) { return kids_run_us(parent, false, slices); }

int bu_sched(pid_t pid, bu_sched_t *out) {
  char path[64];
  if (pid > 0) snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
  else snprintf(path, sizeof path, "/proc/thread-self/schedstat");
  /* "<ns on a CPU> <ns waiting on a run queue> <timeslices>" */
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  unsigned long long run, wait, runs;
  int n = fscanf(f, "%llu %llu %llu", &run, &wait, &runs);
  fclose(f);
  if (n != 3) return -1;
  *out = (bu_sched_t){(int64_t)run, (int64_t)wait, (int64_t)runs};
  return 0;
}

double bu_loadavg(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  return l;
}

int64_t bu_self_slices(void) {
  bu_sched_t s;
  return bu_sched(0, &s) == 0 ? s.slices : -1;
}

int64_t bu_self_preempted(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return (int64_t)ru.ru_nivcsw;
}

static int64_t ru_us(int who) {
  struct rusage ru;
  if (getrusage(who, &ru) != 0) return -1;
  return (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
         (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

int64_t bu_self_cpu_us(void) { return ru_us(RUSAGE_SELF); }

int64_t bu_self_sleeps(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return (int64_t)ru.ru_nvcsw;
}
int64_t bu_children_cpu_us(void) { return ru_us(RUSAGE_CHILDREN); }

void bu_rss_kib(long *rss, long *hwm) {
  *rss = *hwm = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) *rss = strtol(line + 6, NULL, 10);
    if (strncmp(line, "VmHWM:", 6) == 0) *hwm = strtol(line + 6, NULL, 10);
  }
  fclose(f);
}

long bu_timewait(void) {
  FILE *f = fopen("/proc/net/sockstat", "r");
  if (!f) return -1;
  char line[256];
  long tw = -1;
  while (fgets(line, sizeof line, f)) {
    char *p = strstr(line, " tw ");
    if (strncmp(line, "TCP:", 4) == 0 && p) tw = strtol(p + 4, NULL, 10);
  }
  fclose(f);
  return tw;
}

/* "TcpExt:" / "Tcp:" followed by "prefix" + names on one line and the
   values on the next. */
const char *const bu_tcpstat_names[BU_TCPSTAT_N] = {
    "TcpActiveOpens",      "TcpAttemptFails",        "TcpEstabResets",
    "TcpOutRsts",          "TcpRetransSegs",         "TcpExtListenOverflows",
    "TcpExtListenDrops",   "TcpExtSyncookiesSent",   "TcpExtTW",
    "TcpExtTWRecycled",    "TcpExtTWKilled",         "TcpExtPAWSTimewait",
    "TcpExtTCPTimeouts",   "TcpExtTCPSynRetrans",    "TcpExtTCPTimeWaitOverflow",
    "TcpExtTCPChallengeACK", "TcpExtTCPAbortOnData"};

int bu_tcpstat_index(const char *name) {
  for (int i = 0; i < BU_TCPSTAT_N; i++)
    if (strcmp(bu_tcpstat_names[i], name) == 0) return i;
  return -1;
}

static int tcpstat_file(const char *path, bu_tcpstat_t *out) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  /* Lines are long (TcpExt: ~120 names); read each whole. */
  char *names = NULL, *vals = NULL;
  size_t nc = 0, vc = 0;
  while (getline(&names, &nc, f) > 0) {
    if (getline(&vals, &vc, f) <= 0) break;
    char *c = strchr(names, ':');
    if (!c || strncmp(names, "Tcp", 3) != 0) continue;
    size_t plen = (size_t)(c - names);
    char prefix[16];
    if (plen >= sizeof prefix) continue;
    memcpy(prefix, names, plen);
    prefix[plen] = 0;
    char *sn, *sv;
    char *n = strtok_r(c + 1, " \n", &sn);
    char *vp = strchr(vals, ':');
    char *v = vp ? strtok_r(vp + 1, " \n", &sv) : NULL;
    for (; n && v; n = strtok_r(NULL, " \n", &sn), v = strtok_r(NULL, " \n", &sv)) {
      char full[96];
      snprintf(full, sizeof full, "%s%s", prefix, n);
      int i = bu_tcpstat_index(full);
      if (i >= 0) out->v[i] = strtoll(v, NULL, 10);
    }
  }
  free(names);
  free(vals);
  fclose(f);
  return 0;
}

int bu_tcpstat(bu_tcpstat_t *out) {
  memset(out, 0, sizeof *out);
  int a = tcpstat_file("/proc/net/snmp", out), b = tcpstat_file("/proc/net/netstat", out);
  return a == 0 && b == 0 ? 0 : -1;
}

int64_t bu_runq_us(void) {
  bu_sched_t s;
  return bu_sched(0, &s) == 0 ? s.wait_ns / 1000 : -1;
}

/* ---- servers ------------------------------------------------------------ */

static bool wait_port(int port, pid_t pid, int ms) {
  int64_t end = bu_now_us() + (int64_t)ms * 1000;
  while (bu_now_us() < end) {
    if (bu_port_open(port)) return true;
    if (waitpid(pid, NULL, WNOHANG) == pid) return false;
    bu_sleep_us(20000);
  }
  return false;
}

int bu_redis_start(bu_redis_t *r, uint64_t cpus) {
  memset(r, 0, sizeof *r);
  r->pid = -1;
  const char *bin = bu_which("redis-server", NULL);
  if (!bin) {
    fprintf(stderr, "bench: fatal: unable to find redis-server in PATH\n");
    return -1;
  }
  char binpath[512];
  snprintf(binpath, sizeof binpath, "%s", bin);
  r->dir = bu_mkdtemp("tsvc-bench-redis");
  r->port = bu_free_port();
  if (!r->dir || !r->port) {
    fprintf(stderr, "bench: fatal: unable to make a temp dir or find a free port\n");
    return -1;
  }
  char port[16], log[512];
  snprintf(port, sizeof port, "%d", r->port);
  snprintf(log, sizeof log, "%s/redis.log", r->dir);
  char *argv[] = {binpath, "--port", port, "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", r->dir, "--maxclients", "60000",
                  "--tcp-backlog", "4096", "--protected-mode", "no", NULL};
  r->pid = bu_spawn(argv, false, cpus, log);
  if (r->pid < 0 || !wait_port(r->port, r->pid, 10000)) {
    fprintf(stderr, "bench: fatal: unable to start redis-server on 127.0.0.1:%d (log: %s)\n",
            r->port, log);
    return -1;
  }
  return 0;
}

void bu_redis_stop(bu_redis_t *r) {
  if (r->pid > 0) bu_stop_pid(r->pid, SIGTERM);
  r->pid = -1;
  if (r->dir) bu_rmtree(r->dir);
  free(r->dir);
  r->dir = NULL;
}

static bool find_pg_bindir(char *out, size_t len) {
  const char *cands[] = {getenv("PG_BINDIR"), "/usr/lib/postgresql/15/bin",
                         "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"};
  for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
    if (!cands[i]) continue;
    char p[512];
    snprintf(p, sizeof p, "%s/postgres", cands[i]);
    if (access(p, X_OK) == 0) {
      snprintf(out, len, "%s", cands[i]);
      return true;
    }
  }
  return false;
}

int bu_pg_start(bu_pg_t *pg, uint64_t cpus) {
  memset(pg, 0, sizeof *pg);
  pg->pid = -1;
  if (!find_pg_bindir(pg->bindir, sizeof pg->bindir)) {
    fprintf(stderr, "bench: fatal: unable to find postgres binaries (set PG_BINDIR)\n");
    return -1;
  }
  pg->dir = bu_mkdtemp("tsvc-bench-pg");
  pg->port = bu_free_port();
  if (!pg->dir || !pg->port) {
    fprintf(stderr, "bench: fatal: unable to make a temp dir or find a free port\n");
    return -1;
  }
  uid_t uid;
  gid_t gid;
  if (geteuid() == 0 && (pg_ids(&uid, &gid) != 0 || chown(pg->dir, uid, gid) != 0)) {
    fprintf(stderr, "bench: fatal: unable to hand %s to the postgres user\n", pg->dir);
    return -1;
  }
  char data[512], log[512], initdb[512], postgres[512], conf[600], port[16];
  snprintf(data, sizeof data, "%s/data", pg->dir);
  snprintf(log, sizeof log, "%s/postgres.log", pg->dir);
  snprintf(initdb, sizeof initdb, "%s/initdb", pg->bindir);
  snprintf(postgres, sizeof postgres, "%s/postgres", pg->bindir);
  snprintf(port, sizeof port, "%d", pg->port);
  char *iargs[] = {initdb, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C",
                   "--no-sync", "-D", data, NULL};
  int rc = bu_run(iargs, true, log);
  if (rc != 0) {
    fprintf(stderr, "bench: fatal: unable to initdb (exit %d, log: %s)\n", rc, log);
    return -1;
  }
  snprintf(conf, sizeof conf, "listen_addresses=127.0.0.1");
  char sock[600];
  snprintf(sock, sizeof sock, "unix_socket_directories=%s", pg->dir);
  char *pargs[] = {postgres, "-D", data, "-p", port, "-c", conf, "-c", sock,
                   "-c", "fsync=off", "-c", "max_connections=200", NULL};
  pg->pid = bu_spawn(pargs, true, cpus, log);
  if (pg->pid < 0 || !wait_port(pg->port, pg->pid, 30000)) {
    fprintf(stderr, "bench: fatal: unable to start postgres on 127.0.0.1:%d (log: %s)\n",
            pg->port, log);
    return -1;
  }
  /* Listening is not accepting: wait until pg_isready says so. */
  char isready[512];
  snprintf(isready, sizeof isready, "%s/pg_isready", pg->bindir);
  char *rargs[] = {isready, "-q", "-h", "127.0.0.1", "-p", port, "-U", "postgres", NULL};
  int64_t end = bu_now_us() + 30000000;
  while (bu_run(rargs, false, NULL) != 0) {
    if (bu_now_us() > end) {
      fprintf(stderr, "bench: fatal: postgres on 127.0.0.1:%d never accepted (log: %s)\n",
              pg->port, log);
      return -1;
    }
    bu_sleep_us(100000);
  }
  return 0;
}

void bu_pg_stop(bu_pg_t *pg) {
  if (pg->pid > 0) bu_stop_pid(pg->pid, SIGINT); /* fast shutdown */
  pg->pid = -1;
  if (pg->dir) bu_rmtree(pg->dir);
  free(pg->dir);
  pg->dir = NULL;
}

/* Accept on lfd forever; on_conn(lfd, ep, fd) for each connection (fd is
   closed after it returns in this process). */
static void accept_each(int lfd, void (*on_conn)(int lfd, int ep, int fd)) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) _exit(1);
  for (;;) {
    struct epoll_event out;
    if (epoll_wait(ep, &out, 1, -1) < 0 && errno != EINTR) _exit(1);
    for (;;) {
      int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
      if (fd < 0) break;
      if (on_conn) on_conn(lfd, ep, fd);
      close(fd);
    }
  }
}

static void tcp_serve(int lfd) { accept_each(lfd, NULL); }

/* Messages the floor's sessions answered (startup packets included), in
   memory shared with every process of the floor (mapped before its fork). */
typedef struct {
  _Atomic uint64_t msgs;    /* messages answered */
  _Atomic uint64_t span_ns; /* from the wake-up (epoll_wait's return) to the answer sent */
  _Atomic uint64_t slow;    /* answers whose span was above 1 ms */
} floor_counts_t;
static floor_counts_t *floor_counts;

void bu_pgfloor_counts(bu_floor_counts_t *out) {
  memset(out, 0, sizeof *out);
  if (!floor_counts) return;
  out->messages = atomic_load(&floor_counts->msgs);
  out->span_us = (double)atomic_load(&floor_counts->span_ns) / 1e3;
  out->slow = atomic_load(&floor_counts->slow);
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One connection of bu_pgfloor_start, in its own process. */
static void floor_session(int fd) {
  /* AuthenticationOk, BackendKeyData (our pid, as a backend's), ReadyForQuery. */
  uint8_t auth_ok[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0, 'K', 0, 0, 0, 12, 0, 0, 0, 0,
                       0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'};
  uint32_t self = (uint32_t)getpid();
  auth_ok[14] = (uint8_t)(self >> 24), auth_ok[15] = (uint8_t)(self >> 16);
  auth_ok[16] = (uint8_t)(self >> 8), auth_ok[17] = (uint8_t)self;
  static const uint8_t empty_ready[] = {'I', 0, 0, 0, 4, 'Z', 0, 0, 0, 5, 'I'};
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) _exit(1);
  uint8_t buf[4096];
  size_t have = 0;
  bool started = false; /* the startup packet (no type byte) was read */
  uint64_t woke = mono_ns();
  for (;;) {
    ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
    if (n == 0) _exit(0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) _exit(0);
      struct epoll_event out;
      if (epoll_wait(ep, &out, 1, -1) < 0 && errno != EINTR) _exit(1);
      woke = mono_ns();
      continue;
    }
    have += (size_t)n;
    size_t off = 0;
    for (;;) {
      size_t hdr = started ? 5 : 4;
      if (have - off < hdr) break;
      const uint8_t *l = buf + off + hdr - 4;
      uint32_t len = (uint32_t)l[0] << 24 | (uint32_t)l[1] << 16 | (uint32_t)l[2] << 8 | l[3];
      if (len < 4 || len >= sizeof buf) _exit(1);
      size_t whole = hdr - 4 + len;
      if (have - off < whole) break;
      char type = started ? (char)buf[off] : 0;
      off += whole;
      ssize_t w;
      if (!started) {
        started = true;
        w = send(fd, auth_ok, sizeof auth_ok, MSG_NOSIGNAL);
      } else if (type == 'S') {
        w = send(fd, empty_ready + 5, 6, MSG_NOSIGNAL);
      } else if (type == 'Q') {
        w = send(fd, empty_ready, sizeof empty_ready, MSG_NOSIGNAL);
      } else {
        _exit(0); /* Terminate, or anything else: close */
      }
      if (w < 0) _exit(0);
      if (floor_counts) {
        uint64_t span = mono_ns() - woke;
        atomic_fetch_add(&floor_counts->msgs, 1);
        atomic_fetch_add(&floor_counts->span_ns, span);
        if (span > 1000000) atomic_fetch_add(&floor_counts->slow, 1);
      }
    }
    memmove(buf, buf + off, have - off);
    have -= off;
  }
}

static pid_t floor_parent;

static void floor_conn(int lfd, int ep, int fd) {
  if (fork() == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != floor_parent) _exit(0);
    close(lfd);
    close(ep);
    floor_session(fd);
    _exit(0);
  }
}

static void floor_serve(int lfd) {
  signal(SIGCHLD, SIG_IGN); /* sessions are reaped by the kernel */
  floor_parent = getpid();
  accept_each(lfd, floor_conn);
}

/* Listen on 127.0.0.1:free port and run serve(lfd) in a child pinned to
   cpus. */
static int listen_fork(bu_tcp_t *t, uint64_t cpus, void (*serve)(int)) {
  t->pid = -1;
  t->port = 0;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0 ||
      getsockname(lfd, (struct sockaddr *)&a, &l) != 0) {
    fprintf(stderr, "bench: fatal: unable to listen on 127.0.0.1: %s\n", strerror(errno));
    if (lfd >= 0) close(lfd);
    return -1;
  }
  t->port = ntohs(a.sin_port);
  pid_t pid = fork();
  if (pid < 0) {
    close(lfd);
    fprintf(stderr, "bench: fatal: unable to fork the tcp listener\n");
    return -1;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (cpus) bu_pin(cpus);
    serve(lfd);
    _exit(0);
  }
  close(lfd);
  t->pid = pid;
  return 0;
}

int bu_tcp_start(bu_tcp_t *t, uint64_t cpus) { return listen_fork(t, cpus, tcp_serve); }

int bu_pgfloor_start(bu_tcp_t *t, uint64_t cpus) {
  if (!floor_counts) {
    void *p = mmap(NULL, sizeof *floor_counts, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p != MAP_FAILED) floor_counts = p;
  }
  return listen_fork(t, cpus, floor_serve);
}

void bu_tcp_stop(bu_tcp_t *t) {
  if (t->pid > 0) bu_stop_pid(t->pid, SIGTERM);
  t->pid = -1;
}

/* ---- statistics --------------------------------------------------------- */

int bu_hist_init(bu_hist_t *h) {
  h->n = 0;
  h->c = calloc(BU_HIST_MS + 1, sizeof *h->c);
  return h->c ? 0 : -1;
}

void bu_hist_add(bu_hist_t *h, int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms > BU_HIST_MS) ms = BU_HIST_MS;
  h->c[ms]++;
  h->n++;
}

void bu_hist_reset(bu_hist_t *h) {
  memset(h->c, 0, (BU_HIST_MS + 1) * sizeof *h->c);
  h->n = 0;
}

int64_t bu_hist_quantile(const bu_hist_t *h, double q) {
  if (!h->n) return -1;
  uint64_t want = (uint64_t)(q * (double)h->n);
  if (want >= h->n) want = h->n - 1;
  uint64_t seen = 0;
  for (int64_t i = 0; i <= BU_HIST_MS; i++) {
    seen += h->c[i];
    if (seen > want) return i;
  }
  return BU_HIST_MS;
}

void bu_hist_free(bu_hist_t *h) {
  free(h->c);
  h->c = NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

void bu_summary(double *v, int n, double *med, double *min, double *max) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  *min = v[0];
  *max = v[n - 1];
  *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
