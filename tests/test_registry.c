/*
 * test_registry: pulling images from a real registry, Debian's
 * docker-registry (distribution 2.8), started by the test on
 * 127.0.0.1:<free port> with its own config and storage under the test's
 * temporary directory and stopped by its pid; the Docker engine on
 * /var/run/docker.sock pulls from it (a 127.0.0.0/8 registry is spoken to
 * over plain HTTP by default).
 *
 * The test image: tanuki/redis:7 plus a layer of 2 MiB of random bytes, so
 * that a pull downloads something whatever the engine already holds; it is
 * pushed to each registry and the local copies are removed. Then:
 *   r1  `up` (the manager) pulls it, the service turns healthy; port "H:C":
 *       redis answers on the host at H, the probe used C on the container's
 *       address; an image that does not expose the port gets the warning
 *       with its fix; figures: pull time and bytes, start to healthy with
 *       and without a pull.
 *   r2  basic auth (htpasswd, bcrypt): credentials from a config.json under
 *       DOCKER_CONFIG; a wrong password and a credential helper through
 *       `tanuki-svc pull` (exit 1, the registry's words).
 *   r3  the registry down: a clear error naming image and registry, retried
 *       on the backoff schedule, healthy once the registry is back.
 *   r4  an image the registry does not have: manifest unknown, retried on
 *       backoff until max_restarts (failed), no retry storm at the registry.
 *   r5  pull_policy never: the error says so, the registry is not asked.
 *   r6  pull_policy always: a new image under the same tag is pulled and the
 *       container recreated from it.
 *   r7  `tanuki-svc pull`: live lines on a terminal (script(1) gives it
 *       one), the two log lines into a pipe.
 *   r8  a pull that hangs (a registry that never answers) delays no other
 *       service: the next one turns healthy meanwhile.
 *
 * Missing engine, images, docker-registry or htpasswd: every test FAILS
 * when TSVC_REQUIRE_DOCKER=1 (CI), else is skipped with the reason.
 * Names: containers tsvc-test-<pid>-rN-*, network tsvc-test-<pid>-rnet,
 * images <registry>/tsvc-test-<pid>/...: all removed by the teardowns.
 * Run under `flock -s /tmp/tsvc-docker.lock` beside other docker tests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdatomic.h>
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

#define BASE_IMAGE "tanuki/redis:7"
#define REG_USER "tsvc"
#define REG_PASS "tsvc-reg-pw-1"

typedef struct {
  int port;
  pid_t pid;
  bool auth;
  char cfg[512];
  char log[512];
  char data[512];
} reg_t;

static char g_tag[64];      /* tsvc-test-<pid> */
static char g_net[96];
static char *g_dir;         /* the group's temporary directory */
static bool g_ok;
static char g_why[1024];
static reg_t g_open, g_auth; /* an open registry and one with basic auth */
static char g_img[256];     /* the test image on the open registry */
static char g_img_auth[256];/* ... on the one with auth */

/* ---- helpers ------------------------------------------------------------------ */

#define SH(...) tu_sh(NULL, 0, __VA_ARGS__)

static void need(void) { tu_need_docker(g_ok, g_why); }

/* A field's value on a log line ("size=3.0MB" -> "3.0MB"), into buf. */
static const char *field(const char *line, const char *key, char *buf, size_t len) {
  char k[64];
  snprintf(k, sizeof k, " %s=", key);
  const char *p = strstr(line, k);
  buf[0] = '\0';
  if (!p || p > strchr(line, '\n')) return buf;
  p += strlen(k);
  size_t n = *p == '"' ? strcspn(p + 1, "\"") + 2 : strcspn(p, " \n");
  if (n >= len) n = len - 1;
  memcpy(buf, p, n);
  buf[n] = '\0';
  return buf;
}

/* How many requests in the registry's log hold needle. */
static int reg_requests(const reg_t *r, const char *needle) {
  char *s = tu_read_file(r->log, 0);
  int n = tu_count(s, needle);
  free(s);
  return n;
}

/* ---- the registry ---------------------------------------------------------------- */

static int reg_start(reg_t *r) {
  char *argv[] = {"docker-registry", "serve", r->cfg, NULL};
  r->pid = tu_spawn(argv, false, r->log);
  if (r->pid < 0) return -1;
  for (int i = 0; i < 200; i++) {
    if (tu_port_open(r->port)) return 0;
    if (tu_wait_pid(r->pid, 0) != -1) break; /* it exited */
    tu_sleep_ms(50);
  }
  return -1;
}

static void reg_stop(reg_t *r) {
  if (r->pid > 0) tu_stop_pid(r->pid, SIGTERM);
  r->pid = 0;
}

