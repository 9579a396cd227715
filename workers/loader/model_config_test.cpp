#include "workers/loader/model_config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace k2 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kModels = fs::path(K2_TEST_DATA_DIR) / "models";

json read_json(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

std::vector<fs::path> model_dirs() {
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(kModels)) {
    if (fs::exists(entry.path() / "config.json")) dirs.push_back(entry.path());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

// Checks a parsed config against a JSON object of raw values (config.json's text model or
// golden.json's model_dims), key by key.
void expect_matches(const ModelConfig& c, const json& raw, const std::string& where) {
  SCOPED_TRACE(where);
  const std::pair<const char*, int64_t> ints[] = {
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"kv_lora_rank", c.kv_lora_rank},
      {"qk_nope_head_dim", c.qk_nope_head_dim},
      {"qk_rope_head_dim", c.qk_rope_head_dim},
      {"v_head_dim", c.v_head_dim},
      {"intermediate_size", c.intermediate_size},
      {"moe_intermediate_size", c.moe_intermediate_size},
      {"n_routed_experts", c.n_routed_experts},
      {"n_shared_experts", c.n_shared_experts},
      {"num_experts_per_tok", c.num_experts_per_tok},
      {"n_group", c.n_group},
      {"topk_group", c.topk_group},
      {"first_k_dense_replace", c.first_k_dense_replace},
      {"max_position_embeddings", c.max_position_embeddings},
  };
  for (const auto& [key, value] : ints) {
    ASSERT_TRUE(raw.contains(key)) << key;
    EXPECT_EQ(raw[key].get<int64_t>(), value) << key;
  }
  const std::pair<const char*, double> reals[] = {{"rms_norm_eps", c.rms_norm_eps},
                                                  {"rope_theta", c.rope_theta},
                                                  {"routed_scaling_factor", c.routed_scaling_factor}};
  for (const auto& [key, value] : reals) EXPECT_EQ(raw[key].get<double>(), value) << key;
  if (raw["q_lora_rank"].is_null()) {
    EXPECT_FALSE(c.q_lora_rank.has_value());
  } else {
    EXPECT_EQ(c.q_lora_rank, raw["q_lora_rank"].get<int64_t>());
  }
}

void expect_rope_matches(const RopeScaling& r, const json& raw) {
  EXPECT_EQ(r.type, raw["type"].get<std::string>());
  EXPECT_EQ(r.factor, raw["factor"].get<double>());
  EXPECT_EQ(r.original_max_position_embeddings, raw["original_max_position_embeddings"].get<int64_t>());
  EXPECT_EQ(r.beta_fast, raw["beta_fast"].get<double>());
  EXPECT_EQ(r.beta_slow, raw["beta_slow"].get<double>());
  EXPECT_EQ(r.mscale, raw["mscale"].get<double>());
  EXPECT_EQ(r.mscale_all_dim, raw["mscale_all_dim"].get<double>());
}

TEST(ModelConfig, ParsesEveryShippedSet) {
  int sets = 0;
  for (const fs::path& dir : model_dirs()) {
    SCOPED_TRACE(dir.string());
    auto config = ModelConfig::from_dir(dir);
    ASSERT_TRUE(config.ok()) << config.status().to_string();
    const json file = read_json(dir / "config.json");
    const bool k25 = file["model_type"] == "kimi_k25";
    const json& text = k25 ? file["text_config"] : file;
    expect_matches(*config, text, "config.json");
    expect_rope_matches(config->rope_scaling, text["rope_scaling"]);
    EXPECT_EQ(config->tensor_prefix, k25 ? "language_model." : "");
    EXPECT_EQ(config->eos_token_ids, std::vector<int64_t>{text["eos_token_id"].get<int64_t>()});
    EXPECT_EQ(config->bos_token_id, text["bos_token_id"].get<int64_t>());
    EXPECT_EQ(config->scoring_func, "sigmoid");
    if (fs::exists(dir / "golden.json")) {
      const json golden = read_json(dir / "golden.json");
      if (golden.contains("model_dims")) expect_matches(*config, golden["model_dims"], "golden.json model_dims");
      if (golden.contains("text_prefix")) {
        EXPECT_EQ(config->tensor_prefix, golden["text_prefix"].get<std::string>());
      }
      if (golden.contains("rope_scaling")) expect_rope_matches(config->rope_scaling, golden["rope_scaling"]);
      if (golden.contains("weights")) {
        const std::string w = golden["weights"];
        const WeightFormat want = w == "fp8"    ? WeightFormat::kFp8Block
                                  : w == "int4" ? WeightFormat::kInt4PackQuantized
                                                : WeightFormat::kBf16;
        EXPECT_EQ(config->weight_format, want) << w;
      }
    }
    const json* quant = text.contains("quantization_config") ? &text["quantization_config"] : nullptr;
    if (quant && (*quant)["quant_method"] == "fp8") {
      EXPECT_EQ(config->fp8_block_out, (*quant)["weight_block_size"][0].get<int64_t>());
      EXPECT_EQ(config->fp8_block_in, (*quant)["weight_block_size"][1].get<int64_t>());
    }
    if (quant && (*quant)["quant_method"] == "compressed-tensors") {
      EXPECT_EQ(config->int4_group_size,
                (*quant)["config_groups"]["group_0"]["weights"]["group_size"].get<int64_t>());
    }
    ++sets;
  }
  EXPECT_GE(sets, 10);  // eight golden sets, demo-trained, tiny-k25-vision
}

json tiny_bf16() { return read_json(kModels / "tiny-bf16" / "config.json"); }
json tiny_k25() { return read_json(kModels / "tiny-k25" / "config.json"); }

Status parse(const json& j) { return ModelConfig::from_json_text(j.dump()).status(); }

void expect_names(const Status& s, const std::string& key, Code code) {
  ASSERT_FALSE(s.ok()) << key;
  EXPECT_NE(s.message().find("'" + key + "'"), std::string::npos) << s.message();
  EXPECT_EQ(s.code(), code) << s.message();
}

TEST(ModelConfig, MissingKeysAreNamed) {
  const char* required[] = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "q_lora_rank",
                            "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "intermediate_size",
                            "moe_intermediate_size", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
                            "n_group", "topk_group", "first_k_dense_replace", "moe_layer_freq", "norm_topk_prob",
                            "routed_scaling_factor", "scoring_func", "topk_method", "rms_norm_eps", "rope_theta",
                            "max_position_embeddings", "model_type"};
  for (const char* key : required) {
    json j = tiny_bf16();
    j.erase(key);
    expect_names(parse(j), key, Code::kNotFound);
  }
  for (const char* key : {"factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale",
                          "mscale_all_dim"}) {
    json j = tiny_bf16();
    j["rope_scaling"].erase(key);
    expect_names(parse(j), std::string("rope_scaling.") + key, Code::kNotFound);
  }
  json k25 = tiny_k25();
  k25["text_config"].erase("rms_norm_eps");
  expect_names(parse(k25), "text_config.rms_norm_eps", Code::kNotFound);
  k25 = tiny_k25();
  k25.erase("text_config");
  expect_names(parse(k25), "text_config", Code::kNotFound);
  json fp8 = read_json(kModels / "tiny-fp8" / "config.json");
  fp8["quantization_config"].erase("weight_block_size");
  expect_names(parse(fp8), "quantization_config.weight_block_size", Code::kNotFound);
  k25 = tiny_k25();
  k25["text_config"]["quantization_config"]["config_groups"]["group_0"]["weights"].erase("group_size");
  expect_names(parse(k25), "text_config.quantization_config.config_groups.group_0.weights.group_size",
               Code::kNotFound);
}

