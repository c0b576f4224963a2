/*
 * test_docker_unit: the docker client without a Docker daemon.
 *  - the stream demultiplexer, the tail and the line splitter, fed canned
 *    bytes in every possible split;
 *  - the client against a fake engine on a unix socket (a thread serving
 *    canned HTTP answers): version negotiation, error mapping with the
 *    daemon's message, the response-size caps, a missing socket, cancel and
 *    free with requests in flight, the event stream's reconnection.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "docker/docker.h"
#include "docker/image.h"
#include "docker/stream.h"

/* ---- stream parsers -------------------------------------------------------- */

typedef struct {
  char out[4096];
  size_t len;
  int streams[8];
  size_t nstreams;
} sink_t;

static int collect(void *ctx, int stream, const char *p, size_t n) {
  sink_t *s = ctx;
  assert_true(s->len + n < sizeof s->out);
  memcpy(s->out + s->len, p, n);
  s->len += n;
  if (s->nstreams == 0 || s->streams[s->nstreams - 1] != stream) {
    if (s->nstreams < 8) s->streams[s->nstreams++] = stream;
  }
  return 0;
}

static size_t frame(char *dst, int stream, const char *payload) {
  size_t n = strlen(payload);
  dst[0] = (char)stream;
  dst[1] = dst[2] = dst[3] = 0;
  dst[4] = (char)((n >> 24) & 0xff);
  dst[5] = (char)((n >> 16) & 0xff);
  dst[6] = (char)((n >> 8) & 0xff);
  dst[7] = (char)(n & 0xff);
  memcpy(dst + 8, payload, n);
  return 8 + n;
}

static void demux_every_split(void **st) {
  (void)st;
  char in[256];
  size_t n = 0;
  n += frame(in + n, 1, "PONG\n");
  n += frame(in + n, 2, "warning: x\n");
  n += frame(in + n, 1, "");
  n += frame(in + n, 1, "done\n");
  for (size_t cut = 0; cut <= n; cut++) {
    tsvc_demux_t m;
    sink_t s = {0};
    tsvc_demux_init(&m);
    assert_int_equal(tsvc_demux_feed(&m, in, cut, collect, &s), 0);
    assert_int_equal(tsvc_demux_feed(&m, in + cut, n - cut, collect, &s), 0);
    assert_int_equal(tsvc_demux_end(&m, collect, &s), 0);
    assert_int_equal(s.len, strlen("PONG\nwarning: x\ndone\n"));
    assert_memory_equal(s.out, "PONG\nwarning: x\ndone\n", s.len);
    assert_int_equal(s.streams[0], 1);
    assert_int_equal(s.streams[1], 2);
    assert_int_equal(s.streams[2], 1);
  }
  /* Byte by byte. */
  tsvc_demux_t m;
  sink_t s = {0};
  tsvc_demux_init(&m);
  for (size_t i = 0; i < n; i++) assert_int_equal(tsvc_demux_feed(&m, in + i, 1, collect, &s), 0);
  assert_int_equal(tsvc_demux_end(&m, collect, &s), 0);
  assert_memory_equal(s.out, "PONG\nwarning: x\ndone\n", s.len);
}

static void demux_raw_and_corrupt(void **st) {
  (void)st;
  tsvc_demux_t m;
  sink_t s = {0};
  /* A TTY stream: text from the first byte. */
  tsvc_demux_init(&m);
  assert_int_equal(tsvc_demux_feed(&m, "hello\n", 6, collect, &s), 0);
  assert_int_equal(tsvc_demux_feed(&m, "\x01\x00", 2, collect, &s), 0);
  assert_int_equal(tsvc_demux_end(&m, collect, &s), 0);
  assert_int_equal(s.len, 8);
  assert_memory_equal(s.out, "hello\n\x01\x00", 8);
  /* Starts like a header but is not one: raw. */
  memset(&s, 0, sizeof s);
  tsvc_demux_init(&m);
  assert_int_equal(tsvc_demux_feed(&m, "\x01x", 2, collect, &s), 0);
  assert_int_equal(tsvc_demux_end(&m, collect, &s), 0);
  assert_memory_equal(s.out, "\x01x", 2);
  /* Fewer than 8 bytes that could be a header: flushed raw at the end. */
  memset(&s, 0, sizeof s);
  tsvc_demux_init(&m);
  assert_int_equal(tsvc_demux_feed(&m, "\x01\x00\x00", 3, collect, &s), 0);
  assert_int_equal(s.len, 0);
  assert_int_equal(tsvc_demux_end(&m, collect, &s), 0);
  assert_int_equal(s.len, 3);
  /* A bad header after a good frame is corruption. */
  char in[64];
  size_t n = frame(in, 1, "ok");
  memcpy(in + n, "\x09\x00\x00\x00\x00\x00\x00\x01z", 9);
  memset(&s, 0, sizeof s);
  tsvc_demux_init(&m);
  assert_int_equal(tsvc_demux_feed(&m, in, n + 9, collect, &s), TSVC_EIO);
  /* The stream ends inside a frame. */
  n = frame(in, 1, "truncated");
  memset(&s, 0, sizeof s);
  tsvc_demux_init(&m);
  assert_int_equal(tsvc_demux_feed(&m, in, n - 3, collect, &s), 0);
  assert_int_equal(tsvc_demux_end(&m, collect, &s), TSVC_EIO);
  /* A huge announced length costs nothing until the bytes come. */
  memset(&s, 0, sizeof s);
  tsvc_demux_init(&m);
  assert_int_equal(tsvc_demux_feed(&m, "\x01\x00\x00\x00\xff\xff\xff\xff" "ab", 10, collect, &s), 0);
  assert_int_equal(s.len, 2);
}

