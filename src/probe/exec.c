/*
 * exec.c: the exec probe on the host. The command runs in its own session
 * and process group (UV_PROCESS_DETACHED: setsid), stdout and stderr share
 * one pipe whose last TSVC_PROBE_OUTPUT_LEN bytes are kept. Exit 0 is
 * healthy; another exit is EXEC_FAILED with the code (128+signal when
 * killed); a command that cannot be started is RUNTIME_ERROR.
 *
 * Nothing outlives the probe: when the command exits, what is left of its
 * process group (background children) is killed; on timeout or cancel the
 * whole group is killed. The verdict is reported once the process is reaped
 * and the pipe has reached EOF (every writer is gone), or a short grace
 * after the exit when a writer escaped the group.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe/probe_int.h"

#define EXEC_EOF_GRACE_MS 100 /* after the exit, wait this long for EOF */

static void kill_group(tsvc_probe_t *p) {
  if (p->spawned) kill(-p->pid, SIGKILL);
}

/* The output as one string: the last bytes in order. */
static char *output_string(const tsvc_probe_t *p) {
  size_t n = p->out_total < TSVC_PROBE_OUTPUT_LEN ? (size_t)p->out_total : TSVC_PROBE_OUTPUT_LEN;
  char *s = malloc(n + 1);
  if (!s) return NULL;
  size_t start = (size_t)(p->out_total % TSVC_PROBE_OUTPUT_LEN);
  if (p->out_total <= TSVC_PROBE_OUTPUT_LEN) start = 0;
  size_t first = TSVC_PROBE_OUTPUT_LEN - start < n ? TSVC_PROBE_OUTPUT_LEN - start : n;
  memcpy(s, p->xb->tail + start, first);
  memcpy(s + first, p->xb->tail, n - first);
  s[n] = '\0';
  return s;
}

/* The last non-empty line of s, copied into line. */
static void last_line(const char *s, char *line, size_t len) {
  size_t end = strlen(s);
  while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r' || s[end - 1] == ' ')) end--;
  size_t start = end;
  while (start > 0 && s[start - 1] != '\n') start--;
  size_t n = end - start < len - 1 ? end - start : len - 1;
  memcpy(line, s + start, n);
  line[n] = '\0';
}

static void exec_done(tsvc_probe_t *p) {
  if (p->finishing || !p->exited || !p->out_eof) return;
  p->res.output = output_string(p);
  p->res.bytes_read = (size_t)p->out_total;
  if (p->res.result == TSVC_RESULT_EXEC_FAILED && p->res.output) {
    char line[160];
    last_line(p->res.output, line, sizeof line);
    if (line[0]) {
      size_t l = strlen(p->res.message);
      snprintf(p->res.message + l, sizeof p->res.message - l, ": %s", line);
      tsvc__probe_printable(p->res.message);
    }
  }
  tsvc__probe_finish(p);
}

static void out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tsvc_probe_t *p = h->data;
  (void)suggested;
  buf->base = p->xb->chunk;
  buf->len = sizeof p->xb->chunk;
}

static void out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tsvc_probe_t *p = s->data;
  if (nread > 0) {
    /* Keep the last bytes in a ring: memory stays bounded. */
    const char *d = buf->base;
    size_t n = (size_t)nread;
    if (n > TSVC_PROBE_OUTPUT_LEN) {
      d += n - TSVC_PROBE_OUTPUT_LEN;
      p->out_total += n - TSVC_PROBE_OUTPUT_LEN;
      n = TSVC_PROBE_OUTPUT_LEN;
    }
    size_t pos = (size_t)(p->out_total % TSVC_PROBE_OUTPUT_LEN);
    size_t first = TSVC_PROBE_OUTPUT_LEN - pos < n ? TSVC_PROBE_OUTPUT_LEN - pos : n;
    memcpy(p->xb->tail + pos, d, first);
    memcpy(p->xb->tail, d + first, n - first);
    p->out_total += n;
    return;
  }
  if (nread == 0) return;
  /* EOF or an error: no more output. */
  p->out_eof = true;
  uv_close((uv_handle_t *)&p->out, tsvc__probe_close_cb);
  exec_done(p);
}

