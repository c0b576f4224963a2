/* testutil.c: see testutil.h. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/util.h"

char *tu_mkdtemp(const char *prefix) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = "/tmp";
  size_t n = strlen(tmp) + strlen(prefix) + 16;
  char *p = malloc(n);
  if (!p) return NULL;
  snprintf(p, n, "%s/%s-XXXXXX", tmp, prefix);
  if (!mkdtemp(p)) {
    free(p);
    return NULL;
  }
  return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void tu_rmtree(const char *path) {
  if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  size_t n = strlen(text);
  int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
  if (fclose(f) != 0) rc = -1;
  return rc;
}

int tu_vsh(const char *dir, char *out, size_t len, const char *fmt, va_list ap) {
  char cmd[4096], full[4600];
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  if (dir) snprintf(full, sizeof full, "cd '%s' && { %s ; } 2>&1", dir, cmd);
  else snprintf(full, sizeof full, "{ %s ; } 2>&1", cmd);
  if (out && len) out[0] = '\0';
  FILE *p = popen(full, "r");
  if (!p) return -1;
  size_t n = 0, k;
  char buf[4096];
  while ((k = fread(buf, 1, sizeof buf, p)) > 0) {
    if (!out || !len) continue;
    size_t take = n + k < len - 1 ? k : len - 1 - n;
    memcpy(out + n, buf, take);
    n += take;
  }
  if (out && len) {
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r')) out[--n] = '\0';
  }
  int st = pclose(p);
  return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tu_sh(char *out, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = tu_vsh(NULL, out, len, fmt, ap);
  va_end(ap);
  return rc;
}

static void tick(uv_timer_t *t) { (void)t; }

void tu_run_until(uv_loop_t *loop, int *flag, int ms) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, tick, 2, 2);
  uv_update_time(loop);
  uint64_t end = uv_now(loop) + (uint64_t)ms;
  while (!*flag && uv_now(loop) < end) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

int64_t tu_runq_ns(void) { return tu_runq_ns_of(0); }

/* Field 2 of the schedstat file at path, or -1. */
static int64_t runq_of_file(const char *path) {
  /* "<ns on a CPU> <ns waiting on a run queue> <timeslices>" */
  char buf[128];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  unsigned long long run, wait;
  if (sscanf(buf, "%llu %llu", &run, &wait) != 2) return -1;
  return (int64_t)wait;
}

int64_t tu_runq_ns_of(long tid) {
  char path[64];
  if (tid > 0) snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", tid);
  else snprintf(path, sizeof path, "/proc/thread-self/schedstat");
  return runq_of_file(path);
}

int64_t tu_runq_ns_of_process(long pid) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%ld/task", pid);
  DIR *d = opendir(path);
  if (!d) return -1;
  int64_t sum = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/proc/%ld/task/%.20s/schedstat", pid, e->d_name);
    int64_t w = runq_of_file(path);
    if (w > 0) sum += w; /* a thread gone meanwhile: its share is lost */
  }
  closedir(d);
  return sum;
}

long tu_gettid(void) { return (long)syscall(SYS_gettid); }

/* About 65 s of samples; older ones are overwritten (a test that asks
   about them gets the oldest kept: more lag allowed, never less). */
#define LAG_SAMPLES 32768

typedef struct {
  uint64_t at;    /* loop clock, ms (uv_hrtime() / 1e6, uv_now()'s base) */
  int64_t runq;   /* run-queue delay so far, ns */
} lag_sample_t;

struct tu_lag_s {
  uv_timer_t timer;
  int64_t runq0;
  bool absent;
  size_t n; /* samples taken; the ring holds the last LAG_SAMPLES */
  lag_sample_t s[LAG_SAMPLES];
};

static void lag_sample(tu_lag_t *l) {
  int64_t rq = l->absent ? 0 : tu_runq_ns();
  if (rq < 0) rq = 0;
  l->s[l->n % LAG_SAMPLES] = (lag_sample_t){uv_hrtime() / 1000000, rq};
  l->n++;
}

static void lag_tick(uv_timer_t *t) { lag_sample(t->data); }

