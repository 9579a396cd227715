#!/usr/bin/env python3
"""Expert parallelism across externally launched data-parallel ranks (vLLM's external load
balancing with --enable-expert-parallel, vLLM-Ascend's launch_online_dp recipe):
`k2serve launch-dp --dp-size 2 ... tiny-bf16 --enable-expert-parallel --dtype float32` starts two
ranks, each with its own API server; their workers share the routed experts over Gloo (store
at --dp-rpc-port + 3) and their engines step in the request waves of the coordinator that rank
0's engine serves at --dp-rpc-port + 2. `k2serve proxy` balances them.

1. Greedy completions through the proxy equal a DP=1 server's, both ranks log their expert
   shard and the waves, and both did work.
2. Requests sent only to rank 1's API server (rank 0 idle) complete with the same text: rank 0
   steps dummy batches while rank 1 is busy (without the coordinator rank 1's expert
   collectives would wait for rank 0 forever).
3. kill -9 of rank 0's process tree (the coordinator's too) while rank 1 runs requests: rank
   1's in-flight requests end with an error within 10 s (its expert collectives fail), its API
   server exits, the proxy answers 503, the launcher ends and no process is left.

Usage: ep_external_dp_test.py K2SERVE DATA_DIR
"""
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from k2_server import Checks, kill_tree, process_tree  # noqa: E402
from proxy_test import post, start  # noqa: E402
from launch_dp_test import free_ports, healthy, metric, successes  # noqa: E402
from ep_dp_serve_test import KV_CACHE_MEMORY, PROMPTS, complete_all, reference_completions, serve_flags  # noqa: E402
from multinode_test import teardown_after_kill  # noqa: E402

IN_FLIGHT = 4
LONG_TOKENS = 480  # most of --max-model-len 512: still running when rank 0 is killed


class ExternalRanks:
    """`launch-dp` with two EP ranks and a proxy in front; stop() ends both (teardown_after_kill)."""

    def __init__(self, k2serve, data):
        self.api = free_ports(2)
        self.rpc = free_ports(4)  # P..P+3: the unused handshake and output ports, coordinator, Gloo store
        self.log = open(f"/tmp/k2-ep-external-dp-{os.getpid()}.log", "w+")
        self.launcher = subprocess.Popen(
            [k2serve, "launch-dp", "--dp-size", "2", "--vllm-start-port", str(self.api), "--dp-rpc-port",
             str(self.rpc), str(data / "models" / "tiny-bf16"), *serve_flags(data), "--kv-cache-memory",
             str(KV_CACHE_MEMORY), "--enable-expert-parallel"], stdout=self.log, stderr=subprocess.STDOUT)
        self.proxy = None
        deadline = time.time() + 120
        while time.time() < deadline and not (healthy(self.api) and healthy(self.api + 1)):
            assert self.launcher.poll() is None, "launch-dp exited:\n" + self.log_text()
            time.sleep(0.2)
        assert healthy(self.api) and healthy(self.api + 1), "ranks not up in 120 s:\n" + self.log_text()
        self.proxy_log = open(f"/tmp/k2-ep-external-dp-proxy-{os.getpid()}.log", "w+")
        self.proxy, self.proxy_port = start(
            [k2serve, "proxy", "--port", "0", "--health-interval", "0.2", "--backends",
             f"127.0.0.1:{self.api},127.0.0.1:{self.api + 1}"], r"proxy on http://127\.0\.0\.1:(\d+)", self.proxy_log)

    def log_text(self):
        return Path(self.log.name).read_text()

    def rank_pid(self, rank):
        return int(re.search(rf"launch-dp: rank {rank} \(pid (\d+)\)", self.log_text()).group(1))

    def pids(self):
        return process_tree(self.launcher.pid) + ([self.proxy.pid] if self.proxy else [])

    def stop(self):
        for proc in (self.launcher, self.proxy):
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def serves_like_dp1(c, ranks, want):
    got = complete_all(ranks.proxy_port)
    c.check([g[0] for g in got] == [200] * len(PROMPTS), f"all requests through the proxy complete ({[g[0] for g in got]})")
    for i, (g, w) in enumerate(zip(got, want)):
        c.check(g[1] == w, f"proxy: prompt {i}: {g[1]!r} == DP=1 {w!r}")
    log = ranks.log_text()
    shards = sorted(int(r) for r in re.findall(r"expert-parallel size 2, rank (\d+) ", log))
    c.check(shards == [0, 1], f"the ranks' workers hold expert ranks {shards} of 2")
    coordinator = f"tcp://127.0.0.1:{ranks.rpc + 2}"
    c.check(len(re.findall(r"request waves through " + re.escape(coordinator), log)) == 2,
            f"both engines follow the waves of {coordinator}")
    done = [successes(ranks.api), successes(ranks.api + 1)]
    c.check(all(n > 0 for n in done) and sum(done) == len(PROMPTS), f"both ranks did work ({done})")


