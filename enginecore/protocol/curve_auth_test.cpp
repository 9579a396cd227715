#include "enginecore/protocol/curve_auth.h"

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <zmq_addon.hpp>

namespace k2::protocol {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A private directory for key files, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "k2-curve-test-XXXXXX").string();
    path_ = ::mkdtemp(templ.data()) ? templ : "";
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

CurveKeys new_keys() {
  auto keys = generate_curve_keys();
  EXPECT_TRUE(keys.ok()) << keys.status().to_string();
  return keys.ok() ? *keys : CurveKeys{};
}

void write_raw(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path, std::ios::binary) << content;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

// Polls until `cond` holds or `limit` passes.
template <class F>
bool eventually(F cond, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

// ---------------------------------------------------------------- keys and key files

TEST(CurveKeys, GeneratedPairsAreValidAndDistinct) {
  ASSERT_TRUE(curve_available().ok());
  CurveKeys a = new_keys();
  CurveKeys b = new_keys();
  EXPECT_EQ(a.public_key.size(), kCurveKeyZ85Length);
  EXPECT_EQ(a.secret_key.size(), kCurveKeyZ85Length);
  EXPECT_NE(a.secret_key, b.secret_key);
  EXPECT_TRUE(validate_curve_keys(a).ok());
  EXPECT_EQ(validate_curve_keys({a.public_key, b.secret_key}).code(), Code::kInvalidArgument);
}

TEST(CurveKeyFile, RoundTripWithMode0600AndNoOverwrite) {
  TempDir dir;
  const std::string path = dir.file("control-plane.key");
  CurveKeys keys = new_keys();
  ASSERT_TRUE(write_key_file(path, keys).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto loaded = load_key_file(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->public_key, keys.public_key);
  EXPECT_EQ(loaded->secret_key, keys.secret_key);

  Status again = write_key_file(path, new_keys());
  EXPECT_EQ(again.code(), Code::kIo);
  EXPECT_NE(again.message().find("refusing to overwrite"), std::string::npos) << again.message();
  auto still = load_key_file(path);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->secret_key, keys.secret_key);
}

TEST(CurveKeyFile, RefusesFilesOthersCanRead) {
  TempDir dir;
  const std::string path = dir.file("k");
  CurveKeys keys = new_keys();
  for (mode_t mode : {0640, 0604, 0660, 0400 | 0010}) {
    write_raw(path, format_key_file(keys), mode);
    auto loaded = load_key_file(path);
    ASSERT_FALSE(loaded.ok()) << std::oct << mode;
    EXPECT_EQ(loaded.status().code(), Code::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find("chmod 600"), std::string::npos) << loaded.status().message();
  }
  write_raw(path, format_key_file(keys), 0400);
  EXPECT_TRUE(load_key_file(path).ok());

  EXPECT_EQ(load_key_file(dir.file("absent")).status().code(), Code::kNotFound);
  fs::create_directory(dir.file("d"));
  ::chmod(dir.file("d").c_str(), 0700);
  EXPECT_EQ(load_key_file(dir.file("d")).status().code(), Code::kInvalidArgument);
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  EXPECT_EQ(load_key_file(dir.file("fifo")).status().code(), Code::kInvalidArgument);  // and does not hang
}

TEST(CurveKeyFile, AcceptsCommentsCrlfAndAnyOrder) {
  CurveKeys k = new_keys();
  auto parsed = parse_key_file("\n# note\r\n  secret = " + k.secret_key + "\r\n\r\npublic=" + k.public_key);
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_EQ(parsed->public_key, k.public_key);
  EXPECT_EQ(parsed->secret_key, k.secret_key);
}

TEST(CurveKeyFile, MalformedContentIsAClearErrorThatNeverShowsTheSecret) {
  CurveKeys k = new_keys();
  CurveKeys other = new_keys();
  const std::string pub = "public=" + k.public_key + "\n";
  const std::string sec = "secret=" + k.secret_key + "\n";
  struct Case {
    std::string content;
    std::string expect;  // a part of the message
  };
  const std::vector<Case> cases = {
      {"", "no public= line"},
      {pub, "no secret= line"},
      {sec, "no public= line"},
      {pub + sec + pub, "line 3: public given twice"},
      {pub + "secret\n", "line 2: expected public=KEY"},
      {pub + "private=" + k.secret_key + "\n", "unknown entry"},
      {pub + "secret=" + k.secret_key.substr(0, 39) + "\n", "must be 40 Z85 characters, got 39"},
      {pub + "secret=" + k.secret_key + "A\n", "got 41"},
      {pub + "secret=" + k.secret_key.substr(0, 39) + "~\n", "outside the Z85 alphabet"},
      {pub + "secret=" + k.secret_key.substr(0, 39) + std::string(1, '\0') + "\n", "outside the Z85 alphabet"},
      {pub + "secret=" + std::string(40, '#') + "\n", "not valid Z85"},
      {"public=" + other.public_key + "\n" + sec, "does not belong to the secret key"},
      {"{\"public\": \"" + k.public_key + "\", \"secret\": \"" + k.secret_key + "\"}", "line 1: "},
      {pub + sec + std::string(kMaxKeyFileBytes, '#'), "at most 4096 bytes"},
  };
  for (const auto& c : cases) {
    auto parsed = parse_key_file(c.content);
    ASSERT_FALSE(parsed.ok()) << c.expect;
    EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(c.expect), std::string::npos)
        << "got: " << parsed.status().message() << "\nexpected: " << c.expect;
    EXPECT_EQ(parsed.status().message().find(k.secret_key.substr(0, 20)), std::string::npos);
  }
}