static int reg_setup(reg_t *r, const char *name, bool auth) {
  r->auth = auth;
  r->port = tu_free_port();
  snprintf(r->cfg, sizeof r->cfg, "%s/%s.yml", g_dir, name);
  snprintf(r->log, sizeof r->log, "%s/%s.log", g_dir, name);
  snprintf(r->data, sizeof r->data, "%s/%s-data", g_dir, name);
  char htpasswd[600];
  snprintf(htpasswd, sizeof htpasswd, "%s/%s.htpasswd", g_dir, name);
  if (auth && SH("htpasswd -Bbc '%s' " REG_USER " " REG_PASS, htpasswd) != 0) return -1;
  char *yml = tsvc_asprintf("version: 0.1\n"
                            "log:\n  level: info\n  accesslog: {disabled: true}\n"
                            "storage:\n  filesystem: {rootdirectory: \"%s\"}\n"
                            "  delete: {enabled: true}\n"
                            "http:\n  addr: 127.0.0.1:%d\n  secret: tsvc-test\n"
                            "%s%s%s",
                            r->data, r->port, auth ? "auth:\n  htpasswd:\n    realm: tsvc\n    path: \"" : "",
                            auth ? htpasswd : "", auth ? "\"\n" : "");
  int rc = yml ? tu_write_file(r->cfg, yml) : -1;
  free(yml);
  return rc ? rc : reg_start(r);
}

/* ---- group ------------------------------------------------------------------------ */

/* tanuki/redis:7 plus 2 MiB of random bytes, as name:tag. */
static int build_image(const char *name, const char *blob_tag, char *out, size_t len) {
  char ctx[600];
  snprintf(ctx, sizeof ctx, "%s/ctx-%s", g_dir, blob_tag);
  return tu_sh(out, len,
                "mkdir -p '%s' && head -c 2097152 /dev/urandom > '%s/blob' && "
                "printf 'FROM " BASE_IMAGE "\\nCOPY blob /tsvc-blob-%s\\n' > '%s/Dockerfile' && "
                "DOCKER_BUILDKIT=0 docker build -q -t %s '%s'",
                ctx, ctx, blob_tag, ctx, name, ctx);
}

static int push(const char *image, const char *docker_config) {
  char out[4096];
  int rc = tu_sh(out, sizeof out, "%s%s%sdocker push %s", docker_config ? "DOCKER_CONFIG='" : "",
                  docker_config ? docker_config : "", docker_config ? "' " : "", image);
  if (rc) snprintf(g_why, sizeof g_why, "docker push %s: %.400s", image, out);
  return rc;
}

static void rmi(const char *image) { SH("docker rmi -f %s", image); }

static bool image_here(const char *image) { return SH("docker image inspect %s", image) == 0; }

static int group_setup(void **state) {
  (void)state;
  snprintf(g_tag, sizeof g_tag, "tsvc-test-%d", (int)getpid());
  snprintf(g_net, sizeof g_net, "%s-rnet", g_tag);
  g_dir = tu_mkdtemp("tsvc-registry");
  if (!g_dir) return -1;
  tu_log_capture();
  char out[4096];
  if (tu_docker_missing(BASE_IMAGE, g_why, sizeof g_why)) {
    /* g_why says what */
  } else if (!tu_which("docker-registry") || !tu_which("htpasswd")) {
    snprintf(g_why, sizeof g_why, "docker-registry or htpasswd missing (scripts/deps.sh --test "
             "installs docker-registry and apache2-utils)");
  } else if (reg_setup(&g_open, "open", false) || reg_setup(&g_auth, "auth", true)) {
    snprintf(g_why, sizeof g_why, "cannot start docker-registry (see %s)", g_open.log);
  } else {
    snprintf(g_img, sizeof g_img, "127.0.0.1:%d/%s/redis:7", g_open.port, g_tag);
    snprintf(g_img_auth, sizeof g_img_auth, "127.0.0.1:%d/%s/redis:7", g_auth.port, g_tag);
    char cli_cfg[600];
    snprintf(cli_cfg, sizeof cli_cfg, "%s/cli-docker", g_dir);
    int64_t t0 = tsvc_wall_ms();
    if (build_image(g_img, "v1", out, sizeof out)) {
      snprintf(g_why, sizeof g_why, "docker build: %.400s", out);
    } else if (SH("docker tag %s %s", g_img, g_img_auth) ||
               tu_sh(out, sizeof out, "echo %s | DOCKER_CONFIG='%s' docker login -u %s "
                      "--password-stdin 127.0.0.1:%d", REG_PASS, cli_cfg, REG_USER,
                      g_auth.port)) {
      snprintf(g_why, sizeof g_why, "docker tag / login: %.400s", out);
    } else if (push(g_img, NULL) == 0 && push(g_img_auth, cli_cfg) == 0) {
      g_ok = true;
      print_message("test image built and pushed to both registries in %lld ms\n",
                    (long long)(tsvc_wall_ms() - t0));
    }
    rmi(g_img);
    rmi(g_img_auth);
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  reg_stop(&g_open);
  reg_stop(&g_auth);
  if (g_ok) {
    /* Every image of ours, whatever registry name it carries. */
    char out[8192];
    tu_sh(out, sizeof out, "docker images --format '{{.Repository}}:{{.Tag}}' | grep '/%s/'",
           g_tag);
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) rmi(l);
    SH("docker network rm %s", g_net);
  }
  free(tu_log_end());
  tu_rmtree(g_dir);
  free(g_dir);
  return 0;
}

