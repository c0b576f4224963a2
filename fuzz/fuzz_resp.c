/*
 * fuzz_resp: the redis probe's reader of RESP reply lines
 * (src/probe/resp.c), on whatever a peer sends.
 *
 * Input: the bytes received (their number also picks a small line buffer,
 * where lines are cut).
 *
 * Properties, reading line after line as the probe does:
 *  - a complete line moves the offset forward, past its CRLF, within the
 *    input; NEED_MORE and PROTOCOL leave it alone;
 *  - the copied line is terminated inside its buffer; a simple string or
 *    an error holds no CR, LF or control byte; OTHER keeps its type byte;
 *  - a line decided on a prefix is decided the same (kind, text, offset)
 *    with the whole input, and reading a prefix never gives a verdict the
 *    whole input does not.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "probe/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_READS 64

typedef struct {
  tsvc_resp_kind_t kind[MAX_READS];
  char line[MAX_READS][TSVC_RESP_MAX_LINE + 8];
  size_t off[MAX_READS];
  int n;
} reads_t;

/* Read lines until one is not complete (or MAX_READS). */
static void read_all(const char *buf, size_t len, size_t linelen, reads_t *r) {
  size_t off = 0;
  char *line = malloc(linelen ? linelen : 1); /* exactly linelen: ASan sees overruns */
  if (!line) abort();
  r->n = 0;
  while (r->n < MAX_READS) {
    size_t before = off;
    tsvc_resp_kind_t k = tsvc_resp_read(buf, len, &off, line, linelen);
    FUZZ_CHECK(k >= TSVC_RESP_NEED_MORE && k <= TSVC_RESP_PROTOCOL, "kind %d", k);
    if (linelen) FUZZ_CHECK(memchr(line, 0, linelen), "line not terminated");
    r->kind[r->n] = k;
    r->off[r->n] = off;
    r->line[r->n][0] = '\0';
    if (linelen) memcpy(r->line[r->n], line, strlen(line) + 1);
    r->n++;
    if (k == TSVC_RESP_NEED_MORE || k == TSVC_RESP_PROTOCOL) {
      FUZZ_CHECK(off == before, "offset moved from %zu to %zu on kind %d", before, off, k);
      break;
    }
    FUZZ_CHECK(off > before + 2 && off <= len, "offset %zu -> %zu of %zu", before, off, len);
    FUZZ_CHECK(buf[off - 2] == '\r' && buf[off - 1] == '\n', "not after a CRLF at %zu", off);
    FUZZ_CHECK(buf[before] != '+' && buf[before] != '-' ? k == TSVC_RESP_OTHER
                                                        : k != TSVC_RESP_OTHER,
               "kind %d for type byte 0x%02x", k, (unsigned char)buf[before]);
    for (const char *p = line; linelen && *p; p++)
      FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in a line",
                 (unsigned char)*p);
    if (k == TSVC_RESP_OTHER && linelen > 1)
      FUZZ_CHECK(line[0] == buf[before], "type byte not kept");
  }
  free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  static reads_t full, part;
  /* A small line buffer (the size picked by the input's length), where
     lines are cut, then one that holds any line, for the comparisons. */
  static const size_t small[] = {0, 1, 2, 5, 64};
  read_all(buf, size, small[size % 5], &full);
  size_t linelen = TSVC_RESP_MAX_LINE + 8;
  read_all(buf, size, linelen, &full);
  size_t step = size > 64 ? (size - 64) / 32 + 1 : 1;
  for (size_t n = 0; n < size; n += n < 64 ? 1 : step) {
    read_all(buf, n, linelen, &part);
    for (int i = 0; i < part.n; i++) {
      FUZZ_CHECK(i < full.n, "a prefix of %zu bytes read more lines", n);
      bool last = i == part.n - 1;
      if (last && part.kind[i] == TSVC_RESP_NEED_MORE) break;
      FUZZ_CHECK(part.kind[i] == full.kind[i] && part.off[i] == full.off[i] &&
                     strcmp(part.line[i], full.line[i]) == 0,
                 "read %d: %zu bytes give kind %d '%s', %zu bytes kind %d '%s'", i, n,
                 part.kind[i], part.line[i], size, full.kind[i], full.line[i]);
    }
  }
  return 0;
}
