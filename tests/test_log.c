/* test_log: key=value and JSON lines, levels, and secrets never printed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "log/log.h"
#include "testutil.h"

/* The log captured (tu_log_capture_as), as read by the last cap_read. */
typedef struct {
  char *buf;
  size_t len;
} cap_t;

static void cap_open(cap_t *c, tsvc_log_level_t min, bool json) {
  c->buf = NULL;
  c->len = 0;
  tu_log_capture_as(min, json);
}

static void cap_read(cap_t *c) {
  free(c->buf);
  c->buf = tu_log_since(0);
  c->len = strlen(c->buf);
}

static void cap_close(cap_t *c) {
  free(c->buf);
  free(tu_log_end());
  tsvc_log_clear_secrets();
}

static void text_line_has_fields(void **st) {
  (void)st;
  cap_t c;
  cap_open(&c, TSVC_LOG_INFO, false);
  tsvc_log_field_t f[] = {{"service", "postgres"}, {"state", "unhealthy"}, {"prev", "healthy"},
                          {"failures", "3/3"},     {"skipped", NULL},      {"reason", "connection refused"}};
  tsvc_log_fields(TSVC_LOG_WARN, NULL, f, 6);
  cap_read(&c);
  assert_non_null(strstr(c.buf, " level=warn service=postgres state=unhealthy prev=healthy "
                                "failures=3/3 reason=\"connection refused\"\n"));
  assert_memory_equal(c.buf, "ts=", 3);
  /* RFC 3339 UTC with milliseconds: ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
  assert_int_equal(c.buf[3 + 10], 'T');
  assert_int_equal(c.buf[3 + 23], 'Z');
  assert_null(strstr(c.buf, "skipped"));
  assert_int_equal(strchr(c.buf, '\n') - c.buf + 1, (long)strlen(c.buf)); /* one line */
  cap_close(&c);
}

static void levels_filter(void **st) {
  (void)st;
  cap_t c;
  cap_open(&c, TSVC_LOG_WARN, false);
  TSVC_LOG(TSVC_LOG_INFO, "redis", "checked %d times", 3);
  TSVC_LOG(TSVC_LOG_DEBUG, "redis", "noise");
  cap_read(&c);
  assert_int_equal(c.len, 0);
  TSVC_LOG(TSVC_LOG_ERROR, "redis", "restart failed: %s", "boom");
  cap_read(&c);
  assert_non_null(strstr(c.buf, "level=error service=redis msg=\"restart failed: boom\""));
  tsvc_log_level_t l;
  assert_int_equal(tsvc_log_level_parse("warn", &l), 0);
  assert_int_equal(l, TSVC_LOG_WARN);
  assert_int_equal(tsvc_log_level_parse("loud", &l), TSVC_EINVAL);
  cap_close(&c);
}

static void quoting_escapes_newlines_and_quotes(void **st) {
  (void)st;
  char buf[256];
  tsvc_log_field_t f[] = {{"reason", "said \"no\"\nthen left"}, {"empty", ""}};
  tsvc_log_format_text(buf, sizeof buf, f, 2);
  assert_string_equal(buf, "reason=\"said \\\"no\\\"\\nthen left\" empty=\"\"");
}

static void json_lines(void **st) {
  (void)st;
  cap_t c;
  cap_open(&c, TSVC_LOG_INFO, true);
  tsvc_log_field_t f[] = {{"service", "redis"}, {"reason", "NOAUTH \"Authentication\" required"}};
  tsvc_log_fields(TSVC_LOG_INFO, "state change", f, 2);
  cap_read(&c);
  json_error_t err;
  json_t *o = json_loads(c.buf, 0, &err);
  assert_non_null(o);
  assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
  assert_string_equal(json_string_value(json_object_get(o, "service")), "redis");
  assert_string_equal(json_string_value(json_object_get(o, "reason")),
                      "NOAUTH \"Authentication\" required");
  assert_string_equal(json_string_value(json_object_get(o, "msg")), "state change");
  assert_non_null(json_object_get(o, "ts"));
  json_decref(o);
  cap_close(&c);
}

