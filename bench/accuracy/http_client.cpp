#include "bench/accuracy/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace k2::bench {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

Result<BaseUrl> parse_base_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return invalid_argument("the base URL must start with http:// (got " + url + ")");
  std::string rest = url.substr(scheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  BaseUrl out;
  out.path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    out.host = authority.substr(0, colon);
    out.port = authority.substr(colon + 1);
  } else {
    out.host = authority;
    out.port = "80";
  }
  if (!out.host.empty() && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  if (out.host.empty() || out.port.empty() || out.port.find_first_not_of("0123456789") != std::string::npos) {
    return invalid_argument("cannot read host and port from " + url);
  }
  return out;
}

struct HttpClient::Impl {
  BaseUrl base;
  std::string api_key;
  std::chrono::seconds timeout;
  net::io_context io;
  std::unique_ptr<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  void close() {
    if (!stream) return;
    beast::error_code ec;
    stream->socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.reset();
    buffer.clear();
  }

  Status connect() {
    beast::error_code ec;
    tcp::resolver resolver(io);
    auto endpoints = resolver.resolve(base.host, base.port, ec);
    if (ec) return unavailable("resolving " + base.host + ": " + ec.message());
    stream = std::make_unique<beast::tcp_stream>(io);
    stream->expires_after(timeout);
    stream->connect(endpoints, ec);
    if (ec) {
      stream.reset();
      return unavailable("connecting to " + base.host + ":" + base.port + ": " + ec.message());
    }
    return {};
  }

  // One exchange on the open connection; ec says how it failed.
  HttpReply exchange(bool post, const std::string& target, const std::string& body, beast::error_code& ec) {
    http::request<http::string_body> req{post ? http::verb::post : http::verb::get, target, 11};
    req.set(http::field::host, base.host);
    req.set(http::field::user_agent, "k2serve-bench-accuracy");
    req.keep_alive(true);
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
    if (post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
    }
    stream->expires_after(timeout);
    http::write(*stream, req, ec);
    if (ec) return {};
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    http::read(*stream, buffer, parser, ec);
    if (ec) return {};
    auto& res = parser.get();
    HttpReply reply{static_cast<int>(res.result_int()), std::move(res.body())};
    if (!res.keep_alive()) close();
    return reply;
  }
};

HttpClient::HttpClient(BaseUrl base, std::string api_key, std::chrono::seconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->base = std::move(base);
  impl_->api_key = std::move(api_key);
  impl_->timeout = timeout;
}

HttpClient::~HttpClient() { impl_->close(); }

Result<HttpReply> HttpClient::post_json(const std::string& path, const std::string& body) {
  return request(true, path, body);
}

Result<HttpReply> HttpClient::get(const std::string& path) { return request(false, path, ""); }

Result<HttpReply> HttpClient::request(bool post, const std::string& path, const std::string& body) {
  const std::string target = impl_->base.path + path;
  // A kept-alive connection the server has since closed fails on first use: reopen once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = impl_->stream != nullptr;
    if (!reused) K2_RETURN_IF_ERROR(impl_->connect());
    beast::error_code ec;
    HttpReply reply = impl_->exchange(post, target, body, ec);
    if (!ec) return reply;
    impl_->close();
    if (!reused || ec == beast::error::timeout) {
      return unavailable((post ? "POST " : "GET ") + target + ": " + ec.message());
    }
  }
  return unavailable((post ? "POST " : "GET ") + target + ": the connection closed twice");
}

}  // namespace k2::bench
