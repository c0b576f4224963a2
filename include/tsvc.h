/*
 * tsvc.h: the public C API of tanuki-svc.
 *
 * tanuki-svc starts shared services (Postgres, Redis, any image), checks them
 * on a schedule, restarts the ones that stop answering and exposes their
 * health. This header holds the vocabulary every module shares (error codes,
 * health states, probe result codes) and the ServiceManager API.
 *
 * Conventions: functions return 0 on success and a negative TSVC_E* code on
 * failure; details meant for people go into a caller-owned error buffer.
 * The library never exits and never prints. Getters return copies that the
 * caller owns and frees with the matching *_free function.
 */
#ifndef TSVC_H
#define TSVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Milliseconds. Durations, and times on the monitor's monotonic clock. */
typedef int64_t tsvc_ms_t;
#define TSVC_NEVER INT64_MAX

/*
 * Error codes. Appended, never renumbered; each has one meaning.
 * X(name, value, message)
 *
 * ESTATE is no longer returned: it meant four things, now ERUNNING (a start
 * of a running service), ENOTMONITORED (nothing is monitored yet, or any
 * more), ENOTCHECKED (a check of a service that is not checked in its
 * state) and EEXTERNAL (an operation on a service that is only watched);
 * ECANCELED answers an operation that was in flight when its monitor or
 * runtime closed or its service was removed; EDEADLK refuses a call that
 * would wait for the very thread it runs on.
 */
#define TSVC_ERRNO_MAP(X)                                                    \
  X(OK, 0, "success")                                                        \
  X(ENOMEM, -1, "out of memory")                                             \
  X(EINVAL, -2, "invalid argument")                                          \
  X(ECONFIG, -3, "invalid configuration")                                    \
  X(ENOENT, -4, "no such service")                                           \
  X(EBUSY, -5, "an operation is already in progress")                        \
  X(ERUNTIME, -6, "the runtime failed")                                      \
  X(EUNREACH, -7, "the runtime cannot be reached")                           \
  X(EIO, -8, "input/output error")                                           \
  X(ESTATE, -9, "not allowed in the current state")                          \
  X(ETIMEDOUT, -10, "timed out")                                             \
  X(EEXIST, -11, "already exists")                                           \
  X(ERUNNING, -12, "the service is already running")                        \
  X(ENOTMONITORED, -13, "services are not being monitored")                 \
  X(ENOTCHECKED, -14, "the service is not checked in its current state")   \
  X(EEXTERNAL, -15, "the service is external: only watched")                \
  X(ECANCELED, -16, "cancelled: the monitor stopped or the service was removed") \
  X(EDEADLK, -17, "called on the monitor's own thread, which would wait for itself")

typedef enum {
#define TSVC_ERR_ENUM(name, value, msg) TSVC_##name = (value),
  TSVC_ERRNO_MAP(TSVC_ERR_ENUM)
#undef TSVC_ERR_ENUM
} tsvc_err_t;

/* How many codes there are (OK included): they run from 0 down to
   -(TSVC_ERR__COUNT - 1). */
enum {
#define TSVC_ERR_ONE(name, value, msg) +1
  TSVC_ERR__COUNT = 0 TSVC_ERRNO_MAP(TSVC_ERR_ONE)
#undef TSVC_ERR_ONE
};

/* The message of an error code; never NULL. */
const char *tsvc_strerror(int err);
/* The name of an error code ("EINVAL"); never NULL. */
const char *tsvc_err_name(int err);

/*
 * Health states (docs/design.md, "The health machine").
 * X(name, lowercase text)
 */
#define TSVC_STATE_MAP(X)                                                    \
  X(STARTING, "starting")     /* (re)started; grace period, checks count   \
                                 only once start_period is over */          \
  X(HEALTHY, "healthy")       /* the last checks passed */                  \
  X(UNHEALTHY, "unhealthy")   /* retries failures in a row, or not running*/\
  X(RESTARTING, "restarting") /* a (re)start is in flight */                \
  X(FAILED, "failed")         /* gave up after max_restarts in window */    \
  X(STOPPED, "stopped")       /* stopped on purpose; never restarted */     \
  X(UNKNOWN, "unknown")       /* the runtime cannot be reached */

