#!/usr/bin/env python3
"""Soak: tokd at 70% of its measured capacity for a long time (default 10 minutes) with a
mixed workload, reporting errors (must be 0) and resident memory at the start, middle and
end (must be flat).

  make soak                       # SOAK_SECONDS=600 by default
  bench/soak.py build/tokd build/tokd-load [seconds]

1. starts `tokd serve` on an ephemeral loopback port with its default configuration;
2. starts a side client that sends a large request every 3 s (1 MB /encode with offsets,
   1 MB /count of one letter, a 99k-id /decode) and keeps it going to the end;
3. measures capacity with tokd-load under that side load (open loop, encode/count/decode
   8:1:1, log-normal text sizes cut from tests/data/corpus: prose, code, CJK, emoji,
   adversarial runs; doubling the rate while p99 stays under 50 ms with no errors);
4. runs tokd-load at 70% of that rate, sampling the server's resident memory every 5 s.
Not part of `make test`: it is long and its pass mark depends on the machine staying
steady. Exit status 1 on any error or when memory grows (end > start + 16 MB + 10%).
"""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import Server, metrics_of, raw_request  # noqa: E402

TOKD, LOAD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
SECONDS = int(sys.argv[3]) if len(sys.argv) > 3 else int(os.environ.get("SOAK_SECONDS", "600"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P99_TARGET_MS = 50


def server_problems(port):
    """The server's counts of answers that were not 200 and of slow-client cuts, nonzero."""
    return {name: int(value) for name, value in metrics_of(port).items() if value and (
        name.startswith("tokd_requests_total{") and 'status="200"' not in name or
        name.startswith(("tokd_connections_dropped_total{", "tokd_memory_rejections_total")))}


def tokd_load(port, rates, duration, corpus):
    out = subprocess.run([LOAD, "--url", f"http://127.0.0.1:{port}", "--rates", ",".join(str(r) for r in rates),
                          "--duration", str(duration), "--corpus", corpus, "--p99-target-ms", str(P99_TARGET_MS),
                          "--connections", "512", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # exit 1: no rate met the objective
    return json.loads(out.stdout)


def main():
    corpus = os.path.join(ROOT, "build", "soak_corpus.txt")
    cdir = os.path.join(ROOT, "tests", "data", "corpus")
    with open(corpus, "wb") as out:
        for name in sorted(os.listdir(cdir)):
            with open(os.path.join(cdir, name), "rb") as f:
                out.write(f.read())
    server = Server("--log-level", "error", tokd=TOKD)
    port = server.port
    try:
        samples, side = [], {"sent": 0, "failed": 0}
        stop, soaking = threading.Event(), threading.Event()

        def sample():
            while not stop.wait(5):
                if soaking.is_set():
                    samples.append((time.time(), server.proc_status("VmRSS")))

        def large():  # the same side load while capacity is measured and during the soak
            bodies = [("/encode?offsets=1", (b"Soak text, prose and code: x = f(y) + 42; \xe4\xbd\xa0\xe5\xa5\xbd. " * 20000)[:1 << 20], "text/plain"),
                      ("/count", (b"a" * (1 << 20)), "text/plain"),
                      ("/decode", json.dumps({"tokens": list(range(1000, 100000))}).encode(), "application/json")]
            i = 0
            while not stop.wait(3):
                path, body, ctype = bodies[i % len(bodies)]
                i += 1
                try:
                    st = raw_request(port, "POST", path, body, ctype, timeout=60)[0]
                except OSError:
                    st = 0
                if soaking.is_set():
                    side["sent"] += 1
                    side["failed"] += st != 200
        threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=large, daemon=True)]
        for t in threads:
            t.start()

        # capacity with the mixed workload: double the rate until it stops meeting the objective
        capacity, rate = 0, 1000
        def meets(r):
            step = tokd_load(port, [r], 15, corpus)["steps"][0]  # five large side requests
            good = step["errors"] == 0 and step["p99_ms"] <= P99_TARGET_MS and step["achieved"] >= 0.97 * r
            print(f"soak: capacity probe {r}/s: achieved {step['achieved']:.0f}/s, p99 {step['p99_ms']:.2f} ms, "
                  f"errors {step['errors']} -> {'ok' if good else 'over'}", flush=True)
            return good
        while rate <= 256000 and meets(rate):
            capacity, rate = rate, rate * 2
        if capacity and meets(capacity * 3 // 2):  # one step of refinement
            capacity = capacity * 3 // 2
        if capacity == 0:
            print("soak: the server does not meet the objective even at 1000 requests/s")
            return 1
        target = int(capacity * 0.7)
        print(f"soak: capacity >= {capacity}/s; soaking at {target}/s for {SECONDS} s", flush=True)
        start_rss = server.proc_status("VmRSS")
        before = server_problems(port)
        soaking.set()
        result = tokd_load(port, [target], SECONDS, corpus)
        stop.set()
        for t in threads:
            t.join()
        step = result["steps"][0]
        end = server.proc_status("VmRSS")
        # resident memory moves with the large side requests, so each third of the run is
        # represented by its lowest sample (what stays resident between them)
        rs = [r for _, r in samples] or [start_rss]
        third = max(1, len(rs) // 3)
        first, middle, last = min(rs[:third]), min(rs[third:2 * third] or rs), min(rs[-third:])
        print(f"soak: {SECONDS} s at {target}/s: achieved {step['achieved']:.0f}/s, {step['ok']} ok, "
              f"{step['errors']} errors; p50 {step['p50_ms']:.3f} ms, p99 {step['p99_ms']:.3f} ms, "
              f"p99.9 {step['p999_ms']:.3f} ms")
        print(f"soak: large side requests: {side['sent']} sent, {side['failed']} failed")
        after = {k: v - before.get(k, 0) for k, v in server_problems(port).items() if v - before.get(k, 0)}
        print("soak: the server's own count, during the soak, of answers that were not 200 and of "
              "slow-client cuts:", ", ".join(f"{k} {v}" for k, v in after.items()) or "none")
        print(f"soak: resident memory: before {start_rss / 1e6:.1f} MB; lowest in the first, middle and last "
              f"third {first / 1e6:.1f} / {middle / 1e6:.1f} / {last / 1e6:.1f} MB; highest {max(rs) / 1e6:.1f} MB; "
              f"after {end / 1e6:.1f} MB")
        ok = step["errors"] == 0 and side["failed"] == 0 and last <= first * 1.1 + (16 << 20)
        print("soak: PASS" if ok else "soak: FAIL")
        return 0 if ok else 1
    finally:
        server.kill()


if __name__ == "__main__":
    sys.exit(main())
