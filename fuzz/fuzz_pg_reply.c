/*
 * fuzz_pg_reply: the postgres probe's parser of the server's answers
 * (src/probe/pg_reply.c), as bytes arrive from a peer that may be anything.
 *
 * Input: the bytes the server sends (the first byte also picks where reads
 * are cut, and the message buffer size for the error fields).
 *
 * Properties:
 *  - tsvc_pg_classify: an answer decided on a prefix never changes with
 *    more bytes (the probe stops reading at the first verdict), and once
 *    the bytes it consumed are in, every longer prefix gives that verdict;
 *    consumed is within the input; sqlstate is "" or five bytes; messages
 *    are terminated inside their buffers;
 *  - tsvc_pg_scan_startup fed in pieces (its offset kept between reads, as
 *    the probe does) ends as when fed everything at once, and its offset
 *    only moves forward within the input;
 *  - tsvc_pg_error_fields never writes past msglen;
 *  - tsvc_pg_startup_packet builds a packet whose length word and pairs
 *    read back, or refuses (0).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "probe/pg_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const tsvc_pg_reply_t *r, size_t len) {
  FUZZ_CHECK(r->kind >= TSVC_PG_NEED_MORE && r->kind <= TSVC_PG_PROTOCOL, "kind %d", r->kind);
  FUZZ_CHECK(memchr(r->message, 0, sizeof r->message), "message not terminated");
  FUZZ_CHECK(strlen(r->sqlstate) == 0 || strlen(r->sqlstate) == 5, "sqlstate '%s'", r->sqlstate);
  FUZZ_CHECK(r->consumed <= len, "consumed %zu of %zu", r->consumed, len);
  if (r->kind == TSVC_PG_AUTH || r->kind == TSVC_PG_ERROR)
    FUZZ_CHECK(r->consumed >= 5, "a verdict on %zu bytes", r->consumed);
}

static bool same_reply(const tsvc_pg_reply_t *a, const tsvc_pg_reply_t *b) {
  return a->kind == b->kind && a->auth == b->auth && a->consumed == b->consumed &&
         strcmp(a->sqlstate, b->sqlstate) == 0 && strcmp(a->message, b->message) == 0;
}

static void classify(const uint8_t *data, size_t size) {
  tsvc_pg_reply_t full, part;
  tsvc_pg_classify(data, size, &full);
  check_reply(&full, size);
  /* Every prefix up to 64 bytes, then 64 spread over the rest. */
  size_t step = size > 64 ? (size - 64) / 64 + 1 : 1;
  for (size_t n = 0; n < size; n += n < 64 ? 1 : step) {
    tsvc_pg_classify(data, n, &part);
    check_reply(&part, n);
    if (part.kind != TSVC_PG_NEED_MORE)
      FUZZ_CHECK(same_reply(&part, &full), "%zu bytes gave kind %d (%s), %zu bytes kind %d (%s)",
                 n, part.kind, part.message, size, full.kind, full.message);
    if (full.kind != TSVC_PG_NEED_MORE && full.kind != TSVC_PG_PROTOCOL && n >= full.consumed)
      FUZZ_CHECK(same_reply(&part, &full), "decided at %zu bytes, but not with %zu",
                 full.consumed, n);
  }
}

static int scan(const uint8_t *data, size_t size, const uint8_t *cuts, size_t ncuts,
                size_t *off, tsvc_pg_reply_t *out) {
  int rc = TSVC_PG_SCAN_MORE;
  size_t have = 0;
  *off = 0;
  memset(out, 0, sizeof *out);
  for (size_t i = 0; rc == TSVC_PG_SCAN_MORE && have < size; i++) {
    size_t k = i < ncuts ? (size_t)cuts[i] + 1 : size - have;
    have = have + k > size ? size : have + k;
    size_t before = *off;
    rc = tsvc_pg_scan_startup(data, have, off, out);
    FUZZ_CHECK(*off >= before && *off <= have, "offset %zu -> %zu with %zu bytes", before, *off,
               have);
  }
  return rc;
}

static void scan_startup(const uint8_t *data, size_t size, const uint8_t *cuts, size_t ncuts) {
  size_t off1, off2;
  tsvc_pg_reply_t r1, r2;
  int rc1 = scan(data, size, NULL, 0, &off1, &r1);
  int rc2 = scan(data, size, cuts, ncuts, &off2, &r2);
  FUZZ_CHECK(rc1 == rc2, "at once: %d, in pieces: %d", rc1, rc2);
  if (rc1 == TSVC_PG_SCAN_ERROR) {
    FUZZ_CHECK(same_reply(&r1, &r2) && r1.kind == TSVC_PG_ERROR, "errors differ: %s / %s",
               r1.message, r2.message);
    check_reply(&r1, size);
  }
  FUZZ_CHECK(off1 == off2, "offsets %zu / %zu", off1, off2);
}

static void error_fields(const uint8_t *data, size_t size, size_t msglen) {
  char sqlstate[6];
  char *message = malloc(msglen ? msglen : 1); /* exactly msglen: ASan sees any overrun */
  if (!message) abort();
  tsvc_pg_error_fields(data, size, sqlstate, message, msglen);
  FUZZ_CHECK(strlen(sqlstate) == 0 || strlen(sqlstate) == 5, "sqlstate '%s'", sqlstate);
  if (msglen) FUZZ_CHECK(memchr(message, 0, msglen), "message not terminated");
  free(message);
}

static void startup_packet(const uint8_t *data, size_t size, size_t cap) {
  /* user, database, application: the input's first three NUL-ended strings */
  char *s = malloc(size + 4);
  if (!s) abort();
  memcpy(s, data, size);
  memset(s + size, 0, 4);
  /* Four NULs after the input: the three strings are there, maybe empty. */
  const char *user = s, *db = user + strlen(user) + 1, *app = db + strlen(db) + 1;
  uint8_t *buf = malloc(cap ? cap : 1);
  if (!buf) abort();
  size_t n = tsvc_pg_startup_packet(buf, cap, user, db, app);
  if (n) {
    FUZZ_CHECK(n <= cap && n >= 9, "packet of %zu bytes in %zu", n, cap);
    uint32_t len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    FUZZ_CHECK(len == n, "length word %u for %zu bytes", len, n);
    FUZZ_CHECK(buf[n - 1] == 0 && buf[n - 2] == 0, "not ended by an empty key");
    const char *p = (const char *)buf + 8;
    FUZZ_CHECK(strcmp(p, "user") == 0 && strcmp(p + 5, user) == 0, "user is not %s", user);
  } else {
    FUZZ_CHECK(!*user || !*db || !*app || 8 + 5 + 9 + 17 + strlen(user) + 1 + strlen(db) + 1 +
                                                  strlen(app) + 1 + 1 > cap,
               "refused a packet that fits");
  }
  free(buf);
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  classify(data, size);
  /* Read sizes for the scan: taken from the input's own bytes. */
  scan_startup(data, size, data, size < 16 ? size : 16);
  size_t msglen = size ? data[0] % 8 : 0; /* small buffers, where truncation happens */
  error_fields(data, size, msglen);
  error_fields(data, size, 200);
  startup_packet(data, size, size ? (size_t)data[size - 1] * 2 : 0);
  return 0;
}
