// tojson must be byte-identical to Python's json.dumps(ensure_ascii=False).
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "frontend/chat_template/json_dump.h"

namespace k2::jinja {
namespace {

std::string dumps(const Value& v, JsonDumpOptions options = {}) {
  auto out = py_json_dumps(v, options);
  EXPECT_TRUE(out.ok()) << out.status().to_string();
  return out.ok() ? *out : "";
}

TEST(JsonDump, FloatsFollowPythonRepr) {
  EXPECT_EQ(dumps(Value::number(1.0)), "1.0");
  EXPECT_EQ(dumps(Value::number(0.1)), "0.1");
  EXPECT_EQ(dumps(Value::number(1e16)), "1e+16");
  EXPECT_EQ(dumps(Value::number(1e15)), "1000000000000000.0");
  EXPECT_EQ(dumps(Value::number(1e-5)), "1e-05");
  EXPECT_EQ(dumps(Value::number(0.0001)), "0.0001");
  EXPECT_EQ(dumps(Value::number(-2.5e-300)), "-2.5e-300");
  EXPECT_EQ(dumps(Value::number(123456789.125)), "123456789.125");
  EXPECT_EQ(dumps(Value::number(-0.0)), "-0.0");
  EXPECT_EQ(dumps(Value::number(std::numeric_limits<double>::infinity())), "Infinity");
  EXPECT_EQ(dumps(Value::number(std::nan(""))), "NaN");
  EXPECT_EQ(dumps(Value::integer(-9007199254740993)), "-9007199254740993");
}

TEST(JsonDump, StringsKeepNonAsciiAndEscapeControls) {
  EXPECT_EQ(dumps(Value::string("é 世界 🔎")), "\"é 世界 🔎\"");
  EXPECT_EQ(dumps(Value::string("q\"b\\n\n\r\t\b\f\x01\x7f")), "\"q\\\"b\\\\n\\n\\r\\t\\b\\f\\u0001\x7f\"");
  EXPECT_EQ(dumps(Value::string("<&>'")), "\"<&>'\"");  // no HTML escaping
  JsonDumpOptions ascii;
  ascii.ensure_ascii = true;
  EXPECT_EQ(dumps(Value::string("é🔎"), ascii), "\"\\u00e9\\ud83d\\udd0e\"");
}

TEST(JsonDump, NestedDefaultSeparatorsAndIndent) {
  Dict inner;
  inner.entries.emplace_back(Value::string("b"), Value::list({Value::integer(1), Value::none(), Value::boolean(true)}));
  inner.entries.emplace_back(Value::string("a"), Value::dict({}));
  Dict outer;
  outer.entries.emplace_back(Value::string("z"), Value::dict(inner));
  outer.entries.emplace_back(Value::string("e"), Value::list({}));
  const Value v = Value::dict(outer);
  EXPECT_EQ(dumps(v), R"({"z": {"b": [1, null, true], "a": {}}, "e": []})");
  const JsonDumpOptions compact{std::nullopt, ",", ":", true};
  EXPECT_EQ(dumps(v, compact), R"({"e":[],"z":{"a":{},"b":[1,null,true]}})");
  const JsonDumpOptions indented{std::string(2, ' '), std::string(1, ','), ": "};
  EXPECT_EQ(dumps(Value::list({Value::integer(1), Value::list({Value::integer(2)})}), indented),
            "[\n  1,\n  [\n    2\n  ]\n]");
}

TEST(JsonDump, NonJsonValuesAreErrors) {
  auto out = py_json_dumps(Value(), {});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("Undefined is not JSON serializable"), std::string::npos);
  Dict keys;
  keys.entries.emplace_back(Value::integer(1), Value::string("x"));
  keys.entries.emplace_back(Value::none(), Value::string("y"));
  EXPECT_EQ(dumps(Value::dict(keys)), R"({"1": "x", "null": "y"})");
}

}  // namespace
}  // namespace k2::jinja
