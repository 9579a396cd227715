#!/usr/bin/env python3
"""Hybrid data-parallel load balancing (vLLM's --data-parallel-hybrid-lb) with expert
parallelism: two `k2serve serve tiny-bf16 --data-parallel-size 4 --data-parallel-size-local 2
--data-parallel-start-rank S --enable-expert-parallel` on this machine as nodes A (S = 0) and
B (S = 2), each with its own API server balancing over its own two ranks. The experts span all
four ranks (Gloo, store at --data-parallel-rpc-port + 3) and every engine steps in the waves of
the coordinator rank 0's engine (node A) serves at P + 2.

1. Greedy completions sent to both API servers at once equal a DP=1 server's; each node logs
   its derived mode, the workers hold expert ranks 0..3 of 4, all four engines follow the waves.
2. Each API server's /metrics shows only its own ranks (engine="0","1" on A, "2","3" on B), and
   those ranks did all of its work.
3. Requests sent only to node B (node A idle) complete with the same text: A's ranks step
   dummy batches in B's waves.
4. kill -9 of node A's process tree (rank 0, the coordinator) while B runs requests: B's
   in-flight requests end with an error within 10 s, B answers 503 naming its ranks 2/3 dead,
   and after B's SIGTERM no process is left. The same on a fresh pair with node B killed.

Usage: hybrid_dp_test.py K2SERVE DATA_DIR
"""
import re
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from k2_server import Checks  # noqa: E402
from launch_dp_test import free_ports, successes  # noqa: E402
from ep_dp_serve_test import PROMPTS, complete_all, per_engine, reference_completions  # noqa: E402
from ep_dp_serve_test import start as start_server  # noqa: E402
from ep_external_dp_test import kill_mid_flight  # noqa: E402
from multinode_test import teardown_after_kill  # noqa: E402

SIZE, LOCAL = 4, 2


class Nodes:
    """Nodes A and B, started together (each one's ranks wait for the other's in the expert group)."""

    def __init__(self, k2serve, data):
        self.rpc = free_ports(4)  # P..P+3: the coordinator is at P+2, the Gloo store at P+3
        self.nodes = [None, None]
        errors = []

        def one(i):
            try:
                self.nodes[i] = start_server(k2serve, data, [
                    "--data-parallel-size", str(SIZE), "--data-parallel-size-local", str(LOCAL),
                    "--data-parallel-start-rank", str(i * LOCAL), "--data-parallel-address", "127.0.0.1",
                    "--data-parallel-rpc-port", str(self.rpc), "--enable-expert-parallel",
                    *(["--data-parallel-hybrid-lb"] if i == 1 else [])])
            except BaseException as e:  # noqa: BLE001 (re-raised below)
                errors.append(e)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.stop()
            raise errors[0]
        self.a, self.b = self.nodes

    def pids(self):
        return [p for n in self.nodes for p in [n.proc.pid, *n.descendants()]]

    def log_text(self):
        return "".join(n.log_text() for n in self.nodes if n is not None)

    def stop(self):
        for n in self.nodes:
            if n is not None:
                n.stop()


def engine_series(node, name):
    with urllib.request.urlopen(node.url("/metrics"), timeout=30) as resp:
        return per_engine(resp.read().decode(), name)


def serves_like_dp1(c, nodes, want):
    got = [None, None]
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, complete_all(nodes.nodes[i].port)))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, results in zip("AB", got):
        c.check([g[0] for g in results] == [200] * len(PROMPTS), f"node {name}: all complete ({[g[0] for g in results]})")
        for i, (g, w) in enumerate(zip(results, want)):
            c.check(g[1] == w, f"node {name}: prompt {i}: {g[1]!r} == DP=1 {w!r}")
    c.check("hybrid load balancing: ranks 0..1 of 4 behind this API server" in nodes.a.log_text(),
            "node A logs its mode and ranks")
    c.check("hybrid load balancing: ranks 2..3 of 4 behind this API server" in nodes.b.log_text(),
            "node B logs its mode and ranks")
    log = nodes.log_text()
    shards = sorted(int(r) for r in re.findall(r"expert-parallel size 4, rank (\d+) ", log))
    c.check(shards == [0, 1, 2, 3], f"the workers hold expert ranks {shards} of 4")
    coordinator = f"tcp://127.0.0.1:{nodes.rpc + 2}"
    waves = re.findall(r"data-parallel rank (\d) of 4: request waves through " + re.escape(coordinator), log)
    c.check(sorted(waves) == ["0", "1", "2", "3"], f"all four engines follow the waves of {coordinator} ({waves})")


