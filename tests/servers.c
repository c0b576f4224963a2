/* servers.c: see servers.h. */
#include "servers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "probe/pg_reply.h"

extern char **environ;

/* ---- processes ---------------------------------------------------------- */

void tu_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int tu_listen_port(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  a.sin_port = htons((uint16_t)*port);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return fd;
}

void tu_flap_port(int *fd, int port, int times, int every_ms) {
  for (int i = 0; i < times; i++) {
    tu_sleep_ms(every_ms);
    if (*fd >= 0) {
      close(*fd);
      *fd = -1;
    } else {
      *fd = tu_listen_port(&port);
      assert_true(*fd >= 0);
    }
  }
}

int tu_free_port(void) {
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

const char *tu_which(const char *name) {
  static char path[512];
  const char *pathenv = getenv("PATH");
  if (!pathenv) pathenv = "/usr/bin:/bin";
  const char *s = pathenv;
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

typedef struct {
  bool drop;
  uid_t uid;
  gid_t gid;
} creds_t;

static int pg_creds(bool as_pg, creds_t *c) {
  memset(c, 0, sizeof *c);
  if (!as_pg || geteuid() != 0) return 0;
  struct passwd *pw = getpwnam("postgres");
  if (!pw) return -1;
  c->drop = true;
  c->uid = pw->pw_uid;
  c->gid = pw->pw_gid;
  return 0;
}

/* A copy of environ plus extra (pointers only), for execvpe after fork. */
static char **make_env(char *const extra[]) {
  size_t n = 0, m = 0;
  while (environ[n]) n++;
  while (extra && extra[m]) m++;
  char **env = calloc(n + m + 1, sizeof *env);
  if (!env) return NULL;
  memcpy(env, environ, n * sizeof *env);
  for (size_t i = 0; i < m; i++) env[n + i] = extra[i];
  return env;
}

/* In the child: become the postgres user when asked; async-signal-safe. */
static void child_setup(const creds_t *c, int outfd, int errfd) {
  int nul = open("/dev/null", O_RDWR);
  dup2(nul, 0);
  dup2(outfd >= 0 ? outfd : nul, 1);
  dup2(errfd >= 0 ? errfd : nul, 2);
  if (c->drop) {
    if (setgroups(0, NULL) != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0) _exit(126);
    if (chdir("/tmp") != 0) _exit(126);
  }
  setpgid(0, 0); /* its own group: a test's Ctrl-C or kill does not leak */
}

static int decode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

int tu_cmd(char *const argv[], bool as_pg, char *const env[], char *out, size_t outlen) {
  creds_t c;
  if (pg_creds(as_pg, &c) != 0) return -1;
  char **envp = make_env(env);
  if (!envp) return -1;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    free(envp);
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    child_setup(&c, fds[1], -1);
    execvpe(argv[0], argv, envp);
    _exit(127);
  }
  free(envp);
  close(fds[1]);
  size_t len = 0;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out && outlen > 1) {
      size_t c2 = (size_t)n < outlen - 1 - len ? (size_t)n : outlen - 1 - len;
      memcpy(out + len, buf, c2);
      len += c2;
    }
  }
  close(fds[0]);
  if (out && outlen) out[len] = '\0';
  if (pid < 0) return -1;
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return decode_status(st);
}

pid_t tu_spawn(char *const argv[], bool as_pg, const char *logpath) {
  creds_t c;
  if (pg_creds(as_pg, &c) != 0) return -1;
  int fd = -1;
  if (logpath) {
    fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (c.drop && fchown(fd, c.uid, c.gid) != 0) {
      close(fd);
      return -1;
    }
  }
  char **envp = make_env(NULL);
  if (!envp) {
    if (fd >= 0) close(fd);
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    child_setup(&c, fd, fd);
    execvpe(argv[0], argv, envp);
    _exit(127);
  }
  free(envp);
  if (fd >= 0) close(fd);
  return pid;
}

int tu_wait_pid(pid_t pid, int ms) {
  int64_t end = tsvc_mono_ms() + ms;
  for (;;) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return decode_status(st);
    if (r < 0 && errno != EINTR) return -1;
    if (tsvc_mono_ms() >= end) return -1;
    tu_sleep_ms(10);
  }
}

void tu_stop_pid(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  if (tu_wait_pid(pid, 15000) >= 0) return;
  kill(pid, SIGKILL);
  tu_wait_pid(pid, 5000);
}

