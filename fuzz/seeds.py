#!/usr/bin/env python3
"""Write the seed corpora fuzz/corpus/<target>/ from the tests' inputs.

  python3 fuzz/seeds.py [BUILD_DIR]     (default build/clang-fuzz)

config: the YAML texts of tests/test_config.c (adjacent C string literals
that look like a config) and examples/tanuki.yaml. The other targets: the
replies, streams and requests that tests/test_probe_parse.c,
tests/test_docker_unit.c and tests/cli/test_api.sh use, encoded as each
target reads its input (see the comment at the top of each fuzz_*.c).

When BUILD_DIR holds the fuzz targets (scripts/build.sh clang-fuzz), only
the inputs that add coverage are kept (libFuzzer's -merge=1), so the
corpora stay small; else every input is written. Files are named by the
SHA-1 of their content, as libFuzzer names its own.
"""
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def c_literals(path):
    """Each run of adjacent C string literals in a file, decoded to bytes."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    lit = r'"(?:[^"\\\n]|\\.)*"'
    for m in re.finditer(r"(?:%s\s*)+" % lit, text):
        yield b"".join(c_unescape(s[1:-1]) for s in re.findall(lit, m.group(0)))


def c_unescape(s):
    out, i = bytearray(), 0
    simple = {"n": 10, "t": 9, "r": 13, '"': 34, "\\": 92, "'": 39, "a": 7, "b": 8, "f": 12,
              "v": 11, "?": 63}
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        e = s[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == "x":
            m = re.match(r"[0-9a-fA-F]+", s[i + 2:])
            out.append(int(m.group(0), 16) & 0xFF)
            i += 2 + len(m.group(0))
        else:
            m = re.match(r"[0-7]{1,3}", s[i + 1:])
            out.append(int(m.group(0), 8) & 0xFF)
            i += 1 + len(m.group(0))
    return bytes(out)


def config_seeds():
    seeds = []
    for lit in c_literals(os.path.join(ROOT, "tests", "test_config.c")):
        if b"\n" in lit and b":" in lit and len(lit) > 8:
            seeds.append(lit)
    seeds.append(open(os.path.join(ROOT, "examples", "tanuki.yaml"), "rb").read())
    return seeds


def pg_msg(t, body):
    return t.encode() + struct.pack(">I", len(body) + 4) + body


def pg_seeds():
    e57 = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is shutting down\0Fpostmaster.c\0\0"
    e28 = b"SFATAL\0C28000\0Mrole \"nobody\" does not exist\0\0"
    return [
        pg_msg("R", b"\0\0\0\0"),
        pg_msg("R", b"\0\0\0\x0aSCRAM-SHA-256\0\0"),
        pg_msg("R", b"\0\0\0\x05salt"),
        pg_msg("E", e57),
        pg_msg("N", b"SNOTICE\0C00000\0Mhello\0\0") + pg_msg("E", e28),
        pg_msg("E", b"SFATAL\0Mno code\0\0"),
        b"HTTP/1.1 400",
        b"-ERR",
        b"R\x7f\xff\xff\xff",
        b"E\0\0\0\x02",
        b"R\0\0\0\x04",
        # After AuthenticationOk: ParameterStatus, BackendKeyData, ReadyForQuery.
        pg_msg("R", b"\0\0\0\0") + pg_msg("S", b"server_version\x0015.6\0") +
        pg_msg("K", b"\0\0\0\1\0\0\0\2") + pg_msg("Z", b"I"),
        pg_msg("S", b"a\0b\0") + pg_msg("E", b"SFATAL\0C3D000\0Mdatabase \"x\" does not exist\0\0"),
        pg_msg("S", b"server_version\x0015.6\0") + pg_msg("K", b"\0\0\0\1\0\0\0\2") +
        pg_msg("Z", b"I"),
        b"\x01garbage",
        # A startup packet's strings (the target also builds one from them).
        b"tanuki\0tanuki_dev\0app\0",
    ]


def resp_seeds():
    return [
        b"+PONG\r\n",
        b"+OK\r\n-LOADING Redis is loading the dataset in memory\r\n+OK\r\n",
        b"-NOAUTH Authentication required.\r\n",
        b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
        b":1\r\n",
        b"$4\r\nPONG\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"\x00\x01",
        b"+PONG\rX",
        b"+PO\nNG\r\n",
        b"+P\x01NG\r\n",
        b"+" + b"a" * 1033,
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    ]


def http_seeds():
    return [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 503 Service Unavailable\r\nX: y",
        b"HTTP/1.1 204\r\n",
        b"HTTP/1.1 301 Moved\n",
        b"SSH-2.0-OpenSSH\r\n",
        b"HTTP/1.1 2x0 OK\r\n",
        b"HTTP/1.1 200OK\r\n",
        b"HTTP/1.1 200 OK\rX",
        b"+PONG\r\n",
        b"HTTP/1.1 200 " + b"a" * 1100,
        b"HTTP/1.1 200 OK\tfine\r\n",
    ]


def frame(stream, payload):
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


def docker_seeds():
    # byte 0: limits; bytes 1..16: read sizes - 1; then the stream.
    def seed(limits, cuts, stream):
        return bytes([limits]) + bytes(cuts) + stream
    every = list(range(16))
    ones = [0] * 16
    event = (b'{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":'
             b'{"exitCode":"137","name":"tanuki-svc-pg","tanuki.service":"pg"}},'
             b'"time":1700000000}\n')
    return [
        seed(3, every, frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"bye\n")),
        seed(4, ones, frame(1, b"hello\n") + frame(2, b"oops\n")),
        seed(5, every, b"hello from a tty\n"),
        seed(0, every, b"\x01\x00"),
        seed(1, every, b"\x01x"),
        seed(2, ones, b"\x01\x00\x00"),
        seed(3, every, frame(1, b"ab") + b"\x05\x00\x00\x00\x00\x00\x00\x01z"),
        seed(4, every, frame(1, b"abcdef")[:-3]),
        seed(5, every, b"\x01\x00\x00\x00\xff\xff\xff\xffab"),
        seed(3, every, frame(3, b"Error response from daemon: no such exec") + frame(0, b"")),
        seed(5, ones, event + event.replace(b"die", b"start")),
        seed(2, every, b'{"Type":"container","Action":"die","id":"abc"}\r\n\n\r\nx\n'),
        seed(0, every, b"a\nbb\nccc\ndddddddd\n" + b"e" * 40 + b"\nf\n"),
        seed(1, ones, b"no newline at the end"),
    ]


FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
REST = "abcdefghijklmnopqrstuvwxyz0123456789_.-"


def api_name(name):
    b = bytes([len(name) - 1]) + bytes([FIRST.index(name[0])])
    return b + bytes(REST.index(c) for c in name[1:])


def api_str(s):
    return bytes([len(s)]) + s


def api_service(name, state=1, bits=0x01 | 0x02, last_error=b"", history=()):
    b = api_name(name) + bytes([state, bits]) + api_str(b"tanuki-svc-" + name.encode())
    b += api_str(last_error) + b"\x01"
    b += struct.pack(">HHHH", 3000, 2900, 2900, 3100)  # since, last check, healthy, next
    b += bytes([0, 3]) + struct.pack(">H", 12)           # failures, retries, checks
    b += bytes(range(9)) + bytes([1] * 14) + struct.pack(">HH", 25, 1500)
    b += bytes([len(history)])
    for result, msg, out in history:
        b += struct.pack(">H", 2900) + bytes([120, result])
        if result == 7:
            b += b"\x01"
        b += struct.pack(">H", 1500) + api_str(msg)
        b += b"\x01" + api_str(out) if out is not None else b"\x00"
    return b


def api_world(flags=0, err_status=0, err_action=0, body=0, age=100, err_text=b"",
              services=None):
    if services is None:
        services = [
            api_service("cache"),
            api_service("we.ird", state=2, bits=0x02, last_error=b"connection refused",
                        history=[(1, b"connection refused", None),
                                 (7, b"exit 1", b"password=hunter2pw \xff")]),
        ]
    b = bytes([flags])
    if flags & 2:
        b += bytes([err_status])
    if flags & 4:
        b += bytes([err_action])
    b += struct.pack(">HH", body // 2, age) + api_str(err_text) + bytes([len(services)])
    return b + b"".join(services)


def api_seeds():
    reqs = [
        ("GET", "/v1/services"), ("GET", "/v1/services/"), ("GET", "/v1/services/cache"),
        ("GET", "/v1/services/w%65.ird"), ("POST", "/v1/services/cache/check"),
        ("POST", "/v1/services/cache/restart"), ("POST", "/v1/services/cache/stop"),
        ("POST", "/v1/services/cache/start"), ("POST", "/v1/services/nope/start"),
        ("POST", "/v1/services/cache/explode"), ("GET", "/v1/services/cache/check/x"),
        ("GET", "/v1/services/%zz"), ("GET", "/v1/services/%4"), ("GET", "/v1/services/a%00b"),
        ("GET", "/v1/services/cache/restart"), ("DELETE", "/v1/services"),
        ("HEAD", "/v1/services"), ("GET", "/readyz"), ("GET", "/livez"), ("GET", "/metrics"),
        ("GET", "/v1/events"), ("HEAD", "/v1/events"), ("POST", "/v1/down"),
        ("POST", "/v1/reload"), ("GET", "/v1/services/" + "x" * 600), ("GET", "/nope"),
    ]
    seeds = [("%s %s\n" % r).encode() + api_world() for r in reqs]
    seeds += [
        b"POST /v1/services/cache/check\n" + api_world(flags=1),              # over TCP
        b"POST /v1/services/cache/check\n" + api_world(body=70000),           # body too large
        b"GET /v1/services\n" + api_world(flags=2, err_status=9),             # not monitored
        b"GET /readyz\n" + api_world(flags=2, err_status=9),
        b"GET /metrics\n" + api_world(flags=2, err_status=1),
        b"POST /v1/services/cache/restart\n" + api_world(flags=4, err_action=6,
                                                         err_text=b"No such image: x:1"),
        b"POST /v1/reload\n" + api_world(flags=4, err_action=3,
                                         err_text=b"t.yaml:3:5: error: bad \xc3"),
        b"POST /v1/services/cache/check\n" + api_world(flags=4, err_action=5),
        b"GET /livez\n" + api_world(age=5000),
        b"GET /v1/services\n" + api_world(services=[]),
        b"GET /v1/services/we.ird\n" + api_world(flags=8),
    ]
    return seeds


def write(target, seeds, build):
    d = os.path.join(OUT, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    seeds = sorted(set(seeds))
    binary = os.path.join(build, "fuzz", target)
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds:
            with open(os.path.join(tmp, hashlib.sha1(s).hexdigest()), "wb") as f:
                f.write(s)
        if os.access(binary, os.X_OK):
            subprocess.run([binary, "-merge=1", d, tmp], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            for name in os.listdir(tmp):
                shutil.copy(os.path.join(tmp, name), d)
    print("%s: %d of %d inputs%s" % (target, len(os.listdir(d)), len(seeds),
                                     "" if os.access(binary, os.X_OK) else
                                     " (no build: all kept)"))


if __name__ == "__main__":
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "clang-fuzz")
    write("fuzz_config", config_seeds(), build)
    write("fuzz_pg_reply", pg_seeds(), build)
    write("fuzz_resp", resp_seeds(), build)
    write("fuzz_http_status", http_seeds(), build)
    write("fuzz_docker_stream", docker_seeds(), build)
    write("fuzz_api", api_seeds(), build)
