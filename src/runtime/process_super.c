/* process_super.c: the supervisor of the process runtime (process_int.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/process_int.h"

/* True when something listens on 127.0.0.1:port (or on the wildcard): a
   bind with SO_REUSEADDR, as servers do, fails only against a listener. */
bool tsvc__proc_port_in_use(int port) {
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

void tsvc__argv_init(tsvc__argv_t *a) {
  a->n = 0;
  a->used = 0;
  a->full = false;
  a->v[0] = NULL;
}

void tsvc__argv_add(tsvc__argv_t *a, const char *s) {
  if (a->n >= TSVC_PROC_ARGV_MAX) {
    a->full = true;
    return;
  }
  a->v[a->n++] = s;
  a->v[a->n] = NULL;
}

void tsvc__argv_addf(tsvc__argv_t *a, const char *fmt, ...) {
  size_t room = sizeof a->store - a->used;
  char *s = a->store + a->used;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(s, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room) {
    a->full = true;
    return;
  }
  a->used += (size_t)n + 1;
  tsvc__argv_add(a, s);
}

/* Processes of group pgid that are not zombies. kill(-pgid, 0) answers
   first; /proc is read only when it says the group exists, because
   grandchildren re-parented to an init that does not reap stay as zombies. */
int tsvc__proc_group_alive(int pgid) {
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

void tsvc__proc_signal_group(int pgid, int sig) {
  if (pgid > 0) kill(-pgid, sig);
}

void tsvc__proc_child_closed(uv_handle_t *h) {
  child_t *c = h->data;
  prt_t *rt = c->e->rt;
  free(c);
  tsvc__proc_handle_done(rt);
}

static void child_exit(uv_process_t *p, int64_t status, int sig);

/* Spawn a child of e in its own session, output to e's log. 0, or a libuv
   error with a message in err. */
static int spawn_child(entry_t *e, const spawn_t *sp, child_t **out, char *err, size_t errlen) {
  prt_t *rt = e->rt;
  size_t argc = 0;
  while (sp->argv[argc]) argc++;
  const char **args = calloc(argc + 5, sizeof *args);
  child_t *c = calloc(1, sizeof *c);
  if (!args || !c) {
    free(args);
    free(c);
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
    o.uid = e->pg.uid;
    o.gid = e->pg.gid;
  }
  c->e = e;
  c->proc.data = c;
  rt->handles++;
  rc = uv_spawn(rt->base.loop, &c->proc, &o);
  free(args);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    uv_close((uv_handle_t *)&c->proc, tsvc__proc_child_closed);
    snprintf(err, errlen, "cannot run %s: %s", sp->argv[0], uv_strerror(rc));
    return rc;
  }
  c->pid = c->proc.pid;
  uv_unref((uv_handle_t *)&c->proc);
  tsvc__proc_capture(e, fds[0]);
  *out = c;
  return 0;
}

static void emit(entry_t *e, tsvc_rt_event_type_t type, const char *msg) {
  prt_t *rt = e->rt;
  if (rt->watch_cb && !rt->freeing) rt->watch_cb(type, e->name, msg, rt->watch_data);
}

/* End the operation in flight; its callback is called last, so that it may
   start the next one. */
void tsvc__proc_finish(entry_t *e, int status, const char *msg) {
  tsvc_rt_done_cb cb = e->cb;
  void *data = e->cbdata;
  if (status) tsvc__plog_note(&e->log, "%s failed: %s", e->op == OP_STOP ? "stop" : "start", msg);
  e->op = OP_NONE;
  e->phase = PH_BEGIN;
  e->svc = NULL;
  e->cb = NULL;
  e->cbdata = NULL;
  e->stopping = false;
  uv_timer_stop(&e->timer);
  tsvc__pg_drop_pwfile(e);
  if (cb) cb(status, msg, data);
}

void tsvc__proc_fail(entry_t *e, const char *fmt, ...) {
  char msg[TSVC_PROC_MSG_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tsvc__proc_finish(e, TSVC_ERUNTIME, msg);
}

/* The main process is spawned: the start is done. */
static void server_spawned(entry_t *e, child_t *c) {
  e->server = c;
  e->pgid = c->pid;
  e->ever = true;
  e->exit_code = -1;
  tsvc__plog_note(&e->log, "started %s (pid %d)", e->name, c->pid);
  emit(e, TSVC_RT_EV_STARTED, "started");
  tsvc__proc_finish(e, 0, NULL);
}

void tsvc__proc_spawn_server(entry_t *e, const spawn_t *sp) {
  char err[TSVC_PROC_MSG_LEN];
  child_t *c;
  if (spawn_child(e, sp, &c, err, sizeof err) != 0) {
    tsvc__proc_fail(e, "%s", err);
    return;
  }
  server_spawned(e, c);
}

void tsvc__proc_spawn_helper(entry_t *e, const spawn_t *sp, helper_done_fn done) {
  char err[TSVC_PROC_MSG_LEN];
  child_t *c;
  tsvc__plog_scan_begin(&e->log);
  if (spawn_child(e, sp, &c, err, sizeof err) != 0) {
    e->log.scanning = false;
    tsvc__proc_fail(e, "%s", err);
    return;
  }
  e->helper = c;
  e->helper_pgid = c->pid;
  e->helper_done = done;
  e->phase = PH_HELPER;
}

/* A helper exited: its recipe goes on. */
static void helper_exited(entry_t *e, int code) {
  char line[TSVC_PROC_LINE_LEN];
  tsvc__proc_drain(e); /* its last words, for the message */
  tsvc__plog_scan_end(&e->log, line, sizeof line);
  helper_done_fn done = e->helper_done;
  e->helper_done = NULL;
  e->helper_pgid = 0; /* its group is not looked at again: the id may be reused */
  e->phase = PH_BEGIN;
  done(e, code, line);
}

static void start_spawn(entry_t *e) {
  kind_t k = tsvc__proc_kind(e->svc);
  int port = tsvc__proc_port(e->svc, k);
  if (port > 0 && tsvc__proc_port_in_use(port)) {
    tsvc__proc_fail(e, "port %d on 127.0.0.1 is already in use", port);
    return;
  }
  tsvc__plog_tail_reset(&e->log);
  tsvc__plog_open(&e->log); /* rotated here when past the limit */
  switch (k) {
  case KIND_POSTGRES: tsvc__pg_start(e); break;
  case KIND_REDIS: tsvc__redis_start(e, port); break;
  case KIND_COMMAND: tsvc__command_start(e); break;
  }
}

/* Nothing of the service runs any more. */
static void stopped(entry_t *e) {
  uv_timer_stop(&e->timer);
  e->pgid = 0;
  e->stopping = false;
  if (e->op == OP_STOP) {
    tsvc__plog_note(&e->log, "stopped");
    tsvc__proc_finish(e, 0, NULL);
  } else {
    e->phase = PH_BEGIN;
    start_spawn(e);
  }
}

static void stop_begin(entry_t *e) {
  if (!e->server && !tsvc__proc_group_alive(e->pgid)) {
    stopped(e);
    return;
  }
  e->stopping = true;
  tsvc__plog_note(&e->log, "stopping: %s to process group %d",
                  e->stop_sig == SIGINT ? "SIGINT" : "SIGTERM", e->pgid);
  tsvc__proc_signal_group(e->pgid, e->stop_sig);
  /* A stopped (SIGSTOP) process sees SIGTERM only once continued. */
  tsvc__proc_signal_group(e->pgid, SIGCONT);
  e->phase = PH_TERM;
  e->deadline = uv_now(e->rt->base.loop) + (uint64_t)(e->stop_timeout > 0 ? e->stop_timeout : 0);
  uv_timer_start(&e->timer, tsvc__proc_timer_cb, TSVC_PROC_POLL_MS, TSVC_PROC_POLL_MS);
}

static void signal_entry(const entry_t *e, int sig);

/* A stop's deadlines, for a stop and for the shutdown alike: at the first
   (stop_timeout after the stop signal), SIGKILL to what is left; at the
   second, TSVC_PROC_KILL_WAIT_MS later, false: give up. True meanwhile. */
static bool stop_deadlines(entry_t *e) {
  uint64_t now = uv_now(e->rt->base.loop);
  if (now < e->deadline) return true;
  if (e->phase != PH_TERM) return false;
  tsvc__plog_note(&e->log, "still running after %lld ms: SIGKILL to process group %d",
                  (long long)e->stop_timeout, e->pgid);
  signal_entry(e, SIGKILL);
  e->phase = PH_KILL;
  e->deadline = now + TSVC_PROC_KILL_WAIT_MS;
  return true;
}

static void stop_poll(entry_t *e) {
  if (!e->server && !tsvc__proc_group_alive(e->pgid)) {
    stopped(e);
    return;
  }
  if (!stop_deadlines(e))
    tsvc__proc_fail(e, "process group %d still has processes %d ms after SIGKILL", e->pgid,
                    TSVC_PROC_KILL_WAIT_MS);
}

static void shutdown_poll(entry_t *e);

void tsvc__proc_timer_cb(uv_timer_t *t) {
  entry_t *e = t->data;
  if (e->rt->freeing) {
    shutdown_poll(e);
    return;
  }
  switch (e->phase) {
  case PH_BEGIN:
    if (e->op == OP_START && e->server) tsvc__proc_finish(e, 0, NULL); /* already running */
    else stop_begin(e); /* a start clears what is left of an old group first */
    break;
  case PH_TERM:
  case PH_KILL:
    stop_poll(e);
    break;
  case PH_HELPER:
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
  uv_close((uv_handle_t *)p, tsvc__proc_child_closed);
  if (e->rt->freeing) { /* the runtime is going away: no operation goes on */
    if (c == e->server) {
      e->server = NULL;
      e->exit_code = code;
      tsvc__plog_note(&e->log, "pid %d %s", c->pid, msg);
    }
    if (c == e->helper) e->helper = NULL;
    shutdown_poll(e);
  } else if (c == e->helper) {
    e->helper = NULL;
    helper_exited(e, code);
  } else if (c == e->server) {
    e->server = NULL;
    e->exit_code = code;
    tsvc__plog_note(&e->log, "pid %d %s", c->pid, msg);
    if (e->stopping) stop_poll(e);
    else emit(e, TSVC_RT_EV_DIED, msg);
  }
}

/* ---- shutdown ---------------------------------------------------------------
   free() stops every service still running, all at once, and returns: each
   group gets its stop signal (and SIGCONT) at once, SIGKILL after its own
   stop_timeout, and is given up TSVC_PROC_KILL_WAIT_MS later. The deadlines
   are kept by the entries' timers, referenced from here on so that the loop
   runs until the last group is gone; exits arrive through the exit
   callback. Nothing sleeps on the loop. */

/* Whether anything of e is left: its main process or helper not yet
   reaped (libuv reaps them), or a process of their groups. */
static bool entry_left(const entry_t *e) {
  return e->server || e->helper || tsvc__proc_group_alive(e->pgid) ||
         tsvc__proc_group_alive(e->helper_pgid);
}

/* The service's group, and its helper's while one runs (a stop never
   begins while a start is in flight: only the shutdown meets one). */
static void signal_entry(const entry_t *e, int sig) {
  tsvc__proc_signal_group(e->pgid, sig);
  tsvc__proc_signal_group(e->helper_pgid, sig);
}

static void entry_timer_closed(uv_handle_t *h) {
  entry_t *e = h->data;
  tsvc__proc_handle_done(e->rt);
}

/* Close e's handles: its output is read to the end first; a process that
   outlived the deadlines is left as it is (no longer ours). */
static void shutdown_close(entry_t *e) {
  if (e->closed) return;
  e->closed = true;
  tsvc__proc_drain(e);
  tsvc__proc_capture_close(e);
  if (e->server) {
    tsvc__plog_note(&e->log, "pid %d left running: it outlived SIGKILL by %d ms", e->server->pid,
                    TSVC_PROC_KILL_WAIT_MS);
    uv_close((uv_handle_t *)&e->server->proc, tsvc__proc_child_closed);
    e->server = NULL;
  }
  if (e->helper) {
    uv_close((uv_handle_t *)&e->helper->proc, tsvc__proc_child_closed);
    e->helper = NULL;
  }
  tsvc__pg_drop_pwfile(e);
  uv_close((uv_handle_t *)&e->timer, entry_timer_closed);
}

/* A step of e's shutdown: on each tick of its timer and each exit. */
static void shutdown_poll(entry_t *e) {
  if (e->closed) return;
  if (!entry_left(e)) {
    shutdown_close(e);
    return;
  }
  if (stop_deadlines(e)) return;
  tsvc__plog_note(&e->log, "process group %d still has processes %d ms after SIGKILL", e->pgid,
                  TSVC_PROC_KILL_WAIT_MS);
  shutdown_close(e); /* give up on it */
}

void tsvc__proc_shutdown(prt_t *rt) {
  /* The loop's time, fresh: free may be called long after the loop last
     ran, and the deadlines below count from now. */
  uv_update_time(rt->base.loop);
  uint64_t now = uv_now(rt->base.loop);
  for (entry_t *e = rt->entries; e; e = e->next) {
    uv_timer_stop(&e->timer);
    tsvc__pg_drop_pwfile(e);
    if (!entry_left(e)) {
      shutdown_close(e);
      continue;
    }
    tsvc__plog_note(&e->log, "monitor exiting: stopping process group %d", e->pgid);
    tsvc__proc_signal_group(e->pgid, e->stop_sig);
    tsvc__proc_signal_group(e->helper_pgid, SIGTERM);
    signal_entry(e, SIGCONT);
    e->stopping = true;
    e->phase = PH_TERM;
    e->deadline = now + (uint64_t)(e->stop_timeout > 0 ? e->stop_timeout : 0);
    /* The loop runs until this group is gone. */
    uv_ref((uv_handle_t *)&e->timer);
    uv_timer_start(&e->timer, tsvc__proc_timer_cb, TSVC_PROC_POLL_MS, TSVC_PROC_POLL_MS);
  }
}
