/*
 * lazylib.h: libraries loaded on first use (dlopen), not at program start.
 *
 * Why (issue 13, bench/run.sh --up): a library named at link time is mapped
 * and relocated when the program starts, with everything it needs, and its
 * touched pages count in the monitor's RSS for as long as it runs. libcurl
 * (the Docker client, the CLI's API client, conninfo's URL escaping) brings
 * libssl, libcrypto, Kerberos, LDAP, SASL, nghttp2, librtmp, libssh2, ...:
 * about 1.8 MiB of RSS in `tanuki-svc up`; libcrypto alone (held postgres
 * sessions' SCRAM and MD5 logins) 1.4 MiB. A monitor of redis and tcp
 * services, or of processes, uses neither, so neither is linked: the
 * functions of each that tanuki-svc calls are defined in lazy_curl.c and
 * lazy_crypto.c with the libraries' own prototypes, and forward to the
 * library, loaded by the first call (once, from any thread).
 *
 * When a library cannot be loaded, its functions fail as they document for
 * their own failures (NULL handles, CURLE_FAILED_INIT, 0 from OpenSSL), and
 * tsvc_lazy_curl_loaded() / tsvc_lazy_crypto_loaded() say why.
 */
#ifndef TSVC_COMMON_LAZYLIB_H
#define TSVC_COMMON_LAZYLIB_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  const char *name; /* the symbol */
  void **slot;      /* where its address goes */
} tsvc_lazysym_t;

/* Load soname and look up every symbol of syms (n entries). Returns true
   when all are there; false, with the reason in err, otherwise. Called once
   (under the caller's pthread_once). */
bool tsvc_lazylib_load(const char *soname, const tsvc_lazysym_t *syms, size_t n, char *err,
                       size_t errlen);

/* Whether libcurl (libcrypto) is loaded now, without loading it: false
   before the first call of one of its functions, and when it could not be
   loaded; then *why (if not NULL) is the reason, or "" before the first
   use. */
bool tsvc_lazy_curl_loaded(const char **why);
bool tsvc_lazy_crypto_loaded(const char **why);

#endif
