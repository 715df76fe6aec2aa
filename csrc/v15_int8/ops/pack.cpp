// pack.cpp — the data layouts the micro-kernel reads: weights packed into panels once at load, and the zero-padded
// copy of a 3x3 or 7x7 conv's input made before the layer runs (conv_fused.h).
//
// v8_gemm (new).
// v12_batch: pad_row() pads a batch of images, row `row` of the rows of all of them, image after image.
// v14_int8: pack_panels_i8() packs int8 weights in quads of taps (vpdpbusd's operand layout); pad_row() is written
// once for floats and uint8 (pad_row_u8()); quantize_pad_row() quantizes the stem's fp32 input as it pads it.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "conv_fused.h"

void pack_panels(const float* ohwi, int cout, int r, int nb, float* packed) {
  for (int n = 0; n < cout; n++) {
    const float* src = ohwi + static_cast<size_t>(n) * r;
    float* dst = packed + static_cast<size_t>(n / nb) * r * nb + n % nb;
    for (int i = 0; i < r; i++) dst[static_cast<size_t>(i) * nb] = src[i];
  }
}

void pack_panels_i8(const std::int8_t* ohwi, int cout, int k, int cin, int nb, std::int8_t* packed) {
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

namespace {

template <class T>
void pad_row_t(const T* in, Shape s, int pad, T* out, int row) {
  const size_t pw = static_cast<size_t>(s.w + 2 * pad) * s.c;  // values per padded row
  T* o = out + row * pw;  // the padded images are contiguous: their rows are one sequence
  const int img = row / (s.h + 2 * pad), h = row % (s.h + 2 * pad) - pad;
  if (h < 0 || h >= s.h) {
    std::memset(o, 0, pw * sizeof(T));
    return;
  }
  const size_t edge = static_cast<size_t>(pad) * s.c;
  std::memset(o, 0, edge * sizeof(T));
  std::memcpy(o + edge, in + img * s.size() + static_cast<size_t>(h) * s.w * s.c,
              static_cast<size_t>(s.w) * s.c * sizeof(T));
  std::memset(o + edge + static_cast<size_t>(s.w) * s.c, 0, edge * sizeof(T));
}

}  // namespace

void pad_row(const float* in, Shape s, int pad, float* out, int row) { pad_row_t(in, s, pad, out, row); }

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
void pad_row_u8(const std::uint8_t* in, Shape s, int pad, std::uint8_t* out, int row) {
  pad_row_t(in, s, pad, out, row);
}
