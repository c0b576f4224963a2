/*
 * test_process_rt: the process runtime with real postgres and redis servers
 * and real commands, driven through the monitor (or directly). Every test
 * uses free ports and a temp state dir, and proves that no process of its
 * own is left behind (by process group, through /proc).
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "log/log.h"
#include "monitor/monitor.h"
#include "runtime/process.h"
#include "servers.h"
#include "testutil.h"

#define MAX_EVENTS 4096
#define MAX_GROUPS 64

typedef struct {
  uv_loop_t loop;
  tsvc_runtime_t *rt;
  tsvc_monitor_t *mon;
  tsvc_config_t *cfg;
  char *dir;   /* temp dir */
  char conf[512];  /* the config's path: <dir>/home/proj/tanuki.yaml */
  char state[512]; /* <dir>/home/proj/.tanuki */
  tsvc_process_layout_t lay;
  tsvc_mon_event_t ev[MAX_EVENTS];
  char reasons[MAX_EVENTS][128];
  char services[MAX_EVENTS][32];
  int nev;
  uv_timer_t stop_timer, poll_timer;
  bool (*pred)(void *);
  void *pred_arg;
  bool pred_met;
  int groups[MAX_GROUPS]; /* every pid seen: checked gone at the end */
  int ngroups;
  uint64_t free_ms; /* fx_teardown: how long the call to free took */
} fx_t;

static void observer(const tsvc_mon_event_t *e, void *data) {
  fx_t *f = data;
  if (f->nev == MAX_EVENTS) return;
  f->ev[f->nev] = *e;
  snprintf(f->reasons[f->nev], sizeof f->reasons[0], "%s", e->reason ? e->reason : "");
  snprintf(f->services[f->nev], sizeof f->services[0], "%s", e->service ? e->service : "");
  f->ev[f->nev].reason = f->reasons[f->nev];
  f->ev[f->nev].service = f->services[f->nev];
  f->nev++;
}

/* The temp dir of the test running: removed by after_test when the test
   failed before its own cleanup. Its processes go when this program exits
   (the runtime starts them with a parent-death signal). */
static char *g_dir;
/* A tmpfs mounted by the test running, unmounted by after_test first. */
static char *g_mount;

static int after_test(void **st) {
  (void)st;
  if (g_mount) {
    umount2(g_mount, MNT_DETACH);
    free(g_mount);
    g_mount = NULL;
  }
  if (g_dir) {
    tu_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
  }
  return 0;
}

/* Where the runtime keeps files in a test. The checkout is always
   <dir>/home/proj (the config <dir>/home/proj/tanuki.yaml):
   LAY_LOCAL  an unprivileged user's layout: everything in .tanuki; home is
              0755, so that the postgres user (the tests run as root) can
              reach it;
   LAY_ROOT   root's layout with home 0700 as /root is: data and sockets
              outside the checkout, in <dir>/var-lib/<project-id> and
              <dir>/run/<project-id> instead of /var/lib/tanuki-svc/... and
              /run/tanuki-svc/... (the ids are the real ones). */
typedef enum { LAY_LOCAL, LAY_ROOT } lay_kind_t;

static void fx_layout(fx_t *f, lay_kind_t kind) {
  char home[420], proj[440];
  snprintf(home, sizeof home, "%.400s/home", f->dir);
  snprintf(proj, sizeof proj, "%.400s/proj", home);
  if (mkdir(home, 0700) == 0) assert_int_equal(chmod(home, kind == LAY_ROOT ? 0700 : 0755), 0);
  if (mkdir(proj, 0755) == 0) assert_int_equal(chmod(proj, 0755), 0);
  snprintf(f->conf, sizeof f->conf, "%s/tanuki.yaml", proj);
  snprintf(f->state, sizeof f->state, "%s/.tanuki", proj);
  char err[256];
  int rc = tsvc_process_layout_init(&f->lay, f->conf, f->state, kind == LAY_ROOT, err, sizeof err);
  if (rc) fprintf(stderr, "layout: %s\n", err);
  assert_int_equal(rc, 0);
  if (kind == LAY_ROOT) {
    /* The real roots with the test's dir in front. */
    char id[64];
    snprintf(id, sizeof id, "%s", strrchr(f->lay.data_root, '/') + 1);
    assert_string_equal(strrchr(f->lay.run_dir, '/') + 1, id);
    snprintf(f->lay.data_root, sizeof f->lay.data_root, "%s/var-lib/%s", f->dir, id);
    snprintf(f->lay.run_dir, sizeof f->lay.run_dir, "%s/run/%s", f->dir, id);
  }
}

/* The fixture in dir (NULL: a new temp dir). */
static void fx_setup_in(fx_t *f, const char *yaml, lay_kind_t kind, char *dir) {
  memset(f, 0, sizeof *f);
  f->cfg = tu_config("test.yaml", yaml, strlen(yaml));
  f->dir = dir ? dir : tu_mkdtemp("tsvc-proc");
  assert_non_null(f->dir);
  g_dir = f->dir;
  /* The postgres user must pass through the temp dir (mkdtemp makes it
     0700), as through /tmp or /var/lib. */
  assert_int_equal(chmod(f->dir, 0755), 0);
  fx_layout(f, kind);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  char err[256];
  int rc = tsvc_process_runtime_new(&f->loop, f->cfg, &f->lay, &f->rt, err, sizeof err);
  if (rc) fprintf(stderr, "runtime: %s\n", err);
  assert_int_equal(rc, 0);
  tu_log_capture();
  assert_int_equal(tsvc_monitor_new(&f->loop, f->rt, NULL, &f->mon), 0);
  tsvc_monitor_set_observer(f->mon, observer, f);
  assert_int_equal(tsvc_monitor_watch_runtime(f->mon), 0);
  for (size_t i = 0; i < f->cfg->nservices; i++)
    assert_int_equal(tsvc_monitor_add(f->mon, &f->cfg->services[i], NULL), 0);
  uv_timer_init(&f->loop, &f->stop_timer);
  uv_timer_init(&f->loop, &f->poll_timer);
  f->stop_timer.data = f->poll_timer.data = f;
}

static void fx_setup(fx_t *f, const char *yaml) { fx_setup_in(f, yaml, LAY_LOCAL, NULL); }

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

static void poll_pred(uv_timer_t *t) {
  fx_t *f = t->data;
  if (f->pred && f->pred(f->pred_arg)) {
    f->pred_met = true;
    uv_stop(t->loop);
  }
}

/* Run the loop until pred(arg) holds (checked every 10 ms) or ms pass. */
static bool run_until(fx_t *f, bool (*pred)(void *), void *arg, uint64_t ms) {
  f->pred = pred;
  f->pred_arg = arg;
  f->pred_met = false;
  if (pred && pred(arg)) return true;
  uv_timer_start(&f->stop_timer, stop_loop, ms, 0);
  if (pred) uv_timer_start(&f->poll_timer, poll_pred, 10, 10);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&f->stop_timer);
  uv_timer_stop(&f->poll_timer);
  f->pred = NULL;
  return f->pred_met;
}

static void run_for(fx_t *f, uint64_t ms) { run_until(f, NULL, NULL, ms); }

static void remember_group(fx_t *f, int pid) {
  for (int i = 0; i < f->ngroups; i++)
    if (f->groups[i] == pid) return;
  if (pid > 0 && f->ngroups < MAX_GROUPS) f->groups[f->ngroups++] = pid;
}

static tsvc_status_t status_of(fx_t *f, const char *name) {
  tsvc_status_t st;
  assert_int_equal(tsvc_monitor_get_status(f->mon, name, &st), 0);
  return st;
}

static tsvc_state_t state_of(fx_t *f, const char *name) {
  tsvc_status_t st = status_of(f, name);
  tsvc_state_t s = st.state;
  tsvc_status_clear(&st);
  return s;
}

static int pid_of(fx_t *f, const char *name) {
  tsvc_status_t st = status_of(f, name);
  int pid = st.running ? st.pid : 0;
  tsvc_status_clear(&st);
  remember_group(f, pid);
  return pid;
}

typedef struct {
  fx_t *f;
  const char *name;
  tsvc_state_t state;
  const char *name2; /* optional second service in the same state */
} want_t;

