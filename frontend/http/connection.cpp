#include "frontend/http/connection.h"

#include <sys/socket.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include <cctype>
#include <random>

#include "frontend/http/json_error.h"

namespace k2::http {

namespace {

bool sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' && c != ':') return false;
  }
  return true;
}

std::string random_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(a >> (4 * i)) & 15];
    id[16 + i] = kHex[(b >> (4 * i)) & 15];
  }
  return id;
}

HttpRequest to_request(bhttp::request<bhttp::string_body>&& msg, const std::string& peer) {
  HttpRequest r;
  r.method = std::string(msg.method_string());
  r.target = std::string(msg.target());
  auto q = r.target.find('?');
  r.path = r.target.substr(0, q);
  if (q != std::string::npos) r.query = r.target.substr(q + 1);
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  r.body = std::move(msg.body());
  auto rid = r.header("x-request-id");
  r.request_id = rid && sane_request_id(*rid) ? std::string(*rid) : random_request_id();
  r.remote = peer;
  r.received = Clock::now();
  return r;
}

}  // namespace

Connection::Connection(tcp::socket socket, std::shared_ptr<ServerState> state)
    : state_(std::move(state)), stream_(std::move(socket)) {
  beast::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  state_->connections.fetch_add(1);
}

Connection::~Connection() { state_->connections.fetch_sub(1); }

void Connection::start() {
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
}

void Connection::do_read() {
  if (closed_) return;
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(state_->options.max_header_bytes));
  parser_->body_limit(state_->options.max_body_bytes);
  stream_.expires_after(state_->options.read_timeout);
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

void Connection::on_header(beast::error_code ec) {
  if (ec) return on_read_error(ec);
  auto& msg = parser_->get();
  auto expect = msg[bhttp::field::expect];
  if (!parser_->is_done() && beast::iequals(expect, "100-continue")) {
    net::async_write(stream_, net::buffer(kContinue, sizeof(kContinue) - 1),
                     [self = shared_from_this()](beast::error_code wec, size_t) {
                       if (wec) return self->close();
                       self->read_body();
                     });
    return;
  }
  read_body();
}

void Connection::read_body() {
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
}

void Connection::on_body(beast::error_code ec) {
  if (ec) return on_read_error(ec);
  stream_.expires_never();
  begin_exchange(parser_->release());
}

void Connection::on_read_error(beast::error_code ec) {
  if (ec == bhttp::error::header_limit) {
    full_ = std::make_unique<bhttp::response<bhttp::string_body>>(bhttp::status::request_header_fields_too_large, 11);
    full_->body() = error_body(431, "Request header fields too large");
    return write_full(431, true);
  }
  if (ec == bhttp::error::body_limit) {
    full_ = std::make_unique<bhttp::response<bhttp::string_body>>(bhttp::status::payload_too_large, 11);
    full_->body() = error_body(413, "Request body too large: the limit is " +
                                        std::to_string(state_->options.max_body_bytes) + " bytes");
    return write_full(413, true);
  }
  const bool quiet = ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
                     ec == net::error::connection_reset || ec == net::error::operation_aborted ||
                     ec == bhttp::error::partial_message;
  if (quiet || closed_) return close();
  full_ = std::make_unique<bhttp::response<bhttp::string_body>>(bhttp::status::bad_request, 11);
  full_->body() = error_body(400, "Malformed HTTP request: " + ec.message());
  write_full(400, true);
}

void Connection::begin_exchange(bhttp::request<bhttp::string_body> msg) {
  keep_alive_ = msg.keep_alive();
  auto ex = std::make_shared<Exchange>(shared_from_this(), to_request(std::move(msg), peer_));
  current_ = ex;
  status_ = 0;
  bytes_sent_ = 0;
  state_->exchange_started();
  start_watch();
  if (state_->draining.load()) {
    keep_alive_ = false;
    ex->respond(error_response(503, "The server is shutting down"));
    return;
  }
  try {
    state_->router.dispatch(ex);
  } catch (const std::exception& e) {
    spdlog::error("[{}] handler threw: {}", ex->request_id(), e.what());
    ex->respond(error_response(500, "Internal server error"));
  }
}