/* ---- one test's fixture ------------------------------------------------------------ */

typedef struct {
  char prefix[96];
  char cfg[600];
  tsvc_manager_t *m;
  size_t mark;
  char docker_config[600]; /* set as DOCKER_CONFIG for the test, or "" */
} fx_t;

static int fx_setup(void **state, const char *tag) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->prefix, sizeof f->prefix, "%s-%s-", g_tag, tag);
  snprintf(f->cfg, sizeof f->cfg, "%s/%s.yaml", g_dir, tag);
  f->mark = tu_log_mark();
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx_t *f = *state;
  if (!f) return 0;
  tsvc_manager_free(f->m);
  if (f->docker_config[0]) unsetenv("DOCKER_CONFIG");
  if (g_ok) {
    tu_docker_rm_prefixed(f->prefix);
    rmi(g_img);
    rmi(g_img_auth);
  }
  free(f);
  return 0;
}

#define SETUP(tag) \
  static int setup_##tag(void **state) { return fx_setup(state, #tag); }
SETUP(r1)
SETUP(r2)
SETUP(r3)
SETUP(r4)
SETUP(r5)
SETUP(r6)
SETUP(r7)
SETUP(r8)

static void write_config(fx_t *f, const char *services) {
  char *text = tsvc_asprintf("runtime: docker\n"
                             "docker:\n  network: %s\n  container_prefix: %s\n"
                             "services:\n%s",
                             g_net, f->prefix, services);
  assert_non_null(text);
  assert_int_equal(tu_write_file(f->cfg, text), 0);
  free(text);
}

/* A redis service on image, checked every 300 ms; extra YAML lines. */
static char *redis_svc(const char *name, const char *image, const char *extra) {
  return tsvc_asprintf("  %s:\n"
                       "    image: %s\n"
                       "    healthcheck: {interval: 500ms, timeout: 400ms, start_interval: 300ms, "
                       "start_period: 20s}\n"
                       "    restart: {backoff: 500ms, max_backoff: 2s, max_restarts: 20, "
                       "stop_timeout: 1s}\n"
                       "%s",
                       name, image, extra ? extra : "");
}

static void new_manager(fx_t *f) { f->m = tu_manager_new(f->cfg); }

static tsvc_state_t state_of(fx_t *f, const char *name, char *last_error, size_t len) {
  tsvc_status_t st = tu_status(f->m, name);
  tsvc_state_t s = st.state;
  if (last_error) tsvc_strlcpy(last_error, st.last_error, len);
  tsvc_status_clear(&st);
  return s;
}

/* Wait until name is healthy; fail after ms. Returns the ms it took. */
static int64_t wait_healthy(fx_t *f, const char *name, int ms) {
  int64_t t0 = tsvc_wall_ms(), end = t0 + ms;
  char err[256];
  while (state_of(f, name, err, sizeof err) != TSVC_STATE_HEALTHY) {
    if (tsvc_wall_ms() > end) {
      char *log = tu_log_since(f->mark);
      fail_msg("%s: not healthy after %d ms (last error: %s)\n%s", name, ms, err, log);
    }
    tu_sleep_ms(50);
  }
  return tsvc_wall_ms() - t0;
}

/* Send redis PING to 127.0.0.1:port from the host; true on +PONG. */
static bool redis_pong(int port) {
  char out[256];
  return tu_sh(out, sizeof out, "redis-cli -h 127.0.0.1 -p %d ping", port) == 0 &&
         strcmp(out, "PONG") == 0;
}

/* ---- r1: pull, healthy; ports ---------------------------------------------------------- */

