#include "workers/golden_vision.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/ref/dense.h"
#include "multimodal/image_decode.h"
#include "multimodal/image_preprocess.h"
#include "multimodal/media_proc_config.h"
#include "multimodal/pil_resize.h"
#include "workers/generate.h"
#include "workers/golden_report.h"
#include "workers/kv_cache.h"
#include "workers/loader/checkpoint.h"
#include "workers/loader/convert.h"
#include "workers/loader/safetensors.h"
#include "workers/parallel/thread_group_communicator.h"
#include "workers/vision/moonvit.h"
#include "workers/vision/vision_encoder.h"

namespace k2 {
namespace {

using nlohmann::json;

// One media item of golden.json: an image or a video chunk, and its tensors.
struct GoldenMedia {
  std::string name;
  bool video = false;
  std::vector<std::string> files;  // relative to the set's directory, in frame order
  mm::AlphaPolicy alpha = mm::AlphaPolicy::kDrop;
  int64_t num_tokens = 0;
  std::vector<std::string> tensors;
};

struct GoldenPrompt {
  std::string name;
  std::vector<std::string> media;  // item names, in prompt order
  std::vector<int32_t> input_ids;  // placeholders already expanded
  std::vector<int32_t> greedy;
  std::vector<double> decode_gaps;  // top-1 minus top-2 of each decode row
  std::vector<std::string> tensors;
};

struct VisionGolden {
  std::optional<int32_t> placeholder;  // media_placeholder_token_id
  std::map<std::string, double> tolerances;  // suggested_tolerances: kind -> absolute tolerance
  std::vector<GoldenMedia> media;
  std::vector<GoldenPrompt> prompts;
  std::unique_ptr<SafetensorsFile> tensors;

  bool has(const std::string& name) const { return tensors->header().tensors.contains(name); }
  Result<TensorF32> f32(const std::string& name) const {
    K2_ASSIGN_OR_RETURN(TensorView view, tensors->view(name));
    return to_f32(view);
  }
  Result<std::vector<int64_t>> i64(const std::string& name) const {
    K2_ASSIGN_OR_RETURN(TensorView view, tensors->view(name));
    return to_i64(view);
  }
};

Result<json> read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return not_found("cannot read " + path.string());
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt(path.string() + ": not a JSON object");
  return j;
}

Result<std::vector<uint8_t>> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read " + path.string());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

GoldenMedia parse_media(const json& j) {
  GoldenMedia m;
  m.name = j.at("name").get<std::string>();
  m.video = j.at("kind").get<std::string>() == "video_chunk";
  m.files = j.at("files").get<std::vector<std::string>>();
  // null (video frames without transparency) and "drop" are both PIL's convert("RGB").
  m.alpha = j.at("alpha").is_string() && j.at("alpha") == "white" ? mm::AlphaPolicy::kWhite : mm::AlphaPolicy::kDrop;
  m.num_tokens = j.at("num_tokens").get<int64_t>();
  m.tensors = j.at("tensors").get<std::vector<std::string>>();
  return m;
}

Result<GoldenPrompt> parse_prompt(const json& j) {
  GoldenPrompt p;
  p.name = j.at("name").get<std::string>();
  p.media = j.at("media").get<std::vector<std::string>>();
  p.input_ids = j.at("input_ids").get<std::vector<int32_t>>();
  p.greedy = j.at("greedy").get<std::vector<int32_t>>();
  p.decode_gaps = j.at("top2_gap_decode").get<std::vector<double>>();
  p.tensors = j.at("tensors").get<std::vector<std::string>>();
  const int64_t steps = j.at("decode_steps").get<int64_t>();
  const std::string where = "golden.json prompt " + p.name + ": ";
  if (p.input_ids.empty()) return corrupt(where + "no input_ids");
  if (static_cast<int64_t>(p.greedy.size()) != steps) return corrupt(where + "greedy length differs from decode_steps");
  if (p.decode_gaps.size() < p.greedy.size()) return corrupt(where + "top2_gap_decode is shorter than decode_steps");
  return p;
}

Result<VisionGolden> open_vision_golden(const std::filesystem::path& dir) {
  K2_ASSIGN_OR_RETURN(json g, read_json(dir / "golden.json"));
  VisionGolden golden;
  try {
    if (g.contains("media_placeholder_token_id")) {
      golden.placeholder = g.at("media_placeholder_token_id").get<int32_t>();
    }
    for (const auto& [kind, tol] : g.at("suggested_tolerances").items()) {
      if (tol.is_number()) golden.tolerances[kind] = tol.get<double>();
    }
    for (const json& m : g.at("media")) golden.media.push_back(parse_media(m));
    for (const json& p : g.at("prompts")) {
      K2_ASSIGN_OR_RETURN(GoldenPrompt prompt, parse_prompt(p));
      golden.prompts.push_back(std::move(prompt));
    }
  } catch (const json::exception& e) {
    return corrupt(std::string("golden.json: ") + e.what());
  }
  K2_ASSIGN_OR_RETURN(golden.tensors, SafetensorsFile::open(dir / "golden.safetensors"));
  return golden;
}

// Compares one engine tensor against a golden tensor of the same element count.
void check_tensor(GoldenReport& report, const VisionGolden& golden, const std::string& name, const float* ours,
                  size_t count, double tol) {
  Result<TensorF32> want = golden.f32(name);
  if (!want.ok()) return report.fail(name, want.status().to_string());
  if (want->data.size() != count) {
    return report.fail(name, "golden has " + std::to_string(want->data.size()) + " values, the engine " +
                                 std::to_string(count));
  }
  report.check(name, max_abs_diff(ours, want->data.data(), static_cast<int64_t>(count)), tol);
}

void check_exact_ints(GoldenReport& report, const VisionGolden& golden, const std::string& name,
                      const std::vector<int64_t>& ours) {
  Result<std::vector<int64_t>> want = golden.i64(name);
  if (!want.ok()) return report.fail(name, want.status().to_string());
  if (want->size() != ours.size()) return report.fail(name, "length differs");
  int64_t worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) worst = std::max(worst, std::abs(ours[i] - (*want)[i]));
  report.check(name, static_cast<double>(worst), 0.0, "exact");
}

