/*
 * process_int: what the files of the process runtime share; not for other
 * modules (docs/design.md, "The runtime interface"). Each file does one job:
 *
 *   process.c          the runtime's function table: entries (by name, in a
 *                      hash), operations, inspection, free, file layout
 *   process_super.c    the supervisor: one child process group per service,
 *                      spawning, the exit callback, stop deadlines
 *                      (SIGTERM, SIGKILL), the shutdown at free
 *   process_log.c      log capture (the children's pipes) and the log files
 *                      with rotation, the output's tail, the first error line
 *   process_postgres.c the postgres recipe: initdb, the database, the
 *                      private socket directory, scram
 *   process_redis.c    the redis recipe: redis.conf, requirepass
 *   process_command.c  process.command services: argv, environment, workdir
 *   process_fs.c       file-system helpers (directories with exact modes,
 *                      executables in PATH, reachability for a user)
 *
 * Everything runs on the loop's thread. The short type names below are
 * private to these files; functions shared between them carry tsvc__proc_
 * (or the recipe's own tsvc__pg_ / tsvc__redis_ prefix).
 */
#ifndef TSVC_RUNTIME_PROCESS_INT_H
#define TSVC_RUNTIME_PROCESS_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/index.h"
#include "common/util.h"
#include "runtime/process.h"

#define TSVC_PROC_POLL_MS 20        /* a stop looks at the process group this often */
#define TSVC_PROC_KILL_WAIT_MS 2000 /* after SIGKILL, wait this long for the group */
#define TSVC_PROC_TAIL_LEN 512      /* output kept per service for error messages */
#define TSVC_PROC_READ_CHUNK 16384
#define TSVC_PROC_MSG_LEN 1024
#define TSVC_PROC_LINE_LEN 240 /* an error line of a helper (initdb), kept whole up to this */

typedef enum { KIND_COMMAND, KIND_POSTGRES, KIND_REDIS } kind_t;
typedef enum { OP_NONE, OP_START, OP_STOP, OP_RESTART } op_kind_t;
typedef enum {
  PH_BEGIN,  /* deferred to the loop: the call returns before any work */
  PH_TERM,   /* SIGTERM sent to the group; SIGKILL at deadline */
  PH_KILL,   /* SIGKILL sent; give up at deadline */
  PH_HELPER  /* a helper of the recipe runs (initdb, postgres --single) */
} phase_t;

typedef struct prt_s prt_t;
typedef struct entry_s entry_t;

/* ---- the log of one service (process_log.c) ------------------------------ */

/*
 * One service's log file <dir>/<name>.log, rotated to <name>.log.1 when a
 * write would take it past max, plus the last TSVC_PROC_TAIL_LEN bytes of
 * output and the first error line of a helper's output. No loop: plain
 * appends, so unit tests drive it directly. dir and name are borrowed.
 */
typedef struct {
  const char *dir;
  const char *name;
  size_t max;
  int fd;          /* -1 when not open */
  uint64_t size;
  bool warned;     /* a failed write was warned about; reset by one that works */
  char tail[TSVC_PROC_TAIL_LEN];
  size_t tail_len;
  /* the first error line of a helper's output (initdb prints its cause
     first, then only "removing contents of data directory") */
  bool scanning;
  char line[TSVC_PROC_LINE_LEN];
  size_t line_len;
  char first_err[TSVC_PROC_LINE_LEN];
} tsvc__plog_t;

void tsvc__plog_init(tsvc__plog_t *l, const char *dir, const char *name, size_t max);
/* Open the file when it is not; one already past max is rotated. */
void tsvc__plog_open(tsvc__plog_t *l);
void tsvc__plog_close(tsvc__plog_t *l);
/* Append output: to the file (rotating, at the end of a line when the part
   that still fits has one), the tail and the scanner. A write that fails
   drops the output and is warned about once in the monitor's log. */
void tsvc__plog_output(tsvc__plog_t *l, const char *p, size_t n);
/* A line of ours ("[tanuki-svc <time>] ...") in the file. */
void tsvc__plog_note(tsvc__plog_t *l, const char *fmt, ...) TSVC_PRINTF(2, 3);
/* The last non-empty line of the output, printable, into out. */
void tsvc__plog_tail_line(const tsvc__plog_t *l, char *out, size_t len);
void tsvc__plog_tail_reset(tsvc__plog_t *l);
/* Look for the first error line from now on; scan_end says what to report
   about a helper that failed: that line, else the last line printed. */
void tsvc__plog_scan_begin(tsvc__plog_t *l);
void tsvc__plog_scan_end(tsvc__plog_t *l, char *out, size_t len);

/* ---- processes ----------------------------------------------------------- */

/* One child process: a service's main process or a helper (initdb). Freed
   in the close callback of its handle. */
