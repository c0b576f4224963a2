/*
 * test_image: the pure parts of pulling (src/docker/image.c): image
 * references, credentials from a docker CLI config.json, the progress
 * stream of POST /images/create (lines as docker 20.10 sends them), and
 * the EXPOSE check of ports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/image.h"
#include "testutil.h"
#include "tsvc.h"

static void refs(void **st) {
  (void)st;
  static const struct {
    const char *in, *registry, *name, *tag;
    bool digest;
  } ok[] = {
      {"redis", "docker.io", "redis", "latest", false},
      {"redis:7-alpine", "docker.io", "redis", "7-alpine", false},
      {"postgres:16", "docker.io", "postgres", "16", false},
      {"bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", false},
      {"127.0.0.1:5000/team/redis:7", "127.0.0.1:5000", "127.0.0.1:5000/team/redis", "7", false},
      {"127.0.0.1:5000/redis", "127.0.0.1:5000", "127.0.0.1:5000/redis", "latest", false},
      {"localhost/app", "localhost", "localhost/app", "latest", false},
      {"ghcr.io/org/app:v1.2.3", "ghcr.io", "ghcr.io/org/app", "v1.2.3", false},
      {"Registry/app", "Registry", "Registry/app", "latest", false},
      {"redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
       "docker.io", "redis",
       "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
      {"redis:7@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
       "docker.io", "redis",
       "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    tsvc_image_ref_t r;
    char err[256] = "";
    int rc = tsvc_image_ref_parse(ok[i].in, &r, err, sizeof err);
    if (rc) fail_msg("%s: %s", ok[i].in, err);
    assert_string_equal(r.registry, ok[i].registry);
    assert_string_equal(r.name, ok[i].name);
    assert_string_equal(r.tag, ok[i].tag);
    assert_int_equal(r.digest, ok[i].digest);
  }
  static const struct {
    const char *in, *err;
  } bad[] = {
      {"", "empty image name"},
      {"Redis:7", "image Redis:7: repository names must be lower case"},
      {"redis:", "image redis:: \"\" is not a valid tag (letters, digits, '_', '.', '-'; at most "
                 "128)"},
      {"redis:-x", "image redis:-x: \"-x\" is not a valid tag (letters, digits, '_', '.', '-'; at "
                   "most 128)"},
      {"redis@sha256:12", "image redis@sha256:12: \"sha256:12\" is not a digest (sha256:<64 hex "
                          "digits>)"},
      {"127.0.0.1:5000/", "image 127.0.0.1:5000/: no repository after the registry"},
      {"team//redis", "image team//redis: empty path component"},
      {"red is", "image red is: ' ' cannot be part of a repository name"},
      {":7", "image :7: no name before the tag"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tsvc_image_ref_t r;
    char err[256] = "";
    assert_int_equal(tsvc_image_ref_parse(bad[i].in, &r, err, sizeof err), TSVC_EINVAL);
    assert_string_equal(err, bad[i].err);
  }
}

/* base64url (with padding) decoded, for checking headers. */
static char *b64url_decode(const char *s) {
  size_t n = strlen(s);
  char *o = calloc(n, 1);
  size_t k = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n && s[i] != '='; i++) {
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = strchr(tab, s[i]);
    assert_non_null(p); /* URL-safe alphabet only */
    acc = (acc << 6) | (unsigned)(p - tab);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[k++] = (char)((acc >> bits) & 0xff);
    }
  }
  return o;
}

static json_t *header_json(const char *config, const char *registry, char *note, size_t len) {
  json_t *c = json_loads(config, 0, NULL);
  assert_non_null(c);
  char *h = NULL;
  assert_int_equal(tsvc_registry_auth(c, "/x/config.json", registry, &h, note, len), 0);
  json_decref(c);
  if (!h) return NULL;
  assert_int_equal(strlen(h) % 4, 0); /* padded, as the docker CLI sends it */
  char *js = b64url_decode(h);
  free(h);
  json_t *j = json_loads(js, 0, NULL);
  free(js);
  assert_non_null(j);
  return j;
}

