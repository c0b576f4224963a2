/*
 * test_remote: services on a Docker engine reached over TLS or ssh (issue
 * 16, docs/remote.md).
 *
 * The pure decisions first (src/runtime/remote.c, src/docker/host.c): which
 * runtime `auto` takes, where the engine runs, where probes connect, which
 * publish addresses work, the host env prints. Then against the real
 * engine, reached the ways a remote one is:
 *
 *   - TLS: the test makes a CA, a server certificate for 127.0.0.1 and
 *     localhost, client certificates from that CA and from another one, and
 *     a server certificate for another name; socat(1) serves the local
 *     engine's socket behind `OPENSSL-LISTEN:...,verify=1` on free loopback
 *     ports. Services start and turn healthy (DOCKER_HOST + DOCKER_TLS_VERIFY
 *     + DOCKER_CERT_PATH, and docker.tls keys); a client certificate of
 *     another CA, a missing key, a hostname mismatch and an engine
 *     certificate of another CA are refused at start with a message that
 *     names the file or the check, and runtime auto never turns them into
 *     local processes.
 *   - ssh: an OpenSSH server of the test's own (its sshd_config, host key
 *     and an authorized key made here) on a free loopback port, stopped by
 *     pid. Services start through ssh://user@127.0.0.1:PORT and turn
 *     healthy; the ssh child killed, they go unknown (no restart) and come
 *     back once the tunnel is started again; a key the server does not
 *     know is refused with ssh's own words.
 *
 * The engine reached that way is this machine's, and its identity (GET
 * /info) says so: auto probes the containers' addresses. Probes through
 * the published ports are tested by forcing probe_via: published, and
 * exec by probe_via: exec.
 *
 * When the engine, the image tanuki/redis:7, socat, openssl or sshd are
 * missing, every engine test FAILS if TSVC_REQUIRE_DOCKER=1 (CI), else is
 * skipped with the reason. Containers are named tsvc-remote-<pid>-<test>-*
 * on the network tsvc-remote-<pid>-net; each test removes its own, the
 * group teardown the network, the socat and sshd processes (by pid) and the
 * files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api_json.h"
#include "common/util.h"
#include "docker/host.h"
#include "log/log.h"
#include "runtime/remote.h"
#include "docker_fixture.h"
#include "servers.h"
#include "testutil.h"
#include "tsvc.h"

#define REDIS_IMAGE "tanuki/redis:7"
/* Bounds on waits, only so that a broken build fails instead of hanging: a
   redis container is healthy in about 2 s here, 10 s on a loaded 2-core
   machine. */
#define HEALTHY_MS 60000

static char g_base[64];  /* tsvc-remote-<pid>- */
static char g_net[96];   /* tsvc-remote-<pid>-net */
static char *g_dir;      /* certificates, keys, sshd's files */
static bool g_ok;        /* the engine, the image and the tools are here */
static char g_why[512];
static int g_tls_port, g_badname_port, g_ssh_port;
static pid_t g_socat, g_socat_badname, g_sshd;
static char g_user[64];

/* ---- helpers ------------------------------------------------------------------ */

/* A shell command (in g_dir), output kept (stdout and stderr, trailing
   newlines cut). Returns its exit status, -1 when it could not run. */
static int sh_out(char *out, size_t len, const char *fmt, ...) TSVC_PRINTF(3, 4);
static int sh_out(char *out, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = tu_vsh(g_dir ? g_dir : "/", out, len, fmt, ap);
  va_end(ap);
  return rc;
}

static void need_engine(void) { tu_need_docker(g_ok, g_why); }

/* ---- the fixture ------------------------------------------------------------------- */

typedef struct {
  char tag[16];
  char prefix[96];   /* tsvc-remote-<pid>-<tag>- */
  char *dir;         /* its tanuki.yaml */
  char cfg[512];
  size_t log_mark;
  tsvc_manager_t *m;
  bool passed;
  char env_saved[4][2][512]; /* DOCKER_* as they were */
} fx_t;

static const char *const docker_env[] = {"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
                                         "DOCKER_TLS"};

static int fx_setup(void **state, const char *tag) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  tsvc_strlcpy(f->tag, tag, sizeof f->tag);
  snprintf(f->prefix, sizeof f->prefix, "%s%s-", g_base, tag);
  f->dir = tu_mkdtemp("tsvc-remote");
  if (!f->dir) return -1;
  snprintf(f->cfg, sizeof f->cfg, "%s/tanuki.yaml", f->dir);
  f->log_mark = tu_log_mark();
  for (size_t i = 0; i < TSVC_ARRAY_LEN(docker_env); i++) {
    const char *v = getenv(docker_env[i]);
    tsvc_strlcpy(f->env_saved[i][0], v ? "1" : "", sizeof f->env_saved[i][0]);
    tsvc_strlcpy(f->env_saved[i][1], v ? v : "", sizeof f->env_saved[i][1]);
    unsetenv(docker_env[i]);
  }
  *state = f;
  return 0;
}

static void free_manager(fx_t *f) {
  if (!f->m) return;
  tsvc_manager_free(f->m);
  f->m = NULL;
}

