// Times fill_next_token_bitmask with a real vocabulary at typical states of a tool-call
// schema. Usage: structured_mask_bench <tiktoken.model> (base64 token + rank per line).
#include <chrono>
#include <functional>
#include <cstdio>
#include <string>
#include <vector>

#include "enginecore/structured/grammar_matcher.h"
#include "enginecore/structured/test_util.h"
#include "enginecore/structured/tool_schemas.h"

namespace {

using k2::structured::CompiledGrammar;
using k2::structured::GrammarMatcher;
using k2::structured::TokenVocabulary;
using Json = nlohmann::ordered_json;

double time_us(const std::function<void()>& fn, int reps) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) fn();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / reps;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <tiktoken.model>\n", argv[0]);
    return 2;
  }
  std::vector<std::string> tokens = k2::structured::testing::read_tiktoken_tokens(argv[1]);
  int32_t eos = static_cast<int32_t>(tokens.size());
  tokens.push_back("");  // an end-of-text special token
  auto vocab = TokenVocabulary::create(tokens, {eos});
  if (!vocab.ok()) return std::fprintf(stderr, "%s\n", vocab.status().to_string().c_str()), 1;
  size_t nodes = (*vocab)->trie().size();
  std::printf("vocabulary: %zu tokens, %zu trie nodes, longest token %zu bytes\n", (*vocab)->size(), nodes,
              (*vocab)->max_token_length());

  Json tools = Json::parse(R"([
    {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
      "properties":{"location":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},
      "required":["location"]}}},
    {"type":"function","function":{"name":"search","parameters":{"type":"object",
      "properties":{"query":{"type":"string"},"max_results":{"type":"integer"},
                    "filters":{"type":"array","items":{"type":"string"}}},"required":["query"]}}}])");
  auto schema = k2::structured::required_tool_calls_schema(tools);
  auto t0 = std::chrono::steady_clock::now();
  auto grammar = CompiledGrammar::from_json_schema(*schema);
  auto t1 = std::chrono::steady_clock::now();
  if (!grammar.ok()) return std::fprintf(stderr, "%s\n", grammar.status().to_string().c_str()), 1;
  std::printf("tool-call grammar: %zu DFA states, %u byte classes, compiled in %.0f us\n",
              (*grammar)->automaton().num_states(), (*grammar)->automaton().num_classes(),
              std::chrono::duration<double, std::micro>(t1 - t0).count());
  auto any_object = CompiledGrammar::any_json_object();

  struct Case {
    const char* name;
    std::shared_ptr<const CompiledGrammar> grammar;
    const char* prefix;
  };
  std::vector<Case> cases = {
      {"start", *grammar, ""},
      {"after key \"name\"", *grammar, "[{\"name\""},
      {"inside tool name", *grammar, "[{\"name\": \"sea"},
      {"inside a free string", *grammar, "[{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Par"},
      {"inside a number", *grammar, "[{\"name\": \"search\", \"parameters\": {\"query\": \"x\", \"max_results\": 1"},
      {"after a value", *grammar, "[{\"name\": \"search\", \"parameters\": {\"query\": \"x\""},
      {"json_object: start", *any_object, ""},
      {"json_object: free string", *any_object, "{\"a\": [1, {\"b\": \"te"},
      {"json_object: after key", *any_object, "{\"a\": [1, {\"b\""},
  };
  std::vector<uint32_t> mask((*vocab)->mask_words());
  std::printf("%-28s %12s %12s %10s\n", "state", "cold us", "cached us", "allowed");
  for (const Case& c : cases) {
    GrammarMatcher base(c.grammar, *vocab);
    if (*c.prefix && !base.accept_bytes(c.prefix)) {
      std::printf("%-28s prefix rejected\n", c.name);
      continue;
    }
    const int reps = 20;
    double cold = time_us([&] {
      GrammarMatcher m(c.grammar, *vocab);
      if (*c.prefix) m.accept_bytes(c.prefix);
      m.fill_next_token_bitmask(mask);
    }, reps);
    double setup = time_us([&] {
      GrammarMatcher m(c.grammar, *vocab);
      if (*c.prefix) m.accept_bytes(c.prefix);
    }, reps);
    base.fill_next_token_bitmask(mask);
    double warm = time_us([&] { base.fill_next_token_bitmask(mask); }, 200);
    size_t allowed = 0;
    for (uint32_t w : mask) allowed += static_cast<size_t>(__builtin_popcount(w));
    std::printf("%-28s %12.1f %12.1f %10zu\n", c.name, cold - setup, warm, allowed);
  }
  return 0;
}
