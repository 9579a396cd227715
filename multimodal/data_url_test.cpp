#include "multimodal/data_url.h"

#include <gtest/gtest.h>

namespace k2::mm {
namespace {

// "\x89PNG\r\n\x1a\n" in base64.
constexpr const char* kPngMagic = "iVBORw0KGgo=";

TEST(DataUrl, ParsesImageDataUrls) {
  auto r = parse_data_url(std::string("data:image/png;base64,") + kPngMagic, MediaKind::kImage, 100);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->media_type, "image/png");
  ASSERT_EQ(r->data.size(), 8u);
  EXPECT_EQ(r->data[1], 'P');
  // Case-insensitive scheme and type, parameters before ;base64.
  auto r2 = parse_data_url(std::string("DATA:Image/JPEG;name=x.jpg;base64,") + kPngMagic, MediaKind::kImage, 100);
  ASSERT_TRUE(r2.ok()) << r2.status().to_string();
  EXPECT_EQ(r2->media_type, "image/jpeg");
  EXPECT_TRUE(is_data_url("data:,x"));
  EXPECT_FALSE(is_data_url("https://x/data:"));
}

TEST(DataUrl, RejectsWrongMediaTypes) {
  for (const char* url : {"data:text/html;base64,PGgxPg==", "data:image/svg+xml;base64,PHN2Zz4=",
                          "data:application/octet-stream;base64,AAAA", "data:;base64,AAAA", "data:video/mp4;base64,AAAA"}) {
    auto r = parse_data_url(url, MediaKind::kImage, 100);
    EXPECT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << url;
  }
  EXPECT_TRUE(parse_data_url("data:video/mp4;base64,AAAA", MediaKind::kVideo, 100).ok());
  EXPECT_FALSE(parse_data_url("data:image/png;base64,AAAA", MediaKind::kVideo, 100).ok());
}

TEST(DataUrl, RejectsMalformedUrls) {
  for (const char* url : {"data:image/png;base64", "data:image/png,iVBORw0KGgo=", "data:image/png;base64;x=1,AAAA",
                          "data:image/png;bogus;base64,AAAA", "data:image/png;base64,", "data:image/png;base64,####",
                          "image/png;base64,AAAA", "data:image/p\x01ng;base64,AAAA"}) {
    EXPECT_FALSE(parse_data_url(url, MediaKind::kImage, 100).ok()) << url;
  }
}

TEST(DataUrl, EnforcesTheSizeCapBeforeDecoding) {
  std::string url = "data:image/png;base64," + std::string(4000, 'A');
  auto r = parse_data_url(url, MediaKind::kImage, 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kOutOfRange);
  EXPECT_TRUE(parse_data_url(url, MediaKind::kImage, 3000).ok());
  // Whitespace does not hide an oversized payload from the exact check.
  std::string spaced = "data:image/png;base64,";
  for (int i = 0; i < 1000; ++i) spaced += "AAAA\n";
  EXPECT_EQ(parse_data_url(spaced, MediaKind::kImage, 1000).status().code(), Code::kOutOfRange);
}

}  // namespace
}  // namespace k2::mm
