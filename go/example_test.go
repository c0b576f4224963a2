package tanukisvc_test

// These examples run as tests (go test), against the monitor that
// main_test.go starts for the project in the working directory: its
// tanuki.yaml has a service "redis".

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"tanukisvc"
)

func Example() {
	// The monitor of the project whose config is ./tanuki.yaml, started
	// with `tanuki-svc up`.
	c, err := tanukisvc.NewFromConfig("tanuki.yaml")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	st, err := c.GetStatus(ctx, "redis")
	if errors.Is(err, tanukisvc.ErrNoMonitor) {
		log.Fatal("no monitor: start one with `tanuki-svc up -d`")
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("redis: %s, healthy: %v, failures in a row: %d, checked: %v\n",
		st.State, st.Healthy, st.FailureCount, !st.LastCheck.IsZero())

	if c.IsHealthy(ctx, "redis") {
		fmt.Println("redis is ready")
	}

	_, err = c.GetStatus(ctx, "memcached")
	if errors.Is(err, tanukisvc.ErrServiceNotFound) {
		fmt.Println("no memcached here:", err)
	}
	// Output:
	// redis: healthy, healthy: true, failures in a row: 0, checked: true
	// redis is ready
	// no memcached here: tanukisvc: status memcached: no service named 'memcached' (HTTP 404)
}

func ExampleClient_Events() {
	c, err := tanukisvc.NewFromConfig("tanuki.yaml")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Subscribe first, then act: every change from now on is streamed.
	events, err := c.Events(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Restart(ctx, "redis"); err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		if ev.Service != "redis" {
			continue
		}
		fmt.Printf("%s: %s -> %s (%s)\n", ev.Service, ev.From, ev.To, ev.Reason)
		if ev.To == "healthy" {
			break
		}
	}
	// Output:
	// redis: healthy -> restarting (restart requested)
	// redis: restarting -> starting (restarted)
	// redis: starting -> healthy (first successful check)
}

func ExampleNew() {
	c := tanukisvc.New("/nonexistent/tanuki-svc.sock")
	defer c.Close()
	_, err := c.GetAllStatus(context.Background())
	fmt.Println(errors.Is(err, tanukisvc.ErrNoMonitor))
	fmt.Println(err)
	// Output:
	// true
	// tanukisvc: no monitor running (no socket at /nonexistent/tanuki-svc.sock)
}

func ExampleClient_ConnectionInfo() {
	c, err := tanukisvc.NewFromConfig("tanuki.yaml")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// From a container on the project's network (under the process
	// runtime, which the tests use, that is the host's view).
	rc, err := c.ConnectionInfo(ctx, "redis", tanukisvc.ViewNetwork)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rc.Host, rc.Port > 0, rc.Password != "")
	// Output:
	// 127.0.0.1 true true
}
