/* The process runtime's pieces on their own (src/runtime/process_int.h):
 * a service's log file with rotation, the output's tail, the first error
 * line of a helper, and the postgres and redis recipes' command lines and
 * files. No loop, no servers: tests/test_process_rt.c runs the whole
 * runtime against real postgres and redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "runtime/process_int.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

/* The whole file at dir/name, or NULL when missing. */
static char *slurp(const char *dir, const char *name) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  tsvc_buf_t b;
  tsvc_buf_init(&b, 1 << 20);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    assert_int_equal(tsvc_buf_add(&b, chunk, n), 0);
  fclose(f);
  if (!b.data) assert_int_equal(tsvc_buf_add(&b, "", 0), 0);
  return tsvc_buf_steal(&b);
}

static void put(tsvc__plog_t *l, const char *s) { tsvc__plog_output(l, s, strlen(s)); }

static tsvc_config_t *load(const char *yaml) {
  return tu_config("t.yaml", yaml, strlen(yaml));
}

/* argv as one string, words joined by single spaces. */
static void joined(const tsvc__argv_t *a, char *out, size_t len) {
  out[0] = '\0';
  for (size_t i = 0; a->v[i]; i++) {
    if (i) tsvc_strlcpy(out + strlen(out), " ", len - strlen(out));
    tsvc_strlcpy(out + strlen(out), a->v[i], len - strlen(out));
  }
}

/* ---- the log file ------------------------------------------------------------ */

/* Rotation happens at a write that would pass the limit, after the part
   that still fits up to its last line end; nothing is lost and each file
   stays within the limit. */
static void log_rotates_at_a_line_end(void **st) {
  (void)st;
  char *dir = tu_mkdtemp("tsvc-plog");
  tsvc__plog_t l;
  tsvc__plog_init(&l, dir, "svc", 64);
  char all[256] = "";
  for (int i = 0; i < 6; i++) { /* 48 bytes: fit */
    char line[16];
    snprintf(line, sizeof line, "line-%02d\n", i);
    put(&l, line);
    strcat(all, line);
  }
  /* 24 more bytes in one write: 16 of them (two whole lines) fit. */
  put(&l, "line-06\nline-07\nline-08\n");
  strcat(all, "line-06\nline-07\nline-08\n");
  char *cur = slurp(dir, "svc.log"), *old = slurp(dir, "svc.log.1");
  assert_non_null(old);
  assert_string_equal(old, "line-00\nline-01\nline-02\nline-03\n"
                           "line-04\nline-05\nline-06\nline-07\n");
  assert_int_equal(strlen(old), 64);
  assert_string_equal(cur, "line-08\n");
  free(cur);
  free(old);

  /* The part that fits holds no line end: the file is rotated before it,
     and the line begins the new file whole. */
  put(&l, "0123456789012345678901234567890123456789012345678\n"); /* 8 + 50 = 58 */
  put(&l, "abcdefgh\n");                                            /* 58 + 9 > 64 */
  cur = slurp(dir, "svc.log");
  old = slurp(dir, "svc.log.1");
  assert_string_equal(old, "line-08\n0123456789012345678901234567890123456789012345678\n");
  assert_string_equal(cur, "abcdefgh\n");
  free(cur);
  free(old);
  tsvc__plog_close(&l);

  /* A file found past the limit when opened (a smaller limit now) is
     rotated first. */
  tsvc__plog_init(&l, dir, "svc", 4);
  tsvc__plog_open(&l);
  cur = slurp(dir, "svc.log");
  old = slurp(dir, "svc.log.1");
  assert_string_equal(old, "abcdefgh\n");
  assert_string_equal(cur, "");
  free(cur);
  free(old);
  tsvc__plog_close(&l);
  tu_rmtree(dir);
  free(dir);
}

/* Our own lines: "[tanuki-svc <UTC time to the ms>] text". */
static void log_note_shape(void **st) {
  (void)st;
  char *dir = tu_mkdtemp("tsvc-plog");
  tsvc__plog_t l;
  tsvc__plog_init(&l, dir, "svc", TSVC_PROCESS_LOG_MAX);
  tsvc__plog_note(&l, "started %s (pid %d)", "svc", 42);
  tsvc__plog_close(&l);
  char *text = slurp(dir, "svc.log");
  regex_t re;
  assert_int_equal(regcomp(&re,
                           "^\\[tanuki-svc [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                           "\\.[0-9]{3}Z\\] started svc \\(pid 42\\)\n$",
                           REG_EXTENDED | REG_NOSUB),
                   0);
  assert_int_equal(regexec(&re, text, 0, NULL, 0), 0);
  regfree(&re);
  free(text);
  tu_rmtree(dir);
  free(dir);
}