typedef struct {
  uv_process_t proc;
  entry_t *e;
  int pid;
} child_t;

/* The read end of one child's stdout+stderr. Freed when closed. */
typedef struct reader_s {
  uv_pipe_t pipe;
  entry_t *e;
  struct reader_s *next;
  char buf[TSVC_PROC_READ_CHUNK];
} reader_t;

/* What a helper's exit leads to: code is its exit code, line what it said
   (the first error line, else its last line). */
typedef void (*helper_done_fn)(entry_t *e, int code, const char *line);

/* The postgres recipe's state for one start (process_postgres.c). */
typedef struct {
  char bindir[PATH_MAX];
  char datadir[PATH_MAX];
  char initdir[PATH_MAX];
  char parent[PATH_MAX]; /* the data directory's parent: the children's cwd */
  char pwfile[PATH_MAX]; /* "" when none */
  bool as_pg;            /* run as the `postgres` user (we are root) */
  uid_t uid;
  gid_t gid;
} pg_state_t;

/* A service this runtime has been asked about. Lives until the runtime. */
struct entry_s {
  prt_t *rt;
  entry_t *next;
  char *name;
  uv_timer_t timer; /* the operation's steps: deferral, stop polling */
  tsvc__plog_t log;
  reader_t *readers;
  /* the service's process */
  child_t *server;  /* running main process, or NULL */
  int pgid;         /* its process group (its pid) until seen empty, or 0 */
  bool ever;        /* started at least once */
  int exit_code;    /* of the last main process; -1 when none */
  child_t *helper;  /* initdb / postgres --single in flight, or NULL */
  int helper_pgid;  /* the last helper's process group, or 0 */
  helper_done_fn helper_done;
  tsvc_ms_t stop_timeout;
  int stop_sig; /* SIGTERM; SIGINT for postgres (fast shutdown) */
  /* the operation in flight (at most one) */
  op_kind_t op;
  phase_t phase;
  const tsvc_service_conf_t *svc;
  tsvc_rt_done_cb cb;
  void *cbdata;
  uint64_t deadline;
  bool stopping; /* the main process's exit is our doing */
  pg_state_t pg;
  bool closed; /* its handles are closed or closing (the runtime is freed) */
};

typedef struct inspect_s {
  struct inspect_s *next;
  const tsvc_service_conf_t *svc;
  tsvc_rt_inspect_cb cb;
  void *data;
} inspect_t;

struct prt_s {
  tsvc_runtime_t base;
  const tsvc_config_t *cfg;
  tsvc_process_layout_t lay;
  char logs_dir[PATH_MAX];
  char setpriv[PATH_MAX]; /* "" when not installed */
  size_t log_max;
  entry_t *entries;  /* every entry, newest first */
  tsvc_index_t index; /* the entries by name */
  inspect_t *inspects;
  uv_timer_t kick; /* answers inspections from the loop */
  tsvc_rt_event_cb watch_cb;
  void *watch_data;
  unsigned handles; /* open or closing handles; freed at 0 once freeing */
  bool freeing;
};

/* ---- process.c ------------------------------------------------------------ */

const char *tsvc__proc_env(const tsvc_service_conf_t *svc, const char *key);
kind_t tsvc__proc_kind(const tsvc_service_conf_t *svc);
/* The port the service listens on at 127.0.0.1 (0: none known). */
int tsvc__proc_port(const tsvc_service_conf_t *svc, kind_t k);
/* One of the runtime's handles is closed. */
void tsvc__proc_handle_done(prt_t *rt);
/* The data directory of e's service, and its parent created (each missing
   part mode 0755, so that the user a service runs as can pass); *old: it
   is an older version's (may be NULL). 0, or -1 after tsvc__proc_fail. */
int tsvc__proc_data_dir(entry_t *e, char *dir, size_t len, bool *old);

/* ---- process_super.c: the supervisor --------------------------------------- */

typedef struct {
  const char *const *argv; /* argv[0] is a path */
  char **env;              /* NULL: ours */
  const char *cwd;         /* NULL: ours */
  bool as_pg;              /* as e->pg.uid / e->pg.gid */
  int stdin_fd;            /* -1: /dev/null */
} spawn_t;

/* A command line built by a recipe: borrowed strings, or formatted ones
   kept in store. full: something did not fit, and it must not be run. */
#define TSVC_PROC_ARGV_MAX 16
typedef struct {
  const char *v[TSVC_PROC_ARGV_MAX + 1]; /* NULL-terminated */
  size_t n;
  char store[3 * PATH_MAX];
  size_t used;
  bool full;
} tsvc__argv_t;

