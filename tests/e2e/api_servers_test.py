#!/usr/bin/env python3
"""`k2serve serve --api-server-count 2`: two API server processes share one port (SO_REUSEPORT)
and the enginecores (one, or two with --data-parallel-size 2).

1. The deployment is ready only once both API servers are: the log shows API server 1 attached
   before "serving ... on http://".
2. 16 concurrent requests (8 prompts, each plain and streaming, greedy) all complete with the
   asked number of tokens, the stream and the plain answer of a prompt agree, and a second round
   gives the same texts (whichever API server took it); both API servers handled some (their
   access-log lines, tagged by process).
3. case single: kill -9 of API server 1 takes the deployment down: API server 0 exits non-zero
   within 10 s and no process of the tree is left. case engine_killed: the same for kill -9 of
   the enginecore.
   case dp: SIGTERM on API server 0 with a stream open: the stream completes, API server 0 exits 0
   and no process of the tree is left.

Usage: api_servers_test.py K2SERVE DATA_DIR single|engine_killed|dp
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import Checks, Server, process_tree  # noqa: E402
from proxy_test import post  # noqa: E402

MAX_TOKENS = 12


def completion(port, prompt, stream):
    """(status, text, completion tokens) of one greedy completion."""
    body = {"model": "tiny", "prompt": prompt, "max_tokens": MAX_TOKENS, "ignore_eos": True, "temperature": 0,
            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    status, raw = post(port, "/v1/completions", body, timeout=120)
    if status != 200:
        return status, raw[:300], 0
    if not stream:
        j = json.loads(raw)
        return status, j["choices"][0]["text"], j["usage"]["completion_tokens"]
    text, tokens = "", 0
    for line in raw.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        j = json.loads(line[6:])
        for ch in j.get("choices", []):
            text += ch.get("text", "")
        if j.get("usage"):
            tokens = j["usage"]["completion_tokens"]
    return status, text, tokens


def burst(port):
    """{(prompt, stream): (status, text, tokens)} of 16 concurrent requests."""
    results, lock = {}, threading.Lock()

    def one(prompt, stream):
        r = completion(port, prompt, stream)
        with lock:
            results[(prompt, stream)] = r
    jobs = [(f"Request {i} counts:", s) for i in range(8) for s in (False, True)]
    threads = [threading.Thread(target=one, args=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def alive(pids):
    out = []
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(p)
    return out


def api_server_children(server):
    return [p for p in server.descendants()
            if b"--internal-api-server-index" in Path(f"/proc/{p}/cmdline").read_bytes()]


def main():
    k2serve, data, case = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    c = Checks()
    extra = ["--tokenizer", str(data / "text" / "tok-1024"), "--max-model-len", "512", "--served-model-name", "tiny",
             "--api-server-count", "2"]
    if case == "dp":
        extra += ["--data-parallel-size", "2"]
    server = Server(k2serve, data / "models" / "tiny-bf16", extra, kv_cache_memory=32 << 20)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and server.health() != 200:
            time.sleep(0.05)
        log = server.log_text()
        attached, serving = log.find("API server 1 attached"), log.find("serving tiny on http://")
        c.check(0 <= attached < serving, "API server 0 turns ready only after API server 1 attached")
        c.check(server.health() == 200, "/health is 200 once serving")
        children = api_server_children(server)
        c.check(len(children) == 1, f"one more API server process ({children})")

        first = burst(server.port)
        c.check(all(r[0] == 200 for r in first.values()), f"16 concurrent requests all complete "
                f"({[r[0] for r in first.values()]})")
        c.check(all(r[2] == MAX_TOKENS for r in first.values()),
                f"each produced {MAX_TOKENS} tokens ({[r[2] for r in first.values()]})")
        agree = [p for (p, s) in first if not s and first[(p, False)][1] != first[(p, True)][1]]
        c.check(not agree, f"stream and plain answers agree ({agree})")
        second = burst(server.port)
        same = {k: (first[k][1], second.get(k, (0, "", 0))[1]) for k in first if first[k][1] != second.get(k, (0, ""))[1]}
        c.check(not same, f"a second round gives the same texts ({same})")

        time.sleep(0.3)
        log = server.log_text()
        served = {}
        for m in re.finditer(r"\[(api_server(?:_\d+)?) \d+\] \[[^\]]*\] \S+ \"POST /v1/completions\" 200", log):
            served[m.group(1)] = served.get(m.group(1), 0) + 1
        c.check(set(served) == {"api_server", "api_server_1"} and sum(served.values()) == 32,
                f"both API servers handled some of the 32 requests ({served})")

        everything = process_tree(server.proc.pid)
        if case in ("single", "engine_killed"):
            if case == "single":
                victims = [children[0]]
            else:
                victims = [p for p in everything
                           if Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].endswith(b"k2serve-enginecore")]
                c.check(len(victims) == 1, f"one enginecore ({victims})")
            for v in victims:
                os.kill(v, signal.SIGKILL)
            try:
                code = server.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            c.check(code not in (None, 0), f"kill -9 of the {'API server 1' if case == 'single' else 'enginecore'}: "
                    f"API server 0 exits with an error ({code})")
            time.sleep(0.5)
            left = alive(everything)
            c.check(not left, f"no process of the deployment is left ({left})")
        else:
            stream = {}

            def long_stream():
                stream["r"] = post(server.port, "/v1/completions",
                                   {"model": "tiny", "prompt": "Once", "max_tokens": 60, "ignore_eos": True,
                                    "stream": True}, timeout=60)
            opener = threading.Thread(target=long_stream)
            opener.start()
            time.sleep(0.3)
            server.proc.send_signal(signal.SIGTERM)
            try:
                code = server.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                code = None
            opener.join(timeout=30)
            body = stream.get("r", (0, ""))[1]
            c.check(stream.get("r", (0,))[0] == 200 and "data: [DONE]" in body and '"error"' not in body,
                    f"the open stream completes during the drain ({body[-200:]!r})")
            c.check(code == 0, f"SIGTERM: API server 0 exits 0 ({code})")
            time.sleep(0.5)
            left = alive(everything)
            c.check(not left, f"SIGTERM stops every process of the deployment ({left})")
    finally:
        if c.failures:
            print(server.log_text()[-8000:])
        server.stop()
    sys.exit(c.exit_code() if c.passed else 1)


if __name__ == "__main__":
    main()
