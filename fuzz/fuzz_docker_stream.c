/*
 * fuzz_docker_stream: the parsers of what the Docker engine streams
 * (src/docker/stream.c): the stdout/stderr demuxer of logs and exec output,
 * the tail kept of exec output, and the record splitter of the /events
 * stream (tsvc_lines_t, which events.c feeds from libcurl's writes).
 *
 * Input: byte 0 picks the limits (record maximum, tail size), bytes 1..16
 * where the stream is cut into reads, the rest is the stream.
 *
 * Properties:
 *  - demuxer: fed in pieces it delivers exactly what it delivers fed at
 *    once, and both match a plain reference decoder written from the format
 *    (8-byte headers: stream 0-3, three zeros, big-endian length; anything
 *    else at the start is a TTY stream passed through raw); the same
 *    errors (a corrupt header after the first frame, an end inside a
 *    frame);
 *  - tail: holds the last cap bytes of everything added, and the total;
 *  - lines: fed in pieces, calls back with every complete record that is
 *    not empty (one trailing CR removed) and not longer than its maximum,
 *    in order, and counts the longer ones as dropped, as a reference split
 *    of the whole stream does.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "docker/stream.h"
#include "fuzz_util.h"
#include "tsvc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a parser delivered: pieces of one stream joined, one record per
   stream change (or per line). */
typedef struct {
  tsvc_buf_t bytes;
  int stream[4096];
  size_t end[4096];
  size_t n;
  bool overflow;
} out_t;

static void out_init(out_t *o) {
  tsvc_buf_init(&o->bytes, 1u << 20);
  o->n = 0;
  o->overflow = false;
}

/* Append; same stream as the last record: joined (demux pieces). */
static void out_add(out_t *o, int stream, const char *p, size_t k, bool join) {
  if (tsvc_buf_add(&o->bytes, p, k)) abort();
  if (join && o->n && o->stream[o->n - 1] == stream) {
    o->end[o->n - 1] = o->bytes.len;
    return;
  }
  if (join && k == 0) return;
  if (o->n == 4096) {
    o->overflow = true;
    return;
  }
  o->stream[o->n] = stream;
  o->end[o->n++] = o->bytes.len;
}

static bool out_equal(const out_t *a, const out_t *b) {
  if (a->overflow || b->overflow) return a->bytes.len == b->bytes.len &&
      (!a->bytes.len || memcmp(a->bytes.data, b->bytes.data, a->bytes.len) == 0);
  return a->n == b->n && a->bytes.len == b->bytes.len &&
         (!a->bytes.len || memcmp(a->bytes.data, b->bytes.data, a->bytes.len) == 0) &&
         memcmp(a->stream, b->stream, a->n * sizeof a->stream[0]) == 0 &&
         memcmp(a->end, b->end, a->n * sizeof a->end[0]) == 0;
}

static int demux_sink(void *ctx, int stream, const char *p, size_t n) {
  FUZZ_CHECK(stream >= 0 && stream <= 3, "stream id %d", stream);
  FUZZ_CHECK(n > 0, "an empty piece");
  out_add(ctx, stream, p, n, true);
  return 0;
}