static void r1_pull_then_healthy(void **state) {
  need();
  fx_t *f = *state;
  int h = tu_free_port(), h2 = tu_free_port();
  assert_true(h > 0 && h2 > 0 && h != h2);
  assert_false(image_here(g_img));
  char port[64], port2[64];
  snprintf(port, sizeof port, "    port: \"%d:6379\"\n", h);
  /* Published on h2 and said to listen there: the image exposes 6379. */
  snprintf(port2, sizeof port2, "    port: %d\n    healthcheck: {probe: running}\n", h2);
  char *a = redis_svc("redis", g_img, port);
  char *b = tsvc_asprintf("  plain:\n    image: " BASE_IMAGE "\n%s", port2);
  char *svcs = tsvc_asprintf("%s%s", a, b);
  write_config(f, svcs);
  free(a);
  free(b);
  free(svcs);
  new_manager(f);
  char err[4096];
  int64_t t0 = tsvc_wall_ms();
  int rc = tsvc_manager_start_services(f->m, err, sizeof err);
  if (rc) fail_msg("start_services: %s: %s", tsvc_strerror(rc), err);
  int64_t started = tsvc_wall_ms() - t0;
  int64_t healthy = started + wait_healthy(f, "redis", 60000);
  assert_true(image_here(g_img));
  /* The host's view: H; the probe connected to C on the container's
     address (redis answers PONG only on 6379 inside). */
  assert_true(redis_pong(h));
  char out[256];
  assert_int_equal(tu_sh(out, sizeof out, "docker port %sredis", f->prefix), 0);
  char want[64];
  snprintf(want, sizeof want, "6379/tcp -> 127.0.0.1:%d", h);
  if (!strstr(out, want)) fail_msg("docker port: %s (want %s)", out, want);

  char *log = TU_LOG_WAIT(f->mark, 5000, "redis", "state=healthy");
  const char *pull = TU_LOG_LINE(log, NULL, "redis", "action=pull ", g_img, "registry=127.0.0.1:");
  const char *pulled = TU_LOG_LINE(log, NULL, "redis", "action=pulled", g_img);
  if (!pull || !pulled) fail_msg("no pull lines:\n%s", log);
  char size[32], secs[32], layers[32];
  field(pulled, "size", size, sizeof size);
  field(pulled, "seconds", secs, sizeof secs);
  field(pulled, "layers", layers, sizeof layers);
  /* The 2 MiB of random bytes came through (compressed, they stay 2.1MB). */
  assert_non_null(strstr(size, "MB"));
  assert_true(strtod(size, NULL) >= 2.0);
  assert_true(atoi(layers) >= 2);
  const char *start1 = TU_LOG_LINE(log, NULL, "redis", "action=start");
  const char *ok1 = TU_LOG_LINE(log, NULL, "redis", "state=healthy");
  assert_non_null(start1);
  assert_non_null(ok1);
  int64_t with_pull = tu_line_ms(ok1) - tu_line_ms(start1);
  int64_t before_pull = tu_line_ms(pull) - tu_line_ms(start1);
  int64_t after_pull = tu_line_ms(ok1) - tu_line_ms(pulled);
  /* The image that does not expose the port said so, with the fix. */
  snprintf(want, sizeof want, "did you mean \\\"%d:6379\\\"?", h2);
  const char *w = TU_LOG_LINE(log, NULL, "plain", "level=warn", "exposes 6379/tcp", want);
  if (!w) fail_msg("no EXPOSE warning (%s):\n%s", want, log);
  assert_int_equal(TU_LOG_LINES(log, "plain", "action=pull"), 0); /* it was here */
  free(log);

  /* Again without the pull: the container goes, the image stays. */
  tsvc_manager_free(f->m);
  f->m = NULL;
  SH("docker rm -f %sredis", f->prefix);
  size_t mark2 = tu_log_mark();
  new_manager(f);
  int64_t t1 = tsvc_wall_ms();
  rc = tsvc_manager_start_services(f->m, err, sizeof err);
  if (rc) fail_msg("start_services (2): %s: %s", tsvc_strerror(rc), err);
  int64_t started2 = tsvc_wall_ms() - t1;
  int64_t healthy2 = started2 + wait_healthy(f, "redis", 60000);
  log = TU_LOG_WAIT(mark2, 5000, "redis", "state=healthy");
  assert_int_equal(TU_LOG_LINES(log, "redis", "action=pull"), 0);
  const char *start2 = TU_LOG_LINE(log, NULL, "redis", "action=start");
  const char *ok2 = TU_LOG_LINE(log, NULL, "redis", "state=healthy");
  assert_non_null(start2);
  assert_non_null(ok2);
  int64_t without_pull = tu_line_ms(ok2) - tu_line_ms(start2);
  free(log);
  print_message("FIGURES pull: %s in %s s (%s layers); redis from its start line to healthy: "
                "%lld ms with the pull (%lld ms to the pull line: ping, network, inspections; "
                "%lld ms from pulled to healthy: create, start, first check), %lld ms without; "
                "start_services returned after %lld / %lld ms, healthy seen after %lld / "
                "%lld ms\n",
                size, secs, layers, (long long)with_pull, (long long)before_pull,
                (long long)after_pull, (long long)without_pull, (long long)started,
                (long long)started2, (long long)healthy,
                (long long)healthy2);
}

/* ---- r2: credentials ---------------------------------------------------------------------- */

static void write_docker_config(const char *dir, const char *json) {
  assert_int_equal(SH("mkdir -p '%s'", dir), 0);
  char path[700];
  snprintf(path, sizeof path, "%s/config.json", dir);
  assert_int_equal(tu_write_file(path, json), 0);
}

/* `tanuki-svc pull` with DOCKER_CONFIG=dir; its output into out. */
static int cli_pull(fx_t *f, const char *dir, char *out, size_t len) {
  const char *bin = getenv("TSVC_BINARY");
  if (!bin) fail_msg("TSVC_BINARY is not set (run through ctest)");
  return tu_sh(out, len, "DOCKER_CONFIG='%s' '%s' pull -c '%s' redis", dir, bin, f->cfg);
}

