#include "frontend/tokenizer/utf8.h"

#include <gtest/gtest.h>

namespace k2::tok {
namespace {

std::string lossy(std::string_view bytes) {
  std::string out;
  EXPECT_EQ(append_utf8_lossy(bytes, true, out), bytes.size());
  return out;
}

const std::string kR = "\xEF\xBF\xBD";  // U+FFFD

TEST(Utf8, LossyDecodeMatchesPythonReplace) {
  // Expected values from CPython's bytes.decode("utf-8", "replace").
  EXPECT_EQ(lossy("\xe2\x82" "A"), kR + "A");
  EXPECT_EQ(lossy("\xf0\x80"), kR + kR);
  EXPECT_EQ(lossy("\xed\xa0\x80"), kR + kR + kR);
  EXPECT_EQ(lossy("\xc0\xaf"), kR + kR);
  EXPECT_EQ(lossy("\xf4\x90\x80\x80"), kR + kR + kR + kR);
  EXPECT_EQ(lossy("\xe2\x82\xac"), "\xe2\x82\xac");
  EXPECT_EQ(lossy("\xf0\x9f\x98"), kR);
  EXPECT_EQ(lossy("a\xff\xfe" "b"), "a" + kR + kR + "b");
  EXPECT_EQ(lossy("\xe0\x80\xaf"), kR + kR + kR);
  EXPECT_EQ(lossy("\xf0\x9f\x98\x80\x80"), "\xf0\x9f\x98\x80" + kR);
  EXPECT_EQ(lossy(""), "");
}

TEST(Utf8, NonFinalHoldsAnIncompleteTail) {
  std::string out;
  EXPECT_EQ(append_utf8_lossy("ab\xe2\x82", false, out), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  // An ill-formed tail is not "incomplete": it is replaced at once.
  EXPECT_EQ(append_utf8_lossy("ab\xe2\x41", false, out), 4u);
  EXPECT_EQ(out, "ab" + kR + "A");
  out.clear();
  EXPECT_EQ(append_utf8_lossy("\xf0\x9f\x98", false, out), 0u);
  EXPECT_EQ(out, "");
}

TEST(Utf8, CharLengthAndPrefixes) {
  char32_t cp = 0;
  EXPECT_EQ(utf8_char_length("\xe4\xb8\xad", &cp), 3u);
  EXPECT_EQ(cp, U'\x4e2d');
  EXPECT_EQ(utf8_char_length("\xf0\x9f\x98\x80", &cp), 4u);
  EXPECT_EQ(cp, U'\x1f600');
  EXPECT_EQ(utf8_char_length("\xed\xa0\x80"), 0u);  // surrogate
  EXPECT_EQ(utf8_char_length("\xc1\x81"), 0u);      // overlong
  EXPECT_EQ(utf8_char_length(""), 0u);
  EXPECT_EQ(utf8_valid_prefix("abcdefghij\xc3\xa9xyz\xff"), 15u);
  EXPECT_EQ(utf8_invalid_run("\xff\x80\x80" "a"), 3u);
  EXPECT_EQ(utf8_invalid_run("a\xff"), 0u);
  std::string enc;
  append_utf8(U'\x1f600', enc);
  append_utf8(U'\xe9', enc);
  EXPECT_EQ(enc, "\xf0\x9f\x98\x80\xc3\xa9");
}

TEST(Utf8, PythonIsspace) {
  // CPython 3.11: [c for c in range(0x110000) if chr(c).isspace()].
  const char32_t spaces[] = {0x9,    0xa,    0xb,    0xc,    0xd,    0x1c,   0x1d,   0x1e,
                             0x1f,   0x20,   0x85,   0xa0,   0x1680, 0x2000, 0x2001, 0x2002,
                             0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
                             0x2028, 0x2029, 0x202f, 0x205f, 0x3000};
  size_t count = 0;
  for (char32_t c = 0; c < 0x110000; ++c) count += python_isspace(c);
  EXPECT_EQ(count, std::size(spaces));
  for (char32_t c : spaces) EXPECT_TRUE(python_isspace(c)) << static_cast<uint32_t>(c);
}

}  // namespace
}  // namespace k2::tok
