#!/usr/bin/env python3
"""End-to-end checks of `k2serve serve` as a client sees it, over loopback HTTP only.

1. Exactness through the whole stack: every golden prompt of a model set, sent as token ids to
   /v1/completions at temperature 0 with max_tokens 16, returns the golden greedy tokens
   (compared as tests/data/models/README.md section 8 says), alone and all in flight at once.
2. prompt_logprobs: for every golden prompt, /v1/completions with prompt_logprobs=2 returns for
   each prompt position the logprob of the prompt token equal to log_softmax of the golden
   float32 prefill logits of the position before it (within the tolerance), with the top 2 and
   their ranks, in vLLM's shape; also with chunked prefill and with the prompt already in the
   prefix cache (which prompt_logprobs must bypass), and through echo + logprobs.
3. n > 1: the siblings of one prompt share its KV blocks (the prompt's full blocks are computed
   once, with prefix caching off too) and greedy siblings equal the n = 1 answer.
4. Lifecycle: kill -9 of the worker, and separately of the enginecore, while a stream is open:
   the stream ends with an error, /health turns 503 within 2 s, the server exits non-zero, and
   no process of the tree and no shared-memory segment is left. SIGTERM drains and exits 0.

Usage: serve_test.py K2SERVE DATA_DIR MODEL_SET [MODEL_SET...]
"""
import json
import math
import os
import signal
import struct
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


def check_exactness(k2serve, data, model_set, c, extra=()):
    model = data / "models" / model_set
    golden = json.loads((model / "golden.json").read_text())
    server = Server(k2serve, model, ["--tokenizer", str(data / "text" / "tok-1024"), "--dtype", "float32", *extra],
                    kv_cache_memory=64 << 20)
    model_set = " ".join([model_set, *extra])
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
        # Every golden prompt is in the prefix cache now: prompt_logprobs must bypass it.
        check_prompt_logprobs(server, model, golden, model_set, c)
    finally:
        server.stop()
    c.check(server.proc.returncode == 0, f"{model_set}: SIGTERM exits 0 (got {server.proc.returncode})")


def read_safetensors(path, names):
    """The named F32 tensors of a safetensors file as {name: (shape, flat list)}: stdlib only."""
    out = {}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name in names:
            meta = header[name]
            assert meta["dtype"] == "F32", f"{name}: {meta['dtype']}"
            begin, end = meta["data_offsets"]
            f.seek(base + begin)
            raw = f.read(end - begin)
            out[name] = (meta["shape"], list(struct.unpack(f"<{len(raw) // 4}f", raw)))
    return out


def log_softmax(row):
    mx = max(row)
    lse = mx + math.log(sum(math.exp(v - mx) for v in row))
    return [v - lse for v in row]


def golden_prompts(model, golden):
    """(label, prompt ids, golden prefill logits rows) for every golden prompt with fp32 prefill logits."""
    names = []
    for case in golden["cases"]:
        for i, _ in enumerate(case["prompts"]):
            names.append(f"{case['name']}.{i}.fp32.prefill_logits")
    tensors = read_safetensors(model / "golden.safetensors", names)
    out = []
    for case in golden["cases"]:
        for i, prompt in enumerate(case["prompts"]):
            (rows, vocab), flat = tensors[f"{case['name']}.{i}.fp32.prefill_logits"]
            assert rows == len(prompt)
            out.append((f"{case['name']}.{i}", prompt, [flat[r * vocab:(r + 1) * vocab] for r in range(rows)]))
    return out


def check_prompt_logprobs(server, model, golden, label, c):
    """prompt_logprobs=2 against log_softmax of the golden prefill logits, position by position."""
    top_n = 2
    for name, prompt, rows in golden_prompts(model, golden):
        body = {"model": server.model, "prompt": prompt, "max_tokens": 1, "temperature": 0,
                "prompt_logprobs": top_n, "ignore_eos": True}
        plp = server.post("/v1/completions", body)["choices"][0].get("prompt_logprobs")
        ok = isinstance(plp, list) and len(plp) == len(prompt) and plp[0] is None
        c.check(ok, f"{label} {name}: prompt_logprobs is a list of {len(prompt)} starting with null")
        if not ok:
            continue
        worst, bad = 0.0, []
        for p in range(1, len(prompt)):
            want = log_softmax(rows[p - 1])
            entry = plp[p]
            got = entry.get(str(prompt[p])) if isinstance(entry, dict) else None
            if got is None or not isinstance(got.get("decoded_token"), str):
                bad.append(f"position {p}: no entry for prompt token {prompt[p]}")
                continue
            worst = max(worst, abs(got["logprob"] - want[prompt[p]]))
            best = max(range(len(want)), key=lambda t: want[t])
            second = max((t for t in range(len(want)) if t != best), key=lambda t: want[t])
            ranks = sorted(e["rank"] for e in entry.values())
            # The prompt token with its own rank, then ranks 1..top_n (one entry if it is among them).
            if not (ranks[:top_n] == list(range(1, top_n + 1)) and len(entry) in (top_n, top_n + 1)
                    and (len(entry) == top_n or got["rank"] > top_n)):
                bad.append(f"position {p}: entries {entry}")
            elif want[best] - want[second] > 2 * TOL and entry.get(str(best), {}).get("rank") != 1:
                bad.append(f"position {p}: rank 1 is not token {best}: {entry}")
        c.check(worst <= TOL and not bad,
                f"{label} {name}: prompt token logprobs within {TOL} of log_softmax(golden) (worst {worst:.2e}) {bad[:3]}")
    # echo + logprobs: the prompt's token_logprobs are the same scores.
    name, prompt, rows = golden_prompts(model, golden)[0]
    body = {"model": server.model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "echo": True,
            "logprobs": 1, "ignore_eos": True}
    lp = server.post("/v1/completions", body)["choices"][0]["logprobs"]["token_logprobs"]
    got = lp[:len(prompt)]
    want = [None] + [log_softmax(rows[p - 1])[prompt[p]] for p in range(1, len(prompt))]
    c.check(got[0] is None and all(abs(g - w) <= TOL for g, w in zip(got[1:], want[1:])),
            f"{label} {name}: echo + logprobs scores the prompt as prompt_logprobs do")


