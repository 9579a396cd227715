// Server-sent events framing as OpenAI streams it: each event is one `data: <payload>`
// line followed by a blank line, and the stream ends with `data: [DONE]`. Payloads are
// single-line JSON (dump() never emits raw newlines), so no multi-line splitting is
// needed. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace k2::http {

inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

inline void append_sse_event(std::string& out, std::string_view payload) {
  out += "data: ";
  out += payload;
  out += "\n\n";
}

inline std::string sse_event(std::string_view payload) {
  std::string out;
  append_sse_event(out, payload);
  return out;
}

}  // namespace k2::http
