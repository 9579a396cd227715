// Media content parts of a chat request (vLLM's image_url / video_url parts) and the
// placeholder expansion of the tokenized prompt, as vLLM's multimodal processor does it:
// the chat template writes one <|media_pad|> per item, which becomes `num_tokens` copies, and
// each item remembers where its span starts.
//
// Pure functions of their inputs: thread-safe. Bad input is kInvalidArgument (an HTTP 400).
#pragma once

#include <map>
#include <string>
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

// Loads each part in order (video_url is refused: no video decoder is built in yet).
Result<std::vector<mm::LoadedMedia>> load_media_parts(const std::vector<MediaPart>& parts, const mm::MediaLoader& loader);

struct ExpandedPrompt {
  std::vector<int32_t> ids;
  std::vector<MediaInput> media;
};

// Replaces the i-th `placeholder` of `ids` by media[i].num_tokens copies; the number of
// placeholders must equal the number of items.
Result<ExpandedPrompt> expand_media_placeholders(const std::vector<int32_t>& ids, int32_t placeholder,
                                                 const std::vector<mm::LoadedMedia>& media);

// The cache_salt that keeps prefix-cache blocks of different media apart (the scheduler keys
// blocks by token ids only, and every image's placeholders are the same ids): the request's
// own salt plus the items' content hashes. The request's salt alone when there is no media.
std::optional<std::string> media_cache_salt(const std::optional<std::string>& salt, const std::vector<MediaInput>& media);

}  // namespace k2::openai