/* The tail: the last non-empty line of the last 512 bytes, control
   characters as spaces. */
static void tail_line_is_the_last_printable_line(void **st) {
  (void)st;
  char *dir = tu_mkdtemp("tsvc-plog");
  tsvc__plog_t l;
  tsvc__plog_init(&l, dir, "svc", TSVC_PROCESS_LOG_MAX);
  char out[64];
  tsvc__plog_tail_line(&l, out, sizeof out);
  assert_string_equal(out, "");
  put(&l, "first\nsec\001ond\tline\n\n  \n");
  tsvc__plog_tail_line(&l, out, sizeof out);
  assert_string_equal(out, "sec ond line");
  /* More than the tail holds, in one write and in many. */
  char big[2000];
  memset(big, 'x', sizeof big);
  big[sizeof big - 1] = '\0';
  put(&l, big);
  put(&l, "\nlast words");
  tsvc__plog_tail_line(&l, out, sizeof out);
  assert_string_equal(out, "last words");
  for (int i = 0; i < 100; i++) put(&l, "0123456789");
  /* A line longer than the tail begins where the tail does (1000 - 512 =
     488 bytes in: '8'); cut to what out holds. */
  tsvc__plog_tail_line(&l, out, 8);
  assert_string_equal(out, "8901234");
  tsvc__plog_tail_reset(&l);
  tsvc__plog_tail_line(&l, out, sizeof out);
  assert_string_equal(out, "");
  tsvc__plog_close(&l);
  tu_rmtree(dir);
  free(dir);
}

/* initdb prints its cause first and then only "removing contents of data
   directory": the first error line is kept, wherever the reads split. */
static void first_error_line_at_every_split(void **st) {
  (void)st;
  static const char out[] =
      "The files belonging to this database system will be owned by user \"postgres\".\n"
      "running bootstrap script ... 2026-12-01 14:14:44.254 UTC [2619] FATAL:  could not write "
      "to file \"base/1/1255\": No space left on device\n"
      "child process exited with exit code 1\n"
      "initdb: error: removing contents of data directory \"/x\"\n";
  char *dir = tu_mkdtemp("tsvc-plog");
  tsvc__plog_t l;
  tsvc__plog_init(&l, dir, "svc", TSVC_PROCESS_LOG_MAX);
  size_t n = strlen(out);
  for (size_t cut = 0; cut <= n; cut++) {
    char line[TSVC_PROC_LINE_LEN];
    tsvc__plog_scan_begin(&l);
    tsvc__plog_output(&l, out, cut);
    tsvc__plog_output(&l, out + cut, n - cut);
    tsvc__plog_scan_end(&l, line, sizeof line);
    assert_string_equal(line,
                        "FATAL:  could not write to file \"base/1/1255\": No space left on device");
  }
  /* initdb's own error, whole; a last line without its line end counts. */
  char line[TSVC_PROC_LINE_LEN];
  tsvc__plog_scan_begin(&l);
  put(&l, "fixing permissions ... ok\ninitdb: error: invalid locale name \"xx\"");
  tsvc__plog_scan_end(&l, line, sizeof line);
  assert_string_equal(line, "initdb: error: invalid locale name \"xx\"");
  /* No error line: the last line said. */
  tsvc__plog_scan_begin(&l);
  put(&l, "one\ntwo\n");
  tsvc__plog_scan_end(&l, line, sizeof line);
  assert_string_equal(line, "two");
  /* An error line longer than the buffer is cut, not overflowed. */
  char longline[1000];
  memset(longline, 'e', sizeof longline);
  memcpy(longline, "FATAL: ", 7);
  longline[sizeof longline - 2] = '\n';
  longline[sizeof longline - 1] = '\0';
  tsvc__plog_scan_begin(&l);
  put(&l, longline);
  tsvc__plog_scan_end(&l, line, sizeof line);
  assert_int_equal(strlen(line), TSVC_PROC_LINE_LEN - 1);
  assert_memory_equal(line, "FATAL: eee", 10);
  /* Output outside a scan is not looked at. */
  put(&l, "FATAL:  not a helper's\n");
  tsvc__plog_scan_begin(&l);
  put(&l, "fine\n");
  tsvc__plog_scan_end(&l, line, sizeof line);
  assert_string_equal(line, "fine");
  tsvc__plog_close(&l);
  tu_rmtree(dir);
  free(dir);
}

