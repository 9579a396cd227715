// FakeExecutor: a stand-in for the workers in scheduler tests. It keeps what a real worker
// keeps (per request: block table and tokens, rebuilt from the plans' diffs) and a fake KV
// cache in which every slot holds a fingerprint of the whole prefix up to its token. For each
// scheduled token it checks that the KV of every earlier position is the right one (so a
// wrong prefix-cache hit, a stale block or a block written while shared fails the test),
// then "samples" a deterministic function of the request's context.
//
// Media (set_media): a placeholder position's fingerprint also covers the item's content hash
// and the position inside the item, so a block shared across different pictures fails the
// KV check. Like the real worker, it takes the items a plan lists (each at most once per
// request lifetime on the workers), from an encoder cache shared by requests (unbounded
// here: an item is encoded the first time its content is listed), and fails a chunk that
// reaches an item neither listed nor held nor a same-content copy of a held one.
//
// Test-only; reports problems as GoogleTest failures. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "enginecore/scheduler.h"

namespace k2::engine::testing {

// The "model": the next token given the request id and all its tokens so far.
using SampleFn = std::function<TokenId(const std::string& request_id, std::span<const TokenId> context)>;

// A token in [first_token, first_token + num_values) that depends on the whole context.
TokenId hash_next_token(std::span<const TokenId> context, TokenId first_token, int32_t num_values);

// Generates what a request must produce when served alone by a correct engine.
std::vector<TokenId> reference_outputs(const std::string& request_id, std::span<const TokenId> prompt,
                                       const StopParams& stop, int32_t max_model_len, const SampleFn& sample);

class FakeExecutor {
 public:
  FakeExecutor(const KvCacheConfig& kv_config, SampleFn sample);

  // Runs one plan and returns what workers would return.
  StepResult execute(const SchedulerOutput& plan);
  // The media of a request about to be added (what AddRequest brings the workers).
  void set_media(const std::string& request_id, std::vector<MediaSpan> media) { media_[request_id] = std::move(media); }

  int64_t num_tokens_computed() const { return num_tokens_computed_; }
  int64_t num_prefix_tokens_verified() const { return num_prefix_tokens_verified_; }
  // Items listed in plans (taken by a request), and those of them the cache served.
  int64_t num_media_encoded() const { return num_media_encoded_; }
  int64_t num_encoder_cache_hits() const { return num_encoder_cache_hits_; }
  // Encoder tokens and items the last plan really encoded (cache misses), over all requests.
  int32_t last_step_encoder_tokens() const { return last_step_encoder_tokens_; }
  int32_t last_step_items_encoded() const { return last_step_items_encoded_; }

 private:
  struct WorkerRequest {
    std::vector<BlockId> block_table;
    std::vector<TokenId> tokens;
    std::vector<uint64_t> fingerprints;  // fingerprint of tokens[0..i]
    int32_t num_computed = 0;
    const std::vector<MediaSpan>* media = nullptr;
    std::vector<bool> encoded;  // media item i's encoder output is held
  };

  // Extends w.fingerprints by the token at the next position.
  void push_fingerprint(WorkerRequest& w, TokenId token) const;
  void encode_media(const std::string& id, WorkerRequest& w, const ScheduledRequest& s);

  void apply_plan_state(const SchedulerOutput& plan);
  size_t slot(const WorkerRequest& w, int32_t position) const;
  void run_request(const std::string& id, WorkerRequest& w, const ScheduledRequest& s,
                   const std::unordered_map<BlockId, int32_t>& owners);

  int32_t block_size_;
  SampleFn sample_;
  std::vector<uint64_t> kv_;  // fingerprint per slot; 0 = never written
  std::unordered_map<std::string, WorkerRequest> state_;
  int64_t num_tokens_computed_ = 0;
  int64_t num_prefix_tokens_verified_ = 0;
  int64_t num_media_encoded_ = 0;
  int64_t num_encoder_cache_hits_ = 0;
  std::unordered_set<BlockHash, BlockHashHasher> encoder_cache_;
  int32_t last_step_encoder_tokens_ = 0;
  int32_t last_step_items_encoded_ = 0;
  std::unordered_map<std::string, std::vector<MediaSpan>> media_;
  const std::vector<MediaSpan> no_media_;
};

}  // namespace k2::engine::testing
