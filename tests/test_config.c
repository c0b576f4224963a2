/*
 * test_config: tanuki.yaml loading, validation, diagnostics, dump, and the
 * `tanuki-svc config` command.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "config/config.h"
#include "testutil.h"
#include "tsvc.h"

#define F "t.yaml"

/* ---- helpers ---- */

static void dump_diag(const tsvc_diag_t *d) {
  for (size_t i = 0; i < d->n; i++) print_message("  diag: %s\n", d->lines[i]);
}

static bool has_line(const tsvc_diag_t *d, const char *line) {
  for (size_t i = 0; i < d->n; i++)
    if (strcmp(d->lines[i], line) == 0) return true;
  return false;
}

static void expect_line(const tsvc_diag_t *d, const char *line) {
  if (!has_line(d, line)) {
    dump_diag(d);
    fail_msg("missing diagnostic: %s", line);
  }
}

/* Load text that must be valid; warnings allowed. */
static tsvc_config_t *load_ok(const char *text, tsvc_diag_t *d) {
  tsvc_config_t *cfg = NULL;
  memset(d, 0, sizeof *d);
  int rc = tsvc_config_load_string(F, text, strlen(text), &cfg, d);
  if (rc != 0) {
    dump_diag(d);
    fail_msg("load failed: %s", tsvc_strerror(rc));
  }
  assert_non_null(cfg);
  assert_int_equal(d->nerrors, 0);
  return cfg;
}

/* Load text that must be invalid, with exactly the diagnostic `line` among
 * the errors. Returns the number of errors. */
static size_t load_bad(const char *text, const char *line) {
  tsvc_config_t *cfg = (tsvc_config_t *)1;
  tsvc_diag_t d = {0};
  int rc = tsvc_config_load_string(F, text, strlen(text), &cfg, &d);
  assert_int_equal(rc, TSVC_ECONFIG);
  assert_null(cfg);
  assert_true(d.nerrors >= 1);
  if (line) expect_line(&d, line);
  size_t n = d.nerrors;
  tsvc_diag_free(&d);
  return n;
}

/* Load text that must be valid with the warning `line`. */
static void load_warn(const char *text, const char *line) {
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok(text, &d);
  assert_int_equal(d.nwarnings, 1);
  expect_line(&d, line);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
}

static char *dump_to_string(const tsvc_config_t *cfg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  assert_int_equal(tsvc_config_dump(cfg, f), 0);
  assert_int_equal(fclose(f), 0);
  return buf;
}

/* ---- defaults and values ---- */

static void defaults_filled(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok("services:\n  app:\n    image: nginx:1\n", &d);
  assert_int_equal(d.n, 0);
  assert_string_equal(cfg->path, F);
  assert_int_equal(cfg->runtime, TSVC_RUNTIME_AUTO);
  assert_string_equal(cfg->docker.host, "unix:///var/run/docker.sock");
  assert_string_equal(cfg->docker.network, "tanuki-net");
  assert_string_equal(cfg->docker.container_prefix, "tanuki-svc-");
  assert_string_equal(cfg->monitor.socket, ".tanuki/tanuki-svc.sock");
  assert_null(cfg->monitor.listen);
  assert_int_equal(cfg->monitor.log_format, TSVC_LOGFMT_TEXT);
  assert_int_equal(cfg->monitor.timer_grid, 10);
  assert_int_equal(cfg->nservices, 1);
  const tsvc_service_conf_t *s = &cfg->services[0];
  assert_string_equal(s->name, "app");
  assert_int_equal(s->line, 2);
  assert_int_equal(s->column, 3);
  assert_true(s->enabled);
  assert_false(s->external);
  assert_string_equal(s->image, "nginx:1");
  assert_int_equal(s->port, 0);
  assert_int_equal(s->env_len, 0);
  assert_int_equal(s->volumes.n, 0);
  assert_int_equal(s->depends_on.n, 0);
  assert_int_equal(s->command.n, 0);
  const tsvc_healthcheck_conf_t *hc = &s->healthcheck;
  assert_int_equal(hc->command.n, 0);
  assert_false(hc->shell);
  assert_int_equal(hc->probe, TSVC_PROBE_AUTO);
  assert_int_equal(hc->interval, 10000);
  assert_int_equal(hc->timeout, 5000);
  assert_int_equal(hc->retries, 3);
  assert_int_equal(hc->success_threshold, 1);
  assert_int_equal(hc->start_period, 60000);
  assert_int_equal(hc->start_interval, 1000);
  assert_int_equal(hc->history, 20);
  assert_null(hc->address);
  assert_string_equal(hc->path, "/");
  assert_int_equal(hc->expect_status_min, 200);
  assert_int_equal(hc->expect_status_max, 399);
  const tsvc_restart_conf_t *r = &s->restart;
  assert_int_equal(r->policy, TSVC_POLICY_ON_UNHEALTHY);
  assert_int_equal(r->max_restarts, 5);
  assert_int_equal(r->window, 600000);
  assert_int_equal(r->backoff, 1000);
  assert_int_equal(r->max_backoff, 300000);
  assert_int_equal(r->cooldown, 1800000);
  assert_int_equal(r->stop_timeout, 10000);
  assert_int_equal(s->process.command.n, 0);
  assert_int_equal(s->process.env_len, 0);
  assert_null(s->process.workdir);
  assert_ptr_equal(tsvc_config_service(cfg, "app"), s);
  assert_null(tsvc_config_service(cfg, "nope"));
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
}

static void docker_host_from_env(void **st) {
  (void)st;
  tsvc_diag_t d;
  setenv("DOCKER_HOST", "tcp://10.0.0.5:2375", 1);
  tsvc_config_t *cfg = load_ok("services: {}\n", &d);
  assert_string_equal(cfg->docker.host, "tcp://10.0.0.5:2375");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  cfg = load_ok("docker:\n  host: unix:///run/user/1000/docker.sock\n", &d);
  assert_string_equal(cfg->docker.host, "unix:///run/user/1000/docker.sock");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  unsetenv("DOCKER_HOST");
}

/* The remote-engine keys (docs/remote.md): defaults, where TLS comes from,
   paths, and what does not go with the engine's transport. */
static void remote_engine_keys(void **st) {
  (void)st;
  tsvc_diag_t d;
  unsetenv("DOCKER_HOST");
  unsetenv("DOCKER_TLS_VERIFY");
  unsetenv("DOCKER_CERT_PATH");
  tsvc_config_t *cfg = load_ok("services: {}\n", &d);
  assert_false(cfg->docker.host_named); /* runtime auto may fall back */
  assert_int_equal(cfg->docker.probe_via, TSVC_VIA_AUTO);
  assert_string_equal(cfg->docker.publish_address, "127.0.0.1");
  assert_false(cfg->docker.tls.enabled);
  assert_string_equal(cfg->docker.ssh.socket, "/var/run/docker.sock");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  /* $DOCKER_HOST names an engine too: no fallback then. */
  setenv("DOCKER_HOST", "unix:///var/run/docker.sock", 1);
  cfg = load_ok("services: {}\n", &d);
  assert_true(cfg->docker.host_named);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  /* TLS as the docker CLI reads it: every file from DOCKER_CERT_PATH. */
  setenv("DOCKER_HOST", "tcp://engine.example:2376", 1);
  setenv("DOCKER_TLS_VERIFY", "1", 1);
  setenv("DOCKER_CERT_PATH", "/etc/engine-certs", 1);
  cfg = load_ok("services: {}\n", &d);
  assert_true(cfg->docker.tls.enabled);
  assert_true(cfg->docker.tls.verify);
  assert_string_equal(cfg->docker.tls.ca, "/etc/engine-certs/ca.pem");
  assert_string_equal(cfg->docker.tls.cert, "/etc/engine-certs/cert.pem");
  assert_string_equal(cfg->docker.tls.key, "/etc/engine-certs/key.pem");
  assert_string_equal(cfg->docker.tls.origin,
                      "DOCKER_TLS_VERIFY with DOCKER_CERT_PATH=/etc/engine-certs");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  unsetenv("DOCKER_TLS_VERIFY");
  unsetenv("DOCKER_CERT_PATH");
  /* A host the docker CLI would not take, from the environment. */
  setenv("DOCKER_HOST", "ssh://me:secret@engine.example", 1);
  load_bad("services: {}\n", F ":1:1: error: docker.host (from $DOCKER_HOST): docker host "
           "ssh://me:secret@engine.example: a password in the URL is not supported; use a key "
           "(docker.ssh.identity_file, or ssh-agent)");
  unsetenv("DOCKER_HOST");

  /* docker.tls in a file: paths from the config's directory and ~. */
  char *dir = tu_mkdtemp("tsvc-cfg-tls");
  assert_non_null(dir);
  char path[600], want[700];
  snprintf(path, sizeof path, "%s/tanuki.yaml", dir);
  assert_int_equal(tu_write_file(path, "docker:\n  host: tcp://engine.example:2376\n"
                                       "  tls: {ca: certs/ca.pem, cert: ~/c.pem, key: ~/k.pem, "
                                       "verify: false}\n"), 0);
  const char *home = getenv("HOME");
  char *saved_home = home ? strdup(home) : NULL;
  setenv("HOME", "/home/someone", 1);
  memset(&d, 0, sizeof d);
  int lrc = tsvc_config_load(path, &cfg, &d);
  if (saved_home) setenv("HOME", saved_home, 1);
  else unsetenv("HOME");
  free(saved_home);
  assert_int_equal(lrc, 0);
  snprintf(want, sizeof want, "%s/certs/ca.pem", dir);
  assert_string_equal(cfg->docker.tls.ca, want);
  assert_string_equal(cfg->docker.tls.cert, "/home/someone/c.pem");
  assert_string_equal(cfg->docker.tls.key, "/home/someone/k.pem");
  assert_false(cfg->docker.tls.verify);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  /* ssh options, relative paths from the config's directory. */
  assert_int_equal(tu_write_file(path, "docker:\n  host: ssh://deploy@engine.example:2222\n"
                                       "  ssh: {identity_file: keys/id, config_file: "
                                       "ssh_config, socket: /run/docker.sock}\n"), 0);
  memset(&d, 0, sizeof d);
  assert_int_equal(tsvc_config_load(path, &cfg, &d), 0);
  snprintf(want, sizeof want, "%s/keys/id", dir);
  assert_string_equal(cfg->docker.ssh.identity_file, want);
  snprintf(want, sizeof want, "%s/ssh_config", dir);
  assert_string_equal(cfg->docker.ssh.config_file, want);
  assert_string_equal(cfg->docker.ssh.socket, "/run/docker.sock");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  tu_rmtree(dir);
  free(dir);

  load_bad("docker:\n  probe_via: publish\n",
           F ":2:14: error: docker.probe_via: unknown probe_via \"publish\"; did you mean "
             "\"published\"? (valid: auto, container, published, exec)");
  load_bad("docker:\n  publish_address: engine.example\n",
           F ":2:20: error: docker.publish_address: expected an IP address of the engine's "
             "machine (127.0.0.1, 10.0.0.5, 0.0.0.0 for every interface, ::1), got "
             "\"engine.example\"");
  load_bad("docker:\n  host: unix:///var/run/docker.sock\n  tls: {ca: /x/ca.pem}\n",
           F ":3:8: error: docker.tls: TLS is for tcp:// engines, and docker.host is "
             "unix:///var/run/docker.sock");
  load_bad("docker:\n  host: tcp://e:2376\n  ssh: {socket: /run/docker.sock}\n",
           F ":3:8: error: docker.ssh: for ssh:// engines, and docker.host is tcp://e:2376");
  load_bad("docker:\n  host: ssh://e\n  ssh: {socket: run/docker.sock}\n",
           F ":3:17: error: docker.ssh.socket: must be an absolute path, got \"run/docker.sock\"");
  load_bad("docker:\n  tls: {kee: x}\n", NULL);
  load_bad("docker:\n  host: ssh://e/var/run/docker.sock\n",
           F ":2:9: error: docker.host: docker host ssh://e/var/run/docker.sock: nothing may "
             "follow the host (no path, query or fragment): the engine's socket on that "
             "machine is docker.ssh.socket");
}