bool tu_port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  /* Connecting to a free ephemeral port can meet itself (TCP simultaneous
   * open) when the kernel picks that same port as the source. */
  struct sockaddr_in me;
  socklen_t l = sizeof me;
  if (ok && getsockname(fd, (struct sockaddr *)&me, &l) == 0 && me.sin_port == a.sin_port)
    ok = false;
  close(fd);
  return ok;
}

long tu_file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

char *tu_read_file(const char *path, long offset) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  if (fseek(f, offset, SEEK_SET) != 0) {
    fclose(f);
    return NULL;
  }
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  size_t n;
  while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len - 1 == 0) {
      char *t = realloc(s, cap * 2);
      if (!t) {
        free(s);
        s = NULL;
        break;
      }
      s = t;
      cap *= 2;
    }
  }
  fclose(f);
  if (s) s[len] = '\0';
  return s;
}

int tu_group_alive(pid_t pgid) {
  glob_t g;
  int n = 0;
  if (glob("/proc/[0-9]*/stat", 0, NULL, &g) != 0) return 0;
  for (size_t i = 0; i < g.gl_pathc; i++) {
    char *s = tu_read_file(g.gl_pathv[i], 0);
    if (!s) continue;
    char *rp = strrchr(s, ')');
    char state = 0;
    long ppid = 0, pgrp = 0, pid = strtol(s, NULL, 10);
    if (rp && sscanf(rp + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3 && state != 'Z' &&
        state != 'X' && (pgrp == pgid || pid == pgid))
      n++;
    free(s);
  }
  globfree(&g);
  return n;
}

int tu_group_wait_gone(pid_t pgid, int ms) {
  int64_t end = tsvc_mono_ms() + ms;
  int n;
  while ((n = tu_group_alive(pgid)) > 0 && tsvc_mono_ms() < end) tu_sleep_ms(5);
  return n;
}

void tu_tw_snapshot(int port, tu_tw_t *tw) {
  tw->n = 0;
  tu_sleep_ms(200);
  FILE *f = fopen("/proc/net/tcp", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f) && tw->n < TSVC_ARRAY_LEN(tw->key)) {
    unsigned la, lp, ra, rp, st;
    if (sscanf(line, " %*d: %x:%x %x:%x %x", &la, &lp, &ra, &rp, &st) != 5) continue;
    if (st != 0x06 || ((int)lp != port && (int)rp != port)) continue; /* TCP_TIME_WAIT */
    tw->key[tw->n] = ((uint64_t)(la ^ ra) << 32) | ((uint64_t)lp << 16) | rp;
    tw->server_side[tw->n] = (int)lp == port;
    tw->n++;
  }
  fclose(f);
}

void tu_tw_new(const tu_tw_t *before, const tu_tw_t *now, int *server_side, int *client_side) {
  *server_side = *client_side = 0;
  for (size_t i = 0; i < now->n; i++) {
    bool seen = false;
    for (size_t j = 0; j < before->n && !seen; j++) seen = before->key[j] == now->key[i];
    if (seen) continue;
    if (now->server_side[i])
      (*server_side)++;
    else
      (*client_side)++;
  }
}

/* ---- postgres ----------------------------------------------------------- */

static bool find_pg_bindir(char *out, size_t len) {
  const char *env = getenv("TSVC_PG_BINDIR");
  char path[512];
  if (env && *env) {
    snprintf(path, sizeof path, "%s/postgres", env);
    if (access(path, X_OK) == 0) {
      snprintf(out, len, "%s", env);
      return true;
    }
  }
  glob_t g;
  bool found = false;
  if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) == 0) {
    for (size_t i = g.gl_pathc; i-- > 0 && !found;) { /* sorted: newest last */
      if (access(g.gl_pathv[i], X_OK) == 0) {
        snprintf(out, len, "%.*s", (int)(strlen(g.gl_pathv[i]) - strlen("/postgres")),
                 g.gl_pathv[i]);
        found = true;
      }
    }
    globfree(&g);
  }
  return found;
}

