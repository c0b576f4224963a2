/* test_probe_resolve: probe: auto and parameter derivation (docs/design.md, "Probes"). */
#include <string.h>

#include "common/util.h"
#include "monitor/check.h"
#include "probe/probe.h"
#include "runtime/runtime.h"
#include "testutil.h"

/* A service built by hand, as the config loader would fill it. */
typedef struct {
  tsvc_service_conf_t svc;
  char *cmd[16];
  tsvc_kv_t env[8];
} fixture_t;

static void fx_init(fixture_t *f, const char *name, const char *image, int port) {
  memset(f, 0, sizeof *f);
  f->svc.name = (char *)name;
  f->svc.image = (char *)image;
  f->svc.port = port;
  f->svc.enabled = true;
  f->svc.env = f->env;
  f->svc.healthcheck.probe = TSVC_PROBE_AUTO;
  f->svc.healthcheck.timeout = 5000;
  f->svc.healthcheck.path = "/";
  f->svc.healthcheck.expect_status_min = 200;
  f->svc.healthcheck.expect_status_max = 399;
}

/* Set the healthcheck command from a NULL-terminated list. The argv is NOT
 * NULL-terminated in the struct (tsvc_strv_t need not be): a sentinel
 * pointer after the last entry catches readers that go past n. */
static void fx_cmd(fixture_t *f, ...) {
  va_list ap;
  va_start(ap, f);
  size_t n = 0;
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL) f->cmd[n++] = (char *)a;
  va_end(ap);
  f->cmd[n] = (char *)"<past the end>";
  f->svc.healthcheck.command.v = f->cmd;
  f->svc.healthcheck.command.n = n;
}

static void fx_env(fixture_t *f, const char *k, const char *v) {
  f->env[f->svc.env_len].key = (char *)k;
  f->env[f->svc.env_len].value = (char *)v;
  f->svc.env_len++;
}

static void str_eq(const char *got, const char *want) {
  if (!want) {
    assert_null(got);
    return;
  }
  assert_non_null(got);
  assert_string_equal(got, want);
}

static tsvc_probe_spec_t resolve(fixture_t *f) {
  tsvc_probe_spec_t s;
  memset(&s, 0xa5, sizeof s); /* resolve must set every field */
  tsvc_probe_resolve(&f->svc, &s);
  return s;
}

static void pg_isready_forms(void **st) {
  (void)st;
  fixture_t f;
  /* The request's own command: user from -U, database from POSTGRES_DB. */
  fx_init(&f, "postgres", "postgres:16", 5432);
  fx_env(&f, "POSTGRES_USER", "tanuki");
  fx_env(&f, "POSTGRES_PASSWORD", "tanuki");
  fx_env(&f, "POSTGRES_DB", "tanuki_dev");
  fx_cmd(&f, "pg_isready", "-U", "tanuki", NULL);
  tsvc_probe_spec_t s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_POSTGRES);
  str_eq(s.user, "tanuki");
  str_eq(s.database, "tanuki_dev");
  str_eq(s.host, NULL);
  assert_int_equal(s.port, 5432);
  assert_int_equal(s.timeout, 5000);
  /* For a held session's login (healthcheck.session); the probe sends none. */
  str_eq(s.password, "tanuki");

  /* Joined and long forms, all four flags, a full path. */
  fx_init(&f, "db", NULL, 0);
  fx_cmd(&f, "/usr/bin/pg_isready", "-Ualice", "--dbname=shop", "--host", "db.internal",
         "-p6543", NULL);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_POSTGRES);
  str_eq(s.user, "alice");
  str_eq(s.database, "shop");
  str_eq(s.host, "db.internal");
  assert_int_equal(s.port, 6543);

  fx_init(&f, "db", NULL, 7000);
  fx_cmd(&f, "pg_isready", "--username=bob", "-d", "bobdb", "-h", "10.0.0.5", "--port",
         "5433", "-q", "-t", "3", NULL);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_POSTGRES);
  str_eq(s.user, "bob");
  str_eq(s.database, "bobdb");
  str_eq(s.host, "10.0.0.5");
  assert_int_equal(s.port, 5433); /* the command's -p wins over svc->port */

  /* No -U: POSTGRES_USER; no -d, no POSTGRES_DB: the user. */
  fx_init(&f, "db", NULL, 7000);
  fx_env(&f, "POSTGRES_USER", "carol");
  fx_cmd(&f, "pg_isready", NULL);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_POSTGRES);
  str_eq(s.user, "carol");
  str_eq(s.database, "carol");
  assert_int_equal(s.port, 7000); /* svc->port */

  /* Nothing at all: postgres/postgres on 5432. */
  fx_init(&f, "db", NULL, 0);
  fx_cmd(&f, "pg_isready", NULL);
  s = resolve(&f);
  str_eq(s.user, "postgres");
  str_eq(s.database, "postgres");
  assert_int_equal(s.port, 5432);

  /* Loopback and socket directories mean the service itself. */
  const char *selves[] = {"localhost", "127.0.0.1", "::1", "/var/run/postgresql"};
  for (size_t i = 0; i < 4; i++) {
    fx_init(&f, "db", NULL, 0);
    fx_cmd(&f, "pg_isready", "-h", selves[i], NULL);
    s = resolve(&f);
    assert_int_equal(s.kind, TSVC_PROBE_POSTGRES);
    str_eq(s.host, NULL);
  }
}

