#!/usr/bin/env python3
"""Multi-node data parallelism over TCP, each node a network namespace made by this test.

A bridge in the root namespace with one veth per node (10.x.y.N/24, the test itself at .254)
stands for the cluster network; the master (`serve --data-parallel-size N
--data-parallel-size-local 1 --data-parallel-address 10.x.y.1 ...`) and the headless nodes
(the same + `--headless --data-parallel-start-rank R`) each run in their own namespace, so
everything between them goes over tcp://. Cases (one per run, each its own ctest entry):

  two_nodes     master + one headless node: concurrent chat requests succeed, both ranks did work
  three_nodes   master + two headless nodes: the same with three ranks
  node_killed   kill -9 of a headless node's process tree while requests are in flight: the
                master logs the rank and answers 503 within 5 s, the requests end with an error,
                new requests get 503, and no process is left after teardown
  node_unplugged  the headless node's link goes down (no connection reset, only silence): the
                master reports it within 5 s from the missing heartbeats, and the node, cut off
                from the master, exits by itself
  curve         all nodes with one `k2serve keygen` key file serve over CURVE
  api_only      an API-only head (--data-parallel-size-local 0) and one headless node with both
                ranks (--data-parallel-start-rank 0): requests succeed on both ranks; kill -9 of
                the node is reported within 5 s and the head answers 503
  api_servers   --api-server-count 2 on a master with rank 0, a headless node with rank 1: both
                API servers serve through both ranks; kill -9 of the node: every API server
                answers 503 within 5 s (api_servers_curve: the same with a key file)
  curve_refused headless nodes with another key file, or none, are refused and logged by the
                master, never become ranks, the master names the missing ranks and exits; the
                nodes give up by themselves

Every namespace, veth and bridge is removed afterwards, on failure too (try/finally and
atexit); names carry this run's pid, and leftovers of runs whose pid is gone are removed first.
Needs root and iproute2 (`ip`).

Usage: multinode_test.py K2SERVE DATA_DIR CASE
"""
import atexit
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import Checks, Server, kill9, kill_tree, process_tree  # noqa: E402

RPC_PORT = 29550
PREFIX = "k2mn"  # namespaces, veths and bridges of this test: k2mn<pid>...
COMMON_FLAGS = ["--max-model-len", "512", "--served-model-name", "tiny"]


