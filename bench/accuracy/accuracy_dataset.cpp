#include "bench/accuracy/accuracy_dataset.h"

#include <fstream>

namespace k2::bench {
namespace {

using nlohmann::json;

Result<ExpectedToolCall> parse_tool_call(const json& j) {
  if (!j.is_object()) return invalid_argument("a tool call must be an object");
  // OpenAI's own shape {"function": {"name", "arguments"}} is accepted too.
  const json& f = j.contains("function") && j["function"].is_object() ? j["function"] : j;
  if (!f.contains("name") || !f["name"].is_string()) return invalid_argument("a tool call needs a string \"name\"");
  ExpectedToolCall call;
  call.name = f["name"].get<std::string>();
  if (!f.contains("arguments")) {
    call.arguments = json::object();
  } else if (f["arguments"].is_string()) {
    call.arguments = parse_arguments(f["arguments"].get<std::string>());
  } else {
    call.arguments = f["arguments"];
  }
  return call;
}

Result<std::vector<ExpectedToolCall>> parse_tool_calls(const json& j) {
  if (!j.is_array()) return invalid_argument("tool calls must be an array");
  std::vector<ExpectedToolCall> out;
  for (const auto& c : j) {
    K2_ASSIGN_OR_RETURN(auto call, parse_tool_call(c));
    out.push_back(std::move(call));
  }
  return out;
}

// Fills answer/tool_calls from whichever "expected" form the line uses.
Status read_expectation(const json& j, AccuracyItem& item) {
  if (j.contains("expected_tool_calls") && !j["expected_tool_calls"].is_null()) {
    K2_ASSIGN_OR_RETURN(item.tool_calls, parse_tool_calls(j["expected_tool_calls"]));
    if (item.tool_calls.empty()) return invalid_argument("\"expected_tool_calls\" is empty");
    return {};
  }
  if (j.contains("expected_answer")) {
    if (!j["expected_answer"].is_string()) return invalid_argument("\"expected_answer\" must be a string");
    item.answer = j["expected_answer"].get<std::string>();
    return {};
  }
  if (j.contains("expected") && j["expected"].is_object()) {
    const json& e = j["expected"];
    if (e.contains("tool_calls") && !e["tool_calls"].is_null()) {
      K2_ASSIGN_OR_RETURN(item.tool_calls, parse_tool_calls(e["tool_calls"]));
    }
    if (!item.tool_calls.empty()) return {};
    if (e.contains("content") && e["content"].is_string()) {
      item.answer = e["content"].get<std::string>();
      return {};
    }
    if (e.contains("content") && e["content"].is_null()) {
      item.answer = "";
      return {};
    }
  }
  return invalid_argument("no expectation: give \"expected_answer\", \"expected_tool_calls\" or \"expected\"");
}

}  // namespace

json parse_arguments(const std::string& text) {
  json v = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return v.is_discarded() ? json(text) : v;
}

Result<AccuracyItem> parse_accuracy_item(const std::string& line, size_t line_no) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return invalid_argument("not a JSON object");
  AccuracyItem item;
  item.id = j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : "line-" + std::to_string(line_no);
  if (j.contains("category") && j["category"].is_string()) item.category = j["category"].get<std::string>();
  if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty()) {
    return invalid_argument("\"messages\" must be a non-empty array");
  }
  item.messages = j["messages"];
  if (j.contains("tools") && !j["tools"].is_null()) {
    if (!j["tools"].is_array()) return invalid_argument("\"tools\" must be an array");
    if (!j["tools"].empty()) item.tools = j["tools"];
  }
  K2_RETURN_IF_ERROR(read_expectation(j, item));
  return item;
}

Result<std::vector<AccuracyItem>> load_accuracy_dataset(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("cannot open the dataset " + path);
  std::vector<AccuracyItem> items;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto item = parse_accuracy_item(line, line_no);
    if (!item.ok()) return item.status().with_context(path + ":" + std::to_string(line_no));
    items.push_back(std::move(*item));
  }
  if (items.empty()) return invalid_argument(path + " holds no items");
  return items;
}

}  // namespace k2::bench
