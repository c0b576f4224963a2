/* manager.h: what the program and the tests need of the manager beyond
   tsvc.h. */
#ifndef TSVC_MANAGER_INT_H
#define TSVC_MANAGER_INT_H

#include "config/config.h"
#include "manager/hooks.h"
#include "tsvc.h"

/* Every hook's runs, failures and drops by kind (for /metrics); any
   thread. */
void tsvc_manager_hook_totals(tsvc_manager_t *m, tsvc_hook_totals_t *out);

/* For tests: hold the loop thread for ms (it sleeps there), as a stuck
   loop would; returns once the loop has begun to wait. */
int tsvc_manager_debug_stall(tsvc_manager_t *m, int64_t ms);

/* For tests: how many configs are alive in this process (loaded by
   managers and not yet freed: in use, or still read by an operation in
   flight). */
int tsvc_manager_debug_configs(void);

/* tsvc_manager_snapshot without the statuses unpacked
   (tsvc_board_snapshot_packed): read a service at a time with
   tsvc_snapshot_snap and tsvc_snap_status. */
int tsvc_manager_snapshot_packed(tsvc_manager_t *m, tsvc_snapshot_t **out);

#endif
