/* test_probe_parse: the probes' protocol parsers, driven without sockets. */
#include <string.h>

#include "probe/http_status.h"
#include "probe/pg_reply.h"
#include "probe/resp.h"
#include "testutil.h"

/* Build a backend message: type, then body of blen bytes. */
static size_t msg(uint8_t *out, char type, const void *body, size_t blen) {
  uint32_t l = (uint32_t)blen + 4;
  out[0] = (uint8_t)type;
  out[1] = (uint8_t)(l >> 24);
  out[2] = (uint8_t)(l >> 16);
  out[3] = (uint8_t)(l >> 8);
  out[4] = (uint8_t)l;
  memcpy(out + 5, body, blen);
  return blen + 5;
}

static const char err57p03[] =
    "SFATAL\0VFATAL\0C57P03\0Mthe database system is shutting down\0Fpostmaster.c\0\0";
static const char err28000[] = "SFATAL\0C28000\0Mrole \"nobody\" does not exist\0\0";

static void pg_auth_ok(void **st) {
  (void)st;
  uint8_t b[64];
  size_t n = msg(b, 'R', "\0\0\0\0", 4);
  tsvc_pg_reply_t r;
  for (size_t i = 0; i < n; i++) { /* every prefix needs more */
    tsvc_pg_classify(b, i, &r);
    assert_int_equal(r.kind, TSVC_PG_NEED_MORE);
  }
  tsvc_pg_classify(b, n, &r);
  assert_int_equal(r.kind, TSVC_PG_AUTH);
  assert_int_equal(r.auth, 0);
  assert_int_equal(r.consumed, n);
}

static void pg_auth_sasl(void **st) {
  (void)st;
  uint8_t b[64];
  size_t n = msg(b, 'R', "\0\0\0\x0aSCRAM-SHA-256\0\0", 4 + 15);
  tsvc_pg_reply_t r;
  tsvc_pg_classify(b, n, &r);
  assert_int_equal(r.kind, TSVC_PG_AUTH);
  assert_int_equal(r.auth, 10);
  /* md5 with its salt */
  n = msg(b, 'R', "\0\0\0\x05salt", 8);
  tsvc_pg_classify(b, n, &r);
  assert_int_equal(r.kind, TSVC_PG_AUTH);
  assert_int_equal(r.auth, 5);
}

static void pg_error_57p03(void **st) {
  (void)st;
  uint8_t b[256];
  size_t n = msg(b, 'E', err57p03, sizeof err57p03 - 1);
  tsvc_pg_reply_t r;
  for (size_t i = 0; i < n; i++) {
    tsvc_pg_classify(b, i, &r);
    assert_int_equal(r.kind, TSVC_PG_NEED_MORE);
  }
  tsvc_pg_classify(b, n, &r);
  assert_int_equal(r.kind, TSVC_PG_ERROR);
  assert_string_equal(r.sqlstate, "57P03");
  assert_string_equal(r.message, "the database system is shutting down");
}

static void pg_error_other_and_notice(void **st) {
  (void)st;
  uint8_t b[256];
  size_t n = msg(b, 'N', "SNOTICE\0C00000\0Mhello\0\0", 23);
  n += msg(b + n, 'E', err28000, sizeof err28000 - 1);
  tsvc_pg_reply_t r;
  tsvc_pg_classify(b, n, &r);
  assert_int_equal(r.kind, TSVC_PG_ERROR);
  assert_string_equal(r.sqlstate, "28000");
  assert_string_equal(r.message, "role \"nobody\" does not exist");
  /* An error without a code. */
  n = msg(b, 'E', "SFATAL\0Mno code\0\0", 17);
  tsvc_pg_classify(b, n, &r);
  assert_int_equal(r.kind, TSVC_PG_ERROR);
  assert_string_equal(r.sqlstate, "");
  assert_string_equal(r.message, "no code");
}

static void pg_protocol(void **st) {
  (void)st;
  tsvc_pg_reply_t r;
  tsvc_pg_classify((const uint8_t *)"HTTP/1.1 400", 12, &r);
  assert_int_equal(r.kind, TSVC_PG_PROTOCOL);
  tsvc_pg_classify((const uint8_t *)"H", 1, &r); /* refused at the first byte */
  assert_int_equal(r.kind, TSVC_PG_PROTOCOL);
  tsvc_pg_classify((const uint8_t *)"-ERR", 4, &r);
  assert_int_equal(r.kind, TSVC_PG_PROTOCOL);
  /* Impossible lengths. */
  tsvc_pg_classify((const uint8_t *)"R\x7f\xff\xff\xff", 5, &r);
  assert_int_equal(r.kind, TSVC_PG_PROTOCOL);
  tsvc_pg_classify((const uint8_t *)"E\0\0\0\x02", 5, &r);
  assert_int_equal(r.kind, TSVC_PG_PROTOCOL);
  /* An authentication request without its code. */
  tsvc_pg_classify((const uint8_t *)"R\0\0\0\x04", 5, &r);
  assert_int_equal(r.kind, TSVC_PG_PROTOCOL);
  tsvc_pg_classify((const uint8_t *)"", 0, &r);
  assert_int_equal(r.kind, TSVC_PG_NEED_MORE);
}