// The stage a golden tensor name stands for ("media.a.pixel_values" -> "pixel_values").
std::string kind_of(const std::string& tensor) { return tensor.substr(tensor.rfind('.') + 1); }

// Elements whose bits differ (sizes that differ count as all differing).
int64_t differing_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return static_cast<int64_t>(std::max(a.size(), b.size()));
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

// The N ranks under check, one thread each at run time, sharing one in-process group: the
// language model sharded as golden-check -tp shards it, the vision tower sharded (weights)
// or whole on every rank (data) as --mm-encoder-tp-mode says. N = 1: the plain models.
struct VisionRanks {
  EncoderTpMode mode = EncoderTpMode::kWeights;
  std::vector<std::unique_ptr<ThreadGroupCommunicator>> comms;
  std::vector<std::unique_ptr<MoonVit>> towers;
  std::vector<std::unique_ptr<DeepSeekV3>> models;
  int size() const { return static_cast<int>(towers.size()); }
  Communicator* comm(int r) const { return comms.empty() ? nullptr : comms[static_cast<size_t>(r)].get(); }
};

Result<VisionRanks> load_vision_ranks(const std::filesystem::path& dir, const GoldenCheckOptions& options) {
  VisionRanks g;
  K2_ASSIGN_OR_RETURN(g.mode, parse_encoder_tp_mode(options.mm_encoder_tp_mode));
  const int n = options.tensor_parallel_size;
  K2_ASSIGN_OR_RETURN(VisionConfig vision_config, VisionConfig::from_dir(dir));
  K2_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::open(dir));  // no prefix: vision_tower.* at the root
  if (n > 1) g.comms = ThreadGroupCommunicator::create(n);
  for (int r = 0; r < n; ++r) {
    const Shard shard{r, n, options.expert_parallel};
    const Shard tower_shard = g.mode == EncoderTpMode::kWeights ? Shard{r, n} : Shard{};
    K2_ASSIGN_OR_RETURN(std::unique_ptr<MoonVit> vit,
                        MoonVit::load(checkpoint, vision_config, options.progress, tower_shard, g.comm(r)));
    g.towers.push_back(std::move(vit));
    K2_ASSIGN_OR_RETURN(std::unique_ptr<DeepSeekV3> model,
                        load_model(dir, options.progress, false, WeightLayouts{}, n > 1 ? shard : Shard{}, g.comm(r)));
    g.models.push_back(std::move(model));
  }
  return g;
}

