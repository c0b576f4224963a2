/*
 * servers: real servers (postgres, redis) and fake peers for the probe
 * tests, plus a helper that runs one probe on its own loop and proves the
 * loop empty afterwards.
 *
 * Servers run in temp dirs, bound to 127.0.0.1 on free ports, and are
 * stopped by PID. Postgres runs as the `postgres` user when the tests run
 * as root (initdb refuses root). The stop and free functions are safe to call twice.
 */
#ifndef TSVC_TESTS_SERVERS_H
#define TSVC_TESTS_SERVERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "probe/probe.h"
#include "probe/session.h"
#include "testutil.h"

/* ---- processes ---------------------------------------------------------- */

/* A free TCP port on 127.0.0.1 (bound then released), or 0. */
int tu_free_port(void);
/* Listen on 127.0.0.1:*port (0: a free port, written back): close-on-exec
 * (a child, a hook, must not keep it open), SO_REUSEADDR (the same port
 * again after a close). Returns the fd, or -1 when it cannot be bound. */
int tu_listen_port(int *port);
/* A service that flaps: times times, every_ms apart, close the listening
 * socket *fd, or (when closed, *fd -1) listen on port again. */
void tu_flap_port(int *fd, int port, int times, int every_ms);
/* Path of an executable found in PATH (static storage), or NULL. */
const char *tu_which(const char *name);
/*
 * Run argv (searched in PATH) and wait for it. as_pg: as the postgres user
 * when root. env: extra "K=V" strings (NULL-terminated) or NULL. out (may
 * be NULL): its stdout, NUL-terminated, truncated; stderr is dropped.
 * Returns the exit status, 128+signal, or -1 when it could not run.
 */
int tu_cmd(char *const argv[], bool as_pg, char *const env[], char *out, size_t outlen);
/* Start argv in the background, output appended to logpath (NULL: dropped).
 * Returns its pid or -1. */
pid_t tu_spawn(char *const argv[], bool as_pg, const char *logpath);
/* Wait up to ms for pid to exit. Returns its status (as tu_cmd) or -1. */
int tu_wait_pid(pid_t pid, int ms);
/* Send sig to pid, wait up to 15 s, then SIGKILL and reap. */
void tu_stop_pid(pid_t pid, int sig);
/* True when a TCP connect to 127.0.0.1:port succeeds. */
bool tu_port_open(int port);
/* Sleep ms milliseconds. */
void tu_sleep_ms(int ms);
/* Size of a file, or -1. */
long tu_file_size(const char *path);
/* Contents of a file from offset (malloc'd, NUL-terminated) or NULL. */
char *tu_read_file(const char *path, long offset);

/* Processes (not zombies) in process group pgid, by /proc; also counts a
 * process whose pid is pgid. */
int tu_group_alive(pid_t pgid);
/* Wait up to ms for tu_group_alive(pgid) to reach 0. Returns the last count. */
int tu_group_wait_gone(pid_t pgid, int ms);

/* The IPv4 TCP connections in TIME_WAIT that involve a port. */
typedef struct {
  size_t n;
  uint64_t key[8192]; /* local addr:port, remote addr:port */
  bool server_side[8192];
} tu_tw_t;
/* Snapshot them (after 200 ms, so that connections closed just before
 * settle). */
void tu_tw_snapshot(int port, tu_tw_t *tw);
/* Count those in now that were not in before: on the server side (local
 * port == port: the server closed first) and on the client side (remote
 * port == port: the client closed first). */
void tu_tw_new(const tu_tw_t *before, const tu_tw_t *now, int *server_side, int *client_side);

/* ---- postgres ----------------------------------------------------------- */

typedef struct {
  char *dir;    /* temp dir, owned by postgres; socket dir too */
  char *data;   /* dir/data */
  char *log;    /* dir/postgres.log: the server's stderr */
  char bindir[256];
  int port;
  pid_t pid;
} tu_pg_t;

/* True when postgres binaries are found; why not in why (may be NULL). */
bool tu_pg_available(char *why, size_t len);
/* initdb -U postgres --auth=trust, pg_hba.conf replaced by hba, postgres
 * listening on 127.0.0.1:free port, logging to pg->log. 0 or -1. */
int tu_pg_setup(tu_pg_t *pg, const char *hba);
/* Wait until pg_isready says accepting (up to ms). 0 or -1. */
int tu_pg_wait_ready(tu_pg_t *pg, int ms);
/* psql -c sql as superuser postgres. Returns psql's exit status. */
int tu_pg_sql(tu_pg_t *pg, const char *sql);
/* pg_isready -h 127.0.0.1 -p port [-U user] [-d db], with PGPASSWORD when
 * password is set. Returns its exit status (0 accepting, 1 rejecting, 2 no
 * response). */
