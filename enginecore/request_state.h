// Request: one generation request as the enginecore scheduler sees it (token ids, progress,
// status, token-level stop rules), plus the stop check that vLLM V1 runs in the engine.
//
// A Request owns its token ids and its KV bookkeeping (RequestBlocks); the block ids in it
// are references into the KvBlockManager's pool, which alone changes them. Requests are
// owned by the Scheduler and touched only by the engine loop's thread: not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::engine {

using TokenId = int32_t;
using BlockId = int32_t;

// A chained prefix-cache key: the hash of (parent key, one full block of token ids).
// 128 bits so that a collision (which would silently reuse another prompt's KV) is
// out of reach for any cache size.
struct BlockHash {
  uint64_t low = 0;
  uint64_t high = 0;
  friend bool operator==(const BlockHash&, const BlockHash&) = default;
};

// One media item of a prompt (an image or a video chunk) as the scheduler sees it: where its
// placeholder tokens sit and what it is. The content hash keys the prefix cache (vLLM's
// mm_hash extra keys): equal placeholder ids with different pictures are different KV.
struct MediaSpan {
  BlockHash hash;          // content hash of the preprocessed item
  int32_t offset = 0;      // first placeholder token in the prompt
  int32_t num_tokens = 0;  // placeholder tokens = encoder output rows
  int32_t end() const { return offset + num_tokens; }
  friend bool operator==(const MediaSpan&, const MediaSpan&) = default;
};

enum class RequestStatus : uint8_t {
  kWaiting,    // queued, never scheduled
  kRunning,    // holds KV blocks, scheduled every step it fits the budget
  kPreempted,  // queued again after recompute preemption: no blocks, num_computed 0
  kFinished,
};

// As vLLM's FinishReason; stop strings are matched in the frontend, not here.
enum class FinishReason : uint8_t { kNone, kStop, kLength, kAbort };

// "stop", "length", "abort" ("" for kNone): the OpenAI finish_reason strings.
const char* finish_reason_name(FinishReason reason);

// The part of SamplingParams that decides when generation ends.
struct StopParams {
  int32_t max_tokens = 16;  // >= 1; the frontend resolves OpenAI's null to its default
  int32_t min_tokens = 0;   // EOS and stop_token_ids cannot end a request before this
  bool ignore_eos = false;  // disables every eos id, not stop_token_ids
  // eos_token_ids[0] is the model's EOS (finishes with no stop token, as vLLM);
  // the rest (e.g. <|im_end|> from generation_config) act like stop_token_ids and are
  // reported as the stop token, which is how vLLM folds generation_config eos ids in.
  std::vector<TokenId> eos_token_ids;
  std::vector<TokenId> stop_token_ids;
};

// What Scheduler::add_request takes.
struct RequestParams {
  std::string request_id;
  std::vector<TokenId> prompt_token_ids;
  StopParams stop;
  int32_t priority = 0;            // priority policy only: lower value is served first
  bool skip_prefix_cache = false;  // prompt_logprobs need every prompt token computed
  // vLLM's cache_salt: only requests with the same salt share prefix-cache blocks.
  std::string cache_salt;
  // The n > 1 siblings of one prompt share a group: later siblings wait for the first one's
  // prompt blocks and then start from them, even with prefix caching off (see Scheduler).
  std::string group_id;
  // The prompt's media items, in prompt order, disjoint, inside the prompt.
  std::vector<MediaSpan> media;
};

// KV bookkeeping of one request; written only by KvBlockManager and the Scheduler.
struct RequestBlocks {
  std::vector<BlockId> block_table;    // logical block i -> physical block id
  std::vector<BlockHash> block_hashes; // chained hashes of the full blocks of all_token_ids
  int32_t num_hashed_blocks = 0;  // leading blocks of block_table registered in the cache
  int32_t num_sent_blocks = 0;    // leading blocks the workers have been told about
};

class Request {
 public:
  Request(RequestParams params, uint64_t arrival_seq);

