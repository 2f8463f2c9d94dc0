#!/usr/bin/env python3
"""Fleet sizing, measured: the same open-loop load of tokenize requests (cl100k_base)
against tokd and the services a team would otherwise run, side by side in one run, with
build/tokd-load measuring each server's processes from /proc (--pid) the same way:

  tokd         build/tokd serve, 2 threads, loopback TCP
  tokd-uds     the same over a Unix domain socket (--listen unix:PATH)
  rust-hyper   hyper + tokio around a tiktoken-style BPE (bench/servers/rust_bpe), 2 threads
  node         Node http + native tiktoken (npm tiktoken-node), 2 cluster workers
  python       FastAPI + Uvicorn + pure-Python BPE (bench/servers/fastapi_bpe.py), 2 workers

Two workloads: short chat prompts (log-normal around 300 bytes) and 8 KB documents, cut
from held-out English (build/held-out/en.txt: Debian's manual pages, not tuning data).

For each server and workload:
  1. a fixed offered rate every server can carry (the same for all): CPU % of the
     machine's cores, p50/p99, resident memory in total and of the largest process;
  2. capacity: the rate is doubled until p99 passes the objective (--p99) or requests
     fail or fall behind, then the gap is halved three times; the highest rate that passed,
     and the CPU it took there, give what one
     replica of this machine's size carries at a 70% CPU ceiling (tokd-load's own rule:
     the lower of the latency-bound rate and the CPU ceiling's), and so the replicas for
     10,000 and 100,000 requests/s.
Energy is modelled (3.5 W per busy core, as tokd-load and tokd report it without RAPL):
the same factor for every server, so its ratios are the CPU ratios.

The machine is shared by the load generator (one thread) and the server; the figures are
for this machine's 2 cores, and the ratios are what carries over.

Usage: bench/fleet_bench.py TOKD TOKD_LOAD REF_DIR RUST_BIN SECONDS [SERVER...]
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import ROOT, free_port, kill_tree, servers, tree  # noqa: E402

P99_MS = 50.0          # the latency objective for capacity
CPU_CEILING = 0.7      # a replica's cores are sized to run at most this busy
CORES = os.cpu_count() or 1
WORKLOADS = {
    # name: (median bytes, sigma, the common offered rate, the first rate of the capacity search)
    "chat": (300, 0.5, 1000, 250),
    "doc8k": (8192, 0.05, 100, 25),
}
QUOTED = [  # what is commonly claimed for a Python tokenizer service vs a compiled one
    ("CPU per core at the same load", "45% vs 1.5%", 30.0),
    ("memory per worker", "250 MB vs 15 MB", 250 / 15),
    ("latency", "10 ms vs 0.5 ms", 20.0),
    ("instances for the same traffic", "100 vs 8", 100 / 8),
]


def load(tokd_load, url, pid, corpus, median, sigma, rate, seconds):
    out = subprocess.run([tokd_load, "--url", url, "--rates", str(rate), "--duration", str(seconds),
                          "--mix", "1,0,0", "--corpus", corpus, "--median-bytes", str(median),
                          "--sigma", str(sigma), "--pid", str(pid), "--connections", "512",
                          "--p99", str(P99_MS), "--json"],
                         capture_output=True, text=True, timeout=seconds * 4 + 120)
    try:
        return json.loads(out.stdout)["steps"][0]
    except (ValueError, KeyError, IndexError):
        raise RuntimeError(f"tokd-load failed: {out.stdout[:300]} {out.stderr[-300:]}")


def passed(step):
    return (step["errors"] == 0 and step["p99_ms"] <= P99_MS and step["achieved"] >= 0.95 * step["rate"])


def per_replica(step):
    """What one replica of this machine's size carries (tokd-load's rule): the lower of the
    rate that met the objective and the rate its cores carry at the CPU ceiling."""
    cpu = step["cpu_us_per_request"]
    cap = step["achieved"]
    return min(cap, CPU_CEILING * CORES * 1e6 / cpu) if cpu else cap * CPU_CEILING


def wait_up(url_args, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run(["curl", "-s", "-m", "5", *url_args, "-H", "Content-Type: application/json",
                            "-d", '{"text":"hello world"}'], capture_output=True, text=True)
        try:
            if json.loads(r.stdout)["tokens"] == [15339, 1917]:
                return True
        except (ValueError, KeyError, TypeError):
            pass
        time.sleep(0.2)
    return False


def main():
    tokd, tokd_load, ref, rust_bin, seconds = sys.argv[1:5] + [float(sys.argv[5])]
    only = sys.argv[6:]
    corpus = os.path.join(ROOT, "build", "held-out", "en.txt")
    if not os.path.exists(corpus):
        corpus = os.path.join(ROOT, "bench", "data", "prose_en.txt")
    tmp = tempfile.mkdtemp(prefix="tokd-fleet-")
    sock = os.path.join(tmp, "tokd.sock")
    names = ["tokd", "tokd-uds", "rust-hyper", "node", "python"]
    results = {}
    print(f"fleet: {CORES} cores, {seconds:g} s per rate, corpus {os.path.relpath(corpus, ROOT)}, "
          f"p99 objective {P99_MS:g} ms, CPU ceiling {CPU_CEILING:.0%}", flush=True)
    for name in names:
        if only and name not in only:
            continue
        port = free_port()
        if name == "tokd-uds":
            cmd = [tokd, "serve", "--listen", f"unix:{sock}", "--threads", "2", "--encodings", "cl100k_base",
                   "--log-level", "off"]
            url, curl = f"unix:{sock}", ["--unix-socket", sock, "http://localhost/encode"]
        else:
            cmd = servers(port, tokd, ref, rust_bin)[name]
            url, curl = f"http://127.0.0.1:{port}", [f"http://127.0.0.1:{port}/encode"]
        if name == "rust-hyper" and not os.path.exists(rust_bin):
            print(f"{name}: {rust_bin} not built, skipped", flush=True)
            continue
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not wait_up(curl):
                print(f"{name}: did not come up, skipped", flush=True)
                continue
            time.sleep(0.5)
            idle_rss = sum(int(open(f"/proc/{p}/statm").read().split()[1]) for p in tree(proc.pid)) * \
                os.sysconf("SC_PAGE_SIZE")
            for wl, (median, sigma, common, start) in WORKLOADS.items():
                load(tokd_load, url, proc.pid, corpus, median, sigma, common, 1)  # warm-up
                fixed = load(tokd_load, url, proc.pid, corpus, median, sigma, common, seconds)
                best, rate, failed = None, start, None
                for _ in range(12):
                    step = load(tokd_load, url, proc.pid, corpus, median, sigma, rate, seconds)
                    if not passed(step):
                        failed = rate
                        break
                    best = step
                    rate *= 2
                # then halve the gap between the last rate that passed and the first that
                # failed, three times (to within 1/8 of a doubling)
                for _ in range(3 if best and failed else 0):
                    rate = round((best["rate"] + failed) / 2)
                    step = load(tokd_load, url, proc.pid, corpus, median, sigma, rate, seconds)
                    if passed(step):
                        best = step
                    else:
                        failed = rate
                r = dict(fixed=fixed, best=best, idle_rss=idle_rss)
                if best:
                    r["per_replica"] = per_replica(best)
                    r["replicas_10k"] = math.ceil(10000 / r["per_replica"])
                    r["replicas_100k"] = math.ceil(100000 / r["per_replica"])
                results[(name, wl)] = r
                f = fixed
                print(f"{name:10s} {wl:6s} at {common:4d}/s: cpu {f['cpu_pct_per_core']:5.1f}% of {CORES} cores  "
                      f"p50 {f['p50_ms']:7.3f} p99 {f['p99_ms']:7.3f} ms  {f['cpu_us_per_request']:8.1f} CPU-us/req  "
                      f"RSS {f['rss_bytes'] / 1e6:6.1f} MB in {f['processes']} (largest {f['rss_max_process_bytes'] / 1e6:5.1f})  "
                      f"{f['joules_per_million_tokens']:6.2f} J/Mtok; capacity "
                      + (f"{best['achieved']:.0f}/s -> {r['per_replica']:.0f}/s per replica, "
                         f"{r['replicas_10k']} / {r['replicas_100k']} replicas for 10k / 100k req/s"
                         if best else f"none at p99 <= {P99_MS:g} ms"), flush=True)
        finally:
            kill_tree(proc)
    if os.path.exists(sock):
        os.unlink(sock)
    os.rmdir(tmp)

    print()
    for wl, (median, sigma, common, _) in WORKLOADS.items():
        print(f"{wl} ({median} B median), offered {common} req/s to each; capacity at p99 <= {P99_MS:g} ms, "
              f"a replica = {CORES} cores at <= {CPU_CEILING:.0%} CPU")
        print(f"  {'server':10s} {'CPU %':>6s} {'CPU-us/req':>10s} {'p50 ms':>7s} {'p99 ms':>7s} {'RSS MB':>7s} "
              f"{'/worker':>7s} {'J/Mtok':>7s} {'cap/s':>7s} {'replica/s':>9s} {'@10k':>5s} {'@100k':>6s}")
        for name in names:
            r = results.get((name, wl))
            if not r:
                continue
            f, b = r["fixed"], r["best"]
            per_worker = f["rss_max_process_bytes"] / 1e6 if f["processes"] > 1 else f["rss_bytes"] / 1e6
            print(f"  {name:10s} {f['cpu_pct_per_core']:6.1f} {f['cpu_us_per_request']:10.1f} {f['p50_ms']:7.3f} "
                  f"{f['p99_ms']:7.3f} {f['rss_bytes'] / 1e6:7.1f} {per_worker:7.1f} {f['joules_per_million_tokens']:7.2f} "
                  + (f"{b['achieved']:7.0f} {r['per_replica']:9.0f} {r['replicas_10k']:5d} {r['replicas_100k']:6d}"
                     if b else f"{'-':>7s} {'-':>9s} {'-':>5s} {'-':>6s}"))
        t = results.get(("tokd", wl))
        if t:
            print("  ratios, other / tokd (CPU per request, p50, p99, memory, replicas for 100k req/s):")
            for name in names[1:]:
                o = results.get((name, wl))
                if not o:
                    continue
                tf, of = t["fixed"], o["fixed"]
                reps = (f"{o['replicas_100k'] / t['replicas_100k']:6.2f}x" if o.get("best") and t.get("best")
                        else "     -")
                print(f"    {name:10s} cpu {of['cpu_us_per_request'] / tf['cpu_us_per_request']:7.2f}x  "
                      f"p50 {of['p50_ms'] / tf['p50_ms']:6.2f}x  p99 {of['p99_ms'] / tf['p99_ms']:6.2f}x  "
                      f"memory {of['rss_bytes'] / tf['rss_bytes']:6.2f}x  replicas {reps}")
        print()
    t, p = results.get(("tokd", "chat")), results.get(("python", "chat"))
    if t and p:
        tf, pf = t["fixed"], p["fixed"]
        print("the commonly quoted figures (Python service vs compiled), against this run (chat prompts):")
        measured = [pf["cpu_us_per_request"] / tf["cpu_us_per_request"],
                    (pf["rss_max_process_bytes"] if pf["processes"] > 1 else pf["rss_bytes"]) / tf["rss_bytes"],
                    pf["p50_ms"] / tf["p50_ms"],
                    p["replicas_100k"] / t["replicas_100k"] if p.get("best") and t.get("best") else float("nan")]
        for (what, quoted, ratio), got in zip(QUOTED, measured):
            print(f"  {what:32s} quoted {quoted:16s} = {ratio:5.1f}x   measured {got:6.1f}x")


if __name__ == "__main__":
    main()
