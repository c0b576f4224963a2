/* process.c: see process.h. */
#include "runtime/process.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "log/log.h"
#include "probe/probe.h"

extern char **environ;

#define POLL_MS 20         /* a stop looks at the process group this often */
#define KILL_WAIT_MS 2000  /* after SIGKILL, wait this long for the group */
#define TAIL_LEN 512       /* output kept per service for error messages */
#define READ_CHUNK 16384
#define MSG_LEN 1024
#define LINE_LEN 240       /* an error line of a helper (initdb), kept whole up to this */

typedef enum { KIND_COMMAND, KIND_POSTGRES, KIND_REDIS } kind_t;
typedef enum { OP_NONE, OP_START, OP_STOP, OP_RESTART } op_kind_t;
typedef enum {
  PH_BEGIN,   /* deferred to the loop: the call returns before any work */
  PH_TERM,    /* SIGTERM sent to the group; SIGKILL at deadline */
  PH_KILL,    /* SIGKILL sent; give up at deadline */
  PH_INITDB,  /* postgres first start: initdb runs */
  PH_CREATEDB /* ... postgres --single creates the database */
} phase_t;

typedef struct prt_s prt_t;
typedef struct entry_s entry_t;

/* One child process: a service's main process or a helper (initdb). Freed
   in the close callback of its handle. */
typedef struct {
  uv_process_t proc;
  entry_t *e;
  int pid;
} child_t;

/* The read end of one child's stdout+stderr. Freed when closed. */
typedef struct reader_s {
  uv_pipe_t pipe;
  entry_t *e;
  struct reader_s *next;
  char buf[READ_CHUNK];
} reader_t;

/* A service this runtime has been asked about. Lives until the runtime. */
struct entry_s {
  prt_t *rt;
  entry_t *next;
  char *name;
  uv_timer_t timer; /* the operation's steps: deferral, stop polling */
  /* log */
  int logfd;
  uint64_t logsize;
  bool log_warned; /* a failed write was warned about; reset by one that works */
  char tail[TAIL_LEN];
  size_t tail_len;
  /* the first error line of a helper's output (initdb prints its cause
     first, then only "removing contents of data directory") */
  bool scanning;
  char line[LINE_LEN];
  size_t line_len;
  char first_err[LINE_LEN];
  reader_t *readers;
  /* the service's process */
  child_t *server;  /* running main process, or NULL */
  int pgid;         /* its process group (its pid) until seen empty, or 0 */
  bool ever;        /* started at least once */
  int exit_code;    /* of the last main process; -1 when none */
  child_t *helper;  /* initdb / postgres --single in flight, or NULL */
  tsvc_ms_t stop_timeout;
  int stop_sig; /* SIGTERM; SIGINT for postgres (fast shutdown) */
  /* the operation in flight (at most one) */
  op_kind_t op;
  phase_t phase;
  const tsvc_service_conf_t *svc;
  tsvc_rt_done_cb cb;
  void *cbdata;
  uint64_t deadline;
  bool stopping; /* the main process's exit is our doing */
  /* postgres */
  char bindir[PATH_MAX];
  char datadir[PATH_MAX];
  char initdir[PATH_MAX];
  char parent[PATH_MAX]; /* the data directory's parent: the children's cwd */
  char pwfile[PATH_MAX]; /* "" when none */
  bool as_pg;
  uid_t pg_uid;
  gid_t pg_gid;
};

typedef struct inspect_s {
  struct inspect_s *next;
  const tsvc_service_conf_t *svc;
  tsvc_rt_inspect_cb cb;
  void *data;
} inspect_t;

struct prt_s {
  tsvc_runtime_t base;
  const tsvc_config_t *cfg;
  tsvc_process_layout_t lay;
  char logs_dir[PATH_MAX];
  char setpriv[PATH_MAX]; /* "" when not installed */
  size_t log_max;
  entry_t *entries;
  inspect_t *inspects;
  uv_timer_t kick; /* answers inspections from the loop */
  tsvc_rt_event_cb watch_cb;
  void *watch_data;
  unsigned handles; /* open or closing handles; freed at 0 once freeing */
  bool freeing;
};

/* ---- small helpers ------------------------------------------------------ */

static const char *env_get(const tsvc_service_conf_t *svc, const char *key) {
  for (size_t i = 0; i < svc->env_len; i++)
    if (strcmp(svc->env[i].key, key) == 0) return svc->env[i].value;
  return NULL;
}

static bool has_word(const char *s, const char *word, const char *not_word) {
  return s && strstr(s, word) && !(not_word && strstr(s, not_word));
}

static kind_t kind_of(const tsvc_service_conf_t *svc) {
  if (svc->process.command.n > 0) return KIND_COMMAND;
  /* "postgrest" (PostgREST) is an HTTP server, not postgres. */
  if (has_word(svc->name, "postgres", "postgrest") ||
      has_word(svc->image, "postgres", "postgrest"))
    return KIND_POSTGRES;
  if (has_word(svc->name, "redis", NULL) || has_word(svc->image, "redis", NULL))
    return KIND_REDIS;
  return KIND_COMMAND;
}

static int port_of(const tsvc_service_conf_t *svc, kind_t k) {
  /* No container here: the service listens where the host's view points
     (port: "H:C" -> H). */
  if (svc->host_port > 0) return svc->host_port;
  if (svc->port > 0) return svc->port;
  return k == KIND_POSTGRES ? 5432 : k == KIND_REDIS ? 6379 : 0;
}

/* True when something listens on 127.0.0.1:port (or on the wildcard): a
   bind with SO_REUSEADDR, as servers do, fails only against a listener. */
static bool port_in_use(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
  int err = errno;
  close(fd);
  return rc != 0 && err == EADDRINUSE;
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Processes of group pgid that are not zombies. kill(-pgid, 0) answers
   first; /proc is read only when it says the group exists, because
   grandchildren re-parented to an init that does not reap stay as zombies. */
static int group_alive(int pgid) {
  if (pgid <= 0) return 0;
  if (kill(-pgid, 0) != 0 && errno == ESRCH) return 0;
  DIR *d = opendir("/proc");
  if (!d) return 1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!isdigit((unsigned char)de->d_name[0])) continue;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%.32s/stat", de->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) continue;
    buf[len] = '\0';
    /* "pid (comm) S ppid pgrp ...": comm may hold spaces and parens. */
    char *p = strrchr(buf, ')');
    char state;
    int ppid, pgrp;
    if (!p || sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') n++;
  }
  closedir(d);
  return n;
}

static void signal_group(int pgid, int sig) {
  if (pgid > 0) kill(-pgid, sig);
}

/* mkdir with exactly mode (not narrowed by the umask: a root umask of 077
   would lock the postgres user out). 0, or -1 with errno (EEXIST too). */
static int mkdir_mode(const char *path, mode_t mode) {
  if (mkdir(path, mode) != 0) return -1;
  return chmod(path, mode);
}

