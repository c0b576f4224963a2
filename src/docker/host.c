/* host.c: see host.h. */
#include "docker/host.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "tsvc.h"

const char *tsvc_docker_transport_name(tsvc_docker_transport_t t) {
  switch (t) {
  case TSVC_DOCKER_UNIX: return "unix";
  case TSVC_DOCKER_TCP: return "tcp";
  case TSVC_DOCKER_SSH: return "ssh";
  }
  return "?";
}

static int fail(char *err, size_t errlen, const char *url, const char *why) {
  if (err && errlen) snprintf(err, errlen, "docker host %s: %s", url, why);
  return TSVC_EINVAL;
}

/* host[:port] or [v6][:port] of n bytes at s into out. */
static int host_port(const char *url, const char *s, size_t n, tsvc_docker_endpoint_t *out,
                     char *err, size_t errlen) {
  const char *h = s, *colon = NULL;
  size_t hn;
  if (n && s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (!close) return fail(err, errlen, url, "an IPv6 address needs its closing ']'");
    h = s + 1;
    hn = (size_t)(close - h);
    if (close + 1 < s + n) {
      if (close[1] != ':') return fail(err, errlen, url, "expected ':port' after ']'");
      colon = close + 1;
    }
  } else {
    colon = memchr(s, ':', n);
    hn = colon ? (size_t)(colon - s) : n;
  }
  if (hn == 0) return fail(err, errlen, url, "no host name");
  if (hn >= sizeof out->host) return fail(err, errlen, url, "the host name is too long");
  for (size_t i = 0; i < hn; i++)
    if ((unsigned char)h[i] <= ' ' || h[i] == '/' || h[i] == '@' || h[i] == '?' || h[i] == '#')
      return fail(err, errlen, url, "the host name holds a character it cannot have");
  memcpy(out->host, h, hn);
  out->host[hn] = '\0';
  if (colon) {
    char p[8];
    size_t pn = (size_t)(s + n - colon - 1);
    long port;
    if (pn == 0 || pn >= sizeof p) return fail(err, errlen, url, "the port must be 1-65535");
    memcpy(p, colon + 1, pn);
    p[pn] = '\0';
    if (tsvc_parse_int(p, 1, 65535, &port) != 0)
      return fail(err, errlen, url, "the port must be 1-65535");
    out->port = (int)port;
  }
  return 0;
}

int tsvc_docker_endpoint_parse(const char *url, tsvc_docker_endpoint_t *out, char *err,
                               size_t errlen) {
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = '\0';
  if (!url || !*url) return fail(err, errlen, "\"\"", "empty");
  if (strncmp(url, "unix://", 7) == 0) {
    const char *path = url + 7;
    out->transport = TSVC_DOCKER_UNIX;
    if (path[0] != '/') return fail(err, errlen, url, "the socket path must be absolute");
    if (strlen(path) >= sizeof out->path)
      return fail(err, errlen, url, "the socket path is too long");
    tsvc_strlcpy(out->path, path, sizeof out->path);
    return 0;
  }
  if (strncmp(url, "tcp://", 6) == 0) {
    const char *hp = url + 6;
    out->transport = TSVC_DOCKER_TCP;
    /* A base path after the host is the docker CLI's too; it is not used. */
    return host_port(url, hp, strcspn(hp, "/"), out, err, errlen);
  }
  if (strncmp(url, "ssh://", 6) == 0) {
    const char *s = url + 6;
    out->transport = TSVC_DOCKER_SSH;
    size_t n = strcspn(s, "/?#");
    if (s[n]) {
      /* As the docker CLI: the engine's socket is the remote default. */
      return fail(err, errlen, url,
                  "nothing may follow the host (no path, query or fragment): the engine's "
                  "socket on that machine is docker.ssh.socket");
    }
    const char *at = memchr(s, '@', n);
    if (at) {
      size_t un = (size_t)(at - s);
      if (memchr(s, ':', un))
        return fail(err, errlen, url,
                    "a password in the URL is not supported; use a key "
                    "(docker.ssh.identity_file, or ssh-agent)");
      if (un == 0) return fail(err, errlen, url, "an empty user name before '@'");
      if (un >= sizeof out->user) return fail(err, errlen, url, "the user name is too long");
      memcpy(out->user, s, un);
      out->user[un] = '\0';
      n -= un + 1;
      s = at + 1;
    }
    return host_port(url, s, n, out, err, errlen);
  }
  return fail(err, errlen, url,
              "unsupported (use unix:///path, tcp://host:port or ssh://user@host[:port])");
}

bool tsvc_ip_literal(const char *s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return s && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

bool tsvc_ip_loopback(const char *s) {
  if (!s) return false;
  if (strcasecmp(s, "localhost") == 0) return true;
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, s, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, s, &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  return false;
}

bool tsvc_ip_wildcard(const char *s) {
  struct in_addr a4;
  struct in6_addr a6;
  if (!s) return false;
  if (inet_pton(AF_INET, s, &a4) == 1) return a4.s_addr == htonl(INADDR_ANY);
  if (inet_pton(AF_INET6, s, &a6) == 1) return IN6_IS_ADDR_UNSPECIFIED(&a6);
  return false;
}

const char *tsvc_hostport(const char *host, int port, char *buf, size_t len) {
  bool v6 = host && strchr(host, ':');
  snprintf(buf, len, "%s%s%s:%d", v6 ? "[" : "", host ? host : "", v6 ? "]" : "", port);
  return buf;
}