typedef enum {
#define TSVC_STATE_ENUM(name, text) TSVC_STATE_##name,
  TSVC_STATE_MAP(TSVC_STATE_ENUM)
#undef TSVC_STATE_ENUM
  TSVC_STATE__COUNT
} tsvc_state_t;

const char *tsvc_state_name(tsvc_state_t s);

/*
 * Probe result codes, grouped by layer as in HAProxy's checks.
 * X(name, lowercase text, comment)
 */
#define TSVC_RESULT_MAP(X)                                                   \
  X(OK, "ok")                     /* the service answered as healthy */      \
  X(REFUSED, "refused")           /* L4: connection refused / unreachable */ \
  X(TIMEOUT, "timeout")           /* L4/L7: no answer within timeout */      \
  X(RESET, "reset")               /* L4: connection reset or closed early */ \
  X(PROTOCOL, "protocol_error")   /* L7: the reply is not the protocol */    \
  X(BAD_STATUS, "bad_status")     /* L7: valid reply saying "not ready" */   \
  X(NOT_RUNNING, "not_running")   /* the container or process is not up */   \
  X(EXEC_FAILED, "exec_failed")   /* exec: command ran and exited non-zero */\
  X(RUNTIME_ERROR, "runtime_error") /* the runtime could not run the check */

typedef enum {
#define TSVC_RESULT_ENUM(name, text) TSVC_RESULT_##name,
  TSVC_RESULT_MAP(TSVC_RESULT_ENUM)
#undef TSVC_RESULT_ENUM
  TSVC_RESULT__COUNT
} tsvc_result_t;

const char *tsvc_result_name(tsvc_result_t r);


/* ---- status of one service (docs/api.md, "Service") --------------------- */

/* Bucket upper bounds, in seconds, of the check duration histogram; the
   last bucket is +Inf. */
#define TSVC_LATENCY_BUCKETS_S {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, \
                                0.25, 0.5, 1.0, 2.5, 5.0, 10.0}
#define TSVC_LATENCY_NBUCKETS 14 /* the 13 bounds above and +Inf */

/* One probe result kept in a service's history. Times are wall-clock
   milliseconds since the Unix epoch. */
typedef struct {
  int64_t start_ms;
  int64_t end_ms;
  tsvc_result_t result;
  int exit_code;       /* exec probes; -1 otherwise */
  int64_t latency_us;
  char *message;       /* one line, never NULL in a status copy; owned */
  char *output;        /* exec output (last 4 KiB) or NULL; owned */
  char *probe_address; /* where the check went (as probe_address below), or
                          NULL; owned */
} tsvc_check_record_t;

/* A dependency a (re)start waits for (depends_on), as status shows it. */
typedef struct {
  char service[72];       /* the dependency's name */
  const char *condition;  /* "service_started" or "service_healthy" (static) */
  tsvc_state_t state;     /* the dependency's state when last looked at */
} tsvc_wait_t;

/* A copy of one service's status. Owned by the caller: tsvc_status_clear().
   Times are wall-clock milliseconds since the Unix epoch, 0 for never. */
