/* process_postgres.c: the postgres recipe of the process runtime (process_int.h). */
#include <errno.h>
#include <glob.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/process_int.h"

/* The postgres bin directory: of version want ("15") when installed, else
   the newest under /usr/lib/postgresql, else where PATH has initdb. */
static bool find_pg_bindir(const char *want, char *out, size_t len) {
  glob_t g;
  long best = -1;
  out[0] = '\0';
  if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) {
      const char *v = g.gl_pathv[i] + strlen("/usr/lib/postgresql/");
      char *end;
      long n = strtol(v, &end, 10);
      if (end == v || *end != '/') continue;
      char dir[PATH_MAX];
      snprintf(dir, sizeof dir, "%.*s", (int)(end - g.gl_pathv[i]) + 4, g.gl_pathv[i]);
      char initdb[PATH_MAX + 8];
      snprintf(initdb, sizeof initdb, "%s/initdb", dir);
      if (access(initdb, X_OK) != 0) continue;
      bool exact = want && strlen(want) == (size_t)(end - v) && strncmp(v, want, (size_t)(end - v)) == 0;
      if (exact) n = LONG_MAX;
      if (n > best) {
        best = n;
        tsvc_strlcpy(out, dir, len);
      }
    }
    globfree(&g);
  }
  if (out[0]) return true;
  char path[PATH_MAX];
  if (!tsvc_find_exec("initdb", path, sizeof path)) return false;
  char *slash = strrchr(path, '/');
  *slash = '\0';
  tsvc_strlcpy(out, path, len);
  return true;
}

void tsvc__pg_drop_pwfile(entry_t *e) {
  if (e->pg.pwfile[0]) unlink(e->pg.pwfile);
  e->pg.pwfile[0] = '\0';
}

const char *tsvc__pg_user(const tsvc_service_conf_t *svc) {
  const char *u = tsvc__proc_env(svc, "POSTGRES_USER");
  return u && *u ? u : "postgres";
}

const char *tsvc__pg_db(const tsvc_service_conf_t *svc) {
  const char *d = tsvc__proc_env(svc, "POSTGRES_DB");
  return d && *d ? d : tsvc__pg_user(svc);
}

int tsvc__pg_server_argv(tsvc__argv_t *a, const pg_state_t *pg, const char *run_dir, int port) {
  tsvc__argv_init(a);
  tsvc__argv_addf(a, "%s/postgres", pg->bindir);
  tsvc__argv_add(a, "-D");
  tsvc__argv_add(a, pg->datadir);
  tsvc__argv_add(a, "-p");
  tsvc__argv_addf(a, "%d", port);
  tsvc__argv_add(a, "-c");
  tsvc__argv_add(a, "listen_addresses=127.0.0.1");
  tsvc__argv_add(a, "-c");
  tsvc__argv_addf(a, "unix_socket_directories=%s", run_dir);
  return a->full ? TSVC_EINVAL : 0;
}

int tsvc__pg_initdb_argv(tsvc__argv_t *a, const pg_state_t *pg, const char *user) {
  tsvc__argv_init(a);
  tsvc__argv_addf(a, "%s/initdb", pg->bindir);
  tsvc__argv_add(a, "-D");
  tsvc__argv_add(a, pg->initdir);
  tsvc__argv_addf(a, "--username=%s", user);
  /* Both kinds of connection need the password (trust when none is set).
     The socket is also out of other users' reach (pg_run_dir), which covers
     data directories made when the socket trusted. */
  const char *auth = pg->pwfile[0] ? "scram-sha-256" : "trust";
  tsvc__argv_addf(a, "--auth-local=%s", auth);
  tsvc__argv_addf(a, "--auth-host=%s", auth);
  tsvc__argv_add(a, "--encoding=UTF8");
  tsvc__argv_add(a, "--locale=C");
  if (pg->pwfile[0]) tsvc__argv_addf(a, "--pwfile=%s", pg->pwfile);
  return a->full ? TSVC_EINVAL : 0;
}

int tsvc__pg_single_argv(tsvc__argv_t *a, const pg_state_t *pg) {
  tsvc__argv_init(a);
  tsvc__argv_addf(a, "%s/postgres", pg->bindir);
  tsvc__argv_add(a, "--single");
  tsvc__argv_add(a, "-D");
  tsvc__argv_add(a, pg->initdir);
  tsvc__argv_add(a, "-c");
  tsvc__argv_add(a, "exit_on_error=on");
  tsvc__argv_add(a, "postgres");
  return a->full ? TSVC_EINVAL : 0;
}

int tsvc__pg_createdb_sql(tsvc_buf_t *b, const char *db) {
  tsvc_buf_init(b, 4096);
  int rc = tsvc_buf_add(b, "CREATE DATABASE \"", 17);
  for (const char *p = db; *p && !rc; p++) {
    if (*p == '"') rc = tsvc_buf_add(b, "\"\"", 2); /* a quoted identifier */
    else rc = tsvc_buf_add(b, p, 1);
  }
  if (!rc) rc = tsvc_buf_add(b, "\";\n", 3);
  if (rc) tsvc_buf_free(b);
  return rc;
}

