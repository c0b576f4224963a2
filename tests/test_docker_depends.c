/*
 * test_docker_depends: depends_on on real containers (the Docker engine on
 * /var/run/docker.sock, the images of scripts/images.sh).
 *
 * The app service is a container whose command runs pg_isready against the
 * postgres service (by its network alias) once and exits 1 when postgres
 * does not accept connections, else sleeps: its start fails unless postgres
 * is ready. With `depends_on: {pg: {condition: service_healthy, restart:
 * true}}` the monitor must start it only once pg is healthy, restart it
 * after pg's restarts, hold its restart while pg is stopped (shown in the
 * status), give up at depends_timeout as a failed restart, and let the
 * retry through once pg is back.
 *
 * When the engine or the images are missing the test FAILS if
 * TSVC_REQUIRE_DOCKER=1 (CI), else is skipped with the reason. Run under a
 * shared lock: `flock -o -s /tmp/tsvc-docker.lock ./tests/test_docker_depends`.
 *
 * Names: containers <prefix><service> with the prefix "tsvc-dep-<pid>-",
 * the network and the volume named after it; all removed at the end, even
 * when an assertion fails.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "log/log.h"
#include "docker_fixture.h"
#include "servers.h"
#include "testutil.h"
#include "tsvc.h"

#define PG_IMAGE "tanuki/postgres:15"

static char g_prefix[64]; /* tsvc-dep-<pid>- */
static char g_net[96];
static char g_vol[96];
static char *g_dir;
static char g_cfg[512];
static bool g_passed; /* else the teardown prints the log */
static tsvc_manager_t *g_m; /* freed by the teardown when a test fails */
static pthread_t g_th;      /* a restart in another thread ... */
static bool g_th_live;      /* ... joined by the teardown when a test fails */

/* The container's start time, as docker tells it. */
static void started_at(const char *svc, char *out, size_t len) {
  if (tu_sh(out, len, "docker inspect -f '{{.State.StartedAt}}' %s%s", g_prefix, svc) != 0)
    fail_msg("docker inspect %s%s: %s", g_prefix, svc, out);
}

/* The time (wall ms) of the first log line about svc holding every
   needle, after *pos (moved past it); 0 when none. */
static int64_t line_time(const char *log, const char **pos, const char *svc, const char *a,
                         const char *b) {
  char key[64];
  snprintf(key, sizeof key, " service=%s ", svc);
  for (const char *p = pos && *pos ? *pos : log; *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char line[2048];
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), p);
    const char *next = nl ? nl + 1 : p + n;
    if (strstr(line, key) && strstr(line, a) && (!b || strstr(line, b))) {
      if (pos) *pos = next;
      return tu_line_ms(line);
    }
    p = next;
  }
  return 0;
}

/* Wait until app's command got past pg_isready (it touched its marker):
   only then may pg go away without app dying of it. */
static void wait_connected(void) {
  int64_t end = tsvc_wall_ms() + 30000;
  while (tu_sh(NULL, 0, "docker exec %sapp test -f /tmp/connected", g_prefix) != 0) {
    if (tsvc_wall_ms() > end) fail_msg("app never got past pg_isready");
    tu_sleep_ms(200);
  }
}

typedef struct {
  tsvc_manager_t *m;
  int rc;
  char err[1024];
} restart_job_t;

static void *restart_thread(void *data) {
  restart_job_t *j = data;
  j->rc = tsvc_manager_restart(j->m, "app", j->err, sizeof j->err);
  return NULL;
}

/* The config: pg, and app depending on it with depends_timeout `dt`. */
static void write_config(const char *dt) {
  /* app: pg_isready once; exit 1 unless postgres accepts connections. Its
     only check is that its container runs, so a start before postgres is
     ready shows as a container that died. */
  char *yaml = tsvc_asprintf(
      "runtime: docker\n"
      "docker: {network: %s, container_prefix: %s}\n"
      "services:\n"
      "  pg:\n"
      "    image: " PG_IMAGE "\n"
      "    environment: {POSTGRES_USER: tanuki, POSTGRES_PASSWORD: dep-pw,"
      " POSTGRES_DB: tanuki_dev}\n"
      "    volumes: [\"%s:/var/lib/postgresql/data\"]\n"
      "    healthcheck: {command: [pg_isready, -U, tanuki, -d, tanuki_dev], interval: 500ms,\n"
      "                  timeout: 2s, retries: 3, start_period: 60s, start_interval: 300ms}\n"
      "    restart: {backoff: 500ms, max_backoff: 2s, stop_timeout: 5s}\n"
      "  app:\n"
      "    image: " PG_IMAGE "\n"
      "    command: [sh, -c, 'pg_isready -h pg -U tanuki -d tanuki_dev -t 3 || exit 1;"
      " touch /tmp/connected; exec sleep infinity']\n"
      "    depends_on:\n"
      "      pg: {condition: service_healthy, restart: true}\n"
      "    depends_timeout: %s\n"
      "    healthcheck: {probe: running, interval: 500ms, timeout: 2s, retries: 1,\n"
      "                  start_period: 2s, start_interval: 300ms}\n"
      "    restart: {backoff: 500ms, max_backoff: 1s, max_restarts: 10, stop_timeout: 1s}\n",
      g_net, g_prefix, g_vol, dt);
  assert_non_null(yaml);
  assert_int_equal(tu_write_file(g_cfg, yaml), 0);
  free(yaml);
}