static void credentials(void **st) {
  (void)st;
  char note[1024];
  /* "auth": base64 of user:password (a password holding ':' too). */
  json_t *j = header_json("{\"auths\": {\"127.0.0.1:5000\": {\"auth\": \"dXNlcjpwYTpzcw==\"}}}",
                          "127.0.0.1:5000", note, sizeof note);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "username")), "user");
  assert_string_equal(json_string_value(json_object_get(j, "password")), "pa:ss");
  assert_string_equal(json_string_value(json_object_get(j, "serveraddress")), "127.0.0.1:5000");
  assert_string_equal(note, "");
  json_decref(j);
  /* A key with a scheme and a path still matches its host. */
  j = header_json("{\"auths\": {\"https://reg.example:5000/v1/\": {\"username\": \"u\", "
                  "\"password\": \"p\"}}}",
                  "reg.example:5000", note, sizeof note);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "username")), "u");
  assert_string_equal(json_string_value(json_object_get(j, "serveraddress")),
                      "https://reg.example:5000/v1/");
  json_decref(j);
  /* Docker Hub's key. */
  j = header_json("{\"auths\": {\"https://index.docker.io/v1/\": {\"auth\": \"aHViOnB3\"}}}",
                  "docker.io", note, sizeof note);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "username")), "hub");
  json_decref(j);
  /* An identity token. */
  j = header_json("{\"auths\": {\"r.example\": {\"identitytoken\": \"tok\"}}}", "r.example", note,
                  sizeof note);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "identitytoken")), "tok");
  json_decref(j);
  /* Another registry's credentials are not sent. */
  assert_null(header_json("{\"auths\": {\"a.example\": {\"auth\": \"dTpw\"}}}", "b.example", note,
                          sizeof note));
  assert_string_equal(note, "");
  /* Credential helpers: not run, and said so. */
  assert_null(header_json("{\"auths\": {\"r.example\": {}}, \"credsStore\": \"desktop\"}",
                          "r.example", note, sizeof note));
  assert_string_equal(note, "credentials for r.example are kept by the credential helper "
                            "docker-credential-desktop (credsStore in /x/config.json), which "
                            "tanuki-svc does not run; pulling without credentials (put them in "
                            "auths, e.g. with docker login and no credential helper configured)");
  assert_null(header_json("{\"credHelpers\": {\"r.example\": \"ecr-login\"}}", "r.example", note,
                          sizeof note));
  assert_non_null(strstr(note, "docker-credential-ecr-login (credHelpers in /x/config.json)"));
  /* Credentials in auths win over a store. */
  j = header_json("{\"auths\": {\"r.example\": {\"auth\": \"dTpw\"}}, \"credsStore\": \"pass\"}",
                  "r.example", note, sizeof note);
  assert_non_null(j);
  assert_string_equal(note, "");
  json_decref(j);
  /* A broken "auth" is named. */
  assert_null(header_json("{\"auths\": {\"r.example\": {\"auth\": \"!!!\"}}}", "r.example", note,
                          sizeof note));
  assert_string_equal(note, "/x/config.json: auths.\"r.example\".auth is not base64 of "
                            "\"user:password\"; pulling from r.example without credentials");
}

