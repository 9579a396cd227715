// Tool calls the request forced (tool_choice "required" or a named function). As in vLLM,
// the engine constrains the output to JSON (enginecore/structured), the kimi_k2 tool-call
// parser is not used, and the content after reasoning is that JSON:
//  - named: the function's arguments object; one call of that function;
//  - required: [{"name": ..., "parameters": {...}}, ...]; one call per element, arguments
//    re-serialised as json.dumps(parameters, ensure_ascii=False).
// Call ids are Kimi's functions.{name}:{index}, the index counting on from the calls already
// in the conversation (vLLM's history_tool_call_cnt). OpenAI's finish_reason is
// "tool_calls" for required and "stop" for a named function.
//
// ForcedToolStream is the streaming form: named calls stream their arguments as they are
// generated (the first fragment carries id and name); required calls are sent whole as each
// array element closes (the same choice as the kimi_k2 stream: a call is never sent half
// parsed). One stream per choice; not thread-safe. The free function is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/parsers/kimi_k2_tool_parser.h"

namespace k2::parsers {

enum class ForcedToolMode { kNone, kRequired, kNamed };

struct ForcedToolChoice {
  ForcedToolMode mode = ForcedToolMode::kNone;
  std::string name;             // kNamed
  int32_t first_call_index = 0;  // tool calls already in the conversation
  bool active() const { return mode != ForcedToolMode::kNone; }
};

// The calls in the generated JSON. Output that is not the expected JSON (cut by max_tokens),
// or empty output, gives no calls; the caller then returns it as content. (Streamed, the
// complete elements of a cut "required" array have already gone out as calls.)
std::vector<ToolCall> forced_tool_calls(std::string_view content, const ForcedToolChoice& choice);

class ForcedToolStream {
 public:
  explicit ForcedToolStream(ForcedToolChoice choice) : choice_(std::move(choice)) {}
  std::vector<ToolCallDelta> feed(std::string_view content);
  bool any_sent() const { return sent_ > 0; }

 private:
  std::vector<ToolCallDelta> feed_required(std::string_view content);

  ForcedToolChoice choice_;
  int sent_ = 0;
  // Required: the scanner's position in the array text.
  std::string element_;
  int depth_ = 0;
  bool in_string_ = false, escaped_ = false;
};

}  // namespace k2::parsers
