/*
 * docker_rt: the runtime interface (runtime.h) on the Docker Engine API.
 *
 * Services run in containers named <docker.container_prefix><service> on the
 * network docker.network, labelled tanuki.service=<service>,
 * tanuki.project=<project id> (tsvc_project_id of the config's absolute
 * path) and tanuki.config=<that path>. A running container with our labels is
 * adopted, one removed behind our back is created again from config.
 *
 * Isolation between projects: a container of our name that is not ours (no
 * tanuki.service label for the service, or another project's id) is never
 * stopped, adopted, restarted, removed, entered by an exec probe or reported
 * as ours: every operation on it fails with TSVC_EEXIST and a message that
 * names it and its project (from its tanuki.config label). Containers of the
 * previous release, labelled tanuki.project=<the config's directory>, are
 * ours when that is our config's directory. A named volume that a container
 * of another project mounts is refused at creation (two servers on one data
 * directory); read-only mounts and binds are not checked. The network is
 * shared by name: projects that name the same docker.network share it (and
 * its DNS names), as they asked; it is labelled by the project that made it.
 *
 * Images and ports: before a container is created, its image is there or
 * pulled as services.NAME.pull_policy says (docker_pull.h: credentials,
 * log lines, progress; missing: pulled when absent, always: pulled at every
 * start and a container made from an older image recreated, never: absent
 * is an error); a pull that fails is a failed start. Then, when the image
 * declares EXPOSE without the container port, a warning with the fix is
 * logged. `port: "H:C"` publishes H on docker.publish_address (127.0.0.1
 * by default) to container port C.
 *
 * Remote engines (docs/remote.md): the first operation asks the engine who
 * it is (GET /info) and compares its ID with the local engine's: the same
 * engine runs on this machine. docker.probe_via (auto: the container's
 * address when it does, else the published port) decides where probes
 * connect (probe_route); a (re)start of a service with a port is refused
 * when probes go through published ports that are loopback on another
 * machine, and a non-loopback docker.publish_address is warned about once.
 *
 * Nothing here ever removes a volume or a network. Exec probes run inside the
 * container found to be ours (by id) through the exec API and are killed on
 * timeout; events (die, oom, start) come from the /events stream filtered by
 * our labels.
 */
#ifndef TSVC_DOCKER_RT_H
#define TSVC_DOCKER_RT_H

#include "runtime/runtime.h"

/*
 * A docker runtime for the services of cfg (borrowed: must outlive the
 * runtime), talking to cfg->docker.host. config_path, the config's absolute
 * path (copied), makes the project: its tsvc_project_id is the
 * tanuki.project label, its directory the label of the previous release.
 * Nothing is sent yet. Returns 0 and *out (tsvc_runtime_free), or
 * TSVC_EINVAL (no absolute path, bad host) / TSVC_ENOMEM with a reason in err.
 */
int tsvc_docker_runtime_new(uv_loop_t *loop, const tsvc_config_t *cfg, const char *config_path,
                            tsvc_runtime_t **out, char *err, size_t errlen);

/* Ask cfg's engine whether it answers (GET /_ping; over TLS or ssh as cfg
 * says), without a runtime: cb gets 0, or TSVC_EUNREACH with the reason
 * (which file or check TLS failed on, what ssh said). For runtime: auto
 * (remote.h: tsvc_runtime_choose). Returns 0, or an error with the reason
 * in err (a certificate file that cannot be read, no ssh): cb is not
 * called then. */
int tsvc_docker_probe_engine(uv_loop_t *loop, const tsvc_config_t *cfg,
                             void (*cb)(int status, const char *msg, void *data), void *data,
                             char *err, size_t errlen);

#endif
