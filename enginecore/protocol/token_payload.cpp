#include "enginecore/protocol/token_payload.h"

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

}  // namespace k2::protocol
