/*
 * manager_stub: the manager functions the HTTP API calls, answering from a
 * world that fuzz_api.c builds from each input (the services' statuses, the
 * error each call returns, the heartbeat's age). Linked only into fuzz_api,
 * instead of src/manager/manager.c, so that the fuzzer decides what the
 * manager says and no service, thread or runtime is involved.
 *
 * Statuses handed out are deep copies the API frees, or snapshots made on a
 * board of their own, as the real ones.
 */
#ifndef TSVC_FUZZ_MANAGER_STUB_H
#define TSVC_FUZZ_MANAGER_STUB_H

#include "tsvc.h"

typedef struct {
  tsvc_status_t *v;   /* owned by the world */
  size_t n;
  int err_status;     /* what get_status / get_all_status return, 0: answer */
  int err_action;     /* what start/stop/restart/check/stop_services/reload return */
  char *err_text;     /* the message those put into err (may be empty) */
  const char *runtime;
  int64_t heartbeat_ms;
  int checks_asked;   /* tsvc_manager_check calls */
} stub_world_t;

/* The world the stub answers from (borrowed; NULL: every call fails). */
void stub_set_world(stub_world_t *w);

/* A manager pointer to hand to the API: the stub ignores it. */
tsvc_manager_t *stub_manager(void);

#endif
