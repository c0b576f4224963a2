/*
 * config: load and validate tanuki.yaml (docs/config.md).
 *
 * tsvc_config_load() parses the file with libyaml into the typed structs
 * below, with every default filled in. All strings and arrays inside a
 * tsvc_config_t are owned by it and freed by tsvc_config_free().
 */
#ifndef TSVC_CONFIG_H
#define TSVC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tsvc.h"

typedef enum {
  TSVC_RUNTIME_AUTO,
  TSVC_RUNTIME_DOCKER,
  TSVC_RUNTIME_PROCESS
} tsvc_runtime_kind_t;

typedef enum {
  TSVC_PROBE_AUTO,
  TSVC_PROBE_POSTGRES,
  TSVC_PROBE_REDIS,
  TSVC_PROBE_TCP,
  TSVC_PROBE_HTTP,
  TSVC_PROBE_EXEC,
  TSVC_PROBE_RUNNING
} tsvc_probe_kind_t;

typedef enum { TSVC_POLICY_ON_UNHEALTHY, TSVC_POLICY_NEVER } tsvc_policy_t;
/* pull_policy, as compose spells it: pull a missing image before creating a
   container (missing, also if_not_present), pull at every start (always),
   or never pull (never: a missing image is an error). */
typedef enum { TSVC_PULL_MISSING, TSVC_PULL_ALWAYS, TSVC_PULL_NEVER } tsvc_pull_policy_t;
typedef enum { TSVC_LOGFMT_TEXT, TSVC_LOGFMT_JSON } tsvc_logfmt_t;
/* docker.probe_via: where the probes of a container connect. auto: the
   container's address when the engine runs on this machine, else the
   published port on the engine's host; container / published: always so;
   exec: the probe as a command run inside the container (docs/remote.md). */
typedef enum {
  TSVC_VIA_AUTO,
  TSVC_VIA_CONTAINER,
  TSVC_VIA_PUBLISHED,
  TSVC_VIA_EXEC
} tsvc_probe_via_t;
/* What a dependent waits for (depends_on, compose's conditions):
   service_started (the short list form) or service_healthy. */
typedef enum { TSVC_DEP_STARTED, TSVC_DEP_HEALTHY } tsvc_dep_condition_t;

const char *tsvc_runtime_kind_name(tsvc_runtime_kind_t k);
const char *tsvc_probe_kind_name(tsvc_probe_kind_t k);
const char *tsvc_pull_policy_name(tsvc_pull_policy_t p);
/* "auto", "container", "published", "exec". */
const char *tsvc_probe_via_name(tsvc_probe_via_t v);
/* "service_started", "service_healthy". */
const char *tsvc_dep_condition_name(tsvc_dep_condition_t c);

typedef struct {
  char *key;
  char *value;
} tsvc_kv_t;

/* A list of strings (argv, volumes, depends_on); v[n] is NULL, so that v
   serves as an argv. */
typedef struct {
  char **v;
  size_t n;
} tsvc_strv_t;

/* One entry of depends_on, beside its name in depends_on.v. */
typedef struct {
  tsvc_dep_condition_t condition; /* default (and the list form): started */
  bool restart; /* restart: true: a restart of the dependency restarts this
                   service once the dependency is healthy again */
  int line, column; /* where the dependency is named, 1-based */
} tsvc_dep_conf_t;

typedef struct {
  tsvc_strv_t command; /* healthcheck.command (argv form, CMD form) */
  bool shell;          /* command is a CMD-SHELL string: run via /bin/sh -c */
  tsvc_probe_kind_t probe;
  tsvc_ms_t interval;       /* default 10s */
  tsvc_ms_t timeout;        /* default 5s */
  int retries;              /* default 3 */
  int success_threshold;    /* default 1 */
  tsvc_ms_t start_period;   /* default 60s */
  tsvc_ms_t start_interval; /* default 1s */
  int history;              /* default 20 */
  char *address;            /* "host:port" override, or NULL */
  char *path;               /* http probe path, default "/" */
  int expect_status_min;    /* http, default 200 */
  int expect_status_max;    /* http, default 399 */
  bool session;             /* redis, postgres: hold one connection and
                               check on it (docs/config.md); default false */
  tsvc_ms_t full_every;     /* session: the full probe's period, default 1m */
} tsvc_healthcheck_conf_t;

typedef struct {
  tsvc_policy_t policy;   /* default on-unhealthy */
  int max_restarts;       /* default 5 */
  tsvc_ms_t window;       /* default 10m */
  tsvc_ms_t backoff;      /* default 1s */
  tsvc_ms_t max_backoff;  /* default 5m */
  tsvc_ms_t cooldown;     /* default 30m; 0 means never */
  tsvc_ms_t stop_timeout; /* default 10s */
} tsvc_restart_conf_t;

