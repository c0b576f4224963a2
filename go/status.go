package tanukisvc

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"
)

// HealthStatus is one service as the monitor sees it (the API's Service
// object, docs/api.md). Times are UTC with millisecond precision; a zero time
// means "never".
type HealthStatus struct {
	Name string

	// The request's HealthMonitor fields.
	Healthy      bool      // the last checks passed
	LastCheck    time.Time // end of the last check
	LastHealthy  time.Time // last successful check
	FailureCount int       // failed checks in a row (consecutive_failures)
	Error        string    // the last failure's message, secrets masked; "" if none

	State    string    // starting, healthy, unhealthy, restarting, failed, stopped, unknown
	Restarts int       // restarts so far, by the monitor or asked for (restarts_total)
	Since    time.Time // the last change of state

	// History holds the last healthcheck.history checks, oldest first. Only
	// GetStatus fills it (the API sends histories for one service at a time);
	// it is nil in the statuses of GetAllStatus and of the actions.
	History []Check

	Running  bool   // the container or process runs, as the runtime last said
	Enabled  bool   // enabled in the config
	External bool   // only watched: never started, stopped or restarted
	Probe    string // postgres, redis, tcp, http, exec or running
	// Container is the container's id and name under the docker runtime
	// (the process runtime reports its own name for the process); nil if none.
	Container *Container
	PID       int // the main process under the process runtime; 0 if none

	NextCheck            time.Time
	ConsecutiveSuccesses int
	Retries              int // failures in a row before unhealthy (config)
	SuccessThreshold     int // successes in a row before healthy again (config)
	ChecksTotal          int
	FailuresTotal        int
	RestartsInWindow     int // restarts within restart.window
	MaxRestarts          int // restarts within the window before failed (config)
	// LastLatency is the last check's duration; HasLatency is false when no
	// check has run yet.
	LastLatency time.Duration
	HasLatency  bool
	// ChecksByResult counts checks by result code: ok, refused, timeout,
	// reset, protocol_error, bad_status, not_running, exec_failed,
	// runtime_error.
	ChecksByResult map[string]int

	// ProbeVia says how checks reach the service (container, published,
	// exec, address, command, host; docs/remote.md) and ProbeAddress where
	// they go; both "" before the first check is prepared.
	ProbeVia     string
	ProbeAddress string
	// WaitingFor lists the depends_on conditions a held (re)start waits for
	// (empty when none); WaitUntil is when that wait gives up (zero if none).
	WaitingFor []Wait
	WaitUntil  time.Time
	// Session is the held connection of a service with healthcheck.session;
	// nil for the others.
	Session *Session
}

// Wait is one depends_on condition a held start waits for.
type Wait struct {
	Service   string `json:"service"`   // the dependency
	Condition string `json:"condition"` // service_started or service_healthy
	State     string `json:"state"`     // the dependency's state now
}

// Session is a service's held probe connection (healthcheck.session).
type Session struct {
	Held       bool   `json:"held"`        // a connection is held now
	Connects   int    `json:"connects"`    // connections opened so far
	HeldChecks int    `json:"held_checks"` // checks answered on a held connection
	FullChecks int    `json:"full_checks"` // checks decided by the full probe
	LastError  string `json:"-"`           // why the last connection closed; "" if none
}

// Container names a service's container.
type Container struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Check is one probe run of a service's history.
type Check struct {
	Start   time.Time
	End     time.Time
	Result  string // ok, refused, timeout, ... (as ChecksByResult)
	Latency time.Duration
	Message string
	// ExitCode is the exit status of an exec probe's command; -1 for the
	// other probes.
	ExitCode int
	Output   string // an exec probe's output (last 4 KiB); "" otherwise
	// ProbeAddress is where this check went ("" when not recorded).
	ProbeAddress string
}

// apiTime is an API time: RFC 3339 in UTC, or null for never.
type apiTime struct{ t time.Time }

