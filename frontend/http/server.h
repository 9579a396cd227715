// HttpServer: HTTP/1.1 on Boost.Beast + Asio with a small fixed pool of threads.
//
// Keep-alive, `Expect: 100-continue`, limits on header bytes (431) and body bytes (413)
// answered with JSON errors, a read timeout per request (covers idle keep-alive and
// slow senders) and a write timeout per write (a client that stops reading is dropped).
// While a handler works on a request the connection watches the socket, so a client that
// disconnects cancels the exchange (and, through the cancel hook, its engine request).
//
// Lifecycle: construct, add routes to router(), start() (binds only to options.host),
// then drain(timeout) and/or stop(). After drain() starts, new requests get 503 and no new
// connections are accepted; in-flight exchanges run to completion until the timeout, then
// are cancelled. The server owns its io_context, threads, acceptor and connections;
// start/drain/stop are called from one controlling thread, the rest is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "frontend/http/exchange.h"
#include "frontend/http/router.h"
#include "shm/status.h"

namespace k2::http {

// One line of the access log, also handed to an observer (metrics).
struct CompletedExchange {
  const HttpRequest* request = nullptr;
  std::string route;  // Router::route_label
  int status = 0;
  uint64_t bytes_sent = 0;
  double seconds = 0;
  bool cancelled = false;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;  // 0: pick a free port (tests); see HttpServer::port()
  int threads = 2;
  size_t max_header_bytes = 64 * 1024;
  size_t max_body_bytes = 32 * 1024 * 1024;
  size_t max_connections = 4096;
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds write_timeout{60'000};
  bool access_log = true;
  // SO_REUSEPORT: several API server processes (--api-server-count) listen on one port and
  // the kernel spreads the connections over them.
  bool reuse_port = false;
  std::function<void(const CompletedExchange&)> observer;
};

struct ServerState;

class HttpServer {
 public:
  explicit HttpServer(ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes must be added before start().
  Router& router();

  // Binds, listens and starts the threads. An address that does not parse or cannot be
  // bound is an error value.
  Status start();
  // The bound port (useful with options.port == 0).
  uint16_t port() const;
  bool draining() const;
  // Exchanges in progress.
  size_t in_flight() const;

  // Stops accepting, answers new requests 503, waits up to `timeout` for in-flight
  // exchanges, cancels the rest, then stops. Returns how many had to be cancelled.
  size_t drain(std::chrono::milliseconds timeout);
  // Stops at once (cancels everything in flight) and joins the threads. Idempotent.
  void stop();

 private:
  void release_leftovers();
  std::shared_ptr<ServerState> state_;
};

}  // namespace k2::http
