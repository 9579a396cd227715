#include "frontend/openai/chat_media.h"

namespace k2::openai {
namespace {

const char* modality_of(const std::string& type) {
  if (type == "image_url") return "image";
  if (type == "video_url") return "video";
  return nullptr;
}

}  // namespace

Result<std::vector<MediaPart>> collect_media_parts(const ojson& messages) {
  std::vector<MediaPart> parts;
  if (!messages.is_array()) return parts;
  for (const auto& m : messages) {
    if (!m.is_object()) continue;
    auto content = m.find("content");
    if (content == m.end() || !content->is_array()) continue;
    for (const auto& part : *content) {
      if (!part.is_object()) continue;
      auto type = part.find("type");
      if (type == part.end() || !type->is_string()) continue;
      const std::string t = type->get<std::string>();
      const char* modality = modality_of(t);
      if (modality == nullptr) continue;
      auto field = part.find(t);
      if (field == part.end()) return invalid_argument("a '" + t + "' content part has no '" + t + "' field");
      const ojson* url = &*field;
      if (field->is_object()) {
        auto u = field->find("url");
        if (u == field->end()) return invalid_argument("'" + t + "' has no 'url'");
        url = &*u;
      }
      if (!url->is_string() || url->get_ref<const std::string&>().empty())
        return invalid_argument("'" + t + ".url' must be a non-empty string");
      parts.push_back({modality, url->get<std::string>()});
    }
  }
  return parts;
}

Status check_media_limits(const std::vector<MediaPart>& parts, const std::map<std::string, int64_t>& limits) {
  std::map<std::string, int64_t> counts;
  for (const auto& p : parts) ++counts[p.modality];
  for (const auto& [modality, n] : counts) {
    auto it = limits.find(modality);
    if (it != limits.end() && n > it->second) {
      return invalid_argument("At most " + std::to_string(it->second) + " " + modality + "(s) may be provided in one prompt (got " +
                              std::to_string(n) + "); see --limit-mm-per-prompt");
    }
  }
  return Status::ok_status();
}

ojson strip_media_urls(const ojson& messages) {
  ojson out = messages;
  if (!out.is_array()) return out;
  for (auto& m : out) {
    if (!m.is_object() || !m.contains("content") || !m["content"].is_array()) continue;
    for (auto& part : m["content"]) {
      if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) continue;
      if (const char* modality = modality_of(part["type"].get<std::string>())) part = ojson{{"type", modality}};
    }
  }
  return out;
}

Result<std::vector<mm::LoadedMedia>> load_media_parts(const std::vector<MediaPart>& parts, const mm::MediaLoader& loader) {
  std::vector<mm::LoadedMedia> out;
  out.reserve(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].modality == "video") {
      auto chunks = loader.load_video(parts[i].url);
      if (!chunks.ok()) return chunks.status().with_context("media item " + std::to_string(i));
      for (auto& c : *chunks) out.push_back(std::move(c));
      continue;
    }
    auto m = loader.load_image(parts[i].url);
    if (!m.ok()) return m.status().with_context("media item " + std::to_string(i));
    out.push_back(std::move(m).value());
  }
  return out;
}

Result<std::string> expand_video_placeholders(std::string prompt, std::string_view video_placeholder,
                                              const std::vector<mm::LoadedMedia>& media) {
  std::vector<std::string> videos;  // the concatenated chunk prompts of each video
  for (const auto& m : media) {
    if (m.first_video_chunk) videos.emplace_back();
    if (!m.video_chunk_prompt.empty() && !videos.empty()) videos.back() += m.video_chunk_prompt;
  }
  if (videos.empty()) return prompt;
  if (video_placeholder.empty()) return invalid_argument("this model has no video placeholder for video inputs");
  std::string out;
  size_t pos = 0, video = 0;
  for (size_t hit; (hit = prompt.find(video_placeholder, pos)) != std::string::npos; pos = hit + video_placeholder.size()) {
    if (video == videos.size()) {
      video++;
      break;
    }
    out.append(prompt, pos, hit - pos);
    out += videos[video++];
  }
  if (video != videos.size()) {
    return invalid_argument("the prompt has " + std::string(video > videos.size() ? "more" : "fewer") +
                            " video placeholders after applying the chat template than the request has videos (" +
                            std::to_string(videos.size()) + ")");
  }
  out.append(prompt, pos, std::string::npos);
  return out;
}

Result<ExpandedPrompt> expand_media_placeholders(const std::vector<int32_t>& ids, int32_t placeholder,
                                                 const std::vector<mm::LoadedMedia>& media) {
  size_t found = 0;
  for (int32_t id : ids) found += id == placeholder ? 1 : 0;
  if (found != media.size()) {
    return invalid_argument("the prompt has " + std::to_string(found) + " media placeholders after applying the chat template but the request carries " +
                            std::to_string(media.size()) + " media items");
  }
  ExpandedPrompt out;
  size_t item = 0;
  for (int32_t id : ids) {
    if (id != placeholder) {
      out.ids.push_back(id);
      continue;
    }
    const mm::LoadedMedia& m = media[item++];
    MediaInput in;
    in.pixel_values = std::make_shared<const std::vector<float>>(m.media.pixel_values);
    in.grid_t = m.media.grid_thw[0];
    in.grid_h = m.media.grid_thw[1];
    in.grid_w = m.media.grid_thw[2];
    in.hash_low = m.hash.low;
    in.hash_high = m.hash.high;
    in.offset = static_cast<int64_t>(out.ids.size());
    in.num_tokens = m.media.num_tokens;
    out.ids.insert(out.ids.end(), static_cast<size_t>(m.media.num_tokens), placeholder);
    out.media.push_back(std::move(in));
  }
  return out;
}

}  // namespace k2::openai
