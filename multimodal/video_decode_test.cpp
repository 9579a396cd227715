// Video decoding against the golden set: tests/data/video/k25_frames.mkv (the golden video
// frames at 2 fps, losslessly coded; README there) decodes, samples and preprocesses to the
// golden v_chunk items exactly, through the decoder and through the MediaLoader (data: and
// file:// URLs). Plus the refusals: truncated, corrupt, oversized, too many frames.
#include "multimodal/video_decode.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "multimodal/image_decode.h"
#include "multimodal/media_loader.h"
#include "multimodal/test_images.h"
#include "multimodal/vision_golden.h"

namespace k2::mm {
namespace {

namespace fs = std::filesystem;

const std::string kGoldenDir = std::string(K2_TEST_DATA_DIR) + "/models/tiny-k25-vision";
const std::string kVideo = std::string(K2_TEST_DATA_DIR) + "/video/k25_frames.mkv";

class VideoGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto set = testing::VisionGoldenSet::open(kGoldenDir);
    ASSERT_TRUE(set.ok()) << set.status().to_string();
    set_ = std::move(set).value().release();
  }
  static void TearDownTestSuite() { delete set_; }

  // The golden video chunk items in order, with the files they were made from.
  static std::vector<const nlohmann::json*> chunk_items() {
    std::vector<const nlohmann::json*> out;
    for (const auto& m : set_->json()["media"]) {
      if (m["kind"] == "video_chunk") out.push_back(&m);
    }
    return out;
  }

  static testing::VisionGoldenSet* set_;
};
testing::VisionGoldenSet* VideoGolden::set_ = nullptr;

#ifdef K2_HAVE_FFMPEG

TEST_F(VideoGolden, DecodedFramesAreThePngFrames) {
  const auto bytes = testing::read_file(kVideo);
  auto info = probe_video(bytes, VideoLimits{});
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  const auto items = chunk_items();
  int64_t frames = 0;
  for (const auto* m : items) frames += (*m)["frames"].get<int64_t>();
  EXPECT_EQ(info->num_frames, frames);
  EXPECT_DOUBLE_EQ(info->fps, set_->config().sample_fps);
  EXPECT_EQ(info->width, (*items[0])["orig_size_wh"][0].get<int>());
  EXPECT_EQ(info->height, (*items[0])["orig_size_wh"][1].get<int>());

  auto video = decode_sampled_video(bytes, set_->config(), VideoLimits{});
  ASSERT_TRUE(video.ok()) << video.status().to_string();
  ASSERT_EQ(video->chunks.size(), items.size());
  size_t f = 0;
  for (size_t c = 0; c < items.size(); ++c) {
    ASSERT_EQ(video->chunks[c].frame_indices.size(), (*items[c])["files"].size());
    for (const auto& file : (*items[c])["files"]) {
      auto png = decode_image(testing::read_file(kGoldenDir + "/" + file.get<std::string>()), DecodeLimits{}, AlphaPolicy::kDrop);
      ASSERT_TRUE(png.ok());
      EXPECT_EQ(video->frames[f].pixels, png->pixels) << "frame " << f << " (" << file << ")";
      ++f;
    }
  }
}

TEST_F(VideoGolden, LoaderChunksMatchGoldenPixelValues) {
  MediaLoaderOptions o;
  o.allowed_local_media_path = fs::path(kVideo).parent_path();
  auto loader = MediaLoader::create(set_->config(), o);
  ASSERT_TRUE(loader.ok()) << loader.status().to_string();
  const auto bytes = testing::read_file(kVideo);
  const std::string data_url = "data:video/x-matroska;base64," + testing::base64_encode(bytes);
  const auto items = chunk_items();
  ASSERT_FALSE(items.empty());
  for (const std::string& url : {data_url, "file://" + kVideo}) {
    SCOPED_TRACE(url.substr(0, 40));
    auto chunks = (*loader)->load_video(url);
    ASSERT_TRUE(chunks.ok()) << chunks.status().to_string();
    ASSERT_EQ(chunks->size(), items.size());
    std::string prompt;
    for (size_t c = 0; c < items.size(); ++c) {
      testing::expect_matches_golden(*set_, (*items[c])["name"], (*chunks)[c].media);
      EXPECT_EQ((*chunks)[c].media.num_tokens, (*items[c])["num_tokens"].get<int64_t>());
      EXPECT_EQ((*chunks)[c].first_video_chunk, c == 0);
      prompt += (*chunks)[c].video_chunk_prompt;
    }
    // The golden video prompt spells out the chunk prompts in order.
    bool found = false;
    for (const auto& p : set_->json()["prompts"]) {
      if (!p["media"].empty() && p["media"][0] == (*items[0])["name"]) found = p["text"].get<std::string>().find(prompt) != std::string::npos;
    }
    EXPECT_TRUE(found) << prompt;
  }
}

