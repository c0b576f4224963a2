/*
 * test_cli_args: the one option parser, walked over every verb of the
 * table (src/cli/verbs.c): every option in every spelling before, between
 * and after the operands; '--'; -h/--help anywhere; and a usage error that
 * names what is wrong for each kind of mistake. The rows are the program's
 * own, so a verb added later is tested without a line here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "testutil.h"

#define MAXARGS 32

/* An argv built from words; argv[0] is the verb. */
typedef struct {
  char *v[MAXARGS + 1];
  int n;
} argv_t;

static void push(argv_t *a, const char *w) {
  assert_true(a->n < MAXARGS);
  a->v[a->n++] = (char *)w;
  a->v[a->n] = NULL;
}

/* Valid operands for v: the first choice, or service names. */
static void push_operands(argv_t *a, const cli_verb_t *v, unsigned n) {
  static const char *const names[] = {"redis", "postgres", "9lives", "a.b"};
  for (unsigned i = 0; i < n; i++)
    push(a, v->operand_kind == CLI_OPERANDS_CHOICE ? v->operand_choices[i % 1] : names[i % 4]);
}

/* A valid value of o, different from its default, as a string. */
static const char *good_value(const cli_opt_t *o) {
  switch (o->kind) {
  case CLI_ARG_CHOICE: {
    size_t n = 0;
    while (o->choices[n]) n++;
    return o->choices[n - 1];
  }
  case CLI_ARG_NUMBER: return "7";
  case CLI_ARG_FILE: return "/tmp/some dir/x.yaml";
  default: return "value";
  }
}

static int parse(const cli_verb_t *v, argv_t *a, cli_args_t *out, char *err) {
  return cli_parse(v, a->n, a->v, out, err, 512);
}

static void expect_ok(const cli_verb_t *v, argv_t *a, cli_args_t *out) {
  char err[512];
  int rc = parse(v, a, out, err);
  if (rc != CLI_PARSE_OK) {
    print_message("argv:");
    for (int i = 0; i < a->n; i++) print_message(" '%s'", a->v[i]);
    fail_msg("\n%s: parse failed (%d): %s", v->name, rc, err);
  }
}

/* err must hold every needle; the parse must be a usage error. */
static void expect_error(const cli_verb_t *v, argv_t *a, const char *n1, const char *n2) {
  char err[512];
  cli_args_t out;
  int rc = parse(v, a, &out, err);
  cli_args_free(&out);
  if (rc != CLI_PARSE_ERROR || (n1 && !strstr(err, n1)) || (n2 && !strstr(err, n2))) {
    print_message("argv:");
    for (int i = 0; i < a->n; i++) print_message(" '%s'", a->v[i]);
    fail_msg("\n%s: want a usage error naming '%s' '%s', got rc %d: '%s'", v->name, n1,
             n2 ? n2 : "", rc, err);
  }
}

/* Every option of every verb, in each spelling, before / between / after the
   operands: the value comes out the same and the operands are intact. */
static void every_option_every_form(void **st) {
  (void)st;
  size_t cases = 0;
  for (const cli_verb_t *v = cli_verbs; v->name; v++) {
    unsigned nops = v->max_operands > 1 ? 2 : v->min_operands ? v->min_operands : v->max_operands;
    for (int k = 0; v->opts[k]; k++) {
      const cli_opt_t *o = v->opts[k];
      const char *val = good_value(o);
      char eq[300], longf[64], shortf[8], glued[300];
      snprintf(longf, sizeof longf, "--%s", o->name);
      snprintf(eq, sizeof eq, "--%s=%s", o->name, val);
      snprintf(shortf, sizeof shortf, "-%c", o->short_name);
      snprintf(glued, sizeof glued, "-%c%s", o->short_name, val);
      for (int form = 0; form < 4; form++) {
        if (form >= 2 && !o->short_name) continue;
        if (o->kind == CLI_ARG_NONE && (form == 1 || form == 3)) continue;
        for (unsigned pos = 0; pos <= nops; pos++) {
          argv_t a = {0};
          push(&a, v->name);
          argv_t ops = {0};
          push_operands(&ops, v, nops);
          for (unsigned i = 0; i <= nops; i++) {
            if (i == pos) {
              switch (form) {
              case 0:
                push(&a, longf);
                if (o->kind != CLI_ARG_NONE) push(&a, val);
                break;
              case 1: push(&a, eq); break;
              case 2:
                push(&a, shortf);
                if (o->kind != CLI_ARG_NONE) push(&a, val);
                break;
              case 3: push(&a, glued); break;
              }
            }
            if (i < nops) push(&a, ops.v[i]);
          }
          cli_args_t out;
          expect_ok(v, &a, &out);
          const char *got = cli_str(&out, o);
          assert_non_null(got);
          if (o->kind == CLI_ARG_NONE) assert_true(cli_flag(&out, o));
          else assert_string_equal(got, val);
          if (o->kind == CLI_ARG_NUMBER) assert_int_equal(cli_num(&out, o, -1), 7);
          assert_int_equal(out.noperands, nops);
          for (unsigned i = 0; i < nops; i++) assert_string_equal(out.operands[i], ops.v[i]);
          /* Options not given read as absent. */
          for (int j = 0; v->opts[j]; j++)
            if (j != k) assert_null(cli_str(&out, v->opts[j]));
          cli_args_free(&out);
          cases++;
        }
      }
    }
  }
  print_message("%zu command lines parsed\n", cases);
  assert_true(cases > 50);
}