static const char every_key[] =
    "runtime: docker\n"
    "docker:\n"
    "  host: tcp://127.0.0.1:2375\n"
    "  network: mynet\n"
    "  container_prefix: proj-\n"
    "  probe_via: published\n"
    "  publish_address: 10.0.0.5\n"
    "  tls: {verify: true, ca: /etc/tsvc/ca.pem, cert: /etc/tsvc/cert.pem, key: "
    "/etc/tsvc/key.pem}\n"
    "monitor:\n"
    "  socket: /tmp/x.sock\n"
    "  listen: 127.0.0.1:7070\n"
    "  log_format: json\n"
    "  timer_grid: 25ms\n"
    "services:\n"
    "  db:\n"
    "    enabled: false\n"
    "    image: postgres:16\n"
    "    pull_policy: never\n"
    "    port: \"15433:5433\"\n"
    "    environment: {POSTGRES_USER: u, POSTGRES_PASSWORD: pw, PORT: 5432, DEBUG: true, "
    "EMPTY: }\n"
    "    volumes: [v1:/data, /host:/ro:ro]\n"
    "    external: false\n"
    "    command: [postgres, -c, max_connections=200]\n"
    "    healthcheck:\n"
    "      command: [\"CMD\", \"pg_isready\", \"-U\", \"u\"]\n"
    "      probe: postgres\n"
    "      interval: 30s\n"
    "      timeout: 2s\n"
    "      retries: 5\n"
    "      success_threshold: 2\n"
    "      start_period: 0s\n"
    "      start_interval: 500ms\n"
    "      history: 50\n"
    "      address: db.internal:5433\n"
    "      path: /healthz\n"
    "      expect_status: \"200-204\"\n"
    "    restart:\n"
    "      policy: never\n"
    "      max_restarts: 2\n"
    "      window: 1h\n"
    "      backoff: 2s\n"
    "      max_backoff: 1m\n"
    "      cooldown: 0s\n"
    "      stop_timeout: 30s\n"
    "    process:\n"
    "      command: postgres -D data\n"
    "      env: [PGDATA=/x, PGPORT=5433]\n"
    "      workdir: /srv\n"
    "  app:\n"
    "    image: myapp\n"
    "    depends_on: [db]\n"
    "    healthcheck: {probe: http, expect_status: 204}\n";

static void every_key_loads(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok(every_key, &d);
  assert_int_equal(d.n, 0);
  assert_int_equal(cfg->runtime, TSVC_RUNTIME_DOCKER);
  assert_string_equal(cfg->docker.host, "tcp://127.0.0.1:2375");
  assert_string_equal(cfg->docker.network, "mynet");
  assert_string_equal(cfg->docker.container_prefix, "proj-");
  assert_int_equal(cfg->docker.probe_via, TSVC_VIA_PUBLISHED);
  assert_string_equal(cfg->docker.publish_address, "10.0.0.5");
  assert_true(cfg->docker.tls.enabled);
  assert_true(cfg->docker.tls.verify);
  assert_string_equal(cfg->docker.tls.ca, "/etc/tsvc/ca.pem");
  assert_string_equal(cfg->docker.tls.cert, "/etc/tsvc/cert.pem");
  assert_string_equal(cfg->docker.tls.key, "/etc/tsvc/key.pem");
  assert_string_equal(cfg->docker.tls.origin, "docker.tls");
  assert_true(cfg->docker.host_named);
  assert_string_equal(cfg->monitor.socket, "/tmp/x.sock");
  assert_string_equal(cfg->monitor.listen, "127.0.0.1:7070");
  assert_int_equal(cfg->monitor.log_format, TSVC_LOGFMT_JSON);
  assert_int_equal(cfg->monitor.timer_grid, 25);
  assert_int_equal(cfg->nservices, 2);
  const tsvc_service_conf_t *s = tsvc_config_service(cfg, "db");
  assert_non_null(s);
  assert_false(s->enabled);
  assert_int_equal(s->port, 5433);
  assert_int_equal(s->host_port, 15433);
  assert_int_equal(s->pull_policy, TSVC_PULL_NEVER);
  assert_int_equal(s->env_len, 5);
  assert_string_equal(s->env[0].key, "POSTGRES_USER");
  assert_string_equal(s->env[1].value, "pw");
  assert_string_equal(s->env[2].value, "5432");
  assert_string_equal(s->env[3].value, "true");
  assert_string_equal(s->env[4].key, "EMPTY");
  assert_string_equal(s->env[4].value, "");
  assert_int_equal(s->volumes.n, 2);
  assert_string_equal(s->volumes.v[1], "/host:/ro:ro");
  assert_int_equal(s->command.n, 3);
  assert_string_equal(s->command.v[2], "max_connections=200");
  const tsvc_healthcheck_conf_t *hc = &s->healthcheck;
  assert_int_equal(hc->command.n, 3);
  assert_string_equal(hc->command.v[0], "pg_isready");
  assert_false(hc->shell);
  assert_int_equal(hc->probe, TSVC_PROBE_POSTGRES);
  assert_int_equal(hc->interval, 30000);
  assert_int_equal(hc->timeout, 2000);
  assert_int_equal(hc->retries, 5);
  assert_int_equal(hc->success_threshold, 2);
  assert_int_equal(hc->start_period, 0);
  assert_int_equal(hc->start_interval, 500);
  assert_int_equal(hc->history, 50);
  assert_string_equal(hc->address, "db.internal:5433");
  assert_string_equal(hc->path, "/healthz");
  assert_int_equal(hc->expect_status_min, 200);
  assert_int_equal(hc->expect_status_max, 204);
  const tsvc_restart_conf_t *r = &s->restart;
  assert_int_equal(r->policy, TSVC_POLICY_NEVER);
  assert_int_equal(r->max_restarts, 2);
  assert_int_equal(r->window, 3600000);
  assert_int_equal(r->backoff, 2000);
  assert_int_equal(r->max_backoff, 60000);
  assert_int_equal(r->cooldown, 0);
  assert_int_equal(r->stop_timeout, 30000);
  /* A string command is for the shell. */
  assert_int_equal(s->process.command.n, 3);
  assert_string_equal(s->process.command.v[0], "/bin/sh");
  assert_string_equal(s->process.command.v[1], "-c");
  assert_string_equal(s->process.command.v[2], "postgres -D data");
  assert_int_equal(s->process.env_len, 2);
  assert_string_equal(s->process.env[1].key, "PGPORT");
  assert_string_equal(s->process.env[1].value, "5433");
  assert_string_equal(s->process.workdir, "/srv");
  const tsvc_service_conf_t *app = tsvc_config_service(cfg, "app");
  assert_int_equal(app->depends_on.n, 1);
  assert_string_equal(app->depends_on.v[0], "db");
  assert_int_equal(app->healthcheck.probe, TSVC_PROBE_HTTP);
  assert_int_equal(app->healthcheck.expect_status_min, 204);
  assert_int_equal(app->healthcheck.expect_status_max, 204);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
}

/* monitor.listen ":7070" means loopback, as docs/api.md says; the loader
   keeps the one form the API binds (it used to reject ":7070"). */
static void listen_port_only_means_loopback(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok("monitor:\n  listen: \":7070\"\nservices:\n  a: {image: x}\n", &d);
  assert_string_equal(cfg->monitor.listen, "127.0.0.1:7070");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  load_bad("monitor:\n  listen: \":0\"\nservices:\n  a: {image: x}\n",
           F ":2:11: error: monitor.listen: expected \"host:port\" or \":port\" (loopback) with "
             "a port from 1 to 65535, got \":0\"");
  load_bad("monitor:\n  listen: \"7070\"\nservices:\n  a: {image: x}\n", NULL);
}

static void command_forms(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok(
      "services:\n"
      "  a: {image: x, healthcheck: {command: [pg_isready, -U, tanuki]}}\n"
      "  b: {image: x, healthcheck: {command: [CMD, redis-cli, ping]}}\n"
      "  c: {image: x, healthcheck: {command: [CMD-SHELL, \"curl -f localhost || exit 1\"]}}\n"
      "  d: {image: x, healthcheck: {command: \"pg_isready -U tanuki\"}}\n"
      "  e: {image: x, command: [CMD-SHELL, \"run && more\"], process: {command: [CMD, srv]}}\n",
      &d);
  const tsvc_healthcheck_conf_t *a = &tsvc_config_service(cfg, "a")->healthcheck;
  assert_false(a->shell);
  assert_int_equal(a->command.n, 3);
  assert_string_equal(a->command.v[1], "-U");
  const tsvc_healthcheck_conf_t *b = &tsvc_config_service(cfg, "b")->healthcheck;
  assert_false(b->shell);
  assert_int_equal(b->command.n, 2);
  assert_string_equal(b->command.v[0], "redis-cli");
  const tsvc_healthcheck_conf_t *c = &tsvc_config_service(cfg, "c")->healthcheck;
  assert_true(c->shell);
  assert_int_equal(c->command.n, 1);
  assert_string_equal(c->command.v[0], "curl -f localhost || exit 1");
  const tsvc_healthcheck_conf_t *dd = &tsvc_config_service(cfg, "d")->healthcheck;
  assert_true(dd->shell);
  assert_int_equal(dd->command.n, 1);
  assert_string_equal(dd->command.v[0], "pg_isready -U tanuki");
  const tsvc_service_conf_t *e = tsvc_config_service(cfg, "e");
  assert_int_equal(e->command.n, 3);
  assert_string_equal(e->command.v[0], "/bin/sh");
  assert_string_equal(e->command.v[2], "run && more");
  assert_int_equal(e->process.command.n, 1);
  assert_string_equal(e->process.command.v[0], "srv");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);

  load_bad("services:\n  a:\n    healthcheck:\n      command: []\n",
           F ":4:16: error: services.a.healthcheck.command: must not be empty");
  load_bad("services:\n  a:\n    healthcheck:\n      command: [CMD]\n",
           F ":4:16: error: services.a.healthcheck.command: [\"CMD\"] needs the command after it");
  load_bad("services:\n  a:\n    healthcheck:\n      command: [CMD-SHELL, a, b]\n",
           F ":4:16: error: services.a.healthcheck.command: [\"CMD-SHELL\", ...] takes exactly "
             "one string after it");
  load_bad("services:\n  a:\n    healthcheck:\n      command: {x: 1}\n",
           F ":4:16: error: services.a.healthcheck.command: expected a string or a list, got "
             "a mapping");
  load_bad("services:\n  a:\n    healthcheck:\n      command: [ls, [x]]\n",
           F ":4:21: error: services.a.healthcheck.command: expected a string in the list, got "
             "a list");
}

