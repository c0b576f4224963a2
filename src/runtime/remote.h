/*
 * remote: the decisions about a Docker engine that may run on another
 * machine (docs/remote.md), as pure functions over what is known, so that
 * each rule is written once and tested on its own: which runtime `auto`
 * takes, whether the engine runs here, where probes connect, whether a
 * publish address can work, and what host the ports are reached at.
 *
 * No socket, no clock, no environment: the callers ask the engines and
 * pass the answers in.
 */
#ifndef TSVC_REMOTE_H
#define TSVC_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "docker/docker.h"
#include "docker/host.h"

/*
 * The runtime to use, given the one asked for (want), whether an engine
 * was named (docker.host, or $DOCKER_HOST: cfg->docker.host_named) and how
 * the engine answered GET /_ping (0, or the error). docker: the engine
 * answers. process: asked for; or auto, with no engine named and the
 * local socket not answering. Anything else is TSVC_EUNREACH: an engine
 * the user named that refuses us (TLS, ssh, unreachable) is an error to
 * report, never a reason to switch runtimes. Returns 0 and *out, or
 * TSVC_EUNREACH.
 */
int tsvc_runtime_choose(tsvc_runtime_kind_t want, bool engine_named, int ping_status,
                        tsvc_runtime_kind_t *out);

/* Does the engine run on this machine? A unix socket is this machine's;
   over tcp or ssh, when the engine's ID (GET /info) is the local engine's
   (the one at unix:///var/run/docker.sock; "" when none answers). */
bool tsvc_engine_is_local(tsvc_docker_transport_t transport, const char *engine_id,
                          const char *local_id);

/* probe_via as it applies: auto is container for an engine on this
   machine, else published; the others as they are. */
tsvc_probe_via_t tsvc_probe_via_resolve(tsvc_probe_via_t want, bool local);

/*
 * Can the ports published on publish_address be probed from here? When
 * probes go through them (via published) to an engine on another machine,
 * a loopback address there cannot be reached from here: TSVC_EINVAL, with
 * the fix in msg. Any other address that is not loopback exposes the
 * services to that network: 1, with a warning in msg (say it once). Else
 * 0. engine_host names the engine's machine in the messages.
 */
int tsvc_publish_check(tsvc_probe_via_t via, bool local, const char *engine_host,
                       const char *publish_address, char *msg, size_t len);

/*
 * The host a published port is reached at from this machine, into buf:
 * publish_address when it is a specific address that is not loopback,
 * else (loopback, or every interface) the engine's host: 127.0.0.1 for a
 * unix socket, the host of tcp:// or ssh://. Returns buf.
 */
const char *tsvc_published_host(const tsvc_docker_endpoint_t *ep, const char *publish_address,
                                char *buf, size_t len);

/* The host view's address for `env` (manager/conninfo.h's host_addr) under
   runtime ("process", "docker"; NULL or "": the config's, auto counting as
   docker, since auto never falls back with an engine named): 127.0.0.1 for
   the process runtime, else tsvc_published_host() of docker.host (the
   engine's host for tcp:// and ssh://). Returns buf. */
const char *tsvc_env_host_addr(const tsvc_config_t *cfg, const char *runtime, char *buf,
                               size_t len);

/* The docker client's options for cfg's engine (tsvc_docker_new_opts):
   strings borrowed from cfg. */
void tsvc_docker_opts_from_config(const tsvc_config_t *cfg, tsvc_docker_opts_t *o);

#endif /* TSVC_REMOTE_H */
