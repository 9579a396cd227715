#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench/models/make_random_model.h"
#include "bench/models/random_tensors.h"
#include "bench/models/safetensors_writer.h"
#include "bench/models/tokenizer_files.h"
#include "workers/loader/checkpoint.h"
#include "workers/models/deepseek_v3.h"
#include "tests/support/test_data.h"

namespace k2::bench {
namespace {

namespace fs = std::filesystem;

const fs::path kTokenizer = fs::path(K2_TEST_DATA_DIR) / "models" / "demo-trained";

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("k2-random-model-" + name);
  fs::remove_all(dir);
  return dir;
}

RandomModelOptions tiny_options(const std::string& weights, const fs::path& dir, int64_t seed = 3) {
  RandomModelOptions o;
  o.preset = "tiny";
  o.weights = weights;
  o.seed = seed;
  o.tokenizer = kTokenizer.string();
  o.max_shard_mb = 1;  // several shards even for the tiny model
  o.out_dir = dir.string();
  return o;
}

std::string slurp(const fs::path& p) { return testdata::read_text(p.string()); }

TEST(ModelPreset, BenchDs3HasTheIssuesSizes) {
  const ModelPreset p = find_model_preset("bench-ds3").value();
  EXPECT_NEAR(static_cast<double>(p.total_params()) / 1e6, 483, 2);
  EXPECT_NEAR(static_cast<double>(p.active_params()) / 1e6, 142, 1);
  const ModelPreset k2 = find_model_preset("k2-layer").value();
  EXPECT_EQ(k2.num_hidden_layers, 1);
  EXPECT_EQ(k2.first_k_dense_replace, 0);
  EXPECT_FALSE(find_model_preset("nope").ok());
}

TEST(RandomTensors, E4m3RoundTripsEveryFiniteCode) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;  // NaN
    const float v = e4m3_to_f32(static_cast<uint8_t>(code));
    const uint8_t back = f32_to_e4m3(v);
    EXPECT_EQ(e4m3_to_f32(back), v) << "code " << code;
  }
  EXPECT_EQ(f32_to_e4m3(1000.0f), 0x7E);   // saturates at 448
  EXPECT_EQ(f32_to_e4m3(-1000.0f), 0xFE);
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(1.0625f)), 1.0f);   // halfway between 1 and 1.125: to even
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(1.1875f)), 1.25f);  // halfway between 1.125 and 1.25: to even
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.00390625f)), 1.0f);  // tie to even
}

TEST(RandomTensors, ChunksGiveTheSameBytesAsOneCall) {
  const ModelPreset p = find_model_preset("tiny").value();
  for (RandomWeights w : {RandomWeights::kBf16, RandomWeights::kFp8, RandomWeights::kInt4}) {
    for (const TensorSpec& s : plan_tensors(p, w)) {
      std::vector<uint8_t> whole(s.bytes()), parts(s.bytes());
      fill_tensor(s, 9, 0, whole);
      const size_t es = dtype_size(s.dtype);
      const uint64_t n = s.numel(), step = std::max<uint64_t>(1, n / 3 + 1);
      for (uint64_t b = 0; b < n; b += step) {
        const uint64_t e = std::min(n, b + step);
        fill_tensor(s, 9, b, std::span<uint8_t>(parts.data() + b * es, (e - b) * es));
      }
      ASSERT_EQ(whole, parts) << s.name;
    }
  }
}

TEST(TokenizerFiles, ReadsTheDemoTokenizer) {
  const TokenizerInfo t = read_tokenizer_dir(kTokenizer).value();
  EXPECT_GT(t.num_ids, 256);
  ASSERT_TRUE(t.bos.has_value());
  EXPECT_LT(*t.bos, t.num_ids);
  ASSERT_FALSE(t.eos.empty());
  EXPECT_FALSE(parse_tokenizer_info("{}", "", "YQ== x\n").ok());
  EXPECT_FALSE(parse_tokenizer_info("[]", "", "YQ== 0\n").ok());
  EXPECT_FALSE(parse_tokenizer_info("{}", "{\"eos_token_id\": \"a\"}", "YQ== 0\n").ok());
  const TokenizerInfo small = parse_tokenizer_info(
      R"({"eos_token": {"content": "E"}, "added_tokens_decoder": {"9": {"content": "E"}}})", "", "YQ== 0\nYg== 4\n").value();
  EXPECT_EQ(small.num_ids, 10);
  EXPECT_EQ(small.eos, std::vector<int64_t>{9});
}

