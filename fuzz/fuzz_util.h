/*
 * fuzz_util.h: what the fuzz targets share: a cursor over the input that
 * hands out bytes (zero once it is used up), and the failure report.
 *
 * A target reports a broken property with FUZZ_CHECK, which prints what was
 * expected and aborts: libFuzzer then saves the input as a crash.
 */
#ifndef TSVC_FUZZ_UTIL_H
#define TSVC_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                   \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                             \
      fputc('\n', stderr);                                                      \
      abort();                                                                  \
    }                                                                           \
  } while (0)

typedef struct {
  const uint8_t *p;
  size_t n;
} fuzz_in_t;

static inline uint8_t fuzz_u8(fuzz_in_t *in) {
  if (!in->n) return 0;
  in->n--;
  return *in->p++;
}

static inline uint16_t fuzz_u16(fuzz_in_t *in) {
  uint16_t hi = fuzz_u8(in);
  return (uint16_t)(hi << 8 | fuzz_u8(in));
}

/* Up to max bytes (as many as are left) into a new NUL-terminated string;
   its length is the next byte modulo max + 1. Caller frees. */
static inline char *fuzz_str(fuzz_in_t *in, size_t max) {
  size_t len = fuzz_u8(in) % (max + 1);
  if (len > in->n) len = in->n;
  char *s = malloc(len + 1);
  if (!s) abort();
  for (size_t i = 0; i < len; i++) s[i] = (char)in->p[i];
  s[len] = '\0';
  in->p += len;
  in->n -= len;
  return s;
}

#endif