static void credentials_file(void **st) {
  (void)st;
  char *dir = tu_mkdtemp("tsvc-image");
  assert_non_null(dir);
  char path[512], note[1024];
  char *h = (char *)1;
  /* Missing: no credentials, nothing to say. */
  snprintf(path, sizeof path, "%s/none.json", dir);
  assert_int_equal(tsvc_registry_auth_file(path, "r.example", &h, note, sizeof note), 0);
  assert_null(h);
  assert_string_equal(note, "");
  /* Not JSON: the file, line and column. */
  snprintf(path, sizeof path, "%s/bad.json", dir);
  assert_int_equal(tu_write_file(path, "{\n  \"auths\": {,\n}\n"), 0);
  assert_int_equal(tsvc_registry_auth_file(path, "r.example", &h, note, sizeof note), 0);
  assert_null(h);
  char want[600];
  snprintf(want, sizeof want, "%s:2:", path);
  assert_non_null(strstr(note, want));
  assert_non_null(strstr(note, "pulling from r.example without credentials"));
  /* Good, through DOCKER_CONFIG. */
  snprintf(path, sizeof path, "%s/config.json", dir);
  assert_int_equal(tu_write_file(path, "{\"auths\": {\"r.example\": {\"auth\": \"dTpw\"}}}"), 0);
  char *old = getenv("DOCKER_CONFIG") ? strdup(getenv("DOCKER_CONFIG")) : NULL;
  setenv("DOCKER_CONFIG", dir, 1);
  char got[512];
  assert_string_equal(tsvc_docker_config_path(got, sizeof got), path);
  assert_int_equal(tsvc_registry_auth_file(NULL, "r.example", &h, note, sizeof note), 0);
  assert_non_null(h);
  free(h);
  if (old) setenv("DOCKER_CONFIG", old, 1);
  else unsetenv("DOCKER_CONFIG");
  free(old);
  tu_rmtree(dir);
  free(dir);
}

static void feed(tsvc_pull_state_t *s, const char *line) {
  tsvc_pull_feed(s, line, strlen(line));
}

/* The stream of docker 20.10 pulling an image of 4 layers, 3 of them
   present already (one listed twice), the fourth 3 MB. */
static void progress_stream(void **st) {
  (void)st;
  tsvc_pull_state_t *s = malloc(sizeof *s);
  tsvc_pull_state_init(s);
  tsvc_pull_progress_t p;
  feed(s, "{\"status\":\"Pulling from etest/redis2\",\"id\":\"7\"}");
  tsvc_pull_progress(s, &p);
  assert_int_equal(p.layers, 0); /* the tag's line is no layer */
  feed(s, "{\"status\":\"Already exists\",\"progressDetail\":{},\"id\":\"cd1ccae6ecc4\"}");
  feed(s, "{\"status\":\"Already exists\",\"progressDetail\":{},\"id\":\"12dd44c59232\"}");
  feed(s, "{\"status\":\"Already exists\",\"progressDetail\":{},\"id\":\"2e3d1ecbd30e\"}");
  feed(s, "{\"status\":\"Already exists\",\"progressDetail\":{},\"id\":\"2e3d1ecbd30e\"}");
  feed(s, "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"7c308e232572\"}");
  tsvc_pull_progress(s, &p);
  assert_int_equal(p.layers, 4);
  assert_int_equal(p.layers_done, 3);
  assert_int_equal(p.bytes_done, 0);
  feed(s, "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":36445,\"total\":3001131},"
          "\"progress\":\"[>   ]  36.45kB/3.001MB\",\"id\":\"7c308e232572\"}");
  tsvc_pull_progress(s, &p);
  assert_int_equal(p.bytes_done, 36445);
  assert_int_equal(p.bytes_total, 3001131);
  feed(s, "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":3001131,\"total\":3001131},"
          "\"id\":\"7c308e232572\"}");
  feed(s, "{\"status\":\"Verifying Checksum\",\"progressDetail\":{},\"id\":\"7c308e232572\"}");
  feed(s, "{\"status\":\"Download complete\",\"progressDetail\":{},\"id\":\"7c308e232572\"}");
  /* Extracting counts the same bytes again: not added. */
  feed(s, "{\"status\":\"Extracting\",\"progressDetail\":{\"current\":32768,\"total\":3001131},"
          "\"id\":\"7c308e232572\"}");
  tsvc_pull_progress(s, &p);
  assert_int_equal(p.bytes_done, 3001131);
  assert_int_equal(p.layers_done, 3);
  feed(s, "{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"7c308e232572\"}");
  feed(s, "{\"status\":\"Digest: sha256:55e3d6387520aa24d1b3c263f875ec098d98372b4a5260833c70a141bb5"
          "119ab\"}");
  feed(s, "{\"status\":\"Status: Downloaded newer image for 127.0.0.1:25123/etest/redis2:7\"}");
  tsvc_pull_progress(s, &p);
  assert_int_equal(p.layers, 4);
  assert_int_equal(p.layers_done, 4);
  assert_int_equal(p.bytes_done, 3001131);
  assert_string_equal(s->status, "Downloaded newer image for 127.0.0.1:25123/etest/redis2:7");
  assert_string_equal(s->digest,
                      "sha256:55e3d6387520aa24d1b3c263f875ec098d98372b4a5260833c70a141bb5119ab");
  assert_string_equal(s->error, "");
  /* Garbage is ignored; an error line mid-stream is kept, the first one. */
  assert_false(tsvc_pull_feed(s, "not json", 8));
  assert_false(tsvc_pull_feed(s, "[1,2]", 5));
  feed(s, "{\"errorDetail\":{\"message\":\"unauthorized: authentication required\"},"
          "\"error\":\"unauthorized: authentication required\"}");
  feed(s, "{\"error\":\"later\"}");
  assert_string_equal(s->error, "unauthorized: authentication required");
  free(s);
}

