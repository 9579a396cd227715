#include "enginecore/protocol/curve_auth.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <zmq_addon.hpp>

namespace k2::protocol {
namespace {

using Clock = std::chrono::steady_clock;

// Not in the non-draft zmq.h of libzmq 4.3, yet honoured by it; the value is fixed by RFC.
#ifdef ZMQ_ZAP_ENFORCE_DOMAIN
constexpr int kZapEnforceDomain = ZMQ_ZAP_ENFORCE_DOMAIN;
#else
constexpr int kZapEnforceDomain = 93;
#endif

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
constexpr size_t kCurveKeyBytes = 32;
constexpr auto kPollInterval = std::chrono::milliseconds(50);
constexpr auto kRefusalLogInterval = std::chrono::seconds(10);
constexpr size_t kMaxRecentRefusals = 1024;

std::string errno_text() { return std::strerror(errno); }

// 32 key bytes from 40 Z85 characters, or an error naming `what` (never the key itself).
Result<std::string> decode_z85_key(std::string_view z85, const char* what) {
  if (z85.size() != kCurveKeyZ85Length)
    return invalid_argument(std::string(what) + " must be " + std::to_string(kCurveKeyZ85Length) +
                            " Z85 characters, got " + std::to_string(z85.size()));
  for (char c : z85)
    if (kZ85Alphabet.find(c) == std::string_view::npos)
      return invalid_argument(std::string(what) + " has a character outside the Z85 alphabet");
  std::string text(z85);  // zmq_z85_decode needs a terminated string
  std::string bytes(kCurveKeyBytes, '\0');
  if (zmq_z85_decode(reinterpret_cast<uint8_t*>(bytes.data()), text.c_str()) == nullptr)
    return invalid_argument(std::string(what) + " is not valid Z85");
  return bytes;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

Status set_curve_option(zmq::socket_t& socket, int option, const std::string& value) {
  if (zmq_setsockopt(socket.handle(), option, value.data(), value.size()) != 0)
    return io_error("setting CURVE option " + std::to_string(option) + ": " + zmq_strerror(zmq_errno()));
  return Status::ok_status();
}

Status set_int_option(zmq::socket_t& socket, int option, int value, const char* name) {
  if (zmq_setsockopt(socket.handle(), option, &value, sizeof value) != 0)
    return unimplemented(std::string("this libzmq does not support ") + name + ": " + zmq_strerror(zmq_errno()));
  return Status::ok_status();
}

std::string describe_handshake_failure(uint16_t event, uint32_t value) {
  if (event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) return "handshake failed before authentication";
  switch (value) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
      return "security mechanism mismatch (the peer does not use CURVE)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
      return "cryptographic failure (the peer expects another server key)";
    default: {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08x", value);
      return std::string("protocol error ") + hex;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- keys

Status curve_available() {
  if (zmq_has("curve") == 0)
    return unimplemented("this libzmq was built without CURVE (libsodium); the authenticated control plane needs it");
  return Status::ok_status();
}

Result<CurveKeys> generate_curve_keys() {
  K2_RETURN_IF_ERROR(curve_available());
  char pub[kCurveKeyZ85Length + 1] = {};
  char sec[kCurveKeyZ85Length + 1] = {};
  if (zmq_curve_keypair(pub, sec) != 0) return io_error(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
  CurveKeys keys{pub, sec};
  std::memset(sec, 0, sizeof sec);
  return keys;
}

Status validate_curve_keys(const CurveKeys& keys) {
  K2_RETURN_IF_ERROR(decode_z85_key(keys.public_key, "the public key").status());
  K2_RETURN_IF_ERROR(decode_z85_key(keys.secret_key, "the secret key").status());
  K2_RETURN_IF_ERROR(curve_available());
  char derived[kCurveKeyZ85Length + 1] = {};
  if (zmq_curve_public(derived, keys.secret_key.c_str()) != 0)
    return invalid_argument("the secret key cannot be used: " + std::string(zmq_strerror(zmq_errno())));
  if (keys.public_key != derived) return invalid_argument("the public key does not belong to the secret key");
  return Status::ok_status();
}

std::string format_key_file(const CurveKeys& keys) {
  return "# k2serve control-plane key: a ZeroMQ CURVE key pair (Z85). Every node of one\n"
         "# deployment uses this same file. Keep it secret (mode 0600).\n"
         "public=" +
         keys.public_key + "\nsecret=" + keys.secret_key + "\n";
}

Result<CurveKeys> parse_key_file(std::string_view content) {
  if (content.size() > kMaxKeyFileBytes)
    return invalid_argument("a key file is at most " + std::to_string(kMaxKeyFileBytes) + " bytes, this one has " +
                            std::to_string(content.size()));
  CurveKeys keys;
  bool have_public = false;
  bool have_secret = false;
  size_t line_no = 0;
  while (!content.empty()) {
    size_t eol = content.find('\n');
    std::string_view line = trim(content.substr(0, eol));
    content.remove_prefix(eol == std::string_view::npos ? content.size() : eol + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = "line " + std::to_string(line_no);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return invalid_argument(where + ": expected public=KEY or secret=KEY");
    std::string_view name = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    bool is_public = name == "public";
    if (!is_public && name != "secret")
      return invalid_argument(where + ": unknown entry (expected public or secret)");
    bool& seen = is_public ? have_public : have_secret;
    if (seen) return invalid_argument(where + ": " + std::string(name) + " given twice");
    seen = true;
    auto decoded = decode_z85_key(value, is_public ? "the public key" : "the secret key");
    if (!decoded.ok()) return decoded.status().with_context(where);
    (is_public ? keys.public_key : keys.secret_key) = std::string(value);
  }
  if (!have_public || !have_secret)
    return invalid_argument(std::string("no ") + (have_public ? "secret" : "public") + "= line");
  K2_RETURN_IF_ERROR(validate_curve_keys(keys));
  return keys;
}

Status write_key_file(const std::string& path, const CurveKeys& keys) {
  K2_RETURN_IF_ERROR(validate_curve_keys(keys));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return io_error(path + " already exists; refusing to overwrite a key file");
    return io_error("cannot create " + path + ": " + errno_text());
  }
  const std::string text = format_key_file(keys);
  Status status;
  if (::fchmod(fd, 0600) != 0) status = io_error("chmod 600 " + path + ": " + errno_text());
  size_t done = 0;
  while (status.ok() && done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) status = io_error("writing " + path + ": " + errno_text());
    else done += static_cast<size_t>(n);
  }
  if (status.ok() && ::fsync(fd) != 0) status = io_error("syncing " + path + ": " + errno_text());
  if (::close(fd) != 0 && status.ok()) status = io_error("closing " + path + ": " + errno_text());
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

Result<CurveKeys> load_key_file(const std::string& path) {
  // O_NONBLOCK: a FIFO in the key's place must not hang the process; it is refused below.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) return not_found("key file " + path + " does not exist (make one with `k2serve keygen`)");
    return io_error("cannot open key file " + path + ": " + errno_text());
  }
  struct stat st {};
  Status status;
  if (::fstat(fd, &st) != 0) {
    status = io_error("cannot stat key file " + path + ": " + errno_text());
  } else if (!S_ISREG(st.st_mode)) {
    status = invalid_argument("key file " + path + " is not a regular file");
  } else if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    status = invalid_argument("key file " + path + " is accessible by group or others (mode " + mode +
                              "); run: chmod 600 " + path);
  } else if (static_cast<uint64_t>(st.st_size) > kMaxKeyFileBytes) {
    status = invalid_argument("key file " + path + " is too large to be a key file");
  }
  std::string content;
  if (status.ok()) {
    content.resize(kMaxKeyFileBytes + 1);
    size_t done = 0;
    while (done < content.size()) {
      ssize_t n = ::read(fd, content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = io_error("reading key file " + path + ": " + errno_text());
        break;
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    content.resize(done);
  }
  ::close(fd);
  if (!status.ok()) return status;
  auto keys = parse_key_file(content);
  std::fill(content.begin(), content.end(), '\0');
  if (!keys.ok()) return keys.status().with_context("key file " + path);
  return keys;
}

// ---------------------------------------------------------------- sockets

Status make_curve_server(zmq::socket_t& socket, const CurveKeys& keys) {
  K2_RETURN_IF_ERROR(validate_curve_keys(keys));
  K2_RETURN_IF_ERROR(set_int_option(socket, ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER"));
  K2_RETURN_IF_ERROR(set_curve_option(socket, ZMQ_CURVE_SECRETKEY, keys.secret_key));
  K2_RETURN_IF_ERROR(set_curve_option(socket, ZMQ_ZAP_DOMAIN, kCurveZapDomain));
  // Without it libzmq admits every CURVE client when no ZAP handler is bound.
  return set_int_option(socket, kZapEnforceDomain, 1, "ZMQ_ZAP_ENFORCE_DOMAIN");
}

Status make_curve_client(zmq::socket_t& socket, const CurveKeys& keys) {
  K2_RETURN_IF_ERROR(validate_curve_keys(keys));
  K2_RETURN_IF_ERROR(set_curve_option(socket, ZMQ_CURVE_SERVERKEY, keys.public_key));
  K2_RETURN_IF_ERROR(set_curve_option(socket, ZMQ_CURVE_PUBLICKEY, keys.public_key));
  return set_curve_option(socket, ZMQ_CURVE_SECRETKEY, keys.secret_key);
}

// ---------------------------------------------------------------- authenticator

CurveAuthenticator::CurveAuthenticator(zmq::context_t& context, std::string public_key_bin)
    : context_(context), public_key_bin_(std::move(public_key_bin)) {}

Result<std::unique_ptr<CurveAuthenticator>> CurveAuthenticator::start(zmq::context_t& context,
                                                                      const CurveKeys& keys) {
  K2_RETURN_IF_ERROR(validate_curve_keys(keys));
  K2_ASSIGN_OR_RETURN(std::string public_bin, decode_z85_key(keys.public_key, "the public key"));
  std::unique_ptr<CurveAuthenticator> auth(new CurveAuthenticator(context, std::move(public_bin)));
  try {
    zmq::socket_t zap(context, zmq::socket_type::rep);
    zap.set(zmq::sockopt::linger, 0);
    zap.bind("inproc://zeromq.zap.01");
    auth->thread_ = std::thread([a = auth.get(), s = std::move(zap)]() mutable { a->run(std::move(s)); });
  } catch (const zmq::error_t& e) {
    if (e.num() == EADDRINUSE) return unavailable("this zmq context already has a ZAP handler");
    return io_error(std::string("starting the CURVE authenticator: ") + e.what());
  }
  return auth;
}

CurveAuthenticator::~CurveAuthenticator() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

Status CurveAuthenticator::watch(zmq::socket_t& server, std::string_view label) {
  std::string endpoint;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    endpoint = "inproc://k2serve-curve-monitor-" + std::to_string(reinterpret_cast<uintptr_t>(this)) + "-" +
               std::to_string(next_monitor_id_++);
  }
  if (zmq_socket_monitor(server.handle(), endpoint.c_str(),
                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
    return io_error("monitoring a CURVE server socket: " + std::string(zmq_strerror(zmq_errno())));
  try {
    zmq::socket_t monitor(context_, zmq::socket_type::pair);
    monitor.set(zmq::sockopt::linger, 0);
    monitor.connect(endpoint);
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(Watched{std::move(monitor), std::string(label)});
  } catch (const zmq::error_t& e) {
    zmq_socket_monitor(server.handle(), nullptr, 0);
    return io_error(std::string("connecting a CURVE monitor: ") + e.what());
  }
  return Status::ok_status();
}

void CurveAuthenticator::run(zmq::socket_t zap) {
  std::vector<Watched> watched;
  std::vector<zmq::pollitem_t> items;
  while (!stop_.load()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& w : pending_) watched.push_back(std::move(w));
      pending_.clear();
    }
    items.assign(1, zmq::pollitem_t{zap.handle(), 0, ZMQ_POLLIN, 0});
    for (auto& w : watched) items.push_back(zmq::pollitem_t{w.monitor.handle(), 0, ZMQ_POLLIN, 0});
    try {
      zmq::poll(items, kPollInterval);
      if (items[0].revents & ZMQ_POLLIN) answer(zap);
      for (size_t i = 0; i < watched.size(); ++i)
        if (items[i + 1].revents & ZMQ_POLLIN) report_monitor_event(watched[i].monitor, watched[i].label);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;  // the context is being torn down
      spdlog::error("control plane: CURVE authenticator: {}", e.what());
    }
  }
}

// ZAP request (RFC 27): version, request id, domain, address, identity, mechanism, credentials.
void CurveAuthenticator::answer(zmq::socket_t& zap) {
  std::vector<zmq::message_t> request;
  if (!zmq::recv_multipart(zap, std::back_inserter(request), zmq::recv_flags::dontwait)) return;
  auto frame = [&](size_t i) { return i < request.size() ? request[i].to_string() : std::string(); };
  const std::string address = frame(3).empty() ? "(local)" : frame(3);
  const std::string mechanism = frame(5);
  std::string refusal;
  if (request.size() < 6 || frame(0) != "1.0") refusal = "malformed ZAP request";
  else if (frame(2) != kCurveZapDomain) refusal = "unknown ZAP domain '" + frame(2) + "'";
  else if (mechanism != "CURVE") refusal = "only CURVE peers are admitted";
  else if (request.size() != 7 || request[6].size() != kCurveKeyBytes) refusal = "malformed CURVE credentials";
  else if (request[6].to_string() != public_key_bin_) refusal = "the peer's key is not the deployment key";

  if (refusal.empty()) accepted_.fetch_add(1);
  else log_refusal(address, mechanism.empty() ? "?" : mechanism, refusal);

  const bool ok = refusal.empty();
  std::vector<zmq::const_buffer> reply = {zmq::str_buffer("1.0"),
                                          zmq::buffer(request.size() > 1 ? request[1].to_string_view()
                                                                         : std::string_view()),
                                          ok ? zmq::str_buffer("200") : zmq::str_buffer("400"),
                                          zmq::buffer(ok ? std::string_view("OK") : std::string_view(refusal)),
                                          ok ? zmq::str_buffer("k2serve-node") : zmq::str_buffer(""),
                                          zmq::str_buffer("")};
  zmq::send_multipart(zap, reply);
}

void CurveAuthenticator::report_monitor_event(zmq::socket_t& monitor, const std::string& label) {
  std::vector<zmq::message_t> event;
  if (!zmq::recv_multipart(monitor, std::back_inserter(event), zmq::recv_flags::dontwait)) return;
  if (event.empty() || event[0].size() != 6) return;
  uint16_t id = 0;
  uint32_t value = 0;
  std::memcpy(&id, event[0].data(), sizeof id);
  std::memcpy(&value, static_cast<const char*>(event[0].data()) + 2, sizeof value);
  const std::string endpoint = event.size() > 1 ? event[1].to_string() : std::string();
  const std::string mechanism = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH ? "not CURVE"
                                : value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC   ? "CURVE"
                                                                                   : "?";
  // libzmq's monitor does not say who the peer was, only where it connected.
  log_refusal("unknown (" + label + " " + endpoint + ")", mechanism, describe_handshake_failure(id, value));
}

void CurveAuthenticator::log_refusal(const std::string& address, const std::string& mechanism,
                                     const std::string& reason) {
  const auto now = Clock::now();
  const std::string key = address + '\n' + reason;
  auto it = recent_refusals_.find(key);
  if (it != recent_refusals_.end() && now - it->second.logged_at < kRefusalLogInterval) {
    ++it->second.suppressed;
  } else {
    uint64_t suppressed = it == recent_refusals_.end() ? 0 : it->second.suppressed;
    spdlog::warn("control plane: refused peer {} mechanism {}: {}{}", address, mechanism, reason,
                 suppressed == 0 ? "" : fmt::format(" ({} more like it in the last {} s)", suppressed,
                                                    std::chrono::duration_cast<std::chrono::seconds>(
                                                        now - it->second.logged_at).count()));
    if (recent_refusals_.size() >= kMaxRecentRefusals) recent_refusals_.clear();
    recent_refusals_[key] = RecentRefusal{now, 0};
  }
  refused_.fetch_add(1);
}

}  // namespace k2::protocol
