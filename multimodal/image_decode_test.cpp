#include "multimodal/image_decode.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "multimodal/base64.h"
#include "multimodal/test_images.h"

namespace k2::mm {
namespace {

using testing::pattern_image;

void expect_same(const RgbImage& a, const RgbImage& b) {
  ASSERT_EQ(a.width, b.width);
  ASSERT_EQ(a.height, b.height);
  EXPECT_EQ(a.pixels, b.pixels);
}

TEST(ImageDecode, LosslessFormatsRoundTrip) {
  const RgbImage img = testing::quantized(pattern_image(23, 17));
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::vector<uint8_t>>>{
           {"png", testing::encode_png(img)}, {"bmp", testing::encode_bmp(img)}, {"gif", testing::encode_gif(img)},
#ifdef K2_HAVE_WEBP
           {"webp", testing::encode_webp_lossless(img)},
#endif
       }) {
    SCOPED_TRACE(name);
    auto info = probe_image(bytes);
    ASSERT_TRUE(info.ok()) << info.status().to_string();
    EXPECT_EQ(info->width, 23);
    EXPECT_EQ(info->height, 17);
    auto out = decode_image(bytes, DecodeLimits{}, AlphaPolicy::kDrop);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    expect_same(*out, img);
  }
}

#ifdef K2_HAVE_JPEG
TEST(ImageDecode, JpegDecodesClose) {
  const RgbImage img = pattern_image(32, 24);
  auto out = decode_image(testing::encode_jpeg(img, 95), DecodeLimits{}, AlphaPolicy::kDrop);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ASSERT_EQ(out->width, 32);
  int worst = 0;
  for (size_t i = 0; i < img.pixels.size(); ++i) worst = std::max(worst, std::abs(int(out->pixels[i]) - int(img.pixels[i])));
  EXPECT_LT(worst, 40);
}
#endif

TEST(ImageDecode, AlphaDropKeepsStoredColourWhiteComposites) {
  RgbImage img(3, 2);
  const uint8_t colours[6][3] = {{200, 10, 30}, {0, 0, 0}, {255, 255, 255}, {1, 2, 3}, {90, 180, 45}, {77, 66, 55}};
  for (int i = 0; i < 6; ++i) std::memcpy(&img.pixels[size_t(i) * 3], colours[i], 3);
  const std::vector<uint8_t> alpha = {255, 0, 128, 1, 254, 0};
  const auto png = testing::encode_png_rgba(img, alpha);
  auto drop = decode_image(png, DecodeLimits{}, AlphaPolicy::kDrop);
  ASSERT_TRUE(drop.ok());
  expect_same(*drop, img);
  auto white = decode_image(png, DecodeLimits{}, AlphaPolicy::kWhite);
  ASSERT_TRUE(white.ok());
  for (size_t i = 0; i < img.pixels.size(); ++i) {
    const int a = alpha[i / 3];
    const double exact = (img.pixels[i] * a + 255.0 * (255 - a)) / 255.0;
    EXPECT_EQ(white->pixels[i], static_cast<uint8_t>(std::floor(exact + 0.5))) << i;  // round half up
  }
}

TEST(ImageDecode, OneByOneIsRefusedByDefault) {
  const auto png = testing::encode_png(pattern_image(1, 1));
  auto r = decode_image(png, DecodeLimits{}, AlphaPolicy::kDrop);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("1x1"), std::string::npos);
  EXPECT_FALSE(decode_image(testing::encode_png(pattern_image(1, 40)), DecodeLimits{}, AlphaPolicy::kDrop).ok());
  DecodeLimits lax;
  lax.min_side = 1;
  EXPECT_TRUE(decode_image(png, lax, AlphaPolicy::kDrop).ok());
}

TEST(ImageDecode, TruncatedFilesAreRefused) {
  const RgbImage img = testing::quantized(pattern_image(40, 30));
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files = {
      {"png", testing::encode_png(img)}, {"bmp", testing::encode_bmp(img)}, {"gif", testing::encode_gif(img)}};
#ifdef K2_HAVE_JPEG
  files.emplace_back("jpeg", testing::encode_jpeg(img));
#endif
#ifdef K2_HAVE_WEBP
  files.emplace_back("webp", testing::encode_webp_lossless(img));
#endif
  for (const auto& [name, bytes] : files) {
    ASSERT_TRUE(decode_image(bytes, DecodeLimits{}, AlphaPolicy::kDrop).ok()) << name;
    for (double frac : {0.0, 0.1, 0.5, 0.9}) {
      std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(double(bytes.size()) * frac));
      if (name == "jpeg" || name == "gif") cut.resize(std::min(cut.size(), bytes.size() - 2));
      auto r = decode_image(cut, DecodeLimits{}, AlphaPolicy::kDrop);
      EXPECT_FALSE(r.ok()) << name << " cut at " << frac;
    }
    // Just the end missing: PNG without its IEND chunk, JPEG without EOI, GIF without its
    // trailer, WebP one byte short. (A BMP has no end marker; its cut tests are above.)
    const long tail = name == "png" ? 12 : 1;
    std::vector<uint8_t> no_end(bytes.begin(), bytes.end() - tail);
    if (name != "bmp") {
      EXPECT_FALSE(decode_image(no_end, DecodeLimits{}, AlphaPolicy::kDrop).ok()) << name << " without its end";
    }
  }
}

