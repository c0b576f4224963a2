/* bench_index: the cost of finding a service by name on the board (the
   lookup every API read goes through; the monitor's and the process
   runtime's lookups are the same index, common/index.h), at 10,000
   services. Figures are CPU time of this thread (not wall time: the
   machine is shared), the median of ROUNDS rounds.

     bench_index [services]     default 10000

   Prints one line per operation: ns per call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monitor/board.h"

enum { ROUNDS = 7, FINDS = 50 };

static double thread_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v) {
  qsort(v, ROUNDS, sizeof *v, cmp_d);
  return v[ROUNDS / 2];
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
  if (n == 0) {
    fprintf(stderr, "bench_index: fatal: services must be a whole number > 0\n");
    return 2;
  }
  char **names = calloc(n, sizeof *names), **others = calloc(n, sizeof *others);
  tsvc_board_slot_t **slots = calloc(n, sizeof *slots);
  if (!names || !others || !slots) return 1;
  for (size_t i = 0; i < n; i++) {
    char buf[64];
    snprintf(buf, sizeof buf, "service-%zu", i);
    names[i] = strdup(buf);
    snprintf(buf, sizeof buf, "missing-%zu", i);
    others[i] = strdup(buf);
    if (!names[i] || !others[i]) return 1;
  }
  double add[ROUNDS], hit[ROUNDS], miss[ROUNDS], del[ROUNDS];
  size_t found = 0;
  for (int r = 0; r < ROUNDS; r++) {
    tsvc_board_t *b;
    if (tsvc_board_new(&b)) return 1;
    tsvc_board_set_live(b, true);
    double t0 = thread_ns();
    for (size_t i = 0; i < n; i++)
      if (!(slots[i] = tsvc_board_add(b, names[i]))) return 1;
    add[r] = (thread_ns() - t0) / (double)n;
    for (size_t i = 0; i < n; i++) {
      tsvc_status_t st = {.name = names[i]};
      tsvc_board_publish(b, slots[i], tsvc_snap_new(&st, NULL));
    }
    t0 = thread_ns();
    for (int k = 0; k < FINDS; k++)
      for (size_t i = 0; i < n; i++) {
        tsvc_snap_t *s;
        if (tsvc_board_get(b, names[i], &s) == 0) {
          found++;
          tsvc_snap_release(s);
        }
      }
    hit[r] = (thread_ns() - t0) / (double)(n * FINDS);
    t0 = thread_ns();
    for (int k = 0; k < FINDS; k++)
      for (size_t i = 0; i < n; i++) {
        tsvc_snap_t *s;
        if (tsvc_board_get(b, others[i], &s) == 0) return 1;
      }
    miss[r] = (thread_ns() - t0) / (double)(n * FINDS);
    /* Removing from the end keeps the slot array's memmove out of it:
       what is left is the index's own cost of a removal. */
    t0 = thread_ns();
    for (size_t i = n; i-- > 0;) tsvc_board_remove(b, slots[i]);
    del[r] = (thread_ns() - t0) / (double)n;
    tsvc_board_free(b);
  }
  if (found != (size_t)ROUNDS * FINDS * n) {
    fprintf(stderr, "bench_index: fatal: found %zu of %zu\n", found, (size_t)ROUNDS * FINDS * n);
    return 1;
  }
  printf("services %zu, median of %d rounds, thread CPU ns per call\n", n, ROUNDS);
  printf("board_add     %8.1f\n", median(add));
  printf("board_get hit %8.1f\n", median(hit));
  printf("board_get miss%8.1f\n", median(miss));
  printf("board_remove  %8.1f\n", median(del));
  for (size_t i = 0; i < n; i++) {
    free(names[i]);
    free(others[i]);
  }
  free(names);
  free(others);
  free(slots);
  return 0;
}
