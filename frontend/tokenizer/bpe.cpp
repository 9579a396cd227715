#include "frontend/tokenizer/bpe.h"

#include <algorithm>
#include <climits>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace k2::tok {
namespace {

constexpr int32_t kNoRank = INT32_MAX;
// Pieces up to this many bytes use tiktoken's quadratic scan (fastest for the short pieces
// that dominate real text); longer ones a heap, so long pieces (a run of Han or Thai
// letters is one piece) and pathological inputs stay O(n log n).
constexpr size_t kQuadraticMax = 32;

inline uint64_t load_prefix(const char* data, size_t len) {
  uint64_t v = 0;
  std::memcpy(&v, data, len < 8 ? len : 8);
  return v;
}

inline uint64_t hash_key(const char* data, size_t len, uint64_t prefix) {
  if (len > 8) return XXH3_64bits(data, len);
  uint64_t x = (prefix ^ (static_cast<uint64_t>(len) << 59)) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 32);
}

inline int32_t rank_of(const TokenTable& t, const char* p, size_t len) {
  const int32_t r = t.find(p, len);
  return r < 0 ? kNoRank : r;
}

void encode_quadratic(const TokenTable& t, std::string_view piece, std::vector<int32_t>& out) {
  const size_t n = piece.size();
  const char* p = piece.data();
  uint32_t pos[kQuadraticMax + 1];
  int32_t rank[kQuadraticMax + 1];
  size_t m = n + 1;  // parts (start offset, rank of merging it with the next part)
  for (size_t i = 0; i + 1 < n; ++i) {
    pos[i] = static_cast<uint32_t>(i);
    rank[i] = rank_of(t, p + i, 2);
  }
  pos[n - 1] = static_cast<uint32_t>(n - 1);
  rank[n - 1] = kNoRank;
  pos[n] = static_cast<uint32_t>(n);
  rank[n] = kNoRank;
  auto pair_rank = [&](size_t i) {
    return i + 3 < m ? rank_of(t, p + pos[i], pos[i + 3] - pos[i]) : kNoRank;
  };
  for (;;) {
    int32_t best = kNoRank;
    size_t at = 0;
    for (size_t i = 0; i + 1 < m; ++i) {
      if (rank[i] < best) {
        best = rank[i];
        at = i;
      }
    }
    if (best == kNoRank) break;
    if (at > 0) rank[at - 1] = pair_rank(at - 1);
    rank[at] = pair_rank(at);
    std::memmove(pos + at + 1, pos + at + 2, (m - at - 2) * sizeof(pos[0]));
    std::memmove(rank + at + 1, rank + at + 2, (m - at - 2) * sizeof(rank[0]));
    --m;
  }
  for (size_t i = 0; i + 1 < m; ++i) out.push_back(t.find(p + pos[i], pos[i + 1] - pos[i]));
}

// Same merge order as encode_quadratic: the heap is keyed by (rank, start offset), and part
// order equals offset order, so the popped pair is always tiktoken's leftmost minimum.
void encode_heap(const TokenTable& t, std::string_view piece, std::vector<int32_t>& out, BpeScratch& s) {
  using Entry = BpeScratch::Entry;
  const auto n = static_cast<uint32_t>(piece.size());
  const char* p = piece.data();
  s.end.resize(n);
  s.next.resize(n);
  s.prev.resize(n);
  s.version.assign(n, 0);
  s.heap.clear();
  for (uint32_t i = 0; i < n; ++i) {
    s.end[i] = i + 1;
    s.next[i] = i + 1;  // n: none
    s.prev[i] = i == 0 ? n : i - 1;
  }
  auto later = [](const Entry& a, const Entry& b) { return a.rank != b.rank ? a.rank > b.rank : a.start > b.start; };
  auto push_pair = [&](uint32_t i) {
    if (s.next[i] >= n) return;
    const int32_t r = rank_of(t, p + i, s.end[s.next[i]] - i);
    if (r == kNoRank) return;
    s.heap.push_back({r, i, s.version[i]});
    std::push_heap(s.heap.begin(), s.heap.end(), later);
  };
  for (uint32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), later);
    const Entry e = s.heap.back();
    s.heap.pop_back();
    const uint32_t i = e.start;
    // Stale: i was merged into its left neighbour (version bumped) or its pair changed.
    if (s.version[i] != e.version) continue;
    const uint32_t j = s.next[i];
    s.end[i] = s.end[j];
    s.next[i] = s.next[j];
    if (s.next[i] < n) s.prev[s.next[i]] = i;
    ++s.version[j];  // j is gone: its entries are stale
    ++s.version[i];
    push_pair(i);
    if (s.prev[i] < n) {
      ++s.version[s.prev[i]];
      push_pair(s.prev[i]);
    }
  }
  for (uint32_t i = 0; i < n; i = s.next[i]) out.push_back(t.find(p + i, s.end[i] - i));
}

}  // namespace

void TokenTable::add_token(std::string_view b) {
  arena_.append(b);
  offsets_.push_back(static_cast<uint32_t>(arena_.size()));
}

void TokenTable::build_index(int32_t num_base) {
  num_base_ = num_base;
  size_t cap = 16;
  while (cap < static_cast<size_t>(num_base) + static_cast<size_t>(num_base) / 2) cap <<= 1;
  slots_.assign(cap, Slot{0, 0, -1});
  mask_ = cap - 1;
  for (int32_t id = 0; id < num_base; ++id) {
    const std::string_view b = bytes(id);
    // The first id with given bytes wins everywhere, so the loader can report repeats.
    int32_t* direct = b.size() == 1   ? &short_ranks_[static_cast<uint8_t>(b[0])]
                      : b.size() == 2 ? &short_ranks_[256 + (static_cast<uint8_t>(b[0]) << 8 | static_cast<uint8_t>(b[1]))]
                                      : nullptr;
    if (direct != nullptr && *direct < 0) *direct = id;
    const uint64_t prefix = load_prefix(b.data(), b.size());
    size_t i = hash_key(b.data(), b.size(), prefix) & mask_;
    while (slots_[i].rank >= 0) i = (i + 1) & mask_;
    slots_[i] = Slot{prefix, static_cast<uint32_t>(b.size()), id};
  }
}

int32_t TokenTable::find_hashed(const char* data, size_t len) const {
  if (slots_.empty()) return -1;
  const uint64_t prefix = load_prefix(data, len);
  for (size_t i = hash_key(data, len, prefix) & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.rank < 0) return -1;
    if (s.prefix == prefix && s.length == len &&
        (len <= 8 || std::memcmp(arena_.data() + offsets_[s.rank] + 8, data + 8, len - 8) == 0)) {
      return s.rank;
    }
  }
}

void byte_pair_encode(const TokenTable& table, std::string_view piece, std::vector<int32_t>& out,
                      BpeScratch& scratch) {
  if (piece.size() == 1) {
    out.push_back(table.find(piece));
  } else if (piece.size() <= kQuadraticMax) {
    encode_quadratic(table, piece, out);
  } else {
    encode_heap(table, piece, out, scratch);
  }
}

}  // namespace k2::tok
