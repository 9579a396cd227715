#include "workers/loader/progress.h"

#include <gtest/gtest.h>

namespace k2 {
namespace {

TEST(Progress, FormatsBytes) {
  EXPECT_EQ(ProgressReporter::format_bytes(0), "0 B");
  EXPECT_EQ(ProgressReporter::format_bytes(999), "999 B");
  EXPECT_EQ(ProgressReporter::format_bytes(7'800'000), "7.8 MB");
  EXPECT_EQ(ProgressReporter::format_bytes(1'030'000'000'000ull), "1.0 TB");
}

TEST(Progress, RendersBarAndLine) {
  const std::string bar = ProgressReporter::render_bar("loading x", 500, 1000, 2.0, 20);
  EXPECT_EQ(bar.substr(0, 22), "[##########          ]");
  EXPECT_NE(bar.find("loading x: 500 B / 1.0 KB"), std::string::npos) << bar;
  EXPECT_NE(bar.find("50.0%"), std::string::npos) << bar;
  EXPECT_NE(bar.find("2.00 s"), std::string::npos) << bar;
  EXPECT_NE(bar.find("(250 B/s)"), std::string::npos) << bar;
  EXPECT_EQ(ProgressReporter::render_bar("x", 10, 0, 0.0, 4).substr(0, 6), "[####]");  // empty total is done
  const std::string line = ProgressReporter::render_line("w", 1000, 1000, 0.5);
  EXPECT_NE(line.find("100.0%"), std::string::npos) << line;
}

TEST(Progress, CountsMonotonicallyAndCapsAtTotal) {
  ProgressReporter p("t", 100, ProgressStyle::kQuiet);
  EXPECT_EQ(p.style(), ProgressStyle::kQuiet);
  p.update(40);
  p.update(30);  // ignored
  EXPECT_EQ(p.done(), 40u);
  p.advance(10);
  EXPECT_EQ(p.done(), 50u);
  p.callback()(90, 100, 0.0);
  EXPECT_EQ(p.done(), 90u);
  p.update(1000);
  EXPECT_EQ(p.done(), 100u);
  p.finish();
  p.update(5);  // after finish: nothing changes
  EXPECT_EQ(p.done(), 100u);
  EXPECT_GE(p.seconds(), 0.0);
}

TEST(Progress, AutoPicksAStyle) {
  ProgressReporter p("t", 1, ProgressStyle::kAuto);
  EXPECT_TRUE(p.style() == ProgressStyle::kBar || p.style() == ProgressStyle::kLog);
  p.finish();
}

}  // namespace
}  // namespace k2
