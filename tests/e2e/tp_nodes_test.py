#!/usr/bin/env python3
"""Tensor parallelism across nodes (vLLM's --nnodes / --node-rank / --master-addr /
--master-port, issue 7 §1 and §3), each node a network namespace (multinode_test.py's Cluster).

Node 0 runs `serve --tensor-parallel-size 2 --nnodes 2 --node-rank 0 --master-addr A0
--master-port P` (API server, engine, TP rank 0); node 1 runs the same with --node-rank 1
--headless (TP rank 1 only). Plans reach rank 1 over the engine's TCP fan-out, the two ranks
all-reduce over Gloo. Cases (one per run, each its own ctest entry):

  tp2           float32 greedy completions through the master give exactly the tokens of a
                TP=1 server on the same prompts (tiny-bf16); SIGTERM stops every process
  tp2_killed    kill -9 of the headless node's process tree during requests: the master reports
                it within 5 s, /health answers 503, in-flight requests end, nothing is left
  tp2_killed_idle  the same while idle: only the missing heartbeats tell, still within 5 s
  master_killed kill -9 of node 0: the headless node's worker and the node exit on their own
  tp2_unplugged node 1's link goes down: reported within 5 s from the missing heartbeats; the
                cut-off node exits by itself
  tp2_curve_refused  node 1 with another key file: refused and logged, it gives up
  tp2_never     node 1 never starts: the master logs every 10 s that it waits for node 1 (worker
                rank 1), never answers /health 200, and after VLLM_ENGINE_READY_TIMEOUT_S fails
                naming node 1 and exits non-zero, leaving no process or shm segment behind
  tp2_curve     the same deployment with a `k2serve keygen` key file (CURVE on the control
                sockets; the log says Gloo's TCP is not authenticated): tokens as TP=1
  tp4           --tensor-parallel-size 4, two ranks a node (ring and fan-out readers together)
  ep2           --enable-expert-parallel over the two nodes: tokens as TP=1
  sglang        SGLang's flags (--tp 2 --nnodes 2 --node-rank R --dist-init-addr A0:P) map onto
                the same deployment: tokens as TP=1
  tp2_media     tiny-k25-vision: image and video chats through the master (the pixels travel with
                the plans to node 1, whose worker reads them nowhere else) give the greedy tokens of
                a TP=1 server; the same chats again under another cache_salt are encoder-cache hits
                and give them too

Usage: tp_nodes_test.py K2SERVE DATA_DIR CASE
"""
import base64
import contextlib
import json
import os
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import Checks, Server, kill9, process_tree  # noqa: E402
from mm_serve_test import VIDEO_PROMPT, chat, data_url, messages_for, video_messages  # noqa: E402
from multinode_test import Cluster, alive, keygen, request, run, run_case, teardown_after_kill  # noqa: E402

MASTER_PORT = 29601
COMMON = ["--max-model-len", "256", "--served-model-name", "tiny", "--dtype", "float32"]
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,", "def fibonacci(n):"]


def completion(prompt, max_tokens=16):
    return {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            "logprobs": 1, "return_tokens_as_token_ids": True}


def tokens_of(server):
    """The generated token ids of every prompt (greedy)."""
    out = []
    for p in PROMPTS:
        status, body = request(server, "/v1/completions", completion(p), timeout=120)
        if status != 200:
            out.append((status, body[-300:]))
            continue
        choice = json.loads(body)["choices"][0]
        out.append(((choice.get("logprobs") or {}).get("tokens"), choice["text"]))
    return out


def text_model(data):
    """The model directory and its flags of the text-only cases."""
    return data / "models" / "tiny-bf16", ["--tokenizer", str(data / "text" / "tok-1024")]


def vision_model(data):
    """mm_serve_test.py's tiny vision model, with its test chat template."""
    template = Path(__file__).resolve().parent / "k25_vision_test.jinja"
    return data / "models" / "tiny-k25-vision", ["--chat-template", str(template)]


def reference_tokens(k2serve, data, cluster, model=None, tokens=tokens_of):
    """`tokens` (the prompts' tokens) on a TP=1 server (in node 0, before the deployment starts)."""
    model_dir, args = model or text_model(data)
    server = Server(k2serve, model_dir, [*args, *COMMON], kv_cache_memory=32 << 20,
                    host=cluster.address(0), prefix=cluster.prefix(0))
    try:
        return tokens(server)
    finally:
        server.stop()


