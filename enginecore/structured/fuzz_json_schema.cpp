// libFuzzer: arbitrary bytes -> JSON -> schema compiler. Compiling must return a value (a
// grammar or an error) without crashing or running away; a compiled grammar is then run
// for a few bytes of its own input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "enginecore/structured/grammar_matcher.h"

namespace {

using k2::structured::GrammarLimits;

GrammarLimits fuzz_limits() {
  GrammarLimits limits;
  limits.max_nfa_states = 40000;
  limits.max_dfa_states = 8000;
  limits.max_compile_work = 4000000;
  limits.max_unrolled_repeat = 64;
  return limits;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto vocab = [] {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
    tokens.emplace_back();
    return k2::structured::TokenVocabulary::create(tokens, {256}).value();
  }();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto grammar = k2::structured::CompiledGrammar::from_json_schema_text(text, fuzz_limits());
  if (!grammar.ok()) {
    if (grammar.status().message().empty()) __builtin_trap();
    return 0;
  }
  k2::structured::GrammarMatcher matcher(*grammar, vocab);
  std::vector<uint32_t> mask(vocab->mask_words());
  // Follow the lowest allowed byte for a few steps: exercises closures and masks.
  for (int step = 0; step < 32 && !matcher.is_terminated(); ++step) {
    matcher.fill_next_token_bitmask(mask);
    int32_t pick = -1;
    for (int32_t id = 0; id < 257 && pick < 0; ++id) {
      if ((mask[static_cast<size_t>(id) / 32] >> (id % 32)) & 1u) pick = id;
    }
    if (pick < 0) break;
    if (!matcher.accept_token(pick)) __builtin_trap();  // the mask allowed it
  }
  return 0;
}
