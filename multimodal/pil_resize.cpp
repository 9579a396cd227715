#include "multimodal/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace k2::mm {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL: 8 bits of result, 2 bits of headroom

double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Per output index: the first input tap, the tap count, and fixed-point weights.
struct AxisCoeffs {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;  // [out][ksize]
};

AxisCoeffs precompute(int in_size, int out_size) {
  constexpr double kSupport = 2.0;
  // PIL computes the scale from a float box (in1 - in0); the sizes here are exact in float.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = kSupport * filterscale;
  AxisCoeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(size_t(out_size) * size_t(c.ksize), 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;  // PIL multiplies by the reciprocal, not divides
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = bicubic_kernel((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    int32_t* q = &c.weights[size_t(xx) * size_t(c.ksize)];
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[x] / ww : k[x];
      q[x] = w < 0 ? static_cast<int32_t>(-0.5 + w * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + w * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = std::max(xmax, 0);
  }
  return c;
}

uint8_t clip8(int64_t acc) {
  const int64_t v = acc >> kPrecisionBits;  // arithmetic shift: floor, as PIL's lookup index
  return static_cast<uint8_t>(std::clamp<int64_t>(v, 0, 255));
}

RgbImage horizontal(const RgbImage& in, int out_w) {
  const AxisCoeffs c = precompute(in.width, out_w);
  RgbImage out(out_w, in.height);
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* src = in.row(y);
    uint8_t* dst = out.row(y);
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* q = &c.weights[size_t(xx) * size_t(c.ksize)];
      int64_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
      for (int x = 0; x < c.count[xx]; ++x) {
        const uint8_t* p = src + size_t(c.first[xx] + x) * 3;
        for (int ch = 0; ch < 3; ++ch) acc[ch] += int64_t{p[ch]} * q[x];
      }
      for (int ch = 0; ch < 3; ++ch) dst[size_t(xx) * 3 + ch] = clip8(acc[ch]);
    }
  }
  return out;
}

RgbImage vertical(const RgbImage& in, int out_h) {
  const AxisCoeffs c = precompute(in.height, out_h);
  RgbImage out(in.width, out_h);
  const size_t row_len = size_t(in.width) * 3;
  std::vector<int64_t> acc(row_len);
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* q = &c.weights[size_t(yy) * size_t(c.ksize)];
    std::fill(acc.begin(), acc.end(), int64_t{1} << (kPrecisionBits - 1));
    for (int y = 0; y < c.count[yy]; ++y) {
      const uint8_t* src = in.row(c.first[yy] + y);
      for (size_t i = 0; i < row_len; ++i) acc[i] += int64_t{src[i]} * q[y];
    }
    uint8_t* dst = out.row(yy);
    for (size_t i = 0; i < row_len; ++i) dst[i] = clip8(acc[i]);
  }
  return out;
}

}  // namespace

Result<RgbImage> resize_bicubic_pil(const RgbImage& in, int new_width, int new_height) {
  if (in.width <= 0 || in.height <= 0 || new_width <= 0 || new_height <= 0) {
    return invalid_argument("resize: sizes must be positive");
  }
  if (in.pixels.size() != size_t(in.width) * size_t(in.height) * 3) return invalid_argument("resize: bad pixel buffer");
  // PIL runs a pass only when that side changes (horizontal first) and returns a copy when
  // neither does.
  RgbImage cur = new_width != in.width ? horizontal(in, new_width) : in;
  if (new_height != in.height) cur = vertical(cur, new_height);
  return cur;
}

}  // namespace k2::mm
