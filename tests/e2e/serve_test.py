#!/usr/bin/env python3
"""End-to-end checks of `k2serve serve` as a client sees it, over loopback HTTP only.

1. Exactness through the whole stack: every golden prompt of a model set, sent as token ids to
   /v1/completions at temperature 0 with max_tokens 16, returns the golden greedy tokens
   (compared as tests/data/models/README.md section 8 says), alone and all in flight at once.
2. Lifecycle: kill -9 of the worker, and separately of the enginecore, while a stream is open:
   the stream ends with an error, /health turns 503 within 2 s, the server exits non-zero, and
   no process of the tree and no shared-memory segment is left. SIGTERM drains and exits 0.

Usage: serve_test.py K2SERVE DATA_DIR MODEL_SET [MODEL_SET...]
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import Checks, Server  # noqa: E402

TOL = 1e-3


def comparable_prefix(golden_tokens, gaps):
    """Golden tokens up to the first step whose top-1/top-2 gap is within twice the tolerance."""
    n = 0
    while n < len(golden_tokens) and gaps[n] > 2 * TOL:
        n += 1
    return golden_tokens[:n]


def completion_ids(server, prompt):
    body = {"model": server.model, "prompt": prompt, "max_tokens": 16, "temperature": 0,
            "logprobs": 0, "return_tokens_as_token_ids": True, "ignore_eos": True}
    resp = server.post("/v1/completions", body)
    return [int(t.split(":")[1]) for t in resp["choices"][0]["logprobs"]["tokens"]]


def check_exactness(k2serve, data, model_set, c):
    model = data / "models" / model_set
    golden = json.loads((model / "golden.json").read_text())
    server = Server(k2serve, model, ["--tokenizer", str(data / "text" / "tok-1024"), "--dtype", "float32"], kv_cache_memory=64 << 20)
    try:
        jobs = []
        for case in golden["cases"]:
            run = case["runs"]["fp32"]
            for i, prompt in enumerate(case["prompts"]):
                want = comparable_prefix(run["greedy"][i], run["top2_gap_decode"][i])
                jobs.append((f"{model_set} {case['name']}.{i}", prompt, want))
        for name, prompt, want in jobs:
            got = completion_ids(server, prompt)
            c.check(got[:len(want)] == want and len(got) == 16, f"alone {name}: got {got}, want prefix {want}")
        results = {}

        def worker(job):
            results[job[0]] = completion_ids(server, job[1])
        threads = [threading.Thread(target=worker, args=(j,)) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, _, want in jobs:
            got = results.get(name, [])
            c.check(got[:len(want)] == want, f"concurrent {name}: got {got}, want prefix {want}")
    finally:
        server.stop()
    c.check(server.proc.returncode == 0, f"{model_set}: SIGTERM exits 0 (got {server.proc.returncode})")


def open_stream(server):
    body = {"model": server.model, "prompt": [1, 2, 3], "max_tokens": 2000, "temperature": 0,
            "ignore_eos": True, "stream": True}
    req = urllib.request.Request(server.url("/v1/completions"), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=60)


def shm_segments_of(pids):
    names = os.listdir("/dev/shm")
    return [n for n in names if any(n.startswith(f"k2serve-{p}-") for p in pids)]


def check_kill(k2serve, data, model_set, victim, c):
    model = data / "models" / model_set
    server = Server(k2serve, model, ["--tokenizer", str(data / "text" / "tok-1024"), "--dtype", "float32"], kv_cache_memory=64 << 20)
    try:
        pids = server.descendants()
        c.check(len(pids) >= 2, f"kill {victim}: the server runs an enginecore and a worker ({pids})")
        stream = open_stream(server)
        first = stream.readline()
        c.check(first.startswith(b"data: "), f"kill {victim}: the stream started")
        target = pids[0] if victim == "enginecore" else pids[-1]
        os.kill(target, signal.SIGKILL)
        killed_at = time.time()
        rest = stream.read().decode(errors="replace")
        c.check('"error"' in rest and rest.rstrip().endswith("data: [DONE]"),
                f"kill {victim}: the open stream ends with an error event and [DONE]")
        while server.health() == 200 and time.time() - killed_at < 5:
            time.sleep(0.05)
        c.check(time.time() - killed_at < 2.0, f"kill {victim}: /health left 200 within 2 s")
        try:
            code = server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            code = None
        c.check(code not in (None, 0), f"kill {victim}: the server exits non-zero (got {code})")
        time.sleep(0.5)
        alive = [p for p in pids if Path(f"/proc/{p}").exists()
                 and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]]
        c.check(not alive, f"kill {victim}: no process of the tree left ({alive})")
        left = shm_segments_of(pids + [server.proc.pid])
        c.check(not left, f"kill {victim}: no shm segment left ({left})")
    finally:
        server.stop()


def main():
    k2serve, data, sets = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    c = Checks()
    for s in sets:
        check_exactness(k2serve, data, s, c)
    check_kill(k2serve, data, sets[0], "worker", c)
    check_kill(k2serve, data, sets[0], "enginecore", c)
    sys.exit(c.exit_code() if c.passed else 1)


if __name__ == "__main__":
    main()
