#!/usr/bin/env python3
"""External data parallelism as the Kimi guides run it: `k2serve launch-dp --dp-size 2` starts two
ranks of the demo model, each with its own API server (the real engine and worker), and
`k2serve proxy` balances them.

1. Requests through the proxy all succeed and both ranks did work (from their /metrics).
2. A long stream open on each rank; kill -9 one rank's process tree: only its stream fails
   (error event, [DONE]), the other completes, later requests succeed on the survivor.
3. SIGTERM to the launcher stops the surviving rank; no process of the tree is left.

Usage: launch_dp_test.py K2SERVE DATA_DIR
"""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import Checks, kill_tree, process_tree  # noqa: E402
from proxy_test import post, start  # noqa: E402


def free_ports(count):
    """The first of `count` consecutive TCP ports nobody listens on right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count - 1 > 65535:
            continue
        try:
            for p in range(base + 1, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise AssertionError(f"no {count} free consecutive ports")


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(name + r"\{[^}]*\} (\S+)", text))


def successes(port):
    return metric(port, "vllm:request_success_total")


def main():
    k2serve, data = sys.argv[1], Path(sys.argv[2])
    c = Checks()
    base = free_ports(2)
    log = open(f"/tmp/k2-launch-dp-{os.getpid()}.log", "w+")
    launcher = subprocess.Popen([k2serve, "launch-dp", "--dp-size", "2", "--vllm-start-port", str(base),
                                 str(data / "models" / "demo-trained"), "--kv-cache-memory", str(64 << 20),
                                 "--max-model-len", "4096", "--served-model-name", "demo",
                                 # the float32 path is slow enough that a long stream is still
                                 # running when a rank is killed
                                 "--dtype", "float32"],
                                stdout=log, stderr=subprocess.STDOUT)
    proxy_log = open(f"/tmp/k2-launch-dp-proxy-{os.getpid()}.log", "w+")
    proxy = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (healthy(base) and healthy(base + 1)):
            assert launcher.poll() is None, "launch-dp exited:\n" + Path(log.name).read_text()
            time.sleep(0.2)
        c.check(healthy(base) and healthy(base + 1), "both ranks serve their own API")
        proxy, port = start([k2serve, "proxy", "--port", "0", "--health-interval", "0.2",
                             "--backends", f"127.0.0.1:{base},127.0.0.1:{base + 1}"],
                            r"proxy on http://127\.0\.0\.1:(\d+)", proxy_log)
        codes = []
        threads = [threading.Thread(target=lambda: codes.append(
            post(port, "/v1/completions", {"model": "demo", "prompt": "Tell me 3 plus 4.", "max_tokens": 8})[0]))
            for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c.check(codes == [200] * 8, f"8 requests through the proxy succeed ({codes})")
        done = [successes(base), successes(base + 1)]
        c.check(all(n > 0 for n in done) and sum(done) == 8, f"both ranks did work ({done})")

        streams = {}

        def long_stream(k):
            streams[k] = post(port, "/v1/completions", {"model": "demo", "prompt": "Once", "max_tokens": 4000,
                                                        "ignore_eos": True, "stream": True})
        openers = [threading.Thread(target=long_stream, args=(k,)) for k in range(2)]
        for t in openers:
            t.start()
            time.sleep(0.3)
        # Kill only once each rank is running one of the streams.
        deadline = time.time() + 30
        while time.time() < deadline and not all(
                metric(p, "vllm:num_requests_running") == 1 for p in (base, base + 1)):
            time.sleep(0.05)
        ranks = [int(p) for p in Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()]
        victims = kill_tree(ranks[0])
        for t in openers:
            t.join()
        bodies = [streams[k][1] for k in range(2)]
        c.check(sum('"error"' in b for b in bodies) == 1, "only the killed rank's stream fails")
        c.check(sum('"error"' not in b and b.rstrip().endswith("data: [DONE]") for b in bodies) == 1,
                "the other stream completes")
        after = [post(port, "/v1/completions", {"model": "demo", "prompt": "x", "max_tokens": 2})[0] for _ in range(4)]
        c.check(after == [200] * 4, f"later requests succeed on the surviving rank ({after})")
        survivors = process_tree(launcher.pid)
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
        time.sleep(0.5)
        left = [p for p in survivors + victims if Path(f"/proc/{p}").exists()
                and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]]
        c.check(not left, f"SIGTERM stops the launcher and every rank ({left})")
    finally:
        if launcher.poll() is None:
            launcher.kill()
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=20)
    sys.exit(c.exit_code() if c.passed else 1)


if __name__ == "__main__":
    main()
