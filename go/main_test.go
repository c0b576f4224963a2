package tanukisvc_test

// The fixture of every test and example of the package: a real monitor,
// `tanuki-svc up` on the process runtime, running a real redis-server on a
// free loopback port, in a project directory of its own that is the working
// directory of the tests (so that the examples can say "tanuki.yaml").
//
// The program is $TSVC_BINARY, else ../build/gcc/tanuki-svc. A missing
// program or redis-server fails the run: nothing is skipped.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tanukisvc"
)

var (
	binary     string // the tanuki-svc program, absolute
	project    string // the project directory (the tests' working directory)
	configPath string // project/tanuki.yaml
	socketPath string // project/.tanuki/tanuki-svc.sock
	apiAddr    string // monitor.listen
	redisPort  int

	pidsMu sync.Mutex
	pids   = map[int]bool{} // redis-server pids seen, for the final sweep
)

const testConfig = `# Written by the tests of the Go package.
runtime: process
monitor:
  listen: %s
services:
  redis:
    port: %d
    # A password with characters a URL must escape (ConnectionInfo's test).
    environment: {REDIS_PASSWORD: "go-pw/1@x"}
    healthcheck:
      # Checks run only after a (re)start and when asked for, so that a
      # status stands still while a test compares it with status --json.
      interval: 1h
      # After a restart the first check waits this long: the service reads
      # "healthy: false" for at least 1 s, which a poll every 20 ms sees.
      start_interval: 1s
      start_period: 60s
      history: 5
    restart: {max_restarts: 50, backoff: 100ms}
  ghost:
    external: true
    port: %d # nothing listens there
    healthcheck: {probe: tcp, interval: 1h, timeout: 2s, retries: 1, start_period: 0s}
`

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) (ret int) {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "tanukisvc tests: "+format+"\n", a...)
		return 1
	}
	b := os.Getenv("TSVC_BINARY")
	if b == "" {
		b = "../build/gcc/tanuki-svc"
	}
	var err error
	if binary, err = filepath.Abs(b); err != nil {
		return fail("%v", err)
	}
	if st, err := os.Stat(binary); err != nil || st.IsDir() {
		return fail("no tanuki-svc program at %s: build it (scripts/build.sh gcc) or set TSVC_BINARY", binary)
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return fail("redis-server is not installed (scripts/deps.sh installs it): %v", err)
	}
	if project, err = os.MkdirTemp("", "tsvc-go-"); err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(project)
	configPath = filepath.Join(project, "tanuki.yaml")
	socketPath = filepath.Join(project, ".tanuki", "tanuki-svc.sock")
	redisPort = freePort()
	apiAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	cfg := fmt.Sprintf(testConfig, apiAddr, redisPort, freePort())
	if err := os.WriteFile(configPath, []byte(cfg), 0o600); err != nil {
		return fail("%v", err)
	}
	if err := os.Chdir(project); err != nil {
		return fail("%v", err)
	}

	logPath := filepath.Join(project, "up.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fail("%v", err)
	}
	defer logf.Close()
	mon := exec.Command(binary, "up", "-c", configPath)
	mon.Stdout, mon.Stderr = logf, logf
	// Should this process die first (a panic in a test, log.Fatal in an
	// example), the kernel sends the monitor SIGTERM, and its redis stops
	// with it.
	mon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := mon.Start(); err != nil {
		return fail("cannot start %s: %v", binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- mon.Wait() }()

	code := 0
	defer func() {
		// SIGTERM ends the monitor; under the process runtime its redis
		// stops with it, within its stop_timeout.
		select {
		case err := <-exited:
			code = fail("the monitor exited during the tests: %v", err)
		default:
			// An event stream open now ends when the monitor does.
			c := tanukisvc.New(socketPath)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			events, err := c.Events(ctx)
			if err != nil {
				code = fail("events: %v", err)
			}
			_ = mon.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				if err != nil {
					code = fail("the monitor exited with %v", err)
				}
				for events != nil {
					select {
					case _, ok := <-events:
						if !ok {
							events = nil
						}
					case <-time.After(10 * time.Second):
						code = fail("the event stream is still open 10 s after the monitor exited")
						events = nil
					}
				}
			case <-time.After(30 * time.Second):
				_ = mon.Process.Kill()
				<-exited
				code = fail("the monitor did not end within 30 s of SIGTERM")
			}
		}
		sweepRedis()
		logText, _ := os.ReadFile(logPath)
		if regexp.MustCompile(`AddressSanitizer|LeakSanitizer|runtime error:`).Match(logText) {
			code = fail("sanitizer reports in the monitor's log")
		}
		if code != 0 {
			fmt.Fprintf(os.Stderr, "---- the monitor's log (%s) ----\n%s\n", binary, tail(logText, 8000))
		}
		ret = code
	}()
	// Bounded for a loaded 2-core machine and a sanitizer build: redis is
	// healthy within a second or two when the machine is idle.
	if err := waitHealthy(exited, 90*time.Second); err != nil {
		code = fail("the monitor did not bring redis up: %v", err)
	} else {
		code = m.Run()
	}
	return code
}

// waitHealthy waits until the API answers and redis is healthy.
func waitHealthy(exited chan error, limit time.Duration) error {
	c := tanukisvc.New(socketPath)
	defer c.Close()
	var last error
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("the monitor exited: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := c.GetStatus(ctx, "redis")
		cancel()
		if err == nil && s.Healthy {
			track(s.PID)
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("redis is %s: %s", s.State, s.Error)
		}
	}
	return last
}

// track notes a redis-server pid the monitor runs.
func track(pid int) {
	if pid > 0 {
		pidsMu.Lock()
		pids[pid] = true
		pidsMu.Unlock()
	}
}

// sweepRedis kills, by pid, a redis-server of ours that outlived the
// monitor (none should: the check is that it is gone).
func sweepRedis() {
	pidsMu.Lock()
	defer pidsMu.Unlock()
	for pid := range pids {
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(cmd, []byte("redis-server")) {
			continue
		}
		fmt.Fprintf(os.Stderr, "tanukisvc tests: redis-server %d outlived the monitor: killed\n", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ctxT is a context for one test step: the bound is for a hung monitor on
// a loaded machine, not a speed claim.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 20 ms until it holds or limit passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
	}
}

// cli runs the tanuki-svc program on the project and returns its stdout.
func cli(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(binary, append(args, "-c", configPath)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("tanuki-svc %s: %v", strings.Join(args, " "), err)
	}
	if stderr.Len() > 0 {
		t.Logf("tanuki-svc %s: stderr: %s", strings.Join(args, " "), stderr.String())
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