static void r2_auth(void **state) {
  need();
  fx_t *f = *state;
  char *svc = redis_svc("redis", g_img_auth, NULL);
  write_config(f, svc);
  free(svc);
  char reg[64], good[600], bad[600], helper[600], none[600], json[1024];
  snprintf(reg, sizeof reg, "127.0.0.1:%d", g_auth.port);
  snprintf(good, sizeof good, "%s/r2-good", g_dir);
  snprintf(bad, sizeof bad, "%s/r2-bad", g_dir);
  snprintf(helper, sizeof helper, "%s/r2-helper", g_dir);
  snprintf(none, sizeof none, "%s/r2-none", g_dir);
  /* "auth" is base64 of user:password, as docker login writes it. */
  char b64[128];
  assert_int_equal(tu_sh(b64, sizeof b64, "printf %%s '%s:%s' | base64 -w0", REG_USER, REG_PASS),
                   0);
  snprintf(json, sizeof json, "{\"auths\": {\"%s\": {\"auth\": \"%s\"}}}", reg, b64);
  write_docker_config(good, json);
  snprintf(json, sizeof json,
           "{\"auths\": {\"http://%s\": {\"username\": \"%s\", \"password\": \"wrong\"}}}", reg,
           REG_USER);
  write_docker_config(bad, json);
  write_docker_config(helper, "{\"auths\": {}, \"credsStore\": \"desktop\"}");
  SH("mkdir -p '%s'", none);

  /* Wrong password, a credential helper, nothing: exit 1, the image, the
     registry and the registry's (or daemon's) own words. */
  char out[8192];
  int rc = cli_pull(f, bad, out, sizeof out);
  print_message("wrong password: exit %d\n%s\n", rc, out);
  assert_int_equal(rc, 1);
  char want[512];
  snprintf(want, sizeof want, "tanuki-svc: redis: pulling %s from %s failed: ", g_img_auth, reg);
  assert_non_null(strstr(out, want));
  assert_non_null(strstr(out, "unauthorized"));
  rc = cli_pull(f, helper, out, sizeof out);
  print_message("credential helper: exit %d\n%s\n", rc, out);
  assert_int_equal(rc, 1);
  assert_non_null(strstr(out, want));
  assert_non_null(strstr(out, "no basic auth credentials"));
  char where[700];
  snprintf(where, sizeof where, "docker-credential-desktop (credsStore in %s/config.json), which "
           "tanuki-svc does not run", helper);
  assert_non_null(strstr(out, where));
  rc = cli_pull(f, none, out, sizeof out);
  assert_int_equal(rc, 1);
  assert_non_null(strstr(out, "no basic auth credentials"));
  assert_false(image_here(g_img_auth));

  /* The right credentials: the manager pulls, the service turns healthy. */
  tsvc_strlcpy(f->docker_config, good, sizeof f->docker_config);
  setenv("DOCKER_CONFIG", good, 1);
  new_manager(f);
  char err[4096];
  rc = tsvc_manager_start_services(f->m, err, sizeof err);
  if (rc) fail_msg("start_services: %s: %s", tsvc_strerror(rc), err);
  wait_healthy(f, "redis", 60000);
  char *log = tu_log_since(f->mark);
  char login[700];
  snprintf(login, sizeof login, "login=%s/config.json", good);
  assert_non_null(TU_LOG_LINE(log, NULL, "redis", "action=pull ", login));
  assert_non_null(TU_LOG_LINE(log, NULL, "redis", "action=pulled", g_img_auth));
  /* The password never shows. */
  assert_null(strstr(log, REG_PASS));
  free(log);
}

/* ---- r3: the registry down, then up ---------------------------------------------------------- */

static void r3_registry_down(void **state) {
  need();
  fx_t *f = *state;
  char *svc = redis_svc("redis", g_img, NULL);
  write_config(f, svc);
  free(svc);
  reg_stop(&g_open);
  new_manager(f);
  char err[4096];
  int rc = tsvc_manager_start_services(f->m, err, sizeof err);
  print_message("start_services: %s: %s\n", tsvc_strerror(rc), err);
  assert_int_equal(rc, TSVC_ERUNTIME);
  char want[512];
  snprintf(want, sizeof want, "redis: pulling %s from 127.0.0.1:%d failed: ", g_img, g_open.port);
  assert_non_null(strstr(err, want));
  assert_non_null(strstr(err, "connection refused"));
  /* Retried on the backoff schedule meanwhile; not healthy. */
  tu_sleep_ms(2500);
  char last[256];
  tsvc_state_t st = state_of(f, "redis", last, sizeof last);
  assert_int_not_equal(st, TSVC_STATE_HEALTHY);
  assert_int_not_equal(st, TSVC_STATE_STOPPED);
  assert_non_null(strstr(last, "connection refused"));
  char *log = tu_log_since(f->mark);
  int tries = TU_LOG_LINES(log, "redis", "action=pull_failed", "connection refused");
  free(log);
  print_message("%d pulls tried while the registry was down (backoff 500ms doubling to 2s)\n",
                tries);
  assert_true(tries >= 2);
  assert_true(tries <= 5);
  /* The registry is back (same port, same storage): healthy. */
  assert_int_equal(reg_start(&g_open), 0);
  int64_t t = wait_healthy(f, "redis", 30000);
  print_message("healthy %lld ms after the registry came back\n", (long long)t);
  log = tu_log_since(f->mark);
  assert_non_null(TU_LOG_LINE(log, NULL, "redis", "action=pulled", g_img));
  free(log);
}

