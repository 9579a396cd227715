// The JSON shapes of GenerationJob: chat.completion(.chunk), text_completion, usage.
#include <algorithm>
#include <map>

#include "frontend/http/sse.h"
#include "frontend/openai/generation_job.h"

namespace k2::openai {

namespace {

using ojson = nlohmann::ordered_json;

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

void put_reasoning(ojson& obj, const std::optional<std::string>& reasoning, ReasoningField field) {
  const ojson v = reasoning ? ojson(*reasoning) : ojson(nullptr);
  if (field != ReasoningField::kReasoning) obj["reasoning_content"] = v;
  if (field != ReasoningField::kReasoningContent) obj["reasoning"] = v;
}

ojson tool_delta_json(const parsers::ToolCallDelta& t) {
  ojson j = {{"index", t.index}};
  ojson fn = ojson::object();
  if (t.id) {
    j["id"] = *t.id;
    j["type"] = "function";
  }
  if (t.name) fn["name"] = *t.name;
  fn["arguments"] = t.arguments;
  j["function"] = std::move(fn);
  return j;
}

}  // namespace

ojson GenerationJob::chunk_base() const {
  ojson j;
  j["id"] = spec_.response_id;
  j["object"] = spec_.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion";
  j["created"] = spec_.created;
  j["model"] = spec_.model_name;
  return j;
}

ojson GenerationJob::usage_json() const {
  int64_t prompt = 0, completion = 0, cached = 0;
  std::map<int32_t, std::pair<int64_t, int64_t>> per_prompt;  // prompt index -> (tokens, cached)
  for (size_t i = 0; i < runs_.size(); ++i) {
    auto& p = per_prompt[spec_.choices[i].prompt_index];
    p.first = static_cast<int64_t>(spec_.choices[i].prompt_ids.size());
    p.second = std::max<int64_t>(p.second, runs_[i].state->num_cached_tokens());
    completion += runs_[i].state->num_generated();
  }
  for (const auto& [_, p] : per_prompt) {
    prompt += p.first;
    cached += p.second;
  }
  return {{"prompt_tokens", prompt},
          {"total_tokens", prompt + completion},
          {"completion_tokens", completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

void GenerationJob::render_stream_delta(size_t choice, ChoiceDelta& d, std::string& out) {
  ChoiceRun& r = runs_[choice];
  const JobChoice& spec_choice = spec_.choices[choice];
  ojson c = {{"index", choice}};
  if (spec_.kind == ApiKind::kChat) {
    if (!r.role_sent) {
      r.role_sent = true;
      ojson role = chunk_base();
      role["choices"] = ojson::array({{{"index", choice},
                                       {"delta", {{"role", "assistant"}, {"content", ""}}},
                                       {"logprobs", nullptr},
                                       {"finish_reason", nullptr}}});
      if (spec_.include_usage) role["usage"] = nullptr;
      http::append_sse_event(out, dump(role));
    }
    if (!r.echo_sent) {
      r.echo_sent = true;
      d.content = spec_choice.echo_text + d.content;
    }
    ojson delta = ojson::object();
    if (!d.content.empty()) delta["content"] = d.content;
    if (!d.reasoning.empty() && spec_.include_reasoning) put_reasoning(delta, d.reasoning, spec_.reasoning_field);
    if (!d.tool_calls.empty()) {
      ojson calls = ojson::array();
      for (const auto& t : d.tool_calls) calls.push_back(tool_delta_json(t));
      delta["tool_calls"] = std::move(calls);
    }
    const bool has_logprobs = spec_.logprobs && !d.logprobs.empty();
    if (delta.empty() && !has_logprobs && !d.finish_reason) return;
    c["delta"] = std::move(delta);
    c["logprobs"] = has_logprobs ? ojson{{"content", chat_logprob_content(token_strings_, d.logprobs, *spec_.logprobs)},
                                         {"refusal", nullptr}}
                                 : ojson(nullptr);
    std::string reason = d.finish_reason.value_or("");
    if (d.finish_reason && r.state->tool_calls_sent() && spec_.parser->tool_calls_finish_reason()) {
      reason = "tool_calls";
    }
    c["finish_reason"] = d.finish_reason ? ojson(reason) : ojson(nullptr);
  } else {
    std::string text = d.content;
    if (!r.echo_sent) {
      r.echo_sent = true;
      text = spec_choice.echo_text + text;
      if (spec_.echo_logprobs && r.completion_logprobs && !spec_choice.prompt_ids.empty()) {
        r.completion_logprobs->append_unscored(token_strings_, spec_choice.prompt_ids[0]);
        if (r.prompt_logprobs) r.completion_logprobs->append(token_strings_, *r.prompt_logprobs);
      }
    }
    if (r.completion_logprobs) r.completion_logprobs->append(token_strings_, d.logprobs);
    const bool has_logprobs = r.completion_logprobs && !r.completion_logprobs->empty();
    if (text.empty() && !has_logprobs && !d.finish_reason) return;
    c["text"] = std::move(text);
    c["logprobs"] = has_logprobs ? r.completion_logprobs->to_json() : ojson(nullptr);
    if (r.completion_logprobs) r.completion_logprobs->clear();
    c["finish_reason"] = d.finish_reason ? ojson(*d.finish_reason) : ojson(nullptr);
  }
  if (d.finish_reason) c["stop_reason"] = d.stop_reason;
  ojson chunk = chunk_base();
  chunk["choices"] = ojson::array({std::move(c)});
  if (spec_.continuous_usage_stats) chunk["usage"] = usage_json();
  else if (spec_.include_usage) chunk["usage"] = nullptr;
  http::append_sse_event(out, dump(chunk));
}

ojson GenerationJob::chat_choice_json(size_t choice) {
  ChoiceRun& r = runs_[choice];
  const std::string& text = r.state->text();
  std::optional<std::string> content = text, reasoning;
  std::vector<parsers::ToolCall> calls;
  if (spec_.parser) {
    parsers::ParsedOutput p = parsers::parse_output(text, *spec_.parser);
    content = p.content;
    reasoning = p.reasoning;
    calls = std::move(p.tool_calls);
    if (!spec_.parallel_tool_calls && calls.size() > 1) calls.resize(1);
  }
  const std::string& echo = spec_.choices[choice].echo_text;
  if (!echo.empty()) content = echo + content.value_or("");
  ojson msg = {{"role", "assistant"}, {"content", content ? ojson(*content) : ojson(nullptr)}, {"refusal", nullptr}};
  ojson tool_calls = ojson::array();
  for (const auto& t : calls) {
    tool_calls.push_back(
        {{"id", t.id}, {"type", "function"}, {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
  }
  msg["tool_calls"] = std::move(tool_calls);
  if (spec_.parser && spec_.parser->parse_reasoning && spec_.include_reasoning) {
    put_reasoning(msg, reasoning, spec_.reasoning_field);
  }
  ojson c = {{"index", choice}, {"message", std::move(msg)}};
  c["logprobs"] = spec_.logprobs ? ojson{{"content", chat_logprob_content(token_strings_, r.logprobs, *spec_.logprobs)},
                                         {"refusal", nullptr}}
                                 : ojson(nullptr);
  const bool tool_calls_finish = !calls.empty() && spec_.parser->tool_calls_finish_reason();
  c["finish_reason"] = tool_calls_finish ? std::string("tool_calls") : r.finish_reason;
  c["stop_reason"] = r.stop_reason;
  return c;
}

ojson GenerationJob::completion_choice_json(size_t choice) {
  ChoiceRun& r = runs_[choice];
  const JobChoice& sc = spec_.choices[choice];
  ojson c = {{"index", choice}, {"text", sc.echo_text + r.state->text()}};
  if (spec_.logprobs) {
    CompletionLogprobs lp(*spec_.logprobs);
    if (spec_.echo_logprobs && !sc.prompt_ids.empty()) {
      lp.append_unscored(token_strings_, sc.prompt_ids[0]);
      if (r.prompt_logprobs) lp.append(token_strings_, *r.prompt_logprobs);
    }
    lp.append(token_strings_, r.logprobs);
    c["logprobs"] = lp.to_json();
  } else {
    c["logprobs"] = nullptr;
  }
  c["finish_reason"] = r.finish_reason;
  c["stop_reason"] = r.stop_reason;
  if (spec_.prompt_logprobs) {
    c["prompt_logprobs"] = r.prompt_logprobs ? prompt_logprobs_json(token_strings_, *r.prompt_logprobs) : ojson(nullptr);
  }
  return c;
}

std::string GenerationJob::final_response_body() {
  ojson j;
  j["id"] = spec_.response_id;
  j["object"] = spec_.kind == ApiKind::kChat ? "chat.completion" : "text_completion";
  j["created"] = spec_.created;
  j["model"] = spec_.model_name;
  ojson choices = ojson::array();
  for (size_t i = 0; i < runs_.size(); ++i) {
    choices.push_back(spec_.kind == ApiKind::kChat ? chat_choice_json(i) : completion_choice_json(i));
  }
  j["choices"] = std::move(choices);
  j["usage"] = usage_json();
  if (spec_.kind == ApiKind::kChat && spec_.prompt_logprobs) {
    j["prompt_logprobs"] = runs_[0].prompt_logprobs ? prompt_logprobs_json(token_strings_, *runs_[0].prompt_logprobs)
                                                    : ojson(nullptr);
  }
  return dump(j);
}

}  // namespace k2::openai
