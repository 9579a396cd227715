// Template text to tokens, following jinja2 3.1's Lexer rule for rule: newline
// normalisation and the dropped trailing newline, `{%-`/`-%}` whitespace control,
// trim_blocks, lstrip_blocks (with `{%+` opting out), comments, raw blocks, the
// bracket-balancing that lets `}}` appear inside a dict literal, and Python string
// literal escapes. Stateless functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shm/status.h"

namespace k2::jinja {

enum class TokenType : uint8_t {
  kData,           // literal template text (after whitespace control)
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,
  kInteger,
  kFloat,
  kOperator,  // text holds the operator ("+", "//", "(", ...)
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;  // data, name, decoded string literal, or operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Tokenises a whole template. Errors (unterminated comment/raw, a bad character, an
// unbalanced bracket, a bad escape) come back as invalid_argument with the line number.
Result<std::vector<Token>> tokenize(std::string_view source, const LexerOptions& options);

// Python's "unicode-escape" decoding of a string literal's body, as jinja2 applies it.
Result<std::string> decode_string_literal(std::string_view body);

}  // namespace k2::jinja
