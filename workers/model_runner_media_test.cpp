// Multimodal prompts through the ModelRunner on tiny-k25-vision (float32): the media items
// travel as in serving (pixel_values in a shared-memory arena, a content hash, the span), the
// prompt runs in chunks that cut through the images, and the greedy tokens must equal the
// golden ones as far as the golden top-2 gaps allow a comparison. A second request with the
// same images is served from the encoder cache (no second encode).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "multimodal/image_decode.h"
#include "multimodal/image_preprocess.h"
#include "multimodal/media_loader.h"
#include "shm/arena.h"
#include "shm/segment.h"
#include "workers/generate.h"
#include "workers/model_runner.h"

namespace k2 {
namespace {

namespace fs = std::filesystem;
const fs::path kModel = fs::path(K2_TEST_DATA_DIR) / "models" / "tiny-k25-vision";
constexpr int64_t kBlockSize = 16;

struct Fixture {
  std::unique_ptr<DeepSeekV3> model;
  std::unique_ptr<MoonVit> vision;
  std::optional<LatentKvCache> cache;
  std::optional<Arena> pixels;
  std::optional<EncoderCache> encoder_cache;
  nlohmann::json golden;
  mm::MediaProcConfig proc;
};

Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    auto layouts = weight_layouts_for("float32", "");
    auto model = load_model(kModel, ProgressStyle::kQuiet, false, *layouts);
    EXPECT_TRUE(model.ok()) << model.status().to_string();
    x.model = std::move(*model);
    auto vc = VisionConfig::from_dir(kModel);
    auto ckpt = Checkpoint::open(kModel);
    auto vit = MoonVit::load(*ckpt, *vc, ProgressStyle::kQuiet);
    EXPECT_TRUE(vit.ok()) << vit.status().to_string();
    x.vision = std::move(*vit);
    auto cache = LatentKvCache::create(x.model->config().num_hidden_layers, 64, kBlockSize, x.model->cache_row_dim());
    x.cache.emplace(std::move(*cache));
    const std::string run = make_run_id();
    auto arena = Arena::create(ArenaOptions{run, "media-test", 7, 64 << 20, -1});
    EXPECT_TRUE(arena.ok()) << arena.status().to_string();
    x.pixels.emplace(std::move(*arena));
    auto enc = EncoderCache::create(run, "enc-test", 16 << 20);
    x.encoder_cache.emplace(std::move(*enc));
    std::ifstream in(kModel / "golden.json");
    x.golden = nlohmann::json::parse(in);
    x.proc = *mm::load_media_proc_config(kModel / "preprocessor_config.json");
    return x;
  }();
  return f;
}

const nlohmann::json& golden_prompt(const std::string& name) {
  for (const auto& p : fixture().golden["prompts"])
    if (p["name"] == name) return p;
  ADD_FAILURE() << name;
  static nlohmann::json none;
  return none;
}

