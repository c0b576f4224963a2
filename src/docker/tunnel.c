/* tunnel.c: see tunnel.h. */
#include "docker/tunnel.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "log/log.h"
#include "tsvc.h"

#define POLL_MS 25          /* how often a starting tunnel's socket is tried */
#define EXIT_SETTLE_MS 100  /* ssh's last words may come after its exit */
#define KILL_GRACE_MS 2000  /* SIGTERM, then SIGKILL */
#define ERR_TAIL 1024       /* ssh's stderr kept: the last bytes */

typedef enum { T_IDLE, T_POLL, T_SETTLE, T_RESTART, T_KILL } timer_use_t;

struct tsvc_tunnel_s {
  uv_loop_t *loop;
  tsvc_tunnel_cb cb;
  void *data;
  char dir[PATH_MAX];
  char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char target[400];
  char **argv;               /* the command, NULL-terminated; owned */
  tsvc_tunnel_state_t state;
  uv_process_t proc;
  bool proc_live;            /* spawned, its handle not closed yet */
  bool exited;               /* ... and its exit was seen */
  int64_t exit_status;
  int term_signal;
  uv_pipe_t err;             /* ssh's stderr */
  bool err_live;             /* open (reading or closing) */
  char tail[ERR_TAIL];       /* the last bytes of ssh's stderr */
  size_t tail_len;
  char chunk[512];           /* a read, copied into tail at once */
  char why[768];
  uv_timer_t timer;
  timer_use_t timer_use;
  uint64_t backoff_ms;
  uint64_t started_at, up_at; /* loop times */
  bool closing;
  int handles;               /* open handles: the memory goes with the last */
};

/* ---- helpers ------------------------------------------------------------- */

/* snprintf that may cut (the messages here have bounded parts). */
static void fmt(char *out, size_t len, const char *f, ...) TSVC_PRINTF(3, 4);
static void fmt(char *out, size_t len, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  vsnprintf(out, len, f, ap);
  va_end(ap);
}

static void free_argv(char **v) {
  for (char **a = v; a && *a; a++) free(*a);
  free(v);
}

/* The last non-empty line of ssh's stderr into out ("" when none). */
static void last_line(const tsvc_tunnel_t *t, char *out, size_t len) {
  size_t end = t->tail_len;
  while (end && (t->tail[end - 1] == '\n' || t->tail[end - 1] == '\r' || t->tail[end - 1] == ' '))
    end--;
  size_t start = end;
  while (start && t->tail[start - 1] != '\n' && t->tail[start - 1] != '\r') start--;
  size_t n = end - start;
  if (n >= len) n = len - 1;
  memcpy(out, t->tail + start, n);
  out[n] = '\0';
}

static void set_state(tsvc_tunnel_t *t, tsvc_tunnel_state_t st, const char *msg) {
  t->state = st;
  if (!t->closing && t->cb) t->cb(st, msg, t->data);
}

/* ---- handles --------------------------------------------------------------- */

static void release(tsvc_tunnel_t *t) {
  if (--t->handles > 0) return;
  free_argv(t->argv);
  free(t);
}

static void proc_closed(uv_handle_t *h) {
  tsvc_tunnel_t *t = h->data;
  t->proc_live = false;
  release(t);
}

static void err_closed(uv_handle_t *h) {
  tsvc_tunnel_t *t = h->data;
  t->err_live = false;
  release(t);
}

static void timer_closed(uv_handle_t *h) { release(h->data); }

static void close_err(tsvc_tunnel_t *t) {
  if (t->err_live && !uv_is_closing((uv_handle_t *)&t->err))
    uv_close((uv_handle_t *)&t->err, err_closed);
}

static void timer_cb(uv_timer_t *h);

static void arm(tsvc_tunnel_t *t, timer_use_t use, uint64_t ms, uint64_t repeat) {
  t->timer_use = use;
  uv_timer_start(&t->timer, timer_cb, ms, repeat);
}

/* ---- ssh's life ------------------------------------------------------------- */

static void spawn(tsvc_tunnel_t *t);

/* ssh is gone and its last words are in: the tunnel is down until the next
   start, after the backoff. */
