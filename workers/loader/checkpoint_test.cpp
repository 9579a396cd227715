#include "workers/loader/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "workers/loader/progress.h"
#include "workers/loader/test_util.h"

namespace k2 {
namespace {

namespace fs = std::filesystem;
using testing::RawTensor;
using testing::TempDir;
using testing::to_bytes;

const fs::path kModels = fs::path(K2_TEST_DATA_DIR) / "models";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void expect_error(const Status& status, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(status.ok());
  for (const std::string& part : parts) {
    EXPECT_NE(status.message().find(part), std::string::npos) << "'" << part << "' not in: " << status.message();
  }
}

// Resident bytes of the mapping that starts at `start`, from /proc/self/smaps: only the pages
// this process has faulted in (and the kernel's fault-around neighbours) count.
int64_t mapping_rss(const void* start) {
  std::ifstream smaps("/proc/self/smaps");
  char prefix[32];
  std::snprintf(prefix, sizeof prefix, "%lx-", reinterpret_cast<unsigned long>(start));
  std::string line;
  bool in_mapping = false;
  while (std::getline(smaps, line)) {
    if (line.rfind(prefix, 0) == 0) in_mapping = true;
    if (in_mapping && line.rfind("Rss:", 0) == 0) return std::stoll(line.substr(4)) * 1024;
  }
  return -1;
}

// Every set in tests/data/models that holds a checkpoint, as a gtest-safe name.
std::vector<std::string> checkpoint_sets() {
  std::vector<std::string> sets;
  for (const auto& entry : fs::directory_iterator(kModels)) {
    if (fs::exists(entry.path() / "config.json")) sets.push_back(entry.path().filename().string());
  }
  std::sort(sets.begin(), sets.end());
  return sets;
}

class EverySet : public ::testing::TestWithParam<std::string> {};

// Opens the set as the worker would and converts every tensor to float32: linear modules
// through linear_f32 (FP8 / INT4 / plain), everything else float through tensor_f32. The
// results are all kept, as the fp32 forward pass keeps them, so a run of one set under
// /usr/bin/time -v shows the peak RSS of loading that set.
TEST_P(EverySet, ConvertsEveryTensorToF32) {
  const fs::path dir = kModels / GetParam();
  auto config = ModelConfig::from_dir(dir);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  auto ckpt = Checkpoint::open(dir, *config);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  const auto names = ckpt->tensor_names();
  ASSERT_FALSE(names.empty());
  ASSERT_TRUE(ckpt->has("model.embed_tokens.weight"));
  ASSERT_TRUE(ckpt->has("model.norm.weight"));
  int64_t converted = 0, quantized = 0;
  std::vector<TensorF32> kept;
  uint64_t f32_bytes = 0;
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    auto view = ckpt->view(name);
    ASSERT_TRUE(view.ok()) << view.status().to_string();
    if (ends_with(name, "_scale_inv") || ends_with(name, ".weight_scale") || ends_with(name, ".weight_shape")) {
      continue;  // read together with their weight
    }
    Result<TensorF32> t = TensorF32{};
    if (ends_with(name, ".weight_packed")) {
      t = ckpt->linear_f32(name.substr(0, name.size() - 14));
      ++quantized;
    } else if (view->dtype == DType::kF8E4M3) {
      t = ckpt->linear_f32(name.substr(0, name.size() - 7));
      ++quantized;
    } else {
      t = ckpt->tensor_f32(name);
    }
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    ASSERT_EQ(static_cast<int64_t>(t->data.size()), t->numel());
    for (float v : t->data) ASSERT_TRUE(std::isfinite(v));
    f32_bytes += t->data.size() * sizeof(float);
    kept.push_back(std::move(t).value());
    ++converted;
  }
  std::printf("%s: %lld tensors, %.2f MB float32 from %.2f MB of shards\n", GetParam().c_str(),
              static_cast<long long>(converted), static_cast<double>(f32_bytes) / 1e6,
              static_cast<double>(ckpt->total_bytes()) / 1e6);
  EXPECT_EQ(quantized > 0, config->weight_format != WeightFormat::kBf16);
  EXPECT_GT(converted, config->num_hidden_layers * 8);
}

INSTANTIATE_TEST_SUITE_P(Models, EverySet, ::testing::ValuesIn(checkpoint_sets()), [](const auto& info) {
  std::string name = info.param;
  for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name;
});

TEST(Checkpoint, ShardsAreMappedNotRead) {
  auto ckpt = Checkpoint::open(kModels / "tiny-bf16");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  ASSERT_GT(ckpt->shards().size(), 1u);
  for (const SafetensorsFile* shard : ckpt->shards()) {
    const int64_t rss = mapping_rss(shard->mapping());
    ASSERT_GE(rss, 0) << "no mapping of " << shard->path() << " in /proc/self/smaps";
    EXPECT_LT(rss, static_cast<int64_t>(shard->size() / 4)) << "open() read " << shard->path();
  }
  for (const std::string& name : ckpt->tensor_names()) {
    auto view = ckpt->view(name);
    ASSERT_TRUE(view.ok());
    bool inside = false;
    for (const SafetensorsFile* shard : ckpt->shards()) {
      inside |= view->data >= shard->mapping() && view->data + view->bytes <= shard->mapping() + shard->size();
    }
    EXPECT_TRUE(inside) << name;
  }
  // After prefault() every page of the mapping is resident.
  ASSERT_TRUE(ckpt->prefault(nullptr).ok());
  const int64_t page = ::sysconf(_SC_PAGESIZE);
  for (const SafetensorsFile* shard : ckpt->shards()) {
    const int64_t pages = (static_cast<int64_t>(shard->size()) + page - 1) / page;
    EXPECT_EQ(mapping_rss(shard->mapping()), pages * page) << shard->path();
  }
}

TEST(Checkpoint, OneLayerSpansShardsAndEveryIndexEntryResolves) {
  auto ckpt = Checkpoint::open(kModels / "tiny-bf16");
  ASSERT_TRUE(ckpt.ok());
  std::map<std::string, std::set<fs::path>> shards_of_layer;
  for (const std::string& name : ckpt->tensor_names()) {
    if (name.rfind("model.layers.", 0) != 0) continue;
    const std::string layer = name.substr(0, name.find('.', 13));
    shards_of_layer[layer].insert(ckpt->file_of(name));
  }
  bool spans = false;
  for (const auto& entry : shards_of_layer) spans |= entry.second.size() > 1;
  EXPECT_TRUE(spans) << "expected tiny-bf16 to split some layer across shards";
}

TEST(Checkpoint, K25PrefixIsApplied) {
  auto config = ModelConfig::from_dir(kModels / "tiny-k25");
  ASSERT_TRUE(config.ok());
  auto ckpt = Checkpoint::open(kModels / "tiny-k25", *config);
  ASSERT_TRUE(ckpt.ok());
  EXPECT_TRUE(ckpt->has("model.norm.weight"));
  EXPECT_TRUE(ckpt->has("lm_head.weight"));
  EXPECT_FALSE(ckpt->has("language_model.model.norm.weight"));
  auto view = ckpt->view("model.norm.weight");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->name, "language_model.model.norm.weight");
}

