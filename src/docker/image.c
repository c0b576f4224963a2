/* image.c: see image.h. */
#include "docker/image.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tsvc.h"

#define CONFIG_MAX (1u << 20) /* a docker CLI config.json is a few KiB */

/* ---- references ---------------------------------------------------------- */

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

static bool valid_tag(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > 128 || t[0] == '.' || t[0] == '-') return false;
  for (size_t i = 0; i < n; i++) {
    char c = t[i];
    if (!is_lower_alnum(c) && !(c >= 'A' && c <= 'Z') && c != '_' && c != '.' && c != '-')
      return false;
  }
  return true;
}

static bool valid_digest(const char *d) {
  const char *colon = strchr(d, ':');
  if (!colon || colon == d) return false;
  size_t hex = strlen(colon + 1);
  if (hex < 32) return false;
  for (const char *p = colon + 1; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
  return true;
}

int tsvc_image_ref_parse(const char *image, tsvc_image_ref_t *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!image || !*image) {
    tsvc_errf(err, errlen, "empty image name");
    return TSVC_EINVAL;
  }
  size_t len = strlen(image);
  if (len >= sizeof out->name) {
    tsvc_errf(err, errlen, "image name \"%.40s...\" is longer than %zu characters", image,
            sizeof out->name - 1);
    return TSVC_EINVAL;
  }
  char buf[sizeof out->name];
  memcpy(buf, image, len + 1);
  char *at = strchr(buf, '@');
  if (at) {
    *at = '\0';
    if (!valid_digest(at + 1)) {
      tsvc_errf(err, errlen, "image %s: \"%s\" is not a digest (sha256:<64 hex digits>)", image,
              at + 1);
      return TSVC_EINVAL;
    }
    tsvc_strlcpy(out->tag, at + 1, sizeof out->tag);
    out->digest = true;
  }
  char *slash = strrchr(buf, '/');
  char *colon = strrchr(buf, ':');
  if (colon && (!slash || colon > slash)) {
    *colon = '\0';
    if (!valid_tag(colon + 1)) {
      tsvc_errf(err, errlen, "image %s: \"%s\" is not a valid tag (letters, digits, '_', '.', "
              "'-'; at most 128)", image, colon + 1);
      return TSVC_EINVAL;
    }
    /* name:tag@digest: the digest decides what is pulled. */
    if (!out->digest) tsvc_strlcpy(out->tag, colon + 1, sizeof out->tag);
  }
  if (!out->tag[0]) tsvc_strlcpy(out->tag, "latest", sizeof out->tag);
  if (!buf[0]) {
    tsvc_errf(err, errlen, "image %s: no name before the tag", image);
    return TSVC_EINVAL;
  }
  const char *repo = buf;
  char *first = strchr(buf, '/');
  if (first) {
    size_t n = (size_t)(first - buf);
    bool domain = memchr(buf, '.', n) || memchr(buf, ':', n) ||
                  (n == 9 && strncmp(buf, "localhost", 9) == 0);
    /* Upper case marks a registry too (the CLI's rule: a repository is
       lower case). */
    for (size_t i = 0; !domain && i < n; i++)
      if (buf[i] >= 'A' && buf[i] <= 'Z') domain = true;
    if (domain) {
      if (n == 0 || n >= sizeof out->registry) {
        tsvc_errf(err, errlen, "image %s: bad registry part", image);
        return TSVC_EINVAL;
      }
      memcpy(out->registry, buf, n);
      out->registry[n] = '\0';
      repo = first + 1;
    }
  }
  if (!out->registry[0]) tsvc_strlcpy(out->registry, TSVC_DOCKER_HUB, sizeof out->registry);
  if (!*repo) {
    tsvc_errf(err, errlen, "image %s: no repository after the registry", image);
    return TSVC_EINVAL;
  }
  for (const char *p = repo; *p; p++) {
    char c = *p;
    if (c >= 'A' && c <= 'Z') {
      tsvc_errf(err, errlen, "image %s: repository names must be lower case", image);
      return TSVC_EINVAL;
    }
    if (!is_lower_alnum(c) && c != '.' && c != '_' && c != '-' && c != '/') {
      tsvc_errf(err, errlen, "image %s: '%c' cannot be part of a repository name", image, c);
      return TSVC_EINVAL;
    }
  }
  if (repo[strlen(repo) - 1] == '/' || strstr(repo, "//") || repo[0] == '/') {
    tsvc_errf(err, errlen, "image %s: empty path component", image);
    return TSVC_EINVAL;
  }
  tsvc_strlcpy(out->name, buf, sizeof out->name);
  return 0;
}

