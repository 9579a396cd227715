// End to end: `k2serve serve` of tiny-bf16 with dummy weights on a free port, and the
// benchmark against it through `k2serve bench` (table on stdout, JSON result file)
// and through the library (failure accounting). No timing is asserted.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench/serve/bench_serve.h"
#include "bench/serve/server_process.h"
#include "tests/support/test_data.h"

namespace k2::bench {
namespace {

namespace fs = std::filesystem;

const fs::path kBin = K2_BIN_DIR;
const fs::path kData = K2_TEST_DATA_DIR;

std::string read_file(const fs::path& p) { return testdata::read_text(p.string()); }

class BenchServeE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("k2-bench-e2e-" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    auto server = ServerProcess::start(kBin / "k2serve",
                                       {"serve", (kData / "models/tiny-bf16").string(), "--tokenizer",
                                        (kData / "text/tok-1024").string(), "--load-format", "dummy", "--host",
                                        "127.0.0.1", "--port", "0"},
                                       *dir_ / "server.log", std::chrono::seconds(240));
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = new ServerProcess(std::move(*server));
  }
  static void TearDownTestSuite() {
    delete server_;
    std::error_code ec;
    if (dir_) fs::remove_all(*dir_, ec);
    delete dir_;
  }
  static std::string base_url() { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  static inline fs::path* dir_ = nullptr;
  static inline ServerProcess* server_ = nullptr;
};

TEST_F(BenchServeE2E, TwentyPromptsPrintTheTableAndSaveVllmKeys) {
  ASSERT_NE(server_, nullptr);
  const fs::path out = *dir_ / "bench.out";
  const std::string cmd = (kBin / "k2serve").string() + " bench serve --base-url " + base_url() + " --model " +
                          (kData / "models/tiny-bf16").string() +
                          " --dataset-name random --random-input-len 32 --random-output-len 16 --num-prompts 20"
                          " --ignore-eos --seed 1 --save-result --result-dir " +
                          (*dir_ / "results").string() + " --result-filename r.json > " + out.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string text = read_file(out);
  ASSERT_EQ(rc, 0) << text << "\nserver log:\n" << server_->log_text();
  for (const char* line : {"============ Serving Benchmark Result ============", "Successful requests:                     20",
                           "Failed requests:                         0", "Total input tokens:                      640",
                           "Total generated tokens:                  320", "Request throughput (req/s):",
                           "Output token throughput (tok/s):", "Total Token throughput (tok/s):", "Mean TTFT (ms):",
                           "P99 TTFT (ms):", "Median TPOT (ms):", "Mean ITL (ms):", "P99 E2EL (ms):"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  const nlohmann::json j = nlohmann::json::parse(read_file(*dir_ / "results" / "r.json"), nullptr, false);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["completed"], 20);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["total_input_tokens"], 640);
  EXPECT_EQ(j["total_output_tokens"], 320);
  for (const char* key : {"request_throughput", "output_throughput", "total_token_throughput", "duration",
                          "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms",
                          "p99_tpot_ms", "mean_itl_ms", "median_itl_ms", "p99_itl_ms", "mean_e2el_ms",
                          "median_e2el_ms", "p99_e2el_ms"}) {
    ASSERT_TRUE(j.contains(key) && j[key].is_number()) << key;
    EXPECT_GT(j[key].get<double>(), 0.0) << key;
  }
  // 16 tokens each, in at most 16 chunks (the server may hold back bytes of an unfinished
  // UTF-8 character and send them with the next token), so at most 15 gaps.
  ASSERT_EQ(j["itls"].size(), 20u);
  for (const auto& itl : j["itls"]) {
    EXPECT_GE(itl.size(), 1u);
    EXPECT_LE(itl.size(), 15u);
  }
  for (const auto& n : j["output_lens"]) EXPECT_EQ(n, 16);
  EXPECT_LE(j["median_ttft_ms"].get<double>(), j["p99_ttft_ms"].get<double>());
}

TEST_F(BenchServeE2E, PoissonArrivalsWithAConcurrencyCap) {
  ASSERT_NE(server_, nullptr);
  auto o = parse_bench_serve_options({"--base-url", base_url(), "--model", (kData / "models/tiny-bf16").string(),
                                      "--random-input-len", "8", "--random-output-len", "4", "--random-range-ratio",
                                      "0.5", "--num-prompts", "10", "--request-rate", "200", "--max-concurrency", "3",
                                      "--ignore-eos", "--disable-test-run"});
  ASSERT_TRUE(o.ok()) << o.status().message();
  auto r = run_bench_serve(*o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->metrics.completed, 10);
  EXPECT_EQ(r->metrics.failed, 0);
  EXPECT_EQ(r->result["max_concurrency"], 3);
  EXPECT_NE(r->table.find("Maximum request concurrency:             3"), std::string::npos);
  int64_t generated = 0;
  for (const auto& v : r->result["output_lens"]) generated += v.get<int64_t>();
  EXPECT_EQ(r->result["total_output_tokens"].get<int64_t>(), generated);
  EXPECT_GT(generated, 0);
}

TEST_F(BenchServeE2E, RejectedRequestsAreCountedAsFailed) {
  ASSERT_NE(server_, nullptr);
  // Prompts longer than the model's context are refused by the server.
  auto o = parse_bench_serve_options({"--base-url", base_url(), "--model", (kData / "models/tiny-bf16").string(),
                                      "--random-input-len", "100000", "--random-output-len", "4", "--num-prompts",
                                      "3", "--disable-test-run"});
  ASSERT_TRUE(o.ok());
  auto r = run_bench_serve(*o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->metrics.completed, 0);
  EXPECT_EQ(r->metrics.failed, 3);
  EXPECT_NE(r->result["errors"][0].get<std::string>().find("HTTP 4"), std::string::npos) << r->result["errors"][0];
  // Without --disable-test-run the benchmark stops at the test prompt, as vLLM's does.
  o->disable_test_run = false;
  EXPECT_FALSE(run_bench_serve(*o).ok());
}

// `bench overhead` end to end: the engine's step-timing lines (K2_STEP_TIMING) come back as
// one table row per batch size. Only the presence and sanity of figures is checked.
TEST(BenchOverheadE2E, ReportsOneRowPerBatchSize) {
  const fs::path out = fs::temp_directory_path() / ("k2-bench-overhead-" + std::to_string(::getpid()) + ".out");
  const std::string cmd = (kBin / "k2serve").string() + " bench overhead --k2serve " + (kBin / "k2serve").string() +
                          " --base-config " + (kData / "models/tiny-bf16/config.json").string() + " --tokenizer " +
                          (kData / "text/tok-1024").string() +
                          " --batch-sizes 1,4 --output-len 64 --rounds 1 > " + out.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string text = read_file(out);
  std::error_code ec;
  fs::remove(out, ec);
  ASSERT_EQ(rc, 0) << text;
  ASSERT_NE(text.find("overhead_us"), std::string::npos) << text;
  for (const char* batch : {"\n     1 ", "\n     4 "}) {
    const size_t at = text.find(batch);
    ASSERT_NE(at, std::string::npos) << batch << "\n" << text;
    std::istringstream row(text.substr(at));
    int64_t b = 0, steps = 0;
    row >> b >> steps;
    // The batch's requests arrive over a few steps (HTTP), and a fast-path step of this tiny
    // model takes ~0.2 ms, so only part of a round's 64 steps runs at the full batch size.
    EXPECT_GE(steps, 11) << text;
  }
}

}  // namespace
}  // namespace k2::bench