/* mkdir -p with mode for the missing parts. 0 or -1 (errno set). */
static int mkdir_p(const char *path, mode_t mode) {
  char buf[PATH_MAX];
  if (tsvc_strlcpy(buf, path, sizeof buf) >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir_mode(buf, mode) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir_mode(buf, mode) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(buf, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

/* path with mode, its missing parents with 0755 (the user a service runs
   as must pass through them). 0 or -1 (errno set). */
static int mkdir_private(const char *path, mode_t mode) {
  char parent[PATH_MAX];
  if (tsvc_strlcpy(parent, path, sizeof parent) >= sizeof parent) {
    errno = ENAMETOOLONG;
    return -1;
  }
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = '\0';
    if (mkdir_p(parent, 0755) != 0) return -1;
  }
  return mkdir_p(path, mode);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf path (a directory of ours). */
static int rmtree(const char *path) {
  if (access(path, F_OK) != 0) return 0;
  return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Whether dir exists (1), is missing (0), or is not empty (2). */
static int dir_state(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : 2;
  int st = 1;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) st = 2;
  closedir(d);
  return st;
}

/* An executable: name itself when it holds a slash, else found in PATH. */
static bool find_exec(const char *name, char *out, size_t len) {
  if (strchr(name, '/')) {
    tsvc_strlcpy(out, name, len);
    return access(name, X_OK) == 0;
  }
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
  for (const char *s = path; *s;) {
    const char *e = strchr(s, ':');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n > 0) {
      snprintf(out, len, "%.*s/%s", (int)n, s, name);
      if (access(out, X_OK) == 0) return true;
    }
    if (!e) break;
    s = e + 1;
  }
  return false;
}

/* The postgres bin directory: of version want ("15") when installed, else
   the newest under /usr/lib/postgresql, else where PATH has initdb. */
static bool find_pg_bindir(const char *want, char *out, size_t len) {
  glob_t g;
  long best = -1;
  out[0] = '\0';
  if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) {
      const char *v = g.gl_pathv[i] + strlen("/usr/lib/postgresql/");
      char *end;
      long n = strtol(v, &end, 10);
      if (end == v || *end != '/') continue;
      char dir[PATH_MAX];
      snprintf(dir, sizeof dir, "%.*s", (int)(end - g.gl_pathv[i]) + 4, g.gl_pathv[i]);
      char initdb[PATH_MAX + 8];
      snprintf(initdb, sizeof initdb, "%s/initdb", dir);
      if (access(initdb, X_OK) != 0) continue;
      bool exact = want && strlen(want) == (size_t)(end - v) && strncmp(v, want, (size_t)(end - v)) == 0;
      if (exact) n = LONG_MAX;
      if (n > best) {
        best = n;
        tsvc_strlcpy(out, dir, len);
      }
    }
    globfree(&g);
  }
  if (out[0]) return true;
  char path[PATH_MAX];
  if (!find_exec("initdb", path, sizeof path)) return false;
  char *slash = strrchr(path, '/');
  *slash = '\0';
  tsvc_strlcpy(out, path, len);
  return true;
}

/* True when user uid/gid (no supplementary groups) can traverse every
   directory on the way to path; else the first that stops it in bad. */
static bool can_reach(const char *path, uid_t uid, gid_t gid, char *bad, size_t len) {
  char buf[PATH_MAX];
  tsvc_strlcpy(buf, path, sizeof buf);
  for (char *p = buf + 1;; p++) {
    bool end = *p == '\0';
    if (*p == '/' || end) {
      char c = *p;
      *p = '\0';
      struct stat st;
      if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) {
        mode_t need = st.st_uid == uid ? S_IXUSR : st.st_gid == gid ? S_IXGRP : S_IXOTH;
        if (!(st.st_mode & need)) {
          tsvc_strlcpy(bad, buf, len);
          return false;
        }
      }
      *p = c;
    }
    if (end) break;
  }
  return true;
}

/* A string quoted for redis.conf. */
static void conf_quote(tsvc_buf_t *b, const char *s) {
  tsvc_buf_add(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') tsvc_buf_addf(b, "\\%c", *p);
    else if (*p == '\n') tsvc_buf_add(b, "\\n", 2);
    else if (*p < 0x20 || *p == 0x7f) tsvc_buf_addf(b, "\\x%02x", *p);
    else tsvc_buf_add(b, p, 1);
  }
  tsvc_buf_add(b, "\"", 1);
}

/* Write text to path, mode 0600 (any older file is replaced). */
static int write_private(const char *path, const char *text, uid_t uid, gid_t gid, bool chown_it) {
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  size_t n = strlen(text);
  bool ok = write(fd, text, n) == (ssize_t)n;
  if (chown_it && fchown(fd, uid, gid) != 0) ok = false;
  if (close(fd) != 0) ok = false;
  if (!ok) unlink(path);
  return ok ? 0 : -1;
}

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static bool key_is(const char *kv, const char *key) {
  size_t n = strlen(key);
  return strncmp(kv, key, n) == 0 && kv[n] == '=';
}

/* The environment of a command service: ours, plus `environment`, plus
   process.env; a later definition of a key wins. NULL on out of memory. */
static char **build_env(const tsvc_service_conf_t *svc) {
  size_t n = 0;
  while (environ[n]) n++;
  size_t extra = svc->env_len + svc->process.env_len;
  char **env = calloc(n + extra + 1, sizeof *env);
  if (!env) return NULL;
  const tsvc_kv_t *kv[2] = {svc->env, svc->process.env};
  size_t kvn[2] = {svc->env_len, svc->process.env_len};
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    bool over = false;
    for (int l = 0; l < 2 && !over; l++)
      for (size_t j = 0; j < kvn[l] && !over; j++) over = key_is(environ[i], kv[l][j].key);
    if (over) continue;
    if (!(env[k++] = strdup(environ[i]))) goto nomem;
  }
  for (int l = 0; l < 2; l++) {
    for (size_t j = 0; j < kvn[l]; j++) {
      /* Skip a key defined again later. */
      bool later = false;
      for (int l2 = l; l2 < 2 && !later; l2++)
        for (size_t j2 = l2 == l ? j + 1 : 0; j2 < kvn[l2] && !later; j2++)
          later = strcmp(kv[l][j].key, kv[l2][j2].key) == 0;
      if (later) continue;
      if (!(env[k++] = tsvc_asprintf("%s=%s", kv[l][j].key, kv[l][j].value ? kv[l][j].value : "")))
        goto nomem;
    }
  }
  return env;
nomem:
  free_strv(env);
  return NULL;
}

/* ---- handles and lifetime ------------------------------------------------ */

static void rt_release(prt_t *rt);

static void handle_done(prt_t *rt) {
  rt->handles--;
  if (rt->freeing && rt->handles == 0) rt_release(rt);
}

static void timer_closed(uv_handle_t *h) { handle_done(h->data); }

static void entry_timer_closed(uv_handle_t *h) {
  entry_t *e = h->data;
  handle_done(e->rt);
}

static void child_closed(uv_handle_t *h) {
  child_t *c = h->data;
  prt_t *rt = c->e->rt;
  free(c);
  handle_done(rt);
}

static void reader_closed(uv_handle_t *h) {
  reader_t *r = h->data;
  prt_t *rt = r->e->rt;
  free(r);
  handle_done(rt);
}

/* ---- logs ----------------------------------------------------------------- */

static void log_path(entry_t *e, char *buf, size_t len, const char *suffix) {
  snprintf(buf, len, "%s/%s.log%s", e->rt->logs_dir, e->name, suffix);
}

/* The service's output could not be written (err: an errno): say so in the
   monitor's log, once until a write works again. The output is dropped
   meanwhile; the service is not disturbed. */
static void log_failed(entry_t *e, int err) {
  if (e->log_warned) return;
  e->log_warned = true;
  char path[PATH_MAX + 16];
  log_path(e, path, sizeof path, "");
  TSVC_LOG(TSVC_LOG_WARN, e->name,
           "cannot write the output of %s to %s: %s; its output is dropped until a write "
           "succeeds (warned once)",
           e->name, path, strerror(err));
}

static int log_open_file(entry_t *e, const char *path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) log_failed(e, errno);
  return fd;
}

static void log_rotate(entry_t *e) {
  char cur[PATH_MAX + 16], old[PATH_MAX + 16];
  log_path(e, cur, sizeof cur, "");
  log_path(e, old, sizeof old, ".1");
  if (e->logfd >= 0) close(e->logfd);
  rename(cur, old);
  e->logfd = log_open_file(e, cur);
  e->logsize = 0;
}