static void app_waits_for_postgres(void **state) {
  (void)state;
  char why[512];
  tu_need_docker(!tu_docker_missing(PG_IMAGE, why, sizeof why), why);
  /* Long enough for pulling nothing, creating the container and initdb
     on a fresh volume on a loaded machine. */
  write_config("90s");

  g_m = tu_manager_new(g_cfg);
  tsvc_manager_t *m = g_m;
  char err[4096];
  int rc;

  /* 1. Started together: app's start waits for pg to be healthy (initdb on
     a fresh volume takes seconds), then app starts once and never dies. */
  tu_manager_start(m);
  tu_wait_state(m, "pg", TSVC_STATE_HEALTHY, 60000, NULL, NULL);
  tu_wait_state(m, "app", TSVC_STATE_HEALTHY, 30000, NULL, NULL);
  char *log = tu_log_since(0);
  int64_t pg_healthy = line_time(log, NULL, "pg", "state=healthy", NULL);
  int64_t app_go = line_time(log, NULL, "app", "action=wait_over", NULL);
  int64_t app_wait = line_time(log, NULL, "app", "action=wait ", "waits for it to be healthy");
  if (!pg_healthy || !app_go || !app_wait) fail_msg("missing lines:\n%s", log);
  assert_true(app_wait <= pg_healthy);
  assert_true(app_go >= pg_healthy);
  assert_int_equal(tu_count(log, "service=app state=unhealthy"), 0);
  assert_int_equal(tu_count(log, "service=app action=restart"), 0);
  free(log);
  wait_connected();
  tsvc_status_t st = tu_status(m, "app");
  assert_int_equal(st.restarts_total, 0);
  assert_int_equal(st.nwaiting, 0);
  assert_true(st.running);
  tsvc_status_clear(&st);
  char out[512];
  /* The app's command really needs postgres: from inside it, now. */
  assert_int_equal(tu_sh(out, sizeof out,
                          "docker exec %sapp pg_isready -h pg -U tanuki -d tanuki_dev", g_prefix),
                   0);

  /* 2. restart: true. A person restarts pg: app is restarted once pg is
     healthy again (a new StartedAt), and is healthy. */
  char before[64], after[64];
  started_at("app", before, sizeof before);
  rc = tsvc_manager_restart(m, "pg", err, sizeof err);
  if (rc) fail_msg("restart pg: %s: %s", tsvc_strerror(rc), err);
  int64_t end = tsvc_wall_ms() + 60000;
  for (;;) {
    started_at("app", after, sizeof after);
    if (strcmp(before, after) != 0) break;
    if (tsvc_wall_ms() > end) fail_msg("app was not restarted after pg's restart");
    tu_sleep_ms(200);
  }
  tu_wait_state(m, "app", TSVC_STATE_HEALTHY, 30000, NULL, NULL);
  wait_connected();
  log = tu_log_since(0);
  const char *pos = NULL;
  line_time(log, &pos, "pg", "action=restart", NULL);
  int64_t pg_back = line_time(log, &pos, "pg", "state=healthy", NULL);
  const char *apos = NULL;
  int64_t app_re = line_time(log, &apos, "app", "action=restart",
                             "pg restarted (depends_on: restart: true)");
  if (!pg_back || !app_re) fail_msg("missing lines:\n%s", log);
  assert_true(app_re >= pg_back);
  assert_int_equal(tu_count(log, "service=app action=restart"), 1);
  assert_int_equal(tu_count(log, "service=app state=unhealthy"), 0);
  free(log);

  /* 3. pg stopped by a person: app keeps running (nothing restarts it),
     but its command would now fail. */
  rc = tsvc_manager_stop(m, "pg", err, sizeof err);
  if (rc) fail_msg("stop pg: %s: %s", tsvc_strerror(rc), err);
  assert_int_not_equal(tu_sh(out, sizeof out,
                              "docker exec %sapp pg_isready -h pg -U tanuki -d tanuki_dev -t 1",
                              g_prefix),
                       0);
  /* A person's restart of app is held: status says what for; at
     depends_timeout (3s now, applied in place by a reload) it fails,
     naming pg. */
  write_config("3s");
  rc = tsvc_manager_reload(m, err, sizeof err);
  if (rc) fail_msg("reload: %s: %s", tsvc_strerror(rc), err);
  static restart_job_t job; /* outlives this frame when a test fails */
  job = (restart_job_t){.m = m};
  assert_int_equal(pthread_create(&g_th, NULL, restart_thread, &job), 0);
  g_th_live = true;
  end = tsvc_wall_ms() + 10000;
  for (;;) {
    st = tu_status(m, "app");
    if (st.nwaiting) break;
    tsvc_status_clear(&st);
    if (tsvc_wall_ms() > end) fail_msg("app's restart was never held");
    tu_sleep_ms(50);
  }
  assert_int_equal(st.state, TSVC_STATE_RESTARTING);
  assert_int_equal(st.nwaiting, 1);
  assert_string_equal(st.waiting_for[0].service, "pg");
  assert_string_equal(st.waiting_for[0].condition, "service_healthy");
  assert_int_equal(st.waiting_for[0].state, TSVC_STATE_STOPPED);
  assert_true(st.wait_until_ms > tsvc_wall_ms());
  tsvc_status_clear(&st);
  started_at("app", before, sizeof before);
  pthread_join(g_th, NULL);
  g_th_live = false;
  assert_int_equal(job.rc, TSVC_ETIMEDOUT);
  assert_non_null(strstr(job.err, "gave up waiting for depends_on after 3s: pg is stopped "
                                  "(waits for it to be healthy)"));
  /* The container was left alone meanwhile. */
  started_at("app", after, sizeof after);
  assert_string_equal(before, after);

  /* 4. The restart is retried on backoff, each retry waiting again; once a
     person starts pg and it is healthy, app is restarted (the retry, or
     restart: true) and healthy. */
  tu_sleep_ms(1500);
  rc = tsvc_manager_start(m, "pg", err, sizeof err);
  if (rc) fail_msg("start pg: %s: %s", tsvc_strerror(rc), err);
  tu_wait_state(m, "pg", TSVC_STATE_HEALTHY, 60000, NULL, NULL);
  end = tsvc_wall_ms() + 60000;
  for (;;) {
    started_at("app", after, sizeof after);
    if (strcmp(before, after) != 0) break;
    if (tsvc_wall_ms() > end) fail_msg("app's retried restart never went");
    tu_sleep_ms(200);
  }
  tu_wait_state(m, "app", TSVC_STATE_HEALTHY, 30000, NULL, NULL);
  log = tu_log_since(0);
  assert_true(tu_count(log, "service=app action=restart_failed") >= 1);
  /* The restart that went came after pg was healthy again: a held retry
     let through (wait_over), or, when app's checks passed meanwhile and
     the retry was dropped, restart: true after pg's start. */
  const char *last_pg = NULL;
  for (const char *p = log; (p = strstr(p, "service=pg state=healthy")); p++) last_pg = p;
  assert_non_null(last_pg);
  assert_true(strstr(last_pg, "service=app action=wait_over") ||
              strstr(last_pg, "service=app action=restart "));
  free(log);
  st = tu_status(m, "app");
  assert_int_equal(st.nwaiting, 0);
  tsvc_status_clear(&st);

  rc = tsvc_manager_stop_services(m, err, sizeof err);
  if (rc) fail_msg("stop_services: %s: %s", tsvc_strerror(rc), err);
  tsvc_manager_free(m);
  g_m = NULL;
  g_passed = true;
}