static void tail_keeps_last(void **st) {
  (void)st;
  tsvc_tail_t t;
  assert_int_equal(tsvc_tail_init(&t, 8), 0);
  tsvc_tail_add(&t, "abc", 3);
  assert_string_equal(t.buf, "abc");
  assert_false(tsvc_tail_truncated(&t));
  tsvc_tail_add(&t, "defgh", 5);
  assert_string_equal(t.buf, "abcdefgh");
  tsvc_tail_add(&t, "ij", 2);
  assert_string_equal(t.buf, "cdefghij");
  assert_true(tsvc_tail_truncated(&t));
  tsvc_tail_add(&t, "0123456789", 10);
  assert_string_equal(t.buf, "23456789");
  assert_int_equal(t.total, 20);
  tsvc_tail_free(&t);
}

typedef struct {
  char lines[8][64];
  int n;
} lines_t;

static int on_rec(void *ctx, const char *line, size_t n) {
  lines_t *l = ctx;
  assert_true(n < 64);
  memcpy(l->lines[l->n], line, n);
  l->lines[l->n][n] = '\0';
  l->n++;
  return 0;
}

static void lines_split_and_cap(void **st) {
  (void)st;
  tsvc_lines_t s;
  lines_t got = {0};
  tsvc_lines_init(&s, 16);
  const char *in = "{\"a\":1}\r\n\n{\"b\":2}\n0123456789ABCDEFXYZ\nlast";
  for (size_t i = 0; in[i]; i++) assert_int_equal(tsvc_lines_feed(&s, in + i, 1, on_rec, &got), 0);
  assert_int_equal(got.n, 2);
  assert_string_equal(got.lines[0], "{\"a\":1}");
  assert_string_equal(got.lines[1], "{\"b\":2}");
  assert_int_equal(s.dropped, 1);
  assert_int_equal(tsvc_lines_feed(&s, "\n", 1, on_rec, &got), 0);
  assert_int_equal(got.n, 3);
  assert_string_equal(got.lines[2], "last");
  tsvc_lines_free(&s);
}

static void container_info_parse(void **st) {
  (void)st;
  json_t *j = json_loads(
      "{\"Id\":\"abc\",\"Name\":\"/tsvc-redis\",\"State\":{\"Status\":\"running\",\"Running\":true,"
      "\"OOMKilled\":false,\"Pid\":4242,\"ExitCode\":0,\"Error\":\"\",\"Health\":{\"Status\":"
      "\"healthy\"}},\"NetworkSettings\":{\"Networks\":{\"bridge\":{\"IPAddress\":\"172.17.0.2\"},"
      "\"tanuki-net\":{\"IPAddress\":\"172.18.0.5\"}}}}",
      0, NULL);
  assert_non_null(j);
  tsvc_docker_container_info_t info;
  assert_int_equal(tsvc_docker_container_info(j, "tanuki-net", &info), 0);
  assert_string_equal(info.id, "abc");
  assert_string_equal(info.name, "tsvc-redis");
  assert_string_equal(info.status, "running");
  assert_true(info.running);
  assert_int_equal(info.pid, 4242);
  assert_string_equal(info.health, "healthy");
  assert_string_equal(info.ip, "172.18.0.5");
  assert_int_equal(tsvc_docker_container_info(j, "other", &info), 0);
  assert_string_equal(info.ip, "");
  json_decref(j);
  json_t *bad = json_array();
  assert_int_equal(tsvc_docker_container_info(bad, NULL, &info), TSVC_EINVAL);
  json_decref(bad);
}

/* ---- a fake engine on a unix socket ------------------------------------------ */

#define MAX_SEEN 32

typedef struct {
  char path[108];
  int lfd;
  pthread_t thr;
  atomic_int stop;
  const char *api_version;     /* the Api-Version header of /_ping */
  pthread_mutex_t mu;
  char seen[MAX_SEEN][256];    /* request lines, in order */
  int nseen;
  atomic_int events_served;
  atomic_int events_close;     /* end the current events stream */
  atomic_int active;           /* connection threads running */
  atomic_int auth_seen;        /* a request carried X-Registry-Auth: abc= */
  atomic_int late_inspects;    /* GET /exec/lateexec/json so far */
  atomic_int later_inspects;   /* GET /exec/laterexec/json so far */
  atomic_llong later_at;       /* laterexec counts as run (and killed) from
                                  this CLOCK_MONOTONIC ms on */
} fake_t;

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return;
    p += k;
    n -= (size_t)k;
  }
}

static void respond(int fd, int status, const char *ctype, const char *body, size_t len) {
  char h[256];
  int n = snprintf(h, sizeof h,
                   "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, ctype, len);
  send_all(fd, h, (size_t)n);
  send_all(fd, body, len);
}

/* Wait until the peer closes or the server stops. */
static void hang(fake_t *f, int fd) {
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 50) > 0) {
      char b[256];
      if (recv(fd, b, sizeof b, 0) <= 0) return;
    }
  }
}

