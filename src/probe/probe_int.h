/*
 * probe_int: what the probe kinds share (not part of the public API).
 *
 * One tsvc_probe_t holds everything a probe of any kind needs; the kinds
 * (postgres.c, redis.c, tcp.c, http.c, exec.c) fill in their part. Shared
 * rules, kept in probe.c:
 *  - the verdict is decided once (tsvc__probe_verdict); later calls are
 *    ignored, so the first thing that happened is what is reported;
 *  - tsvc__probe_finish() closes every handle; the callback runs after the
 *    last close callback (so nothing is left open or running when the caller
 *    hears the verdict), then the probe is freed;
 *  - p->refs counts open handles and getaddrinfo requests in flight.
 */
#ifndef TSVC_PROBE_INT_H
#define TSVC_PROBE_INT_H

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"
#include "probe/probe.h"

#define TSVC__PROBE_SMALL_READ 512 /* bytes read before a buffer is allocated */

/* Hooks of a network probe kind, called by the shared connection code. */
typedef struct {
  /* Connected: send the request with tsvc__probe_write(). */
  void (*connected)(tsvc_probe_t *p);
  /* New bytes are in p->rbuf[0..p->rlen): decide, answer or wait. */
  void (*data)(tsvc_probe_t *p);
} tsvc__net_ops_t;

/* The buffers only exec probes need, allocated apart so that a network
   probe (the common case: thousands a second) stays small. */
typedef struct {
  char chunk[4096];                 /* pipe read buffer */
  char tail[TSVC_PROBE_OUTPUT_LEN]; /* ring of the last output bytes */
} tsvc__exec_buf_t;

struct tsvc_probe_s {
  uv_loop_t *loop;
  const tsvc_probe_type_t *type;
  const tsvc__net_ops_t *ops; /* network kinds */
  tsvc_probe_cb cb;
  void *data;

  /* Copies of the spec's strings, owned. */
  tsvc_probe_kind_t kind;
  char *host;
  int port;
  tsvc_ms_t timeout;
  char *user, *database, *password, *username, *path;
  int status_min, status_max;
  char **argv; /* NULL-terminated */
  bool shell;

  uint64_t t0; /* uv_hrtime() at start */
  int refs;
  bool decided, finishing, cancelled, notified;
  tsvc_probe_result_t res;
  uv_timer_t timer;
  void (*on_timeout)(tsvc_probe_t *p);

  /* The handles and requests of one kind or the other: a probe is either
     a network kind or exec, and each is used only once its flag below
     (gai_pending, tcp_init; proc_init, out_init) says so (issue 13: 400
     bytes less a probe, thousands of them in flight). */
  union {
    struct {
      uv_getaddrinfo_t gai;
      struct sockaddr_storage addr;
      uv_tcp_t tcp;
      uv_connect_t creq;
      uv_write_t wreq[2];
    };
    struct {
      uv_process_t proc;
      uv_pipe_t out;
    };
  };

  /* Network. */
  const char *phase;            /* for timeout messages */
  bool gai_pending;
  int conn_err;                 /* last connect error, for messages */
  struct addrinfo *ai, *ai_next; /* from getaddrinfo; addresses left to try */
  bool tcp_init;
  bool close_reset;             /* close with an RST (SO_LINGER 0): tcp.c */
  bool last_look;               /* the timeout waits for one more poll */
  int nwrites;
  uint8_t *wdata;               /* the request, owned */
  size_t wlen;
  /* What was read, NUL-terminated: rsmall first (the replies of a healthy
     server fit), then a TSVC_PROBE_MAX_READ buffer of its own when more
     comes. A probe is allocated and zeroed at every check: 4 KiB inline
     cost a memset each and, thousands in flight, the memory (issue 13). */
  uint8_t *rbuf;                /* rsmall, or owned */
  size_t rcap;                  /* usable bytes of rbuf */
  uint8_t rsmall[TSVC__PROBE_SMALL_READ + 1];
  size_t rlen;                  /* bytes read so far, <= TSVC_PROBE_MAX_READ */
  int step;                     /* kind-specific progress */
  size_t rpos;                  /* kind-specific parse offset */
  char note[160];               /* kind-specific remark for the message */

  /* Exec. */
  bool proc_init, spawned, out_init, exited, out_eof, timed_out;
  pid_t pid;
  tsvc__exec_buf_t *xb;              /* exec only: allocated by exec_start */
  uint64_t out_total;                /* bytes of output seen */
};

extern const tsvc_probe_type_t tsvc_probe_type_postgres;
extern const tsvc_probe_type_t tsvc_probe_type_redis;
extern const tsvc_probe_type_t tsvc_probe_type_tcp;
extern const tsvc_probe_type_t tsvc_probe_type_http;
extern const tsvc_probe_type_t tsvc_probe_type_exec;

/* Decide the verdict (once; later calls do nothing). The message is
 * formatted, made one printable line and truncated. */
void tsvc__probe_verdict(tsvc_probe_t *p, tsvc_result_t r, const char *fmt, ...)
    TSVC_PRINTF(3, 4);
/* Restart the probe's timer to fire in ms (the hard timeout, or a grace). */
void tsvc__probe_rearm(tsvc_probe_t *p, uint64_t ms);
/* Close everything; the callback (unless cancelled) and the free follow. */
void tsvc__probe_finish(tsvc_probe_t *p);
/* One handle or request of p is gone. */
void tsvc__probe_unref(tsvc_probe_t *p);
/* The shared close callback: handle->data is the probe. */
void tsvc__probe_close_cb(uv_handle_t *h);

/* Network kinds: resolve (when needed) and connect to p->host:p->port, then
 * call p->ops->connected. Returns 0 or a TSVC_E code. */
int tsvc__probe_net_start(tsvc_probe_t *p);
void tsvc__probe_net_cancel(tsvc_probe_t *p);
/* Send len bytes (data must live until the probe is freed). At most two
 * writes per probe. */
void tsvc__probe_write(tsvc_probe_t *p, const void *data, size_t len);
/* Stop reading and finish now (we close first). */
void tsvc__probe_close_now(tsvc_probe_t *p);

/* Replace what is not printable ASCII by '?' (line breaks by ' '). */
void tsvc__probe_printable(char *s);

#endif /* TSVC_PROBE_INT_H */