func (a *apiTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		a.t = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a time must be a string or null, got %s", b)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("bad time %q: %w", s, err)
	}
	a.t = t
	return nil
}

// millis converts the API's milliseconds (a JSON number) to a Duration.
func millis(ms float64) time.Duration {
	return time.Duration(math.Round(ms * float64(time.Millisecond)))
}

// wireService is the API's Service object as sent.
type wireService struct {
	Name                 string         `json:"name"`
	State                string         `json:"state"`
	Healthy              bool           `json:"healthy"`
	Running              bool           `json:"running"`
	Enabled              bool           `json:"enabled"`
	External             bool           `json:"external"`
	Probe                string         `json:"probe"`
	Container            *Container     `json:"container"`
	PID                  *int           `json:"pid"`
	Since                apiTime        `json:"since"`
	LastCheck            apiTime        `json:"last_check"`
	LastHealthy          apiTime        `json:"last_healthy"`
	NextCheck            apiTime        `json:"next_check"`
	ConsecutiveFailures  int            `json:"consecutive_failures"`
	ConsecutiveSuccesses int            `json:"consecutive_successes"`
	Retries              int            `json:"retries"`
	SuccessThreshold     int            `json:"success_threshold"`
	ChecksTotal          int            `json:"checks_total"`
	FailuresTotal        int            `json:"failures_total"`
	RestartsTotal        int            `json:"restarts_total"`
	RestartsInWindow     int            `json:"restarts_in_window"`
	MaxRestarts          int            `json:"max_restarts"`
	LastError            *string        `json:"last_error"`
	LastLatencyMs        *float64       `json:"last_latency_ms"`
	ChecksByResult       map[string]int `json:"checks_by_result"`
	History              []wireCheck    `json:"history"`
	ProbeVia             *string        `json:"probe_via"`
	ProbeAddress         *string        `json:"probe_address"`
	WaitingFor           []Wait         `json:"waiting_for"`
	WaitUntil            apiTime        `json:"wait_until"`
	Session              *wireSession   `json:"session"`
}

type wireSession struct {
	Session
	LastError *string `json:"last_error"`
}

