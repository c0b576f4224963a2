/*
 * progress.c: pull progress as people expect it on a terminal: one live
 * line per image being pulled (layers done of total, bytes, rate), kept
 * below the log lines, which scroll above it. Elsewhere (a pipe, a log
 * file, `up -d`) nothing is drawn and the pulls' own log lines, one when a
 * pull starts and one when it ends, say it all.
 *
 * How: the logger writes into a FILE of ours (fopencookie) that erases the
 * live lines, writes each whole log line to stderr and draws them again;
 * the pull observer (runtime/docker_pull.h) updates them. One mutex keeps
 * the two apart: the logger's lines come from any thread, the observer
 * from the loop. Nothing here calls the logger.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "runtime/docker_pull.h"

#define MAX_LINES 16           /* images drawn at once; more wait their turn */
#define PENDING_MAX (64u << 10) /* a log line longer than this is cut */

typedef struct {
  bool used;
  char key[600];        /* service or image: who the line is for */
  char label[600];      /* "redis (127.0.0.1:5000/x/redis:7)" */
  tsvc_pull_progress_t p;
  double seconds;
} line_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static line_t lines[MAX_LINES];
static int drawn;               /* lines on the screen below the log */
static FILE *cookie;            /* the logger's FILE, when installed */
static tsvc_buf_t pending;      /* a log line not ended yet */
static bool json_lines;         /* the logger's format, to restore it */

static void put(const char *s, size_t n) {
  while (n) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static void erase_locked(void) {
  if (!drawn) return;
  char esc[32];
  int n = snprintf(esc, sizeof esc, "\r\033[%dA\033[J", drawn);
  put(esc, (size_t)n);
  drawn = 0;
}

static void draw_locked(void) {
  char buf[1024], done[32], total[32], rate[32];
  for (int i = 0; i < MAX_LINES; i++) {
    const line_t *l = &lines[i];
    if (!l->used) continue;
    tsvc_bytes_format(l->p.bytes_done, done, sizeof done);
    tsvc_bytes_format(l->p.bytes_total, total, sizeof total);
    double r = l->seconds > 0.2 ? (double)l->p.bytes_done / l->seconds : 0;
    tsvc_bytes_format((int64_t)r, rate, sizeof rate);
    int n = l->p.layers == 0
                ? snprintf(buf, sizeof buf, "\r\033[Kpulling %.300s: asking the registry, %.1fs\n",
                           l->label, l->seconds)
                : snprintf(buf, sizeof buf,
                           "\r\033[Kpulling %.300s: %d/%d layers, %s/%s, %s/s, %.1fs\n", l->label,
                           l->p.layers_done, l->p.layers, done, total, rate, l->seconds);
    if (n > (int)sizeof buf - 1) n = (int)sizeof buf - 1;
    put(buf, (size_t)n);
    drawn++;
  }
}

static line_t *line_for(const char *key, bool create) {
  line_t *free_slot = NULL;
  for (int i = 0; i < MAX_LINES; i++) {
    if (lines[i].used && strcmp(lines[i].key, key) == 0) return &lines[i];
    if (!lines[i].used && !free_slot) free_slot = &lines[i];
  }
  if (!create || !free_slot) return NULL;
  memset(free_slot, 0, sizeof *free_slot);
  free_slot->used = true;
  tsvc_strlcpy(free_slot->key, key, sizeof free_slot->key);
  return free_slot;
}

static void observe(const tsvc_pull_event_t *ev, void *data) {
  (void)data;
  char key[600];
  snprintf(key, sizeof key, "%s/%s", ev->service ? ev->service : "", ev->image);
  pthread_mutex_lock(&mu);
  erase_locked();
  line_t *l = line_for(key, ev->type == TSVC_PULL_EV_START || ev->type == TSVC_PULL_EV_PROGRESS);
  if (l) {
    if (ev->type == TSVC_PULL_EV_DONE || ev->type == TSVC_PULL_EV_FAILED) {
      l->used = false; /* the pull's last log line takes over */
    } else {
      if (ev->service) snprintf(l->label, sizeof l->label, "%s (%s)", ev->service, ev->image);
      else tsvc_strlcpy(l->label, ev->image, sizeof l->label);
      if (ev->progress) l->p = *ev->progress;
      l->seconds = ev->seconds;
    }
  }
  draw_locked();
  pthread_mutex_unlock(&mu);
}

/* The logger's writes: whole lines go out above the live lines. */
static ssize_t cookie_write(void *c, const char *buf, size_t n) {
  (void)c;
  pthread_mutex_lock(&mu);
  size_t off = 0;
  while (off < n) {
    const char *nl = memchr(buf + off, '\n', n - off);
    size_t k = nl ? (size_t)(nl - (buf + off)) + 1 : n - off;
    if (tsvc_buf_add(&pending, buf + off, k) != 0) {
      /* Over PENDING_MAX: out with what there is, as a line of its own. */
      tsvc_buf_add(&pending, "\n", 1);
      nl = buf + off + k - 1;
    }
    off += k;
    if (nl) {
      erase_locked();
      put(pending.data, pending.len);
      tsvc_buf_reset(&pending);
      draw_locked();
    }
  }
  pthread_mutex_unlock(&mu);
  return (ssize_t)n;
}

void cli_progress_setup(tsvc_log_level_t level, bool json) {
  const char *term = getenv("TERM");
  if (cookie || !isatty(STDERR_FILENO) || (term && strcmp(term, "dumb") == 0)) {
    tsvc_log_setup(stderr, level, json);
    return;
  }
  tsvc_buf_init(&pending, PENDING_MAX);
  cookie_io_functions_t io = {.write = cookie_write};
  cookie = fopencookie(NULL, "w", io);
  if (!cookie) {
    tsvc_log_setup(stderr, level, json);
    return;
  }
  setvbuf(cookie, NULL, _IOLBF, PENDING_MAX);
  json_lines = json;
  tsvc_log_setup(cookie, level, json);
  tsvc_pull_set_observer(observe, NULL);
}

void cli_progress_end(void) {
  if (!cookie) return;
  tsvc_pull_set_observer(NULL, NULL);
  tsvc_log_setup(stderr, tsvc_log_level(), json_lines);
  fclose(cookie);
  cookie = NULL;
  pthread_mutex_lock(&mu);
  erase_locked();
  memset(lines, 0, sizeof lines);
  if (pending.len) put(pending.data, pending.len);
  tsvc_buf_free(&pending);
  pthread_mutex_unlock(&mu);
}