def run(*cmd, check=True):
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Cluster:
    """`count` network namespaces on one bridge. Node i has address 10.A.B.(i+1)."""

    def __init__(self, count):
        if shutil.which("ip") is None:
            raise SystemExit("multinode_test: the `ip` command is missing: apt-get install iproute2")
        if os.geteuid() != 0:
            raise SystemExit("multinode_test: network namespaces need root")
        self.remove_stale()
        self.tag = f"{PREFIX}{os.getpid()}{random.randrange(16 ** 2):02x}"
        self.bridge = f"{self.tag}b"
        self.subnet = f"10.{random.randrange(100, 250)}.{random.randrange(1, 250)}"
        self.namespaces = []
        self.removed = False
        atexit.register(self.remove)
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for i in range(count):
            ns, host_side, node_side = f"{self.tag}n{i}", f"{self.tag}h{i}", f"{self.tag}v{i}"
            run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            run("ip", "link", "add", host_side, "type", "veth", "peer", "name", node_side)
            run("ip", "link", "set", host_side, "master", self.bridge)
            run("ip", "link", "set", host_side, "up")
            run("ip", "link", "set", node_side, "netns", ns)
            run("ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", node_side)
            run("ip", "-n", ns, "link", "set", node_side, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")

    def address(self, i):
        return f"{self.subnet}.{i + 1}"

    def prefix(self, i):
        return ["ip", "netns", "exec", self.namespaces[i]]

    def pids(self):
        out = []
        for ns in self.namespaces:
            out += [int(p) for p in run("ip", "netns", "pids", ns, check=False).split()]
        return out

    def remove(self):
        if self.removed:
            return
        self.removed = True
        kill9(self.pids())
        for ns in self.namespaces:
            run("ip", "netns", "del", ns, check=False)  # takes its veth (and the peer) along
        run("ip", "link", "del", self.bridge, check=False)

    @staticmethod
    def remove_stale():
        """Leftovers of runs that died before their cleanup (their pid is gone)."""
        names = re.findall(r"^(" + PREFIX + r"(\d+)[0-9a-f]{2}n\d+)", run("ip", "netns", "list", check=False), re.M)
        for ns, pid in names:
            if not Path(f"/proc/{pid}").exists():
                run("ip", "netns", "del", ns, check=False)
        links = re.findall(r"^\d+: (" + PREFIX + r"(\d+)[0-9a-f]{2}[bh]\d*)[@:]", run("ip", "-o", "link", "show", check=False), re.M)
        for link, pid in links:
            if not Path(f"/proc/{pid}").exists():
                run("ip", "link", "del", link, check=False)


class Headless:
    """A `k2serve serve --headless` node in namespace `node` of `cluster`."""

    def __init__(self, k2serve, model, cluster, node, size, start_rank, extra=(), env=None, local=1):
        self.log_path = f"/tmp/k2serve-headless-{os.getpid()}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w+")
        cmd = cluster.prefix(node) + [
            str(k2serve), "serve", str(model), *COMMON_FLAGS, "--data-parallel-size", str(size),
            "--data-parallel-size-local", str(local), "--data-parallel-address", cluster.address(0),
            "--data-parallel-rpc-port", str(RPC_PORT), "--headless", "--data-parallel-start-rank", str(start_rank),
            *extra]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def log_text(self):
        return Path(self.log_path).read_text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def request(server, path, body, timeout=60):
    req = urllib.request.Request(server.url(path), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def chat(i, max_tokens=12, stream=False):
    return {"model": "tiny", "messages": [{"role": "user", "content": f"Say something about {i}."}],
            "max_tokens": max_tokens, "ignore_eos": True, "stream": stream}


def per_engine(server, name):
    with urllib.request.urlopen(server.url("/metrics"), timeout=30) as resp:
        text = resp.read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(name + r'\{[^}]*engine="(\d+)"[^}]*\} (\S+)', text)}


def concurrent(server, bodies, path="/v1/chat/completions", timeout=120):
    results = [None] * len(bodies)

    def one(i):
        results[i] = request(server, path, bodies[i], timeout=timeout)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


class Deployment:
    """A master in node 0 with rank 0 and headless nodes 1..n-1 (one rank each); or, with
    `master_local` 0, an API-only head and one headless node with every rank (start rank 0)."""

    def __init__(self, k2serve, data, cluster, size, extra=(), master_env=None, master_local=1, master_extra=()):
        self.model = data / "models" / "tiny-bf16"
        self.headless = []
        self.server = None
        self.master_local = master_local
        dp = ["--data-parallel-size", str(size), "--data-parallel-size-local", str(master_local),
              "--data-parallel-address", cluster.address(0), "--data-parallel-rpc-port", str(RPC_PORT)]
        node_args = ["--tokenizer", str(data / "text" / "tok-1024"), *extra]
        try:
            if master_local == 0:
                self.headless.append(Headless(k2serve, self.model, cluster, 1, size, 0, node_args, local=size))
            for node in range(1, size if master_local else 1):
                self.headless.append(Headless(k2serve, self.model, cluster, node, size, node, node_args))
            self.server = Server(k2serve, self.model,
                                 ["--tokenizer", str(data / "text" / "tok-1024"), *COMMON_FLAGS, *dp, *extra,
                                  *master_extra],
                                 kv_cache_memory=32 << 20, host=cluster.address(0), prefix=cluster.prefix(0),
                                 env=master_env)
        except BaseException:
            self.dump_logs()
            self.stop()
            raise

    def dump_logs(self):
        for h in self.headless:
            print(f"--- headless rank log {h.log_path}:\n" + h.log_text()[-3000:])
        if self.server:
            print(f"--- master log {self.server.log_path}:\n" + self.server.log_text()[-5000:])

    def all_pids(self):
        out = process_tree(self.server.proc.pid) if self.server else []
        for h in self.headless:
            out += process_tree(h.proc.pid)
        return out

    def stop(self):
        if self.server:
            self.server.stop()
        for h in self.headless:
            h.stop()

    def finish(self, c):
        """Teardown at the end of a case, with the logs when something failed."""
        if c.failures:
            self.dump_logs()
        self.stop()