static void pg_spawn_server(entry_t *e) {
  tsvc__argv_t a;
  if (tsvc__pg_server_argv(&a, &e->pg, e->rt->lay.run_dir,
                           tsvc__proc_port(e->svc, KIND_POSTGRES)) != 0) {
    tsvc__proc_fail(e, "the postgres command line for %s is too long", e->name);
    return;
  }
  spawn_t sp = {.argv = a.v, .cwd = e->pg.parent, .as_pg = e->pg.as_pg, .stdin_fd = -1};
  tsvc__proc_spawn_server(e, &sp);
}

/* initdb and the database are done: move the data into place and start. */
static void pg_init_done(entry_t *e) {
  if (rename(e->pg.initdir, e->pg.datadir) != 0) {
    tsvc__proc_fail(e, "cannot rename %s to %s: %s", e->pg.initdir, e->pg.datadir, strerror(errno));
    return;
  }
  tsvc__plog_note(&e->log, "initialised %s", e->pg.datadir);
  pg_spawn_server(e);
}

/* postgres --single ended. */
static void createdb_done(entry_t *e, int code, const char *line) {
  if (code != 0)
    tsvc__proc_fail(e, "creating database %s failed (exit code %d): %s", tsvc__pg_db(e->svc), code,
                    line);
  else pg_init_done(e);
}

static void pg_createdb(entry_t *e) {
  const char *db = tsvc__pg_db(e->svc);
  if (strcmp(db, "postgres") == 0) {
    pg_init_done(e);
    return;
  }
  /* CREATE DATABASE in single-user mode, fed on stdin; exit_on_error makes
     a failure an exit code. The SQL fits in a pipe's buffer. */
  tsvc_buf_t sql;
  tsvc__argv_t a;
  if (tsvc__pg_createdb_sql(&sql, db) != 0 || tsvc__pg_single_argv(&a, &e->pg) != 0) {
    tsvc_buf_free(&sql);
    tsvc__proc_fail(e, "the database name %.64s... or the data directory is too long", db);
    return;
  }
  uv_file fds[2];
  if (uv_pipe(fds, 0, 0) != 0) {
    tsvc_buf_free(&sql);
    tsvc__proc_fail(e, "cannot create a pipe for postgres --single");
    return;
  }
  bool ok = write(fds[1], sql.data, sql.len) == (ssize_t)sql.len;
  close(fds[1]);
  tsvc_buf_free(&sql);
  if (!ok) {
    close(fds[0]);
    tsvc__proc_fail(e, "cannot write to postgres --single");
    return;
  }
  spawn_t sp = {.argv = a.v, .cwd = e->pg.parent, .as_pg = e->pg.as_pg, .stdin_fd = fds[0]};
  tsvc__plog_note(&e->log, "creating database %s", db);
  tsvc__proc_spawn_helper(e, &sp, createdb_done);
  close(fds[0]);
}

/* initdb ended. */
static void initdb_done(entry_t *e, int code, const char *line) {
  tsvc__pg_drop_pwfile(e);
  if (code != 0) tsvc__proc_fail(e, "initdb failed (exit code %d): %s", code, line);
  else pg_createdb(e);
}

/* The socket directory: mode 0700, owned by the user postgres runs as, so
   that no other local user reaches the unix socket (made afresh at each
   start: /run is emptied at boot). 0, or -1 after tsvc__proc_fail. */
static int pg_run_dir(entry_t *e) {
  const char *dir = e->rt->lay.run_dir;
  if (tsvc__proc_mkdir_private(dir, 0700) != 0) {
    tsvc__proc_fail(e, "cannot create %s: %s", dir, strerror(errno));
    return -1;
  }
  if ((e->pg.as_pg && chown(dir, e->pg.uid, e->pg.gid) != 0) || chmod(dir, 0700) != 0) {
    tsvc__proc_fail(e, "cannot make %s private to the postgres user: %s", dir, strerror(errno));
    return -1;
  }
  if (strlen(dir) + sizeof "/.s.PGSQL.65535.lock" > sizeof(((struct sockaddr_un *)0)->sun_path)) {
    tsvc__proc_fail(e, "the socket directory %s is too long for a unix socket path", dir);
    return -1;
  }
  return 0;
}

