/*
 * process: the runtime interface over child processes of the monitor
 * (DESIGN.md section 6), the embedded default where no Docker daemon answers.
 */
#ifndef TSVC_PROCESS_RT_H
#define TSVC_PROCESS_RT_H

#include "runtime/runtime.h"

/* A process runtime for the services of cfg (borrowed), keeping logs, data
   and sockets under state_dir (the project's .tanuki, created when missing).
   Returns 0 and *out, or a negative TSVC_E* with a reason in err. */
int tsvc_process_runtime_new(uv_loop_t *loop, const tsvc_config_t *cfg, const char *state_dir,
                             tsvc_runtime_t **out, char *err, size_t errlen);

#endif
