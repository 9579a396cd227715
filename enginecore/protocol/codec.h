// The wire codec: a Message <-> a set of ZMQ frames.
//
//   frame 0      [kProtocolVersion, MsgType]            2 bytes
//   frame 1      msgpack body: the struct as a positional array
//   frame 2...   optional raw payloads (TokenIds with location kFrame, little-endian int32)
//
// decode() accepts bytes from other processes and hosts, so it treats them as hostile: every
// malformed, truncated, oversized, wrong-version or unknown input is an error Status, never an
// exception or a crash. msgpack allocation is bounded by unpack limits derived from the frame
// size, nesting is bounded, and every decoded message passes validate(). Stateless functions;
// thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "enginecore/protocol/messages.h"
#include "shm/status.h"

namespace k2::protocol {

using Frames = std::vector<std::string>;

struct EncodeOptions {
  // Inline TokenIds larger than this many bytes go out of band as extra frames (for peers on
  // other nodes, which cannot map our arenas). 0 = never.
  size_t out_of_band_bytes = 0;
};

struct DecodeLimits {
  size_t max_frames = 64;
  size_t max_total_bytes = size_t{1} << 31;
  size_t max_depth = 16;
};

Frames encode(const Message& message, const EncodeOptions& options = {});

// Error codes: kUnimplemented for a protocol version this build does not speak, kCorrupt for
// anything malformed, kInvalidArgument for well-formed messages that fail validate().
Result<Message> decode(std::span<const std::string_view> frames, const DecodeLimits& limits = {});
Result<Message> decode(const Frames& frames, const DecodeLimits& limits = {});

// Structural checks that keep a decoded message safe for the engine and workers (sizes agree,
// enums in range, numbers finite, indices in bounds). Not OpenAI's range rules.
Status validate(const Message& message);

}  // namespace k2::protocol
