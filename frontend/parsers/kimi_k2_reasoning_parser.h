// vLLM's `kimi_k2` reasoning parser: splits a Kimi-K2 output into reasoning and content.
//
// Rules (vllm/reasoning/kimi_k2_reasoning_parser.py, the version the goldens in
// tests/data/text/goldens/tool_parser_cases.jsonl are derived from):
//  - `thinking` false (chat_template_kwargs, Python truthiness) -> everything is content;
//  - otherwise a `<think>` at offset 0 is consumed; reasoning ends at the first `</think>`
//    (content is what follows, null when empty); with no `</think>` it ends at the first
//    `<|tool_calls_section_begin|>`, which stays in the content for the tool parser; with
//    neither, everything is reasoning and content is null. Reasoning is never null here.
//
// The streaming form emits only what no later text can change, so the concatenated
// deltas always equal the non-streaming split, for every way of cutting the text. That
// has one visible cost: after a tool-section marker inside reasoning, a later `</think>`
// would still pull the section back into the reasoning (vLLM's non-streaming rule), so
// that text is held until `</think>` arrives or the stream finishes. vLLM's own streaming
// path decides at the marker instead and can disagree with its non-streaming answer.
//
// KimiK2ReasoningStream owns its pending text; one instance per response, not
// thread-safe. The free function is thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace k2::parsers {

struct ReasoningSplit {
  std::optional<std::string> reasoning;
  std::optional<std::string> content;
};

ReasoningSplit extract_reasoning(std::string_view output, bool thinking);

// What one feed released; an empty string means nothing of that kind.
struct ReasoningDelta {
  std::string reasoning;
  std::string content;
};

class KimiK2ReasoningStream {
 public:
  explicit KimiK2ReasoningStream(bool thinking);

  ReasoningDelta feed(std::string_view text);
  // The stream ended: release everything still held.
  ReasoningDelta finish();

 private:
  enum class State {
    kStart,         // not yet known whether the output opens with `<think>`
    kReasoning,     // inside reasoning, no end marker seen
    kAfterSection,  // a tool-section marker seen in reasoning; a later `</think>` may follow
    kContent,       // reasoning is over
  };

  void process(ReasoningDelta& out);

  State state_;
  std::string pending_;  // received, not yet released
  size_t scanned_ = 0;   // kAfterSection: pending_[0, scanned_) holds no `</think>` start
};

}  // namespace k2::parsers
