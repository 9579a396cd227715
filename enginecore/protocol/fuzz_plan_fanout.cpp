// libFuzzer: the frames a remote worker receives from the engine's plan fan-out (over TCP,
// from another node). Any bytes: a frame or an error value, never a crash or a throw.
#include <cstddef>
#include <cstdint>
#include <span>

#include "enginecore/protocol/plan_fanout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  auto frame = k2::protocol::decode_fanout(bytes);
  if (frame.ok() && frame->payload.size() + k2::protocol::kFanoutHeaderBytes != size) __builtin_trap();
  return 0;
}
