#include "frontend/http/server.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <thread>

#include "frontend/http/json_error.h"
#include "frontend/http/sse.h"

namespace k2::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

struct Client {
  net::io_context io;
  tcp::socket sock{io};
  beast::flat_buffer buf;
  explicit Client(uint16_t port) { sock.connect({net::ip::make_address("127.0.0.1"), port}); }
  bhttp::response<bhttp::string_body> request(bhttp::verb verb, const std::string& target, std::string body = {}) {
    bhttp::request<bhttp::string_body> req{verb, target, 11};
    req.set(bhttp::field::host, "localhost");
    req.body() = std::move(body);
    req.prepare_payload();
    bhttp::write(sock, req);
    return read();
  }
  bhttp::response<bhttp::string_body> read() {
    bhttp::response_parser<bhttp::string_body> p;
    p.body_limit(1 << 30);
    bhttp::read(sock, buf, p);
    return p.release();
  }
  void send_raw(const std::string& bytes) { net::write(sock, net::buffer(bytes)); }
};

class ScriptedSource : public StreamSource {
 public:
  StreamPull pull() override {
    std::lock_guard lock(mu);
    StreamPull p;
    p.bytes = std::move(pending);
    pending.clear();
    p.done = finished;
    return p;
  }
  void push(std::string s, bool done) {
    {
      std::lock_guard lock(mu);
      pending += s;
      finished = done;
    }
  }
  std::mutex mu;
  std::string pending;
  bool finished = false;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.port = 0;
    o.max_body_bytes = 1024;
    o.max_header_bytes = 2048;
    o.access_log = false;
    o.observer = [this](const CompletedExchange& c) {
      std::lock_guard lock(mu_);
      completed_.push_back(c.status);
    };
    server_ = std::make_unique<HttpServer>(o);
    server_->router().add("GET", "/hello", [](std::shared_ptr<Exchange> ex) {
      HttpResponse r;
      r.content_type = "text/plain";
      r.body = "hi " + ex->request().request_id;
      ex->respond(r);
    });
    server_->router().add("POST", "/echo", [](std::shared_ptr<Exchange> ex) {
      HttpResponse r;
      r.body = ex->request().body;
      ex->respond(r);
    });
    // Answers after a delay from another thread, unless cancelled first.
    server_->router().add("GET", "/slow", [this](std::shared_ptr<Exchange> ex) {
      ex->on_cancel([this] { cancelled_.store(true); });
      std::thread([ex] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        ex->respond(HttpResponse{200, "text/plain", "slow done", {}});
      }).detach();
    });
    // Never answers by itself: only a cancel ends it.
    server_->router().add("GET", "/hang", [this](std::shared_ptr<Exchange> ex) {
      ex->on_cancel([this, ex] { cancelled_.store(true); });
    });
    server_->router().add("GET", "/stream", [](std::shared_ptr<Exchange> ex) {
      auto src = std::make_shared<ScriptedSource>();
      ex->stream(200, {{"Content-Type", "text/event-stream"}}, src);
      std::thread([ex, src] {
        for (int i = 0; i < 3; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          src->push(sse_event("{\"i\":" + std::to_string(i) + "}"), false);
          ex->wake();
        }
        src->push(std::string(kSseDone), true);
        ex->wake();
      }).detach();
    });
    // Answered from another thread, as the engine's outputs are.
    server_->router().add("GET", "/async", [](std::shared_ptr<Exchange> ex) {
      std::thread([ex] { ex->respond(HttpResponse{200, "text/plain", "async done", {}}); }).detach();
    });
    ASSERT_TRUE(server_->start().ok());
    port_ = server_->port();
  }
  void TearDown() override { server_->stop(); }

  // Waits (bounded) until the server has parsed `n` requests: a fixed sleep is not enough
  // on a loaded sanitizer build.
  void wait_in_flight(size_t n) {
    for (int i = 0; i < 500 && server_->in_flight() != n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(server_->in_flight(), n);
  }

  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::vector<int> completed_;
};

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Client c(port_);
  auto r1 = c.request(bhttp::verb::get, "/hello");
  EXPECT_EQ(r1.result_int(), 200);
  EXPECT_EQ(r1.body().substr(0, 3), "hi ");
  EXPECT_TRUE(r1.keep_alive());
  auto r2 = c.request(bhttp::verb::post, "/echo", "{\"a\":1}");
  EXPECT_EQ(r2.body(), "{\"a\":1}");
  EXPECT_FALSE(r2["X-Request-Id"].empty());
}

TEST_F(HttpServerTest, HonoursSaneRequestIdAndReplacesOthers) {
  Client c(port_);
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/hello", 11};
  req.set("X-Request-Id", "abc-123");
  bhttp::write(c.sock, req);
  auto r = c.read();
  EXPECT_EQ(r.body(), "hi abc-123");
  EXPECT_EQ(r["X-Request-Id"], "abc-123");
  req.set("X-Request-Id", "bad id with spaces");
  bhttp::write(c.sock, req);
  r = c.read();
  EXPECT_NE(r.body(), "hi bad id with spaces");
  EXPECT_EQ(r.body().size(), 3u + 32u);
}

