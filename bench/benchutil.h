/*
 * benchutil: small self-contained helpers for the benchmarks (no cmocka):
 * servers to probe (redis-server, postgres, a bare TCP listener), pinned to
 * a CPU set and bound to 127.0.0.1, and the CPU and memory counters the
 * benchmarks report (/proc/stat, /proc/<pid>/stat, /proc/self/status).
 *
 * Every server is a child process that gets SIGKILL when the benchmark dies
 * (PR_SET_PDEATHSIG), so an interrupted run leaves nothing listening. Stop
 * functions are safe to call twice. Temp dirs are removed by the stop
 * functions.
 *
 * Errors: functions returning int return 0 or -1 and print one line
 * "bench: fatal: unable to ..." style message to stderr (the benchmark is a
 * program, so printing is its job).
 */
#ifndef TSVC_BENCHUTIL_H
#define TSVC_BENCHUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- time and processes ------------------------------------------------- */

/* CLOCK_MONOTONIC in microseconds. */
int64_t bu_now_us(void);
void bu_sleep_us(int64_t us);
/* A free TCP port on 127.0.0.1 (bound then released), or 0. */
int bu_free_port(void);
/* True when a TCP connect to 127.0.0.1:port succeeds. */
bool bu_port_open(int port);
/* Path of an executable found in PATH or dir (may be NULL); static storage. */
const char *bu_which(const char *name, const char *dir);
/* Raise RLIMIT_NOFILE to at least want (as far as allowed). Returns the new
 * soft limit. */
long bu_raise_nofile(long want);
/* Pin the calling thread to the CPUs in the mask (bit i: CPU i). 0 / -1. */
int bu_pin(uint64_t mask);
/* Mask of the CPUs this process may run on. */
uint64_t bu_allowed_cpus(void);

/*
 * Start argv (argv[0] a path) in the background. as_pg: as the `postgres`
 * user when we are root. cpus: affinity mask for the child (0: inherit).
 * logpath: stdout and stderr appended there (NULL: /dev/null).
 * Returns its pid or -1.
 */
pid_t bu_spawn(char *const argv[], bool as_pg, uint64_t cpus, const char *logpath);
/* Run argv and wait; stdout+stderr to logpath or /dev/null. Exit status,
 * 128+signal, or -1. */
int bu_run(char *const argv[], bool as_pg, const char *logpath);
/* SIGTERM (or sig), wait up to 10 s, then SIGKILL; always reaps. */
void bu_stop_pid(pid_t pid, int sig);
/* mkdtemp under /tmp; malloc'd path or NULL. */
char *bu_mkdtemp(const char *prefix);
/* rm -rf dir (our own temp dirs only). */
void bu_rmtree(const char *dir);

/* ---- counters ----------------------------------------------------------- */

/* Busy time of the whole machine (all CPUs, /proc/stat: everything but idle
 * and iowait), in microseconds. */
int64_t bu_machine_busy_us(void);
/* utime+stime of pid in microseconds; with_children adds cutime+cstime
 * (children it has reaped). -1 when pid is gone. */
int64_t bu_pid_cpu_us(pid_t pid, bool with_children);
/* CPU of a process tree: pid (with its reaped children) plus every live
 * direct child of pid (postgres: the postmaster and its backends). */
int64_t bu_tree_cpu_us(pid_t pid);
/* CPU (us) of pid's live children that are postgres client backends (their
   title names a client: "postgres: USER DB 127.0.0.1(PORT) ..."), without
   the background processes (checkpointer, walwriter, ...) or exited ones;
   from /proc/PID/schedstat (ns), not stat's 10 ms ticks. slices (may be
   NULL): their run slices (schedstat's third field: times they were put on
   a CPU), summed. */
int64_t bu_pg_backends_cpu_us(pid_t postmaster, int64_t *slices);
/* The same for every live child of parent (bu_pgfloor_start's sessions). */
int64_t bu_kids_run_us(pid_t parent, int64_t *slices);
/* The calling thread's run slices (/proc/thread-self/schedstat), -1 when
   the kernel does not tell; this process's involuntary context switches
   (getrusage ru_nivcsw: preempted while it could run). */
int64_t bu_self_slices(void);
int64_t bu_self_preempted(void);
/* Our own user+sys (RUSAGE_SELF) and our reaped children's, microseconds. */
int64_t bu_self_cpu_us(void);
/* Times this process went to sleep (getrusage ru_nvcsw: voluntary context
   switches): each is a wake-up of the loop. -1 on error. */
