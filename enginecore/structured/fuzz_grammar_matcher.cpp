// libFuzzer: a schema and a token sequence fed to the matcher. Input: schema text, a NUL
// byte, then one byte per step choosing a token of a small vocabulary (single JSON bytes,
// multi-byte and UTF-8-splitting tokens, a special token and an end token). At every step the
// mask must agree with accept_token on a copy for every token, and the end token's bit with
// can_terminate().
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "enginecore/structured/grammar_matcher.h"

namespace {

using k2::structured::CompiledGrammar;
using k2::structured::GrammarMatcher;
using k2::structured::TokenVocabulary;

std::shared_ptr<const TokenVocabulary> fuzz_vocab() {
  std::vector<std::string> tokens = {
      "{", "}", "[", "]", ",", ":", "\"", " ", "\n", "\t", "0", "1", "9", "-", ".", "e", "+", "a", "n", "t",
      "true", "false", "null", "\\", "u", "\\u00e9", "\\n", "\xE4", "\xBD\xA0", "\xE4\xBD", "\xA0", "\xF0\x9F",
      "\x98\x80", "\xFF", "\x01", "\": ", "\", \"", "{\"", "\"}", "}]", "]}", "12", "3.5", "e+7", ", ", "name",
      "\"name\"", "parameters", "x", "\"x\"", "  ", "\n  ", "", "<|end|>"};
  int32_t end = static_cast<int32_t>(tokens.size() - 1);
  return TokenVocabulary::create(tokens, {end}).value();
}

k2::structured::GrammarLimits fuzz_limits() {
  k2::structured::GrammarLimits limits;
  limits.max_nfa_states = 40000;
  limits.max_dfa_states = 8000;
  limits.max_compile_work = 4000000;
  limits.max_unrolled_repeat = 64;
  limits.max_nesting_depth = 12;
  return limits;
}

bool bit(const std::vector<uint32_t>& mask, size_t id) { return (mask[id / 32] >> (id % 32)) & 1u; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto vocab = fuzz_vocab();
  static const auto any_object = CompiledGrammar::any_json_object(fuzz_limits()).value();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t split = input.find('\0');
  std::string_view schema = split == std::string_view::npos ? std::string_view() : input.substr(0, split);
  std::string_view steps = split == std::string_view::npos ? input : input.substr(split + 1);
  auto compiled = CompiledGrammar::from_json_schema_text(schema, fuzz_limits());
  std::shared_ptr<const CompiledGrammar> grammar = compiled.ok() ? *compiled : any_object;

  GrammarMatcher matcher(grammar, vocab);
  std::vector<uint32_t> mask(vocab->mask_words());
  const size_t n = vocab->size();
  for (size_t i = 0; i < steps.size() && i < 64; ++i) {
    matcher.fill_next_token_bitmask(mask);
    for (size_t id = 0; id < n; ++id) {
      GrammarMatcher copy = matcher;
      if (copy.accept_token(static_cast<int32_t>(id)) != bit(mask, id)) __builtin_trap();
    }
    if (bit(mask, n - 1) != matcher.can_terminate()) __builtin_trap();
    int32_t pick = static_cast<int32_t>(static_cast<uint8_t>(steps[i]) % n);
    bool allowed = bit(mask, static_cast<size_t>(pick));
    if (matcher.accept_token(pick) != allowed) __builtin_trap();
    if (matcher.is_terminated()) break;
  }
  return 0;
}