/* ---- credentials ---------------------------------------------------------- */

/* "https://host:port/v1/" -> "host:port", into out. */
static void key_host(const char *key, char *out, size_t len) {
  const char *p = key;
  if (strncmp(p, "https://", 8) == 0) p += 8;
  else if (strncmp(p, "http://", 7) == 0) p += 7;
  size_t n = strcspn(p, "/");
  if (n >= len) n = len - 1;
  memcpy(out, p, n);
  out[n] = '\0';
}

static bool is_hub(const char *host) {
  return strcmp(host, "docker.io") == 0 || strcmp(host, "index.docker.io") == 0 ||
         strcmp(host, "registry-1.docker.io") == 0;
}

/* The auths entry for registry and its key, or NULL. */
static json_t *find_auth(json_t *auths, const char *registry, const char **keyp) {
  bool hub = is_hub(registry);
  const char *key;
  json_t *v;
  /* An exact key first, as the CLI writes it. */
  const char *exact = hub ? "https://index.docker.io/v1/" : registry;
  if ((v = json_object_get(auths, exact))) {
    *keyp = exact;
    return v;
  }
  json_object_foreach(auths, key, v) {
    char host[256];
    key_host(key, host, sizeof host);
    if (strcmp(host, registry) == 0 || (hub && is_hub(host))) {
      *keyp = key;
      return v;
    }
  }
  return NULL;
}

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

/* Decode standard or URL-safe base64 (padding optional). Caller frees;
   NULL when s is not base64 (*bad set) or out of memory. */
static char *b64_decode(const char *s, size_t *outlen, bool *bad) {
  size_t n = strlen(s);
  while (n && s[n - 1] == '=') n--;
  char *o = malloc(n * 3 / 4 + 1);
  if (!o) return NULL;
  size_t k = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64val(s[i]);
    if (v < 0) {
      free(o);
      *bad = true;
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[k++] = (char)((acc >> bits) & 0xff);
    }
  }
  o[k] = '\0';
  *outlen = k;
  return o;
}

/* base64url with padding, as the docker CLI encodes X-Registry-Auth. */
static char *b64url_encode(const char *s, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char *o = malloc((n + 2) / 3 * 4 + 1);
  if (!o) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned char)s[i] << 16;
    if (i + 1 < n) v |= (unsigned char)s[i + 1] << 8;
    if (i + 2 < n) v |= (unsigned char)s[i + 2];
    o[k++] = tab[(v >> 18) & 63];
    o[k++] = tab[(v >> 12) & 63];
    o[k++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    o[k++] = i + 2 < n ? tab[v & 63] : '=';
  }
  o[k] = '\0';
  return o;
}

/* The credential helper in charge of registry, or NULL. */
static const char *helper_for(const json_t *config, const char *registry, const char **where) {
  json_t *helpers = json_object_get(config, "credHelpers");
  const char *key;
  json_t *v;
  json_object_foreach(helpers, key, v) {
    char host[256];
    key_host(key, host, sizeof host);
    if (json_is_string(v) && (strcmp(host, registry) == 0 || (is_hub(registry) && is_hub(host)))) {
      *where = "credHelpers";
      return json_string_value(v);
    }
  }
  const char *store = json_string_value(json_object_get(config, "credsStore"));
  if (store && *store) {
    *where = "credsStore";
    return store;
  }
  return NULL;
}

