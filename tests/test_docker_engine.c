/*
 * test_docker_engine: the docker client against the real Docker engine on
 * /var/run/docker.sock (scripts/docker-up.sh) with the images of
 * scripts/images.sh (tanuki/redis:7).
 *
 * When the engine does not answer, every test FAILS if TSVC_REQUIRE_DOCKER=1
 * (CI), else is skipped with the reason.
 *
 * Everything made here is named tsvc-test-<pid>-... and labelled
 * tanuki.test=<pid>; the group teardown removes those containers (v=0, so
 * no volume goes with them), then the named volumes and the network these
 * tests created themselves, and nothing else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "common/util.h"
#include "docker/docker.h"

#define IMAGE "tanuki/redis:7"
#define SOCK "unix:///var/run/docker.sock"

static char g_prefix[64];      /* tsvc-test-<pid>- */
static char g_label[64];       /* tanuki.test=<pid> */
static char g_net[96];         /* tsvc-test-<pid>-net */
static bool g_ok;              /* the engine answers and the image is there */
static char g_why[1024];       /* why not */

/* ---- loop helpers -------------------------------------------------------- */

typedef struct {
  int done;
  int status;
  long http;
  char errmsg[512];
  json_t *json;
  char *data;
  size_t len;
  bool truncated;
  int exit_code;
  int pid;
  bool timed_out;
  uint64_t at; /* uv_hrtime() when the callback ran */
} result_t;

static void on_reply(const tsvc_docker_reply_t *rep, void *data) {
  result_t *r = data;
  r->done++;
  r->at = uv_hrtime();
  r->status = rep->status;
  r->http = rep->http_status;
  tsvc_strlcpy(r->errmsg, rep->errmsg, sizeof r->errmsg);
  json_decref(r->json);
  r->json = rep->json ? json_incref(rep->json) : NULL;
  free(r->data);
  r->data = rep->data ? tsvc_strndup(rep->data, rep->len) : NULL;
  r->len = rep->len;
  r->truncated = rep->truncated;
  r->exit_code = rep->exit_code;
  r->pid = rep->pid;
  r->timed_out = rep->timed_out;
}

static void result_clear(result_t *r) {
  json_decref(r->json);
  free(r->data);
  memset(r, 0, sizeof *r);
}


typedef struct {
  uv_loop_t loop;
  tsvc_docker_t *d;
  result_t r;
} fx_t;

/* Run one operation (expr uses on_reply, &fx->r) to its end. */
#define RUN(fx, expr)                                                         \
  do {                                                                        \
    result_clear(&(fx)->r);                                                   \
    assert_int_equal((expr), 0);                                              \
    tu_run_until(&(fx)->loop, &(fx)->r.done, 60000);                              \
    assert_int_equal((fx)->r.done, 1);                                        \
  } while (0)

