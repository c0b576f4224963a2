/* test_names: the shared enums of tsvc.h have stable names. */
#include <string.h>

#include "common/util.h"
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

static void project_ids(void **st) {
  (void)st;
  char a[TSVC_PROJECT_ID_MAX], b[TSVC_PROJECT_ID_MAX];
  assert_int_equal(tsvc_project_id("/root/My Project/examples/tanuki.yaml", a, sizeof a), 0);
  /* slug of the directory, a dash, 8 hex digits */
  assert_int_equal(strncmp(a, "examples-", 9), 0);
  assert_int_equal(strlen(a), 9 + 8);
  /* stable for one path, different for another file in the same directory */
  assert_int_equal(tsvc_project_id("/root/My Project/examples/tanuki.yaml", b, sizeof b), 0);
  assert_string_equal(a, b);
  assert_int_equal(tsvc_project_id("/root/My Project/examples/other.yaml", b, sizeof b), 0);
  assert_string_not_equal(a, b);
  assert_int_equal(strncmp(b, "examples-", 9), 0);
  /* odd characters collapse to single dashes; nothing readable: "project" */
  assert_int_equal(tsvc_project_id("/srv/__My..App 2__/t.yaml", a, sizeof a), 0);
  assert_int_equal(strncmp(a, "my-app-2-", 9), 0);
  assert_int_equal(tsvc_project_id("/t.yaml", a, sizeof a), 0);
  assert_int_equal(strncmp(a, "project-", 8), 0);
  /* a long name is cut to 24 characters */
  assert_int_equal(tsvc_project_id("/x/abcdefghijklmnopqrstuvwxyz0123/t.yaml", a, sizeof a), 0);
  assert_int_equal(strlen(a), 24 + 1 + 8);
  assert_int_equal(tsvc_project_id("/x/t.yaml", a, 8), TSVC_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(state_names),
      cmocka_unit_test(result_names),
      cmocka_unit_test(error_names),
      cmocka_unit_test(project_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