static int fx_teardown(void **state) {
  fx_t *f = *state;
  if (!f) return 0;
  free_manager(f);
  if (!f->passed) {
    char *log = tu_log_since(f->log_mark);
    fprintf(stderr, "---- log of %s ----\n%s---- end of log ----\n", f->tag, log);
    free(log);
  }
  if (g_ok) {
    tu_docker_rm_prefixed(f->prefix);
  }
  for (size_t i = 0; i < TSVC_ARRAY_LEN(docker_env); i++) {
    if (f->env_saved[i][0][0]) setenv(docker_env[i], f->env_saved[i][1], 1);
    else unsetenv(docker_env[i]);
  }
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

#define SETUP(tag)                                                            \
  static int setup_##tag(void **state) { return fx_setup(state, #tag); }
SETUP(tlsenv)
SETUP(tlskeys)
SETUP(tlsbad)
SETUP(pubaddr)
SETUP(execvia)
SETUP(ssh)

/* tanuki.yaml: runtime (auto when NULL), the docker section (our network
   and prefix, then extra lines at two spaces), then services. */
static void write_config(fx_t *f, const char *runtime, const char *docker_extra,
                         const char *services) {
  char *text = tsvc_asprintf("%s%s%s"
                             "docker:\n"
                             "  network: %s\n"
                             "  container_prefix: %s\n"
                             "%s"
                             "services:\n%s",
                             runtime ? "runtime: " : "", runtime ? runtime : "",
                             runtime ? "\n" : "", g_net, f->prefix,
                             docker_extra ? docker_extra : "", services);
  assert_non_null(text);
  assert_int_equal(tu_write_file(f->cfg, text), 0);
  free(text);
}

/* A redis service checked every 300 ms, published on host port hport. */
static char *redis_service(const char *name, int hport) {
  return tsvc_asprintf("  %s:\n"
                       "    image: " REDIS_IMAGE "\n"
                       "    port: \"%d:6379\"\n"
                       "    healthcheck:\n"
                       "      command: [\"redis-cli\", \"ping\"]\n"
                       "      interval: 300ms\n"
                       "      timeout: 2s\n"
                       "      retries: 3\n"
                       "      start_period: 30s\n"
                       "      start_interval: 200ms\n"
                       "    restart:\n"
                       "      backoff: 500ms\n"
                       "      stop_timeout: 2s\n",
                       name, hport);
}

static void new_manager(fx_t *f) { f->m = tu_manager_new(f->cfg); }

static void start_all(fx_t *f) {
  tu_manager_start(f->m);
  assert_string_equal(tsvc_manager_runtime_name(f->m), "docker");
}

static tsvc_status_t status_of(fx_t *f, const char *name) { return tu_status(f->m, name); }

static void wait_state(fx_t *f, const char *name, tsvc_state_t want, int ms) {
  tu_wait_state(f->m, name, want, ms, NULL, NULL);
}

/* start_services must fail: returns its error text (static storage). */
static const char *start_fails(fx_t *f, int want_rc) {
  static char err[4096];
  err[0] = '\0';
  int rc = tsvc_manager_start_services(f->m, err, sizeof err);
  if (rc != want_rc)
    fail_msg("start_services: %s (%d), want %s: %s", tsvc_strerror(rc), rc,
             tsvc_strerror(want_rc), err);
  return err;
}

static void no_container(fx_t *f) {
  char ids[1024];
  sh_out(ids, sizeof ids, "docker ps -aq --filter 'name=^/%s'", f->prefix);
  if (ids[0]) fail_msg("containers of %s exist: %s", f->prefix, ids);
}

/* The program's output for args (run in the fixture's directory). */
static int run_cli(fx_t *f, char *out, size_t len, const char *args) {
  const char *bin = getenv("TSVC_BINARY");
  assert_non_null(bin);
  return sh_out(out, len, "cd '%s' && '%s' %s", f->dir, bin, args);
}

/* The ssh processes that are our children (the tunnels), by /proc. */
static int ssh_children(pid_t *pids, int max) {
  DIR *d = opendir("/proc");
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *fp = fopen(path, "r");
    if (!fp) continue;
    size_t k = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[k] = '\0';
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close) continue;
    int ppid = 0;
    char st = 0;
    if (sscanf(close + 2, "%c %d", &st, &ppid) != 2) continue;
    if (ppid == getpid() && close - open - 1 == 3 && strncmp(open + 1, "ssh", 3) == 0 &&
        st != 'Z' && n < max)
      pids[n++] = (pid_t)strtol(e->d_name, NULL, 10);
  }
  if (d) closedir(d);
  return n;
}

/* ---- pure decisions ------------------------------------------------------------ */

static void endpoint_parse(void **st) {
  (void)st;
  tsvc_docker_endpoint_t ep;
  char err[512];
  assert_int_equal(tsvc_docker_endpoint_parse("unix:///var/run/docker.sock", &ep, err, sizeof err),
                   0);
  assert_int_equal(ep.transport, TSVC_DOCKER_UNIX);
  assert_string_equal(ep.path, "/var/run/docker.sock");
  assert_int_equal(tsvc_docker_endpoint_parse("tcp://engine.example:2376", &ep, err, sizeof err),
                   0);
  assert_int_equal(ep.transport, TSVC_DOCKER_TCP);
  assert_string_equal(ep.host, "engine.example");
  assert_int_equal(ep.port, 2376);
  assert_int_equal(tsvc_docker_endpoint_parse("tcp://[fd00::5]:2376", &ep, err, sizeof err), 0);
  assert_string_equal(ep.host, "fd00::5");
  assert_int_equal(ep.port, 2376);
  assert_int_equal(tsvc_docker_endpoint_parse("tcp://10.0.0.5", &ep, err, sizeof err), 0);
  assert_int_equal(ep.port, 0);
  assert_int_equal(tsvc_docker_endpoint_parse("ssh://deploy@engine.example:2222", &ep, err,
                                              sizeof err), 0);
  assert_int_equal(ep.transport, TSVC_DOCKER_SSH);
  assert_string_equal(ep.user, "deploy");
  assert_string_equal(ep.host, "engine.example");
  assert_int_equal(ep.port, 2222);
  assert_int_equal(tsvc_docker_endpoint_parse("ssh://engine.example", &ep, err, sizeof err), 0);
  assert_string_equal(ep.user, "");
  assert_int_equal(ep.port, 0);
  static const struct {
    const char *url, *says;
  } bad[] = {
      {"unix://run/docker.sock", "the socket path must be absolute"},
      {"tcp://", "no host name"},
      {"tcp://h:0", "the port must be 1-65535"},
      {"tcp://h:http", "the port must be 1-65535"},
      {"tcp://[fd00::5:2376", "closing ']'"},
      {"ssh://me:secret@h", "a password in the URL is not supported"},
      {"ssh://me@h/var/run/docker.sock", "docker.ssh.socket"},
      {"ssh://@h", "an empty user name"},
      {"npipe:////./pipe/docker_engine", "unsupported"},
      {"", "empty"},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(bad); i++) {
    if (tsvc_docker_endpoint_parse(bad[i].url, &ep, err, sizeof err) != TSVC_EINVAL)
      fail_msg("%s: accepted", bad[i].url);
    if (!strstr(err, bad[i].says)) fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].url, err, bad[i].says);
  }
}