static void environment_forms(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg =
      load_ok("services:\n  a:\n    image: x\n    environment:\n      - A=1\n      - B=x=y\n"
              "      - C=\n",
              &d);
  const tsvc_service_conf_t *s = &cfg->services[0];
  assert_int_equal(s->env_len, 3);
  assert_string_equal(s->env[0].key, "A");
  assert_string_equal(s->env[0].value, "1");
  assert_string_equal(s->env[1].key, "B");
  assert_string_equal(s->env[1].value, "x=y");
  assert_string_equal(s->env[2].value, "");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);

  load_bad("services:\n  a:\n    environment:\n      - FOO\n",
           F ":4:9: error: services.a.environment: expected \"KEY=VALUE\", got \"FOO\"");
  load_bad("services:\n  a:\n    environment: [A=1, A=2]\n",
           F ":3:24: error: duplicate key \"A\" in services.a.environment");
  load_bad("services:\n  a:\n    environment:\n      A: 1\n      A: 2\n",
           F ":5:7: error: duplicate key \"A\" in services.a.environment (first at line 4)");
  load_bad("services:\n  a:\n    environment:\n      A: [1]\n",
           F ":4:10: error: services.a.environment.A: expected a string, got a list");
  load_bad("services:\n  a:\n    environment: FOO=1\n",
           F ":3:18: error: services.a.environment: expected a mapping or a list of "
             "\"KEY=VALUE\", got \"FOO=1\"");
}

static void expect_status_forms(void **st) {
  (void)st;
  load_bad("services:\n  a:\n    healthcheck: {expect_status: \"399-200\"}\n",
           F ":3:34: error: services.a.healthcheck.expect_status: a range goes from low to "
             "high, got \"399-200\"");
  load_bad("services:\n  a:\n    healthcheck: {expect_status: 700}\n",
           F ":3:34: error: services.a.healthcheck.expect_status: 700 is too large (at most "
             "599)");
  load_bad("services:\n  a:\n    healthcheck: {expect_status: ok}\n",
           F ":3:34: error: services.a.healthcheck.expect_status: expected a status code (200) "
             "or a range (\"200-399\"), got \"ok\"");
}

/* ---- errors, each with its exact position and message ---- */

static void unknown_keys(void **st) {
  (void)st;
  load_bad("services:\n  postgres:\n    image: postgres:16\n    healthcheck:\n"
           "      intervall: 5s\n",
           F ":5:7: error: unknown key \"intervall\" in services.postgres.healthcheck; did you "
             "mean \"interval\"?");
  load_bad("services:\n  postgres:\n    imgae: postgres:16\n",
           F ":3:5: error: unknown key \"imgae\" in services.postgres; did you mean \"image\"?");
  load_bad("docker:\n  netwrok: x\n",
           F ":2:3: error: unknown key \"netwrok\" in docker; did you mean \"network\"?");
  load_bad("monitor:\n  log-format: json\n",
           F ":2:3: error: unknown key \"log-format\" in monitor; did you mean \"log_format\"?");
  load_bad("services:\n  a:\n    restart: {max_restart: 3}\n",
           F ":3:15: error: unknown key \"max_restart\" in services.a.restart; did you mean "
             "\"max_restarts\"?");
  load_bad("services:\n  a:\n    process: {cwd: /x}\n",
           F ":3:15: error: unknown key \"cwd\" in services.a.process");
  load_bad("services:\n  a:\n    interval: 5s\n",
           F ":3:5: error: unknown key \"interval\" in services.a; did you mean "
             "\"healthcheck.interval\"?");
  load_bad("services:\n  a:\n    labels: {x: y}\n",
           F ":3:5: error: unknown key \"labels\" in services.a");
}

static void wrong_types(void **st) {
  (void)st;
  load_bad("services:\n  a:\n    healthcheck: 5s\n",
           F ":3:18: error: services.a.healthcheck: expected a mapping, got \"5s\"");
  load_bad("services:\n  a:\n    volumes: data:/data\n",
           F ":3:14: error: services.a.volumes: expected a list, got \"data:/data\"");
  load_bad("services:\n  a:\n    image: [postgres]\n",
           F ":3:12: error: services.a.image: expected a string, got a list");
  load_bad("services:\n  a:\n    port: abc\n",
           F ":3:11: error: services.a.port: expected a port (6379) or \"HOST:CONTAINER\" "
             "(\"16379:6379\"), got \"abc\"");
  load_bad("services:\n  a:\n    port: 54.32\n",
           F ":3:11: error: services.a.port: expected a port (6379) or \"HOST:CONTAINER\" "
             "(\"16379:6379\"), got \"54.32\"");
  load_bad("services:\n  a:\n    enabled: maybe\n",
           F ":3:14: error: services.a.enabled: expected a boolean (true or false), got "
             "\"maybe\"");
  load_bad("services:\n  a:\n    external: \"true\"\n",
           F ":3:15: error: services.a.external: expected a boolean (true or false), got "
             "\"true\"");
  load_bad("services:\n  a:\n    healthcheck: {interval: [5s]}\n",
           F ":3:29: error: services.a.healthcheck.interval: expected a duration (like 5s or "
             "1m30s), got a list");
  load_bad("services: [a, b]\n",
           F ":1:11: error: services: expected a mapping of services, got a list");
  load_bad("services:\n  a: postgres\n",
           F ":2:6: error: services.a: expected a mapping, got \"postgres\"");
  load_bad("docker: unix:///x\n", F ":1:9: error: docker: expected a mapping, got \"unix:///x\"");
  load_bad("services:\n  a:\n    healthcheck: {interval: 5}\n",
           F ":3:29: error: services.a.healthcheck.interval: missing unit in duration \"5\"; "
             "did you mean \"5s\"?");
  load_bad("services:\n  a:\n    healthcheck: {interval: \"5\"}\n",
           F ":3:29: error: services.a.healthcheck.interval: missing unit in duration \"5\"; "
             "did you mean \"5s\"?");
  load_bad("services:\n  a:\n    restart: {window: -1m}\n",
           F ":3:23: error: services.a.restart.window: negative duration \"-1m\" is not allowed");
  load_bad("services:\n  a:\n    healthcheck: {address: localhost}\n",
           F ":3:28: error: services.a.healthcheck.address: expected \"host:port\" with a port "
             "from 1 to 65535, got \"localhost\"");
  load_bad("services:\n  a:\n    healthcheck: {path: healthz}\n",
           F ":3:25: error: services.a.healthcheck.path: must start with \"/\", got \"healthz\"");
  load_bad("docker:\n  host: npipe:////./pipe/docker_engine\n",
           F ":2:9: error: docker.host: docker host npipe:////./pipe/docker_engine: unsupported "
             "(use unix:///path, tcp://host:port or ssh://user@host[:port])");
  load_bad("services:\n  a:\n    image: \"\"\n",
           F ":3:12: error: services.a.image: must not be empty");
  load_bad("services:\n  a:\n    {[x]: 1}\n", NULL);
}

/* port: N publishes N:N; "H:C" is compose's short form; its other forms
   are refused by name. */
static void port_forms(void **st) {
  (void)st;
  static const struct {
    const char *yaml;
    int host, container;
  } ok[] = {
      {"6379", 6379, 6379},
      {"\"6379\"", 6379, 6379},
      {"\"16379:6379\"", 16379, 6379},
      {"16379:6379", 16379, 6379}, /* plain: the text, not YAML 1.1's base 60 */
      {"'1:65535'", 1, 65535},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char text[256];
    snprintf(text, sizeof text, "services:\n  a:\n    image: x\n    port: %s\n", ok[i].yaml);
    tsvc_diag_t d;
    tsvc_config_t *cfg = load_ok(text, &d);
    const tsvc_service_conf_t *s = tsvc_config_service(cfg, "a");
    assert_int_equal(s->host_port, ok[i].host);
    assert_int_equal(s->port, ok[i].container);
    tsvc_config_free(cfg);
    tsvc_diag_free(&d);
  }
  /* Not set: both 0. */
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok("services:\n  a:\n    image: x\n", &d);
  assert_int_equal(tsvc_config_service(cfg, "a")->port, 0);
  assert_int_equal(tsvc_config_service(cfg, "a")->host_port, 0);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);

  load_bad("services:\n  a:\n    image: x\n    port: \"127.0.0.1:16379:6379\"\n",
           F ":4:11: error: services.a.port: \"127.0.0.1:16379:6379\": an address is not "
             "supported (ports are published on docker.publish_address, 127.0.0.1 by "
             "default); write \"HOST:CONTAINER\"");
  load_bad("services:\n  a:\n    image: x\n    port: \"16379:6379/udp\"\n",
           F ":4:11: error: services.a.port: \"16379:6379/udp\": a protocol is not supported "
             "(ports are published over tcp); write \"HOST:CONTAINER\"");
  load_bad("services:\n  a:\n    image: x\n    port: \"8000-8001:80\"\n",
           F ":4:11: error: services.a.port: \"8000-8001:80\": port ranges are not supported; "
             "write one \"HOST:CONTAINER\"");
  load_bad("services:\n  a:\n    image: x\n    port: \"0:6379\"\n",
           F ":4:11: error: services.a.port: \"0:6379\": the host port must be a number from 1 "
             "to 65535 (as in \"16379:6379\": host port 16379 published to container port 6379)");
  load_bad("services:\n  a:\n    image: x\n    port: \"16379:redis\"\n",
           F ":4:11: error: services.a.port: \"16379:redis\": the container port must be a "
             "number from 1 to 65535 (as in \"16379:6379\": host port 16379 published to "
             "container port 6379)");
  load_bad("services:\n  a:\n    image: x\n    port: \":6379\"\n",
           F ":4:11: error: services.a.port: \":6379\": the host port must be a number from 1 "
             "to 65535 (as in \"16379:6379\": host port 16379 published to container port 6379)");
  load_bad("services:\n  a:\n    image: x\n    port: [1, 2]\n",
           F ":4:11: error: services.a.port: expected a port (6379) or \"HOST:CONTAINER\" "
             "(\"16379:6379\"), got a list");
}

static void pull_policy_forms(void **st) {
  (void)st;
  static const struct {
    const char *yaml;
    tsvc_pull_policy_t want;
  } ok[] = {{NULL, TSVC_PULL_MISSING},
            {"missing", TSVC_PULL_MISSING},
            {"if_not_present", TSVC_PULL_MISSING},
            {"always", TSVC_PULL_ALWAYS},
            {"never", TSVC_PULL_NEVER}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char text[256];
    snprintf(text, sizeof text, "services:\n  a:\n    image: x\n%s%s\n",
             ok[i].yaml ? "    pull_policy: " : "", ok[i].yaml ? ok[i].yaml : "");
    tsvc_diag_t d;
    tsvc_config_t *cfg = load_ok(text, &d);
    assert_int_equal(tsvc_config_service(cfg, "a")->pull_policy, ok[i].want);
    tsvc_config_free(cfg);
    tsvc_diag_free(&d);
  }
  assert_string_equal(tsvc_pull_policy_name(TSVC_PULL_ALWAYS), "always");
  load_bad("services:\n  a:\n    image: x\n    pull_policy: allways\n",
           F ":4:18: error: services.a.pull_policy: unknown pull_policy \"allways\"; did you mean "
             "\"always\"? (valid: missing, always, never)");
  load_bad("services:\n  a:\n    image: x\n    pull_policy: build\n",
           F ":4:18: error: services.a.pull_policy: \"build\" is not supported: tanuki-svc "
             "builds no images (build it with docker build, then use missing or never)");
}

