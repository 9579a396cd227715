#include "multimodal/video_decode.h"

#ifdef K2_HAVE_FFMPEG
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libswscale/swscale.h>
}
#endif

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace k2::mm {

#ifndef K2_HAVE_FFMPEG

Result<VideoInfo> probe_video(std::span<const uint8_t>, const VideoLimits&) {
  return unimplemented("video decoding is not available: this build has no FFmpeg (libavformat-dev libavcodec-dev libswscale-dev)");
}

Result<VideoPlan> decode_video_chunks(std::span<const uint8_t> bytes, const MediaProcConfig&, const VideoLimits& limits,
                                      const VideoChunkSink&) {
  return probe_video(bytes, limits).status();
}

Result<SampledVideo> decode_sampled_video(std::span<const uint8_t> bytes, const MediaProcConfig&, const VideoLimits& limits) {
  return probe_video(bytes, limits).status();
}

#else

namespace {

// Containers a video_url may use. Not hls/concat/playlists (they open other URLs) nor raw
// image sequences.
constexpr const char* kFormatWhitelist = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,gif,flv,ogg";
constexpr int kAvioBufferSize = 1 << 15;

std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

void quiet_ffmpeg_logs() {
  // FFmpeg logs every malformed input to stderr by default; errors reach clients as values.
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_FATAL); });
}

struct MemoryReader {
  std::span<const uint8_t> bytes;
  size_t pos = 0;
};

int read_memory(void* opaque, uint8_t* buf, int size) {
  auto* r = static_cast<MemoryReader*>(opaque);
  if (r->pos >= r->bytes.size()) return AVERROR_EOF;
  const size_t n = std::min(static_cast<size_t>(std::max(size, 0)), r->bytes.size() - r->pos);
  std::memcpy(buf, r->bytes.data() + r->pos, n);
  r->pos += n;
  return static_cast<int>(n);
}

int64_t seek_memory(void* opaque, int64_t offset, int whence) {
  auto* r = static_cast<MemoryReader*>(opaque);
  const auto size = static_cast<int64_t>(r->bytes.size());
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) return size;
  int64_t base = 0;
  if (whence == SEEK_CUR) base = static_cast<int64_t>(r->pos);
  else if (whence == SEEK_END) base = size;
  else if (whence != SEEK_SET) return AVERROR(EINVAL);
  if ((offset > 0 && base > INT64_MAX - offset)) return AVERROR(EINVAL);
  const int64_t target = base + offset;
  if (target < 0 || target > size) return AVERROR(EINVAL);
  r->pos = static_cast<size_t>(target);
  return target;
}

// Nested opens (a container naming another file or URL) are never allowed.
int refuse_nested_open(AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) { return AVERROR(EPERM); }

