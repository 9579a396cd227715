#include "enginecore/protocol/codec.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <exception>

namespace k2::protocol {
namespace {

static_assert(std::endian::native == std::endian::little, "raw token frames are little-endian int32");

// msgpack packer sink appending to a std::string.
struct StringSink {
  std::string* out;
  void write(const char* data, size_t n) { out->append(data, n); }
};

template <class M, class F>
void for_each_token_ids(M& message, F&& f) {
  if (auto* add = std::get_if<AddRequest>(&message)) {
    f(add->prompt);
  } else if (auto* plan = std::get_if<StepPlan>(&message)) {
    for (auto& r : plan->requests) f(r.token_ids);
  }
}

std::string pack_body(const Message& message) {
  std::string body;
  StringSink sink{&body};
  msgpack::packer<StringSink> pk(sink);
  std::visit([&](const auto& m) { pk.pack(m); }, message);
  return body;
}

template <size_t I = 0>
Status convert_as(MsgType type, const msgpack::object& obj, Message* out) {
  if constexpr (I < std::variant_size_v<Message>) {
    if (static_cast<size_t>(type) == I + 1) {
      std::variant_alternative_t<I, Message> value;
      obj.convert(value);
      *out = std::move(value);
      return Status::ok_status();
    }
    return convert_as<I + 1>(type, obj, out);
  } else {
    return corrupt("unknown message type " + std::to_string(static_cast<int>(type)));
  }
}

// Fills kFrame TokenIds from the extra frames; every extra frame must be used exactly once.
Status attach_frames(Message& message, std::span<const std::string_view> extra) {
  std::vector<bool> used(extra.size(), false);
  Status status;
  for_each_token_ids(message, [&](TokenIds& t) {
    if (!status.ok() || t.location != DataLocation::kFrame) return;
    if (t.frame_index >= extra.size() || used[t.frame_index]) {
      status = corrupt("token ids refer to a missing or reused frame " + std::to_string(t.frame_index));
      return;
    }
    std::string_view f = extra[t.frame_index];
    if (!t.ids.empty() || f.size() != uint64_t{t.count} * sizeof(int32_t)) {
      status = corrupt("token frame of " + std::to_string(f.size()) + " bytes for " + std::to_string(t.count) + " ids");
      return;
    }
    used[t.frame_index] = true;
    t.ids.resize(t.count);
    if (t.count > 0) std::memcpy(t.ids.data(), f.data(), f.size());
    t.location = DataLocation::kInline;
    t.frame_index = 0;
  });
  K2_RETURN_IF_ERROR(status);
  if (std::find(used.begin(), used.end(), false) != used.end()) return corrupt("unreferenced extra frame");
  return Status::ok_status();
}

}  // namespace

Frames encode(const Message& message, const EncodeOptions& options) {
  Frames frames;
  frames.reserve(2);
  frames.push_back(std::string{static_cast<char>(kProtocolVersion), static_cast<char>(message_type(message))});
  bool out_of_band = false;
  if (options.out_of_band_bytes > 0) {
    for_each_token_ids(message, [&](const TokenIds& t) {
      out_of_band |= t.location == DataLocation::kInline && t.ids.size() * sizeof(int32_t) > options.out_of_band_bytes;
    });
  }
  if (!out_of_band) {
    frames.push_back(pack_body(message));
    return frames;
  }
  Message copy = message;
  Frames extra;
  for_each_token_ids(copy, [&](TokenIds& t) {
    if (t.location != DataLocation::kInline || t.ids.size() * sizeof(int32_t) <= options.out_of_band_bytes) return;
    extra.emplace_back(reinterpret_cast<const char*>(t.ids.data()), t.ids.size() * sizeof(int32_t));
    t.location = DataLocation::kFrame;
    t.count = static_cast<uint32_t>(t.ids.size());
    t.frame_index = static_cast<uint32_t>(extra.size() - 1);
    t.ids.clear();
  });
  frames.push_back(pack_body(copy));
  for (auto& f : extra) frames.push_back(std::move(f));
  return frames;
}

Result<Message> decode(std::span<const std::string_view> frames, const DecodeLimits& limits) {
  if (frames.size() < 2) return corrupt("message of " + std::to_string(frames.size()) + " frames (need >= 2)");
  if (frames.size() > limits.max_frames) return corrupt("message of " + std::to_string(frames.size()) + " frames");
  size_t total = 0;
  for (auto f : frames) total += f.size();
  if (total > limits.max_total_bytes) return corrupt("message of " + std::to_string(total) + " bytes");
  std::string_view head = frames[0];
  if (head.size() != 2) return corrupt("header frame of " + std::to_string(head.size()) + " bytes");
  uint8_t version = static_cast<uint8_t>(head[0]);
  if (version != kProtocolVersion)
    return unimplemented("protocol version " + std::to_string(version) + ", this build speaks " +
                         std::to_string(kProtocolVersion));
  auto type = static_cast<MsgType>(static_cast<uint8_t>(head[1]));
  std::string_view body = frames[1];
  Message message;
  try {
    // Every msgpack element takes at least one byte, so the body size bounds each count;
    // that keeps a forged "array of 4 billion" header from allocating before it fails.
    msgpack::unpack_limit limit(body.size(), body.size(), body.size(), body.size(), body.size(), limits.max_depth);
    size_t offset = 0;
    msgpack::object_handle handle = msgpack::unpack(body.data(), body.size(), offset, nullptr, nullptr, limit);
    if (offset != body.size()) return corrupt("trailing bytes after the msgpack body");
    K2_RETURN_IF_ERROR(convert_as(type, handle.get(), &message));
  } catch (const std::exception& e) {
    return corrupt(std::string("malformed msgpack body: ") + e.what());
  } catch (...) {
    return corrupt("malformed msgpack body");
  }
  K2_RETURN_IF_ERROR(attach_frames(message, frames.subspan(2)));
  K2_RETURN_IF_ERROR(validate(message));
  return message;
}

Result<Message> decode(const Frames& frames, const DecodeLimits& limits) {
  std::vector<std::string_view> views(frames.begin(), frames.end());
  return decode(std::span<const std::string_view>(views), limits);
}

}  // namespace k2::protocol
