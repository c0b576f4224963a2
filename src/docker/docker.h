/*
 * docker: an asynchronous client of the Docker Engine API.
 *
 * HTTP/1.1 over the engine's unix socket (unix:///var/run/docker.sock), or
 * over TCP (tcp://host:port), with TLS when DOCKER_TLS_VERIFY is set (the
 * client certificate, key and CA are read from DOCKER_CERT_PATH, default
 * ~/.docker: ca.pem, cert.pem, key.pem, as the docker CLI reads them).
 * libcurl's multi interface runs on the caller's libuv loop (the pattern of
 * curl's docs/examples/multi-uv.c), so no call ever blocks the loop; JSON is
 * jansson's. The docker CLI is never run.
 *
 * Version: the first request negotiates the API version with GET /_ping (the
 * daemon's Api-Version header, capped to TSVC_DOCKER_API_MAX); requests made
 * meanwhile wait for it. Every path is then sent as /v1.xx/path. A request
 * that finds the daemon unreachable forgets the version, so a daemon that
 * comes back (maybe upgraded) is negotiated with again.
 *
 * Limits: every response body is capped (TSVC_DOCKER_MAX_BODY; logs keep
 * their last TSVC_DOCKER_MAX_LOGS bytes, exec output its last
 * TSVC_DOCKER_MAX_OUTPUT, each event at most TSVC_DOCKER_MAX_EVENT). A
 * response over its cap fails with TSVC_EIO. Requests time out after
 * TSVC_DOCKER_TIMEOUT_MS (stop and restart: their stop timeout plus that);
 * the event stream and exec start have no time limit of their own.
 *
 * Errors: the callback's reply carries a tsvc code, the HTTP status and, in
 * errmsg, the daemon's own message verbatim ({"message": "No such image:
 * postgres:16"} gives "No such image: postgres:16"):
 *   404 -> TSVC_ENOENT; 409 -> TSVC_EEXIST when a name is already in use or
 *   a network already exists, else TSVC_EBUSY ("... is not running");
 *   no connection (socket missing, refused, daemon gone mid-request) ->
 *   TSVC_EUNREACH; a request timeout -> TSVC_ETIMEDOUT; an oversized
 *   response -> TSVC_EIO; any other status -> TSVC_ERUNTIME.
 *
 * Callbacks and cancellation (libuv's rule): a function that takes a
 * callback and returns an error never calls the callback. Otherwise the
 * callback is called exactly once, always from the loop (never from inside
 * the call that started the request), unless the request is cancelled first
 * with tsvc_docker_cancel() or the client is freed: a cancelled request's
 * callback is NEVER called. The tsvc_docker_req_t handle is valid until its
 * callback returns or it is cancelled, whichever comes first; do not use it
 * afterwards. Callbacks may start, cancel and free anything, including the
 * client itself.
 *
 * Ownership: tsvc_docker_t is owned by the caller (tsvc_docker_free). The
 * reply and everything it points to (json, data, errmsg) is owned by the
 * client and valid only during the callback: json_incref() what you keep.
 * Input strings and JSON are copied; the caller keeps its own.
 *
 * Threads: one client belongs to one loop; call it from the loop's thread.
 */
#ifndef TSVC_DOCKER_H
#define TSVC_DOCKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "tsvc.h"

#define TSVC_DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"
#define TSVC_DOCKER_API_MIN "1.25"      /* older daemons are refused */
#define TSVC_DOCKER_API_MAX "1.45"      /* newer daemons are spoken to in this one */
#define TSVC_DOCKER_MAX_BODY (1u << 20) /* 1 MiB per JSON response */
#define TSVC_DOCKER_MAX_LOGS (256u << 10)
#define TSVC_DOCKER_MAX_OUTPUT 4096u    /* exec output kept: the last 4 KiB */
#define TSVC_DOCKER_MAX_EVENT (64u << 10)
#define TSVC_DOCKER_TIMEOUT_MS 30000
#define TSVC_DOCKER_CONNECT_TIMEOUT_MS 5000

typedef struct tsvc_docker_s tsvc_docker_t;
typedef struct tsvc_docker_req_s tsvc_docker_req_t;
typedef struct tsvc_docker_events_s tsvc_docker_events_t;