bool tu_pg_available(char *why, size_t len) {
  char dir[256];
  if (!find_pg_bindir(dir, sizeof dir)) {
    if (why) snprintf(why, len, "postgres binaries not found (/usr/lib/postgresql/*/bin; "
                      "scripts/deps.sh installs them)");
    return false;
  }
  if (geteuid() == 0 && !getpwnam("postgres")) {
    if (why) snprintf(why, len, "running as root but there is no postgres user for initdb");
    return false;
  }
  return true;
}

static char *pg_bin(tu_pg_t *pg, const char *name) {
  return tsvc_asprintf("%s/%s", pg->bindir, name);
}

int tu_pg_setup(tu_pg_t *pg, const char *hba) {
  memset(pg, 0, sizeof *pg);
  pg->pid = -1;
  if (!find_pg_bindir(pg->bindir, sizeof pg->bindir)) return -1;
  pg->dir = tu_mkdtemp("tsvc-pg");
  if (!pg->dir) return -1;
  creds_t c;
  if (pg_creds(true, &c) != 0) return -1;
  if (c.drop && chown(pg->dir, c.uid, c.gid) != 0) return -1;
  pg->data = tsvc_asprintf("%s/data", pg->dir);
  pg->log = tsvc_asprintf("%s/postgres.log", pg->dir);
  pg->port = tu_free_port();

  char *initdb = pg_bin(pg, "initdb");
  char *args[] = {initdb, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C",
                  "--no-sync", "-D", pg->data, NULL};
  char out[4096];
  int rc = tu_cmd(args, true, NULL, out, sizeof out);
  free(initdb);
  if (rc != 0) {
    fprintf(stderr, "initdb failed (%d): %s\n", rc, out);
    return -1;
  }
  char *conf = tsvc_asprintf("%s/postgresql.conf", pg->data);
  FILE *f = fopen(conf, "a");
  free(conf);
  if (!f) return -1;
  /* log_min_messages and log_connections stay at their defaults. */
  fprintf(f,
          "\n# tanuki-svc tests\nlisten_addresses = '127.0.0.1'\nport = %d\n"
          "unix_socket_directories = '%s'\nfsync = off\nlogging_collector = off\n",
          pg->port, pg->dir);
  fclose(f);
  if (hba) {
    char *path = tsvc_asprintf("%s/pg_hba.conf", pg->data);
    rc = tu_write_file(path, hba);
    free(path);
    if (rc != 0) return -1;
  }
  char *postgres = pg_bin(pg, "postgres");
  char *pargs[] = {postgres, "-D", pg->data, NULL};
  pg->pid = tu_spawn(pargs, true, pg->log);
  free(postgres);
  if (pg->pid < 0) return -1;
  return tu_pg_wait_ready(pg, 20000);
}

int tu_pg_wait_ready(tu_pg_t *pg, int ms) {
  int64_t end = tsvc_mono_ms() + ms;
  while (tsvc_mono_ms() < end) {
    if (tu_pg_isready(pg, "postgres", "postgres", NULL) == 0) return 0;
    if (pg->pid > 0 && waitpid(pg->pid, NULL, WNOHANG) == pg->pid) {
      pg->pid = -1;
      return -1;
    }
    tu_sleep_ms(50);
  }
  return -1;
}

int tu_pg_sql(tu_pg_t *pg, const char *sql) {
  char *psql = pg_bin(pg, "psql");
  char port[16];
  snprintf(port, sizeof port, "%d", pg->port);
  char *args[] = {psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port,
                  "-U", "postgres", "-d", "postgres", "-c", (char *)sql, NULL};
  int rc = tu_cmd(args, false, NULL, NULL, 0);
  free(psql);
  return rc;
}

int tu_pg_isready(tu_pg_t *pg, const char *user, const char *db, const char *password) {
  char *bin = pg_bin(pg, "pg_isready");
  char port[16];
  snprintf(port, sizeof port, "%d", pg->port);
  char *args[12] = {bin, "-q", "-h", "127.0.0.1", "-p", port};
  int n = 6;
  if (user) {
    args[n++] = "-U";
    args[n++] = (char *)user;
  }
  if (db) {
    args[n++] = "-d";
    args[n++] = (char *)db;
  }
  args[n] = NULL;
  char *pw = password ? tsvc_asprintf("PGPASSWORD=%s", password) : NULL;
  char *env[] = {pw, NULL};
  int rc = tu_cmd(args, false, env, NULL, 0);
  free(pw);
  free(bin);
  return rc;
}

