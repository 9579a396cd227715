// Preprocessing against the tiny-k25-vision goldens: every media item of golden.json, its
// grid, token count, PIL-resized frames and pixel_values, all exact (README section 10.2).
#include "multimodal/image_preprocess.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "multimodal/image_decode.h"
#include "multimodal/pil_resize.h"
#include "multimodal/test_images.h"
#include "multimodal/video_sampling.h"
#include "multimodal/vision_golden.h"
#include "workers/loader/safetensors.h"

namespace k2::mm {
namespace {

const std::string kDir = std::string(K2_TEST_DATA_DIR) + "/models/tiny-k25-vision/";

class VisionGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto set = testing::VisionGoldenSet::open(kDir);
    ASSERT_TRUE(set.ok()) << set.status().to_string();
    set_ = std::move(set).value().release();
    golden_ = &set_->json();
    tensors_ = &set_->tensors();
    cfg_ = &set_->config();
  }
  static void TearDownTestSuite() { delete set_; }

  static RgbImage load(const std::string& file, AlphaPolicy alpha) {
    DecodeLimits limits;
    limits.min_side = 1;  // the golden set includes a 1x1 image
    auto img = decode_image(testing::read_file(kDir + file), limits, alpha);
    EXPECT_TRUE(img.ok()) << file << ": " << img.status().to_string();
    return img.ok() ? std::move(img).value() : RgbImage();
  }

  static TensorView tensor(const std::string& name) {
    auto v = tensors_->view(name);
    EXPECT_TRUE(v.ok()) << name;
    return v.ok() ? *v : TensorView();
  }

  static testing::VisionGoldenSet* set_;
  static const nlohmann::json* golden_;
  static const SafetensorsFile* tensors_;
  static const MediaProcConfig* cfg_;
};
testing::VisionGoldenSet* VisionGolden::set_ = nullptr;
const nlohmann::json* VisionGolden::golden_ = nullptr;
const SafetensorsFile* VisionGolden::tensors_ = nullptr;
const MediaProcConfig* VisionGolden::cfg_ = nullptr;

TEST_F(VisionGolden, ConfigReadFromFile) {
  const auto& g = (*golden_)["media_proc_cfg"];
  EXPECT_EQ(cfg_->patch_size, g["patch_size"].get<int>());
  EXPECT_EQ(cfg_->in_patch_limit, g["in_patch_limit"].get<int64_t>());
  EXPECT_EQ(cfg_->patch_limit_on_one_side, g["patch_limit_on_one_side"].get<int64_t>());
  EXPECT_EQ(cfg_->in_patch_limit_each_frame.value_or(-1), g["in_patch_limit_each_frame"].get<int64_t>());
  EXPECT_FALSE(cfg_->in_patch_limit_video.has_value());
}

TEST_F(VisionGolden, EveryMediaItemMatchesExactly) {
  int items = 0;
  for (const auto& m : (*golden_)["media"]) {
    const std::string name = m["name"];
    SCOPED_TRACE(name);
    const AlphaPolicy alpha = m["alpha"].is_string() && m["alpha"] == "white" ? AlphaPolicy::kWhite : AlphaPolicy::kDrop;
    std::vector<RgbImage> frames;
    for (const auto& f : m["files"]) frames.push_back(load(f.get<std::string>(), alpha));
    ASSERT_EQ(frames[0].width, m["orig_size_wh"][0].get<int>());
    ASSERT_EQ(frames[0].height, m["orig_size_wh"][1].get<int>());

    auto pre = m["kind"] == "image" ? preprocess_image(frames[0], *cfg_) : preprocess_video_chunk(frames, *cfg_);
    ASSERT_TRUE(pre.ok()) << pre.status().to_string();
    EXPECT_EQ(pre->size.new_width, m["new_size_wh"][0].get<int>());
    EXPECT_EQ(pre->size.new_height, m["new_size_wh"][1].get<int>());
    EXPECT_EQ(pre->size.pad_width, m["pad_wh"][0].get<int>());
    EXPECT_EQ(pre->size.pad_height, m["pad_wh"][1].get<int>());
    EXPECT_DOUBLE_EQ(pre->size.scale, m["resize_scale"].get<double>());
    EXPECT_EQ(pre->num_tokens, m["num_tokens"].get<int64_t>());
    EXPECT_EQ(pre->num_patches(), m["n_patches"].get<int64_t>());

    testing::expect_matches_golden(*set_, name, *pre);

    if (tensors_->has("media." + name + ".resized_u8")) {
      const TensorView ru = tensor("media." + name + ".resized_u8");
      const size_t per_frame = size_t(pre->size.new_width) * size_t(pre->size.new_height) * 3;
      ASSERT_EQ(ru.bytes, per_frame * frames.size());
      for (size_t f = 0; f < frames.size(); ++f) {
        auto r = resize_bicubic_pil(frames[f], pre->size.new_width, pre->size.new_height);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(std::memcmp(r->pixels.data(), ru.data + f * per_frame, per_frame), 0) << "resized frame " << f;
      }
    }
    ++items;
  }
  EXPECT_EQ(items, int((*golden_)["media"].size()));
  EXPECT_GT(items, 0);
}

