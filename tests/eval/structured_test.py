#!/usr/bin/env python3
"""Structured outputs end to end on the trained demo model (tests/data/models/demo-trained),
served as `make serve` serves it (kimi_k2 tool and reasoning parsers):

1. tool_choice naming a function: one call of it, its arguments valid against the function's
   parameters, finish_reason "stop" (OpenAI's rule for a named function); streamed, the
   argument fragments add up to the same call.
2. tool_choice "required": one or more calls, each of a declared tool with valid arguments,
   finish_reason "tool_calls"; streamed, the same calls.
3. response_format json_schema / json_object, and vLLM's structured_outputs on /v1/completions:
   the output parses and validates (also with thinking on: the grammar starts after </think>).
4. A schema the engine cannot enforce is a 400 naming the keyword; the server keeps serving.

Every request is greedy; validation uses the jsonschema package (Debian python3-jsonschema).

Usage: structured_test.py K2SERVE DATA_DIR
"""
import json
import sys
from pathlib import Path

import jsonschema

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import DEMO_FLAGS, Checks, Server  # noqa: E402

# Bounded arguments (enums): a greedy walk of this small model through an open number could
# write digits until max_tokens, which would test the model, not the server.
OPERANDS = [139, 51, 7089]
NUMBERS = {"type": "object", "properties": {"a": {"enum": OPERANDS}, "b": {"enum": OPERANDS}},
           "required": ["a", "b"]}
TOOLS = [{"type": "function", "function": {"name": name, "description": desc, "parameters": NUMBERS}}
         for name, desc in [("add", "Add two numbers."), ("subtract", "Subtract b from a."),
                            ("multiply", "Multiply two numbers.")]]
QUESTION = [{"role": "user", "content": "What is 139 times 51? Use a tool."}]


def chat(server, **fields):
    body = {"model": server.model, "messages": QUESTION, "temperature": 0, "max_tokens": 96}
    body.update(fields)
    return server.post("/v1/chat/completions", body)


