/*
 * cli: the tanuki-svc program. Each verb is one function in a cmd_*.c file,
 * listed with its options in the table of verbs.c (parsed by args.c).
 *
 * Exit codes (a documented contract, see README.md):
 *   0 ok, 1 unhealthy or not found (or invalid config), 2 usage,
 *   3 cannot reach the monitor or the runtime.
 */
#ifndef TSVC_CLI_H
#define TSVC_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/args.h"
#include "config/config.h"
#include "log/log.h"
#include "runtime/runtime.h"

enum {
  TSVC_EXIT_OK = 0,
  TSVC_EXIT_FAIL = 1,
  TSVC_EXIT_USAGE = 2,
  TSVC_EXIT_UNREACH = 3
};

#define TSVC_DEFAULT_CONFIG "tanuki.yaml"

/* Prints "tanuki-svc: MESSAGE" on stderr (args.c). */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The verbs (the table is in verbs.c): each gets its parsed command line
   and returns the exit code. */
int cmd_check(const cli_args_t *a);
int cmd_up(const cli_args_t *a);
int cmd_version(const cli_args_t *a);
int cmd_config(const cli_args_t *a);
int cmd_down(const cli_args_t *a);
int cmd_start(const cli_args_t *a);
int cmd_stop(const cli_args_t *a);
int cmd_restart(const cli_args_t *a);
int cmd_status(const cli_args_t *a);
int cmd_logs(const cli_args_t *a);
int cmd_env(const cli_args_t *a);
int cmd_pull(const cli_args_t *a);

/* ---- pull progress on a terminal (progress.c) --------------------------- */

/* Set the logger up on stderr at level, in text or JSON; when stderr is a
   terminal, also draw a live line per image being pulled below the log
   lines. cli_progress_end() puts the logger back on stderr as it was. */
void cli_progress_setup(tsvc_log_level_t level, bool json);
void cli_progress_end(void);

/* The bash completion's helper, `tanuki-svc __complete CWORD WORD...`
   (cmd_complete.c); main() calls it before the parser, as it takes bash's
   words, not options. */
int cli_complete(int argc, char **argv);
int cmd_export(const cli_args_t *a);

/* ---- the project: config, socket, state directory (client.c) ---------- */

typedef struct {
  char *config_path;  /* absolute when the file exists */
  tsvc_config_t *cfg;
  char *dir;          /* the config's directory (the docker project label) */
  char *state_dir;    /* dir/.tanuki (the process runtime's data may be elsewhere:
                         cli_data_location) */
  char *socket;       /* the API socket */
} cli_project_t;

/* The config path of -c, else $TANUKI_CONFIG, else tanuki.yaml. */
const char *cli_config_path(const char *opt);
/* Load the config (diagnostics on stderr). Returns 0 or an exit code. */
int cli_project_load(const char *path, cli_project_t *p);
/* Same, printing the config's warnings too. */
int cli_project_load2(const char *path, cli_project_t *p, bool warnings);
void cli_project_free(cli_project_t *p);

/* ---- the monitor's API over its unix socket (client.c) ------------------ */

enum { CLI_API_OK = 0, CLI_API_NONE = 1, CLI_API_UNREACH = 2 };

/* A reply: status and body (NUL-terminated; caller frees). */
typedef struct {
  long status;
  char *body;
} cli_reply_t;

/*
 * METHOD path over the socket. Returns CLI_API_OK with the reply (any HTTP
 * status), CLI_API_NONE when no monitor runs (no socket file, or a stale
 * one nobody answers on), or CLI_API_UNREACH (permission denied, timeout)
 * with the reason in err.
 */
int cli_api(const char *socket, const char *method, const char *path, long timeout_ms,
            cli_reply_t *r, char *err, size_t errlen);
/* "/v1/services/NAME[/action]" with NAME percent-encoded. Caller frees. */
char *cli_service_path(const char *name, const char *action);
/* The "error" of a JSON error body, or the body itself. Static storage. */
const char *cli_api_error(const cli_reply_t *r);
/* Say, on stderr, that no monitor runs and that we act directly. */
void cli_no_monitor(const cli_project_t *p);

/* ---- where a service's data is (datadir.c) ------------------------------ */

/* The runtime the project's services run on: the running monitor's, else
   the config's, else (auto) "docker" when its daemon answers, else
   "process". A static string. */
const char *cli_runtime_in_use(const cli_project_t *p);
/* Where svc's data lives under runtime ("docker" or "process"), for
   people, into buf: its data directory or its volumes. Returns 0, or 1 when
   there is nothing of ours to show (an external service, a process.command
   service). */
int cli_data_location(const cli_project_t *p, const tsvc_service_conf_t *svc,
                      const char *runtime, char *buf, size_t len);

/* ---- acting without a monitor (direct.c) ------------------------------- */

typedef struct {
  uv_loop_t loop;
  tsvc_runtime_t *rt;
  const char *kind; /* "docker" or "process" */
} cli_direct_t;

/* Open the config's runtime on a loop of our own (runtime auto: docker when
   its daemon answers). Returns 0, or an exit code with the reason printed.
   quiet: no message when docker does not answer (status falls back to
   probes without a runtime). */
int cli_direct_open(const cli_project_t *p, cli_direct_t *d, bool quiet);
/* Run "start", "stop", "restart" or "remove" on svc and wait. Returns 0 or a
   TSVC_E* code with the runtime's words in msg. */
int cli_direct_op(cli_direct_t *d, const char *op, const tsvc_service_conf_t *svc, char *msg,
                  size_t msglen);
/* Inspect svc's container and wait: 0 (ours, or none), TSVC_EEXIST (a
   container of our name that is not ours: msg says whose) or another error. */
int cli_direct_inspect(cli_direct_t *d, const tsvc_service_conf_t *svc, char *msg,
                       size_t msglen);
void cli_direct_close(cli_direct_t *d);

#endif
