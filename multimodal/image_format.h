// Image container formats: sniffing from the leading bytes and the media types (MIME) that
// name them. Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "shm/status.h"

namespace k2::mm {

enum class ImageFormat { kUnknown, kPng, kJpeg, kGif, kBmp, kWebp };

const char* image_format_name(ImageFormat format);

// What the bytes are, from their signature; kUnknown when none matches.
ImageFormat sniff_image_format(std::span<const uint8_t> bytes);

// Lower-cases the type/subtype and strips parameters and whitespace:
// " Image/PNG; q=1" -> "image/png".
std::string normalize_media_type(std::string_view media_type);

// The format a media type names (image/png, image/jpeg, image/jpg, image/pjpeg, image/gif,
// image/bmp, image/x-bmp, image/x-ms-bmp, image/webp), kUnknown for anything else.
ImageFormat image_format_for_media_type(std::string_view media_type);

// Video media types accepted in a video_url (video/mp4, video/webm, video/quicktime,
// video/x-matroska, video/x-msvideo, video/mpeg).
bool is_supported_video_media_type(std::string_view media_type);

// A declared content type (HTTP Content-Type or a data URL's media type) must name an image
// format we decode and agree with the bytes' signature; a mismatch is how a polyglot or a
// mislabelled upload is caught. An empty `declared` (a file:// URL) checks the signature only.
Status check_image_content_type(std::string_view declared, std::span<const uint8_t> bytes);

}  // namespace k2::mm
