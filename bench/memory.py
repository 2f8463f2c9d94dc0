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
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import ROOT, TOKD, Server, model_dir, wait_for  # noqa: E402

MODELS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "build", "models")
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
    s = Server("--threads", "2", "--cache-dir", os.path.join(ROOT, "build", "memory-cache"), *args, tokd=TOKD)
    try:
        # the ready line is logged a moment after /ready turns 200
        wait_for(lambda: any('"msg":"ready"' in line for line in s.lines), 10)
        ready = next(json.loads(line)["ready_ms"] for line in s.lines if '"msg":"ready"' in line)
        time.sleep(0.3)
        idle = status(s.proc.pid)
        names = [e["name"] for e in s.json("GET", "/encodings")[1]["encodings"]]
        for name in names:
            for f in sorted(os.listdir(os.path.join(ROOT, "bench", "data"))):
                body = open(os.path.join(ROOT, "bench", "data", f), "rb").read()
                s.request("POST", f"/count?encoding={name}", body, {"Content-Type": "text/plain"}, timeout=60)
        after = status(s.proc.pid)
        mb = lambda v: f"{v / 1e6:.1f}"
        print(f"| {label} | {ready:.0f} ms | {mb(idle[0])} MB ({mb(idle[1])} + {mb(idle[2])}) | "
              f"{mb(after[0])} MB ({mb(after[1])} + {mb(after[2])}) |", flush=True)
    finally:
        s.kill()


def main():
    # "first start" means no cached tables
    subprocess.run(["rm", "-rf", os.path.join(ROOT, "build", "memory-cache")], check=True)
    print("| tokenizers | ready after | resident idle (anonymous + file) | after text |")
    print("|---|---:|---:|---:|")
    measure("all five built-in encodings (`make run`)", [])
    measure("cl100k_base + o200k_base", ["--encodings", "cl100k_base,o200k_base"])
    for label, d in OPEN.items():
        path = os.path.join(model_dir(d, MODELS), "tokenizer.json")
        if os.path.exists(path):
            # run twice: the first start builds and caches the fast encoder's tables
            measure(f"{label} (first start)", ["--encodings", "none", "--tokenizer", f"m={path}"])
            measure(f"{label} (tables cached)", ["--encodings", "none", "--tokenizer", f"m={path}"])


if __name__ == "__main__":
    main()