/* What a request ends with. Valid only during the callback. */
typedef struct {
  int status;          /* 0, or a negative TSVC_E* code */
  long http_status;    /* the daemon's HTTP status; 0 when none came */
  const char *errmsg;  /* "" on success; the daemon's message verbatim, or
                          what went wrong on the way ("cannot connect ...") */
  json_t *json;        /* the parsed result, borrowed (NULL when none): see
                          each operation */
  const char *data;    /* logs / exec output, NUL-terminated (NULL when
                          none); stdout and stderr interleaved */
  size_t len;          /* bytes in data */
  bool truncated;      /* data holds only the last bytes of the output */
  /* tsvc_docker_exec_run only: */
  int exit_code;       /* the command's exit code (137 when killed), or -1 */
  int pid;             /* its pid on the host, or 0 */
  bool timed_out;      /* it ran past the timeout and was killed */
} tsvc_docker_reply_t;

typedef void (*tsvc_docker_cb)(const tsvc_docker_reply_t *reply, void *data);

/* The host to use when the caller configured none: $DOCKER_HOST when set
 * and non-empty, else TSVC_DOCKER_DEFAULT_HOST. Never NULL; static or
 * environment storage, do not free. */
const char *tsvc_docker_default_host(void);

/* How to reach an engine (docs/remote.md). Strings are copied. */
typedef struct {
  const char *host;          /* "unix:///path", "tcp://host[:port]",
                                "ssh://[user@]host[:port]" (docker/host.h);
                                NULL: tsvc_docker_default_host() */
  /* tcp:// only. tls_env: as the docker CLI, TLS when DOCKER_TLS_VERIFY is
     set, with ca.pem, cert.pem and key.pem of DOCKER_CERT_PATH (default
     ~/.docker); the tls fields below are then ignored. */
  bool tls_env;
  bool tls;                  /* speak TLS */
  bool tls_verify;           /* check the engine's certificate against
                                tls_ca, and that it names the host */
  const char *tls_ca;        /* files; NULL: none (no client certificate, */
  const char *tls_cert;      /* or no CA: verification then needs one) */
  const char *tls_key;
  const char *tls_origin;    /* where they were set, named in messages
                                ("docker.tls"); NULL: "TLS" */
  /* ssh:// only (docker/tunnel.h). */
  const char *ssh_socket;    /* the engine's socket there; NULL:
                                /var/run/docker.sock */
  const char *ssh_identity_file; /* ssh -i; NULL: none */
  const char *ssh_config_file;   /* ssh -F; NULL: none */
  const char *ssh_program;       /* NULL: ssh from $PATH */
} tsvc_docker_opts_t;

/*
 * A client on loop for o->host. Nothing is sent yet; for an ssh:// host
 * the ssh tunnel is started (requests wait for it while it starts).
 * Returns 0 and *out (caller frees with tsvc_docker_free), or TSVC_EINVAL
 * (bad host, a certificate file that cannot be read, no ssh) / TSVC_ENOMEM
 * with a reason in err that names the file or the setting.
 */
int tsvc_docker_new_opts(uv_loop_t *loop, const tsvc_docker_opts_t *o, tsvc_docker_t **out,
                         char *err, size_t errlen);

/* tsvc_docker_new_opts for host (NULL: tsvc_docker_default_host()) with TLS
   as the environment says (tls_env). */
int tsvc_docker_new(uv_loop_t *loop, const char *host, tsvc_docker_t **out,
                    char *err, size_t errlen);

/* The host taken apart (docker/host.h); valid while the client lives. */
struct tsvc_docker_endpoint_s;
const struct tsvc_docker_endpoint_s *tsvc_docker_endpoint(const tsvc_docker_t *d);

/* Whether the engine runs on this machine, so that the pids it reports are
   ours (exec probes killed on timeout from here): true for a unix socket,
   false over tcp and ssh until tsvc_docker_set_local (its identity matched
   the local engine's). */
bool tsvc_docker_is_local(const tsvc_docker_t *d);
void tsvc_docker_set_local(tsvc_docker_t *d, bool local);

/* The ssh tunnel's pid (ssh:// hosts; 0 when none runs), for tests and
   messages. */
int tsvc_docker_tunnel_pid(const tsvc_docker_t *d);

