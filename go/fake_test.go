package tanukisvc_test

// What a real monitor will not do on demand: answer garbage. A fake one on
// a unix socket of its own checks that the client fails cleanly, with a
// message, and keeps its memory bounded.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tanukisvc"
)

const goodEvent = `{"time":"2026-05-01T12:00:03.725Z","service":"redis","from":"healthy","to":"unhealthy",` +
	`"reason":"killed by signal 9","failures":0,"retries":3,"restarts":1,"max_restarts":5}` + "\n"

func fakeMonitor(t *testing.T, h http.HandlerFunc) *tanukisvc.Client {
	sock := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := tanukisvc.New(sock)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFakeMonitorAnswersGarbage(t *testing.T) {
	c := fakeMonitor(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/services":
			w.WriteHeader(502)
			fmt.Fprint(w, "oops, not JSON\n")
		case "/v1/services/notjson":
			fmt.Fprint(w, "{\"name\": ")
		case "/v1/services/badtime":
			fmt.Fprint(w, `{"name":"badtime","since":"yesterday"}`)
		case "/v1/services/huge":
			// A reply over the client's 64 MiB limit.
			chunk := strings.Repeat(" ", 1<<20)
			fmt.Fprint(w, `{"name":"huge"`)
			for i := 0; i < 65; i++ {
				fmt.Fprint(w, chunk)
			}
			fmt.Fprint(w, "}")
		case "/v1/events":
			w.Header().Set("Content-Type", "application/x-ndjson")
			fmt.Fprint(w, goodEvent, "this is not an event\n", goodEvent)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	})
	ctx := ctxT(t)

	_, err := c.GetAllStatus(ctx)
	var ae *tanukisvc.APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Message != `HTTP 502: "oops, not JSON"` {
		t.Fatalf("a non-JSON error: %v", err)
	}
	if _, err := c.GetStatus(ctx, "notjson"); err == nil || !strings.Contains(err.Error(), "not the JSON expected") {
		t.Fatalf("a cut reply: %v", err)
	}
	if _, err := c.GetStatus(ctx, "badtime"); err == nil || !strings.Contains(err.Error(), `bad time "yesterday"`) {
		t.Fatalf("a bad time: %v", err)
	}
	if _, err := c.GetStatus(ctx, "huge"); err == nil || !strings.Contains(err.Error(), "over 67108864 bytes") {
		t.Fatalf("a huge reply: %v", err)
	}

	// The stream ends at the first line that is not an event.
	ch, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, ch, 10*time.Second)
	want := tanukisvc.Event{Time: time.Date(2026, 5, 1, 12, 0, 3, 725e6, time.UTC), Service: "redis",
		From: "healthy", To: "unhealthy", Reason: "killed by signal 9", Retries: 3, Restarts: 1, MaxRestarts: 5}
	if ev != want {
		t.Fatalf("event %+v\nwant %+v", ev, want)
	}
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("an event after a bad line: %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream goes on after a bad line")
	}
}

func TestFakeMonitorSendsAnEndlessLine(t *testing.T) {
	c := fakeMonitor(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		// One "line" of 4 MiB: over the client's 1 MiB bound for an event.
		chunk := strings.Repeat("x", 64<<10)
		for i := 0; i < 64 && r.Context().Err() == nil; i++ {
			fmt.Fprint(w, chunk)
		}
	})
	ch, err := c.Events(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("an event from a bad line: %+v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stream goes on after an endless line")
	}
}
