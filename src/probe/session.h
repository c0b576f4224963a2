/*
 * session: held-session probes (docs/design.md, "Held sessions"), the
 * opt-in `healthcheck.session: true` of redis and postgres services.
 *
 * A session keeps one connection to the server, logged in, and checks on
 * it: redis gets PING, postgres an empty query. The verdict of a check on
 * the held connection is the server's answer; anything else (the
 * connection closed, reset, an error reply, bytes that are not the
 * protocol, a reply late) closes the connection, and the check is then
 * decided by the full connect-per-check probe (probe.h), in the same check,
 * so a server that restarted is judged as the probe judges it.
 *
 * The full probe also runs (on a new connection, beside the held one)
 * every full_every, so that "new connections are accepted" is still
 * tested as pg_isready does: a server in a smart shutdown, or one that
 * began to refuse connections, keeps held sessions working. When the full
 * probe's verdict is not OK, the held connection is closed (a smart
 * shutdown waits for it otherwise). A held connection is opened after a
 * full probe said OK, beside the check (not part of its verdict); when
 * that fails (wrong password, say) the session retries no sooner than
 * full_every later, so a bad password costs the server one failed login
 * a full_every, not one a check. A login is given 5 s past the timeout
 * (the check it is, if any, is a TIMEOUT at the timeout): a server that
 * answers late is held when it answers; one that did not is tried again at
 * the next check.
 *
 * Postgres logins: trust, cleartext, MD5 and SCRAM-SHA-256 (libcrypto),
 * with spec->password. Redis: AUTH [username] password once per
 * connection.
 *
 * Lifetimes: tsvc_session_new() allocates; tsvc_session_free() closes the
 * connection and the session frees itself after its close callbacks (the
 * loop must run). One check at a time: its callback is called exactly once
 * unless start fails or the check is cancelled, always from the loop,
 * never inside tsvc_session_check().
 */
#ifndef TSVC_SESSION_H
#define TSVC_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "probe/deadline.h"
#include "probe/probe.h"

typedef struct tsvc_session_s tsvc_session_t;

typedef struct {
  bool held;              /* a connection is logged in and idle or in use */
  bool opening;           /* a connection is being opened (not logged in) */
  uint64_t connects;      /* held connections opened (logged in) */
  uint64_t held_checks;   /* checks answered on a held connection */
  uint64_t full_checks;   /* checks decided by the full probe */
  uint64_t queued_sends;  /* requests that did not go out in one write(2)
                             at once and were queued (uv_write: an
                             allocation, a callback, an epoll_ctl): none
                             while the socket's buffer has room */
  char last_error[160];   /* why the last held connection closed or could
                             not open; "" when none did */
} tsvc_session_info_t;

/* True when kind can hold a session (redis, postgres). */
bool tsvc_session_supported(tsvc_probe_kind_t kind);

/*
 * A session for spec (strings copied; the same spec rules as
 * tsvc_probe_start). full_every: how often the full probe runs, ms (> 0).
 * Returns 0, TSVC_EINVAL (a kind without sessions, a bad spec) or
 * TSVC_ENOMEM. Nothing connects until the first check.
 */
int tsvc_session_new(uv_loop_t *loop, const tsvc_probe_spec_t *spec, tsvc_ms_t full_every,
                     tsvc_session_t **out);

/* Time the checks' timeouts on the shared set ds (the caller's, which
 * outlives s or is closed after s is freed) instead of a timer of the
 * session's own: no timer heap operation a held check. Call it with no
 * check in flight (a pending timeout is dropped). NULL: the own timer. */
void tsvc_session_set_deadlines(tsvc_session_t *s, tsvc_deadlines_t *ds);

/* One check. Returns 0 (cb follows, from the loop), TSVC_EBUSY when a
 * check is in flight, or what tsvc_probe_start returns. */
int tsvc_session_check(tsvc_session_t *s, tsvc_probe_cb cb, void *data);

/* Drop the check in flight (its callback is not called). A request on the
 * held connection cannot be taken back: the connection is closed. */
void tsvc_session_cancel(tsvc_session_t *s);

/* A copy of the counters. */
void tsvc_session_info(const tsvc_session_t *s, tsvc_session_info_t *out);

/* Cancel, close, free after the close callbacks. NULL is a no-op. */
void tsvc_session_free(tsvc_session_t *s);

#endif /* TSVC_SESSION_H */