static void serve(fake_t *f, int fd) {
  char req[8192];
  size_t n = 0;
  while (n < sizeof req - 1) {
    ssize_t k = recv(fd, req + n, sizeof req - 1 - n, 0);
    if (k <= 0) return;
    n += (size_t)k;
    req[n] = '\0';
    if (strstr(req, "\r\n\r\n")) break;
  }
  char line[256];
  size_t ll = strcspn(req, "\r\n");
  snprintf(line, sizeof line, "%.*s", (int)ll, req);
  pthread_mutex_lock(&f->mu);
  if (f->nseen < MAX_SEEN) tsvc_strlcpy(f->seen[f->nseen++], line, sizeof f->seen[0]);
  pthread_mutex_unlock(&f->mu);

  char method[16], path[200];
  if (sscanf(line, "%15s %199s", method, path) != 2) return;
  if (strcmp(path, "/_ping") == 0) {
    char h[256];
    int k = snprintf(h, sizeof h,
                     "HTTP/1.1 200 OK\r\nApi-Version: %s\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 2\r\nConnection: close\r\n\r\nOK",
                     f->api_version);
    send_all(fd, h, (size_t)k);
    return;
  }
  const char *p = strchr(path + 1, '/'); /* after /v1.xx */
  if (!p) p = path;
  if (strstr(req, "\r\nX-Registry-Auth: abc=\r\n")) atomic_store(&f->auth_seen, 1);
  if (strncmp(p, "/images/create?fromImage=fake%2Fstream&", 39) == 0 ||
      strncmp(p, "/images/create?fromImage=fake%2Ferrmid&", 39) == 0) {
    /* A pull's progress, a line at a time, as docker streams it; one
       line over the 16 KiB a line may take. */
    bool err = strstr(p, "errmid") != NULL;
    /* Connection: close, as every answer here: the connection is closed
       after it, and a client that kept it for the next request would race
       that close. */
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    send_all(fd, h, strlen(h));
    static char big[20000];
    memset(big, ' ', sizeof big - 2);
    big[sizeof big - 2] = '\n';
    const char *lines[] = {
        "{\"status\":\"Pulling from fake/stream\",\"id\":\"1\"}\n",
        "{\"status\":\"Already exists\",\"progressDetail\":{},\"id\":\"aaaa\"}\n",
        "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"bbbb\"}\n",
        "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1000,\"total\":3000},"
        "\"id\":\"bbbb\"}\n",
        big,
        err ? "{\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}\n"
            : "{\"status\":\"Download complete\",\"progressDetail\":{},\"id\":\"bbbb\"}\n",
        "{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"bbbb\"}\n",
        "{\"status\":\"Digest: sha256:1234\"}\n",
        "{\"status\":\"Status: Downloaded newer image for fake/stream:1\"}\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
      char sz[32];
      int k = snprintf(sz, sizeof sz, "%zx\r\n", strlen(lines[i]));
      send_all(fd, sz, (size_t)k);
      send_all(fd, lines[i], strlen(lines[i]));
      send_all(fd, "\r\n", 2);
      usleep(i == 3 ? 300000 : 20000); /* time for a progress report */
    }
    send_all(fd, "0\r\n\r\n", 5);
  } else if (strncmp(p, "/images/create?fromImage=fake%2Fnotfound&", 41) == 0) {
    const char *b = "{\"message\":\"manifest for fake/notfound:1 not found: manifest unknown: "
                    "manifest unknown\"}";
    respond(fd, 404, "application/json", b, strlen(b));
  } else if (strcmp(p, "/images/missing") == 0) {
    const char *b = "{\"message\":\"No such image: postgres:16\"}";
    respond(fd, 404, "application/json", b, strlen(b));
  } else if (strcmp(p, "/conflict") == 0) {
    const char *b = "{\"message\":\"Conflict. The container name \\\"/x\\\" is already in use by "
                    "container \\\"abc\\\".\"}";
    respond(fd, 409, "application/json", b, strlen(b));
  } else if (strcmp(p, "/notrunning") == 0) {
    const char *b = "{\"message\":\"Container abc is not running\"}";
    respond(fd, 409, "application/json", b, strlen(b));
  } else if (strcmp(p, "/oops") == 0) {
    respond(fd, 500, "text/plain", "boom\nmore", 9);
  } else if (strcmp(p, "/big") == 0) {
    size_t len = TSVC_DOCKER_MAX_BODY + 1;
    char *b = malloc(len);
    memset(b, ' ', len);
    b[0] = '[';
    b[len - 1] = ']';
    respond(fd, 200, "application/json", b, len);
    free(b);
  } else if (strcmp(p, "/fits") == 0) {
    size_t len = TSVC_DOCKER_MAX_BODY;
    char *b = malloc(len);
    memset(b, ' ', len);
    b[0] = '[';
    b[len - 1] = ']';
    respond(fd, 200, "application/json", b, len);
    free(b);
  } else if (strncmp(p, "/containers/biglogs/logs", 24) == 0) {
    /* 300 frames of 1 KiB: more than the 256 KiB kept. */
    size_t per = 8 + 1024, len = 300 * per;
    char *b = malloc(len);
    for (size_t i = 0; i < 300; i++) {
      char *fr = b + i * per;
      memset(fr, 0, 8);
      fr[0] = 1;
      fr[6] = 4; /* 1024 */
      memset(fr + 8, 'a' + (int)(i % 26), 1024);
    }
    respond(fd, 200, "application/vnd.docker.multiplexed-stream", b, len);
    free(b);
  } else if (strcmp(p, "/containers/late/exec") == 0) {
    respond(fd, 201, "application/json", "{\"Id\":\"lateexec\"}", 17);
  } else if (strcmp(p, "/exec/lateexec/start") == 0) {
    /* A daemon slow to start an exec: not started at the first two looks
       (Running true, no Pid: what Docker 20.10 answers while it starts
       one), ended (as killed) at the third; its stream ends then. */
    while (!atomic_load(&f->stop) && atomic_load(&f->late_inspects) < 3) usleep(2000);
    respond(fd, 200, "application/vnd.docker.raw-stream", "", 0);
  } else if (strcmp(p, "/containers/later/exec") == 0) {
    atomic_store(&f->later_at, mono_ms() + 5500);
    respond(fd, 201, "application/json", "{\"Id\":\"laterexec\"}", 18);
  } else if (strcmp(p, "/exec/laterexec/start") == 0) {
    /* Not started for 5.5 s: longer than the 5 s a killed exec has to end. */
    while (!atomic_load(&f->stop) && mono_ms() < atomic_load(&f->later_at)) usleep(2000);
    respond(fd, 200, "application/vnd.docker.raw-stream", "", 0);
  } else if (strcmp(p, "/exec/laterexec/json") == 0) {
    atomic_fetch_add(&f->later_inspects, 1);
    const char *b = mono_ms() < atomic_load(&f->later_at)
                        ? "{\"Running\":false,\"ExitCode\":null,\"Pid\":0}"
                        : "{\"Running\":false,\"ExitCode\":137,\"Pid\":0}";
    respond(fd, 200, "application/json", b, strlen(b));
  } else if (strcmp(p, "/exec/lateexec/json") == 0) {
    int seen = atomic_fetch_add(&f->late_inspects, 1) + 1;
    const char *b = seen < 3 ? "{\"Running\":true,\"ExitCode\":null,\"Pid\":0}"
                          : "{\"Running\":false,\"ExitCode\":137,\"Pid\":0}";
    respond(fd, 200, "application/json", b, strlen(b));
  } else if (strstr(p, "hang")) {
    hang(f, fd);
  } else if (strncmp(p, "/events", 7) == 0) {
    atomic_fetch_add(&f->events_served, 1);
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n";
    send_all(fd, h, strlen(h));
    const char *ev = "{\"Type\":\"container\",\"Action\":\"die\",\"id\":\"abc\"}\n";
    char chunk[128];
    int k = snprintf(chunk, sizeof chunk, "%zx\r\n%s\r\n", strlen(ev), ev);
    send_all(fd, chunk, (size_t)k);
    while (!atomic_load(&f->stop) && !atomic_load(&f->events_close)) usleep(5000);
    /* Closing without the last chunk: the daemon went away. */
  } else {
    respond(fd, 200, "application/json", "{\"ok\":true}", 11);
  }
}

