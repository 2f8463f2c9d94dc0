#!/usr/bin/env python3
"""Integration tests: start the real `tokd serve` on an ephemeral loopback port and check
every endpoint and every error over real HTTP. Standard library only.

Usage: tests/http_test.py build/tokd [TEST...]   (only the tests named: make http-test ONLY=...)
Every loop here is bounded; every socket has a timeout; servers are killed on exit.
"""
import base64
import http.client
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

from harness import (HERE, TOKD, Server, check, model_dir, open_request, read_to_end, run_tests,
                     select_tests, summary, wait_for)

TOKD_LOAD = os.path.join(os.path.dirname(TOKD), "tokd-load")
DATA = os.path.join(HERE, "data")
ENCODINGS = ["r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base"]


def golden(encoding, name):
    with open(os.path.join(DATA, "golden", encoding, name + ".ids")) as f:
        return [int(x) for x in f.read().split()]


def corpus(name):
    with open(os.path.join(DATA, "corpus", name), "rb") as f:
        return f.read()


def is_error(status, body, want_status, code=None):
    return (status == want_status and isinstance(body, dict) and "error" in body
            and set(body["error"]) == {"message", "type", "param", "code"}
            and (code is None or body["error"]["code"] == code))


def test_basics(s):
    st, body, _ = s.json("GET", "/health")
    check("health", st == 200 and body == {"status": "ok"})
    st, body, _ = s.json("GET", "/ready")
    check("ready", st == 200 and body["status"] == "ready")
    st, body, _ = s.json("GET", "/encodings")
    names = [e["name"] for e in body["encodings"]]
    check("encodings lists all", names == ENCODINGS, names)
    cl = body["encodings"][3]
    check("encodings fields", cl["n_vocab"] == 100277 and cl["special_tokens"]["<|endoftext|>"] == 100257
          and cl["sha256"].startswith("223921b7") and "\\p{L}" in cl["pattern"], cl)
    st, hdrs, _ = s.request("HEAD", "/health")
    check("HEAD health", st == 200)


def test_golden_over_http(s):
    for enc in ENCODINGS:
        for name in ["prose_multi.txt", "code_c.txt", "cjk.txt", "emoji.txt", "gen_whitespace.txt",
                     "gen_run_space.txt", "gen_random_03.txt"]:
            text = corpus(name).decode()
            st, body, _ = s.json("POST", "/encode", {"text": text, "encoding": enc})
            want = golden(enc, name)
            check(f"golden {enc} {name}", st == 200 and body["tokens"] == want and body["count"] == len(want))
            # the same text as a text/plain body, options in the query string
            st, hdrs, raw = s.request("POST", f"/encode?encoding={enc}", corpus(name),
                                      {"Content-Type": "text/plain; charset=utf-8"})
            check(f"text/plain {enc} {name}", st == 200 and json.loads(raw)["tokens"] == want)
    # curl --data-binary sends application/x-www-form-urlencoded: treated as text
    st, hdrs, raw = s.request("POST", "/count", corpus("prose_en.txt"),
                              {"Content-Type": "application/x-www-form-urlencoded"})
    check("curl default content type", st == 200 and json.loads(raw)["count"] == len(golden("cl100k_base", "prose_en.txt")))
    st, hdrs, raw = s.request("POST", "/encode", b'{"text":"hello world"}',
                              {"Content-Type": "application/x-www-form-urlencoded"})
    check("curl -d JSON is sniffed", st == 200 and json.loads(raw)["tokens"] == [15339, 1917], raw)


def test_encode_options(s):
    st, body, _ = s.json("POST", "/encode", {"text": "hello world", "model": "gpt-4o"})
    check("model -> o200k", st == 200 and body["encoding"] == "o200k_base" and body["tokens"] == [24912, 2375])
    st, body, _ = s.json("POST", "/encode", {"text": "x", "model": "no-such-model"})
    check("unknown model 404", is_error(st, body, 404, "unknown_model"))
    st, body, _ = s.json("POST", "/encode", {"text": "x", "encoding": "nope"})
    check("unknown encoding 404", is_error(st, body, 404, "unknown_encoding") and body["error"]["param"] == "encoding")
    st, body, _ = s.json("POST", "/encode", {"text": "x", "encoding": "cl100k_base", "model": "gpt-4o"})
    check("conflicting model/encoding", is_error(st, body, 400, "conflicting_fields"))
    st, body, _ = s.json("POST", "/encode", {"text": ["hello", "world", "hello world"]})
    check("batch order", st == 200 and [r["tokens"] for r in body["results"]] == [[15339], [14957], [15339, 1917]]
          and body["total"] == 4)
    st, body, _ = s.json("POST", "/encode", {"text": ["x"] * 9})
    check("batch over limit 413", is_error(st, body, 413, "batch_too_large"))
    text = "naïve café 🎉 done"
    st, body, _ = s.json("POST", "/encode", {"text": text, "offsets": True})
    raw = text.encode()
    pieces = b"".join(raw[a:b] for a, b in body["offsets"])
    check("offsets", st == 200 and body["offset_unit"] == "utf8_byte" and pieces == raw
          and body["offsets"][0][0] == 0 and body["offsets"][-1][1] == len(raw))
    st, full, _ = s.json("POST", "/encode", {"text": "one two three four five"})
    st, right, _ = s.json("POST", "/encode", {"text": "one two three four five", "max_tokens": 2})
    st2, left, _ = s.json("POST", "/encode", {"text": "one two three four five", "max_tokens": 2, "truncation_side": "left"})
    check("truncate right", right["tokens"] == full["tokens"][:2] and right["truncated"] and right["total_count"] == 5)
    check("truncate left", left["tokens"] == full["tokens"][-2:] and left["truncated"])
    st, body, _ = s.json("POST", "/encode", {"text": "a<|endoftext|>b"})
    check("specials ordinary by default", st == 200 and 100257 not in body["tokens"])
    st, body, _ = s.json("POST", "/encode", {"text": "a<|endoftext|>b", "allowed_special": ["<|endoftext|>"]})
    check("allowed_special list", st == 200 and body["tokens"] == [64, 100257, 65])
    st, body, _ = s.json("POST", "/encode", {"text": "a<|endoftext|>b", "disallowed_special": "all"})
    check("disallowed special 400", is_error(st, body, 400, "disallowed_special_token"))
    st, body, _ = s.json("POST", "/encode", {"text": "x", "allowed_special": ["<|nope|>"]})
    check("unknown special 400", is_error(st, body, 400, "unknown_special_token"))
    st, body, _ = s.json("POST", "/encode", {"text": "x", "offset": True})
    check("unknown field 400", is_error(st, body, 400, "unknown_field") and body["error"]["param"] == "offset")
    st, body, _ = s.json("POST", "/encode", {"text": 5})
    check("text wrong type", is_error(st, body, 400, "invalid_type"))
    st, body, _ = s.json("POST", "/encode", {"encoding": "cl100k_base"})
    check("missing text", is_error(st, body, 400, "missing_field"))
    big = "a" * 1000000
    st, hdrs, raw = s.request("POST", "/count", big.encode(), {"Content-Type": "text/plain"})
    check("one million 'a' counts", st == 200 and json.loads(raw)["count"] == 125000, raw[:200])


def test_count(s):
    text = corpus("prose_en.txt").decode()
    n = len(golden("cl100k_base", "prose_en.txt"))
    st, body, _ = s.json("POST", "/count", {"text": text})
    check("count", st == 200 and body["count"] == n and "tokens" not in body)
    st, body, _ = s.json("POST", "/count", {"text": text, "limit": 10})
    check("count limit exceeded", st == 200 and body["fits"] is False and body["exact"] is False and body["count"] == 11)
    st, body, _ = s.json("POST", "/count", {"text": text, "limit": n})
    check("count limit fits", st == 200 and body["fits"] is True and body["count"] == n)
    st, body, _ = s.json("POST", "/count", {"text": "x", "limit": 0})
    check("count limit 0", st == 200 and body["fits"] is False)


def test_decode(s):
    st, body, _ = s.json("POST", "/decode", {"tokens": [15339, 1917]})
    check("decode", st == 200 and body["text"] == "hello world")
    st, body, _ = s.json("POST", "/decode", {"tokens": [[15339], [1917]], "encoding": "cl100k_base"})
    check("decode batch", st == 200 and [r["text"] for r in body["results"]] == ["hello", " world"])
    emoji = golden("cl100k_base", "emoji.txt")
    st, body, _ = s.json("POST", "/decode", {"tokens": emoji, "bytes": True})
    check("decode exact bytes", st == 200 and base64.b64decode(body["bytes"]) == corpus("emoji.txt")
          and body["text"] == corpus("emoji.txt").decode())
    st, body, _ = s.json("POST", "/decode", {"tokens": [236]})
    check("decode lossy U+FFFD", st == 200 and body["text"] == "\ufffd")
    for bad, param in [([15339, 100256], "tokens[1]"), ([100261], "tokens[0]"), ([4294967295], "tokens[0]")]:
        st, body, _ = s.json("POST", "/decode", {"tokens": bad})
        check(f"decode unknown {bad}", is_error(st, body, 400, "unknown_token") and body["error"]["param"] == param
              and str(bad[-1]) in body["error"]["message"], body)
    for bad in [[-1], [1.5], [4294967296], ["1"], [1e300]]:
        st, body, _ = s.json("POST", "/decode", {"tokens": bad})
        check(f"decode invalid id {bad}", is_error(st, body, 400, "invalid_token"), body)
    st, body, _ = s.json("POST", "/decode", {"tokens": [[1], 2]})
    check("decode mixed batch", is_error(st, body, 400, "invalid_type"))
    st, hdrs, raw = s.request("POST", "/decode", "15339 1917\n", {"Content-Type": "text/plain"})
    check("decode text/plain ids", st == 200 and json.loads(raw)["text"] == "hello world")
    # streaming: feed the ids of an emoji text one at a time, carrying the tail
    text, tail = "", None
    for tid in emoji:
        req = {"tokens": [tid], "stream": True}
        if tail:
            req["tail"] = tail
        st, body, _ = s.json("POST", "/decode", req)
        if st != 200 or "\ufffd" in body["text"]:
            break
        text += body["text"]
        tail = body["tail"]
    check("streaming decode", text == corpus("emoji.txt").decode() and tail == "", (text[:40], tail))
    st, body, _ = s.json("POST", "/decode", {"tokens": [1], "tail": "!!"})
    check("bad tail", is_error(st, body, 400, "invalid_tail"))


