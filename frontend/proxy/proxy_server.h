// ProxyServer: `k2serve proxy`, the OpenAI-compatible load balancer of vLLM's external
// data-parallel recipe (one API server per DP rank, launched by `k2serve launch-dp` or by
// hand, and this proxy in front).
//
// Every /v1 and vLLM route is relayed to the healthy backend with the fewest requests in
// flight. Streams (text/event-stream) pass through chunk by chunk as the backend writes
// them; other answers are relayed whole. A backend that refuses the connection is marked
// down and the request goes to another one (nothing was sent yet); once a request has been
// sent it is never sent twice (completions are not idempotent), so a backend that dies
// mid-request fails only its own requests: a 502, or for a stream an error event and
// [DONE]. A health loop checks every backend's /health each interval and brings it back
// when it answers. The proxy's own /health is 200 while any backend is up.
//
// Owns the HTTP server (frontend/http), an io_context with its threads for the upstream
// side, and the BackendPool. start/drain/stop from one controlling thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "frontend/http/server.h"
#include "frontend/proxy/backend_pool.h"
#include "shm/status.h"

namespace k2::proxy {

struct ProxyOptions {
  std::string host = "127.0.0.1";
  int64_t port = 8000;
  std::vector<std::string> backends;  // host:port, comma-separated or repeated
  // vLLM's disaggregated-proxy form; until disaggregation exists only decoders are used.
  std::vector<std::string> prefiller_hosts, prefiller_ports, decoder_hosts, decoder_ports;
  double health_interval = 1.0;   // seconds between /health checks of every backend
  double connect_timeout = 5.0;   // seconds
  double request_timeout = 21600;  // seconds, a whole request (aiohttp's default, as vLLM's proxy)
  int64_t threads = 2;             // for the client side and for the upstream side each
};

class ProxyServer {
 public:
  static Result<std::unique_ptr<ProxyServer>> create(const ProxyOptions& options);
  ~ProxyServer();

  Status start();
  uint16_t port() const { return server_.port(); }
  BackendPool& pool() { return *pool_; }
  size_t drain(std::chrono::milliseconds timeout);
  void stop();

 private:
  struct Upstream;  // the upstream io_context, its threads and the health loop
  ProxyServer(const ProxyOptions& options, std::unique_ptr<BackendPool> pool);
  void relay(const std::shared_ptr<http::Exchange>& ex);
  void health(const std::shared_ptr<http::Exchange>& ex);

  ProxyOptions options_;
  std::unique_ptr<BackendPool> pool_;
  http::HttpServer server_;
  std::unique_ptr<Upstream> upstream_;
};

// `k2serve proxy`: parses the options, serves until SIGINT/SIGTERM, drains.
int proxy_command(const std::vector<std::string>& args);

}  // namespace k2::proxy
