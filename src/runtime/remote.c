/* remote.c: see remote.h. */
#include "runtime/remote.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

int tsvc_runtime_choose(tsvc_runtime_kind_t want, bool engine_named, int ping_status,
                        tsvc_runtime_kind_t *out) {
  if (want == TSVC_RUNTIME_PROCESS) {
    *out = TSVC_RUNTIME_PROCESS;
    return 0;
  }
  if (ping_status == 0) {
    *out = TSVC_RUNTIME_DOCKER;
    return 0;
  }
  if (want == TSVC_RUNTIME_AUTO && !engine_named) {
    *out = TSVC_RUNTIME_PROCESS;
    return 0;
  }
  return TSVC_EUNREACH;
}

bool tsvc_engine_is_local(tsvc_docker_transport_t transport, const char *engine_id,
                          const char *local_id) {
  if (transport == TSVC_DOCKER_UNIX) return true;
  return engine_id && local_id && *engine_id && strcmp(engine_id, local_id) == 0;
}

tsvc_probe_via_t tsvc_probe_via_resolve(tsvc_probe_via_t want, bool local) {
  if (want != TSVC_VIA_AUTO) return want;
  return local ? TSVC_VIA_CONTAINER : TSVC_VIA_PUBLISHED;
}

int tsvc_publish_check(tsvc_probe_via_t via, bool local, const char *engine_host,
                       const char *publish_address, char *msg, size_t len) {
  if (len) msg[0] = '\0';
  const char *addr = publish_address && *publish_address ? publish_address : "127.0.0.1";
  const char *where = engine_host && *engine_host ? engine_host : "the engine's machine";
  if (tsvc_ip_loopback(addr)) {
    if (local || via != TSVC_VIA_PUBLISHED) return 0;
    snprintf(msg, len,
             "docker.publish_address is %s, the loopback of the engine's machine (%s), and probes "
             "from this machine go through the published ports (docker.probe_via: %s): they "
             "could never reach them. Set docker.publish_address to an address of %s that this "
             "machine reaches (its address on your network, or 0.0.0.0 for every interface, "
             "behind a firewall), or probe inside the containers with docker.probe_via: exec",
             addr, where, via == TSVC_VIA_PUBLISHED ? "published, or auto for a remote engine"
                                                    : tsvc_probe_via_name(via), where);
    return TSVC_EINVAL;
  }
  snprintf(msg, len,
           "docker.publish_address is %s: the services' ports are published on %s of %s and "
           "anyone on that network can connect to them; let only the agent hosts through the "
           "firewall there (docs/remote.md)",
           addr, tsvc_ip_wildcard(addr) ? "every interface" : "that address", where);
  return 1;
}

const char *tsvc_published_host(const tsvc_docker_endpoint_t *ep, const char *publish_address,
                                char *buf, size_t len) {
  if (publish_address && *publish_address && !tsvc_ip_loopback(publish_address) &&
      !tsvc_ip_wildcard(publish_address))
    tsvc_strlcpy(buf, publish_address, len);
  else if (ep->transport == TSVC_DOCKER_UNIX)
    tsvc_strlcpy(buf, "127.0.0.1", len);
  else
    tsvc_strlcpy(buf, ep->host, len);
  return buf;
}

const char *tsvc_env_host_addr(const tsvc_config_t *cfg, const char *runtime, char *buf,
                               size_t len) {
  tsvc_strlcpy(buf, "127.0.0.1", len);
  bool process = runtime && *runtime ? strcmp(runtime, "process") == 0
                                     : cfg->runtime == TSVC_RUNTIME_PROCESS;
  tsvc_docker_endpoint_t ep;
  if (process || tsvc_docker_endpoint_parse(cfg->docker.host, &ep, NULL, 0) != 0) return buf;
  return tsvc_published_host(&ep, cfg->docker.publish_address, buf, len);
}

void tsvc_docker_opts_from_config(const tsvc_config_t *cfg, tsvc_docker_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->host = cfg->docker.host;
  o->tls = cfg->docker.tls.enabled;
  o->tls_verify = cfg->docker.tls.verify;
  o->tls_ca = cfg->docker.tls.ca;
  o->tls_cert = cfg->docker.tls.cert;
  o->tls_key = cfg->docker.tls.key;
  o->tls_origin = cfg->docker.tls.origin;
  o->ssh_socket = cfg->docker.ssh.socket;
  o->ssh_identity_file = cfg->docker.ssh.identity_file;
  o->ssh_config_file = cfg->docker.ssh.config_file;
}