typedef struct {
  fake_t *f;
  int fd;
} conn_t;

static void *conn_main(void *arg) {
  conn_t *c = arg;
  serve(c->f, c->fd);
  close(c->fd);
  atomic_fetch_sub(&c->f->active, 1);
  free(c);
  return NULL;
}

/* One thread per connection, so that a hanging answer blocks no other. */
static void *fake_main(void *arg) {
  fake_t *f = arg;
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    if (poll(&p, 1, 20) <= 0) continue;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) continue;
    conn_t *c = malloc(sizeof *c);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&f->active, 1);
    c->f = f;
    c->fd = fd;
    if (pthread_create(&t, &at, conn_main, c) != 0) {
      atomic_fetch_sub(&f->active, 1);
      close(fd);
      free(c);
    }
    pthread_attr_destroy(&at);
  }
  return NULL;
}

static void fake_start(fake_t *f, const char *api_version) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  f->api_version = api_version;
  snprintf(f->path, sizeof f->path, "/tmp/tsvc-fake-docker-%d.sock", (int)getpid());
  unlink(f->path);
  f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(f->lfd >= 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  tsvc_strlcpy(a.sun_path, f->path, sizeof a.sun_path);
  assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(f->lfd, 16), 0);
  assert_int_equal(pthread_create(&f->thr, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f) {
  atomic_store(&f->stop, 1);
  pthread_join(f->thr, NULL);
  while (atomic_load(&f->active) > 0) usleep(1000);
  close(f->lfd);
  unlink(f->path);
  pthread_mutex_destroy(&f->mu);
}

/* ---- loop helpers ------------------------------------------------------------- */

typedef struct {
  int done;
  int status;
  long http;
  char errmsg[512];
  json_t *json;
  char *data;
  size_t len;
  bool truncated;
  bool timed_out;
  int exit_code;
} result_t;

static void on_reply(const tsvc_docker_reply_t *rep, void *data) {
  result_t *r = data;
  r->done++;
  r->status = rep->status;
  r->http = rep->http_status;
  tsvc_strlcpy(r->errmsg, rep->errmsg, sizeof r->errmsg);
  json_decref(r->json);
  r->json = rep->json ? json_incref(rep->json) : NULL;
  free(r->data);
  r->data = rep->data ? tsvc_strndup(rep->data, rep->len) : NULL;
  r->len = rep->len;
  r->truncated = rep->truncated;
  r->timed_out = rep->timed_out;
  r->exit_code = rep->exit_code;
}

static void result_clear(result_t *r) {
  json_decref(r->json);
  free(r->data);
  memset(r, 0, sizeof *r);
}


/* Free the client and prove that nothing of it is left on the loop. */
static void finish(uv_loop_t *loop, tsvc_docker_t *d) {
  tsvc_docker_free(d);
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(loop), 0);
}

