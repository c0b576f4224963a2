package tanukisvc_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"tanukisvc"
)

// ConnectionInfo against the real monitor: the values `tanuki-svc env`
// prints, a URL that reaches the real redis, both views (the process
// runtime has no container network: the network view is the host's), no
// password over TCP, and the errors.
func TestConnectionInfo(t *testing.T) {
	c := client(t)
	ctx := ctxT(t)
	want := tanukisvc.ServiceConnection{
		Host:     "127.0.0.1",
		Port:     redisPort,
		URL:      fmt.Sprintf("redis://default:go-pw%%2F1%%40x@127.0.0.1:%d", redisPort),
		Password: "go-pw/1@x",
	}
	for _, view := range []tanukisvc.View{tanukisvc.ViewHost, tanukisvc.ViewNetwork} {
		got, err := c.ConnectionInfo(ctx, "redis", view)
		if err != nil {
			t.Fatalf("%s: %v", view, err)
		}
		if *got != want {
			t.Errorf("%s: got %+v, want %+v", view, *got, want)
		}
	}

	// The same values as the CLI's.
	var env map[string]string
	if out := cli(t, "env", "--format", "json"); json.Unmarshal(out, &env) != nil {
		t.Fatalf("env --format json: %s", out)
	}
	if env["REDIS_HOST"] != want.Host || env["REDIS_PORT"] != itoa(want.Port) ||
		env["REDIS_URL"] != want.URL || env["REDIS_PASSWORD"] != want.Password {
		t.Errorf("tanuki-svc env says %v", env)
	}
	ghost, err := c.ConnectionInfo(ctx, "ghost", tanukisvc.ViewHost)
	if err != nil || ghost.URL != fmt.Sprintf("127.0.0.1:%d", ghost.Port) ||
		env["GHOST_URL"] != ghost.URL || ghost.Password != "" || ghost.DSN != "" {
		t.Errorf("ghost: %+v, %v; env %q", ghost, err, env["GHOST_URL"])
	}

	// The URL reaches the real redis: AUTH with its user and password.
	u, err := url.Parse(want.URL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n",
		len(u.User.Username()), u.User.Username(), len(pw), pw)
	rd := bufio.NewReader(conn)
	a, _ := rd.ReadString('\n')
	b, _ := rd.ReadString('\n')
	if a != "+OK\r\n" || b != "+PONG\r\n" {
		t.Errorf("AUTH and PING with the URL's credentials: %q %q", a, b)
	}

	// Over TCP the password stays home.
	tc := tanukisvc.NewTCP(apiAddr)
	defer tc.Close()
	got, err := tc.ConnectionInfo(ctx, "redis", tanukisvc.ViewHost)
	if err != nil {
		t.Fatal(err)
	}
	if got.Password != "" || strings.Contains(got.URL, "go-pw") ||
		got.URL != fmt.Sprintf("redis://127.0.0.1:%d", redisPort) {
		t.Errorf("over TCP: %+v", *got)
	}

	if _, err := c.ConnectionInfo(ctx, "nope", tanukisvc.ViewHost); !errors.Is(err, tanukisvc.ErrServiceNotFound) {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := c.ConnectionInfo(ctx, "redis", "sideways"); err == nil || !strings.Contains(err.Error(), "unknown view") {
		t.Errorf("unknown view: %v", err)
	}
}