static void pg_scan_after_auth(void **st) {
  (void)st;
  uint8_t b[512];
  size_t n = msg(b, 'S', "server_version\00015.6\0", 20);
  n += msg(b + n, 'K', "\0\0\0\1\0\0\0\2", 8);
  size_t before_z = n;
  n += msg(b + n, 'Z', "I", 1);
  size_t off = 0;
  tsvc_pg_reply_t r;
  assert_int_equal(tsvc_pg_scan_startup(b, before_z + 3, &off, &r), TSVC_PG_SCAN_MORE);
  assert_int_equal(off, before_z);
  assert_int_equal(tsvc_pg_scan_startup(b, n, &off, &r), TSVC_PG_SCAN_READY);
  /* An error after AuthenticationOk: wrong database. */
  n = msg(b, 'S', "a\0b\0", 4);
  n += msg(b + n, 'E', "SFATAL\0C3D000\0Mdatabase \"x\" does not exist\0\0", 44);
  off = 0;
  assert_int_equal(tsvc_pg_scan_startup(b, n, &off, &r), TSVC_PG_SCAN_ERROR);
  assert_string_equal(r.sqlstate, "3D000");
  assert_string_equal(r.message, "database \"x\" does not exist");
  off = 0;
  assert_int_equal(tsvc_pg_scan_startup((const uint8_t *)"\x01garbage", 8, &off, &r),
                   TSVC_PG_SCAN_BROKEN);
}

static void pg_startup_packet(void **st) {
  (void)st;
  uint8_t b[256];
  size_t n = tsvc_pg_startup_packet(b, sizeof b, "tanuki", "tanuki_dev", "app");
  static const char body[] = "user\0tanuki\0database\0tanuki_dev\0application_name\0app\0";
  assert_int_equal(n, 8 + sizeof body); /* sizeof counts the final NUL */
  assert_memory_equal(b, "\0\0\0\x3e\0\x03\0\0", 8);
  assert_memory_equal(b + 8, body, sizeof body);
  assert_int_equal(tsvc_pg_startup_packet(b, 20, "tanuki", "tanuki_dev", "app"), 0);
  assert_int_equal(tsvc_pg_startup_packet(b, sizeof b, "", "db", "app"), 0);
}

static void resp_simple_and_errors(void **st) {
  (void)st;
  char line[64];
  size_t off = 0;
  const char *s = "+PONG\r\n";
  for (size_t i = 0; i < strlen(s); i++) {
    off = 0;
    assert_int_equal(tsvc_resp_read(s, i, &off, line, sizeof line), TSVC_RESP_NEED_MORE);
    assert_int_equal(off, 0);
  }
  assert_int_equal(tsvc_resp_read(s, strlen(s), &off, line, sizeof line), TSVC_RESP_SIMPLE);
  assert_string_equal(line, "PONG");
  assert_int_equal(off, 7);
  /* In order: AUTH's +OK, PING's error, QUIT's +OK. */
  const char *seq = "+OK\r\n-LOADING Redis is loading the dataset in memory\r\n+OK\r\n";
  off = 0;
  assert_int_equal(tsvc_resp_read(seq, strlen(seq), &off, line, sizeof line), TSVC_RESP_SIMPLE);
  assert_string_equal(line, "OK");
  assert_int_equal(tsvc_resp_read(seq, strlen(seq), &off, line, sizeof line), TSVC_RESP_ERROR);
  assert_string_equal(line, "LOADING Redis is loading the dataset in memory");
  assert_int_equal(tsvc_resp_read(seq, strlen(seq), &off, line, sizeof line), TSVC_RESP_SIMPLE);
  assert_int_equal(off, strlen(seq));
  assert_int_equal(tsvc_resp_read(seq, strlen(seq), &off, line, sizeof line),
                   TSVC_RESP_NEED_MORE);
  /* Truncation of a long line into a small buffer. */
  char small[5];
  off = 0;
  assert_int_equal(tsvc_resp_read("-NOAUTH x\r\n", 11, &off, small, sizeof small),
                   TSVC_RESP_ERROR);
  assert_string_equal(small, "NOAU");
}