#define RUN_OK(fx, expr)                                                      \
  do {                                                                        \
    RUN(fx, expr);                                                            \
    if ((fx)->r.status) fail_msg("%s: %s", #expr, (fx)->r.errmsg);            \
  } while (0)

static void need_docker(void) {
  if (g_ok) return;
  const char *req = getenv("TSVC_REQUIRE_DOCKER");
  if (req && strcmp(req, "1") == 0) fail_msg("TSVC_REQUIRE_DOCKER=1 but %s", g_why);
  print_message("(run scripts/docker-up.sh and scripts/images.sh)\n");
  tu_skip(g_why);
}

static int fx_setup(void **state) {
  fx_t *fx = calloc(1, sizeof *fx);
  char err[256];
  if (!fx || uv_loop_init(&fx->loop)) return -1;
  if (tsvc_docker_new(&fx->loop, SOCK, &fx->d, err, sizeof err)) return -1;
  *state = fx;
  return 0;
}

static int fx_teardown(void **state) {
  fx_t *fx = *state;
  result_clear(&fx->r);
  tsvc_docker_free(fx->d);
  int alive = uv_run(&fx->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&fx->loop);
  free(fx);
  /* Everything the client had on the loop is gone. */
  return alive == 0 && rc == 0 ? 0 : -1;
}

/* ---- helpers on the engine ------------------------------------------------------- */

static char *name_of(const char *suffix) {
  return tsvc_asprintf("%s%s", g_prefix, suffix);
}

static void ensure_net(fx_t *fx) {
  json_t *labels = json_pack("{s:s}", "tanuki.test", g_label + strlen("tanuki.test="));
  RUN_OK(fx, tsvc_docker_network_ensure(fx->d, g_net, labels, on_reply, &fx->r, NULL));
  json_decref(labels);
}

/* Create (not start) a redis container named <prefix><suffix> on the test
 * network, its /data on the named volume <prefix><suffix>-data. Returns its
 * id; caller frees. */
static char *make_redis(fx_t *fx, const char *suffix, int host_port) {
  char *name = name_of(suffix);
  char *vol = tsvc_asprintf("%s%s-data:/data", g_prefix, suffix);
  char svc[96];
  snprintf(svc, sizeof svc, "tanuki.service=%s", suffix);
  const char *labels[] = {g_label, svc, NULL};
  const char *volumes[] = {vol, NULL};
  const char *env[] = {"TSVC_TEST=1", NULL};
  const char *aliases[] = {suffix, NULL};
  tsvc_docker_container_spec_t spec = {.name = name,
                                       .image = IMAGE,
                                       .env = env,
                                       .volumes = volumes,
                                       .labels = labels,
                                       .network = g_net,
                                       .aliases = aliases,
                                       .port = host_port ? 6379 : 0,
                                       .host_port = host_port};
  ensure_net(fx);
  RUN_OK(fx, tsvc_docker_container_create(fx->d, &spec, on_reply, &fx->r, NULL));
  const char *id = json_string_value(json_object_get(fx->r.json, "Id"));
  assert_non_null(id);
  char *out = tsvc_strdup(id);
  free(name);
  free(vol);
  return out;
}

static char *start_redis(fx_t *fx, const char *suffix) {
  char *id = make_redis(fx, suffix, 0);
  RUN_OK(fx, tsvc_docker_container_start(fx->d, id, on_reply, &fx->r, NULL));
  return id;
}

static tsvc_docker_container_info_t inspect(fx_t *fx, const char *id) {
  tsvc_docker_container_info_t info;
  RUN_OK(fx, tsvc_docker_container_inspect(fx->d, id, on_reply, &fx->r, NULL));
  assert_int_equal(tsvc_docker_container_info(fx->r.json, g_net, &info), 0);
  return info;
}

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
  close(s);
  return ntohs(a.sin_port);
}

/* PING a redis at 127.0.0.1:port (blocking; a test helper). */
static bool redis_pong(int port) {
  for (int i = 0; i < 50; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 2};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[64] = "";
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 && send(s, "PING\r\n", 6, 0) == 6) {
      ssize_t n = recv(s, buf, sizeof buf - 1, 0);
      if (n > 0) buf[n] = '\0';
    }
    close(s);
    if (strncmp(buf, "+PONG", 5) == 0) return true;
    usleep(100 * 1000);
  }
  return false;
}

/* ---- tests ----------------------------------------------------------------------- */

static void ping_negotiates(void **state) {
  need_docker();
  fx_t *fx = *state;
  RUN_OK(fx, tsvc_docker_ping(fx->d, on_reply, &fx->r, NULL));
  char daemon[16], ours[16];
  assert_non_null(json_string_value(json_object_get(fx->r.json, "ApiVersion")));
  assert_non_null(json_string_value(json_object_get(fx->r.json, "Negotiated")));
  tsvc_strlcpy(daemon, json_string_value(json_object_get(fx->r.json, "ApiVersion")), sizeof daemon);
  tsvc_strlcpy(ours, json_string_value(json_object_get(fx->r.json, "Negotiated")), sizeof ours);
  assert_string_equal(tsvc_docker_api_version(fx->d), ours);
  /* Ours is the daemon's, unless the daemon is newer than we know. */
  if (strcmp(daemon, ours) != 0) assert_string_equal(ours, TSVC_DOCKER_API_MAX);
  /* A versioned call works with it: GET /v1.xx/version. */
  RUN_OK(fx, tsvc_docker_request(fx->d, "GET", "/version", NULL, on_reply, &fx->r, NULL));
  assert_string_equal(json_string_value(json_object_get(fx->r.json, "ApiVersion")), daemon);
}

