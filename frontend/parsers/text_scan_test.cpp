#include "frontend/parsers/text_scan.h"

#include <gtest/gtest.h>

namespace k2::parsers {
namespace {

TEST(PartialMarkerSuffix, FindsTheLongestHeldPrefix) {
  EXPECT_EQ(partial_marker_suffix("abc</thi", "</think>"), 5u);
  EXPECT_EQ(partial_marker_suffix("abc<", "</think>"), 1u);
  EXPECT_EQ(partial_marker_suffix("abc", "</think>"), 0u);
  EXPECT_EQ(partial_marker_suffix("</think>", "</think>"), 0u);  // complete is not partial
  EXPECT_EQ(partial_marker_suffix("", "</think>"), 0u);
  EXPECT_EQ(partial_marker_suffix("<|<|tool", "<|tool_call_end|>"), 6u);
}

TEST(DecodeUtf8, DecodesAndRejects) {
  EXPECT_EQ(decode_utf8("a", 0).cp, 'a');
  Utf8Char c = decode_utf8("\xE3\x80\x80", 0);
  EXPECT_EQ(c.cp, 0x3000);
  EXPECT_EQ(c.len, 3u);
  EXPECT_EQ(decode_utf8("\xE3\x80", 0).cp, -1);      // truncated
  EXPECT_EQ(decode_utf8("\xC0\xA0", 0).cp, -1);      // overlong
  EXPECT_EQ(decode_utf8("\xED\xA0\x80", 0).cp, -1);  // surrogate
  EXPECT_EQ(decode_utf8("\xF4\x90\x80\x80", 0).cp, -1);
  EXPECT_EQ(decode_utf8("\x80", 0).len, 1u);
}

TEST(RegexClasses, MatchPythonRegexModule) {
  for (int cp : {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028, 0x2029,
                 0x202F, 0x205F, 0x3000}) {
    EXPECT_TRUE(is_regex_space(cp)) << cp;
  }
  // Python's `re` counts 0x1C-0x1F as spaces; `regex` (which vLLM imports) does not.
  for (int cp : {0x1C, 0x1F, 0x180E, 0x200B, int{'a'}, -1}) EXPECT_FALSE(is_regex_space(cp)) << cp;
  EXPECT_TRUE(is_regex_digit('7'));
  EXPECT_TRUE(is_regex_digit(0x0663));   // ARABIC-INDIC DIGIT THREE
  EXPECT_TRUE(is_regex_digit(0xFF19));   // FULLWIDTH DIGIT NINE
  EXPECT_FALSE(is_regex_digit(0x00B2));  // SUPERSCRIPT TWO is No, not Nd
  EXPECT_FALSE(is_regex_digit('a'));
  EXPECT_FALSE(is_regex_digit(-1));
}

TEST(SpaceRuns, SkipAndTrail) {
  std::string_view s = " \t\xE3\x80\x80x y \n";
  EXPECT_EQ(skip_spaces(s, 0, s.size()), 5u);
  EXPECT_EQ(trailing_spaces_start(s, 0, s.size()), 8u);
  EXPECT_EQ(trailing_spaces_start(s, 0, 5), 0u);     // all spaces
  EXPECT_EQ(skip_spaces("\xE3\x80\x80", 0, 2), 0u);  // a character cut by `to` is not a space
}

}  // namespace
}  // namespace k2::parsers
