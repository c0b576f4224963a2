/*
 * util: small helpers shared by every module.
 *
 * tsvc_buf_t is a growable byte buffer with a hard maximum size, as curl's
 * dynbuf: input from the network or a file never grows memory without bound.
 */
#ifndef TSVC_UTIL_H
#define TSVC_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TSVC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__) || defined(__clang__)
#define TSVC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TSVC_PRINTF(fmt, args)
#endif

/* strdup that returns NULL for NULL. Caller frees. NULL on out of memory. */
char *tsvc_strdup(const char *s);
char *tsvc_strndup(const char *s, size_t n);

/* snprintf into a new string. Caller frees. NULL on out of memory. */
char *tsvc_asprintf(const char *fmt, ...) TSVC_PRINTF(1, 2);

/* Copy src into dst (size dstlen), always NUL-terminated, truncating.
 * Returns strlen(src). */
size_t tsvc_strlcpy(char *dst, const char *src, size_t dstlen);

/* An executable: name itself when it holds a slash, else the first
   executable name in PATH (a default PATH when unset), into out. */
bool tsvc_find_exec(const char *name, char *out, size_t len);

/* Parse a whole decimal integer in [min, max]; no sign skipping, no trailing
 * text. Returns 0, or -1 when s is not such a number. */
int tsvc_parse_int(const char *s, long min, long max, long *out);

typedef struct {
  char *data;   /* NUL-terminated while len < cap; owned */
  size_t len;
  size_t cap;
  size_t max;   /* hard limit on len */
} tsvc_buf_t;

void tsvc_buf_init(tsvc_buf_t *b, size_t max);
void tsvc_buf_free(tsvc_buf_t *b);
void tsvc_buf_reset(tsvc_buf_t *b);
/* Append n bytes. Returns 0, TSVC_ENOMEM, or TSVC_EINVAL when max would be
 * exceeded (nothing is appended then). */
int tsvc_buf_add(tsvc_buf_t *b, const void *p, size_t n);
int tsvc_buf_addf(tsvc_buf_t *b, const char *fmt, ...) TSVC_PRINTF(2, 3);
int tsvc_buf_vaddf(tsvc_buf_t *b, const char *fmt, va_list ap) TSVC_PRINTF(2, 0);
/* Hand the data to the caller (who frees it) and reset b. */
char *tsvc_buf_steal(tsvc_buf_t *b);

/* Format into a caller's error buffer of errlen bytes (cut to fit);
   nothing when err is NULL or errlen 0. */
void tsvc_errf(char *err, size_t errlen, const char *fmt, ...) TSVC_PRINTF(3, 4);

/* Now in ms: wall-clock time since the epoch (CLOCK_REALTIME), and a
   monotonic time for intervals and deadlines (CLOCK_MONOTONIC, what
   uv_now() and condition variables set to it count in). */
int64_t tsvc_wall_ms(void);
int64_t tsvc_mono_ms(void);

/* FNV-1a of s, 64 bits: for hash tables of names, and stable across
   machines and releases (the project id below relies on that). */
uint64_t tsvc_str_hash(const char *s);

/* The project id of a config: a readable slug (the config directory's name)
 * and a short hash of the config's absolute path, e.g. "examples-1a2b3c4d".
 * Stable for a given path: it names the project's state directories and the
 * tanuki.project label of everything the docker runtime creates. buf holds at
 * least TSVC_PROJECT_ID_MAX bytes. Returns 0 or TSVC_EINVAL. */
#define TSVC_PROJECT_ID_MAX 40
int tsvc_project_id(const char *config_abs_path, char *buf, size_t len);

#endif /* TSVC_UTIL_H */