static void secrets_never_printed(void **st) {
  (void)st;
  cap_t c;
  cap_open(&c, TSVC_LOG_DEBUG, false);
  assert_int_equal(tsvc_log_add_secret("hunter22"), 0);
  assert_int_equal(tsvc_log_add_secret("ab"), 0); /* too short to register */
  tsvc_log_field_t f[] = {{"POSTGRES_PASSWORD", "tanuki"},
                          {"reason", "AUTH hunter22 failed for ab"},
                          {"url", "redis://:hunter22@127.0.0.1:6379"}};
  tsvc_log_fields(TSVC_LOG_ERROR, "env: REDIS_PASSWORD=hunter22 PORT=6379", f, 3);
  cap_read(&c);
  assert_null(strstr(c.buf, "hunter22"));
  assert_null(strstr(c.buf, "tanuki"));
  assert_non_null(strstr(c.buf, "POSTGRES_PASSWORD=********"));
  assert_non_null(strstr(c.buf, "reason=\"AUTH ******** failed for ab\""));
  assert_non_null(strstr(c.buf, "url=redis://:********@127.0.0.1:6379"));
  assert_non_null(strstr(c.buf, "msg=\"env: REDIS_PASSWORD=******** PORT=6379\""));
  cap_close(&c);
  /* A secret that is part of a longer name is a name, not the secret. */
  char out[128];
  tsvc_log_add_secret("tanuki");
  tsvc_log_scrub(out, sizeof out, "container tanuki-svc-postgres: password=tanuki, user tanuki");
  assert_string_equal(out, "container tanuki-svc-postgres: password=********, user tanuki");
  tsvc_log_clear_secrets();
  /* JSON too. */
  cap_open(&c, TSVC_LOG_DEBUG, true);
  tsvc_log_add_secret("hunter22");
  tsvc_log_fields(TSVC_LOG_ERROR, NULL, f, 3);
  cap_read(&c);
  assert_null(strstr(c.buf, "hunter22"));
  assert_non_null(strstr(c.buf, "\"POSTGRES_PASSWORD\":\"********\""));
  cap_close(&c);
}

/* The line: a password "tanuki" and a project under examples/. */
static void paths_and_names_are_kept(void **st) {
  (void)st;
  cap_t c;
  cap_open(&c, TSVC_LOG_INFO, false);
  tsvc_log_add_secret("tanuki");
  TSVC_LOG(TSVC_LOG_INFO, NULL, "API on %s", "/root/project/examples/.tanuki/tanuki-svc.sock");
  TSVC_LOG(TSVC_LOG_INFO, "postgres", "data in /var/lib/tanuki-svc/tanuki-1a2b/postgres");
  cap_read(&c);
  assert_non_null(strstr(c.buf, "msg=\"API on /root/project/examples/.tanuki/tanuki-svc.sock\""));
  assert_non_null(strstr(c.buf, "msg=\"data in /var/lib/tanuki-svc/tanuki-1a2b/postgres\""));
  assert_null(strstr(c.buf, "****"));
  cap_close(&c);
}

