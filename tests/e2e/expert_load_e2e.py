#!/usr/bin/env python3
"""Expert-load balance in /metrics, end to end (`k2serve serve`, one engine and --data-parallel-size 2).

After a burst of completions (prefix caching off, so every prompt token runs), the per-expert
counters summed over experts equal rows x num_experts_per_tok x MoE layers, where rows = every
prompt token + every generated token but the last (with DP too: dummy forwards of the idle
rank are left out). One imbalance gauge per MoE layer, in [1, n_routed_experts].

Usage: expert_load_e2e.py K2SERVE DATA_DIR
"""
import json
import re
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from k2_server import Checks, Server  # noqa: E402
from proxy_test import post  # noqa: E402


def samples(server, name):
    with urllib.request.urlopen(server.url("/metrics"), timeout=30) as resp:
        text = resp.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer("^" + re.escape(name) + r"(\{[^}]*\}) (\S+)$", text, re.M)}


def settled_expert_load(server, want, timeout=10):
    """{labels: tokens} of k2:expert_routed_tokens_total once their sum reaches `want` (each
    engine collects its workers' last counts within about 2 s), or as they are at `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        experts = samples(server, "k2:expert_routed_tokens_total")
        if sum(experts.values()) >= want or time.monotonic() > deadline:
            return experts
        time.sleep(0.25)


def run(c, k2serve, data, extra, label):
    cfg = json.loads((data / "models" / "tiny-bf16" / "config.json").read_text())
    moe_layers = cfg["num_hidden_layers"] - cfg["first_k_dense_replace"]
    server = Server(k2serve, data / "models" / "tiny-bf16",
                    ["--tokenizer", str(data / "text" / "tok-1024"), "--max-model-len", "512", "--served-model-name",
                     "tiny", "--no-enable-prefix-caching", *extra], kv_cache_memory=32 << 20)
    try:
        c.check(samples(server, "k2:expert_routed_tokens_total") == {}, f"{label}: no expert series before traffic")
        rows, lock = [0], threading.Lock()

        def one(i):
            status, body = post(server.port, "/v1/completions",
                                {"model": "tiny", "prompt": f"Count to {i} and then some more:", "max_tokens": 8,
                                 "ignore_eos": True})
            usage = json.loads(body)["usage"] if status == 200 else {"prompt_tokens": 0, "completion_tokens": 1}
            with lock:
                rows[0] += usage["prompt_tokens"] + usage["completion_tokens"] - 1
        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        want = rows[0] * cfg["num_experts_per_tok"] * moe_layers
        experts = settled_expert_load(server, want)
        got = sum(experts.values())
        print(f"{label}: routed {got:.0f} expert slots, want {want} ({rows[0]} rows)", flush=True)
        c.check(len(experts) == cfg["n_routed_experts"], f"{label}: one series per expert ({len(experts)})")
        # Exact with DP too: the idle rank's dummy forwards are left out.
        c.check(got == want, f"{label}: routed {got} == {want}")
        layers = samples(server, "k2:expert_load_imbalance")
        c.check(len(layers) == moe_layers, f"{label}: one imbalance gauge per MoE layer ({layers})")
        c.check(all(1 <= v <= cfg["n_routed_experts"] for v in layers.values()), f"{label}: ratios in range {layers}")
        worst = samples(server, "k2:expert_load_max_imbalance")
        c.check(list(worst.values()) == [max(layers.values())], f"{label}: max imbalance {worst}")
    finally:
        server.stop()


def main():
    k2serve, data = sys.argv[1], Path(sys.argv[2])
    c = Checks()
    run(c, k2serve, data, [], "one engine")
    run(c, k2serve, data, ["--data-parallel-size", "2"], "DP=2")
    return c.exit_code()


if __name__ == "__main__":
    sys.exit(main())