/* Open the log when it is not; a file already past the limit is rotated. */
static void log_open(entry_t *e) {
  if (e->logfd >= 0) return;
  char path[PATH_MAX + 16];
  log_path(e, path, sizeof path, "");
  e->logfd = log_open_file(e, path);
  if (e->logfd < 0) return;
  struct stat st;
  e->logsize = fstat(e->logfd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
  if (e->logsize >= e->rt->log_max) log_rotate(e);
}

static void log_put(entry_t *e, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(e->logfd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { /* a full disk: the output is dropped */
      log_failed(e, w < 0 ? errno : EIO);
      return;
    }
    p += w;
    n -= (size_t)w;
    e->logsize += (uint64_t)w;
    e->log_warned = false;
  }
}

/* Append to the log; past the limit, rotate, at the end of a line when the
   part that still fits has one. */
static void log_write(entry_t *e, const char *p, size_t n) {
  log_open(e);
  if (e->logfd < 0) return;
  if (e->logsize > 0 && e->logsize + n > e->rt->log_max) {
    size_t room = e->rt->log_max > e->logsize ? (size_t)(e->rt->log_max - e->logsize) : 0;
    size_t head = room;
    while (head > 0 && p[head - 1] != '\n') head--;
    log_put(e, p, head);
    p += head;
    n -= head;
    log_rotate(e);
    if (e->logfd < 0) return;
  }
  log_put(e, p, n);
}

/* Keep the last TAIL_LEN bytes of output, for error messages. */
static void tail_add(entry_t *e, const char *p, size_t n) {
  if (n >= TAIL_LEN) {
    memcpy(e->tail, p + n - TAIL_LEN, TAIL_LEN);
    e->tail_len = TAIL_LEN;
    return;
  }
  if (e->tail_len + n > TAIL_LEN) {
    size_t drop = e->tail_len + n - TAIL_LEN;
    memmove(e->tail, e->tail + drop, e->tail_len - drop);
    e->tail_len -= drop;
  }
  memcpy(e->tail + e->tail_len, p, n);
  e->tail_len += n;
}

/* The last non-empty line of the output, printable. */
static void tail_line(entry_t *e, char *out, size_t len) {
  size_t end = e->tail_len;
  while (end > 0 && isspace((unsigned char)e->tail[end - 1])) end--;
  size_t start = end;
  while (start > 0 && e->tail[start - 1] != '\n') start--;
  size_t n = end - start < len - 1 ? end - start : len - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)e->tail[start + i];
    out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
  }
  out[n] = '\0';
}

/* Where a line says what went wrong, or NULL: a backend's "FATAL:  ...",
   "PANIC:  ...", "ERROR:  ..." (from there on: what comes before is a
   progress message and a time stamp, as in "running bootstrap script ...
   2026-12-01 14:14:44.254 UTC [2619] FATAL:  could not write ..."), or
   initdb's own "initdb: error: ..." (the whole line). */
static const char *error_in(const char *s) {
  static const char *const marks[] = {"FATAL:", "PANIC:", "ERROR:"};
  for (size_t i = 0; i < TSVC_ARRAY_LEN(marks); i++) {
    const char *p = strstr(s, marks[i]);
    if (p) return p;
  }
  return strstr(s, "error:") ? s : NULL;
}

/* The line gathered so far is complete: keep it when it is the first error
   line. Control characters become spaces. */
static void scan_line_end(entry_t *e) {
  e->line[e->line_len] = '\0';
  const char *p = e->first_err[0] ? NULL : error_in(e->line);
  if (p) {
    size_t n = 0;
    for (; *p; p++) {
      unsigned char c = (unsigned char)*p;
      e->first_err[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    e->first_err[n] = '\0';
  }
  e->line_len = 0;
}

/* Look for the first error line in a helper's output (lines longer than
   LINE_LEN are cut). */
static void scan_output(entry_t *e, const char *p, size_t n) {
  if (!e->scanning || e->first_err[0]) return;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n') scan_line_end(e);
    else if (e->line_len < LINE_LEN - 1) e->line[e->line_len++] = p[i];
  }
}

static void scan_begin(entry_t *e) {
  e->scanning = true;
  e->line_len = 0;
  e->first_err[0] = '\0';
}

/* What to say about a helper that failed: its first error line, else the
   last line it printed. */
static void scan_end(entry_t *e, char *out, size_t len) {
  if (e->scanning && e->line_len > 0) scan_line_end(e); /* no final newline */
  e->scanning = false;
  if (e->first_err[0]) tsvc_strlcpy(out, e->first_err, len);
  else tail_line(e, out, len);
}

/* A line of ours in the service's log. */
static void log_note(entry_t *e, const char *fmt, ...) TSVC_PRINTF(2, 3);
static void log_note(entry_t *e, const char *fmt, ...) {
  char line[600], ts[40];
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  int n = snprintf(line, sizeof line, "[tanuki-svc %s.%03ldZ] ", ts, now.tv_nsec / 1000000);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t l = strlen(line);
  line[l++] = '\n';
  log_write(e, line, l);
}

static void reader_close(reader_t *r) {
  entry_t *e = r->e;
  for (reader_t **pp = &e->readers; *pp; pp = &(*pp)->next) {
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  }
  uv_close((uv_handle_t *)&r->pipe, reader_closed);
}

static void reader_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  reader_t *r = h->data;
  (void)suggested;
  buf->base = r->buf;
  buf->len = sizeof r->buf;
}

static void reader_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  reader_t *r = s->data;
  if (n > 0) {
    log_write(r->e, buf->base, (size_t)n);
    tail_add(r->e, buf->base, (size_t)n);
    scan_output(r->e, buf->base, (size_t)n);
    return;
  }
  if (n < 0) reader_close(r); /* EOF: every writer is gone */
}

/* Read what is in the pipe now, without waiting (a helper exited, or the
   runtime is going away). */
static void reader_drain(reader_t *r) {
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&r->pipe, &fd) != 0) return;
  for (;;) {
    ssize_t n = read(fd, r->buf, sizeof r->buf);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) {
      log_write(r->e, r->buf, (size_t)n);
      tail_add(r->e, r->buf, (size_t)n);
      scan_output(r->e, r->buf, (size_t)n);
      continue;
    }
    if (n == 0) reader_close(r);
    return;
  }
}

static void drain_all(entry_t *e) {
  reader_t *r = e->readers;
  while (r) {
    reader_t *next = r->next; /* r may close */
    reader_drain(r);
    r = next;
  }
}

/* ---- spawning ------------------------------------------------------------- */

static void child_exit(uv_process_t *p, int64_t status, int sig);

typedef struct {
  const char *const *argv; /* argv[0] is a path */
  char **env;              /* NULL: ours */
  const char *cwd;         /* NULL: ours */
  bool as_pg;
  int stdin_fd;            /* -1: /dev/null */
} spawn_t;

/* Spawn a child of e in its own session, output to e's log. 0, or a libuv
   error with a message in err. */