TEST(Checkpoint, PrefaultReportsAllBytes) {
  auto ckpt = Checkpoint::open(kModels / "tiny-bf16");
  ASSERT_TRUE(ckpt.ok());
  uint64_t last_done = 0, calls = 0;
  ProgressReporter progress("test", ckpt->total_bytes(), ProgressStyle::kQuiet);
  auto forward = progress.callback();
  Status s = ckpt->prefault([&](uint64_t done, uint64_t total, double seconds) {
    EXPECT_EQ(total, ckpt->total_bytes());
    EXPECT_GE(done, last_done);
    EXPECT_GE(seconds, 0.0);
    last_done = done;
    ++calls;
    forward(done, total, seconds);
  });
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(last_done, ckpt->total_bytes());
  EXPECT_GE(calls, ckpt->shards().size());
  EXPECT_EQ(progress.done(), ckpt->total_bytes());
}

// A two-shard checkpoint written from scratch, optionally broken by `damage`.
class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<RawTensor> one = {{"model.layers.0.a.weight", "BF16", {2, 2}, to_bytes(std::vector<uint16_t>(4))},
                                  {"model.layers.0.b.weight", "F32", {3}, to_bytes(std::vector<float>{1, 2, 3})}};
    std::vector<RawTensor> two = {{"model.layers.0.c.weight", "BF16", {2}, to_bytes(std::vector<uint16_t>(2))}};
    testing::write_file(dir_ / "model-1-of-2.safetensors", testing::file_bytes(one));
    testing::write_file(dir_ / "model-2-of-2.safetensors", testing::file_bytes(two));
    index_ = {{"metadata", {{"total_size", 30}}},
              {"weight_map",
               {{"model.layers.0.a.weight", "model-1-of-2.safetensors"},
                {"model.layers.0.b.weight", "model-1-of-2.safetensors"},
                {"model.layers.0.c.weight", "model-2-of-2.safetensors"}}}};
    write_index();
  }
  void write_index() { testing::write_text(dir_ / "model.safetensors.index.json", index_.dump()); }
  Status open() { return Checkpoint::open(dir_.path()).status(); }

  TempDir dir_;
  nlohmann::json index_;
};

TEST_F(BadCheckpoint, TheIntactOneOpens) {
  auto ckpt = Checkpoint::open(dir_.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ(ckpt->tensor_names().size(), 3u);
  auto b = ckpt->tensor_f32("model.layers.0.b.weight");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->data, (std::vector<float>{1, 2, 3}));
}

