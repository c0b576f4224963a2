package tanukisvc

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Event is one change of a service's state, as GET /v1/events sends it.
type Event struct {
	Time        time.Time
	Service     string
	From        string // the state left
	To          string // the state entered
	Reason      string // why, e.g. "first successful check", "killed by signal 9"
	Failures    int    // failed checks in a row then
	Retries     int    // the service's retries (config)
	Restarts    int    // restarts within the restart window then
	MaxRestarts int    // the service's max_restarts (config)
}

type wireEvent struct {
	Time        apiTime `json:"time"`
	Service     string  `json:"service"`
	From        string  `json:"from"`
	To          string  `json:"to"`
	Reason      *string `json:"reason"`
	Failures    int     `json:"failures"`
	Retries     int     `json:"retries"`
	Restarts    int     `json:"restarts"`
	MaxRestarts int     `json:"max_restarts"`
}

// Events streams the monitor's changes of state, from the moment it returns
// until ctx ends. A restart shows as a change into "restarting" (from
// "healthy", or "unhealthy" when the monitor restarts it), then from
// "restarting" to "starting" (reason "restarted"), then "starting" to
// "healthy".
//
// The error is for the connection (ErrNoMonitor, an *APIError). After that
// the channel is closed when ctx ends, and also when the stream ends first:
// the monitor stopped, it dropped this reader for falling 1024 events behind,
// or it sent a line that is not an event. Changes made while no stream was
// open are not replayed: a caller that reconnects should read GetAllStatus
// again. Read the channel promptly; it holds 16 events.
func (c *Client) Events(ctx context.Context) (<-chan Event, error) {
	resp, err := c.request(ctx, "events", http.MethodGet, "/v1/events")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp, "events", false)
	}
	ch := make(chan Event, 16)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 4096), maxEventLine)
		for sc.Scan() {
			line := sc.Bytes()
			if len(line) == 0 {
				continue
			}
			var w wireEvent
			if json.Unmarshal(line, &w) != nil {
				return
			}
			ev := Event{Time: w.Time.t, Service: w.Service, From: w.From, To: w.To,
				Reason: str(w.Reason), Failures: w.Failures, Retries: w.Retries,
				Restarts: w.Restarts, MaxRestarts: w.MaxRestarts}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
