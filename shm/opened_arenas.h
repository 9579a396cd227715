// Arenas another process created, each opened once by its segment name and kept mapped: for
// readers of many handles into the same few arenas (a worker reading the frontends' media
// arenas, an engine shipping their pixels to other nodes). Not thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <unordered_map>

#include "shm/arena.h"
#include "shm/status.h"

namespace k2 {

class OpenedArenas {
 public:
  // The bytes `handle` names in the arena `segment_name` (opened on first use).
  Result<std::span<std::byte>> view(const std::string& segment_name, const ShmHandle& handle);

 private:
  std::unordered_map<std::string, Arena> arenas_;
};

}  // namespace k2