static void network_ensure_inspect(void **state) {
  need_docker();
  fx_t *fx = *state;
  char *name = name_of("net2");
  RUN(fx, tsvc_docker_network_inspect(fx->d, name, on_reply, &fx->r, NULL));
  assert_int_equal(fx->r.status, TSVC_ENOENT);
  assert_int_equal(fx->r.http, 404);
  RUN_OK(fx, tsvc_docker_network_ensure(fx->d, name, NULL, on_reply, &fx->r, NULL));
  char *id = tsvc_strdup(json_string_value(json_object_get(fx->r.json, "Id")));
  assert_non_null(id);
  assert_string_equal(json_string_value(json_object_get(fx->r.json, "Name")), name);
  /* Again: found, not created twice. */
  RUN_OK(fx, tsvc_docker_network_ensure(fx->d, name, NULL, on_reply, &fx->r, NULL));
  assert_string_equal(json_string_value(json_object_get(fx->r.json, "Id")), id);
  RUN_OK(fx, tsvc_docker_network_inspect(fx->d, name, on_reply, &fx->r, NULL));
  assert_string_equal(json_string_value(json_object_get(fx->r.json, "Driver")), "bridge");
  RUN_OK(fx, tsvc_docker_network_remove(fx->d, name, on_reply, &fx->r, NULL));
  RUN(fx, tsvc_docker_network_inspect(fx->d, id, on_reply, &fx->r, NULL));
  assert_int_equal(fx->r.status, TSVC_ENOENT);
  free(id);
  free(name);
}

static void container_lifecycle(void **state) {
  need_docker();
  fx_t *fx = *state;
  int port = free_port();
  char *id = make_redis(fx, "life", port);
  tsvc_docker_container_info_t info = inspect(fx, id);
  assert_false(info.running);
  assert_string_equal(info.status, "created");
  json_t *pb = json_object_get(json_object_get(json_object_get(fx->r.json, "HostConfig"),
                                               "PortBindings"), "6379/tcp");
  assert_string_equal(json_string_value(json_object_get(json_array_get(pb, 0), "HostIp")),
                      "127.0.0.1");
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(
                          fx->r.json, "HostConfig"), "RestartPolicy"), "Name")),
                      "no");

  RUN_OK(fx, tsvc_docker_container_start(fx->d, id, on_reply, &fx->r, NULL));
  RUN_OK(fx, tsvc_docker_container_start(fx->d, id, on_reply, &fx->r, NULL)); /* 304: fine */
  info = inspect(fx, id);
  assert_true(info.running);
  assert_true(info.pid > 0);
  assert_string_equal(info.status, "running");
  assert_true(strlen(info.ip) >= 7);
  assert_true(redis_pong(port));

  /* Listed by its label. */
  char svc[64];
  snprintf(svc, sizeof svc, "tanuki.service=life");
  RUN_OK(fx, tsvc_docker_container_list(fx->d, svc, true, on_reply, &fx->r, NULL));
  bool found = false;
  for (size_t i = 0; i < json_array_size(fx->r.json); i++)
    if (strcmp(json_string_value(json_object_get(json_array_get(fx->r.json, i), "Id")), id) == 0)
      found = true;
  assert_true(found);

  /* Logs, demultiplexed. */
  for (int i = 0; i < 50; i++) {
    RUN_OK(fx, tsvc_docker_container_logs(fx->d, id, 20, on_reply, &fx->r, NULL));
    if (strstr(fx->r.data, "Ready to accept connections")) break;
    usleep(100 * 1000);
  }
  assert_non_null(strstr(fx->r.data, "Ready to accept connections"));
  assert_null(memchr(fx->r.data, '\0', fx->r.len)); /* no 8-byte headers left */
  assert_false(fx->r.truncated);

  /* Stop, restart. */
  int pid = info.pid;
  RUN_OK(fx, tsvc_docker_container_stop(fx->d, id, 5, on_reply, &fx->r, NULL));
  info = inspect(fx, id);
  assert_false(info.running);
  assert_string_equal(info.status, "exited");
  assert_int_equal(info.exit_code, 0);
  RUN_OK(fx, tsvc_docker_container_stop(fx->d, id, 5, on_reply, &fx->r, NULL)); /* 304 */
  RUN_OK(fx, tsvc_docker_container_restart(fx->d, id, 5, on_reply, &fx->r, NULL));
  info = inspect(fx, id);
  assert_true(info.running);
  assert_true(info.pid > 0 && info.pid != pid);
  RUN_OK(fx, tsvc_docker_container_restart(fx->d, id, 5, on_reply, &fx->r, NULL));
  assert_true(redis_pong(port));

  RUN_OK(fx, tsvc_docker_container_remove(fx->d, id, true, on_reply, &fx->r, NULL));
  RUN(fx, tsvc_docker_container_inspect(fx->d, id, on_reply, &fx->r, NULL));
  assert_int_equal(fx->r.status, TSVC_ENOENT);
  assert_non_null(strstr(fx->r.errmsg, "No such container"));
  /* Its named volume stays: removing a container never removes volumes. */
  char *vol = tsvc_asprintf("/volumes/%slife-data", g_prefix);
  RUN_OK(fx, tsvc_docker_request(fx->d, "GET", vol, NULL, on_reply, &fx->r, NULL));
  free(vol);
  free(id);
}

