// BackendPool: the OpenAI-compatible servers a proxy balances over (vLLM's external data-
// parallel recipe: one API server per DP rank behind a proxy).
//
// pick() returns the healthy backend with the fewest requests in flight (ties go round
// robin), counting the request in until its Lease ends. A backend is marked down when a
// connection to it fails or its /health check does not answer 200, and up again when a
// check does: the proxy's health loop runs check_all() every interval.
//
// Owns the backends (fixed after construction). Thread-safe: picks, leases and health
// updates may come from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shm/status.h"

namespace k2::proxy {

struct Backend {
  std::string host;
  uint16_t port = 0;
  std::atomic<int64_t> in_flight{0};
  std::atomic<uint64_t> served{0};  // requests handed to it
  std::atomic<bool> healthy{true};  // optimistic until a check or a connection says otherwise
  std::string name() const { return host + ":" + std::to_string(port); }
};

class BackendPool {
 public:
  // "host:port,host:port" (IPv6 as [addr]:port).
  static Result<std::unique_ptr<BackendPool>> parse(const std::vector<std::string>& host_ports);
  // vLLM's disaggregated-proxy form: hosts and ports listed separately (one port for all
  // hosts, or one per host).
  static Result<std::unique_ptr<BackendPool>> from_hosts_ports(const std::vector<std::string>& hosts,
                                                               const std::vector<std::string>& ports);

  // Holds one request's place on a backend; releases it on destruction.
  class Lease {
   public:
    Lease() = default;
    explicit Lease(Backend* backend) : backend_(backend) {}
    Lease(Lease&& o) noexcept : backend_(std::exchange(o.backend_, nullptr)) {}
    Lease& operator=(Lease&& o) noexcept;
    ~Lease();
    Backend* operator->() const { return backend_; }
    Backend& operator*() const { return *backend_; }
    Backend* get() const { return backend_; }
    explicit operator bool() const { return backend_ != nullptr; }

   private:
    Backend* backend_ = nullptr;
  };

  // The least-loaded healthy backend other than those in `exclude`; empty when none.
  Lease pick(const std::vector<const Backend*>& exclude = {});
  void mark(Backend& backend, bool healthy, const std::string& why);

  size_t size() const { return backends_.size(); }
  size_t num_healthy() const;
  Backend& at(size_t i) { return *backends_[i]; }

 private:
  std::vector<std::unique_ptr<Backend>> backends_;
  std::atomic<uint64_t> next_{0};
};

}  // namespace k2::proxy
