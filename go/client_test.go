package tanukisvc_test

// Tests against the real monitor of main_test.go. They run in file order and
// each leaves redis healthy for the next.

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"tanukisvc"
)

func client(t *testing.T) *tanukisvc.Client {
	c := tanukisvc.New(socketPath)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewFromConfigFindsTheMonitor(t *testing.T) {
	// By path, by $TANUKI_CONFIG, and by default (./tanuki.yaml: the tests
	// run in the project directory).
	for _, tc := range []struct{ name, arg, env string }{
		{"path", configPath, ""},
		{"relative path", "tanuki.yaml", ""},
		{"env", "", configPath},
		{"default", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TANUKI_CONFIG", tc.env)
			c, err := tanukisvc.NewFromConfig(tc.arg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := c.GetStatus(ctxT(t), "redis")
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != "redis" || s.Probe != "redis" {
				t.Fatalf("got %+v", s)
			}
		})
	}
	// Through a symbolic link to the config, from another directory: the
	// socket is beside the real file, as the CLI finds it.
	link := filepath.Join(t.TempDir(), "linked.yaml")
	if err := os.Symlink(configPath, link); err != nil {
		t.Fatal(err)
	}
	c, err := tanukisvc.NewFromConfig(link)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.GetAllStatus(ctxT(t)); err != nil {
		t.Fatalf("through a link: %v", err)
	}
	// A config that cannot be read is an error about the file.
	_, err = tanukisvc.NewFromConfig(filepath.Join(project, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing config: %v", err)
	}
}

// A status and the CLI's JSON of the same moment: a status read before and
// after the CLI's with no check, change of state or restart in between.
func stableStatus(t *testing.T, c *tanukisvc.Client, name string, args ...string) (*tanukisvc.HealthStatus, []byte) {
	t.Helper()
	for i := 0; i < 20; i++ {
		a, err := c.GetStatus(ctxT(t), name)
		if err != nil {
			t.Fatal(err)
		}
		out := cli(t, args...)
		b, err := c.GetStatus(ctxT(t), name)
		if err != nil {
			t.Fatal(err)
		}
		if a.ChecksTotal == b.ChecksTotal && a.State == b.State && a.Since.Equal(b.Since) &&
			a.Restarts == b.Restarts && a.PID == b.PID {
			return a, out
		}
	}
	t.Fatalf("%s kept changing", name)
	return nil, nil
}

// The API's Service fields and where the Go status has them.
var serviceFields = []string{"name", "state", "healthy", "running", "enabled", "external", "probe",
	"container", "pid", "since", "last_check", "last_healthy", "next_check", "consecutive_failures",
	"consecutive_successes", "retries", "success_threshold", "checks_total", "failures_total",
	"restarts_total", "restarts_in_window", "max_restarts", "last_error", "last_latency_ms",
	"checks_by_result", "history", "probe_via", "probe_address", "waiting_for", "wait_until",
	"session"}

func jsonTime(t *testing.T, v any) time.Time {
	t.Helper()
	if v == nil {
		return time.Time{}
	}
	tm, err := time.Parse("2006-01-02T15:04:05.000Z", v.(string))
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func jsonInt(v any) int {
	if v == nil {
		return 0
	}
	return int(v.(float64))
}

func jsonStr(v any) string {
	if v == nil {
		return ""
	}
	return v.(string)
}

// sameMillis compares a duration with the API's milliseconds.
func sameMillis(d time.Duration, ms float64) bool {
	return math.Abs(float64(d)/float64(time.Millisecond)-ms) < 0.0005
}

// compareStatus checks every field of s against the CLI's JSON object m.
func compareStatus(t *testing.T, m map[string]any, s *tanukisvc.HealthStatus) {
	t.Helper()
	known := map[string]bool{}
	for _, f := range serviceFields {
		known[f] = true
	}
	for k := range m {
		if !known[k] {
			t.Errorf("status --json has a field %q that the Go status does not carry", k)
		}
	}
	type pair struct {
		field     string
		got, want any
	}
	var container any
	if s.Container != nil {
		container = map[string]any{"id": s.Container.ID, "name": s.Container.Name}
	}
	var session any
	if se := s.Session; se != nil {
		var lastErr any
		if se.LastError != "" {
			lastErr = se.LastError
		}
		session = map[string]any{"held": se.Held, "connects": se.Connects,
			"held_checks": se.HeldChecks, "full_checks": se.FullChecks, "last_error": lastErr}
	}
	byResult := map[string]any{}
	for k, v := range s.ChecksByResult {
		byResult[k] = float64(v)
	}
	pairs := []pair{
		{"name", s.Name, m["name"]},
		{"state", s.State, m["state"]},
		{"healthy", s.Healthy, m["healthy"]},
		{"running", s.Running, m["running"]},
		{"enabled", s.Enabled, m["enabled"]},
		{"external", s.External, m["external"]},
		{"probe", s.Probe, m["probe"]},
		{"container", container, m["container"]},
		{"pid", s.PID, jsonInt(m["pid"])},
		{"since", s.Since, jsonTime(t, m["since"])},
		{"last_check", s.LastCheck, jsonTime(t, m["last_check"])},
		{"last_healthy", s.LastHealthy, jsonTime(t, m["last_healthy"])},
		{"next_check", s.NextCheck, jsonTime(t, m["next_check"])},
		{"consecutive_failures", s.FailureCount, jsonInt(m["consecutive_failures"])},
		{"consecutive_successes", s.ConsecutiveSuccesses, jsonInt(m["consecutive_successes"])},
		{"retries", s.Retries, jsonInt(m["retries"])},
		{"success_threshold", s.SuccessThreshold, jsonInt(m["success_threshold"])},
		{"checks_total", s.ChecksTotal, jsonInt(m["checks_total"])},
		{"failures_total", s.FailuresTotal, jsonInt(m["failures_total"])},
		{"restarts_total", s.Restarts, jsonInt(m["restarts_total"])},
		{"restarts_in_window", s.RestartsInWindow, jsonInt(m["restarts_in_window"])},
		{"max_restarts", s.MaxRestarts, jsonInt(m["max_restarts"])},
		{"last_error", s.Error, jsonStr(m["last_error"])},
		{"last_latency_ms (present)", s.HasLatency, m["last_latency_ms"] != nil},
		{"checks_by_result", byResult, m["checks_by_result"]},
		{"probe_via", s.ProbeVia, jsonStr(m["probe_via"])},
		{"probe_address", s.ProbeAddress, jsonStr(m["probe_address"])},
		{"waiting_for", s.WaitingFor, m["waiting_for"]},
		{"wait_until", s.WaitUntil, jsonTime(t, m["wait_until"])},
		{"session", session, m["session"]},
	}
	for _, p := range pairs {
		g, _ := json.Marshal(p.got)
		w, _ := json.Marshal(p.want)
		if string(g) != string(w) {
			t.Errorf("%s %s: Go %s, status --json %s", s.Name, p.field, g, w)
		}
	}
	if ms, ok := m["last_latency_ms"].(float64); ok && !sameMillis(s.LastLatency, ms) {
		t.Errorf("%s last_latency_ms: Go %v, status --json %v ms", s.Name, s.LastLatency, ms)
	}
	hist, _ := m["history"].([]any)
	if len(hist) != len(s.History) {
		t.Fatalf("%s history: Go has %d checks, status --json %d", s.Name, len(s.History), len(hist))
	}
	for i, h := range hist {
		r, g := h.(map[string]any), s.History[i]
		exit := -1
		if r["exit_code"] != nil {
			exit = jsonInt(r["exit_code"])
		}
		if !g.Start.Equal(jsonTime(t, r["start"])) || !g.End.Equal(jsonTime(t, r["end"])) ||
			g.Result != r["result"] || g.Message != jsonStr(r["message"]) ||
			g.Output != jsonStr(r["output"]) || g.ExitCode != exit ||
			g.ProbeAddress != jsonStr(r["probe_address"]) ||
			!sameMillis(g.Latency, r["latency_ms"].(float64)) {
			t.Errorf("%s history[%d]: Go %+v, status --json %v", s.Name, i, g, r)
		}
	}
}

func TestStatusMatchesCLI(t *testing.T) {
	c := client(t)
	// One service, with its history.
	s, out := stableStatus(t, c, "redis", "status", "redis", "--json")
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("status redis --json: %v: %s", err, out)
	}
	compareStatus(t, m, s)
	if !s.Healthy || s.State != "healthy" || s.PID <= 0 || len(s.History) == 0 ||
		s.History[len(s.History)-1].Result != "ok" || s.History[len(s.History)-1].Message != "PONG" {
		t.Fatalf("redis: %+v", s)
	}
	track(s.PID)

	// Every service, without histories.
	for i := 0; ; i++ {
		before, err := c.GetAllStatus(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		out := cli(t, "status", "--json")
		after, err := c.GetAllStatus(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Runtime  string           `json:"runtime"`
			Services []map[string]any `json:"services"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("status --json: %v: %s", err, out)
		}
		stable := len(before) == len(after)
		for name, b := range before {
			if a := after[name]; a == nil || a.ChecksTotal != b.ChecksTotal || a.State != b.State {
				stable = false
			}
		}
		if !stable && i < 20 {
			continue
		}
		if list.Runtime != "process" {
			t.Errorf("runtime %q", list.Runtime)
		}
		var names []string
		for name := range before {
			names = append(names, name)
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "ghost,redis" || len(list.Services) != 2 {
			t.Fatalf("services %v, status --json %d", names, len(list.Services))
		}
		for _, m := range list.Services {
			s := before[m["name"].(string)]
			if s == nil {
				t.Fatalf("no Go status for %v", m["name"])
			}
			if s.History != nil {
				t.Errorf("%s: GetAllStatus has a history", s.Name)
			}
			compareStatus(t, m, s)
		}
		if !before["ghost"].External {
			t.Errorf("ghost is not external")
		}
		break
	}
}

func TestErrors(t *testing.T) {
	c := client(t)
	ctx := ctxT(t)

	// An unknown service: ErrServiceNotFound, with the API's message.
	_, err := c.GetStatus(ctx, "nope")
	var ae *tanukisvc.APIError
	if !errors.Is(err, tanukisvc.ErrServiceNotFound) || !errors.As(err, &ae) || ae.Status != 404 ||
		ae.Message != "no service named 'nope'" {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := c.Restart(ctx, "nope"); !errors.Is(err, tanukisvc.ErrServiceNotFound) {
		t.Fatalf("restart of an unknown service: %v", err)
	}
	if c.IsHealthy(ctx, "nope") {
		t.Fatal("IsHealthy of an unknown service")
	}
	// A name is one path segment, whatever it holds.
	for _, name := range []string{"a/b", "re dis", "../redis", "redis?x=1", "%72edis"} {
		if _, err := c.GetStatus(ctx, name); !errors.Is(err, tanukisvc.ErrServiceNotFound) {
			t.Errorf("GetStatus(%q): %v", name, err)
		}
	}
	if _, err := c.GetStatus(ctx, ""); err == nil || !strings.Contains(err.Error(), "empty service name") {
		t.Fatalf("empty name: %v", err)
	}

	// A refusal carries the API's words and is not "not found".
	_, err = c.Restart(ctx, "ghost")
	if !errors.As(err, &ae) || ae.Status != 409 || !strings.Contains(ae.Message, "external") ||
		errors.Is(err, tanukisvc.ErrServiceNotFound) || errors.Is(err, tanukisvc.ErrNoMonitor) {
		t.Fatalf("restart of an external service: %v", err)
	}
	if !strings.Contains(err.Error(), "restart ghost") || !strings.Contains(err.Error(), ae.Message) {
		t.Fatalf("the error names the operation and carries the message: %v", err)
	}

	// No monitor: no socket file; a socket file nobody listens on; a TCP
	// port nobody listens on.
	dir := t.TempDir()
	none := filepath.Join(dir, "none.sock")
	_, err = tanukisvc.New(none).GetAllStatus(ctx)
	if !errors.Is(err, tanukisvc.ErrNoMonitor) || !strings.Contains(err.Error(), none) {
		t.Fatalf("no socket: %v", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := tanukisvc.New(stale).GetStatus(ctx, "redis"); !errors.Is(err, tanukisvc.ErrNoMonitor) {
		t.Fatalf("stale socket: %v", err)
	}
	if tanukisvc.New(stale).IsHealthy(ctx, "redis") {
		t.Fatal("IsHealthy without a monitor")
	}
	if _, err := tanukisvc.New(stale).Events(ctx); !errors.Is(err, tanukisvc.ErrNoMonitor) {
		t.Fatalf("events, stale socket: %v", err)
	}
	closed := net.JoinHostPort("127.0.0.1", itoa(freePort()))
	if _, err := tanukisvc.NewTCP(closed).GetAllStatus(ctx); !errors.Is(err, tanukisvc.ErrNoMonitor) {
		t.Fatalf("closed TCP port: %v", err)
	}
	// Something that is not a socket is another matter, as for the CLI.
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = tanukisvc.New(file).GetAllStatus(ctx)
	if err == nil || errors.Is(err, tanukisvc.ErrNoMonitor) || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("a regular file: %v", err)
	}
	// A context that ends is the context's error.
	short, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-short.Done()
	if _, err := c.GetAllStatus(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired context: %v", err)
	}
}

func TestTCPIsReadOnly(t *testing.T) {
	c := tanukisvc.NewTCP(apiAddr)
	defer c.Close()
	ctx := ctxT(t)
	all, err := c.GetAllStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all["redis"] == nil || !all["redis"].Healthy {
		t.Fatalf("over TCP: %v", all)
	}
	if s, err := c.GetStatus(ctx, "redis"); err != nil || len(s.History) == 0 {
		t.Fatalf("GetStatus over TCP: %v %v", s, err)
	}
	_, err = c.Restart(ctx, "redis")
	var ae *tanukisvc.APIError
	if !errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(ae.Message, "unix socket") {
		t.Fatalf("restart over TCP: %v", err)
	}
}

func TestCheck(t *testing.T) {
	c := client(t)
	ctx := ctxT(t)
	before, err := c.GetStatus(ctx, "redis")
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Check(ctx, "redis")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Healthy || s.ChecksTotal <= before.ChecksTotal || s.History != nil {
		t.Fatalf("check redis: before %d checks, after %+v", before.ChecksTotal, s)
	}
	// A failed check: its verdict and its message.
	s, err = c.Check(ctx, "ghost")
	if err != nil {
		t.Fatal(err)
	}
	if s.Healthy || s.FailureCount < 1 || !strings.Contains(s.Error, "refused") {
		t.Fatalf("check ghost: %+v", s)
	}
	g, err := c.GetStatus(ctx, "ghost")
	if err != nil {
		t.Fatal(err)
	}
	last := g.History[len(g.History)-1]
	if last.Result != "refused" || last.ExitCode != -1 || !last.End.After(last.Start.Add(-time.Millisecond)) {
		t.Fatalf("ghost's last check: %+v", last)
	}
}

// next reads one event, or fails after limit.
func next(t *testing.T, ch <-chan tanukisvc.Event, limit time.Duration) tanukisvc.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(limit):
		t.Fatalf("no event within %v", limit)
	}
	return tanukisvc.Event{}
}

// untilEvent reads events until one of service to state "to", and returns
// the states entered on the way.
func untilEvent(t *testing.T, ch <-chan tanukisvc.Event, service, to string) ([]string, tanukisvc.Event) {
	t.Helper()
	var seen []string
	for {
		// A restart of redis takes well under a second when idle; the
		// bound is for a loaded machine under a sanitizer build.
		ev := next(t, ch, 60*time.Second)
		if ev.Service != service {
			continue
		}
		seen = append(seen, ev.From+">"+ev.To)
		if ev.To == to {
			return seen, ev
		}
	}
}

func TestRestartShowsInEvents(t *testing.T) {
	c := client(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	before, err := c.GetStatus(ctx, "redis")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	s, err := c.Restart(ctx, "redis")
	if err != nil {
		t.Fatal(err)
	}
	// The reply is read once the restart is done: the new pid is in it
	// (issue 11: it carried the old one for a moment).
	if s.State != "starting" || s.Restarts != before.Restarts+1 || s.PID <= 0 || s.PID == before.PID {
		t.Fatalf("after the restart: %+v (before: restarts %d, pid %d)", s, before.Restarts, before.PID)
	}
	track(s.PID)
	// Every change is told, the one into restarting too (issue 11: it was
	// left out).
	seen, ev := untilEvent(t, ch, "redis", "starting")
	if strings.Join(seen, " ") != "healthy>restarting restarting>starting" || ev.Reason != "restarted" {
		t.Fatalf("events: %v, last %+v", seen, ev)
	}
	if ev.Time.Before(t0.Add(-time.Second)) || ev.Retries != before.Retries || ev.MaxRestarts != before.MaxRestarts {
		t.Fatalf("event: %+v", ev)
	}
	seen, ev = untilEvent(t, ch, "redis", "healthy")
	if strings.Join(seen, " ") != "starting>healthy" || ev.Reason != "first successful check" {
		t.Fatalf("events: %v, last %+v", seen, ev)
	}
	after, err := c.GetStatus(ctx, "redis")
	if err != nil {
		t.Fatal(err)
	}
	track(after.PID)
	if !after.Healthy || after.PID == before.PID || after.PID <= 0 {
		t.Fatalf("after the restart: healthy %v, pid %d (was %d)", after.Healthy, after.PID, before.PID)
	}
}

func TestStopAndStart(t *testing.T) {
	c := client(t)
	ctx := ctxT(t)
	s, err := c.Stop(ctx, "redis")
	if err != nil {
		t.Fatal(err)
	}
	if s.State != "stopped" || s.Healthy || s.Running {
		t.Fatalf("after stop: %+v", s)
	}
	if c.IsHealthy(ctx, "redis") {
		t.Fatal("healthy while stopped")
	}
	_, err = c.Check(ctx, "redis")
	var ae *tanukisvc.APIError
	if !errors.As(err, &ae) || ae.Status != 409 || !strings.Contains(ae.Message, "stopped") {
		t.Fatalf("check of a stopped service: %v", err)
	}
	if s, err = c.Start(ctx, "redis"); err != nil {
		t.Fatal(err)
	}
	if s.State != "starting" {
		t.Fatalf("after start: %+v", s)
	}
	// start_interval is 1 s: healthy at the first check after it.
	waitFor(t, "redis healthy again", 60*time.Second, func() bool { return c.IsHealthy(ctx, "redis") })
	if s, err = c.GetStatus(ctx, "redis"); err != nil || s.PID <= 0 || !s.Running {
		t.Fatalf("after start: %+v, %v", s, err)
	}
	track(s.PID)
}

func TestKilledRedisTurnsUnhealthyThenHealthy(t *testing.T) {
	c := client(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	s, err := c.GetStatus(ctx, "redis")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Healthy || s.PID <= 0 {
		t.Fatalf("before: %+v", s)
	}
	ch, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The monitor hears of the exit at once and restarts at once; the first
	// check after the restart waits start_interval (1 s), so the false is
	// there for a poll every 20 ms to see.
	waitFor(t, "IsHealthy false", 30*time.Second, func() bool { return !c.IsHealthy(ctx, "redis") })
	waitFor(t, "IsHealthy true", 60*time.Second, func() bool { return c.IsHealthy(ctx, "redis") })

	seen, ev := untilEvent(t, ch, "redis", "unhealthy")
	if strings.Join(seen, " ") != "healthy>unhealthy" || ev.Reason != "killed by signal 9" {
		t.Fatalf("events: %v, last %+v", seen, ev)
	}
	seen, _ = untilEvent(t, ch, "redis", "healthy")
	if strings.Join(seen, " ") != "unhealthy>restarting restarting>starting starting>healthy" {
		t.Fatalf("events: %v", seen)
	}
	after, err := c.GetStatus(ctx, "redis")
	if err != nil {
		t.Fatal(err)
	}
	track(after.PID)
	if after.PID == s.PID || after.Restarts != s.Restarts+1 {
		t.Fatalf("after: pid %d (was %d), restarts %d (was %d)", after.PID, s.PID, after.Restarts, s.Restarts)
	}
	if err := syscall.Kill(s.PID, 0); err == nil {
		t.Fatalf("the killed redis %d is still there", s.PID)
	}
}

func TestEventsEndWithTheContext(t *testing.T) {
	c := client(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := c.Events(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			// No change is due now: nothing is restarting or checked.
			t.Fatal("an event after the context ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the channel is still open 10 s after the context ended")
	}
}
