/*
 * tunnel: the engine's socket on another machine, forwarded over ssh to a
 * socket of ours, for DOCKER_HOST=ssh://user@host[:port] (docs/remote.md).
 *
 * One OpenSSH client runs as a child for as long as the tunnel lives:
 *
 *   ssh -N -T -o BatchMode=yes -o ExitOnForwardFailure=yes ... \
 *       -L <dir>/docker.sock:/var/run/docker.sock [-p port] [-l user] -- host
 *
 * (-L with unix sockets, OpenSSH 6.7 and later.) Every connection of the
 * docker client goes through it as one ssh channel: one login, however many
 * requests, event streams and exec probes run. The docker CLI's other way,
 * `ssh host docker system dial-stdio`, logs in once per connection and
 * needs the docker CLI on the engine's machine.
 *
 * The child is supervised as a service is: when ssh exits (network gone,
 * sshd restarted, killed), the tunnel is down and ssh is started again
 * after a backoff (TSVC_TUNNEL_BACKOFF_MS doubling to TSVC_TUNNEL_MAX_BACKOFF_MS;
 * back to the first step once it was up for TSVC_TUNNEL_STABLE_MS). It is
 * up once our socket accepts connections (ssh listens on it only after it
 * logged in). BatchMode: ssh never asks for a password or a host key; a
 * refusal ends it with its own words ("Permission denied (publickey)",
 * "Host key verification failed."), kept for messages. ServerAlive*
 * options make a dead network end it within 15 s. setpriv --pdeathsig
 * (util-linux), when installed, takes ssh along when the thread that
 * started it dies.
 *
 * Callbacks: on_state(state, msg, data) is called from the loop on every
 * change (never inside tsvc_tunnel_new or tsvc_tunnel_free).
 *
 * Ownership: the caller owns the tunnel (tsvc_tunnel_free). Strings are
 * copied. Our socket lives in a private directory (mode 0700) under
 * $TMPDIR or /tmp, removed when the tunnel is freed.
 */
#ifndef TSVC_TUNNEL_H
#define TSVC_TUNNEL_H

#include <uv.h>

#define TSVC_TUNNEL_BACKOFF_MS 500
#define TSVC_TUNNEL_MAX_BACKOFF_MS 30000
#define TSVC_TUNNEL_STABLE_MS 10000
/* ssh's ConnectTimeout is 5 s; login and forwarding get this long in all. */
#define TSVC_TUNNEL_READY_MS 20000

typedef struct tsvc_tunnel_s tsvc_tunnel_t;

typedef enum {
  TSVC_TUNNEL_STARTING, /* ssh runs, our socket does not answer yet */
  TSVC_TUNNEL_UP,       /* our socket answers */
  TSVC_TUNNEL_DOWN      /* ssh is not running; started again later */
} tsvc_tunnel_state_t;

typedef void (*tsvc_tunnel_cb)(tsvc_tunnel_state_t state, const char *msg, void *data);

typedef struct {
  const char *user;          /* NULL or "": ssh's default */
  const char *host;          /* required */
  int port;                  /* 0: ssh's default */
  const char *remote_socket; /* the engine's socket there; required */
  const char *identity_file; /* ssh -i; NULL: none */
  const char *config_file;   /* ssh -F; NULL: none */
  const char *program;       /* NULL: "ssh" from $PATH */
} tsvc_tunnel_opts_t;

/*
 * Start ssh (state STARTING). Returns 0 and *out, or an error with a
 * reason in err (ssh not installed, no directory for the socket);
 * on_state is never called then.
 */
int tsvc_tunnel_new(uv_loop_t *loop, const tsvc_tunnel_opts_t *o, tsvc_tunnel_cb on_state,
                    void *data, tsvc_tunnel_t **out, char *err, size_t errlen);

/* Our socket's path (valid until the tunnel is freed). */
const char *tsvc_tunnel_socket(const tsvc_tunnel_t *t);
tsvc_tunnel_state_t tsvc_tunnel_state(const tsvc_tunnel_t *t);
/* Why it is down (ssh's last words, its exit status, when it comes back),
   or "" while it is not. */
const char *tsvc_tunnel_why(const tsvc_tunnel_t *t);
/* ssh's pid, 0 when it does not run. */
int tsvc_tunnel_pid(const tsvc_tunnel_t *t);
/* "user@host:port" as ssh is told, for messages. */
const char *tsvc_tunnel_target(const tsvc_tunnel_t *t);

/*
 * Stop: no callback from now on; ssh gets SIGTERM (SIGKILL 2 s later when
 * it lingers) and is reaped, our socket and directory are removed. The
 * memory goes with the last close callback: run the loop until it is
 * empty. NULL is a no-op.
 */
void tsvc_tunnel_free(tsvc_tunnel_t *t);

#endif /* TSVC_TUNNEL_H */