def test_vllm(s):
    st, body, _ = s.json("POST", "/tokenize", {"prompt": "hello world", "model": "whatever/llm", "add_special_tokens": True})
    check("tokenize shape", st == 200 and list(body) == ["count", "max_model_len", "tokens"]
          and body["tokens"] == [15339, 1917] and body["count"] == 2)
    st, body, _ = s.json("POST", "/detokenize", {"tokens": [15339, 1917], "model": "whatever/llm"})
    check("detokenize shape", st == 200 and body == {"prompt": "hello world"})
    st, body, _ = s.json("POST", "/tokenize", {"messages": [{"role": "user", "content": "hi"}]})
    # the default encoding (cl100k_base) has no chat template: said clearly (chat_test.py covers chats)
    check("tokenize messages without a template", is_error(st, body, 400, "no_chat_template"))


# ---- vLLM's render API (POST /v1/completions/render, /v1/chat/completions/render, GET
# /v1/models). The expected answers are written from vLLM's code, which cannot be installed
# here: GenerateRequest (vllm/entrypoints/serve/disagg/protocol.py) as
# serve/render/serving.py fills it; sampling_params as CompletionRequest.to_sampling_params
# (openai/completion/protocol.py) builds SamplingParams (vllm/sampling_params.py) and msgspec
# serializes it with omit_defaults (only fields unlike their default, in declaration order);
# length rules and messages from vllm/renderers/params.py; errors as ErrorResponse
# (openai/engine/protocol.py: message, type, param, code = the status).
GENERATE_KEYS = ["request_id", "token_ids", "features", "sampling_params", "model", "stream",
                 "stream_options", "cache_salt", "priority", "kv_transfer_params"]
SAMPLING_ORDER = ["n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p",
                  "top_k", "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens",
                  "skip_special_tokens", "spaces_between_special_tokens", "include_stop_str_in_output",
                  "output_kind", "skip_clone", "output_text_buffer_length", "allowed_token_ids", "extra_args",
                  "bad_words", "skip_reading_prefix_cache"]
SAMPLING_DEFAULTS = {"n": 1, "presence_penalty": 0.0, "frequency_penalty": 0.0, "repetition_penalty": 1.0,
                     "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "seed": None, "stop": None,
                     "stop_token_ids": None, "ignore_eos": False, "max_tokens": 16, "min_tokens": 0,
                     "skip_special_tokens": True, "spaces_between_special_tokens": True,
                     "include_stop_str_in_output": False, "output_kind": 0, "skip_clone": False,
                     "output_text_buffer_length": 0, "allowed_token_ids": None, "extra_args": None,
                     "bad_words": None, "skip_reading_prefix_cache": None}


def vllm_sampling(req, max_tokens):
    """SamplingParams.from_optional(...) + __post_init__ + msgspec.to_builtins(omit_defaults)."""
    g = lambda k, d: req.get(k) if req.get(k) is not None else d
    stop = req.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    p = {"n": g("n", 1), "presence_penalty": float(g("presence_penalty", 0.0)),
         "frequency_penalty": float(g("frequency_penalty", 0.0)),
         "repetition_penalty": float(g("repetition_penalty", 1.0)), "temperature": float(g("temperature", 1.0)),
         "top_p": float(g("top_p", 1.0)), "top_k": g("top_k", 0), "min_p": float(g("min_p", 0.0)),
         "seed": None if req.get("seed") == -1 else req.get("seed"), "stop": stop,
         "stop_token_ids": list(dict.fromkeys(req.get("stop_token_ids") or [])),
         "ignore_eos": g("ignore_eos", False), "max_tokens": max_tokens, "min_tokens": g("min_tokens", 0),
         "skip_special_tokens": g("skip_special_tokens", True),
         "spaces_between_special_tokens": g("spaces_between_special_tokens", True),
         "include_stop_str_in_output": g("include_stop_str_in_output", False),
         "output_kind": 1 if req.get("stream") else 2, "skip_clone": True,
         "output_text_buffer_length": 0, "allowed_token_ids": req.get("allowed_token_ids"),
         "extra_args": {"kv_transfer_params": req["kv_transfer_params"]} if req.get("kv_transfer_params") else None,
         "bad_words": list(dict.fromkeys(req.get("bad_words") or [])), "skip_reading_prefix_cache": False}
    if 0 < p["temperature"] < 1e-2:
        p["temperature"] = 1e-2
    if p["stop"] and not p["include_stop_str_in_output"]:
        p["output_text_buffer_length"] = max(len(x) for x in p["stop"]) - 1
    if p["temperature"] < 1e-5:
        p.update(top_p=1.0, top_k=0, min_p=0.0)
    return {k: p[k] for k in SAMPLING_ORDER if p[k] != SAMPLING_DEFAULTS[k]}


def is_vllm_error(status, body, want_status, message=None):
    types = {400: "BadRequestError", 404: "NotFoundError"}
    return (status == want_status and isinstance(body, dict) and list(body) == ["error"]
            and list(body["error"]) == ["message", "type", "param", "code"]
            and body["error"]["code"] == want_status and body["error"]["type"] == types.get(want_status)
            and (message is None or body["error"]["message"] == message))


