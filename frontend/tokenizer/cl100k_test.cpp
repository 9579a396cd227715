// Full-size check: k2's encodes against tiktoken's own, over the complete cl100k_base
// table (100,256 ranks) put into a Kimi-format directory by testdata/make_cl100k.mjs. ctest
// runs that script first (fixtures in CMakeLists.txt) and passes the directory in
// K2_CL100K_DIR; run by hand without it, the test skips.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/tokenizer/incremental_detokenizer.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2 {
namespace {

using nlohmann::json;

std::string cl100k_dir() {
  const char* dir = std::getenv("K2_CL100K_DIR");
  return dir == nullptr ? "" : dir;
}

TEST(Cl100k, EncodesMatchTiktokenAndLoadIsFast) {
  const std::string dir = cl100k_dir();
  if (dir.empty()) GTEST_SKIP() << "K2_CL100K_DIR is not set (ctest sets it)";
  // CPU time is what the loader costs; wall time on a shared test machine also counts
  // other processes, so it is only printed.
  const double cpu_start = static_cast<double>(std::clock());
  const auto start = std::chrono::steady_clock::now();
  auto loaded = Tokenizer::load(dir);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const double cpu_ms = (static_cast<double>(std::clock()) - cpu_start) * 1000.0 / CLOCKS_PER_SEC;
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const auto& t = *loaded;
  std::printf("loaded %d base tokens + %d special slots in %.1f ms CPU (%.1f ms wall)\n",
              t->num_base_tokens(), Tokenizer::kNumSpecialSlots, cpu_ms, ms);
  EXPECT_EQ(t->num_base_tokens(), 100256);
  EXPECT_LT(cpu_ms, 1000.0);

  std::ifstream in(dir + "/expected.jsonl");
  ASSERT_TRUE(in) << dir << "/expected.jsonl";
  std::string line;
  size_t rows = 0, tokens = 0;
  while (std::getline(in, line)) {
    const json row = json::parse(line);
    const std::string text = row["text"];
    const auto ordinary = row["ids_ordinary"].get<std::vector<int32_t>>();
    const auto ids = row["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(t->encode_ordinary(text), ordinary) << text;
    EXPECT_EQ(t->encode(text, false), ordinary) << text;
    EXPECT_EQ(t->encode(text), ids) << text;
    EXPECT_EQ(*t->decode(ids), text);
    IncrementalDetokenizer stream(t, false);
    std::string streamed;
    for (int32_t id : ids) streamed += *stream.add(id);
    EXPECT_EQ(streamed + stream.finish(), text);
    ++rows;
    tokens += ordinary.size();
  }
  std::printf("%zu corpus lines, %zu tokens identical to tiktoken\n", rows, tokens);
  EXPECT_GE(rows, 50u);
}

}  // namespace
}  // namespace k2