static void settle_exit(tsvc_tunnel_t *t) {
  uv_timer_stop(&t->timer);
  t->timer_use = T_IDLE;
  close_err(t);
  if (t->proc_live && !uv_is_closing((uv_handle_t *)&t->proc))
    uv_close((uv_handle_t *)&t->proc, proc_closed);
  if (t->closing) {
    if (!uv_is_closing((uv_handle_t *)&t->timer))
      uv_close((uv_handle_t *)&t->timer, timer_closed);
    return;
  }
  uint64_t now = uv_now(t->loop);
  if (t->up_at && now - t->up_at >= TSVC_TUNNEL_STABLE_MS) t->backoff_ms = TSVC_TUNNEL_BACKOFF_MS;
  uint64_t delay = t->backoff_ms;
  t->backoff_ms = t->backoff_ms * 2 > TSVC_TUNNEL_MAX_BACKOFF_MS ? TSVC_TUNNEL_MAX_BACKOFF_MS
                                                                 : t->backoff_ms * 2;
  char words[300], how[64], in[32];
  last_line(t, words, sizeof words);
  if (t->term_signal)
    snprintf(how, sizeof how, "was killed by signal %d", t->term_signal);
  else
    snprintf(how, sizeof how, "exited with code %lld", (long long)t->exit_status);
  if (delay < 1000) fmt(in, sizeof in, "%llums", (unsigned long long)delay);
  else fmt(in, sizeof in, "%llus", (unsigned long long)(delay / 1000));
  bool was_up = t->up_at != 0;
  fmt(t->why, sizeof t->why, "the ssh tunnel to %s is down: ssh %s%s%s%s; starting it again in %s",
           t->target, how, words[0] ? " (" : "", words, words[0] ? ")" : "", in);
  t->up_at = 0;
  TSVC_LOG(was_up ? TSVC_LOG_WARN : TSVC_LOG_ERROR, NULL, "%s", t->why);
  arm(t, T_RESTART, delay, 0);
  set_state(t, TSVC_TUNNEL_DOWN, t->why);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
  tsvc_tunnel_t *t = p->data;
  t->exited = true;
  t->exit_status = status;
  t->term_signal = sig;
  if (t->closing) {
    settle_exit(t);
    return;
  }
  /* Its stderr may hold more: wait for its end, a moment at most. */
  if (!t->err_live || uv_is_closing((uv_handle_t *)&t->err)) settle_exit(t);
  else arm(t, T_SETTLE, EXIT_SETTLE_MS, 0);
}

static void err_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  tsvc_tunnel_t *t = h->data;
  buf->base = t->chunk;
  buf->len = sizeof t->chunk;
}

static void err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  tsvc_tunnel_t *t = s->data;
  if (n > 0) {
    size_t k = (size_t)n;
    if (k >= ERR_TAIL) {
      memcpy(t->tail, buf->base + (k - ERR_TAIL), ERR_TAIL);
      t->tail_len = ERR_TAIL;
    } else {
      if (t->tail_len + k > ERR_TAIL) {
        size_t drop = t->tail_len + k - ERR_TAIL;
        memmove(t->tail, t->tail + drop, t->tail_len - drop);
        t->tail_len -= drop;
      }
      memcpy(t->tail + t->tail_len, buf->base, k);
      t->tail_len += k;
    }
    return;
  }
  if (n < 0) {
    close_err(t);
    if (t->exited && t->timer_use == T_SETTLE) settle_exit(t);
  }
}

