// The frontend's view of the engine: submit a tokenized request, receive its outputs.
//
// The OpenAI layer programs only against EngineClient. The real implementation (the
// ZeroMQ client to the enginecore processes) lives with the lead; FakeEngineClient
// (fake_engine_client.h) drives the whole HTTP stack in tests without a model.
//
// Division of work (as vLLM V1): the engine applies the stop checks that need token ids
// (EOS / stop_token_ids / ignore_eos / min_tokens / max_tokens / max_model_len) and samples;
// the frontend detokenizes, matches stop strings, parses reasoning and tool calls and turns
// logprob ids into strings.
//
// Threading contract for implementations:
//  - add_request, abort, healthy and stats may be called from any thread at any time.
//  - on_output is called from engine-owned threads, never concurrently for one request,
//    in order. Every accepted request gets exactly one call with
//    finish_reason != kNone, and none after it. On abort the final call has kAbort (unless
//    the request had already finished); when the engine dies every in-flight request gets
//    a final call with kError and a message, and healthy() turns false.
//  - on_output must be cheap and must not block: the frontend only queues the output and
//    wakes an HTTP thread. It may call abort() for the same request.
//  - add_request that returns an error never calls on_output.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::protocol {
struct ExpertLoad;
}

namespace k2::openai {

// vLLM's SamplingParams, the fields the engine uses (stop strings stay in the frontend).
struct SamplingParams {
  int32_t n = 1;  // always 1 per engine request; n > 1 is n requests (see GenerateRequest)
  double temperature = 1.0;
  double top_p = 1.0;
  int32_t top_k = 0;  // 0 or -1: disabled
  double min_p = 0.0;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  double repetition_penalty = 1.0;
  std::optional<int64_t> seed;
  int32_t max_tokens = 16;
  int32_t min_tokens = 0;
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // in addition to the model's EOS ids
  std::map<int32_t, double> logit_bias;
  std::optional<std::vector<int32_t>> allowed_token_ids;
  std::optional<int32_t> logprobs;         // top-k count per generated token (0: sampled only)
  std::optional<int32_t> prompt_logprobs;  // top-k count per prompt token
};

// Constrained decoding (tool_choice required/named, response_format), compiled and applied
// by the engine.
struct StructuredOutputRequest {
  std::string json_schema;  // JSON text, key order kept; "" with json_object
  bool json_object = false;
  int32_t reasoning_end_token_id = -1;  // constrain only after this token; -1: from the start
};

// One preprocessed media item of a prompt (multimodal/media_loader.h made it): pixel_values
// shared read-only among the n engine requests of one prompt.
struct MediaInput {
  std::shared_ptr<const std::vector<float>> pixel_values;  // [patches, 3, patch, patch]
  int64_t grid_t = 0, grid_h = 0, grid_w = 0;
  uint64_t hash_low = 0, hash_high = 0;  // encoder-cache key
  int64_t offset = 0;                    // first placeholder token in prompt_ids
  int64_t num_tokens = 0;                // placeholder tokens
};

struct GenerateRequest {
  std::string request_id;  // unique among in-flight requests
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;
  std::optional<std::string> cache_salt;
  // The n > 1 samples of one prompt carry one group id: the engine computes the prompt once
  // and shares its KV blocks among them.
  std::optional<std::string> group_id;
  std::optional<StructuredOutputRequest> structured;
  int32_t priority = 0;
  std::vector<MediaInput> media;  // in prompt order
};

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0;
  int32_t rank = 1;  // 1-based rank in the distribution
};

// Logprobs of one position: the token actually there (sampled, or the prompt's) and the
// top-k alternatives, best first.
struct PositionLogprobs {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
};

enum class FinishReason { kNone, kStop, kLength, kAbort, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "abort", "error", ""

struct EngineOutput {
  std::vector<int32_t> new_token_ids;
  std::vector<PositionLogprobs> logprobs;  // one per new token when logprobs were asked for
  // Present once (in the first output) when prompt_logprobs were asked for: one entry per
  // prompt token after the first.
  std::optional<std::vector<PositionLogprobs>> prompt_logprobs;
  FinishReason finish_reason = FinishReason::kNone;
  // With kStop: the stop token (EOS or one of stop_token_ids) that ended it; it is the
  // last of new_token_ids.
  std::optional<int32_t> stop_token_id;
  int32_t num_cached_tokens = 0;  // prompt tokens served from the prefix cache
  std::string error;              // with kError
  // Engine-clock seconds for vLLM's phase histograms (0 = not in this output): when the
  // engine queued the request, when it first scheduled it, and this output's step.
  double queued_time = 0;
  double scheduled_time = 0;
  double engine_time = 0;
  bool finished() const { return finish_reason != FinishReason::kNone; }
};

// Tokens routed to each routed expert of each MoE layer since the engine(s) started (the
// expert-load balance in /metrics, expert_metrics.h). Immutable once published: snapshots of
// EngineStats share one table instead of copying a Kimi-K2-sized one (60 x 384) per read.
struct ExpertLoadTotals {
  int64_t num_experts = 0;
  std::vector<int64_t> layers;   // the model layer of each row, ascending
  std::vector<uint64_t> tokens;  // [layers.size() x num_experts], row-major
};

struct EngineStats {
  int64_t num_running = 0;
  int64_t num_waiting = 0;
  double kv_cache_usage = 0;  // 0..1
  uint64_t prefix_cache_queries = 0;  // tokens queried, cumulative
  uint64_t prefix_cache_hits = 0;     // tokens hit, cumulative
  uint64_t num_preemptions = 0;       // cumulative
  uint64_t mm_cache_queries = 0;      // encoder-cache lookups of media items, cumulative
  uint64_t mm_cache_hits = 0;         // of which found, cumulative
  std::shared_ptr<const ExpertLoadTotals> expert_load;  // null until an engine reported one
};

// How a client folds an engine's published stats into its EngineStats (defined in
// expert_metrics.cpp): an engine sends its expert-load totals only when they changed, so
// without a table in this message the last one stands.
std::shared_ptr<const ExpertLoadTotals> expert_load_after(std::shared_ptr<const ExpertLoadTotals> previous,
                                                          const std::optional<protocol::ExpertLoad>& published);
// Data-parallel ranks route different tokens: the deployment's totals are their sum. A null
// side, or one of another shape (never in one deployment), leaves the other.
std::shared_ptr<const ExpertLoadTotals> sum_expert_load(const std::shared_ptr<const ExpertLoadTotals>& a,
                                                        const std::shared_ptr<const ExpertLoadTotals>& b);

using OutputCallback = std::function<void(EngineOutput)>;

class EngineClient {
 public:
  virtual ~EngineClient();
  virtual Status add_request(GenerateRequest request, OutputCallback on_output) = 0;
  virtual void abort(const std::string& request_id) = 0;
  virtual bool healthy() const = 0;
  virtual EngineStats stats() const = 0;
};

}  // namespace k2::openai