/* ---- r4: manifest unknown: backoff, then failed; no storm --------------------------------- */

static void r4_manifest_unknown(void **state) {
  need();
  fx_t *f = *state;
  char image[300], repo_path[200];
  snprintf(image, sizeof image, "127.0.0.1:%d/%s/missing:1", g_open.port, g_tag);
  snprintf(repo_path, sizeof repo_path, "/v2/%s/missing/manifests/", g_tag);
  char *svc = tsvc_asprintf("  ghost:\n"
                            "    image: %s\n"
                            "    healthcheck: {probe: running, interval: 500ms}\n"
                            "    restart: {backoff: 1s, max_backoff: 8s, max_restarts: 3, "
                            "window: 10m, cooldown: 30m}\n",
                            image);
  write_config(f, svc);
  free(svc);
  int before = reg_requests(&g_open, repo_path);
  new_manager(f);
  char err[4096];
  int rc = tsvc_manager_start_services(f->m, err, sizeof err);
  assert_int_equal(rc, TSVC_ERUNTIME);
  char want[512];
  snprintf(want, sizeof want, "ghost: pulling %s from 127.0.0.1:%d failed: ", image, g_open.port);
  assert_non_null(strstr(err, want));
  assert_non_null(strstr(err, "manifest unknown"));
  /* 3 starts (max_restarts counts failed starts), 1s and 2s apart (+ up
     to 10% jitter): failed by ~3.5 s. */
  int64_t end = tsvc_wall_ms() + 20000;
  while (state_of(f, "ghost", NULL, 0) != TSVC_STATE_FAILED) {
    if (tsvc_wall_ms() > end) fail_msg("ghost not failed after 20 s:\n%s", tu_log_since(f->mark));
    tu_sleep_ms(100);
  }
  int at_failed = reg_requests(&g_open, repo_path) - before;
  tu_sleep_ms(3000); /* given up: nothing more asked */
  int later = reg_requests(&g_open, repo_path) - before;
  char *log = tu_log_since(f->mark);
  int pulls = TU_LOG_LINES(log, "ghost", "action=pull ");
  int failures = TU_LOG_LINES(log, "ghost", "action=pull_failed", "manifest unknown");
  print_message("%d pulls, %d manifest requests at the registry, %d after 3 s more\n", pulls,
                at_failed, later);
  assert_int_equal(pulls, 3);
  assert_int_equal(failures, 3);
  assert_true(at_failed >= 3 && at_failed <= 9); /* a pull asks once or twice */
  assert_int_equal(later, at_failed);
  assert_non_null(TU_LOG_LINE(log, NULL, "ghost", "action=give_up"));
  /* The gaps between pulls follow the backoff. */
  const char *pos = log, *prev = NULL, *l;
  int64_t gaps[8];
  int ng = 0;
  while ((l = TU_LOG_LINE(log, &pos, "ghost", "action=pull ")) && ng < 8) {
    if (prev) {
      struct tm a = {0}, b = {0};
      int ams = 0, bms = 0;
      sscanf(strstr(prev, "ts=") + 3, "%d-%d-%dT%d:%d:%d.%dZ", &a.tm_year, &a.tm_mon, &a.tm_mday,
             &a.tm_hour, &a.tm_min, &a.tm_sec, &ams);
      sscanf(strstr(l, "ts=") + 3, "%d-%d-%dT%d:%d:%d.%dZ", &b.tm_year, &b.tm_mon, &b.tm_mday,
             &b.tm_hour, &b.tm_min, &b.tm_sec, &bms);
      gaps[ng++] = ((int64_t)timegm(&b) * 1000 + bms) - ((int64_t)timegm(&a) * 1000 + ams);
    }
    prev = l;
  }
  assert_int_equal(ng, 2);
  print_message("gaps between pulls: %lld, %lld ms\n", (long long)gaps[0], (long long)gaps[1]);
  /* Each at least its backoff (1s, then 2s); the pull itself takes little. */
  assert_true(gaps[0] >= 1000 && gaps[1] >= 2000);
  free(log);
}

/* ---- r5: pull_policy never ------------------------------------------------------------------ */

