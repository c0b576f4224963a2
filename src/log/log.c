/* log.c: see log.h. */
#include "log/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"

_Atomic int tsvc_log__min = TSVC_LOG_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER; /* what follows */
static FILE *log_out;
static bool log_json;
static bool log_journal;
static char **secrets;
static size_t nsecrets;
/* Changed with the secrets (tsvc_log_secrets_gen). */
static _Atomic unsigned secrets_gen;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void tsvc_log_setup(FILE *f, tsvc_log_level_t min, bool json) {
  pthread_mutex_lock(&log_mu);
  log_out = f;
  log_json = json;
  pthread_mutex_unlock(&log_mu);
  atomic_store_explicit(&tsvc_log__min, (int)min, memory_order_relaxed);
}

void tsvc_log_set_journal(bool on) {
  pthread_mutex_lock(&log_mu);
  log_journal = on;
  pthread_mutex_unlock(&log_mu);
}

tsvc_log_level_t tsvc_log_level(void) {
  return (tsvc_log_level_t)atomic_load_explicit(&tsvc_log__min, memory_order_relaxed);
}

/* The syslog priority of a level (sd-daemon(3)'s "<N>" prefixes). */
static int journal_priority(tsvc_log_level_t l) {
  switch (l) {
  case TSVC_LOG_DEBUG: return 7;
  case TSVC_LOG_INFO: return 6;
  case TSVC_LOG_WARN: return 4;
  default: return 3;
  }
}

int tsvc_log_level_parse(const char *s, tsvc_log_level_t *out) {
  for (size_t i = 0; i < TSVC_ARRAY_LEN(level_names); i++)
    if (s && strcmp(s, level_names[i]) == 0) {
      *out = (tsvc_log_level_t)i;
      return 0;
    }
  return TSVC_EINVAL;
}

const char *tsvc_log_level_name(tsvc_log_level_t l) {
  return (unsigned)l < TSVC_ARRAY_LEN(level_names) ? level_names[l] : "invalid";
}

int tsvc_log_add_secret(const char *value) {
  if (!value || strlen(value) < 3) return 0;
  pthread_mutex_lock(&log_mu);
  int rc = 0;
  for (size_t i = 0; i < nsecrets; i++)
    if (strcmp(secrets[i], value) == 0) goto out;
  char **v = realloc(secrets, (nsecrets + 1) * sizeof *v);
  if (!v) {
    rc = TSVC_ENOMEM;
    goto out;
  }
  secrets = v;
  if (!(secrets[nsecrets] = strdup(value))) {
    rc = TSVC_ENOMEM;
    goto out;
  }
  nsecrets++;
  atomic_fetch_add_explicit(&secrets_gen, 1, memory_order_relaxed);
out:
  pthread_mutex_unlock(&log_mu);
  return rc;
}

void tsvc_log_clear_secrets(void) {
  pthread_mutex_lock(&log_mu);
  for (size_t i = 0; i < nsecrets; i++) free(secrets[i]);
  free(secrets);
  secrets = NULL;
  nsecrets = 0;
  atomic_fetch_add_explicit(&secrets_gen, 1, memory_order_relaxed);
  pthread_mutex_unlock(&log_mu);
}

unsigned tsvc_log_secrets_gen(void) {
  return atomic_load_explicit(&secrets_gen, memory_order_relaxed);
}

/* Mask the registered secrets where they stand as values ("password=pw",
   "redis://:pw@host", "-a pw", "AUTH pw"), and values of secret keys
   anywhere; a secret that is part of a path or a name is not masked
   (".../examples/.tanuki/tanuki-svc.sock" with the password "tanuki"): a
   name is not the secret, and masking it makes messages unreadable.
   Called with log_mu held. */
static void scrub_locked(char *dst, size_t len, const char *src) {
  if (len == 0) return;
  if (tsvc_mask_text(dst, len, src, (const char *const *)secrets, nsecrets) != 0)
    tsvc_strlcpy(dst, "(message withheld: out of memory while masking secrets)", len);
}

void tsvc_log_scrub(char *dst, size_t len, const char *src) {
  pthread_mutex_lock(&log_mu);
  scrub_locked(dst, len, src);
  pthread_mutex_unlock(&log_mu);
}