TEST_F(BadCheckpoint, IndexPointingAtAMissingShard) {
  index_["weight_map"]["model.layers.0.c.weight"] = "model-3-of-2.safetensors";
  write_index();
  auto s = open();
  expect_error(s, {"model.safetensors.index.json", "model-3-of-2.safetensors", "model.layers.0.c.weight",
                   "does not exist"});
  EXPECT_EQ(s.code(), Code::kNotFound);
}

TEST_F(BadCheckpoint, IndexNamingATensorTheShardLacks) {
  index_["weight_map"]["model.layers.0.d.weight"] = "model-2-of-2.safetensors";
  write_index();
  expect_error(open(), {"model-2-of-2.safetensors", "tensor 'model.layers.0.d.weight'", "does not contain"});
}

TEST_F(BadCheckpoint, MissingTensor) {
  auto ckpt = Checkpoint::open(dir_.path());
  ASSERT_TRUE(ckpt.ok());
  auto s = ckpt->view("model.layers.0.z.weight").status();
  expect_error(s, {"model.safetensors.index.json", "tensor 'model.layers.0.z.weight'", "not found"});
  EXPECT_EQ(s.code(), Code::kNotFound);
  expect_error(ckpt->linear_f32("model.layers.0.z").status(), {"tensor 'model.layers.0.z.weight'"});
  expect_error(ckpt->tensor_f32("model.layers.0.z.weight").status(), {"model.layers.0.z.weight"});
}

TEST_F(BadCheckpoint, TruncatedShard) {
  const fs::path shard = dir_ / "model-1-of-2.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 4);
  expect_error(open(), {"model-1-of-2.safetensors", "tensor 'model.layers.0.b.weight'", "out of range"});
  fs::resize_file(shard, 20);  // now inside the header
  expect_error(open(), {"model-1-of-2.safetensors", "header length", "past the end"});
}

TEST_F(BadCheckpoint, BadShardContentNamesFileAndTensor) {
  std::vector<RawTensor> bad = {{"model.layers.0.c.weight", "BF17", {2}, to_bytes(std::vector<uint16_t>(2))}};
  testing::write_file(dir_ / "model-2-of-2.safetensors", testing::file_bytes(bad));
  expect_error(open(), {"model-2-of-2.safetensors", "tensor 'model.layers.0.c.weight'", "unknown dtype"});
  std::vector<RawTensor> mismatch = {{"model.layers.0.c.weight", "BF16", {3}, to_bytes(std::vector<uint16_t>(2))}};
  testing::write_file(dir_ / "model-2-of-2.safetensors", testing::file_bytes(mismatch));
  expect_error(open(), {"model-2-of-2.safetensors", "tensor 'model.layers.0.c.weight'", "bytes"});
}

TEST_F(BadCheckpoint, BadIndex) {
  testing::write_text(dir_ / "model.safetensors.index.json", "{\"weight_map\": ");
  expect_error(open(), {"model.safetensors.index.json", "JSON"});
  testing::write_text(dir_ / "model.safetensors.index.json", "{\"metadata\": {}}");
  expect_error(open(), {"model.safetensors.index.json", "weight_map"});
  index_["weight_map"]["model.layers.0.c.weight"] = "../elsewhere.safetensors";
  write_index();
  expect_error(open(), {"model.safetensors.index.json", "model.layers.0.c.weight"});
  index_["weight_map"]["model.layers.0.c.weight"] = 7;
  write_index();
  expect_error(open(), {"model.safetensors.index.json", "model.layers.0.c.weight"});
}

TEST(Checkpoint, NoCheckpointInDirectory) {
  TempDir dir;
  auto s = Checkpoint::open(dir.path()).status();
  expect_error(s, {dir.path().string(), "model.safetensors.index.json", "model.safetensors"});
  EXPECT_EQ(s.code(), Code::kNotFound);
}

TEST(Checkpoint, SingleFileCheckpoint) {
  TempDir dir;
  std::vector<RawTensor> tensors = {{"lm_head.weight", "F16", {1, 2}, to_bytes(std::vector<uint16_t>{0x3c00, 0xc000})},
                                    {"model.layers.0.idx", "I64", {2}, to_bytes(std::vector<int64_t>{5, -1})}};
  testing::write_file(dir / "model.safetensors", testing::file_bytes(tensors));
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  auto w = ckpt->linear_f32("lm_head");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->data, (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(ckpt->linear_bytes("lm_head"), 4u);
  auto idx = ckpt->tensor_i64("model.layers.0.idx");
  ASSERT_TRUE(idx.ok());
  EXPECT_EQ(*idx, (std::vector<int64_t>{5, -1}));
  expect_error(ckpt->linear_f32("model.layers.0").status(), {"model.layers.0.weight"});
  expect_error(ckpt->tensor_f32("model.layers.0.idx").status(), {"model.safetensors", "model.layers.0.idx"});
}

}  // namespace
}  // namespace k2
