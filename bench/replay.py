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
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import Server  # noqa: E402

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


class Tokd(Server):
    """tokd with one worker and Qwen3 (MODEL), as the replay measures it."""

    def __init__(self, *args):
        super().__init__("--threads", "1", "--split-threads", "1", "--log-level", "error",
                         "--tokenizer", f"qwen3={MODEL}", *args, tokd=TOKD)

    def tokenize(self, messages):
        status, hdrs, data = self.request("POST", "/tokenize", {"model": "qwen3", "messages": messages}, timeout=60)
        if status != 200:
            raise RuntimeError(data[:300])
        return json.loads(data)["tokens"]


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
            before = server.metric(cpu, 0.0)
            ids = server.tokenize(histories[s])
            third[0] += server.metric(cpu, 0.0) - before
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
            hits = server.metric('tokd_prefix_cache_lookups_total{result="hit"}', 0.0)
            saved = server.metric("tokd_prefix_cache_saved_bytes_total", 0.0)
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