static int spawn_child(entry_t *e, const spawn_t *sp, child_t **out, char *err, size_t errlen) {
  prt_t *rt = e->rt;
  size_t argc = 0;
  while (sp->argv[argc]) argc++;
  const char **args = calloc(argc + 5, sizeof *args);
  child_t *c = calloc(1, sizeof *c);
  reader_t *r = calloc(1, sizeof *r);
  if (!args || !c || !r) {
    free(args);
    free(c);
    free(r);
    snprintf(err, errlen, "out of memory");
    return UV_ENOMEM;
  }
  size_t k = 0;
  if (rt->setpriv[0]) {
    /* The kernel kills the child when the loop's thread dies. */
    args[k++] = rt->setpriv;
    args[k++] = "--pdeathsig";
    args[k++] = "KILL";
    args[k++] = "--";
  }
  for (size_t i = 0; i < argc; i++) args[k++] = sp->argv[i];
  args[k] = NULL;

  uv_file fds[2];
  int rc = uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
  if (rc != 0) {
    free(args);
    free(c);
    free(r);
    snprintf(err, errlen, "cannot create a pipe: %s", uv_strerror(rc));
    return rc;
  }
  uv_stdio_container_t stdio[3];
  stdio[0].flags = sp->stdin_fd >= 0 ? UV_INHERIT_FD : UV_IGNORE;
  stdio[0].data.fd = sp->stdin_fd;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = fds[1];
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = fds[1];
  uv_process_options_t o = {0};
  o.exit_cb = child_exit;
  o.file = args[0];
  o.args = (char **)args;
  o.env = sp->env;
  o.cwd = sp->cwd;
  o.stdio = stdio;
  o.stdio_count = 3;
  o.flags = UV_PROCESS_DETACHED;
  if (sp->as_pg) {
    o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
    o.uid = e->pg_uid;
    o.gid = e->pg_gid;
  }
  c->e = e;
  c->proc.data = c;
  rt->handles++;
  rc = uv_spawn(rt->base.loop, &c->proc, &o);
  free(args);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    free(r);
    uv_close((uv_handle_t *)&c->proc, child_closed);
    snprintf(err, errlen, "cannot run %s: %s", sp->argv[0], uv_strerror(rc));
    return rc;
  }
  c->pid = c->proc.pid;
  uv_unref((uv_handle_t *)&c->proc);
  r->e = e;
  r->pipe.data = r;
  uv_pipe_init(rt->base.loop, &r->pipe, 0);
  uv_unref((uv_handle_t *)&r->pipe);
  rt->handles++;
  r->next = e->readers;
  e->readers = r;
  if (uv_pipe_open(&r->pipe, fds[0]) != 0 ||
      uv_read_start((uv_stream_t *)&r->pipe, reader_alloc, reader_read) != 0) {
    /* The child runs on; its output is lost. */
    reader_close(r);
  }
  *out = c;
  return 0;
}

/* ---- events and operations ------------------------------------------------ */

static void emit(entry_t *e, tsvc_rt_event_type_t type, const char *msg) {
  prt_t *rt = e->rt;
  if (rt->watch_cb && !rt->freeing) rt->watch_cb(type, e->name, msg, rt->watch_data);
}

static void drop_pwfile(entry_t *e) {
  if (e->pwfile[0]) unlink(e->pwfile);
  e->pwfile[0] = '\0';
}

/* End the operation in flight; its callback is called last, so that it may
   start the next one. */
static void op_finish(entry_t *e, int status, const char *msg) {
  tsvc_rt_done_cb cb = e->cb;
  void *data = e->cbdata;
  if (status) log_note(e, "%s failed: %s", e->op == OP_STOP ? "stop" : "start", msg);
  e->op = OP_NONE;
  e->phase = PH_BEGIN;
  e->svc = NULL;
  e->cb = NULL;
  e->cbdata = NULL;
  e->stopping = false;
  uv_timer_stop(&e->timer);
  drop_pwfile(e);
  if (cb) cb(status, msg, data);
}

static void op_fail(entry_t *e, const char *fmt, ...) TSVC_PRINTF(2, 3);
static void op_fail(entry_t *e, const char *fmt, ...) {
  char msg[MSG_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  op_finish(e, TSVC_ERUNTIME, msg);
}

/* The main process is spawned: the start is done. */
static void server_spawned(entry_t *e, child_t *c) {
  e->server = c;
  e->pgid = c->pid;
  e->ever = true;
  e->exit_code = -1;
  log_note(e, "started %s (pid %d)", e->name, c->pid);
  emit(e, TSVC_RT_EV_STARTED, "started");
  op_finish(e, 0, NULL);
}

static void spawn_server(entry_t *e, const spawn_t *sp) {
  char err[MSG_LEN];
  child_t *c;
  if (spawn_child(e, sp, &c, err, sizeof err) != 0) {
    op_fail(e, "%s", err);
    return;
  }
  server_spawned(e, c);
}

static void start_command(entry_t *e) {
  const tsvc_service_conf_t *svc = e->svc;
  const tsvc_strv_t *cmd = &svc->process.command;
  char path[PATH_MAX];
  if (!cmd->v || cmd->n == 0 || !cmd->v[0]) {
    op_fail(e, "no process.command for %s", e->name);
    return;
  }
  const char *wd = svc->process.workdir;
  struct stat st;
  if (wd && *wd) {
    int rc = stat(wd, &st);
    if (rc != 0 || !S_ISDIR(st.st_mode)) {
      op_fail(e, "process.workdir %s: %s", wd, rc != 0 ? strerror(errno) : "not a directory");
      return;
    }
  }
  bool found;
  if (wd && *wd && cmd->v[0][0] != '/' && strchr(cmd->v[0], '/')) {
    /* "./bin/server": relative to the workdir the child starts in. */
    snprintf(path, sizeof path, "%s/%s", wd, cmd->v[0]);
    found = access(path, X_OK) == 0;
    tsvc_strlcpy(path, cmd->v[0], sizeof path);
  } else {
    found = find_exec(cmd->v[0], path, sizeof path);
  }
  if (!found) {
    op_fail(e, "cannot run %s: not found or not executable", cmd->v[0]);
    return;
  }
  const char **argv = calloc(cmd->n + 1, sizeof *argv);
  char **env = build_env(svc);
  if (!argv || !env) {
    free(argv);
    free_strv(env);
    op_finish(e, TSVC_ENOMEM, "out of memory");
    return;
  }
  argv[0] = path;
  for (size_t i = 1; i < cmd->n; i++) argv[i] = cmd->v[i];
  spawn_t sp = {.argv = argv, .env = env, .cwd = wd && *wd ? wd : NULL, .stdin_fd = -1};
  spawn_server(e, &sp);
  free(argv);
  free_strv(env);
}

/* The data directory of e's service, and its parent created (each missing
   part mode 0755, so that the user a service runs as can pass); *old: it
   is an older version's (may be NULL). 0, or -1 after op_fail. */
static int data_dir_of(entry_t *e, char *dir, size_t len, bool *old_out) {
  prt_t *rt = e->rt;
  bool old = false;
  if (tsvc_process_data_dir(&rt->lay, e->svc, dir, len, &old) != 0) {
    op_fail(e, "the data directory of %s is too long a path", e->name);
    return -1;
  }
  if (old_out) *old_out = old;
  if (old) log_note(e, "using %s, made by an older version (data beside the config)", dir);
  char parent[PATH_MAX];
  tsvc_strlcpy(parent, dir, sizeof parent);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = '\0';
    if (mkdir_p(parent, 0755) != 0) {
      op_fail(e, "cannot create %s: %s", parent, strerror(errno));
      return -1;
    }
  }
  return 0;
}

/* The value after flag in argv, or NULL. */
static const char *arg_after(const tsvc_strv_t *v, const char *flag) {
  for (size_t i = 0; i + 1 < v->n; i++)
    if (strcmp(v->v[i], flag) == 0) return v->v[i + 1];
  return NULL;
}

/* The password redis must require: REDIS_PASSWORD, else the one the probe
   authenticates with (a healthcheck's `redis-cli -a`), else the
   --requirepass of the service's (container) command. NULL: none. */
static const char *redis_password(const tsvc_service_conf_t *svc) {
  const char *pw = env_get(svc, "REDIS_PASSWORD");
  if (pw && *pw) return pw;
  tsvc_probe_spec_t spec;
  tsvc_probe_resolve(svc, &spec);
  if (spec.kind == TSVC_PROBE_REDIS && spec.password && *spec.password) return spec.password;
  pw = arg_after(&svc->command, "--requirepass");
  return pw && *pw ? pw : NULL;
}

