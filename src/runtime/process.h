/*
 * process: the runtime over child processes of the monitor (docs/design.md,
 * "The runtime interface"). The embedded default where no Docker daemon
 * answers.
 *
 * Each service runs as one child in its own session and process group
 * (UV_PROCESS_DETACHED: setsid), so a stop reaches everything it started:
 * SIGTERM (SIGINT for postgres: its fast shutdown; SIGTERM is its "smart"
 * one, which waits for every client to leave) and SIGCONT to the group
 * (SIGCONT so that a stopped process sees the first signal), then SIGKILL
 * to the group after restart.stop_timeout. A stop is done when the main
 * process is reaped and no process of the group is left (zombies of
 * grandchildren re-parented to an init that does not reap do not count).
 * Postgres puts each of its children in a group of its own; the postmaster
 * exits only after them on SIGINT, and they exit by themselves when it dies.
 *
 * Where its files are (tsvc_process_layout_init): logs always in
 * <state_dir>/logs (state_dir is the project's .tanuki beside its config).
 * Data and sockets must be reachable by the user each service runs as:
 *   - as root (postgres then runs as the `postgres` user, which cannot enter
 *     a checkout under /root, mode 0700): data in
 *     /var/lib/tanuki-svc/<project-id>/<service>, sockets and password files
 *     in /run/tanuki-svc/<project-id> (project id: tsvc_project_id() of the
 *     config's absolute path);
 *   - as anyone else: data in <state_dir>/data/<service>, sockets in
 *     <state_dir>/run.
 * services.<n>.process.data_dir overrides a service's data directory
 * (relative: to the config's directory). A data directory made by an older
 * version under <state_dir>/data/<service> is found and used as it is (never
 * initialised again) while the default one is missing or empty. The socket
 * directory is mode 0700 and owned by the user postgres runs as, so that no
 * other local user reaches postgres's unix socket.
 *
 * What runs:
 *   - postgres (name or image contains "postgres", not "postgrest"; no
 *     process.command): the server binaries of the newest installed version
 *     (/usr/lib/postgresql/<v>/bin, else initdb/postgres found in PATH), or of
 *     the version that made an existing data directory. On first start,
 *     initdb into the data directory with POSTGRES_USER (default postgres)
 *     and POSTGRES_PASSWORD (through a 0600 --pwfile in the socket
 *     directory, deleted afterwards); host and local (unix socket)
 *     connections authenticate with scram-sha-256 (trust when no password is
 *     set: then any local user may connect, as with Docker's
 *     POSTGRES_HOST_AUTH_METHOD=trust, and the service's log says so). The
 *     database POSTGRES_DB (default: the user's name) is created by a
 *     single-user `postgres --single` run before the first real start. initdb
 *     runs into <data>.init and is renamed into place only once everything
 *     succeeded, so a failed first start is simply retried; its error is the
 *     first error line initdb printed (the last one is only "removing
 *     contents of data directory"). The server listens on 127.0.0.1:port
 *     (default 5432) and in the socket directory. As root, initdb and
 *     postgres run as the `postgres` user.
 *   - redis (name or image contains "redis"; no process.command):
 *     redis-server from PATH with a generated <data>/redis.conf (mode 0600:
 *     the password never shows in ps): bind 127.0.0.1, port (default 6379),
 *     dir <data>, appendonly yes (data survives restarts and kill -9), and
 *     requirepass when a password is set: REDIS_PASSWORD, else the `-a` of a
 *     `redis-cli ... ping` healthcheck, else the `--requirepass` of the
 *     service's command (the probe authenticates with the same one).
 *   - anything else: process.command (argv; a shell string is /bin/sh -c),
 *     the monitor's environment plus `environment` plus process.env (later
 *     wins), in process.workdir (relative to the monitor's working directory)
 *     when set.
 * Every start first checks that nothing listens on 127.0.0.1:port (when a
 * port is known) and fails with "port N on 127.0.0.1 is already in use".
 *
 * Output: stdout and stderr of every child (helpers such as initdb too) go
 * through a pipe that the monitor reads on its loop and appends to
 * <state_dir>/logs/<name>.log, with a line of ours at each start and exit.
 * Output that cannot be written (a full disk, an unwritable file) is dropped
 * and warned about once in the monitor's log (TSVC_LOG), again only after a
 * write succeeded in between.
 * The limit is checked at every write: when one would take the file past
 * the size limit (default TSVC_PROCESS_LOG_MAX), what fits up to the end of
 * a line is written, the file is renamed to <name>.log.1 (replacing the old
 * one) and a new one begun; a file found past the limit at a start is
 * rotated too. Each file stays within the limit, nothing is lost, and no
 * file is ever written by a service directly (the writes are appends to a
 * local file, made on the loop). A monitor that dies leaves its children writing
 * into a closed pipe (EPIPE): their output is lost, as they are (below).
 *
 * Events (watch): STARTED when a service's process was spawned, DIED when it
 * exited without being asked to ("exited (code N)", "killed by signal N"),
 * noticed at once through the exit callback. Never DOWN/UP: child processes
 * are always reachable. exec is NULL: exec probes run on the host.
 *
 * The monitor dying hard: each child is started through setpriv(1)
 * --pdeathsig KILL (util-linux) when it is installed, so the kernel kills
 * the service's main process when the thread that spawned it (the loop's
 * thread) dies. This reaches the direct child only; postgres backends exit
 * on their own when the postmaster dies, redis has no children, but the
 * children of a process.command service may outlive it.
 *
 * Ownership: the runtime borrows loop and cfg (service configs must outlive
 * the operations on them); the caller owns the runtime and frees it with
 * tsvc_runtime_free(). Free returns at once and the stop goes on from the
 * loop, never sleeping on it: every service still running gets its stop
 * signal (and SIGCONT) in the call, each group that is still there after
 * its own stop_timeout gets SIGKILL, and is given up 2 s after that; exits
 * arrive through the exit callback (libuv reaps the children) and their
 * last output is written to the logs. Until then the runtime's timers keep
 * the loop running: run it afterwards (uv_run returns once all is gone,
 * after stop_timeout + 2 s at the most) before uv_loop_close().
 * Operations in flight are answered with TSVC_ECANCELED from the loop once
 * the handles are closed (runtime.h), and new ones are refused
 * (TSVC_ECANCELED) from then on. Data directories and logs stay.
 *
 * Loop: the runtime's handles (child processes, output pipes, timers) are
 * unreferenced: they never keep the loop alive on their own, so uv_run
 * returns once the monitor has closed, even with services running. After
 * free, the timers of the services still stopping are referenced, so that
 * uv_run returns only once they are gone (or given up).
 *
 * Threads: call everything from the loop's thread.
 */