static void exec_exit(uv_process_t *proc, int64_t status, int sig) {
  tsvc_probe_t *p = proc->data;
  p->exited = true;
  /* Background children left in the group must not outlive the check. */
  kill(-p->pid, SIGKILL);
  uv_close((uv_handle_t *)&p->proc, tsvc__probe_close_cb);
  if (p->finishing) return; /* cancelled: the group is gone, nothing to say */
  p->res.exit_code = sig ? 128 + sig : (int)status;
  if (sig)
    tsvc__probe_verdict(p, TSVC_RESULT_EXEC_FAILED, "killed by signal %d", sig);
  else if (status == 0)
    tsvc__probe_verdict(p, TSVC_RESULT_OK, "exit 0");
  else
    tsvc__probe_verdict(p, TSVC_RESULT_EXEC_FAILED, "exit code %d", (int)status);
  if (!p->out_eof) tsvc__probe_rearm(p, EXEC_EOF_GRACE_MS);
  exec_done(p);
}

static void exec_timeout(tsvc_probe_t *p) {
  if (!p->exited) {
    /* Kill the whole group; the verdict is reported once it is reaped. */
    p->timed_out = true;
    tsvc__probe_verdict(p, TSVC_RESULT_TIMEOUT,
                        "timed out after %lld ms; process group killed",
                        (long long)p->timeout);
    kill_group(p);
    return;
  }
  /* Exited, but a writer that left the group keeps the pipe open. */
  if (!p->out_eof) {
    p->out_eof = true;
    uv_close((uv_handle_t *)&p->out, tsvc__probe_close_cb);
  }
  exec_done(p);
}

static int exec_start(tsvc_probe_t *p) {
  if (!(p->xb = calloc(1, sizeof *p->xb))) return TSVC_ENOMEM;
  int fds[2];
  int rc = uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
  if (rc < 0) {
    tsvc__probe_verdict(p, TSVC_RESULT_RUNTIME_ERROR, "cannot create a pipe: %s",
                        uv_strerror(rc));
    tsvc__probe_finish(p);
    return 0;
  }
  uv_pipe_init(p->loop, &p->out, 0);
  p->out.data = p;
  p->out_init = true;
  p->refs++;
  rc = uv_pipe_open(&p->out, fds[0]);
  if (rc < 0) {
    close(fds[0]);
    close(fds[1]);
    tsvc__probe_verdict(p, TSVC_RESULT_RUNTIME_ERROR, "cannot open a pipe: %s",
                        uv_strerror(rc));
    tsvc__probe_finish(p);
    return 0;
  }

  char *shell_argv[] = {"/bin/sh", "-c", p->argv[0], NULL};
  char **argv = p->shell ? shell_argv : p->argv;
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = fds[1];
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = fds[1];
  uv_process_options_t opt;
  memset(&opt, 0, sizeof opt);
  opt.exit_cb = exec_exit;
  opt.file = argv[0];
  opt.args = argv;
  opt.stdio = stdio;
  opt.stdio_count = 3;
  opt.flags = UV_PROCESS_DETACHED; /* setsid: its own process group */
  rc = uv_spawn(p->loop, &p->proc, &opt);
  /* uv_spawn initialises the handle even when it fails: it must be closed. */
  p->proc.data = p;
  p->proc_init = true;
  p->refs++;
  close(fds[1]); /* the children hold the write end now */
  if (rc < 0) {
    tsvc__probe_verdict(p, TSVC_RESULT_RUNTIME_ERROR, "cannot run %s: %s", argv[0],
                        uv_strerror(rc));
    tsvc__probe_finish(p);
    return 0;
  }
  p->spawned = true;
  p->pid = p->proc.pid;
  p->on_timeout = exec_timeout;
  rc = uv_read_start((uv_stream_t *)&p->out, out_alloc, out_read);
  if (rc < 0) {
    p->out_eof = true; /* no output then; the exit still decides */
    uv_close((uv_handle_t *)&p->out, tsvc__probe_close_cb);
  }
  return 0;
}

static void exec_cancel(tsvc_probe_t *p) {
  kill_group(p);
  tsvc__probe_finish(p);
}

const tsvc_probe_type_t tsvc_probe_type_exec = {"exec", exec_start, exec_cancel};