type wireCheck struct {
	Start     apiTime `json:"start"`
	End       apiTime `json:"end"`
	Result    string  `json:"result"`
	ExitCode  *int    `json:"exit_code"`
	LatencyMs float64 `json:"latency_ms"`
	Message   *string `json:"message"`
	Output    *string `json:"output"`
	Address   *string `json:"probe_address"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (w *wireService) status() *HealthStatus {
	s := &HealthStatus{
		Name:                 w.Name,
		Healthy:              w.Healthy,
		LastCheck:            w.LastCheck.t,
		LastHealthy:          w.LastHealthy.t,
		FailureCount:         w.ConsecutiveFailures,
		Error:                str(w.LastError),
		State:                w.State,
		Restarts:             w.RestartsTotal,
		Since:                w.Since.t,
		Running:              w.Running,
		Enabled:              w.Enabled,
		External:             w.External,
		Probe:                w.Probe,
		Container:            w.Container,
		NextCheck:            w.NextCheck.t,
		ConsecutiveSuccesses: w.ConsecutiveSuccesses,
		Retries:              w.Retries,
		SuccessThreshold:     w.SuccessThreshold,
		ChecksTotal:          w.ChecksTotal,
		FailuresTotal:        w.FailuresTotal,
		RestartsInWindow:     w.RestartsInWindow,
		MaxRestarts:          w.MaxRestarts,
		ChecksByResult:       w.ChecksByResult,
		ProbeVia:             str(w.ProbeVia),
		ProbeAddress:         str(w.ProbeAddress),
		WaitingFor:           w.WaitingFor,
		WaitUntil:            w.WaitUntil.t,
	}
	if w.Session != nil {
		se := w.Session.Session
		se.LastError = str(w.Session.LastError)
		s.Session = &se
	}
	if w.PID != nil {
		s.PID = *w.PID
	}
	if w.LastLatencyMs != nil {
		s.LastLatency, s.HasLatency = millis(*w.LastLatencyMs), true
	}
	if w.History != nil {
		s.History = make([]Check, len(w.History))
		for i, h := range w.History {
			s.History[i] = Check{Start: h.Start.t, End: h.End.t, Result: h.Result,
				Latency: millis(h.LatencyMs), Message: str(h.Message), ExitCode: -1,
				Output: str(h.Output), ProbeAddress: str(h.Address)}
			if h.ExitCode != nil {
				s.History[i].ExitCode = *h.ExitCode
			}
		}
	}
	return s
}

// GetStatus returns the status of the service name, with its History. An
// unknown name gives an error matching ErrServiceNotFound.
func (c *Client) GetStatus(ctx context.Context, name string) (*HealthStatus, error) {
	op := "status " + name
	if err := checkName(op, name); err != nil {
		return nil, err
	}
	var w wireService
	if err := c.call(ctx, op, http.MethodGet, servicePath(name, ""), true, readTimeout, &w); err != nil {
		return nil, err
	}
	return w.status(), nil
}

// GetAllStatus returns every service of the monitor's config by name
// (without histories).
func (c *Client) GetAllStatus(ctx context.Context) (map[string]*HealthStatus, error) {
	var v struct {
		Services []wireService `json:"services"`
	}
	if err := c.call(ctx, "status", http.MethodGet, "/v1/services", false, readTimeout, &v); err != nil {
		return nil, err
	}
	m := make(map[string]*HealthStatus, len(v.Services))
	for i := range v.Services {
		s := v.Services[i].status()
		m[s.Name] = s
	}
	return m, nil
}

// IsHealthy reports whether the service name is healthy now. It is false
// on any error (no monitor, unknown name, a timeout): use GetStatus to tell
// these apart.
func (c *Client) IsHealthy(ctx context.Context, name string) bool {
	s, err := c.GetStatus(ctx, name)
	return err == nil && s.Healthy
}

// action POSTs /v1/services/NAME/ACTION and returns the status it answers.
func (c *Client) action(ctx context.Context, name, action string, bound time.Duration) (*HealthStatus, error) {
	op := action + " " + name
	if err := checkName(op, name); err != nil {
		return nil, err
	}
	var v struct {
		Status *wireService `json:"status"`
	}
	if err := c.call(ctx, op, http.MethodPost, servicePath(name, action), true, bound, &v); err != nil {
		return nil, err
	}
	if v.Status == nil {
		// Done, but the service was gone when the monitor looked again (a
		// reload removed it meanwhile).
		return nil, nil
	}
	return v.Status.status(), nil
}

// Start starts the service name (as `tanuki-svc start` does), waits for the
// runtime to answer, and returns the service's status then (it is checked
// from now on: State "starting"). A refusal (an external service, an
// operation in flight) or a runtime failure is an *APIError with the
// monitor's message. The status is nil if the service vanished meanwhile.
func (c *Client) Start(ctx context.Context, name string) (*HealthStatus, error) {
	return c.action(ctx, name, "start", actionTimeout)
}

// Stop stops the service name; the monitor leaves it "stopped" (never
// restarted) until Start or Restart. Returns as Start does.
func (c *Client) Stop(ctx context.Context, name string) (*HealthStatus, error) {
	return c.action(ctx, name, "stop", actionTimeout)
}

// Restart restarts the service name (always, even when it has "failed":
// that is cleared). Returns as Start does.
func (c *Client) Restart(ctx context.Context, name string) (*HealthStatus, error) {
	return c.action(ctx, name, "restart", actionTimeout)
}

// Check runs the service's probe now, waits for its verdict and returns the
// status that follows from it (ChecksTotal counts it; History is nil: use
// GetStatus for the check itself). A stopped service is not checked: an
// *APIError of status 409.
func (c *Client) Check(ctx context.Context, name string) (*HealthStatus, error) {
	return c.action(ctx, name, "check", checkTimeout)
}