#ifndef TSVC_RUNTIME_PROCESS_H
#define TSVC_RUNTIME_PROCESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config/config.h"
#include "runtime/runtime.h"

#define TSVC_PROCESS_LOG_MAX (10u << 20) /* bytes per log file before rotation */

#define TSVC_PROCESS_DATA_BASE "/var/lib/tanuki-svc" /* as root: data of every project */
#define TSVC_PROCESS_RUN_BASE "/run/tanuki-svc"      /* as root: sockets of every project */

/* Where the process runtime keeps a project's files (the comment above).
   Plain paths, all absolute, no trailing slash. */
typedef struct {
  char state_dir[PATH_MAX];     /* .tanuki: logs/ */
  char config_dir[PATH_MAX];    /* relative process.data_dir values start here */
  char data_root[PATH_MAX];     /* <data_root>/<service>, unless process.data_dir */
  char old_data_root[PATH_MAX]; /* an older layout's data root, also looked at; "" if none */
  char run_dir[PATH_MAX];       /* postgres sockets and password files (mode 0700) */
} tsvc_process_layout_t;

/*
 * Fill l for the config at config_path (made absolute against the working
 * directory when relative) whose state directory is state_dir (likewise):
 * privileged (euid 0) picks the layout outside the checkout. Touches no
 * file. Returns 0, or TSVC_EINVAL with why in err (a path too long, no
 * working directory).
 */
int tsvc_process_layout_init(tsvc_process_layout_t *l, const char *config_path,
                             const char *state_dir, bool privileged, char *err, size_t errlen);

/* True when the process runtime keeps data for svc (the built-in postgres
   and redis recipes; a process.command service keeps its own). */
bool tsvc_process_has_data(const tsvc_service_conf_t *svc);

/*
 * The data directory of svc under l, into buf: process.data_dir when set;
 * else <data_root>/<name>, unless that is missing or empty and the older
 * layout's <old_data_root>/<name> holds something, which is then used (*old
 * is set, when old is not NULL). Only looks at the file system. Returns 0,
 * or TSVC_EINVAL (no data for svc, or the path does not fit in len).
 */
int tsvc_process_data_dir(const tsvc_process_layout_t *l, const tsvc_service_conf_t *svc,
                          char *buf, size_t len, bool *old);

/*
 * A process runtime on loop for the services of cfg, with its files where
 * layout says (copied). The state directory and its logs/ are created when
 * missing; data and socket directories when a service needs them. Returns 0
 * and *out, or TSVC_EINVAL / TSVC_EIO (a directory cannot be created: why
 * in err) or TSVC_ENOMEM.
 */
int tsvc_process_runtime_new(uv_loop_t *loop, const tsvc_config_t *cfg,
                             const tsvc_process_layout_t *layout, tsvc_runtime_t **out,
                             char *err, size_t errlen);

/* Rotate logs at bytes instead of TSVC_PROCESS_LOG_MAX (tests). */
void tsvc_process_runtime_set_log_max(tsvc_runtime_t *rt, size_t bytes);

#endif /* TSVC_RUNTIME_PROCESS_H */