static void ip_helpers(void **st) {
  (void)st;
  assert_true(tsvc_ip_loopback("127.0.0.1"));
  assert_true(tsvc_ip_loopback("127.3.2.1"));
  assert_true(tsvc_ip_loopback("::1"));
  assert_true(tsvc_ip_loopback("::ffff:127.0.0.1"));
  assert_true(tsvc_ip_loopback("localhost"));
  assert_false(tsvc_ip_loopback("0.0.0.0"));
  assert_false(tsvc_ip_loopback("10.0.0.5"));
  assert_false(tsvc_ip_loopback("128.0.0.1"));
  assert_true(tsvc_ip_wildcard("0.0.0.0"));
  assert_true(tsvc_ip_wildcard("::"));
  assert_false(tsvc_ip_wildcard("10.0.0.5"));
  assert_true(tsvc_ip_literal("10.0.0.5"));
  assert_true(tsvc_ip_literal("fd00::5"));
  assert_false(tsvc_ip_literal("engine.example"));
  assert_false(tsvc_ip_literal("[fd00::5]"));
  char b[64];
  assert_string_equal(tsvc_hostport("fd00::5", 80, b, sizeof b), "[fd00::5]:80");
  assert_string_equal(tsvc_hostport("10.0.0.5", 80, b, sizeof b), "10.0.0.5:80");
}

/* Point 0, every cell: auto falls back to processes only with no engine
   named and no answer; a named engine that refuses us is an error. */
static void runtime_choice(void **st) {
  (void)st;
  static const struct {
    tsvc_runtime_kind_t want;
    bool named;
    int ping;
    int rc;
    tsvc_runtime_kind_t got;
  } cells[] = {
      {TSVC_RUNTIME_AUTO, false, 0, 0, TSVC_RUNTIME_DOCKER},
      {TSVC_RUNTIME_AUTO, false, TSVC_EUNREACH, 0, TSVC_RUNTIME_PROCESS},
      {TSVC_RUNTIME_AUTO, true, 0, 0, TSVC_RUNTIME_DOCKER},
      {TSVC_RUNTIME_AUTO, true, TSVC_EUNREACH, TSVC_EUNREACH, 0},
      {TSVC_RUNTIME_AUTO, true, TSVC_EINVAL, TSVC_EUNREACH, 0}, /* no client: a missing key */
      {TSVC_RUNTIME_DOCKER, false, 0, 0, TSVC_RUNTIME_DOCKER},
      {TSVC_RUNTIME_DOCKER, false, TSVC_EUNREACH, TSVC_EUNREACH, 0},
      {TSVC_RUNTIME_DOCKER, true, 0, 0, TSVC_RUNTIME_DOCKER},
      {TSVC_RUNTIME_DOCKER, true, TSVC_EUNREACH, TSVC_EUNREACH, 0},
      {TSVC_RUNTIME_PROCESS, false, TSVC_EUNREACH, 0, TSVC_RUNTIME_PROCESS},
      {TSVC_RUNTIME_PROCESS, true, TSVC_EUNREACH, 0, TSVC_RUNTIME_PROCESS},
      {TSVC_RUNTIME_PROCESS, true, 0, 0, TSVC_RUNTIME_PROCESS},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(cells); i++) {
    tsvc_runtime_kind_t got = (tsvc_runtime_kind_t)-1;
    int rc = tsvc_runtime_choose(cells[i].want, cells[i].named, cells[i].ping, &got);
    if (rc != cells[i].rc) fail_msg("cell %zu: rc %d, want %d", i, rc, cells[i].rc);
    if (!rc && got != cells[i].got) fail_msg("cell %zu: %d, want %d", i, got, cells[i].got);
  }
}

/* Point 1: where the engine runs, and auto's decision over (transport,
   identities). */
static void where_probes_go(void **st) {
  (void)st;
  static const struct {
    tsvc_docker_transport_t t;
    const char *engine, *local;
    bool local_engine;
  } id[] = {
      {TSVC_DOCKER_UNIX, "", "", true},
      {TSVC_DOCKER_UNIX, NULL, NULL, true},
      {TSVC_DOCKER_TCP, "AAAA:BBBB", "AAAA:BBBB", true},
      {TSVC_DOCKER_TCP, "AAAA:BBBB", "CCCC:DDDD", false},
      {TSVC_DOCKER_TCP, "AAAA:BBBB", "", false}, /* no local engine answers */
      {TSVC_DOCKER_TCP, "", "", false},           /* no identity at all */
      {TSVC_DOCKER_SSH, "AAAA:BBBB", "AAAA:BBBB", true},
      {TSVC_DOCKER_SSH, "AAAA:BBBB", "CCCC:DDDD", false},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(id); i++)
    if (tsvc_engine_is_local(id[i].t, id[i].engine, id[i].local) != id[i].local_engine)
      fail_msg("identity cell %zu", i);
  assert_int_equal(tsvc_probe_via_resolve(TSVC_VIA_AUTO, true), TSVC_VIA_CONTAINER);
  assert_int_equal(tsvc_probe_via_resolve(TSVC_VIA_AUTO, false), TSVC_VIA_PUBLISHED);
  for (int l = 0; l < 2; l++) {
    assert_int_equal(tsvc_probe_via_resolve(TSVC_VIA_CONTAINER, l), TSVC_VIA_CONTAINER);
    assert_int_equal(tsvc_probe_via_resolve(TSVC_VIA_PUBLISHED, l), TSVC_VIA_PUBLISHED);
    assert_int_equal(tsvc_probe_via_resolve(TSVC_VIA_EXEC, l), TSVC_VIA_EXEC);
  }
}