static void ranges(void **st) {
  (void)st;
  load_bad("services:\n  a:\n    healthcheck: {retries: 0}\n",
           F ":3:28: error: services.a.healthcheck.retries: 0 is too small (at least 1)");
  load_bad("services:\n  a:\n    healthcheck: {retries: -2}\n",
           F ":3:28: error: services.a.healthcheck.retries: -2 is too small (at least 1)");
  load_bad("services:\n  a:\n    healthcheck: {success_threshold: 0}\n",
           F ":3:38: error: services.a.healthcheck.success_threshold: 0 is too small (at least 1)");
  load_bad("services:\n  a:\n    healthcheck: {history: 0}\n",
           F ":3:28: error: services.a.healthcheck.history: 0 is too small (at least 1)");
  load_bad("services:\n  a:\n    healthcheck: {interval: 0s}\n",
           F ":3:29: error: services.a.healthcheck.interval: must be greater than 0");
  load_bad("services:\n  a:\n    healthcheck: {timeout: 0s}\n",
           F ":3:28: error: services.a.healthcheck.timeout: must be greater than 0");
  load_bad("services:\n  a:\n    healthcheck: {start_interval: 0s}\n",
           F ":3:35: error: services.a.healthcheck.start_interval: must be greater than 0");
  load_bad("services:\n  a:\n    restart: {max_restarts: 0}\n",
           F ":3:29: error: services.a.restart.max_restarts: 0 is too small (at least 1)");
  load_bad("services:\n  a:\n    restart: {window: 0s}\n",
           F ":3:23: error: services.a.restart.window: must be greater than 0");
  load_bad("services:\n  a:\n    port: 0\n",
           F ":3:11: error: services.a.port: 0 is too small (at least 1)");
  load_bad("services:\n  a:\n    port: 65536\n",
           F ":3:11: error: services.a.port: 65536 is too large (at most 65535)");
  /* Too large says so for every integer key, however far out of range
     (past what an int or a long holds too). */
  const struct {
    const char *key, *section;
    long max;
  } ints[] = {{"retries", "healthcheck", INT_MAX}, {"success_threshold", "healthcheck", INT_MAX},
              {"history", "healthcheck", 10000},   {"max_restarts", "restart", INT_MAX},
              {"port", NULL, 65535},               {"expect_status", "healthcheck", 599}};
  const char *huge[] = {"99999999999", "99999999999999999999", "\"99999999999\""};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
      char text[256], want[256], shown[64];
      snprintf(shown, sizeof shown, "%s", huge[h][0] == '"' ? "99999999999" : huge[h]);
      if (ints[i].section) {
        int col = 7 + (int)strlen(ints[i].key);
        snprintf(text, sizeof text, "services:\n  a:\n    %s:\n      %s: %s\n", ints[i].section,
                 ints[i].key, huge[h]);
        snprintf(want, sizeof want,
                 F ":4:%d: error: services.a.%s.%s: %s is too large (at most %ld)",
                 col + 2, ints[i].section, ints[i].key, shown, ints[i].max);
      } else {
        snprintf(text, sizeof text, "services:\n  a:\n    %s: %s\n", ints[i].key, huge[h]);
        snprintf(want, sizeof want, F ":3:%d: error: services.a.%s: %s is too large (at most %ld)",
                 7 + (int)strlen(ints[i].key), ints[i].key, shown, ints[i].max);
      }
      load_bad(text, want);
    }
  }
  load_bad("services:\n  a:\n    port: -99999999999999999999\n",
           F ":3:11: error: services.a.port: -99999999999999999999 is too small (at least 1)");
  load_bad("services:\n  a:\n    healthcheck: {expect_status: \"200-99999999999999999999\"}\n",
           F ":3:34: error: services.a.healthcheck.expect_status: 99999999999999999999 is too "
             "large (at most 599)");
  load_bad("services:\n  a:\n    healthcheck: {expect_status: \"2x0-300\"}\n",
           F ":3:34: error: services.a.healthcheck.expect_status: expected a status code (200) "
             "or a range (\"200-399\"), got \"2x0-300\"");
  /* Held sessions: redis and postgres only; full_every above zero. */
  load_bad("services:\n  a:\n    healthcheck: {probe: http, session: true}\n",
           F ":3:41: error: services.a.healthcheck.session: held sessions are for the redis "
             "and postgres probes, not http");
  load_bad("services:\n  a:\n    healthcheck: {session: true, full_every: 0s}\n",
           F ":3:46: error: services.a.healthcheck.full_every: must be greater than 0");
  {
    tsvc_diag_t sd;
    tsvc_config_t *sc = load_ok("services:\n  redis:\n    image: redis:7\n"
                                "    healthcheck: {session: true, full_every: 30s}\n"
                                "  pg:\n    image: postgres:16\n",
                                &sd);
    assert_true(sc->services[0].healthcheck.session);
    assert_int_equal(sc->services[0].healthcheck.full_every, 30000);
    assert_false(sc->services[1].healthcheck.session);
    assert_int_equal(sc->services[1].healthcheck.full_every, 60000);
    tsvc_config_free(sc);
    tsvc_diag_free(&sd);
  }
  /* Zero is fine where it means something. */
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok(
      "services:\n  a:\n    image: x\n    healthcheck: {start_period: 0s}\n"
      "    restart: {cooldown: 0, backoff: 0s, stop_timeout: 0s}\n",
      &d);
  assert_int_equal(cfg->services[0].healthcheck.start_period, 0);
  assert_int_equal(cfg->services[0].restart.cooldown, 0);
  assert_int_equal(cfg->services[0].restart.backoff, 0);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
}

/* `tanuki-svc env` names: a safe form for any service name, and two
   services that would share variables are an error where the second is. */
static void env_names(void **st) {
  (void)st;
  const struct {
    const char *name, *want;
  } forms[] = {{"9lives", "_9LIVES"}, {"a.b", "A_B"},     {"a-b", "A_B"},
               {"Redis", "REDIS"},    {"api_v2", "API_V2"}, {"x", "X"}};
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    char buf[80];
    assert_string_equal(tsvc_env_prefix(forms[i].name, buf, sizeof buf), forms[i].want);
  }
  char tiny[4];
  assert_string_equal(tsvc_env_prefix("9lives", tiny, sizeof tiny), "_9L");

  load_bad("services:\n  a.b:\n    image: x\n  a_b:\n    image: x\n  a-b:\n    image: x\n",
           F ":4:3: error: services.a_b: `tanuki-svc env` would name its variables A_B_HOST, "
             "A_B_PORT, ... as those of service \"a.b\" (line 2); rename one");
  assert_int_equal(
      load_bad("services:\n  a.b:\n    image: x\n  a_b:\n    image: x\n  a-b:\n    image: x\n",
               F ":6:3: error: services.a-b: `tanuki-svc env` would name its variables A_B_HOST, "
                 "A_B_PORT, ... as those of service \"a.b\" (line 2); rename one"),
      2);
  load_bad("services:\n  redis:\n    image: redis:7\n    port: 6379\n"
           "  Redis:\n    image: redis:7\n    port: 6380\n",
           F ":5:3: error: services.Redis: `tanuki-svc env` would name its variables REDIS_HOST, "
             "REDIS_PORT, ... as those of service \"redis\" (line 2) (\"redis\" is the first "
             "redis service with a port); rename one");
  /* The first postgres by image takes POSTGRES_*; a service named
     postgres after it would print the same variables. */
  load_bad("services:\n  db:\n    image: postgres:15\n    port: 5432\n"
           "  postgres:\n    external: true\n    port: 5433\n",
           F ":5:3: error: services.postgres: `tanuki-svc env` would name its variables "
             "POSTGRES_HOST, POSTGRES_PORT, ... as those of service \"db\" (line 2) (\"db\" is "
             "the first postgres service with a port); rename one");
  /* Fine: different names, a second redis by image under its own name,
     and a service named like a kind without being one. */
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok("services:\n  9lives:\n    image: x\n    port: 1\n"
                               "  redis:\n    image: redis:7\n    port: 6379\n"
                               "  cache:\n    image: redis:7\n    port: 6380\n"
                               "  a.b:\n    image: x\n  ab:\n    image: x\n",
                               &d);
  char **pre = tsvc_env_prefixes(cfg);
  assert_non_null(pre);
  const char *want[] = {"_9LIVES", "REDIS", "CACHE", "A_B", "AB"};
  for (size_t i = 0; i < cfg->nservices; i++) assert_string_equal(pre[i], want[i]);
  tsvc_env_prefixes_free(pre, cfg->nservices);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
}

static void warnings(void **st) {
  (void)st;
  load_warn("services:\n  a:\n    image: x\n    healthcheck:\n      interval: 5s\n"
            "      timeout: 5s\n",
            F ":6:16: warning: services.a.healthcheck: timeout (5s) is not below interval (5s); "
              "a slow check runs into the next");
  /* The default timeout (5s) against a short interval: at the interval. */
  load_warn("services:\n  a:\n    image: x\n    healthcheck: {interval: 2s}\n",
            F ":4:29: warning: services.a.healthcheck: timeout (5s) is not below interval (2s); "
              "a slow check runs into the next");
  load_warn("services:\n  a:\n    image: x\n    restart:\n      backoff: 10m\n",
            F ":5:16: warning: services.a.restart: backoff (10m) is greater than max_backoff "
              "(5m); max_backoff is used");
  load_warn("servics:\n  a: {image: x}\n",
            F ":1:1: warning: top-level key \"servics\" is not a tanuki-svc section and is passed "
              "over; did you mean \"services\"?");
}

static void duplicates(void **st) {
  (void)st;
  load_bad("services:\n  postgres:\n    image: a\n  redis:\n    image: b\n  postgres:\n"
           "    image: c\n",
           F ":6:3: error: duplicate service \"postgres\" (first defined at line 2)");
  load_bad("services:\n  a:\n    image: x\n    port: 1\n    image: y\n",
           F ":5:5: error: duplicate key \"image\" in services.a (first at line 3)");
  load_bad("services:\n  a:\n    healthcheck:\n      retries: 1\n      retries: 2\n",
           F ":5:7: error: duplicate key \"retries\" in services.a.healthcheck (first at line 4)");
  load_bad("services: {}\nruntime: docker\nservices: {}\n",
           F ":3:1: error: duplicate key \"services\" in the top level (first at line 1)");
}

static void enums(void **st) {
  (void)st;
  load_bad("services:\n  a:\n    healthcheck: {probe: postgress}\n",
           F ":3:26: error: services.a.healthcheck.probe: unknown probe \"postgress\"; did you "
             "mean \"postgres\"? (valid: auto, postgres, redis, tcp, http, exec, running)");
  load_bad("services:\n  a:\n    healthcheck: {probe: grpc}\n",
           F ":3:26: error: services.a.healthcheck.probe: unknown probe \"grpc\" (valid: auto, "
             "postgres, redis, tcp, http, exec, running)");
  load_bad("runtime: podman\n",
           F ":1:10: error: runtime: unknown runtime \"podman\" (valid: auto, docker, process)");
  load_bad("services:\n  a:\n    restart: {policy: always}\n",
           F ":3:23: error: services.a.restart.policy: unknown restart policy \"always\" (valid: "
             "on-unhealthy, never)");
  load_bad("monitor: {log_format: jsno}\n",
           F ":1:23: error: monitor.log_format: unknown log_format \"jsno\"; did you mean "
             "\"json\"? (valid: text, json)");
  load_bad("monitor: {timer_grid: 2s}\n",
           F ":1:23: error: monitor.timer_grid: must be at most 1s (it is how late a check may "
             "start)");
}

