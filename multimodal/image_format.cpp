#include "multimodal/image_format.h"

#include <algorithm>
#include <cstring>

namespace k2::mm {
namespace {

bool starts_with(std::span<const uint8_t> b, std::string_view sig, size_t at = 0) {
  return b.size() >= at + sig.size() && std::memcmp(b.data() + at, sig.data(), sig.size()) == 0;
}

}  // namespace

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kGif: return "GIF";
    case ImageFormat::kBmp: return "BMP";
    case ImageFormat::kWebp: return "WebP";
    case ImageFormat::kUnknown: break;
  }
  return "unknown";
}

ImageFormat sniff_image_format(std::span<const uint8_t> b) {
  if (starts_with(b, "\x89PNG\r\n\x1a\n")) return ImageFormat::kPng;
  if (starts_with(b, "\xff\xd8\xff")) return ImageFormat::kJpeg;
  if (starts_with(b, "GIF87a") || starts_with(b, "GIF89a")) return ImageFormat::kGif;
  if (starts_with(b, "BM") && b.size() >= 26) return ImageFormat::kBmp;
  if (starts_with(b, "RIFF") && starts_with(b, "WEBP", 8)) return ImageFormat::kWebp;
  return ImageFormat::kUnknown;
}

std::string normalize_media_type(std::string_view media_type) {
  size_t semi = media_type.find(';');
  if (semi != std::string_view::npos) media_type = media_type.substr(0, semi);
  std::string out;
  out.reserve(media_type.size());
  for (char c : media_type) {
    if (c == ' ' || c == '\t') continue;
    out.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

ImageFormat image_format_for_media_type(std::string_view media_type) {
  const std::string t = normalize_media_type(media_type);
  if (t == "image/png") return ImageFormat::kPng;
  if (t == "image/jpeg" || t == "image/jpg" || t == "image/pjpeg") return ImageFormat::kJpeg;
  if (t == "image/gif") return ImageFormat::kGif;
  if (t == "image/bmp" || t == "image/x-bmp" || t == "image/x-ms-bmp") return ImageFormat::kBmp;
  if (t == "image/webp") return ImageFormat::kWebp;
  return ImageFormat::kUnknown;
}

bool is_supported_video_media_type(std::string_view media_type) {
  static constexpr std::string_view kTypes[] = {"video/mp4",        "video/webm",      "video/quicktime",
                                                "video/x-matroska", "video/x-msvideo", "video/mpeg"};
  const std::string t = normalize_media_type(media_type);
  return std::find(std::begin(kTypes), std::end(kTypes), t) != std::end(kTypes);
}

Status check_image_content_type(std::string_view declared, std::span<const uint8_t> bytes) {
  const ImageFormat sniffed = sniff_image_format(bytes);
  if (sniffed == ImageFormat::kUnknown) return invalid_argument("not an image in a supported format (PNG, JPEG, GIF, BMP, WebP)");
  if (declared.empty()) return {};
  const ImageFormat named = image_format_for_media_type(declared);
  if (named == ImageFormat::kUnknown) {
    return invalid_argument("unsupported content type '" + normalize_media_type(declared) + "' for an image");
  }
  if (named != sniffed) {
    return invalid_argument("content type '" + normalize_media_type(declared) + "' does not match the data, which is " +
                            image_format_name(sniffed));
  }
  return {};
}

}  // namespace k2::mm
