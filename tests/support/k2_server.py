"""A `k2serve serve` process for tests that drive it over loopback HTTP (python3 stdlib only).

Starts the server on a free port (--port 0, the port is read from its log line), waits for it,
offers JSON GET/POST helpers and a /metrics reader, and stops it with SIGTERM. One instance
owns one server process; the helpers are safe to call from several threads at once.
"""
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

# The parser flags the README's demo uses: tool calls and reasoning come back parsed.
DEMO_FLAGS = ["--enable-auto-tool-choice", "--tool-call-parser", "kimi_k2", "--reasoning-parser", "kimi_k2"]


class Server:
    """`host`: the address the API server listens on (and the tests reach it at); `prefix`: a
    command the server runs under, such as `ip netns exec NS` (it must exec, so that the server's
    pid is the Popen's); `env`: extra environment variables."""

    def __init__(self, k2serve, model_dir, extra_args=(), kv_cache_memory=256 << 20, start_timeout=120,
                 host="127.0.0.1", prefix=(), env=None):
        self.host = host
        self.log_path = f"/tmp/k2serve-test-{os.getpid()}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w+")
        host_args = [] if host == "127.0.0.1" else ["--host", host]
        self.proc = subprocess.Popen(
            [*prefix, str(k2serve), "serve", str(model_dir), "--port", "0", *host_args,
             "--kv-cache-memory", str(kv_cache_memory), "--shutdown-timeout", "5", *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            self.port = self._wait_for_port(start_timeout)
            self.model = self.get("/v1/models")["data"][0]["id"]
        except BaseException:
            self.stop()
            raise

    def _wait_for_port(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited during start:\n" + self.log_text())
            m = re.search(r"on http://" + re.escape(self.host) + r":(\d+)", self.log_text())
            if m:
                return int(m.group(1))
            time.sleep(0.1)
        raise AssertionError(f"server did not start in {timeout} s:\n" + self.log_text())

    def log_text(self):
        return Path(self.log_path).read_text()

    @property
    def base_url(self):
        """The OpenAI base URL, as clients take it."""
        return f"http://{self.host}:{self.port}/v1"

    def url(self, path):
        return f"http://{self.host}:{self.port}{path}"

    def get(self, path, timeout=30):
        with urllib.request.urlopen(self.url(path), timeout=timeout) as resp:
            return json.loads(resp.read())

    def post(self, path, body, timeout=300):
        req = urllib.request.Request(self.url(path), data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"POST {path}: HTTP {e.code}: {e.read()[:500]!r}") from None

    def metrics(self):
        """Prometheus samples summed over their label sets: {name: value}."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=30) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
        return out

    def health(self):
        """/health's status code, or None when nothing answers."""
        try:
            with urllib.request.urlopen(self.url("/health"), timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def descendants(self):
        """Pids of the server's process tree below it (enginecore, workers)."""
        out, frontier = [], [self.proc.pid]
        while frontier:
            kids = subprocess.run(["pgrep", "-P", str(frontier.pop())], capture_output=True, text=True).stdout.split()
            out += [int(k) for k in kids]
            frontier += [int(k) for k in kids]
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def process_tree(pid):
    """pid and all its descendants (their pids, read from /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            children = []
        todo += [int(c) for c in children]
    return out


def kill9(pids):
    """SIGKILL each of pids (those already gone are skipped)."""
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_tree(pid):
    """SIGKILL pid and all its descendants; returns their pids."""
    victims = process_tree(pid)
    kill9(victims)
    return victims


def load_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class Checks:
    """Collects failed checks so one run reports all of them."""

    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print("FAIL:", what, flush=True)

    def exit_code(self):
        print(f"{self.passed} checks passed, {len(self.failures)} failed", flush=True)
        return 1 if self.failures else 0