/*
 * Cancels every request (their callbacks are not called), stops every
 * event stream (handles from tsvc_docker_events_start become invalid) and
 * closes the client's handles. The memory is released by close callbacks:
 * run the loop afterwards (uv_run returns once it is all gone). NULL is a
 * no-op. Safe to call from any of the client's callbacks.
 */
void tsvc_docker_free(tsvc_docker_t *d);

/* Cancel one request: its callback will not be called. NULL is a no-op. */
void tsvc_docker_cancel(tsvc_docker_req_t *req);

/* The negotiated API version ("1.41"), or "" before negotiation. */
const char *tsvc_docker_api_version(const tsvc_docker_t *d);
/* The host this client talks to, as given (or defaulted). */
const char *tsvc_docker_host(const tsvc_docker_t *d);

/*
 * Every operation below: cb(reply, data) once (see above); reqp, when not
 * NULL, receives the handle for tsvc_docker_cancel. Returns 0, or
 * TSVC_EINVAL / TSVC_ENOMEM (cb never called). Names and ids are a
 * container's or network's name or id.
 */

/* GET /_ping and negotiate the version (done again even when known), always
 * on a new connection: TSVC_EUNREACH when no new client can connect.
 * reply.json: {"ApiVersion": the daemon's, "Negotiated": the one we use}. */
int tsvc_docker_ping(tsvc_docker_t *d, tsvc_docker_cb cb, void *data,
                     tsvc_docker_req_t **reqp);

/* Any versioned request: method ("GET", "POST", "DELETE"), path with its
 * query ("/volumes/x"), body copied (NULL: none). reply.json: the parsed
 * body, NULL when empty or not JSON. */
int tsvc_docker_request(tsvc_docker_t *d, const char *method, const char *path,
                        const json_t *body, tsvc_docker_cb cb, void *data,
                        tsvc_docker_req_t **reqp);

/* Networks. inspect: reply.json is the network. ensure: inspect, and create
 * a bridge network when there is none (labels: {"k": "v"} or NULL; a
 * concurrent creation is fine); reply.json is the network's inspection. */
int tsvc_docker_network_inspect(tsvc_docker_t *d, const char *name, tsvc_docker_cb cb,
                                void *data, tsvc_docker_req_t **reqp);
int tsvc_docker_network_ensure(tsvc_docker_t *d, const char *name, const json_t *labels,
                               tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp);
int tsvc_docker_network_remove(tsvc_docker_t *d, const char *name, tsvc_docker_cb cb,
                               void *data, tsvc_docker_req_t **reqp);

/* Containers whose label matches ("tanuki.service" or "k=v"; NULL: all),
 * running or not (all=true) or running only. reply.json: the array of
 * GET /containers/json. */
int tsvc_docker_container_list(tsvc_docker_t *d, const char *label, bool all,
                               tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp);

/* What tsvc_docker_container_create makes. NULL-terminated string lists;
 * NULL fields are left to the image. */
typedef struct {
  const char *name;                 /* required */
  const char *image;                /* required */
  const char *const *env;           /* "KEY=value" */
  const char *const *cmd;           /* argv; NULL: the image's CMD */
  const char *const *volumes;       /* "name:/path[:ro]": name is a named
                                       volume (created by the daemon when
                                       missing); an absolute name is a bind */
  const char *const *labels;        /* "key=value" */
  const char *network;              /* joined at creation; NULL: default bridge */
  const char *const *aliases;       /* DNS aliases on network */
  int port;                         /* container port published on
                                       host_ip:host_port (tcp); 0: none */
  int host_port;                    /* 0: same as port */
  const char *host_ip;              /* the engine machine's address to
                                       publish on; NULL: 127.0.0.1 */
} tsvc_docker_container_spec_t;

/* POST /containers/create?name=..., restart policy "no" (the monitor does the
 * restarting). reply.json: {"Id": ..., "Warnings": [...]}. A missing image
 * fails with TSVC_ENOENT ("No such image: ..."): nothing is pulled here
 * (tsvc_docker_image_pull does that). */
int tsvc_docker_container_create(tsvc_docker_t *d, const tsvc_docker_container_spec_t *spec,
                                 tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp);
