package tanukisvc

import (
	"context"
	"fmt"
	"net/url"
)

// View is where a client connects from, for ConnectionInfo.
type View string

const (
	// ViewHost is the host's view: 127.0.0.1 and the published port.
	ViewHost View = "host"
	// ViewNetwork is the view from a container on the project's Docker
	// network: the container's name and the container port. The process
	// runtime has no container network: there it is the host's view.
	ViewNetwork View = "network"
)

// ServiceConnection is how to reach one service (Tanuki's TANK-045): what
// `tanuki-svc env` prints as <PREFIX>_HOST, _PORT, _URL, _USER, _PASSWORD,
// _DATABASE and _DSN. Fields a service's kind does not have are "".
type ServiceConnection struct {
	Host     string // 127.0.0.1, or the container's name (tanuki-svc-postgres)
	Port     int    // the published port, or the container port
	URL      string // host:port; redis: redis://host:port (redis://default:PASSWORD@host:port with a password)
	Username string // postgres: POSTGRES_USER (default postgres)
	// Password is POSTGRES_PASSWORD or REDIS_PASSWORD. The monitor sends
	// passwords only over its unix socket: through a TCP client (NewTCP)
	// it is "", and URL and DSN carry none.
	Password string
	Database string // postgres: POSTGRES_DB (default: the user)
	DSN      string // postgres: postgres://user:password@host:port/database, percent-encoded
}

// envReply is GET /v1/env (docs/api.md, "Connection variables").
type envReply struct {
	View     string `json:"view"`
	Services []struct {
		Name     string `json:"name"`
		Host     string `json:"host"`
		Port     int    `json:"port"`
		URL      string `json:"url"`
		Username string `json:"username"`
		Password string `json:"password"`
		Database string `json:"database"`
		DSN      string `json:"dsn"`
	} `json:"services"`
}

// ConnectionInfo returns how to reach service name from view (ViewHost or
// ViewNetwork). A service the monitor has no connection for (not in its
// config, disabled, or without a port) is ErrServiceNotFound.
func (c *Client) ConnectionInfo(ctx context.Context, name string, view View) (*ServiceConnection, error) {
	op := "connection info of " + name
	if err := checkName(op, name); err != nil {
		return nil, err
	}
	if view != ViewHost && view != ViewNetwork {
		return nil, fmt.Errorf("tanukisvc: %s: unknown view %q (ViewHost or ViewNetwork)", op, view)
	}
	var r envReply
	if err := c.call(ctx, op, "GET", "/v1/env?view="+url.QueryEscape(string(view)), false,
		readTimeout, &r); err != nil {
		return nil, err
	}
	for _, s := range r.Services {
		if s.Name == name {
			return &ServiceConnection{Host: s.Host, Port: s.Port, URL: s.URL, Username: s.Username,
				Password: s.Password, Database: s.Database, DSN: s.DSN}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s: the monitor has no connection for it (not in its config, "+
		"disabled, or without a port)", ErrServiceNotFound, name)
}