/* The service is in the state, and for healthy its pid is known. */
static bool in_state(void *arg) {
  want_t *w = arg;
  const char *names[] = {w->name, w->name2};
  for (int i = 0; i < 2; i++) {
    if (!names[i]) continue;
    tsvc_status_t st = status_of(w->f, names[i]);
    bool ok = st.state == w->state && (w->state != TSVC_STATE_HEALTHY || st.pid > 0);
    tsvc_status_clear(&st);
    if (!ok) return false;
  }
  return true;
}

/* The monitor's log and the services' logs on stderr (a wait failed). */
static void show_logs(fx_t *f) {
  char *log = tu_log_since(0);
  fprintf(stderr, "--- monitor log:\n%s", log);
  free(log);
  for (size_t i = 0; i < f->cfg->nservices; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/logs/%.64s.log", f->state, f->cfg->services[i].name);
    char *s = tu_read_file(path, 0);
    fprintf(stderr, "--- %s:\n%s", path, s ? s : "(none)\n");
    free(s);
  }
}

/* Run until both services are healthy (name2 may be NULL); show the logs
   when they do not become so within ms. */
static bool wait_healthy(fx_t *f, const char *name, const char *name2, uint64_t ms) {
  want_t w = {f, name, TSVC_STATE_HEALTHY, name2};
  bool ok = run_until(f, in_state, &w, ms);
  if (!ok) show_logs(f);
  return ok;
}

static bool wait_state(fx_t *f, const char *name, tsvc_state_t s, uint64_t ms) {
  want_t w = {f, name, s, NULL};
  return run_until(f, in_state, &w, ms);
}

static int count_events(const fx_t *f, tsvc_mon_event_type_t t, const char *svc) {
  int n = 0;
  for (int i = 0; i < f->nev; i++)
    if (f->ev[i].type == t && (!svc || strcmp(f->ev[i].service, svc) == 0)) n++;
  return n;
}

/* Close the monitor, free the runtime (which stops every service, from the
   loop), prove that no process is left and the loop is empty; returns the
   time from free to the empty loop (the call's own in f->free_ms). */
static uint64_t fx_teardown(fx_t *f) {
  tsvc_monitor_close(f->mon);
  uv_close((uv_handle_t *)&f->stop_timer, NULL);
  uv_close((uv_handle_t *)&f->poll_timer, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  tsvc_monitor_free(f->mon);
  uint64_t t0 = uv_hrtime();
  tsvc_runtime_free(f->rt);
  f->free_ms = (uv_hrtime() - t0) / 1000000;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uint64_t took = (uv_hrtime() - t0) / 1000000;
  assert_int_equal(uv_loop_close(&f->loop), 0);
  for (int i = 0; i < f->ngroups; i++) assert_int_equal(tu_group_alive(f->groups[i]), 0);
  tsvc_config_free(f->cfg);
  free(tu_log_end());
  return took;
}

static void fx_cleanup(fx_t *f) {
  tu_rmtree(f->dir);
  free(f->dir);
  g_dir = NULL;
}

static char *file_in(fx_t *f, const char *rel) {
  char path[1024];
  snprintf(path, sizeof path, "%.500s/%.400s", f->state, rel);
  return tu_read_file(path, 0);
}

static bool exists_in(fx_t *f, const char *rel) {
  char path[1024];
  snprintf(path, sizeof path, "%.500s/%.400s", f->state, rel);
  return access(path, F_OK) == 0;
}

/* psql over 127.0.0.1 as the configured user with its password. */
static int psql(int port, const char *password, const char *sql, char *out, size_t outlen) {
  char portbuf[16], pw[128];
  snprintf(portbuf, sizeof portbuf, "%d", port);
  snprintf(pw, sizeof pw, "PGPASSWORD=%s", password);
  char *argv[] = {"psql", "-X", "-q", "-h", "127.0.0.1", "-p", portbuf, "-U", "tanuki", "-d",
                  "tanuki_dev", "-tA", "-v", "ON_ERROR_STOP=1", "-c", (char *)sql, NULL};
  char *env[] = {pw, NULL};
  return tu_cmd(argv, false, env, out, outlen);
}

static void trim(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) s[--n] = '\0';
}

#define PG_SVC                                                                      \
  "  postgres:\n"                                                                   \
  "    image: postgres:16\n"                                                        \
  "    port: %d\n"                                                                  \
  "    environment: {POSTGRES_USER: tanuki, POSTGRES_PASSWORD: s3cret-pw,\n"         \
  "                  POSTGRES_DB: tanuki_dev}\n"                                    \
  "    healthcheck: {interval: 200ms, timeout: 1s, retries: 2, start_period: 20s,\n" \
  "                  start_interval: 100ms}\n"                                      \
  "    restart: {max_restarts: 3, window: 1m, backoff: 200ms, max_backoff: 1s,\n"    \
  "              cooldown: 0s, stop_timeout: 5s}\n"

#define REDIS_SVC                                                                   \
  "  redis:\n"                                                                      \
  "    image: redis:7\n"                                                            \
  "    port: %d\n"                                                                  \
  "    healthcheck: {interval: 100ms, timeout: 200ms, retries: 2, start_period: 5s,\n" \
  "                  start_interval: 50ms}\n"                                       \
  "    restart: {max_restarts: 3, window: 1m, backoff: 200ms, max_backoff: 1s,\n"    \
  "              cooldown: 0s, stop_timeout: 3s}\n"

/* postgres and redis are here, or the test is skipped (a failure under
   CI: tu_missing). */
static void need_servers(void) {
  char why[256];
  if (!tu_pg_available(why, sizeof why) || !tu_redis_available(why, sizeof why)) tu_missing(why);
}

/* ---- tests ----------------------------------------------------------------- */

/* Built-in recipes: postgres (initdb, user, password, database) and redis
   become healthy; logs and data land in the state dir. */