def test_render_api(s):
    hello = [15339, 1917]  # cl100k_base "hello world"
    st, body, hdrs = s.json("POST", "/v1/completions/render", {"model": "cl100k_base", "prompt": "hello world"})
    check("completions render: a list of one GenerateRequest", st == 200 and isinstance(body, list) and len(body) == 1
          and list(body[0]) == GENERATE_KEYS and hdrs["content-type"].startswith("application/json"), body)
    g = body[0] if st == 200 else {}
    check("completions render: vLLM's fields and defaults", g.get("token_ids") == hello and g["features"] is None
          and g["model"] == "cl100k_base" and g["stream"] is False and g["stream_options"] is None
          and g["cache_salt"] is None and g["priority"] == 0 and g["kv_transfer_params"] is None
          and re.fullmatch(r"cmpl-[0-9a-f]{32}", g["request_id"]), g)
    # CompletionRequest.max_tokens defaults to 16 (omitted: the SamplingParams default)
    check("completions render: sampling_params", g.get("sampling_params") == vllm_sampling({}, 16)
          and list(g["sampling_params"]) == list(vllm_sampling({}, 16)), g.get("sampling_params"))
    st, raw_hdrs, raw = s.request("POST", "/v1/completions/render", {"prompt": "hello world"})
    check("completions render: compact JSON as FastAPI writes it", st == 200 and raw.startswith(b'[{"request_id":"cmpl-')
          and b", " not in raw and b'"model":null' in raw and not raw.endswith(b"\n"), raw[:200])
    st, body, _ = s.json("POST", "/v1/completions/render", {"prompt": ["hello world", "hello"], "add_special_tokens": False})
    check("completions render: a list of prompts", st == 200 and [x["token_ids"] for x in body] == [hello, [15339]]
          and len({x["request_id"] for x in body}) == 2, body)
    st, body, _ = s.json("POST", "/v1/completions/render", {"prompt": [[1, 2, 3], [4]]})
    check("completions render: lists of token ids", st == 200 and [x["token_ids"] for x in body] == [[1, 2, 3], [4]], body)
    # long stop lists are deduplicated in one pass (each id was compared with every kept
    # one: 200,000 ids took minutes of a core); first occurrences kept, in order
    ids = list(range(1000000, 1200000)) + [1000000, 1000001]
    st, body, _ = s.json("POST", "/v1/completions/render", {"prompt": "hi", "stop_token_ids": ids})
    check("render: 200,000 stop ids deduplicated", st == 200 and
          body[0]["sampling_params"]["stop_token_ids"] == ids[:200000], (st, str(body)[:200]))
    st, body, _ = s.json("POST", "/v1/completions/render", {"prompt": "hi", "bad_words": ["a", "b", "a", "c"]})
    check("render: bad words deduplicated in order", st == 200 and
          body[0]["sampling_params"]["bad_words"] == ["a", "b", "c"], (st, str(body)[:300]))
    st, body, _ = s.json("POST", "/v1/completions/render", {"prompt": [7, 8]})
    check("completions render: token ids", st == 200 and len(body) == 1 and body[0]["token_ids"] == [7, 8], body)
    # sampling fields: each case compared with the Python transcription of vLLM's rules
    cases = [
        {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 7, "max_tokens": 100},
        {"temperature": 0, "top_p": 0.5, "top_k": 5},  # greedy resets top_p, top_k, min_p
        {"temperature": 0.001},  # raised to 0.01
        {"stop": "END", "stop_token_ids": [5, 5, 9], "bad_words": ["x", "x", "y"], "seed": -1},
        {"stop": ["a", "été"], "include_stop_str_in_output": False, "presence_penalty": 1, "frequency_penalty": -0.5},
        {"stream": True, "stream_options": {"include_usage": False}, "repetition_penalty": 1.1, "n": 2},
        {"kv_transfer_params": {"do_remote_decode": True, "remote_port": 5}, "ignore_eos": True, "min_tokens": 3},
        {"allowed_token_ids": [1, 2], "skip_special_tokens": False, "spaces_between_special_tokens": False},
        {"max_tokens": None},
    ]
    for c in cases:
        st, body, _ = s.json("POST", "/v1/completions/render", dict(c, prompt="hello world"))
        want_max = 16 if "max_tokens" not in c else c["max_tokens"] if c["max_tokens"] is not None else 16
        want = vllm_sampling(c, want_max)
        got = body[0]["sampling_params"] if st == 200 else body
        check(f"sampling_params {json.dumps(c)}", st == 200 and got == want and list(got) == list(want),
              f"{st} got {got} want {want}")
    st, body, _ = s.json("POST", "/v1/completions/render", {"prompt": "x", "stream": True, "stream_options": {"include_usage": False}})
    check("stream_options when streamed", st == 200 and body[0]["stream"] is True
          and body[0]["stream_options"] == {"include_usage": False, "continuous_usage_stats": False}, body)
    st, body, _ = s.json("POST", "/v1/completions/render", {"prompt": "x", "cache_salt": "salt", "priority": -3})
    check("cache_salt and priority", st == 200 and body[0]["cache_salt"] == "salt" and body[0]["priority"] == -3, body)
    st, raw_h, raw = s.request("POST", "/v1/completions/render", {"prompt": "x", "temperature": 0.1, "top_p": 1e-05})
    check("floats written as Python writes them", st == 200 and b'"temperature":0.1,"top_p":1e-05' in raw, raw[:300])

    # errors: vLLM's ErrorResponse shape and status, never a 5xx
    bad = [
        ({"model": "no-such-model", "prompt": "x"}, 404, "The model `no-such-model` does not exist."),
        ({"model": "cl100k_base"}, 400, "Either prompt or prompt_embeds must be provided and non-empty."),
        ({"prompt": []}, 400, None),
        ({"prompt": "x", "temperature": "hot"}, 400, None),
        ({"prompt": "x", "temperature": 3}, 400, "temperature must be in [0, 2], got 3.0."),
        ({"prompt": "x", "top_p": 0}, 400, "top_p must be in (0, 1], got 0.0."),
        ({"prompt": "x", "n": 0}, 400, "n must be at least 1, got 0."),
        ({"prompt": "x", "n": 2, "temperature": 0}, 400, "n must be 1 when using greedy sampling, got 2."),
        ({"prompt": "x", "stop": ["a", ""]}, 400, "stop cannot contain an empty string."),
        ({"prompt": "x", "stop": 5}, 400, None),
        ({"prompt": "x", "stream_options": {"include_usage": True}}, 400,
         "Stream options can only be defined when `stream=True`."),
        ({"prompt": "x", "use_beam_search": True}, 400, "Beam search is not supported by the render endpoint"),
        ({"prompt": "x", "cache_salt": ""}, 400, "Parameter 'cache_salt' must be a non-empty string if provided."),
        ({"prompt": "x", "max_tokens": 0}, 400, "max_tokens must be at least 1, got 0."),
        ({"prompt": "x", "min_tokens": 20}, 400, "min_tokens must be less than or equal to max_tokens=16, got 20."),
        ({"prompt": [1, -2]}, 400, None),
        ({"prompt": [[1], "x"]}, 400, None),
        ({"prompt": "x", "truncate_prompt_tokens": -5}, 400, None),
    ]
    for req, want, msg in bad:
        st, body, _ = s.json("POST", "/v1/completions/render", req)
        check(f"render error {json.dumps(req)}", is_vllm_error(st, body, want, msg), f"{st} {body}")
    st, body, _ = s.json("POST", "/v1/completions/render", "{not json")
    check("render: bad JSON in vLLM's shape", is_vllm_error(st, body, 400), body)
    st, body, _ = s.json("POST", "/v1/chat/completions/render", {"model": "cl100k_base", "messages": [{"role": "user", "content": "hi"}]})
    check("chat render of an encoding without a template: a clear 400", is_vllm_error(st, body, 400)
          and "no chat template" in body["error"]["message"], body)
    st, body, _ = s.json("POST", "/v1/chat/completions/render", {"model": "cl100k_base"})
    check("chat render without messages: 400", is_vllm_error(st, body, 400), body)
    st, body, _ = s.json("POST", "/v1/chat/completions/render", {"model": "gpt-9", "messages": []})
    check("chat render of an unknown model: 404", is_vllm_error(st, body, 404, "The model `gpt-9` does not exist."), body)
    st, body, _ = s.json("GET", "/v1/chat/completions/render")
    check("render is POST only", st == 405, body)

    st, body, _ = s.json("GET", "/v1/models")
    card = body["data"][0] if st == 200 and body.get("data") else {}
    check("/v1/models: vLLM's ModelList", st == 200 and list(body) == ["object", "data"] and body["object"] == "list"
          and [m["id"] for m in body["data"]] == ENCODINGS
          and list(card) == ["id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission"]
          and card["object"] == "model" and card["owned_by"] == "vllm" and card["max_model_len"] is None
          and card["permission"][0]["object"] == "model_permission", body)


def test_render_context():
    """max_model_len: the limit of the render API (vllm/renderers/params.py's checks)."""
    s = Server("--model-max-len", "cl100k_base=16", "--max-model-len", "100")
    try:
        prompt = " ".join(["word"] * 20)  # 20 tokens in cl100k_base
        st, body, _ = s.json("POST", "/encode", {"text": prompt, "encoding": "cl100k_base"})
        ids = body["tokens"]
        check("context: the prompt is 20 tokens", len(ids) == 20, len(ids))
        st, body, _ = s.json("POST", "/v1/completions/render", {"model": "cl100k_base", "prompt": prompt, "max_tokens": 4})
        check("context overflow: vLLM's message", is_vllm_error(st, body, 400,
              "You passed 20 input tokens and requested 4 output tokens. However, the model's context length is "
              "only 16 tokens, resulting in a maximum input length of 12 tokens. Please reduce the length of the "
              "input prompt.") and body["error"]["param"] == "input_tokens", body)
        st, body, _ = s.json("POST", "/v1/completions/render", {"model": "cl100k_base", "prompt": prompt,
                                                                  "max_tokens": 4, "truncate_prompt_tokens": 5})
        check("truncate_prompt_tokens keeps the last ids", st == 200 and body[0]["token_ids"] == ids[-5:]
              and body[0]["sampling_params"]["max_tokens"] == 4, body)
        st, body, _ = s.json("POST", "/v1/completions/render", {"model": "cl100k_base", "prompt": prompt, "max_tokens": 4,
                                                                  "truncate_prompt_tokens": 5, "truncation_side": "right"})
        check("truncation_side right keeps the first", st == 200 and body[0]["token_ids"] == ids[:5], body)
        st, body, _ = s.json("POST", "/v1/completions/render", {"model": "cl100k_base", "prompt": prompt,
                                                                  "truncate_prompt_tokens": -1, "max_tokens": 6})
        check("truncate_prompt_tokens -1: the context less the output", st == 200 and body[0]["token_ids"] == ids[-10:]
              and body[0]["sampling_params"]["max_tokens"] == 6, body)
        st, body, _ = s.json("POST", "/v1/completions/render", {"model": "cl100k_base", "prompt": prompt,
                                                                  "truncate_prompt_tokens": 13, "max_tokens": 4})
        check("truncation larger than the room", is_vllm_error(st, body, 400,
              "truncate_prompt_tokens=13 cannot be greater than max_model_len - max_tokens = 12. "
              "Please request a smaller truncation size."), body)
        st, body, _ = s.json("POST", "/v1/completions/render", {"model": "cl100k_base", "prompt": "word", "max_tokens": 17})
        check("more output tokens than the context: TokenizeParams' message", is_vllm_error(st, body, 400,
              "max_tokens=17cannot be greater than max_model_len=max_total_tokens=16. Please request fewer output tokens."), body)
        st, body, _ = s.json("POST", "/v1/completions/render", {"model": "cl100k_base", "prompt": "word word", "max_tokens": None})
        check("max_tokens: what the context has left", st == 200 and body[0]["sampling_params"]["max_tokens"] == 14, body)
        st, body, _ = s.json("POST", "/v1/completions/render", {"model": "o200k_base", "prompt": prompt})
        check("--max-model-len for the others", st == 200 and body[0]["sampling_params"].get("max_tokens", 16) == 16, body)
        st, body, _ = s.json("GET", "/v1/models")
        lens = {m["id"]: m["max_model_len"] for m in body["data"]}
        check("/v1/models: max_model_len per model", lens.get("cl100k_base") == 16 and lens.get("o200k_base") == 100, lens)
        st, body, _ = s.json("POST", "/tokenize", {"prompt": "hi", "model": "cl100k_base"})
        check("/tokenize reports the model's max_model_len", st == 200 and body["max_model_len"] == 16, body)
    finally:
        s.stop()
    proc = subprocess.run([TOKD, "serve", "--port", "0", "--model-max-len", "nope=5"], capture_output=True, timeout=30)
    check("--model-max-len of a model not loaded is refused", proc.returncode == 2 and b"nope=5" in proc.stderr, proc.stderr)


