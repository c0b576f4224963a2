/*
 * verbs.c: every verb of tanuki-svc and every option, in one place (the
 * rules they follow are in args.h). The help of each verb is made from its
 * row; shell completion and the docs read the same rows.
 */
#include "cli/args.h"
#include "cli/cli.h"

/* ---- options ------------------------------------------------------------------ */

const cli_opt_t CLI_OPT_HELP = {"help", 'h', CLI_ARG_NONE, NULL, NULL, 0, 0, "this text"};

const cli_opt_t CLI_OPT_CONFIG = {
    "config", 'c', CLI_ARG_FILE, "FILE", NULL, 0, 0,
    "the config (default: $TANUKI_CONFIG, else ./" TSVC_DEFAULT_CONFIG ")"};

const cli_opt_t CLI_OPT_JSON = {"json", 0, CLI_ARG_NONE, NULL, NULL, 0, 0,
                                "print the API's JSON (GET /v1/services[/NAME])"};

const cli_opt_t CLI_OPT_WATCH = {"watch", 'w', CLI_ARG_NONE, NULL, NULL, 0, 0,
                                 "redraw every second until Ctrl-C"};

const cli_opt_t CLI_OPT_FOLLOW = {"follow", 'f', CLI_ARG_NONE, NULL, NULL, 0, 0,
                                  "keep printing new output until Ctrl-C"};

const cli_opt_t CLI_OPT_TAIL = {"tail", 'n', CLI_ARG_NUMBER, "N", NULL, 0, 100000000L,
                                "only the last N lines (default: all)"};

static const char *const format_choices[] = {"shell", "json", NULL};
const cli_opt_t CLI_OPT_FORMAT = {"format", 'f', CLI_ARG_CHOICE, NULL, format_choices, 0, 0,
                                  "shell (default: export lines for eval) or json"};

const cli_opt_t CLI_OPT_DETACH = {"detach", 'd', CLI_ARG_NONE, NULL, NULL, 0, 0,
                                  "run in the background: pid in .tanuki/tanuki-svc.pid,\n"
                                  "log in .tanuki/tanuki-svc.log (beside the config)"};

static const char *const runtime_choices[] = {"auto", "docker", "process", NULL};
const cli_opt_t CLI_OPT_RUNTIME = {"runtime", 0, CLI_ARG_CHOICE, NULL, runtime_choices, 0, 0,
                                   "override the config's runtime"};

const cli_opt_t CLI_OPT_DOWN = {"down", 0, CLI_ARG_NONE, NULL, NULL, 0, 0,
                                "stop the services too when monitoring stops"};

static const char *const log_format_choices[] = {"text", "json", NULL};
const cli_opt_t CLI_OPT_LOG_FORMAT = {"log-format", 0, CLI_ARG_CHOICE, NULL,
                                      log_format_choices, 0, 0,
                                      "text (key=value) or json; default: monitor.log_format"};

static const char *const log_level_choices[] = {"debug", "info", "warn", "error", NULL};
const cli_opt_t CLI_OPT_LOG_LEVEL = {"log-level", 0, CLI_ARG_CHOICE, "LEVEL", log_level_choices,
                                     0, 0, "debug, info, warn or error (default info)"};

const cli_opt_t CLI_OPT_OUTPUT = {"output", 'o', CLI_ARG_FILE, "FILE", NULL, 0, 0,
                                  "write to FILE (default: stdout)"};

const cli_opt_t CLI_OPT_COMPOSE_V1 = {
    "compose-v1", 0, CLI_ARG_NONE, NULL, NULL, 0, 0,
    "compose: what docker-compose 1.x (Debian 12's) reads: no\n"
    "healthcheck start_interval, no depends_on restart"};

const cli_opt_t CLI_OPT_STORAGE = {"storage", 0, CLI_ARG_STRING, "SIZE", NULL, 0, 0,
                                   "kubernetes: size of each volume claim (default 1Gi)"};

/* ---- the verbs' option lists --------------------------------------------------- */

static const cli_opt_t *const only_config[] = {&CLI_OPT_CONFIG, NULL};
static const cli_opt_t *const no_opts[] = {NULL};
static const cli_opt_t *const up_opts[] = {&CLI_OPT_DETACH, &CLI_OPT_CONFIG, &CLI_OPT_RUNTIME,
                                           &CLI_OPT_DOWN, &CLI_OPT_LOG_FORMAT,
                                           &CLI_OPT_LOG_LEVEL, NULL};
static const cli_opt_t *const status_opts[] = {&CLI_OPT_JSON, &CLI_OPT_WATCH, &CLI_OPT_CONFIG,
                                               NULL};
static const cli_opt_t *const logs_opts[] = {&CLI_OPT_FOLLOW, &CLI_OPT_TAIL, &CLI_OPT_CONFIG,
                                             NULL};
const cli_opt_t CLI_OPT_NETWORK = {
    "network", 0, CLI_ARG_NONE, NULL, NULL, 0, 0,
    "the view from a container on the project's network (container\n"
    "name, container port) instead of the host's"};