/* The case, and the last value of a repeated option wins. */
static void check_takes_config_after_name(void **st) {
  (void)st;
  const cli_verb_t *v = cli_verb_find("check");
  assert_non_null(v);
  argv_t a = {0};
  push(&a, "check");
  push(&a, "redis");
  push(&a, "-c");
  push(&a, "tanuki.yaml");
  cli_args_t out;
  expect_ok(v, &a, &out);
  assert_string_equal(out.operands[0], "redis");
  assert_string_equal(cli_str(&out, &CLI_OPT_CONFIG), "tanuki.yaml");
  cli_args_free(&out);
  push(&a, "--config=other.yaml");
  expect_ok(v, &a, &out);
  assert_string_equal(cli_str(&out, &CLI_OPT_CONFIG), "other.yaml");
  cli_args_free(&out);
  /* Grouped flags, the last one taking the next word. */
  v = cli_verb_find("logs");
  argv_t b = {0};
  push(&b, "logs");
  push(&b, "-fn");
  push(&b, "20");
  push(&b, "redis");
  expect_ok(v, &b, &out);
  assert_true(cli_flag(&out, &CLI_OPT_FOLLOW));
  assert_int_equal(cli_num(&out, &CLI_OPT_TAIL, -1), 20);
  assert_string_equal(out.operands[0], "redis");
  cli_args_free(&out);
}

/* After '--' everything is an operand, even what looks like an option; a
   lone '-' is an operand anywhere. */
static void double_dash_ends_options(void **st) {
  (void)st;
  for (const cli_verb_t *v = cli_verbs; v->name; v++) {
    if (v->max_operands == 0 || v->operand_kind == CLI_OPERANDS_CHOICE) continue;
    argv_t a = {0};
    push(&a, v->name);
    push(&a, "-c");
    push(&a, "f.yaml");
    push(&a, "--");
    push(&a, "--help");
    cli_args_t out;
    expect_ok(v, &a, &out);
    assert_int_equal(out.noperands, 1);
    assert_string_equal(out.operands[0], "--help");
    assert_string_equal(cli_str(&out, &CLI_OPT_CONFIG), "f.yaml");
    cli_args_free(&out);
    argv_t b = {0};
    push(&b, v->name);
    push(&b, "-");
    expect_ok(v, &b, &out);
    assert_string_equal(out.operands[0], "-");
    cli_args_free(&out);
  }
  /* config: the subcommand after '--' too. */
  argv_t c = {0};
  push(&c, "config");
  push(&c, "--");
  push(&c, "show");
  cli_args_t out;
  expect_ok(cli_verb_find("config"), &c, &out);
  assert_string_equal(out.operands[0], "show");
  cli_args_free(&out);
}