int64_t bu_self_sleeps(void);
int64_t bu_children_cpu_us(void);
/* VmRSS and VmHWM of this process, KiB. */
void bu_rss_kib(long *rss, long *hwm);
/* TIME_WAIT sockets on the machine (/proc/net/sockstat "tw"), or -1. */
long bu_timewait(void);
/* The machine's TCP counters that tell a late or lost connect (nstat's
 * names: /proc/net/netstat TcpExt and /proc/net/snmp Tcp), in the order of
 * bu_tcpstat_names. Counters the kernel does not have read 0. Machine-wide
 * (this network namespace): other work's connections count too. 0 / -1. */
#define BU_TCPSTAT_N 17
extern const char *const bu_tcpstat_names[BU_TCPSTAT_N];
typedef struct {
  int64_t v[BU_TCPSTAT_N];
} bu_tcpstat_t;
int bu_tcpstat(bu_tcpstat_t *out);
/* Index of name in bu_tcpstat_names, -1 when absent. */
int bu_tcpstat_index(const char *name);
/* /proc/PID/schedstat (pid 0: /proc/thread-self/schedstat): time on a CPU
 * and waiting on a run queue (ns), and run slices (times put on a CPU).
 * 0, or -1 when the kernel does not tell (or pid is gone). */
typedef struct {
  int64_t run_ns, wait_ns, slices;
} bu_sched_t;
int bu_sched(pid_t pid, bu_sched_t *out);
/* The 1-minute load average (/proc/loadavg), -1 when unreadable. */
double bu_loadavg(void);
/* How long the calling thread has waited on a run queue (runnable, not
 * running: the CPU was busy with other work), microseconds, from
 * /proc/thread-self/schedstat; -1 when the kernel does not tell. */
int64_t bu_runq_us(void);

/* ---- servers ------------------------------------------------------------ */

typedef struct {
  char *dir;
  int port;
  pid_t pid;
} bu_redis_t;

/* redis-server on 127.0.0.1:free port, no persistence, maxclients and
 * backlog raised, pinned to cpus. Waits until it listens (10 s). */
int bu_redis_start(bu_redis_t *r, uint64_t cpus);
void bu_redis_stop(bu_redis_t *r);

typedef struct {
  char *dir;
  char bindir[256];
  int port;
  pid_t pid; /* the postmaster */
} bu_pg_t;

/* initdb (trust auth, user postgres) and postgres on 127.0.0.1:free port,
 * pinned to cpus; waits until it accepts connections (30 s). */
int bu_pg_start(bu_pg_t *pg, uint64_t cpus);
void bu_pg_stop(bu_pg_t *pg);

/* A listener that accepts and closes every connection, in a child process
 * pinned to cpus (epoll, non-blocking accept). */
typedef struct {
  int port;
  pid_t pid;
} bu_tcp_t;

int bu_tcp_start(bu_tcp_t *t, uint64_t cpus);
void bu_tcp_stop(bu_tcp_t *t);

/* The floor of a held postgres check: a listener (child process pinned to
 * cpus) that forks a process per connection, as the postmaster does, which
 * speaks just enough of the protocol for the probe and a held session
 * (startup packet: AuthenticationOk, BackendKeyData with its pid,
 * ReadyForQuery; Sync: ReadyForQuery;
 * Query: EmptyQueryResponse, ReadyForQuery; Terminate: close) and waits
 * as a backend does (non-blocking recv until EAGAIN, then epoll_wait), doing
 * nothing else: what the same wake-ups cost any process on this machine.
 * Stop it with bu_tcp_stop; its sessions end with it. */
int bu_pgfloor_start(bu_tcp_t *t, uint64_t cpus);
/* What the floor's sessions have done since the first bu_pgfloor_start of
   this process: messages answered (startup packets, queries, Syncs: what its
   held connections exchanged, counted at the server); the time from each
   wake-up to its answer sent, summed (CLOCK_MONOTONIC: a few us of work,
   unless the process lost its CPU meanwhile); answers whose span was above
   1 ms. */
typedef struct {
  uint64_t messages;
  double span_us;
  uint64_t slow;
} bu_floor_counts_t;
void bu_pgfloor_counts(bu_floor_counts_t *out);

/* ---- statistics --------------------------------------------------------- */

/* A histogram of milliseconds, 0 .. BU_HIST_MS-1 plus overflow. */
#define BU_HIST_MS 60000
typedef struct {
  uint32_t *c; /* BU_HIST_MS + 1 counters */
  uint64_t n;
} bu_hist_t;

int bu_hist_init(bu_hist_t *h);
void bu_hist_add(bu_hist_t *h, int64_t ms);
void bu_hist_reset(bu_hist_t *h);
/* The q-quantile (0..1) in ms; -1 when empty. */
int64_t bu_hist_quantile(const bu_hist_t *h, double q);
void bu_hist_free(bu_hist_t *h);

/* Median, min and max of n doubles (n >= 1); sorts v. */
void bu_summary(double *v, int n, double *med, double *min, double *max);

#endif /* TSVC_BENCHUTIL_H */