/* Point 2: loopback publish refused only when probes need it from another
   machine; any other address warned about. */
static void publish_addresses(void **st) {
  (void)st;
  char msg[1024];
  /* Remote engine, probes through the published ports, loopback: refused
     with the fix. */
  assert_int_equal(tsvc_publish_check(TSVC_VIA_PUBLISHED, false, "engine.example", "127.0.0.1",
                                      msg, sizeof msg), TSVC_EINVAL);
  assert_non_null(strstr(msg, "docker.publish_address is 127.0.0.1"));
  assert_non_null(strstr(msg, "engine.example"));
  assert_non_null(strstr(msg, "Set docker.publish_address to an address of engine.example"));
  assert_non_null(strstr(msg, "docker.probe_via: exec"));
  assert_int_equal(tsvc_publish_check(TSVC_VIA_PUBLISHED, false, "e", "::1", msg, sizeof msg),
                   TSVC_EINVAL);
  /* Loopback is fine for an engine here, or probes that do not use it. */
  assert_int_equal(tsvc_publish_check(TSVC_VIA_PUBLISHED, true, "e", "127.0.0.1", msg,
                                      sizeof msg), 0);
  assert_int_equal(tsvc_publish_check(TSVC_VIA_CONTAINER, false, "e", "127.0.0.1", msg,
                                      sizeof msg), 0);
  assert_int_equal(tsvc_publish_check(TSVC_VIA_EXEC, false, "e", "127.0.0.1", msg, sizeof msg),
                   0);
  assert_string_equal(msg, "");
  /* Not loopback: allowed, with a warning naming the exposure. */
  assert_int_equal(tsvc_publish_check(TSVC_VIA_PUBLISHED, false, "engine.example", "0.0.0.0",
                                      msg, sizeof msg), 1);
  assert_non_null(strstr(msg, "every interface of engine.example"));
  assert_non_null(strstr(msg, "anyone on that network"));
  assert_int_equal(tsvc_publish_check(TSVC_VIA_CONTAINER, true, "this machine", "10.0.0.5", msg,
                                      sizeof msg), 1);
  assert_non_null(strstr(msg, "that address of this machine"));
}

/* Point 5's host, and where published probes connect. */
static void published_hosts(void **st) {
  (void)st;
  tsvc_docker_endpoint_t unix_ep, tcp_ep, ssh_ep;
  assert_int_equal(tsvc_docker_endpoint_parse("unix:///var/run/docker.sock", &unix_ep, NULL, 0), 0);
  assert_int_equal(tsvc_docker_endpoint_parse("tcp://engine.example:2376", &tcp_ep, NULL, 0), 0);
  assert_int_equal(tsvc_docker_endpoint_parse("ssh://me@[fd00::5]:22", &ssh_ep, NULL, 0), 0);
  char b[256];
  assert_string_equal(tsvc_published_host(&unix_ep, "127.0.0.1", b, sizeof b), "127.0.0.1");
  assert_string_equal(tsvc_published_host(&unix_ep, "0.0.0.0", b, sizeof b), "127.0.0.1");
  assert_string_equal(tsvc_published_host(&unix_ep, "172.17.0.1", b, sizeof b), "172.17.0.1");
  assert_string_equal(tsvc_published_host(&tcp_ep, "0.0.0.0", b, sizeof b), "engine.example");
  assert_string_equal(tsvc_published_host(&tcp_ep, "127.0.0.1", b, sizeof b), "engine.example");
  assert_string_equal(tsvc_published_host(&tcp_ep, "10.0.0.5", b, sizeof b), "10.0.0.5");
  assert_string_equal(tsvc_published_host(&ssh_ep, "::", b, sizeof b), "fd00::5");
}

/* The API's fields (docs/api.md): probe_via, probe_address, and each
   history record's address. */
static void api_fields(void **st) {
  (void)st;
  tsvc_status_t s = {.name = "redis"};
  tsvc_strlcpy(s.probe, "redis", sizeof s.probe);
  tsvc_strlcpy(s.probe_via, "published", sizeof s.probe_via);
  tsvc_strlcpy(s.probe_address, "engine.example:16379", sizeof s.probe_address);
  tsvc_check_record_t r = {.result = TSVC_RESULT_OK, .message = "PONG", .exit_code = -1,
                           .probe_address = "engine.example:16379"};
  s.history = &r;
  s.nhistory = 1;
  json_t *j = tsvc_api_json_status(&s, true);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "probe_via")), "published");
  assert_string_equal(json_string_value(json_object_get(j, "probe_address")),
                      "engine.example:16379");
  json_t *h = json_array_get(json_object_get(j, "history"), 0);
  assert_string_equal(json_string_value(json_object_get(h, "probe_address")),
                      "engine.example:16379");
  json_decref(j);
}

/* ---- TLS ------------------------------------------------------------------------------ */

/* DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the docker CLI
   reads them; auto finds the engine is this machine's (its ID) and probes
   the container's address. */
static void tls_env_healthy(void **state) {
  need_engine();
  fx_t *f = *state;
  char host[128], certs[512];
  snprintf(host, sizeof host, "tcp://127.0.0.1:%d", g_tls_port);
  snprintf(certs, sizeof certs, "%s/client-env", g_dir);
  setenv("DOCKER_HOST", host, 1);
  setenv("DOCKER_TLS_VERIFY", "1", 1);
  setenv("DOCKER_CERT_PATH", certs, 1);
  int hport = tu_free_port();
  char *svc = redis_service("redis", hport);
  write_config(f, NULL, NULL, svc);
  free(svc);
  new_manager(f);
  start_all(f);
  wait_state(f, "redis", TSVC_STATE_HEALTHY, HEALTHY_MS);
  tsvc_status_t st = status_of(f, "redis");
  assert_string_equal(st.probe_via, "container");
  /* The container's address on our network, with the container port. */
  assert_true(strncmp(st.probe_address, "127.", 4) != 0);
  assert_non_null(strstr(st.probe_address, ":6379"));
  assert_true(st.nhistory > 0);
  assert_string_equal(st.history[st.nhistory - 1].probe_address, st.probe_address);
  tsvc_status_clear(&st);
  char *log = tu_log_since(f->log_mark);
  assert_non_null(strstr(log, "runs on this machine (its ID is the local engine's)"));
  free(log);
  f->passed = true;
}

