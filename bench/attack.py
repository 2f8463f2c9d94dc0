#!/usr/bin/env python3
"""The hostile-load findings of the service-hardening issue, measured against any tokd
binary with its default configuration, so a build can be compared with an older one:

  bench/attack.py build/tokd [old/tokd]

Each line is one finding and what the server did: memory (peak and after, from
/proc/PID/status), whether healthy clients were served meanwhile, latency of small requests
while large ones compute, answers to ambiguous HTTP framing. Nothing here asserts: the
tests that assert live in tests/hardening_test.py; this prints figures for the README.
Loopback only; every loop is bounded; servers are killed at the end.
"""
import json
import multiprocessing
import os
import re
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import Server, open_request, raw, read_to_end, request_bytes, status_of  # noqa: E402

resource.setrlimit(resource.RLIMIT_NOFILE, (8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def server(binary, *args):
    """The binary's server with its defaults (and nothing an older binary may not know)."""
    return Server("--log-level", "error", *args, tokd=binary, drain_delay=None)


def mb(s, key):
    """A /proc/PID/status figure of the server in MiB."""
    return s.proc_status(key) / (1 << 20)


def post(path, body, ctype="text/plain"):
    return request_bytes("POST", path, body, ctype)


HEALTH = request_bytes("GET", "/health")


def timed(port, data, timeout=10):
    t = time.time()
    out = raw(port, data, timeout)
    return status_of(out), time.time() - t


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def run(binary):
    print(f"== {binary}")
    # 1. one large decode
    s = server(binary)
    ids = json.dumps({"tokens": [15339] * 500000}).encode()
    idle = mb(s, "VmRSS")
    st = status_of(raw(s.port, post("/decode", ids, "application/json"), 60))
    print(f"decode of {len(ids) / 1e6:.1f} MB of ids: {st}, peak {mb(s, 'VmHWM') - idle:+.0f} MB, "
          f"after {mb(s, 'VmRSS') - idle:+.0f} MB over idle ({idle:.0f} MB)")
    s.kill()

    # 2. concurrent uploads
    s = server(binary)
    idle = mb(s, "VmRSS")
    body = b"hello world " * 333333  # 4 MB
    results = []
    def upload():
        results.append(status_of(raw(s.port, post("/count", body), 120)))
    ts = [threading.Thread(target=upload) for _ in range(60)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    codes = {c: results.count(c) for c in set(results)}
    print(f"60 concurrent 4 MB uploads: statuses {codes}, peak {mb(s, 'VmHWM') - idle:+.0f} MB over idle")
    s.kill()

    # 3. clients that never read their large answers
    s = server(binary)
    idle = mb(s, "VmRSS")
    readers = []
    for _ in range(20):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        c.connect(("127.0.0.1", s.port))
        c.sendall(post("/decode", json.dumps({"tokens": list(range(1000, 99000)) * 3}).encode(), "application/json"))
        readers.append(c)
    time.sleep(8)
    print(f"20 clients not reading ~1.5 MB answers: {mb(s, 'VmRSS') - idle:+.0f} MB held after 8 s, "
          f"/health {timed(s.port, HEALTH)[0]}")
    for c in readers:
        c.close()
    s.kill()

    # 4. header tricklers
    s = server(binary)
    slow = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(1200)]
    for c in slow:
        c.sendall(b"GET /hea")
    stop = threading.Event()
    def trickle():
        while not stop.wait(1):
            for c in slow:
                try:
                    c.sendall(b"d")
                except OSError:
                    pass
    threading.Thread(target=trickle, daemon=True).start()
    time.sleep(2)
    res = [timed(s.port, post("/count", b"hello"), 3) for _ in range(10)]
    time.sleep(12)
    later = [timed(s.port, post("/count", b"hello"), 3) for _ in range(10)]
    stop.set()
    for c in slow:
        c.close()
    print(f"1,200 connections trickling header bytes: POSTs answered 200 after 2 s {sum(r[0] == 200 for r in res)}/10, "
          f"after 14 s {sum(r[0] == 200 for r in later)}/10")
    s.kill()

    # 5. slow bodies against the in-flight slots
    s = server(binary)
    bodies = []
    for _ in range(600):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc")
        bodies.append(c)
    time.sleep(1)
    st_post = timed(s.port, post("/count", b"hello"), 5)[0]
    st_ready = timed(s.port, request_bytes("GET", "/ready"), 5)[0]
    print(f"600 slow request bodies: a new POST gets {st_post}, /ready says {st_ready}")
    for c in bodies:
        c.close()
    s.kill()

    # 6. head-of-line blocking: two clients (processes, not threads: Python's lock would
    # pace them) looping large one-character counts while one client times small requests
    s = server(binary)
    big = post("/count", b"a" * 4000000)
    def hog(port, seconds):
        end = time.time() + seconds
        while time.time() < end:
            raw(port, big, 60)
    hogs = [multiprocessing.Process(target=hog, args=(s.port, 13)) for _ in range(2)]
    for h in hogs:
        h.start()
    time.sleep(1)
    small, health = [], []
    t_end = time.time() + 10
    while time.time() < t_end:
        small.append(timed(s.port, post("/encode", b'{"text": "hello world"}', "application/json"), 10)[1])
        health.append(timed(s.port, HEALTH, 10)[1])
    for h in hogs:
        h.join()
    print(f"two clients looping 4 MB one-letter /count: a third client's small /encode: {len(small)} in 10 s "
          f"(one at a time, each followed by /health), p50 {pct(small, .5) * 1e3:.2f} ms, p99 {pct(small, .99) * 1e3:.1f} ms, "
          f"max {max(small) * 1e3:.0f} ms; /health p99 {pct(health, .99) * 1e3:.1f} ms, max {max(health) * 1e3:.0f} ms")
    s.kill()

    # 7. a backlog of complete uploads
    s = server(binary, "--threads", "1", "--timeout", "5")
    body = b"word " * 20000
    socks = [open_request(s.port, "POST", "/encode", body, "text/plain") for _ in range(120)]
    answered = 0
    for c in socks:
        answered += read_to_end(c).startswith(b"HTTP/1.1 ")
        c.close()
    print(f"120 complete 100 KB uploads at once (1 thread, --timeout 5): {answered} answered")
    s.kill()

    # 8. framing
    s = server(binary)
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    cases = [
        ("CL + TE", b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Type: text/plain\r\n\r\n0\r\n\r\n" + smuggled),
        ("two CLs", b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n"
         b"Content-Type: text/plain\r\n\r\nhi" + smuggled),
        ("CL -1", b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nContent-Type: text/plain\r\n\r\nhi"),
        ("TE gzip, chunked", b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
         b"Content-Type: text/plain\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
        ("TE identity", b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Type: text/plain\r\n\r\nhi"),
        ("no Host", b"GET /health HTTP/1.1\r\n\r\n"),
        ("%00 in encoding", b"POST /count?encoding=cl100k_base%00junk HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 2\r\nConnection: close\r\n\r\nhi"),
    ]
    line = []
    for name, data in cases:
        t = time.time()
        out = raw(s.port, data, 6)
        n = len(re.findall(rb"(?:^|\r\n|\n)HTTP/1\.1 \d\d\d ", out))  # status lines (a message may say HTTP/1.1)
        line.append(f"{name}: {status_of(out) or 'none'}{' x' + str(n) if n > 1 else ''}"
                    f"{' (%.0f s)' % (time.time() - t) if time.time() - t > 1 else ''}")
    print("framing: " + "; ".join(line))
    def chunked(n):
        b = b"a" * n
        return (b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n"
                b"Connection: close\r\n\r\n" + b"".join(b"%x\r\n" % 65536 + b[i:i + 65536] + b"\r\n"
                                                       for i in range(0, n, 65536)) + b"0\r\n\r\n")
    print(f"chunked body 1.5x the cap: {status_of(raw(s.port, chunked(12 << 20), 20)) or 'cut without answer'}")
    for ids in [b"[0.99999999999999999]", b"[01]"]:
        out = raw(s.port, post("/decode", b'{"tokens": ' + ids + b"}", "application/json"))
        print(f"id {ids.decode()}: {status_of(out)} {out.split(bytes([13, 10]) * 2, 1)[-1][:70].decode(errors='replace')}")
    out = raw(s.port, post("/decode", b'\xef\xbb\xbf{"tokens": [15339]}', "application/x-www-form-urlencoded"))
    print(f"BOM + JSON sent as form data: {out.split(bytes([13, 10]) * 2, 1)[-1][:70].decode(errors='replace')}")
    s.kill()


if __name__ == "__main__":
    for b in sys.argv[1:]:
        run(os.path.abspath(b))