/* More layers than followed: counted, never written past the array. */
static void progress_bounded(void **st) {
  (void)st;
  tsvc_pull_state_t *s = malloc(sizeof *s);
  tsvc_pull_state_init(s);
  char line[256];
  for (int i = 0; i < TSVC_PULL_MAX_LAYERS + 40; i++) {
    snprintf(line, sizeof line, "{\"status\":\"Pulling fs layer\",\"id\":\"layer%06d\"}", i);
    feed(s, line);
  }
  for (int i = 0; i < TSVC_PULL_MAX_LAYERS + 40; i++) {
    snprintf(line, sizeof line, "{\"status\":\"Pull complete\",\"id\":\"layer%06d\"}", i);
    feed(s, line);
  }
  tsvc_pull_progress_t p;
  tsvc_pull_progress(s, &p);
  assert_int_equal(s->nlayers, TSVC_PULL_MAX_LAYERS);
  assert_int_equal(p.layers, TSVC_PULL_MAX_LAYERS + 40);
  assert_int_equal(p.layers_done, TSVC_PULL_MAX_LAYERS + 40);
  free(s);
}

static void expose(void **st) {
  (void)st;
  json_t *one = json_loads("{\"Config\": {\"ExposedPorts\": {\"6379/tcp\": {}}}}", 0, NULL);
  json_t *two = json_loads(
      "{\"Config\": {\"ExposedPorts\": {\"5432/tcp\": {}, \"53/udp\": {}, \"8080/tcp\": {}}}}", 0,
      NULL);
  json_t *none = json_loads("{\"Config\": {\"ExposedPorts\": null}}", 0, NULL);
  char msg[512];
  assert_true(tsvc_expose_hint(one, "redis:7-alpine", 16379, 16379, msg, sizeof msg));
  assert_string_equal(msg, "image redis:7-alpine exposes 6379/tcp; port 16379 is not exposed; "
                           "did you mean \"16379:6379\"?");
  assert_false(tsvc_expose_hint(one, "redis:7-alpine", 6379, 16379, msg, sizeof msg));
  assert_false(tsvc_expose_hint(one, "redis:7-alpine", 6379, 6379, msg, sizeof msg));
  assert_true(tsvc_expose_hint(two, "app", 53, 5353, msg, sizeof msg)); /* 53 is udp only */
  assert_string_equal(msg, "image app exposes 5432/tcp, 8080/tcp; port 53 is not exposed; did you "
                           "mean \"5353:5432\"?");
  assert_false(tsvc_expose_hint(two, "app", 8080, 80, msg, sizeof msg));
  assert_false(tsvc_expose_hint(none, "x", 1, 1, msg, sizeof msg));
  assert_false(tsvc_expose_hint(NULL, "x", 1, 1, msg, sizeof msg));
  json_decref(one);
  json_decref(two);
  json_decref(none);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(refs),           cmocka_unit_test(credentials),
      cmocka_unit_test(credentials_file), cmocka_unit_test(progress_stream),
      cmocka_unit_test(progress_bounded), cmocka_unit_test(expose),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