def test_errors(s):
    st, body, _ = s.json("POST", "/encode", b'{"text": "abc",,}', {"Content-Type": "application/json"})
    pos = re.search(r"byte (\d+)", body["error"]["message"]) if body else None
    check("malformed JSON 400 with position", is_error(st, body, 400, "invalid_json") and pos
          and 14 <= int(pos.group(1)) <= 16, body)
    deep = b"[" * 200000 + b"]" * 200000
    st, body, _ = s.json("POST", "/encode", deep, {"Content-Type": "application/json"})
    check("deeply nested JSON 400", is_error(st, body, 400, "invalid_json"))
    st, body, _ = s.json("POST", "/encode", b'["text"]', {"Content-Type": "application/json"})
    check("non-object JSON 400", is_error(st, body, 400, "invalid_json"))
    st, body, _ = s.json("POST", "/encode", b'{"text":"a"} x', {"Content-Type": "application/json"})
    check("trailing garbage 400", is_error(st, body, 400, "invalid_json"))
    st, body, _ = s.json("POST", "/encode", b"ok \xff more", {"Content-Type": "text/plain"})
    check("invalid UTF-8 text 422", is_error(st, body, 422, "invalid_utf8") and "offset 3" in body["error"]["message"], body)
    st, body, _ = s.json("POST", "/encode", b'{"text":"ok \xc3\x28"}', {"Content-Type": "application/json"})
    check("invalid UTF-8 in JSON 422", is_error(st, body, 422, "invalid_utf8"), body)
    st, body, _ = s.json("POST", "/encode", b'{"text":"a\\u0000b"}', {"Content-Type": "application/json"})
    st2, body2, _ = s.json("POST", "/encode", b"a\x00b", {"Content-Type": "text/plain"})
    check("\\u0000 in a JSON string is a character", st == 200 and body["tokens"] == body2["tokens"] and
          len(body["tokens"]) == 3, body)
    st, body, _ = s.json("POST", "/encode", b'{"text":"a\\\\u0000b"}', {"Content-Type": "application/json"})
    check("escaped backslash + u0000 is fine", st == 200, body)
    st, body, _ = s.json("POST", "/encode?encoding=cl100k_base&encoding=o200k_base", b"hi",
                         {"Content-Type": "text/plain"})
    check("a repeated query parameter 400", is_error(st, body, 400, "duplicate_field")
          and body["error"]["param"] == "encoding", body)
    st, body, _ = s.json("GET", "/nope")
    check("404 route", is_error(st, body, 404, "unknown_route"))
    st, body, hdrs = s.json("GET", "/encode")
    check("405 method", is_error(st, body, 405) and hdrs.get("allow") == "POST")
    st, body, _ = s.json("POST", "/health", b"")
    check("405 POST health", is_error(st, body, 405))
    st, body, _ = s.json("POST", "/encode", b"<x/>", {"Content-Type": "application/xml"})
    check("415 content type", is_error(st, body, 415, "unsupported_media_type"))
    st, body, _ = s.json("POST", "/encode", b"x", {"Content-Type": "text/plain; charset=latin-1"})
    check("415 charset", is_error(st, body, 415, "unsupported_charset"))
    st, body, hdrs = s.json("POST", "/encode", b"x" * 10, {"X-Request-Id": "abc-123"})
    check("X-Request-Id echoed", hdrs.get("x-request-id") == "abc-123")
    # 413 from Content-Length alone: the server answers before any body byte is sent
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 99999999999\r\n\r\n")
    reply = sock.recv(4096)
    sock.close()
    check("413 at headers", reply.startswith(b"HTTP/1.1 413"), reply[:80])
    # 413 for a chunked body that grows past the cap: the answer may come before the
    # client has sent everything, so read whenever the socket is readable
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
    reply = b""
    chunk = b"a" * 65536
    for _ in range(40):  # 2.6 MB > the 2 MB cap
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            break
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
    else:
        sock.sendall(b"0\r\n\r\n")
    try:
        reply = sock.recv(4096)
    except OSError:
        pass
    sock.close()
    check("413 chunked", reply.startswith(b"HTTP/1.1 413"), reply[:80])


def test_slow_client(s):
    """A client that sends half its headers and stalls must not hold up others, and is
    disconnected once the connection timeout (2 s in this server) passes."""
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=15)
    slow.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
    slow2 = socket.create_connection(("127.0.0.1", s.port), timeout=15)
    slow2.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc")
    ok = all(s.json("POST", "/encode", {"text": f"request {i}"})[0] == 200 for i in range(20))
    # ordering, not timing: the others were all served while the slow clients were still
    # connected, i.e. nobody waited for the slow clients' timeout
    still_open = []
    for sock in (slow, slow2):
        sock.setblocking(False)
        try:
            still_open.append(sock.recv(1) != b"")
        except BlockingIOError:
            still_open.append(True)
        sock.setblocking(True)
    check("others served while slow clients stall", ok and all(still_open), (ok, still_open))
    closed = []
    for sock in (slow, slow2):
        try:
            data = sock.recv(4096)  # b"" (or a timeout answer) once the server hangs up
            closed.append(True)
        except socket.timeout:  # 15 s: the server never hung up
            closed.append(False)
        sock.close()
    check("slow clients cut off by the timeout", all(closed), closed)


def test_concurrency(s):
    names = ["prose_multi.txt", "code_py.txt", "cjk.txt", "gen_random_05.txt", "emoji.txt"]
    want = {}
    for n in names:
        out = subprocess.run([TOKD, "encode", "--encoding", "o200k_base"], input=corpus(n),
                             capture_output=True, check=True).stdout
        want[n] = [int(x) for x in out.split()]
    errors = []

    def worker(k):
        for i in range(15):
            n = names[(k + i) % len(names)]
            st, body, _ = s.json("POST", "/encode", {"text": corpus(n).decode(), "encoding": "o200k_base"})
            if st != 200 or body["tokens"] != want[n]:
                errors.append((k, i, n, st))
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    check("concurrent clients equal the CLI", not errors, errors[:3])


def test_split(s):
    """A long text is encoded in parts on helper threads (--split-threads 4): the answers
    (ids, offsets, counts) equal the one-thread CLI's, alone and four at a time, and the
    metrics say helpers were lent."""
    text = b""
    while len(text) < 1_400_000:
        text += corpus("prose_multi.txt") + corpus("code_py.txt") + corpus("prose_en.txt")
    text = text.decode()
    want = {}
    for enc in ["cl100k_base", "o200k_base"]:
        out = subprocess.run([TOKD, "encode", "--encoding", enc, "--threads", "1"], input=text.encode(),
                             capture_output=True, check=True).stdout
        want[enc] = [int(x) for x in out.split()]
    plain = {"Content-Type": "text/plain"}
    st, body, _ = s.json("POST", "/encode?encoding=o200k_base&offsets=true", text, plain)
    check("split encode equals one thread", st == 200 and body["tokens"] == want["o200k_base"], st)
    if st == 200:
        offs = body["offsets"]
        raw = text.encode()
        check("split offsets cover the text in order",
              len(offs) == len(body["tokens"]) and offs[0][0] == 0 and offs[-1][1] == len(raw)
              and all(offs[i][1] == offs[i + 1][0] for i in range(len(offs) - 1)))
    errors = []

    def worker(k):
        enc = ["cl100k_base", "o200k_base"][k % 2]
        path = "/encode" if k < 2 else "/count"
        st, body, _ = s.json("POST", f"{path}?encoding={enc}", text, plain)
        if st != 200 or (body.get("tokens") != want[enc] if k < 2 else body.get("count") != len(want[enc])):
            errors.append((k, st))
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    check("concurrent split requests equal one thread", not errors, errors)
    st, hdrs, raw = s.request("GET", "/metrics")
    m = re.search(rb"^tokd_split_texts_total (\d+)$", raw, re.M)
    h = re.search(rb"^tokd_split_helper_threads_total (\d+)$", raw, re.M)
    check("metrics count split texts", m and h and int(m.group(1)) >= 1 and int(h.group(1)) >= int(m.group(1)),
          (m and m.group(0), h and h.group(0)))


def test_metrics_and_logs(s):
    # its own traffic, so that it holds when run alone (ONLY=test_metrics_and_logs)
    for i in range(60):
        s.request("POST", "/encode", {"text": f"metrics {i}"}, {"X-Request-Id": "abc-123"} if i == 0 else None)
    st, hdrs, raw = s.request("GET", "/metrics")
    text = raw.decode()
    check("metrics content type", st == 200 and hdrs["content-type"].startswith("text/plain"))
    m = re.search(r'^tokd_requests_total\{endpoint="/encode",status="200"\} (\d+)$', text, re.M)
    check("metrics request counter", m and int(m.group(1)) > 10)
    check("metrics histogram", 'tokd_request_duration_seconds_bucket{endpoint="/encode",le="+Inf"}' in text)
    check("metrics process", "process_resident_memory_bytes " in text and "process_cpu_seconds_total " in text)
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    check("metric names have no colons", all(":" not in n for n in names), names)
    check("metrics tokens", re.search(r'^tokd_tokens_total\{endpoint="/encode"\} \d+$', text, re.M) is not None)
    wait_for(lambda: any("abc-123" in line for line in s.lines))
    logs = [json.loads(line) for line in s.lines if line.startswith("{")]
    reqs = [line for line in logs if line.get("msg") == "request"]
    check("one JSON log line per request", len(reqs) > 50 and all(
        {"time", "level", "method", "path", "status", "duration_ms", "bytes_in", "tokens", "request_id"} <= set(r) for r in reqs))
    check("log echoes request id", any(r["request_id"] == "abc-123" for r in reqs))