/* docker.tls keys (paths relative to the config's directory), probes
   forced through the published port, reached at the engine's host
   (localhost here, as the engine's certificate names it); status NAME
   and env say so. */
static void tls_keys_published(void **state) {
  need_engine();
  fx_t *f = *state;
  char out[8192];
  assert_int_equal(sh_out(out, sizeof out, "mkdir -p '%s/certs' && cp ca.pem client.pem "
                          "client-key.pem '%s/certs/'", f->dir, f->dir), 0);
  int hport = tu_free_port();
  char extra[512];
  snprintf(extra, sizeof extra,
           "  host: tcp://localhost:%d\n"
           "  probe_via: published\n"
           "  tls: {ca: certs/ca.pem, cert: certs/client.pem, key: certs/client-key.pem}\n",
           g_tls_port);
  char *svc = redis_service("redis", hport);
  write_config(f, "docker", extra, svc);
  free(svc);
  new_manager(f);
  start_all(f);
  wait_state(f, "redis", TSVC_STATE_HEALTHY, HEALTHY_MS);
  char want[64];
  snprintf(want, sizeof want, "localhost:%d", hport);
  tsvc_status_t st = status_of(f, "redis");
  assert_string_equal(st.probe_via, "published");
  assert_string_equal(st.probe_address, want);
  assert_true(st.nhistory > 0);
  assert_string_equal(st.history[st.nhistory - 1].probe_address, want);
  assert_string_equal(st.history[st.nhistory - 1].message, "PONG");
  tsvc_status_clear(&st);
  /* The program, with no monitor of its own: the same engine, the same
     route; env prints the engine's host and the published port. */
  int rc = run_cli(f, out, sizeof out, "status redis -c tanuki.yaml");
  if (rc != 0 || !strstr(out, "probe: redis, to localhost:") ||
      !strstr(out, "(the published port on the engine's host)"))
    fail_msg("status redis (%d):\n%s", rc, out);
  rc = run_cli(f, out, sizeof out, "env -c tanuki.yaml");
  char want_host[64], want_port[64], want_url[96];
  snprintf(want_host, sizeof want_host, "export REDIS_HOST='localhost'\n");
  snprintf(want_port, sizeof want_port, "export REDIS_PORT='%d'\n", hport);
  snprintf(want_url, sizeof want_url, "export REDIS_URL='redis://localhost:%d'\n", hport);
  if (rc != 0 || !strstr(out, want_host) || !strstr(out, want_port) || !strstr(out, want_url))
    fail_msg("env (%d):\n%s\nwant:\n%s%s%s", rc, out, want_host, want_port, want_url);
  f->passed = true;
}

/* Refusals under runtime auto with a named engine: an error at start that
   names the file or the check; never local processes. */
static void tls_refused(void **state) {
  need_engine();
  fx_t *f = *state;
  int hport = tu_free_port();
  char *svc = redis_service("redis", hport);
  static const struct {
    const char *what;
    const char *tls;  /* docker.tls, or NULL: the environment */
    int port;         /* 0: the endpoint for another name */
    const char *says[3];
  } cases[] = {
      {"client certificate of another CA", "{ca: %s/ca.pem, cert: %s/client2.pem, key: %s/client2-key.pem}",
       /* Both of the client's messages (the alert read, or the connection
          reset before it: client.c) name the file and the check. */
       1, {"the engine refused our client certificate", "/client2.pem",
           "a CA the engine trusts"}},
      {"missing key", "{ca: %s/ca.pem, cert: %s/client.pem, key: %s/no-such-key.pem}", 1,
       {"the TLS client key", "/no-such-key.pem (docker.tls) cannot be read",
        "No such file or directory"}},
      {"hostname mismatch", "{ca: %s/ca.pem, cert: %s/client.pem, key: %s/client-key.pem}", 0,
       {"hostname check failed", "does not name 127.0.0.1", "(docker.tls;"}},
      {"engine certificate of another CA", "{ca: %s/ca2.pem, cert: %s/client.pem, key: %s/client-key.pem}",
       1, {"the engine's certificate is not signed by the CA in", "/ca2.pem", "docker.tls"}},
      {"missing key in DOCKER_CERT_PATH", NULL, 1,
       {"/client-nokey/key.pem", "DOCKER_TLS_VERIFY with DOCKER_CERT_PATH=", "cannot be read"}},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(cases); i++) {
    char extra[1400] = "", tls[600];
    int port = cases[i].port ? g_tls_port : g_badname_port;
    if (cases[i].tls) {
      snprintf(tls, sizeof tls, cases[i].tls, g_dir, g_dir, g_dir);
      snprintf(extra, sizeof extra, "  host: tcp://127.0.0.1:%d\n  tls: %s\n", port, tls);
    } else {
      char host[128], certs[512];
      snprintf(host, sizeof host, "tcp://127.0.0.1:%d", port);
      snprintf(certs, sizeof certs, "%s/client-nokey", g_dir);
      setenv("DOCKER_HOST", host, 1);
      setenv("DOCKER_TLS_VERIFY", "1", 1);
      setenv("DOCKER_CERT_PATH", certs, 1);
    }
    write_config(f, NULL, extra, svc); /* runtime: auto */
    new_manager(f);
    const char *err = start_fails(f, TSVC_EUNREACH);
    for (int k = 0; k < 3; k++)
      if (!strstr(err, cases[i].says[k]))
        fail_msg("%s: the error lacks \"%s\":\n%s", cases[i].what, cases[i].says[k], err);
    /* Not turned into a local process: no runtime, nothing monitored. */
    assert_string_equal(tsvc_manager_runtime_name(f->m), "");
    assert_false(tsvc_manager_is_healthy(f->m, "redis"));
    tsvc_status_t st;
    assert_int_not_equal(tsvc_manager_get_status(f->m, "redis", &st), 0);
    assert_false(tu_port_open(hport));
    print_message("%s: %s\n", cases[i].what, err);
    free_manager(f);
    unsetenv("DOCKER_HOST");
    unsetenv("DOCKER_TLS_VERIFY");
    unsetenv("DOCKER_CERT_PATH");
  }
  free(svc);
  no_container(f);
  f->passed = true;
}