static void pg_isready_falls_back_to_exec(void **st) {
  (void)st;
  const char *const bad[][8] = {
      {"pg_isready", "-U", "x", "--verbose", NULL},  /* unknown flag */
      {"pg_isready", "-U", NULL},                     /* missing value */
      {"pg_isready", "-U", "x", "extra", NULL},       /* extra word */
      {"pg_isready", "-p", "notaport", NULL},
      {"pg_isready", "-p", "70000", NULL},
      {"pg_isready", "--username=", NULL},            /* empty value */
      {"pg_isready", "-d", "host=db user=x", NULL},   /* conninfo */
      {"pg_isready", "-d", "postgresql://x@db/y", NULL},
      {"pg_isready", "-qU", "x", NULL},               /* bundled flags */
      {"pg_isready", "--quiet=1", NULL},
      {"pg_isready_wrapper", "-U", "x", NULL},
      {"sh", "-c", "pg_isready -U x", NULL},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(bad); i++) {
    fixture_t f;
    fx_init(&f, "postgres", "postgres:16", 5432);
    size_t n = 0;
    while (bad[i][n]) f.cmd[n] = (char *)bad[i][n], n++;
    f.svc.healthcheck.command.v = f.cmd;
    f.svc.healthcheck.command.n = n;
    tsvc_probe_spec_t s = resolve(&f);
    assert_int_equal(s.kind, TSVC_PROBE_EXEC);
    assert_ptr_equal(s.argv, f.cmd);
    assert_int_equal(s.argc, n);
    assert_false(s.shell);
  }
  /* The CMD-SHELL form always runs as it is. */
  fixture_t f;
  fx_init(&f, "postgres", "postgres:16", 5432);
  fx_cmd(&f, "pg_isready -U tanuki", NULL);
  f.svc.healthcheck.shell = true;
  tsvc_probe_spec_t s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_EXEC);
  assert_true(s.shell);
  assert_int_equal(s.argc, 1);
}

static void redis_cli_forms(void **st) {
  (void)st;
  fixture_t f;
  fx_init(&f, "redis", "redis:7", 6379);
  fx_cmd(&f, "redis-cli", "ping", NULL);
  tsvc_probe_spec_t s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_REDIS);
  str_eq(s.password, NULL);
  str_eq(s.username, NULL);
  str_eq(s.host, NULL);
  assert_int_equal(s.port, 6379);

  /* -a, -h, -p, case-insensitive PING. */
  fx_init(&f, "cache", NULL, 0);
  fx_cmd(&f, "redis-cli", "-a", "s3cret", "-h", "cache.internal", "-p", "6380", "PING", NULL);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_REDIS);
  str_eq(s.password, "s3cret");
  str_eq(s.host, "cache.internal");
  assert_int_equal(s.port, 6380);

  /* --user/--pass (ACL) and --no-auth-warning. */
  fx_init(&f, "cache", NULL, 7000);
  fx_cmd(&f, "/usr/local/bin/redis-cli", "--user", "app", "--pass", "pw", "--no-auth-warning",
         "Ping", NULL);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_REDIS);
  str_eq(s.username, "app");
  str_eq(s.password, "pw");
  assert_int_equal(s.port, 7000);

  /* Password from REDIS_PASSWORD when the command has none. */
  fx_init(&f, "cache", NULL, 0);
  fx_env(&f, "REDIS_PASSWORD", "fromenv");
  fx_cmd(&f, "redis-cli", "ping", NULL);
  s = resolve(&f);
  str_eq(s.password, "fromenv");
  /* ... and -a wins over it. */
  fx_cmd(&f, "redis-cli", "-a", "fromcmd", "ping", NULL);
  s = resolve(&f);
  str_eq(s.password, "fromcmd");

  fx_init(&f, "cache", NULL, 0);
  fx_cmd(&f, "redis-cli", "-h", "localhost", "ping", NULL);
  s = resolve(&f);
  str_eq(s.host, NULL);
}

