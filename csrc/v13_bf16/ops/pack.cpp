// pack.cpp — the data layouts the micro-kernel reads: weights packed into panels once at load, and the zero-padded
// copy of a 3x3 or 7x7 conv's input made before the layer runs (conv_fused.h).
//
// v8_gemm (new).
// v12_batch: pad_row() pads a batch of images, row `row` of the rows of all of them, image after image.
// v13_bf16: the panels are bf16 with the two taps of each pair side by side per output channel
// ([cout / nb][taps / 2][nb][2], the layout vdpbf16ps reads), an odd input channel count padded with zero taps;
// pad_row() copies bf16 rows, and pad_row_f32() makes the bf16 (padded) copy of an fp32 input.
#include <cstring>

#include "conv_fused.h"

void pack_panels(const float* ohwi, int cout, int k, int cin, int cin_to, int nb, bf16_t* packed) {
  const size_t taps = static_cast<size_t>(k) * k * cin_to;  // per output channel, after padding: even
  for (int o = 0; o < cout; o++) {
    bf16_t* dst = packed + static_cast<size_t>(o / nb) * taps * nb;
    for (int r = 0; r < k * k; r++) {  // (kh, kw)
      for (int c = 0; c < cin_to; c++) {
        const size_t i = static_cast<size_t>(r) * cin_to + c;  // the tap's index in the padded run
        const float v = c < cin ? ohwi[(static_cast<size_t>(o) * k * k + r) * cin + c] : 0.0f;
        dst[(i / 2 * nb + o % nb) * 2 + i % 2] = to_bf16(v);
      }
    }
  }
}

void pad_row(const bf16_t* in, Shape s, int pad, bf16_t* out, int row) {
  const size_t pw = static_cast<size_t>(s.w + 2 * pad) * s.c;  // values per padded row
  bf16_t* o = out + row * pw;  // the padded images are contiguous: their rows are one sequence
  const int img = row / (s.h + 2 * pad), h = row % (s.h + 2 * pad) - pad;
  if (h < 0 || h >= s.h) {
    std::memset(o, 0, pw * sizeof(bf16_t));
    return;
  }
  const size_t edge = static_cast<size_t>(pad) * s.c;
  std::memset(o, 0, edge * sizeof(bf16_t));
  std::memcpy(o + edge, in + img * s.size() + static_cast<size_t>(h) * s.w * s.c,
              static_cast<size_t>(s.w) * s.c * sizeof(bf16_t));
  std::memset(o + edge + static_cast<size_t>(s.w) * s.c, 0, edge * sizeof(bf16_t));
}

void pad_row_f32(const float* in, Shape s, int pad, int c_to, bf16_t* out, int row) {
  const size_t pw = static_cast<size_t>(s.w + 2 * pad) * c_to;
  bf16_t* o = out + row * pw;
  const int img = row / (s.h + 2 * pad), h = row % (s.h + 2 * pad) - pad;
  if (h < 0 || h >= s.h) {
    std::memset(o, 0, pw * sizeof(bf16_t));
    return;
  }
  const size_t edge = static_cast<size_t>(pad) * c_to;
  std::memset(o, 0, edge * sizeof(bf16_t));
  const float* src = in + img * s.size() + static_cast<size_t>(h) * s.w * s.c;
  bf16_t* dst = o + edge;
  if (c_to == s.c) {  // a plain conversion, vectorised
    for (size_t i = 0; i < static_cast<size_t>(s.w) * s.c; i++) dst[i] = to_bf16(src[i]);
  } else {
    for (int x = 0; x < s.w; x++, src += s.c, dst += c_to)
      for (int c = 0; c < c_to; c++) dst[c] = c < s.c ? to_bf16(src[c]) : 0;
  }
  std::memset(o + edge + static_cast<size_t>(s.w) * c_to, 0, edge * sizeof(bf16_t));
}
