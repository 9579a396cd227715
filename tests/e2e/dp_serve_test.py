#!/usr/bin/env python3
"""Data parallelism inside one deployment: `k2serve serve MODEL --data-parallel-size 2` runs two
enginecores (each with its worker) behind one API server.

1. Concurrent requests all complete, and both ranks did work (per-engine series in /metrics).
2. The model is MoE, so the ranks run request waves: the log names the coordinator, and after a
   burst every rank has run dummy steps only inside a wave (no step once idle: the process is quiet).
3. kill -9 of one rank's enginecore tree while a stream is open: /health answers 503 within 5 s,
   the stream ends with an error instead of hanging, new requests get 503 at once.
4. SIGTERM stops the API server and every process of the tree.

Usage: dp_serve_test.py K2SERVE DATA_DIR [SERVE_FLAGS...]   (e.g. --enable-expert-parallel: the
same with the routed experts spread over both ranks, whose collectives a killed rank must not hang)
"""
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import Checks, Server, kill_tree, process_tree  # noqa: E402
from proxy_test import post  # noqa: E402


def per_engine(server, name):
    """{engine label: value} of one metric family."""
    with __import__("urllib.request").request.urlopen(server.url("/metrics"), timeout=30) as resp:
        text = resp.read().decode()
    out = {}
    for m in re.finditer(name + r'\{[^}]*engine="(\d+)"[^}]*\} (\S+)', text):
        out[m.group(1)] = float(m.group(2))
    return out


def main():
    k2serve, data, extra = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    c = Checks()
    server = Server(k2serve, data / "models" / "tiny-bf16",
                    ["--tokenizer", str(data / "text" / "tok-1024"), "--data-parallel-size", "2", "--max-model-len", "512", "--served-model-name", "tiny", *extra],
                    kv_cache_memory=32 << 20)
    try:
        log = server.log_text()
        c.check("2 data-parallel ranks ready" in log, "the API server reports both ranks ready")
        c.check("request waves" in log and "dp coordinator" in log, "the MoE model runs request waves")

        codes = []
        lock = threading.Lock()

        def one(i):
            status, _ = post(server.port, "/v1/completions",
                             {"model": "tiny", "prompt": f"Count to {i}:", "max_tokens": 16, "ignore_eos": True})
            with lock:
                codes.append(status)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c.check(codes == [200] * 12, f"12 concurrent requests all complete ({codes})")
        finished = per_engine(server, "k2:engine_requests_finished_total")
        c.check(set(finished) == {"0", "1"} and all(v > 0 for v in finished.values()) and sum(finished.values()) == 12,
                f"both ranks did work ({finished})")
        c.check(server.metrics().get("vllm:request_success_total") == 12, "12 successes in vllm:request_success_total")
        alive = per_engine(server, "k2:engine_healthy")
        c.check(alive == {"0": 1.0, "1": 1.0}, f"both ranks healthy in /metrics ({alive})")

        # Requests pinned to one rank still make the other step (dummy steps): both enginecores use CPU.
        # Checked indirectly: a burst completes and afterwards the wave ends (engines go idle).
        time.sleep(1.0)
        engines = [p for p in server.descendants()
                   if Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].endswith(b"k2serve-enginecore")]
        c.check(len(engines) == 2, f"two enginecores ({engines})")

        def cpu_ticks(pid):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        before = [sum(cpu_ticks(p) for p in process_tree(e)) for e in engines]
        time.sleep(1.0)
        after = [sum(cpu_ticks(p) for p in process_tree(e)) for e in engines]
        busy = [a - b for a, b in zip(after, before)]
        c.check(all(b < 30 for b in busy), f"after the wave ends no rank keeps stepping ({busy} ticks in 1 s)")

        stream = {}

        def long_stream():
            stream["r"] = post(server.port, "/v1/completions",
                               {"model": "tiny", "prompt": "Once", "max_tokens": 400, "ignore_eos": True,
                                "stream": True}, timeout=60)
        opener = threading.Thread(target=long_stream)
        opener.start()
        deadline = time.time() + 20
        while time.time() < deadline and sum(per_engine(server, "k2:engine_num_requests_running").values()) < 1:
            time.sleep(0.02)
        victim = engines[1]
        t0 = time.time()
        victims = kill_tree(victim)
        while time.time() - t0 < 10 and server.health() != 503:
            time.sleep(0.05)
        elapsed = time.time() - t0
        c.check(server.health() == 503 and elapsed < 5, f"/health answers 503 within 5 s ({elapsed:.2f} s)")
        opener.join(timeout=30)
        c.check(not opener.is_alive(), "the open stream does not hang")
        body = stream.get("r", (0, ""))[1]
        c.check('"error"' in body or "data: [DONE]" in body, f"the stream ended ({body[-200:]!r})")
        t1 = time.time()
        status, _ = post(server.port, "/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": 2}, timeout=10)
        c.check(status == 503 and time.time() - t1 < 5, f"a new request gets 503 at once ({status})")
        alive = per_engine(server, "k2:engine_healthy")
        c.check(alive.get("1") == 0.0 or alive.get("0") == 0.0, f"/metrics shows the dead rank ({alive})")

        everything = process_tree(server.proc.pid)
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
        time.sleep(0.5)
        left = [p for p in everything if Path(f"/proc/{p}").exists()
                and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]]
        c.check(not left, f"SIGTERM stops every process ({left})")
    finally:
        if server.proc.poll() is not None and c.failures:
            print(server.log_text()[-6000:])
        server.stop()
    sys.exit(c.exit_code() if c.passed else 1)


if __name__ == "__main__":
    main()