static void start_redis(entry_t *e, int port) {
  char exe[PATH_MAX], dir[PATH_MAX], conf[PATH_MAX + 16];
  if (!find_exec("redis-server", exe, sizeof exe)) {
    op_fail(e, "redis-server not found in PATH (install redis-server)");
    return;
  }
  if (data_dir_of(e, dir, sizeof dir, NULL) != 0) return;
  snprintf(conf, sizeof conf, "%s/redis.conf", dir);
  if (mkdir_private(dir, 0700) != 0) {
    op_fail(e, "cannot create %s: %s", dir, strerror(errno));
    return;
  }
  tsvc_buf_t b;
  tsvc_buf_init(&b, 64 * 1024);
  tsvc_buf_addf(&b, "# Written by tanuki-svc at every start: edits are lost.\n"
                    "bind 127.0.0.1\nport %d\ndaemonize no\nappendonly yes\ndir ", port);
  conf_quote(&b, dir);
  tsvc_buf_add(&b, "\n", 1);
  const char *pw = redis_password(e->svc);
  if (pw) {
    tsvc_buf_add(&b, "requirepass ", 12);
    conf_quote(&b, pw);
    tsvc_buf_add(&b, "\n", 1);
  } else {
    log_note(e, "no password set (REDIS_PASSWORD): any local user can use this redis");
  }
  int rc = b.data ? write_private(conf, b.data, 0, 0, false) : -1;
  tsvc_buf_free(&b);
  if (rc != 0) {
    op_fail(e, "cannot write %s: %s", conf, strerror(errno));
    return;
  }
  const char *argv[] = {exe, conf, NULL};
  spawn_t sp = {.argv = argv, .cwd = dir, .stdin_fd = -1};
  spawn_server(e, &sp);
}

/* ---- postgres --------------------------------------------------------------- */

static const char *pg_user(const tsvc_service_conf_t *svc) {
  const char *u = env_get(svc, "POSTGRES_USER");
  return u && *u ? u : "postgres";
}

static const char *pg_db(const tsvc_service_conf_t *svc) {
  const char *d = env_get(svc, "POSTGRES_DB");
  return d && *d ? d : pg_user(svc);
}

static void pg_spawn_server(entry_t *e) {
  prt_t *rt = e->rt;
  char exe[PATH_MAX + 16], portbuf[16], sockdir[PATH_MAX + 64];
  snprintf(exe, sizeof exe, "%s/postgres", e->bindir);
  snprintf(portbuf, sizeof portbuf, "%d", port_of(e->svc, KIND_POSTGRES));
  snprintf(sockdir, sizeof sockdir, "unix_socket_directories=%s", rt->lay.run_dir);
  const char *argv[] = {exe, "-D", e->datadir, "-p", portbuf, "-c", "listen_addresses=127.0.0.1",
                        "-c", sockdir, NULL};
  spawn_t sp = {.argv = argv, .cwd = e->parent, .as_pg = e->as_pg, .stdin_fd = -1};
  spawn_server(e, &sp);
}

static void pg_spawn_helper(entry_t *e, const spawn_t *sp, phase_t phase) {
  char err[MSG_LEN];
  child_t *c;
  scan_begin(e);
  if (spawn_child(e, sp, &c, err, sizeof err) != 0) {
    e->scanning = false;
    op_fail(e, "%s", err);
    return;
  }
  e->helper = c;
  e->phase = phase;
}

/* initdb and the database are done: move the data into place and start. */
static void pg_init_done(entry_t *e) {
  if (rename(e->initdir, e->datadir) != 0) {
    op_fail(e, "cannot rename %s to %s: %s", e->initdir, e->datadir, strerror(errno));
    return;
  }
  log_note(e, "initialised %s", e->datadir);
  pg_spawn_server(e);
}

static void pg_createdb(entry_t *e) {
  const char *db = pg_db(e->svc);
  if (strcmp(db, "postgres") == 0) {
    pg_init_done(e);
    return;
  }
  /* CREATE DATABASE in single-user mode, fed on stdin; exit_on_error makes
     a failure an exit code. The SQL fits in a pipe's buffer. */
  tsvc_buf_t sql;
  tsvc_buf_init(&sql, 4096);
  tsvc_buf_add(&sql, "CREATE DATABASE \"", 17);
  for (const char *p = db; *p; p++) {
    if (*p == '"') tsvc_buf_add(&sql, "\"\"", 2); /* a quoted identifier */
    else tsvc_buf_add(&sql, p, 1);
  }
  tsvc_buf_add(&sql, "\";\n", 3);
  uv_file fds[2];
  if (!sql.data || uv_pipe(fds, 0, 0) != 0) {
    tsvc_buf_free(&sql);
    op_fail(e, "cannot create a pipe for postgres --single");
    return;
  }
  bool ok = write(fds[1], sql.data, sql.len) == (ssize_t)sql.len;
  close(fds[1]);
  tsvc_buf_free(&sql);
  if (!ok) {
    close(fds[0]);
    op_fail(e, "cannot write to postgres --single");
    return;
  }
  char exe[PATH_MAX + 16];
  snprintf(exe, sizeof exe, "%s/postgres", e->bindir);
  const char *argv[] = {exe, "--single", "-D", e->initdir, "-c", "exit_on_error=on",
                        "postgres", NULL};
  spawn_t sp = {.argv = argv, .cwd = e->parent, .as_pg = e->as_pg, .stdin_fd = fds[0]};
  log_note(e, "creating database %s", db);
  pg_spawn_helper(e, &sp, PH_CREATEDB);
  close(fds[0]);
}

static void helper_exited(entry_t *e, int code) {
  char line[LINE_LEN];
  drain_all(e); /* its last words, for the message */
  scan_end(e, line, sizeof line);
  phase_t ph = e->phase;
  e->phase = PH_BEGIN;
  if (ph == PH_INITDB) {
    drop_pwfile(e);
    if (code != 0) op_fail(e, "initdb failed (exit code %d): %s", code, line);
    else pg_createdb(e);
  } else if (ph == PH_CREATEDB) {
    if (code != 0)
      op_fail(e, "creating database %s failed (exit code %d): %s", pg_db(e->svc), code, line);
    else pg_init_done(e);
  }
}

/* The socket directory: mode 0700, owned by the user postgres runs as, so
   that no other local user reaches the unix socket (made afresh at each
   start: /run is emptied at boot). 0, or -1 after op_fail. */
static int pg_run_dir(entry_t *e) {
  const char *dir = e->rt->lay.run_dir;
  if (mkdir_private(dir, 0700) != 0) {
    op_fail(e, "cannot create %s: %s", dir, strerror(errno));
    return -1;
  }
  if ((e->as_pg && chown(dir, e->pg_uid, e->pg_gid) != 0) || chmod(dir, 0700) != 0) {
    op_fail(e, "cannot make %s private to the postgres user: %s", dir, strerror(errno));
    return -1;
  }
  if (strlen(dir) + sizeof "/.s.PGSQL.65535.lock" > sizeof(((struct sockaddr_un *)0)->sun_path)) {
    op_fail(e, "the socket directory %s is too long for a unix socket path", dir);
    return -1;
  }
  return 0;
}