tu_lag_t *tu_lag_start(uv_loop_t *loop) {
  tu_lag_t *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->runq0 = tu_runq_ns();
  if (l->runq0 < 0) {
    l->absent = true;
    l->runq0 = 0;
    fprintf(stderr, "note: /proc/thread-self/schedstat is not readable: timing bounds "
                    "allow no lag for a loaded machine\n");
  }
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  lag_sample(l);
  uv_timer_start(&l->timer, lag_tick, TU_LAG_PERIOD_MS, TU_LAG_PERIOD_MS);
  return l;
}

int64_t tu_lag_between(tu_lag_t *l, uint64_t from, uint64_t to) {
  if (!l || l->absent || l->n == 0) return 0;
  size_t first = l->n > LAG_SAMPLES ? l->n - LAG_SAMPLES : 0;
  /* a: the last sample at or before from (else the oldest kept);
     b: the first sample at or after to (else now). */
  int64_t a = l->s[first % LAG_SAMPLES].runq, b = -1;
  for (size_t i = first; i < l->n; i++) {
    const lag_sample_t *x = &l->s[i % LAG_SAMPLES];
    if (x->at <= from) a = x->runq;
    if (x->at >= to) {
      b = x->runq;
      break;
    }
  }
  if (b < 0) b = tu_runq_ns();
  if (b < a) return 0;
  return (b - a + 999999) / 1000000;
}

int64_t tu_lag_total(tu_lag_t *l) {
  if (!l || l->absent) return 0;
  int64_t now = tu_runq_ns();
  return now > l->runq0 ? (now - l->runq0 + 999999) / 1000000 : 0;
}

static void lag_closed(uv_handle_t *h) { free(h->data); }

void tu_lag_stop(tu_lag_t *l) {
  if (!l) return;
  uv_timer_stop(&l->timer);
  uv_close((uv_handle_t *)&l->timer, lag_closed);
}

int tu_required(void) {
  const char *r = getenv("TSVC_REQUIRE_SERVERS");
  return r && strcmp(r, "1") == 0;
}

static int g_skipped;

void tu_skip_at(const char *why, const char *file, int line) {
  print_message("skipped: %s\n", why);
  g_skipped++;
  _skip(file, line);
}

void tu_missing_at(const char *why, const char *file, int line) {
  if (tu_required()) {
    print_error("TSVC_REQUIRE_SERVERS=1 (scripts/test.sh) but %s\n", why);
    _fail(file, line);
  }
  tu_skip_at(why, file, line);
}

int tu_run_group_tests(const char *name, const struct CMUnitTest *tests, size_t n,
                       CMFixtureFunction setup, CMFixtureFunction teardown) {
  /* TSVC_TEST_FILTER=pattern (cmocka's: * and ? wildcards) runs only the
     cases it names: to run one case many times over, e.g. under load. */
  const char *filter = getenv("TSVC_TEST_FILTER");
  if (filter && *filter) cmocka_set_test_filter(filter);
  int rc = _cmocka_run_group_tests(name, tests, n, setup, teardown);
  if (rc == 0 && g_skipped > 0) {
    fprintf(stderr, "%d test(s) skipped: exit 77 (ctest: Skipped)\n", g_skipped);
    return 77;
  }
  return rc;
}

/* ---- tables of docs/design.md ------------------------------------------- */

static char *table_trim(char *s) {
  while (*s == ' ' || *s == '`') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '`' || s[n - 1] == '\n')) s[--n] = '\0';
  return s;
}

/* Split a table line "| a | b |" into its cells (at most max, each of
   fewer than TU_TABLE_CELL bytes); -1 when there are more cells or a cell
   is too long. */
static int table_split(char *line, char out[][TU_TABLE_CELL], int max) {
  int n = 0;
  char *p = strchr(line, '|');
  while (p) {
    char *q = strchr(p + 1, '|');
    if (!q) break;
    *q = '\0';
    if (n == max) return -1;
    const char *cell = table_trim(p + 1);
    if (strlen(cell) >= TU_TABLE_CELL) return -1;
    memcpy(out[n++], cell, strlen(cell) + 1);
    p = q;
  }
  return n;
}

