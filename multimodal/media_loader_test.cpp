#include "multimodal/media_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "multimodal/test_images.h"

namespace k2::mm {
namespace {

namespace fs = std::filesystem;

std::string png_data_url(const std::vector<uint8_t>& bytes, const std::string& type = "image/png") {
  return "data:" + type + ";base64," + testing::base64_encode(bytes);
}

MediaProcConfig proc_config() {
  auto cfg = load_media_proc_config(fs::path(K2_TEST_DATA_DIR) / "models/tiny-k25-vision/preprocessor_config.json");
  EXPECT_TRUE(cfg.ok()) << cfg.status().to_string();
  return *cfg;
}

class Loader : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/k2_mm_loader_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    fs::create_directories(base_ / "allowed");
    fs::create_directories(base_ / "outside");
    write(base_ / "allowed" / "a.png", testing::encode_png(testing::pattern_image(32, 48)));
    write(base_ / "outside" / "s.png", testing::encode_png(testing::pattern_image(8, 8)));
    fs::create_symlink(base_ / "outside" / "s.png", base_ / "allowed" / "link.png");
    MediaLoaderOptions o;
    o.allowed_local_media_path = base_ / "allowed";
    o.fetch.max_bytes = 1 << 20;
    auto l = MediaLoader::create(proc_config(), o);
    ASSERT_TRUE(l.ok()) << l.status().to_string();
    loader_ = *l;
  }
  void TearDown() override { fs::remove_all(base_); }
  static void write(const fs::path& p, const std::vector<uint8_t>& b) {
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  static bool client_error(const Status& s) { return s.code() == Code::kInvalidArgument || s.code() == Code::kOutOfRange; }

  fs::path base_;
  std::shared_ptr<const MediaLoader> loader_;
};

TEST_F(Loader, DataUrlImageIsPreprocessedAndHashed) {
  auto png = testing::encode_png(testing::pattern_image(32, 48));
  auto m = loader_->load_image(png_data_url(png));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->media.grid_thw, (std::array<int64_t, 3>{1, 4, 4}));
  EXPECT_EQ(m->media.num_tokens, 4);
  auto again = loader_->load_image(png_data_url(png));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(m->hash, again->hash);
  auto other = loader_->load_image(png_data_url(testing::encode_png(testing::pattern_image(32, 48, 7))));
  ASSERT_TRUE(other.ok());
  EXPECT_NE(m->hash, other->hash);
}

TEST_F(Loader, OneByOneImageIsValid) {
  auto m = loader_->load_image(png_data_url(testing::encode_png(testing::pattern_image(1, 1))));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->media.num_tokens, 1);
}

TEST_F(Loader, FileUrlInsideTheAllowedDirectory) {
  auto m = loader_->load_image("file://" + (base_ / "allowed" / "a.png").string());
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->media.num_tokens, 4);
}

TEST_F(Loader, BadInputsAreClientErrors) {
  auto png = testing::encode_png(testing::pattern_image(32, 48));
  std::vector<uint8_t> truncated(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2));
  std::vector<uint8_t> bomb = png;  // IHDR claims 60000 x 60000
  for (int i : {16, 20}) {
    bomb[static_cast<size_t>(i)] = 0;
    bomb[static_cast<size_t>(i + 1)] = 0;
    bomb[static_cast<size_t>(i + 2)] = 0xEA;
    bomb[static_cast<size_t>(i + 3)] = 0x60;
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"truncated", png_data_url(truncated)},
      {"bomb", png_data_url(bomb)},
      {"wrong content type", png_data_url(png, "image/jpeg")},
      {"not an image type", png_data_url(png, "text/plain")},
      {"not base64", "data:image/png;base64,@@@@"},
      {"path escape", "file://" + (base_ / "allowed" / ".." / "outside" / "s.png").string()},
      {"symlink escape", "file://" + (base_ / "allowed" / "link.png").string()},
      {"outside", "file://" + (base_ / "outside" / "s.png").string()},
      {"missing file", "file://" + (base_ / "allowed" / "nope.png").string()},
      {"private address", "http://10.0.0.1/a.png"},
      {"loopback", "http://127.0.0.1/a.png"},
      {"link-local", "http://169.254.169.254/latest"},
      {"ftp", "ftp://example.com/a.png"},
  };
  for (const auto& [name, url] : cases) {
    auto m = loader_->load_image(url);
    ASSERT_FALSE(m.ok()) << name;
    EXPECT_TRUE(client_error(m.status())) << name << ": " << m.status().to_string();
  }
}

TEST_F(Loader, OversizedPayloadIsOutOfRange) {
  std::vector<uint8_t> big(2 << 20, 0x89);
  auto m = loader_->load_image(png_data_url(big));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Code::kOutOfRange) << m.status().to_string();
}

TEST(LoaderNoLocal, FileUrlsNeedTheOption) {
  auto l = MediaLoader::create(proc_config(), {});
  ASSERT_TRUE(l.ok());
  auto m = (*l)->load_image("file:///etc/passwd");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("--allowed-local-media-path"), std::string::npos);
}

TEST(LoaderDomains, AllowListIsEnforced) {
  MediaLoaderOptions o;
  o.fetch.allowed_domains = {"images.example.com"};
  auto l = MediaLoader::create(proc_config(), o);
  ASSERT_TRUE(l.ok());
  auto m = (*l)->load_image("https://evil.example.org/a.png");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace k2::mm
