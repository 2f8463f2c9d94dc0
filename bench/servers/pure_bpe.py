"""The pure-Python BPE of tiktoken's "educational" module (cl100k_base), shared by the
FastAPI rival server (fastapi_bpe.py) and the in-process Python benchmark: the "before"
that tokd replaces. The rank file comes from $BPE_RANKS. Needs Debian's python3-regex."""
import base64
import os

import regex

PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

RANKS = {}
# the server's parent process and uvicorn's workers, and the benchmark, set $BPE_RANKS
with open(os.environ["BPE_RANKS"], "rb") as f:
    for line in f:
        tok, rank = line.split()
        RANKS[base64.b64decode(tok)] = int(rank)
SPLIT = regex.compile(PATTERN)


def merge(piece: bytes) -> list:
    parts = [piece[i:i + 1] for i in range(len(piece))]
    while True:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = RANKS.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            return [RANKS[p] for p in parts]
        parts[at:at + 2] = [parts[at] + parts[at + 1]]


def encode(text: str) -> list:
    out = []
    for m in SPLIT.finditer(text):
        piece = m.group().encode()
        r = RANKS.get(piece)
        if r is not None:
            out.append(r)
        else:
            out.extend(merge(piece))
    return out
