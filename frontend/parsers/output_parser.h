// The serving layer's output pipeline for Kimi-K2, as vLLM's chat endpoint runs it: the
// reasoning parser first, then the tool-call parser on the content it leaves.
//
//  - reasoning runs when reasoning_parser is "kimi_k2" (see kimi_k2_reasoning_parser.h);
//  - tool parsing runs when tools were requested, tool_choice is not "none" and
//    tool_parser is "kimi_k2"; it reads the content (null read as ""); when it finds a
//    section the content becomes its content, otherwise the content stays as it was.
//
// OutputStream gives the streaming form: feed it text deltas (the detokenizer's output,
// special tokens kept) and send what each call returns; concatenated, the deltas equal
// parse_output() on the whole text for every split (see the two parsers' headers for what
// is held back to make that true).
//
// OutputStream owns its parsers' state; one per response (per choice), not thread-safe.
// The free functions are thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/parsers/forced_tool_calls.h"
#include "frontend/parsers/kimi_k2_reasoning_parser.h"
#include "frontend/parsers/kimi_k2_tool_parser.h"
#include "shm/status.h"

namespace k2::parsers {

struct OutputParserConfig {
  bool parse_reasoning = false;
  bool thinking = true;  // chat_template_kwargs.thinking, Python truthiness, default true
  bool parse_tools = false;
  // tool_choice required / named: the content is the forced JSON (parse_tools is then off).
  ForcedToolChoice forced;
  // OpenAI: finish_reason "tool_calls" when calls were made, except for a named function.
  bool tool_calls_finish_reason() const { return forced.mode != ForcedToolMode::kNamed; }
};

// Reads {tools, tool_choice?, tool_parser, reasoning_parser, chat_template_kwargs} as the
// records of tool_parser_cases.jsonl carry them (`tools` a bool or the request's tool
// list). An unknown parser name or a malformed field is an error.
Result<OutputParserConfig> output_config_from_request(const nlohmann::json& request);

struct ParsedOutput {
  std::optional<std::string> reasoning;
  std::optional<std::string> content;
  bool tools_called = false;
  std::vector<ToolCall> tool_calls;
};

ParsedOutput parse_output(std::string_view text, const OutputParserConfig& config);

// One streamed step: what a chat.completion.chunk delta carries (empty = absent).
struct DeltaMessage {
  std::string reasoning;
  std::string content;
  std::vector<ToolCallDelta> tool_calls;
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

class OutputStream {
 public:
  explicit OutputStream(const OutputParserConfig& config);

  DeltaMessage feed(std::string_view text);
  // The generation ended: release what was held back. Call once, after the last feed.
  DeltaMessage finish();
  // Whether a tool section was seen (finish_reason "tool_calls" when calls were sent).
  bool tools_called() const {
    return (tools_.has_value() && tools_->tools_called()) || (forced_.has_value() && forced_->any_sent());
  }

 private:
  void route(const ReasoningDelta& step, bool final, DeltaMessage& out);

  KimiK2ReasoningStream reasoning_;
  std::optional<KimiK2ToolStream> tools_;
  std::optional<ForcedToolStream> forced_;
  std::string forced_text_;  // all forced content, returned as content if no call came of it
};

// OpenAI shapes: a delta {"reasoning"?, "content"?, "tool_calls"?} with tool-call
// fragments {index, id?, type?, function{name?, arguments}}, and a finished call
// {id, type:"function", function{name, arguments}}.
nlohmann::json delta_to_json(const DeltaMessage& delta);
nlohmann::json tool_call_to_json(const ToolCall& call);

}  // namespace k2::parsers