def test_load_kit(s):
    """`tokd-load` drives the server at constant rates and reports cost and a sizing."""
    svg = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tokd-load-{os.getpid()}.svg")
    out = subprocess.run([TOKD_LOAD, "--url", f"http://127.0.0.1:{s.port}", "--rates", "200,400",
                          "--duration", "1", "--p99", "1000ms", "--size-for", "10000rps", "--cpu", "70%",
                          "--replica-cores", "2", "--mix", "6,2,2", "--svg", svg, "--json"],
                         capture_output=True, text=True, timeout=60)
    try:
        rep = json.loads(out.stdout)
    except ValueError:
        check("tokd-load --json", False, out.stdout[:200] + out.stderr[:200])
        return
    steps = rep["steps"]
    check("load: every request answered", [st["ok"] for st in steps] == [200, 400] and
          all(st["errors"] == 0 for st in steps), steps)
    check("load: latency percentiles ordered", all(0 < st["p50_ms"] <= st["p99_ms"] <= st["p999_ms"] for st in steps))
    check("load: sizing", rep["capacity_rps"] > 350 and rep["replicas"] >= 1 and out.returncode == 0, rep)
    # cost from the server's /metrics: CPU per request and per 1,000 tokens agree with each other
    st = steps[-1]
    check("load: cost figures", st["cpu_us_per_request"] > 0 and st["tokens_per_s"] > 0 and
          st["rss_bytes"] > 1e6 and st["joules_per_million_tokens"] > 0 and st["energy"] in ("measured", "modelled"), st)
    per_req_tokens = st["tokens_per_s"] / st["achieved"]
    check("load: per-token CPU is per-request CPU over tokens per request",
          abs(st["cpu_us_per_1k_tokens"] - st["cpu_us_per_request"] / per_req_tokens * 1000) <=
          0.05 * st["cpu_us_per_1k_tokens"] + 0.1, st)
    # --size-for: replicas = ceil(rate / what one replica carries), which is at most the
    # CPU ceiling's share of its cores
    cpu_bound = 0.7 * 2 * 1e6 / st["cpu_us_per_request"]
    check("load: --size-for replicas", rep["replicas"] == math.ceil(10000 / rep["per_replica_rps"]) and
          rep["per_replica_rps"] <= cpu_bound * 1.001 and rep["limited_by"] in ("cpu", "latency"), rep)
    try:
        root = ET.parse(svg).getroot()
        lines = [e for e in root.iter() if e.tag.endswith("polyline")]
        check("load: --svg plot", len(lines) == 3 and all(len(e.get("points").split()) == 2 for e in lines),
              [e.get("points") for e in lines])
    except (OSError, ET.ParseError) as e:
        check("load: --svg plot", False, repr(e))
    finally:
        if os.path.exists(svg):
            os.unlink(svg)
    # --pid: the same figures from /proc, as for a server without /metrics
    out = subprocess.run([TOKD_LOAD, "--url", f"http://127.0.0.1:{s.port}", "--rates", "300", "--duration", "1",
                          "--pid", str(s.proc.pid), "--json"], capture_output=True, text=True, timeout=60)
    try:
        st = json.loads(out.stdout)["steps"][0]
        check("load: --pid", st["processes"] == 1 and st["rss_bytes"] > 1e6 and st["cpu_us_per_request"] is not None
              and st["cpu_us_per_request"] >= 0, st)
    except (ValueError, KeyError, IndexError):
        check("load: --pid", False, out.stdout[:200] + out.stderr[:200])
    bad = subprocess.run([TOKD_LOAD, "--size-for", "lots"], capture_output=True, text=True, timeout=10)
    check("load: bad --size-for", bad.returncode == 2 and "--size-for" in bad.stderr, bad.stderr)
    down = subprocess.run([TOKD_LOAD, "--url", "http://127.0.0.1:1", "--rates", "50", "--duration", "0.5"],
                          capture_output=True, text=True, timeout=60)
    check("load: refused connections are errors", down.returncode == 1 and "no rate met" in down.stdout, down.stdout)


def test_cost_metrics(s):
    """CPU, tokens and energy in /metrics move as requests are served, and agree with the
    answers; the energy gauge says whether it is measured or modelled."""
    before = s.metrics()
    tokens = 0
    text = corpus("prose_en.txt").decode()[:3000]
    for i in range(150):
        st, body, _ = s.json("POST", "/encode", {"text": text[i:]})
        tokens += body["count"]
    st, body, _ = s.json("POST", "/decode", {"tokens": [15339, 1917, 0]})
    enc = 'tokd_tokens_processed_total{direction="encoded"}'
    dec = 'tokd_tokens_processed_total{direction="decoded"}'
    # the rolling window is sampled once a second: wait for a sample after the requests
    # (on a busy machine the sampler may run late: poll for the CPU to move, bounded)
    time.sleep(1.2)
    user = 'tokd_cpu_seconds_total{mode="user"}'
    system = 'tokd_cpu_seconds_total{mode="system"}'
    for _ in range(50):
        after = s.metrics()
        # the kernel splits a process's CPU into user and system by ticks: only the sum is exact
        if after[user] + after[system] > before[user] + before[system]:
            break
        time.sleep(0.1)
    check("cost: tokens encoded counted exactly", after[enc] - before.get(enc, 0) == tokens,
          (after[enc], before.get(enc), tokens))
    check("cost: tokens decoded counted", after[dec] - before.get(dec, 0) == 3)
    check("cost: process CPU moves", after[user] + after[system] > before[user] + before[system],
          (before[user], before[system], after[user], after[system]))
    rc = 'tokd_request_cpu_seconds_total{endpoint="/encode"}'
    check("cost: CPU per request class", after[rc] > before.get(rc, 0) and
          0 < after['tokd_request_cpu_seconds_per_request{endpoint="/encode",window="60s"}'] < 0.1, after[rc])
    check("cost: CPU per token", 0 < after['tokd_cpu_seconds_per_token{window="total"}'] < 1e-3 and
          0 < after['tokd_cpu_seconds_per_token{window="60s"}'] < 1e-3)
    check("cost: energy gauge says which", after["tokd_energy_measured"] in (0, 1) and
          after["tokd_energy_model_watts_per_core"] == 3.5)
    if after["tokd_energy_measured"] == 0:
        # modelled: joules are CPU seconds times the watts (within one sample's CPU)
        j = after["tokd_energy_joules_total"]
        check("cost: modelled energy moves with CPU", j > before["tokd_energy_joules_total"] and
              j <= 3.5 * (after[user] + after['tokd_cpu_seconds_total{mode="system"}']) + 1e-3, j)
    check("cost: energy per million tokens", after['tokd_energy_joules_per_million_tokens{window="total"}'] > 0)


def test_energy_measured():
    """With RAPL counters (a fake powercap tree here), energy is measured: the packages'
    joules times tokd's share of the machine's busy CPU, across a counter wrap; sub-zones
    (intel-rapl:0:0) are not counted twice."""
    root = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tokd-rapl-{os.getpid()}")
    for zone in ["intel-rapl:0", "intel-rapl:0:0"]:
        os.makedirs(os.path.join(root, zone), exist_ok=True)
        with open(os.path.join(root, zone, "max_energy_range_uj"), "w") as f:
            f.write("262143328850\n")
        with open(os.path.join(root, zone, "energy_uj"), "w") as f:
            f.write(f"{262143328850 - 1000000}\n")  # 1 J before the wrap
    s = Server("--powercap-dir", root, "--log-level", "error")
    try:
        m = s.metrics()
        check("rapl: measured", m["tokd_energy_measured"] == 1, m["tokd_energy_measured"])
        # 5 J later (1 J to the wrap, 4 after it), with tokd busy meanwhile
        for zone in ["intel-rapl:0", "intel-rapl:0:0"]:
            with open(os.path.join(root, zone, "energy_uj"), "w") as f:
                f.write("4000000\n")
        text = corpus("prose_en.txt").decode()

        def spent():
            s.json("POST", "/count", {"text": text})
            return s.metrics()["tokd_energy_joules_total"] > 0
        moved = wait_for(spent, 10)
        j = s.metrics()["tokd_energy_joules_total"]
        check("rapl: a share of the 5 J across the wrap", moved and 0 < j <= 5.0 + 1e-6, j)
    finally:
        s.kill()
        for zone in ["intel-rapl:0:0", "intel-rapl:0"]:
            for name in ["energy_uj", "max_energy_range_uj"]:
                os.unlink(os.path.join(root, zone, name))
            os.rmdir(os.path.join(root, zone))
        os.rmdir(root)