struct CodecContextFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct SwsFree {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

// A demuxer over bytes in memory, positioned on the best video stream.
class Demuxer {
 public:
  static Result<std::unique_ptr<Demuxer>> open(std::span<const uint8_t> bytes, const VideoLimits& limits) {
    quiet_ffmpeg_logs();
    if (bytes.empty()) return invalid_argument("the video is empty");
    if (bytes.size() > limits.max_bytes) {
      return out_of_range("the video is " + std::to_string(bytes.size()) + " bytes, over the " + std::to_string(limits.max_bytes) + "-byte limit");
    }
    std::unique_ptr<Demuxer> d(new Demuxer(bytes));
    auto* buffer = static_cast<uint8_t*>(av_malloc(kAvioBufferSize));
    if (buffer == nullptr) return internal_error("out of memory");
    d->avio_ = avio_alloc_context(buffer, kAvioBufferSize, 0, &d->reader_, read_memory, nullptr, seek_memory);
    if (d->avio_ == nullptr) {
      av_free(buffer);
      return internal_error("out of memory");
    }
    AVFormatContext* fmt = avformat_alloc_context();
    if (fmt == nullptr) return internal_error("out of memory");
    fmt->pb = d->avio_;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    fmt->io_open = refuse_nested_open;
    // Strict demuxing: damage is an error, not something to conceal.
    fmt->error_recognition = AV_EF_EXPLODE | AV_EF_CRCCHECK | AV_EF_BITSTREAM | AV_EF_BUFFER;
    AVDictionary* opts = nullptr;
    av_dict_set(&opts, "format_whitelist", kFormatWhitelist, 0);
    const int err = avformat_open_input(&fmt, nullptr, nullptr, &opts);  // frees fmt on failure
    av_dict_free(&opts);
    if (err < 0) return invalid_argument("not a video in a supported container (" + av_error_text(err) + ")");
    d->fmt_ = fmt;
    if (int e = avformat_find_stream_info(fmt, nullptr); e < 0) return corrupt("unreadable video streams (" + av_error_text(e) + ")");
    const AVCodec* codec = nullptr;
    const int index = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (index < 0 || codec == nullptr) return invalid_argument("the file has no video stream with a supported codec");
    d->stream_ = fmt->streams[index];
    d->codec_ = codec;
    const AVCodecParameters* par = d->stream_->codecpar;
    if (par->width <= 0 || par->height <= 0) return corrupt("the video stream has no frame size");
    if (par->width > limits.max_side || par->height > limits.max_side ||
        int64_t{par->width} * par->height > limits.max_frame_pixels) {
      return out_of_range("video frames of " + std::to_string(par->width) + "x" + std::to_string(par->height) + " exceed the pixel limit");
    }
    return d;
  }

  ~Demuxer() {
    if (fmt_ != nullptr) avformat_close_input(&fmt_);
    if (avio_ != nullptr) {
      av_freep(&avio_->buffer);
      avio_context_free(&avio_);
    }
  }

  AVFormatContext* fmt() const { return fmt_; }
  AVStream* stream() const { return stream_; }
  const AVCodec* codec() const { return codec_; }

  // The duration the container declares (the stream's, else the file's); 0 when unknown.
  double declared_seconds() const {
    if (stream_->duration > 0 && stream_->time_base.num > 0 && stream_->time_base.den > 0) {
      return static_cast<double>(stream_->duration) * av_q2d(stream_->time_base);
    }
    if (fmt_->duration > 0) return static_cast<double>(fmt_->duration) / AV_TIME_BASE;
    return 0;
  }

  double fps() const {
    for (AVRational r : {stream_->avg_frame_rate, stream_->r_frame_rate}) {
      if (r.num > 0 && r.den > 0) return av_q2d(r);
    }
    return 0;
  }

