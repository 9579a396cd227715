#include "multimodal/video_sampling.h"

#include <gtest/gtest.h>

namespace k2::mm {
namespace {

MediaProcConfig config() {
  MediaProcConfig c;
  c.temporal_merge_kernel_size = 4;
  c.sample_fps = 2.0;
  return c;
}

TEST(VideoSampling, SamplesAtTwoFps) {
  // 3.5 s at 30 fps: 105 frames -> round(105 * 2 / 30) = 7 frames over [0, 104].
  auto idx = sample_frame_indices(105, 30.0, config());
  ASSERT_TRUE(idx.ok());
  EXPECT_EQ(*idx, (std::vector<int64_t>{0, 17, 35, 52, 69, 87, 104}));
  // A clip slower than sample_fps keeps every frame.
  auto slow = sample_frame_indices(5, 1.0, config());
  ASSERT_TRUE(slow.ok());
  EXPECT_EQ(*slow, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // At least one frame.
  auto one = sample_frame_indices(1, 30.0, config());
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, (std::vector<int64_t>{0}));
  // numpy rounds half to even: linspace(0, 3, 3) = [0, 1.5, 3] -> [0, 2, 3].
  auto half = sample_frame_indices(4, 2.6666666666666665, config());
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(*half, (std::vector<int64_t>{0, 2, 3}));
  MediaProcConfig capped = config();
  capped.max_num_frames_each_video = 3;
  EXPECT_EQ(sample_frame_indices(105, 30.0, capped)->size(), 3u);
  EXPECT_FALSE(sample_frame_indices(0, 30.0, config()).ok());
  EXPECT_FALSE(sample_frame_indices(10, 0.0, config()).ok());
}

TEST(VideoSampling, ChunksAndTimestamps) {
  auto chunks = plan_video_chunks(105, 30.0, config());
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 2u);
  EXPECT_EQ((*chunks)[0].frame_indices.size(), 4u);
  EXPECT_EQ((*chunks)[1].frame_indices.size(), 3u);
  EXPECT_EQ(video_chunk_prompt((*chunks)[0]), "00:00:00.000<|media_begin|>video<|media_content|><|media_pad|><|media_end|>");
  EXPECT_EQ(format_timestamp((*chunks)[1].start_seconds), "00:00:02.300");
  EXPECT_EQ(format_timestamp(3723.4567), "01:02:03.457");
}

}  // namespace
}  // namespace k2::mm
