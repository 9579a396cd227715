// VisionEncoder: a batch of media items through the vision tower on one rank of a
// tensor-parallel group, in vLLM's --mm-encoder-tp-mode:
//  - weights: the tower is sharded (MoonVit with a Shard, heads and MLP split, partial sums
//    all-reduced); every rank runs every item, in order, and gets the same rows.
//  - data: every rank holds the whole tower; the items are dealt out (assign_media: largest
//    first onto the least loaded rank), each rank encodes its share and the embeddings are
//    all-gathered, so every rank returns every item's rows. Counts need not divide: a rank
//    may get none (one image on two ranks), an item is never split.
// With one rank (or no communicator) both modes encode everything locally.
//
// Every rank must call encode() with the same items (same grids, in the same order); the
// checks that can fail (grid, pixel count) run before any collective, identically on every
// rank, so a bad item is an error on all of them rather than a hang.
//
// Holds references to the model and the communicator (the caller owns both and keeps them
// alive). Used by its rank's one thread.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shm/status.h"
#include "workers/parallel/communicator.h"
#include "workers/vision/moonvit.h"

namespace k2 {

enum class EncoderTpMode { kData, kWeights };

// "data" or "weights" (vLLM's names).
Result<EncoderTpMode> parse_encoder_tp_mode(std::string_view name);
const char* encoder_tp_mode_name(EncoderTpMode mode);

struct MediaInput {
  MediaGrid grid;
  std::span<const float> pixel_values;  // [grid.patches(), 3·patch²]
};

// The rank (in [0, ranks)) that encodes each item in data mode: items by estimated cost
// (linear layers ∝ patches, attention ∝ patches²), largest first, each onto the rank with
// the least work so far (lowest rank on ties). Deterministic: every rank computes the same.
std::vector<int> assign_media(const VisionConfig& config, std::span<const MediaGrid> grids, int ranks);

class VisionEncoder {
 public:
  // `vit` must be sharded over `comm` for kWeights and whole for kData (a mismatch is
  // reported by encode()); comm may be null for one rank.
  VisionEncoder(const MoonVit& vit, EncoderTpMode mode, Communicator* comm);

  EncoderTpMode mode() const { return mode_; }
  const MoonVit& model() const { return vit_; }

  // Every item's projected rows, in order, on every rank. With `traces`, the intermediate
  // tensors of the items this rank encoded itself (the others' stay empty in data mode).
  Result<std::vector<MediaEmbedding>> encode(std::span<const MediaInput> items,
                                             std::vector<VisionTrace>* traces = nullptr);
  // Items this rank ran through the tower, cumulative.
  uint64_t num_encoded_locally() const { return encoded_locally_; }

 private:
  Status check(std::span<const MediaInput> items, std::vector<int64_t>& tokens) const;
  Result<std::vector<MediaEmbedding>> encode_data_parallel(std::span<const MediaInput> items,
                                                           const std::vector<int64_t>& tokens,
                                                           std::vector<VisionTrace>* traces);

  const MoonVit& vit_;
  EncoderTpMode mode_;
  Communicator* comm_;
  uint64_t encoded_locally_ = 0;
};

}  // namespace k2
