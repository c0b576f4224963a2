/*
 * wait_healthy.c: libtsvc from a program of your own. Starts the services
 * of a tanuki.yaml, waits until one of them is healthy, prints its status,
 * stops them.
 *
 *   cc wait_healthy.c $(pkg-config --cflags --libs tsvc) -o wait_healthy
 *   ./wait_healthy tanuki.yaml redis 60
 *
 * Exit: 0 the service became healthy, 1 it did not within the timeout (or
 * could not start), 2 usage or an invalid config.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tsvc.h>

/* What the change callback and main() share. */
typedef struct {
  const char *service;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool healthy;
} waiter_t;

/* Called on the manager's loop thread for every change of state: keep it
   short (no waiting, no calls into the manager from here). */
static void on_change(const tsvc_change_t *c, void *data) {
  waiter_t *w = data;
  if (strcmp(c->service, w->service) != 0) return;
  pthread_mutex_lock(&w->mu);
  w->healthy = c->to == TSVC_STATE_HEALTHY;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mu);
  printf("%s: %s -> %s (%s)\n", c->service, tsvc_state_name(c->from), tsvc_state_name(c->to),
         c->reason ? c->reason : "");
  fflush(stdout);
}

/* Wait until the service is healthy or the time is up. */
static bool wait_healthy(tsvc_manager_t *m, waiter_t *w, long seconds) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += seconds;
  pthread_mutex_lock(&w->mu);
  /* Subscribed before the start: a change cannot be missed. It may have
     happened before we got here, hence the first look. */
  w->healthy = w->healthy || tsvc_manager_is_healthy(m, w->service);
  int rc = 0;
  while (!w->healthy && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&w->cond, &w->mu, &deadline);
  bool ok = w->healthy;
  pthread_mutex_unlock(&w->mu);
  return ok;
}

static void print_status(const tsvc_status_t *s) {
  printf("service  %s\n", s->name);
  printf("state    %s\n", tsvc_state_name(s->state));
  printf("healthy  %s\n", s->healthy ? "yes" : "no");
  printf("probe    %s\n", s->probe);
  if (s->pid) printf("pid      %d\n", s->pid);
  if (s->container_name[0]) printf("container %s\n", s->container_name);
  printf("checks   %llu (%llu failed), last latency %lld us\n",
         (unsigned long long)s->checks_total, (unsigned long long)s->failures_total,
         (long long)s->last_latency_us);
  printf("restarts %llu\n", (unsigned long long)s->restarts_total);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s CONFIG SERVICE [TIMEOUT_SECONDS]\n", argv[0]);
    return 2;
  }
  char *end = NULL;
  long timeout = argc > 3 ? strtol(argv[3], &end, 10) : 60;
  if ((end && *end) || timeout <= 0 || timeout > 86400) {
    fprintf(stderr, "%s: the timeout is a number of seconds (1 to 86400)\n", argv[0]);
    return 2;
  }
  char err[4096];
  tsvc_manager_opts_t opts = {.config_path = argv[1]};
  tsvc_manager_t *m = NULL;
  int rc = tsvc_manager_new(&opts, &m, err, sizeof err);
  if (rc) {
    fprintf(stderr, "%s: %s\n%s\n", argv[1], tsvc_strerror(rc), err);
    return 2;
  }

  waiter_t w = {.service = argv[2], .mu = PTHREAD_MUTEX_INITIALIZER};
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w.cond, &ca);
  pthread_condattr_destroy(&ca);
  int sub = tsvc_manager_subscribe(m, on_change, &w);

  int code = 1;
  rc = tsvc_manager_start_services(m, err, sizeof err);
  if (rc) {
    fprintf(stderr, "cannot start every service: %s\n%s\n", tsvc_strerror(rc), err);
  } else if (!wait_healthy(m, &w, timeout)) {
    fprintf(stderr, "%s is not healthy after %ld s\n", argv[2], timeout);
  } else {
    code = 0;
  }

  tsvc_status_t s;
  if (tsvc_manager_get_status(m, argv[2], &s) == 0) {
    printf("runtime  %s\n", tsvc_manager_runtime_name(m));
    print_status(&s);
    tsvc_status_clear(&s);
  } else {
    fprintf(stderr, "no service named %s\n", argv[2]);
  }

  tsvc_manager_unsubscribe(m, sub);
  if (tsvc_manager_stop_services(m, err, sizeof err) != 0)
    fprintf(stderr, "cannot stop every service:\n%s\n", err);
  tsvc_manager_free(m);
  pthread_cond_destroy(&w.cond);
  return code;
}
