// Stop strings, applied by the frontend to the detokenized text as vLLM does.
//
// Text is fed as it is detokenized; feed() returns what may be sent to the client now.
// Without include_stop_str_in_output, a tail that could still grow into a stop string is
// held back (only the longest tail that is a proper prefix of some stop string, not a
// fixed window), so a stop string is never partly streamed. When a stop string completes,
// the text before it (plus the stop string itself with include_stop_str_in_output) is
// released, `matched` names it, and the output ends there: later text is dropped.
// Matching runs a KMP automaton per stop string, so every feed is linear in its input
// plus the held tail. Text is UTF-8 and stop strings are valid UTF-8, so a match or a
// held tail always starts on a character boundary.
//
// One per choice; owns its held text; not thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace k2::openai {

class StopStringMatcher {
 public:
  StopStringMatcher(std::vector<std::string> stops, bool include_stop_str_in_output);

  struct Step {
    std::string text;                    // safe to release
    std::optional<std::string> matched;  // the stop string that ended the output
  };
  Step feed(std::string_view text);
  // The generation ended without a stop string: the held tail.
  std::string finish();
  bool matched() const { return matched_; }
  size_t held_bytes() const { return unreleased_; }

 private:
  std::vector<std::string> stops_;
  std::vector<std::vector<size_t>> failure_;  // KMP failure function per stop string
  bool include_;
  bool matched_ = false;
  std::string window_;     // unmatched tail kept for matching across feeds
  size_t unreleased_ = 0;  // how much of window_'s end the client has not seen
};

}  // namespace k2::openai