typedef struct {
  tsvc_strv_t command; /* argv of the service under the process runtime */
  tsvc_kv_t *env;
  size_t env_len;
  char *workdir;
  char *data_dir; /* the built-in recipes' data directory (relative: to the
                     config's directory), or NULL: the runtime's default */
} tsvc_process_conf_t;

/* hooks: commands the monitor runs on events (docs/config.md, "hooks"),
   at the top level (for every service) and per service (its own, run as
   well). */
typedef struct {
  tsvc_strv_t on_change; /* argv run on each change of state; a string is
                            ["/bin/sh", "-c", string]; n 0: none */
  tsvc_ms_t timeout;     /* killed after this; default 10s */
  char *webhook;         /* http(s) URL each change of state is POSTed to
                            (manager/webhook.h), or NULL */
  tsvc_ms_t webhook_timeout; /* each attempt ends after this; default 5s */
} tsvc_hooks_conf_t;

typedef struct {
  char *name;
  bool enabled;       /* default true */
  char *image;        /* NULL when not set */
  tsvc_pull_policy_t pull_policy; /* default missing */
  /* `port: N` or `port: "H:C"` (compose's short form). port is C, where the
     service listens: in its container (probes connect to it on the
     container's address) or, under the process runtime, which maps no
     ports, on the host at host_port. host_port is H, published on
     127.0.0.1 and what the host's view (env) uses; `port: N` sets both
     to N. Both 0 when not set. */
  int port;
  int host_port;
  int port_line, port_column; /* where port is set (0: not set) */
  tsvc_kv_t *env;     /* `environment`, in file order */
  size_t env_len;
  tsvc_strv_t volumes;
  /* depends_on: the names, in file order, and for each (same index) its
     condition: depends[i] goes with depends_on.v[i]; NULL when n is 0.
     The list form [a, b] and the long form {a: {condition: ...,
     restart: true}} both fill both. */
  tsvc_strv_t depends_on;
  tsvc_dep_conf_t *depends;
  tsvc_ms_t depends_timeout; /* a (re)start waits this long for the
                                conditions of depends_on, then fails;
                                default 2m */
  tsvc_strv_t command; /* container command override */
  bool external;       /* only watched: never started, stopped, restarted */
  tsvc_healthcheck_conf_t healthcheck;
  tsvc_restart_conf_t restart;
  tsvc_process_conf_t process;
  tsvc_hooks_conf_t hooks;
  int line, column; /* where the service is defined, 1-based */
} tsvc_service_conf_t;

typedef struct {
  char *path; /* the file it was loaded from */
  tsvc_runtime_kind_t runtime;
  struct {
    char *host;             /* default $DOCKER_HOST, else unix:///var/run/docker.sock */
    bool host_named;        /* docker.host or $DOCKER_HOST named an engine (then
                               runtime: auto never falls back to processes) */
    char *network;          /* default network.name, else tanuki-net */
    char *container_prefix; /* default tanuki-svc- */
    tsvc_probe_via_t probe_via; /* default auto */
    char *publish_address;  /* the engine machine's address ports are
                               published on; default 127.0.0.1 */
    /* TLS to a tcp:// engine: docker.tls, else $DOCKER_TLS_VERIFY with the
       files of $DOCKER_CERT_PATH (default ~/.docker) as the docker CLI. */
    struct {
      bool enabled;         /* TLS at all */
      bool verify;          /* check the engine's certificate against ca
                               and its name against the host (default) */
      char *ca;             /* absolute paths (a relative one in the file is
                               taken from the config's directory); NULL: */
      char *cert;           /* none */
      char *key;
      char *origin;         /* where they came from, for messages:
                               "docker.tls" or "DOCKER_CERT_PATH=..." */
    } tls;
    /* ssh:// engines: the options of the ssh that forwards the socket. */
    struct {
      char *identity_file;  /* ssh -i, absolute; NULL: ssh's own choice */
      char *config_file;    /* ssh -F, absolute; NULL: ~/.ssh/config */
      char *socket;         /* the engine's socket on that machine; default
                               /var/run/docker.sock */
    } ssh;
  } docker;
  struct {
    char *socket;           /* default .tanuki/tanuki-svc.sock */
    char *listen;           /* NULL: no TCP API */
    tsvc_logfmt_t log_format;
    tsvc_ms_t timer_grid;   /* services' deadlines on multiples of it
                               (tsvc_monitor_set_timer_grid); default 10 ms,
                               0: to the ms */
  } monitor;
  tsvc_hooks_conf_t hooks; /* for every service */
  tsvc_service_conf_t *services; /* sorted as in the file */
  size_t nservices;
} tsvc_config_t;