class TpDeployment:
    """Node 0: API server + engine + TP rank 0; node 1: --headless, TP rank 1."""

    def __init__(self, k2serve, data, cluster, flags0, flags1, extra=(), model=None):
        self.cluster = cluster
        model, tok = model or text_model(data)
        self.log_path = f"/tmp/k2serve-tpnode1-{os.getpid()}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w+")
        self.server = None
        self.node = subprocess.Popen(cluster.prefix(1) + [str(k2serve), "serve", str(model), *tok, *COMMON, *flags1,
                                                          *extra], stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.server = Server(k2serve, model, [*tok, *COMMON, *flags0, *extra], kv_cache_memory=32 << 20,
                                 host=cluster.address(0), prefix=cluster.prefix(0))
        except BaseException:
            self.dump_logs()
            self.stop()
            raise

    def node_log(self):
        return Path(self.log_path).read_text()

    def dump_logs(self):
        print(f"--- headless node log {self.log_path}:\n" + self.node_log()[-4000:])
        if self.server:
            print(f"--- master log {self.server.log_path}:\n" + self.server.log_text()[-6000:])

    def all_pids(self):
        return (process_tree(self.server.proc.pid) if self.server else []) + process_tree(self.node.pid)

    def stop(self):
        if self.server:
            self.server.stop()
        if self.node.poll() is None:
            self.node.send_signal(signal.SIGTERM)
            try:
                self.node.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.node.kill()
                self.node.wait()
        self.log.close()


def vllm_flags(cluster, rank, tp=2):
    flags = ["--tensor-parallel-size", str(tp), "--nnodes", "2", "--node-rank", str(rank), "--master-addr",
             cluster.address(0), "--master-port", str(MASTER_PORT)]
    return flags + (["--headless"] if rank > 0 else [])


def vllm_flags_tp4(cluster, rank):
    """Two ranks a node: node 0's second worker reads the shm ring, node 1's two the fan-out."""
    return vllm_flags(cluster, rank, 4)


def vllm_flags_ep2(cluster, rank):
    """Routed experts split over the two nodes' ranks (EP = TP x DP = 2)."""
    return vllm_flags(cluster, rank) + ["--enable-expert-parallel"]


def sglang_flags(cluster, rank):
    return ["--tp", "2", "--nnodes", "2", "--node-rank", str(rank), "--dist-init-addr",
            f"{cluster.address(0)}:{MASTER_PORT}"]


def same_tokens_as_tp1(c, dep, expected):
    got = tokens_of(dep.server)
    print("TP=1 tokens:", [e[0] for e in expected], "\nTP=2 tokens:", [g[0] for g in got], flush=True)
    c.check(all(isinstance(e[0], list) and e[0] for e in expected), f"the TP=1 reference has token ids ({expected})")
    c.check(got == expected, f"TP=2 across nodes gives exactly the TP=1 tokens\n  got      {got}\n  expected {expected}")


def stops_cleanly(c, dep):
    everything = dep.all_pids()
    dep.stop()
    time.sleep(0.5)
    left = [p for p in everything if alive(p)]
    c.check(not left, f"SIGTERM stops every process on both nodes ({left})")


def exit_code(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


@contextlib.contextmanager
def deployment(c, k2serve, data, flags_of=vllm_flags, extra=(), reference=False, model=None, tokens=tokens_of):
    """Yields (the deployment, `tokens` of a TP=1 server when `reference`); tears everything
    down after, with the logs when a check failed."""
    cluster = Cluster(2)
    dep = None
    try:
        expected = reference_tokens(k2serve, data, cluster, model, tokens) if reference else None
        dep = TpDeployment(k2serve, data, cluster, flags_of(cluster, 0), flags_of(cluster, 1), extra, model)
        status, _ = request(dep.server, "/v1/completions", completion(PROMPTS[0]), timeout=60)
        c.check(status == 200, f"the deployment serves a request ({status})")
        yield dep, expected
    finally:
        if dep:
            if c.failures:
                dep.dump_logs()
            dep.stop()
        cluster.remove()


def case_tp2(c, k2serve, data, flags_of, extra=()):
    with deployment(c, k2serve, data, flags_of, extra, reference=True) as (dep, expected):
        log = dep.server.log_text()
        c.check("tensor parallelism over 2 nodes" in log, "the engine runs a tensor-parallel group over 2 nodes")
        layout = re.search(r"tensor parallelism over 2 nodes: ranks 0\.\.(\d+) here, (\d+) on other nodes", log)
        size = int(layout.group(1)) + 1 + int(layout.group(2)) if layout else 0
        c.check(re.search(rf"worker {size - 1}: tensor-parallel group of {size} over Gloo", dep.node_log()) is not None,
                f"rank {size - 1} runs on the headless node, over Gloo")
        same_tokens_as_tp1(c, dep, expected)
        if extra:
            c.check("not authenticated" in log, "the master says Gloo's connections are not authenticated")
            c.check("refused peer" not in log, "nobody was refused")
        stops_cleanly(c, dep)


def media_chats(data):
    """(label, messages) of mm_serve_test.py's golden image prompts and its video prompt."""
    model = data / "models" / "tiny-k25-vision"
    golden = json.loads((model / "golden.json").read_text())
    files = {m["name"]: m["files"][0] for m in golden["media"]}
    prompts = {p["name"]: p for p in golden["prompts"]}
    chats = [(name, messages_for(prompts[name], [data_url(model / files[m]) for m in prompts[name]["media"]]))
             for name in ("image_a", "two_images")]
    video = "data:video/x-matroska;base64," + base64.b64encode((data / "video" / "k25_frames.mkv").read_bytes()).decode()
    return chats + [("video", video_messages(prompts[VIDEO_PROMPT], video))]


def media_tokens(data, salt=None):
    """The greedy tokens of media_chats() on a server (an error text for a failed chat)."""
    def tokens(server):
        out = []
        for label, messages in media_chats(data):
            ids, _, err = chat(server, messages, salt)
            out.append((label, ids if ids is not None else err))
        return out
    return tokens


def case_media(c, k2serve, data):
    """Media through a TP group over two nodes: node 0's frontend holds the pixels in its shm
    arena; node 1's worker gets them with the plans (and reads them nowhere else), then the
    second round, under another cache_salt (the prefix cache cannot serve it), hits every
    rank's encoder cache."""
    model = vision_model(data)
    with deployment(c, k2serve, data, model=model, reference=True, tokens=media_tokens(data)) as (dep, expected):
        print("TP=1 media tokens:", expected, flush=True)
        c.check(all(isinstance(e[1], list) and len(e[1]) == 8 for e in expected), f"the TP=1 reference chats ({expected})")
        got = media_tokens(data)(dep.server)
        c.check(got == expected, f"TP=2 over two nodes gives the TP=1 media tokens\n  got      {got}\n  expected {expected}")
        before = dep.server.metrics()
        again = media_tokens(data, salt="again")(dep.server)
        after = dep.server.metrics()
        c.check(again == expected, f"the encoder-cache round gives them too\n  got      {again}\n  expected {expected}")
        hits = after.get("vllm:mm_cache_hits_total", 0) - before.get("vllm:mm_cache_hits_total", 0)
        items = after.get("vllm:mm_cache_queries_total", 0) - before.get("vllm:mm_cache_queries_total", 0)
        c.check(items > 0 and hits == items, f"the second round is all encoder-cache hits ({hits} of {items})")
        c.check("not shipped" not in dep.server.log_text(), "the engine shipped every item's pixels")
        c.check("did not come with the plan" not in dep.node_log(), "node 1's worker found every item's pixels")
        stops_cleanly(c, dep)


def case_killed(c, k2serve, data, in_flight):
    """kill -9 of node 1: with requests in flight rank 0's Gloo all-reduce fails at once;
    idle, only the missing heartbeats tell (kDpPeerTimeout, 3 s)."""
    with deployment(c, k2serve, data) as (dep, _):
        everything = dep.all_pids()
        outcomes = {}

        def one(i):
            outcomes[i] = request(dep.server, "/v1/completions", completion(PROMPTS[i % 4], 200), timeout=60)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(3 if in_flight else 0)]
        for t in threads:
            t.start()
        time.sleep(0.3 if in_flight else 2)
        victims = process_tree(dep.node.pid)
        t0 = time.time()
        kill9(victims)
        dep.node.wait()
        while time.time() - t0 < 10 and dep.server.health() != 503:
            time.sleep(0.05)
        elapsed = time.time() - t0
        c.check(dep.server.health() == 503 and elapsed < 5, f"/health answers 503 within 5 s ({elapsed:.2f} s)")
        log = dep.server.log_text()
        print("master:", "\n".join(l for l in log.splitlines() if re.search(r"error|dead|503|silent", l))[-1500:])
        lost = r"worker 1 on node 1 has been silent" if not in_flight else r"worker 1 on node 1 has been silent|gloo"
        c.check(re.search(lost, log) is not None, "the master's log names the lost worker")
        for t in threads:
            t.join(timeout=30)
        c.check(not any(t.is_alive() for t in threads), "no in-flight request hangs")
        c.check(all(o[0] != 200 or '"error"' in o[1] or "length" in o[1] for o in outcomes.values()),
                f"in-flight requests end ({[(o[0], o[1][-120:]) for o in outcomes.values()]})")
        status, _ = request(dep.server, "/v1/completions", completion(PROMPTS[1]), timeout=10)
        c.check(status == 503, f"a new request gets 503 ({status})")
        teardown_after_kill(c, dep, everything, victims)


def case_master_killed(c, k2serve, data):
    """kill -9 of node 0's process tree: the headless node's worker hears nothing from the
    engine for 15 s (kFanoutMasterTimeout) and exits; the node follows."""
    with deployment(c, k2serve, data) as (dep, _):
        node_pids = process_tree(dep.node.pid)
        t0 = time.time()
        kill9(process_tree(dep.server.proc.pid))
        code = exit_code(dep.node, 40)
        took = time.time() - t0
        c.check(code not in (None, 0) and took < 30, f"the headless node exits non-zero on its own ({code}, {took:.1f} s)")
        c.check("has been silent" in dep.node_log(), "the worker says the engine went silent")
        time.sleep(0.5)
        left = [p for p in node_pids if alive(p)]
        c.check(not left, f"no process of the headless node is left ({left})")


def case_unplugged(c, k2serve, data):
    """Node 1's link goes down (no reset, only silence): the master reports the silent worker
    within 5 s from its missing heartbeats; the worker, hearing nothing, exits by itself."""
    with deployment(c, k2serve, data) as (dep, _):
        t0 = time.time()
        run("ip", "link", "set", f"{dep.cluster.tag}h1", "down")
        reported = None
        while time.time() - t0 < 10 and reported is None:
            if "worker 1 on node 1 has been silent" in dep.server.log_text() and dep.server.health() == 503:
                reported = time.time() - t0
            time.sleep(0.05)
        c.check(reported is not None and reported < 5, f"the master reports worker 1 and answers 503 within 5 s ({reported})")
        code = exit_code(dep.node, 40)
        took = time.time() - t0
        c.check(code not in (None, 0) and took < 35, f"the cut-off node exits non-zero on its own ({code}, {took:.1f} s)")


def case_curve_refused(c, k2serve, data):
    """Node 1 comes with another deployment's key file: its worker is refused by the engine's
    CURVE handshake socket, says so and gives up; the master never serves without it."""
    keys = Path(tempfile.mkdtemp(prefix="k2tpn-keys-"))
    cluster = Cluster(2)
    master = node = None
    try:
        keygen(k2serve, keys / "deployment.key")
        keygen(k2serve, keys / "intruder.key")
        model, tok = data / "models" / "tiny-bf16", ["--tokenizer", str(data / "text" / "tok-1024")]
        master_log = keys / "master.log"
        node_log = keys / "node.log"
        with open(master_log, "w") as ml, open(node_log, "w") as nl:
            master = subprocess.Popen(
                cluster.prefix(0) + [str(k2serve), "serve", str(model), *tok, *COMMON, "--port", "0", "--host",
                                     cluster.address(0), "--kv-cache-memory", str(32 << 20), *vllm_flags(cluster, 0),
                                     "--control-plane-key-file", str(keys / "deployment.key")],
                stdout=ml, stderr=subprocess.STDOUT)
            node = subprocess.Popen(
                cluster.prefix(1) + [str(k2serve), "serve", str(model), *tok, *COMMON, *vllm_flags(cluster, 1),
                                     "--control-plane-key-file", str(keys / "intruder.key")],
                stdout=nl, stderr=subprocess.STDOUT)
            code = exit_code(node, 40)
        text, mtext = node_log.read_text(), master_log.read_text()
        c.check(code not in (None, 0), f"the refused node gives up on its own ({code})")
        c.check("refused" in text and "--control-plane-key-file" in text, f"the node says why ({text[-400:]!r})")
        c.check("control plane: refused peer" in mtext, "the master logs the refusal")
        c.check("serving tiny on" not in mtext, "the master never serves without its tensor-parallel rank 1")
    finally:
        for p in (master, node):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        cluster.remove()
        shutil.rmtree(keys, ignore_errors=True)


NEVER_TIMEOUT_S = 22  # two "still waiting" lines, then the error
NEVER_PORT = 8461


def health_code(url):
    """/health's status code, or None when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def case_never(c, k2serve, data):
    """Node 1 never starts: the master waits VLLM_ENGINE_READY_TIMEOUT_S for it, saying so every
    10 s, then fails naming it; nothing hangs and nothing is left."""
    cluster = Cluster(2)
    log_path = Path(tempfile.mkstemp(prefix="k2tpn-never-", suffix=".log")[1])
    master = None
    try:
        model, tok = data / "models" / "tiny-bf16", ["--tokenizer", str(data / "text" / "tok-1024")]
        t0 = time.time()
        with open(log_path, "w") as log:
            master = subprocess.Popen(
                cluster.prefix(0) + [str(k2serve), "serve", str(model), *tok, *COMMON, "--port", str(NEVER_PORT),
                                     "--host", cluster.address(0), "--kv-cache-memory", str(32 << 20),
                                     *vllm_flags(cluster, 0)],
                stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "VLLM_ENGINE_READY_TIMEOUT_S": str(NEVER_TIMEOUT_S)})
        pids, healths = set(), set()
        while master.poll() is None and time.time() - t0 < NEVER_TIMEOUT_S + 30:
            pids.update(process_tree(master.pid))
            healths.add(health_code(f"http://{cluster.address(0)}:{NEVER_PORT}/health"))
            time.sleep(0.2)
        code = exit_code(master, 1)
        took = time.time() - t0
        text = log_path.read_text()
        print("master:", "\n".join(l for l in text.splitlines() if re.search(r"waiting|never|error|failed", l)))
        c.check(code not in (None, 0) and NEVER_TIMEOUT_S <= took < NEVER_TIMEOUT_S + 15,
                f"the master exits non-zero once the timeout passed ({code} after {took:.1f} s)")
        c.check(200 not in healths, f"/health never answers 200 ({healths})")
        waits = re.findall(r"still waiting for node 1 \(worker rank 1\) after (\d+) s", text)
        c.check(waits[:2] == ["10", "20"], f"the master says every 10 s that it waits for node 1's worker rank 1 ({waits})")
        c.check(re.search(r"node 1 \(worker rank 1\) never joined the tensor-parallel group", text) is not None,
                "the master's error names the missing node and worker rank")
        c.check(len(pids) >= 3, f"the engine and rank 0's worker had started ({sorted(pids)})")
        time.sleep(0.5)
        left = [p for p in pids if alive(p)]
        c.check(not left, f"no process is left ({left})")
        segments = [f.name for p in pids for f in Path("/dev/shm").glob(f"k2serve-{p}-*")]
        c.check(not segments, f"no shm segment is left ({segments})")
        if c.failures:
            print(f"--- master log {log_path}:\n" + text[-6000:])
    finally:
        if master is not None and master.poll() is None:
            master.kill()
            master.wait()
        cluster.remove()
        log_path.unlink(missing_ok=True)


def case_curve(c, k2serve, data):
    keys = Path(tempfile.mkdtemp(prefix="k2tpn-keys-"))
    try:
        keygen(k2serve, keys / "deployment.key")
        case_tp2(c, k2serve, data, vllm_flags, ["--control-plane-key-file", str(keys / "deployment.key")])
    finally:
        shutil.rmtree(keys, ignore_errors=True)


def main():
    k2serve, data, case = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    c = Checks()
    cases = {
        "tp2": lambda: case_tp2(c, k2serve, data, vllm_flags),
        "tp2_killed": lambda: case_killed(c, k2serve, data, True),
        "tp2_killed_idle": lambda: case_killed(c, k2serve, data, False),
        "master_killed": lambda: case_master_killed(c, k2serve, data),
        "tp2_unplugged": lambda: case_unplugged(c, k2serve, data),
        "tp2_curve": lambda: case_curve(c, k2serve, data),
        "tp2_curve_refused": lambda: case_curve_refused(c, k2serve, data),
        "tp2_never": lambda: case_never(c, k2serve, data),
        "sglang": lambda: case_tp2(c, k2serve, data, sglang_flags),
        "tp4": lambda: case_tp2(c, k2serve, data, vllm_flags_tp4),
        "ep2": lambda: case_tp2(c, k2serve, data, vllm_flags_ep2),
        "tp2_media": lambda: case_media(c, k2serve, data),
    }
    run_case(cases, case, c)


if __name__ == "__main__":
    main()