/* ---- publish_address -------------------------------------------------------------------- */

/* Published on a non-loopback address of this machine (the docker bridge's
   gateway): warned about once for two services, probes reach it there;
   back to the default, the container is made again on 127.0.0.1 with its
   data. */
static void publish_address_change(void **state) {
  need_engine();
  fx_t *f = *state;
  char gw[64];
  if (sh_out(gw, sizeof gw, "docker network inspect bridge -f "
             "'{{(index .IPAM.Config 0).Gateway}}'") != 0 || !tsvc_ip_literal(gw))
    fail_msg("no gateway address of the bridge network: %s", gw);
  int p1 = tu_free_port(), p2 = tu_free_port();
  char *a = redis_service("one", p1), *b = redis_service("two", p2);
  char *svcs = tsvc_asprintf("%s%s", a, b);
  char extra[256];
  snprintf(extra, sizeof extra, "  probe_via: published\n  publish_address: %s\n", gw);
  write_config(f, "docker", extra, svcs);
  new_manager(f);
  start_all(f);
  wait_state(f, "one", TSVC_STATE_HEALTHY, HEALTHY_MS);
  wait_state(f, "two", TSVC_STATE_HEALTHY, HEALTHY_MS);
  char want[96], out[4096];
  snprintf(want, sizeof want, "%s:%d", gw, p1);
  tsvc_status_t st = status_of(f, "one");
  assert_string_equal(st.probe_address, want);
  tsvc_status_clear(&st);
  assert_int_equal(sh_out(out, sizeof out, "docker inspect -f '{{json .HostConfig.PortBindings}}' "
                          "%sone", f->prefix), 0);
  if (!strstr(out, gw)) fail_msg("not published on %s: %s", gw, out);
  char *log = tu_log_since(f->log_mark);
  char warn[160];
  snprintf(warn, sizeof warn, "docker.publish_address is %s: the services' ports are published "
           "on that address of this machine", gw);
  if (tu_count(log, warn) != 1) fail_msg("want the warning once:\n%s", log);
  free(log);
  assert_int_equal(sh_out(out, sizeof out, "docker exec %sone redis-cli set marker kept",
                          f->prefix), 0);
  free_manager(f);

  /* The default again: made anew on 127.0.0.1 (its volumes handed on). */
  write_config(f, "docker", "  probe_via: published\n", svcs);
  size_t mark = tu_log_mark();
  new_manager(f);
  start_all(f);
  wait_state(f, "one", TSVC_STATE_HEALTHY, HEALTHY_MS);
  assert_int_equal(sh_out(out, sizeof out, "docker inspect -f '{{json .HostConfig.PortBindings}}' "
                          "%sone", f->prefix), 0);
  if (!strstr(out, "\"HostIp\":\"127.0.0.1\"")) fail_msg("not on 127.0.0.1: %s", out);
  snprintf(want, sizeof want, "127.0.0.1:%d", p1);
  st = status_of(f, "one");
  assert_string_equal(st.probe_address, want);
  tsvc_status_clear(&st);
  log = tu_log_since(mark);
  assert_non_null(strstr(log, "recreating"));
  assert_null(strstr(log, "docker.publish_address is")); /* loopback: no warning */
  free(log);
  free(a);
  free(b);
  free(svcs);
  f->passed = true;
}

/* probe_via: exec: the check runs as a command in the container (no port
   published at all: nothing else could reach it from here). */
static void exec_via(void **state) {
  need_engine();
  fx_t *f = *state;
  write_config(f, "docker", "  probe_via: exec\n",
               "  redis:\n"
               "    image: " REDIS_IMAGE "\n"
               "    healthcheck:\n"
               "      interval: 300ms\n"
               "      timeout: 3s\n"
               "      start_interval: 200ms\n");
  new_manager(f);
  start_all(f);
  wait_state(f, "redis", TSVC_STATE_HEALTHY, HEALTHY_MS);
  tsvc_status_t st = status_of(f, "redis");
  assert_string_equal(st.probe, "redis");
  assert_string_equal(st.probe_via, "exec");
  assert_string_equal(st.probe_address, "exec in the container");
  assert_true(st.nhistory > 0);
  /* An exec's verdict (the native probe would say PONG). */
  assert_string_equal(st.history[st.nhistory - 1].message, "exit code 0");
  assert_string_equal(st.history[st.nhistory - 1].probe_address, "exec in the container");
  tsvc_status_clear(&st);
  /* The server stops answering PING: redis-cli ... | grep -qx PONG fails. */
  char out[1024];
  assert_int_equal(sh_out(out, sizeof out, "docker exec %sredis redis-cli config set "
                          "requirepass not-the-probes", f->prefix), 0);
  int64_t end = tsvc_mono_ms() + HEALTHY_MS;
  bool failed = false;
  while (!failed && tsvc_mono_ms() < end) {
    st = status_of(f, "redis");
    for (size_t i = 0; i < st.nhistory; i++)
      if (st.history[i].result == TSVC_RESULT_EXEC_FAILED) failed = true;
    tsvc_status_clear(&st);
    tu_sleep_ms(50);
  }
  assert_true(failed);
  f->passed = true;
}

