#include "multimodal/data_url.h"

#include "multimodal/ascii.h"
#include "multimodal/base64.h"
#include "multimodal/image_format.h"

namespace k2::mm {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits "type/subtype;p=v;base64" into the media type and whether the last parameter is
// "base64"; rejects characters that cannot appear in a media type.
Status parse_header(std::string_view header, std::string* media_type, bool* base64) {
  for (char c : header) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return invalid_argument("data URL: control or non-ASCII character in the media type");
    }
  }
  *base64 = false;
  size_t semi = header.find(';');
  std::string_view type = trim(header.substr(0, semi));
  while (semi != std::string_view::npos) {
    size_t next = header.find(';', semi + 1);
    std::string_view param = trim(header.substr(semi + 1, next == std::string_view::npos ? next : next - semi - 1));
    if (*base64) return invalid_argument("data URL: ';base64' must be the last parameter");
    if (starts_with_ci(param, "base64") && param.size() == 6) {
      *base64 = true;
    } else if (param.find('=') == std::string_view::npos) {
      return invalid_argument("data URL: malformed parameter '" + std::string(param) + "'");
    }
    semi = next;
  }
  *media_type = normalize_media_type(type);
  return {};
}

}  // namespace

bool is_data_url(std::string_view url) { return starts_with_ci(url, "data:"); }

Result<DataUrl> parse_data_url(std::string_view url, MediaKind kind, size_t max_bytes) {
  if (!is_data_url(url)) return invalid_argument("not a data: URL");
  url.remove_prefix(5);
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) return invalid_argument("data URL: missing ',' before the data");
  // Media types are short; a long header is garbage and not worth scanning.
  if (comma > 256) return invalid_argument("data URL: media type too long");
  DataUrl out;
  bool base64 = false;
  K2_RETURN_IF_ERROR(parse_header(url.substr(0, comma), &out.media_type, &base64));
  if (out.media_type.empty()) return invalid_argument("data URL: missing media type");
  if (kind == MediaKind::kImage && image_format_for_media_type(out.media_type) == ImageFormat::kUnknown) {
    return invalid_argument("data URL: unsupported image media type '" + out.media_type + "'");
  }
  if (kind == MediaKind::kVideo && !is_supported_video_media_type(out.media_type)) {
    return invalid_argument("data URL: unsupported video media type '" + out.media_type + "'");
  }
  if (!base64) return invalid_argument("data URL: only ';base64' payloads are accepted");
  std::string_view payload = url.substr(comma + 1);
  // Refuse an oversized payload before decoding when its length alone proves it (no
  // whitespace to discount); the decoder enforces the exact cap either way.
  if (payload.size() / 4 * 3 > max_bytes + 2 && payload.find_first_of(" \t\r\n\f\v") == std::string_view::npos) {
    return out_of_range("data URL: payload larger than " + std::to_string(max_bytes) + " bytes");
  }
  auto decoded = base64_decode(payload, max_bytes);
  if (!decoded.ok()) return decoded.status().with_context("data URL");
  if (decoded->empty()) return invalid_argument("data URL: empty payload");
  out.data = std::move(decoded).value();
  return out;
}

}  // namespace k2::mm