static void recipes_become_healthy(void **st) {
  (void)st;
  need_servers();
  int pgport = tu_free_port(), rport = tu_free_port();
  char yaml[2048];
  snprintf(yaml, sizeof yaml, "services:\n" PG_SVC REDIS_SVC, pgport, rport);
  fx_t f;
  fx_setup(&f, yaml);
  uv_update_time(&f.loop); /* the loop's clock is stale after psql / redis-cli */
  uint64_t t0 = uv_now(&f.loop);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "postgres", NULL, NULL), 0);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "redis", NULL, NULL), 0);
  want_t w = {&f, "postgres", TSVC_STATE_HEALTHY, "redis"};
  assert_true(run_until(&f, in_state, &w, 30000));
  fprintf(stderr, "both healthy after %llu ms\n", (unsigned long long)(uv_now(&f.loop) - t0));
  int pgpid = pid_of(&f, "postgres"), rpid = pid_of(&f, "redis");
  assert_true(pgpid > 0 && rpid > 0);
  /* Each in its own process group (session). */
  assert_int_equal(getpgid(pgpid), pgpid);
  assert_int_equal(getpgid(rpid), rpid);

  /* Postgres: the user, password and database of the config. */
  char out[256];
  assert_int_equal(psql(pgport, "s3cret-pw", "select current_user || '@' || current_database()",
                        out, sizeof out), 0);
  trim(out);
  assert_string_equal(out, "tanuki@tanuki_dev");
  assert_int_not_equal(psql(pgport, "wrong", "select 1", out, sizeof out), 0);
  /* Redis answers on its port. */
  tu_redis_t r = {.port = rport};
  const char *ping[] = {"ping", NULL};
  assert_int_equal(tu_redis_cli(&r, ping, out, sizeof out), 0);
  trim(out);
  assert_string_equal(out, "PONG");

  /* State dir: data, socket, logs; no password file left; redis.conf private. */
  assert_true(exists_in(&f, "data/postgres/PG_VERSION"));
  assert_false(exists_in(&f, "data/postgres.init"));
  assert_false(exists_in(&f, "data/postgres.pwfile"));
  assert_false(exists_in(&f, "run/postgres.pwfile"));
  char sock[64];
  snprintf(sock, sizeof sock, "run/.s.PGSQL.%d", pgport);
  assert_true(exists_in(&f, sock));
  struct stat sb;
  /* The socket directory is the postgres user's alone. */
  assert_int_equal(stat(f.lay.run_dir, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  char conf[1024];
  snprintf(conf, sizeof conf, "%s/data/redis/redis.conf", f.state);
  assert_int_equal(stat(conf, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  char *log = file_in(&f, "logs/postgres.log");
  assert_non_null(log);
  assert_non_null(strstr(log, "initdb "));
  assert_non_null(strstr(log, "creating database tanuki_dev"));
  assert_non_null(strstr(log, "database system is ready to accept connections"));
  assert_null(strstr(log, "s3cret-pw"));
  free(log);
  log = file_in(&f, "logs/redis.log");
  assert_non_null(log);
  assert_non_null(strstr(log, "Ready to accept connections"));
  free(log);
  assert_int_equal(count_events(&f, TSVC_MON_EV_RESTART, NULL), 0);

  uint64_t took = fx_teardown(&f);
  fprintf(stderr, "runtime stopped in %llu ms (free: %llu ms)\n", (unsigned long long)took,
          (unsigned long long)f.free_ms);
  /* The data survive the monitor. */
  assert_true(exists_in(&f, "data/postgres/PG_VERSION"));
  assert_true(exists_in(&f, "data/redis"));
  fx_cleanup(&f);
}

static bool restarted(void *arg);

/* kill -9 of postgres: unhealthy at once (the exit), restarted, healthy,
   and the data written before are still there. */
static void postgres_kill9_restarted_data_kept(void **st) {
  (void)st;
  need_servers();
  int port = tu_free_port();
  char yaml[2048];
  snprintf(yaml, sizeof yaml, "services:\n" PG_SVC, port);
  fx_t f;
  fx_setup(&f, yaml);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "postgres", NULL, NULL), 0);
  assert_true(wait_state(&f, "postgres", TSVC_STATE_HEALTHY, 30000));
  char out[256];
  assert_int_equal(psql(port, "s3cret-pw",
                        "create table t (v text); insert into t values ('kept')", out,
                        sizeof out), 0);
  int pid = pid_of(&f, "postgres");
  assert_true(pid > 0);
  int nev = f.nev;
  assert_int_equal(kill(pid, SIGKILL), 0);
  uv_update_time(&f.loop); /* the loop's clock is stale after psql / redis-cli */
  uint64_t t0 = uv_now(&f.loop);
  want_t w = {&f, "postgres", TSVC_STATE_HEALTHY, NULL};
  /* Unhealthy at once, by the exit: the first change after the kill, with
     the exit's reason, before the probe could have made it so (that takes
     retries = 2 failed checks; the one check in flight at the kill may fail
     first); then restarted. No wall-clock bound: on a loaded 2-core machine
     the loop's thread may wait for a core, and the order of events says
     what matters. */
  assert_true(run_until(&f, restarted, &f, 10000));
  int i = nev;
  while (i < f.nev && f.ev[i].type != TSVC_MON_EV_CHANGE) i++;
  assert_true(i < f.nev);
  assert_int_equal(f.ev[i].to, TSVC_STATE_UNHEALTHY);
  assert_string_equal(f.ev[i].reason, "killed by signal 9");
  int failed = 0;
  for (int j = nev; j < i; j++)
    if (f.ev[j].type == TSVC_MON_EV_CHECK && f.ev[j].result != TSVC_RESULT_OK) failed++;
  assert_true(failed < 2);
  fprintf(stderr, "unhealthy %lld ms after kill -9\n", (long long)(f.ev[i].now - (tsvc_ms_t)t0));
  assert_int_equal(count_events(&f, TSVC_MON_EV_RESTART, "postgres"), 1);
  assert_true(run_until(&f, in_state, &w, 30000));
  fprintf(stderr, "healthy again %llu ms after kill -9\n",
          (unsigned long long)(uv_now(&f.loop) - t0));
  int pid2 = pid_of(&f, "postgres");
  assert_true(pid2 > 0 && pid2 != pid);
  assert_int_equal(tu_group_alive(pid), 0);
  assert_int_equal(psql(port, "s3cret-pw", "select v from t", out, sizeof out), 0);
  trim(out);
  assert_string_equal(out, "kept");
  char *log = file_in(&f, "logs/postgres.log");
  assert_non_null(strstr(log, "killed by signal 9"));
  assert_int_equal(tu_count(log, "initdb "), 1); /* not initialised twice */
  free(log);
  fx_teardown(&f);
  fx_cleanup(&f);
}

static bool restarted(void *arg) { return count_events(arg, TSVC_MON_EV_RESTART, NULL) > 0; }

/* SIGSTOP of redis: checks time out up to retries, the restart's stop works
   on the stopped process (SIGCONT after SIGTERM), healthy again, data kept. */
static void redis_sigstop_timeouts_restart(void **st) {
  (void)st;
  need_servers();
  int port = tu_free_port();
  char yaml[2048];
  snprintf(yaml, sizeof yaml, "services:\n" REDIS_SVC, port);
  fx_t f;
  fx_setup(&f, yaml);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "redis", NULL, NULL), 0);
  assert_true(wait_state(&f, "redis", TSVC_STATE_HEALTHY, 10000));
  tu_redis_t r = {.port = port};
  char out[256];
  const char *set[] = {"set", "k", "v1", NULL};
  assert_int_equal(tu_redis_cli(&r, set, out, sizeof out), 0);
  int pid = pid_of(&f, "redis");
  int nev = f.nev;
  assert_int_equal(kill(pid, SIGSTOP), 0);
  uv_update_time(&f.loop); /* the loop's clock is stale after psql / redis-cli */
  uint64_t t0 = uv_now(&f.loop);
  /* Unhealthy after retries (2) timeouts, then restarted. */
  assert_true(run_until(&f, restarted, &f, 3000));
  fprintf(stderr, "restart %llu ms after SIGSTOP\n", (unsigned long long)(uv_now(&f.loop) - t0));
  assert_true(wait_state(&f, "redis", TSVC_STATE_HEALTHY, 10000));
  fprintf(stderr, "healthy again %llu ms after SIGSTOP\n",
          (unsigned long long)(uv_now(&f.loop) - t0));
  int timeouts = 0;
  for (int i = nev; i < f.nev; i++) {
    if (f.ev[i].type == TSVC_MON_EV_CHANGE && f.ev[i].to == TSVC_STATE_UNHEALTHY) break;
    if (f.ev[i].type == TSVC_MON_EV_CHECK && f.ev[i].result == TSVC_RESULT_TIMEOUT) timeouts++;
  }
  assert_int_equal(timeouts, 2);
  assert_int_equal(count_events(&f, TSVC_MON_EV_RESTART, "redis"), 1);
  int pid2 = pid_of(&f, "redis");
  assert_true(pid2 > 0 && pid2 != pid);
  assert_int_equal(tu_group_alive(pid), 0);
  const char *get[] = {"get", "k", NULL};
  assert_int_equal(tu_redis_cli(&r, get, out, sizeof out), 0);
  trim(out);
  assert_string_equal(out, "v1");
  fx_teardown(&f);
  fx_cleanup(&f);
}

/* A command that exits at once: unhealthy, restarts with backoff, failed
   after max_restarts; no restart after that. */
static void exiting_command_fails_after_max_restarts(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f,
           "services:\n"
           "  flaky:\n"
           "    process: {command: [\"/bin/false\"]}\n"
           "    healthcheck: {probe: running, interval: 100ms, timeout: 100ms, retries: 1,\n"
           "                  start_period: 1s, start_interval: 50ms}\n"
           "    restart: {max_restarts: 3, window: 1m, backoff: 100ms, max_backoff: 200ms,\n"
           "              cooldown: 0s, stop_timeout: 1s}\n");
  uv_update_time(&f.loop); /* the loop's clock is stale after psql / redis-cli */
  uint64_t t0 = uv_now(&f.loop);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "flaky", NULL, NULL), 0);
  assert_true(wait_state(&f, "flaky", TSVC_STATE_FAILED, 5000));
  uint64_t took = uv_now(&f.loop) - t0;
  fprintf(stderr, "failed after %llu ms\n", (unsigned long long)took);
  /* Restarts 2 and 3 waited 100 ms and 200 ms (+10% jitter). */
  assert_true(took >= 300);
  assert_int_equal(count_events(&f, TSVC_MON_EV_RESTART, "flaky"), 3);
  assert_int_equal(count_events(&f, TSVC_MON_EV_GAVE_UP, "flaky"), 1);
  assert_true(count_events(&f, TSVC_MON_EV_RESTART_LATER, "flaky") >= 2);
  int died = 0;
  for (int i = 0; i < f.nev; i++)
    if (f.ev[i].type == TSVC_MON_EV_CHANGE && f.ev[i].to == TSVC_STATE_UNHEALTHY &&
        strcmp(f.ev[i].reason, "exited (code 1)") == 0)
      died++;
  assert_int_equal(died, 4); /* the start and three restarts */
  run_for(&f, 600);
  assert_int_equal(state_of(&f, "flaky"), TSVC_STATE_FAILED);
  assert_int_equal(count_events(&f, TSVC_MON_EV_RESTART, "flaky"), 3);
  char *log = file_in(&f, "logs/flaky.log");
  assert_non_null(log);
  assert_int_equal(tu_count(log, "exited (code 1)"), 4);
  free(log);
  tsvc_status_t s = status_of(&f, "flaky");
  assert_false(s.running);
  tsvc_status_clear(&s);
  fx_teardown(&f);
  fx_cleanup(&f);
}

