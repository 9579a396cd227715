// The remote readers of an engine's step-plan broadcast: the workers of its tensor-parallel
// group that run on other nodes (vLLM's MessageQueue remote-reader fan-out, an XPUB socket
// bound on tcp:// and one SUB per remote reader). The workers on the engine's node keep
// reading the shm ring (shm/ring.h); the engine writes each plan to both.
//
// Wire format (one ZeroMQ message per publication, all integers little-endian):
//   [0..4)   magic "K2PF"
//   [4]      kind: 1 plan, 2 heartbeat, 3 close, 4 plan with media
//   [5..8)   zero
//   [8..16)  sequence: the index of this plan among all plans published (a heartbeat and a
//            close carry the index the next plan will have)
//   [16..)   a plan's bytes, laid out as in a ring slot; empty for heartbeats and closes
// A plan whose step encodes media items (ScheduledRequest::encode_media) is kind 4: the remote
// workers cannot read the pixels in the frontend's shm arena, so they travel with the plan
// (vLLM ships the payload to its remote readers the same way). From [16):
//   [0..8)   L: the plan's bytes, then L bytes of plan
//   then     u32 N >= 1 items, u32 zero, then N times:
//            [0..16) the item's content hash (low, high), [16..24) B, then B bytes of float32
//            pixel_values (B a non-zero multiple of 4)
// The frame ends exactly after the last item; hashes are distinct. Workers keep the pixels
// for that one step only: an item is encoded in the step that lists it, then served from
// the encoder cache or its twin's rows.
// Readers check the sequence, so a reader that lost a plan (a connection dropped and came
// back, which PUB/SUB does silently) fails instead of running a step the others did not.
// Nothing is dropped for a slow reader: the send queue is unbounded, and the engine has at
// most one step in flight anyway.
//
// PlanFanout (engine side) and PlanSubscriber (worker side) own their sockets, made in a
// context the caller keeps alive; each is used by one thread. Heartbeats: the engine sends
// one when it published nothing for kFanoutHeartbeatInterval, so that a reader tells a
// master that is gone (no traffic for kFanoutMasterTimeout) from an idle one.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/media_pixels.h"
#include "shm/status.h"

namespace k2::protocol {

inline constexpr std::chrono::milliseconds kFanoutHeartbeatInterval{1000};
inline constexpr std::chrono::milliseconds kFanoutMasterTimeout{15000};
inline constexpr size_t kFanoutHeaderBytes = 16;

enum class FanoutKind : uint8_t { kPlan = 1, kHeartbeat = 2, kClose = 3, kPlanWithMedia = 4 };

// One media item's pixels as the engine ships them: a view of its arena block.
struct FanoutMedia {
  uint64_t hash_low = 0, hash_high = 0;
  std::span<const std::byte> bytes;
};

struct FanoutFrame {
  FanoutKind kind = FanoutKind::kPlan;
  uint64_t sequence = 0;
  std::span<const std::byte> payload;  // the plan's bytes: a view into the decoded bytes
  std::vector<FanoutMedia> media;      // kPlanWithMedia: views into the decoded bytes
};

// What a remote reader gets for one plan.
struct FanoutPlan {
  std::vector<std::byte> plan;
  std::vector<MediaPixels> media;
};

std::vector<std::byte> encode_fanout_header(FanoutKind kind, uint64_t sequence);
// A whole plan frame: the plan is the concatenation of `parts`; kind 4 when `media` is not
// empty (each FanoutMedia's bytes a non-zero multiple of 4, hashes distinct).
std::vector<std::byte> encode_fanout_plan(uint64_t sequence, std::span<const std::span<const std::byte>> parts,
                                          std::span<const FanoutMedia> media);
// Any bytes: a frame or kCorrupt, never a crash.
Result<FanoutFrame> decode_fanout(std::span<const std::byte> bytes);

class PlanFanout {
 public:
  // Binds an XPUB on tcp://host:* (CURVE server with keys).
  static Result<PlanFanout> bind(zmq::context_t& context, ControlPlaneSecurity& security, const std::string& host);

  // Where the remote readers connect ("tcp://host:port").
  const std::string& endpoint() const { return endpoint_; }
  // Waits until `readers` subscriptions have arrived: a plan published before a reader
  // subscribed would never reach it. kUnavailable after `timeout`.
  Status wait_for_readers(uint32_t readers, std::chrono::milliseconds timeout);
  // Publishes one plan, given as the concatenation of `parts`, with the pixels of the media
  // items its step encodes.
  Status publish(std::span<const std::span<const std::byte>> parts, std::span<const FanoutMedia> media = {});
  // A heartbeat when nothing was published for kFanoutHeartbeatInterval.
  Status heartbeat_if_due();
  // Tells the readers no more plans will come (best effort).
  void close();
  uint64_t published() const { return sequence_; }

 private:
  PlanFanout(zmq::socket_t socket, std::string endpoint) : socket_(std::move(socket)), endpoint_(std::move(endpoint)) {}
  Status send_control(FanoutKind kind);

  zmq::socket_t socket_;
  std::string endpoint_;
  uint64_t sequence_ = 0;
  uint32_t subscribed_ = 0;
  std::chrono::steady_clock::time_point last_sent_ = std::chrono::steady_clock::now();
};

class PlanSubscriber {
 public:
  static Result<PlanSubscriber> connect(zmq::context_t& context, const ControlPlaneSecurity& security,
                                        const std::string& endpoint);

  // The next plan's bytes and shipped pixels. kUnavailable: "... timed out" when none came in `timeout`
  // (heartbeats are consumed silently), "... closed" after the writer's close, "... silent"
  // when nothing at all came for kFanoutMasterTimeout; kCorrupt on a sequence gap or a bad
  // frame.
  Result<FanoutPlan> next(std::chrono::milliseconds timeout);
  uint64_t received() const { return expected_; }

 private:
  explicit PlanSubscriber(zmq::socket_t socket) : socket_(std::move(socket)) {}

  zmq::socket_t socket_;
  uint64_t expected_ = 0;
  std::chrono::steady_clock::time_point last_heard_ = std::chrono::steady_clock::now();
};

}  // namespace k2::protocol
