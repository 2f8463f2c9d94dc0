"""FastAPI + Uvicorn around a pure-Python BPE (the tiktoken "educational" algorithm):
the "before" that tokd is meant to replace. cl100k_base, POST /encode {"text": ...}.
Usage: /usr/bin/python3 fastapi_bpe.py PORT RANKS_FILE WORKERS  (Debian: python3-fastapi,
python3-uvicorn, python3-regex, python3-httptools)"""
import os
import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

# the algorithm lives in pure_bpe.py (bench/python_bench.py runs it in process too)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("BPE_RANKS", sys.argv[2] if len(sys.argv) > 2 else "")
from pure_bpe import encode  # noqa: E402


app = FastAPI()

# uvicorn 0.17 writes headers and body in two sends without TCP_NODELAY, so Nagle's
# algorithm and the client's delayed ACK pin every response at ~44 ms. Set it, as newer
# uvicorn does, so the comparison measures the tokenizer, not a TCP artifact.
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: E402

_connection_made = HttpToolsProtocol.connection_made


def _nodelay(self, transport):
    sock = transport.get_extra_info("socket")
    if sock is not None:
        import socket
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _connection_made(self, transport)


HttpToolsProtocol.connection_made = _nodelay


@app.post("/encode")
async def encode_route(request: Request):
    body = await request.json()
    tokens = encode(body["text"])
    return JSONResponse({"count": len(tokens), "tokens": tokens})


if __name__ == "__main__":
    port, ranks, workers = sys.argv[1], sys.argv[2], sys.argv[3]
    os.environ["BPE_RANKS"] = ranks
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    uvicorn.run("fastapi_bpe:app", host="127.0.0.1", port=int(port), workers=int(workers),
                log_level="warning", access_log=False, http="httptools")
