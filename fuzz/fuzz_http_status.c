/*
 * fuzz_http_status: the http probe's status line parser
 * (src/probe/http_status.c), on whatever a peer sends.
 *
 * Input: the bytes received.
 *
 * Properties:
 *  - the result is 1 (with a status of 100..999 read from "HTTP/d.d ddd"
 *    at the start), 0 or -1;
 *  - incremental: every prefix gives 0 or the whole input's result (and
 *    status); once a prefix is decided, every longer one is decided the
 *    same (garbage is refused at its first byte, as the header says);
 *  - a line longer than TSVC_HTTP_MAX_STATUS_LINE is never accepted.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "probe/http_status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 0 to 64 one by one, then by step, stopping at limit on the way. */
static size_t next_prefix(size_t n, size_t step, size_t limit) {
  if (n < 64) return n + 1;
  if (n < limit && n + step > limit) return limit;
  return n + step;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  int full_status = -1;
  int full = tsvc_http_status_parse(buf, size, &full_status);
  FUZZ_CHECK(full >= -1 && full <= 1, "result %d", full);
  if (full == 1) {
    FUZZ_CHECK(size >= 13 && memcmp(buf, "HTTP/", 5) == 0, "accepted without HTTP/");
    FUZZ_CHECK(full_status >= 0 && full_status <= 999, "status %d", full_status);
    int want = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    FUZZ_CHECK(full_status == want, "status %d for %.12s", full_status, buf);
    const char *eol = memchr(buf, '\n', size);
    const char *cr = memchr(buf, '\r', size);
    if (cr && (!eol || cr < eol)) eol = cr;
    FUZZ_CHECK(eol && (size_t)(eol - buf) <= TSVC_HTTP_MAX_STATUS_LINE,
               "a line of %zu bytes accepted", eol ? (size_t)(eol - buf) : size);
  }
  int decided_at = -1, decided = 0;
  /* Every prefix of up to 64 bytes, then 64 spread over the rest, and the
     longest a status line may be (a verdict must have come by then). */
  size_t limit = TSVC_HTTP_MAX_STATUS_LINE + 2, step = size > 64 ? (size - 64) / 64 + 1 : 1;
  for (size_t n = 0; n <= size; n = next_prefix(n, step, limit)) {
    int status = -1;
    int r = tsvc_http_status_parse(buf, n, &status);
    FUZZ_CHECK(r == 0 || r == full, "%zu bytes: %d, %zu bytes: %d", n, r, size, full);
    if (r == 1) FUZZ_CHECK(status == full_status, "status %d then %d", status, full_status);
    if (decided_at >= 0)
      FUZZ_CHECK(r == decided, "decided %d at %d bytes, %d at %zu", decided, decided_at, r, n);
    else if (r != 0)
      decided_at = (int)n, decided = r;
    FUZZ_CHECK(n <= limit || r != 0, "still undecided after %zu bytes", n);
  }
  return 0;
}