TEST_F(HttpServerTest, UnknownPathAndMethodAreJsonErrors) {
  Client c(port_);
  auto r = c.request(bhttp::verb::get, "/nope");
  EXPECT_EQ(r.result_int(), 404);
  auto j = nlohmann::json::parse(r.body());
  EXPECT_EQ(j["error"]["code"], 404);
  EXPECT_EQ(j["error"]["type"], "NotFoundError");
  r = c.request(bhttp::verb::delete_, "/hello");
  EXPECT_EQ(r.result_int(), 405);
  EXPECT_EQ(r[bhttp::field::allow], "GET");
}

TEST_F(HttpServerTest, BodyOverLimitIs413) {
  Client c(port_);
  auto r = c.request(bhttp::verb::post, "/echo", std::string(5000, 'x'));
  EXPECT_EQ(r.result_int(), 413);
  EXPECT_EQ(nlohmann::json::parse(r.body())["error"]["code"], 413);
}

TEST_F(HttpServerTest, HeadersOverLimitAre431) {
  Client c(port_);
  c.send_raw("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  auto r = c.read();
  EXPECT_EQ(r.result_int(), 431);
  EXPECT_EQ(nlohmann::json::parse(r.body())["error"]["code"], 431);
}

TEST_F(HttpServerTest, MalformedRequestIs400) {
  Client c(port_);
  c.send_raw("THIS IS NOT HTTP\r\n\r\n");
  auto r = c.read();
  EXPECT_EQ(r.result_int(), 400);
}

TEST_F(HttpServerTest, ExpectContinueIsAnswered) {
  Client c(port_);
  c.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  std::string got(25, '\0');
  net::read(c.sock, net::buffer(got));
  EXPECT_EQ(got, "HTTP/1.1 100 Continue\r\n\r\n");
  c.send_raw("hello");
  auto r = c.read();
  EXPECT_EQ(r.body(), "hello");
}

TEST_F(HttpServerTest, StreamsChunksPulledFromSource) {
  Client c(port_);
  auto r = c.request(bhttp::verb::get, "/stream");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_TRUE(r.chunked());
  EXPECT_EQ(r.body(), "data: {\"i\":0}\n\ndata: {\"i\":1}\n\ndata: {\"i\":2}\n\ndata: [DONE]\n\n");
  auto r2 = c.request(bhttp::verb::get, "/hello");  // connection still usable
  EXPECT_EQ(r2.result_int(), 200);
}

TEST_F(HttpServerTest, ClientDisconnectCancelsPendingExchange) {
  {
    Client c(port_);
    bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/hang", 11};
    bhttp::write(c.sock, req);
    wait_in_flight(1);
    EXPECT_FALSE(cancelled_.load());
  }  // socket closed here
  for (int i = 0; i < 100 && !cancelled_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(cancelled_.load());
  for (int i = 0; i < 100 && server_->in_flight() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server_->in_flight(), 0u);
}

// A client that reads the whole response and hangs up at once races the server's write
// completion; the exchange it got in full is a 200, never a 499 "client disconnected".
TEST_F(HttpServerTest, ClientClosingRightAfterAFullResponseIsNotACancel) {
  constexpr int kRounds = 300;
  for (int i = 0; i < kRounds; ++i) {
    Client c(port_);
    auto res = c.request(bhttp::verb::get, "/async");
    ASSERT_EQ(res.body(), "async done");
  }  // socket closed here, right after the last byte was read
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(mu_);
      if (completed_.size() >= static_cast<size_t>(kRounds)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard lock(mu_);
  ASSERT_EQ(completed_.size(), static_cast<size_t>(kRounds));
  for (int status : completed_) EXPECT_EQ(status, 200);
}

TEST_F(HttpServerTest, DrainLetsInFlightFinishThenRefuses) {
  Client c(port_);
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/slow", 11};
  bhttp::write(c.sock, req);
  wait_in_flight(1);
  std::thread drainer([&] { EXPECT_EQ(server_->drain(std::chrono::seconds(5)), 0u); });
  auto r = c.read();
  EXPECT_EQ(r.body(), "slow done");
  EXPECT_FALSE(cancelled_.load());
  drainer.join();
  EXPECT_ANY_THROW(Client c2(port_));
}

TEST_F(HttpServerTest, DrainTimeoutCancelsTheRest) {
  Client c(port_);
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/hang", 11};
  bhttp::write(c.sock, req);
  wait_in_flight(1);
  EXPECT_EQ(server_->drain(std::chrono::milliseconds(100)), 1u);
  EXPECT_TRUE(cancelled_.load());
}

TEST(HttpServerStart, RejectsBadHost) {
  ServerOptions o;
  o.host = "not-an-ip";
  o.port = 0;
  HttpServer s(o);
  Status st = s.start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not-an-ip"), std::string::npos);
}

TEST(JsonError, EnvelopeHasIntegerCode) {
  auto j = nlohmann::json::parse(error_body(400, "bad", std::string_view("n")));
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "BadRequestError");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_EQ(j["error"]["code"], 400);
  auto k = nlohmann::json::parse(error_body(500, std::string("\xff\xfe")));
  EXPECT_TRUE(k["error"]["message"].is_string());
}

}  // namespace
}  // namespace k2::http
