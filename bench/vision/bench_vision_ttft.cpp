// bench_vision_ttft: time to first token of a one-image request, in process, on a multimodal
// checkpoint (float32): decode + preprocess the image, encode it (vision tower + projector),
// prefill the prompt with the image rows over its placeholders, take the first token.
//   bench_vision_ttft MODEL_DIR IMAGE [ITERATIONS=5] [TEXT_TOKENS=32]
// Prints each stage's best time. The real-dimension encoder figure is bench_moonvit's (a
// real Kimi-K2.5 language model does not fit this kind of machine); K2_CPU_THREADS sets the
// tower's threads.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <vector>

#include "kernels/ref/dense.h"
#include "multimodal/image_decode.h"
#include "multimodal/image_preprocess.h"
#include "multimodal/media_proc_config.h"
#include "workers/generate.h"
#include "workers/kv_cache.h"
#include "workers/loader/checkpoint.h"
#include "workers/vision/moonvit.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int fail(const k2::Status& s) {
  std::fprintf(stderr, "bench_vision_ttft: %s\n", s.to_string().c_str());
  return 1;
}

struct Stages {
  double preprocess = 0, encode = 0, prefill = 0;
  double total() const { return preprocess + encode + prefill; }
};

// One request: returns its stage times and first token (or an error).
k2::Result<int64_t> run_once(const std::vector<uint8_t>& image, const k2::mm::MediaProcConfig& proc,
                             const k2::MoonVit& vit, const k2::DeepSeekV3& model, int64_t text_tokens, Stages& t) {
  auto t0 = Clock::now();
  K2_ASSIGN_OR_RETURN(k2::mm::RgbImage rgb, k2::mm::decode_image(image, k2::mm::DecodeLimits{}, k2::mm::AlphaPolicy::kDrop));
  K2_ASSIGN_OR_RETURN(k2::mm::PreprocessedMedia pre, k2::mm::preprocess_image(rgb, proc));
  t.preprocess = since(t0);
  t0 = Clock::now();
  const k2::MediaGrid grid{pre.grid_thw[0], pre.grid_thw[1], pre.grid_thw[2]};
  K2_ASSIGN_OR_RETURN(k2::MediaEmbedding rows, vit.encode(grid, pre.pixel_values));
  t.encode = since(t0);
  t0 = Clock::now();
  const int32_t placeholder = model.config().media_placeholder_token_id.value_or(-1);
  std::vector<int32_t> ids;  // text, the image's placeholders, text
  for (int64_t i = 0; i < text_tokens / 2; ++i) ids.push_back(static_cast<int32_t>(i + 1));
  ids.insert(ids.end(), static_cast<size_t>(rows.tokens), placeholder);
  for (int64_t i = text_tokens / 2; i < text_tokens; ++i) ids.push_back(static_cast<int32_t>(i + 1));
  const int64_t block = 16, blocks = static_cast<int64_t>(ids.size()) / block + 2;
  K2_ASSIGN_OR_RETURN(k2::LatentKvCache cache, k2::LatentKvCache::create(model.config().num_hidden_layers, blocks,
                                                                         block, model.cache_row_dim()));
  k2::BlockAllocator allocator(blocks);
  std::vector<int32_t> table;
  K2_RETURN_IF_ERROR(allocator.grow(table, static_cast<int64_t>(ids.size()), block));
  k2::ForwardBatch batch;
  batch.sequences.push_back(k2::SequenceChunk{ids, 0, table,
                                              k2::media_rows_for_chunk(ids, placeholder, rows.data,
                                                                       model.config().hidden_size, 0, ids.size())});
  K2_ASSIGN_OR_RETURN(k2::Logits logits, model.forward(batch, cache));
  const int64_t token = k2::ref::argmax(logits.row(logits.rows - 1), logits.vocab);
  t.prefill = since(t0);
  return token;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_vision_ttft MODEL_DIR IMAGE [ITERATIONS=5] [TEXT_TOKENS=32]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const int iters = argc > 3 ? std::atoi(argv[3]) : 5;
  const int64_t text_tokens = argc > 4 ? std::atoll(argv[4]) : 32;
  std::ifstream in(argv[2], std::ios::binary);
  const std::vector<uint8_t> image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto proc = k2::mm::load_media_proc_config(dir / "preprocessor_config.json");
  if (!proc.ok()) return fail(proc.status());
  auto vc = k2::VisionConfig::from_dir(dir);
  if (!vc.ok()) return fail(vc.status());
  auto checkpoint = k2::Checkpoint::open(dir);
  if (!checkpoint.ok()) return fail(checkpoint.status());
  auto vit = k2::MoonVit::load(*checkpoint, *vc, k2::ProgressStyle::kQuiet);
  if (!vit.ok()) return fail(vit.status());
  auto model = k2::load_model(dir, k2::ProgressStyle::kQuiet);
  if (!model.ok()) return fail(model.status());
  Stages best{1e30, 1e30, 1e30};
  double best_total = 1e30;
  for (int i = 0; i < iters; ++i) {
    Stages t;
    auto token = run_once(image, *proc, **vit, **model, text_tokens, t);
    if (!token.ok()) return fail(token.status());
    if (t.total() < best_total) {
      best_total = t.total();
      best = t;
    }
  }
  std::printf("TTFT of a 1-image request on %s: best %.2f ms = preprocess %.2f + encode %.2f + prefill %.2f ms "
              "(%d runs)\n",
              dir.filename().c_str(), 1e3 * best_total, 1e3 * best.preprocess, 1e3 * best.encode, 1e3 * best.prefill,
              iters);
  return 0;
}
