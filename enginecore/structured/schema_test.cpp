// Accept/reject byte strings per schema feature, and errors for schemas the compiler refuses.
#include <gtest/gtest.h>

#include "enginecore/structured/test_util.h"

namespace k2::structured {
namespace {

using testing::Json;

class SchemaTest : public ::testing::Test {
 protected:
  // True when `doc` is a complete sentence of the schema's grammar.
  bool matches(const std::string& schema, const std::string& doc, const GrammarLimits& limits = {}) {
    auto g = CompiledGrammar::from_json_schema_text(schema, limits);
    EXPECT_TRUE(g.ok()) << schema << ": " << g.status().to_string();
    if (!g.ok()) return false;
    GrammarMatcher m(*g, vocab_);
    return m.accept_bytes(doc) && m.can_terminate();
  }
  std::string error(const std::string& schema, const GrammarLimits& limits = {}) {
    auto g = CompiledGrammar::from_json_schema_text(schema, limits);
    return g.ok() ? "" : g.status().message();
  }
  std::shared_ptr<const TokenVocabulary> vocab_ = testing::byte_vocab();
};

TEST_F(SchemaTest, ScalarTypes) {
  EXPECT_TRUE(matches(R"({"type":"string"})", R"("hi")"));
  EXPECT_FALSE(matches(R"({"type":"string"})", "hi"));
  EXPECT_TRUE(matches(R"({"type":"integer"})", "-120"));
  EXPECT_TRUE(matches(R"({"type":"integer"})", "0"));
  EXPECT_FALSE(matches(R"({"type":"integer"})", "012"));
  EXPECT_FALSE(matches(R"({"type":"integer"})", "1.5"));
  EXPECT_FALSE(matches(R"({"type":"integer"})", "-"));
  EXPECT_TRUE(matches(R"({"type":"number"})", "-1.25e+10"));
  EXPECT_TRUE(matches(R"({"type":"number"})", "3E7"));
  EXPECT_FALSE(matches(R"({"type":"number"})", "1."));
  EXPECT_FALSE(matches(R"({"type":"number"})", ".5"));
  EXPECT_FALSE(matches(R"({"type":"number"})", "NaN"));
  EXPECT_TRUE(matches(R"({"type":"boolean"})", "false"));
  EXPECT_FALSE(matches(R"({"type":"boolean"})", "null"));
  EXPECT_TRUE(matches(R"({"type":"null"})", "null"));
  EXPECT_TRUE(matches(R"({"type":["string","null"]})", "null"));
  EXPECT_TRUE(matches(R"({"type":["string","null"]})", R"("x")"));
  EXPECT_FALSE(matches(R"({"type":["string","null"]})", "1"));
}

TEST_F(SchemaTest, StringsEscapesAndUtf8) {
  const std::string s = R"({"type":"string"})";
  EXPECT_TRUE(matches(s, R"("a\"b\\c\/\b\f\n\r\t\u00e9\uD83D\ude00")"));
  EXPECT_FALSE(matches(s, R"("\x")"));
  EXPECT_FALSE(matches(s, R"("\u12G4")"));
  EXPECT_FALSE(matches(s, "\"a\nb\""));                      // raw control character
  EXPECT_TRUE(matches(s, "\"caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80\""));
  EXPECT_FALSE(matches(s, "\"\xC0\x80\""));                  // overlong
  EXPECT_FALSE(matches(s, "\"\x80\""));                      // lone continuation byte
  EXPECT_FALSE(matches(s, "\"\xED\xA0\x80\""));              // UTF-16 surrogate in UTF-8
  EXPECT_FALSE(matches(s, "\"\xF4\x90\x80\x80\""));          // above U+10FFFF
  EXPECT_FALSE(matches(s, "\"\xE4\xBD\""));                  // truncated character
}

TEST_F(SchemaTest, StringLengthCountsCharacters) {
  const std::string s = R"({"type":"string","minLength":2,"maxLength":3})";
  EXPECT_FALSE(matches(s, R"("a")"));
  EXPECT_TRUE(matches(s, R"("ab")"));
  EXPECT_TRUE(matches(s, "\"\xE4\xBD\xA0\xE5\xA5\xBD\xF0\x9F\x98\x80\""));  // 3 characters, 10 bytes
  EXPECT_TRUE(matches(s, R"("a\nb")"));
  EXPECT_FALSE(matches(s, R"("abcd")"));
  EXPECT_FALSE(matches(s, R"("a\u0041bc")"));
}

TEST_F(SchemaTest, ObjectPropertiesInOrderWithOptionalOnes) {
  const std::string s = R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},
                            "c":{"type":"boolean"}},"required":["b"]})";
  EXPECT_TRUE(matches(s, R"({"a": 1, "b": "x", "c": true})"));
  EXPECT_TRUE(matches(s, R"({"a":1,"b":"x","c":true})"));
  EXPECT_TRUE(matches(s, R"({"b": "x"})"));
  EXPECT_TRUE(matches(s, R"({"b": "x", "c": false})"));
  EXPECT_FALSE(matches(s, R"({"a": 1})"));                   // b is required
  EXPECT_FALSE(matches(s, R"({"b": "x", "a": 1})"));         // schema order
  EXPECT_FALSE(matches(s, R"({"b": "x", "d": 1})"));         // additionalProperties false by default
  EXPECT_FALSE(matches(s, R"({, "b": "x"})"));
  EXPECT_FALSE(matches(s, R"({"b": "x",})"));
  EXPECT_TRUE(matches(R"({"type":"object","properties":{}})", "{}"));
  EXPECT_FALSE(matches(R"({"type":"object","properties":{}})", R"({"a":1})"));
  EXPECT_TRUE(matches(R"({"type":"object"})", "{ }"));
}