def check_prompt_logprobs_chunked(k2serve, data, model_set, c):
    """The same with a token budget far below the prompts (chunked prefill), cache warm first."""
    model = data / "models" / model_set
    golden = json.loads((model / "golden.json").read_text())
    server = Server(k2serve, model, ["--tokenizer", str(data / "text" / "tok-1024"), "--dtype", "float32",
                                     "--enable-chunked-prefill", "--max-num-batched-tokens", "16"],
                    kv_cache_memory=64 << 20)
    try:
        for case in golden["cases"]:
            for prompt in case["prompts"]:  # warm the prefix cache with every prompt
                server.post("/v1/completions", {"model": server.model, "prompt": prompt, "max_tokens": 1})
        check_prompt_logprobs(server, model, golden, f"{model_set} chunked(16)", c)
    finally:
        server.stop()


def check_siblings(k2serve, data, model_set, c):
    """n = 3 with prefix caching off: two siblings start from the first one's 2 full blocks."""
    model = data / "models" / model_set
    server = Server(k2serve, model, ["--tokenizer", str(data / "text" / "tok-1024"), "--dtype", "float32",
                                     "--no-enable-prefix-caching", "--block-size", "16"], kv_cache_memory=64 << 20)
    try:
        prompt = [(7 * i + 3) % 500 + 1 for i in range(40)]
        body = {"model": server.model, "prompt": prompt, "max_tokens": 8, "temperature": 0, "ignore_eos": True}
        one = server.post("/v1/completions", body)
        three = server.post("/v1/completions", dict(body, n=3))
        texts = [ch["text"] for ch in sorted(three["choices"], key=lambda ch: ch["index"])]
        c.check(texts == [one["choices"][0]["text"]] * 3, f"n=3 greedy siblings equal the n=1 answer ({texts})")
        cached = three["usage"]["prompt_tokens_details"]["cached_tokens"]
        c.check(cached == 32, f"n=3: siblings reuse the 2 full prompt blocks (cached_tokens {cached}, want 32)")
        c.check(one["usage"]["prompt_tokens_details"]["cached_tokens"] == 0,
                "prefix caching off: an unrelated request reuses nothing")
        again = server.post("/v1/completions", body)
        c.check(again["usage"]["prompt_tokens_details"]["cached_tokens"] == 0,
                "prefix caching off: the siblings' blocks are not shared with later requests")
        log = server.log_text()
        numa = Path("/sys/devices/system/node/node0").exists()
        c.check("worker 0: " + ("node 0, cpus" if numa else "unbound") in log,
                "the worker reports its NUMA placement (node 0 with VLLM_CPU_OMP_THREADS_BIND=auto)")
        m = server.metrics()
        phases = ["queue", "prefill", "decode", "inference"]
        counts = [m.get(f"vllm:request_{p}_time_seconds_count", 0) for p in phases]
        c.check(counts == [5.0] * 4, f"phase histograms count the 5 finished requests ({counts})")
        sums = {p: m.get(f"vllm:request_{p}_time_seconds_sum", -1) for p in phases}
        c.check(all(v >= 0 for v in sums.values()) and
                abs(sums["prefill"] + sums["decode"] - sums["inference"]) < 1e-6 * max(1.0, sums["inference"]),
                f"prefill + decode = inference time ({sums})")
    finally:
        server.stop()


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
    # Tensor parallelism: two worker processes, heads and MLP widths sharded, all-reduce in shm.
    check_exactness(k2serve, data, sets[0], c, ["--tensor-parallel-size", "2"])
    check_prompt_logprobs_chunked(k2serve, data, sets[0], c)
    check_siblings(k2serve, data, sets[0], c)
    check_kill(k2serve, data, sets[0], "worker", c)
    check_kill(k2serve, data, sets[0], "enginecore", c)
    sys.exit(c.exit_code() if c.passed else 1)


if __name__ == "__main__":
    main()