/* A person's stop: stopped, no process left, never restarted. */
static void user_stop_stays_stopped(void **st) {
  (void)st;
  need_servers();
  int port = tu_free_port();
  char yaml[2048];
  snprintf(yaml, sizeof yaml, "services:\n" REDIS_SVC, port);
  fx_t f;
  fx_setup(&f, yaml);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "redis", NULL, NULL), 0);
  assert_true(wait_state(&f, "redis", TSVC_STATE_HEALTHY, 10000));
  int pid = pid_of(&f, "redis");
  assert_int_equal(tsvc_monitor_user_stop(f.mon, "redis", NULL, NULL), 0);
  assert_true(wait_state(&f, "redis", TSVC_STATE_STOPPED, 5000));
  run_for(&f, 800);
  assert_int_equal(tu_group_alive(pid), 0);
  assert_false(tu_port_open(port));
  assert_int_equal(state_of(&f, "redis"), TSVC_STATE_STOPPED);
  assert_int_equal(count_events(&f, TSVC_MON_EV_RESTART, "redis"), 0);
  tsvc_status_t s = status_of(&f, "redis");
  assert_false(s.running);
  tsvc_status_clear(&s);
  char *log = file_in(&f, "logs/redis.log");
  assert_non_null(strstr(log, "stopping: SIGTERM to process group"));
  assert_non_null(strstr(log, "] stopped\n"));
  free(log);
  assert_true(exists_in(&f, "data/redis"));
  /* Started again by a person: the same data dir, a new process. */
  assert_int_equal(tsvc_monitor_user_start(f.mon, "redis", NULL, NULL), 0);
  assert_true(wait_state(&f, "redis", TSVC_STATE_HEALTHY, 10000));
  assert_true(pid_of(&f, "redis") != pid);
  fx_teardown(&f);
  fx_cleanup(&f);
}

/* The monitor stops: every group goes (a command whose children ignore
   SIGTERM is SIGKILLed after its stop_timeout), data dirs stay. */
/* runtime.h: free() answers an operation in flight with TSVC_ECANCELED
   from the loop, never inside the call (it answered inside free() before,
   where no caller can take an answer). */
typedef struct {
  int calls, status;
} rt_done_t;

static void rt_done(int status, const char *msg, void *data) {
  (void)msg;
  rt_done_t *d = data;
  d->calls++;
  d->status = status;
}

static void free_answers_in_flight_from_the_loop(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n"
               "  stubborn:\n"
               "    process: {command: \"trap '' TERM; sleep 300 & wait\"}\n"
               "    healthcheck: {probe: running, interval: 100ms, start_period: 1s,\n"
               "                  start_interval: 50ms}\n"
               "    restart: {stop_timeout: 300ms}\n");
  assert_int_equal(tsvc_monitor_user_start(f.mon, "stubborn", NULL, NULL), 0);
  assert_true(wait_state(&f, "stubborn", TSVC_STATE_HEALTHY, 10000));
  remember_group(&f, pid_of(&f, "stubborn"));
  tsvc_monitor_close(f.mon);
  uv_close((uv_handle_t *)&f.stop_timer, NULL);
  uv_close((uv_handle_t *)&f.poll_timer, NULL);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  tsvc_monitor_free(f.mon);
  rt_done_t d = {0};
  const tsvc_service_conf_t *svc = tsvc_config_service(f.cfg, "stubborn");
  assert_int_equal(f.rt->ops->stop(f.rt, svc, rt_done, &d), 0);
  tsvc_runtime_free(f.rt);
  assert_int_equal(d.calls, 0); /* not inside free() */
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, TSVC_ECANCELED);
  assert_int_equal(uv_loop_close(&f.loop), 0);
  for (int i = 0; i < f.ngroups; i++) assert_int_equal(tu_group_alive(f.groups[i]), 0);
  tsvc_config_free(f.cfg);
  free(tu_log_end());
  fx_cleanup(&f);
}

static void monitor_stop_leaves_nothing(void **st) {
  (void)st;
  need_servers();
  int port = tu_free_port();
  char yaml[4096];
  snprintf(yaml, sizeof yaml,
           "services:\n" REDIS_SVC
           "  worker:\n"
           "    process: {command: \"sleep 300 & sleep 300 & wait\"}\n"
           "    healthcheck: {probe: running, interval: 100ms, start_period: 1s,\n"
           "                  start_interval: 50ms}\n"
           "    restart: {stop_timeout: 2s}\n"
           "  stubborn:\n"
           "    process: {command: \"trap '' TERM; sleep 300 & sleep 300 & wait\"}\n"
           "    healthcheck: {probe: running, interval: 100ms, start_period: 1s,\n"
           "                  start_interval: 50ms}\n"
           "    restart: {stop_timeout: 300ms}\n",
           port);
  fx_t f;
  fx_setup(&f, yaml);
  const char *names[] = {"redis", "worker", "stubborn"};
  for (int i = 0; i < 3; i++) assert_int_equal(tsvc_monitor_user_start(f.mon, names[i], NULL, NULL), 0);
  for (int i = 0; i < 3; i++) assert_true(wait_state(&f, names[i], TSVC_STATE_HEALTHY, 10000));
  run_for(&f, 200); /* the shells have started their sleeps */
  int pids[3];
  for (int i = 0; i < 3; i++) {
    pids[i] = pid_of(&f, names[i]);
    assert_true(pids[i] > 0);
  }
  assert_true(tu_group_alive(pids[1]) >= 3); /* sh and two sleeps */
  assert_true(tu_group_alive(pids[2]) >= 3);
  uint64_t took = fx_teardown(&f); /* checks every group is gone */
  fprintf(stderr, "runtime free: the call %llu ms, the loop empty after %llu ms\n",
          (unsigned long long)f.free_ms, (unsigned long long)took);
  /* stubborn needed its stop_timeout and a SIGKILL; the others went on
     SIGTERM meanwhile. */
  assert_true(took >= 300 && took < 2500);
  /* free only signals and returns: the deadlines are kept on the loop.
     A free that waited for any group would take at least stubborn's
     stop_timeout (300 ms). */
  assert_true(f.free_ms < 300);
  for (int i = 0; i < 3; i++) assert_int_equal(tu_group_alive(pids[i]), 0);
  char *log = file_in(&f, "logs/stubborn.log");
  assert_non_null(log);
  assert_non_null(strstr(log, "monitor exiting: stopping process group"));
  free(log);
  assert_true(exists_in(&f, "data/redis/appendonlydir"));
  fx_cleanup(&f);
}

/* ---- the runtime on its own ------------------------------------------------ */

typedef struct {
  int calls;
  int status;
  char msg[1024];
} done_t;

static void done_cb(int status, const char *msg, void *data) {
  done_t *d = data;
  d->calls++;
  d->status = status;
  snprintf(d->msg, sizeof d->msg, "%s", msg ? msg : "");
}

static bool done_called(void *arg) { return ((done_t *)arg)->calls > 0; }

/* A port already taken: the start fails with a clear message and nothing
   is spawned. */
static void port_in_use_fails_start(void **st) {
  (void)st;
  tu_fake_t fake;
  assert_int_equal(tu_fake_start(&fake, TU_FAKE_HANG, NULL, 0), 0);
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "services:\n"
           "  redis:\n"
           "    image: redis:7\n"
           "    port: %d\n",
           fake.port);
  fx_t f;
  fx_setup(&f, yaml);
  const tsvc_service_conf_t *svc = &f.cfg->services[0];
  done_t d = {0};
  assert_int_equal(f.rt->ops->start(f.rt, svc, done_cb, &d), 0);
  assert_int_equal(d.calls, 0); /* never from inside the call */
  assert_true(run_until(&f, done_called, &d, 3000));
  assert_int_equal(d.status, TSVC_ERUNTIME);
  char want[128];
  snprintf(want, sizeof want, "port %d on 127.0.0.1 is already in use", fake.port);
  assert_string_equal(d.msg, want);
  /* A second operation while none is in flight is fine; inspect: nothing. */
  char *log = file_in(&f, "logs/redis.log");
  assert_non_null(strstr(log, want));
  assert_null(strstr(log, "started"));
  free(log);
  fx_teardown(&f);
  tu_fake_stop(&fake);
  fx_cleanup(&f);
}