void tu_read_table(const char *marker, tu_table_t *t) {
  memset(t, 0, sizeof *t);
  const char *src = getenv("TSVC_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/docs/design.md", src ? src : "..");
  FILE *f = fopen(path, "r");
  if (!f) fail_msg("cannot open %s", path);
  char line[4096];
  bool in = false;
  int k = 0, lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    if (!in) {
      in = strstr(line, marker) != NULL;
      continue;
    }
    if (line[0] != '|') {
      if (k) break;
      continue;
    }
    char cells[TU_TABLE_COLS + 1][TU_TABLE_CELL];
    int n = table_split(line, cells, TU_TABLE_COLS + 1);
    if (n < 1) {
      fclose(f);
      fail_msg("%s:%d: %s: more than %d columns, or a cell of %d characters or more", path,
               lineno, marker, TU_TABLE_COLS, TU_TABLE_CELL - 1);
    }
    if (k == 0) {
      t->ncols = n - 1;
      for (int i = 1; i < n; i++) memcpy(t->head[i - 1], cells[i], TU_TABLE_CELL);
    } else if (k > 1) { /* k == 1: the |---| line */
      if (n - 1 != t->ncols || t->nrows == TU_TABLE_ROWS) {
        fclose(f);
        fail_msg("%s:%d: %s: row %s has %d cells, want %d (at most %d rows)", path, lineno,
                 marker, cells[0], n - 1, t->ncols, TU_TABLE_ROWS);
      }
      memcpy(t->names[t->nrows], cells[0], TU_TABLE_CELL);
      for (int i = 1; i < n; i++) memcpy(t->cells[t->nrows][i - 1], cells[i], TU_TABLE_CELL);
      t->nrows++;
    }
    k++;
  }
  fclose(f);
  if (!t->nrows) fail_msg("no table after '%s' in %s", marker, path);
}

int tu_table_row(const tu_table_t *t, const char *name) {
  for (int i = 0; i < t->nrows; i++)
    if (strcmp(t->names[i], name) == 0) return i;
  return -1;
}

/* ---- configs and logs ------------------------------------------------------ */

tsvc_config_t *tu_config(const char *name, const char *text, size_t len) {
  tsvc_config_t *cfg = NULL;
  tsvc_diag_t d = {0};
  int rc = tsvc_config_load_string(name, text, len, &cfg, &d);
  for (size_t i = 0; i < d.n; i++) fprintf(stderr, "%s\n", d.lines[i]);
  tsvc_diag_free(&d);
  assert_int_equal(rc, 0);
  return cfg;
}

