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
import subprocess
import sys
import threading
import time

resource.setrlimit(resource.RLIMIT_NOFILE, (8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


class Server:
    def __init__(self, binary, *args):
        self.proc = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "error", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for line in self.proc.stdout:
            if b'"listening"' in line:
                self.port = json.loads(line)["port"]
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def mb(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
        return 0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def raw(port, data, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass
    out = b""
    try:
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            out += b
    except socket.timeout:
        out += b"<timeout>"
    except OSError:
        pass
    s.close()
    return out


def post(path, body, ctype="text/plain"):
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def status(out):
    return int(out[9:12]) if out.startswith(b"HTTP/1.1 ") else 0


def timed(port, data, timeout=10):
    t = time.time()
    out = raw(port, data, timeout)
    return status(out), time.time() - t


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def run(binary):
    print(f"== {binary}")
    # 1. one large decode
    s = Server(binary)
    ids = json.dumps({"tokens": [15339] * 500000}).encode()
    idle = s.mb("VmRSS")
    st = status(raw(s.port, post("/decode", ids, "application/json"), 60))
    print(f"decode of {len(ids) / 1e6:.1f} MB of ids: {st}, peak {s.mb('VmHWM') - idle:+.0f} MB, "
          f"after {s.mb('VmRSS') - idle:+.0f} MB over idle ({idle:.0f} MB)")
    s.stop()

    # 2. concurrent uploads
    s = Server(binary)
    idle = s.mb("VmRSS")
    body = b"hello world " * 333333  # 4 MB
    results = []
    def upload():
        results.append(status(raw(s.port, post("/count", body), 120)))
    ts = [threading.Thread(target=upload) for _ in range(60)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    codes = {c: results.count(c) for c in set(results)}
    print(f"60 concurrent 4 MB uploads: statuses {codes}, peak {s.mb('VmHWM') - idle:+.0f} MB over idle")
    s.stop()

    # 3. clients that never read their large answers
    s = Server(binary)
    idle = s.mb("VmRSS")
    readers = []
    for _ in range(20):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        c.connect(("127.0.0.1", s.port))
        c.sendall(post("/decode", json.dumps({"tokens": list(range(1000, 99000)) * 3}).encode(), "application/json"))
        readers.append(c)
    time.sleep(8)
    print(f"20 clients not reading ~1.5 MB answers: {s.mb('VmRSS') - idle:+.0f} MB held after 8 s, "
          f"/health {timed(s.port, b'GET /health HTTP/1.1' + bytes([13, 10]) + b'Host: x' + bytes([13, 10]) * 2)[0]}")
    for c in readers:
        c.close()
    s.stop()

    # 4. header tricklers
    s = Server(binary)
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
    s.stop()

    # 5. slow bodies against the in-flight slots
    s = Server(binary)
    bodies = []
    for _ in range(600):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc")
        bodies.append(c)
    time.sleep(1)
    st_post = timed(s.port, post("/count", b"hello"), 5)[0]
    st_ready = timed(s.port, b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5)[0]
    print(f"600 slow request bodies: a new POST gets {st_post}, /ready says {st_ready}")
    for c in bodies:
        c.close()
    s.stop()

    # 6. head-of-line blocking: two clients (processes, not threads: Python's lock would
    # pace them) looping large one-character counts while one client times small requests
    s = Server(binary)
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
        health.append(timed(s.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10)[1])
    for h in hogs:
        h.join()
    print(f"two clients looping 4 MB one-letter /count: a third client's small /encode: {len(small)} in 10 s "
          f"(one at a time, each followed by /health), p50 {pct(small, .5) * 1e3:.2f} ms, p99 {pct(small, .99) * 1e3:.1f} ms, "
          f"max {max(small) * 1e3:.0f} ms; /health p99 {pct(health, .99) * 1e3:.1f} ms, max {max(health) * 1e3:.0f} ms")
    s.stop()

    # 7. a backlog of complete uploads
    s = Server(binary, "--threads", "1", "--timeout", "5")
    body = b"word " * 20000
    socks = []
    for _ in range(120):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
        c.sendall(post("/encode", body))
        socks.append(c)
    answered = 0
    for c in socks:
        out = b""
        try:
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                out += b
        except OSError:
            pass
        answered += out.startswith(b"HTTP/1.1 ")
        c.close()
    print(f"120 complete 100 KB uploads at once (1 thread, --timeout 5): {answered} answered")
    s.stop()

    # 8. framing
    s = Server(binary)
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
        line.append(f"{name}: {status(out) or 'none'}{' x' + str(n) if n > 1 else ''}"
                    f"{' (%.0f s)' % (time.time() - t) if time.time() - t > 1 else ''}")
    print("framing: " + "; ".join(line))
    def chunked(n):
        b = b"a" * n
        return (b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n"
                b"Connection: close\r\n\r\n" + b"".join(b"%x\r\n" % 65536 + b[i:i + 65536] + b"\r\n"
                                                       for i in range(0, n, 65536)) + b"0\r\n\r\n")
    print(f"chunked body 1.5x the cap: {status(raw(s.port, chunked(12 << 20), 20)) or 'cut without answer'}")
    for ids in [b"[0.99999999999999999]", b"[01]"]:
        out = raw(s.port, post("/decode", b'{"tokens": ' + ids + b"}", "application/json"))
        print(f"id {ids.decode()}: {status(out)} {out.split(bytes([13, 10]) * 2, 1)[-1][:70].decode(errors='replace')}")
    out = raw(s.port, post("/decode", b'\xef\xbb\xbf{"tokens": [15339]}', "application/x-www-form-urlencoded"))
    print(f"BOM + JSON sent as form data: {out.split(bytes([13, 10]) * 2, 1)[-1][:70].decode(errors='replace')}")
    s.stop()


if __name__ == "__main__":
    for b in sys.argv[1:]:
        run(os.path.abspath(b))
