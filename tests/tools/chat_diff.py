#!/usr/bin/python3
"""Differential test of tokd's chat template engine against Python jinja2 (set up as
transformers sets it up): random templates built from the supported constructs, with random
whitespace control around the tags, rendered by both on a random conversation. Reports
every case where Python renders and tokd differs or fails, or Python fails and tokd
renders. Not part of `make test` (it needs python3-jinja2); run it after changing src/chat:

    tests/tools/chat_diff.py build/tokd [cases] [seed]
"""
import json
import os
import random
import subprocess
import sys
import signal
import tempfile
import warnings

warnings.filterwarnings("ignore")  # jinja2's compiled Python warns about constant subscripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_chat_golden as ref  # noqa: E402

TOKD = sys.argv[1]
CASES = int(sys.argv[2]) if len(sys.argv) > 2 else 500
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)

STRINGS = ["", "a", "Hi", "hello world", " padded ", "\n\nnl\n", "tab\there", "it's", 'say "x"', "ünï", "東京",
           "🎉", "a,b,,c", "UPPER lower", "<think>x</think>y", "  \t ", "1.5", "42", "-7", "x_y-z"]
NAMES = ["m", "x", "i", "ns.v", "loop.index", "messages", "s", "n", "d", "l"]


def lit():
    k = rng.randrange(9)
    if k == 0:
        return str(rng.choice([0, 1, 2, 3, -1, 7, 10, 100, 12345678901]))
    if k == 1:
        return rng.choice(["1.5", "0.1", "2.0", "1e3", "-0.5", "3.14159", "1e20", "0.0001"])
    if k == 2:
        s = rng.choice(STRINGS)
        return json.dumps(s, ensure_ascii=rng.random() < 0.5) if rng.random() < 0.5 else "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t") + "'"
    if k == 3:
        return rng.choice(["none", "true", "false", "None", "True"])
    if k == 4:
        return "[" + ", ".join(lit() for _ in range(rng.randrange(4))) + "]"
    if k == 5:
        return "{" + ", ".join(f"{json.dumps(rng.choice(['a', 'b', 'role', 'k']))}: {lit()}" for _ in range(rng.randrange(3))) + "}"
    if k == 6:
        return "(" + lit() + ", " + lit() + ")"
    return rng.choice(["s", "n", "l", "d", "x"])


def expr(depth=0):
    if depth > 2:
        return lit()
    k = rng.randrange(14)
    a = lambda: expr(depth + 1)  # noqa: E731
    if k == 0:
        return f"({a()} {rng.choice(['+', '-', '*', '/', '//', '%', '~', '**'])} {a()})"
    if k == 1:
        return f"({a()} {rng.choice(['==', '!=', '<', '>', '<=', '>=', 'in', 'not in'])} {a()})"
    if k == 2:
        return f"({a()} {rng.choice(['and', 'or'])} {a()})"
    if k == 3:
        return f"(not {a()})"
    if k == 4:
        f = rng.choice(["trim", "upper", "lower", "length", "tojson", "string", "first", "last", "list", "reverse",
                        "capitalize", "title", "int", "float", "abs", "unique", "sort", "items", "sum", "min", "max",
                        "wordcount", "safe", "count", "dictsort",
                        "default('dflt')", "default('e', true)", "join('-')", "join", "replace('a', 'X')",
                        "indent(2)", "indent(2, true)", "tojson(indent=2)", "tojson(sort_keys=true)",
                        "map('upper')", "select('odd')", "reject('none')", "selectattr('role')",
                        "map(attribute='role')", "round(1)", "trim('x')", "batch(2)" if False else "length"])
        return f"({a()} | {f})"
    if k == 5:
        t = rng.choice(["defined", "none", "string", "number", "integer", "float", "mapping", "iterable",
                        "sequence", "boolean", "true", "false", "odd", "even", "divisibleby 3", "eq 1", "lower",
                        "upper", "in [1, 'a']", "callable", "undefined", "sameas none"])
        return f"({a()} is {'not ' if rng.random() < 0.3 else ''}{t})"
    if k == 6:
        mth = rng.choice(["strip()", "lstrip()", "rstrip('\\n')", "split()", "split(',')", "split(' ', 1)",
                          "rsplit(' ', 1)", "upper()", "lower()", "title()", "capitalize()", "startswith('a')",
                          "endswith(('d', 'x'))", "replace('l', 'L')", "find('o')", "count('l')", "splitlines()",
                          "isdigit()", "isalpha()", "items()", "keys()", "values()", "get('role')", "get('zz', 5)"])
        return f"{a()}.{mth}"
    if k == 7:
        sub = rng.choice(["0", "-1", "1:", ":2", "::-1", "1:3", "::2", '"role"', '"content"', "5"])
        return f"{a()}[{sub}]"
    if k == 8:
        return f"({a()} if {a()} else {a()})"
    if k == 9:
        return rng.choice(["messages[0].content", "messages[-1].role", "messages | length", "m.content", "m.role",
                           "loop.index0", "loop.first", "loop.last", "ns.v", "x", "messages[1].content[:5]"])
    if k == 10:
        return f"{a()}.{rng.choice(['role', 'content', 'missing', 'items'])}"
    return lit()