// The prompt's media items as the frontend sends them.
std::vector<protocol::MediaItem> media_items(const nlohmann::json& prompt) {
  Fixture& f = fixture();
  std::vector<protocol::MediaItem> items;
  for (size_t i = 0; i < prompt["media"].size(); ++i) {
    std::string file;
    for (const auto& m : f.golden["media"])
      if (m["name"] == prompt["media"][i]) file = m["files"][0];
    std::ifstream in(kModel / file, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    auto image = mm::decode_image(bytes, mm::DecodeLimits{.min_side = 1}, mm::AlphaPolicy::kDrop);
    EXPECT_TRUE(image.ok()) << image.status().to_string();
    auto pre = mm::preprocess_image(*image, f.proc);
    EXPECT_TRUE(pre.ok());
    const mm::ContentHash h = mm::media_content_hash(*pre);
    auto handle = f.pixels->store(std::as_bytes(std::span<const float>(pre->pixel_values)));
    EXPECT_TRUE(handle.ok());
    protocol::MediaItem item;
    item.arena = f.pixels->name();
    item.pixels = *handle;
    item.grid_t = pre->grid_thw[0];
    item.grid_h = pre->grid_thw[1];
    item.grid_w = pre->grid_thw[2];
    item.hash_low = h.low;
    item.hash_high = h.high;
    item.offset = prompt["media_spans"][i][0].get<uint32_t>();
    item.num_tokens = static_cast<uint32_t>(pre->num_tokens);
    EXPECT_EQ(int64_t{item.offset} + item.num_tokens, prompt["media_spans"][i][1].get<int64_t>());
    items.push_back(item);
  }
  return items;
}

// Prefill in chunks of `chunk`, then greedy decode up to `steps` tokens; returns them. Each
// chunk lists the items it reaches first for encoding, as the scheduler does.
std::vector<int32_t> generate(ModelRunner& runner, const std::string& id, const nlohmann::json& prompt, uint32_t chunk,
                              int steps, uint64_t& step_id) {
  const std::vector<int32_t> ids = prompt["input_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> tokens = ids, out;
  uint32_t done = 0, blocks = 0;
  const uint32_t first_block = 1;
  const std::vector<protocol::MediaItem> items = media_items(prompt);
  std::vector<bool> listed(items.size(), false);
  while (static_cast<int>(out.size()) < steps) {
    protocol::StepPlan plan;
    plan.step_id = ++step_id;
    protocol::ScheduledRequest r;
    r.request_id = id;
    const uint32_t n = done < ids.size() ? std::min<uint32_t>(chunk, static_cast<uint32_t>(ids.size()) - done) : 1;
    r.token_ids = protocol::inline_tokens({tokens.begin() + done, tokens.begin() + done + n});
    r.start_position = done;
    r.num_tokens = n;
    r.num_prompt_tokens = static_cast<uint32_t>(ids.size());
    r.num_output_tokens = static_cast<uint32_t>(out.size());
    r.blocks.replace = done == 0;
    for (; blocks < (done + n + kBlockSize - 1) / kBlockSize; ++blocks) r.blocks.block_ids.push_back(first_block + blocks);
    r.sample = done + n >= ids.size();
    if (done == 0) {
      protocol::SamplingParams p;
      p.temperature = 0;
      r.params_index = 0;
      plan.sampling_params.push_back(p);
      r.media = items;
    }
    for (size_t i = 0; i < items.size(); ++i) {
      if (!listed[i] && items[i].offset < done + n && items[i].offset + items[i].num_tokens > done) {
        r.encode_media.push_back(static_cast<uint32_t>(i));
        listed[i] = true;
      }
    }
    plan.requests.push_back(r);
    auto res = runner.execute(plan);
    EXPECT_TRUE(res.ok()) << res.status().to_string();
    if (!res.ok()) return out;
    done += n;
    if (r.sample) {
      out.push_back(res->samples.at(0).token_ids.at(0));
      tokens.push_back(out.back());
    }
  }
  protocol::StepPlan fin;
  fin.step_id = ++step_id;
  fin.finished_request_ids = {id};
  EXPECT_TRUE(runner.execute(fin).ok());
  return out;
}

std::vector<int32_t> comparable(const nlohmann::json& prompt) {
  std::vector<int32_t> want;
  for (size_t i = 0; i < prompt["greedy"].size() && prompt["top2_gap_decode"][i].get<double>() > 2e-3; ++i)
    want.push_back(prompt["greedy"][i].get<int32_t>());
  return want;
}

TEST(ModelRunnerMedia, GoldenGreedyThroughChunkedPrefillAndTheEncoderCache) {
  Fixture& f = fixture();
  ModelRunner runner(*f.model, *f.cache, 0);
  runner.set_vision(f.vision.get(), &*f.encoder_cache);
  uint64_t step = 0;
  for (const char* name : {"image_a", "image_e_large", "two_images", "image_g_then_d"}) {
    const nlohmann::json& p = golden_prompt(name);
    const std::vector<int32_t> want = comparable(p);
    const uint64_t encoded = runner.num_encoded(), hits = f.encoder_cache->hits();
    // Chunks of 5 tokens cut through every image.
    std::vector<int32_t> got = generate(runner, std::string(name) + "-1", p, 5, 8, step);
    ASSERT_GE(got.size(), want.size());
    EXPECT_EQ(std::vector<int32_t>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(want.size())), want) << name;
    EXPECT_EQ(runner.num_encoded() - encoded, p["media"].size()) << name;
    // Again in one chunk: the same tokens, every image from the encoder cache.
    std::vector<int32_t> again = generate(runner, std::string(name) + "-2", p, 4096, 8, step);
    EXPECT_EQ(again, got) << name;
    EXPECT_EQ(runner.num_encoded() - encoded, p["media"].size()) << name;
    EXPECT_EQ(f.encoder_cache->hits() - hits, p["media"].size()) << name;
  }
}

TEST(ModelRunnerMedia, WithoutACacheEveryRequestEncodes) {
  Fixture& f = fixture();
  ModelRunner runner(*f.model, *f.cache, 0);
  runner.set_vision(f.vision.get(), nullptr);
  uint64_t step = 100;
  const nlohmann::json& p = golden_prompt("image_a");
  generate(runner, "a1", p, 64, 1, step);
  generate(runner, "a2", p, 64, 1, step);
  EXPECT_EQ(runner.num_encoded(), 2u);
}

TEST(ModelRunnerMedia, MediaWithoutAVisionTowerIsAnError) {
  Fixture& f = fixture();
  ModelRunner runner(*f.model, *f.cache, 0);
  const nlohmann::json& p = golden_prompt("image_a");
  protocol::StepPlan plan;
  plan.step_id = 1;
  protocol::ScheduledRequest r;
  r.request_id = "x";
  const auto ids = p["input_ids"].get<std::vector<int32_t>>();
  r.token_ids = protocol::inline_tokens(ids);
  r.num_tokens = static_cast<uint32_t>(ids.size());
  r.num_prompt_tokens = r.num_tokens;
  r.blocks.block_ids = {1, 2};
  r.sample = true;
  r.params_index = 0;
  plan.sampling_params.push_back({});
  r.media = media_items(p);
  for (uint32_t i = 0; i < r.media.size(); ++i) r.encode_media.push_back(i);
  plan.requests.push_back(r);
  EXPECT_FALSE(runner.execute(plan).ok());
}

// The scheduler lists what each step encodes: a chunk that reaches an item no plan listed
// (and that has no held twin) is refused, not encoded behind the encoder budget's back.
// One step that prefills all of `ids` with `media` and samples.
protocol::StepPlan whole_prompt_plan(const std::string& id, const std::vector<int32_t>& ids,
                                     std::vector<protocol::MediaItem> media, std::vector<uint32_t> encode) {
  protocol::StepPlan plan;
  plan.step_id = 1;
  protocol::ScheduledRequest r;
  r.request_id = id;
  r.token_ids = protocol::inline_tokens(ids);
  r.num_tokens = static_cast<uint32_t>(ids.size());
  r.num_prompt_tokens = r.num_tokens;
  for (uint32_t b = 0; b < (r.num_tokens + kBlockSize - 1) / kBlockSize; ++b) r.blocks.block_ids.push_back(1 + b);
  r.sample = true;
  r.params_index = 0;
  plan.sampling_params.push_back({});
  r.media = std::move(media);
  r.encode_media = std::move(encode);
  plan.requests.push_back(r);
  return plan;
}

TEST(ModelRunnerMedia, AnUnlistedItemIsRefused) {
  Fixture& f = fixture();
  ModelRunner runner(*f.model, *f.cache, 0);
  runner.set_vision(f.vision.get(), nullptr);
  const nlohmann::json& p = golden_prompt("image_a");
  auto res = runner.execute(whole_prompt_plan("x", p["input_ids"].get<std::vector<int32_t>>(), media_items(p), {}));
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.status().to_string().find("does not list"), std::string::npos) << res.status().to_string();
  EXPECT_EQ(runner.num_encoded(), 0u);
}

