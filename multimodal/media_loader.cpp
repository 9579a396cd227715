#include "multimodal/media_loader.h"

#include <xxhash.h>

#include "multimodal/ascii.h"
#include "multimodal/data_url.h"
#include "multimodal/http_url.h"
#include "multimodal/image_format.h"

namespace k2::mm {
namespace {

// Every refusal of a client's media is a 400; the size cap keeps its own code (also a 400).
Status as_client_error(const Status& s, std::string_view what) {
  if (s.code() == Code::kOutOfRange) return out_of_range(std::string(what) + ": " + s.message());
  return invalid_argument(std::string(what) + ": " + s.message());
}

bool is_http_url(std::string_view url) { return starts_with_ci(url, "http://") || starts_with_ci(url, "https://"); }

}  // namespace

ContentHash media_content_hash(const PreprocessedMedia& media) {
  XXH3_state_t* state = XXH3_createState();
  K2_CHECK(state != nullptr, "XXH3_createState failed");
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, media.pixel_values.data(), media.pixel_values.size() * sizeof(float));
  XXH3_128bits_update(state, media.grid_thw.data(), sizeof(media.grid_thw));
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return ContentHash{h.low64, h.high64};
}

Result<std::shared_ptr<const MediaLoader>> MediaLoader::create(MediaProcConfig config, MediaLoaderOptions options) {
  std::optional<LocalMediaDir> local;
  if (options.allowed_local_media_path) {
    auto dir = LocalMediaDir::open(*options.allowed_local_media_path);
    if (!dir.ok()) return dir.status().with_context("--allowed-local-media-path");
    local.emplace(std::move(dir).value());
  }
  options.decode.max_bytes = options.fetch.max_bytes;
  return std::shared_ptr<const MediaLoader>(new MediaLoader(std::move(config), std::move(options), std::move(local)));
}

Result<std::vector<uint8_t>> MediaLoader::read_image_bytes(std::string_view url, std::string* declared_type) const {
  declared_type->clear();
  const size_t cap = options_.fetch.max_bytes;
  if (is_data_url(url)) {
    auto parsed = parse_data_url(url, MediaKind::kImage, cap);
    if (!parsed.ok()) return as_client_error(parsed.status(), "image data URL");
    *declared_type = parsed->media_type;
    return std::move(parsed->data);
  }
  if (is_file_url(url)) {
    if (!local_) {
      return invalid_argument("file:// image URLs are disabled: the server was started without --allowed-local-media-path");
    }
    auto bytes = local_->read(url, cap);
    if (!bytes.ok()) return as_client_error(bytes.status(), "file:// image URL");
    return bytes;
  }
  if (is_http_url(url)) {
    auto parsed = parse_http_url(url);
    if (!parsed.ok()) return as_client_error(parsed.status(), "image URL");
    if (Status s = check_fetch_url(*parsed, options_.fetch); !s.ok()) return as_client_error(s, "image URL");
    if (parsed->ip) {
      if (Status s = check_connect_address(*parsed->ip, options_.fetch); !s.ok()) return as_client_error(s, "image URL");
    }
    return invalid_argument("image URL: fetching http(s) media is not implemented by this server yet; send the image "
                            "as a data: URL or a file:// URL under --allowed-local-media-path");
  }
  return invalid_argument("image URL: unsupported scheme (expected data:, file:// or http(s)://)");
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

}  // namespace k2::mm
