/*
 * api: the HTTP+JSON API of a running monitor (docs/api.md), served by
 * libmicrohttpd on a unix socket (always; mode 0600) and on TCP when asked
 * (read-only there: the socket's mode is the access control, and a TCP port
 * on loopback has none, so POST answers 403 over TCP).
 *
 * Threads: the server runs in libmicrohttpd's own threads, one per
 * connection, so that a slow restart or a long event stream never holds up
 * another request. It reads snapshots and calls the manager's public
 * functions, which are safe from any thread; status reads never wait for
 * the manager's loop.
 *
 * Ownership: the server borrows the manager, which must outlive it.
 * tsvc_api_stop() closes every connection, removes the socket file and frees
 * the server.
 */
#ifndef TSVC_API_H
#define TSVC_API_H

#include <stdbool.h>
#include <stddef.h>

#include "tsvc.h"

/*
 * Limits. A client that trickles its request (one header line every few
 * seconds, which an idle timeout alone never ends) is cut at the request
 * deadline; one client (address) holds at most TSVC_API_PER_CLIENT
 * connections on TCP; event streams, which live long by design, have a cap
 * of their own below the connection limit. So /livez and /metrics answer
 * whatever slow clients and idle subscribers do (tests/test_api_limits.c).
 * Each connection costs a thread and two descriptors (libmicrohttpd's and
 * the watchdog's), so at most 2 x (256 + 64) descriptors in all: room is
 * left under the usual soft limit of 1024 for the monitor's own.
 */
#define TSVC_API_MAX_CONNECTIONS 64        /* unix socket (its owner only) */
#define TSVC_API_TCP_CONNECTIONS 256       /* TCP, all clients together */
#define TSVC_API_PER_CLIENT 16             /* TCP connections per client address */
#define TSVC_API_MAX_STREAMS 32            /* GET /v1/events per socket: 503 above */
#define TSVC_API_REQUEST_DEADLINE_MS 10000 /* request line, headers and body, whole */
#define TSVC_API_REPLY_DEADLINE_MS 60000   /* a reply read by its client, whole */
#define TSVC_API_MAX_BODY (64u << 10)      /* request bodies: 413 above */
#define TSVC_API_DRAIN_BODY (8u << 20)     /* chunked bodies read before the 413 */
#define TSVC_API_MAX_HEADERS (32u << 10)   /* request line and headers */
#define TSVC_API_TIMEOUT_S 30              /* idle connections (not streams) */
#define TSVC_API_EVENT_QUEUE 1024          /* lines queued per event stream */
#define TSVC_API_LIVEZ_LAG_MS 3000         /* /livez fails when the loop is
                                              later than this */

typedef struct tsvc_api_s tsvc_api_t;

typedef struct {
  tsvc_manager_t *manager;  /* borrowed */
  const char *socket_path;  /* required; its directory is created */
  const char *listen;       /* "host:port", ":port" (loopback) or NULL */
  /* POST /v1/down was answered (services stopped): the owner should stop
     the monitor. Called from a server thread after the reply went out. */
  void (*on_down)(void *data);
  void *data;
  /* The limits above; 0 takes the default (tests make them small). */
  unsigned request_deadline_ms; /* from a connection's start, or the end of its
                                   previous request, to the end of the body */
  unsigned reply_deadline_ms;   /* from a reply queued to its last byte sent
                                   (not event streams) */
  unsigned tcp_connections, per_client, max_streams;
  unsigned livez_lag_ms;        /* TSVC_API_LIVEZ_LAG_MS */
} tsvc_api_opts_t;

/* Bind and serve. Returns 0 and *out, or TSVC_EEXIST (a monitor already
   answers on the socket), TSVC_EIO (cannot bind or listen) with a reason in
   err. A stale socket file (nobody answers) is removed first. */
int tsvc_api_start(const tsvc_api_opts_t *o, tsvc_api_t **out, char *err, size_t errlen);
void tsvc_api_stop(tsvc_api_t *a);

typedef enum {
  TSVC_API_SOCK_NONE,   /* no socket file */
  TSVC_API_SOCK_STALE,  /* a socket file nobody answers on */
  TSVC_API_SOCK_LIVE,   /* a monitor answers */
  TSVC_API_SOCK_DENIED  /* a socket we may not use (permissions) */
} tsvc_api_sock_state_t;

/* What is at path; errno-ish detail for people in err (may be NULL). */
tsvc_api_sock_state_t tsvc_api_socket_state(const char *path, char *err, size_t errlen);

/* The socket path of a config: monitor.socket, relative to the directory of
   the config file when not absolute. Caller frees; NULL on out of memory. */
char *tsvc_api_socket_path(const char *config_path, const char *socket);

#endif
