#!/usr/bin/env python3
"""Runs every client in examples/ against `k2serve serve` of the demo model and checks what
they print: the tool loops (Node SDK and curl) must print the right final answer, the
streaming chat the expected reply.

The questions come from eval.jsonl: a tool question whose follow-up the reference answers
correctly (`e2e_followup.answer_exact`) with the canonical tools and no system prompt, and a
chat question the reference answers exactly.

Usage: examples_test.py K2SERVE DATA_DIR EXAMPLES_DIR NPM_DIR
NPM_DIR holds node_modules/openai; the .mjs examples are copied below it so Node finds it.
"""
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import DEMO_FLAGS, Checks, Server, load_jsonl  # noqa: E402

CANONICAL_TOOLS = ["add", "subtract", "multiply"]


def pick_questions(records):
    tool = next(r for r in records
                if r.get("e2e_followup", {}).get("answer_exact")
                and [t["function"]["name"] for t in r["tools"]] == CANONICAL_TOOLS
                and [m["role"] for m in r["messages"]] == ["user"])
    chat = next(r for r in records
                if r["category"] == "chat" and r["exact"] and not r.get("tools")
                and [m["role"] for m in r["messages"]] == ["user"])
    return ((tool["messages"][0]["content"], tool["e2e_followup"]["expected_content"]),
            (chat["messages"][0]["content"], chat["expected"]["content"]))


def run(cmd, c, name):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    print(f"$ {' '.join(map(str, cmd))}\n{p.stdout}{p.stderr}", flush=True)
    c.check(p.returncode == 0, f"{name} exits 0 (got {p.returncode})")
    return p.stdout


def main():
    k2serve, data, examples, npm_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    (tool_q, tool_answer), (chat_q, chat_answer) = pick_questions(
        load_jsonl(data / "models" / "demo-trained" / "eval.jsonl"))
    run_dir = npm_dir / "examples"
    run_dir.mkdir(exist_ok=True)
    for f in examples.glob("*.mjs"):
        shutil.copy(f, run_dir / f.name)

    c = Checks()
    server = Server(k2serve, data / "models" / "demo-trained", DEMO_FLAGS)
    try:
        url = server.base_url
        out = run(["node", run_dir / "tool_loop.mjs", url, tool_q], c, "tool_loop.mjs")
        c.check(f"answer: {tool_answer}" in out.splitlines(), f"tool_loop.mjs prints 'answer: {tool_answer}'")
        out = run(["sh", examples / "tool_loop.sh", url, tool_q], c, "tool_loop.sh")
        c.check(f"answer: {tool_answer}" in out.splitlines(), f"tool_loop.sh prints 'answer: {tool_answer}'")
        out = run(["node", run_dir / "chat_stream.mjs", url, chat_q], c, "chat_stream.mjs")
        c.check(f"answer: {chat_answer}" in out.splitlines(), f"chat_stream.mjs prints 'answer: {chat_answer}'")
    finally:
        server.stop()
    c.check(server.proc.returncode == 0, f"SIGTERM exits 0 (got {server.proc.returncode})")
    return c.exit_code()


if __name__ == "__main__":
    sys.exit(main())
