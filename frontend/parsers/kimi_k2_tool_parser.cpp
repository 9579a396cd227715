#include "frontend/parsers/kimi_k2_tool_parser.h"

#include <algorithm>

#include "frontend/parsers/kimi_k2_markers.h"
#include "frontend/parsers/text_scan.h"

namespace k2::parsers {

namespace {

// True when `rest` is cut short by the end of the text while still spelling `marker`.
bool may_become(std::string_view rest, std::string_view marker) {
  return rest.size() < marker.size() && marker.starts_with(rest);
}

}  // namespace

std::optional<std::string_view> match_tool_call_id(std::string_view between) {
  // The regex's `\s*([^<]+:\d+)\s*` with Python's backtracking order: the leading \s* is
  // greedy, [^<]+ takes the longest run that still leaves `:\d+\s*` to the end.
  if (between.find('<') != std::string_view::npos) return std::nullopt;
  size_t lead = skip_spaces(between, 0, between.size());
  size_t colon = between.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  size_t pos = colon + 1;
  while (pos < between.size()) {
    Utf8Char c = decode_utf8(between, pos);
    if (!is_regex_digit(c.cp)) break;
    pos += c.len;
  }
  if (pos == colon + 1) return std::nullopt;
  size_t digits_end = pos;
  if (skip_spaces(between, pos, between.size()) != between.size()) return std::nullopt;
  size_t start = lead;
  if (colon == lead) {
    // [^<]+ needs a character: the leading \s* gives its last space back.
    if (lead == 0) return std::nullopt;
    size_t last = 0;
    for (size_t p = 0; p < lead; p += decode_utf8(between, p).len) last = p;
    start = last;
  }
  return between.substr(start, digits_end - start);
}

std::string tool_name_from_id(std::string_view id) {
  std::string_view head = id.substr(0, id.find(':'));
  size_t dot = head.rfind('.');
  return std::string(dot == std::string_view::npos ? head : head.substr(dot + 1));
}

void ToolCallMatcher::advance(std::string_view text) {
  for (;;) {
    switch (phase_) {
      case Phase::kSeekCall: {
        size_t begin = text.find(kToolCallBegin, pos_);
        if (begin == std::string_view::npos) {
          size_t keep = std::min(text.size(), kToolCallBegin.size() - 1);
          pos_ = std::max(pos_, text.size() - keep);
          return;
        }
        call_begin_ = begin;
        cursor_ = begin + kToolCallBegin.size();
        phase_ = Phase::kSeekArguments;
        break;
      }
      case Phase::kSeekArguments: {
        // The id runs up to the first '<', which must open <|tool_call_argument_begin|>.
        size_t lt = text.find('<', cursor_);
        if (lt == std::string_view::npos) {
          cursor_ = text.size();
          return;
        }
        std::string_view rest = text.substr(lt);
        if (may_become(rest, kToolArgumentBegin)) {
          cursor_ = lt;
          return;
        }
        size_t id_begin = call_begin_ + kToolCallBegin.size();
        std::optional<std::string_view> id;
        if (rest.starts_with(kToolArgumentBegin)) {
          id = match_tool_call_id(text.substr(id_begin, lt - id_begin));
        }
        if (!id) {
          // No match at this <|tool_call_begin|>; the regex retries at the next one.
          pos_ = id_begin;
          phase_ = Phase::kSeekCall;
          break;
        }
        id_.assign(*id);
        args_begin_ = lt + kToolArgumentBegin.size();
        cursor_ = args_begin_;
        phase_ = Phase::kSeekEnd;
        break;
      }
      case Phase::kSeekEnd: {
        // The lazy ARGS stops at the first <|tool_call_end|>; a <|tool_call_begin|> before
        // it voids this call (the negative lookahead), and the scan resumes there.
        size_t lt = text.find('<', cursor_);
        if (lt == std::string_view::npos) {
          cursor_ = text.size();
          return;
        }
        std::string_view rest = text.substr(lt);
        if (rest.starts_with(kToolCallEnd)) {
          size_t args_start = skip_spaces(text, args_begin_, lt);
          size_t args_end = trailing_spaces_start(text, args_start, lt);
          calls_.push_back(
              {id_, tool_name_from_id(id_), std::string(text.substr(args_start, args_end - args_start))});
          pos_ = lt + kToolCallEnd.size();
          phase_ = Phase::kSeekCall;
          break;
        }
        if (rest.starts_with(kToolCallBegin)) {
          pos_ = lt;
          phase_ = Phase::kSeekCall;
          break;
        }
        if (may_become(rest, kToolCallEnd) || may_become(rest, kToolCallBegin)) {
          cursor_ = lt;
          return;
        }
        cursor_ = lt + 1;
        break;
      }
    }
  }
}

ToolParseResult extract_tool_calls(std::string_view text) {
  ToolParseResult result;
  size_t section = text.find(kToolSectionBegin);
  if (section == std::string_view::npos) {
    result.content = std::string(text);
    return result;
  }
  ToolCallMatcher matcher;
  matcher.advance(text);
  result.tools_called = true;
  result.tool_calls = matcher.calls();
  if (section > 0) result.content = std::string(text.substr(0, section));
  return result;
}

ToolStreamDelta KimiK2ToolStream::feed(std::string_view text) {
  ToolStreamDelta out;
  text_.append(text);
  if (section_ == std::string::npos) {
    size_t found = text_.find(kToolSectionBegin, section_scan_);
    size_t content_end = found;
    if (found == std::string::npos) {
      content_end = text_.size() - partial_marker_suffix(text_, kToolSectionBegin);
      section_scan_ = content_end;
    } else {
      section_ = found;
    }
    out.content.assign(text_, content_sent_, content_end - content_sent_);
    content_sent_ = content_end;
  }
  matcher_.advance(text_);
  emit_calls(out);
  return out;
}

ToolStreamDelta KimiK2ToolStream::finish() {
  ToolStreamDelta out;
  if (section_ == std::string::npos) {
    out.content.assign(text_, content_sent_);
    content_sent_ = text_.size();
  }
  return out;
}

void KimiK2ToolStream::emit_calls(ToolStreamDelta& out) {
  // Calls matched before the section marker appeared only count once it has.
  if (section_ == std::string::npos) return;
  const std::vector<ToolCall>& calls = matcher_.calls();
  for (; calls_sent_ < calls.size(); ++calls_sent_) {
    const ToolCall& call = calls[calls_sent_];
    int index = static_cast<int>(calls_sent_);
    out.tool_calls.push_back({index, call.id, call.name, ""});
    if (!call.arguments.empty())
      out.tool_calls.push_back({index, std::nullopt, std::nullopt, call.arguments});
  }
}

}  // namespace k2::parsers