typedef struct {
  int calls;
  tsvc_rt_info_t info;
} info_t;

static bool all_done(void *arg) {
  done_t *d = arg;
  for (int i = 0; i < 40; i++)
    if (d[i].calls == 0) return false;
  return true;
}

static void info_cb(int status, const char *msg, const tsvc_rt_info_t *info, void *data) {
  info_t *i = data;
  (void)msg;
  assert_int_equal(status, 0);
  i->calls++;
  i->info = *info;
}

static bool info_called(void *arg) { return ((info_t *)arg)->calls > 0; }

static tsvc_rt_info_t inspect(fx_t *f, const tsvc_service_conf_t *svc) {
  info_t i = {0};
  assert_int_equal(f->rt->ops->inspect(f->rt, svc, info_cb, &i), 0);
  assert_int_equal(i.calls, 0);
  assert_true(run_until(f, info_called, &i, 1000));
  return i.info;
}

static bool log_has(fx_t *f, const char *rel, const char *needle) {
  char *s = file_in(f, rel);
  bool ok = s && strstr(s, needle);
  free(s);
  return ok;
}

/* Forty services, so that the runtime's index of entries by name grows
   (16 slots, kept at most half full, to 128): each one's inspection finds
   its own process, the one its own log names. */
static void many_services_found_by_name(void **st) {
  (void)st;
  tsvc_buf_t y;
  tsvc_buf_init(&y, 1 << 16);
  tsvc_buf_addf(&y, "services:\n");
  for (int i = 0; i < 40; i++)
    tsvc_buf_addf(&y, "  s%02d:\n    process: {command: [sleep, \"300\"]}\n", i);
  assert_non_null(y.data);
  fx_t f;
  fx_setup(&f, y.data);
  tsvc_buf_free(&y);
  done_t d[40] = {{0}};
  for (int i = 0; i < 40; i++)
    assert_int_equal(f.rt->ops->start(f.rt, &f.cfg->services[i], done_cb, &d[i]), 0);
  assert_true(run_until(&f, all_done, d, 10000));
  int pids[40];
  for (int i = 0; i < 40; i++) {
    assert_int_equal(d[i].status, 0);
    const tsvc_service_conf_t *svc = &f.cfg->services[i];
    tsvc_rt_info_t info = inspect(&f, svc);
    assert_true(info.running);
    assert_string_equal(info.name, svc->name);
    pids[i] = info.pid;
    remember_group(&f, info.pid);
    for (int j = 0; j < i; j++) assert_int_not_equal(pids[j], pids[i]);
    char rel[64], want[64];
    snprintf(rel, sizeof rel, "logs/%s.log", svc->name);
    snprintf(want, sizeof want, "started %s (pid %d)", svc->name, info.pid);
    assert_true(log_has(&f, rel, want));
  }
  /* A second start of each finds it running (the same entry). */
  memset(d, 0, sizeof d);
  for (int i = 0; i < 40; i++)
    assert_int_equal(f.rt->ops->start(f.rt, &f.cfg->services[i], done_cb, &d[i]), 0);
  assert_true(run_until(&f, all_done, d, 10000));
  for (int i = 0; i < 40; i++) {
    assert_int_equal(d[i].status, 0);
    assert_int_equal(inspect(&f, &f.cfg->services[i]).pid, pids[i]);
  }
  fx_teardown(&f); /* every group gone */
  fx_cleanup(&f);
}

typedef struct {
  fx_t *f;
  const char *rel, *needle;
} log_want_t;

static bool log_has_pred(void *arg) {
  log_want_t *w = arg;
  return log_has(w->f, w->rel, w->needle);
}

/* A command: environment (ours + environment + process.env, later wins),
   workdir, inspect before/while/after, and a stop straight through the
   runtime. */
static void command_env_workdir_inspect_stop(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f,
           "services:\n"
           "  app:\n"
           "    environment: {A: from-environment, B: from-environment}\n"
           "    process:\n"
           "      command: \"echo \\\"cwd=$(pwd) A=$A B=$B\\\"; exec sleep 300\"\n"
           "      env: {B: from-process-env}\n"
           "      workdir: /tmp\n"
           "    restart: {stop_timeout: 2s}\n");
  const tsvc_service_conf_t *svc = &f.cfg->services[0];
  tsvc_rt_info_t in = inspect(&f, svc);
  assert_false(in.exists);
  assert_false(in.running);
  assert_string_equal(in.host, "127.0.0.1");
  char host[64];
  f.rt->ops->probe_host(f.rt, svc, host, sizeof host);
  assert_string_equal(host, "127.0.0.1");
  assert_null(f.rt->ops->exec);

  done_t d = {0};
  assert_int_equal(f.rt->ops->start(f.rt, svc, done_cb, &d), 0);
  assert_true(run_until(&f, done_called, &d, 3000));
  assert_int_equal(d.status, 0);
  in = inspect(&f, svc);
  assert_true(in.exists && in.running && in.pid > 0);
  assert_int_equal(in.exit_code, -1);
  remember_group(&f, in.pid);
  log_want_t w = {&f, "logs/app.log", "cwd=/tmp A=from-environment B=from-process-env"};
  assert_true(run_until(&f, log_has_pred, &w, 2000));
  /* A start of a running service is a no-op. */
  d.calls = 0;
  assert_int_equal(f.rt->ops->start(f.rt, svc, done_cb, &d), 0);
  assert_true(run_until(&f, done_called, &d, 3000));
  assert_int_equal(d.status, 0);
  assert_int_equal(inspect(&f, svc).pid, in.pid);

  d.calls = 0;
  assert_int_equal(f.rt->ops->stop(f.rt, svc, done_cb, &d), 0);
  assert_true(run_until(&f, done_called, &d, 3000));
  assert_int_equal(d.status, 0);
  assert_int_equal(tu_group_alive(in.pid), 0);
  tsvc_rt_info_t after = inspect(&f, svc);
  assert_true(after.exists);
  assert_false(after.running);
  assert_int_equal(after.pid, 0);
  assert_int_equal(after.exit_code, 128 + SIGTERM);
  assert_true(log_has(&f, "logs/app.log", "killed by signal 15"));
  fx_teardown(&f);
  fx_cleanup(&f);
}

/* Output goes to the log, rotated at the limit: <name>.log.1, nothing
   lost, each file within the limit. */
static void log_rotates_at_limit(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f,
           "services:\n"
           "  chatty:\n"
           "    process:\n"
           "      command: \"i=0; while [ $i -lt 3000 ]; do echo \\\"line $i "
           "$CHATTY_FILL\\\"; i=$((i+1)); done; echo done-writing; exec sleep 300\"\n"
           "      env: {CHATTY_FILL: "
           "\"0123456789012345678901234567890123456789012345678901234567890123456789\"}\n");
  tsvc_process_runtime_set_log_max(f.rt, 64 * 1024);
  const tsvc_service_conf_t *svc = &f.cfg->services[0];
  done_t d = {0};
  assert_int_equal(f.rt->ops->start(f.rt, svc, done_cb, &d), 0);
  assert_int_equal(f.rt->ops->start(f.rt, svc, done_cb, &d), TSVC_EBUSY);
  assert_true(run_until(&f, done_called, &d, 3000));
  assert_int_equal(d.status, 0);
  char path[1024], old[1024];
  snprintf(path, sizeof path, "%s/logs/chatty.log", f.state);
  snprintf(old, sizeof old, "%s/logs/chatty.log.1", f.state);
  for (int i = 0; i < 300; i++) {
    char *s = tu_read_file(path, 0);
    bool done = s && strstr(s, "done-writing");
    free(s);
    if (done) break;
    run_for(&f, 10);
  }
  long size = tu_file_size(path), size1 = tu_file_size(old);
  assert_true(size > 0 && size <= 64 * 1024);
  assert_true(size1 > 0 && size1 <= 64 * 1024);
  char *s = tu_read_file(path, 0);
  assert_non_null(strstr(s, "line 2999 0123"));
  free(s);
  s = tu_read_file(old, 0);
  /* The last line of .log.1 is whole and the first of .log follows it. */
  size_t n = strlen(s);
  assert_true(n > 0 && s[n - 1] == '\n');
  free(s);
  fx_teardown(&f);
  fx_cleanup(&f);
}