static void depends_on(void **st) {
  (void)st;
  load_bad("services:\n  db: {image: x}\n  app:\n    image: y\n    depends_on: [dv]\n",
           F ":5:18: error: services.app.depends_on: no service named \"dv\"; did you mean "
             "\"db\"?");
  load_bad("services:\n  app:\n    image: y\n    depends_on: [nothing-like-it]\n",
           F ":4:18: error: services.app.depends_on: no service named \"nothing-like-it\"");
  load_bad("services:\n"
           "  a:\n    image: x\n    depends_on: [b]\n"
           "  b:\n    image: x\n    depends_on: [a]\n",
           F ":4:18: error: services.a.depends_on: dependency cycle: a -> b -> a");
  load_bad("services:\n"
           "  a: {image: x, depends_on: [b]}\n"
           "  b: {image: x, depends_on: [c]}\n"
           "  c: {image: x, depends_on: [a]}\n"
           "  d: {image: x, depends_on: [a]}\n",
           F ":2:30: error: services.a.depends_on: dependency cycle: a -> b -> c -> a");
  load_bad("services:\n  a: {image: x, depends_on: [a]}\n",
           F ":2:30: error: services.a.depends_on: dependency cycle: a -> a");
  /* A diamond is not a cycle. */
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok("services:\n"
                               "  a: {image: x, depends_on: [b, c]}\n"
                               "  b: {image: x, depends_on: [d]}\n"
                               "  c: {image: x, depends_on: [d]}\n"
                               "  d: {image: x}\n",
                               &d);
  assert_int_equal(d.n, 0);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
}

/* compose's long form: {name: {condition, restart}}; the list form means
 * service_started for each. */
static const char depends_file[] =
    "services:\n"
    "  db: {image: x}\n"
    "  cache: {image: y}\n"
    "  queue: {image: z}\n"
    "  app:\n"
    "    image: w\n"
    "    depends_on:\n"
    "      db: {condition: service_healthy, restart: true}\n"
    "      cache:\n"
    "        condition: service_started\n"
    "      queue:\n"
    "  worker: {image: v, depends_on: [db, queue]}\n";

/* depends_timeout and hooks: defaults, values, errors at their place. */
static void hooks_and_depends_timeout(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok("services:\n  a:\n    image: x\n", &d);
  const tsvc_service_conf_t *a = tsvc_config_service(cfg, "a");
  assert_int_equal(a->depends_timeout, 120000);
  assert_int_equal(a->hooks.on_change.n, 0);
  assert_int_equal(a->hooks.timeout, 10000);
  assert_int_equal(cfg->hooks.on_change.n, 0);
  assert_int_equal(cfg->hooks.timeout, 10000);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  cfg = load_ok("hooks: {on_change: \"notify $TSVC_SERVICE\", timeout: 30s}\n"
                "services:\n  a:\n    image: x\n    depends_timeout: 45s\n"
                "    hooks:\n      on_change: [/usr/local/bin/page, --urgent]\n",
                &d);
  a = tsvc_config_service(cfg, "a");
  assert_int_equal(a->depends_timeout, 45000);
  assert_int_equal(a->hooks.on_change.n, 2);
  assert_string_equal(a->hooks.on_change.v[0], "/usr/local/bin/page");
  assert_string_equal(a->hooks.on_change.v[1], "--urgent");
  assert_int_equal(a->hooks.timeout, 10000);
  /* A string is run by the shell. */
  assert_int_equal(cfg->hooks.on_change.n, 3);
  assert_string_equal(cfg->hooks.on_change.v[0], "/bin/sh");
  assert_string_equal(cfg->hooks.on_change.v[1], "-c");
  assert_string_equal(cfg->hooks.on_change.v[2], "notify $TSVC_SERVICE");
  assert_int_equal(cfg->hooks.timeout, 30000);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  load_bad("hooks: {on_chnage: x}\n",
           F ":1:9: error: unknown key \"on_chnage\" in hooks; did you mean \"on_change\"?");
  load_bad("services:\n  a:\n    hooks: {timeout: 0s}\n",
           F ":3:22: error: services.a.hooks.timeout: must be greater than 0");
  load_bad("services:\n  a:\n    depends_timeout: 0s\n",
           F ":3:22: error: services.a.depends_timeout: must be greater than 0");
  load_bad("services:\n  a:\n    hooks: [x]\n",
           F ":3:12: error: services.a.hooks: expected a mapping, got a list");
}

/* hooks.webhook: an http(s) URL, anything else at its place (a password in
   it masked in the message); webhook_timeout 5s by default. */
static void hooks_webhook(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok("hooks: {webhook: \"https://hooks.example/tanuki?x=1\"}\n"
                               "services:\n  a:\n    image: redis:7\n"
                               "    hooks: {webhook: \"HTTP://u:pw@10.0.0.5:8080\", "
                               "webhook_timeout: 750ms}\n  b:\n    image: redis:7\n",
                               &d);
  assert_int_equal(d.n, 0);
  assert_string_equal(cfg->hooks.webhook, "https://hooks.example/tanuki?x=1");
  assert_int_equal(cfg->hooks.webhook_timeout, 5000);
  const tsvc_service_conf_t *a = tsvc_config_service(cfg, "a");
  assert_string_equal(a->hooks.webhook, "HTTP://u:pw@10.0.0.5:8080");
  assert_int_equal(a->hooks.webhook_timeout, 750);
  const tsvc_service_conf_t *b = tsvc_config_service(cfg, "b");
  assert_null(b->hooks.webhook);
  assert_int_equal(b->hooks.webhook_timeout, 5000);
  /* The dump shows both, the password masked. */
  char *out = dump_to_string(cfg);
  assert_non_null(strstr(out, "  webhook: \"https://hooks.example/tanuki?x=1\"\n"
                              "  webhook_timeout: 5s\n"));
  assert_non_null(strstr(out, "      webhook_timeout: 750ms\n"));
  assert_null(strstr(out, ":pw@"));
  free(out);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  load_bad("hooks: {webhook: \"ftp://hooks.example/x\"}\n",
           F ":1:18: error: hooks.webhook: expected an http:// or https:// URL with a host "
             "(https://hooks.example/tanuki), got \"ftp://hooks.example/x\"");
  load_bad("services:\n  a:\n    hooks:\n      webhook: hooks.example/x\n",
           F ":4:16: error: services.a.hooks.webhook: expected an http:// or https:// URL with "
             "a host (https://hooks.example/tanuki), got \"hooks.example/x\"");
  load_bad("hooks: {webhook: \"http://u:hunter22@/x\"}\n",
           F ":1:18: error: hooks.webhook: expected an http:// or https:// URL with a host "
             "(https://hooks.example/tanuki), got \"http://u:********@/x\"");
  load_bad("hooks: {webhook: \"http://a b/\"}\n",
           F ":1:18: error: hooks.webhook: expected an http:// or https:// URL with a host "
             "(https://hooks.example/tanuki), got \"http://a b/\"");
  load_bad("hooks: {webhook_timeout: 0s}\n",
           F ":1:26: error: hooks.webhook_timeout: must be greater than 0");
}

static void depends_on_long_form(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok(depends_file, &d);
  assert_int_equal(d.n, 0);
  const tsvc_service_conf_t *app = tsvc_config_service(cfg, "app");
  assert_int_equal(app->depends_on.n, 3);
  assert_non_null(app->depends);
  assert_string_equal(app->depends_on.v[0], "db");
  assert_null(app->depends_on.v[3]); /* still an argv-style list */
  assert_int_equal(app->depends[0].condition, TSVC_DEP_HEALTHY);
  assert_true(app->depends[0].restart);
  assert_int_equal(app->depends[0].line, 8);
  assert_int_equal(app->depends[0].column, 7);
  assert_string_equal(app->depends_on.v[1], "cache");
  assert_int_equal(app->depends[1].condition, TSVC_DEP_STARTED);
  assert_false(app->depends[1].restart);
  assert_string_equal(app->depends_on.v[2], "queue"); /* null: started */
  assert_int_equal(app->depends[2].condition, TSVC_DEP_STARTED);
  const tsvc_service_conf_t *w = tsvc_config_service(cfg, "worker");
  assert_int_equal(w->depends_on.n, 2);
  assert_int_equal(w->depends[1].condition, TSVC_DEP_STARTED);
  assert_false(w->depends[1].restart);
  assert_int_equal(w->depends[1].line, 12);
  assert_int_equal(w->depends[1].column, 39);
  assert_null(tsvc_config_service(cfg, "db")->depends);
  /* config show writes every condition out. */
  char *out = dump_to_string(cfg);
  const char *want[] = {
      ("    depends_on:\n      db: {condition: service_healthy, restart: true}\n"
       "      cache: {condition: service_started, restart: false}\n"
       "      queue: {condition: service_started, restart: false}\n"),
      ("    depends_on:\n      db: {condition: service_started, restart: false}\n"
       "      queue: {condition: service_started, restart: false}\n"),
      "    depends_on: {}\n"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!strstr(out, want[i])) fail_msg("dump lacks: %s\n--- dump:\n%s", want[i], out);
  free(out);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  assert_string_equal(tsvc_dep_condition_name(TSVC_DEP_HEALTHY), "service_healthy");
  assert_string_equal(tsvc_dep_condition_name((tsvc_dep_condition_t)7), "invalid");

  /* Errors at file:line:col, naming the key. */
  load_bad("services:\n  db: {image: x}\n  app:\n    image: y\n"
           "    depends_on: {db: {condition: service_healty}}\n",
           F ":5:34: error: services.app.depends_on.db.condition: unknown condition "
             "\"service_healty\"; did you mean \"service_healthy\"? (valid: service_started, "
             "service_healthy)");
  load_bad("services:\n  db: {image: x}\n  app:\n    image: y\n"
           "    depends_on: {db: {condition: service_completed_successfully}}\n",
           F ":5:34: error: services.app.depends_on.db.condition: unknown condition "
             "\"service_completed_successfully\" (valid: service_started, service_healthy)");
  load_bad("services:\n  db: {image: x}\n  app:\n    image: y\n"
           "    depends_on: {db: {restrat: true}}\n",
           F ":5:23: error: unknown key \"restrat\" in services.app.depends_on.db; did you mean "
             "\"restart\"?");
  load_bad("services:\n  db: {image: x}\n  app:\n    image: y\n"
           "    depends_on: {db: {restart: sometimes}}\n",
           F ":5:32: error: services.app.depends_on.db.restart: expected a boolean (true or "
             "false), got \"sometimes\"");
  load_bad("services:\n  db: {image: x}\n  app:\n    image: y\n"
           "    depends_on: {db: service_healthy}\n",
           F ":5:22: error: services.app.depends_on.db: expected a mapping (condition: "
             "service_started or service_healthy, restart: true or false), got "
             "\"service_healthy\"");
  load_bad("services:\n  db: {image: x}\n  app:\n    image: y\n    depends_on: db\n",
           F ":5:17: error: services.app.depends_on: expected a list of services, or a mapping "
             "of services to {condition: ...}, got \"db\"");
  load_bad("services:\n  db: {image: x}\n  app:\n    image: y\n"
           "    depends_on: {db: {}, db: {restart: true}}\n",
           F ":5:26: error: duplicate key \"db\" in services.app.depends_on (first at line 5)");
  load_bad("services:\n  db: {image: x}\n  app:\n    image: y\n"
           "    depends_on:\n      dv: {condition: service_healthy}\n",
           F ":6:7: error: services.app.depends_on: no service named \"dv\"; did you mean "
             "\"db\"?");
  load_bad("services:\n"
           "  a: {image: x, depends_on: {b: {condition: service_healthy}}}\n"
           "  b: {image: x, depends_on: {a: {restart: true}}}\n",
           F ":2:30: error: services.a.depends_on: dependency cycle: a -> b -> a");
}

