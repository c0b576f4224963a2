#!/usr/bin/python3
"""A webhook receiver for tests/test_webhook.c (Debian's python3, standard
library only).

    webhook_receiver.py LOGFILE

Listens on 127.0.0.1 (a free port, printed on the first line of stdout),
records every POST as one JSON line in LOGFILE ({"path", "n" (the how-manyth
request to that path), "ctype", "t" (CLOCK_MONOTONIC, s), "body"}) BEFORE
it answers, and answers by the path's first segment:
    /ok/...     200
    /flaky/...  500 to the first request of that path, then 200
    /busy/...   429 to the first request of that path, then 200
    /bad/...    400
    /hang/...   never (the connection is held for an hour)
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = open(sys.argv[1], "a", buffering=1, encoding="utf-8")
lock = threading.Lock()
seen = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with lock:
            k = seen.get(self.path, 0) + 1
            seen[self.path] = k
            log.write(json.dumps({"path": self.path, "n": k,
                                  "ctype": self.headers.get("Content-Type"),
                                  "t": time.monotonic(),
                                  "body": body.decode("utf-8", "replace")}) + "\n")
        kind = self.path.split("/")[1] if self.path.count("/") else ""
        if kind == "hang":
            time.sleep(3600)
            return
        code = 200
        if kind == "flaky" and k == 1:
            code = 500
        elif kind == "busy" and k == 1:
            code = 429
        elif kind == "bad":
            code = 400
        out = b"ok\n" if code == 200 else b"not now\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