void tsvc__pg_start(entry_t *e) {
  prt_t *rt = e->rt;
  const tsvc_service_conf_t *svc = e->svc;
  e->pg.as_pg = false;
  if (geteuid() == 0) {
    /* postgres refuses to run as root. */
    struct passwd *pw = getpwnam("postgres");
    if (!pw) {
      tsvc__proc_fail(e, "running as root and there is no `postgres` user to run postgres as");
      return;
    }
    e->pg.as_pg = true;
    e->pg.uid = pw->pw_uid;
    e->pg.gid = pw->pw_gid;
  } else {
    e->pg.uid = getuid();
    e->pg.gid = getgid();
  }
  bool old = false;
  if (tsvc__proc_data_dir(e, e->pg.datadir, sizeof e->pg.datadir, &old) != 0) return;
  if (strlen(e->pg.datadir) + sizeof ".init" > sizeof e->pg.initdir) {
    tsvc__proc_fail(e, "the data directory %s is too long a path", e->pg.datadir);
    return;
  }
  snprintf(e->pg.initdir, sizeof e->pg.initdir, "%s.init", e->pg.datadir);
  tsvc_strlcpy(e->pg.parent, e->pg.datadir, sizeof e->pg.parent);
  *strrchr(e->pg.parent, '/') = '\0';
  if (!e->pg.parent[0]) tsvc_strlcpy(e->pg.parent, "/", sizeof e->pg.parent);

  /* The version of an existing data directory picks the binaries. */
  char version[16] = "", path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/PG_VERSION", e->pg.datadir);
  FILE *f = fopen(path, "re");
  if (f) {
    if (!fgets(version, sizeof version, f)) version[0] = '\0';
    version[strcspn(version, "\r\n")] = '\0';
    fclose(f);
  }
  if (!find_pg_bindir(version[0] ? version : NULL, e->pg.bindir, sizeof e->pg.bindir)) {
    tsvc__proc_fail(e, "no postgres server binaries found (/usr/lib/postgresql/*/bin or initdb "
                    "in PATH)");
    return;
  }
  if (pg_run_dir(e) != 0) return;
  char bad[PATH_MAX];
  if (e->pg.as_pg &&
      !tsvc__proc_can_reach(rt->lay.run_dir, e->pg.uid, e->pg.gid, bad, sizeof bad)) {
    tsvc__proc_fail(e, "the postgres user cannot enter %s (mode lacks x for it), on the way to "
                    "its socket directory %s", bad, rt->lay.run_dir);
    return;
  }
  if (e->pg.as_pg && !tsvc__proc_can_reach(e->pg.parent, e->pg.uid, e->pg.gid, bad, sizeof bad)) {
    if (old)
      tsvc__proc_fail(e, "the postgres user cannot enter %s (mode lacks x for it), on the way "
                      "to the data directory %s made by an older version; move it to %s/%s "
                      "(looked at first) or set services.%s.process.data_dir",
                      bad, e->pg.datadir, rt->lay.data_root, e->name, e->name);
    else
      tsvc__proc_fail(e, "the postgres user cannot enter %s (mode lacks x for it), on the way "
                      "to the data directory %s; set services.%s.process.data_dir elsewhere",
                      bad, e->pg.datadir, e->name);
    return;
  }
  if (version[0]) {
    pg_spawn_server(e);
    return;
  }

  /* First start. */
  int st = tsvc__proc_dir_state(e->pg.datadir);
  if (st == 2) {
    tsvc__proc_fail(e, "%s exists but holds no postgres data (no PG_VERSION)", e->pg.datadir);
    return;
  }
  if (st == 1 && rmdir(e->pg.datadir) != 0) {
    tsvc__proc_fail(e, "cannot remove the empty %s: %s", e->pg.datadir, strerror(errno));
    return;
  }
  if (tsvc__proc_rmtree(e->pg.initdir) != 0 || mkdir(e->pg.initdir, 0700) != 0 ||
      (e->pg.as_pg && chown(e->pg.initdir, e->pg.uid, e->pg.gid) != 0)) {
    tsvc__proc_fail(e, "cannot prepare %s: %s", e->pg.initdir, strerror(errno));
    return;
  }
  const char *pw = tsvc__proc_env(svc, "POSTGRES_PASSWORD");
  bool have_pw = pw && *pw;
  if (have_pw) {
    /* In the private socket directory: nobody else can read it while
       initdb runs, and /run is memory. */
    snprintf(e->pg.pwfile, sizeof e->pg.pwfile, "%.3500s/%.255s.pwfile", rt->lay.run_dir, e->name);
    char *text = tsvc_asprintf("%s\n", pw);
    int rc = text ? tsvc__proc_write_private(e->pg.pwfile, text, e->pg.uid, e->pg.gid,
                                             e->pg.as_pg)
                  : -1;
    free(text);
    if (rc != 0) {
      e->pg.pwfile[0] = '\0';
      tsvc__proc_fail(e, "cannot write the password file: %s", strerror(errno));
      return;
    }
  } else {
    tsvc__plog_note(&e->log, "no POSTGRES_PASSWORD: any local user can connect as %s (trust)",
                    tsvc__pg_user(svc));
  }
  tsvc__argv_t a;
  if (tsvc__pg_initdb_argv(&a, &e->pg, tsvc__pg_user(svc)) != 0) {
    tsvc__proc_fail(e, "the initdb command line for %s is too long (POSTGRES_USER?)", e->name);
    return;
  }
  spawn_t sp = {.argv = a.v, .cwd = e->pg.parent, .as_pg = e->pg.as_pg, .stdin_fd = -1};
  tsvc__plog_note(&e->log, "initdb %s (user %s)", e->pg.initdir, tsvc__pg_user(svc));
  tsvc__proc_spawn_helper(e, &sp, initdb_done);
}
