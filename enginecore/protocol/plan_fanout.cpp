#include "enginecore/protocol/plan_fanout.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "enginecore/protocol/zmq_channel.h"

namespace k2::protocol {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kMagic[4] = {'K', '2', 'P', 'F'};

constexpr size_t kMediaCountBytes = 8;  // u32 count, u32 zero
constexpr size_t kMediaItemHeadBytes = 24;

Status zmq_error(const char* what, const std::exception& e) { return io_error(std::string(what) + ": " + e.what()); }

void put_u64(std::byte* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}

uint64_t get_u64(std::span<const std::byte> in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(in[static_cast<size_t>(i)]) << (8 * i);
  return v;
}

size_t plan_frame_bytes(std::span<const std::span<const std::byte>> parts, std::span<const FanoutMedia> media) {
  size_t bytes = kFanoutHeaderBytes;
  for (const auto& p : parts) bytes += p.size();
  if (media.empty()) return bytes;
  bytes += 8 + kMediaCountBytes;
  for (const auto& m : media) bytes += kMediaItemHeadBytes + m.bytes.size();
  return bytes;
}

// Writes the frame plan_frame_bytes() sized into `out`.
void write_plan_frame(std::byte* out, uint64_t sequence, std::span<const std::span<const std::byte>> parts,
                      std::span<const FanoutMedia> media) {
  const FanoutKind kind = media.empty() ? FanoutKind::kPlan : FanoutKind::kPlanWithMedia;
  const std::vector<std::byte> header = encode_fanout_header(kind, sequence);
  std::memcpy(out, header.data(), header.size());
  size_t at = header.size();
  if (!media.empty()) {
    size_t plan_bytes = 0;
    for (const auto& p : parts) plan_bytes += p.size();
    put_u64(out + at, plan_bytes);
    at += 8;
  }
  for (const auto& p : parts) {
    if (!p.empty()) std::memcpy(out + at, p.data(), p.size());
    at += p.size();
  }
  if (media.empty()) return;
  put_u64(out + at, media.size());  // u32 count, u32 zero
  at += kMediaCountBytes;
  for (const auto& m : media) {
    K2_CHECK(!m.bytes.empty() && m.bytes.size() % sizeof(float) == 0);
    put_u64(out + at, m.hash_low);
    put_u64(out + at + 8, m.hash_high);
    put_u64(out + at + 16, m.bytes.size());
    std::memcpy(out + at + kMediaItemHeadBytes, m.bytes.data(), m.bytes.size());
    at += kMediaItemHeadBytes + m.bytes.size();
  }
}

// The media section of a kind-4 frame's payload: the plan's bytes and the items, all views.
Status decode_media_section(std::span<const std::byte> body, FanoutFrame& frame) {
  if (body.size() < 8) return corrupt("plan fan-out plan with media without its plan length");
  const uint64_t plan_bytes = get_u64(body);
  body = body.subspan(8);
  if (plan_bytes > body.size() || body.size() - plan_bytes < kMediaCountBytes)
    return corrupt("plan fan-out plan with media: the plan length " + std::to_string(plan_bytes) +
                   " overruns the frame");
  frame.payload = body.first(plan_bytes);
  body = body.subspan(plan_bytes);
  const uint64_t count_word = get_u64(body);
  body = body.subspan(kMediaCountBytes);
  if ((count_word >> 32) != 0) return corrupt("plan fan-out media count with non-zero reserved bytes");
  if (count_word == 0 || count_word > body.size() / kMediaItemHeadBytes)
    return corrupt("plan fan-out media count " + std::to_string(count_word) + " does not fit the frame");
  for (uint64_t i = 0; i < count_word; ++i) {
    if (body.size() < kMediaItemHeadBytes) return corrupt("plan fan-out media item truncated");
    FanoutMedia m{get_u64(body), get_u64(body.subspan(8)), {}};
    const uint64_t bytes = get_u64(body.subspan(16));
    body = body.subspan(kMediaItemHeadBytes);
    if (bytes == 0 || bytes % sizeof(float) != 0 || bytes > body.size())
      return corrupt("plan fan-out media item of " + std::to_string(bytes) + " bytes (" +
                     std::to_string(body.size()) + " left in the frame)");
    m.bytes = body.first(bytes);
    body = body.subspan(bytes);
    frame.media.push_back(m);
  }
  if (!body.empty()) return corrupt("plan fan-out frame with " + std::to_string(body.size()) + " trailing bytes");
  std::vector<std::pair<uint64_t, uint64_t>> keys;  // sorted, not pairwise: a frame may hold many items
  for (const auto& m : frame.media) keys.emplace_back(m.hash_low, m.hash_high);
  std::sort(keys.begin(), keys.end());
  if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) return corrupt("plan fan-out media item shipped twice");
  return Status::ok_status();
}