int tsvc_registry_auth(const json_t *config, const char *file, const char *registry,
                       char **header, char *note, size_t notelen) {
  *header = NULL;
  if (note && notelen) note[0] = '\0';
  if (!file) file = "config.json";
  const char *where = NULL;
  const char *helper = helper_for(config, registry, &where);
  const char *key = NULL;
  json_t *entry = find_auth(json_object_get(config, "auths"), registry, &key);
  const char *user = json_string_value(json_object_get(entry, "username"));
  const char *pass = json_string_value(json_object_get(entry, "password"));
  const char *auth = json_string_value(json_object_get(entry, "auth"));
  const char *token = json_string_value(json_object_get(entry, "identitytoken"));
  char *decoded = NULL;
  if (auth && *auth) {
    size_t n = 0;
    bool bad = false;
    decoded = b64_decode(auth, &n, &bad);
    if (!decoded && !bad) return TSVC_ENOMEM;
    char *colon = decoded && strlen(decoded) == n ? strchr(decoded, ':') : NULL;
    if (!colon) {
      tsvc_errf(note, notelen, "%s: auths.\"%s\".auth is not base64 of \"user:password\"; "
              "pulling from %s without credentials", file, key, registry);
      free(decoded);
      return 0;
    }
    *colon = '\0';
    user = decoded;
    pass = colon + 1;
  }
  bool have = (user && *user) || (token && *token);
  if (!have) {
    if (helper)
      tsvc_errf(note, notelen, "credentials for %s are kept by the credential helper "
              "docker-credential-%s (%s in %s), which tanuki-svc does not run; pulling without "
              "credentials (put them in auths, e.g. with docker login and no credential helper "
              "configured)", registry, helper, where, file);
    free(decoded);
    return 0;
  }
  json_t *j = token && *token && !(user && *user && pass && *pass)
                  ? json_pack("{s:s, s:s}", "identitytoken", token, "serveraddress", key)
                  : json_pack("{s:s, s:s, s:s}", "username", user, "password", pass ? pass : "",
                              "serveraddress", key);
  free(decoded);
  char *js = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!js) return TSVC_ENOMEM;
  *header = b64url_encode(js, strlen(js));
  /* The JSON held the password: wipe it before it goes back to malloc. */
  memset(js, 0, strlen(js));
  free(js);
  return *header ? 0 : TSVC_ENOMEM;
}

const char *tsvc_docker_config_path(char *buf, size_t len) {
  const char *dir = getenv("DOCKER_CONFIG");
  if (dir && *dir) {
    snprintf(buf, len, "%s/config.json", dir);
  } else {
    const char *home = getenv("HOME");
    snprintf(buf, len, "%s/.docker/config.json", home && *home ? home : "");
  }
  return buf;
}

int tsvc_registry_auth_file(const char *path, const char *registry, char **header,
                            char *note, size_t notelen) {
  char def[1024];
  *header = NULL;
  if (note && notelen) note[0] = '\0';
  if (!path) path = tsvc_docker_config_path(def, sizeof def);
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno != ENOENT)
      tsvc_errf(note, notelen, "%s: %s; pulling from %s without credentials", path,
              strerror(errno), registry);
    return 0;
  }
  tsvc_buf_t b;
  tsvc_buf_init(&b, CONFIG_MAX);
  char chunk[4096];
  size_t n;
  int rc = 0;
  while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = tsvc_buf_add(&b, chunk, n);
  fclose(f);
  if (rc == TSVC_ENOMEM) {
    tsvc_buf_free(&b);
    return rc;
  }
  if (rc) {
    tsvc_errf(note, notelen, "%s: larger than %u KiB; pulling from %s without credentials", path,
            CONFIG_MAX >> 10, registry);
    tsvc_buf_free(&b);
    return 0;
  }
  json_error_t je;
  json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, &je);
  tsvc_buf_free(&b);
  if (!j || !json_is_object(j)) {
    if (j)
      tsvc_errf(note, notelen, "%s: not a JSON object; pulling from %s without credentials", path,
              registry);
    else
      tsvc_errf(note, notelen, "%s:%d:%d: %s; pulling from %s without credentials", path, je.line,
              je.column, je.text, registry);
    json_decref(j);
    return 0;
  }
  rc = tsvc_registry_auth(j, path, registry, header, note, notelen);
  json_decref(j);
  return rc;
}

/* ---- ports ------------------------------------------------------------------ */

bool tsvc_expose_hint(const json_t *inspect, const char *image, int port, int host_port,
                      char *buf, size_t len) {
  json_t *exposed = json_object_get(json_object_get(inspect, "Config"), "ExposedPorts");
  if (!json_is_object(exposed) || port <= 0) return false;
  char list[256] = "";
  size_t used = 0;
  int first = 0, ntcp = 0;
  const char *key;
  json_t *v;
  json_object_foreach(exposed, key, v) {
    long n;
    char num[16];
    size_t k = strcspn(key, "/");
    const char *proto = key[k] ? key + k + 1 : "tcp";
    if (strcmp(proto, "tcp") != 0 || k == 0 || k >= sizeof num) continue;
    memcpy(num, key, k);
    num[k] = '\0';
    if (tsvc_parse_int(num, 1, 65535, &n) != 0) continue;
    if (n == port) return false;
    if (!first) first = (int)n;
    ntcp++;
    if (used < sizeof list) {
      int w = snprintf(list + used, sizeof list - used, "%s%ld/tcp", ntcp > 1 ? ", " : "", n);
      if (w > 0) used += (size_t)w;
    }
  }
  if (!ntcp) return false;
  snprintf(buf, len, "image %s exposes %s; port %d is not exposed; did you mean \"%d:%d\"?",
           image, list, port, host_port > 0 ? host_port : port, first);
  return true;
}

