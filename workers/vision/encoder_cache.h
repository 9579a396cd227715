// EncoderCache: the worker's cache of encoder outputs (projector rows, float32
// [tokens, width]), in a shared-memory Arena the worker owns, keyed by the media item's
// content hash (XXH3-128 of its pixel_values and grid), so that the same image in another
// request is not encoded again. Least recently used entries are evicted to stay under the
// byte budget (--mm-processor-cache-gb) or when the arena has no block of the needed size.
//
// Owns the arena (its segment is unlinked with the cache). Not thread-safe: the worker's loop
// thread. A span from lookup() stays valid until the next insert().
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include "shm/arena.h"
#include "shm/status.h"

namespace k2 {

struct MediaHash {
  uint64_t low = 0, high = 0;
  bool operator==(const MediaHash&) const = default;
};

class EncoderCache {
 public:
  // budget_bytes 0: no cache (every lookup misses, inserts are dropped; queries are counted).
  static Result<EncoderCache> create(const std::string& run_id, const std::string& name, uint64_t budget_bytes);

  // The cached rows of `key` (counted as a query, and as a hit when found).
  std::optional<std::span<const float>> lookup(const MediaHash& key);
  // Caches `rows` under `key`, evicting LRU entries as needed; an item larger than the whole
  // budget is not cached.
  void insert(const MediaHash& key, std::span<const float> rows);

  uint64_t queries() const { return queries_; }
  uint64_t hits() const { return hits_; }
  size_t size() const { return entries_.size(); }
  uint64_t bytes_cached() const { return bytes_; }
  // The arena's segment name ("" without a cache), for cleanup after a crash.
  std::string segment_name() const { return arena_ ? arena_->name() : std::string(); }

 private:
  struct KeyHash {
    size_t operator()(const MediaHash& h) const { return static_cast<size_t>(h.low ^ (h.high * 0x9E3779B97F4A7C15ull)); }
  };
  struct Entry {
    ShmHandle handle;
    std::list<MediaHash>::iterator lru;  // position in lru_ (front: most recent)
  };
  bool evict_one();

  std::optional<Arena> arena_;
  uint64_t budget_ = 0;
  uint64_t bytes_ = 0;  // payload bytes of the entries
  std::list<MediaHash> lru_;
  std::unordered_map<MediaHash, Entry, KeyHash> entries_;
  uint64_t queries_ = 0, hits_ = 0;
};

}  // namespace k2
