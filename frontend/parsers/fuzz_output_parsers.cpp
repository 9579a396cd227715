// libFuzzer target: arbitrary text through the kimi_k2 reasoning and tool-call parsers.
//
// Input layout: byte 0 selects the parsers (bit 0 reasoning, bit 1 thinking, bit 2 tools),
// byte 1 seeds the delta cuts, the rest is the model output. Checked invariants:
//  - nothing crashes or throws, on any bytes (valid UTF-8 or not);
//  - streaming in random pieces and in 1-byte pieces gives exactly the non-streaming
//    reasoning, content, tools_called and tool calls, with OpenAI-shaped deltas;
//  - the hand-written tool-call matcher finds what PCRE2 running vLLM's regex finds.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "frontend/parsers/output_parser.h"
#include "frontend/parsers/reference_tool_regex.h"

namespace {

using namespace k2::parsers;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_output_parsers: %s\n", what);
  std::abort();
}

struct Totals {
  std::string reasoning, content;
  std::vector<ToolCall> calls;
  bool tools_called = false;
};

void add(const DeltaMessage& d, Totals& t) {
  t.reasoning += d.reasoning;
  t.content += d.content;
  for (const ToolCallDelta& c : d.tool_calls) {
    if (static_cast<size_t>(c.index) == t.calls.size()) {
      if (!c.id || !c.name) fail("first fragment of a call lacks id or name");
      t.calls.push_back({*c.id, *c.name, c.arguments});
    } else {
      if (static_cast<size_t>(c.index) + 1 != t.calls.size()) fail("fragment index out of order");
      if (c.id || c.name) fail("id or name repeated on a later fragment");
      t.calls.back().arguments += c.arguments;
    }
  }
  // Serialising must never throw, whatever bytes the model produced.
  (void)delta_to_json(d).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void check_stream(const std::string& text, const OutputParserConfig& config, const ParsedOutput& whole,
                  std::mt19937& rng, size_t max_piece) {
  OutputStream stream(config);
  Totals t;
  std::uniform_int_distribution<size_t> len(1, max_piece);
  for (size_t pos = 0; pos < text.size();) {
    size_t n = std::min(len(rng), text.size() - pos);
    add(stream.feed(std::string_view(text).substr(pos, n)), t);
    pos += n;
  }
  add(stream.finish(), t);
  t.tools_called = stream.tools_called();
  if (t.reasoning != whole.reasoning.value_or("")) fail("streamed reasoning differs");
  if (t.content != whole.content.value_or("")) fail("streamed content differs");
  if (t.tools_called != whole.tools_called) fail("streamed tools_called differs");
  if (t.calls != whole.tool_calls) fail("streamed tool calls differ");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  OutputParserConfig config;
  config.parse_reasoning = (data[0] & 1) != 0;
  config.thinking = (data[0] & 2) != 0;
  config.parse_tools = (data[0] & 4) != 0;
  if (data[0] & 8) config.forced = ForcedToolChoice{(data[0] & 16) ? ForcedToolMode::kRequired : ForcedToolMode::kNamed, "f", 0};
  std::mt19937 rng(data[1]);
  std::string text(reinterpret_cast<const char*>(data + 2), size - 2);

  ParsedOutput whole = parse_output(text, config);
  // A "required" array that does not parse whole is content one-shot, while streaming has
  // sent its complete elements: the two agree only on arrays that parse.
  const bool comparable = config.forced.mode != ForcedToolMode::kRequired || whole.tools_called;
  if (comparable) {
    check_stream(text, config, whole, rng, 1);
    check_stream(text, config, whole, rng, 16);
  } else {
    OutputStream stream(config);  // still must not crash
    (void)stream.feed(text);
    (void)stream.finish();
  }

  ToolCallMatcher matcher;
  matcher.advance(text);
  if (std::optional<std::vector<ToolCall>> want = k2::parsers::testing::reference_tool_calls(text)) {
    if (*want != matcher.calls()) fail("matcher disagrees with the regex");
  }
  return 0;
}