static void no_such_image(void **state) {
  need_docker();
  fx_t *fx = *state;
  char *name = name_of("noimage");
  const char *labels[] = {g_label, NULL};
  tsvc_docker_container_spec_t spec = {
      .name = name, .image = "tsvc-test-no-such-image:16", .labels = labels};
  RUN(fx, tsvc_docker_container_create(fx->d, &spec, on_reply, &fx->r, NULL));
  assert_int_equal(fx->r.status, TSVC_ENOENT);
  assert_int_equal(fx->r.http, 404);
  assert_string_equal(fx->r.errmsg, "No such image: tsvc-test-no-such-image:16");
  free(name);
}

static void name_conflict(void **state) {
  need_docker();
  fx_t *fx = *state;
  char *id = make_redis(fx, "dup", 0);
  char *name = name_of("dup");
  const char *labels[] = {g_label, NULL};
  tsvc_docker_container_spec_t spec = {.name = name, .image = IMAGE, .labels = labels};
  RUN(fx, tsvc_docker_container_create(fx->d, &spec, on_reply, &fx->r, NULL));
  assert_int_equal(fx->r.status, TSVC_EEXIST);
  assert_int_equal(fx->r.http, 409);
  assert_non_null(strstr(fx->r.errmsg, "is already in use by container"));
  assert_non_null(strstr(fx->r.errmsg, name));
  /* A kill of a container that is not running: 409 too, but busy. */
  RUN(fx, tsvc_docker_container_kill(fx->d, id, NULL, on_reply, &fx->r, NULL));
  assert_int_equal(fx->r.status, TSVC_EBUSY);
  assert_non_null(strstr(fx->r.errmsg, "is not running"));
  RUN_OK(fx, tsvc_docker_container_remove(fx->d, id, true, on_reply, &fx->r, NULL));
  free(name);
  free(id);
}

