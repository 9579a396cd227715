// ModelRunner: executes the enginecore's StepPlans on one worker (vLLM V1's GPUModelRunner).
//
// It keeps, per request id, what the plans told it: the block table, every token id seen
// (prompt then outputs), the sampling parameters and the prompt length. A plan's new or
// resumed requests (blocks.replace) start their state afresh, finished and preempted ids
// are dropped. Each step runs all scheduled chunks (prefill, chunked prefill and decode
// mixed) as one varlen forward call, then samples the requests whose chunk reached their
// end, with per-request seeds so draws do not depend on the batch.
//
// prompt_logprobs (vLLM's semantics): every prompt position after the first is scored
// against the raw logits of the position before it, chunk by chunk; a step with such a
// request asks the model for every row. A chunk's last row scores the next chunk's first
// token, which the worker sees only then, so that row waits in the request's state. The
// scores travel once, with the token sampled after the last prompt chunk. A request resumed
// after it has produced output (recompute preemption) is not scored again.
//
// Multimodal prompts: a new or resumed request brings its media items (pixel_values in the
// frontend's media arena, or shipped with the plan to a worker on another node; the content
// hash, the placeholder span). A step encodes (or finds
// in the encoder cache) exactly the items its plan lists in encode_media, whole, and keeps
// their rows in the request's state, so a chunk that cuts through an image gets exactly its
// part of the rows; the text model splices them at the placeholder positions. The scheduler's
// encoder budget chooses the list; an unlisted item the chunk reaches must be held already or
// have the content of a held one (its rows are copied), else the plan is refused.
//
// Expert load (/metrics): a plan with report_expert_load makes every rank compute the tokens
// its MoE layers routed per expert since its previous report (the model's counters are
// cumulative; the runner keeps what it last reported). Expert-parallel ranks hold distinct
// experts, so they sum their tables over the group; tensor-parallel ranks each route every
// token, so rank 0's own table is already the whole count. Only rank 0 returns it. A dummy
// forward of an idle data-parallel rank (protocol::kDummyStepBit) routes no request's token:
// its counts are skipped, or one repeated token would skew the balance.
//
// Holds references to the model and the KV cache (the caller owns both and keeps them
// alive). Not thread-safe: the worker's one loop thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "enginecore/protocol/media_pixels.h"
#include "enginecore/protocol/messages.h"
#include "shm/opened_arenas.h"
#include "shm/status.h"
#include "workers/kv_cache.h"
#include "workers/models/deepseek_v3.h"
#include "workers/sampling/sampler.h"
#include "workers/vision/encoder_cache.h"
#include "workers/vision/moonvit.h"
#include "workers/vision/vision_encoder.h"

namespace k2 {

class ModelRunner {
 public:
  ModelRunner(const DeepSeekV3& model, LatentKvCache& cache, uint32_t worker_rank = 0);
  // With a vision tower (may be null: media requests then fail) and an encoder cache (may be
  // null: every item is encoded when reached); both must outlive the runner.
  // With tensor parallelism, `comm` is the group the tower runs over (--mm-encoder-tp-mode:
  // `vision` sharded over it for kWeights, whole for kData); every rank must get the same plans.
  void set_vision(const MoonVit* vision, EncoderCache* encoder_cache, EncoderTpMode mode = EncoderTpMode::kWeights,
                  Communicator* comm = nullptr) {
    vision_ = vision;
    encoder_cache_ = encoder_cache;
    comm_ = comm;
    encoder_.reset();
    if (vision != nullptr) encoder_.emplace(*vision, mode, comm);
  }
  // The tensor/expert-parallel group of this worker (null: alone), for the expert-load sum;
  // must outlive the runner.
  void set_group(Communicator* group) { group_ = group; }
  // Media items encoded by the tower (not served from the cache), cumulative.
  uint64_t num_encoded() const { return num_encoded_; }