def test_many_tokenizers():
    """Thirty tokenizers with names of the longest length allowed (128 bytes): the
    listening line is still one JSON object naming all of them, and /metrics and
    --print-memory account for every one (they were cut at 512 bytes and 128 items; "bl"
    has six structures, so thirty of it make 185 items)."""
    tiny = os.path.join(DATA, "hf", "tiny", "bl", "tokenizer.json")
    names = [f"org{i:02d}/" + "m" * 122 for i in range(30)]
    args = [a for n in names for a in ("--tokenizer", f"{n}={tiny}")] + ["--encodings", "cl100k_base"]
    s = Server(*args, "--log-level", "error")
    try:
        line = next(line for line in s.lines if '"msg":"listening"' in line)
        info = json.loads(line)
        check("many tokenizers: the listening line is JSON and names them all",
              len(names[0]) == 128 and set(info["encodings"]) == set(names) | {"cl100k_base"}, len(line))
        st, body, _ = s.json("POST", "/encode", {"encoding": names[29], "text": "hello"})
        check("many tokenizers: the last one answers", st == 200 and body["count"] > 0, (st, body))
        m = s.metrics()
        listed = {k.split('tokenizer="')[1].split('"')[0] for k in m if k.startswith("tokd_tokenizer_memory_bytes{")}
        series = sum(1 for k in m if k.startswith("tokd_tokenizer_memory_bytes{") and 'state="size"' in k)
        check("many tokenizers: /metrics has every tokenizer's memory",
              series > 128 and listed == set(names) | {"cl100k_base"}, (series, len(listed)))
    finally:
        s.kill()
    out = subprocess.run([TOKD, "serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "off",
                          "--print-memory", "on", *args], capture_output=True, text=True, timeout=60)
    printed = {r.split()[0] for r in out.stdout.splitlines() if len(r.split()) == 5 and r.split()[2] in ("anon", "file")}
    rows = [r for r in out.stdout.splitlines() if len(r.split()) == 5 and r.split()[2] in ("anon", "file")]
    check("many tokenizers: --print-memory prints every one, whole", out.returncode == 0 and len(rows) > 128 and
          printed == set(names) | {"cl100k_base"}, (out.returncode, len(rows), len(printed)))


def test_unix_socket():
    """--listen unix:PATH: curl --unix-socket, the file mode, TCP at the same time, a stale
    socket replaced, a live one and a regular file refused, bad paths refused at start,
    the file removed at exit; tokd-load and tokd health can target it."""
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tokd-uds-{os.getpid()}")
    os.makedirs(tmp, exist_ok=True)
    path = os.path.join(tmp, "tokd.sock")

    def start(*args):  # (the process, its listening line); it raises when tokd does not start
        s = Server("--encodings", "cl100k_base", *args, ready=False, seconds=30)
        return s.proc, s.info

    def curl(*args):
        return subprocess.run(["curl", "-s", "--max-time", "10", "--unix-socket", path, *args],
                              capture_output=True, text=True, timeout=20)

    try:
        proc, info = start("--listen", f"unix:{path},127.0.0.1:0", "--socket-mode", "0600")
        check("uds: listening line names the socket and the port", info and info["unix"] == [path]
              and info["port"] > 0, info)
        st = os.stat(path)
        check("uds: a socket with --socket-mode", stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
              oct(st.st_mode))
        r = curl("http://localhost/encode", "-d", '{"text":"hello world"}')
        check("uds: curl --unix-socket /encode", json.loads(r.stdout or "{}").get("tokens") == [15339, 1917], r.stdout)
        tcp = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=10)
        tcp.request("POST", "/count", body=b"hello world", headers={"Content-Type": "text/plain"})
        check("uds: TCP at the same time", json.loads(tcp.getresponse().read())["count"] == 2)
        tcp.close()
        # an oversized body sent whole before reading: the 413 still arrives (lingering close)
        raw = socket.socket(socket.AF_UNIX)
        raw.settimeout(10)
        raw.connect(path)
        raw.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 8388608\r\n\r\n")
        try:
            for _ in range(8):
                raw.sendall(b"a" * 1048576)
        except OSError:
            pass
        answer = b""
        try:
            while len(answer) < 4096:
                chunk = raw.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
        raw.close()
        check("uds: 413 reaches a client that sends first", answer.startswith(b"HTTP/1.1 413"), answer[:60])
        r = curl("-w", "\n%{http_code}", "http://localhost/nope")
        check("uds: errors over the socket", r.stdout.endswith("404") and '"unknown_route"' in r.stdout, r.stdout)
        rc = subprocess.run([TOKD, "health", "--unix", path], capture_output=True, timeout=10).returncode
        check("uds: tokd health --unix", rc == 0)
        out = subprocess.run([TOKD_LOAD, "--url", f"unix:{path}", "--rates", "300", "--duration", "1", "--json"],
                             capture_output=True, text=True, timeout=60)
        try:
            rep = json.loads(out.stdout)
            check("uds: tokd-load over the socket", rep["steps"][0]["ok"] == 300 and rep["steps"][0]["errors"] == 0
                  and rep["steps"][0]["cpu_us_per_request"] > 0, rep["steps"])
        except (ValueError, KeyError):
            check("uds: tokd-load over the socket", False, out.stdout[:200] + out.stderr[:300])
        # a second server on the same path: refused, the first one undisturbed
        second = subprocess.run([TOKD, "serve", "--listen", f"unix:{path}", "--encodings", "cl100k_base"],
                                capture_output=True, text=True, timeout=30)
        check("uds: a live socket is not taken over", second.returncode != 0 and "another server" in second.stderr,
              second.stderr)
        check("uds: first server still answers", json.loads(curl("http://localhost/health").stdout or "{}").get("status") == "ok")
        proc.send_signal(signal.SIGTERM)
        check("uds: clean exit", proc.wait(timeout=30) == 0)
        check("uds: the socket file is removed at exit", not os.path.exists(path))

        # a stale socket (its server gone without removing it) is replaced
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
        proc, info = start("--listen", f"unix:{path}")
        check("uds: stale socket replaced", info is not None and curl("http://localhost/health").returncode == 0,
              proc.stderr.read1(500) if info is None else "")
        check("uds: a Unix socket only: no TCP port", info and info["port"] == 0 and info["host"] is None, info)
        check("uds: default mode 0660", stat.S_IMODE(os.stat(path).st_mode) == 0o660)
        # the socket replaced under a running server (another instance took the path):
        # the first one's exit must not remove the second one's file
        proc.kill()
        proc.wait()

        # a regular file at the path is never removed
        os.unlink(path)
        with open(path, "w") as f:
            f.write("keep me")
        r = subprocess.run([TOKD, "serve", "--listen", f"unix:{path}"], capture_output=True, text=True, timeout=30)
        check("uds: a regular file is refused, not replaced", r.returncode != 0 and "not a socket" in r.stderr
              and open(path).read() == "keep me", r.stderr)
        os.unlink(path)
        for bad, why in [(f"unix:{tmp}/missing/dir/tokd.sock", "No such file or directory"),
                         ("unix:/" + "x" * 120, "1 to 107 bytes"), ("unix:", "1 to 107 bytes"),
                         ("127.0.0.1", "neither HOST:PORT nor unix:PATH"), ("1.2.3.4:99999", "neither"),
                         ("127.0.0.1:1,127.0.0.1:2", "at most one HOST:PORT")]:
            r = subprocess.run([TOKD, "serve", "--listen", bad], capture_output=True, text=True, timeout=30)
            check(f"uds: bad --listen {bad[:30]}", r.returncode != 0 and why in r.stderr, r.stderr)
        r = subprocess.run([TOKD, "serve", "--socket-mode", "999"], capture_output=True, text=True, timeout=30)
        check("uds: bad --socket-mode", r.returncode == 2 and "octal" in r.stderr, r.stderr)

        # a directory other users can write (no sticky bit) is refused; a sticky one is fine;
        # a missing last directory is made, tokd's own and 0755
        shared = os.path.join(tmp, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o777)
        r = subprocess.run([TOKD, "serve", "--listen", f"unix:{shared}/tokd.sock"], capture_output=True, text=True,
                           timeout=30)
        check("uds: a directory others can write is refused", r.returncode == 2 and "other users can write" in r.stderr
              and not os.path.exists(f"{shared}/tokd.sock"), r.stderr)
        os.chmod(shared, 0o1777)
        proc, info = start("--listen", f"unix:{shared}/tokd.sock", "--socket-mode", "0640")
        check("uds: a sticky shared directory is fine", info is not None and
              stat.S_IMODE(os.stat(f"{shared}/tokd.sock").st_mode) == 0o640)
        proc.kill()
        proc.wait()
        os.unlink(f"{shared}/tokd.sock")
        proc, info = start("--listen", f"unix:{shared}/own/tokd.sock")
        st = os.stat(f"{shared}/own")
        check("uds: a missing directory is made, 0755 and tokd's", info is not None and
              stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == os.geteuid(), oct(st.st_mode))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        os.rmdir(f"{shared}/own")
        os.rmdir(shared)

        # a live server whose backlog is full: the probe must not wait for it to accept
        busy = socket.socket(socket.AF_UNIX)
        busy.bind(path)
        busy.listen(0)
        queued = []
        for _ in range(4):
            c = socket.socket(socket.AF_UNIX)
            c.setblocking(False)
            try:
                c.connect(path)
            except OSError:
                pass
            queued.append(c)
        try:
            r = subprocess.run([TOKD, "serve", "--listen", f"unix:{path}"], capture_output=True, text=True, timeout=20)
            check("uds: a live socket with a full backlog is refused at once", r.returncode != 0
                  and "another server" in r.stderr, r.stderr)
        except subprocess.TimeoutExpired:
            check("uds: a live socket with a full backlog is refused at once", False, "start-up hung")
        for c in queued:
            c.close()
        busy.close()
        os.unlink(path)
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


def start_or_none(*args):
    """A server that need not be ready yet, or None (said) when tokd did not listen within
    30 s: a hung start-up is a failed check, not a hung test."""
    try:
        return Server(*args, ready=False, seconds=30)
    except RuntimeError as e:
        print(f"http: {e}")
        return None


