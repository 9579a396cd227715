#include "multimodal/media_loader.h"

#include "multimodal/ascii.h"
#include "multimodal/http_url.h"
#include "multimodal/image_format.h"
#include "multimodal/video_sampling.h"

namespace k2::mm {
namespace {

// Every refusal of a client's media is a 400; the size cap keeps its own code (also a 400).
Status as_client_error(const Status& s, std::string_view what) {
  if (s.code() == Code::kOutOfRange) return out_of_range(std::string(what) + ": " + s.message());
  return invalid_argument(std::string(what) + ": " + s.message());
}

bool is_http_url(std::string_view url) { return starts_with_ci(url, "http://") || starts_with_ci(url, "https://"); }

const char* kind_name(MediaKind kind) { return kind == MediaKind::kImage ? "image" : "video"; }

// A response's Content-Type as a declared type: a generic type (or none) declares nothing,
// so the bytes' own signature decides; anything else must name the modality.
Result<std::string> http_declared_type(const std::string& content_type, MediaKind kind) {
  const std::string type = normalize_media_type(content_type);
  if (type.empty() || type == "application/octet-stream" || type == "binary/octet-stream") return std::string();
  const bool fits = kind == MediaKind::kImage ? image_format_for_media_type(type) != ImageFormat::kUnknown
                                              : is_supported_video_media_type(type);
  if (!fits) return invalid_argument("the server sent content type '" + type + "', which is not a supported " + kind_name(kind) + " type");
  return type;
}

}  // namespace

Result<std::shared_ptr<const MediaLoader>> MediaLoader::create(MediaProcConfig config, MediaLoaderOptions options) {
  std::optional<LocalMediaDir> local;
  if (options.allowed_local_media_path) {
    auto dir = LocalMediaDir::open(*options.allowed_local_media_path);
    if (!dir.ok()) return dir.status().with_context("--allowed-local-media-path");
    local.emplace(std::move(dir).value());
  }
  options.decode.max_bytes = options.fetch.max_bytes;
  options.video.max_bytes = options.fetch.max_bytes;
  auto fetcher = HttpFetcher::create(options.fetch, options.fetch_hooks);
  if (!fetcher.ok()) return fetcher.status().with_context("media fetcher");
  return std::shared_ptr<const MediaLoader>(
      new MediaLoader(std::move(config), std::move(options), std::move(local), std::move(fetcher).value()));
}

Result<std::vector<uint8_t>> MediaLoader::read_media_bytes(std::string_view url, MediaKind kind, std::string* declared_type) const {
  declared_type->clear();
  const std::string what = std::string(kind_name(kind));
  const size_t cap = options_.fetch.max_bytes;
  if (is_data_url(url)) {
    auto parsed = parse_data_url(url, kind, cap);
    if (!parsed.ok()) return as_client_error(parsed.status(), what + " data URL");
    *declared_type = parsed->media_type;
    return std::move(parsed->data);
  }
  if (is_file_url(url)) {
    if (!local_) {
      return invalid_argument("file:// " + what + " URLs are disabled: the server was started without --allowed-local-media-path");
    }
    auto bytes = local_->read(url, cap);
    if (!bytes.ok()) return as_client_error(bytes.status(), "file:// " + what + " URL");
    return bytes;
  }
  if (is_http_url(url)) {
    const auto timeout = kind == MediaKind::kImage ? options_.fetch.timeout : options_.video_fetch_timeout;
    auto fetched = fetcher_->fetch(url, timeout);
    if (!fetched.ok()) return as_client_error(fetched.status(), what + " URL");
    auto declared = http_declared_type(fetched->content_type, kind);
    if (!declared.ok()) return as_client_error(declared.status(), what + " URL " + fetched->final_url);
    *declared_type = std::move(declared).value();
    return std::move(fetched->body);
  }
  return invalid_argument(what + " URL: unsupported scheme (expected data:, file:// or http(s)://)");
}

Result<LoadedMedia> MediaLoader::load_image(std::string_view url) const {
  std::string declared;
  K2_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_image_bytes(url, &declared));
  if (Status s = check_image_content_type(declared, bytes); !s.ok()) return as_client_error(s, "image");
  auto image = decode_image(bytes, options_.decode, options_.alpha);
  if (!image.ok()) return as_client_error(image.status(), "image");
  auto media = preprocess_image(*image, config_);
  if (!media.ok()) return as_client_error(media.status(), "image");
  LoadedMedia out;
  out.media = std::move(media).value();
  out.hash = media_content_hash(out.media);
  return out;
}

Result<std::vector<LoadedMedia>> MediaLoader::load_video(std::string_view url) const {
  std::string declared;
  K2_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_media_bytes(url, MediaKind::kVideo, &declared));
  std::vector<LoadedMedia> out;
  // Each chunk is preprocessed as soon as its frames are decoded: only one chunk of
  // full-size frames is alive at a time.
  auto plan = decode_video_chunks(bytes, config_, options_.video,
                                  [this, &out](size_t, const VideoChunkPlan& chunk, std::span<const RgbImage> frames) -> Status {
                                    K2_ASSIGN_OR_RETURN(PreprocessedMedia media, preprocess_video_chunk(frames, config_));
                                    LoadedMedia item;
                                    item.media = std::move(media);
                                    item.hash = media_content_hash(item.media);
                                    item.video_chunk_prompt = video_chunk_prompt(chunk);
                                    item.first_video_chunk = out.empty();
                                    out.push_back(std::move(item));
                                    return {};
                                  });
  if (!plan.ok()) return as_client_error(plan.status(), "video");
  if (out.empty()) return invalid_argument("video: no frames were sampled");
  return out;
}

}  // namespace k2::mm
