// EncoderBudget: how much vision-encoder work one scheduler step may ask of the workers, and
// which media items of a prompt chunk that work covers (vLLM V1's encoder compute budget:
// compute_mm_encoder_budget in v1/core/encoder_cache_manager.py and
// Scheduler._try_schedule_encoder_inputs in v1/core/sched/scheduler.py).
//
// Each step starts with `compute_budget` encoder tokens (placeholder rows). A prompt chunk
// may be scheduled only together with the items it reaches that the workers do not hold yet
// for that request; an item is encoded whole (the tower attends bidirectionally within it),
// so when the next such item does not fit the budget left, the chunk is cut just before the
// item's first placeholder (or not scheduled at all when it starts inside that item: a
// prefix-cache hit can end inside an image). As vLLM, an item whose content hash equals one
// the request already holds, or lists in the same chunk, costs nothing: the workers copy its
// rows. Across requests, an item whose content another live request holds since an earlier
// step also costs nothing: the workers find its rows in their encoder cache (vLLM's
// EncoderCacheManager.check_and_update_cache, keyed by mm_hash). It is still listed for the
// request, since each request's worker state needs its own rows. vLLM raises the budget to
// the model's largest item so that every item fits a fresh step; when that size is unknown
// here, an item larger than the whole budget is still taken as the first encoder work of a
// step, so a prompt never waits forever.
//
// Admission (vLLM's input processor check): an item with more placeholder tokens than the
// encoder cache holds is refused, for that request only. The cache size is vLLM's
// max(encoder_cache_size or the compute budget, largest item) when either of those sizes
// is given; with neither, nothing bounds an item and none is refused.
//
// The scheduler's view of the workers' encoder cache is an estimate: it counts an item as
// cached while some live request holds it, and the workers bound their cache by bytes (LRU,
// --mm-processor-cache-gb), so an evicted item is encoded again at no cost to the budget
// (only to the step's time). Not modelled: vLLM's per-step check of free encoder-cache
// space (the workers keep a request's encoder rows for its lifetime).
//
// A value type owned by the Scheduler; changes only Request::media_encoded(), and counts
// the content hashes those flags hold. Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "enginecore/block_pool.h"
#include "enginecore/request_state.h"
#include "shm/status.h"

namespace k2::engine {

struct EncoderBudgetConfig {
  // vLLM's max_num_encoder_input_tokens: encoder tokens per step; 0 = max_num_batched_tokens.
  int32_t max_num_encoder_input_tokens = 0;
  // vLLM's encoder_cache_size, in encoder tokens; 0 = the compute budget when
  // max_tokens_per_mm_item is known, else no admission limit.
  int32_t encoder_cache_size = 0;
  // The model's largest media item in tokens (from its processor limits); both sizes are
  // raised to it, as vLLM does. 0 = unknown.
  int32_t max_tokens_per_mm_item = 0;
  // The workers keep an encoder cache shared by requests (off when --mm-processor-cache-gb
  // is 0): items another live request holds cost nothing.
  bool shared_cache = true;
};

// What the budget allows of one request's chunk [start, start + num_new_tokens).
struct EncoderPlan {
  int32_t num_new_tokens = 0;      // the chunk, possibly cut before an item that did not fit
  std::vector<int32_t> encode;     // media indices listed for the workers (encoded, or found in their cache)
  std::vector<int32_t> covered;    // `encode` plus the same-content copies the chunk reaches
  int32_t num_encoder_tokens = 0;  // what `encode` costs: items other requests hold are free
};

class EncoderBudget {
 public:
  static Result<EncoderBudget> create(const EncoderBudgetConfig& config, int32_t max_num_batched_tokens);

  int32_t compute_budget() const { return compute_budget_; }
  int32_t cache_size() const { return cache_size_; }
  // Refuses an item larger than the encoder cache.
  Status check_media(const std::string& request_id, std::span<const MediaSpan> media) const;

  void begin_step();
  int32_t used() const { return used_; }
  // Decides, without changing anything, which items a chunk needs and how far it may go.
  EncoderPlan plan(const Request& request, int32_t start, int32_t num_new_tokens) const;
  // Charges the plan and marks its items as held by the workers for `request`.
  void commit(Request& request, const EncoderPlan& plan);
  // Gives back what a pick of this step cost (it was preempted before the step ran).
  void refund(int32_t num_encoder_tokens) { used_ -= num_encoder_tokens; }
  // The request leaves the workers (preempted, finished, aborted): it holds no items now.
  void release(Request& request);
  // Live requests holding an item with this content (for the invariant checks).
  int32_t num_holders(const BlockHash& hash) const;
  size_t num_held_hashes() const { return holders_.size(); }

 private:
  EncoderBudget(int32_t compute_budget, int32_t cache_size, bool shared_cache)
      : compute_budget_(compute_budget), cache_size_(cache_size), shared_cache_(shared_cache) {}
  bool fits(int32_t num_tokens, int32_t planned) const;
  // Another live request held this content before the step began.
  bool cached_elsewhere(const BlockHash& hash) const;
  void hold(const BlockHash& hash);

  int32_t compute_budget_;
  int32_t cache_size_;
  bool shared_cache_ = true;
  int32_t used_ = 0;  // by the picks of the step being planned
  std::unordered_map<BlockHash, int32_t, BlockHashHasher> holders_;  // items marked encoded, by content
  // Contents first held in this step: another request reaching them in the same step pays,
  // since the holder may yet be preempted before the step runs.
  std::unordered_set<BlockHash, BlockHashHasher> new_this_step_;
};

}  // namespace k2::engine