std::vector<MediaPixels> copy_pixels(std::span<const FanoutMedia> media) {
  std::vector<MediaPixels> out;
  out.reserve(media.size());
  for (const auto& m : media) {
    MediaPixels& p = out.emplace_back(MediaPixels{m.hash_low, m.hash_high, {}});
    p.values.resize(m.bytes.size() / sizeof(float));  // a copy: the frame's bytes need not be aligned
    std::memcpy(p.values.data(), m.bytes.data(), m.bytes.size());
  }
  return out;
}

}  // namespace

std::vector<std::byte> encode_fanout_header(FanoutKind kind, uint64_t sequence) {
  std::vector<std::byte> out(kFanoutHeaderBytes, std::byte{0});
  std::memcpy(out.data(), kMagic, sizeof(kMagic));
  out[4] = static_cast<std::byte>(kind);
  put_u64(out.data() + 8, sequence);
  return out;
}

std::vector<std::byte> encode_fanout_plan(uint64_t sequence, std::span<const std::span<const std::byte>> parts,
                                          std::span<const FanoutMedia> media) {
  std::vector<std::byte> out(plan_frame_bytes(parts, media));
  write_plan_frame(out.data(), sequence, parts, media);
  return out;
}

Result<FanoutFrame> decode_fanout(std::span<const std::byte> bytes) {
  if (bytes.size() < kFanoutHeaderBytes)
    return corrupt("plan fan-out frame of " + std::to_string(bytes.size()) + " bytes is shorter than its header");
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) return corrupt("plan fan-out frame without its magic");
  const auto kind = static_cast<uint8_t>(bytes[4]);
  if (kind < 1 || kind > 4) return corrupt("plan fan-out frame of unknown kind " + std::to_string(kind));
  if (bytes[5] != std::byte{0} || bytes[6] != std::byte{0} || bytes[7] != std::byte{0})
    return corrupt("plan fan-out frame with non-zero reserved bytes");
  FanoutFrame frame;
  frame.kind = static_cast<FanoutKind>(kind);
  frame.sequence = get_u64(bytes.subspan(8));
  frame.payload = bytes.subspan(kFanoutHeaderBytes);
  if (frame.kind == FanoutKind::kPlanWithMedia) K2_RETURN_IF_ERROR(decode_media_section(frame.payload, frame));
  else if (frame.kind != FanoutKind::kPlan && !frame.payload.empty())
    return corrupt("plan fan-out heartbeat or close with a payload");
  return frame;
}

Result<PlanFanout> PlanFanout::bind(zmq::context_t& context, ControlPlaneSecurity& security, const std::string& host) {
  SocketOptions options;
  options.linger_ms = 1000;  // the close must reach the readers when the engine exits
  K2_ASSIGN_OR_RETURN(zmq::socket_t socket, make_socket(context, zmq::socket_type::xpub, options));
  try {
    socket.set(zmq::sockopt::xpub_verbose, 1);  // every reader's subscription, not only the first
  } catch (const std::exception& e) {
    return zmq_error("setting XPUB_VERBOSE", e);
  }
  K2_RETURN_IF_ERROR(security.secure_server(context, socket, "plan fan-out"));
  K2_ASSIGN_OR_RETURN(std::string endpoint, bind_any_port(socket, host));
  return PlanFanout(std::move(socket), std::move(endpoint));
}