typedef struct {
  char *name;
  tsvc_state_t state;
  bool healthy;
  bool running;
  bool enabled;
  bool external;
  char probe[16];             /* the probe kind in use */
  /* Where its checks go (docker.probe_via, docs/remote.md): probe_via is
     container, published, exec, address (healthcheck.address), command (a
     host its command names) or host (this machine); probe_address is
     "172.18.0.3:6379", "engine.example:16379", "exec in the container",
     "exec on this host" or "inspect". */
  char probe_via[16];
  char probe_address[280];
  char container_id[72];      /* docker runtime, or "" */
  char container_name[128];
  int pid;                    /* process runtime, or 0 */
  int64_t since_ms;           /* last change of state */
  int64_t last_check_ms;
  int64_t last_healthy_ms;    /* last successful check */
  int64_t next_check_ms;
  int consecutive_failures;
  int consecutive_successes;
  int retries;                /* the configured limits, for "3/3" */
  int success_threshold;
  uint64_t checks_total;
  uint64_t failures_total;
  uint64_t restarts_total;
  uint64_t checks_by_result[TSVC_RESULT__COUNT];
  uint64_t latency_buckets[TSVC_LATENCY_NBUCKETS]; /* cumulative counts */
  double latency_sum_s;
  int restarts_in_window;
  int max_restarts;
  char last_error[256];
  int64_t last_latency_us;
  tsvc_check_record_t *history; /* oldest first */
  size_t nhistory;
  /* While a start or restart is held for the conditions of depends_on:
     the dependencies whose condition does not hold yet (owned: freed by
     tsvc_status_clear), and when the wait gives up (a failed start,
     retried on the backoff schedule). NULL, 0 and 0 otherwise. */
  tsvc_wait_t *waiting_for;
  size_t nwaiting;
  int64_t wait_until_ms;
  /* Added (issue 13), at the end so that the fields above keep their
     offsets: healthcheck.session (docs/config.md), all zero when not in
     use. */
  bool session;                  /* the service's checks hold a session */
  bool session_held;             /* a connection is held now */
  uint64_t session_connects;     /* held connections opened (logged in) */
  uint64_t session_held_checks;  /* checks answered on a held connection */
  uint64_t session_full_checks;  /* checks decided by the full probe */
  char session_error[160];       /* why the last one closed or did not open */
} tsvc_status_t;

void tsvc_status_clear(tsvc_status_t *s);

typedef struct {
  tsvc_status_t *v;
  size_t n;
} tsvc_status_list_t;

void tsvc_status_list_free(tsvc_status_list_t *l);

/* ---- snapshots ---------------------------------------------------------- */

/* The monitor's figures about itself, for GET /metrics and /livez. */
typedef struct {
  /* How late checks started against their schedule: cumulative counts per
     bound of TSVC_LATENCY_BUCKETS_S (the last is +Inf: every check). */
  uint64_t lateness_buckets[TSVC_LATENCY_NBUCKETS];
  double lateness_sum_s;
  int checks_in_flight;
  double loop_lag_s;    /* how late the loop is now (its heartbeat timer) */
} tsvc_monitor_stats_t;

/*
 * Every service's status as the loop last published it, in config order,
 * and the monitor's own figures: immutable and shared (nothing is copied
 * to make one). Read it from any thread for as long as you hold it; release
 * it with tsvc_snapshot_release(). Its statuses carry no history (nhistory
 * 0): tsvc_manager_get_status() copies a service's history when asked.
 */
typedef struct tsvc_snapshot_s tsvc_snapshot_t;

size_t tsvc_snapshot_count(const tsvc_snapshot_t *s);
/* The i-th status (i < count); valid until the snapshot is released. */
const tsvc_status_t *tsvc_snapshot_status(const tsvc_snapshot_t *s, size_t i);
const tsvc_monitor_stats_t *tsvc_snapshot_stats(const tsvc_snapshot_t *s);
/* NULL is a no-op. */
void tsvc_snapshot_release(tsvc_snapshot_t *s);

/* ---- ServiceManager (docs/design.md, "The manager") ------------------------ */

/*
 * The manager owns the config, the runtime (docker or process), the monitor
 * and one thread running their libuv loop, which alone touches them. Every
 * function below is safe to call from any thread. The calls that act are
 * carried out on the loop and wait for it: made on the loop's own thread
 * (from a change callback) they return TSVC_EDEADLK; made after the loop
 * ended, TSVC_ECANCELED. Readers (is_healthy, get_status, get_all_status,
 * snapshot) never wait for the loop. Errors for people go into err (may be
 * NULL).
 */
typedef struct tsvc_manager_s tsvc_manager_t;