TEST_F(SchemaTest, AdditionalProperties) {
  const std::string any = R"({"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":true})";
  EXPECT_TRUE(matches(any, R"({"a": 1, "x": [1, {"y": null}], "z": "w"})"));
  EXPECT_TRUE(matches(any, R"({"x": 2})"));
  const std::string typed = R"({"type":"object","additionalProperties":{"type":"number"}})";
  EXPECT_TRUE(matches(typed, R"({"x": 2, "y": 3.5})"));
  EXPECT_FALSE(matches(typed, R"({"x": "2"})"));
  EXPECT_TRUE(matches(R"({"required":["k"],"additionalProperties":{"type":"null"}})", R"({"k": null})"));
  EXPECT_FALSE(matches(R"({"required":["k"],"additionalProperties":{"type":"null"}})", "{}"));
}

TEST_F(SchemaTest, Whitespace) {
  const std::string s = R"({"type":"array","items":{"type":"object","properties":{"k":{"type":"integer"}}}})";
  EXPECT_TRUE(matches(s, R"([{"k": 1}, {"k": 2}])"));
  EXPECT_TRUE(matches(s, R"([{"k":1},{"k":2}])"));
  EXPECT_TRUE(matches(s, "[\n  {\n    \"k\": 1\n  }\n]"));
  EXPECT_FALSE(matches(s, R"( [{"k":1}])"));                 // no leading whitespace
  EXPECT_FALSE(matches(s, R"([{"k":1}] )"));                 // no trailing whitespace
  GrammarLimits limits;
  auto bracketed = [](size_t spaces) { return std::string("[").append(spaces, ' ').append("]"); };
  EXPECT_TRUE(matches(s, bracketed(static_cast<size_t>(limits.max_whitespace))));
  EXPECT_FALSE(matches(s, bracketed(static_cast<size_t>(limits.max_whitespace) + 1)));
  limits.max_whitespace = 0;
  EXPECT_TRUE(matches(s, R"([{"k":1},{"k":2}])", limits));
  EXPECT_FALSE(matches(s, R"([{"k": 1}])", limits));
}

TEST_F(SchemaTest, EnumAndConst) {
  const std::string s = R"({"enum":["red","gr\"een",1.5,null,{"a":[1,2]},"\u00e9"]})";
  EXPECT_TRUE(matches(s, R"("red")"));
  EXPECT_TRUE(matches(s, R"("gr\"een")"));
  EXPECT_TRUE(matches(s, "1.5"));
  EXPECT_TRUE(matches(s, "null"));
  EXPECT_TRUE(matches(s, R"({"a": [1, 2]})"));
  EXPECT_TRUE(matches(s, "\"\xC3\xA9\""));
  EXPECT_FALSE(matches(s, R"("blue")"));
  EXPECT_FALSE(matches(s, R"("re")"));
  EXPECT_TRUE(matches(R"({"const":"fixed"})", R"("fixed")"));
  EXPECT_FALSE(matches(R"({"const":"fixed"})", R"("fixe")"));
  EXPECT_TRUE(matches(R"({"const":42,"type":"integer"})", "42"));
}