def ws_tag(body, kind="%"):
    left = rng.choice(["", "", "-", "+"]) if kind == "%" else rng.choice(["", "-"])
    right = rng.choice(["", "", "-"])
    return "{" + kind + left + " " + body + " " + right + kind + "}"


def pad():
    return rng.choice(["", "", "\n", "\n  ", "  ", "\n\n", " x ", "\t"])


def block(depth=0):
    parts = []
    for _ in range(rng.randrange(1, 4)):
        k = rng.randrange(8 if depth < 2 else 3)
        if k == 0:
            parts.append(pad() + "{{" + rng.choice(["", "-"]) + " " + expr() + " " + rng.choice(["", "-"]) + "}}" + pad())
        elif k == 1:
            parts.append(pad() + rng.choice(STRINGS).replace("{", "(").replace("}", ")").replace("#", "h").replace("%", "p") + pad())
        elif k == 2:
            parts.append(ws_tag(f"set x = {expr()}") + pad())
        elif k == 3:
            parts.append(ws_tag(f"if {expr()}") + block(depth + 1) + (ws_tag("else") + block(depth + 1) if rng.random() < 0.5 else "") + ws_tag("endif") + pad())
        elif k == 4:
            it = rng.choice(["messages", "[1, 2, 3]", "'abc'", "{'a': 1, 'b': 2}", "range(3)", "messages[::-1]", "l"])
            cond = f" if {expr()}" if rng.random() < 0.2 else ""
            parts.append(ws_tag(f"for m in {it}{cond}") + block(depth + 1) + (ws_tag("else") + "E" if rng.random() < 0.3 else "") + ws_tag("endfor") + pad())
        elif k == 5:
            parts.append(ws_tag("set ns.v = " + expr()) + pad())
        elif k == 6:
            parts.append(ws_tag("macro mac(a, b='B')") + "{{ a }}-{{ b }}" + block(depth + 2) + ws_tag("endmacro") + "{{ mac(" + expr() + ") }}" + pad())
        else:
            parts.append("{#" + rng.choice(["", "-"]) + " note " + rng.choice(["", "-"]) + "#}" + pad())
    return "".join(parts)


def template():
    head = "{%- set ns = namespace(v=0) -%}{%- set s = 'Hello, World' -%}{%- set n = 3 -%}{%- set l = [3, 1, 2] -%}{%- set d = {'role': 'r', 'content': 'c'} -%}"
    return head + pad() + block() + rng.choice(["", "\n", "\n\n"])


def conversation():
    msgs = []
    for i in range(rng.randrange(1, 4)):
        msgs.append({"role": rng.choice(["user", "assistant", "system"]), "content": rng.choice(STRINGS)})
    return {"messages": msgs, "add_generation_prompt": rng.random() < 0.5}


env = ref.make_env()
stats = {"same": 0, "both_fail": 0, "differ": 0, "tokd_fails": 0, "tokd_renders": 0}
with tempfile.TemporaryDirectory() as tmp:
    tpath = os.path.join(tmp, "t.jinja")
    for case in range(CASES):
        src = template()
        body = conversation()
        # Python's own work is unbounded (2 ** 12345678901 is a big int): give it 5 s
        def timeout(*_):
            raise TimeoutError("reference took over 5 s")
        signal.signal(signal.SIGALRM, timeout)
        signal.alarm(5)
        try:
            want = ref.render(env, src, body, {"bos_token": "<s>", "eos_token": "</s>"})
            perr = None
        except TimeoutError:
            stats["python_timeout"] = stats.get("python_timeout", 0) + 1
            continue
        except Exception as e:  # noqa: BLE001
            want, perr = None, f"{type(e).__name__}: {e}"
        finally:
            signal.alarm(0)
        with open(tpath, "w", encoding="utf-8") as fh:
            fh.write(src)
        p = subprocess.run([TOKD, "chat", "--encoding", "cl100k_base", "--chat-template", tpath, "--render-only"],
                           input=json.dumps(body).encode(), capture_output=True, timeout=30)
        got = p.stdout.decode("utf-8", "replace") if p.returncode == 0 else None
        if want is not None and got == want:
            stats["same"] += 1
        elif want is None and got is None:
            stats["both_fail"] += 1
        else:
            key = "differ" if want is not None and got is not None else "tokd_fails" if got is None else "tokd_renders"
            stats[key] += 1
            if stats[key] <= 6:
                print(f"--- case {case}: {key}\ntemplate: {src!r}\nbody: {json.dumps(body, ensure_ascii=False)}")
                print(f"python: {want!r}" if perr is None else f"python error: {perr}")
                print(f"tokd:   {got!r}" if got is not None else f"tokd error: {p.stderr.decode().strip()}")
print(json.dumps(stats))