// fn(r) on one thread per rank (their collectives pair up); the results in rank order.
template <class Fn>
auto on_every_rank(int ranks, Fn&& fn) -> std::vector<decltype(fn(0))> {
  std::vector<std::optional<decltype(fn(0))>> out(static_cast<size_t>(ranks));
  if (ranks == 1) {
    out[0].emplace(fn(0));
  } else {
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r) threads.emplace_back([&, r] { out[static_cast<size_t>(r)].emplace(fn(r)); });
    for (std::thread& t : threads) t.join();
  }
  std::vector<decltype(fn(0))> results;
  for (auto& o : out) results.push_back(std::move(*o));
  return results;
}

class VisionChecker {
 public:
  VisionChecker(GoldenReport& report, const VisionGolden& golden, const std::filesystem::path& dir)
      : report_(report), golden_(golden), dir_(dir) {}

  // Every media item through preprocessing, then all of them through the encoder on every
  // rank; the projector rows (rank 0's) of those that got that far, by name.
  std::map<std::string, MediaEmbedding> check_media(const mm::MediaProcConfig& proc, const VisionRanks& ranks);

 private:
  std::optional<double> tolerance(const std::string& kind, const std::string& tensor);
  Result<mm::PreprocessedMedia> preprocess(const GoldenMedia& item, const mm::MediaProcConfig& proc);
  std::optional<mm::PreprocessedMedia> check_preprocess(const GoldenMedia& item, const mm::MediaProcConfig& proc);
  void check_encoded(const GoldenMedia& item, const mm::PreprocessedMedia& pre, const VisionTrace& trace,
                     const MediaEmbedding& encoded);
  void check_resized(const GoldenMedia& item, const mm::TargetSize& size, const std::string& name);

  GoldenReport& report_;
  const VisionGolden& golden_;
  std::filesystem::path dir_;
  std::vector<mm::RgbImage> frames_;  // of the item being checked
  std::map<std::string, std::vector<mm::RgbImage>> decoded_;  // every item's frames, for resized_u8
};

std::optional<double> VisionChecker::tolerance(const std::string& kind, const std::string& tensor) {
  auto it = golden_.tolerances.find(kind);
  if (it != golden_.tolerances.end()) return it->second;
  report_.fail(tensor, "golden.json suggested_tolerances has no entry '" + kind + "'");
  return std::nullopt;
}

Result<mm::PreprocessedMedia> VisionChecker::preprocess(const GoldenMedia& item, const mm::MediaProcConfig& proc) {
  frames_.clear();
  mm::DecodeLimits limits;
  limits.min_side = 1;  // the set has a 1x1 image (the serving default refuses it)
  for (const std::string& file : item.files) {
    K2_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_bytes(dir_ / file));
    K2_ASSIGN_OR_RETURN(mm::RgbImage frame, mm::decode_image(bytes, limits, item.alpha));
    frames_.push_back(std::move(frame));
  }
  if (item.video) return mm::preprocess_video_chunk(frames_, proc);
  if (frames_.size() != 1) return corrupt("golden.json media " + item.name + ": an image with several files");
  return mm::preprocess_image(frames_[0], proc);
}

// The PIL-resized frames before padding ([T, new_h, new_w, 3] u8), exactly.
void VisionChecker::check_resized(const GoldenMedia& item, const mm::TargetSize& size, const std::string& name) {
  std::vector<int64_t> ours;
  for (const mm::RgbImage& frame : decoded_[item.name]) {
    Result<mm::RgbImage> resized = mm::resize_bicubic_pil(frame, size.new_width, size.new_height);
    if (!resized.ok()) return report_.fail(name, resized.status().to_string());
    ours.insert(ours.end(), resized->pixels.begin(), resized->pixels.end());
  }
  check_exact_ints(report_, golden_, name, ours);
}