def serves_with_all_ranks(c, dep, size, n_requests):
    log = dep.server.log_text()
    c.check(f"{size} data-parallel ranks ready ({dep.master_local} on this node" in log,
            f"the master reports {size} ranks ready")
    c.check("request waves" in log, "the MoE model runs request waves across the nodes")
    results = concurrent(dep.server, [chat(i) for i in range(n_requests)])
    codes = [r[0] for r in results]
    c.check(codes == [200] * n_requests, f"{n_requests} concurrent chat requests all succeed ({codes})")
    ok = all(r[0] == 200 and json.loads(r[1])["choices"][0]["message"]["content"] is not None for r in results)
    c.check(ok, "every answer has a message")
    finished = per_engine(dep.server, "k2:engine_requests_finished_total")
    want = {str(r) for r in range(size)}
    c.check(set(finished) == want and all(v > 0 for v in finished.values()) and sum(finished.values()) == n_requests,
            f"every rank did work ({finished})")
    healthy = per_engine(dep.server, "k2:engine_healthy")
    c.check(healthy == {r: 1.0 for r in want}, f"every rank healthy in /metrics ({healthy})")


def case_nodes(c, k2serve, data, size):
    cluster = Cluster(size)
    dep = None
    try:
        dep = Deployment(k2serve, data, cluster, size)
        serves_with_all_ranks(c, dep, size, 4 * size)
        everything = dep.all_pids()
        dep.stop()
        time.sleep(0.5)
        left = [p for p in everything if alive(p)]
        c.check(not left, f"SIGTERM to every node stops every process ({left})")
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()


def teardown_after_kill(c, dep, everything, victims):
    """Stops `dep` and checks that none of `everything` (pids) is left, and that only the
    killed `victims` left shm segments: kill -9 leaves them to the node's next start (which
    removes those of dead processes); everyone else removed theirs."""
    dep.stop()
    time.sleep(0.5)
    left = [p for p in everything if alive(p)]
    c.check(not left, f"no process is left after teardown ({left})")
    segments = [f for p in everything for f in Path("/dev/shm").glob(f"k2serve-{p}-*")]
    c.check(all(int(f.name.split("-")[1]) in victims for f in segments),
            f"only the killed node left shm segments ({[f.name for f in segments]})")
    for f in segments:
        f.unlink(missing_ok=True)


def answers_503(server, tries=8):
    """/health is 503 over `tries` new connections: with --api-server-count each may reach
    another API server (SO_REUSEPORT), and every one must have seen the loss."""
    return all(server.health() == 503 for _ in range(tries))


def kill_node_mid_flight(c, dep, victim, send, send_new):
    """Runs send(i) for 4 requests, kill -9s `victim`'s process tree (the node of rank 1) once two
    run, and checks the master's side: rank 1 logged gone and /health 503 within 5 s, every
    in-flight request ends with an error, send_new() gets 503. Returns the killed pids."""
    outcomes = {}

    def one(i):
        outcomes[i] = send(i)
    openers = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in openers:
        t.start()
    deadline = time.time() + 20
    while time.time() < deadline and sum(per_engine(dep.server, "k2:engine_num_requests_running").values()) < 2:
        time.sleep(0.02)
    t0 = time.time()
    victims = kill_tree(victim.proc.pid)
    victim.proc.wait()
    reported = None
    while time.time() - t0 < 10:
        if reported is None and re.search(r"dp client: .*rank 1\b.*/health now answers 503", dep.server.log_text()):
            reported = time.time() - t0
        if reported is not None and answers_503(dep.server):
            break
        time.sleep(0.05)
    elapsed = time.time() - t0
    c.check(reported is not None and reported < 5, f"the master logs rank 1 as gone within 5 s ({reported})")
    c.check(answers_503(dep.server) and elapsed < 5, f"/health answers 503 within 5 s ({elapsed:.2f} s)")
    for t in openers:
        t.join(timeout=30)
    c.check(not any(t.is_alive() for t in openers), "no in-flight request hangs")
    ended = list(outcomes.values())
    c.check(len(ended) == 4 and all(o[0] not in (200, None) or '"error"' in o[1] for o in ended),
            f"every in-flight request ends with an error ({[(o[0], o[1][-200:]) for o in ended]})")
    status, _ = send_new()
    c.check(status == 503, f"a new request gets 503 ({status})")
    return victims


