#include "frontend/openai/chat_media.h"
#include "frontend/openai/server_config.h"

#include <gtest/gtest.h>

namespace k2::openai {
namespace {

ojson parse(const char* s) { return ojson::parse(s); }

TEST(ChatMedia, CollectsImageAndVideoPartsInOrder) {
  auto parts = collect_media_parts(parse(R"([
    {"role": "system", "content": "s"},
    {"role": "user", "content": [{"type": "text", "text": "a"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                                 {"type": "video_url", "video_url": "file:///v.mp4"}]},
    {"role": "user", "content": [{"type": "image_url", "image_url": "http://x/y.png"}]}])"));
  ASSERT_TRUE(parts.ok()) << parts.status().to_string();
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ((*parts)[0].modality, "image");
  EXPECT_EQ((*parts)[0].url, "data:image/png;base64,AA");
  EXPECT_EQ((*parts)[1].modality, "video");
  EXPECT_EQ((*parts)[2].url, "http://x/y.png");
}

TEST(ChatMedia, MalformedPartsAreErrors) {
  for (const char* bad : {R"([{"role":"user","content":[{"type":"image_url"}]}])",
                          R"([{"role":"user","content":[{"type":"image_url","image_url":{}}]}])",
                          R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":7}}]}])",
                          R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":""}}]}])"}) {
    auto parts = collect_media_parts(parse(bad));
    ASSERT_FALSE(parts.ok()) << bad;
    EXPECT_EQ(parts.status().code(), Code::kInvalidArgument);
  }
}

TEST(ChatMedia, LimitsPerModality) {
  std::vector<MediaPart> parts = {{"image", "a"}, {"image", "b"}, {"video", "c"}};
  EXPECT_TRUE(check_media_limits(parts, {}).ok());
  EXPECT_TRUE(check_media_limits(parts, {{"image", 2}}).ok());
  EXPECT_FALSE(check_media_limits(parts, {{"image", 1}}).ok());
  EXPECT_FALSE(check_media_limits(parts, {{"video", 0}}).ok());
}

TEST(ChatMedia, StripsUrlsForTheTemplate) {
  ojson out = strip_media_urls(parse(R"([{"role":"user","content":[{"type":"text","text":"t"},
      {"type":"image_url","image_url":{"url":"data:..."}}]}])"));
  EXPECT_EQ(out[0]["content"][0]["text"], "t");
  EXPECT_EQ(out[0]["content"][1], parse(R"({"type":"image"})"));
}

mm::LoadedMedia item(int64_t tokens, uint64_t hash) {
  mm::LoadedMedia m;
  m.media.pixel_values = {1.f, 2.f};
  m.media.grid_thw = {1, 2, 2};
  m.media.num_tokens = tokens;
  m.hash = {hash, 0};
  return m;
}

TEST(ChatMedia, ExpandsEachPlaceholderToItsTokens) {
  const int32_t pad = 789;
  auto out = expand_media_placeholders({1, 2, pad, 3, pad, 4}, pad, {item(3, 1), item(1, 2)});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->ids, (std::vector<int32_t>{1, 2, pad, pad, pad, 3, pad, 4}));
  ASSERT_EQ(out->media.size(), 2u);
  EXPECT_EQ(out->media[0].offset, 2);
  EXPECT_EQ(out->media[0].num_tokens, 3);
  EXPECT_EQ(out->media[1].offset, 6);
  EXPECT_EQ(out->media[1].num_tokens, 1);
  EXPECT_EQ(*out->media[0].pixel_values, (std::vector<float>{1.f, 2.f}));
  // A placeholder typed into the text, or a missing one, does not line up with the items.
  EXPECT_FALSE(expand_media_placeholders({pad, pad}, pad, {item(1, 1)}).ok());
  EXPECT_FALSE(expand_media_placeholders({1}, pad, {item(1, 1)}).ok());
}

mm::LoadedMedia chunk(const std::string& prompt, bool first) {
  mm::LoadedMedia m = item(6, prompt.size());
  m.video_chunk_prompt = prompt;
  m.first_video_chunk = first;
  return m;
}

TEST(ChatMedia, VideoPlaceholdersBecomeTheirChunkPrompts) {
  const std::string ph = "<|kimi_k25_video_placeholder|>";
  const std::vector<mm::LoadedMedia> media = {item(4, 1), chunk("[v1c0]", true), chunk("[v1c1]", false), item(1, 2),
                                              chunk("[v2c0]", true)};
  auto out = expand_video_placeholders("a<img>b" + ph + "c<img>" + ph + "d", ph, media);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out, "a<img>b[v1c0][v1c1]c<img>[v2c0]d");
  // Images only: the text is left alone, even a typed placeholder.
  auto images = expand_video_placeholders("x" + ph, ph, {item(4, 1)});
  ASSERT_TRUE(images.ok());
  EXPECT_EQ(*images, "x" + ph);
  // Placeholders and videos must pair up.
  EXPECT_FALSE(expand_video_placeholders("x" + ph, ph, media).ok());
  EXPECT_FALSE(expand_video_placeholders(ph + ph + ph, ph, media).ok());
  EXPECT_FALSE(expand_video_placeholders("no video here", ph, media).ok());
}

// The pixels of a request's media travel with the step plans to tensor-parallel workers on
// other nodes (plan_fanout.h), so such a deployment takes media like a single node does.
TEST(ChatMedia, TakenWithTensorParallelismAcrossNodes) {
  EngineConfig flags;
  flags.model = std::string(K2_TEST_DATA_DIR) + "/models/tiny-k25-vision";
  flags.max_model_len = 256;
  flags.tensor_parallel_size = 2;
  flags.nnodes = 2;
  auto two_nodes = make_server_config(flags);
  ASSERT_TRUE(two_nodes.ok()) << two_nodes.status().to_string();
  ASSERT_TRUE(two_nodes->multimodal.has_value());
  EXPECT_TRUE(two_nodes->multimodal->loader != nullptr);
}

}  // namespace
}  // namespace k2::openai