typedef struct {
  const char *config_path; /* tanuki.yaml; required */
  const char *runtime;     /* "auto", "docker", "process", or NULL: as the
                              config says */
  const char *state_dir;   /* default: .tanuki beside the config */
} tsvc_manager_opts_t;

/* Load and validate the config (every diagnostic goes to err, one per line)
   and start the loop thread. Nothing is started yet. */
int tsvc_manager_new(const tsvc_manager_opts_t *opts, tsvc_manager_t **out, char *err,
                     size_t errlen);
/* Stop monitoring (services keep running, except under the process
   runtime, whose services are children of this process), join the thread,
   free everything. NULL is a no-op. */
void tsvc_manager_free(tsvc_manager_t *m);

/* Pick the runtime (auto: docker when its daemon answers, else process),
   start every enabled service in depends_on order (each one once the starts
   of those it depends on have ended, the others at once: a long image pull
   delays only its dependents; a running container with our label is
   adopted) and monitor them, each in its grace period. Returns when every
   start has ended: 0, or TSVC_ERUNTIME when some services could not start
   (err names each and why; they are retried on their backoff schedule, the
   others run and are monitored), TSVC_EUNREACH when the runtime asked for
   cannot be reached. */
int tsvc_manager_start_services(tsvc_manager_t *m, char *err, size_t errlen);
/* Stop monitoring first, then every service we start (not external ones).
   Volumes and data directories are kept. */
int tsvc_manager_stop_services(tsvc_manager_t *m, char *err, size_t errlen);
/* Stop monitoring only. */
int tsvc_manager_stop_monitoring(tsvc_manager_t *m);

/* One service, as a person asks: waits for the runtime's answer and, for a
   start or a restart, for the service's new pid or container to be known
   (a status read after the call shows them). Returns 0, TSVC_ENOENT,
   TSVC_EBUSY, TSVC_ERUNNING (start of a running service), TSVC_EEXTERNAL,
   TSVC_ENOTMONITORED, TSVC_EUNREACH or the runtime's error (message in
   err). */
int tsvc_manager_start(tsvc_manager_t *m, const char *name, char *err, size_t errlen);
int tsvc_manager_stop(tsvc_manager_t *m, const char *name, char *err, size_t errlen);
int tsvc_manager_restart(tsvc_manager_t *m, const char *name, char *err, size_t errlen);
/* Check now and wait for the verdict of that check (one that starts after
   this call), into out (may be NULL; its strings are the caller's: free
   message, output and probe_address). The status read after the call includes it.
   Returns 0, TSVC_ENOENT, TSVC_ENOTMONITORED, TSVC_ENOTCHECKED (not checked
   in its state, or the check was cancelled by a restart, a stop or the
   runtime going away: err names the state), TSVC_ETIMEDOUT (no verdict
   within twice the probe's timeout and 2 s). */
int tsvc_manager_check(tsvc_manager_t *m, const char *name, tsvc_check_record_t *out,
                       char *err, size_t errlen);

/* Reload the config file (SIGHUP): read and validate it (a bad file is
   rejected with every diagnostic in err, and the old config keeps running),
   then apply the difference on the loop: removed services stop (external
   ones are only no longer watched), added ones start, changed ones are
   applied (healthcheck and restart settings in place, keeping state and
   counts; image, environment, port, volumes or command: stopped, their
   container removed (never volumes) and started afresh), unchanged ones are
   not touched. The runtime and the docker section cannot change this way
   (TSVC_ECONFIG). Returns 0 with a one-line summary in err, TSVC_ECONFIG /
   TSVC_EIO for a bad file, TSVC_EBUSY while services are being started, or
   TSVC_ERUNTIME when some services could not be applied (the new config is
   in effect; err names each). */
int tsvc_manager_reload(tsvc_manager_t *m, char *err, size_t errlen);

bool tsvc_manager_is_healthy(tsvc_manager_t *m, const char *name);
/* A copy of one service's status with its history: 0, TSVC_ENOENT,
   TSVC_ENOTMONITORED (a service of the config, not monitored now). */
