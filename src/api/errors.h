/*
 * errors: the one table from tsvc error codes to HTTP statuses. Every reply
 * of the API for a failed call takes its status from here (docs/api.md,
 * "Errors"), so that one code always answers with one status.
 */
#ifndef TSVC_API_ERRORS_H
#define TSVC_API_ERRORS_H

/* The HTTP status for err (0 or a negative TSVC_E* code); 500 for a code
   that is not in the table. */
unsigned tsvc_api_status_of(int err);

#endif