static void start_postgres(entry_t *e) {
  prt_t *rt = e->rt;
  const tsvc_service_conf_t *svc = e->svc;
  e->as_pg = false;
  if (geteuid() == 0) {
    /* postgres refuses to run as root. */
    struct passwd *pw = getpwnam("postgres");
    if (!pw) {
      op_fail(e, "running as root and there is no `postgres` user to run postgres as");
      return;
    }
    e->as_pg = true;
    e->pg_uid = pw->pw_uid;
    e->pg_gid = pw->pw_gid;
  } else {
    e->pg_uid = getuid();
    e->pg_gid = getgid();
  }
  bool old = false;
  if (data_dir_of(e, e->datadir, sizeof e->datadir, &old) != 0) return;
  if (strlen(e->datadir) + sizeof ".init" > sizeof e->initdir) {
    op_fail(e, "the data directory %s is too long a path", e->datadir);
    return;
  }
  snprintf(e->initdir, sizeof e->initdir, "%s.init", e->datadir);
  tsvc_strlcpy(e->parent, e->datadir, sizeof e->parent);
  *strrchr(e->parent, '/') = '\0';
  if (!e->parent[0]) tsvc_strlcpy(e->parent, "/", sizeof e->parent);

  /* The version of an existing data directory picks the binaries. */
  char version[16] = "", path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/PG_VERSION", e->datadir);
  FILE *f = fopen(path, "re");
  if (f) {
    if (!fgets(version, sizeof version, f)) version[0] = '\0';
    version[strcspn(version, "\r\n")] = '\0';
    fclose(f);
  }
  if (!find_pg_bindir(version[0] ? version : NULL, e->bindir, sizeof e->bindir)) {
    op_fail(e, "no postgres server binaries found (/usr/lib/postgresql/*/bin or initdb in PATH)");
    return;
  }
  if (pg_run_dir(e) != 0) return;
  char bad[PATH_MAX];
  if (e->as_pg && !can_reach(rt->lay.run_dir, e->pg_uid, e->pg_gid, bad, sizeof bad)) {
    op_fail(e, "the postgres user cannot enter %s (mode lacks x for it), on the way to its "
            "socket directory %s", bad, rt->lay.run_dir);
    return;
  }
  if (e->as_pg && !can_reach(e->parent, e->pg_uid, e->pg_gid, bad, sizeof bad)) {
    if (old)
      op_fail(e, "the postgres user cannot enter %s (mode lacks x for it), on the way to the "
              "data directory %s made by an older version; move it to %s/%s (looked at first) "
              "or set services.%s.process.data_dir",
              bad, e->datadir, rt->lay.data_root, e->name, e->name);
    else
      op_fail(e, "the postgres user cannot enter %s (mode lacks x for it), on the way to the "
              "data directory %s; set services.%s.process.data_dir elsewhere",
              bad, e->datadir, e->name);
    return;
  }
  if (version[0]) {
    pg_spawn_server(e);
    return;
  }

  /* First start. */
  int st = dir_state(e->datadir);
  if (st == 2) {
    op_fail(e, "%s exists but holds no postgres data (no PG_VERSION)", e->datadir);
    return;
  }
  if (st == 1 && rmdir(e->datadir) != 0) {
    op_fail(e, "cannot remove the empty %s: %s", e->datadir, strerror(errno));
    return;
  }
  if (rmtree(e->initdir) != 0 || mkdir(e->initdir, 0700) != 0 ||
      (e->as_pg && chown(e->initdir, e->pg_uid, e->pg_gid) != 0)) {
    op_fail(e, "cannot prepare %s: %s", e->initdir, strerror(errno));
    return;
  }
  const char *pw = env_get(svc, "POSTGRES_PASSWORD");
  bool have_pw = pw && *pw;
  char pwopt[PATH_MAX + 16] = "";
  if (have_pw) {
    /* In the private socket directory: nobody else can read it while
       initdb runs, and /run is memory. */
    snprintf(e->pwfile, sizeof e->pwfile, "%.3500s/%.255s.pwfile", rt->lay.run_dir, e->name);
    char *text = tsvc_asprintf("%s\n", pw);
    int rc = text ? write_private(e->pwfile, text, e->pg_uid, e->pg_gid, e->as_pg) : -1;
    free(text);
    if (rc != 0) {
      e->pwfile[0] = '\0';
      op_fail(e, "cannot write the password file: %s", strerror(errno));
      return;
    }
    snprintf(pwopt, sizeof pwopt, "--pwfile=%s", e->pwfile);
  } else {
    log_note(e, "no POSTGRES_PASSWORD: any local user can connect as %s (trust)", pg_user(svc));
  }
  char exe[PATH_MAX + 16], user[256];
  snprintf(exe, sizeof exe, "%s/initdb", e->bindir);
  snprintf(user, sizeof user, "--username=%s", pg_user(svc));
  /* Both kinds of connection need the password (trust when none is set).
     The socket is also out of other users' reach (pg_run_dir), which covers
     data directories made when the socket trusted. */
  const char *auth = have_pw ? "scram-sha-256" : "trust";
  char auth_local[64], auth_host[64];
  snprintf(auth_local, sizeof auth_local, "--auth-local=%s", auth);
  snprintf(auth_host, sizeof auth_host, "--auth-host=%s", auth);
  const char *argv[] = {exe, "-D", e->initdir, user, auth_local, auth_host,
                        "--encoding=UTF8", "--locale=C", pwopt[0] ? pwopt : NULL, NULL};
  spawn_t sp = {.argv = argv, .cwd = e->parent, .as_pg = e->as_pg, .stdin_fd = -1};
  log_note(e, "initdb %s (user %s)", e->initdir, pg_user(svc));
  pg_spawn_helper(e, &sp, PH_INITDB);
}

/* ---- start / stop steps --------------------------------------------------- */

static void start_spawn(entry_t *e) {
  kind_t k = kind_of(e->svc);
  int port = port_of(e->svc, k);
  if (port > 0 && port_in_use(port)) {
    op_fail(e, "port %d on 127.0.0.1 is already in use", port);
    return;
  }
  e->tail_len = 0;
  log_open(e); /* rotated here when past the limit */
  switch (k) {
  case KIND_POSTGRES: start_postgres(e); break;
  case KIND_REDIS: start_redis(e, port); break;
  case KIND_COMMAND: start_command(e); break;
  }
}

/* Nothing of the service runs any more. */
static void stopped(entry_t *e) {
  uv_timer_stop(&e->timer);
  e->pgid = 0;
  e->stopping = false;
  if (e->op == OP_STOP) {
    log_note(e, "stopped");
    op_finish(e, 0, NULL);
  } else {
    e->phase = PH_BEGIN;
    start_spawn(e);
  }
}

static void entry_timer_cb(uv_timer_t *t);

static void stop_begin(entry_t *e) {
  if (!e->server && !group_alive(e->pgid)) {
    stopped(e);
    return;
  }
  e->stopping = true;
  log_note(e, "stopping: %s to process group %d", e->stop_sig == SIGINT ? "SIGINT" : "SIGTERM",
           e->pgid);
  signal_group(e->pgid, e->stop_sig);
  /* A stopped (SIGSTOP) process sees SIGTERM only once continued. */
  signal_group(e->pgid, SIGCONT);
  e->phase = PH_TERM;
  e->deadline = uv_now(e->rt->base.loop) + (uint64_t)(e->stop_timeout > 0 ? e->stop_timeout : 0);
  uv_timer_start(&e->timer, entry_timer_cb, POLL_MS, POLL_MS);
}

static void stop_poll(entry_t *e) {
  if (!e->server && !group_alive(e->pgid)) {
    stopped(e);
    return;
  }
  uint64_t now = uv_now(e->rt->base.loop);
  if (now < e->deadline) return;
  if (e->phase == PH_TERM) {
    log_note(e, "still running after %lld ms: SIGKILL to process group %d",
             (long long)e->stop_timeout, e->pgid);
    signal_group(e->pgid, SIGKILL);
    e->phase = PH_KILL;
    e->deadline = now + KILL_WAIT_MS;
  } else {
    op_fail(e, "process group %d still has processes %d ms after SIGKILL", e->pgid, KILL_WAIT_MS);
  }
}

static void entry_timer_cb(uv_timer_t *t) {
  entry_t *e = t->data;
  switch (e->phase) {
  case PH_BEGIN:
    if (e->op == OP_START && e->server) op_finish(e, 0, NULL); /* already running */
    else stop_begin(e); /* a start clears what is left of an old group first */
    break;
  case PH_TERM:
  case PH_KILL:
    stop_poll(e);
    break;
  case PH_INITDB:
  case PH_CREATEDB:
    break;
  }
}

static void child_exit(uv_process_t *p, int64_t status, int sig) {
  child_t *c = p->data;
  entry_t *e = c->e;
  int code = sig ? 128 + sig : (int)status;
  char msg[64];
  if (sig) snprintf(msg, sizeof msg, "killed by signal %d", sig);
  else snprintf(msg, sizeof msg, "exited (code %d)", (int)status);
  uv_close((uv_handle_t *)p, child_closed);
  if (c == e->helper) {
    e->helper = NULL;
    helper_exited(e, code);
  } else if (c == e->server) {
    e->server = NULL;
    e->exit_code = code;
    log_note(e, "pid %d %s", c->pid, msg);
    if (e->stopping) stop_poll(e);
    else emit(e, TSVC_RT_EV_DIED, msg);
  }
}

