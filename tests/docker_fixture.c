/* docker_fixture.c: see docker_fixture.h. */
#include "docker_fixture.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "servers.h"
#include "testutil.h"

const char *tu_docker_missing(const char *images, char *why, size_t len) {
  char out[1024];
  if (tu_sh(NULL, 0, "command -v docker") != 0)
    snprintf(why, len, "the docker CLI is not installed");
  else if (tu_sh(NULL, 0, "curl -fsS --max-time 3 --unix-socket /var/run/docker.sock "
                          "http://x/_ping") != 0)
    snprintf(why, len, "no Docker engine answers on /var/run/docker.sock");
  else if (images && tu_sh(out, sizeof out, "timeout 20 docker image inspect -f ok %s", images))
    snprintf(why, len, "image missing (scripts/images.sh): %.400s", out);
  else return NULL;
  return why;
}

void tu_need_docker(bool ok, const char *why) {
  if (ok) return;
  const char *req = getenv("TSVC_REQUIRE_DOCKER");
  if (req && strcmp(req, "1") == 0) fail_msg("TSVC_REQUIRE_DOCKER=1 but %s", why);
  print_message("(scripts/deps.sh --test, scripts/docker-up.sh and scripts/images.sh)\n");
  tu_skip(why);
}

void tu_docker_rm_prefixed(const char *prefix) {
  char ids[8192];
  tu_sh(ids, sizeof ids, "docker ps -aq --filter 'name=^/%s'", prefix);
  for (char *id = strtok(ids, "\n"); id; id = strtok(NULL, "\n"))
    tu_sh(NULL, 0, "docker rm -f -v %s", id);
}

tsvc_manager_t *tu_manager_new(const char *path) {
  char err[4096];
  tsvc_manager_opts_t o = {.config_path = path};
  tsvc_manager_t *m = NULL;
  int rc = tsvc_manager_new(&o, &m, err, sizeof err);
  if (rc) fail_msg("tsvc_manager_new: %s: %s", tsvc_strerror(rc), err);
  return m;
}

void tu_manager_start(tsvc_manager_t *m) {
  char err[4096];
  int rc = tsvc_manager_start_services(m, err, sizeof err);
  if (rc) fail_msg("start_services: %s: %s", tsvc_strerror(rc), err);
}

tsvc_status_t tu_status(tsvc_manager_t *m, const char *name) {
  tsvc_status_t st;
  int rc = tsvc_manager_get_status(m, name, &st);
  if (rc) fail_msg("get_status(%s): %s", name, tsvc_strerror(rc));
  return st;
}

tsvc_state_t tu_state(tsvc_manager_t *m, const char *name) {
  tsvc_status_t st = tu_status(m, name);
  tsvc_state_t s = st.state;
  tsvc_status_clear(&st);
  return s;
}

void tu_wait_state(tsvc_manager_t *m, const char *name, tsvc_state_t want, int ms,
                   bool (*heard)(void *arg, const char *name, tsvc_state_t want), void *arg) {
  int64_t end = tsvc_mono_ms() + ms;
  for (;;) {
    tsvc_status_t st = tu_status(m, name);
    bool ok = st.state == want && (!heard || heard(arg, name, want));
    if (!ok && tsvc_mono_ms() > end)
      fail_msg("%s: still %s after %d ms, not %s (last error: %s)", name,
               tsvc_state_name(st.state), ms, tsvc_state_name(want), st.last_error);
    tsvc_status_clear(&st);
    if (ok) return;
    tu_sleep_ms(50);
  }
}