static void r5_policy_never(void **state) {
  need();
  fx_t *f = *state;
  char *svc = redis_svc("redis", g_img, "    pull_policy: never\n");
  write_config(f, svc);
  free(svc);
  char repo_path[200];
  snprintf(repo_path, sizeof repo_path, "/v2/%s/redis/manifests/", g_tag);
  int before = reg_requests(&g_open, repo_path);
  new_manager(f);
  char err[4096];
  int rc = tsvc_manager_start_services(f->m, err, sizeof err);
  print_message("%s\n", err);
  assert_int_equal(rc, TSVC_ERUNTIME);
  char want[600];
  snprintf(want, sizeof want, "redis: No such image: %s (not present locally, and "
           "services.redis.pull_policy is never: pull it with 'tanuki-svc pull redis', or build "
           "it)", g_img);
  assert_non_null(strstr(err, want));
  tu_sleep_ms(1500); /* retries on backoff do not pull either */
  assert_int_equal(reg_requests(&g_open, repo_path), before);
  assert_false(image_here(g_img));
  char *log = tu_log_since(f->mark);
  assert_int_equal(TU_LOG_LINES(log, "redis", "action=pull"), 0);
  free(log);
}

/* ---- r6: pull_policy always: a new image, the container recreated --------------------------- */

static void r6_policy_always(void **state) {
  need();
  fx_t *f = *state;
  char *svc = redis_svc("redis", g_img, "    pull_policy: always\n");
  write_config(f, svc);
  free(svc);
  new_manager(f);
  char err[4096];
  int rc = tsvc_manager_start_services(f->m, err, sizeof err);
  if (rc) fail_msg("start_services: %s: %s", tsvc_strerror(rc), err);
  wait_healthy(f, "redis", 60000);
  char c1[128], i1[128];
  assert_int_equal(tu_sh(c1, sizeof c1, "docker inspect -f '{{.Id}}' %sredis", f->prefix), 0);
  assert_int_equal(tu_sh(i1, sizeof i1, "docker inspect -f '{{.Image}}' %sredis", f->prefix), 0);
  tsvc_manager_free(f->m);
  f->m = NULL;

  /* Always pulls even when nothing changed: the same container is adopted. */
  size_t mark = tu_log_mark();
  new_manager(f);
  rc = tsvc_manager_start_services(f->m, err, sizeof err);
  if (rc) fail_msg("start_services (2): %s: %s", tsvc_strerror(rc), err);
  char c2[128];
  assert_int_equal(tu_sh(c2, sizeof c2, "docker inspect -f '{{.Id}}' %sredis", f->prefix), 0);
  assert_string_equal(c1, c2);
  char *log = tu_log_since(mark);
  assert_non_null(TU_LOG_LINE(log, NULL, "redis", "action=pulled", "Image is up to date"));
  free(log);
  tsvc_manager_free(f->m);
  f->m = NULL;

  /* A new image under the same tag: pulled, the container made anew. */
  char out[4096], i2[128];
  assert_int_equal(build_image(g_img, "v2", out, sizeof out), 0);
  assert_int_equal(push(g_img, NULL), 0);
  assert_int_equal(tu_sh(i2, sizeof i2, "docker image inspect -f '{{.Id}}' %s", g_img), 0);
  assert_string_not_equal(i1, i2);
  /* Back to v1 locally, so that only a pull brings v2 here. */
  rmi(g_img);
  assert_int_equal(SH("docker tag %s %s", i1, g_img), 0);
  mark = tu_log_mark();
  new_manager(f);
  rc = tsvc_manager_start_services(f->m, err, sizeof err);
  if (rc) fail_msg("start_services (3): %s: %s", tsvc_strerror(rc), err);
  wait_healthy(f, "redis", 60000);
  char c3[128], i3[128];
  assert_int_equal(tu_sh(c3, sizeof c3, "docker inspect -f '{{.Id}}' %sredis", f->prefix), 0);
  assert_int_equal(tu_sh(i3, sizeof i3, "docker inspect -f '{{.Image}}' %sredis", f->prefix), 0);
  assert_string_not_equal(c1, c3);
  assert_string_equal(i3, i2);
  log = tu_log_since(mark);
  assert_non_null(TU_LOG_LINE(log, NULL, "redis", "action=pulled", "Downloaded newer image"));
  assert_non_null(TU_LOG_LINE(log, NULL, "redis", "recreating"));
  free(log);
  SH("docker rmi -f %s", i1); /* v1, untagged now */
}

/* ---- r7: `tanuki-svc pull`: live lines on a terminal, log lines elsewhere ------------ */

