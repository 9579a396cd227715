// Tokens to statement trees, following jinja2 3.1's Parser (operator precedence, tuples
// without parentheses, filters binding tighter than arithmetic, `is` tests with a bare
// argument, chained comparisons, `for ... if ...`, macros, call/filter/set blocks).
// Stateless entry point, thread-safe.
#pragma once

#include <string_view>

#include "frontend/chat_template/ast.h"
#include "frontend/chat_template/lexer.h"

namespace k2::jinja {

// Nesting deeper than this (brackets, operators, blocks) is a syntax error rather than a
// stack overflow; jinja2 itself stops at Python's recursion limit.
inline constexpr int kMaxParseDepth = 256;

// Parses a whole template. Errors name the problem and the line.
Result<Body> parse_template(std::string_view source, const LexerOptions& options);

}  // namespace k2::jinja
