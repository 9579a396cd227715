// golden-check on a multimodal golden set (tests/data/models/tiny-k25-vision: golden.json
// format "tiny-kimi-vision-golden-v1", README §10): for every media item, preprocessing
// (resized frames, grid, pixel_values) with the frontend's library, then the vision tower's
// intermediate tensors and projector output; for every prompt, the language model
// teacher-forced on prompt + golden greedy tokens with the encoded rows over the
// placeholders (one-shot and chunked prefill), its logits and greedy tokens. Prints the same
// lines as the text check (golden_report.h).
//
// With tensor_parallel_size N > 1 the N ranks run as threads over one in-process group: the
// language model sharded as for the text sets, the vision tower per mm_encoder_tp_mode
// (weights: sharded; data: whole on every rank, the items dealt out and gathered). Rank 0's
// outputs (the tower's intermediate tensors from the rank that encoded the item) are checked
// against the goldens; every other rank's projector rows and logits must equal rank 0's bit
// for bit.
//
// Free functions; each call owns the models it loads. Thread-compatible.
#pragma once

#include <filesystem>
#include <ostream>

#include "shm/status.h"
#include "workers/golden_check.h"

namespace k2 {

// True when <dir>/golden.json is in the vision format (it lists `media` items and
// `prompts`), false for the text format (`cases`); unreadable JSON is an error value.
Result<bool> is_vision_golden_set(const std::filesystem::path& dir);

// True when every check passed. Only the float32 path is checked (README §10.4: a bf16
// vision path is not comparable at these tolerances), so a fast-path `options.layouts` is
// kUnimplemented.
Result<bool> run_vision_golden_check(const std::filesystem::path& dir, std::ostream& out,
                                     const GoldenCheckOptions& options);

}  // namespace k2