std::optional<mm::PreprocessedMedia> VisionChecker::check_preprocess(const GoldenMedia& item,
                                                                     const mm::MediaProcConfig& proc) {
  const std::string prefix = "media." + item.name + ".";
  Result<mm::PreprocessedMedia> pre = preprocess(item, proc);
  if (!pre.ok()) {
    report_.fail(prefix + "preprocess", pre.status().to_string());
    return std::nullopt;
  }
  decoded_[item.name] = frames_;
  const std::array<int64_t, 3>& g = pre->grid_thw;
  check_exact_ints(report_, golden_, prefix + "grid_thw", {g[0], g[1], g[2]});
  report_.check(prefix + "num_tokens", static_cast<double>(std::abs(pre->num_tokens - item.num_tokens)), 0.0,
                "golden.json: " + std::to_string(item.num_tokens));
  return std::move(pre).value();
}

void VisionChecker::check_encoded(const GoldenMedia& item, const mm::PreprocessedMedia& pre, const VisionTrace& trace,
                                  const MediaEmbedding& encoded) {
  const std::map<std::string, const std::vector<float>*> ours = {
      {"pixel_values", &pre.pixel_values}, {"patch_embed", &trace.patch_embed}, {"pos_emb", &trace.pos_emb},
      {"block0", &trace.block0},          {"vt_out", &trace.vt_out},          {"merged", &trace.merged},
      {"proj_act", &trace.proj_act},      {"proj_out", &encoded.data}};
  for (const std::string& tensor : item.tensors) {
    const std::string kind = kind_of(tensor);
    if (kind == "grid_thw") continue;
    if (kind == "resized_u8") {
      check_resized(item, pre.size, tensor);
      continue;
    }
    auto it = ours.find(kind);
    if (it == ours.end()) {
      report_.out() << "NOTE  " << tensor << "  (unknown tensor kind, not checked)\n";
      continue;
    }
    if (std::optional<double> tol = tolerance(kind, tensor)) {
      check_tensor(report_, golden_, tensor, it->second->data(), it->second->size(), *tol);
    }
  }
}

std::map<std::string, MediaEmbedding> VisionChecker::check_media(const mm::MediaProcConfig& proc,
                                                                 const VisionRanks& ranks) {
  std::vector<const GoldenMedia*> items;
  std::vector<mm::PreprocessedMedia> pres;
  for (const GoldenMedia& item : golden_.media) {
    std::optional<mm::PreprocessedMedia> pre = check_preprocess(item, proc);
    if (!pre) continue;
    items.push_back(&item);
    pres.push_back(std::move(*pre));
  }
  std::vector<MediaInput> inputs;
  std::vector<MediaGrid> grids;
  for (const mm::PreprocessedMedia& pre : pres) {
    grids.push_back(MediaGrid{pre.grid_thw[0], pre.grid_thw[1], pre.grid_thw[2]});
    inputs.push_back(MediaInput{grids.back(), pre.pixel_values});
  }
  struct RankRun {
    Result<std::vector<MediaEmbedding>> rows = internal_error("not run");
    std::vector<VisionTrace> traces;
  };
  std::vector<RankRun> runs = on_every_rank(ranks.size(), [&](int r) {
    RankRun run;
    VisionEncoder encoder(*ranks.towers[static_cast<size_t>(r)], ranks.mode, ranks.comm(r));
    run.rows = encoder.encode(inputs, &run.traces);
    return run;
  });
  for (const RankRun& run : runs) {
    if (!run.rows.ok()) {
      report_.fail("media.encode", run.rows.status().to_string());
      return {};
    }
  }
  // The intermediate tensors of an item are on the rank that encoded it.
  const std::vector<int> owner = ranks.mode == EncoderTpMode::kData
                                     ? assign_media(ranks.towers[0]->config(), grids, ranks.size())
                                     : std::vector<int>(items.size(), 0);
  std::map<std::string, MediaEmbedding> encoded;
  for (size_t i = 0; i < items.size(); ++i) {
    const MediaEmbedding& rows = runs[0].rows->at(i);
    check_encoded(*items[i], pres[i], runs[static_cast<size_t>(owner[i])].traces[i], rows);
    encoded.emplace(items[i]->name, rows);
  }
  for (int r = 1; r < ranks.size(); ++r) {
    int64_t differ = 0;
    for (size_t i = 0; i < items.size(); ++i)
      differ += differing_bits(runs[static_cast<size_t>(r)].rows->at(i).data, runs[0].rows->at(i).data);
    report_.check("media.rank" + std::to_string(r) + ".proj_out", static_cast<double>(differ), 0.0,
                  "projector rows differing from rank 0's, bit for bit");
  }
  return encoded;
}

