/*
 * docker_rt: the runtime interface (runtime.h) on the Docker Engine API.
 *
 * Services run in containers named <docker.container_prefix><service> on the
 * network docker.network, labelled tanuki.service=<service> and
 * tanuki.project=<project>. A running container with our label is adopted,
 * one removed behind our back is created again from config, and a container
 * of that name without our label is never touched (a clear error instead).
 * Nothing here ever removes a volume. Exec probes run inside the container
 * through the exec API and are killed on timeout; events (die, oom, start)
 * come from the /events stream filtered by our label.
 */
#ifndef TSVC_DOCKER_RT_H
#define TSVC_DOCKER_RT_H

#include "runtime/runtime.h"

/*
 * A docker runtime for the services of cfg (borrowed: must outlive the
 * runtime), talking to cfg->docker.host. project names the project in the
 * tanuki.project label (e.g. the config's directory). Nothing is sent yet.
 * Returns 0 and *out (tsvc_runtime_free), or TSVC_EINVAL / TSVC_ENOMEM with
 * a reason in err.
 */
int tsvc_docker_runtime_new(uv_loop_t *loop, const tsvc_config_t *cfg, const char *project,
                            tsvc_runtime_t **out, char *err, size_t errlen);

/* Ask the daemon whether it answers (GET /_ping), without a runtime: cb gets
 * 0 or TSVC_EUNREACH with the reason. For runtime: auto. */
int tsvc_docker_probe_daemon(uv_loop_t *loop, const char *host,
                             void (*cb)(int status, const char *msg, void *data), void *data);

#endif
