/*
 * image: what pulling an image needs besides the transport, as pure
 * functions with no socket and no clock (unit tests feed them text):
 *
 *  - image references ("redis:7-alpine", "127.0.0.1:5000/team/app@sha256:..")
 *    split into registry, name and tag, as the docker CLI splits them;
 *  - registry credentials from a docker CLI config.json (`auths`), turned
 *    into the X-Registry-Auth header the Engine API takes;
 *  - the progress lines of POST /images/create, summed up per image.
 *
 * Ownership: everything is in caller-owned structs and buffers, except the
 * header string of tsvc_registry_auth*, which the caller frees.
 */
#ifndef TSVC_DOCKER_IMAGE_H
#define TSVC_DOCKER_IMAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TSVC_DOCKER_HUB "docker.io"

typedef struct {
  char registry[256]; /* "docker.io" when the name has no registry part */
  char name[512];     /* the name as given, without tag or digest:
                         "redis", "127.0.0.1:5000/team/redis" */
  char tag[160];      /* the tag, or the digest ("sha256:..."); "latest"
                         when the reference has neither */
  bool digest;        /* tag holds a digest */
} tsvc_image_ref_t;

/*
 * Split image as the docker CLI does: the part before the first '/' is a
 * registry when it holds a '.' or a ':', or is "localhost" (else the image
 * is on Docker Hub); ":tag" after the last '/'; "@digest" at the end.
 * Returns 0, or TSVC_EINVAL with what is wrong in err (empty, too long,
 * upper case in the repository, a character a reference cannot hold).
 */
int tsvc_image_ref_parse(const char *image, tsvc_image_ref_t *out, char *err, size_t errlen);

/*
 * The X-Registry-Auth value for registry from a parsed config.json (file
 * names it in messages): the `auths` entry whose key is registry, or whose
 * key reduces to it ("https://127.0.0.1:5000/v1/" -> "127.0.0.1:5000";
 * Docker Hub's key is "https://index.docker.io/v1/"), with either a base64
 * "auth" ("user:password"), or "username" and "password", or an
 * "identitytoken". The value is base64url of {"username", "password",
 * "serveraddress"} (or {"identitytoken", "serveraddress"}).
 * Returns 0 with *header (caller frees) or NULL when there are no
 * credentials to send; note then says why when people would expect some
 * (credentials kept by a credential helper, credsStore or credHelpers,
 * which tanuki-svc does not run; an entry that cannot be decoded), else "".
 * TSVC_ENOMEM is the only error.
 */
int tsvc_registry_auth(const json_t *config, const char *file, const char *registry,
                       char **header, char *note, size_t notelen);

/* The docker CLI's config file: $DOCKER_CONFIG/config.json, else
 * $HOME/.docker/config.json. Into buf; returns buf. */
const char *tsvc_docker_config_path(char *buf, size_t len);

/*
 * tsvc_registry_auth on the config file at path (NULL: the docker CLI's).
 * A missing file means no credentials; one that cannot be read or parsed
 * (or is over 1 MiB) also sends none, and note names the file, the line and
 * the column. Reads the file: call it where a small blocking read is fine.
 */
int tsvc_registry_auth_file(const char *path, const char *registry, char **header,
                            char *note, size_t notelen);

/*
 * The port check of `up` and `config validate`: when the image (inspect:
 * its GET /images/{name}/json) declares EXPOSE and container port `port`
 * is not among its tcp ports, writes the warning with its fix into buf and
 * returns true:
 *   image redis:7-alpine exposes 6379/tcp; port 16379 is not exposed;
 *   did you mean "16379:6379"?
 * (host_port keeps the host side of the suggestion). An image that exposes
 * nothing says nothing: false.
 */
bool tsvc_expose_hint(const json_t *inspect, const char *image, int port, int host_port,
                      char *buf, size_t len);

/* ---- pull progress ---- */

#define TSVC_PULL_MAX_LAYERS 256 /* layers followed; more are counted only */

typedef struct tsvc_pull_progress_s {
  int layers;          /* layers seen so far */
  int layers_done;     /* pulled, or already present */
  int64_t bytes_done;  /* downloaded so far */
  int64_t bytes_total; /* the sizes of the layers being downloaded, as far
                          as they are known */
} tsvc_pull_progress_t;

typedef struct {
  char id[72];
  int64_t current, total;
  bool done;       /* Pull complete / Already exists */
  bool fetched;    /* bytes came (or come) from the registry */
} tsvc_pull_layer_t;

typedef struct {
  tsvc_pull_layer_t layer[TSVC_PULL_MAX_LAYERS];
  int nlayers;
  int untracked;    /* layers past TSVC_PULL_MAX_LAYERS */
  int untracked_done;
  char error[512];  /* the daemon's or the registry's words, "" if none */
  char status[256]; /* the last "Status: ..." line, without "Status: " */
  char digest[128]; /* from "Digest: ..." */
} tsvc_pull_state_t;

void tsvc_pull_state_init(tsvc_pull_state_t *st);
/* One JSON line of the stream. Lines that are not JSON objects are
 * ignored. Returns true when the progress changed. */
bool tsvc_pull_feed(tsvc_pull_state_t *st, const char *line, size_t n);
void tsvc_pull_progress(const tsvc_pull_state_t *st, tsvc_pull_progress_t *out);

#endif /* TSVC_DOCKER_IMAGE_H */