static tsvc_docker_t *client_for(uv_loop_t *loop, const fake_t *f) {
  char host[160], err[256] = "";
  snprintf(host, sizeof host, "unix://%s", f->path);
  tsvc_docker_t *d = NULL;
  assert_int_equal(uv_loop_init(loop), 0);
  assert_int_equal(tsvc_docker_new(loop, host, &d, err, sizeof err), 0);
  return d;
}

/* ---- client tests ---------------------------------------------------------------- */

/* An exec whose timeout comes before the daemon started it (a loaded daemon
   takes seconds to): its kill looks again until it runs or has ended,
   instead of leaving it to run unkilled until the 5 s guard. */
static void exec_timeout_before_start(void **st) {
  (void)st;
  fake_t f;
  fake_start(&f, "1.45");
  uv_loop_t loop;
  tsvc_docker_t *d = client_for(&loop, &f);
  result_t r = {0};
  uint64_t t0 = uv_hrtime();
  assert_int_equal(tsvc_docker_exec_run(d, "late", (const char *const[]){"sleep", "60", NULL},
                                        100, on_reply, &r, NULL),
                   0);
  tu_run_until(&loop, &r.done, 10000);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  print_message("exec_run: status %d (%s) after %llu ms, %d inspections\n", r.status, r.errmsg,
                (unsigned long long)ms, atomic_load(&f.late_inspects));
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, 0);
  assert_true(r.timed_out);
  assert_int_equal(r.exit_code, 137);
  /* two looks before it ran, the one that found it ended, the final one */
  assert_int_equal(atomic_load(&f.late_inspects), 4);
  assert_true(ms < 5000); /* not the guard */
  result_clear(&r);

  /* Not started for 5.5 s: waited for (as long as any request may take),
     not given up at the 5 s a killed one has to end. */
  t0 = uv_hrtime();
  assert_int_equal(tsvc_docker_exec_run(d, "later", (const char *const[]){"sleep", "60", NULL},
                                        100, on_reply, &r, NULL),
                   0);
  tu_run_until(&loop, &r.done, 20000);
  ms = (uv_hrtime() - t0) / 1000000;
  print_message("exec_run: status %d (%s) after %llu ms, %d inspections\n", r.status, r.errmsg,
                (unsigned long long)ms, atomic_load(&f.later_inspects));
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, 0);
  assert_true(r.timed_out);
  assert_int_equal(r.exit_code, 137);
  /* The fake counts 5.5 s from its mono_ms(), whole ms cut down: up to 1 ms
     before t0 + 5500 (CI saw 5499). */
  assert_true(ms >= 5499);
  assert_true(atomic_load(&f.later_inspects) > 10); /* looked at every 50 ms */
  result_clear(&r);
  finish(&loop, d);
  fake_stop(&f);
}


static void negotiates_and_versions_paths(void **st) {
  (void)st;
  fake_t f;
  fake_start(&f, "1.99");
  uv_loop_t loop;
  tsvc_docker_t *d = client_for(&loop, &f);
  result_t r = {0};
  assert_string_equal(tsvc_docker_api_version(d), "");
  /* No ping asked for: the first request negotiates first. */
  assert_int_equal(tsvc_docker_container_inspect(d, "a b/c", on_reply, &r, NULL), 0);
  assert_int_equal(r.done, 0); /* never called from inside the call */
  tu_run_until(&loop, &r.done, 5000);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, 0);
  assert_true(json_is_true(json_object_get(r.json, "ok")));
  assert_string_equal(tsvc_docker_api_version(d), TSVC_DOCKER_API_MAX);
  pthread_mutex_lock(&f.mu);
  assert_int_equal(f.nseen, 2);
  assert_string_equal(f.seen[0], "GET /_ping HTTP/1.1");
  assert_string_equal(f.seen[1], "GET /v" TSVC_DOCKER_API_MAX "/containers/a%20b%2Fc/json HTTP/1.1");
  pthread_mutex_unlock(&f.mu);
  result_clear(&r);

  f.api_version = "1.41";
  assert_int_equal(tsvc_docker_ping(d, on_reply, &r, NULL), 0);
  tu_run_until(&loop, &r.done, 5000);
  assert_int_equal(r.status, 0);
  assert_string_equal(json_string_value(json_object_get(r.json, "Negotiated")), "1.41");
  assert_string_equal(tsvc_docker_api_version(d), "1.41");
  result_clear(&r);

  f.api_version = "1.12";
  assert_int_equal(tsvc_docker_ping(d, on_reply, &r, NULL), 0);
  tu_run_until(&loop, &r.done, 5000);
  assert_int_equal(r.status, TSVC_ERUNTIME);
  assert_non_null(strstr(r.errmsg, "older than"));
  result_clear(&r);
  finish(&loop, d);
  fake_stop(&f);
}