 private:
  explicit Demuxer(std::span<const uint8_t> bytes) { reader_.bytes = bytes; }
  MemoryReader reader_;
  AVIOContext* avio_ = nullptr;
  AVFormatContext* fmt_ = nullptr;
  AVStream* stream_ = nullptr;
  const AVCodec* codec_ = nullptr;
};

Status read_error(int err) {
  return corrupt("the video is truncated or corrupt (" + av_error_text(err) + ")");
}

// Decodes in presentation order and hands every frame to `on_frame` until it returns false.
template <class OnFrame>
Status decode_frames(const Demuxer& d, OnFrame&& on_frame) {
  std::unique_ptr<AVCodecContext, CodecContextFree> dec(avcodec_alloc_context3(d.codec()));
  if (!dec) return internal_error("out of memory");
  if (avcodec_parameters_to_context(dec.get(), d.stream()->codecpar) < 0) return corrupt("bad video codec parameters");
  dec->thread_count = 1;
  dec->err_recognition = AV_EF_EXPLODE | AV_EF_CRCCHECK | AV_EF_BITSTREAM | AV_EF_BUFFER;
  if (int e = avcodec_open2(dec.get(), d.codec(), nullptr); e < 0) return corrupt("cannot open the video decoder (" + av_error_text(e) + ")");
  std::unique_ptr<AVPacket, PacketFree> pkt(av_packet_alloc());
  std::unique_ptr<AVFrame, FrameFree> frame(av_frame_alloc());
  if (!pkt || !frame) return internal_error("out of memory");
  bool more = true;
  auto drain = [&]() -> Status {
    while (more) {
      const int e = avcodec_receive_frame(dec.get(), frame.get());
      if (e == AVERROR(EAGAIN) || e == AVERROR_EOF) return {};
      if (e < 0) return read_error(e);
      if (frame->decode_error_flags != 0 || (frame->flags & AV_FRAME_FLAG_CORRUPT)) {
        return corrupt("the video is truncated or corrupt (a damaged frame)");
      }
      K2_ASSIGN_OR_RETURN(more, on_frame(*frame));
      av_frame_unref(frame.get());
    }
    return {};
  };
  while (more) {
    const int e = av_read_frame(d.fmt(), pkt.get());
    if (e == AVERROR_EOF) break;
    if (e < 0) return read_error(e);
    if (pkt->stream_index == d.stream()->index) {
      if (pkt->flags & AV_PKT_FLAG_CORRUPT) return corrupt("the video is truncated or corrupt (a damaged packet)");
      const int s = avcodec_send_packet(dec.get(), pkt.get());
      av_packet_unref(pkt.get());
      if (s < 0 && s != AVERROR(EAGAIN)) return read_error(s);
      K2_RETURN_IF_ERROR(drain());
    } else {
      av_packet_unref(pkt.get());
    }
  }
  if (more) {
    if (int s = avcodec_send_packet(dec.get(), nullptr); s < 0 && s != AVERROR_EOF) return read_error(s);
    K2_RETURN_IF_ERROR(drain());
  }
  return {};
}

Result<RgbImage> to_rgb(const AVFrame& frame, const VideoInfo& info, SwsContext** sws) {
  if (frame.width != info.width || frame.height != info.height) {
    return corrupt("a video frame changes size (" + std::to_string(frame.width) + "x" + std::to_string(frame.height) + ")");
  }
  if (frame.format < 0) return corrupt("a video frame has no pixel format");
  *sws = sws_getCachedContext(*sws, frame.width, frame.height, static_cast<AVPixelFormat>(frame.format), frame.width, frame.height,
                              AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
  if (*sws == nullptr) return invalid_argument("unsupported video pixel format");
  RgbImage out(frame.width, frame.height);
  uint8_t* dst[4] = {out.pixels.data(), nullptr, nullptr, nullptr};
  int dst_stride[4] = {frame.width * 3, 0, 0, 0};
  if (sws_scale(*sws, frame.data, frame.linesize, 0, frame.height, dst, dst_stride) != frame.height) {
    return corrupt("cannot convert a video frame to RGB");
  }
  return out;
}

Result<VideoInfo> probe_demuxer(const Demuxer& d, const VideoLimits& limits) {
  VideoInfo info;
  info.width = d.stream()->codecpar->width;
  info.height = d.stream()->codecpar->height;
  info.fps = d.fps();
  if (!std::isfinite(info.fps) || info.fps <= 0 || info.fps > 1000) return corrupt("the video has no usable frame rate");
  std::unique_ptr<AVPacket, PacketFree> pkt(av_packet_alloc());
  if (!pkt) return internal_error("out of memory");
  while (true) {
    const int e = av_read_frame(d.fmt(), pkt.get());
    if (e == AVERROR_EOF) break;
    if (e < 0) return read_error(e);
    const bool ours = pkt->stream_index == d.stream()->index;
    const bool damaged = (pkt->flags & AV_PKT_FLAG_CORRUPT) != 0;
    av_packet_unref(pkt.get());
    if (!ours) continue;
    if (damaged) return corrupt("the video is truncated or corrupt (a damaged packet)");
    ++info.num_frames;
    if (info.num_frames > limits.max_source_frames) {
      return out_of_range("the video has more than " + std::to_string(limits.max_source_frames) + " frames");
    }
  }
  if (info.num_frames == 0) return corrupt("the video stream has no frames");
  // A file cut short still demuxes the frames before the cut; the container's own duration
  // shows what is missing.
  // One frame (or 5%) of slack for rounding and variable frame rates: a cut that loses only
  // the last frame is not told apart from that.
  const double declared = d.declared_seconds();
  const double expected = declared * info.fps;
  if (declared > 0 && static_cast<double>(info.num_frames) + std::max(1.0, 0.05 * expected) < expected - 0.5) {
    return corrupt("the video is truncated: " + std::to_string(info.num_frames) + " frames where its " +
                   std::to_string(declared) + " s at " + std::to_string(info.fps) + " fps promise more");
  }
  return info;
}

}  // namespace

Result<VideoInfo> probe_video(std::span<const uint8_t> bytes, const VideoLimits& limits) {
  K2_ASSIGN_OR_RETURN(auto demuxer, Demuxer::open(bytes, limits));
  return probe_demuxer(*demuxer, limits);
}

Result<VideoPlan> decode_video_chunks(std::span<const uint8_t> bytes, const MediaProcConfig& cfg, const VideoLimits& limits,
                                      const VideoChunkSink& sink) {
  VideoPlan plan;
  K2_ASSIGN_OR_RETURN(plan.info, probe_video(bytes, limits));
  K2_ASSIGN_OR_RETURN(plan.chunks, plan_video_chunks(plan.info.num_frames, plan.info.fps, cfg));
  // Source index -> how many consecutive chunk slots it fills. The sampled indices ascend, so
  // the slots fill in chunk order as the frames arrive in presentation order.
  std::map<int64_t, size_t> wanted;
  size_t slots = 0;
  for (const auto& chunk : plan.chunks) {
    for (int64_t index : chunk.frame_indices) {
      if (!wanted.empty() && index < wanted.rbegin()->first) return internal_error("video sampling is not in order");
      ++wanted[index];
      ++slots;
    }
  }
  if (static_cast<int64_t>(slots) > limits.max_sampled_frames) {
    return out_of_range("the video samples " + std::to_string(slots) + " frames, over the limit of " + std::to_string(limits.max_sampled_frames));
  }
  K2_ASSIGN_OR_RETURN(auto demuxer, Demuxer::open(bytes, limits));
  std::unique_ptr<SwsContext, SwsFree> sws;
  std::vector<RgbImage> pending;  // the frames of chunk `next_chunk` decoded so far
  size_t next_chunk = 0;
  int64_t index = 0;
  const Status decoded = decode_frames(*demuxer, [&](const AVFrame& frame) -> Result<bool> {
    auto it = wanted.find(index++);
    if (it == wanted.end()) return true;
    SwsContext* raw = sws.release();
    auto rgb = to_rgb(frame, plan.info, &raw);
    sws.reset(raw);
    if (!rgb.ok()) return rgb.status();
    for (size_t copies = it->second; copies > 0; --copies) {
      pending.push_back(*rgb);
      const VideoChunkPlan& chunk = plan.chunks[next_chunk];
      if (pending.size() < chunk.frame_indices.size()) continue;
      K2_RETURN_IF_ERROR(sink(next_chunk, chunk, pending));
      pending.clear();
      ++next_chunk;
    }
    return next_chunk < plan.chunks.size();
  });
  K2_RETURN_IF_ERROR(decoded);
  if (next_chunk < plan.chunks.size()) {
    return corrupt("the video ends after " + std::to_string(index) + " decodable frames of " +
                   std::to_string(plan.info.num_frames) + ": truncated or corrupt");
  }
  return plan;
}

Result<SampledVideo> decode_sampled_video(std::span<const uint8_t> bytes, const MediaProcConfig& cfg, const VideoLimits& limits) {
  SampledVideo out;
  auto plan = decode_video_chunks(bytes, cfg, limits, [&out](size_t, const VideoChunkPlan&, std::span<const RgbImage> frames) {
    out.frames.insert(out.frames.end(), frames.begin(), frames.end());
    return Status::ok_status();
  });
  if (!plan.ok()) return plan.status();
  out.info = plan->info;
  out.chunks = std::move(plan->chunks);
  return out;
}

#endif  // K2_HAVE_FFMPEG

}  // namespace k2::mm
