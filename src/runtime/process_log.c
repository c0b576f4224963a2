/* process_log.c: log capture and rotation of the process runtime (process_int.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/process_int.h"

#include "log/log.h"

/* ---- the log file ----------------------------------------------------------- */

void tsvc__plog_init(tsvc__plog_t *l, const char *dir, const char *name, size_t max) {
  memset(l, 0, sizeof *l);
  l->dir = dir;
  l->name = name;
  l->max = max;
  l->fd = -1;
}

void tsvc__plog_close(tsvc__plog_t *l) {
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}

static void log_path(tsvc__plog_t *l, char *buf, size_t len, const char *suffix) {
  snprintf(buf, len, "%s/%s.log%s", l->dir, l->name, suffix);
}

/* The service's output could not be written (err: an errno): say so in the
   monitor's log, once until a write works again. The output is dropped
   meanwhile; the service is not disturbed. */
static void log_failed(tsvc__plog_t *l, int err) {
  if (l->warned) return;
  l->warned = true;
  char path[PATH_MAX + 16];
  log_path(l, path, sizeof path, "");
  TSVC_LOG(TSVC_LOG_WARN, l->name,
           "cannot write the output of %s to %s: %s; its output is dropped until a write "
           "succeeds (warned once)",
           l->name, path, strerror(err));
}

static int log_open_file(tsvc__plog_t *l, const char *path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) log_failed(l, errno);
  return fd;
}

static void log_rotate(tsvc__plog_t *l) {
  char cur[PATH_MAX + 16], old[PATH_MAX + 16];
  log_path(l, cur, sizeof cur, "");
  log_path(l, old, sizeof old, ".1");
  if (l->fd >= 0) close(l->fd);
  rename(cur, old);
  l->fd = log_open_file(l, cur);
  l->size = 0;
}

