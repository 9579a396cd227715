// The vision golden check: the format is told from golden.json, the set passes, and a
// golden file that disagrees with the engine makes the named checks fail.
#include "workers/golden_vision.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace k2 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kModels = fs::path(K2_TEST_DATA_DIR) / "models";
const fs::path kVision = kModels / "tiny-k25-vision";

GoldenCheckOptions quiet() {
  GoldenCheckOptions o;
  o.progress = ProgressStyle::kQuiet;
  return o;
}

// A copy of the vision set whose golden.json is `edited`; the other files are links.
class EditedSet {
 public:
  explicit EditedSet(const json& edited) : dir_(fs::path(::testing::TempDir()) / "k2-vision-edited") {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& entry : fs::directory_iterator(kVision)) {
      if (entry.path().filename() != "golden.json") fs::create_symlink(entry.path(), dir_ / entry.path().filename());
    }
    std::ofstream(dir_ / "golden.json") << edited.dump();
  }
  ~EditedSet() { fs::remove_all(dir_); }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

json golden_json() {
  std::ifstream in(kVision / "golden.json");
  return json::parse(in);
}

TEST(GoldenVision, FormatIsReadFromGoldenJson) {
  EXPECT_TRUE(is_vision_golden_set(kVision).value());
  EXPECT_FALSE(is_vision_golden_set(kModels / "tiny-k25").value());
  EXPECT_FALSE(is_vision_golden_set(kModels / "no-such-set").ok());
}

TEST(GoldenVision, TheSetPasses) {
  std::ostringstream out;
  Result<bool> ok = run_vision_golden_check(kVision, out, quiet());
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_TRUE(*ok) << out.str();
  EXPECT_NE(out.str().find("PASS  media.e_600x400.resized_u8"), std::string::npos);
  EXPECT_NE(out.str().find("PASS  prompt.video_two_chunks.prefill_logits.chunked"), std::string::npos);
  EXPECT_NE(out.str().find(" 0 failed\n"), std::string::npos);
}

TEST(GoldenVision, DisagreementsFail) {
  json g = golden_json();
  // An item whose file also has a "white" twin carries transparency: told to composite it,
  // the check must see other pixel values.
  std::string item;
  for (const json& white : g["media"]) {
    for (json& m : g["media"]) {
      if (white["alpha"] == "white" && m["alpha"] == "drop" && m["files"] == white["files"]) {
        item = m["name"];
        m["alpha"] = "white";
      }
    }
  }
  ASSERT_FALSE(item.empty()) << "the set has an RGBA image in both alpha variants";
  // A wrong golden greedy token at a decisive first decode step.
  const double tol = g["suggested_tolerances"]["logits"];
  std::string prompt;
  for (json& p : g["prompts"]) {
    if (prompt.empty() && p["top2_gap_decode"][0].get<double>() > 2 * tol) {
      prompt = p["name"];
      p["greedy"][0] = (p["greedy"][0].get<int>() + 1) % g["text_dims"]["vocab_size"].get<int>();
    }
  }
  ASSERT_FALSE(prompt.empty());
  const EditedSet set(g);
  std::ostringstream out;
  Result<bool> ok = run_vision_golden_check(set.dir(), out, quiet());
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_FALSE(*ok);
  EXPECT_NE(out.str().find("FAIL  media." + item + ".pixel_values"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("FAIL  prompt." + prompt + ".greedy"), std::string::npos) << out.str();
}

TEST(GoldenVision, FastPathIsNotCovered) {
  GoldenCheckOptions o = quiet();
  o.layouts = weight_layouts_for("bfloat16", "").value();
  std::ostringstream out;
  Result<bool> ok = run_vision_golden_check(kVision, out, o);
  ASSERT_FALSE(ok.ok());
  EXPECT_EQ(ok.status().code(), Code::kUnimplemented);
}

}  // namespace
}  // namespace k2