def rank1_alone(c, ranks, want):
    before = successes(ranks.api)
    t0 = time.time()
    got = complete_all(ranks.api + 1)
    c.check([g[0] for g in got] == [200] * len(PROMPTS),
            f"requests to rank 1 alone complete in {time.time() - t0:.1f} s ({[g[0] for g in got]})")
    for i, (g, w) in enumerate(zip(got, want)):
        c.check(g[1] == w, f"rank 1 alone: prompt {i}: {g[1]!r} == DP=1 {w!r}")
    c.check(successes(ranks.api) == before, "rank 0 got none of them")


def one_long(port, i):
    body = {"model": "tiny", "prompt": PROMPTS[i], "max_tokens": LONG_TOKENS, "ignore_eos": True, "stream": True}
    try:
        return post(port, "/v1/completions", body, timeout=120)
    except (OSError, http.client.HTTPException) as e:  # the connection cut: also an end
        return None, repr(e)


def kill_mid_flight(c, port, victim_pid, who):
    """Runs IN_FLIGHT long requests on the API server at `port`, kill -9s `victim_pid`'s process
    tree once they all run, and checks they all end with an error within 10 s, none hanging.
    Returns (the killed pids, the time of the kill)."""
    outcomes, ended = {}, {}

    def one(i):
        outcomes[i] = one_long(port, i)
        ended[i] = time.time()
    openers = [threading.Thread(target=one, args=(i,)) for i in range(IN_FLIGHT)]
    for t in openers:
        t.start()
    deadline = time.time() + 30
    while time.time() < deadline and metric(port, "vllm:num_requests_running") < IN_FLIGHT:
        time.sleep(0.02)
    t0 = time.time()
    victims = kill_tree(victim_pid)
    for t in openers:
        t.join(timeout=60)
    c.check(not any(t.is_alive() for t in openers), "no in-flight request hangs")
    took = max(ended.values(), default=t0) - t0
    c.check(len(ended) == IN_FLIGHT and took < 10, f"{who}'s in-flight requests end within 10 s ({took:.1f} s)")
    results = list(outcomes.values())
    c.check(len(results) == IN_FLIGHT and all(o[0] != 200 or '"error"' in o[1] for o in results),
            f"each ends with an error ({[(o[0], o[1][-160:]) for o in results]})")
    return victims, t0


def kill_rank0_mid_flight(c, ranks):
    """Returns the killed pids."""
    victims, t0 = kill_mid_flight(c, ranks.api + 1, ranks.rank_pid(0), "rank 1")
    status = None
    while time.time() - t0 < 15:
        status, _ = post(ranks.proxy_port, "/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": 2})
        if status == 503:
            break
        time.sleep(0.2)
    c.check(status == 503, f"the proxy answers 503 with no rank left ({status})")
    try:
        ranks.launcher.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    c.check(ranks.launcher.poll() is not None, f"launch-dp ends when both ranks are gone ({ranks.launcher.poll()})")
    return victims


def main():
    k2serve, data = sys.argv[1], Path(sys.argv[2])
    c = Checks()
    want = [b[1] for b in reference_completions(k2serve, data)]
    ranks = ExternalRanks(k2serve, data)
    everything = ranks.pids()
    try:
        serves_like_dp1(c, ranks, want)
        rank1_alone(c, ranks, want)
        victims = kill_rank0_mid_flight(c, ranks)
        teardown_after_kill(c, ranks, everything, victims)
    finally:
        ranks.stop()
        if c.failures:
            print(ranks.log_text()[-6000:], flush=True)
    sys.exit(c.exit_code())


if __name__ == "__main__":
    main()
