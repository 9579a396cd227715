// libFuzzer: the frames a remote worker receives from the engine's plan fan-out (over TCP,
// from another node), plans with shipped media pixels included. Any bytes: a frame or an error
// value, never a crash or a throw.
#include <cstddef>
#include <cstdint>
#include <span>

#include "enginecore/protocol/plan_fanout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  auto frame = k2::protocol::decode_fanout(bytes);
  if (!frame.ok()) return 0;
  // Every view lies inside the input, and the parts account for all of it.
  auto inside = [&](std::span<const std::byte> v) {
    return v.empty() || (v.data() >= bytes.data() && v.data() + v.size() <= bytes.data() + size);
  };
  size_t accounted = k2::protocol::kFanoutHeaderBytes + frame->payload.size();
  if (!inside(frame->payload)) __builtin_trap();
  for (const auto& m : frame->media) {
    if (!inside(m.bytes) || m.bytes.empty() || m.bytes.size() % sizeof(float) != 0) __builtin_trap();
    accounted += 24 + m.bytes.size();
  }
  if (frame->kind == k2::protocol::FanoutKind::kPlanWithMedia) {
    if (frame->media.empty()) __builtin_trap();
    accounted += 16;  // plan length, item count
  }
  if (accounted != size) __builtin_trap();
  return 0;
}
