#!/usr/bin/env python3
"""`k2serve proxy` in front of two OpenAI-compatible backends (k2_openai_test_server: the real
HTTP/OpenAI layer over a fake engine that emits one token per --step-us):

1. Requests through the proxy (completions and streamed chat) all succeed and both backends
   serve some of them.
2. Two long streams land on different backends (fewest in flight); kill -9 one backend: only
   its stream fails (an error event, then [DONE]), the other completes; the proxy marks the
   backend down and later requests all succeed on the survivor; /health stays 200.
3. With every backend dead, /health is 503 and a request gets 503; SIGTERM exits 0.

Usage: proxy_test.py K2SERVE TEST_SERVER DATA_DIR
"""
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import Checks  # noqa: E402


def start(cmd, pattern, log):
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        m = re.search(pattern, Path(log.name).read_text())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{cmd[0]} did not start:\n" + Path(log.name).read_text())


def post(port, path, body, timeout=60):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def completions_served(port):
    _, text = get_status(port, "/metrics")
    return sum(float(v) for v in re.findall(r'http_requests_total\{handler="/v1/(?:chat/)?completions"[^}]*\} (\S+)', text))


def main():
    k2serve, test_server, data = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    c = Checks()
    logs = [open(f"/tmp/k2-proxy-test-{i}-{time.monotonic_ns()}.log", "w+") for i in range(3)]
    backends = []
    for i in range(2):
        backends.append(start([test_server, "--model", str(data / "models" / "demo-trained"), "--port", "0",
                               "--step-us", "20000", "--served-model-name", "demo"], r"LISTENING (\d+)", logs[i]))
    proxy, port = start([k2serve, "proxy", "--port", "0", "--health-interval", "0.2",
                         "--backends", ",".join(f"127.0.0.1:{p}" for _, p in backends)],
                        r"proxy on http://127\.0\.0\.1:(\d+)", logs[2])
    try:
        # 1. Balanced traffic.
        results = []

        def one(i):
            if i % 2:
                results.append(post(port, "/v1/completions", {"model": "demo", "prompt": "hi", "max_tokens": 3}))
            else:
                results.append(post(port, "/v1/chat/completions", {"model": "demo", "stream": True, "max_tokens": 3,
                                                                   "messages": [{"role": "user", "content": "hi"}]}))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c.check(len(results) == 12 and all(s == 200 for s, _ in results), "12 requests through the proxy succeed")
        c.check(all(b.rstrip().endswith("data: [DONE]") for s, b in results if "data:" in b),
                "streams pass through to [DONE]")
        served = [completions_served(p) for _, p in backends]
        c.check(all(n > 0 for n in served) and sum(served) == 12, f"both backends served ({served})")
        status, models = get_status(port, "/v1/models")
        c.check(status == 200 and '"demo"' in models, "GET /v1/models is relayed")

        # 2. A backend dies with a stream open on each.
        streams = {}

        def long_stream(key):
            streams[key] = post(port, "/v1/chat/completions", {"model": "demo", "stream": True, "max_tokens": 150,
                                                               "messages": [{"role": "user", "content": "hi"}]})
        openers = [threading.Thread(target=long_stream, args=(k,)) for k in range(2)]
        for t in openers:
            t.start()
            time.sleep(0.2)
        time.sleep(0.5)
        backends[0][0].kill()
        backends[0][0].wait()
        for t in openers:
            t.join()
        bodies = [streams[k][1] for k in range(2)]
        failed = [b for b in bodies if '"error"' in b]
        c.check(len(failed) == 1 and failed[0].rstrip().endswith("data: [DONE]"),
                "only the dead backend's stream fails, with an error event and [DONE]")
        c.check(sum(1 for b in bodies if '"error"' not in b and "finish_reason" in b) == 1,
                "the other stream completes")
        after = [post(port, "/v1/completions", {"model": "demo", "prompt": "x", "max_tokens": 2})[0] for _ in range(6)]
        c.check(after == [200] * 6, f"later requests all succeed on the survivor ({after})")
        time.sleep(0.6)
        c.check("is down" in Path(logs[2].name).read_text(), "the proxy logs the backend down")
        c.check(get_status(port, "/health")[0] == 200, "/health stays 200 with one backend up")

        # 3. No backend left.
        backends[1][0].kill()
        backends[1][0].wait()
        time.sleep(0.6)
        c.check(get_status(port, "/health")[0] == 503, "/health is 503 with no backend up")
        c.check(post(port, "/v1/completions", {"model": "demo", "prompt": "x", "max_tokens": 2})[0] == 503,
                "a request gets 503 with no backend up")
    finally:
        for proc, _ in backends:
            if proc.poll() is None:
                proc.kill()
        proxy.send_signal(signal.SIGTERM)
        try:
            code = proxy.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proxy.kill()
            code = None
    c.check(code == 0, f"the proxy exits 0 on SIGTERM (got {code})")
    sys.exit(c.exit_code() if c.passed else 1)


if __name__ == "__main__":
    main()
