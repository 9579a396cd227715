#include "workers/vision/moonvit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "workers/loader/safetensors.h"

namespace k2 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSet = fs::path(K2_TEST_DATA_DIR) / "models" / "tiny-k25-vision";

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
  return d;
}

class MoonVitGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    VisionConfig config = VisionConfig::from_dir(kSet).value();
    Checkpoint checkpoint = Checkpoint::open(kSet).value();
    Result<std::unique_ptr<MoonVit>> m = MoonVit::load(checkpoint, config, ProgressStyle::kQuiet);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    model_ = std::move(m).value().release();
    golden_ = SafetensorsFile::open(kSet / "golden.safetensors").value().release();
    meta_ = new json(read_json(kSet / "golden.json"));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete golden_;
    delete meta_;
  }

  static std::vector<float> f32(const std::string& name) {
    TensorView view = golden_->view(name).value();
    return to_f32(view).value().data;
  }
  static MediaGrid grid_of(const std::string& item) {
    const std::vector<int64_t> g = to_i64(golden_->view("media." + item + ".grid_thw").value()).value();
    return MediaGrid{g.at(0), g.at(1), g.at(2)};
  }

  static MoonVit* model_;
  static SafetensorsFile* golden_;
  static json* meta_;
};
MoonVit* MoonVitGolden::model_ = nullptr;
SafetensorsFile* MoonVitGolden::golden_ = nullptr;
json* MoonVitGolden::meta_ = nullptr;

TEST_F(MoonVitGolden, ConfigMatchesTheGoldenCopy) {
  const json& v = (*meta_)["vision_config"];
  const VisionConfig& c = model_->config();
  EXPECT_EQ(c.patch_size, v["patch_size"].get<int64_t>());
  EXPECT_EQ(c.hidden_size, v["vt_hidden_size"].get<int64_t>());
  EXPECT_EQ(c.intermediate_size, v["vt_intermediate_size"].get<int64_t>());
  EXPECT_EQ(c.num_heads, v["vt_num_attention_heads"].get<int64_t>());
  EXPECT_EQ(c.num_layers, v["vt_num_hidden_layers"].get<int64_t>());
  EXPECT_EQ(c.pos_emb_height, v["init_pos_emb_height"].get<int64_t>());
  EXPECT_EQ(c.pos_emb_width, v["init_pos_emb_width"].get<int64_t>());
  EXPECT_EQ(c.pos_emb_time, v["init_pos_emb_time"].get<int64_t>());
  EXPECT_EQ(c.merge_height, v["merge_kernel_size"][0].get<int64_t>());
  EXPECT_EQ(c.merge_width, v["merge_kernel_size"][1].get<int64_t>());
  EXPECT_EQ(c.text_hidden_size, (*meta_)["text_dims"]["hidden_size"].get<int64_t>());
}

// Every media item of the set: tower, merge and projector against the vLLM fp32 goldens
// within the README's tolerances (section 10.2).
TEST_F(MoonVitGolden, EveryMediaItemMatchesTheGoldens) {
  const json& tol = (*meta_)["suggested_tolerances"];
  const std::vector<std::string> stages = {"patch_embed", "pos_emb", "block0", "vt_out", "merged", "proj_act"};
  ASSERT_FALSE((*meta_)["media"].empty());
  for (const json& item : (*meta_)["media"]) {
    const std::string name = item["name"].get<std::string>();
    SCOPED_TRACE(name);
    const MediaGrid grid = grid_of(name);
    ASSERT_EQ(model_->num_tokens(grid).value(), item["num_tokens"].get<int64_t>());
    const std::vector<float> pixels = f32("media." + name + ".pixel_values");
    VisionTrace trace;
    Result<MediaEmbedding> out = model_->encode(grid, pixels, &trace);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    ASSERT_EQ(out->tokens, item["num_tokens"].get<int64_t>());
    ASSERT_EQ(out->width, model_->config().text_hidden_size);

    const std::map<std::string, const std::vector<float>*> ours = {
        {"patch_embed", &trace.patch_embed}, {"pos_emb", &trace.pos_emb}, {"block0", &trace.block0},
        {"vt_out", &trace.vt_out},           {"merged", &trace.merged},   {"proj_act", &trace.proj_act},
        {"proj_out", &out->data}};
    std::string line = name + ":";
    for (const auto& [stage, mine] : ours) {
      const std::string tensor = "media." + name + "." + stage;
      if (!golden_->has(tensor)) continue;  // the `white` variant stores only proj_out
      const std::vector<float> want = f32(tensor);
      ASSERT_EQ(mine->size(), want.size()) << stage;
      const double diff = max_abs_diff(*mine, want);
      EXPECT_LE(diff, tol[stage].get<double>()) << stage;
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %.2e", stage.c_str(), diff);
      line += buf;
    }
    std::printf("%s\n", line.c_str());
  }
}

