#include "multimodal/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace k2::mm {
namespace {

std::string decode(std::string_view s, size_t cap = 1000) {
  auto r = base64_decode(s, cap);
  if (!r.ok()) return "ERR:" + r.status().message();
  return std::string(r->begin(), r->end());
}

TEST(Base64, DecodesRfc4648Vectors) {
  EXPECT_EQ(decode(""), "");
  EXPECT_EQ(decode("Zg=="), "f");
  EXPECT_EQ(decode("Zm8="), "fo");
  EXPECT_EQ(decode("Zm9v"), "foo");
  EXPECT_EQ(decode("Zm9vYg=="), "foob");
  EXPECT_EQ(decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(decode("Zm9vYmFy"), "foobar");
}

TEST(Base64, SkipsWhitespaceAndAcceptsMissingPadding) {
  EXPECT_EQ(decode("Zm9v\r\nYmFy"), "foobar");
  EXPECT_EQ(decode("Zm9vYg"), "foob");
  EXPECT_EQ(decode("Zm9vYmE"), "fooba");
}

TEST(Base64, RejectsMalformedInput) {
  EXPECT_EQ(decode("Zm9vY").substr(0, 4), "ERR:");     // one dangling character
  EXPECT_EQ(decode("Zm9v!").substr(0, 4), "ERR:");     // not in the alphabet
  EXPECT_EQ(decode("Zg==Zg==").substr(0, 4), "ERR:");  // data after padding
  EXPECT_EQ(decode("Zg=").substr(0, 4), "ERR:");       // incomplete padding
  EXPECT_EQ(decode("Zm9v=").substr(0, 4), "ERR:");     // padding after a full quantum
  EXPECT_EQ(decode("Zm-_").substr(0, 4), "ERR:");      // URL-safe alphabet is not base64
}

TEST(Base64, EnforcesTheCap) {
  EXPECT_EQ(decode("Zm9vYmFy", 6), "foobar");
  auto r = base64_decode("Zm9vYmFy", 5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kOutOfRange);
  EXPECT_FALSE(base64_decode("Zm9vYg==", 3).ok());
}

}  // namespace
}  // namespace k2::mm
