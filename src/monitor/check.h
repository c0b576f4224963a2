/*
 * check: one check of a service, whatever its probe kind. Native probes run
 * on the loop (probe module); exec runs inside the service's container when
 * the runtime can (else on the host); running asks the runtime. Used by the
 * monitor and by `tanuki-svc check`.
 *
 * Same contract as a probe: the callback is called exactly once unless start
 * fails or the check is cancelled; the check frees itself.
 */
#ifndef TSVC_CHECK_H
#define TSVC_CHECK_H

#include "probe/probe.h"
#include "runtime/runtime.h"

typedef struct tsvc_check_s tsvc_check_t;

/*
 * The probe of a service and where it connects: healthcheck.address wins,
 * then a host named by the command (pg_isready -h), then the runtime's
 * answer (rt->ops->probe_route, else probe_host), else 127.0.0.1. host (len bytes) is where
 * the chosen host string is kept: spec->host may point into it.
 */
void tsvc_check_prepare(const tsvc_service_conf_t *svc, tsvc_runtime_t *rt,
                        tsvc_probe_spec_t *spec, char *host, size_t len);

/* Where a check goes, for people (status NAME, the API's probe_address
   and probe_via, the history). */
typedef struct {
  /* container, published, exec (the runtime's route, docs/remote.md),
     address (healthcheck.address), command (a host the command names),
     host (this machine) */
  char via[16];
  /* "172.18.0.3:6379", "engine.example:16379", "exec in the container",
     "exec on this host", "inspect" (probe: running) */
  char address[280];
} tsvc_check_where_t;

/* tsvc_check_prepare, and where the check goes into where. The runtime's
   route (rt->ops->probe_route) decides the host, the port that svc->port
   is reached at, and whether the probe runs in the container (then
   spec->in_runtime). */
void tsvc_check_prepare_where(const tsvc_service_conf_t *svc, tsvc_runtime_t *rt,
                              tsvc_probe_spec_t *spec, char *host, size_t len,
                              tsvc_check_where_t *where);

/* rt may be NULL: running checks then fail to start (TSVC_EINVAL). */
int tsvc_check_start(uv_loop_t *loop, tsvc_runtime_t *rt,
                     const tsvc_service_conf_t *svc,
                     const tsvc_probe_spec_t *spec, tsvc_probe_cb cb,
                     void *data, tsvc_check_t **out);
void tsvc_check_cancel(tsvc_check_t *c);

#endif
