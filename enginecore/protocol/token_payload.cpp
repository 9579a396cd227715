#include "enginecore/protocol/token_payload.h"

#include <msgpack.hpp>

#include <cstring>

namespace k2::protocol {

Result<TokenIds> place_tokens(std::span<const int32_t> ids, Arena* arena, size_t inline_limit) {
  if (ids.size() > UINT32_MAX) return invalid_argument("token array too long");
  if (arena == nullptr || ids.size() <= inline_limit) return inline_tokens(std::vector<int32_t>(ids.begin(), ids.end()));
  K2_ASSIGN_OR_RETURN(ShmHandle handle, arena->store(std::as_bytes(ids)));
  TokenIds t;
  t.location = DataLocation::kShm;
  t.handle = handle;
  t.count = static_cast<uint32_t>(ids.size());
  return t;
}

Result<std::vector<int32_t>> read_tokens(const TokenIds& tokens, const Arena* arena) {
  switch (tokens.location) {
    case DataLocation::kInline:
      return tokens.ids;
    case DataLocation::kShm: {
      if (arena == nullptr) return invalid_argument("token ids in shm but no arena to read them from");
      if (tokens.handle.bytes != uint64_t{tokens.count} * sizeof(int32_t))
        return invalid_argument("token handle size disagrees with its count");
      std::vector<int32_t> ids(tokens.count);
      K2_RETURN_IF_ERROR(arena->copy_out(tokens.handle, std::as_writable_bytes(std::span<int32_t>(ids))));
      return ids;
    }
    case DataLocation::kFrame:
      break;
  }
  return invalid_argument("token ids still refer to a wire frame");
}

std::string encode_vocabulary(const std::vector<std::string>& token_bytes) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(static_cast<uint32_t>(token_bytes.size()));
  for (const std::string& t : token_bytes) {
    pk.pack_bin(static_cast<uint32_t>(t.size()));
    pk.pack_bin_body(t.data(), static_cast<uint32_t>(t.size()));
  }
  return std::string(buf.data(), buf.size());
}

Result<ShmHandle> store_vocabulary(const std::vector<std::string>& token_bytes, Arena& arena) {
  const std::string blob = encode_vocabulary(token_bytes);
  return arena.store(std::as_bytes(std::span<const char>(blob.data(), blob.size())));
}

Result<std::vector<std::string>> read_vocabulary(const ShmHandle& handle, const Arena& arena) {
  std::string blob(handle.bytes, '\0');
  K2_RETURN_IF_ERROR(arena.copy_out(handle, std::as_writable_bytes(std::span<char>(blob.data(), blob.size()))));
  return decode_vocabulary(blob);
}

Result<std::vector<std::string>> decode_vocabulary(std::string_view blob) {
  std::vector<std::string> out;
  try {
    // Every element takes at least one byte, so no count may exceed the blob: without these
    // limits msgpack allocates what a 5-byte header claims (found by fuzz_vocabulary).
    const size_t n = blob.size();
    const msgpack::unpack_limit limit(n, n, n, n, n, 2);
    size_t offset = 0;
    msgpack::object_handle oh = msgpack::unpack(blob.data(), blob.size(), offset, nullptr, nullptr, limit);
    const msgpack::object& o = oh.get();
    if (o.type != msgpack::type::ARRAY) return invalid_argument("vocabulary is not an array");
    out.reserve(o.via.array.size);
    for (uint32_t i = 0; i < o.via.array.size; ++i) {
      const msgpack::object& t = o.via.array.ptr[i];
      if (t.type != msgpack::type::BIN) return invalid_argument("vocabulary entry " + std::to_string(i) + " is not bytes");
      out.emplace_back(t.via.bin.ptr, t.via.bin.size);
    }
  } catch (const std::exception& e) {
    return invalid_argument(std::string("vocabulary does not decode: ") + e.what());
  }
  return out;
}

}  // namespace k2::protocol