void tsvc__argv_init(tsvc__argv_t *a);
void tsvc__argv_add(tsvc__argv_t *a, const char *s);
void tsvc__argv_addf(tsvc__argv_t *a, const char *fmt, ...) TSVC_PRINTF(2, 3);

/* Processes of group pgid that are not zombies. */
int tsvc__proc_group_alive(int pgid);
void tsvc__proc_signal_group(int pgid, int sig);
/* Start what op e->op asks for, from the loop (the timer). */
void tsvc__proc_timer_cb(uv_timer_t *t);
/* Spawn the service's main process: the start is done (or failed). */
void tsvc__proc_spawn_server(entry_t *e, const spawn_t *sp);
/* Spawn a helper of a recipe; done is called when it exits. */
void tsvc__proc_spawn_helper(entry_t *e, const spawn_t *sp, helper_done_fn done);
/* End the operation in flight; its callback is called last. */
void tsvc__proc_finish(entry_t *e, int status, const char *msg);
void tsvc__proc_fail(entry_t *e, const char *fmt, ...) TSVC_PRINTF(2, 3);
void tsvc__proc_child_closed(uv_handle_t *h);
bool tsvc__proc_port_in_use(int port);
/* Free's part: stop every service still running, all at once, each with
   its own stop_timeout before SIGKILL, from the loop; each entry's handles
   are closed once nothing of it is left (or it is given up). Returns at
   once. */
void tsvc__proc_shutdown(prt_t *rt);

/* ---- process_log.c: capture ------------------------------------------------ */

/* Read the child's output from fd (a pipe's read end, taken over) into
   e's log; on failure the output is lost and the child runs on. */
void tsvc__proc_capture(entry_t *e, uv_file fd);
/* Read what is in e's pipes now, without waiting. */
void tsvc__proc_drain(entry_t *e);
/* Close every pipe of e. */
void tsvc__proc_capture_close(entry_t *e);

/* ---- the recipes ------------------------------------------------------------ */

void tsvc__pg_start(entry_t *e);
void tsvc__pg_drop_pwfile(entry_t *e);
/* POSTGRES_USER, else "postgres"; POSTGRES_DB, else the user. */
const char *tsvc__pg_user(const tsvc_service_conf_t *svc);
const char *tsvc__pg_db(const tsvc_service_conf_t *svc);
/* The command lines of the recipe, from pg's paths (pwfile: "" when no
   password is set, and then initdb's auth is trust, else scram-sha-256).
   0, or TSVC_EINVAL when too long. */
int tsvc__pg_server_argv(tsvc__argv_t *a, const pg_state_t *pg, const char *run_dir, int port);
int tsvc__pg_initdb_argv(tsvc__argv_t *a, const pg_state_t *pg, const char *user);
int tsvc__pg_single_argv(tsvc__argv_t *a, const pg_state_t *pg);
/* The SQL that creates database db, for postgres --single, into b
   (initialised here; the caller frees it on success). 0 or an error. */
int tsvc__pg_createdb_sql(tsvc_buf_t *b, const char *db);
void tsvc__redis_start(entry_t *e, int port);
/* The password redis must require: REDIS_PASSWORD, else the one the probe
   authenticates with (a healthcheck's `redis-cli -a`), else the
   --requirepass of the service's (container) command. NULL: none. */
const char *tsvc__redis_password(const tsvc_service_conf_t *svc);
/* redis.conf for a server on 127.0.0.1:port keeping its data in dir,
   requiring password unless NULL, into b (initialised here; the caller
   frees it on success). 0, TSVC_ENOMEM, or TSVC_EINVAL (past 64 KiB). */
int tsvc__redis_conf(tsvc_buf_t *b, const char *dir, int port, const char *password);
void tsvc__command_start(entry_t *e);

/* ---- process_fs.c ----------------------------------------------------------- */

/* mkdir -p with mode for the missing parts. 0 or -1 (errno set). */
int tsvc__proc_mkdir_p(const char *path, mode_t mode);
/* path with mode, its missing parents with 0755. 0 or -1 (errno set). */
int tsvc__proc_mkdir_private(const char *path, mode_t mode);
/* rm -rf path (a directory of ours). */
int tsvc__proc_rmtree(const char *path);
/* Whether dir exists (1), is missing (0), or is not empty (2). */
int tsvc__proc_dir_state(const char *dir);
/* True when user uid/gid can traverse every directory on the way to path;
   else the first that stops it in bad. */
bool tsvc__proc_can_reach(const char *path, uid_t uid, gid_t gid, char *bad, size_t len);
/* Write text to path, mode 0600 (any older file is replaced). */
int tsvc__proc_write_private(const char *path, const char *text, uid_t uid, gid_t gid,
                             bool chown_it);

#endif /* TSVC_RUNTIME_PROCESS_INT_H */
