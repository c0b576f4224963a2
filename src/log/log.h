/*
 * log: one line per event, as key=value text or JSON lines.
 *
 *   ts=2026-11-28T04:31:32.123Z level=warn service=postgres state=unhealthy
 *   prev=healthy failures=3/3 restarts=0/5 reason="connection refused"
 *
 * The logger is process-wide (set up once by the program; the library only
 * writes through it). Lines are written whole under a mutex, so any thread
 * may log. Secrets never appear: values of fields whose key looks secret are
 * masked, and in every other value and message secrets are masked where
 * they stand as values (tsvc_mask_text: KEY=VALUE, URL userinfo, -a/-u
 * arguments, environment dumps), the strings registered with
 * tsvc_log_add_secret() included. Paths and names are printed as they are,
 * even when they contain a registered secret.
 */
#ifndef TSVC_LOG_H
#define TSVC_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/util.h"
#include "tsvc.h"

typedef enum {
  TSVC_LOG_DEBUG,
  TSVC_LOG_INFO,
  TSVC_LOG_WARN,
  TSVC_LOG_ERROR,
  TSVC_LOG_OFF
} tsvc_log_level_t;

typedef struct {
  const char *key;
  const char *value; /* NULL fields are skipped */
} tsvc_log_field_t;

/* Where and how to log. f is borrowed (default stderr); json picks JSON
   lines. Safe while other threads log (a line goes whole to the old or the
   new output); the program calls it before it starts any thread. */
void tsvc_log_setup(FILE *f, tsvc_log_level_t min, bool json);

/* Lines for journald (the program found $JOURNAL_STREAM on its stderr):
   no timestamp, and the level as a syslog priority prefix ("<4>" for warn)
   that journald reads and strips. Call at start-up, like tsvc_log_setup. */
void tsvc_log_set_journal(bool on);

/* The level set up (the lowest that is written). */
tsvc_log_level_t tsvc_log_level(void);

/* Parse "debug|info|warn|error|off". Returns 0 or TSVC_EINVAL. */
int tsvc_log_level_parse(const char *s, tsvc_log_level_t *out);
const char *tsvc_log_level_name(tsvc_log_level_t l);

static inline bool tsvc_log_enabled(tsvc_log_level_t l);

/* A value that must never be printed (a password). Copied. Returns 0 or
   TSVC_ENOMEM. Strings shorter than 3 characters are not registered (they
   would mask common text); tsvc_log_clear_secrets() forgets them all. */
int tsvc_log_add_secret(const char *value);
void tsvc_log_clear_secrets(void);

/* Write one line: the time, level, msg (when not NULL) and the fields. */
void tsvc_log_fields(tsvc_log_level_t l, const char *msg,
                     const tsvc_log_field_t *fields, size_t n);

/* A line with only a message: printf format, level checked first. */
void tsvc_log_msg(tsvc_log_level_t l, const char *service, const char *fmt, ...)
    TSVC_PRINTF(3, 4);

#define TSVC_LOG(level, service, ...)                                      \
  do {                                                                     \
    if (tsvc_log_enabled(level)) tsvc_log_msg(level, service, __VA_ARGS__); \
  } while (0)

/* Format into buf the text form of fields (no time, no level), for tests
   and for the events stream. Returns buf. */
const char *tsvc_log_format_text(char *buf, size_t len,
                                 const tsvc_log_field_t *fields, size_t n);

/* Copy src into dst with secrets masked as the log masks them. */
void tsvc_log_scrub(char *dst, size_t len, const char *src);
/* A number that changes whenever the registered secrets do: a text
   scrubbed while it was the same scrubs the same (the scrub is a function
   of the text and the secrets), so a caller may keep the result. */
unsigned tsvc_log_secrets_gen(void);

/* The level, read by every thread before formatting: atomic. */
extern _Atomic int tsvc_log__min;

static inline bool tsvc_log_enabled(tsvc_log_level_t l) {
  return (int)l >= atomic_load_explicit(&tsvc_log__min, memory_order_relaxed);
}

#endif /* TSVC_LOG_H */