static void r7_cli_progress(void **state) {
  need();
  fx_t *f = *state;
  char *svc = redis_svc("redis", g_img, NULL);
  write_config(f, svc);
  free(svc);
  const char *bin = getenv("TSVC_BINARY");
  if (!bin) fail_msg("TSVC_BINARY is not set (run through ctest)");
  /* On a terminal (script(1) gives it one): a live line, redrawn in place. */
  static char out[65536];
  int rc = tu_sh(out, sizeof out, "TERM=xterm script -qfec \"'%s' pull -c '%s'\" /dev/null",
                  bin, f->cfg);
  if (rc) fail_msg("pull on a terminal: exit %d\n%s", rc, out);
  assert_true(image_here(g_img));
  char want[400];
  snprintf(want, sizeof want, "\033[Kpulling redis (%s): ", g_img);
  if (!strstr(out, want)) fail_msg("no live line in:\n%s", out);
  assert_non_null(strstr(out, " layers, "));
  assert_non_null(strstr(out, "action=pulled"));
  /* The live lines are erased at the end: the last thing written is no
     progress line. */
  const char *last = strstr(out, "action=pulled");
  assert_null(strstr(last, "\033[Kpulling"));
  rmi(g_img);
  /* Into a pipe: the two log lines, no terminal codes. */
  rc = tu_sh(out, sizeof out, "'%s' pull -c '%s' 2>&1 | cat", bin, f->cfg);
  assert_int_equal(rc, 0);
  assert_null(strchr(out, '\033'));
  assert_non_null(strstr(out, "action=pull "));
  assert_non_null(strstr(out, "action=pulled"));
  assert_true(image_here(g_img));
}

/* ---- r8: a pull that takes long delays nobody else -------------------------------- */

typedef struct {
  fx_t *f;
  int rc;
  char err[4096];
  atomic_int done;
} starter_t;

static void *starter_main(void *arg) {
  starter_t *s = arg;
  s->rc = tsvc_manager_start_services(s->f->m, s->err, sizeof s->err);
  atomic_store(&s->done, 1);
  return NULL;
}

static void r8_slow_pull_others_start(void **state) {
  need();
  fx_t *f = *state;
  /* A "registry" that takes connections and never answers: the kernel
     accepts them into the backlog, nobody reads. A real registry does not
     hang on demand. */
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(lfd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(lfd, 16), 0);
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
  char slow_img[200];
  snprintf(slow_img, sizeof slow_img, "127.0.0.1:%d/%s/slow:1", ntohs(a.sin_port), g_tag);
  /* slow comes first in the file and nothing depends on it. */
  char *slow = redis_svc("slow", slow_img, NULL);
  char *fast = redis_svc("fast", BASE_IMAGE, NULL);
  char *svcs = tsvc_asprintf("%s%s", slow, fast);
  write_config(f, svcs);
  free(slow);
  free(fast);
  free(svcs);
  new_manager(f);
  starter_t st = {.f = f};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, starter_main, &st), 0);
  /* The monitor exists once the runtime is chosen. */
  for (int i = 0; i < 600; i++) {
    tsvc_status_t x;
    if (tsvc_manager_get_status(f->m, "fast", &x) == 0) {
      tsvc_status_clear(&x);
      break;
    }
    tu_sleep_ms(50);
  }
  int64_t ms = wait_healthy(f, "fast", 60000);
  /* fast is healthy while slow's pull still waits for its registry. */
  if (atomic_load(&st.done)) fail_msg("start_services ended already: %s", st.err);
  char *log = tu_log_since(f->mark);
  assert_non_null(TU_LOG_LINE(log, NULL, "slow", "action=pull ", slow_img));
  assert_int_equal(TU_LOG_LINES(log, "slow", "action=pull_failed"), 0);
  free(log);
  print_message("fast healthy after %lld ms while slow's pull hangs\n", (long long)ms);
  /* The registry goes: the pull fails, and start_services says so. */
  close(lfd);
  pthread_join(t, NULL);
  print_message("start_services: %s\n", st.err);
  assert_int_equal(st.rc, TSVC_ERUNTIME);
  char want[300];
  snprintf(want, sizeof want, "slow: pulling %s from 127.0.0.1:%d failed: ", slow_img,
           ntohs(a.sin_port));
  assert_non_null(strstr(st.err, want));
  assert_null(strstr(st.err, "fast:"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(r1_pull_then_healthy, setup_r1, fx_teardown),
      cmocka_unit_test_setup_teardown(r2_auth, setup_r2, fx_teardown),
      cmocka_unit_test_setup_teardown(r3_registry_down, setup_r3, fx_teardown),
      cmocka_unit_test_setup_teardown(r4_manifest_unknown, setup_r4, fx_teardown),
      cmocka_unit_test_setup_teardown(r5_policy_never, setup_r5, fx_teardown),
      cmocka_unit_test_setup_teardown(r6_policy_always, setup_r6, fx_teardown),
      cmocka_unit_test_setup_teardown(r7_cli_progress, setup_r7, fx_teardown),
      cmocka_unit_test_setup_teardown(r8_slow_pull_others_start, setup_r8, fx_teardown),
  };
  const char *only = getenv("TSVC_SCENARIOS");
  if (only && *only) cmocka_set_test_filter(only);
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
