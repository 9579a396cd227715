#include "frontend/openai/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace k2::openai {

namespace {

std::vector<size_t> kmp_failure(const std::string& s) {
  std::vector<size_t> f(s.size(), 0);
  for (size_t i = 1, k = 0; i < s.size(); ++i) {
    while (k > 0 && s[i] != s[k]) k = f[k - 1];
    if (s[i] == s[k]) ++k;
    f[i] = k;
  }
  return f;
}

}  // namespace

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops, bool include_stop_str_in_output)
    : include_(include_stop_str_in_output) {
  for (auto& s : stops) {
    if (s.empty()) continue;
    failure_.push_back(kmp_failure(s));
    stops_.push_back(std::move(s));
  }
}

StopStringMatcher::Step StopStringMatcher::feed(std::string_view text) {
  Step out;
  if (matched_) return out;
  if (stops_.empty()) {
    out.text = std::string(text);
    return out;
  }
  std::string buf = std::move(window_);
  window_.clear();
  const size_t sent = buf.size() - unreleased_;  // bytes of buf the client already has
  buf.append(text);
  size_t best_start = std::string::npos, best = 0, hold = 0;
  for (size_t s = 0; s < stops_.size(); ++s) {
    const std::string& stop = stops_[s];
    const auto& f = failure_[s];
    size_t k = 0;
    bool found = false;
    for (size_t i = 0; i < buf.size(); ++i) {
      while (k > 0 && buf[i] != stop[k]) k = f[k - 1];
      if (buf[i] == stop[k]) ++k;
      if (k == stop.size()) {
        const size_t start = i + 1 - stop.size();
        if (start < best_start) {
          best_start = start;
          best = s;
        }
        found = true;
        break;  // the first match of this stop string is the only one that matters
      }
    }
    if (!found) hold = std::max(hold, k);  // a proper prefix of this stop at the tail
  }
  if (best_start != std::string::npos) {
    matched_ = true;
    out.matched = stops_[best];
    const size_t end = best_start + (include_ ? stops_[best].size() : 0);
    if (end > sent) out.text = buf.substr(sent, end - sent);
    return out;
  }
  // The tail that may still grow into a stop string stays in the window for matching;
  // it is withheld from the client unless the stop string would be sent anyway.
  window_ = buf.substr(buf.size() - hold);
  if (include_) {
    out.text = buf.substr(sent);
    unreleased_ = 0;
  } else {
    out.text = buf.substr(sent, buf.size() - hold - sent);
    unreleased_ = hold;
  }
  return out;
}

std::string StopStringMatcher::finish() {
  if (matched_) return {};
  std::string rest = window_.substr(window_.size() - unreleased_);
  window_.clear();
  unreleased_ = 0;
  return rest;
}

}  // namespace k2::openai
