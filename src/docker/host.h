/*
 * host: a Docker host URL taken apart, as the docker CLI accepts it in
 * DOCKER_HOST or -H (docs/remote.md):
 *
 *   unix:///path/to/docker.sock     the engine's socket on this machine
 *   tcp://host[:port]               the Engine API over TCP; port 2375, or
 *                                   2376 with TLS ([v6] in brackets)
 *   ssh://[user@]host[:port]        the engine's socket on that machine,
 *                                   forwarded over ssh (tunnel.h); no
 *                                   password, path, query or fragment
 *
 * And the address helpers the remote-engine decisions need. Pure: no
 * socket, no environment, no allocation.
 */
#ifndef TSVC_DOCKER_HOST_H
#define TSVC_DOCKER_HOST_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
  TSVC_DOCKER_UNIX, /* a unix socket on this machine */
  TSVC_DOCKER_TCP,  /* tcp:// (TLS or not: the client's options say) */
  TSVC_DOCKER_SSH   /* ssh:// */
} tsvc_docker_transport_t;

typedef struct tsvc_docker_endpoint_s {
  tsvc_docker_transport_t transport;
  char path[256]; /* unix: the socket's absolute path */
  char host[256]; /* tcp, ssh: a name or an address (IPv6 without brackets) */
  int port;       /* tcp, ssh: as given, 0 when none (the default applies) */
  char user[128]; /* ssh: the user, "" when none (ssh's default) */
} tsvc_docker_endpoint_t;

/* "unix", "tcp", "ssh". */
const char *tsvc_docker_transport_name(tsvc_docker_transport_t t);

/*
 * Take url apart into out. Returns 0, or TSVC_EINVAL with a message for
 * people in err (what is wrong with which part: "ssh://me:pw@h: a password
 * in the URL is not supported; use a key (docker.ssh.identity_file)").
 */
int tsvc_docker_endpoint_parse(const char *url, tsvc_docker_endpoint_t *out, char *err,
                               size_t errlen);

/* An IP address literal ("10.0.0.5", "::1"; no brackets, no name)? */
bool tsvc_ip_literal(const char *s);
/* A loopback address: 127.0.0.0/8, ::1, ::ffff:127.x.y.z, or the name
   "localhost". Anything else (0.0.0.0 included) is not. */
bool tsvc_ip_loopback(const char *s);
/* The wildcard address: 0.0.0.0 or :: (every interface). */
bool tsvc_ip_wildcard(const char *s);

/* "host:port" for people and URLs, IPv6 in brackets, into buf. */
const char *tsvc_hostport(const char *host, int port, char *buf, size_t len);

#endif /* TSVC_DOCKER_HOST_H */