/* ---- ssh --------------------------------------------------------------------------------- */

static void ssh_tunnel(void **state) {
  need_engine();
  fx_t *f = *state;
  int hport = tu_free_port();
  char extra[512];
  /* config_file relative to the config's directory: copied beside it. */
  char out[4096];
  assert_int_equal(sh_out(out, sizeof out, "cp ssh_config '%s/ssh_config'", f->dir), 0);
  snprintf(extra, sizeof extra, "  host: ssh://%s@127.0.0.1:%d\n  ssh: {config_file: ssh_config}\n",
           g_user, g_ssh_port);
  char *svc = redis_service("redis", hport);
  write_config(f, NULL, extra, svc);
  free(svc);
  new_manager(f);
  start_all(f);
  wait_state(f, "redis", TSVC_STATE_HEALTHY, HEALTHY_MS);
  tsvc_status_t st = status_of(f, "redis");
  assert_string_equal(st.probe_via, "container"); /* this machine's engine, by its ID */
  uint64_t restarts = st.restarts_total;
  tsvc_status_clear(&st);

  /* The tunnel's ssh dies: unknown (nothing restarted), then back. */
  pid_t pids[8];
  int n = ssh_children(pids, 8);
  if (n != 1) fail_msg("%d ssh children, want the tunnel's one", n);
  pid_t old = pids[0];
  size_t mark = tu_log_mark();
  assert_int_equal(kill(old, SIGKILL), 0);
  wait_state(f, "redis", TSVC_STATE_UNKNOWN, HEALTHY_MS);
  wait_state(f, "redis", TSVC_STATE_HEALTHY, HEALTHY_MS);
  st = status_of(f, "redis");
  assert_int_equal(st.restarts_total, restarts);
  tsvc_status_clear(&st);
  n = ssh_children(pids, 8);
  assert_int_equal(n, 1);
  assert_int_not_equal(pids[0], old);
  char *log = tu_log_since(mark);
  assert_non_null(strstr(log, "is down: ssh was killed by signal 9; starting it again in"));
  assert_non_null(strstr(log, "up again"));
  assert_non_null(strstr(log, "state=unknown prev=healthy"));
  assert_null(strstr(log, "action=restart"));
  free(log);
  free_manager(f);
  /* Every ssh of ours is gone with the manager. */
  int64_t end = tsvc_mono_ms() + 5000;
  while (ssh_children(pids, 8) && tsvc_mono_ms() < end) tu_sleep_ms(20);
  assert_int_equal(ssh_children(pids, 8), 0);

  /* A key the server does not know: refused with ssh's own words, never
     local processes. */
  assert_int_equal(sh_out(out, sizeof out, "sed 's|id_test|id_unknown|' ssh_config > "
                          "'%s/ssh_config'", f->dir), 0);
  new_manager(f);
  const char *err = start_fails(f, TSVC_EUNREACH);
  if (!strstr(err, "Permission denied") || !strstr(err, "ssh exited with code 255"))
    fail_msg("refused login: %s", err);
  assert_string_equal(tsvc_manager_runtime_name(f->m), "");
  f->passed = true;
}

/* ---- group ------------------------------------------------------------------------------- */

/* Certificates for the TLS endpoints: CA and CA2; server (127.0.0.1,
   localhost) and badname (engine.invalid) from CA; client from CA,
   client2 from CA2; client-env/ (ca.pem, cert.pem, key.pem as
   DOCKER_CERT_PATH wants them) and client-nokey/ (no key.pem). */
static int make_certs(char *why, size_t len) {
  static const char script[] =
      "set -e; "
      "exec 2>&1; ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout $1-key.pem -subj \"/CN=$1\" "
      "-days 2 -out $1.pem; }; "
      "leaf() { openssl req -new -newkey rsa:2048 -nodes -keyout $1-key.pem -subj \"/CN=$2\" "
      "-out $1.csr; printf 'subjectAltName=%s\\nextendedKeyUsage=%s\\n' \"$3\" \"$5\" > $1.ext; "
      "openssl x509 -req -in $1.csr -CA $4.pem -CAkey $4-key.pem -CAcreateserial -days 2 "
      "-out $1.pem -extfile $1.ext; }; "
      "ca ca; ca ca2; "
      "leaf server localhost IP:127.0.0.1,DNS:localhost ca serverAuth; "
      "leaf badname engine.invalid DNS:engine.invalid ca serverAuth; "
      "leaf client client DNS:client ca clientAuth; "
      "leaf client2 client2 DNS:client2 ca2 clientAuth; "
      "mkdir client-env client-nokey; "
      "cp ca.pem client-env/ca.pem; cp client.pem client-env/cert.pem; "
      "cp client-key.pem client-env/key.pem; "
      "cp ca.pem client-nokey/ca.pem; cp client.pem client-nokey/cert.pem";
  char out[4096];
  if (sh_out(out, sizeof out, "%s", script) != 0) {
    size_t n = strlen(out);
    snprintf(why, len, "openssl failed to make the test's certificates: %.300s",
             n > 300 ? out + n - 300 : out);
    return -1;
  }
  return 0;
}

static pid_t start_socat(int port, const char *cert, char *why, size_t len) {
  char listen[1024], log[600];
  snprintf(listen, sizeof listen,
           "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,verify=1,cafile=%s/ca.pem,"
           "cert=%s/%s.pem,key=%s/%s-key.pem",
           port, g_dir, g_dir, cert, g_dir, cert);
  snprintf(log, sizeof log, "%s/socat-%s.log", g_dir, cert);
  char *argv[] = {"socat", listen, "UNIX-CONNECT:/var/run/docker.sock", NULL};
  pid_t pid = tu_spawn(argv, false, log);
  for (int i = 0; pid > 0 && i < 500 && !tu_port_open(port); i++) tu_sleep_ms(10);
  if (pid <= 0 || !tu_port_open(port)) {
    snprintf(why, len, "socat does not listen on 127.0.0.1:%d (see %.200s)", port, log);
    return -1;
  }
  return pid;
}