int tu_pg_ctl_stop(tu_pg_t *pg, const char *mode) {
  char *bin = pg_bin(pg, "pg_ctl");
  char *args[] = {bin, "stop", "-D", pg->data, "-m", (char *)mode, "-W", NULL};
  char out[1024];
  int rc = tu_cmd(args, true, NULL, out, sizeof out);
  free(bin);
  return rc;
}

void tu_pg_free(tu_pg_t *pg) {
  if (pg->pid > 0) tu_stop_pid(pg->pid, SIGINT); /* fast shutdown */
  pg->pid = -1;
  if (pg->dir) tu_rmtree(pg->dir);
  free(pg->dir);
  free(pg->data);
  free(pg->log);
  pg->dir = pg->data = pg->log = NULL;
}

int tu_pg_session_open(int port, const char *user, const char *db) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint8_t pkt[512];
  size_t n = tsvc_pg_startup_packet(pkt, sizeof pkt, user, db, "tsvc-test-session");
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || n == 0 ||
      send(fd, pkt, n, MSG_NOSIGNAL) != (ssize_t)n) {
    close(fd);
    return -1;
  }
  /* Read until ReadyForQuery. */
  uint8_t buf[8192];
  size_t len = 0, off = 0;
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (;;) {
    ssize_t r = recv(fd, buf + len, sizeof buf - len, 0);
    if (r <= 0) break;
    len += (size_t)r;
    char type;
    const uint8_t *body;
    size_t blen;
    while (tsvc_pg_next_message(buf, len, &off, sizeof buf, &type, &body, &blen) == 1) {
      if (type == 'Z') return fd;
      if (type == 'E') goto fail;
    }
    if (len == sizeof buf) break;
  }
fail:
  close(fd);
  return -1;
}

void tu_pg_session_close(int fd) {
  if (fd < 0) return;
  static const uint8_t terminate[5] = {'X', 0, 0, 0, 4};
  send(fd, terminate, sizeof terminate, MSG_NOSIGNAL);
  close(fd);
}

/* ---- redis -------------------------------------------------------------- */

bool tu_redis_available(char *why, size_t len) {
  if (tu_which("redis-server") && tu_which("redis-cli")) return true;
  if (why) snprintf(why, len, "redis-server/redis-cli not found in PATH (scripts/deps.sh installs them)");
  return false;
}

int tu_redis_start(tu_redis_t *r, const char *const extra[]) {
  return tu_redis_start_port(r, 0, extra);
}

int tu_redis_start_port(tu_redis_t *r, int port_no, const char *const extra[]) {
  memset(r, 0, sizeof *r);
  r->pid = -1;
  r->dir = tu_mkdtemp("tsvc-redis");
  if (!r->dir) return -1;
  r->port = port_no ? port_no : tu_free_port();
  char port[16];
  snprintf(port, sizeof port, "%d", r->port);
  char *logfile = tsvc_asprintf("%s/redis.log", r->dir);
  char *args[40] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--daemonize", "no", "--dir", r->dir,
                    "--logfile", logfile};
  int n = 15;
  for (int i = 0; extra && extra[i] && n < 39; i++) args[n++] = (char *)extra[i];
  args[n] = NULL;
  r->pid = tu_spawn(args, false, NULL);
  free(logfile);
  int64_t end = tsvc_mono_ms() + 10000;
  while (r->pid > 0 && tsvc_mono_ms() < end) {
    if (tu_port_open(r->port)) return 0;
    if (waitpid(r->pid, NULL, WNOHANG) == r->pid) r->pid = -1;
    tu_sleep_ms(20);
  }
  tu_redis_stop(r);
  return -1;
}

int tu_redis_cli(tu_redis_t *r, const char *const args[], char *out, size_t outlen) {
  char port[16];
  snprintf(port, sizeof port, "%d", r->port);
  char *argv[40] = {"redis-cli", "-h", "127.0.0.1", "-p", port};
  int n = 5;
  for (int i = 0; args && args[i] && n < 39; i++) argv[n++] = (char *)args[i];
  argv[n] = NULL;
  int rc = tu_cmd(argv, false, NULL, out, outlen);
  if (out) { /* trim the trailing newline */
    size_t l = strlen(out);
    while (l && (out[l - 1] == '\n' || out[l - 1] == '\r')) out[--l] = '\0';
  }
  return rc;
}