// While a response is pending the socket is watched for readability: EOF or an error
// means the client is gone. Bytes of a pipelined next request also wake it; they are
// left in the socket for the next read and the watch stops (that client is alive).
void Connection::start_watch() {
  if (watching_ || closed_) return;
  watching_ = true;
  stream_.socket().async_wait(tcp::socket::wait_read,
                              net::bind_executor(stream_.get_executor(),
                                                 [self = shared_from_this()](beast::error_code ec) {
                                                   self->on_watch(ec);
                                                 }));
}

void Connection::on_watch(beast::error_code ec) {
  watching_ = false;
  if (closed_) return;
  if (read_after_watch_) {
    read_after_watch_ = false;
    return do_read();
  }
  if (!current_ || ec == net::error::operation_aborted) return;  // cancelled by us, not by the client
  if (!ec && !peer_closed()) {
    // Readable but not at EOF: a pipelined request (leave it for the next read) or a
    // spurious wake-up of the edge-triggered reactor (watch again).
    beast::error_code aec;
    if (stream_.socket().available(aec) == 0 && !aec) start_watch();
    return;
  }
  if (writing_) {
    // A write is in flight: a client that read the whole response and closed races its
    // completion. Let the write decide: it fails if the client left early (499), and a
    // response written in full is logged with its own status.
    peer_gone_ = true;
    return;
  }
  spdlog::info("[{}] client disconnected", current_->request_id());
  cancel_and_close();
}

// True only when the peer has really closed: a readiness event alone can be stale, so ask
// the kernel without consuming anything.
bool Connection::peer_closed() {
  char byte;
  const ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;
  if (n == 0) return true;
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

void Connection::post_respond(std::shared_ptr<Exchange> ex, HttpResponse response) {
  if (state_->stopped.load()) return;  // nothing runs the strand any more
  net::post(stream_.get_executor(), [self = shared_from_this(), ex = std::move(ex), r = std::move(response)]() mutable {
    self->do_respond(ex, std::move(r));
  });
}

void Connection::post_stream(std::shared_ptr<Exchange> ex, int status, Headers headers,
                             std::shared_ptr<StreamSource> src) {
  if (state_->stopped.load()) return;
  net::post(stream_.get_executor(),
            [self = shared_from_this(), ex = std::move(ex), status, h = std::move(headers), s = std::move(src)]() mutable {
              self->do_stream(ex, status, std::move(h), std::move(s));
            });
}

void Connection::post_wake(std::shared_ptr<Exchange> ex) {
  if (state_->stopped.load()) return;  // nothing runs the strand any more
  net::post(stream_.get_executor(), [self = shared_from_this(), ex = std::move(ex)] {
    if (self->current_ == ex) self->pump();
  });
}

void Connection::post_task(std::function<void()> task) {
  if (state_->stopped.load()) return;
  net::post(stream_.get_executor(), std::move(task));
}

void Connection::post_force_close() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->current_) return self->cancel_and_close();
    self->close();
  });
}

void Connection::do_respond(const std::shared_ptr<Exchange>& ex, HttpResponse r) {
  if (closed_ || current_ != ex || source_ || full_) return;
  auto res = std::make_unique<bhttp::response<bhttp::string_body>>(static_cast<bhttp::status>(r.status), 11);
  res->set(bhttp::field::content_type, r.content_type);
  for (auto& [k, v] : r.headers) res->insert(k, v);
  res->set("X-Request-Id", ex->request_id());
  res->body() = std::move(r.body);
  full_ = std::move(res);
  write_full(r.status, !keep_alive_);
}

void Connection::write_full(int status, bool close_after) {
  status_ = status;
  full_->keep_alive(!close_after);
  full_->prepare_payload();
  writing_ = true;
  stream_.expires_after(state_->options.write_timeout);
  bhttp::async_write(stream_, *full_, [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->on_full_written(ec, n);
  });
}

void Connection::on_full_written(beast::error_code ec, size_t bytes) {
  stream_.expires_never();
  writing_ = false;
  bytes_sent_ += bytes;
  const bool close_after = ec || peer_gone_ || !full_->keep_alive();
  full_.reset();
  if (current_) end_exchange(false);
  if (close_after) return close();
  after_response();
}

