#include "frontend/openai/choice_state.h"

#include <algorithm>

namespace k2::openai {

void ChoiceDelta::merge(ChoiceDelta&& later) {
  content += later.content;
  reasoning += later.reasoning;
  for (auto& t : later.tool_calls) {
    // Fragments of the same call next to each other become one fragment.
    if (!tool_calls.empty() && tool_calls.back().index == t.index && !t.id) {
      tool_calls.back().arguments += t.arguments;
    } else {
      tool_calls.push_back(std::move(t));
    }
  }
  logprobs.insert(logprobs.end(), std::make_move_iterator(later.logprobs.begin()),
                  std::make_move_iterator(later.logprobs.end()));
  if (later.prompt_logprobs) prompt_logprobs = std::move(later.prompt_logprobs);
  if (later.finish_reason) {
    finish_reason = std::move(later.finish_reason);
    stop_reason = std::move(later.stop_reason);
  }
  if (later.error) error = std::move(later.error);
}

ChoiceState::ChoiceState(ChoiceConfig config)
    : config_(std::move(config)),
      detok_(config_.tokenizer, config_.skip_special_tokens),
      stops_(config_.stop, config_.include_stop_str_in_output) {
  if (config_.parser && config_.streaming) parser_.emplace(*config_.parser);
}

void ChoiceState::route_text(const std::string& text, bool final, ChoiceDelta& delta) {
  if (!config_.streaming) {
    text_ += text;
    return;
  }
  if (!parser_) {
    delta.content += text;
    return;
  }
  parsers::DeltaMessage m = parser_->feed(text);
  if (final) {
    parsers::DeltaMessage tail = parser_->finish();
    m.reasoning += tail.reasoning;
    m.content += tail.content;
    for (auto& t : tail.tool_calls) m.tool_calls.push_back(std::move(t));
  }
  delta.reasoning += m.reasoning;
  delta.content += m.content;
  for (auto& t : m.tool_calls) {
    if (!config_.parallel_tool_calls && t.index > 0) continue;
    tool_calls_sent_ = true;
    delta.tool_calls.push_back(std::move(t));
  }
}

ChoiceDelta ChoiceState::consume(const EngineOutput& out, bool& stop_string_hit) {
  ChoiceDelta delta;
  stop_string_hit = false;
  if (finished_) return delta;
  if (out.prompt_logprobs) delta.prompt_logprobs = out.prompt_logprobs;
  num_cached_ = std::max(num_cached_, out.num_cached_tokens);
  num_generated_ += static_cast<int32_t>(out.new_token_ids.size());
  delta.logprobs = out.logprobs;

  std::span<const int32_t> ids(out.new_token_ids);
  if (out.finish_reason == FinishReason::kStop && out.stop_token_id && !ids.empty() &&
      ids.back() == *out.stop_token_id && !config_.include_stop_str_in_output) {
    ids = ids.first(ids.size() - 1);  // the stop token's text is not part of the output
  }
  std::string text;
  auto piece = detok_.add(ids);
  if (!piece.ok()) {
    delta.error = "detokenization failed: " + piece.status().message();
    delta.finish_reason = "error";
    finished_ = true;
    return delta;
  }
  text = std::move(piece).value();
  const bool engine_done = out.finished();
  if (engine_done) text += detok_.finish();

  StopStringMatcher::Step step = stops_.feed(text);
  if (step.matched) {
    stop_string_hit = true;
    finished_ = true;
    route_text(step.text, true, delta);
    delta.finish_reason = "stop";
    delta.stop_reason = *step.matched;
    return delta;
  }
  if (engine_done) step.text += stops_.finish();
  route_text(step.text, engine_done, delta);
  if (!engine_done) return delta;

  finished_ = true;
  if (out.finish_reason == FinishReason::kError) {
    delta.error = out.error.empty() ? std::string("the engine failed this request") : out.error;
  }
  delta.finish_reason = finish_reason_name(out.finish_reason);
  if (out.finish_reason == FinishReason::kStop && out.stop_token_id &&
      std::find(config_.stop_token_ids.begin(), config_.stop_token_ids.end(), *out.stop_token_id) !=
          config_.stop_token_ids.end()) {
    delta.stop_reason = *out.stop_token_id;
  }
  return delta;
}

}  // namespace k2::openai
