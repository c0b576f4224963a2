/* testutil.c: see testutil.h. */
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

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
