// vLLM's `kimi_k2` tool-call parser, non-streaming and streaming.
//
// Rules (vllm/entrypoints/openai/tool_parsers/kimi_k2_tool_parser.py, non-streaming path;
// the goldens in tests/data/text/goldens/tool_parser_cases.jsonl are derived from it):
//  - no `<|tool_calls_section_begin|>` in the text -> no tool calls, content unchanged;
//  - otherwise tools_called is true (even with zero calls), content is the text before the
//    first section marker (null when empty), text after the section is dropped, and every
//    non-overlapping match, anywhere in the text, of
//      <|tool_call_begin|>\s*(ID)\s*<|tool_call_argument_begin|>\s*(ARGS)\s*<|tool_call_end|>
//    with ID = [^<]+:\d+ and ARGS the shortest text holding no <|tool_call_begin|>, is a call
//    {id: ID verbatim, name: ID.split(":")[0].split(".")[-1], arguments: ARGS unvalidated}.
//  - the singular `<|tool_call_section_begin|>` is not a section marker here (vLLM accepts
//    it only on its streaming path, which would make streamed and non-streamed answers
//    differ; the goldens follow the non-streaming path).
// ToolCallMatcher is that regex as an incremental, linear-time scanner (\s and \d have
// Python `regex` semantics, see text_scan.h); it is what both forms use.
//
// Streaming emits only what no later text can change, so the concatenated deltas equal the
// non-streaming result for every split: content up to a possible partial section marker,
// and each call once its <|tool_call_end|> has arrived (before that, a later
// <|tool_call_begin|> or the end of the stream could still void it), as two OpenAI deltas:
// {index, id, type, name, arguments:""} then {index, arguments}.
//
// The classes own the text they were fed; one instance per response, not thread-safe.
// The free function is thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace k2::parsers {

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;
  bool operator==(const ToolCall&) const = default;
};

struct ToolParseResult {
  bool tools_called = false;
  std::vector<ToolCall> tool_calls;
  std::optional<std::string> content;
};

ToolParseResult extract_tool_calls(std::string_view text);

// Returns the ID of a call given the text between <|tool_call_begin|> and
// <|tool_call_argument_begin|> (`\s*([^<]+:\d+)\s*` anchored at both ends), if it is one.
std::optional<std::string_view> match_tool_call_id(std::string_view between);
// name = id.split(":")[0].split(".")[-1]
std::string tool_name_from_id(std::string_view id);

class ToolCallMatcher {
 public:
  // `text` is everything seen so far; it only ever grows between calls. Appends each call
  // that is now certain to calls().
  void advance(std::string_view text);
  const std::vector<ToolCall>& calls() const { return calls_; }

 private:
  enum class Phase { kSeekCall, kSeekArguments, kSeekEnd };
  Phase phase_ = Phase::kSeekCall;
  size_t pos_ = 0;         // kSeekCall: where to look for the next <|tool_call_begin|>
  size_t call_begin_ = 0;  // start of the call being matched
  size_t cursor_ = 0;      // kSeekArguments / kSeekEnd: first byte not yet examined
  size_t args_begin_ = 0;  // just after <|tool_call_argument_begin|>
  std::string id_;
  std::vector<ToolCall> calls_;
};

// One streamed tool-call fragment, OpenAI-shaped: `id`, `type` and `name` only on the
// first fragment of a call, `index` on every one.
struct ToolCallDelta {
  int index = 0;
  std::optional<std::string> id;  // set on the first fragment (type is then "function")
  std::optional<std::string> name;
  std::string arguments;
};

struct ToolStreamDelta {
  std::string content;
  std::vector<ToolCallDelta> tool_calls;
};

class KimiK2ToolStream {
 public:
  ToolStreamDelta feed(std::string_view text);
  ToolStreamDelta finish();
  bool tools_called() const { return section_ != std::string::npos; }

 private:
  void emit_calls(ToolStreamDelta& out);

  std::string text_;
  size_t content_sent_ = 0;
  size_t section_ = std::string::npos;  // first section marker, once seen
  size_t section_scan_ = 0;             // text_[0, section_scan_) holds no marker start
  ToolCallMatcher matcher_;
  size_t calls_sent_ = 0;
};

}  // namespace k2::parsers