/* The monitor dies hard (no free): the kernel kills the service's main
   process (setpriv --pdeathsig). */
static void monitor_death_kills_children(void **st) {
  (void)st;
  if (!tu_which("setpriv")) tu_missing("setpriv (util-linux) is not installed");
  char *dir = tu_mkdtemp("tsvc-proc");
  g_dir = dir;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    /* The "monitor": start a service, report its pid, die. */
    close(fds[0]);
    const char *yaml = "services:\n  sleeper:\n    process: {command: [\"sleep\", \"300\"]}\n";
    tsvc_config_t *cfg;
    tsvc_diag_t d = {0};
    uv_loop_t loop;
    tsvc_runtime_t *rt;
    char err[256], conf[512], state[512];
    snprintf(conf, sizeof conf, "%s/tanuki.yaml", dir);
    snprintf(state, sizeof state, "%s/.tanuki", dir);
    if (tsvc_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &d) != 0) _exit(2);
    uv_loop_init(&loop);
    tsvc_process_layout_t lay;
    if (tsvc_process_layout_init(&lay, conf, state, false, err, sizeof err) != 0) _exit(3);
    if (tsvc_process_runtime_new(&loop, cfg, &lay, &rt, err, sizeof err) != 0) _exit(3);
    done_t dn = {0};
    if (rt->ops->start(rt, &cfg->services[0], done_cb, &dn) != 0) _exit(4);
    /* The runtime's handles do not keep the loop alive: a timer does. */
    uv_timer_t keep;
    uv_timer_init(&loop, &keep);
    uv_timer_start(&keep, stop_loop, 5000, 0);
    while (dn.calls == 0 && uv_is_active((uv_handle_t *)&keep)) uv_run(&loop, UV_RUN_ONCE);
    /* The pid, from the log line of the runtime. */
    char path[1024];
    snprintf(path, sizeof path, "%s/logs/sleeper.log", state);
    char *s = tu_read_file(path, 0);
    const char *p = s ? strstr(s, "(pid ") : NULL;
    int pid = p ? (int)strtol(p + 5, NULL, 10) : 0;
    if (write(fds[1], &pid, sizeof pid) != sizeof pid) _exit(5);
    _exit(0);
  }
  close(fds[1]);
  int pid = 0;
  assert_int_equal(read(fds[0], &pid, sizeof pid), sizeof pid);
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(pid > 0);
  assert_int_equal(tu_group_wait_gone(pid, 2000), 0);
  tu_rmtree(dir);
  free(dir);
  g_dir = NULL;
}

/* ---- where the files are, and who may reach them ---------------------------- */

/* Run a shell command line; its stdout and stderr in out. Returns its exit
   status, or -1. */
static int sh(char *out, size_t outlen, const char *fmt, ...) TSVC_PRINTF(3, 4);
static int sh(char *out, size_t outlen, const char *fmt, ...) {
  /* From /: another user cannot enter the working directory when the build
     tree is under /root (psql would complain first). */
  va_list ap;
  va_start(ap, fmt);
  int rc = tu_vsh("/", out, outlen, fmt, ap);
  va_end(ap);
  return rc;
}

static bool path_exists(const char *fmt, const char *a, const char *b) {
  char path[2 * PATH_MAX];
  snprintf(path, sizeof path, fmt, a, b);
  return access(path, F_OK) == 0;
}

#define PG_SVC_AT(extra)                                                            \
  "  postgres:\n"                                                                   \
  "    image: postgres:16\n"                                                        \
  "    port: %d\n"                                                                  \
  "    environment: {POSTGRES_USER: tanuki, POSTGRES_PASSWORD: s3cret-pw,\n"         \
  "                  POSTGRES_DB: tanuki_dev}\n"                                    \
  "    healthcheck: {interval: 200ms, timeout: 1s, retries: 2, start_period: 20s,\n" \
  "                  start_interval: 100ms}\n"                                      \
  "    restart: {max_restarts: 3, window: 1m, backoff: 200ms, max_backoff: 1s,\n"    \
  "              cooldown: 0s, stop_timeout: 5s}\n" extra

/* Redis whose password is set, as REDIS_PASSWORD (REDIS_PW_ENV) or only as
   the -a of its healthcheck's redis-cli (REDIS_PW_HC). */
#define REDIS_PW_SVC(env, hc)                                                        \
  "  redis:\n"                                                                      \
  "    image: redis:7\n"                                                            \
  "    port: %d\n"                                                                  \
  env                                                                               \
  "    healthcheck: {" hc "interval: 100ms, timeout: 1s, retries: 2,\n"             \
  "                  start_period: 5s, start_interval: 50ms}\n"                     \
  "    restart: {max_restarts: 3, window: 1m, backoff: 200ms, max_backoff: 1s,\n"    \
  "              cooldown: 0s, stop_timeout: 3s}\n"
#define REDIS_PW_ENV "    environment: {REDIS_PASSWORD: r3dis-pw}\n"
#define REDIS_PW_HC "command: [\"redis-cli\", \"-a\", \"r3dis-pw\", \"ping\"], "

/* As root with the checkout in a 0700 directory (a clone under /root):
   postgres and redis become healthy with their data and sockets outside
   it; no other local user reaches either without the password. */
static void root_layout_private_checkout(void **st) {
  (void)st;
  need_servers();
  if (geteuid() != 0) tu_missing("root's layout needs root (scripts/test.sh runs as root)");
  int pgport = tu_free_port(), rport = tu_free_port();
  char yaml[4096];
  snprintf(yaml, sizeof yaml, "services:\n" PG_SVC_AT("") REDIS_PW_SVC(REDIS_PW_ENV, ""), pgport,
           rport);
  fx_t f;
  fx_setup_in(&f, yaml, LAY_ROOT, NULL);
  struct stat sb;
  char home[600];
  snprintf(home, sizeof home, "%s/home", f.dir);
  assert_int_equal(stat(home, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700); /* as /root */
  assert_int_equal(tsvc_monitor_user_start(f.mon, "postgres", NULL, NULL), 0);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "redis", NULL, NULL), 0);
  assert_true(wait_healthy(&f, "postgres", "redis", 30000));
  pid_of(&f, "postgres");
  pid_of(&f, "redis");

  /* Data outside the checkout, named by the project id; logs inside. */
  assert_true(path_exists("%s/%s", f.lay.data_root, "postgres/PG_VERSION"));
  assert_true(path_exists("%s/%s", f.lay.data_root, "redis/redis.conf"));
  assert_false(exists_in(&f, "data"));
  assert_false(exists_in(&f, "run"));
  assert_true(exists_in(&f, "logs/postgres.log"));
  char dir[PATH_MAX], want[PATH_MAX + 16];
  bool old = true;
  assert_int_equal(tsvc_process_data_dir(&f.lay, &f.cfg->services[0], dir, sizeof dir, &old), 0);
  snprintf(want, sizeof want, "%s/postgres", f.lay.data_root);
  assert_string_equal(dir, want);
  assert_false(old);

  /* The socket directory: 0700, the postgres user's; no password file. */
  struct passwd *pg = getpwnam("postgres");
  assert_non_null(pg);
  assert_int_equal(stat(f.lay.run_dir, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  assert_int_equal(sb.st_uid, pg->pw_uid);
  assert_true(path_exists("%s/%s", f.lay.run_dir, "postgres.pwfile") == false);
  char sockname[64];
  snprintf(sockname, sizeof sockname, ".s.PGSQL.%d", pgport);
  assert_true(path_exists("%s/%s", f.lay.run_dir, sockname));

  char out[2048];
  const char *psql_args = "-X -w -q -tA -U tanuki -d tanuki_dev -c 'select 1'";
  /* Another local user: not even to the socket... */
  int rc = sh(out, sizeof out, "runuser -u nobody -- psql -h %s -p %d %s", f.lay.run_dir, pgport,
              psql_args);
  fprintf(stderr, "nobody, socket: exit %d: %s\n", rc, out);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(out, "Permission denied"));
  /* ... nor over TCP without the password. */
  rc = sh(out, sizeof out, "runuser -u nobody -- env -u PGPASSWORD psql -h 127.0.0.1 -p %d %s",
          pgport, psql_args);
  fprintf(stderr, "nobody, tcp: exit %d: %s\n", rc, out);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(out, "password"));
  /* Even the postgres user needs the password on the socket (no trust)... */
  rc = sh(out, sizeof out, "runuser -u postgres -- env -u PGPASSWORD psql -h %s -p %d %s",
          f.lay.run_dir, pgport, psql_args);
  fprintf(stderr, "postgres, socket, no password: exit %d: %s\n", rc, out);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(out, "password"));
  /* ... and gets in with it. */
  rc = sh(out, sizeof out, "runuser -u postgres -- env PGPASSWORD=s3cret-pw psql -h %s -p %d %s",
          f.lay.run_dir, pgport, psql_args);
  assert_int_equal(rc, 0);
  trim(out);
  assert_string_equal(out, "1");

  /* Redis: NOAUTH without the password, PONG with it. */
  rc = sh(out, sizeof out, "runuser -u nobody -- redis-cli -h 127.0.0.1 -p %d ping", rport);
  fprintf(stderr, "nobody, redis: exit %d: %s\n", rc, out);
  assert_non_null(strstr(out, "NOAUTH"));
  rc = sh(out, sizeof out, "redis-cli -h 127.0.0.1 -p %d -a r3dis-pw --no-auth-warning ping",
          rport);
  assert_int_equal(rc, 0);
  trim(out);
  assert_string_equal(out, "PONG");
  fx_teardown(&f);
  fx_cleanup(&f);
}