// A worker on another node than the frontend gets the pixels with the plan and reads them
// nowhere else: the same first token as from the arena, an error when they did not come.
TEST(ModelRunnerMedia, ShippedPixelsAreReadInsteadOfTheArena) {
  Fixture& f = fixture();
  const nlohmann::json& p = golden_prompt("image_a");
  const auto ids = p["input_ids"].get<std::vector<int32_t>>();
  std::vector<protocol::MediaItem> media = media_items(p);
  ASSERT_EQ(media.size(), 1u);
  auto first_token = [&](const std::vector<protocol::MediaItem>& items,
                         const std::vector<protocol::MediaPixels>* shipped) -> Result<int32_t> {
    ModelRunner runner(*f.model, *f.cache, 0);
    runner.set_vision(f.vision.get(), nullptr);
    K2_ASSIGN_OR_RETURN(protocol::StepResult res, runner.execute(whole_prompt_plan("s", ids, items, {0}), shipped));
    return res.samples.at(0).token_ids.at(0);
  };
  auto from_arena = first_token(media, nullptr);
  ASSERT_TRUE(from_arena.ok()) << from_arena.status().to_string();
  auto bytes = f.pixels->view(media[0].pixels);
  ASSERT_TRUE(bytes.ok());
  protocol::MediaPixels pixels{media[0].hash_low, media[0].hash_high, std::vector<float>(bytes->size() / sizeof(float))};
  std::memcpy(pixels.values.data(), bytes->data(), bytes->size());
  const std::vector<protocol::MediaPixels> shipped = {pixels};
  std::vector<protocol::MediaItem> elsewhere = media;
  elsewhere[0].arena = "k2-no-such-arena";  // the frontend's arena is on another node
  auto from_plan = first_token(elsewhere, &shipped);
  ASSERT_TRUE(from_plan.ok()) << from_plan.status().to_string();
  EXPECT_EQ(*from_plan, *from_arena);
  const std::vector<protocol::MediaPixels> none;
  auto missing = first_token(media, &none);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("did not come with the plan"), std::string::npos)
      << missing.status().to_string();
}

// Two items with the same content in one prompt: the plan lists the first only, the worker
// copies its rows for the second and encodes once.
TEST(ModelRunnerMedia, ASameContentItemIsCopiedNotEncoded) {
  Fixture& f = fixture();
  ModelRunner runner(*f.model, *f.cache, 0);
  runner.set_vision(f.vision.get(), nullptr);
  const nlohmann::json& p = golden_prompt("image_a");
  auto ids = p["input_ids"].get<std::vector<int32_t>>();
  std::vector<protocol::MediaItem> media = media_items(p);
  ASSERT_EQ(media.size(), 1u);
  // The prompt twice in a row: the second copy's image at the shifted offset.
  protocol::MediaItem second = media[0];
  second.offset += static_cast<uint32_t>(ids.size());
  media.push_back(second);
  const size_t n = ids.size();
  ids.insert(ids.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n));
  auto res = runner.execute(whole_prompt_plan("twice", ids, media, {0}));
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(runner.num_encoded(), 1u);
}

}  // namespace
}  // namespace k2
