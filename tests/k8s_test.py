#!/usr/bin/python3
"""Checks the Kubernetes manifests in deploy/k8s against the Dockerfile and the real binary:
ports agree, probes point at endpoints a running tokd answers with 200, args and env are
flags and variables `tokd serve` knows, the user matches the image's, grace periods cover
the drain, the sidecar is a native sidecar, Service and HPA point at the Deployment.

Usage: tests/k8s_test.py build/tokd   (Debian's python3 with python3-yaml)
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

from harness import ROOT, TOKD, Server, check, summary


def serve_help():
    out = subprocess.run([TOKD, "serve", "--help"], capture_output=True, text=True).stdout
    flags = set(re.findall(r"^\s+--([a-z0-9-]+)", out, re.M))
    env = set(re.findall(r"\b(TOKD_[A-Z_]+)\b", out))
    defaults = dict(re.findall(r"^\s+--([a-z0-9-]+)\s+TOKD_[A-Z_]+\s+\[([^\]]*)\]", out, re.M))
    return flags, env, defaults


def quantity(q):
    """A Kubernetes quantity (128Mi, 1Gi, 500M, 1000) in bytes."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|k|M|G)?", str(q))
    units = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 10**3, "M": 10**6, "G": 10**9}
    return int(m.group(1)) * units[m.group(2)] if m else 0


def dockerfile():
    text = open(os.path.join(ROOT, "docker/Dockerfile")).read()
    user = re.search(r"^USER (\S+)", text, re.M).group(1)
    port = int(re.search(r"^EXPOSE (\d+)", text, re.M).group(1))
    entry = re.search(r"^ENTRYPOINT (\[.*\])", text, re.M).group(1)
    return user, port, entry


def answered_paths(paths):
    """Starts tokd (ready: probes are checked against a ready server, never a moment after
    start) and returns the probe paths it answers with 200."""
    s = Server()

    def answered(path):
        try:
            return s.request("GET", path, timeout=5)[0] == 200
        except OSError:
            return False
    try:
        return set(filter(answered, paths))
    finally:
        s.stop()


def run_exec_probes(probes):
    """Runs each exec probe's `tokd health` against a tokd listening as the manifest says
    (its Unix socket moved to a temporary directory, its port to a free one)."""
    tmp = tempfile.mkdtemp(prefix="tokd-k8s-")
    sock = os.path.join(tmp, "tokd.sock")
    s = Server("--listen", f"127.0.0.1:0,unix:{sock}")
    try:
        port = str(s.port)
        for where, probe, args, manifest_port, sockets in probes:
            args = [sock if a in sockets else port if a == str(manifest_port) else a for a in args]
            rc = subprocess.run([TOKD, "health", *args], capture_output=True, timeout=10).returncode
            check(f"{where}: {probe} `tokd health {' '.join(args)}` answers 0 against a running tokd", rc == 0, rc)
    finally:
        s.stop()
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


def containers(doc):
    spec = doc["spec"]["template"]["spec"]
    return [(c, True) for c in spec.get("initContainers", [])] + [(c, False) for c in spec["containers"]]