static void redis_cli_falls_back_to_exec(void **st) {
  (void)st;
  const char *const bad[][8] = {
      {"redis-cli", NULL},                          /* no command */
      {"redis-cli", "info", NULL},                  /* another command */
      {"redis-cli", "ping", "hello", NULL},         /* PING with an argument */
      {"redis-cli", "ping", "-h", "x", NULL},       /* words after PING are arguments */
      {"redis-cli", "-n", "1", "ping", NULL},       /* unknown flag */
      {"redis-cli", "-u", "redis://x", "ping", NULL},
      {"redis-cli", "-a", NULL},
      {"redis-cli", "-p", "0", "ping", NULL},
      {"redis-cli", "--tls", "ping", NULL},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(bad); i++) {
    fixture_t f;
    fx_init(&f, "redis", "redis:7", 6379);
    size_t n = 0;
    while (bad[i][n]) f.cmd[n] = (char *)bad[i][n], n++;
    f.svc.healthcheck.command.v = f.cmd;
    f.svc.healthcheck.command.n = n;
    tsvc_probe_spec_t s = resolve(&f);
    assert_int_equal(s.kind, TSVC_PROBE_EXEC);
    assert_int_equal(s.argc, n);
  }
}

static void other_commands_exec(void **st) {
  (void)st;
  fixture_t f;
  fx_init(&f, "api", "example/api:1", 8080);
  fx_cmd(&f, "curl", "-f", "http://localhost:8080/health", NULL);
  tsvc_probe_spec_t s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_EXEC);
  assert_ptr_equal(s.argv, f.cmd);
  assert_int_equal(s.argc, 3);
  assert_int_equal(s.timeout, 5000);
  /* A command wins over the built-in probe of the name. */
  fx_init(&f, "postgres", "postgres:16", 5432);
  fx_cmd(&f, "true", NULL);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_EXEC);
}

static void builtin_by_name_or_image(void **st) {
  (void)st;
  fixture_t f;
  /* By name, env defaults. */
  fx_init(&f, "postgres", NULL, 0);
  tsvc_probe_spec_t s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_POSTGRES);
  str_eq(s.user, "postgres");
  str_eq(s.database, "postgres");
  assert_int_equal(s.port, 5432);

  fx_init(&f, "maindb", "docker.io/library/postgres:16-alpine", 15432);
  fx_env(&f, "POSTGRES_USER", "tanuki");
  fx_env(&f, "POSTGRES_DB", "tanuki_dev");
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_POSTGRES);
  str_eq(s.user, "tanuki");
  str_eq(s.database, "tanuki_dev");
  assert_int_equal(s.port, 15432);

  fx_init(&f, "redis", NULL, 0);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_REDIS);
  assert_int_equal(s.port, 6379);
  str_eq(s.password, NULL);

  fx_init(&f, "cache", "bitnami/redis:7.2", 0);
  fx_env(&f, "REDIS_PASSWORD", "pw");
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_REDIS);
  str_eq(s.password, "pw");

  /* PostgREST is not postgres: with a port it is tcp. */
  fx_init(&f, "rest", "postgrest/postgrest:v12", 3000);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_TCP);
  assert_int_equal(s.port, 3000);
}

static void tcp_then_running(void **st) {
  (void)st;
  fixture_t f;
  fx_init(&f, "mq", "rabbitmq:3", 5672);
  tsvc_probe_spec_t s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_TCP);
  assert_int_equal(s.port, 5672);
  str_eq(s.host, NULL);

  fx_init(&f, "worker", "example/worker", 0);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_RUNNING);
  assert_null(s.argv);
}

