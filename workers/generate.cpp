#include "workers/generate.h"

#include <algorithm>

#include "kernels/ref/dense.h"
#include "workers/kv_cache.h"
#include "workers/loader/checkpoint.h"

namespace k2 {

Result<std::unique_ptr<DeepSeekV3>> load_model(const std::filesystem::path& dir, ProgressStyle progress, bool dummy,
                                               const WeightLayouts& layouts, const Shard& shard, Communicator* comm,
                                               Communicator* expert_comm) {
  K2_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::from_dir(dir));
  WeightLayouts chosen = layouts;
  // An INT4 checkpoint runs its routed experts as INT4 unless --quantization says otherwise.
  if (!chosen.exact() && config.weight_format == WeightFormat::kInt4PackQuantized &&
      chosen.experts == chosen.dense) {
    chosen.experts = WeightLayout::kInt4;
  }
  chosen.int4_group = config.int4_group_size;
  if (dummy) return DeepSeekV3::load_dummy(config, 0, chosen, shard, comm, expert_comm);
  K2_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::open(dir, config));
  return DeepSeekV3::load(checkpoint, config, progress, chosen, shard, comm, expert_comm);
}

Result<std::vector<int32_t>> generate_greedy(const DeepSeekV3& model, const std::vector<int32_t>& prompt,
                                             const GenerateOptions& options) {
  if (prompt.empty()) return invalid_argument("the prompt is empty");
  if (options.max_tokens < 0) return invalid_argument("max tokens must not be negative");
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_tokens;
  const int64_t blocks = (total + options.block_size - 1) / options.block_size;
  K2_ASSIGN_OR_RETURN(LatentKvCache cache, LatentKvCache::create(model.config().num_hidden_layers, blocks,
                                                                 options.block_size, model.cache_row_dim()));
  BlockAllocator allocator(blocks);
  std::vector<int32_t> table;
  K2_RETURN_IF_ERROR(allocator.grow(table, total, options.block_size));

  const std::vector<int64_t>& eos = model.config().eos_token_ids;
  std::vector<int32_t> out;
  std::vector<int32_t> next = prompt;
  int64_t pos = 0;
  while (static_cast<int64_t>(out.size()) < options.max_tokens) {
    ForwardBatch batch{.sequences = {SequenceChunk{next, pos, table}}, .logit_rows = LogitRows::kLastPerSequence};
    K2_ASSIGN_OR_RETURN(Logits logits, model.forward(batch, cache));
    pos += static_cast<int64_t>(next.size());
    const int32_t token = static_cast<int32_t>(ref::argmax(logits.row(0), logits.vocab));
    out.push_back(token);
    if (options.stop_at_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) break;
    next = {token};
  }
  return out;
}

}  // namespace k2
