/*
 * test_conninfo: how clients reach the services (manager/conninfo.h), from
 * configs loaded from strings: TANK-045's names in both views, under
 * docker and the process runtime, percent-escaping, the kinds, what is
 * left out (disabled, no port), secrets left out for TCP, the variables'
 * order and prefixes, and the JSON of GET /v1/env read back as the CLI
 * reads it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_json.h"
#include "config/config.h"
#include "manager/conninfo.h"
#include "testutil.h"

static tsvc_config_t *load(const char *yaml) {
  return tu_config("test.yaml", yaml, strlen(yaml));
}

static const char yaml[] =
    "runtime: docker\n"
    "docker: {container_prefix: tanuki-svc-}\n"
    "services:\n"
    "  postgres:\n"
    "    image: postgres:16\n"
    "    port: \"15432:5432\"\n"
    "    environment: {POSTGRES_USER: \"ta nuki\", POSTGRES_PASSWORD: \"p@ss/w:rd%\",\n"
    "                  POSTGRES_DB: tanuki_dev}\n"
    "  redis: {image: redis:7-alpine, port: 6379, environment: {REDIS_PASSWORD: \"r p\"}}\n"
    "  pg-replica: {image: postgres:16, port: 5433}\n"
    "  cache: {image: redis:7-alpine, port: 6380}\n"
    "  9lives: {image: nginx, port: 8080}\n"
    "  off: {image: nginx, port: 8081, enabled: false}\n"
    "  noport: {image: nginx}\n"
    "  ext: {port: 9000, external: true}\n";

static const tsvc_conn_info_t *find(const tsvc_conn_list_t *l, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].service, name) == 0) return &l->v[i];
  fail_msg("%s is not in the list", name);
  return NULL;
}

/* The host view: 127.0.0.1 and the published port, TANK-045's names. */
static void host_view(void **st) {
  (void)st;
  tsvc_config_t *cfg = load(yaml);
  tsvc_conn_list_t l;
  assert_int_equal(tsvc_conn_collect(cfg, "docker", TSVC_VIEW_HOST, NULL, &l), 0);
  /* Enabled services with a port, in file order. */
  assert_int_equal(l.n, 6);
  const char *order[] = {"postgres", "redis", "pg-replica", "cache", "9lives", "ext"};
  for (size_t i = 0; i < l.n; i++) assert_string_equal(l.v[i].service, order[i]);
  assert_false(l.shared_host);

  const tsvc_conn_info_t *pg = find(&l, "postgres");
  assert_string_equal(pg->prefix, "POSTGRES");
  assert_string_equal(pg->kind, "postgres");
  assert_string_equal(pg->host, "127.0.0.1");
  assert_int_equal(pg->port, 15432);
  assert_string_equal(pg->url, "127.0.0.1:15432");
  assert_string_equal(pg->username, "ta nuki");
  assert_string_equal(pg->password, "p@ss/w:rd%");
  assert_string_equal(pg->database, "tanuki_dev");
  assert_string_equal(pg->dsn,
                      "postgres://ta%20nuki:p%40ss%2Fw%3Ard%25@127.0.0.1:15432/tanuki_dev");
  assert_false(pg->monitored);

  const tsvc_conn_info_t *r = find(&l, "redis");
  assert_string_equal(r->prefix, "REDIS");
  assert_string_equal(r->url, "redis://default:r%20p@127.0.0.1:6379");
  assert_string_equal(r->dsn, "");

  /* A second postgres: its own prefix, the same kind of variables; the
     user and the database default as the image's do. */
  const tsvc_conn_info_t *rep = find(&l, "pg-replica");
  assert_string_equal(rep->prefix, "PG_REPLICA");
  assert_string_equal(rep->username, "postgres");
  assert_string_equal(rep->database, "postgres");
  assert_string_equal(rep->dsn, "postgres://postgres@127.0.0.1:5433/postgres");
  assert_string_equal(find(&l, "cache")->url, "redis://127.0.0.1:6380");
  assert_string_equal(find(&l, "9lives")->prefix, "_9LIVES");
  assert_string_equal(find(&l, "9lives")->url, "127.0.0.1:8080");
  tsvc_conn_list_free(&l);

  /* Another host address (a remote engine's). */
  assert_int_equal(tsvc_conn_collect(cfg, "docker", TSVC_VIEW_HOST, "10.0.0.5", &l), 0);
  assert_string_equal(find(&l, "postgres")->dsn,
                      "postgres://ta%20nuki:p%40ss%2Fw%3Ard%25@10.0.0.5:15432/tanuki_dev");
  tsvc_conn_list_free(&l);
  tsvc_config_free(cfg);
}

