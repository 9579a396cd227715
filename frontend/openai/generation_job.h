// GenerationJob: one chat or completions request in flight, from engine outputs to the
// HTTP answer.
//
// It submits one engine request per choice (n per prompt; with a seed, choice i uses
// seed + i as vLLM's parallel sampling does), queues engine outputs from the engine
// thread, and turns them into OpenAI JSON on the exchange's strand:
//  - streaming: it is the exchange's StreamSource; each pull() drains the queue, merges
//    what arrived per choice (so a slow client gets fewer, larger chunks instead of an
//    ever-growing buffer) and renders SSE chunks: role delta first (chat), deltas, the
//    finish chunk, the usage chunk with "choices": [] when asked, then [DONE]. An engine
//    failure becomes `data: {"error": ...}` then [DONE].
//  - non-streaming: outputs are processed on the strand as they come; once every choice
//    ended, the whole response is built (chat output parsed with vLLM's non-streaming
//    parsers) and sent; an engine failure is a 500.
// When the client goes away every unfinished engine request is aborted; a stop string
// aborts its own engine request.
//
// Owned by shared_ptrs held by the engine callbacks and the exchange; thread-safe where
// the engine thread meets the strand (the output queue), strand-only elsewhere.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "frontend/http/exchange.h"
#include "frontend/openai/choice_state.h"
#include "frontend/openai/engine_client.h"
#include "frontend/openai/logprobs_format.h"
#include "frontend/openai/serving_metrics.h"
#include "frontend/openai/server_config.h"

namespace k2::openai {

enum class ApiKind { kChat, kCompletion };

struct JobChoice {
  int32_t prompt_index = 0;  // completions: which prompt
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;
  ChoiceConfig config;
  std::string echo_text;  // prepended to the output (echo)
  std::optional<std::string> cache_salt;
  std::optional<StructuredOutputRequest> structured;  // what the engine's grammar enforces
  std::vector<MediaInput> media;                      // the prompt's media items
};

struct JobSpec {
  ApiKind kind = ApiKind::kChat;
  std::string response_id;  // chatcmpl-... / cmpl-...
  int64_t created = 0;
  std::string model_name;
  bool stream = false;
  bool include_usage = false;
  bool continuous_usage_stats = false;
  std::vector<JobChoice> choices;
  // Chat output handling.
  std::optional<parsers::OutputParserConfig> parser;
  bool include_reasoning = true;
  ReasoningField reasoning_field = ReasoningField::kBoth;
  bool parallel_tool_calls = true;
  // Logprobs: top-k per position when set.
  std::optional<int32_t> logprobs;
  bool return_tokens_as_token_ids = false;
  bool prompt_logprobs = false;  // vLLM's prompt_logprobs in the response
  bool echo_logprobs = false;    // completions echo with logprobs: prompt positions first
  bool request_id_header = false;
};

class GenerationJob : public http::StreamSource, public std::enable_shared_from_this<GenerationJob> {
 public:
  // Submits the engine requests and answers the exchange (now or later).
  static void start(JobSpec spec, std::shared_ptr<http::Exchange> exchange, std::shared_ptr<EngineClient> engine,
                    std::shared_ptr<const Tokenizer> tokenizer, std::shared_ptr<ServingMetrics> metrics);

  http::StreamPull pull() override;

  GenerationJob(JobSpec spec, std::shared_ptr<http::Exchange> exchange, std::shared_ptr<EngineClient> engine,
                std::shared_ptr<const Tokenizer> tokenizer, std::shared_ptr<ServingMetrics> metrics);

 private:
  struct ChoiceRun {
    std::string engine_id;
    std::unique_ptr<ChoiceState> state;
    std::vector<PositionLogprobs> logprobs;                       // non-streaming: all of them
    std::optional<std::vector<PositionLogprobs>> prompt_logprobs;  // as the engine sent them
    std::string finish_reason;
    nlohmann::ordered_json stop_reason;
    bool role_sent = false, echo_sent = false, done = false, tool_calls = false;
    http::Clock::time_point last_output{};
    // Engine-clock stamps of the phases (vLLM's RequestStateStats), 0 until seen.
    double queued_time = 0, scheduled_time = 0, first_token_time = 0, last_token_time = 0;
    std::unique_ptr<CompletionLogprobs> completion_logprobs;  // streaming completions: running offsets
  };
  struct Queued {
    size_t choice;
    EngineOutput output;
  };

  void on_output(size_t choice, EngineOutput out);
  void cancel();
  // How many choices sample the prompt with this index (n, for every prompt).
  size_t siblings_of_prompt(int32_t prompt_index) const;
  // Drains the queue into per-choice deltas, in first-arrival order.
  std::vector<std::pair<size_t, ChoiceDelta>> drain_queue();
  void record_metrics(size_t choice, const EngineOutput& out, bool finished_now);
  bool all_done() const;
  void process_nonstream();
  void respond_error(int status, const std::string& message);

  // Rendering (generation_job_render.cpp).
  nlohmann::ordered_json chunk_base() const;
  nlohmann::ordered_json usage_json() const;
  void render_stream_delta(size_t choice, ChoiceDelta& delta, std::string& out);
  nlohmann::ordered_json chat_choice_json(size_t choice);
  nlohmann::ordered_json completion_choice_json(size_t choice);
  std::string final_response_body();

  JobSpec spec_;
  std::shared_ptr<http::Exchange> exchange_;
  std::shared_ptr<EngineClient> engine_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::shared_ptr<ServingMetrics> metrics_;
  TokenStrings token_strings_;
  std::vector<ChoiceRun> runs_;

  std::mutex mu_;  // guards queue_
  std::vector<Queued> queue_;
  std::atomic<bool> process_scheduled_{false};
  std::atomic<bool> cancelled_{false};

  // Strand-only state.
  std::optional<std::string> error_;
  bool finished_ = false;
};

}  // namespace k2::openai