static void malformed_yaml(void **st) {
  (void)st;
  load_bad("services:\n  a: [1, 2\n",
           F ":3:1: error: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
             "sequence at line 2, column 6)");
  load_bad("services:\n  a:\n    image: x\n   port: 1\n",
           F ":4:4: error: invalid YAML: did not find expected key (while parsing a block "
             "mapping at line 2, column 3)");
  load_bad("services:\n\tapp: {}\n",
           F ":2:1: error: invalid YAML: found character that cannot start any token (while "
             "scanning for the next token at line 2, column 1)");
  load_bad("services: {a: {image: \"unterminated}\n", NULL);
  load_bad("a: b: c\n", F ":1:5: error: invalid YAML: mapping values are not allowed in this "
                        "context");
  /* Invalid UTF-8 on line 2. */
  load_bad("services:\n  a: {image: \"x\xff\"}\n",
           F ":2:16: error: invalid YAML: invalid leading UTF-8 octet");
  load_bad("services: {}\n---\nservices: {}\n",
           F ":2:1: error: only one YAML document is allowed in a config file");
  /* Garbage never crashes. */
  const char *garbage[] = {"[", "{", "]", ":", "- - - [", "&a [*a]", "? ? ?", "!!binary x: y",
                           "\"\\", "%YAML 9.9\n---\n", "'", "*", "&", "{a: *b}", "\x01\x02"};
  for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
    tsvc_config_t *cfg = NULL;
    tsvc_diag_t d = {0};
    int rc = tsvc_config_load_string(F, garbage[i], strlen(garbage[i]), &cfg, &d);
    if (rc == 0) tsvc_config_free(cfg);
    else
      assert_true(d.n >= 1 && strncmp(d.lines[0], F ":", strlen(F ":")) == 0);
    tsvc_diag_free(&d);
  }
}

static void deep_nesting(void **st) {
  (void)st;
  size_t n = 100000;
  char *s = malloc(2 * n + 1);
  assert_non_null(s);
  memset(s, '[', n);
  memset(s + n, ']', n);
  s[2 * n] = '\0';
  tsvc_config_t *cfg = NULL;
  tsvc_diag_t d = {0};
  assert_int_equal(tsvc_config_load_string(F, s, 2 * n, &cfg, &d), TSVC_ECONFIG);
  expect_line(&d, F ":1:129: error: YAML nesting is deeper than 128 levels");
  tsvc_diag_free(&d);
  free(s);
}

static void several_errors(void **st) {
  (void)st;
  const char *text = "runtime: dokcer\n"
                     "services:\n"
                     "  postgres:\n"
                     "    image: postgres:16\n"
                     "    port: 99999\n"
                     "    healthcheck:\n"
                     "      intervall: 5s\n"
                     "      retries: 0\n"
                     "      timeout: 5\n"
                     "  redis:\n"
                     "    image: redis:7\n"
                     "    depends_on: [postgre]\n"
                     "    restart: {policy: sometimes}\n";
  tsvc_config_t *cfg = NULL;
  tsvc_diag_t d = {0};
  assert_int_equal(tsvc_config_load_string(F, text, strlen(text), &cfg, &d), TSVC_ECONFIG);
  assert_null(cfg);
  expect_line(&d, F ":1:10: error: runtime: unknown runtime \"dokcer\"; did you mean \"docker\"? "
                    "(valid: auto, docker, process)");
  expect_line(&d, F ":5:11: error: services.postgres.port: 99999 is too large (at most "
                    "65535)");
  expect_line(&d, F ":7:7: error: unknown key \"intervall\" in services.postgres.healthcheck; "
                    "did you mean \"interval\"?");
  expect_line(&d, F ":8:16: error: services.postgres.healthcheck.retries: 0 is too small "
                    "(at least 1)");
  expect_line(&d, F ":9:16: error: services.postgres.healthcheck.timeout: missing unit in "
                    "duration \"5\"; did you mean \"5s\"?");
  expect_line(&d, F ":12:18: error: services.redis.depends_on: no service named \"postgre\"; "
                    "did you mean \"postgres\"?");
  expect_line(&d, F ":13:23: error: services.redis.restart.policy: unknown restart policy "
                    "\"sometimes\" (valid: on-unhealthy, never)");
  assert_int_equal(d.nerrors, 7);
  assert_int_equal(d.n, 7);
  /* Diagnostics of each key come in file order; those across services
   * (depends_on) after them. */
  assert_non_null(strstr(d.lines[0], ":1:10:"));
  assert_non_null(strstr(d.lines[6], ":12:18:"));
  tsvc_diag_free(&d);
}

static void empty_and_top_level(void **st) {
  (void)st;
  const char *empty[] = {"", "# only a comment\n", "---\n", "services:\n", "services: {}\n"};
  for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
    tsvc_diag_t d;
    tsvc_config_t *cfg = load_ok(empty[i], &d);
    assert_int_equal(cfg->nservices, 0);
    assert_int_equal(d.n, 0);
    assert_string_equal(cfg->docker.network, "tanuki-net");
    tsvc_config_free(cfg);
    tsvc_diag_free(&d);
  }
  load_bad("- a\n- b\n",
           F ":1:1: error: the top level must be a mapping of sections (services, runtime, "
             "docker, monitor), got a list");
  load_bad("hello\n",
           F ":1:1: error: the top level must be a mapping of sections (services, runtime, "
             "docker, monitor), got a scalar");
  load_bad("services:\n  \"my svc\": {image: x}\n",
           F ":2:3: error: invalid service name \"my svc\" (1 to 64 letters, digits, '_', '.', "
             "'-'; a letter or digit first)");
}

static void anchors_and_aliases(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok("x-check: &check\n"
                               "  interval: 5s\n"
                               "  timeout: 2s\n"
                               "x-env: &env {A: '1'}\n"
                               "services:\n"
                               "  a:\n"
                               "    image: &img postgres:16\n"
                               "    healthcheck: *check\n"
                               "    environment: *env\n"
                               "  b:\n"
                               "    image: *img\n"
                               "    healthcheck:\n"
                               "      <<: *check\n"
                               "      timeout: 1s\n",
                               &d);
  assert_int_equal(d.n, 0);
  const tsvc_service_conf_t *a = tsvc_config_service(cfg, "a");
  const tsvc_service_conf_t *b = tsvc_config_service(cfg, "b");
  assert_int_equal(a->healthcheck.interval, 5000);
  assert_int_equal(a->healthcheck.timeout, 2000);
  assert_string_equal(a->env[0].value, "1");
  assert_string_equal(b->image, "postgres:16");
  assert_int_equal(b->healthcheck.interval, 5000);
  assert_int_equal(b->healthcheck.timeout, 1000); /* own keys win over the merge */
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);

  load_bad("services:\n  a:\n    image: *nowhere\n",
           F ":3:12: error: alias \"*nowhere\" names no anchor defined (and complete) before it");
  /* A structure that contains itself is refused, not followed forever. */
  load_bad("services: &s\n  a: *s\n",
           F ":2:6: error: alias \"*s\" names no anchor defined (and complete) before it");
  /* Errors inside an aliased node point at the anchored text. */
  load_bad("x: &hc {intervall: 5s}\nservices:\n  a: {image: x, healthcheck: *hc}\n",
           F ":1:9: error: unknown key \"intervall\" in services.a.healthcheck; did you mean "
             "\"interval\"?");
  load_bad("services:\n  a:\n    healthcheck: {<<: [1]}\n",
           F ":3:24: error: services.a.healthcheck: a merge (\"<<\") takes a mapping or a list "
             "of mappings, got a scalar");
  /* A billion laughs costs nothing in sections we pass over, and is bounded
   * in ours. */
  const char *laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                       "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                       "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n"
                       "services: {}\n";
  cfg = load_ok(laughs, &d);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  char merges[4096];
  size_t n = (size_t)snprintf(merges, sizeof merges, "m0: &m0 {retries: 1}\n");
  for (int i = 1; i < 30; i++)
    n += (size_t)snprintf(merges + n, sizeof merges - n, "m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i,
                          i - 1, i - 1);
  snprintf(merges + n, sizeof merges - n, "services:\n  a:\n    healthcheck: *m29\n");
  load_bad(merges, F ":1:5: error: services.a.healthcheck: too many merges (\"<<\") in this "
                   "file");
}

static const char tanuki_file[] =
    "# A Tanuki project's whole config.\n"
    "version: 1\n"
    "image: ghcr.io/example/tanuki-agent:latest\n"
    "project:\n"
    "  name: acme\n"
    "worktrees:\n"
    "  base: .tanuki/worktrees\n"
    "  max: 8\n"
    "  cleanup: {after: 24h, keep_dirty: true}\n"
    "defaults:\n"
    "  agent: claude\n"
    "  timeout: 30\n"
    "  env:\n"
    "    - LOG_LEVEL=debug\n"
    "  nested: {deep: [1, {x: y}, [z]]}\n"
    "network:\n"
    "  name: acme-net\n"
    "  driver: bridge\n"
    "tasks: [a, b]\n"
    "services:\n"
    "  postgres:\n"
    "    enabled: true\n"
    "    image: postgres:16\n"
    "    port: 5432\n"
    "    environment:\n"
    "      POSTGRES_USER: tanuki\n"
    "      POSTGRES_PASSWORD: tanuki\n"
    "      POSTGRES_DB: tanuki_dev\n"
    "    volumes:\n"
    "      - tanuki-postgres:/var/lib/postgresql/data\n"
    "    healthcheck:\n"
    "      command: [\"pg_isready\", \"-U\", \"tanuki\"]\n"
    "      interval: 5s\n"
    "      timeout: 3s\n"
    "      retries: 5\n"
    "  redis:\n"
    "    enabled: false\n"
    "    image: redis:7\n"
    "    port: 6379\n"
    "    healthcheck:\n"
    "      command: [\"redis-cli\", \"ping\"]\n"
    "      interval: 5s\n"
    "      timeout: 3s\n"
    "      retries: 5\n"
    "  shared-db:\n"
    "    external: true\n"
    "    port: 5432\n"
    "    healthcheck: {address: db.example.com:5432, probe: postgres}\n";