TEST(CurveKeyFile, LoadNamesThePathInParseErrors) {
  TempDir dir;
  write_raw(dir.file("bad"), "public=nope\n", 0600);
  auto loaded = load_key_file(dir.file("bad"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find(dir.file("bad")), std::string::npos);
  EXPECT_NE(loaded.status().message().find("line 1"), std::string::npos);
}

// ---------------------------------------------------------------- over tcp://127.0.0.1

// A ROUTER server made by make_curve_server in a context with an authenticator (unless
// `authenticate` is false), bound to an ephemeral loopback port.
struct Server {
  zmq::context_t context;
  std::unique_ptr<CurveAuthenticator> auth;
  zmq::socket_t router{context, zmq::socket_type::router};
  std::string endpoint;

  Server(const CurveKeys& keys, bool authenticate = true) {
    if (authenticate) {
      auto started = CurveAuthenticator::start(context, keys);
      EXPECT_TRUE(started.ok()) << started.status().to_string();
      if (started.ok()) auth = std::move(started).value();
    }
    router.set(zmq::sockopt::linger, 0);
    EXPECT_TRUE(make_curve_server(router, keys).ok());
    if (auth) {
      EXPECT_TRUE(auth->watch(router, "test-router").ok());
    }
    router.bind("tcp://127.0.0.1:*");
    endpoint = router.get(zmq::sockopt::last_endpoint);
  }
  ~Server() {
    router.close();
    auth.reset();  // before the context
  }

  // The payload frames of the next message within `timeout`, empty when none arrived.
  std::vector<std::string> receive(std::chrono::milliseconds timeout) {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) return {};
    std::vector<zmq::message_t> frames;
    (void)zmq::recv_multipart(router, std::back_inserter(frames));
    std::vector<std::string> out;
    for (auto& f : frames) out.push_back(f.to_string());
    return out;
  }
};

zmq::socket_t dealer(zmq::context_t& context) {
  zmq::socket_t s(context, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  return s;
}

TEST(CurveTransport, DeploymentKeyExchangesMessages) {
  CurveKeys keys = new_keys();
  Server server(keys);
  ASSERT_TRUE(server.auth);
  zmq::context_t client_ctx;
  zmq::socket_t client = dealer(client_ctx);
  ASSERT_TRUE(make_curve_client(client, keys).ok());
  client.connect(server.endpoint);
  client.send(zmq::str_buffer("hello"));
  auto got = server.receive(5s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1], "hello");
  server.router.send(zmq::buffer(got[0]), zmq::send_flags::sndmore);
  server.router.send(zmq::str_buffer("welcome"));
  zmq::message_t reply;
  client.set(zmq::sockopt::rcvtimeo, 5000);
  ASSERT_TRUE(client.recv(reply));
  EXPECT_EQ(reply.to_string(), "welcome");
  EXPECT_EQ(server.auth->accepted(), 1u);
  EXPECT_EQ(server.auth->refused(), 0u);
}

