// Byte-pair encoding over a tiktoken rank table.
//
// TokenTable owns every token's bytes (base tokens and specials, indexed by id) and an
// open-addressing hash index from base-token bytes to rank. It is immutable after build()
// and safe for concurrent const use. byte_pair_encode() reproduces tiktoken's
// _byte_pair_merge exactly: repeatedly merge the adjacent pair whose concatenation has the
// lowest rank, the leftmost such pair on ties.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace k2::tok {

class TokenTable {
 public:
  // Appends the bytes of the next id. Base tokens (their rank is their id) must be added
  // first, in id order, then the specials; call build() after the last base token.
  void add_token(std::string_view bytes);
  // Builds the bytes -> rank index over ids [0, num_base).
  void build_index(int32_t num_base);

  int32_t size() const { return static_cast<int32_t>(offsets_.size()) - 1; }
  int32_t num_base() const { return num_base_; }
  std::string_view bytes(int32_t id) const {
    return {arena_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]};
  }
  // Rank of a base token with exactly these bytes, or -1.
  int32_t find(const char* data, size_t len) const {
    // One- and two-byte keys (every initial BPE pair) come from a direct table.
    if (len == 2) return short_ranks_[256 + (static_cast<uint8_t>(data[0]) << 8 | static_cast<uint8_t>(data[1]))];
    if (len == 1) return short_ranks_[static_cast<uint8_t>(data[0])];
    return find_hashed(data, len);
  }
  int32_t find(std::string_view b) const { return find(b.data(), b.size()); }

 private:
  // The first 8 bytes of the key live in the slot, so the common short lookup touches one
  // cache line and no token bytes.
  struct Slot {
    uint64_t prefix;
    uint32_t length;
    int32_t rank;  // -1: empty
  };
  int32_t find_hashed(const char* data, size_t len) const;

  std::string arena_;
  std::vector<uint32_t> offsets_{0};
  std::vector<int32_t> short_ranks_ = std::vector<int32_t>(256 + 65536, -1);
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
  int32_t num_base_ = 0;
};

// Buffers byte_pair_encode reuses between pieces (one per thread / encode call).
struct BpeScratch {
  struct Entry {
    int32_t rank;
    uint32_t start;
    uint32_t version;
  };
  std::vector<uint32_t> end, next, prev, version;
  std::vector<Entry> heap;
};

// Appends the ranks of `piece` (not empty) to `out`. Every single byte of `piece` must be a
// base token (the loader guarantees all 256 are).
void byte_pair_encode(const TokenTable& table, std::string_view piece, std::vector<int32_t>& out,
                      BpeScratch& scratch);

}  // namespace k2::tok
