#!/usr/bin/env python3
"""Expert parallelism across data-parallel ranks (vLLM's EP = TP x DP), end to end:
`k2serve serve tiny-bf16 --data-parallel-size 2 --enable-expert-parallel --dtype float32`.

1. Concurrent greedy requests all complete, both ranks did work (per-engine series in /metrics),
   and every completion's text equals a DP=1 server's for the same prompt (the routed experts
   of each rank's rows ran on the workers of both ranks).
2. The expert load in /metrics is exact: rows x num_experts_per_tok x MoE layers, each routed
   slot counted once by the one worker holding its expert (dummy forwards left out).
3. The same with --tensor-parallel-size 2 (EP = 4), when the set's experts divide by 4.
(Experts across externally launched DP ranks, `launch-dp --enable-expert-parallel`: ep_external_dp_test.py.)

Usage: ep_dp_serve_test.py K2SERVE DATA_DIR
"""
import json
import re
import sys
import threading
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from k2_server import Checks, Server  # noqa: E402
from proxy_test import post  # noqa: E402
from expert_load_e2e import settled_expert_load  # noqa: E402

PROMPTS = [f"Count to {i} and tell me about the number {i * 7}:" for i in range(10)]
MAX_TOKENS = 12


def scrape(server):
    with urllib.request.urlopen(server.url("/metrics"), timeout=30) as resp:
        return resp.read().decode()


def series(text, name):
    """{label set: value} of one metric family."""
    return {m.group(1): float(m.group(2)) for m in re.finditer("^" + re.escape(name) + r"(\{[^}]*\}) (\S+)$", text, re.M)}


def per_engine(text, name):
    return {re.search(r'engine="(\d+)"', k).group(1): v for k, v in series(text, name).items() if 'engine="' in k}


KV_CACHE_MEMORY = 32 << 20


def serve_flags(data):
    """tiny-bf16's serve flags but the model and the KV cache (the float32 path)."""
    return ["--tokenizer", str(data / "text" / "tok-1024"), "--max-model-len", "512", "--served-model-name", "tiny",
            "--dtype", "float32", "--no-enable-prefix-caching"]


def start(k2serve, data, extra):
    return Server(k2serve, data / "models" / "tiny-bf16", [*serve_flags(data), *extra],
                  kv_cache_memory=KV_CACHE_MEMORY)


def complete_all(port):
    """Every prompt at once to the server on `port`; [(status, text, rows routed)] in prompt order."""
    out = [None] * len(PROMPTS)

    def one(i):
        status, body = post(port, "/v1/completions",
                            {"model": "tiny", "prompt": PROMPTS[i], "max_tokens": MAX_TOKENS, "temperature": 0,
                             "ignore_eos": True}, timeout=120)
        if status != 200:
            out[i] = (status, body[:300], 0)
            return
        j = json.loads(body)
        usage = j["usage"]
        # Every prompt token and every generated token but the last went through the model.
        out[i] = (status, j["choices"][0]["text"], usage["prompt_tokens"] + usage["completion_tokens"] - 1)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def reference_completions(k2serve, data):
    """complete_all on a DP=1 server started for it and stopped after."""
    reference = start(k2serve, data, [])
    try:
        return complete_all(reference.port)
    finally:
        reference.stop()


def check_deployment(c, k2serve, data, cfg, want_texts, extra, label, ep_size):
    moe_layers = cfg["num_hidden_layers"] - cfg["first_k_dense_replace"]
    server = start(k2serve, data, extra)
    try:
        log = server.log_text()
        c.check("2 data-parallel ranks ready" in log, f"{label}: both ranks ready")
        shards = sorted(int(r) for r in re.findall(rf"expert-parallel size {ep_size}, rank (\d+) ", log))
        c.check(shards == list(range(ep_size)), f"{label}: workers hold expert ranks {shards} of {ep_size}")
        got = complete_all(server.port)
        c.check([g[0] for g in got] == [200] * len(PROMPTS), f"{label}: all requests complete ({[g[0] for g in got]})")
        texts = [g[1] for g in got]
        same = sum(a == b for a, b in zip(texts, want_texts))
        print(f"{label}: {same} of {len(PROMPTS)} greedy completions equal DP=1's", flush=True)
        for i, (a, b) in enumerate(zip(texts, want_texts)):
            c.check(a == b, f"{label}: prompt {i}: {a!r} == DP=1 {b!r}")
        text = scrape(server)
        finished = per_engine(text, "k2:engine_requests_finished_total")
        c.check(set(finished) == {"0", "1"} and all(v > 0 for v in finished.values()),
                f"{label}: both ranks did work ({finished})")
        rows = sum(g[2] for g in got)
        want = rows * cfg["num_experts_per_tok"] * moe_layers
        experts = settled_expert_load(server, want)
        routed = sum(experts.values())
        print(f"{label}: routed {routed:.0f} expert slots, want {want} ({rows} rows)", flush=True)
        c.check(len(experts) == cfg["n_routed_experts"], f"{label}: one series per expert ({len(experts)})")
        c.check(routed == want, f"{label}: expert load {routed} == rows x top-k x MoE layers {want}")
    finally:
        server.stop()


def main():
    k2serve, data = sys.argv[1], Path(sys.argv[2])
    cfg = json.loads((data / "models" / "tiny-bf16" / "config.json").read_text())
    c = Checks()
    base = reference_completions(k2serve, data)
    c.check([b[0] for b in base] == [200] * len(PROMPTS), "DP=1 reference completes")
    want_texts = [b[1] for b in base]
    check_deployment(c, k2serve, data, cfg, want_texts,
                     ["--data-parallel-size", "2", "--enable-expert-parallel"], "DP=2 x EP", 2)
    if cfg["n_routed_experts"] % 4 == 0 and cfg["num_attention_heads"] % 2 == 0:
        check_deployment(c, k2serve, data, cfg, want_texts,
                         ["--data-parallel-size", "2", "--tensor-parallel-size", "2", "--enable-expert-parallel"],
                         "TP=2 x DP=2 (EP=4)", 4)
    else:
        print("TP=2 x DP=2: tiny-bf16's experts do not divide by 4; skipped", flush=True)
    return c.exit_code()


if __name__ == "__main__":
    sys.exit(main())
