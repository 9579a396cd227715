// JPEG through libjpeg-turbo: the library Pillow itself decodes with (default islow IDCT
// and fancy upsampling, as PIL uses), so JPEG pixels match PIL's, and a decoder that is
// maintained against hostile input. libjpeg reports fatal errors through a callback that
// must not return; we longjmp out of it, so nothing with a destructor lives in the frame
// between setjmp and the libjpeg calls. Built without libjpeg (K2_HAVE_JPEG unset), JPEG is
// kUnimplemented.
#include "multimodal/image_codecs.h"

#ifdef K2_HAVE_JPEG
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>

#include <jpeglib.h>  // needs size_t and FILE declared first
#endif

namespace k2::mm::detail {

#ifdef K2_HAVE_JPEG
namespace {

// A progressive JPEG may declare thousands of scans, each a full pass over the
// coefficients: a CPU bomb in a few kilobytes. Pillow's libjpeg-turbo 3 has the same kind
// of limit (TJPARAM_SCANLIMIT); real images have at most a few dozen.
constexpr int kMaxScans = 256;

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_message(j_common_ptr, int) {}  // warnings (e.g. premature end) are not printed

void on_progress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxScans) {
    auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
    std::snprintf(err->message, sizeof(err->message), "more than %d scans", kMaxScans);
    std::longjmp(err->jump, 1);
  }
}

// Runs header parsing (and, with `out`, the whole decode) inside one setjmp frame. Returns
// false with err.message set on failure. Plain C state only in this frame.
bool run(std::span<const uint8_t> bytes, ImageInfo* info, uint8_t* out, size_t out_size, int channels,
         ErrorManager& err) {
  jpeg_decompress_struct cinfo;
  jpeg_progress_mgr progress;
  std::memset(&cinfo, 0, sizeof(cinfo));
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  err.message[0] = '\0';
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  progress.progress_monitor = on_progress;
  cinfo.progress = &progress;
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  info->format = ImageFormat::kJpeg;
  info->width = static_cast<int>(cinfo.image_width);
  info->height = static_cast<int>(cinfo.image_height);
  if (out == nullptr) {
    jpeg_destroy_decompress(&cinfo);
    return true;
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    std::snprintf(err.message, sizeof(err.message), "CMYK JPEG images are not supported");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  cinfo.out_color_space = channels == 4 ? JCS_EXT_RGBA : JCS_EXT_RGB;
  jpeg_start_decompress(&cinfo);
  const size_t stride = size_t(cinfo.output_width) * size_t(channels);
  if (cinfo.output_width != cinfo.image_width || cinfo.output_height != cinfo.image_height ||
      stride * cinfo.output_height != out_size) {
    std::snprintf(err.message, sizeof(err.message), "unexpected output size");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out + size_t(cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

}  // namespace

Result<ImageInfo> jpeg_probe(std::span<const uint8_t> bytes) {
  ErrorManager err;
  ImageInfo info;
  if (!run(bytes, &info, nullptr, 0, 3, err)) return corrupt(std::string("cannot read the JPEG header: ") + err.message);
  return info;
}

Result<RawPixels> jpeg_decode(std::span<const uint8_t> bytes, int channels) {
  K2_ASSIGN_OR_RETURN(ImageInfo info, jpeg_probe(bytes));
  RawPixels out;
  out.width = info.width;
  out.height = info.height;
  out.channels = channels;
  out.data.resize(size_t(info.width) * size_t(info.height) * size_t(channels));
  ErrorManager err;
  if (!run(bytes, &info, out.data.data(), out.data.size(), channels, err)) {
    return corrupt(std::string("cannot decode the JPEG image: ") + err.message);
  }
  return out;
}

#else

Result<ImageInfo> jpeg_probe(std::span<const uint8_t>) { return unimplemented("this build has no JPEG support (libjpeg)"); }
Result<RawPixels> jpeg_decode(std::span<const uint8_t>, int) {
  return unimplemented("this build has no JPEG support (libjpeg)");
}

#endif

}  // namespace k2::mm::detail
