// The client side of an OpenAI streaming response: splits the body bytes into SSE `data:`
// payloads and reads what the benchmark needs from each completion chunk. Input is the
// server's bytes, so nothing here throws or crashes on malformed data (fuzzed by
// bench_sse_stream_fuzz). SseSplitter owns its pending partial line; not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shm/status.h"

namespace k2::bench {

class SseSplitter {
 public:
  // Appends body bytes; returns the `data:` payloads completed by them, in order.
  std::vector<std::string> feed(std::string_view bytes);

 private:
  std::string pending_;
};

struct StreamChunk {
  bool done = false;          // the `[DONE]` sentinel
  bool has_choice = false;    // choices[0] present: one content chunk (counted for TTFT/ITL)
  std::string text;           // choices[0].text, or choices[0].delta.content for chat
  std::optional<int64_t> completion_tokens;  // usage.completion_tokens when sent
  std::optional<int64_t> prompt_tokens;
};

// Parses one payload; an error for JSON that is not a chunk or an error object the server
// sent (`{"error": {...}}`), whose message it carries.
Result<StreamChunk> parse_stream_chunk(std::string_view payload);

}  // namespace k2::bench
