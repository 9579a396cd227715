#include "frontend/http/server.h"

#include <spdlog/spdlog.h>

#include "frontend/http/connection.h"

namespace k2::http {

void ServerState::exchange_started() {
  std::lock_guard lock(mu);
  ++in_flight;
}

void ServerState::exchange_ended() {
  std::lock_guard lock(mu);
  if (in_flight > 0) --in_flight;
  if (in_flight == 0) idle_cv.notify_all();
}

namespace {

void do_accept(const std::shared_ptr<ServerState>& state) {
  state->acceptor.async_accept(net::make_strand(state->io), [state](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !state->acceptor.is_open()) return;
      spdlog::warn("accept failed: {}", ec.message());
    } else if (state->connections.load() >= state->options.max_connections) {
      spdlog::warn("connection limit {} reached, closing a new connection", state->options.max_connections);
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      auto conn = std::make_shared<Connection>(std::move(socket), state);
      {
        std::lock_guard lock(state->mu);
        state->live.remove_if([](const std::weak_ptr<Connection>& w) { return w.expired(); });
        state->live.push_back(conn);
      }
      conn->start();
    }
    if (!state->draining.load()) do_accept(state);
  });
}

}  // namespace

HttpServer::HttpServer(ServerOptions options) : state_(std::make_shared<ServerState>(std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

Router& HttpServer::router() { return state_->router; }

Status HttpServer::start() {
  beast::error_code ec;
  auto address = net::ip::make_address(state_->options.host, ec);
  if (ec) return invalid_argument("--host '" + state_->options.host + "' is not an IP address: " + ec.message());
  tcp::endpoint ep(address, state_->options.port);
  auto& acc = state_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec && state_->options.reuse_port)
    acc.set_option(net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return io_error("cannot listen on " + state_->options.host + ":" + std::to_string(state_->options.port) + ": " +
                    ec.message());
  }
  state_->bound_port = acc.local_endpoint().port();
  do_accept(state_);
  const int n = std::max(1, state_->options.threads);
  state_->running_threads = n;
  for (int i = 0; i < n; ++i) {
    state_->threads.emplace_back([state = state_] {
      state->io.run();
      std::lock_guard lock(state->mu);
      --state->running_threads;
      state->idle_cv.notify_all();
    });
  }
  return Status::ok_status();
}

uint16_t HttpServer::port() const { return state_->bound_port; }
bool HttpServer::draining() const { return state_->draining.load(); }

size_t HttpServer::in_flight() const {
  std::lock_guard lock(state_->mu);
  return state_->in_flight;
}

size_t HttpServer::drain(std::chrono::milliseconds timeout) {
  if (state_->stopped.load()) return 0;
  state_->draining.store(true);
  net::post(state_->io, [state = state_] {
    beast::error_code ec;
    state->acceptor.close(ec);
  });
  size_t left = 0;
  {
    std::unique_lock lock(state_->mu);
    state_->idle_cv.wait_for(lock, timeout, [&] { return state_->in_flight == 0; });
    left = state_->in_flight;
  }
  if (left > 0) spdlog::warn("drain timed out with {} request(s) in flight; cancelling them", left);
  stop();
  return left;
}

void HttpServer::stop() {
  if (state_->stopped.exchange(true)) return;
  state_->draining.store(true);
  if (state_->threads.empty()) {  // never started: nothing runs the io_context, post nothing
    beast::error_code ec;
    state_->acceptor.close(ec);
    return;
  }
  std::list<std::weak_ptr<Connection>> live;
  {
    std::lock_guard lock(state_->mu);
    live = state_->live;
  }
  for (auto& w : live) {
    if (auto c = w.lock()) c->post_force_close();
  }
  net::post(state_->io, [state = state_] {
    beast::error_code ec;
    state->acceptor.close(ec);
  });
  // With the acceptor and every socket closed the threads run out of work and return, which
  // also runs (and so frees) every pending handler; io.stop() is only the fallback.
  {
    std::unique_lock lock(state_->mu);
    if (!state_->idle_cv.wait_for(lock, std::chrono::seconds(3), [&] { return state_->running_threads == 0; })) {
      lock.unlock();
      spdlog::warn("HTTP threads did not finish after closing every connection; stopping them");
      state_->io.stop();
    }
  }
  for (auto& t : state_->threads) {
    if (t.joinable()) t.join();
  }
  state_->threads.clear();
  release_leftovers();
}

// With no thread running the io_context, this thread owns every strand. A connection still
// alive here is held by a cycle (exchange <-> connection, or a handler queued after the
// threads ran dry that holds the connection, whose state holds the io_context): cancel it
// in place and run what is queued, so nothing outlives the server.
void HttpServer::release_leftovers() {
  std::list<std::weak_ptr<Connection>> live;
  {
    std::lock_guard lock(state_->mu);
    live.swap(state_->live);
  }
  for (auto& w : live) {
    if (auto c = w.lock()) c->abandon();
  }
  state_->io.restart();
  state_->io.poll();
}

}  // namespace k2::http