/* ---- pull progress ---------------------------------------------------------- */

void tsvc_pull_state_init(tsvc_pull_state_t *st) { memset(st, 0, sizeof *st); }

static tsvc_pull_layer_t *layer_of(tsvc_pull_state_t *st, const char *id, bool *untracked) {
  for (int i = 0; i < st->nlayers; i++)
    if (strcmp(st->layer[i].id, id) == 0) return &st->layer[i];
  if (st->nlayers == TSVC_PULL_MAX_LAYERS) {
    *untracked = true;
    return NULL;
  }
  tsvc_pull_layer_t *l = &st->layer[st->nlayers++];
  memset(l, 0, sizeof *l);
  tsvc_strlcpy(l->id, id, sizeof l->id);
  return l;
}

bool tsvc_pull_feed(tsvc_pull_state_t *st, const char *line, size_t n) {
  json_t *j = json_loadb(line, n, 0, NULL);
  if (!json_is_object(j)) {
    json_decref(j);
    return false;
  }
  bool changed = false;
  const char *error = json_string_value(json_object_get(j, "error"));
  const char *detail =
      json_string_value(json_object_get(json_object_get(j, "errorDetail"), "message"));
  const char *status = json_string_value(json_object_get(j, "status"));
  const char *id = json_string_value(json_object_get(j, "id"));
  if (detail || error) {
    /* The first error is the cause; later ones follow from it. */
    if (!st->error[0]) tsvc_strlcpy(st->error, detail ? detail : error, sizeof st->error);
    changed = true;
  } else if (status && strncmp(status, "Status: ", 8) == 0) {
    tsvc_strlcpy(st->status, status + 8, sizeof st->status);
  } else if (status && strncmp(status, "Digest: ", 8) == 0) {
    tsvc_strlcpy(st->digest, status + 8, sizeof st->digest);
  } else if (status && id && *id && strncmp(status, "Pulling from ", 13) != 0) {
    /* A layer's line. Which ones are layers: every status with an id but
       "Pulling from <repo>" (whose id is the tag). */
    bool untracked = false;
    tsvc_pull_layer_t *l = layer_of(st, id, &untracked);
    bool done = strcmp(status, "Pull complete") == 0 || strcmp(status, "Already exists") == 0;
    if (!l) {
      if (untracked && done) st->untracked_done++;
      else if (untracked && strcmp(status, "Pulling fs layer") == 0) st->untracked++;
      json_decref(j);
      return untracked;
    }
    json_t *pd = json_object_get(j, "progressDetail");
    json_int_t cur = json_integer_value(json_object_get(pd, "current"));
    json_int_t tot = json_integer_value(json_object_get(pd, "total"));
    if (strcmp(status, "Downloading") == 0) {
      l->fetched = true;
      if (tot > 0) l->total = tot;
      if (cur >= 0 && cur >= l->current) l->current = cur;
    } else if (strcmp(status, "Download complete") == 0 ||
               strcmp(status, "Verifying Checksum") == 0 ||
               strcmp(status, "Extracting") == 0 || strcmp(status, "Pull complete") == 0) {
      /* Extracting counts the layer's bytes again: keep the download's. */
      if (l->fetched && l->total > 0) l->current = l->total;
      if (strcmp(status, "Extracting") == 0 && !l->fetched && tot > 0) {
        /* A layer whose download we never saw (a quick one). */
        l->fetched = true;
        l->total = l->current = tot;
      }
    } else if (strcmp(status, "Pulling fs layer") == 0) {
      l->fetched = true;
    }
    if (done) l->done = true;
    changed = true;
  }
  json_decref(j);
  return changed;
}

void tsvc_pull_progress(const tsvc_pull_state_t *st, tsvc_pull_progress_t *out) {
  memset(out, 0, sizeof *out);
  out->layers = st->nlayers + st->untracked;
  out->layers_done = st->untracked_done;
  for (int i = 0; i < st->nlayers; i++) {
    const tsvc_pull_layer_t *l = &st->layer[i];
    if (l->done) out->layers_done++;
    if (!l->fetched) continue;
    out->bytes_done += l->current;
    out->bytes_total += l->total;
  }
}
