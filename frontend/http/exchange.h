// One HTTP request and its response, as handlers see it.
//
// An Exchange is created by the server for every request it has read completely and is
// handed to the route's handler. The handler answers it exactly once, either with a whole
// response (respond) or with a streamed one (stream) whose bytes a StreamSource supplies
// on demand. Handlers may answer from any thread, later than the handler call (after the
// engine produced output): every public method of Exchange is thread-safe; the work is
// posted to the connection's strand.
//
// Backpressure is pull-based: the connection calls StreamSource::pull() only when the
// socket has accepted the previous bytes, so a producer that keeps its pending work in
// itself (token ids, not rendered frames) coalesces automatically behind a slow client.
//
// Cancellation: when the client goes away before the response is complete (the socket
// becomes readable with EOF, a reset, a write fails or times out) or the server stops
// draining, the cancel hook runs once on the connection's strand. After it, respond(),
// stream() and wake() are harmless no-ops.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace k2::http {

using Headers = std::vector<std::pair<std::string, std::string>>;
using Clock = std::chrono::steady_clock;

struct HttpRequest {
  std::string method;      // "GET", "POST", ...
  std::string target;      // as sent: path plus query
  std::string path;        // target up to '?'
  std::string query;       // after '?', undecoded
  Headers headers;         // names lowercased, in arrival order
  std::string body;
  std::string request_id;  // X-Request-Id when it is sane, else a random hex id
  std::string remote;      // "ip:port" of the peer
  Clock::time_point received;

  // The first header of that (case-insensitive) name.
  std::optional<std::string_view> header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  Headers headers;
};

// What the connection asks a streaming producer for. Called on the connection's strand,
// never concurrently with itself.
struct StreamPull {
  std::string bytes;  // empty: nothing to send yet (the producer calls wake() later)
  bool done = false;  // after these bytes the response is complete
};

class StreamSource {
 public:
  virtual ~StreamSource() = default;
  virtual StreamPull pull() = 0;
};

class Connection;

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<Connection> connection, HttpRequest request);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  const HttpRequest& request() const { return request_; }
  const std::string& request_id() const { return request_.request_id; }

  // Completes the exchange with a whole response. Only the first answer counts.
  void respond(HttpResponse response);
  // Starts a chunked response with these headers; the body comes from `source`.
  void stream(int status, Headers headers, std::shared_ptr<StreamSource> source);
  // The source has new bytes: the connection will pull when the socket is writable.
  void wake();
  // Runs `task` on the connection's strand (serialized with this exchange's I/O and
  // pull() calls); dropped when the exchange has ended.
  void post(std::function<void()> task);
  // Runs `hook` once if the exchange is cancelled (immediately if it already was).
  void on_cancel(std::function<void()> hook);
  bool cancelled() const;

  // A short note for the access-log line (e.g. "model=x prompt_tokens=12").
  void set_log_note(std::string note);

 private:
  friend class Connection;
  // Called by the connection (on its strand).
  void fire_cancel();
  std::shared_ptr<Connection> take_connection();
  std::string log_note() const;

  HttpRequest request_;
  mutable std::mutex mu_;
  std::shared_ptr<Connection> connection_;  // released when the exchange ends
  std::function<void()> cancel_hook_;
  bool answered_ = false;
  bool cancelled_ = false;
  std::string log_note_;
};

using Handler = std::function<void(std::shared_ptr<Exchange>)>;

}  // namespace k2::http