/* Data made by an older version beside the config (.tanuki/data/<name>)
   are found and used as root, never initialised again; when the postgres
   user can no longer reach them the start fails saying where and what to
   do, and they are left alone. */
static void old_layout_found_and_used(void **st) {
  (void)st;
  need_servers();
  if (geteuid() != 0) tu_missing("root's layout needs root (scripts/test.sh runs as root)");
  int pgport = tu_free_port(), rport = tu_free_port();
  char yaml[4096];
  snprintf(yaml, sizeof yaml, "services:\n" PG_SVC_AT("") REDIS_PW_SVC("", REDIS_PW_HC), pgport,
           rport);
  const char *auth[] = {"-a", "r3dis-pw", "--no-auth-warning", NULL, NULL, NULL, NULL};
  tu_redis_t r = {.port = rport};
  char out[256];

  /* 1. The older layout: everything under .tanuki. */
  fx_t f;
  fx_setup_in(&f, yaml, LAY_LOCAL, NULL);
  char *dir = f.dir;
  assert_int_equal(tsvc_monitor_user_start(f.mon, "postgres", NULL, NULL), 0);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "redis", NULL, NULL), 0);
  assert_true(wait_healthy(&f, "postgres", "redis", 30000));
  pid_of(&f, "postgres");
  pid_of(&f, "redis");
  assert_int_equal(psql(pgport, "s3cret-pw",
                        "create table t (v text); insert into t values ('kept')", out,
                        sizeof out), 0);
  /* The healthcheck's -a is the password redis requires. */
  const char *ping[] = {"ping", NULL};
  assert_int_equal(tu_redis_cli(&r, ping, out, sizeof out), 0);
  assert_non_null(strstr(out, "NOAUTH"));
  auth[3] = "set", auth[4] = "k", auth[5] = "v1";
  assert_int_equal(tu_redis_cli(&r, auth, out, sizeof out), 0);
  fx_teardown(&f);
  assert_true(exists_in(&f, "data/postgres/PG_VERSION"));

  /* 2. As root now: the data beside the config are used. */
  fx_setup_in(&f, yaml, LAY_ROOT, dir);
  char path[PATH_MAX], want[PATH_MAX + 16];
  bool old = false;
  assert_int_equal(tsvc_process_data_dir(&f.lay, &f.cfg->services[0], path, sizeof path, &old), 0);
  snprintf(want, sizeof want, "%s/data/postgres", f.state);
  assert_string_equal(path, want);
  assert_true(old);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "postgres", NULL, NULL), 0);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "redis", NULL, NULL), 0);
  assert_true(wait_healthy(&f, "postgres", "redis", 30000));
  pid_of(&f, "postgres");
  pid_of(&f, "redis");
  assert_int_equal(psql(pgport, "s3cret-pw", "select v from t", out, sizeof out), 0);
  trim(out);
  assert_string_equal(out, "kept");
  auth[3] = "get", auth[4] = "k", auth[5] = NULL;
  assert_int_equal(tu_redis_cli(&r, auth, out, sizeof out), 0);
  trim(out);
  assert_string_equal(out, "v1");
  assert_false(path_exists("%s/%s", f.lay.data_root, "postgres"));
  assert_false(path_exists("%s/%s", f.lay.data_root, "redis"));
  char *log = file_in(&f, "logs/postgres.log");
  assert_non_null(log);
  assert_int_equal(tu_count(log, "] initdb "), 1);
  assert_non_null(strstr(log, "made by an older version"));
  free(log);
  fx_teardown(&f);

  /* 3. The checkout moved out of the postgres user's reach (home 0700):
     a clear error, the data untouched. */
  char home[600];
  snprintf(home, sizeof home, "%s/home", dir);
  assert_int_equal(chmod(home, 0700), 0);
  fx_setup_in(&f, yaml, LAY_ROOT, dir);
  done_t d = {0};
  assert_int_equal(f.rt->ops->start(f.rt, &f.cfg->services[0], done_cb, &d), 0);
  assert_true(run_until(&f, done_called, &d, 10000));
  fprintf(stderr, "unreachable old data: %s\n", d.msg);
  assert_int_equal(d.status, TSVC_ERUNTIME);
  snprintf(want, sizeof want, "the postgres user cannot enter %s ", home);
  assert_non_null(strstr(d.msg, want));
  assert_non_null(strstr(d.msg, "process.data_dir"));
  assert_true(exists_in(&f, "data/postgres/PG_VERSION"));
  log = file_in(&f, "logs/postgres.log");
  assert_int_equal(tu_count(log, "] initdb "), 1);
  free(log);
  fx_teardown(&f);
  fx_cleanup(&f);
}

/* The paths of both layouts, process.data_dir, and the config's checks of
   it. Pure: nothing is started. */
static void layout_paths_and_data_dir(void **st) {
  (void)st;
  tsvc_process_layout_t l;
  char err[256], id[TSVC_PROJECT_ID_MAX], want[PATH_MAX + 32];
  assert_int_equal(tsvc_project_id("/root/proj/tanuki.yaml", id, sizeof id), 0);
  assert_int_equal(tsvc_process_layout_init(&l, "/root/proj/tanuki.yaml", "/root/proj/.tanuki",
                                            true, err, sizeof err), 0);
  assert_string_equal(l.state_dir, "/root/proj/.tanuki");
  assert_string_equal(l.config_dir, "/root/proj");
  snprintf(want, sizeof want, "/var/lib/tanuki-svc/%s", id);
  assert_string_equal(l.data_root, want);
  snprintf(want, sizeof want, "/run/tanuki-svc/%s", id);
  assert_string_equal(l.run_dir, want);
  assert_string_equal(l.old_data_root, "/root/proj/.tanuki/data");
  assert_int_equal(tsvc_process_layout_init(&l, "/root/proj/tanuki.yaml", "/root/proj/.tanuki/",
                                            false, err, sizeof err), 0);
  assert_string_equal(l.data_root, "/root/proj/.tanuki/data");
  assert_string_equal(l.run_dir, "/root/proj/.tanuki/run");
  assert_string_equal(l.old_data_root, "");
  /* Relative paths: against the working directory. */
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(tsvc_process_layout_init(&l, "tanuki.yaml", ".tanuki", false, err, sizeof err),
                   0);
  snprintf(want, sizeof want, "%s/.tanuki/run", cwd);
  assert_string_equal(l.run_dir, want);
  assert_string_equal(l.config_dir, cwd);
  assert_int_equal(tsvc_process_layout_init(&l, "", ".tanuki", false, err, sizeof err),
                   TSVC_EINVAL);

  /* process.data_dir: absolute, or relative to the config's directory. */
  const char *yaml = "services:\n"
                     "  postgres:\n"
                     "    process: {data_dir: /srv/pg/}\n"
                     "  redis:\n"
                     "    process: {data_dir: db/redis}\n"
                     "  redis-cache: {}\n"
                     "  app:\n"
                     "    process: {command: [\"sleep\", \"1\"]}\n";
  tsvc_config_t *cfg;
  tsvc_diag_t d = {0};
  assert_int_equal(tsvc_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &d), 0);
  tsvc_diag_free(&d);
  assert_int_equal(tsvc_process_layout_init(&l, "/nonexistent/proj/tanuki.yaml",
                                            "/nonexistent/proj/.tanuki", true, err, sizeof err),
                   0);
  char dir[PATH_MAX];
  bool old;
  assert_int_equal(tsvc_process_data_dir(&l, &cfg->services[0], dir, sizeof dir, &old), 0);
  assert_string_equal(dir, "/srv/pg");
  assert_int_equal(tsvc_process_data_dir(&l, &cfg->services[1], dir, sizeof dir, &old), 0);
  assert_string_equal(dir, "/nonexistent/proj/db/redis");
  assert_int_equal(tsvc_process_data_dir(&l, &cfg->services[2], dir, sizeof dir, &old), 0);
  snprintf(want, sizeof want, "%s/redis-cache", l.data_root);
  assert_string_equal(dir, want);
  assert_false(old);
  assert_false(tsvc_process_has_data(&cfg->services[3]));
  assert_int_equal(tsvc_process_data_dir(&l, &cfg->services[3], dir, sizeof dir, &old),
                   TSVC_EINVAL);
  /* config show prints it. */
  char *text = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&text, &len);
  assert_int_equal(tsvc_config_dump(cfg, m), 0);
  fclose(m);
  assert_non_null(strstr(text, "data_dir: /srv/pg/"));
  free(text);
  tsvc_config_free(cfg);

  /* A process.command service has no data of ours: an error where it is. */
  yaml = "services:\n"
         "  app:\n"
         "    process:\n"
         "      command: [\"sleep\", \"1\"]\n"
         "      data_dir: /srv/app\n";
  assert_int_equal(tsvc_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &d), TSVC_ECONFIG);
  assert_int_equal(d.nerrors, 1);
  assert_non_null(strstr(d.lines[0], "t.yaml:5:17: error: services.app.process.data_dir: only "
                                     "the built-in postgres and redis recipes"));
  tsvc_diag_free(&d);
  yaml = "services:\n  postgres:\n    process: {data_dir: \"\"}\n";
  assert_int_equal(tsvc_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &d), TSVC_ECONFIG);
  assert_non_null(strstr(d.lines[0], "t.yaml:3:25: error: services.postgres.process.data_dir: "
                                     "must not be empty"));
  tsvc_diag_free(&d);
}