Status PlanFanout::wait_for_readers(uint32_t readers, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (subscribed_ < readers) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0)
      return unavailable("only " + std::to_string(subscribed_) + " of " + std::to_string(readers) +
                         " remote workers subscribed to the plans in time");
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::min(left, std::chrono::milliseconds(100)));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t msg;
      if (!socket_.recv(msg, zmq::recv_flags::dontwait)) continue;
      // XPUB: 1 + topic subscribes, 0 + topic unsubscribes.
      if (msg.size() >= 1 && static_cast<const uint8_t*>(msg.data())[0] == 1) ++subscribed_;
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) return zmq_error("waiting for plan subscribers", e);
    }
  }
  return Status::ok_status();
}

Status PlanFanout::publish(std::span<const std::span<const std::byte>> parts, std::span<const FanoutMedia> media) {
  zmq::message_t msg(plan_frame_bytes(parts, media));
  write_plan_frame(static_cast<std::byte*>(msg.data()), sequence_, parts, media);
  try {
    socket_.send(msg, zmq::send_flags::none);
  } catch (const std::exception& e) {
    return zmq_error("publishing a plan to the remote workers", e);
  }
  ++sequence_;
  last_sent_ = Clock::now();
  return Status::ok_status();
}

Status PlanFanout::send_control(FanoutKind kind) {
  const std::vector<std::byte> header = encode_fanout_header(kind, sequence_);
  try {
    socket_.send(zmq::buffer(header.data(), header.size()), zmq::send_flags::none);
  } catch (const std::exception& e) {
    return zmq_error("sending to the remote workers", e);
  }
  last_sent_ = Clock::now();
  return Status::ok_status();
}

Status PlanFanout::heartbeat_if_due() {
  if (Clock::now() - last_sent_ < kFanoutHeartbeatInterval) return Status::ok_status();
  return send_control(FanoutKind::kHeartbeat);
}

void PlanFanout::close() { (void)send_control(FanoutKind::kClose); }

Result<PlanSubscriber> PlanSubscriber::connect(zmq::context_t& context, const ControlPlaneSecurity& security,
                                               const std::string& endpoint) {
  K2_ASSIGN_OR_RETURN(zmq::socket_t socket, make_socket(context, zmq::socket_type::sub));
  try {
    socket.set(zmq::sockopt::subscribe, "");
  } catch (const std::exception& e) {
    return zmq_error("subscribing to the plans", e);
  }
  K2_RETURN_IF_ERROR(security.secure_client(socket));
  K2_RETURN_IF_ERROR(connect_endpoint(socket, endpoint));
  return PlanSubscriber(std::move(socket));
}

Result<FanoutPlan> PlanSubscriber::next(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    zmq::message_t msg;
    std::optional<size_t> got;
    try {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      zmq::poll(&item, 1, std::max(left, std::chrono::milliseconds(0)));
      if (item.revents & ZMQ_POLLIN) got = socket_.recv(msg, zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) return zmq_error("receiving a plan", e);
    }
    if (!got) {
      if (Clock::now() - last_heard_ > kFanoutMasterTimeout)
        return unavailable("plan fan-out: the engine has been silent for " +
                           std::to_string(kFanoutMasterTimeout.count() / 1000) + " s");
      if (Clock::now() >= deadline) return unavailable("plan fan-out: next plan timed out");
      continue;
    }
    last_heard_ = Clock::now();
    K2_ASSIGN_OR_RETURN(FanoutFrame frame,
                        decode_fanout(std::span<const std::byte>(static_cast<const std::byte*>(msg.data()), msg.size())));
    if (frame.sequence != expected_)
      return corrupt("plan fan-out: expected plan " + std::to_string(expected_) + ", the engine is at " +
                     std::to_string(frame.sequence) + " (plans were lost on the connection)");
    if (frame.kind == FanoutKind::kClose) return unavailable("plan fan-out: closed");
    if (frame.kind == FanoutKind::kHeartbeat) continue;
    ++expected_;
    return FanoutPlan{std::vector<std::byte>(frame.payload.begin(), frame.payload.end()), copy_pixels(frame.media)};
  }
}

}  // namespace k2::protocol
