package tanukisvc_test

// NewFromConfig's reading of monitor.socket, checked against the program's
// own loader: for every file the C loader reads, `tanuki-svc config show`
// must print the socket that NewFromConfig found; files this package refuses
// as beyond its reader must be files the loader reads (so the message is the
// only way out for the user), and files it finds wrong must be files the
// loader refuses too.

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"tanukisvc"
)

func TestNewFromConfigReadsTheSocket(t *testing.T) {
	const def = tanukisvc.DefaultSocket
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no monitor section", "services: {}\n", def},
		{"monitor without socket", "monitor:\n  listen: 127.0.0.1:7070\nservices: {}\n", def},
		{"block", "monitor:\n  socket: run/x.sock   # a comment\nservices: {}\n", "run/x.sock"},
		{"absolute", "monitor:\n  socket: /tmp/abs.sock\n", "/tmp/abs.sock"},
		{"deeper indent, keys around it",
			"monitor:\n    listen: 127.0.0.1:7070\n    socket: 's p''q.sock'\n    log_format: json\nservices: {}\n",
			"s p'q.sock"},
		{"double quotes and escapes", "monitor:\n  socket: \"a\\x41\\u00e9\\t\\\"b\\\\.sock\"\n", "aAé\t\"b\\.sock"},
		{"flow", "monitor: {listen: \"127.0.0.1:7070\", socket: flow.sock}\n", "flow.sock"},
		{"flow over lines", "monitor: {\n  listen: 127.0.0.1:7070,  # tcp\n  socket: 'f l.sock',\n}\n", "f l.sock"},
		{"flow on the next line", "monitor:\n  {socket: nl.sock}\n", "nl.sock"},
		{"value on the next line", "monitor:\n  socket:\n    next.sock\nservices: {}\n", "next.sock"},
		{"anchors", "monitor: &mon\n  socket: &s anch.sock\n", "anch.sock"},
		{"null socket", "monitor:\n  socket: ~\n", def},
		{"null monitor", "monitor:\nservices: {}\n", def},
		{"null flow", "monitor: {socket: null}\n", def},
		{"a hash inside a plain value", "monitor:\n  socket: a#b.sock\n", "a#b.sock"},
		{"plain over two lines", "monitor:\n  socket: a\n    b.sock\n", "a b.sock"},
		{"quoted keys", "\"monitor\":\n  'socket': q.sock\n", "q.sock"},
		{"CRLF and a BOM", "\uFEFFmonitor:\r\n  socket: crlf.sock\r\nservices: {}\r\n", "crlf.sock"},
		{"document marker, comments, lookalikes elsewhere",
			"# header\n%YAML 1.1\n---\nversion: 1\nproject:\n  socket: not-this.sock\n  monitor: {socket: nor-this.sock}\n" +
				"services:\n  monitor:\n    image: x\n    port: 1\n    external: true\n" +
				"monitor:\n  # the socket:\n  socket: dm.sock #trailing\n...\n",
			"dm.sock"},
		{"a flow collection over lines before it",
			"services: {\n  a: {port: 1, external: true}\n}\nmonitor:\n  socket: after-flow.sock\n", "after-flow.sock"},
		{"a quoted string over lines before it", "x: \"abc\ndef: 1\"\nmonitor:\n  socket: after-quote.sock\n", "after-quote.sock"},
		{"a sequence at the key's indent", "worktrees:\n- a\n- b\nmonitor: {socket: seq.sock}\n", "seq.sock"},
		{"quotes and brackets inside plain values",
			"title: it's [odd {\nmonitor: {listen: 127.0.0.1:7070, socket: it's.sock}\n", "it's.sock"},
		{"monitor's own merge is not needed when monitor is explicit",
			"base: &b {socket: merged.sock}\n<<: {x: 1}\nmonitor: {socket: explicit.sock}\n", "explicit.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "tanuki.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := tanukisvc.NewFromConfig(file)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if !strings.HasPrefix(want, "/") {
				want = dir + "/" + want
			}
			if c.Socket() != want {
				t.Errorf("socket %q, want %q", c.Socket(), want)
			}
			// The program's loader agrees: its `config show` is YAML that
			// names the same socket.
			show := exec.Command(binary, "config", "show", "-c", file)
			out, err := show.CombinedOutput()
			if err != nil {
				t.Fatalf("config show: %v: %s", err, out)
			}
			shown := filepath.Join(dir, "shown.yaml")
			if err := os.WriteFile(shown, out, 0o600); err != nil {
				t.Fatal(err)
			}
			c2, err := tanukisvc.NewFromConfig(shown)
			if err != nil {
				t.Fatalf("reading config show's output: %v\n%s", err, out)
			}
			if c2.Socket() != want {
				t.Errorf("config show says %q, we read %q\n%s", c2.Socket(), want, out)
			}
		})
	}
}