def open_model_dirs():
    """[(name, model directory)] of the fetched open models, or []."""
    names = ["llama3_1", "qwen3", "deepseek_v3", "gptoss", "gemma3", "llama2"]
    dirs = [(n, model_dir(n)) for n in names]
    return dirs if all(os.path.isdir(d) for _, d in dirs) else []


def test_prefix_cache():
    """The prefix cache (issue 30): a conversation resent with a turn appended gets the ids
    a server without the cache gives, turn after turn, while /metrics counts the reused
    history; a small budget holds (evictions, never more bytes than the budget)."""
    models = open_model_dirs()
    if not models:
        check("prefix cache (needs the open models)", os.environ.get("TOKD_REQUIRE_MODELS") != "1")
        return
    qwen = dict(models)["qwen3"]
    cached = Server("--tokenizer", f"qwen3={qwen}", "--prefix-cache-bytes", "1048576", "--log-level", "error")
    plain = Server("--tokenizer", f"qwen3={qwen}", "--prefix-cache-bytes", "0", "--log-level", "error")
    try:
        text = corpus("prose_scripts.txt").decode() + corpus("code_py.txt").decode()
        history, same, total = [], True, 0
        for turn in range(12):
            history.append({"role": "user", "content": text[turn * 97:turn * 97 + 300]})
            body = {"model": "qwen3", "messages": history}
            a = cached.json("POST", "/tokenize", body)[1]
            b = plain.json("POST", "/tokenize", body)[1]
            same = same and a["tokens"] == b["tokens"]
            total += len(a["tokens"])
            history.append({"role": "assistant", "content": text[turn * 131:turn * 131 + 200]})
        check("prefix cache: every turn's ids equal a server without it", same)
        m = cached.metrics()
        check("prefix cache: the resent history is reused", m['tokd_prefix_cache_lookups_total{result="hit"}'] >= 11
              and m["tokd_prefix_cache_saved_bytes_total"] > 10000, m.get('tokd_prefix_cache_lookups_total{result="hit"}'))
        check("prefix cache: the budget is reported", m['tokd_prefix_cache_bytes{kind="budget"}'] == 1048576 and
              0 < m['tokd_prefix_cache_bytes{kind="used"}'] <= 1048576)
        st, raw, _ = plain.request("GET", "/metrics")
        check("prefix cache off: no series", b"tokd_prefix_cache" not in raw)
        # many distinct conversations through a 64 KiB cache: evictions, within the budget
        small = Server("--tokenizer", f"qwen3={qwen}", "--prefix-cache-bytes", "65536", "--log-level", "error")
        try:
            for i in range(60):
                msgs = [{"role": "user", "content": text[i * 37:i * 37 + 1500]}]
                small.json("POST", "/tokenize", {"model": "qwen3", "messages": msgs})
            m = small.metrics()
            check("prefix cache: a small budget evicts and holds", m["tokd_prefix_cache_evictions_total"] > 0 and
                  m['tokd_prefix_cache_bytes{kind="used"}'] <= 65536, m.get("tokd_prefix_cache_evictions_total"))
        finally:
            small.stop()
    finally:
        cached.stop()
        plain.stop()


def test_startup_and_cache_files():
    """Start-up cannot hang and the table cache's files are tokd's own (issue 32): a FIFO at
    the cache file's path does not block start-up, a cache directory others can write is
    refused with a log line (the server runs without it), and SIGTERM during a long start-up
    ends the process at once."""
    tiny = os.path.join(DATA, "hf", "tiny", "bl", "tokenizer.json")
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tokd-cache-{os.getpid()}")
    os.makedirs(tmp, mode=0o700)
    try:
        # the cache file's name (its model's fingerprint), from a first start
        s = start_or_none("--tokenizer", f"tiny={tiny}", "--cache-dir", tmp)
        check("cache: a first start", s is not None)
        wait_for(lambda: any(n.endswith(".tokdbt") for n in os.listdir(tmp)), 30)
        if s:
            s.kill()
        names = [n for n in os.listdir(tmp) if n.endswith(".tokdbt")]
        check("cache: the tables are written", len(names) == 1, os.listdir(tmp))
        if len(names) != 1:
            return
        cache = os.path.join(tmp, names[0])
        os.unlink(cache)
        os.mkfifo(cache)
        s = start_or_none("--tokenizer", f"tiny={tiny}", "--cache-dir", tmp)
        check("cache: a FIFO at the path does not block start-up", s is not None)
        if s:
            check("cache: the FIFO is replaced by the tables", wait_for(lambda: stat.S_ISREG(os.lstat(cache).st_mode), 30))
            s.kill()

        # a cache directory others can write: refused, said, and the server serves
        os.chmod(tmp, 0o777)
        os.unlink(cache)
        s = start_or_none("--tokenizer", f"tiny={tiny}", "--cache-dir", tmp)
        log = ""
        if s:
            st, _, _ = s.request("POST", "/count?encoding=tiny", b"hello world", timeout=10)
            check("cache: the server serves without the refused cache", st == 200)
            s.stop()
            log = "".join(s.lines)
        check("cache: a directory others can write is refused with a log line",
              '"msg":"table cache off"' in log and "no sticky bit" in log and
              not any(n.endswith(".tokdbt") for n in os.listdir(tmp)), log[-600:])
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)

    # SIGTERM during a long start-up (open models, no cache: their tables are built before
    # the server listens) ends it at once with the signal's status, not after loading
    models = open_model_dirs()
    if not models:
        check("SIGTERM during start-up (needs the open models)", os.environ.get("TOKD_REQUIRE_MODELS") != "1")
        return
    args = [a for name, d in models for a in ("--tokenizer", f"{name}={d}")]
    proc = subprocess.Popen([TOKD, "serve", "--host", "127.0.0.1", "--port", "0", "--cache-dir", "off", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.05)  # into start-up; it takes over a second for all of them (not a timing assertion)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    listened = b'"msg":"listening"' in out
    check("SIGTERM during start-up ends it at once", listened or (proc.returncode == 128 + signal.SIGTERM and
          b'"msg":"stopped during start-up"' in out), (proc.returncode, round(time.time() - t0, 2), out[-300:]))
    check("SIGTERM came during start-up (the test means something)", not listened, out[-300:])


def test_health_probe(s):
    rc = subprocess.run([TOKD, "health", "--port", str(s.port)], capture_output=True, timeout=10).returncode
    check("tokd health ready", rc == 0)
    rc = subprocess.run([TOKD, "health", "--port", "1"], capture_output=True, timeout=10).returncode
    check("tokd health down", rc == 1)


def test_overload():
    """An in-flight slot is taken by a request whose body is complete and held while it is
    worked on: past --max-inflight a request gets 503 with Retry-After, /ready says 503,
    /health stays 200, and the slot comes back when the work is done. The slot holder is a
    request template that runs until its step budget stops it (~50 million steps), and the
    checks are made while it is seen in flight; a machine so slow or so fast that the window
    is missed tries again, up to five times (no check depends on a duration)."""
    s = Server("--max-inflight", "1", "--log-level", "error", "--allow-request-chat-template", "on")
    slow = json.dumps({"messages": [{"role": "user", "content": "hi"}], "chat_template":
                       "{% for i in range(7000) %}{% for j in range(7000) %}{% endfor %}{% endfor %}"}).encode()
    try:
        seen = None
        for _attempt in range(5):
            hold = open_request(s.port, "POST", "/tokenize", slow, timeout=120)
            held = wait_for(lambda: s.metric("tokd_inflight_requests") == 1, 30, 0.002)
            st, body, hdrs = s.json("POST", "/encode", {"text": "x"})
            ready, _, _ = s.request("GET", "/ready")
            health, _, _ = s.request("GET", "/health")
            still = s.metric("tokd_inflight_requests") == 1
            answer = read_to_end(hold)
            hold.close()
            seen = (held, st, body, hdrs.get("retry-after"), ready, health, answer[:12])
            if held and still:
                break
        held, st, body, retry_after, ready, health, answer = seen
        check("slot held by a request at work", held)
        check("503 above in-flight limit", is_error(st, body, 503, "overloaded") and retry_after == "1", seen)
        check("/ready 503 while no slot is free", ready == 503, seen)
        check("/health 200 meanwhile", health == 200, seen)
        check("held request still answered (its template's step limit: 413)", answer.startswith(b"HTTP/1.1 413"), answer)
        check("slot released", wait_for(lambda: s.metric("tokd_inflight_requests") == 0, 20))
        st, body, _ = s.json("POST", "/encode", {"text": "x"})
        check("admitted again after", st == 200)
    finally:
        s.kill()


def test_connection_burst():
    """200 connections opened at once, each with a request, all answered: libmicrohttpd's
    single-threaded epoll mode once left such a burst in the accept queue (tokd uses poll
    for one thread)."""
    for threads in ["1", "2"]:
        s = Server("--threads", threads, "--log-level", "error")
        try:
            socks = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(200)]
            for sock in socks:
                sock.sendall(b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
            answered = 0
            for sock in socks:
                try:
                    answered += sock.recv(4096).startswith(b"HTTP/1.1 200")
                except OSError:
                    pass
                sock.close()
            check(f"burst of 200 connections, {threads} thread(s)", answered == 200, answered)
        finally:
            s.kill()


def test_graceful_shutdown():
    """SIGTERM with requests in progress: /ready turns 503 while tokd still listens (a new
    connection's readiness probe sees it), the requests in progress are all answered, then
    the process exits 0."""
    s = Server("--timeout", "10", "--drain-timeout", "10", "--drain-delay", "1")
    # /ready is 503 until the tables are built: on a busy machine that outlasts start-up
    wait_for(lambda: s.json("GET", "/ready")[0] == 200, 30)
    socks = []
    for i in range(4):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=15)
        sock.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello")
        socks.append(sock)
    keep = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    keep.request("GET", "/ready")
    first = keep.getresponse()
    first.read()
    s.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: any('"msg":"draining"' in line for line in s.lines))
    keep.request("GET", "/ready")
    during = keep.getresponse()
    during.read()
    check("ready 503 while draining", first.status == 200 and during.status == 503, during.status)
    fresh = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    fresh.request("GET", "/ready")
    st = fresh.getresponse().status
    check("a new connection during the drain delay sees 503", st == 503, st)
    for sock in socks:
        sock.sendall(b" world")
    answers = [sock.recv(4096) for sock in socks]
    check("requests in progress answered during drain", all(a.startswith(b"HTTP/1.1 200") for a in answers),
          [a[:20] for a in answers])
    try:
        rc = s.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        rc = None
    check("exit 0 after drain", rc == 0, rc)
    s.kill()


