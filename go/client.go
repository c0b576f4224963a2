package tanukisvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// ErrNoMonitor is returned (wrapped, with the address tried) when no monitor
// answers: the socket file does not exist, or nothing listens on it (a stale
// socket left by a monitor that was killed), or nothing listens on the TCP
// address: where the CLI says "no monitor running" and acts directly.
// Other failures to connect (permission denied, a file that is not a
// socket), for which the CLI exits 3, are other errors.
var ErrNoMonitor = errors.New("tanukisvc: no monitor running")

// ErrServiceNotFound is matched (errors.Is) by the *APIError of a request
// about a service the monitor does not know (HTTP 404).
var ErrServiceNotFound = errors.New("tanukisvc: no such service")

// APIError is a request the monitor answered with an error status. Message
// is the API's own "error" text (or the start of the body when it sent no
// JSON error).
type APIError struct {
	Op      string // what was asked, e.g. "restart redis"
	Status  int    // the HTTP status: 404, 409, 403 (a POST over TCP), 502, ...
	Message string // the API's message, e.g. "no service named 'nope'"
	service bool   // the request was about one service: a 404 means "unknown name"
}

func (e *APIError) Error() string {
	return fmt.Sprintf("tanukisvc: %s: %s (HTTP %d)", e.Op, e.Message, e.Status)
}

// Is reports whether target is ErrServiceNotFound and this error is the
// monitor saying it has no service of the name asked for.
func (e *APIError) Is(target error) bool {
	return target == ErrServiceNotFound && e.service && e.Status == http.StatusNotFound
}

// Limits on what the monitor may send, so that a confused peer cannot grow
// memory without bound: a whole reply (as the CLI's 64 MiB), one event line.
const (
	maxBody      = 64 << 20
	maxErrorBody = 64 << 10
	maxEventLine = 1 << 20
)

// Default bounds for a call whose context has no deadline (the CLI's).
const (
	readTimeout   = 30 * time.Second
	checkTimeout  = 2 * time.Minute
	actionTimeout = 3 * time.Minute
	dialTimeout   = 5 * time.Second
)

// Client talks to one monitor. Create it with New, NewTCP or NewFromConfig.
type Client struct {
	socket string // the unix socket, or "" for TCP
	addr   string // the TCP address (host:port), or "" for the socket
	base   string // URL prefix: "http://localhost" or "http://host:port"
	tr     *http.Transport
	hc     *http.Client
}

// dialError marks an error of connecting, so that it can be told apart from
// one in the middle of an exchange.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// New returns a client of the monitor whose API socket is socketPath (the
// config's monitor.socket, resolved: see NewFromConfig). Nothing is connected
// until the first call.
func New(socketPath string) *Client {
	c := &Client{socket: socketPath, base: "http://localhost"}
	d := net.Dialer{Timeout: dialTimeout}
	c.init(func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, "unix", socketPath)
		if err != nil {
			return nil, &dialError{err}
		}
		return conn, nil
	})
	return c
}

// NewTCP returns a client of the monitor's TCP API at addr (its
// monitor.listen, "127.0.0.1:7070"). The TCP API is read-only: Start, Stop,
// Restart and Check through it fail with an *APIError of status 403.
func NewTCP(addr string) *Client {
	c := &Client{addr: addr, base: "http://" + addr}
	d := net.Dialer{Timeout: dialTimeout}
	c.init(func(ctx context.Context, network, a string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, a)
		if err != nil {
			return nil, &dialError{err}
		}
		return conn, nil
	})
	return c
}

func (c *Client) init(dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	c.tr = &http.Transport{
		DialContext:         dial,
		Proxy:               nil, // the monitor is local: never through $HTTP_PROXY
		MaxIdleConnsPerHost: 2,
		// Below the monitor's own 30 s idle limit, so that a kept-alive
		// connection is never reused just as the monitor closes it.
		IdleConnTimeout:       20 * time.Second,
		ResponseHeaderTimeout: 0, // a check or a restart may take minutes: the context bounds it
	}
	c.hc = &http.Client{Transport: c.tr}
}

// Socket returns the unix socket the client uses ("" for a TCP client).
func (c *Client) Socket() string { return c.socket }

// Close closes the client's idle connections. The client stays usable.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}

// where names the monitor's address for messages.
func (c *Client) where() string {
	if c.socket != "" {
		return c.socket
	}
	return c.addr
}

// connectError turns a failed connection into ErrNoMonitor when nothing
// answers, as the CLI decides (src/api/api.c, tsvc_api_socket_state): no
// socket file, or a socket nobody listens on. Anything else (permission
// denied, a file that is not a socket, a timeout) is another error.
func (c *Client) connectError(op string, err error) error {
	var de *dialError
	if !errors.As(err, &de) {
		return fmt.Errorf("tanukisvc: %s: cannot reach the monitor at %s: %w", op, c.where(), err)
	}
	if c.socket != "" && errors.Is(de.err, syscall.ECONNREFUSED) {
		// connect(2) refuses a file that is not a socket the same way.
		if st, serr := os.Stat(c.socket); serr == nil && st.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("tanukisvc: %s: cannot reach the monitor: %s: not a socket", op, c.socket)
		}
	}
	if errors.Is(de.err, syscall.ENOENT) {
		return fmt.Errorf("%w (no socket at %s)", ErrNoMonitor, c.socket)
	}
	if errors.Is(de.err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w (nothing listens on %s)", ErrNoMonitor, c.where())
	}
	return fmt.Errorf("tanukisvc: %s: cannot reach the monitor at %s: %w", op, c.where(), de.err)
}

// request sends method path and returns the response, its body still open;
// any HTTP status is returned as it is. op names the call in errors.
func (c *Client) request(ctx context.Context, op, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("tanukisvc: %s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("tanukisvc: %s: %w", op, ctx.Err())
		}
		return nil, c.connectError(op, err)
	}
	return resp, nil
}

// apiError reads the error body of resp (which it closes) into an *APIError.
func apiError(resp *http.Response, op string, service bool) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{Op: op, Status: resp.StatusCode, service: service}
	var v struct {
		Error *string `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil && v.Error != nil {
		e.Message = *v.Error
	} else {
		body = bytes.TrimSpace(body)
		if len(body) > 200 {
			body = append(body[:200:200], "..."...)
		}
		e.Message = fmt.Sprintf("HTTP %d: %q", resp.StatusCode, body)
	}
	return e
}

// call sends method path, checks for 200 and decodes the JSON reply into
// out. bound applies when ctx has no deadline of its own.
func (c *Client) call(ctx context.Context, op, method, path string, service bool,
	bound time.Duration, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bound)
		defer cancel()
	}
	resp, err := c.request(ctx, op, method, path)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return apiError(resp, op, service)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("tanukisvc: %s: reading the reply: %w", op, err)
	}
	if len(body) > maxBody {
		return fmt.Errorf("tanukisvc: %s: the reply is over %d bytes", op, maxBody)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("tanukisvc: %s: the monitor's reply is not the JSON expected: %w", op, err)
	}
	return nil
}

// servicePath is "/v1/services/NAME[/action]" with NAME escaped as a path
// segment (the monitor percent-decodes it).
func servicePath(name, action string) string {
	p := "/v1/services/" + url.PathEscape(name)
	if action != "" {
		p += "/" + action
	}
	return p
}

func checkName(op, name string) error {
	if name == "" {
		return fmt.Errorf("tanukisvc: %s: empty service name", op)
	}
	return nil
}
