#include "workers/vision/vision_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace k2 {
namespace {

using nlohmann::json;

const std::filesystem::path kSet = std::filesystem::path(K2_TEST_DATA_DIR) / "models" / "tiny-k25-vision";

// A complete, valid config in the K2.5 layout (values of our own choosing).
json base_config() {
  return json::parse(R"({
    "model_type": "kimi_k25",
    "text_config": {"hidden_size": 96},
    "vision_config": {
      "patch_size": 7, "init_pos_emb_height": 5, "init_pos_emb_width": 6, "init_pos_emb_time": 3,
      "pos_emb_type": "divided_fixed", "vt_hidden_size": 48, "vt_intermediate_size": 80,
      "vt_num_attention_heads": 3, "vt_num_hidden_layers": 2, "merge_kernel_size": [2, 3],
      "merge_type": "sd2_tpool", "video_attn_type": "spatial_temporal", "mm_projector_type": "patchmerger",
      "mm_hidden_size": 48, "text_hidden_size": 64, "projector_hidden_act": "gelu", "projector_ln_eps": 1e-6
    }
  })");
}

Result<VisionConfig> parse(const json& j) { return VisionConfig::from_json_text(j.dump()); }

TEST(VisionConfig, ReadsEveryKey) {
  const VisionConfig c = parse(base_config()).value();
  EXPECT_EQ(c.patch_size, 7);
  EXPECT_EQ(c.pos_emb_height, 5);
  EXPECT_EQ(c.pos_emb_width, 6);
  EXPECT_EQ(c.pos_emb_time, 3);
  EXPECT_EQ(c.hidden_size, 48);
  EXPECT_EQ(c.intermediate_size, 80);
  EXPECT_EQ(c.num_heads, 3);
  EXPECT_EQ(c.head_dim(), 16);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.merge_height, 2);
  EXPECT_EQ(c.merge_width, 3);
  EXPECT_EQ(c.text_hidden_size, 64);
  EXPECT_DOUBLE_EQ(c.projector_ln_eps, 1e-6);
  EXPECT_EQ(c.patch_values(), 3 * 49);
  EXPECT_EQ(c.projector_width(), 6 * 48);
}

TEST(VisionConfig, ReadsTheTinySet) {
  const Result<VisionConfig> c = VisionConfig::from_dir(kSet);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_GT(c->num_layers, 0);
  EXPECT_EQ(c->hidden_size % c->num_heads, 0);
}

TEST(VisionConfig, FallsBackToVllmNamesAndTextHiddenSize) {
  json j = base_config();
  json& v = j["vision_config"];
  v.erase("vt_hidden_size");
  v["hidden_size"] = 24;
  v["mm_hidden_size"] = 24;
  v.erase("text_hidden_size");
  v.erase("projector_ln_eps");
  const VisionConfig c = parse(j).value();
  EXPECT_EQ(c.hidden_size, 24);
  EXPECT_EQ(c.text_hidden_size, 96);  // text_config.hidden_size
  EXPECT_DOUBLE_EQ(c.projector_ln_eps, 1e-5);
  // vt_* wins over the unprefixed name when both are present.
  v["vt_hidden_size"] = 48;
  v["mm_hidden_size"] = 48;
  EXPECT_EQ(parse(j)->hidden_size, 48);
}

TEST(VisionConfig, MissingAndBadKeysNameThemselves) {
  struct Case {
    const char* key;
    json value;  // null: erase the key
    Code code;
  };
  const std::vector<Case> cases = {
      {"vt_num_hidden_layers", nullptr, Code::kNotFound},
      {"patch_size", 0, Code::kOutOfRange},
      {"patch_size", "14", Code::kInvalidArgument},
      {"vt_hidden_size", 1.5, Code::kInvalidArgument},
      {"vt_num_attention_heads", 5, Code::kOutOfRange},  // 48 / 5
      {"vt_num_attention_heads", 8, Code::kOutOfRange},  // head 6: not a multiple of 4
      {"merge_kernel_size", json::array({2}), Code::kInvalidArgument},
      {"merge_kernel_size", json::array({2, 0}), Code::kOutOfRange},
      {"init_pos_emb_time", json(uint64_t{1} << 63), Code::kOutOfRange},
      {"pos_emb_type", "learnable", Code::kUnimplemented},
      {"merge_type", "sd2", Code::kUnimplemented},
      {"mm_projector_type", "patchmergerv2", Code::kUnimplemented},
      {"projector_hidden_act", "gelu_pytorch_tanh", Code::kUnimplemented},
      {"video_attn_type", "spatial", Code::kUnimplemented},
      {"mm_hidden_size", 64, Code::kUnimplemented},
      {"projector_ln_eps", -1.0, Code::kOutOfRange},
  };
  for (const Case& c : cases) {
    json j = base_config();
    if (c.value.is_null()) {
      j["vision_config"].erase(c.key);
    } else {
      j["vision_config"][c.key] = c.value;
    }
    const Result<VisionConfig> r = parse(j);
    ASSERT_FALSE(r.ok()) << c.key << " = " << c.value.dump();
    EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.key), std::string::npos) << r.status().to_string();
  }
}

TEST(VisionConfig, NotAVisionConfig) {
  EXPECT_FALSE(VisionConfig::from_json_text("{").ok());
  EXPECT_FALSE(VisionConfig::from_json_text("[]").ok());
  EXPECT_EQ(VisionConfig::from_json_text("{}").status().code(), Code::kNotFound);
  EXPECT_FALSE(VisionConfig::from_json_text(R"({"vision_config": 3})").ok());
  json j = base_config();
  j["vision_config"].erase("text_hidden_size");
  j.erase("text_config");
  EXPECT_EQ(parse(j).status().code(), Code::kNotFound);
  EXPECT_EQ(VisionConfig::from_dir("/nonexistent-dir").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace k2