TEST(SafetensorsWriter, HeaderIsPaddedAndParsesBack) {
  const std::vector<TensorLayout> t = {{"b", DType::kBF16, {3, 5}}, {"a", DType::kF32, {7}}};
  const std::string h = encode_safetensors_header(t, {{"format", "pt"}});
  ASSERT_EQ(h.size() % 8, 0u);
  std::string file = h + std::string(t[0].bytes() + t[1].bytes(), '\0');
  Result<SafetensorsHeader> parsed =
      parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), file.size());
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_EQ(parsed->tensors.at("b").begin, 0u);
  EXPECT_EQ(parsed->tensors.at("a").begin, t[0].bytes());
  EXPECT_EQ(parsed->metadata.at("format"), "pt");
}

TEST(MakeRandomModel, OptionErrorsAreValues) {
  EXPECT_FALSE(parse_make_random_model_options({"--weights", "bf16", "/tmp/x"}).ok());  // no preset
  EXPECT_FALSE(parse_make_random_model_options({"--preset", "tiny", "--weights", "fp4", "/tmp/x"}).ok());
  EXPECT_FALSE(parse_make_random_model_options({"--preset", "tiny"}).ok());  // no OUT_DIR
  EXPECT_FALSE(parse_make_random_model_options({"--preset", "huge", "/tmp/x"}).ok());
  EXPECT_TRUE(parse_make_random_model_options({"--help"}).ok());
  const RandomModelOptions o = parse_make_random_model_options({"--preset", "tiny", "--seed", "4", "/tmp/x"}).value();
  EXPECT_EQ(o.out_dir, "/tmp/x");
  EXPECT_EQ(o.seed, 4);
}

TEST(MakeRandomModel, SameSeedSameBytesAndNonEmptyDirIsRefused) {
  const fs::path a = temp_dir("seed-a"), b = temp_dir("seed-b"), c = temp_dir("seed-c");
  ASSERT_TRUE(write_random_model(tiny_options("int4", a), ProgressStyle::kQuiet).ok());
  ASSERT_TRUE(write_random_model(tiny_options("int4", b), ProgressStyle::kQuiet).ok());
  ASSERT_TRUE(write_random_model(tiny_options("int4", c, 4), ProgressStyle::kQuiet).ok());
  int shards = 0;
  for (const auto& e : fs::directory_iterator(a)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".safetensors") continue;
    ++shards;
    EXPECT_EQ(slurp(a / name), slurp(b / name)) << name;
    EXPECT_NE(slurp(a / name), slurp(c / name)) << name;
  }
  EXPECT_GE(shards, 2);
  EXPECT_FALSE(write_random_model(tiny_options("int4", a), ProgressStyle::kQuiet).ok());
  RandomModelOptions again = tiny_options("bf16", a);
  again.overwrite = true;
  EXPECT_TRUE(write_random_model(again, ProgressStyle::kQuiet).ok());
  for (const fs::path& d : {a, b, c}) fs::remove_all(d);
}