/* ---- the runtime's operations -------------------------------------------- */

static entry_t *entry_get(prt_t *rt, const char *name) {
  for (entry_t *e = rt->entries; e; e = e->next)
    if (strcmp(e->name, name) == 0) return e;
  entry_t *e = calloc(1, sizeof *e);
  if (!e || !(e->name = strdup(name))) {
    free(e);
    return NULL;
  }
  e->rt = rt;
  e->logfd = -1;
  e->exit_code = -1;
  e->stop_sig = SIGTERM;
  uv_timer_init(rt->base.loop, &e->timer);
  uv_unref((uv_handle_t *)&e->timer);
  e->timer.data = e;
  rt->handles++;
  e->next = rt->entries;
  rt->entries = e;
  return e;
}

static int op_begin(tsvc_runtime_t *base, const tsvc_service_conf_t *svc, op_kind_t op,
                    tsvc_rt_done_cb cb, void *data) {
  prt_t *rt = (prt_t *)base;
  if (!svc || !svc->name || !cb) return TSVC_EINVAL;
  if (rt->freeing) return TSVC_ECANCELED;
  entry_t *e = entry_get(rt, svc->name);
  if (!e) return TSVC_ENOMEM;
  if (e->op != OP_NONE) return TSVC_EBUSY;
  e->op = op;
  e->phase = PH_BEGIN;
  e->svc = svc;
  e->cb = cb;
  e->cbdata = data;
  e->stop_timeout = svc->restart.stop_timeout;
  /* SIGTERM is postgres's "smart" shutdown, which waits for every client to
     disconnect; SIGINT is its fast one (docker's postgres image stops with
     SIGINT too). */
  e->stop_sig = kind_of(svc) == KIND_POSTGRES ? SIGINT : SIGTERM;
  /* Never call back from inside the call: go on from the loop. */
  uv_timer_start(&e->timer, entry_timer_cb, 0, 0);
  return 0;
}

static int rt_start(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                    void *data) {
  return op_begin(rt, svc, OP_START, cb, data);
}

static int rt_stop(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                   void *data) {
  return op_begin(rt, svc, OP_STOP, cb, data);
}

static int rt_restart(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                      void *data) {
  return op_begin(rt, svc, OP_RESTART, cb, data);
}

static void kick_cb(uv_timer_t *t) {
  prt_t *rt = t->data;
  /* Answer in the order asked; answers may ask again (a new list). */
  inspect_t *list = NULL;
  while (rt->inspects) {
    inspect_t *q = rt->inspects;
    rt->inspects = q->next;
    q->next = list;
    list = q;
  }
  while (list) {
    inspect_t *q = list;
    list = q->next;
    tsvc_rt_info_t info = {.exit_code = -1};
    entry_t *e = NULL;
    for (entry_t *x = rt->entries; x; x = x->next)
      if (strcmp(x->name, q->svc->name) == 0) e = x;
    if (e) {
      info.exists = e->ever;
      info.running = e->server != NULL;
      info.pid = e->server ? e->server->pid : 0;
      info.exit_code = e->server ? -1 : e->exit_code;
    }
    tsvc_strlcpy(info.name, q->svc->name, sizeof info.name);
    tsvc_strlcpy(info.host, "127.0.0.1", sizeof info.host);
    tsvc_rt_inspect_cb cb = q->cb;
    void *data = q->data;
    free(q);
    cb(0, NULL, &info, data);
  }
}

static int rt_inspect(tsvc_runtime_t *base, const tsvc_service_conf_t *svc,
                      tsvc_rt_inspect_cb cb, void *data) {
  prt_t *rt = (prt_t *)base;
  if (!svc || !svc->name || !cb) return TSVC_EINVAL;
  if (rt->freeing) return TSVC_ECANCELED;
  inspect_t *q = calloc(1, sizeof *q);
  if (!q) return TSVC_ENOMEM;
  q->svc = svc;
  q->cb = cb;
  q->data = data;
  q->next = rt->inspects;
  rt->inspects = q;
  uv_timer_start(&rt->kick, kick_cb, 0, 0);
  return 0;
}

static int rt_watch(tsvc_runtime_t *base, tsvc_rt_event_cb cb, void *data) {
  prt_t *rt = (prt_t *)base;
  rt->watch_cb = cb;
  rt->watch_data = data;
  return 0;
}

static void rt_probe_host(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, char *buf,
                          size_t len) {
  (void)rt;
  (void)svc;
  tsvc_strlcpy(buf, "127.0.0.1", len);
}

/* ---- free ---------------------------------------------------------------- */

static void rt_release(prt_t *rt) {
  /* What we still owe an answer is told now, from the loop (the last close
     callback), never inside rt_free (runtime.h). */
  static const char closed[] = "the runtime was closed";
  while (rt->inspects) {
    inspect_t *q = rt->inspects;
    rt->inspects = q->next;
    tsvc_rt_inspect_cb cb = q->cb;
    void *data = q->data;
    free(q);
    cb(TSVC_ECANCELED, closed, &(tsvc_rt_info_t){.exit_code = -1}, data);
  }
  for (entry_t *e = rt->entries; e; e = e->next) {
    tsvc_rt_done_cb cb = e->cb;
    void *data = e->cbdata;
    e->cb = NULL;
    e->cbdata = NULL;
    if (cb) cb(TSVC_ECANCELED, closed, data);
  }
  while (rt->entries) {
    entry_t *e = rt->entries;
    rt->entries = e->next;
    if (e->logfd >= 0) close(e->logfd);
    free(e->name);
    free(e);
  }
  free(rt);
}

/* Reap a child that is still ours (libuv will not, once its handle is
   closed). True when it is gone. */
static bool reap(child_t *c) {
  if (!c) return true;
  int st;
  pid_t r = waitpid(c->pid, &st, WNOHANG);
  return r == c->pid || (r < 0 && errno == ECHILD);
}

/* Whether anything of e is left (its direct children are reaped here). */
static bool entry_left(entry_t *e) {
  bool s = reap(e->server), h = reap(e->helper);
  return !s || !h || group_alive(e->pgid) || (e->helper && group_alive(e->helper->pid));
}

static void signal_entry(entry_t *e, int sig) {
  signal_group(e->pgid, sig);
  if (e->helper) signal_group(e->helper->pid, sig);
}

static void rt_free(tsvc_runtime_t *base) {
  prt_t *rt = (prt_t *)base;
  rt->freeing = true;
  rt->watch_cb = NULL;
  /* New operations are refused from here; those in flight end now, and are
     answered (TSVC_ECANCELED) once the handles are closed (rt_release). */
  uv_timer_stop(&rt->kick);
  for (entry_t *e = rt->entries; e; e = e->next) {
    if (e->op == OP_NONE) e->cb = NULL;
    e->op = OP_NONE;
  }
  /* Stop every service still running, all at once, each with its own
     stop_timeout before SIGKILL, then KILL_WAIT_MS at most. */
  uint64_t now = mono_ms();
  for (entry_t *e = rt->entries; e; e = e->next) {
    e->phase = PH_BEGIN; /* used below: PH_TERM, PH_KILL, or done */
    if (!e->server && !e->helper && !group_alive(e->pgid)) continue;
    log_note(e, "monitor exiting: stopping process group %d", e->pgid);
    signal_group(e->pgid, e->stop_sig);
    if (e->helper) signal_group(e->helper->pid, SIGTERM);
    signal_entry(e, SIGCONT);
    e->phase = PH_TERM;
    e->deadline = now + (uint64_t)(e->stop_timeout > 0 ? e->stop_timeout : 0);
  }
  for (;;) {
    bool waiting = false;
    now = mono_ms();
    for (entry_t *e = rt->entries; e; e = e->next) {
      if (e->phase != PH_TERM && e->phase != PH_KILL) continue;
      if (!entry_left(e)) {
        e->phase = PH_BEGIN;
        continue;
      }
      if (now >= e->deadline) {
        if (e->phase == PH_KILL) { /* give up on it */
          e->phase = PH_BEGIN;
          continue;
        }
        log_note(e, "still running after %lld ms: SIGKILL to process group %d",
                 (long long)e->stop_timeout, e->pgid);
        signal_entry(e, SIGKILL);
        e->phase = PH_KILL;
        e->deadline = now + KILL_WAIT_MS;
      }
      waiting = true;
    }
    if (!waiting) break;
    sleep_ms(10);
  }
  /* Close everything; memory goes with the last close callback. */
  for (entry_t *e = rt->entries; e; e = e->next) {
    drain_all(e);
    while (e->readers) reader_close(e->readers);
    if (e->server) {
      log_note(e, "pid %d stopped with the monitor", e->server->pid);
      uv_close((uv_handle_t *)&e->server->proc, child_closed);
      e->server = NULL;
    }
    if (e->helper) {
      uv_close((uv_handle_t *)&e->helper->proc, child_closed);
      e->helper = NULL;
    }
    drop_pwfile(e);
    uv_close((uv_handle_t *)&e->timer, entry_timer_closed);
  }
  uv_close((uv_handle_t *)&rt->kick, timer_closed);
}