TEST(VideoDecode, TruncatedAndCorruptVideosAreErrors) {
  const auto bytes = testing::read_file(kVideo);
  MediaProcConfig cfg = *load_media_proc_config(kGoldenDir + "/preprocessor_config.json");
  // Cuts inside the header, the first frames, and two frames before the end. (A cut that loses
  // only the last frame is within the frame-count slack of the duration check.)
  const size_t frame_bytes = bytes.size() / 7;
  for (size_t cut : {size_t{0}, size_t{16}, size_t{200}, bytes.size() / 2, bytes.size() - frame_bytes * 3 / 2}) {
    std::vector<uint8_t> part(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    auto v = decode_sampled_video(part, cfg, VideoLimits{});
    EXPECT_FALSE(v.ok()) << "cut at " << cut;
  }
  std::vector<uint8_t> garbage = bytes;
  for (size_t i = bytes.size() / 3; i < bytes.size(); i += 7) garbage[i] ^= 0x5a;
  EXPECT_FALSE(decode_sampled_video(garbage, cfg, VideoLimits{}).ok());
  const std::vector<uint8_t> html = {'<', 'h', 't', 'm', 'l', '>', '<', '/', 'h', 't', 'm', 'l', '>'};
  EXPECT_FALSE(decode_sampled_video(html, cfg, VideoLimits{}).ok());
  // A PNG image is not a video container we accept.
  EXPECT_FALSE(decode_sampled_video(testing::encode_png(testing::pattern_image(8, 8)), cfg, VideoLimits{}).ok());
}

TEST(VideoDecode, LimitsAreEnforcedBeforeDecoding) {
  const auto bytes = testing::read_file(kVideo);
  MediaProcConfig cfg = *load_media_proc_config(kGoldenDir + "/preprocessor_config.json");
  VideoLimits small_bytes;
  small_bytes.max_bytes = bytes.size() - 1;
  EXPECT_EQ(decode_sampled_video(bytes, cfg, small_bytes).status().code(), Code::kOutOfRange);
  VideoLimits small_frames;
  small_frames.max_frame_pixels = 70 * 50 - 1;
  EXPECT_EQ(decode_sampled_video(bytes, cfg, small_frames).status().code(), Code::kOutOfRange);
  VideoLimits few_source;
  few_source.max_source_frames = 6;
  EXPECT_EQ(decode_sampled_video(bytes, cfg, few_source).status().code(), Code::kOutOfRange);
  VideoLimits few_sampled;
  few_sampled.max_sampled_frames = 6;
  EXPECT_EQ(decode_sampled_video(bytes, cfg, few_sampled).status().code(), Code::kOutOfRange);
  // Sampling at 1 fps instead of 2 keeps round(7 * 1 / 2) = 4 frames: one chunk.
  cfg.sample_fps = 1.0;
  auto v = decode_sampled_video(bytes, cfg, VideoLimits{});
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(v->frames.size(), 4u);
  EXPECT_EQ(v->chunks.size(), 1u);
}

// The server's path: each chunk leaves the decoder as soon as it is complete, in order, and
// a sink error stops decoding and is returned.
TEST(VideoDecode, ChunksStreamInOrderAndSinkErrorsStop) {
  const auto bytes = testing::read_file(kVideo);
  const MediaProcConfig cfg = *load_media_proc_config(kGoldenDir + "/preprocessor_config.json");
  auto whole = decode_sampled_video(bytes, cfg, VideoLimits{});
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  ASSERT_GE(whole->chunks.size(), 2u);
  std::vector<size_t> seen;
  size_t first = 0;
  auto plan = decode_video_chunks(bytes, cfg, VideoLimits{}, [&](size_t index, const VideoChunkPlan& chunk, std::span<const RgbImage> frames) {
    seen.push_back(index);
    EXPECT_EQ(chunk.frame_indices, whole->chunks[index].frame_indices);
    EXPECT_EQ(frames.size(), chunk.frame_indices.size());
    for (size_t i = 0; i < frames.size() && first + i < whole->frames.size(); ++i) {
      EXPECT_EQ(frames[i].pixels, whole->frames[first + i].pixels) << "chunk " << index << " frame " << i;
    }
    first += frames.size();
    return Status::ok_status();
  });
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_EQ(plan->chunks.size(), whole->chunks.size());
  std::vector<size_t> want(whole->chunks.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = i;
  EXPECT_EQ(seen, want);
  EXPECT_EQ(first, whole->frames.size());
  int calls = 0;
  auto stopped = decode_video_chunks(bytes, cfg, VideoLimits{}, [&](size_t, const VideoChunkPlan&, std::span<const RgbImage>) {
    ++calls;
    return out_of_range("sink says stop");
  });
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), Code::kOutOfRange);
  EXPECT_EQ(calls, 1);
}

#else

TEST(VideoDecode, RefusedWithoutFfmpeg) {
  EXPECT_EQ(probe_video(testing::read_file(kVideo), VideoLimits{}).status().code(), Code::kUnimplemented);
}

#endif

}  // namespace
}  // namespace k2::mm
