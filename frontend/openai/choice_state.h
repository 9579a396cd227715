// One choice of a response: engine token ids in, client-visible text out.
//
// The pipeline per engine output, as vLLM's output processor and serving layer run it:
// drop the stop token's text (EOS / stop_token_ids) unless include_stop_str_in_output,
// detokenize incrementally, apply stop strings (holding back possible prefixes), then,
// for chat in streaming mode, the reasoning / tool-call parsers (OutputStream). In
// non-streaming mode the released text is kept whole and parsed once at the end, which is
// exactly vLLM's non-streaming path.
//
// A ChoiceState owns its detokenizer, stop matcher and parser state; one per choice;
// not thread-safe (the job drives it from one strand).
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "frontend/openai/engine_client.h"
#include "frontend/openai/stop_matcher.h"
#include "frontend/parsers/output_parser.h"
#include "frontend/tokenizer/incremental_detokenizer.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2::openai {

struct ChoiceConfig {
  std::shared_ptr<const Tokenizer> tokenizer;
  bool skip_special_tokens = true;
  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;
  std::vector<int32_t> stop_token_ids;  // the request's own, for stop_reason
  std::optional<parsers::OutputParserConfig> parser;  // chat streaming with reasoning/tools
  bool streaming = false;
  bool parallel_tool_calls = true;
};

// What one or more engine outputs added to a choice.
struct ChoiceDelta {
  std::string content;  // chat content, or completion text
  std::string reasoning;
  std::vector<parsers::ToolCallDelta> tool_calls;
  std::vector<PositionLogprobs> logprobs;
  std::optional<std::vector<PositionLogprobs>> prompt_logprobs;
  std::optional<std::string> finish_reason;  // set when the choice ended here
  nlohmann::ordered_json stop_reason;        // null, the stop string, or the stop token id
  std::optional<std::string> error;          // the engine failed this request
  bool has_output() const { return !content.empty() || !reasoning.empty() || !tool_calls.empty() || !logprobs.empty(); }
  // Appends a later delta of the same choice (coalescing behind a slow client).
  void merge(ChoiceDelta&& later);
};

class ChoiceState {
 public:
  explicit ChoiceState(ChoiceConfig config);

  // Processes one engine output. Sets `stop_string_hit` when a stop string ended the
  // choice (the caller aborts the engine request). Outputs after the end are ignored.
  ChoiceDelta consume(const EngineOutput& out, bool& stop_string_hit);
  bool finished() const { return finished_; }
  int32_t num_generated() const { return num_generated_; }
  int32_t num_cached_tokens() const { return num_cached_; }
  // Non-streaming: the whole output text after stop strings (special tokens per config).
  const std::string& text() const { return text_; }
  // Streaming chat: whether tool-call deltas were sent.
  bool tool_calls_sent() const { return tool_calls_sent_; }

 private:
  void route_text(const std::string& text, bool final, ChoiceDelta& delta);

  ChoiceConfig config_;
  IncrementalDetokenizer detok_;
  StopStringMatcher stops_;
  std::optional<parsers::OutputStream> parser_;
  std::string text_;
  bool finished_ = false;
  bool tool_calls_sent_ = false;
  int32_t num_generated_ = 0;
  int32_t num_cached_ = 0;
};

}  // namespace k2::openai
