package tanukisvc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultSocket is monitor.socket when the config does not set it, relative
// to the config's directory.
const DefaultSocket = ".tanuki/tanuki-svc.sock"

// NewFromConfig returns a client of the monitor of the project whose config
// is path ("" means $TANUKI_CONFIG, else tanuki.yaml, as the CLI's -c). It
// finds the socket as the CLI does: monitor.socket (default
// .tanuki/tanuki-svc.sock), a relative one taken from the config's directory
// with symbolic links resolved.
//
// Only monitor.socket is read, with a small reader of the YAML that
// tanuki.yaml files use (the standard library has no YAML): `monitor` as a
// block mapping or a flow mapping ({socket: ..., listen: ...}), and the
// socket as a plain, 'single-' or "double-quoted" string, on the key's line
// or the next. An anchor (&name) is passed over. A file that reaches
// monitor.socket through an alias (*name), a merge key (<<), a tag or a
// block scalar (| or >) gets an error saying so: give New the socket path
// instead (`tanuki-svc config show` prints it). The rest of the file is not
// validated: `tanuki-svc config validate` does that.
//
// The error is about the file (it cannot be read, or monitor.socket cannot
// be found in it, with file:line:column); whether a monitor runs is known
// only at the first call.
func NewFromConfig(path string) (*Client, error) {
	if path == "" {
		path = os.Getenv("TANUKI_CONFIG")
	}
	if path == "" {
		path = "tanuki.yaml"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tanukisvc: cannot read the config: %w", err)
	}
	sock, err := configSocket(path, string(data))
	if err != nil {
		return nil, err
	}
	return New(resolveSocket(path, sock)), nil
}

// resolveSocket is the socket path of a config at configPath whose
// monitor.socket is socket ("" for the default): as tsvc_api_socket_path
// (src/api/api.c), a relative socket is joined to the directory of the
// config's real path, without any other cleaning.
func resolveSocket(configPath, socket string) string {
	if socket == "" {
		socket = DefaultSocket
	}
	if strings.HasPrefix(socket, "/") {
		return socket
	}
	p := configPath
	if abs, err := filepath.Abs(configPath); err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			p = real
		}
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return socket
	}
	return p[:i] + "/" + socket
}
