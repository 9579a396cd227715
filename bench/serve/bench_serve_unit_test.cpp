#include <gtest/gtest.h>

#include <cmath>

#include "bench/serve/bench_metrics.h"
#include "bench/serve/bench_serve.h"
#include "bench/serve/engine_overhead.h"
#include "bench/serve/load_client.h"
#include "bench/serve/random_dataset.h"
#include "bench/serve/server_process.h"
#include "bench/serve/sse_stream.h"

namespace k2::bench {
namespace {

RequestOutput ok_output(int64_t prompt, int64_t tokens, double ttft, double latency, std::vector<double> itl) {
  RequestOutput o;
  o.success = true;
  o.prompt_len = prompt;
  o.output_tokens = tokens;
  o.ttft = ttft;
  o.latency = latency;
  o.itl = std::move(itl);
  return o;
}

TEST(BenchMetrics, PercentileInterpolatesLikeNumpy) {
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 99), 3.97);
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile({7}, 99), 7);
  EXPECT_DOUBLE_EQ(percentile({}, 99), 0);
}

TEST(BenchMetrics, FormulasMatchVllm) {
  std::vector<RequestOutput> outs = {ok_output(10, 5, 0.1, 0.5, {0.1, 0.1, 0.1, 0.1}),
                                     ok_output(20, 1, 0.2, 0.2, {}), RequestOutput{}};
  outs[2].error = "boom";
  BenchmarkMetrics m = calculate_metrics(outs, 2.0, {99});
  EXPECT_EQ(m.completed, 2);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input, 30);
  EXPECT_EQ(m.total_output, 6);
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.0);
  EXPECT_DOUBLE_EQ(m.output_throughput, 3.0);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 18.0);
  EXPECT_NEAR(m.ttft.mean_ms, 150.0, 1e-9);
  EXPECT_NEAR(m.ttft.std_ms, 50.0, 1e-9);  // population std
  // TPOT only over requests with more than one token: (0.5 - 0.1) / 4.
  EXPECT_NEAR(m.tpot.mean_ms, 100.0, 1e-9);
  EXPECT_NEAR(m.itl.median_ms, 100.0, 1e-9);
  EXPECT_NEAR(m.e2el.mean_ms, 350.0, 1e-9);
  ASSERT_EQ(m.e2el.percentiles_ms.size(), 1u);
  EXPECT_NEAR(m.e2el.percentiles_ms[0].second, 497.0, 1e-9);
}

TEST(BenchMetrics, TableAndJsonUseVllmNames) {
  std::vector<RequestOutput> outs = {ok_output(3, 2, 0.01, 0.02, {0.01})};
  BenchmarkMetrics m = calculate_metrics(outs, 1.0, {50, 99.9});
  TableOptions t;
  t.percentile_metrics = {"ttft", "itl"};
  t.max_concurrency = 4;
  const std::string table = format_table(m, t);
  EXPECT_EQ(table.rfind("============ Serving Benchmark Result ============\n", 0), 0u);
  EXPECT_NE(table.find("Successful requests:                     1         \n"), std::string::npos);
  EXPECT_NE(table.find("Maximum request concurrency:             4"), std::string::npos);
  EXPECT_NE(table.find("---------------Time to First Token----------------\n"), std::string::npos);
  EXPECT_NE(table.find("P99.9 ITL (ms):"), std::string::npos);
  EXPECT_NE(table.find("Median TTFT (ms):                        10.00"), std::string::npos);
  EXPECT_EQ(table.find("TPOT"), std::string::npos);
  EXPECT_NE(table.find("\n==================================================\n"), std::string::npos);
  nlohmann::json j = result_json(m, outs, t.percentile_metrics);
  for (const char* key : {"completed", "total_input_tokens", "total_output_tokens", "request_throughput",
                          "output_throughput", "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p50_ttft_ms",
                          "p99.9_itl_ms", "ttfts", "itls", "input_lens", "output_lens"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_FALSE(j.contains("mean_tpot_ms"));
}

TEST(BenchMetrics, ParsePercentiles) {
  EXPECT_EQ(parse_percentiles("50,90,99.9"), (std::vector<double>{50, 90, 99.9}));
  EXPECT_TRUE(parse_percentiles("x").empty());
  EXPECT_TRUE(parse_percentiles("101").empty());
  EXPECT_EQ(percentile_label(99), "p99");
  EXPECT_EQ(percentile_label(99.9), "p99.9");
}

TEST(SseStream, SplitsEventsAcrossReads) {
  SseSplitter s;
  EXPECT_TRUE(s.feed("data: {\"a\"").empty());
  auto got = s.feed(":1}\n\ndata: [DONE]\r\n\n: comment\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "{\"a\":1}");
  EXPECT_EQ(got[1], "[DONE]");
}

TEST(SseStream, ReadsChunksUsageAndErrors) {
  auto c = parse_stream_chunk(R"({"choices":[{"index":0,"text":"hi"}]})");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->has_choice);
  EXPECT_EQ(c->text, "hi");
  auto u = parse_stream_chunk(R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":7}})");
  ASSERT_TRUE(u.ok());
  EXPECT_FALSE(u->has_choice);
  EXPECT_EQ(u->completion_tokens, 7);
  EXPECT_TRUE(parse_stream_chunk("[DONE]")->done);
  auto e = parse_stream_chunk(R"({"error":{"message":"too long"}})");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "too long");
  EXPECT_FALSE(parse_stream_chunk("{not json").ok());
  EXPECT_FALSE(parse_stream_chunk("[1]").ok());
}

TEST(RandomDataset, LengthsIdsAndDeterminism) {
  RandomDatasetOptions o;
  o.num_prompts = 50;
  o.input_len = 100;
  o.output_len = 20;
  o.range_ratio = 0.5;
  o.vocab_size = 77;
  o.seed = 3;
  auto a = make_random_requests(o);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->size(), 50u);
  bool varied = false;
  for (const auto& r : *a) {
    EXPECT_GE(r.prompt_ids.size(), 50u);
    EXPECT_LE(r.prompt_ids.size(), 150u);
    EXPECT_GE(r.expected_output_len, 10);
    EXPECT_LE(r.expected_output_len, 30);
    varied |= r.prompt_ids.size() != (*a)[0].prompt_ids.size();
    for (int64_t id : r.prompt_ids) EXPECT_TRUE(id >= 0 && id < 77);
  }
  EXPECT_TRUE(varied);
  auto b = make_random_requests(o);
  EXPECT_EQ((*a)[7].prompt_ids, (*b)[7].prompt_ids);
  o.range_ratio = 0;
  auto fixed = make_random_requests(o);
  ASSERT_TRUE(fixed.ok());
  for (const auto& r : *fixed) EXPECT_EQ(r.prompt_ids.size(), 100u);
  o.vocab_size = 0;
  EXPECT_FALSE(make_random_requests(o).ok());
  o.vocab_size = 10;
  o.range_ratio = 1.5;
  EXPECT_FALSE(make_random_requests(o).ok());
}

