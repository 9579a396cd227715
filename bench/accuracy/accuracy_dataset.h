// The dataset of `k2serve bench accuracy`: one chat conversation per JSONL line with what a
// correct reply must be, either a final answer or a list of tool calls. Plain value types,
// thread-compatible; parsing never throws on bad input (the bytes come from a user's file).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::bench {

struct ExpectedToolCall {
  std::string name;
  nlohmann::json arguments;  // parsed; a string that is not JSON stays a string
};

struct AccuracyItem {
  std::string id;
  std::string category;              // "" groups the item under "all" only
  nlohmann::json messages;           // OpenAI chat messages, sent as they are
  nlohmann::json tools;              // null when the request declares none
  std::optional<std::string> answer;  // expected final answer (exact match of `content`)
  std::vector<ExpectedToolCall> tool_calls;  // expected calls, in order; empty: an answer item

  bool expects_tool_calls() const { return !tool_calls.empty(); }
};

// One JSONL line. Accepted shapes (the first one present wins):
//   {"expected_tool_calls": [{"name", "arguments": object or JSON string}], ...}
//   {"expected_answer": "text", ...}
//   {"expected": {"content": ..., "tool_calls": [{"name", "arguments"}]}}  (eval.jsonl)
// plus "messages" (required, non-empty array), optional "tools", "id", "category".
// `line_no` names the item when it has no "id".
Result<AccuracyItem> parse_accuracy_item(const std::string& line, size_t line_no);

// Every non-blank line of a JSONL file; the first bad line is an error naming it.
Result<std::vector<AccuracyItem>> load_accuracy_dataset(const std::string& path);

// JSON text to a value for comparison; text that is not JSON stays a string, so two
// unparseable argument strings still compare by their text.
nlohmann::json parse_arguments(const std::string& text);

}  // namespace k2::bench
