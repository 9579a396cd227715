#include "multimodal/pil_resize.h"

#include <gtest/gtest.h>

#include "multimodal/test_images.h"

namespace k2::mm {
namespace {

TEST(PilResize, SameSizeIsACopyAndConstantStaysConstant) {
  const RgbImage img = testing::pattern_image(9, 7);
  auto same = resize_bicubic_pil(img, 9, 7);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->pixels, img.pixels);
  RgbImage flat(50, 40);
  std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t{173});
  for (auto [w, h] : {std::pair{13, 11}, std::pair{50, 7}, std::pair{3, 40}, std::pair{80, 60}}) {
    auto r = resize_bicubic_pil(flat, w, h);
    ASSERT_TRUE(r.ok());
    for (uint8_t v : r->pixels) ASSERT_EQ(v, 173) << w << "x" << h;  // normalised weights sum to 1
  }
}

// Worked by hand from Resample.c: 4 -> 2 on one row, scale 2, support 4. Output 0 has
// center 1, taps 0..3 at (x + 0.5 - 1) / 2 = -0.25, 0.25, 0.75, 1.25 with kernel weights
// .8671875, .8671875, .2265625, -.0703125 (sum 1.890625); on [0, 255, 0, 255] that is
// 255 * (.8671875 - .0703125) / 1.890625 = 107.48 -> 107. Output 1 mirrors it:
// 255 * (.2265625 + .8671875) / 1.890625 = 147.52 -> 148.
TEST(PilResize, MatchesAHandComputedPilCase) {
  RgbImage row(4, 1);
  const uint8_t v[4] = {0, 255, 0, 255};
  for (int x = 0; x < 4; ++x) std::fill_n(row.pixels.begin() + x * 3, 3, v[x]);
  auto r = resize_bicubic_pil(row, 2, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->pixels[0], 107);
  EXPECT_EQ(r->pixels[3], 148);
}

TEST(PilResize, RejectsBadSizes) {
  const RgbImage img = testing::pattern_image(4, 4);
  EXPECT_FALSE(resize_bicubic_pil(img, 0, 4).ok());
  EXPECT_FALSE(resize_bicubic_pil(img, 4, -1).ok());
  EXPECT_FALSE(resize_bicubic_pil(RgbImage(), 4, 4).ok());
}

}  // namespace
}  // namespace k2::mm