static void resp_other_and_protocol(void **st) {
  (void)st;
  char line[64];
  size_t off = 0;
  assert_int_equal(tsvc_resp_read(":1\r\n", 4, &off, line, sizeof line), TSVC_RESP_OTHER);
  assert_string_equal(line, ":1");
  off = 0;
  assert_int_equal(tsvc_resp_read("$4\r\nPONG\r\n", 10, &off, line, sizeof line), TSVC_RESP_OTHER);
  assert_string_equal(line, "$4");
  off = 0;
  assert_int_equal(tsvc_resp_read("HTTP/1.1 200 OK\r\n", 17, &off, line, sizeof line),
                   TSVC_RESP_PROTOCOL);
  assert_int_equal(tsvc_resp_read("\x00\x01", 2, &off, line, sizeof line), TSVC_RESP_PROTOCOL);
  assert_int_equal(tsvc_resp_read("+PONG\rX", 7, &off, line, sizeof line), TSVC_RESP_PROTOCOL);
  assert_int_equal(tsvc_resp_read("+PO\nNG\r\n", 8, &off, line, sizeof line), TSVC_RESP_PROTOCOL);
  assert_int_equal(tsvc_resp_read("+P\x01NG\r\n", 7, &off, line, sizeof line), TSVC_RESP_PROTOCOL);
  static char longline[TSVC_RESP_MAX_LINE + 10];
  memset(longline, 'a', sizeof longline);
  longline[0] = '+';
  assert_int_equal(tsvc_resp_read(longline, sizeof longline, &off, line, sizeof line),
                   TSVC_RESP_PROTOCOL);
  assert_int_equal(off, 0);
}

/* Commands go out as arrays of bulk strings; a password with spaces,
   CRLF or a binary-looking byte is one bulk string, counted in bytes. */
static void resp_commands(void **st) {
  (void)st;
  tsvc_buf_t b;
  tsvc_buf_init(&b, 1024);
  const char *auth[] = {"AUTH", "me", "p w\r\n\xff"};
  const char *ping[] = {"PING"};
  assert_int_equal(tsvc_resp_add_command(&b, auth, 3), 0);
  assert_int_equal(tsvc_resp_add_command(&b, ping, 1), 0);
  const char *want = "*3\r\n$4\r\nAUTH\r\n$2\r\nme\r\n$6\r\np w\r\n\xff\r\n*1\r\n$4\r\nPING\r\n";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(b.data, want, b.len);
  tsvc_buf_free(&b);
  /* Past the buffer's maximum: the error, not a cut command. */
  tsvc_buf_init(&b, 8);
  assert_int_not_equal(tsvc_resp_add_command(&b, auth, 3), 0);
  tsvc_buf_free(&b);
}

static void http_status(void **st) {
  (void)st;
  int s = 0;
  assert_int_equal(tsvc_http_status_parse("HTTP/1.1 200 OK\r\n", 17, &s), 1);
  assert_int_equal(s, 200);
  assert_int_equal(tsvc_http_status_parse("HTTP/1.0 503 Service Unavailable\r\nX: y", 38, &s), 1);
  assert_int_equal(s, 503);
  assert_int_equal(tsvc_http_status_parse("HTTP/1.1 204\r\n", 14, &s), 1);
  assert_int_equal(s, 204);
  assert_int_equal(tsvc_http_status_parse("HTTP/1.1 301 Moved\n", 19, &s), 1);
  assert_int_equal(s, 301);
  const char *full = "HTTP/1.1 200 OK\r\n";
  for (size_t i = 0; i < strlen(full); i++)
    assert_int_equal(tsvc_http_status_parse(full, i, &s), 0);
  assert_int_equal(tsvc_http_status_parse("SSH-2.0-OpenSSH\r\n", 17, &s), -1);
  assert_int_equal(tsvc_http_status_parse("S", 1, &s), -1);
  assert_int_equal(tsvc_http_status_parse("HTTP/1.1 2x0 OK\r\n", 17, &s), -1);
  assert_int_equal(tsvc_http_status_parse("HTTP/1.1 200OK\r\n", 16, &s), -1);
  assert_int_equal(tsvc_http_status_parse("HTTP/1.1 200 OK\rX", 17, &s), -1);
  assert_int_equal(tsvc_http_status_parse("+PONG\r\n", 7, &s), -1);
  static char longline[TSVC_HTTP_MAX_STATUS_LINE + 100];
  memset(longline, 'a', sizeof longline);
  memcpy(longline, "HTTP/1.1 200 ", 13);
  assert_int_equal(tsvc_http_status_parse(longline, sizeof longline, &s), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pg_auth_ok),          cmocka_unit_test(pg_auth_sasl),
      cmocka_unit_test(pg_error_57p03),      cmocka_unit_test(pg_error_other_and_notice),
      cmocka_unit_test(pg_protocol),         cmocka_unit_test(pg_scan_after_auth),
      cmocka_unit_test(pg_startup_packet),   cmocka_unit_test(resp_simple_and_errors),
      cmocka_unit_test(resp_other_and_protocol), cmocka_unit_test(resp_commands),
      cmocka_unit_test(http_status),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
