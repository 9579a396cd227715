#include "multimodal/vision_golden.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

namespace k2::mm::testing {

Result<std::unique_ptr<VisionGoldenSet>> VisionGoldenSet::open(const std::string& dir) {
  auto out = std::make_unique<VisionGoldenSet>();
  out->dir_ = dir;
  std::ifstream in(dir + "/golden.json");
  if (!in) return not_found(dir + "/golden.json");
  out->json_ = nlohmann::json::parse(in, nullptr, false);
  if (out->json_.is_discarded()) return corrupt(dir + "/golden.json is not JSON");
  K2_ASSIGN_OR_RETURN(out->tensors_, SafetensorsFile::open(dir + "/golden.safetensors"));
  K2_ASSIGN_OR_RETURN(out->config_, load_media_proc_config(dir + "/preprocessor_config.json"));
  return out;
}

const nlohmann::json* VisionGoldenSet::media(const std::string& name) const {
  for (const auto& m : json_["media"]) {
    if (m["name"] == name) return &m;
  }
  return nullptr;
}

void expect_matches_golden(const VisionGoldenSet& golden, const std::string& name, const PreprocessedMedia& pre) {
  SCOPED_TRACE(name);
  auto grid = golden.tensors().view("media." + name + ".grid_thw");
  ASSERT_TRUE(grid.ok()) << grid.status().to_string();
  ASSERT_EQ(grid->dtype, DType::kI32);
  ASSERT_EQ(grid->numel(), 3);
  for (int i = 0; i < 3; ++i) {
    int32_t g;
    std::memcpy(&g, grid->data + 4 * i, 4);
    EXPECT_EQ(pre.grid_thw[size_t(i)], g) << "grid_thw[" << i << "]";
  }
  auto pv = golden.tensors().view("media." + name + ".pixel_values");
  ASSERT_TRUE(pv.ok()) << pv.status().to_string();
  ASSERT_EQ(pv->dtype, DType::kF32);
  ASSERT_EQ(size_t(pv->numel()), pre.pixel_values.size());
  std::vector<float> want(pre.pixel_values.size());
  std::memcpy(want.data(), pv->data, want.size() * 4);
  size_t mismatches = 0, first = want.size();
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::memcmp(&want[i], &pre.pixel_values[i], 4) != 0 && mismatches++ == 0) first = i;
  }
  EXPECT_EQ(mismatches, 0u) << "first at " << first << ": got " << pre.pixel_values[first] << " want " << want[first];
}

}  // namespace k2::mm::testing