static void explicit_kinds(void **st) {
  (void)st;
  fixture_t f;
  /* probe: postgres with a pg_isready command: same derivation. */
  fx_init(&f, "db", NULL, 0);
  f.svc.healthcheck.probe = TSVC_PROBE_POSTGRES;
  fx_env(&f, "POSTGRES_DB", "envdb");
  fx_cmd(&f, "pg_isready", "-U", "u1", "-p", "5999", NULL);
  tsvc_probe_spec_t s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_POSTGRES);
  str_eq(s.user, "u1");
  str_eq(s.database, "envdb");
  assert_int_equal(s.port, 5999);

  /* probe: postgres with some other command: env defaults. */
  fx_init(&f, "db", NULL, 6000);
  f.svc.healthcheck.probe = TSVC_PROBE_POSTGRES;
  fx_cmd(&f, "/healthcheck.sh", NULL);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_POSTGRES);
  str_eq(s.user, "postgres");
  assert_int_equal(s.port, 6000);

  /* probe: exec even though the command is pg_isready. */
  fx_init(&f, "db", NULL, 0);
  f.svc.healthcheck.probe = TSVC_PROBE_EXEC;
  fx_cmd(&f, "pg_isready", "-U", "x", NULL);
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_EXEC);
  assert_int_equal(s.argc, 3);

  /* probe: redis on a service named otherwise. */
  fx_init(&f, "kv", "valkey/valkey", 0);
  f.svc.healthcheck.probe = TSVC_PROBE_REDIS;
  fx_env(&f, "REDIS_PASSWORD", "pw");
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_REDIS);
  str_eq(s.password, "pw");
  assert_int_equal(s.port, 6379);

  /* probe: http with path and status range. */
  fx_init(&f, "web", NULL, 8080);
  f.svc.healthcheck.probe = TSVC_PROBE_HTTP;
  f.svc.healthcheck.path = "/healthz";
  f.svc.healthcheck.expect_status_min = 200;
  f.svc.healthcheck.expect_status_max = 204;
  f.svc.healthcheck.timeout = 1500;
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_HTTP);
  str_eq(s.path, "/healthz");
  assert_int_equal(s.status_min, 200);
  assert_int_equal(s.status_max, 204);
  assert_int_equal(s.port, 8080);
  assert_int_equal(s.timeout, 1500);

  /* probe: tcp, probe: running. */
  fx_init(&f, "x", "postgres", 1234);
  f.svc.healthcheck.probe = TSVC_PROBE_TCP;
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_TCP);
  assert_int_equal(s.port, 1234);
  f.svc.healthcheck.probe = TSVC_PROBE_RUNNING;
  s = resolve(&f);
  assert_int_equal(s.kind, TSVC_PROBE_RUNNING);
}

static void empty_env_values_ignored(void **st) {
  (void)st;
  fixture_t f;
  fx_init(&f, "postgres", NULL, 0);
  fx_env(&f, "POSTGRES_USER", "");
  fx_env(&f, "POSTGRES_DB", "");
  tsvc_probe_spec_t s = resolve(&f);
  str_eq(s.user, "postgres");
  str_eq(s.database, "postgres");
  fx_init(&f, "redis", NULL, 0);
  fx_env(&f, "REDIS_PASSWORD", "");
  s = resolve(&f);
  str_eq(s.password, NULL);
}

/* port: "16379:6379": probes connect to the container port where ports are
   mapped (docker: the container's address, known after an inspection), and
   to the host port where they are not (processes on the host, or no
   runtime at all: the published port on 127.0.0.1). */
static void published_port(void **st) {
  (void)st;
  fixture_t f;
  fx_init(&f, "redis", "redis:7-alpine", 6379);
  f.svc.host_port = 16379;
  static const tsvc_runtime_ops_t mapping = {.name = "mapping", .maps_ports = true};
  static const tsvc_runtime_ops_t plain = {.name = "plain", .maps_ports = false};
  tsvc_runtime_t rt_map = {.ops = &mapping}, rt_plain = {.ops = &plain};
  tsvc_probe_spec_t s;
  char host[64];
  tsvc_check_prepare(&f.svc, &rt_map, &s, host, sizeof host);
  assert_int_equal(s.kind, TSVC_PROBE_REDIS);
  assert_int_equal(s.port, 6379);
  tsvc_check_prepare(&f.svc, &rt_plain, &s, host, sizeof host);
  assert_int_equal(s.port, 16379);
  tsvc_check_prepare(&f.svc, NULL, &s, host, sizeof host);
  assert_int_equal(s.port, 16379);
  assert_string_equal(s.host, "127.0.0.1");
  /* A command naming the container port means the same port. */
  fx_cmd(&f, "redis-cli", "-p", "6379", "ping", NULL);
  tsvc_check_prepare(&f.svc, &rt_plain, &s, host, sizeof host);
  assert_int_equal(s.port, 16379);
  tsvc_check_prepare(&f.svc, &rt_map, &s, host, sizeof host);
  assert_int_equal(s.port, 6379);
  /* port: N: the same everywhere. */
  f.svc.host_port = 6379;
  tsvc_check_prepare(&f.svc, &rt_plain, &s, host, sizeof host);
  assert_int_equal(s.port, 6379);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pg_isready_forms),      cmocka_unit_test(pg_isready_falls_back_to_exec),
      cmocka_unit_test(redis_cli_forms),       cmocka_unit_test(redis_cli_falls_back_to_exec),
      cmocka_unit_test(other_commands_exec),   cmocka_unit_test(builtin_by_name_or_image),
      cmocka_unit_test(tcp_then_running),      cmocka_unit_test(explicit_kinds),
      cmocka_unit_test(empty_env_values_ignored),
      cmocka_unit_test(published_port),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
