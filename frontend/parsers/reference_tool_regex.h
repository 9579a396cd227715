// Test-only: vLLM's kimi_k2 tool-call regex run by PCRE2, as an independent reference for
// the hand-written ToolCallMatcher (unit tests and the fuzz target compare the two).
//
// \s is spelled out as the White_Space set and \d as \p{Nd}, which is what Python's
// `regex` module means by them on str patterns. Header-only; the pattern is compiled once
// (thread-safe static) and each call has its own match data.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/parsers/kimi_k2_tool_parser.h"

namespace k2::parsers::testing {

inline const pcre2_code* reference_pattern() {
  static constexpr char kWs[] =
      "[\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
      "\\x{202F}\\x{205F}\\x{3000}]";
  static const std::string pattern = std::string("<\\|tool_call_begin\\|>") + kWs + "*([^<]+:\\p{Nd}+)" +
                                     kWs + "*<\\|tool_call_argument_begin\\|>" + kWs +
                                     "*((?:(?!<\\|tool_call_begin\\|>).)*?)" + kWs + "*<\\|tool_call_end\\|>";
  // Compiled once and never freed: a pcre2_code is read-only while matching.
  static const pcre2_code* code = [] {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    return pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                         PCRE2_UTF | PCRE2_UCP | PCRE2_DOTALL, &error, &error_offset, nullptr);
  }();
  return code;
}

// All matches of the regex in `text` (findall), or nullopt when PCRE2 gave up (match
// limit) or the text is not valid UTF-8.
inline std::optional<std::vector<ToolCall>> reference_tool_calls(std::string_view text) {
  const pcre2_code* code = reference_pattern();
  if (code == nullptr) return std::nullopt;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(context, 10'000'000);
  std::optional<std::vector<ToolCall>> calls{std::vector<ToolCall>{}};
  size_t offset = 0;
  while (offset <= text.size()) {
    int rc =
        pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), offset, 0, data, context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      calls.reset();
      break;
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
    std::string id(text.substr(ov[2], ov[3] - ov[2]));
    calls->push_back({id, tool_name_from_id(id), std::string(text.substr(ov[4], ov[5] - ov[4]))});
    offset = ov[1];
  }
  pcre2_match_context_free(context);
  pcre2_match_data_free(data);
  return calls;
}

}  // namespace k2::parsers::testing