/* An sshd of our own on 127.0.0.1: its host key, our key authorized (and
   one that is not), known_hosts and an ssh_config for the client. */
static int start_sshd(char *why, size_t len) {
  struct passwd *pw = getpwuid(getuid());
  if (!pw) {
    snprintf(why, len, "who am I? (getpwuid)");
    return -1;
  }
  tsvc_strlcpy(g_user, pw->pw_name, sizeof g_user);
  g_ssh_port = tu_free_port();
  char out[4096];
  int rc = sh_out(out, sizeof out,
                  "set -e; ssh-keygen -q -t ed25519 -N '' -f host_key; "
                  "ssh-keygen -q -t ed25519 -N '' -f id_test; "
                  "ssh-keygen -q -t ed25519 -N '' -f id_unknown; "
                  "cp id_test.pub authorized_keys; chmod 600 authorized_keys; "
                  "printf '[127.0.0.1]:%d %%s\\n' \"$(cat host_key.pub)\" > known_hosts; "
                  "printf 'Host *\\n  IdentityFile %s/id_test\\n  IdentitiesOnly yes\\n"
                  "  UserKnownHostsFile %s/known_hosts\\n  StrictHostKeyChecking yes\\n' "
                  "> ssh_config; "
                  "printf 'Port %d\\nListenAddress 127.0.0.1\\nHostKey %s/host_key\\n"
                  "PidFile none\\nAuthorizedKeysFile %s/authorized_keys\\n"
                  "PasswordAuthentication no\\nKbdInteractiveAuthentication no\\n"
                  "PermitRootLogin prohibit-password\\nStrictModes no\\nUsePAM no\\n"
                  "AllowStreamLocalForwarding yes\\nLogLevel VERBOSE\\n' > sshd_config",
                  g_ssh_port, g_dir, g_dir, g_ssh_port, g_dir, g_dir);
  if (rc != 0) {
    snprintf(why, len, "cannot make the ssh keys: %.300s", out);
    return -1;
  }
  /* sshd wants its privilege separation directory (Debian's unit makes it). */
  if (getuid() == 0) mkdir("/run/sshd", 0755);
  char cfg[600], log[600];
  snprintf(cfg, sizeof cfg, "%s/sshd_config", g_dir);
  snprintf(log, sizeof log, "%s/sshd.log", g_dir);
  char *argv[] = {"/usr/sbin/sshd", "-D", "-e", "-f", cfg, NULL};
  g_sshd = tu_spawn(argv, false, log);
  for (int i = 0; g_sshd > 0 && i < 500 && !tu_port_open(g_ssh_port); i++) tu_sleep_ms(10);
  if (g_sshd <= 0 || !tu_port_open(g_ssh_port)) {
    char *text = tu_read_file(log, 0);
    snprintf(why, len, "sshd does not listen on 127.0.0.1:%d: %.300s", g_ssh_port,
             text ? text : "");
    free(text);
    return -1;
  }
  return 0;
}

static int group_setup(void **state) {
  (void)state;
  snprintf(g_base, sizeof g_base, "tsvc-remote-%d-", (int)getpid());
  snprintf(g_net, sizeof g_net, "%snet", g_base);
  tu_log_capture();
  g_dir = tu_mkdtemp("tsvc-remote-keys");
  if (!g_dir) return -1;
  chmod(g_dir, 0755); /* sshd reads it as the user it logs in */
  if (tu_docker_missing(REDIS_IMAGE, g_why, sizeof g_why)) {
    /* g_why says what */
  } else if (!tu_which("socat") || !tu_which("openssl") || access("/usr/sbin/sshd", X_OK) != 0 ||
             !tu_which("ssh") || !tu_which("ssh-keygen")) {
    snprintf(g_why, sizeof g_why, "socat, openssl, openssh-server or openssh-client missing");
  } else if (make_certs(g_why, sizeof g_why) == 0) {
    g_tls_port = tu_free_port();
    g_badname_port = tu_free_port();
    g_socat = start_socat(g_tls_port, "server", g_why, sizeof g_why);
    if (g_socat > 0) g_socat_badname = start_socat(g_badname_port, "badname", g_why, sizeof g_why);
    if (g_socat > 0 && g_socat_badname > 0 && start_sshd(g_why, sizeof g_why) == 0) g_ok = true;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (g_socat > 0) tu_stop_pid(g_socat, SIGTERM);
  if (g_socat_badname > 0) tu_stop_pid(g_socat_badname, SIGTERM);
  if (g_sshd > 0) tu_stop_pid(g_sshd, SIGTERM);
  char out[256];
  if (g_ok) sh_out(out, sizeof out, "docker network rm %s", g_net);
  tu_rmtree(g_dir);
  free(g_dir);
  free(tu_log_end());
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(endpoint_parse),
      cmocka_unit_test(ip_helpers),
      cmocka_unit_test(runtime_choice),
      cmocka_unit_test(where_probes_go),
      cmocka_unit_test(publish_addresses),
      cmocka_unit_test(published_hosts),
      cmocka_unit_test(api_fields),
      cmocka_unit_test_setup_teardown(tls_env_healthy, setup_tlsenv, fx_teardown),
      cmocka_unit_test_setup_teardown(tls_keys_published, setup_tlskeys, fx_teardown),
      cmocka_unit_test_setup_teardown(tls_refused, setup_tlsbad, fx_teardown),
      cmocka_unit_test_setup_teardown(publish_address_change, setup_pubaddr, fx_teardown),
      cmocka_unit_test_setup_teardown(exec_via, setup_execvia, fx_teardown),
      cmocka_unit_test_setup_teardown(ssh_tunnel, setup_ssh, fx_teardown),
  };
  const char *only = getenv("TSVC_REMOTE_TESTS");
  if (only && *only) cmocka_set_test_filter(only);
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
