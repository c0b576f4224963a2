/*
 * docker_fixture: what the tests of a manager on the Docker engine share
 * (test_docker_scenarios, test_remote, test_registry, test_docker_depends):
 * whether the engine can be used, removing what a test created, and a
 * manager's status waited for (shell commands: tu_sh, testutil.h). Each
 * function that takes a manager fails the running test (cmocka) with the
 * library's message instead of returning an error.
 */
#ifndef TSVC_DOCKER_FIXTURE_H
#define TSVC_DOCKER_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/util.h"
#include "tsvc.h"

/* Why the Docker engine cannot be used here, in why: the docker CLI is
 * missing, no engine answers on /var/run/docker.sock, or one of images
 * (names separated by spaces; NULL: none) is not there. NULL when it can. */
const char *tu_docker_missing(const char *images, char *why, size_t len);

/* When the engine cannot be used (ok false, for the reason why): under CI
 * (TSVC_REQUIRE_DOCKER=1, set by scripts/test.sh) fail the running test,
 * else skip it (tu_skip). Returns when ok. */
void tu_need_docker(bool ok, const char *why);

/* Remove every container whose name begins with prefix, with its anonymous
 * volumes (docker rm -f -v; named volumes stay). */
void tu_docker_rm_prefixed(const char *prefix);

/* A manager on the config file at path (tsvc_manager_new). */
tsvc_manager_t *tu_manager_new(const char *path);
/* tsvc_manager_start_services. */
void tu_manager_start(tsvc_manager_t *m);
/* name's status; the caller clears it (tsvc_status_clear). */
tsvc_status_t tu_status(tsvc_manager_t *m, const char *name);
tsvc_state_t tu_state(tsvc_manager_t *m, const char *name);
/* Wait until name is in state want and heard(arg, name, want) says yes too
 * (heard may be NULL), polling every 50 ms; after ms, fail with the state
 * and the last error. */
void tu_wait_state(tsvc_manager_t *m, const char *name, tsvc_state_t want, int ms,
                   bool (*heard)(void *arg, const char *name, tsvc_state_t want), void *arg);

#endif