/* The network view under docker: container name and container port; an
   external service is no container of ours. */
static void network_view(void **st) {
  (void)st;
  tsvc_config_t *cfg = load(yaml);
  tsvc_conn_list_t l;
  assert_int_equal(tsvc_conn_collect(cfg, "docker", TSVC_VIEW_NETWORK, NULL, &l), 0);
  assert_int_equal(l.view, TSVC_VIEW_NETWORK);
  assert_false(l.shared_host);
  const tsvc_conn_info_t *pg = find(&l, "postgres");
  assert_string_equal(pg->host, "tanuki-svc-postgres");
  assert_int_equal(pg->port, 5432);
  assert_string_equal(pg->url, "tanuki-svc-postgres:5432");
  assert_string_equal(pg->dsn,
                      "postgres://ta%20nuki:p%40ss%2Fw%3Ard%25@tanuki-svc-postgres:5432/tanuki_dev");
  assert_string_equal(find(&l, "redis")->url, "redis://default:r%20p@tanuki-svc-redis:6379");
  assert_string_equal(find(&l, "ext")->host, "127.0.0.1");
  assert_int_equal(find(&l, "ext")->port, 9000);
  tsvc_conn_list_free(&l);

  /* No runtime chosen yet: the config's (docker here). */
  assert_int_equal(tsvc_conn_collect(cfg, "", TSVC_VIEW_NETWORK, NULL, &l), 0);
  assert_string_equal(find(&l, "redis")->host, "tanuki-svc-redis");
  tsvc_conn_list_free(&l);

  /* The process runtime has no container network: the host's values. */
  assert_int_equal(tsvc_conn_collect(cfg, "process", TSVC_VIEW_NETWORK, NULL, &l), 0);
  assert_true(l.shared_host);
  assert_string_equal(find(&l, "postgres")->host, "127.0.0.1");
  assert_int_equal(find(&l, "postgres")->port, 15432);
  tsvc_conn_list_free(&l);
  tsvc_config_free(cfg);
}

static const char *val(const tsvc_kv_t *kv, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(kv[i].key, key) == 0) return kv[i].value;
  return NULL;
}

/* The variables: fixed order, prefixes, secrets only when asked. */
static void variables(void **st) {
  (void)st;
  tsvc_config_t *cfg = load(yaml);
  tsvc_conn_list_t l;
  assert_int_equal(tsvc_conn_collect(cfg, "docker", TSVC_VIEW_HOST, NULL, &l), 0);
  tsvc_kv_t *kv = NULL;
  size_t n = 0;
  assert_int_equal(tsvc_conn_vars(find(&l, "postgres"), NULL, true, &kv, &n), 0);
  const char *pg[] = {"POSTGRES_HOST", "POSTGRES_PORT",     "POSTGRES_URL", "POSTGRES_USER",
                      "POSTGRES_PASSWORD", "POSTGRES_DATABASE", "POSTGRES_DB",  "POSTGRES_DSN"};
  assert_int_equal(n, 8);
  for (size_t i = 0; i < n; i++) assert_string_equal(kv[i].key, pg[i]);
  assert_string_equal(val(kv, n, "POSTGRES_PORT"), "15432");
  assert_string_equal(val(kv, n, "POSTGRES_DB"), "tanuki_dev");
  /* Appends, with a prefix before every name. */
  assert_int_equal(tsvc_conn_vars(find(&l, "redis"), "T_", true, &kv, &n), 0);
  assert_int_equal(n, 12);
  assert_string_equal(kv[8].key, "T_REDIS_HOST");
  assert_string_equal(val(kv, n, "T_REDIS_PASSWORD"), "r p");
  assert_int_equal(tsvc_conn_vars(find(&l, "cache"), NULL, true, &kv, &n), 0);
  assert_int_equal(n, 15); /* no password: no CACHE_PASSWORD */
  assert_null(val(kv, n, "CACHE_PASSWORD"));
  tsvc_conn_vars_free(kv, n);

  /* Without secrets (TCP): no password anywhere. */
  assert_int_equal(tsvc_conn_strip_secrets(&l), 0);
  kv = NULL;
  n = 0;
  for (size_t i = 0; i < l.n; i++)
    assert_int_equal(tsvc_conn_vars(&l.v[i], NULL, false, &kv, &n), 0);
  for (size_t i = 0; i < n; i++) {
    assert_null(strstr(kv[i].key, "PASSWORD"));
    assert_null(strstr(kv[i].value, "p%40ss"));
    assert_null(strstr(kv[i].value, "p@ss"));
    assert_null(strstr(kv[i].value, "r%20p"));
  }
  assert_string_equal(val(kv, n, "POSTGRES_DSN"),
                      "postgres://ta%20nuki@127.0.0.1:15432/tanuki_dev");
  assert_string_equal(val(kv, n, "REDIS_URL"), "redis://127.0.0.1:6379");
  tsvc_conn_vars_free(kv, n);
  tsvc_conn_list_free(&l);
  tsvc_config_free(cfg);

  assert_true(tsvc_conn_prefix_ok(""));
  assert_true(tsvc_conn_prefix_ok("TANUKI_"));
  assert_false(tsvc_conn_prefix_ok("9X"));
  assert_false(tsvc_conn_prefix_ok("A-B"));
  assert_false(tsvc_conn_prefix_ok(NULL));
  tsvc_view_t v;
  assert_int_equal(tsvc_view_parse("network", &v), 0);
  assert_int_equal(v, TSVC_VIEW_NETWORK);
  assert_int_equal(tsvc_view_parse("Network", &v), TSVC_EINVAL);
}

