#!/usr/bin/env python3
"""Multi-turn replay: what a router in front of a chat engine sends. SESSIONS conversations
of TURNS turns each, interleaved as live traffic is; every request carries the whole
history so far (as clients resend it) to `POST /tokenize` with `messages` (Qwen3's chat
template, add_generation_prompt), and the assistant's answer joins the history. Messages
are cut from held-out text that nothing was tuned on (Debian's manual pages, bench/held_out.py),
a fresh piece for every message.

The same replay runs against tokd with the prefix cache (the default) and without it
(--prefix-cache-bytes 0), one worker thread each; every answer of the two must be the same
ids. Reported per third of the turns: tokd's own CPU per request (tokd_request_cpu_seconds
for /tokenize: render + tokenize, HTTP I/O excluded) and the bytes of history per request,
and the cache's hits and saved bytes.

usage: bench/replay.py build/tokd MODEL_DIR HELD_OUT_TEXT [sessions] [turns]
"""
import http.client
import json
import random
import re
import subprocess
import sys
import time

TOKD, MODEL, TEXT = sys.argv[1], sys.argv[2], sys.argv[3]
SESSIONS = int(sys.argv[4]) if len(sys.argv) > 4 else 16
TURNS = int(sys.argv[5]) if len(sys.argv) > 5 else 30


def pieces(path, seed):
    """Fresh pieces of the held-out text, 200-900 bytes, never the same twice."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    rnd = random.Random(seed)
    at = 0
    while True:
        n = rnd.randint(200, 900)
        if at + n >= len(text):
            at = 0
        yield text[at:at + n]
        at += n


class Tokd:
    def __init__(self, *args):
        self.proc = subprocess.Popen([TOKD, "serve", "--host", "127.0.0.1", "--port", "0", "--threads", "1",
                                      "--split-threads", "1", "--log-level", "error", "--drain-delay", "0",
                                      "--tokenizer", f"qwen3={MODEL}", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            if '"listening"' in line:
                self.port = json.loads(line)["port"]
                break
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        deadline = time.time() + 60
        while self.get("/ready")[0] != 200 and time.time() < deadline:
            time.sleep(0.05)

    def get(self, path):
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        return r.status, r.read()

    def tokenize(self, messages):
        body = json.dumps({"model": "qwen3", "messages": messages})
        self.conn.request("POST", "/tokenize", body=body, headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(data[:300])
        return json.loads(data)["tokens"]

    def metric(self, pattern):
        text = self.get("/metrics")[1].decode()
        m = re.search(r"^" + re.escape(pattern) + r" (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def replay(server):
    """Runs the replay; per third of the turns, (CPU s, requests, history bytes), and all ids."""
    msgs = pieces(TEXT, 1)
    histories = [[] for _ in range(SESSIONS)]
    thirds = [[0.0, 0, 0] for _ in range(3)]
    answers = []
    cpu = 'tokd_request_cpu_seconds_total{endpoint="/tokenize"}'
    for turn in range(TURNS):
        third = thirds[min(2, turn * 3 // TURNS)]
        for s in range(SESSIONS):
            histories[s].append({"role": "user", "content": next(msgs)})
            before = server.metric(cpu)
            ids = server.tokenize(histories[s])
            third[0] += server.metric(cpu) - before
            third[1] += 1
            third[2] += sum(len(m["content"].encode()) for m in histories[s])
            answers.append(ids)
            histories[s].append({"role": "assistant", "content": next(msgs)})
    return thirds, answers


def main():
    results = {}
    for label, args in [("cache", []), ("no cache", ["--prefix-cache-bytes", "0"])]:
        server = Tokd(*args)
        try:
            thirds, answers = replay(server)
            hits = server.metric('tokd_prefix_cache_lookups_total{result="hit"}')
            saved = server.metric("tokd_prefix_cache_saved_bytes_total")
        finally:
            server.stop()
        results[label] = (thirds, answers, hits, saved)
    same = results["cache"][1] == results["no cache"][1]
    n = len(results["cache"][1])
    print(f"multi-turn replay: {SESSIONS} sessions x {TURNS} turns, Qwen3's template, /tokenize with messages, "
          f"one worker; {n} requests; ids with and without the cache identical: {same}")
    print()
    print("| turns | history per request (KB) | CPU µs per request, no cache | with the prefix cache | cache / no cache |")
    print("|---|---:|---:|---:|---:|")
    names = [f"1-{TURNS // 3}", f"{TURNS // 3 + 1}-{2 * TURNS // 3}", f"{2 * TURNS // 3 + 1}-{TURNS}"]
    per = {}
    for i, name in enumerate(names):
        c, nc = results["cache"][0][i], results["no cache"][0][i]
        per[i] = (c[0] / c[1] * 1e6, nc[0] / nc[1] * 1e6)
        print(f"| {name} | {c[2] / c[1] / 1000:.1f} | {per[i][1]:.0f} | {per[i][0]:.0f} | {per[i][0] / per[i][1]:.2f} |")
    print()
    print(f"last third / first third: {per[2][1] / per[0][1]:.2f}x without the cache, "
          f"{per[2][0] / per[0][0]:.2f}x with it; cache hits {results['cache'][2]:.0f} of {n}, "
          f"{results['cache'][3] / 1e6:.1f} MB of history not tokenized again")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