void Connection::do_stream(const std::shared_ptr<Exchange>& ex, int status, Headers headers,
                           std::shared_ptr<StreamSource> src) {
  if (closed_ || current_ != ex || source_ || full_) return;
  status_ = status;
  source_ = std::move(src);
  head_ = std::make_unique<bhttp::response<bhttp::empty_body>>(static_cast<bhttp::status>(status), 11);
  for (auto& [k, v] : headers) head_->insert(k, v);
  head_->set("X-Request-Id", ex->request_id());
  head_->chunked(true);
  head_->keep_alive(keep_alive_);
  head_sr_ = std::make_unique<bhttp::response_serializer<bhttp::empty_body>>(*head_);
  writing_ = true;
  stream_.expires_after(state_->options.write_timeout);
  bhttp::async_write_header(stream_, *head_sr_, [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->on_stream_head(ec, n);
  });
}

void Connection::on_stream_head(beast::error_code ec, size_t bytes) {
  stream_.expires_never();
  writing_ = false;
  bytes_sent_ += bytes;
  if (ec || peer_gone_) return cancel_and_close();
  pump();
}

void Connection::pump() {
  if (closed_ || writing_ || !source_ || !head_sr_) return;
  StreamPull p = source_->pull();
  pending_done_ = p.done;
  if (p.bytes.empty() && !p.done) return;
  writing_ = true;
  stream_.expires_after(state_->options.write_timeout);
  if (p.bytes.empty()) {
    net::async_write(stream_, bhttp::make_chunk_last(), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->on_last_written(ec, n);
    });
    return;
  }
  chunk_ = std::move(p.bytes);
  net::async_write(stream_, bhttp::make_chunk(net::buffer(chunk_)),
                   [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_chunk_written(ec, n); });
}

void Connection::on_chunk_written(beast::error_code ec, size_t bytes) {
  stream_.expires_never();
  writing_ = false;
  bytes_sent_ += bytes;
  if (ec) return cancel_and_close();
  if (peer_gone_) {
    // Every event was delivered when the source is done (an SSE client may leave after
    // [DONE], before the terminating chunk); otherwise the rest has no reader.
    if (!pending_done_) return cancel_and_close();
    source_.reset();
    if (current_) end_exchange(false);
    return close();
  }
  if (pending_done_) {
    writing_ = true;
    stream_.expires_after(state_->options.write_timeout);
    net::async_write(stream_, bhttp::make_chunk_last(), [self = shared_from_this()](beast::error_code e, size_t n) {
      self->on_last_written(e, n);
    });
    return;
  }
  pump();
}

void Connection::on_last_written(beast::error_code ec, size_t bytes) {
  stream_.expires_never();
  writing_ = false;
  bytes_sent_ += bytes;
  source_.reset();
  head_sr_.reset();
  head_.reset();
  if (current_) end_exchange(false);
  if (ec || peer_gone_ || !keep_alive_) return close();
  after_response();
}

void Connection::end_exchange(bool cancelled) {
  auto ex = std::move(current_);
  current_.reset();
  if (cancelled) ex->fire_cancel();
  ex->take_connection();  // breaks the exchange -> connection reference
  const double secs = std::chrono::duration<double>(Clock::now() - ex->request().received).count();
  CompletedExchange done{&ex->request(), state_->router.route_label(ex->request().path), cancelled ? 499 : status_,
                         bytes_sent_, secs, cancelled};
  if (state_->options.access_log) {
    const auto& r = ex->request();
    std::string note = ex->log_note();
    spdlog::info("[{}] {} \"{} {}\" {} {}B {:.1f}ms{}{}", r.request_id, r.remote, r.method, r.target.substr(0, 200),
                 done.status, bytes_sent_, secs * 1e3, note.empty() ? "" : " ", note);
  }
  if (state_->options.observer) state_->options.observer(done);
  state_->exchange_ended();
}

void Connection::after_response() {
  if (watching_) {
    read_after_watch_ = true;
    beast::error_code ec;
    stream_.socket().cancel(ec);
    return;
  }
  do_read();
}

void Connection::cancel_and_close() {
  source_.reset();
  if (current_) end_exchange(true);
  close();
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

}  // namespace k2::http