// ---- The language model over the multimodal prompts -------------------------------------

struct PromptRun {
  std::vector<float> prefill;  // [T, V]
  std::vector<float> decode;   // [decode_steps + 1, V]: row 0 is the last prefill row
};

// Prefill of the prompt in chunks cut at `cuts` (each chunk given its slice of the media
// rows), then decode teacher-forced on the golden greedy tokens (when `decode`).
Result<PromptRun> run_prompt(const DeepSeekV3& model, const GoldenPrompt& p, std::span<const float> rows,
                             const std::vector<size_t>& cuts, int64_t block_size, bool decode) {
  const int64_t total = static_cast<int64_t>(p.input_ids.size() + p.greedy.size());
  const int64_t blocks = (total + block_size - 1) / block_size;
  K2_ASSIGN_OR_RETURN(LatentKvCache cache, LatentKvCache::create(model.config().num_hidden_layers, blocks,
                                                                 block_size, model.cache_row_dim()));
  BlockAllocator allocator(blocks);
  std::vector<int32_t> table;
  K2_RETURN_IF_ERROR(allocator.grow(table, total, block_size));
  const int32_t placeholder = model.config().media_placeholder_token_id.value_or(-1);
  const int64_t width = model.config().hidden_size, vocab = model.config().vocab_size;
  const std::span<const int32_t> ids(p.input_ids);
  PromptRun run;
  size_t begin = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : ids.size();
    ForwardBatch batch;
    batch.logit_rows = LogitRows::kAll;
    batch.sequences.push_back(SequenceChunk{ids.subspan(begin, end - begin), static_cast<int64_t>(begin), table,
                                            media_rows_for_chunk(ids, placeholder, rows, width, begin, end)});
    K2_ASSIGN_OR_RETURN(Logits logits, model.forward(batch, cache));
    run.prefill.insert(run.prefill.end(), logits.data.begin(), logits.data.end());
    begin = end;
  }
  if (!decode) return run;
  run.decode.assign(run.prefill.end() - vocab, run.prefill.end());
  for (size_t j = 0; j < p.greedy.size(); ++j) {
    ForwardBatch batch;  // a generated token is text, whatever its id
    batch.sequences.push_back(
        SequenceChunk{std::span<const int32_t>(&p.greedy[j], 1), static_cast<int64_t>(ids.size() + j), table});
    K2_ASSIGN_OR_RETURN(Logits logits, model.forward(batch, cache));
    run.decode.insert(run.decode.end(), logits.data.begin(), logits.data.end());
  }
  return run;
}

// The placeholder runs of a prompt, [start, end) each.
std::vector<std::pair<size_t, size_t>> placeholder_runs(const std::vector<int32_t>& ids, int32_t placeholder) {
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != placeholder) continue;
    if (runs.empty() || runs.back().second != i) runs.emplace_back(i, i);
    runs.back().second = i + 1;
  }
  return runs;
}

// Chunked prefill cuts every media run in half (a one-token run just before it), so chunk
// boundaries fall inside media items.
std::vector<size_t> cuts_inside_media(const std::vector<std::pair<size_t, size_t>>& runs) {
  std::set<size_t> cuts;
  for (const auto& [a, b] : runs) {
    const size_t cut = a + (b - a) / 2;
    if (cut > 0) cuts.insert(cut);
  }
  return {cuts.begin(), cuts.end()};
}

