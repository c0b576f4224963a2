/* util.c: see util.h. */
#include "common/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tsvc.h"

char *tsvc_strdup(const char *s) { return s ? strdup(s) : NULL; }

char *tsvc_strndup(const char *s, size_t n) { return s ? strndup(s, n) : NULL; }

char *tsvc_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *out = NULL;
  if (vasprintf(&out, fmt, ap) < 0) out = NULL;
  va_end(ap);
  return out;
}

size_t tsvc_strlcpy(char *dst, const char *src, size_t dstlen) {
  size_t n = strlen(src);
  if (dstlen > 0) {
    size_t c = n < dstlen - 1 ? n : dstlen - 1;
    memcpy(dst, src, c);
    dst[c] = '\0';
  }
  return n;
}

int tsvc_parse_int(const char *s, long min, long max, long *out) {
  if (!s || !*s) return -1;
  const char *p = s;
  if (*p == '-') p++;
  if (*p < '0' || *p > '9') return -1;
  errno = 0;
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (errno || *end != '\0' || v < min || v > max) return -1;
  *out = v;
  return 0;
}

void tsvc_buf_init(tsvc_buf_t *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void tsvc_buf_free(tsvc_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void tsvc_buf_reset(tsvc_buf_t *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

int tsvc_buf_add(tsvc_buf_t *b, const void *p, size_t n) {
  if (n > b->max - b->len) return TSVC_EINVAL;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) cap *= 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *d = realloc(b->data, cap);
    if (!d) return TSVC_ENOMEM;
    b->data = d;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int tsvc_buf_vaddf(tsvc_buf_t *b, const char *fmt, va_list ap) {
  va_list cp;
  va_copy(cp, ap);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, cp);
  va_end(cp);
  if (n < 0) return TSVC_EINVAL;
  if ((size_t)n < sizeof small) return tsvc_buf_add(b, small, (size_t)n);
  char *big = malloc((size_t)n + 1);
  if (!big) return TSVC_ENOMEM;
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  int rc = tsvc_buf_add(b, big, (size_t)n);
  free(big);
  return rc;
}

int tsvc_buf_addf(tsvc_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = tsvc_buf_vaddf(b, fmt, ap);
  va_end(ap);
  return rc;
}

char *tsvc_buf_steal(tsvc_buf_t *b) {
  char *d = b->data;
  if (!d) d = calloc(1, 1);
  b->data = NULL;
  b->len = b->cap = 0;
  return d;
}

void tsvc_errf(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int64_t tsvc_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tsvc_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a, 64 bits: stable across machines and releases, which the project id
   needs (it names directories and container labels that outlive a build).
   See util.h. */
uint64_t tsvc_str_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

int tsvc_project_id(const char *config_abs_path, char *buf, size_t len) {
  if (!config_abs_path || !buf || len < TSVC_PROJECT_ID_MAX) return TSVC_EINVAL;
  /* The slug: the config directory's last component, lowercased, runs of
     anything but [a-z0-9] turned into one '-', at most 24 characters. */
  const char *end = strrchr(config_abs_path, '/');
  const char *dir_end = end ? end : config_abs_path;
  const char *dir_start = dir_end;
  while (dir_start > config_abs_path && dir_start[-1] != '/') dir_start--;
  size_t n = 0;
  bool dash = false;
  for (const char *p = dir_start; p < dir_end && n < 24; p++) {
    char c = *p;
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      if (dash && n > 0) buf[n++] = '-';
      if (n < 24) buf[n++] = c;
      dash = false;
    } else {
      dash = true;
    }
  }
  if (n == 0) {
    memcpy(buf, "project", 7);
    n = 7;
  }
  snprintf(buf + n, len - n, "-%08x", (unsigned)(tsvc_str_hash(config_abs_path) & 0xffffffffu));
  return 0;
}

/* An executable: name itself when it holds a slash, else found in PATH. */
bool tsvc_find_exec(const char *name, char *out, size_t len) {
  if (strchr(name, '/')) {
    tsvc_strlcpy(out, name, len);
    return access(name, X_OK) == 0;
  }
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
  for (const char *s = path; *s;) {
    const char *e = strchr(s, ':');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n > 0) {
      snprintf(out, len, "%.*s/%s", (int)n, s, name);
      if (access(out, X_OK) == 0) return true;
    }
    if (!e) break;
    s = e + 1;
  }
  return false;
}
