// libFuzzer: a server's streamed body bytes, fed in two pieces to the SSE splitter, and each
// payload to the chunk parser. Neither may crash, throw or leak.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bench/serve/sse_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  k2::bench::SseSplitter splitter;
  for (std::string_view part : {bytes.substr(0, cut), bytes.substr(cut)})
    for (const auto& payload : splitter.feed(part)) (void)k2::bench::parse_stream_chunk(payload);
  return 0;
}