def stream_chat(server, **fields):
    """The streamed chunks' tool calls, assembled as a client does, and the finish reason."""
    import urllib.request
    body = {"model": server.model, "messages": QUESTION, "temperature": 0, "max_tokens": 96, "stream": True}
    body.update(fields)
    req = urllib.request.Request(server.url("/v1/chat/completions"), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    calls, finish, content = {}, None, ""
    with urllib.request.urlopen(req, timeout=300) as resp:
        for line in resp.read().decode().splitlines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for ch in chunk["choices"]:
                delta = ch.get("delta", {})
                content += delta.get("content") or ""
                for tc in delta.get("tool_calls") or []:
                    c = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
                    c["id"] = tc.get("id") or c["id"]
                    c["name"] = tc.get("function", {}).get("name") or c["name"]
                    c["arguments"] += tc.get("function", {}).get("arguments", "")
                finish = ch.get("finish_reason") or finish
    return [calls[i] for i in sorted(calls)], finish, content


def valid(doc, schema):
    try:
        jsonschema.validate(doc, schema)
        return True
    except jsonschema.ValidationError:
        return False


def check_named(server, c):
    choice = {"type": "function", "function": {"name": "multiply"}}
    resp = chat(server, tools=TOOLS, tool_choice=choice)["choices"][0]
    calls = resp["message"]["tool_calls"]
    c.check(len(calls) == 1 and calls[0]["function"]["name"] == "multiply", f"named: one multiply call ({calls})")
    args = json.loads(calls[0]["function"]["arguments"]) if calls else None
    c.check(valid(args, NUMBERS), f"named: arguments valid against the parameters ({args})")
    c.check(calls[0]["id"] == "functions.multiply:0", f"named: Kimi call id ({calls[0]['id']})")
    c.check(resp["finish_reason"] == "stop", f"named: finish_reason stop ({resp['finish_reason']})")
    c.check(resp["message"]["content"] in ("", None), "named: no content beside the call")
    streamed, finish, _ = stream_chat(server, tools=TOOLS, tool_choice=choice)
    c.check([(s["name"], s["arguments"]) for s in streamed] == [("multiply", calls[0]["function"]["arguments"])],
            f"named, streamed: the same call ({streamed})")
    c.check(finish == "stop", f"named, streamed: finish_reason stop ({finish})")


def check_required(server, c):
    # parallel_tool_calls=false bounds the array to one call (the model decides when an
    # unbounded one ends, which tests the model).
    one = {"tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False, "max_tokens": 300}
    resp = chat(server, **one)["choices"][0]
    calls = resp["message"]["tool_calls"]
    names = {t["function"]["name"] for t in TOOLS}
    c.check(len(calls) >= 1 and all(t["function"]["name"] in names for t in calls),
            f"required: calls of declared tools ({calls})")
    c.check(all(valid(json.loads(t["function"]["arguments"]), NUMBERS) for t in calls),
            "required: every call's arguments are valid")
    c.check([t["id"] for t in calls] == [f"functions.{t['function']['name']}:{i}" for i, t in enumerate(calls)],
            "required: Kimi call ids numbered in order")
    c.check(resp["finish_reason"] == "tool_calls", f"required: finish_reason tool_calls ({resp['finish_reason']})")
    streamed, finish, _ = stream_chat(server, **one)
    c.check([(s["id"], s["name"], s["arguments"]) for s in streamed] ==
            [(t["id"], t["function"]["name"], t["function"]["arguments"]) for t in calls],
            f"required, streamed: the same calls ({streamed})")
    c.check(finish == "tool_calls", f"required, streamed: finish_reason tool_calls ({finish})")
    # A second turn numbers its calls after the first turn's.
    history = QUESTION + [{"role": "assistant", "content": "", "tool_calls": calls}] + [
        {"role": "tool", "tool_call_id": t["id"], "content": "7089"} for t in calls]
    again = chat(server, **dict(one, messages=history))["choices"][0]["message"]
    ids = [t["id"] for t in again["tool_calls"]]
    c.check(bool(ids) and ids[0].endswith(f":{len(calls)}"), f"required: ids continue the history's count ({ids})")


def check_response_format(server, c):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}, "unit": {"enum": ["apples", "pears"]}},
              "required": ["answer", "unit"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "result", "schema": schema}}
    for thinking in (False, True):
        msg = chat(server, response_format=fmt, max_tokens=200,
                   chat_template_kwargs={"thinking": thinking})["choices"][0]["message"]
        try:
            doc = json.loads(msg["content"])
        except (TypeError, json.JSONDecodeError):
            doc = None
        c.check(valid(doc, schema), f"json_schema (thinking={thinking}): content valid ({msg['content']!r})")
    # Any object: the model may write an endless string, so only a finished output must parse.
    resp = chat(server, response_format={"type": "json_object"})["choices"][0]
    content = resp["message"]["content"] or ""
    c.check(content.startswith("{"), f"json_object: the content opens an object ({content!r})")
    if resp["finish_reason"] == "stop":
        c.check(isinstance(json.loads(content), dict), f"json_object: a finished output is an object ({content!r})")
    body = {"model": server.model, "prompt": "The answer:", "max_tokens": 64, "temperature": 0,
            "structured_outputs": {"json": NUMBERS}}
    text = server.post("/v1/completions", body)["choices"][0]["text"]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    c.check(valid(doc, NUMBERS), f"completions structured_outputs.json: text valid ({text!r})")


def check_bad_schema(server, c):
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a+"}}}
    try:
        chat(server, response_format=bad)
        message = "HTTP 200"
    except AssertionError as e:  # k2_server.Server.post raises with the status and body
        message = str(e)
    c.check("HTTP 400" in message and "pattern" in message, f"unsupported schema: 400 naming 'pattern' ({message})")
    ok = chat(server, max_tokens=4)
    c.check(ok["choices"][0]["finish_reason"] in ("length", "stop"), "the server keeps serving after a bad schema")


def main():
    k2serve, data = sys.argv[1], Path(sys.argv[2])
    c = Checks()
    server = Server(k2serve, data / "models" / "demo-trained", DEMO_FLAGS)
    try:
        check_named(server, c)
        check_required(server, c)
        check_response_format(server, c)
        check_bad_schema(server, c)
    finally:
        server.stop()
    sys.exit(c.exit_code() if c.passed else 1)


if __name__ == "__main__":
    main()