const cli_opt_t CLI_OPT_PREFIX = {"prefix", 0, CLI_ARG_STRING, "P", NULL, 0, 0,
                                         "put P before every variable's name (P_POSTGRES_HOST\n"
                                         "for P_): letters, digits and '_'"};
const cli_opt_t CLI_OPT_ONLY = {"only", 0, CLI_ARG_STRING, "NAME[,NAME...]", NULL, 0, 0,
                                       "only these services (as the operands)"};
static const cli_opt_t *const env_opts[] = {&CLI_OPT_FORMAT, &CLI_OPT_NETWORK, &CLI_OPT_PREFIX,
                                            &CLI_OPT_ONLY, &CLI_OPT_CONFIG, NULL};
static const char *const config_subcommands[] = {"validate", "show", NULL};
static const cli_opt_t *const export_opts[] = {&CLI_OPT_OUTPUT, &CLI_OPT_COMPOSE_V1,
                                               &CLI_OPT_STORAGE, &CLI_OPT_CONFIG, NULL};
static const char *const export_targets[] = {"compose", "kubernetes", NULL};

/* ---- texts ----------------------------------------------------------------------- */

#define CTL_TEXT(Verb)                                                                    \
  Verb " each named service, waiting for the runtime's answer. Through the\n"             \
       "running monitor when there is one (a person's restart always goes\n"              \
       "through and clears 'failed'; a stopped service is never restarted by the\n"      \
       "monitor); else directly through the runtime (docker), unmonitored.\n"             \
       "External services (external: true) are only watched: refused.\n"
#define CTL_EXIT                                                                         \
  "0 done, 1 a service is unknown or its operation failed, 2 usage,\n"                  \
  "3 cannot reach the monitor or the runtime."

