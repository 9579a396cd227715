// Loading a model directory and greedy generation: the worker's single-process commands.
//
// Free functions; each call owns what it creates. Thread-compatible.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "shm/status.h"
#include "workers/loader/progress.h"
#include "workers/models/deepseek_v3.h"

namespace k2 {

// Reads <dir>/config.json and the checkpoint and builds the model, its weights kept in
// `formats` (default float32). `dummy`: only config.json is read and the weights are random
// (--load-format dummy). A sharded load (tensor/expert parallel rank) keeps only this rank's
// slices and all-reduces through `comm` (and, experts spread over data-parallel ranks,
// dispatches MoE rows through `expert_comm`; DeepSeekV3::load).
Result<std::unique_ptr<DeepSeekV3>> load_model(const std::filesystem::path& dir,
                                               ProgressStyle progress = ProgressStyle::kAuto, bool dummy = false,
                                               const WeightLayouts& layouts = {}, const Shard& shard = {},
                                               Communicator* comm = nullptr, Communicator* expert_comm = nullptr);

struct GenerateOptions {
  int64_t max_tokens = 16;
  bool stop_at_eos = true;  // stop after an eos token of the config
  int64_t block_size = 16;  // KV cache block size (a power of two)
};

// Greedy (argmax) continuation of `prompt`: prefill, then one decode step per new token.
Result<std::vector<int32_t>> generate_greedy(const DeepSeekV3& model, const std::vector<int32_t>& prompt,
                                             const GenerateOptions& options);

}  // namespace k2
