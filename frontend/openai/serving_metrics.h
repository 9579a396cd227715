// vLLM's Prometheus metrics (names, types, labels model_name/engine, bucket bounds from
// vllm/v1/metrics/loggers.py), fed by the OpenAI layer per request and by the engine's
// stats at scrape time, plus http_requests_total per handler/method/status.
//
// Owns nothing but references into a MetricsRegistry it registers its families in; the
// registry must outlive it. Thread-safe (the registry is).
#pragma once

#include <memory>
#include <string>

#include "frontend/http/metrics.h"
#include "frontend/http/server.h"
#include "frontend/openai/engine_client.h"

namespace k2::openai {

// Seconds a finished request spent in each phase, on the engine's clock (vLLM's
// queued_ts -> scheduled_ts -> first_token_ts -> last_token_ts).
struct RequestPhases {
  double queue = 0;      // waiting before its first scheduling
  double prefill = 0;    // first scheduling -> first token
  double decode = 0;     // first token -> last token
  double inference = 0;  // first scheduling -> last token
};

class ServingMetrics {
 public:
  ServingMetrics(http::MetricsRegistry& registry, std::string model_name, int64_t max_model_len,
                 std::shared_ptr<EngineClient> engine);

  // Per engine request (one choice).
  void on_first_token(double seconds_since_arrival, int64_t prompt_tokens);
  void on_tokens(int64_t count, double seconds_since_previous_output);
  void on_finished(const std::string& finish_reason, double e2e_seconds, int64_t prompt_tokens,
                   int64_t generation_tokens, int32_t max_tokens, int32_t n);
  void on_phases(const RequestPhases& phases);
  void on_http(const http::CompletedExchange& done);

 private:
  http::LabelValues labels() const { return {model_name_, "0"}; }

  std::string model_name_;
  http::CounterFamily& prompt_tokens_;
  http::CounterFamily& generation_tokens_;
  http::CounterFamily& request_success_;
  http::CounterFamily& preemptions_;
  http::CounterFamily& prefix_queries_;
  http::CounterFamily& prefix_hits_;
  http::CounterFamily& mm_queries_;  // the workers' encoder cache (vLLM's mm cache counters)
  http::CounterFamily& mm_hits_;
  http::GaugeFamily& running_;
  http::GaugeFamily& waiting_;
  http::GaugeFamily& kv_usage_;
  http::GaugeFamily& engine_healthy_;
  http::HistogramFamily& ttft_;
  http::HistogramFamily& itl_;
  http::HistogramFamily& tpot_;
  http::HistogramFamily& e2e_;
  http::HistogramFamily& queue_time_;
  http::HistogramFamily& prefill_time_;
  http::HistogramFamily& decode_time_;
  http::HistogramFamily& inference_time_;
  http::HistogramFamily& prompt_hist_;
  http::HistogramFamily& generation_hist_;
  http::HistogramFamily& max_tokens_hist_;
  http::HistogramFamily& n_hist_;
  http::CounterFamily& http_requests_;
};

}  // namespace k2::openai
