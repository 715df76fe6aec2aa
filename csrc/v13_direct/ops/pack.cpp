// pack.cpp — the data layouts the micro-kernel reads: weights packed into panels once at load, and the zero-padded
// copy of a 3x3 or 7x7 conv's input made before the layer runs (conv_fused.h).
//
// The padded copy holds a batch of images, image after image: pad_row() writes row `row` of the rows of all of them.
#include <cstring>

#include "conv_fused.h"

void pack_panels(const float* ohwi, int cout, int r, int nb, float* packed) {
  for (int n = 0; n < cout; n++) {
    const float* src = ohwi + static_cast<size_t>(n) * r;
    float* dst = packed + static_cast<size_t>(n / nb) * r * nb + n % nb;
    for (int i = 0; i < r; i++) dst[static_cast<size_t>(i) * nb] = src[i];
  }
}

void pad_row(const float* in, Shape s, int pad, float* out, int row) {
  const size_t pw = static_cast<size_t>(s.w + 2 * pad) * s.c;  // floats per padded row
  float* o = out + row * pw;  // the padded images are contiguous: their rows are one sequence
  const int img = row / (s.h + 2 * pad), h = row % (s.h + 2 * pad) - pad;
  if (h < 0 || h >= s.h) {
    std::memset(o, 0, pw * sizeof(float));
    return;
  }
  const size_t edge = static_cast<size_t>(pad) * s.c;
  std::memset(o, 0, edge * sizeof(float));
  std::memcpy(o + edge, in + img * s.size() + static_cast<size_t>(h) * s.w * s.c,
              static_cast<size_t>(s.w) * s.c * sizeof(float));
  std::memset(o + edge + static_cast<size_t>(s.w) * s.c, 0, edge * sizeof(float));
}
