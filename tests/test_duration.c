/* test_duration: Go-style durations, every form and every rejection. */
#include <string.h>

#include "config/config.h"
#include "testutil.h"
#include "tsvc.h"

static tsvc_ms_t parse_ok(const char *s) {
  tsvc_ms_t ms = -1;
  char err[256];
  int rc = tsvc_duration_parse(s, &ms, err, sizeof err);
  if (rc != 0) fail_msg("\"%s\" was rejected: %s", s, err);
  assert_string_equal(err, "");
  return ms;
}

/* Rejects s with a message that contains want. */
static void parse_bad(const char *s, const char *want) {
  tsvc_ms_t ms = 12345;
  char err[256];
  int rc = tsvc_duration_parse(s, &ms, err, sizeof err);
  if (rc != TSVC_EINVAL) fail_msg("\"%s\" was accepted (%lld ms)", s, (long long)ms);
  assert_int_equal(ms, 12345); /* untouched on error */
  if (!strstr(err, want)) fail_msg("\"%s\": message \"%s\" lacks \"%s\"", s, err, want);
}

static void units(void **st) {
  (void)st;
  assert_int_equal(parse_ok("300ms"), 300);
  assert_int_equal(parse_ok("5s"), 5000);
  assert_int_equal(parse_ok("2m"), 120000);
  assert_int_equal(parse_ok("2h"), 7200000);
  assert_int_equal(parse_ok("1000us"), 1);
  assert_int_equal(parse_ok("1500\xc2\xb5s"), 1); /* micro sign, rounded down */
  assert_int_equal(parse_ok("2000\xce\xbcs"), 2); /* Greek mu */
  assert_int_equal(parse_ok("3000000ns"), 3);
}

static void compound_and_fractions(void **st) {
  (void)st;
  assert_int_equal(parse_ok("1m30s"), 90000);
  assert_int_equal(parse_ok("1h2m3s4ms"), 3723004);
  assert_int_equal(parse_ok("1.5s"), 1500);
  assert_int_equal(parse_ok(".5s"), 500);
  assert_int_equal(parse_ok("1.s"), 1000);
  assert_int_equal(parse_ok("0.25h"), 900000);
  assert_int_equal(parse_ok("1.0001s"), 1000); /* below 1 ms: rounded down */
  assert_int_equal(parse_ok("2s2s"), 4000);    /* Go adds repeated units */
}

static void zero(void **st) {
  (void)st;
  assert_int_equal(parse_ok("0"), 0); /* as in Go: zero needs no unit */
  assert_int_equal(parse_ok("0s"), 0);
  assert_int_equal(parse_ok("0ms"), 0);
  assert_int_equal(parse_ok("0h0m"), 0);
}

static void rejections(void **st) {
  (void)st;
  parse_bad("5", "missing unit in duration \"5\"; did you mean \"5s\"?");
  parse_bad("1.5", "did you mean \"1.5s\"?");
  parse_bad("-5s", "negative duration \"-5s\" is not allowed");
  parse_bad("+5s", "no sign allowed");
  parse_bad("", "empty duration");
  parse_bad("5sec", "unknown unit \"sec\" in duration \"5sec\"");
  parse_bad("5 s", "unknown unit \" s\"");
  parse_bad("1m30", "missing unit in duration \"1m30\"");
  parse_bad("s", "invalid duration \"s\"");
  parse_bad(".s", "invalid duration \".s\"");
  parse_bad("abc", "invalid duration \"abc\"");
  parse_bad("5s ", "unknown unit \"s \"");
  parse_bad("500us", "below the resolution of 1ms");
  parse_bad("1ns", "below the resolution of 1ms");
  parse_bad("99999999999999999999s", "too large");
  parse_bad("3000000h", "too large");
  /* No error buffer: still refused, nothing written. */
  tsvc_ms_t ms = 7;
  assert_int_equal(tsvc_duration_parse("5", &ms, NULL, 0), TSVC_EINVAL);
  assert_int_equal(tsvc_duration_parse(NULL, &ms, NULL, 0), TSVC_EINVAL);
  assert_int_equal(ms, 7);
}

static void format(void **st) {
  (void)st;
  char b[32];
  assert_string_equal(tsvc_duration_format(0, b, sizeof b), "0s");
  assert_string_equal(tsvc_duration_format(300, b, sizeof b), "300ms");
  assert_string_equal(tsvc_duration_format(1000, b, sizeof b), "1s");
  assert_string_equal(tsvc_duration_format(1500, b, sizeof b), "1.5s");
  assert_string_equal(tsvc_duration_format(1250, b, sizeof b), "1.25s");
  assert_string_equal(tsvc_duration_format(1001, b, sizeof b), "1.001s");
  assert_string_equal(tsvc_duration_format(90000, b, sizeof b), "1m30s");
  assert_string_equal(tsvc_duration_format(60000, b, sizeof b), "1m");
  assert_string_equal(tsvc_duration_format(7200000, b, sizeof b), "2h");
  assert_string_equal(tsvc_duration_format(3723004, b, sizeof b), "1h2m3.004s");
  assert_string_equal(tsvc_duration_format(-5, b, sizeof b), "0s");
  char small[4];
  assert_string_equal(tsvc_duration_format(90000, small, sizeof small), "1m3"); /* truncated */
}

static void format_round_trip(void **st) {
  (void)st;
  const tsvc_ms_t values[] = {0,       1,       999,      1000,       1001,     59999,
                              60000,   61500,   3599999,  3600000,    86400000, 123456789,
                              (tsvc_ms_t)9000000000000LL};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    char b[64];
    tsvc_duration_format(values[i], b, sizeof b);
    assert_int_equal(parse_ok(b), values[i]);
  }
  /* And a sweep over small values, where the fraction rules matter. */
  for (tsvc_ms_t ms = 0; ms < 200000; ms += 37) {
    char b[64];
    tsvc_duration_format(ms, b, sizeof b);
    assert_int_equal(parse_ok(b), ms);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(units),     cmocka_unit_test(compound_and_fractions),
      cmocka_unit_test(zero),      cmocka_unit_test(rejections),
      cmocka_unit_test(format),    cmocka_unit_test(format_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
