/*
 * duration.c: Go-style durations ("300ms", "1m30s", "1.5s").
 *
 * The parser follows Go's time.ParseDuration (a sequence of decimal numbers,
 * each with an optional fraction and a unit) with two differences: no sign
 * is accepted, and the result is in milliseconds. As in Go, "0" alone is
 * accepted (it is zero in every unit); any other bare number is refused
 * with a hint, because "5" in a config file is almost always "5s".
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "config/config.h"
#include "tsvc.h"

#define NS_PER_MS 1000000ull

typedef struct {
  const char *name;
  uint64_t ns;
} unit_t;

static const unit_t units[] = {
    {"ns", 1ull},
    {"us", 1000ull},
    {"\xc2\xb5s", 1000ull}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000ull}, /* U+03BC Greek mu */
    {"ms", 1000000ull},
    {"s", 1000000000ull},
    {"m", 60ull * 1000000000ull},
    {"h", 3600ull * 1000000000ull},
};

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* True when s is only digits with at most one dot: a number without unit. */
static bool is_bare_number(const char *s) {
  bool digit = false, dot = false;
  for (; *s; s++) {
    if (is_digit(*s))
      digit = true;
    else if (*s == '.' && !dot)
      dot = true;
    else
      return false;
  }
  return digit;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) TSVC_PRINTF(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return TSVC_EINVAL;
}

int tsvc_duration_parse(const char *s, tsvc_ms_t *out, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!s || !*s) return fail(err, errlen, "empty duration");
  if (s[0] == '-') return fail(err, errlen, "negative duration \"%s\" is not allowed", s);
  if (s[0] == '+') return fail(err, errlen, "invalid duration \"%s\": no sign allowed", s);
  if (strcmp(s, "0") == 0) {
    *out = 0;
    return 0;
  }
  if (is_bare_number(s))
    return fail(err, errlen, "missing unit in duration \"%s\"; did you mean \"%ss\"?", s, s);
  const uint64_t limit = (uint64_t)INT64_MAX;
  uint64_t total = 0;
  const char *p = s;
  while (*p) {
    if (!(is_digit(*p) || *p == '.'))
      return fail(err, errlen, "invalid duration \"%s\"", s);
    /* Integer part. */
    uint64_t v = 0;
    bool pre = false, post = false;
    while (is_digit(*p)) {
      pre = true;
      if (v > (limit - (uint64_t)(*p - '0')) / 10)
        return fail(err, errlen, "duration \"%s\" is too large", s);
      v = v * 10 + (uint64_t)(*p - '0');
      p++;
    }
    /* Fraction: digits past what a uint64 holds are dropped, as in Go. */
    uint64_t f = 0;
    double scale = 1;
    if (*p == '.') {
      p++;
      bool overflow = false;
      while (is_digit(*p)) {
        post = true;
        if (!overflow) {
          if (f > (UINT64_MAX / 10) - 9) {
            overflow = true;
          } else {
            f = f * 10 + (uint64_t)(*p - '0');
            scale *= 10;
          }
        }
        p++;
      }
    }
    if (!pre && !post) return fail(err, errlen, "invalid duration \"%s\"", s);
    /* Unit. */
    size_t ulen = 0;
    while (p[ulen] && !is_digit(p[ulen]) && p[ulen] != '.') ulen++;
    if (ulen == 0) return fail(err, errlen, "missing unit in duration \"%s\"", s);
    const unit_t *u = NULL;
    for (size_t i = 0; i < TSVC_ARRAY_LEN(units); i++)
      if (strlen(units[i].name) == ulen && memcmp(units[i].name, p, ulen) == 0) u = &units[i];
    if (!u)
      return fail(err, errlen,
                  "unknown unit \"%.*s\" in duration \"%s\" (valid units: ns, us, ms, s, m, h)",
                  (int)ulen, p, s);
    p += ulen;
    if (v > limit / u->ns) return fail(err, errlen, "duration \"%s\" is too large", s);
    v *= u->ns;
    if (f > 0) {
      double add = (double)f * ((double)u->ns / scale);
      if (add >= (double)limit) return fail(err, errlen, "duration \"%s\" is too large", s);
      v += (uint64_t)add;
      if (v > limit) return fail(err, errlen, "duration \"%s\" is too large", s);
    }
    total += v;
    if (total > limit) return fail(err, errlen, "duration \"%s\" is too large", s);
  }
  if (total > 0 && total < NS_PER_MS)
    return fail(err, errlen, "duration \"%s\" is below the resolution of 1ms", s);
  *out = (tsvc_ms_t)(total / NS_PER_MS);
  return 0;
}

/*
 * Compact Go style: hours and minutes when non-zero, then seconds with a
 * decimal fraction ("1h30m", "1m30.5s"); below one second, "300ms".
 * Parsing the result gives ms back exactly.
 */
const char *tsvc_duration_format(tsvc_ms_t ms, char *buf, size_t len) {
  if (!buf || len == 0) return buf;
  if (ms < 0) ms = 0;
  if (ms == 0) {
    tsvc_strlcpy(buf, "0s", len);
    return buf;
  }
  if (ms < 1000) {
    snprintf(buf, len, "%lldms", (long long)ms);
    return buf;
  }
  long long h = (long long)(ms / 3600000);
  long long m = (long long)(ms / 60000 % 60);
  long long sec = (long long)(ms / 1000 % 60);
  long long frac = (long long)(ms % 1000);
  char tmp[64];
  size_t n = 0;
  if (h) n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%lldh", h);
  if (m) n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%lldm", m);
  if (sec || frac) {
    n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%lld", sec);
    if (frac) {
      char f[8];
      snprintf(f, sizeof f, "%03lld", frac);
      /* Drop trailing zeros of the fraction: 1.500 -> 1.5. */
      size_t fl = strlen(f);
      while (fl > 0 && f[fl - 1] == '0') f[--fl] = '\0';
      n += (size_t)snprintf(tmp + n, sizeof tmp - n, ".%s", f);
    }
    snprintf(tmp + n, sizeof tmp - n, "s");
  }
  tsvc_strlcpy(buf, tmp, len);
  return buf;
}
