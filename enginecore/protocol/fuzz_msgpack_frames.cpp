// libFuzzer target: the wire decoder must turn any bytes into a message or an error value,
// and whatever it accepts must survive encode -> decode unchanged (byte-identical re-encoding).
#include <cstdint>
#include <cstdlib>

#include "enginecore/protocol/codec.h"
#include "enginecore/protocol/fuzz_frames.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace k2::protocol;
  auto frames = split_fuzz_input(data, size);
  auto decoded = decode(std::span<const std::string_view>(frames));
  if (!decoded.ok()) return 0;
  Frames once = encode(*decoded);
  auto again = decode(once);
  if (!again.ok()) std::abort();
  if (encode(*again) != once) std::abort();
  return 0;
}