/* tsvc_mask_text, rule by rule: what is a value is masked, the rest kept. */
static void mask_text_cases(void **st) {
  (void)st;
  const char *known[] = {"tanuki", "s3cr3t", "p,ss"};
  const struct {
    const char *in, *want;
  } cases[] = {
      /* Paths and names containing a known secret: kept. */
      {"/root/project/examples/.tanuki/tanuki-svc.sock",
       "/root/project/examples/.tanuki/tanuki-svc.sock"},
      {"container tanuki-svc-postgres (tanuki_dev)", "container tanuki-svc-postgres (tanuki_dev)"},
      {"password authentication failed for user \"tanuki\"",
       "password authentication failed for user \"tanuki\""},
      {"cannot enter /home/tanuki/.tanuki: Permission denied",
       "cannot enter /home/tanuki/.tanuki: Permission denied"},
      /* KEY=VALUE: a secret key, whatever the value; any key with a known value. */
      {"POSTGRES_PASSWORD=tanuki POSTGRES_USER=tanuki",
       "POSTGRES_PASSWORD=******** POSTGRES_USER=********"},
      {"env: [PGPASSWORD=unknown1 HOME=/root]", "env: [PGPASSWORD=******** HOME=/root]"},
      {"DB_PWD=x1 PWD=/srv/app MYSQL_PWD='a b' c",
       "DB_PWD=******** PWD=/srv/app MYSQL_PWD='********' c"},
      /* libpq connection strings. */
      {"host=127.0.0.1 port=5432 user=tanuki password=hunter2 dbname=app",
       "host=127.0.0.1 port=5432 user=******** password=******** dbname=app"},
      {"dbname=app password='with space' sslmode=disable",
       "dbname=app password='********' sslmode=disable"},
      {"password=p,ss, next", "password=********, next"},
      {"(password=hunter2) [token=abc]", "(password=********) [token=********]"},
      /* JSON. */
      {"{\"POSTGRES_PASSWORD\":\"tanuki\",\"POSTGRES_DB\":\"tanuki_dev\"}",
       "{\"POSTGRES_PASSWORD\":\"********\",\"POSTGRES_DB\":\"tanuki_dev\"}"},
      {"{\"api_token\": \"abc123\", \"name\": \"tanuki\"}",
       "{\"api_token\": \"********\", \"name\": \"tanuki\"}"},
      /* URL userinfo: any password; a known token as the user. */
      {"connect postgres://tanuki:zzz@db:5432/tanuki_dev failed",
       "connect postgres://tanuki:********@db:5432/tanuki_dev failed"},
      {"redis://:s3cr3t@127.0.0.1:6379/0", "redis://:********@127.0.0.1:6379/0"},
      {"https://s3cr3t@example.com/x https://user@example.com/",
       "https://********@example.com/x https://user@example.com/"},
      /* Options taking a password; curl's user:password. */
      {"redis-cli -a hunter2 -p 6379 ping", "redis-cli -a ******** -p 6379 ping"},
      {"redis-server --requirepass 'a b' --port 1",
       "redis-server --requirepass '********' --port 1"},
      {"curl -u admin:hunter2 http://x/", "curl -u admin:******** http://x/"},
      {"curl --user 'admin:hunter 2' -uother:pw2 x",
       "curl --user 'admin:********' -uother:******** x"},
      {"docker run -u 1000:1000 img; runuser -u nobody",
       "docker run -u 1000:1000 img; runuser -u nobody"},
      {"redis-cli -a pw; echo -a", "redis-cli -a ********; echo -a"},
      /* AUTH with a known secret; time and host:port are no KEY:VALUE. */
      {"AUTH tanuki", "AUTH ********"},
      {"AUTH default s3cr3t", "AUTH default ********"},
      {"at 12:30:01 on 127.0.0.1:5432", "at 12:30:01 on 127.0.0.1:5432"},
      {"", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[512];
    assert_int_equal(tsvc_mask_text(out, sizeof out, cases[i].in, known, 3), 0);
    if (strcmp(out, cases[i].want) != 0)
      fail_msg("mask(%s)\n  got  %s\n  want %s", cases[i].in, out, cases[i].want);
  }
  /* Cut, never overrun. */
  char small[8];
  assert_int_equal(tsvc_mask_text(small, sizeof small, "password=hunter2", known, 3), 0);
  assert_string_equal(small, "passwor");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(text_line_has_fields),
      cmocka_unit_test(levels_filter),
      cmocka_unit_test(quoting_escapes_newlines_and_quotes),
      cmocka_unit_test(json_lines),
      cmocka_unit_test(secrets_never_printed),
      cmocka_unit_test(paths_and_names_are_kept),
      cmocka_unit_test(mask_text_cases),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