TEST(BenchServe, OptionsAndBaseUrl) {
  auto o = parse_bench_serve_options({"--model", "m", "--num-prompts", "5", "--request-rate", "2.5", "--ignore-eos"});
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->num_prompts, 5);
  EXPECT_DOUBLE_EQ(o->request_rate, 2.5);
  EXPECT_TRUE(o->ignore_eos);
  EXPECT_TRUE(std::isinf(parse_bench_serve_options({"--model", "m"})->request_rate));
  EXPECT_FALSE(parse_bench_serve_options({"--model", "m", "--num-promts", "5"}).ok());
  EXPECT_FALSE(parse_bench_serve_options({"--model", "m", "--dataset-name", "sharegpt"}).ok());
  EXPECT_FALSE(parse_bench_serve_options({"--model", "m", "--percentile-metrics", "ttft,foo"}).ok());
  auto t = parse_base_url("http://localhost:1234/prefix/", "/v1/completions");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "localhost");
  EXPECT_EQ(t->port, 1234);
  EXPECT_EQ(t->path, "/prefix/v1/completions");
  EXPECT_FALSE(parse_base_url("https://x", "/").ok());
  EXPECT_FALSE(parse_base_url("http://x:99999", "/").ok());
}

TEST(EngineOverhead, ParsesAndMergesStepTimingLines) {
  const std::string log =
      "[info] enginecore 0: step timing: batch=1 steps=10 input_us=1.00 schedule_us=2.00 write_us=3.00 "
      "wait_us=100.00 update_us=4.00\n"
      "noise\n"
      "[info] enginecore 0: step timing: batch=1 steps=30 input_us=2.00 schedule_us=2.00 write_us=3.00 "
      "wait_us=200.00 update_us=4.00\n"
      "[info] enginecore 0: step timing: batch=64 steps=5 input_us=1.00 schedule_us=1.00 write_us=1.00 "
      "wait_us=1.00 update_us=1.00 overhead_p50_us=4.50 step_p50_us=5.50\n"
      "step timing: batch=2 steps=1 input_us=1.2.3 schedule_us=1 write_us=1 wait_us=1 update_us=1\n";
  auto rows = parse_step_timing(log);
  ASSERT_EQ(rows.size(), 3u);
  auto b1 = merge_rows(rows, 1);
  ASSERT_TRUE(b1.has_value());
  EXPECT_EQ(b1->steps, 40);
  EXPECT_DOUBLE_EQ(b1->input_us, 1.75);
  EXPECT_DOUBLE_EQ(b1->wait_us, 175.0);
  EXPECT_DOUBLE_EQ(b1->overhead_us(), 10.75);
  EXPECT_FALSE(merge_rows(rows, 3).has_value());
  EXPECT_EQ(b1->step_p50_us, 0.0);  // not logged on those lines
  auto b64 = merge_rows(rows, 64);
  ASSERT_TRUE(b64.has_value());
  EXPECT_DOUBLE_EQ(b64->overhead_p50_us, 4.5);
  EXPECT_DOUBLE_EQ(b64->step_p50_us, 5.5);
}

TEST(EngineOverhead, ShrinkKeepsVocabularyAndArchitecture) {
  nlohmann::json base = {{"vocab_size", 4321}, {"hidden_size", 7168}, {"model_type", "kimi_k2"}, {"num_hidden_layers", 61}};
  nlohmann::json tiny = shrink_config(base);
  EXPECT_EQ(tiny["vocab_size"], 4321);
  EXPECT_EQ(tiny["model_type"], "kimi_k2");
  EXPECT_LT(tiny["hidden_size"].get<int>(), 7168);
  EXPECT_LT(tiny["num_hidden_layers"].get<int>(), 61);
}

TEST(ServerProcess, FindsListenPort) {
  EXPECT_EQ(find_listen_port("[info] serving m on http://127.0.0.1:41234 (try: curl ...)"), 41234);
  EXPECT_EQ(find_listen_port("nothing yet"), 0);
}

}  // namespace
}  // namespace k2::bench
