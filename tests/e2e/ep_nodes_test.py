#!/usr/bin/env python3
"""Expert parallelism across data-parallel ranks on several nodes (vLLM's Kimi-K2 two-node
recipe: `--data-parallel-size N --data-parallel-size-local L --enable-expert-parallel` on the
master, the same + `--headless --data-parallel-start-rank R` on the others), each node a
network namespace (multinode_test.Cluster). The expert-parallel group then spans the nodes
over Gloo, meeting at --data-parallel-rpc-port + 3 on the master's address.

  ep2         master (DP rank 0) + headless node (DP rank 1), --dtype float32: concurrent
              greedy completions all succeed and equal a DP=1 server's, both ranks did work,
              both workers joined one expert group of 2 over Gloo
  ep2_curve   ep2 with one `k2serve keygen` key file on both nodes: the control plane runs
              CURVE, and the master warns that the expert group's Gloo is not authenticated
  ep4_tp2     ep2 with --tensor-parallel-size 2 on each node: one expert group of 4 over Gloo
  ep2_killed  ep2, then kill -9 of the headless node's process tree with requests in
              flight: the master logs rank 1 gone and answers 503 within 5 s, no request
              hangs, and no process is left after teardown

Usage: ep_nodes_test.py K2SERVE DATA_DIR CASE
"""
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from k2_server import Checks, Server  # noqa: E402
from multinode_test import (Cluster, Deployment, concurrent, keygen, kill_node_mid_flight, per_engine,  # noqa: E402
                            request, run_case, teardown_after_kill)

PROMPTS = [f"Count to {i} and tell me about the number {i * 7}:" for i in range(8)]
MAX_TOKENS = 12
EP_FLAGS = ["--enable-expert-parallel", "--dtype", "float32", "--no-enable-prefix-caching"]


def completion(i, max_tokens=MAX_TOKENS):
    return {"model": "tiny", "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True}


def texts_of(results):
    return [json.loads(body)["choices"][0]["text"] if status == 200 else None for status, body in results]


def reference_texts(k2serve, data):
    """The greedy completions of one engine (DP=1, no expert parallelism)."""
    server = Server(k2serve, data / "models" / "tiny-bf16",
                    ["--tokenizer", str(data / "text" / "tok-1024"), "--max-model-len", "512", "--served-model-name",
                     "tiny", "--dtype", "float32", "--no-enable-prefix-caching"], kv_cache_memory=32 << 20)
    try:
        results = concurrent(server, [completion(i) for i in range(len(PROMPTS))], path="/v1/completions")
    finally:
        server.stop()
    if [r[0] for r in results] != [200] * len(PROMPTS):
        raise AssertionError(f"the DP=1 reference failed: {results}")
    return texts_of(results)


def serves_like_dp1(c, dep, want, ep_size=2):
    master, node = dep.server.log_text(), dep.headless[0].log_text()
    c.check("2 data-parallel ranks ready (1 on this node" in master, "the master reports 2 ranks ready")
    for name, log in (("master", master), ("headless node", node)):
        joined = re.findall(rf"worker \d+: expert-parallel group of {ep_size} over Gloo", log)
        c.check(len(joined) == ep_size // 2, f"the {name}'s workers joined the expert group of {ep_size} over Gloo")
    shards = sorted(int(r) for r in re.findall(rf"expert-parallel size {ep_size}, rank (\d+) ", master + node))
    c.check(shards == list(range(ep_size)), f"the workers hold expert ranks {shards} of {ep_size}")
    results = concurrent(dep.server, [completion(i) for i in range(len(PROMPTS))], path="/v1/completions")
    codes = [r[0] for r in results]
    c.check(codes == [200] * len(PROMPTS), f"{len(PROMPTS)} concurrent completions all succeed ({codes})")
    got = texts_of(results)
    same = sum(a == b for a, b in zip(got, want))
    print(f"{same} of {len(PROMPTS)} greedy completions equal DP=1's", flush=True)
    for i, (a, b) in enumerate(zip(got, want)):
        c.check(a == b, f"prompt {i}: {a!r} == DP=1 {b!r}")
    finished = per_engine(dep.server, "k2:engine_requests_finished_total")
    c.check(set(finished) == {"0", "1"} and all(v > 0 for v in finished.values()),
            f"both ranks did work ({finished})")


def case_ep2(c, k2serve, data, want):
    cluster = Cluster(2)
    dep = None
    try:
        dep = Deployment(k2serve, data, cluster, 2, EP_FLAGS)
        serves_like_dp1(c, dep, want)
        everything = dep.all_pids()
        dep.stop()
        time.sleep(0.5)
        left = [p for p in everything if Path(f"/proc/{p}").exists()
                and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        c.check(not left, f"SIGTERM to both nodes stops every process ({left})")
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()


def case_ep4_tp2(c, k2serve, data, want):
    """--tensor-parallel-size 2 on each node: the expert group has 4 ranks, 2 a node."""
    cfg = json.loads((data / "models" / "tiny-bf16" / "config.json").read_text())
    if cfg["n_routed_experts"] % 4 or cfg["num_attention_heads"] % 2:
        print("ep4_tp2: tiny-bf16's experts do not divide by 4; skipped", flush=True)
        return
    cluster = Cluster(2)
    dep = None
    try:
        dep = Deployment(k2serve, data, cluster, 2, [*EP_FLAGS, "--tensor-parallel-size", "2"])
        serves_like_dp1(c, dep, want, ep_size=4)
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()


def case_ep2_curve(c, k2serve, data, want):
    keys = Path(tempfile.mkdtemp(prefix="k2ep-keys-"))
    cluster = Cluster(2)
    dep = None
    try:
        keygen(k2serve, keys / "deployment.key")
        dep = Deployment(k2serve, data, cluster, 2, [*EP_FLAGS, "--control-plane-key-file", str(keys / "deployment.key")])
        c.check("CURVE" in dep.server.log_text() and "CURVE" in dep.headless[0].log_text(),
                "master and node say they run a CURVE control plane")
        c.check("expert-parallel group's Gloo connections" in dep.server.log_text(),
                "the master warns that the expert group's Gloo is not authenticated")
        serves_like_dp1(c, dep, want)
        c.check("refused peer" not in dep.server.log_text(), "nobody was refused")
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()
        shutil.rmtree(keys, ignore_errors=True)


def case_ep2_killed(c, k2serve, data, want):
    cluster = Cluster(2)
    dep = None
    try:
        dep = Deployment(k2serve, data, cluster, 2, EP_FLAGS)
        serves_like_dp1(c, dep, want)
        victim = dep.headless[0]
        everything = dep.all_pids()
        victims = kill_node_mid_flight(c, dep, victim,
                                       lambda i: request(dep.server, "/v1/completions", completion(i, 400), timeout=60),
                                       lambda: request(dep.server, "/v1/completions", completion(0), timeout=10))
        teardown_after_kill(c, dep, everything, victims)
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()


def main():
    k2serve, data, case = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    cases = {"ep2": case_ep2, "ep2_curve": case_ep2_curve, "ep4_tp2": case_ep4_tp2, "ep2_killed": case_ep2_killed}
    c = Checks()
    run_case({name: (lambda f=f: f(c, k2serve, data, reference_texts(k2serve, data))) for name, f in cases.items()},
             case, c)


if __name__ == "__main__":
    main()
