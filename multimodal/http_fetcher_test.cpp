// HttpFetcher against an in-process Beast server on 127.0.0.1: fetching, redirects (and the
// policy re-checked at every hop), the byte cap with and without Content-Length, the whole-
// fetch timeout, the domain allow-list, content types through the MediaLoader, and TLS
// failing cleanly. Tests that need a "public" host resolve a name to a public address through
// the test hook and dial the loopback server instead, so the policy sees a public address.
#include "multimodal/http_fetcher.h"

#include <gtest/gtest.h>

#include <utility>  // before asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "multimodal/media_loader.h"
#include "multimodal/test_images.h"

namespace k2::mm {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

struct Reply {
  std::string raw;     // written verbatim: status line, headers, body
  bool stall = false;  // after writing `raw`, keep the connection open without a word
};

Reply ok_reply(const std::string& type, const std::string& body) {
  return {"HTTP/1.1 200 OK\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\nConnection: close\r\n\r\n" + body};
}

Reply redirect(int code, const std::string& location) {
  return {"HTTP/1.1 " + std::to_string(code) + " Moved\r\nLocation: " + location + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"};
}

// Serves every connection from one thread; `handler` maps a request target to a reply.
class TestServer {
 public:
  explicit TestServer(std::function<Reply(const std::string&)> handler)
      : handler_(std::move(handler)), acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    net::co_spawn(io_, accept_loop(), net::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url(const std::string& host, const std::string& target) const {
    return "http://" + host + ":" + std::to_string(port()) + target;
  }
  int requests() const { return requests_.load(); }
  std::vector<std::string> targets() {
    std::lock_guard lock(mu_);
    return targets_;
  }

 private:
  net::awaitable<void> accept_loop() {
    while (true) {
      beast::error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(net::redirect_error(net::use_awaitable, ec));
      if (ec) co_return;
      net::co_spawn(io_, serve(std::move(socket)), net::detached);
    }
  }

  net::awaitable<void> serve(tcp::socket socket) {
    beast::error_code ec;
    beast::flat_buffer buffer;
    bhttp::request<bhttp::string_body> req;
    co_await bhttp::async_read(socket, buffer, req, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    const std::string target(req.target());
    {
      std::lock_guard lock(mu_);
      targets_.push_back(target);
    }
    ++requests_;
    const Reply reply = handler_(target);
    co_await net::async_write(socket, net::buffer(reply.raw), net::redirect_error(net::use_awaitable, ec));
    if (reply.stall) {
      net::steady_timer forever(io_, std::chrono::hours(1));
      co_await forever.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }

  std::function<Reply(const std::string&)> handler_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::vector<std::string> targets_;
};

const std::string kPng = [] {
  auto b = testing::encode_png(testing::pattern_image(32, 48));
  return std::string(b.begin(), b.end());
}();

Reply default_routes(const std::string& target, uint16_t port) {
  if (target == "/a.png") return ok_reply("image/png", kPng);
  if (target == "/page.html") return ok_reply("text/html; charset=utf-8", "<html><body>hi</body></html>");
  if (target == "/png-as-html") return ok_reply("text/html", kPng);
  if (target == "/octet") return ok_reply("application/octet-stream", kPng);
  if (target == "/r1") return redirect(302, "/r2");
  if (target == "/r2") return redirect(301, "http://127.0.0.1:" + std::to_string(port) + "/r3");
  if (target == "/r3") return redirect(307, "a.png");
  if (target == "/loop") return redirect(302, "/loop");
  if (target == "/missing") return {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"};
  if (target == "/stall") return {"", true};
  if (target == "/stall-body") return {"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n0123456789", true};
  if (target == "/big-length") return {"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n", true};
  if (target == "/big-close") return {"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n" + std::string(5000, 'x')};
  if (target == "/big-chunked") {
    std::string raw = "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 10; ++i) raw += "1f4\r\n" + std::string(500, 'y') + "\r\n";
    return {raw + "0\r\n\r\n"};
  }
  if (target.rfind("/to?", 0) == 0) return redirect(302, target.substr(4));
  return {"HTTP/1.1 500 Unexpected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"};
}

class Fetcher : public ::testing::Test {
 protected:
  Fetcher() : server_([this](const std::string& t) { return default_routes(t, server_.port()); }) {}

  std::shared_ptr<const HttpFetcher> make(MediaFetchPolicy policy, FetchTestHooks hooks = {}) {
    auto f = HttpFetcher::create(std::move(policy), std::move(hooks));
    EXPECT_TRUE(f.ok()) << f.status().to_string();
    return f.ok() ? *f : nullptr;
  }
  static MediaFetchPolicy trusted() {
    MediaFetchPolicy p;
    p.allow_private_addresses = true;
    p.timeout = 5s;
    return p;
  }
  // "media.example" and "other.example" are public addresses that really dial the loopback
  // server; "localhost" is loopback; "rebind.example" has one public and one loopback address.
  FetchTestHooks public_hooks() {
    FetchTestHooks h;
    h.resolve = [](const std::string& host) -> Result<std::vector<IpAddress>> {
      if (host == "media.example" || host == "other.example") return std::vector{IpAddress::v4_from(93, 184, 216, 34)};
      if (host == "localhost") return std::vector{IpAddress::v4_from(127, 0, 0, 1)};
      if (host == "rebind.example") return std::vector{IpAddress::v4_from(93, 184, 216, 34), IpAddress::v4_from(127, 0, 0, 1)};
      return not_found("no such host " + host);
    };
    const uint16_t port = server_.port();
    h.dial = [port](const IpAddress&, uint16_t) { return std::pair{IpAddress::v4_from(127, 0, 0, 1), port}; };
    return h;
  }

  TestServer server_;
};

TEST_F(Fetcher, FetchesAnImage) {
  auto f = make(trusted());
  auto r = f->fetch(server_.url("127.0.0.1", "/a.png"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(std::string(r->body.begin(), r->body.end()), kPng);
  EXPECT_EQ(r->content_type, "image/png");
  EXPECT_EQ(r->redirects, 0);
}

TEST_F(Fetcher, FollowsARedirectChain) {
  auto f = make(trusted());
  auto r = f->fetch(server_.url("127.0.0.1", "/r1"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(std::string(r->body.begin(), r->body.end()), kPng);
  EXPECT_EQ(r->redirects, 3);
  EXPECT_EQ(r->final_url, server_.url("127.0.0.1", "/a.png"));
  EXPECT_EQ(server_.targets(), (std::vector<std::string>{"/r1", "/r2", "/r3", "/a.png"}));
}

TEST_F(Fetcher, TooManyRedirects) {
  MediaFetchPolicy p = trusted();
  p.max_redirects = 2;
  auto f = make(p);
  auto r = f->fetch(server_.url("127.0.0.1", "/r1"));  // needs 3
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("too many redirects"), std::string::npos) << r.status().to_string();
  EXPECT_EQ(server_.requests(), 3);
  auto loop = make(trusted())->fetch(server_.url("127.0.0.1", "/loop"));
  ASSERT_FALSE(loop.ok());
  EXPECT_NE(loop.status().message().find("too many redirects"), std::string::npos);
}

TEST_F(Fetcher, PublicHostThroughTheHooksIsFetched) {
  auto f = make(MediaFetchPolicy{}, public_hooks());
  auto r = f->fetch(server_.url("media.example", "/to?/a.png"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->redirects, 1);
}

// The default policy: a redirect to loopback, private or link-local space is refused at its
// hop, before any connection to it (the server sees only the first request).
TEST_F(Fetcher, RedirectToAPrivateAddressIsRefusedAtItsHop) {
  const std::string port = std::to_string(server_.port());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"localhost name", "http://localhost:" + port + "/a.png"},
      {"loopback literal", "http://127.0.0.1:" + port + "/a.png"},
      {"loopback v6", "http://[::1]:" + port + "/a.png"},
      {"v4-mapped loopback", "http://[::ffff:127.0.0.1]:" + port + "/a.png"},
      {"private", "http://10.1.2.3/a.png"},
      {"private 192.168", "http://192.168.0.1/a.png"},
      {"link-local metadata", "http://169.254.169.254/latest/meta-data/"},
      {"rebinding name", "http://rebind.example:" + port + "/a.png"},
      {"unspecified", "http://0.0.0.0:" + port + "/a.png"},
  };
  auto f = make(MediaFetchPolicy{}, public_hooks());
  int expected_requests = 0;
  for (const auto& [what, target] : cases) {
    auto r = f->fetch(server_.url("media.example", "/to?" + target));
    ++expected_requests;
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << what;
    EXPECT_NE(r.status().message().find("not allowed"), std::string::npos) << what << ": " << r.status().to_string();
    EXPECT_EQ(server_.requests(), expected_requests) << what << ": the refused hop reached the server";
  }
}

// Without hooks: the system resolver's "localhost" is loopback, refused by the default policy.
TEST_F(Fetcher, LocalhostIsRefusedByDefault) {
  auto f = make(MediaFetchPolicy{});
  auto r = f->fetch(server_.url("localhost", "/a.png"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("loopback"), std::string::npos) << r.status().to_string();
  EXPECT_EQ(server_.requests(), 0);
  auto literal = f->fetch(server_.url("127.0.0.1", "/a.png"));
  ASSERT_FALSE(literal.ok());
  EXPECT_EQ(server_.requests(), 0);
}

TEST_F(Fetcher, DomainAllowList) {
  MediaFetchPolicy p;
  p.allowed_domains = {"Media.Example."};
  auto f = make(p, public_hooks());
  EXPECT_TRUE(f->fetch(server_.url("media.example", "/a.png")).ok());
  auto other = f->fetch(server_.url("other.example", "/a.png"));
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("--allowed-media-domains"), std::string::npos);
  EXPECT_EQ(server_.requests(), 1);
  // A redirect off the list is refused at its hop.
  auto hop = f->fetch(server_.url("media.example", "/to?" + server_.url("other.example", "/a.png")));
  ASSERT_FALSE(hop.ok());
  EXPECT_NE(hop.status().message().find("--allowed-media-domains"), std::string::npos);
  EXPECT_EQ(server_.requests(), 2);
}

TEST_F(Fetcher, BodyOverTheCap) {
  MediaFetchPolicy p = trusted();
  p.max_bytes = 1000;
  auto f = make(p);
  // Content-Length over the cap: refused at the header, without waiting for the (stalled) body.
  const auto start = std::chrono::steady_clock::now();
  auto declared = f->fetch(server_.url("127.0.0.1", "/big-length"));
  ASSERT_FALSE(declared.ok());
  EXPECT_EQ(declared.status().code(), Code::kOutOfRange) << declared.status().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  for (const char* target : {"/big-close", "/big-chunked"}) {
    auto r = f->fetch(server_.url("127.0.0.1", target));
    ASSERT_FALSE(r.ok()) << target;
    EXPECT_EQ(r.status().code(), Code::kOutOfRange) << target << ": " << r.status().to_string();
    EXPECT_NE(r.status().message().find("--max-media-bytes"), std::string::npos);
  }
  p.max_bytes = kPng.size();  // exactly at the cap is fine
  EXPECT_TRUE(make(p)->fetch(server_.url("127.0.0.1", "/a.png")).ok());
}

TEST_F(Fetcher, WholeFetchTimeout) {
  auto f = make(trusted());
  for (const char* target : {"/stall", "/stall-body"}) {
    const auto start = std::chrono::steady_clock::now();
    auto r = f->fetch(server_.url("127.0.0.1", target), 300ms);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r.ok()) << target;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("timed out"), std::string::npos) << r.status().to_string();
    EXPECT_GE(elapsed, 250ms);
    EXPECT_LT(elapsed, 3s);
  }
}

TEST_F(Fetcher, ErrorStatusesAndBadUrls) {
  auto f = make(trusted());
  auto missing = f->fetch(server_.url("127.0.0.1", "/missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("404"), std::string::npos);
  for (const char* bad : {"ftp://x/y", "http://user@host/x", "http://127.1/x", "http://"}) {
    auto r = f->fetch(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  // Nothing listens on the port after closing a socket bound to it.
  uint16_t closed_port;
  {
    net::io_context io;
    tcp::acceptor a(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    closed_port = a.local_endpoint().port();
  }
  auto refused = f->fetch("http://127.0.0.1:" + std::to_string(closed_port) + "/a.png");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
}

#ifdef K2_HAVE_OPENSSL
// https to a server that speaks plain HTTP: the handshake fails, as a value.
TEST_F(Fetcher, TlsFailureIsAnError) {
  auto f = make(trusted());
  auto r = f->fetch("https://127.0.0.1:" + std::to_string(server_.port()) + "/a.png", 2s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("TLS"), std::string::npos) << r.status().to_string();
}
#endif

// Through the MediaLoader: the content type must fit the modality.
TEST_F(Fetcher, LoaderChecksContentTypes) {
  auto cfg = load_media_proc_config(std::filesystem::path(K2_TEST_DATA_DIR) / "models/tiny-k25-vision/preprocessor_config.json");
  ASSERT_TRUE(cfg.ok());
  MediaLoaderOptions o;
  o.fetch = trusted();
  auto loader = MediaLoader::create(*cfg, o);
  ASSERT_TRUE(loader.ok()) << loader.status().to_string();
  auto good = (*loader)->load_image(server_.url("127.0.0.1", "/r1"));
  ASSERT_TRUE(good.ok()) << good.status().to_string();
  EXPECT_EQ(good->media.num_tokens, 4);
  EXPECT_TRUE((*loader)->load_image(server_.url("127.0.0.1", "/octet")).ok());
  for (const char* target : {"/page.html", "/png-as-html"}) {
    auto r = (*loader)->load_image(server_.url("127.0.0.1", target));
    ASSERT_FALSE(r.ok()) << target;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("text/html"), std::string::npos) << r.status().to_string();
  }
  auto video = (*loader)->load_video(server_.url("127.0.0.1", "/page.html"));
  ASSERT_FALSE(video.ok());
  EXPECT_NE(video.status().message().find("text/html"), std::string::npos) << video.status().to_string();
  // The default policy in a loader: loopback refused, a 400-kind error.
  auto strict = MediaLoader::create(*cfg, {});
  ASSERT_TRUE(strict.ok());
  auto refused = (*strict)->load_image(server_.url("localhost", "/a.png"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
}

TEST(FetchTimeouts, FromEnvironment) {
  std::map<std::string, std::string> env;
  auto lookup = [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto d = fetch_timeouts_from_env(lookup);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->image, 5000ms);
  EXPECT_EQ(d->video, 30000ms);
  env = {{"VLLM_IMAGE_FETCH_TIMEOUT", "2.5"}, {"VLLM_VIDEO_FETCH_TIMEOUT", "60"}};
  auto set = fetch_timeouts_from_env(lookup);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->image, 2500ms);
  EXPECT_EQ(set->video, 60000ms);
  for (const char* bad : {"0", "-1", "abc", "5s", "nan"}) {
    env = {{"VLLM_VIDEO_FETCH_TIMEOUT", bad}};
    auto r = fetch_timeouts_from_env(lookup);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("VLLM_VIDEO_FETCH_TIMEOUT"), std::string::npos);
  }
}

}  // namespace
}  // namespace k2::mm
