/* errors.c: see errors.h. */
#include "api/errors.h"

#include "common/util.h"
#include "tsvc.h"

/* Indexed by -code. A code appended to TSVC_ERRNO_MAP without a row here
   fails the build (the assertion below). */
static const unsigned short status_of[] = {
    [-TSVC_OK] = 200,
    [-TSVC_ENOMEM] = 500,
    [-TSVC_EINVAL] = 400,        /* a bad request */
    [-TSVC_ECONFIG] = 400,       /* a config file that does not load */
    [-TSVC_ENOENT] = 404,        /* no such service */
    [-TSVC_EBUSY] = 409,         /* another operation is in flight */
    [-TSVC_ERUNTIME] = 502,      /* the runtime (docker, ...) failed it */
    [-TSVC_EUNREACH] = 503,      /* the runtime cannot be reached */
    [-TSVC_EIO] = 500,
    [-TSVC_ESTATE] = 409,        /* no longer returned */
    [-TSVC_ETIMEDOUT] = 504,
    [-TSVC_EEXIST] = 409,
    [-TSVC_ERUNNING] = 409,      /* start of a running service */
    [-TSVC_ENOTMONITORED] = 503, /* nothing is monitored (yet) */
    [-TSVC_ENOTCHECKED] = 409,   /* not checked in its state */
    [-TSVC_EEXTERNAL] = 409,     /* only watched */
    [-TSVC_ECANCELED] = 503,     /* the monitor stopped meanwhile */
    [-TSVC_EDEADLK] = 500,       /* a programming error of the caller */
};

_Static_assert(TSVC_ARRAY_LEN(status_of) == TSVC_ERR__COUNT,
               "every error code needs its HTTP status");

unsigned tsvc_api_status_of(int err) {
  if (err > 0 || -err >= (int)TSVC_ARRAY_LEN(status_of) || !status_of[-err]) return 500;
  return status_of[-err];
}
