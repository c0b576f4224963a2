/*
 * cmd_up.c: `tanuki-svc up [-d]`: start the services and monitor them, in
 * the foreground or detached, serving the API on the project's socket.
 *
 * Signals arrive as messages to the main thread (sigwait), never handled in
 * place: SIGINT and SIGTERM stop monitoring, SIGHUP reloads the config.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/systemd.h"
#include "common/util.h"
#include "log/log.h"
#include "manager/manager.h"
#include "tsvc.h"

static atomic_bool down_asked;

/* POST /v1/down was answered: stop like SIGTERM does. */
static void on_down(void *data) {
  (void)data;
  atomic_store(&down_asked, true);
  kill(getpid(), SIGTERM);
}

/* Tell the waiting parent how the start went (detached mode), once. */
static void tell_parent(int *fd, int exit_code, const char *msg) {
  if (*fd < 0) return;
  char buf[16384];
  int n = snprintf(buf, sizeof buf, "%d %s", exit_code, msg ? msg : "");
  if (n > (int)sizeof buf - 1) n = (int)sizeof buf - 1;
  ssize_t w = write(*fd, buf, (size_t)n);
  (void)w;
  close(*fd);
  *fd = -1;
}

/* The original process: wait for the daemon's word and print it. */
static int wait_for_daemon(int rfd, pid_t child) {
  char buf[16384];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(rfd, buf + len, sizeof buf - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
    if (len == sizeof buf - 1) break;
  }
  buf[len] = '\0';
  close(rfd);
  waitpid(child, NULL, 0); /* the intermediate child exits at once */
  if (!len) {
    cli_err("the monitor died while starting (see its log)");
    return TSVC_EXIT_FAIL;
  }
  char *sp = strchr(buf, ' ');
  int code = (int)strtol(buf, NULL, 10);
  const char *msg = sp ? sp + 1 : "";
  if (code == 0) printf("%s\n", msg);
  else cli_err("%s", msg);
  return code;
}

/* Fork twice, with a new session between: the daemon is no session leader
   and has no terminal. Returns in the daemon with *notify the pipe to the
   waiting parent; the parent and the intermediate child never return. */
static int detach(const char *state_dir, const char *log_path, int *notify) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    cli_err("pipe: %s", strerror(errno));
    return TSVC_EXIT_FAIL;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    cli_err("fork: %s", strerror(errno));
    return TSVC_EXIT_FAIL;
  }
  if (pid > 0) {
    close(p[1]);
    exit(wait_for_daemon(p[0], pid));
  }
  close(p[0]);
  if (setsid() < 0) _exit(TSVC_EXIT_FAIL);
  pid = fork();
  if (pid < 0) _exit(TSVC_EXIT_FAIL);
  if (pid > 0) _exit(0);
  /* The daemon. */
  if (chdir("/") != 0) _exit(TSVC_EXIT_FAIL);
  mkdir(state_dir, 0700);
  int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (logfd < 0 || nullfd < 0) {
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof msg, "cannot open the log %s: %s", log_path, strerror(errno));
    tell_parent(&p[1], TSVC_EXIT_FAIL, msg);
    _exit(TSVC_EXIT_FAIL);
  }
  dup2(nullfd, 0);
  dup2(logfd, 1);
  dup2(logfd, 2);
  close(nullfd);
  close(logfd);
  *notify = p[1];
  return 0;
}

static int write_pid_file(const char *path) {
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  fprintf(f, "%ld\n", (long)getpid());
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* Open files: every check in flight and every held session is a socket,
   and 10,000 services with held sessions hold 10,000 (issue 13). The soft
   limit is often 1,024 (systemd's default) under a hard limit of 524,288:
   take the hard one, as Go programs do at start. When even the hard limit
   is below what nservices may hold (two sockets each: a check and a
   session being renewed, plus room for the API's clients, hooks and logs),
   a process with CAP_SYS_RESOURCE (root, as a system service runs) raises
   it, up to the kernel's fs.nr_open. Short of that, a warning says what to
   raise. Services added by a reload later are not counted. */
static void raise_nofile(size_t nservices) {
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0) return;
  rlim_t need = (rlim_t)nservices * 2 + 1024;
  if (nofile.rlim_max != RLIM_INFINITY && nofile.rlim_max < need) {
    rlim_t cap = need;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    unsigned long nr_open;
    if (f) {
      if (fscanf(f, "%lu", &nr_open) == 1 && (rlim_t)nr_open < cap) cap = (rlim_t)nr_open;
      fclose(f);
    }
    struct rlimit more = {cap, cap};
    if (cap > nofile.rlim_max && setrlimit(RLIMIT_NOFILE, &more) == 0) nofile = more;
  }
  if (nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) getrlimit(RLIMIT_NOFILE, &nofile);
  }
  if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < need)
    TSVC_LOG(TSVC_LOG_WARN, NULL,
             "open files are limited to %llu (RLIMIT_NOFILE), under the %llu that %zu services "
             "may hold: raise the limit (LimitNOFILE= of a systemd unit, ulimit -n, or run as "
             "root)",
             (unsigned long long)nofile.rlim_cur, (unsigned long long)need, nservices);
}

