#include "shm/opened_arenas.h"

#include <utility>

namespace k2 {

Result<std::span<std::byte>> OpenedArenas::view(const std::string& segment_name, const ShmHandle& handle) {
  auto it = arenas_.find(segment_name);
  if (it == arenas_.end()) {
    K2_ASSIGN_OR_RETURN(Arena arena, Arena::open(segment_name));
    it = arenas_.emplace(segment_name, std::move(arena)).first;
  }
  return it->second.view(handle);
}

}  // namespace k2