  // Runs one plan. An inconsistent plan (unknown request, block table too short, token
  // history that does not line up) or a failed forward is an error value; the per-request
  // state may then be partly updated, so the engine treats it as fatal.
  // `shipped`: the pixels that came with the plan, for a worker on another node than the
  // frontend (it reads media only from these); null: read them in the frontend's media arena.
  Result<protocol::StepResult> execute(const protocol::StepPlan& plan,
                                       const std::vector<protocol::MediaPixels>* shipped = nullptr);

  size_t num_requests() const { return requests_.size(); }

 private:
  struct RequestState {
    std::vector<int32_t> block_table;
    std::vector<int32_t> tokens;  // prompt then outputs, as far as the plans have shown them
    uint32_t num_prompt_tokens = 0;
    SamplingParams params;
    int64_t prompt_logprobs = -1;  // top-n per prompt position; -1: none asked or all scored
    protocol::TokenLogprobs prompt_scores;                     // positions 1.. scored so far
    std::vector<float> pending_row;                            // scores the next chunk's first token
    std::optional<protocol::TokenLogprobs> prompt_scores_done; // complete, not yet returned
    std::vector<protocol::MediaItem> media;  // the prompt's items, in order
    std::vector<bool> media_ready;           // item i's rows are in media_rows
    std::vector<int64_t> media_first_row;    // item i's first row in media_rows; [size] = total
    std::vector<float> media_rows;           // [placeholders, hidden] in prompt order
  };

  Status apply(const protocol::StepPlan& plan, const protocol::ScheduledRequest& r);
  void score_prompt_chunk(const protocol::ScheduledRequest& r, RequestState& state, const Logits& logits,
                          int64_t first_row);
  void score_row(RequestState& state, std::span<const float> row, int32_t token);
  protocol::SampledRequest sample(const protocol::ScheduledRequest& r, RequestState& state, std::span<float> logits);

  // Encodes (or fetches from the cache) the items r lists, checks that the chunk's other items
  // are held, and returns the chunk's media rows; nullopt for a request without media or a
  // chunk past its prompt.
  Result<std::optional<std::span<const float>>> media_for_chunk(const protocol::ScheduledRequest& r,
                                                                 RequestState& state,
                                                                 const std::vector<protocol::MediaPixels>* shipped);
  // Encodes (or copies from the cache) the listed items of the request, none of them held yet,
  // as one batch through the encoder.
  Status encode_items(RequestState& state, const std::vector<size_t>& items,
                      const std::vector<protocol::MediaPixels>* shipped);
  Status check_placeholders(const std::string& id, const RequestState& state, size_t item, int32_t placeholder) const;
  // Fills item i's rows from a held item with the same content; an error when there is none.
  Status copy_twin_rows(RequestState& state, size_t item);
  Result<std::span<const float>> pixels_of(const protocol::MediaItem& item,
                                           const std::vector<protocol::MediaPixels>* shipped);
  // The tokens routed per (MoE layer, global expert) since the previous call, summed over the
  // group when it is expert parallel (every rank of the group must call it for the same
  // plan); nullopt on ranks other than 0 and for models without MoE layers.
  Result<std::optional<protocol::ExpertLoad>> expert_load_since_last_report();

  const DeepSeekV3& model_;
  const MoonVit* vision_ = nullptr;
  std::optional<VisionEncoder> encoder_;  // over vision_, when there is one
  Communicator* comm_ = nullptr;         // the tensor-parallel group, if any
  Communicator* group_ = nullptr;        // for the expert-load sum (set_group)
  std::vector<std::vector<uint64_t>> reported_load_;  // [moe layer][local expert], last report
  EncoderCache* encoder_cache_ = nullptr;
  OpenedArenas media_arenas_;  // the frontends' media arenas
  uint64_t num_encoded_ = 0;
  LatentKvCache& cache_;
  uint32_t rank_;
  std::unordered_map<std::string, RequestState> requests_;
  Sampler sampler_;
};

// The sampler's parameters for a request's wire parameters (seed must be set by the engine;
// an unset seed samples as seed 0).
SamplingParams to_sampler_params(const protocol::SamplingParams& params);

}  // namespace k2
