#include "frontend/proxy/relay.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <set>

#include "frontend/http/json_error.h"

namespace k2::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kAwait = asio::use_awaitable;

// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the relay sets itself.
bool forwarded(std::string_view name) {
  static const std::set<std::string, std::less<>> skip = {"connection", "keep-alive", "proxy-connection",
                                                         "transfer-encoding", "te", "trailer", "upgrade",
                                                         "host", "content-length", "expect"};
  return !skip.contains(name);
}

// Bytes from the upstream body waiting for the client connection to pull them.
class RelaySource final : public http::StreamSource {
 public:
  void push(std::string bytes, bool done) {
    std::lock_guard lock(mu_);
    pending_ += bytes;
    done_ = done_ || done;
  }
  http::StreamPull pull() override {
    std::lock_guard lock(mu_);
    http::StreamPull p;
    p.bytes.swap(pending_);
    p.done = done_;
    return p;
  }

 private:
  std::mutex mu_;
  std::string pending_;
  bool done_ = false;
};

// The socket of the attempt in progress, closed from the client side on cancellation.
struct CallState {
  std::mutex mu;
  std::shared_ptr<beast::tcp_stream> stream;
  bool cancelled = false;

  bool attach(std::shared_ptr<beast::tcp_stream> s) {
    std::lock_guard lock(mu);
    stream = std::move(s);
    return !cancelled;
  }
  void cancel() {
    std::lock_guard lock(mu);
    cancelled = true;
    if (stream) asio::post(stream->get_executor(), [s = stream] { s->close(); });
  }
};

asio::awaitable<beast::error_code> connect(beast::tcp_stream& stream, const Backend& backend,
                                           std::chrono::milliseconds timeout) {
  beast::error_code ec;
  tcp::resolver resolver(stream.get_executor());
  auto endpoints = co_await resolver.async_resolve(backend.host, std::to_string(backend.port),
                                                   asio::redirect_error(kAwait, ec));
  if (ec) co_return ec;
  stream.expires_after(timeout);
  co_await stream.async_connect(endpoints, asio::redirect_error(kAwait, ec));
  co_return ec;
}

bhttp::request<bhttp::string_body> upstream_request(const http::HttpRequest& in, const Backend& backend) {
  bhttp::request<bhttp::string_body> req;
  req.method_string(in.method);
  req.target(in.target);
  req.version(11);
  for (const auto& [name, value] : in.headers)
    if (forwarded(name)) req.insert(name, value);
  req.set(bhttp::field::host, backend.name());
  req.set("x-request-id", in.request_id);
  req.keep_alive(false);
  req.body() = in.body;
  req.prepare_payload();
  return req;
}

http::Headers response_headers(const bhttp::response_parser<bhttp::string_body>::value_type& res) {
  http::Headers out;
  for (const auto& field : res) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (forwarded(name) && name != "content-type") out.emplace_back(name, std::string(field.value()));
  }
  return out;
}

// Streams the rest of the body to the client; a broken upstream ends an event stream with
// an error event and [DONE], as the API server itself would on an engine failure.
asio::awaitable<void> pass_stream(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                  bhttp::response_parser<bhttp::string_body>& parser,
                                  const std::shared_ptr<http::Exchange>& ex, const Backend& backend) {
  auto source = std::make_shared<RelaySource>();
  http::Headers headers = response_headers(parser.get());
  headers.emplace_back("content-type", std::string(parser.get()[bhttp::field::content_type]));
  ex->stream(static_cast<int>(parser.get().result_int()), std::move(headers), source);
  beast::error_code ec;
  while (!parser.is_done()) {
    co_await bhttp::async_read_some(stream, buffer, parser, asio::redirect_error(kAwait, ec));
    if (ec) break;
    source->push(std::move(parser.get().body()), false);
    parser.get().body().clear();
    ex->wake();
  }
  if (ec && !ex->cancelled()) {
    spdlog::warn("[{}] proxy: backend {} broke off a stream: {}", ex->request_id(), backend.name(), ec.message());
    source->push("data: {\"error\": {\"message\": \"the backend failed mid-stream\", \"type\": \"BadGateway\", "
                 "\"code\": 502}}\n\ndata: [DONE]\n\n",
                 true);
  } else {
    source->push("", true);
  }
  ex->wake();
}

asio::awaitable<void> relay(BackendPool& pool, std::shared_ptr<http::Exchange> ex, RelayTimeouts timeouts) {
  auto call = std::make_shared<CallState>();
  ex->on_cancel([call] { call->cancel(); });
  std::vector<const Backend*> tried;
  auto executor = co_await asio::this_coro::executor;
  while (true) {
    BackendPool::Lease lease = pool.pick(tried);
    if (!lease) {
      ex->respond(http::error_response(503, "no backend is available"));
      co_return;
    }
    tried.push_back(lease.get());
    auto stream = std::make_shared<beast::tcp_stream>(executor);
    if (!call->attach(stream)) co_return;
    beast::error_code ec = co_await connect(*stream, *lease, timeouts.connect);
    if (ec) {
      pool.mark(*lease.get(), false, "connect: " + ec.message());
      continue;  // nothing was sent: another backend may take it
    }
    stream->expires_after(timeouts.request);
    auto req = upstream_request(ex->request(), *lease);
    co_await bhttp::async_write(*stream, req, asio::redirect_error(kAwait, ec));
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (!ec) co_await bhttp::async_read_header(*stream, buffer, parser, asio::redirect_error(kAwait, ec));
    if (ec) {
      if (!ex->cancelled()) {
        spdlog::warn("[{}] proxy: backend {} failed the request: {}", ex->request_id(), lease->name(), ec.message());
        ex->respond(http::error_response(502, "the backend failed the request"));
      }
      co_return;
    }
    if (parser.get()[bhttp::field::content_type].starts_with("text/event-stream")) {
      co_await pass_stream(*stream, buffer, parser, ex, *lease);
      co_return;
    }
    co_await bhttp::async_read(*stream, buffer, parser, asio::redirect_error(kAwait, ec));
    if (ec) {
      if (!ex->cancelled()) ex->respond(http::error_response(502, "the backend failed the request"));
      co_return;
    }
    http::HttpResponse res;
    res.status = static_cast<int>(parser.get().result_int());
    res.content_type = std::string(parser.get()[bhttp::field::content_type]);
    res.headers = response_headers(parser.get());
    res.body = std::move(parser.get().body());
    ex->respond(std::move(res));
    co_return;
  }
}

}  // namespace

void spawn_relay(asio::io_context& io, BackendPool& pool, std::shared_ptr<http::Exchange> ex, RelayTimeouts timeouts) {
  asio::co_spawn(io, relay(pool, std::move(ex), timeouts), asio::detached);
}

asio::awaitable<bool> probe_health(Backend& backend, std::chrono::milliseconds timeout) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  beast::error_code ec = co_await connect(stream, backend, timeout);
  if (ec) co_return false;
  stream.expires_after(timeout);
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/health", 11};
  req.set(bhttp::field::host, backend.name());
  req.keep_alive(false);
  co_await bhttp::async_write(stream, req, asio::redirect_error(kAwait, ec));
  if (ec) co_return false;
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  co_await bhttp::async_read(stream, buffer, res, asio::redirect_error(kAwait, ec));
  co_return !ec && res.result_int() == 200;
}

}  // namespace k2::proxy