def main():
    flags, env_vars, defaults = serve_help()
    user, exposed, entry = dockerfile()
    check("Dockerfile entrypoint runs serve", "tokd" in entry and "serve" in entry, entry)
    docs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "deploy/k8s/*.yaml"))):
        with open(path) as f:
            docs += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
    check("manifests found", len(docs) >= 4, len(docs))
    probe_paths = set()
    exec_probes = []
    deployments = {}
    for name, doc in docs:
        if doc["kind"] != "Deployment":
            continue
        deployments[doc["metadata"]["name"]] = doc
        spec = doc["spec"]
        check(f"{name}: selector matches labels",
              spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items())
        for c, is_init in containers(doc):
            if not c["image"].startswith("tokd"):
                continue
            where = f"{name}/{c['name']}"
            if is_init:
                check(f"{where}: native sidecar", c.get("restartPolicy") == "Always")
            args = c.get("args", [])
            for a in args:
                if a.startswith("--"):
                    check(f"{where}: flag {a} exists", a[2:] in flags, a)
            check(f"{where}: args are flags only (the image's entrypoint is `tokd serve`)",
                  not args or args[0].startswith("--"), args)
            env = {e["name"]: e["value"] for e in c.get("env", [])}
            for k in env:
                check(f"{where}: env {k} exists", k in env_vars, k)
            port = int(env.get("TOKD_PORT", "8080"))
            if "--port" in args:
                port = int(args[args.index("--port") + 1])
            listen = args[args.index("--listen") + 1] if "--listen" in args else env.get("TOKD_LISTEN", "")
            sockets = [e[5:] for e in listen.split(",") if e.startswith("unix:")]
            tcp = not listen or any(not e.startswith("unix:") for e in listen.split(","))
            if tcp:
                check(f"{where}: containerPort is the listening port",
                      [p["containerPort"] for p in c["ports"]] == [port] and port == exposed,
                      (c["ports"], port, exposed))
            else:
                check(f"{where}: no TCP listener, no container port", not c.get("ports"), c.get("ports"))
            mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
            for sock in sockets:
                # an emptyDir is 0777, which tokd refuses as the socket's directory (others
                # could swap the socket): the socket goes in a directory tokd makes inside it
                d = os.path.dirname(os.path.dirname(sock))
                check(f"{where}: the socket's directory is tokd's own, inside the mounted volume {d}", d in mounts,
                      (sock, mounts))
                vols = {v["name"]: v for v in doc["spec"]["template"]["spec"].get("volumes", [])}
                shared = [m["name"] for m in c.get("volumeMounts", []) if m["mountPath"] == d]
                others = [o for o, init in containers(doc) if o is not c and any(
                    m["name"] in shared for m in o.get("volumeMounts", []))]
                check(f"{where}: the socket's volume is an emptyDir another container mounts",
                      shared and "emptyDir" in vols.get(shared[0], {}) and others, (shared, vols))
            host = env.get("TOKD_HOST", "0.0.0.0")
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"]:
                p = c.get(probe, {})
                check(f"{where}: {probe} present", p.get("httpGet") or p.get("exec"))
                if p.get("httpGet"):
                    check(f"{where}: {probe} port", p["httpGet"]["port"] == port)
                    # the kubelet sends httpGet probes to the pod IP: 127.0.0.1 cannot answer them
                    check(f"{where}: {probe} httpGet reaches the listener", tcp and host != "127.0.0.1", host)
                    probe_paths.add(p["httpGet"]["path"])
                elif p.get("exec"):
                    cmd = p["exec"]["command"]
                    check(f"{where}: {probe} runs the image's tokd health",
                          cmd[0] == json.loads(entry)[0] and cmd[1] == "health", cmd)
                    exec_probes.append((where, probe, cmd[2:], port, sockets))
            path_of = lambda p: (p.get("httpGet") or {}).get("path") or (
                (p.get("exec") or {}).get("command", [])[-1:] or [""])[0]
            check(f"{where}: readiness uses /ready", path_of(c["readinessProbe"]) in ("/ready", "/readyz"))
            sc = c.get("securityContext", {})
            check(f"{where}: non-root user of the image",
                  sc.get("runAsNonRoot") and f"{sc.get('runAsUser')}:{sc.get('runAsGroup')}" == user, sc)
            def setting(flag, var, default):
                if "--" + flag in args:
                    return int(args[args.index("--" + flag) + 1])
                return int(env.get(var, default))
            drain = setting("drain-timeout", "TOKD_DRAIN_TIMEOUT", defaults["drain-timeout"])
            delay = setting("drain-delay", "TOKD_DRAIN_DELAY", defaults["drain-delay"])
            pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            grace = doc["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
            check(f"{where}: grace period covers preStop + drain delay + drain timeout", grace > pre + delay + drain,
                  (grace, pre, delay, drain))
            check(f"{where}: memory request", "memory" in c.get("resources", {}).get("requests", {}))
            # the memory model: resident <= tokenizers + scratches x buffers + --max-memory, with
            # the tokenizers' resident memory once warm, file pages of the binary included
            # (README "Memory model": with o200k_base 42.7 MB, all five 56.4 MB) and ~5 MiB a scratch (a worker's,
            # and one per split helper of each worker)
            warm = {"cl100k_base": 19, "o200k_base": 24, "r50k_base": 7, "p50k_base": 7, "p50k_edit": 0}
            encodings = (args[args.index("--encodings") + 1] if "--encodings" in args
                         else env.get("TOKD_ENCODINGS", "all"))
            names = list(warm) if encodings == "all" else [e for e in encodings.split(",") if e in warm]
            # workers and split helpers default to the node's cores: a manifest must bound them
            check(f"{where}: --threads and --split-threads set (they default to the node's cores)",
                  "--threads" in args and "--split-threads" in args, args)
            threads = max(2, int(args[args.index("--threads") + 1]) if "--threads" in args else 2)
            split = int(args[args.index("--split-threads") + 1]) if "--split-threads" in args else 1
            need = sum(warm[e] for e in names) + 5 * threads * split
            budget = setting("max-memory", "TOKD_MAX_MEMORY", defaults["max-memory"])
            # the prefix cache has a budget of its own (--prefix-cache-bytes)
            prefix = setting("prefix-cache-bytes", "TOKD_PREFIX_CACHE_BYTES", defaults["prefix-cache-bytes"])
            limit = quantity(c.get("resources", {}).get("limits", {}).get("memory", "0"))
            check(f"{where}: memory limit above the budget + the prefix cache + {need} MiB for tokenizers and "
                  f"worker buffers", limit >= budget + prefix + (need << 20), (limit, budget, prefix, need))
    for name, doc in docs:
        if doc["kind"] == "Service":
            dep = deployments.get(doc["metadata"]["name"])
            check(f"{name}: Service selects a Deployment", dep is not None)
            if dep:
                labels = dep["spec"]["template"]["metadata"]["labels"]
                check(f"{name}: Service selector matches pods", doc["spec"]["selector"].items() <= labels.items())
                ports = [p["containerPort"] for c, _ in containers(dep) for p in c["ports"]]
                check(f"{name}: targetPort is a container port",
                      all(p["targetPort"] in ports for p in doc["spec"]["ports"]))
        if doc["kind"] == "HorizontalPodAutoscaler":
            ref = doc["spec"]["scaleTargetRef"]
            check(f"{name}: HPA targets a Deployment", ref["kind"] == "Deployment" and ref["name"] in deployments)
    ok = answered_paths(probe_paths)
    check("probe paths answered 200 by a running tokd", ok == probe_paths, (probe_paths, ok))
    run_exec_probes(exec_probes)
    return summary("k8s")


if __name__ == "__main__":
    sys.exit(main())