// Each prompt's media spans are exactly num_tokens long: the placeholder expansion count.
TEST_F(VisionGolden, PromptSpansEqualTokenCounts) {
  std::map<std::string, int64_t> tokens;
  for (const auto& m : (*golden_)["media"]) tokens[m["name"]] = m["num_tokens"].get<int64_t>();
  for (const auto& p : (*golden_)["prompts"]) {
    for (size_t i = 0; i < p["media"].size(); ++i) {
      const auto& span = p["media_spans"][i];
      EXPECT_EQ(span[1].get<int64_t>() - span[0].get<int64_t>(), tokens.at(p["media"][i])) << p["name"];
    }
  }
}

// The video prompt's chunk text comes from frame sampling: 7 frames at 2 fps give two
// chunks whose timestamps the golden prompt spells out.
TEST_F(VisionGolden, VideoChunkPromptsMatch) {
  std::vector<std::string> chunk_items;
  int64_t frames = 0;
  for (const auto& m : (*golden_)["media"]) {
    if (m["kind"] == "video_chunk") {
      chunk_items.push_back(m["name"]);
      frames += m["frames"].get<int64_t>();
    }
  }
  ASSERT_FALSE(chunk_items.empty());
  // The frames are already sampled at sample_fps, so the source rate is sample_fps.
  auto plan = plan_video_chunks(frames, cfg_->sample_fps, *cfg_);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->size(), chunk_items.size());
  std::string expected;
  for (const auto& c : *plan) expected += video_chunk_prompt(c);
  for (const auto& p : (*golden_)["prompts"]) {
    if (p["media"].size() == chunk_items.size() && p["media"][0] == chunk_items[0]) {
      EXPECT_NE(p["text"].get<std::string>().find(expected), std::string::npos) << expected;
    }
  }
}

TEST(TargetSize, NeverUpscalesAndPadsToMergeFactor) {
  MediaProcConfig cfg;
  cfg.patch_size = 14;
  cfg.merge_kernel_size = 2;
  cfg.temporal_merge_kernel_size = 4;
  cfg.in_patch_limit = 16384;
  cfg.patch_limit_on_one_side = 512;
  auto t = compute_target_size(57, 33, cfg.in_patch_limit, cfg);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->new_width, 57);
  EXPECT_EQ(t->new_height, 33);
  EXPECT_EQ((t->new_width + t->pad_width) % 28, 0);
  EXPECT_EQ(t->num_tokens, 6);
  // The real config's side cap: 10000 wide is limited to 512 patches (7168 px).
  auto wide = compute_target_size(10000, 100, cfg.in_patch_limit, cfg);
  ASSERT_TRUE(wide.ok());
  EXPECT_LE(wide->new_width, 7168);
  EXPECT_LE(wide->grid_w, 512);
  cfg.fixed_output_tokens = 64;
  EXPECT_EQ(compute_target_size(57, 33, cfg.in_patch_limit, cfg).status().code(), Code::kUnimplemented);
}

TEST(Preprocess, RejectsMismatchedFramesAndOversizedChunks) {
  MediaProcConfig cfg;
  cfg.patch_size = 14;
  cfg.merge_kernel_size = 2;
  cfg.temporal_merge_kernel_size = 2;
  cfg.in_patch_limit = 128;
  cfg.patch_limit_on_one_side = 32;
  cfg.image_mean = {0.5, 0.5, 0.5};
  cfg.image_std = {0.5, 0.5, 0.5};
  std::vector<RgbImage> frames = {testing::pattern_image(20, 20), testing::pattern_image(21, 20)};
  EXPECT_FALSE(preprocess_video_chunk(frames, cfg).ok());
  frames = {testing::pattern_image(20, 20), testing::pattern_image(20, 20), testing::pattern_image(20, 20)};
  EXPECT_FALSE(preprocess_video_chunk(frames, cfg).ok());
  EXPECT_FALSE(preprocess_image(RgbImage(), cfg).ok());
}

}  // namespace
}  // namespace k2::mm