void tu_redis_stop(tu_redis_t *r) {
  if (r->pid > 0) tu_stop_pid(r->pid, SIGTERM);
  r->pid = -1;
  if (r->dir) tu_rmtree(r->dir);
  free(r->dir);
  r->dir = NULL;
}

/* ---- fake peers --------------------------------------------------------- */

/* Wait for fd to be ready for ev, or the stop pipe. 1 ready, 0 stop. */
static int fake_wait(tu_fake_t *f, int fd, short ev) {
  struct pollfd p[2] = {{f->stop[0], POLLIN, 0}, {fd, ev, 0}};
  for (;;) {
    int n = poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || p[0].revents) return 0;
    if (p[1].revents) return 1;
  }
}

/* Read what is there (or the peer's close); returns bytes or <= 0. */
static ssize_t fake_read(tu_fake_t *f, int fd) {
  char buf[4096];
  ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n > 0) {
    f->received += (uint64_t)n;
    size_t c = (size_t)n < sizeof f->req - 1 - f->req_len ? (size_t)n : sizeof f->req - 1 - f->req_len;
    memcpy(f->req + f->req_len, buf, c);
    f->req_len += c;
    f->req[f->req_len] = '\0';
  }
  return n;
}

/* Hold the connection until the peer closes or we are stopped. */
static void fake_hold(tu_fake_t *f, int fd) {
  while (fake_wait(f, fd, POLLIN)) {
    ssize_t n = fake_read(f, fd);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
  }
}

static void fake_send_all(tu_fake_t *f, int fd, const char *d, size_t len) {
  size_t o = 0;
  while (o < len) {
    if (!fake_wait(f, fd, POLLOUT)) return;
    ssize_t n = send(fd, d + o, len - o, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return;
    }
    o += (size_t)n;
    f->sent += (uint64_t)n;
  }
}

static void fake_serve(tu_fake_t *f, int fd) {
  switch (f->mode) {
    case TU_FAKE_CLOSE:
      break;
    case TU_FAKE_RST: {
      struct linger l = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      break;
    }
    case TU_FAKE_HANG:
      fake_hold(f, fd);
      break;
    case TU_FAKE_REPLY:
    case TU_FAKE_REPLY_CLOSE:
      if (fake_wait(f, fd, POLLIN) && fake_read(f, fd) > 0) {
        fake_send_all(f, fd, f->reply, f->reply_len);
        if (f->mode == TU_FAKE_REPLY) fake_hold(f, fd);
      }
      break;
    case TU_FAKE_FLOOD: {
      size_t total = 10u << 20;
      char *chunk = malloc(65536);
      if (!chunk) break;
      memset(chunk, 'a', 65536);
      if (f->reply) memcpy(chunk, f->reply, f->reply_len < 65536 ? f->reply_len : 65536);
      uint64_t before;
      do {
        before = f->sent;
        fake_send_all(f, fd, chunk, 65536);
        if (f->reply) memset(chunk, 'a', f->reply_len < 65536 ? f->reply_len : 65536);
      } while (f->sent - before == 65536 && f->sent < total);
      free(chunk);
      fake_hold(f, fd);
      break;
    }
  }
  close(fd);
}

static void *fake_thread(void *arg) {
  tu_fake_t *f = arg;
  while (fake_wait(f, f->lfd, POLLIN)) {
    int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue;
    __atomic_add_fetch(&f->accepted, 1, __ATOMIC_SEQ_CST);
    fake_serve(f, fd);
  }
  return NULL;
}

