// The upstream half of the proxy: one client exchange relayed to a backend (Boost.Beast over
// C++20 coroutines on the proxy's upstream io_context), and the /health probe. See
// proxy_server.h for the routing and retry rules. Free functions; the coroutines own their
// sockets, and an exchange's cancellation closes its upstream socket.
#pragma once

#include <utility>  // boost/asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>

#include "frontend/http/exchange.h"
#include "frontend/proxy/backend_pool.h"

namespace k2::proxy {

struct RelayTimeouts {
  std::chrono::milliseconds connect{5000};
  std::chrono::milliseconds request{21600 * 1000};
};

// Spawns the relay of `ex` on `io`; returns at once.
void spawn_relay(boost::asio::io_context& io, BackendPool& pool, std::shared_ptr<http::Exchange> ex,
                 RelayTimeouts timeouts);

// GET /health on the backend: true when it answers 200 within `timeout`.
boost::asio::awaitable<bool> probe_health(Backend& backend, std::chrono::milliseconds timeout);

}  // namespace k2::proxy
