#include "multimodal/local_media.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace k2::mm {
namespace {

namespace fs = std::filesystem;

class LocalMedia : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/k2_mm_local_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    fs::create_directories(base_ / "allowed" / "sub");
    fs::create_directories(base_ / "outside");
    fs::create_directories(base_ / "allowed_sibling");
    write(base_ / "allowed" / "a.png", "inside");
    write(base_ / "allowed" / "sub" / "b c.png", "spaced");
    write(base_ / "outside" / "secret.png", "secret");
    write(base_ / "allowed_sibling" / "x.png", "sibling");
    fs::create_symlink(base_ / "outside" / "secret.png", base_ / "allowed" / "link.png");
    fs::create_symlink(base_ / "outside", base_ / "allowed" / "dirlink");
    fs::create_symlink(base_ / "allowed" / "a.png", base_ / "allowed" / "inner_link.png");
    ASSERT_EQ(::mkfifo((base_ / "allowed" / "fifo").c_str(), 0600), 0);
    auto dir = LocalMediaDir::open(base_ / "allowed");
    ASSERT_TRUE(dir.ok()) << dir.status().to_string();
    dir_ = std::make_unique<LocalMediaDir>(std::move(dir).value());
  }
  void TearDown() override { fs::remove_all(base_); }

  static void write(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }
  std::string url(const std::string& rel) const { return "file://" + (base_ / rel).string(); }
  Result<std::vector<uint8_t>> read(const std::string& u, size_t cap = 1000) const { return dir_->read(u, cap); }

  fs::path base_;
  std::unique_ptr<LocalMediaDir> dir_;
};

TEST_F(LocalMedia, ReadsFilesInside) {
  auto r = read(url("allowed/a.png"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(std::string(r->begin(), r->end()), "inside");
  auto spaced = read("file://" + (base_ / "allowed/sub/b%20c.png").string());
  ASSERT_TRUE(spaced.ok()) << spaced.status().to_string();
  EXPECT_EQ(std::string(spaced->begin(), spaced->end()), "spaced");
  EXPECT_TRUE(read("file://localhost" + (base_ / "allowed/a.png").string()).ok());
  // A symlink that stays inside is fine.
  EXPECT_TRUE(read(url("allowed/inner_link.png")).ok());
}

TEST_F(LocalMedia, DotDotEscapeIsRefused) {
  EXPECT_FALSE(read(url("allowed/../outside/secret.png")).ok());
  EXPECT_FALSE(read(url("allowed/sub/../a.png")).ok());  // even when it would stay inside
  EXPECT_FALSE(read(url("allowed/%2e%2e/outside/secret.png")).ok());
  EXPECT_FALSE(read(url("allowed/./a.png")).ok());
}

TEST_F(LocalMedia, SymlinkEscapeIsRefused) {
  auto r = read(url("allowed/link.png"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(read(url("allowed/dirlink/secret.png")).ok());
}

TEST_F(LocalMedia, PathsOutsideOrLookalikeAreRefused) {
  EXPECT_FALSE(read(url("outside/secret.png")).ok());
  EXPECT_FALSE(read(url("allowed_sibling/x.png")).ok());  // prefix of the name, not a child
  EXPECT_FALSE(read("file:///etc/passwd").ok());
  EXPECT_FALSE(read("file://evil.com" + (base_ / "allowed/a.png").string()).ok());
  EXPECT_FALSE(read(url("allowed/a.png") + "?x").ok());
  EXPECT_FALSE(read(url("allowed/a.png%00.jpg")).ok());
  EXPECT_FALSE(read("file:relative.png").ok());
  EXPECT_FALSE(read(url("allowed")).ok());  // the directory itself
}

TEST_F(LocalMedia, OnlyRegularFilesUpToTheCap) {
  EXPECT_FALSE(read(url("allowed/fifo")).ok());  // and does not block
  EXPECT_FALSE(read(url("allowed/sub")).ok());
  auto big = read(url("allowed/a.png"), 3);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), Code::kOutOfRange);
  EXPECT_EQ(read(url("allowed/missing.png")).status().code(), Code::kNotFound);
}

TEST(LocalMediaDirOpen, RequiresAnExistingDirectory) {
  EXPECT_FALSE(LocalMediaDir::open("/nonexistent/k2/dir").ok());
}

}  // namespace
}  // namespace k2::mm