static int group_setup(void **state) {
  (void)state;
  snprintf(g_prefix, sizeof g_prefix, "tsvc-dep-%d-", (int)getpid());
  snprintf(g_net, sizeof g_net, "%snet", g_prefix);
  snprintf(g_vol, sizeof g_vol, "%spgdata", g_prefix);
  g_dir = tu_mkdtemp("tsvc-dep");
  if (!g_dir) return -1;
  snprintf(g_cfg, sizeof g_cfg, "%s/tanuki.yaml", g_dir);
  tu_log_capture();
  return 0;
}

/* Whatever happened: our containers, volume and network go. */
static int group_teardown(void **state) {
  (void)state;
  /* First: nothing of ours may act on what is removed below. */
  if (g_th_live) pthread_join(g_th, NULL);
  tsvc_manager_free(g_m);
  g_m = NULL;
  if (!g_passed || getenv("TSVC_SCENARIO_LOG")) {
    char *log = tu_log_since(0);
    fprintf(stderr, "---- log ----\n%s---- end of log ----\n", log);
    free(log);
  }
  char why[256];
  if (!tu_docker_missing(NULL, why, sizeof why)) {
    tu_docker_rm_prefixed(g_prefix);
    tu_sh(NULL, 0, "docker volume rm %s", g_vol);
    tu_sh(NULL, 0, "docker network rm %s", g_net);
  }
  free(tu_log_end());
  tu_rmtree(g_dir);
  free(g_dir);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(app_waits_for_postgres),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