/* -h and --help anywhere, for every verb, even beside mistakes. */
static void help_everywhere(void **st) {
  (void)st;
  const char *helps[] = {"-h", "--help"};
  for (const cli_verb_t *v = cli_verbs; v->name; v++) {
    for (int h = 0; h < 2; h++) {
      const char *lines[][4] = {{helps[h]},
                                {"--bogus", helps[h]},
                                {helps[h], "extra", "operands", "here"},
                                {"-c", "x", helps[h]}};
      for (size_t l = 0; l < sizeof lines / sizeof lines[0]; l++) {
        argv_t a = {0};
        push(&a, v->name);
        for (int w = 0; w < 4 && lines[l][w]; w++) push(&a, lines[l][w]);
        char err[512];
        cli_args_t out;
        int rc = parse(v, &a, &out, err);
        cli_args_free(&out);
        if (rc != CLI_PARSE_HELP)
          fail_msg("%s %s (line %zu): rc %d: %s", v->name, helps[h], l, rc, err);
      }
    }
    /* The help itself: usage, every option, the exit codes. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli_help(v, f);
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "usage: tanuki-svc %s", v->name);
    assert_non_null(strstr(buf, want));
    for (int k = 0; v->opts[k]; k++) {
      snprintf(want, sizeof want, "--%s", v->opts[k]->name);
      if (!strstr(buf, want)) fail_msg("%s --help does not list %s:\n%s", v->name, want, buf);
    }
    assert_non_null(strstr(buf, "-h, --help"));
    assert_non_null(strstr(buf, "Exit: "));
    free(buf);
  }
}

/* Each kind of mistake, for every verb: a usage error naming the option or
   the operand at fault. */
static void usage_errors_name_the_culprit(void **st) {
  (void)st;
  for (const cli_verb_t *v = cli_verbs; v->name; v++) {
    unsigned nops = v->min_operands;
    argv_t a = {0};
    push(&a, v->name);
    push_operands(&a, v, nops);
    push(&a, "--no-such-option");
    expect_error(v, &a, "--no-such-option", "unknown option");

    argv_t b = {0};
    push(&b, v->name);
    push_operands(&b, v, nops);
    push(&b, "-Z");
    expect_error(v, &b, "'-Z'", NULL);

    for (int k = 0; v->opts[k]; k++) {
      const cli_opt_t *o = v->opts[k];
      char longf[64], eq[80];
      snprintf(longf, sizeof longf, "--%s", o->name);
      argv_t c = {0};
      push(&c, v->name);
      push_operands(&c, v, nops);
      if (o->kind == CLI_ARG_NONE) {
        /* A flag given a value. */
        snprintf(eq, sizeof eq, "--%s=yes", o->name);
        push(&c, eq);
        expect_error(v, &c, longf, "takes no value");
        continue;
      }
      /* A value missing at the end of the line. */
      push(&c, longf);
      expect_error(v, &c, longf, "needs a value");
      if (o->short_name) {
        char sf[8];
        snprintf(sf, sizeof sf, "-%c", o->short_name);
        argv_t d = {0};
        push(&d, v->name);
        push_operands(&d, v, nops);
        push(&d, sf);
        expect_error(v, &d, sf, "needs a value");
      }
      /* A value of the wrong kind. */
      if (o->kind == CLI_ARG_CHOICE || o->kind == CLI_ARG_NUMBER) {
        argv_t e = {0};
        push(&e, v->name);
        push_operands(&e, v, nops);
        snprintf(eq, sizeof eq, "--%s=bogus", o->name);
        push(&e, eq);
        expect_error(v, &e, longf, "'bogus'");
      }
      if (o->kind == CLI_ARG_NUMBER) {
        argv_t e = {0};
        push(&e, v->name);
        push_operands(&e, v, nops);
        push(&e, longf);
        push(&e, "99999999999999999999");
        expect_error(v, &e, longf, "99999999999999999999");
      }
      if (o->kind == CLI_ARG_FILE || o->kind == CLI_ARG_STRING) {
        argv_t e = {0};
        push(&e, v->name);
        push_operands(&e, v, nops);
        snprintf(eq, sizeof eq, "--%s=", o->name);
        push(&e, eq);
        expect_error(v, &e, longf, "empty");
      }
    }

    /* Operands: too few, too many, an unknown subcommand. */
    if (v->min_operands > 0) {
      argv_t f = {0};
      push(&f, v->name);
      push(&f, "-c");
      push(&f, "x.yaml");
      expect_error(v, &f, "missing", NULL);
    }
    if (v->max_operands < CLI_MANY) {
      argv_t g = {0};
      push(&g, v->name);
      push_operands(&g, v, v->max_operands);
      push(&g, "surplus");
      expect_error(v, &g, "'surplus'", "unexpected operand");
    }
    if (v->operand_kind == CLI_OPERANDS_CHOICE) {
      argv_t h = {0};
      push(&h, v->name);
      push(&h, "frobnicate");
      expect_error(v, &h, "'frobnicate'", v->operand_choices[0]);
    }
  }
}

/* The table itself: names unique within a verb, help and summary present,
   no verb with more options than the parser holds. What shell completion
   and the help rely on. */
static void table_is_sound(void **st) {
  (void)st;
  size_t nverbs = 0;
  for (const cli_verb_t *v = cli_verbs; v->name; v++, nverbs++) {
    assert_non_null(v->run);
    assert_non_null(v->summary);
    assert_non_null(v->description);
    assert_non_null(v->exit_codes);
    assert_true(v->min_operands <= v->max_operands);
    assert_ptr_equal(cli_verb_find(v->name), v);
    if (v->operand_kind == CLI_OPERANDS_CHOICE) assert_non_null(v->operand_choices);
    int n = 0;
    for (; v->opts[n]; n++) {
      const cli_opt_t *o = v->opts[n];
      assert_non_null(o->help);
      assert_true(o->short_name != 'h' && strcmp(o->name, "help") != 0);
      if (o->kind == CLI_ARG_CHOICE) assert_non_null(o->choices);
      if (o->kind == CLI_ARG_NUMBER) assert_true(o->min <= o->max);
      for (int j = 0; j < n; j++) {
        assert_string_not_equal(v->opts[j]->name, o->name);
        if (o->short_name) assert_int_not_equal(v->opts[j]->short_name, o->short_name);
      }
    }
    assert_true(n <= CLI_MAX_OPTS);
    for (const cli_verb_t *w = cli_verbs; w < v; w++) assert_string_not_equal(w->name, v->name);
  }
  assert_true(nverbs >= 11);
  assert_null(cli_verb_find("frobnicate"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_option_every_form),
      cmocka_unit_test(check_takes_config_after_name),
      cmocka_unit_test(double_dash_ends_options),
      cmocka_unit_test(help_everywhere),
      cmocka_unit_test(usage_errors_name_the_culprit),
      cmocka_unit_test(table_is_sound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