static void daemon_messages_and_codes(void **st) {
  (void)st;
  fake_t f;
  fake_start(&f, "1.41");
  uv_loop_t loop;
  tsvc_docker_t *d = client_for(&loop, &f);
  struct {
    const char *path;
    int status;
    long http;
    const char *msg;
  } cases[] = {
      {"/images/missing", TSVC_ENOENT, 404, "No such image: postgres:16"},
      {"/conflict", TSVC_EEXIST, 409,
       "Conflict. The container name \"/x\" is already in use by container \"abc\"."},
      {"/notrunning", TSVC_EBUSY, 409, "Container abc is not running"},
      {"/oops", TSVC_ERUNTIME, 500, "HTTP 500: boom"},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(cases); i++) {
    result_t r = {0};
    assert_int_equal(tsvc_docker_request(d, "POST", cases[i].path, NULL, on_reply, &r, NULL), 0);
    tu_run_until(&loop, &r.done, 5000);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.status, cases[i].status);
    assert_int_equal(r.http, cases[i].http);
    assert_string_equal(r.errmsg, cases[i].msg);
    result_clear(&r);
  }
  finish(&loop, d);
  fake_stop(&f);
}

static void response_size_caps(void **st) {
  (void)st;
  fake_t f;
  fake_start(&f, "1.41");
  uv_loop_t loop;
  tsvc_docker_t *d = client_for(&loop, &f);
  result_t r = {0};
  assert_int_equal(tsvc_docker_request(d, "GET", "/fits", NULL, on_reply, &r, NULL), 0);
  tu_run_until(&loop, &r.done, 5000);
  assert_int_equal(r.status, 0);
  assert_true(json_is_array(r.json));
  result_clear(&r);

  assert_int_equal(tsvc_docker_request(d, "GET", "/big", NULL, on_reply, &r, NULL), 0);
  tu_run_until(&loop, &r.done, 5000);
  assert_int_equal(r.status, TSVC_EIO);
  assert_non_null(strstr(r.errmsg, "exceeds 1048576 bytes"));
  assert_null(r.json);
  result_clear(&r);

  /* Logs keep their last bytes instead. */
  assert_int_equal(tsvc_docker_container_logs(d, "biglogs", -1, on_reply, &r, NULL), 0);
  tu_run_until(&loop, &r.done, 5000);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.len, TSVC_DOCKER_MAX_LOGS);
  assert_true(r.truncated);
  assert_int_equal(r.data[r.len - 1], 'a' + 299 % 26);
  assert_int_equal(r.data[0], 'a' + (300 - 256) % 26);
  result_clear(&r);
  finish(&loop, d);
  fake_stop(&f);
}

static void missing_socket_is_unreachable(void **st) {
  (void)st;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  char host[128], err[256];
  snprintf(host, sizeof host, "unix:///tmp/tsvc-no-such-%d.sock", (int)getpid());
  tsvc_docker_t *d = NULL;
  assert_int_equal(tsvc_docker_new(&loop, host, &d, err, sizeof err), 0);
  result_t r = {0};
  assert_int_equal(tsvc_docker_container_list(d, "tanuki.service", true, on_reply, &r, NULL), 0);
  tu_run_until(&loop, &r.done, 5000);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, TSVC_EUNREACH);
  assert_int_equal(r.http, 0);
  assert_non_null(strstr(r.errmsg, "cannot connect to the Docker daemon at unix:///tmp/tsvc-no-such-"));
  assert_non_null(strstr(r.errmsg, "No such file or directory"));
  result_clear(&r);
  finish(&loop, d);
}

static void bad_hosts(void **st) {
  (void)st;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  char err[256] = "";
  tsvc_docker_t *d = NULL;
  assert_int_equal(tsvc_docker_new(&loop, "npipe:////./pipe/docker_engine", &d, err, sizeof err),
                   TSVC_EINVAL);
  assert_non_null(strstr(err, "unsupported"));
  /* ssh:// as the docker CLI takes it: no password, no path. */
  assert_int_equal(tsvc_docker_new(&loop, "ssh://me:pw@host", &d, err, sizeof err), TSVC_EINVAL);
  assert_non_null(strstr(err, "a password in the URL is not supported"));
  assert_int_equal(tsvc_docker_new(&loop, "ssh://me@host/var/run/docker.sock", &d, err,
                                   sizeof err), TSVC_EINVAL);
  assert_non_null(strstr(err, "docker.ssh.socket"));
  assert_int_equal(tsvc_docker_new(&loop, "unix://relative.sock", &d, err, sizeof err), TSVC_EINVAL);
  setenv("DOCKER_TLS_VERIFY", "1", 1);
  setenv("DOCKER_CERT_PATH", "/nonexistent-tsvc-certs", 1);
  assert_int_equal(tsvc_docker_new(&loop, "tcp://docker.example:2376", &d, err, sizeof err),
                   TSVC_EINVAL);
  assert_non_null(strstr(err, "/nonexistent-tsvc-certs/ca.pem"));
  unsetenv("DOCKER_TLS_VERIFY");
  unsetenv("DOCKER_CERT_PATH");
  assert_int_equal(tsvc_docker_new(&loop, "tcp://127.0.0.1:1", &d, err, sizeof err), 0);
  assert_string_equal(tsvc_docker_host(d), "tcp://127.0.0.1:1");
  result_t r = {0};
  assert_int_equal(tsvc_docker_ping(d, on_reply, &r, NULL), 0);
  tu_run_until(&loop, &r.done, 5000);
  assert_int_equal(r.status, TSVC_EUNREACH);
  /* Killing an exec through an engine not known to run here is refused. */
  assert_int_equal(tsvc_docker_exec_kill(d, "abc", on_reply, &r, NULL), TSVC_EINVAL);
  result_clear(&r);
  finish(&loop, d);
}

