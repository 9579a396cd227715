// Pillow's Image.resize(size, Image.BICUBIC) on 8-bit RGB, bit for bit (Pillow's
// libImaging/Resample.c): separable, the cubic kernel (a = -0.5) widened by the downscale
// factor (antialiasing), coefficients normalised per output pixel and quantised to 22
// fractional bits, the horizontal pass first, its output clamped to uint8 before the
// vertical pass. Pure function: thread-safe.
#pragma once

#include "multimodal/image.h"
#include "shm/status.h"

namespace k2::mm {

// Same size returns a copy, as PIL does. Sizes must be positive.
Result<RgbImage> resize_bicubic_pil(const RgbImage& in, int new_width, int new_height);

}  // namespace k2::mm
