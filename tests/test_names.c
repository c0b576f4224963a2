/* test_names: the shared enums of tsvc.h have stable names. */
#include <string.h>

#include "testutil.h"
#include "tsvc.h"

static void state_names(void **st) {
  (void)st;
  assert_string_equal(tsvc_state_name(TSVC_STATE_STARTING), "starting");
  assert_string_equal(tsvc_state_name(TSVC_STATE_UNKNOWN), "unknown");
  assert_string_equal(tsvc_state_name((tsvc_state_t)99), "invalid");
}

static void result_names(void **st) {
  (void)st;
  assert_string_equal(tsvc_result_name(TSVC_RESULT_OK), "ok");
  assert_string_equal(tsvc_result_name(TSVC_RESULT_PROTOCOL), "protocol_error");
  assert_string_equal(tsvc_result_name(TSVC_RESULT_RUNTIME_ERROR), "runtime_error");
}

static void error_names(void **st) {
  (void)st;
  assert_string_equal(tsvc_err_name(TSVC_ECONFIG), "ECONFIG");
  assert_string_equal(tsvc_strerror(TSVC_ENOENT), "no such service");
  assert_string_equal(tsvc_strerror(-999), "unknown error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(state_names),
      cmocka_unit_test(result_names),
      cmocka_unit_test(error_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