/* Open the log when it is not; a file already past the limit is rotated. */
void tsvc__plog_open(tsvc__plog_t *l) {
  if (l->fd >= 0) return;
  char path[PATH_MAX + 16];
  log_path(l, path, sizeof path, "");
  l->fd = log_open_file(l, path);
  if (l->fd < 0) return;
  struct stat st;
  l->size = fstat(l->fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
  if (l->size >= l->max) log_rotate(l);
}

static void log_put(tsvc__plog_t *l, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(l->fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { /* a full disk: the output is dropped */
      log_failed(l, w < 0 ? errno : EIO);
      return;
    }
    p += w;
    n -= (size_t)w;
    l->size += (uint64_t)w;
    l->warned = false;
  }
}

/* Append to the log; past the limit, rotate, at the end of a line when the
   part that still fits has one. */
static void log_write(tsvc__plog_t *l, const char *p, size_t n) {
  tsvc__plog_open(l);
  if (l->fd < 0) return;
  if (l->size > 0 && l->size + n > l->max) {
    size_t room = l->max > l->size ? (size_t)(l->max - l->size) : 0;
    size_t head = room;
    while (head > 0 && p[head - 1] != '\n') head--;
    log_put(l, p, head);
    p += head;
    n -= head;
    log_rotate(l);
    if (l->fd < 0) return;
  }
  log_put(l, p, n);
}

/* Keep the last TSVC_PROC_TAIL_LEN bytes of output, for error messages. */
static void tail_add(tsvc__plog_t *l, const char *p, size_t n) {
  if (n >= TSVC_PROC_TAIL_LEN) {
    memcpy(l->tail, p + n - TSVC_PROC_TAIL_LEN, TSVC_PROC_TAIL_LEN);
    l->tail_len = TSVC_PROC_TAIL_LEN;
    return;
  }
  if (l->tail_len + n > TSVC_PROC_TAIL_LEN) {
    size_t drop = l->tail_len + n - TSVC_PROC_TAIL_LEN;
    memmove(l->tail, l->tail + drop, l->tail_len - drop);
    l->tail_len -= drop;
  }
  memcpy(l->tail + l->tail_len, p, n);
  l->tail_len += n;
}

/* The last non-empty line of the output, printable. */
void tsvc__plog_tail_line(const tsvc__plog_t *l, char *out, size_t len) {
  size_t end = l->tail_len;
  while (end > 0 && isspace((unsigned char)l->tail[end - 1])) end--;
  size_t start = end;
  while (start > 0 && l->tail[start - 1] != '\n') start--;
  size_t n = end - start < len - 1 ? end - start : len - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)l->tail[start + i];
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
static void scan_line_end(tsvc__plog_t *l) {
  l->line[l->line_len] = '\0';
  const char *p = l->first_err[0] ? NULL : error_in(l->line);
  if (p) {
    size_t n = 0;
    for (; *p; p++) {
      unsigned char c = (unsigned char)*p;
      l->first_err[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    l->first_err[n] = '\0';
  }
  l->line_len = 0;
}

/* Look for the first error line in a helper's output (lines longer than
   TSVC_PROC_LINE_LEN are cut). */
static void scan_output(tsvc__plog_t *l, const char *p, size_t n) {
  if (!l->scanning || l->first_err[0]) return;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n') scan_line_end(l);
    else if (l->line_len < TSVC_PROC_LINE_LEN - 1) l->line[l->line_len++] = p[i];
  }
}

void tsvc__plog_scan_begin(tsvc__plog_t *l) {
  l->scanning = true;
  l->line_len = 0;
  l->first_err[0] = '\0';
}

/* What to say about a helper that failed: its first error line, else the
   last line it printed. */
void tsvc__plog_scan_end(tsvc__plog_t *l, char *out, size_t len) {
  if (l->scanning && l->line_len > 0) scan_line_end(l); /* no final newline */
  l->scanning = false;
  if (l->first_err[0]) tsvc_strlcpy(out, l->first_err, len);
  else tsvc__plog_tail_line(l, out, len);
}

/* A line of ours in the service's log. */
void tsvc__plog_note(tsvc__plog_t *l, const char *fmt, ...) {
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
  size_t len = strlen(line);
  line[len++] = '\n';
  log_write(l, line, len);
}

void tsvc__plog_output(tsvc__plog_t *l, const char *p, size_t n) {
  log_write(l, p, n);
  tail_add(l, p, n);
  scan_output(l, p, n);
}

void tsvc__plog_tail_reset(tsvc__plog_t *l) { l->tail_len = 0; }

/* ---- capture: the children's pipes on the loop ------------------------------- */

static void reader_closed(uv_handle_t *h) {
  reader_t *r = h->data;
  prt_t *rt = r->e->rt;
  free(r);
  tsvc__proc_handle_done(rt);
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
    tsvc__plog_output(&r->e->log, buf->base, (size_t)n);
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
      tsvc__plog_output(&r->e->log, r->buf, (size_t)n);
      continue;
    }
    if (n == 0) reader_close(r);
    return;
  }
}

void tsvc__proc_drain(entry_t *e) {
  reader_t *r = e->readers;
  while (r) {
    reader_t *next = r->next; /* r may close */
    reader_drain(r);
    r = next;
  }
}

void tsvc__proc_capture(entry_t *e, uv_file fd) {
  prt_t *rt = e->rt;
  reader_t *r = calloc(1, sizeof *r);
  if (!r) {
    close(fd); /* the child runs on; its output is lost (EPIPE) */
    return;
  }
  r->e = e;
  r->pipe.data = r;
  uv_pipe_init(rt->base.loop, &r->pipe, 0);
  uv_unref((uv_handle_t *)&r->pipe);
  rt->handles++;
  r->next = e->readers;
  e->readers = r;
  if (uv_pipe_open(&r->pipe, fd) != 0 ||
      uv_read_start((uv_stream_t *)&r->pipe, reader_alloc, reader_read) != 0) {
    /* The child runs on; its output is lost. */
    reader_close(r);
  }
}

void tsvc__proc_capture_close(entry_t *e) {
  while (e->readers) reader_close(e->readers);
}