static void cancel_and_free_in_flight(void **st) {
  (void)st;
  fake_t f;
  fake_start(&f, "1.41");
  uv_loop_t loop;
  tsvc_docker_t *d = client_for(&loop, &f);
  result_t a = {0}, b = {0}, c = {0};
  tsvc_docker_req_t *ra = NULL;
  /* a: parked behind the negotiation, then cancelled. */
  assert_int_equal(tsvc_docker_request(d, "GET", "/hang", NULL, on_reply, &a, &ra), 0);
  tsvc_docker_cancel(ra);
  assert_int_equal(tsvc_docker_request(d, "GET", "/ok", NULL, on_reply, &c, NULL), 0);
  tu_run_until(&loop, &c.done, 5000);
  assert_int_equal(c.status, 0);
  /* b: in flight on the socket, then cancelled. */
  assert_int_equal(tsvc_docker_request(d, "GET", "/hang", NULL, on_reply, &b, &ra), 0);
  int never = 0;
  tu_run_until(&loop, &never, 100);
  tsvc_docker_cancel(ra);
  tu_run_until(&loop, &never, 50);
  /* More in flight when the client goes: no callback, no leak. */
  assert_int_equal(tsvc_docker_request(d, "GET", "/hang", NULL, on_reply, &b, NULL), 0);
  assert_int_equal(tsvc_docker_exec_run(d, "hang", (const char *const[]){"true", NULL}, 1000,
                                        on_reply, &b, NULL), 0);
  tsvc_docker_events_t *ev = NULL;
  assert_int_equal(tsvc_docker_events_start(d, "tanuki.service", NULL, NULL, NULL, &ev), 0);
  tu_run_until(&loop, &never, 100);
  assert_int_equal(a.done, 0);
  assert_int_equal(b.done, 0);
  finish(&loop, d);
  assert_int_equal(b.done, 0);
  result_clear(&a);
  result_clear(&b);
  result_clear(&c);
  fake_stop(&f);
}

typedef struct {
  tsvc_docker_t *d;
  int calls;
} freer_t;

static void free_in_callback(const tsvc_docker_reply_t *rep, void *data) {
  (void)rep;
  freer_t *f = data;
  f->calls++;
  tsvc_docker_free(f->d);
}

/* ---- pull ------------------------------------------------------------------------ */

/* The progress callback gets the reply's data (a result_t here): what it
   saw goes to a static. */
static struct {
  int calls;
  tsvc_pull_progress_t last;
} pr;

static void on_pull_progress(const tsvc_pull_progress_t *p, void *data) {
  assert_non_null(data);
  pr.calls++;
  pr.last = *p;
}

static void pull_stream_and_errors(void **st) {
  (void)st;
  fake_t f;
  fake_start(&f, "1.41");
  uv_loop_t loop;
  tsvc_docker_t *d = client_for(&loop, &f);
  result_t r = {0};
  memset(&pr, 0, sizeof pr);
  assert_int_equal(tsvc_docker_image_pull(d, "fake/stream:1", "abc=", on_pull_progress, on_reply,
                                          &r, NULL),
                   0);
  tu_run_until(&loop, &r.done, 10000);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, 0);
  assert_string_equal(json_string_value(json_object_get(r.json, "Status")),
                      "Downloaded newer image for fake/stream:1");
  assert_string_equal(json_string_value(json_object_get(r.json, "Digest")), "sha256:1234");
  assert_int_equal(json_integer_value(json_object_get(r.json, "Layers")), 2);
  assert_int_equal(json_integer_value(json_object_get(r.json, "LayersDone")), 2);
  assert_int_equal(json_integer_value(json_object_get(r.json, "Bytes")), 3000);
  /* Reported while it went on (the stream paused after 1000 of 3000). */
  assert_true(pr.calls >= 1);
  assert_int_equal(pr.last.layers, 2);
  assert_true(pr.last.bytes_done >= 1000);
  /* ... and its end told before the reply, though the stream's last lines
     came within one timer step (a live line then shows the layers). */
  assert_int_equal(pr.last.layers_done, 2);
  assert_int_equal(pr.last.bytes_done, 3000);
  assert_true(atomic_load(&f.auth_seen));
  pthread_mutex_lock(&f.mu);
  assert_string_equal(f.seen[f.nseen - 1],
                      "POST /v1.41/images/create?fromImage=fake%2Fstream&tag=1 HTTP/1.1");
  pthread_mutex_unlock(&f.mu);
  result_clear(&r);

  /* An error line mid-stream: the daemon's words; no tag means latest. */
  assert_int_equal(tsvc_docker_image_pull(d, "fake/errmid", NULL, NULL, on_reply, &r, NULL), 0);
  tu_run_until(&loop, &r.done, 10000);
  assert_int_equal(r.status, TSVC_ERUNTIME);
  assert_string_equal(r.errmsg, "unexpected EOF");
  pthread_mutex_lock(&f.mu);
  assert_string_equal(f.seen[f.nseen - 1],
                      "POST /v1.41/images/create?fromImage=fake%2Ferrmid&tag=latest HTTP/1.1");
  pthread_mutex_unlock(&f.mu);
  result_clear(&r);

  /* The registry has no such image: ENOENT with its words. */
  assert_int_equal(tsvc_docker_image_pull(d, "fake/notfound:1", NULL, NULL, on_reply, &r, NULL),
                   0);
  tu_run_until(&loop, &r.done, 10000);
  assert_int_equal(r.status, TSVC_ENOENT);
  assert_string_equal(r.errmsg, "manifest for fake/notfound:1 not found: manifest unknown: "
                                "manifest unknown");
  result_clear(&r);

  /* A reference that cannot be pulled: refused, no callback. */
  assert_int_equal(tsvc_docker_image_pull(d, "Bad/Name", NULL, NULL, on_reply, &r, NULL),
                   TSVC_EINVAL);

  /* Cancelled while the daemon is silent, and one freed with the client:
     no callback, nothing left on the loop. */
  tsvc_docker_req_t *q = NULL;
  memset(&pr, 0, sizeof pr);
  assert_int_equal(tsvc_docker_image_pull(d, "fake/hang:1", "abc=", on_pull_progress, on_reply,
                                          &r, &q),
                   0);
  int never = 0;
  tu_run_until(&loop, &never, 300);
  tsvc_docker_cancel(q);
  assert_int_equal(tsvc_docker_image_pull(d, "fake/hang:2", NULL, on_pull_progress, on_reply, &r,
                                          NULL),
                   0);
  tu_run_until(&loop, &never, 300);
  assert_int_equal(r.done, 0);
  finish(&loop, d);
  assert_int_equal(r.done, 0);
  fake_stop(&f);
}