/* GET /v1/env's JSON, and the CLI's reading of it: the same list. */
static void json_round_trip(void **st) {
  (void)st;
  tsvc_config_t *cfg = load(yaml);
  tsvc_conn_list_t l, back;
  assert_int_equal(tsvc_conn_collect(cfg, "docker", TSVC_VIEW_NETWORK, NULL, &l), 0);
  l.v[0].monitored = true;
  l.v[0].state = TSVC_STATE_UNHEALTHY;
  json_t *v = tsvc_api_json_env(&l, "docker", true);
  assert_non_null(v);
  assert_string_equal(json_string_value(json_object_get(v, "view")), "network");
  json_t *svcs = json_object_get(v, "services"), *vars = json_object_get(v, "variables");
  assert_true(json_is_null(json_object_get(json_array_get(svcs, 1), "state")));
  assert_string_equal(json_string_value(json_object_get(vars, "POSTGRES_HOST")),
                      "tanuki-svc-postgres");
  char err[256];
  assert_int_equal(tsvc_api_env_parse(v, &back, err, sizeof err), 0);
  assert_int_equal(back.n, l.n);
  assert_int_equal(back.view, TSVC_VIEW_NETWORK);
  for (size_t i = 0; i < l.n; i++) {
    assert_string_equal(back.v[i].service, l.v[i].service);
    assert_string_equal(back.v[i].dsn, l.v[i].dsn);
    assert_string_equal(back.v[i].password, l.v[i].password);
    assert_int_equal(back.v[i].port, l.v[i].port);
    assert_int_equal(back.v[i].monitored, l.v[i].monitored);
  }
  assert_int_equal(back.v[0].state, TSVC_STATE_UNHEALTHY);
  tsvc_conn_list_free(&back);
  json_decref(v);

  /* Not that shape: an error naming where. */
  v = json_loads("{\"view\":\"host\",\"services\":[{\"name\":\"x\"}]}", 0, NULL);
  assert_int_equal(tsvc_api_env_parse(v, &back, err, sizeof err), TSVC_EINVAL);
  assert_non_null(strstr(err, "services[0]"));
  assert_int_equal(back.n, 0);
  json_decref(v);
  v = json_loads("{\"view\":\"sideways\",\"services\":[]}", 0, NULL);
  assert_int_equal(tsvc_api_env_parse(v, &back, err, sizeof err), TSVC_EINVAL);
  json_decref(v);
  tsvc_conn_list_free(&l);
  tsvc_config_free(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(host_view),
      cmocka_unit_test(network_view),
      cmocka_unit_test(variables),
      cmocka_unit_test(json_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