def case_node_killed(c, k2serve, data):
    cluster = Cluster(2)
    dep = None
    try:
        dep = Deployment(k2serve, data, cluster, 2)
        serves_with_all_ranks(c, dep, 2, 6)
        victim = dep.headless[0]
        everything = dep.all_pids()
        victims = kill_node_mid_flight(
            c, dep, victim, lambda i: request(dep.server, "/v1/chat/completions", chat(i, 400, stream=i % 2 == 0),
                                              timeout=60),
            lambda: request(dep.server, "/v1/chat/completions", chat(99), timeout=10))
        c.check(per_engine(dep.server, "k2:engine_healthy").get("1") == 0.0, "/metrics shows rank 1 dead")
        teardown_after_kill(c, dep, everything, victims)
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()


def case_api_only(c, k2serve, data):
    """An API-only head (--data-parallel-size-local 0; it runs the wave coordinator) and one
    headless node with both ranks (--data-parallel-start-rank 0): requests through the head
    reach both ranks; kill -9 of the node is reported within 5 s and the head answers 503."""
    cluster = Cluster(2)
    dep = None
    try:
        dep = Deployment(k2serve, data, cluster, 2, master_local=0)
        serves_with_all_ranks(c, dep, 2, 8)
        log = dep.server.log_text()
        c.check("dp coordinator" in log, "the head runs the wave coordinator")
        c.check(not dep.server.descendants(), f"the head runs no process of its own ({dep.server.descendants()})")
        victim = dep.headless[0]
        everything = dep.all_pids()
        victims = kill_node_mid_flight(
            c, dep, victim, lambda i: request(dep.server, "/v1/chat/completions", chat(i, 400), timeout=60),
            lambda: request(dep.server, "/v1/chat/completions", chat(99), timeout=10))
        teardown_after_kill(c, dep, everything, victims)
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()


def case_api_servers(c, k2serve, data, curve=False):
    """--api-server-count 2 on a master with rank 0 and one headless node with rank 1 (`curve`:
    with a key file): both API servers serve, through both ranks; kill -9 of the node turns
    every API server to 503."""
    keys = Path(tempfile.mkdtemp(prefix="k2mn-keys-"))
    cluster = Cluster(2)
    dep = None
    try:
        extra = []
        if curve:
            keygen(k2serve, keys / "deployment.key")
            extra = ["--control-plane-key-file", str(keys / "deployment.key")]
        dep = Deployment(k2serve, data, cluster, 2, extra, master_extra=["--api-server-count", "2"])
        deadline = time.time() + 60  # API server 0 listens before API server 1 attached
        while time.time() < deadline and "API server 1 ready" not in dep.server.log_text():
            time.sleep(0.05)
        log = dep.server.log_text()
        c.check("API server 1 attached" in log and "with 2 API servers" in log, "the master runs 2 API servers")
        n = 24
        results = concurrent(dep.server, [chat(i) for i in range(n)])
        codes = [r[0] for r in results]
        c.check(codes == [200] * n, f"{n} concurrent chat requests over separate connections all succeed ({codes})")
        time.sleep(0.3)
        served = {}
        for m in re.finditer(r"\[(api_server(?:_\d+)?) \d+\] \[[^\]]*\] \S+ \"POST /v1/chat/completions\" 200",
                             dep.server.log_text()):
            served[m.group(1)] = served.get(m.group(1), 0) + 1
        c.check(set(served) == {"api_server", "api_server_1"} and sum(served.values()) == n,
                f"both API servers handled some of the {n} requests ({served})")
        # Each API server counts what it routed; new connections reach either of them.
        ranks = set()
        for _ in range(12):
            ranks |= {r for r, v in per_engine(dep.server, "k2:engine_requests_finished_total").items() if v > 0}
        c.check(ranks == {"0", "1"}, f"requests reached both ranks ({sorted(ranks)})")
        victim = dep.headless[0]
        everything = dep.all_pids()
        victims = kill_node_mid_flight(
            c, dep, victim, lambda i: request(dep.server, "/v1/chat/completions", chat(i, 400), timeout=60),
            lambda: request(dep.server, "/v1/chat/completions", chat(99), timeout=10))
        c.check(re.search(r"attached client: .*rank 1\b.*/health now answers 503", dep.server.log_text()) is not None,
                "API server 1 saw rank 1 go itself")
        c.check("refused peer" not in dep.server.log_text(), "nobody was refused")
        teardown_after_kill(c, dep, everything, victims)
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()
        shutil.rmtree(keys, ignore_errors=True)


