// libFuzzer: the vocabulary blob the enginecore reads from the frontend's arena (a msgpack
// array of bin). Any bytes: an error value or a vocabulary, never a crash or a throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "enginecore/protocol/token_payload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto vocab = k2::protocol::decode_vocabulary(std::string_view(reinterpret_cast<const char*>(data), size));
  if (vocab.ok()) {
    size_t bytes = 0;
    for (const auto& t : *vocab) bytes += t.size();
    if (bytes > size) __builtin_trap();  // every token's bytes came from the input
  }
  return 0;
}