// A PNG header that claims 100000 x 100000 pixels: refused from the header, before any
// allocation of the raster.
TEST(ImageDecode, DecompressionBombIsRefusedFromTheHeader) {
  std::vector<uint8_t> png = testing::encode_png(pattern_image(8, 8));
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[at + size_t(i)] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  put32(16, 100000);
  put32(20, 100000);
  auto r = decode_image(png, DecodeLimits{}, AlphaPolicy::kDrop);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kOutOfRange);

  // A real, highly compressible image over the pixel cap.
  const auto big = testing::encode_png(RgbImage(600, 600));
  EXPECT_LT(big.size(), 20000u);
  DecodeLimits limits;
  limits.max_pixels = 100000;
  EXPECT_EQ(decode_image(big, limits, AlphaPolicy::kDrop).status().code(), Code::kOutOfRange);
  limits.max_pixels = 1 << 20;
  limits.max_side = 500;
  EXPECT_EQ(decode_image(big, limits, AlphaPolicy::kDrop).status().code(), Code::kOutOfRange);
  limits.max_side = 1 << 15;
  limits.max_bytes = 100;
  EXPECT_EQ(decode_image(big, limits, AlphaPolicy::kDrop).status().code(), Code::kOutOfRange);
}

TEST(ImageDecode, WrongContentTypeAndGarbageAreRefused) {
  const auto png = testing::encode_png(pattern_image(4, 4));
  EXPECT_TRUE(check_image_content_type("image/png", png).ok());
  EXPECT_TRUE(check_image_content_type("IMAGE/PNG; charset=binary", png).ok());
  EXPECT_TRUE(check_image_content_type("", png).ok());
  EXPECT_FALSE(check_image_content_type("image/jpeg", png).ok());
  EXPECT_FALSE(check_image_content_type("text/html", png).ok());
  EXPECT_FALSE(check_image_content_type("image/svg+xml", png).ok());
  const std::string html = "<html><body>not an image</body></html>";
  const std::vector<uint8_t> html_bytes(html.begin(), html.end());
  EXPECT_FALSE(check_image_content_type("image/png", html_bytes).ok());
  EXPECT_FALSE(decode_image(html_bytes, DecodeLimits{}, AlphaPolicy::kDrop).ok());
  EXPECT_FALSE(decode_image({}, DecodeLimits{}, AlphaPolicy::kDrop).ok());
  // Correct signature, garbage after it.
  std::vector<uint8_t> fake(png.begin(), png.begin() + 8);
  fake.resize(200, 0xab);
  EXPECT_FALSE(decode_image(fake, DecodeLimits{}, AlphaPolicy::kDrop).ok());
}

// Found by fuzz_mm_image_decode: a PNG whose first IDAT chunk is empty made stb_image
// memcpy to a null pointer. Refused before stb sees it.
TEST(ImageDecode, PngWithEmptyFirstIdatIsAnError) {
  std::vector<uint8_t> png = testing::encode_png(pattern_image(5, 5));
  ASSERT_TRUE(decode_image(png, DecodeLimits{}, AlphaPolicy::kDrop).ok());
  const size_t ihdr_end = 8 + 12 + 13;  // signature, IHDR chunk
  const uint8_t empty_idat[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xaf, 0x06, 0x1e};
  png.insert(png.begin() + long(ihdr_end), empty_idat, empty_idat + 12);
  auto r = decode_image(png, DecodeLimits{}, AlphaPolicy::kDrop);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
}

// Found by fuzz_mm_image_decode: a JPEG whose DHT segment declares more than 256 codes
// overflowed stb_image's Huffman tables. It must be a clean error.
TEST(ImageDecode, JpegWithOversizedHuffmanTableIsAnError) {
  auto bytes = base64_decode(
      "/9j/xAGiADFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZCTZoAADAAAAAAADYAAAAoAAAABgAAAAUAAA"
      "AB/9j/4AAQSkZJRgABAQAAAQABAEdISUpTVFVWAP/bAIQAEAsMDgwKEA5XWFlaY2RlZg==",
      1000);
  ASSERT_TRUE(bytes.ok());
  DecodeLimits limits;
  limits.min_side = 1;
  EXPECT_FALSE(decode_image(*bytes, limits, AlphaPolicy::kDrop).ok());
  EXPECT_FALSE(decode_image(*bytes, limits, AlphaPolicy::kWhite).ok());
}

}  // namespace
}  // namespace k2::mm
