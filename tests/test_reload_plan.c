/*
 * test_reload_plan: a reload as a pure plan (manager/plan.h), from configs
 * loaded from strings, as the health machine is tested: every action, the
 * order (removals first, then depends_on order), the counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "manager/diff.h"
#include "manager/plan.h"
#include "testutil.h"

static tsvc_config_t *load(const char *yaml) {
  return tu_config("test.yaml", yaml, strlen(yaml));
}

/* The action planned for name, or -1 when it is not in the plan. */
static int action_of(const tsvc_plan_t *p, const char *name) {
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->v[i].svc->name, name) == 0) return (int)p->v[i].action;
  return -1;
}

static size_t index_of(const tsvc_plan_t *p, const char *name) {
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->v[i].svc->name, name) == 0) return i;
  fail_msg("%s is not in the plan", name);
  return 0;
}

#define SVC(name, extra) "  " name ":\n    image: redis:7\n" extra

static const char old_yaml[] =
    "services:\n"
    SVC("same", "")
    SVC("knobs", "    healthcheck: {interval: 10s}\n")
    SVC("spec", "    environment: {A: '1'}\n")
    SVC("off", "")
    SVC("on", "    enabled: false\n")
    SVC("gone", "")
    SVC("gone_ext", "    external: true\n")
    SVC("gone_off", "    enabled: false\n")
    SVC("to_ext", "")
    SVC("from_ext", "    external: true\n")
    SVC("off_spec", "    enabled: false\n    environment: {A: '1'}\n");

static const char new_yaml[] =
    "services:\n"
    SVC("same", "")
    SVC("knobs", "    healthcheck: {interval: 6s}\n")
    SVC("spec", "    environment: {A: '2'}\n")
    SVC("off", "    enabled: false\n")
    SVC("on", "")
    SVC("to_ext", "    external: true\n")
    SVC("from_ext", "")
    SVC("off_spec", "    enabled: false\n    environment: {A: '2'}\n")
    SVC("added", "    depends_on: [same]\n")
    SVC("added_off", "    enabled: false\n")
    SVC("added_ext", "    external: true\n");

static void every_action(void **st) {
  (void)st;
  tsvc_config_t *old = load(old_yaml), *nc = load(new_yaml);
  tsvc_plan_t p;
  assert_int_equal(tsvc_plan_reload(old, nc, &p), 0);
  struct {
    const char *name;
    tsvc_plan_action_t want;
  } cases[] = {
      {"same", TSVC_PLAN_KEEP},
      {"knobs", TSVC_PLAN_UPDATE},
      {"spec", TSVC_PLAN_RECREATE},
      {"off", TSVC_PLAN_STOP},
      {"on", TSVC_PLAN_START},
      {"gone", TSVC_PLAN_DROP_STOP},
      {"gone_ext", TSVC_PLAN_DROP},
      {"gone_off", TSVC_PLAN_DROP},
      {"to_ext", TSVC_PLAN_WATCH},
      {"from_ext", TSVC_PLAN_START},
      {"off_spec", TSVC_PLAN_UPDATE}, /* disabled: nothing runs to recreate */
      {"added", TSVC_PLAN_ADD_START},
      {"added_off", TSVC_PLAN_ADD},
      {"added_ext", TSVC_PLAN_ADD_WATCH},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int got = action_of(&p, cases[i].name);
    if (got != (int)cases[i].want)
      fail_msg("%s: %s, want %s", cases[i].name,
               got < 0 ? "missing" : tsvc_plan_action_name((tsvc_plan_action_t)got),
               tsvc_plan_action_name(cases[i].want));
  }
  assert_int_equal(p.n, sizeof cases / sizeof cases[0]);
  assert_int_equal(p.added, 3);
  assert_int_equal(p.removed, 3);
  assert_int_equal(p.recreated, 1);
  /* knobs, spec, off, on, to_ext, from_ext, off_spec */
  assert_int_equal(p.changed, 7);
  assert_int_equal(p.same, 1);
  /* Removed services point into the old config, the others into the new. */
  assert_ptr_equal(p.v[index_of(&p, "gone")].svc, tsvc_config_service(old, "gone"));
  assert_ptr_equal(p.v[index_of(&p, "spec")].svc, tsvc_config_service(nc, "spec"));
  assert_ptr_equal(p.v[index_of(&p, "spec")].was, tsvc_config_service(old, "spec"));
  assert_true(p.v[index_of(&p, "spec")].diff & TSVC_DIFF_SPEC);
  assert_true(p.v[index_of(&p, "knobs")].diff & TSVC_DIFF_KNOBS);
  tsvc_plan_free(&p);
  tsvc_config_free(old);
  tsvc_config_free(nc);
}

/* Removals come first; the rest follows the new config in depends_on
   order (a dependency before what depends on it), whatever the file
   order. */
static void removals_first_then_dependencies(void **st) {
  (void)st;
  tsvc_config_t *old = load("services:\n" SVC("app", "") SVC("old", ""));
  tsvc_config_t *nc = load("services:\n"
                           SVC("app", "    depends_on: [cache, db]\n")
                           SVC("cache", "    depends_on: [db]\n")
                           SVC("db", ""));
  tsvc_plan_t p;
  assert_int_equal(tsvc_plan_reload(old, nc, &p), 0);
  assert_int_equal(p.n, 4);
  assert_string_equal(p.v[0].svc->name, "old");
  assert_int_equal(p.v[0].action, TSVC_PLAN_DROP_STOP);
  assert_true(index_of(&p, "db") < index_of(&p, "cache"));
  assert_true(index_of(&p, "cache") < index_of(&p, "app"));
  assert_int_equal(action_of(&p, "app"), TSVC_PLAN_UPDATE); /* depends_on changed */
  tsvc_plan_free(&p);
  tsvc_config_free(old);
  tsvc_config_free(nc);
}

/* The same config: every service kept, nothing to do. */
static void unchanged_config_keeps_everything(void **st) {
  (void)st;
  tsvc_config_t *a = load(old_yaml), *b = load(old_yaml);
  tsvc_plan_t p;
  assert_int_equal(tsvc_plan_reload(a, b, &p), 0);
  assert_int_equal(p.n, b->nservices);
  for (size_t i = 0; i < p.n; i++) assert_int_equal(p.v[i].action, TSVC_PLAN_KEEP);
  assert_int_equal(p.same, b->nservices);
  assert_int_equal(p.changed + p.added + p.removed, 0);
  tsvc_plan_free(&p);
  tsvc_config_free(a);
  tsvc_config_free(b);
}

/* Every action has a name (for logs and tests). */
static void every_action_has_a_name(void **st) {
  (void)st;
  for (int a = 0; a < TSVC_PLAN__COUNT; a++)
    assert_string_not_equal(tsvc_plan_action_name((tsvc_plan_action_t)a), "invalid");
  assert_string_equal(tsvc_plan_action_name(TSVC_PLAN__COUNT), "invalid");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_action),
      cmocka_unit_test(removals_first_then_dependencies),
      cmocka_unit_test(unchanged_config_keeps_everything),
      cmocka_unit_test(every_action_has_a_name),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
