// Test-only helpers: cutting text into deltas, running an OutputStream over them, and
// checking that every delta has the OpenAI shape. Header-only, no shared state.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/parsers/output_parser.h"
#include "frontend/parsers/text_scan.h"

namespace k2::parsers::testing {

// One piece per UTF-8 character.
inline std::vector<std::string> split_chars(std::string_view text) {
  std::vector<std::string> pieces;
  for (size_t pos = 0; pos < text.size();) {
    size_t len = decode_utf8(text, pos).len;
    pieces.emplace_back(text.substr(pos, len));
    pos += len;
  }
  return pieces;
}

// Random cut points at byte boundaries, piece lengths 1..max_len.
inline std::vector<std::string> split_random(std::string_view text, std::mt19937& rng, size_t max_len) {
  std::vector<std::string> pieces;
  std::uniform_int_distribution<size_t> len(1, max_len);
  for (size_t pos = 0; pos < text.size();) {
    size_t n = std::min(len(rng), text.size() - pos);
    pieces.emplace_back(text.substr(pos, n));
    pos += n;
  }
  return pieces;
}

// What a client rebuilds from the stream.
struct StreamTotals {
  std::string reasoning;
  std::string content;
  bool tools_called = false;
  std::vector<ToolCall> tool_calls;
  int deltas_with_tool_calls = 0;
};

// Adds one delta to the totals and checks the OpenAI rules: `index` counts up from 0 as
// new calls start, the first fragment of a call carries id/type/name and later ones
// do not, and arguments are strings appended in order.
inline void accumulate(const DeltaMessage& delta, StreamTotals& totals) {
  if (!delta.tool_calls.empty()) ++totals.deltas_with_tool_calls;
  for (const ToolCallDelta& d : delta.tool_calls) {
    ASSERT_GE(d.index, 0);
    if (static_cast<size_t>(d.index) == totals.tool_calls.size()) {
      ASSERT_TRUE(d.id.has_value()) << "the first fragment of call " << d.index << " lacks its id";
      ASSERT_TRUE(d.name.has_value()) << "the first fragment of call " << d.index << " lacks its name";
      totals.tool_calls.push_back({*d.id, *d.name, d.arguments});
    } else {
      ASSERT_EQ(static_cast<size_t>(d.index) + 1, totals.tool_calls.size())
          << "fragment for call " << d.index << " arrived out of order";
      ASSERT_FALSE(d.id.has_value()) << "id repeated on a later fragment";
      ASSERT_FALSE(d.name.has_value()) << "name repeated on a later fragment";
      totals.tool_calls.back().arguments += d.arguments;
    }
  }
  totals.reasoning += delta.reasoning;
  totals.content += delta.content;
  // The JSON form must carry index everywhere and type exactly with the id.
  nlohmann::json j = delta_to_json(delta);
  if (j.contains("tool_calls")) {
    for (const auto& call : j["tool_calls"]) {
      ASSERT_TRUE(call.contains("index"));
      ASSERT_EQ(call.contains("id"), call.contains("type"));
      ASSERT_TRUE(call["function"]["arguments"].is_string());
    }
  }
}

inline StreamTotals run_stream(const std::vector<std::string>& pieces, const OutputParserConfig& config) {
  OutputStream stream(config);
  StreamTotals totals;
  for (const std::string& piece : pieces) accumulate(stream.feed(piece), totals);
  accumulate(stream.finish(), totals);
  totals.tools_called = stream.tools_called();
  return totals;
}

// The streamed totals against the one-shot answer (a null field streams as nothing).
inline void expect_same(const StreamTotals& streamed, const ParsedOutput& whole, const std::string& label) {
  EXPECT_EQ(streamed.reasoning, whole.reasoning.value_or("")) << label;
  EXPECT_EQ(streamed.content, whole.content.value_or("")) << label;
  EXPECT_EQ(streamed.tools_called, whole.tools_called) << label;
  EXPECT_EQ(streamed.tool_calls, whole.tool_calls) << label;
}

}  // namespace k2::parsers::testing
