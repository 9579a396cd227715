// Placing token-id arrays for a message: inline when small, in a shared-memory arena when
// large (the receiver reads them through the handle), as DESIGN.md §1 asks. Stateless
// functions; thread-safety is the Arena's (allocation is process-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "enginecore/protocol/messages.h"
#include "shm/arena.h"
#include "shm/status.h"

namespace k2::protocol {

// Above this many ids a prompt goes through an arena by default (vLLM inlines below 256 B).
inline constexpr size_t kInlineTokenLimit = 64;

// Inline if ids.size() <= inline_limit or arena is null; otherwise stored in the arena (the
// receiver, or whoever the protocol names, frees the handle once it has read it).
Result<TokenIds> place_tokens(std::span<const int32_t> ids, Arena* arena, size_t inline_limit = kInlineTokenLimit);

// The ids of a decoded TokenIds: copies inline ids, or reads the arena block (a stale handle
// is an error). `arena` may be null when the ids are known to be inline.
Result<std::vector<int32_t>> read_tokens(const TokenIds& tokens, const Arena* arena);

// The vocabulary of EngineConfigMsg::vocabulary: the bytes of each token id as a msgpack
// array of bin. Stored in / read from `arena`; reading checks the shape, never trusts it.
Result<ShmHandle> store_vocabulary(const std::vector<std::string>& token_bytes, Arena& arena);
// The same bytes for a receiver on another node (EngineConfigMsg::vocabulary_inline).
std::string encode_vocabulary(const std::vector<std::string>& token_bytes);
Result<std::vector<std::string>> read_vocabulary(const ShmHandle& handle, const Arena& arena);
// The decoding step of read_vocabulary, on bytes already copied out (fuzzed on its own).
Result<std::vector<std::string>> decode_vocabulary(std::string_view blob);

}  // namespace k2::protocol
