// Package tanukisvc is the Go client of tanuki-svc, the service health
// monitor: it reads and drives a running monitor (`tanuki-svc up`) through
// its HTTP API (docs/api.md), on the monitor's unix socket or, for reads
// only, on its TCP port.
//
// A Client is safe for use by several goroutines at once. Every call takes a
// context; a call whose context has no deadline gets the CLI's own bound (30 s
// for reads, 2 min for Check, 3 min for Start, Stop and Restart).
//
// Errors: ErrNoMonitor when no monitor answers (no socket file, or nothing
// listening on it: the CLI's "no monitor running"); ErrServiceNotFound for a name
// the monitor does not know; any other refusal is an *APIError carrying the
// API's own message and HTTP status. Test with errors.Is and errors.As.
//
// The package uses the standard library only and needs Go 1.19.
package tanukisvc
