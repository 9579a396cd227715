#include "workers/vision/vision_encoder.h"

#include <algorithm>
#include <numeric>

#include "workers/parallel/all_gather.h"

namespace k2 {

Result<EncoderTpMode> parse_encoder_tp_mode(std::string_view name) {
  if (name == "data") return EncoderTpMode::kData;
  if (name == "weights") return EncoderTpMode::kWeights;
  return invalid_argument("--mm-encoder-tp-mode must be data or weights, got '" + std::string(name) + "'");
}

const char* encoder_tp_mode_name(EncoderTpMode mode) { return mode == EncoderTpMode::kData ? "data" : "weights"; }

std::vector<int> assign_media(const VisionConfig& config, std::span<const MediaGrid> grids, int ranks) {
  const double d = static_cast<double>(config.hidden_size), mlp = static_cast<double>(config.intermediate_size);
  std::vector<double> cost(grids.size());
  for (size_t i = 0; i < grids.size(); ++i) {
    const double n = static_cast<double>(grids[i].patches());
    cost[i] = n * (4.0 * d * d + 2.0 * d * mlp) + 2.0 * n * n * d;  // per layer: linear + attention MACs
  }
  std::vector<size_t> order(grids.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost[a] > cost[b]; });
  std::vector<double> load(static_cast<size_t>(std::max(ranks, 1)), 0.0);
  std::vector<int> owner(grids.size(), 0);
  for (size_t i : order) {
    const size_t r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = static_cast<int>(r);
    load[r] += cost[i];
  }
  return owner;
}

VisionEncoder::VisionEncoder(const MoonVit& vit, EncoderTpMode mode, Communicator* comm)
    : vit_(vit), mode_(mode), comm_(comm) {}

Status VisionEncoder::check(std::span<const MediaInput> items, std::vector<int64_t>& tokens) const {
  const int ranks = comm_ != nullptr ? comm_->size() : 1;
  if (mode_ == EncoderTpMode::kData && vit_.shard().sharded())
    return invalid_argument("--mm-encoder-tp-mode data needs the whole vision tower on every rank, not a shard");
  if (mode_ == EncoderTpMode::kWeights && vit_.shard().size != ranks)
    return invalid_argument("--mm-encoder-tp-mode weights needs the vision tower sharded over the " +
                            std::to_string(ranks) + " ranks (" + vit_.shard().describe() + ")");
  tokens.clear();
  for (size_t i = 0; i < items.size(); ++i) {
    const MediaInput& item = items[i];
    Result<int64_t> t = vit_.num_tokens(item.grid);
    if (!t.ok()) return t.status().with_context("media item " + std::to_string(i));
    if (static_cast<int64_t>(item.pixel_values.size()) != item.grid.patches() * vit_.config().patch_values())
      return invalid_argument("media item " + std::to_string(i) + ": pixel_values do not match its grid");
    tokens.push_back(*t);
  }
  return Status::ok_status();
}

Result<std::vector<MediaEmbedding>> VisionEncoder::encode(std::span<const MediaInput> items,
                                                          std::vector<VisionTrace>* traces) {
  std::vector<int64_t> tokens;
  K2_RETURN_IF_ERROR(check(items, tokens));
  if (traces != nullptr) traces->assign(items.size(), VisionTrace{});
  if (mode_ == EncoderTpMode::kData && comm_ != nullptr && comm_->size() > 1)
    return encode_data_parallel(items, tokens, traces);
  std::vector<MediaEmbedding> out;
  for (size_t i = 0; i < items.size(); ++i) {
    K2_ASSIGN_OR_RETURN(MediaEmbedding e,
                        vit_.encode(items[i].grid, items[i].pixel_values, traces ? &(*traces)[i] : nullptr));
    ++encoded_locally_;
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<MediaEmbedding>> VisionEncoder::encode_data_parallel(std::span<const MediaInput> items,
                                                                        const std::vector<int64_t>& tokens,
                                                                        std::vector<VisionTrace>* traces) {
  std::vector<MediaGrid> grids;
  for (const MediaInput& item : items) grids.push_back(item.grid);
  const std::vector<int> owner = assign_media(vit_.config(), grids, comm_->size());
  const int64_t width = vit_.config().text_hidden_size;
  std::vector<size_t> offsets = {0};
  for (int64_t t : tokens) offsets.push_back(offsets.back() + static_cast<size_t>(t * width));
  std::vector<float> all(offsets.back());
  Status failed;
  for (size_t i = 0; i < items.size(); ++i) {
    if (owner[i] != comm_->rank()) continue;
    Result<MediaEmbedding> e = vit_.encode(items[i].grid, items[i].pixel_values, traces ? &(*traces)[i] : nullptr);
    if (!e.ok()) {
      failed = e.status();
      continue;  // still joins the collectives below, so no rank is left waiting
    }
    ++encoded_locally_;
    std::copy(e->data.begin(), e->data.end(), all.begin() + static_cast<std::ptrdiff_t>(offsets[i]));
  }
  K2_RETURN_IF_ERROR(all_gather_segments(*comm_, all, offsets, owner));
  float failures = failed.ok() ? 0.0f : 1.0f;
  K2_RETURN_IF_ERROR(comm_->all_reduce_sum(std::span<float>(&failures, 1)));
  K2_RETURN_IF_ERROR(failed);
  if (failures > 0.0f) return internal_error("another rank failed to encode its share of the media items");
  std::vector<MediaEmbedding> out;
  for (size_t i = 0; i < items.size(); ++i) {
    MediaEmbedding e{.tokens = tokens[i], .width = width, .data = {}};
    e.data.assign(all.begin() + static_cast<std::ptrdiff_t>(offsets[i]),
                  all.begin() + static_cast<std::ptrdiff_t>(offsets[i + 1]));
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace k2