/* Start; one already running is a success (HTTP 304). */
int tsvc_docker_container_start(tsvc_docker_t *d, const char *id, tsvc_docker_cb cb,
                                void *data, tsvc_docker_req_t **reqp);
/* Stop / restart with SIGTERM (or the image's STOPSIGNAL), then SIGKILL after
 * stop_timeout_s seconds (?t=). Stopping a stopped container succeeds. */
int tsvc_docker_container_stop(tsvc_docker_t *d, const char *id, int stop_timeout_s,
                               tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp);
int tsvc_docker_container_restart(tsvc_docker_t *d, const char *id, int stop_timeout_s,
                                  tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp);
/* Send a signal ("SIGKILL", "TERM"; NULL: SIGKILL). Not running: TSVC_EBUSY. */
int tsvc_docker_container_kill(tsvc_docker_t *d, const char *id, const char *signal,
                               tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp);
/* Remove (force: even when running). Volumes are never removed (v=false). */
int tsvc_docker_container_remove(tsvc_docker_t *d, const char *id, bool force,
                                 tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp);
/* reply.json: GET /containers/{id}/json; see tsvc_docker_container_info. */
int tsvc_docker_container_inspect(tsvc_docker_t *d, const char *id, tsvc_docker_cb cb,
                                  void *data, tsvc_docker_req_t **reqp);
/* The last `tail` lines of stdout and stderr (tail < 0: all), demultiplexed,
 * in reply.data; at most TSVC_DOCKER_MAX_LOGS bytes (the last ones). */
int tsvc_docker_container_logs(tsvc_docker_t *d, const char *id, int tail,
                               tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp);

/* The fields of a container inspection the monitor uses. */
typedef struct {
  char id[65];
  char name[256];       /* without the leading '/' */
  char status[16];      /* created, running, paused, restarting, removing,
                           exited, dead */
  bool running;
  bool oom_killed;
  int pid;              /* on the host; 0 when not running */
  int exit_code;
  char health[16];      /* "" (no HEALTHCHECK), starting, healthy, unhealthy */
  char ip[64];          /* address on the network asked for; "" when none */
  char error[256];      /* State.Error */
} tsvc_docker_container_info_t;

/* Fill out from an inspection (reply.json of container_inspect); network
 * picks the address (NULL: the first network's). Pure. Returns 0, or
 * TSVC_EINVAL when inspect is not a container inspection. */
int tsvc_docker_container_info(const json_t *inspect, const char *network,
                               tsvc_docker_container_info_t *out);

/* Images. inspect: reply.json is GET /images/{name}/json (Id,
 * Config.ExposedPorts, Size, ...); a missing image is TSVC_ENOENT. */
int tsvc_docker_image_inspect(tsvc_docker_t *d, const char *image, tsvc_docker_cb cb,
                              void *data, tsvc_docker_req_t **reqp);

/*
 * Pull: POST /images/create?fromImage=NAME&tag=TAG (NAME and TAG from
 * tsvc_image_ref_parse; tag "latest" when the image names none, so that
 * one tag is pulled, never every tag). auth is the X-Registry-Auth value
 * (tsvc_registry_auth; NULL: none); it is copied and wiped when freed.
 *
 * The daemon streams one JSON line per step; they are summed up as they
 * come (image.h, at most 16 KiB per line, TSVC_PULL_MAX_LAYERS layers
 * followed), and progress(p, data), when not NULL, is called from the loop
 * at most every TSVC_DOCKER_PULL_PROGRESS_MS while something changed, and
 * once more just before the callback of a successful pull when something
 * changed since (a cancel from that call is too late: it is ignored); never
 * after the callback. No time limit: a pull fails when the daemon sends
 * nothing for TSVC_DOCKER_PULL_STALL_S (it sends progress while it waits
 * for a registry).
 *
 * reply: status 0 when the image is there, with reply.json {"Status":
 * "Downloaded newer image for ..." | "Image is up to date for ...",
 * "Digest": ..., "Layers": n, "LayersDone": n, "Bytes": downloaded}. A
 * failure carries the daemon's or the registry's own words in errmsg:
 * TSVC_ENOENT for an image the registry does not have (HTTP 404, "manifest
 * unknown", "not found"), TSVC_ERUNTIME for any other refusal (registry
 * down, authentication required, ...), TSVC_EUNREACH / TSVC_ETIMEDOUT as
 * for every request (about the Docker daemon).
 */