def hf_golden(model, name, special=False):
    sub = "special/" if special else ""
    with open(os.path.join(DATA, "hf", model, sub + name + ".ids")) as f:
        return [int(x) for x in f.read().split()]


def test_open_models():
    """Hugging Face tokenizers served next to the built-in encodings."""
    if not os.path.isdir(model_dir("llama3_1")):
        if os.environ.get("TOKD_REQUIRE_MODELS") == "1":
            check("open models present", False, "run tests/tools/fetch_models.sh")
        else:
            print("http: skipping the open-model checks (models not fetched: tests/tools/fetch_models.sh)")
        return
    llama = os.path.join(model_dir("llama3_1"), "tokenizer.json")
    gemma = os.path.join(model_dir("gemma3"), "tokenizer.json")
    deepseek = model_dir("deepseek_v3")  # a directory
    s = Server("--tokenizer", f"meta-llama/x={llama}", env={"TOKD_TOKENIZERS": f"ignored={gemma}"})
    # a flag replaces the variable; names may contain "/" like vLLM's model names
    st, body, _ = s.json("GET", "/encodings")
    names = [e["name"] for e in body["encodings"]]
    check("--tokenizer loads it and is the default", body["default"] == "meta-llama/x", body["default"])
    check("flag beats TOKD_TOKENIZERS", "ignored" not in names, names)
    hf = [e for e in body["encodings"] if e["name"] == "meta-llama/x"][0]
    check("/encodings: kind and components", hf["kind"] == "huggingface" and
          "ByteLevel" in hf["components"]["pre_tokenizer"] and hf["n_vocab"] == 128256, hf)
    text = corpus("prose_multi.txt").decode()
    st, body, _ = s.json("POST", "/encode", {"text": text, "encoding": "meta-llama/x", "add_special_tokens": False})
    check("/encode llama3", st == 200 and body["tokens"] == hf_golden("llama3_1", "prose_multi.txt"), st)
    text = corpus("prose_en.txt").decode()
    st, body, _ = s.json("POST", "/encode", {"text": text})
    check("/encode default adds BOS", st == 200 and body["tokens"] == hf_golden("llama3_1", "prose_en.txt", True), st)
    st, body, _ = s.json("POST", "/tokenize", {"prompt": text, "model": "meta-llama/x"})
    check("/tokenize by model name", st == 200 and body["tokens"] == hf_golden("llama3_1", "prose_en.txt", True))
    st, body, _ = s.json("POST", "/tokenize", {"prompt": "hi", "add_special_tokens": False,
                                               "return_token_strs": True})
    check("/tokenize return_token_strs", st == 200 and body["tokens"] == [6151] and body["token_strs"] == ["hi"], body)
    st, body, _ = s.json("POST", "/encode", {"text": " world<|eot_id|>", "token_strings": True,
                                             "offsets": True, "add_special_tokens": False})
    check("/encode token strings and offsets", st == 200 and body["token_strings"] == ["\u0120world", "<|eot_id|>"]
          and body["offsets"] == [[0, 6], [6, 16]], body)
    st, body, _ = s.json("POST", "/encode", {"text": "a<|eot_id|>", "allowed_special": "none",
                                             "add_special_tokens": False})
    check("allowed_special none makes special text ordinary", st == 200 and 128009 not in body["tokens"], body)
    st, body, _ = s.json("POST", "/detokenize", {"tokens": [128000, 9906], "skip_special_tokens": True})
    check("/detokenize skip_special_tokens", st == 200 and body["prompt"] == "Hello", body)
    st, body, _ = s.json("POST", "/decode", {"tokens": [128000, 9906]})
    check("/decode keeps specials", st == 200 and body["text"] == "<|begin_of_text|>Hello", body)
    st, body, _ = s.json("POST", "/decode", {"tokens": [128256]})
    check("/decode unknown id", st == 400 and body["error"]["code"] == "unknown_token", body)
    st, body, _ = s.json("POST", "/count", {"text": "Hello", "model": "meta-llama/x"})
    check("/count with BOS", st == 200 and body["count"] == 2, body)
    st, body, _ = s.json("POST", "/count", {"text": "Hello", "encoding": "cl100k_base"})
    check("built-in encodings still there", st == 200 and body["count"] == 1, body)
    s.stop()
    # a directory applies tokenizer_config.json: DeepSeek-V3 gets its BOS from add_bos_token
    s = Server("--tokenizer", f"deepseek={deepseek}", "--encodings", "none")
    st, body, _ = s.json("POST", "/tokenize", {"prompt": "Hello"})
    check("directory: BOS from tokenizer_config.json", st == 200 and body["tokens"] == [0, 19923], body)
    st, body, _ = s.json("POST", "/count", {"text": "Hello", "encoding": "cl100k_base"})
    check("--encodings none", st == 404, body)
    s.stop()
    # a bad tokenizer stops start-up with the file and what is wrong
    proc = subprocess.run([TOKD, "serve", "--port", "0", "--tokenizer", "x=/nonexistent.json"],
                          capture_output=True, timeout=30)
    check("missing tokenizer file refused", proc.returncode != 0 and b"nonexistent" in proc.stderr, proc.stderr)


def test_long_chat_session():
    """A 1,000-message agent session at the server's defaults: a render's temporaries die with
    their loop iteration, so its memory stays within the request's share of --max-memory
    (before, Qwen3's template answered 413 at a few hundred messages)."""
    sys.path.insert(0, os.path.join(HERE, "tools"))
    from long_chat import agent_conversation
    names = [m for m in ("qwen3", "llama3_1", "deepseek_v3") if os.path.isdir(model_dir(m))]
    if not names:
        if os.environ.get("TOKD_REQUIRE_MODELS") == "1":
            check("open models present for the long session", False, "run tests/tools/fetch_models.sh")
        return
    args = []
    for m in names:
        args += ["--tokenizer", f"{m}={model_dir(m)}"]
    # a model directory whose chat_template.jinja looks ahead over the rest of the
    # conversation for every message, as Gemma's, Cohere's and gpt-oss's templates do:
    # O(messages^2) temporaries that the old arena kept (413 well before 1,000 messages)
    look = tempfile.mkdtemp(prefix="tokd-lookahead-")
    qwen = model_dir("qwen3")
    os.symlink(os.path.join(qwen, "tokenizer.json"), os.path.join(look, "tokenizer.json"))
    shutil.copy(os.path.join(qwen, "tokenizer_config.json"), look)
    shutil.copy(os.path.join(DATA, "chat", "templates", "lookahead.jinja"), os.path.join(look, "chat_template.jinja"))
    names.append("lookahead")
    args += ["--tokenizer", f"lookahead={look}"]
    s = Server(*args)
    try:
        body = agent_conversation(1000)
        for m in names:
            st, out, _ = s.json("POST", "/tokenize", dict(body, model=m))
            check(f"1,000-message agent session with {m}'s template at the defaults",
                  st == 200 and out["count"] > 10000, (st, str(out)[:300]))
    finally:
        s.stop()
        shutil.rmtree(look, ignore_errors=True)


def main():
    shared = [test_basics, test_golden_over_http, test_encode_options, test_count,
              test_decode, test_vllm, test_errors, test_slow_client, test_concurrency,
              test_split, test_metrics_and_logs, test_health_probe, test_load_kit, test_cost_metrics,
              test_render_api]
    alone = [test_overload, test_connection_burst, test_graceful_shutdown, test_unix_socket,
             test_startup_and_cache_files, test_prefix_cache, test_energy_measured,
             test_many_tokenizers, test_open_models, test_long_chat_session, test_render_context]
    chosen = select_tests("http", shared + alone, sys.argv[2:])
    if any(t in chosen for t in shared):
        run_shared([t for t in shared if t in chosen])
    run_tests([t for t in alone if t in chosen])
    return summary("http")


def run_shared(tests):
    """The tests that share one server (started with the options they need)."""
    s = Server("--max-body-bytes", "2097152", "--max-batch", "8", "--timeout", "2", "--split-threads", "4",
               env={"TOKD_THREADS": "4"})
    try:
        run_tests(tests, s)
        check("server still alive", s.proc.poll() is None)
        rc = s.stop()
        check("clean exit on SIGTERM", rc == 0, rc)
        err_text = s.proc.stderr.read().decode()
        check("no sanitizer report", "ERROR: " not in err_text and "WARNING: ThreadSanitizer" not in err_text, err_text[-2000:])
    finally:
        s.kill()


if __name__ == "__main__":
    sys.exit(main())
