#include "multimodal/http_fetcher.h"

#include <utility>  // before asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#ifdef K2_HAVE_OPENSSL
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <exception>

namespace k2::mm {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct HttpFetcher::Tls {
#ifdef K2_HAVE_OPENSSL
  net::ssl::context ctx{net::ssl::context::tls_client};
#endif
};

namespace {

constexpr uint32_t kHeaderLimit = 32 * 1024;

tcp::endpoint to_endpoint(const IpAddress& a, uint16_t port) {
  if (a.v6) {
    net::ip::address_v6::bytes_type b;
    std::copy_n(a.bytes.begin(), b.size(), b.begin());
    return {net::ip::address_v6(b), port};
  }
  net::ip::address_v4::bytes_type b;
  std::copy_n(a.bytes.begin(), b.size(), b.begin());
  return {net::ip::address_v4(b), port};
}

IpAddress from_asio(const net::ip::address& address) {
  IpAddress out;
  if (address.is_v6()) {
    out.v6 = true;
    const auto b = address.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
  } else {
    const auto b = address.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
  }
  return out;
}

bool is_redirect(unsigned status) { return status == 301 || status == 302 || status == 303 || status == 307 || status == 308; }

Status with_url(const HttpUrl& url, const Status& s) {
  const std::string what = "fetching " + url.to_string() + ": " + s.message();
  return s.code() == Code::kOutOfRange ? out_of_range(what) : invalid_argument(what);
}

struct HopOutcome {
  bool redirect = false;
  HttpUrl next;
};

// One fetch: every hop on a private io_context run by the calling thread.
class FetchRun {
 public:
  FetchRun(const MediaFetchPolicy& policy, const FetchTestHooks& hooks, HttpFetcher::Tls* tls, std::chrono::milliseconds timeout)
      : policy_(policy), hooks_(hooks), tls_(tls), timeout_(timeout), deadline_(Clock::now() + timeout) {}

  Result<FetchedMedia> run(HttpUrl url) {
    bool finished = false;
    net::co_spawn(io_, all_hops(std::move(url)), [this, &finished](std::exception_ptr e) {
      finished = true;
      if (e) status_ = internal_error("media fetch failed with an exception");
    });
    io_.run();
    if (!finished) return internal_error("media fetch did not complete");
    if (!status_.ok()) return status_;
    return std::move(result_);
  }

 private:
  Status network_error(const HttpUrl& url, const char* stage, const beast::error_code& ec) const {
    if (ec == beast::error::timeout || Clock::now() >= deadline_) {
      return invalid_argument("fetching " + url.to_string() + ": timed out after " + std::to_string(timeout_.count()) +
                              " ms (the limit covers the whole fetch, redirects included)");
    }
    return invalid_argument("fetching " + url.to_string() + ": " + stage + " failed: " + ec.message());
  }

  net::awaitable<void> all_hops(HttpUrl url) {
    for (int redirects = 0;; ++redirects) {
      if (Status s = check_fetch_url(url, policy_); !s.ok()) {
        status_ = with_url(url, s);
        co_return;
      }
      HopOutcome out;
      status_ = co_await hop(url, &out);
      if (!status_.ok()) co_return;
      if (!out.redirect) {
        result_.redirects = redirects;
        result_.final_url = url.to_string();
        co_return;
      }
      if (redirects + 1 > policy_.max_redirects) {
        status_ = invalid_argument("fetching " + url.to_string() + ": too many redirects (at most " +
                                   std::to_string(policy_.max_redirects) + " are followed)");
        co_return;
      }
      url = std::move(out.next);
    }
  }