int tu_fake_start(tu_fake_t *f, tu_fake_mode_t mode, const void *reply, size_t len) {
  memset(f, 0, sizeof *f);
  f->mode = mode;
  f->reply = reply;
  f->reply_len = len;
  f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (f->lfd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  if (bind(f->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(f->lfd, 16) != 0 ||
      getsockname(f->lfd, (struct sockaddr *)&a, &l) != 0 || pipe2(f->stop, O_CLOEXEC) != 0) {
    close(f->lfd);
    return -1;
  }
  f->port = ntohs(a.sin_port);
  if (pthread_create(&f->thread, NULL, fake_thread, f) != 0) return -1;
  f->running = true;
  return 0;
}

void tu_fake_stop(tu_fake_t *f) {
  if (!f->running) return;
  ssize_t w = write(f->stop[1], "x", 1);
  (void)w;
  pthread_join(f->thread, NULL);
  close(f->stop[0]);
  close(f->stop[1]);
  close(f->lfd);
  f->running = false;
}

/* ---- running probes ----------------------------------------------------- */

static void count_handle(uv_handle_t *h, void *arg) {
  (void)h;
  (*(int *)arg)++;
}

void tu_loop_finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  int n = 0;
  uv_walk(loop, count_handle, &n);
  assert_int_equal(n, 0);
  assert_int_equal(uv_loop_close(loop), 0);
}

void tu_probe_cb(const tsvc_probe_result_t *res, void *data) {
  tu_probe_ctx_t *ctx = data;
  tu_probe_out_t *o = ctx->out;
  o->calls++;
  o->res = *res;
  o->res.output = NULL;
  free(o->output);
  o->output = res->output ? strdup(res->output) : NULL;
  o->elapsed_ms = (double)(uv_hrtime() - ctx->t0) / 1e6;
  int64_t rq = ctx->runq0 > 0 ? tu_runq_ns() : -1;
  o->lag_ms = rq >= ctx->runq0 ? (double)(rq - ctx->runq0) / 1e6 : 0;
  /* One printable line. */
  for (const char *s = res->message; *s; s++) assert_true(*s >= 0x20 && *s <= 0x7e);
}

void tu_probe_run(const tsvc_probe_spec_t *spec, tu_probe_out_t *out) {
  memset(out, 0, sizeof *out);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  int64_t rq = tu_runq_ns();
  tu_probe_ctx_t ctx = {out, uv_hrtime(), rq > 0 ? rq : 0};
  assert_int_equal(tsvc_probe_start(&loop, spec, tu_probe_cb, &ctx, NULL), 0);
  assert_int_equal(out->calls, 0); /* never from inside start */
  tu_loop_finish(&loop);
  assert_int_equal(out->calls, 1);
}

void tu_probe_out_free(tu_probe_out_t *out) {
  free(out->output);
  out->output = NULL;
}

/* ---- held sessions ------------------------------------------------------ */

void tu_session_open(tu_session_t *t, const tsvc_probe_spec_t *spec, tsvc_ms_t full_every) {
  memset(t, 0, sizeof *t);
  assert_int_equal(uv_loop_init(&t->loop), 0);
  assert_int_equal(tsvc_deadlines_init(&t->loop, &t->dls), 0);
  assert_int_equal(tsvc_session_new(&t->loop, spec, full_every, &t->s), 0);
  tsvc_session_set_deadlines(t->s, &t->dls);
}

static void tick_cb(uv_timer_t *h) { (void)h; }

void tu_session_check(tu_session_t *t, tu_probe_out_t *out) {
  memset(out, 0, sizeof *out);
  int64_t rq = tu_runq_ns();
  tu_probe_ctx_t ctx = {out, uv_hrtime(), rq > 0 ? rq : 0};
  assert_int_equal(tsvc_session_check(t->s, tu_probe_cb, &ctx), 0);
  assert_int_equal(out->calls, 0); /* never from inside the call */
  while (out->calls == 0) uv_run(&t->loop, UV_RUN_ONCE);
  assert_int_equal(out->calls, 1);
  /* Let a held connection opened beside the check finish its login, so
     that the next check finds it (bounded: the login has a timeout). Only
     an OK check opens one: after any other verdict a login still going on
     is one past its check's timeout (session.c, login_timeout), which a
     peer that never answers keeps 5 s. */
  if (out->res.result != TSVC_RESULT_OK) return;
  uv_timer_t tick;
  uv_timer_init(&t->loop, &tick);
  uv_timer_start(&tick, tick_cb, 5, 5);
  tsvc_session_info_t si;
  for (int i = 0; i < 2000; i++) {
    tsvc_session_info(t->s, &si);
    if (!si.opening) break;
    uv_run(&t->loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&t->loop, UV_RUN_NOWAIT);
  assert_int_equal(out->calls, 1);
}

void tu_session_info(tu_session_t *t, tsvc_session_info_t *si) { tsvc_session_info(t->s, si); }

void tu_session_close(tu_session_t *t) {
  if (!t->s) return;
  tsvc_session_free(t->s);
  t->s = NULL;
  tsvc_deadlines_close(&t->dls);
  tu_loop_finish(&t->loop);
  tsvc_deadlines_free(&t->dls);
}