TEST(ModelConfig, OutOfRangeValuesAreNamed) {
  const std::pair<const char*, json> cases[] = {
      {"hidden_size", 0},          {"vocab_size", -5},          {"num_experts_per_tok", 17},
      {"n_group", 3},              {"topk_group", 2},           {"rms_norm_eps", 0.0},
      {"rms_norm_eps", -1e-6},     {"qk_rope_head_dim", 15},    {"first_k_dense_replace", 5},
      {"routed_scaling_factor", 0}, {"eos_token_id", 1024},     {"bos_token_id", -1},
      {"rope_theta", -1.0},        {"kv_lora_rank", 0},         {"q_lora_rank", 0},
  };
  for (const auto& [key, value] : cases) {
    json j = tiny_bf16();
    j[key] = value;
    expect_names(parse(j), key, Code::kOutOfRange);
  }
  json j = tiny_bf16();
  j["eos_token_id"] = {769, 5000};
  expect_names(parse(j), "eos_token_id", Code::kOutOfRange);
  j = tiny_bf16();
  j["rope_scaling"]["factor"] = 0.5;
  expect_names(parse(j), "rope_scaling.factor", Code::kOutOfRange);
  j = tiny_bf16();
  j["hidden_size"] = 256.5;
  expect_names(parse(j), "hidden_size", Code::kInvalidArgument);
  j = tiny_bf16();
  j["norm_topk_prob"] = "yes";
  expect_names(parse(j), "norm_topk_prob", Code::kInvalidArgument);
  j = tiny_bf16();
  j["hidden_size"] = nullptr;
  expect_names(parse(j), "hidden_size", Code::kInvalidArgument);
}

