/* test_log: key=value and JSON lines, levels, and secrets never printed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "testutil.h"

typedef struct {
  FILE *f;
  char *buf;
  size_t len;
} cap_t;

static void cap_open(cap_t *c, tsvc_log_level_t min, bool json) {
  c->buf = NULL;
  c->len = 0;
  c->f = open_memstream(&c->buf, &c->len);
  tsvc_log_setup(c->f, min, json);
}

static void cap_close(cap_t *c) {
  tsvc_log_setup(stderr, TSVC_LOG_OFF, false);
  fclose(c->f);
  free(c->buf);
  tsvc_log_clear_secrets();
}

static void text_line_has_fields(void **st) {
  (void)st;
  cap_t c;
  cap_open(&c, TSVC_LOG_INFO, false);
  tsvc_log_field_t f[] = {{"service", "postgres"}, {"state", "unhealthy"}, {"prev", "healthy"},
                          {"failures", "3/3"},     {"skipped", NULL},      {"reason", "connection refused"}};
  tsvc_log_fields(TSVC_LOG_WARN, NULL, f, 6);
  fflush(c.f);
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
  fflush(c.f);
  assert_int_equal(c.len, 0);
  TSVC_LOG(TSVC_LOG_ERROR, "redis", "restart failed: %s", "boom");
  fflush(c.f);
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
  fflush(c.f);
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
  tsvc_log_fields(TSVC_LOG_ERROR, "echo hunter22", f, 3);
  fflush(c.f);
  assert_null(strstr(c.buf, "hunter22"));
  assert_null(strstr(c.buf, "tanuki"));
  assert_non_null(strstr(c.buf, "POSTGRES_PASSWORD=********"));
  assert_non_null(strstr(c.buf, "reason=\"AUTH ******** failed for ab\""));
  assert_non_null(strstr(c.buf, "url=redis://:********@127.0.0.1:6379"));
  assert_non_null(strstr(c.buf, "msg=\"echo ********\""));
  cap_close(&c);
  /* A secret that is part of a longer name is a name, not the secret. */
  char out[128];
  tsvc_log_add_secret("tanuki");
  tsvc_log_scrub(out, sizeof out, "container tanuki-svc-postgres: password=tanuki, user tanuki");
  assert_string_equal(out, "container tanuki-svc-postgres: password=********, user ********");
  tsvc_log_clear_secrets();
  /* JSON too. */
  cap_open(&c, TSVC_LOG_DEBUG, true);
  tsvc_log_add_secret("hunter22");
  tsvc_log_fields(TSVC_LOG_ERROR, NULL, f, 3);
  fflush(c.f);
  assert_null(strstr(c.buf, "hunter22"));
  assert_non_null(strstr(c.buf, "\"POSTGRES_PASSWORD\":\"********\""));
  cap_close(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(text_line_has_fields),
      cmocka_unit_test(levels_filter),
      cmocka_unit_test(quoting_escapes_newlines_and_quotes),
      cmocka_unit_test(json_lines),
      cmocka_unit_test(secrets_never_printed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