static void exec_output_and_exit_codes(void **state) {
  need_docker();
  fx_t *fx = *state;
  char *id = start_redis(fx, "exec");
  const char *ping[] = {"redis-cli", "ping", NULL};
  /* Right after the start redis may still be loading: retry a little. */
  for (int i = 0; i < 50; i++) {
    RUN_OK(fx, tsvc_docker_exec_run(fx->d, id, ping, 5000, on_reply, &fx->r, NULL));
    if (fx->r.data && strcmp(fx->r.data, "PONG\n") == 0) break;
    usleep(100 * 1000);
  }
  assert_string_equal(fx->r.data, "PONG\n");
  assert_int_equal(fx->r.exit_code, 0);
  assert_false(fx->r.timed_out);
  assert_true(fx->r.pid > 0);

  const char *exit3[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
  RUN_OK(fx, tsvc_docker_exec_run(fx->d, id, exit3, 5000, on_reply, &fx->r, NULL));
  assert_int_equal(fx->r.exit_code, 3);
  assert_non_null(strstr(fx->r.data, "out\n"));
  assert_non_null(strstr(fx->r.data, "err\n"));

  /* More than 4 KiB of output: the last 4 KiB are kept. */
  const char *seq[] = {"seq", "1", "5000", NULL};
  RUN_OK(fx, tsvc_docker_exec_run(fx->d, id, seq, 5000, on_reply, &fx->r, NULL));
  assert_int_equal(fx->r.exit_code, 0);
  assert_true(fx->r.truncated);
  assert_int_equal(fx->r.len, TSVC_DOCKER_MAX_OUTPUT);
  assert_string_equal(fx->r.data + fx->r.len - 10, "4999\n5000\n");

  /* The steps one by one. */
  RUN_OK(fx, tsvc_docker_exec_create(fx->d, id, ping, on_reply, &fx->r, NULL));
  char *eid = tsvc_strdup(json_string_value(json_object_get(fx->r.json, "Id")));
  RUN_OK(fx, tsvc_docker_exec_start(fx->d, eid, on_reply, &fx->r, NULL));
  assert_string_equal(fx->r.data, "PONG\n");
  RUN_OK(fx, tsvc_docker_exec_inspect(fx->d, eid, on_reply, &fx->r, NULL));
  assert_int_equal(json_integer_value(json_object_get(fx->r.json, "ExitCode")), 0);
  free(eid);

  /* A command that does not exist, and a container that does not. */
  const char *nope[] = {"/no/such/command", NULL};
  RUN(fx, tsvc_docker_exec_run(fx->d, id, nope, 5000, on_reply, &fx->r, NULL));
  assert_true(fx->r.status != 0 || fx->r.exit_code == 126 || fx->r.exit_code == 127);
  RUN(fx, tsvc_docker_exec_run(fx->d, "tsvc-test-no-such-container", ping, 5000, on_reply,
                               &fx->r, NULL));
  assert_int_equal(fx->r.status, TSVC_ENOENT);
  assert_non_null(strstr(fx->r.errmsg, "No such container: tsvc-test-no-such-container"));
  RUN_OK(fx, tsvc_docker_container_remove(fx->d, id, true, on_reply, &fx->r, NULL));
  free(id);
}

/* The engine's own record of a container's execs: `docker events` from a
 * second before now (--since: what came while it subscribed is replayed),
 * lines "<timeNano> <action> <execID> <exitCode>" into a file. */
typedef struct {
  pid_t pid;
  char path[64];
} exec_events_t;

static void exec_events_start(exec_events_t *e, const char *container) {
  snprintf(e->path, sizeof e->path, "/tmp/tsvc-test-%d-exec-events", (int)getpid());
  char since[32], filter[128];
  snprintf(since, sizeof since, "%lld", (long long)time(NULL) - 1);
  snprintf(filter, sizeof filter, "container=%s", container);
  e->pid = fork();
  assert_true(e->pid >= 0);
  if (e->pid == 0) {
    FILE *out = freopen(e->path, "w", stdout);
    if (!out) _exit(127);
    /* timeout: not left behind by a failed assertion before the read. */
    execlp("timeout", "timeout", "120", "docker", "events", "--since", since, "--filter", filter, "--filter",
           "event=exec_start", "--filter", "event=exec_die", "--format",
           "{{.TimeNano}} {{.Action}} {{index .Actor.Attributes \"execID\"}} "
           "{{index .Actor.Attributes \"exitCode\"}}",
           (char *)NULL);
    _exit(127);
  }
}

/* The engine's times (ns, its clock) of exec_id's start and end and the
 * exit code it saw: waits up to 10 s for the end to be written, then stops
 * `docker events`. 0 when both were found. */
static int exec_events_read(exec_events_t *e, const char *exec_id, long long *start_ns,
                            long long *die_ns, int *exit_code) {
  *start_ns = *die_ns = 0;
  *exit_code = -1;
  for (int i = 0; i < 200 && !*die_ns; i++) {
    FILE *f = fopen(e->path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      char *at = strstr(line, exec_id);
      long long ns = strtoll(line, NULL, 10);
      if (!at || ns <= 0) continue;
      if (strstr(line, " exec_start: ")) *start_ns = ns;
      if (strstr(line, " exec_die ")) {
        *die_ns = ns;
        *exit_code = (int)strtol(at + strlen(exec_id), NULL, 10);
      }
    }
    if (f) fclose(f);
    if (!*die_ns) usleep(50 * 1000);
  }
  kill(e->pid, SIGTERM);
  waitpid(e->pid, NULL, 0);
  unlink(e->path);
  return *start_ns && *die_ns ? 0 : -1;
}

static void exec_timeout_kills_from_host(void **state) {
  need_docker();
  fx_t *fx = *state;
  char *id = start_redis(fx, "sleep");
  const char *sleep60[] = {"sleep", "60", NULL};
  exec_events_t ev;
  exec_events_start(&ev, id);
  uint64_t t0 = uv_hrtime();
  RUN_OK(fx, tsvc_docker_exec_run(fx->d, id, sleep60, 300, on_reply, &fx->r, NULL));
  uint64_t ms = (fx->r.at - t0) / 1000000;
  assert_true(fx->r.timed_out);
  assert_int_equal(fx->r.exit_code, 137); /* SIGKILL */
  assert_true(fx->r.pid > 0);
  /* Not before its timeout. */
  assert_true(ms >= 300);
  /* Killed promptly, counted from what the daemon did, by its own clock:
     from its exec_start (it begins to start the exec, after the client has
     sent the start and set off the 300 ms timer, so the timeout falls at
     most 300 ms after it) to its exec_die. The client looks until the exec
     runs, for as long as any request may take (TSVC_DOCKER_TIMEOUT_MS), and
     gives a killed one 5 s to end; the create before it and the events'
     delivery are not counted (a loaded daemon was seen to take 30 s over an
     exec, and the bound from the test's own start then failed). */
  long long start_ns, die_ns;
  int die_code;
  const char *exec_id = json_string_value(json_object_get(fx->r.json, "ID"));
  assert_non_null(exec_id);
  if (exec_events_read(&ev, exec_id, &start_ns, &die_ns, &die_code))
    fail_msg("docker events showed no exec_start and exec_die of exec %s", exec_id);
  long long ran_ms = (die_ns - start_ns) / 1000000;
  print_message("exec sleep 60 with a 300 ms timeout ended after %llu ms; the daemon ran it "
                "for %lld ms (exec_start to exec_die), exit %d\n",
                (unsigned long long)ms, ran_ms, die_code);
  assert_int_equal(die_code, 137);
  assert_true(ran_ms >= 0 && ran_ms < 300 + TSVC_DOCKER_TIMEOUT_MS + 5000);
  /* Gone from the host, not left running as Docker's own healthcheck does. */
  assert_int_equal(kill(fx->r.pid, 0), -1);
  assert_int_equal(errno, ESRCH);

  /* The kill on its own: an exec that is not running any more is fine. */
  RUN_OK(fx, tsvc_docker_exec_create(fx->d, id, sleep60, on_reply, &fx->r, NULL));
  char *eid = tsvc_strdup(json_string_value(json_object_get(fx->r.json, "Id")));
  RUN_OK(fx, tsvc_docker_exec_kill(fx->d, eid, on_reply, &fx->r, NULL));
  assert_int_equal(fx->r.pid, 0); /* created, never started: nothing to kill */
  free(eid);
  RUN_OK(fx, tsvc_docker_container_remove(fx->d, id, true, on_reply, &fx->r, NULL));
  free(id);
}

typedef struct {
  char id[65];
  int starts, dies, up, down;
  uint64_t die_at;
  char last_action[32];
} evlog_t;

static void ev_cb(json_t *e, void *data) {
  evlog_t *l = data;
  const char *action = json_string_value(json_object_get(e, "Action"));
  const char *id = json_string_value(json_object_get(json_object_get(e, "Actor"), "ID"));
  if (!action || !id || strcmp(id, l->id) != 0) return;
  tsvc_strlcpy(l->last_action, action, sizeof l->last_action);
  if (strcmp(action, "start") == 0) l->starts++;
  if (strcmp(action, "die") == 0 && !l->dies++) l->die_at = uv_hrtime();
}

static void state_cb(bool reachable, const char *msg, void *data) {
  (void)msg;
  evlog_t *l = data;
  if (reachable) l->up++;
  else l->down++;
}

static void events_see_die_quickly(void **state) {
  need_docker();
  fx_t *fx = *state;
  evlog_t l = {0};
  tsvc_docker_events_t *ev = NULL;
  assert_int_equal(tsvc_docker_events_start(fx->d, g_label, ev_cb, state_cb, &l, &ev), 0);
  tu_run_until(&fx->loop, &l.up, 10000);
  assert_int_equal(l.up, 1);
  char *id = make_redis(fx, "events", 0);
  tsvc_strlcpy(l.id, id, sizeof l.id);
  RUN_OK(fx, tsvc_docker_container_start(fx->d, id, on_reply, &fx->r, NULL));
  tu_run_until(&fx->loop, &l.starts, 5000);
  assert_int_equal(l.starts, 1);

  uint64_t kill_sent = uv_hrtime();
  RUN_OK(fx, tsvc_docker_container_kill(fx->d, id, "SIGKILL", on_reply, &fx->r, NULL));
  uint64_t killed_at = fx->r.at;
  tu_run_until(&fx->loop, &l.dies, 5000);
  assert_int_equal(l.dies, 1);
  double late_ms = ((double)l.die_at - (double)killed_at) / 1e6;
  /* The daemon answers a SIGKILL once the container is down, so the die
   * event usually comes before the answer. */
  print_message("die event %.1f ms after the kill was sent, %.1f ms after it returned\n",
                ((double)l.die_at - (double)kill_sent) / 1e6, late_ms);
  assert_true(late_ms <= 100.0);
  tsvc_docker_container_info_t info = inspect(fx, id);
  assert_false(info.running);
  assert_int_equal(info.exit_code, 137);

  /* destroy comes through too. */
  RUN_OK(fx, tsvc_docker_container_remove(fx->d, id, true, on_reply, &fx->r, NULL));
  for (int i = 0; i < 100 && strcmp(l.last_action, "destroy") != 0; i++) {
    int never = 0;
    tu_run_until(&fx->loop, &never, 20);
  }
  assert_string_equal(l.last_action, "destroy");
  assert_int_equal(l.down, 0);
  tsvc_docker_events_stop(ev);
  free(id);
}

static void unreachable_socket(void **state) {
  (void)state; /* runs with or without an engine */
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  char host[128], err[256];
  snprintf(host, sizeof host, "unix:///run/tsvc-test-%d-missing.sock", (int)getpid());
  tsvc_docker_t *d = NULL;
  assert_int_equal(tsvc_docker_new(&loop, host, &d, err, sizeof err), 0);
  result_t r = {0};
  assert_int_equal(tsvc_docker_ping(d, on_reply, &r, NULL), 0);
  tu_run_until(&loop, &r.done, 5000);
  assert_int_equal(r.status, TSVC_EUNREACH);
  assert_non_null(strstr(r.errmsg, "cannot connect to the Docker daemon at unix:///run/tsvc-test-"));
  assert_non_null(strstr(r.errmsg, "is dockerd running?"));
  result_clear(&r);
  evlog_t l = {0};
  tsvc_docker_events_t *ev = NULL;
  assert_int_equal(tsvc_docker_events_start(d, NULL, ev_cb, state_cb, &l, &ev), 0);
  tu_run_until(&loop, &l.down, 5000);
  assert_int_equal(l.down, 1);
  assert_int_equal(l.up, 0);
  tsvc_docker_free(d);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- group setup and cleanup ------------------------------------------------------ */

static int group_setup(void **state) {
  (void)state;
  snprintf(g_prefix, sizeof g_prefix, "tsvc-test-%d-", (int)getpid());
  snprintf(g_label, sizeof g_label, "tanuki.test=%d", (int)getpid());
  snprintf(g_net, sizeof g_net, "%snet", g_prefix);
  fx_t *fx = NULL;
  if (fx_setup((void **)&fx)) return -1;
  result_t *r = &fx->r;
  if (tsvc_docker_ping(fx->d, on_reply, r, NULL) == 0) tu_run_until(&fx->loop, &r->done, 10000);
  if (!r->done || r->status) {
    snprintf(g_why, sizeof g_why, "no Docker engine answers on %s: %s", SOCK,
             r->done ? r->errmsg : "no answer within 10 s");
  } else {
    result_clear(r);
    if (tsvc_docker_request(fx->d, "GET", "/images/tanuki%2Fredis:7/json", NULL, on_reply, r,
                            NULL) == 0)
      tu_run_until(&fx->loop, &r->done, 10000);
    if (r->done && !r->status) g_ok = true;
    else snprintf(g_why, sizeof g_why, "image %s: %s", IMAGE, r->errmsg);
  }
  fx_teardown((void **)&fx);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (!g_ok) return 0;
  fx_t *fx = NULL;
  if (fx_setup((void **)&fx)) return -1;
  result_t *r = &fx->r;
  /* Our containers: by our label. */
  if (tsvc_docker_container_list(fx->d, g_label, true, on_reply, r, NULL) == 0)
    tu_run_until(&fx->loop, &r->done, 30000);
  json_t *list = r->json ? json_incref(r->json) : NULL;
  for (size_t i = 0; i < json_array_size(list); i++) {
    const char *id = json_string_value(json_object_get(json_array_get(list, i), "Id"));
    result_clear(r);
    if (tsvc_docker_container_remove(fx->d, id, true, on_reply, r, NULL) == 0)
      tu_run_until(&fx->loop, &r->done, 30000);
  }
  json_decref(list);
  /* Our volumes: the named ones our containers used, and nothing else. */
  const char *suffixes[] = {"life", "dup", "exec", "sleep", "events"};
  for (size_t i = 0; i < TSVC_ARRAY_LEN(suffixes); i++) {
    char path[160];
    snprintf(path, sizeof path, "/volumes/%s%s-data", g_prefix, suffixes[i]);
    result_clear(r);
    if (tsvc_docker_request(fx->d, "DELETE", path, NULL, on_reply, r, NULL) == 0)
      tu_run_until(&fx->loop, &r->done, 30000);
  }
  result_clear(r);
  char *net2 = name_of("net2");
  const char *nets[] = {g_net, net2};
  for (size_t i = 0; i < 2; i++) {
    result_clear(r);
    if (tsvc_docker_network_remove(fx->d, nets[i], on_reply, r, NULL) == 0)
      tu_run_until(&fx->loop, &r->done, 30000);
  }
  free(net2);
  return fx_teardown((void **)&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(ping_negotiates, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(network_ensure_inspect, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(container_lifecycle, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(no_such_image, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(name_conflict, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(exec_output_and_exit_codes, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(exec_timeout_kills_from_host, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(events_see_die_quickly, fx_setup, fx_teardown),
      cmocka_unit_test(unreachable_socket),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