#define TSVC_DOCKER_PULL_PROGRESS_MS 200
#define TSVC_DOCKER_PULL_STALL_S 120
struct tsvc_pull_progress_s;
typedef void (*tsvc_docker_progress_cb)(const struct tsvc_pull_progress_s *p, void *data);
int tsvc_docker_image_pull(tsvc_docker_t *d, const char *image, const char *auth,
                           tsvc_docker_progress_cb progress, tsvc_docker_cb cb, void *data,
                           tsvc_docker_req_t **reqp);

/* Exec, step by step. create: argv NULL-terminated; reply.json {"Id": ...}.
 * start: runs it attached, until it ends; reply.data holds the last
 * TSVC_DOCKER_MAX_OUTPUT bytes of its output. inspect: reply.json is
 * GET /exec/{id}/json (ExitCode, Pid, Running). */
int tsvc_docker_exec_create(tsvc_docker_t *d, const char *container, const char *const *argv,
                            tsvc_docker_cb cb, void *data, tsvc_docker_req_t **reqp);
int tsvc_docker_exec_start(tsvc_docker_t *d, const char *exec_id, tsvc_docker_cb cb,
                           void *data, tsvc_docker_req_t **reqp);
int tsvc_docker_exec_inspect(tsvc_docker_t *d, const char *exec_id, tsvc_docker_cb cb,
                             void *data, tsvc_docker_req_t **reqp);
/*
 * Kill a running exec'd process from the host: exec inspect gives its pid in
 * the host's namespace, which gets SIGKILL after checking that the pid is
 * still in the container's cgroup (so a recycled pid is never hit). Only
 * when the engine runs on this host (tsvc_docker_is_local): else it fails
 * with TSVC_EINVAL. Not running any more: success, nothing killed.
 * reply.pid: the pid killed (0: none).
 */
int tsvc_docker_exec_kill(tsvc_docker_t *d, const char *exec_id, tsvc_docker_cb cb,
                          void *data, tsvc_docker_req_t **reqp);
/*
 * create + start + inspect, the exec probe: runs argv in container; when it
 * runs past timeout_ms (> 0) it is killed as by tsvc_docker_exec_kill and
 * reply.timed_out is set. reply: status 0 when the command ran (whatever its
 * exit code), exit_code, pid, data/len/truncated = its last output bytes.
 * A kill that cannot be done, or a process that outlives its kill by 5 s,
 * ends the request with TSVC_ETIMEDOUT (the process may still run then).
 * Cancelling the request does not kill the command: give it a timeout.
 */
int tsvc_docker_exec_run(tsvc_docker_t *d, const char *container, const char *const *argv,
                         int timeout_ms, tsvc_docker_cb cb, void *data,
                         tsvc_docker_req_t **reqp);

/*
 * The event stream: GET /events filtered to containers with label (as in
 * container_list; NULL: every container) and to the actions die, oom, stop,
 * start, kill, restart and destroy. on_event(event, data) gets each event as
 * its JSON line arrives (borrowed; json_incref to keep). on_state(reachable,
 * errmsg, data) is told when the stream is established (true, "") and when
 * the daemon cannot be reached (false, why); each change is told once. The
 * stream reconnects by itself, 50 ms after it ends and then backing off from
 * 100 ms doubling to 2 s while the daemon is unreachable. Events that happen
 * while it is disconnected are not replayed: on reachable again, inspect what
 * you watch.
 * Returns 0 and *out (stop with tsvc_docker_events_stop; tsvc_docker_free
 * stops it too), or TSVC_EINVAL / TSVC_ENOMEM.
 */
typedef void (*tsvc_docker_event_cb)(json_t *event, void *data);
typedef void (*tsvc_docker_state_cb)(bool reachable, const char *errmsg, void *data);
int tsvc_docker_events_start(tsvc_docker_t *d, const char *label, tsvc_docker_event_cb on_event,
                             tsvc_docker_state_cb on_state, void *data,
                             tsvc_docker_events_t **out);
/* Stop the stream; no callback is called afterwards. NULL is a no-op. */
void tsvc_docker_events_stop(tsvc_docker_events_t *ev);

#endif /* TSVC_DOCKER_H */
