// pack.cpp — the data layouts the micro-kernel reads: weights packed into panels once at load, and the zero-padded
// copy of a 3x3 or 7x7 conv's input made before the layer runs (conv_fused.h).
//
// The padded copy holds a batch of images, image after image: pad_row() writes row `row` of the rows of all of them.
//
// The panels are int8 in quads of taps, the operand layout of vpdpbusd; the padded copy is uint8, and
// quantize_pad_row() quantizes the stem's fp32 input as it pads it.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "conv_fused.h"

void pack_panels(const std::int8_t* ohwi, int cout, int k, int cin, int nb, std::int8_t* packed) {
  // panel o / nb: [kh][quad][nb][4]; the taps of kernel row kh are the run of k * cin weights (kw, ci) that the
  // input's row holds contiguously too; a run that is not a multiple of 4 is padded with zero weights.
  const int run = k * cin, quads = (run + 3) / 4;
  const size_t panel = static_cast<size_t>(k) * quads * nb * 4;
  std::memset(packed, 0, static_cast<size_t>(cout / nb) * panel);
  for (int o = 0; o < cout; o++) {
    std::int8_t* dst = packed + static_cast<size_t>(o / nb) * panel + (o % nb) * 4;
    for (int kh = 0; kh < k; kh++)
      for (int j = 0; j < run; j++)
        dst[(static_cast<size_t>(kh) * quads + j / 4) * nb * 4 + j % 4] =
            ohwi[(static_cast<size_t>(o) * k + kh) * run + j];
  }
}

void pad_row(const std::uint8_t* in, Shape s, int pad, std::uint8_t* out, int row) {
  const size_t pw = static_cast<size_t>(s.w + 2 * pad) * s.c;  // bytes per padded row
  std::uint8_t* o = out + row * pw;  // the padded images are contiguous: their rows are one sequence
  const int img = row / (s.h + 2 * pad), h = row % (s.h + 2 * pad) - pad;
  if (h < 0 || h >= s.h) {
    std::memset(o, 0, pw);
    return;
  }
  const size_t edge = static_cast<size_t>(pad) * s.c;
  std::memset(o, 0, edge);
  std::memcpy(o + edge, in + img * s.size() + static_cast<size_t>(h) * s.w * s.c,
              static_cast<size_t>(s.w) * s.c);
  std::memset(o + edge + static_cast<size_t>(s.w) * s.c, 0, edge);
}

void quantize_pad_row(const float* in, Shape s, int pad, float inv_step, int zero, std::uint8_t* out, int row) {
  const size_t pw = static_cast<size_t>(s.w + 2 * pad) * s.c;
  std::uint8_t* o = out + row * pw;
  const int img = row / (s.h + 2 * pad), h = row % (s.h + 2 * pad) - pad;
  if (h < 0 || h >= s.h) {
    std::memset(o, zero, pw);
    return;
  }
  const size_t edge = static_cast<size_t>(pad) * s.c, run = static_cast<size_t>(s.w) * s.c;
  const float* x = in + img * s.size() + static_cast<size_t>(h) * run;
  std::memset(o, zero, edge);
  for (size_t i = 0; i < run; i++)
    o[edge + i] = static_cast<std::uint8_t>(std::min(std::max(std::nearbyint(x[i] * inv_step) + zero, 0.0f), 255.0f));
  std::memset(o + edge + run, zero, edge);
}
