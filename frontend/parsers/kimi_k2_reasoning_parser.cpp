#include "frontend/parsers/kimi_k2_reasoning_parser.h"

#include <algorithm>

#include "frontend/parsers/kimi_k2_markers.h"
#include "frontend/parsers/text_scan.h"

namespace k2::parsers {

ReasoningSplit extract_reasoning(std::string_view output, bool thinking) {
  if (!thinking) return {std::nullopt, std::string(output)};
  size_t start = output.starts_with(kThinkBegin) ? kThinkBegin.size() : 0;
  auto content_or_null = [](std::string_view rest) -> std::optional<std::string> {
    if (rest.empty()) return std::nullopt;
    return std::string(rest);
  };
  if (size_t end = output.find(kThinkEnd); end != std::string_view::npos) {
    return {std::string(output.substr(start, end - start)),
            content_or_null(output.substr(end + kThinkEnd.size()))};
  }
  if (size_t section = output.find(kToolSectionBegin); section != std::string_view::npos) {
    return {std::string(output.substr(start, section - start)), content_or_null(output.substr(section))};
  }
  return {std::string(output.substr(start)), std::nullopt};
}

KimiK2ReasoningStream::KimiK2ReasoningStream(bool thinking)
    : state_(thinking ? State::kStart : State::kContent) {}

ReasoningDelta KimiK2ReasoningStream::feed(std::string_view text) {
  ReasoningDelta out;
  if (state_ == State::kContent) {
    out.content.assign(text);
    return out;
  }
  pending_.append(text);
  process(out);
  return out;
}

void KimiK2ReasoningStream::process(ReasoningDelta& out) {
  if (state_ == State::kStart) {
    if (pending_.size() < kThinkBegin.size() && kThinkBegin.starts_with(pending_)) return;
    if (pending_.starts_with(kThinkBegin)) pending_.erase(0, kThinkBegin.size());
    state_ = State::kReasoning;
  }
  if (state_ == State::kReasoning) {
    size_t end = pending_.find(kThinkEnd);
    size_t section = pending_.find(kToolSectionBegin);
    if (end != std::string::npos && (section == std::string::npos || end < section)) {
      out.reasoning.append(pending_, 0, end);
      out.content.append(pending_, end + kThinkEnd.size());
      pending_.clear();
      state_ = State::kContent;
      return;
    }
    if (section == std::string::npos) {
      size_t hold = std::max(partial_marker_suffix(pending_, kThinkEnd),
                             partial_marker_suffix(pending_, kToolSectionBegin));
      out.reasoning.append(pending_, 0, pending_.size() - hold);
      pending_.erase(0, pending_.size() - hold);
      return;
    }
    // Whatever comes next, the text before the section marker is reasoning.
    out.reasoning.append(pending_, 0, section);
    pending_.erase(0, section);
    scanned_ = 0;
    state_ = State::kAfterSection;
  }
  if (state_ == State::kAfterSection) {
    size_t end = pending_.find(kThinkEnd, scanned_);
    if (end == std::string::npos) {
      scanned_ = pending_.size() - partial_marker_suffix(pending_, kThinkEnd);
      return;
    }
    out.reasoning.append(pending_, 0, end);
    out.content.append(pending_, end + kThinkEnd.size());
    pending_.clear();
    state_ = State::kContent;
  }
}

ReasoningDelta KimiK2ReasoningStream::finish() {
  ReasoningDelta out;
  switch (state_) {
    case State::kStart:
    case State::kReasoning:
      out.reasoning = std::move(pending_);
      break;
    case State::kAfterSection:
      out.content = std::move(pending_);
      break;
    case State::kContent:
      break;
  }
  pending_.clear();
  state_ = State::kContent;
  return out;
}

}  // namespace k2::parsers