  // Step 3 of the recipe: one resolution; every address must pass; the endpoints returned
  // are exactly the checked addresses (or where the test hook routes them).
  net::awaitable<Status> resolve(const HttpUrl& url, std::vector<tcp::endpoint>* endpoints) {
    std::vector<IpAddress> addresses;
    if (url.ip) {
      addresses.push_back(*url.ip);
    } else if (hooks_.resolve) {
      auto r = hooks_.resolve(url.host);
      if (!r.ok()) co_return with_url(url, r.status());
      addresses = std::move(r).value();
    } else {
      auto resolver = std::make_shared<tcp::resolver>(io_);
      net::steady_timer timer(io_);
      timer.expires_at(deadline_);
      timer.async_wait([resolver](const beast::error_code& ec) {
        if (!ec) resolver->cancel();
      });
      beast::error_code ec;
      auto results = co_await resolver->async_resolve(url.host, std::to_string(url.port), tcp::resolver::numeric_service,
                                                      net::redirect_error(net::use_awaitable, ec));
      timer.cancel();
      if (ec) co_return network_error(url, "resolving the host", ec);
      for (const auto& r : results) addresses.push_back(from_asio(r.endpoint().address()));
    }
    if (addresses.empty()) co_return invalid_argument("fetching " + url.to_string() + ": the host has no addresses");
    for (const IpAddress& a : addresses) {
      if (Status s = check_connect_address(a, policy_); !s.ok()) {
        co_return invalid_argument("fetching " + url.to_string() + ": host '" + url.host + "': " + s.message());
      }
    }
    for (const IpAddress& a : addresses) {
      if (hooks_.dial) {
        auto [ip, port] = hooks_.dial(a, url.port);
        endpoints->push_back(to_endpoint(ip, port));
      } else {
        endpoints->push_back(to_endpoint(a, url.port));
      }
    }
    co_return Status::ok_status();
  }

  net::awaitable<Status> hop(const HttpUrl& url, HopOutcome* out) {
    std::vector<tcp::endpoint> endpoints;
    if (Status s = co_await resolve(url, &endpoints); !s.ok()) co_return s;
    beast::tcp_stream stream(io_);
    stream.expires_at(deadline_);
    beast::error_code ec;
    co_await stream.async_connect(endpoints, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return network_error(url, "connecting", ec);
    if (!url.https) co_return co_await exchange(stream, url, out);
#ifdef K2_HAVE_OPENSSL
    if (tls_ == nullptr) co_return invalid_argument("https media URLs are not available: TLS is not set up");
    beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), tls_->ctx);
    // SNI only for names: RFC 6066 forbids IP literals there.
    if (!url.ip && !SSL_set_tlsext_host_name(tls.native_handle(), url.host.c_str())) {
      co_return invalid_argument("fetching " + url.to_string() + ": cannot set the TLS server name");
    }
    tls.set_verify_mode(net::ssl::verify_peer);
    tls.set_verify_callback(net::ssl::host_name_verification(url.host));
    co_await tls.async_handshake(net::ssl::stream_base::client, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return network_error(url, "the TLS handshake", ec);
    co_return co_await exchange(tls, url, out);
#else
    co_return unimplemented("https media URLs are not available: this build has no OpenSSL");
#endif
  }

  template <class Stream>
  net::awaitable<Status> exchange(Stream& stream, const HttpUrl& url, HopOutcome* out) {
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, url.target, 11};
    req.set(bhttp::field::host, url.authority());
    req.set(bhttp::field::user_agent, "k2serve");
    req.set(bhttp::field::accept, "*/*");
    req.set(bhttp::field::connection, "close");
    beast::error_code ec;
    co_await bhttp::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return network_error(url, "sending the request", ec);

    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::vector_body<uint8_t>> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(static_cast<uint64_t>(policy_.max_bytes));
    co_await bhttp::async_read_header(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec == bhttp::error::body_limit) co_return content_too_large(url);
    if (ec) co_return network_error(url, "reading the response header", ec);
    const auto& head = parser.get();
    const unsigned status = head.result_int();
    if (is_redirect(status)) {
      const auto location = head[bhttp::field::location];
      if (location.empty()) co_return invalid_argument("fetching " + url.to_string() + ": a redirect without a Location");
      auto next = resolve_redirect(url, std::string_view(location.data(), location.size()));
      if (!next.ok()) co_return with_url(url, next.status().with_context("redirect"));
      out->redirect = true;
      out->next = std::move(next).value();
      co_return Status::ok_status();
    }
    if (status != 200) {
      co_return invalid_argument("fetching " + url.to_string() + ": the server answered HTTP " + std::to_string(status));
    }
    if (parser.content_length() && *parser.content_length() > policy_.max_bytes) co_return content_too_large(url);
    co_await bhttp::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec == bhttp::error::body_limit) co_return content_too_large(url);
    if (ec) co_return network_error(url, "reading the body", ec);
    const auto type = parser.get()[bhttp::field::content_type];
    result_.content_type.assign(type.data(), type.size());
    result_.body = std::move(parser.get().body());
    co_return Status::ok_status();
  }