TEST_F(SchemaTest, Combinators) {
  const std::string any_of = R"({"anyOf":[{"type":"integer"},{"type":"object","properties":{"x":{"type":"string"}},
                                  "required":["x"]}]})";
  EXPECT_TRUE(matches(any_of, "7"));
  EXPECT_TRUE(matches(any_of, R"({"x": "y"})"));
  EXPECT_FALSE(matches(any_of, R"("7")"));
  EXPECT_TRUE(matches(R"({"oneOf":[{"type":"string"},{"type":"null"}]})", "null"));
  EXPECT_TRUE(matches(R"({"allOf":[{"type":"string"}]})", R"("s")"));
  EXPECT_FALSE(matches(R"({"allOf":[{"type":"string"}]})", "1"));
  // Parent keywords apply to every branch (vLLM's tool-call items rely on it).
  const std::string merged = R"({"type":"object","anyOf":[{"properties":{"a":{"const":1}},"required":["a"]},
                                  {"properties":{"b":{"const":2}},"required":["b"]}]})";
  EXPECT_TRUE(matches(merged, R"({"a": 1})"));
  EXPECT_TRUE(matches(merged, R"({"b": 2})"));
  EXPECT_FALSE(matches(merged, R"({"a": 2})"));
}

TEST_F(SchemaTest, Arrays) {
  EXPECT_TRUE(matches(R"({"type":"array"})", R"([1, "a", {"b": [null]}])"));
  EXPECT_TRUE(matches(R"({"type":"array","items":{"type":"integer"}})", "[]"));
  EXPECT_FALSE(matches(R"({"type":"array","items":{"type":"integer"}})", R"([1, "a"])"));
  const std::string bounded = R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})";
  EXPECT_FALSE(matches(bounded, "[1]"));
  EXPECT_TRUE(matches(bounded, "[1, 2]"));
  EXPECT_TRUE(matches(bounded, "[1, 2, 3]"));
  EXPECT_FALSE(matches(bounded, "[1, 2, 3, 4]"));
  const std::string tuple = R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}]})";
  EXPECT_TRUE(matches(tuple, R"(["a", 1])"));
  EXPECT_TRUE(matches(tuple, R"(["a"])"));
  EXPECT_FALSE(matches(tuple, R"(["a", 1, 2])"));
  EXPECT_FALSE(matches(tuple, R"([1])"));
  const std::string tuple_more = R"({"prefixItems":[{"type":"string"}],"items":{"type":"boolean"},"minItems":2})";
  EXPECT_TRUE(matches(tuple_more, R"(["a", true, false])"));
  EXPECT_FALSE(matches(tuple_more, R"(["a"])"));
  EXPECT_TRUE(matches(R"({"items":[{"type":"null"}],"additionalItems":{"type":"integer"}})", "[null, 1, 2]"));
}

TEST_F(SchemaTest, RefsAndRecursion) {
  const std::string tree = R"({"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{
      "v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}}})";
  EXPECT_TRUE(matches(tree, R"({"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4}]}]})"));
  EXPECT_FALSE(matches(tree, R"({"v": 1, "kids": [{"w": 2}]})"));
  EXPECT_TRUE(matches(R"({"definitions":{"s":{"type":"string"}},"properties":{"a":{"$ref":"#/definitions/s"}}})",
                      R"({"a": "x"})"));
  // The nesting limit bounds recursion: a chain deeper than it is rejected. It counts rule
  // frames: here two per level (the $ref and the array's items rule).
  GrammarLimits limits;
  limits.max_nesting_depth = 8;
  const std::string list = R"({"$defs":{"l":{"anyOf":[{"type":"null"},{"type":"array","items":{"$ref":"#/$defs/l"}}]}},
                              "$ref":"#/$defs/l"})";
  EXPECT_TRUE(matches(list, "[[[null]]]", limits));
  EXPECT_FALSE(matches(list, "[[[[[[null]]]]]]", limits));
}

