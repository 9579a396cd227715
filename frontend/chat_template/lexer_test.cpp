// Tokenisation and whitespace control as jinja2's lexer does it.
#include <gtest/gtest.h>

#include "frontend/chat_template/lexer.h"

namespace k2::jinja {
namespace {

std::vector<Token> lex(std::string_view s) {
  auto t = tokenize(s, {});
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? *t : std::vector<Token>{};
}

TEST(Lexer, TokensOfAnExpression) {
  const auto t = lex("{{ a.b[0] // 2 ~ 'x' }}");
  std::vector<std::string> texts;
  for (const auto& tok : t) texts.push_back(tok.text);
  EXPECT_EQ(texts, (std::vector<std::string>{"{{", "a", ".", "b", "[", "0", "]", "//", "2", "~", "x", "}}", ""}));
  EXPECT_EQ(t[5].type, TokenType::kInteger);
  EXPECT_EQ(t[10].type, TokenType::kString);
}

TEST(Lexer, StripsAndTrims) {
  auto t = lex("a  \n  {%- if x -%}  \n b");
  EXPECT_EQ(t[0].text, "a");  // `{%-` strips all whitespace before
  EXPECT_EQ(t.back().type, TokenType::kEof);
  EXPECT_EQ(t[t.size() - 2].text, "b");  // `-%}` strips all whitespace after
  t = lex("x\n    {% if y %}\nz");
  EXPECT_EQ(t[0].text, "x\n");  // lstrip_blocks removes the indentation
  EXPECT_EQ(t[t.size() - 2].text, "z");  // trim_blocks removes the newline
  t = lex("x\n    {{ y }}\nz");
  EXPECT_EQ(t[0].text, "x\n    ");  // variables are not lstripped
}

TEST(Lexer, StringEscapesFollowPython) {
  auto s = decode_string_literal(R"(a\n\t\x41\u00e9\U0001F50E\101\q)");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "a\n\tAé🔎A\\q");
  EXPECT_FALSE(decode_string_literal(R"(\x4)").ok());
}

TEST(Lexer, ErrorsAreValues) {
  EXPECT_FALSE(tokenize("{# never closed", {}).ok());
  EXPECT_FALSE(tokenize("{% raw %} never closed", {}).ok());
  EXPECT_FALSE(tokenize("{{ a ) }}", {}).ok());
  EXPECT_FALSE(tokenize("{{ $ }}", {}).ok());
  EXPECT_FALSE(tokenize("{{ 99999999999999999999 }}", {}).ok());
}

}  // namespace
}  // namespace k2::jinja
