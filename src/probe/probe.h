/*
 * probe: native asynchronous health probes on one libuv loop (docs/design.md,
 * "Probes").
 *
 * Each probe kind lives in its own file and is one entry of a table of
 * {name, start, cancel}. A probe has a hard timeout, reads at most
 * TSVC_PROBE_MAX_READ bytes whatever the peer sends, and reports exactly one
 * result through its callback: a code grouped by layer, a one-line message
 * and its latency.
 *
 * Lifetimes: tsvc_probe_start() allocates the probe; the library frees it
 * after its callback has returned (or after tsvc_probe_cancel()). When start
 * returns an error the callback is never called and nothing is left to free.
 * After tsvc_probe_cancel() the callback is never called; cancel closes the
 * socket or kills the process group at once.
 */
#ifndef TSVC_PROBE_H
#define TSVC_PROBE_H

#include <uv.h>

#include "config/config.h"
#include "tsvc.h"

#define TSVC_PROBE_MAX_READ 4096 /* bytes read from a peer, at most */
#define TSVC_PROBE_MSG_LEN 256   /* one-line message, NUL included */
#define TSVC_PROBE_OUTPUT_LEN 4096 /* exec: last bytes of output kept */

typedef struct tsvc_probe_s tsvc_probe_t;

typedef struct {
  tsvc_result_t result;
  int exit_code;       /* exec: the command's exit code (128+sig if killed);
                          -1 for other probes */
  int64_t latency_us;  /* from start to the verdict */
  char message[TSVC_PROBE_MSG_LEN]; /* one line, printable ASCII */
  char *output;        /* exec: last TSVC_PROBE_OUTPUT_LEN bytes of stdout+
                          stderr, NUL-terminated; NULL otherwise. Owned by the
                          probe: copy it inside the callback to keep it. */
  size_t bytes_read;   /* added: network probes, bytes read from the peer
                          (never above TSVC_PROBE_MAX_READ); exec, bytes of
                          output seen (only the last OUTPUT_LEN are kept) */
} tsvc_probe_result_t;

typedef void (*tsvc_probe_cb)(const tsvc_probe_result_t *res, void *data);

/* What to check. Strings are borrowed: they must outlive the probe's start
 * call only (the probe copies what it needs). */
typedef struct {
  tsvc_probe_kind_t kind; /* never AUTO here: see tsvc_probe_resolve() */
  const char *host;       /* name or address literal; default 127.0.0.1 */
  int port;
  tsvc_ms_t timeout;
  /* postgres */
  const char *user;       /* default "postgres" */
  const char *database;   /* default: the user */
  /* redis */
  const char *password;   /* AUTH before PING when set */
  const char *username;   /* AUTH username password (ACL) when set */
  /* http */
  const char *path;       /* default "/" */
  int status_min, status_max; /* default 200..399 */
  /* exec (on the host) */
  char *const *argv;      /* NULL-terminated, or argc entries */
  size_t argc;            /* added: number of argv entries; 0 means argv is
                             NULL-terminated (tsvc_strv_t need not be) */
  bool shell;             /* argv[0] is a string for /bin/sh -c */
  /* Run inside the service's container by its runtime (docker.probe_via:
     exec): an exec probe's command, or for a native kind the same check
     as a command (pg_isready, redis-cli ping, ...). */
  bool in_runtime;
} tsvc_probe_spec_t;

/* One probe kind. start returns 0 or a negative TSVC_E* code. */
typedef struct {
  const char *name;
  int (*start)(tsvc_probe_t *p);
  void (*cancel)(tsvc_probe_t *p);
} tsvc_probe_type_t;

/*
 * Start a probe of spec->kind on loop. cb is called once with the verdict,
 * on the loop's thread, never from inside this call: after every handle of
 * the probe is closed (and, for exec, its process group is gone). *out (may
 * be NULL) receives the handle for cancel, valid until cb returns.
 *
 * Returns 0, or TSVC_EINVAL (kind AUTO or RUNNING, timeout <= 0, port out
 * of range, no argv, an empty string where one is needed, status_min >
 * status_max), or TSVC_ENOMEM. Network probes write to sockets that a peer
 * may reset: the first call sets SIGPIPE to SIG_IGN when it is SIG_DFL, so
 * that a reset is an error code and not the end of the program.
 */
int tsvc_probe_start(uv_loop_t *loop, const tsvc_probe_spec_t *spec,
                     tsvc_probe_cb cb, void *data, tsvc_probe_t **out);

/* Stop a probe in flight; its callback will not be called. */
void tsvc_probe_cancel(tsvc_probe_t *p);

/*
 * probe: auto (docs/design.md, "Probes"). Fill spec from a service's config: the
 * native equivalent of a well-known healthcheck command (pg_isready with
 * -U/-d/-h/-p, redis-cli [-a pw] [-h] [-p] ping), else exec when a command is
 * set, else the built-in probe for the service's name or image (postgres,
 * redis), else tcp when a port is set, else running. Strings in spec point
 * into svc (or static storage). host is left NULL when the command does not
 * name one: the caller fills in where the service is reached.
 */
void tsvc_probe_resolve(const tsvc_service_conf_t *svc, tsvc_probe_spec_t *spec);

#endif /* TSVC_PROBE_H */