static void whole_tanuki_file(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok(tanuki_file, &d);
  assert_int_equal(d.n, 0); /* Tanuki's sections pass silently */
  assert_string_equal(cfg->docker.network, "acme-net");
  assert_int_equal(cfg->nservices, 3);
  const tsvc_service_conf_t *pg = &cfg->services[0];
  assert_string_equal(pg->name, "postgres");
  assert_int_equal(pg->line, 21);
  assert_int_equal(pg->column, 3);
  assert_string_equal(pg->image, "postgres:16");
  assert_int_equal(pg->env_len, 3);
  assert_string_equal(pg->env[2].key, "POSTGRES_DB");
  assert_string_equal(pg->env[2].value, "tanuki_dev");
  assert_int_equal(pg->healthcheck.command.n, 3);
  assert_int_equal(pg->healthcheck.interval, 5000);
  assert_int_equal(pg->healthcheck.timeout, 3000);
  assert_int_equal(pg->healthcheck.retries, 5);
  assert_int_equal(pg->healthcheck.start_period, 60000); /* ours, defaulted */
  const tsvc_service_conf_t *redis = &cfg->services[1];
  assert_string_equal(redis->name, "redis");
  assert_false(redis->enabled);
  const tsvc_service_conf_t *ext = &cfg->services[2];
  assert_true(ext->external);
  assert_null(ext->image);
  assert_string_equal(ext->healthcheck.address, "db.example.com:5432");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);

  /* An explicit docker.network wins over network.name, wherever it is. */
  char text[4096];
  snprintf(text, sizeof text, "docker: {network: mine}\n%s", tanuki_file);
  cfg = load_ok(text, &d);
  assert_string_equal(cfg->docker.network, "mine");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  /* A network section that is not a mapping is Tanuki's business. */
  cfg = load_ok("network: bridge\nservices: {}\n", &d);
  assert_string_equal(cfg->docker.network, "tanuki-net");
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  /* But an unknown key inside our sections is still an error there. */
  snprintf(text, sizeof text, "%s    healthchek: {}\n", tanuki_file);
  load_bad(text, F ":49:5: error: unknown key \"healthchek\" in services.shared-db; did you "
                 "mean \"healthcheck\"?");
}

static void startable(void **st) {
  (void)st;
  load_bad("runtime: docker\nservices:\n  a: {port: 1}\n",
           F ":3:3: error: services.a: no image (runtime: docker needs one, unless external: "
             "true)");
  load_bad("runtime: process\nservices:\n  app: {image: nginx}\n",
           F ":3:3: error: services.app: no process.command and no built-in recipe (postgres, "
             "redis) for runtime: process");
  load_bad("services:\n  app: {port: 80}\n",
           F ":2:3: error: services.app: no image and no process.command; set one, or "
             "external: true");
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok("runtime: process\nservices:\n"
                               "  postgres: {port: 5432}\n"
                               "  cache: {image: \"docker.io/library/redis:7\"}\n"
                               "  app: {process: {command: [./app]}}\n"
                               "  ext: {external: true}\n"
                               "  off: {enabled: false}\n"
                               "  redis:\n",
                               &d);
  assert_int_equal(cfg->nservices, 6);
  assert_false(tsvc_config_service(cfg, "off")->enabled);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
}

/* ---- secrets and dump ---- */

static void secret_keys(void **st) {
  (void)st;
  const char *yes[] = {"POSTGRES_PASSWORD", "password", "REDIS_PASS", "MYSQL_ROOT_PASSWD",
                       "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "API_KEY", "apikey",
                       "GOOGLE_CREDENTIALS", "AUTH", "AUTH_TOKEN", "Authorization",
                       "client-secret", "PASSPHRASE", "MASTERAUTH", "DB_PWD",
                       "MYSQL_PWD", "smtp_pw", "app.pwd"};
  const char *no[] = {"POSTGRES_USER", "POSTGRES_DB", "PORT", "KEYBOARD", "PATH",
                      "HOME", "LOG_LEVEL", "", "LANG", "AUTHOR_EMAIL", "TZ",
                      "PWD", "OLDPWD", "PW_RESET_URL"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
    if (!tsvc_is_secret_key(yes[i])) fail_msg("%s should be secret", yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    if (tsvc_is_secret_key(no[i])) fail_msg("%s should not be secret", no[i]);
  assert_false(tsvc_is_secret_key(NULL));
}

static const char secret_file[] =
    "services:\n"
    "  postgres:\n"
    "    image: postgres:16\n"
    "    environment:\n"
    "      POSTGRES_USER: tanuki\n"
    "      POSTGRES_PASSWORD: hunter2\n"
    "      DATABASE_URL: postgres://tanuki:s3cr3t@db:5432/app\n"
    "      NOTE: \"a: b # c\"\n"
    "      DSN: \"host=db user=app password=dsnpw dbname=x\"\n"
    "      MYSQL_PWD: pwdpw\n"
    "      PWD: /srv/tanuki\n"
    "      DATA: /var/lib/hunter2/data\n"
    "      \"odd name\": \"line1\\nline2\"\n"
    "  redis:\n"
    "    image: redis:7\n"
    "    command: redis-server --requirepass r3dpw --port 6379\n"
    "    healthcheck:\n"
    "      command: [\"redis-cli\", \"-a\", \"clipw\", \"ping\"]\n"
    "  api:\n"
    "    image: api:1\n"
    "    healthcheck:\n"
    "      command: [curl, -fsS, -u, \"admin:curlpw\", http://localhost/health]\n"
    "  worker:\n"
    "    image: worker:1\n"
    "    healthcheck:\n"
    "      command: \"curl -fsS --user admin:curlpw2 http://x/ && "
    "psql 'host=db password=libpqpw' -c 'select 1'\"\n"
    "  cache:\n"
    "    image: redis:7\n"
    "    healthcheck:\n"
    "      command: \"redis-cli --pass 'sh pw' ping\"\n"
    "    process:\n"
    "      command: [redis-server, --requirepass=procpw]\n"
    "      env: {REDIS_PASSWORD: envpw, HOME: /root}\n"
    "  web:\n"
    "    image: \"null\"\n"
    "    command: [CMD, app, --token-url, \"https://u:urlpw@auth.example/x\"]\n"
    "    healthcheck:\n"
    "      command: [CMD, CMD-SHELL, \"PGPASSWORD=pgpw psql -c 'select 1'\"]\n";

static void dump_masks_secrets(void **st) {
  (void)st;
  tsvc_diag_t d;
  tsvc_config_t *cfg = load_ok(secret_file, &d);
  char *out = dump_to_string(cfg);
  const char *secrets[] = {"s3cr3t", "r3dpw", "clipw", "sh pw",  "procpw", "envpw",
                           "urlpw",  "pgpw",  "dsnpw", "pwdpw", "curlpw", "libpqpw"};
  for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
    if (strstr(out, secrets[i])) fail_msg("secret \"%s\" in the dump:\n%s", secrets[i], out);
  const char *want[] = {
      "      POSTGRES_USER: tanuki\n",
      "      POSTGRES_PASSWORD: \"********\"\n",
      "      DSN: \"host=db user=app password=******** dbname=x\"\n",
      "      MYSQL_PWD: \"********\"\n",
      /* Paths stay paths, whatever secret a word of them looks like. */
      "      PWD: /srv/tanuki\n",
      "      DATA: /var/lib/hunter2/data\n",
      "      command: [curl, \"-fsS\", \"-u\", \"admin:********\", http://localhost/health]\n",
      ("      command: [CMD-SHELL, \"curl -fsS --user admin:******** http://x/ && psql 'host=db "
       "password=********' -c 'select 1'\"]\n"),
      "      DATABASE_URL: \"postgres://tanuki:********@db:5432/app\"\n",
      "      NOTE: \"a: b # c\"\n",
      "      \"odd name\": \"line1\\nline2\"\n",
      "    command: [/bin/sh, \"-c\", \"redis-server --requirepass ******** --port 6379\"]\n",
      "      command: [redis-cli, \"-a\", \"********\", ping]\n",
      "      command: [CMD-SHELL, \"redis-cli --pass '********' ping\"]\n",
      "      command: [redis-server, \"--requirepass=********\"]\n",
      "        REDIS_PASSWORD: \"********\"\n",
      "        HOME: /root\n",
      "    image: \"null\"\n",
      "    command: [app, \"--token-url\", \"https://u:********@auth.example/x\"]\n",
      "      command: [CMD, CMD-SHELL, \"PGPASSWORD=******** psql -c 'select 1'\"]\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!strstr(out, want[i])) fail_msg("dump lacks: %s\n--- dump:\n%s", want[i], out);
  free(out);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
}

/* Dumping, loading the dump and dumping again gives the same text, and
 * the reloaded config equals the first one wherever nothing was masked. */
static void dump_round_trip(void **st) {
  (void)st;
  const char *texts[] = {every_key,        tanuki_file, secret_file, depends_file,
                         "services: {}\n", ""};
  for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
    tsvc_diag_t d1, d2, d3;
    tsvc_config_t *c1 = load_ok(texts[t], &d1);
    char *out1 = dump_to_string(c1);
    tsvc_config_t *c2 = load_ok(out1, &d2);
    char *out2 = dump_to_string(c2);
    /* The first line names the file loaded. */
    assert_string_equal(strchr(out1, '\n'), strchr(out2, '\n'));
    tsvc_config_t *c3 = load_ok(out2, &d3);
    assert_int_equal(c1->runtime, c2->runtime);
    assert_string_equal(c1->docker.host, c2->docker.host);
    assert_string_equal(c1->docker.network, c2->docker.network);
    assert_string_equal(c1->docker.container_prefix, c2->docker.container_prefix);
    assert_int_equal(c1->docker.probe_via, c2->docker.probe_via);
    assert_string_equal(c1->docker.publish_address, c2->docker.publish_address);
    assert_int_equal(c1->docker.tls.enabled, c2->docker.tls.enabled);
    assert_int_equal(c1->docker.tls.verify, c2->docker.tls.verify);
    if (c1->docker.tls.key) assert_string_equal(c1->docker.tls.key, c2->docker.tls.key);
    assert_string_equal(c1->monitor.socket, c2->monitor.socket);
    if (c1->monitor.listen) assert_string_equal(c1->monitor.listen, c2->monitor.listen);
    else assert_null(c2->monitor.listen);
    assert_int_equal(c1->monitor.log_format, c2->monitor.log_format);
    assert_int_equal(c1->nservices, c2->nservices);
    for (size_t i = 0; i < c1->nservices; i++) {
      const tsvc_service_conf_t *a = &c1->services[i], *b = &c2->services[i];
      assert_string_equal(a->name, b->name);
      assert_int_equal(a->enabled, b->enabled);
      assert_int_equal(a->external, b->external);
      if (a->image) assert_string_equal(a->image, b->image);
      else assert_null(b->image);
      assert_int_equal(a->port, b->port);
      assert_int_equal(a->host_port, b->host_port);
      assert_int_equal(a->pull_policy, b->pull_policy);
      assert_int_equal(a->env_len, b->env_len);
      for (size_t j = 0; j < a->env_len; j++) {
        assert_string_equal(a->env[j].key, b->env[j].key);
        /* Values masking leaves alone come back as they were. */
        char masked[1024];
        assert_int_equal(tsvc_mask_text(masked, sizeof masked, a->env[j].value, NULL, 0), 0);
        if (!tsvc_is_secret_key(a->env[j].key) && strcmp(masked, a->env[j].value) == 0)
          assert_string_equal(a->env[j].value, b->env[j].value);
      }
      assert_int_equal(a->volumes.n, b->volumes.n);
      for (size_t j = 0; j < a->volumes.n; j++)
        assert_string_equal(a->volumes.v[j], b->volumes.v[j]);
      assert_int_equal(a->depends_on.n, b->depends_on.n);
      for (size_t j = 0; j < a->depends_on.n; j++) {
        assert_string_equal(a->depends_on.v[j], b->depends_on.v[j]);
        assert_int_equal(a->depends[j].condition, b->depends[j].condition);
        assert_int_equal(a->depends[j].restart, b->depends[j].restart);
      }
      assert_int_equal(a->command.n, b->command.n);
      const tsvc_healthcheck_conf_t *x = &a->healthcheck, *y = &b->healthcheck;
      assert_int_equal(x->command.n, y->command.n);
      assert_int_equal(x->shell, y->shell);
      assert_int_equal(x->probe, y->probe);
      assert_int_equal(x->interval, y->interval);
      assert_int_equal(x->timeout, y->timeout);
      assert_int_equal(x->retries, y->retries);
      assert_int_equal(x->success_threshold, y->success_threshold);
      assert_int_equal(x->start_period, y->start_period);
      assert_int_equal(x->start_interval, y->start_interval);
      assert_int_equal(x->history, y->history);
      assert_string_equal(x->path, y->path);
      assert_int_equal(x->expect_status_min, y->expect_status_min);
      assert_int_equal(x->expect_status_max, y->expect_status_max);
      assert_memory_equal(&a->restart, &b->restart, sizeof a->restart);
      assert_int_equal(a->process.command.n, b->process.command.n);
      assert_int_equal(a->process.env_len, b->process.env_len);
    }
    assert_int_equal(c3->nservices, c1->nservices);
    free(out1);
    free(out2);
    tsvc_config_free(c1);
    tsvc_config_free(c2);
    tsvc_config_free(c3);
    tsvc_diag_free(&d1);
    tsvc_diag_free(&d2);
    tsvc_diag_free(&d3);
  }
}

/* Without masking, a dump loads back into the same config: dumping that
 * gives the same text, secrets included (fuzz/fuzz_config.c checks it on
 * any input). */
static void dump_unmasked_round_trip(void **st) {
  (void)st;
  tsvc_diag_t d1, d2;
  tsvc_config_t *c1 = load_ok(secret_file, &d1);
  char *out1 = NULL, *out2 = NULL;
  size_t len1 = 0, len2 = 0;
  FILE *f = open_memstream(&out1, &len1);
  assert_int_equal(tsvc_config_dump_unmasked(c1, f), 0);
  assert_int_equal(fclose(f), 0);
  const char *want[] = {
      "      POSTGRES_PASSWORD: hunter2\n",
      "      DATABASE_URL: postgres://tanuki:s3cr3t@db:5432/app\n",
      "    command: [/bin/sh, \"-c\", \"redis-server --requirepass r3dpw --port 6379\"]\n",
      "      command: [redis-cli, \"-a\", clipw, ping]\n",
      "      command: [CMD-SHELL, \"redis-cli --pass 'sh pw' ping\"]\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!strstr(out1, want[i])) fail_msg("dump lacks: %s\n--- dump:\n%s", want[i], out1);
  assert_null(strstr(out1, "********"));
  tsvc_config_t *c2 = load_ok(out1, &d2);
  f = open_memstream(&out2, &len2);
  assert_int_equal(tsvc_config_dump_unmasked(c2, f), 0);
  assert_int_equal(fclose(f), 0);
  assert_string_equal(out1, out2);
  /* And the masked dumps of both are the same. */
  char *m1 = dump_to_string(c1), *m2 = dump_to_string(c2);
  assert_string_equal(m1, m2);
  free(m1);
  free(m2);
  free(out1);
  free(out2);
  tsvc_config_free(c1);
  tsvc_config_free(c2);
  tsvc_diag_free(&d1);
  tsvc_diag_free(&d2);
}

static void load_from_file(void **st) {
  (void)st;
  char *dir = tu_mkdtemp("tsvc-config");
  assert_non_null(dir);
  char path[512];
  snprintf(path, sizeof path, "%s/tanuki.yaml", dir);
  assert_int_equal(tu_write_file(path, "services:\n  a:\n    image: x\n    port: 0\n"), 0);
  tsvc_config_t *cfg = NULL;
  tsvc_diag_t d = {0};
  assert_int_equal(tsvc_config_load(path, &cfg, &d), TSVC_ECONFIG);
  char want[600];
  snprintf(want, sizeof want, "%s:4:11: error: services.a.port: 0 is too small (at least 1)",
           path);
  expect_line(&d, want);
  tsvc_diag_free(&d);

  snprintf(path, sizeof path, "%s/missing.yaml", dir);
  assert_int_equal(tsvc_config_load(path, &cfg, &d), TSVC_EIO);
  assert_null(cfg);
  snprintf(want, sizeof want, "%s: error: cannot open: No such file or directory", path);
  expect_line(&d, want);
  tsvc_diag_free(&d);
  tu_rmtree(dir);
  free(dir);
}

/* ---- the CLI ---- */

typedef struct {
  int status;
  char *out;
  char *err;
} run_t;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  char *buf = calloc(1, 1 << 16);
  size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
  (void)n;
  fclose(f);
  return buf;
}

/* Runs `tanuki-svc ARGS` through the shell with env prefix envs. */
static run_t run_cli(const char *dir, const char *envs, const char *args) {
  const char *bin = getenv("TSVC_BINARY");
  if (!bin) fail_msg("TSVC_BINARY is not set");
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s' %s >'%s/out' 2>'%s/err'", dir, envs ? envs : "",
           bin, args, dir, dir);
  int rc = system(cmd);
  run_t r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  char p[600];
  snprintf(p, sizeof p, "%s/out", dir);
  r.out = slurp(p);
  snprintf(p, sizeof p, "%s/err", dir);
  r.err = slurp(p);
  assert_non_null(r.out);
  assert_non_null(r.err);
  return r;
}

static void run_free(run_t *r) {
  free(r->out);
  free(r->err);
}

static void cli_validate_example(void **st) {
  (void)st;
  const char *src = getenv("TSVC_SOURCE_DIR");
  assert_non_null(src);
  char *dir = tu_mkdtemp("tsvc-cli");
  char args[1024];
  snprintf(args, sizeof args, "config validate -c '%s/examples/tanuki.yaml'", src);
  run_t r = run_cli(dir, NULL, args);
  if (r.status != 0) fail_msg("exit %d, stderr: %s", r.status, r.err);
  char want[1024];
  snprintf(want, sizeof want, "%s/examples/tanuki.yaml: ok (2 services)\n", src);
  assert_string_equal(r.out, want);
  assert_string_equal(r.err, "");
  run_free(&r);

  /* show prints a dump that validates in turn. */
  snprintf(args, sizeof args, "config show --config '%s/examples/tanuki.yaml'", src);
  r = run_cli(dir, NULL, args);
  assert_int_equal(r.status, 0);
  assert_non_null(strstr(r.out, "POSTGRES_PASSWORD: \"********\""));
  assert_non_null(strstr(r.out, "      command: [pg_isready, \"-U\", tanuki]\n"));
  char path[600];
  snprintf(path, sizeof path, "%s/shown.yaml", dir);
  assert_int_equal(tu_write_file(path, r.out), 0);
  run_free(&r);
  r = run_cli(dir, NULL, "config validate -c shown.yaml");
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "shown.yaml: ok (2 services)\n");
  run_free(&r);

  /* The default file: $TANUKI_CONFIG, else ./tanuki.yaml. */
  r = run_cli(dir, "TANUKI_CONFIG=shown.yaml", "config validate");
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "shown.yaml: ok (2 services)\n");
  run_free(&r);
  r = run_cli(dir, "TANUKI_CONFIG=", "config validate");
  assert_int_equal(r.status, 1);
  assert_string_equal(r.err, "tanuki.yaml: error: cannot open: No such file or directory\n");
  run_free(&r);
  tu_rmtree(dir);
  free(dir);
}