TEST(MakeRandomModel, DryRunWritesNothingAndVocabSizeIsChecked) {
  const fs::path dir = temp_dir("dry");
  RandomModelOptions o = tiny_options("fp8", dir);
  o.dry_run = true;
  Result<RandomModelReport> plan = write_random_model(o, ProgressStyle::kQuiet);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_FALSE(fs::exists(dir));
  o.dry_run = false;
  Result<RandomModelReport> real = write_random_model(o, ProgressStyle::kQuiet);
  ASSERT_TRUE(real.ok()) << real.status().to_string();
  EXPECT_EQ(plan->tensor_bytes, real->tensor_bytes);
  EXPECT_GT(real->active_bytes, 0);
  EXPECT_LT(real->active_bytes, static_cast<double>(real->tensor_bytes));
  const nlohmann::json index = nlohmann::json::parse(slurp(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), real->tensor_bytes);
  fs::remove_all(dir);

  RandomModelOptions small = tiny_options("bf16", temp_dir("small-vocab"));
  small.vocab_size = 16;  // below the tokenizer's ids
  EXPECT_EQ(write_random_model(small, ProgressStyle::kQuiet).status().code(), Code::kInvalidArgument);
  small.vocab_size = 4096;
  small.dry_run = true;
  EXPECT_EQ(write_random_model(small, ProgressStyle::kQuiet)->preset.vocab_size, 4096);
}

class RandomModelLoads : public ::testing::TestWithParam<const char*> {};

TEST_P(RandomModelLoads, TheLoaderAndModelRunIt) {
  const std::string weights = GetParam();
  const fs::path dir = temp_dir(weights);
  Result<RandomModelReport> r = write_random_model(tiny_options(weights, dir), ProgressStyle::kQuiet);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_GE(r->num_shards, 2);
  for (const char* f : {"config.json", "model.safetensors.index.json", "tiktoken.model", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  }

  Result<ModelConfig> config = ModelConfig::from_dir(dir);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  const WeightFormat want = weights == "fp8"    ? WeightFormat::kFp8Block
                            : weights == "int4" ? WeightFormat::kInt4PackQuantized
                                                : WeightFormat::kBf16;
  EXPECT_EQ(config->weight_format, want);
  EXPECT_EQ(config->hidden_size, r->preset.hidden_size);
  EXPECT_EQ(config->rope_scaling.type, "yarn");
  Result<Checkpoint> ckpt = Checkpoint::open(dir, *config);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ(ckpt->has("model.layers.1.mlp.experts.0.gate_proj.weight_packed"), weights == "int4");
  EXPECT_EQ(ckpt->has("model.layers.0.self_attn.q_a_proj.weight_scale_inv"), weights == "fp8");

  // A dequantised expert keeps the 1/sqrt(in) scale in every format.
  Result<TensorF32> w = ckpt->linear_f32("model.layers.1.mlp.experts.3.up_proj");
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  double sq = 0;
  for (float v : w->data) sq += double(v) * v;
  const double sd = std::sqrt(sq / static_cast<double>(w->data.size()));
  EXPECT_NEAR(sd * std::sqrt(static_cast<double>(config->hidden_size)), 1.0, 0.1);

  Result<std::unique_ptr<DeepSeekV3>> model = DeepSeekV3::load(*ckpt, *config, ProgressStyle::kQuiet);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  LatentKvCache cache =
      LatentKvCache::create(config->num_hidden_layers, 4, 16, (*model)->cache_row_dim()).value();
  const std::vector<int32_t> tokens = {1, 17, 300, 5, 42}, blocks = {0};
  Result<Logits> logits = (*model)->forward(ForwardBatch{{{tokens, 0, blocks}}, LogitRows::kAll}, cache);
  ASSERT_TRUE(logits.ok()) << logits.status().to_string();
  ASSERT_EQ(logits->rows, 5);
  ASSERT_EQ(logits->vocab, config->vocab_size);
  ASSERT_EQ(logits->data.size(), static_cast<size_t>(5 * config->vocab_size));
  float lo = logits->data[0], hi = logits->data[0];
  for (float v : logits->data) {
    ASSERT_TRUE(std::isfinite(v));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GT(hi - lo, 0.5f) << "random weights give varied logits";
  EXPECT_LT(hi - lo, 1e3f) << "the weight scale keeps activations sane";
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, RandomModelLoads, ::testing::Values("bf16", "fp8", "int4"));

}  // namespace
}  // namespace k2::bench