/* Our socket takes connections: ssh listens, so it logged in. */
static bool socket_answers(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  tsvc_strlcpy(a.sun_path, path, sizeof a.sun_path);
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void timer_cb(uv_timer_t *h) {
  tsvc_tunnel_t *t = h->data;
  switch (t->timer_use) {
  case T_POLL:
    if (t->exited) return;
    if (socket_answers(t->sock)) {
      uv_timer_stop(&t->timer);
      t->timer_use = T_IDLE;
      t->up_at = uv_now(t->loop);
      char msg[512];
      fmt(msg, sizeof msg, "ssh tunnel to %s up%s (pid %d): the engine's socket at %s",
          t->target, t->why[0] ? " again" : "", t->proc.pid, t->sock);
      /* The first time is the normal course; after a failure, news. */
      TSVC_LOG(t->why[0] ? TSVC_LOG_INFO : TSVC_LOG_DEBUG, NULL, "%s", msg);
      t->why[0] = '\0';
      set_state(t, TSVC_TUNNEL_UP, msg);
    } else if (uv_now(t->loop) - t->started_at >= TSVC_TUNNEL_READY_MS) {
      /* Logged in for too long: its exit says the rest. */
      uv_timer_stop(&t->timer);
      t->timer_use = T_IDLE;
      uv_process_kill(&t->proc, SIGTERM);
    }
    break;
  case T_SETTLE:
    settle_exit(t);
    break;
  case T_RESTART:
    t->timer_use = T_IDLE;
    spawn(t);
    break;
  case T_KILL:
    t->timer_use = T_IDLE;
    if (t->proc_live && !t->exited) uv_process_kill(&t->proc, SIGKILL);
    break;
  case T_IDLE:
    break;
  }
}

/* Start ssh; a failure to even start counts as an exit. */
static void spawn(tsvc_tunnel_t *t) {
  if (t->proc_live || t->err_live) {
    /* The last run's handles are still closing: a moment later. */
    arm(t, T_RESTART, 10, 0);
    return;
  }
  t->exited = false;
  t->exit_status = 0;
  t->term_signal = 0;
  t->tail_len = 0;
  unlink(t->sock); /* ssh's StreamLocalBindUnlink does it too */
  uv_pipe_init(t->loop, &t->err, 0);
  t->err.data = t;
  t->err_live = true;
  t->handles++;
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&t->err},
  };
  uv_process_options_t o = {0};
  o.exit_cb = on_exit_cb;
  o.file = t->argv[0];
  o.args = t->argv;
  o.stdio = stdio;
  o.stdio_count = 3;
  /* Its own session: a Ctrl-C at the terminal is for us, not for it. */
  o.flags = UV_PROCESS_DETACHED;
  t->proc.data = t;
  int rc = uv_spawn(t->loop, &t->proc, &o);
  t->proc_live = true;
  t->handles++;
  t->started_at = uv_now(t->loop);
  set_state(t, TSVC_TUNNEL_STARTING, "");
  if (rc) {
    /* uv_spawn fills the handle even when it fails: close it as usual. */
    snprintf(t->tail, sizeof t->tail, "cannot run %s: %s", t->argv[0], uv_strerror(rc));
    t->tail_len = strlen(t->tail);
    t->exited = true;
    t->exit_status = 127;
    settle_exit(t);
    return;
  }
  uv_read_start((uv_stream_t *)&t->err, err_alloc, err_read);
  arm(t, T_POLL, POLL_MS, POLL_MS);
}

/* ---- public -------------------------------------------------------------------- */

static int push(char ***v, size_t *n, const char *s) {
  char **nv = realloc(*v, (*n + 2) * sizeof *nv);
  if (!nv) return TSVC_ENOMEM;
  *v = nv;
  if (!(nv[*n] = tsvc_strdup(s))) return TSVC_ENOMEM;
  nv[++*n] = NULL;
  return 0;
}

static int make_argv(tsvc_tunnel_t *t, const tsvc_tunnel_opts_t *o, const char *ssh,
                     const char *setpriv) {
  char **v = NULL;
  size_t n = 0;
  int rc = 0;
  char port[16], fwd[PATH_MAX + 300];
  snprintf(port, sizeof port, "%d", o->port);
  snprintf(fwd, sizeof fwd, "%s:%s", t->sock, o->remote_socket);
  if (setpriv) {
    /* The kernel ends ssh with the thread that started it. */
    const char *pre[] = {setpriv, "--pdeathsig", "TERM", "--"};
    for (size_t i = 0; !rc && i < TSVC_ARRAY_LEN(pre); i++) rc = push(&v, &n, pre[i]);
  }
  static const char *const fixed[] = {
      "-N", "-T",
      "-o", "BatchMode=yes",            /* never a prompt: a refusal ends it */
      "-o", "ExitOnForwardFailure=yes", /* no socket, no tunnel */
      "-o", "StreamLocalBindUnlink=yes",
      "-o", "ServerAliveInterval=5",    /* a dead network ends it in 15 s */
      "-o", "ServerAliveCountMax=3",
      "-o", "ConnectTimeout=5",
      "-o", "ControlMaster=no",         /* a process of its own, whatever */
      "-o", "ControlPath=none",         /* ~/.ssh/config multiplexes */
  };
  if (!rc) rc = push(&v, &n, ssh);
  for (size_t i = 0; !rc && i < TSVC_ARRAY_LEN(fixed); i++) rc = push(&v, &n, fixed[i]);
  if (!rc && o->config_file) rc = push(&v, &n, "-F") || push(&v, &n, o->config_file);
  if (!rc && o->identity_file) rc = push(&v, &n, "-i") || push(&v, &n, o->identity_file);
  if (!rc && o->port) rc = push(&v, &n, "-p") || push(&v, &n, port);
  if (!rc && o->user && *o->user) rc = push(&v, &n, "-l") || push(&v, &n, o->user);
  if (!rc) rc = push(&v, &n, "-L") || push(&v, &n, fwd) || push(&v, &n, "--") ||
                push(&v, &n, o->host);
  if (rc) {
    free_argv(v);
    return TSVC_ENOMEM;
  }
  t->argv = v;
  return 0;
}

