/*
 * docker_pull: pull one service's image as a person expects it: with the
 * registry credentials of the docker CLI's config.json, one log line when
 * the pull starts and one when it ends (size, seconds), and live progress
 * for whoever draws it (the program, on a terminal). The docker runtime
 * pulls through it before creating a container; `tanuki-svc pull` too.
 *
 * Credentials are read from the config file when each pull starts (a small
 * local file: a docker login meanwhile counts). Credential helpers
 * (credsStore, credHelpers) are not run: the pull goes without credentials
 * and both the start line and a failure say so.
 *
 * Ownership: a tsvc_docker_pull_t belongs to the pull until its callback
 * returns or it is cancelled. Strings passed in are copied.
 */
#ifndef TSVC_DOCKER_PULL_H
#define TSVC_DOCKER_PULL_H

#include "docker/docker.h"
#include "docker/image.h"

typedef enum {
  TSVC_PULL_EV_START,    /* the pull was sent */
  TSVC_PULL_EV_PROGRESS, /* progress changed (at most every 200 ms) */
  TSVC_PULL_EV_DONE,     /* the image is here */
  TSVC_PULL_EV_FAILED    /* error says why */
} tsvc_pull_ev_type_t;

typedef struct {
  tsvc_pull_ev_type_t type;
  const char *service;   /* may be NULL */
  const char *image;
  const char *registry;
  const tsvc_pull_progress_t *progress;
  double seconds;        /* since the start */
  const char *error;     /* FAILED: the whole message; else NULL */
} tsvc_pull_event_t;

typedef void (*tsvc_pull_observer_fn)(const tsvc_pull_event_t *ev, void *data);

/* Who is told about every pull of this process (the program's progress
 * display), from the loop that pulls. Process-wide, as the logger: set it
 * at start-up, before any pull; NULL: nobody. */
void tsvc_pull_set_observer(tsvc_pull_observer_fn fn, void *data);

typedef struct tsvc_docker_pull_s tsvc_docker_pull_t;

/* status 0: the image is here (msg NULL); else msg says, for people:
 * "pulling IMAGE from REGISTRY failed: <the registry's or daemon's words>"
 * ("cannot pull IMAGE: ..." when the Docker daemon cannot be reached). */
typedef void (*tsvc_docker_pull_cb)(int status, const char *msg, void *data);

/*
 * Pull image (for service, which names it in logs; may be NULL) on d.
 * cb is called once from the loop, unless cancelled first. Returns 0 and
 * *out (may be NULL), or TSVC_EINVAL (a reference that cannot be pulled:
 * reason in err) / TSVC_ENOMEM; cb is then never called.
 */
int tsvc_docker_pull(tsvc_docker_t *d, const char *service, const char *image,
                     tsvc_docker_pull_cb cb, void *data, tsvc_docker_pull_t **out, char *err,
                     size_t errlen);
/* Stop caring: no callback, no more log lines. NULL is a no-op. Must be
 * called before the client is freed. */
void tsvc_docker_pull_cancel(tsvc_docker_pull_t *p);

/* "3.0MB", "512kB", "17B" (decimal units, as docker prints them). */
const char *tsvc_bytes_format(int64_t n, char *buf, size_t len);

#endif /* TSVC_DOCKER_PULL_H */