// Greedy tokens: argmax of decode row j against golden token j where the golden gap exceeds
// twice the logits tolerance (README §10.2); a disagreement at a near-tie ends the comparison.
void check_greedy(GoldenReport& report, const GoldenPrompt& p, const PromptRun& run, int64_t vocab, double tol) {
  int64_t compared = 0, wrong = 0;
  for (size_t j = 0; j < p.greedy.size(); ++j) {
    const int32_t ours = static_cast<int32_t>(ref::argmax(run.decode.data() + j * vocab, vocab));
    if (!(p.decode_gaps[j] > 2 * tol)) {
      if (ours != p.greedy[j]) break;
      continue;
    }
    ++compared;
    if (ours != p.greedy[j]) ++wrong;
  }
  report.check("prompt." + p.name + ".greedy", static_cast<double>(wrong), 0.0,
               std::to_string(compared) + " of " + std::to_string(p.greedy.size()) + " tokens decisive");
}

// run_prompt on every rank at once; rank 0's run, every other rank's logits checked equal
// to it bit for bit.
Result<PromptRun> run_prompt_ranks(GoldenReport& report, const VisionRanks& ranks, const GoldenPrompt& p,
                                   std::span<const float> rows, const std::vector<size_t>& cuts, int64_t block_size,
                                   bool decode, const std::string& label) {
  std::vector<Result<PromptRun>> runs = on_every_rank(ranks.size(), [&](int r) {
    return run_prompt(*ranks.models[static_cast<size_t>(r)], p, rows, cuts, block_size, decode);
  });
  for (const Result<PromptRun>& run : runs) {
    if (!run.ok()) return run.status();
  }
  for (int r = 1; r < ranks.size(); ++r) {
    const PromptRun& other = runs[static_cast<size_t>(r)].value();
    const int64_t differ = differing_bits(other.prefill, runs[0]->prefill) + differing_bits(other.decode, runs[0]->decode);
    report.check(label + ".rank" + std::to_string(r) + ".logits", static_cast<double>(differ), 0.0,
                 "logits differing from rank 0's, bit for bit");
  }
  return std::move(runs[0]);
}

void check_prompt(GoldenReport& report, const VisionGolden& golden, const VisionRanks& ranks,
                  const std::map<std::string, MediaEmbedding>& encoded, const GoldenPrompt& p, int64_t block_size) {
  const DeepSeekV3& model = *ranks.models[0];
  const std::string prefix = "prompt." + p.name + ".";
  static const char* kKnown[] = {"input_ids", "prefill_logits", "decode_logits", "prefill_top2_gap",
                                 "decode_top2_gap"};  // the gaps are read from golden.json
  for (const std::string& tensor : p.tensors) {
    if (!golden.has(tensor)) report.fail(tensor, "listed in golden.json but missing from golden.safetensors");
    if (std::none_of(std::begin(kKnown), std::end(kKnown), [&](const char* k) { return kind_of(tensor) == k; })) {
      report.out() << "NOTE  " << tensor << "  (unknown tensor kind, not checked)\n";
    }
  }
  const int32_t placeholder = model.config().media_placeholder_token_id.value_or(-1);
  std::vector<int64_t> ids(p.input_ids.begin(), p.input_ids.end());
  if (golden.has(prefix + "input_ids")) check_exact_ints(report, golden, prefix + "input_ids", ids);
  // The expansion: each item's placeholder run is as long as its encoded rows.
  const auto runs = placeholder_runs(p.input_ids, placeholder);
  std::vector<float> rows;
  int64_t mismatched = 0;
  for (size_t i = 0; i < p.media.size(); ++i) {
    auto it = encoded.find(p.media[i]);
    if (it == encoded.end()) return report.fail(prefix + "media", "item " + p.media[i] + " was not encoded");
    rows.insert(rows.end(), it->second.data.begin(), it->second.data.end());
    if (i >= runs.size() || static_cast<int64_t>(runs[i].second - runs[i].first) != it->second.tokens) ++mismatched;
  }
  if (runs.size() != p.media.size()) ++mismatched;
  report.check(prefix + "placeholders", static_cast<double>(mismatched), 0.0,
               "media runs not as long as their items' rows");

  const int64_t vocab = model.config().vocab_size;
  const std::optional<double> tol = golden.tolerances.contains("logits")
                                        ? std::optional<double>(golden.tolerances.at("logits"))
                                        : std::nullopt;
  if (!tol) return report.fail(prefix + "logits", "golden.json suggested_tolerances has no entry 'logits'");
  Result<PromptRun> run = run_prompt_ranks(report, ranks, p, rows, {}, block_size, /*decode=*/true, prefix + "full");
  if (!run.ok()) return report.fail(prefix + "prefill", run.status().to_string());
  check_tensor(report, golden, prefix + "prefill_logits", run->prefill.data(), run->prefill.size(), *tol);
  check_tensor(report, golden, prefix + "decode_logits", run->decode.data(), run->decode.size(), *tol);
  check_greedy(report, p, *run, vocab, *tol);
  if (runs.empty()) return;
  const std::vector<size_t> cuts = cuts_inside_media(runs);
  Result<PromptRun> chunked =
      run_prompt_ranks(report, ranks, p, rows, cuts, block_size, /*decode=*/false, prefix + "chunked");
  if (!chunked.ok()) return report.fail(prefix + "prefill_logits.chunked", chunked.status().to_string());
  Result<TensorF32> want = golden.f32(prefix + "prefill_logits");
  if (!want.ok() || want->data.size() != chunked->prefill.size()) return;  // reported above
  report.check(prefix + "prefill_logits.chunked",
               max_abs_diff(chunked->prefill.data(), want->data.data(), want->numel()), *tol,
               std::to_string(cuts.size() + 1) + " chunks");
}

}  // namespace