TEST(ModelConfig, UnimplementedFeaturesAreNamed) {
  json j = tiny_bf16();
  j["scoring_func"] = "softmax";
  expect_names(parse(j), "scoring_func", Code::kUnimplemented);
  j = tiny_bf16();
  j["rope_scaling"]["type"] = "linear";
  expect_names(parse(j), "rope_scaling.type", Code::kUnimplemented);
  j = tiny_bf16();
  j["model_type"] = "llama";
  expect_names(parse(j), "model_type", Code::kUnimplemented);
  json k25 = tiny_k25();
  k25["text_config"]["model_type"] = "qwen2";
  expect_names(parse(k25), "text_config.model_type", Code::kUnimplemented);
  k25 = tiny_k25();
  k25["text_config"]["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] = 8;
  expect_names(parse(k25), "text_config.quantization_config.config_groups.group_0.weights", Code::kUnimplemented);
  j = tiny_bf16();
  j["quantization_config"] = {{"quant_method", "gptq"}};
  expect_names(parse(j), "quantization_config.quant_method", Code::kUnimplemented);
}

TEST(ModelConfig, AcceptsFamilyVariants) {
  json k25 = tiny_k25();
  k25["text_config"]["model_type"] = "deepseek_v3";
  auto c = ModelConfig::from_json_text(k25.dump());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->model_type, "kimi_k25");
  EXPECT_EQ(c->tensor_prefix, "language_model.");
  EXPECT_EQ(c->weight_format, WeightFormat::kInt4PackQuantized);
  // The text config's eps, not a default, and quantization from the top level when the
  // text config lacks it.
  EXPECT_EQ(c->rms_norm_eps, k25["text_config"]["rms_norm_eps"].get<double>());
  k25["text_config"].erase("quantization_config");
  c = ModelConfig::from_json_text(k25.dump());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->weight_format, WeightFormat::kInt4PackQuantized);

  json j = tiny_bf16();
  j["model_type"] = "deepseek_v3";
  j["q_lora_rank"] = nullptr;
  j["eos_token_id"] = {769, 770};
  j["bos_token_id"] = nullptr;
  c = ModelConfig::from_json_text(j.dump());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_FALSE(c->q_lora_rank.has_value());
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{769, 770}));
  EXPECT_FALSE(c->bos_token_id.has_value());
  EXPECT_EQ(c->weight_format, WeightFormat::kBf16);

  // transformers v5 writes rope_parameters (with rope_type and rope_theta) instead.
  j = tiny_bf16();
  json rope = j["rope_scaling"];
  rope.erase("type");
  rope["rope_type"] = "yarn";
  rope["rope_theta"] = j["rope_theta"];
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = rope;
  c = ModelConfig::from_json_text(j.dump());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->rope_scaling.type, "yarn");
  EXPECT_EQ(c->rope_theta, rope["rope_theta"].get<double>());
  EXPECT_EQ(c->rope_scaling.beta_fast, rope["beta_fast"].get<double>());

  j = tiny_bf16();
  j.erase("rope_scaling");
  c = ModelConfig::from_json_text(j.dump());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->rope_scaling.type, "");
}

// The media placeholder is optional: a text-only model has none; Kimi-K2.5 keeps it at the
// top level, beside text_config.
TEST(ModelConfig, MediaPlaceholderIsOptional) {
  auto c = ModelConfig::from_json_text(tiny_bf16().dump());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_FALSE(c->media_placeholder_token_id.has_value());
  json k25 = tiny_k25();
  c = ModelConfig::from_json_text(k25.dump());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->media_placeholder_token_id, k25["media_placeholder_token_id"].get<int32_t>());
  k25["text_config"]["media_placeholder_token_id"] = 5;  // the text config's wins
  c = ModelConfig::from_json_text(k25.dump());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->media_placeholder_token_id, 5);
  k25 = tiny_k25();
  k25["media_placeholder_token_id"] = k25["text_config"]["vocab_size"];
  expect_names(parse(k25), "media_placeholder_token_id", Code::kOutOfRange);
  k25["media_placeholder_token_id"] = "789";
  expect_names(parse(k25), "media_placeholder_token_id", Code::kInvalidArgument);
}

TEST(ModelConfig, FileErrorsNameThePath) {
  auto c = ModelConfig::from_dir(kModels / "no-such-set");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("no-such-set/config.json"), std::string::npos);
  EXPECT_FALSE(ModelConfig::from_json_text("{not json").ok());
  EXPECT_FALSE(ModelConfig::from_json_text("[]").ok());
}

}  // namespace
}  // namespace k2