/*
 * Diagnostics collected while loading. Each entry is one line of the form
 * "FILE:LINE:COLUMN: error: MESSAGE" (or "warning:"). Owned by the caller,
 * freed with tsvc_diag_free().
 */
typedef struct {
  char **lines;
  size_t n;
  size_t nerrors;
  size_t nwarnings;
} tsvc_diag_t;

void tsvc_diag_free(tsvc_diag_t *d);

/*
 * Load and validate the file at path. On success returns 0 and *out holds a
 * new config (free it with tsvc_config_free); warnings may still be in diag.
 * On failure returns TSVC_ECONFIG (or TSVC_EIO when the file cannot be read,
 * TSVC_ENOMEM), *out is NULL, and diag holds every error found, not only the
 * first.
 */
int tsvc_config_load(const char *path, tsvc_config_t **out, tsvc_diag_t *diag);

/* Same, from a string in memory; name is used in diagnostics. */
int tsvc_config_load_string(const char *name, const char *text, size_t len,
                            tsvc_config_t **out, tsvc_diag_t *diag);

void tsvc_config_free(tsvc_config_t *cfg);

/* The service called name, or NULL. */
const tsvc_service_conf_t *tsvc_config_service(const tsvc_config_t *cfg,
                                               const char *name);

/*
 * The same as tsvc_config_dump without masking anything: loading it back
 * gives the same config (fuzz/fuzz_config.c checks that). Not for people.
 */
int tsvc_config_dump_unmasked(const tsvc_config_t *cfg, FILE *f);

/*
 * Write the effective config (defaults included) as YAML to f. Values of
 * environment keys that look secret (PASSWORD, SECRET, TOKEN, KEY, ...) and
 * passwords inside commands are printed as "********".
 */
int tsvc_config_dump(const tsvc_config_t *cfg, FILE *f);

/*
 * The variable names of `tanuki-svc env` (envname.c).
 *
 * tsvc_env_prefix: a service name as a shell variable prefix: upper-cased,
 * every character but letters and digits as '_', and '_' first when the
 * name starts with a digit ("9lives" -> "_9LIVES", "a.b" -> "A_B").
 * Returns buf (cut to len).
 *
 * tsvc_env_kind: "postgres" or "redis" for a service env gives the
 * POSTGRES_* or REDIS_* variables to (by its name, else its image), or NULL.
 *
 * tsvc_env_prefixes: the prefix of each service of cfg, in file order:
 * POSTGRES / REDIS for the first postgres / redis service with a port,
 * else tsvc_env_prefix of its name. An array of cfg->nservices strings,
 * freed with tsvc_env_prefixes_free(); NULL when out of memory. The loader
 * refuses a config where two services get the same one.
 */
const char *tsvc_env_prefix(const char *name, char *buf, size_t len);
const char *tsvc_env_kind(const tsvc_service_conf_t *s);
char **tsvc_env_prefixes(const tsvc_config_t *cfg);
void tsvc_env_prefixes_free(char **v, size_t n);

/* True when an environment key names a secret (case-insensitive match of
 * PASSWORD, PASSWD, PASS, SECRET, TOKEN, KEY, CREDENTIAL, AUTH; *_PWD and
 * *_PW, but not PWD alone, the working directory). */
bool tsvc_is_secret_key(const char *key);

/*
 * Copy src into dst (at most len bytes with the NUL; cut when longer) with
 * secret values masked as "********" where they stand as values: the value
 * of KEY=VALUE or "KEY": "VALUE" when KEY names a secret (libpq's
 * password=..., PGPASSWORD=...), or when VALUE is one of known; the
 * password of a URL's userinfo; the word after -a, --pass, --password,
 * --requirepass, --masterauth; the password of -u/--user user:password; an
 * argument of AUTH that is one of known. A known secret anywhere else (in a
 * path or a name) is printed as it is. Returns 0, TSVC_EINVAL (no dst) or
 * TSVC_ENOMEM (dst is then "").
 */
int tsvc_mask_text(char *dst, size_t len, const char *src, const char *const *known,
                   size_t nknown);

/*
 * Durations as in Go's time.ParseDuration, without sign: "300ms", "5s",
 * "1m30s", "2h", "1.5s". Units: ns, us, µs, ms, s, m, h. A bare number
 * ("5") is rejected with a hint, except "0" (as in Go). Returns 0 and the value in milliseconds (rounded down;
 * a non-zero value below 1 ms is an error), or TSVC_EINVAL with a message for
 * people in err.
 */
int tsvc_duration_parse(const char *s, tsvc_ms_t *out, char *err, size_t errlen);

/* Format ms as a Go-style duration ("1m30s", "300ms", "0s") into buf. */
const char *tsvc_duration_format(tsvc_ms_t ms, char *buf, size_t len);

#endif /* TSVC_CONFIG_H */
