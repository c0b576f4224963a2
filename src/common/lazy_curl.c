/*
 * lazy_curl.c: the libcurl functions tanuki-svc calls, loaded on first use
 * (see lazylib.h for why). Each has libcurl's own prototype and forwards to
 * libcurl; a new curl function used anywhere in the project is added here
 * (the link fails until it is).
 */
/* Our definitions must not be curl.h's type-checking macros. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>

#include "common/lazylib.h"

static struct {
  CURLcode (*global_init)(long);
  void (*global_cleanup)(void);
  curl_version_info_data *(*version_info)(CURLversion);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  CURLcode (*easy_perform)(CURL *);
  void (*easy_reset)(CURL *);
  void (*easy_cleanup)(CURL *);
  const char *(*easy_strerror)(CURLcode);
  char *(*easy_escape)(CURL *, const char *, int);
  void (*free_)(void *);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  CURLMcode (*multi_cleanup)(CURLM *);
} f;

#define SYM(field, name) {#name, (void **)&f.field}
static const tsvc_lazysym_t syms[] = {
    SYM(global_init, curl_global_init),
    SYM(global_cleanup, curl_global_cleanup),
    SYM(version_info, curl_version_info),
    SYM(easy_init, curl_easy_init),
    SYM(easy_setopt, curl_easy_setopt),
    SYM(easy_getinfo, curl_easy_getinfo),
    SYM(easy_perform, curl_easy_perform),
    SYM(easy_reset, curl_easy_reset),
    SYM(easy_cleanup, curl_easy_cleanup),
    SYM(easy_strerror, curl_easy_strerror),
    SYM(easy_escape, curl_easy_escape),
    SYM(free_, curl_free),
    SYM(slist_append, curl_slist_append),
    SYM(slist_free_all, curl_slist_free_all),
    SYM(multi_init, curl_multi_init),
    SYM(multi_setopt, curl_multi_setopt),
    SYM(multi_add_handle, curl_multi_add_handle),
    SYM(multi_remove_handle, curl_multi_remove_handle),
    SYM(multi_socket_action, curl_multi_socket_action),
    SYM(multi_assign, curl_multi_assign),
    SYM(multi_info_read, curl_multi_info_read),
    SYM(multi_cleanup, curl_multi_cleanup),
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool tried, ok;
static char why[300];

static void load(void) {
  ok = tsvc_lazylib_load("libcurl.so.4", syms, sizeof syms / sizeof syms[0], why, sizeof why);
  __atomic_store_n(&tried, 1, __ATOMIC_RELEASE);
}

static bool have(void) {
  pthread_once(&once, load);
  return ok;
}

bool tsvc_lazy_curl_loaded(const char **reason) {
  bool t = __atomic_load_n(&tried, __ATOMIC_ACQUIRE);
  if (reason) *reason = t && !ok ? why : "";
  return t && ok;
}

CURLcode curl_global_init(long flags) { return have() ? f.global_init(flags) : CURLE_FAILED_INIT; }

void curl_global_cleanup(void) {
  if (have()) f.global_cleanup();
}

curl_version_info_data *curl_version_info(CURLversion v) {
  static curl_version_info_data none; /* version: why it is missing */
  if (have()) return f.version_info(v);
  none.version = why;
  return &none;
}

CURL *curl_easy_init(void) { return have() ? f.easy_init() : NULL; }

/* The argument's type follows from the option's number (curl.h,
   CURLOPTTYPE_*): long, a pointer, a function pointer, curl_off_t, or a
   blob's pointer. */
CURLcode curl_easy_setopt(CURL *c, CURLoption o, ...) {
  if (!have()) return CURLE_FAILED_INIT;
  va_list ap;
  va_start(ap, o);
  CURLcode rc;
  if (o < CURLOPTTYPE_OBJECTPOINT) rc = f.easy_setopt(c, o, va_arg(ap, long));
  else if (o < CURLOPTTYPE_FUNCTIONPOINT) rc = f.easy_setopt(c, o, va_arg(ap, void *));
  else if (o < CURLOPTTYPE_OFF_T) rc = f.easy_setopt(c, o, va_arg(ap, void (*)(void)));
  else if (o < CURLOPTTYPE_BLOB) rc = f.easy_setopt(c, o, va_arg(ap, curl_off_t));
  else rc = f.easy_setopt(c, o, va_arg(ap, void *));
  va_end(ap);
  return rc;
}

/* Every CURLINFO_* takes a pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *c, CURLINFO i, ...) {
  if (!have()) return CURLE_FAILED_INIT;
  va_list ap;
  va_start(ap, i);
  CURLcode rc = f.easy_getinfo(c, i, va_arg(ap, void *));
  va_end(ap);
  return rc;
}

CURLcode curl_easy_perform(CURL *c) { return have() ? f.easy_perform(c) : CURLE_FAILED_INIT; }

void curl_easy_reset(CURL *c) {
  if (have()) f.easy_reset(c);
}

void curl_easy_cleanup(CURL *c) {
  if (have()) f.easy_cleanup(c);
}

const char *curl_easy_strerror(CURLcode rc) { return have() ? f.easy_strerror(rc) : why; }

char *curl_easy_escape(CURL *c, const char *s, int len) {
  return have() ? f.easy_escape(c, s, len) : NULL;
}

void curl_free(void *p) {
  if (have()) f.free_(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) {
  return have() ? f.slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l) {
  if (have()) f.slist_free_all(l);
}

CURLM *curl_multi_init(void) { return have() ? f.multi_init() : NULL; }

/* As curl_easy_setopt: CURLMOPT_* numbers carry their type too. */
CURLMcode curl_multi_setopt(CURLM *m, CURLMoption o, ...) {
  if (!have()) return CURLM_INTERNAL_ERROR;
  va_list ap;
  va_start(ap, o);
  CURLMcode rc;
  if (o < CURLOPTTYPE_OBJECTPOINT) rc = f.multi_setopt(m, o, va_arg(ap, long));
  else if (o < CURLOPTTYPE_FUNCTIONPOINT) rc = f.multi_setopt(m, o, va_arg(ap, void *));
  else if (o < CURLOPTTYPE_OFF_T) rc = f.multi_setopt(m, o, va_arg(ap, void (*)(void)));
  else if (o < CURLOPTTYPE_BLOB) rc = f.multi_setopt(m, o, va_arg(ap, curl_off_t));
  else rc = f.multi_setopt(m, o, va_arg(ap, void *));
  va_end(ap);
  return rc;
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *c) {
  return have() ? f.multi_add_handle(m, c) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *c) {
  return have() ? f.multi_remove_handle(m, c) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t s, int ev, int *running) {
  return have() ? f.multi_socket_action(m, s, ev, running) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_assign(CURLM *m, curl_socket_t s, void *p) {
  return have() ? f.multi_assign(m, s, p) : CURLM_INTERNAL_ERROR;
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left) {
  if (have()) return f.multi_info_read(m, left);
  *left = 0;
  return NULL;
}

CURLMcode curl_multi_cleanup(CURLM *m) {
  return have() ? f.multi_cleanup(m) : CURLM_INTERNAL_ERROR;
}