/* A reload: the config to read from now on (the old one may be freed once
   the operations begun with it have ended). */
static void rt_reconfigure(tsvc_runtime_t *base, const tsvc_config_t *cfg) {
  ((prt_t *)base)->cfg = cfg;
}

static const tsvc_runtime_ops_t process_ops = {
    .name = "process",
    .start = rt_start,
    .stop = rt_stop,
    .restart = rt_restart,
    .inspect = rt_inspect,
    .exec = NULL,
    .exec_cancel = NULL,
    .watch = rt_watch,
    .probe_host = rt_probe_host,
    .free = rt_free,
    .reconfigure = rt_reconfigure,
};

/* ---- where the files are ------------------------------------------------- */

/* path made absolute against the working directory, without trailing
   slashes, into out (PATH_MAX). 0 or -1 with why in err. */
static int absolute(const char *path, char *out, char *err, size_t errlen) {
  char buf[PATH_MAX];
  if (path[0] == '/') {
    if (tsvc_strlcpy(buf, path, sizeof buf) >= sizeof buf) goto long_path;
  } else {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
      snprintf(err, errlen, "cannot get the working directory: %s", strerror(errno));
      return -1;
    }
    if (snprintf(buf, sizeof buf, "%s/%s", cwd, path) >= (int)sizeof buf) goto long_path;
  }
  size_t n = strlen(buf);
  while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
  /* Room for "/<service>.init" and the like below it. */
  if (n > PATH_MAX - 512) goto long_path;
  memcpy(out, buf, n + 1);
  return 0;
long_path:
  snprintf(err, errlen, "the path %.200s... is too long", path);
  return -1;
}

int tsvc_process_layout_init(tsvc_process_layout_t *l, const char *config_path,
                             const char *state_dir, bool privileged, char *err, size_t errlen) {
  memset(l, 0, sizeof *l);
  if (!config_path || !*config_path || !state_dir || !*state_dir) {
    snprintf(err, errlen, "no config path or state directory");
    return TSVC_EINVAL;
  }
  char config_abs[PATH_MAX];
  if (absolute(config_path, config_abs, err, errlen) != 0 ||
      absolute(state_dir, l->state_dir, err, errlen) != 0)
    return TSVC_EINVAL;
  tsvc_strlcpy(l->config_dir, config_abs, sizeof l->config_dir);
  char *slash = strrchr(l->config_dir, '/');
  slash[slash == l->config_dir ? 1 : 0] = '\0';
  if (!privileged) {
    snprintf(l->data_root, sizeof l->data_root, "%.3500s/data", l->state_dir);
    snprintf(l->run_dir, sizeof l->run_dir, "%.3500s/run", l->state_dir);
    return 0;
  }
  char id[TSVC_PROJECT_ID_MAX];
  int rc = tsvc_project_id(config_abs, id, sizeof id);
  if (rc) {
    snprintf(err, errlen, "no project id for %s", config_abs);
    return rc;
  }
  snprintf(l->data_root, sizeof l->data_root, "%s/%s", TSVC_PROCESS_DATA_BASE, id);
  snprintf(l->run_dir, sizeof l->run_dir, "%s/%s", TSVC_PROCESS_RUN_BASE, id);
  snprintf(l->old_data_root, sizeof l->old_data_root, "%.3500s/data", l->state_dir);
  return 0;
}

bool tsvc_process_has_data(const tsvc_service_conf_t *svc) {
  return svc && kind_of(svc) != KIND_COMMAND;
}

int tsvc_process_data_dir(const tsvc_process_layout_t *l, const tsvc_service_conf_t *svc,
                          char *buf, size_t len, bool *old) {
  if (old) *old = false;
  if (!tsvc_process_has_data(svc) || !svc->name) return TSVC_EINVAL;
  const char *set = svc->process.data_dir;
  int n;
  if (set && *set) {
    n = set[0] == '/' ? snprintf(buf, len, "%s", set)
                      : snprintf(buf, len, "%s%s%s", l->config_dir,
                                 strcmp(l->config_dir, "/") ? "/" : "", set);
    if (n < 0 || (size_t)n >= len) return TSVC_EINVAL;
    /* No trailing slash: "<dir>.init" is made beside it. */
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    return 0;
  }
  n = snprintf(buf, len, "%s/%s", l->data_root, svc->name);
  if (n < 0 || (size_t)n >= len) return TSVC_EINVAL;
  if (l->old_data_root[0] && dir_state(buf) != 2) {
    char prev[PATH_MAX];
    n = snprintf(prev, sizeof prev, "%s/%s", l->old_data_root, svc->name);
    if (n > 0 && (size_t)n < sizeof prev && (size_t)n < len && dir_state(prev) == 2) {
      memcpy(buf, prev, (size_t)n + 1);
      if (old) *old = true;
    }
  }
  return 0;
}

/* ---- construction --------------------------------------------------------- */

int tsvc_process_runtime_new(uv_loop_t *loop, const tsvc_config_t *cfg,
                             const tsvc_process_layout_t *layout, tsvc_runtime_t **out,
                             char *err, size_t errlen) {
  *out = NULL;
  if (!loop || !layout || layout->state_dir[0] != '/') {
    snprintf(err, errlen, "no state directory");
    return TSVC_EINVAL;
  }
  prt_t *rt = calloc(1, sizeof *rt);
  if (!rt) {
    snprintf(err, errlen, "out of memory");
    return TSVC_ENOMEM;
  }
  rt->base.ops = &process_ops;
  rt->base.loop = loop;
  rt->cfg = cfg;
  rt->log_max = TSVC_PROCESS_LOG_MAX;
  rt->lay = *layout;
  snprintf(rt->logs_dir, sizeof rt->logs_dir, "%.4000s/logs", rt->lay.state_dir);
  const char *dirs[] = {rt->lay.state_dir, rt->logs_dir};
  for (size_t i = 0; i < TSVC_ARRAY_LEN(dirs); i++) {
    if (mkdir_p(dirs[i], 0755) != 0) {
      snprintf(err, errlen, "cannot create %s: %s", dirs[i], strerror(errno));
      free(rt);
      return TSVC_EIO;
    }
  }
  if (!find_exec("setpriv", rt->setpriv, sizeof rt->setpriv)) rt->setpriv[0] = '\0';
  uv_timer_init(loop, &rt->kick);
  uv_unref((uv_handle_t *)&rt->kick);
  rt->kick.data = rt;
  rt->handles++;
  *out = &rt->base;
  return 0;
}

void tsvc_process_runtime_set_log_max(tsvc_runtime_t *base, size_t bytes) {
  prt_t *rt = (prt_t *)base;
  rt->log_max = bytes > 0 ? bytes : TSVC_PROCESS_LOG_MAX;
}
