#!/usr/bin/python3
"""Checks the Kubernetes manifests in deploy/k8s against the Dockerfile and the real binary:
ports agree, probes point at endpoints a running tokd answers with 200, args and env are
flags and variables `tokd serve` knows, the user matches the image's, grace periods cover
the drain, the sidecar is a native sidecar, Service and HPA point at the Deployment.

Usage: tests/k8s_test.py build/tokd   (Debian's python3 with python3-yaml)
"""
import glob
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import yaml

TOKD = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = {"passed": 0, "failed": 0}


def check(name, cond, detail=""):
    RESULTS["passed" if cond else "failed"] += 1
    if not cond:
        print(f"FAIL: {name} {detail}")


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
    """Starts tokd and returns the probe paths it answers with 200."""
    proc = subprocess.Popen([TOKD, "serve", "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ok = set()
    try:
        port = None
        for _ in range(50):
            line = proc.stdout.readline()
            m = re.search(r'"port":(\d+)', line)
            if m:
                port = int(m.group(1))
                break
        for p in paths:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}{p}", timeout=5).status == 200:
                    ok.add(p)
            except Exception:
                pass
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return ok


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
            check(f"{where}: containerPort is the listening port",
                  [p["containerPort"] for p in c["ports"]] == [port] and port == exposed,
                  (c["ports"], port, exposed))
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"]:
                get = c.get(probe, {}).get("httpGet")
                check(f"{where}: {probe} present", get is not None)
                if get:
                    check(f"{where}: {probe} port", get["port"] == port)
                    probe_paths.add(get["path"])
            check(f"{where}: readiness uses /ready", c["readinessProbe"]["httpGet"]["path"] in ("/ready", "/readyz"))
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
            # (README "Memory model": with o200k_base 43.7 MB, all five 55.8 MB) and ~5 MiB a scratch (a worker's,
            # and one per split helper of each worker)
            warm = {"cl100k_base": 20, "o200k_base": 24, "r50k_base": 5, "p50k_base": 6, "p50k_edit": 1}
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
            limit = quantity(c.get("resources", {}).get("limits", {}).get("memory", "0"))
            check(f"{where}: memory limit above the budget + {need} MiB for tokenizers and worker buffers",
                  limit >= budget + (need << 20), (limit, budget, need))
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
    print(f"k8s: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
