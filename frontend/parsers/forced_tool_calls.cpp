#include "frontend/parsers/forced_tool_calls.h"

#include "enginecore/structured/tool_schemas.h"

namespace k2::parsers {

namespace {

std::string call_id(const std::string& name, int32_t index) {
  return "functions." + name + ":" + std::to_string(index);
}

}  // namespace

std::vector<ToolCall> forced_tool_calls(std::string_view content, const ForcedToolChoice& choice) {
  std::vector<ToolCall> calls;
  if (choice.mode == ForcedToolMode::kNamed) {
    if (content.empty()) return calls;  // cut before the arguments began: no call, as streamed
    calls.push_back({call_id(choice.name, choice.first_call_index), choice.name, std::string(content)});
  } else if (choice.mode == ForcedToolMode::kRequired) {
    auto parsed = structured::parse_required_tool_calls(content);
    if (!parsed.ok()) return calls;
    int32_t index = choice.first_call_index;
    for (auto& c : *parsed) calls.push_back({call_id(c.name, index++), std::move(c.name), std::move(c.arguments)});
  }
  return calls;
}

std::vector<ToolCallDelta> ForcedToolStream::feed(std::string_view content) {
  if (choice_.mode == ForcedToolMode::kRequired) return feed_required(content);
  std::vector<ToolCallDelta> out;
  if (choice_.mode != ForcedToolMode::kNamed || content.empty()) return out;
  ToolCallDelta d;
  d.index = 0;
  if (sent_++ == 0) {
    d.id = call_id(choice_.name, choice_.first_call_index);
    d.name = choice_.name;
  }
  d.arguments = std::string(content);
  out.push_back(std::move(d));
  return out;
}

// Tracks the array's nesting, outside strings, so that an element is known complete when its
// closing brace brings the depth back to the array's.
std::vector<ToolCallDelta> ForcedToolStream::feed_required(std::string_view content) {
  std::vector<ToolCallDelta> out;
  for (char ch : content) {
    const bool in_element = depth_ >= 2 || (depth_ == 1 && ch == '{' && !in_string_);
    if (in_element) element_.push_back(ch);
    if (in_string_) {
      if (escaped_) escaped_ = false;
      else if (ch == '\\') escaped_ = true;
      else if (ch == '"') in_string_ = false;
      continue;
    }
    if (ch == '"') {
      in_string_ = true;
    } else if (ch == '{' || ch == '[') {
      ++depth_;
    } else if (ch == '}' || ch == ']') {
      --depth_;
      if (depth_ == 1 && ch == '}') {
        const std::string one = "[" + element_ + "]";
        element_.clear();
        ForcedToolChoice next = choice_;
        next.first_call_index += sent_;
        for (ToolCall& c : forced_tool_calls(one, next)) {
          out.push_back(ToolCallDelta{sent_, std::move(c.id), std::move(c.name), std::move(c.arguments)});
          ++sent_;
        }
      }
    }
  }
  return out;
}

}  // namespace k2::parsers