TEST_F(SchemaTest, AnyValue) {
  for (const char* s : {"{}", "true", R"({"description":"anything"})"}) {
    EXPECT_TRUE(matches(s, R"({"a": [1, 2.5e3, "x", true, null, {}]})")) << s;
    EXPECT_TRUE(matches(s, "\"text\"")) << s;
    EXPECT_TRUE(matches(s, "-0.5")) << s;
    EXPECT_FALSE(matches(s, "{'a': 1}")) << s;
  }
  auto obj = CompiledGrammar::any_json_object();
  ASSERT_TRUE(obj.ok());
  GrammarMatcher m(*obj, vocab_);
  EXPECT_FALSE(GrammarMatcher(*obj, vocab_).accept_bytes("[1]"));
  EXPECT_TRUE(m.accept_bytes(R"({"k": {"n": [1, {"m": "v"}]}})"));
  EXPECT_TRUE(m.can_terminate());
}

TEST_F(SchemaTest, ErrorsNameTheCause) {
  EXPECT_NE(error(R"({"type":"string","pattern":"^a"})").find("'pattern'"), std::string::npos);
  EXPECT_NE(error(R"({"properties":{"x":{"not":{}}}})").find("#/properties/x"), std::string::npos);
  EXPECT_NE(error(R"({"type":"strin"})").find("unknown type 'strin'"), std::string::npos);
  EXPECT_NE(error(R"({"$ref":"#/$defs/missing"})").find("not found"), std::string::npos);
  EXPECT_NE(error(R"({"$ref":"http://x/y"})").find("only local"), std::string::npos);
  EXPECT_NE(error(R"({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"anyOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"})")
                .find("$ref cycle"), std::string::npos);
  EXPECT_NE(error(R"({"allOf":[{"type":"string"},{"minLength":1}]})").find("allOf"), std::string::npos);
  EXPECT_NE(error(R"({"type":"array","uniqueItems":true})").find("uniqueItems"), std::string::npos);
  EXPECT_NE(error(R"({"type":"string","maxLength":100000})").find("maxLength"), std::string::npos);
  EXPECT_NE(error(R"({"type":"string","minLength":-1})").find("minLength"), std::string::npos);
  EXPECT_NE(error(R"({"required":["a"]})").find("'a'"), std::string::npos);
  EXPECT_NE(error(R"({"anyOf":[]})").find("anyOf"), std::string::npos);
  EXPECT_NE(error("[1]").find("must be an object or a boolean"), std::string::npos);
  EXPECT_NE(error("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error(R"({"properties":{"a":5}})").find("#/properties/a"), std::string::npos);
}

TEST_F(SchemaTest, LimitsAreErrorsNotHangs) {
  // Deep schema nesting.
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += R"({"type":"array","items":)";
  deep += "{}";
  for (int i = 0; i < 200; ++i) deep += "}";
  EXPECT_NE(error(deep).find("nested deeper"), std::string::npos);
  // A huge const nested far deeper still fails fast, before recursive code walks it.
  std::string deep_const = R"({"anyOf":[{}],"const":)" + std::string(200000, '[') + std::string(200000, ']') + "}";
  EXPECT_NE(error(deep_const).find("nested deeper"), std::string::npos);
  // A wide enum past the limit.
  Json many = Json::array();
  for (int i = 0; i < 5000; ++i) many.push_back(i);
  auto g = CompiledGrammar::from_json_schema(Json{{"enum", many}});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("enum"), std::string::npos);
  // Unrolled repetition of a big item blows the state budget and says so.
  GrammarLimits small;
  small.max_nfa_states = 20000;
  std::string big = R"({"type":"array","minItems":1000,"maxItems":1000,"items":{"type":"object",
      "properties":{"a":{"type":"string","maxLength":50},"b":{"type":"number"}}}})";
  EXPECT_NE(error(big, small).find("too large"), std::string::npos);
  // Too many $ref targets.
  Json defs = Json::object();
  Json props = Json::object();
  for (int i = 0; i < 20; ++i) {
    std::string n = std::to_string(i);
    defs[std::string("d").append(n)] = {{"type", "integer"}};
    props[std::string("p").append(n)] = {{"$ref", std::string("#/$defs/d").append(n)}};
  }
  GrammarLimits few_rules;
  few_rules.max_rules = 10;
  auto r = CompiledGrammar::from_json_schema(Json{{"$defs", defs}, {"properties", props}}, few_rules);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("$ref"), std::string::npos);
}

}  // namespace
}  // namespace k2::structured
