#!/bin/sh
# The two-turn tool loop with curl: the model asks for one of the three arithmetic tools,
# this script runs it, sends the result back, and prints the model's final answer. JSON is
# handled with python3 (standard library only).
#
#   ./tool_loop.sh [BASE_URL] [QUESTION]
#
# BASE_URL defaults to $OPENAI_BASE_URL, then http://127.0.0.1:8000/v1.
set -eu
BASE_URL=${1:-${OPENAI_BASE_URL:-http://127.0.0.1:8000/v1}}
QUESTION=${2:-Tell me 139 times 51.}
export QUESTION

post() {  # post PATH JSON_BODY -> response body on stdout; fails on an HTTP error
  curl -sS --fail-with-body -H 'Content-Type: application/json' \
       -H "Authorization: Bearer ${OPENAI_API_KEY:-EMPTY}" -d "$2" "$BASE_URL$1"
}

MODEL=$(curl -sS --fail -H "Authorization: Bearer ${OPENAI_API_KEY:-EMPTY}" "$BASE_URL/models" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')
export MODEL

# Turn 1: the question with the three tools declared.
REQUEST=$(python3 - <<'PY'
import json, os
def tool(name, description):
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}}
print(json.dumps({"model": os.environ["MODEL"], "temperature": 0, "max_tokens": 160,
                  "messages": [{"role": "user", "content": os.environ["QUESTION"]}],
                  "tools": [tool("add", "Add two numbers."), tool("subtract", "Subtract b from a."),
                            tool("multiply", "Multiply two numbers.")]}))
PY
)
RESPONSE=$(post /chat/completions "$REQUEST")

# Run the requested tools and build turn 2: the assistant's calls plus one tool message each.
REQUEST=$(REQUEST="$REQUEST" RESPONSE="$RESPONSE" python3 - <<'PY'
import json, os, sys
request, response = json.loads(os.environ["REQUEST"]), json.loads(os.environ["RESPONSE"])
calls = response["choices"][0]["message"].get("tool_calls") or []
if not calls:
    sys.exit("the model answered without a tool call: %s" % response["choices"][0]["message"].get("content"))
ops = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b}
request["messages"].append({"role": "assistant", "content": None, "tool_calls": calls})
for call in calls:
    args = json.loads(call["function"]["arguments"])
    result = ops[call["function"]["name"]](args["a"], args["b"])
    print("tool call: %s(%s, %s) = %s" % (call["function"]["name"], args["a"], args["b"], result), file=sys.stderr)
    request["messages"].append({"role": "tool", "tool_call_id": call["id"], "content": str(result)})
print(json.dumps(request))
PY
)
post /chat/completions "$REQUEST" |
  python3 -c 'import json, sys; print("answer:", json.load(sys.stdin)["choices"][0]["message"]["content"])'
