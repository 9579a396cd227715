#!/usr/bin/env python3
"""Drives the k2serve text commands (tokenize, detokenize, render-chat, parse-output) with
every golden record of tests/data/text and checks each output line against the record.

The goldens come from Kimi's tokenizer, jinja2 and vLLM (see tests/data/text/README.md);
nothing here is produced by k2serve. Usage: text_commands_test.py K2SERVE DATA_DIR
"""
import json
import subprocess
import sys
from pathlib import Path


def run_lines(k2serve, args, records):
    """One JSON object per input line in, one per output line back."""
    stdin = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    proc = subprocess.run([k2serve, *args], input=stdin.encode(), capture_output=True, timeout=300)
    lines = [l for l in proc.stdout.decode().split("\n") if l]
    if len(lines) != len(records):
        raise AssertionError(f"{args[0]}: {len(lines)} output lines for {len(records)} inputs; "
                             f"stderr: {proc.stderr.decode()[-2000:]}")
    return [json.loads(line) for line in lines]


def load_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}")


def check_tokenizers(k2serve, data, c):
    for tok in ["tok-512", "tok-768", "tok-1024"]:
        tdir = data / "text" / tok
        golden = load_jsonl(tdir / "golden.jsonl")
        out = run_lines(k2serve, ["tokenize", "--tokenizer", str(tdir)], [{"text": g["text"]} for g in golden])
        for i, (g, o) in enumerate(zip(golden, out)):
            c.check(o.get("ids") == g["ids"], f"tokenize {tok} line {i}")
        back = run_lines(k2serve, ["detokenize", "--tokenizer", str(tdir)], [{"ids": g["ids"]} for g in golden])
        for i, (g, o) in enumerate(zip(golden, back)):
            c.check(o.get("text") == g["text"], f"detokenize {tok} line {i}")
    bad = run_lines(k2serve, ["tokenize", "--tokenizer", str(data / "text" / "tok-512")],
                    [{"nope": 1}, {"text": "ok"}])
    c.check("error" in bad[0] and "ids" in bad[1], "tokenize: a bad line gets an error and the next line works")


def check_chat_templates(k2serve, data, c):
    records = load_jsonl(data / "text" / "goldens" / "chat_template_cases.jsonl")
    by_template = {}
    for r in records:
        by_template.setdefault(r["template"], []).append(r)
    for template, recs in by_template.items():
        inputs = [{k: r[k] for k in ("messages", "tools", "kwargs", "message_preprocessing")} for r in recs]
        out = run_lines(k2serve, ["render-chat", "--tokenizer", str(data / "text" / "tok-1024"),
                                  "--chat-template", str(data / "text" / "templates" / template)], inputs)
        for r, o in zip(recs, out):
            name = f"render-chat {template} {r['case']} {r['message_preprocessing']} {r['kwargs']}"
            if r.get("rendered") is None:
                c.check("error" in o, name + " (expected an error)")
            else:
                c.check(o.get("rendered") == r["rendered"] and o.get("ids") == r["ids"], name)


def check_parsers(k2serve, data, c):
    records = load_jsonl(data / "text" / "goldens" / "tool_parser_cases.jsonl")
    out = run_lines(k2serve, ["parse-output", "--tokenizer", str(data / "text" / "tok-1024")],
                    [{"model_output": r["model_output"], "request": r["request"]} for r in records])
    for r, o in zip(records, out):
        exp = r["expected"]
        got = {k: o.get(k) for k in ("reasoning", "content", "tools_called", "tool_calls")}
        c.check(got == exp, f"parse-output {r['id']}: got {got}, expected {exp}")


def main():
    k2serve, data = sys.argv[1], Path(sys.argv[2])
    c = Checker()
    check_tokenizers(k2serve, data, c)
    check_chat_templates(k2serve, data, c)
    check_parsers(k2serve, data, c)
    print(f"{c.passed} passed, {c.failed} failed")
    sys.exit(1 if c.failed or c.passed == 0 else 0)


if __name__ == "__main__":
    main()