def own_ranks_did_the_work(c, nodes):
    for node, ranks in ((nodes.a, ["0", "1"]), (nodes.b, ["2", "3"])):
        routed = engine_series(node, "k2:engine_requests_routed_total")
        finished = engine_series(node, "k2:engine_requests_finished_total")
        c.check(sorted(routed) == ranks and sorted(finished) == ranks,
                f"port {node.port}: /metrics shows ranks {ranks} only ({sorted(routed)}, {sorted(finished)})")
        c.check(sum(finished.values()) == successes(node.port) == len(PROMPTS),
                f"port {node.port}: its ranks finished its {len(PROMPTS)} requests ({finished})")
        c.check(all(v > 0 for v in routed.values()), f"port {node.port}: it balanced over both its ranks ({routed})")


def node_b_alone(c, nodes, want):
    before = successes(nodes.a.port)
    t0 = time.time()
    got = complete_all(nodes.b.port)
    c.check([g[0] for g in got] == [200] * len(PROMPTS),
            f"requests to node B alone complete in {time.time() - t0:.1f} s ({[g[0] for g in got]})")
    for i, (g, w) in enumerate(zip(got, want)):
        c.check(g[1] == w, f"node B alone: prompt {i}: {g[1]!r} == DP=1 {w!r}")
    c.check(successes(nodes.a.port) == before, "node A's API server got none of them")


def kill_mid_flight_on(c, nodes, victim):
    """kill -9 of node `victim` (0: A, rank 0 and the coordinator; 1: B) while the other node
    runs requests. Returns the killed pids."""
    killed, survivor = nodes.nodes[victim], nodes.nodes[1 - victim]
    name = "AB"[1 - victim]
    victims, t0 = kill_mid_flight(c, survivor.port, killed.proc.pid, f"node {name}")
    while time.time() - t0 < 15 and survivor.health() != 503:
        time.sleep(0.2)
    c.check(survivor.health() == 503, f"node {name} answers 503 once the other node is gone ({survivor.health()})")
    own = "23" if victim == 0 else "01"
    c.check(re.search(rf"dp client: rank [{own}] died", survivor.log_text()) is not None,
            f"node {name} names its dead ranks by their deployment-wide rank ({own})")
    return victims


def run_pair(c, k2serve, data, victim, checks=()):
    """Starts nodes A and B, runs `checks` (each called with c and the nodes), then kills node
    `victim` mid-flight and tears down."""
    nodes = Nodes(k2serve, data)
    everything = nodes.pids()
    try:
        for check in checks:
            check(c, nodes)
        victims = kill_mid_flight_on(c, nodes, victim)
        teardown_after_kill(c, nodes, everything, victims)
    finally:
        nodes.stop()
        if c.failures:
            print(nodes.log_text()[-8000:], flush=True)


def main():
    k2serve, data = sys.argv[1], Path(sys.argv[2])
    c = Checks()
    want = [b[1] for b in reference_completions(k2serve, data)]
    run_pair(c, k2serve, data, 0, [lambda c, n: serves_like_dp1(c, n, want), own_ranks_did_the_work,
                                   lambda c, n: node_b_alone(c, n, want)])
    run_pair(c, k2serve, data, 1)
    sys.exit(c.exit_code())


if __name__ == "__main__":
    main()