Result<bool> is_vision_golden_set(const std::filesystem::path& dir) {
  K2_ASSIGN_OR_RETURN(json g, read_json(dir / "golden.json"));
  return g.contains("media") && g.at("media").is_array() && g.contains("prompts") && g.at("prompts").is_array() &&
         !g.contains("cases");
}

Result<bool> run_vision_golden_check(const std::filesystem::path& dir, std::ostream& out,
                                     const GoldenCheckOptions& options) {
  if (!options.layouts.exact()) {
    return unimplemented("golden-check --fast does not cover a vision set (its tolerances hold for float32 only)");
  }
  K2_ASSIGN_OR_RETURN(VisionGolden golden, open_vision_golden(dir));
  K2_ASSIGN_OR_RETURN(mm::MediaProcConfig proc, mm::load_media_proc_config(dir / "preprocessor_config.json"));
  if (options.tensor_parallel_size > 1) {
    K2_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::from_dir(dir));
    const Shard shard{0, options.tensor_parallel_size, options.expert_parallel};
    K2_RETURN_IF_ERROR(DeepSeekV3::check_shard(config, shard));
    K2_ASSIGN_OR_RETURN(EncoderTpMode mode, parse_encoder_tp_mode(options.mm_encoder_tp_mode));
    K2_ASSIGN_OR_RETURN(VisionConfig vision_config, VisionConfig::from_dir(dir));
    if (mode == EncoderTpMode::kWeights) K2_RETURN_IF_ERROR(MoonVit::check_shard(vision_config, Shard{0, shard.size}));
    out << (options.expert_parallel ? "expert" : "tensor") << " parallel: " << options.tensor_parallel_size
        << " ranks as threads of this process, vision encoder --mm-encoder-tp-mode " << encoder_tp_mode_name(mode)
        << "; rank 0 checked against the goldens\n";
  }
  K2_ASSIGN_OR_RETURN(VisionRanks ranks, load_vision_ranks(dir, options));

  GoldenReport report(out);
  const std::optional<int32_t> placeholder = ranks.models[0]->config().media_placeholder_token_id;
  if (!placeholder || placeholder != golden.placeholder) {
    report.fail("media_placeholder_token_id", "config.json and golden.json disagree or lack it");
  }
  VisionChecker checker(report, golden, dir);
  const std::map<std::string, MediaEmbedding> encoded = checker.check_media(proc, ranks);
  for (const GoldenPrompt& p : golden.prompts) check_prompt(report, golden, ranks, encoded, p, options.block_size);
  return report.finish();
}

}  // namespace k2