  Status content_too_large(const HttpUrl& url) const {
    return out_of_range("fetching " + url.to_string() + ": the media is larger than --max-media-bytes (" +
                        std::to_string(policy_.max_bytes) + " bytes)");
  }

  const MediaFetchPolicy& policy_;
  const FetchTestHooks& hooks_;
  HttpFetcher::Tls* tls_;
  const std::chrono::milliseconds timeout_;
  const Clock::time_point deadline_;
  net::io_context io_{1};
  Status status_;
  FetchedMedia result_;
};

}  // namespace

HttpFetcher::HttpFetcher(MediaFetchPolicy policy, FetchTestHooks hooks, std::unique_ptr<Tls> tls)
    : policy_(std::move(policy)), hooks_(std::move(hooks)), tls_(std::move(tls)) {}

HttpFetcher::~HttpFetcher() = default;

Result<std::shared_ptr<const HttpFetcher>> HttpFetcher::create(MediaFetchPolicy policy, FetchTestHooks hooks) {
  if (policy.max_redirects < 0) return invalid_argument("max_redirects must be >= 0");
  if (policy.timeout.count() <= 0) return invalid_argument("the media fetch timeout must be positive");
  std::unique_ptr<Tls> tls;
#ifdef K2_HAVE_OPENSSL
  tls = std::make_unique<Tls>();
  tls->ctx.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 | net::ssl::context::no_sslv3 |
                       net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
  beast::error_code ec;
  tls->ctx.set_default_verify_paths(ec);
  if (ec) return unavailable("cannot load the system's trusted certificates: " + ec.message());
  tls->ctx.set_verify_mode(net::ssl::verify_peer);
#endif
  return std::shared_ptr<const HttpFetcher>(new HttpFetcher(std::move(policy), std::move(hooks), std::move(tls)));
}

Result<FetchedMedia> HttpFetcher::fetch(std::string_view url, std::chrono::milliseconds timeout) const {
  auto parsed = parse_http_url(url);
  if (!parsed.ok()) return invalid_argument("media URL: " + parsed.status().message());
  if (timeout.count() <= 0) timeout = policy_.timeout;
  FetchRun run(policy_, hooks_, tls_.get(), timeout);
  return run.run(std::move(parsed).value());
}

Result<FetchTimeouts> fetch_timeouts_from_env(const std::function<const char*(const char*)>& getenv) {
  FetchTimeouts out;
  for (auto [name, field] : {std::pair{"VLLM_IMAGE_FETCH_TIMEOUT", &out.image}, std::pair{"VLLM_VIDEO_FETCH_TIMEOUT", &out.video}}) {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const double seconds = std::strtod(v, &end);
    if (end == v || *end != '\0' || !std::isfinite(seconds) || seconds <= 0 || seconds > 86400) {
      return invalid_argument(std::string(name) + " must be a positive number of seconds, got '" + v + "'");
    }
    *field = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(seconds * 1000)));
  }
  return out;
}

}  // namespace k2::mm