int cmd_up(const cli_args_t *a) {
  /* The parser checked the values against their choices. */
  const char *runtime = cli_str(a, &CLI_OPT_RUNTIME), *fmt = cli_str(a, &CLI_OPT_LOG_FORMAT);
  const char *level = cli_str(a, &CLI_OPT_LOG_LEVEL);
  bool down = cli_flag(a, &CLI_OPT_DOWN), daemonize = cli_flag(a, &CLI_OPT_DETACH);
  tsvc_log_level_t lvl;
  if (tsvc_log_level_parse(level ? level : "info", &lvl)) {
    cli_err("unknown log level '%s' (debug, info, warn, error)", level);
    return TSVC_EXIT_USAGE;
  }

  /* Memory of a long-running monitor (issue 13, measured with bench/run.sh
     --up): one malloc arena instead of one per thread (the loop, the API's
     threads), and a fixed mmap threshold, so that a /metrics text of a few
     MiB is given back when freed instead of raising glibc's dynamic
     threshold and staying in the heap. Together about 4 MiB less RSS at
     1,000 services scraped. Before any thread. The environment
     (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_) still wins when set. */
  if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 1);
  if (!getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  /* Under systemd (Type=notify): before any thread, as it edits the
     environment. */
  cli_systemd_t *sd = daemonize ? NULL : cli_systemd_open();

  /* Validate first: a detached monitor has nobody to tell. */
  cli_project_t p;
  int rc = cli_project_load2(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p, true);
  if (rc) {
    cli_systemd_close(sd);
    return rc;
  }
  char why[512];
  if (tsvc_api_socket_state(p.socket, why, sizeof why) == TSVC_API_SOCK_LIVE) {
    cli_err("a monitor is already running for this project (it answers on %s); "
            "'tanuki-svc down' stops it",
            p.socket);
    cli_project_free(&p);
    cli_systemd_close(sd);
    return TSVC_EXIT_FAIL;
  }
  char *pid_path = tsvc_asprintf("%s/tanuki-svc.pid", p.state_dir);
  char *log_path = tsvc_asprintf("%s/tanuki-svc.log", p.state_dir);
  bool wrote_pid = false;
  int notify = -1;
  int exit_code = TSVC_EXIT_OK;
  tsvc_manager_t *m = NULL;
  tsvc_api_t *api = NULL;
  char err[8192];
  if (!pid_path || !log_path) {
    cli_err("out of memory");
    exit_code = TSVC_EXIT_FAIL;
    goto out;
  }
  if (daemonize) {
    rc = detach(p.state_dir, log_path, &notify);
    if (rc) {
      exit_code = rc;
      goto out;
    }
  }
  signal(SIGPIPE, SIG_IGN);

  /* Blocked before any thread exists, so every thread inherits the mask and
     only sigwait below sees them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  /* The log is set up before any thread of the library exists: its level
     and output are read by every thread from then on. On a terminal, pulls
     draw live progress lines below the log. */
  bool json = fmt ? strcmp(fmt, "json") == 0 : p.cfg->monitor.log_format == TSVC_LOGFMT_JSON;
  cli_progress_setup(lvl, json);
  tsvc_log_set_journal(cli_journal_stream(STDERR_FILENO));
  raise_nofile(p.cfg->nservices);

  tsvc_manager_opts_t mo = {.config_path = p.config_path, .runtime = runtime};
  rc = tsvc_manager_new(&mo, &m, err, sizeof err);
  if (rc) {
    if (err[0]) fprintf(stderr, "%s\n", err); /* (warnings were printed above) */
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof msg, "cannot load %s", p.config_path);
    tell_parent(&notify, TSVC_EXIT_FAIL, msg);
    cli_err("%s", msg);
    exit_code = rc == TSVC_EINVAL ? TSVC_EXIT_USAGE : TSVC_EXIT_FAIL;
    goto out;
  }
  cli_systemd_watch(sd, m);

  tsvc_api_opts_t ao = {.manager = m,
                        .socket_path = p.socket,
                        .listen = p.cfg->monitor.listen,
                        .on_down = on_down};
  rc = tsvc_api_start(&ao, &api, err, sizeof err);
  if (rc) {
    char msg[9000];
    snprintf(msg, sizeof msg, "%s%s", err,
             rc == TSVC_EEXIST ? " (a monitor is already running for this project)" : "");
    tell_parent(&notify, TSVC_EXIT_FAIL, msg);
    TSVC_LOG(TSVC_LOG_ERROR, NULL, "cannot serve the API: %s", msg);
    exit_code = TSVC_EXIT_FAIL;
    goto out;
  }
  wrote_pid = write_pid_file(pid_path) == 0;
  if (!wrote_pid)
    TSVC_LOG(TSVC_LOG_WARN, NULL, "cannot write %s: %s", pid_path, strerror(errno));
  TSVC_LOG(TSVC_LOG_INFO, NULL, "API on %s%s%s", p.socket,
           p.cfg->monitor.listen ? " and http://" : "",
           p.cfg->monitor.listen ? p.cfg->monitor.listen : "");

  rc = tsvc_manager_start_services(m, err, sizeof err);
  if (rc == TSVC_EUNREACH || (rc && !tsvc_manager_runtime_name(m)[0])) {
    TSVC_LOG(TSVC_LOG_ERROR, NULL, "%s", err);
    tell_parent(&notify, TSVC_EXIT_UNREACH, err);
    exit_code = TSVC_EXIT_UNREACH;
    goto out;
  }
  /* Some services could not start: each line "name: the runtime's words";
     the monitor retries them on the backoff schedule, the others run. */
  char failed[1024] = "", lines[8192] = "";
  if (rc) {
    for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n")) {
      TSVC_LOG(TSVC_LOG_ERROR, NULL, "could not start %s", line);
      size_t nl = strlen(lines), nf = strlen(failed);
      snprintf(lines + nl, sizeof lines - nl, "%scould not start %s", nl ? "\n" : "", line);
      const char *colon = strstr(line, ": ");
      snprintf(failed + nf, sizeof failed - nf, "%s%.*s", nf ? ", " : "",
               colon ? (int)(colon - line) : (int)strlen(line), line);
    }
  }
  TSVC_LOG(TSVC_LOG_INFO, NULL, "monitoring %zu services on the %s runtime%s%s%s%s",
           p.cfg->nservices, tsvc_manager_runtime_name(m),
           failed[0] ? "; could not start: " : "", failed,
           failed[0] ? " (retried on the restart backoff schedule)" : "",
           daemonize ? ""
           : down || strcmp(tsvc_manager_runtime_name(m), "process") == 0
               ? "; Ctrl-C stops monitoring and the services"
               : "; Ctrl-C stops monitoring (the containers keep running)");
  /* The program's own copy of the config (read above for the socket, the
     listener and the log format; the manager holds its own, reloads read
     the file anew) is not needed from here on: about 0.5 MiB at 1,000
     services, 5 MiB at 10,000 (issue 13, bench/run.sh --up). */
  tsvc_config_free(p.cfg);
  p.cfg = NULL;
  /* What loading took (two parses of the file, their trees) lies free
     below the services' memory, where glibc does not trim by itself: hand
     those pages back once, now (about 1 MiB at 1,000 services). */
  malloc_trim(0);
  {
    /* up -d: exit 1 when a service could not start, naming it (the
       monitor stays, retrying it). */
    char msg[PATH_MAX * 3 + sizeof lines];
    snprintf(msg, sizeof msg, "%s%s%smonitor running in the background (pid %ld)%s\n"
             "  socket %s\n  log    %s\n  pid    %s", lines, lines[0] ? "\n" : "",
             lines[0] ? "" : "tanuki-svc: ", (long)getpid(),
             failed[0] ? "; it retries them on the restart backoff schedule" : "", p.socket,
             log_path, pid_path);
    tell_parent(&notify, failed[0] ? TSVC_EXIT_FAIL : TSVC_EXIT_OK, msg);
  }
  cli_systemd_ready(sd);

  int sig = 0;
  for (;;) {
    if (sigwait(&set, &sig) != 0) continue;
    if (sig != SIGHUP) break;
    TSVC_LOG(TSVC_LOG_INFO, NULL, "SIGHUP: reloading %s", p.config_path);
    rc = tsvc_manager_reload(m, err, sizeof err);
    if (rc == TSVC_ECONFIG || rc == TSVC_EIO || rc == TSVC_EBUSY || rc == TSVC_ENOMEM) {
      for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
        TSVC_LOG(TSVC_LOG_ERROR, NULL, "reload rejected: %s", line);
    } else if (rc) {
      for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
        TSVC_LOG(TSVC_LOG_ERROR, NULL, "reload: %s", line);
    }
  }
  cli_systemd_stopping(sd);
  bool by_api = atomic_load(&down_asked);
  TSVC_LOG(TSVC_LOG_INFO, NULL, "%s: stopping monitoring",
           by_api ? "down" : sig == SIGINT ? "SIGINT" : "SIGTERM");
  /* No new requests from here on. */
  tsvc_api_stop(api);
  api = NULL;
  if (down && !by_api) {
    rc = tsvc_manager_stop_services(m, err, sizeof err);
    if (rc) {
      for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
        TSVC_LOG(TSVC_LOG_ERROR, NULL, "could not stop %s", line);
      exit_code = TSVC_EXIT_FAIL;
    }
  } else {
    tsvc_manager_stop_monitoring(m);
  }

out:
  tsvc_api_stop(api);
  cli_systemd_close(sd); /* (it borrows the manager) */
  tsvc_manager_free(m);
  cli_progress_end();
  if (wrote_pid) unlink(pid_path);
  if (notify >= 0) tell_parent(&notify, exit_code ? exit_code : TSVC_EXIT_FAIL, "stopped");
  free(pid_path);
  free(log_path);
  cli_project_free(&p);
  return exit_code;
}