int tsvc_tunnel_new(uv_loop_t *loop, const tsvc_tunnel_opts_t *o, tsvc_tunnel_cb on_state,
                    void *data, tsvc_tunnel_t **out, char *err, size_t errlen) {
  *out = NULL;
  if (err && errlen) err[0] = '\0';
  if (!loop || !o || !o->host || !*o->host || !o->remote_socket) return TSVC_EINVAL;
  char ssh[PATH_MAX], setpriv[PATH_MAX];
  if (!tsvc_find_exec(o->program ? o->program : "ssh", ssh, sizeof ssh)) {
    if (err && errlen)
      snprintf(err, errlen, "ssh://%s: %s is not installed (Debian: apt-get install "
               "openssh-client)", o->host, o->program ? o->program : "ssh");
    return TSVC_EINVAL;
  }
  bool have_setpriv = tsvc_find_exec("setpriv", setpriv, sizeof setpriv);
  tsvc_tunnel_t *t = calloc(1, sizeof *t);
  if (!t) return TSVC_ENOMEM;
  t->loop = loop;
  t->cb = on_state;
  t->data = data;
  t->backoff_ms = TSVC_TUNNEL_BACKOFF_MS;
  char port[16] = "";
  if (o->port) snprintf(port, sizeof port, ":%d", o->port);
  bool v6 = strchr(o->host, ':') != NULL;
  snprintf(t->target, sizeof t->target, "%s%s%s%s%s%s", o->user && *o->user ? o->user : "",
           o->user && *o->user ? "@" : "", v6 && *port ? "[" : "", o->host,
           v6 && *port ? "]" : "", port);
  /* A short private directory: a socket's path has room for 107 bytes. */
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp || strlen(tmp) > 60) tmp = "/tmp";
  snprintf(t->dir, sizeof t->dir, "%s/tsvc-ssh-XXXXXX", tmp);
  if (!mkdtemp(t->dir)) {
    if (err && errlen)
      snprintf(err, errlen, "ssh://%s: cannot make a directory for the tunnel's socket in %s: %s",
               t->target, tmp, strerror(errno));
    free(t);
    return TSVC_EIO;
  }
  fmt(t->sock, sizeof t->sock, "%s/docker.sock", t->dir);
  if (make_argv(t, o, ssh, have_setpriv ? setpriv : NULL)) {
    rmdir(t->dir);
    free(t);
    return TSVC_ENOMEM;
  }
  uv_timer_init(loop, &t->timer);
  t->timer.data = t;
  t->handles = 1;
  /* The first start is told from the loop, as every change. */
  t->state = TSVC_TUNNEL_STARTING;
  arm(t, T_RESTART, 0, 0);
  *out = t;
  return 0;
}

const char *tsvc_tunnel_socket(const tsvc_tunnel_t *t) { return t->sock; }
tsvc_tunnel_state_t tsvc_tunnel_state(const tsvc_tunnel_t *t) { return t->state; }
const char *tsvc_tunnel_why(const tsvc_tunnel_t *t) {
  return t->state == TSVC_TUNNEL_DOWN ? t->why : "";
}
int tsvc_tunnel_pid(const tsvc_tunnel_t *t) {
  return t->proc_live && !t->exited ? t->proc.pid : 0;
}
const char *tsvc_tunnel_target(const tsvc_tunnel_t *t) { return t->target; }

void tsvc_tunnel_free(tsvc_tunnel_t *t) {
  if (!t || t->closing) return;
  t->closing = true;
  t->cb = NULL;
  unlink(t->sock);
  rmdir(t->dir);
  uv_timer_stop(&t->timer);
  t->timer_use = T_IDLE;
  close_err(t);
  if (t->proc_live && !t->exited) {
    /* Reaped by its exit callback, which closes the rest (settle_exit);
       the timer lives until then, for SIGKILL. */
    uv_process_kill(&t->proc, SIGTERM);
    arm(t, T_KILL, KILL_GRACE_MS, 0);
    return;
  }
  if (t->proc_live && !uv_is_closing((uv_handle_t *)&t->proc))
    uv_close((uv_handle_t *)&t->proc, proc_closed);
  uv_close((uv_handle_t *)&t->timer, timer_closed);
}
