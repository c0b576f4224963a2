/*
 * runtime: where services run (docs/design.md, "The runtime interface"),
 * behind a table of functions as Redis's ConnectionType. Implementations:
 * docker (the Docker Engine API), process (child processes of the
 * monitor); tests use a recording runtime (tests/recrt.c).
 *
 * Every operation is asynchronous on the monitor's libuv loop and reports
 * through its callback, called once, on the loop's thread, and never
 * inside the call that asked for it (libuv's rule). When an operation
 * returns an error, its callback is never called.
 *
 * Ownership: the runtime borrows the service configs passed to it; they must
 * outlive the operation. tsvc_runtime_free() begins closing the runtime:
 * new operations are refused, and those still in flight are answered with
 * TSVC_ECANCELED ("the runtime was closed") later, from the loop, never
 * inside the call (exec operations excepted: cancel them with exec_cancel
 * before). Its memory goes with its last handle: keep running the loop
 * until it is empty.
 */
#ifndef TSVC_RUNTIME_H
#define TSVC_RUNTIME_H

#include <uv.h>

#include "config/config.h"
#include "probe/probe.h"
#include "tsvc.h"

typedef struct tsvc_runtime_s tsvc_runtime_t;

/* What an inspection found. */
typedef struct {
  bool exists;       /* a container / process record exists */
  bool running;
  int pid;           /* main process, 0 when none */
  int exit_code;     /* last exit code when not running, else -1 */
  char id[72];       /* container id, or "" */
  char name[128];    /* container name, or "" */
  char host[64];     /* address the service is reached at for probes, or "" */
} tsvc_rt_info_t;

/* status: 0 or a negative TSVC_E*; msg: the runtime's own words, or NULL. */
typedef void (*tsvc_rt_done_cb)(int status, const char *msg, void *data);
typedef void (*tsvc_rt_inspect_cb)(int status, const char *msg,
                                   const tsvc_rt_info_t *info, void *data);

typedef enum {
  TSVC_RT_EV_STARTED,  /* a service's container/process started */
  TSVC_RT_EV_DIED,     /* ... stopped, died or was killed (message says) */
  TSVC_RT_EV_DOWN,     /* the runtime itself cannot be reached (service NULL) */
  TSVC_RT_EV_UP        /* ... answers again (service NULL) */
} tsvc_rt_event_type_t;

typedef void (*tsvc_rt_event_cb)(tsvc_rt_event_type_t type, const char *service,
                                 const char *msg, void *data);

/* Where the probes of a service connect, as its runtime knows it now
   (docker.probe_via, docs/remote.md). */
typedef struct {
  bool exec;       /* run them as commands inside the service's container
                      (ops->exec), wherever they would connect */
  char host[256];  /* the host to connect to; "" when not known yet */
  int port;        /* where svc->port is reached from here; 0: at itself */
  char via[16];    /* "container", "published", "exec": for people */
} tsvc_probe_route_t;

typedef struct {
  const char *name;
  /* True when services listen on svc->port in a network of their own and
     svc->host_port is published to it (docker); false when they listen on
     the host itself, at svc->host_port (processes): a probe's port that
     names the container port then means the host port. */
  bool maps_ports;
  /* Create (when missing) and start the service. */
  int (*start)(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc,
               tsvc_rt_done_cb cb, void *data);
  /* Stop: SIGTERM, then SIGKILL after svc->restart.stop_timeout. */
  int (*stop)(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc,
              tsvc_rt_done_cb cb, void *data);
  /* Restart in place; data (volumes, data directories) is kept. */
  int (*restart)(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc,
                 tsvc_rt_done_cb cb, void *data);
  int (*inspect)(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc,
                 tsvc_rt_inspect_cb cb, void *data);
  /* Run spec->argv where the service runs (inside its container); same
     verdicts as the host exec probe. May be NULL: the exec probe then runs
     on the host. *op receives a handle for exec_cancel. */
  int (*exec)(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc,
              const tsvc_probe_spec_t *spec, tsvc_probe_cb cb, void *data,
              void **op);
  void (*exec_cancel)(tsvc_runtime_t *rt, void *op);
  /* Deliver events about our services to cb until free. May be NULL. */
  int (*watch)(tsvc_runtime_t *rt, tsvc_rt_event_cb cb, void *data);
  /* The host probes should connect to for svc, into buf; "" when unknown
     (the caller then uses 127.0.0.1). May be NULL. */
  void (*probe_host)(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc,
                     char *buf, size_t len);
  /* Where probes of svc connect now, into out (zeroed by the caller); the
     answer may change after each inspect. May be NULL: probe_host then
     names the host. */
  void (*probe_route)(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc,
                      tsvc_probe_route_t *out);
  void (*free)(tsvc_runtime_t *rt);
  /* Remove the stopped service's container (or whatever start would reuse),
     so that the next start creates it afresh from config (a reload that
     changed image, environment, ports, volumes or command). Volumes and
     data are never removed. May be NULL: start always applies the config. */
  int (*remove)(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc,
                tsvc_rt_done_cb cb, void *data);
  /* From now on read cfg (borrowed) instead of the config given at creation
     (a reload); the caller keeps the old one alive while operations begun
     with it are in flight. May be NULL: the runtime keeps no config. */
  void (*reconfigure)(tsvc_runtime_t *rt, const tsvc_config_t *cfg);
} tsvc_runtime_ops_t;

struct tsvc_runtime_s {
  const tsvc_runtime_ops_t *ops;
  uv_loop_t *loop;
};

static inline void tsvc_runtime_free(tsvc_runtime_t *rt) {
  if (rt) rt->ops->free(rt);
}

#endif /* TSVC_RUNTIME_H */