/* initdb on a full disk (a small tmpfs as process.data_dir): the start
   fails with initdb's first error line, which names the cause, not with
   its last one ("removing contents of data directory"). */
static void initdb_full_disk_first_error_line(void **st) {
  (void)st;
  need_servers();
  char *dir = tu_mkdtemp("tsvc-proc");
  assert_non_null(dir);
  g_dir = dir;
  char small[600];
  snprintf(small, sizeof small, "%s/small", dir);
  assert_int_equal(mkdir(small, 0755), 0);
  /* 8 MiB: initdb's first WAL segment alone is 16 MiB. */
  if (mount("tsvc-small", small, "tmpfs", 0, "size=8m,mode=0755") != 0) {
    int e = errno;
    char why[700];
    snprintf(why, sizeof why, "cannot mount a tmpfs on %s: %s (root with CAP_SYS_ADMIN needed)",
             small, strerror(e));
    tu_missing(why);
  }
  g_mount = strdup(small);
  int port = tu_free_port();
  char yaml[4096];
  snprintf(yaml, sizeof yaml,
           "services:\n" PG_SVC_AT("    process: {data_dir: %s/pg}\n"), port, small);
  fx_t f;
  fx_setup_in(&f, yaml, LAY_LOCAL, dir);
  done_t d = {0};
  assert_int_equal(f.rt->ops->start(f.rt, &f.cfg->services[0], done_cb, &d), 0);
  assert_true(run_until(&f, done_called, &d, 60000));
  fprintf(stderr, "start on a full disk: %s\n", d.msg);
  assert_int_equal(d.status, TSVC_ERUNTIME);
  assert_non_null(strstr(d.msg, "initdb failed (exit code 1): FATAL:"));
  assert_non_null(strstr(d.msg, "No space left on device"));
  char *log = file_in(&f, "logs/postgres.log");
  assert_non_null(strstr(log, "removing contents of data directory")); /* the last line */
  free(log);
  fx_teardown(&f);
  assert_int_equal(umount(small), 0);
  free(g_mount);
  g_mount = NULL;
  fx_cleanup(&f);
}

static bool logged(void *arg) {
  (void)arg;
  char *log = tu_log_since(0);
  bool yes = strstr(log, "cannot write the output of full") &&
             strstr(log, "cannot write the output of blocked");
  free(log);
  return yes;
}

/* Output that cannot be written (a full disk: the log is /dev/full; an
   unwritable file: a directory where the log should be) is dropped with
   one warning in the monitor's log; the services run on. */
static void unwritable_output_warned_once(void **st) {
  (void)st;
  const char *cmd = "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; "
                    "exec sleep 300";
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "services:\n"
           "  full:\n    process: {command: \"%s\"}\n    restart: {stop_timeout: 2s}\n"
           "  blocked:\n    process: {command: \"%s\"}\n    restart: {stop_timeout: 2s}\n",
           cmd, cmd);
  fx_t f;
  fx_setup(&f, yaml);
  char path[1024];
  snprintf(path, sizeof path, "%s/logs/full.log", f.state);
  assert_int_equal(symlink("/dev/full", path), 0);
  snprintf(path, sizeof path, "%s/logs/blocked.log", f.state);
  assert_int_equal(mkdir(path, 0755), 0);
  done_t d[2] = {{0}, {0}};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(f.rt->ops->start(f.rt, &f.cfg->services[i], done_cb, &d[i]), 0);
    assert_true(run_until(&f, done_called, &d[i], 5000));
    assert_int_equal(d[i].status, 0);
  }
  assert_true(run_until(&f, logged, &f, 5000));
  run_for(&f, 300); /* the rest of their 200 lines */
  for (int i = 0; i < 2; i++) {
    tsvc_rt_info_t in = inspect(&f, &f.cfg->services[i]);
    assert_true(in.running);
    remember_group(&f, in.pid);
    /* More lines of ours that cannot be written either. */
    d[i].calls = 0;
    assert_int_equal(f.rt->ops->stop(f.rt, &f.cfg->services[i], done_cb, &d[i]), 0);
    assert_true(run_until(&f, done_called, &d[i], 5000));
    assert_int_equal(d[i].status, 0);
  }
  char *log = tu_log_since(0);
  fprintf(stderr, "%s", log);
  assert_int_equal(tu_count(log, "cannot write the output of full"), 1);
  assert_int_equal(tu_count(log, "cannot write the output of blocked"), 1);
  assert_non_null(strstr(log, "No space left on device"));
  assert_non_null(strstr(log, "Is a directory"));
  free(log);
  fx_teardown(&f);
  fx_cleanup(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(recipes_become_healthy, after_test),
      cmocka_unit_test_teardown(postgres_kill9_restarted_data_kept, after_test),
      cmocka_unit_test_teardown(redis_sigstop_timeouts_restart, after_test),
      cmocka_unit_test_teardown(exiting_command_fails_after_max_restarts, after_test),
      cmocka_unit_test_teardown(user_stop_stays_stopped, after_test),
      cmocka_unit_test_teardown(monitor_stop_leaves_nothing, after_test),
      cmocka_unit_test_teardown(free_answers_in_flight_from_the_loop, after_test),
      cmocka_unit_test_teardown(port_in_use_fails_start, after_test),
      cmocka_unit_test_teardown(many_services_found_by_name, after_test),
      cmocka_unit_test_teardown(command_env_workdir_inspect_stop, after_test),
      cmocka_unit_test_teardown(log_rotates_at_limit, after_test),
      cmocka_unit_test_teardown(monitor_death_kills_children, after_test),
      cmocka_unit_test_teardown(root_layout_private_checkout, after_test),
      cmocka_unit_test_teardown(old_layout_found_and_used, after_test),
      cmocka_unit_test(layout_paths_and_data_dir),
      cmocka_unit_test_teardown(initdb_full_disk_first_error_line, after_test),
      cmocka_unit_test_teardown(unwritable_output_warned_once, after_test),
  };
  /* TSVC_TEST_FILTER=name runs one test (cmocka's pattern). */
  if (getenv("TSVC_TEST_FILTER")) cmocka_set_test_filter(getenv("TSVC_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