static bool needs_quotes(const char *v) {
  if (!*v) return true;
  for (const char *p = v; *p; p++)
    if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p >= 0x7f)
      return true;
  return false;
}

static void add_text_value(tsvc_buf_t *b, const char *v) {
  if (!needs_quotes(v)) {
    tsvc_buf_add(b, v, strlen(v));
    return;
  }
  tsvc_buf_add(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p == '"' || *p == '\\') tsvc_buf_addf(b, "\\%c", *p);
    else if (*p == '\n') tsvc_buf_add(b, "\\n", 2);
    else if (*p == '\t') tsvc_buf_add(b, "\\t", 2);
    else if (*p < ' ' || *p == 0x7f) tsvc_buf_addf(b, "\\x%02x", *p);
    else tsvc_buf_add(b, p, 1);
  }
  tsvc_buf_add(b, "\"", 1);
}

/* The value to print for a field: masked when the key looks secret, else
   scrubbed of registered secrets. Called with log_mu held. */
static const char *field_value(const tsvc_log_field_t *f, char *tmp, size_t len) {
  if (tsvc_is_secret_key(f->key)) return "********";
  scrub_locked(tmp, len, f->value);
  return tmp;
}

static void format_text_locked(tsvc_buf_t *b, const tsvc_log_field_t *fields, size_t n) {
  char tmp[1024];
  bool first = b->len == 0;
  for (size_t i = 0; i < n; i++) {
    if (!fields[i].value) continue;
    if (!first) tsvc_buf_add(b, " ", 1);
    first = false;
    tsvc_buf_addf(b, "%s=", fields[i].key);
    add_text_value(b, field_value(&fields[i], tmp, sizeof tmp));
  }
}

const char *tsvc_log_format_text(char *buf, size_t len, const tsvc_log_field_t *fields,
                                 size_t n) {
  tsvc_buf_t b;
  tsvc_buf_init(&b, 64 * 1024);
  pthread_mutex_lock(&log_mu);
  format_text_locked(&b, fields, n);
  pthread_mutex_unlock(&log_mu);
  tsvc_strlcpy(buf, b.data ? b.data : "", len);
  tsvc_buf_free(&b);
  return buf;
}

static void now_rfc3339(char *buf, size_t len) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void tsvc_log_fields(tsvc_log_level_t l, const char *msg, const tsvc_log_field_t *fields,
                     size_t n) {
  if (!tsvc_log_enabled(l)) return;
  char ts[40], tmp[1024];
  now_rfc3339(ts, sizeof ts);
  tsvc_buf_t b;
  tsvc_buf_init(&b, 64 * 1024);
  pthread_mutex_lock(&log_mu);
  FILE *f = log_out ? log_out : stderr;
  /* Under journald: the journal stamps the time, the prefix sets the
     priority. */
  char pfx[8] = "";
  if (log_journal) snprintf(pfx, sizeof pfx, "<%d>", journal_priority(l));
  if (log_json) {
    json_t *o = json_object();
    if (!log_journal) json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(tsvc_log_level_name(l)));
    if (msg) {
      scrub_locked(tmp, sizeof tmp, msg);
      json_object_set_new(o, "msg", json_string(tmp));
    }
    for (size_t i = 0; i < n; i++) {
      if (!fields[i].value) continue;
      json_object_set_new(o, fields[i].key,
                          json_string(field_value(&fields[i], tmp, sizeof tmp)));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) fprintf(f, "%s%s\n", pfx, s);
    free(s);
    json_decref(o);
  } else {
    if (!log_journal) tsvc_buf_addf(&b, "ts=%s ", ts);
    tsvc_buf_addf(&b, "level=%s", tsvc_log_level_name(l));
    format_text_locked(&b, fields, n);
    if (msg) {
      scrub_locked(tmp, sizeof tmp, msg);
      tsvc_buf_add(&b, " msg=", 5);
      add_text_value(&b, tmp);
    }
    if (b.data) fprintf(f, "%s%s\n", pfx, b.data);
  }
  fflush(f);
  pthread_mutex_unlock(&log_mu);
  tsvc_buf_free(&b);
}

void tsvc_log_msg(tsvc_log_level_t l, const char *service, const char *fmt, ...) {
  if (!tsvc_log_enabled(l)) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tsvc_log_field_t f[] = {{"service", service}};
  tsvc_log_fields(l, msg, f, service ? 1 : 0);
}