def case_node_unplugged(c, k2serve, data):
    """The headless node's cable is pulled (its veth goes down): no connection reset tells the
    master anything, only the missing heartbeats do; the node, hearing nothing from the master,
    gives up by itself."""
    cluster = Cluster(2)
    dep = None
    try:
        dep = Deployment(k2serve, data, cluster, 2)
        serves_with_all_ranks(c, dep, 2, 4)
        node = dep.headless[0]
        t0 = time.time()
        run("ip", "link", "set", f"{cluster.tag}h1", "down")
        reported = None
        while time.time() - t0 < 10 and reported is None:
            if re.search(r"dp client: remote rank 1 is silent.*/health now answers 503", dep.server.log_text()):
                reported = time.time() - t0
            time.sleep(0.05)
        c.check(reported is not None and reported < 5, f"the master reports the silent rank 1 within 5 s ({reported})")
        c.check(dep.server.health() == 503, "/health answers 503")
        try:
            code = node.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            code = None
        took = time.time() - t0
        c.check(code not in (None, 0) and took < 35, f"the cut-off node exits non-zero on its own ({code}, {took:.1f} s)")
        c.check("no word from the API server" in node.log_text(), "the node says it lost the master")
        everything = dep.all_pids()
        dep.stop()
        time.sleep(0.5)
        left = [p for p in everything if alive(p)]
        c.check(not left, f"no process is left after teardown ({left})")
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()


