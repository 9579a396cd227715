#include "frontend/proxy/proxy_server.h"

#include <signal.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <iostream>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/log.h"
#include "enginecore/protocol/option_table.h"
#include "frontend/http/json_error.h"
#include "frontend/proxy/relay.h"

namespace k2::proxy {

namespace asio = boost::asio;

namespace {

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// The OpenAI and vLLM routes a client of one API server uses.
constexpr std::pair<const char*, const char*> kRoutes[] = {
    {"POST", "/v1/chat/completions"}, {"POST", "/v1/completions"}, {"POST", "/v1/embeddings"},
    {"GET", "/v1/models"},           {"POST", "/tokenize"},       {"POST", "/detokenize"},
    {"GET", "/version"},
};

const OptionTable<ProxyOptions>& proxy_table() {
  static const auto table = [] {
    using O = ProxyOptions;
    OptionTable<O> t;
    t.add("--host", &O::host, "address to listen on")
        .add("--port", &O::port, "port to listen on")
        .add("--backends", &O::backends, "API servers to balance over: host:port, comma-separated or repeated")
        .add("--prefiller-hosts", &O::prefiller_hosts, "disaggregated form: prefill servers (accepted; not used yet)")
        .add("--prefiller-ports", &O::prefiller_ports, "their ports (one, or one per host)")
        .add("--decoder-hosts", &O::decoder_hosts, "disaggregated form: decode servers (balanced over)")
        .add("--decoder-ports", &O::decoder_ports, "their ports (one, or one per host)")
        .add("--health-interval", &O::health_interval, "seconds between /health checks of every backend")
        .add("--connect-timeout", &O::connect_timeout, "seconds to connect to a backend before trying another")
        .add("--request-timeout", &O::request_timeout, "seconds a whole relayed request may take")
        .add("--threads", &O::threads, "threads for the client side and for the backend side (each)");
    return t;
  }();
  return table;
}

}  // namespace

namespace {

// Probes every backend's /health each interval, marking it down or up again.
asio::awaitable<void> health_loop(BackendPool& pool, std::chrono::milliseconds interval) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (true) {
    for (size_t i = 0; i < pool.size(); ++i) {
      Backend& b = pool.at(i);
      const bool ok = co_await probe_health(b, std::min(interval * 2, std::chrono::milliseconds(5000)));
      pool.mark(b, ok, "/health did not answer 200");
    }
    timer.expires_after(interval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

}  // namespace

struct ProxyServer::Upstream {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::vector<std::thread> threads;
};

Result<std::unique_ptr<ProxyServer>> ProxyServer::create(const ProxyOptions& options) {
  if (options.port < 0 || options.port > 65535) return invalid_argument("--port must be in [0, 65535]");
  if (options.threads < 1) return invalid_argument("--threads must be at least 1");
  if (options.health_interval <= 0 || options.connect_timeout <= 0 || options.request_timeout <= 0) {
    return invalid_argument("intervals and timeouts must be positive");
  }
  std::unique_ptr<BackendPool> pool;
  if (!options.backends.empty()) {
    K2_ASSIGN_OR_RETURN(pool, BackendPool::parse(options.backends));
  } else if (!options.decoder_hosts.empty()) {
    K2_ASSIGN_OR_RETURN(pool, BackendPool::from_hosts_ports(options.decoder_hosts, options.decoder_ports));
    if (!options.prefiller_hosts.empty()) {
      spdlog::warn("proxy: prefill/decode disaggregation is not implemented; balancing the decoders only");
    }
  } else {
    return invalid_argument("give --backends host:port,... (or --decoder-hosts/--decoder-ports)");
  }
  return std::unique_ptr<ProxyServer>(new ProxyServer(options, std::move(pool)));
}

ProxyServer::ProxyServer(const ProxyOptions& options, std::unique_ptr<BackendPool> pool)
    : options_(options),
      pool_(std::move(pool)),
      server_([&] {
        http::ServerOptions o;
        o.host = options.host;
        o.port = static_cast<uint16_t>(options.port);
        o.threads = static_cast<int>(options.threads);
        o.read_timeout = millis(options.request_timeout);
        return o;
      }()),
      upstream_(std::make_unique<Upstream>()) {
  for (const auto& [method, path] : kRoutes) {
    server_.router().add(method, path, [this](std::shared_ptr<http::Exchange> ex) { relay(ex); });
  }
  server_.router().add("GET", "/health", [this](std::shared_ptr<http::Exchange> ex) { health(ex); });
}

ProxyServer::~ProxyServer() { stop(); }

Status ProxyServer::start() {
  K2_RETURN_IF_ERROR(server_.start());
  asio::co_spawn(upstream_->io, health_loop(*pool_, millis(options_.health_interval)), asio::detached);
  for (int64_t i = 0; i < options_.threads; ++i) upstream_->threads.emplace_back([this] { upstream_->io.run(); });
  std::string names;
  for (size_t i = 0; i < pool_->size(); ++i) names += (i ? ", " : "") + pool_->at(i).name();
  spdlog::info("proxy on http://{}:{} balancing over {}", options_.host, server_.port(), names);
  return Status::ok_status();
}

void ProxyServer::relay(const std::shared_ptr<http::Exchange>& ex) {
  spawn_relay(upstream_->io, *pool_, ex, RelayTimeouts{millis(options_.connect_timeout), millis(options_.request_timeout)});
}

void ProxyServer::health(const std::shared_ptr<http::Exchange>& ex) {
  const size_t up = pool_->num_healthy();
  http::HttpResponse res;
  res.status = up > 0 ? 200 : 503;
  res.body = "{\"backends_up\": " + std::to_string(up) + ", \"backends\": " + std::to_string(pool_->size()) + "}";
  ex->respond(std::move(res));
}

size_t ProxyServer::drain(std::chrono::milliseconds timeout) { return server_.drain(timeout); }

void ProxyServer::stop() {
  server_.stop();
  if (!upstream_) return;
  upstream_->work.reset();
  upstream_->io.stop();
  for (auto& t : upstream_->threads)
    if (t.joinable()) t.join();
  upstream_->threads.clear();
}

int proxy_command(const std::vector<std::string>& args) {
  const char* usage = "k2serve proxy --backends HOST:PORT,... [options]";
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << proxy_table().help(ProxyOptions{}, usage);
      return 0;
    }
  }
  ProxyOptions options;
  if (Status st = proxy_table().parse(args, options, nullptr); !st.ok()) {
    std::cerr << "k2serve proxy: " << st.message() << "\n";
    return 2;
  }
  init_logging("proxy", "info");
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto proxy = ProxyServer::create(options);
  if (!proxy.ok()) {
    std::cerr << "k2serve proxy: " << proxy.status().message() << "\n";
    return 2;
  }
  if (Status st = (*proxy)->start(); !st.ok()) {
    spdlog::error("proxy: {}", st.to_string());
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("proxy: signal {}, draining", sig);
  (*proxy)->drain(std::chrono::seconds(10));
  (*proxy)->stop();
  return 0;
}

}  // namespace k2::proxy