TEST_F(MoonVitGolden, BadGridsAndSizesAreErrors) {
  const VisionConfig& c = model_->config();
  const MediaGrid ok{1, 2 * c.merge_height, 2 * c.merge_width};
  EXPECT_TRUE(model_->num_tokens(ok).ok());
  EXPECT_FALSE(model_->num_tokens({0, ok.h, ok.w}).ok());
  EXPECT_FALSE(model_->num_tokens({c.pos_emb_time + 1, ok.h, ok.w}).ok());
  if (c.merge_height > 1) {
    EXPECT_FALSE(model_->num_tokens({1, ok.h + 1, ok.w}).ok());
  }
  EXPECT_FALSE(model_->num_tokens({1, ok.h, 0}).ok());
  EXPECT_FALSE(model_->num_tokens({1, int64_t{1} << 40, ok.w}).ok());
  std::vector<float> pixels(static_cast<size_t>(ok.patches() * c.patch_values()));
  EXPECT_TRUE(model_->encode(ok, pixels).ok());
  pixels.pop_back();
  const Result<MediaEmbedding> short_input = model_->encode(ok, pixels);
  ASSERT_FALSE(short_input.ok());
  EXPECT_EQ(short_input.status().code(), Code::kInvalidArgument);
}

// spatial_temporal attention: every frame of a chunk attends to every other, so changing
// one patch of the last frame moves the tower output of every patch of the first frame
// (attention per frame would leave them alone). Encoding is deterministic.
TEST_F(MoonVitGolden, VideoFramesAttendToEachOther) {
  std::string video;
  for (const json& item : (*meta_)["media"]) {
    if (item["grid_thw"][0].get<int64_t>() > 1) video = item["name"].get<std::string>();
  }
  ASSERT_FALSE(video.empty()) << "the golden set has a multi-frame item";
  const MediaGrid grid = grid_of(video);
  const int64_t d = model_->config().hidden_size, hw = grid.h * grid.w;
  std::vector<float> pixels = f32("media." + video + ".pixel_values");
  VisionTrace base, again, moved;
  const MediaEmbedding first = model_->encode(grid, pixels, &base).value();
  EXPECT_EQ(model_->encode(grid, pixels, &again).value().data, first.data);

  pixels[static_cast<size_t>((grid.t - 1) * hw * model_->config().patch_values())] += 0.5f;
  ASSERT_TRUE(model_->encode(grid, pixels, &moved).ok());
  for (int64_t p = 0; p < hw; ++p) {
    double diff = 0.0;
    for (int64_t i = p * d; i < (p + 1) * d; ++i) diff = std::max(diff, std::fabs(double(base.vt_out[i]) - moved.vt_out[i]));
    EXPECT_GT(diff, 1e-6) << "frame 0 patch " << p;
  }
}

TEST(MoonVitLoad, NeedsACheckpointWithoutPrefix) {
  VisionConfig config = VisionConfig::from_dir(kSet).value();
  Checkpoint prefixed = Checkpoint::open(kSet, "language_model.").value();
  const Result<std::unique_ptr<MoonVit>> m = MoonVit::load(prefixed, config, ProgressStyle::kQuiet);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("prefix"), std::string::npos);
}

TEST(MoonVitLoad, MissingTensorIsAnErrorNamingIt) {
  VisionConfig config = VisionConfig::from_dir(kSet).value();
  config.num_layers += 1;  // asks for a block the checkpoint does not have
  Checkpoint checkpoint = Checkpoint::open(kSet).value();
  const Result<std::unique_ptr<MoonVit>> m = MoonVit::load(checkpoint, config, ProgressStyle::kQuiet);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("blocks." + std::to_string(config.num_layers - 1)), std::string::npos)
      << m.status().to_string();
}

TEST(MoonVitLoad, DummyWeightsGiveFiniteDeterministicRows) {
  VisionConfig config = VisionConfig::from_dir(kSet).value();
  const std::unique_ptr<MoonVit> a = MoonVit::load_dummy(config, 7).value();
  const std::unique_ptr<MoonVit> b = MoonVit::load_dummy(config, 7).value();
  const MediaGrid grid{2, 2 * config.merge_height, 3 * config.merge_width};
  std::vector<float> pixels(static_cast<size_t>(grid.patches() * config.patch_values()));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = std::sin(static_cast<float>(i) * 0.01f);
  const MediaEmbedding ea = a->encode(grid, pixels).value(), eb = b->encode(grid, pixels).value();
  EXPECT_EQ(ea.tokens, 6);
  EXPECT_EQ(ea.data, eb.data);
  for (float v : ea.data) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace k2