def keygen(k2serve, path):
    r = subprocess.run([str(k2serve), "keygen", "--output", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"k2serve keygen {path}: {r.stdout}{r.stderr}")


def case_curve(c, k2serve, data):
    keys = Path(tempfile.mkdtemp(prefix="k2mn-keys-"))
    cluster = Cluster(2)
    dep = None
    try:
        keygen(k2serve, keys / "deployment.key")
        dep = Deployment(k2serve, data, cluster, 2, ["--control-plane-key-file", str(keys / "deployment.key")])
        c.check("CURVE" in dep.server.log_text() and "CURVE" in dep.headless[0].log_text(),
                "master and node say they run a CURVE control plane")
        serves_with_all_ranks(c, dep, 2, 6)
        c.check("refused peer" not in dep.server.log_text(), "nobody was refused")
        everything = dep.all_pids()
        dep.stop()
        time.sleep(0.5)
        c.check(not [p for p in everything if alive(p)], "every process stops")
    finally:
        if dep:
            dep.finish(c)
        cluster.remove()
        shutil.rmtree(keys, ignore_errors=True)


def case_curve_refused(c, k2serve, data):
    """Rank 1 comes with another deployment's key file, rank 2 with none: both are refused."""
    keys = Path(tempfile.mkdtemp(prefix="k2mn-keys-"))
    cluster = Cluster(3)
    nodes = []
    master_log = open(keys / "master.log", "w+")
    master = None
    try:
        keygen(k2serve, keys / "deployment.key")
        keygen(k2serve, keys / "intruder.key")
        model = data / "models" / "tiny-bf16"
        dp = ["--data-parallel-size", "3", "--data-parallel-size-local", "1",
              "--data-parallel-address", cluster.address(0), "--data-parallel-rpc-port", str(RPC_PORT)]
        t0 = time.time()
        master = subprocess.Popen(
            cluster.prefix(0) + [str(k2serve), "serve", str(model), "--port", "0", "--host", cluster.address(0),
                                 "--tokenizer", str(data / "text" / "tok-1024"), "--kv-cache-memory", str(32 << 20),
                                 *COMMON_FLAGS, *dp, "--control-plane-key-file", str(keys / "deployment.key")],
            stdout=master_log, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_ENGINE_READY_TIMEOUT_S": "12"})
        nodes.append(Headless(k2serve, model, cluster, 1, 3, 1, ["--control-plane-key-file", str(keys / "intruder.key")]))
        nodes.append(Headless(k2serve, model, cluster, 2, 3, 2))
        for rank, node in enumerate(nodes, start=1):
            try:
                code = node.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                code = None
            took = time.time() - t0
            c.check(code not in (None, 0) and took < 20,
                    f"refused rank {rank} gives up on its own ({code} after {took:.1f} s)")
            c.check("--control-plane-key-file" in node.log_text() and "refused" in node.log_text(),
                    f"rank {rank} says why ({node.log_text()[-400:]!r})")
        try:
            master_code = master.wait(timeout=40)
        except subprocess.TimeoutExpired:
            master_code = None
        took = time.time() - t0
        text = Path(master_log.name).read_text()
        c.check(master_code not in (None, 0), f"the master does not hang: it exits non-zero ({master_code}, {took:.1f} s)")
        refusals = re.findall(r"control plane: refused peer .*", text)
        c.check("cryptographic failure" in text, "the master logs the refusal of the other key")
        # The keyless node sees the mismatch first and hangs up, so the master may only see that.
        c.check(len(refusals) >= 2, f"the master logs the refusal of the node without keys too ({refusals})")
        c.check(len(refusals) <= 8, "the refusals are rate-limited")
        c.check(re.search(r"rank [12] said hello", text) is None, "the refused nodes never become ranks")
        c.check(re.search(r"ranks \[1, 2\] never joined", text) is not None, "the master names the missing ranks")
        c.check("serving tiny on" not in text, "the master never serves without all ranks")
        print("master:", "\n".join(l for l in text.splitlines() if re.search(r"refused|never joined|waiting", l)))
        for node in nodes:
            print("node:", node.log_text()[-500:])
    finally:
        for p in [master] + [n.proc for n in nodes]:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        master_log.close()
        cluster.remove()
        shutil.rmtree(keys, ignore_errors=True)


def run_case(cases, case, c):
    """Runs the named case of a test script's `cases` (name -> no-argument callable) and exits
    with the checks' verdict."""
    if case not in cases:
        raise SystemExit(f"unknown case {case}; one of {sorted(cases)}")
    t0 = time.time()
    cases[case]()
    print(f"case {case}: {time.time() - t0:.1f} s", flush=True)
    sys.exit(c.exit_code())


def main():
    k2serve, data, case = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    c = Checks()
    run_case({
        "two_nodes": lambda: case_nodes(c, k2serve, data, 2),
        "three_nodes": lambda: case_nodes(c, k2serve, data, 3),
        "node_killed": lambda: case_node_killed(c, k2serve, data),
        "node_unplugged": lambda: case_node_unplugged(c, k2serve, data),
        "curve": lambda: case_curve(c, k2serve, data),
        "curve_refused": lambda: case_curve_refused(c, k2serve, data),
        "api_only": lambda: case_api_only(c, k2serve, data),
        "api_servers": lambda: case_api_servers(c, k2serve, data),
        "api_servers_curve": lambda: case_api_servers(c, k2serve, data, curve=True),
    }, case, c)


if __name__ == "__main__":
    main()