static void cli_validate_errors(void **st) {
  (void)st;
  char *dir = tu_mkdtemp("tsvc-cli");
  char path[600];
  snprintf(path, sizeof path, "%s/tanuki.yaml", dir);
  assert_int_equal(tu_write_file(path, "services:\n"
                                       "  redis:\n"
                                       "    image: redis:7\n"
                                       "    healthcheck:\n"
                                       "      intervall: 5s\n"
                                       "      timeout: 30s\n"),
                   0);
  run_t r = run_cli(dir, "TANUKI_CONFIG=", "config validate");
  assert_int_equal(r.status, 1);
  assert_string_equal(r.out, "");
  assert_string_equal(r.err,
                      "tanuki.yaml:5:7: error: unknown key \"intervall\" in "
                      "services.redis.healthcheck; did you mean \"interval\"?\n"
                      "tanuki.yaml:6:16: warning: services.redis.healthcheck: timeout (30s) is "
                      "not below interval (10s); a slow check runs into the next\n");
  run_free(&r);
  r = run_cli(dir, "TANUKI_CONFIG=", "config show");
  assert_int_equal(r.status, 1);
  assert_string_equal(r.out, "");
  assert_non_null(strstr(r.err, "tanuki.yaml:5:7: error: unknown key \"intervall\""));
  run_free(&r);

  /* Warnings alone: valid. */
  assert_int_equal(tu_write_file(path, "services:\n  redis:\n    image: redis:7\n"
                                       "    healthcheck: {timeout: 30s}\n"),
                   0);
  r = run_cli(dir, "TANUKI_CONFIG=", "config validate");
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "tanuki.yaml: ok (1 service, 1 warning)\n");
  assert_non_null(strstr(r.err, "tanuki.yaml:4:28: warning:"));
  run_free(&r);

  /* Usage errors: 2. Help: 0. */
  const char *usage[] = {"config", "config frobnicate", "config validate -c",
                         "config validate extra", "config show --bogus"};
  for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
    r = run_cli(dir, NULL, usage[i]);
    if (r.status != 2) fail_msg("'%s' exited %d", usage[i], r.status);
    assert_true(strlen(r.err) > 0);
    run_free(&r);
  }
  const char *help[] = {"config --help", "config validate --help", "config show -h"};
  for (size_t i = 0; i < sizeof help / sizeof help[0]; i++) {
    r = run_cli(dir, NULL, help[i]);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: tanuki-svc config validate|show [-c FILE]"));
    run_free(&r);
  }
  r = run_cli(dir, NULL, "--help");
  assert_non_null(strstr(r.out, "  config     validate or show tanuki.yaml\n"));
  run_free(&r);
  tu_rmtree(dir);
  free(dir);
}

int main(void) {
  /* Tests expect the built-in Docker host unless they set one. */
  unsetenv("DOCKER_HOST");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_filled),
      cmocka_unit_test(docker_host_from_env),
      cmocka_unit_test(remote_engine_keys),
      cmocka_unit_test(every_key_loads),
      cmocka_unit_test(listen_port_only_means_loopback),
      cmocka_unit_test(command_forms),
      cmocka_unit_test(environment_forms),
      cmocka_unit_test(expect_status_forms),
      cmocka_unit_test(unknown_keys),
      cmocka_unit_test(wrong_types),
      cmocka_unit_test(port_forms),
      cmocka_unit_test(pull_policy_forms),
      cmocka_unit_test(ranges),
      cmocka_unit_test(env_names),
      cmocka_unit_test(warnings),
      cmocka_unit_test(duplicates),
      cmocka_unit_test(enums),
      cmocka_unit_test(depends_on),
      cmocka_unit_test(depends_on_long_form),
      cmocka_unit_test(hooks_and_depends_timeout),
      cmocka_unit_test(hooks_webhook),
      cmocka_unit_test(malformed_yaml),
      cmocka_unit_test(deep_nesting),
      cmocka_unit_test(several_errors),
      cmocka_unit_test(empty_and_top_level),
      cmocka_unit_test(anchors_and_aliases),
      cmocka_unit_test(whole_tanuki_file),
      cmocka_unit_test(startable),
      cmocka_unit_test(secret_keys),
      cmocka_unit_test(dump_masks_secrets),
      cmocka_unit_test(dump_round_trip),
      cmocka_unit_test(dump_unmasked_round_trip),
      cmocka_unit_test(load_from_file),
      cmocka_unit_test(cli_validate_example),
      cmocka_unit_test(cli_validate_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