const cli_verb_t cli_verbs[] = {
    {"up", cmd_up, "", 0, 0, CLI_OPERANDS_NONE, NULL, up_opts,
     "start the services and monitor them (-d: in the background)",
     "Start every enabled service of the config (in depends_on order; a running\n"
     "container of ours is adopted) and monitor them, logging every change of\n"
     "state and serving the API on monitor.socket (and monitor.listen).\n"
     "In the foreground, Ctrl-C (SIGINT) or SIGTERM stops monitoring; the\n"
     "services keep running unless --down is given (under the process runtime\n"
     "they are children of this program and stop with it). SIGHUP reloads the\n"
     "config: added services start, removed ones stop, changed ones are applied;\n"
     "a bad file is rejected and the old config keeps running.\n"
     "\n"
     "A second 'up' for the same project is refused while the first answers.\n",
     "0 after a clean stop (or once detached with every service started),\n"
     "1 invalid config, a monitor already running, or (-d) a service that could\n"
     "not start (named; the monitor keeps running and retries it), 2 usage, 3 the\n"
     "runtime cannot be reached."},

    {"down", cmd_down, "", 0, 0, CLI_OPERANDS_NONE, NULL, only_config,
     "stop the services and the monitor",
     "Stop every service we start (not external ones; volumes and data are\n"
     "kept) and the monitor. With no monitor running, the services are stopped\n"
     "directly through the runtime (docker).\n",
     "0 done, 1 some services could not be stopped, 2 usage, 3 cannot\n"
     "reach the monitor or the runtime."},

    {"start", cmd_start, "NAME...", 1, CLI_MANY, CLI_OPERANDS_SERVICES, NULL, only_config,
     "start services by name", CTL_TEXT("Start"), CTL_EXIT},

    {"stop", cmd_stop, "NAME...", 1, CLI_MANY, CLI_OPERANDS_SERVICES, NULL, only_config,
     "stop services by name (the monitor leaves them stopped)", CTL_TEXT("Stop"), CTL_EXIT},

    {"restart", cmd_restart, "NAME...", 1, CLI_MANY, CLI_OPERANDS_SERVICES, NULL, only_config,
     "restart services by name", CTL_TEXT("Restart"), CTL_EXIT},

    {"status", cmd_status, "[NAME]", 0, 1, CLI_OPERANDS_SERVICES, NULL, status_opts,
     "show the services' health (--json, --watch)",
     "Show each service (or NAME): state, health, for how long, consecutive\n"
     "failures out of retries, restarts, the last check and its latency, and\n"
     "the last error; for NAME, also where its data is. From the running\n"
     "monitor; with no monitor, every probe runs once now.\n"
     "\n"
     "Colour only on a terminal, never when NO_COLOR is set.\n",
     "0 every enabled service (or NAME) healthy, 1 one is not or NAME is\n"
     "unknown, 2 usage, 3 cannot reach the monitor."},

    {"check", cmd_check, "NAME", 1, 1, CLI_OPERANDS_SERVICES, NULL, only_config,
     "run one probe of a service now (exit 0 healthy, 1 not)",
     "Run the health probe of service NAME once, now, and print its verdict.\n"
     "The probe is the one the monitor uses (healthcheck.probe, or the native\n"
     "equivalent of healthcheck.command). With a monitor running, the monitor\n"
     "checks now (the result counts in its state and history); else the probe\n"
     "runs here.\n",
     "0 healthy, 1 unhealthy or no such service, 2 usage, 3 the probe\n"
     "could not run (runtime unreachable)."},

    {"logs", cmd_logs, "NAME", 1, 1, CLI_OPERANDS_SERVICES, NULL, logs_opts,
     "print a service's output (-f to follow)",
     "Print the output of service NAME: the container's logs (docker runtime)\n"
     "or .tanuki/logs/NAME.log (process runtime).\n",
     "0 ok, 1 unknown service or no logs, 2 usage, 3 cannot reach the\n"
     "runtime."},

    {"config", cmd_config, "validate|show", 1, 1, CLI_OPERANDS_CHOICE, config_subcommands,
     only_config, "validate or show tanuki.yaml",
     "  validate  check FILE; print every error and warning as\n"
     "            FILE:LINE:COLUMN: error: MESSAGE on stderr\n"
     "  show      print the effective config (defaults filled in,\n"
     "            secrets masked) as YAML\n",
     "0 valid, 1 invalid or unreadable, 2 usage."},

    {"env", cmd_env, "[NAME...]", 0, CLI_MANY, CLI_OPERANDS_SERVICES, NULL, env_opts,
     "print connection variables (POSTGRES_URL, REDIS_URL, ...)",
     "Print how to reach each enabled service with a port (or only NAME...,\n"
     "--only), as TANK-045 names it. The host's view (default): host\n"
     "127.0.0.1 and the published port. --network: the view from a container\n"
     "on the project's network: the container's name and the container port\n"
     "(the process runtime has no container network: its services listen on\n"
     "127.0.0.1, and --network prints the host's view, saying so on stderr).\n"
     "  every service  P_HOST P_PORT P_URL (host:port)\n"
     "  postgres       P_USER P_PASSWORD P_DATABASE P_DB (the same) P_DSN\n"
     "                 (postgres://user:password@host:port/database)\n"
     "  redis          P_URL is redis://[default:password@]host:port; P_PASSWORD when set\n"
     "P is POSTGRES / REDIS for the first postgres / redis service (by its\n"
     "name, else its image), else the service's name upper-cased, every\n"
     "character but letters and digits made '_', and '_' put first when it\n"
     "starts with a digit (9lives: _9LIVES_HOST). Two services whose\n"
     "variables would have the same name are a config error.\n"
     "With a monitor running, from its GET /v1/env, and a warning on stderr\n"
     "for each service that is not healthy (the variables are printed all\n"
     "the same); else from the config. The shell format ends with a comment\n"
     "line per service saying where its data is.\n"
     "\n"
     "  eval \"$(tanuki-svc env)\"\n",
     "0 ok, 1 invalid config, 2 usage or an unknown service, 3 the monitor\n"
     "cannot be reached."},

    {"export", cmd_export, "compose|kubernetes", 1, 1, CLI_OPERANDS_CHOICE, export_targets,
     export_opts, "write the services as a docker-compose.yml or Kubernetes manifests",
     "  compose     a docker-compose.yml: the same images, command, environment,\n"
     "              ports (on 127.0.0.1), volumes, network and depends_on\n"
     "              conditions; each health check as Docker's HEALTHCHECK (the\n"
     "              native probes as their command equivalents)\n"
     "  kubernetes  per service a Deployment, a Service (with a port) and a\n"
     "              PersistentVolumeClaim (with volumes); the health check as\n"
     "              startupProbe, readinessProbe and livenessProbe\n"
     "Disabled and external services are left out. What the target cannot\n"
     "express is listed in comments at the top of the output and on stderr.\n"
     "Mappings and differences: docs/export.md.\n",
     "0 written, 1 invalid config, a service that cannot be exported (no\n"
     "image) or a write error, 2 usage."},

    {"pull", cmd_pull, "[NAME...]", 0, CLI_MANY, CLI_OPERANDS_SERVICES, NULL, only_config,
     "pull the services' images (with progress on a terminal)",
     "Pull the images of the named services (default: every enabled service\n"
     "with an image, external ones left out), all at once, whatever their\n"
     "pull_policy. Credentials come from the docker CLI's config.json\n"
     "($DOCKER_CONFIG/config.json, else ~/.docker/config.json, its auths);\n"
     "credential helpers (credsStore, credHelpers) are not run.\n"
     "On a terminal, a live line per image (layers, bytes, rate); otherwise a\n"
     "log line when each pull starts and one when it ends (size, seconds).\n",
     "0 every image pulled, 1 a pull failed, 2 usage or an unknown service,\n"
     "3 the Docker daemon cannot be reached."},

    {"version", cmd_version, "", 0, 0, CLI_OPERANDS_NONE, NULL, no_opts,
     "print the version and those of the libraries in use",
     "Print the version, the git commit it was built from (when built from a\n"
     "git checkout; \"-dirty\" with local changes) and the versions of the\n"
     "libraries it runs with.\n",
     "0."},

    {NULL, NULL, NULL, 0, 0, CLI_OPERANDS_NONE, NULL, NULL, NULL, NULL, NULL},
};