int64_t tu_line_ms(const char *line) {
  const char *t = strstr(line, "ts=");
  struct tm tm = {0};
  int ms = 0;
  if (!t || sscanf(t + 3, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
    fail_msg("no time in: %s", line);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ---- the captured log ------------------------------------------------------ */

static FILE *g_log;
static char *g_logbuf;
static size_t g_loglen;

/* Stop capturing; everything captured, or NULL when nothing was. */
static char *log_stop(void) {
  if (!g_log) return NULL;
  tsvc_log_setup(stderr, TSVC_LOG_OFF, false);
  fclose(g_log);
  g_log = NULL;
  char *s = g_logbuf;
  g_logbuf = NULL;
  g_loglen = 0;
  return s;
}

void tu_log_capture(void) { tu_log_capture_as(TSVC_LOG_INFO, false); }

void tu_log_capture_as(tsvc_log_level_t min, bool json) {
  free(log_stop());
  g_log = open_memstream(&g_logbuf, &g_loglen);
  assert_non_null(g_log);
  tsvc_log_setup(g_log, min, json);
}

size_t tu_log_mark(void) {
  if (!g_log) return 0;
  flockfile(g_log);
  fflush(g_log);
  size_t n = g_loglen;
  funlockfile(g_log);
  return n;
}

char *tu_log_since(size_t mark) {
  if (!g_log) fail_msg("tu_log_since: no log is being captured (tu_log_capture)");
  flockfile(g_log);
  fflush(g_log);
  size_t from = mark <= g_loglen ? mark : g_loglen;
  char *s = tsvc_strndup(g_logbuf ? g_logbuf + from : "", g_loglen - from);
  funlockfile(g_log);
  assert_non_null(s);
  return s;
}

char *tu_log_wait_v(size_t mark, int ms, const char *svc, const char *const *needles) {
  int64_t end = tsvc_wall_ms() + ms;
  for (;;) {
    char *s = tu_log_since(mark);
    if (tu_log_line_v(s, NULL, svc, needles) || tsvc_wall_ms() >= end) return s;
    free(s);
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
  }
}

char *tu_log_end(void) {
  char *s = log_stop();
  if (s && getenv("TSVC_TEST_SHOW_LOG")) fprintf(stderr, "%s", s);
  return s;
}

const char *tu_log_line_v(const char *log, const char **pos, const char *svc,
                          const char *const *needles) {
  char key[96];
  snprintf(key, sizeof key, " service=%s ", svc);
  const char *p = pos && *pos ? *pos : log;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char *line = tsvc_strndup(p, n);
    assert_non_null(line);
    bool ok = strstr(line, key) != NULL;
    for (size_t i = 0; ok && needles[i]; i++) ok = strstr(line, needles[i]) != NULL;
    free(line);
    const char *start = p;
    p = nl ? nl + 1 : p + n;
    if (ok) {
      if (pos) *pos = p;
      return start;
    }
  }
  if (pos) *pos = p;
  return NULL;
}

int tu_log_lines_v(const char *log, const char *svc, const char *const *needles) {
  int n = 0;
  const char *pos = log;
  while (tu_log_line_v(log, &pos, svc, needles)) n++;
  return n;
}

int tu_log_count(const char *needle) {
  char *s = tu_log_since(0);
  int n = tu_count(s, needle);
  free(s);
  return n;
}

int tu_count(const char *hay, const char *needle) {
  assert_true(needle && *needle);
  int n = 0;
  for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}


/* ---- stalls of the machine ------------------------------------------------ */

/* A witness: a thread that sleeps TU_STALL_PERIOD_MS at a time and notes
   each wake-up that came later than its run-queue delay explains. */
#define TU_STALL_PERIOD_MS 2
#define STALL_RECS 4096
#define STALL_MIN_NS 500000 /* below: the timer slack and the wake-up itself */

typedef struct {
  uint64_t from, to; /* the sleep's start and end, loop clock (ms) */
  int64_t ns;        /* how much later it ended than the sleep and the run queue explain */
} stall_rec_t;

struct tu_stall_s {
  pthread_t th;
  atomic_bool stop;
  pthread_mutex_t mu;
  size_t n; /* records made; the ring holds the last STALL_RECS */
  stall_rec_t r[STALL_RECS];
};

static void *stall_main(void *arg) {
  tu_stall_t *s = arg;
  while (!atomic_load(&s->stop)) {
    int64_t rq0 = tu_runq_ns();
    uint64_t t0 = uv_hrtime();
    struct timespec ts = {0, TU_STALL_PERIOD_MS * 1000000L};
    nanosleep(&ts, NULL);
    uint64_t t1 = uv_hrtime();
    int64_t rq1 = tu_runq_ns();
    int64_t over = (int64_t)(t1 - t0) - TU_STALL_PERIOD_MS * 1000000L - (rq1 - rq0);
    if (rq0 < 0 || rq1 < 0 || over < STALL_MIN_NS) continue;
    pthread_mutex_lock(&s->mu);
    s->r[s->n % STALL_RECS] = (stall_rec_t){t0 / 1000000, t1 / 1000000 + 1, over};
    s->n++;
    pthread_mutex_unlock(&s->mu);
  }
  return NULL;
}

tu_stall_t *tu_stall_start(void) {
  tu_stall_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  atomic_init(&s->stop, false);
  pthread_mutex_init(&s->mu, NULL);
  if (pthread_create(&s->th, NULL, stall_main, s) != 0) {
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
  }
  return s;
}

int64_t tu_stall_between(tu_stall_t *s, uint64_t from, uint64_t to) {
  if (!s) return 0;
  int64_t ns = 0;
  pthread_mutex_lock(&s->mu);
  size_t first = s->n > STALL_RECS ? s->n - STALL_RECS : 0;
  for (size_t i = first; i < s->n; i++) {
    const stall_rec_t *r = &s->r[i % STALL_RECS];
    if (r->to >= from && r->from <= to) ns += r->ns;
  }
  pthread_mutex_unlock(&s->mu);
  return (ns + 999999) / 1000000;
}

void tu_stall_stop(tu_stall_t *s) {
  if (!s) return;
  atomic_store(&s->stop, true);
  pthread_join(s->th, NULL);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
