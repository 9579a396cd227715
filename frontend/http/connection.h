// Internal to the HTTP server: one accepted TCP connection and the state the server
// shares with all its connections. Everything a Connection does runs on its strand;
// Exchange methods post there. Not part of the public API.
#pragma once

#include <utility>  // before asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "frontend/http/exchange.h"
#include "frontend/http/server.h"

namespace k2::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

struct ServerState {
  explicit ServerState(ServerOptions o) : options(std::move(o)), acceptor(io) {}

  ServerOptions options;
  Router router;
  net::io_context io;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};
  std::atomic<size_t> connections{0};
  uint16_t bound_port = 0;

  std::mutex mu;  // guards in_flight, live
  std::condition_variable idle_cv;
  size_t in_flight = 0;
  int running_threads = 0;
  std::list<std::weak_ptr<Connection>> live;

  void exchange_started();
  void exchange_ended();
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::shared_ptr<ServerState> state);
  ~Connection();
  void start();

  // Posted by Exchange (any thread).
  void post_respond(std::shared_ptr<Exchange> ex, HttpResponse response);
  void post_stream(std::shared_ptr<Exchange> ex, int status, Headers headers, std::shared_ptr<StreamSource> src);
  void post_wake(std::shared_ptr<Exchange> ex);
  void post_task(std::function<void()> task);
  // Posted by the server when a drain times out or on stop.
  void post_force_close();
  // Called by the server only after its threads have stopped: cancels and closes in place.
  void abandon() { cancel_and_close(); }

 private:
  void do_read();
  void on_header(beast::error_code ec);
  void read_body();
  void on_body(beast::error_code ec);
  void on_read_error(beast::error_code ec);
  void begin_exchange(bhttp::request<bhttp::string_body> msg);

  void start_watch();
  void on_watch(beast::error_code ec);
  bool peer_closed();

  void do_respond(const std::shared_ptr<Exchange>& ex, HttpResponse response);
  void write_full(int status, bool close_after);
  void on_full_written(beast::error_code ec, size_t bytes);
  void do_stream(const std::shared_ptr<Exchange>& ex, int status, Headers headers, std::shared_ptr<StreamSource> src);
  void on_stream_head(beast::error_code ec, size_t bytes);
  void pump();
  void on_chunk_written(beast::error_code ec, size_t bytes);
  void on_last_written(beast::error_code ec, size_t bytes);

  // Ends the current exchange (answered or failed) and logs it.
  void end_exchange(bool cancelled);
  void after_response();
  void cancel_and_close();
  void close();

  std::shared_ptr<ServerState> state_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string peer_;

  std::shared_ptr<Exchange> current_;
  bool keep_alive_ = false;
  bool watching_ = false;
  bool read_after_watch_ = false;
  bool writing_ = false;
  bool peer_gone_ = false;  // the watch saw EOF while a write was in flight
  bool closed_ = false;
  bool pending_done_ = false;
  int status_ = 0;
  uint64_t bytes_sent_ = 0;

  std::unique_ptr<bhttp::response<bhttp::string_body>> full_;
  std::unique_ptr<bhttp::response<bhttp::empty_body>> head_;
  std::unique_ptr<bhttp::response_serializer<bhttp::empty_body>> head_sr_;
  std::shared_ptr<StreamSource> source_;
  std::string chunk_;
  static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
};

}  // namespace k2::http
