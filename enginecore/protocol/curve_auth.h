// Authenticated control plane across nodes: ZeroMQ CURVE (RFC 26) with one key pair shared
// by the whole deployment, like a cluster secret, and a ZAP handler (RFC 27) that admits only
// peers holding that pair. vLLM trusts anyone who reaches its tcp:// ports; k2serve does not.
//
// Why one shared pair: every node of a deployment reads the same `--control-plane-key-file`
// (made by `k2serve keygen`), so a server can check "the peer proved it holds the deployment
// secret" without a list of per-node keys to distribute. CURVE itself proves the client owns
// the secret key of the public key it presents; the authenticator then admits only the
// deployment public key.
//
// Key file format (text, mode 0600, at most 4 KiB): '#' comment lines and blank lines are
// ignored, and exactly two `name=value` lines give the Z85 keys (40 characters each):
//   public=<Z85 public key>
//   secret=<Z85 secret key>
// The public key must be the one derived from the secret key.
//
// Use, per tcp:// socket, before bind/connect:
//   server side: make_curve_server(socket, keys)  (+ authenticator.watch(socket, "name") to
//                also log peers that do not even speak CURVE)
//   client side: make_curve_client(socket, keys)
// and one CurveAuthenticator per zmq::context_t that holds server sockets. A server socket
// refuses every peer while no authenticator runs in its context (fail closed).
//
// Ownership and threads: CurveKeys is a plain value type holding the secret; never log it.
// The free functions keep no state; the socket ones must be called from the thread that uses
// the socket. CurveAuthenticator owns one thread and the sockets it creates; watch() and the
// counters are safe from any thread. It must be destroyed before its zmq::context_t.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "shm/status.h"

namespace k2::protocol {

inline constexpr size_t kCurveKeyZ85Length = 40;
inline constexpr size_t kMaxKeyFileBytes = 4096;
// The ZAP domain of k2serve's server sockets; the authenticator refuses any other.
inline constexpr const char* kCurveZapDomain = "k2serve";

struct CurveKeys {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// ok when this libzmq was built with CURVE (libsodium); otherwise kUnimplemented saying so.
Status curve_available();

// A new random key pair (zmq_curve_keypair).
Result<CurveKeys> generate_curve_keys();

// Both keys are 40 valid Z85 characters and the public key belongs to the secret key.
Status validate_curve_keys(const CurveKeys& keys);

// The key file text of `keys` (the format above) and its parser. The parser takes any bytes
// and never echoes the secret in its errors.
std::string format_key_file(const CurveKeys& keys);
Result<CurveKeys> parse_key_file(std::string_view content);

// Creates `path` exclusively with mode 0600 (an existing file is never overwritten: kIo
// naming it) and writes the keys; a partly written file is removed.
Status write_key_file(const std::string& path, const CurveKeys& keys);
// Reads and parses `path`. Refuses, as ssh does with private keys, a file that group or
// others can access, and anything but a regular file.
Result<CurveKeys> load_key_file(const std::string& path);

// Makes `socket` a CURVE server with the deployment secret key in the k2serve ZAP domain,
// with ZAP enforced: it admits nobody unless a CurveAuthenticator runs in its context.
Status make_curve_server(zmq::socket_t& socket, const CurveKeys& keys);
// Makes `socket` a CURVE client presenting the deployment key pair and expecting the server
// to hold the deployment secret (ZMQ_CURVE_SERVERKEY = the deployment public key).
Status make_curve_client(zmq::socket_t& socket, const CurveKeys& keys);

// The ZAP handler of one zmq::context_t: binds inproc://zeromq.zap.01 (one per context) and
// answers on its own thread. Admits CURVE peers whose public key is the deployment public key
// in the k2serve domain; refuses everything else (NULL, PLAIN, other keys, other domains) and
// logs each refusal on one line: peer address, mechanism, reason. A misconfigured node
// retries every reconnect interval (100 ms), so one peer and reason get at most one line per
// 10 s, which counts the refusals left out since the previous one; refused() counts them all.
// A refused client gets no error from send(): its messages stay queued while libzmq retries,
// so the client side must bound its own wait (as the handshake timeouts do).
class CurveAuthenticator {
 public:
  static Result<std::unique_ptr<CurveAuthenticator>> start(zmq::context_t& context, const CurveKeys& keys);
  ~CurveAuthenticator();
  CurveAuthenticator(const CurveAuthenticator&) = delete;
  CurveAuthenticator& operator=(const CurveAuthenticator&) = delete;

  // Also logs and counts peers of `server` (a socket of this context, made by
  // make_curve_server, called from its owning thread) that fail the handshake before ZAP
  // is asked: a client without CURVE, or one expecting another server key.
  Status watch(zmq::socket_t& server, std::string_view label);

  uint64_t accepted() const { return accepted_.load(); }
  uint64_t refused() const { return refused_.load(); }

 private:
  CurveAuthenticator(zmq::context_t& context, std::string public_key_bin);
  void run(zmq::socket_t zap);
  void answer(zmq::socket_t& zap);
  void report_monitor_event(zmq::socket_t& monitor, const std::string& label);
  void log_refusal(const std::string& address, const std::string& mechanism, const std::string& reason);

  struct Watched {
    zmq::socket_t monitor;
    std::string label;
  };
  struct RecentRefusal {
    std::chrono::steady_clock::time_point logged_at;
    uint64_t suppressed = 0;
  };

  zmq::context_t& context_;
  const std::string public_key_bin_;  // 32 bytes
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_{0};
  std::mutex mutex_;               // guards pending_ and next_monitor_id_
  std::vector<Watched> pending_;   // handed to the thread, which owns them afterwards
  uint64_t next_monitor_id_ = 0;
  std::map<std::string, RecentRefusal> recent_refusals_;  // the thread's only
  std::thread thread_;
};

}  // namespace k2::protocol
