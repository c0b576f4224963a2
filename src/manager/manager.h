/* manager.h: what the program needs of the manager beyond tsvc.h. */
#ifndef TSVC_MANAGER_INT_H
#define TSVC_MANAGER_INT_H

#include "config/config.h"
#include "tsvc.h"

/* The loaded config (owned by the manager, valid until it is freed). */
const tsvc_config_t *tsvc_manager_config(tsvc_manager_t *m);

#endif
