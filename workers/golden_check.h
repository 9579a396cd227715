// golden-check: runs a model directory against its golden outputs (golden.json +
// golden.safetensors) exactly as tests/data/models/README.md §8 prescribes, printing one
// line per check (its max |difference| and tolerance) and a last line
// "N passed, M failed". A multimodal set (golden.json in the vision format) goes to
// run_vision_golden_check (golden_vision.h).
//
// With tensor_parallel_size N > 1 the model is loaded as N shards (N in-process ranks, one
// thread each, over a ThreadGroupCommunicator, or GlooCommunicators on 127.0.0.1 with
// tp_communicator "gloo"); rank 0's outputs are checked against the
// goldens with the unsharded tolerances, and every other rank's logits must equal rank 0's
// bit for bit. A set whose shapes do not divide by N is an error value.
// With expert_parallel and data_parallel_size D > 1 the routed experts are spread over D
// groups of N ranks (vLLM's EP = TP x DP; moe_dispatch.h): D x N threads, each DP rank
// running every case (so the MoE rows of D batches travel between them), all checked as above.
//
// A free function; it owns the models, threads and caches it creates. Thread-compatible.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>

#include "shm/status.h"
#include "workers/loader/progress.h"
#include "workers/models/linear.h"

namespace k2 {

struct GoldenCheckOptions {
  ProgressStyle progress = ProgressStyle::kAuto;
  int64_t block_size = 16;  // KV cache block size (a power of two)
  // Not all float32: check the fast path (issue 6 §2 criteria against the float32 path)
  // instead of the float32 tolerances.
  WeightLayouts layouts;
  int tensor_parallel_size = 1;  // ranks of the (in-process) tensor-parallel group
  bool expert_parallel = false;  // routed experts split whole over the ranks (EP = TP x DP)
  int data_parallel_size = 1;    // with expert_parallel: DP ranks sharing the routed experts
  // What the in-process ranks talk over: "threads" (shared memory) or "gloo" (Gloo's TCP
  // transport on 127.0.0.1, the cross-node path).
  std::string tp_communicator = "threads";
  // Vision sets with tensor_parallel_size > 1: "weights" (the tower sharded) or "data" (each
  // rank encodes a share of the media items), as vLLM's --mm-encoder-tp-mode.
  std::string mm_encoder_tp_mode = "weights";
};

// True when every check passed. Unreadable or malformed inputs are error values.
Result<bool> run_golden_check(const std::filesystem::path& dir, std::ostream& out,
                              const GoldenCheckOptions& options = {});

}  // namespace k2
