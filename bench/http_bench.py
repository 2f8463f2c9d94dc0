#!/usr/bin/env python3
"""HTTP benchmark: tokd against the servers a team would otherwise deploy, side by side in
one run, same payloads, same load generator (wrk, closed loop, 8 connections).

  tokd          build/tokd serve (cl100k_base only, 2 threads)
  rust-hyper    hyper + tokio around a tiktoken-style BPE (bench/servers/rust_bpe)
  node          Node http + native tiktoken (npm tiktoken-node), 2 cluster workers
  python        FastAPI + Uvicorn + pure-Python BPE, 2 workers

Reports requests/s, p50/p99 latency, server CPU microseconds per request (all processes of
the server), peak resident memory (sum over its processes), and ratios against tokd.
Usage: bench/http_bench.py TOKD REF_DIR RUST_BIN SECONDS [SERVER...]
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "build", "bench-http")
RANKS = os.path.join(ROOT, "vocab", "cl100k_base.tiktoken")
CLK = os.sysconf("SC_CLK_TCK")


def payloads():
    os.makedirs(WORK, exist_ok=True)
    prose = open(os.path.join(ROOT, "bench/data/prose_en.txt"), encoding="utf-8").read()
    code = open(os.path.join(ROOT, "bench/data/code.txt"), encoding="utf-8").read()
    out = {}
    for name, src, size in [("en_1k", prose[20000:], 1024), ("en_8k", prose[30000:], 8192),
                            ("code_4k", code[5000:], 4096)]:
        text = src.encode()[:size].decode("utf-8", "ignore")
        path = os.path.join(WORK, name + ".json")
        with open(path, "w") as f:
            json.dump({"text": text}, f)
        lua = os.path.join(WORK, name + ".lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f'local f = io.open("{path}", "rb")\nwrk.body = f:read("*a")\nf:close()\n')
        out[name] = (path, lua)
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def servers(port, tokd, ref, rust_bin, workers=2):
    """The command line of each server, listening on 127.0.0.1:port with `workers` workers
    (threads for tokd and hyper, processes for Node and Uvicorn)."""
    w = str(workers)
    return {
        "tokd": [tokd, "serve", "--host", "127.0.0.1", "--port", str(port), "--threads", w,
                 "--encodings", "cl100k_base", "--log-level", "off"],
        "rust-hyper": [rust_bin, str(port), RANKS, w],
        "node": ["node", os.path.join(ROOT, "bench/servers/node_tiktoken.js"), str(port),
                 os.path.join(ref, "node_modules"), w],
        "python": ["/usr/bin/python3", os.path.join(ROOT, "bench/servers/fastapi_bpe.py"), str(port), RANKS, w],
    }


def tree(pid):
    """pid and all its descendants"""
    parents = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                parents.setdefault(int(fields[1]), []).append(int(p))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def kill_tree(proc):
    """Kills a server and every process it started, and reaps it."""
    for p in reversed(tree(proc.pid)):
        try:
            os.kill(p, 9)
        except OSError:
            pass
    proc.wait()


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total / CLK


def mem_kb(pids, key):
    total = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith(key):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_ready(port, path, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/encode", data=open(path, "rb").read(),
                                         headers={"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(req, timeout=5).read())["tokens"]
        except Exception:
            time.sleep(0.2)
    raise RuntimeError("server did not come up")


def parse_wrk(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, ms("50"), ms("99"), int(errors.group(1)) if errors else 0


def main():
    tokd, ref, rust_bin, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    only = sys.argv[5:]
    loads = payloads()
    results = {}
    reference = None
    for name in ["tokd", "rust-hyper", "node", "python"]:
        if only and name not in only:
            continue
        port = free_port()
        proc = subprocess.Popen(servers(port, tokd, ref, rust_bin)[name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            tokens = wait_ready(port, loads["en_1k"][0])
            if reference is None:
                reference = tokens
            same = tokens == reference
            time.sleep(0.5)
            pids = tree(proc.pid)
            idle_kb = mem_kb(pids, "VmRSS")
            for pname, (path, lua) in loads.items():
                subprocess.run(["wrk", "-t2", "-c8", "-d1s", "-s", lua, f"http://127.0.0.1:{port}/encode"],
                               capture_output=True)  # warm-up
                pids = tree(proc.pid)
                c0 = cpu_seconds(pids)
                out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds:g}s", "--latency", "-s", lua,
                                      f"http://127.0.0.1:{port}/encode"], capture_output=True, text=True).stdout
                c1 = cpu_seconds(pids)
                rps, p50, p99, errors = parse_wrk(out)
                requests = rps * seconds
                results[(name, pname)] = dict(rps=rps, p50=p50, p99=p99, errors=errors,
                                              cpu_us=(c1 - c0) / requests * 1e6 if requests else 0,
                                              peak_mb=mem_kb(pids, "VmHWM") / 1024, idle_mb=idle_kb / 1024,
                                              same=same)
                r = results[(name, pname)]
                print(f"{name:11s} {pname:8s} {rps:10.0f} req/s  p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  "
                      f"cpu {r['cpu_us']:7.1f} us/req  peak {r['peak_mb']:6.1f} MB  idle {r['idle_mb']:5.1f} MB"
                      f"{'' if same else '  (TOKENS DIFFER FROM TOKD)'}{f'  non-2xx {errors}' if errors else ''}",
                      flush=True)
        finally:
            kill_tree(proc)
    print()
    print("ratios (tokd / other): requests/s, and other's CPU per request / tokd's")
    for name in ["rust-hyper", "node", "python"]:
        for pname in loads:
            if ("tokd", pname) in results and (name, pname) in results:
                t, o = results[("tokd", pname)], results[(name, pname)]
                print(f"  vs {name:11s} {pname:8s} throughput {t['rps'] / o['rps']:6.2f}x   "
                      f"cpu/req {o['cpu_us'] / t['cpu_us']:6.2f}x")


if __name__ == "__main__":
    main()
