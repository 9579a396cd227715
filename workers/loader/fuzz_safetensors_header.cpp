// libFuzzer target: any bytes given to the safetensors header parser must yield a header or
// an error, never a crash, and an accepted header must describe tensors inside the input.
#include <cstddef>
#include <cstdint>

#include "workers/loader/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = k2::parse_safetensors_header(data, size);
  if (!header.ok()) return 0;
  for (const auto& [name, entry] : header->tensors) {
    K2_CHECK(entry.begin <= entry.end && header->data_offset + entry.end <= size, "accepted tensor out of range");
    uint64_t numel = 1;
    for (int64_t d : entry.shape) numel *= static_cast<uint64_t>(d);
    K2_CHECK(numel * k2::dtype_size(entry.dtype) == entry.end - entry.begin, "accepted tensor with wrong size");
  }
  return 0;
}
