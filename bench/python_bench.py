#!/usr/bin/env python3
"""tokd from Python, side by side in one run (cl100k_base, one thread):

  tokd in process       the tokd module (python/), tiktoken's interface
  tokd over HTTP        the same text to `tokd serve` on loopback (http.client, keep-alive)
  pure-Python BPE       tiktoken's educational algorithm with python3-regex, in process
                        (bench/servers/pure_bpe.py, the algorithm of the FastAPI rival)

For a 100-byte prompt: calls per second and CPU microseconds per call (this process's CPU;
over HTTP the server's CPU is read from its /proc entry and added); for 1 MB of text
(8 MiB held-out English, the first 1 MB): MB/s. Every tool must give the same ids.
Not a test: the figures drift on a shared machine, the ratios are what to read.

Usage: /usr/bin/python3 bench/python_bench.py build/tokd [SECONDS]
"""
import http.client
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "bench", "servers"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("BPE_RANKS", os.path.join(ROOT, "vocab", "cl100k_base.tiktoken"))

import pure_bpe  # noqa: E402
import tokd  # noqa: E402
from harness import Server  # noqa: E402

TOKD = sys.argv[1]
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
PROMPT = "You are a helpful assistant. Summarize the following email in two sentences, please: "[:100]


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rate(fn, server_pid=None):
    """calls/s and CPU µs per call of fn over SECONDS."""
    fn()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    s0 = proc_cpu(server_pid) if server_pid else 0.0
    while time.perf_counter() - t0 < SECONDS:
        for _ in range(50):
            fn()
        n += 50
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0 + ((proc_cpu(server_pid) - s0) if server_pid else 0.0)
    return n / wall, cpu / n * 1e6


def main():
    held = os.path.join(ROOT, "build", "held-out", "en.txt")
    src = held if os.path.exists(held) else os.path.join(ROOT, "bench", "data", "prose_en.txt")
    with open(src, encoding="utf-8", newline="") as f:
        big = f.read()[: 1 << 20]
    enc = tokd.get_encoding("cl100k_base")
    want_short, want_big = enc.encode_ordinary(PROMPT), enc.encode_ordinary(big)
    assert pure_bpe.encode(PROMPT) == want_short and pure_bpe.encode(big[:200000]) == want_big[:len(pure_bpe.encode(big[:200000]))]

    server = Server("--log-level", "error", "--encodings", "cl100k_base", "--threads", "1", tokd=TOKD)
    conn = http.client.HTTPConnection("127.0.0.1", server.port)

    def over_http(text):
        conn.request("POST", "/encode", body=json.dumps({"text": text}), headers={"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())["tokens"]

    assert over_http(PROMPT) == want_short
    rows = []
    for name, fn, pid in [("tokd in process", lambda: enc.encode_ordinary(PROMPT), None),
                          ("tokd over HTTP", lambda: over_http(PROMPT), server.proc.pid),
                          ("pure-Python BPE", lambda: pure_bpe.encode(PROMPT), None)]:
        cps, cpu = rate(fn, pid)
        rows.append((name, cps, cpu))
    t = time.perf_counter(); enc.encode_ordinary(big); mb_tokd = len(big.encode()) / (time.perf_counter() - t) / 1e6
    t = time.perf_counter(); over_http(big); mb_http = len(big.encode()) / (time.perf_counter() - t) / 1e6
    part = big[:200000]  # the pure-Python BPE is slow: a fifth of the text
    t = time.perf_counter(); pure_bpe.encode(part); mb_pure = len(part.encode()) / (time.perf_counter() - t) / 1e6
    server.kill()
    mbs = {"tokd in process": mb_tokd, "tokd over HTTP": mb_http, "pure-Python BPE": mb_pure}
    print(f"python: cl100k_base, 100-byte prompt and 1 MB of {os.path.relpath(src, ROOT)}, one thread, {SECONDS:.0f} s each")
    print(f"{'':18} {'calls/s':>10} {'CPU µs/call':>12} {'MB/s (1 MB)':>12}")
    for name, cps, cpu in rows:
        print(f"{name:18} {cps:10.0f} {cpu:12.2f} {mbs[name]:12.2f}")
    base = rows[0][1]
    print(f"python: tokd in process is {base / rows[2][1]:.0f}x the pure-Python BPE and {base / rows[1][1]:.1f}x "
          f"tokd over HTTP on the short prompt; {mb_tokd / mb_pure:.0f}x and {mb_tokd / mb_http:.1f}x on 1 MB")


if __name__ == "__main__":
    main()