static void free_from_callback(void **st) {
  (void)st;
  fake_t f;
  fake_start(&f, "1.41");
  uv_loop_t loop;
  tsvc_docker_t *d = client_for(&loop, &f);
  freer_t fr = {.d = d};
  result_t other = {0};
  assert_int_equal(tsvc_docker_request(d, "GET", "/ok", NULL, free_in_callback, &fr, NULL), 0);
  assert_int_equal(tsvc_docker_request(d, "GET", "/hang", NULL, on_reply, &other, NULL), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(fr.calls, 1);
  assert_int_equal(other.done, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  fake_stop(&f);
}

typedef struct {
  int events, up, down;
  char last_down[512];
} evlog_t;

static void ev_cb(json_t *e, void *data) {
  evlog_t *l = data;
  if (strcmp(json_string_value(json_object_get(e, "Action")), "die") == 0) l->events++;
}

static void state_cb(bool reachable, const char *msg, void *data) {
  evlog_t *l = data;
  if (reachable) {
    l->up++;
  } else {
    l->down++;
    tsvc_strlcpy(l->last_down, msg, sizeof l->last_down);
  }
}

static void events_reconnect(void **st) {
  (void)st;
  fake_t f;
  fake_start(&f, "1.41");
  uv_loop_t loop;
  tsvc_docker_t *d = client_for(&loop, &f);
  evlog_t l = {0};
  tsvc_docker_events_t *ev = NULL;
  assert_int_equal(tsvc_docker_events_start(d, "tanuki.service", ev_cb, state_cb, &l, &ev), 0);
  tu_run_until(&loop, &l.events, 5000);
  assert_int_equal(l.up, 1);
  assert_int_equal(l.events, 1);
  pthread_mutex_lock(&f.mu);
  assert_non_null(strstr(f.seen[1], "/events?filters="));
  assert_non_null(strstr(f.seen[1], "tanuki.service"));
  pthread_mutex_unlock(&f.mu);

  /* The daemon goes away: the stream ends, the socket disappears. */
  atomic_store(&f.events_close, 1);
  fake_stop(&f);
  int *down = &l.down;
  tu_run_until(&loop, down, 5000);
  assert_int_equal(l.down, 1);
  assert_non_null(strstr(l.last_down, "cannot connect"));
  int never = 0;
  tu_run_until(&loop, &never, 500); /* a few backed-off retries: told once */
  assert_int_equal(l.down, 1);

  /* And comes back. */
  fake_start(&f, "1.41");
  int target = 2;
  for (int i = 0; i < 100 && l.up < target; i++) tu_run_until(&loop, &never, 50);
  assert_int_equal(l.up, 2);
  tu_run_until(&loop, &never, 100);
  assert_int_equal(l.events, 2);
  tsvc_docker_events_stop(ev);
  atomic_store(&f.events_close, 1);
  finish(&loop, d);
  fake_stop(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(demux_every_split),
      cmocka_unit_test(demux_raw_and_corrupt),
      cmocka_unit_test(tail_keeps_last),
      cmocka_unit_test(lines_split_and_cap),
      cmocka_unit_test(container_info_parse),
      cmocka_unit_test(negotiates_and_versions_paths),
      cmocka_unit_test(daemon_messages_and_codes),
      cmocka_unit_test(response_size_caps),
      cmocka_unit_test(missing_socket_is_unreachable),
      cmocka_unit_test(bad_hosts),
      cmocka_unit_test(cancel_and_free_in_flight),
      cmocka_unit_test(free_from_callback),
      cmocka_unit_test(pull_stream_and_errors),
      cmocka_unit_test(events_reconnect),
      cmocka_unit_test(exec_timeout_before_start),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