int tu_pg_isready(tu_pg_t *pg, const char *user, const char *db, const char *password);
/* pg_ctl stop -m mode, without waiting. Returns pg_ctl's exit status. */
int tu_pg_ctl_stop(tu_pg_t *pg, const char *mode);
/* Stop (fast shutdown) if running, remove the temp dir, free. */
void tu_pg_free(tu_pg_t *pg);

/* A raw protocol connection as user/db, held open after ReadyForQuery.
 * Returns the fd or -1. Close with tu_pg_session_close. */
int tu_pg_session_open(int port, const char *user, const char *db);
void tu_pg_session_close(int fd);

/* ---- redis -------------------------------------------------------------- */

typedef struct {
  char *dir;
  int port;
  pid_t pid;
} tu_redis_t;

bool tu_redis_available(char *why, size_t len);
/* redis-server on 127.0.0.1:free port, --save "", in a temp dir, with extra
 * arguments (NULL-terminated, may be NULL). Waits until it listens. 0/-1. */
int tu_redis_start(tu_redis_t *r, const char *const extra[]);
/* redis-cli -h 127.0.0.1 -p port [args...] (NULL-terminated); stdout in out.
 * Returns its exit status. */
int tu_redis_cli(tu_redis_t *r, const char *const args[], char *out, size_t outlen);
void tu_redis_stop(tu_redis_t *r);
/* Same, on a given port (0: a free one): a restart where clients expect it. */
int tu_redis_start_port(tu_redis_t *r, int port, const char *const extra[]);

/* ---- fake peers --------------------------------------------------------- */

typedef enum {
  TU_FAKE_HANG,    /* accept, read, never answer */
  TU_FAKE_REPLY,   /* after the first bytes arrive, send reply, then hold */
  TU_FAKE_REPLY_CLOSE, /* same, then close */
  TU_FAKE_FLOOD,   /* send reply (if any) then 'a's: 10 MiB in all, or
                      until the peer goes away */
  TU_FAKE_CLOSE,   /* accept and close at once */
  TU_FAKE_RST      /* accept and reset (SO_LINGER 0) */
} tu_fake_mode_t;

typedef struct {
  tu_fake_mode_t mode;
  const void *reply;
  size_t reply_len;
  int port;
  int lfd;
  int stop[2];
  pthread_t thread;
  bool running;
  /* Filled by the thread (read after tu_fake_stop). */
  int accepted;
  uint64_t sent;
  uint64_t received;
  char req[2048]; /* the first bytes received, NUL-terminated */
  size_t req_len;
} tu_fake_t;

/* Listen on 127.0.0.1:ephemeral and serve connections in a thread. 0/-1. */
int tu_fake_start(tu_fake_t *f, tu_fake_mode_t mode, const void *reply, size_t len);
void tu_fake_stop(tu_fake_t *f);

/* ---- running probes ----------------------------------------------------- */

typedef struct {
  int calls;
  tsvc_probe_result_t res; /* res.output is NULL: see output */
  char *output;            /* copy of the exec output, or NULL */
  double elapsed_ms;       /* from start to the callback */
  double lag_ms;           /* meanwhile, the loop thread's run-queue delay: what a
                              loaded machine added to elapsed_ms (testutil.h) */
} tu_probe_out_t;

/* Run uv_run until no handle is left, assert none is, close the loop. */
void tu_loop_finish(uv_loop_t *loop);
/* Start spec on a fresh loop, run it to the end, assert exactly one
 * callback and an empty loop. */
void tu_probe_run(const tsvc_probe_spec_t *spec, tu_probe_out_t *out);
void tu_probe_out_free(tu_probe_out_t *out);
/* The callback tu_probe_run uses, for tests that drive the loop; data is a
 * tu_probe_ctx_t. */
typedef struct {
  tu_probe_out_t *out;
  uint64_t t0;   /* uv_hrtime() at start */
  int64_t runq0; /* tu_runq_ns() at start; 0: unknown (lag_ms stays 0) */
} tu_probe_ctx_t;
void tu_probe_cb(const tsvc_probe_result_t *res, void *data);

/* ---- held sessions (healthcheck.session) -------------------------------- */

/* A session on a loop of its own, kept across checks; its checks' timeouts
   on a shared deadline set, as the monitor's sessions (set the session's
   deadlines to NULL for its own timer). */
typedef struct {
  uv_loop_t loop;
  tsvc_deadlines_t dls;
  tsvc_session_t *s;
} tu_session_t;
void tu_session_open(tu_session_t *t, const tsvc_probe_spec_t *spec, tsvc_ms_t full_every);
/* One check: asserts one callback, never from inside the call; then lets a
 * held connection being opened finish its login. */
void tu_session_check(tu_session_t *t, tu_probe_out_t *out);
void tu_session_info(tu_session_t *t, tsvc_session_info_t *si);
/* Free the session, run the loop empty, assert it is. NULL session: no-op. */
void tu_session_close(tu_session_t *t);

#endif /* TSVC_TESTS_SERVERS_H */
