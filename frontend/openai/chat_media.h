// Media content parts of a chat request (vLLM's image_url / video_url parts) and the
// placeholder expansion of the tokenized prompt, as vLLM's multimodal processor does it:
// the chat template writes one <|media_pad|> per item, which becomes `num_tokens` copies, and
// each item remembers where its span starts.
//
// Pure functions of their inputs: thread-safe. Bad input is kInvalidArgument (an HTTP 400).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/openai/engine_client.h"
#include "frontend/openai/request.h"
#include "multimodal/media_loader.h"
#include "shm/status.h"

namespace k2::openai {

struct MediaPart {
  std::string modality;  // "image" or "video"
  std::string url;
};

// The image_url / video_url parts of every message's content, in order. A part's url may be
// given as {"url": "..."} (OpenAI) or as a plain string (vLLM accepts both).
Result<std::vector<MediaPart>> collect_media_parts(const ojson& messages);

// --limit-mm-per-prompt: a 400 naming the modality when a prompt carries more items.
Status check_media_limits(const std::vector<MediaPart>& parts, const std::map<std::string, int64_t>& limits);

// Rewrites every image_url / video_url part to {"type": "image"} / {"type": "video"}, the form
// vLLM hands chat templates (so megabytes of data: URL never reach the template).
ojson strip_media_urls(const ojson& messages);

// Loads each part in order: an image is one item, a video one item per chunk of sampled
// frames (each carrying its chunk prompt). Runs on the media pool: it may fetch over the
// network and decode video.
Result<std::vector<mm::LoadedMedia>> load_media_parts(const std::vector<MediaPart>& parts, const mm::MediaLoader& loader);

// Replaces the k-th `video_placeholder` of the rendered prompt text by the chunk prompts of
// the k-th video among `media` (the K2.5 processor does this before tokenization, README of
// the vision goldens section 4.5). Without videos the text is returned unchanged; otherwise
// the number of placeholders must equal the number of videos.
Result<std::string> expand_video_placeholders(std::string prompt, std::string_view video_placeholder,
                                              const std::vector<mm::LoadedMedia>& media);

struct ExpandedPrompt {
  std::vector<int32_t> ids;
  std::vector<MediaInput> media;
};

// Replaces the i-th `placeholder` of `ids` by media[i].num_tokens copies; the number of
// placeholders must equal the number of items.
Result<ExpandedPrompt> expand_media_placeholders(const std::vector<int32_t>& ids, int32_t placeholder,
                                                 const std::vector<mm::LoadedMedia>& media);

}  // namespace k2::openai
