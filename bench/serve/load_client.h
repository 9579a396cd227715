// The benchmark's HTTP side: streams completion requests to an OpenAI-compatible server on
// one thread (Boost.Asio C++20 coroutines over Boost.Beast), with Poisson or instant
// arrivals and an optional cap on requests in flight, timing every streamed chunk as
// vLLM's benchmark client does. LoadClient owns its io_context; not thread-safe (one
// caller runs it to completion).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "bench/serve/bench_metrics.h"
#include "shm/status.h"

namespace k2::bench {

struct HttpTarget {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string path = "/v1/completions";
};

// "http://host:port[/prefix]" -> host, port and the prefix to put before the endpoint.
Result<HttpTarget> parse_base_url(const std::string& base_url, const std::string& endpoint);

struct LoadPlan {
  std::vector<std::string> bodies;       // one JSON request body per request, in send order
  std::vector<int64_t> prompt_lens;      // counted as input tokens
  double request_rate = std::numeric_limits<double>::infinity();  // req/s; inf: all at once
  double burstiness = 1.0;               // gamma shape of the gaps; 1 is Poisson
  int64_t max_concurrency = 0;           // 0: no cap
  uint64_t seed = 0;
  double request_timeout_s = 6 * 3600;   // aiohttp's default in vLLM's client
};

struct LoadResult {
  std::vector<RequestOutput> outputs;  // in the order of plan.bodies
  double duration_s = 0;
};

// Sends every request of `plan` to `target` and waits for all of them. An error only when
// the target cannot be resolved; failed requests are outputs with success = false.
Result<LoadResult> run_load(const HttpTarget& target, const LoadPlan& plan);

}  // namespace k2::bench