  const std::string& id() const { return id_; }
  std::span<const TokenId> all_token_ids() const { return token_ids_; }
  std::span<const TokenId> output_token_ids() const {
    return std::span<const TokenId>(token_ids_).subspan(num_prompt_tokens_);
  }
  int32_t num_tokens() const { return static_cast<int32_t>(token_ids_.size()); }
  int32_t num_prompt_tokens() const { return num_prompt_tokens_; }
  int32_t num_output_tokens() const { return num_tokens() - num_prompt_tokens_; }

  // Tokens whose KV is in (or being written to, during a step) this request's blocks.
  int32_t num_computed_tokens() const { return num_computed_tokens_; }
  void set_num_computed_tokens(int32_t n);

  // Prompt tokens served from the prefix cache at first scheduling; -1 before that.
  int32_t num_cached_tokens() const { return num_cached_tokens_; }
  void set_num_cached_tokens(int32_t n) { num_cached_tokens_ = n; }

  RequestStatus status() const { return status_; }
  void set_status(RequestStatus status) { status_ = status; }
  bool is_finished() const { return status_ == RequestStatus::kFinished; }
  FinishReason finish_reason() const { return finish_reason_; }
  std::optional<TokenId> stop_token() const { return stop_token_; }
  void finish(FinishReason reason, std::optional<TokenId> stop_token = std::nullopt);

  const StopParams& stop_params() const { return stop_; }
  int32_t priority() const { return priority_; }
  uint64_t arrival_seq() const { return arrival_seq_; }
  bool skip_prefix_cache() const { return skip_prefix_cache_; }
  const std::string& cache_salt() const { return cache_salt_; }
  const std::string& group_id() const { return group_id_; }
  int32_t num_preemptions() const { return num_preemptions_; }
  void count_preemption() { ++num_preemptions_; }

  void append_output_token(TokenId token) { token_ids_.push_back(token); }

  const std::vector<MediaSpan>& media() const { return media_; }
  // Whether the workers hold media item i's encoder output for this request: set when a plan
  // lists it for encoding, cleared by preemption (the workers drop the request's state).
  bool media_encoded(size_t i) const { return media_encoded_[i]; }
  void set_media_encoded(size_t i) { media_encoded_[i] = true; }
  void clear_media_encoded() { media_encoded_.assign(media_.size(), false); }

  RequestBlocks& blocks() { return blocks_; }
  const RequestBlocks& blocks() const { return blocks_; }

 private:
  std::string id_;
  std::vector<TokenId> token_ids_;  // prompt followed by outputs
  int32_t num_prompt_tokens_ = 0;
  int32_t num_computed_tokens_ = 0;
  int32_t num_cached_tokens_ = -1;
  RequestStatus status_ = RequestStatus::kWaiting;
  FinishReason finish_reason_ = FinishReason::kNone;
  std::optional<TokenId> stop_token_;
  StopParams stop_;
  int32_t priority_ = 0;
  uint64_t arrival_seq_ = 0;
  bool skip_prefix_cache_ = false;
  std::string cache_salt_;
  std::string group_id_;
  int32_t num_preemptions_ = 0;
  std::vector<MediaSpan> media_;
  std::vector<bool> media_encoded_;
  RequestBlocks blocks_;
};

// The finish decision after a token was appended (vLLM's check_stop, in its order):
// before min_tokens outputs nothing but the length limits ends a request; then an eos id
// (unless ignore_eos) or a stop_token_ids member ends it with kStop; then max_tokens or
// max_model_len end it with kLength. `stop_token` gets the id vLLM reports as stop_reason.
FinishReason check_stop(const Request& request, int32_t max_model_len,
                        std::optional<TokenId>* stop_token);

// Rejects what the scheduler could never serve correctly (empty prompt, bad limits, media
// spans that are empty, overlapping, out of order or outside the prompt).
Status validate_request_params(const RequestParams& params, int32_t max_model_len);

}  // namespace k2::engine