int tsvc_manager_get_status(tsvc_manager_t *m, const char *name, tsvc_status_t *out);
/* Copies of every status with their histories: 0, TSVC_ENOTMONITORED. */
int tsvc_manager_get_all_status(tsvc_manager_t *m, tsvc_status_list_t *out);
/* Every status, shared (see tsvc_snapshot_t): 0, TSVC_ENOTMONITORED,
   TSVC_ENOMEM. */
int tsvc_manager_snapshot(tsvc_manager_t *m, tsvc_snapshot_t **out);
/* The monitor's figures now (zeros but the loop lag when nothing is
   monitored). */
void tsvc_manager_monitor_stats(tsvc_manager_t *m, tsvc_monitor_stats_t *out);
/* "docker" or "process" once services were started, else "". */
const char *tsvc_manager_runtime_name(tsvc_manager_t *m);

/* A state change, as the loop sees it (for event streams). Called on the
   loop's thread: copy what you keep, do not block, and call none of the
   manager's acting functions (they would return TSVC_EDEADLK). */
typedef struct {
  const char *service;
  tsvc_state_t from, to;
  const char *reason;
  int64_t time_ms; /* wall clock */
  int failures, retries, restarts, max_restarts;
} tsvc_change_t;
typedef void (*tsvc_change_cb)(const tsvc_change_t *c, void *data);
/* Subscribe (returns an id > 0) or unsubscribe (by id). */
int tsvc_manager_subscribe(tsvc_manager_t *m, tsvc_change_cb cb, void *data);
void tsvc_manager_unsubscribe(tsvc_manager_t *m, int id);
/* ---- connection information (docs/api.md, "Connection variables") ------ */

/* Where a client connects from: the host (127.0.0.1 and the published
   port), or a container on the project's docker network (the container's
   name and the container port). The process runtime has no container
   network: its network view is its host view. */
typedef enum { TSVC_VIEW_HOST, TSVC_VIEW_NETWORK } tsvc_view_t;

/* How to reach one service (TANK-045's ServiceConnection). Strings are
   owned by the list that holds it and never NULL ("" when there is none). */
typedef struct {
  char *service;  /* its name in the config */
  char *prefix;   /* of its variables: POSTGRES, REDIS, else from its name */
  char *kind;     /* "postgres", "redis" or "" */
  char *host;     /* 127.0.0.1, or the container's name */
  int port;       /* the published port, or the container port */
  char *url;      /* host:port; redis: redis://[default:password@]host:port */
  char *username; /* postgres: POSTGRES_USER (default postgres) */
  char *password; /* POSTGRES_PASSWORD / REDIS_PASSWORD */
  char *database; /* postgres: POSTGRES_DB (default: the user) */
  char *dsn;      /* postgres://user:password@host:port/database, the parts
                     percent-encoded */
  bool monitored; /* state below is known */
  tsvc_state_t state;
} tsvc_conn_info_t;

typedef struct {
  tsvc_conn_info_t *v;
  size_t n;
  tsvc_view_t view;
  bool shared_host; /* the network view was asked for and the runtime has
                       no container network (process): the host view */
} tsvc_conn_list_t;

/* NULL and an empty list are fine. */
void tsvc_conn_list_free(tsvc_conn_list_t *l);

/* How to reach every enabled service that has a port, in config order,
   from the config in use and the runtime chosen (before services are
   started: the config's runtime, auto counting as docker), with each
   service's state when it is monitored. A reader: never waits for the
   loop. Returns 0 or TSVC_ENOMEM; out is the caller's
   (tsvc_conn_list_free). */
int tsvc_manager_connection_info(tsvc_manager_t *m, tsvc_view_t view, tsvc_conn_list_t *out);

/* When the loop last turned (wall ms). */
int64_t tsvc_manager_loop_heartbeat(tsvc_manager_t *m);
/* How late the loop is (ms): how late its last heartbeat fired, or how
   late the next one is already when the loop is held up. */
int64_t tsvc_manager_loop_lag_ms(tsvc_manager_t *m);

#ifdef __cplusplus
}
#endif

#endif /* TSVC_H */
