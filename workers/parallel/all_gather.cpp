#include "workers/parallel/all_gather.h"

#include <algorithm>

namespace k2 {

Status all_gather_segments(Communicator& comm, std::span<float> data, std::span<const size_t> offsets,
                           std::span<const int> owner) {
  if (offsets.size() != owner.size() + 1) return invalid_argument("all_gather_segments: offsets do not match owners");
  for (size_t i = 0; i < owner.size(); ++i) {
    if (offsets[i] > offsets[i + 1] || offsets[i + 1] > data.size())
      return invalid_argument("all_gather_segments: segment " + std::to_string(i) + " is out of order or range");
    if (owner[i] < 0 || owner[i] >= comm.size())
      return invalid_argument("all_gather_segments: segment " + std::to_string(i) + " has no rank as its owner");
  }
  if (comm.size() == 1) return Status::ok_status();
  for (size_t i = 0; i < owner.size(); ++i) {
    if (owner[i] != comm.rank()) std::fill(data.begin() + offsets[i], data.begin() + offsets[i + 1], 0.0f);
  }
  // Elements outside every segment are zeroed as well, so they agree on every rank.
  if (!offsets.empty()) {
    std::fill(data.begin(), data.begin() + offsets.front(), 0.0f);
    std::fill(data.begin() + offsets.back(), data.end(), 0.0f);
  }
  return comm.all_reduce_sum(data);
}

}  // namespace k2