func TestNewFromConfigSaysWhatItCannotRead(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		beyond     bool   // valid YAML this reader does not follow
		want       string // in the error: "file:line:col: ..." after the file name
	}{
		{"alias", "x: &s al.sock\nmonitor:\n  socket: *s\n", true, ":3:11: monitor.socket given by an alias (*s)"},
		{"monitor by alias", "m: &m {socket: x.sock}\nmonitor: *m\n", true, ":2:10: monitor given by an alias (*m)"},
		{"merge in monitor", "base: &b {socket: m.sock}\nmonitor:\n  <<: *b\n", true, ":3:3: a merge key (<<) in monitor"},
		{"merge in flow", "base: &b {socket: m.sock}\nmonitor: {<<: *b}\n", true, ":2:11: a merge key (<<) in monitor"},
		{"top-level merge", "base: &b\n  monitor: {socket: x.sock}\n<<: *b\n", true, ":3:1: a merge key (<<) at the top level"},
		{"block scalar", "monitor:\n  socket: |\n    bs.sock\n", true, ":2:11: a block scalar (|)"},
		{"tag", "monitor:\n  socket: !!str t.sock\n", true, ":2:11: monitor.socket with a tag (!!str)"},
		{"quoted over lines", "monitor:\n  socket: \"a\n    b.sock\"\n", true, ":2:11: a quoted monitor.socket over several lines"},
		{"empty", "monitor:\n  socket: \"\"\n", false, ":2:11: monitor.socket: must not be empty"},
		{"duplicate socket", "monitor:\n  socket: a\n  socket: b\n", false, ":3:3: duplicate key \"socket\" in monitor (first on line 2)"},
		{"duplicate monitor", "monitor: {}\nmonitor: {}\n", false, ":2:1: duplicate key \"monitor\" (first on line 1)"},
		{"monitor is a list", "monitor:\n  - a\n", false, ":2:3: monitor: expected a mapping, got a list"},
		{"monitor is a string", "monitor: yes\n", false, ":1:10: monitor: expected a mapping"},
		{"socket is a mapping", "monitor:\n  socket: {a: b}\n", false, ":2:11: monitor.socket: expected a string"},
		{"socket is a list", "monitor:\n  socket:\n    - a\n", false, ":3:5: monitor.socket: expected a string, got a list"},
		{"unclosed flow", "monitor: {socket: x\n", false, ":1:10: monitor: no \"}\" closes this \"{\""},
		{"unclosed quote", "monitor:\n  socket: \"abc\n", false, ":2:11: monitor.socket: unclosed double-quoted string"},
		{"bad escape", "monitor:\n  socket: \"a\\qb\"\n", false, ":2:11: monitor.socket: unknown escape \\q"},
		{"two documents", "monitor: {}\n---\nmonitor: {}\n", false, ":2:1: a second YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "tanuki.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := tanukisvc.NewFromConfig(file)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), file+tc.want) {
				t.Errorf("error %q\nwant %q", err, file+tc.want)
			}
			if errors.Is(err, tanukisvc.ErrNoMonitor) {
				t.Errorf("a config error is not ErrNoMonitor: %v", err)
			}
			if tc.beyond != strings.Contains(err.Error(), "pass the socket to New") {
				t.Errorf("error %q: says to pass the socket: %v", err, !tc.beyond)
			}
			// Beyond us means the loader reads it; wrong means it refuses it.
			out, verr := exec.Command(binary, "config", "validate", "-c", file).CombinedOutput()
			if tc.beyond && verr != nil {
				t.Errorf("config validate refuses what we call beyond us: %s", out)
			}
			if !tc.beyond && verr == nil {
				t.Errorf("config validate takes what we call wrong: %s", out)
			}
		})
	}
}
