#include "shm/status.h"

#include <gtest/gtest.h>

namespace k2 {
namespace {

Result<int> parse_positive(int x) {
  if (x <= 0) return invalid_argument("must be positive, got " + std::to_string(x));
  return x;
}

Result<int> doubled(int x) {
  K2_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return 2 * v;
}

TEST(Status, OkAndError) {
  EXPECT_TRUE(Status().ok());
  Status s = not_found("tensor x");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.to_string(), "not found: tensor x");
  EXPECT_EQ(s.with_context("file a").message(), "file a: tensor x");
}

TEST(Result, PropagatesErrors) {
  ASSERT_TRUE(doubled(3).ok());
  EXPECT_EQ(*doubled(3), 6);
  auto r = doubled(-1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("-1"), std::string::npos);
}

TEST(Result, OkStatusIsNotAValue) {
  Result<int> r{Status()};
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
}

TEST(CheckDeathTest, AbortsWithMessage) {
  EXPECT_DEATH(K2_CHECK(1 + 1 == 3, "math"), "invariant violated.*math");
}

}  // namespace
}  // namespace k2
