#!/usr/bin/python3
"""The Python render path a router runs today, as small as it gets: an HTTP server whose
POST /v1/chat/completions/render prepares the messages as vLLM does, renders them with
jinja2 set up as transformers sets it up (template compiled once), and tokenizes with
Hugging Face's tokenizers (its Rust core through npm, in a helper process: Python's
`tokenizers` is not installable here). vLLM itself (`vllm launch render`) cannot be
installed here either; this is a lower bound on its cost, without pydantic and FastAPI.

usage: bench/servers/render_ref.py PORT MODEL_DIR REF_DIR  (PORT 0: any; the first line printed says which)
"""
import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "tools"))
import gen_chat_golden as ref  # noqa: E402

PORT, MODEL_DIR, REF_DIR = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(os.path.join(MODEL_DIR, "tokenizer_config.json"), encoding="utf-8") as fh:
    CFG = json.load(fh)
ENV = ref.make_env()
SOURCE = CFG["chat_template"]
TEMPLATE = ENV.from_string(SOURCE)
OPENAI_FORMAT = ref.iterates_content(ENV, SOURCE)
SPECIAL = {k: ref.token_text(CFG.get(k)) for k in ("bos_token", "eos_token") if ref.token_text(CFG.get(k))}
TOK = subprocess.Popen(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "render_ref_tok.mjs"),
                        REF_DIR, os.path.join(MODEL_DIR, "tokenizer.json")],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one write per answer, no Nagle: otherwise a delayed ACK adds 40 ms to every request
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = TEMPLATE.render(messages=ref.prepare(body["messages"], OPENAI_FORMAT),
                               tools=ref.prepare_tools(body.get("tools")), documents=None,
                               add_generation_prompt=True, **SPECIAL)
        with LOCK:
            TOK.stdin.write((json.dumps(text) + "\n").encode())
            TOK.stdin.flush()
            ids = json.loads(TOK.stdout.readline())
        out = json.dumps({"token_ids": ids}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


SERVER = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(json.dumps({"port": SERVER.server_address[1], "tokenizer_pid": TOK.pid}), flush=True)
SERVER.serve_forever()