TEST(CurveTransport, OwnKeyPairKnowingTheServerKeyIsRefusedByZapAndLogged) {
  CurveKeys keys = new_keys();
  CurveKeys intruder = new_keys();
  auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("curve-test", ring));
  {
    Server server(keys);
    ASSERT_TRUE(server.auth);
    zmq::context_t client_ctx;
    zmq::socket_t client = dealer(client_ctx);
    // The deployment public key is not a secret; holding it must not be enough.
    ASSERT_TRUE(make_curve_client(client, intruder).ok());
    client.set(zmq::sockopt::curve_serverkey, keys.public_key);
    client.connect(server.endpoint);
    client.send(zmq::str_buffer("let me in"));
    EXPECT_TRUE(server.receive(700ms).empty());
    EXPECT_TRUE(eventually([&] { return server.auth->refused() >= 1; }));
    EXPECT_EQ(server.auth->accepted(), 0u);
  }
  spdlog::set_default_logger(previous);
  auto lines = ring->last_formatted();
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("refused peer 127.0.0.1 mechanism CURVE: the peer's key is not the deployment key"),
            std::string::npos)
      << lines[0];
  EXPECT_EQ(lines[0].find('\n'), lines[0].size() - 1) << "one line per refusal";
  // A peer retrying every reconnect interval is summarized, not logged each time.
  EXPECT_LE(lines.size(), 2u);
}

TEST(CurveTransport, AnotherDeploymentsKeyFileIsRefused) {
  CurveKeys keys = new_keys();
  Server server(keys);
  ASSERT_TRUE(server.auth);
  zmq::context_t client_ctx;
  zmq::socket_t client = dealer(client_ctx);
  ASSERT_TRUE(make_curve_client(client, new_keys()).ok());
  client.connect(server.endpoint);
  client.send(zmq::str_buffer("hello"));
  EXPECT_TRUE(server.receive(700ms).empty());
  EXPECT_TRUE(eventually([&] { return server.auth->refused() >= 1; }));
  EXPECT_EQ(server.auth->accepted(), 0u);
}

TEST(CurveTransport, PlainClientIsRefused) {
  CurveKeys keys = new_keys();
  Server server(keys);
  ASSERT_TRUE(server.auth);
  zmq::context_t client_ctx;
  zmq::socket_t client = dealer(client_ctx);  // NULL mechanism
  client.connect(server.endpoint);
  client.send(zmq::str_buffer("hello"));
  EXPECT_TRUE(server.receive(700ms).empty());
  EXPECT_TRUE(eventually([&] { return server.auth->refused() >= 1; }));
  EXPECT_EQ(server.auth->accepted(), 0u);
}

TEST(CurveTransport, ServerWithoutAuthenticatorFailsClosed) {
  CurveKeys keys = new_keys();
  Server server(keys, /*authenticate=*/false);
  zmq::context_t client_ctx;
  zmq::socket_t client = dealer(client_ctx);
  ASSERT_TRUE(make_curve_client(client, keys).ok());
  client.connect(server.endpoint);
  client.send(zmq::str_buffer("hello"));
  EXPECT_TRUE(server.receive(700ms).empty());
}

TEST(CurveTransport, OneAuthenticatorPerContextAndNullSocketsUnaffected) {
  CurveKeys keys = new_keys();
  zmq::context_t context;
  auto auth = CurveAuthenticator::start(context, keys);
  ASSERT_TRUE(auth.ok()) << auth.status().to_string();
  auto second = CurveAuthenticator::start(context, keys);
  EXPECT_EQ(second.status().code(), Code::kUnavailable);
  // The ipc-style sockets of one node share the context and need no key.
  zmq::socket_t pull(context, zmq::socket_type::pull);
  zmq::socket_t push(context, zmq::socket_type::push);
  pull.set(zmq::sockopt::linger, 0);
  push.set(zmq::sockopt::linger, 0);
  pull.bind("tcp://127.0.0.1:*");
  push.connect(pull.get(zmq::sockopt::last_endpoint));
  push.send(zmq::str_buffer("local"));
  pull.set(zmq::sockopt::rcvtimeo, 5000);
  zmq::message_t m;
  ASSERT_TRUE(pull.recv(m));
  EXPECT_EQ(m.to_string(), "local");
  EXPECT_EQ((*auth)->refused(), 0u);
  pull.close();
  push.close();
  auth->reset();
}

TEST(CurveTransport, BadKeysAreRefusedBeforeTouchingTheSocket) {
  zmq::context_t context;
  zmq::socket_t s = dealer(context);
  CurveKeys k = new_keys();
  EXPECT_EQ(make_curve_client(s, {k.public_key, "short"}).code(), Code::kInvalidArgument);
  EXPECT_EQ(make_curve_server(s, {new_keys().public_key, k.secret_key}).code(), Code::kInvalidArgument);
  EXPECT_FALSE(CurveAuthenticator::start(context, {"", ""}).ok());
}

}  // namespace
}  // namespace k2::protocol
