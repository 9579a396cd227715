#include "workers/vision/encoder_cache.h"

#include <spdlog/spdlog.h>

#include <cstring>

namespace k2 {

namespace {
constexpr uint64_t kEncoderArenaId = 0x656e63;  // "enc": distinct from the frontend's arenas
}

Result<EncoderCache> EncoderCache::create(const std::string& run_id, const std::string& name, uint64_t budget_bytes) {
  EncoderCache cache;
  cache.budget_ = budget_bytes;
  if (budget_bytes == 0) return cache;
  ArenaOptions o;
  o.run_id = run_id;
  o.name = name;
  o.arena_id = kEncoderArenaId;
  // Blocks are powers of two: room for the budget's worth of payload in any size class mix
  // would need twice the budget; the LRU makes room when a class runs out instead.
  o.bytes = static_cast<size_t>(budget_bytes) + (size_t{1} << 20);
  K2_ASSIGN_OR_RETURN(Arena arena, Arena::create(o));
  cache.arena_.emplace(std::move(arena));
  return cache;
}

std::optional<std::span<const float>> EncoderCache::lookup(const MediaHash& key) {
  ++queries_;
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  auto view = arena_->view(it->second.handle);
  if (!view.ok()) {  // cannot happen while we own every block; drop the entry rather than trust it
    spdlog::warn("encoder cache: dropping an unreadable entry: {}", view.status().to_string());
    bytes_ -= it->second.handle.bytes;
    lru_.erase(it->second.lru);
    entries_.erase(it);
    return std::nullopt;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return std::span<const float>(reinterpret_cast<const float*>(view->data()), view->size() / sizeof(float));
}

bool EncoderCache::evict_one() {
  if (lru_.empty()) return false;
  const MediaHash victim = lru_.back();
  auto it = entries_.find(victim);
  bytes_ -= it->second.handle.bytes;
  if (Status s = arena_->free(it->second.handle); !s.ok()) spdlog::warn("encoder cache: {}", s.to_string());
  entries_.erase(it);
  lru_.pop_back();
  return true;
}

void EncoderCache::insert(const MediaHash& key, std::span<const float> rows) {
  const uint64_t bytes = rows.size_bytes();
  if (!arena_ || bytes == 0 || bytes > budget_ || entries_.contains(key)) return;
  while (bytes_ + bytes > budget_ && evict_one()) {
  }
  while (true) {
    Result<ShmHandle> h = arena_->store(std::as_bytes(rows));
    if (h.ok()) {
      lru_.push_front(key);
      entries_.emplace(key, Entry{*h, lru_.begin()});
      bytes_ += bytes;
      return;
    }
    if (!evict_one()) {
      spdlog::debug("encoder cache: no room for {} bytes: {}", bytes, h.status().to_string());
      return;
    }
  }
}

}  // namespace k2