/* ---- the recipes ---------------------------------------------------------------- */

static void kinds_and_ports(void **st) {
  (void)st;
  /* (Two configs: `env` would give two postgres services one set of
     variable names.) */
  tsvc_config_t *cfg = load("runtime: process\n"
                            "services:\n"
                            "  db: {image: \"postgres:15\", port: \"6543:5432\"}\n"
                            "  api: {image: \"postgrest/postgrest\", port: 3000}\n"
                            "  cache: {image: \"redis:7\"}\n"
                            "  redis: {image: \"local/kv\", port: 7000}\n"
                            "  tool:\n"
                            "    image: \"postgres:16\"\n"
                            "    process: {command: [\"/bin/true\"]}\n");
  static const struct {
    const char *name;
    kind_t kind;
    int port;
  } want[] = {
      {"postgres", KIND_POSTGRES, 5432}, {"db", KIND_POSTGRES, 6543}, {"api", KIND_COMMAND, 3000},
      {"cache", KIND_REDIS, 6379},       {"redis", KIND_REDIS, 7000}, {"tool", KIND_COMMAND, 0},
  };
  tsvc_config_t *cfg2 = load("runtime: process\n"
                             "services:\n"
                             "  postgres: {image: \"postgres:16\"}\n");
  for (size_t i = 0; i < TSVC_ARRAY_LEN(want); i++) {
    const tsvc_service_conf_t *svc = tsvc_config_service(i == 0 ? cfg2 : cfg, want[i].name);
    assert_non_null(svc);
    kind_t k = tsvc__proc_kind(svc);
    assert_int_equal(k, want[i].kind);
    assert_int_equal(tsvc__proc_port(svc, k), want[i].port);
    assert_int_equal(tsvc_process_has_data(svc), k != KIND_COMMAND);
  }
  tsvc_config_free(cfg);
  tsvc_config_free(cfg2);
}

static void redis_password_and_conf(void **st) {
  (void)st;
  tsvc_config_t *cfg = load(
      "runtime: process\n"
      "services:\n"
      "  a:\n"
      "    image: redis:7\n"
      "    environment: {REDIS_PASSWORD: from-env}\n"
      "    command: [redis-server, --requirepass, from-command]\n"
      "    healthcheck: {command: [redis-cli, -a, from-check, ping]}\n"
      "  b:\n"
      "    image: redis:7\n"
      "    command: [redis-server, --requirepass, from-command]\n"
      "    healthcheck: {command: [redis-cli, -a, from-check, ping]}\n"
      "  c:\n"
      "    image: redis:7\n"
      "    command: [redis-server, --requirepass, from-command]\n"
      "  d: {image: redis:7}\n");
  assert_string_equal(tsvc__redis_password(tsvc_config_service(cfg, "a")), "from-env");
  assert_string_equal(tsvc__redis_password(tsvc_config_service(cfg, "b")), "from-check");
  assert_string_equal(tsvc__redis_password(tsvc_config_service(cfg, "c")), "from-command");
  assert_null(tsvc__redis_password(tsvc_config_service(cfg, "d")));
  tsvc_config_free(cfg);

  tsvc_buf_t b;
  assert_int_equal(tsvc__redis_conf(&b, "/data/my \"redis\"", 6380, "p\"w\\d\n\001"), 0);
  assert_string_equal(b.data, "# Written by tanuki-svc at every start: edits are lost.\n"
                              "bind 127.0.0.1\n"
                              "port 6380\n"
                              "daemonize no\n"
                              "appendonly yes\n"
                              "dir \"/data/my \\\"redis\\\"\"\n"
                              "requirepass \"p\\\"w\\\\d\\n\\x01\"\n");
  tsvc_buf_free(&b);
  assert_int_equal(tsvc__redis_conf(&b, "/d", 6379, NULL), 0);
  assert_null(strstr(b.data, "requirepass"));
  tsvc_buf_free(&b);
  /* A password past the conf's size limit: no conf at all, rather than one
     without its requirepass line. */
  char *huge = malloc(70000);
  assert_non_null(huge);
  memset(huge, 'p', 69999);
  huge[69999] = '\0';
  assert_int_equal(tsvc__redis_conf(&b, "/d", 6379, huge), TSVC_EINVAL);
  assert_null(b.data);
  free(huge);
}