/* Feed in pieces of sizes cuts[i] + 1 (then the rest at once). */
static int demux(const char *s, size_t n, const uint8_t *cuts, size_t ncuts, out_t *o) {
  tsvc_demux_t m;
  tsvc_demux_init(&m);
  out_init(o);
  size_t at = 0;
  for (size_t i = 0; at < n; i++) {
    size_t k = i < ncuts ? (size_t)cuts[i] + 1 : n - at;
    if (k > n - at) k = n - at;
    int rc = tsvc_demux_feed(&m, s + at, k, demux_sink, o);
    if (rc) return rc;
    at += k;
  }
  return tsvc_demux_end(&m, demux_sink, o);
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool header_ok(const uint8_t *p) { return p[0] <= 3 && !p[1] && !p[2] && !p[3]; }

/* The format, decoded the plain way. */
static int demux_reference(const uint8_t *s, size_t n, out_t *o) {
  out_init(o);
  if (n < 8 || !header_ok(s)) {
    out_add(o, TSVC_DEMUX_STDOUT, (const char *)s, n, true);
    return 0;
  }
  size_t at = 0;
  while (at < n) {
    /* A header, whole or in part: each of its first 4 bytes must fit. */
    for (size_t i = 0; i < 4 && at + i < n; i++)
      if (i == 0 ? s[at] > 3 : s[at + i] != 0) return TSVC_EIO;
    if (n - at < 8) return TSVC_EIO; /* ends inside a header */
    size_t len = be32(s + at + 4);
    int stream = s[at];
    at += 8;
    size_t k = len < n - at ? len : n - at;
    out_add(o, stream, (const char *)s + at, k, true);
    at += k;
    if (k < len) return TSVC_EIO; /* ends inside a frame */
  }
  return 0;
}

static void check_demux(const uint8_t *s, size_t n, const uint8_t *cuts, size_t ncuts) {
  static out_t once, pieces, ref;
  int rc1 = demux((const char *)s, n, NULL, 0, &once);
  int rc2 = demux((const char *)s, n, cuts, ncuts, &pieces);
  int rc3 = demux_reference(s, n, &ref);
  FUZZ_CHECK(rc1 == rc2 && rc1 == rc3, "at once: %d, in pieces: %d, reference: %d", rc1, rc2,
             rc3);
  FUZZ_CHECK(out_equal(&once, &pieces), "pieces deliver other bytes (%zu/%zu)",
             once.bytes.len, pieces.bytes.len);
  FUZZ_CHECK(out_equal(&once, &ref), "not what the format says (%zu/%zu bytes, %zu/%zu runs)",
             once.bytes.len, ref.bytes.len, once.n, ref.n);
  tsvc_buf_free(&once.bytes);
  tsvc_buf_free(&pieces.bytes);
  tsvc_buf_free(&ref.bytes);
}

static void check_tail(const uint8_t *s, size_t n, const uint8_t *cuts, size_t ncuts,
                       size_t cap) {
  tsvc_tail_t t;
  if (tsvc_tail_init(&t, cap)) abort();
  size_t at = 0;
  for (size_t i = 0; at < n; i++) {
    size_t k = i < ncuts ? (size_t)cuts[i] : n - at; /* 0: an empty add */
    if (k > n - at) k = n - at;
    tsvc_tail_add(&t, (const char *)s + at, k);
    at += k;
  }
  size_t want = n < cap ? n : cap;
  FUZZ_CHECK(t.total == n && t.len == want, "total %zu len %zu for %zu bytes, cap %zu", t.total,
             t.len, n, cap);
  FUZZ_CHECK(memcmp(t.buf, s + n - want, want) == 0 && t.buf[want] == '\0', "not the last bytes");
  FUZZ_CHECK(tsvc_tail_truncated(&t) == (n > cap), "truncated flag");
  tsvc_tail_free(&t);
}

static int line_cb(void *ctx, const char *line, size_t n) {
  FUZZ_CHECK(n > 0, "an empty record");
  FUZZ_CHECK(!memchr(line, '\n', n), "a newline in a record");
  out_add(ctx, 0, line, n, false);
  return 0;
}

static void check_lines(const uint8_t *s, size_t n, const uint8_t *cuts, size_t ncuts,
                        size_t max) {
  static out_t got, ref;
  tsvc_lines_t l;
  tsvc_lines_init(&l, max);
  out_init(&got);
  size_t at = 0;
  for (size_t i = 0; at < n; i++) {
    size_t k = i < ncuts ? (size_t)cuts[i] + 1 : n - at;
    if (k > n - at) k = n - at;
    FUZZ_CHECK(tsvc_lines_feed(&l, (const char *)s + at, k, line_cb, &got) == 0, "feed failed");
    at += k;
  }
  /* The reference: split the whole stream at '\n'. */
  out_init(&ref);
  size_t dropped = 0, start = 0;
  for (size_t i = 0; i <= n; i++) {
    bool complete = i < n && s[i] == '\n';
    if (i < n && !complete) continue;
    size_t len = i - start;
    if (len > max) {
      dropped++; /* complete or not: dropped as soon as it is too long */
    } else if (complete) {
      if (len && s[i - 1] == '\r') len--;
      if (len) out_add(&ref, 0, (const char *)s + start, len, false);
    }
    start = i + 1;
  }
  FUZZ_CHECK(l.dropped == dropped, "dropped %zu, expected %zu (max %zu)", l.dropped, dropped, max);
  FUZZ_CHECK(out_equal(&got, &ref), "records differ: %zu/%zu records, %zu/%zu bytes (max %zu)",
             got.n, ref.n, got.bytes.len, ref.bytes.len, max);
  tsvc_lines_free(&l);
  tsvc_buf_free(&got.bytes);
  tsvc_buf_free(&ref.bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const size_t maxes[] = {1, 2, 7, 16, 100, 64u << 10};
  size_t max = maxes[data[0] % 6], cap = 1 + (data[0] >> 3);
  size_t ncuts = size - 1 < 16 ? size - 1 : 16;
  const uint8_t *cuts = data + 1, *s = data + 1 + ncuts;
  size_t n = size - 1 - ncuts;
  check_demux(s, n, cuts, ncuts);
  check_tail(s, n, cuts, ncuts, cap);
  check_lines(s, n, cuts, ncuts, max);
  return 0;
}
