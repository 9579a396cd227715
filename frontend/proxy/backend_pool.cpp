#include "frontend/proxy/backend_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

namespace k2::proxy {

namespace {

Result<uint16_t> parse_port(std::string_view text, std::string_view whole) {
  int v = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 1 || v > 65535) {
    return invalid_argument("bad port in backend '" + std::string(whole) + "'");
  }
  return static_cast<uint16_t>(v);
}

Result<std::unique_ptr<Backend>> parse_backend(std::string_view text) {
  auto b = std::make_unique<Backend>();
  size_t colon = std::string_view::npos;
  if (!text.empty() && text.front() == '[') {  // [v6]:port
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid_argument("bad backend '" + std::string(text) + "' (want [addr]:port)");
    }
    b->host = std::string(text.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return invalid_argument("bad backend '" + std::string(text) + "' (want host:port)");
    }
    b->host = std::string(text.substr(0, colon));
  }
  K2_ASSIGN_OR_RETURN(b->port, parse_port(text.substr(colon + 1), text));
  return b;
}

// "a,b" and repeated flags both give lists; empty pieces are skipped.
std::vector<std::string> split_commas(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const std::string& item : items) {
    size_t start = 0;
    while (start <= item.size()) {
      const size_t comma = item.find(',', start);
      std::string piece = item.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!piece.empty()) out.push_back(std::move(piece));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<BackendPool>> BackendPool::parse(const std::vector<std::string>& host_ports) {
  auto pool = std::make_unique<BackendPool>();
  for (const std::string& item : split_commas(host_ports)) {
    K2_ASSIGN_OR_RETURN(std::unique_ptr<Backend> b, parse_backend(item));
    pool->backends_.push_back(std::move(b));
  }
  if (pool->backends_.empty()) return invalid_argument("no backends given");
  return pool;
}

Result<std::unique_ptr<BackendPool>> BackendPool::from_hosts_ports(const std::vector<std::string>& hosts,
                                                                   const std::vector<std::string>& ports) {
  const std::vector<std::string> h = split_commas(hosts), p = split_commas(ports);
  if (h.empty()) return invalid_argument("no hosts given");
  if (p.size() != 1 && p.size() != h.size()) {
    return invalid_argument("give one port for all hosts or one per host (" + std::to_string(h.size()) + " hosts, " +
                            std::to_string(p.size()) + " ports)");
  }
  std::vector<std::string> joined;
  for (size_t i = 0; i < h.size(); ++i) {
    const bool v6 = h[i].find(':') != std::string::npos;
    joined.push_back((v6 ? "[" + h[i] + "]" : h[i]) + ":" + p[p.size() == 1 ? 0 : i]);
  }
  return parse(joined);
}

BackendPool::Lease& BackendPool::Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    if (backend_) --backend_->in_flight;
    backend_ = std::exchange(o.backend_, nullptr);
  }
  return *this;
}

BackendPool::Lease::~Lease() {
  if (backend_) --backend_->in_flight;
}

BackendPool::Lease BackendPool::pick(const std::vector<const Backend*>& exclude) {
  const size_t n = backends_.size();
  const size_t start = static_cast<size_t>(next_.fetch_add(1) % n);
  Backend* best = nullptr;
  for (size_t k = 0; k < n; ++k) {
    Backend* b = backends_[(start + k) % n].get();
    if (!b->healthy.load() || std::find(exclude.begin(), exclude.end(), b) != exclude.end()) continue;
    if (best == nullptr || b->in_flight.load() < best->in_flight.load()) best = b;
  }
  if (best == nullptr) return Lease();
  ++best->in_flight;
  ++best->served;
  return Lease(best);
}

void BackendPool::mark(Backend& backend, bool healthy, const std::string& why) {
  if (backend.healthy.exchange(healthy) != healthy) {
    if (healthy) {
      spdlog::info("proxy: backend {} is up again", backend.name());
    } else {
      spdlog::warn("proxy: backend {} is down ({}); routing around it", backend.name(), why);
    }
  }
}

size_t BackendPool::num_healthy() const {
  return static_cast<size_t>(std::count_if(backends_.begin(), backends_.end(),
                                           [](const auto& b) { return b->healthy.load(); }));
}

}  // namespace k2::proxy
