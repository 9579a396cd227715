// The marker strings Kimi-K2 models write around reasoning and tool calls.
//
// The parsers work on decoded text (special tokens kept, as vLLM's do), so a marker is
// recognised by its spelling, whether it arrived as one special token or as plain text.
// Constants only; thread-safe.
#pragma once

#include <string_view>

namespace k2::parsers {

inline constexpr std::string_view kThinkBegin = "<think>";
inline constexpr std::string_view kThinkEnd = "</think>";
inline constexpr std::string_view kToolSectionBegin = "<|tool_calls_section_begin|>";
inline constexpr std::string_view kToolSectionEnd = "<|tool_calls_section_end|>";
inline constexpr std::string_view kToolCallBegin = "<|tool_call_begin|>";
inline constexpr std::string_view kToolArgumentBegin = "<|tool_call_argument_begin|>";
inline constexpr std::string_view kToolCallEnd = "<|tool_call_end|>";

}  // namespace k2::parsers