static void postgres_command_lines(void **st) {
  (void)st;
  pg_state_t pg = {0};
  tsvc_strlcpy(pg.bindir, "/usr/lib/postgresql/15/bin", sizeof pg.bindir);
  tsvc_strlcpy(pg.datadir, "/var/lib/tanuki-svc/p-1/postgres", sizeof pg.datadir);
  tsvc_strlcpy(pg.initdir, "/var/lib/tanuki-svc/p-1/postgres.init", sizeof pg.initdir);
  tsvc__argv_t a;
  char s[8192];

  assert_int_equal(tsvc__pg_server_argv(&a, &pg, "/run/tanuki-svc/p-1", 15432), 0);
  joined(&a, s, sizeof s);
  assert_string_equal(s, "/usr/lib/postgresql/15/bin/postgres -D /var/lib/tanuki-svc/p-1/postgres "
                         "-p 15432 -c listen_addresses=127.0.0.1 "
                         "-c unix_socket_directories=/run/tanuki-svc/p-1");

  /* No password: trust, and no --pwfile. */
  assert_int_equal(tsvc__pg_initdb_argv(&a, &pg, "tanuki"), 0);
  joined(&a, s, sizeof s);
  assert_string_equal(s, "/usr/lib/postgresql/15/bin/initdb "
                         "-D /var/lib/tanuki-svc/p-1/postgres.init "
                         "--username=tanuki --auth-local=trust --auth-host=trust "
                         "--encoding=UTF8 --locale=C");
  /* A password (in a file of the private socket directory): scram for both
     kinds of connection. */
  tsvc_strlcpy(pg.pwfile, "/run/tanuki-svc/p-1/postgres.pwfile", sizeof pg.pwfile);
  assert_int_equal(tsvc__pg_initdb_argv(&a, &pg, "tanuki"), 0);
  joined(&a, s, sizeof s);
  assert_string_equal(s, "/usr/lib/postgresql/15/bin/initdb "
                         "-D /var/lib/tanuki-svc/p-1/postgres.init "
                         "--username=tanuki --auth-local=scram-sha-256 "
                         "--auth-host=scram-sha-256 --encoding=UTF8 --locale=C "
                         "--pwfile=/run/tanuki-svc/p-1/postgres.pwfile");

  assert_int_equal(tsvc__pg_single_argv(&a, &pg), 0);
  joined(&a, s, sizeof s);
  assert_string_equal(s, "/usr/lib/postgresql/15/bin/postgres --single -D "
                         "/var/lib/tanuki-svc/p-1/postgres.init -c exit_on_error=on postgres");

  /* Too long for the command line: an error, never a cut argument. */
  char user[3 * PATH_MAX];
  memset(user, 'u', sizeof user - 1);
  user[sizeof user - 1] = '\0';
  assert_int_equal(tsvc__pg_initdb_argv(&a, &pg, user), TSVC_EINVAL);

  tsvc_buf_t b;
  assert_int_equal(tsvc__pg_createdb_sql(&b, "my \"db\""), 0);
  assert_string_equal(b.data, "CREATE DATABASE \"my \"\"db\"\"\";\n");
  tsvc_buf_free(&b);

  tsvc_config_t *cfg = load("runtime: process\n"
                            "services:\n"
                            "  p1: {image: postgres:16}\n"
                            "  p2: {image: postgres:16, environment: {POSTGRES_USER: tanuki}}\n"
                            "  p3:\n"
                            "    image: postgres:16\n"
                            "    environment: {POSTGRES_USER: tanuki, POSTGRES_DB: tanuki_dev}\n");
  assert_string_equal(tsvc__pg_user(tsvc_config_service(cfg, "p1")), "postgres");
  assert_string_equal(tsvc__pg_db(tsvc_config_service(cfg, "p1")), "postgres");
  assert_string_equal(tsvc__pg_user(tsvc_config_service(cfg, "p2")), "tanuki");
  assert_string_equal(tsvc__pg_db(tsvc_config_service(cfg, "p2")), "tanuki");
  assert_string_equal(tsvc__pg_db(tsvc_config_service(cfg, "p3")), "tanuki_dev");
  tsvc_config_free(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(log_rotates_at_a_line_end),
      cmocka_unit_test(log_note_shape),
      cmocka_unit_test(tail_line_is_the_last_printable_line),
      cmocka_unit_test(first_error_line_at_every_split),
      cmocka_unit_test(kinds_and_ports),
      cmocka_unit_test(redis_password_and_conf),
      cmocka_unit_test(postgres_command_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
