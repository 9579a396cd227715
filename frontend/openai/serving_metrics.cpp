#include "frontend/openai/serving_metrics.h"

namespace k2::openai {

namespace {

const std::vector<std::string> kLabels{"model_name", "engine"};

std::vector<double> ttft_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
          2.5,   5.0,   7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}
std::vector<double> itl_buckets() {
  return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
}
std::vector<double> e2e_buckets() {
  return {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}

}  // namespace

ServingMetrics::ServingMetrics(http::MetricsRegistry& r, std::string model_name, int64_t max_model_len,
                               std::shared_ptr<EngineClient> engine)
    : model_name_(std::move(model_name)),
      prompt_tokens_(r.counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", kLabels)),
      generation_tokens_(r.counter("vllm:generation_tokens_total", "Number of generation tokens processed.", kLabels)),
      request_success_(r.counter("vllm:request_success_total", "Count of successfully processed requests.",
                                 {"model_name", "engine", "finished_reason"})),
      preemptions_(r.counter("vllm:num_preemptions_total", "Cumulative number of preemption from the engine.", kLabels)),
      prefix_queries_(r.counter("vllm:prefix_cache_queries_total",
                                "Prefix cache queries, in terms of number of queried tokens.", kLabels)),
      prefix_hits_(r.counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.",
                             kLabels)),
      mm_queries_(r.counter("vllm:mm_cache_queries_total",
                            "Multi-modal cache queries, in terms of number of queried items.", kLabels)),
      mm_hits_(r.counter("vllm:mm_cache_hits_total", "Multi-modal cache hits, in terms of number of cached items.",
                         kLabels)),
      running_(r.gauge("vllm:num_requests_running", "Number of requests in model execution batches.", kLabels)),
      waiting_(r.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", kLabels)),
      kv_usage_(r.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kLabels)),
      engine_healthy_(r.gauge("vllm:engine_healthy", "1 while the engine is alive.", kLabels)),
      ttft_(r.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", kLabels,
                        ttft_buckets())),
      itl_(r.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", kLabels,
                       itl_buckets())),
      tpot_(r.histogram("vllm:request_time_per_output_token_seconds",
                        "Histogram of time_per_output_token_seconds per request.", kLabels, itl_buckets())),
      e2e_(r.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", kLabels,
                       e2e_buckets())),
      queue_time_(r.histogram("vllm:request_queue_time_seconds",
                              "Histogram of time spent in WAITING phase for request.", kLabels, e2e_buckets())),
      prefill_time_(r.histogram("vllm:request_prefill_time_seconds",
                                "Histogram of time spent in PREFILL phase for request.", kLabels, e2e_buckets())),
      decode_time_(r.histogram("vllm:request_decode_time_seconds",
                               "Histogram of time spent in DECODE phase for request.", kLabels, e2e_buckets())),
      inference_time_(r.histogram("vllm:request_inference_time_seconds",
                                  "Histogram of time spent in RUNNING phase for request.", kLabels, e2e_buckets())),
      prompt_hist_(r.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", kLabels,
                               http::buckets_1_2_5(static_cast<double>(max_model_len)))),
      generation_hist_(r.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", kLabels,
                                   http::buckets_1_2_5(static_cast<double>(max_model_len)))),
      max_tokens_hist_(r.histogram("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
                                   kLabels, http::buckets_1_2_5(static_cast<double>(max_model_len)))),
      n_hist_(r.histogram("vllm:request_params_n", "Histogram of the n request parameter.", kLabels,
                          {1, 2, 5, 10, 20})),
      http_requests_(r.counter("http_requests_total", "Total number of requests by method, status and handler.",
                               {"handler", "method", "status"})) {
  r.add_collector([this, engine = std::move(engine)] {
    const EngineStats s = engine->stats();
    running_.set(labels(), static_cast<double>(s.num_running));
    waiting_.set(labels(), static_cast<double>(s.num_waiting));
    kv_usage_.set(labels(), s.kv_cache_usage);
    engine_healthy_.set(labels(), engine->healthy() ? 1 : 0);
    preemptions_.set_total(labels(), static_cast<double>(s.num_preemptions));
    prefix_queries_.set_total(labels(), static_cast<double>(s.prefix_cache_queries));
    prefix_hits_.set_total(labels(), static_cast<double>(s.prefix_cache_hits));
    mm_queries_.set_total(labels(), static_cast<double>(s.mm_cache_queries));
    mm_hits_.set_total(labels(), static_cast<double>(s.mm_cache_hits));
  });
  prompt_tokens_.inc(labels(), 0);
  generation_tokens_.inc(labels(), 0);
}

void ServingMetrics::on_first_token(double seconds, int64_t prompt_tokens) {
  ttft_.observe(labels(), seconds);
  prompt_tokens_.inc(labels(), static_cast<double>(prompt_tokens));
}

void ServingMetrics::on_tokens(int64_t count, double seconds_since_previous) {
  generation_tokens_.inc(labels(), static_cast<double>(count));
  if (seconds_since_previous >= 0) itl_.observe(labels(), seconds_since_previous);
}

void ServingMetrics::on_finished(const std::string& finish_reason, double e2e, int64_t prompt_tokens,
                                 int64_t generation_tokens, int32_t max_tokens, int32_t n) {
  request_success_.inc({model_name_, "0", finish_reason});
  e2e_.observe(labels(), e2e);
  prompt_hist_.observe(labels(), static_cast<double>(prompt_tokens));
  generation_hist_.observe(labels(), static_cast<double>(generation_tokens));
  max_tokens_hist_.observe(labels(), max_tokens);
  n_hist_.observe(labels(), n);
  if (generation_tokens > 1) tpot_.observe(labels(), e2e / static_cast<double>(generation_tokens));
}

void ServingMetrics::on_phases(const RequestPhases& p) {
  queue_time_.observe(labels(), p.queue);
  prefill_time_.observe(labels(), p.prefill);
  decode_time_.observe(labels(), p.decode);
  inference_time_.observe(labels(), p.inference);
}

void ServingMetrics::on_http(const http::CompletedExchange& done) {
  http_requests_.inc({done.route, done.request->method, std::to_string(done.status / 100) + "xx"});
}

}  // namespace k2::openai
