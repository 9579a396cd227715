#include "frontend/http/metrics.h"

#include <gtest/gtest.h>

namespace k2::http {
namespace {

TEST(Metrics, RendersCounterGaugeHistogramInTextFormat) {
  MetricsRegistry reg;
  auto& c = reg.counter("vllm:prompt_tokens_total", "Prompt tokens.", {"model_name", "engine"});
  auto& g = reg.gauge("vllm:num_requests_running", "Running.", {"model_name", "engine"});
  auto& h = reg.histogram("vllm:e2e_request_latency_seconds", "E2E.", {"model_name"}, {0.5, 1.0});
  c.inc({"m", "0"}, 3);
  c.inc({"m", "0"}, 2);
  c.inc({"m", "0"}, -7);  // ignored: counters never go down
  g.set({"m", "0"}, 4);
  h.observe({"m"}, 0.2);
  h.observe({"m"}, 0.7);
  h.observe({"m"}, 9);
  const std::string text = reg.render();
  EXPECT_NE(text.find("# TYPE vllm:prompt_tokens_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:prompt_tokens_total{model_name=\"m\",engine=\"0\"} 5.0\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 4.0\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:e2e_request_latency_seconds_bucket{model_name=\"m\",le=\"0.5\"} 1.0\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:e2e_request_latency_seconds_bucket{model_name=\"m\",le=\"1.0\"} 2.0\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:e2e_request_latency_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 3.0\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:e2e_request_latency_seconds_count{model_name=\"m\"} 3.0\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:e2e_request_latency_seconds_sum{model_name=\"m\"} 9.9"), std::string::npos);
  EXPECT_EQ(h.count({"m"}), 3u);
}

TEST(Metrics, EscapesLabelValuesAndRunsCollectors) {
  MetricsRegistry reg;
  auto& g = reg.gauge("x", "X.", {"l"});
  int calls = 0;
  reg.add_collector([&] {
    ++calls;
    g.set({"a\"b\\c\nd"}, 1.5);
  });
  const std::string text = reg.render();
  EXPECT_EQ(calls, 1);
  EXPECT_NE(text.find("x{l=\"a\\\"b\\\\c\\nd\"} 1.5\n"), std::string::npos);
}

TEST(Metrics, CounterSetTotalIsMonotonic) {
  MetricsRegistry reg;
  auto& c = reg.counter("vllm:prefix_cache_hits_total", "Hits.", {});
  c.set_total({}, 10);
  c.set_total({}, 4);
  EXPECT_EQ(c.value({}), 10);
  EXPECT_NE(reg.render().find("vllm:prefix_cache_hits_total 10.0\n"), std::string::npos);
}

TEST(Metrics, Buckets125) {
  EXPECT_EQ(buckets_1_2_5(100), (std::vector<double>{1, 2, 5, 10, 20, 50, 100}));
}

}  // namespace
}  // namespace k2::http
